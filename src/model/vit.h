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
    size_t n_params;
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
};

/* Internal forward flag: keep every block's attention output (softmax(QK^T)V
 * before the projection), read with sfq_state_attn_output. */
#define SFQ_FORWARD_KEEP_AO 0x100u

/* The run state (struct sardfq_state) is the executor's: src/exec/exec.h. */

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

/* Linear `index` of the quantization spec (qspec.h: patch embedding, block
 * linears, heads, Swin reductions) inside m's parameters; writable for the
 * owner of a private model (the quantizer, the loader). */
float *sfq_qlin_weight(const sardfq_model *m, int index);

#endif
