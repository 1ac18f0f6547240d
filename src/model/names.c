/* names.c - the tensor-name tables (names.h) and the names of the
 * quantization spec's linears and points built from them.
 *
 * Each architecture's rows are in the order save writes a block's (or the
 * model's) tensors; load binds in the same order. Formats take the indices
 * of the row's group:
 *   block b of stage s   ViT: blocks.b / encoder_layer_b (s = 0);
 *                        Swin: layers.s.blocks.b, torchvision features.(2s+1).b
 *   merge into stage s   timm layers.s.downsample, older timm
 *                        layers.(s-1).downsample, torchvision features.(2s) */
#include "names.h"

#include "qspec.h"
#include "swin.h"
#include "vit.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int id;                            /* SFQ_T_* */
    const char *name[SFQ_NAMES_COUNT]; /* printf formats (names.h) */
    unsigned flags;                    /* SFQ_NAME_* */
    const char *layer; /* a linear's weight: its layer's name when it is not
                          the timm name without ".weight" */
} name_row;

typedef struct {
    const name_row *rows;
    int n;
    const char *block; /* timm prefix of a block's rows, for the points inside it */
} arch_names;

#define TV_BLOCK "encoder.layers.encoder_layer_%d."
static const name_row VIT_ROWS[] = {
    {SFQ_T_PATCH_W, .name = {"patch_embed.proj.weight", NULL, "conv_proj.weight"}, .layer = "patch_embed"},
    {SFQ_T_PATCH_B, .name = {"patch_embed.proj.bias", NULL, "conv_proj.bias"}},
    {SFQ_T_CLS, .name = {"cls_token", NULL, "class_token"}},
    {SFQ_T_DIST, .name = {"dist_token"}},
    {SFQ_T_POS, .name = {"pos_embed", NULL, "encoder.pos_embedding"}},
    {SFQ_T_LN1_W, .name = {"blocks.%d.norm1.weight", NULL, TV_BLOCK "ln_1.weight"}},
    {SFQ_T_LN1_B, .name = {"blocks.%d.norm1.bias", NULL, TV_BLOCK "ln_1.bias"}},
    {SFQ_T_QKV_B, .name = {"blocks.%d.attn.qkv.bias", NULL, TV_BLOCK "self_attention.in_proj_bias"}, .flags = SFQ_NAME_OPTIONAL},
    {SFQ_T_PROJ_B, .name = {"blocks.%d.attn.proj.bias", NULL, TV_BLOCK "self_attention.out_proj.bias"}},
    {SFQ_T_LN2_W, .name = {"blocks.%d.norm2.weight", NULL, TV_BLOCK "ln_2.weight"}},
    {SFQ_T_LN2_B, .name = {"blocks.%d.norm2.bias", NULL, TV_BLOCK "ln_2.bias"}},
    {SFQ_T_FC1_B, .name = {"blocks.%d.mlp.fc1.bias", NULL, TV_BLOCK "mlp.0.bias", TV_BLOCK "mlp.linear_1.bias"}},
    {SFQ_T_FC2_B, .name = {"blocks.%d.mlp.fc2.bias", NULL, TV_BLOCK "mlp.3.bias", TV_BLOCK "mlp.linear_2.bias"}},
    {SFQ_T_QKV_W, .name = {"blocks.%d.attn.qkv.weight", NULL, TV_BLOCK "self_attention.in_proj_weight"}},
    {SFQ_T_PROJ_W, .name = {"blocks.%d.attn.proj.weight", NULL, TV_BLOCK "self_attention.out_proj.weight"}},
    {SFQ_T_FC1_W, .name = {"blocks.%d.mlp.fc1.weight", NULL, TV_BLOCK "mlp.0.weight", TV_BLOCK "mlp.linear_1.weight"}},
    {SFQ_T_FC2_W, .name = {"blocks.%d.mlp.fc2.weight", NULL, TV_BLOCK "mlp.3.weight", TV_BLOCK "mlp.linear_2.weight"}},
    {SFQ_T_NORM_W, .name = {"norm.weight", NULL, "encoder.ln.weight"}},
    {SFQ_T_NORM_B, .name = {"norm.bias", NULL, "encoder.ln.bias"}},
    {SFQ_T_HEAD_W, .name = {"head.weight", NULL, "heads.head.weight"}},
    {SFQ_T_HEAD_B, .name = {"head.bias", NULL, "heads.head.bias"}},
    {SFQ_T_HEAD_DIST_W, .name = {"head_dist.weight"}},
    {SFQ_T_HEAD_DIST_B, .name = {"head_dist.bias"}},
};
#undef TV_BLOCK

