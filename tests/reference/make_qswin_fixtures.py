"""Golden fixtures for whole-model post-training quantization of the
Fashion-MNIST Swin Transformer (examples/models/fmnist_swin.safetensors).

Independent float32 PyTorch reference built on swin_ref.py (LayerNorm eps
1e-5, GELU, linear, patchify, window partition / reverse, cyclic shift,
relative position bias, shifted-window mask, patch merging),
make_quant_fixtures.py (RepQ-ViT uniform / log-sqrt2 searches and
fake-quant) and train_default.py (IDX reader, normalisation).

Model: 1x28x28, patch 2 (14x14 grid), C0 48, depths 2,4, heads 3,6, window
7, mlp ratio 4, 10 classes: stage 0 = 14x14 tokens in 2x2 windows of 7x7
(block 1 shifted by 3,3), patch merging 192 -> 96, stage 1 = 7x7 tokens in
one window (no shift); head dim 16 everywhere (hd^-0.5 = 0.25 exactly).

Data: calibration = training images 0..31 (one batch); evaluation = test
images 0..N_EVAL-1; normalised (pixel/255 - 0.2860) / 0.3530.

Runs
  repq_w8a8, repq_w4a4   RepQ-ViT, as for the ViT (make_qmodel_fixtures.py).
      Pass 1: one forward of the 32 calibration images with every quantizer
      initialised lazily when data first reaches it (upstream already
      quantized = sequential calibration). Points (C names), in the order
      the C forward (src/model/swin.c) reaches them:
        patch_embed.input                    UQ per tensor, 8 bits (patches)
        then per stage s (s >= 1 first):
        layers.s.downsample.reduction.input  UQ per channel (merging LN out)
        and per block b of stage s:
        layers.s.blocks.b.attn.qkv.input     UQ per channel (LN1 out, window order)
        layers.s.blocks.b.attn.matmul1.a     UQ per tensor on q * hd^-0.5
        layers.s.blocks.b.attn.matmul1.b     UQ per tensor on k
        layers.s.blocks.b.attn.matmul2.b     UQ per tensor on v
        scores = qhat_s @ khat^T + relative bias + mask (-100), softmax (FP)
        layers.s.blocks.b.attn.matmul2.a     log-sqrt2 per tensor on probs
        layers.s.blocks.b.attn.proj.input    UQ per tensor
        layers.s.blocks.b.mlp.fc1.input      UQ per channel (LN2 out)
        layers.s.blocks.b.mlp.fc2.input      UQ per tensor (GELU out)
        head.input                           UQ per tensor (mean-pooled final-LN features)
      Weights: UQ per output row, w bits, searched on the FP weights:
        patch_embed, layers.s.blocks.b.{attn.qkv, attn.proj, mlp.fc1,
        mlp.fc2}, layers.s.downsample.reduction (s >= 1), head.
      Then scale reparameterisation of (norm1 -> qkv), (norm2 -> fc1) of
      every block and (downsample.norm -> downsample.reduction) of every
      stage s >= 1 (the reduction has no bias in the checkpoint: it gains
      bias = W_new @ bb); the patch-embedding norm and the final norm are
      not reparameterised:
        a_min = -z_c D_c, sD = mean(D), sz = round(mean(z)) (rounded, as in libsardfq),
        t_min = -sz sD, r = D / sD, bb = a_min / r - t_min,
        LN w /= r, LN b = b / r - bb, W[:, c] *= r_c, bias += W_new @ bb,
        input quantizer -> per tensor (sD, sz), weight re-searched on W_new.
      Logits of the final fake-quant model on the eval images.

  minmax_w8a8, minmax_w4a8   PSAQ-ViT min/max (make_qmodel_fixtures.MinMax
      semantics): one FP forward of the 32 calibration images records the
      min and max of every point, then each point is fake-quantized with the
      asymmetric quantizer of its range (scale (max - min) / (2^a - 1),
      clamped at float32 eps; zero -round(min / scale) clamped to the grid)
      and every linear weight per row with the symmetric quantizer
      (scale max |w| / ((2^w - 1) / 2)). Points (C names), in the C order:
        patch_embed.input                    the image (patches)
        patch_embed.output                   patch-embedding linear output
        patch_embed.norm.output              its LayerNorm output (the Swin's
                                             counterpart of the ViT's embed_pos;
                                             no embed / pos points on Swin)
        layers.s.downsample.reduction.input / .output   (s >= 1)
        per block: attn.qkv.input (LN1 out), attn.qkv.output,
        attn.scores (q * hd^-0.5 @ k^T + relative bias + mask, before the
        softmax), attn.proj.input, attn.proj.output (window order, before
        the window reverse), residual1 (x + attention, raster order),
        mlp.fc1.input (LN2 out), mlp.fc2.input (GELU out), mlp.fc2.output
        (before its add), residual2
        head.input (mean-pooled final-LN features), logits
      q, k, v, the softmax output, relative bias and mask stay FP.

Checks: the FP forward equals swin_ref.forward and torchvision's float32
SwinTransformer (1e-5 of max |logit|); the reparameterised FP model keeps
the FP logits (1e-4); the initialisation order is the C forward's.
Sensitivity (printed, not stored): each run is repeated with every linear in
float64 (rounded once to float32), and the quantizer / logit differences are
reported in the categories of tests/test_qmodel.c -- what a correct float32
implementation with another summation order can be expected to differ by.
Top-1 counts on the whole test set are stored as <run>.test_correct.

Output: tests/data/qswin_fmnist.safetensors (F32; names in the README).

  /usr/bin/python3 tests/reference/make_qswin_fixtures.py [--model M] [--out F]
      [--no-testset] [--no-sensitivity]          (~7 min; ~40 s with both flags)
"""
import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import make_qmodel_fixtures as mqm  # noqa: E402
import stio  # noqa: E402
import swin_ref  # noqa: E402
import train_default  # noqa: E402
# the ViT fixture's data (32 calibration, 128 evaluation images) and size limit
from make_qmodel_fixtures import F32, MAX_BYTES, N_CALIB, N_EVAL  # noqa: E402

