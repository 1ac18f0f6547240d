/* test_losses.c - the synthesis losses (src/synth/losses.h) against float64
 * PyTorch goldens (tests/reference/make_loss_fixtures.py), central finite
 * differences done here, the crop-resize adjoint identity, soft targets and
 * edge cases. */
#include "core.h"
#include "losses.h"
#include "rng.h"
#include "safetensors.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits against the float64 goldens, about 10x the largest error measured
 * over all cases (SFQ_TEST_VERBOSE=1 prints them): values 4.9e-8 (pse a),
 * gradients 2.6e-6 (tv above/below; the others <= 2.4e-7). */
#define VAL_TOL 5e-7  /* relative, loss values */
#define GRAD_TOL 3e-5 /* max abs diff / max abs, gradients */

/* ---- fixtures ----------------------------------------------------------- */

static float *fx_getf(tu_fixture *f, const char *prefix, const char *name, size_t *numel)
{
    char key[128];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    return tu_fixture_get(f, key, numel);
}


static void check_value(double got, double want, const char *what)
{
    const double rel = fabs(got - want) / fmax(fabs(want), 1e-30);
    if (getenv("SFQ_TEST_VERBOSE"))
        printf("  %-40s value rel err %.3g\n", what, rel);
    ck_assert_msg(rel <= VAL_TOL, "%s: value %.9g, golden %.9g (rel %.3g)", what, got, want, rel);
}

static void check_grad(const float *got, const float *want, size_t n, const char *what)
{
    const double d = tu_max_abs_diff(got, want, n), m = tu_max_abs(want, n);
    ck_assert_msg(m > 0, "%s: golden gradient is zero", what);
    if (getenv("SFQ_TEST_VERBOSE"))
        printf("  %-40s grad  rel err %.3g\n", what, d / m);
    ck_assert_msg(d <= GRAD_TOL * m, "%s: max abs diff %.3g, max abs %.3g (rel %.3g)", what, d, m,
                  d / m);
}

static float *fcalloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert(p != NULL);
    return p;
}

/* ---- finite differences ------------------------------------------------- */

typedef double (*loss_fn)(void *ctx, const float *x);

/* Central differences of fn at `count` sampled coordinates of x (n floats)
 * against grad; coordinates with skip[i] != 0 are not sampled. The error
 * allowed is tol * max|grad| + abs_tol. */
static void fd_check(loss_fn fn, void *ctx, float *x, size_t n, const float *grad, int count,
                     float step, double tol, const unsigned char *skip, uint64_t seed,
                     const char *what)
{
    sfq_rng r;
    sfq_rng_seed(&r, seed);
    const double gmax = tu_max_abs(grad, n);
    int done = 0;
    double worst = 0;
    for (int tries = 0; done < count && tries < 100 * count; tries++) {
        const size_t i = (size_t)(sfq_rng_uniform(&r) * n);
        if (skip && skip[i])
            continue;
        const float x0 = x[i];
        const float xp = x0 + step, xm = x0 - step;
        x[i] = xp;
        const double lp = fn(ctx, x);
        x[i] = xm;
        const double lm = fn(ctx, x);
        x[i] = x0;
        const double fd = (lp - lm) / ((double)xp - (double)xm);
        if (getenv("SFQ_TEST_VERBOSE") && fabs(fd - grad[i]) > worst)
            worst = fabs(fd - grad[i]);
        ck_assert_msg(fabs(fd - grad[i]) <= tol * gmax,
                      "%s: coordinate %zu: finite difference %.8g, gradient %.8g (max |g| %.3g)",
                      what, i, fd, (double)grad[i], gmax);
        done++;
    }
    ck_assert_int_eq(done, count);
    if (getenv("SFQ_TEST_VERBOSE"))
        printf("  %-40s fd    rel err %.3g (%d coordinates)\n", what, worst / gmax, done);
}

/* ---- APA ------------------------------------------------------------------ */

/* The APA loss of a ViT batch as the generator computes it:
 * sfq_loss_apa_blocks per image on the ViT layout (attn [B][depth][H][N],
 * prior [B][depth][H][N - P]), scale 1, the sum divided by B and the
 * gradient multiplied by 1/B (generator.c, step). dattn may be NULL. */
static double apa_batch(const float *attn, const float *prior, int B, int depth, int H, int N, int P,
                        float *dattn)
{
    sfq_apa_block *blk = malloc(sizeof *blk * (size_t)depth);
    ck_assert_ptr_nonnull(blk);
    const size_t att = (size_t)depth * H * N, pri = (size_t)depth * H * (N - P);
    for (int l = 0; l < depth; l++) {
        blk[l].heads = H;
        blk[l].tokens = N;
        blk[l].prefix = P;
        blk[l].attn_off = (size_t)l * H * N;
        blk[l].prior_off = (size_t)l * H * (N - P);
    }
    double L = 0;
    const float w = 1.0f / (float)B;
    for (int b = 0; b < B; b++) {
        float *d = dattn ? dattn + (size_t)b * att : NULL;
        L += sfq_loss_apa_blocks(attn + (size_t)b * att, prior + (size_t)b * pri, depth, blk, 1.0, d) / B;
        for (size_t j = 0; d && j < att; j++)
            d[j] *= w;
    }
    free(blk);
    return L;
}

typedef struct {
    const float *prior;
    int B, depth, H, N, P;
} apa_ctx;

static double apa_fn(void *vc, const float *x)
{
    apa_ctx *c = vc;
    return apa_batch(x, c->prior, c->B, c->depth, c->H, c->N, c->P, NULL);
}

