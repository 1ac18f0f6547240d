#!/bin/sh
# ort_speed.sh - the ONNX Runtime comparison of README ("ONNX export"): a
# DeiT-S / Swin-T (random weights, quantized on 32 noise images) run by the
# library's integer executor and by ONNX Runtime (onnxruntime-node 1.20.1,
# CPU, from tests/onnx) on the same model exported with --flavor ort (and
# the FP32 model both ways), batch 8, 2 threads, alternated: each round
# runs the library, then ONNX Runtime, ROUNDS times (default 5), with a
# pause between them (idle worker threads spin after a run). Each run's
# figure is the median of 5 timed calls (each after an untimed one); the
# table gives the medians over the rounds and their ratio.
#
#   sh examples/ort_speed.sh [ROUNDS]
#
# Environment: ARCHS (default "deit_small"), QUANTS (default "W8A8 W4A4").
# Needs a build in build/ (or SARDFQ=path/to/sardfq) with ONNX export and
# `npm ci` in tests/onnx.
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
S=${SARDFQ:-build/examples/sardfq}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
med() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "| model | quant | libsardfq ms/img | ONNX Runtime ms/img | ONNX Runtime / libsardfq |"
echo "|---|---|---:|---:|---:|"
for a in ${ARCHS:-deit_small}; do
    for q in FP32 ${QUANTS:-W8A8 W4A4}; do
        m=$T/$a-$q.safetensors
        if [ "$q" = FP32 ]; then
            $S bench --arch "$a" --batch 1 --repeat 1 --threads 2 --save "$m" >/dev/null
        else
            $S bench --arch "$a" --quant "$q" --batch 1 --repeat 1 --threads 2 --save "$m" >/dev/null
        fi
        $S export --model "$m" --onnx "$T/$a-$q.onnx" --flavor ort >/dev/null
        : >"$T/lib" && : >"$T/ort"
        for r in $(seq "$ROUNDS"); do
            $S bench --model "$m" --batch 8 --threads 2 --repeat 5 | awk '$1 == "forward" && $2 ~ /^[0-9]/ { print $4 }' >>"$T/lib"
            sleep 0.2
            node examples/ort_bench.js "$T/$a-$q.onnx" 3 224 224 8 5 2 | sed 's/ort_ms_per_img=\([0-9.]*\).*/\1/' >>"$T/ort"
            sleep 0.2
        done
        l=$(med <"$T/lib") o=$(med <"$T/ort")
        echo "| $a | $q | $l | $o | $(awk -v a="$o" -v b="$l" 'BEGIN { printf "%.2f", a / b }') |"
    done
done
echo
echo "(\`sh examples/ort_speed.sh $ROUNDS\`; medians over $ROUNDS alternated rounds)"
