/* igemm.h - the integer matrix products of the integer executor: unsigned
 * 8-bit activation codes times weight codes of 2..8 bits, exact int32 sums,
 * and a fused float epilogue (dequantization, bias, optional accumulate).
 *
 *   out[m][n] (+)= float(S[m][n]) * scale[n] + bias[n]      (one fmaf)
 *   S[m][n] = sum_k (a[m][k] - za) (w[n][k] - zw[n])
 *           = sum_k a[m][k] (w[n][k] - off)                 (the kernel)
 *             + (off - zw[n]) asum[m] - za wsum[n]          (the epilogue)
 *
 * with asum[m] = sum_k a[m][k] and wsum[n] = sum_k (w[n][k] - zw[n]). The
 * weight codes are stored as w - off, which fits a signed byte for every
 * width (off = 128 for 5..8 bits, 8 for 2..4 bits, stored two per byte).
 * Every S is exact (|S| < 2^31 for k < 33000), so the three instruction
 * paths (AVX-512 VNNI vpdpbusd, AVX2 with int16 products widened before
 * vpmaddwd so nothing saturates, portable C) give bit-identical outputs:
 * the epilogue is the same fused multiply-add on each.
 *
 * A kernel: it uses core/ only. */
#ifndef SFQ_IGEMM_H
#define SFQ_IGEMM_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

/* Instruction paths. AUTO = the best this CPU has, unless the environment
 * variable SARDFQ_ISA (c, avx2, vnni) forces one. */
enum { SFQ_ISA_AUTO = 0, SFQ_ISA_C = 1, SFQ_ISA_AVX2 = 2, SFQ_ISA_VNNI = 3 };

/* The best path of this CPU (never AUTO). */
int sfq_isa_best(void);
/* Resolve a request (SFQ_ISA_*; AUTO reads SARDFQ_ISA): the path to use,
 * or a status when the path is unknown or this CPU lacks it. */
sardfq_status sfq_isa_resolve(int request, int *isa);
/* "c", "avx2", "vnni". */
const char *sfq_isa_name(int isa);

/* Weight codes in the kernels' layout: panels of 16 rows (output channels),
 * each a run of k/4 groups of 16 rows x 4 codes (64 bytes, or 32 bytes of
 * nibbles: byte j holds element j in its low and element j + 32 in its high
 * nibble). */
typedef struct {
    int n, k;      /* output channels, reduction length */
    int kp, np;    /* k rounded up to 4, n rounded up to 16 */
    int bits;      /* 2..8 */
    int nibbles;   /* two codes per byte (bits <= 4) */
    int off;       /* stored value = code - off */
    uint8_t *data; /* np / 16 panels */
    int32_t *zero; /* [np] zw (0 in the padding) */
    int32_t *wsum; /* [np] sum_k (w - zw) */
    size_t bytes;  /* of data */
} sfq_ipack;

/* Bytes of data for an n x k matrix of `bits`-bit codes. */
size_t sfq_ipack_data_bytes(int n, int k, int bits);
/* Pack codes [n][k] (row stride ldc, each < 2^bits) with row zero points
 * zero[n] (integers, may be NULL = 0). The allocating form owns data, zero
 * and wsum (free with sfq_ipack_free); the _into form uses the caller's
 * buffers (data: sfq_ipack_data_bytes; zero, wsum: np entries). */
sardfq_status sfq_ipack_new(const uint8_t *codes, int64_t ldc, int n, int k, int bits, const int32_t *zero,
                            sfq_ipack *out);
void sfq_ipack_into(const uint8_t *codes, int64_t ldc, int n, int k, int bits, const int32_t *zero,
                    sfq_ipack *p, uint8_t *data, int32_t *zbuf, int32_t *wsum);
void sfq_ipack_free(sfq_ipack *p);
/* The codes of row `row` (< n) as they were packed: out[k], as bytes or as
 * floats. */
void sfq_ipack_codes(const sfq_ipack *p, int row, uint8_t *out);
void sfq_ipack_levels(const sfq_ipack *p, int row, float *out);

/* The epilogue of one product. scale, corr and zoff hold np entries (the
 * padding 0); bias is NULL or n entries. */
typedef struct {
    const float *scale;  /* [n] za-free dequantization scale (sa * sw[n]) */
    const float *bias;   /* [n] or NULL */
    const int32_t *corr; /* [n] -za * wsum[n] */
    const int32_t *zoff; /* [n] off - zw[n] */
    const int32_t *asum; /* [m] sum of row m's codes */
    float *out;
    int64_t ldo;
    int accumulate;      /* out += instead of out = */
} sfq_iepi;

/* Fill scale, corr and zoff (np entries each) for activations of scale sa
 * and zero point za against weights p of row scales sw[n] (or one scale
 * sw[0] for all rows when sw_stride is 0). */
void sfq_iepi_vectors(const sfq_ipack *p, float sa, int32_t za, const float *sw, int sw_stride, float *scale,
                      int32_t *corr, int32_t *zoff);

/* Rows [m0, m1) of A (u8 codes, row stride lda >= kp, the bytes from k to
 * kp zero) times p, through the epilogue e, on the caller's thread. */
void sfq_igemm_rows(int isa, const uint8_t *A, int64_t lda, const sfq_ipack *p, const sfq_iepi *e, int64_t m0,
                    int64_t m1);
/* All M rows on nt threads (row blocks). */
void sfq_igemm(int isa, int nt, const uint8_t *A, int64_t lda, int64_t M, const sfq_ipack *p, const sfq_iepi *e);

/* The plain int32 sums sum_k a[m][k] (w[n][k] - off) into C [M][n] (row
 * stride ldc), for tests and the kernel bench. */
void sfq_igemm_s32(int isa, const uint8_t *A, int64_t lda, int64_t M, const sfq_ipack *p, int32_t *C,
                   int64_t ldc);

#endif
