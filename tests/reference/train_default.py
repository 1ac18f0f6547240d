"""Train libsardfq's default model: a small ViT on Fashion-MNIST.

Architecture (vit_ref semantics, timm names): 1 channel, 28x28, patch 4
(7x7 grid, 50 tokens), D=96, depth 4, 3 heads, mlp hidden 192, 10 classes.
Input normalisation: x = (pixel/255 - 0.2860) / 0.3530.
Training: AdamW + linear warm-up then cosine, random crop (pad 2) and
horizontal flip, fixed seed (--seed, default 20250601), float32, 1 thread
(--threads).
Evaluation: 10000 test images, float32, batch 500, argmax of the logits.

Writes examples/models/fmnist_vit.safetensors (F32, timm names, metadata).

  /usr/bin/python3 tests/reference/train_default.py [--epochs N] [--time-steps K]

--time-steps K only times K training steps and exits (nothing is written).
"""
import argparse
import gzip
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import stio  # noqa: E402
import vit_ref  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
OUT = os.path.join(ROOT, "examples", "models", "fmnist_vit.safetensors")
MEAN_S, STD_S = "0.2860", "0.3530"
SEED = 20250601


def read_idx(path):
    """Parse an IDX file (gzip): magic 0x00 0x00 dtype ndim, big-endian u32
    dims, then the data."""
    with gzip.open(path, "rb") as f:
        buf = f.read()
    if buf[0] != 0 or buf[1] != 0 or buf[2] != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    ndim = buf[3]
    dims = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    a = np.frombuffer(buf, dtype=np.uint8, offset=off)
    if a.size != int(np.prod(dims)):
        raise ValueError("%s: size mismatch" % path)
    return a.reshape(dims)


def load_split(split):
    x = read_idx(os.path.join(DATA, "%s-images-idx3-ubyte.gz" % split))
    y = read_idx(os.path.join(DATA, "%s-labels-idx1-ubyte.gz" % split))
    mean, std = float(MEAN_S), float(STD_S)
    xt = (torch.from_numpy(x.astype(np.float32)) / 255.0 - mean) / std
    return xt.unsqueeze(1).contiguous(), torch.from_numpy(y.astype(np.int64))


