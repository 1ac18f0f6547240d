/* fuzz_tmpfile.h - write a fuzz input to a private temporary file (the
 * readers under test take a path). One file per process, rewritten per
 * input. */
#ifndef SFQ_FUZZ_TMPFILE_H
#define SFQ_FUZZ_TMPFILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *fuzz_tmp_write(const char *suffix, const uint8_t *data, size_t size)
{
    static char path[512];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/sfq_fuzz_%ld%s", dir && *dir ? dir : "/tmp",
                 (long)getpid(), suffix);
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return NULL;
    }
    if (fclose(f) != 0)
        return NULL;
    return path;
}

#endif
