/* evaluate.c - the glue between datasets and a model: opening a dataset
 * preprocessed for a model, and top-1/top-5 accuracy.
 *
 * sardfq_dataset_open lives here rather than in io/dataset.c because it is
 * the one dataset call that needs the model; the I/O code stays usable (and
 * testable) without it through sfq_dataset_open_cfg. */
#include "core.h"
#include "image.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define EVAL_DEFAULT_BATCH 64

/* Bytes of the first published version of each struct (all of its v0.1
 * fields); a caller's struct_size below this is refused. */
#define EVAL_PARAMS_V1_SIZE (offsetof(sardfq_eval_params, user_data) + sizeof(void *))
#define EVAL_RESULT_V1_SIZE (offsetof(sardfq_eval_result, top5_correct) + sizeof(int64_t))

SARDFQ_API sardfq_status sardfq_dataset_open(const char *path, const sardfq_model *m,
                                             sardfq_dataset **out)
{
    if (!path || !m || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_dataset_open: %s is NULL",
                        !path ? "path" : !m ? "model" : "out");
    sardfq_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    sardfq_status st = sardfq_model_get_info(m, &info);
    if (st != SARDFQ_OK)
        return st;
    sfq_dataset_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.c = info.in_chans;
    cfg.h = info.img_h;
    cfg.w = info.img_w;
    for (int k = 0; k < 3; k++) {
        cfg.mean[k] = info.mean[k];
        cfg.std[k] = info.std[k];
    }
    cfg.crop_pct = info.crop_pct;
    return sfq_dataset_open_cfg(path, &cfg, out);
}

SARDFQ_API void sardfq_eval_default_params(sardfq_eval_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = (uint32_t)sizeof *p;
    p->limit = 0;
    p->batch = EVAL_DEFAULT_BATCH;
    p->progress = NULL;
    p->user_data = NULL;
}

/* a ranks above b (ties: lower index first; NaN above every number, as
 * torch.topk orders it). */
static int ranks_above(float a, int ia, float b, int ib)
{
    int na = isnan(a), nb = isnan(b);
    if (na || nb) {
        if (na && nb)
            return ia < ib;
        return na;
    }
    if (a != b)
        return a > b;
    return ia < ib;
}

/* Rank (0 = arg-max) of class `label` among n logits. */
static int rank_of(const float *logits, int n, int label)
{
    int r = 0;
    float v = logits[label];
    for (int j = 0; j < n; j++)
        if (j != label && ranks_above(logits[j], j, v, label))
            r++;
    return r;
}

static sardfq_status evaluate(const sardfq_model *m, sardfq_dataset *d, const sardfq_eval_params *p,
                              int64_t first, sardfq_eval_result *out)
{
    if (!m || !d || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_evaluate: %s is NULL",
                        !m ? "model" : !d ? "dataset" : "result");
    if (out->struct_size < EVAL_RESULT_V1_SIZE)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_evaluate: result struct_size %u is smaller than %zu (set it to "
                        "sizeof(sardfq_eval_result))",
                        (unsigned)out->struct_size, EVAL_RESULT_V1_SIZE);
    sardfq_eval_params prm;
    sardfq_eval_default_params(&prm);
    sardfq_status ps = sfq_read_params(p, &prm, sizeof prm, EVAL_PARAMS_V1_SIZE, "sardfq_eval_params");
    if (ps)
        return ps;
    if (prm.limit < 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_evaluate: limit must be >= 0, not %lld",
                        (long long)prm.limit);
    if (first < 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_evaluate: first must be >= 0, not %lld",
                        (long long)first);
    if (prm.batch < 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_evaluate: batch must be >= 0, not %d",
                        prm.batch);
    int batch = prm.batch ? prm.batch : EVAL_DEFAULT_BATCH;

    sardfq_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    sardfq_status st = sardfq_model_get_info(m, &info);
    if (st != SARDFQ_OK)
        return st;
    int dc, dh, dw;
    sfq_dataset_geometry(d, &dc, &dh, &dw);
    if (dc != info.in_chans || dh != info.img_h || dw != info.img_w)
        return sfq_fail(SARDFQ_E_SHAPE,
                        "sardfq_evaluate: the dataset produces %dx%dx%d images but the model "
                        "takes %dx%dx%d",
                        dc, dh, dw, info.in_chans, info.img_h, info.img_w);
    if (info.num_classes <= 0)
        return sfq_fail(SARDFQ_E_INTERNAL, "sardfq_evaluate: model reports %d classes",
                        info.num_classes);

    const int64_t count = sardfq_dataset_count(d);
    if (first > count)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_evaluate: first %lld is beyond the %lld images",
                        (long long)first, (long long)count);
    int64_t total = count - first;
    if (prm.limit > 0 && prm.limit < total)
        total = prm.limit;
    if (batch > total)
        batch = total > 0 ? (int)total : 1;

    size_t chw = (size_t)dc * (size_t)dh * (size_t)dw, nimg, nlog;
    if (!sfq_mul_size(chw, (size_t)batch, &nimg) ||
        !sfq_mul_size((size_t)info.num_classes, (size_t)batch, &nlog))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_evaluate: batch %d is too large", batch);
    float *images = sfq_alloc_array(nimg, sizeof(float));
    float *logits = sfq_alloc_array(nlog, sizeof(float));
    int32_t *labels = sfq_alloc_array((size_t)batch, sizeof(int32_t));
    int64_t top1 = 0, top5 = 0, done = 0;
    if (!images || !logits || !labels) {
        st = sfq_fail(SARDFQ_E_NOMEM, "sardfq_evaluate: out of memory for a batch of %d", batch);
        goto out;
    }
    while (done < total) {
        int nb = total - done < batch ? (int)(total - done) : batch;
        if ((st = sardfq_dataset_read(d, first + done, nb, images, labels)) != SARDFQ_OK)
            goto out;
        if ((st = sardfq_model_forward(m, images, nb, logits)) != SARDFQ_OK)
            goto out;
        for (int i = 0; i < nb; i++) {
            int32_t lab = labels[i];
            if (lab < 0 || lab >= info.num_classes) {
                st = sfq_fail(SARDFQ_E_SHAPE,
                              "sardfq_evaluate: label %d of image %lld is outside the model's "
                              "%d classes",
                              (int)lab, (long long)(first + done + i), info.num_classes);
                goto out;
            }
            int r = rank_of(logits + (size_t)i * (size_t)info.num_classes, info.num_classes, lab);
            top1 += r == 0;
            top5 += r < 5;
        }
        done += nb;
        if (prm.progress && prm.progress(prm.user_data, done, total, "eval") != 0) {
            st = sfq_fail(SARDFQ_E_CANCELLED, "sardfq_evaluate: cancelled by the progress "
                                              "callback after %lld of %lld images",
                          (long long)done, (long long)total);
            goto out;
        }
    }
    out->n = done;
    out->top1_correct = top1;
    out->top5_correct = top5;
out:
    sfq_free(images);
    sfq_free(logits);
    sfq_free(labels);
    return st;
}

SARDFQ_API sardfq_status sardfq_evaluate(const sardfq_model *m, sardfq_dataset *d,
                                         const sardfq_eval_params *p, sardfq_eval_result *out)
{
    return evaluate(m, d, p, 0, out);
}

SARDFQ_API sardfq_status sardfq_evaluate_range(const sardfq_model *m, sardfq_dataset *d,
                                               const sardfq_eval_params *p, int64_t first,
                                               sardfq_eval_result *out)
{
    return evaluate(m, d, p, first, out);
}