/* Swin: torchvision spells a block's tensors as timm does but the MLP */
#define SWIN_BLOCK(suffix) {"layers.%d.blocks.%d." suffix, NULL, "features.%d.%d." suffix}
#define SWIN_MERGE(suffix) {"layers.%d.downsample." suffix, NULL, "features.%d." suffix}
static const name_row SWIN_ROWS[] = {
    {SFQ_T_PATCH_W, .name = {"patch_embed.proj.weight", NULL, "features.0.0.weight"}, .layer = "patch_embed"},
    {SFQ_T_PATCH_B, .name = {"patch_embed.proj.bias", NULL, "features.0.0.bias"}},
    {SFQ_T_PE_NORM_W, .name = {"patch_embed.norm.weight", NULL, "features.0.2.weight"}},
    {SFQ_T_PE_NORM_B, .name = {"patch_embed.norm.bias", NULL, "features.0.2.bias"}},
    {SFQ_T_DS_NORM_W, .name = SWIN_MERGE("norm.weight")},
    {SFQ_T_DS_NORM_B, .name = SWIN_MERGE("norm.bias")},
    {SFQ_T_DS_RED_B, .name = SWIN_MERGE("reduction.bias"), .flags = SFQ_NAME_OPTIONAL},
    {SFQ_T_DS_RED_W, .name = SWIN_MERGE("reduction.weight")},
    {SFQ_T_LN1_W, .name = SWIN_BLOCK("norm1.weight")},
    {SFQ_T_LN1_B, .name = SWIN_BLOCK("norm1.bias")},
    {SFQ_T_QKV_B, .name = SWIN_BLOCK("attn.qkv.bias"), .flags = SFQ_NAME_OPTIONAL},
    {SFQ_T_PROJ_B, .name = SWIN_BLOCK("attn.proj.bias")},
    {SFQ_T_LN2_W, .name = SWIN_BLOCK("norm2.weight")},
    {SFQ_T_LN2_B, .name = SWIN_BLOCK("norm2.bias")},
    {SFQ_T_FC1_B, .name = {"layers.%d.blocks.%d.mlp.fc1.bias", NULL, "features.%d.%d.mlp.0.bias"}},
    {SFQ_T_FC2_B, .name = {"layers.%d.blocks.%d.mlp.fc2.bias", NULL, "features.%d.%d.mlp.3.bias"}},
    {SFQ_T_REL_TABLE, .name = SWIN_BLOCK("attn.relative_position_bias_table")},
    {SFQ_T_QKV_W, .name = SWIN_BLOCK("attn.qkv.weight")},
    {SFQ_T_PROJ_W, .name = SWIN_BLOCK("attn.proj.weight")},
    {SFQ_T_FC1_W, .name = {"layers.%d.blocks.%d.mlp.fc1.weight", NULL, "features.%d.%d.mlp.0.weight"}},
    {SFQ_T_FC2_W, .name = {"layers.%d.blocks.%d.mlp.fc2.weight", NULL, "features.%d.%d.mlp.3.weight"}},
    {SFQ_T_NORM_W, .name = {"norm.weight", NULL, "norm.weight"}},
    {SFQ_T_NORM_B, .name = {"norm.bias", NULL, "norm.bias"}},
    {SFQ_T_HEAD_W, .name = {"head.fc.weight", "head.weight", "head.weight"}, .layer = "head"},
    {SFQ_T_HEAD_B, .name = {"head.fc.bias", "head.bias", "head.bias"}},
};
#undef SWIN_BLOCK
#undef SWIN_MERGE

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
static const arch_names VIT = {VIT_ROWS, COUNT(VIT_ROWS), "blocks.%d"};
static const arch_names SWIN = {SWIN_ROWS, COUNT(SWIN_ROWS), "layers.%d.blocks.%d"};

