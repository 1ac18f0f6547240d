/* inspect.c - the name-based read-only view of inspect.h, on today's model
 * layout (the spec's point and linear indices, the parameter views). */
#include "inspect.h"

#include "names.h"
#include "qio.h"
#include "qspec.h"
#include "swin.h"
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

/* A search for one tensor name through the model's tensors. */
typedef struct {
    const char *want;
    const float *data;
    size_t count;
    int found;
} tensor_find;

static int offer(tensor_find *f, const char *name, const float *data, size_t count)
{
    if (!f->found && data && strcmp(name, f->want) == 0) {
        f->data = data;
        f->count = count;
        f->found = 1;
    }
    return f->found;
}

/* The vectors of block l ("<prefix>.norm1.weight", ...): width C, hidden M;
 * Swin blocks add the relative-position table of T rows x h heads. */
static int offer_block(tensor_find *f, const sfq_block *b, const char *prefix, size_t C, size_t M, size_t table)
{
    static const char *const nm[9] = {"norm1.weight", "norm1.bias",  "attn.qkv.bias", "attn.proj.bias",
                                      "norm2.weight", "norm2.bias",  "mlp.fc1.bias",  "mlp.fc2.bias",
                                      "attn.relative_position_bias_table"};
    const float *d[9] = {b->ln1_w, b->ln1_b, b->qkv_b, b->proj_b, b->ln2_w, b->ln2_b, b->fc1_b, b->fc2_b, b->rel_table};
    const size_t len[9] = {C, C, 3 * C, C, C, C, M, C, table};
    const size_t pl = strlen(prefix);
    if (strncmp(f->want, prefix, pl) != 0 || f->want[pl] != '.')
        return 0;
    for (int k = 0; k < 9; k++)
        if (len[k] && d[k] && strcmp(f->want + pl + 1, nm[k]) == 0) {
            f->data = d[k];
            f->count = len[k];
            f->found = 1;
            return 1;
        }
    return 0;
}

static void find_tensor(const sardfq_model *m, tensor_find *f)
{
    const sardfq_model_info *cfg = &m->info;
    char name[200];
    /* every linear's weight, under the name its save gives it */
    for (int k = 0; k < sfq_qspec_n_linears(cfg); k++) {
        if (!sfq_qlin_exists(cfg, k))
            continue;
        sfq_qlin_tensor_name(cfg, k, name, sizeof name);
        if (offer(f, name, sfq_qlin_weight(m, k), (size_t)sfq_qlin_rows(cfg, k) * (size_t)sfq_qlin_cols(cfg, k)))
            return;
    }
    const size_t K = (size_t)cfg->num_classes, Cf = (size_t)cfg->num_features, D = (size_t)cfg->embed_dim;
    if (offer(f, "patch_embed.proj.bias", m->patch_b, D) || offer(f, "norm.weight", m->norm_w, Cf) ||
        offer(f, "norm.bias", m->norm_b, Cf))
        return;
    if (m->swin) {
        const sfq_swin *sw = m->swin;
        const size_t T = (size_t)(2 * cfg->window_size - 1) * (size_t)(2 * cfg->window_size - 1);
        if (offer(f, "patch_embed.norm.weight", sw->pe_norm_w, D) || offer(f, "patch_embed.norm.bias", sw->pe_norm_b, D) ||
            offer(f, "head.fc.bias", m->head_b, K))
            return;
        for (int s = 0; s < sw->n_stages; s++) {
            const sfq_swin_stage *g = &sw->st[s];
            const size_t C = (size_t)g->dim;
            if (s) {
                snprintf(name, sizeof name, "layers.%d.downsample.norm.weight", s);
                if (offer(f, name, g->ds_norm_w, 2 * C))
                    return;
                snprintf(name, sizeof name, "layers.%d.downsample.norm.bias", s);
                if (offer(f, name, g->ds_norm_b, 2 * C))
                    return;
                snprintf(name, sizeof name, "layers.%d.downsample.reduction.bias", s);
                if (offer(f, name, g->ds_red_b, C))
                    return;
            }
            for (int bl = 0; bl < g->depth; bl++) {
                snprintf(name, sizeof name, "layers.%d.blocks.%d", s, bl);
                if (offer_block(f, &m->blocks[g->first + bl], name, C, (size_t)g->hidden, T * (size_t)g->heads))
                    return;
            }
        }
        return;
    }
    if (offer(f, "cls_token", m->cls, D) || offer(f, "pos_embed", m->pos, (size_t)cfg->num_tokens * D) ||
        offer(f, "head.bias", m->head_b, K))
        return;
    if (cfg->num_prefix_tokens == 2 && (offer(f, "dist_token", m->dist, D) || offer(f, "head_dist.bias", m->head_dist_b, K)))
        return;
    for (int l = 0; l < cfg->depth; l++) {
        snprintf(name, sizeof name, "blocks.%d", l);
        if (offer_block(f, &m->blocks[l], name, D, (size_t)cfg->mlp_hidden, 0))
            return;
    }
}

sardfq_status sfq_inspect_tensor(const sardfq_model *m, const char *name, const float **data, size_t *count)
{
    if (!m || !name || !data || !count)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_inspect_tensor: NULL argument");
    tensor_find f = {name, NULL, 0, 0};
    find_tensor(m, &f);
    if (!f.found)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_inspect_tensor: no tensor '%s'", name);
    *data = f.data;
    *count = f.count;
    return SARDFQ_OK;
}
