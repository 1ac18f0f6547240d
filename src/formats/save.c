/* save.c - sardfq_model_save: a model (floating-point or quantized) as a
 * timm-named safetensors file that sardfq_model_load reads back exactly
 * (quantized layout in qio.c). */
#include "iplan.h"
#include "names.h"
#include "qio.h"
#include "vit.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    sfq_st_out_tensor *t;
    int n, cap;
    char **names; /* owned copies */
    void **bufs;  /* owned data */
    int nbufs;
    const char **mk, **mv; /* metadata (values owned when in vals) */
    int nm, mcap;
    char **vals;
    int nvals;
} plan;

static void plan_free(plan *p)
{
    for (int i = 0; i < p->n; i++)
        sfq_free(p->names[i]);
    for (int i = 0; i < p->nbufs; i++)
        sfq_free(p->bufs[i]);
    for (int i = 0; i < p->nvals; i++)
        sfq_free(p->vals[i]);
    sfq_free(p->t);
    sfq_free(p->names);
    sfq_free(p->bufs);
    sfq_free(p->mk);
    sfq_free(p->mv);
    sfq_free(p->vals);
}

static int plan_init(plan *p, int cap, int mcap)
{
    memset(p, 0, sizeof *p);
    p->cap = cap;
    p->mcap = mcap;
    p->t = sfq_alloc_zero(sizeof(sfq_st_out_tensor) * (size_t)cap);
    p->names = sfq_alloc_zero(sizeof(char *) * (size_t)cap);
    p->bufs = sfq_alloc_zero(sizeof(void *) * (size_t)cap);
    p->mk = sfq_alloc_zero(sizeof(char *) * (size_t)mcap);
    p->mv = sfq_alloc_zero(sizeof(char *) * (size_t)mcap);
    p->vals = sfq_alloc_zero(sizeof(char *) * 2 * (size_t)mcap);
    return p->t && p->names && p->bufs && p->mk && p->mv && p->vals;
}

/* Take ownership of a buffer (freed with the plan); on failure frees it. */
static int own(plan *p, void *buf)
{
    if (!buf || p->nbufs >= p->cap) {
        sfq_free(buf);
        return 0;
    }
    p->bufs[p->nbufs++] = buf;
    return 1;
}

/* Add a tensor (data borrowed, or owned by the plan through own()). */
static int add(plan *p, const char *name, sfq_dtype dt, const void *data, int nd, const int64_t *shape)
{
    if (p->n >= p->cap)
        return 0;
    char *nm = sfq_strdup(name);
    if (!nm)
        return 0;
    sfq_st_out_tensor *t = &p->t[p->n];
    p->names[p->n++] = nm;
    t->name = nm;
    t->dtype = dt;
    t->ndim = nd;
    t->data = data;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)nd);
    return 1;
}

static int meta(plan *p, const char *key, const char *val)
{
    if (p->nm >= p->mcap)
        return 0;
    char *k = sfq_strdup(key), *v = sfq_strdup(val);
    if (!k || !v || p->nvals + 2 > p->mcap * 2) {
        sfq_free(k);
        sfq_free(v);
        return 0;
    }
    p->vals[p->nvals++] = k;
    p->vals[p->nvals++] = v;
    p->mk[p->nm] = k;
    p->mv[p->nm++] = v;
    return 1;
}

/* Is key one this function writes itself (so an old value is not kept)? */
static int ours(const char *key)
{
    static const char *const cfg[] = {"arch",  "img_size", "patch_size", "in_chans",
                                      "embed_dim", "depth", "num_heads", "mlp_ratio",
                                      "num_classes", "mean", "std", "crop_pct",
                                      "ln_eps", "depths", "window_size"};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++)
        if (strcmp(key, cfg[i]) == 0)
            return 1;
    return strncmp(key, "sardfq.q", 8) == 0;
}

