#!/bin/sh
# qperf_table.sh - the integer executor's speed table of README
# ("Performance"): for each arch and width, `sardfq bench --arch A --quant
# WxAy` (RepQ-ViT on 32 noise images, random weights, 224x224, batch 8, 2
# threads; float and quantized forwards alternated, medians of R pairs),
# then the integer GEMM bench. Prints a markdown table and the GEMM lines.
#
#   sh examples/qperf_table.sh [REPEAT]
#
# Environment: ARCHS (default "deit_tiny deit_small swin_tiny"), QUANTS
# (default "W8A8 W4A4"), SARDFQ (default build/examples/sardfq). About 5
# minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
R=${1:-7}
S=${SARDFQ:-build/examples/sardfq}
G=$(dirname "$S")/sardfq-bench-gemm
echo "| arch | quant | float ms/img | quantized ms/img | q_speedup | float weights (MiB) | quantized weights read (MiB) | ratio | ops int / float |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
for a in ${ARCHS:-deit_tiny deit_small swin_tiny}; do
    for q in ${QUANTS:-W8A8 W4A4}; do
        out=$($S bench --arch "$a" --quant "$q" --batch 8 --threads 2 --repeat "$R")
        ops=$(printf '%s\n' "$out" | sed -n 's/.*quantized ops: \([0-9]*\) on integer kernels, \([0-9]*\) in float.*/\1 \/ \2/p')
        fms=$(printf '%s\n' "$out" | awk '/^  float32 / { print $3 }')
        qms=$(printf '%s\n' "$out" | awk '/^  quantized +[0-9]/ { print $3 }')
        last=$(printf '%s\n' "$out" | tail -n 1)
        sp=$(printf '%s\n' "$last" | sed 's/.*q_speedup=\([0-9.]*\).*/\1/')
        w=$(printf '%s\n' "$last" | sed 's/.*weight_mb=\([0-9.]*\) q_weight_mb.*/\1/')
        qw=$(printf '%s\n' "$last" | sed 's/.*q_weight_mb=\([0-9.]*\).*/\1/')
        ratio=$(awk -v a="$qw" -v b="$w" 'BEGIN { printf "%.3f", a / b }')
        echo "| $a | $q | $fms | $qms | $sp | $w | $qw | $ratio | $ops |"
    done
done
echo
"$G" --threads 2 --repeat "$R"
"$G" --threads 2 --repeat "$R" --bits 4 | tail -n 1
