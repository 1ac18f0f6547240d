/* loss_pse.c - PSAQ-ViT's patch-similarity entropy (see losses.h).
 *
 * Per window w of image b (windows == 1: the ViT case): F = mean over
 * heads of ao[b, w, skip:, :] (M x hd), fhat_i = f_i / max(|f_i|, 1e-8),
 * Gamma_w = Fhat Fhat^T (torch.cosine_similarity). The grid x_0..x_9 =
 * linspace(min Gamma, max Gamma) over the batch (all windows),
 *   p_k = c / (nW M^2) sum_{w,i,j} exp(-(x_k - Gamma_w,ij)^2 / (2 h^2)),
 *   c = 1 / sqrt(2 pi h^2), h = 0.01,
 *   q_k = p_k + 1e-4, H_b = sum_k w_k (-q_k log q_k) (trapezoid weights w),
 *   L = -(1/B) sum_b H_b.
 * Backward (analytic): dL/dp_k = w_k (log q_k + 1) / B;
 *   dL/dGamma_w,ij = sum_k dL/dp_k c / (nW M^2 h) e_k u_k,
 *   u_k = (x_k - Gamma_w,ij) / h;
 *   dL/dFhat = S Fhat with S = 2 dL/dGamma_w (Gamma_w is symmetric);
 *   dL/df_i = (g_i - (g_i . fhat_i) fhat_i) / |f_i|  (g_i / 1e-8 where the
 *   norm is clamped, the clamp being treated as a constant);
 *   dao[b, w, skip + i, h*hd + d] = dL/df_i[d] / H.
 * Gamma is symmetric, so only its upper triangle is computed (dsyrk) and
 * visited: each off-diagonal entry counts twice. Gram matrices and the
 * matrix products are in double (the kernel is so narrow, h = 0.01, that a
 * float Gamma would cost ~1e-5 relative in the density); the kernel values
 * are float exps of arguments formed in double, summed in float per column
 * over at most FLUSH rows, then in double. Allocation failure: NaN, dao
 * zeroed. */
#include "losses.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>


#define NGRID 10
#define FLUSH 16 /* rows summed in float before moving to double */

static const double kBandwidth = 0.01;
static const double kFloor = 1e-4;
static const double kEps = 1e-8;

/* exp(a) for -2^22 < a <= 0 in float: a = n ln2 + r with |r| <= ln2/2
 * (two-part ln2), e^r by its degree-7 Taylor polynomial (truncation
 * < 6e-9), 2^n from the exponent bits. Results below 2^-87 (a < -60.3)
 * are flushed to 0 (irrelevant here: the density carries a 1e-4 floor)
 * through an integer select, so there are no float branches and loops over
 * it vectorise, and no denormals arise. */
