"""Independent PyTorch reference of the ViT forward used by libsardfq.

Semantics follow timm's VisionTransformer (and torchvision's vit_*, which is
the same network under other names), written here with plain torch ops:

  tokens  = patchify(x) @ W_pe^T + b_pe          (Conv2d kernel=stride=patch,
                                                  patches in raster order)
  x       = [cls, (dist,) tokens] + pos_embed    (pos_embed covers the prefix)
  block:  x = x + proj(attn(LN1(x)))
          x = x + fc2(GELU_erf(fc1(LN2(x))))
  attn:   qkv = Linear(D, 3D), rows [Q; K; V], heads contiguous inside each
          (reshape(B, N, 3, H, hd)); softmax(q k^T * hd^-0.5) over the keys
  out:    LN(x); logits = head(x[:, 0])
          distilled: (head(x[:, 0]) + head_dist(x[:, 1])) / 2
  LayerNorm eps = 1e-6.

The model keeps the class-token attention rows of every block and head,
attn[b, block, head, t] = softmax probability of query token 0 over key t, as
part of the autograd graph (so a loss on them back-propagates to the input).

Parameters live in a plain dict keyed by timm names; helpers convert to and
from torchvision names.
"""
import math

import torch
import torch.nn.functional as F

LN_EPS = 1e-6


# --------------------------------------------------------------------------
# Config and parameter naming
# --------------------------------------------------------------------------

class ViTConfig:
    def __init__(self, img_h, img_w, patch, in_chans, embed_dim, depth,
                 num_heads, mlp_hidden, num_classes, distilled=False):
        assert img_h % patch == 0 and img_w % patch == 0
        assert embed_dim % num_heads == 0
        self.img_h, self.img_w, self.patch = img_h, img_w, patch
        self.in_chans, self.embed_dim, self.depth = in_chans, embed_dim, depth
        self.num_heads, self.mlp_hidden = num_heads, mlp_hidden
        self.num_classes, self.distilled = num_classes, distilled
        self.grid_h, self.grid_w = img_h // patch, img_w // patch
        self.num_prefix = 2 if distilled else 1
        self.num_tokens = self.num_prefix + self.grid_h * self.grid_w
        self.head_dim = embed_dim // num_heads

    def __repr__(self):
        return ("ViTConfig(img=%dx%d patch=%d C=%d D=%d depth=%d heads=%d "
                "mlp=%d K=%d distilled=%s N=%d)" % (
                    self.img_h, self.img_w, self.patch, self.in_chans,
                    self.embed_dim, self.depth, self.num_heads,
                    self.mlp_hidden, self.num_classes, self.distilled,
                    self.num_tokens))


def param_shapes(cfg):
    """Ordered dict name -> shape, timm naming."""
    D, C, p = cfg.embed_dim, cfg.in_chans, cfg.patch
    s = {}
    s["cls_token"] = (1, 1, D)
    if cfg.distilled:
        s["dist_token"] = (1, 1, D)
    s["pos_embed"] = (1, cfg.num_tokens, D)
    s["patch_embed.proj.weight"] = (D, C, p, p)
    s["patch_embed.proj.bias"] = (D,)
    for i in range(cfg.depth):
        b = "blocks.%d." % i
        s[b + "norm1.weight"] = (D,)
        s[b + "norm1.bias"] = (D,)
        s[b + "attn.qkv.weight"] = (3 * D, D)
        s[b + "attn.qkv.bias"] = (3 * D,)
        s[b + "attn.proj.weight"] = (D, D)
        s[b + "attn.proj.bias"] = (D,)
        s[b + "norm2.weight"] = (D,)
        s[b + "norm2.bias"] = (D,)
        s[b + "mlp.fc1.weight"] = (cfg.mlp_hidden, D)
        s[b + "mlp.fc1.bias"] = (cfg.mlp_hidden,)
        s[b + "mlp.fc2.weight"] = (D, cfg.mlp_hidden)
        s[b + "mlp.fc2.bias"] = (D,)
    s["norm.weight"] = (D,)
    s["norm.bias"] = (D,)
    s["head.weight"] = (cfg.num_classes, D)
    s["head.bias"] = (cfg.num_classes,)
    if cfg.distilled:
        s["head_dist.weight"] = (cfg.num_classes, D)
        s["head_dist.bias"] = (cfg.num_classes,)
    return s


