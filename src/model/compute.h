/* compute.h - what every graph (vit.c, swin.c) runs its layers with: the
 * thread policy of one compute call, row-split GEMMs and linears, and the
 * patch extraction of a stride-p convolution. */
#ifndef SFQ_COMPUTE_H
#define SFQ_COMPUTE_H

#include "vit.h"

/* One compute call's thread layout. */
typedef struct {
    int nt;          /* threads for the library's loops */
    int split;       /* row blocks per GEMM (1 = let OpenBLAS thread it) */
    int blas_before; /* 1 if this call holds OpenBLAS at one thread */
} sfq_compute;

/* Start / end a compute call on model m (see compute.c for the policy). */
sfq_compute sfq_begin_compute(const sardfq_model *m);
void sfq_end_compute(const sfq_compute *c);

/* C = alpha op(A) op(B) + beta C (row-major), split in `split` row blocks
 * of at least 64 rows. */
void sfq_gemm(int split, int transa, int transb, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* y (rows x out) = x (rows x in) W^T + b, W [out][in]; accumulate adds to
 * y. b may be NULL (no bias). */
void sfq_linear(const sfq_compute *c, const float *x, const float *W, const float *b, float *y,
                int rows, int in, int out, int accumulate);

/* patches[(b*G + gy*gw + gx)][(c*p + ky)*p + kx] = image[b][c][gy*p+ky][gx*p+kx]
 * for C x H x W images and a gh x gw grid of p x p patches (G = gh gw), and the inverse
 * scatter (patches are disjoint, so it is a permutation). */
void sfq_im2col(int C, int H, int W, int p, int gh, int gw, const float *images, int n, float *patches, int nt);
void sfq_col2im(int C, int H, int W, int p, int gh, int gw, float *images, int n, const float *patches, int nt);

#endif
