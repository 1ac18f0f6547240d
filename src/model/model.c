/* model.c - a sardfq_model's lifecycle: default and checked parameters,
 * the architecture switch (parameter layout, then the plan), random
 * models, free, clone, metadata and info. Loading from a file is
 * formats/load.c; the per-architecture layouts are vit.c and swin.c, the
 * plans plan_vit.c and plan_swin.c. */
#include "compute.h"
#include "names.h"
#include "plan.h"
#include "qspec.h"
#include "rng.h"
#include "swin.h"
#include "iplan.h"
#include "vit.h"

#include <string.h>

/* ---- parameters and the architecture switch -------------------------- */

SARDFQ_API void sardfq_model_default_params(sardfq_model_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
}

/* Copy the caller's params honouring struct_size (fields beyond it keep the
 * defaults; a struct larger than ours must have a zero tail). */
sardfq_status sfq_model_read_params(const sardfq_model_params *in, sardfq_model_params *out)
{
    sardfq_model_default_params(out);
    sardfq_status s = sfq_read_params(in, out, sizeof *out,
                                      offsetof(sardfq_model_params, n_threads) + sizeof(int32_t),
                                      "sardfq_model_params");
    if (s)
        return s;
    if (out->num_heads < 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "num_heads must be >= 0 (got %d)", out->num_heads);
    if (out->n_threads < 0 || out->n_threads > 1024)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "n_threads must be in 0..1024 (got %d)",
                        out->n_threads);
    return SARDFQ_OK;
}

/* Build m->plan for the configured, allocated model (views set): the
 * architecture switch of the plan builders. */
static sardfq_status build_plan(sardfq_model *m)
{
    const sardfq_model_info *cfg = &m->info;
    sfq_plan *p = sfq_alloc_zero(sizeof *p);
    if (!p)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    p->depth = cfg->depth;
    p->block_first = sfq_alloc_array((size_t)cfg->depth + 1, sizeof(int));
    p->block_resid = sfq_alloc_array((size_t)cfg->depth + 1, sizeof(int));
    p->chans = cfg->in_chans;
    p->img_h = cfg->img_h;
    p->img_w = cfg->img_w;
    p->patch = cfg->patch_size;
    p->grid_h = cfg->grid_h;
    p->grid_w = cfg->grid_w;
    p->readback_floats = cfg->attention_floats;
    sardfq_status s = !p->block_first || !p->block_resid ? sfq_fail(SARDFQ_E_NOMEM, "out of memory")
                      : cfg->arch == SARDFQ_ARCH_SWIN ? sfq_plan_build_swin(m, p)
                                                       : sfq_plan_build_vit(m, p);
    if (!s && p->oom)
        s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    if (s) {
        sfq_plan_free(p);
        return s;
    }
    sfq_plan_free(m->plan);
    m->plan = p;
    return SARDFQ_OK;
}

sardfq_status sfq_model_alloc_params(sardfq_model *m)
{
    sardfq_status s = m->info.arch == SARDFQ_ARCH_SWIN ? sfq_swin_alloc_params(m) : sfq_vit_alloc_params(m);
    m->n_held = m->n_params;
    return s ? s : build_plan(m);
}

/* ---- a final quantized model's parameters --------------------------------- */

/* A dropped weight: floats [off, off + len) of the full buffer. */
typedef struct {
    size_t off, len;
} span;

/* The move from the full buffer to the held one. */
typedef struct {
    const float *old;
    float *held;
    const span *drop; /* sorted by off */
    int nd;
    size_t covered;   /* floats of the views seen (the tiling check) */
} move;

/* Where a view of the full buffer lives now: NULL for a dropped weight. */
static const float *moved(const void *ctx, const float *x)
{
    const move *mv = ctx;
    const size_t off = (size_t)(x - mv->old);
    size_t before = 0;
    for (int i = 0; i < mv->nd && off >= mv->drop[i].off; i++) {
        if (off < mv->drop[i].off + mv->drop[i].len)
            return NULL;
        before += mv->drop[i].len;
    }
    return mv->held + (off - before);
}

