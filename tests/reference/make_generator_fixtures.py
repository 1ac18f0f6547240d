"""One-step reference of the synthetic-image generator (src/synth/generator.c).

Independent float64 PyTorch implementation of ONE optimisation step of
`sardfq_generator`, written from the documented method (README "Synthesis",
include/sardfq.h, the comment at the top of generator.c), with every random
draw of the step chosen here and stored in the fixture, so the C generator
can replay the same step (tests/test_synth.c, case `generator_step_reference`,
through the internal hook `sfq_generator_replay_step` of src/synth/synth.h).
It checks how the losses are ASSEMBLED (weights, micro-batch scaling, prior
roll and flip, the Swin APA target, regions, TV, Adam and the clamp); each
loss alone is checked by make_loss_fixtures.py, whose references are reused.

One step, as documented:
  1. jitter: xj = hflip?(roll(x, (dy, dx)))  (torch.roll, then torch.flip on W)
  2. MSR regions (SARDFQ): region r of image i, quadrant q, box (y0, x0, h, w)
     of the UN-jittered image, resized bilinearly (align_corners=False) to
     H x W and forwarded as an image of its own, target = the quadrant's.
  3. losses
       SARDFQ: L = alpha L_APA(whole) + CE(whole) + CE(regions) + w_tv |TV(x) - tau|
       PSAQ:   L = L_PSE + CE(whole) + w_tv |TV(x) - tau|
     CE = soft cross-entropy, mean over its items (whole images: over n; regions:
     over all regions of the step). APA: blocks l >= depth//2 (1-based), weight
     l/depth, sum over heads of the mean over tokens of (attn - target)^2, mean
     over images; the prior of (image, block, head) is rolled by the jitter
     rounded (half away from zero; no ties are drawn) to whole tokens of its
     grid (ViT: patch; Swin: patch << stage) and flipped with the image. Swin:
     the read-back is the mean attention over all queries of the stage grid, and
     the target is the jittered prior renormalised so that each attention group
     (a window, or one region of a shifted window under timm's mask) has mass
     |group| / N (shape within the group kept; a group of zero prior mass gets
     1/N per token). ViT: the class-token row over the patches (prefix excluded).
     PSE: for every block, minus the mean over images of the KDE entropy of the
     cosine similarities of the head-averaged attention output (class token
     dropped); the KDE grid spans ONE MICRO-BATCH (documented deviation from
     PSAQ-ViT), so L_PSE = sum over micro-batches (B/n) * PSE(micro-batch).
     TV on the un-jittered images of the whole batch (documented deviation).
  4. Adam (torch.optim.Adam, state = the stored moments and step count) with
     the learning rate of the schedule at this step (per round: linear warm-up
     lr (it+1)/warm, then cosine to 0), then clamp each channel to the
     normalised image of [0, 1].

The generator state at the start of the step is stored (images, Adam moments,
steps done, targets, priors, tau), not drawn by the C RNG. Inputs are drawn in
float64 and rounded to float32 (what the file holds); the step is computed in
float64 from the rounded values (model weights: the stored F32 values) and
stored as F32.

Cases (schedule: 10 steps in 2 rounds, warm-up 2; Adam betas 0.5, 0.9):
  vit_sardfq   examples/models/fmnist_vit.safetensors, SARDFQ (APA+MSR+SL+TV),
               alpha 100, n 3, micro-batch 4 (3 whole images + 7 regions ->
               micro-batches of 4, 4, 2), 8 steps done (cosine: lr 0.75 * 0.2),
               jitter (3, -3), flipped: priors rolled by (1, -1) patches
  vit_psaq     the same model, PSAQ-ViT (PSE+CE+TV), n 4, micro-batch 3
               (KDE grids over 3 and 1 images), 3 steps done (lr 0.75 * 0.2),
               jitter (-1, 4), not flipped
  swin_sardfq  tests/data/swin_a.timm.model.safetensors, SARDFQ, alpha 1000,
               n 1, micro-batch 2, 3 regions, 5 steps done (warm-up: lr 0.5 * 0.25),
               jitter (5, -7), flipped: priors rolled by (1, -2) stage-0
               tokens and (1, -1) stage-1 tokens; the APA blocks 2..4 include
               the shifted 4-window block (9-region masks)

  /usr/bin/python3 tests/reference/make_generator_fixtures.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import make_loss_fixtures as lf  # noqa: E402  (reference losses)
import stio  # noqa: E402
import swin_ref  # noqa: E402
import vit_ref  # noqa: E402

D64 = torch.float64
OUT = os.path.join(ROOT, "tests", "data", "generator_step.safetensors")
SEED = 20250620
SARDFQ, PSAQ = 2, 1  # SARDFQ_SYNTH_*


def f32(t):
    return t.to(torch.float32).to(D64)


def f32s(v):
    """A float parameter as the C float holds it."""
    return float(torch.tensor(v, dtype=torch.float32).item())


def round_half_away(v):
    assert abs(abs(v - math.trunc(v)) - 0.5) > 1e-9, "tie in the prior roll: %g" % v
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


# ---- models ---------------------------------------------------------------

def load_vit(path):
    P, meta, _ = stio.load(path)
    D = int(meta["embed_dim"])
    cfg = vit_ref.ViTConfig(int(meta["img_size"]), int(meta["img_size"]), int(meta["patch_size"]),
                            int(meta["in_chans"]), D, int(meta["depth"]), int(meta["num_heads"]),
                            int(round(float(meta["mlp_ratio"]) * D)), int(meta["num_classes"]))
    return {k: v.to(D64) for k, v in P.items()}, cfg, meta


def load_swin(path):
    P, meta, _ = stio.load(path)
    ints = lambda s: tuple(int(v) for v in s.split(","))  # noqa: E731
    cfg = swin_ref.SwinConfig(int(meta["img_size"]), int(meta["img_size"]), int(meta["patch_size"]),
                              int(meta["in_chans"]), int(meta["embed_dim"]), ints(meta["depths"]),
                              ints(meta["num_heads"]), int(meta["window_size"]),
                              float(meta["mlp_ratio"]), int(meta["num_classes"]))
    return {k: v.to(D64) for k, v in P.items()}, cfg, meta


def vit_forward_ao(P, cfg, x):
    """vit_ref.forward, also returning every block's attention output before
    the projection ([B, N, heads*hd], heads contiguous): the input of
    attn.proj, recorded by wrapping the linear that vit_ref.attention uses."""
    saved = []
    orig = vit_ref.attention

    def attention(y, wqkv, bqkv, wproj, bproj, num_heads, linear=vit_ref.linear):
        def lin(a, w, b):
            if w is wproj:
                saved.append(a)
            return linear(a, w, b)
        return orig(y, wqkv, bqkv, wproj, bproj, num_heads, lin)

    vit_ref.attention = attention
    try:
        logits, attn = vit_ref.forward(P, cfg, x)
    finally:
        vit_ref.attention = orig
    assert len(saved) == cfg.depth
    return logits, attn, saved


# ---- pieces of the step ---------------------------------------------------

def jitter(t, dy, dx, flip):
    """[..., h, w]: torch.roll by (dy, dx), then a horizontal flip."""
    t = torch.roll(t, shifts=(dy, dx), dims=(-2, -1))
    return torch.flip(t, dims=(-1,)) if flip else t


def lr_at(step, iters, rounds, warmup, lr):
    """PSAQ-ViT's schedule, per round: linear warm-up then cosine to 0."""
    length = max(iters // rounds, 1)
    r = min(step // length, rounds - 1)
    it = step - r * length
    round_len = iters - r * length if r == rounds - 1 else length
    warm = min(warmup, round_len - 1)
    if it < warm:
        return lr * (it + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (it - warm) / max(round_len - warm, 1))) * lr


def swin_groups(cfg, s, b):
    """[Hs, Ws] attention-group id of every token (raster order of unshifted
    positions) of block b of stage s: window id * 9 + mask region, built on
    the rolled frame and rolled back by the shift."""
    hs, ws = cfg.res(s)
    wh, ww, sh, sw = cfg.block_geom(s, b)
    lab = swin_ref.region_labels(hs, ws, wh, ww, sh, sw)
    yy, xx = torch.meshgrid(torch.arange(hs), torch.arange(ws), indexing="ij")
    win = (yy // wh) * (ws // ww) + xx // ww
    gid = win * 9 + lab
    return torch.roll(gid, shifts=(sh, sw), dims=(0, 1))


def swin_apa_target(prior, gid):
    """prior [heads, Hs, Ws] -> renormalised to mass |g|/N per group."""
    N = gid.numel()
    out = torch.empty_like(prior)
    for g in gid.unique():
        sel = gid == g
        mass = prior[:, sel].sum(dim=1, keepdim=True)
        cnt = int(sel.sum())
        fill = torch.full_like(prior[:, sel], 1.0 / N)
        out[:, sel] = torch.where(mass > 0, prior[:, sel] / mass * cnt / N, fill)
    return out


def swin_apa(attn, target, cfg):
    """attn, target [T] of one image -> sum over used blocks of (l/depth)
    sum_h mean_t (attn - target)^2."""
    depth = sum(cfg.depths)
    loss = attn.new_zeros(())
    for l, (s, b, heads, hs, ws, off) in enumerate(cfg.blocks(), start=1):
        if l < depth // 2:
            continue
        n = heads * hs * ws
        e = (attn[off:off + n] - target[off:off + n]).reshape(heads, hs * ws)
        loss = loss + (l / depth) * (e * e).mean(dim=1).sum()
    return loss


def prior_targets(case, priors, dy, dx, flip):
    """The step's APA targets: jittered priors (+ Swin renormalisation).
    ViT: [n, depth, heads, G]; Swin: [n, T]."""
    cfg = case["cfg"]
    n = priors.shape[0]
    if case["arch"] == "vit":
        gh, gw = cfg.grid_h, cfg.grid_w
        gdy, gdx = round_half_away(dy / cfg.patch), round_half_away(dx / cfg.patch)
        t = priors.reshape(n, cfg.depth, cfg.num_heads, gh, gw)
        return jitter(t, gdy, gdx, flip).reshape(n, cfg.depth, cfg.num_heads, gh * gw)
    out = torch.empty_like(priors)
    for (s, b, heads, hs, ws, off) in cfg.blocks():
        cell = cfg.patch << s
        gdy, gdx = round_half_away(dy / cell), round_half_away(dx / cell)
        gid = swin_groups(cfg, s, b)
        for i in range(n):
            p = priors[i, off:off + heads * hs * ws].reshape(heads, hs, ws)
            p = jitter(p, gdy, gdx, flip)
            out[i, off:off + heads * hs * ws] = swin_apa_target(p, gid).reshape(-1)
    return out


def forward(case, x, want_ao=False):
    if case["arch"] == "vit":
        if want_ao:
            return vit_forward_ao(case["P"], case["cfg"], x)
        return vit_ref.forward(case["P"], case["cfg"], x)
    return swin_ref.forward(case["P"], case["cfg"], x)


def step_losses(case, x, d):
    """The step's loss terms as functions of the images x [n, C, H, W]."""
    cfg, n = case["cfg"], x.shape[0]
    xj = jitter(x, d["dy"], d["dx"], d["flip"])
    terms = {"apa": x.new_zeros(()), "ce": x.new_zeros(()), "msr": x.new_zeros(()),
             "pse": x.new_zeros(())}
    if case["method"] == SARDFQ:
        logits, attn = forward(case, xj)
        terms["ce"] = lf.ce_ref(logits, d["targets"])
        if case["use_apa"]:
            tgt = d["apa_targets"]
            if case["arch"] == "vit":
                terms["apa"] = lf.apa_ref(attn, tgt, cfg.num_prefix)
            else:
                terms["apa"] = sum(swin_apa(attn[i], tgt[i], cfg) for i in range(n)) / n
        regs = d["regions"]
        if len(regs):
            crops = torch.stack([lf.resize_ref(x[i], y0, x0, h, w) for (i, q, y0, x0, h, w) in regs])
            rl = forward(case, crops)[0]
            rt = torch.stack([d["region_targets"][i, q] for (i, q, *_rest) in regs])
            terms["msr"] = lf.ce_ref(rl, rt)
    else:
        logits = []
        mb = case["micro_batch"]
        for start in range(0, n, mb):
            xb = xj[start:start + mb]
            B = xb.shape[0]
            lg, _, aos = forward(case, xb, want_ao=True)
            logits.append(lg)
            pse = sum(lf.pse_ref(ao, cfg.num_heads, 1)[0] for ao in aos)
            terms["pse"] = terms["pse"] + pse * B / n
        terms["ce"] = lf.ce_ref(torch.cat(logits), d["targets"])
    terms["tv"], tv = lf.tv_ref(x, d["tau"])
    total = case["apa_weight"] * terms["apa"] + terms["ce"] + terms["msr"] + terms["pse"] \
        + case["tv_weight"] * terms["tv"]
    return total, terms, tv, xj


def run_case(name, case, gen):
    cfg = case["cfg"]
    n, C = case["n"], cfg.in_chans
    H, W, K = cfg.img_h, cfg.img_w, cfg.num_classes
    mean = [float(v) for v in case["meta"]["mean"].split(",")]
    std = [float(v) for v in case["meta"]["std"].split(",")]
    lo = torch.tensor([f32s(-f32s(m) / f32s(s)) for m, s in zip(mean, std)], dtype=D64)
    hi = torch.tensor([f32s((1 - f32s(m)) / f32s(s)) for m, s in zip(mean, std)], dtype=D64)
    # the state at the start of the step
    x0 = f32(torch.randn(n, C, H, W, generator=gen, dtype=D64))
    x0 = torch.max(torch.min(x0, hi.view(1, C, 1, 1)), lo.view(1, C, 1, 1))
    sardfq = case["method"] == SARDFQ
    use_msr = sardfq and case["use_msr"]
    classes = torch.zeros(n, 4, dtype=torch.int64)
    for i in range(n):
        classes[i] = torch.randperm(K, generator=gen)[:4]
    sl = lambda: 5 + 5 * torch.rand((), generator=gen, dtype=D64)  # noqa: E731
    Z = torch.zeros(n, K, dtype=D64)
    RZ = torch.zeros(n, 4, K, dtype=D64)
    for i in range(n):
        for c in classes[i, :4 if use_msr else 1]:
            Z[i, c] = sl()
        for q in range(4):
            RZ[i, q, classes[i, q]] = sl()
    if sardfq:   # soft labels
        targets, region_targets = f32(torch.softmax(Z, 1)), f32(torch.softmax(RZ, 2))
    else:        # PSAQ: one-hot at the primary class
        Z.zero_()
        RZ.zero_()
        targets = F.one_hot(classes[:, 0], K).to(D64)
        region_targets = F.one_hot(classes, K).to(D64)
    scale = math.sqrt(n * C * H * W / (32.0 * 3 * 224 * 224))
    tau = f32(torch.tensor(2500 + 500 * torch.rand((), generator=gen, dtype=D64).item(), dtype=D64) * scale)
    if case["arch"] == "vit":
        G = cfg.grid_h * cfg.grid_w
        pr = torch.rand(n, cfg.depth, cfg.num_heads, G, generator=gen, dtype=D64) ** 3
    else:
        pr = torch.rand(n, cfg.attn_len, generator=gen, dtype=D64) ** 3
        for (s, b, heads, hs, ws, off) in cfg.blocks():
            v = pr[:, off:off + heads * hs * ws].reshape(n, heads, hs * ws)
            pr[:, off:off + heads * hs * ws] = (v / v.sum(-1, keepdim=True)).reshape(n, -1)
    if case["arch"] == "vit":
        pr = pr / pr.sum(-1, keepdim=True)
    priors = f32(pr)
    # the step's draws
    dy, dx, flip = case["jitter"]
    qh, qw = H // 2, W // 2
    regions = []
    if use_msr:
        for i, m in enumerate(case["regions_per_image"]):
            quads = torch.randperm(4, generator=gen)[:m].tolist()
            for q in quads:
                h = int(torch.randint(qh // 2, qh + 1, (), generator=gen))
                w = int(torch.randint(qw // 2, qw + 1, (), generator=gen))
                ry = (q // 2) * qh + int(torch.randint(0, qh - h + 1, (), generator=gen))
                rx = (q % 2) * qw + int(torch.randint(0, qw - w + 1, (), generator=gen))
                regions.append((i, q, ry, rx, h, w))
    d = {"dy": dy, "dx": dx, "flip": flip, "targets": targets, "region_targets": region_targets,
         "tau": tau, "regions": regions}
    if sardfq and case["use_apa"]:
        d["apa_targets"] = prior_targets(case, priors, dy, dx, flip)
    # the step
    x = x0.clone().requires_grad_(True)
    total, terms, tv, xj = step_losses(case, x, d)
    grad, = torch.autograd.grad(total, x)
    # per-term gradient norms (how much each term weighs in the checked gradient)
    norms = {}
    for k, wgt in (("apa", case["apa_weight"]), ("ce", 1.0), ("msr", 1.0), ("pse", 1.0),
                   ("tv", case["tv_weight"])):
        if terms[k].requires_grad:
            x2 = x0.clone().requires_grad_(True)
            t2 = step_losses(case, x2, d)[1][k]
            if t2.requires_grad:
                norms[k] = (wgt * torch.autograd.grad(t2, x2)[0]).norm().item()
    # probability of each image's first class (report.target_prob), on the whole images
    with torch.no_grad():
        lg = forward(case, xj.detach())[0]
        prob = torch.softmax(lg, 1)[torch.arange(n), classes[:, 0]].mean()
    # Adam state: moments of plausible size for this gradient
    grms = grad.pow(2).mean().sqrt()
    am = f32(0.5 * grms * torch.randn(n, C, H, W, generator=gen, dtype=D64))
    av = f32(grms ** 2 * (0.2 + 2 * torch.rand(n, C, H, W, generator=gen, dtype=D64)))
    lr = lr_at(case["step"], case["iters"], case["rounds"], case["warmup"], f32s(case["lr"]))
    b1, b2, eps = f32s(case["beta1"]), f32s(case["beta2"]), f32s(case["eps"])
    p = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps)
    opt.state[p] = {"step": torch.tensor(float(case["step"])), "exp_avg": am.clone(),
                    "exp_avg_sq": av.clone()}
    p.grad = grad.clone()
    opt.step()
    t = case["step"] + 1   # the textbook update, as a check of the optimiser's state handling
    m1, v1 = b1 * am + (1 - b1) * grad, b2 * av + (1 - b2) * grad * grad
    manual = x0 - lr / (1 - b1 ** t) * m1 / (v1.sqrt() / math.sqrt(1 - b2 ** t) + eps)
    assert torch.allclose(p.detach(), manual, rtol=0, atol=1e-12)
    x1 = torch.max(torch.min(p.detach(), hi.view(1, C, 1, 1)), lo.view(1, C, 1, 1))
    loss_vec = torch.tensor([total.item(), terms["apa"].item(), terms["ce"].item(), terms["msr"].item(),
                             terms["tv"].item(), terms["pse"].item(), prob.item(), tv.item()], dtype=D64)
    params = torch.tensor([case["method"], n, case["micro_batch"], case["iters"], case["rounds"],
                           case["warmup"], case["step"], case["lr"], case["beta1"], case["beta2"],
                           case["eps"], case["apa_weight"], case["tv_weight"], case["use_apa"],
                           case["use_msr"], case["use_sl"]], dtype=D64)
    reg_t = torch.tensor(regions, dtype=D64).reshape(-1, 6)
    out = {
        "params": params, "images": x0, "adam_m": am, "adam_v": av, "classes": classes.to(D64),
        "soft_logits": Z, "targets": targets, "region_soft_logits": RZ,
        "region_targets": region_targets, "priors": priors, "tau": tau.reshape(1),
        "jitter": torch.tensor([dy, dx, flip], dtype=D64), "regions": reg_t,
        "loss": loss_vec, "lr": torch.tensor([lr], dtype=D64), "grad": grad,
        "images_after": x1,
    }
    clamped = ((x1 == lo.view(1, C, 1, 1)) | (x1 == hi.view(1, C, 1, 1))).sum().item()
    print("%-12s n %d mb %d regions %d  loss %.6g  apa %.4g ce %.4g msr %.4g tv %.4g (TV %.4g, tau %.4g) "
          "pse %.4g  lr %.4g  |grad| max %.3g  clamped %d/%d"
          % (name, n, case["micro_batch"], len(regions), total.item(), terms["apa"].item(),
             terms["ce"].item(), terms["msr"].item(), terms["tv"].item(), tv.item(), tau.item(),
             terms["pse"].item(), lr, grad.abs().max().item(), clamped, x1.numel()))
    print("%-12s weighted gradient norms: %s (total %.3g)"
          % ("", ", ".join("%s %.3g" % kv for kv in norms.items()), grad.norm().item()))
    return {name + "." + k: v for k, v in out.items()}


def self_check(gen):
    # jitter is roll then flip, as sfq_jitter documents
    t = torch.arange(12.0).reshape(3, 4)
    j = jitter(t, 1, -1, 1)
    for y in range(3):
        for xx in range(4):
            xs = 3 - xx
            assert j[y, xx] == t[(y - 1) % 3, (xs + 1) % 4]
    # the recorded attention outputs do not change the forward, and the
    # class-token row of block l is what vit_ref returns
    P, cfg, _ = load_vit(os.path.join(ROOT, "examples", "models", "fmnist_vit.safetensors"))
    x = torch.randn(2, 1, 28, 28, generator=gen, dtype=D64)
    a, b = vit_ref.forward(P, cfg, x), vit_forward_ao(P, cfg, x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # Swin: every attention group of the read-back has mass |g|/N (the
    # premise of the target), and so has the target
    P, cfg, _ = load_swin(os.path.join(ROOT, "tests", "data", "swin_a.timm.model.safetensors"))
    x = torch.randn(1, 3, 56, 56, generator=gen, dtype=D64)
    rb = swin_ref.forward(P, cfg, x)[1][0]
    groups = 0
    for (s, b, heads, hs, ws, off) in cfg.blocks():
        gid = swin_groups(cfg, s, b)
        a = rb[off:off + heads * hs * ws].reshape(heads, hs, ws)
        pr = torch.rand(heads, hs, ws, generator=gen, dtype=D64)
        tg = swin_apa_target(pr, gid)
        for g in gid.unique():
            sel = gid == g
            want = sel.sum().item() / gid.numel()
            assert torch.allclose(a[:, sel].sum(1), torch.full((heads,), want, dtype=D64), atol=1e-12)
            assert torch.allclose(tg[:, sel].sum(1), torch.full((heads,), want, dtype=D64), atol=1e-12)
            groups += heads
    assert groups == 3 * 4 + 3 * 9 + 6 + 6, groups
    # the schedule: warm-up, then cosine to 0, per round
    assert lr_at(0, 10, 2, 2, 1.0) == 0.5 and lr_at(1, 10, 2, 2, 1.0) == 1.0
    assert abs(lr_at(8, 10, 2, 2, 1.0) - 0.75) < 1e-15 and lr_at(5, 10, 2, 2, 1.0) == 0.5


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    self_check(gen)
    vit = load_vit(os.path.join(ROOT, "examples", "models", "fmnist_vit.safetensors"))
    swin = load_swin(os.path.join(ROOT, "tests", "data", "swin_a.timm.model.safetensors"))
    common = {"iters": 10, "rounds": 2, "warmup": 2, "beta1": 0.5, "beta2": 0.9, "eps": 1e-8,
              "tv_weight": 0.05, "use_apa": 1, "use_msr": 1, "use_sl": 1}
    cases = [
        ("vit_sardfq", dict(common, arch="vit", model=vit, method=SARDFQ, n=3, micro_batch=4, step=8,
                            lr=0.2, apa_weight=100.0, jitter=(3, -3, 1), regions_per_image=(2, 4, 1))),
        ("vit_psaq", dict(common, arch="vit", model=vit, method=PSAQ, n=4, micro_batch=3, step=3,
                          lr=0.2, apa_weight=100.0, jitter=(-1, 4, 0), use_apa=0, use_msr=0, use_sl=0)),
        ("swin_sardfq", dict(common, arch="swin", model=swin, method=SARDFQ, n=1, micro_batch=2, step=5,
                             lr=0.25, apa_weight=1000.0, jitter=(5, -7, 1), regions_per_image=(3,))),
    ]
    tensors = {}
    for name, case in cases:
        case["P"], case["cfg"], case["meta"] = case.pop("model")
        tensors.update(run_case(name, case, gen))
    meta = {"generator": "tests/reference/make_generator_fixtures.py",
            "vit_sardfq.model": "examples/models/fmnist_vit.safetensors",
            "vit_psaq.model": "examples/models/fmnist_vit.safetensors",
            "swin_sardfq.model": "tests/data/swin_a.timm.model.safetensors",
            "params": "method, n_images, micro_batch, iters, rounds, warmup, steps done, lr, beta1, "
                      "beta2, adam_eps, apa_weight, tv_weight, use_apa, use_msr, use_sl",
            "loss": "total, apa, ce, msr, tv (|TV - tau|), pse, target_prob, TV",
            "regions": "image, quadrant, y0, x0, h, w"}
    nbytes = stio.save(OUT, tensors, meta)
    back, _, _ = stio.load(OUT)
    for k, v in tensors.items():
        assert torch.equal(back[k].to(D64), f32(v)), k
    print("%s: %d bytes, %d tensors" % (os.path.relpath(OUT, ROOT), nbytes, len(tensors)))
    assert nbytes < 400 * 1024


if __name__ == "__main__":
    main()
