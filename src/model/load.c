/* load.c - building a sardfq_model: from safetensors (timm or torchvision
 * ViT names), or with random weights; info, metadata, free.
 *
 * Loading is three steps: work out the configuration (metadata first, then
 * tensor shapes, recording where each field came from), allocate one
 * parameter buffer, then bind every expected tensor name to its view with an
 * exact shape check. A tensor the graph would not use is an error, so a
 * checkpoint with features this graph lacks (layer scale, fc_norm, ...) is
 * refused rather than silently mis-evaluated. */
#include "rng.h"
#include "safetensors.h"
#include "qio.h"
#include "vit.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM 65536
#define MAX_DEPTH 1024

SARDFQ_API void sardfq_model_default_params(sardfq_model_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
}

/* Copy the caller's params honouring struct_size (fields beyond it keep the
 * defaults; a struct larger than ours must have a zero tail). */
static sardfq_status read_params(const sardfq_model_params *in, sardfq_model_params *out)
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

/* ---- derived numbers and the parameter buffer ------------------------- */

void sfq_model_fill_derived(sardfq_model *m)
{
    sardfq_model_info *cfg = &m->info;
    const double D = cfg->embed_dim, N = cfg->num_tokens, M = cfg->mlp_hidden, K = cfg->num_classes;
    const double G = (double)cfg->grid_h * cfg->grid_w, cpp = (double)cfg->in_chans * cfg->patch_size * cfg->patch_size;
    const int heads = cfg->arch == SARDFQ_ARCH_DEIT_DISTILLED ? 2 : 1;
    double per_block = 2 * N * (4 * D * D + 2 * D * M) + 4 * N * N * D;
    cfg->flops_per_image = 2 * G * D * cpp + cfg->depth * per_block + heads * 2 * D * K;
    cfg->num_params = (int64_t)m->n_params;
}

sardfq_status sfq_model_alloc_params(sardfq_model *m)
{
    const sardfq_model_info *cfg = &m->info;
    const size_t D = (size_t)cfg->embed_dim, M = (size_t)cfg->mlp_hidden, K = (size_t)cfg->num_classes;
    const size_t cpp = (size_t)cfg->in_chans * cfg->patch_size * cfg->patch_size;
    const int distilled = cfg->arch == SARDFQ_ARCH_DEIT_DISTILLED;
    size_t per_block = 2 * D + 3 * D * D + 3 * D + D * D + D + 2 * D + M * D + M + D * M + D;
    size_t total = D * cpp + D + D + (distilled ? D : 0) + (size_t)cfg->num_tokens * D +
                   (size_t)cfg->depth * per_block + 2 * D + (K * D + K) * (distilled ? 2 : 1);
    m->blocks = sfq_alloc_zero(sizeof(sfq_block) * (size_t)cfg->depth);
    m->params = sfq_alloc_array(total, sizeof(float));
    if (!m->blocks || !m->params)
        return sfq_fail(SARDFQ_E_NOMEM, "cannot allocate %zu parameters", total);
    m->n_params = total;
    float *p = m->params;
#define TAKE(n) (p += (n), p - (n))
    m->patch_w = TAKE(D * cpp);
    m->patch_b = TAKE(D);
    m->cls = TAKE(D);
    m->dist = distilled ? TAKE(D) : NULL;
    m->pos = TAKE((size_t)cfg->num_tokens * D);
    for (int l = 0; l < cfg->depth; l++) {
        sfq_block *b = &m->blocks[l];
        b->ln1_w = TAKE(D);
        b->ln1_b = TAKE(D);
        b->qkv_w = TAKE(3 * D * D);
        b->qkv_b = TAKE(3 * D);
        b->proj_w = TAKE(D * D);
        b->proj_b = TAKE(D);
        b->ln2_w = TAKE(D);
        b->ln2_b = TAKE(D);
        b->fc1_w = TAKE(M * D);
        b->fc1_b = TAKE(M);
        b->fc2_w = TAKE(D * M);
        b->fc2_b = TAKE(D);
    }
    m->norm_w = TAKE(D);
    m->norm_b = TAKE(D);
    m->head_w = TAKE(K * D);
    m->head_b = TAKE(K);
    if (distilled) {
        m->head_dist_w = TAKE(K * D);
        m->head_dist_b = TAKE(K);
    }
#undef TAKE
    if ((size_t)(p - m->params) != total)
        return sfq_fail(SARDFQ_E_INTERNAL, "parameter layout mismatch");
    sfq_model_fill_derived(m);
    return SARDFQ_OK;
}

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
    sfq_free(m->params);
    sfq_qspec_free(m->q);
    sfq_free(m);
}