static void apa_case(const char *prefix)
{
    tu_fixture f;
    tu_fixture_open(&f, "losses_apa.safetensors");
    size_t n;
    float *dims = fx_getf(&f, prefix, "dims", NULL);
    float *attn = fx_getf(&f, prefix, "attn", &n);
    float *prior = fx_getf(&f, prefix, "prior", NULL);
    float *loss = fx_getf(&f, prefix, "loss", NULL);
    float *dref = fx_getf(&f, prefix, "dattn", NULL);
    apa_ctx c = {prior, (int)dims[0], (int)dims[1], (int)dims[2], (int)dims[3], (int)dims[4]};
    float *d = fcalloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = 123.0f; /* written, not accumulated */
    const double L = apa_batch(attn, prior, c.B, c.depth, c.H, c.N, c.P, d);
    check_value(L, loss[0], "apa loss");
    check_grad(d, dref, n, "apa gradient");
    /* exactly zero on prefix tokens and unused blocks */
    for (int b = 0; b < c.B; b++)
        for (int l = 1; l <= c.depth; l++)
            for (int h = 0; h < c.H; h++)
                for (int t = 0; t < c.N; t++) {
                    const size_t i = (((size_t)b * c.depth + l - 1) * c.H + h) * c.N + t;
                    if (t < c.P || l < c.depth / 2)
                        ck_assert(d[i] == 0.0f);
                }
    fd_check(apa_fn, &c, attn, n, d, 40, 1e-3f, 1e-4, NULL, 11, "apa");
    free(dims), free(attn), free(prior), free(loss), free(dref), free(d);
    tu_fixture_close(&f);
}

START_TEST(apa_golden_and_fd)
{
    apa_case("");
    apa_case("b.");
}
END_TEST

START_TEST(apa_value_only_and_identity)
{
    /* prior equal to the attention rows -> 0; no gradient buffer needed */
    const int B = 2, depth = 3, H = 2, N = 5, P = 1, G = N - P;
    float attn[2 * 3 * 2 * 5], prior[2 * 3 * 2 * 4];
    for (int r = 0; r < B * depth * H; r++)
        for (int t = 0; t < N; t++) {
            attn[r * N + t] = (float)(t + 1) / 15.0f;
            if (t >= P)
                prior[r * G + t - P] = attn[r * N + t];
        }
    ck_assert(apa_batch(attn, prior, B, depth, H, N, P, NULL) == 0.0);
    /* depth 1: the single block is used with weight 1 */
    float a1[3] = {0.2f, 0.5f, 0.3f}, p1[2] = {0.1f, 0.9f}, d1[3];
    const double want = 0.5 * ((0.5 - 0.1) * (0.5 - 0.1) + (0.3 - 0.9) * (0.3 - 0.9));
    ck_assert(fabs(apa_batch(a1, p1, 1, 1, 1, 3, 1, d1) - want) < 1e-7);
    ck_assert(d1[0] == 0.0f && fabsf(d1[1] - 0.4f) < 1e-6f && fabsf(d1[2] + 0.6f) < 1e-6f);
}
END_TEST

/* ---- inter-head alignment --------------------------------------------------- */

/* The term over a ViT-layout batch as the generator computes it: per image
 * with scale 1/B, accumulated into dattn (which the caller zeroes). */
static double head_batch(const float *attn, int B, int depth, int H, int N, int P, int form, float *dattn)
{
    sfq_apa_block *blk = malloc(sizeof *blk * (size_t)depth);
    ck_assert_ptr_nonnull(blk);
    const size_t att = (size_t)depth * H * N;
    for (int l = 0; l < depth; l++)
        blk[l] = (sfq_apa_block){H, N, P, (size_t)l * H * N, 0};
    double L = 0;
    for (int b = 0; b < B; b++)
        L += sfq_loss_head_align(attn + (size_t)b * att, depth, blk, 1.0 / B, form,
                                 dattn ? dattn + (size_t)b * att : NULL);
    free(blk);
    return L;
}

typedef struct {
    int B, depth, H, N, P, form;
} head_ctx;

static double head_fn(void *vc, const float *x)
{
    head_ctx *c = vc;
    return head_batch(x, c->B, c->depth, c->H, c->N, c->P, c->form, NULL);
}

/* form SFQ_HEAD_ALIGN_COSINE against losses_head, _SSIM against losses_head_ssim */
static void head_case(const char *prefix, int form)
{
    tu_fixture f;
    tu_fixture_open(&f, form == SFQ_HEAD_ALIGN_SSIM ? "losses_head_ssim.safetensors" : "losses_head.safetensors");
    size_t n;
    float *dims = fx_getf(&f, prefix, "dims", NULL);
    float *attn = fx_getf(&f, prefix, "attn", &n);
    float *loss = fx_getf(&f, prefix, "loss", NULL);
    float *dref = fx_getf(&f, prefix, "dattn", NULL);
    head_ctx c = {(int)dims[0], (int)dims[1], (int)dims[2], (int)dims[3], (int)dims[4], form};
    float *d = fcalloc(n);
    const double L = head_batch(attn, c.B, c.depth, c.H, c.N, c.P, form, d);
    if (c.H < 2) { /* no pairs: nothing, and no gradient */
        ck_assert(L == 0.0 && loss[0] == 0.0f);
        for (size_t i = 0; i < n; i++)
            ck_assert(d[i] == 0.0f);
    } else {
        check_value(L, loss[0], "head-align loss");
        check_grad(d, dref, n, "head-align gradient");
        for (size_t i = 0; i < n; i++) /* prefix tokens get nothing */
            if ((int)(i % (size_t)c.N) < c.P)
                ck_assert(d[i] == 0.0f);
        /* accumulated (+=), not written */
        float *d2 = fcalloc(n);
        for (size_t i = 0; i < n; i++)
            d2[i] = 1.0f;
        head_batch(attn, c.B, c.depth, c.H, c.N, c.P, form, d2);
        for (size_t i = 0; i < n; i++)
            ck_assert(fabsf(d2[i] - 1.0f - d[i]) <= 1e-6f * (1.0f + fabsf(d[i])));
        free(d2);
        fd_check(head_fn, &c, attn, n, d, 40, 1e-3f, 1e-4, NULL, 12, "head-align");
    }
    free(dims), free(attn), free(loss), free(dref), free(d);
    tu_fixture_close(&f);
}

