"""Generate the Swin Transformer model/golden fixtures in tests/data/
(deterministic; semantics in swin_ref.py's docstring).

For each case writes model file(s) (F32 weights) and
  tests/data/<case>.golden.safetensors  F32: images [n,C,H,W], logits [n,K],
                                        attn [n,T], glogits [n,K],
                                        gattn [n,T], dimages [n,C,H,W]
where attn is swin_ref's read-back (per block, stage-major, per head, the
mean over queries of the softmax column of each token, tokens in raster order
of unshifted positions; T = sum_l heads_l * Hs * Ws) and
  L = sum(glogits * logits) + sum(gattn * attn),   dimages = dL/dimages.
Goldens are computed in float64 from the stored F32 weights and the stored F32
images/gradients, then stored as F32.

  /usr/bin/python3 tests/reference/make_swin_fixtures.py
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import stio  # noqa: E402
import swin_ref  # noqa: E402
from swin_ref import SwinConfig  # noqa: E402

DATA = os.path.join(ROOT, "tests", "data")
IMAGENET_MEAN = "0.485,0.456,0.406"
IMAGENET_STD = "0.229,0.224,0.225"


def meta_for(cfg, img_size, mean, std):
    return {
        "arch": "swin", "img_size": img_size, "patch_size": str(cfg.patch),
        "in_chans": str(cfg.in_chans), "embed_dim": str(cfg.embed_dim),
        "depths": ",".join(map(str, cfg.depths)),
        "num_heads": ",".join(map(str, cfg.num_heads)),
        "window_size": str(cfg.window), "mlp_ratio": "%g" % cfg.mlp_ratio,
        "num_classes": str(cfg.num_classes), "mean": mean, "std": std,
        "crop_pct": "0.9", "ln_eps": "1e-5",
    }


# name, config, n images, seed, model files [(suffix, naming, metadata)]
# naming: timm | timm_old | tv | timm_clipped (tables cut to the clipped window)
# swin_a uses C0 = 12 (not swin-T's 96: its two stages alone are 4.7 MB per
# file, and all swin files must stay < 1.5 MB): same grids, windows, shifts
# and heads (3, 6) as swin-T's first two stages, head_dim 4.
def cases():
    c = []
    cfg = SwinConfig(56, 56, 4, 3, 12, (2, 2), (3, 6), 7, 4.0, 10)
    full = meta_for(cfg, "56", IMAGENET_MEAN, IMAGENET_STD)
    c.append(("swin_a", cfg, 2, 301, [("timm", "timm", full),
                                      ("timm_old", "timm_old", {"img_size": "56"}),
                                      ("tv", "tv", {"img_size": "56"})]))
    cfg = SwinConfig(56, 112, 4, 1, 32, (2, 2), (2, 4), 7, 2.0, 10)
    c.append(("swin_b", cfg, 2, 302, [("", "timm", meta_for(cfg, "56,112", "0.2860", "0.3530"))]))
    cfg = SwinConfig(16, 16, 4, 3, 16, (2, 2), (1, 2), 7, 4.0, 5)
    meta = meta_for(cfg, "16", IMAGENET_MEAN, IMAGENET_STD)
    c.append(("swin_c", cfg, 3, 303, [("", "timm", meta),
                                      ("clipped", "timm_clipped", meta)]))
    return c


def golden(params64, cfg, images, glogits, gattn, trace=None):
    x = images.to(torch.float64).clone().requires_grad_(True)
    logits, attn = swin_ref.forward(params64, cfg, x, trace)
    loss = (glogits.double() * logits).sum() + (gattn.double() * attn).sum()
    (dx,) = torch.autograd.grad(loss, x, retain_graph=trace is not None)
    return logits.detach(), attn.detach(), dx


def attn_stats(trace, cfg):
    """Mean over softmax rows of entropy / log(#unmasked keys), mean row max,
    fraction of rows with max > 0.99."""
    ratios, maxes = [], []
    for t in trace:
        s, b = t["stage"], t["block"]
        p = t["prob"].detach()                                   # [B, nW, nh, N, N]
        wh, ww, sh, sw = cfg.block_geom(s, b)
        H, W = cfg.res(s)
        if sh or sw:
            neff = (swin_ref.shift_mask(H, W, wh, ww, sh, sw) == 0).sum(-1).double()
        else:
            neff = torch.full((p.shape[1], p.shape[3]), float(wh * ww), dtype=torch.float64)
        ent = -(p * p.clamp_min(1e-300).log()).sum(-1)           # [B, nW, nh, N]
        ok = neff > 1
        r = ent / neff.clamp_min(2).log()[None, :, None, :]
        ratios.append(r[ok[None, :, None, :].expand_as(r)])
        maxes.append(p.max(-1).values.reshape(-1))
    r = torch.cat(ratios)
    m = torch.cat(maxes)
    return float(r.mean()), float(m.mean()), float((m > 0.99).double().mean())


def file_dict(stored, cfg, naming):
    if naming == "timm":
        return dict(stored)
    if naming == "timm_clipped":
        return swin_ref.clip_tables(stored, cfg)
    if naming == "timm_old":
        # int64 relative_position_index buffers omitted (stio writes floats
        # only); the float attn_mask buffers of shifted blocks are kept
        return swin_ref.timm_to_timm_old(stored, cfg, int_buffers=False)
    if naming == "tv":
        return swin_ref.timm_to_torchvision(stored, cfg, int_buffers=False)
    raise ValueError(naming)


def to_timm(sd, naming, cfg):
    if naming in ("timm", "timm_clipped"):
        return dict(sd)
    if naming == "timm_old":
        return swin_ref.timm_old_to_timm(sd)
    return swin_ref.torchvision_to_timm(sd)


def main():
    torch.set_num_threads(1)
    swin_ref.self_check()
    os.makedirs(DATA, exist_ok=True)
    written = []
    for name, cfg, n, seed, files in cases():
        g = torch.Generator().manual_seed(seed)
        p64 = swin_ref.random_params(cfg, g, dtype=torch.float64)
        stored = {k: stio.round_to(v, "F32") for k, v in p64.items()}
        images = torch.randn(n, cfg.in_chans, cfg.img_h, cfg.img_w, generator=g)
        glogits = torch.randn(n, cfg.num_classes, generator=g)
        gattn = torch.randn(n, cfg.attn_len, generator=g)
        trace = []
        logits, attn, dx = golden(stored, cfg, images, glogits, gattn, trace)

        # attention informative (neither uniform nor one-hot); rows sum to 1
        ent_ratio, mean_max, frac_hot = attn_stats(trace, cfg)
        assert 0.2 < ent_ratio < 0.95 and mean_max < 0.9 and frac_hot < 0.05, \
            (name, ent_ratio, mean_max, frac_hot)
        for _, _, nh, hs, ws, off in cfg.blocks():
            sums = attn[:, off:off + nh * hs * ws].reshape(n, nh, -1).sum(-1)
            assert (sums - 1).abs().max() < 1e-12

        # float32 run of the same model: how close a float32 code gets
        s32 = {k: v.float() for k, v in stored.items()}
        x32 = images.clone().requires_grad_(True)
        l32, a32 = swin_ref.forward(s32, cfg, x32)
        ((glogits * l32).sum() + (gattn * a32).sum()).backward()
        rel_l = float((l32.double() - logits).abs().max() / logits.abs().max())
        abs_a = float((a32.double() - attn).abs().max())
        rel_a = float(((a32.double() - attn).abs() / attn).max())
        rel_d = float((x32.grad.double() - dx).abs().max() / dx.abs().max())
        tv_rel = None
        try:
            with torch.no_grad():
                tv32 = swin_ref.torchvision_model(stored, cfg, torch.float32)(images)
                tv64 = swin_ref.torchvision_model(stored, cfg, torch.float64)(images.double())
            assert float((tv64 - logits).abs().max()) < 1e-10, name
            tv_rel = float((tv32.double() - logits).abs().max() / logits.abs().max())
        except ValueError:
            pass   # torchvision pads where timm clips: not comparable

        gpath = os.path.join(DATA, name + ".golden.safetensors")
        gold = {"images": images, "logits": logits.float(), "attn": attn.float(),
                "glogits": glogits, "gattn": gattn, "dimages": dx.float()}
        written.append((gpath, stio.save(gpath, gold, None, "F32")))
        gb, gmeta, _ = stio.load(gpath)
        assert gmeta is None and all(torch.equal(gb[k], gold[k].float()) for k in gold)

        for suffix, naming, meta in files:
            fname = name + ("." + suffix if suffix else "") + ".model.safetensors"
            mpath = os.path.join(DATA, fname)
            fsd = file_dict(stored, cfg, naming)
            written.append((mpath, stio.save(mpath, fsd, meta, "F32")))
            # re-read and re-check
            back, bmeta, bdt = stio.load(mpath)
            assert bmeta == meta and set(bdt.values()) == {"F32"}
            assert set(back) == set(fsd)
            for k in fsd:
                assert torch.equal(back[k].double(), fsd[k].double()), (fname, k)
            bt = {k: v.double() for k, v in to_timm(back, naming, cfg).items()}
            ref_sd = swin_ref.clip_tables(stored, cfg) if naming == "timm_clipped" else stored
            assert set(bt) == set(ref_sd) and all(torch.equal(bt[k], ref_sd[k]) for k in bt)
            if naming == "timm_old":
                for s in range(cfg.num_stages):
                    for b in range(cfg.depths[s]):
                        wh, ww, sh, sw = cfg.block_geom(s, b)
                        key = "layers.%d.blocks.%d.attn_mask" % (s, b)
                        if sh or sw:
                            H, W = cfg.res(s)
                            assert torch.equal(back[key].double(),
                                               swin_ref.shift_mask(H, W, wh, ww, sh, sw))
                        else:
                            assert key not in back
            if naming == "tv":
                # torchvision builds its own index buffers: load non-strictly
                from torchvision.models.swin_transformer import SwinTransformer
                m = SwinTransformer(patch_size=[cfg.patch] * 2, embed_dim=cfg.embed_dim,
                                    depths=list(cfg.depths), num_heads=list(cfg.num_heads),
                                    window_size=[cfg.window] * 2, mlp_ratio=cfg.mlp_ratio,
                                    num_classes=cfg.num_classes, stochastic_depth_prob=0.0)
                r = m.load_state_dict(back, strict=False)
                assert not r.unexpected_keys and r.missing_keys and all(
                    k.endswith("relative_position_index") for k in r.missing_keys)
                with torch.no_grad():
                    lt = m.double().eval()(gb["images"].double())
                assert torch.allclose(lt.float(), gb["logits"], rtol=1e-6, atol=1e-6)
            l2, a2 = swin_ref.forward(bt, cfg, gb["images"].double())
            assert torch.allclose(l2.float(), gb["logits"]) and torch.allclose(a2.float(), gb["attn"])

        print("%-7s n=%d img=%dx%dx%d patch=%d C0=%d depths=%s heads=%s window=%d mlp=%g "
              "K=%d T=%d files=%s" % (
                  name, n, cfg.in_chans, cfg.img_h, cfg.img_w, cfg.patch, cfg.embed_dim,
                  ",".join(map(str, cfg.depths)), ",".join(map(str, cfg.num_heads)),
                  cfg.window, cfg.mlp_ratio, cfg.num_classes, cfg.attn_len,
                  ",".join(f[1] for f in files)))
        geo = []
        for s in range(cfg.num_stages):
            geo.append("stage %d %dx%d: " % ((s,) + cfg.res(s)) + " ".join(
                "w%dx%d/s%d,%d" % cfg.block_geom(s, b) for b in range(cfg.depths[s])))
        print("    " + "; ".join(geo))
        print("    softmax rows: entropy/log(keys) %.2f, mean max %.2f, max>0.99 %.1f%%; "
              "|logits|max %.3f; |dimages|max %.3g" % (
                  ent_ratio, mean_max, 100 * frac_hot, float(logits.abs().max()),
                  float(dx.abs().max())))
        print("    fp32-vs-fp64: logits rel %.1e, attn abs %.1e (rel %.1e), dimages rel %.1e%s" % (
            rel_l, abs_a, rel_a, rel_d,
            "" if tv_rel is None else "; torchvision fp32 logits rel %.1e" % tv_rel))

    total = 0
    print("\nfiles written:")
    for p, s in written:
        total += s
        print("  %8d  %s" % (s, os.path.relpath(p, ROOT)))
    print("  %8d  total" % total)
    assert total < 1.5e6, "fixtures exceed 1.5 MB"


if __name__ == "__main__":
    main()
