/* threads.h - internal parallel loop. */
#ifndef SFQ_THREADS_H
#define SFQ_THREADS_H

#include <stdint.h>

/* Work on the half-open index range [begin, end). */
typedef void (*sfq_range_fn)(void *ctx, int64_t begin, int64_t end);

/* Run fn over [0, n) split into nthreads contiguous chunks (static, so the
 * split depends only on n and nthreads), chunk 0 on the calling thread and
 * the others on the process-wide worker pool (threads.c). Returns when all
 * chunks are done. Never fails: without threads the chunks run here. */
void sfq_parallel_for(int nthreads, int64_t n, sfq_range_fn fn, void *ctx);

/* The same, telling each call its chunk index (0 .. chunks-1, at most
 * nthreads), e.g. to pick per-thread scratch. */
typedef void (*sfq_chunk_fn)(void *ctx, int chunk, int64_t begin, int64_t end);
void sfq_parallel_chunks(int nthreads, int64_t n, sfq_chunk_fn fn, void *ctx);

#endif