sardfq_status sfq_model_clone(const sardfq_model *src, sardfq_model **out)
{
    sardfq_model *m = sfq_alloc_zero(sizeof *m);
    if (!m)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    m->info = src->info;
    m->n_threads = src->n_threads;
    sardfq_status s = sfq_model_alloc_params(m);
    if (!s && src->q)
        s = sfq_qspec_copy(src->q, &src->info, &m->q);
    for (int i = 0; !s && i < src->n_meta; i++)
        s = sfq_model_set_metadata(m, src->meta_keys[i], src->meta_vals[i]);
    if (s) {
        sardfq_model_free(m);
        return s;
    }
    memcpy(m->params, src->params, sizeof(float) * m->n_params);
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

/* ---- metadata parsing -------------------------------------------------- */

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

/* Parse "a" or "a,b,...": up to max finite floats; returns the count, 0 on
 * error. */
static int parse_floats(const char *s, float *out, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || !isfinite(v) || n == max)
            return 0;
        out[n++] = (float)v;
        while (isspace((unsigned char)*end))
            end++;
        if (*end == ',')
            end++;
        else if (*end)
            return 0;
        s = end;
    }
    return n;
}

/* ---- loading ---------------------------------------------------------- */

typedef struct {
    const sfq_st_file *st;
    char *used; /* per tensor */
    int naming;
    const sardfq_model *m; /* for quantized weights (U8 codes) */
} bind_ctx;

/* Decode the U8 codes of a quantized weight tensor t (seen under the
 * weight's name and logical shape) into dst. */
static sardfq_status bind_codes(bind_ctx *b, const sfq_st_tensor *t, const char *name, float *dst)
{
    const sardfq_model_info *cfg = &b->m->info;
    char wname[200];
    for (int i = 0; b->m->q && i < sfq_qspec_n_linears(cfg->depth); i++) {
        if (!sfq_qlin_exists(cfg, i))
            continue;
        sfq_qlin_tensor_name(cfg->depth, i, wname, sizeof wname);
        const sfq_qweight *w = &b->m->q->lin[i];
        if (strcmp(wname, name) != 0 || !w->bits)
            continue;
        const int rows = sfq_qlin_rows(cfg, i), cols = sfq_qlin_cols(cfg, i);
        if (t->end - t->begin != (size_t)rows * sfq_qcodes_row_bytes(w->bits, cols))
            return sfq_fail(SARDFQ_E_FORMAT, "'%s_codes' has the wrong size", name);
        sfq_qcodes_unpack(w->rows, b->st->data + t->begin, rows, cols, w->bits, dst);
        b->used[t - b->st->tensors] = 1;
        return SARDFQ_OK;
    }
    return sfq_fail(SARDFQ_E_FORMAT, "tensor '%s' is U8 but the file does not quantize it", name);
}

static const sfq_st_tensor *find(bind_ctx *b, const char *name)
{
    return sfq_st_find(b->st, name);
}

/* Copy tensor `name` of the given shape into dst. optional: absent -> zero. */
static sardfq_status bind(bind_ctx *b, const char *name, int optional, float *dst, int ndim,
                          const int64_t *shape)
{
    const sfq_st_tensor *t = find(b, name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (size_t)shape[i];
    if (!t) {
        if (optional) {
            memset(dst, 0, numel * sizeof(float));
            return SARDFQ_OK;
        }
        return sfq_fail(SARDFQ_E_FORMAT, "missing tensor '%s'", name);
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[128] = "", got[128] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "",
                     (long long)shape[i]);
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)t->shape[i]);
        return sfq_fail(SARDFQ_E_SHAPE, "tensor '%s' has shape [%s], expected [%s]", name, got,
                        want);
    }
    if (t->dtype == SFQ_DT_U8)
        return bind_codes(b, t, name, dst);
    sardfq_status s = sfq_st_read_f32(b->st, t, dst);
    if (s != SARDFQ_OK)
        return s;
    b->used[t - b->st->tensors] = 1;
    return SARDFQ_OK;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define BIND(name, opt, dst, nd, ...)                                                  \
    do {                                                                               \
        sardfq_status s_ = bind(&bc, name, opt, (float *)(dst), nd, SHAPE(__VA_ARGS__)); \
        if (s_ != SARDFQ_OK)                                                           \
            return s_;                                                                 \
    } while (0)

