/* recon.c - block reconstruction (BRECQ / QDrop style) of a RepQ-calibrated
 * model: for each transformer block in order, learn the rounding of its four
 * weights (AdaRound) and the step sizes of its uniform activation quantizers
 * (LSQ) so that the quantized block's output on the calibration images,
 * fed with the quantized model's input to that block, approaches the FP
 * model's output of the block:
 *
 *   loss = sum over tokens, mean over images and channels of
 *          (x_out_quant - x_out_fp)^2
 *        + lambda * sum_w (1 - |2 h(V) - 1|^beta)           (after warm-up)
 *
 * AdaRound: w_hat = s (clamp(floor(w/s) + h(V) + z, 0, 2^b - 1) - z) with
 * the rectified sigmoid h(V) = clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1),
 * zeta = 1.1, gamma = -0.1, V initialised so h(V) = frac(w/s); at the end
 * h is hardened to V >= 0. lambda = 0.01, beta anneals 20 -> 2 after 20% of
 * the iterations (BRECQ's defaults). Adam on V with lr 1e-3 (BRECQ's
 * default for the rounding variables), Adam on the step sizes with
 * params.recon_lr (4e-5, SARDFQ's setting) and cosine decay to 0.
 *
 * Gradients use the straight-through estimator for rounding: an activation
 * quantizer passes the gradient where it does not clip, and its step size
 * s gets LSQ's (round(x/s) - x/s) there and (q - z) where it clips. This is
 * exactly the gradient of the "frozen" surrogate that keeps each element's
 * rounding offset round(x/s0) - x/s0 fixed; the tests check the backward
 * against finite differences of that surrogate (recon_mode FROZEN). The
 * log-sqrt2 softmax quantizer keeps its scale; its STE passes the gradient
 * below the largest level.
 *
 * The block itself is the model's plan (ViT and Swin alike): the executor
 * runs its steps with the AdaRound weights and these quantizer nodes in
 * place (exec.h, sfq_trainer) and returns the gradients; this file holds
 * only the quantizers' maths and the bookkeeping. */
#include "recon.h"

#include "exec.h"

#include <math.h>
#include <string.h>

#define ZETA 1.1f
#define GAMMA (-0.1f)

/* ---- quantizer nodes ---------------------------------------------------- */

/* Clamp an integer level to [0, top]; 1 if it was inside. */
static int clamp_level(float *lv, float top)
{
    if (*lv < 0.0f) {
        *lv = 0.0f;
        return 0;
    }
    if (*lv > top) {
        *lv = top;
        return 0;
    }
    return 1;
}

/* Uniform fake quantization of x[n] in place under u (scale may be the
 * learned one). NORMAL mode records, per element, whether it was clipped
 * (pass = 0) and off = round(x/s) - x/s, or the clamped level if clipped;
 * FROZEN mode replays those decisions at the current scale (the
 * surrogate: x + off s where it passed, (level - z) s where it clipped),
 * whose exact derivative is the LSQ / STE gradient; ds = d xhat / d s. */
static void uq_node(const sfq_uq *u, float *x, size_t n, int64_t ld, int cols, float *off, uint8_t *pass,
                    float *ds, int frozen)
{
    const float s = u->scale, z = u->zero, top = (float)((1 << u->bits) - 1);
    size_t k = 0;
    const size_t rows = n / (size_t)cols;
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++, k++) {
            float *p = x + r * (size_t)ld + c;
            const float t = *p / s;
            if (frozen) {
                *p = pass[k] ? (t + off[k]) * s : (off[k] - z) * s;
                ds[k] = pass[k] ? off[k] : off[k] - z;
                continue;
            }
            const float rr = rintf(t);
            float lv = rr + z;
            const int ok = clamp_level(&lv, top);
            *p = (lv - z) * s;
            pass[k] = (uint8_t)ok;
            off[k] = ok ? rr - t : lv;
            ds[k] = ok ? rr - t : lv - z;
        }
}

/* Backward of a uniform node: g[k] (strided like x) *= pass; returns
 * sum g * ds (the step size's gradient). */
static double uq_back(float *g, size_t n, int64_t ld, int cols, const uint8_t *pass, const float *ds)
{
    double acc = 0;
    size_t k = 0;
    const size_t rows = n / (size_t)cols;
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++, k++) {
            float *p = g + r * (size_t)ld + c;
            acc += (double)*p * ds[k];
            if (!pass[k])
                *p = 0.0f;
        }
    return acc;
}

