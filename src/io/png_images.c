/* png_images.c - normalised images to 8-bit PNG files, from channels,
 * size and the per-channel mean/std (io knows no model: the public
 * sardfq_images_write_png, which takes them from a model, is
 * formats/images.c).
 *
 * Each value is de-normalised with the mean/std of its channel,
 * v = (x * std[c] + mean[c]) * 255 (in double), rounded to nearest (halves
 * up: floor(v + 0.5)) and clamped to [0, 255]. One channel gives a gray
 * PNG, three an RGB PNG. Images go to "<dir>/NNN.png" (printf "%03d" of the
 * index); with sheet != 0 a contact sheet "<dir>/sheet.png" puts them in a
 * near-square grid, cols = ceil(sqrt(n)), rows = ceil(n / cols), filled row
 * by row, with 2 black pixels between neighbouring images (none around the
 * border); unused cells are black. Every file goes through sfq_png_write
 * (temporary name, then rename).
 *
 * All arguments, the sheet size (at most 32768 pixels a side) and the memory
 * are checked before the first file is written; only an I/O error can stop
 * the call midway, and then the files already renamed into place stay. */
#include "image.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define SHEET_GAP 2
#define PNG_SIDE_LIMIT 32768

static uint8_t to_u8(float x, float mean, float std)
{
    double v = ((double)x * (double)std + (double)mean) * 255.0;
    v = floor(v + 0.5);
    if (v <= 0.0)
        return 0;
    if (v >= 255.0)
        return 255;
    return (uint8_t)v;
}

/* ceil(sqrt(n)) exactly, for n >= 1 */
static int isqrt_ceil(int n)
{
    int c = (int)sqrt((double)n);
    while ((int64_t)c * c < n)
        c++;
    while (c > 1 && (int64_t)(c - 1) * (c - 1) >= n)
        c--;
    return c;
}

sardfq_status sfq_png_write_images(const char *dir, int C, int H, int W, const float *mean,
                                   const float *std, const float *images, int n, int sheet)
{
    if (!dir || !*dir)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_images_write_png: dir is NULL or empty");
    if (!mean || !std || !images)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_images_write_png: %s is NULL",
                        !images ? "images" : "mean/std");
    if (n <= 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_images_write_png: n must be > 0 (got %d)",
                        n);
    sardfq_status st = SARDFQ_OK;
    if ((C != 1 && C != 3) || H <= 0 || W <= 0 || H > PNG_SIDE_LIMIT || W > PNG_SIDE_LIMIT)
        return sfq_fail(SARDFQ_E_UNSUPPORTED,
                        "sardfq_images_write_png: an input of %d x %d x %d cannot be "
                        "written as PNG",
                        C, H, W);
    for (int c = 0; c < C; c++)
        if (!(std[c] > 0.0f) || mean[c] - mean[c] != 0.0f || std[c] - std[c] != 0.0f)
            return sfq_fail(SARDFQ_E_INVALID_ARG,
                            "sardfq_images_write_png: the mean/std of channel %d "
                            "(%g, %g) cannot de-normalise images",
                            c, (double)mean[c], (double)std[c]);
    const size_t plane = (size_t)H * (size_t)W, per_img = plane * (size_t)C;
    size_t total;
    if (!sfq_mul_size(per_img, (size_t)n, &total))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_images_write_png: %d images overflow", n);

    int cols = 0, rows = 0, sh = 0, sw = 0;
    if (sheet) {
        cols = isqrt_ceil(n);
        rows = (int)(((int64_t)n + cols - 1) / cols);
        int64_t w64 = (int64_t)cols * W + (int64_t)(cols - 1) * SHEET_GAP;
        int64_t h64 = (int64_t)rows * H + (int64_t)(rows - 1) * SHEET_GAP;
        if (w64 > PNG_SIDE_LIMIT || h64 > PNG_SIDE_LIMIT)
            return sfq_fail(SARDFQ_E_INVALID_ARG,
                            "sardfq_images_write_png: a contact sheet of %d images would be "
                            "%lld x %lld pixels, more than %d a side (pass sheet = 0)",
                            n, (long long)w64, (long long)h64, PNG_SIDE_LIMIT);
        sw = (int)w64;
        sh = (int)h64;
    }
    for (size_t i = 0; i < total; i++)
        if (images[i] - images[i] != 0.0f)
            return sfq_fail(SARDFQ_E_INVALID_ARG,
                            "sardfq_images_write_png: images value %zu (image %zu) is %s", i,
                            i / per_img, images[i] != images[i] ? "NaN" : "infinite");

    struct stat sb;
    if (stat(dir, &sb) != 0)
        return sfq_fail(SARDFQ_E_IO, "sardfq_images_write_png: cannot access directory '%s': %s",
                        dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return sfq_fail(SARDFQ_E_IO, "sardfq_images_write_png: '%s' is not a directory", dir);

    size_t dl = strlen(dir);
    const char *sep = dir[dl - 1] == '/' ? "" : "/";
    size_t path_len = dl + 32;
    char *path = sfq_alloc(path_len);
    uint8_t *px = sfq_alloc(per_img);
    uint8_t *sp = sheet ? sfq_alloc_zero((size_t)sh * (size_t)sw * (size_t)C) : NULL;
    if (!path || !px || (sheet && !sp)) {
        st = sfq_fail(SARDFQ_E_NOMEM, "sardfq_images_write_png: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const float *x = images + (size_t)i * per_img;
        for (int c = 0; c < C; c++)
            for (size_t k = 0; k < plane; k++)
                px[k * (size_t)C + (size_t)c] = to_u8(x[(size_t)c * plane + k], mean[c], std[c]);
        snprintf(path, path_len, "%s%s%03d.png", dir, sep, i);
        st = sfq_png_write(path, px, H, W, C);
        if (st)
            goto out;
        if (sheet) {
            size_t y0 = (size_t)(i / cols) * (size_t)(H + SHEET_GAP);
            size_t x0 = (size_t)(i % cols) * (size_t)(W + SHEET_GAP);
            for (int y = 0; y < H; y++)
                memcpy(sp + ((y0 + (size_t)y) * (size_t)sw + x0) * (size_t)C,
                       px + (size_t)y * (size_t)W * (size_t)C, (size_t)W * (size_t)C);
        }
    }
    if (sheet) {
        snprintf(path, path_len, "%s%ssheet.png", dir, sep);
        st = sfq_png_write(path, sp, sh, sw, C);
    }
out:
    sfq_free(path);
    sfq_free(px);
    sfq_free(sp);
    return st;
}
