/* threads.h - internal parallel loop. */
#ifndef SFQ_THREADS_H
#define SFQ_THREADS_H

#include <stdint.h>

/* Work on the half-open index range [begin, end). */
typedef void (*sfq_range_fn)(void *ctx, int64_t begin, int64_t end);

/* Run fn over [0, n) split into nthreads contiguous chunks (static, so the
 * split depends only on n and nthreads). Returns when all chunks are done. */
void sfq_parallel_for(int nthreads, int64_t n, sfq_range_fn fn, void *ctx);

#endif
