/* threads.c - fork-join parallel loops over a static partition.
 *
 * Each call spawns (nthreads - 1) short-lived threads and runs the first
 * chunk itself, so there is no global pool, no lifecycle and nothing shared
 * between concurrent callers. The partition depends only on (n, nthreads),
 * so results are bitwise reproducible for a given thread count. If a thread
 * cannot be created, its chunk runs on the calling thread. */
#include "core.h"
#include "threads.h"

#include <pthread.h>

#define SFQ_MAX_THREADS 64

typedef struct {
    sfq_chunk_fn fn;
    void *ctx;
    int index;
    int64_t begin, end;
} chunk_t;

static void *chunk_main(void *arg)
{
    chunk_t *c = arg;
    c->fn(c->ctx, c->index, c->begin, c->end);
    return NULL;
}

typedef struct {
    sfq_range_fn fn;
    void *ctx;
} range_adapter;

static void run_range(void *ctx, int chunk, int64_t begin, int64_t end)
{
    (void)chunk;
    const range_adapter *a = ctx;
    a->fn(a->ctx, begin, end);
}

void sfq_parallel_for(int nthreads, int64_t n, sfq_range_fn fn, void *ctx)
{
    range_adapter a = {fn, ctx};
    sfq_parallel_chunks(nthreads, n, run_range, &a);
}

void sfq_parallel_chunks(int nthreads, int64_t n, sfq_chunk_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (nthreads > SFQ_MAX_THREADS)
        nthreads = SFQ_MAX_THREADS;
    if (nthreads > n)
        nthreads = (int)n;
    if (nthreads <= 1) {
        fn(ctx, 0, 0, n);
        return;
    }
    chunk_t chunks[SFQ_MAX_THREADS];
    pthread_t tids[SFQ_MAX_THREADS];
    int started[SFQ_MAX_THREADS];
    for (int t = 0; t < nthreads; t++) {
        chunks[t].fn = fn;
        chunks[t].ctx = ctx;
        chunks[t].index = t;
        chunks[t].begin = n * t / nthreads;
        chunks[t].end = n * (t + 1) / nthreads;
    }
    for (int t = 1; t < nthreads; t++)
        started[t] = pthread_create(&tids[t], NULL, chunk_main, &chunks[t]) == 0;
    chunk_main(&chunks[0]);
    for (int t = 1; t < nthreads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            chunk_main(&chunks[t]);
    }
}
