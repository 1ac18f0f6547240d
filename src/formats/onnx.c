/* onnx.c - a model as an ONNX file, written from its plan.
 *
 * The exporter walks the model's plan (graph/plan.h) step by step, as the
 * executors do, and emits for each step the standard ONNX ops that compute
 * it; it knows no architecture. Every plan variable is a tensor of shape
 * [N][rows][cols] (N the batch); a step that updates a variable in place
 * (the residual stream) produces a new tensor that becomes the variable's
 * current one. The quantization points a step names are emitted after it,
 * where the fake-quantized executor applies them.
 *
 * Ops (opset 17): PATCHIFY = Reshape, Transpose, Reshape (after a Slice
 * when the image is larger than its patch grid); LINEAR = MatMul with the
 * transposed weight, Add of the bias (and of the stream when it
 * accumulates); LAYERNORM = LayerNormalization; GELU = x 0.5 (1 + erf(x /
 * sqrt 2)) in five ops (ONNX Runtime fuses them into its Gelu); PREFIX_POS
 * = Expand of the prefix tokens, Concat, Add; the window permutations and
 * the patch merging = Gather along the token axis with the plan's own
 * index maps (sfq_window_pos); ATTENTION = Slice of q, k, v, Reshape and
 * Transpose to [N][windows][heads][tokens][hd], MatMul, Mul by the scale,
 * Add of the relative-position bias and of the shifted-window mask (the
 * executor's -100), Softmax, MatMul, Transpose, Reshape; SELECT_PREFIX =
 * Slice; MEAN_TOKENS = ReduceMean; HEAD = MatMul + Add (two heads: their
 * mean).
 *
 * Quantizers (flavor EXACT): see sardfq.h. Weights of a quantized linear
 * are stored as their uint8 codes [in][out] with per-output-channel scale
 * and zero point (DequantizeLinear axis 1) when the codes reproduce the
 * model's weights exactly; a row whose zero point lies outside [0, 255]
 * (RepQ-ViT's search puts it there when all the row's weights have one
 * sign) has its codes and zero point shifted together when the shifted
 * codes fit in [0, 255]. Otherwise (such a row at 8 bits: the Fashion-MNIST
 * Swin's 4-input patch embedding) the linear is written with its
 * fake-quantized float32 weights (the same values; ONNX Runtime then runs
 * it in float). */
#define SARDFQ_EXPERIMENTAL
#include "core.h"
#include "plan.h"
#include "qspec.h"
#include "vit.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

SARDFQ_API void sardfq_export_default_params(sardfq_export_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->flavor = SARDFQ_ONNX_EXACT;
    p->batch = 0;
}

#ifndef SFQ_HAVE_ONNX

SARDFQ_API sardfq_status sardfq_model_export_onnx(const sardfq_model *m, const char *path,
                                                  const sardfq_export_params *p)
{
    (void)m;
    (void)path;
    (void)p;
    return sfq_fail(SARDFQ_E_UNSUPPORTED, "sardfq_model_export_onnx: this libsardfq was built without ONNX "
                                          "export (meson feature 'onnx': needs libprotobuf-c-dev, "
                                          "protobuf-c-compiler and libonnx-dev)");
}

#else

#include "onnx.pb-c.h"

#define OPSET 17
#define IR_VERSION 8
#define MASK_VALUE (-100.0f) /* the executor's (attention.c) */

enum { T_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, T_U8 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
       T_I64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64 };

/* The graph being built. Every allocation is recorded in `own` and freed
 * at the end; out of memory sets `oom` and makes the helpers no-ops (the
 * caller checks once). */
typedef struct {
    void **own;
    size_t nown, capown;
    Onnx__NodeProto **nodes;
    size_t nn, capn;
    Onnx__TensorProto **inits;
    size_t ni, capi;
    int counter, oom;
    const sardfq_model *m;
    const sfq_qspec *q;
    int flavor;       /* SARDFQ_ONNX_* */
    const char **cur; /* current tensor of each plan variable */
    const char *input;
} ob;

static void *oalloc(ob *b, size_t size)
{
    if (b->oom)
        return NULL;
    if (b->nown == b->capown) {
        size_t cap = b->capown ? 2 * b->capown : 256;
        void **o = sfq_alloc_array(cap, sizeof *o);
        if (!o) {
            b->oom = 1;
            return NULL;
        }
        if (b->nown)
            memcpy(o, b->own, b->nown * sizeof *o);
        sfq_free(b->own);
        b->own = o;
        b->capown = cap;
    }
    void *p = sfq_alloc_zero(size ? size : 1);
    if (!p) {
        b->oom = 1;
        return NULL;
    }
    b->own[b->nown++] = p;
    return p;
}

