/* recon.h - one transformer block as a differentiable function of its
 * quantizer parameters (weight rounding, activation step sizes), for block
 * reconstruction (recon.c has the maths). */
#ifndef SFQ_RECON_H
#define SFQ_RECON_H

#include "qspec.h"

/* AdaRound state of one weight: rounding variables and floor(w / s). */
typedef struct {
    float *v, *base;
} sfq_ada;

void sfq_ada_init(sfq_ada *a, const float *w, const sfq_uq *rows, int nrows, int cols);
/* out = the AdaRound weight (soft, or hard: h = V >= 0); dwdv (may be
 * NULL) = d out / d V (0 where the level clamps). */
void sfq_ada_weight(const sfq_ada *a, const sfq_uq *rows, int nrows, int cols, int hard, float *out,
                    float *dwdv);
/* lambda * sum (1 - |2 h(V) - 1|^beta); its gradient is added into gv. */
double sfq_ada_reg(const sfq_ada *a, size_t n, float beta, float lambda, float *gv);

/* Uniform quantizer slots of a block, in order: qkv input, q, k, v, proj
 * input, fc1 input, fc2 input. */
#define SFQ_RQ_COUNT 7
/* The activation point (SFQ_AP_*) of a slot. */
int sfq_recon_point(int slot);

struct sardfq_state;

/* One transformer block (ViT or Swin) of a quantized model as a
 * differentiable function of its quantizer parameters: the executor runs
 * the block's steps of the model's plan, with the AdaRound weights in place
 * of its four quantized weights and the slots' step sizes at its points. */
typedef struct {
    const struct sardfq_model *m; /* the quantized model (borrowed) */
    int l, n;                     /* block, images */
    int pt[SFQ_RQ_COUNT], pt_probs; /* the slots' points (spec indices) */
    int lin[4];                   /* the weights' linear indices: qkv, proj,
                                     fc1, fc2 */
    /* quantizers: the learned ones are act[].scale and ada[].v */
    int on[SFQ_RQ_COUNT];
    sfq_uq act[SFQ_RQ_COUNT];
    int log_on;
    sfq_lq lq;
    int wbits[4];
    const sfq_uq *wrows[4];
    sfq_ada ada[4];
    int hard;   /* forward with hardened rounding */
    int frozen; /* replay the last non-frozen forward's rounding offsets */
    /* gradients of the last backward */
    double gs[SFQ_RQ_COUNT];
    float *gv[4];
    /* buffers */
    float *wq[4], *gw[4], *dwdv[4];
    size_t wsize[4];
    size_t slot_floats[SFQ_RQ_COUNT], probs_floats;
    float *off[SFQ_RQ_COUNT], *ds[SFQ_RQ_COUNT];
    uint8_t *pass[SFQ_RQ_COUNT];
    float *loff;
    uint8_t *lpass;
    float *dout;
    size_t out_floats; /* n x the block's output */
    const float *out;  /* the last forward's output (inside st) */
    /* head-wise attention distillation (sfq_rblock_set_attn_target): */
    float attn_w;        /* weight (0 = off) */
    const float *ptgt;   /* the FP block's probabilities (borrowed) */
    int64_t prows;       /* rows x pcols of them */
    int pcols;
    double attn_loss;    /* the last forward's KL term, unweighted */
    struct sardfq_state *st;
    float *mem;
} sfq_rblock;

/* Set up block l of the quantized model m for n images: the slots' and
 * weights' quantizers as calibrated, AdaRound started from the FP weights
 * of fp (the floating-point model with the same reparameterisation), and
 * the buffers. SARDFQ_E_NOMEM. */
sardfq_status sfq_rblock_setup(sfq_rblock *rb, const struct sardfq_model *m, const struct sardfq_model *fp, int l,
                               int n);
void sfq_rblock_free(sfq_rblock *rb);
/* Head-wise attention distillation: with weight w > 0 the block's loss
 * gains w times the mean over the attention rows (image, window, head,
 * query) of KL(P_fp || P_q), the FP block's probabilities (target, rows x
 * cols in sfq_exec_block_probs's layout, borrowed until the next call) to
 * the quantized block's softmax output (before its log-sqrt2 point):
 *   L_attn = (1/rows) sum_r sum_j t_rj (log t_rj - log max(p_rj, 1e-30))
 * (terms with t_rj = 0 vanish). SARDFQ_E_SHAPE if the target's shape is
 * not the block's. */
sardfq_status sfq_rblock_set_attn_target(sfq_rblock *rb, float w, const float *target, int64_t rows, int cols);
/* Forward of the quantized block on x (the residual stream entering it);
 * *loss = the reconstruction loss against target (the FP block's output),
 * plus attn_w x L_attn when distillation is on.
 * frozen: reuse the rounding offsets of the last non-frozen forward (the
 * STE surrogate; for gradient checks). */
sardfq_status sfq_rblock_forward(sfq_rblock *rb, const float *x, const float *target, int frozen, double *loss);
/* Gradients of that loss (gs, gv) after a forward. */
sardfq_status sfq_rblock_backward(sfq_rblock *rb, const float *target);

#endif
