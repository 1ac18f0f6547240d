#!/bin/sh
# Build the libFuzzer harnesses with clang (not part of CI):
#   sh tests/fuzz/build_fuzzers.sh [outdir]      (default: build-fuzz)
# The library sources are compiled with coverage instrumentation and
# AddressSanitizer + UBSan; each harness links them with libFuzzer's main.
# Run e.g.:
#   build-fuzz/fuzz_png -max_total_time=480 -rss_limit_mb=4096 \
#       new-corpus-dir tests/fuzz/corpus/png
# (the first folder receives new inputs; keep the committed corpus small.)
set -eu
cd "$(dirname "$0")/../.."
out=${1:-build-fuzz}
mkdir -p "$out/obj"
CC=${CC:-clang}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# FUZZ_SAN_EXTRA: e.g. "-fno-sanitize=float-cast-overflow" to fuzz past a
# known report
SAN="$SAN ${FUZZ_SAN_EXTRA:-}"
# every src/ folder: internal headers are found by basename
INC="-Iinclude -Isrc$(for d in src/*/; do printf ' -I%s' "${d%/}"; done)"
INC="$INC $(pkg-config --cflags openblas libpng zlib)"
CFLAGS="-std=c11 -O1 -g -D_GNU_SOURCE -DSARDFQ_BUILD -ffp-contract=fast $SAN $INC"
LIBS="$(pkg-config --libs openblas libpng zlib) -lpthread -lm"

objs=""
for src in src/*/*.c; do
    o="$out/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
    $CC $CFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$o"
    objs="$objs $o"
done
for h in safetensors idx png calib; do
    $CC $CFLAGS -fsanitize=fuzzer "tests/fuzz/fuzz_$h.c" $objs $LIBS -o "$out/fuzz_$h"
    echo "built $out/fuzz_$h"
done
