/* vit.c - ViT forward and backward-to-input.
 *
 * B images, N tokens (P prefix + G patches), D dim, H heads of hd, M mlp
 * hidden, K classes. The linears run as one (B*N) x D GEMM each; attention
 * runs one small GEMM pair per (image, head); the element-wise ops run on
 * the library's threads (vmath.c).
 *
 * Forward of block l (pre-norm):
 *   h = LN1(x); qkv = h Wqkv^T + bqkv; S = scale Q K^T; Pr = softmax(S)
 *   O = Pr V; x += O Wproj^T + bproj
 *   h = LN2(x); pre = h W1^T + b1; x += GELU(pre) W2^T + b2
 * Backward to the input needs, per block, only LN1/LN2's normalised inputs
 * and 1/std, qkv, the softmax probabilities and the GELU input: no weight
 * gradient is formed, so no GEMM input other than those is kept.
 * Then: final LN on the prefix tokens, logits = head(class token), or for a
 * distilled DeiT (head(class) + head_dist(dist)) / 2. */
#include "vit.h"

#include "compute.h"
#include "swin.h"
#include "qspec.h"
#include "smallgemm.h"
#include "threads.h"
#include "vmath.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#define MAX_IMAGES (1 << 20)

/* x += in W^T + b, or, when the linear's output is a quantization point of
 * the model (PSAQ-ViT's fc outputs), tmp = in W^T + b, quantized, then
 * x += tmp. */
static void residual_linear(const sardfq_model *m, int l, int point, const sfq_compute *c,
                            const float *in, const float *W, const float *b, float *x, float *tmp,
                            int rows, int nin, int nout)
{
    if (!sfq_qpoint_active(m, l, point)) {
        sfq_linear(c, in, W, b, x, rows, nin, nout, 1);
        return;
    }
    sfq_linear(c, in, W, b, tmp, rows, nin, nout, 0);
    sfq_qhook(m, l, point, tmp, rows, nout, nout, c->nt);
    const size_t total = (size_t)rows * (size_t)nout;
    for (size_t i = 0; i < total; i++)
        x[i] += tmp[i];
}

/* ---- buffers ---------------------------------------------------------- */

/* Sizes per image, in floats. */
typedef struct {
    size_t ND, N3D, NM, HNN, N, GC, PD, P;
    size_t chunk; /* attention scratch per thread (not per image) */
} per_image;

static per_image sizes(const sardfq_model_info *cfg)
{
    per_image s;
    const size_t N = (size_t)cfg->num_tokens, D = (size_t)cfg->embed_dim;
    s.ND = N * D;
    s.N3D = 3 * N * D;
    s.NM = N * (size_t)cfg->mlp_hidden;
    s.HNN = (size_t)cfg->num_heads * N * N;
    s.N = N;
    s.GC = (size_t)cfg->grid_h * cfg->grid_w * cfg->in_chans * cfg->patch_size * cfg->patch_size;
    s.PD = (size_t)cfg->num_prefix_tokens * D;
    s.P = (size_t)cfg->num_prefix_tokens;
    /* a transpose N x ld(N), and a packed operand of hd x ld(N) or N x ld(hd) */
    const size_t hd = (size_t)cfg->head_dim, ldN = (size_t)sfq_pack_ld(cfg->num_tokens),
                 ldh = (size_t)sfq_pack_ld(cfg->head_dim);
    s.chunk = N * ldN + (hd * ldN > N * ldh ? hd * ldN : N * ldh) + 16;
    return s;
}

/* Working buffers of one forward (and of one backward, which reuses them). */
typedef struct {
    float *x, *h, *ao, *hid; /* forward: residual, LN out, attention out, MLP */
    float *qkv, *probs;      /* forward scratch when nothing is kept */
    float *patches;          /* im2col / its gradient */
    float *xf, *hf;          /* prefix rows before / after the final LN */
    float *dqkv, *dS;        /* backward: the qkv / probs scratch, idle then
                                (a forward for backward writes the kept
                                per-block arrays instead) */
    float *scratch;          /* attention scratch, per_image.chunk per thread */
} work;

/* nt threads' attention scratch, then the per-image buffers. */
static size_t work_floats(const per_image *s, int n, int nt)
{
    size_t per = 3 * s->ND + s->NM + s->N3D + s->HNN + s->GC + 2 * s->PD;
    return (size_t)nt * s->chunk + (size_t)n * per;
}

static void work_carve(work *w, float *base, const per_image *s, int n, int nt)
{
    float *p = base;
    w->scratch = p;
    p += (size_t)nt * s->chunk;
#define TAKE(k) (p += (size_t)n * (k), p - (size_t)n * (k))
    w->x = TAKE(s->ND);
    w->h = TAKE(s->ND);
    w->ao = TAKE(s->ND);
    w->hid = TAKE(s->NM);
    w->qkv = TAKE(s->N3D);
    w->probs = TAKE(s->HNN);
    w->patches = TAKE(s->GC);
    w->xf = TAKE(s->PD);
    w->hf = TAKE(s->PD);
    w->dqkv = w->qkv;
    w->dS = w->probs;
#undef TAKE
}