static int push(ob *b, void ***arr, size_t *n, size_t *cap, void *item)
{
    if (b->oom || !item)
        return b->oom = 1, 0;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        void **a = sfq_alloc_array(c, sizeof *a);
        if (!a)
            return b->oom = 1, 0;
        if (*n)
            memcpy(a, *arr, *n * sizeof *a);
        sfq_free(*arr);
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = item;
    return 1;
}

static char *ostr(ob *b, const char *fmt, ...) SFQ_PRINTF(2, 3);
static char *ostr(ob *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = len >= 0 ? oalloc(b, (size_t)len + 1) : NULL;
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* A fresh tensor name "<base>_<k>". */
static const char *fresh(ob *b, const char *base) { return ostr(b, "%s_%d", base, b->counter++); }

/* ---- initializers ------------------------------------------------------- */

static const char *init_raw(ob *b, const char *base, int type, const int64_t *dims, int nd, const void *data,
                            size_t bytes)
{
    Onnx__TensorProto *t = oalloc(b, sizeof *t);
    int64_t *d = oalloc(b, sizeof(int64_t) * (size_t)(nd ? nd : 1));
    uint8_t *raw = oalloc(b, bytes);
    const char *name = fresh(b, base);
    if (b->oom)
        return NULL;
    onnx__tensor_proto__init(t);
    if (nd > 0) /* a scalar has no dims (and dims may be NULL) */
        memcpy(d, dims, sizeof(int64_t) * (size_t)nd);
    memcpy(raw, data, bytes);
    t->n_dims = (size_t)nd;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = type;
    t->name = (char *)name;
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = raw;
    push(b, (void ***)&b->inits, &b->ni, &b->capi, t);
    return name;
}

static const char *init_f32(ob *b, const char *base, const int64_t *dims, int nd, const float *v)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)dims[i];
    return init_raw(b, base, T_FLOAT, dims, nd, v, n * sizeof(float));
}

static const char *scalar_f(ob *b, const char *base, float v) { return init_raw(b, base, T_FLOAT, NULL, 0, &v, 4); }
static const char *scalar_u8(ob *b, const char *base, uint8_t v) { return init_raw(b, base, T_U8, NULL, 0, &v, 1); }

static const char *ints(ob *b, const char *base, const int64_t *v, int n)
{
    const int64_t d = n;
    return init_raw(b, base, T_I64, &d, 1, v, sizeof(int64_t) * (size_t)n);
}

/* ---- nodes -------------------------------------------------------------- */

typedef struct {
    const char *name;
    int kind; /* 0 none, 'i' int, 'f' float, 'l' ints */
    int64_t i;
    float f;
    const int64_t *l;
    int nl;
} attr;

#define A_I(n, v) ((attr){(n), 'i', (v), 0.0f, NULL, 0})
#define A_F(n, v) ((attr){(n), 'f', 0, (v), NULL, 0})
#define A_L(n, v, c) ((attr){(n), 'l', 0, 0.0f, (v), (c)})

/* Append a node; returns its (single) output name, fresh from `base`. */
static const char *nodev(ob *b, const char *op, const char *base, const char *const *in, int nin, const attr *at,
                         int nat)
{
    Onnx__NodeProto *n = oalloc(b, sizeof *n);
    char **ins = oalloc(b, sizeof(char *) * (size_t)(nin ? nin : 1));
    char **outs = oalloc(b, sizeof(char *));
    Onnx__AttributeProto **ats = oalloc(b, sizeof(*ats) * (size_t)(nat ? nat : 1));
    const char *out = fresh(b, base);
    if (b->oom)
        return NULL;
    onnx__node_proto__init(n);
    for (int i = 0; i < nin; i++) {
        if (!in[i])
            return b->oom = 1, NULL; /* an input that failed to be made */
        ins[i] = (char *)in[i];
    }
    outs[0] = (char *)out;
    for (int i = 0; i < nat; i++) {
        Onnx__AttributeProto *a = oalloc(b, sizeof *a);
        if (!a)
            return NULL;
        onnx__attribute_proto__init(a);
        a->name = (char *)at[i].name;
        a->has_type = 1;
        if (at[i].kind == 'i') {
            a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
            a->has_i = 1;
            a->i = at[i].i;
        } else if (at[i].kind == 'f') {
            a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
            a->has_f = 1;
            a->f = at[i].f;
        } else {
            int64_t *l = oalloc(b, sizeof(int64_t) * (size_t)at[i].nl);
            if (!l)
                return NULL;
            memcpy(l, at[i].l, sizeof(int64_t) * (size_t)at[i].nl);
            a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
            a->n_ints = (size_t)at[i].nl;
            a->ints = l;
        }
        ats[i] = a;
    }
    n->op_type = (char *)op;
    n->name = (char *)fresh(b, op);
    n->n_input = (size_t)nin;
    n->input = ins;
    n->n_output = 1;
    n->output = outs;
    n->n_attribute = (size_t)nat;
    n->attribute = ats;
    push(b, (void ***)&b->nodes, &b->nn, &b->capn, n);
    return b->oom ? NULL : out;
}