/* "a,b,c" of n ints */
static void int_list(char *buf, size_t n, const int32_t *v, int count)
{
    buf[0] = '\0';
    for (int i = 0; i < count; i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%d", i ? "," : "", (int)v[i]);
}

/* Linear t's weight under name: F32, or for a quantized weight its codes,
 * scales and zeros and the metadata "B d0,d1[,...]" (qio.c). */
static sardfq_status add_weight(plan *p, const sardfq_model *m, const sfq_tensor *t, const char *tname)
{
    const sfq_qweight *w = m->q ? &m->q->lin[t->lin] : NULL;
    const int rows = (int)t->shape[0], cols = sfq_qlin_cols(&m->info, t->lin);
    char name[220], val[96];
    if (!w || !w->bits)
        return add(p, tname, SFQ_DT_F32, t->data, t->ndim, t->shape) ? SARDFQ_OK
                                                                    : sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    const size_t rb = sfq_qcodes_row_bytes(w->bits, cols);
    uint8_t *codes = sfq_alloc_array((size_t)rows, rb);
    if (!own(p, codes))
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    float *sz = sfq_alloc_array((size_t)rows * 2, sizeof(float));
    if (!own(p, sz))
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    /* a weight that a final model holds only as codes: those codes, as
     * packed (no float values in between); else its floats' codes */
    const sfq_ipack *pk = t->data ? NULL : sfq_iplan_pack(m, t->lin);
    sardfq_status s;
    if (pk) {
        uint8_t *row = sfq_alloc((size_t)cols);
        if (!row)
            return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
        for (int r = 0; r < rows; r++) {
            sfq_ipack_codes(pk, r, row);
            sfq_qcodes_put_row(row, cols, w->bits, codes + (size_t)r * rb);
        }
        sfq_free(row);
        s = SARDFQ_OK;
    } else {
        s = !t->data ? sfq_fail(SARDFQ_E_INTERNAL, "sardfq_model_save: a weight has no values")
                     : sfq_qcodes_pack(w->rows, t->data, rows, cols, w->bits, codes);
    }
    if (s)
        return s;
    for (int r = 0; r < rows; r++) {
        sz[r] = w->rows[r].scale;
        sz[rows + r] = w->rows[r].zero;
    }
    snprintf(name, sizeof name, "%s_codes", tname);
    int ok = add(p, name, SFQ_DT_U8, codes, 2, (const int64_t[]){rows, (int64_t)rb});
    snprintf(name, sizeof name, "%s_scale", tname);
    ok = ok && add(p, name, SFQ_DT_F32, sz, 1, (const int64_t[]){rows});
    snprintf(name, sizeof name, "%s_zero", tname);
    ok = ok && add(p, name, SFQ_DT_F32, sz + rows, 1, (const int64_t[]){rows});
    size_t k = (size_t)snprintf(val, sizeof val, "%d ", w->bits);
    for (int d = 0; d < t->ndim && k < sizeof val; d++)
        k += (size_t)snprintf(val + k, sizeof val - k, "%s%lld", d ? "," : "", (long long)t->shape[d]);
    snprintf(name, sizeof name, "sardfq.q.%s", tname);
    ok = ok && meta(p, name, val);
    return ok ? SARDFQ_OK : sfq_fail(SARDFQ_E_NOMEM, "out of memory");
}

typedef struct {
    plan *p;
    const sardfq_model *m;
} save_ctx;

/* Every tensor of the model under its timm name (names.c's order). */
static int add_tensor(void *ctx, const sfq_tensor *t)
{
    const save_ctx *c = ctx;
    char name[200];
    sfq_tensor_name(c->m->info.arch, t->id, SFQ_NAMES_TIMM, t->stage, t->block, name, sizeof name);
    if (t->lin >= 0)
        return add_weight(c->p, c->m, t, name);
    return add(c->p, name, SFQ_DT_F32, t->data, t->ndim, t->shape) ? SARDFQ_OK : sfq_fail(SARDFQ_E_NOMEM, "out of memory");
}

static sardfq_status add_acts(plan *p, const sardfq_model *m)
{
    const sfq_qspec *q = m->q;
    char name[200], val[64];
    for (int i = 0; i < q->npoints; i++) {
        const sfq_qact *a = &q->acts[i];
        if (!a->kind)
            continue;
        char pt[96];
        sfq_qpoint_name(&m->info, i, pt, sizeof pt);
        float *v = sfq_alloc_array(2, sizeof(float));
        if (!own(p, v))
            return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
        v[0] = a->kind == SFQ_QK_LOG ? a->lq.scale : a->u.scale;
        v[1] = a->u.zero;
        snprintf(name, sizeof name, "%s.scale", pt);
        int ok = add(p, name, SFQ_DT_F32, v, 1, (const int64_t[]){1});
        if (ok && a->kind == SFQ_QK_UNIFORM) {
            snprintf(name, sizeof name, "%s.zero", pt);
            ok = add(p, name, SFQ_DT_F32, v + 1, 1, (const int64_t[]){1});
        }
        snprintf(val, sizeof val, "%s %d",
                 a->kind == SFQ_QK_LOG ? "log" : a->u.form == SFQ_UQ_PSAQ ? "uniform-psaq" : "uniform",
                 a->bits);
        snprintf(name, sizeof name, "sardfq.q.%s", pt);
        if (!ok || !meta(p, name, val))
            return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_model_save(const sardfq_model *m, const char *path)
{
    if (!m || !path)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_save: %s is NULL", !m ? "model" : "path");
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    return sfq_fail(SARDFQ_E_UNSUPPORTED, "sardfq_model_save: only little-endian hosts are supported");
#else
    const sardfq_model_info *cfg = &m->info;
    const int depth = cfg->depth, npts = m->q ? sfq_qspec_n_points(cfg) : 0;
    const int nlin = sfq_qspec_n_linears(cfg);
    plan p;
    if (!plan_init(&p, 16 + depth * 20 + cfg->num_stages * 8 + nlin * 3 + npts * 2, 32 + m->n_meta + nlin + npts)) {
        plan_free(&p);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    char val[128];
    save_ctx sc = {&p, m};
    sardfq_status s = (sardfq_status)sfq_tensors_walk(m, add_tensor, &sc);
#define TRY(x)                                                 \
    do {                                                       \
        if (!s && !(x))                                        \
            s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");     \
    } while (0)
    if (!s && m->q)
        s = add_acts(&p, m);
    /* configuration, then the model's other metadata */
    TRY(meta(&p, "arch", m->swin ? "swin" : cfg->num_prefix_tokens == 2 ? "deit_distilled" : "vit"));
    snprintf(val, sizeof val, "%d,%d", cfg->img_h, cfg->img_w);
    TRY(meta(&p, "img_size", val));
    if (m->swin) {
        int_list(val, sizeof val, cfg->stage_heads, cfg->num_stages);
        TRY(meta(&p, "num_heads", val));
        int_list(val, sizeof val, cfg->stage_depth, cfg->num_stages);
        TRY(meta(&p, "depths", val));
        snprintf(val, sizeof val, "%d", cfg->window_size);
        TRY(meta(&p, "window_size", val));
    } else {
        snprintf(val, sizeof val, "%d", cfg->num_heads);
        TRY(meta(&p, "num_heads", val));
    }
    const int nc = cfg->in_chans;
    if (nc == 1)
        snprintf(val, sizeof val, "%.9g", cfg->mean[0]);
    else
        snprintf(val, sizeof val, "%.9g,%.9g,%.9g", cfg->mean[0], cfg->mean[1], cfg->mean[2]);
    TRY(meta(&p, "mean", val));
    if (nc == 1)
        snprintf(val, sizeof val, "%.9g", cfg->std[0]);
    else
        snprintf(val, sizeof val, "%.9g,%.9g,%.9g", cfg->std[0], cfg->std[1], cfg->std[2]);
    TRY(meta(&p, "std", val));
    snprintf(val, sizeof val, "%.9g", cfg->crop_pct);
    TRY(meta(&p, "crop_pct", val));
    snprintf(val, sizeof val, "%.9g", cfg->ln_eps);
    TRY(meta(&p, "ln_eps", val));
    if (m->q) {
        TRY(meta(&p, "sardfq.quant.scheme", m->q->scheme == SARDFQ_SCHEME_REPQ ? "repq" : "minmax"));
        snprintf(val, sizeof val, "%d", m->q->wbits);
        TRY(meta(&p, "sardfq.quant.weight_bits", val));
        snprintf(val, sizeof val, "%d", m->q->abits);
        TRY(meta(&p, "sardfq.quant.act_bits", val));
        TRY(meta(&p, "sardfq.quant.format", "1"));
    }
    for (int i = 0; i < m->n_meta && !s; i++)
        if (!ours(m->meta_keys[i]))
            TRY(meta(&p, m->meta_keys[i], m->meta_vals[i]));
#undef TRY
    if (!s)
        s = sfq_st_write(path, p.t, p.n, p.mk, p.mv, p.nm);
    plan_free(&p);
    return s;
#endif
}