START_TEST(head_align_golden_and_fd)
{
    for (int form = SFQ_HEAD_ALIGN_COSINE; form <= SFQ_HEAD_ALIGN_SSIM; form++) {
        head_case("", form);
        head_case("b.", form);
        head_case("c.", form);
    }
}
END_TEST

START_TEST(head_align_identity_and_scale)
{
    /* identical heads -> 0 (up to rounding) and a zero gradient; proportional heads too
     * (the cosine ignores scale) */
    const int depth = 2, H = 3, N = 6, P = 1;
    float attn[2 * 3 * 6], d[2 * 3 * 6] = {0};
    for (int l = 0; l < depth; l++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < N; t++)
                attn[(l * H + h) * N + t] = (float)(t + 1 + l) * (h + 1) / 30.0f;
    ck_assert(fabs(head_batch(attn, 1, depth, H, N, P, SFQ_HEAD_ALIGN_COSINE, d)) < 1e-7);
    for (int i = 0; i < depth * H * N; i++)
        ck_assert(fabsf(d[i]) < 1e-5f);
    /* two orthogonal one-hot heads: 1 - cos = 1 in the single block */
    float a2[2 * 4] = {0.5f, 1, 0, 0, 0.5f, 0, 0, 1};
    ck_assert(fabs(head_batch(a2, 1, 1, 2, 4, 1, SFQ_HEAD_ALIGN_COSINE, NULL) - 1.0) < 1e-12);
    /* SSIM is not blind to scale: proportional heads cost, identical ones do not */
    ck_assert(head_batch(attn, 1, depth, H, N, P, SFQ_HEAD_ALIGN_SSIM, NULL) > 0.01);
    float same[2 * 5] = {0.1f, 0.2f, 0.3f, 0.1f, 0.3f, 0.1f, 0.2f, 0.3f, 0.1f, 0.3f}, d3[10] = {0};
    ck_assert(fabs(head_batch(same, 1, 1, 2, 5, 0, SFQ_HEAD_ALIGN_SSIM, d3)) < 1e-7);
    for (int i = 0; i < 10; i++)
        ck_assert(fabsf(d3[i]) < 1e-5f);
}
END_TEST

/* ---- CE ------------------------------------------------------------------- */

typedef struct {
    const float *T;
    int B, K;
} ce_ctx;

static double ce_fn(void *vc, const float *x)
{
    ce_ctx *c = vc;
    return sfq_loss_soft_ce(x, c->T, c->B, c->K, NULL);
}

START_TEST(ce_golden_and_fd)
{
    tu_fixture f;
    tu_fixture_open(&f, "losses_ce.safetensors");
    size_t n;
    float *dims = tu_fixture_get(&f, "dims", NULL);
    float *z = tu_fixture_get(&f, "logits", &n);
    const char *kinds[2] = {"soft.", "hot."};
    for (int k = 0; k < 2; k++) {
        float *T = fx_getf(&f, kinds[k], "targets", NULL);
        float *loss = fx_getf(&f, kinds[k], "loss", NULL);
        float *dref = fx_getf(&f, kinds[k], "dlogits", NULL);
        ce_ctx c = {T, (int)dims[0], (int)dims[1]};
        float *d = fcalloc(n);
        const double L = sfq_loss_soft_ce(z, T, c.B, c.K, d);
        check_value(L, loss[0], kinds[k]);
        check_grad(d, dref, n, kinds[k]);
        fd_check(ce_fn, &c, z, n, d, 20, 1e-3f, 1e-4, NULL, 12 + k, kinds[k]);
        free(T), free(loss), free(dref), free(d);
    }
    free(dims), free(z);
    tu_fixture_close(&f);
}
END_TEST

START_TEST(ce_large_logits_stable)
{
    float z[3] = {1000.0f, -1000.0f, 999.0f}, t[3] = {0, 0, 1}, d[3];
    const double L = sfq_loss_soft_ce(z, t, 1, 3, d);
    ck_assert(isfinite(L) && fabs(L - (1.0 + log1p(exp(-1.0)))) < 1e-9);
    for (int k = 0; k < 3; k++)
        ck_assert(isfinite(d[k]));
}
END_TEST