static const char *node1(ob *b, const char *op, const char *x) { return nodev(b, op, op, &x, 1, NULL, 0); }
static const char *node2(ob *b, const char *op, const char *x, const char *y)
{
    const char *in[2] = {x, y};
    return nodev(b, op, op, in, 2, NULL, 0);
}

static const char *reshape(ob *b, const char *x, const int64_t *shape, int nd)
{
    return node2(b, "Reshape", x, ints(b, "shape", shape, nd));
}

static const char *transpose(ob *b, const char *x, const int64_t *perm, int nd)
{
    attr a = A_L("perm", perm, nd);
    return nodev(b, "Transpose", "Transpose", &x, 1, &a, 1);
}

/* x[..., start:end] along `axis`. */
static const char *slice(ob *b, const char *x, int64_t axis, int64_t start, int64_t end)
{
    const char *in[4] = {x, ints(b, "starts", &start, 1), ints(b, "ends", &end, 1), ints(b, "axes", &axis, 1)};
    return nodev(b, "Slice", "Slice", in, 4, NULL, 0);
}

static const char *gather_rows(ob *b, const char *x, const int64_t *idx, int n)
{
    attr a = A_I("axis", 1);
    const char *in[2] = {x, ints(b, "index", idx, n)};
    return nodev(b, "Gather", "Gather", in, 2, &a, 1);
}

/* ---- quantizers --------------------------------------------------------- */

/* QuantizeLinear + DequantizeLinear of x, per tensor, uint8. */
static const char *qdq(ob *b, const char *x, float scale, uint8_t zero)
{
    const char *sc = scalar_f(b, "act_scale", scale), *zp = scalar_u8(b, "act_zero", zero);
    const char *in[3] = {x, sc, zp};
    const char *qx = nodev(b, "QuantizeLinear", "q", in, 3, NULL, 0);
    const char *in2[3] = {qx, sc, zp};
    return nodev(b, "DequantizeLinear", "dq", in2, 3, NULL, 0);
}

/* Fake quantization of x by a uniform quantizer, as sfq_uq_apply. */
static const char *uniform(ob *b, const char *x, const sfq_uq *u)
{
    const float top = (float)((1 << u->bits) - 1);
    const int affine = u->zero == rintf(u->zero) && u->zero >= 0.0f && u->zero <= 255.0f;
    /* PSAQ-ViT's rint(x/D + z) is QuantizeLinear's rint(x/D) + z except at
     * ties after the float add: exact writes it as float ops, ORT as Q/DQ */
    if (affine && (u->form == SFQ_UQ_REPQ || b->flavor == SARDFQ_ONNX_ORT)) {
        if (u->bits < 8) {
            /* the 2^b levels: clamp first; an x clamped to the end value
             * rounds to that level exactly (lo / D, hi / D are integers up
             * to an ulp) */
            const char *in[3] = {x, scalar_f(b, "lo", (0.0f - u->zero) * u->scale),
                                 scalar_f(b, "hi", (top - u->zero) * u->scale)};
            x = nodev(b, "Clip", "Clip", in, 3, NULL, 0);
        }
        return qdq(b, x, u->scale, (uint8_t)u->zero);
    }
    /* the same arithmetic in float (a zero point QuantizeLinear cannot
     * hold) */
    const char *sc = scalar_f(b, "act_scale", u->scale), *z = scalar_f(b, "act_zero", u->zero);
    const char *t = node2(b, "Div", x, sc);
    if (u->form == SFQ_UQ_PSAQ)
        t = node1(b, "Round", node2(b, "Add", t, z));
    else
        t = node2(b, "Add", node1(b, "Round", t), z);
    const char *in[3] = {t, scalar_f(b, "zero", 0.0f), scalar_f(b, "top", top)};
    t = nodev(b, "Clip", "Clip", in, 3, NULL, 0);
    return node2(b, "Mul", node2(b, "Sub", t, z), sc);
}

/* Fake quantization by the log-sqrt2 quantizer, as sfq_lq_apply:
 * c = round(-2 log2(x / D)); zero where c >= 2^b, else 2^(-min(c, 2^b - 1) / 2) D
 * (c < 0, x above D, is clamped to level 0). */
static const char *logq(ob *b, const char *x, const sfq_lq *l)
{
    const float nlev = (float)(1 << l->bits);
    const char *c = node1(b, "Round", node2(b, "Mul", node1(b, "Log", node2(b, "Div", x, scalar_f(b, "D", l->scale))),
                                            scalar_f(b, "m2_ln2", (float)(-2.0 / log(2.0)))));
    const char *zero = node2(b, "GreaterOrEqual", c, scalar_f(b, "levels", nlev));
    const char *in[3] = {c, scalar_f(b, "zero", 0.0f), scalar_f(b, "top", nlev - 1.0f)};
    const char *q = nodev(b, "Clip", "Clip", in, 3, NULL, 0);
    const char *v = node2(b, "Pow", scalar_f(b, "two", 2.0f), node2(b, "Mul", q, scalar_f(b, "mhalf", -0.5f)));
    v = node2(b, "Mul", v, scalar_f(b, "D", l->scale));
    const char *w[3] = {zero, scalar_f(b, "zero", 0.0f), v};
    return nodev(b, "Where", "Where", w, 3, NULL, 0);
}

