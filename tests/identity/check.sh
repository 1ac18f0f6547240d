#!/bin/sh
# The byte-identity check of a refactor: run the recorder (record.c) and
# compare every line with the committed record, which names the machine it
# was taken on (results depend on the CPU, on the kernel set OpenBLAS picks
# for it, which OPENBLAS_CORETYPE can override, and on the compiler's code
# for the library's own loops).
#   check.sh RECORDER RECORD_FILE DATA_DIR MODELS_DIR        (compare)
#   check.sh RECORDER RECORD_FILE DATA_DIR MODELS_DIR --write (re-record)
# Exit 0 identical, 1 different, 77 (skip) on another kind of machine.
set -u
rec=$1 file=$2 data=$3 models=$4 mode=${5:-}
machine() {
    cpu=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/.*: //')
    blas=$(dpkg-query -W -f '${Version}' libopenblas0-pthread 2>/dev/null || echo unknown)
    core=$("$rec" --blas-core 2>/dev/null || echo unknown)
    cc=$(cc -dumpfullversion 2>/dev/null || echo unknown)
    echo "# machine: $cpu | openblas $blas ($core kernels) | cc $cc"
}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
"$rec" "$data" "$models" "$tmp" > "$tmp/now.txt" || { echo "identity: the recorder failed"; exit 1; }
if [ "$mode" = "--write" ]; then
    { machine; cat "$tmp/now.txt"; } > "$file"
    echo "identity: wrote $(wc -l < "$tmp/now.txt") results to $file"
    exit 0
fi
if [ "$(head -n 1 "$file")" != "$(machine)" ]; then
    echo "identity: the record was taken on another machine:"
    head -n 1 "$file"
    machine
    exit 77
fi
tail -n +2 "$file" > "$tmp/then.txt"
total=$(wc -l < "$tmp/then.txt")
if diff "$tmp/then.txt" "$tmp/now.txt" > "$tmp/diff.txt"; then
    echo "identity: all $total results byte-identical to the record"
    exit 0
fi
echo "identity: results differ from the record ($total recorded):"
cat "$tmp/diff.txt"
exit 1
