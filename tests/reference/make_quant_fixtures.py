"""Golden fixtures for the quantizers (src/quant/quant.h, tests/test_quant.c).

Independent float32 PyTorch implementations of the reference formulas:

  RepQ-ViT (zkkli/RepQ-ViT, classification/quant/quantizer.py)
    uniform    q = clamp(round(x / D) + z, 0, 2^b - 1), xhat = (q - z) * D
    search     for pct in (0.999, 0.9999, 0.99999):
                 hi = Q(x, pct), lo = Q(x, 1.0 - pct)
                 D = (hi - lo) / (2^b - 1), z = round(-lo / D)
                 score = mean((x - xhat)^2)          (float32 torch mean)
               keep the first candidate with score < best (best starts at
               1e10); per channel = the same search on each row of a [C][K]
               weight / each column of a [tokens][C] activation.
    Q          torch.quantile (linear) when the tensor has <= 2^24 values,
               else torch.tensor(numpy.percentile(x, pct * 100), float32)
               (RepQ-ViT's try/except: torch.quantile raises above 2^24).
    log-sqrt2  q = round(-2 log2(x / D)); zero where q >= 2^b (x = 0 too);
               q = clamp(q, 0, 2^b - 1);
               xhat = 2^(-ceil(q/2)) * ((q % 2) * (sqrt(2) - 1) + 1) * D
               search: D = Q(x, pct), same score and tie rule, D starts as
               max(x).
  PSAQ-ViT (zkkli/PSAQ-ViT, models/quantization_utils/quant_utils.py)
    weights    per row: s = max(max(-min, max) / ((2^b - 1) / 2), eps),
               q = clamp(round(x / s + 0), -2^(b-1), 2^(b-1) - 1), xhat = q*s
    activation s = max((max - min) / (2^b - 1), eps),
               z = clamp(0 - round(min / s), 0, 2^b - 1),
               q = clamp(round(x / s + z), 0, 2^b - 1), xhat = (q - z) * s

Every case is checked to be far from a tie: the candidate RepQ-ViT picks
with float32 scores must also win with float64 scores by a relative margin
of 1e-5 (the C code scores in double), and for log-sqrt2 no input is within
1e-4 of a rounding boundary of -2 log2(x / D) for any candidate D (torch's
SLEEF log2 and glibc's log2f can differ by an ulp). Inputs that fail are
perturbed and re-checked.

Large cases are not stored: their inputs come from a splitmix64-based
generator written with float32 operations only, which tests/test_quant.c
reproduces bit for bit (gen_uniform / gen_heavy / gen_softmaxish below);
the files hold their goldens (and the first values of each generator as a
cross-check).

Files (all F32; bit widths 2..8 stacked along the first axis, index b - 2):
  quant_uniform.safetensors  per-tensor cases t0..t5 and per-channel cases
                             rows (x [6][120]) and cols (x [100][5]):
                             <c>.x, <c>.scale, <c>.zero, <c>.chosen,
                             <c>.lo, <c>.hi ([7](,C)[3] candidate ranges),
                             <c>.mse ([7](,C)[3], float64 scores rounded),
                             <c>.y ([7] + x.shape, fake-quant output)
  quant_log.safetensors      softmax cases s0, s1: <c>.x, .scale, .chosen,
                             .hi ([7][3] candidate D), .y; level table
                             `levels` (xhat / D for q = 0..255, torch)
  quant_psaq.safetensors     w.x [8][48] (zero, positive and negative rows),
                             w.scale [7][8], w.y [7][8][48]; a.x [250],
                             a.min, a.max, a.scale [7], a.zero [7],
                             a.y [7][250]; a2.* the same for a constant
                             tensor
  quant_gen.safetensors      gw: weight 768 x 3072 (seed 11), per row,
                             scale/zero [7][768]; ga: activation 6304 x 96
                             (seed 12), per column, scale/zero [7][96];
                             gt: per tensor 2^24 + 1001 values (seed 13, numpy
                             quantile path), bits 4 and 8: scale/zero [2];
                             gs: softmax-like 1,000,003 values (seed 14),
                             log-sqrt2 scale [7]; qt.torch/qt.numpy
                             [len(QT_N)][len(QT_P)] quantiles of
                             gen_heavy(15 + i, n) for n in QT_N; gen.* first
                             values of each generator.

  /usr/bin/python3 tests/reference/make_quant_fixtures.py
"""
import math
import os
import sys
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import stio  # noqa: E402

