/* quant.h - the quantizers as pure functions on float arrays (no model code).
 *
 * Three families, each reproducing a reference implementation operation by
 * operation in float32 (the same IEEE operations in the same order, so the
 * results are bitwise those of the reference on CPU PyTorch):
 *
 *  - uniform asymmetric (RepQ-ViT, classification/quant/quantizer.py,
 *    UniformQuantizer):   q = clamp(round(x/D) + z, 0, 2^b - 1),
 *                         xhat = (q - z) * D,
 *    with RepQ-ViT's calibration search (sfq_uq_search*);
 *  - log-sqrt2 (RepQ-ViT, LogSqrt2Quantizer) for post-softmax values:
 *                         q = round(-2 log2(x/D)), zero if q >= 2^b,
 *                         else clamp(q, 0, 2^b - 1), xhat = D * 2^(-q/2);
 *  - PSAQ-ViT's min/max quantizers (models/quantization_utils/quant_utils.py):
 *    symmetric per-output-channel weights and asymmetric per-tensor
 *    activations, expressed as sfq_uq parameters (sfq_psaq_*).
 *
 * round() is round-half-to-even everywhere (torch.round), computed with the
 * default floating-point environment (rintf).
 *
 * Calibration search (RepQ-ViT): for pct in {0.999, 0.9999, 0.99999} (in this
 * order) the candidate range is [quantile(x, 1 - pct), quantile(x, pct)]
 * (no widening to include 0), D = (hi - lo) / (2^b - 1), z = round(-lo / D);
 * its score is mean((x - xhat)^2) over the tensor; the first candidate with
 * a strictly smaller score wins. The log-sqrt2 search takes D = quantile(x,
 * pct) the same way. See quantizers.c for the exact quantile definition
 * (torch.quantile, or numpy.percentile above 2^24 values, as RepQ-ViT's
 * try/except does) and for the documented deviations on degenerate input,
 * where RepQ-ViT itself fails.
 *
 * Conventions: every array function takes n >= 1 elements (an empty array is
 * SARDFQ_E_INVALID_ARG), non-NULL pointers, bits in [2, 8], and rejects
 * non-finite inputs to the searches. Outputs may alias inputs where noted.
 * Failures return a status and set a message (sfq_fail); nothing is
 * allocated on failure. */
#ifndef SFQ_QUANT_H
#define SFQ_QUANT_H

#include "core.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define SFQ_QBITS_MIN 2
#define SFQ_QBITS_MAX 8
/* Number of calibration candidates and their percentiles, in search order. */
#define SFQ_NCAND 3
extern const double sfq_repq_pcts[SFQ_NCAND]; /* 0.999, 0.9999, 0.99999 */

/* ---------------------------------------------------------------------- */
/* Uniform quantizer                                                       */

typedef enum {
    /* RepQ-ViT: q = clamp(round(x/D) + z, 0, 2^b - 1). */
    SFQ_UQ_REPQ = 0,
    /* PSAQ-ViT activations: q = clamp(round(x/D + z), 0, 2^b - 1) (x/D + z
     * is rounded to float first; differs from REPQ at ties). */
    SFQ_UQ_PSAQ = 1
} sfq_uq_form;

typedef struct {
    float scale; /* D: finite, > 0 */
    float zero;  /* z: finite. Integral for every calibration here; RepQ-ViT
                  * can produce z < 0 or z > 2^b - 1 (quantiles of one sign),
                  * PSAQ clamps it to [0, 2^b - 1]. A fractional z (e.g.
                  * the unrounded mean of reparameterisation) is accepted by
                  * the fake-quant functions, not by sfq_uq_encode. */
    int bits;    /* 2..8 */
    int form;    /* sfq_uq_form */
} sfq_uq;

/* SARDFQ_OK if p is usable (message otherwise). */
sardfq_status sfq_uq_check(const sfq_uq *p);

/* The integer level (as a float, in [0, 2^b - 1]) of one value; NaN in,
 * NaN out. No validation: p must have passed sfq_uq_check. */
static inline float sfq_uq_level(const sfq_uq *p, float x)
{
    const float top = (float)((1 << p->bits) - 1);
    float t = p->form == SFQ_UQ_PSAQ ? rintf(x / p->scale + p->zero) : rintf(x / p->scale) + p->zero;
    if (t < 0.0f)
        t = 0.0f;
    if (t > top)
        t = top;
    return t;
}

