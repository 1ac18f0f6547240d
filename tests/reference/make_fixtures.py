"""Generate the model/golden fixtures in tests/data/ (deterministic).

For each case writes
  tests/data/<case>.model.safetensors   weights exactly as the C loader sees them
  tests/data/<case>.golden.safetensors  F32: images [n,C,H,W], logits [n,K],
                                        attn [n,depth,heads,N], glogits [n,K],
                                        gattn [n,depth,heads,N], dimages [n,C,H,W]
where attn[i, l, h, t] is the softmax probability of the class token (query 0)
over key t in block l, head h, and
  L = sum(glogits * logits) + sum(gattn * attn),   dimages = dL/dimages.
Goldens are computed in float64 from the stored (rounded) weights and the
stored F32 images/gradients, then stored as F32.

  /usr/bin/python3 tests/reference/make_fixtures.py
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import stio  # noqa: E402
import vit_ref  # noqa: E402
from vit_ref import ViTConfig  # noqa: E402

DATA = os.path.join(ROOT, "tests", "data")
IMAGENET_MEAN = "0.485,0.456,0.406"
IMAGENET_STD = "0.229,0.224,0.225"


def meta_for(cfg, arch, img_size, mean, std, crop_pct):
    return {
        "arch": arch, "img_size": img_size, "patch_size": str(cfg.patch),
        "in_chans": str(cfg.in_chans), "embed_dim": str(cfg.embed_dim),
        "depth": str(cfg.depth), "num_heads": str(cfg.num_heads),
        "mlp_ratio": "%g" % (cfg.mlp_hidden / cfg.embed_dim),
        "num_classes": str(cfg.num_classes), "mean": mean, "std": std,
        "crop_pct": crop_pct,
    }


# name, config, n images, seed, naming, weight dtype, metadata (None = none)
def cases():
    c = []
    cfg = ViTConfig(32, 48, 16, 3, 64, 2, 4, 256, 10)
    c.append(("vit_p16_rgb", cfg, 2, 101, "timm", "F32",
              meta_for(cfg, "vit", "32,48", IMAGENET_MEAN, IMAGENET_STD, "0.9")))
    cfg = ViTConfig(28, 28, 4, 1, 48, 2, 3, 96, 10)
    c.append(("vit_p4_gray_nometa", cfg, 3, 102, "timm", "F32", None))
    cfg = ViTConfig(32, 32, 8, 3, 32, 2, 2, 128, 10, distilled=True)
    c.append(("deit_distilled", cfg, 2, 103, "timm", "F32",
              meta_for(cfg, "deit_distilled", "32", IMAGENET_MEAN, IMAGENET_STD, "0.875")))
    cfg = ViTConfig(32, 32, 8, 3, 32, 2, 2, 64, 10)
    c.append(("tv_vit", cfg, 2, 104, "torchvision", "F32",
              meta_for(cfg, "vit", "32", IMAGENET_MEAN, IMAGENET_STD, "1.0")))
    cfg = ViTConfig(28, 28, 4, 1, 32, 2, 2, 64, 10)
    c.append(("vit_f16", cfg, 3, 105, "timm", "F16",
              meta_for(cfg, "vit", "28", "0.2860", "0.3530", "1.0")))
    c.append(("vit_bf16", cfg, 3, 106, "timm", "BF16",
              meta_for(cfg, "vit", "28", "0.2860", "0.3530", "1.0")))
    return c


def golden(params64, cfg, images, glogits, gattn):
    x = images.to(torch.float64).clone().requires_grad_(True)
    logits, attn = vit_ref.forward(params64, cfg, x)
    loss = (glogits.double() * logits).sum() + (gattn.double() * attn).sum()
    (dx,) = torch.autograd.grad(loss, x)
    return logits.detach(), attn.detach(), dx


def attn_stats(attn, N):
    mx = float(attn.max())
    ent = float(-(attn * attn.clamp_min(1e-300).log()).sum(-1).mean())
    return mx, ent, float(torch.log(torch.tensor(float(N))))


def main():
    torch.set_num_threads(1)
    vit_ref.self_check()
    os.makedirs(DATA, exist_ok=True)
    written = []
    for name, cfg, n, seed, naming, wdt, meta in cases():
        g = torch.Generator().manual_seed(seed)
        p64 = vit_ref.random_params(cfg, g, dtype=torch.float64)
        # the values the file will hold, as float64
        stored = {k: stio.round_to(v, wdt) for k, v in p64.items()}
        images = torch.randn(n, cfg.in_chans, cfg.img_h, cfg.img_w, generator=g)
        glogits = torch.randn(n, cfg.num_classes, generator=g)
        gattn = torch.randn(n, cfg.depth, cfg.num_heads, cfg.num_tokens, generator=g)
        logits, attn, dx = golden(stored, cfg, images, glogits, gattn)

        # attention must be informative: neither uniform nor one-hot
        mx, ent, ent_uniform = attn_stats(attn, cfg.num_tokens)
        assert 0.2 * ent_uniform < ent < 0.95 * ent_uniform, (name, ent, ent_uniform)
        assert mx < 0.99, (name, mx)

        # float32 forward of the same model: how close a float32 code gets
        s32 = {k: v.float() for k, v in stored.items()}
        l32, a32 = vit_ref.forward(s32, cfg, images)
        rel_l = float((l32.double() - logits).abs().max() / logits.abs().max())
        abs_a = float((a32.double() - attn).abs().max())

        if naming == "timm":
            file_sd = {k: v for k, v in stored.items()}
        else:
            file_sd = vit_ref.timm_to_torchvision(stored)
        mpath = os.path.join(DATA, name + ".model.safetensors")
        gpath = os.path.join(DATA, name + ".golden.safetensors")
        sz = stio.save(mpath, file_sd, meta, wdt)
        written.append((mpath, sz))
        gold = {"images": images, "logits": logits.float(), "attn": attn.float(),
                "glogits": glogits, "gattn": gattn, "dimages": dx.float()}
        gsz = stio.save(gpath, gold, None, "F32")
        written.append((gpath, gsz))
        if naming == "torchvision":
            lsd = vit_ref.timm_to_torchvision(stored, legacy_mlp=True)
            lpath = os.path.join(DATA, name + "_legacy.model.safetensors")
            written.append((lpath, stio.save(lpath, lsd, meta, wdt)))

        # re-read what was written and re-check
        back, bmeta, bdt = stio.load(mpath)
        assert bmeta == meta and set(bdt.values()) == {wdt}
        if naming != "timm":
            back = vit_ref.torchvision_to_timm(back)
        assert set(back) == set(stored)
        for k in stored:
            assert torch.equal(back[k].double(), stored[k]), (name, k)
        gb, _, _ = stio.load(gpath)
        l2, a2 = vit_ref.forward({k: v.double() for k, v in back.items()}, cfg,
                                 gb["images"].double())
        assert torch.allclose(l2.float(), gb["logits"]) and torch.allclose(a2.float(), gb["attn"])

        print("%-20s %-11s %-4s n=%d img=%dx%dx%d patch=%d D=%d depth=%d heads=%d "
              "mlp=%d K=%d N=%d meta=%s" % (
                  name, naming, wdt, n, cfg.in_chans, cfg.img_h, cfg.img_w, cfg.patch,
                  cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_hidden,
                  cfg.num_classes, cfg.num_tokens, "yes" if meta else "no"))
        print("    attn max %.3f entropy %.2f (uniform %.2f); |logits|max %.3f; "
              "fp32-vs-fp64 logits rel %.1e attn abs %.1e; |dimages|max %.3g" % (
                  mx, ent, ent_uniform, float(logits.abs().max()), rel_l, abs_a,
                  float(dx.abs().max())))

    total = 0
    print("\nfiles written:")
    for p, s in written:
        total += s
        print("  %8d  %s" % (s, os.path.relpath(p, ROOT)))
    print("  %8d  total" % total)
    assert total < 1.5e6, "fixtures exceed 1.5 MB"


if __name__ == "__main__":
    main()
