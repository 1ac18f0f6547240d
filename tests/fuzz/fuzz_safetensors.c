/* fuzz_safetensors.c - libFuzzer harness: the input is a safetensors model
 * buffer for sardfq_model_load_memory (public API); a model that loads runs
 * one forward on zero images and is freed. */
#include "sardfq.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sardfq_model *m = NULL;
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.n_threads = 1; /* deterministic, no pool threads per input */
    if (sardfq_model_load_memory(data, size, &p, &m) != SARDFQ_OK)
        return 0;
    sardfq_model_info info;
    info.struct_size = sizeof info;
    if (sardfq_model_get_info(m, &info) == SARDFQ_OK) {
        size_t px = (size_t)info.in_chans * (size_t)info.img_h * (size_t)info.img_w;
        /* bound the work per input: big shapes are valid but slow */
        if (info.flops_per_image < 5e7 && px <= (1u << 20)) {
            float *img = calloc(px ? px : 1, sizeof(float));
            float *logits = malloc(sizeof(float) * (size_t)(info.num_classes > 0 ? info.num_classes : 1));
            if (img && logits) {
                sardfq_status s = sardfq_model_forward(m, img, 1, logits);
                (void)s;
            }
            free(img);
            free(logits);
        }
    }
    sardfq_model_free(m);
    return 0;
}
