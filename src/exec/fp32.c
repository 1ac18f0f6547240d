/* fp32.c - the fp32 executor: forward over a plan's steps (all of them, or
 * up to a block), keeping what the backward reads, and the backward to the
 * input images in reverse step order. Quantization points apply the
 * model's fake quantizers (values on their integer grids, float32
 * arithmetic), or go to the run's observer first.
 *
 * Buffers: one work allocation holds every slot of the plan (n images each)
 * and the attention scratch of each thread; a state's kept activations sit
 * in one more. In the backward the gradient of a variable lives in that
 * variable's slot (the forward values there are dead by then: the backward
 * reads only kept ones). A variable's gradient is live from the first step
 * (in reverse order) that adds to it; a step that wrote the variable (not
 * adding to it) ends its gradient's life. */
#include "exec.h"

#include "compute.h"
#include "iplan.h"
#include "qspec.h"
#include "swin.h"
#include "threads.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

#define MAX_VARS 512

/* ---- sizes -------------------------------------------------------------- */

static size_t var_floats(const sfq_plan *p, int v) { return (size_t)p->vars[v].rows * (size_t)p->vars[v].cols; }

/* Per-image floats of each slot (max over its variables); the per-thread
 * attention scratch. */
static void slot_sizes(const sfq_plan *p, size_t *slot, size_t *chunk)
{
    memset(slot, 0, sizeof(size_t) * (size_t)p->nslots);
    for (int v = 0; v < p->nvars; v++) {
        const size_t f = var_floats(p, v);
        if (f > slot[p->vars[v].slot])
            slot[p->vars[v].slot] = f;
    }
    *chunk = 0;
    for (int i = 0; i < p->nsteps; i++)
        if (p->steps[i].op == SFQ_OP_ATTENTION) {
            const size_t c = sfq_attention_chunk(&p->steps[i]);
            *chunk = c > *chunk ? c : *chunk;
        }
}

static size_t work_floats(const sfq_plan *p, int n, int nt)
{
    size_t slot[MAX_VARS], chunk, per = 0;
    slot_sizes(p, slot, &chunk);
    for (int k = 0; k < p->nslots; k++)
        per += slot[k];
    return (size_t)nt * chunk + (size_t)n * per;
}

typedef struct {
    float *slot[MAX_VARS];
    float *scratch;
    size_t chunk;
} work;

static void work_carve(work *w, float *base, const sfq_plan *p, int n, int nt)
{
    size_t slot[MAX_VARS];
    slot_sizes(p, slot, &w->chunk);
    w->scratch = base;
    base += (size_t)nt * w->chunk;
    for (int k = 0; k < p->nslots; k++) {
        w->slot[k] = base;
        base += (size_t)n * slot[k];
    }
}

/* Kept floats per image of step i for flags (the carve in state_reserve
 * follows the same table). */
static size_t kept_of(const sfq_plan *p, int i, uint32_t flags, size_t parts[3])
{
    const sfq_step *st = &p->steps[i];
    const int bwd = (flags & SARDFQ_FORWARD_BACKWARD) != 0;
    parts[0] = parts[1] = parts[2] = 0;
    if (st->op == SFQ_OP_LAYERNORM && bwd) {
        parts[0] = var_floats(p, st->out);                 /* xhat */
        parts[1] = (size_t)p->vars[st->out].rows;          /* 1/std */
    } else if (st->op == SFQ_OP_ATTENTION) {
        if (bwd)
            parts[0] = var_floats(p, st->in2);             /* probs */
        if (flags & SFQ_FORWARD_KEEP_AO)
            parts[1] = var_floats(p, st->out);             /* output */
    } else if (st->keep_out && bwd) {
        parts[2] = var_floats(p, st->out);                 /* output */
    }
    return parts[0] + parts[1] + parts[2];
}

static size_t kept_floats(const sardfq_model *m, int n, uint32_t flags)
{
    const sfq_plan *p = m->plan;
    size_t per = (size_t)m->info.attention_floats + (size_t)m->info.num_features, parts[3];
    for (int i = 0; i < p->nsteps; i++)
        per += kept_of(p, i, flags, parts);
    return (size_t)n * per;
}

/* ---- a run ---------------------------------------------------------------- */

typedef struct {
    const sardfq_model *m;
    const sfq_plan *p;
    const sfq_qspec *q;     /* the model's quantizers, or NULL */
    const sfq_observer *obs;
    const sfq_trainer *t;   /* training a block, or NULL */
    const sfq_compute *c;
    int n;
    work w;
    float *loc[MAX_VARS];   /* where each variable's current value is */
    sfq_kept *kept;         /* per step, or NULL (nothing kept) */
    float *attn, *feat;     /* read-backs, or NULL */
    const sfq_iplan *ip;    /* integer executor on, or NULL */
    int isa;                /* its instruction path */
    uint8_t *ib;            /* its scratch (grown as needed) */
    size_t ib_bytes;
    float *wq[2];           /* weights held as codes, dequantized for a
                               float product (grown as needed) */
    size_t wq_floats[2];
    const sfq_iplan *chk;   /* check mode: the integer form to hold the
                               fake run's linears against, or NULL */
    double chk_max;         /* its largest relative difference */
    int chk_steps;
} run;

/* ---- the integer executor's ops (iplan.h) -------------------------------- */

static size_t al64(size_t x) { return (x + 63) & ~(size_t)63; }

static uint8_t *int_scratch(run *r, size_t bytes)
{
    if (bytes <= r->ib_bytes)
        return r->ib;
    uint8_t *b = sfq_alloc(bytes);
    if (!b)
        return NULL;
    sfq_free(r->ib);
    r->ib = b;
    r->ib_bytes = bytes;
    return b;
}

/* out (+)= the integer product of in's codes (point in_pt[k] of the step)
 * with weights w[k]: rows x cols in (row stride ldi); a head's second half
 * with half = 1 (scale 1/2, the heads' mean). */
static sardfq_status int_product(run *r, const sfq_istep *is, int k, const float *in, int64_t rows, int cols,
                                 int64_t ldi, const float *bias, float *out, int64_t ldo, int accumulate,
                                 float factor)
{
    const sfq_ipack *pk = &is->w[k];
    const sfq_uq *u = &r->q->acts[is->in_pt[k]].u;
    const size_t np = (size_t)pk->np;
    const size_t a_bytes = al64((size_t)rows * pk->kp), s_bytes = al64(sizeof(int32_t) * (size_t)rows);
    const size_t v_bytes = al64(sizeof(int32_t) * np);
    uint8_t *b = int_scratch(r, a_bytes + s_bytes + 3 * v_bytes);
    if (!b)
        return sfq_fail(SARDFQ_E_NOMEM, "sardfq_model_forward: out of memory (integer activations)");
    uint8_t *A = b;
    int32_t *asum = (int32_t *)(b + a_bytes), *corr = (int32_t *)(b + a_bytes + s_bytes);
    int32_t *zoff = (int32_t *)((uint8_t *)corr + v_bytes);
    float *scale = (float *)((uint8_t *)zoff + v_bytes);
    sfq_uq_encode_rows(u, in, rows, cols, ldi, A, pk->kp, pk->kp, asum, r->c->nt);
    sfq_iepi_vectors(pk, factor * u->scale, (int32_t)u->zero, is->wscale[k], 1, scale, corr, zoff);
    const sfq_iepi e = {scale, bias, corr, zoff, asum, out, ldo, accumulate};
    sfq_igemm(r->isa, r->c->nt, A, pk->kp, rows, pk, &e);
    return SARDFQ_OK;
}

