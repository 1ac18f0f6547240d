"""Golden fixtures for whole-model post-training quantization of the default
Fashion-MNIST ViT (examples/models/fmnist_vit.safetensors).

Independent float32 PyTorch reference built on vit_ref.py (LayerNorm, GELU,
linear, patchify), make_quant_fixtures.py (RepQ-ViT uniform / log-sqrt2
searches and fake-quant, PSAQ-ViT weight quantizer) and train_default.py
(IDX reader, normalisation).

Data: calibration = training images 0..31 (one batch); evaluation = test
images 0..N_EVAL-1; normalised (pixel/255 - 0.2860) / 0.3530.

Runs
  repq_w8a8, repq_w4a4   RepQ-ViT. Pass 1: one forward of the 32 calibration
      images with every quantizer initialised lazily when data first reaches
      it (upstream already quantized = sequential calibration):
        patch_embed.input            UQ per tensor, 8 bits (image)
        <linear>.weight              UQ per output row, w bits
        blocks.l.attn.qkv.input      UQ per channel (last dim), a bits (LN1 out)
        blocks.l.attn.matmul1.a / .b UQ per tensor on q / k^T
        scores = (qhat @ khat^T) * hd^-0.5, softmax (FP)
        blocks.l.attn.matmul2.a      log-sqrt2 per tensor on probs
        blocks.l.attn.matmul2.b      UQ per tensor on v
        blocks.l.attn.proj.input     UQ per tensor
        blocks.l.mlp.fc1.input       UQ per channel (LN2 out)
        blocks.l.mlp.fc2.input       UQ per tensor (GELU out)
        head.input                   UQ per tensor (class row after final LN)
      Then scale reparameterisation of (norm1 -> qkv) and (norm2 -> fc1):
        a_min = -z_c D_c, sD = mean(D), sz = round(mean(z)) (libsardfq
        rounds RepQ-ViT's fractional mean: integer codes for the input),
        t_min = -sz sD, r = D / sD, bb = a_min / r - t_min,
        LN w /= r, LN b = b / r - bb, W[:, c] *= r_c, bias += W_new @ bb,
        input quantizer -> per tensor (sD, sz), weight re-searched on W_new.
  minmax_w8a8, minmax_w4a8   PSAQ-ViT min/max: one FP forward over the
      calibration batch records min/max at every point, then every point is
      fake-quantized with those ranges (asymmetric activation form,
      symmetric per-row weights); softmax output and biases stay FP.

Output: tests/data/qmodel_fmnist.safetensors (F32; names in the README).

  /usr/bin/python3 tests/reference/make_qmodel_fixtures.py
"""
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import make_quant_fixtures as mq  # noqa: E402
import stio  # noqa: E402
import train_default  # noqa: E402
import vit_ref  # noqa: E402

F32 = torch.float32
MODEL = os.path.join(ROOT, "examples", "models", "fmnist_vit.safetensors")
OUT = os.path.join(ROOT, "tests", "data", "qmodel_fmnist.safetensors")
N_CALIB = 32
N_EVAL = 128          # 256 asked; 128 keeps the file < 1 MB (see README)
MAX_BYTES = 1000 * 1000
IMG_BITS = 8
RUNS = [("repq_w8a8", "repq", 8, 8), ("repq_w4a4", "repq", 4, 4),
        ("minmax_w8a8", "minmax", 8, 8), ("minmax_w4a8", "minmax", 4, 8)]
FULL_REPARAM_W = ("repq_w4a4", 0)   # run, block whose reparam weights are stored in full

torch.set_num_threads(1)


# --------------------------------------------------------------------------
# Forward with quantization hooks
# --------------------------------------------------------------------------

class FP:
    """No quantization."""

    def act(self, name, x):
        return x

    def weight(self, name, w):
        return w


