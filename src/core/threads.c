/* threads.c - fork-join parallel loops over a static partition.
 *
 * Each call spawns (nthreads - 1) short-lived threads and runs the first
 * chunk itself, so there is no global pool, no lifecycle and nothing shared
 * between concurrent callers. The partition depends only on (n, nthreads),
 * so results are bitwise reproducible for a given thread count. If a thread
 * cannot be created, its chunk runs on the calling thread. A new thread is
 * started on another CPU of the process's set than the caller's (see
 * sfq_parallel_chunks). */
#include "core.h"
#include "threads.h"

#include <pthread.h>
#include <sched.h>

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
    /* Start each thread on another CPU of the process's set than the
     * caller's: a new thread otherwise often starts on its parent's CPU and
     * shares it until the load balancer moves it, which for a chunk of a few
     * milliseconds is most of its life. */
    cpu_set_t allowed;
    const int self = sched_getcpu();
    const int have_set = self >= 0 && sched_getaffinity(0, sizeof allowed, &allowed) == 0;
    int next = self;
    for (int t = 1; t < nthreads; t++) {
        pthread_attr_t attr;
        int use_attr = 0;
        if (have_set && CPU_COUNT(&allowed) > 1 && pthread_attr_init(&attr) == 0) {
            use_attr = 1;
            for (int k = 0; k < CPU_SETSIZE; k++) { /* the next allowed CPU after the last one used */
                next = (next + 1) % CPU_SETSIZE;
                if (CPU_ISSET(next, &allowed) && next != self)
                    break;
            }
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(next, &one);
            if (pthread_attr_setaffinity_np(&attr, sizeof one, &one) != 0) {
                pthread_attr_destroy(&attr);
                use_attr = 0;
            }
        }
        started[t] = pthread_create(&tids[t], use_attr ? &attr : NULL, chunk_main, &chunks[t]) == 0;
        if (!started[t] && use_attr) /* e.g. affinity refused: as before */
            started[t] = pthread_create(&tids[t], NULL, chunk_main, &chunks[t]) == 0;
        if (use_attr)
            pthread_attr_destroy(&attr);
    }
    chunk_main(&chunks[0]);
    for (int t = 1; t < nthreads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            chunk_main(&chunks[t]);
    }
}