START_TEST(soft_target_rows)
{
    sfq_rng r;
    sfq_rng_seed(&r, 7);
    const int K = 1000;
    float *t = fcalloc(K);
    for (int trial = 0; trial < 50; trial++) {
        const int m = 1 + trial % 4;
        int32_t cls[4];
        for (int i = 0; i < m; i++) {
            int c, dup;
            do { /* distinct classes */
                c = (int)(sfq_rng_uniform(&r) * K);
                dup = 0;
                for (int j = 0; j < i; j++)
                    dup |= cls[j] == c;
            } while (dup);
            cls[i] = c;
        }
        /* the draws the function will make, in class order */
        sfq_rng copy = r;
        double z[4], zmax = -1;
        int best = -1;
        for (int i = 0; i < m; i++) {
            z[i] = 5.0 + 5.0 * sfq_rng_uniform(&copy);
            if (z[i] > zmax)
                zmax = z[i], best = cls[i];
        }
        sfq_soft_target(&r, cls, m, K, 5.0f, 10.0f, t);
        ck_assert(memcmp(&r, &copy, sizeof r) == 0); /* one draw per class */
        double s = 0;
        int arg = 0;
        for (int k = 0; k < K; k++) {
            ck_assert(t[k] > 0.0f);
            s += t[k];
            if (t[k] > t[arg])
                arg = k;
        }
        ck_assert_msg(fabs(s - 1.0) < 1e-5, "row sum %.9g", s);
        ck_assert_int_eq(arg, best);
        /* the softmax of Z: a non-target class holds 1 / sum exp(Z) */
        double den = K - m;
        for (int i = 0; i < m; i++)
            den += exp(z[i]);
        int other = 0; /* a class not in the list holds exp(0) / den */
        for (int hit = 1; hit;) {
            hit = 0;
            for (int i = 0; i < m; i++)
                hit |= cls[i] == other;
            other += hit;
        }
        ck_assert(fabs(t[other] - 1.0 / den) <= 1e-6 / den);
        for (int i = 0; i < m; i++)
            ck_assert_msg(fabs(t[cls[i]] - exp(z[i]) / den) <= 1e-6 * exp(z[i]) / den,
                          "class %d: %.9g vs %.9g", cls[i], (double)t[cls[i]], exp(z[i]) / den);
    }
    /* same seed, same targets */
    float *t2 = fcalloc(K);
    int32_t cls[2] = {3, 17};
    sfq_rng a, b;
    sfq_rng_seed(&a, 99);
    sfq_rng_seed(&b, 99);
    sfq_soft_target(&a, cls, 2, K, 5.0f, 10.0f, t);
    sfq_soft_target(&b, cls, 2, K, 5.0f, 10.0f, t2);
    ck_assert(memcmp(t, t2, sizeof(float) * K) == 0);
    free(t), free(t2);
}
END_TEST

/* ---- TV ------------------------------------------------------------------- */

typedef struct {
    int B, C, H, W;
    float tau;
} tv_ctx;

static double tv_fn(void *vc, const float *x)
{
    tv_ctx *c = vc;
    return sfq_loss_tv(x, c->B, c->C, c->H, c->W, c->tau, 1.0f, NULL, NULL);
}

START_TEST(tv_golden_and_fd)
{
    tu_fixture f;
    tu_fixture_open(&f, "losses_tv.safetensors");
    size_t n;
    float *dims = tu_fixture_get(&f, "dims", NULL);
    float *x = tu_fixture_get(&f, "x", &n);
    float *tvref = tu_fixture_get(&f, "tv", NULL);
    const char *kinds[2] = {"below.", "above."};
    for (int k = 0; k < 2; k++) {
        float *tau = fx_getf(&f, kinds[k], "tau", NULL);
        float *loss = fx_getf(&f, kinds[k], "loss", NULL);
        float *dref = fx_getf(&f, kinds[k], "dx", NULL);
        tv_ctx c = {(int)dims[0], (int)dims[1], (int)dims[2], (int)dims[3], tau[0]};
        /* dx += weight * dL/dx: start from a known value */
        float *d = fcalloc(n), *want = fcalloc(n);
        const float weight = 0.05f;
        for (size_t i = 0; i < n; i++) {
            d[i] = (float)(i % 7) - 3.0f;
            want[i] = d[i] + weight * dref[i];
        }
        double tv = -1;
        const double L = sfq_loss_tv(x, c.B, c.C, c.H, c.W, c.tau, weight, d, &tv);
        check_value(L, loss[0], kinds[k]);
        check_value(tv, tvref[0], "tv");
        /* compare the increment */
        for (size_t i = 0; i < n; i++) {
            d[i] -= (float)(i % 7) - 3.0f;
            want[i] = weight * dref[i];
        }
        check_grad(d, want, n, kinds[k]);
        float *d1 = fcalloc(n);
        sfq_loss_tv(x, c.B, c.C, c.H, c.W, c.tau, 1.0f, d1, NULL);
        check_grad(d1, dref, n, kinds[k]);
        fd_check(tv_fn, &c, x, n, d1, 40, 1e-3f, 1e-4, NULL, 21 + k, kinds[k]);
        free(tau), free(loss), free(dref), free(d), free(want), free(d1);
    }
    free(dims), free(x), free(tvref);
    tu_fixture_close(&f);
}
END_TEST

START_TEST(tv_at_tau_and_degenerate)
{
    /* TV exactly 3 (one horizontal, one vertical difference) */
    float row[2] = {0.0f, 3.0f}, d[2] = {0, 0};
    double tv = -1;
    ck_assert(sfq_loss_tv(row, 1, 1, 1, 2, 3.0f, 1.0f, d, &tv) == 0.0);
    ck_assert(tv == 3.0 && d[0] == 0.0f && d[1] == 0.0f);
    ck_assert(sfq_loss_tv(row, 1, 1, 2, 1, 3.0f, 1.0f, d, &tv) == 0.0);
    ck_assert(tv == 3.0 && d[0] == 0.0f && d[1] == 0.0f);
    /* away from tau the 1-D gradient is +-1 per end */
    ck_assert(sfq_loss_tv(row, 1, 1, 1, 2, 1.0f, 1.0f, d, &tv) == 2.0);
    ck_assert(d[0] == -1.0f && d[1] == 1.0f);
    /* a constant image: every map has norm 0, no NaN, zero gradient */
    float img[2 * 5 * 6], g[2 * 5 * 6];
    for (int i = 0; i < 60; i++)
        img[i] = 0.25f, g[i] = 0.0f;
    ck_assert(sfq_loss_tv(img, 1, 2, 5, 6, 10.0f, 1.0f, g, &tv) == 10.0);
    ck_assert(tv == 0.0);
    for (int i = 0; i < 60; i++)
        ck_assert(g[i] == 0.0f);
    /* 2x2 with only one non-zero map each way: still finite */
    float sq[4] = {1, 1, 1, 1};
    sq[3] = 2;
    float gs[4] = {0};
    const double L = sfq_loss_tv(sq, 1, 1, 2, 2, 0.0f, 1.0f, gs, &tv);
    ck_assert(isfinite(L) && fabs(L - 3.0) < 1e-12); /* |d1| = |d2| = |d4| = 1, d3 = 0 */
    for (int i = 0; i < 4; i++)
        ck_assert(isfinite(gs[i]));
}
END_TEST