MODEL = os.path.join(ROOT, "examples", "models", "fmnist_swin.safetensors")
OUT = os.path.join(ROOT, "tests", "data", "qswin_fmnist.safetensors")
RUNS = [("repq_w8a8", 8, 8), ("repq_w4a4", 4, 4)]
MINMAX_RUNS = [("minmax_w8a8", 8, 8), ("minmax_w4a8", 4, 8)]

torch.set_num_threads(1)

# Sensitivity run (not stored): every linear computed in float64 and rounded
# to float32 once, i.e. the same maths with other last bits. How far that
# moves the quantizers and logits is what a correct float32 implementation
# with another summation order (the C library) can be expected to differ by.
LINEAR64 = [False]


def linear(x, w, b):
    if LINEAR64[0]:
        return (x.double() @ w.double().t() + b.double()).float()
    return swin_ref.linear(x, w, b)


# --------------------------------------------------------------------------
# Forward with quantization hooks
# --------------------------------------------------------------------------

class FP:
    """No quantization."""

    def act(self, name, x, kind):
        return x

    def weight(self, layer, w):
        return w


def red_bias(P, s):
    """The reduction's bias: absent in the checkpoint (zero), set by the
    reparameterisation."""
    k = "layers.%d.downsample.reduction.bias" % s
    if k in P:
        return P[k]
    return torch.zeros(P["layers.%d.downsample.reduction.weight" % s].shape[0], dtype=F32)


def no_point(name, x):
    return x


def mm_hook(hook):
    """The hook's min/max-only points (hook.mm), or none (FP, RepQ)."""
    return getattr(hook, "mm", no_point)


