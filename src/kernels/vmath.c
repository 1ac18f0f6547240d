/* vmath.c - element-wise kernels (see vmath.h). */
#include "vmath.h"

#include "core.h"

#include "threads.h"

#include <math.h>
#include <stdint.h>
#include <string.h>


static inline float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* exp: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial
 * (Cephes expf coefficients), 2^n by building the exponent bits. */
static inline float exp_inline(float x)
{
    const float hi = 88.3762626647949f, lo = -87.3365478515625f;
    /* written so that NaN becomes hi here (no NaN reaches the int
     * conversion below) and is returned as NaN at the end */
    float xc = x < hi ? x : hi;
    xc = xc > lo ? xc : lo;
    float n = xc * 1.44269504088896341f + 12582912.0f; /* round to nearest */
    n -= 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = (int32_t)n + 127;
    float scale = bits_to_float((uint32_t)e << 23);
    float y = p * scale;
    y = x == x ? y : x;
    return x < lo ? 0.0f : y;
}

/* Phi(x) = 0.5 (1 + erf(z)), z = x / sqrt(2). For |z| < 0.5 the Taylor
 * series of erf (8 terms, error < 1e-9); otherwise erfc(|z|) from the
 * Chebyshev fit of Numerical Recipes (relative error < 1.2e-7), so the
 * lower tail is computed as a small number rather than 1 - (almost 1). */
static inline float cdf_inline(float x)
{
    float z = x * 0.70710678118654752f;
    float a = z < 0 ? -z : z;
    float s = z * z;
    float q = -1.4925650358406251e-05f;
    q = q * s + 1.2055332981789664e-04f;
    q = q * s - 8.5483270234508528e-04f;
    q = q * s + 5.2239776254421878e-03f;
    q = q * s - 2.6866170645131252e-02f;
    q = q * s + 1.1283791670955126e-01f;
    q = q * s - 3.7612638903183754e-01f;
    q = q * s + 1.1283791670955126f;
    float small = 0.5f + 0.5f * z * q;
    float t = 1.0f / (1.0f + 0.5f * a);
    float c = 0.17087277f;
    c = c * t - 0.82215223f;
    c = c * t + 1.48851587f;
    c = c * t - 1.13520398f;
    c = c * t + 0.27886807f;
    c = c * t - 0.18628806f;
    c = c * t + 0.09678418f;
    c = c * t + 0.37409196f;
    c = c * t + 1.00002368f;
    c = c * t - 1.26551223f;
    /* exp(c - z^2) with z^2 = hi + lo exactly (fma) and c - hi = u + err
     * exactly (two-sum): the argument reaches ~-50 where one float rounding
     * would cost ~1e-6 relative; exp(u) (1 + err - lo) keeps ~1e-7. */
    float hi = x * x, lo = fmaf(x, x, -hi); /* z^2 = x^2 / 2, exact halving */
    hi *= 0.5f;
    lo *= 0.5f;
    float u = c - hi, bb = u - c;
    float err = (c - (u - bb)) + (-hi - bb);
    float half_erfc = 0.5f * t * exp_inline(u) * (1.0f + (err - lo));
    float large = z > 0 ? 1.0f - half_erfc : half_erfc;
    return a < 0.5f ? small : large;
}

float sfq_expf(float x) { return exp_inline(x); }
float sfq_gauss_cdf(float x) { return cdf_inline(x); }

/* ---- LayerNorm -------------------------------------------------------- */

typedef struct {
    const float *x, *w, *b, *dy, *xhat_in, *rstd_in;
    float *out, *xhat, *rstd, *dx;
    int D;
    float eps;
} ln_ctx;

/* One row's LayerNorm from its mean and 1/std. */
static inline void ln_row_out(const ln_ctx *c, int64_t r, double mean, double var)
{
    const int D = c->D;
    const float *x = c->x + r * D;
    const float rs = (float)(1.0 / sqrt(var / D + c->eps));
    const float mf = (float)mean;
    float *out = c->out + r * D;
    float *xh = c->xhat ? c->xhat + r * D : NULL;
    for (int i = 0; i < D; i++) {
        float h = (x[i] - mf) * rs;
        if (xh)
            xh[i] = h;
        out[i] = h * c->w[i] + c->b[i];
    }
    if (c->rstd)
        c->rstd[r] = rs;
}

/* Rows in groups of LN_LANES: each row's sums are still taken in index
 * order (the same doubles, bit for bit, as one row at a time), but the
 * group's independent sums interleave, so the adds are not serialised on
 * one dependency chain. */
