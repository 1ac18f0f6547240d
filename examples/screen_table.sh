#!/bin/sh
# screen_table.sh - the calibration-sensitivity screen of README ("A
# benchmark on which calibration data matters"): for each model file, RepQ-ViT
# calibration only from 32 real training images and from 32 Gaussian-noise
# images (SEEDS, default 0 1 2), top-1 on the 10000 Fashion-MNIST test
# images at W4A4, W4A3 and W3A3, and one markdown row per model: FP top-1,
# training epochs and seconds (the file's metadata), real, noise and
# real - noise at each width (means over the seeds).
#
#   sh examples/screen_table.sh WORKDIR MODEL...
#
# Each model's runs go to WORKDIR/<model file name> (examples/quant_table.sh
# with SOURCES=noise; runs already there are reused). Needs a release build
# in build/ and the dataset-fashion-mnist package.
set -eu
cd "$(dirname "$0")/.."
W=$1
shift
BITS="4,4 4,3 3,3"
for m in "$@"; do
    d="$W/$(basename "$m" .safetensors)"
    MODEL=$m BITS="$BITS" SOURCES=noise SEEDS="${SEEDS:-0 1 2}" sh examples/quant_table.sh "$d" 0 >"$d.md" 2>"$d.log"
done
echo "| model | epochs | train s | FP | real W4A4 | noise W4A4 | real W4A3 | noise W4A3 | real W3A3 | noise W3A3 | real − noise (W4A4 / W4A3 / W3A3) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for m in "$@"; do
    d="$W/$(basename "$m" .safetensors)"
    meta() { build/examples/sardfq info "$m" | sed -n "s/^ *$1 *\(.*\)$/\1/p" | head -n 1; }
    fp=$(sed -n 's/^top1=\([0-9.]*\).*/\1/p' "$d/results/fp.txt")
    printf '| %s | %s | %s | %s |' "$(basename "$m")" "$(meta train_epochs)" "$(meta train_seconds)" "$fp"
    gaps=""
    for bits in $BITS; do
        tag="w${bits%,*}a${bits#*,}-r0-n32"
        r=$(cat "$d"/results/real-"$tag"-s*.txt | sed -n 's/^top1=\([0-9.]*\) .*/\1/p' | awk '{ s += $1 } END { printf "%.2f", s / NR }')
        z=$(cat "$d"/results/noise-"$tag"-s*.txt | sed -n 's/^top1=\([0-9.]*\) .*/\1/p' | awk '{ s += $1 } END { printf "%.2f", s / NR }')
        printf ' %s | %s |' "$r" "$z"
        gaps="$gaps${gaps:+ / }$(echo "$r $z" | awk '{ printf "%+.2f", $1 - $2 }')"
    done
    echo " $gaps |"
done
echo
echo "(\`SEEDS=\"${SEEDS:-0 1 2}\" sh examples/screen_table.sh $W $*\`)"
