/* qio.c - a quantized model in a safetensors file.
 *
 * Next to the usual timm tensors (norms, biases, tokens, position
 * embedding as F32), a quantized file has:
 *   metadata  sardfq.quant.scheme = repq | minmax, sardfq.quant.weight_bits,
 *             sardfq.quant.act_bits, sardfq.quant.format = 1;
 *             sardfq.q.<point> = "uniform B" | "uniform-psaq B" | "log B"
 *             for every activation quantizer that is on;
 *             sardfq.q.<W> = "B d0,d1[,...]" for every quantized weight
 *             tensor W ("blocks.0.attn.qkv.weight", ...), its logical shape;
 *   tensors   <point>.scale, <point>.zero  F32 [1] (log: scale only);
 *             <W>_scale, <W>_zero          F32 [rows];
 *             <W>_codes U8 [rows][cols] for B > 4, or [rows][(cols+1)/2]
 *             for B <= 4, low nibble = even column.
 * The weight values are (code - zero) * scale, computed exactly as the
 * quantizer's fake quantization, so a loaded model is bitwise the saved one. */
#include "qio.h"

#include "names.h"
#include "vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ------------------------------------------------------------ */

static sardfq_status read_small(const sfq_st_file *st, const char *name, int64_t count, float *dst,
                                char *used)
{
    const sfq_st_tensor *t = sfq_st_find(st, name);
    if (!t)
        return sfq_fail(SARDFQ_E_FORMAT, "quantized model: missing tensor '%s'", name);
    if (t->dtype != SFQ_DT_F32 || t->numel != count)
        return sfq_fail(SARDFQ_E_FORMAT, "quantized model: '%s' must be F32 with %lld values", name,
                        (long long)count);
    sardfq_status s = sfq_st_read_f32(st, t, dst);
    if (!s && used)
        used[t - st->tensors] = 1;
    return s;
}

int sfq_qfile_is_quantized(const sfq_st_file *st)
{
    return sfq_st_meta(st, "sardfq.quant.scheme") != NULL;
}

/* "B d0,d1,..." */
static int parse_weight_meta(const char *v, int *bits, int64_t *shape, int *ndim)
{
    char *end;
    long b = strtol(v, &end, 10);
    if (end == v || *end != ' ' || b < SFQ_QBITS_MIN || b > SFQ_QBITS_MAX)
        return 0;
    *bits = (int)b;
    *ndim = 0;
    const char *p = end + 1;
    while (*ndim < SFQ_ST_MAX_DIMS) {
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 1 || d > (1LL << 31))
            return 0;
        shape[(*ndim)++] = d;
        if (*end == 0)
            return 1;
        if (*end != ',')
            return 0;
        p = end + 1;
    }
    return 0;
}

