/* attention.c - the one attention op, full (ViT: one window of all tokens)
 * or windowed (Swin: windows of a shifted grid, relative-position bias and
 * the shifted-window mask), forward and backward, one task per (image,
 * window, head) unit on the library's threads.
 *
 * Unit t = (b W + w) H + head; its window's rows of qkv, ao start at
 * row0 = (b W + w) Nw (C = width, hd = C / H, Nw tokens per window):
 *   S = alpha Q K^T (+ bias[head][idx(i, j)]) (+ -100 across mask regions)
 *   P = softmax(S) row-wise; O = P V
 * Read-back per image (T floats; this block's at read_off, head h's N at
 * h N): the class token's row of P (ViT), or the mean of P over all
 * queries at the image positions of the keys (Swin).
 * Backward: dP = dO V^T (+ the read-back's gradient), dV = P^T dO,
 * dS = softmax backward, dQ = hd^-1/2 dS K, dK = hd^-1/2 dS^T Q. */
#include "exec.h"

#include "qspec.h"

#include "smallgemm.h"
#include "threads.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

#define MASK_VALUE (-100.0f)

size_t sfq_attention_chunk(const sfq_step *st)
{
    const size_t Nw = (size_t)st->tokens, hd = (size_t)(st->dim / st->heads);
    const size_t ldN = (size_t)sfq_pack_ld((int)Nw), ldh = (size_t)sfq_pack_ld((int)hd);
    /* a transpose Nw x ld(Nw), and a packed operand hd x ld(Nw) or Nw x ld(hd) */
    return Nw * ldN + (hd * ldN > Nw * ldh ? hd * ldN : Nw * ldh) + 16;
}

typedef struct {
    int b, w, hh;
    size_t row0; /* first row of the unit's window */
} unit;

static unit split_unit(const sfq_step *st, int64_t t)
{
    const int W = sfq_attention_windows(st);
    unit u;
    u.hh = (int)(t % st->heads);
    const int64_t bw = t / st->heads;
    u.b = (int)(bw / W);
    u.w = (int)(bw % W);
    u.row0 = (size_t)bw * (size_t)st->tokens;
    return u;
}