def random_params(cfg, generator, dtype=torch.float32):
    """Random weights, scaled so activations stay O(1) while attention is
    clearly non-uniform (attention logits of std ~1.5) and LayerNorm affine
    parameters differ from the identity."""
    g = generator
    D = cfg.embed_dim

    def rn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    out = {}
    for name, shape in param_shapes(cfg).items():
        if name in ("cls_token", "dist_token"):
            t = rn(*shape)
        elif name == "pos_embed":
            t = 0.5 * rn(*shape)
        elif name == "patch_embed.proj.weight":
            fan_in = shape[1] * shape[2] * shape[3]
            t = rn(*shape) / math.sqrt(fan_in)
        elif name.endswith("norm1.weight") or name.endswith("norm2.weight") \
                or name == "norm.weight":
            t = 1.0 + 0.1 * rn(*shape)
        elif name.endswith("attn.qkv.weight"):
            # q, k entries of std ~1.2 -> q.k*scale of std ~1.5
            t = 1.2 * rn(*shape) / math.sqrt(D)
        elif name.endswith(".weight"):
            t = rn(*shape) / math.sqrt(shape[1])
        elif name.endswith(".bias"):
            t = 0.1 * rn(*shape)
        else:
            raise AssertionError(name)
        out[name] = t.to(dtype).contiguous()
    return out


def timm_to_torchvision(sd, legacy_mlp=False):
    """timm-named dict -> torchvision-named dict (no distillation)."""
    assert "dist_token" not in sd
    out = {}
    fc1, fc2 = ("linear_1", "linear_2") if legacy_mlp else ("0", "3")
    for k, v in sd.items():
        if k == "cls_token":
            nk = "class_token"
        elif k == "pos_embed":
            nk = "encoder.pos_embedding"
        elif k.startswith("patch_embed.proj."):
            nk = "conv_proj." + k.split(".")[-1]
        elif k.startswith("norm."):
            nk = "encoder.ln." + k.split(".")[-1]
        elif k.startswith("head."):
            nk = "heads.head." + k.split(".")[-1]
        elif k.startswith("blocks."):
            parts = k.split(".")
            i, rest = parts[1], ".".join(parts[2:])
            m = {
                "norm1.weight": "ln_1.weight", "norm1.bias": "ln_1.bias",
                "norm2.weight": "ln_2.weight", "norm2.bias": "ln_2.bias",
                "attn.qkv.weight": "self_attention.in_proj_weight",
                "attn.qkv.bias": "self_attention.in_proj_bias",
                "attn.proj.weight": "self_attention.out_proj.weight",
                "attn.proj.bias": "self_attention.out_proj.bias",
                "mlp.fc1.weight": "mlp.%s.weight" % fc1,
                "mlp.fc1.bias": "mlp.%s.bias" % fc1,
                "mlp.fc2.weight": "mlp.%s.weight" % fc2,
                "mlp.fc2.bias": "mlp.%s.bias" % fc2,
            }[rest]
            nk = "encoder.layers.encoder_layer_%s.%s" % (i, m)
        else:
            raise KeyError(k)
        out[nk] = v
    return out


def torchvision_to_timm(sd):
    """Inverse of timm_to_torchvision (accepts both mlp namings)."""
    out = {}
    for k, v in sd.items():
        if k == "class_token":
            nk = "cls_token"
        elif k == "encoder.pos_embedding":
            nk = "pos_embed"
        elif k.startswith("conv_proj."):
            nk = "patch_embed.proj." + k.split(".")[-1]
        elif k.startswith("encoder.ln."):
            nk = "norm." + k.split(".")[-1]
        elif k.startswith("heads.head."):
            nk = "head." + k.split(".")[-1]
        elif k.startswith("encoder.layers.encoder_layer_"):
            rest = k[len("encoder.layers.encoder_layer_"):]
            i, rest = rest.split(".", 1)
            m = {
                "ln_1.weight": "norm1.weight", "ln_1.bias": "norm1.bias",
                "ln_2.weight": "norm2.weight", "ln_2.bias": "norm2.bias",
                "self_attention.in_proj_weight": "attn.qkv.weight",
                "self_attention.in_proj_bias": "attn.qkv.bias",
                "self_attention.out_proj.weight": "attn.proj.weight",
                "self_attention.out_proj.bias": "attn.proj.bias",
                "mlp.0.weight": "mlp.fc1.weight", "mlp.0.bias": "mlp.fc1.bias",
                "mlp.3.weight": "mlp.fc2.weight", "mlp.3.bias": "mlp.fc2.bias",
                "mlp.linear_1.weight": "mlp.fc1.weight",
                "mlp.linear_1.bias": "mlp.fc1.bias",
                "mlp.linear_2.weight": "mlp.fc2.weight",
                "mlp.linear_2.bias": "mlp.fc2.bias",
            }[rest]
            nk = "blocks.%s.%s" % (i, m)
        else:
            raise KeyError(k)
        out[nk] = v
    return out


# --------------------------------------------------------------------------
# Ops (plain torch)
# --------------------------------------------------------------------------

