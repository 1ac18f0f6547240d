/* load.c - loading a sardfq_model from safetensors (timm or torchvision
 * ViT and Swin names, or a quantized model's codes). The model's lifecycle
 * (allocation, random models, free, clone, metadata, info) is model.c.
 *
 * Loading is three steps: work out the configuration (metadata first, then
 * tensor shapes, recording where each field came from), allocate one
 * parameter buffer, then bind every expected tensor name to its view with an
 * exact shape check. A tensor the graph would not use is an error, so a
 * checkpoint with features this graph lacks (layer scale, fc_norm, ...) is
 * refused rather than silently mis-evaluated. A quantized file's weight
 * codes are not decoded: the model, becoming final, packs them from the
 * file's buffer (sfq_model_finalize). */
#include "safetensors.h"
#include "names.h"
#include "qio.h"
#include "swin.h"
#include "iplan.h"
#include "vit.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM 65536
#define MAX_DEPTH 1024
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
    int flavour; /* SFQ_NAMES_*: the file's naming */
    sardfq_model *m; /* for quantized weights (U8 codes) */
} bind_ctx;

/* The U8 codes of a quantized weight tensor t (seen under the weight's
 * name and logical shape): noted in m->load_codes, not decoded (the model
 * packs them when it becomes final, sfq_model_finalize). */