#define LN_LANES 8

/* Rows r .. r + kk - 1 (kk <= LN_LANES). */
static inline __attribute__((always_inline)) void ln_rows(const ln_ctx *c, int64_t r, int kk)
{
    const int D = c->D;
    const float *x = c->x + r * D;
    double sum[LN_LANES] = {0}, mean[LN_LANES], var[LN_LANES] = {0};
    for (int i = 0; i < D; i++)
        for (int k = 0; k < kk; k++)
            sum[k] += x[(size_t)k * D + i];
    for (int k = 0; k < kk; k++)
        mean[k] = sum[k] / D;
    for (int i = 0; i < D; i++)
        for (int k = 0; k < kk; k++) {
            double d = x[(size_t)k * D + i] - mean[k];
            var[k] += d * d;
        }
    for (int k = 0; k < kk; k++)
        ln_row_out(c, r + k, mean[k], var[k]);
}

SFQ_CLONES static void ln_fwd_range(void *vc, int64_t r0, int64_t r1)
{
    const ln_ctx *c = vc;
    int64_t r = r0;
    for (; r + LN_LANES <= r1; r += LN_LANES)
        ln_rows(c, r, LN_LANES);
    if (r < r1)
        ln_rows(c, r, (int)(r1 - r));
}

void sfq_layernorm_fwd(const float *x, const float *w, const float *b, float *out, float *xhat,
                       float *rstd, int64_t rows, int D, float eps, int nthreads)
{
    ln_ctx c = {.x = x, .w = w, .b = b, .out = out, .xhat = xhat, .rstd = rstd, .D = D, .eps = eps};
    sfq_parallel_for(nthreads, rows, ln_fwd_range, &c);
}

SFQ_CLONES static void ln_bwd_range(void *vc, int64_t r0, int64_t r1)
{
    const ln_ctx *c = vc;
    const int D = c->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *dy = c->dy + r * D, *xh = c->xhat_in + r * D;
        float sg = 0, sgx = 0;
        for (int i = 0; i < D; i++) {
            float g = dy[i] * c->w[i];
            sg += g;
            sgx += g * xh[i];
        }
        const float mg = sg / D, mgx = sgx / D, rs = c->rstd_in[r];
        float *dx = c->dx + r * D;
        for (int i = 0; i < D; i++)
            dx[i] += rs * (dy[i] * c->w[i] - mg - xh[i] * mgx);
    }
}

void sfq_layernorm_bwd(const float *dy, const float *xhat, const float *rstd, const float *w,
                       float *dx, int64_t rows, int D, int nthreads)
{
    ln_ctx c = {.dy = dy, .xhat_in = xhat, .rstd_in = rstd, .w = w, .dx = dx, .D = D};
    sfq_parallel_for(nthreads, rows, ln_bwd_range, &c);
}

/* ---- GELU ------------------------------------------------------------- */

typedef struct {
    const float *x;
    float *out;
} ew_ctx;

#define EW_CHUNK 4096

SFQ_CLONES static void gelu_fwd_range(void *vc, int64_t c0, int64_t c1)
{
    const ew_ctx *c = vc;
    for (int64_t i = c0; i < c1; i++) {
        float x = c->x[i];
        c->out[i] = x * cdf_inline(x);
    }
}

void sfq_gelu_fwd(const float *x, float *out, int64_t n, int nthreads)
{
    ew_ctx c = {x, out};
    if (n < EW_CHUNK)
        nthreads = 1;
    sfq_parallel_for(nthreads, n, gelu_fwd_range, &c);
}

SFQ_CLONES static void gelu_bwd_range(void *vc, int64_t c0, int64_t c1)
{
    const ew_ctx *c = vc;
    /* d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi) */
    for (int64_t i = c0; i < c1; i++) {
        float x = c->x[i];
        float hi = x * x, lo = fmaf(x, x, -hi); /* x^2 = hi + lo exactly */
        float pdf = 0.39894228040143268f * exp_inline(-0.5f * hi) * (1.0f - 0.5f * lo);
        c->out[i] *= cdf_inline(x) + x * pdf;
    }
}

void sfq_gelu_bwd(const float *pre, float *d, int64_t n, int nthreads)
{
    ew_ctx c = {pre, d};
    if (n < EW_CHUNK)
        nthreads = 1;
    sfq_parallel_for(nthreads, n, gelu_bwd_range, &c);
}

/* ---- softmax ---------------------------------------------------------- */