sardfq_status sfq_qview_prepare(const sfq_st_file *st, sfq_st_file *view)
{
    *view = *st;
    view->tensors = sfq_alloc_array((size_t)st->n_tensors + 1, sizeof(sfq_st_tensor));
    if (!view->tensors)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    memcpy(view->tensors, st->tensors, sizeof(sfq_st_tensor) * (size_t)st->n_tensors);
    sardfq_status s = SARDFQ_OK;
    for (int i = 0; i < st->n_tensors && !s; i++) {
        sfq_st_tensor *t = &view->tensors[i];
        const size_t len = strlen(t->name);
        char wname[200], key[220];
        if (len < 7 || strcmp(t->name + len - 6, "_codes") != 0 || len - 6 >= sizeof wname)
            continue;
        memcpy(wname, t->name, len - 6);
        wname[len - 6] = 0;
        snprintf(key, sizeof key, "sardfq.q.%s", wname);
        const char *v = sfq_st_meta(st, key);
        int bits, ndim;
        int64_t shape[SFQ_ST_MAX_DIMS], numel = 1;
        if (!v || !parse_weight_meta(v, &bits, shape, &ndim)) {
            s = sfq_fail(SARDFQ_E_FORMAT, "quantized model: '%s' has no valid metadata %s", t->name, key);
            break;
        }
        for (int d = 0; d < ndim; d++)
            numel *= shape[d];
        const int64_t cols = numel / shape[0];
        if (t->dtype != SFQ_DT_U8 || t->ndim != 2 || t->shape[0] != shape[0] ||
            (size_t)t->shape[1] != sfq_qcodes_row_bytes(bits, (int)cols)) {
            s = sfq_fail(SARDFQ_E_FORMAT, "quantized model: '%s' must be U8 [%lld, %zu]", t->name,
                         (long long)shape[0], sfq_qcodes_row_bytes(bits, (int)cols));
            break;
        }
        if (sfq_st_find(st, wname)) {
            s = sfq_fail(SARDFQ_E_FORMAT, "quantized model: both '%s' and its codes", wname);
            break;
        }
        /* every code within its width (the integer kernels and the
         * dequantization read them as they are) */
        if (bits < 8) {
            const uint8_t *c = st->data + t->begin;
            const size_t rb = sfq_qcodes_row_bytes(bits, (int)cols);
            const int top = (1 << bits) - 1;
            for (int64_t r = 0; r < shape[0] && !s; r++)
                for (int64_t k = 0; k < cols; k++) {
                    const int code = sfq_qcode_get(c + (size_t)r * rb, (int)k, bits);
                    if (code > top) {
                        s = sfq_fail(SARDFQ_E_FORMAT, "quantized model: '%s' row %lld column %lld: code %d exceeds "
                                     "%d bits", t->name, (long long)r, (long long)k, code, bits);
                        break;
                    }
                }
            if (s)
                break;
        }
        /* present the codes under the weight's name and logical shape, so the
         * configuration is read exactly as from a floating-point file; the
         * byte range still holds the codes (the loader hands U8 to the
         * model, which packs or decodes them) */
        char *nm = sfq_strdup(wname);
        if (!nm) {
            s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
            break;
        }
        t->name = nm;
        t->ndim = ndim;
        memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
        t->numel = numel;
    }
    if (s)
        sfq_qview_release(st, view);
    return s;
}

void sfq_qview_release(const sfq_st_file *st, sfq_st_file *view)
{
    if (!view->tensors)
        return;
    for (int i = 0; i < st->n_tensors; i++)
        if (view->tensors[i].name != st->tensors[i].name)
            sfq_free(view->tensors[i].name);
    sfq_free(view->tensors);
    view->tensors = NULL;
}