static const arch_names *table(int arch) { return arch == SARDFQ_ARCH_SWIN ? &SWIN : &VIT; }

/* ---- what each tensor is: its view and its shape ------------------------- */

enum { IN_MODEL, IN_SWIN, IN_STAGE, IN_BLOCK };
/* shape symbols (0 ends a shape): C the width of the row's stage (the
 * model's for the rows outside the blocks), M its mlp hidden, H its heads,
 * T relative-position table rows, N tokens, K classes, F final features,
 * IN input channels, P patch */
enum { X_1 = 1, X_C, X_2C, X_3C, X_M, X_H, X_T, X_N, X_K, X_F, X_IN, X_P, X_COUNT };

#define MODEL(f) IN_MODEL, offsetof(struct sardfq_model, f)
#define BLOCK(f) IN_BLOCK, offsetof(sfq_block, f)
#define STAGE(f) IN_STAGE, offsetof(sfq_swin_stage, f)
static const struct {
    int in;
    size_t off;
    unsigned char dims[4];
} VIEWS[SFQ_T_COUNT] = {
    [SFQ_T_PATCH_W] = {MODEL(patch_w), {X_C, X_IN, X_P, X_P}},
    [SFQ_T_PATCH_B] = {MODEL(patch_b), {X_C}},
    [SFQ_T_CLS] = {MODEL(cls), {X_1, X_1, X_C}},
    [SFQ_T_DIST] = {MODEL(dist), {X_1, X_1, X_C}},
    [SFQ_T_POS] = {MODEL(pos), {X_1, X_N, X_C}},
    [SFQ_T_PE_NORM_W] = {IN_SWIN, offsetof(sfq_swin, pe_norm_w), {X_C}},
    [SFQ_T_PE_NORM_B] = {IN_SWIN, offsetof(sfq_swin, pe_norm_b), {X_C}},
    [SFQ_T_DS_NORM_W] = {STAGE(ds_norm_w), {X_2C}},
    [SFQ_T_DS_NORM_B] = {STAGE(ds_norm_b), {X_2C}},
    [SFQ_T_DS_RED_W] = {STAGE(ds_red_w), {X_C, X_2C}},
    [SFQ_T_DS_RED_B] = {STAGE(ds_red_b), {X_C}},
    [SFQ_T_LN1_W] = {BLOCK(ln1_w), {X_C}},
    [SFQ_T_LN1_B] = {BLOCK(ln1_b), {X_C}},
    [SFQ_T_QKV_W] = {BLOCK(qkv_w), {X_3C, X_C}},
    [SFQ_T_QKV_B] = {BLOCK(qkv_b), {X_3C}},
    [SFQ_T_PROJ_W] = {BLOCK(proj_w), {X_C, X_C}},
    [SFQ_T_PROJ_B] = {BLOCK(proj_b), {X_C}},
    [SFQ_T_LN2_W] = {BLOCK(ln2_w), {X_C}},
    [SFQ_T_LN2_B] = {BLOCK(ln2_b), {X_C}},
    [SFQ_T_FC1_W] = {BLOCK(fc1_w), {X_M, X_C}},
    [SFQ_T_FC1_B] = {BLOCK(fc1_b), {X_M}},
    [SFQ_T_FC2_W] = {BLOCK(fc2_w), {X_C, X_M}},
    [SFQ_T_FC2_B] = {BLOCK(fc2_b), {X_C}},
    [SFQ_T_REL_TABLE] = {BLOCK(rel_table), {X_T, X_H}},
    [SFQ_T_NORM_W] = {MODEL(norm_w), {X_F}},
    [SFQ_T_NORM_B] = {MODEL(norm_b), {X_F}},
    [SFQ_T_HEAD_W] = {MODEL(head_w), {X_K, X_F}},
    [SFQ_T_HEAD_B] = {MODEL(head_b), {X_K}},
    [SFQ_T_HEAD_DIST_W] = {MODEL(head_dist_w), {X_K, X_F}},
    [SFQ_T_HEAD_DIST_B] = {MODEL(head_dist_b), {X_K}},
};
#undef MODEL
#undef BLOCK
#undef STAGE

