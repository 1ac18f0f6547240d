"""Train a small Swin Transformer on Fashion-MNIST (the Swin example model).

Architecture: torchvision's SwinTransformer (v1) used as a library, with a
1-channel patch embedding: 28x28 input, patch 2 -> 14x14 grid, embed_dim 48,
depths (2, 4), heads (3, 6), window 7, mlp ratio 4, 10 classes, LayerNorm
eps 1e-5, exact-erf GELU, stochastic depth 0.1 (training only).
  stage 0: 14x14 tokens, dim 48, 2x2 windows of 7x7; odd blocks shifted by 3
           (cyclic roll, masked with -100 across shifted regions)
  patch merging: 2x2 neighbours concatenated [(0,0),(1,0),(0,1),(1,1)]
           as (row, col) offsets -> LN(192) -> linear 192->96, no bias
  stage 1: 7x7 tokens, dim 96, one window, no shift (window >= feature map)
  final LN, global average pool over tokens, linear head.
Input normalisation: x = (pixel/255 - 0.2860) / 0.3530.
Training: as train_default.py (AdamW + linear warm-up then cosine, random
crop (pad 2) and horizontal flip, label smoothing, grad clip, fixed seed,
float32, 1 thread by default (--threads)).
Evaluation: 10000 test images, float32, batch 500, argmax of the logits.

Writes examples/models/fmnist_swin.safetensors (F32, current timm names,
metadata). After writing, the file is read back, converted to torchvision
names by swin_ref.py's converter and checked to give identical logits.

  /usr/bin/python3 tests/reference/train_swin.py [--epochs N] [--time-steps K]

--time-steps K only times K training steps and exits (nothing is written).
"""
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import stio  # noqa: E402
import swin_ref  # noqa: E402
from train_default import evaluate as evaluate_model, fit, parse_args, setup, MEAN_S, STD_S  # noqa: E402

from torchvision.models.swin_transformer import SwinTransformer  # noqa: E402

OUT = os.path.join(ROOT, "examples", "models", "fmnist_swin.safetensors")

IMG = 28
PATCH = 2
IN_CHANS = 1
EMBED_DIM = 48
DEPTHS = [2, 4]
NUM_HEADS = [3, 6]
WINDOW = 7
MLP_RATIO = 4.0
NUM_CLASSES = 10
LN_EPS = 1e-5


def build_model(stochastic_depth_prob=0.1):
    """torchvision Swin with a 1-channel patch embedding."""
    m = SwinTransformer(patch_size=[PATCH, PATCH], embed_dim=EMBED_DIM,
                        depths=DEPTHS, num_heads=NUM_HEADS,
                        window_size=[WINDOW, WINDOW], mlp_ratio=MLP_RATIO,
                        num_classes=NUM_CLASSES,
                        stochastic_depth_prob=stochastic_depth_prob)
    m.features[0][0] = nn.Conv2d(IN_CHANS, EMBED_DIM, kernel_size=PATCH, stride=PATCH)
    # the exported model must use LayerNorm eps 1e-5 everywhere
    for name, mod in m.named_modules():
        if isinstance(mod, nn.LayerNorm):
            assert mod.eps == LN_EPS, (name, mod.eps)
    return m


# torchvision -> timm names ------------------------------------------------
#   features.0.0.*                    -> patch_embed.proj.*
#   features.0.2.*                    -> patch_embed.norm.*
#   features.(2s+1).b.norm1|norm2     -> layers.s.blocks.b.norm1|norm2
#   features.(2s+1).b.attn.qkv|proj|relative_position_bias_table
#                                     -> layers.s.blocks.b.attn.(same)
#   features.(2s+1).b.mlp.0|3         -> layers.s.blocks.b.mlp.fc1|fc2
#   features.(2s).norm|reduction (s>=1) -> layers.s.downsample.norm|reduction
#   norm.*                            -> norm.*
#   head.*                            -> head.fc.*
#   *.relative_position_index         -> dropped (a fixed function of the window)

def timm_state_dict(model):
    """The trained model's tensors under current timm names (swin_ref's
    converter; torchvision's index buffers dropped)."""
    return {k: v.detach().clone().float().contiguous()
            for k, v in swin_ref.torchvision_to_timm(model.state_dict()).items()}


