/* plan.h - the network as data: a flat list of steps over named variables.
 *
 * A per-architecture builder (plan_vit.c, plan_swin.c) turns a configured
 * model into a plan once, at load; the executors (src/exec/) loop over it.
 * Nothing else knows how a ViT or a Swin is wired.
 *
 * Variables are per-image buffers of rows x cols floats (the batch is the
 * outer dimension): the residual stream, LayerNorm outputs, qkv, the
 * attention output, ... A step reads its inputs and writes its output
 * variable, either replacing it or, for the residual updates, adding to it
 * (steps are not SSA: the residual stream is one variable updated in
 * place). Each variable has a work slot; variables whose lifetimes do not
 * overlap share one, so a forward needs what 0.3's hand-written graphs
 * needed. A step may ask to keep its output for the backward pass (qkv,
 * the fc1 output), and LayerNorm and attention keep what their backward
 * reads.
 *
 * Quantization points are data too: a step names the points (indices of the
 * model's quantization spec, qspec.h) that apply to its output and, for
 * some kinds, inside it. The fp32 executor applies those that the spec
 * switches on, or hands them to an observer while calibrating. */
#ifndef SFQ_PLAN_H
#define SFQ_PLAN_H

#include "core.h"

enum sfq_op {
    SFQ_OP_PATCHIFY,      /* out [G][C p p] = the image's patches (im2col) */
    SFQ_OP_LINEAR,        /* out = in W^T + b, or out += (accumulate) */
    SFQ_OP_LAYERNORM,     /* out = LN(in) over cols; keeps xhat, 1/std */
    SFQ_OP_GELU,          /* out = GELU(in) (exact erf); in is kept */
    SFQ_OP_PREFIX_POS,    /* out = [class; dist; in] + pos */
    SFQ_OP_WINDOW_GATHER, /* out (window order) = in (raster), cyclic shift */
    SFQ_OP_WINDOW_SCATTER_ADD, /* out (raster) += in (window order) */
    SFQ_OP_MERGE_GATHER,  /* out [N/4][4C] = 2x2 patch merging of in [N][C] */
    SFQ_OP_ATTENTION,     /* out = softmax(alpha Q K^T + bias + mask) V per
                             (window, head); qkv in, keeps qkv and probs */
    SFQ_OP_SELECT_PREFIX, /* out [P][D] = the first P rows of in */
    SFQ_OP_MEAN_TOKENS,   /* out [1][C] = the mean of in's rows */
    SFQ_OP_HEAD,          /* logits = mean over the P rows of in of
                             row p W_p^T + b_p (P = 1: a plain linear) */
    SFQ_OP_COUNT
};

/* Point slots of a step (pt[]); -1 = none. */
enum {
    SFQ_PT_OUT = 0,   /* the output, after the step */
    SFQ_PT_PRE_ADD,   /* LINEAR accumulate: its product before the add */
    SFQ_PT_MID,       /* PREFIX_POS: [class; dist; in] before + pos */
    SFQ_PT_Q = 1,     /* ATTENTION: q, k, v columns of the input */
    SFQ_PT_K = 2,
    SFQ_PT_V = 3,
    SFQ_PT_SCORES = 4, /* ATTENTION: scores before the softmax */
    SFQ_PT_PROBS = 5, /* ATTENTION: the softmax */
    SFQ_PT_IN0 = 1,   /* HEAD: its input row p */
    SFQ_PT_COUNT = 6
};

/* Attention read-back kinds. */
enum {
    SFQ_READ_CLS_ROW,    /* the class token's row of the probabilities */
    SFQ_READ_MEAN_QUERY  /* the mean over all queries, in image positions */
};

typedef struct {
    int rows, cols; /* per image */
    int slot;       /* work slot */
    const char *name;
} sfq_var;

/* Window geometry of an attention step or a window permutation: a gh x gw
 * grid of tokens (after `prefix` leading tokens, ViT only) cut into wh x ww
 * windows, cyclically shifted by (sh, sw) when `shifted`. A ViT is one
 * window of all its tokens. */