/* Kept per block (state buffers): xhat1 ND, rstd1 N, qkv N3D, probs HNN,
 * xhat2 ND, rstd2 N, pre NM; plus attn depth*H*N, xhatf PD, rstdf P,
 * feat D and, for SFQ_FORWARD_KEEP_AO, depth*ND. */
static size_t kept_floats(const sardfq_model_info *cfg, const per_image *s, int n, uint32_t flags)
{
    size_t per = (size_t)cfg->depth * cfg->num_heads * s->N + s->PD + s->P + (size_t)cfg->embed_dim;
    if (flags & SARDFQ_FORWARD_BACKWARD)
        per += (size_t)cfg->depth * (2 * s->ND + 2 * s->N + s->N3D + s->HNN + s->NM);
    if (flags & SFQ_FORWARD_KEEP_AO)
        per += (size_t)cfg->depth * s->ND;
    return (size_t)n * per;
}

/* ---- forward ---------------------------------------------------------- */

/* Where a forward writes what backward keeps; NULL members = not kept. */
typedef struct {
    sfq_saved_block *saved; /* depth entries or NULL */
    float *attn;            /* [B][depth][H][N] or NULL */
    float *xhatf, *rstdf;   /* or NULL */
    float *feat;            /* [B][D] or NULL */
    float *ao;              /* [depth][B][N][D] or NULL */
    float *x_at;            /* if set: stop after block `upto` - 1 and copy
                               the residual stream [B][N][D] here */
    int upto;
} keep;

static void embed(const sardfq_model *m, const float *images, int n, work *w, const sfq_compute *c)
{
    const int nt = c->nt;
    const sardfq_model_info *cfg = &m->info;
    const int D = cfg->embed_dim, N = cfg->num_tokens, P = cfg->num_prefix_tokens;
    const int G = cfg->grid_h * cfg->grid_w, cpp = cfg->in_chans * cfg->patch_size * cfg->patch_size;
    sfq_im2col(m, images, n, w->patches, nt);
    /* (the patches are a permutation of the image: same per-tensor quantizer) */
    sfq_qhook(m, -1, SFQ_AG_INPUT, w->patches, (int64_t)n * G, cpp, cpp, nt);
    /* patch tokens into h (B*G rows), then assemble x with the prefix */
    sfq_linear(c, w->patches, m->patch_w, m->patch_b, w->h, n * G, cpp, D, 0);
    sfq_qhook(m, -1, SFQ_AG_PATCH_OUT, w->h, (int64_t)n * G, D, D, nt);
    if (sfq_qpoint_active(m, -1, SFQ_AG_EMBED) || sfq_qpoint_active(m, -1, SFQ_AG_EMBED_POS)) {
        /* PSAQ-ViT quantizes [prefix; tokens], then the sum with pos (whose
         * own quantization is already in the parameters) */
        for (int b = 0; b < n; b++) {
            float *x = w->x + (size_t)b * N * D;
            memcpy(x, m->cls, sizeof(float) * (size_t)D);
            if (P == 2)
                memcpy(x + D, m->dist, sizeof(float) * (size_t)D);
            memcpy(x + (size_t)P * D, w->h + (size_t)b * G * D, sizeof(float) * (size_t)G * D);
        }
        sfq_qhook(m, -1, SFQ_AG_EMBED, w->x, (int64_t)n * N, D, D, nt);
        for (int b = 0; b < n; b++) {
            float *x = w->x + (size_t)b * N * D;
            for (size_t i = 0; i < (size_t)N * D; i++)
                x[i] += m->pos[i];
        }
        sfq_qhook(m, -1, SFQ_AG_EMBED_POS, w->x, (int64_t)n * N, D, D, nt);
        return;
    }
    for (int b = 0; b < n; b++) {
        float *x = w->x + (size_t)b * N * D;
        for (int i = 0; i < D; i++) {
            x[i] = m->cls[i] + m->pos[i];
            if (P == 2)
                x[D + i] = m->dist[i] + m->pos[D + i];
        }
        const float *t = w->h + (size_t)b * G * D;
        const float *pos = m->pos + (size_t)P * D;
        float *xp = x + (size_t)P * D;
        for (size_t i = 0; i < (size_t)G * D; i++)
            xp[i] = t[i] + pos[i];
    }
}

/* One task per (image, head) pair; each thread has its own scratch. */
typedef struct {
    const sardfq_model *m;
    int l;
    const float *qkv, *dao, *dattn;
    float *probs, *ao, *attn, *dqkv, *dS;
    float *scratch;
    size_t chunk;
} attn_ctx;

