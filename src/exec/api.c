/* api.c - the public run entry points on a model: inference, the run state
 * (forward that keeps, read-backs, backward to the input), and the internal
 * run interface that synthesis and the quantizer use. Arguments are checked
 * here; the executor (fp32.c) runs the plan. */
#include "exec.h"

#include <string.h>

#define MAX_IMAGES (1 << 20)

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

SARDFQ_API sardfq_status sardfq_model_forward(const sardfq_model *m, const float *images, int n, float *logits)
{
    sardfq_status s = check_images(m, images, n, "sardfq_model_forward");
    if (s)
        return s;
    if (!logits)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_forward: logits is NULL");
    return sfq_exec_forward(m, NULL, images, n, logits);
}

sardfq_status sfq_forward_blocks(const sardfq_model *m, const float *images, int n, int upto, float *x)
{
    return sfq_exec_forward_blocks(m, NULL, images, n, upto, x);
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

SARDFQ_API void sardfq_state_free(sardfq_state *s)
{
    if (!s)
        return;
    sfq_free(s->buffers);
    sfq_free(s->kept);
    sfq_free(s->work);
    sfq_free(s);
}

#define PUBLIC_FLAGS (SARDFQ_FORWARD_ATTENTION | SARDFQ_FORWARD_BACKWARD | SARDFQ_FORWARD_FEATURES)

sardfq_status sfq_forward_state(const sardfq_model *m, sardfq_state *s, const float *images, int n,
                                uint32_t flags, float *logits)
{
    return sfq_exec_forward_state(m, s, images, n, flags, logits);
}

SARDFQ_API sardfq_status sardfq_model_forward_ex(const sardfq_model *m, sardfq_state *s, const float *images, int n,
                                                 uint32_t flags, float *logits)
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
    return sfq_exec_forward_state(m, s, images, n, flags, logits);
}

void sfq_block_attention_shape(const sardfq_model *m, int l, int *windows, int *tokens, int *heads, int *head_dim)
{
    const sfq_plan *p = m->plan;
    for (int i = p->block_first[l]; i < p->block_first[l + 1]; i++) {
        const sfq_step *st = &p->steps[i];
        if (st->op != SFQ_OP_ATTENTION)
            continue;
        *windows = sfq_attention_windows(st);
        *tokens = st->tokens;
        *heads = st->heads;
        *head_dim = st->dim / st->heads;
        return;
    }
}

const float *sfq_state_attn_output(const sardfq_state *s, int block)
{
    if (!s->n || !(s->flags & SFQ_FORWARD_KEEP_AO) || block < 0 || block >= s->model->info.depth)
        return NULL;
    const sfq_plan *p = s->model->plan;
    for (int i = p->block_first[block]; i < p->block_first[block + 1]; i++)
        if (p->steps[i].op == SFQ_OP_ATTENTION)
            return s->kept[i].out;
    return NULL;
}

/* Copy a kept per-image array of the last forward (flag) into out. */
static sardfq_status state_read(const sardfq_state *s, uint32_t flag, const char *flagname, const float *src,
                                size_t per_image, float *out, size_t count, const char *fn)
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
                      s ? (size_t)s->model->info.attention_floats : 0, out, count, "sardfq_state_get_attention");
}

SARDFQ_API sardfq_status sardfq_state_get_features(const sardfq_state *s, float *out, size_t count)
{
    return state_read(s, SARDFQ_FORWARD_FEATURES, "SARDFQ_FORWARD_FEATURES", s ? s->feat : NULL,
                      s ? (size_t)s->model->info.num_features : 0, out, count, "sardfq_state_get_features");
}

/* ---- backward --------------------------------------------------------- */

SARDFQ_API sardfq_status sardfq_model_backward(const sardfq_model *m, sardfq_state *s, const float *dlogits,
                                               const float *dattn, float *dimages)
{
    return sfq_backward_state(m, s, dlogits, dattn, NULL, dimages);
}

sardfq_status sfq_backward_state(const sardfq_model *m, sardfq_state *s, const float *dlogits,
                                 const float *dattn, const float *dao, float *dimages)
{
    if (!m || !s || !dimages)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_backward: %s is NULL",
                        !m ? "model" : !s ? "state" : "dimages");
    if (s->model != m)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_backward: the state belongs to another model");
    if (!s->n || !(s->flags & SARDFQ_FORWARD_BACKWARD))
        return sfq_fail(SARDFQ_E_STATE, "sardfq_model_backward: the last forward_ex did not keep "
                                        "activations (flag SARDFQ_FORWARD_BACKWARD)");
    return sfq_exec_backward(m, s, dlogits, dattn, dao, dimages);
}