typedef struct {
    const float *p;
    float *x;
    int cols;
} sm_ctx;

/* Softmax rows in groups of SM_LANES. The maximum is taken over 16
 * interleaved partial maxima (the same value in any order, NaN aside,
 * where the row's output is NaN either way); exp is element-wise; each
 * row's sum is still added in index order (bit for bit the sum of one row
 * at a time) while the group's sums interleave, off one dependency chain. */
#define SM_LANES 8

static inline float row_max(const float *x, int n)
{
    float m[16];
    int i = 0;
    if (n >= 16) {
        for (int l = 0; l < 16; l++)
            m[l] = x[l];
        for (i = 16; i + 16 <= n; i += 16)
            for (int l = 0; l < 16; l++)
                m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
    } else {
        m[0] = x[0];
        for (int l = 1; l < 16; l++)
            m[l] = x[0];
        i = 1;
    }
    for (; i < n; i++)
        m[0] = x[i] > m[0] ? x[i] : m[0];
    float mx = m[0];
    for (int l = 1; l < 16; l++)
        mx = m[l] > mx ? m[l] : mx;
    return mx;
}

static inline void row_exp(float *x, int n, float mx)
{
    for (int i = 0; i < n; i++)
        x[i] = exp_inline(x[i] - mx);
}

static inline void row_scale(float *x, int n, float sum)
{
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

/* Rows r .. r + kk - 1 (kk <= SM_LANES). */
static inline __attribute__((always_inline)) void softmax_rows(const sm_ctx *c, int64_t r, int kk)
{
    const int n = c->cols;
    float *x = c->x + r * n;
    float sum[SM_LANES] = {0};
    for (int k = 0; k < kk; k++)
        row_exp(x + (size_t)k * n, n, row_max(x + (size_t)k * n, n));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < kk; k++)
            sum[k] += x[(size_t)k * n + i];
    for (int k = 0; k < kk; k++)
        row_scale(x + (size_t)k * n, n, sum[k]);
}

SFQ_CLONES static void softmax_fwd_range(void *vc, int64_t r0, int64_t r1)
{
    const sm_ctx *c = vc;
    int64_t r = r0;
    for (; r + SM_LANES <= r1; r += SM_LANES)
        softmax_rows(c, r, SM_LANES);
    if (r < r1)
        softmax_rows(c, r, (int)(r1 - r));
}

void sfq_softmax_fwd(float *x, int64_t rows, int cols, int nthreads)
{
    sm_ctx c = {.x = x, .cols = cols};
    sfq_parallel_for(nthreads, rows, softmax_fwd_range, &c);
}

SFQ_CLONES static void softmax_bwd_range(void *vc, int64_t r0, int64_t r1)
{
    const sm_ctx *c = vc;
    const int n = c->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *p = c->p + r * n;
        float *d = c->x + r * n;
        float dot = 0;
        for (int i = 0; i < n; i++)
            dot += p[i] * d[i];
        for (int i = 0; i < n; i++)
            d[i] = p[i] * (d[i] - dot);
    }
}

void sfq_softmax_bwd(const float *p, float *dp, int64_t rows, int cols, int nthreads)
{
    sm_ctx c = {.p = p, .x = dp, .cols = cols};
    sfq_parallel_for(nthreads, rows, softmax_bwd_range, &c);
}

/* ---- bias ------------------------------------------------------------- */

typedef struct {
    const float *b;
    float *y;
    int cols;
    int add;
} bias_ctx;

SFQ_CLONES static void bias_range(void *vc, int64_t r0, int64_t r1)
{
    const bias_ctx *c = vc;
    for (int64_t r = r0; r < r1; r++) {
        float *y = c->y + r * c->cols;
        if (c->add)
            for (int i = 0; i < c->cols; i++)
                y[i] += c->b[i];
        else
            memcpy(y, c->b, sizeof(float) * (size_t)c->cols);
    }
}

void sfq_add_bias(float *y, const float *b, int64_t rows, int cols, int nthreads)
{
    bias_ctx c = {b, y, cols, 1};
    if (rows * cols < EW_CHUNK)
        nthreads = 1;
    sfq_parallel_for(nthreads, rows, bias_range, &c);
}

void sfq_fill_rows(float *y, const float *b, int64_t rows, int cols, int nthreads)
{
    bias_ctx c = {b, y, cols, 0};
    if (rows * cols < EW_CHUNK)
        nthreads = 1;
    sfq_parallel_for(nthreads, rows, bias_range, &c);
}
