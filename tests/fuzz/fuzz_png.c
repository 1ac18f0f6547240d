/* fuzz_png.c - libFuzzer harness for the PNG reader: the input is written
 * to a temporary file and read as gray and as RGB. */
#include "image.h"
#include "fuzz_tmpfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmp_write(".png", data, size);
    if (!path)
        return 0;
    for (int channels = 1; channels <= 3; channels += 2) {
        uint8_t *px = NULL;
        int h = 0, w = 0;
        if (sfq_png_read(path, channels, &px, &h, &w) == SARDFQ_OK) {
            size_t n = (size_t)h * (size_t)w * (size_t)channels;
            volatile unsigned sum = 0;
            for (size_t i = 0; i < n; i++)
                sum += px[i];
            sfq_free(px);
        }
    }
    unlink(path);
    return 0;
}