typedef struct {
    const char *patch_w, *patch_b, *cls, *dist, *pos, *norm_w, *norm_b, *head_w, *head_b,
        *head_dist_w, *head_dist_b;
} global_names;

static const global_names TIMM_NAMES = {
    "patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "dist_token", "pos_embed",
    "norm.weight", "norm.bias", "head.weight", "head.bias", "head_dist.weight", "head_dist.bias"};
static const global_names TV_NAMES = {
    "conv_proj.weight", "conv_proj.bias", "class_token", NULL, "encoder.pos_embedding",
    "encoder.ln.weight", "encoder.ln.bias", "heads.head.weight", "heads.head.bias", NULL, NULL};

/* Name of tensor `what` of block l in buf. what: 0 ln1.w 1 ln1.b 2 qkv.w
 * 3 qkv.b 4 proj.w 5 proj.b 6 ln2.w 7 ln2.b 8 fc1.w 9 fc1.b 10 fc2.w 11 fc2.b */
static void block_name(char *buf, size_t n, int naming, int legacy_mlp, int l, int what)
{
    static const char *timm[] = {"norm1.weight", "norm1.bias",  "attn.qkv.weight",
                                 "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                                 "norm2.weight", "norm2.bias",  "mlp.fc1.weight",
                                 "mlp.fc1.bias",  "mlp.fc2.weight", "mlp.fc2.bias"};
    static const char *tv[] = {"ln_1.weight", "ln_1.bias", "self_attention.in_proj_weight",
                               "self_attention.in_proj_bias", "self_attention.out_proj.weight",
                               "self_attention.out_proj.bias", "ln_2.weight", "ln_2.bias",
                               "mlp.0.weight", "mlp.0.bias", "mlp.3.weight", "mlp.3.bias"};
    static const char *tv_legacy[] = {"mlp.linear_1.weight", "mlp.linear_1.bias",
                                      "mlp.linear_2.weight", "mlp.linear_2.bias"};
    if (naming == SARDFQ_NAMING_TIMM)
        snprintf(buf, n, "blocks.%d.%s", l, timm[what]);
    else if (legacy_mlp && what >= 8)
        snprintf(buf, n, "encoder.layers.encoder_layer_%d.%s", l, tv_legacy[what - 8]);
    else
        snprintf(buf, n, "encoder.layers.encoder_layer_%d.%s", l, tv[what]);
}

static sardfq_status metadata_int(const sfq_st_file *st, const char *key, long lo, long hi,
                                  int *out, int *found)
{
    const char *v = sfq_st_meta(st, key);
    *found = 0;
    if (!v)
        return SARDFQ_OK;
    if (!parse_int(v, lo, hi, out))
        return sfq_fail(SARDFQ_E_FORMAT, "metadata %s='%s' is not an integer in %ld..%ld", key, v,
                        lo, hi);
    *found = 1;
    return SARDFQ_OK;
}

/* Check a metadata integer against the shape-derived value. */
static sardfq_status agree(const sfq_st_file *st, const char *key, int from_shape, const char *what,
                           int32_t *source)
{
    int v, found;
    sardfq_status s = metadata_int(st, key, 1, 1 << 30, &v, &found);
    if (s != SARDFQ_OK)
        return s;
    *source = SARDFQ_SOURCE_SHAPES;
    if (!found)
        return SARDFQ_OK;
    if (v != from_shape)
        return sfq_fail(SARDFQ_E_SHAPE, "metadata %s=%d but %s gives %d", key, v, what,
                        from_shape);
    *source = SARDFQ_SOURCE_METADATA;
    return SARDFQ_OK;
}

