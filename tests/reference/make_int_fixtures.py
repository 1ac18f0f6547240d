"""Golden logits of the integer executor, computed independently in PyTorch
from quantized model files: integer matrix products on the codes (int64,
exact), float32 epilogues, everything else float32 as in the fake-quantized
forward.

Inputs: tests/data/int_<arch>_w<W>a<A>.q.safetensors, quantized models written
by libsardfq (RepQ-ViT, 32 Gaussian-noise calibration images) from the tiny
fixture models; the file holds each weight's codes with per-row scale and
zero point, and each activation quantizer's scale and zero point (the format
of src/formats/qio.c). They were made with

  for wa in 8,8 4,4 3,3; do w=${wa%,*}; a=${wa#*,}
    build/examples/sardfq quantize --model tests/data/vit_f16.model.safetensors \\
      --synth noise --seed 1 --wbits $w --abits $a --out tests/data/int_vit_w${w}a$a.q.safetensors
    build/examples/sardfq quantize --model tests/data/swin_a.timm.model.safetensors \\
      --synth noise --seed 1 --wbits $w --abits $a --out tests/data/int_swin_w${w}a$a.q.safetensors
  done

The arithmetic (what the library's integer executor computes):
  linear   a = clamp(round(x / Da) + za, 0, 2^b - 1) (x / Da + za rounded for
           min/max inputs), S = sum (a - za)(w - zw) in int64,
           y = fma(float32(S), float32(Da * Dw[n]), b[n]) (one rounding,
           emulated in float64), residual adds y to the stream in float32;
  q k^T    S on the codes of q (times the scale first on Swin, as timm) and
           k, scores = float32(S) * float32(float32(alpha Dq) Dk) (ViT alpha =
           1 / sqrtf(head_dim)), + relative bias + mask (Swin);
  softmax, the log-sqrt2 probabilities, v's uniform fake quantization, P v,
  LayerNorm, GELU: float32.

Output: tests/data/int_exec.golden.safetensors with, per file tag, the input
images <tag>.images (16 normalised noise images, seed 0) and <tag>.logits.

  /usr/bin/python3 tests/reference/make_int_fixtures.py
"""
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import make_quant_fixtures as mq  # noqa: E402
import stio  # noqa: E402
import swin_ref  # noqa: E402
import vit_ref  # noqa: E402

F32, F64 = torch.float32, torch.float64
DATA = os.path.join(ROOT, "tests", "data")
TAGS = ["int_vit_w8a8", "int_vit_w4a4", "int_vit_w3a3", "int_swin_w8a8", "int_swin_w4a4", "int_swin_w3a3"]
N_IMG = 16

torch.set_num_threads(1)


class QFile:
    """A quantized model file: float tensors, activation quantizers and
    integer weights by name."""

    def __init__(self, path):
        self.t, self.meta, _ = stio.load(path)

    def act(self, name):
        kind = self.meta["sardfq.q." + name].split()
        q = dict(kind=kind[0], bits=int(kind[1]), scale=self.t[name + ".scale"].reshape(()))
        if kind[0] != "log":
            q["zero"] = self.t[name + ".zero"].reshape(())
        return q

    def weight(self, name):
        bits = int(self.meta["sardfq.q." + name].split()[0])
        shape = [int(s) for s in self.meta["sardfq.q." + name].split()[1].split(",")]
        rows, cols = shape[0], int(math.prod(shape[1:]))
        raw = self.t[name + "_codes"].to(torch.int64)
        if bits <= 4:  # two codes per byte, low nibble = even column
            lo, hi = raw & 15, raw >> 4
            codes = torch.stack([lo, hi], dim=-1).reshape(rows, -1)[:, :cols]
        else:
            codes = raw.reshape(rows, cols)
        scale, zero = self.t[name + "_scale"], self.t[name + "_zero"]
        assert torch.equal(zero, torch.round(zero))
        return dict(codes=codes, scale=scale, zero=zero.to(torch.int64), bits=bits)

    def deq(self, name):
        w = self.weight(name)
        return ((w["codes"].to(F32) - w["zero"].to(F32)[:, None]) * w["scale"][:, None])


def codes(x, q):
    """The integer a - za of x under uniform quantizer q (float32 steps)."""
    t = x / q["scale"]
    top = 2 ** q["bits"] - 1
    if q["kind"] == "uniform-psaq":
        lv = torch.clamp(torch.round(t + q["zero"]), 0, top)
    else:
        lv = torch.clamp(torch.round(t) + q["zero"], 0, top)
    assert float(q["zero"]) == round(float(q["zero"]))
    return lv.to(torch.int64) - int(q["zero"])