DATA = os.path.join(ROOT, "tests", "data")
F32 = torch.float32
BITS = list(range(2, 9))
PCTS = [0.999, 0.9999, 0.99999]
TORCH_QMAX = 1 << 24
MARGIN = 1e-5

# quantile cross-check: sizes and probabilities (test_quant.c has the same lists)
QT_N = [1, 2, 3, 10, 101, 1000, 4097, 65543]
QT_P = [0.999, 1.0 - 0.999, 0.9999, 1.0 - 0.9999, 0.99999, 1.0 - 0.99999, 0.5, 0.25, 0.0, 1.0,
        0.3333]

torch.set_num_threads(1)
warnings.simplefilter("ignore", RuntimeWarning)

# ---- generator shared with the C test -------------------------------------
GAMMA = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


def splitmix(seed, idx):
    """splitmix64 output number idx (0-based) of the stream started at seed."""
    idx = np.asarray(idx, dtype=np.uint64)
    z = np.uint64(seed) + (idx + np.uint64(1)) * GAMMA
    z = (z ^ (z >> np.uint64(30))) * M1
    z = (z ^ (z >> np.uint64(27))) * M2
    return z ^ (z >> np.uint64(31))


def gen_uniform(seed, idx):
    """float32 in [0, 1): top 24 bits times 2^-24."""
    return (splitmix(seed, idx) >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)


def gen_heavy(seed, n):
    """Triangular bulk on [-1, 1] with 0.3% Cauchy-like outliers."""
    i = np.arange(n, dtype=np.uint64)
    a = gen_uniform(seed, 3 * i)
    b = gen_uniform(seed, 3 * i + np.uint64(1))
    c = gen_uniform(seed, 3 * i + np.uint64(2))
    bulk = (a + b) - np.float32(1.0)
    tail = (a - np.float32(0.5)) / (b + np.float32(0.001))
    return np.where(c < np.float32(0.003), tail, bulk).astype(np.float32)


def gen_softmaxish(seed, n):
    """u^16 (many tiny values, some underflow to 0) with 1% exact zeros."""
    i = np.arange(n, dtype=np.uint64)
    a = gen_uniform(seed, 2 * i)
    c = gen_uniform(seed, 2 * i + np.uint64(1))
    a2 = a * a
    a4 = a2 * a2
    a8 = a4 * a4
    a16 = a8 * a8
    return np.where(c < np.float32(0.01), np.float32(0.0), a16).astype(np.float32)


def gen_weight(seed, rows, cols):
    """x[r][c] = heavy * (0.02 + 0.08 u_r); rows r % 97 == 3 are |.| + 0.001."""
    x = gen_heavy(seed, rows * cols).reshape(rows, cols)
    rs = np.float32(0.02) + np.float32(0.08) * gen_uniform(seed ^ 0xABCDEF, np.arange(rows))
    x = x * rs[:, None]
    pos = (np.arange(rows) % 97) == 3
    x[pos] = np.abs(x[pos]) + np.float32(0.001)
    return x.astype(np.float32)


def gen_act(seed, rows, cols):
    """x[r][c] = heavy * (0.5 + 4 u_c) + (v_c - 0.5) * 2 (channel outliers)."""
    x = gen_heavy(seed, rows * cols).reshape(rows, cols)
    cs = np.float32(0.5) + np.float32(4.0) * gen_uniform(seed ^ 0x123457, np.arange(cols))
    off = (gen_uniform(seed ^ 0x7654321, np.arange(cols)) - np.float32(0.5)) * np.float32(2.0)
    return (x * cs[None, :] + off[None, :]).astype(np.float32)


# ---- RepQ-ViT reference ------------------------------------------------------

def repq_quantile(x, p):
    """RepQ-ViT's quantile of a float32 tensor (flattened)."""
    flat = x.reshape(-1)
    if flat.numel() <= TORCH_QMAX:
        return torch.quantile(flat, p)
    return torch.tensor(np.percentile(flat.numpy(), p * 100), dtype=F32)


def uq_fake(x, d, z, bits):
    q = torch.clamp(torch.round(x / d) + z, 0, 2 ** bits - 1)
    return (q - z) * d


