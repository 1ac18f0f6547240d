/* calib.c - calibration sets on disk: a safetensors file with
 *   images   [n, C, H, W]  F32 (F16/BF16 accepted on reading), normalised
 *   targets  [n, classes]  F32, optional, rows are distributions
 * and the metadata format=sardfq-calib, version=1 (reading accepts any
 * safetensors with such tensors; a file that says format=sardfq-calib with a
 * newer version is refused as unsupported).
 *
 * Values must be finite on both sides (and targets non-negative): saving
 * refuses them with SARDFQ_E_INVALID_ARG, loading with SARDFQ_E_FORMAT.
 *
 * Loading is a two-call protocol: with images == NULL it only validates the
 * file and reports its sizes; with buffers, *n, *channels, *height, *width
 * (and *targets_classes when targets != NULL) must still hold the sizes the
 * first call returned, which is how the library knows the buffers are large
 * enough (SARDFQ_E_SHAPE otherwise). Every check runs before a buffer is
 * written, so a failed call leaves all outputs unchanged. */
#include "safetensors.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define CALIB_FORMAT "sardfq-calib"
#define CALIB_VERSION 1
#define CALIB_MAX_FILE ((size_t)1 << 40)

/* bits of a float32 / half / bfloat16 whose exponent is all ones (Inf/NaN) */
static int raw_nonfinite(const uint8_t *p, sfq_dtype dt, size_t i)
{
    if (dt == SFQ_DT_F32) {
        const uint8_t *q = p + 4 * i;
        uint32_t b = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                     (uint32_t)q[3] << 24;
        return (b & 0x7F800000u) == 0x7F800000u;
    }
    uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    if (dt == SFQ_DT_F16)
        return (h & 0x7C00u) == 0x7C00u;
    return (h & 0x7F80u) == 0x7F80u; /* BF16 */
}

static int raw_negative(const uint8_t *p, sfq_dtype dt, size_t i)
{
    /* sign bit set and not a zero */
    if (dt == SFQ_DT_F32) {
        const uint8_t *q = p + 4 * i;
        uint32_t b = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                     (uint32_t)q[3] << 24;
        return (b & 0x80000000u) && (b & 0x7FFFFFFFu);
    }
    uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    return (h & 0x8000u) && (h & 0x7FFFu);
}

static int float_ok(float v) { return v - v == 0.0f; } /* false for NaN and +-Inf */

/* ---- save ---------------------------------------------------------------- */

SARDFQ_API sardfq_status sardfq_calib_save(const char *path, const float *images,
                                           const float *targets, int n, int channels, int height,
                                           int width, int classes)
{
    if (!path || !*path)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_calib_save: path is NULL or empty");
    if (!images)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_calib_save: images is NULL");
    if (n <= 0 || channels <= 0 || height <= 0 || width <= 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_calib_save: n, channels, height and width must be > 0 (got %d, "
                        "%d, %d, %d)",
                        n, channels, height, width);
    if (classes < 0 || (targets && classes == 0))
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_calib_save: classes must be > 0 with targets (got %d)", classes);
    size_t n_img, n_tgt = 0, bytes;
    if (!sfq_mul_size((size_t)n, (size_t)channels, &n_img) ||
        !sfq_mul_size(n_img, (size_t)height, &n_img) ||
        !sfq_mul_size(n_img, (size_t)width, &n_img) ||
        !sfq_mul_size(n_img, sizeof(float), &bytes) ||
        (targets && (!sfq_mul_size((size_t)n, (size_t)classes, &n_tgt) ||
                     !sfq_mul_size(n_tgt, sizeof(float), &bytes))))
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_calib_save: %d x %d x %d x %d images (%d classes) overflow the "
                        "address space",
                        n, channels, height, width, classes);
    for (size_t i = 0; i < n_img; i++)
        if (!float_ok(images[i]))
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_calib_save: images[%zu] is %s", i,
                            images[i] != images[i] ? "NaN" : "infinite");
    for (size_t i = 0; i < n_tgt; i++)
        if (!float_ok(targets[i]) || targets[i] < 0.0f)
            return sfq_fail(SARDFQ_E_INVALID_ARG,
                            "sardfq_calib_save: targets[%zu] = %g is not a probability", i,
                            (double)targets[i]);

    sfq_st_out_tensor t[2];
    memset(t, 0, sizeof t);
    t[0].name = "images";
    t[0].dtype = SFQ_DT_F32;
    t[0].ndim = 4;
    t[0].shape[0] = n;
    t[0].shape[1] = channels;
    t[0].shape[2] = height;
    t[0].shape[3] = width;
    t[0].data = images;
    t[1].name = "targets";
    t[1].dtype = SFQ_DT_F32;
    t[1].ndim = 2;
    t[1].shape[0] = n;
    t[1].shape[1] = classes;
    t[1].data = targets;
    int nt = targets ? 2 : 1;
    static const char *const keys[] = {"format", "version"};
    static const char *const vals[] = {CALIB_FORMAT, "1"};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return sfq_st_write(path, t, nt, keys, vals, 2);
