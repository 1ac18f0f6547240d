/* qgraph.c - the quantization points of a model: the linears' shapes, the
 * spec's storage, and applying one point's fake quantizer (the executor
 * calls it at the points the plan names). Their names are the model's
 * (model/names.c). */
#include "qspec.h"

#include "threads.h"

#include <string.h>

int sfq_qspec_block_stage(const sardfq_model_info *cfg, int l, int *in_stage)
{
    int s = 0;
    while (s + 1 < cfg->num_stages && l >= cfg->stage_depth[s]) {
        l -= cfg->stage_depth[s];
        s++;
    }
    *in_stage = l;
    return s;
}

/* Stage s of a reduction index (linear or point), 0 if none. */
static int merge_stage(int index, int first_merge, int merges)
{
    return index >= first_merge && index < first_merge + merges ? index - first_merge + 1 : 0;
}

int sfq_qlin_exists(const sardfq_model_info *cfg, int index)
{
    if (index == sfq_qlin_head(cfg) + 1)
        return cfg->num_prefix_tokens == 2;
    return index >= 0 && index < sfq_qspec_n_linears(cfg);
}

/* Width and mlp hidden of block l's stage. */
static void block_dims(const sardfq_model_info *cfg, int l, int *dim, int *hidden)
{
    int b;
    const int s = sfq_qspec_block_stage(cfg, l, &b);
    *dim = cfg->num_stages > 1 ? cfg->stage_dim[s] : cfg->embed_dim;
    *hidden = (int)((int64_t)*dim * cfg->mlp_hidden / cfg->embed_dim);
}

int sfq_qlin_rows(const sardfq_model_info *cfg, int index)
{
    const int s = merge_stage(index, sfq_qlin_reduction(cfg, 1), sfq_qspec_merges(cfg));
    if (index == 0)
        return cfg->embed_dim;
    if (s)
        return cfg->stage_dim[s];
    if (index >= sfq_qlin_head(cfg))
        return cfg->num_classes;
    int D, M;
    block_dims(cfg, (index - 1) / SFQ_LW_PER_BLOCK, &D, &M);
    switch ((index - 1) % SFQ_LW_PER_BLOCK) {
    case SFQ_LW_QKV: return 3 * D;
    case SFQ_LW_FC1: return M;
    default: return D;
    }
}

int sfq_qlin_cols(const sardfq_model_info *cfg, int index)
{
    const int s = merge_stage(index, sfq_qlin_reduction(cfg, 1), sfq_qspec_merges(cfg));
    if (index == 0)
        return cfg->in_chans * cfg->patch_size * cfg->patch_size;
    if (s)
        return 2 * cfg->stage_dim[s];
    if (index >= sfq_qlin_head(cfg))
        return cfg->num_features;
    int D, M;
    block_dims(cfg, (index - 1) / SFQ_LW_PER_BLOCK, &D, &M);
    return (index - 1) % SFQ_LW_PER_BLOCK == SFQ_LW_FC2 ? M : D;
}

/* ---- storage ----------------------------------------------------------- */