START_TEST(tv_large_matches_naive)
{
    /* the vectorised interior against a direct double evaluation */
    const int B = 2, C = 3, H = 37, W = 53;
    const size_t n = (size_t)B * C * H * W;
    float *x = fcalloc(n), *d = fcalloc(n), *dn = fcalloc(n);
    sfq_rng r;
    sfq_rng_seed(&r, 5);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sfq_rng_normal(&r);
    double s[4] = {0, 0, 0, 0};
    for (int p = 0; p < B * C; p++) {
        const float *q = x + (size_t)p * H * W;
#define X(i, j) ((double)q[(size_t)(i) * W + (j)])
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                if (j < W - 1)
                    s[0] += pow(X(i, j) - X(i, j + 1), 2);
                if (i < H - 1)
                    s[1] += pow(X(i, j) - X(i + 1, j), 2);
                if (i < H - 1 && j < W - 1) {
                    s[2] += pow(X(i + 1, j) - X(i, j + 1), 2);
                    s[3] += pow(X(i, j) - X(i + 1, j + 1), 2);
                }
            }
    }
    double nrm[4], TV = 0;
    for (int k = 0; k < 4; k++)
        TV += nrm[k] = sqrt(s[k]);
    for (int p = 0; p < B * C; p++) {
        const float *q = x + (size_t)p * H * W;
        float *g = dn + (size_t)p * H * W;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                double v;
                if (j < W - 1) {
                    v = (X(i, j) - X(i, j + 1)) / nrm[0];
                    g[i * W + j] += (float)v, g[i * W + j + 1] -= (float)v;
                }
                if (i < H - 1) {
                    v = (X(i, j) - X(i + 1, j)) / nrm[1];
                    g[i * W + j] += (float)v, g[(i + 1) * W + j] -= (float)v;
                }
                if (i < H - 1 && j < W - 1) {
                    v = (X(i + 1, j) - X(i, j + 1)) / nrm[2];
                    g[(i + 1) * W + j] += (float)v, g[i * W + j + 1] -= (float)v;
                    v = (X(i, j) - X(i + 1, j + 1)) / nrm[3];
                    g[i * W + j] += (float)v, g[(i + 1) * W + j + 1] -= (float)v;
                }
            }
#undef X
    }
    double tv;
    const double L = sfq_loss_tv(x, B, C, H, W, (float)(TV / 2), 1.0f, d, &tv);
    ck_assert(fabs(tv - TV) <= 1e-9 * TV);
    ck_assert(fabs(L - (TV - (float)(TV / 2))) <= 1e-9 * TV);
    check_grad(d, dn, n, "tv naive");
    free(x), free(d), free(dn);
}
END_TEST

/* ---- PSE ------------------------------------------------------------------ */

typedef struct {
    int B, N, H, hd, skip;
} pse_ctx;

static double pse_fn(void *vc, const float *x)
{
    pse_ctx *c = vc;
    return sfq_loss_pse(x, c->B, c->N, c->H, c->hd, c->skip, NULL);
}

/* Marks the tokens of the pair attaining the batch minimum of the cosine
 * similarity: moving them moves the KDE grid, which carries no gradient,
 * so finite differences there do not measure the gradient. */
static unsigned char *pse_grid_tokens(const float *ao, const pse_ctx *c)
{
    const int D = c->H * c->hd, M = c->N - c->skip;
    const size_t n = (size_t)c->B * c->N * D;
    unsigned char *skip = calloc(n, 1);
    double *f = calloc((size_t)M * c->hd, sizeof(double));
    double best = INFINITY;
    int bb = 0, bi = 0, bj = 0;
    for (int b = 0; b < c->B; b++) {
        for (int i = 0; i < M; i++) {
            double s = 0;
            for (int d = 0; d < c->hd; d++) {
                double v = 0;
                for (int h = 0; h < c->H; h++)
                    v += ao[((size_t)b * c->N + c->skip + i) * D + h * c->hd + d];
                f[i * c->hd + d] = v;
                s += v * v;
            }
            for (int d = 0; d < c->hd; d++)
                f[i * c->hd + d] /= sqrt(s);
        }
        for (int i = 0; i < M; i++)
            for (int j = i + 1; j < M; j++) {
                double g = 0;
                for (int d = 0; d < c->hd; d++)
                    g += f[i * c->hd + d] * f[j * c->hd + d];
                if (g < best)
                    best = g, bb = b, bi = i, bj = j;
            }
    }
    memset(skip + ((size_t)bb * c->N + c->skip + bi) * D, 1, (size_t)D);
    memset(skip + ((size_t)bb * c->N + c->skip + bj) * D, 1, (size_t)D);
    free(f);
    return skip;
}