static size_t numel(const sfq_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

static int cover_view(void *ctx, const sfq_tensor *t)
{
    ((move *)ctx)->covered += t->data ? numel(t) : 0;
    return 0;
}

static int move_view(void *ctx, const sfq_tensor *t)
{
    *t->view = moved(ctx, *t->view);
    return 0;
}

/* The copies that the codes give back: see sfq_model_finalize. */
static sardfq_status drop_int_weights(sardfq_model *m)
{
    const sardfq_model_info *cfg = &m->info;
    const int nlin = sfq_qspec_n_linears(cfg);
    span *drop = sfq_alloc_array((size_t)nlin, sizeof(span));
    size_t most = 0;
    for (int i = 0; i < nlin; i++)
        if (sfq_qlin_exists(cfg, i) && sfq_iplan_pack(m, i) && sfq_qlin_weight(m, i)) {
            const size_t n = (size_t)sfq_qlin_rows(cfg, i) * (size_t)sfq_qlin_cols(cfg, i);
            most = n > most ? n : most;
        }
    if (!most) { /* no weight held as codes */
        sfq_free(drop);
        return SARDFQ_OK;
    }
    float *tmp = sfq_alloc_array(most, sizeof(float));
    if (!drop || !tmp) {
        sfq_free(drop);
        sfq_free(tmp);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    /* the weights whose codes give back their float copy bit for bit */
    int nd = 0;
    size_t dropped = 0;
    for (int i = 0; i < nlin; i++) {
        const float *w = sfq_qlin_exists(cfg, i) && sfq_iplan_pack(m, i) ? sfq_qlin_weight(m, i) : NULL;
        if (!w)
            continue;
        const size_t n = (size_t)sfq_qlin_rows(cfg, i) * (size_t)sfq_qlin_cols(cfg, i);
        /* sfq_qlin_weight_read's values once the copy is gone (packed from
         * the file's codes: those values by construction, no copy made) */
        if (!(m->load_codes && m->load_codes[i]) &&
            (sfq_iplan_dequant(m, i, tmp) != 0 || memcmp(tmp, w, n * sizeof(float)) != 0))
            continue;
        span sp = {(size_t)(w - m->params), n};
        int j = nd++;
        for (; j > 0 && drop[j - 1].off > sp.off; j--)
            drop[j] = drop[j - 1];
        drop[j] = sp;
        dropped += n;
    }
    sfq_free(tmp);
    move mv = {m->params, NULL, drop, nd, 0};
    (void)sfq_tensors_walk(m, cover_view, &mv);
    sardfq_status s = SARDFQ_OK;
    if (mv.covered != m->n_params)
        s = sfq_fail(SARDFQ_E_INTERNAL, "the parameter views cover %zu of %zu floats", mv.covered, m->n_params);
    else if (nd && !(mv.held = sfq_alloc_array(m->n_params - dropped, sizeof(float))))
        s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    if (s || !nd) {
        sfq_free(drop);
        return s;
    }
    /* copy what stays, then point the views and the plan at it */
    size_t from = 0, to = 0;
    for (int i = 0; i <= nd; i++) {
        const size_t end = i < nd ? drop[i].off : m->n_params;
        memcpy(mv.held + to, m->params + from, (end - from) * sizeof(float));
        to += end - from;
        from = i < nd ? drop[i].off + drop[i].len : end;
    }
    (void)sfq_tensors_walk(m, move_view, &mv);
    sfq_plan_relocate(m->plan, moved, &mv);
    sfq_free(m->params);
    sfq_free(drop);
    m->params = mv.held;
    m->n_held = m->n_params - dropped;
    return SARDFQ_OK;
}

/* Loading: the floats of the weights given as codes, for the linears
 * selected (all, or those not packed). */
static void decode_load_codes(sardfq_model *m, int all)
{
    for (int i = 0; m->load_codes && i < sfq_qspec_n_linears(&m->info); i++) {
        const uint8_t *c = m->load_codes[i];
        if (!c || (!all && sfq_iplan_pack(m, i)))
            continue;
        const sfq_qweight *w = &m->q->lin[i];
        sfq_qcodes_unpack(w->rows, c, sfq_qlin_rows(&m->info, i), sfq_qlin_cols(&m->info, i), w->bits,
                          sfq_qlin_weight(m, i));
        m->load_codes[i] = NULL;
    }
}

sardfq_status sfq_model_finalize(sardfq_model *m)
{
    sardfq_status s = sfq_model_prepare_int(m);
    if (!s)
        decode_load_codes(m, 0);
    if (!s && (s = drop_int_weights(m))) {
        sfq_iplan_free(m->ip);
        m->ip = NULL;
    }
    if (s)
        decode_load_codes(m, 1);
    return s;
}

/* ---- threads, free, clone, metadata ----------------------------------- */

int sfq_model_threads(const sardfq_model *m) { return sfq_compute_threads(m->n_threads); }

SARDFQ_API void sardfq_model_free(sardfq_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_meta; i++) {
        sfq_free(m->meta_keys[i]);
        sfq_free(m->meta_vals[i]);
    }
    sfq_free(m->meta_keys);
    sfq_free(m->meta_vals);
    sfq_free(m->blocks);
    sfq_free((void *)m->load_codes);
    sfq_free(m->params);
    sfq_qspec_free(m->q);
    sfq_iplan_free(m->ip);
    sfq_swin_free(m->swin);
    sfq_plan_free(m->plan);
    sfq_free(m);
}

/* The tensors of a model in walking order. */
typedef struct {
    sfq_tensor *all;
    int n, cap;
} tensor_list;

static int list_tensor(void *ctx, const sfq_tensor *t)
{
    tensor_list *l = ctx;
    if (l->all && l->n < l->cap)
        l->all[l->n] = *t;
    l->n++;
    return 0;
}

/* dst (full parameters, same configuration) := src, whose final form holds
 * some weights only as codes: those dequantized (a clone is not final). */
static sardfq_status copy_held(const sardfq_model *src, sardfq_model *dst)
{
    tensor_list a = {0}, b = {0};
    (void)sfq_tensors_walk(src, list_tensor, &a);
    a.cap = b.cap = a.n;
    a.all = sfq_alloc_array((size_t)a.cap + 1, sizeof(sfq_tensor));
    b.all = sfq_alloc_array((size_t)b.cap + 1, sizeof(sfq_tensor));
    sardfq_status s = !a.all || !b.all ? sfq_fail(SARDFQ_E_NOMEM, "out of memory") : SARDFQ_OK;
    if (!s) {
        a.n = 0;
        (void)sfq_tensors_walk(src, list_tensor, &a);
        (void)sfq_tensors_walk(dst, list_tensor, &b);
        if (a.n != b.n)
            s = sfq_fail(SARDFQ_E_INTERNAL, "clone: %d tensors against %d", a.n, b.n);
    }
    for (int i = 0; !s && i < a.n; i++) {
        if (a.all[i].data)
            memcpy(b.all[i].data, a.all[i].data, numel(&a.all[i]) * sizeof(float));
        else if (!sfq_qlin_weight_read(src, a.all[i].lin, b.all[i].data))
            s = sfq_fail(SARDFQ_E_INTERNAL, "clone: linear %d has no weight", a.all[i].lin);
    }
    sfq_free(a.all);
    sfq_free(b.all);
    return s;
}

sardfq_status sfq_model_clone(const sardfq_model *src, sardfq_model **out)
{
    sardfq_model *m = sfq_alloc_zero(sizeof *m);
    if (!m)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    m->info = src->info;
    m->n_threads = src->n_threads;
    m->executor = src->executor;
    sardfq_status s = sfq_model_alloc_params(m);
    if (!s && src->q)
        s = sfq_qspec_copy(src->q, &src->info, &m->q);
    for (int i = 0; !s && i < src->n_meta; i++)
        s = sfq_model_set_metadata(m, src->meta_keys[i], src->meta_vals[i]);
    if (!s && src->n_held == src->n_params)
        memcpy(m->params, src->params, sizeof(float) * m->n_params);
    else if (!s)
        s = copy_held(src, m);
    if (s) {
        sardfq_model_free(m);
        return s;
    }
    *out = m;
    return SARDFQ_OK;
}

sardfq_status sfq_model_set_metadata(sardfq_model *m, const char *key, const char *val)
{
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta_keys[i], key) == 0) {
            char *v = sfq_strdup(val);
            if (!v)
                return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
            sfq_free(m->meta_vals[i]);
            m->meta_vals[i] = v;
            return SARDFQ_OK;
        }
    char **k2 = sfq_alloc_array((size_t)m->n_meta + 1, sizeof(char *));
    char **v2 = sfq_alloc_array((size_t)m->n_meta + 1, sizeof(char *));
    char *k = sfq_strdup(key), *v = sfq_strdup(val);
    if (!k2 || !v2 || !k || !v) {
        sfq_free(k2);
        sfq_free(v2);
        sfq_free(k);
        sfq_free(v);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    if (m->n_meta) {
        memcpy(k2, m->meta_keys, sizeof(char *) * (size_t)m->n_meta);
        memcpy(v2, m->meta_vals, sizeof(char *) * (size_t)m->n_meta);
    }
    k2[m->n_meta] = k;
    v2[m->n_meta] = v;
    sfq_free(m->meta_keys);
    sfq_free(m->meta_vals);
    m->meta_keys = k2;
    m->meta_vals = v2;
    m->n_meta++;
    return SARDFQ_OK;
}
/* ---- random models ---------------------------------------------------- */