/* The two halves of one (image, head) pair's attention, with the thread's
 * scratch buf: S = scale Q K^T into probs, and O = S V into ao (plus the
 * class-token read-back of S). */
static void pair_scores(const attn_ctx *c, int64_t pair, float *buf)
{
    const sardfq_model_info *cfg = &c->m->info;
    const int D = cfg->embed_dim, N = cfg->num_tokens, H = cfg->num_heads, hd = cfg->head_dim;
    const int b = (int)(pair / H), hh = (int)(pair % H), ldN = sfq_pack_ld(N);
    const float *q = c->qkv + (size_t)b * N * 3 * D + (size_t)hh * hd;
    sfq_pack_transpose(q + D, 3 * D, N, hd, buf, ldN); /* K^T */
    sfq_gemm_packed(N, N, hd, 1.0f / sqrtf((float)hd), q, 3 * D, buf, ldN, c->probs + (size_t)pair * N * N, N);
}

static void pair_pv(const attn_ctx *c, int64_t pair, float *buf)
{
    const sardfq_model_info *cfg = &c->m->info;
    const int D = cfg->embed_dim, N = cfg->num_tokens, H = cfg->num_heads, hd = cfg->head_dim;
    const int b = (int)(pair / H), hh = (int)(pair % H), ldh = sfq_pack_ld(hd);
    const float *v = c->qkv + (size_t)b * N * 3 * D + 2 * D + (size_t)hh * hd;
    const float *S = c->probs + (size_t)pair * N * N;
    sfq_pack_rows(v, 3 * D, N, hd, buf, ldh);
    sfq_gemm_packed(N, hd, N, 1.0f, S, N, buf, ldh, c->ao + (size_t)b * N * D + (size_t)hh * hd, D);
    if (c->attn)
        memcpy(c->attn + (((size_t)b * cfg->depth + c->l) * H + hh) * N, S, sizeof(float) * (size_t)N);
}

/* The thread's packing buffer (after its transpose area). */
static float *pair_buf(const attn_ctx *c, int chunk)
{
    const int N = c->m->info.num_tokens;
    return c->scratch + (size_t)chunk * c->chunk + (size_t)N * sfq_pack_ld(N);
}

/* S = scale Q K^T, softmax, O = S V for pairs [p0, p1), one pair at a time. */
static void attention_fwd_range(void *vc, int chunk, int64_t p0, int64_t p1)
{
    const attn_ctx *c = vc;
    const int N = c->m->info.num_tokens;
    float *buf = pair_buf(c, chunk);
    for (int64_t pair = p0; pair < p1; pair++) {
        pair_scores(c, pair, buf);
        sfq_softmax_fwd(c->probs + (size_t)pair * N * N, N, N, 1);
        pair_pv(c, pair, buf);
    }
}

/* The same in two passes, for a quantized model whose quantizers must see
 * all scores / probabilities of the batch between them. */
static void attention_scores_range(void *vc, int chunk, int64_t p0, int64_t p1)
{
    const attn_ctx *c = vc;
    float *buf = pair_buf(c, chunk);
    for (int64_t pair = p0; pair < p1; pair++)
        pair_scores(c, pair, buf);
}

static void attention_pv_range(void *vc, int chunk, int64_t p0, int64_t p1)
{
    const attn_ctx *c = vc;
    float *buf = pair_buf(c, chunk);
    for (int64_t pair = p0; pair < p1; pair++)
        pair_pv(c, pair, buf);
}

static void attention_fwd(const sardfq_model *m, int l, int n, float *qkv, float *probs,
                          float *ao, float *attn, const work *w, size_t chunk, int nt)
{
    attn_ctx c = {.m = m, .l = l, .qkv = qkv, .probs = probs, .ao = ao, .attn = attn,
                  .scratch = w->scratch, .chunk = chunk};
    const int64_t pairs = (int64_t)n * m->info.num_heads;
    if (!m->q) {
        sfq_parallel_chunks(nt, pairs, attention_fwd_range, &c);
        return;
    }
    const int D = m->info.embed_dim, N = m->info.num_tokens;
    const int64_t BN = (int64_t)n * N;
    sfq_qhook(m, l, SFQ_AP_Q, qkv, BN, D, 3 * D, nt);
    sfq_qhook(m, l, SFQ_AP_K, qkv + D, BN, D, 3 * D, nt);
    sfq_qhook(m, l, SFQ_AP_V, qkv + 2 * D, BN, D, 3 * D, nt);
    sfq_parallel_chunks(nt, pairs, attention_scores_range, &c);
    sfq_qhook(m, l, SFQ_AP_SCORES, probs, pairs * N, N, N, nt);
    sfq_softmax_fwd(probs, pairs * N, N, nt);
    sfq_qhook(m, l, SFQ_AP_PROBS, probs, pairs * N, N, N, nt);
    sfq_parallel_chunks(nt, pairs, attention_pv_range, &c);
}

