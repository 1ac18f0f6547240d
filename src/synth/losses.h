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
 * One image. Block l (1-based, l = 1..depth) has heads x tokens read-back
 * values at attn + attn_off (per head, a row of `tokens`: on ViT the
 * class-token attention over all tokens, whose first `prefix` are prefix
 * tokens and are excluded; on Swin the mean attention, prefix 0) and heads
 * x G targets at target + prior_off (G = tokens - prefix). Blocks with
 * l >= depth/2 (integer division; depth 1: the single block) are used, with
 * weight l/depth:
 *   L = scale sum_l (l/depth) sum_h mean_t (attn[l,h,prefix+t] - target[l,h,t])^2.
 * dattn (may be NULL) is written over the whole read-back (blocks in
 * order, contiguous): the gradient of L, zero for the prefix tokens and
 * unused blocks. Returns L. A batch of B images is the mean over images
 * (the generator calls this per image with scale 1 and divides by B). */
typedef struct {
    int heads, tokens, prefix;
    size_t attn_off, prior_off;
} sfq_apa_block;
double sfq_loss_apa_blocks(const float *attn, const float *target, int depth, const sfq_apa_block *blk,
                           double scale, float *dattn);

/* ---- inter-head attention alignment (loss_head.c) ---------------------- *
 * One image, the read-back layout of sfq_loss_apa_blocks (prefix tokens
 * excluded). MimiQ's observation: on real images the heads of a block
 * attend alike, on synthetic ones they do not. Every block with two or
 * more heads contributes the mean over its head pairs of 1 - cos:
 *   L = scale (1/depth) sum_l (2 / (H (H - 1))) sum_{h < h'}
 *       (1 - <a_lh, a_lh'> / (max(|a_lh|, 1e-12) max(|a_lh'|, 1e-12)))
 * with a_lh = attn[l, h, prefix:] (form SFQ_HEAD_ALIGN_COSINE), or the same
 * mean of 1 - SSIM(a_lh, a_lh') with the whole read-back as one window
 * (SFQ_HEAD_ALIGN_SSIM; population means, variances and covariance,
 * C1 = 1e-4, C2 = 9e-4). dattn (may be NULL) += dL/dattn (the norm's
 * clamp, where it binds, passes no gradient). Returns L. */
enum { SFQ_HEAD_ALIGN_COSINE = 0, SFQ_HEAD_ALIGN_SSIM = 1 };
double sfq_loss_head_align(const float *attn, int depth, const sfq_apa_block *blk, double scale, int form,
                           float *dattn);

/* ---- soft-label cross-entropy (loss_ce.c) ----------------------------- *
 * L = -(1/B) sum_b sum_k T[b,k] log softmax(z_b)[k]; one-hot targets give
 * the ordinary cross-entropy (nn.CrossEntropyLoss, mean reduction). Rows of
 * T need not sum to 1: dL/dz[b,k] = (softmax(z_b)[k] sum_k' T[b,k'] -
 * T[b,k]) / B. dlogits (B x K, may be NULL) is written. Returns L. */
double sfq_loss_soft_ce(const float *logits, const float *targets, int B, int K, float *dlogits);

/* Soft target: T = softmax(Z) with Z[c] ~ U(lo, hi) for each of the m
 * classes in `classes` and 0 elsewhere (one row of K floats). One uniform
 * draw per listed class, in list order; a repeated class keeps its last
 * draw, a class outside [0, K) is ignored (its draw still consumed). */
void sfq_soft_target(sfq_rng *r, const int32_t *classes, int m, int K, float lo, float hi,
                     float *target);

/* ---- total variation (loss_tv.c) -------------------------------------- *
 * x [B][C][H][W]. PSAQ-ViT's get_image_prior_losses (generate_data.py):
 * TV = ||d1|| + ||d2|| + ||d3|| + ||d4||, each the Frobenius norm over the
 * whole batch of one difference map (i = row, j = column):
 *   d1 = x[..., :, :-1]   - x[..., :, 1:]     x[i][j]   - x[i][j+1]
 *   d2 = x[..., :-1, :]   - x[..., 1:, :]     x[i][j]   - x[i+1][j]
 *   d3 = x[..., 1:, :-1]  - x[..., :-1, 1:]   x[i+1][j] - x[i][j+1]
 *   d4 = x[..., :-1, :-1] - x[..., 1:, 1:]    x[i][j]   - x[i+1][j+1]
 * L = |TV - tau| (PSAQ-ViT: torch.norm(TV - tau), weight 0.05).
 * dx (may be NULL) += weight * dL/dx, with torch.norm's zero subgradient:
 * no gradient when TV == tau, and none from a map whose norm is 0.
 * Returns L; *tv (may be NULL) receives TV. */