/* log-sqrt2 node on probabilities (scale fixed): frozen mode adds the stored
 * offset (pass elements) or returns the stored value (clipped ones). */
static void lq_node(const sfq_lq *lq, float *x, size_t n, float *off, uint8_t *pass, int frozen)
{
    for (size_t k = 0; k < n; k++) {
        if (frozen) {
            x[k] = pass[k] ? x[k] + off[k] : off[k];
            continue;
        }
        const float y = sfq_lq_apply(lq, x[k]);
        pass[k] = (uint8_t)(x[k] <= lq->scale);
        off[k] = pass[k] ? y - x[k] : y;
        x[k] = y;
    }
}

/* ---- AdaRound ------------------------------------------------------------ */

static float hsig(float v)
{
    const float h = 1.0f / (1.0f + expf(-v)) * (ZETA - GAMMA) + GAMMA;
    return h < 0.0f ? 0.0f : h > 1.0f ? 1.0f : h;
}

static float hsig_grad(float v)
{
    const float sg = 1.0f / (1.0f + expf(-v)), h = sg * (ZETA - GAMMA) + GAMMA;
    return h <= 0.0f || h >= 1.0f ? 0.0f : (ZETA - GAMMA) * sg * (1.0f - sg);
}

void sfq_ada_init(sfq_ada *a, const float *w, const sfq_uq *rows, int nrows, int cols)
{
    for (int r = 0; r < nrows; r++)
        for (int c = 0; c < cols; c++) {
            const size_t k = (size_t)r * cols + c;
            const float t = w[k] / rows[r].scale, fl = floorf(t);
            float rest = t - fl;
            a->base[k] = fl;
            /* h(V) = rest: sigmoid(V) = (rest - gamma) / (zeta - gamma) */
            const float sg = (rest - GAMMA) / (ZETA - GAMMA);
            a->v[k] = logf(sg / (1.0f - sg));
        }
}

void sfq_ada_weight(const sfq_ada *a, const sfq_uq *rows, int nrows, int cols, int hard, float *out,
                    float *dwdv)
{
    for (int r = 0; r < nrows; r++) {
        const float s = rows[r].scale, z = rows[r].zero, top = (float)((1 << rows[r].bits) - 1);
        for (int c = 0; c < cols; c++) {
            const size_t k = (size_t)r * cols + c;
            const float h = hard ? (a->v[k] >= 0.0f ? 1.0f : 0.0f) : hsig(a->v[k]);
            float lv = a->base[k] + h + z;
            const int ok = clamp_level(&lv, top);
            out[k] = (lv - z) * s;
            if (dwdv)
                dwdv[k] = ok ? s * hsig_grad(a->v[k]) : 0.0f;
        }
    }
}

/* Rounding regulariser and its gradient added into gv. */
double sfq_ada_reg(const sfq_ada *a, size_t n, float beta, float lambda, float *gv)
{
    double loss = 0;
    for (size_t k = 0; k < n; k++) {
        const float h = hsig(a->v[k]), d = 2.0f * h - 1.0f, ad = fabsf(d);
        loss += 1.0 - pow(ad, beta);
        if (gv && ad > 0.0f)
            gv[k] += -lambda * beta * powf(ad, beta - 1.0f) * (d > 0 ? 1.0f : -1.0f) * 2.0f * hsig_grad(a->v[k]);
    }
    return lambda * loss;
}

/* ---- the block, run by the executor ---------------------------------------- */

/* Quantizer slots of a block (index into rb->act). */
enum { RQ_QKV_IN, RQ_Q, RQ_K, RQ_V, RQ_PROJ_IN, RQ_FC1_IN, RQ_FC2_IN, RQ_COUNT };
static const int RQ_POINT[RQ_COUNT] = {SFQ_AP_QKV_IN, SFQ_AP_Q, SFQ_AP_K, SFQ_AP_V,
                                       SFQ_AP_PROJ_IN, SFQ_AP_FC1_IN, SFQ_AP_FC2_IN};

int sfq_recon_point(int slot) { return RQ_POINT[slot]; }