#else
    /* the file is little-endian: write byte-swapped copies */
    uint8_t *le[2] = {NULL, NULL};
    size_t cnt[2] = {n_img, n_tgt};
    const float *src[2] = {images, targets};
    sardfq_status st = SARDFQ_OK;
    for (int k = 0; k < nt; k++) {
        le[k] = sfq_alloc_array(cnt[k] ? cnt[k] : 1, 4);
        if (!le[k]) {
            st = sfq_fail(SARDFQ_E_NOMEM, "sardfq_calib_save: out of memory");
            goto out;
        }
        for (size_t i = 0; i < cnt[k]; i++) {
            uint32_t b;
            memcpy(&b, &src[k][i], 4);
            le[k][4 * i] = (uint8_t)b;
            le[k][4 * i + 1] = (uint8_t)(b >> 8);
            le[k][4 * i + 2] = (uint8_t)(b >> 16);
            le[k][4 * i + 3] = (uint8_t)(b >> 24);
        }
        t[k].data = le[k];
    }
    st = sfq_st_write(path, t, nt, keys, vals, 2);
out:
    sfq_free(le[0]);
    sfq_free(le[1]);
    return st;
#endif
}

/* ---- load ---------------------------------------------------------------- */

static int float_dtype(sfq_dtype dt)
{
    return dt == SFQ_DT_F32 || dt == SFQ_DT_F16 || dt == SFQ_DT_BF16;
}