typedef struct {
    const char *name;
    int dim, depth, heads, imagenet_stats;
} arch_spec;

/* timm's swin_*_patch4_window7_224 */
typedef struct {
    const char *name;
    int dim, depths[4], heads[4];
} swin_spec;

static const swin_spec SWIN_ARCHS[] = {
    {"swin_tiny", 96, {2, 2, 6, 2}, {3, 6, 12, 24}},
    {"swin_small", 96, {2, 2, 18, 2}, {3, 6, 12, 24}},
    {"swin_base", 128, {2, 2, 18, 2}, {4, 8, 16, 32}},
};

static const arch_spec ARCHS[] = {
    {"vit_tiny", 192, 12, 3, 0},  {"vit_small", 384, 12, 6, 0},  {"vit_base", 768, 12, 12, 0},
    {"deit_tiny", 192, 12, 3, 1}, {"deit_small", 384, 12, 6, 1}, {"deit_base", 768, 12, 12, 1},
};

static void fill_trunc_normal(sfq_rng *r, float *x, size_t n, double std)
{
    for (size_t i = 0; i < n; i++) {
        double v;
        do
            v = sfq_rng_normal(r);
        while (v < -2 || v > 2);
        x[i] = (float)(v * std);
    }
}

static void set_layernorm(const float *w, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ((float *)w)[i] = 1.0f;
        ((float *)b)[i] = 0.0f;
    }
}