/* The value of an integer level (a code, as a float): (level - z) * D. The
 * one place of the dequantization formula: fake quantization, decoding,
 * a quantized file's weights and a final model's weights held as codes
 * (model/iplan.c) all go through it, so they agree bit for bit. */
static inline float sfq_uq_value(const sfq_uq *p, float level)
{
    return (level - p->zero) * p->scale;
}

/* Fake quantization of one value: (level - z) * D. */
static inline float sfq_uq_apply(const sfq_uq *p, float x)
{
    return sfq_uq_value(p, sfq_uq_level(p, x));
}

/* y[i] = fake-quant(x[i]) for one quantizer; y may alias x. */
sardfq_status sfq_uq_fake(const sfq_uq *p, const float *x, float *y, size_t n);
/* Per channel: x is [rows][cols] row-major. _rows uses p[r] for row r (the
 * output channels of a weight [out][in]); _cols uses p[c] for column c (the
 * channels of an activation [tokens][C]). y may alias x. */
sardfq_status sfq_uq_fake_rows(const sfq_uq *p, const float *x, float *y, size_t rows, size_t cols);
sardfq_status sfq_uq_fake_cols(const sfq_uq *p, const float *x, float *y, size_t rows, size_t cols);

/* Integer codes q[i] = level(x[i]) in [0, 2^b - 1] (z must be integral), and
 * back: y[i] = (q[i] - z) * D, bitwise equal to sfq_uq_fake. A code above
 * 2^b - 1 is SARDFQ_E_INVALID_ARG. */
sardfq_status sfq_uq_encode(const sfq_uq *p, const float *x, uint8_t *q, size_t n);
sardfq_status sfq_uq_decode(const sfq_uq *p, const uint8_t *q, float *y, size_t n);
/* The integer executor's activation codes: rows x cols of x (row stride
 * ldx) to codes (row stride ldq >= pad), columns cols..pad zero, and each
 * row's code sum into rowsum (may be NULL). No validation (z integral,
 * checked when the integer plan is made); the codes are sfq_uq_level's,
 * bit for bit (an AVX-512 loop where the CPU has it). nt = threads. */
void sfq_uq_encode_rows(const sfq_uq *p, const float *x, int64_t rows, int cols, int64_t ldx, uint8_t *q,
                        int64_t ldq, int pad, int32_t *rowsum, int nt);

/* ---------------------------------------------------------------------- */
/* Calibration search (RepQ-ViT)                                           */

/* What a search looked at (optional output). For the uniform search lo/hi
 * are the candidate ranges; for log-sqrt2 hi[k] is the candidate D and lo is
 * unused (0). mse[k] is the score (computed in double from float32 errors),
 * NaN for a candidate RepQ-ViT cannot use (D not finite and > 0; its own
 * score is NaN there, so it is never chosen). chosen is the winning index,
 * or -1 when no candidate was usable and the documented fallback was used. */
typedef struct {
    float lo[SFQ_NCAND], hi[SFQ_NCAND];
    double mse[SFQ_NCAND];
    int chosen;
} sfq_search_info;

/* Per tensor: out receives {D, z, bits, SFQ_UQ_REPQ}. info may be NULL. */
sardfq_status sfq_uq_search(const float *x, size_t n, int bits, sfq_uq *out, sfq_search_info *info);
/* Per channel over x [rows][cols]: _rows searches each row (out[rows]),
 * _cols each column (out[cols]), as RepQ-ViT's channel_wise init does for a
 * 2-D weight and for the last dimension of a 3-D activation. info is NULL or
 * an array of the same length as out. nthreads <= 1 runs on the caller's
 * thread; the result does not depend on nthreads. */
sardfq_status sfq_uq_search_rows(const float *x, size_t rows, size_t cols, int bits, int nthreads,
                                 sfq_uq *out, sfq_search_info *info);
sardfq_status sfq_uq_search_cols(const float *x, size_t rows, size_t cols, int bits, int nthreads,
                                 sfq_uq *out, sfq_search_info *info);

/* Quantiles of x[0..n) as RepQ-ViT obtains them, for each p[k]:
 * SFQ_QUANTILE_TORCH = torch.quantile (linear, float32 rank and lerp),
 * SFQ_QUANTILE_NUMPY = torch.tensor(numpy.percentile(x, p * 100)) (double),
 * SFQ_QUANTILE_AUTO = TORCH for n <= 2^24, NUMPY above (torch.quantile
 * raises "input tensor is too large" there and RepQ-ViT falls back). */
