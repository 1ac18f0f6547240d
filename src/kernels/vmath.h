/* vmath.h - the element-wise kernels of the graph, each a forward/backward
 * pair where a backward exists, run over rows on nthreads threads.
 * Written as plain loops that GCC vectorises (with target clones for AVX2
 * and AVX-512). */
#ifndef SFQ_VMATH_H
#define SFQ_VMATH_H

#include <stdint.h>

/* exp(x) for float, max error about 1 ulp on [-87, 88]; 0 below -87.3. */
float sfq_expf(float x);
/* Phi(x) = 0.5 * (1 + erf(x / sqrt 2)), computed without cancellation. */
float sfq_gauss_cdf(float x);

/* out[r] = (x[r] - mean) * rstd * w + b over D columns, for rows r;
 * xhat (may be NULL) receives (x - mean) * rstd and rstd (may be NULL) 1/std.
 * Mean and variance are accumulated in double. */
void sfq_layernorm_fwd(const float *x, const float *w, const float *b, float *out, float *xhat,
                       float *rstd, int64_t rows, int D, float eps, int nthreads);
/* dx[r] += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = w * dy. */
void sfq_layernorm_bwd(const float *dy, const float *xhat, const float *rstd, const float *w,
                       float *dx, int64_t rows, int D, int nthreads);

/* out = x * Phi(x) (exact-erf GELU); out may alias x. */
void sfq_gelu_fwd(const float *x, float *out, int64_t n, int nthreads);
/* d = d * GELU'(pre), in place. */
void sfq_gelu_bwd(const float *pre, float *d, int64_t n, int nthreads);

/* Row-wise softmax in place. */
void sfq_softmax_fwd(float *x, int64_t rows, int cols, int nthreads);
/* dp = p * (dp - sum(dp * p)) row-wise, in place on dp. */
void sfq_softmax_bwd(const float *p, float *dp, int64_t rows, int cols, int nthreads);

/* y[r][c] += b[c] */
void sfq_add_bias(float *y, const float *b, int64_t rows, int cols, int nthreads);
/* y[r][c] = b[c] */
void sfq_fill_rows(float *y, const float *b, int64_t rows, int cols, int nthreads);

#endif