static sardfq_status random_swin(sardfq_model *m, const swin_spec *a, uint64_t seed,
                                 const sardfq_model_params *p, sardfq_model **out)
{
    sardfq_model_info *cfg = &m->info;
    cfg->struct_size = sizeof *cfg;
    cfg->arch = SARDFQ_ARCH_SWIN;
    cfg->naming = SARDFQ_NAMING_RANDOM;
    cfg->img_h = cfg->img_w = 224;
    cfg->patch_size = 4;
    cfg->in_chans = 3;
    cfg->num_stages = 4;
    cfg->window_size = 7;
    for (int s = 0; s < 4; s++) {
        cfg->stage_depth[s] = a->depths[s];
        cfg->stage_heads[s] = a->heads[s];
        cfg->stage_dim[s] = a->dim << s;
    }
    cfg->mlp_hidden = 4 * a->dim;
    cfg->num_classes = 1000;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(cfg->mean, mean, sizeof mean);
    memcpy(cfg->std, std, sizeof std);
    cfg->crop_pct = 0.9f;
    cfg->ln_eps = 1e-5f;
    for (int f = 0; f < SARDFQ_FIELD_COUNT; f++)
        cfg->source[f] = SARDFQ_SOURCE_DEFAULT;
    m->n_threads = p->n_threads;
    sardfq_status s = sfq_swin_configure(cfg);
    if (!s)
        s = sfq_model_alloc_params(m);
    if (s) {
        sardfq_model_free(m);
        return s;
    }
    sfq_rng r;
    sfq_rng_seed(&r, seed);
    fill_trunc_normal(&r, m->params, m->n_params, 0.02);
    const sfq_swin *sw = m->swin;
    set_layernorm(sw->pe_norm_w, sw->pe_norm_b, (size_t)cfg->embed_dim);
    for (int si = 0; si < sw->n_stages; si++) {
        const sfq_swin_stage *g = &sw->st[si];
        if (si) {
            set_layernorm(g->ds_norm_w, g->ds_norm_b, 2 * (size_t)g->dim);
            memset((float *)g->ds_red_b, 0, sizeof(float) * (size_t)g->dim);
        }
        for (int l = g->first; l < g->first + g->depth; l++) {
            set_layernorm(m->blocks[l].ln1_w, m->blocks[l].ln1_b, (size_t)g->dim);
            set_layernorm(m->blocks[l].ln2_w, m->blocks[l].ln2_b, (size_t)g->dim);
        }
    }
    set_layernorm(m->norm_w, m->norm_b, (size_t)cfg->num_features);
    *out = m;
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_model_create_random(const char *arch, uint64_t seed,
                                                    const sardfq_model_params *params,
                                                    sardfq_model **out)
{
    if (!arch || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_create_random: %s is NULL",
                        !arch ? "arch" : "out");
    sardfq_model_params p;
    sardfq_status s = sfq_model_read_params(params, &p);
    if (s)
        return s;
    const arch_spec *a = NULL;
    const swin_spec *sa = NULL;
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (!strcmp(arch, ARCHS[i].name))
            a = &ARCHS[i];
    for (size_t i = 0; i < sizeof SWIN_ARCHS / sizeof SWIN_ARCHS[0]; i++)
        if (!strcmp(arch, SWIN_ARCHS[i].name))
            sa = &SWIN_ARCHS[i];
    if (!a && !sa)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "unknown architecture '%s' (vit_tiny, vit_small, vit_base, deit_tiny, "
                        "deit_small, deit_base, swin_tiny, swin_small, swin_base)",
                        arch);
    if (sa && p.num_heads > 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "num_heads cannot be overridden for a Swin model");
    sardfq_model *m = sfq_alloc_zero(sizeof *m);
    if (!m)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    if (sa)
        return random_swin(m, sa, seed, &p, out);
    sardfq_model_info *cfg = &m->info;
    cfg->struct_size = sizeof *cfg;
    cfg->arch = SARDFQ_ARCH_VIT;
    cfg->naming = SARDFQ_NAMING_RANDOM;
    cfg->img_h = cfg->img_w = 224;
    cfg->patch_size = 16;
    cfg->in_chans = 3;
    cfg->embed_dim = a->dim;
    cfg->depth = a->depth;
    cfg->num_heads = p.num_heads > 0 ? p.num_heads : a->heads;
    cfg->mlp_hidden = 4 * a->dim;
    cfg->num_classes = 1000;
    cfg->grid_h = cfg->grid_w = 14;
    cfg->num_prefix_tokens = 1;
    cfg->num_tokens = 197;
    for (int c = 0; c < 3; c++) {
        const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
        cfg->mean[c] = a->imagenet_stats ? mean[c] : 0.5f;
        cfg->std[c] = a->imagenet_stats ? std[c] : 0.5f;
    }
    cfg->crop_pct = 0.9f;
    cfg->ln_eps = 1e-6f;
    for (int f = 0; f < SARDFQ_FIELD_COUNT; f++)
        cfg->source[f] = SARDFQ_SOURCE_DEFAULT;
    if (p.num_heads > 0)
        cfg->source[SARDFQ_FIELD_NUM_HEADS] = SARDFQ_SOURCE_PARAMS;
    if (cfg->embed_dim % cfg->num_heads) {
        sardfq_model_free(m);
        return sfq_fail(SARDFQ_E_SHAPE, "num_heads=%d does not divide embed_dim %d", cfg->num_heads,
                        cfg->embed_dim);
    }
    cfg->head_dim = cfg->embed_dim / cfg->num_heads;
    m->n_threads = p.n_threads;
    s = sfq_model_alloc_params(m);
    if (s) {
        sardfq_model_free(m);
        return s;
    }
    /* Everything trunc-normal(0.02), then LayerNorm weights 1 and biases 0
     * (timm's init; linear biases are zero there, here small so that every
     * term is exercised). */
    sfq_rng r;
    sfq_rng_seed(&r, seed);
    fill_trunc_normal(&r, m->params, m->n_params, 0.02);
    const size_t D = (size_t)cfg->embed_dim;
    for (int l = 0; l < cfg->depth; l++) {
        sfq_block *b = &m->blocks[l];
        float *ones[2] = {(float *)b->ln1_w, (float *)b->ln2_w};
        float *zeros[2] = {(float *)b->ln1_b, (float *)b->ln2_b};
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < D; i++) {
                ones[k][i] = 1.0f;
                zeros[k][i] = 0.0f;
            }
    }
    for (size_t i = 0; i < D; i++) {
        ((float *)m->norm_w)[i] = 1.0f;
        ((float *)m->norm_b)[i] = 0.0f;
    }
    *out = m;
    return SARDFQ_OK;
}
/* ---- info ------------------------------------------------------------- */

