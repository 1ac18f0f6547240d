/* test_quant.c - the quantizers (src/quant/quant.h) against the PyTorch
 * goldens of tests/reference/make_quant_fixtures.py, plus argument checks,
 * idempotence, the integer grid and the per-channel search timing.
 *
 * Everything chosen by a search (quantiles, candidate ranges, scale, zero
 * point, chosen candidate) and every fake-quant output is compared exactly
 * (==, so -0 equals +0): the C code performs the same float32 IEEE operations
 * as the reference in the same order, torch.quantile's lerp is an FMA in both,
 * and the fixtures are built away from score ties and log2 rounding
 * boundaries, so there is nothing for a tolerance to absorb. Only the search
 * scores are compared with a tolerance (the C code sums in double, the
 * golden's float64 value is stored rounded to float32). */
#include "quant.h"
#include "safetensors.h"
#include "testutil.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NB 7 /* bit widths 2..8 */

typedef struct {
    uint8_t *buf;
    sfq_st_file st;
} golden;

static void golden_open(golden *g, const char *name)
{
    size_t len;
    g->buf = tu_read_file(tu_data(name), &len);
    ck_assert_msg(g->buf != NULL, "cannot read fixture %s", name);
    ck_assert_int_eq(sfq_st_parse(g->buf, len, &g->st), SARDFQ_OK);
}

static float *golden_get(golden *g, const char *name, size_t *numel)
{
    const sfq_st_tensor *t = sfq_st_find(&g->st, name);
    ck_assert_msg(t != NULL, "golden tensor %s missing", name);
    float *x = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    ck_assert_int_eq(sfq_st_read_f32(&g->st, t, x), SARDFQ_OK);
    if (numel)
        *numel = (size_t)t->numel;
    return x;
}

static const sfq_st_tensor *golden_tensor(golden *g, const char *name)
{
    const sfq_st_tensor *t = sfq_st_find(&g->st, name);
    ck_assert_msg(t != NULL, "golden tensor %s missing", name);
    return t;
}

static void golden_close(golden *g)
{
    sfq_st_release(&g->st);
    free(g->buf);
}

static float *get2(golden *g, const char *c, const char *field, size_t *n)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", c, field);
    return golden_get(g, name, n);
}

/* exact comparison of float arrays; reports the first difference */
static void assert_same(const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i]))))
            ck_abort_msg("%s: element %zu: %.9g != %.9g (golden)", what, i, (double)a[i],
                         (double)b[i]);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the generator shared with make_quant_fixtures.py ------------------- */

static uint64_t splitmix(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static float gen_u(uint64_t seed, uint64_t i) { return (float)(splitmix(seed, i) >> 40) * 0x1p-24f; }

static float gen_heavy1(uint64_t seed, uint64_t i)
{
    float a = gen_u(seed, 3 * i), b = gen_u(seed, 3 * i + 1), c = gen_u(seed, 3 * i + 2);
    float bulk = (a + b) - 1.0f;
    float tail = (a - 0.5f) / (b + 0.001f);
    return c < 0.003f ? tail : bulk;
}

static void gen_heavy(uint64_t seed, size_t n, float *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = gen_heavy1(seed, i);
}

static void gen_softmaxish(uint64_t seed, size_t n, float *x)
{
    for (size_t i = 0; i < n; i++) {
        float a = gen_u(seed, 2 * i), c = gen_u(seed, 2 * i + 1);
        float a2 = a * a, a4 = a2 * a2, a8 = a4 * a4, a16 = a8 * a8;
        x[i] = c < 0.01f ? 0.0f : a16;
    }
}

static void gen_weight(uint64_t seed, size_t rows, size_t cols, float *x)
{
    for (size_t r = 0; r < rows; r++) {
        float rs = 0.02f + 0.08f * gen_u(seed ^ 0xABCDEF, r);
        for (size_t c = 0; c < cols; c++) {
            float v = gen_heavy1(seed, r * cols + c) * rs;
            if (r % 97 == 3)
                v = fabsf(v) + 0.001f;
            x[r * cols + c] = v;
        }
    }
}

static void gen_act(uint64_t seed, size_t rows, size_t cols, float *x)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            float cs = 0.5f + 4.0f * gen_u(seed ^ 0x123457, c);
            float off = (gen_u(seed ^ 0x7654321, c) - 0.5f) * 2.0f;
            x[r * cols + c] = gen_heavy1(seed, r * cols + c) * cs + off;
        }
}

START_TEST(generator_matches_python)
{
    golden g;
    golden_open(&g, "quant_gen.safetensors");
    size_t n;
    float buf[420];
    float *ref = golden_get(&g, "gen.uniform", &n);
    for (size_t i = 0; i < n; i++)
        buf[i] = gen_u(5, i);
    assert_same(buf, ref, n, "gen.uniform");
    free(ref);
    ref = golden_get(&g, "gen.heavy", &n);
    gen_heavy(5, n, buf);
    assert_same(buf, ref, n, "gen.heavy");
    free(ref);
    ref = golden_get(&g, "gen.softmaxish", &n);
    gen_softmaxish(5, n, buf);
    assert_same(buf, ref, n, "gen.softmaxish");
    free(ref);
    ref = golden_get(&g, "gen.weight", &n);
    ck_assert_uint_eq(n, 400);
    gen_weight(5, 4, 100, buf);
    assert_same(buf, ref, n, "gen.weight");
    free(ref);
    ref = golden_get(&g, "gen.act", &n);
    ck_assert_uint_eq(n, 210);
    gen_act(5, 30, 7, buf);
    assert_same(buf, ref, n, "gen.act");
    free(ref);
    golden_close(&g);
}
END_TEST

/* ---- quantiles ---------------------------------------------------------- */

static const size_t QT_N[] = {1, 2, 3, 10, 101, 1000, 4097, 65543};
#define QT_NN (sizeof QT_N / sizeof QT_N[0])
#define QT_NP 11

static void qt_p(double *p)
{
    const double v[QT_NP] = {0.999, 1.0 - 0.999, 0.9999, 1.0 - 0.9999, 0.99999, 1.0 - 0.99999,
                             0.5,   0.25,        0.0,    1.0,          0.3333};
    memcpy(p, v, sizeof v);
}

START_TEST(quantiles_match_torch_and_numpy)
{
    golden g;
    golden_open(&g, "quant_gen.safetensors");
    size_t n1, n2;
    float *qt = golden_get(&g, "qt.torch", &n1);
    float *qn = golden_get(&g, "qt.numpy", &n2);
    ck_assert_uint_eq(n1, QT_NN * QT_NP);
    ck_assert_uint_eq(n2, QT_NN * QT_NP);
    double p[QT_NP];
    qt_p(p);
    for (size_t i = 0; i < QT_NN; i++) {
        size_t n = QT_N[i];
        float *x = malloc(n * sizeof(float));
        gen_heavy(15 + i, n, x);
        float out[QT_NP];
        char what[64];
        ck_assert_int_eq(sfq_quantiles(x, n, p, QT_NP, SFQ_QUANTILE_TORCH, out), SARDFQ_OK);
        snprintf(what, sizeof what, "torch.quantile n=%zu", n);
        assert_same(out, qt + i * QT_NP, QT_NP, what);
        ck_assert_int_eq(sfq_quantiles(x, n, p, QT_NP, SFQ_QUANTILE_AUTO, out), SARDFQ_OK);
        assert_same(out, qt + i * QT_NP, QT_NP, what);
        ck_assert_int_eq(sfq_quantiles(x, n, p, QT_NP, SFQ_QUANTILE_NUMPY, out), SARDFQ_OK);
        snprintf(what, sizeof what, "numpy.percentile n=%zu", n);
        assert_same(out, qn + i * QT_NP, QT_NP, what);
        free(x);
    }
    free(qt);
    free(qn);
    golden_close(&g);
}
END_TEST

