/* images.c - sardfq_images_write_png: a model's input images to PNG files,
 * de-normalised with the model's mean/std (the writer is io's
 * sfq_png_write_images, which knows no model). */
#include "image.h"

#include <string.h>

SARDFQ_API sardfq_status sardfq_images_write_png(const char *dir, const sardfq_model *m,
                                                 const float *images, int n, int sheet)
{
    if (!dir || !*dir)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_images_write_png: dir is NULL or empty");
    if (!m || !images)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_images_write_png: %s is NULL",
                        !m ? "model" : "images");
    if (n <= 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_images_write_png: n must be > 0 (got %d)",
                        n);
    sardfq_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    sardfq_status st = sardfq_model_get_info(m, &info);
    if (st)
        return st;
    return sfq_png_write_images(dir, info.in_chans, info.img_h, info.img_w, info.mean, info.std, images,
                                n, sheet);
}
