#!/bin/sh
# int_table.sh - the integer executor's accuracy tables of README ("Integer
# executor"): top-1 on the 10000 Fashion-MNIST test images of the default
# ViT and the Fashion-MNIST Swin quantized with RepQ-ViT from 32 real
# training images (seeds 0 1 2 pick them), at W8A8, W4A4, W4A3, W3A3:
#   (1) the integer executor against the fake-quantized float executor of the
#       same quantized model (--executor int | fake);
#   (2) the folded zero point rounded to an integer (this version, integer
#       executor) against RepQ-ViT's fractional mean (0.3.0, the same
#       calibration otherwise: 0.4.0 was byte-identical to it).
#
#   sh examples/int_table.sh [WORKDIR] [OLD_SARDFQ]
#
# SARDFQ (environment): the sardfq to measure (default build/examples/sardfq).
# OLD_SARDFQ: a 0.3.0 build's sardfq (e.g. from `git worktree add
# ../sardfq-0.3.0 v0.3.0`, built as in README); without it, table (2) is
# skipped. Needs a release build in build/ and dataset-fashion-mnist.
# Prints markdown tables (mean +- sample standard deviation over the seeds).
# About 25 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
W=${1:-build/int_table}
OLD=${2:-}
S=${SARDFQ:-build/examples/sardfq}
DATA=/usr/share/datasets/fashion-mnist
SEEDS=${SEEDS:-"0 1 2"}
BITS=${BITS:-"8,8 4,4 4,3 3,3"}
MODELS=${MODELS:-"vit swin"}
mkdir -p "$W/train" "$W/results"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz; do
    [ -e "$W/train/$f" ] || ln -s "$DATA/$f" "$W/train/$f"
done
top1() { tail -n 1 | sed 's/.*top1=\([0-9.]*\).*/\1/'; }
for m in $MODELS; do
    M=examples/models/fmnist_$m.safetensors
    for wa in $BITS; do
        w=${wa%,*}; a=${wa#*,}
        for s in $SEEDS; do
            r=$W/results/$m.w${w}a$a.s$s
            [ -s "$r" ] && continue
            q=$W/$m.w${w}a$a.s$s.safetensors
            $S quantize --model "$M" --real "$W/train" --seed "$s" --wbits "$w" --abits "$a" --out "$q" >/dev/null 2>&1
            i=$($S eval --model "$q" --data "$DATA" --executor int 2>/dev/null | top1)
            f=$($S eval --model "$q" --data "$DATA" --executor fake 2>/dev/null | top1)
            o=-
            if [ -n "$OLD" ]; then
                "$OLD" quantize --model "$M" --real "$W/train" --seed "$s" --wbits "$w" --abits "$a" \
                    --out "$W/old.safetensors" >/dev/null 2>&1
                o=$("$OLD" eval --model "$W/old.safetensors" --data "$DATA" 2>/dev/null | top1)
            fi
            echo "$i $f $o" >"$r"
        done
    done
done
stats() { # column k of the seed files -> "mean +- std"
    for s in $SEEDS; do cut -d' ' -f"$2" "$1.s$s"; done | awk '
        $1 != "-" { x[n++] = $1 } END {
            if (n == 0) { print "-"; exit }
            for (i = 0; i < n; i++) m += x[i]; m /= n
            for (i = 0; i < n; i++) v += (x[i] - m) ^ 2; v = n > 1 ? sqrt(v / (n - 1)) : 0
            printf "%.2f ± %.2f", m, v }'
}
diffs() { # images where int and fake disagree in top-1 count, per seed
    for s in $SEEDS; do
        awk '{ printf "%+d ", ($1 - $2) * 100 }' "$1.s$s"
    done
}
echo "| model | bits | integer executor | fake-quantized float | int - fake (images, per seed) | 0.3.0 (fractional zero) |"
echo "|---|---|---|---|---|---|"
for m in $MODELS; do
    for wa in $BITS; do
        w=${wa%,*}; a=${wa#*,}
        b=$W/results/$m.w${w}a$a
        echo "| $m | W${w}A$a | $(stats "$b" 1) | $(stats "$b" 2) | $(diffs "$b")| $(stats "$b" 3) |"
    done
done
