"""Train a Fashion-MNIST ViT of a chosen shape: the candidates of the
calibration-sensitivity screen (README, "A benchmark on which calibration
data matters") and the benchmark model it selected.

Same data, augmentation, schedule, seed and evaluation as train_default.py
(whose training loop this uses); the shape and the regularisation are
options:

  /usr/bin/python3 tests/reference/train_bench.py --out FILE \\
      [--patch 4] [--dim 96] [--depth 4] [--heads 3] [--mlp-ratio 2] \\
      [--epochs 12] [--wd 0.05] [--label-smoothing 0.1] [--threads 1] [--seed 20250601]
  /usr/bin/python3 tests/reference/train_bench.py --stats MODEL   (statistics only)

After training it prints activation statistics on 500 test images and on
500 N(0, 1) noise images: per block, the largest |x| over the median |x| of
the residual stream entering the block, of the qkv output and of the fc1
output (pre-GELU), and the ratio of the noise range (max |x|) to the real
range for each of them, which is what decides how far a noise calibration
misplaces a quantizer's grid.

Writes FILE (F32, timm names, the metadata sardfq reads, the PyTorch test
count) and checks that the written file reproduces the count.
"""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import stio  # noqa: E402
import vit_ref  # noqa: E402
from train_default import evaluate, fit, init_params, load_split, parse_args, setup, MEAN_S, STD_S  # noqa: E402


def options(ap):
    ap.add_argument("--out")
    ap.add_argument("--stats", help="only print the activation statistics of this ViT file")
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--mlp-ratio", type=int, default=2)


def act_stats(P, cfg, x):
    """Per block: (max/median |x|) of the block input, the qkv output and
    the fc1 output, and their max |x|; float32, no grad."""
    D = cfg.embed_dim
    B = x.shape[0]
    tok = F.linear(vit_ref.patchify(x, cfg.patch), P["patch_embed.proj.weight"].reshape(D, -1),
                   P["patch_embed.proj.bias"])
    h = torch.cat([P["cls_token"].expand(B, 1, D), tok], dim=1) + P["pos_embed"]
    rows = []

    def st(t):
        a = t.abs().flatten()
        return float(a.max()), float(a.max() / a.median().clamp_min(1e-30))

    for i in range(cfg.depth):
        b = "blocks.%d." % i
        r_in = st(h)
        y = F.layer_norm(h, (D,), P[b + "norm1.weight"], P[b + "norm1.bias"], vit_ref.LN_EPS)
        qkv = st(F.linear(y, P[b + "attn.qkv.weight"], P[b + "attn.qkv.bias"]))
        a, _ = vit_ref.attention(y, P[b + "attn.qkv.weight"], P[b + "attn.qkv.bias"],
                                 P[b + "attn.proj.weight"], P[b + "attn.proj.bias"],
                                 cfg.num_heads, F.linear)
        h = h + a
        y = F.layer_norm(h, (D,), P[b + "norm2.weight"], P[b + "norm2.bias"], vit_ref.LN_EPS)
        f1 = F.linear(y, P[b + "mlp.fc1.weight"], P[b + "mlp.fc1.bias"])
        fc1 = st(f1)
        h = h + F.linear(F.gelu(f1), P[b + "mlp.fc2.weight"], P[b + "mlp.fc2.bias"])
        rows.append((r_in, qkv, fc1))
    return rows


def report_stats(P, cfg, xte):
    P = {k: v.detach() for k, v in P.items()}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        real = act_stats(P, cfg, xte[:500])
        noise = act_stats(P, cfg, torch.randn(xte[:500].shape, generator=g))
    print("activation statistics (500 test images / 500 N(0,1) images):")
    print("block | max/median: resid-in qkv fc1 (real) | noise max / real max: resid-in qkv fc1")
    for i, (r, n) in enumerate(zip(real, noise)):
        print("%5d | %7.1f %7.1f %7.1f | %6.2f %6.2f %6.2f" % (
            i, r[0][1], r[1][1], r[2][1], n[0][0] / r[0][0], n[1][0] / r[1][0], n[2][0] / r[2][0]))


def main():
    args = parse_args(12, options)
    if args.stats:
        P, meta, _ = stio.load(args.stats)
        img, p, D = int(meta["img_size"]), int(meta["patch_size"]), int(meta["embed_dim"])
        cfg = vit_ref.ViTConfig(img, img, p, 1, D, int(meta["depth"]), int(meta["num_heads"]),
                                D * int(meta["mlp_ratio"]), int(meta["num_classes"]))
        torch.set_num_threads(args.threads)
        report_stats(P, cfg, load_split("t10k")[0])
        return
    if not args.out:
        raise SystemExit("train_bench.py: --out FILE is required (or --stats MODEL)")
    g, xtr, ytr, xte, yte, pad_value = setup(args)
    img = xtr.shape[-1]
    cfg = vit_ref.ViTConfig(img, img, args.patch, 1, args.dim, args.depth, args.heads,
                            args.dim * args.mlp_ratio, 10)
    model = vit_ref.ViTModule(cfg, init_params(cfg, g), fast=True)
    nparam = sum(p.numel() for p in model.parameters())
    print("model: patch %d dim %d depth %d heads %d mlp %d (%d tokens), %d parameters; "
          "epochs %d wd %g label smoothing %g" % (
              args.patch, args.dim, args.depth, args.heads, args.dim * args.mlp_ratio,
              cfg.num_tokens, nparam, args.epochs, args.wd, args.label_smoothing), flush=True)
    train_time = fit(model, xtr, ytr, xte, yte, args, g, pad_value,
                     lambda n, p: p.ndim >= 2 and "pos_embed" not in n and "cls_token" not in n,
                     lambda out: out[0], evaluate)
    if train_time is None:
        return
    correct, correct5, min_margin = evaluate(model, xte, yte, batch=500)
    ntest = xte.shape[0]
    top1 = 100.0 * correct / ntest
    meta = {
        "arch": "vit", "img_size": str(img), "patch_size": str(args.patch), "in_chans": "1",
        "embed_dim": str(args.dim), "depth": str(args.depth), "num_heads": str(args.heads),
        "mlp_ratio": str(args.mlp_ratio), "num_classes": "10", "mean": MEAN_S, "std": STD_S,
        "crop_pct": "1.0",
        "test_top1": "%.2f" % top1, "test_top5": "%.2f" % (100.0 * correct5 / ntest),
        "test_correct": "%d" % correct, "test_n": "%d" % ntest,
        "test_min_margin": "%.6g" % min_margin,
        "train_epochs": "%d" % args.epochs, "train_seed": "%d" % args.seed,
        "train_wd": "%g" % args.wd, "train_label_smoothing": "%g" % args.label_smoothing,
        "train_seconds": "%.0f" % train_time,
        "trained_by": "tests/reference/train_bench.py",
    }
    sd = model.timm_state_dict()
    size = stio.save(args.out, sd, meta, "F32")
    back, meta_back, _ = stio.load(args.out)
    c2, _, _ = evaluate(vit_ref.ViTModule(cfg, back), xte, yte, batch=500)
    assert c2 == correct and meta_back == meta
    report_stats(model.params(), cfg, xte)
    print("training time %.1fs (%.1f min), %d epochs" % (train_time, train_time / 60, args.epochs))
    print("wrote %s (%d bytes)" % (args.out, size))
    print("FINAL test top1 %.2f%% correct %d/%d min_margin %.6g" % (top1, correct, ntest, min_margin))


if __name__ == "__main__":
    main()