/* x after point pt (unchanged when the point is off). */
static const char *point(ob *b, int pt, const char *x)
{
    if (pt < 0 || !b->q)
        return x;
    const sfq_qact *a = &b->q->acts[pt];
    if (a->kind == SFQ_QK_UNIFORM)
        return uniform(b, x, &a->u);
    if (a->kind == SFQ_QK_LOG)
        /* ORT flavor: the probabilities on the uniform 8-bit grid of [0, 1]
         * that QuantizeLinear can hold, for the log-sqrt2 levels it cannot */
        return b->flavor == SARDFQ_ONNX_ORT ? qdq(b, x, 1.0f / 255.0f, 0) : logq(b, x, &a->lq);
    return x;
}

/* ---- weights ------------------------------------------------------------ */

/* The [K][N] operand of x W^T for W [N][K] (model weights, or their codes
 * behind a DequantizeLinear when linear `lin` is quantized and its codes
 * reproduce W exactly). W NULL: a weight that a final model holds only as
 * codes, read through sfq_qlin_weight_read. */
static const char *weight_t(ob *b, const float *W, int N, int K, int lin)
{
    const sfq_qweight *qw = b->q && lin >= 0 && lin < b->q->nlin ? &b->q->lin[lin] : NULL;
    const int64_t dims[2] = {K, N};
    if (!W) {
        float *v = oalloc(b, sizeof(float) * (size_t)K * N);
        if (!v || !(W = sfq_qlin_weight_read(b->m, lin, v))) {
            b->oom = 1;
            return NULL;
        }
    }
    if (qw && qw->bits > 0 && qw->rows) {
        uint8_t *codes = oalloc(b, (size_t)K * N), *row = oalloc(b, (size_t)K);
        float *sc = oalloc(b, sizeof(float) * (size_t)N), *back = oalloc(b, sizeof(float) * (size_t)K);
        uint8_t *zp = oalloc(b, (size_t)N);
        int ok = !b->oom;
        for (int r = 0; ok && r < N; r++) {
            const sfq_uq *u = &qw->rows[r];
            ok = u->zero == rintf(u->zero) && fabsf(u->zero) <= 4096.0f &&
                 sfq_uq_encode(u, W + (size_t)r * K, row, (size_t)K) == SARDFQ_OK &&
                 sfq_uq_decode(u, row, back, (size_t)K) == SARDFQ_OK;
            int lo = 255, hi = 0;
            for (int c = 0; ok && c < K; c++) {
                ok = back[c] == W[(size_t)r * K + c];
                lo = row[c] < lo ? row[c] : lo;
                hi = row[c] > hi ? row[c] : hi;
            }
            /* (q - z) is what DequantizeLinear needs: shift codes and zero
             * point together when z lies outside [0, 255] (RepQ-ViT puts
             * it there for a row of one sign) and the shifted codes fit */
            const int z = (int)u->zero, off = z < 0 ? -z : z > 255 ? 255 - z : 0;
            ok = ok && lo + off >= 0 && hi + off <= 255;
            for (int c = 0; ok && c < K; c++)
                codes[(size_t)c * N + r] = (uint8_t)(row[c] + off);
            sc[r] = u->scale;
            zp[r] = ok ? (uint8_t)(z + off) : 0;
        }
        if (ok) {
            const int64_t n = N;
            attr a = A_I("axis", 1);
            const char *in[3] = {init_raw(b, "w_codes", T_U8, dims, 2, codes, (size_t)K * N),
                                 init_raw(b, "w_scale", T_FLOAT, &n, 1, sc, sizeof(float) * (size_t)N),
                                 init_raw(b, "w_zero", T_U8, &n, 1, zp, (size_t)N)};
            return nodev(b, "DequantizeLinear", "w", in, 3, &a, 1);
        }
    }
    float *wt = oalloc(b, sizeof(float) * (size_t)K * N);
    if (!wt)
        return NULL;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < K; c++)
            wt[(size_t)c * N + r] = W[(size_t)r * K + c];
    return init_f32(b, "w", dims, 2, wt);
}

static const char *bias(ob *b, const float *v, int n)
{
    const int64_t d = n;
    return init_f32(b, "b", &d, 1, v);
}

/* ---- steps -------------------------------------------------------------- */

