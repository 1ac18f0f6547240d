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
        a_min = -z_c D_c, sD = mean(D), sz = mean(z) (not rounded),
        t_min = -sz sD, r = D / sD, bb = a_min / r - t_min,
        LN w /= r, LN b = b / r - bb, W[:, c] *= r_c, bias += W_new @ bb,
        input quantizer -> per tensor (sD, sz), weight re-searched on W_new.
      Logits of the final fake-quant model on the eval images.

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

import make_quant_fixtures as mq  # noqa: E402
import stio  # noqa: E402
import swin_ref  # noqa: E402
import train_default  # noqa: E402

F32 = torch.float32
MODEL = os.path.join(ROOT, "examples", "models", "fmnist_swin.safetensors")
OUT = os.path.join(ROOT, "tests", "data", "qswin_fmnist.safetensors")
N_CALIB = 32
N_EVAL = 128
MAX_BYTES = 1000 * 1000
IMG_BITS = 8
RUNS = [("repq_w8a8", 8, 8), ("repq_w4a4", 4, 4)]

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


def qblock(x, P, cfg, s, b, hook):
    """One Swin block (swin_ref.swin_block semantics) with hooks; x [B, H, W, C]."""
    A, Wq = hook.act, hook.weight
    B, H, W, C = x.shape
    nh = cfg.num_heads[s]
    hd = C // nh
    wh, ww, sh, sw = cfg.block_geom(s, b)
    N = wh * ww
    k = "layers.%d.blocks.%d." % (s, b)
    y = swin_ref.layer_norm(x, P[k + "norm1.weight"], P[k + "norm1.bias"])
    if sh or sw:
        y = torch.roll(y, shifts=(-sh, -sw), dims=(1, 2))
    win = swin_ref.window_partition(y, wh, ww)                 # [B, nW, N, C]
    nW = win.shape[1]
    win = A(k + "attn.qkv.input", win, "channel")
    qkv = linear(win, Wq(k + "attn.qkv", P[k + "attn.qkv.weight"]), P[k + "attn.qkv.bias"])
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
    prob = torch.softmax(S, dim=-1)
    prob = A(k + "attn.matmul2.a", prob, "log")
    o = (prob @ vh).permute(0, 1, 3, 2, 4).reshape(B, nW, N, C)
    o = A(k + "attn.proj.input", o, "tensor")
    o = linear(o, Wq(k + "attn.proj", P[k + "attn.proj.weight"]), P[k + "attn.proj.bias"])
    o = swin_ref.window_reverse(o, H, W, wh, ww)
    if sh or sw:
        o = torch.roll(o, shifts=(sh, sw), dims=(1, 2))
    x = x + o
    y = swin_ref.layer_norm(x, P[k + "norm2.weight"], P[k + "norm2.bias"])
    y = A(k + "mlp.fc1.input", y, "channel")
    f = linear(y, Wq(k + "mlp.fc1", P[k + "mlp.fc1.weight"]), P[k + "mlp.fc1.bias"])
    f = A(k + "mlp.fc2.input", swin_ref.gelu_erf(f), "tensor")
    f = linear(f, Wq(k + "mlp.fc2", P[k + "mlp.fc2.weight"]), P[k + "mlp.fc2.bias"])
    return x + f


def qforward(P, cfg, x, hook):
    """Swin forward (swin_ref.forward semantics) calling hook.act(point,
    tensor, kind) at every RepQ activation point and hook.weight(layer, W)
    for every linear weight, in the C forward's order. Returns logits."""
    A, Wq = hook.act, hook.weight
    B, C0 = x.shape[0], cfg.embed_dim
    pt = A("patch_embed.input", swin_ref.patchify(x, cfg.patch), "image")
    tok = linear(pt, Wq("patch_embed", P["patch_embed.proj.weight"].reshape(C0, -1)),
                          P["patch_embed.proj.bias"])
    h = tok.reshape(B, cfg.grid_h, cfg.grid_w, C0)
    h = swin_ref.layer_norm(h, P["patch_embed.norm.weight"], P["patch_embed.norm.bias"])
    for s in range(cfg.num_stages):
        if s > 0:
            d = "layers.%d.downsample." % s
            y = torch.cat([h[:, 0::2, 0::2], h[:, 1::2, 0::2], h[:, 0::2, 1::2], h[:, 1::2, 1::2]], dim=-1)
            y = swin_ref.layer_norm(y, P[d + "norm.weight"], P[d + "norm.bias"])
            y = A(d + "reduction.input", y, "channel")
            h = linear(y, Wq(d + "reduction", P[d + "reduction.weight"]), red_bias(P, s))
        for b in range(cfg.depths[s]):
            h = qblock(h, P, cfg, s, b, hook)
    h = swin_ref.layer_norm(h, P["norm.weight"], P["norm.bias"])
    pooled = A("head.input", h.mean(dim=(1, 2)), "tensor")
    return linear(pooled, Wq("head", P["head.fc.weight"]), P["head.fc.bias"])


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


