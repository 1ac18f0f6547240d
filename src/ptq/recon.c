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
 * below the largest level. */
#include "recon.h"

#include "vit.h"
#include "vmath.h"

#include <cblas.h>
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

/* ---- the block ----------------------------------------------------------- */

static void gemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                    int ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                    int ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                    int ldc)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void add_bias(float *y, const float *b, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            y[(size_t)r * cols + c] += b[c];
}

/* Quantizer slots of a block (index into rb->act). */
enum { RQ_QKV_IN, RQ_Q, RQ_K, RQ_V, RQ_PROJ_IN, RQ_FC1_IN, RQ_FC2_IN, RQ_COUNT };
static const int RQ_POINT[RQ_COUNT] = {SFQ_AP_QKV_IN, SFQ_AP_Q, SFQ_AP_K, SFQ_AP_V,
                                       SFQ_AP_PROJ_IN, SFQ_AP_FC1_IN, SFQ_AP_FC2_IN};

int sfq_recon_point(int slot) { return RQ_POINT[slot]; }

/* Sizes. */
static void dims(const sfq_rblock *rb, int *R, int *D, int *M, int *N, int *H, int *hd)
{
    *R = rb->n * rb->cfg->num_tokens;
    *D = rb->cfg->embed_dim;
    *M = rb->cfg->mlp_hidden;
    *N = rb->cfg->num_tokens;
    *H = rb->cfg->num_heads;
    *hd = rb->cfg->head_dim;
}

/* One uniform slot over x (rows x cols, stride ld). */
static void slot_fwd(sfq_rblock *rb, int slot, float *x, int rows, int cols, int ld, int frozen)
{
    if (!rb->on[slot])
        return;
    uq_node(&rb->act[slot], x, (size_t)rows * cols, ld, cols, rb->off[slot], rb->pass[slot], rb->ds[slot], frozen);
}

static void slot_back(sfq_rblock *rb, int slot, float *g, int rows, int cols, int ld)
{
    if (!rb->on[slot])
        return;
    rb->gs[slot] += uq_back(g, (size_t)rows * cols, ld, cols, rb->pass[slot], rb->ds[slot]);
}

double sfq_rblock_forward(sfq_rblock *rb, const float *x, const float *target, int frozen)
{
    int R, D, M, N, H, hd;
    dims(rb, &R, &D, &M, &N, &H, &hd);
    const sfq_rblock_w *w = &rb->w;
    float *ws[4] = {rb->wq[0], rb->wq[1], rb->wq[2], rb->wq[3]};
    for (int k = 0; k < 4; k++) {
        const int rows = k == 0 ? 3 * D : k == 2 ? M : D, cols = k == 3 ? M : D;
        if (rb->wbits[k])
            sfq_ada_weight(&rb->ada[k], rb->wrows[k], rows, cols, rb->hard, ws[k], rb->dwdv[k]);
        else
            memcpy(ws[k], w->w[k], sizeof(float) * (size_t)rows * cols);
    }
    /* LN1 -> qkv input */
    sfq_layernorm_fwd(x, w->ln1_w, w->ln1_b, rb->h1, NULL, NULL, R, D, rb->cfg->ln_eps, 1);
    slot_fwd(rb, RQ_QKV_IN, rb->h1, R, D, D, frozen);
    for (int r = 0; r < R; r++)
        memcpy(rb->qkv + (size_t)r * 3 * D, w->b[0], sizeof(float) * 3 * (size_t)D);
    gemm_nt(R, 3 * D, D, rb->h1, D, ws[0], D, 1.0f, rb->qkv, 3 * D);
    slot_fwd(rb, RQ_Q, rb->qkv, R, D, 3 * D, frozen);
    slot_fwd(rb, RQ_K, rb->qkv + D, R, D, 3 * D, frozen);
    slot_fwd(rb, RQ_V, rb->qkv + 2 * D, R, D, 3 * D, frozen);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < rb->n; b++)
        for (int h = 0; h < H; h++) {
            const float *q = rb->qkv + (size_t)b * N * 3 * D + (size_t)h * hd;
            float *S = rb->probs + ((size_t)b * H + h) * N * N;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, hd, scale, q, 3 * D, q + D, 3 * D, 0.0f, S, N);
        }
    sfq_softmax_fwd(rb->probs, (int64_t)rb->n * H * N, N, 1);
    memcpy(rb->pq, rb->probs, sizeof(float) * (size_t)rb->n * H * N * N);
    if (rb->log_on)
        lq_node(&rb->lq, rb->pq, (size_t)rb->n * H * N * N, rb->loff, rb->lpass, frozen);
    for (int b = 0; b < rb->n; b++)
        for (int h = 0; h < H; h++) {
            const float *v = rb->qkv + (size_t)b * N * 3 * D + 2 * D + (size_t)h * hd;
            gemm_nn(N, hd, N, rb->pq + ((size_t)b * H + h) * N * N, N, v, 3 * D, 0.0f,
                    rb->ao + (size_t)b * N * D + (size_t)h * hd, D);
        }
    slot_fwd(rb, RQ_PROJ_IN, rb->ao, R, D, D, frozen);
    memcpy(rb->x1, x, sizeof(float) * (size_t)R * D);
    gemm_nt(R, D, D, rb->ao, D, ws[1], D, 1.0f, rb->x1, D);
    add_bias(rb->x1, w->b[1], R, D);
    sfq_layernorm_fwd(rb->x1, w->ln2_w, w->ln2_b, rb->h2, rb->xhat2, rb->rstd2, R, D, rb->cfg->ln_eps, 1);
    slot_fwd(rb, RQ_FC1_IN, rb->h2, R, D, D, frozen);
    for (int r = 0; r < R; r++)
        memcpy(rb->pre + (size_t)r * M, w->b[2], sizeof(float) * (size_t)M);
    gemm_nt(R, M, D, rb->h2, D, ws[2], D, 1.0f, rb->pre, M);
    sfq_gelu_fwd(rb->pre, rb->g, (int64_t)R * M, 1);
    slot_fwd(rb, RQ_FC2_IN, rb->g, R, M, M, frozen);
    memcpy(rb->out, rb->x1, sizeof(float) * (size_t)R * D);
    gemm_nt(R, D, M, rb->g, M, ws[3], M, 1.0f, rb->out, D);
    add_bias(rb->out, w->b[3], R, D);
    double loss = 0;
    for (size_t i = 0; i < (size_t)R * D; i++) {
        const double d = (double)rb->out[i] - target[i];
        loss += d * d;
    }
    return loss / ((double)rb->n * D);
}