static void pse_case(const char *prefix, int fd_count)
{
    tu_fixture f;
    tu_fixture_open(&f, "losses_pse.safetensors");
    size_t n;
    float *dims = fx_getf(&f, prefix, "dims", NULL);
    float *ao = fx_getf(&f, prefix, "ao", &n);
    float *loss = fx_getf(&f, prefix, "loss", NULL);
    float *dref = fx_getf(&f, prefix, "dao", NULL);
    pse_ctx c = {(int)dims[0], (int)dims[1], (int)dims[2], (int)dims[3], (int)dims[4]};
    float *d = fcalloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = 7.0f; /* written, not accumulated */
    const double L = sfq_loss_pse(ao, c.B, c.N, c.H, c.hd, c.skip, d);
    char what[64];
    snprintf(what, sizeof what, "pse %sloss", prefix);
    check_value(L, loss[0], what);
    snprintf(what, sizeof what, "pse %sgradient", prefix);
    check_grad(d, dref, n, what);
    /* value without a gradient buffer is the same */
    ck_assert(sfq_loss_pse(ao, c.B, c.N, c.H, c.hd, c.skip, NULL) == L);
    /* sfq_loss_pse is exactly the windows == 1 case */
    float *dw = fcalloc(n);
    ck_assert(sfq_loss_pse_windows(ao, c.B, 1, c.N, c.H, c.hd, c.skip, dw) == L);
    ck_assert(memcmp(dw, d, n * sizeof(float)) == 0);
    free(dw);
    unsigned char *skip = pse_grid_tokens(ao, &c);
    for (size_t i = 0; i < n; i++)
        if ((i / (size_t)(c.H * c.hd)) % (size_t)c.N < (size_t)c.skip)
            skip[i] = 1; /* prefix tokens: gradient 0, checked below */
    for (int b = 0; b < c.B; b++)
        for (int t = 0; t < c.skip; t++)
            for (int k = 0; k < c.H * c.hd; k++)
                ck_assert(d[((size_t)b * c.N + t) * c.H * c.hd + k] == 0.0f);
    snprintf(what, sizeof what, "pse %sfd", prefix);
    fd_check(pse_fn, &c, ao, n, d, fd_count, 1e-3f, 2e-3, skip, 31, what);
    free(skip), free(dims), free(ao), free(loss), free(dref), free(d);
    tu_fixture_close(&f);
}

START_TEST(pse_golden_and_fd)
{
    pse_case("a.", 30);
    pse_case("b.", 30);
    pse_case("c.", 15);
}
END_TEST

/* ---- PSE on windows (Swin) ----------------------------------------------- */

typedef struct {
    int B, windows, N, H, hd, skip;
} psew_ctx;

static double psew_fn(void *vc, const float *x)
{
    psew_ctx *c = vc;
    return sfq_loss_pse_windows(x, c->B, c->windows, c->N, c->H, c->hd, c->skip, NULL);
}

static void pse_windows_case(const char *prefix, int fd_count)
{
    tu_fixture f;
    tu_fixture_open(&f, "losses_pse_windows.safetensors");
    size_t n;
    float *dims = fx_getf(&f, prefix, "dims", NULL);
    float *ao = fx_getf(&f, prefix, "ao", &n);
    float *loss = fx_getf(&f, prefix, "loss", NULL);
    float *dref = fx_getf(&f, prefix, "dao", NULL);
    psew_ctx c = {(int)dims[0], (int)dims[1], (int)dims[2], (int)dims[3], (int)dims[4],
                  (int)dims[5]};
    const int D = c.H * c.hd;
    ck_assert(n == (size_t)c.B * c.windows * c.N * D);
    float *d = fcalloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = 7.0f; /* written, not accumulated */
    const double L = sfq_loss_pse_windows(ao, c.B, c.windows, c.N, c.H, c.hd, c.skip, d);
    char what[64];
    snprintf(what, sizeof what, "pse windows %sloss", prefix);
    check_value(L, loss[0], what);
    snprintf(what, sizeof what, "pse windows %sgradient", prefix);
    check_grad(d, dref, n, what);
    ck_assert(sfq_loss_pse_windows(ao, c.B, c.windows, c.N, c.H, c.hd, c.skip, NULL) == L);
    /* the layout is [B * windows][N][D] row groups: the batch-minimum pair
     * (which moves the grid) is found by the ViT helper over all windows */
    const pse_ctx g = {c.B * c.windows, c.N, c.H, c.hd, c.skip};
    unsigned char *skip = pse_grid_tokens(ao, &g);
    for (size_t i = 0; i < n; i++)
        if ((i / (size_t)D) % (size_t)c.N < (size_t)c.skip) {
            ck_assert(d[i] == 0.0f); /* every window's skipped tokens */
            skip[i] = 1;
        }
    snprintf(what, sizeof what, "pse windows %sfd", prefix);
    fd_check(psew_fn, &c, ao, n, d, fd_count, 1e-3f, 2e-3, skip, 37, what);
    free(skip), free(dims), free(ao), free(loss), free(dref), free(d);
    tu_fixture_close(&f);
}

START_TEST(pse_windows_golden_and_fd)
{
    pse_windows_case("a.", 30);
    pse_windows_case("b.", 30);
}
END_TEST

/* Every window of an image a copy of one ViT image: the pooled density is
 * the ViT one, so the loss is the same and each window gets 1/windows of
 * the ViT gradient. */
START_TEST(pse_windows_replicated)
{
    tu_fixture f;
    tu_fixture_open(&f, "losses_pse.safetensors");
    size_t n;
    float *dims = fx_getf(&f, "a.", "dims", NULL);
    float *ao = fx_getf(&f, "a.", "ao", &n);
    const int B = (int)dims[0], N = (int)dims[1], H = (int)dims[2], hd = (int)dims[3],
              skip = (int)dims[4], W = 3;
    const size_t img = n / B;
    float *aw = fcalloc(n * W), *d = fcalloc(n), *dw = fcalloc(n * W);
    for (int b = 0; b < B; b++)
        for (int w = 0; w < W; w++)
            memcpy(aw + ((size_t)b * W + w) * img, ao + (size_t)b * img, img * sizeof(float));
    const double L = sfq_loss_pse(ao, B, N, H, hd, skip, d);
    const double Lw = sfq_loss_pse_windows(aw, B, W, N, H, hd, skip, dw);
    ck_assert_msg(fabs(Lw - L) <= 1e-12 * fabs(L), "L %.17g, windows %.17g", L, Lw);
    const double m = tu_max_abs(d, n);
    for (int b = 0; b < B; b++)
        for (int w = 0; w < W; w++)
            for (size_t i = 0; i < img; i++) {
                const double got = (double)dw[((size_t)b * W + w) * img + i] * W;
                ck_assert_msg(fabs(got - d[(size_t)b * img + i]) <= 1e-6 * m,
                              "b %d w %d i %zu: %.9g vs %.9g", b, w, i, got,
                              (double)d[(size_t)b * img + i]);
            }
    /* empty shapes, and a failed allocation: NaN with dao zeroed */
    ck_assert(sfq_loss_pse_windows(aw, B, 0, N, H, hd, skip, NULL) == 0.0);
    ck_assert(sfq_loss_pse_windows(aw, B, W, 1, H, hd, 1, dw) == 0.0);
    for (size_t i = 0; i < (size_t)B * W * H * hd; i++)
        ck_assert(dw[i] == 0.0f);
    sfq_alloc_fail_countdown = 1;
    const double Ln = sfq_loss_pse_windows(aw, B, W, N, H, hd, skip, dw);
    sfq_alloc_fail_countdown = 0;
    ck_assert(isnan(Ln));
    for (size_t i = 0; i < n * W; i++)
        ck_assert(dw[i] == 0.0f);
    free(dims), free(ao), free(aw), free(d), free(dw);
    tu_fixture_close(&f);
}
END_TEST

