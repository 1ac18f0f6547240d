/* iplan.c - the integer form of a quantized model (iplan.h). */
#include "iplan.h"

#include "names.h"
#include "plan.h"
#include "qspec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_ZERO 4096 /* |z| bound that keeps every int32 sum exact */

/* Is point pt an active uniform quantizer whose codes are integers? */
static const char *int_point(const sfq_qspec *q, int pt)
{
    if (pt < 0)
        return "its input is not quantized";
    const sfq_qact *a = &q->acts[pt];
    if (a->kind == SFQ_QK_OFF)
        return "its input is not quantized";
    if (a->kind != SFQ_QK_UNIFORM)
        return "its input quantizer is not uniform";
    if (rintf(a->u.zero) != a->u.zero)
        return "its input zero point is fractional";
    if (fabsf(a->u.zero) > MAX_ZERO)
        return "its input zero point is out of range";
    return NULL;
}

/* The last step before i that writes variable v, or -1. */
static int producer(const sfq_plan *p, int i, int v)
{
    for (int j = i - 1; j >= 0; j--)
        if (p->steps[j].out == v)
            return j;
    return -1;
}

/* Does any step other than i read v after step j, before v is rewritten? */
static int other_readers(const sfq_plan *p, int j, int i, int v)
{
    for (int k = j + 1; k < p->nsteps; k++) {
        const sfq_step *s = &p->steps[k];
        if (k != i && s->in == v)
            return 1;
        if (k > i && s->out == v && !s->accumulate)
            return 0;
    }
    return 0;
}

/* The file's codes of linear `lin` while m loads, else NULL. */
static const uint8_t *file_codes(const sardfq_model *m, int lin)
{
    return m->load_codes ? m->load_codes[lin] : NULL;
}

/* Weight codes of linear `lin` into pack k of st: from the file's codes
 * src (sfq_qcodes layout, a model being loaded) or else from its rows x
 * cols floats w. NULL, or why they cannot be integer. */
static const char *pack_weights(const sfq_qspec *q, const float *w, const uint8_t *src, int lin, int rows,
                                int cols, sfq_istep *st, int k, sardfq_status *err)
{
    const sfq_qweight *qw = &q->lin[lin];
    if (qw->bits <= 0 || !qw->rows)
        return "its weights are not quantized";
    uint8_t *codes = sfq_alloc((size_t)rows * cols);
    int32_t *zero = sfq_alloc_array((size_t)rows, sizeof(int32_t));
    const char *why = NULL;
    if (!codes || !zero) {
        *err = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
        goto done;
    }
    for (int r = 0; r < rows && !why; r++) {
        const sfq_uq *u = &qw->rows[r];
        if (rintf(u->zero) != u->zero || fabsf(u->zero) > MAX_ZERO) {
            why = "a weight zero point is not a usable integer";
            break;
        }
        zero[r] = (int32_t)u->zero;
        if (src) { /* codes checked against the width when the file was read */
            sfq_qcodes_row(src + (size_t)r * sfq_qcodes_row_bytes(qw->bits, cols), cols, qw->bits,
                           codes + (size_t)r * cols);
            continue;
        }
        for (int c = 0; c < cols; c++) {
            const float x = w[(size_t)r * cols + c];
            const float lv = sfq_uq_level(u, x);
            /* the stored weight must be exactly its code's value */
            if (!(sfq_uq_value(u, lv) == x)) {
                why = "the weights are not on their quantization grid";
                break;
            }
            codes[(size_t)r * cols + c] = (uint8_t)lv;
        }
    }
    if (!why) {
        if ((*err = sfq_ipack_new(codes, cols, rows, cols, qw->bits, zero, &st->w[k])))
            goto done;
        const int np = st->w[k].np;
        st->wscale[k] = sfq_alloc_array((size_t)np, sizeof(float));
        if (!st->wscale[k]) {
            *err = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
            goto done;
        }
        for (int r = 0; r < np; r++)
            st->wscale[k][r] = r < rows ? qw->rows[r].scale : 0.0f;
    }
done:
    sfq_free(codes);
    sfq_free(zero);
    return why;
}

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} text;

static void add_line(text *t, const char *name, const char *mode, const char *detail)
{
    char line[256];
    const int n = snprintf(line, sizeof line, "%-36s %-5s %s\n", name, mode, detail);
    if (n <= 0 || t->oom)
        return;
    if (t->len + (size_t)n + 1 > t->cap) {
        const size_t cap = (t->cap ? 2 * t->cap : 4096) + (size_t)n;
        char *b = sfq_alloc(cap);
        if (!b) {
            t->oom = 1;
            return;
        }
        if (t->buf)
            memcpy(b, t->buf, t->len + 1);
        sfq_free(t->buf);
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, line, (size_t)n + 1);
    t->len += (size_t)n;
}

