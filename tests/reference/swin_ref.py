"""Independent PyTorch reference of the Swin Transformer (V1) forward.

Semantics are timm's current `SwinTransformer` (`swin_*_patch4_window7_224`,
timm >= 0.9 naming and per-axis window rule), written with plain torch ops:

Parameters (dict keyed by current timm names; C_s = C0 * 2^s, M_s = int(C_s *
mlp_ratio), heads_s, w = configured window):
  patch_embed.proj.weight [C0, in_chans, p, p], patch_embed.proj.bias [C0]
  patch_embed.norm.weight/bias [C0]
  layers.s.downsample.norm.weight/bias [4C_{s-1}]            (s >= 1)
  layers.s.downsample.reduction.weight [2C_{s-1}, 4C_{s-1}]  (s >= 1, no bias)
  layers.s.blocks.b.{norm1.weight, norm1.bias [C_s],
      attn.qkv.weight [3C_s, C_s], attn.qkv.bias [3C_s],
      attn.proj.weight [C_s, C_s], attn.proj.bias [C_s],
      attn.relative_position_bias_table [R, heads_s],
      norm2.weight, norm2.bias [C_s], mlp.fc1.weight [M_s, C_s],
      mlp.fc1.bias [M_s], mlp.fc2.weight [C_s, M_s], mlp.fc2.bias [C_s]}
  norm.weight/bias [C_last]; head.fc.weight [K, C_last], head.fc.bias [K]
LayerNorm eps 1e-5 (biased variance), GELU = exact erf form.

Forward (x [B, in_chans, H, W], normalised):
  patch embed: Conv2d(kernel = stride = p) == patchify + matmul; tokens kept as
    a grid [B, H0, W0, C0] (H0 = H/p, W0 = W/p; raster order) -> LayerNorm.
  stage s: grid (Hs, Ws) = (H0 / 2^s, W0 / 2^s).
    s > 0 starts with patch merging of the previous grid x:
      x0 = x[2i, 2j], x1 = x[2i+1, 2j], x2 = x[2i, 2j+1], x3 = x[2i+1, 2j+1]
      concatenated in that order along channels (4C), LayerNorm(4C), then
      reduction (linear 4C -> 2C, no bias).
    block b, per axis a in (h, w):  window_a = min(w, res_a);
      shift_a = 0 if res_a <= w else (w // 2 if b is odd else 0)
      (timm's per-axis rule; res_a must be divisible by window_a, else error.
      Old timm used min(res) for both axes -- identical for square grids.)
    block: shortcut = x; h = LN1(x); h = roll(h, (-shift_h, -shift_w));
      partition into windows (windows in raster order over the grid, tokens in
      raster order inside a window, N = window_h * window_w);
      qkv = h Wqkv^T + b, rows [Q; K; V], heads contiguous (hd = C / heads);
      S = (q * hd^-0.5) k^T + B_rel + mask;  P = softmax over keys;
      O = P V -> proj; reverse windows; roll by (+shift_h, +shift_w);
      x = shortcut + O;  x = x + fc2(GELU(fc1(LN2(x)))).
  out: LN (norm) -> mean over all tokens of the last grid -> head.fc.

Relative position bias. For tokens i, j of a window with in-window
coordinates (y, x): dy = y_i - y_j, dx = x_i - x_j,
  B_rel[h, i, j] = table[(dy + th - 1) * (2 tw - 1) + (dx + tw - 1), h]
where (th, tw) is the window the TABLE was built for, read from its row count:
  R == (2w - 1)^2                   -> (th, tw) = (w, w) (configured window),
  R == (2 wh - 1) * (2 ww - 1)      -> (th, tw) = block's (clipped) window,
  anything else                     -> error.
If the grid is no smaller than w both are the same. When the window is clipped
(res < w) timm builds the table for the clipped window only (its state dict
then holds (2wh-1)(2ww-1) rows; a (2w-1)^2 checkpoint does not load into such
a model without timm's bicubic table resize). For a (2w-1)^2-row table and a
clipped window this reference DEFINES the bias as the central sub-table above
(stride/offsets from the table's w), which equals a timm model whose clipped
table holds exactly those rows (`clip_tables` produces it; checked).

Shifted-window mask (blocks with shift_h or shift_w > 0): each position of the
rolled grid gets, per axis, region 0 for [0, res - window), 1 for
[res - window, res - shift), 2 for [res - shift, res) (an axis with shift 0 is
one region, 0); label = region_h * 3 + region_w; pairs (i, j) in the same
window with different labels get -100 added to S[i, j] (timm's attn_mask,
[nW, N, N], 0 / -100).

Attention read-back (part of the autograd graph), returned with the logits:
for block l (stage-major order), head h, token t of the block's grid (raster
order of UNSHIFTED image positions):
  a_l[h, t] = (1 / (Hs Ws)) * sum over all queries q of P[q, t]
(P[q, t] = 0 when q and t are in different windows), i.e. the mean over
queries of the column; each a_l[h] sums to 1. Per image the vector is the
concatenation over blocks of a_l flattened [heads_l][Hs * Ws]:
  attn [B, T],  T = sum_l heads_l * Hs * Ws.

Name converters: current timm <-> old timm (< 0.9: the merge feeding stage s
stored as layers.(s-1).downsample.*, head.weight/bias, plus int64 buffers
layers.s.blocks.b.attn.relative_position_index [N, N] and, for shifted blocks,
float layers.s.blocks.b.attn_mask [nW, N, N]) and <-> torchvision
(features.0.0 conv, features.0.2 LN, stage s blocks at features.(2s+1).b with
mlp.0 / mlp.3 for fc1 / fc2 and an int64 attn.relative_position_index [N*N]
buffer, merging into stage s >= 1 at features.(2s).{norm, reduction}, norm,
head).
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_ref import gelu_erf, linear, patchify  # noqa: E402
from vit_ref import layer_norm as _layer_norm  # noqa: E402

LN_EPS = 1e-5
MASK_VALUE = -100.0


def layer_norm(x, w, b):
    return _layer_norm(x, w, b, eps=LN_EPS)


# --------------------------------------------------------------------------
# Config, geometry and parameter naming
# --------------------------------------------------------------------------

class SwinConfig:
    def __init__(self, img_h, img_w, patch, in_chans, embed_dim, depths,
                 num_heads, window, mlp_ratio, num_classes):
        assert len(depths) == len(num_heads) >= 1
        self.img_h, self.img_w, self.patch = img_h, img_w, patch
        self.in_chans, self.embed_dim = in_chans, embed_dim
        self.depths, self.num_heads = tuple(depths), tuple(num_heads)
        self.window, self.mlp_ratio = window, mlp_ratio
        self.num_classes = num_classes
        self.num_stages = len(depths)
        if img_h % patch or img_w % patch:
            raise ValueError("image size not divisible by the patch size")
        self.grid_h, self.grid_w = img_h // patch, img_w // patch
        f = 2 ** (self.num_stages - 1)
        if self.grid_h % f or self.grid_w % f:
            raise ValueError("patch grid not divisible by 2^(stages-1)")
        for s in range(self.num_stages):
            if self.dim(s) % self.num_heads[s]:
                raise ValueError("stage %d: dim not divisible by heads" % s)
            for b in range(self.depths[s]):
                self.block_geom(s, b)   # raises on a bad window

    def dim(self, s):
        return self.embed_dim * 2 ** s

    def mlp_hidden(self, s):
        return int(self.dim(s) * self.mlp_ratio)

    def res(self, s):
        return self.grid_h >> s, self.grid_w >> s

    def block_geom(self, s, b):
        """(window_h, window_w, shift_h, shift_w) of block b of stage s."""
        out_w, out_s = [], []
        for r in self.res(s):
            wa = min(self.window, r)
            sa = 0 if r <= self.window else (self.window // 2 if b % 2 else 0)
            if r % wa:
                raise ValueError("stage %d: resolution %d not divisible by window %d"
                                 % (s, r, wa))
            out_w.append(wa)
            out_s.append(sa)
        return out_w[0], out_w[1], out_s[0], out_s[1]

    def blocks(self):
        """Blocks in forward order: (stage, block, heads, Hs, Ws, offset in
        the read-back vector)."""
        out, off = [], 0
        for s in range(self.num_stages):
            hs, ws = self.res(s)
            for b in range(self.depths[s]):
                out.append((s, b, self.num_heads[s], hs, ws, off))
                off += self.num_heads[s] * hs * ws
        return out

    @property
    def attn_len(self):
        return sum(h * hs * ws for _, _, h, hs, ws, _ in self.blocks())

    def __repr__(self):
        return ("SwinConfig(img=%dx%d patch=%d in=%d C0=%d depths=%s heads=%s "
                "window=%d mlp_ratio=%g K=%d T=%d)" % (
                    self.img_h, self.img_w, self.patch, self.in_chans,
                    self.embed_dim, self.depths, self.num_heads, self.window,
                    self.mlp_ratio, self.num_classes, self.attn_len))


def table_rows(w_h, w_w):
    return (2 * w_h - 1) * (2 * w_w - 1)


def param_shapes(cfg, clipped_tables=False):
    """Ordered dict name -> shape (current timm naming). Tables have
    (2w-1)^2 rows for the configured w, or with clipped_tables=True the rows
    of the block's own (clipped) window, as timm constructs them."""
    C0, p = cfg.embed_dim, cfg.patch
    s_ = {}
    s_["patch_embed.proj.weight"] = (C0, cfg.in_chans, p, p)
    s_["patch_embed.proj.bias"] = (C0,)
    s_["patch_embed.norm.weight"] = (C0,)
    s_["patch_embed.norm.bias"] = (C0,)
    for s in range(cfg.num_stages):
        C, M, nh = cfg.dim(s), cfg.mlp_hidden(s), cfg.num_heads[s]
        if s > 0:
            Cp = cfg.dim(s - 1)
            d = "layers.%d.downsample." % s
            s_[d + "norm.weight"] = (4 * Cp,)
            s_[d + "norm.bias"] = (4 * Cp,)
            s_[d + "reduction.weight"] = (2 * Cp, 4 * Cp)
        for b in range(cfg.depths[s]):
            wh, ww, _, _ = cfg.block_geom(s, b)
            R = table_rows(wh, ww) if clipped_tables else table_rows(cfg.window, cfg.window)
            k = "layers.%d.blocks.%d." % (s, b)
            s_[k + "norm1.weight"] = (C,)
            s_[k + "norm1.bias"] = (C,)
            s_[k + "attn.qkv.weight"] = (3 * C, C)
            s_[k + "attn.qkv.bias"] = (3 * C,)
            s_[k + "attn.proj.weight"] = (C, C)
            s_[k + "attn.proj.bias"] = (C,)
            s_[k + "attn.relative_position_bias_table"] = (R, nh)
            s_[k + "norm2.weight"] = (C,)
            s_[k + "norm2.bias"] = (C,)
            s_[k + "mlp.fc1.weight"] = (M, C)
            s_[k + "mlp.fc1.bias"] = (M,)
            s_[k + "mlp.fc2.weight"] = (C, M)
            s_[k + "mlp.fc2.bias"] = (C,)
    Cl = cfg.dim(cfg.num_stages - 1)
    s_["norm.weight"] = (Cl,)
    s_["norm.bias"] = (Cl,)
    s_["head.fc.weight"] = (cfg.num_classes, Cl)
    s_["head.fc.bias"] = (cfg.num_classes,)
    return s_