def fma32(s_int, scale, bias):
    """float32(float32(S) * scale + bias) with one rounding (float64 holds
    the 24 x 24-bit product exactly)."""
    s = s_int.to(F32).to(F64)
    y = s * scale.to(F64)
    if bias is not None:
        y = y + bias.to(F64)
    return y.to(F32)


def ilinear(x, qin, w, bias):
    a = codes(x, qin)
    wz = w["codes"] - w["zero"][:, None]
    S = a.reshape(-1, a.shape[-1]) @ wz.t()
    scale = (qin["scale"] * w["scale"]).to(F32)
    y = fma32(S, scale, bias)
    return y.reshape(*x.shape[:-1], -1)


def uq(x, q):
    return mq.uq_fake(x, q["scale"], q["zero"], q["bits"])


def attention_int(q, k, Q, K, alpha):
    """scores of int q k^T; q, k [..., N, hd]."""
    S = codes(q, Q) @ codes(k, K).transpose(-2, -1)
    scale = ((torch.tensor(alpha, dtype=F32) * Q["scale"]).to(F32) * K["scale"]).to(F32)
    return fma32(S, scale, None)


def src(meta, key):
    return meta["source." + key]


def vit_forward(f, x):
    meta = f.meta
    D, depth = int(src(meta, "embed_dim")), int(src(meta, "depth"))
    H = int(src(meta, "num_heads"))
    p = int(src(meta, "patch_size"))
    hd = D // H
    alpha = float(torch.tensor(1.0, dtype=F32) / torch.sqrt(torch.tensor(float(hd), dtype=F32)))
    T = f.t
    B = x.shape[0]
    pw = f.weight("patch_embed.proj.weight")
    tok = ilinear(vit_ref.patchify(x, p), f.act("patch_embed.input"), pw, T["patch_embed.proj.bias"])
    h = torch.cat([T["cls_token"].expand(B, 1, D), tok], dim=1) + T["pos_embed"]
    N = h.shape[1]
    for i in range(depth):
        b = "blocks.%d." % i
        y = vit_ref.layer_norm(h, T[b + "norm1.weight"], T[b + "norm1.bias"])
        qkv = ilinear(y, f.act(b + "attn.qkv.input"), f.weight(b + "attn.qkv.weight"), T[b + "attn.qkv.bias"])
        qkv = qkv.reshape(B, N, 3, H, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        S = attention_int(q, k, f.act(b + "attn.matmul1.a"), f.act(b + "attn.matmul1.b"), alpha)
        P = torch.softmax(S, dim=-1)
        lq = f.act(b + "attn.matmul2.a")
        P = mq.lq_fake(P, lq["scale"], lq["bits"])
        v = uq(v, f.act(b + "attn.matmul2.b"))
        o = (P @ v).transpose(1, 2).reshape(B, N, D)
        h = h + ilinear(o, f.act(b + "attn.proj.input"), f.weight(b + "attn.proj.weight"), T[b + "attn.proj.bias"])
        y = vit_ref.layer_norm(h, T[b + "norm2.weight"], T[b + "norm2.bias"])
        g = vit_ref.gelu_erf(ilinear(y, f.act(b + "mlp.fc1.input"), f.weight(b + "mlp.fc1.weight"),
                                     T[b + "mlp.fc1.bias"]))
        h = h + ilinear(g, f.act(b + "mlp.fc2.input"), f.weight(b + "mlp.fc2.weight"), T[b + "mlp.fc2.bias"])
    h = vit_ref.layer_norm(h, T["norm.weight"], T["norm.bias"])
    return ilinear(h[:, 0], f.act("head.input"), f.weight("head.weight"), T["head.bias"])


def swin_forward(f, x, cfg):
    T = dict(f.t)
    B = x.shape[0]
    C0 = cfg.embed_dim
    tok = ilinear(vit_ref.patchify(x, cfg.patch), f.act("patch_embed.input"), f.weight("patch_embed.proj.weight"),
                  T["patch_embed.proj.bias"])
    h = tok.reshape(B, cfg.grid_h, cfg.grid_w, C0)
    h = swin_ref.layer_norm(h, T["patch_embed.norm.weight"], T["patch_embed.norm.bias"])
    for s in range(cfg.num_stages):
        if s > 0:
            d = "layers.%d.downsample." % s
            y = swin_ref.merge_norm(h, T, s)
            h = ilinear(y, f.act(d + "reduction.input"), f.weight(d + "reduction.weight"), T[d + "reduction.bias"])
        for bi in range(cfg.depths[s]):
            B_, H, W, C, nh, hd, wh, ww, sh, sw, N, k = swin_ref.block_dims(h, cfg, s, bi)
            y = swin_ref.layer_norm(h, T[k + "norm1.weight"], T[k + "norm1.bias"])
            if sh or sw:
                y = torch.roll(y, shifts=(-sh, -sw), dims=(1, 2))
            win = swin_ref.window_partition(y, wh, ww)
            nW = win.shape[1]
            qkv = ilinear(win, f.act(k + "attn.qkv.input"), f.weight(k + "attn.qkv.weight"), T[k + "attn.qkv.bias"])
            qkv = qkv.reshape(B, nW, N, 3, nh, hd).permute(3, 0, 1, 4, 2, 5)
            q, kk, v = qkv[0], qkv[1], qkv[2]
            alpha = torch.tensor(1.0, dtype=F32) / torch.sqrt(torch.tensor(float(hd), dtype=F32))
            S = attention_int(q * alpha, kk, f.act(k + "attn.matmul1.a"), f.act(k + "attn.matmul1.b"), 1.0)
            S = S + swin_ref.relative_bias(T[k + "attn.relative_position_bias_table"], cfg, wh, ww)
            if sh or sw:
                S = S + swin_ref.shift_mask(H, W, wh, ww, sh, sw, S.dtype)[:, None]
            P = torch.softmax(S, dim=-1)
            lq = f.act(k + "attn.matmul2.a")
            P = mq.lq_fake(P, lq["scale"], lq["bits"])
            v = uq(v, f.act(k + "attn.matmul2.b"))
            o = (P @ v).permute(0, 1, 3, 2, 4).reshape(B, nW, N, C)
            o = ilinear(o, f.act(k + "attn.proj.input"), f.weight(k + "attn.proj.weight"), T[k + "attn.proj.bias"])
            o = swin_ref.window_reverse(o, H, W, wh, ww)
            if sh or sw:
                o = torch.roll(o, shifts=(sh, sw), dims=(1, 2))
            h = h + o
            y = swin_ref.layer_norm(h, T[k + "norm2.weight"], T[k + "norm2.bias"])
            g = swin_ref.gelu_erf(ilinear(y, f.act(k + "mlp.fc1.input"), f.weight(k + "mlp.fc1.weight"),
                                          T[k + "mlp.fc1.bias"]))
            h = h + ilinear(g, f.act(k + "mlp.fc2.input"), f.weight(k + "mlp.fc2.weight"), T[k + "mlp.fc2.bias"])
    h = swin_ref.layer_norm(h, T["norm.weight"], T["norm.bias"])
    pooled = h.mean(dim=(1, 2))
    return ilinear(pooled, f.act("head.input"), f.weight("head.fc.weight"), T["head.fc.bias"])


def main():
    out, meta = {}, {}
    for tag in TAGS:
        f = QFile(os.path.join(DATA, tag + ".q.safetensors"))
        assert f.meta["sardfq.quant.scheme"] == "repq"
        g = torch.Generator().manual_seed(0)
        m = f.meta
        if tag.startswith("int_vit"):
            C, S = int(src(m, "in_chans")), int(src(m, "img_size"))
            x = torch.randn(N_IMG, C, S, S, generator=g, dtype=F32)
            logits = vit_forward(f, x)
        else:
            ints = lambda v: tuple(int(t) for t in v.split(","))  # noqa: E731
            S = int(src(m, "img_size"))
            cfg = swin_ref.SwinConfig(S, S, int(src(m, "patch_size")), int(src(m, "in_chans")),
                                      int(src(m, "embed_dim")), ints(src(m, "depths")), ints(src(m, "num_heads")),
                                      int(src(m, "window_size")), float(src(m, "mlp_ratio")),
                                      int(src(m, "num_classes")))
            x = torch.randn(N_IMG, cfg.in_chans, cfg.img_h, cfg.img_w, generator=g, dtype=F32)
            logits = swin_forward(f, x, cfg)
        out[tag + ".images"] = x
        out[tag + ".logits"] = logits
        meta[tag] = "integer arithmetic of %s.q.safetensors on %d N(0,1) images" % (tag, N_IMG)
        print("%-16s max |logit| %.4g" % (tag, float(logits.abs().max())))
    stio.save(os.path.join(DATA, "int_exec.golden.safetensors"), out, meta)


if __name__ == "__main__":
    main()