enum { SFQ_QUANTILE_AUTO = 0, SFQ_QUANTILE_TORCH = 1, SFQ_QUANTILE_NUMPY = 2 };
#define SFQ_TORCH_QUANTILE_MAX ((size_t)1 << 24)
sardfq_status sfq_quantiles(const float *x, size_t n, const double *p, int np, int method, float *out);

/* ---------------------------------------------------------------------- */
/* log-sqrt2 quantizer (RepQ-ViT)                                          */

typedef struct {
    float scale; /* D: finite, > 0 (the largest level) */
    int bits;    /* 2..8 */
} sfq_lq;

sardfq_status sfq_lq_check(const sfq_lq *p);

/* xhat for level q in [0, 2^b - 1]: 2^(-ceil(q/2)) * (odd q ? float(sqrt2 -
 * 1) + 1 : 1), rounded to float, times D; this equals float(2^(-q/2)) * D
 * for every q <= 255 (checked in the tests). */
float sfq_lq_level_value(int q);

/* The code of one value: round(-2 log2(x/D)) clamped to [0, 2^b - 1], or
 * 2^b for "zero" (the unclamped level reaches 2^b: x = 0, x below the
 * smallest level). Negative x (never produced by softmax; RepQ-ViT yields
 * NaN there) are coded as zero. NaN x returns -1. */
int sfq_lq_code(const sfq_lq *p, float x);

/* Fake quantization of one value: 0 for code 2^b, else level_value(q) * D;
 * NaN stays NaN. No validation: p must have passed sfq_lq_check. */
float sfq_lq_apply(const sfq_lq *p, float x);

/* Fake quantization: y = 0 for code 2^b, else level_value(q) * D; NaN stays
 * NaN. y may alias x. */
sardfq_status sfq_lq_fake(const sfq_lq *p, const float *x, float *y, size_t n);
/* Bulk forms of sfq_uq_apply / sfq_lq_apply on a row of n values in place,
 * bit for bit the scalar results (AVX-512 when simd, which
 * sfq_quant_simd() says the CPU allows). tab: sfq_lq_table's 2^b + 1
 * floats (each level's value times D, then 0). */
#define SFQ_LQ_TABLE ((1 << SFQ_QBITS_MAX) + 1)
int sfq_quant_simd(void);
void sfq_uq_fake_row(const sfq_uq *p, float *x, int n, int simd);
void sfq_lq_table(const sfq_lq *p, float *tab);
void sfq_lq_fake_row(const sfq_lq *p, const float *tab, float *x, int n, int simd);
/* Codes in [0, 2^b] (2^b = zero, so uint16), and back. NaN input is
 * SARDFQ_E_INVALID_ARG. decode(encode(x)) == fake(x) bitwise. */
sardfq_status sfq_lq_encode(const sfq_lq *p, const float *x, uint16_t *q, size_t n);
sardfq_status sfq_lq_decode(const sfq_lq *p, const uint16_t *q, float *y, size_t n);

/* RepQ-ViT's D search over the quantiles of x (x >= 0 required, finite).
 * info may be NULL. */
sardfq_status sfq_lq_search(const float *x, size_t n, int bits, sfq_lq *out, sfq_search_info *info);

/* ---------------------------------------------------------------------- */
/* PSAQ-ViT min/max quantizers (the `minmax` scheme)                      */

/* Symmetric per-output-channel weights, rows of x [rows][cols]:
 * D = max(max(-min_r, max_r) / ((2^b - 1) / 2), FLT_EPSILON), levels
 * [-2^(b-1), 2^(b-1) - 1]. Returned in offset form {D, z = 2^(b-1), bits,
 * SFQ_UQ_REPQ}, whose fake quantization is bitwise PSAQ's (up to the sign of
 * zero results) and whose codes are PSAQ's signed integers + 2^(b-1). */
sardfq_status sfq_psaq_weight_rows(const float *x, size_t rows, size_t cols, int bits, sfq_uq *out);
/* Asymmetric per-tensor activations from a range [xmin, xmax] (the running
 * min/max of the calibration pass): D = max((xmax - xmin) / (2^b - 1),
 * FLT_EPSILON), z = clamp(-round(xmin / D), 0, 2^b - 1), form SFQ_UQ_PSAQ. */
sardfq_status sfq_psaq_act(float xmin, float xmax, int bits, sfq_uq *out);
/* min and max of x (finite values required). */
sardfq_status sfq_minmax(const float *x, size_t n, float *xmin, float *xmax);

#endif
