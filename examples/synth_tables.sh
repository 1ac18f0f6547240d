#!/bin/sh
# Produces the README synthesis tables on the default model (Fashion-MNIST
# ViT) with `sardfq semantics`: 32 images, 1000 steps, seed 0.
#   1. every method and SARDFQ ablation (APA weight alpha = 100, the default);
#   2. the APA weight alpha (SARDFQ without MSR, so that APA's effect shows);
#   3. the prior: GMM with K = 5 (default), GMM K = 1, Laplace K = 5.
# Usage: sh examples/synth_tables.sh [BUILD_DIR] [ITERS]
build=${1:-build}
iters=${2:-1000}
cli="$build/examples/sardfq"
model=examples/models/fmnist_vit.safetensors
data=/usr/share/datasets/fashion-mnist
[ -x "$cli" ] || { echo "synth_tables.sh: build first ($cli missing)" >&2; exit 1; }
run() { "$cli" semantics --model "$model" --data "$data" --iters "$iters" "$@" 2>/dev/null; }

echo "### Methods and ablations (alpha = 100)"
run | grep '^|'
echo
echo "### APA weight alpha (sardfq-no-msr)"
echo "| alpha | seconds | FP arg-max = target class | FP arg-max among the image's target classes | cosine to real class mean |"
echo "|---|---:|---:|---:|---:|"
for a in 0 30 100 300 1000 10000; do
    run --only sardfq-no-msr --alpha "$a" | grep '^| sardfq' | sed "s/^| sardfq-no-msr /| $a /"
done
echo
echo "### Prior (sardfq)"
echo "| prior | seconds | FP arg-max = target class | FP arg-max among the image's target classes | cosine to real class mean |"
echo "|---|---:|---:|---:|---:|"
run --only sardfq --prior gmm --prior-k 5 | grep '^| sardfq' | sed 's/^| sardfq /| GMM, K = 5 /'
run --only sardfq --prior gmm --prior-k 1 | grep '^| sardfq' | sed 's/^| sardfq /| GMM, K = 1 /'
run --only sardfq --prior laplace --prior-k 5 | grep '^| sardfq' | sed 's/^| sardfq /| Laplace, K = 5 /'