/* The quantization point `pt` (a spec index, -1 = none) on x. */
static sardfq_status point(const run *r, int pt, float *x, int64_t rows, int cols, int64_t ld)
{
    if (pt < 0 || !r->q || rows <= 0 || cols <= 0)
        return SARDFQ_OK;
    const sfq_qact *a = &r->q->acts[pt];
    if (a->kind == SFQ_QK_OFF)
        return SARDFQ_OK;
    if (r->t)
        return r->t->point_fwd(r->t->ctx, pt, x, rows, cols, ld, r->c->nt);
    int handled = 0;
    if (r->obs) {
        sardfq_status s = r->obs->fn(r->obs->ctx, pt, x, rows, cols, ld, r->c->nt, &handled);
        if (s || handled)
            return s;
    }
    sfq_qact_apply(a, NULL, x, rows, cols, ld, r->c->nt);
    return SARDFQ_OK;
}

static int point_on(const run *r, int pt) { return pt >= 0 && r->q && r->q->acts[pt].kind != SFQ_QK_OFF; }

/* Check mode: the integer product of step i on the fake run's input (its
 * codes are recovered exactly from the fake-quantized values) against the
 * float product y (rows x N), as max |int - float| / max |float|. */
static sardfq_status check_step(run *r, const sfq_istep *is, const float *in, int64_t rows, int cols,
                                int64_t ldi, const float *y, int N, const float *bias, int head2, const float *in2)
{
    float *yi = sfq_alloc_array((size_t)rows * N, sizeof(float));
    if (!yi)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    sardfq_status s = int_product(r, is, 0, in, rows, cols, ldi, bias, yi, N, 0, head2 ? 0.5f : 1.0f);
    if (!s && head2)
        s = int_product(r, is, 1, in2, rows, cols, ldi, NULL, yi, N, 1, 0.5f);
    double d = 0, mag = 0;
    for (size_t e = 0; !s && e < (size_t)rows * N; e++) {
        d = fmax(d, fabs((double)yi[e] - y[e]));
        mag = fmax(mag, fabs((double)y[e]));
    }
    sfq_free(yi);
    if (!s) {
        r->chk_max = fmax(r->chk_max, mag > 0 ? d / mag : d);
        r->chk_steps++;
    }
    return s;
}

/* ---- forward steps ------------------------------------------------------- */

typedef struct {
    const sfq_window *g;
    int C, N;
    const float *src;
    float *dst;
    int scatter, add; /* scatter (else gather); scatter adding to dst */
} perm_ctx;

/* Window-order row r (all images) <-> its raster row: gather copies the
 * raster row to row r, scatter copies (or adds) row r back. */
static void perm_range(void *vc, int64_t r0, int64_t r1)
{
    const perm_ctx *c = vc;
    const int Nw = c->g->wh * c->g->ww;
    const size_t bytes = sizeof(float) * (size_t)c->C;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / c->N;
        const int k = (int)(r % c->N), pos = sfq_window_pos(c->g, k / Nw, k % Nw);
        const int64_t raster = (b * c->N + pos) * c->C, window = r * c->C;
        if (!c->scatter) {
            memcpy(c->dst + window, c->src + raster, bytes);
        } else if (c->add) {
            for (int i = 0; i < c->C; i++)
                c->dst[raster + i] += c->src[window + i];
        } else {
            memcpy(c->dst + raster, c->src + window, bytes);
        }
    }
}

static void permute(const sfq_window *g, int C, int n, const float *src, float *dst, int scatter, int add, int nt)
{
    perm_ctx c = {g, C, g->gh * g->gw, src, dst, scatter, add};
    sfq_parallel_for(nt, (int64_t)n * c.N, perm_range, &c);
}

/* 2x2 patch merging of a gh x gw grid of C-wide rows: m4[b][t][k C + c]
 * with k = 0 (2y, 2x), 1 (2y+1, 2x), 2 (2y, 2x+1), 3 (2y+1, 2x+1); or the
 * inverse scatter (a permutation). */
typedef struct {
    const sfq_window *g;
    int C;
    float *x, *m4;
    int scatter;
} merge_ctx;

static void merge_range(void *vc, int64_t r0, int64_t r1)
{
    const merge_ctx *c = vc;
    const int C = c->C, gw = c->g->gw, oh = c->g->gh / 2, ow = gw / 2;
    const int64_t No = (int64_t)oh * ow, Ni = (int64_t)c->g->gh * gw;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / No;
        const int t = (int)(r % No), y = t / ow, x = t % ow;
        for (int k = 0; k < 4; k++) {
            const int yy = 2 * y + (k & 1), xx = 2 * x + (k >> 1);
            float *xi = c->x + (b * Ni + (int64_t)yy * gw + xx) * C, *mi = c->m4 + (r * 4 + k) * C;
            if (c->scatter)
                memcpy(xi, mi, sizeof(float) * (size_t)C);
            else
                memcpy(mi, xi, sizeof(float) * (size_t)C);
        }
    }
}

static void merge(const sfq_window *g, int C, int n, float *x, float *m4, int scatter, int nt)
{
    merge_ctx mc = {g, C, x, m4, scatter};
    sfq_parallel_for(nt, (int64_t)n * (g->gh / 2) * (g->gw / 2), merge_range, &mc);
}

/* x = [class; dist; tokens] + pos, the point `mid` between. */
static sardfq_status prefix_pos(run *r, const sfq_step *st, const float *tok, float *x)
{
    const sfq_plan *p = r->p;
    const int N = p->vars[st->out].rows, D = p->vars[st->out].cols, G = p->vars[st->in].rows, P = N - G;
    const int n = r->n;
    if (point_on(r, st->pt[SFQ_PT_MID])) {
        /* PSAQ-ViT quantizes [prefix; tokens], then the sum with pos */
        for (int b = 0; b < n; b++) {
            float *xb = x + (size_t)b * N * D;
            memcpy(xb, st->cls, sizeof(float) * (size_t)D);
            if (P == 2)
                memcpy(xb + D, st->dist, sizeof(float) * (size_t)D);
            memcpy(xb + (size_t)P * D, tok + (size_t)b * G * D, sizeof(float) * (size_t)G * D);
        }
        sardfq_status s = point(r, st->pt[SFQ_PT_MID], x, (int64_t)n * N, D, D);
        if (s)
            return s;
        for (int b = 0; b < n; b++) {
            float *xb = x + (size_t)b * N * D;
            for (size_t i = 0; i < (size_t)N * D; i++)
                xb[i] += st->pos[i];
        }
        return SARDFQ_OK;
    }
    for (int b = 0; b < n; b++) {
        float *xb = x + (size_t)b * N * D;
        for (int i = 0; i < D; i++) {
            xb[i] = st->cls[i] + st->pos[i];
            if (P == 2)
                xb[D + i] = st->dist[i] + st->pos[D + i];
        }
        const float *t = tok + (size_t)b * G * D;
        const float *pos = st->pos + (size_t)P * D;
        float *xp = xb + (size_t)P * D;
        for (size_t i = 0; i < (size_t)G * D; i++)
            xp[i] = t[i] + pos[i];
    }
    return SARDFQ_OK;
}