/* The groups of names.h's enum, in walking order. */
enum { G_FIRST, G_MERGE, G_BLOCK, G_LAST };
static int group(int id)
{
    return id < SFQ_T_DS_NORM_W ? G_FIRST : id < SFQ_T_LN1_W ? G_MERGE : id < SFQ_T_NORM_W ? G_BLOCK : G_LAST;
}

/* ---- names --------------------------------------------------------------- */

static const name_row *row_of(const arch_names *t, int id)
{
    for (int i = 0; i < t->n; i++)
        if (t->rows[i].id == id)
            return &t->rows[i];
    return NULL;
}

/* The format's arguments for group g (the file comment's index rules). */
static void format_args(int arch, int g, int flavour, int s, int b, int a[2])
{
    const int tv = flavour == SFQ_NAMES_TV || flavour == SFQ_NAMES_TV_OLD;
    a[0] = a[1] = 0;
    if (g == G_MERGE)
        a[0] = tv ? 2 * s : flavour == SFQ_NAMES_TIMM_OLD ? s - 1 : s;
    else if (g == G_BLOCK && arch != SARDFQ_ARCH_SWIN)
        a[0] = b;
    else if (g == G_BLOCK) {
        a[0] = tv ? 2 * s + 1 : s;
        a[1] = b;
    }
}

/* Row r's format under flavour (an older column falls back to the current). */
static const char *row_format(const name_row *r, int flavour)
{
    if (!r)
        return NULL;
    if (!r->name[flavour] && flavour == SFQ_NAMES_TIMM_OLD)
        return r->name[SFQ_NAMES_TIMM];
    if (!r->name[flavour] && flavour == SFQ_NAMES_TV_OLD)
        return r->name[SFQ_NAMES_TV];
    return r->name[flavour];
}

int sfq_tensor_name(int arch, int id, int flavour, int s, int b, char *buf, size_t n)
{
    const char *f = flavour >= 0 && flavour < SFQ_NAMES_COUNT ? row_format(row_of(table(arch), id), flavour) : NULL;
    int a[2];
    if (!f) {
        if (n)
            buf[0] = '\0';
        return 0;
    }
    format_args(arch, group(id), flavour, s, b, a);
    snprintf(buf, n, f, a[0], a[1]);
    return 1;
}

/* ---- the linears of the quantization spec ---------------------------------- */

static const int BLOCK_LINEARS[SFQ_LW_PER_BLOCK] = {SFQ_T_QKV_W, SFQ_T_PROJ_W, SFQ_T_FC1_W, SFQ_T_FC2_W};

/* Spec index of tensor id (of stage s, block l), or -1 if not a linear's
 * weight. */
static int lin_index(const sardfq_model_info *cfg, int id, int s, int l)
{
    for (int k = 0; k < SFQ_LW_PER_BLOCK; k++)
        if (id == BLOCK_LINEARS[k])
            return sfq_qlin_index(l, k);
    switch (id) {
    case SFQ_T_PATCH_W: return 0;
    case SFQ_T_HEAD_W: return sfq_qlin_head(cfg);
    case SFQ_T_HEAD_DIST_W: return sfq_qlin_head(cfg) + 1;
    case SFQ_T_DS_RED_W: return sfq_qlin_reduction(cfg, s);
    default: return -1;
    }
}

/* The row of linear `index`, with its stage s and block b in the stage; NULL
 * if the model cannot have it. */