static inline float exp_neg(float a)
{
    const float big = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = a * 1.44269504088896341f + big;
    n -= big;
    const float r = (a - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t e = (int32_t)n + 127;
    e = e < 40 ? 0 : e;
    const uint32_t bits = (uint32_t)e << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* acc[k * stride + j] += exp(-((x_k - g_j) / h)^2 / 2) for j < n. */
SFQ_CLONES static void kde_accumulate(const double *g, int n, const double *x, float *acc,
                                      int stride)
{
    const double inv_h = 1.0 / kBandwidth;
    for (int k = 0; k < NGRID; k++) {
        const double xk = x[k];
        float *a = acc + (size_t)k * stride;
        for (int j = 0; j < n; j++) {
            const float u = (float)((xk - g[j]) * inv_h);
            a[j] += exp_neg(-0.5f * u * u);
        }
    }
}

/* p[k] += sum_j acc[k * stride + j] (in double), and acc is cleared. */
static void kde_flush(float *acc, int n, int stride, double p[NGRID])
{
    for (int k = 0; k < NGRID; k++) {
        float *a = acc + (size_t)k * stride;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            s0 += a[j];
            s1 += a[j + 1];
            s2 += a[j + 2];
            s3 += a[j + 3];
        }
        for (; j < n; j++)
            s0 += a[j];
        p[k] += (s0 + s1) + (s2 + s3);
        memset(a, 0, (size_t)n * sizeof(float));
    }
}

/* s[j] = scale * sum_k c_k e_k u_k for the entries g[j], j < n; t is
 * scratch for n floats. */
SFQ_CLONES static void grad_row(const double *g, int n, const double *x, const float *c,
                                double scale, double *s, float *t)
{
    const double inv_h = 1.0 / kBandwidth;
    for (int j = 0; j < n; j++)
        t[j] = 0;
    for (int k = 0; k < NGRID; k++) {
        const double xk = x[k];
        const float ck = c[k];
        for (int j = 0; j < n; j++) {
            const float u = (float)((xk - g[j]) * inv_h);
            t[j] += ck * u * exp_neg(-0.5f * u * u);
        }
    }
    for (int j = 0; j < n; j++)
        s[j] = scale * t[j];
}

/* torch.linspace(lo, hi, NGRID) (its symmetric two-sided formula). */
static void make_grid(double lo, double hi, double x[NGRID])
{
    const double step = (hi - lo) / (NGRID - 1);
    for (int k = 0; k < NGRID; k++)
        x[k] = k < NGRID / 2 ? lo + step * k : hi - step * (NGRID - 1 - k);
}

double sfq_loss_pse_windows(const float *ao, int B, int windows, int N, int H, int hd, int skip,
                            float *dao)
{
    const int D = H * hd;
    if (B <= 0 || windows <= 0 || N <= 0 || H <= 0 || hd <= 0)
        return 0.0;
    if (skip < 0)
        skip = 0;
    const int M = N - skip;
    /* A group is one window of one image: rows g*N .. g*N + N-1 of ao. */
    const size_t ng = (size_t)B * windows;
    if (dao) /* prefix rows; the patch rows are written below */
        for (size_t g = 0; g < ng; g++)
            memset(dao + g * N * D, 0, (size_t)(M > 0 ? skip : N) * D * sizeof(float));
    if (M <= 0)
        return 0.0;

    const size_t MM = (size_t)M * M, Mh = (size_t)M * hd;
    double *fhat = sfq_alloc_array(ng * Mh, sizeof(double));
    double *norm = sfq_alloc_array(ng * M, sizeof(double));
    double *gam = sfq_alloc_array(ng * MM, sizeof(double));
    double *S = dao ? sfq_alloc_array(MM, sizeof(double)) : NULL;
    double *dF = dao ? sfq_alloc_array(Mh, sizeof(double)) : NULL;
    float *trow = dao ? sfq_alloc_array((size_t)M, sizeof(float)) : NULL;
    float *acc = sfq_alloc_zero(sizeof(float) * NGRID * (size_t)M);
    double *diag = sfq_alloc_array((size_t)M, sizeof(double));
    if (!fhat || !norm || !gam || !acc || !diag || (dao && (!S || !dF || !trow))) {
        sfq_free(acc);
        sfq_free(diag);
        sfq_free(trow);
        sfq_free(fhat);
        sfq_free(norm);
        sfq_free(gam);
        sfq_free(S);
        sfq_free(dF);
        if (dao)
            memset(dao, 0, ng * N * D * sizeof(float));
        return NAN;
    }

    /* Head means, norms, normalised rows, Gram matrices (one per window),
     * batch min/max. */
    const double invH = 1.0 / H;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t g = 0; g < ng; g++) {
        for (int i = 0; i < M; i++) {
            const float *a = ao + (g * N + skip + i) * D;
            double *f = fhat + g * Mh + (size_t)i * hd;
            for (int d = 0; d < hd; d++)
                f[d] = a[d];
            for (int h = 1; h < H; h++)
                for (int d = 0; d < hd; d++)
                    f[d] += a[(size_t)h * hd + d];
            double ss = 0;
            for (int d = 0; d < hd; d++) {
                f[d] *= invH;
                ss += f[d] * f[d];
            }
            const double nr = sqrt(ss);
            norm[g * M + i] = nr;
            const double inv = 1.0 / (nr > kEps ? nr : kEps);
            for (int d = 0; d < hd; d++)
                f[d] *= inv;
        }
        double *G = gam + g * MM;
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, M, hd, 1.0, fhat + g * Mh, hd, 0.0, G,
                    M);
        for (int i = 0; i < M; i++)
            for (int j = i; j < M; j++) {
                const double v = G[(size_t)i * M + j];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
    }
    if (!(lo <= hi)) { /* NaN input */
        lo = hi = NAN;
    }
    double x[NGRID], w[NGRID];
    make_grid(lo, hi, x);
    for (int k = 0; k < NGRID; k++)
        w[k] = 0.5 * ((k + 1 < NGRID ? x[k + 1] : x[k]) - (k > 0 ? x[k - 1] : x[k]));

    const double coef = 1.0 / sqrt(2.0 * M_PI * kBandwidth * kBandwidth);
    const double pnorm = coef / ((double)MM * windows); /* 1 / (nW M^2) */
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        const size_t g0 = (size_t)b * windows;
        /* p = diagonals + 2 * strict upper triangles over the image's
         * windows, each summed in float column accumulators over at most
         * FLUSH rows (never across windows), then in double. */
        double p[NGRID] = {0}, pd[NGRID] = {0};
        for (int wi = 0; wi < windows; wi++) {
            const double *G = gam + (g0 + wi) * MM;
            for (int i = 0; i < M; i++)
                diag[i] = G[(size_t)i * M + i];
            kde_accumulate(diag, M, x, acc, M);
            kde_flush(acc, M, M, pd);
            for (int i = 0; i < M; i++) {
                kde_accumulate(G + (size_t)i * M + i + 1, M - 1 - i, x, acc + i + 1, M);
                if ((i + 1) % FLUSH == 0 || i == M - 1)
                    kde_flush(acc, M, M, p);
            }
        }
        for (int k = 0; k < NGRID; k++)
            p[k] = 2.0 * p[k] + pd[k];
        double Hb = 0;
        float ck[NGRID];
        for (int k = 0; k < NGRID; k++) {
            const double q = p[k] * pnorm + kFloor;
            const double lq = log(q);
            Hb -= w[k] * q * lq;
            ck[k] = (float)(w[k] * (lq + 1.0) / B); /* dL/dp_k */
        }
        loss -= Hb;
        if (!dao)
            continue;

        /* Per window: S = 2 dL/dGamma (upper triangle), dFhat = S Fhat. */
        const double scale = 2.0 * pnorm / kBandwidth;
        for (int wi = 0; wi < windows; wi++) {
            const size_t g = g0 + wi;
            const double *G = gam + g * MM;
            for (int i = 0; i < M; i++)
                grad_row(G + (size_t)i * M + i, M - i, x, ck, scale, S + (size_t)i * M + i, trow);
            const double *Fg = fhat + g * Mh;
            cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, M, hd, 1.0, S, M, Fg, hd, 0.0, dF,
                        hd);
            for (int i = 0; i < M; i++) {
                const double *fi = Fg + (size_t)i * hd;
                const double *gi = dF + (size_t)i * hd;
                const double nr = norm[g * M + i];
                float *out = dao + (g * N + skip + i) * D;
                if (nr > kEps) {
                    double dot = 0;
                    for (int d = 0; d < hd; d++)
                        dot += gi[d] * fi[d];
                    const double s = invH / nr;
                    for (int d = 0; d < hd; d++)
                        out[d] = (float)((gi[d] - dot * fi[d]) * s);
                } else {
                    const double s = invH / kEps;
                    for (int d = 0; d < hd; d++)
                        out[d] = (float)(gi[d] * s);
                }
                for (int h = 1; h < H; h++)
                    memcpy(out + (size_t)h * hd, out, (size_t)hd * sizeof(float));
            }
        }
    }
    sfq_free(fhat);
    sfq_free(norm);
    sfq_free(gam);
    sfq_free(S);
    sfq_free(dF);
    sfq_free(trow);
    sfq_free(acc);
    sfq_free(diag);
    return loss / B;
}

double sfq_loss_pse(const float *ao, int B, int N, int H, int hd, int skip, float *dao)
{
    return sfq_loss_pse_windows(ao, B, 1, N, H, hd, skip, dao);
}