def random_params(cfg, generator, dtype=torch.float32):
    """Random weights: activations O(1), attention clearly non-uniform but not
    one-hot (q.k*scale of std ~1.5 plus relative bias tables N(0, 0.5^2)),
    LayerNorm affine parameters 1 + 0.1 N / 0.1 N."""
    g = generator

    def rn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    out = {}
    for name, shape in param_shapes(cfg).items():
        if name == "patch_embed.proj.weight":
            t = rn(*shape) / math.sqrt(shape[1] * shape[2] * shape[3])
        elif name.endswith("norm.weight") or name.endswith("norm1.weight") \
                or name.endswith("norm2.weight"):
            t = 1.0 + 0.1 * rn(*shape)
        elif name.endswith("attn.qkv.weight"):
            t = 1.2 * rn(*shape) / math.sqrt(shape[1])
        elif name.endswith("relative_position_bias_table"):
            t = 0.5 * rn(*shape)
        elif name.endswith(".weight"):
            t = rn(*shape) / math.sqrt(shape[1])
        elif name.endswith(".bias"):
            t = 0.1 * rn(*shape)
        else:
            raise AssertionError(name)
        out[name] = t.to(dtype).contiguous()
    return out


def relative_index(wh, ww, th, tw):
    """[N, N] int64 table row of the pair (i, j) of a wh x ww window, for a
    table built for a th x tw window."""
    if th < wh or tw < ww:
        raise ValueError("table window %dx%d smaller than window %dx%d" % (th, tw, wh, ww))
    n = torch.arange(wh * ww)
    y, x = n // ww, n % ww
    dy = y[:, None] - y[None, :]
    dx = x[:, None] - x[None, :]
    return (dy + th - 1) * (2 * tw - 1) + (dx + tw - 1)


