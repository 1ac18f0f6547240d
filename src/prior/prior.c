/* prior.c - random attention priors for Attention Priors Alignment.
 *
 * The paper says only that the priors are "randomly generated structure
 * attention priors" drawn from a Gaussian mixture, with K = 5 the best
 * setting (research/paper.md section 2). The rest is our choice:
 *
 * Grid. A prior lives on the grid_h x grid_w patch grid; cell (i, j) (row i,
 * column j, raster order) sits at its centre, y = i + 0.5, x = j + 0.5, in
 * units of cells.
 *
 * One prior, drawn with the handle's sfq_rng (u = sfq_rng_uniform, in [0, 1)),
 * in this order:
 *   1. k = 1 + floor(u * K), uniform on {1..K} (K = max_components);
 *   2. for each component c = 0..k-1, four draws:
 *        centre row     cy = u * grid_h           (uniform over the grid)
 *        centre column  cx = u * grid_w
 *        row spread     sy = (smin + u * (smax - smin)) * grid_h
 *        column spread  sx = (smin + u * (smax - smin)) * grid_w
 *      i.e. axis-aligned (no rotation), the two spreads independent, each a
 *      fraction U(scale_min, scale_max) of its own grid side;
 *   3. k - 1 more draws, sorted; the weights are the k gaps they cut [0, 1]
 *      into (the spacings of uniform order statistics), which is exactly a
 *      symmetric Dirichlet(1) without needing a logarithm.
 * The draw sequence does not depend on the kind, so GMM and LAPLACE priors of
 * the same seed share their centres, spreads and weights.
 *
 * Components are separable products of two 1-D kernels:
 *   GMM      g(i, j) = exp(-(yi - cy)^2 / (2 sy^2)) * exp(-(xj - cx)^2 / (2 sx^2))
 *            (an axis-aligned Gaussian; the spread is the standard deviation)
 *   LAPLACE  g(i, j) = exp(-|yi - cy| / sy) * exp(-|xj - cx| / sx)
 *            (L1 distance: the product of two 1-D Laplace densities; the
 *            spread is the Laplace scale b, so the std is sqrt(2) b per axis)
 * Each component is normalised to mass 1 over the grid (each 1-D factor is
 * normalised over its axis), so its weight is exactly its share of the
 * prior's mass even when it is centred near a border. The prior is
 * sum_c w_c g_c, accumulated in double, divided by its total and rounded to
 * float: non-negative and summing to 1 within float rounding.
 *
 * Underflow. Each 1-D factor is computed as exp(-(q_i - min_i q_i)), so the
 * cell nearest the centre always gets factor 1 before normalisation: however
 * small the spread, a component never vanishes, and in the limit its whole
 * mass falls on the nearest cell (the nearest-cell fallback).
 *
 * Reproducibility. Only sfq_rng_uniform (exact integer-to-double) and IEEE
 * double +, -, *, /, floor and fabs are used, all exactly rounded; the
 * exponential is our own (Cody-Waite reduction and a fixed polynomial)
 * rather than libm's, whose last bit differs between C libraries. So the
 * same seed gives the same bits on every platform that evaluates double in
 * double (FLT_EVAL_METHOD 0, i.e. not x87) and does not fuse multiply-adds:
 * GCC does not contract in ISO C mode (-std=c11, this project's default) and
 * the pragma below turns clang's contraction off. Successive calls to
 * sardfq_prior_sample continue the same stream, so sampling 3 then 5 priors
 * gives the same 8 priors as sampling 8 at once.
 */
#include "core.h"
#include "rng.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define PRIOR_MAX_SIDE 4096
#define PRIOR_MAX_CELLS ((int64_t)1 << 20)
#define PRIOR_MAX_K 64
#define PRIOR_MAX_SCALE 10.0f

struct sardfq_prior {
    int gh, gw;
    sardfq_prior_params p;
    sfq_rng rng;
    double *acc;    /* gh * gw: the mixture being built */
    double *ay;     /* gh: row factor of the current component */
    double *ax;     /* gw: column factor */
};

/* ---- deterministic exp(-q) for q >= 0 ----------------------------------- */

/* exp(-q) to about 1 ulp, using only exactly rounded operations. Values
 * below exp(-700) (about 1e-304) are returned as 0. */