/* Validate the parsed file; fills the sizes. */
static sardfq_status check_file(const char *path, const sfq_st_file *f, const sfq_st_tensor **img,
                                const sfq_st_tensor **tgt, int sizes[5])
{
    const char *fmt = sfq_st_meta(f, "format");
    if (fmt && strcmp(fmt, CALIB_FORMAT) == 0) {
        const char *ver = sfq_st_meta(f, "version");
        if (ver && strcmp(ver, "1") != 0)
            return sfq_fail(SARDFQ_E_UNSUPPORTED,
                            "calibration set '%s' has format version '%s'; this library reads "
                            "version %d",
                            path, ver, CALIB_VERSION);
    }
    const sfq_st_tensor *im = sfq_st_find(f, "images");
    if (!im)
        return sfq_fail(SARDFQ_E_FORMAT, "'%s' has no 'images' tensor", path);
    if (!float_dtype(im->dtype))
        return sfq_fail(SARDFQ_E_UNSUPPORTED,
                        "'%s': 'images' has dtype %s; only F32, F16 and BF16 are read", path,
                        sfq_dtype_name(im->dtype));
    if (im->ndim != 4)
        return sfq_fail(SARDFQ_E_FORMAT, "'%s': 'images' has %d dimensions, not 4 (n, C, H, W)",
                        path, im->ndim);
    for (int d = 0; d < 4; d++)
        if (im->shape[d] <= 0 || im->shape[d] > INT_MAX)
            return sfq_fail(SARDFQ_E_FORMAT,
                            "'%s': 'images' has shape [%lld, %lld, %lld, %lld]; every size "
                            "must be in 1..%d",
                            path, (long long)im->shape[0], (long long)im->shape[1],
                            (long long)im->shape[2], (long long)im->shape[3], INT_MAX);
    const sfq_st_tensor *tg = sfq_st_find(f, "targets");
    if (tg) {
        if (!float_dtype(tg->dtype))
            return sfq_fail(SARDFQ_E_UNSUPPORTED,
                            "'%s': 'targets' has dtype %s; only F32, F16 and BF16 are read",
                            path, sfq_dtype_name(tg->dtype));
        if (tg->ndim != 2 || tg->shape[0] != im->shape[0] || tg->shape[1] <= 0 ||
            tg->shape[1] > INT_MAX)
            return sfq_fail(SARDFQ_E_FORMAT,
                            "'%s': 'targets' must have shape [%lld, classes] with classes >= 1 "
                            "(got %d dimensions%s)",
                            path, (long long)im->shape[0], tg->ndim,
                            tg->ndim == 2 ? ", wrong sizes" : "");
    }
    const uint8_t *p = f->data + im->begin;
    for (size_t i = 0; i < (size_t)im->numel; i++)
        if (raw_nonfinite(p, im->dtype, i))
            return sfq_fail(SARDFQ_E_FORMAT, "'%s': images value %zu is NaN or infinite", path, i);
    if (tg) {
        p = f->data + tg->begin;
        for (size_t i = 0; i < (size_t)tg->numel; i++)
            if (raw_nonfinite(p, tg->dtype, i) || raw_negative(p, tg->dtype, i))
                return sfq_fail(SARDFQ_E_FORMAT,
                                "'%s': targets value %zu is negative, NaN or infinite", path, i);
    }
    for (int d = 0; d < 4; d++)
        sizes[d] = (int)im->shape[d];
    sizes[4] = tg ? (int)tg->shape[1] : 0;
    *img = im;
    *tgt = tg;
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_calib_load(const char *path, float *images, float *targets,
                                           int *n, int *channels, int *height, int *width,
                                           int *targets_classes)
{
    if (!path || !*path)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_calib_load: path is NULL or empty");
    if (!n || !channels || !height || !width || !targets_classes)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_calib_load: n, channels, height, width and targets_classes "
                        "must not be NULL");
    if (!images && targets)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_calib_load: targets given without images (the size query "
                        "passes both as NULL)");
    uint8_t *buf = NULL;
    size_t len = 0;
    sardfq_status st = sfq_read_file(path, CALIB_MAX_FILE, &buf, &len);
    if (st)
        return st;
    sfq_st_file f;
    st = sfq_st_parse(buf, len, &f);
    if (st) {
        sfq_free(buf);
        return st;
    }
    const sfq_st_tensor *im = NULL, *tg = NULL;
    int sz[5];
    st = check_file(path, &f, &im, &tg, sz);
    if (st)
        goto out;
    if (images) {
        if (*n != sz[0] || *channels != sz[1] || *height != sz[2] || *width != sz[3] ||
            (targets && *targets_classes != sz[4])) {
            st = sfq_fail(SARDFQ_E_SHAPE,
                          "sardfq_calib_load: the buffers are for n=%d C=%d H=%d W=%d "
                          "classes=%d but '%s' holds n=%d C=%d H=%d W=%d classes=%d (query the "
                          "sizes with images == NULL first)",
                          *n, *channels, *height, *width, targets ? *targets_classes : 0, path,
                          sz[0], sz[1], sz[2], sz[3], sz[4]);
            goto out;
        }
        st = sfq_st_read_f32(&f, im, images);
        if (!st && targets && tg)
            st = sfq_st_read_f32(&f, tg, targets);
        if (st)
            goto out;
    }
    *n = sz[0];
    *channels = sz[1];
    *height = sz[2];
    *width = sz[3];
    *targets_classes = sz[4];
out:
    sfq_st_release(&f);
    sfq_free(buf);
    return st;
}
