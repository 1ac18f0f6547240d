/* minimal.c - the smallest host program: load a model, print its shape,
 * classify one all-zero image (the dataset mean after normalisation) and
 * print the arg-max. Public API only.
 *
 *   minimal MODEL.safetensors */
#include <sardfq.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    sardfq_model *m = NULL;
    sardfq_model_info info;
    sardfq_status s;
    float *image, *logits;
    int best = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.safetensors\n", argv[0]);
        return 2;
    }
    s = sardfq_model_load(argv[1], NULL, &m);
    if (s != SARDFQ_OK) {
        fprintf(stderr, "minimal: %s: %s: %s\n", argv[1], sardfq_status_string(s),
                sardfq_last_error());
        return 1;
    }
    info.struct_size = sizeof info;
    s = sardfq_model_get_info(m, &info);
    if (s != SARDFQ_OK) {
        fprintf(stderr, "minimal: %s\n", sardfq_last_error());
        sardfq_model_free(m);
        return 1;
    }
    printf("%s: %dx%dx%d input, %d classes, %d blocks of width %d, %lld parameters\n",
           argv[1], info.in_chans, info.img_h, info.img_w, info.num_classes, info.depth,
           info.embed_dim, (long long)info.num_params);

    image = calloc((size_t)info.in_chans * (size_t)info.img_h * (size_t)info.img_w,
                   sizeof *image);
    logits = malloc((size_t)info.num_classes * sizeof *logits);
    if (image == NULL || logits == NULL) {
        fprintf(stderr, "minimal: out of memory\n");
        free(image), free(logits), sardfq_model_free(m);
        return 1;
    }
    s = sardfq_model_forward(m, image, 1, logits);
    if (s != SARDFQ_OK) {
        fprintf(stderr, "minimal: forward: %s: %s\n", sardfq_status_string(s),
                sardfq_last_error());
        free(image), free(logits), sardfq_model_free(m);
        return 1;
    }
    for (int c = 1; c < info.num_classes; c++)
        if (logits[c] > logits[best])
            best = c;
    printf("zero image -> class %d (logit %.4f)\n", best, logits[best]);
    free(image);
    free(logits);
    sardfq_model_free(m);
    return 0;
}
