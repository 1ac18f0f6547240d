/* smallgemm.h - the per-(image, head) attention products, computed without
 * BLAS so that they run on the library's threads, one (image, head) pair per
 * task: OpenBLAS spreads each of these small products (197 x 197 x 64 at
 * 224 px) over its threads and reaches a fraction of its large-GEMM speed.
 *
 * The one kernel is C = alpha * A B with B packed: rows of B contiguous with
 * a stride that is a multiple of 32 and zero padding; the transposed cases
 * pack a transpose first. */
#ifndef SFQ_SMALLGEMM_H
#define SFQ_SMALLGEMM_H

/* Round n up to the packing multiple (32). */
static inline int sfq_pack_ld(int n) { return (n + 31) & ~31; }

/* dst[r][c] = src[r * ld + c] for r < rows, c < cols; dst has stride ldd
 * (>= cols) and zeros in columns cols..ldd-1. */
void sfq_pack_rows(const float *src, int ld, int rows, int cols, float *dst, int ldd);
/* dst[c][r] = src[r * ld + c]: the transpose, stride ldd (>= rows), zeros in
 * columns rows..ldd-1. */
void sfq_pack_transpose(const float *src, int ld, int rows, int cols, float *dst, int ldd);

/* C[i * ldc + j] = alpha * sum_k A[i * lda + k] * Bp[k * ldb + j] for
 * i < M, j < N, with Bp packed (ldb a multiple of 32, >= N, zero padded).
 * Columns N.. of C are not written. */
void sfq_gemm_packed(int M, int N, int K, float alpha, const float *A, int lda, const float *Bp,
                     int ldb, float *C, int ldc);

/* Backward of one head's attention O = P V over N tokens (one image of a
 * ViT, one window of a Swin), in two halves so the caller can add the
 * read-back's gradient to dP in between. The head's Q, K and V rows start
 * at q, q + D and q + 2 D with row stride 3 D (the qkv layout), dq likewise
 * for their gradients; dO has row stride D; P and dS are N x N. At holds
 * N x ld(N) floats and buf the larger packed operand (sizes: the caller,
 * e.g. exec/attention.c sfq_attention_chunk).
 *   _pv: dS = dO V^T (dP), and dV = P^T dO into dq + 2 D;
 *   _qk: dS = softmax backward of dS given P, dQ = scale dS K into dq,
 *        dK = scale dS^T Q into dq + D. */
void sfq_attention_head_bwd_pv(const float *q, float *dq, int D, const float *dO, const float *P, float *dS,
                               int N, int hd, float *At, float *buf);
void sfq_attention_head_bwd_qk(const float *q, float *dq, int D, const float *P, float *dS, int N, int hd,
                               float scale, float *At, float *buf);

#endif
