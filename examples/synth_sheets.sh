#!/bin/sh
# Contact sheets of the synthetic images shown in the README: noise, PSAQ-ViT
# and SARDFQ on the default model, 32 images, 1000 steps, seed 0 (the same
# images as the first rows of examples/synth_tables.sh: generation is
# deterministic for a seed and a thread count). Writes examples/sheets/*.png.
# Usage: sh examples/synth_sheets.sh [BUILD_DIR]
build=${1:-build}
cli="$build/examples/sardfq"
[ -x "$cli" ] || { echo "synth_sheets.sh: build first ($cli missing)" >&2; exit 1; }
tmp=$(mktemp -d) || exit 1
mkdir -p examples/sheets
for method in noise psaq sardfq; do
    "$cli" synth --model examples/models/fmnist_vit.safetensors --method "$method" --seed 0 \
        --out "$tmp/$method" 2>/dev/null | tail -n 1 || exit 1
    cp "$tmp/$method/sheet.png" "examples/sheets/$method.png"
done
rm -rf "$tmp"
