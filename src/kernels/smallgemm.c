/* smallgemm.c - register-blocked small matrix products (see smallgemm.h).
 * Written with GCC vector extensions (16 floats) and compiled for AVX-512,
 * AVX2 and the baseline; a 4 x 32 block of C lives in eight vector
 * accumulators while k runs, so each step is 4 broadcasts, 2 loads and 8
 * fused multiply-adds. */
#include "smallgemm.h"

#include "core.h"
#include "vmath.h"

#include <string.h>


typedef float v16 __attribute__((vector_size(64)));

static inline v16 load16(const float *p)
{
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Store the first n (<= 16) lanes of alpha * v at p. */
static inline void store16(float *p, v16 v, float alpha, int n)
{
    v *= alpha;
    if (n >= 16)
        memcpy(p, &v, sizeof v);
    else if (n > 0)
        memcpy(p, &v, sizeof(float) * (size_t)n);
}

void sfq_pack_rows(const float *src, int ld, int rows, int cols, float *dst, int ldd)
{
    for (int r = 0; r < rows; r++) {
        memcpy(dst + (size_t)r * ldd, src + (size_t)r * ld, sizeof(float) * (size_t)cols);
        memset(dst + (size_t)r * ldd + cols, 0, sizeof(float) * (size_t)(ldd - cols));
    }
}

void sfq_pack_transpose(const float *src, int ld, int rows, int cols, float *dst, int ldd)
{
    /* 8 x 8 tiles keep both sides in cache lines */
    for (int r0 = 0; r0 < rows; r0 += 8)
        for (int c0 = 0; c0 < cols; c0 += 8) {
            const int r1 = r0 + 8 < rows ? r0 + 8 : rows, c1 = c0 + 8 < cols ? c0 + 8 : cols;
            for (int c = c0; c < c1; c++)
                for (int r = r0; r < r1; r++)
                    dst[(size_t)c * ldd + r] = src[(size_t)r * ld + c];
        }
    for (int c = 0; c < cols; c++)
        memset(dst + (size_t)c * ldd + rows, 0, sizeof(float) * (size_t)(ldd - rows));
}

SFQ_CLONES void sfq_gemm_packed(int M, int N, int K, float alpha, const float *A, int lda,
                                const float *Bp, int ldb, float *C, int ldc)
{
    for (int j0 = 0; j0 < N; j0 += 32) {
        const int n0 = N - j0, n1 = N - j0 - 16;
        for (int i0 = 0; i0 < M; i0 += 4) {
            const int mr = M - i0 < 4 ? M - i0 : 4;
            /* rows past M repeat the last row; their results are dropped */
            const float *a0 = A + (size_t)i0 * lda;
            const float *a1 = A + (size_t)(i0 + (mr > 1)) * lda;
            const float *a2 = A + (size_t)(i0 + (mr > 2 ? 2 : mr - 1)) * lda;
            const float *a3 = A + (size_t)(i0 + (mr > 3 ? 3 : mr - 1)) * lda;
            v16 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
            const float *b = Bp + j0;
            for (int k = 0; k < K; k++, b += ldb) {
                const v16 b0 = load16(b), b1 = load16(b + 16);
                const float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
                c00 += x0 * b0;
                c01 += x0 * b1;
                c10 += x1 * b0;
                c11 += x1 * b1;
                c20 += x2 * b0;
                c21 += x2 * b1;
                c30 += x3 * b0;
                c31 += x3 * b1;
            }
            float *c = C + (size_t)i0 * ldc + j0;
            store16(c, c00, alpha, n0);
            store16(c + 16, c01, alpha, n1);
            if (mr > 1) {
                store16(c + ldc, c10, alpha, n0);
                store16(c + ldc + 16, c11, alpha, n1);
            }
            if (mr > 2) {
                store16(c + 2 * (size_t)ldc, c20, alpha, n0);
                store16(c + 2 * (size_t)ldc + 16, c21, alpha, n1);
            }
            if (mr > 3) {
                store16(c + 3 * (size_t)ldc, c30, alpha, n0);
                store16(c + 3 * (size_t)ldc + 16, c31, alpha, n1);
            }
        }
    }
}

void sfq_attention_head_bwd_pv(const float *q, float *dq, int D, const float *dO, const float *P, float *dS,
                               int N, int hd, float *At, float *buf)
{
    const int ldN = sfq_pack_ld(N), ldh = sfq_pack_ld(hd);
    sfq_pack_transpose(q + 2 * D, 3 * D, N, hd, buf, ldN); /* V^T */
    sfq_gemm_packed(N, N, hd, 1.0f, dO, D, buf, ldN, dS, N);
    sfq_pack_transpose(P, N, N, N, At, ldN); /* P^T */
    sfq_pack_rows(dO, D, N, hd, buf, ldh);
    sfq_gemm_packed(N, hd, N, 1.0f, At, ldN, buf, ldh, dq + 2 * D, 3 * D);
}

void sfq_attention_head_bwd_qk(const float *q, float *dq, int D, const float *P, float *dS, int N, int hd,
                               float scale, float *At, float *buf)
{
    const int ldN = sfq_pack_ld(N), ldh = sfq_pack_ld(hd);
    sfq_softmax_bwd(P, dS, N, N, 1);
    sfq_pack_rows(q + D, 3 * D, N, hd, buf, ldh); /* K */
    sfq_gemm_packed(N, hd, N, scale, dS, N, buf, ldh, dq, 3 * D);
    sfq_pack_transpose(dS, N, N, N, At, ldN); /* dS^T */
    sfq_pack_rows(q, 3 * D, N, hd, buf, ldh);  /* Q */
    sfq_gemm_packed(N, hd, N, scale, At, ldN, buf, ldh, dq + D, 3 * D);
}