static const char *patchify(ob *b, const sfq_plan *p)
{
    const char *x = b->input;
    const int ph = p->grid_h * p->patch, pw = p->grid_w * p->patch;
    if (ph != p->img_h)
        x = slice(b, x, 2, 0, ph);
    if (pw != p->img_w)
        x = slice(b, x, 3, 0, pw);
    const int64_t s6[6] = {0, p->chans, p->grid_h, p->patch, p->grid_w, p->patch};
    const int64_t perm[6] = {0, 2, 4, 1, 3, 5};
    const int64_t s3[3] = {0, (int64_t)p->grid_h * p->grid_w, (int64_t)p->chans * p->patch * p->patch};
    return reshape(b, transpose(b, reshape(b, x, s6, 6), perm, 6), s3, 3);
}

static const char *prefix_pos(ob *b, const sfq_plan *p, const sfq_step *st, const char *tok)
{
    const int N = p->vars[st->out].rows, D = p->vars[st->out].cols, P = N - p->vars[st->in].rows;
    float *pre = oalloc(b, sizeof(float) * (size_t)P * D);
    if (!pre)
        return NULL;
    memcpy(pre, st->cls, sizeof(float) * (size_t)D);
    if (P == 2)
        memcpy(pre + D, st->dist, sizeof(float) * (size_t)D);
    const int64_t pd[3] = {1, P, D}, nd[3] = {1, N, D}, tail[2] = {P, D};
    /* [N][P][D]: the prefix expanded over the batch of tok */
    attr s0 = A_I("start", 0), s1 = A_I("end", 1);
    attr se[2] = {s0, s1};
    const char *nb = nodev(b, "Shape", "Shape", &tok, 1, se, 2);
    attr ax = A_I("axis", 0);
    const char *cin[2] = {nb, ints(b, "tail", tail, 2)};
    const char *shape = nodev(b, "Concat", "shape", cin, 2, &ax, 1);
    const char *prefix = node2(b, "Expand", init_f32(b, "prefix", pd, 3, pre), shape);
    attr a1 = A_I("axis", 1);
    const char *in[2] = {prefix, tok};
    const char *x = nodev(b, "Concat", "embed", in, 2, &a1, 1);
    x = point(b, st->pt[SFQ_PT_MID], x);
    return node2(b, "Add", x, init_f32(b, "pos", nd, 3, st->pos));
}

static const char *window_gather(ob *b, const sfq_step *st, const char *x, int inverse)
{
    const sfq_window *g = &st->win;
    const int N = g->gh * g->gw, Nw = g->wh * g->ww;
    int64_t *idx = oalloc(b, sizeof(int64_t) * (size_t)N);
    if (!idx)
        return NULL;
    for (int k = 0; k < N; k++) {
        const int pos = sfq_window_pos(g, k / Nw, k % Nw);
        if (inverse)
            idx[pos] = k;
        else
            idx[k] = pos;
    }
    return gather_rows(b, x, idx, N);
}

/* 2x2 merging: out row t = the in rows k = 0..3 at (2y + (k & 1), 2x + (k >> 1)). */
static const char *merge_gather(ob *b, const sfq_plan *p, const sfq_step *st, const char *x)
{
    const sfq_window *g = &st->win;
    const int ow = g->gw / 2, No = (g->gh / 2) * ow, C = p->vars[st->in].cols;
    int64_t *idx = oalloc(b, sizeof(int64_t) * 4 * (size_t)No);
    if (!idx)
        return NULL;
    for (int t = 0; t < No; t++)
        for (int k = 0; k < 4; k++)
            idx[4 * t + k] = (int64_t)(2 * (t / ow) + (k & 1)) * g->gw + 2 * (t % ow) + (k >> 1);
    const int64_t s[3] = {0, No, 4 * (int64_t)C};
    return reshape(b, gather_rows(b, x, idx, 4 * No), s, 3);
}