static sardfq_status attention(run *r, sfq_kept *k, const sfq_step *st, const sfq_istep *is, float *qkv,
                               float *probs, float *ao)
{
    const int nt = r->c->nt, n = r->n;
    sfq_attn_run a = {.st = st, .qkv = qkv, .probs = probs, .ao = ao, .attn = r->attn,
                      .T = r->p->readback_floats, .alpha = st->alpha, .softmax = 1,
                      .scratch = r->w.scratch, .chunk = r->w.chunk};
    if (!r->q) {
        sfq_attention_fwd(&a, n, nt);
        return SARDFQ_OK;
    }
    const int C = st->dim;
    const int64_t BN = (int64_t)n * r->p->vars[st->in].rows;
    const int64_t rows = (int64_t)n * r->p->vars[st->in2].rows;
    const int Nw = st->tokens;
    sardfq_status s;
    if (st->prescale_q) {
        /* timm's window attention (and RepQ-ViT's matmul1) multiplies q by
         * the scale before Q K^T: the quantizer sees scale q */
        for (int64_t row = 0; row < BN; row++)
            for (int e = 0; e < C; e++)
                qkv[row * 3 * C + e] *= a.alpha;
        a.alpha = 1.0f;
    }
    sfq_attn_int iq;
    if (is && is->mode == SFQ_IMODE_INT) {
        /* q and k to codes (what their points would level them to) */
        const sfq_uq *uq = &r->q->acts[st->pt[SFQ_PT_Q]].u, *uk = &r->q->acts[st->pt[SFQ_PT_K]].u;
        const size_t cb = al64((size_t)BN * C), chunk = al64(sfq_attention_int_chunk(st));
        uint8_t *b = int_scratch(r, 2 * cb + chunk * (size_t)nt);
        if (!b)
            return sfq_fail(SARDFQ_E_NOMEM, "sardfq_model_forward: out of memory (integer attention)");
        sfq_uq_encode_rows(uq, qkv, BN, C, 3 * C, b, C, C, NULL, nt);
        sfq_uq_encode_rows(uk, qkv + C, BN, C, 3 * C, b + cb, C, C, NULL, nt);
        iq = (sfq_attn_int){r->isa, b, b + cb, uq->scale, uk->scale, (int32_t)uq->zero, (int32_t)uk->zero,
                            b + 2 * cb, chunk};
        a.iq = &iq;
        if ((s = point(r, st->pt[SFQ_PT_V], qkv + 2 * C, BN, C, 3 * C)))
            return s;
    } else if ((s = point(r, st->pt[SFQ_PT_Q], qkv, BN, C, 3 * C)) ||
               (s = point(r, st->pt[SFQ_PT_K], qkv + C, BN, C, 3 * C)) ||
               (s = point(r, st->pt[SFQ_PT_V], qkv + 2 * C, BN, C, 3 * C))) {
        return s;
    }
    /* with a point on the scores, the softmax waits for all of them */
    a.softmax = st->pt[SFQ_PT_SCORES] < 0;
    if (a.softmax && !k && !r->t && !r->obs) {
        /* inference: each unit's probabilities quantized in cache */
        sfq_qact_ready pq;
        if (point_on(r, st->pt[SFQ_PT_PROBS])) {
            sfq_qact_prepare(&r->q->acts[st->pt[SFQ_PT_PROBS]], &pq);
            a.probs_q = &pq;
        }
        sfq_attention_fwd(&a, n, nt);
        return SARDFQ_OK;
    }
    sfq_attention_scores(&a, n, nt);
    if (!a.softmax) {
        if ((s = point(r, st->pt[SFQ_PT_SCORES], probs, rows, Nw, Nw)))
            return s;
        sfq_softmax_fwd(probs, rows, Nw, nt);
    }
    if (k && k->raw && point_on(r, st->pt[SFQ_PT_PROBS])) /* training: the softmax's backward reads it */
        memcpy(k->raw, probs, sizeof(float) * (size_t)rows * Nw);
    if ((s = point(r, st->pt[SFQ_PT_PROBS], probs, rows, Nw, Nw)))
        return s;
    sfq_attention_pv(&a, n, nt);
    return SARDFQ_OK;
}

/* Weight k (1: a distilled head's second) that linear or head step st
 * computes with in float, into *W: the trainer's, the model's view, or,
 * for a weight that a final quantized model holds only as codes, the
 * codes dequantized into the run's scratch (sfq_qlin_weight_read; per
 * call, so a shared model is only read). */
static sardfq_status step_weight(run *r, const sfq_step *st, int k, const float **W)
{
    *W = k == 0 && r->t && r->t->weight ? r->t->weight(r->t->ctx, st) : NULL;
    if (*W || (*W = k ? st->w2 : st->w))
        return SARDFQ_OK;
    const int lin = st->lin + k;
    const size_t n = (size_t)sfq_qlin_rows(&r->m->info, lin) * (size_t)sfq_qlin_cols(&r->m->info, lin);
    if (n > r->wq_floats[k]) {
        float *b = sfq_alloc_array(n, sizeof(float));
        if (!b)
            return sfq_fail(SARDFQ_E_NOMEM, "sardfq_model_forward: out of memory (dequantized weights)");
        sfq_free(r->wq[k]);
        r->wq[k] = b;
        r->wq_floats[k] = n;
    }
    if (!(*W = sfq_qlin_weight_read(r->m, lin, r->wq[k])))
        return sfq_fail(SARDFQ_E_INTERNAL, "linear %d has no weight", lin);
    return SARDFQ_OK;
}

/* A run's grown scratch, freed when the call ends. */
static void run_done(run *r)
{
    sfq_free(r->ib);
    sfq_free(r->wq[0]);
    sfq_free(r->wq[1]);
    r->ib = NULL;
    r->wq[0] = r->wq[1] = NULL;
}

/* The bias of two heads' mean, 0.5 (b + b2) [K] (allocated; NULL when out
 * of memory). */
static float *mean_bias(const sfq_step *st, int K)
{
    float *bias = sfq_alloc_array((size_t)K, sizeof(float));
    for (int j = 0; bias && j < K; j++)
        bias[j] = 0.5f * (st->b[j] + st->b2[j]);
    return bias;
}