static double exp_neg(double q)
{
    static const double inv_ln2 = 1.44269504088896338700e+00;
    static const double ln2_hi = 6.93147180369123816490e-01; /* 32 bits: n * ln2_hi exact */
    static const double ln2_lo = 1.90821492927058770002e-10;
    if (!(q <= 700.0))
        return 0.0;
    if (q <= 0.0)
        return 1.0;
    double x = -q;
    double n = floor(x * inv_ln2 + 0.5); /* -1010 <= n <= 0 */
    double r = (x - n * ln2_hi) - n * ln2_lo; /* |r| <= ln2 / 2 + tiny */
    /* Taylor series to r^13 / 13!: truncation < 2e-16 for |r| <= 0.35 */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* 2^n from its bits: n >= -1010 keeps it a normal number */
    uint64_t bits = (uint64_t)(int64_t)(n + 1023.0) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* ---- parameters ---------------------------------------------------------- */

SARDFQ_API void sardfq_prior_default_params(sardfq_prior_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->kind = SARDFQ_PRIOR_GMM;
    p->max_components = 5;
    p->scale_min = 0.08f;
    p->scale_max = 0.35f;
    p->seed = 0;
}

static sardfq_status read_params(const sardfq_prior_params *in, sardfq_prior_params *out)
{
    sardfq_prior_default_params(out);
    sardfq_status s = sfq_read_params(in, out, sizeof *out,
                                      offsetof(sardfq_prior_params, seed) + sizeof(uint64_t),
                                      "sardfq_prior_params");
    if (s)
        return s;
    if (out->kind != SARDFQ_PRIOR_GMM && out->kind != SARDFQ_PRIOR_LAPLACE)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_prior_params.kind %d is unknown (SARDFQ_PRIOR_GMM = 0 or "
                        "SARDFQ_PRIOR_LAPLACE = 1)",
                        out->kind);
    if (out->max_components < 1 || out->max_components > PRIOR_MAX_K)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_prior_params.max_components must be in 1..%d (got %d)",
                        PRIOR_MAX_K, out->max_components);
    /* written so that NaN fails every test */
    if (!(out->scale_min > 0.0f) || !(out->scale_max >= out->scale_min) ||
        !(out->scale_max <= PRIOR_MAX_SCALE))
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_prior_params scales must satisfy 0 < scale_min <= scale_max "
                        "<= %g (got %g and %g)",
                        (double)PRIOR_MAX_SCALE, (double)out->scale_min,
                        (double)out->scale_max);
    return SARDFQ_OK;
}

/* ---- handle -------------------------------------------------------------- */

SARDFQ_API sardfq_status sardfq_prior_create(int grid_h, int grid_w, const sardfq_prior_params *p,
                                             sardfq_prior **out)
{
    if (!out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_prior_create: out is NULL");
    if (grid_h < 1 || grid_h > PRIOR_MAX_SIDE || grid_w < 1 || grid_w > PRIOR_MAX_SIDE)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_prior_create: grid %d x %d: each side must be in 1..%d", grid_h,
                        grid_w, PRIOR_MAX_SIDE);
    if ((int64_t)grid_h * grid_w > PRIOR_MAX_CELLS)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_prior_create: grid %d x %d has more than %lld cells", grid_h,
                        grid_w, (long long)PRIOR_MAX_CELLS);
    sardfq_prior_params params;
    sardfq_status s = read_params(p, &params);
    if (s)
        return s;
    sardfq_prior *pr = sfq_alloc_zero(sizeof *pr);
    if (!pr)
        return sfq_fail(SARDFQ_E_NOMEM, "sardfq_prior_create: out of memory");
    pr->gh = grid_h;
    pr->gw = grid_w;
    pr->p = params;
    sfq_rng_seed(&pr->rng, params.seed);
    pr->acc = sfq_alloc_array((size_t)grid_h * (size_t)grid_w, sizeof(double));
    pr->ay = sfq_alloc_array((size_t)grid_h, sizeof(double));
    pr->ax = sfq_alloc_array((size_t)grid_w, sizeof(double));
    if (!pr->acc || !pr->ay || !pr->ax) {
        sardfq_prior_free(pr);
        return sfq_fail(SARDFQ_E_NOMEM, "sardfq_prior_create: out of memory for a %d x %d grid",
                        grid_h, grid_w);
    }
    *out = pr;
    return SARDFQ_OK;
}

SARDFQ_API void sardfq_prior_free(sardfq_prior *p)
{
    if (!p)
        return;
    sfq_free(p->acc);
    sfq_free(p->ay);
    sfq_free(p->ax);
    sfq_free(p);
}

/* ---- sampling ------------------------------------------------------------ */