typedef struct {
    int gh, gw, wh, ww, sh, sw, shifted;
} sfq_window;

typedef struct sfq_step {
    int op;
    int in, in2, out; /* variables (in2: unused = -1) */
    int accumulate;   /* LINEAR, WINDOW_SCATTER_ADD: out += */
    int keep_out;     /* output kept for the backward pass */
    int block;        /* transformer block, -1 outside blocks */
    int lin;          /* LINEAR, HEAD: the weight's index in the quantization
                         spec (qspec.h sfq_qlin_*), -1 none */
    int pt[SFQ_PT_COUNT];
    /* parameters (views into the model's buffer; NULL when absent) */
    const float *w, *b;       /* LINEAR, LAYERNORM; HEAD: row 0's head */
    const float *w2, *b2;     /* HEAD: row 1's head (distilled) */
    const float *cls, *dist, *pos; /* PREFIX_POS */
    int rows_in, cols_in;     /* LINEAR/HEAD: in's width is cols_in */
    /* ATTENTION */
    sfq_window win;
    int heads, dim, tokens; /* heads, width, tokens per window */
    float alpha;            /* scale on Q K^T */
    int prescale_q;         /* quantized: scale q in place first (Swin) */
    const float *bias_table; /* [(2w-1)^2][heads] or NULL */
    const int *relidx;       /* [tokens][tokens] rows of the table */
    int readback;            /* SFQ_READ_* */
    int64_t read_off;        /* this block's offset in an image's read-back */
} sfq_step;

typedef struct sfq_plan {
    sfq_var *vars;
    int nvars, cap_vars;
    sfq_step *steps;
    int nsteps, cap_steps;
    int nslots;
    int features;   /* variable whose row 0 is the feature read-back */
    int *block_first; /* [depth + 1]: first step of block l; [depth]: the
                         first step after the last block */
    int *block_resid; /* [depth + 1]: the residual-stream variable entering
                         block l ([depth]: leaving the last block) */
    int oom;          /* a builder helper ran out of memory */
    sfq_step dummy;   /* what sfq_plan_step returns then */
    int depth;
    int64_t readback_floats; /* attention read-back per image */
    /* image geometry of PATCHIFY */
    int chans, img_h, img_w, patch, grid_h, grid_w;
} sfq_plan;

/* Image position (raster index in the grid) of token i of window w. */
int sfq_window_pos(const sfq_window *g, int w, int i);
/* Region labels (0..8) of window w's tokens in the shifted frame, lab[wh ww]:
 * tokens of different labels do not attend to each other (timm's mask). */
void sfq_window_labels(const sfq_window *g, int w, int *lab);

/* Windows per image of an attention step's geometry (1 for a ViT). */
int sfq_attention_windows(const sfq_step *st);

/* A plan is built by its architecture's builder (model/plan_vit.c,
 * model/plan_swin.c, switched in model/model.c); free is NULL-safe. */
void sfq_plan_free(sfq_plan *p);

/* Point every parameter view of p's steps (w, b, w2, b2, cls, dist, pos,
 * bias_table) at map(ctx, view) instead: the model moved its parameters
 * (model.c, when a final quantized model lets go of the float copies it
 * keeps as codes). NULL views stay NULL. */
void sfq_plan_relocate(sfq_plan *p, const float *(*map)(const void *ctx, const float *view), const void *ctx);

/* ---- for the builders ---------------------------------------------------- */

/* Append a variable (returns its index). Out of memory sets p->oom (the
 * builder checks it once at the end). */
int sfq_plan_var(sfq_plan *p, const char *name, int rows, int cols, int slot);
/* Append a step with no points and return it for the builder to fill (out
 * of memory: p->oom and a scratch step). */
sfq_step *sfq_plan_step(sfq_plan *p, int op, int in, int out, int block);

#endif