/* logits = head over the P rows of in (P = 2: the mean of two heads). */
static sardfq_status head(run *r, const sfq_step *st, const sfq_istep *is, float *in, float *logits)
{
    const sfq_plan *p = r->p;
    const int P = p->vars[st->in].rows, D = p->vars[st->in].cols, K = r->m->info.num_classes, n = r->n;
    if (is && is->mode == SFQ_IMODE_INT) {
        sardfq_status s;
        if (P == 1) {
            s = int_product(r, is, 0, in, n, D, D, st->b, logits, K, 0, 1.0f);
        } else {
            float *bias = mean_bias(st, K);
            if (!bias)
                return sfq_fail(SARDFQ_E_NOMEM, "sardfq_model_forward: out of memory");
            s = int_product(r, is, 0, in, n, D, (int64_t)P * D, bias, logits, K, 0, 0.5f);
            if (!s)
                s = int_product(r, is, 1, in + D, n, D, (int64_t)P * D, NULL, logits, K, 1, 0.5f);
            sfq_free(bias);
        }
        return s ? s : point(r, st->pt[SFQ_PT_OUT], logits, n, K, K);
    }
    sardfq_status s = point(r, st->pt[SFQ_PT_IN0], in, n, D, (int64_t)P * D);
    if (!s && P == 2)
        s = point(r, st->pt[SFQ_PT_IN0 + 1], in + D, n, D, (int64_t)P * D);
    if (s)
        return s;
    const float *W, *W2 = NULL;
    if ((s = step_weight(r, st, 0, &W)) || (P == 2 && (s = step_weight(r, st, 1, &W2))))
        return s;
    if (P == 1) {
        sfq_linear(r->c, in, W, st->b, logits, n, 1, D, K, 0);
    } else {
        for (int b = 0; b < n; b++)
            for (int j = 0; j < K; j++)
                logits[(size_t)b * K + j] = 0.5f * (st->b[j] + st->b2[j]);
        sfq_gemm(r->c->split, 1, 0, 1, n, K, D, 0.5f, in, P * D, W, D, 1.0f, logits, K);
        sfq_gemm(r->c->split, 1, 0, 1, n, K, D, 0.5f, in + D, P * D, W2, D, 1.0f, logits, K);
    }
    if (r->chk && r->chk->steps[st - p->steps].mode == SFQ_IMODE_INT) {
        const sfq_istep *ci = &r->chk->steps[st - p->steps];
        float *bias = P == 2 ? mean_bias(st, K) : NULL;
        if (P == 2 && !bias)
            return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
        s = check_step(r, ci, in, n, D, (int64_t)P * D, logits, K, P == 2 ? bias : st->b, P == 2, in + D);
        sfq_free(bias);
        if (s)
            return s;
    }
    return point(r, st->pt[SFQ_PT_OUT], logits, n, K, K);
}

/* y (=|+=) in W^T + b of linear step i (rows x its widths): on the integer
 * kernels when the run's integer form says so, else in float. */
static sardfq_status linear_into(run *r, int i, const float *in, int64_t rows, float *y, int accumulate)
{
    const sfq_step *st = &r->p->steps[i];
    const int K = r->p->vars[st->in].cols, N = r->p->vars[st->out].cols;
    if (r->ip && r->ip->steps[i].mode == SFQ_IMODE_INT)
        return int_product(r, &r->ip->steps[i], 0, in, rows, K, K, st->b, y, N, accumulate, 1.0f);
    const float *W;
    const sardfq_status s = step_weight(r, st, 0, &W);
    if (s)
        return s;
    sfq_linear(r->c, in, W, st->b, y, (int)rows, r->p->vars[st->out].rows, K, N, accumulate);
    return SARDFQ_OK;
}

/* Where step i writes its output: kept storage or the variable's slot. */
static float *out_of(run *r, int i)
{
    const sfq_step *st = &r->p->steps[i];
    if (r->kept && r->kept[i].out)
        return r->kept[i].out;
    return r->w.slot[r->p->vars[st->out].slot];
}

static sardfq_status step_fwd(run *r, int i, const float *images, float *logits)
{
    const sfq_plan *p = r->p;
    const sfq_step *st = &p->steps[i];
    const sfq_compute *c = r->c;
    const int nt = c->nt, n = r->n;
    const sfq_var *vo = st->out >= 0 ? &p->vars[st->out] : NULL;
    const sfq_var *vi = st->in >= 0 ? &p->vars[st->in] : NULL;
    float *in = st->in >= 0 ? r->loc[st->in] : NULL;
    float *out = st->out >= 0 ? (st->accumulate ? r->loc[st->out] : out_of(r, i)) : NULL;
    const int64_t rows = vo ? (int64_t)n * vo->rows : 0;
    sfq_kept *k = r->kept ? &r->kept[i] : NULL;
    sardfq_status s = SARDFQ_OK;
    switch (st->op) {
    case SFQ_OP_PATCHIFY:
        sfq_im2col(p->chans, p->img_h, p->img_w, p->patch, p->grid_h, p->grid_w, images, n, out, nt);
        break;
    case SFQ_OP_LINEAR: {
        if (k)
            k->in = in;
        if (st->accumulate && point_on(r, st->pt[SFQ_PT_PRE_ADD])) {
            /* the product is a point of its own before the add */
            float *tmp = r->w.slot[p->vars[st->in2].slot];
            if ((s = linear_into(r, i, in, rows, tmp, 0)) ||
                (s = point(r, st->pt[SFQ_PT_PRE_ADD], tmp, rows, vo->cols, vo->cols)))
                return s;
            const size_t total = (size_t)rows * (size_t)vo->cols;
            for (size_t e = 0; e < total; e++)
                out[e] += tmp[e];
        } else {
            s = linear_into(r, i, in, rows, out, st->accumulate);
        }
        if (!s && r->chk && r->chk->steps[i].mode == SFQ_IMODE_INT) {
            const float *W;
            if ((s = step_weight(r, st, 0, &W)))
                return s;
            float *y = sfq_alloc_array((size_t)rows * vo->cols, sizeof(float));
            if (!y)
                return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
            sfq_linear(c, in, W, st->b, y, (int)rows, vo->rows, vi->cols, vo->cols, 0);
            s = check_step(r, &r->chk->steps[i], in, rows, vi->cols, vi->cols, y, vo->cols, st->b, 0, NULL);
            sfq_free(y);
        }
        break;
    }
    case SFQ_OP_LAYERNORM:
        sfq_layernorm_fwd(in, st->w, st->b, out, k ? k->xhat : NULL, k ? k->rstd : NULL, rows, vo->cols,
                          r->m->info.ln_eps, nt);
        break;
    case SFQ_OP_GELU:
        if (k)
            k->in = in;
        sfq_gelu_fwd(in, out, rows * vo->cols, nt);
        break;
    case SFQ_OP_PREFIX_POS:
        s = prefix_pos(r, st, in, out);
        break;
    case SFQ_OP_WINDOW_GATHER:
        permute(&st->win, vo->cols, n, in, out, 0, 0, nt);
        break;
    case SFQ_OP_WINDOW_SCATTER_ADD:
        permute(&st->win, vo->cols, n, in, out, 1, 1, nt);
        break;
    case SFQ_OP_MERGE_GATHER:
        merge(&st->win, vi->cols, n, in, out, 0, nt);
        break;
    case SFQ_OP_ATTENTION: {
        float *probs = k && k->probs ? k->probs : r->w.slot[p->vars[st->in2].slot];
        if (k)
            k->in = in;
        s = attention(r, k, st, r->ip ? &r->ip->steps[i] : NULL, in, probs, out);
        break;
    }
    case SFQ_OP_SELECT_PREFIX: {
        const int P = vo->rows, N = vi->rows, D = vo->cols;
        for (int b = 0; b < n; b++)
            memcpy(out + (size_t)b * P * D, in + (size_t)b * N * D, sizeof(float) * (size_t)P * D);
        break;
    }
    case SFQ_OP_MEAN_TOKENS: {
        const int N = vi->rows, C = vi->cols;
        for (int b = 0; b < n; b++) {
            const float *hb = in + (size_t)b * N * C;
            for (int d = 0; d < C; d++) {
                double sum = 0;
                for (int t = 0; t < N; t++)
                    sum += hb[(size_t)t * C + d];
                out[(size_t)b * C + d] = (float)(sum / N);
            }
        }
        break;
    }
    case SFQ_OP_HEAD:
        return logits ? head(r, st, r->ip ? &r->ip->steps[i] : NULL, in, logits) : SARDFQ_OK;
    default:
        return sfq_fail(SARDFQ_E_INTERNAL, "plan step %d: unknown op %d", i, st->op);
    }
    if (s)
        return s;
    if (st->out < 0)
        return SARDFQ_OK;
    r->loc[st->out] = out;
    if (st->out == p->features && r->feat) /* the read-back, before any point */
        for (int b = 0; b < n; b++)
            memcpy(r->feat + (size_t)b * vo->cols, out + (size_t)b * vo->rows * vo->cols,
                   sizeof(float) * (size_t)vo->cols);
    if (r->ip && r->ip->steps[i].skip_out) /* its reader encodes it */
        return SARDFQ_OK;
    return point(r, st->pt[SFQ_PT_OUT], out, rows, vo->cols, vo->cols);
}

