/* testutil.h - helpers shared by the Check suites. */
#ifndef SFQ_TESTUTIL_H
#define SFQ_TESTUTIL_H

#include "safetensors.h"

#include <stddef.h>
#include <stdint.h>

/* Path of a file in tests/data (from $SARDFQ_TEST_DATA); static buffer,
 * valid until the next call. */
const char *tu_data(const char *name);
/* Path of a file relative to the source root ($SARDFQ_SOURCE_ROOT). */
const char *tu_src(const char *rel);
/* Whole file into a malloc'ed buffer (NULL if unreadable). */
uint8_t *tu_read_file(const char *path, size_t *len);
/* max |a - b| over n floats, and max |b| */
double tu_max_abs_diff(const float *a, const float *b, size_t n);
double tu_max_abs(const float *a, size_t n);

/* A safetensors fixture from tests/data, parsed (Check assertions on
 * failure); tensors come back as malloc'ed float32 copies. */
typedef struct {
    uint8_t *buf;
    sfq_st_file st;
} tu_fixture;
void tu_fixture_open(tu_fixture *f, const char *name);
float *tu_fixture_get(tu_fixture *f, const char *tensor, size_t *numel);
void tu_fixture_close(tu_fixture *f);

/* A fresh temporary folder "<TMPDIR or /tmp>/<prefix>_XXXXXX" (static
 * buffer), its recursive removal, and "a/b" (rotating static buffers). */
char *tu_make_tmpdir(const char *prefix);
void tu_rm_rf(const char *dir);
const char *tu_join(const char *a, const char *b);
/* m's sardfq_model_info (the test fails if it cannot be read). */
sardfq_model_info tu_info(const sardfq_model *m);
/* Number of entries in folder dir, besides . and .. */
int tu_count_entries(const char *dir);

#endif