def qforward(P, cfg, x, hook):
    """ViT forward (vit_ref semantics) calling hook.act(point, tensor) at every
    activation point (minmax point names + repq matmul operands) and
    hook.weight(layer, W) for every linear weight. Returns logits."""
    A, Wq = hook.act, hook.weight
    B, D, H = x.shape[0], cfg.embed_dim, cfg.num_heads
    hd = D // H
    x = A("input", x)
    w_pe = Wq("patch_embed", P["patch_embed.proj.weight"].reshape(D, -1))
    tok = vit_ref.linear(vit_ref.patchify(x, cfg.patch), w_pe, P["patch_embed.proj.bias"])
    tok = A("patch_embed.output", tok)
    h = A("embed", torch.cat([P["cls_token"].expand(B, 1, D), tok], dim=1))
    h = A("embed_pos", h + A("pos", P["pos_embed"]))
    N = h.shape[1]
    for i in range(cfg.depth):
        b = "blocks.%d." % i
        y = vit_ref.layer_norm(h, P[b + "norm1.weight"], P[b + "norm1.bias"])
        y = A(b + "norm1.output", y)
        qkv = vit_ref.linear(y, Wq(b + "attn.qkv", P[b + "attn.qkv.weight"]), P[b + "attn.qkv.bias"])
        qkv = A(b + "attn.qkv.output", qkv)
        qkv = qkv.reshape(B, N, 3, H, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        qh = A(b + "attn.matmul1.a", q)
        kt = A(b + "attn.matmul1.b", k.transpose(-2, -1))
        scores = A(b + "attn.scores", (qh @ kt) * (hd ** -0.5))
        probs = torch.softmax(scores, dim=-1)
        probs = A(b + "attn.matmul2.a", probs)
        v = A(b + "attn.matmul2.b", v)
        o = (probs @ v).transpose(1, 2).reshape(B, N, D)
        o = A(b + "attn.matmul2.output", o)
        a = vit_ref.linear(o, Wq(b + "attn.proj", P[b + "attn.proj.weight"]), P[b + "attn.proj.bias"])
        a = A(b + "attn.proj.output", a)
        h = A(b + "residual1", h + a)
        y = vit_ref.layer_norm(h, P[b + "norm2.weight"], P[b + "norm2.bias"])
        y = A(b + "norm2.output", y)
        f = vit_ref.linear(y, Wq(b + "mlp.fc1", P[b + "mlp.fc1.weight"]), P[b + "mlp.fc1.bias"])
        f = A(b + "mlp.act", vit_ref.gelu_erf(f))
        f = vit_ref.linear(f, Wq(b + "mlp.fc2", P[b + "mlp.fc2.weight"]), P[b + "mlp.fc2.bias"])
        f = A(b + "mlp.fc2.output", f)
        h = A(b + "residual2", h + f)
    h = vit_ref.layer_norm(h, P["norm.weight"], P["norm.bias"])
    c = A("head.input", h[:, 0])
    logits = vit_ref.linear(c, Wq("head", P["head.weight"]), P["head.bias"])
    return A("logits", logits)


# --------------------------------------------------------------------------
# RepQ-ViT
# --------------------------------------------------------------------------

def repq_point(name):
    """Canonical point -> (RepQ-ViT quantizer name, kind) or None."""
    if name == "input":
        return "patch_embed.input", "image"
    if name == "head.input":
        return name, "tensor"
    if not name.startswith("blocks."):
        return None
    pre, rest = name[:name.index(".", 7) + 1], name[name.index(".", 7) + 1:]
    m = {"norm1.output": ("attn.qkv.input", "channel"),
         "attn.matmul1.a": ("attn.matmul1.a", "tensor"),
         "attn.matmul1.b": ("attn.matmul1.b", "tensor"),
         "attn.matmul2.a": ("attn.matmul2.a", "log"),
         "attn.matmul2.b": ("attn.matmul2.b", "tensor"),
         "attn.matmul2.output": ("attn.proj.input", "tensor"),
         "norm2.output": ("mlp.fc1.input", "channel"),
         "mlp.act": ("mlp.fc2.input", "tensor")}.get(rest)
    return None if m is None else (pre + m[0], m[1])


def fold_sites(cfg):
    """(LayerNorm prefix, linear, input point) of every reparameterised pair."""
    return [("blocks.%d.%s" % (i, ln), "blocks.%d.%s" % (i, lin), "blocks.%d.%s.input" % (i, lin))
            for i in range(cfg.depth) for ln, lin in (("norm1", "attn.qkv"), ("norm2", "mlp.fc1"))]


class RepQ:
    """RepQ-ViT calibration hook, for any model: the forward calls
    act(point, x, kind) at every quantized activation point (kind "image",
    "tensor", "channel" or "log") and weight(layer, W) for every linear; each
    quantizer is searched when data first reaches it (sequential
    calibration). Also used by make_qswin_fixtures.py."""

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

    def reparam(self, P, sites):
        """Scale reparameterisation of every (LayerNorm prefix, linear, input
        point) in sites. Returns (reparameterised parameter dict, {linear:
        r}); switches the folded inputs to per tensor and re-searches their
        linears' weights. A linear without a bias gains one."""
        P = dict(P)
        info = {}
        for ln, lin, qn in sites:
            kind, d, z, bits = self.act_q[qn]
            assert kind == "channel"
            a_min = -z * d
            s_d = d.mean()
            # libsardfq rounds the folded zero point (RepQ-ViT keeps the
            # fractional mean) so that the input has integer codes; the
            # folding below is exact for any target zero.
            s_z = torch.round(z.mean())
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

    def calibrate(self, qforward, P, cfg, x, sites):
        """Sequential calibration: one forward of x through qforward(P, cfg,
        x, self), then reparam(P, sites)."""
        qforward(P, cfg, x, self)
        return self.reparam(P, sites)

    def store(self, st, run, log_zero=None):
        """Adds every quantizer to st as <run>.<name>.{scale,zero} (a log
        quantizer's zero only if log_zero is given: stored as that tensor),
        <run>.<input>_channel.* (first pass of a folded input),
        <run>.<linear>.weight.* and <run>.<linear>.weight_first.*."""
        for qn, (kind, s, z, bits) in self.act_q.items():
            st["%s.%s.scale" % (run, qn)] = s.reshape(-1)
            if kind != "log":
                st["%s.%s.zero" % (run, qn)] = z.reshape(-1)
            elif log_zero is not None:
                st["%s.%s.zero" % (run, qn)] = log_zero.reshape(-1)
        for qn, (d, z) in self.chan_q.items():
            st["%s.%s_channel.scale" % (run, qn)] = d
            st["%s.%s_channel.zero" % (run, qn)] = z
        for layer, (s, z) in self.w_q.items():
            st["%s.%s.weight.scale" % (run, layer)] = s
            st["%s.%s.weight.zero" % (run, layer)] = z
        for layer, (s, z) in self.w_first.items():
            st["%s.%s.weight_first.scale" % (run, layer)] = s
            st["%s.%s.weight_first.zero" % (run, layer)] = z

    def note(self, run):
        return "%s: %d quantizers, %d near-tie searches (float64 margin < 1e-5)%s" % (
            run, len(self.act_q) + len(self.w_q), len(self.ties), "".join("\n    " + t for t in self.ties))


class RepQViT(RepQ):
    """RepQ on the ViT forward above: its canonical point names -> RepQ-ViT
    quantizers (repq_point)."""

    def act(self, name, x):
        p = repq_point(name)
        return x if p is None else RepQ.act(self, p[0], x, p[1])


# --------------------------------------------------------------------------
# PSAQ-ViT min/max
# --------------------------------------------------------------------------

MINMAX_POINTS = set(["input", "patch_embed.output", "embed", "pos", "embed_pos",
                     "head.input", "logits"])
MINMAX_BLOCK = ["norm1.output", "attn.qkv.output", "attn.scores", "attn.matmul2.output",
                "attn.proj.output", "residual1", "norm2.output", "mlp.act",
                "mlp.fc2.output", "residual2"]


def minmax_is_point(name):
    if name in MINMAX_POINTS:
        return True
    if name.startswith("blocks."):
        return name[name.index(".", 7) + 1:] in MINMAX_BLOCK
    return False


class MinMax:
    def __init__(self, wbits, abits):
        self.wbits, self.abits = wbits, abits
        self.rng = {}        # point -> (min, max)
        self.w_scale = {}
        self.order = []
        self.recording = True

    def act(self, name, x):
        if not minmax_is_point(name):
            return x
        return self.observe(name, x)

    def observe(self, name, x):
        """Point `name` on x: record its range (recording), or fake-quantize
        x with the recorded range."""
        if self.recording:
            assert name not in self.rng, name
            self.rng[name] = (x.min(), x.max())
            self.order.append(name)
            return x
        lo, hi = self.rng[name]
        qmax = 2 ** self.abits - 1
        s = ((hi - lo) / float(qmax)).clamp(min=mq.EPS)
        z = (0 - torch.round(lo / s)).clamp(0, qmax)
        q = (x / s + z).round().clamp(0, qmax)
        return (q - z) * s

    def weight(self, layer, w):
        if self.recording:
            return w
        s, wq = mq.psaq_weight(w, self.wbits)
        self.w_scale[layer] = s
        return wq


# --------------------------------------------------------------------------

def load_model():
    P, meta, dtypes = stio.load(MODEL)
    assert all(d == "F32" for d in dtypes.values())
    m = int(meta["embed_dim"])
    cfg = vit_ref.ViTConfig(int(meta["img_size"]), int(meta["img_size"]), int(meta["patch_size"]),
                            int(meta["in_chans"]), m, int(meta["depth"]), int(meta["num_heads"]),
                            int(round(float(meta["mlp_ratio"]) * m)), int(meta["num_classes"]))
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_hidden) == (96, 4, 3, 192)
    assert (meta["mean"], meta["std"]) == (train_default.MEAN_S, train_default.STD_S)
    return {k: v.to(F32).contiguous() for k, v in P.items()}, cfg