/* Steps [0, end); logits may be NULL (then the head is skipped). */
static sardfq_status forward(run *r, const float *images, int end, float *logits)
{
    for (int i = 0; i < end; i++) {
        sardfq_status s = step_fwd(r, i, images, logits);
        if (s)
            return s;
    }
    return SARDFQ_OK;
}

static sardfq_status run_init(run *r, const sardfq_model *m, const sfq_observer *obs, const sfq_compute *c, int n)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->p = m->plan;
    r->q = m->q;
    r->obs = obs && obs->fn ? obs : NULL;
    r->c = c;
    r->n = n;
    if (!r->p || r->p->nvars > MAX_VARS || r->p->nslots > MAX_VARS)
        return sfq_fail(SARDFQ_E_INTERNAL, "the model has no usable plan");
    return SARDFQ_OK;
}

/* A compute call: the thread layout, one scratch allocation, the run. */
static sardfq_status run_stateless(const sardfq_model *m, const sfq_observer *obs, const float *images, int n,
                                   int end, float *logits, int resid, float *x_out, const char *fn)
{
    sfq_compute c = sfq_begin_compute(m->n_threads);
    run r;
    sardfq_status s = run_init(&r, m, obs, &c, n);
    float *base = NULL;
    if (!s) {
        const size_t floats = work_floats(m->plan, n, c.nt);
        base = sfq_alloc_array(floats, sizeof(float));
        if (!base)
            s = sfq_fail(SARDFQ_E_NOMEM, "%s: cannot allocate %zu MB of scratch for %d images", fn,
                         floats * sizeof(float) >> 20, n);
    }
    if (!s && !obs && end == m->plan->nsteps && m->ip && m->executor == SARDFQ_EXECUTOR_AUTO) {
        r.ip = m->ip; /* inference of a quantized model: the integer executor */
        r.isa = m->ip->isa;
    }
    if (!s) {
        work_carve(&r.w, base, m->plan, n, c.nt);
        s = forward(&r, images, end, logits);
    }
    run_done(&r);
    if (!s && x_out)
        memcpy(x_out, r.loc[resid], sizeof(float) * (size_t)n * var_floats(m->plan, resid));
    sfq_end_compute(&c);
    sfq_free(base);
    return s;
}

sardfq_status sfq_exec_check_int(const sardfq_model *m, const float *images, int n, double *max_rel, int *steps)
{
    if (!m->ip)
        return sfq_fail(SARDFQ_E_STATE, "sfq_exec_check_int: the model has no integer form");
    sfq_compute c = sfq_begin_compute(m->n_threads);
    run r;
    sardfq_status s = run_init(&r, m, NULL, &c, n);
    const size_t floats = work_floats(m->plan, n, c.nt);
    float *base = s ? NULL : sfq_alloc_array(floats, sizeof(float));
    float *logits = s ? NULL : sfq_alloc_array((size_t)n * m->info.num_classes, sizeof(float));
    if (!s && (!base || !logits))
        s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    if (!s) {
        r.chk = m->ip;
        r.isa = m->ip->isa;
        work_carve(&r.w, base, m->plan, n, c.nt);
        s = forward(&r, images, m->plan->nsteps, logits);
    }
    sfq_end_compute(&c);
    run_done(&r);
    sfq_free(base);
    sfq_free(logits);
    if (!s) {
        *max_rel = r.chk_max;
        *steps = r.chk_steps;
    }
    return s;
}

sardfq_status sfq_exec_forward(const sardfq_model *m, const sfq_observer *obs, const float *images, int n,
                               float *logits)
{
    return run_stateless(m, obs, images, n, m->plan->nsteps, logits, -1, NULL, "sardfq_model_forward");
}

sardfq_status sfq_exec_forward_blocks(const sardfq_model *m, const sfq_observer *obs, const float *images,
                                      int n, int upto, float *x)
{
    const sfq_plan *p = m->plan;
    if (upto < 0 || upto > p->depth)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_forward_blocks: block %d out of range", upto);
    return run_stateless(m, obs, images, n, p->block_first[upto], NULL, p->block_resid[upto], x,
                         "sfq_forward_blocks");
}

/* ---- state ---------------------------------------------------------------- */

/* Make the state's buffers fit n images with flags (buffers only grow; on
 * failure nothing changes, so the previous forward stays readable). */
static sardfq_status state_grow(sardfq_state *s, size_t kept, size_t wf, int n)
{
    const sfq_plan *p = s->model->plan;
    float *nb = NULL, *nw = NULL;
    sfq_kept *nk = NULL;
    if (!s->kept && !(nk = sfq_alloc_zero(sizeof(sfq_kept) * (size_t)p->nsteps)))
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    if (s->buffer_floats < kept && !(nb = sfq_alloc_array(kept, sizeof(float)))) {
        sfq_free(nk);
        return sfq_fail(SARDFQ_E_NOMEM, "cannot allocate %zu MB of activations for %d images",
                        kept * sizeof(float) >> 20, n);
    }
    if (s->work_floats < wf && !(nw = sfq_alloc_array(wf, sizeof(float)))) {
        sfq_free(nk);
        sfq_free(nb);
        return sfq_fail(SARDFQ_E_NOMEM, "cannot allocate %zu MB of scratch for %d images",
                        wf * sizeof(float) >> 20, n);
    }
    if (nk)
        s->kept = nk;
    if (nb) {
        sfq_free(s->buffers);
        s->buffers = nb;
        s->buffer_floats = kept;
        s->n = 0; /* the kept activations are gone */
    }
    if (nw) {
        sfq_free(s->work);
        s->work = nw;
        s->work_floats = wf;
    }
    return SARDFQ_OK;
}