def qblock(x, P, cfg, s, b, hook):
    """One Swin block (swin_ref.swin_block semantics) with hooks; x [B, H, W, C]."""
    A, Wq, M = hook.act, hook.weight, mm_hook(hook)
    B, H, W, C, nh, hd, wh, ww, sh, sw, N, k = swin_ref.block_dims(x, cfg, s, b)
    y = swin_ref.layer_norm(x, P[k + "norm1.weight"], P[k + "norm1.bias"])
    if sh or sw:
        y = torch.roll(y, shifts=(-sh, -sw), dims=(1, 2))
    win = swin_ref.window_partition(y, wh, ww)                 # [B, nW, N, C]
    nW = win.shape[1]
    win = A(k + "attn.qkv.input", win, "channel")
    qkv = linear(win, Wq(k + "attn.qkv", P[k + "attn.qkv.weight"]), P[k + "attn.qkv.bias"])
    qkv = M(k + "attn.qkv.output", qkv)
    qkv = qkv.reshape(B, nW, N, 3, nh, hd).permute(3, 0, 1, 4, 2, 5)
    q, kk, v = qkv[0], qkv[1], qkv[2]                         # [B, nW, nh, N, hd]
    # timm / RepQ-ViT: q * scale before matmul1; C hooks q, k, v, then probs
    qs = A(k + "attn.matmul1.a", q * hd ** -0.5, "tensor")
    kh = A(k + "attn.matmul1.b", kk, "tensor")
    vh = A(k + "attn.matmul2.b", v, "tensor")
    S = qs @ kh.transpose(-2, -1)
    S = S + swin_ref.relative_bias(P[k + "attn.relative_position_bias_table"], cfg, wh, ww)
    if sh or sw:
        S = S + swin_ref.shift_mask(H, W, wh, ww, sh, sw, S.dtype)[:, None]
    S = M(k + "attn.scores", S)
    prob = torch.softmax(S, dim=-1)
    prob = A(k + "attn.matmul2.a", prob, "log")
    o = (prob @ vh).permute(0, 1, 3, 2, 4).reshape(B, nW, N, C)
    o = A(k + "attn.proj.input", o, "tensor")
    o = linear(o, Wq(k + "attn.proj", P[k + "attn.proj.weight"]), P[k + "attn.proj.bias"])
    o = M(k + "attn.proj.output", o)                          # before the window reverse
    o = swin_ref.window_reverse(o, H, W, wh, ww)
    if sh or sw:
        o = torch.roll(o, shifts=(sh, sw), dims=(1, 2))
    x = M(k + "residual1", x + o)
    y = swin_ref.layer_norm(x, P[k + "norm2.weight"], P[k + "norm2.bias"])
    y = A(k + "mlp.fc1.input", y, "channel")
    f = linear(y, Wq(k + "mlp.fc1", P[k + "mlp.fc1.weight"]), P[k + "mlp.fc1.bias"])
    f = A(k + "mlp.fc2.input", swin_ref.gelu_erf(f), "tensor")
    f = linear(f, Wq(k + "mlp.fc2", P[k + "mlp.fc2.weight"]), P[k + "mlp.fc2.bias"])
    f = M(k + "mlp.fc2.output", f)
    return M(k + "residual2", x + f)


def qforward(P, cfg, x, hook):
    """Swin forward (swin_ref.forward semantics) calling hook.act(point,
    tensor, kind) at every RepQ activation point, hook.mm(point, tensor) (if
    the hook has it) at the min/max scheme's other points, and
    hook.weight(layer, W) for every linear weight, in the C forward's order.
    Returns logits."""
    A, Wq, M = hook.act, hook.weight, mm_hook(hook)
    B, C0 = x.shape[0], cfg.embed_dim
    pt = A("patch_embed.input", swin_ref.patchify(x, cfg.patch), "image")
    tok = linear(pt, Wq("patch_embed", P["patch_embed.proj.weight"].reshape(C0, -1)),
                          P["patch_embed.proj.bias"])
    tok = M("patch_embed.output", tok)
    h = tok.reshape(B, cfg.grid_h, cfg.grid_w, C0)
    h = swin_ref.layer_norm(h, P["patch_embed.norm.weight"], P["patch_embed.norm.bias"])
    h = M("patch_embed.norm.output", h)
    for s in range(cfg.num_stages):
        if s > 0:
            d = "layers.%d.downsample." % s
            y = A(d + "reduction.input", swin_ref.merge_norm(h, P, s), "channel")
            h = linear(y, Wq(d + "reduction", P[d + "reduction.weight"]), red_bias(P, s))
            h = M(d + "reduction.output", h)
        for b in range(cfg.depths[s]):
            h = qblock(h, P, cfg, s, b, hook)
    h = swin_ref.layer_norm(h, P["norm.weight"], P["norm.bias"])
    pooled = A("head.input", h.mean(dim=(1, 2)), "tensor")
    return M("logits", linear(pooled, Wq("head", P["head.fc.weight"]), P["head.fc.bias"]))


# --------------------------------------------------------------------------
# RepQ-ViT
# --------------------------------------------------------------------------