sardfq_status sfq_qspec_read(const sfq_st_file *st, const sardfq_model_info *cfg, char *used,
                             sfq_qspec **out)
{
    sfq_qspec *q;
    sardfq_status s = sfq_qspec_new(cfg, &q);
    if (s)
        return s;
    const char *scheme = sfq_st_meta(st, "sardfq.quant.scheme");
    const char *fmt = sfq_st_meta(st, "sardfq.quant.format");
    const char *wb = sfq_st_meta(st, "sardfq.quant.weight_bits");
    const char *ab = sfq_st_meta(st, "sardfq.quant.act_bits");
    char key[240], name[120];
    if (!fmt || strcmp(fmt, "1") != 0) {
        s = sfq_fail(SARDFQ_E_UNSUPPORTED, "quantized model: format '%s' (this library reads 1)",
                     fmt ? fmt : "(none)");
        goto fail;
    }
    if (strcmp(scheme, "repq") == 0)
        q->scheme = SARDFQ_SCHEME_REPQ;
    else if (strcmp(scheme, "minmax") == 0)
        q->scheme = SARDFQ_SCHEME_MINMAX;
    else {
        s = sfq_fail(SARDFQ_E_UNSUPPORTED, "quantized model: unknown scheme '%s'", scheme);
        goto fail;
    }
    q->wbits = wb ? atoi(wb) : 0;
    q->abits = ab ? atoi(ab) : 0;
    for (int i = 0; i < sfq_qspec_n_points(cfg); i++) {
        sfq_qpoint_name(cfg, i, name, sizeof name);
        snprintf(key, sizeof key, "sardfq.q.%s", name);
        const char *v = sfq_st_meta(st, key);
        if (!v)
            continue;
        char kind[32];
        int bits;
        sfq_qact *a = &q->acts[i];
        if (sscanf(v, "%31s %d", kind, &bits) != 2 || bits < SFQ_QBITS_MIN || bits > SFQ_QBITS_MAX) {
            s = sfq_fail(SARDFQ_E_FORMAT, "quantized model: bad metadata %s='%s'", key, v);
            goto fail;
        }
        a->bits = bits;
        float sc, zr = 0;
        snprintf(key, sizeof key, "%s.scale", name);
        if ((s = read_small(st, key, 1, &sc, used)))
            goto fail;
        if (strcmp(kind, "log") == 0) {
            if (q->scheme == SARDFQ_SCHEME_MINMAX) {
                s = sfq_fail(SARDFQ_E_FORMAT, "quantized model: %s is 'log', which the minmax scheme does not use",
                             name);
                goto fail;
            }
            a->kind = SFQ_QK_LOG;
            a->lq.scale = sc;
            a->lq.bits = bits;
            s = sfq_lq_check(&a->lq);
        } else if (strcmp(kind, "uniform") == 0 || strcmp(kind, "uniform-psaq") == 0) {
            snprintf(key, sizeof key, "%s.zero", name);
            if ((s = read_small(st, key, 1, &zr, used)))
                goto fail;
            a->kind = SFQ_QK_UNIFORM;
            a->u.scale = sc;
            a->u.zero = zr;
            a->u.bits = bits;
            a->u.form = kind[7] ? SFQ_UQ_PSAQ : SFQ_UQ_REPQ;
            s = sfq_uq_check(&a->u);
            if (!s && (a->u.form == SFQ_UQ_PSAQ) != (q->scheme == SARDFQ_SCHEME_MINMAX))
                s = sfq_fail(SARDFQ_E_FORMAT, "quantized model: %s is '%s', which the %s scheme does not use", name,
                             kind, q->scheme == SARDFQ_SCHEME_MINMAX ? "minmax" : "repq");
        } else {
            s = sfq_fail(SARDFQ_E_FORMAT, "quantized model: unknown quantizer '%s' for %s", kind, name);
        }
        if (s)
            goto fail;
    }
    for (int i = 0; i < sfq_qspec_n_linears(cfg); i++) {
        if (!sfq_qlin_exists(cfg, i))
            continue;
        sfq_qlin_tensor_name(cfg, i, name, sizeof name);
        snprintf(key, sizeof key, "sardfq.q.%s", name);
        const char *v = sfq_st_meta(st, key);
        if (!v)
            continue;
        int bits, ndim;
        int64_t shape[SFQ_ST_MAX_DIMS];
        if (!parse_weight_meta(v, &bits, shape, &ndim) || shape[0] != sfq_qlin_rows(cfg, i)) {
            s = sfq_fail(SARDFQ_E_FORMAT, "quantized model: bad metadata %s='%s'", key, v);
            goto fail;
        }
        if ((s = sfq_qspec_set_weight(q, cfg, i, bits)))
            goto fail;
        const int rows = sfq_qlin_rows(cfg, i);
        float *tmp = sfq_alloc_array((size_t)rows * 2, sizeof(float));
        if (!tmp) {
            s = sfq_fail(SARDFQ_E_NOMEM, "out of memory");
            goto fail;
        }
        snprintf(key, sizeof key, "%s_scale", name);
        s = read_small(st, key, rows, tmp, used);
        snprintf(key, sizeof key, "%s_zero", name);
        if (!s)
            s = read_small(st, key, rows, tmp + rows, used);
        for (int r = 0; !s && r < rows; r++) {
            sfq_uq *u = &q->lin[i].rows[r];
            u->scale = tmp[r];
            u->zero = tmp[rows + r];
            u->bits = bits;
            u->form = SFQ_UQ_REPQ;
            s = sfq_uq_check(u);
            if (!s && rintf(u->zero) != u->zero)
                s = sfq_fail(SARDFQ_E_FORMAT, "quantized model: %s_zero[%d] = %g is not an integer", name, r,
                             (double)u->zero);
        }
        sfq_free(tmp);
        if (s)
            goto fail;
    }
    *out = q;
    return SARDFQ_OK;
fail:
    sfq_qspec_free(q);
    return s;
}