/* Point the state's views at its buffers for n images and flags. */
static void state_carve(sardfq_state *s, int n, uint32_t flags)
{
    const sardfq_model *m = s->model;
    const sfq_plan *p = m->plan;
    float *q = s->buffers;
#define TAKE(k) (q += (size_t)n * (k), q - (size_t)n * (k))
    s->attn = TAKE((size_t)m->info.attention_floats);
    s->feat = TAKE((size_t)m->info.num_features);
    for (int i = 0; i < p->nsteps; i++) {
        sfq_kept *k = &s->kept[i];
        size_t parts[3];
        memset(k, 0, sizeof *k);
        kept_of(p, i, flags, parts);
        if (p->steps[i].op == SFQ_OP_LAYERNORM) {
            k->xhat = parts[0] ? TAKE(parts[0]) : NULL;
            k->rstd = parts[1] ? TAKE(parts[1]) : NULL;
        } else if (p->steps[i].op == SFQ_OP_ATTENTION) {
            k->probs = parts[0] ? TAKE(parts[0]) : NULL;
            k->out = parts[1] ? TAKE(parts[1]) : NULL;
        } else if (parts[2]) {
            k->out = TAKE(parts[2]);
        }
    }
#undef TAKE
}

/* The backward and block training read the float weights of the plan
 * directly: a model that holds some only as codes (a final quantized
 * model, which has no backward) cannot run them. */
static sardfq_status check_views(const sardfq_model *m, const char *fn)
{
    if (m->n_held != m->n_params)
        return sfq_fail(SARDFQ_E_UNSUPPORTED, "%s: a final quantized model has no backward pass", fn);
    return SARDFQ_OK;
}

sardfq_status sfq_exec_forward_state(const sardfq_model *m, sardfq_state *s, const float *images, int n,
                                     uint32_t flags, float *logits)
{
    if ((flags & SARDFQ_FORWARD_BACKWARD) && check_views(m, "sardfq_model_forward_ex"))
        return SARDFQ_E_UNSUPPORTED;
    sfq_compute c = sfq_begin_compute(m->n_threads);
    run r;
    sardfq_status st = run_init(&r, m, NULL, &c, n);
    if (!st)
        st = state_grow(s, kept_floats(m, n, flags), work_floats(m->plan, n, c.nt), n);
    if (st) {
        sfq_end_compute(&c);
        return st;
    }
    s->n = 0;
    state_carve(s, n, flags);
    work_carve(&r.w, s->work, m->plan, n, c.nt);
    r.kept = s->kept;
    r.attn = flags & SARDFQ_FORWARD_ATTENTION ? s->attn : NULL;
    r.feat = s->feat;
    st = forward(&r, images, m->plan->nsteps, logits);
    run_done(&r);
    sfq_end_compute(&c);
    if (st)
        return st;
    s->n = n;
    s->flags = flags;
    s->nt = c.nt;
    return SARDFQ_OK;
}

/* ---- backward ------------------------------------------------------------ */

typedef struct {
    run r;
    const sardfq_state *s;
    unsigned char live[MAX_VARS];
    sfq_kept *kept;        /* the state's, per step (its `seeded` flags) */
    const float *dlogits, *dattn, *dao_ext;
    float *dimages;
    size_t ao_off; /* offset of the current block's dao_ext */
} bwd;

static float *grad(bwd *b, int v) { return b->r.w.slot[b->r.p->vars[v].slot]; }

/* Make v's gradient ready for step i to add to. A live one is; a dead one
 * starts at zero, except when v is the window gather of a live gradient
 * made by the step just before (the Swin block's entry): then it starts as
 * that gradient gathered, and the gather's backward puts it back instead of
 * adding (the same sum, formed in the order the kernels' fused
 * multiply-adds give when they accumulate into it). */
static float *grad_acc(bwd *b, int i, int v)
{
    const sfq_plan *p = b->r.p;
    float *g = grad(b, v);
    if (b->live[v])
        return g;
    const sfq_step *prev = i > 0 ? &p->steps[i - 1] : NULL;
    if (prev && prev->op == SFQ_OP_WINDOW_GATHER && prev->out == v && b->live[prev->in]) {
        permute(&prev->win, p->vars[v].cols, b->r.n, grad(b, prev->in), g, 0, 0, b->r.c->nt);
        b->kept[i - 1].seeded = 1;
    } else {
        memset(g, 0, sizeof(float) * (size_t)b->r.n * var_floats(p, v));
    }
    b->live[v] = 1;
    return g;
}

/* Attention backward through its points (training): dS, then the point
 * on the probabilities, then the softmax (given the probabilities before
 * their point) to dQ, dK, then the points on q, k, v. Scaled q (Swin)
 * gets the scale back after its point. */
static void attention_bwd_train(bwd *b, const sfq_step *st, const sfq_kept *k, const sfq_attn_run *a)
{
    const run *r = &b->r;
    const sfq_trainer *t = r->t;
    const int n = r->n, nt = r->c->nt, C = st->dim, Nw = st->tokens;
    const int64_t BN = (int64_t)n * r->p->vars[st->in].rows, prow = (int64_t)n * r->p->vars[st->in2].rows;
    sfq_attention_bwd_pv(a, n, nt);
    if (point_on(r, st->pt[SFQ_PT_PROBS]))
        t->point_bwd(t->ctx, st->pt[SFQ_PT_PROBS], a->dS, prow, Nw, Nw);
    const float scale = st->prescale_q ? 1.0f : st->alpha;
    const float *P = k->raw && point_on(r, st->pt[SFQ_PT_PROBS]) ? k->raw : k->probs;
    if (t->probs_bwd)
        t->probs_bwd(t->ctx, P, a->dS, prow, Nw);
    sfq_attention_bwd_qk(a, P, scale, n, nt);
    static const int qkv_pt[3] = {SFQ_PT_Q, SFQ_PT_K, SFQ_PT_V};
    for (int j = 0; j < 3; j++)
        if (point_on(r, st->pt[qkv_pt[j]]))
            t->point_bwd(t->ctx, st->pt[qkv_pt[j]], a->dqkv + (size_t)j * C, BN, C, 3 * C);
    if (st->prescale_q)
        for (int64_t row = 0; row < BN; row++)
            for (int e = 0; e < C; e++)
                a->dqkv[row * 3 * C + e] *= st->alpha;
}