void sfq_rblock_backward(sfq_rblock *rb, const float *target)
{
    int R, D, M, N, H, hd;
    dims(rb, &R, &D, &M, &N, &H, &hd);
    const size_t RD = (size_t)R * D;
    for (int s = 0; s < RQ_COUNT; s++)
        rb->gs[s] = 0;
    float *d1 = rb->gbuf, *d2 = rb->gbuf + RD; /* dx1/dout, scratch */
    const double norm = 2.0 / ((double)rb->n * D);
    for (size_t i = 0; i < RD; i++)
        d1[i] = (float)(norm * ((double)rb->out[i] - target[i]));
    /* fc2: dW3 = d1^T g, dg = d1 W3 */
    gemm_tn(D, M, R, d1, D, rb->g, M, 0.0f, rb->gw[3], M);
    gemm_nn(R, M, D, d1, D, rb->wq[3], M, 0.0f, rb->dg, M);
    slot_back(rb, RQ_FC2_IN, rb->dg, R, M, M);
    sfq_gelu_bwd(rb->pre, rb->dg, (int64_t)R * M, 1);
    /* fc1 */
    gemm_tn(M, D, R, rb->dg, M, rb->h2, D, 0.0f, rb->gw[2], D);
    gemm_nn(R, D, M, rb->dg, M, rb->wq[2], D, 0.0f, d2, D);
    slot_back(rb, RQ_FC1_IN, d2, R, D, D);
    /* LN2: d1 (= dx1, residual) += LN2'(d2) */
    sfq_layernorm_bwd(d2, rb->xhat2, rb->rstd2, rb->w.ln2_w, d1, R, D, 1);
    /* proj */
    gemm_tn(D, D, R, d1, D, rb->ao, D, 0.0f, rb->gw[1], D);
    gemm_nn(R, D, D, d1, D, rb->wq[1], D, 0.0f, d2, D);
    slot_back(rb, RQ_PROJ_IN, d2, R, D, D);
    /* attention: d2 = dO */
    const float scale = 1.0f / sqrtf((float)hd);
    float *dqkv = rb->dqkv;
    for (int b = 0; b < rb->n; b++)
        for (int h = 0; h < H; h++) {
            const size_t pr = ((size_t)b * H + h) * N * N;
            const float *q = rb->qkv + (size_t)b * N * 3 * D + (size_t)h * hd;
            const float *dO = d2 + (size_t)b * N * D + (size_t)h * hd;
            float *dq = dqkv + (size_t)b * N * 3 * D + (size_t)h * hd;
            float *dP = rb->dp + pr;
            /* dP = dO V^T ; dV = P^T dO */
            gemm_nt(N, N, hd, dO, D, q + 2 * D, 3 * D, 0.0f, dP, N);
            gemm_tn(N, hd, N, rb->pq + pr, N, dO, D, 0.0f, dq + 2 * D, 3 * D);
        }
    const size_t np = (size_t)rb->n * H * N * N;
    if (rb->log_on)
        for (size_t k = 0; k < np; k++)
            if (!rb->lpass[k])
                rb->dp[k] = 0.0f;
    sfq_softmax_bwd(rb->probs, rb->dp, (int64_t)rb->n * H * N, N, 1);
    for (int b = 0; b < rb->n; b++)
        for (int h = 0; h < H; h++) {
            const size_t pr = ((size_t)b * H + h) * N * N;
            const float *q = rb->qkv + (size_t)b * N * 3 * D + (size_t)h * hd;
            float *dq = dqkv + (size_t)b * N * 3 * D + (size_t)h * hd;
            /* S = scale Q K^T: dQ = scale dS K, dK = scale dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hd, N, scale, rb->dp + pr, N, q + D, 3 * D,
                        0.0f, dq, 3 * D);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, hd, N, scale, rb->dp + pr, N, q, 3 * D, 0.0f,
                        dq + D, 3 * D);
        }
    slot_back(rb, RQ_Q, dqkv, R, D, 3 * D);
    slot_back(rb, RQ_K, dqkv + D, R, D, 3 * D);
    slot_back(rb, RQ_V, dqkv + 2 * D, R, D, 3 * D);
    /* qkv */
    gemm_tn(3 * D, D, R, dqkv, 3 * D, rb->h1, D, 0.0f, rb->gw[0], D);
    gemm_nn(R, D, 3 * D, dqkv, 3 * D, rb->wq[0], D, 0.0f, d2, D);
    slot_back(rb, RQ_QKV_IN, d2, R, D, D);
    /* weights -> V */
    for (int k = 0; k < 4; k++) {
        if (!rb->wbits[k])
            continue;
        const size_t n = (size_t)(k == 0 ? 3 * D : k == 2 ? M : D) * (k == 3 ? M : D);
        for (size_t i = 0; i < n; i++)
            rb->gv[k][i] = rb->gw[k][i] * rb->dwdv[k][i];
    }
}

/* ---- memory -------------------------------------------------------------- */

void sfq_rblock_free(sfq_rblock *rb)
{
    if (!rb)
        return;
    sfq_free(rb->mem);
    memset(rb, 0, sizeof *rb);
}

sardfq_status sfq_rblock_alloc(sfq_rblock *rb, const sardfq_model_info *cfg, int n)
{
    const size_t R = (size_t)n * cfg->num_tokens, D = (size_t)cfg->embed_dim, M = (size_t)cfg->mlp_hidden;
    const size_t NP = (size_t)n * cfg->num_heads * cfg->num_tokens * cfg->num_tokens;
    const size_t wn[4] = {3 * D * D, D * D, M * D, D * M};
    const size_t slotn[RQ_COUNT] = {R * D, R * D, R * D, R * D, R * D, R * D, R * M};
    size_t floats = R * D * 8 + R * 3 * D * 2 + R * M * 3 + R + 4 * NP + NP / 4 + 16;
    for (int k = 0; k < 4; k++)
        floats += 6 * wn[k];
    for (int s = 0; s < RQ_COUNT; s++)
        floats += 2 * slotn[s] + slotn[s] / 4 + 4;
    memset(rb, 0, sizeof *rb);
    rb->mem = sfq_alloc_array(floats, sizeof(float));
    if (!rb->mem)
        return sfq_fail(SARDFQ_E_NOMEM, "block reconstruction: cannot allocate %zu MB", floats * 4 >> 20);
    rb->cfg = cfg;
    rb->n = n;
    float *p = rb->mem;
#define TAKE(k) (p += (k), p - (k))
    rb->h1 = TAKE(R * D);
    rb->qkv = TAKE(R * 3 * D);
    rb->dqkv = TAKE(R * 3 * D);
    rb->probs = TAKE(NP);
    rb->pq = TAKE(NP);
    rb->dp = TAKE(NP);
    rb->loff = TAKE(NP);
    rb->lpass = (uint8_t *)TAKE(NP / 4 + 1);
    rb->ao = TAKE(R * D);
    rb->x1 = TAKE(R * D);
    rb->h2 = TAKE(R * D);
    rb->xhat2 = TAKE(R * D);
    rb->rstd2 = TAKE(R);
    rb->pre = TAKE(R * M);
    rb->g = TAKE(R * M);
    rb->dg = TAKE(R * M);
    rb->out = TAKE(R * D);
    rb->gbuf = TAKE(2 * R * D);
    for (int k = 0; k < 4; k++) {
        rb->wq[k] = TAKE(wn[k]);
        rb->gw[k] = TAKE(wn[k]);
        rb->gv[k] = TAKE(wn[k]);
        rb->dwdv[k] = TAKE(wn[k]);
        rb->ada[k].v = TAKE(wn[k]);
        rb->ada[k].base = TAKE(wn[k]);
        rb->wsize[k] = wn[k];
    }
    for (int s = 0; s < RQ_COUNT; s++) {
        rb->off[s] = TAKE(slotn[s]);
        rb->ds[s] = TAKE(slotn[s]);
        rb->pass[s] = (uint8_t *)TAKE(slotn[s] / 4 + 1);
    }
#undef TAKE
    return SARDFQ_OK;
}