static int slot_of(const sfq_rblock *rb, int pt)
{
    for (int s = 0; s < RQ_COUNT; s++)
        if (rb->pt[s] == pt)
            return s;
    return -1;
}

static int weight_of(const sfq_rblock *rb, const sfq_step *st)
{
    for (int k = 0; k < 4; k++)
        if (st->lin == rb->lin[k])
            return k;
    return -1;
}

/* The trainer: slots quantize with their (learned) step sizes and keep the
 * STE's record; the probabilities with the log-sqrt2 quantizer; any other
 * point of the block as calibrated. */
static sardfq_status t_point_fwd(void *ctx, int pt, float *x, int64_t rows, int cols, int64_t ld, int nt)
{
    sfq_rblock *rb = ctx;
    const size_t n = (size_t)rows * (size_t)cols;
    const int s = slot_of(rb, pt);
    if (s >= 0 && rb->on[s]) {
        if (n > rb->slot_floats[s])
            return sfq_fail(SARDFQ_E_INTERNAL, "block reconstruction: slot %d sees %zu values", s, n);
        uq_node(&rb->act[s], x, n, ld, cols, rb->off[s], rb->pass[s], rb->ds[s], rb->frozen);
        return SARDFQ_OK;
    }
    if (pt == rb->pt_probs && rb->log_on) {
        if (n > rb->probs_floats || ld != cols)
            return sfq_fail(SARDFQ_E_INTERNAL, "block reconstruction: the probabilities do not fit");
        lq_node(&rb->lq, x, n, rb->loff, rb->lpass, rb->frozen);
        return SARDFQ_OK;
    }
    sfq_qact_apply(&rb->m->q->acts[pt], NULL, x, rows, cols, ld, nt);
    return SARDFQ_OK;
}

static void t_point_bwd(void *ctx, int pt, float *g, int64_t rows, int cols, int64_t ld)
{
    sfq_rblock *rb = ctx;
    const size_t n = (size_t)rows * (size_t)cols;
    const int s = slot_of(rb, pt);
    if (s >= 0 && rb->on[s]) {
        rb->gs[s] += uq_back(g, n, ld, cols, rb->pass[s], rb->ds[s]);
    } else if (pt == rb->pt_probs && rb->log_on) {
        for (size_t k = 0; k < n; k++)
            if (!rb->lpass[k])
                g[k] = 0.0f;
    }
}

static const float *t_weight(void *ctx, const sfq_step *st)
{
    const sfq_rblock *rb = ctx;
    const int k = weight_of(rb, st);
    return k >= 0 && rb->wbits[k] ? rb->wq[k] : NULL;
}

static float *t_weight_grad(void *ctx, const sfq_step *st)
{
    sfq_rblock *rb = ctx;
    const int k = weight_of(rb, st);
    return k >= 0 && rb->wbits[k] ? rb->gw[k] : NULL;
}

/* KL(t || p) summed over the rows, with dp (may be NULL) = c d/dp of it. */
static double attn_kl(const float *t, const float *p, int64_t rows, int cols, double c, float *dp)
{
    double sum = 0;
    const size_t n = (size_t)rows * (size_t)cols;
    for (size_t k = 0; k < n; k++) {
        if (!(t[k] > 0.0f))
            continue;
        const double pk = p[k] > 1e-30f ? p[k] : 1e-30;
        sum += (double)t[k] * (log((double)t[k]) - log(pk));
        if (dp)
            dp[k] -= (float)(c * t[k] / pk);
    }
    return sum;
}

static void t_probs_bwd(void *ctx, const float *P, float *dS, int64_t rows, int cols)
{
    sfq_rblock *rb = ctx;
    if (rb->attn_w > 0 && rb->ptgt && rows == rb->prows && cols == rb->pcols)
        attn_kl(rb->ptgt, P, rows, cols, (double)rb->attn_w / (double)rows, dS);
}

static sfq_trainer trainer(sfq_rblock *rb)
{
    sfq_trainer t = {t_point_fwd, t_point_bwd, t_weight, t_weight_grad, t_probs_bwd, rb};
    return t;
}

