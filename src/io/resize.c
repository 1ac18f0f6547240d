/* resize.c - timm's evaluation transform on one 8-bit image:
 *
 *   Resize(floor(size / crop_pct), bicubic)   (torchvision on a PIL image)
 *   CenterCrop(size)                          (torchvision)
 *   ToTensor + Normalize(mean, std)
 *
 * The resampling reproduces PIL's "convolution" resize for 8-bit images:
 * a = -0.5 cubic kernel whose support is widened by the downscale factor
 * (antialiasing), sample centres at (i + 0.5) * scale, weights normalised
 * per output pixel and then quantised to 22-bit fixed point, separable
 * horizontal then vertical with rounding and clamping to uint8 after each
 * pass. Only the rows and columns the centre crop keeps are computed (each
 * output pixel depends only on its own coefficients, so this is exact).
 *
 * Output size of the resize: for a square target, the short side becomes
 * s = floor(size / crop_pct) and the long side int(s * long / short), as
 * torchvision's Resize(int) does. For a non-square target (timm's
 * ResizeKeepRatio), both sides are scaled by the smaller of the ratios
 * side / floor(target_side / crop_pct) and rounded half to even. The crop
 * offset is Python's round((size - crop) / 2) (half to even), and a crop
 * larger than the image is zero-padded as torchvision's CenterCrop does. */
#include "image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RS_PRECISION_BITS 22      /* PIL: 32 - 8 - 2 */
#define RS_MAX_RESIZED (1 << 20)  /* resized side limit */
#define RS_MAX_OUT (1 << 14)      /* output side limit */

static double cubic(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct {
    int *lo;     /* first input index of each output */
    int *cnt;    /* number of inputs of each output */
    int32_t *k;  /* ksize fixed-point weights per output */
    int ksize;
} coeffs;

static void coeffs_free(coeffs *c)
{
    sfq_free(c->lo);
    sfq_free(c->cnt);
    sfq_free(c->k);
    memset(c, 0, sizeof *c);
}

/* Coefficients of outputs [first, first + count) when resizing in_size
 * samples to out_size. */
static sardfq_status coeffs_make(int in_size, int out_size, int first, int count, coeffs *c)
{
    memset(c, 0, sizeof *c);
    double scale = (double)in_size / (double)out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    size_t nk;
    double *w = sfq_alloc_array((size_t)ksize, sizeof(double));
    c->lo = sfq_alloc_array((size_t)(count ? count : 1), sizeof(int));
    c->cnt = sfq_alloc_array((size_t)(count ? count : 1), sizeof(int));
    c->k = sfq_mul_size((size_t)(count ? count : 1), (size_t)ksize, &nk)
               ? sfq_alloc_array(nk, sizeof(int32_t))
               : NULL;
    c->ksize = ksize;
    if (!w || !c->lo || !c->cnt || !c->k) {
        sfq_free(w);
        coeffs_free(c);
        return sfq_fail(SARDFQ_E_NOMEM, "eval transform: out of memory for resize coefficients");
    }
    double ss = 1.0 / filterscale;
    for (int i = 0; i < count; i++) {
        int xx = first + i;
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize)
            xmax = ksize;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = cubic((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->k + (size_t)i * (size_t)ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            v *= (double)(1 << RS_PRECISION_BITS);
            k[x] = v < 0 ? (int32_t)(-0.5 + v) : (int32_t)(0.5 + v);
        }
        c->lo[i] = xmin;
        c->cnt[i] = xmax;
    }
    sfq_free(w);
    return SARDFQ_OK;
}

static uint8_t clip8(int64_t acc)
{
    if (acc < 0)
        return 0;
    acc >>= RS_PRECISION_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* Python's round(d / 2) for an integer d >= 0 (half to even). */
static int half_round_even(int d)
{
    int k = d / 2;
    if (d % 2 == 0)
        return k;
    return (k % 2 == 0) ? k : k + 1;
}

/* Python's round(x) (half to even) for x >= 0. */
static double round_half_even(double x)
{
    double f = floor(x), diff = x - f;
    if (diff > 0.5)
        return f + 1;
    if (diff < 0.5)
        return f;
    return fmod(f, 2.0) == 0.0 ? f : f + 1;
}

/* crop_pct arrives as a float; use the shortest decimal that rounds to it
 * (0.8f -> 0.8) so floor(size / crop_pct) matches Python's computation on
 * the decimal configuration value. */
static double decimal_value(float f)
{
    char buf[64];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f)
            return d;
    }
    return (double)f;
}

/* Crop offset for one dimension: the resized index of output index 0 (may
 * be negative when the crop is larger than the image: zero padding). */
static int crop_offset(int size, int crop)
{
    if (crop > size)
        return -((crop - size) / 2);
    return half_round_even(size - crop);
}