def check_margin(scores64, params, chosen, what):
    """Every other candidate (with different parameters) scores worse than
    the chosen one by a relative margin, in float64 (so the float32 and the
    float64 choice agree and cannot flip on summation order)."""
    best = scores64[chosen]
    for k, s in enumerate(scores64):
        if k == chosen or params[k] == params[chosen] or math.isnan(s):
            continue
        if not (s - best > MARGIN * abs(best)):
            return "%s: candidate %d score %.9g vs chosen %d %.9g" % (what, k, s, chosen, best)
    return None


def uq_search(x, bits):
    """Returns dict(scale, zero, chosen, lo[3], hi[3], mse[3]) for tensor x."""
    levels = 2 ** bits - 1
    best = torch.tensor(1e10, dtype=F32)
    out = dict(lo=[], hi=[], mse=[], chosen=-1, scale=None, zero=None)
    params = []
    for k, pct in enumerate(PCTS):
        hi = repq_quantile(x, pct)
        lo = repq_quantile(x, 1.0 - pct)
        d = (hi - lo) / levels
        z = torch.round(-lo / d)
        xq = uq_fake(x, d, z, bits)
        score = ((x - xq).abs() ** 2).mean()
        out["lo"].append(float(lo))
        out["hi"].append(float(hi))
        out["mse"].append(float(((x - xq).double() ** 2).mean()))
        params.append((float(d), float(z)))
        if score < best:
            best = score
            out["chosen"] = k
            out["scale"], out["zero"] = d, z
    if out["chosen"] < 0:
        raise ValueError("RepQ-ViT finds no candidate")
    out["err"] = check_margin(out["mse"], params, out["chosen"], "uniform b=%d" % bits)
    return out


def lq_fake(x, d, bits):
    levels = 2 ** bits
    xi = torch.round(-1 * torch.log2(x / d) * 2)
    zero = xi >= levels
    q = torch.clamp(xi, 0, levels - 1)
    odd = (q % 2) * (math.sqrt(2) - 1) + 1
    y = torch.pow(2.0, -torch.ceil(q / 2)) * odd * d
    y[zero] = 0
    return y


def lq_search(x, bits):
    best = torch.tensor(1e10, dtype=F32)
    out = dict(hi=[], mse=[], chosen=-1, scale=x.max())
    for k, pct in enumerate(PCTS):
        d = repq_quantile(x, pct)
        xq = lq_fake(x, d, bits)
        score = ((x - xq).abs() ** 2).mean()
        out["hi"].append(float(d))
        out["mse"].append(float(((x - xq).double() ** 2).mean()))
        if score < best:
            best = score
            out["chosen"] = k
            out["scale"] = d
    out["err"] = check_margin(out["mse"], [h for h in out["hi"]], out["chosen"],
                              "log b=%d" % bits) if out["chosen"] >= 0 else "no candidate"
    return out


def log_boundary_mask(x, d):
    """Elements whose -2 log2(float32(x / d)) is within 1e-4 of k + 1/2."""
    r = (x / d).double()
    v = -2.0 * torch.log2(r)
    frac = torch.abs(v - torch.floor(v) - 0.5)
    return torch.isfinite(v) & (frac < 1e-4)


# ---- PSAQ-ViT reference -----------------------------------------------------

EPS = torch.finfo(torch.float32).eps


def psaq_weight(w, bits):
    qmax = 2 ** (bits - 1) - 1
    qmin = -(2 ** (bits - 1))
    mx = torch.max(-w.min(dim=1).values, w.max(dim=1).values)
    s = (mx / (float(qmax - qmin) / 2)).clamp(min=EPS)
    zp = torch.zeros_like(s, dtype=torch.int64)
    q = (w / s[:, None] + zp[:, None]).round().clamp(qmin, qmax)
    return s, (q - zp[:, None]) * s[:, None]


def psaq_act(x, bits):
    qmax = 2 ** bits - 1
    lo, hi = x.min(), x.max()
    s = ((hi - lo) / float(qmax)).clamp(min=EPS)
    z = (0 - torch.round(lo / s)).clamp(0, qmax)
    q = (x / s + z).round().clamp(0, qmax)
    return lo, hi, s, z, (q - z) * s


# ---- cases -------------------------------------------------------------------

def stack(vals):
    return torch.tensor(vals, dtype=F32)


