/* dump_logits.c - the onnx suite's view of the library (public API only):
 * the first n images of a labelled set, normalised for the model, and the
 * model's logits on them, as raw little-endian float32 files for
 * compare.js; and the labels as int32.
 *
 *   dump_logits MODEL DATA N IMAGES.f32 LOGITS.f32 LABELS.i32 [fake]
 *
 * DATA "random" instead of a folder: N images of N(0, 1) noise from a fixed
 * generator (labels 0), for models without a data set. N <= 0 or above
 * the set's size: all its images. "fake" runs a quantized
 * model on the fake-quantized executor (SARDFQ_EXECUTOR_FAKE) instead of
 * the default. */
#include <sardfq.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* N(0, 1) by Box-Muller over a 64-bit LCG (fixed seed: the same images on
 * every run). */
static uint64_t st = 0x9e3779b97f4a7c15u;

static void noise(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double u[2];
        for (int k = 0; k < 2; k++) {
            st = st * 6364136223846793005u + 1442695040888963407u;
            u[k] = ((double)(st >> 11) + 0.5) / 9007199254740992.0;
        }
        x[i] = (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
    }
}

static int put(const char *path, const void *p, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(p, 1, bytes, f) == bytes;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "dump_logits: cannot write %s\n", path);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc != 7 && !(argc == 8 && strcmp(argv[7], "fake") == 0)) {
        fprintf(stderr, "usage: dump_logits MODEL DATA N IMAGES.f32 LOGITS.f32 LABELS.i32 [fake]\n");
        return 2;
    }
    sardfq_model *m = NULL;
    sardfq_dataset *d = NULL;
    sardfq_model_info info = {.struct_size = sizeof info};
    const int random = strcmp(argv[2], "random") == 0;
    if (sardfq_model_load(argv[1], NULL, &m) || sardfq_model_get_info(m, &info) ||
        (!random && sardfq_dataset_open(argv[2], m, &d)) ||
        (argc == 8 && sardfq_model_set_executor(m, SARDFQ_EXECUTOR_FAKE))) {
        fprintf(stderr, "dump_logits: %s\n", sardfq_last_error());
        return 1;
    }
    long n = atol(argv[3]);
    if (!random && (n <= 0 || n > sardfq_dataset_count(d)))
        n = (long)sardfq_dataset_count(d);
    if (n <= 0) {
        fprintf(stderr, "dump_logits: N must be positive with random images\n");
        return 2;
    }
    const size_t px = (size_t)info.in_chans * info.img_h * info.img_w, K = (size_t)info.num_classes;
    float *img = malloc(sizeof(float) * px * (size_t)n), *lg = malloc(sizeof(float) * K * (size_t)n);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)n);
    int rc = !img || !lg || !lab;
    for (long s = 0; !rc && s < n; s += 256) {
        const int b = (int)(n - s < 256 ? n - s : 256);
        if (random) {
            noise(img + (size_t)s * px, (size_t)b * px);
            memset(lab + s, 0, sizeof(int32_t) * (size_t)b);
        }
        rc = (!random && sardfq_dataset_read(d, s, b, img + (size_t)s * px, lab + s)) ||
             sardfq_model_forward(m, img + (size_t)s * px, b, lg + (size_t)s * K);
    }
    if (rc)
        fprintf(stderr, "dump_logits: %s\n", sardfq_last_error());
    else
        rc = !(put(argv[4], img, sizeof(float) * px * (size_t)n) && put(argv[5], lg, sizeof(float) * K * (size_t)n) &&
               put(argv[6], lab, sizeof(int32_t) * (size_t)n));
    printf("n=%ld chans=%d h=%d w=%d classes=%d\n", n, info.in_chans, info.img_h, info.img_w, info.num_classes);
    free(img);
    free(lg);
    free(lab);
    sardfq_dataset_free(d);
    sardfq_model_free(m);
    return rc;
}
