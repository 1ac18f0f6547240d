/* quantizer.c - sardfq_quantizer: calibration of a quantized copy of a ViT
 * with RepQ-ViT's or PSAQ-ViT's recipe (see qspec.h for the points).
 *
 * RepQ-ViT, as its test_quant.py runs it:
 *  1. every weight per output row with the quantile search (on the FP
 *     weights), every activation point switched on;
 *  2. one forward of the whole calibration batch in which each activation
 *     quantizer is initialised the first time data reaches it and then
 *     applied, so each layer sees quantized activations upstream; the inputs
 *     of qkv and fc1 (LayerNorm outputs) are searched per channel;
 *  3. scale reparameterisation of each (LN, next linear) pair: with the
 *     per-channel (D_c, z_c), s = mean(D), z = mean(z) (not rounded),
 *     r = D / s, b = -z_c D_c / r + z s; LN weight / r, LN bias / r - b,
 *     the linear's FP weight columns * r, its bias + W_new b; the input
 *     quantizer becomes the per-tensor (s, z) and the linear's weight is
 *     searched again. (RepQ-ViT's second forward only does that re-search:
 *     every other quantizer is already initialised.)
 * PSAQ-ViT: one FP forward recording min/max at every point, then
 * asymmetric per-tensor activations and symmetric per-row weights; on Swin
 * the same at the Swin's points (qspec.h), the reductions' weights too. */
#include "exec.h"
#include "names.h"
#include "qspec.h"
#include "iplan.h"
#include "quantizer.h"
#include "recon.h"

#include "swin.h"
#include "vit.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

struct sardfq_quantizer {
    const sardfq_model *fp;
    sardfq_quant_params p;
    int nlin;
    int *lin_w, *lin_a; /* per linear: override bits (-1 = default, 0 = FP) */
    int *mm1_a, *mm2_a; /* per block: matmul overrides */
    sardfq_model *work; /* the calibrated copy, NULL before calibrate */
    sfq_uq **chan;      /* RepQ: per block and LayerNorm (2 l + k), the
                           per-channel input quantizers that were folded */
    float recon_attn;   /* weight of the head-wise attention distillation
                           in reconstruction (0 = off) */
};

SARDFQ_API void sardfq_quant_default_params(sardfq_quant_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->weight_bits = 4;
    p->act_bits = 4;
    p->scheme = SARDFQ_SCHEME_REPQ;
    p->n_threads = 0;
    p->recon_iters = 100;
    p->recon_lr = 4e-5f;
}

static int n_sites(const sardfq_model_info *cfg);
static int bits_ok(int b) { return b >= SFQ_QBITS_MIN && b <= SFQ_QBITS_MAX; }

SARDFQ_API sardfq_status sardfq_quantizer_create(const sardfq_model *fp, const sardfq_quant_params *params,
                                                 sardfq_quantizer **out)
{
    if (!fp || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_quantizer_create: %s is NULL", !fp ? "model" : "out");
    sardfq_quant_params p;
    sardfq_quant_default_params(&p);
    sardfq_status s = sfq_read_params(params, &p, sizeof p, sizeof p, "sardfq_quant_params");
    if (s)
        return s;
    if (!bits_ok(p.weight_bits) || !bits_ok(p.act_bits))
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_quantizer_create: weight_bits and act_bits must be in %d..%d (got %d, %d)",
                        SFQ_QBITS_MIN, SFQ_QBITS_MAX, (int)p.weight_bits, (int)p.act_bits);
    if (p.scheme != SARDFQ_SCHEME_REPQ && p.scheme != SARDFQ_SCHEME_MINMAX)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_quantizer_create: unknown scheme %d", (int)p.scheme);
    if (p.n_threads < 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_quantizer_create: n_threads must be >= 0");
    if (p.recon_iters < 1 || p.recon_iters > 1000000 || !(p.recon_lr > 0) || !isfinite(p.recon_lr))
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_quantizer_create: recon_iters must be in 1..1000000 and recon_lr > 0");
    if (fp->q)
        return sfq_fail(SARDFQ_E_UNSUPPORTED, "sardfq_quantizer_create: the model is already quantized");
    sardfq_quantizer *q = sfq_alloc_zero(sizeof *q);
    if (!q)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    q->fp = fp;
    q->p = p;
    const int depth = fp->info.depth;
    q->nlin = sfq_qspec_n_linears(&fp->info);
    q->lin_w = sfq_alloc_array((size_t)q->nlin, sizeof(int));
    q->lin_a = sfq_alloc_array((size_t)q->nlin, sizeof(int));
    q->mm1_a = sfq_alloc_array((size_t)depth, sizeof(int));
    q->mm2_a = sfq_alloc_array((size_t)depth, sizeof(int));
    q->chan = sfq_alloc_zero(sizeof(sfq_uq *) * (size_t)n_sites(&fp->info));
    if (!q->lin_w || !q->lin_a || !q->mm1_a || !q->mm2_a || !q->chan) {
        sardfq_quantizer_free(q);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < q->nlin; i++)
        q->lin_w[i] = q->lin_a[i] = -1;
    for (int l = 0; l < depth; l++)
        q->mm1_a[l] = q->mm2_a[l] = -1;
    *out = q;
    return SARDFQ_OK;
}

SARDFQ_API void sardfq_quantizer_free(sardfq_quantizer *q)
{
    if (!q)
        return;
    sardfq_model_free(q->work);
    if (q->chan)
        for (int i = 0; i < n_sites(&q->fp->info); i++)
            sfq_free(q->chan[i]);
    sfq_free(q->chan);
    sfq_free(q->lin_w);
    sfq_free(q->lin_a);
    sfq_free(q->mm1_a);
    sfq_free(q->mm2_a);
    sfq_free(q);
}

SARDFQ_API sardfq_status sardfq_quantizer_set_layer(sardfq_quantizer *q, const char *pattern,
                                                    int32_t weight_bits, int32_t act_bits)
{
    if (!q || !pattern)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_quantizer_set_layer: %s is NULL",
                        !q ? "quantizer" : "pattern");
    if ((weight_bits != 0 && !bits_ok(weight_bits)) || (act_bits != 0 && !bits_ok(act_bits)))
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_quantizer_set_layer: bits must be 0 (floating point) or %d..%d (got %d, %d)",
                        SFQ_QBITS_MIN, SFQ_QBITS_MAX, (int)weight_bits, (int)act_bits);
    const sardfq_model_info *cfg = &q->fp->info;
    int matched = 0;
    char name[96];
    for (int i = 0; i < q->nlin; i++) {
        if (!sfq_qlin_exists(cfg, i))
            continue;
        sfq_qlin_name(cfg, i, name, sizeof name);
        if (fnmatch(pattern, name, 0) == 0) {
            q->lin_w[i] = weight_bits;
            q->lin_a[i] = act_bits;
            matched++;
        }
    }
    for (int l = 0; l < cfg->depth; l++)
        for (int k = 1; k <= 2; k++) {
            /* the matmul's name: its first operand's point without ".a" */
            sfq_qpoint_name(cfg, sfq_qpoint_index(l, k == 1 ? SFQ_AP_Q : SFQ_AP_PROBS), name, sizeof name);
            name[strlen(name) - 2] = '\0';
            if (fnmatch(pattern, name, 0) == 0) {
                (k == 1 ? q->mm1_a : q->mm2_a)[l] = act_bits;
                matched++;
            }
        }
    if (!matched)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_quantizer_set_layer: '%s' matches no layer (names look like "
                        "\"patch_embed\", \"blocks.0.attn.qkv\", \"blocks.*.attn.matmul2\", \"head\"; "
                        "Swin: \"layers.0.blocks.1.mlp.fc1\", \"layers.1.downsample.reduction\")",
                        pattern);
    return SARDFQ_OK;
}

