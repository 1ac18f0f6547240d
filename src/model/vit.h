/* vit.h - the Vision Transformer graph: weights, configuration, run state.
 *
 * Shapes (B images, N tokens = P prefix + G patches, D embed dim, H heads,
 * hd = D / H, M mlp hidden, K classes, C channels, p patch):
 *   patch_w [D][C*p*p]   patch_b [D]   cls [D]   dist [D] (distilled only)
 *   pos [N][D]
 *   per block: ln1_w/b [D], qkv_w [3D][D] (rows Q;K;V, heads contiguous),
 *   qkv_b [3D], proj_w [D][D], proj_b [D], ln2_w/b [D], fc1_w [M][D],
 *   fc1_b [M], fc2_w [D][M], fc2_b [D]
 *   norm_w/b [D]   head_w [K][D]   head_b [K]   head_dist_w/b (distilled)
 * All parameters live in one contiguous buffer; the pointers are views. */
#ifndef SFQ_VIT_H
#define SFQ_VIT_H

#include "core.h"

typedef struct {
    const float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
    const float *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
    const float *rel_table; /* Swin: relative position bias [(2w-1)^2][heads] */
} sfq_block;

struct sardfq_model {
    sardfq_model_info info;
    float *params; /* one buffer with every parameter */
    size_t n_params; /* the model's parameter count */
    size_t n_held;   /* floats in params: n_params, less the weights that a
                        final quantized model holds only as integer codes
                        (sfq_model_drop_int_weights) */
    const float *patch_w, *patch_b, *cls, *dist, *pos;
    const float *norm_w, *norm_b, *head_w, *head_b, *head_dist_w, *head_dist_b;
    sfq_block *blocks; /* depth entries */
    char **meta_keys, **meta_vals;
    int n_meta;
    int n_threads; /* params.n_threads (0 = OpenBLAS's count) */
    struct sfq_swin *swin; /* Swin: stage geometry and views (swin.h); NULL
                              for ViT/DeiT */
    struct sfq_plan *plan; /* the network as data (graph/plan.h), built with
                              the parameter views */
    struct sfq_qspec *q; /* quantized model: its activation quantizers (the
                            weights in params are already fake-quantized);
                            NULL for a floating-point model */
    struct sfq_iplan *ip; /* quantized model: its integer form (iplan.h),
                             made when the model became final */
    int executor;         /* SARDFQ_EXECUTOR_* of its params */
    const uint8_t **load_codes; /* while a quantized file loads: per linear
                                   (qspec.h index), its codes in the file
                                   (sfq_qcodes layout) or NULL; such a
                                   weight's floats are not written, and
                                   sfq_model_finalize packs the codes or
                                   decodes them. NULL otherwise. */
};

/* Running a model (forward, kept state, backward, block ranges) is the
 * executor's: src/exec/exec.h. */

/* sardfq_model_params with the caller's fields (struct_size honoured)
 * over the defaults, checked (model.c). */
sardfq_status sfq_model_read_params(const sardfq_model_params *in, sardfq_model_params *out);

/* Thread count for library loops on model m: sfq_compute_threads of its
 * n_threads setting (compute.h). */
int sfq_model_threads(const sardfq_model *m);

/* A deep copy (parameters, quantizers, metadata). */
sardfq_status sfq_model_clone(const sardfq_model *src, sardfq_model **out);
/* Add or replace one metadata pair. */
sardfq_status sfq_model_set_metadata(sardfq_model *m, const char *key, const char *val);

/* Compute parameter count and FLOPs into m->info. */
void sfq_model_fill_derived(sardfq_model *m);

/* One transformer block's parameters (width D, mlp hidden M) in the
 * order of the shapes comment above: their float count, and the views set
 * from p (returns p advanced past them). */
size_t sfq_block_floats(size_t D, size_t M);
float *sfq_block_views(sfq_block *b, float *p, size_t D, size_t M);

/* Allocate m->params for the current info (depth, dims), set the views and
 * build m->plan: the architecture switch (model.c). Returns
 * SARDFQ_E_NOMEM. */
sardfq_status sfq_model_alloc_params(sardfq_model *m);
/* The ViT/DeiT layout (vit.c): m->params and the views, dist/head_dist
 * only if distilled; fills the derived figures. */
sardfq_status sfq_vit_alloc_params(sardfq_model *m);
/* The ViT/DeiT plan into p (plan_vit.c). */
struct sfq_plan;
sardfq_status sfq_plan_build_vit(sardfq_model *m, struct sfq_plan *p);

/* The variables of one transformer block in a plan: the residual stream x,
 * the LayerNorm outputs h, qkv, the probabilities, the attention output
 * ao, the fc1 and GELU outputs; for a windowed block (Swin) also its
 * window-order copy xw and the projection's window-order output hp (-1 for
 * a ViT). */
typedef struct {
    int x, xw, h, qkv, probs, ao, hp, pre, hid;
} sfq_block_vars;
struct sfq_step;
/* Append the patch embedding's steps: images -> patches -> tok
 * (plan_block.c). */
void sfq_plan_patch_embed(struct sfq_plan *p, const sardfq_model *m, int patches, int tok);
/* Append block l's steps (plan_block.c); attn gives the attention step's
 * geometry (window, heads, width, tokens, alpha, bias, read-back). */
void sfq_plan_block(struct sfq_plan *p, const sfq_block *blk, int l, const sfq_block_vars *v,
                    const struct sfq_step *attn);

/* Linear `index` of the quantization spec (qspec.h: patch embedding, block
 * linears, heads, Swin reductions) inside m's parameters; writable for the
 * owner of a private model (the quantizer, the loader). NULL for a weight
 * that a final quantized model holds only as codes: readers of a final
 * model use sfq_qlin_weight_read (iplan.h). */
float *sfq_qlin_weight(const sardfq_model *m, int index);

/* The float weight of linear `index` (sfq_qlin_rows x sfq_qlin_cols) as m
 * computes with it: its view into m's parameters, or, for a weight that a
 * final quantized model holds only as codes (sfq_qlin_weight is NULL
 * then), the codes dequantized into scratch (that many floats) and scratch
 * returned: bit for bit the values the view held (sfq_uq_value of each
 * code; sfq_model_finalize drops a copy only when that holds). Reads m
 * only, so a shared model stays safe to use from several threads, each
 * with its own scratch. NULL if m has no weight for index. */
const float *sfq_qlin_weight_read(const sardfq_model *m, int index, float *scratch);

/* A quantized model becomes final (sardfq_quantizer_finalize, loading a
 * quantized file): its integer form (iplan.h, sfq_model_prepare_int), then
 * the float copy of every weight whose linear runs on integer kernels is
 * let go when dequantizing its codes gives it back bit for bit; the other
 * parameters move to a buffer of m->n_held floats, and the views and the
 * plan follow. Loading, a weight given by m->load_codes is packed from the
 * file's codes and never exists in float (no float round trip), unless its
 * linear runs in float: then the codes are decoded into it. Nothing for a
 * floating-point model. On failure (SARDFQ_E_NOMEM) m has no integer form
 * and all its float weights. */
sardfq_status sfq_model_finalize(sardfq_model *m);

#endif