static const char *attention(ob *b, const sfq_step *st, const char *qkv)
{
    const int C = st->dim, H = st->heads, hd = C / H, Nw = st->tokens, W = sfq_attention_windows(st);
    const char *q = slice(b, qkv, 2, 0, C), *k = slice(b, qkv, 2, C, 2 * C), *v = slice(b, qkv, 2, 2 * C, 3 * C);
    float alpha = st->alpha;
    if (b->q && st->prescale_q) {
        /* as the executor: q is scaled before its quantizer */
        q = node2(b, "Mul", q, scalar_f(b, "alpha", alpha));
        alpha = 1.0f;
    }
    q = point(b, st->pt[SFQ_PT_Q], q);
    k = point(b, st->pt[SFQ_PT_K], k);
    v = point(b, st->pt[SFQ_PT_V], v);
    const int64_t s5[5] = {0, W, Nw, H, hd}, to_heads[5] = {0, 1, 3, 2, 4}, to_heads_t[5] = {0, 1, 3, 4, 2};
    q = transpose(b, reshape(b, q, s5, 5), to_heads, 5);
    k = transpose(b, reshape(b, k, s5, 5), to_heads_t, 5);
    v = transpose(b, reshape(b, v, s5, 5), to_heads, 5);
    const char *s = node2(b, "MatMul", q, k); /* [N][W][H][Nw][Nw] */
    if (alpha != 1.0f)
        s = node2(b, "Mul", s, scalar_f(b, "alpha", alpha));
    if (st->bias_table) {
        float *bt = oalloc(b, sizeof(float) * (size_t)H * Nw * Nw);
        if (!bt)
            return NULL;
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Nw * Nw; i++)
                bt[(size_t)h * Nw * Nw + i] = st->bias_table[(size_t)st->relidx[i] * H + h];
        const int64_t d[3] = {H, Nw, Nw};
        s = node2(b, "Add", s, init_f32(b, "rel_bias", d, 3, bt));
    }
    if (st->win.shifted) {
        float *mk = oalloc(b, sizeof(float) * (size_t)W * Nw * Nw);
        int *lab = oalloc(b, sizeof(int) * (size_t)Nw);
        if (!mk || !lab)
            return NULL;
        for (int w = 0; w < W; w++) {
            sfq_window_labels(&st->win, w, lab);
            for (int i = 0; i < Nw; i++)
                for (int j = 0; j < Nw; j++)
                    mk[((size_t)w * Nw + i) * Nw + j] = lab[i] != lab[j] ? MASK_VALUE : 0.0f;
        }
        const int64_t d[4] = {W, 1, Nw, Nw};
        s = node2(b, "Add", s, init_f32(b, "mask", d, 4, mk));
    }
    s = point(b, st->pt[SFQ_PT_SCORES], s);
    attr ax = A_I("axis", -1);
    const char *pr = nodev(b, "Softmax", "probs", &s, 1, &ax, 1);
    pr = point(b, st->pt[SFQ_PT_PROBS], pr);
    const char *o = node2(b, "MatMul", pr, v); /* [N][W][H][Nw][hd] */
    const int64_t back[5] = {0, 1, 3, 2, 4}, s3[3] = {0, (int64_t)W * Nw, C};
    return reshape(b, transpose(b, o, back, 5), s3, 3);
}

static const char *head(ob *b, const sfq_plan *p, const sfq_step *st, const char *in)
{
    const int P = p->vars[st->in].rows, D = p->vars[st->in].cols, K = b->m->info.num_classes;
    /* rows [N][1][D]: a 3-D MatMul, which ONNX Runtime does not turn into
     * a float Gemm before its quantized-MatMul fusion */
    const char *rows[2];
    for (int r = 0; r < P; r++)
        rows[r] = point(b, st->pt[SFQ_PT_IN0 + r], slice(b, in, 1, r, r + 1));
    const int64_t s2[2] = {0, K};
    const char *y = node2(b, "MatMul", rows[0], weight_t(b, st->w, K, D, st->lin));
    if (P == 1)
        return reshape(b, node2(b, "Add", y, bias(b, st->b, K)), s2, 2);
    /* the two heads' mean */
    float *bb = oalloc(b, sizeof(float) * (size_t)K);
    if (!bb)
        return NULL;
    for (int j = 0; j < K; j++)
        bb[j] = st->b[j] + st->b2[j];
    y = node2(b, "Add", y, node2(b, "MatMul", rows[1], weight_t(b, st->w2, K, D, st->lin + 1)));
    return reshape(b, node2(b, "Mul", node2(b, "Add", y, bias(b, bb, K)), scalar_f(b, "half", 0.5f)), s2, 2);
}

static const char *linear(ob *b, const sfq_plan *p, const sfq_step *st, const char *x)
{
    const int K = p->vars[st->in].cols, N = p->vars[st->out].cols;
    const char *y = node2(b, "Add", node2(b, "MatMul", x, weight_t(b, st->w, N, K, st->lin)), bias(b, st->b, N));
    if (!st->accumulate)
        return y;
    y = point(b, st->pt[SFQ_PT_PRE_ADD], y);
    return node2(b, "Add", b->cur[st->out], y);
}

static const char *gelu(ob *b, const char *x)
{
    const char *e = node1(b, "Erf", node2(b, "Div", x, scalar_f(b, "sqrt2", (float)sqrt(2.0))));
    const char *t = node2(b, "Mul", x, node2(b, "Add", e, scalar_f(b, "one", 1.0f)));
    return node2(b, "Mul", t, scalar_f(b, "half", 0.5f));
}

