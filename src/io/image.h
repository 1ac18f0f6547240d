/* image.h - internal image readers and writers (IDX, PNG) and resampling. */
#ifndef SFQ_IMAGE_H
#define SFQ_IMAGE_H

#include "core.h"

#include <stdint.h>

/* An 8-bit image set: n images of h x w x c (interleaved, c = 1 or 3). */
typedef struct {
    uint8_t *pixels; /* n * h * w * c, sfq_alloc'ed */
    int64_t n;
    int h, w, c;
} sfq_u8_images;

/* Read an IDX3 (unsigned byte images) file, gzip-compressed or not. */
sardfq_status sfq_idx_read_images(const char *path, sfq_u8_images *out);
/* Read an IDX1 (unsigned byte labels) file, gzip-compressed or not. */
sardfq_status sfq_idx_read_labels(const char *path, int32_t **labels, int64_t *n);

/* Read a PNG (any bit depth/colour type; converted to 8-bit, alpha dropped)
 * as gray (channels = 1) or RGB (channels = 3). *pixels is h*w*channels,
 * sfq_alloc'ed. */
sardfq_status sfq_png_read(const char *path, int channels, uint8_t **pixels, int *h, int *w);
/* Write 8-bit gray or RGB through a temporary file and rename. */
sardfq_status sfq_png_write(const char *path, const uint8_t *pixels, int h, int w, int channels);
/* n normalised images (C x H x W planar floats, C = 1 or 3) de-normalised
 * with mean[C]/std[C] to "<dir>/NNN.png", and with sheet != 0 a contact
 * sheet "<dir>/sheet.png" (png_images.c says how); the body of the public
 * sardfq_images_write_png (formats/images.c), whose name its messages
 * carry. */
sardfq_status sfq_png_write_images(const char *dir, int C, int H, int W, const float *mean,
                                   const float *std, const float *images, int n, int sheet);

/* timm/torchvision eval transform on one 8-bit image (h x w x c):
 * bicubic resize (PIL semantics, antialiased) of the short side to
 * floor(size / crop_pct), centre crop to out_h x out_w, then
 * (v/255 - mean[c]) / std[c] into out (c x out_h x out_w, planar). */
sardfq_status sfq_eval_transform(const uint8_t *src, int h, int w, int c, int out_h, int out_w,
                                 float crop_pct, const float *mean, const float *std, float *out);

/* Datasets (dataset.c). The public sardfq_dataset_open (in exec/evaluate.c)
 * takes this configuration from the model; tests and other internal callers
 * can open a dataset without a model. */
typedef struct {
    int c, h, w;           /* channels (1 or 3) and input size */
    float mean[3], std[3]; /* per channel */
    float crop_pct;        /* eval-transform crop fraction (PNG folders) */
} sfq_dataset_cfg;

sardfq_status sfq_dataset_open_cfg(const char *path, const sfq_dataset_cfg *cfg,
                                   sardfq_dataset **out);
/* Channels and input size of the images d produces. */
void sfq_dataset_geometry(const sardfq_dataset *d, int *c, int *h, int *w);

#endif