/* Selection must agree with a full sort on adversarial layouts. */
static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

START_TEST(quantiles_selection_layouts)
{
    const size_t n = 5003;
    float *x = malloc(n * sizeof(float)), *s = malloc(n * sizeof(float));
    double p[QT_NP];
    qt_p(p);
    for (int layout = 0; layout < 6; layout++) {
        for (size_t i = 0; i < n; i++) {
            switch (layout) {
            case 0: x[i] = (float)i; break;                               /* sorted */
            case 1: x[i] = (float)(n - i); break;                         /* reversed */
            case 2: x[i] = (float)(i % 7); break;                         /* few values */
            case 3: x[i] = 1.5f; break;                                   /* constant */
            case 4: x[i] = (i % 2) ? (float)i : -(float)i; break;         /* zig-zag */
            default: x[i] = i == n / 2 ? 1e6f : gen_heavy1(99, i); break; /* organ pipe-ish */
            }
        }
        memcpy(s, x, n * sizeof(float));
        qsort(s, n, sizeof(float), cmp_float);
        float out[QT_NP];
        ck_assert_int_eq(sfq_quantiles(x, n, p, QT_NP, SFQ_QUANTILE_TORCH, out), SARDFQ_OK);
        for (int k = 0; k < QT_NP; k++) {
            float r = (float)p[k] * (float)(n - 1);
            size_t lo = (size_t)r, hi = (size_t)ceilf(r);
            float w = r - (float)lo, d = s[hi] - s[lo];
            float ref = fabsf(w) < 0.5f ? fmaf(w, d, s[lo]) : fmaf(w - 1.0f, d, s[hi]);
            ck_assert_msg(out[k] == ref, "layout %d p=%g: %.9g != %.9g", layout, p[k],
                          (double)out[k], (double)ref);
        }
    }
    free(x);
    free(s);
}
END_TEST

/* ---- uniform search goldens --------------------------------------------- */

static void check_info(const sfq_search_info *inf, const float *lo, const float *hi,
                       const float *mse, float chosen, const char *what)
{
    ck_assert_msg(inf->chosen == (int)chosen, "%s: chosen %d, golden %d", what, inf->chosen,
                  (int)chosen);
    for (int k = 0; k < SFQ_NCAND; k++) {
        if (lo)
            ck_assert_msg(inf->lo[k] == lo[k], "%s: cand %d lo %.9g != %.9g", what, k,
                          (double)inf->lo[k], (double)lo[k]);
        ck_assert_msg(inf->hi[k] == hi[k], "%s: cand %d hi %.9g != %.9g", what, k,
                      (double)inf->hi[k], (double)hi[k]);
        double rel = fabs(inf->mse[k] - (double)mse[k]) / fmax(fabs((double)mse[k]), 1e-30);
        ck_assert_msg(rel < 1e-6, "%s: cand %d mse %.9g vs %.9g", what, k, inf->mse[k],
                      (double)mse[k]);
    }
}

START_TEST(uniform_per_tensor_golden)
{
    golden g;
    golden_open(&g, "quant_uniform.safetensors");
    const char *cases[] = {"t0", "t1", "t2", "t3", "t4", "t5"};
    int saw_neg_zero = 0, saw_big_zero = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n, m;
        float *x = get2(&g, cases[c], "x", &n);
        float *sc = get2(&g, cases[c], "scale", &m);
        ck_assert_uint_eq(m, NB);
        float *zp = get2(&g, cases[c], "zero", NULL);
        float *ch = get2(&g, cases[c], "chosen", NULL);
        float *lo = get2(&g, cases[c], "lo", NULL);
        float *hi = get2(&g, cases[c], "hi", NULL);
        float *mse = get2(&g, cases[c], "mse", NULL);
        float *y = get2(&g, cases[c], "y", &m);
        ck_assert_uint_eq(m, NB * n);
        float *out = malloc(n * sizeof(float));
        for (int b = 2; b <= 8; b++) {
            char what[64];
            snprintf(what, sizeof what, "%s b=%d", cases[c], b);
            sfq_uq q;
            sfq_search_info inf;
            ck_assert_int_eq(sfq_uq_search(x, n, b, &q, &inf), SARDFQ_OK);
            check_info(&inf, lo + (b - 2) * 3, hi + (b - 2) * 3, mse + (b - 2) * 3, ch[b - 2], what);
            ck_assert_msg(q.scale == sc[b - 2] && q.zero == zp[b - 2],
                          "%s: (%.9g, %g) != golden (%.9g, %g)", what, (double)q.scale,
                          (double)q.zero, (double)sc[b - 2], (double)zp[b - 2]);
            ck_assert_int_eq(q.bits, b);
            ck_assert_int_eq(q.form, SFQ_UQ_REPQ);
            saw_neg_zero |= q.zero < 0;
            saw_big_zero |= q.zero > (float)((1 << b) - 1);
            ck_assert_int_eq(sfq_uq_fake(&q, x, out, n), SARDFQ_OK);
            assert_same(out, y + (size_t)(b - 2) * n, n, what);
            /* search without info gives the same quantizer */
            sfq_uq q2;
            ck_assert_int_eq(sfq_uq_search(x, n, b, &q2, NULL), SARDFQ_OK);
            ck_assert(q2.scale == q.scale && q2.zero == q.zero);
        }
        free(out);
        free(x);
        free(sc);
        free(zp);
        free(ch);
        free(lo);
        free(hi);
        free(mse);
        free(y);
    }
    /* the one-sign cases exercise RepQ-ViT's unclamped zero point */
    ck_assert(saw_neg_zero);
    ck_assert(saw_big_zero);
    golden_close(&g);
}
END_TEST