def uniform_case(store, name, x, gen=None):
    """Per-tensor case; perturbs x (via gen) until no near-tie."""
    for attempt in range(50):
        res = [uq_search(x, b) for b in BITS]
        errs = [r["err"] for r in res if r["err"]]
        if not errs:
            break
        print("  %s: near tie (%s), perturbing" % (name, errs[0]))
        x = gen(attempt)
    else:
        raise RuntimeError(name)
    store[name + ".x"] = x
    store[name + ".scale"] = stack([float(r["scale"]) for r in res])
    store[name + ".zero"] = stack([float(r["zero"]) for r in res])
    store[name + ".chosen"] = stack([r["chosen"] for r in res])
    store[name + ".lo"] = stack([r["lo"] for r in res])
    store[name + ".hi"] = stack([r["hi"] for r in res])
    store[name + ".mse"] = stack([r["mse"] for r in res])
    store[name + ".y"] = torch.stack([uq_fake(x, r["scale"], r["zero"], b) for r, b in zip(res, BITS)])
    return res


def channel_case(store, name, x, by_cols, gen):
    for attempt in range(50):
        chans = x.t() if by_cols else x
        res = [[uq_search(chans[c].contiguous(), b) for c in range(chans.shape[0])] for b in BITS]
        errs = [r["err"] for rb in res for r in rb if r["err"]]
        if not errs:
            break
        print("  %s: near tie (%s), perturbing" % (name, errs[0]))
        x = gen(attempt)
    else:
        raise RuntimeError(name)
    store[name + ".x"] = x
    store[name + ".scale"] = stack([[float(r["scale"]) for r in rb] for rb in res])
    store[name + ".zero"] = stack([[float(r["zero"]) for r in rb] for rb in res])
    store[name + ".chosen"] = stack([[r["chosen"] for r in rb] for rb in res])
    store[name + ".lo"] = stack([[r["lo"] for r in rb] for rb in res])
    store[name + ".hi"] = stack([[r["hi"] for r in rb] for rb in res])
    store[name + ".mse"] = stack([[r["mse"] for r in rb] for rb in res])
    ys = []
    for rb, b in zip(res, BITS):
        d = torch.stack([r["scale"] for r in rb])
        z = torch.stack([r["zero"] for r in rb])
        if by_cols:
            ys.append(uq_fake(x, d[None, :], z[None, :], b))
        else:
            ys.append(uq_fake(x, d[:, None], z[:, None], b))
    store[name + ".y"] = torch.stack(ys)
    return res


def log_case(store, name, x):
    for it in range(100):
        res = [lq_search(x, b) for b in BITS]
        bad = torch.zeros_like(x, dtype=torch.bool)
        for r in res:
            for d in r["hi"]:
                bad |= log_boundary_mask(x, torch.tensor(d, dtype=F32))
        errs = [r["err"] for r in res if r["err"]]
        if not bad.any() and not errs:
            break
        print("  %s: %d boundary values, %d near ties; perturbing" % (name, int(bad.sum()), len(errs)))
        x = torch.where(bad, x * 1.0007, x)
        if errs:
            x = x * (1 + 1e-3 * torch.rand(x.shape))
    else:
        raise RuntimeError(name)
    store[name + ".x"] = x
    store[name + ".scale"] = stack([float(r["scale"]) for r in res])
    store[name + ".chosen"] = stack([r["chosen"] for r in res])
    store[name + ".hi"] = stack([r["hi"] for r in res])
    store[name + ".mse"] = stack([r["mse"] for r in res])
    store[name + ".y"] = torch.stack([lq_fake(x, r["scale"], b) for r, b in zip(res, BITS)])


