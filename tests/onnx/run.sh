#!/bin/sh
# run.sh - the onnx suite (meson test --suite onnx): every exported file
# passes ONNX's checker, and ONNX Runtime (onnxruntime-node, pinned in
# tests/onnx/package.json, installed by `npm ci` here) computes what the
# library computes.
#
#   sh tests/onnx/run.sh BUILD_DIR
#
# 1. FP32, against the PyTorch goldens of tests/reference (ViT timm and
#    torchvision, grey and RGB, non-square, F16/BF16 files, distilled DeiT,
#    Swin timm/old timm/torchvision, non-square and clipped windows).
# 2. FP32 default ViT and Swin on the 10000 Fashion-MNIST test images,
#    against the library's forward (one of them with a fixed batch).
# 3. Quantized: the default ViT and Swin at W8A8, W4A4, W3A3 (RepQ-ViT),
#    min/max W8A8 ViT and W4A4 Swin, calibrated on 32 training images, on
#    the 10000 test images; a W4A4 distilled DeiT on noise images.
# 4. Flavor ort: ONNX Runtime's optimized graph (ort_optimized) runs every
#    quantized product of the model (sardfq info's count) on integer
#    kernels, and its top-1 stays within 0.5 points of the library's.
# Limits and the measured errors: README.md, "ONNX export".
set -u
B=$1
S=$B/examples/sardfq
DUMP=$B/tests/onnx/dump_logits
ORTOPT=$B/tests/onnx/ort_optimized
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ORTLIB=$HERE/node_modules/onnxruntime-node/bin/napi-v3/linux/x64/libonnxruntime.so.1
DATA=/usr/share/datasets/fashion-mnist
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0

# A build without ONNX support exports nothing: skip.
if $S export --model "$ROOT/tests/data/tv_vit.model.safetensors" --onnx "$T/probe.onnx" 2>"$T/probe.err" >/dev/null; then
    :
elif grep -q "without ONNX" "$T/probe.err"; then
    echo "onnx: this build has no ONNX export (meson feature onnx)"
    exit 77
else
    cat "$T/probe.err"
    exit 1
fi
if [ ! -d "$HERE/node_modules/onnxruntime-node" ]; then
    echo "onnx: ONNX Runtime missing: run 'npm ci --ignore-scripts --prefix tests/onnx' (README, Quick start)" >&2
    exit 1
fi
# Debian's python3-onnx is a module of the system python3 (another python3
# may come first on PATH)
PY=
for p in python3 /usr/bin/python3; do
    if "$p" -c "import onnx" 2>/dev/null; then
        PY=$p
        break
    fi
done
[ -n "$PY" ] || { echo "onnx: python3-onnx missing (apt-get install python3-onnx)" >&2; exit 1; }

run() { # label, command...: runs it, prints the label and its last line, counts failures
    label=$1
    shift
    if out=$("$@" 2>&1); then
        echo "ok   $label: $(echo "$out" | tail -n 1)"
    else
        echo "FAIL $label:"
        echo "$out" | sed 's/^/    /'
        fail=1
    fi
}

export_check() { # model, out, metadata checks... (the model may be followed by --heads N)
    m=$1 o=$2
    shift 2
    extra=""
    if [ "${1:-}" = "--heads" ]; then
        extra="--heads $2"
        shift 2
    fi
    # shellcheck disable=SC2086
    run "export $(basename "$m")" $S export --model "$m" --onnx "$o" $extra &&
        run "checker $(basename "$o")" "$PY" "$HERE/check.py" "$o" "$@"
}

# 1. FP32 against PyTorch
for f in tv_vit vit_p16_rgb vit_f16 vit_bf16 deit_distilled swin_b swin_c swin_a.timm swin_a.timm_old swin_a.tv; do
    g=${f%%.*}
    export_check "$ROOT/tests/data/$f.model.safetensors" "$T/$f.onnx"
    run "fp32 $f vs pytorch" node "$HERE/compare.js" --golden "$T/$f.onnx" "$ROOT/tests/data/$g.golden.safetensors" 4e-6
done
export_check "$ROOT/tests/data/vit_p4_gray_nometa.model.safetensors" "$T/gray.onnx" --heads 3
run "fp32 vit_p4_gray_nometa vs pytorch" node "$HERE/compare.js" --golden "$T/gray.onnx" \
    "$ROOT/tests/data/vit_p4_gray_nometa.golden.safetensors" 4e-6