static sardfq_status configure(const sfq_st_file *st, const sardfq_model_params *p,
                               sardfq_model_info *cfg, int *naming, int *legacy_mlp)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    const global_names *g;
    if (sfq_st_find(st, TIMM_NAMES.patch_w)) {
        *naming = SARDFQ_NAMING_TIMM;
        g = &TIMM_NAMES;
    } else if (sfq_st_find(st, TV_NAMES.patch_w)) {
        *naming = SARDFQ_NAMING_TORCHVISION;
        g = &TV_NAMES;
    } else {
        const char *arch = sfq_st_meta(st, "arch");
        if ((arch && strstr(arch, "swin")) || sfq_st_find(st, "layers.0.blocks.0.norm1.weight") ||
            sfq_st_find(st, "features.0.0.weight"))
            return sfq_fail(SARDFQ_E_UNSUPPORTED, "Swin Transformer checkpoints are not supported yet");
        return sfq_fail(SARDFQ_E_FORMAT, "not a ViT checkpoint: no 'patch_embed.proj.weight' "
                                         "(timm) or 'conv_proj.weight' (torchvision) tensor");
    }
    cfg->naming = *naming;
    const sfq_st_tensor *pw = sfq_st_find(st, g->patch_w);
    if (pw->ndim != 4 || pw->shape[2] != pw->shape[3] || pw->shape[0] < 1 ||
        pw->shape[0] > MAX_DIM || pw->shape[2] < 1 || pw->shape[2] > 1024)
        return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be [D, C, p, p] with D <= %d", g->patch_w,
                        MAX_DIM);
    if (pw->shape[1] != 1 && pw->shape[1] != 3)
        return sfq_fail(SARDFQ_E_UNSUPPORTED, "'%s' has %lld input channels; 1 or 3 are supported",
                        g->patch_w, (long long)pw->shape[1]);
    cfg->embed_dim = (int)pw->shape[0];
    cfg->in_chans = (int)pw->shape[1];
    cfg->patch_size = (int)pw->shape[2];
    const int D = cfg->embed_dim;

    /* architecture */
    const int distilled = g->dist && sfq_st_find(st, g->dist) != NULL;
    cfg->arch = distilled ? SARDFQ_ARCH_DEIT_DISTILLED : SARDFQ_ARCH_VIT;
    cfg->source[SARDFQ_FIELD_ARCH] = SARDFQ_SOURCE_SHAPES;
    const char *arch = sfq_st_meta(st, "arch");
    if (arch) {
        if (strstr(arch, "swin"))
            return sfq_fail(SARDFQ_E_UNSUPPORTED, "metadata arch='%s': Swin is not supported yet", arch);
        if (strncmp(arch, "vit", 3) != 0 && strncmp(arch, "deit", 4) != 0)
            return sfq_fail(SARDFQ_E_UNSUPPORTED, "metadata arch='%s' is not a ViT/DeiT", arch);
        if ((strstr(arch, "distilled") != NULL) != distilled)
            return sfq_fail(SARDFQ_E_SHAPE, "metadata arch='%s' but the file %s a distillation token",
                            arch, distilled ? "has" : "has no");
        cfg->source[SARDFQ_FIELD_ARCH] = SARDFQ_SOURCE_METADATA;
    }
    cfg->num_prefix_tokens = distilled ? 2 : 1;

    /* depth: consecutive blocks from 0 */
    char name[160];
    int depth = 0;
    for (;;) {
        block_name(name, sizeof name, *naming, 0, depth, 0);
        if (!sfq_st_find(st, name) || depth == MAX_DEPTH)
            break;
        depth++;
    }
    if (depth == 0)
        return sfq_fail(SARDFQ_E_FORMAT, "no transformer block found (expected '%s')", name);
    cfg->depth = depth;

    /* mlp hidden from fc1 (torchvision: mlp.0 or legacy mlp.linear_1) */
    *legacy_mlp = 0;
    block_name(name, sizeof name, *naming, 0, 0, 8);
    const sfq_st_tensor *fc1 = sfq_st_find(st, name);
    if (!fc1 && *naming == SARDFQ_NAMING_TORCHVISION) {
        block_name(name, sizeof name, *naming, 1, 0, 8);
        fc1 = sfq_st_find(st, name);
        *legacy_mlp = fc1 != NULL;
    }
    if (!fc1)
        return sfq_fail(SARDFQ_E_FORMAT, "missing tensor '%s'", name);
    if (fc1->ndim != 2 || fc1->shape[1] != D || fc1->shape[0] < 1 || fc1->shape[0] > 16 * MAX_DIM)
        return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be [hidden, %d]", name, D);
    cfg->mlp_hidden = (int)fc1->shape[0];
    cfg->source[SARDFQ_FIELD_MLP_HIDDEN] = SARDFQ_SOURCE_SHAPES;
    const char *ratio = sfq_st_meta(st, "mlp_ratio");
    if (ratio) {
        float r;
        if (parse_floats(ratio, &r, 1) != 1 || !(r > 0))
            return sfq_fail(SARDFQ_E_FORMAT, "metadata mlp_ratio='%s' is not a positive number", ratio);
        if ((int)lrintf(r * (float)D) != cfg->mlp_hidden)
            return sfq_fail(SARDFQ_E_SHAPE, "metadata mlp_ratio=%s but '%s' gives hidden %d", ratio,
                            name, cfg->mlp_hidden);
        cfg->source[SARDFQ_FIELD_MLP_HIDDEN] = SARDFQ_SOURCE_METADATA;
    }

    /* classes */
    const sfq_st_tensor *hw = sfq_st_find(st, g->head_w);
    if (!hw)
        return sfq_fail(SARDFQ_E_FORMAT, "missing tensor '%s' (classification head)", g->head_w);
    if (hw->ndim != 2 || hw->shape[1] != D || hw->shape[0] < 1 || hw->shape[0] > 1000000)
        return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be [classes, %d]", g->head_w, D);
    cfg->num_classes = (int)hw->shape[0];

    /* tokens and image size */
    const sfq_st_tensor *pos = sfq_st_find(st, g->pos);
    if (!pos)
        return sfq_fail(SARDFQ_E_FORMAT, "missing tensor '%s'", g->pos);
    if (pos->ndim != 3 || pos->shape[0] != 1 || pos->shape[2] != D ||
        pos->shape[1] <= cfg->num_prefix_tokens || pos->shape[1] > 1000000)
        return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be [1, tokens, %d] with more than %d tokens",
                        g->pos, D, cfg->num_prefix_tokens);
    cfg->num_tokens = (int)pos->shape[1];
    const int grid_tokens = cfg->num_tokens - cfg->num_prefix_tokens;
    const char *img = sfq_st_meta(st, "img_size");
    if (img) {
        float hwv[2];
        int k = parse_floats(img, hwv, 2);
        if (k == 0 || hwv[0] < 1 || hwv[0] > 1 << 16 || (k == 2 && (hwv[1] < 1 || hwv[1] > 1 << 16)) ||
            hwv[0] != floorf(hwv[0]) || (k == 2 && hwv[1] != floorf(hwv[1])))
            return sfq_fail(SARDFQ_E_FORMAT, "metadata img_size='%s' is not 'S' or 'H,W'", img);
        cfg->img_h = (int)hwv[0];
        cfg->img_w = k == 2 ? (int)hwv[1] : (int)hwv[0];
        cfg->source[SARDFQ_FIELD_IMG_SIZE] = SARDFQ_SOURCE_METADATA;
        if (cfg->img_h % cfg->patch_size || cfg->img_w % cfg->patch_size)
            return sfq_fail(SARDFQ_E_SHAPE, "img_size %dx%d is not a multiple of the patch size %d",
                            cfg->img_h, cfg->img_w, cfg->patch_size);
        if ((long)(cfg->img_h / cfg->patch_size) * (cfg->img_w / cfg->patch_size) != grid_tokens)
            return sfq_fail(SARDFQ_E_SHAPE,
                            "img_size %dx%d with patch %d gives %d patches but '%s' has %d",
                            cfg->img_h, cfg->img_w, cfg->patch_size,
                            (cfg->img_h / cfg->patch_size) * (cfg->img_w / cfg->patch_size), g->pos,
                            grid_tokens);
    } else {
        int side = (int)lrint(sqrt((double)grid_tokens));
        if (side * side != grid_tokens)
            return sfq_fail(SARDFQ_E_FORMAT,
                            "cannot infer the image size: %d patches is not a square grid; add "
                            "img_size='H,W' to the metadata",
                            grid_tokens);
        cfg->img_h = cfg->img_w = side * cfg->patch_size;
        cfg->source[SARDFQ_FIELD_IMG_SIZE] = SARDFQ_SOURCE_SHAPES;
    }
    cfg->grid_h = cfg->img_h / cfg->patch_size;
    cfg->grid_w = cfg->img_w / cfg->patch_size;

    /* metadata that must agree with shapes */
    sardfq_status s;
    if ((s = agree(st, "embed_dim", D, g->patch_w, &cfg->source[SARDFQ_FIELD_EMBED_DIM])) ||
        (s = agree(st, "in_chans", cfg->in_chans, g->patch_w, &cfg->source[SARDFQ_FIELD_IN_CHANS])) ||
        (s = agree(st, "patch_size", cfg->patch_size, g->patch_w, &cfg->source[SARDFQ_FIELD_PATCH_SIZE])) ||
        (s = agree(st, "depth", cfg->depth, "the block count", &cfg->source[SARDFQ_FIELD_DEPTH])) ||
        (s = agree(st, "num_classes", cfg->num_classes, g->head_w, &cfg->source[SARDFQ_FIELD_NUM_CLASSES])))
        return s;

    /* heads: params, metadata, else head_dim 64 */
    int heads, found;
    if ((s = metadata_int(st, "num_heads", 1, D, &heads, &found)))
        return s;
    if (p->num_heads > 0) {
        if (found && heads != p->num_heads)
            return sfq_fail(SARDFQ_E_SHAPE, "params num_heads=%d contradicts metadata num_heads=%d",
                            p->num_heads, heads);
        heads = p->num_heads;
        cfg->source[SARDFQ_FIELD_NUM_HEADS] = SARDFQ_SOURCE_PARAMS;
    } else if (found) {
        cfg->source[SARDFQ_FIELD_NUM_HEADS] = SARDFQ_SOURCE_METADATA;
    } else {
        if (D % 64)
            return sfq_fail(SARDFQ_E_FORMAT,
                            "the number of heads cannot be inferred from shapes and embed_dim %d is "
                            "not a multiple of 64; set num_heads in the metadata or the params",
                            D);
        heads = D / 64;
        cfg->source[SARDFQ_FIELD_NUM_HEADS] = SARDFQ_SOURCE_DEFAULT;
    }
    if (heads < 1 || D % heads)
        return sfq_fail(SARDFQ_E_SHAPE, "num_heads=%d does not divide embed_dim %d", heads, D);
    cfg->num_heads = heads;
    cfg->head_dim = D / heads;

    /* normalisation and evaluation transform */
    const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f}, imagenet_std[3] = {0.229f, 0.224f, 0.225f};
    const char *keys[2] = {"mean", "std"};
    float *dst[2] = {cfg->mean, cfg->std};
    for (int k = 0; k < 2; k++) {
        const char *v = sfq_st_meta(st, keys[k]);
        float vals[3];
        if (v) {
            int n = parse_floats(v, vals, 3);
            if (!(n == 1 || n == cfg->in_chans))
                return sfq_fail(SARDFQ_E_FORMAT, "metadata %s='%s' needs 1 or %d values", keys[k], v,
                                cfg->in_chans);
            for (int c = 0; c < 3; c++)
                dst[k][c] = vals[n == 1 ? 0 : (c < n ? c : 0)];
            if (k == 1)
                for (int c = 0; c < cfg->in_chans; c++)
                    if (!(dst[k][c] > 0))
                        return sfq_fail(SARDFQ_E_FORMAT, "metadata std='%s' must be positive", v);
            cfg->source[k ? SARDFQ_FIELD_STD : SARDFQ_FIELD_MEAN] = SARDFQ_SOURCE_METADATA;
        } else {
            /* ImageNet statistics for RGB (DeiT, torchvision); 0.5 for gray */
            for (int c = 0; c < 3; c++)
                dst[k][c] = cfg->in_chans == 3 ? (k ? imagenet_std[c] : imagenet_mean[c]) : 0.5f;
            cfg->source[k ? SARDFQ_FIELD_STD : SARDFQ_FIELD_MEAN] = SARDFQ_SOURCE_DEFAULT;
        }
    }
    cfg->crop_pct = 0.9f;
    cfg->source[SARDFQ_FIELD_CROP_PCT] = SARDFQ_SOURCE_DEFAULT;
    const char *crop = sfq_st_meta(st, "crop_pct");
    if (crop) {
        if (parse_floats(crop, &cfg->crop_pct, 1) != 1 || !(cfg->crop_pct > 0.05f && cfg->crop_pct <= 1.0f))
            return sfq_fail(SARDFQ_E_FORMAT, "metadata crop_pct='%s' must be in (0.05, 1]", crop);
        cfg->source[SARDFQ_FIELD_CROP_PCT] = SARDFQ_SOURCE_METADATA;
    }
    cfg->ln_eps = 1e-6f;
    cfg->source[SARDFQ_FIELD_LN_EPS] = SARDFQ_SOURCE_DEFAULT;
    const char *eps = sfq_st_meta(st, "ln_eps");
    if (eps) {
        if (parse_floats(eps, &cfg->ln_eps, 1) != 1 || !(cfg->ln_eps > 0 && cfg->ln_eps < 1))
            return sfq_fail(SARDFQ_E_FORMAT, "metadata ln_eps='%s' must be in (0, 1)", eps);
        cfg->source[SARDFQ_FIELD_LN_EPS] = SARDFQ_SOURCE_METADATA;
    }
    return SARDFQ_OK;
}