static void channel_golden(const char *cname, int by_cols, int nthreads)
{
    golden g;
    golden_open(&g, "quant_uniform.safetensors");
    size_t n, m;
    float *x = get2(&g, cname, "x", &n);
    char name[64];
    snprintf(name, sizeof name, "%s.x", cname);
    const sfq_st_tensor *t = golden_tensor(&g, name);
    ck_assert_int_eq(t->ndim, 2);
    size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
    size_t nch = by_cols ? cols : rows;
    float *sc = get2(&g, cname, "scale", &m);
    ck_assert_uint_eq(m, NB * nch);
    float *zp = get2(&g, cname, "zero", NULL);
    float *ch = get2(&g, cname, "chosen", NULL);
    float *lo = get2(&g, cname, "lo", NULL);
    float *hi = get2(&g, cname, "hi", NULL);
    float *mse = get2(&g, cname, "mse", NULL);
    float *y = get2(&g, cname, "y", &m);
    ck_assert_uint_eq(m, NB * n);
    float *out = malloc(n * sizeof(float));
    sfq_uq *q = calloc(nch, sizeof *q);
    sfq_search_info *inf = calloc(nch, sizeof *inf);
    for (int b = 2; b <= 8; b++) {
        sardfq_status s = by_cols ? sfq_uq_search_cols(x, rows, cols, b, nthreads, q, inf)
                                  : sfq_uq_search_rows(x, rows, cols, b, nthreads, q, inf);
        ck_assert_int_eq(s, SARDFQ_OK);
        for (size_t c = 0; c < nch; c++) {
            char what[64];
            snprintf(what, sizeof what, "%s b=%d ch=%zu", cname, b, c);
            size_t o = (size_t)(b - 2) * nch + c;
            check_info(&inf[c], lo + o * 3, hi + o * 3, mse + o * 3, ch[o], what);
            ck_assert_msg(q[c].scale == sc[o] && q[c].zero == zp[o], "%s: (%.9g, %g) != (%.9g, %g)",
                          what, (double)q[c].scale, (double)q[c].zero, (double)sc[o],
                          (double)zp[o]);
        }
        s = by_cols ? sfq_uq_fake_cols(q, x, out, rows, cols) : sfq_uq_fake_rows(q, x, out, rows, cols);
        ck_assert_int_eq(s, SARDFQ_OK);
        snprintf(name, sizeof name, "%s b=%d y", cname, b);
        assert_same(out, y + (size_t)(b - 2) * n, n, name);
    }
    free(q);
    free(inf);
    free(out);
    free(x);
    free(sc);
    free(zp);
    free(ch);
    free(lo);
    free(hi);
    free(mse);
    free(y);
    golden_close(&g);
}

START_TEST(uniform_per_channel_golden)
{
    channel_golden("rows", 0, 1);
    channel_golden("rows", 0, 2);
    channel_golden("cols", 1, 1);
    channel_golden("cols", 1, 3);
}
END_TEST

/* ---- log-sqrt2 goldens -------------------------------------------------- */

START_TEST(log_golden)
{
    golden g;
    golden_open(&g, "quant_log.safetensors");
    size_t n;
    float *lv = golden_get(&g, "levels", &n);
    ck_assert_uint_eq(n, 256);
    for (int q = 0; q < 256; q++) {
        ck_assert_msg(sfq_lq_level_value(q) == lv[q], "level %d", q);
        /* the odd/even sqrt2 form is float(2^(-q/2)) */
        ck_assert_msg(sfq_lq_level_value(q) == (float)exp2(-0.5 * q), "level %d vs exp2", q);
    }
    free(lv);
    const char *cases[] = {"s0", "s1"};
    for (size_t c = 0; c < 2; c++) {
        size_t m;
        float *x = get2(&g, cases[c], "x", &n);
        float *sc = get2(&g, cases[c], "scale", &m);
        ck_assert_uint_eq(m, NB);
        float *ch = get2(&g, cases[c], "chosen", NULL);
        float *hi = get2(&g, cases[c], "hi", NULL);
        float *mse = get2(&g, cases[c], "mse", NULL);
        float *y = get2(&g, cases[c], "y", &m);
        ck_assert_uint_eq(m, NB * n);
        float *out = malloc(n * sizeof(float));
        uint16_t *codes = malloc(n * sizeof(uint16_t));
        for (int b = 2; b <= 8; b++) {
            char what[64];
            snprintf(what, sizeof what, "%s b=%d", cases[c], b);
            sfq_lq q;
            sfq_search_info inf;
            ck_assert_int_eq(sfq_lq_search(x, n, b, &q, &inf), SARDFQ_OK);
            check_info(&inf, NULL, hi + (b - 2) * 3, mse + (b - 2) * 3, ch[b - 2], what);
            ck_assert_msg(q.scale == sc[b - 2], "%s: %.9g != %.9g", what, (double)q.scale,
                          (double)sc[b - 2]);
            ck_assert_int_eq(sfq_lq_fake(&q, x, out, n), SARDFQ_OK);
            assert_same(out, y + (size_t)(b - 2) * n, n, what);
            /* codes round trip to the same values; zeros are code 2^b */
            ck_assert_int_eq(sfq_lq_encode(&q, x, codes, n), SARDFQ_OK);
            ck_assert_int_eq(sfq_lq_decode(&q, codes, out, n), SARDFQ_OK);
            assert_same(out, y + (size_t)(b - 2) * n, n, what);
            for (size_t i = 0; i < n; i++)
                if (x[i] == 0.0f)
                    ck_assert_int_eq(codes[i], 1 << b);
        }
        free(codes);
        free(out);
        free(x);
        free(sc);
        free(ch);
        free(hi);
        free(mse);
        free(y);
    }
    golden_close(&g);
}
END_TEST

/* ---- PSAQ goldens ------------------------------------------------------- */

START_TEST(psaq_golden)
{
    golden g;
    golden_open(&g, "quant_psaq.safetensors");
    size_t n, m;
    float *w = golden_get(&g, "w.x", &n);
    const sfq_st_tensor *t = golden_tensor(&g, "w.x");
    size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
    float *ws = golden_get(&g, "w.scale", &m);
    ck_assert_uint_eq(m, NB * rows);
    float *wy = golden_get(&g, "w.y", &m);
    ck_assert_uint_eq(m, NB * n);
    float *out = malloc(n * sizeof(float));
    sfq_uq *q = calloc(rows, sizeof *q);
    uint8_t *codes = malloc(n);
    for (int b = 2; b <= 8; b++) {
        char what[64];
        snprintf(what, sizeof what, "psaq weight b=%d", b);
        ck_assert_int_eq(sfq_psaq_weight_rows(w, rows, cols, b, q), SARDFQ_OK);
        for (size_t r = 0; r < rows; r++)
            ck_assert_msg(q[r].scale == ws[(b - 2) * rows + r], "%s row %zu: %.9g != %.9g", what, r,
                          (double)q[r].scale, (double)ws[(b - 2) * rows + r]);
        ck_assert(q[3].scale == FLT_EPSILON); /* the zero row */
        ck_assert_int_eq(sfq_uq_fake_rows(q, w, out, rows, cols), SARDFQ_OK);
        assert_same(out, wy + (size_t)(b - 2) * n, n, what);
        /* offset-binary codes are PSAQ's signed levels + 2^(b-1) */
        for (size_t r = 0; r < rows; r++) {
            ck_assert_int_eq(sfq_uq_encode(&q[r], w + r * cols, codes + r * cols, cols), SARDFQ_OK);
            for (size_t c = 0; c < cols; c++) {
                float lvl = wy[(size_t)(b - 2) * n + r * cols + c] / q[r].scale;
                /* (q * s) / s is q up to an ulp */
                ck_assert(rintf(lvl) == (float)((int)codes[r * cols + c] - (1 << (b - 1))));
            }
        }
    }
    free(codes);
    free(q);
    free(out);
    free(w);
    free(ws);
    free(wy);

    const char *acases[] = {"a", "a2"};
    for (size_t c = 0; c < 2; c++) {
        float *x = get2(&g, acases[c], "x", &n);
        float *mn = get2(&g, acases[c], "min", NULL);
        float *mx = get2(&g, acases[c], "max", NULL);
        float *sc = get2(&g, acases[c], "scale", &m);
        ck_assert_uint_eq(m, NB);
        float *zp = get2(&g, acases[c], "zero", NULL);
        float *y = get2(&g, acases[c], "y", &m);
        ck_assert_uint_eq(m, NB * n);
        float lo, hi;
        ck_assert_int_eq(sfq_minmax(x, n, &lo, &hi), SARDFQ_OK);
        ck_assert(lo == mn[0] && hi == mx[0]);
        float *o = malloc(n * sizeof(float));
        for (int b = 2; b <= 8; b++) {
            char what[64];
            snprintf(what, sizeof what, "psaq act %s b=%d", acases[c], b);
            sfq_uq a;
            ck_assert_int_eq(sfq_psaq_act(lo, hi, b, &a), SARDFQ_OK);
            ck_assert_msg(a.scale == sc[b - 2] && a.zero == zp[b - 2], "%s: (%.9g, %g) != (%.9g, %g)",
                          what, (double)a.scale, (double)a.zero, (double)sc[b - 2],
                          (double)zp[b - 2]);
            ck_assert_int_eq(a.form, SFQ_UQ_PSAQ);
            ck_assert_int_eq(sfq_uq_fake(&a, x, o, n), SARDFQ_OK);
            assert_same(o, y + (size_t)(b - 2) * n, n, what);
        }
        free(o);
        free(x);
        free(mn);
        free(mx);
        free(sc);
        free(zp);
        free(y);
    }
    golden_close(&g);
}
END_TEST