def fold_sites(cfg):
    """(LayerNorm prefix, linear, input point) of every reparameterised pair."""
    out = []
    for s in range(cfg.num_stages):
        if s > 0:
            d = "layers.%d.downsample." % s
            out.append((d + "norm", d + "reduction", d + "reduction.input"))
        for b in range(cfg.depths[s]):
            k = "layers.%d.blocks.%d." % (s, b)
            out.append((k + "norm1", k + "attn.qkv", k + "attn.qkv.input"))
            out.append((k + "norm2", k + "mlp.fc1", k + "mlp.fc1.input"))
    return out


# --------------------------------------------------------------------------
# PSAQ-ViT min/max
# --------------------------------------------------------------------------

# RepQ's points that min/max leaves in floating point (as on the ViT: q, k,
# v and the softmax output)
MATMUL_OPERANDS = ("attn.matmul1.a", "attn.matmul1.b", "attn.matmul2.a", "attn.matmul2.b")


class SwinMinMax(mqm.MinMax):
    """PSAQ-ViT's min/max (make_qmodel_fixtures.MinMax: the range of each
    point over one FP forward of the calibration batch, asymmetric
    activations, symmetric per-row weights) at the Swin's points: every
    LayerNorm and linear output (patch embedding, its LayerNorm, merging
    LayerNorm and reduction, qkv, proj before the window reverse, fc2 before
    its add), the scores (q*scale @ k^T + relative bias + mask), the GELU
    output, both residual sums, the pooled head input and the logits."""

    def act(self, name, x, kind):
        if name.endswith(MATMUL_OPERANDS):
            return x
        return self.observe(name, x)

    def mm(self, name, x):
        return self.observe(name, x)


def minmax_order(cfg):
    """The min/max points in the order the C forward reaches them."""
    out = ["patch_embed.input", "patch_embed.output", "patch_embed.norm.output"]
    for s in range(cfg.num_stages):
        if s > 0:
            out += ["layers.%d.downsample.reduction.%s" % (s, io) for io in ("input", "output")]
        for b in range(cfg.depths[s]):
            k = "layers.%d.blocks.%d." % (s, b)
            out += [k + p for p in ("attn.qkv.input", "attn.qkv.output", "attn.scores", "attn.proj.input",
                                    "attn.proj.output", "residual1", "mlp.fc1.input", "mlp.fc2.input",
                                    "mlp.fc2.output", "residual2")]
    return out + ["head.input", "logits"]


# --------------------------------------------------------------------------

def load_model(path):
    P, meta, dtypes = stio.load(path)
    assert all(d == "F32" for d in dtypes.values())
    ints = lambda s: tuple(int(v) for v in s.split(","))  # noqa: E731
    cfg = swin_ref.SwinConfig(int(meta["img_size"]), int(meta["img_size"]), int(meta["patch_size"]),
                              int(meta["in_chans"]), int(meta["embed_dim"]), ints(meta["depths"]),
                              ints(meta["num_heads"]), int(meta["window_size"]),
                              float(meta["mlp_ratio"]), int(meta["num_classes"]))
    assert (cfg.img_h, cfg.patch, cfg.in_chans, cfg.embed_dim, cfg.depths, cfg.num_heads, cfg.window) \
        == (28, 2, 1, 48, (2, 4), (3, 6), 7), cfg
    assert (meta["mean"], meta["std"]) == (train_default.MEAN_S, train_default.STD_S)
    assert set(P) == set(swin_ref.param_shapes(cfg)), "not a current-timm Swin checkpoint"
    return {k: v.to(F32).contiguous() for k, v in P.items()}, cfg, meta


def expected_order(cfg):
    """Activation points in the order the C forward initialises them."""
    out = ["patch_embed.input"]
    for s in range(cfg.num_stages):
        if s > 0:
            out.append("layers.%d.downsample.reduction.input" % s)
        for b in range(cfg.depths[s]):
            k = "layers.%d.blocks.%d." % (s, b)
            out += [k + p for p in ("attn.qkv.input", "attn.matmul1.a", "attn.matmul1.b",
                                    "attn.matmul2.b", "attn.matmul2.a", "attn.proj.input",
                                    "mlp.fc1.input", "mlp.fc2.input")]
    return out + ["head.input"]


