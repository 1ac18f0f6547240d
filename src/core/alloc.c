/* alloc.c - the one place library memory is allocated. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

long sfq_alloc_fail_countdown = 0;

void *sfq_alloc(size_t size)
{
    if (sfq_alloc_fail_countdown > 0 && --sfq_alloc_fail_countdown == 0)
        return NULL;
    size_t rounded = (size + 63) & ~(size_t)63;
    if (rounded < size)
        return NULL;
    if (rounded == 0)
        rounded = 64;
    return aligned_alloc(64, rounded);
}

void *sfq_alloc_zero(size_t size)
{
    void *p = sfq_alloc(size);
    if (p)
        memset(p, 0, size);
    return p;
}

int sfq_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

void *sfq_alloc_array(size_t count, size_t elem)
{
    size_t n;
    if (!sfq_mul_size(count, elem, &n))
        return NULL;
    return sfq_alloc(n);
}

void sfq_free(void *p) { free(p); }

char *sfq_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = sfq_alloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