def augment(x, g, pad_value, p=1.0):
    """Random crop with padding 2 and horizontal flip, per image; each is
    applied to an image with probability p (flip: p/2)."""
    B, C, H, W = x.shape
    xp = torch.full((B, C, H + 4, W + 4), pad_value, dtype=x.dtype)
    xp[:, :, 2:2 + H, 2:2 + W] = x
    dy = torch.randint(0, 5, (B,), generator=g)
    dx = torch.randint(0, 5, (B,), generator=g)
    if p < 1.0:                                   # (no extra draw at p=1)
        keep = torch.rand(B, generator=g) >= p    # no crop: centre offset
        dy[keep] = 2
        dx[keep] = 2
    rows = dy[:, None] + torch.arange(H)[None, :]          # [B, H]
    cols = dx[:, None] + torch.arange(W)[None, :]          # [B, W]
    bi = torch.arange(B)[:, None, None]
    out = xp[bi, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
    flip = torch.rand(B, generator=g) < 0.5 * p
    out[flip] = out[flip].flip(-1)
    return out.contiguous()


def make_config():
    return vit_ref.ViTConfig(28, 28, 4, 1, 96, 4, 3, 192, 10)


def init_params(cfg, g):
    """Standard ViT-style init (trunc-normal-like std 0.02 for linears and
    tokens, LN identity, zero biases)."""
    p = {}
    for name, shape in vit_ref.param_shapes(cfg).items():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") \
                or name == "norm.weight":
            t = torch.ones(shape)
        elif name.endswith(".bias"):
            t = torch.zeros(shape)
        elif name == "patch_embed.proj.weight":
            fan_in = shape[1] * shape[2] * shape[3]
            t = torch.randn(shape, generator=g) * math.sqrt(1.0 / fan_in)
        else:
            t = (torch.randn(shape, generator=g) * 0.02).clamp_(-0.04, 0.04)
        p[name] = t.float()
    return p


def evaluate(model, x, y, batch=500, logits_of=lambda out: out[0], return_logits=False):
    """Top-1 and top-5 counts and the smallest top-1/top-2 logit gap of the
    model on (x, y), in eval mode; logits_of picks the logits from the
    model's output (ViTModule returns (logits, attention)); with
    return_logits also all logits."""
    model.eval()
    correct = correct5 = 0
    min_margin = float("inf")
    all_logits = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            logits = logits_of(model(x[i:i + batch]))
            top = logits.topk(5, dim=1)
            pred = logits.argmax(dim=1)
            correct += int((pred == y[i:i + batch]).sum())
            correct5 += int((top.indices == y[i:i + batch, None]).any(1).sum())
            margin = top.values[:, 0] - top.values[:, 1]
            min_margin = min(min_margin, float(margin.min()))
            if return_logits:
                all_logits.append(logits)
    if return_logits:
        return correct, correct5, min_margin, torch.cat(all_logits)
    return correct, correct5, min_margin


def fit(model, xtr, ytr, xte, yte, args, g, pad_value, is_decay, logits_of, evaluate_fn):
    """AdamW (weight decay on the parameters is_decay(name, p) selects),
    linear warm-up then cosine, the training loop with augmentation, label
    smoothing and gradient clipping at 1; prints progress and the test
    top-1 after each epoch. Returns the training time, or None after
    --time-steps steps. Shared by train_default.py and train_swin.py."""
    decay = [p for n, p in model.named_parameters() if is_decay(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not is_decay(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999))
    n = xtr.shape[0]
    steps_per_epoch = n // args.batch            # drop the last partial batch
    total = steps_per_epoch * args.epochs
    warm = int(args.warmup_epochs * steps_per_epoch)

    def lr_at(s):
        if s < warm:
            return args.lr * (s + 1) / warm
        return 0.5 * args.lr * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))

    step = 0
    t_train = time.time()
    for ep in range(args.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        te = time.time()
        run_loss = run_acc = 0.0
        for bi in range(steps_per_epoch):
            idx = perm[bi * args.batch:(bi + 1) * args.batch]
            xb = augment(xtr[idx], g, pad_value, args.aug_p)
            yb = ytr[idx]
            for grp in opt.param_groups:
                grp["lr"] = lr_at(step)
            logits = logits_of(model(xb))
            loss = torch.nn.functional.cross_entropy(logits, yb, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            run_loss += float(loss)
            run_acc += float((logits.argmax(1) == yb).float().mean())
            if args.time_steps and step == args.time_steps:
                dt = time.time() - te
                print("%d steps in %.1fs -> %.1fs/epoch (%d steps/epoch)" % (
                    step, dt, dt / step * steps_per_epoch, steps_per_epoch))
                return None
            if (bi + 1) % 100 == 0:
                print("  ep %d step %d/%d loss %.4f acc %.4f lr %.2e (%.0fs)" % (
                    ep + 1, bi + 1, steps_per_epoch, run_loss / (bi + 1),
                    run_acc / (bi + 1), lr_at(step), time.time() - te), flush=True)
        c = evaluate_fn(model, xte, yte)[0]
        print("epoch %d: train loss %.4f acc %.4f | test top1 %.2f%% (%.0fs, total %.0fs)" % (
            ep + 1, run_loss / steps_per_epoch, run_acc / steps_per_epoch,
            100.0 * c / xte.shape[0], time.time() - te, time.time() - t_train), flush=True)
    return time.time() - t_train


def parse_args(epochs, extra=None):
    """The trainers' command line (--epochs defaults to `epochs`); extra(ap)
    may add a trainer's own options."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=0.5)
    ap.add_argument("--aug-p", type=float, default=1.0)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--time-steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=SEED,
                    help="training seed (initialisation, batch order, augmentation)")
    if extra is not None:
        extra(ap)
    return ap.parse_args()


def setup(args):
    """Threads, seeds and the data: (generator, xtr, ytr, xte, yte,
    normalised value of a black pixel)."""
    # 1 thread: on this shared 2-core machine 2 threads were ~2x slower
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    xtr, ytr = load_split("train")
    xte, yte = load_split("t10k")
    print("data: train %s test %s (%.1fs)" % (tuple(xtr.shape), tuple(xte.shape),
                                             time.time() - t0), flush=True)
    return g, xtr, ytr, xte, yte, (0.0 - float(MEAN_S)) / float(STD_S)


def main():
    args = parse_args(12)
    g, xtr, ytr, xte, yte, pad_value = setup(args)

    cfg = make_config()
    model = vit_ref.ViTModule(cfg, init_params(cfg, g), fast=True)
    nparam = sum(p.numel() for p in model.parameters())
    print("model: %r, %d parameters" % (cfg, nparam), flush=True)
    train_time = fit(model, xtr, ytr, xte, yte, args, g, pad_value,
                     lambda n, p: p.ndim >= 2 and "pos_embed" not in n and "cls_token" not in n,
                     lambda out: out[0], evaluate)
    if train_time is None:
        return

    # final evaluation in float32 eval mode, batch 500
    correct, correct5, min_margin = evaluate(model, xte, yte, batch=500)
    ntest = xte.shape[0]
    top1 = 100.0 * correct / ntest
    top5 = 100.0 * correct5 / ntest
    meta = {
        "arch": "vit", "img_size": "28", "patch_size": "4", "in_chans": "1",
        "embed_dim": "96", "depth": "4", "num_heads": "3", "mlp_ratio": "2",
        "num_classes": "10", "mean": MEAN_S, "std": STD_S, "crop_pct": "1.0",
        "test_top1": "%.2f" % top1, "test_top5": "%.2f" % top5,
        "test_correct": "%d" % correct, "test_n": "%d" % ntest,
        "test_min_margin": "%.6g" % min_margin,
        "train_epochs": "%d" % args.epochs, "train_seed": "%d" % args.seed,
        "trained_by": "tests/reference/train_default.py",
    }
    sd = model.timm_state_dict()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    size = stio.save(OUT, sd, meta, "F32")
    # check the written file reproduces the count
    back, meta_back, _ = stio.load(OUT)
    m2 = vit_ref.ViTModule(cfg, back)
    c2, _, _ = evaluate(m2, xte, yte, batch=500)
    assert c2 == correct and meta_back == meta
    print("training time %.1fs (%.1f min), %d epochs" % (train_time, train_time / 60, args.epochs))
    print("wrote %s (%d bytes)" % (OUT, size))
    print("FINAL test top1 %.2f%% top5 %.2f%% correct %d/%d min_margin %.6g" % (
        top1, top5, correct, ntest, min_margin))


if __name__ == "__main__":
    main()