# 2. FP32 default models on the test set
for m in vit swin; do
    M=$ROOT/examples/models/fmnist_$m.safetensors
    batch=""
    [ $m = vit ] && batch="--batch 250"
    # shellcheck disable=SC2086
    run "export fmnist_$m $batch" $S export --model "$M" --onnx "$T/$m.onnx" $batch &&
        run "checker fmnist_$m" "$PY" "$HERE/check.py" "$T/$m.onnx" arch=$m
    run "dump fmnist_$m" "$DUMP" "$M" "$DATA" 10000 "$T/x.f32" "$T/l.f32" "$T/y.i32"
    run "fp32 fmnist_$m vs library" node "$HERE/compare.js" "$T/$m.onnx" "$T/x.f32" "$T/l.f32" "$T/y.i32" \
        1 28 28 10 3e-5 100 100
done

# 3. Quantized
mkdir -p "$T/train"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz; do ln -s "$DATA/$f" "$T/train/$f"; done
for cfg in vit:repq:8:8 vit:repq:4:4 vit:repq:3:3 swin:repq:8:8 swin:repq:4:4 swin:repq:3:3 vit:minmax:8:8 \
    swin:minmax:4:4; do
    IFS=: read -r m sch w a <<EOC
$cfg
EOC
    q=$T/q_${m}_${sch}_w${w}a$a
    run "quantize $cfg" $S quantize --model "$ROOT/examples/models/fmnist_$m.safetensors" --real "$T/train" \
        --scheme "$sch" --wbits "$w" --abits "$a" --out "$q.safetensors" &&
        run "export $cfg" $S export --model "$q.safetensors" --onnx "$q.onnx" &&
        run "checker $cfg" "$PY" "$HERE/check.py" "$q.onnx" arch=$m quant_scheme=$sch weight_bits=$w act_bits=$a &&
        run "dump $cfg" "$DUMP" "$q.safetensors" "$DATA" 10000 "$T/x.f32" "$T/l.f32" "$T/y.i32" &&
        run "quantized $cfg vs library" node "$HERE/compare.js" "$q.onnx" "$T/x.f32" "$T/l.f32" "$T/y.i32" \
            1 28 28 10 1e-3 50 99.9
done

# 4. Flavor ort (the models of 3, still in $T)
for cfg in vit:repq:8:8 vit:repq:4:4 swin:repq:4:4; do
    IFS=: read -r m sch w a <<EOC
$cfg
EOC
    q=$T/q_${m}_${sch}_w${w}a$a
    total=$($S info "$q.safetensors" | sed -n 's/.*executor int: \([0-9]*\) ops on integer kernels, \([0-9]*\) in float.*/\1 \2/p' |
        awk '{ print $1 + $2 }')
    run "export --flavor ort $cfg" $S export --model "$q.safetensors" --onnx "$q.ort.onnx" --flavor ort &&
        run "checker ort $cfg" "$PY" "$HERE/check.py" "$q.ort.onnx" arch=$m &&
        run "optimize ort $cfg" "$ORTOPT" "$ORTLIB" "$q.ort.onnx" "$q.opt.onnx" &&
        run "fused ort $cfg" "$PY" "$HERE/check.py" --fused "$q.opt.onnx" "$total" &&
        run "dump $cfg" "$DUMP" "$q.safetensors" "$DATA" 10000 "$T/x.f32" "$T/l.f32" "$T/y.i32" &&
        run "ort $cfg vs library" node "$HERE/compare.js" "$q.ort.onnx" "$T/x.f32" "$T/l.f32" "$T/y.i32" \
            1 28 28 10 1e-3 0 95 0.5
done

q=$T/q_deit
run "quantize deit_distilled w4a4 (noise)" $S quantize --model "$ROOT/tests/data/deit_distilled.model.safetensors" \
    --synth noise --wbits 4 --abits 4 --out "$q.safetensors" &&
    run "export deit_distilled w4a4" $S export --model "$q.safetensors" --onnx "$q.onnx" &&
    run "checker deit_distilled w4a4" "$PY" "$HERE/check.py" "$q.onnx" arch=deit_distilled &&
    run "dump deit_distilled w4a4" "$DUMP" "$q.safetensors" random 1000 "$T/x.f32" "$T/l.f32" "$T/y.i32" &&
    run "quantized deit_distilled w4a4 vs library" node "$HERE/compare.js" "$q.onnx" "$T/x.f32" "$T/l.f32" \
        "$T/y.i32" 3 32 32 10 1e-3 50 99.9
exit $fail