void sfq_iplan_free(sfq_iplan *ip)
{
    if (!ip)
        return;
    for (int i = 0; i < ip->nsteps; i++)
        for (int k = 0; k < 2; k++) {
            sfq_ipack_free(&ip->steps[i].w[k]);
            sfq_free(ip->steps[i].wscale[k]);
        }
    sfq_free(ip->steps);
    sfq_free(ip->report);
    sfq_free(ip);
}

/* A linear or head step: integer if its weights and input allow. */
static sardfq_status plan_linear(const sardfq_model *m, const sfq_plan *p, int i, sfq_iplan *ip, char *why_out)
{
    const sfq_step *st = &p->steps[i];
    sfq_istep *is = &ip->steps[i];
    const sfq_qspec *q = m->q;
    const sardfq_model_info *cfg = &m->info;
    sardfq_status err = SARDFQ_OK;
    const char *why = NULL;
    int j = -1;
    if (st->op == SFQ_OP_LINEAR) {
        j = producer(p, i, st->in);
        is->in_pt[0] = j >= 0 ? p->steps[j].pt[SFQ_PT_OUT] : -1;
        why = int_point(q, is->in_pt[0]);
        if (!why)
            why = pack_weights(q, st->w, file_codes(m, st->lin), st->lin,
                               sfq_qlin_rows(cfg, st->lin), sfq_qlin_cols(cfg, st->lin), is, 0, &err);
    } else { /* HEAD: rows 0 (and 1) of its input */
        const int P = p->vars[st->in].rows;
        const int D = p->vars[st->in].cols, K = cfg->num_classes;
        for (int r = 0; r < P && !why && !err; r++) {
            is->in_pt[r] = st->pt[SFQ_PT_IN0 + r];
            why = int_point(q, is->in_pt[r]);
            const int lin = r == 0 ? st->lin : st->lin + 1;
            if (!why)
                why = pack_weights(q, r == 0 ? st->w : st->w2, file_codes(m, lin), lin, K, D,
                                   is, r, &err);
        }
    }
    if (err)
        return err;
    if (why) {
        snprintf(why_out, 96, "%s", why);
        for (int k = 0; k < 2; k++) {
            sfq_ipack_free(&is->w[k]);
            sfq_free(is->wscale[k]);
            is->wscale[k] = NULL;
        }
        return SARDFQ_OK;
    }
    is->mode = SFQ_IMODE_INT;
    if (st->op == SFQ_OP_LINEAR && j >= 0 && !other_readers(p, j, i, st->in) && p->steps[j].op != SFQ_OP_HEAD)
        ip->steps[j].skip_out = 1;
    for (int k = 0; k < 2; k++)
        if (is->wscale[k]) {
            ip->weight_bytes += is->w[k].bytes + (size_t)is->w[k].np * (sizeof(float) + 2 * sizeof(int32_t));
            ip->int_weights += (size_t)is->w[k].n * (size_t)is->w[k].k;
        }
    return SARDFQ_OK;
}

static const char *attention_why(const sardfq_model *m, const sfq_step *st)
{
    const char *why = int_point(m->q, st->pt[SFQ_PT_Q]);
    if (!why)
        why = int_point(m->q, st->pt[SFQ_PT_K]);
    if (why)
        return "q and k are not both quantized with integer zero points";
    if ((st->dim / st->heads) % 4)
        return "the head width is not a multiple of 4";
    return NULL;
}