/* ---- generated large cases ---------------------------------------------- */

START_TEST(gen_weight_rows_768x3072)
{
    golden g;
    golden_open(&g, "quant_gen.safetensors");
    const size_t R = 768, K = 3072;
    size_t m;
    float *sc = golden_get(&g, "gw.scale", &m);
    ck_assert_uint_eq(m, NB * R);
    float *zp = golden_get(&g, "gw.zero", NULL);
    float *w = malloc(R * K * sizeof(float));
    gen_weight(11, R, K, w);
    sfq_uq *q = calloc(R, sizeof *q);
    double worst = 0.0, total = 0.0;
    for (int b = 2; b <= 8; b++) {
        double t0 = now_s();
        ck_assert_int_eq(sfq_uq_search_rows(w, R, K, b, 1, q, NULL), SARDFQ_OK);
        double dt = now_s() - t0;
        total += dt;
        if (dt > worst)
            worst = dt;
        for (size_t r = 0; r < R; r++) {
            size_t o = (size_t)(b - 2) * R + r;
            ck_assert_msg(q[r].scale == sc[o] && q[r].zero == zp[o],
                          "gw b=%d row %zu: (%.9g, %g) != (%.9g, %g)", b, r, (double)q[r].scale,
                          (double)q[r].zero, (double)sc[o], (double)zp[o]);
        }
    }
    printf("quant: per-row search 768x3072, 1 thread: worst %.3f s, mean %.3f s over b=2..8\n", worst,
           total / NB);
    ck_assert_msg(worst < 1.0, "per-channel search took %.3f s", worst);
    /* threads give the same result */
    sfq_uq *q2 = calloc(R, sizeof *q2);
    ck_assert_int_eq(sfq_uq_search_rows(w, R, K, 8, 2, q2, NULL), SARDFQ_OK);
    for (size_t r = 0; r < R; r++)
        ck_assert(q2[r].scale == q[r].scale && q2[r].zero == q[r].zero);
    free(q2);
    free(q);
    free(w);
    free(sc);
    free(zp);
    golden_close(&g);
}
END_TEST

START_TEST(gen_act_cols_6304x96)
{
    golden g;
    golden_open(&g, "quant_gen.safetensors");
    const size_t R = 6304, C = 96;
    size_t m;
    float *sc = golden_get(&g, "ga.scale", &m);
    ck_assert_uint_eq(m, NB * C);
    float *zp = golden_get(&g, "ga.zero", NULL);
    float *x = malloc(R * C * sizeof(float));
    gen_act(12, R, C, x);
    sfq_uq q[96];
    for (int b = 2; b <= 8; b++) {
        ck_assert_int_eq(sfq_uq_search_cols(x, R, C, b, 2, q, NULL), SARDFQ_OK);
        for (size_t c = 0; c < C; c++) {
            size_t o = (size_t)(b - 2) * C + c;
            ck_assert_msg(q[c].scale == sc[o] && q[c].zero == zp[o],
                          "ga b=%d col %zu: (%.9g, %g) != (%.9g, %g)", b, c, (double)q[c].scale,
                          (double)q[c].zero, (double)sc[o], (double)zp[o]);
        }
    }
    free(x);
    free(sc);
    free(zp);
    golden_close(&g);
}
END_TEST

START_TEST(gen_tensor_numpy_path)
{
    golden g;
    golden_open(&g, "quant_gen.safetensors");
    const size_t n = SFQ_TORCH_QUANTILE_MAX + 1001;
    float *sc = golden_get(&g, "gt.scale", NULL);
    float *zp = golden_get(&g, "gt.zero", NULL);
    float *ch = golden_get(&g, "gt.chosen", NULL);
    float *x = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    gen_heavy(13, n, x);
    const int bits[2] = {4, 8};
    for (int i = 0; i < 2; i++) {
        sfq_uq q;
        sfq_search_info inf;
        double t0 = now_s();
        ck_assert_int_eq(sfq_uq_search(x, n, bits[i], &q, &inf), SARDFQ_OK);
        printf("quant: per-tensor search of %zu values (numpy quantile path), b=%d: %.3f s\n", n,
               bits[i], now_s() - t0);
        ck_assert_int_eq(inf.chosen, (int)ch[i]);
        ck_assert_msg(q.scale == sc[i] && q.zero == zp[i], "gt b=%d: (%.9g, %g) != (%.9g, %g)",
                      bits[i], (double)q.scale, (double)q.zero, (double)sc[i], (double)zp[i]);
    }
    free(x);
    free(sc);
    free(zp);
    free(ch);
    golden_close(&g);
}
END_TEST

START_TEST(gen_log_search)
{
    golden g;
    golden_open(&g, "quant_gen.safetensors");
    const size_t n = 1000003;
    size_t m;
    float *sc = golden_get(&g, "gs.scale", &m);
    ck_assert_uint_eq(m, NB);
    float *ch = golden_get(&g, "gs.chosen", NULL);
    float *x = malloc(n * sizeof(float));
    gen_softmaxish(14, n, x);
    for (int b = 2; b <= 8; b++) {
        sfq_lq q;
        sfq_search_info inf;
        ck_assert_int_eq(sfq_lq_search(x, n, b, &q, &inf), SARDFQ_OK);
        ck_assert_int_eq(inf.chosen, (int)ch[b - 2]);
        ck_assert_msg(q.scale == sc[b - 2], "gs b=%d: %.9g != %.9g", b, (double)q.scale,
                      (double)sc[b - 2]);
    }
    free(x);
    free(sc);
    free(ch);
    golden_close(&g);
}
END_TEST