def table_window(cfg, rows, wh, ww):
    if rows == table_rows(cfg.window, cfg.window):
        return cfg.window, cfg.window
    if rows == table_rows(wh, ww):
        return wh, ww
    raise ValueError("relative_position_bias_table has %d rows: neither (2w-1)^2 for "
                     "w=%d nor the %dx%d window's" % (rows, cfg.window, wh, ww))


def relative_bias(table, cfg, wh, ww):
    """[heads, N, N] bias of a wh x ww window."""
    th, tw = table_window(cfg, table.shape[0], wh, ww)
    idx = relative_index(wh, ww, th, tw)
    N = wh * ww
    return table[idx.reshape(-1)].reshape(N, N, -1).permute(2, 0, 1)


def region_labels(H, W, wh, ww, sh, sw):
    """[H, W] labels of the rolled grid (see module docstring)."""
    def reg(i, res, win, shift):
        if shift == 0:
            return 0
        return 0 if i < res - win else (1 if i < res - shift else 2)
    lab = torch.zeros(H, W, dtype=torch.int64)
    for i in range(H):
        for j in range(W):
            lab[i, j] = reg(i, H, wh, sh) * 3 + reg(j, W, ww, sw)
    return lab


def window_partition(t, wh, ww):
    """[B, H, W, ...] -> [B, nW, wh*ww, ...] (windows and in-window tokens in
    raster order)."""
    B, H, W = t.shape[:3]
    rest = t.shape[3:]
    t = t.reshape(B, H // wh, wh, W // ww, ww, *rest)
    t = t.permute(0, 1, 3, 2, 4, *range(5, 5 + len(rest)))
    return t.reshape(B, (H // wh) * (W // ww), wh * ww, *rest)


def window_reverse(t, H, W, wh, ww):
    """Inverse of window_partition: [B, nW, wh*ww, ...] -> [B, H, W, ...]."""
    B = t.shape[0]
    rest = t.shape[3:]
    t = t.reshape(B, H // wh, W // ww, wh, ww, *rest)
    t = t.permute(0, 1, 3, 2, 4, *range(5, 5 + len(rest)))
    return t.reshape(B, H, W, *rest)


def shift_mask(H, W, wh, ww, sh, sw, dtype=torch.float64):
    """[nW, N, N] additive mask (0 / -100) of a shifted block, timm's attn_mask."""
    lab = window_partition(region_labels(H, W, wh, ww, sh, sw)[None], wh, ww)[0]
    diff = lab[:, :, None] != lab[:, None, :]
    return torch.where(diff, torch.tensor(MASK_VALUE, dtype=dtype),
                       torch.tensor(0.0, dtype=dtype))


def clip_tables(params, cfg):
    """Copy of params whose tables hold only the rows the block's (clipped)
    window uses, in the layout timm builds for that window (same outputs)."""
    out = dict(params)
    for s in range(cfg.num_stages):
        for b in range(cfg.depths[s]):
            wh, ww, _, _ = cfg.block_geom(s, b)
            k = "layers.%d.blocks.%d.attn.relative_position_bias_table" % (s, b)
            tab = params[k]
            th, tw = table_window(cfg, tab.shape[0], wh, ww)
            dy = torch.arange(-(wh - 1), wh)
            dx = torch.arange(-(ww - 1), ww)
            rows = ((dy[:, None] + th - 1) * (2 * tw - 1) + (dx[None, :] + tw - 1)).reshape(-1)
            out[k] = tab[rows].contiguous()
    return out


# --------------------------------------------------------------------------
# Name converters
# --------------------------------------------------------------------------

_TV_BLOCK = {"mlp.fc1.weight": "mlp.0.weight", "mlp.fc1.bias": "mlp.0.bias",
             "mlp.fc2.weight": "mlp.3.weight", "mlp.fc2.bias": "mlp.3.bias"}
_TV_BLOCK_INV = {v: k for k, v in _TV_BLOCK.items()}


def timm_to_torchvision(sd, cfg, int_buffers=True):
    """Current timm -> torchvision names. int_buffers adds torchvision's
    attn.relative_position_index buffers (int64 [N*N] for the configured,
    unclipped window: torchvision pads instead of clipping)."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if k.startswith("patch_embed.proj."):
            nk = "features.0.0." + parts[-1]
        elif k.startswith("patch_embed.norm."):
            nk = "features.0.2." + parts[-1]
        elif k.startswith("layers.") and parts[2] == "downsample":
            nk = "features.%d.%s" % (2 * int(parts[1]), ".".join(parts[3:]))
        elif k.startswith("layers.") and parts[2] == "blocks":
            rest = ".".join(parts[4:])
            nk = "features.%d.%s.%s" % (2 * int(parts[1]) + 1, parts[3],
                                        _TV_BLOCK.get(rest, rest))
            if int_buffers and rest == "attn.relative_position_bias_table":
                w = cfg.window
                out[nk.replace("bias_table", "index")] = \
                    relative_index(w, w, w, w).reshape(-1).clone()
        elif k.startswith("norm."):
            nk = k
        elif k.startswith("head.fc."):
            nk = "head." + parts[-1]
        else:
            raise KeyError(k)
        out[nk] = v
    return out


def torchvision_to_timm(sd):
    """Inverse of timm_to_torchvision (index buffers are dropped)."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if k.endswith("attn.relative_position_index"):
            continue
        if k.startswith("features.0.0."):
            nk = "patch_embed.proj." + parts[-1]
        elif k.startswith("features.0.2."):
            nk = "patch_embed.norm." + parts[-1]
        elif k.startswith("features."):
            f = int(parts[1])
            if f % 2 == 0:
                nk = "layers.%d.downsample.%s" % (f // 2, ".".join(parts[2:]))
            else:
                rest = ".".join(parts[3:])
                nk = "layers.%d.blocks.%s.%s" % ((f - 1) // 2, parts[2],
                                                 _TV_BLOCK_INV.get(rest, rest))
        elif k.startswith("norm."):
            nk = k
        elif k.startswith("head."):
            nk = "head.fc." + parts[-1]
        else:
            raise KeyError(k)
        out[nk] = v
    return out


def timm_to_timm_old(sd, cfg, int_buffers=True, masks=True):
    """Current timm -> old timm (< 0.9) names + buffers: attn_mask [nW, N, N]
    (0/-100, dtype of the weights) for shifted blocks; with int_buffers the
    int64 relative_position_index [N, N] of every block (block's window)."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if k.startswith("layers.") and parts[2] == "downsample":
            s = int(parts[1])
            nk = "layers.%d.downsample.%s" % (s - 1, ".".join(parts[3:]))
        elif k.startswith("head.fc."):
            nk = "head." + parts[-1]
        else:
            nk = k
        out[nk] = v
        if k.startswith("layers.") and k.endswith("attn.relative_position_bias_table"):
            s, b = int(parts[1]), int(parts[3])
            wh, ww, sh, sw = cfg.block_geom(s, b)
            pre = "layers.%d.blocks.%d." % (s, b)
            if int_buffers:
                th, tw = table_window(cfg, v.shape[0], wh, ww)
                out[pre + "attn.relative_position_index"] = relative_index(wh, ww, th, tw)
            if masks and (sh or sw):
                H, W = cfg.res(s)
                out[pre + "attn_mask"] = shift_mask(H, W, wh, ww, sh, sw, v.dtype)
    return out


def timm_old_to_timm(sd):
    """Inverse of timm_to_timm_old (buffers are dropped)."""
    out = {}
    for k, v in sd.items():
        if k.endswith("attn.relative_position_index") or k.endswith("attn_mask"):
            continue
        parts = k.split(".")
        if k.startswith("layers.") and parts[2] == "downsample":
            nk = "layers.%d.downsample.%s" % (int(parts[1]) + 1, ".".join(parts[3:]))
        elif k.startswith("head."):
            nk = "head.fc." + parts[-1]
        else:
            nk = k
        out[nk] = v
    return out


# --------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------

def merge_norm(x, P, s):
    """Patch merging of stage s up to the reduction's input: the 2x2
    neighbours concatenated (x0, x1, x2, x3 order), then the merging LayerNorm."""
    d = "layers.%d.downsample." % s
    x0 = x[:, 0::2, 0::2]
    x1 = x[:, 1::2, 0::2]
    x2 = x[:, 0::2, 1::2]
    x3 = x[:, 1::2, 1::2]
    y = torch.cat([x0, x1, x2, x3], dim=-1)
    return layer_norm(y, P[d + "norm.weight"], P[d + "norm.bias"])


def patch_merge(x, P, s):
    return merge_norm(x, P, s) @ P["layers.%d.downsample.reduction.weight" % s].t()


def block_dims(x, cfg, s, b):
    """Sizes of block b of stage s on x [B, H, W, C]: (B, H, W, C, heads,
    head dim, window h, window w, shift h, shift w, tokens per window,
    parameter-name prefix)."""
    B, H, W, C = x.shape
    nh = cfg.num_heads[s]
    wh, ww, sh, sw = cfg.block_geom(s, b)
    return B, H, W, C, nh, C // nh, wh, ww, sh, sw, wh * ww, "layers.%d.blocks.%d." % (s, b)


def swin_block(x, P, cfg, s, b, trace=None):
    """x [B, H, W, C] -> (x', read-back [B, heads*H*W])."""
    B, H, W, C, nh, hd, wh, ww, sh, sw, N, k = block_dims(x, cfg, s, b)
    y = layer_norm(x, P[k + "norm1.weight"], P[k + "norm1.bias"])
    if sh or sw:
        y = torch.roll(y, shifts=(-sh, -sw), dims=(1, 2))
    win = window_partition(y, wh, ww)                       # [B, nW, N, C]
    nW = win.shape[1]
    qkv = linear(win, P[k + "attn.qkv.weight"], P[k + "attn.qkv.bias"])
    qkv = qkv.reshape(B, nW, N, 3, nh, hd).permute(3, 0, 1, 4, 2, 5)
    q, kk, v = qkv[0], qkv[1], qkv[2]                      # [B, nW, nh, N, hd]
    S = (q * hd ** -0.5) @ kk.transpose(-2, -1)
    S = S + relative_bias(P[k + "attn.relative_position_bias_table"], cfg, wh, ww)
    if sh or sw:
        S = S + shift_mask(H, W, wh, ww, sh, sw, S.dtype)[:, None]
    prob = torch.softmax(S, dim=-1)
    o = (prob @ v).permute(0, 1, 3, 2, 4).reshape(B, nW, N, C)
    o = linear(o, P[k + "attn.proj.weight"], P[k + "attn.proj.bias"])
    o = window_reverse(o, H, W, wh, ww)
    if sh or sw:
        o = torch.roll(o, shifts=(sh, sw), dims=(1, 2))
    # read-back: column sums over queries, back to unshifted positions
    col = prob.sum(dim=-2) / (H * W)                       # [B, nW, nh, N]
    col = window_reverse(col.transpose(2, 3), H, W, wh, ww)  # [B, H, W, nh]
    if sh or sw:
        col = torch.roll(col, shifts=(sh, sw), dims=(1, 2))
    rb = col.permute(0, 3, 1, 2).reshape(B, nh * H * W)
    if trace is not None:
        trace.append({"stage": s, "block": b, "x_in": x, "prob": prob, "attn_out": o})
    x = x + o
    y = layer_norm(x, P[k + "norm2.weight"], P[k + "norm2.bias"])
    y = linear(gelu_erf(linear(y, P[k + "mlp.fc1.weight"], P[k + "mlp.fc1.bias"])),
               P[k + "mlp.fc2.weight"], P[k + "mlp.fc2.bias"])
    return x + y, rb


def forward(params, cfg, x, trace=None):
    """params: current-timm-named dict; x [B, in_chans, H, W].
    Returns (logits [B, K], attn [B, T]) -- see the module docstring."""
    P = params
    B = x.shape[0]
    C0 = cfg.embed_dim
    tok = linear(patchify(x, cfg.patch), P["patch_embed.proj.weight"].reshape(C0, -1),
                 P["patch_embed.proj.bias"])
    h = tok.reshape(B, cfg.grid_h, cfg.grid_w, C0)
    h = layer_norm(h, P["patch_embed.norm.weight"], P["patch_embed.norm.bias"])
    rows = []
    for s in range(cfg.num_stages):
        if s > 0:
            h = patch_merge(h, P, s)
        for b in range(cfg.depths[s]):
            h, rb = swin_block(h, P, cfg, s, b, trace)
            rows.append(rb)
    h = layer_norm(h, P["norm.weight"], P["norm.bias"])
    pooled = h.mean(dim=(1, 2))
    logits = linear(pooled, P["head.fc.weight"], P["head.fc.bias"])
    return logits, torch.cat(rows, dim=1)


# --------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------

def torchvision_model(P, cfg, dtype=torch.float64):
    """torchvision SwinTransformer holding P (requires every stage resolution
    to be a multiple of the window: torchvision pads, timm clips)."""
    from torchvision.models.swin_transformer import SwinTransformer
    w = cfg.window
    for s in range(cfg.num_stages):
        if any(r % w for r in cfg.res(s)):
            raise ValueError("torchvision pads stage %d; not comparable" % s)
    m = SwinTransformer(patch_size=[cfg.patch, cfg.patch], embed_dim=cfg.embed_dim,
                        depths=list(cfg.depths), num_heads=list(cfg.num_heads),
                        window_size=[w, w], mlp_ratio=cfg.mlp_ratio,
                        num_classes=cfg.num_classes, stochastic_depth_prob=0.0)
    if cfg.in_chans != 3:
        m.features[0][0] = torch.nn.Conv2d(cfg.in_chans, cfg.embed_dim,
                                           kernel_size=cfg.patch, stride=cfg.patch)
    tv = timm_to_torchvision(P, cfg)
    own = m.state_dict()
    for k in own:   # the converter's index must equal torchvision's own buffer
        if k.endswith("relative_position_index"):
            assert torch.equal(own[k], tv[k]), k
    m.load_state_dict({k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tv.items()},
                      strict=True)
    return m.to(dtype).eval()


def naive_block_attention(x_in, P, cfg, s, b):
    """Per-query loops over image positions for one block (batch item 0):
    returns (read-back [heads, H*W], attention branch output [H, W, C])."""
    _, H, W, C = x_in.shape
    nh = cfg.num_heads[s]
    hd = C // nh
    wh, ww, sh, sw = cfg.block_geom(s, b)
    k = "layers.%d.blocks.%d." % (s, b)
    y = F.layer_norm(x_in[0], (C,), P[k + "norm1.weight"], P[k + "norm1.bias"], LN_EPS)
    Wq, bq = P[k + "attn.qkv.weight"], P[k + "attn.qkv.bias"]
    table = P[k + "attn.relative_position_bias_table"]
    th, tw = table_window(cfg, table.shape[0], wh, ww)

    def region(i, res, win, shift):
        if shift == 0:
            return 0
        if i < res - win:
            return 0
        return 1 if i < res - shift else 2

    # rolled-frame coordinates of image position (i, j)
    pos = [((i - sh) % H, (j - sw) % W) for i in range(H) for j in range(W)]
    win_of = [(r // wh, c // ww) for r, c in pos]
    lab = [region(r, H, wh, sh) * 3 + region(c, W, ww, sw) for r, c in pos]
    rb = torch.zeros(nh, H * W, dtype=x_in.dtype)
    o = torch.zeros(H * W, C, dtype=x_in.dtype)
    yf = y.reshape(H * W, C)
    for h in range(nh):
        qs = yf @ Wq[h * hd:(h + 1) * hd].t() + bq[h * hd:(h + 1) * hd]
        ks = yf @ Wq[C + h * hd:C + (h + 1) * hd].t() + bq[C + h * hd:C + (h + 1) * hd]
        vs = yf @ Wq[2 * C + h * hd:2 * C + (h + 1) * hd].t() \
            + bq[2 * C + h * hd:2 * C + (h + 1) * hd]
        for qi in range(H * W):
            keys = [t for t in range(H * W) if win_of[t] == win_of[qi]]
            sc = []
            for t in keys:
                dy = pos[qi][0] % wh - pos[t][0] % wh
                dx = pos[qi][1] % ww - pos[t][1] % ww
                v = float((qs[qi] * ks[t]).sum()) / math.sqrt(hd)
                v += float(table[(dy + th - 1) * (2 * tw - 1) + (dx + tw - 1), h])
                if lab[t] != lab[qi]:
                    v += MASK_VALUE
                sc.append(v)
            m = max(sc)
            e = [math.exp(v - m) for v in sc]
            z = sum(e)
            for t, ev in zip(keys, e):
                rb[h, t] += ev / z / (H * W)
                o[qi, h * hd:(h + 1) * hd] += ev / z * vs[t]
    o = o @ P[k + "attn.proj.weight"].t() + P[k + "attn.proj.bias"]
    return rb, o.reshape(H, W, C)


def self_check(seed=4321, verbose=False):
    """(1) logits == torchvision's SwinTransformer (float64 1e-10, float32
    ~1e-5) on configs whose stages are multiples of the window, incl. a
    non-square one and a 1-channel one; (2) read-back and attention branch ==
    naive per-query loops on shifted / clipped / non-square blocks, read-back
    rows sum to 1, clipped-table variant gives the same outputs, converters
    round-trip, old-timm masks == naive region labels; (3) gradcheck through
    logits + read-back."""
    g = torch.Generator().manual_seed(seed)
    report = {}
    # (1) torchvision
    tv_cfgs = [SwinConfig(56, 56, 4, 3, 24, (2, 2), (3, 6), 7, 4.0, 10),
               SwinConfig(56, 112, 4, 1, 32, (2, 2), (2, 4), 7, 2.0, 10),
               SwinConfig(32, 64, 2, 3, 12, (2, 2, 2), (2, 2, 4), 4, 3.0, 7)]
    worst32 = 0.0
    for cfg in tv_cfgs:
        P = random_params(cfg, g, torch.float64)
        P = {k: v.float().double() for k, v in P.items()}
        x = torch.randn(2, cfg.in_chans, cfg.img_h, cfg.img_w, generator=g,
                        dtype=torch.float64).float().double()
        mine, attn = forward(P, cfg, x)
        with torch.no_grad():
            ref = torchvision_model(P, cfg, torch.float64)(x)
            ref32 = torchvision_model(P, cfg, torch.float32)(x.float())
        e64 = float((mine - ref).abs().max())
        e32 = float((ref32.double() - mine).abs().max() / mine.abs().max())
        assert e64 < 1e-10, (cfg, e64)
        assert e32 < 3e-5, (cfg, e32)
        worst32 = max(worst32, e32)
        for _, _, nh, hs, ws, off in cfg.blocks():
            sums = attn[:, off:off + nh * hs * ws].reshape(2, nh, -1).sum(-1)
            assert (sums - 1).abs().max() < 1e-12
        if verbose:
            print("  torchvision %r: fp64 max abs %.1e, tv fp32 rel %.1e" % (cfg, e64, e32))
    report["tv_fp32_rel"] = worst32

    # (2) naive loops, clipped tables, converters, masks
    cfg_c = SwinConfig(8, 16, 2, 1, 8, (2, 2), (2, 2), 4, 2.0, 3)   # 4x8 then 2x4
    assert cfg_c.block_geom(0, 1) == (4, 4, 0, 2) and cfg_c.block_geom(1, 1) == (2, 4, 0, 0)
    cfg_a = tv_cfgs[0]
    for cfg, blocks in ((cfg_a, [(0, 1)]), (cfg_c, [(0, 1), (1, 0)]),
                        (tv_cfgs[1], [(1, 1)])):
        P = random_params(cfg, g, torch.float64)
        x = torch.randn(1, cfg.in_chans, cfg.img_h, cfg.img_w, generator=g, dtype=torch.float64)
        trace = []
        logits, attn = forward(P, cfg, x, trace)
        lay = {(s, b): (nh, off) for s, b, nh, hs, ws, off in cfg.blocks()}
        for s, b in blocks:
            tr = [t for t in trace if t["stage"] == s and t["block"] == b][0]
            rb, o = naive_block_attention(tr["x_in"], P, cfg, s, b)
            nh, off = lay[(s, b)]
            assert (rb.reshape(-1) - attn[0, off:off + rb.numel()]).abs().max() < 1e-12
            assert (o - tr["attn_out"][0]).abs().max() < 1e-10
        # clipped-table layout gives identical outputs
        l2, a2 = forward(clip_tables(P, cfg), cfg, x)
        assert (l2 - logits).abs().max() < 1e-12 and (a2 - attn).abs().max() < 1e-13
        # converters round trip
        for fwd, inv in ((lambda d: timm_to_torchvision(d, cfg), torchvision_to_timm),
                         (lambda d: timm_to_timm_old(d, cfg), timm_old_to_timm)):
            back = inv(fwd(P))
            assert set(back) == set(P) and all(torch.equal(back[k], P[k]) for k in P)
        old = timm_to_timm_old(P, cfg)
        for s in range(cfg.num_stages):
            for b in range(cfg.depths[s]):
                wh, ww, sh, sw = cfg.block_geom(s, b)
                key = "layers.%d.blocks.%d.attn_mask" % (s, b)
                assert (key in old) == bool(sh or sw)
                assert old["layers.%d.blocks.%d.attn.relative_position_index" % (s, b)].shape \
                    == (wh * ww, wh * ww)
    # old-timm mask vs torchvision's region construction (slices of the rolled grid)
    for H, W, w, sh, sw in ((14, 14, 7, 3, 3), (7, 14, 7, 0, 3), (8, 12, 4, 2, 2)):
        m = torch.zeros(H, W)
        cnt = 0
        for hs in ((0, -w), (-w, -sh), (-sh, None)):
            for ws in ((0, -w), (-w, -sw), (-sw, None)):
                m[hs[0]:hs[1], ws[0]:ws[1]] = cnt
                cnt += 1
        lab = window_partition(m[None], w, w)[0]
        ref = (lab[:, None, :] != lab[:, :, None]).double() * MASK_VALUE
        assert torch.equal(ref, shift_mask(H, W, w, w, sh, sw))

    # (3) gradcheck through logits + read-back (float64)
    P = random_params(cfg_c, g, torch.float64)
    xs = torch.randn(1, 1, 8, 16, generator=g, dtype=torch.float64).requires_grad_(True)
    gl = torch.randn(1, cfg_c.num_classes, generator=g, dtype=torch.float64)
    ga = torch.randn(1, cfg_c.attn_len, generator=g, dtype=torch.float64)

    def fn(z):
        lo, at = forward(P, cfg_c, z)
        return (lo * gl).sum() + (at * ga).sum()
    assert torch.autograd.gradcheck(fn, (xs,))
    return report


if __name__ == "__main__":
    torch.set_num_threads(2)
    r = self_check(verbose=True)
    print("swin_ref self-check passed (torchvision fp32 vs fp64 logits rel %.1e)"
          % r["tv_fp32_rel"])