/* The thread's packing buffer (after its transpose area). */
static float *unit_buf(const sfq_attn_run *a, int chunk)
{
    const int Nw = a->st->tokens;
    return a->scratch + (size_t)chunk * a->chunk + (size_t)Nw * sfq_pack_ld(Nw);
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

size_t sfq_attention_int_chunk(const sfq_step *st)
{
    const int Nw = st->tokens, hd = st->dim / st->heads, np = (Nw + 15) / 16 * 16;
    return align64(sfq_ipack_data_bytes(Nw, hd, 8)) + 6 * align64(sizeof(int32_t) * (size_t)np);
}

/* S = alpha (q - zq) sq (k - zk) sk from the codes of unit t: the exact
 * integer sum, dequantized once (float rounding is the only difference
 * from the fake-quantized product). */
static void unit_scores_int(const sfq_attn_run *a, const unit *u, uint8_t *ibuf, float *S)
{
    const sfq_step *st = a->st;
    const sfq_attn_int *iq = a->iq;
    const int C = st->dim, hd = C / st->heads, Nw = st->tokens, np = (Nw + 15) / 16 * 16;
    const size_t vec = align64(sizeof(int32_t) * (size_t)np);
    uint8_t *data = ibuf;
    int32_t *zero = (int32_t *)(ibuf + align64(sfq_ipack_data_bytes(Nw, hd, 8)));
    int32_t *wsum = (int32_t *)((uint8_t *)zero + vec), *corr = (int32_t *)((uint8_t *)wsum + vec);
    int32_t *zoff = (int32_t *)((uint8_t *)corr + vec), *asum = (int32_t *)((uint8_t *)zoff + vec);
    float *scale = (float *)((uint8_t *)asum + vec);
    const uint8_t *qa = iq->qc + u->row0 * C + (size_t)u->hh * hd, *kb = iq->kc + u->row0 * C + (size_t)u->hh * hd;
    for (int i = 0; i < np; i++)
        asum[i] = iq->zk; /* the rows' zero points, before packing */
    sfq_ipack pk;
    sfq_ipack_into(kb, C, Nw, hd, 8, asum, &pk, data, zero, wsum);
    for (int i = 0; i < Nw; i++) {
        int32_t s = 0;
        for (int d = 0; d < hd; d++)
            s += qa[(size_t)i * C + d];
        asum[i] = s;
    }
    sfq_iepi_vectors(&pk, a->alpha * iq->sq, iq->zq, &iq->sk, 0, scale, corr, zoff);
    sfq_iepi e = {scale, NULL, corr, zoff, asum, S, Nw, 0};
    sfq_igemm_rows(iq->isa, qa, C, &pk, &e, 0, Nw);
}

/* S = alpha Q K^T + bias + mask (+ softmax) of unit t into probs. */
static void unit_scores(const sfq_attn_run *a, int64_t t, float *buf, uint8_t *ibuf)
{
    const sfq_step *st = a->st;
    const int C = st->dim, H = st->heads, hd = C / H, Nw = st->tokens, ldN = sfq_pack_ld(Nw);
    const unit u = split_unit(st, t);
    const float *q = a->qkv + u.row0 * 3 * C + (size_t)u.hh * hd;
    float *S = a->probs + (size_t)t * Nw * Nw;
    if (ibuf) {
        unit_scores_int(a, &u, ibuf, S);
    } else {
        sfq_pack_transpose(q + C, 3 * C, Nw, hd, buf, ldN); /* K^T */
        sfq_gemm_packed(Nw, Nw, hd, a->alpha, q, 3 * C, buf, ldN, S, Nw);
    }
    if (st->bias_table)
        for (int i = 0; i < Nw * Nw; i++)
            S[i] += st->bias_table[(size_t)st->relidx[i] * H + u.hh];
    if (st->win.shifted) {
        int lab[64 * 64];
        sfq_window_labels(&st->win, u.w, lab);
        for (int i = 0; i < Nw; i++)
            for (int j = 0; j < Nw; j++)
                if (lab[i] != lab[j])
                    S[i * Nw + j] += MASK_VALUE;
    }
    if (a->softmax)
        sfq_softmax_fwd(S, Nw, Nw, 1);
}

/* O = P V of unit t into ao, and its read-back. */
static void unit_pv(const sfq_attn_run *a, int64_t t, float *buf)
{
    const sfq_step *st = a->st;
    const int C = st->dim, H = st->heads, hd = C / H, Nw = st->tokens, ldh = sfq_pack_ld(hd);
    const unit u = split_unit(st, t);
    const float *v = a->qkv + u.row0 * 3 * C + 2 * (size_t)C + (size_t)u.hh * hd;
    const float *S = a->probs + (size_t)t * Nw * Nw;
    sfq_pack_rows(v, 3 * C, Nw, hd, buf, ldh);
    sfq_gemm_packed(Nw, hd, Nw, 1.0f, S, Nw, buf, ldh, a->ao + u.row0 * C + (size_t)u.hh * hd, C);
    if (!a->attn)
        return;
    if (st->readback == SFQ_READ_CLS_ROW) {
        memcpy(a->attn + (size_t)u.b * a->T + st->read_off + (size_t)u.hh * Nw, S, sizeof(float) * (size_t)Nw);
        return;
    }
    const int N = st->win.gh * st->win.gw;
    float *r = a->attn + (size_t)u.b * a->T + st->read_off + (size_t)u.hh * N;
    for (int j = 0; j < Nw; j++) {
        double sum = 0;
        for (int i = 0; i < Nw; i++)
            sum += S[i * Nw + j];
        r[sfq_window_pos(&st->win, u.w, j)] = (float)(sum / N);
    }
}

static int64_t units(const sfq_step *st, int n)
{
    return (int64_t)n * sfq_attention_windows(st) * st->heads;
}

static void fwd_range(void *vc, int chunk, int64_t t0, int64_t t1)
{
    const sfq_attn_run *a = vc;
    float *buf = unit_buf(a, chunk);
    uint8_t *ibuf = a->iq ? a->iq->scratch + (size_t)chunk * a->iq->chunk : NULL;
    const int Nw = a->st->tokens;
    for (int64_t t = t0; t < t1; t++) {
        unit_scores(a, t, buf, ibuf);
        /* the point is element-wise: a unit's rows now, while they are in
         * cache, give the bits of all rows later */
        if (a->probs_q)
            sfq_qact_apply_rows(a->probs_q, a->probs + (size_t)t * Nw * Nw, Nw, Nw, Nw);
        unit_pv(a, t, buf);
    }
}

static void scores_range(void *vc, int chunk, int64_t t0, int64_t t1)
{
    const sfq_attn_run *a = vc;
    float *buf = unit_buf(a, chunk);
    uint8_t *ibuf = a->iq ? a->iq->scratch + (size_t)chunk * a->iq->chunk : NULL;
    for (int64_t t = t0; t < t1; t++)
        unit_scores(a, t, buf, ibuf);
}

static void pv_range(void *vc, int chunk, int64_t t0, int64_t t1)
{
    const sfq_attn_run *a = vc;
    float *buf = unit_buf(a, chunk);
    for (int64_t t = t0; t < t1; t++)
        unit_pv(a, t, buf);
}

void sfq_attention_fwd(const sfq_attn_run *a, int n, int nt)
{
    sfq_parallel_chunks(nt, units(a->st, n), fwd_range, (void *)a);
}

void sfq_attention_scores(const sfq_attn_run *a, int n, int nt)
{
    sfq_parallel_chunks(nt, units(a->st, n), scores_range, (void *)a);
}

void sfq_attention_pv(const sfq_attn_run *a, int n, int nt)
{
    sfq_parallel_chunks(nt, units(a->st, n), pv_range, (void *)a);
}

static void bwd_range(void *vc, int chunk, int64_t t0, int64_t t1)
{
    const sfq_attn_run *a = vc;
    const sfq_step *st = a->st;
    const int C = st->dim, H = st->heads, hd = C / H, Nw = st->tokens;
    const float scale = 1.0f / sqrtf((float)hd);
    float *At = a->scratch + (size_t)chunk * a->chunk, *buf = At + (size_t)Nw * sfq_pack_ld(Nw);
    for (int64_t t = t0; t < t1; t++) {
        const unit u = split_unit(st, t);
        const size_t qo = u.row0 * 3 * C + (size_t)u.hh * hd;
        const float *Pr = a->probs + (size_t)t * Nw * Nw;
        float *dS = a->dS + (size_t)t * Nw * Nw;
        sfq_attention_head_bwd_pv(a->qkv + qo, a->dqkv + qo, C, a->dao + u.row0 * C + (size_t)u.hh * hd, Pr,
                                  dS, Nw, hd, At, buf);
        if (a->dattn && st->readback == SFQ_READ_CLS_ROW) { /* the class token's row */
            const float *g = a->dattn + (size_t)u.b * a->T + st->read_off + (size_t)u.hh * Nw;
            for (int j = 0; j < Nw; j++)
                dS[j] += g[j];
        } else if (a->dattn) { /* every query row: the read-back averages them */
            const int N = st->win.gh * st->win.gw;
            const float *g = a->dattn + (size_t)u.b * a->T + st->read_off + (size_t)u.hh * N;
            for (int j = 0; j < Nw; j++) {
                const float gj = g[sfq_window_pos(&st->win, u.w, j)] / (float)N;
                for (int i = 0; i < Nw; i++)
                    dS[i * Nw + j] += gj;
            }
        }
        sfq_attention_head_bwd_qk(a->qkv + qo, a->dqkv + qo, C, Pr, dS, Nw, hd, scale, At, buf);
    }
}

void sfq_attention_bwd(const sfq_attn_run *a, int n, int nt)
{
    sfq_parallel_chunks(nt, units(a->st, n), bwd_range, (void *)a);
}

/* The two halves, for training: dS (the probabilities' gradient), then
 * through the softmax to dQ, dK. */
typedef struct {
    const sfq_attn_run *a;
    const float *raw;
    float scale;
} bwd2;

static void bwd_pv_range(void *vc, int chunk, int64_t t0, int64_t t1)
{
    const sfq_attn_run *a = vc;
    const sfq_step *st = a->st;
    const int C = st->dim, H = st->heads, hd = C / H, Nw = st->tokens;
    float *At = a->scratch + (size_t)chunk * a->chunk, *buf = At + (size_t)Nw * sfq_pack_ld(Nw);
    for (int64_t t = t0; t < t1; t++) {
        const unit u = split_unit(st, t);
        const size_t qo = u.row0 * 3 * C + (size_t)u.hh * hd;
        sfq_attention_head_bwd_pv(a->qkv + qo, a->dqkv + qo, C, a->dao + u.row0 * C + (size_t)u.hh * hd,
                                  a->probs + (size_t)t * Nw * Nw, a->dS + (size_t)t * Nw * Nw, Nw, hd, At, buf);
    }
}

static void bwd_qk_range(void *vc, int chunk, int64_t t0, int64_t t1)
{
    const bwd2 *c = vc;
    const sfq_attn_run *a = c->a;
    const sfq_step *st = a->st;
    const int C = st->dim, H = st->heads, hd = C / H, Nw = st->tokens;
    float *At = a->scratch + (size_t)chunk * a->chunk, *buf = At + (size_t)Nw * sfq_pack_ld(Nw);
    for (int64_t t = t0; t < t1; t++) {
        const unit u = split_unit(st, t);
        const size_t qo = u.row0 * 3 * C + (size_t)u.hh * hd;
        sfq_attention_head_bwd_qk(a->qkv + qo, a->dqkv + qo, C, c->raw + (size_t)t * Nw * Nw,
                                  a->dS + (size_t)t * Nw * Nw, Nw, hd, c->scale, At, buf);
    }
}

void sfq_attention_bwd_pv(const sfq_attn_run *a, int n, int nt)
{
    sfq_parallel_chunks(nt, units(a->st, n), bwd_pv_range, (void *)a);
}

void sfq_attention_bwd_qk(const sfq_attn_run *a, const float *raw, float scale, int n, int nt)
{
    bwd2 c = {a, raw, scale};
    sfq_parallel_chunks(nt, units(a->st, n), bwd_qk_range, &c);
}