/* ---- properties ---------------------------------------------------------- */

START_TEST(idempotence)
{
    const size_t n = 4000;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)),
          *y2 = malloc(n * sizeof(float)), *s = malloc(n * sizeof(float));
    gen_heavy(21, n, x);
    gen_softmaxish(22, n, s);
    for (int b = 2; b <= 8; b++) {
        sfq_uq q;
        ck_assert_int_eq(sfq_uq_search(x, n, b, &q, NULL), SARDFQ_OK);
        ck_assert_int_eq(sfq_uq_fake(&q, x, y, n), SARDFQ_OK);
        ck_assert_int_eq(sfq_uq_fake(&q, y, y2, n), SARDFQ_OK);
        assert_same(y2, y, n, "uniform idempotence");
        /* in place */
        memcpy(y2, x, n * sizeof(float));
        ck_assert_int_eq(sfq_uq_fake(&q, y2, y2, n), SARDFQ_OK);
        assert_same(y2, y, n, "uniform in place");

        sfq_uq a;
        float lo, hi;
        ck_assert_int_eq(sfq_minmax(x, n, &lo, &hi), SARDFQ_OK);
        ck_assert_int_eq(sfq_psaq_act(lo, hi, b, &a), SARDFQ_OK);
        ck_assert_int_eq(sfq_uq_fake(&a, x, y, n), SARDFQ_OK);
        ck_assert_int_eq(sfq_uq_fake(&a, y, y2, n), SARDFQ_OK);
        assert_same(y2, y, n, "psaq idempotence");

        sfq_lq l;
        ck_assert_int_eq(sfq_lq_search(s, n, b, &l, NULL), SARDFQ_OK);
        ck_assert_int_eq(sfq_lq_fake(&l, s, y, n), SARDFQ_OK);
        ck_assert_int_eq(sfq_lq_fake(&l, y, y2, n), SARDFQ_OK);
        assert_same(y2, y, n, "log idempotence");
    }
    free(x);
    free(y);
    free(y2);
    free(s);
}
END_TEST

/* Every code of every grid decodes inside the representable range and
 * encodes back to itself; a dense sweep of x lands on valid codes, is
 * monotone, and is within D/2 of x inside the range. */
START_TEST(integer_grid_exhaustive)
{
    const float scales[] = {1.0f, 0.0123f, 3.7e-5f, 250.5f};
    for (int b = 2; b <= 8; b++) {
        const int top = (1 << b) - 1;
        const float zeros[] = {0.0f, 1.0f, (float)(top / 2), (float)top, -3.0f, (float)(top + 5)};
        for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
            for (size_t zi = 0; zi < sizeof zeros / sizeof zeros[0]; zi++) {
                for (int form = 0; form < 2; form++) {
                    sfq_uq q = {scales[si], zeros[zi], b, form};
                    ck_assert_int_eq(sfq_uq_check(&q), SARDFQ_OK);
                    const float vmin = (0.0f - q.zero) * q.scale, vmax = ((float)top - q.zero) * q.scale;
                    uint8_t codes[256], back[256];
                    float vals[256];
                    for (int c = 0; c <= top; c++)
                        codes[c] = (uint8_t)c;
                    ck_assert_int_eq(sfq_uq_decode(&q, codes, vals, (size_t)top + 1), SARDFQ_OK);
                    ck_assert_int_eq(sfq_uq_encode(&q, vals, back, (size_t)top + 1), SARDFQ_OK);
                    for (int c = 0; c <= top; c++) {
                        ck_assert_msg(back[c] == c, "b=%d D=%g z=%g form %d: code %d -> %d", b,
                                      (double)q.scale, (double)q.zero, form, c, back[c]);
                        ck_assert(vals[c] >= vmin && vals[c] <= vmax);
                        ck_assert(sfq_uq_apply(&q, vals[c]) == vals[c]);
                    }
                    /* sweep */
                    const int steps = 64 * (top + 8);
                    float prev = -INFINITY;
                    for (int i = 0; i <= steps; i++) {
                        float x = vmin - 4.0f * q.scale + (float)i * (q.scale / 64.0f);
                        float lvl = sfq_uq_level(&q, x);
                        ck_assert(lvl >= 0.0f && lvl <= (float)top && lvl == rintf(lvl));
                        float xh = sfq_uq_apply(&q, x);
                        ck_assert(xh >= vmin && xh <= vmax);
                        ck_assert(xh >= prev);
                        prev = xh;
                        if (x >= vmin && x <= vmax)
                            ck_assert(fabsf(x - xh) <= 0.5f * q.scale * (1.0f + 1e-5f) + 1e-6f * fabsf(x));
                    }
                }
            }
        }
        /* log-sqrt2: codes 0..2^b (2^b = zero) */
        sfq_lq l = {0.37f, b};
        uint16_t codes[257], back[257];
        float vals[257];
        for (int c = 0; c <= top + 1; c++)
            codes[c] = (uint16_t)c;
        ck_assert_int_eq(sfq_lq_decode(&l, codes, vals, (size_t)top + 2), SARDFQ_OK);
        ck_assert_int_eq(sfq_lq_encode(&l, vals, back, (size_t)top + 2), SARDFQ_OK);
        for (int c = 0; c <= top + 1; c++) {
            ck_assert_msg(back[c] == c, "log b=%d code %d -> %d", b, c, back[c]);
            ck_assert(vals[c] >= 0.0f && vals[c] <= l.scale);
            if (c > 0)
                ck_assert(vals[c] < vals[c - 1]);
        }
        ck_assert(vals[top + 1] == 0.0f);
        /* values above D clamp to code 0; 0 and negatives are the zero code */
        ck_assert_int_eq(sfq_lq_code(&l, 5.0f), 0);
        ck_assert_int_eq(sfq_lq_code(&l, 0.0f), top + 1);
        ck_assert_int_eq(sfq_lq_code(&l, -0.0f), top + 1);
        ck_assert_int_eq(sfq_lq_code(&l, -1.0f), top + 1);
        ck_assert_int_eq(sfq_lq_code(&l, NAN), -1);
    }
}
END_TEST