/* The output tensor of step i (NULL for the head: *logits instead). */
static const char *step(ob *b, const sfq_plan *p, int i, const char **logits)
{
    const sfq_step *st = &p->steps[i];
    const char *in = st->in >= 0 ? b->cur[st->in] : NULL;
    switch (st->op) {
    case SFQ_OP_PATCHIFY: return patchify(b, p);
    case SFQ_OP_LINEAR: return linear(b, p, st, in);
    case SFQ_OP_LAYERNORM: {
        attr a[2] = {A_I("axis", -1), A_F("epsilon", b->m->info.ln_eps)};
        const int64_t d = p->vars[st->out].cols;
        const char *x[3] = {in, init_f32(b, "ln_w", &d, 1, st->w), init_f32(b, "ln_b", &d, 1, st->b)};
        return nodev(b, "LayerNormalization", "ln", x, 3, a, 2);
    }
    case SFQ_OP_GELU: return gelu(b, in);
    case SFQ_OP_PREFIX_POS: return prefix_pos(b, p, st, in);
    case SFQ_OP_WINDOW_GATHER: return window_gather(b, st, in, 0);
    case SFQ_OP_WINDOW_SCATTER_ADD: return node2(b, "Add", b->cur[st->out], window_gather(b, st, in, 1));
    case SFQ_OP_MERGE_GATHER: return merge_gather(b, p, st, in);
    case SFQ_OP_ATTENTION: return attention(b, st, in);
    case SFQ_OP_SELECT_PREFIX: return slice(b, in, 1, 0, p->vars[st->out].rows);
    case SFQ_OP_MEAN_TOKENS: {
        const int64_t ax = 1;
        attr a[2] = {A_L("axes", &ax, 1), A_I("keepdims", 1)};
        return nodev(b, "ReduceMean", "mean", &in, 1, a, 2);
    }
    case SFQ_OP_HEAD:
        *logits = point(b, st->pt[SFQ_PT_OUT], head(b, p, st, in));
        return NULL;
    default: b->oom = 1; return NULL; /* not reached: the plan's ops are all above */
    }
}

/* ---- the model ---------------------------------------------------------- */

static Onnx__ValueInfoProto *value_info(ob *b, const char *name, const int64_t *dims, int nd, int batch)
{
    Onnx__ValueInfoProto *v = oalloc(b, sizeof *v);
    Onnx__TypeProto *t = oalloc(b, sizeof *t);
    Onnx__TypeProto__Tensor *tt = oalloc(b, sizeof *tt);
    Onnx__TensorShapeProto *sh = oalloc(b, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dd = oalloc(b, sizeof(*dd) * (size_t)nd);
    if (b->oom)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < nd; i++) {
        Onnx__TensorShapeProto__Dimension *d = oalloc(b, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0 && batch <= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = "N";
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = i == 0 ? batch : dims[i];
        }
        dd[i] = d;
    }
    sh->n_dim = (size_t)nd;
    sh->dim = dd;
    tt->has_elem_type = 1;
    tt->elem_type = T_FLOAT;
    tt->shape = sh;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->name = (char *)name;
    v->type = t;
    return v;
}

static const char *arch_str(int32_t a)
{
    return a == SARDFQ_ARCH_SWIN ? "swin" : a == SARDFQ_ARCH_DEIT_DISTILLED ? "deit_distilled" : "vit";
}

static char *floats3(ob *b, const float *v, int n)
{
    return n == 1 ? ostr(b, "%.9g", (double)v[0]) : ostr(b, "%.9g,%.9g,%.9g", (double)v[0], (double)v[1], (double)v[2]);
}

