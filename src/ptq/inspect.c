/* inspect.c - the name-based read-only view of inspect.h, on today's model
 * layout (the spec's point and linear indices, the parameter views). */
#include "inspect.h"

#include "names.h"
#include "qspec.h"
#include "vit.h"

#include <stdio.h>
#include <string.h>

int sfq_inspect_quantized(const sardfq_model *m) { return m && m->q; }

/* name into buf (n bytes), or SARDFQ_E_INVALID_ARG if it does not fit. */
static sardfq_status put_name(const char *what, const char *name, char *buf, size_t n)
{
    if (!buf || n == 0 || strlen(name) >= n)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: buffer too small for '%s'", what, name);
    memcpy(buf, name, strlen(name) + 1);
    return SARDFQ_OK;
}

/* Index of `name` among the count names that fn gives, or -1. */
static int find(const sardfq_model_info *cfg, int count, void (*fn)(const sardfq_model_info *, int, char *, size_t),
                const char *name)
{
    char buf[96];
    for (int i = 0; i < count; i++) {
        fn(cfg, i, buf, sizeof buf);
        if (strcmp(buf, name) == 0)
            return i;
    }
    return -1;
}

/* ---- activation points --------------------------------------------------- */

int sfq_inspect_act_count(const sardfq_model *m) { return m ? sfq_qspec_n_points(&m->info) : 0; }

sardfq_status sfq_inspect_act_name(const sardfq_model *m, int i, char *buf, size_t n)
{
    if (!m || i < 0 || i >= sfq_inspect_act_count(m))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_inspect_act_name: no point %d", i);
    char name[96];
    sfq_qpoint_name(&m->info, i, name, sizeof name);
    return put_name("sfq_inspect_act_name", name, buf, n);
}

sardfq_status sfq_inspect_act(const sardfq_model *m, const char *name, sfq_act_view *out)
{
    if (!m || !name || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_inspect_act: NULL argument");
    const int i = find(&m->info, sfq_qspec_n_points(&m->info), sfq_qpoint_name, name);
    if (i < 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_inspect_act: no activation point '%s'", name);
    memset(out, 0, sizeof *out);
    const sfq_qact *a = m->q ? &m->q->acts[i] : NULL;
    if (!a || a->kind == SFQ_QK_OFF)
        return SARDFQ_OK;
    out->bits = a->bits;
    if (a->kind == SFQ_QK_LOG) {
        out->kind = SFQ_INSPECT_LOG;
        out->scale = a->lq.scale;
        out->lq = a->lq;
    } else {
        out->kind = SFQ_INSPECT_UNIFORM;
        out->scale = a->u.scale;
        out->zero = a->u.zero;
        out->u = a->u;
    }
    return SARDFQ_OK;
}

/* ---- linears --------------------------------------------------------------- */

/* Spec index of the i-th linear m has, or -1. */
static int linear_index(const sardfq_model *m, int i)
{
    for (int k = 0, seen = 0; k < sfq_qspec_n_linears(&m->info); k++)
        if (sfq_qlin_exists(&m->info, k) && seen++ == i)
            return k;
    return -1;
}

int sfq_inspect_linear_count(const sardfq_model *m)
{
    int n = 0;
    for (int k = 0; m && k < sfq_qspec_n_linears(&m->info); k++)
        n += sfq_qlin_exists(&m->info, k);
    return n;
}

sardfq_status sfq_inspect_linear_name(const sardfq_model *m, int i, char *buf, size_t n)
{
    const int k = m && i >= 0 ? linear_index(m, i) : -1;
    if (k < 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_inspect_linear_name: no linear %d", i);
    char name[96];
    sfq_qlin_name(&m->info, k, name, sizeof name);
    return put_name("sfq_inspect_linear_name", name, buf, n);
}

sardfq_status sfq_inspect_linear(const sardfq_model *m, const char *name, sfq_lin_view *out)
{
    if (!m || !name || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_inspect_linear: NULL argument");
    const int k = find(&m->info, sfq_qspec_n_linears(&m->info), sfq_qlin_name, name);
    if (k < 0 || !sfq_qlin_exists(&m->info, k))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_inspect_linear: no linear '%s'", name);
    memset(out, 0, sizeof *out);
    out->rows = sfq_qlin_rows(&m->info, k);
    out->cols = sfq_qlin_cols(&m->info, k);
    if (m->q && m->q->lin[k].bits) {
        out->bits = m->q->lin[k].bits;
        out->row = m->q->lin[k].rows;
    }
    return SARDFQ_OK;
}

/* ---- tensors --------------------------------------------------------------- */

/* A search for one tensor among the model's, under the names save gives
 * them (names.c). */
typedef struct {
    const sardfq_model *m;
    const char *want;
    sfq_tensor t;
    size_t count;
} tensor_find;

static int offer(void *ctx, const sfq_tensor *t)
{
    tensor_find *f = ctx;
    char name[200];
    sfq_tensor_name(f->m->info.arch, t->id, SFQ_NAMES_TIMM, t->stage, t->block, name, sizeof name);
    if (strcmp(name, f->want) != 0)
        return 0;
    f->t = *t;
    f->count = 1;
    for (int d = 0; d < t->ndim; d++)
        f->count *= (size_t)t->shape[d];
    return 1;
}

sardfq_status sfq_inspect_tensor(const sardfq_model *m, const char *name, float **data, size_t *count)
{
    if (!m || !name || !data || !count)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_inspect_tensor: NULL argument");
    tensor_find f = {m, name, {0}, 0};
    if (!sfq_tensors_walk(m, offer, &f))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_inspect_tensor: no tensor '%s'", name);
    float *copy = sfq_alloc_array(f.count, sizeof(float));
    if (!copy)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    if (f.t.data)
        memcpy(copy, f.t.data, f.count * sizeof(float));
    else if (!sfq_qlin_weight_read(m, f.t.lin, copy)) {
        sfq_free(copy);
        return sfq_fail(SARDFQ_E_INTERNAL, "sfq_inspect_tensor: '%s' has no values", name);
    }
    *data = copy;
    *count = f.count;
    return SARDFQ_OK;
}