def make_uniform():
    st = {}
    t = torch.distributions.StudentT(torch.tensor(2.0))

    def t0(a=0):
        return (t.sample((400,)) * 0.3).to(F32)

    def t1(a=0):
        x = torch.randn(300, dtype=torch.float64) * 2
        x = x * torch.distributions.Normal(0.0, 1.0).cdf(x)  # GELU
        x[torch.randint(0, 300, (3,))] *= 25
        return x.to(F32)

    def t2(a=0):
        return (torch.exp(torch.randn(200)) + 0.5).to(F32)  # min > 0: z < 0

    def t3(a=0):
        return (-torch.exp(torch.randn(200)) - 0.25).to(F32)  # max < 0: z > 2^b - 1

    def t4(a=0):
        return (torch.randn(7) * 3).to(F32)

    def t5(a=0):
        x = torch.round(torch.randn(250) * 3) / 4  # duplicates
        x[torch.randint(0, 250, (2,))] = torch.tensor([9.0, -7.5])
        return (x + 0.01 * torch.rand(250)).to(F32)

    for name, f in [("t0", t0), ("t1", t1), ("t2", t2), ("t3", t3), ("t4", t4), ("t5", t5)]:
        uniform_case(st, name, f(), f)

    def rows(a=0):
        x = t.sample((6, 120)) * (0.05 + torch.rand(6, 1))
        x[2] = torch.abs(x[2]) + 0.01  # a positive row
        return x.to(F32)

    def cols(a=0):
        x = torch.randn(100, 5) * torch.tensor([0.5, 1.0, 2.0, 8.0, 0.1]) + torch.tensor([0, 1, -2, 0, 3.0])
        x[torch.randint(0, 100, (4,)), torch.randint(0, 5, (4,))] *= 20
        return x.to(F32)

    channel_case(st, "rows", rows(), False, rows)
    channel_case(st, "cols", cols(), True, cols)
    return st


def make_log():
    st = {}
    x0 = torch.softmax(torch.randn(3, 12, 12) * 2.5, dim=-1).to(F32).reshape(-1)
    log_case(st, "s0", x0)
    # sharper rows: exact float32 zeros from underflow, values below the 8-bit grid
    x1 = torch.softmax(torch.randn(2, 12, 12) * 30, dim=-1).to(F32).reshape(-1)
    assert (x1 == 0).any()
    log_case(st, "s1", x1)
    q = torch.arange(256, dtype=F32)
    st["levels"] = torch.pow(2.0, -torch.ceil(q / 2)) * ((q % 2) * (math.sqrt(2) - 1) + 1)
    return st


def make_psaq():
    st = {}
    w = (torch.randn(8, 48) * (0.02 + torch.rand(8, 1))).to(F32)
    w[3] = 0.0  # all-zero row: scale = eps
    w[5] = torch.abs(w[5])  # all-positive row
    w[6] = -torch.abs(w[6])  # all-negative row
    st["w.x"] = w
    ss, ys = [], []
    for b in BITS:
        s, y = psaq_weight(w, b)
        ss.append(s)
        ys.append(y)
    st["w.scale"] = torch.stack(ss)
    st["w.y"] = torch.stack(ys)
    for name, x in [("a", (torch.randn(250) * 1.5 + 0.7).to(F32)),
                    ("a2", torch.full((16,), 0.375, dtype=F32))]:
        st[name + ".x"] = x
        out = [psaq_act(x, b) for b in BITS]
        st[name + ".min"] = out[0][0].reshape(1)
        st[name + ".max"] = out[0][1].reshape(1)
        st[name + ".scale"] = torch.stack([o[2] for o in out])
        st[name + ".zero"] = torch.stack([o[3] for o in out])
        st[name + ".y"] = torch.stack([o[4] for o in out])
    return st