START_TEST(pse_degenerate)
{
    const int B = 2, N = 9, H = 2, hd = 4, D = H * hd;
    float ao[2 * 9 * 8], d[2 * 9 * 8];
    /* all tokens identical: every similarity is 1, the grid collapses */
    for (int i = 0; i < B * N * D; i++)
        ao[i] = (float)((i % D) + 1) * 0.1f;
    double L = sfq_loss_pse(ao, B, N, H, hd, 1, d);
    ck_assert_msg(isfinite(L) && L == 0.0, "L = %g", L);
    for (int i = 0; i < B * N * D; i++)
        ck_assert(isfinite(d[i]) && d[i] == 0.0f);
    /* all zero: the 1e-8 norm clamp keeps it finite */
    memset(ao, 0, sizeof ao);
    L = sfq_loss_pse(ao, B, N, H, hd, 1, d);
    ck_assert(isfinite(L));
    for (int i = 0; i < B * N * D; i++)
        ck_assert(isfinite(d[i]));
    /* one patch token only, and none at all */
    L = sfq_loss_pse(ao, B, 2, H, hd, 1, d);
    ck_assert(isfinite(L) && L == 0.0);
    L = sfq_loss_pse(ao, B, 1, H, hd, 1, d);
    ck_assert(L == 0.0);
    for (int i = 0; i < B * 1 * D; i++)
        ck_assert(d[i] == 0.0f);
    /* a failed allocation gives NaN, never a crash */
    for (int i = 0; i < B * N * D; i++)
        ao[i] = (float)sin(i * 0.7);
    for (int k = 1; k <= 5; k++) {
        sfq_alloc_fail_countdown = k;
        L = sfq_loss_pse(ao, B, N, H, hd, 1, d);
        sfq_alloc_fail_countdown = 0;
        ck_assert(isnan(L) || isfinite(L));
    }
    sfq_alloc_fail_countdown = 1;
    L = sfq_loss_pse(ao, B, N, H, hd, 1, d);
    sfq_alloc_fail_countdown = 0;
    ck_assert(isnan(L));
    for (int i = 0; i < B * N * D; i++)
        ck_assert(d[i] == 0.0f);
}
END_TEST

/* ---- crop-resize -------------------------------------------------------- */

START_TEST(resize_golden)
{
    tu_fixture f;
    tu_fixture_open(&f, "losses_resize.safetensors");
    const char *imgs[2] = {"sq.", "rect."};
    const int dimsC[2] = {3, 2}, dimsH[2] = {16, 12}, dimsW[2] = {16, 20};
    for (int m = 0; m < 2; m++) {
        size_t n, nr;
        const int C = dimsC[m], H = dimsH[m], W = dimsW[m];
        float *src = fx_getf(&f, imgs[m], "src", &n);
        float *reg = fx_getf(&f, imgs[m], "regions", &nr);
        ck_assert_uint_eq(n, (size_t)C * H * W);
        float *dst = fcalloc(n), *ds = fcalloc(n);
        for (size_t r = 0; r < nr / 4; r++) {
            const int y0 = (int)reg[4 * r], x0 = (int)reg[4 * r + 1];
            const int h = (int)reg[4 * r + 2], w = (int)reg[4 * r + 3];
            char key[64], what[96];
            snprintf(key, sizeof key, "%s%zu.", imgs[m], r);
            float *want = fx_getf(&f, key, "dst", NULL);
            float *g = fx_getf(&f, key, "g", NULL);
            float *dwant = fx_getf(&f, key, "dsrc", NULL);
            sfq_crop_resize(src, C, H, W, y0, x0, h, w, dst);
            snprintf(what, sizeof what, "resize %s (%d,%d,%d,%d)", key, y0, x0, h, w);
            check_grad(dst, want, n, what);
            /* the adjoint accumulates, and only inside the region */
            for (size_t i = 0; i < n; i++)
                ds[i] = 1.5f;
            sfq_crop_resize_adjoint(g, C, H, W, y0, x0, h, w, ds);
            for (int c = 0; c < C; c++)
                for (int i = 0; i < H; i++)
                    for (int j = 0; j < W; j++) {
                        const size_t k = ((size_t)c * H + i) * W + j;
                        const int inside = i >= y0 && i < y0 + h && j >= x0 && j < x0 + w;
                        if (!inside)
                            ck_assert(ds[k] == 1.5f && dwant[k] == 0.0f);
                        ds[k] -= 1.5f;
                    }
            snprintf(what, sizeof what, "resize adjoint %s (%d,%d,%d,%d)", key, y0, x0, h, w);
            check_grad(ds, dwant, n, what);
            free(want), free(g), free(dwant);
        }
        free(src), free(reg), free(dst), free(ds);
    }
    tu_fixture_close(&f);
}
END_TEST

