/* exec.h - running a plan (graph/plan.h): the fp32 executor with its
 * fake-quantization points, the run state, and the attention op.
 *
 * A run is one call on a const model: inference (nothing kept), a forward
 * that keeps what the backward reads, a forward that stops before a block,
 * or the backward to the input. A quantization point of the plan applies the
 * model's quantizer when the model's spec switches it on; a run may carry an
 * observer that sees each active point first (calibration) and may take it
 * over. Calibration state lives in the observer, never on the model. */
#ifndef SFQ_EXEC_H
#define SFQ_EXEC_H

#include "igemm.h"
#include "plan.h"
#include "vit.h"

/* ---- the run interface of synthesis and the recipes ------------------------ */

/* Internal forward flag: keep every block's attention output (softmax(QK^T)V
 * before the projection), read with sfq_state_attn_output. */
#define SFQ_FORWARD_KEEP_AO 0x100u

/* Forward with internal flags too (SARDFQ_FORWARD_* | SFQ_FORWARD_KEEP_AO). */
sardfq_status sfq_forward_state(const sardfq_model *m, sardfq_state *s, const float *images, int n,
                                uint32_t flags, float *logits);
/* Attention output of block l of the last forward with SFQ_FORWARD_KEEP_AO:
 * [n][N][D] (Swin: [n][windows][window tokens][stage dim], window order);
 * NULL if not kept. */
const float *sfq_state_attn_output(const sardfq_state *s, int block);
/* Where block l's attention output starts in the [depth][n][N][D] layout
 * of kept outputs and of dao (Swin: the blocks' [n][N_l][C_l] one after
 * the other); block = depth gives the total. */
size_t sfq_ao_offset(const sardfq_model *m, int n, int block);
/* How block l's attention is laid out: `windows` groups of `tokens` tokens
 * per image (ViT: 1 group of all N tokens), `heads` heads of `head_dim`. */
void sfq_block_attention_shape(const sardfq_model *m, int l, int *windows, int *tokens, int *heads, int *head_dim);
/* Backward with an extra gradient dao on every block's attention output,
 * laid out as sfq_ao_offset says (may be NULL). */
sardfq_status sfq_backward_state(const sardfq_model *m, sardfq_state *s, const float *dlogits,
                                 const float *dattn, const float *dao, float *dimages);

/* The residual stream entering block `upto` (0..depth; depth = after the
 * last block, before the final norm) for n images: x [n][N][D]. Quantized
 * models quantize on the way as in their forward. */
sardfq_status sfq_forward_blocks(const sardfq_model *m, const float *images, int n, int upto, float *x);

/* ---- the executor ------------------------------------------------------------ */

/* Sees x (rows x cols, row stride ld) at active point `point` before the
 * spec's quantizer applies; sets *handled to skip that quantizer (it has
 * done what the point needs, or nothing is to change). nt = threads. */
typedef sardfq_status (*sfq_observer_fn)(void *ctx, int point, float *x, int64_t rows, int cols, int64_t ld,
                                         int nt, int *handled);
typedef struct {
    sfq_observer_fn fn;
    void *ctx;
} sfq_observer;

/* What one step kept in a forward for the backward (NULL = nothing). */
typedef struct {
    float *out;         /* the kept output (qkv, fc1 output; attention output
                           with SFQ_FORWARD_KEEP_AO) */
    const float *in;    /* where the input was read (GELU: pre; ATTENTION:
                           qkv) */
    float *xhat, *rstd; /* LAYERNORM */
    float *probs;       /* ATTENTION: the probabilities P V used */
    float *raw;         /* ATTENTION in training: the softmax before its
                           point (NULL when no point is on) */
    int seeded;         /* backward: WINDOW_GATHER's output gradient was
                           seeded from its input's (fp32.c grad_acc) */
} sfq_kept;

struct sardfq_state {
    const sardfq_model *model;
    int n;          /* images of the last forward_ex (0 = none) */
    uint32_t flags; /* its flags */
    int nt;         /* its thread count (fixes the work layout) */
    int block;      /* the block of a training forward (SFQ_FORWARD_TRAIN) */
    float *attn;    /* [n][attention_floats] read-back */
    float *feat;    /* [n][num_features] */
    sfq_kept *kept; /* per step of the plan */
    float *buffers; /* the kept activations */
    size_t buffer_floats;
    float *work;    /* forward/backward working buffers */
    size_t work_floats;
};

/* Inference forward (nothing kept); obs may be NULL. */
sardfq_status sfq_exec_forward(const sardfq_model *m, const sfq_observer *obs, const float *images, int n,
                               float *logits);
/* For tests: a fake-quantized inference forward of a quantized model that
 * also runs every integer linear and head of its integer form on the same
 * input (codes recovered from the fake-quantized values) and reports the
 * largest max |int - float| / max |float| over those steps and their
 * count. */
sardfq_status sfq_exec_check_int(const sardfq_model *m, const float *images, int n, double *max_rel, int *steps);
/* Forward keeping what flags ask (SARDFQ_FORWARD_* | SFQ_FORWARD_KEEP_AO)
 * in s; logits may be NULL. On failure the state keeps the previous
 * forward. */
sardfq_status sfq_exec_forward_state(const sardfq_model *m, sardfq_state *s, const float *images, int n,
                                     uint32_t flags, float *logits);
/* The residual stream entering block `upto` (0..depth) for n images. */
sardfq_status sfq_exec_forward_blocks(const sardfq_model *m, const sfq_observer *obs, const float *images,
                                      int n, int upto, float *x);