# --------------------------------------------------------------------------
# Shared with make_qswin_fixtures.py: data, fixture file, summary
# --------------------------------------------------------------------------

def load_data(n_calib, n_eval):
    """(calibration images: training images 0..n_calib-1, evaluation images
    and labels: test images 0..n_eval-1, the whole test set's images, labels)."""
    xtr, _ = train_default.load_split("train")
    xte, yte = train_default.load_split("t10k")
    return xtr[:n_calib].contiguous(), xte[:n_eval].contiguous(), yte[:n_eval], xte, yte


def count_correct(qforward, params, cfg, hook, xte, yte):
    """Correct predictions on the whole Fashion-MNIST test set (10000
    images, batches of 500) with every quantizer fixed."""
    c = 0
    for i in range(0, xte.shape[0], 500):
        lg = qforward(params, cfg, xte[i:i + 500], hook)
        c += int((lg.argmax(1) == yte[i:i + 500]).sum())
    return torch.tensor([float(c)])


def new_fixture(model, script, xc, xe, ye, model_meta=()):
    """(tensors, metadata) every fixture starts with: the images, the labels,
    where they come from; model_meta: (key, value) pairs after "model"."""
    st = {"calib.images": xc, "eval.images": xe, "eval.labels": ye.to(F32)}
    meta = {"model": model}
    meta.update(model_meta)
    meta.update({"calib": "Fashion-MNIST train images 0..%d, one batch" % (xc.shape[0] - 1),
                 "eval": "Fashion-MNIST test images 0..%d" % (xe.shape[0] - 1),
                 "normalisation": "(pixel/255 - 0.2860) / 0.3530",
                 "fp": "float32 model, no quantization",
                 "generated_by": script})
    return st, meta