sardfq_status sfq_rblock_set_attn_target(sfq_rblock *rb, float w, const float *target, int64_t rows, int cols)
{
    if (w > 0 && (!target || rows <= 0 || cols <= 0 || (size_t)rows * (size_t)cols != rb->probs_floats))
        return sfq_fail(SARDFQ_E_SHAPE, "block reconstruction: the attention target has %lld x %d values, the "
                                        "block %zu", (long long)rows, cols, rb->probs_floats);
    rb->attn_w = w > 0 ? w : 0.0f;
    rb->ptgt = w > 0 ? target : NULL;
    rb->prows = rows;
    rb->pcols = cols;
    return SARDFQ_OK;
}

sardfq_status sfq_rblock_forward(sfq_rblock *rb, const float *x, const float *target, int frozen, double *loss)
{
    const sardfq_model_info *cfg = &rb->m->info;
    for (int k = 0; k < 4; k++)
        if (rb->wbits[k])
            sfq_ada_weight(&rb->ada[k], rb->wrows[k], sfq_qlin_rows(cfg, rb->lin[k]), sfq_qlin_cols(cfg, rb->lin[k]),
                           rb->hard, rb->wq[k], rb->dwdv[k]);
    rb->frozen = frozen;
    const sfq_trainer t = trainer(rb);
    sardfq_status s = sfq_exec_block_forward(rb->m, rb->st, &t, rb->l, x, rb->n, &rb->out);
    if (s)
        return s;
    const sfq_plan *p = rb->m->plan;
    const int C = p->vars[p->block_resid[rb->l]].cols;
    double sum = 0;
    for (size_t i = 0; i < rb->out_floats; i++) {
        const double d = (double)rb->out[i] - target[i];
        sum += d * d;
    }
    *loss = sum / ((double)rb->n * C);
    rb->attn_loss = 0;
    if (rb->attn_w > 0) {
        int64_t rows;
        int cols;
        const float *P = sfq_exec_block_probs(rb->m, rb->st, &rows, &cols);
        if (!P || rows != rb->prows || cols != rb->pcols)
            return sfq_fail(SARDFQ_E_INTERNAL, "block reconstruction: the block's probabilities do not match "
                                               "the attention target");
        rb->attn_loss = attn_kl(rb->ptgt, P, rows, cols, 0, NULL) / (double)rows;
        *loss += rb->attn_w * rb->attn_loss;
    }
    return SARDFQ_OK;
}

sardfq_status sfq_rblock_backward(sfq_rblock *rb, const float *target)
{
    const sfq_plan *p = rb->m->plan;
    const int C = p->vars[p->block_resid[rb->l]].cols;
    const double norm = 2.0 / ((double)rb->n * C);
    for (size_t i = 0; i < rb->out_floats; i++)
        rb->dout[i] = (float)(norm * ((double)rb->out[i] - target[i]));
    for (int s = 0; s < RQ_COUNT; s++)
        rb->gs[s] = 0;
    const sfq_trainer t = trainer(rb);
    sardfq_status s = sfq_exec_block_backward(rb->m, rb->st, &t, rb->dout);
    if (s)
        return s;
    for (int k = 0; k < 4; k++)
        if (rb->wbits[k])
            for (size_t i = 0; i < rb->wsize[k]; i++)
                rb->gv[k][i] = rb->gw[k][i] * rb->dwdv[k][i];
    return SARDFQ_OK;
}

/* ---- set-up and memory ------------------------------------------------------ */

void sfq_rblock_free(sfq_rblock *rb)
{
    if (!rb)
        return;
    sardfq_state_free(rb->st);
    sfq_free(rb->mem);
    memset(rb, 0, sizeof *rb);
}

/* Values the block's points see for n images: each slot's, the
 * probabilities'. */