/* The whole forward. images validated by the caller. */
static void forward(const sardfq_model *m, const float *images, int n, work *w, const keep *k,
                    float *logits, const sfq_compute *c)
{
    const int nt = c->nt;
    const sardfq_model_info *cfg = &m->info;
    const int D = cfg->embed_dim, N = cfg->num_tokens, M = cfg->mlp_hidden, K = cfg->num_classes;
    const int P = cfg->num_prefix_tokens, BN = n * N;
    const float eps = cfg->ln_eps;
    embed(m, images, n, w, c);
    for (int l = 0; l < cfg->depth; l++) {
        if (k->x_at && l == k->upto)
            break;
        const sfq_block *blk = &m->blocks[l];
        sfq_saved_block *sv = k->saved ? &k->saved[l] : NULL;
        float *qkv = sv ? sv->qkv : w->qkv;
        float *probs = sv ? sv->probs : w->probs;
        float *pre = sv ? sv->pre : w->hid;
        sfq_layernorm_fwd(w->x, blk->ln1_w, blk->ln1_b, w->h, sv ? sv->xhat1 : NULL,
                          sv ? sv->rstd1 : NULL, BN, D, eps, nt);
        sfq_qhook(m, l, SFQ_AP_QKV_IN, w->h, BN, D, D, nt);
        sfq_linear(c, w->h, blk->qkv_w, blk->qkv_b, qkv, BN, D, 3 * D, 0);
        sfq_qhook(m, l, SFQ_AP_QKV_OUT, qkv, BN, 3 * D, 3 * D, nt);
        float *ao = k->ao ? k->ao + (size_t)l * BN * D : w->ao;
        attention_fwd(m, l, n, qkv, probs, ao, k->attn, w, sizes(cfg).chunk, nt);
        sfq_qhook(m, l, SFQ_AP_PROJ_IN, ao, BN, D, D, nt);
        residual_linear(m, l, SFQ_AP_PROJ_OUT, c, ao, blk->proj_w, blk->proj_b, w->x, w->h, BN, D, D);
        sfq_qhook(m, l, SFQ_AP_RES1, w->x, BN, D, D, nt);
        sfq_layernorm_fwd(w->x, blk->ln2_w, blk->ln2_b, w->h, sv ? sv->xhat2 : NULL,
                          sv ? sv->rstd2 : NULL, BN, D, eps, nt);
        sfq_qhook(m, l, SFQ_AP_FC1_IN, w->h, BN, D, D, nt);
        sfq_linear(c, w->h, blk->fc1_w, blk->fc1_b, pre, BN, D, M, 0);
        sfq_gelu_fwd(pre, w->hid, (int64_t)BN * M, nt);
        sfq_qhook(m, l, SFQ_AP_FC2_IN, w->hid, BN, M, M, nt);
        residual_linear(m, l, SFQ_AP_FC2_OUT, c, w->hid, blk->fc2_w, blk->fc2_b, w->x, w->h, BN, M, D);
        sfq_qhook(m, l, SFQ_AP_RES2, w->x, BN, D, D, nt);
    }
    if (k->x_at) {
        memcpy(k->x_at, w->x, sizeof(float) * (size_t)BN * D);
        return;
    }
    /* final LN on the prefix rows only */
    for (int b = 0; b < n; b++)
        memcpy(w->xf + (size_t)b * P * D, w->x + (size_t)b * N * D, sizeof(float) * (size_t)P * D);
    sfq_layernorm_fwd(w->xf, m->norm_w, m->norm_b, w->hf, k->xhatf, k->rstdf, (int64_t)n * P, D,
                      eps, nt);
    if (k->feat)
        for (int b = 0; b < n; b++)
            memcpy(k->feat + (size_t)b * D, w->hf + (size_t)b * P * D, sizeof(float) * (size_t)D);
    if (!logits)
        return;
    sfq_qhook(m, -1, SFQ_AG_HEAD_IN, w->hf, n, D, (int64_t)P * D, nt);
    if (P == 2)
        sfq_qhook(m, -1, SFQ_AG_HDIST_IN, w->hf + D, n, D, (int64_t)P * D, nt);
    if (P == 1) {
        sfq_linear(c, w->hf, m->head_w, m->head_b, logits, n, D, K, 0);
    } else {
        /* (head(cls) + head_dist(dist)) / 2 */
        for (int b = 0; b < n; b++)
            for (int j = 0; j < K; j++)
                logits[(size_t)b * K + j] = 0.5f * (m->head_b[j] + m->head_dist_b[j]);
        sfq_gemm(c->split, 0, 1, n, K, D, 0.5f, w->hf, P * D, m->head_w, D, 1.0f, logits, K);
        sfq_gemm(c->split, 0, 1, n, K, D, 0.5f, w->hf + D, P * D, m->head_dist_w, D, 1.0f, logits, K);
    }
    sfq_qhook(m, -1, SFQ_AG_LOGITS, logits, n, K, K, nt);
}