def save_fixture(path, st, meta):
    """Writes st (as F32) and meta to path, checks it reads back the same and
    prints its size. Returns (the F32 tensors, bytes)."""
    st = {k: v.detach().to(F32).contiguous() for k, v in st.items()}
    nbytes = stio.save(path, st, meta)
    back, bmeta, _ = stio.load(path)
    assert bmeta == meta and all(torch.equal(back[k], v) for k, v in st.items())
    print("%s: %d tensors, %d bytes" % (os.path.relpath(path, ROOT), len(st), nbytes))
    return st, nbytes


def min_margin(lg):
    """Smallest top-1 - top-2 logit margin."""
    top2 = lg.topk(2, dim=1).values
    return float((top2[:, 0] - top2[:, 1]).min())


def print_summary(summary, ye, n_calib, margins=False):
    """Top-1 on the evaluation images and arg-max agreement with the FP run
    (summary[0]) of every (run, logits) in summary."""
    fp_arg = summary[0][1].argmax(1)
    n = ye.shape[0]
    print("eval n=%d, calib n=%d, fp min top1-top2 margin %.3g" % (n, n_calib, min_margin(summary[0][1])))
    for name, lg in summary:
        acc = int((lg.argmax(1) == ye).sum())
        agree = int((lg.argmax(1) == fp_arg).sum())
        print("  %-12s top-1 %6.2f %% (%d/%d)  argmax == fp: %d/%d%s" % (
            name, 100.0 * acc / n, acc, n, agree, n,
            "  min margin %.3g" % min_margin(lg) if margins else ""))


def print_test_correct(st):
    for k in sorted(k for k in st if k.endswith(".test_correct")):
        print("  %-28s %d / 10000" % (k, int(st[k][0])))