/* One normalised 1-D factor: a[i] proportional to exp(-q_i), with
 * q_i = (d_i / s)^2 / 2 (Gaussian) or |d_i| / s (Laplace), d_i = i + 0.5 - c. */
static void axis_factor(double *a, int len, double c, double s, int kind)
{
    double qmin = 0.0;
    for (int i = 0; i < len; i++) {
        double t = ((double)i + 0.5 - c) / s;
        double q = kind == SARDFQ_PRIOR_GMM ? 0.5 * (t * t) : fabs(t);
        a[i] = q;
        if (i == 0 || q < qmin)
            qmin = q;
    }
    double sum = 0.0;
    for (int i = 0; i < len; i++) {
        a[i] = exp_neg(a[i] - qmin);
        sum += a[i];
    }
    /* sum >= 1: the minimising cell contributes exp(0) = 1 */
    for (int i = 0; i < len; i++)
        a[i] /= sum;
}

static void draw_one(sardfq_prior *pr, float *out)
{
    sfq_rng *r = &pr->rng;
    const int gh = pr->gh, gw = pr->gw, K = pr->p.max_components, kind = pr->p.kind;
    const double smin = pr->p.scale_min, srange = (double)pr->p.scale_max - smin;
    const size_t cells = (size_t)gh * (size_t)gw;
    double cy[PRIOR_MAX_K], cx[PRIOR_MAX_K], sy[PRIOR_MAX_K], sx[PRIOR_MAX_K];
    double cut[PRIOR_MAX_K], w[PRIOR_MAX_K];

    int k = 1 + (int)(sfq_rng_uniform(r) * K);
    if (k > K)
        k = K;
    for (int c = 0; c < k; c++) {
        cy[c] = sfq_rng_uniform(r) * gh;
        cx[c] = sfq_rng_uniform(r) * gw;
        sy[c] = (smin + sfq_rng_uniform(r) * srange) * gh;
        sx[c] = (smin + sfq_rng_uniform(r) * srange) * gw;
    }
    /* Dirichlet(1) weights: spacings of k - 1 sorted uniforms */
    for (int c = 0; c < k - 1; c++) {
        double u = sfq_rng_uniform(r);
        int i = c;
        while (i > 0 && cut[i - 1] > u) {
            cut[i] = cut[i - 1];
            i--;
        }
        cut[i] = u;
    }
    double prev = 0.0;
    for (int c = 0; c < k - 1; c++) {
        w[c] = cut[c] - prev;
        prev = cut[c];
    }
    w[k - 1] = 1.0 - prev;

    double *acc = pr->acc;
    for (size_t i = 0; i < cells; i++)
        acc[i] = 0.0;
    for (int c = 0; c < k; c++) {
        axis_factor(pr->ay, gh, cy[c], sy[c], kind);
        axis_factor(pr->ax, gw, cx[c], sx[c], kind);
        for (int i = 0; i < gh; i++) {
            const double wy = w[c] * pr->ay[i];
            double *row = acc + (size_t)i * (size_t)gw;
            for (int j = 0; j < gw; j++)
                row[j] += wy * pr->ax[j];
        }
    }
    double total = 0.0;
    for (size_t i = 0; i < cells; i++)
        total += acc[i];
    if (!(total > 0.0)) {
        /* unreachable (every component has mass 1 and the weights sum to 1);
         * kept so that the output is a distribution whatever happens */
        int i = (int)cy[0], j = (int)cx[0];
        for (size_t t = 0; t < cells; t++)
            out[t] = 0.0f;
        out[(size_t)(i < gh ? i : gh - 1) * (size_t)gw + (size_t)(j < gw ? j : gw - 1)] = 1.0f;
        return;
    }
    for (size_t i = 0; i < cells; i++)
        out[i] = (float)(acc[i] / total);
}

SARDFQ_API sardfq_status sardfq_prior_sample(sardfq_prior *p, int count, float *out)
{
    if (!p || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_prior_sample: %s is NULL",
                        !p ? "prior" : "out");
    if (count <= 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_prior_sample: count must be > 0 (got %d)",
                        count);
    const size_t cells = (size_t)p->gh * (size_t)p->gw;
    size_t total;
    if (!sfq_mul_size(cells, (size_t)count, &total) || !sfq_mul_size(total, sizeof(float), &total))
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_prior_sample: %d priors of %zu cells overflow the address space",
                        count, cells);
    for (int n = 0; n < count; n++)
        draw_one(p, out + (size_t)n * cells);
    return SARDFQ_OK;
}