/* ---- configuration ------------------------------------------------------ */

static int pick(int override, int dflt) { return override >= 0 ? override : dflt; }

static void act_on(sfq_qspec *s, int l, int which, int bits, int kind)
{
    sfq_qact *a = &s->acts[sfq_qpoint_index(l, which)];
    memset(a, 0, sizeof *a);
    if (bits > 0) {
        a->kind = kind;
        a->bits = bits;
    }
}

/* Switch on the scheme's points and weights (parameters not yet set). */
static sardfq_status configure(const sardfq_quantizer *q, sfq_qspec *s)
{
    const sardfq_model_info *cfg = &q->fp->info;
    const int A = q->p.act_bits, W = q->p.weight_bits, repq = q->p.scheme == SARDFQ_SCHEME_REPQ;
    const int U = SFQ_QK_UNIFORM;
    s->scheme = q->p.scheme;
    s->wbits = W;
    s->abits = A;
    for (int i = 0; i < q->nlin; i++) {
        if (!sfq_qlin_exists(cfg, i))
            continue;
        sardfq_status st = sfq_qspec_set_weight(s, cfg, i, pick(q->lin_w[i], W));
        if (st)
            return st;
    }
    const int head = sfq_qlin_head(cfg);
    /* RepQ-ViT forces the image to 8 bits; PSAQ-ViT quantizes it like the rest */
    act_on(s, -1, SFQ_AG_INPUT, pick(q->lin_a[0], repq ? 8 : A), U);
    act_on(s, -1, SFQ_AG_HEAD_IN, pick(q->lin_a[head], A), U);
    if (cfg->num_prefix_tokens == 2)
        act_on(s, -1, SFQ_AG_HDIST_IN, pick(q->lin_a[head + 1], A), U);
    if (!repq && cfg->arch == SARDFQ_ARCH_SWIN) {
        /* no prefix tokens, no position embedding: the sequence entering
         * the blocks is the patch embedding's LayerNorm output */
        act_on(s, -1, SFQ_AG_PATCH_OUT, A, U);
        act_on(s, -1, SFQ_AG_PATCH_NORM, A, U);
    } else if (!repq) {
        for (int g = SFQ_AG_PATCH_OUT; g <= SFQ_AG_EMBED_POS; g++)
            act_on(s, -1, g, A, U);
    }
    if (!repq)
        act_on(s, -1, SFQ_AG_LOGITS, A, U);
    for (int st = 1; st <= sfq_qspec_merges(cfg); st++) {
        act_on(s, -1, sfq_qpoint_reduction(cfg, st), pick(q->lin_a[sfq_qlin_reduction(cfg, st)], A), U);
        if (!repq)
            act_on(s, -1, sfq_qpoint_reduction_out(cfg, st), A, U);
    }
    for (int l = 0; l < cfg->depth; l++) {
        const int *la = q->lin_a;
        act_on(s, l, SFQ_AP_QKV_IN, pick(la[sfq_qlin_index(l, SFQ_LW_QKV)], A), U);
        act_on(s, l, SFQ_AP_PROJ_IN, pick(la[sfq_qlin_index(l, SFQ_LW_PROJ)], A), U);
        act_on(s, l, SFQ_AP_FC1_IN, pick(la[sfq_qlin_index(l, SFQ_LW_FC1)], A), U);
        act_on(s, l, SFQ_AP_FC2_IN, pick(la[sfq_qlin_index(l, SFQ_LW_FC2)], A), U);
        if (repq) {
            act_on(s, l, SFQ_AP_Q, pick(q->mm1_a[l], A), U);
            act_on(s, l, SFQ_AP_K, pick(q->mm1_a[l], A), U);
            act_on(s, l, SFQ_AP_PROBS, pick(q->mm2_a[l], A), SFQ_QK_LOG);
            act_on(s, l, SFQ_AP_V, pick(q->mm2_a[l], A), U);
        } else {
            act_on(s, l, SFQ_AP_QKV_OUT, A, U);
            act_on(s, l, SFQ_AP_SCORES, pick(q->mm1_a[l], A), U);
            act_on(s, l, SFQ_AP_PROJ_OUT, A, U);
            act_on(s, l, SFQ_AP_RES1, A, U);
            act_on(s, l, SFQ_AP_FC2_OUT, A, U);
            act_on(s, l, SFQ_AP_RES2, A, U);
        }
    }
    return SARDFQ_OK;
}