static sardfq_status bind_codes(bind_ctx *b, const sfq_st_tensor *t, const char *name)
{
    const sardfq_model_info *cfg = &b->m->info;
    char wname[200];
    for (int i = 0; b->m->q && i < sfq_qspec_n_linears(cfg); i++) {
        if (!sfq_qlin_exists(cfg, i))
            continue;
        sfq_qlin_tensor_name(cfg, i, wname, sizeof wname);
        const sfq_qweight *w = &b->m->q->lin[i];
        if (strcmp(wname, name) != 0 || !w->bits)
            continue;
        const int rows = sfq_qlin_rows(cfg, i), cols = sfq_qlin_cols(cfg, i);
        if (t->end - t->begin != (size_t)rows * sfq_qcodes_row_bytes(w->bits, cols))
            return sfq_fail(SARDFQ_E_FORMAT, "'%s_codes' has the wrong size", name);
        b->m->load_codes[i] = b->st->data + t->begin;
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
        return bind_codes(b, t, name);
    sardfq_status s = sfq_st_read_f32(b->st, t, dst);
    if (s != SARDFQ_OK)
        return s;
    b->used[t - b->st->tensors] = 1;
    return SARDFQ_OK;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

/* Start binding st into m: the per-tensor "used" marks, and for a
 * quantized file its quantizers (which also mark their tensors). On
 * failure bc->used is NULL or must be freed by the caller. */
static sardfq_status bind_open(bind_ctx *bc, const sfq_st_file *st, int flavour, sardfq_model *m)
{
    *bc = (bind_ctx){st, sfq_alloc_zero((size_t)st->n_tensors + 1), flavour, m};
    if (!bc->used)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    if (!sfq_qfile_is_quantized(st))
        return SARDFQ_OK;
    m->load_codes = sfq_alloc_zero(sizeof(*m->load_codes) * (size_t)sfq_qspec_n_linears(&m->info));
    if (!m->load_codes)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    return sfq_qspec_read(st, &m->info, bc->used, &m->q);
}

/* Tensor id (stage s, block b) of arch in naming flavour: its name into buf
 * (n bytes) and the file's tensor of that name, or NULL. */
static const sfq_st_tensor *named(const sfq_st_file *st, int arch, int id, int flavour, int s, int b, char *buf,
                                  size_t n)
{
    return sfq_tensor_name(arch, id, flavour, s, b, buf, n) ? sfq_st_find(st, buf) : NULL;
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

/* The patch-embedding convolution pw [D][C][p][p] (named name): embed_dim,
 * in_chans, patch_size into cfg. */
static sardfq_status patch_embedding(const sfq_st_tensor *pw, const char *name, sardfq_model_info *cfg)
{
    if (pw->ndim != 4 || pw->shape[2] != pw->shape[3] || pw->shape[0] < 1 || pw->shape[0] > MAX_DIM ||
        pw->shape[2] < 1 || pw->shape[2] > 1024)
        return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be [D, C, p, p] with D <= %d", name, MAX_DIM);
    if (pw->shape[1] != 1 && pw->shape[1] != 3)
        return sfq_fail(SARDFQ_E_UNSUPPORTED, "'%s' has %lld input channels; 1 or 3 are supported", name,
                        (long long)pw->shape[1]);
    cfg->embed_dim = (int)pw->shape[0];
    cfg->in_chans = (int)pw->shape[1];
    cfg->patch_size = (int)pw->shape[2];
    return SARDFQ_OK;
}

/* Metadata img_size ("S" or "H,W") into cfg->img_h/img_w (source
 * METADATA); *found = 0 when absent. */
static sardfq_status metadata_img_size(const sfq_st_file *st, sardfq_model_info *cfg, int *found)
{
    const char *img = sfq_st_meta(st, "img_size");
    *found = img != NULL;
    if (!img)
        return SARDFQ_OK;
    float hwv[2];
    int k = parse_floats(img, hwv, 2);
    if (k == 0 || hwv[0] < 1 || hwv[0] > 1 << 16 || (k == 2 && (hwv[1] < 1 || hwv[1] > 1 << 16)) ||
        hwv[0] != floorf(hwv[0]) || (k == 2 && hwv[1] != floorf(hwv[1])))
        return sfq_fail(SARDFQ_E_FORMAT, "metadata img_size='%s' is not 'S' or 'H,W'", img);
    cfg->img_h = (int)hwv[0];
    cfg->img_w = k == 2 ? (int)hwv[1] : (int)hwv[0];
    cfg->source[SARDFQ_FIELD_IMG_SIZE] = SARDFQ_SOURCE_METADATA;
    return SARDFQ_OK;
}

/* mean/std, crop_pct and LayerNorm eps: metadata, else the family's
 * defaults (ImageNet statistics for RGB, 0.5 for gray; crop 0.9). */
static sardfq_status configure_transform(const sfq_st_file *st, sardfq_model_info *cfg, float default_eps)
{
    const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f}, imagenet_std[3] = {0.229f, 0.224f, 0.225f};
    const char *keys[2] = {"mean", "std"};
    float *dst[2] = {cfg->mean, cfg->std};
    for (int k = 0; k < 2; k++) {
        const char *v = sfq_st_meta(st, keys[k]);
        float vals[3] = {0, 0, 0};
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
    cfg->ln_eps = default_eps;
    cfg->source[SARDFQ_FIELD_LN_EPS] = SARDFQ_SOURCE_DEFAULT;
    const char *eps = sfq_st_meta(st, "ln_eps");
    if (eps) {
        if (parse_floats(eps, &cfg->ln_eps, 1) != 1 || !(cfg->ln_eps > 0 && cfg->ln_eps < 1))
            return sfq_fail(SARDFQ_E_FORMAT, "metadata ln_eps='%s' must be in (0, 1)", eps);
        cfg->source[SARDFQ_FIELD_LN_EPS] = SARDFQ_SOURCE_METADATA;
    }
    return SARDFQ_OK;
}

static sardfq_status configure(const sfq_st_file *st, const sardfq_model_params *p,
                               sardfq_model_info *cfg, int *flavour)
{
    const int A = SARDFQ_ARCH_VIT;
    char pw[96], hwn[96], posn[96], name[160];
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    *flavour = named(st, A, SFQ_T_PATCH_W, SFQ_NAMES_TIMM, 0, 0, pw, sizeof pw)      ? SFQ_NAMES_TIMM
               : named(st, A, SFQ_T_PATCH_W, SFQ_NAMES_TV, 0, 0, name, sizeof name) ? SFQ_NAMES_TV
                                                                                     : -1;
    if (*flavour < 0)
        return sfq_fail(SARDFQ_E_FORMAT, "not a ViT checkpoint: no '%s' (timm) or '%s' (torchvision) tensor", pw,
                        name);
    cfg->naming = *flavour == SFQ_NAMES_TIMM ? SARDFQ_NAMING_TIMM : SARDFQ_NAMING_TORCHVISION;
    sardfq_status ps = patch_embedding(named(st, A, SFQ_T_PATCH_W, *flavour, 0, 0, pw, sizeof pw), pw, cfg);
    if (ps)
        return ps;
    const int D = cfg->embed_dim;

    /* architecture */
    const int distilled = named(st, A, SFQ_T_DIST, *flavour, 0, 0, name, sizeof name) != NULL;
    cfg->arch = distilled ? SARDFQ_ARCH_DEIT_DISTILLED : SARDFQ_ARCH_VIT;
    cfg->source[SARDFQ_FIELD_ARCH] = SARDFQ_SOURCE_SHAPES;
    const char *arch = sfq_st_meta(st, "arch");
    if (arch) {
        if (strstr(arch, "swin"))
            return sfq_fail(SARDFQ_E_SHAPE, "metadata arch='%s' but the tensors are a ViT's", arch);
        if (strncmp(arch, "vit", 3) != 0 && strncmp(arch, "deit", 4) != 0)
            return sfq_fail(SARDFQ_E_UNSUPPORTED, "metadata arch='%s' is not a ViT/DeiT", arch);
        if ((strstr(arch, "distilled") != NULL) != distilled)
            return sfq_fail(SARDFQ_E_SHAPE, "metadata arch='%s' but the file %s a distillation token",
                            arch, distilled ? "has" : "has no");
        cfg->source[SARDFQ_FIELD_ARCH] = SARDFQ_SOURCE_METADATA;
    }
    cfg->num_prefix_tokens = distilled ? 2 : 1;

    /* depth: consecutive blocks from 0 */
    int depth = 0;
    for (;;) {
        if (!named(st, A, SFQ_T_LN1_W, *flavour, 0, depth, name, sizeof name) || depth == MAX_DEPTH)
            break;
        depth++;
    }
    if (depth == 0)
        return sfq_fail(SARDFQ_E_FORMAT, "no transformer block found (expected '%s')", name);
    cfg->depth = depth;

    /* mlp hidden from fc1 (torchvision: mlp.0 or legacy mlp.linear_1) */
    const sfq_st_tensor *fc1 = named(st, A, SFQ_T_FC1_W, *flavour, 0, 0, name, sizeof name);
    if (!fc1 && *flavour == SFQ_NAMES_TV) {
        fc1 = named(st, A, SFQ_T_FC1_W, SFQ_NAMES_TV_OLD, 0, 0, name, sizeof name);
        *flavour = fc1 ? SFQ_NAMES_TV_OLD : *flavour;
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
    const sfq_st_tensor *hw = named(st, A, SFQ_T_HEAD_W, *flavour, 0, 0, hwn, sizeof hwn);
    if (!hw)
        return sfq_fail(SARDFQ_E_FORMAT, "missing tensor '%s' (classification head)", hwn);
    if (hw->ndim != 2 || hw->shape[1] != D || hw->shape[0] < 1 || hw->shape[0] > 1000000)
        return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be [classes, %d]", hwn, D);
    cfg->num_classes = (int)hw->shape[0];

    /* tokens and image size */
    const sfq_st_tensor *pos = named(st, A, SFQ_T_POS, *flavour, 0, 0, posn, sizeof posn);
    if (!pos)
        return sfq_fail(SARDFQ_E_FORMAT, "missing tensor '%s'", posn);
    if (pos->ndim != 3 || pos->shape[0] != 1 || pos->shape[2] != D ||
        pos->shape[1] <= cfg->num_prefix_tokens || pos->shape[1] > 1000000)
        return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be [1, tokens, %d] with more than %d tokens",
                        posn, D, cfg->num_prefix_tokens);
    cfg->num_tokens = (int)pos->shape[1];
    const int grid_tokens = cfg->num_tokens - cfg->num_prefix_tokens;
    int img_found;
    sardfq_status ms = metadata_img_size(st, cfg, &img_found);
    if (ms)
        return ms;
    if (img_found) {
        if (cfg->img_h % cfg->patch_size || cfg->img_w % cfg->patch_size)
            return sfq_fail(SARDFQ_E_SHAPE, "img_size %dx%d is not a multiple of the patch size %d",
                            cfg->img_h, cfg->img_w, cfg->patch_size);
        if ((long)(cfg->img_h / cfg->patch_size) * (cfg->img_w / cfg->patch_size) != grid_tokens)
            return sfq_fail(SARDFQ_E_SHAPE,
                            "img_size %dx%d with patch %d gives %d patches but '%s' has %d",
                            cfg->img_h, cfg->img_w, cfg->patch_size,
                            (cfg->img_h / cfg->patch_size) * (cfg->img_w / cfg->patch_size), posn,
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
    if ((s = agree(st, "embed_dim", D, pw, &cfg->source[SARDFQ_FIELD_EMBED_DIM])) ||
        (s = agree(st, "in_chans", cfg->in_chans, pw, &cfg->source[SARDFQ_FIELD_IN_CHANS])) ||
        (s = agree(st, "patch_size", cfg->patch_size, pw, &cfg->source[SARDFQ_FIELD_PATCH_SIZE])) ||
        (s = agree(st, "depth", cfg->depth, "the block count", &cfg->source[SARDFQ_FIELD_DEPTH])) ||
        (s = agree(st, "num_classes", cfg->num_classes, hwn, &cfg->source[SARDFQ_FIELD_NUM_CLASSES])))
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

    return configure_transform(st, cfg, 1e-6f);
}

/* ---- Swin ----------------------------------------------------------------- */

static int is_swin(const sfq_st_file *st)
{
    char name[96];
    return named(st, SARDFQ_ARCH_SWIN, SFQ_T_LN1_W, SFQ_NAMES_TIMM, 0, 0, name, sizeof name) ||
           named(st, SARDFQ_ARCH_SWIN, SFQ_T_LN1_W, SFQ_NAMES_TV, 0, 0, name, sizeof name);
}

/* Parse a comma list of up to SARDFQ_MAX_STAGES positive integers. */
static int parse_int_list(const char *s, int *out)
{
    float v[SARDFQ_MAX_STAGES];
    const int n = parse_floats(s, v, SARDFQ_MAX_STAGES);
    for (int i = 0; i < n; i++) {
        if (!(v[i] >= 1 && v[i] <= 65536 && v[i] == floorf(v[i])))
            return 0;
        out[i] = (int)v[i];
    }
    return n;
}

/* Metadata list `key` (if present) must equal vals[0..n). */
static sardfq_status agree_list(const sfq_st_file *st, const char *key, const int32_t *vals, int n,
                                int32_t *source)
{
    const char *v = sfq_st_meta(st, key);
    if (!v)
        return SARDFQ_OK;
    int got[SARDFQ_MAX_STAGES];
    const int k = parse_int_list(v, got);
    if (!k)
        return sfq_fail(SARDFQ_E_FORMAT, "metadata %s='%s' is not a list of positive integers", key, v);
    int ok = k == n;
    for (int i = 0; ok && i < n; i++)
        ok = got[i] == vals[i];
    if (!ok)
        return sfq_fail(SARDFQ_E_SHAPE, "metadata %s='%s' disagrees with the tensors", key, v);
    *source = SARDFQ_SOURCE_METADATA;
    return SARDFQ_OK;
}

static sardfq_status configure_swin(const sfq_st_file *st, const sardfq_model_params *p, sardfq_model_info *cfg,
                                    int *flavour)
{
    const int A = SARDFQ_ARCH_SWIN;
    char pwn[96], hwn[96], name[200];
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    cfg->arch = SARDFQ_ARCH_SWIN;
    cfg->source[SARDFQ_FIELD_ARCH] = SARDFQ_SOURCE_SHAPES;
    const char *arch = sfq_st_meta(st, "arch");
    if (arch) {
        if (!strstr(arch, "swin"))
            return sfq_fail(SARDFQ_E_SHAPE, "metadata arch='%s' but the tensors are a Swin Transformer's", arch);
        if (strstr(arch, "v2"))
            return sfq_fail(SARDFQ_E_UNSUPPORTED, "metadata arch='%s': Swin V2 is not supported", arch);
        cfg->source[SARDFQ_FIELD_ARCH] = SARDFQ_SOURCE_METADATA;
    }
    if (p->num_heads > 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "num_heads cannot be overridden for a Swin model (its relative-position tables give the heads)");
    const int tv = named(st, A, SFQ_T_PATCH_W, SFQ_NAMES_TV, 0, 0, name, sizeof name) != NULL;
    /* older timm (< 0.9) merges at the end of stages ..S-2 (so the merge into
     * stage 1 is layers.0.downsample) and names the head head.weight */
    const int old = named(st, A, SFQ_T_DS_RED_W, SFQ_NAMES_TIMM_OLD, 1, 0, name, sizeof name) ||
                    !named(st, A, SFQ_T_HEAD_W, SFQ_NAMES_TIMM, 0, 0, name, sizeof name);
    *flavour = tv ? SFQ_NAMES_TV : old ? SFQ_NAMES_TIMM_OLD : SFQ_NAMES_TIMM;
    cfg->naming = tv ? SARDFQ_NAMING_TORCHVISION : SARDFQ_NAMING_TIMM;
    const sfq_st_tensor *pw = named(st, A, SFQ_T_PATCH_W, *flavour, 0, 0, pwn, sizeof pwn);
    if (!pw)
        return sfq_fail(SARDFQ_E_FORMAT, "Swin checkpoint without '%s'", pwn);
    sardfq_status s = patch_embedding(pw, pwn, cfg);
    if (s)
        return s;
    /* stages, blocks, widths, heads and window from the tensors */
    int S = 0;
    for (;;) {
        const sfq_st_tensor *n1 = named(st, A, SFQ_T_LN1_W, *flavour, S, 0, name, sizeof name);
        if (!n1)
            break;
        if (S == SARDFQ_MAX_STAGES)
            return sfq_fail(SARDFQ_E_UNSUPPORTED, "more than %d Swin stages", SARDFQ_MAX_STAGES);
        if (n1->ndim != 1 || n1->shape[0] < 1 || n1->shape[0] > MAX_DIM)
            return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be a vector", name);
        cfg->stage_dim[S] = (int)n1->shape[0];
        int b = 0;
        for (;;) {
            if (!named(st, A, SFQ_T_LN1_W, *flavour, S, b, name, sizeof name) || b == MAX_DEPTH)
                break;
            b++;
        }
        cfg->stage_depth[S] = b;
        const sfq_st_tensor *tb = named(st, A, SFQ_T_REL_TABLE, *flavour, S, 0, name, sizeof name);
        if (!tb)
            return sfq_fail(SARDFQ_E_FORMAT, "missing tensor '%s'", name);
        if (tb->ndim != 2 || tb->shape[1] < 1 || tb->shape[1] > 4096)
            return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be [(2w-1)^2, heads]", name);
        cfg->stage_heads[S] = (int)tb->shape[1];
        if (S == 0) {
            /* the window: metadata, else stage 0's table (2w-1)^2 rows;
             * bind_swin checks every table against it */
            int found = 0;
            s = metadata_int(st, "window_size", 1, 64, &cfg->window_size, &found);
            if (s)
                return s;
            const int w = (int)lrint((sqrt((double)tb->shape[0]) + 1) / 2);
            if (!found && (int64_t)(2 * w - 1) * (2 * w - 1) != tb->shape[0])
                return sfq_fail(SARDFQ_E_SHAPE, "'%s' has %lld rows, not (2w-1)^2 for a window w", name,
                                (long long)tb->shape[0]);
            if (!found)
                cfg->window_size = w;
        }
        S++;
    }
    if (S == 0)
        return sfq_fail(SARDFQ_E_FORMAT, "no Swin block found");
    cfg->num_stages = S;
    if (pw->shape[0] != cfg->stage_dim[0])
        return sfq_fail(SARDFQ_E_SHAPE, "'%s' has %lld channels but stage 0 is %d wide", pwn,
                        (long long)pw->shape[0], cfg->embed_dim);
    const sfq_st_tensor *fc1 = named(st, A, SFQ_T_FC1_W, *flavour, 0, 0, name, sizeof name);
    if (!fc1 || fc1->ndim != 2 || fc1->shape[1] != cfg->embed_dim || fc1->shape[0] < 1 || fc1->shape[0] > 16 * MAX_DIM)
        return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be [hidden, %d]", name, cfg->embed_dim);
    cfg->mlp_hidden = (int)fc1->shape[0];
    cfg->source[SARDFQ_FIELD_MLP_HIDDEN] = SARDFQ_SOURCE_SHAPES;
    const sfq_st_tensor *hw = named(st, A, SFQ_T_HEAD_W, *flavour, 0, 0, hwn, sizeof hwn);
    if (!hw)
        return sfq_fail(SARDFQ_E_FORMAT, "missing tensor '%s' (classification head)", hwn);
    if (hw->ndim != 2 || hw->shape[0] < 1 || hw->shape[0] > 1000000)
        return sfq_fail(SARDFQ_E_SHAPE, "'%s' must be [classes, features]", hwn);
    cfg->num_classes = (int)hw->shape[0];
    /* image size: metadata, else timm's 224 */
    int found;
    if ((s = metadata_img_size(st, cfg, &found)))
        return s;
    if (!found) {
        cfg->img_h = cfg->img_w = 224;
        cfg->source[SARDFQ_FIELD_IMG_SIZE] = SARDFQ_SOURCE_DEFAULT;
    }
    if ((s = sfq_swin_configure(cfg)))
        return s;
    /* torchvision pads a grid smaller than the window (the padding tokens
     * then take part in attention) where timm clips the window: only timm's
     * behaviour is implemented */
    for (int si = 0; tv && si < S; si++)
        if ((cfg->grid_h >> si) < cfg->window_size || (cfg->grid_w >> si) < cfg->window_size)
            return sfq_fail(SARDFQ_E_UNSUPPORTED,
                            "image %dx%d: stage %d's %dx%d grid is smaller than the window %d, which "
                            "torchvision pads (timm clips the window instead; only timm's behaviour is "
                            "implemented)",
                            cfg->img_h, cfg->img_w, si, cfg->grid_h >> si, cfg->grid_w >> si, cfg->window_size);
    int32_t src_depth = SARDFQ_SOURCE_SHAPES, src_heads = SARDFQ_SOURCE_SHAPES;
    if ((s = agree(st, "embed_dim", cfg->embed_dim, pwn, &cfg->source[SARDFQ_FIELD_EMBED_DIM])) ||
        (s = agree(st, "in_chans", cfg->in_chans, pwn, &cfg->source[SARDFQ_FIELD_IN_CHANS])) ||
        (s = agree(st, "patch_size", cfg->patch_size, pwn, &cfg->source[SARDFQ_FIELD_PATCH_SIZE])) ||
        (s = agree(st, "num_classes", cfg->num_classes, hwn, &cfg->source[SARDFQ_FIELD_NUM_CLASSES])) ||
        (s = agree_list(st, "depths", cfg->stage_depth, S, &src_depth)) ||
        (s = agree_list(st, "num_heads", cfg->stage_heads, S, &src_heads)))
        return s;
    cfg->source[SARDFQ_FIELD_DEPTH] = src_depth;
    cfg->source[SARDFQ_FIELD_NUM_HEADS] = src_heads;
    return configure_transform(st, cfg, 1e-5f);
}

/* A relative-position table: [(2w-1)^2][heads] for the model's window w,
 * or [(2wh-1)(2ww-1)][heads] for the window clipped to the stage's grid (as
 * timm builds it for small grids), which is placed at the centre of the
 * full table (the only rows a clipped window reads; the rest are 0). */
static sardfq_status bind_clipped_table(bind_ctx *bc, const char *name, const sfq_swin_stage *g, int w,
                                        float *dst)
{
    const int64_t h = g->heads, full = (int64_t)(2 * w - 1) * (2 * w - 1);
    const int64_t clip = (int64_t)(2 * g->wh - 1) * (2 * g->ww - 1);
    const sfq_st_tensor *t = find(bc, name);
    if (!t || t->ndim != 2 || t->shape[0] == full || t->shape[0] != clip)
        return bind(bc, name, 0, dst, 2, SHAPE(full, h));
    float *tmp = sfq_alloc_array((size_t)(clip * h), sizeof(float));
    if (!tmp)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    sardfq_status s = bind(bc, name, 0, tmp, 2, SHAPE(clip, h));
    if (!s) {
        memset(dst, 0, sizeof(float) * (size_t)(full * h));
        for (int dy = 1 - g->wh; dy < g->wh; dy++)
            for (int dx = 1 - g->ww; dx < g->ww; dx++)
                memcpy(dst + ((int64_t)(dy + w - 1) * (2 * w - 1) + dx + w - 1) * h,
                       tmp + ((int64_t)(dy + g->wh - 1) * (2 * g->ww - 1) + dx + g->ww - 1) * h,
                       sizeof(float) * (size_t)h);
    }
    sfq_free(tmp);
    return s;
}

/* Bind tensor t of the model from the file, under the file's naming. */
static int bind_tensor(void *ctx, const sfq_tensor *t)
{
    bind_ctx *bc = ctx;
    char name[200];
    if (!sfq_tensor_name(bc->m->info.arch, t->id, bc->flavour, t->stage, t->block, name, sizeof name))
        return sfq_fail(SARDFQ_E_INTERNAL, "tensor %d has no name in this naming", t->id);
    if (t->id == SFQ_T_REL_TABLE)
        return bind_clipped_table(bc, name, &bc->m->swin->st[t->stage], bc->m->info.window_size, t->data);
    return bind(bc, name, t->flags & SFQ_NAME_OPTIONAL, t->data, t->ndim, t->shape);
}

/* Bind every tensor of m (names.c's table) from st, then refuse any tensor
 * of the file that the graph would not use. */
static sardfq_status bind_model(sardfq_model *m, const sfq_st_file *st, int flavour)
{
    bind_ctx bc;
    sardfq_status s = bind_open(&bc, st, flavour, m);
    if (!s)
        s = (sardfq_status)sfq_tensors_walk(m, bind_tensor, &bc);
    for (int i = 0; !s && i < st->n_tensors; i++) {
        /* Swin: buffers that older checkpoints store, rebuilt from the
         * geometry */
        const char *tn = st->tensors[i].name;
        const size_t len = strlen(tn);
        if (bc.used[i] || (m->swin && ((len > 24 && !strcmp(tn + len - 24, ".relative_position_index")) ||
                                       (len > 10 && !strcmp(tn + len - 10, ".attn_mask")))))
            continue;
        s = m->swin ? sfq_fail(SARDFQ_E_UNSUPPORTED,
                               "tensor '%s' is not part of the supported Swin graph (absolute position "
                               "embedding, Swin V2 and other variants are not supported)",
                               tn)
                    : sfq_fail(SARDFQ_E_UNSUPPORTED,
                               "tensor '%s' is not part of the supported ViT graph (layer scale, "
                               "fc_norm, extra blocks and other variants are not supported)",
                               tn);
    }
    sfq_free(bc.used);
    return s;
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
    int flavour = SFQ_NAMES_TIMM;
    m->n_threads = p->n_threads;
    sardfq_status s = is_swin(st) ? configure_swin(st, p, &m->info, &flavour) : configure(st, p, &m->info, &flavour);
    if (!s)
        s = sfq_model_alloc_params(m);
    if (!s)
        s = bind_model(m, st, flavour);
    if (!s)
        s = copy_metadata(m, st);
    if (!s)
        s = sfq_model_finalize(m);
    /* the codes pointed into the file's buffer: packed or decoded now */
    sfq_free((void *)m->load_codes);
    m->load_codes = NULL;
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
    sardfq_status s = sfq_model_read_params(params, &p);
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
    sardfq_status s = sfq_model_read_params(params, &p);
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