# --------------------------------------------------------------------------

def main():
    t0 = time.time()
    P, cfg = load_model()
    xc, xe, ye, xte, yte = load_data(N_CALIB, N_EVAL)

    def test_correct(params, hook):
        return count_correct(qforward, params, cfg, hook, xte, yte)

    st, meta = new_fixture("examples/models/fmnist_vit.safetensors",
                           "tests/reference/make_qmodel_fixtures.py", xc, xe, ye)

    with torch.no_grad():
        fp = qforward(P, cfg, xe, FP())
        ref, _ = vit_ref.forward(P, cfg, xe)
        assert torch.allclose(fp, ref, atol=1e-5, rtol=0), float((fp - ref).abs().max())
        st["fp.logits"] = fp
        st["fp.test_correct"] = test_correct(P, FP())
        summary = [("fp", fp)]
        notes = []
        reparam_diff = None

        for run, method, wb, ab in RUNS:
            if method == "repq":
                hk = RepQViT(wb, ab)
                Pr, ratios = hk.calibrate(qforward, P, cfg, xc, fold_sites(cfg))
                logits = qforward(Pr, cfg, xe, hk)
                st[run + ".test_correct"] = test_correct(Pr, hk)
                hk.store(st, run)
                for i in range(cfg.depth):
                    b = "blocks.%d." % i
                    for n in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
                              "attn.qkv.bias", "mlp.fc1.bias"):
                        st["%s.%s%s" % (run, b, n)] = Pr[b + n]
                    for lin in ("attn.qkv", "mlp.fc1"):
                        st["%s.%s%s.reparam_r" % (run, b, lin)] = ratios[b + lin]
                        if (run, i) == FULL_REPARAM_W:
                            st["%s.%s%s.weight" % (run, b, lin)] = Pr[b + lin + ".weight"]
                if run == "repq_w4a4":
                    fpr = qforward(Pr, cfg, xe, FP())
                    st["fp_reparam_w4a4.logits"] = fpr
                    reparam_diff = float((fpr - fp).abs().max())
                meta[run] = ("RepQ-ViT W%dA%d: sequential calibration on the calib batch "
                             "(image 8 bit per tensor, LN outputs per channel, q/k/v/proj/fc2/head "
                             "inputs per tensor, softmax log-sqrt2, weights per row), then "
                             "scale reparameterisation of norm1->qkv and norm2->fc1 (input per "
                             "tensor (mean D, mean z), weights re-searched); logits of the "
                             "final fake-quant model on the eval images" % (wb, ab))
                notes.append(hk.note(run))
            else:
                hk = MinMax(wb, ab)
                qforward(P, cfg, xc, hk)                   # FP ranges
                hk.recording = False
                logits = qforward(P, cfg, xe, hk)
                st[run + ".test_correct"] = test_correct(P, hk)
                for pt in hk.order:
                    lo, hi = hk.rng[pt]
                    st["%s.%s.min" % (run, pt)] = lo.reshape(1)
                    st["%s.%s.max" % (run, pt)] = hi.reshape(1)
                for layer, s in hk.w_scale.items():
                    st["%s.%s.weight.scale" % (run, layer)] = s
                meta[run] = ("PSAQ-ViT min/max W%dA%d: ranges of %d activation points from one FP "
                             "forward of the calib batch, asymmetric activations, symmetric per-row "
                             "weights, softmax and biases FP; logits on the eval images"
                             % (wb, ab, len(hk.order)))
                notes.append("%s: %d activation ranges, %d weights" % (run, len(hk.order), len(hk.w_scale)))
            st[run + ".logits"] = logits
            summary.append((run, logits))

    meta["fp_reparam_w4a4"] = ("FP logits of the model reparameterised with the repq_w4a4 "
                               "per-channel LN-output scales, no quantization")
    meta["full_reparam_weights"] = "%s block %d (other blocks: W[:, c] * reparam_r[c])" % FULL_REPARAM_W
    st, nbytes = save_fixture(OUT, st, meta)

    print_summary(summary, ye, N_CALIB)
    print("max |fp_reparam_w4a4 - fp| = %.3g" % reparam_diff)
    print_test_correct(st)
    for n in notes:
        print("  " + n)
    print("%.1f s" % (time.time() - t0))
    assert reparam_diff < 1e-4
    assert nbytes < MAX_BYTES


if __name__ == "__main__":
    main()
