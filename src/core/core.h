/* core.h - internal helpers shared by every stage: error reporting,
 * allocation (one place, so out-of-memory injection can hook it), threads. */
#ifndef SFQ_CORE_H
#define SFQ_CORE_H

#include "sardfq.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define SFQ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SFQ_PRINTF(a, b)
#endif

/* Function multi-versioning for the vector kernels: SFQ_CLONES compiles a
 * function for AVX-512, AVX2 and baseline x86-64 and picks one at load time
 * (an ifunc resolver). Off under the sanitizers: their runtimes are not
 * ready when the dynamic loader runs the resolvers (ThreadSanitizer crashes
 * there), and for clang and non-x86 targets. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
#define SFQ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define SFQ_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#else
#define SFQ_CLONES
#define SFQ_CLONES_AVX2
#endif

/* Record a formatted detail message for sardfq_last_error() and return s. */
sardfq_status sfq_fail(sardfq_status s, const char *fmt, ...) SFQ_PRINTF(2, 3);
/* Clear the thread's message (called by successful public entry points is
 * not required; messages describe the last failure). */
void sfq_clear_error(void);

/* Allocation. All library memory goes through these. sfq_alloc returns
 * 64-byte aligned memory; size 0 returns a valid unique pointer. They return
 * NULL on failure (and on size overflow in sfq_alloc_array). */
void *sfq_alloc(size_t size);
void *sfq_alloc_zero(size_t size);
void *sfq_alloc_array(size_t count, size_t elem); /* overflow-checked */
void sfq_free(void *p);
char *sfq_strdup(const char *s);

/* Copy a caller's versioned params struct `in` (its first field is
 * uint32_t struct_size) over `out`, which holds the defaults and is
 * out_size bytes: every field of the first version (v1_size bytes) must be
 * present, fields beyond what the caller knows keep their defaults, and a
 * caller struct larger than ours must have an all-zero tail (else
 * SARDFQ_E_UNSUPPORTED). out's struct_size is set to out_size. in may be
 * NULL (the defaults stay). name names the type in messages. */
sardfq_status sfq_read_params(const void *in, void *out, size_t out_size, size_t v1_size,
                              const char *name);

/* Overflow-checked a*b (returns 0 and leaves *out on overflow). */
int sfq_mul_size(size_t a, size_t b, size_t *out);

/* Failure-injection hook for tests: when > 0, the n-th following allocation
 * fails (counting down). Not exported; tests link the static library. */
extern long sfq_alloc_fail_countdown;

#endif
