/* losses.h - the synthesis losses, one file each, each a value and its
 * gradient. All are pure functions on arrays (no model, no allocation
 * beyond their own scratch); gradients are written (=) or accumulated (+=)
 * as each says. Values are accumulated in double. */
#ifndef SFQ_LOSSES_H
#define SFQ_LOSSES_H

#include "core.h"
#include "rng.h"

#include <stdint.h>

/* ---- Attention Priors Alignment (loss_apa.c) -------------------------- *
 * attn  [B][depth][H][N]: class-token attention rows (softmax over all N
 *       tokens; the first P are prefix tokens, then G = N - P patches).
 * prior [B][depth][H][G]: target distributions over the patches.
 * Blocks l = 1..depth (1-based) with l >= depth/2 (integer division) are
 * used, with weight l/depth:
 *   L = (1/B) sum_b sum_l sum_h (l/depth) mean_t (attn[b,l,h,P+t] - prior[b,l,h,t])^2
 * dattn (same shape as attn) is written: the gradient of L, zero for the
 * prefix tokens and for unused blocks. Returns L. */
double sfq_loss_apa(const float *attn, const float *prior, int B, int depth, int H, int N, int P,
                    float *dattn);

/* ---- soft-label cross-entropy (loss_ce.c) ----------------------------- *
 * L = -(1/B) sum_b sum_k T[b,k] log softmax(z_b)[k]; one-hot targets give
 * the ordinary cross-entropy. dlogits (B x K) is written. Returns L. */
double sfq_loss_soft_ce(const float *logits, const float *targets, int B, int K, float *dlogits);

/* Soft target: T = softmax(Z) with Z[c] ~ U(lo, hi) for each of the m
 * classes in `classes` and 0 elsewhere (one row of K floats). */
void sfq_soft_target(sfq_rng *r, const int32_t *classes, int m, int K, float lo, float hi,
                     float *target);

/* ---- total variation (loss_tv.c) -------------------------------------- *
 * x [B][C][H][W]. TV = sum over the 4 neighbour differences (right, down,
 * down-right, down-left... exactly PSAQ-ViT's four: x[..., :, :-1] -
 * x[..., :, 1:], x[..., :-1, :] - x[..., 1:, :], x[..., 1:, :-1] -
 * x[..., :-1, 1:], x[..., :-1, :-1] - x[..., 1:, 1:]) of the Frobenius norm
 * of each difference map over the whole batch. L = |TV - tau|.
 * dx += weight * dL/dx. Returns L; *tv receives TV. */
double sfq_loss_tv(const float *x, int B, int C, int H, int W, float tau, float weight, float *dx,
                   double *tv);

/* ---- PSAQ-ViT patch-similarity entropy (loss_pse.c) ------------------- *
 * ao [B][N][H*hd]: one block's attention output softmax(QK^T)V before the
 * projection, heads contiguous. f = mean over heads -> [B][N][hd]; drop the
 * first `skip` tokens; Gamma_b = pairwise cosine similarity of the
 * remaining M = N - skip vectors (M x M, all pairs incl. i == j); the
 * density of Gamma_b's M*M entries is a Gaussian KDE (bandwidth h = 0.01)
 * evaluated at 10 equally spaced points from the min to the max of Gamma
 * over the whole batch (the grid carries no gradient); the entropy is the
 * trapezoid integral of -(p + 1e-4) log(p + 1e-4) over the grid, averaged
 * over the batch. L = -entropy. dao (same shape as ao) is written.
 * Returns L. */
double sfq_loss_pse(const float *ao, int B, int N, int H, int hd, int skip, float *dao);

/* ---- MSR region resize (msr.c) ---------------------------------------- *
 * Bilinear resize (PyTorch F.interpolate, align_corners=False, no
 * antialias) of the region [y0, y0+h) x [x0, x0+w) of src [C][H][W] to
 * dst [C][H][W] (the full input size). */
void sfq_crop_resize(const float *src, int C, int H, int W, int y0, int x0, int h, int w,
                     float *dst);
/* Its exact adjoint: dsrc += R^T ddst (only the region is touched). */
void sfq_crop_resize_adjoint(const float *ddst, int C, int H, int W, int y0, int x0, int h, int w,
                             float *dsrc);

#endif
