/* swin.h - the Swin Transformer (V1): stage geometry, parameter layout
 * and the mean-attention read-back's APA target (the network is its plan,
 * plan_swin.c).
 *
 * Parameters (one buffer, in this order; C_s = stage width, h_s heads,
 * M_s mlp hidden, w the window of the relative-position tables):
 *   patch_w [C_0][C*p*p]  patch_b [C_0]  patch norm w/b [C_0]
 *   stage s > 0: merge norm w/b [4 C_{s-1}], reduction [C_s][4 C_{s-1}],
 *                reduction bias [C_s] (0 in checkpoints, which have none;
 *                RepQ-ViT's reparameterisation gives it a value)
 *   per block: the ViT block's parameters (vit.h, sfq_block_views), then
 *              rel_table [(2w-1)^2][h_s]
 *   norm w/b [C_last]  head [K][C_last] + [K]
 * The relative-position index and the shifted-window masks are derived
 * from the geometry, never stored. */
#ifndef SFQ_SWIN_H
#define SFQ_SWIN_H

#include "vit.h"

typedef struct {
    int dim, heads, hidden; /* C, h, M */
    int gh, gw;             /* token grid */
    int wh, ww;             /* window: the model's, clipped to the grid */
    int sh, sw;             /* shift of the odd blocks (0 on an axis whose grid
                               is one window) */
    int depth, first;       /* blocks first .. first + depth - 1 */
    const float *ds_norm_w, *ds_norm_b, *ds_red_w, *ds_red_b; /* patch merging
                                                      into the stage (NULL for s = 0) */
} sfq_swin_stage;

typedef struct sfq_swin {
    int n_stages;
    sfq_swin_stage st[SARDFQ_MAX_STAGES];
    const float *pe_norm_w, *pe_norm_b; /* LayerNorm after the patch embedding */
    int *relidx[SARDFQ_MAX_STAGES];     /* per stage [Nw][Nw]: row of the tables */
} sfq_swin;

/* Check a Swin configuration (stage fields, window, image and patch sizes)
 * and fill the derived fields of *cfg: grid, tokens, head_dim, mlp_hidden,
 * num_features, attention_floats. */
sardfq_status sfq_swin_configure(sardfq_model_info *cfg);

/* Allocate m->params and m->swin for m->info (configured) and set the
 * views; fills parameter count and FLOPs. */
sardfq_status sfq_swin_alloc_params(sardfq_model *m);
void sfq_swin_free(sfq_swin *w);
/* The Swin plan into p (plan_swin.c). */
sardfq_status sfq_plan_build_swin(sardfq_model *m, struct sfq_plan *p);

/* Stage of block l. */
int sfq_swin_block_stage(const sardfq_model *m, int l);

/* APA target of block l, in place on one head's prior over the block's
 * stage grid (raster order, sums to 1). The block's mean attention gives
 * each attention group (the tokens of one window, split by the
 * shifted-window mask) the fixed mass |group| / N, whatever the input: the
 * target keeps the prior's shape within each group and gives the group
 * that mass (uniform within a group where the prior has no mass). */
void sfq_swin_apa_target(const sardfq_model *m, int l, float *prior);

/* Read-back geometry: the image position (raster index in the stage grid)
 * of token i of window w in block l's (possibly shifted) partition. */
int sfq_swin_token_pos(const sfq_swin_stage *st, int shifted, int w, int i);

#endif