def model_from_timm(sd):
    """Rebuild a torchvision model from timm-named tensors (buffers such as
    relative_position_index come from the constructor)."""
    m = build_model(stochastic_depth_prob=0.0)
    tv = swin_ref.timm_to_torchvision(sd, None, int_buffers=False)
    missing, unexpected = m.load_state_dict(tv, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("relative_position_index") for k in missing), missing
    return m.eval()


def evaluate(model, x, y, batch=500, return_logits=False):
    """train_default.evaluate for a model that returns the logits alone."""
    return evaluate_model(model, x, y, batch, lambda out: out, return_logits)


def main():
    args = parse_args(4)
    g, xtr, ytr, xte, yte, pad_value = setup(args)

    model = build_model(stochastic_depth_prob=0.1)
    nparam = sum(p.numel() for p in model.parameters())
    print("model: swin 1x%dx%d patch %d dim %d depths %s heads %s window %d, %d parameters" % (
        IMG, IMG, PATCH, EMBED_DIM, DEPTHS, NUM_HEADS, WINDOW, nparam), flush=True)

    train_time = fit(model, xtr, ytr, xte, yte, args, g, pad_value,
                     lambda n, p: p.ndim >= 2 and "relative_position_bias_table" not in n,
                     lambda out: out, evaluate)
    if train_time is None:
        return

    # final evaluation in float32 eval mode, batch 500
    correct, correct5, min_margin, logits_tv = evaluate(model, xte, yte, batch=500,
                                                        return_logits=True)
    ntest = xte.shape[0]
    top1 = 100.0 * correct / ntest
    top5 = 100.0 * correct5 / ntest
    meta = {
        "arch": "swin", "img_size": str(IMG), "patch_size": str(PATCH),
        "in_chans": str(IN_CHANS), "embed_dim": str(EMBED_DIM),
        "depths": ",".join(str(d) for d in DEPTHS),
        "num_heads": ",".join(str(h) for h in NUM_HEADS),
        "window_size": str(WINDOW), "mlp_ratio": "4",
        "num_classes": str(NUM_CLASSES), "mean": MEAN_S, "std": STD_S,
        "crop_pct": "1.0", "ln_eps": "1e-5",
        "test_top1": "%.2f" % top1, "test_top5": "%.2f" % top5,
        "test_correct": "%d" % correct, "test_n": "%d" % ntest,
        "test_min_margin": "%.6g" % min_margin,
        "train_epochs": "%d" % args.epochs, "train_seed": "%d" % args.seed,
        "trained_by": "tests/reference/train_swin.py",
    }
    sd = timm_state_dict(model)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    size = stio.save(OUT, sd, meta, "F32")

    # round trip: file -> timm names -> own converter -> torchvision model
    back, meta_back, dtypes = stio.load(OUT)
    assert meta_back == meta and set(dtypes.values()) == {"F32"}
    assert list(back.keys()) == list(sd.keys())
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
    m2 = model_from_timm(back)
    c2, _, mm2, logits2 = evaluate(m2, xte, yte, batch=500, return_logits=True)
    assert c2 == correct and mm2 == min_margin
    assert torch.equal(logits2, logits_tv), "round-trip logits differ"
    # name maps are inverse to each other on the whole state dict
    named = {k: v for k, v in model.state_dict().items() if not k.endswith("relative_position_index")}
    assert list(swin_ref.timm_to_torchvision(swin_ref.torchvision_to_timm(named), None, int_buffers=False)) == list(named)
    print("round trip: %d tensors, logits identical on %d test images" % (len(back), ntest))
    print("training time %.1fs (%.1f min), %d epochs" % (train_time, train_time / 60, args.epochs))
    print("wrote %s (%d bytes, %d parameters)" % (OUT, size, sum(v.numel() for v in sd.values())))
    print("FINAL test top1 %.2f%% top5 %.2f%% correct %d/%d min_margin %.6g" % (
        top1, top5, correct, ntest, min_margin))


if __name__ == "__main__":
    main()