/* ---- calibration: an observer of the calibration forward ------------------ */

/* The run-time state of one calibration: which points are initialised,
 * their per-channel quantizers, the ranges seen. It lives in the observer
 * the quantizer hands the executor, never on a model. */
enum { SFQ_CAL_SEARCH = 0, SFQ_CAL_MINMAX = 1 };
typedef struct {
    int mode;                /* SFQ_CAL_SEARCH: RepQ-ViT's lazy initialisation
                                (search on first sight, then quantize);
                                SFQ_CAL_MINMAX: record min/max, quantize nothing */
    sfq_qspec *spec;         /* the quantizers being calibrated */
    unsigned char *inited;   /* per point (SEARCH) */
    unsigned char *chanwise; /* per point: calibrate per channel (SEARCH) */
    sfq_uq **cols;           /* per point: its per-channel quantizers */
    int *ncols;
    float *mn, *mx;          /* per point (MINMAX) */
    unsigned char *seen;
} sfq_qcal;

static void cal_free(sfq_qcal *c, int npoints)
{
    if (!c)
        return;
    if (c->cols)
        for (int i = 0; i < npoints; i++)
            sfq_free(c->cols[i]);
    sfq_free(c->cols);
    sfq_free(c->ncols);
    sfq_free(c->inited);
    sfq_free(c->chanwise);
    sfq_free(c->mn);
    sfq_free(c->mx);
    sfq_free(c->seen);
    sfq_free(c);
}