/* torch.round is half to even; PSAQ rounds x/D + z, RepQ-ViT round(x/D) + z */
START_TEST(rounding_ties)
{
    sfq_uq r = {1.0f, 0.0f, 8, SFQ_UQ_REPQ};
    ck_assert(sfq_uq_level(&r, 0.5f) == 0.0f);
    ck_assert(sfq_uq_level(&r, 1.5f) == 2.0f);
    ck_assert(sfq_uq_level(&r, 2.5f) == 2.0f);
    ck_assert(sfq_uq_level(&r, 3.5f) == 4.0f);
    r.zero = 1.0f;
    ck_assert(sfq_uq_level(&r, 0.5f) == 1.0f); /* round(0.5) + 1 */
    sfq_uq p = {1.0f, 1.0f, 8, SFQ_UQ_PSAQ};
    ck_assert(sfq_uq_level(&p, 0.5f) == 2.0f); /* round(1.5) */
    ck_assert(sfq_uq_apply(&p, 0.5f) == 1.0f);
    ck_assert(sfq_uq_apply(&r, 0.5f) == 0.0f);
    /* PSAQ zero point: 0 - round(min / D) with D = 1 */
    sfq_uq a;
    ck_assert_int_eq(sfq_psaq_act(-0.5f, 254.5f, 8, &a), SARDFQ_OK);
    ck_assert(a.scale == 1.0f && a.zero == 0.0f);
    ck_assert_int_eq(sfq_psaq_act(-1.5f, 253.5f, 8, &a), SARDFQ_OK);
    ck_assert(a.scale == 1.0f && a.zero == 2.0f);
    /* PSAQ symmetric: max|w| / D = 2^(b-1) - 0.5 rounds to even, then clamps */
    float w[2] = {7.5f, -7.5f};
    sfq_uq sw;
    ck_assert_int_eq(sfq_psaq_weight_rows(w, 1, 2, 4, &sw), SARDFQ_OK);
    ck_assert(sw.scale == 1.0f && sw.zero == 8.0f);
    float y[2];
    ck_assert_int_eq(sfq_uq_fake(&sw, w, y, 2), SARDFQ_OK);
    ck_assert(y[0] == 7.0f && y[1] == -8.0f);
    /* log-sqrt2: D * 2^(-q/2) */
    sfq_lq l = {1.0f, 3};
    ck_assert_int_eq(sfq_lq_code(&l, 1.0f), 0);
    ck_assert_int_eq(sfq_lq_code(&l, 0.5f), 2);
    ck_assert_int_eq(sfq_lq_code(&l, 0.70710677f), 1);
    ck_assert_int_eq(sfq_lq_code(&l, 0.09f), 7);  /* -2 log2 = 6.95 */
    ck_assert_int_eq(sfq_lq_code(&l, 0.08f), 7);  /* 7.29: still 7 */
    ck_assert_int_eq(sfq_lq_code(&l, 0.06f), 8);  /* 8.12 -> 8 = 2^b: zero */
}
END_TEST

START_TEST(encode_decode_equals_fake)
{
    const size_t n = 3000;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)), *y2 = malloc(n * sizeof(float));
    uint8_t *c = malloc(n);
    gen_heavy(31, n, x);
    for (int b = 2; b <= 8; b++) {
        sfq_uq q;
        ck_assert_int_eq(sfq_uq_search(x, n, b, &q, NULL), SARDFQ_OK);
        ck_assert_int_eq(sfq_uq_fake(&q, x, y, n), SARDFQ_OK);
        ck_assert_int_eq(sfq_uq_encode(&q, x, c, n), SARDFQ_OK);
        ck_assert_int_eq(sfq_uq_decode(&q, c, y2, n), SARDFQ_OK);
        assert_same(y2, y, n, "decode(encode) vs fake");
    }
    free(x);
    free(y);
    free(y2);
    free(c);
}
END_TEST

/* RepQ-ViT fails on these (delta None / NaN); the documented fallbacks. */
START_TEST(degenerate_inputs)
{
    float x[2000], y[2000];
    sfq_uq q;
    sfq_search_info inf;
    /* constant tensor */
    for (int i = 0; i < 2000; i++)
        x[i] = -0.75f;
    ck_assert_int_eq(sfq_uq_search(x, 2000, 4, &q, &inf), SARDFQ_OK);
    ck_assert_int_eq(inf.chosen, -1);
    for (int k = 0; k < SFQ_NCAND; k++)
        ck_assert(isnan(inf.mse[k]));
    ck_assert_int_eq(sfq_uq_check(&q), SARDFQ_OK);
    ck_assert_int_eq(sfq_uq_fake(&q, x, y, 2000), SARDFQ_OK);
    ck_assert(fabsf(y[0] + 0.75f) <= 1e-6f);
    /* all zeros */
    memset(x, 0, sizeof x);
    ck_assert_int_eq(sfq_uq_search(x, 2000, 8, &q, &inf), SARDFQ_OK);
    ck_assert(q.scale == 1.0f && q.zero == 0.0f && inf.chosen == -1);
    ck_assert_int_eq(sfq_uq_fake(&q, x, y, 2000), SARDFQ_OK);
    ck_assert(y[0] == 0.0f);
    /* one outlier in 2000: every quantile pair (n-1)p in [1998, 1999) */
    x[1234] = 5.0f;
    ck_assert_int_eq(sfq_uq_search(x, 2000, 8, &q, &inf), SARDFQ_OK);
    /* pct 0.999 interpolates between two zeros (degenerate); 0.9999 reaches the 5 */
    ck_assert(isnan(inf.mse[0]) && inf.chosen >= 1);
    /* outlier too rare for any quantile: all candidates degenerate */
    float *big = calloc(300000, sizeof(float));
    big[77] = 3.0f;
    big[78] = -1.0f;
    ck_assert_int_eq(sfq_uq_search(big, 300000, 3, &q, &inf), SARDFQ_OK);
    ck_assert_int_eq(inf.chosen, -1);
    ck_assert(q.scale == 4.0f / 7.0f); /* full range [-1, 3] */
    free(big);
    /* single element */
    x[0] = 2.5f;
    ck_assert_int_eq(sfq_uq_search(x, 1, 2, &q, &inf), SARDFQ_OK);
    ck_assert_int_eq(sfq_uq_fake(&q, x, y, 1), SARDFQ_OK);
    ck_assert(fabsf(y[0] - 2.5f) <= 1e-6f);
    /* log-sqrt2 on zeros: D = 1 (RepQ-ViT keeps 0 and outputs NaN) */
    memset(x, 0, sizeof x);
    sfq_lq l;
    ck_assert_int_eq(sfq_lq_search(x, 2000, 4, &l, &inf), SARDFQ_OK);
    ck_assert(l.scale == 1.0f && inf.chosen == -1);
    ck_assert_int_eq(sfq_lq_fake(&l, x, y, 2000), SARDFQ_OK);
    ck_assert(y[5] == 0.0f);
    /* log-sqrt2 with >99.999% zeros: candidates 0, fallback max(x) */
    x[3] = 0.5f;
    ck_assert_int_eq(sfq_lq_search(x, 2000, 4, &l, &inf), SARDFQ_OK);
    ck_assert(isnan(inf.mse[0]) && inf.chosen >= 1 && l.scale > 0.0f && l.scale < 0.5f);
    /* PSAQ: constant activations, zero weight row */
    sfq_uq a;
    ck_assert_int_eq(sfq_psaq_act(0.375f, 0.375f, 8, &a), SARDFQ_OK);
    ck_assert(a.scale == FLT_EPSILON && a.zero == 0.0f);
}
END_TEST

START_TEST(invalid_arguments)
{
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7}, y[8];
    uint8_t c8[8];
    uint16_t c16[8];
    sfq_uq q = {0.1f, 3.0f, 4, SFQ_UQ_REPQ};
    sfq_lq l = {0.5f, 4};
    sfq_uq qs[8];
    double p = 0.5;