sardfq_status sfq_model_prepare_int(sardfq_model *m)
{
    if (m->n_held != m->n_params) /* once: the codes are its only weights */
        return sfq_fail(SARDFQ_E_INTERNAL, "sfq_model_prepare_int: the model is final already");
    sfq_iplan_free(m->ip);
    m->ip = NULL;
    if (!m->q || !m->plan)
        return SARDFQ_OK;
    const sfq_plan *p = m->plan;
    sfq_iplan *ip = sfq_alloc_zero(sizeof *ip);
    if (!ip || !(ip->steps = sfq_alloc_zero(sizeof(sfq_istep) * (size_t)p->nsteps))) {
        sfq_free(ip);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    ip->nsteps = p->nsteps;
    sardfq_status s = sfq_isa_resolve(SFQ_ISA_AUTO, &ip->isa);
    if (s) {
        sfq_iplan_free(ip);
        return s;
    }
    for (int i = 0; i < p->nsteps; i++)
        ip->steps[i].in_pt[0] = ip->steps[i].in_pt[1] = -1;
    text t = {0};
    for (int i = 0; i < p->nsteps && !s; i++) {
        const sfq_step *st = &p->steps[i];
        sfq_istep *is = &ip->steps[i];
        char name[128], detail[160], why[96] = "";
        if ((st->op == SFQ_OP_LINEAR || st->op == SFQ_OP_HEAD) && st->lin >= 0) {
            if ((s = plan_linear(m, p, i, ip, why)))
                break;
            sfq_qlin_name(&m->info, st->lin, name, sizeof name);
            if (is->mode == SFQ_IMODE_INT)
                snprintf(detail, sizeof detail, "u8 x %s (W%d A%d)", is->w[0].nibbles ? "s4" : "s8",
                         is->w[0].bits, m->q->acts[is->in_pt[0]].bits);
            else
                snprintf(detail, sizeof detail, "fake-quantized float: %s", why);
        } else if (st->op == SFQ_OP_ATTENTION) {
            const char *w = attention_why(m, st);
            snprintf(name, sizeof name, "blocks.%d.attn.matmul1", st->block);
            if (!w) {
                is->mode = SFQ_IMODE_INT;
                snprintf(detail, sizeof detail, "u8 x u8 q k^T (A%d)", m->q->acts[st->pt[SFQ_PT_Q]].bits);
            } else {
                snprintf(detail, sizeof detail, "fake-quantized float: %s", w);
            }
            add_line(&t, name, is->mode == SFQ_IMODE_INT ? "int" : "float", detail);
            ip->n_int += is->mode == SFQ_IMODE_INT;
            ip->n_float += is->mode != SFQ_IMODE_INT;
            snprintf(name, sizeof name, "blocks.%d.attn.matmul2", st->block);
            snprintf(detail, sizeof detail, "fake-quantized float: %s",
                     st->pt[SFQ_PT_PROBS] >= 0 && m->q->acts[st->pt[SFQ_PT_PROBS]].kind == SFQ_QK_LOG
                         ? "the probabilities' log-sqrt2 levels are not affine"
                         : "the probabilities are not quantized with integer zero points");
            add_line(&t, name, "float", detail);
            ip->n_float++;
            continue;
        } else {
            continue;
        }
        add_line(&t, name, is->mode == SFQ_IMODE_INT ? "int" : "float", detail);
        ip->n_int += is->mode == SFQ_IMODE_INT;
        ip->n_float += is->mode != SFQ_IMODE_INT;
    }
    if (!s && t.oom)
        s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    if (s) {
        sfq_free(t.buf);
        sfq_iplan_free(ip);
        return s;
    }
    ip->report = t.buf;
    ip->float_params = m->n_params - ip->int_weights;
    m->ip = ip;
    return SARDFQ_OK;
}

/* ---- weights held as codes ------------------------------------------------ */

const sfq_ipack *sfq_iplan_pack(const sardfq_model *m, int lin)
{
    const sfq_iplan *ip = m->ip;
    const sfq_plan *p = m->plan;
    for (int i = 0; ip && lin >= 0 && i < p->nsteps; i++) {
        const sfq_step *st = &p->steps[i];
        if ((st->op != SFQ_OP_LINEAR && st->op != SFQ_OP_HEAD) || st->lin < 0 ||
            ip->steps[i].mode != SFQ_IMODE_INT)
            continue;
        /* a distilled head holds two weights: lin and lin + 1 */
        const int k = lin - st->lin;
        if (k == 0 || (k == 1 && st->op == SFQ_OP_HEAD && ip->steps[i].wscale[1]))
            return &ip->steps[i].w[k];
    }
    return NULL;
}

int sfq_iplan_dequant(const sardfq_model *m, int lin, float *out)
{
    const sfq_ipack *pk = sfq_iplan_pack(m, lin);
    if (!pk)
        return -1;
    const sfq_uq *rows = m->q->lin[lin].rows;
    for (int r = 0; r < pk->n; r++) {
        float *o = out + (size_t)r * (size_t)pk->k;
        sfq_ipack_levels(pk, r, o);
        for (int c = 0; c < pk->k; c++)
            o[c] = sfq_uq_value(&rows[r], o[c]);
    }
    return 0;
}