def make_gen():
    st = {}
    st["gen.uniform"] = torch.from_numpy(gen_uniform(5, np.arange(16)))
    st["gen.heavy"] = torch.from_numpy(gen_heavy(5, 64))
    st["gen.softmaxish"] = torch.from_numpy(gen_softmaxish(5, 16))
    st["gen.weight"] = torch.from_numpy(gen_weight(5, 4, 100).reshape(-1))
    st["gen.act"] = torch.from_numpy(gen_act(5, 30, 7).reshape(-1))

    # quantiles, both methods
    qt, qn = [], []
    for i, n in enumerate(QT_N):
        x = gen_heavy(15 + i, n)
        xt = torch.from_numpy(x)
        qt.append([float(torch.quantile(xt, p)) for p in QT_P])
        qn.append([float(np.float32(np.percentile(x, p * 100))) for p in QT_P])
    st["qt.torch"] = stack(qt)
    st["qt.numpy"] = stack(qn)

    # per-row weight 768 x 3072
    w = torch.from_numpy(gen_weight(11, 768, 3072))
    sc, zp = [], []
    for b in BITS:
        res = [uq_search(w[r], b) for r in range(w.shape[0])]
        errs = [r["err"] for r in res if r["err"]]
        assert not errs, errs[:3]
        sc.append([float(r["scale"]) for r in res])
        zp.append([float(r["zero"]) for r in res])
        print("  gw b=%d chosen %s" % (b, np.bincount([r["chosen"] for r in res], minlength=3)))
    st["gw.scale"], st["gw.zero"] = stack(sc), stack(zp)

    # per-column activation 6304 x 96
    a = torch.from_numpy(gen_act(12, 6304, 96))
    sc, zp = [], []
    for b in BITS:
        res = [uq_search(a[:, c].contiguous(), b) for c in range(a.shape[1])]
        errs = [r["err"] for r in res if r["err"]]
        assert not errs, errs[:3]
        sc.append([float(r["scale"]) for r in res])
        zp.append([float(r["zero"]) for r in res])
        print("  ga b=%d chosen %s" % (b, np.bincount([r["chosen"] for r in res], minlength=3)))
    st["ga.scale"], st["ga.zero"] = stack(sc), stack(zp)

    # per-tensor above 2^24 values: numpy.percentile path
    n = TORCH_QMAX + 1001
    x = torch.from_numpy(gen_heavy(13, n))
    try:
        torch.quantile(x, 0.5)
        raise AssertionError("torch.quantile accepted %d values" % n)
    except RuntimeError:
        pass
    res = [uq_search(x, b) for b in (4, 8)]
    assert not [r["err"] for r in res if r["err"]], [r["err"] for r in res]
    st["gt.scale"] = stack([float(r["scale"]) for r in res])
    st["gt.zero"] = stack([float(r["zero"]) for r in res])
    st["gt.chosen"] = stack([r["chosen"] for r in res])
    del x

    # log-sqrt2 on softmax-like values
    s = torch.from_numpy(gen_softmaxish(14, 1000003))
    res = [lq_search(s, b) for b in BITS]
    assert not [r["err"] for r in res if r["err"]], [r["err"] for r in res]
    st["gs.scale"] = stack([float(r["scale"]) for r in res])
    st["gs.chosen"] = stack([r["chosen"] for r in res])
    return st


def self_check():
    """The reference pieces against explicit computations."""
    # torch.round is half-to-even
    assert torch.equal(torch.round(torch.tensor([0.5, 1.5, 2.5, -0.5])), torch.tensor([0.0, 2.0, 2.0, -0.0]))
    # quantile: linear interpolation of the sorted values (float64 check, loose)
    x = torch.randn(1001)
    s = torch.sort(x.double()).values
    for p in PCTS:
        r = p * 1000
        lo = int(math.floor(r))
        v = s[lo] + (r - lo) * (s[min(lo + 1, 1000)] - s[lo])
        # (torch rounds p and the rank to float32: ~1e-5 relative in the weight)
        assert abs(float(torch.quantile(x, p)) - float(v)) < 1e-4
    # log-sqrt2 dequant form equals D * 2^(-q/2)
    q = torch.arange(256, dtype=torch.float64)
    lv = torch.pow(2.0, -torch.ceil(q.float() / 2)) * ((q.float() % 2) * (math.sqrt(2) - 1) + 1)
    assert torch.equal(lv, torch.pow(2.0, -q / 2).float())
    # generator: numpy uint64 arithmetic wraps like C
    z = splitmix(0, np.arange(1))
    assert int(z[0]) == 0xE220A8397B1DCDAF, hex(int(z[0]))


def main():
    torch.manual_seed(20250612)
    np.random.seed(20250612)
    self_check()
    files = {
        "quant_uniform": make_uniform,
        "quant_log": make_log,
        "quant_psaq": make_psaq,
        "quant_gen": make_gen,
    }
    total = 0
    for fname, fn in files.items():
        print(fname)
        st = fn()
        st = {k: v.to(F32).contiguous() for k, v in st.items()}
        path = os.path.join(DATA, fname + ".safetensors")
        nbytes = stio.save(path, st)
        back, _, _ = stio.loads(open(path, "rb").read())
        for k, v in st.items():
            assert torch.equal(back[k], v), k
        print("  %s: %d tensors, %d bytes" % (fname, len(st), nbytes))
        total += nbytes
    print("total %d bytes" % total)
    assert total < 200 * 1024


if __name__ == "__main__":
    main()