def layer_norm(x, w, b, eps=LN_EPS):
    mu = x.mean(dim=-1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(dim=-1, keepdim=True)   # biased variance
    return xc / torch.sqrt(var + eps) * w + b


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def linear(x, w, b):
    return x @ w.t() + b


def patchify(x, p):
    """[B, C, H, W] -> [B, gh*gw, C*p*p], patches in raster order, each
    patch flattened (c, i, j) like a Conv2d weight [D, C, p, p]."""
    B, C, H, W = x.shape
    gh, gw = H // p, W // p
    t = x.reshape(B, C, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(B, gh * gw, C * p * p)


def attention(x, wqkv, bqkv, wproj, bproj, num_heads, linear=linear):
    """x: [B, N, D]. Returns (out [B, N, D], probs [B, H, N, N])."""
    B, N, D = x.shape
    hd = D // num_heads
    qkv = linear(x, wqkv, bqkv).reshape(B, N, 3, num_heads, hd)
    qkv = qkv.permute(2, 0, 3, 1, 4)            # [3, B, H, N, hd]
    q, k, v = qkv[0], qkv[1], qkv[2]
    scores = (q @ k.transpose(-2, -1)) * (hd ** -0.5)
    probs = torch.softmax(scores, dim=-1)       # over keys
    o = (probs @ v).transpose(1, 2).reshape(B, N, D)
    return linear(o, wproj, bproj), probs


def _ln_fast(x, w, b, eps=LN_EPS):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def forward(params, cfg, x, fast=False):
    """params: timm-named dict; x: [B, C, H, W] (normalised).
    Returns (logits [B, K], attn [B, depth, heads, N]); attn is the class
    token's attention rows and is part of the autograd graph.
    fast=True swaps the hand-written LayerNorm/GELU/linear for torch's fused
    kernels (same maths, asserted equal in self_check); used for training
    only, never for the goldens."""
    layer_norm = _ln_fast if fast else globals()["layer_norm"]
    gelu_erf = F.gelu if fast else globals()["gelu_erf"]
    linear = F.linear if fast else globals()["linear"]
    P = params
    B = x.shape[0]
    D = cfg.embed_dim
    w_pe = P["patch_embed.proj.weight"].reshape(D, -1)
    tok = linear(patchify(x, cfg.patch), w_pe, P["patch_embed.proj.bias"])
    prefix = [P["cls_token"].expand(B, 1, D)]
    if cfg.distilled:
        prefix.append(P["dist_token"].expand(B, 1, D))
    h = torch.cat(prefix + [tok], dim=1) + P["pos_embed"]
    rows = []
    for i in range(cfg.depth):
        b = "blocks.%d." % i
        y = layer_norm(h, P[b + "norm1.weight"], P[b + "norm1.bias"])
        a, probs = attention(y, P[b + "attn.qkv.weight"], P[b + "attn.qkv.bias"],
                             P[b + "attn.proj.weight"], P[b + "attn.proj.bias"],
                             cfg.num_heads, linear)
        rows.append(probs[:, :, 0, :])          # [B, H, N]
        h = h + a
        y = layer_norm(h, P[b + "norm2.weight"], P[b + "norm2.bias"])
        y = linear(gelu_erf(linear(y, P[b + "mlp.fc1.weight"], P[b + "mlp.fc1.bias"])),
                   P[b + "mlp.fc2.weight"], P[b + "mlp.fc2.bias"])
        h = h + y
    h = layer_norm(h, P["norm.weight"], P["norm.bias"])
    logits = linear(h[:, 0], P["head.weight"], P["head.bias"])
    if cfg.distilled:
        logits = (logits + linear(h[:, 1], P["head_dist.weight"], P["head_dist.bias"])) / 2
    attn = torch.stack(rows, dim=1)             # [B, depth, H, N]
    return logits, attn


class ViTModule(torch.nn.Module):
    """Trainable wrapper: parameters registered under timm names (dots are
    mapped to '__' because nn.Module attribute names cannot hold dots)."""

    def __init__(self, cfg, params, fast=False):
        super().__init__()
        self.cfg = cfg
        self.fast = fast
        self._names = list(params.keys())
        for k, v in params.items():
            self.register_parameter(k.replace(".", "__"),
                                    torch.nn.Parameter(v.clone()))

    def params(self):
        return {k: getattr(self, k.replace(".", "__")) for k in self._names}

    def timm_state_dict(self):
        return {k: v.detach().clone() for k, v in self.params().items()}

    def forward(self, x):
        return forward(self.params(), self.cfg, x, fast=self.fast)


# --------------------------------------------------------------------------
# Self-check against torch's own modules and a naive loop
# --------------------------------------------------------------------------

def _naive_attention_rows(x, wqkv, bqkv, num_heads):
    """Class-token rows by explicit loops (float64)."""
    B, N, D = x.shape
    hd = D // num_heads
    out = torch.zeros(B, num_heads, N, dtype=x.dtype)
    for b in range(B):
        for h in range(num_heads):
            q = x[b, 0] @ wqkv[h * hd:(h + 1) * hd].t() + bqkv[h * hd:(h + 1) * hd]
            s = []
            for t in range(N):
                k = x[b, t] @ wqkv[D + h * hd:D + (h + 1) * hd].t() \
                    + bqkv[D + h * hd:D + (h + 1) * hd]
                s.append(float((q * k).sum()) / math.sqrt(hd))
            m = max(s)
            e = [math.exp(v - m) for v in s]
            z = sum(e)
            for t in range(N):
                out[b, h, t] = e[t] / z
    return out


def self_check(seed=1234):
    """Asserts that the reference agrees with torch.nn.functional.conv2d,
    layer_norm, gelu, multi_head_attention_forward (torchvision's attention)
    and a naive loop. Runs in float64."""
    g = torch.Generator().manual_seed(seed)
    cfg = ViTConfig(16, 24, 8, 3, 24, 2, 3, 48, 5)
    P = random_params(cfg, g, dtype=torch.float64)
    x = torch.randn(2, 3, 16, 24, generator=g, dtype=torch.float64)
    tol = 1e-10
    # patch embedding == Conv2d
    ref = F.conv2d(x, P["patch_embed.proj.weight"], P["patch_embed.proj.bias"],
                   stride=cfg.patch).flatten(2).transpose(1, 2)
    mine = linear(patchify(x, cfg.patch), P["patch_embed.proj.weight"].reshape(24, -1),
                  P["patch_embed.proj.bias"])
    assert (ref - mine).abs().max() < tol
    # layer norm, gelu
    y = torch.randn(4, 7, 24, generator=g, dtype=torch.float64)
    w, b = P["norm.weight"], P["norm.bias"]
    assert (F.layer_norm(y, (24,), w, b, LN_EPS) - layer_norm(y, w, b)).abs().max() < tol
    assert (F.gelu(y) - gelu_erf(y)).abs().max() < tol
    # attention == multi_head_attention_forward (in_proj [Q;K;V], heads
    # contiguous), per-head weights too
    wq, bq = P["blocks.0.attn.qkv.weight"], P["blocks.0.attn.qkv.bias"]
    wo, bo = P["blocks.0.attn.proj.weight"], P["blocks.0.attn.proj.bias"]
    yN = torch.randn(2, cfg.num_tokens, 24, generator=g, dtype=torch.float64)
    out, probs = attention(yN, wq, bq, wo, bo, cfg.num_heads)
    yt = yN.transpose(0, 1)                     # [N, B, D]
    ref_out, ref_w = F.multi_head_attention_forward(
        yt, yt, yt, 24, cfg.num_heads, wq, bq, None, None, False, 0.0, wo, bo,
        training=False, need_weights=True, average_attn_weights=False)
    assert (ref_out.transpose(0, 1) - out).abs().max() < tol
    assert (ref_w - probs).abs().max() < tol
    naive = _naive_attention_rows(yN, wq, bq, cfg.num_heads)
    assert (naive - probs[:, :, 0, :]).abs().max() < tol
    # attention rows exposed by forward() equal the naive rows of block 0
    logits, attn = forward(P, cfg, x)
    h0 = torch.cat([P["cls_token"].expand(2, 1, 24), mine], 1) + P["pos_embed"]
    y0 = layer_norm(h0, P["blocks.0.norm1.weight"], P["blocks.0.norm1.bias"])
    assert (_naive_attention_rows(y0, wq, bq, cfg.num_heads) - attn[:, 0]).abs().max() < tol
    assert torch.allclose(attn.sum(-1), torch.ones_like(attn.sum(-1)))
    # fused-kernel path (training) == hand-written path
    lf, af = forward(P, cfg, x, fast=True)
    assert (lf - logits).abs().max() < tol and (af - attn).abs().max() < tol
    # torchvision round trip
    tv = timm_to_torchvision(P)
    back = torchvision_to_timm(tv)
    assert set(back) == set(P) and all(torch.equal(back[k], P[k]) for k in P)
    # gradient through attention rows reaches the input (gradcheck, small)
    xs = x[:1].clone().requires_grad_(True)
    gr = torch.randn(1, cfg.depth, cfg.num_heads, cfg.num_tokens, generator=g,
                     dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: (forward(P, cfg, z)[1] * gr).sum(), (xs,))
    return True


if __name__ == "__main__":
    torch.set_num_threads(2)
    self_check()
    print("vit_ref self-check passed")