/* Backward of the state's last forward (kept with SARDFQ_FORWARD_BACKWARD):
 * dimages from dlogits, dattn (the read-back's gradient) and dao (every
 * block's attention output, sfq_ao_offset layout); each may be NULL. */
sardfq_status sfq_exec_backward(const sardfq_model *m, sardfq_state *s, const float *dlogits,
                                const float *dattn, const float *dao, float *dimages);

/* ---- training a block (block reconstruction) ------------------------------ */

/* State flag of a block forward for training. */
#define SFQ_FORWARD_TRAIN 0x200u

/* A run through block l's steps that learns: each active point quantizes
 * through the trainer (which keeps what its straight-through backward
 * needs), a linear may compute with the trainer's weight instead of the
 * model's, and the backward hands every point the gradient at its output
 * and every linear that asks dW. */
typedef struct {
    sardfq_status (*point_fwd)(void *ctx, int point, float *x, int64_t rows, int cols, int64_t ld, int nt);
    void (*point_bwd)(void *ctx, int point, float *g, int64_t rows, int cols, int64_t ld);
    const float *(*weight)(void *ctx, const sfq_step *st); /* NULL: the model's */
    float *(*weight_grad)(void *ctx, const sfq_step *st);  /* NULL: not wanted */
    /* May be NULL. In the backward of the block's attention, after the
     * probabilities' point: P, the softmax output (rows x cols, each row a
     * distribution over keys), and dS, the gradient at it, to which the
     * trainer may add a loss term's gradient. */
    void (*probs_bwd)(void *ctx, const float *P, float *dS, int64_t rows, int cols);
    void *ctx;
} sfq_trainer;

/* The steps of block l: [*first, *end). */
void sfq_block_steps(const sfq_plan *p, int l, int *first, int *end);
/* Block l of m on its input x_in [n][rows][cols] (the residual stream
 * entering it), keeping everything the backward reads in s; *x_out points
 * at the block's output inside s (valid until s's next run). */
sardfq_status sfq_exec_block_forward(const sardfq_model *m, sardfq_state *s, const sfq_trainer *t, int l,
                                     const float *x_in, int n, const float **x_out);
/* The backward of that forward from dout (the block output's gradient):
 * the trainer gets the points' and weights' gradients. */
sardfq_status sfq_exec_block_backward(const sardfq_model *m, sardfq_state *s, const sfq_trainer *t,
                                      const float *dout);
/* After sfq_exec_block_forward on s: the block's attention probabilities
 * (the softmax output, before any point on it), rows x cols as the
 * trainer's probs_bwd sees them; NULL if s holds no block forward. The
 * layout depends only on the plan, so the FP and the quantized model give
 * comparable arrays. */
const float *sfq_exec_block_probs(const sardfq_model *m, const sardfq_state *s, int64_t *rows, int *cols);
/* The residual stream leaving block l (before any patch merging that
 * follows) for n images of m. */
sardfq_status sfq_exec_forward_through(const sardfq_model *m, const float *images, int n, int l, float *x);

/* ---- the attention op (attention.c) ------------------------------------ */

/* Per-thread scratch floats of step st's attention. */
size_t sfq_attention_chunk(const sfq_step *st);

/* Integer q k^T (the integer executor): codes of q and k, [rows][C] each,
 * with their scales and integer zero points; per-thread scratch of
 * sfq_attention_int_chunk bytes. */
typedef struct {
    int isa;
    const uint8_t *qc, *kc;
    float sq, sk;
    int32_t zq, zk;
    uint8_t *scratch;
    size_t chunk;
} sfq_attn_int;
size_t sfq_attention_int_chunk(const sfq_step *st);

typedef struct {
    const sfq_step *st;
    const sfq_attn_int *iq; /* integer scores, or NULL */
    const float *qkv;   /* [n][rows][3C] */
    float *probs;       /* [n][windows][heads][Nw][Nw] */
    float *ao;          /* [n][rows][C] */
    float *attn;        /* read-back [n][T] or NULL */
    int64_t T;          /* read-back floats per image */
    float alpha;        /* on Q K^T */
    int softmax;        /* the scores pass also takes the softmax */
    const struct sfq_qact_ready *probs_q; /* fused forward: the probabilities' point, or NULL */
    const float *dao, *dattn;
    float *dqkv, *dS;
    float *scratch;     /* chunk floats per thread */
    size_t chunk;
} sfq_attn_run;

/* Forward for n images: fused per (window, head), with probs_q (when
 * set) applied to each unit's probabilities between its softmax and its
 * P V (inference only: the point neither observes nor trains there); or
 * in two passes (scores, then P V) around the caller's quantization of
 * all scores. */
void sfq_attention_fwd(const sfq_attn_run *a, int n, int nt);
void sfq_attention_scores(const sfq_attn_run *a, int n, int nt);
void sfq_attention_pv(const sfq_attn_run *a, int n, int nt);
/* Backward: dqkv from dao (and dattn through the read-back). */
void sfq_attention_bwd(const sfq_attn_run *a, int n, int nt);
/* The same in two passes, for a point on the probabilities between them:
 * dS = dO V^T (+ read-back) and dV = P^T dO with P = probs; then the
 * softmax backward given raw (the probabilities before their point) and
 * dQ = scale dS K, dK = scale dS^T Q. */
void sfq_attention_bwd_pv(const sfq_attn_run *a, int n, int nt);
void sfq_attention_bwd_qk(const sfq_attn_run *a, const float *raw, float scale, int n, int nt);

#endif