double sfq_loss_tv(const float *x, int B, int C, int H, int W, float tau, float weight, float *dx,
                   double *tv);

/* ---- PSAQ-ViT patch-similarity entropy (loss_pse.c) ------------------- *
 * One block's term of PSAQ-ViT's generate_data.py (with utils/kde.py's
 * GaussianKernel); PSAQ-ViT's total is the sum of this over all blocks.
 * ao [B][N][H*hd]: the block's attention output softmax(QK^T)V before the
 * projection (PSAQ-ViT hooks matmul2), heads contiguous.
 *  - f = mean over heads -> [B][N][hd]; drop the first `skip` tokens
 *    (PSAQ-ViT: [:, 1:, :]); M = N - skip.
 *  - Gamma_b[i][j] = torch.cosine_similarity(f_i, f_j) over all M*M pairs
 *    incl. i == j: <f_i / max(|f_i|, 1e-8), f_j / max(|f_j|, 1e-8)> (the
 *    eps placement of torch >= 1.12; the clamp gets no gradient).
 *  - Grid x_0..x_9 = torch.linspace(lo, hi, 10), lo/hi = min/max of Gamma
 *    over the whole batch (taken with .item(): no gradient).
 *  - KDE of image b: p_b(x) = (1/M^2) sum_{i,j} exp(-(x - Gamma_b[i][j])^2
 *    / (2 h^2)) / sqrt(2 pi h^2), h = 0.01.
 *  - H_b = trapz over the grid of -(p_b + 1e-4) log(p_b + 1e-4) (the 1e-4
 *    is added to p before both factors); entropy = mean over b of H_b.
 *  L = -entropy. dao (same shape as ao, may be NULL) is written (zero on the
 * prefix tokens). Kernel values below 2^-87 are flushed to 0. Returns L, or
 * NaN (dao zeroed) if scratch memory cannot be allocated. */
double sfq_loss_pse(const float *ao, int B, int N, int H, int hd, int skip, float *dao);

/* The same term for windowed attention (Swin), which PSAQ-ViT runs with the
 * same code: ao [B][windows][N][H*hd], the block's attention output (B*nW,
 * heads, Nw, hd) with the windows of an image consecutive (window_partition
 * order), N = Nw tokens per window, heads contiguous.
 *  - f = mean over heads; the first `skip` tokens of EVERY window are
 *    dropped (PSAQ-ViT: [:, 1:, :] on the (B*nW, Nw, hd) tensor), M = N -
 *    skip; Gamma_{b,w} = the M x M cosine similarities within window w.
 *  - .view(B, -1) merges an image's windows: p_b(x) = (1/(windows M^2))
 *    sum_{w,i,j} kernel(x - Gamma_{b,w}[i][j]) (no cross-window pairs).
 *  - Grid lo/hi = min/max over the whole batch, all windows; the rest
 *    (h = 0.01, the 1e-4 floor, trapz over 10 points, L = -mean_b H_b) as
 *    above. dao has ao's layout (zero on every window's skipped tokens).
 * sfq_loss_pse is exactly (bit for bit) the windows == 1 case. Returns L,
 * 0 for empty shapes (windows <= 0 included), NaN (dao zeroed) if scratch
 * memory cannot be allocated. */
double sfq_loss_pse_windows(const float *ao, int B, int windows, int N, int H, int hd, int skip,
                            float *dao);

/* ---- MSR region resize (msr.c) ---------------------------------------- *
 * Bilinear resize (PyTorch F.interpolate(size=(H, W), mode='bilinear',
 * align_corners=False), no antialias) of the region [y0, y0+h) x [x0, x0+w)
 * of src [C][H][W] to dst [C][H][W] (the full input size): output index o
 * reads source s = max(0, (o + 0.5) * in / out - 0.5), taps floor(s) and
 * min(floor(s) + 1, in - 1) with weights 1 - frac(s), frac(s). A region not
 * inside the image (or empty) leaves dst untouched. */
void sfq_crop_resize(const float *src, int C, int H, int W, int y0, int x0, int h, int w,
                     float *dst);
/* Its exact adjoint: dsrc += R^T ddst (only the region is touched). */
void sfq_crop_resize_adjoint(const float *ddst, int C, int H, int W, int y0, int x0, int h, int w,
                             float *dsrc);

#endif