static sardfq_status bind_all(sardfq_model *m, const sfq_st_file *st, int naming, int legacy_mlp)
{
    const sardfq_model_info *cfg = &m->info;
    const int64_t D = cfg->embed_dim, C = cfg->in_chans, P = cfg->patch_size, M = cfg->mlp_hidden,
                  K = cfg->num_classes, N = cfg->num_tokens;
    const global_names *g = naming == SARDFQ_NAMING_TIMM ? &TIMM_NAMES : &TV_NAMES;
    bind_ctx bc = {st, sfq_alloc_zero((size_t)st->n_tensors + 1), naming, m};
    if (!bc.used)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    sardfq_status s = SARDFQ_OK;
    if (sfq_qfile_is_quantized(st) && (s = sfq_qspec_read(st, cfg, bc.used, &m->q)) != SARDFQ_OK)
        goto out;
#undef BIND
#define BIND(nm, opt, dst, nd, ...)                                                     \
    do {                                                                                \
        s = bind(&bc, nm, opt, (float *)(dst), nd, SHAPE(__VA_ARGS__));                 \
        if (s != SARDFQ_OK)                                                             \
            goto out;                                                                   \
    } while (0)
    BIND(g->patch_w, 0, m->patch_w, 4, D, C, P, P);
    BIND(g->patch_b, 0, m->patch_b, 1, D);
    BIND(g->cls, 0, m->cls, 3, 1, 1, D);
    if (m->dist)
        BIND(g->dist, 0, m->dist, 3, 1, 1, D);
    BIND(g->pos, 0, m->pos, 3, 1, N, D);
    for (int l = 0; l < cfg->depth; l++) {
        sfq_block *b = &m->blocks[l];
        const float *dsts[12] = {b->ln1_w, b->ln1_b, b->qkv_w, b->qkv_b, b->proj_w, b->proj_b,
                                 b->ln2_w, b->ln2_b, b->fc1_w, b->fc1_b, b->fc2_w, b->fc2_b};
        const int64_t shapes[12][2] = {{D, 0}, {D, 0}, {3 * D, D}, {3 * D, 0}, {D, D}, {D, 0},
                                       {D, 0}, {D, 0}, {M, D},     {M, 0},     {D, M}, {D, 0}};
        for (int w = 0; w < 12; w++) {
            char name[160];
            block_name(name, sizeof name, naming, legacy_mlp, l, w);
            int nd = shapes[w][1] ? 2 : 1;
            /* timm allows qkv_bias=False: a missing qkv bias is zero */
            s = bind(&bc, name, w == 3, (float *)dsts[w], nd, shapes[w]);
            if (s != SARDFQ_OK)
                goto out;
        }
    }
    BIND(g->norm_w, 0, m->norm_w, 1, D);
    BIND(g->norm_b, 0, m->norm_b, 1, D);
    BIND(g->head_w, 0, m->head_w, 2, K, D);
    BIND(g->head_b, 0, m->head_b, 1, K);
    if (m->dist) {
        BIND(g->head_dist_w, 0, m->head_dist_w, 2, K, D);
        BIND(g->head_dist_b, 0, m->head_dist_b, 1, K);
    }
    for (int i = 0; i < st->n_tensors; i++)
        if (!bc.used[i]) {
            s = sfq_fail(SARDFQ_E_UNSUPPORTED,
                         "tensor '%s' is not part of the supported ViT graph (layer scale, "
                         "fc_norm, extra blocks and other variants are not supported)",
                         st->tensors[i].name);
            goto out;
        }
out:
    sfq_free(bc.used);
    return s;
#undef BIND
}