EARLY_BLOCK = ("attn.qkv.input", "attn.matmul1.a", "attn.matmul1.b", "attn.matmul2.b",
               "attn.matmul2.a", "attn.proj.input")


def is_early(point):
    """The image and the first block's points up to the projection input: C
    and PyTorch see the same data there up to the last bit (tests/test_qmodel.c
    uses the same split)."""
    return point == "patch_embed.input" or any(point == "layers.0.blocks.0." + p for p in EARLY_BLOCK)


def calibrate(P, cfg, xc, wb, ab):
    """RepQ-ViT (make_qmodel_fixtures.RepQ) on the Swin forward."""
    hk = mqm.RepQ(wb, ab)
    Pr, ratios = hk.calibrate(qforward, P, cfg, xc, fold_sites(cfg))
    assert list(hk.act_q) == expected_order(cfg), list(hk.act_q)
    return hk, Pr, ratios


def sensitivity(cfg, a, b):
    """Largest relative differences between two calibrations (hook, params,
    logits), per category of tests/test_qmodel.c's repq_swin_case."""
    def rel(x, y):
        return float(((x - y).abs() / y.abs().clamp(min=1e-30)).max())
    out = {"early": 0.0, "later": 0.0, "wfixed": 0.0, "wts": 0.0, "ln": 0.0}
    (ha, Pa, la), (hb, Pb, lb) = a, b
    for qn, (kind, s, z, _) in hb.act_q.items():
        _, s2, z2, _ = ha.act_q[qn]
        k = "early" if is_early(qn) else "later"
        out[k] = max(out[k], rel(s2, s))
        if kind != "log":
            out[k] = max(out[k], rel(z2 + 1000, z + 1000))
    for layer, (s, z) in hb.w_q.items():
        s2, z2 = ha.w_q[layer]
        k = "wts" if layer in hb.w_first else "wfixed"
        out[k] = max(out[k], rel(s2, s), rel(z2 + 1000, z + 1000))
    for ln, lin, _ in fold_sites(cfg):
        for n in (ln + ".weight", ln + ".bias", lin + ".bias"):
            out["ln"] = max(out["ln"], float(((Pa[n] - Pb[n]).abs() / Pb[n].abs().clamp(min=1)).max()))
    out["logits"] = float((la - lb).abs().max() / lb.abs().max())
    out["agree"] = int((la.argmax(1) == lb.argmax(1)).sum())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--no-testset", action="store_true",
                    help="skip the whole-test-set top-1 counts (stored as -1)")
    ap.add_argument("--no-sensitivity", action="store_true",
                    help="skip the float64-linear sensitivity runs")
    args = ap.parse_args()
    t0 = time.time()
    P, cfg, mmeta = load_model(args.model)
    xc, xe, ye, xte, yte = mqm.load_data(N_CALIB, N_EVAL)

    def test_correct(params, hook):
        if args.no_testset:
            return torch.tensor([-1.0])
        return mqm.count_correct(qforward, params, cfg, hook, xte, yte)

    st, meta = mqm.new_fixture("examples/models/fmnist_swin.safetensors",
                               "tests/reference/make_qswin_fixtures.py", xc, xe, ye,
                               [("model_test_correct", mmeta.get("test_correct", "?"))])

    with torch.no_grad():
        fp = qforward(P, cfg, xe, FP())
        ref, _ = swin_ref.forward(P, cfg, xe)
        fp_ref_diff = float((fp - ref).abs().max())
        assert fp_ref_diff < 1e-5 * float(ref.abs().max()), fp_ref_diff
        tv = swin_ref.torchvision_model(P, cfg, F32)(xe)   # an independent implementation
        fp_tv_diff = float((fp - tv).abs().max())
        assert fp_tv_diff < 1e-5 * float(tv.abs().max()), fp_tv_diff
        st["fp.logits"] = fp
        st["fp.test_correct"] = test_correct(P, FP())
        summary = [("fp", fp)]
        notes = []
        reparam_diff = None
        sens = {}

        for run, wb, ab in RUNS:
            hk, Pr, ratios = calibrate(P, cfg, xc, wb, ab)
            logits = qforward(Pr, cfg, xe, hk)
            st[run + ".test_correct"] = test_correct(Pr, hk)
            hk.store(st, run, log_zero=torch.zeros(1))
            for ln, lin, _ in fold_sites(cfg):
                for n in (ln + ".weight", ln + ".bias", lin + ".bias"):
                    st["%s.%s" % (run, n)] = Pr[n]
                st["%s.%s.reparam_r" % (run, lin)] = ratios[lin]
            fpr = qforward(Pr, cfg, xe, FP())
            st["fp_reparam_%s.logits" % run[5:]] = fpr
            rd = float((fpr - fp).abs().max())
            reparam_diff = rd if reparam_diff is None else max(reparam_diff, rd)
            if not args.no_sensitivity:
                LINEAR64[0] = True
                h2, P2, _ = calibrate(P, cfg, xc, wb, ab)
                l2 = qforward(P2, cfg, xe, h2)
                LINEAR64[0] = False
                sens[run] = sensitivity(cfg, (h2, P2, l2), (hk, Pr, logits))
            meta[run] = ("RepQ-ViT W%dA%d on Swin: sequential calibration on the calib batch "
                         "(image 8 bit per tensor, LN1/LN2/merging-LN outputs per channel, "
                         "q*hd^-0.5/k/v/proj/fc2/head inputs per tensor, softmax log-sqrt2, "
                         "weights per row), then scale reparameterisation of norm1->qkv, "
                         "norm2->fc1 and downsample.norm->reduction (input per tensor "
                         "(mean D, mean z), weights re-searched); logits of the final "
                         "fake-quant model on the eval images" % (wb, ab))
            notes.append(hk.note(run))
            st[run + ".logits"] = logits
            summary.append((run, logits))

        for run, wb, ab in MINMAX_RUNS:
            hk = SwinMinMax(wb, ab)
            qforward(P, cfg, xc, hk)                       # FP ranges
            assert hk.order == minmax_order(cfg), hk.order
            hk.recording = False
            logits = qforward(P, cfg, xe, hk)
            st[run + ".test_correct"] = test_correct(P, hk)
            for pt in hk.order:
                lo, hi = hk.rng[pt]
                st["%s.%s.min" % (run, pt)] = lo.reshape(1)
                st["%s.%s.max" % (run, pt)] = hi.reshape(1)
            for layer, sc in hk.w_scale.items():
                st["%s.%s.weight.scale" % (run, layer)] = sc
            meta[run] = ("PSAQ-ViT min/max W%dA%d on Swin: ranges of %d activation points from one FP "
                         "forward of the calib batch, asymmetric activations, symmetric per-row weights "
                         "(%d linears), softmax, q, k, v, relative bias and mask FP; logits on the eval "
                         "images" % (wb, ab, len(hk.order), len(hk.w_scale)))
            notes.append("%s: %d activation ranges, %d weights" % (run, len(hk.order), len(hk.w_scale)))
            st[run + ".logits"] = logits
            summary.append((run, logits))

    meta["fp_reparam"] = ("fp_reparam_<wXaY>.logits: FP logits of the model reparameterised with "
                          "that run's per-channel input scales (all three fold sites), no quantization")
    meta["order"] = ",".join(expected_order(cfg))
    meta["minmax_order"] = ",".join(minmax_order(cfg))
    st, nbytes = mqm.save_fixture(args.out, st, meta)

    print("fp forward vs swin_ref.forward: max |diff| %.3g, vs torchvision float32 %.3g "
          "(max |logit| %.3g)" % (fp_ref_diff, fp_tv_diff, float(ref.abs().max())))
    mqm.print_summary(summary, ye, N_CALIB, margins=True)
    print("max |fp_reparam - fp| = %.3g" % reparam_diff)
    mqm.print_test_correct(st)
    for run, o in sens.items():
        print("  %s, float64 linears vs float32 (max rel): early %.2g, later acts %.2g, FP-weight rows "
              "%.2g, reparam weight rows %.2g, LN/bias %.2g; logits %.3g of max |logit|, argmax "
              "agrees %d/%d" % (run, o["early"], o["later"], o["wfixed"], o["wts"], o["ln"],
                                o["logits"], o["agree"], N_EVAL))
    for n in notes:
        print("  " + n)
    print("%.1f s" % (time.time() - t0))
    assert reparam_diff < 1e-4 * float(fp.abs().max())
    assert nbytes < MAX_BYTES


if __name__ == "__main__":
    main()