/* Direct double evaluation of the PyTorch rule, one output pixel. */
static double naive_resize(const float *src, int H, int W, int y0, int x0, int h, int w, int i, int j)
{
    double sy = fmax(0.0, (i + 0.5) * h / H - 0.5), sx = fmax(0.0, (j + 0.5) * w / W - 0.5);
    int a0 = (int)sy, b0 = (int)sx;
    int a1 = a0 < h - 1 ? a0 + 1 : a0, b1 = b0 < w - 1 ? b0 + 1 : b0;
    double ly = sy - a0, lx = sx - b0;
#define S(a, b) ((double)src[(size_t)(y0 + (a)) * W + x0 + (b)])
    return (1 - ly) * ((1 - lx) * S(a0, b0) + lx * S(a0, b1)) +
           ly * ((1 - lx) * S(a1, b0) + lx * S(a1, b1));
#undef S
}

START_TEST(resize_adjoint_identity)
{
    /* <R x, y> = <x, R^T y> on random data, incl. widths beyond one column
     * chunk; and the forward against the naive rule */
    const struct {
        int C, H, W, y0, x0, h, w;
    } cases[] = {
        {3, 16, 16, 2, 3, 8, 8},      {1, 7, 9, 0, 0, 7, 9},       {2, 20, 300, 3, 10, 15, 290},
        {2, 31, 520, 0, 1, 31, 517},  {1, 24, 600, 5, 200, 1, 1},  {3, 56, 56, 10, 20, 30, 17},
        {1, 300, 20, 1, 1, 299, 19},  {2, 9, 257, 0, 0, 9, 257},
    };
    sfq_rng r;
    sfq_rng_seed(&r, 77);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int C = cases[t].C, H = cases[t].H, W = cases[t].W;
        const size_t n = (size_t)C * H * W;
        float *x = fcalloc(n), *y = fcalloc(n), *Rx = fcalloc(n), *Ry = fcalloc(n);
        for (size_t i = 0; i < n; i++) {
            x[i] = (float)sfq_rng_normal(&r);
            y[i] = (float)sfq_rng_normal(&r);
        }
        sfq_crop_resize(x, C, H, W, cases[t].y0, cases[t].x0, cases[t].h, cases[t].w, Rx);
        sfq_crop_resize_adjoint(y, C, H, W, cases[t].y0, cases[t].x0, cases[t].h, cases[t].w, Ry);
        double lhs = 0, rhs = 0, scale = 0;
        for (size_t i = 0; i < n; i++) {
            lhs += (double)Rx[i] * y[i];
            rhs += (double)x[i] * Ry[i];
            scale += fabs((double)Rx[i] * y[i]);
        }
        ck_assert_msg(fabs(lhs - rhs) <= 1e-5 * scale, "case %zu: <Rx,y> %.9g, <x,R'y> %.9g", t,
                      lhs, rhs);
        double err = 0;
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    const double v = naive_resize(x + (size_t)c * H * W, H, W, cases[t].y0,
                                                  cases[t].x0, cases[t].h, cases[t].w, i, j);
                    err = fmax(err, fabs(v - Rx[((size_t)c * H + i) * W + j]));
                }
        ck_assert_msg(err < 1e-5, "case %zu: forward differs from the rule by %g", t, err);
        free(x), free(y), free(Rx), free(Ry);
    }
}
END_TEST

START_TEST(resize_invalid_region_is_noop)
{
    float src[2 * 4 * 4], dst[2 * 4 * 4];
    for (int i = 0; i < 32; i++)
        src[i] = (float)i, dst[i] = -1.0f;
    sfq_crop_resize(src, 2, 4, 4, 1, 1, 4, 2, dst); /* exceeds the image */
    sfq_crop_resize(src, 2, 4, 4, -1, 0, 2, 2, dst);
    sfq_crop_resize(src, 2, 4, 4, 0, 0, 0, 2, dst);
    for (int i = 0; i < 32; i++)
        ck_assert(dst[i] == -1.0f);
    sfq_crop_resize_adjoint(src, 2, 4, 4, 3, 3, 2, 2, dst);
    for (int i = 0; i < 32; i++)
        ck_assert(dst[i] == -1.0f);
    /* the full region is the identity */
    sfq_crop_resize(src, 2, 4, 4, 0, 0, 4, 4, dst);
    ck_assert(memcmp(src, dst, sizeof src) == 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("losses");
    TCase *tc = tcase_create("apa_ce");
    tcase_add_test(tc, apa_golden_and_fd);
    tcase_add_test(tc, apa_value_only_and_identity);
    tcase_add_test(tc, head_align_golden_and_fd);
    tcase_add_test(tc, head_align_identity_and_scale);
    tcase_add_test(tc, ce_golden_and_fd);
    tcase_add_test(tc, ce_large_logits_stable);
    tcase_add_test(tc, soft_target_rows);
    suite_add_tcase(s, tc);
    tc = tcase_create("tv");
    tcase_add_test(tc, tv_golden_and_fd);
    tcase_add_test(tc, tv_at_tau_and_degenerate);
    tcase_add_test(tc, tv_large_matches_naive);
    suite_add_tcase(s, tc);
    tc = tcase_create("pse");
    tcase_add_test(tc, pse_golden_and_fd);
    tcase_add_test(tc, pse_degenerate);
    tcase_add_test(tc, pse_windows_golden_and_fd);
    tcase_add_test(tc, pse_windows_replicated);
    suite_add_tcase(s, tc);
    tc = tcase_create("resize");
    tcase_add_test(tc, resize_golden);
    tcase_add_test(tc, resize_adjoint_identity);
    tcase_add_test(tc, resize_invalid_region_is_noop);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