static void step_bwd(bwd *b, int i)
{
    run *r = &b->r;
    const sfq_plan *p = r->p;
    const sfq_step *st = &p->steps[i];
    const sfq_compute *c = r->c;
    const int nt = c->nt, n = r->n;
    const sfq_kept *k = &b->s->kept[i];
    const sfq_var *vo = st->out >= 0 ? &p->vars[st->out] : NULL;
    const sfq_var *vi = st->in >= 0 ? &p->vars[st->in] : NULL;
    const int64_t rows = vo ? (int64_t)n * vo->rows : 0;
    if (st->op == SFQ_OP_HEAD) {
        /* dfeat = dlogits W (/ 2 per head for a distilled DeiT) */
        const int P = vi->rows, D = vi->cols, K = r->m->info.num_classes;
        float *d = grad(b, st->in);
        memset(d, 0, sizeof(float) * (size_t)n * P * D);
        if (b->dlogits) {
            const float a = P == 2 ? 0.5f : 1.0f;
            sfq_gemm(c->split, 1, 0, 0, n, D, K, a, b->dlogits, K, st->w, D, 0.0f, d, P * D);
            if (P == 2)
                sfq_gemm(c->split, 1, 0, 0, n, D, K, a, b->dlogits, K, st->w2, D, 0.0f, d + D, P * D);
        }
        b->live[st->in] = 1;
        return;
    }
    if (st->op == SFQ_OP_PATCHIFY) {
        sfq_col2im(p->chans, p->img_h, p->img_w, p->patch, p->grid_h, p->grid_w, b->dimages, n,
                   grad(b, st->out), nt);
        return;
    }
    if (!b->live[st->out]) /* no gradient reaches this step */
        return;
    float *dy = grad(b, st->out);
    const sfq_trainer *t = r->t;
    if (t && point_on(r, st->pt[SFQ_PT_OUT])) /* the point after the step comes first */
        t->point_bwd(t->ctx, st->pt[SFQ_PT_OUT], dy, rows, vo->cols, vo->cols);
    switch (st->op) {
    case SFQ_OP_LINEAR: {
        /* dW = dy^T in (when the trainer asks); d(in) (=|+=) dy W */
        const float *W = t && t->weight ? t->weight(t->ctx, st) : NULL;
        float *dW = t && t->weight_grad ? t->weight_grad(t->ctx, st) : NULL;
        W = W ? W : st->w;
        if (dW)
            sfq_gemm(c->split, 0, 1, 0, vo->cols, vi->cols, (int)rows, 1.0f, dy, vo->cols, k->in, vi->cols, 0.0f, dW,
                     vi->cols);
        const int live = b->live[st->in];
        float *dx = grad(b, st->in);
        sfq_gemm(c->split, vo->rows, 0, 0, (int)rows, vi->cols, vo->cols, 1.0f, dy, vo->cols, W, vi->cols,
                 live ? 1.0f : 0.0f, dx, vi->cols);
        b->live[st->in] = 1;
        break;
    }
    case SFQ_OP_LAYERNORM:
        sfq_layernorm_bwd(dy, k->xhat, k->rstd, st->w, grad_acc(b, i, st->in), rows, vo->cols, nt);
        break;
    case SFQ_OP_GELU: {
        float *dx = grad(b, st->in);
        if (dx != dy) {
            if (b->live[st->in]) /* (the plans give GELU one slot) */
                return;
            memcpy(dx, dy, sizeof(float) * (size_t)rows * vo->cols);
        }
        sfq_gelu_bwd(k->in, dx, rows * vo->cols, nt);
        b->live[st->in] = 1;
        break;
    }
    case SFQ_OP_PREFIX_POS: {
        /* d(tokens) (=|+=) the token rows of dx */
        const int N = vo->rows, D = vo->cols, G = vi->rows, P = N - G;
        const int live = b->live[st->in];
        float *dt = grad(b, st->in);
        for (int im = 0; im < n; im++) {
            const float *src = dy + ((size_t)im * N + P) * D;
            float *dst = dt + (size_t)im * G * D;
            if (live)
                for (size_t e = 0; e < (size_t)G * D; e++)
                    dst[e] += src[e];
            else
                memcpy(dst, src, sizeof(float) * (size_t)G * D);
        }
        b->live[st->in] = 1;
        break;
    }
    case SFQ_OP_WINDOW_GATHER:
        /* d(raster) += scatter(d(window)); a seeded d(window) holds the sum */
        if (b->kept[i].seeded)
            permute(&st->win, vo->cols, n, dy, grad(b, st->in), 1, 0, nt);
        else
            permute(&st->win, vo->cols, n, dy, grad_acc(b, i, st->in), 1, 1, nt);
        break;
    case SFQ_OP_WINDOW_SCATTER_ADD: {
        /* d(window) (=) gather(d(raster)); d(raster) passes */
        if (b->live[st->in]) /* (never in the plans: the input is fresh) */
            return;
        permute(&st->win, vo->cols, n, dy, grad(b, st->in), 0, 0, nt);
        b->live[st->in] = 1;
        return; /* the output's gradient stays live */
    }
    case SFQ_OP_MERGE_GATHER:
        if (b->live[st->in])
            return;
        merge(&st->win, vi->cols, n, grad(b, st->in), dy, 1, nt);
        b->live[st->in] = 1;
        break;
    case SFQ_OP_ATTENTION: {
        if (b->dao_ext) {
            const float *e = b->dao_ext + b->ao_off;
            for (size_t e2 = 0; e2 < (size_t)rows * vo->cols; e2++)
                dy[e2] += e[e2];
        }
        sfq_attn_run a = {.st = st, .qkv = k->in, .probs = k->probs, .dao = dy, .dattn = b->dattn,
                          .T = p->readback_floats, .dqkv = grad(b, st->in), .dS = grad(b, st->in2),
                          .scratch = r->w.scratch, .chunk = r->w.chunk};
        if (t)
            attention_bwd_train(b, st, k, &a);
        else
            sfq_attention_bwd(&a, n, nt);
        b->live[st->in] = 1;
        break;
    }
    case SFQ_OP_SELECT_PREFIX: {
        const int P = vo->rows, N = vi->rows, D = vo->cols;
        float *dx = grad_acc(b, i, st->in);
        for (int im = 0; im < n; im++) {
            float *dst = dx + (size_t)im * N * D;
            const float *src = dy + (size_t)im * P * D;
            for (size_t e = 0; e < (size_t)P * D; e++)
                dst[e] += src[e];
        }
        break;
    }
    case SFQ_OP_MEAN_TOKENS: {
        const int N = vi->rows, C = vi->cols;
        if (b->live[st->in])
            return;
        float *dx = grad(b, st->in);
        for (int im = 0; im < n; im++)
            for (int tk = 0; tk < N; tk++)
                for (int d = 0; d < C; d++)
                    dx[((size_t)im * N + tk) * C + d] = dy[(size_t)im * C + d] / (float)N;
        b->live[st->in] = 1;
        break;
    }
    default:
        break;
    }
    if (!st->accumulate)
        b->live[st->out] = 0; /* the step wrote it: its gradient ends here */
}

size_t sfq_ao_offset(const sardfq_model *m, int n, int block)
{
    const sfq_plan *p = m->plan;
    size_t off = 0;
    for (int i = 0; i < p->nsteps; i++)
        if (p->steps[i].op == SFQ_OP_ATTENTION && p->steps[i].block < block)
            off += (size_t)n * var_floats(p, p->steps[i].out);
    return off;
}