static void point_sizes(sfq_rblock *rb)
{
    const sfq_plan *p = rb->m->plan;
    int first, end;
    sfq_block_steps(p, rb->l, &first, &end);
    for (int i = first; i < end; i++) {
        const sfq_step *st = &p->steps[i];
        for (int j = 0; j < SFQ_PT_COUNT; j++) {
            if (st->pt[j] < 0)
                continue;
            size_t f = (size_t)rb->n * (size_t)p->vars[st->out].rows * (size_t)p->vars[st->out].cols;
            if (st->op == SFQ_OP_ATTENTION && (j == SFQ_PT_Q || j == SFQ_PT_K || j == SFQ_PT_V))
                f = (size_t)rb->n * (size_t)p->vars[st->in].rows * (size_t)st->dim;
            else if (st->op == SFQ_OP_ATTENTION && (j == SFQ_PT_SCORES || j == SFQ_PT_PROBS))
                f = (size_t)rb->n * (size_t)p->vars[st->in2].rows * (size_t)p->vars[st->in2].cols;
            const int s = slot_of(rb, st->pt[j]);
            if (s >= 0)
                rb->slot_floats[s] = f;
            if (st->pt[j] == rb->pt_probs)
                rb->probs_floats = f;
        }
    }
    rb->out_floats = (size_t)rb->n * (size_t)p->vars[p->block_resid[rb->l]].rows *
                     (size_t)p->vars[p->block_resid[rb->l]].cols;
}

sardfq_status sfq_rblock_setup(sfq_rblock *rb, const sardfq_model *m, const sardfq_model *fp, int l, int n)
{
    const sardfq_model_info *cfg = &m->info;
    memset(rb, 0, sizeof *rb);
    rb->m = m;
    rb->l = l;
    rb->n = n;
    for (int s = 0; s < RQ_COUNT; s++) {
        rb->pt[s] = sfq_qpoint_index(l, RQ_POINT[s]);
        const sfq_qact *a = &m->q->acts[rb->pt[s]];
        rb->on[s] = a->kind == SFQ_QK_UNIFORM;
        rb->act[s] = a->u;
    }
    rb->pt_probs = sfq_qpoint_index(l, SFQ_AP_PROBS);
    rb->log_on = m->q->acts[rb->pt_probs].kind == SFQ_QK_LOG;
    rb->lq = m->q->acts[rb->pt_probs].lq;
    point_sizes(rb);
    size_t floats = rb->out_floats + 2 * rb->probs_floats + 16;
    for (int k = 0; k < 4; k++) {
        rb->lin[k] = sfq_qlin_index(l, k);
        const sfq_qweight *qw = &m->q->lin[rb->lin[k]];
        rb->wbits[k] = qw->bits;
        rb->wrows[k] = qw->rows;
        rb->wsize[k] = (size_t)sfq_qlin_rows(cfg, rb->lin[k]) * (size_t)sfq_qlin_cols(cfg, rb->lin[k]);
        floats += 6 * rb->wsize[k];
    }
    for (int s = 0; s < RQ_COUNT; s++)
        floats += 3 * rb->slot_floats[s] + 4;
    rb->mem = sfq_alloc_array(floats, sizeof(float));
    sardfq_status st = rb->mem ? sardfq_state_create(m, &rb->st) : SARDFQ_E_NOMEM;
    if (st) {
        sfq_rblock_free(rb);
        return sfq_fail(SARDFQ_E_NOMEM, "block reconstruction: cannot allocate %zu MB", floats * 4 >> 20);
    }
    float *p = rb->mem;
#define TAKE(k) (p += (k), p - (k))
    rb->dout = TAKE(rb->out_floats);
    rb->loff = TAKE(rb->probs_floats);
    rb->lpass = (uint8_t *)TAKE(rb->probs_floats / 4 + 1);
    for (int k = 0; k < 4; k++) {
        rb->wq[k] = TAKE(rb->wsize[k]);
        rb->gw[k] = TAKE(rb->wsize[k]);
        rb->gv[k] = TAKE(rb->wsize[k]);
        rb->dwdv[k] = TAKE(rb->wsize[k]);
        rb->ada[k].v = TAKE(rb->wsize[k]);
        rb->ada[k].base = TAKE(rb->wsize[k]);
    }
    for (int s = 0; s < RQ_COUNT; s++) {
        rb->off[s] = TAKE(rb->slot_floats[s]);
        rb->ds[s] = TAKE(rb->slot_floats[s]);
        rb->pass[s] = (uint8_t *)TAKE(rb->slot_floats[s] / 4 + 1);
    }
#undef TAKE
    for (int k = 0; k < 4; k++)
        if (rb->wbits[k])
            sfq_ada_init(&rb->ada[k], sfq_qlin_weight(fp, rb->lin[k]), rb->wrows[k], sfq_qlin_rows(cfg, rb->lin[k]),
                         sfq_qlin_cols(cfg, rb->lin[k]));
    return SARDFQ_OK;
}
