#!/bin/sh
# apa_alpha_swin.sh - the APA-weight ablation on the Fashion-MNIST Swin
# behind README's choice of --alpha for Swin: SARDFQ synthesis (seed 0, 32
# images, 300 steps, 1 thread) with alpha 100 (the library default, tuned on
# the ViT), 10, 1 and without APA, then RepQ-ViT W8A8 and W4A4 calibrated on
# each set, top-1 on the 10000 test images. Two runs at a time; about 10
# minutes on 2 cores.
#   sh examples/apa_alpha_swin.sh [WORKDIR]   (default build/apa_alpha_swin)
set -eu
cd "$(dirname "$0")/.."
W=${1:-build/apa_alpha_swin}
S=build/examples/sardfq
M=examples/models/fmnist_swin.safetensors
D=/usr/share/datasets/fashion-mnist
mkdir -p "$W"
run() { # tag, synth options
    tag=$1
    shift
    [ -s "$W/$tag.w4a4" ] && return 0
    $S synth --model $M --out "$W/$tag" --seed 0 --iters 300 --threads 1 "$@" 2>/dev/null | tail -n 1 >"$W/$tag.synth"
    for b in 8 4; do
        $S quantize --model $M --calib "$W/$tag/calib.safetensors" --wbits $b --abits $b --threads 1 \
            --eval $D 2>/dev/null | tail -n 1 >"$W/$tag.w${b}a${b}"
    done
}
run a100 --alpha 100 &
run a10 --alpha 10
wait
run a1 --alpha 1 &
run noapa --no-apa
wait
echo "| APA weight | W8A8 | W4A4 |"
echo "|---|---:|---:|"
for tag in a100 a10 a1 noapa; do
    case $tag in noapa) label="no APA" ;; *) label="α = ${tag#a}" ;; esac
    printf '| %s | %s | %s |\n' "$label" "$(sed -n 's/.*q_top1=\([0-9.]*\).*/\1/p' "$W/$tag.w8a8")" \
        "$(sed -n 's/.*q_top1=\([0-9.]*\).*/\1/p' "$W/$tag.w4a4")"
done
echo
echo "(\`sh examples/apa_alpha_swin.sh $W\`; FP $(sed -n 's/.*fp_top1=\([0-9.]*\).*/\1/p' "$W/a100.w8a8"))"