static const name_row *lin_row(const sardfq_model_info *cfg, int index, int *s, int *b)
{
    const int head = sfq_qlin_head(cfg), red = index - sfq_qlin_reduction(cfg, 1);
    int id = -1;
    *s = *b = 0;
    if (index == 0)
        id = SFQ_T_PATCH_W;
    else if (index == head || index == head + 1)
        id = index == head ? SFQ_T_HEAD_W : SFQ_T_HEAD_DIST_W;
    else if (red >= 0 && red < sfq_qspec_merges(cfg)) {
        id = SFQ_T_DS_RED_W;
        *s = red + 1;
    } else if (index > 0 && index < head) {
        id = BLOCK_LINEARS[(index - 1) % SFQ_LW_PER_BLOCK];
        *s = sfq_qspec_block_stage(cfg, (index - 1) / SFQ_LW_PER_BLOCK, b);
    }
    return row_of(table(cfg->arch), id);
}

void sfq_qlin_tensor_name(const sardfq_model_info *cfg, int index, char *buf, size_t n)
{
    int s, b;
    const name_row *r = lin_row(cfg, index, &s, &b);
    if (!r || !sfq_tensor_name(cfg->arch, r->id, SFQ_NAMES_TIMM, s, b, buf, n))
        snprintf(buf, n, "?");
}

void sfq_qlin_name(const sardfq_model_info *cfg, int index, char *buf, size_t n)
{
    int s, b;
    const name_row *r = lin_row(cfg, index, &s, &b);
    const size_t suffix = strlen(".weight");
    if (r && r->layer) {
        snprintf(buf, n, "%s", r->layer);
        return;
    }
    sfq_qlin_tensor_name(cfg, index, buf, n);
    if (r && strlen(buf) > suffix && strcmp(buf + strlen(buf) - suffix, ".weight") == 0)
        buf[strlen(buf) - suffix] = '\0';
}

/* ---- activation points ------------------------------------------------------ */

static const char *const GLOBAL_POINTS[SFQ_AG_COUNT] = {
    "patch_embed.input", "patch_embed.output", "embed", "pos", "embed_pos",
    "head.input",        "head_dist.input",    "logits", "patch_embed.norm.output"};
/* Inside a block: a linear's input or output (lin = SFQ_LW_*: its layer's
 * name and the suffix), or a place named after the block's prefix. */
static const struct {
    int lin;
    const char *name;
} BLOCK_POINTS[SFQ_AP_COUNT] = {
    {SFQ_LW_QKV, "input"},  {SFQ_LW_QKV, "output"},  {-1, "attn.matmul1.a"}, {-1, "attn.matmul1.b"},
    {-1, "attn.scores"},    {-1, "attn.matmul2.a"},  {-1, "attn.matmul2.b"}, {SFQ_LW_PROJ, "input"},
    {SFQ_LW_PROJ, "output"}, {-1, "residual1"},      {SFQ_LW_FC1, "input"},  {SFQ_LW_FC2, "input"},
    {SFQ_LW_FC2, "output"}, {-1, "residual2"}};

void sfq_qpoint_name(const sardfq_model_info *cfg, int index, char *buf, size_t n)
{
    char pre[96];
    const int red = index - sfq_qpoint_reduction(cfg, 1), l = (index - SFQ_AG_COUNT) / SFQ_AP_COUNT;
    const int red_out = index - sfq_qpoint_reduction_out(cfg, 1);
    const char *what;
    if (index >= 0 && index < SFQ_AG_COUNT) {
        snprintf(buf, n, "%s", GLOBAL_POINTS[index]);
        return;
    }
    if (red >= 0 && red < sfq_qspec_merges(cfg)) {
        sfq_qlin_name(cfg, sfq_qlin_reduction(cfg, red + 1), pre, sizeof pre);
        what = "input";
    } else if (red_out >= 0 && red_out < sfq_qspec_merges(cfg)) {
        sfq_qlin_name(cfg, sfq_qlin_reduction(cfg, red_out + 1), pre, sizeof pre);
        what = "output";
    } else if (index >= 0 && index < sfq_qspec_n_points(cfg)) {
        const int k = (index - SFQ_AG_COUNT) % SFQ_AP_COUNT;
        int b;
        const int s = sfq_qspec_block_stage(cfg, l, &b);
        int a[2];
        what = BLOCK_POINTS[k].name;
        if (BLOCK_POINTS[k].lin >= 0)
            sfq_qlin_name(cfg, sfq_qlin_index(l, BLOCK_POINTS[k].lin), pre, sizeof pre);
        else {
            format_args(cfg->arch, G_BLOCK, SFQ_NAMES_TIMM, s, b, a);
            snprintf(pre, sizeof pre, table(cfg->arch)->block, a[0], a[1]);
        }
    } else {
        snprintf(buf, n, "?");
        return;
    }
    snprintf(buf, n, "%s.%s", pre, what);
}

