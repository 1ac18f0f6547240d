/* png.c - PNG reading and writing through libpng's simplified png_image API
 * (which handles libpng's errors internally: no setjmp/longjmp reaches this
 * library).
 *
 * Reading converts any PNG (palette, gray, RGB, 1..16 bits, tRNS) to 8-bit
 * gray or RGB. An alpha channel is dropped, as PIL's Image.convert("RGB")
 * does (the colour values are kept, not composited), so images match what
 * torchvision's ImageFolder loader sees. Colour to gray uses libpng's
 * luminance conversion (not PIL's "L" weights). 16-bit images are scaled to
 * 8 bits; a gAMA chunk other than sRGB's is honoured by libpng (PIL ignores
 * it). */
#include "image.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PNG_MAX_SIDE 32768
#define PNG_MAX_PIXELS ((uint64_t)1 << 28)

sardfq_status sfq_png_read(const char *path, int channels, uint8_t **pixels, int *h, int *w)
{
    if (!path || !pixels || !h || !w)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_png_read: NULL argument");
    if (channels != 1 && channels != 3)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_png_read: channels must be 1 or 3, not %d",
                        channels);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sfq_fail(SARDFQ_E_IO, "cannot open PNG '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return sfq_fail(SARDFQ_E_IO, "PNG '%s' is not a regular file", path);
    }
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    sardfq_status st = SARDFQ_OK;
    uint8_t *buf = NULL;
    if (!png_image_begin_read_from_stdio(&img, fp)) {
        st = sfq_fail(ferror(fp) ? SARDFQ_E_IO : SARDFQ_E_FORMAT, "cannot read PNG '%s': %s",
                      path, img.message[0] ? img.message : "not a PNG file");
        goto done;
    }
    if (img.width == 0 || img.height == 0 || img.width > PNG_MAX_SIDE ||
        img.height > PNG_MAX_SIDE || (uint64_t)img.width * img.height > PNG_MAX_PIXELS) {
        st = sfq_fail(SARDFQ_E_UNSUPPORTED, "PNG '%s' is %ux%u pixels, larger than supported",
                      path, (unsigned)img.width, (unsigned)img.height);
        goto done;
    }
    /* 16-bit data without gAMA/sRGB is taken as sRGB-encoded (scaled to 8
     * bits), not as linear light, which is what image tools mean by it. */
    img.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    int alpha = (img.format & PNG_FORMAT_FLAG_ALPHA) ? 1 : 0;
    img.format = (channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY) |
                 (alpha ? PNG_FORMAT_FLAG_ALPHA : 0);
    size_t stride = (size_t)img.width * (size_t)(channels + alpha);
    buf = sfq_alloc(stride * img.height);
    if (!buf) {
        st = sfq_fail(SARDFQ_E_NOMEM, "out of memory decoding PNG '%s'", path);
        goto done;
    }
    if (!png_image_finish_read(&img, NULL, buf, (png_int_32)stride, NULL)) {
        st = sfq_fail(ferror(fp) ? SARDFQ_E_IO : SARDFQ_E_FORMAT, "cannot decode PNG '%s': %s",
                      path, img.message[0] ? img.message : "libpng error");
        goto done;
    }
    if (alpha) { /* drop the alpha channel in place (dst index <= src index) */
        size_t np = (size_t)img.width * img.height;
        for (size_t i = 0; i < np; i++)
            for (int k = 0; k < channels; k++)
                buf[i * (size_t)channels + (size_t)k] = buf[i * (size_t)(channels + 1) + (size_t)k];
    }
    *pixels = buf;
    *h = (int)img.height;
    *w = (int)img.width;
    buf = NULL;
done:
    png_image_free(&img);
    sfq_free(buf);
    fclose(fp);
    return st;
}

sardfq_status sfq_png_write(const char *path, const uint8_t *pixels, int h, int w, int channels)
{
    if (!path || !*path || !pixels)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_png_write: NULL argument");
    if (channels != 1 && channels != 3)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_png_write: channels must be 1 or 3, not %d",
                        channels);
    if (h <= 0 || w <= 0 || h > PNG_MAX_SIDE || w > PNG_MAX_SIDE)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_png_write: bad image size %dx%d", w, h);
    size_t tl = strlen(path) + 32;
    char *tmp = sfq_alloc(tl);
    if (!tmp)
        return sfq_fail(SARDFQ_E_NOMEM, "sfq_png_write: out of memory");
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    sardfq_status st = SARDFQ_OK;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        st = sfq_fail(SARDFQ_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    int ok = png_image_write_to_stdio(&img, fp, 0, pixels, 0, NULL);
    int e = errno;
    if (!ok) {
        st = sfq_fail(SARDFQ_E_IO, "cannot write PNG '%s': %s", tmp,
                      img.message[0] ? img.message : strerror(e));
        png_image_free(&img);
        fclose(fp);
        remove(tmp);
        goto out;
    }
    png_image_free(&img);
    if (fflush(fp) != 0 || ferror(fp)) {
        e = errno;
        fclose(fp);
        remove(tmp);
        st = sfq_fail(SARDFQ_E_IO, "cannot write PNG '%s': %s", tmp, strerror(e));
        goto out;
    }
    if (fclose(fp) != 0) {
        e = errno;
        remove(tmp);
        st = sfq_fail(SARDFQ_E_IO, "cannot write PNG '%s': %s", tmp, strerror(e));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        remove(tmp);
        st = sfq_fail(SARDFQ_E_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
    }
out:
    sfq_free(tmp);
    return st;
}