static sardfq_status copy_metadata(sardfq_model *m, const sfq_st_file *st)
{
    if (st->n_meta == 0)
        return SARDFQ_OK;
    m->meta_keys = sfq_alloc_zero(sizeof(char *) * (size_t)st->n_meta);
    m->meta_vals = sfq_alloc_zero(sizeof(char *) * (size_t)st->n_meta);
    if (!m->meta_keys || !m->meta_vals)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    for (int i = 0; i < st->n_meta; i++) {
        /* the per-quantizer entries of a quantized file live in m->q */
        if (strncmp(st->meta_keys[i], "sardfq.q.", 9) == 0)
            continue;
        const int k = m->n_meta;
        m->meta_keys[k] = sfq_strdup(st->meta_keys[i]);
        m->meta_vals[k] = sfq_strdup(st->meta_vals[i]);
        m->n_meta = k + 1;
        if (!m->meta_keys[k] || !m->meta_vals[k])
            return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    return SARDFQ_OK;
}

static sardfq_status load_parsed_view(const sfq_st_file *st, const sardfq_model_params *p,
                                      sardfq_model **out);

/* A quantized file is read through a view that shows its weight codes
 * under the weights' names and shapes (qio.h). */
static sardfq_status load_parsed(const sfq_st_file *st, const sardfq_model_params *p,
                                 sardfq_model **out)
{
    if (!sfq_qfile_is_quantized(st))
        return load_parsed_view(st, p, out);
    sfq_st_file view;
    sardfq_status s = sfq_qview_prepare(st, &view);
    if (s)
        return s;
    s = load_parsed_view(&view, p, out);
    sfq_qview_release(st, &view);
    return s;
}

static sardfq_status load_parsed_view(const sfq_st_file *st, const sardfq_model_params *p,
                                      sardfq_model **out)
{
    sardfq_model *m = sfq_alloc_zero(sizeof *m);
    if (!m)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    int naming = 0, legacy = 0;
    m->n_threads = p->n_threads;
    sardfq_status s = configure(st, p, &m->info, &naming, &legacy);
    if (!s)
        s = sfq_model_alloc_params(m);
    if (!s)
        s = bind_all(m, st, naming, legacy);
    if (!s)
        s = copy_metadata(m, st);
    if (s) {
        sardfq_model_free(m);
        return s;
    }
    *out = m;
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_model_load_memory(const void *buf, size_t len,
                                                  const sardfq_model_params *params,
                                                  sardfq_model **out)
{
    if (!buf || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_load_memory: %s is NULL",
                        !buf ? "buf" : "out");
    sardfq_model_params p;
    sardfq_status s = read_params(params, &p);
    if (s)
        return s;
    sfq_st_file st;
    s = sfq_st_parse(buf, len, &st);
    if (s)
        return s;
    s = load_parsed(&st, &p, out);
    sfq_st_release(&st);
    return s;
}

SARDFQ_API sardfq_status sardfq_model_load(const char *path, const sardfq_model_params *params,
                                           sardfq_model **out)
{
    if (!path || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_load: %s is NULL", !path ? "path" : "out");
    sardfq_model_params p;
    sardfq_status s = read_params(params, &p);
    if (s)
        return s;
    uint8_t *buf;
    size_t len;
    s = sfq_read_file(path, (size_t)1 << 40, &buf, &len);
    if (s)
        return s;
    sfq_st_file st;
    s = sfq_st_parse(buf, len, &st);
    if (s) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", sardfq_last_error());
        sfq_free(buf);
        return sfq_fail(s, "%s: %s", path, msg);
    }
    s = load_parsed(&st, &p, out);
    sfq_st_release(&st);
    sfq_free(buf);
    if (s) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", sardfq_last_error());
        return sfq_fail(s, "%s: %s", path, msg);
    }
    return SARDFQ_OK;
}

/* ---- random models ---------------------------------------------------- */

typedef struct {
    const char *name;
    int dim, depth, heads, imagenet_stats;
} arch_spec;

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

SARDFQ_API sardfq_status sardfq_model_create_random(const char *arch, uint64_t seed,
                                                    const sardfq_model_params *params,
                                                    sardfq_model **out)
{
    if (!arch || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_create_random: %s is NULL",
                        !arch ? "arch" : "out");
    sardfq_model_params p;
    sardfq_status s = read_params(params, &p);
    if (s)
        return s;
    const arch_spec *a = NULL;
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (!strcmp(arch, ARCHS[i].name))
            a = &ARCHS[i];
    if (!a)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "unknown architecture '%s' (vit_tiny, vit_small, vit_base, deit_tiny, "
                        "deit_small, deit_base)",
                        arch);
    sardfq_model *m = sfq_alloc_zero(sizeof *m);
    if (!m)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
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
    memcpy(out, &m->info, n);
    out->struct_size = n;
    return SARDFQ_OK;
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