static sardfq_status write_atomic(const char *path, const uint8_t *buf, size_t len)
{
    size_t tl = strlen(path) + 32;
    char *tmp = sfq_alloc(tl);
    if (!tmp)
        return sfq_fail(SARDFQ_E_NOMEM, "sardfq_model_export_onnx: out of memory");
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        sardfq_status s = sfq_fail(SARDFQ_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
        sfq_free(tmp);
        return s;
    }
    int ok = fwrite(buf, 1, len, fp) == len && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int e = errno;
    if (fclose(fp) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    sardfq_status s = SARDFQ_OK;
    if (!ok) {
        remove(tmp);
        s = sfq_fail(SARDFQ_E_IO, "cannot write '%s': %s", path, strerror(e));
    }
    sfq_free(tmp);
    return s;
}

static void ob_free(ob *b)
{
    for (size_t i = 0; i < b->nown; i++)
        sfq_free(b->own[i]);
    sfq_free(b->own);
    sfq_free(b->nodes);
    sfq_free(b->inits);
}

SARDFQ_API sardfq_status sardfq_model_export_onnx(const sardfq_model *m, const char *path,
                                                  const sardfq_export_params *pin)
{
    if (!m || !path)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_export_onnx: NULL %s", m ? "path" : "model");
    sardfq_export_params ep;
    sardfq_export_default_params(&ep);
    sardfq_status s = sfq_read_params(pin, &ep, sizeof ep, sizeof ep, "sardfq_export_params");
    if (s)
        return s;
    if (ep.flavor != SARDFQ_ONNX_EXACT && ep.flavor != SARDFQ_ONNX_ORT)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_export_onnx: unknown flavor %d", (int)ep.flavor);
    if (ep.batch < 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_model_export_onnx: batch %d < 0", (int)ep.batch);
    const sfq_plan *p = m->plan;
    ob b = {.m = m, .q = m->q, .flavor = ep.flavor};
    b.cur = oalloc(&b, sizeof(char *) * (size_t)p->nvars);
    b.input = "input";
    const char *logits = NULL;
    for (int i = 0; i < p->nsteps && !b.oom; i++) {
        const sfq_step *st = &p->steps[i];
        const char *out = step(&b, p, i, &logits);
        if (st->out >= 0 && out)
            b.cur[st->out] = point(&b, st->pt[SFQ_PT_OUT], out);
    }
    if (!b.oom && logits) {
        /* name the graph output "logits" */
        const char *y = nodev(&b, "Identity", "logits", &logits, 1, NULL, 0);
        if (y)
            b.nodes[b.nn - 1]->output[0] = "logits";
    }
    const sardfq_model_info *c = &m->info;
    const int64_t idims[4] = {0, c->in_chans, c->img_h, c->img_w}, odims[2] = {0, c->num_classes};
    Onnx__ValueInfoProto *vin = value_info(&b, "input", idims, 4, ep.batch);
    Onnx__ValueInfoProto *vout = value_info(&b, "logits", odims, 2, ep.batch);
    /* metadata */
    const char *keys[8] = {"arch", "mean", "std", "crop_pct", "quant_scheme", "weight_bits", "act_bits", "producer"};
    const char *vals[8] = {arch_str(c->arch), floats3(&b, c->mean, c->in_chans), floats3(&b, c->std, c->in_chans),
                           ostr(&b, "%.9g", (double)c->crop_pct), NULL, NULL, NULL,
                           ostr(&b, "libsardfq %s", sardfq_version_string())};
    int nmeta = 4;
    if (m->q) {
        vals[nmeta++] = m->q->scheme == SARDFQ_SCHEME_REPQ ? "repq" : "minmax";
        vals[nmeta++] = ostr(&b, "%d", m->q->wbits);
        vals[nmeta++] = ostr(&b, "%d", m->q->abits);
    }
    keys[nmeta] = "producer";
    vals[nmeta] = vals[7];
    nmeta++;
    Onnx__StringStringEntryProto **meta = oalloc(&b, sizeof(*meta) * (size_t)nmeta);
    for (int i = 0; i < nmeta && !b.oom; i++) {
        Onnx__StringStringEntryProto *e = oalloc(&b, sizeof *e);
        if (!e)
            break;
        onnx__string_string_entry_proto__init(e);
        e->key = (char *)keys[i];
        e->value = (char *)vals[i];
        meta[i] = e;
    }
    if (b.oom || !logits) {
        ob_free(&b);
        return sfq_fail(b.oom ? SARDFQ_E_NOMEM : SARDFQ_E_INTERNAL, "sardfq_model_export_onnx: %s",
                        b.oom ? "out of memory" : "the plan has no head");
    }
    Onnx__GraphProto g;
    onnx__graph_proto__init(&g);
    g.name = "sardfq";
    g.n_node = b.nn;
    g.node = b.nodes;
    g.n_initializer = b.ni;
    g.initializer = b.inits;
    g.n_input = 1;
    g.input = &vin;
    g.n_output = 1;
    g.output = &vout;
    Onnx__OperatorSetIdProto ops;
    onnx__operator_set_id_proto__init(&ops);
    ops.domain = "";
    ops.has_version = 1;
    ops.version = OPSET;
    Onnx__OperatorSetIdProto *opsp = &ops;
    Onnx__ModelProto mp;
    onnx__model_proto__init(&mp);
    mp.has_ir_version = 1;
    mp.ir_version = IR_VERSION;
    mp.n_opset_import = 1;
    mp.opset_import = &opsp;
    mp.producer_name = "libsardfq";
    mp.producer_version = (char *)sardfq_version_string();
    mp.graph = &g;
    mp.n_metadata_props = (size_t)nmeta;
    mp.metadata_props = meta;
    const size_t len = onnx__model_proto__get_packed_size(&mp);
    if (len > (size_t)INT32_MAX) {
        ob_free(&b);
        return sfq_fail(SARDFQ_E_UNSUPPORTED,
                        "sardfq_model_export_onnx: the model needs %zu bytes, over protobuf's 2 GiB "
                        "(external data is not written)",
                        len);
    }
    uint8_t *buf = sfq_alloc(len ? len : 1);
    if (!buf) {
        ob_free(&b);
        return sfq_fail(SARDFQ_E_NOMEM, "sardfq_model_export_onnx: out of memory (%zu bytes)", len);
    }
    onnx__model_proto__pack(&mp, buf);
    ob_free(&b);
    s = write_atomic(path, buf, len);
    sfq_free(buf);
    return s;
}

#endif /* SFQ_HAVE_ONNX */
