#!/bin/sh
# cli_test.sh [--rc N] [--stderr ERE] [--one-line] [--last ERE] -- CMD [ARGS...]
#
# Runs CMD and checks: its exit code is N (default 0); standard error has a
# line matching ERE; with --one-line, standard error is exactly one line; the
# last line of standard output matches ^ERE$. Prints what differed.
set -eu
rc=0 err_re='' one_line=0 last_re=''
while [ $# -gt 0 ]; do
    case $1 in
    --rc) rc=$2; shift 2 ;;
    --stderr) err_re=$2; shift 2 ;;
    --one-line) one_line=1; shift ;;
    --last) last_re=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "cli_test: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "cli_test: no command" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sardfq-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
set +e
"$@" >"$tmp/out" 2>"$tmp/err" </dev/null
got=$?
set -e
status=0
show() {
    echo "--- stdout"; cat "$tmp/out"; echo "--- stderr"; cat "$tmp/err"
}
if [ "$got" -ne "$rc" ]; then
    echo "cli_test: '$*' exited $got, expected $rc" >&2; status=1
fi
if [ -n "$err_re" ] && ! grep -Eq -- "$err_re" "$tmp/err"; then
    echo "cli_test: stderr has no line matching /$err_re/" >&2; status=1
fi
if [ "$one_line" = 1 ] && [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
    echo "cli_test: stderr is not exactly one line" >&2; status=1
fi
if [ -n "$last_re" ] && ! tail -n 1 "$tmp/out" | grep -Eq -- "^($last_re)\$"; then
    echo "cli_test: last stdout line does not match /^$last_re\$/" >&2; status=1
fi
show
exit $status