#define EXPECT(call, st)                                                                           \
    do {                                                                                           \
        sfq_clear_error();                                                                         \
        ck_assert_int_eq((call), (st));                                                            \
        ck_assert_msg(sardfq_last_error()[0] != '\0', "no message for %s", #call);                 \
    } while (0)
    for (int b = -1; b <= 12; b++) {
        if (b >= 2 && b <= 8)
            continue;
        EXPECT(sfq_uq_search(x, 8, b, &q, NULL), SARDFQ_E_INVALID_ARG);
        EXPECT(sfq_uq_search_rows(x, 2, 4, b, 1, qs, NULL), SARDFQ_E_INVALID_ARG);
        EXPECT(sfq_uq_search_cols(x, 2, 4, b, 1, qs, NULL), SARDFQ_E_INVALID_ARG);
        EXPECT(sfq_lq_search(x, 8, b, &l, NULL), SARDFQ_E_INVALID_ARG);
        EXPECT(sfq_psaq_weight_rows(x, 2, 4, b, qs), SARDFQ_E_INVALID_ARG);
        EXPECT(sfq_psaq_act(0.0f, 1.0f, b, &q), SARDFQ_E_INVALID_ARG);
        sfq_uq bad = {0.1f, 0.0f, b, SFQ_UQ_REPQ};
        EXPECT(sfq_uq_fake(&bad, x, y, 8), SARDFQ_E_INVALID_ARG);
        sfq_lq badl = {0.1f, b};
        EXPECT(sfq_lq_fake(&badl, x, y, 8), SARDFQ_E_INVALID_ARG);
    }
    ck_assert(strstr(sardfq_last_error(), "bits") != NULL);
    /* empty arrays */
    EXPECT(sfq_uq_search(x, 0, 4, &q, NULL), SARDFQ_E_INVALID_ARG);
    ck_assert(strstr(sardfq_last_error(), "empty") != NULL);
    EXPECT(sfq_uq_search_rows(x, 0, 4, 4, 1, qs, NULL), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_search_rows(x, 4, 0, 4, 1, qs, NULL), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_search_cols(x, 0, 4, 4, 1, qs, NULL), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_lq_search(x, 0, 4, &l, NULL), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_fake(&q, x, y, 0), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_fake_rows(&q, x, y, 0, 3), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_fake_cols(&q, x, y, 3, 0), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_encode(&q, x, c8, 0), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_decode(&q, c8, y, 0), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_lq_fake(&l, x, y, 0), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_lq_encode(&l, x, c16, 0), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_lq_decode(&l, c16, y, 0), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_quantiles(x, 0, &p, 1, SFQ_QUANTILE_AUTO, y), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_minmax(x, 0, &y[0], &y[1]), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_psaq_weight_rows(x, 0, 8, 4, qs), SARDFQ_E_INVALID_ARG);
    /* NULL pointers */
    EXPECT(sfq_uq_search(NULL, 8, 4, &q, NULL), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_search(x, 8, 4, NULL, NULL), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_fake(NULL, x, y, 8), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_fake(&q, x, NULL, 8), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_uq_fake_rows(NULL, x, y, 2, 4), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_lq_search(x, 8, 4, NULL, NULL), SARDFQ_E_INVALID_ARG);
    /* non-finite input to the searches */
    float bad[8] = {0, 1, NAN, 3, 4, 5, 6, 7};
    EXPECT(sfq_uq_search(bad, 8, 4, &q, NULL), SARDFQ_E_INVALID_ARG);
    bad[2] = INFINITY;
    EXPECT(sfq_uq_search_rows(bad, 2, 4, 4, 1, qs, NULL), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_lq_search(bad, 8, 4, &l, NULL), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_minmax(bad, 8, &y[0], &y[1]), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_quantiles(bad, 8, &p, 1, SFQ_QUANTILE_AUTO, y), SARDFQ_E_INVALID_ARG);
    /* negative input to the log search */
    float neg[4] = {0.1f, -0.2f, 0.3f, 0.0f};
    EXPECT(sfq_lq_search(neg, 4, 4, &l, NULL), SARDFQ_E_INVALID_ARG);
    /* bad quantizer parameters */
    sfq_uq bq = {0.0f, 0.0f, 4, SFQ_UQ_REPQ};
    EXPECT(sfq_uq_fake(&bq, x, y, 8), SARDFQ_E_INVALID_ARG);
    bq.scale = -1.0f;
    EXPECT(sfq_uq_check(&bq), SARDFQ_E_INVALID_ARG);
    bq.scale = INFINITY;
    EXPECT(sfq_uq_check(&bq), SARDFQ_E_INVALID_ARG);
    bq.scale = 1.0f;
    bq.zero = NAN;
    EXPECT(sfq_uq_check(&bq), SARDFQ_E_INVALID_ARG);
    bq.zero = 0.0f;
    bq.form = 7;
    EXPECT(sfq_uq_check(&bq), SARDFQ_E_INVALID_ARG);
    sfq_lq bl = {0.0f, 4};
    EXPECT(sfq_lq_check(&bl), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_lq_fake(&bl, x, y, 8), SARDFQ_E_INVALID_ARG);
    /* fractional zero point: fake quant works, codes refused */
    sfq_uq fz = {0.5f, 2.25f, 4, SFQ_UQ_REPQ};
    ck_assert_int_eq(sfq_uq_fake(&fz, x, y, 8), SARDFQ_OK);
    EXPECT(sfq_uq_encode(&fz, x, c8, 8), SARDFQ_E_INVALID_ARG);
    /* codes out of range */
    uint8_t hc[2] = {3, 16};
    EXPECT(sfq_uq_decode(&q, hc, y, 2), SARDFQ_E_INVALID_ARG);
    uint16_t hl[2] = {3, 17};
    EXPECT(sfq_lq_decode(&l, hl, y, 2), SARDFQ_E_INVALID_ARG);
    /* NaN to encoders */
    float nanx[2] = {NAN, 1.0f};
    EXPECT(sfq_uq_encode(&q, nanx, c8, 2), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_lq_encode(&l, nanx, c16, 2), SARDFQ_E_INVALID_ARG);
    /* quantile arguments */
    double pb = 1.5;
    EXPECT(sfq_quantiles(x, 8, &pb, 1, SFQ_QUANTILE_AUTO, y), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_quantiles(x, 8, &p, 0, SFQ_QUANTILE_AUTO, y), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_quantiles(x, 8, &p, 1, 9, y), SARDFQ_E_INVALID_ARG);
    /* PSAQ range */
    EXPECT(sfq_psaq_act(2.0f, 1.0f, 4, &q), SARDFQ_E_INVALID_ARG);
    EXPECT(sfq_psaq_act(NAN, 1.0f, 4, &q), SARDFQ_E_INVALID_ARG);
#undef EXPECT
}
END_TEST

