#!/usr/bin/env python3
"""Regenerate the seed corpora in tests/fuzz/corpus/ (small valid and
near-valid inputs). Crash/timeout reproducers found by fuzzing live beside
them as regression-* files and are not touched by this script."""
import gzip
import json
import os
import random
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
DATA = os.path.join(HERE, "..", "data")
rng = random.Random(5)


def put(kind, name, data):
    d = os.path.join(CORPUS, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def enc(dtype, vals):
    if dtype == "F32":
        return struct.pack("<%df" % len(vals), *vals)
    if dtype == "F16":
        return struct.pack("<%de" % len(vals), *vals)
    if dtype == "BF16":
        return b"".join(struct.pack("<f", v)[2:] for v in vals)
    raise ValueError(dtype)


def safetensors(tensors, meta=None, dtype="F32"):
    """tensors: list of (name, shape, values or None=random)."""
    header, blobs, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, shape, vals in tensors:
        n = 1
        for s in shape:
            n *= s
        if vals is None:
            vals = [rng.uniform(-0.3, 0.3) for _ in range(n)]
        b = enc(dtype, vals)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def tiny_vit(dtype="F32", meta=True, naming="timm", distilled=False):
    img, p, c, d, depth, heads, hid, k = 8, 4, 1, 8, 1, 2, 16, 3
    g = (img // p) ** 2
    pre = 2 if distilled else 1
    t = []
    if naming == "timm":
        t.append(("cls_token", [1, 1, d], None))
        if distilled:
            t.append(("dist_token", [1, 1, d], None))
        t += [("pos_embed", [1, g + pre, d], None),
              ("patch_embed.proj.weight", [d, c, p, p], None),
              ("patch_embed.proj.bias", [d], None)]
        for b in range(depth):
            q = "blocks.%d." % b
            t += [(q + "norm1.weight", [d], [1.0] * d), (q + "norm1.bias", [d], None),
                  (q + "attn.qkv.weight", [3 * d, d], None), (q + "attn.qkv.bias", [3 * d], None),
                  (q + "attn.proj.weight", [d, d], None), (q + "attn.proj.bias", [d], None),
                  (q + "norm2.weight", [d], [1.0] * d), (q + "norm2.bias", [d], None),
                  (q + "mlp.fc1.weight", [hid, d], None), (q + "mlp.fc1.bias", [hid], None),
                  (q + "mlp.fc2.weight", [d, hid], None), (q + "mlp.fc2.bias", [d], None)]
        t += [("norm.weight", [d], [1.0] * d), ("norm.bias", [d], None),
              ("head.weight", [k, d], None), ("head.bias", [k], None)]
        if distilled:
            t += [("head_dist.weight", [k, d], None), ("head_dist.bias", [k], None)]
    else:  # torchvision
        t += [("class_token", [1, 1, d], None), ("encoder.pos_embedding", [1, g + 1, d], None),
              ("conv_proj.weight", [d, c, p, p], None), ("conv_proj.bias", [d], None)]
        for b in range(depth):
            q = "encoder.layers.encoder_layer_%d." % b
            t += [(q + "ln_1.weight", [d], [1.0] * d), (q + "ln_1.bias", [d], None),
                  (q + "self_attention.in_proj_weight", [3 * d, d], None),
                  (q + "self_attention.in_proj_bias", [3 * d], None),
                  (q + "self_attention.out_proj.weight", [d, d], None),
                  (q + "self_attention.out_proj.bias", [d], None),
                  (q + "ln_2.weight", [d], [1.0] * d), (q + "ln_2.bias", [d], None),
                  (q + "mlp.0.weight", [hid, d], None), (q + "mlp.0.bias", [hid], None),
                  (q + "mlp.3.weight", [d, hid], None), (q + "mlp.3.bias", [d], None)]
        t += [("encoder.ln.weight", [d], [1.0] * d), ("encoder.ln.bias", [d], None),
              ("heads.head.weight", [k, d], None), ("heads.head.bias", [k], None)]
    m = None
    if meta:
        m = {"arch": "deit_distilled" if distilled else "vit", "img_size": str(img),
             "patch_size": str(p), "in_chans": str(c), "embed_dim": str(d),
             "depth": str(depth), "num_heads": str(heads), "mlp_ratio": "2",
             "num_classes": str(k), "mean": "0.5", "std": "0.25", "crop_pct": "1.0"}
    return safetensors(t, m, dtype)


def tiny_swin():
    """Two Swin stages on an 8x8 gray image: patch 2 (4x4 grid, 2x2
    windows, shifted block 1), merging to 2x2 (one window)."""
    r = random.Random(6)  # its own stream: the other seeds stay as they were
    w, ones = 2, lambda n: [1.0 + r.uniform(-0.1, 0.1) for _ in range(n)]
    t = [("patch_embed.proj.weight", [4, 1, 2, 2], None), ("patch_embed.proj.bias", [4], None),
         ("patch_embed.norm.weight", [4], ones(4)), ("patch_embed.norm.bias", [4], None)]
    for s, (c, h, depth) in enumerate([(4, 1, 2), (8, 2, 1)]):
        if s:
            t += [("layers.%d.downsample.norm.weight" % s, [2 * c], ones(2 * c)),
                  ("layers.%d.downsample.norm.bias" % s, [2 * c], None),
                  ("layers.%d.downsample.reduction.weight" % s, [c, 2 * c], None)]
        for b in range(depth):
            p = "layers.%d.blocks.%d." % (s, b)
            t += [(p + "norm1.weight", [c], ones(c)), (p + "norm1.bias", [c], None),
                  (p + "attn.qkv.weight", [3 * c, c], None), (p + "attn.qkv.bias", [3 * c], None),
                  (p + "attn.proj.weight", [c, c], None), (p + "attn.proj.bias", [c], None),
                  (p + "attn.relative_position_bias_table", [(2 * w - 1) ** 2, h], None),
                  (p + "norm2.weight", [c], ones(c)), (p + "norm2.bias", [c], None),
                  (p + "mlp.fc1.weight", [2 * c, c], None), (p + "mlp.fc1.bias", [2 * c], None),
                  (p + "mlp.fc2.weight", [c, 2 * c], None), (p + "mlp.fc2.bias", [c], None)]
    t += [("norm.weight", [8], ones(8)), ("norm.bias", [8], None),
          ("head.fc.weight", [3, 8], None), ("head.fc.bias", [3], None)]
    t = [(n, s, v if v is not None else [r.uniform(-0.3, 0.3) for _ in range(_numel(s))]) for n, s, v in t]
    return safetensors(t, {"arch": "swin", "img_size": "8"})


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def main():
    for kind in ("safetensors", "idx", "png", "calib"):
        d = os.path.join(CORPUS, kind)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if not f.startswith("regression-"):
                    os.unlink(os.path.join(d, f))

    # models
    v = tiny_vit()
    put("safetensors", "vit_f32", v)
    put("safetensors", "vit_f16", tiny_vit("F16"))
    put("safetensors", "vit_nometa_heads", tiny_vit("F16", meta=False))  # heads not inferable
    put("safetensors", "vit_bf16", tiny_vit("BF16"))
    put("safetensors", "tv_vit", tiny_vit(naming="tv"))
    put("safetensors", "deit_distilled", tiny_vit(distilled=True))
    put("safetensors", "truncated", v[: len(v) - 7])
    put("safetensors", "header_only", v[:8 + struct.unpack("<Q", v[:8])[0]])
    bad = bytearray(v)
    bad[0] ^= 0x10  # header length off
    put("safetensors", "bad_len", bytes(bad))
    put("safetensors", "empty_header", struct.pack("<Q", 8) + b"{}      ")
    put("safetensors", "bad_json", struct.pack("<Q", 8) + b'{"a":[1,')

    # calibration sets
    n, c, h, w, k = 2, 1, 3, 3, 4
    imgs = [rng.uniform(-2, 2) for _ in range(n * c * h * w)]
    tg = [0.25] * (n * k)
    put("calib", "f32_targets", safetensors([("images", [n, c, h, w], imgs), ("targets", [n, k], tg)]))
    put("calib", "f32_no_targets", safetensors([("images", [n, c, h, w], imgs)]))
    put("calib", "f16", safetensors([("images", [n, c, h, w], imgs), ("targets", [n, k], tg)], dtype="F16"))
    put("calib", "bf16_meta", safetensors([("images", [1, 3, 2, 2], None)], {"note": "x"}, dtype="BF16"))
    put("calib", "negative_target", safetensors([("images", [n, c, h, w], imgs), ("targets", [n, k], [-1.0] * (n * k))]))
    put("calib", "nan_image", safetensors([("images", [1, 1, 1, 2], [float("nan"), 0.0])]))
    put("calib", "shape_mismatch", safetensors([("images", [n, c, h, w], imgs), ("targets", [3, k], [0.1] * 12)]))
    put("calib", "rank3", safetensors([("images", [2, 3, 3], imgs)]))

    # IDX
    def idx3(n, h, w):
        return struct.pack(">IIII", 0x803, n, h, w) + bytes(rng.randrange(256) for _ in range(n * h * w))

    def idx1(n):
        return struct.pack(">II", 0x801, n) + bytes(rng.randrange(10) for _ in range(n))

    put("idx", "images", idx3(2, 4, 5))
    put("idx", "images_gz", gzip.compress(idx3(3, 2, 2), mtime=0))
    put("idx", "labels", idx1(6))
    put("idx", "labels_gz", gzip.compress(idx1(4), mtime=0))
    put("idx", "images_truncated", idx3(2, 4, 5)[:-3])
    put("idx", "labels_trailing", idx1(3) + b"\x01")
    put("idx", "bad_magic", struct.pack(">II", 0x802, 1) + b"\x00\x00\x00\x01\x05")
    put("idx", "gz_truncated", gzip.compress(idx3(1, 3, 3), mtime=0)[:-6])

    # PNG: the small fixtures
    os.makedirs(os.path.join(CORPUS, "png"), exist_ok=True)
    for f in ("gray16.png", "resize_rgba.png", "resize_small.png"):
        shutil.copy(os.path.join(DATA, "io", f), os.path.join(CORPUS, "png", f))
    small = open(os.path.join(DATA, "io", "resize_small.png"), "rb").read()
    put("png", "truncated.png", small[: len(small) // 2])
    b = bytearray(small)
    b[20] ^= 0x7F  # width, CRC now wrong
    put("png", "bad_crc.png", bytes(b))

    # a Swin model (last: its own random stream)
    put("safetensors", "swin", tiny_swin())


if __name__ == "__main__":
    main()
