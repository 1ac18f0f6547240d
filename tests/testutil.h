/* testutil.h - helpers shared by the Check suites. */
#ifndef SFQ_TESTUTIL_H
#define SFQ_TESTUTIL_H

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

#endif