class RepQ:
    def __init__(self, wbits, abits):
        self.wbits, self.abits = wbits, abits
        self.act_q = {}      # point -> (kind, scale, zero, bits), in initialisation order
        self.chan_q = {}     # first-pass per-channel params of reparam'd inputs
        self.w_q = {}        # layer -> (scale [rows], zero [rows])
        self.w_first = {}    # first-pass weight params of reparam'd linears
        self.ties = []       # near-tie messages from the searches

    def _search(self, x, bits, label):
        r = mq.uq_search(x.contiguous(), bits)
        if r["err"]:
            self.ties.append("%s (%s)" % (label, r["err"]))
        return r["scale"], r["zero"]

    def act(self, name, x, kind):
        if name not in self.act_q:
            if kind == "log":
                r = mq.lq_search(x.contiguous(), self.abits)
                if r["err"]:
                    self.ties.append("%s (%s)" % (name, r["err"]))
                self.act_q[name] = ("log", r["scale"], None, self.abits)
            elif kind == "channel":
                xc = x.reshape(-1, x.shape[-1])
                res = [self._search(xc[:, c], self.abits, "%s[%d]" % (name, c))
                       for c in range(xc.shape[1])]
                self.act_q[name] = ("channel", torch.stack([s for s, _ in res]),
                                    torch.stack([z for _, z in res]), self.abits)
            else:
                bits = IMG_BITS if kind == "image" else self.abits
                s, z = self._search(x, bits, name)
                self.act_q[name] = ("tensor", s, z, bits)
        k, s, z, bits = self.act_q[name]
        if k == "log":
            return mq.lq_fake(x, s, bits)
        return mq.uq_fake(x, s, z, bits)

    def search_weight(self, layer, w, tag=""):
        res = [self._search(w[r], self.wbits, "%s.weight[%d]%s" % (layer, r, tag))
               for r in range(w.shape[0])]
        self.w_q[layer] = (torch.stack([s for s, _ in res]), torch.stack([z for _, z in res]))

    def weight(self, layer, w):
        if layer not in self.w_q:
            self.search_weight(layer, w)
        s, z = self.w_q[layer]
        return mq.uq_fake(w, s[:, None], z[:, None], self.wbits)

    def reparam(self, P, cfg):
        """Returns (reparameterised parameter dict, {linear: r}); switches the
        folded inputs to per tensor and re-searches their linears' weights."""
        P = dict(P)
        info = {}
        for ln, lin, qn in fold_sites(cfg):
            kind, d, z, bits = self.act_q[qn]
            assert kind == "channel"
            a_min = -z * d
            s_d = d.mean()
            s_z = z.mean()
            t_min = -s_z * s_d
            r = d / s_d
            bb = a_min / r - t_min
            P[ln + ".weight"] = P[ln + ".weight"] / r
            P[ln + ".bias"] = P[ln + ".bias"] / r - bb
            w_new = P[lin + ".weight"] * r[None, :]
            P[lin + ".weight"] = w_new
            bias = P[lin + ".bias"] if lin + ".bias" in P else torch.zeros(w_new.shape[0], dtype=F32)
            P[lin + ".bias"] = bias + w_new @ bb
            self.chan_q[qn] = (d, z)
            self.act_q[qn] = ("tensor", s_d, s_z, bits)
            self.w_first[lin] = self.w_q.pop(lin)
            self.search_weight(lin, w_new, " reparam")
            info[lin] = r
        return P, info


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
    hk = RepQ(wb, ab)
    qforward(P, cfg, xc, hk)                               # sequential calibration
    assert list(hk.act_q) == expected_order(cfg), list(hk.act_q)
    Pr, ratios = hk.reparam(P, cfg)
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
    xtr, _ = train_default.load_split("train")
    xte, yte = train_default.load_split("t10k")
    xc = xtr[:N_CALIB].contiguous()
    xe = xte[:N_EVAL].contiguous()
    ye = yte[:N_EVAL]
    del xtr

    def test_correct(params, hook):
        """Correct predictions on the whole Fashion-MNIST test set (10000
        images, batches of 500) with every quantizer fixed."""
        if args.no_testset:
            return torch.tensor([-1.0])
        c = 0
        for i in range(0, xte.shape[0], 500):
            lg = qforward(params, cfg, xte[i:i + 500], hook)
            c += int((lg.argmax(1) == yte[i:i + 500]).sum())
        return torch.tensor([float(c)])

    st = {}
    st["calib.images"] = xc
    st["eval.images"] = xe
    st["eval.labels"] = ye.to(F32)
    meta = {"model": "examples/models/fmnist_swin.safetensors",
            "model_test_correct": mmeta.get("test_correct", "?"),
            "calib": "Fashion-MNIST train images 0..%d, one batch" % (N_CALIB - 1),
            "eval": "Fashion-MNIST test images 0..%d" % (N_EVAL - 1),
            "normalisation": "(pixel/255 - 0.2860) / 0.3530",
            "fp": "float32 model, no quantization",
            "generated_by": "tests/reference/make_qswin_fixtures.py"}

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
        top2 = fp.topk(2, dim=1).values
        fp_margin = float((top2[:, 0] - top2[:, 1]).min())
        fp_arg = fp.argmax(1)
        summary = [("fp", fp)]
        notes = []
        reparam_diff = None
        sens = {}

        for run, wb, ab in RUNS:
            hk, Pr, ratios = calibrate(P, cfg, xc, wb, ab)
            logits = qforward(Pr, cfg, xe, hk)
            st[run + ".test_correct"] = test_correct(Pr, hk)
            nq = len(hk.act_q) + len(hk.w_q)
            for qn, (kind, s, z, bits) in hk.act_q.items():
                st["%s.%s.scale" % (run, qn)] = s.reshape(-1)
                st["%s.%s.zero" % (run, qn)] = (torch.zeros(1) if kind == "log" else z).reshape(-1)
            for qn, (d, z) in hk.chan_q.items():
                st["%s.%s_channel.scale" % (run, qn)] = d
                st["%s.%s_channel.zero" % (run, qn)] = z
            for layer, (s, z) in hk.w_q.items():
                st["%s.%s.weight.scale" % (run, layer)] = s
                st["%s.%s.weight.zero" % (run, layer)] = z
            for layer, (s, z) in hk.w_first.items():
                st["%s.%s.weight_first.scale" % (run, layer)] = s
                st["%s.%s.weight_first.zero" % (run, layer)] = z
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
            notes.append("%s: %d quantizers, %d near-tie searches (float64 margin < 1e-5)%s" % (
                run, nq, len(hk.ties), "".join("\n    " + t for t in hk.ties)))
            st[run + ".logits"] = logits
            summary.append((run, logits))

    st = {k: v.detach().to(F32).contiguous() for k, v in st.items()}
    meta["fp_reparam"] = ("fp_reparam_<wXaY>.logits: FP logits of the model reparameterised with "
                          "that run's per-channel input scales (all three fold sites), no quantization")
    meta["order"] = ",".join(expected_order(cfg))
    nbytes = stio.save(args.out, st, meta)
    back, bmeta, _ = stio.load(args.out)
    assert bmeta == meta and all(torch.equal(back[k], v) for k, v in st.items())

    print("%s: %d tensors, %d bytes" % (os.path.relpath(args.out, ROOT), len(st), nbytes))
    print("fp forward vs swin_ref.forward: max |diff| %.3g, vs torchvision float32 %.3g "
          "(max |logit| %.3g)" % (fp_ref_diff, fp_tv_diff, float(ref.abs().max())))
    print("eval n=%d, calib n=%d, fp min top1-top2 margin %.3g" % (N_EVAL, N_CALIB, fp_margin))
    for name, lg in summary:
        acc = int((lg.argmax(1) == ye).sum())
        agree = int((lg.argmax(1) == fp_arg).sum())
        top2 = lg.topk(2, dim=1).values
        print("  %-12s top-1 %6.2f %% (%d/%d)  argmax == fp: %d/%d  min margin %.3g" % (
            name, 100.0 * acc / N_EVAL, acc, N_EVAL, agree, N_EVAL,
            float((top2[:, 0] - top2[:, 1]).min())))
    print("max |fp_reparam - fp| = %.3g" % reparam_diff)
    for k in sorted(k for k in st if k.endswith(".test_correct")):
        print("  %-28s %d / 10000" % (k, int(st[k][0])))
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
