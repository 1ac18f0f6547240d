/* compute.h - what the executors run their layers with: the thread policy
 * of one compute call (from a thread setting, not a model), row-split GEMMs
 * and linears, and the patch extraction of a stride-p convolution. A
 * kernel: it uses core/ only. */
#ifndef SFQ_COMPUTE_H
#define SFQ_COMPUTE_H

#include "core.h"

/* One compute call's thread layout. */
typedef struct {
    int nt;          /* threads for the library's loops */
    int split;       /* row blocks per GEMM (1 = let OpenBLAS thread it) */
    int blas_before; /* 1 if this call holds OpenBLAS at one thread */
} sfq_compute;

/* Thread count for the library's loops under the thread setting n_threads
 * (sardfq_model_params.n_threads: > 0 = that many library threads, 0 =
 * OpenBLAS's count). */
int sfq_compute_threads(int n_threads);

/* Start / end a compute call under the thread setting n_threads (see
 * compute.c for the policy). */
sfq_compute sfq_begin_compute(int n_threads);
void sfq_end_compute(const sfq_compute *c);

/* C = alpha op(A) op(B) + beta C (row-major). The M rows are items of
 * `item` rows each (an image's tokens, an image's logits; item <= 0 or
 * > M: one item of M rows), and each item is cut into blocks of at most
 * SFQ_GEMM_BLOCK rows counted from the item's first row; each block is one
 * OpenBLAS call, and up to `split` threads share the blocks. A row's value
 * thus depends only on its item, never on the batch around it, the shard
 * or the thread count: some of OpenBLAS's kernels (Haswell's, which it
 * picks on AVX2 cores and on Zen 5) round a row differently by its
 * position in the call. */
#define SFQ_GEMM_BLOCK 384
void sfq_gemm(int split, int item, int transa, int transb, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* y (rows x out) = x (rows x in) W^T + b, W [out][in]; accumulate adds to
 * y. b may be NULL (no bias). Rows are items of `item` rows (sfq_gemm). */
void sfq_linear(const sfq_compute *c, const float *x, const float *W, const float *b, float *y,
                int rows, int item, int in, int out, int accumulate);

/* patches[(b*G + gy*gw + gx)][(c*p + ky)*p + kx] = image[b][c][gy*p+ky][gx*p+kx]
 * for C x H x W images and a gh x gw grid of p x p patches (G = gh gw), and the inverse
 * scatter (patches are disjoint, so it is a permutation). */
void sfq_im2col(int C, int H, int W, int p, int gh, int gw, const float *images, int n, float *patches, int nt);
void sfq_col2im(int C, int H, int W, int p, int gh, int gw, float *images, int n, const float *patches, int nt);

#endif