sardfq_status sfq_qspec_new(const sardfq_model_info *cfg, sfq_qspec **out)
{
    sfq_qspec *q = sfq_alloc_zero(sizeof *q);
    if (!q)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    q->depth = cfg->depth;
    q->npoints = sfq_qspec_n_points(cfg);
    q->nlin = sfq_qspec_n_linears(cfg);
    q->acts = sfq_alloc_zero(sizeof(sfq_qact) * (size_t)q->npoints);
    q->lin = sfq_alloc_zero(sizeof(sfq_qweight) * (size_t)q->nlin);
    if (!q->acts || !q->lin) {
        sfq_qspec_free(q);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    *out = q;
    return SARDFQ_OK;
}

void sfq_qspec_free(sfq_qspec *q)
{
    if (!q)
        return;
    if (q->lin)
        for (int i = 0; i < q->nlin; i++)
            sfq_free(q->lin[i].rows);
    sfq_free(q->lin);
    sfq_free(q->acts);
    sfq_free(q);
}

sardfq_status sfq_qspec_set_weight(sfq_qspec *q, const sardfq_model_info *cfg, int index, int bits)
{
    sfq_qweight *w = &q->lin[index];
    if (bits == 0) {
        sfq_free(w->rows);
        w->rows = NULL;
        w->bits = 0;
        return SARDFQ_OK;
    }
    if (!w->rows) {
        w->rows = sfq_alloc_zero(sizeof(sfq_uq) * (size_t)sfq_qlin_rows(cfg, index));
        if (!w->rows)
            return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    w->bits = bits;
    return SARDFQ_OK;
}

sardfq_status sfq_qspec_copy(const sfq_qspec *src, const sardfq_model_info *cfg, sfq_qspec **out)
{
    sfq_qspec *q;
    sardfq_status s = sfq_qspec_new(cfg, &q);
    if (s)
        return s;
    q->scheme = src->scheme;
    q->wbits = src->wbits;
    q->abits = src->abits;
    memcpy(q->acts, src->acts, sizeof(sfq_qact) * (size_t)sfq_qspec_n_points(cfg));
    for (int i = 0; i < sfq_qspec_n_linears(cfg); i++) {
        if (!src->lin[i].bits)
            continue;
        if ((s = sfq_qspec_set_weight(q, cfg, i, src->lin[i].bits)) != SARDFQ_OK) {
            sfq_qspec_free(q);
            return s;
        }
        memcpy(q->lin[i].rows, src->lin[i].rows, sizeof(sfq_uq) * (size_t)sfq_qlin_rows(cfg, i));
    }
    *out = q;
    return SARDFQ_OK;
}

/* ---- applying a point ---------------------------------------------------- */

void sfq_qact_prepare(const sfq_qact *a, sfq_qact_ready *rd)
{
    rd->a = a;
    rd->simd = sfq_quant_simd();
    if (a->kind == SFQ_QK_LOG)
        sfq_lq_table(&a->lq, rd->tab);
}

void sfq_qact_apply_rows(const sfq_qact_ready *rd, float *x, int64_t rows, int ncols, int64_t ld)
{
    for (int64_t r = 0; r < rows; r++) {
        if (rd->a->kind == SFQ_QK_UNIFORM)
            sfq_uq_fake_row(&rd->a->u, x + r * ld, ncols, rd->simd);
        else
            sfq_lq_fake_row(&rd->a->lq, rd->tab, x + r * ld, ncols, rd->simd);
    }
}

typedef struct {
    sfq_qact_ready rd;
    const sfq_uq *cols; /* per-channel quantizers, or NULL */
    float *x;
    int ncols;
    int64_t ld;
} apply_ctx;

static void apply_rows(void *vc, int64_t r0, int64_t r1)
{
    const apply_ctx *c = vc;
    if (!c->cols) {
        sfq_qact_apply_rows(&c->rd, c->x + r0 * c->ld, r1 - r0, c->ncols, c->ld);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        float *x = c->x + r * c->ld;
        for (int j = 0; j < c->ncols; j++)
            x[j] = sfq_uq_apply(&c->cols[j], x[j]);
    }
}

void sfq_qact_apply(const sfq_qact *a, const sfq_uq *cols, float *x, int64_t rows, int ncols, int64_t ld,
                    int nt)
{
    apply_ctx c = {.cols = cols, .x = x, .ncols = ncols, .ld = ld};
    if (cols)
        c.rd.a = a;
    else
        sfq_qact_prepare(a, &c.rd);
    const int64_t work = rows * ncols;
    sfq_parallel_for(work >= 65536 ? nt : 1, rows, apply_rows, &c);
}


/* ---- codes as files store them --------------------------------------------- */

size_t sfq_qcodes_row_bytes(int bits, int cols)
{
    return bits <= 4 ? ((size_t)cols + 1) / 2 : (size_t)cols;
}

void sfq_qcodes_row(const uint8_t *in, int cols, int bits, uint8_t *codes)
{
    for (int c = 0; c < cols; c++)
        codes[c] = (uint8_t)sfq_qcode_get(in, c, bits);
}

void sfq_qcodes_put_row(const uint8_t *codes, int cols, int bits, uint8_t *out)
{
    memset(out, 0, sfq_qcodes_row_bytes(bits, cols));
    for (int c = 0; c < cols; c++)
        sfq_qcode_set(out, c, bits, codes[c]);
}

sardfq_status sfq_qcodes_pack(const sfq_uq *rows, const float *w, int nrows, int cols, int bits,
                              uint8_t *out)
{
    const size_t rb = sfq_qcodes_row_bytes(bits, cols);
    for (int r = 0; r < nrows; r++) {
        uint8_t *o = out + (size_t)r * rb;
        memset(o, 0, rb);
        for (int c = 0; c < cols; c++) {
            const float lv = sfq_uq_level(&rows[r], w[(size_t)r * cols + c]);
            if (!(lv >= 0 && lv <= (float)((1 << bits) - 1)) || lv != (float)(int)lv)
                return sfq_fail(SARDFQ_E_INTERNAL, "weight code out of range");
            sfq_qcode_set(o, c, bits, (int)lv);
        }
    }
    return SARDFQ_OK;
}

void sfq_qcodes_unpack(const sfq_uq *rows, const uint8_t *in, int nrows, int cols, int bits, float *w)
{
    const size_t rb = sfq_qcodes_row_bytes(bits, cols);
    for (int r = 0; r < nrows; r++) {
        const uint8_t *o = in + (size_t)r * rb;
        for (int c = 0; c < cols; c++)
            w[(size_t)r * cols + c] = sfq_uq_value(&rows[r], (float)sfq_qcode_get(o, c, bits));
    }
}