sardfq_status sfq_exec_backward(const sardfq_model *m, sardfq_state *s, const float *dlogits,
                                const float *dattn, const float *dao, float *dimages)
{
    /* the work layout (and its per-thread scratch) is the forward's */
    sfq_compute c = sfq_begin_compute(m->n_threads);
    c.nt = s->nt;
    bwd b;
    memset(b.live, 0, sizeof b.live);
    sardfq_status st = run_init(&b.r, m, NULL, &c, s->n);
    if (st) {
        sfq_end_compute(&c);
        return st;
    }
    work_carve(&b.r.w, s->work, m->plan, s->n, s->nt);
    b.s = s;
    b.kept = s->kept;
    for (int i = 0; i < m->plan->nsteps; i++)
        s->kept[i].seeded = 0;
    b.dlogits = dlogits;
    b.dattn = dattn;
    b.dao_ext = dao;
    b.dimages = dimages;
    const sfq_plan *p = m->plan;
    for (int i = p->nsteps - 1; i >= 0; i--) {
        if (p->steps[i].op == SFQ_OP_ATTENTION && dao)
            b.ao_off = sfq_ao_offset(m, s->n, p->steps[i].block);
        step_bwd(&b, i);
    }
    sfq_end_compute(&c);
    return SARDFQ_OK;
}

/* ---- training a block ------------------------------------------------------ */

void sfq_block_steps(const sfq_plan *p, int l, int *first, int *end)
{
    int e = p->block_first[l];
    *first = e;
    while (e < p->nsteps && p->steps[e].block == l)
        e++;
    *end = e;
}

/* Per image: the residual stream, and every step's output and what its
 * backward reads (the probabilities twice: before and after their point). */
static size_t train_floats(const sfq_plan *p, int l, int first, int end)
{
    size_t per = var_floats(p, p->block_resid[l]);
    for (int i = first; i < end; i++) {
        const sfq_step *st = &p->steps[i];
        if (st->out >= 0 && !st->accumulate)
            per += var_floats(p, st->out);
        if (st->op == SFQ_OP_LAYERNORM)
            per += var_floats(p, st->out) + (size_t)p->vars[st->out].rows;
        if (st->op == SFQ_OP_ATTENTION)
            per += 2 * var_floats(p, st->in2);
    }
    return per;
}

sardfq_status sfq_exec_block_forward(const sardfq_model *m, sardfq_state *s, const sfq_trainer *t, int l,
                                     const float *x_in, int n, const float **x_out)
{
    const sfq_plan *p = m->plan;
    if (l < 0 || l >= p->depth)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "block %d out of range", l);
    if (check_views(m, "sfq_exec_block_forward"))
        return SARDFQ_E_UNSUPPORTED;
    int first, end;
    sfq_block_steps(p, l, &first, &end);
    const int resid = p->block_resid[l];
    sfq_compute c = sfq_begin_compute(m->n_threads);
    run r;
    sardfq_status st = run_init(&r, m, NULL, &c, n);
    if (!st)
        st = state_grow(s, (size_t)n * train_floats(p, l, first, end), work_floats(p, n, c.nt), n);
    if (st) {
        sfq_end_compute(&c);
        return st;
    }
    s->n = 0;
    float *q = s->buffers;
#define TAKE(k) (q += (size_t)n * (k), q - (size_t)n * (k))
    float *x = TAKE(var_floats(p, resid));
    for (int i = 0; i < p->nsteps; i++)
        memset(&s->kept[i], 0, sizeof s->kept[i]);
    for (int i = first; i < end; i++) {
        const sfq_step *sp = &p->steps[i];
        sfq_kept *k = &s->kept[i];
        if (sp->out >= 0 && !sp->accumulate)
            k->out = TAKE(var_floats(p, sp->out));
        if (sp->op == SFQ_OP_LAYERNORM) {
            k->xhat = TAKE(var_floats(p, sp->out));
            k->rstd = TAKE((size_t)p->vars[sp->out].rows);
        }
        if (sp->op == SFQ_OP_ATTENTION) {
            k->probs = TAKE(var_floats(p, sp->in2));
            k->raw = TAKE(var_floats(p, sp->in2));
        }
    }
#undef TAKE
    memcpy(x, x_in, sizeof(float) * (size_t)n * var_floats(p, resid));
    work_carve(&r.w, s->work, p, n, c.nt);
    r.t = t;
    r.kept = s->kept;
    r.loc[resid] = x;
    for (int i = first; i < end && !st; i++)
        st = step_fwd(&r, i, NULL, NULL);
    run_done(&r);
    sfq_end_compute(&c);
    if (st)
        return st;
    s->n = n;
    s->flags = SFQ_FORWARD_TRAIN;
    s->nt = c.nt;
    s->block = l;
    *x_out = r.loc[resid];
    return SARDFQ_OK;
}

const float *sfq_exec_block_probs(const sardfq_model *m, const sardfq_state *s, int64_t *rows, int *cols)
{
    if (!s->n || s->flags != SFQ_FORWARD_TRAIN)
        return NULL;
    const sfq_plan *p = m->plan;
    int first, end;
    sfq_block_steps(p, s->block, &first, &end);
    for (int i = first; i < end; i++) {
        const sfq_step *st = &p->steps[i];
        if (st->op != SFQ_OP_ATTENTION)
            continue;
        const sfq_kept *k = &s->kept[i];
        const int pt = st->pt[SFQ_PT_PROBS];
        const int on = pt >= 0 && m->q && m->q->acts[pt].kind != SFQ_QK_OFF;
        *rows = (int64_t)s->n * p->vars[st->in2].rows;
        *cols = st->tokens;
        return on ? k->raw : k->probs;
    }
    return NULL;
}

sardfq_status sfq_exec_block_backward(const sardfq_model *m, sardfq_state *s, const sfq_trainer *t,
                                      const float *dout)
{
    if (!s->n || s->flags != SFQ_FORWARD_TRAIN)
        return sfq_fail(SARDFQ_E_STATE, "block backward without a block forward");
    const sfq_plan *p = m->plan;
    int first, end;
    sfq_block_steps(p, s->block, &first, &end);
    sfq_compute c = sfq_begin_compute(m->n_threads);
    c.nt = s->nt;
    bwd b;
    memset(&b, 0, sizeof b);
    sardfq_status st = run_init(&b.r, m, NULL, &c, s->n);
    if (st) {
        sfq_end_compute(&c);
        return st;
    }
    work_carve(&b.r.w, s->work, p, s->n, s->nt);
    b.r.t = t;
    b.s = s;
    b.kept = s->kept;
    const int resid = p->block_resid[s->block];
    memcpy(grad(&b, resid), dout, sizeof(float) * (size_t)s->n * var_floats(p, resid));
    b.live[resid] = 1;
    for (int i = end - 1; i >= first; i--)
        step_bwd(&b, i);
    sfq_end_compute(&c);
    return SARDFQ_OK;
}

sardfq_status sfq_exec_forward_through(const sardfq_model *m, const float *images, int n, int l, float *x)
{
    const sfq_plan *p = m->plan;
    if (l < 0 || l >= p->depth)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "block %d out of range", l);
    int first, end;
    sfq_block_steps(p, l, &first, &end);
    return run_stateless(m, NULL, images, n, end, NULL, p->block_resid[l], x, "sfq_exec_forward_through");
}
