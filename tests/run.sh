#!/bin/sh
# The whole test suite, as README.md and CI run it:
#   1. the release build and every registered test (unit, packaging, cli, ...);
#   2. the unit suites again in a build with AddressSanitizer + UBSan;
#   3. the light unit suites under valgrind memcheck;
#   4. the threads suite under ThreadSanitizer.
# Ends with one line "N passed, N failed, N skipped" over both runs and exits
# non-zero if anything failed.
cd "$(dirname "$0")/.." || exit 1
status=0

setup() { # dir, options...
    dir=$1
    shift
    meson setup "$dir" --reconfigure "$@" >/dev/null 2>&1 || meson setup "$dir" "$@" || exit 1
}

setup build
meson test -C build --print-errorlogs || status=1

# Sanitizer builds skip the test cases tagged "heavy" (whole-data-set
# accuracy checks, already run above): they test numbers, not memory.
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
CK_EXCLUDE_TAGS=heavy ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --suite unit --print-errorlogs || status=1

# 3. valgrind memcheck over the light suites (suite 'memcheck') of the
#    release build, in-process (CK_FORK=no); any error or definite/indirect
#    leak fails the test.
rm -f build/meson-logs/memcheck*
if command -v valgrind >/dev/null 2>&1; then
    CK_FORK=no CK_EXCLUDE_TAGS=heavy meson test -C build --suite memcheck --logbase memcheck --print-errorlogs \
        --wrapper "valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect" \
        || status=1
else
    echo "run.sh: valgrind not installed: memcheck run skipped" >&2
fi

# 4. ThreadSanitizer: several threads share one model (suite 'threads').
setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized
TSAN_OPTIONS=halt_on_error=1 meson test -C build-tsan --suite threads --print-errorlogs || status=1

python3 - <<'PY'
import glob, json
res = []
# (meson names the valgrind log after --logbase and the wrapper)
for log in ["build/meson-logs/testlog.json", "build-asan/meson-logs/testlog.json",
            "build-tsan/meson-logs/testlog.json"] + glob.glob("build/meson-logs/memcheck*.json"):
    try:
        res += [json.loads(line)["result"] for line in open(log)]
    except OSError:
        pass
ok = sum(r in ("OK", "EXPECTEDFAIL") for r in res)
skipped = sum(r == "SKIP" for r in res)
print(f"{ok} passed, {len(res) - ok - skipped} failed, {skipped} skipped")
PY
exit $status