sardfq_status sfq_eval_transform(const uint8_t *src, int h, int w, int c, int out_h, int out_w,
                                 float crop_pct, const float *mean, const float *std, float *out)
{
    if (!src || !mean || !std || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "eval transform: NULL argument");
    if (h <= 0 || w <= 0 || (c != 1 && c != 3))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "eval transform: bad image %dx%dx%d", h, w, c);
    if (out_h <= 0 || out_w <= 0 || out_h > RS_MAX_OUT || out_w > RS_MAX_OUT)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "eval transform: bad output size %dx%d", out_h,
                        out_w);
    if (!(crop_pct > 0.0f) || !isfinite(crop_pct))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "eval transform: crop_pct must be > 0, not %g",
                        (double)crop_pct);
    for (int k = 0; k < c; k++)
        if (!(std[k] != 0.0f) || !isfinite(std[k]) || !isfinite(mean[k]))
            return sfq_fail(SARDFQ_E_INVALID_ARG,
                            "eval transform: mean/std of channel %d must be finite, std nonzero", k);

    double cp = decimal_value(crop_pct);
    double sh = floor((double)out_h / cp), sw = floor((double)out_w / cp);
    if (!(sh >= 1.0 && sw >= 1.0 && sh <= RS_MAX_RESIZED && sw <= RS_MAX_RESIZED))
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "eval transform: crop_pct %g gives a resize target of %gx%g pixels",
                        cp, sw, sh);
    double rhd, rwd;
    if (out_h == out_w) {
        double s = sh;
        if (w <= h) {
            rwd = s;
            rhd = floor(s * (double)h / (double)w); /* s * h is exact in double */
        } else {
            rhd = s;
            rwd = floor(s * (double)w / (double)h);
        }
    } else {
        double rh_ = (double)h / sh, rw_ = (double)w / sw;
        double ratio = rh_ < rw_ ? rh_ : rw_;
        rhd = round_half_even((double)h / ratio);
        rwd = round_half_even((double)w / ratio);
        if (rhd < 1)
            rhd = 1;
        if (rwd < 1)
            rwd = 1;
    }
    if (rhd > RS_MAX_RESIZED || rwd > RS_MAX_RESIZED)
        return sfq_fail(SARDFQ_E_UNSUPPORTED,
                        "eval transform: a %dx%d image would be resized to %.0fx%.0f, too large",
                        w, h, rwd, rhd);
    int rh = (int)rhd, rw = (int)rwd;

    int top = crop_offset(rh, out_h), left = crop_offset(rw, out_w);
    /* Resized rows [r0, r1) and columns [c0, c1) that the crop keeps. */
    int r0 = top < 0 ? 0 : top, r1 = top + out_h < rh ? top + out_h : rh;
    int c0 = left < 0 ? 0 : left, c1 = left + out_w < rw ? left + out_w : rw;
    int nr = r1 - r0, nc = c1 - c0;

    coeffs cv, ch;
    sardfq_status st = coeffs_make(h, rh, r0, nr, &cv);
    if (st != SARDFQ_OK)
        return st;
    st = coeffs_make(w, rw, c0, nc, &ch);
    if (st != SARDFQ_OK) {
        coeffs_free(&cv);
        return st;
    }
    /* Source rows the vertical pass reads. */
    int sy0 = h, sy1 = 0;
    for (int i = 0; i < nr; i++) {
        if (cv.lo[i] < sy0)
            sy0 = cv.lo[i];
        if (cv.lo[i] + cv.cnt[i] > sy1)
            sy1 = cv.lo[i] + cv.cnt[i];
    }
    if (sy1 < sy0)
        sy1 = sy0;
    size_t tmp_n = (size_t)(sy1 - sy0) * (size_t)nc * (size_t)c;
    size_t res_n = (size_t)nr * (size_t)nc * (size_t)c;
    uint8_t *tmp = sfq_alloc(tmp_n ? tmp_n : 1);
    uint8_t *res = sfq_alloc(res_n ? res_n : 1);
    if (!tmp || !res) {
        st = sfq_fail(SARDFQ_E_NOMEM, "eval transform: out of memory");
        goto done;
    }
    /* Horizontal pass: rows [sy0, sy1), kept columns. */
    for (int y = sy0; y < sy1; y++) {
        const uint8_t *row = src + (size_t)y * (size_t)w * (size_t)c;
        uint8_t *trow = tmp + (size_t)(y - sy0) * (size_t)nc * (size_t)c;
        for (int j = 0; j < nc; j++) {
            const int32_t *k = ch.k + (size_t)j * (size_t)ch.ksize;
            const uint8_t *p = row + (size_t)ch.lo[j] * (size_t)c;
            for (int q = 0; q < c; q++) {
                int64_t acc = (int64_t)1 << (RS_PRECISION_BITS - 1);
                for (int x = 0; x < ch.cnt[j]; x++)
                    acc += (int64_t)p[(size_t)x * (size_t)c + (size_t)q] * k[x];
                trow[(size_t)j * (size_t)c + (size_t)q] = clip8(acc);
            }
        }
    }
    /* Vertical pass: kept rows. */
    size_t tstride = (size_t)nc * (size_t)c;
    for (int i = 0; i < nr; i++) {
        const int32_t *k = cv.k + (size_t)i * (size_t)cv.ksize;
        const uint8_t *base = tmp + (size_t)(cv.lo[i] - sy0) * tstride;
        uint8_t *rrow = res + (size_t)i * tstride;
        for (size_t e = 0; e < tstride; e++) {
            int64_t acc = (int64_t)1 << (RS_PRECISION_BITS - 1);
            for (int y = 0; y < cv.cnt[i]; y++)
                acc += (int64_t)base[(size_t)y * tstride + e] * k[y];
            rrow[e] = clip8(acc);
        }
    }
    /* Crop (with zero padding) and normalise into planar output. */
    for (int q = 0; q < c; q++) {
        float m = mean[q], s = std[q];
        float *plane = out + (size_t)q * (size_t)out_h * (size_t)out_w;
        for (int y = 0; y < out_h; y++) {
            int ry = y + top;
            for (int x = 0; x < out_w; x++) {
                int rx = x + left;
                uint8_t v = 0;
                if (ry >= r0 && ry < r1 && rx >= c0 && rx < c1)
                    v = res[((size_t)(ry - r0) * (size_t)nc + (size_t)(rx - c0)) * (size_t)c +
                            (size_t)q];
                plane[(size_t)y * (size_t)out_w + (size_t)x] = ((float)v / 255.0f - m) / s;
            }
        }
    }
done:
    sfq_free(tmp);
    sfq_free(res);
    coeffs_free(&cv);
    coeffs_free(&ch);
    return st;
}
