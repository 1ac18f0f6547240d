/* fuzz_calib.c - libFuzzer harness for sardfq_calib_load (public API, the
 * two-call protocol): sizes first, then the data into buffers of exactly
 * the reported sizes. */
#include "sardfq.h"
#include "fuzz_tmpfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmp_write(".safetensors", data, size);
    if (!path)
        return 0;
    int n = 0, c = 0, h = 0, w = 0, k = 0;
    if (sardfq_calib_load(path, NULL, NULL, &n, &c, &h, &w, &k) == SARDFQ_OK) {
        size_t ni = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
        size_t nt = (size_t)n * (size_t)k;
        if (n > 0 && ni <= ((size_t)1 << 26) && nt <= ((size_t)1 << 26)) {
            float *img = malloc(sizeof(float) * ni);
            float *tgt = nt ? malloc(sizeof(float) * nt) : NULL;
            if (img && (tgt || !nt)) {
                sardfq_status s = sardfq_calib_load(path, img, tgt, &n, &c, &h, &w, &k);
                /* and without targets */
                if (s == SARDFQ_OK)
                    s = sardfq_calib_load(path, img, NULL, &n, &c, &h, &w, &k);
                (void)s;
            }
            free(img);
            free(tgt);
        }
    }
    unlink(path);
    return 0;
}