static sardfq_status check_images(const sardfq_model *m, const float *images, int n, const char *fn)
{
    if (!m)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: model is NULL", fn);
    if (!images)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: images is NULL", fn);
    if (n <= 0 || n > MAX_IMAGES)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: n must be in 1..%d (got %d)", fn, MAX_IMAGES, n);
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_model_forward(sardfq_model *m, const float *images, int n,
                                              float *logits)
{
    sardfq_status s = check_images(m, images, n, "sardfq_model_forward");
    if (s)
        return s;
    if (!logits)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_forward: logits is NULL");
    if (m->swin)
        return sfq_swin_forward(m, images, n, logits);
    sfq_compute c = sfq_begin_compute(m);
    const int nt = c.nt;
    per_image sz = sizes(&m->info);
    size_t floats = work_floats(&sz, n, nt);
    float *base = sfq_alloc_array(floats, sizeof(float));
    if (!base) {
        sfq_end_compute(&c);
        return sfq_fail(SARDFQ_E_NOMEM, "sardfq_model_forward: cannot allocate %zu MB of scratch for %d images",
                        floats * sizeof(float) >> 20, n);
    }
    work w;
    work_carve(&w, base, &sz, n, nt);
    keep k = {0};
    forward(m, images, n, &w, &k, logits, &c);
    sfq_end_compute(&c);
    sfq_free(base);
    return SARDFQ_OK;
}

sardfq_status sfq_forward_blocks(const sardfq_model *m, const float *images, int n, int upto, float *x)
{
    if (upto < 0 || upto > m->info.depth)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_forward_blocks: block %d out of range", upto);
    if (m->swin)
        return sfq_fail(SARDFQ_E_UNSUPPORTED, "block-wise forward of a Swin model is not supported yet");
    sfq_compute c = sfq_begin_compute(m);
    per_image sz = sizes(&m->info);
    size_t floats = work_floats(&sz, n, c.nt);
    float *base = sfq_alloc_array(floats, sizeof(float));
    if (!base) {
        sfq_end_compute(&c);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory (%zu MB of scratch)", floats * sizeof(float) >> 20);
    }
    work w;
    work_carve(&w, base, &sz, n, c.nt);
    keep k = {0};
    k.x_at = x;
    k.upto = upto;
    forward(m, images, n, &w, &k, NULL, &c);
    sfq_end_compute(&c);
    sfq_free(base);
    return SARDFQ_OK;
}

/* ---- state ------------------------------------------------------------ */

SARDFQ_API sardfq_status sardfq_state_create(const sardfq_model *m, sardfq_state **out)
{
    if (!m || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_state_create: %s is NULL", !m ? "model" : "out");
    sardfq_state *s = sfq_alloc_zero(sizeof *s);
    if (!s)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    s->model = m;
    *out = s;
    return SARDFQ_OK;
}

static void state_release_buffers(sardfq_state *s)
{
    sfq_free(s->buffers);
    sfq_free(s->saved);
    sfq_free(s->work);
    s->buffers = s->work = NULL;
    s->saved = NULL;
    s->buffer_floats = s->work_floats = 0;
    s->n = 0;
}

SARDFQ_API void sardfq_state_free(sardfq_state *s)
{
    if (!s)
        return;
    state_release_buffers(s);
    sfq_free(s);
}

/* Make s's buffers hold at least kept and wf floats (and its depth saved
 * blocks). The new buffers are allocated first and swapped in only when
 * every allocation succeeded, so on failure the state is untouched: its
 * last forward (n, flags, views and buffers) stays valid. The caller
 * re-points the views after a success. */
sardfq_status sfq_state_grow(sardfq_state *s, size_t kept, size_t wf, int n)
{
    const int need_saved = !s->saved, need_kept = s->buffer_floats < kept, need_work = s->work_floats < wf;
    sfq_saved_block *saved =
        need_saved ? sfq_alloc_zero(sizeof(sfq_saved_block) * (size_t)s->model->info.depth) : NULL;
    float *buf = need_kept ? sfq_alloc_array(kept, sizeof(float)) : NULL;
    float *work = need_work ? sfq_alloc_array(wf, sizeof(float)) : NULL;
    sardfq_status st = SARDFQ_OK;
    if (need_saved && !saved)
        st = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    else if (need_kept && !buf)
        st = sfq_fail(SARDFQ_E_NOMEM, "cannot allocate %zu MB of activations for %d images",
                      kept * sizeof(float) >> 20, n);
    else if (need_work && !work)
        st = sfq_fail(SARDFQ_E_NOMEM, "cannot allocate %zu MB of scratch for %d images",
                      wf * sizeof(float) >> 20, n);
    if (st) {
        sfq_free(saved);
        sfq_free(buf);
        sfq_free(work);
        return st;
    }
    if (need_saved)
        s->saved = saved;
    if (need_kept) {
        sfq_free(s->buffers);
        s->buffers = buf;
        s->buffer_floats = kept;
    }
    if (need_work) {
        sfq_free(s->work);
        s->work = work;
        s->work_floats = wf;
    }
    return SARDFQ_OK;
}

/* Make the state's buffers fit n images with the given flags and point the
 * views at them. On failure the state is unchanged (sfq_state_grow), and
 * its last forward stays readable. */
static sardfq_status state_reserve(sardfq_state *s, int n, uint32_t flags, int nt)
{
    const sardfq_model_info *cfg = &s->model->info;
    const per_image sz = sizes(cfg);
    const int backward = (flags & SARDFQ_FORWARD_BACKWARD) != 0;
    sardfq_status st = sfq_state_grow(s, kept_floats(cfg, &sz, n, flags), work_floats(&sz, n, nt), n);
    if (st)
        return st;
    float *p = s->buffers;
#define TAKE(k) (p += (size_t)n * (k), p - (size_t)n * (k))
    s->attn = TAKE((size_t)cfg->depth * cfg->num_heads * sz.N);
    s->xhatf = TAKE(sz.PD);
    s->rstdf = TAKE(sz.P);
    s->feat = TAKE((size_t)cfg->embed_dim);
    for (int l = 0; l < cfg->depth; l++) {
        sfq_saved_block *b = &s->saved[l];
        memset(b, 0, sizeof *b);
        if (!backward)
            continue;
        b->xhat1 = TAKE(sz.ND);
        b->rstd1 = TAKE(sz.N);
        b->qkv = TAKE(sz.N3D);
        b->probs = TAKE(sz.HNN);
        b->xhat2 = TAKE(sz.ND);
        b->rstd2 = TAKE(sz.N);
        b->pre = TAKE(sz.NM);
    }
    s->ao = flags & SFQ_FORWARD_KEEP_AO ? TAKE((size_t)cfg->depth * sz.ND) : NULL;
#undef TAKE
    return SARDFQ_OK;
}

#define PUBLIC_FLAGS (SARDFQ_FORWARD_ATTENTION | SARDFQ_FORWARD_BACKWARD | SARDFQ_FORWARD_FEATURES)

sardfq_status sfq_forward_state(sardfq_model *m, sardfq_state *s, const float *images, int n,
                                uint32_t flags, float *logits)
{
    if (m->swin)
        return sfq_swin_forward_state(m, s, images, n, flags, logits);
    sfq_compute c = sfq_begin_compute(m);
    const int nt = c.nt;
    sardfq_status st = state_reserve(s, n, flags, nt);
    if (st) {
        sfq_end_compute(&c);
        return st;
    }
    const per_image sz = sizes(&m->info);
    work w;
    work_carve(&w, s->work, &sz, n, nt);
    keep k = {0};
    if (flags & SARDFQ_FORWARD_BACKWARD) {
        k.saved = s->saved;
        k.xhatf = s->xhatf;
        k.rstdf = s->rstdf;
    }
    if (flags & SARDFQ_FORWARD_ATTENTION)
        k.attn = s->attn;
    if (flags & SARDFQ_FORWARD_FEATURES)
        k.feat = s->feat;
    k.ao = s->ao;
    forward(m, images, n, &w, &k, logits, &c);
    sfq_end_compute(&c);
    s->n = n;
    s->flags = flags;
    s->nt = nt;
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_model_forward_ex(sardfq_model *m, sardfq_state *s,
                                                 const float *images, int n, uint32_t flags,
                                                 float *logits)
{
    sardfq_status st = check_images(m, images, n, "sardfq_model_forward_ex");
    if (st)
        return st;
    if (!s)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_forward_ex: state is NULL");
    if (s->model != m)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_forward_ex: the state belongs to another model");
    if (flags & ~PUBLIC_FLAGS)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_forward_ex: unknown flags 0x%x", flags);
    if (m->q && (flags & SARDFQ_FORWARD_BACKWARD))
        return sfq_fail(SARDFQ_E_UNSUPPORTED,
                        "sardfq_model_forward_ex: a quantized model has no backward pass "
                        "(rounding is not differentiable)");
    return sfq_forward_state(m, s, images, n, flags, logits);
}

size_t sfq_ao_offset(const sardfq_model *m, int n, int block)
{
    if (m->swin)
        return sfq_swin_ao_offset(m, n, block);
    return (size_t)block * n * m->info.num_tokens * m->info.embed_dim;
}

void sfq_block_attention_shape(const sardfq_model *m, int l, int *windows, int *tokens, int *heads, int *head_dim)
{
    if (m->swin) {
        const sfq_swin_stage *st = &m->swin->st[sfq_swin_block_stage(m, l)];
        *windows = (st->gh / st->wh) * (st->gw / st->ww);
        *tokens = st->wh * st->ww;
        *heads = st->heads;
        *head_dim = st->dim / st->heads;
        return;
    }
    *windows = 1;
    *tokens = m->info.num_tokens;
    *heads = m->info.num_heads;
    *head_dim = m->info.head_dim;
}

const float *sfq_state_attn_output(const sardfq_state *s, int block)
{
    if (!s->n || !(s->flags & SFQ_FORWARD_KEEP_AO) || !s->ao || block < 0 || block >= s->model->info.depth)
        return NULL;
    return s->ao + sfq_ao_offset(s->model, s->n, block);
}

/* Copy a kept per-image array of the last forward (flag) into out. */
static sardfq_status state_read(const sardfq_state *s, uint32_t flag, const char *flagname,
                                const float *src, size_t per_image, float *out, size_t count,
                                const char *fn)
{
    if (!s || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: %s is NULL", fn, !s ? "state" : "out");
    if (!s->n || !(s->flags & flag))
        return sfq_fail(SARDFQ_E_STATE, "%s: the last forward_ex did not keep it (flag %s)", fn, flagname);
    size_t need = (size_t)s->n * per_image;
    if (count < need)
        return sfq_fail(SARDFQ_E_SHAPE, "%s: out holds %zu floats, %zu needed", fn, count, need);
    memcpy(out, src, need * sizeof(float));
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_state_get_attention(const sardfq_state *s, float *out, size_t count)
{
    return state_read(s, SARDFQ_FORWARD_ATTENTION, "SARDFQ_FORWARD_ATTENTION", s ? s->attn : NULL,
                      s ? (size_t)s->model->info.attention_floats : 0, out, count,
                      "sardfq_state_get_attention");
}

SARDFQ_API sardfq_status sardfq_state_get_features(const sardfq_state *s, float *out, size_t count)
{
    return state_read(s, SARDFQ_FORWARD_FEATURES, "SARDFQ_FORWARD_FEATURES", s ? s->feat : NULL,
                      s ? (size_t)s->model->info.num_features : 0, out, count,
                      "sardfq_state_get_features");
}

/* ---- backward --------------------------------------------------------- */

/* Backward of one block's attention for pairs [p0, p1):
 *   dPr = dO V^T (+ dattn on the class-token row), dV = Pr^T dO,
 *   dS = softmax backward, dQ = scale dS K, dK = scale dS^T Q. */
static void attention_bwd_range(void *vc, int chunk, int64_t p0, int64_t p1)
{
    const attn_ctx *c = vc;
    const sardfq_model_info *cfg = &c->m->info;
    const int D = cfg->embed_dim, N = cfg->num_tokens, H = cfg->num_heads, hd = cfg->head_dim;
    const float scale = 1.0f / sqrtf((float)hd);
    float *At = c->scratch + (size_t)chunk * c->chunk, *buf = At + (size_t)N * sfq_pack_ld(N);
    for (int64_t pair = p0; pair < p1; pair++) {
        const int b = (int)(pair / H), hh = (int)(pair % H);
        const size_t qo = (size_t)b * N * 3 * D + (size_t)hh * hd;
        const float *Pr = c->probs + (size_t)pair * N * N;
        float *dS = c->dS + (size_t)pair * N * N;
        sfq_attention_head_bwd_pv(c->qkv + qo, c->dqkv + qo, D, c->dao + (size_t)b * N * D + (size_t)hh * hd, Pr,
                                  dS, N, hd, At, buf);
        if (c->dattn) { /* the class-token row */
            const float *g = c->dattn + (((size_t)b * cfg->depth + c->l) * H + hh) * N;
            for (int t = 0; t < N; t++)
                dS[t] += g[t];
        }
        sfq_attention_head_bwd_qk(c->qkv + qo, c->dqkv + qo, D, Pr, dS, N, hd, scale, At, buf);
    }
}

static void attention_bwd(const sardfq_model *m, int l, int n, const sfq_saved_block *sv,
                          const float *dao, const float *dattn, work *w, int nt)
{
    attn_ctx c = {.m = m, .l = l, .qkv = sv->qkv, .probs = sv->probs, .dao = dao,
                  .dattn = dattn, .dqkv = w->dqkv, .dS = w->dS, .scratch = w->scratch,
                  .chunk = sizes(&m->info).chunk};
    sfq_parallel_chunks(nt, (int64_t)n * m->info.num_heads, attention_bwd_range, &c);
}

SARDFQ_API sardfq_status sardfq_model_backward(sardfq_model *m, sardfq_state *s, const float *dlogits,
                                               const float *dattn, float *dimages)
{
    return sfq_backward_state(m, s, dlogits, dattn, NULL, dimages);
}

sardfq_status sfq_backward_state(sardfq_model *m, sardfq_state *s, const float *dlogits,
                                 const float *dattn, const float *dao_ext, float *dimages)
{
    if (!m || !s || !dimages)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_backward: %s is NULL",
                        !m ? "model" : !s ? "state" : "dimages");
    if (s->model != m)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_backward: the state belongs to another model");
    if (!s->n || !(s->flags & SARDFQ_FORWARD_BACKWARD))
        return sfq_fail(SARDFQ_E_STATE, "sardfq_model_backward: the last forward_ex did not keep "
                                        "activations (flag SARDFQ_FORWARD_BACKWARD)");
    if (m->swin) {
        return sfq_swin_backward_state(m, s, dlogits, dattn, dao_ext, dimages);
    }
    const sardfq_model_info *cfg = &m->info;
    const int n = s->n, D = cfg->embed_dim, N = cfg->num_tokens, M = cfg->mlp_hidden, K = cfg->num_classes;
    const int P = cfg->num_prefix_tokens, BN = n * N, G = cfg->grid_h * cfg->grid_w;
    const int cpp = cfg->in_chans * cfg->patch_size * cfg->patch_size;
    /* the work layout (and its per-thread scratch) is the forward's */
    sfq_compute cc = sfq_begin_compute(m);
    cc.nt = s->nt;
    const sfq_compute *c = &cc;
    const int nt = s->nt;
    const per_image sz = sizes(cfg);
    work w;
    work_carve(&w, s->work, &sz, n, nt);
    /* reuse forward buffers: x -> dx, h -> dh, ao -> dao, hid -> dhid,
     * xf -> dxf, hf -> dhf */
    float *dx = w.x, *dh = w.h, *dao = w.ao, *dhid = w.hid;
    memset(w.hf, 0, sizeof(float) * (size_t)n * P * D);
    memset(w.xf, 0, sizeof(float) * (size_t)n * P * D);
    if (dlogits) {
        const float a = P == 2 ? 0.5f : 1.0f;
        sfq_gemm(c->split, 0, 0, n, D, K, a, dlogits, K, m->head_w, D, 0.0f, w.hf, P * D);
        if (P == 2)
            sfq_gemm(c->split, 0, 0, n, D, K, a, dlogits, K, m->head_dist_w, D, 0.0f, w.hf + D, P * D);
    }
    sfq_layernorm_bwd(w.hf, s->xhatf, s->rstdf, m->norm_w, w.xf, (int64_t)n * P, D, nt);
    memset(dx, 0, sizeof(float) * (size_t)BN * D);
    for (int b = 0; b < n; b++)
        memcpy(dx + (size_t)b * N * D, w.xf + (size_t)b * P * D, sizeof(float) * (size_t)P * D);
    for (int l = cfg->depth - 1; l >= 0; l--) {
        const sfq_block *blk = &m->blocks[l];
        const sfq_saved_block *sv = &s->saved[l];
        /* MLP branch */
        sfq_gemm(c->split, 0, 0, BN, M, D, 1.0f, dx, D, blk->fc2_w, M, 0.0f, dhid, M);
        sfq_gelu_bwd(sv->pre, dhid, (int64_t)BN * M, nt);
        sfq_gemm(c->split, 0, 0, BN, D, M, 1.0f, dhid, M, blk->fc1_w, D, 0.0f, dh, D);
        sfq_layernorm_bwd(dh, sv->xhat2, sv->rstd2, blk->ln2_w, dx, BN, D, nt);
        /* attention branch */
        sfq_gemm(c->split, 0, 0, BN, D, D, 1.0f, dx, D, blk->proj_w, D, 0.0f, dao, D);
        if (dao_ext) {
            const float *e = dao_ext + (size_t)l * BN * D;
            for (size_t i = 0; i < (size_t)BN * D; i++)
                dao[i] += e[i];
        }
        attention_bwd(m, l, n, sv, dao, dattn, &w, nt);
        sfq_gemm(c->split, 0, 0, BN, D, 3 * D, 1.0f, w.dqkv, 3 * D, blk->qkv_w, D, 0.0f, dh, D);
        sfq_layernorm_bwd(dh, sv->xhat1, sv->rstd1, blk->ln1_w, dx, BN, D, nt);
    }
    /* patch embedding: d(patches) = d(tokens) Wpatch, then scatter */
    for (int b = 0; b < n; b++)
        sfq_gemm(c->split, 0, 0, G, cpp, D, 1.0f, dx + ((size_t)b * N + P) * D, D, m->patch_w, cpp, 0.0f,
             w.patches + (size_t)b * G * cpp, cpp);
    sfq_col2im(m, dimages, n, w.patches, nt);
    sfq_end_compute(c);
    return SARDFQ_OK;
}
