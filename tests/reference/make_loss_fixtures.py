"""Golden fixtures for the synthesis losses (src/synth/losses.h).

Independent float64 PyTorch implementations, gradients by autograd:

  APA   L = (1/B) sum_b sum_{l >= depth//2} sum_h (l/depth) mean_t (attn[b,l,h,P+t] - prior[b,l,h,t])^2
        (l is 1-based; depth//2 means blocks l = max(1, depth//2) .. depth)
  HEAD  inter-head alignment (MimiQ's observation, the cosine form):
        L = (1/B) sum_b (1/depth) sum_l mean_{h < h'} (1 - cos(a[b,l,h,P:], a[b,l,h',P:]))
        with torch.nn.functional.cosine_similarity (eps 1e-12 on each norm);
        the SSIM form (file losses_head_ssim) replaces cos by the SSIM of
        the two read-backs as one window: population mean, variance and
        covariance, C1 = 1e-4, C2 = 9e-4
  CE    L = -(1/B) sum_b sum_k T[b,k] log_softmax(z_b)[k]
  TV    PSAQ-ViT generate_data.get_image_prior_losses: the sum of the
        Frobenius norms (over the whole batch) of
          x[..., :, :-1] - x[..., :, 1:],  x[..., :-1, :] - x[..., 1:, :],
          x[..., 1:, :-1] - x[..., :-1, 1:], x[..., :-1, :-1] - x[..., 1:, 1:]
        and L = |TV - tau| (torch.norm of the scalar TV - tau).
  PSE   PSAQ-ViT generate_data.generate_data's entropy term for one block,
        with utils/kde.py's GaussianKernel (bandwidth 0.01): the hooked
        matmul2 output [B, H, N, hd] is averaged over heads, the first `skip`
        tokens dropped, sims = torch.cosine_similarity(a.unsqueeze(1),
        a.unsqueeze(2), dim=3) (all M*M pairs, default eps 1e-8), the grid is
        torch.linspace(sims.min().item(), sims.max().item(), 10) (no
        gradient), p(x) = mean_i N(x; sims_i, h^2) over the M*M entries of
        each image, H = trapz(-(p+1e-4) log(p+1e-4), grid) averaged over the
        batch, L = -H.
  PSE windows  the same code on Swin: the hooked output is [B*nW, H, Nw, hd]
        (window-major within an image); mean over heads, [:, skip:, :] drops
        the first tokens of every window, cosine similarities within each
        window [B*nW, M, M], then .view(B, -1) pools an image's nW*M*M values
        into one KDE; the grid spans the min/max over the whole batch.
  crop-resize  F.interpolate(crop, size=(H, W), mode='bilinear',
        align_corners=False) of src[:, y0:y0+h, x0:x0+w]; its adjoint by
        autograd of <resize(src), g> with respect to the whole src.

Inputs are drawn in float64, rounded to float32 (what the files hold), and
the goldens computed in float64 from the rounded values, stored as F32.

  /usr/bin/python3 tests/reference/make_loss_fixtures.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import stio  # noqa: E402

DATA = os.path.join(ROOT, "tests", "data")
D64 = torch.float64


def f32(t):
    """The float64 values of t rounded to float32."""
    return t.to(torch.float32).to(D64)


# ---- reference losses ----------------------------------------------------

def apa_ref(attn, prior, P):
    B, depth, H, N = attn.shape
    loss = attn.new_zeros(())
    for l in range(1, depth + 1):
        if l < depth // 2:
            continue
        e = attn[:, l - 1, :, P:] - prior[:, l - 1]
        loss = loss + (l / depth) * (e * e).mean(dim=-1).sum()
    return loss / B


def ssim_1d(u, v, C1=1e-4, C2=9e-4):
    """SSIM of two vectors (last dim) as one window, population statistics."""
    mu, mv = u.mean(-1), v.mean(-1)
    cov = ((u - mu[..., None]) * (v - mv[..., None])).mean(-1)
    vu, vv = u.var(-1, unbiased=False), v.var(-1, unbiased=False)
    return (2 * mu * mv + C1) * (2 * cov + C2) / ((mu * mu + mv * mv + C1) * (vu + vv + C2))


def head_ref(attn, P, form="cosine"):
    B, depth, H, N = attn.shape
    loss = attn.new_zeros(())
    pairs = [(h, k) for h in range(H) for k in range(h + 1, H)]
    loss = (attn * 0).sum()          # (a graph even when no block has two heads)
    for l in range(depth):
        if not pairs:
            continue
        a = attn[:, l, :, P:]
        if form == "ssim":
            cs = torch.stack([ssim_1d(a[:, h], a[:, k]) for h, k in pairs], 1)
        else:
            cs = torch.stack([F.cosine_similarity(a[:, h], a[:, k], dim=-1, eps=1e-12) for h, k in pairs], 1)
        loss = loss + (1 - cs).mean(dim=1).sum() / depth
    return loss / B


def ce_ref(z, T):
    return -(T * torch.log_softmax(z, dim=1)).sum(dim=1).mean()


def tv_maps(x):
    return [x[:, :, :, :-1] - x[:, :, :, 1:],
            x[:, :, :-1, :] - x[:, :, 1:, :],
            x[:, :, 1:, :-1] - x[:, :, :-1, 1:],
            x[:, :, :-1, :-1] - x[:, :, 1:, 1:]]


def tv_ref(x, tau):
    tv = sum(torch.norm(d) for d in tv_maps(x))
    return torch.norm(tv - tau), tv


def gaussian_kde(test, train, bw=0.01):
    """test [B, T], train [B, S] -> [B, T]: mean over train of N(test; train, bw^2)."""
    var = bw * bw
    d = test.unsqueeze(2) - train.unsqueeze(1)
    return (torch.exp(-d * d / (2 * var)) / math.sqrt(2 * math.pi * var)).mean(dim=-1)


def pse_ref(ao, H, skip, bounds=None):
    """bounds: fixed (lo, hi) for the grid (for gradcheck, which would
    otherwise see the grid move with the tokens attaining the min)."""
    B, N, D = ao.shape
    hd = D // H
    hooked = ao.view(B, N, H, hd).transpose(1, 2)     # [B, H, N, hd] like matmul2
    a = hooked.mean(dim=1)[:, skip:, :]
    sims = torch.cosine_similarity(a.unsqueeze(1), a.unsqueeze(2), dim=3)
    lo, hi = bounds if bounds is not None else (sims.min().item(), sims.max().item())
    grid = torch.linspace(lo, hi, steps=10, dtype=D64).repeat(B, 1)
    p = gaussian_kde(grid, sims.reshape(B, -1)) + 1e-4
    ent = torch.trapz(-p * torch.log(p), grid, dim=-1).mean()
    return -ent, sims


def pse_windows_ref(ao, nW, H, skip, bounds=None):
    """ao [B, nW, N, H*hd] (the C layout); written directly from the Swin
    shapes rather than through pse_ref."""
    B, _, N, D = ao.shape
    hd = D // H
    hooked = ao.reshape(B * nW, N, H, hd).permute(0, 2, 1, 3)   # [B*nW, H, Nw, hd]
    a = hooked.mean(dim=1)[:, skip:, :]                          # [B*nW, M, hd]
    sims = torch.cosine_similarity(a.unsqueeze(1), a.unsqueeze(2), dim=3)  # [B*nW, M, M]
    lo, hi = bounds if bounds is not None else (sims.min().item(), sims.max().item())
    grid = torch.linspace(lo, hi, steps=10, dtype=D64).repeat(B, 1)
    p = gaussian_kde(grid, sims.view(B, -1)) + 1e-4
    ent = torch.trapz(-p * torch.log(p), grid, dim=-1).mean()
    return -ent, sims


def pse_windows_loop(ao, nW, H, skip):
    """The windowed loss by explicit loops over images and windows (value
    only, no broadcasting tricks), to check pse_windows_ref."""
    B, _, N, D = ao.shape
    hd = D // H
    vals = []
    for b in range(B):
        v = []
        for w in range(nW):
            f = [[sum(ao[b, w, t, h * hd + d] for h in range(H)) / H for d in range(hd)]
                 for t in range(skip, N)]
            nr = [max(math.sqrt(sum(x * x for x in fi)), 1e-8) for fi in f]
            for i in range(len(f)):
                for j in range(len(f)):
                    v.append(sum(f[i][d] * f[j][d] for d in range(hd)) / (nr[i] * nr[j]))
        vals.append(v)
    lo = min(min(v) for v in vals)
    hi = max(max(v) for v in vals)
    xs = [lo + (hi - lo) * k / 9 for k in range(10)]
    c = 1 / math.sqrt(2 * math.pi * 1e-4)
    ent = 0.0
    for v in vals:
        q = [sum(c * math.exp(-(x - g) ** 2 / 2e-4) for g in v) / len(v) + 1e-4 for x in xs]
        ent += sum(0.5 * (xs[k + 1] - xs[k]) * (-q[k] * math.log(q[k]) - q[k + 1] * math.log(q[k + 1]))
                   for k in range(9))
    return -ent / B


def resize_ref(src, y0, x0, h, w):
    C, H, W = src.shape
    crop = src[:, y0:y0 + h, x0:x0 + w].unsqueeze(0)
    return F.interpolate(crop, size=(H, W), mode="bilinear", align_corners=False)[0]


def value_and_grad(fn, *xs):
    xs = [x.clone().requires_grad_(True) for x in xs]
    out = fn(*xs)
    v = out[0] if isinstance(out, tuple) else out
    gs = torch.autograd.grad(v, xs)
    return v.detach(), [g.detach() for g in gs]


# ---- self-checks of the references ----------------------------------------

def self_check(gen):
    # PSE: gradcheck on a tiny case; the kernel is narrow, so use
    # well-spread vectors and a small step.
    ao = torch.randn(2, 6, 2 * 3, generator=gen, dtype=D64)
    sims = pse_ref(ao, 2, 1)[1]
    bounds = (sims.min().item(), sims.max().item())
    assert torch.autograd.gradcheck(lambda t: pse_ref(t, 2, 1, bounds)[0],
                                     (ao.requires_grad_(True),), eps=1e-7, atol=1e-5, rtol=1e-4)
    # PSE windows (own generator, so the other fixtures do not move):
    # gradcheck, the loop version, and windows == 1 is the ViT reference
    wgen = torch.Generator().manual_seed(20250611)
    ao = torch.randn(2, 3, 5, 2 * 3, generator=wgen, dtype=D64)
    sims = pse_windows_ref(ao, 3, 2, 1)[1]
    bounds = (sims.min().item(), sims.max().item())
    assert torch.autograd.gradcheck(lambda t: pse_windows_ref(t, 3, 2, 1, bounds)[0],
                                     (ao.requires_grad_(True),), eps=1e-7, atol=1e-5, rtol=1e-4)
    ao = ao.detach()
    assert abs(pse_windows_ref(ao, 3, 2, 1)[0].item() - pse_windows_loop(ao, 3, 2, 1)) < 1e-10
    assert abs(pse_windows_ref(ao[:, :1], 1, 2, 1)[0] - pse_ref(ao[:, 0], 2, 1)[0]) < 1e-14
    # the cosine similarity is the textbook one away from tiny norms
    a = torch.randn(5, 4, generator=gen, dtype=D64)
    an = a / a.norm(dim=1, keepdim=True)
    assert torch.allclose(torch.cosine_similarity(a.unsqueeze(0), a.unsqueeze(1), dim=2),
                          an @ an.T, atol=1e-14)
    # resize: identity region is the identity, and the adjoint is consistent
    src = torch.randn(2, 5, 7, generator=gen, dtype=D64)
    assert torch.allclose(resize_ref(src, 0, 0, 5, 7), src, atol=1e-15)
    g = torch.randn(2, 5, 7, generator=gen, dtype=D64)
    _, (ds,) = value_and_grad(lambda s: (resize_ref(s, 1, 2, 3, 4) * g).sum(), src)
    lhs = (resize_ref(src, 1, 2, 3, 4) * g).sum()
    assert abs(lhs - (src * ds).sum()) < 1e-12
    # TV maps against an explicit loop on a small image
    x = torch.randn(1, 1, 4, 5, generator=gen, dtype=D64)
    s = [0.0] * 4
    for i in range(4):
        for j in range(5):
            if j < 4:
                s[0] += (x[0, 0, i, j] - x[0, 0, i, j + 1]) ** 2
            if i < 3:
                s[1] += (x[0, 0, i, j] - x[0, 0, i + 1, j]) ** 2
            if i < 3 and j < 4:
                s[2] += (x[0, 0, i + 1, j] - x[0, 0, i, j + 1]) ** 2
                s[3] += (x[0, 0, i, j] - x[0, 0, i + 1, j + 1]) ** 2
    assert abs(sum(math.sqrt(v) for v in s) - tv_ref(x, 0.0)[1]) < 1e-12


# ---- fixture builders ------------------------------------------------------

def build_apa(gen):
    B, depth, H, N, P = 3, 4, 3, 50, 1
    G = N - P
    attn = f32(torch.softmax(2.0 * torch.randn(B, depth, H, N, generator=gen, dtype=D64), -1))
    prior = torch.rand(B, depth, H, G, generator=gen, dtype=D64) ** 3
    prior = f32(prior / prior.sum(-1, keepdim=True))
    v, (g,) = value_and_grad(lambda a: apa_ref(a, prior, P), attn)
    t = {"attn": attn, "prior": prior, "dims": torch.tensor([B, depth, H, N, P], dtype=D64),
         "loss": v.reshape(1), "dattn": g}
    # a second case: odd depth, two prefix tokens
    B, depth, H, N, P = 2, 5, 2, 12, 2
    G = N - P
    attn = f32(torch.softmax(torch.randn(B, depth, H, N, generator=gen, dtype=D64), -1))
    prior = torch.rand(B, depth, H, G, generator=gen, dtype=D64)
    prior = f32(prior / prior.sum(-1, keepdim=True))
    v, (g,) = value_and_grad(lambda a: apa_ref(a, prior, P), attn)
    t.update({"b.attn": attn, "b.prior": prior,
              "b.dims": torch.tensor([B, depth, H, N, P], dtype=D64),
              "b.loss": v.reshape(1), "b.dattn": g})
    return t


def build_head(gen, form="cosine"):
    t = {}
    # three cases: the default model's layout, two prefix tokens with more
    # heads, and a one-head block mixed in (depth of Swin-like heads 1)
    for name, (B, depth, H, N, P, sharp) in (("", (3, 4, 3, 50, 1, 2.0)),
                                             ("b.", (2, 3, 4, 12, 2, 1.0)),
                                             ("c.", (2, 2, 1, 9, 0, 1.0))):
        attn = f32(torch.softmax(sharp * torch.randn(B, depth, H, N, generator=gen, dtype=D64), -1))
        v, (g,) = value_and_grad(lambda a: head_ref(a, P, form), attn)
        t.update({name + "attn": attn, name + "dims": torch.tensor([B, depth, H, N, P], dtype=D64),
                  name + "loss": v.reshape(1), name + "dattn": g})
    return t


def build_head_ssim(gen):
    return build_head(gen, "ssim")


def build_ce(gen):
    B, K = 4, 10
    z = f32(3.0 * torch.randn(B, K, generator=gen, dtype=D64))
    # soft: softmax of U(5, 10) logits on 1-3 classes, 0 elsewhere
    Z = torch.zeros(B, K, dtype=D64)
    for b in range(B):
        m = 1 + b % 3
        idx = torch.randperm(K, generator=gen)[:m]
        Z[b, idx] = 5 + 5 * torch.rand(m, generator=gen, dtype=D64)
    T_soft = f32(torch.softmax(Z, dim=1))
    labels = torch.randint(0, K, (B,), generator=gen)
    T_hot = F.one_hot(labels, K).to(D64)
    t = {"logits": z, "dims": torch.tensor([B, K], dtype=D64)}
    for name, T in (("soft", T_soft), ("hot", T_hot)):
        v, (g,) = value_and_grad(lambda a: ce_ref(a, T), z)
        t[name + ".targets"] = T
        t[name + ".loss"] = v.reshape(1)
        t[name + ".dlogits"] = g
    # the one-hot case equals F.cross_entropy
    assert abs(ce_ref(z, T_hot) - F.cross_entropy(z, labels)) < 1e-12
    return t


def build_tv(gen):
    B, C, H, W = 2, 3, 12, 10
    x = f32(torch.randn(B, C, H, W, generator=gen, dtype=D64))
    tv = tv_ref(x, 0.0)[1].item()
    t = {"x": x, "dims": torch.tensor([B, C, H, W], dtype=D64), "tv": torch.tensor([tv], dtype=D64)}
    for name, tau in (("below", 0.8 * tv), ("above", 1.3 * tv)):
        tau = f32(torch.tensor([tau], dtype=D64))
        v, (g,) = value_and_grad(lambda a: tv_ref(a, tau[0]), x)
        t[name + ".tau"] = tau
        t[name + ".loss"] = v.reshape(1)
        t[name + ".dx"] = g
    return t


def build_pse(gen):
    t = {}
    # a: spread similarities (grid step >> bandwidth); b: concentrated
    # similarities (grid step < bandwidth), no prefix token; c: a larger case
    specs = (("a", 2, 17, 3, 8, 1, None), ("b", 3, 11, 2, 6, 0, 0.25), ("c", 2, 50, 4, 16, 1, None))
    for name, B, N, H, hd, skip, noise in specs:
        if noise is None:
            ao = torch.randn(B, N, H * hd, generator=gen, dtype=D64)
        else:
            base = torch.randn(1, 1, H * hd, generator=gen, dtype=D64)
            ao = base + noise * torch.randn(B, N, H * hd, generator=gen, dtype=D64)
        ao = f32(ao)
        v, (g,) = value_and_grad(lambda a: pse_ref(a, H, skip), ao)
        sims = pse_ref(ao, H, skip)[1]
        print("pse %s: loss %.6f, sims in [%.4f, %.4f]" % (name, v.item(), sims.min(), sims.max()))
        t.update({name + ".ao": ao, name + ".dims": torch.tensor([B, N, H, hd, skip], dtype=D64),
                  name + ".loss": v.reshape(1), name + ".dao": g})
    return t


def build_pse_windows(_gen):
    """Own generator (seed 20250612): adding this file leaves the others
    byte-identical."""
    gen = torch.Generator().manual_seed(20250612)
    t = {}
    # a: spread similarities, skip 1 (Swin as PSAQ-ViT hooks it); b: similarities
    # concentrated around a shared direction, no skipped token, odd sizes
    specs = (("a", 2, 4, 9, 2, 4, 1, None), ("b", 3, 2, 7, 3, 5, 0, 0.3))
    for name, B, nW, N, H, hd, skip, noise in specs:
        if noise is None:
            ao = torch.randn(B, nW, N, H * hd, generator=gen, dtype=D64)
        else:
            base = torch.randn(1, 1, 1, H * hd, generator=gen, dtype=D64)
            ao = base + noise * torch.randn(B, nW, N, H * hd, generator=gen, dtype=D64)
        ao = f32(ao)
        v, (g,) = value_and_grad(lambda a: pse_windows_ref(a, nW, H, skip), ao)
        sims = pse_windows_ref(ao, nW, H, skip)[1]
        assert abs(v.item() - pse_windows_loop(ao, nW, H, skip)) < 1e-10
        assert torch.all(g[:, :, :skip] == 0)
        print("pse_windows %s: loss %.6f, sims in [%.4f, %.4f]"
              % (name, v.item(), sims.min(), sims.max()))
        t.update({name + ".ao": ao,
                  name + ".dims": torch.tensor([B, nW, N, H, hd, skip], dtype=D64),
                  name + ".loss": v.reshape(1), name + ".dao": g})
    return t


def build_resize(gen):
    t = {}
    images = (("sq", 3, 16, 16, [(0, 0, 16, 16), (2, 3, 8, 8), (5, 1, 7, 12), (0, 10, 16, 6),
                                 (9, 9, 7, 7), (3, 4, 1, 5), (15, 15, 1, 1), (4, 0, 11, 3)]),
              ("rect", 2, 12, 20, [(0, 0, 12, 20), (1, 2, 6, 10), (3, 5, 9, 7), (0, 0, 12, 1)]))
    for name, C, H, W, regions in images:
        src = f32(torch.randn(C, H, W, generator=gen, dtype=D64))
        t[name + ".src"] = src
        t[name + ".regions"] = torch.tensor(regions, dtype=D64)
        for r, (y0, x0, h, w) in enumerate(regions):
            g = f32(torch.randn(C, H, W, generator=gen, dtype=D64))
            dst = resize_ref(src, y0, x0, h, w)
            _, (ds,) = value_and_grad(lambda s: (resize_ref(s, y0, x0, h, w) * g).sum(), src)
            t["%s.%d.dst" % (name, r)] = dst
            t["%s.%d.g" % (name, r)] = g
            t["%s.%d.dsrc" % (name, r)] = ds
    return t


def main():
    gen = torch.Generator().manual_seed(20250610)
    torch.set_num_threads(1)
    self_check(gen)
    total = 0
    for name, build in (("apa", build_apa), ("ce", build_ce), ("tv", build_tv),
                        ("pse", build_pse), ("resize", build_resize),
                        ("pse_windows", build_pse_windows), ("head", build_head),
                        ("head_ssim", build_head_ssim)):
        tensors = build(gen)
        path = os.path.join(DATA, "losses_%s.safetensors" % name)
        n = stio.save(path, tensors, {"generator": "tests/reference/make_loss_fixtures.py"})
        back, _, _ = stio.load(path)
        for k, v in tensors.items():
            assert torch.equal(back[k].to(D64), f32(v)), k
        total += n
        print("%-40s %7d bytes, %d tensors" % (os.path.relpath(path, ROOT), n, len(tensors)))
    print("total %d bytes" % total)
    assert total < 300 * 1024


if __name__ == "__main__":
    main()