START_TEST(out_of_memory)
{
    float x[64];
    gen_heavy(41, 64, x);
    sfq_uq q, qs[8];
    sfq_lq l;
    float out[1];
    double p = 0.5;
    sfq_alloc_fail_countdown = 1;
    ck_assert_int_eq(sfq_uq_search(x, 64, 4, &q, NULL), SARDFQ_E_NOMEM);
    sfq_alloc_fail_countdown = 1;
    ck_assert_int_eq(sfq_uq_search_rows(x, 8, 8, 4, 1, qs, NULL), SARDFQ_E_NOMEM);
    sfq_alloc_fail_countdown = 1;
    ck_assert_int_eq(sfq_uq_search_cols(x, 8, 8, 4, 1, qs, NULL), SARDFQ_E_NOMEM);
    for (int i = 0; i < 64; i++)
        x[i] = fabsf(x[i]);
    sfq_alloc_fail_countdown = 1;
    ck_assert_int_eq(sfq_lq_search(x, 64, 4, &l, NULL), SARDFQ_E_NOMEM);
    sfq_alloc_fail_countdown = 1;
    ck_assert_int_eq(sfq_quantiles(x, 64, &p, 1, SFQ_QUANTILE_AUTO, out), SARDFQ_E_NOMEM);
    ck_assert(sardfq_last_error()[0] != '\0');
    sfq_alloc_fail_countdown = 0;
    ck_assert_int_eq(sfq_uq_search(x, 64, 4, &q, NULL), SARDFQ_OK);
}
END_TEST


/* The bulk rows of the forward's points (AVX-512 where the CPU has it) are
 * the scalar quantizers bit for bit: random values, values a few ulps from
 * every log-sqrt2 rounding boundary x = D 2^(-(k + 1/2)/2) and uniform
 * boundary (k + 1/2) D, zeros of both signs, negatives, NaN, infinities,
 * tiny and huge values. */
static void fill_edge_values(float *x, int n, float D, uint64_t seed)
{
    uint64_t st = seed;
    int i = 0;
    for (int k = -2; k < 260 && i + 7 < n; k++) {
        const float b = D * (float)pow(2.0, -(k + 0.5) / 2.0), u = D * ((float)k + 0.5f) - 3.0f * D;
        x[i++] = b;
        x[i++] = nextafterf(b, 0.0f);
        x[i++] = nextafterf(b, INFINITY);
        x[i++] = nextafterf(nextafterf(b, 0.0f), 0.0f);
        x[i++] = u;
        x[i++] = nextafterf(u, -INFINITY);
        x[i++] = nextafterf(u, INFINITY);
    }
    const float special[] = {0.0f, -0.0f, -1.0f, NAN, INFINITY, -INFINITY, 1e-38f, 1e-45f, 3e38f, D, 2 * D};
    for (size_t j = 0; j < sizeof special / sizeof special[0] && i < n; j++)
        x[i++] = special[j];
    for (; i < n; i++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        const double u = (double)(st >> 11) / 9007199254740992.0;
        x[i] = (float)(D * pow(2.0, -40.0 * u)) * ((st & 1) ? 1.0f : 0.5f);
        if ((st >> 5) % 7 == 0)
            x[i] = (float)(D * (16.0 * u - 4.0));
    }
}

START_TEST(bulk_rows_equal_scalar_quantizers)
{
    const int n = 40000;
    float *x = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    float tab[SFQ_LQ_TABLE];
    for (int bits = 2; bits <= 8; bits++) {
        const float D = 0.37f + 0.01f * bits;
        fill_edge_values(x, n, D, 99 + bits);
        sfq_lq lq = {D, bits};
        sfq_lq_table(&lq, tab);
        memcpy(a, x, sizeof(float) * n);
        memcpy(b, x, sizeof(float) * n);
        sfq_lq_fake_row(&lq, tab, a, n, 0);
        sfq_lq_fake_row(&lq, tab, b, n, sfq_quant_simd());
        for (int i = 0; i < n; i++) {
            const float want = sfq_lq_apply(&lq, x[i]);
            ck_assert_msg(memcmp(&a[i], &want, 4) == 0 && memcmp(&b[i], &want, 4) == 0,
                          "log bits %d x %.9g: %.9g / %.9g, expected %.9g", bits, x[i], a[i], b[i], want);
        }
        /* the whole 8-bit range, down to levels below FLT_MIN (subnormal
         * table entries), and a small scale */
        for (int k = 0; k < 2; k++) {
            sfq_lq deep = {k ? 3e-4f : D, bits};
            sfq_lq_table(&deep, tab);
            uint64_t st = 7 + (uint64_t)bits;
            for (int i = 0; i < n; i++) {
                st = st * 6364136223846793005ULL + 1442695040888963407ULL;
                a[i] = b[i] = (float)(deep.scale * pow(2.0, -135.0 * (double)(st >> 11) / 9007199254740992.0));
            }
            sfq_lq_fake_row(&deep, tab, b, n, sfq_quant_simd());
            for (int i = 0; i < n; i++) {
                const float want = sfq_lq_apply(&deep, a[i]);
                ck_assert_msg(memcmp(&b[i], &want, 4) == 0, "log bits %d D %g x %.9g: %.9g, expected %.9g", bits,
                              deep.scale, a[i], b[i], want);
            }
        }
        for (int form = 0; form < 2; form++) {
            sfq_uq u = {D, form ? 3.0f : -2.0f, bits, form};
            memcpy(a, x, sizeof(float) * n);
            memcpy(b, x, sizeof(float) * n);
            sfq_uq_fake_row(&u, a, n, 0);
            sfq_uq_fake_row(&u, b, n, sfq_quant_simd());
            for (int i = 0; i < n; i++) {
                const float want = sfq_uq_apply(&u, x[i]);
                ck_assert_msg((isnan(want) && isnan(a[i]) && isnan(b[i])) ||
                                  (memcmp(&a[i], &want, 4) == 0 && memcmp(&b[i], &want, 4) == 0),
                              "uniform bits %d form %d x %.9g: %.9g / %.9g, expected %.9g", bits, form, x[i],
                              a[i], b[i], want);
            }
        }
    }
    free(x);
    free(a);
    free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("golden");
    tcase_add_test(tc, generator_matches_python);
    tcase_add_test(tc, quantiles_match_torch_and_numpy);
    tcase_add_test(tc, quantiles_selection_layouts);
    tcase_add_test(tc, uniform_per_tensor_golden);
    tcase_add_test(tc, uniform_per_channel_golden);
    tcase_add_test(tc, log_golden);
    tcase_add_test(tc, psaq_golden);
    suite_add_tcase(s, tc);
    tc = tcase_create("large");
    tcase_add_test(tc, gen_weight_rows_768x3072);
    tcase_add_test(tc, gen_act_cols_6304x96);
    tcase_add_test(tc, gen_tensor_numpy_path);
    tcase_add_test(tc, gen_log_search);
    suite_add_tcase(s, tc);
    tc = tcase_create("properties");
    tcase_add_test(tc, idempotence);
    tcase_add_test(tc, integer_grid_exhaustive);
    tcase_add_test(tc, rounding_ties);
    tcase_add_test(tc, encode_decode_equals_fake);
    tcase_add_test(tc, degenerate_inputs);
    tcase_add_test(tc, invalid_arguments);
    tcase_add_test(tc, out_of_memory);
    tcase_add_test(tc, bulk_rows_equal_scalar_quantizers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
