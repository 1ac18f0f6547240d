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

/* The block's floating-point parameters (borrowed). Weights in order qkv,
 * proj, fc1, fc2. */
typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *w[4], *b[4];
} sfq_rblock_w;

typedef struct {
    const sardfq_model_info *cfg;
    int n; /* images */
    sfq_rblock_w w;
    /* quantizers: the learned ones are act[].scale and ada[].v */
    int on[SFQ_RQ_COUNT];
    sfq_uq act[SFQ_RQ_COUNT];
    int log_on;
    sfq_lq lq;
    int wbits[4];
    const sfq_uq *wrows[4];
    sfq_ada ada[4];
    int hard; /* forward with hardened rounding */
    /* gradients of the last backward */
    double gs[SFQ_RQ_COUNT];
    float *gv[4];
    /* buffers */
    float *wq[4], *gw[4], *dwdv[4];
    size_t wsize[4];
    float *h1, *qkv, *dqkv, *probs, *pq, *dp, *loff, *ao, *x1, *h2, *xhat2, *rstd2, *pre, *g, *dg, *out, *gbuf;
    uint8_t *lpass;
    float *off[SFQ_RQ_COUNT], *ds[SFQ_RQ_COUNT];
    uint8_t *pass[SFQ_RQ_COUNT];
    float *mem;
} sfq_rblock;

/* Buffers for n images (everything else zeroed); SARDFQ_E_NOMEM. */
sardfq_status sfq_rblock_alloc(sfq_rblock *rb, const sardfq_model_info *cfg, int n);
void sfq_rblock_free(sfq_rblock *rb);
/* Forward of the quantized block on x [n][N][D]; returns the
 * reconstruction loss against target. frozen: reuse the rounding offsets of
 * the last non-frozen forward (the STE surrogate; for gradient checks). */
double sfq_rblock_forward(sfq_rblock *rb, const float *x, const float *target, int frozen);
/* Gradients of that loss (gs, gv) after a forward. */
void sfq_rblock_backward(sfq_rblock *rb, const float *target);

#endif
