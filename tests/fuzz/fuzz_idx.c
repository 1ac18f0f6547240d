/* fuzz_idx.c - libFuzzer harness for the IDX readers (plain or gzip): the
 * input is written to a temporary file and read as images and as labels. */
#include "image.h"
#include "fuzz_tmpfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmp_write(".idx", data, size);
    if (!path)
        return 0;
    sfq_u8_images im = {0};
    if (sfq_idx_read_images(path, &im) == SARDFQ_OK) {
        /* touch every pixel so ASan checks the reported size */
        size_t n = (size_t)im.n * (size_t)im.h * (size_t)im.w * (size_t)im.c;
        volatile unsigned sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += im.pixels[i];
        sfq_free(im.pixels);
    }
    int32_t *labels = NULL;
    int64_t n = 0;
    if (sfq_idx_read_labels(path, &labels, &n) == SARDFQ_OK) {
        volatile int64_t sum = 0;
        for (int64_t i = 0; i < n; i++)
            sum += labels[i];
        sfq_free(labels);
    }
    unlink(path);
    return 0;
}