SARDFQ_API sardfq_status sardfq_model_get_info(const sardfq_model *m, sardfq_model_info *out)
{
    if (!m || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_get_info: %s is NULL", !m ? "model" : "out");
    if (out->struct_size < offsetof(sardfq_model_info, arch) + sizeof(int32_t))
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_model_info.struct_size must be set (got %u)", out->struct_size);
    uint32_t n = out->struct_size < sizeof m->info ? out->struct_size : (uint32_t)sizeof m->info;
    sardfq_model_info full = m->info;
    full.executor = m->executor;
    full.weight_bytes = (int64_t)(m->n_params * sizeof(float));
    if (m->q) {
        full.quantized = 1;
        full.quant_scheme = m->q->scheme;
        full.weight_bits = m->q->wbits;
        full.act_bits = m->q->abits;
    }
    if (m->ip) {
        full.int_ops = m->ip->n_int;
        full.float_ops = m->ip->n_float;
        if (m->executor == SARDFQ_EXECUTOR_AUTO)
            full.weight_bytes = (int64_t)m->ip->weight_bytes + (int64_t)(m->ip->float_params * sizeof(float));
    }
    memcpy(out, &full, n);
    out->struct_size = n;
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_model_set_executor(sardfq_model *m, int32_t executor)
{
    if (!m)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_set_executor: model is NULL");
    if (executor != SARDFQ_EXECUTOR_AUTO && executor != SARDFQ_EXECUTOR_FAKE)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_model_set_executor: executor must be SARDFQ_EXECUTOR_AUTO or _FAKE (got %d)",
                        executor);
    m->executor = executor;
    return SARDFQ_OK;
}

SARDFQ_API const char *sardfq_model_executor_report(const sardfq_model *m)
{
    return m && m->ip ? m->ip->report : NULL;
}

SARDFQ_API const char *sardfq_model_get_metadata(const sardfq_model *m, const char *key)
{
    if (!m || !key)
        return NULL;
    for (int i = 0; i < m->n_meta; i++)
        if (!strcmp(m->meta_keys[i], key))
            return m->meta_vals[i];
    return NULL;
}

SARDFQ_API int32_t sardfq_model_metadata_count(const sardfq_model *m) { return m ? m->n_meta : 0; }

SARDFQ_API const char *sardfq_model_metadata_key(const sardfq_model *m, int32_t i)
{
    return m && i >= 0 && i < m->n_meta ? m->meta_keys[i] : NULL;
}

/* ---- the quantizable linears' weights --------------------------------- */

const float *sfq_qlin_weight_read(const sardfq_model *m, int index, float *scratch)
{
    if (!sfq_qlin_exists(&m->info, index))
        return NULL;
    const float *w = sfq_qlin_weight(m, index);
    if (w)
        return w;
    return scratch && sfq_iplan_dequant(m, index, scratch) == 0 ? scratch : NULL;
}

/* qspec.h's linear `index` inside m's parameters (the patch embedding,
 * block linears, heads, Swin's reductions). */
float *sfq_qlin_weight(const sardfq_model *m, int index)
{
    const sardfq_model_info *cfg = &m->info;
    const int first_merge = sfq_qlin_reduction(cfg, 1);
    const int s = index >= first_merge && index < first_merge + sfq_qspec_merges(cfg) ? index - first_merge + 1 : 0;
    const float *w;
    if (index == 0)
        w = m->patch_w;
    else if (s)
        w = m->swin->st[s].ds_red_w;
    else if (index == sfq_qlin_head(cfg))
        w = m->head_w;
    else if (index == sfq_qlin_head(cfg) + 1)
        w = m->head_dist_w;
    else {
        const sfq_block *b = &m->blocks[(index - 1) / SFQ_LW_PER_BLOCK];
        const float *ws[SFQ_LW_PER_BLOCK] = {b->qkv_w, b->proj_w, b->fc1_w, b->fc2_w};
        w = ws[(index - 1) % SFQ_LW_PER_BLOCK];
    }
    /* the views are const for readers; the owner of a private model (the
     * quantizer, the loader) writes through this */
    return (float *)w;
}