/* ---- walking a model's tensors --------------------------------------------- */

typedef struct {
    const sardfq_model *m;
    int (*fn)(void *ctx, const sfq_tensor *t);
    void *ctx;
} walk;

/* Visit the rows of group g for stage s, block b (global index l). */
static int walk_group(const walk *w, int g, int s, int b, int l)
{
    const sardfq_model *m = w->m;
    const sardfq_model_info *cfg = &m->info;
    const arch_names *t = table(cfg->arch);
    const sfq_swin_stage *st = m->swin ? &m->swin->st[s] : NULL;
    const int64_t C = st ? st->dim : cfg->embed_dim, win = 2 * (int64_t)cfg->window_size - 1;
    int64_t v[X_COUNT] = {0};
    v[X_1] = 1;
    v[X_C] = C;
    v[X_2C] = 2 * C;
    v[X_3C] = 3 * C;
    v[X_M] = st ? st->hidden : cfg->mlp_hidden;
    v[X_H] = st ? st->heads : cfg->num_heads;
    v[X_T] = win * win;
    v[X_N] = cfg->num_tokens;
    v[X_K] = cfg->num_classes;
    v[X_F] = cfg->num_features;
    v[X_IN] = cfg->in_chans;
    v[X_P] = cfg->patch_size;
    for (int i = 0; i < t->n; i++) {
        const int id = t->rows[i].id;
        if (group(id) != g)
            continue;
        const char *base = VIEWS[id].in == IN_MODEL ? (const char *)m
                           : VIEWS[id].in == IN_SWIN ? (const char *)m->swin
                           : VIEWS[id].in == IN_STAGE ? (const char *)st
                                                      : (const char *)&m->blocks[l];
        /* the views are const for readers; the owner of a private model
         * (the loader, model.c) writes through data and view */
        const float **view = (const float **)(void *)(base + VIEWS[id].off);
        sfq_tensor x = {id, t->rows[i].flags, s, b, lin_index(cfg, id, s, l), (float *)*view, 0, {0}, view};
        if (!x.data && !(x.lin >= 0 && sfq_qlin_exists(cfg, x.lin)))
            continue;
        while (x.ndim < 4 && VIEWS[id].dims[x.ndim]) {
            x.shape[x.ndim] = v[VIEWS[id].dims[x.ndim]];
            x.ndim++;
        }
        const int r = w->fn(w->ctx, &x);
        if (r)
            return r;
    }
    return 0;
}

int sfq_tensors_walk(const sardfq_model *m, int (*fn)(void *ctx, const sfq_tensor *t), void *ctx)
{
    const walk w = {m, fn, ctx};
    const int stages = m->swin ? m->swin->n_stages : 1;
    int r = walk_group(&w, G_FIRST, 0, 0, 0);
    for (int s = 0; !r && s < stages; s++) {
        const int first = m->swin ? m->swin->st[s].first : 0;
        const int depth = m->swin ? m->swin->st[s].depth : m->info.depth;
        if (s)
            r = walk_group(&w, G_MERGE, s, 0, 0);
        for (int b = 0; !r && b < depth; b++)
            r = walk_group(&w, G_BLOCK, s, b, first + b);
    }
    return r ? r : walk_group(&w, G_LAST, 0, 0, 0);
}