static sardfq_status cal_new(int npoints, int mode, sfq_qcal **out)
{
    sfq_qcal *c = sfq_alloc_zero(sizeof *c);
    if (c) {
        c->mode = mode;
        c->cols = sfq_alloc_zero(sizeof(sfq_uq *) * (size_t)npoints);
        c->ncols = sfq_alloc_zero(sizeof(int) * (size_t)npoints);
        c->inited = sfq_alloc_zero((size_t)npoints);
        c->chanwise = sfq_alloc_zero((size_t)npoints);
        c->mn = sfq_alloc_zero(sizeof(float) * (size_t)npoints);
        c->mx = sfq_alloc_zero(sizeof(float) * (size_t)npoints);
        c->seen = sfq_alloc_zero((size_t)npoints);
    }
    if (!c || !c->cols || !c->ncols || !c->inited || !c->chanwise || !c->mn || !c->mx || !c->seen) {
        cal_free(c, npoints);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    *out = c;
    return SARDFQ_OK;
}

/* Min and max over a strided matrix (NaN ignored: the forward of finite
 * images on a finite model has none). */
static void observe_range(sfq_qcal *cal, int idx, const float *x, int64_t rows, int ncols, int64_t ld)
{
    float mn = cal->seen[idx] ? cal->mn[idx] : x[0], mx = cal->seen[idx] ? cal->mx[idx] : x[0];
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < ncols; j++) {
            const float v = x[r * ld + j];
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
    cal->mn[idx] = mn;
    cal->mx[idx] = mx;
    cal->seen[idx] = 1;
}

/* RepQ-ViT's lazy initialisation of point idx from x. */
static sardfq_status initialise(sfq_qcal *cal, sfq_qact *a, int idx, const float *x, int64_t rows, int ncols,
                                int64_t ld, int nt)
{
    const size_t n = (size_t)rows * (size_t)ncols;
    float *tmp = NULL;
    const float *src = x;
    if (ld != ncols) {
        tmp = sfq_alloc_array(n, sizeof(float));
        if (!tmp)
            return sfq_fail(SARDFQ_E_NOMEM, "out of memory gathering a calibration tensor");
        for (int64_t r = 0; r < rows; r++)
            memcpy(tmp + (size_t)r * (size_t)ncols, x + r * ld, sizeof(float) * (size_t)ncols);
        src = tmp;
    }
    sardfq_status s;
    if (cal->chanwise[idx]) {
        sfq_free(cal->cols[idx]);
        cal->cols[idx] = sfq_alloc_array((size_t)ncols, sizeof(sfq_uq));
        cal->ncols[idx] = ncols;
        s = cal->cols[idx] ? sfq_uq_search_cols(src, (size_t)rows, (size_t)ncols, a->bits, nt, cal->cols[idx], NULL)
                           : sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    } else if (a->kind == SFQ_QK_LOG) {
        s = sfq_lq_search(src, n, a->bits, &a->lq, NULL);
    } else {
        s = sfq_uq_search(src, n, a->bits, &a->u, NULL);
    }
    sfq_free(tmp);
    if (s)
        return s;
    cal->inited[idx] = 1;
    return SARDFQ_OK;
}

/* The observer: min/max recording quantizes nothing; RepQ-ViT's search
 * initialises a point on first sight, then the point quantizes (its
 * per-channel quantizers, for the post-LayerNorm points). */
static sardfq_status cal_observe(void *ctx, int idx, float *x, int64_t rows, int cols, int64_t ld, int nt,
                                 int *handled)
{
    sfq_qcal *cal = ctx;
    sfq_qact *a = &cal->spec->acts[idx];
    if (cal->mode == SFQ_CAL_MINMAX) {
        observe_range(cal, idx, x, rows, cols, ld);
        *handled = 1;
        return SARDFQ_OK;
    }
    if (!cal->inited[idx]) {
        sardfq_status s = initialise(cal, a, idx, x, rows, cols, ld, nt);
        if (s)
            return s;
    }
    if (cal->chanwise[idx]) {
        sfq_qact_apply(a, cal->cols[idx], x, rows, cols, ld, nt);
        *handled = 1;
    }
    return SARDFQ_OK;
}

/* ---- weights ------------------------------------------------------------ */

/* Search linear i's row quantizers on the FP weight `w` and write the
 * fake-quantized weight into the work model. */
static sardfq_status quantize_weight(sardfq_quantizer *q, sardfq_model *work, int i, const float *w,
                                     int nt)
{
    sfq_qweight *qw = &work->q->lin[i];
    if (!qw->bits)
        return SARDFQ_OK;
    const sardfq_model_info *cfg = &work->info;
    const size_t rows = (size_t)sfq_qlin_rows(cfg, i), cols = (size_t)sfq_qlin_cols(cfg, i);
    sardfq_status s = q->p.scheme == SARDFQ_SCHEME_REPQ
                          ? sfq_uq_search_rows(w, rows, cols, qw->bits, nt, qw->rows, NULL)
                          : sfq_psaq_weight_rows(w, rows, cols, qw->bits, qw->rows);
    if (s)
        return s;
    return sfq_uq_fake_rows(qw->rows, w, sfq_qlin_weight(work, i), rows, cols);
}

/* RepQ-ViT's LayerNorm -> linear pairs ("sites"), whose linear input is
 * calibrated per channel and folded: site j < 2 depth is block j / 2's
 * norm1 -> qkv (j even) or norm2 -> fc1 (j odd); site 2 depth + s - 1 is
 * stage s's patch-merging norm -> reduction (Swin). */
typedef struct {
    float *lnw, *lnb, *bias;
    int lin, point;
} fold_site;

static int n_sites(const sardfq_model_info *cfg) { return 2 * cfg->depth + sfq_qspec_merges(cfg); }

static fold_site site_of(const sardfq_model *m, int j)
{
    const sardfq_model_info *cfg = &m->info;
    fold_site f;
    if (j < 2 * cfg->depth) {
        const int l = j / 2, k = j % 2;
        const sfq_block *b = &m->blocks[l];
        f.lnw = (float *)(k ? b->ln2_w : b->ln1_w);
        f.lnb = (float *)(k ? b->ln2_b : b->ln1_b);
        f.bias = (float *)(k ? b->fc1_b : b->qkv_b);
        f.lin = sfq_qlin_index(l, k ? SFQ_LW_FC1 : SFQ_LW_QKV);
        f.point = sfq_qpoint_index(l, k ? SFQ_AP_FC1_IN : SFQ_AP_QKV_IN);
    } else {
        const int s = j - 2 * cfg->depth + 1;
        const sfq_swin_stage *st = &m->swin->st[s];
        f.lnw = (float *)st->ds_norm_w;
        f.lnb = (float *)st->ds_norm_b;
        f.bias = (float *)st->ds_red_b;
        f.lin = sfq_qlin_reduction(cfg, s);
        f.point = sfq_qpoint_reduction(cfg, s);
    }
    return f;
}

/* RepQ-ViT's reparameterisation of site j from the per-channel quantizers
 * cols[D] of the linear's input: writes dst's LayerNorm and bias from fp's,
 * and the new FP weight into wnew [rows][D]; *u receives the per-tensor
 * input quantizer. */
static sardfq_status fold(const sardfq_model *fp, sardfq_model *dst, int j, const sfq_uq *cols, int bits,
                          float *wnew, sfq_uq *u)
{
    const sardfq_model_info *cfg = &fp->info;
    const fold_site fs = site_of(fp, j), ds = site_of(dst, j);
    const int i = fs.lin, D = sfq_qlin_cols(cfg, i), R = sfq_qlin_rows(cfg, i);
    const float *fp_lnw = fs.lnw, *fp_lnb = fs.lnb, *fp_bias = fs.bias;
    float *lnw = ds.lnw, *lnb = ds.lnb, *bias = ds.bias;
    double sd = 0, sz = 0;
    for (int c = 0; c < D; c++) {
        sd += cols[c].scale;
        sz += cols[c].zero;
    }
    /* RepQ-ViT keeps the mean of the channel zero points, a fraction; it is
     * rounded here so that the folded quantizer has integer codes (the
     * integer executor's u8 inputs; README "Integer executor" measures the
     * effect on top-1). The folding is exact for any target zero. */
    const float tdelta = (float)(sd / D), tzero = rintf((float)(sz / D));
    const float tmin = -tzero * tdelta;
    float *r = sfq_alloc_array((size_t)D, sizeof(float));
    float *b = sfq_alloc_array((size_t)D, sizeof(float));
    if (!r || !b) {
        sfq_free(r);
        sfq_free(b);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    for (int c = 0; c < D; c++) {
        const float amin = -cols[c].zero * cols[c].scale;
        r[c] = cols[c].scale / tdelta;
        b[c] = amin / r[c] - tmin;
        lnw[c] = fp_lnw[c] / r[c];
        lnb[c] = fp_lnb[c] / r[c] - b[c];
    }
    const float *wfp = sfq_qlin_weight(fp, i);
    for (int o = 0; o < R; o++) {
        double acc = 0;
        for (int c = 0; c < D; c++) {
            const float v = wfp[(size_t)o * D + c] * r[c];
            wnew[(size_t)o * D + c] = v;
            acc += (double)v * b[c];
        }
        bias[o] = fp_bias[o] + (float)acc;
    }
    u->scale = tdelta;
    u->zero = tzero;
    u->bits = bits;
    u->form = SFQ_UQ_REPQ;
    sfq_free(r);
    sfq_free(b);
    return SARDFQ_OK;
}

/* Fold, then quantize the new weight into the work model (quantized) or
 * store it as is (floating point, work->q may be NULL). */
static sardfq_status reparam(sardfq_quantizer *q, sardfq_model *work, int j, const sfq_uq *cols, int quantized,
                             int nt)
{
    const sardfq_model_info *cfg = &work->info;
    const fold_site f = site_of(work, j);
    const size_t n = (size_t)sfq_qlin_rows(cfg, f.lin) * (size_t)sfq_qlin_cols(cfg, f.lin);
    float *wnew = sfq_alloc_array(n, sizeof(float));
    if (!wnew)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    sfq_uq u;
    const int bits = quantized ? work->q->acts[f.point].bits : 8;
    sardfq_status s = fold(q->fp, work, j, cols, bits, wnew, &u);
    if (!s && quantized) {
        work->q->acts[f.point].u = u;
        s = quantize_weight(q, work, f.lin, wnew, nt);
    } else if (!s) {
        memcpy(sfq_qlin_weight(work, f.lin), wnew, n * sizeof(float));
    }
    sfq_free(wnew);
    return s;
}

/* The arguments of calibrate / reconstruct. */
static sardfq_status check_calib_images(const sardfq_quantizer *q, const float *images, int n, const char *fn)
{
    if (!q)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: quantizer is NULL", fn);
    const sardfq_model *m = q->fp;
    if (!images)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: images is NULL", fn);
    if (n <= 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: the calibration set is empty (n = %d)", fn, n);
    const size_t per = (size_t)m->info.in_chans * m->info.img_h * m->info.img_w;
    const size_t plane = (size_t)m->info.img_h * m->info.img_w;
    for (size_t i = 0; i < per * (size_t)n; i++)
        if (!isfinite(images[i]))
            return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: image %zu has a non-finite value", fn, i / per);
    /* Calibration sets the ranges from these values: an image far outside
     * the normalised image of [0, 1] (unnormalised 0-255 pixels, a stray
     * 1e30) would wreck every quantizer downstream. Allowed: that range
     * widened by twice its width on each side (Gaussian-noise calibration,
     * N(0, 1) in normalised space, stays inside). */
    for (size_t i = 0; i < per * (size_t)n; i++) {
        const int c = (int)(i % per / plane);
        const float lo = -m->info.mean[c] / m->info.std[c], hi = (1.0f - m->info.mean[c]) / m->info.std[c];
        const float w = hi - lo;
        if (images[i] < lo - 2 * w || images[i] > hi + 2 * w)
            return sfq_fail(SARDFQ_E_INVALID_ARG,
                            "%s: image %zu channel %d has the value %g, far outside the normalised image of "
                            "[0, 1] ([%g, %g]); images must be normalised with the model's mean and std",
                            fn, i / per, c, (double)images[i], (double)lo, (double)hi);
    }
    return SARDFQ_OK;
}

static sardfq_status calibrate_repq(sardfq_quantizer *q, sardfq_model *work, sfq_qcal *cal,
                                    const float *images, int n, float *logits, int nt)
{
    const sardfq_model_info *cfg = &work->info;
    sardfq_status s;
    for (int i = 0; i < q->nlin; i++)
        if (sfq_qlin_exists(cfg, i) && (s = quantize_weight(q, work, i, sfq_qlin_weight(q->fp, i), nt)))
            return s;
    for (int j = 0; j < n_sites(cfg); j++)
        cal->chanwise[site_of(work, j).point] = 1;
    const sfq_observer obs = {cal_observe, cal};
    s = sfq_exec_forward(work, &obs, images, n, logits);
    if (s)
        return s;
    /* keep the per-channel quantizers (sfq_quantizer_reparam_fp) */
    for (int j = 0; j < n_sites(cfg); j++) {
        const int pt = site_of(work, j).point;
        sfq_free(q->chan[j]);
        q->chan[j] = NULL;
        if (!cal->inited[pt])
            continue;
        q->chan[j] = cal->cols[pt];
        cal->cols[pt] = NULL;
        if ((s = reparam(q, work, j, q->chan[j], 1, nt)))
            return s;
    }
    return SARDFQ_OK;
}

static sardfq_status calibrate_minmax(sardfq_quantizer *q, sardfq_model *work, sfq_qcal *cal,
                                      const float *images, int n, float *logits, int nt)
{
    const sardfq_model_info *cfg = &work->info;
    sfq_qspec *spec = work->q;
    const sfq_observer obs = {cal_observe, cal};
    sardfq_status s = sfq_exec_forward(work, &obs, images, n, logits); /* FP, observing */
    if (s)
        return s;
    /* the position embedding is a parameter: its range is its own */
    const int ppos = sfq_qpoint_index(-1, SFQ_AG_POS);
    if (spec->acts[ppos].kind) {
        const size_t np = (size_t)cfg->num_tokens * cfg->embed_dim;
        if ((s = sfq_minmax(work->pos, np, &cal->mn[ppos], &cal->mx[ppos])))
            return s;
        cal->seen[ppos] = 1;
    }
    for (int i = 0; i < sfq_qspec_n_points(cfg); i++) {
        sfq_qact *a = &spec->acts[i];
        if (!a->kind)
            continue;
        if (!cal->seen[i]) {
            char name[96];
            sfq_qpoint_name(cfg, i, name, sizeof name);
            return sfq_fail(SARDFQ_E_INTERNAL, "calibration: point %s saw no data", name);
        }
        if ((s = sfq_psaq_act(cal->mn[i], cal->mx[i], a->bits, &a->u)))
            return s;
    }
    if (spec->acts[ppos].kind &&
        (s = sfq_uq_fake(&spec->acts[ppos].u, work->pos, (float *)work->pos,
                         (size_t)cfg->num_tokens * cfg->embed_dim)))
        return s;
    for (int i = 0; i < q->nlin; i++)
        if (sfq_qlin_exists(cfg, i) && (s = quantize_weight(q, work, i, sfq_qlin_weight(q->fp, i), nt)))
            return s;
    return SARDFQ_OK;
}

/* The end of calibrate / reconstruct: on success the new work model
 * replaces the old one; on failure it is dropped and the quantizer keeps
 * its state. */
static sardfq_status commit_work(sardfq_quantizer *q, sardfq_model *work, sardfq_status s)
{
    if (s) {
        sardfq_model_free(work);
        return s;
    }
    sardfq_model_free(q->work);
    q->work = work;
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_quantizer_calibrate(sardfq_quantizer *q, const float *images, int32_t n)
{
    sardfq_status s = check_calib_images(q, images, n, "sardfq_quantizer_calibrate");
    if (s)
        return s;
    const sardfq_model_info *cfg = &q->fp->info;
    const int np = sfq_qspec_n_points(cfg);
    const int nt = q->p.n_threads > 0 ? q->p.n_threads : sfq_model_threads(q->fp);
    sardfq_model *work = NULL;
    sfq_qcal *cal = NULL;
    float *logits = sfq_alloc_array((size_t)n * cfg->num_classes, sizeof(float));
    if (!logits)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    s = sfq_model_clone(q->fp, &work);
    if (!s)
        s = sfq_qspec_new(cfg, &work->q);
    if (!s)
        s = configure(q, work->q);
    if (!s)
        s = cal_new(np, q->p.scheme == SARDFQ_SCHEME_REPQ ? SFQ_CAL_SEARCH : SFQ_CAL_MINMAX, &cal);
    if (!s) {
        cal->spec = work->q;
        s = q->p.scheme == SARDFQ_SCHEME_REPQ ? calibrate_repq(q, work, cal, images, n, logits, nt)
                                              : calibrate_minmax(q, work, cal, images, n, logits, nt);
    }
    cal_free(cal, np);
    sfq_free(logits);
    return commit_work(q, work, s);
}

SARDFQ_API sardfq_status sardfq_quantizer_finalize(sardfq_quantizer *q, sardfq_model **out)
{
    if (!q || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_quantizer_finalize: %s is NULL",
                        !q ? "quantizer" : "out");
    if (!q->work)
        return sfq_fail(SARDFQ_E_STATE, "sardfq_quantizer_finalize: not calibrated yet");
    sardfq_model *m;
    sardfq_status s = sfq_model_clone(q->work, &m);
    if (s)
        return s;
    /* the FP model's own metadata (training figures, provenance) describes
     * that model: keep it under "source." */
    for (int i = 0; i < m->n_meta && !s; i++) {
        if (strncmp(m->meta_keys[i], "source.", 7) == 0)
            continue;
        const size_t len = strlen(m->meta_keys[i]) + 8;
        char *k = sfq_alloc(len);
        if (!k) {
            s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
            break;
        }
        snprintf(k, len, "source.%s", m->meta_keys[i]);
        sfq_free(m->meta_keys[i]);
        m->meta_keys[i] = k;
    }
    char buf[16];
    if (!s)
        s = sfq_model_set_metadata(m, "sardfq.quant.scheme",
                               q->p.scheme == SARDFQ_SCHEME_REPQ ? "repq" : "minmax");
    snprintf(buf, sizeof buf, "%d", (int)q->p.weight_bits);
    if (!s)
        s = sfq_model_set_metadata(m, "sardfq.quant.weight_bits", buf);
    snprintf(buf, sizeof buf, "%d", (int)q->p.act_bits);
    if (!s)
        s = sfq_model_set_metadata(m, "sardfq.quant.act_bits", buf);
    if (!s)
        s = sfq_model_finalize(m);
    if (s) {
        sardfq_model_free(m);
        return s;
    }
    *out = m;
    return SARDFQ_OK;
}

/* For tests: the calibrated (not yet finalized) model, or NULL. */
const sardfq_model *sfq_quantizer_model(const sardfq_quantizer *q) { return q ? q->work : NULL; }

/* For tests: the floating-point model with RepQ-ViT's reparameterisation
 * of the last calibration applied and nothing quantized (its logits must
 * equal the original's up to rounding). */
sardfq_status sfq_quantizer_reparam_fp(const sardfq_quantizer *q, sardfq_model **out)
{
    if (!q->work)
        return sfq_fail(SARDFQ_E_STATE, "not calibrated");
    sardfq_model *m = NULL;
    sardfq_status s = sfq_model_clone(q->fp, &m);
    for (int j = 0; !s && j < n_sites(&q->fp->info); j++)
        if (q->chan[j])
            s = reparam((sardfq_quantizer *)q, m, j, q->chan[j], 0, 1);
    if (s) {
        sardfq_model_free(m);
        return s;
    }
    *out = m;
    return SARDFQ_OK;
}

/* ---- block reconstruction (maths in recon.c) ---------------------------- */

typedef struct {
    float *m, *v;
} adam_buf;

static void adam_step(float *x, const float *g, float *m, float *v, size_t n, float lr, int t)
{
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    const float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        x[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

#define RECON_WEIGHT_LR 1e-3f /* BRECQ's Adam default for AdaRound */
#define RECON_ROUND_WEIGHT 0.01f
#define RECON_WARMUP 0.2f
#define RECON_BETA_START 20.0f
#define RECON_BETA_END 2.0f

static sardfq_status recon_block(const sardfq_quantizer *q, sfq_rblock *rb, sardfq_model *work, int l,
                                 const float *xin, const float *tgt, adam_buf *ab, int64_t *done,
                                 int64_t total)
{
    const int iters = q->p.recon_iters;
    double sm[SFQ_RQ_COUNT] = {0}, sv[SFQ_RQ_COUNT] = {0};
    for (int k = 0; k < 4; k++)
        if (rb->wbits[k]) {
            memset(ab[k].m, 0, sizeof(float) * rb->wsize[k]);
            memset(ab[k].v, 0, sizeof(float) * rb->wsize[k]);
        }
    const int warm = (int)(RECON_WARMUP * iters);
    for (int it = 0; it < iters; it++) {
        double loss;
        sardfq_status st = sfq_rblock_forward(rb, xin, tgt, 0, &loss);
        if (!st)
            st = sfq_rblock_backward(rb, tgt);
        if (st)
            return st;
        if (it >= warm) {
            const float r = iters > warm ? (float)(it - warm) / (float)(iters - warm) : 1.0f;
            const float beta = RECON_BETA_END + (RECON_BETA_START - RECON_BETA_END) * (1.0f - r);
            for (int k = 0; k < 4; k++)
                if (rb->wbits[k])
                    sfq_ada_reg(&rb->ada[k], rb->wsize[k], beta, RECON_ROUND_WEIGHT, rb->gv[k]);
        }
        for (int k = 0; k < 4; k++)
            if (rb->wbits[k])
                adam_step(rb->ada[k].v, rb->gv[k], ab[k].m, ab[k].v, rb->wsize[k], RECON_WEIGHT_LR, it + 1);
        const float lr = q->p.recon_lr * 0.5f * (1.0f + cosf((float)M_PI * (float)it / (float)iters));
        for (int s = 0; s < SFQ_RQ_COUNT; s++) {
            if (!rb->on[s])
                continue;
            float x = rb->act[s].scale, g = (float)rb->gs[s], m = (float)sm[s], v = (float)sv[s];
            adam_step(&x, &g, &m, &v, 1, lr, it + 1);
            sm[s] = m;
            sv[s] = v;
            if (x > 0.0f && isfinite(x))
                rb->act[s].scale = x;
        }
        ++*done;
        if (q->p.progress && q->p.progress(q->p.user_data, *done, total, "reconstruct"))
            return sfq_fail(SARDFQ_E_CANCELLED, "sardfq_quantizer_reconstruct: cancelled at block %d", l);
    }
    /* harden and write back */
    for (int k = 0; k < 4; k++) {
        const int i = rb->lin[k];
        if (rb->wbits[k])
            sfq_ada_weight(&rb->ada[k], rb->wrows[k], sfq_qlin_rows(&work->info, i), sfq_qlin_cols(&work->info, i),
                           1, sfq_qlin_weight(work, i), NULL);
    }
    for (int s = 0; s < SFQ_RQ_COUNT; s++)
        if (rb->on[s])
            work->q->acts[rb->pt[s]].u.scale = rb->act[s].scale;
    return SARDFQ_OK;
}

/* The FP block's attention probabilities for head-wise distillation: block
 * l of rp (the reparameterised FP model) on the FP residual stream
 * entering it; *out (allocated) holds *rows x *cols floats. */
static sardfq_status fp_block_probs(const sardfq_quantizer *q, const sardfq_model *rp, const float *images, int n,
                                    int l, size_t in_floats, float **out, int64_t *rows, int *cols)
{
    *out = NULL;
    sardfq_state *st = NULL;
    float *x = sfq_alloc_array(in_floats, sizeof(float));
    sardfq_status s = x ? SARDFQ_OK : sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    const float *y, *P = NULL;
    if (!s)
        s = sfq_exec_forward_blocks(q->fp, NULL, images, n, l, x);
    if (!s)
        s = sardfq_state_create(rp, &st);
    if (!s)
        s = sfq_exec_block_forward(rp, st, NULL, l, x, n, &y);
    if (!s && !(P = sfq_exec_block_probs(rp, st, rows, cols)))
        s = sfq_fail(SARDFQ_E_INTERNAL, "block reconstruction: block %d has no attention", l);
    if (!s && !(*out = sfq_alloc_array((size_t)*rows * (size_t)*cols, sizeof(float))))
        s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    if (!s)
        memcpy(*out, P, sizeof(float) * (size_t)*rows * (size_t)*cols);
    sardfq_state_free(st);
    sfq_free(x);
    return s;
}

/* Block l: its input through the quantized model so far (earlier blocks
 * already reconstructed), its target through the FP model (and, with
 * distillation, the FP block's attention), then the optimisation. */
static sardfq_status recon_one(const sardfq_quantizer *q, sardfq_model *work, const sardfq_model *rp,
                               const float *images, int n, int l, int64_t *done, int64_t total)
{
    sfq_rblock rb;
    adam_buf ab[4] = {{0}};
    float *xin = NULL, *tgt = NULL, *ptgt = NULL;
    sardfq_status s = sfq_rblock_setup(&rb, work, rp, l, n);
    if (s)
        return s;
    xin = sfq_alloc_array(rb.out_floats, sizeof(float));
    tgt = sfq_alloc_array(rb.out_floats, sizeof(float));
    if (!xin || !tgt)
        s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    for (int k = 0; k < 4 && !s; k++) {
        ab[k].m = sfq_alloc_array(rb.wsize[k], sizeof(float));
        ab[k].v = sfq_alloc_array(rb.wsize[k], sizeof(float));
        if (!ab[k].m || !ab[k].v)
            s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    if (!s)
        s = sfq_exec_forward_blocks(work, NULL, images, n, l, xin);
    if (!s)
        s = sfq_exec_forward_through(q->fp, images, n, l, tgt);
    if (!s && q->recon_attn > 0) {
        int64_t rows;
        int cols;
        s = fp_block_probs(q, rp, images, n, l, rb.out_floats, &ptgt, &rows, &cols);
        if (!s)
            s = sfq_rblock_set_attn_target(&rb, q->recon_attn, ptgt, rows, cols);
    }
    if (!s)
        s = recon_block(q, &rb, work, l, xin, tgt, ab, done, total);
    for (int k = 0; k < 4; k++) {
        sfq_free(ab[k].m);
        sfq_free(ab[k].v);
    }
    sfq_free(xin);
    sfq_free(tgt);
    sfq_free(ptgt);
    sfq_rblock_free(&rb);
    return s;
}

SARDFQ_API sardfq_status sardfq_quantizer_set_recon_attn(sardfq_quantizer *q, float weight)
{
    if (!q)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_quantizer_set_recon_attn: quantizer is NULL");
    if (!(weight >= 0.0f) || !isfinite(weight))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_quantizer_set_recon_attn: weight must be finite and >= 0 (got %g)",
                        (double)weight);
    q->recon_attn = weight;
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_quantizer_reconstruct(sardfq_quantizer *q, const float *images, int32_t n)
{
    sardfq_status s = check_calib_images(q, images, n, "sardfq_quantizer_reconstruct");
    if (s)
        return s;
    if (!q->work)
        return sfq_fail(SARDFQ_E_STATE, "sardfq_quantizer_reconstruct: calibrate first");
    if (q->p.scheme != SARDFQ_SCHEME_REPQ)
        return sfq_fail(SARDFQ_E_UNSUPPORTED, "sardfq_quantizer_reconstruct: only the repq scheme");
    const sardfq_model_info *cfg = &q->fp->info;
    sardfq_model *work = NULL, *rp = NULL;
    if ((s = sfq_model_clone(q->work, &work)) || (s = sfq_quantizer_reparam_fp(q, &rp)))
        return commit_work(q, work, s);
    int64_t done = 0;
    const int64_t total = (int64_t)cfg->depth * q->p.recon_iters;
    for (int l = 0; l < cfg->depth && !s; l++)
        s = recon_one(q, work, rp, images, n, l, &done, total);
    sardfq_model_free(rp);
    return commit_work(q, work, s);
}
