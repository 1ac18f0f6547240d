/* threads.c - fork-join parallel loops over a static partition.
 *
 * The partition depends only on (n, nthreads): chunk t is
 * [n*t/nthreads, n*(t+1)/nthreads), whichever thread runs it, so results are
 * bitwise reproducible for a given thread count. The caller always runs
 * chunk 0 itself.
 *
 * The other chunks go to one process-wide pool of worker threads, started
 * on first use and grown to the largest thread count asked for. A worker
 * that finished a job spins for about 0.1 ms (a forward pass issues its
 * parallel loops back to back) and then sleeps on a condition variable, so
 * an idle library uses no CPU. The workers of a job are pinned to CPUs
 * other than the caller's (place_workers). One caller at a time owns the
 * pool; a concurrent caller (another handle on another thread, or a loop
 * nested in a chunk) gets short-lived threads of its own instead, pinned
 * the same way, as does every caller when a worker cannot be started. If
 * no thread can be created at all, the chunks run on the calling thread:
 * the answer is the same, only slower.
 *
 * Lifecycle: the workers are joined by a destructor when the library is
 * unloaded or the process exits; a forked child starts with an empty pool.
 * Workers block every signal, so a host's handlers never run on them. */
#include "core.h"
#include "threads.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>

#define SFQ_MAX_THREADS 64
/* Busy-wait iterations (each one a pause instruction, ~10-40 ns) before a
 * worker or the caller falls back to sleeping. */
#define SFQ_SPIN 4000

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

typedef struct {
    sfq_chunk_fn fn;
    void *ctx;
    int64_t n;
    int chunks;
} job_t;

static void run_chunk(const job_t *j, int t)
{
    j->fn(j->ctx, t, j->n * t / j->chunks, j->n * (t + 1) / j->chunks);
}

/* ---- where a thread runs ---- */

/* The calling thread's CPU and affinity set; 0 when there is no other CPU
 * in the set to put a helper thread on (then nothing is pinned). */
static int other_cpus(int *self, cpu_set_t *allowed)
{
    *self = sched_getcpu();
    return *self >= 0 && sched_getaffinity(0, sizeof *allowed, allowed) == 0 && CPU_COUNT(allowed) > 1;
}

/* The next CPU of `allowed` after `prev` (wrapping) that is not `self`. A
 * helper thread is put there rather than left to the kernel: a new or
 * woken thread otherwise tends to start on its parent's or waker's CPU and
 * share one core with the caller until the load balancer moves it, which
 * for a chunk of a few milliseconds is most of its work (measured: 240 of
 * 288 pool jobs of sardfq-bench-gemm started on the caller's CPU, and 2
 * threads ran at 1 thread's rate). */
static int next_cpu(const cpu_set_t *allowed, int self, int prev)
{
    int c = prev;
    for (int k = 0; k < CPU_SETSIZE; k++) {
        c = (c + 1) % CPU_SETSIZE;
        if (CPU_ISSET(c, allowed) && c != self)
            break;
    }
    return c;
}

/* ---- short-lived threads (the fallback) ---- */

typedef struct {
    const job_t *job;
    int index;
} spawn_arg;

static void *spawn_main(void *arg)
{
    const spawn_arg *a = arg;
    run_chunk(a->job, a->index);
    return NULL;
}

/* Start a thread for chunk `a`, pinned to `cpu` when cpu >= 0 (and
 * unpinned if that is refused). Returns 1 if it started. */
static int spawn(pthread_t *tid, spawn_arg *a, int cpu)
{
    pthread_attr_t attr;
    if (cpu >= 0 && pthread_attr_init(&attr) == 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        const int ok = pthread_attr_setaffinity_np(&attr, sizeof one, &one) == 0 &&
                       pthread_create(tid, &attr, spawn_main, a) == 0;
        pthread_attr_destroy(&attr);
        if (ok)
            return 1;
    }
    return pthread_create(tid, NULL, spawn_main, a) == 0;
}

static void run_spawned(const job_t *j)
{
    pthread_t tids[SFQ_MAX_THREADS];
    spawn_arg args[SFQ_MAX_THREADS];
    int started[SFQ_MAX_THREADS];
    int self, cpu;
    cpu_set_t allowed;
    const int pin = other_cpus(&self, &allowed);
    cpu = self;
    for (int t = 1; t < j->chunks; t++) {
        args[t].job = j;
        args[t].index = t;
        cpu = pin ? next_cpu(&allowed, self, cpu) : -1;
        started[t] = spawn(&tids[t], &args[t], cpu);
    }
    run_chunk(j, 0);
    for (int t = 1; t < j->chunks; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            run_chunk(j, t);
    }
}

/* ---- the pool ---- */

/* Worker t runs chunk t + 1 of a job when its ticket changes: only the
 * workers a job needs are handed one, and the owner writes the next job
 * only after each of them has finished with the current one. */
typedef struct {
    _Alignas(64) atomic_uint_fast64_t ticket;
    uint_fast64_t first; /* the ticket it held when started */
    int cpu;             /* the CPU it is pinned to, -1 = none (owner only) */
} slot_t;

static struct {
    pthread_mutex_t owner; /* held by the caller that uses the pool */
    pthread_mutex_t lock;  /* guards the sleeping side of wake/done */
    pthread_cond_t wake, done;
    pthread_t tids[SFQ_MAX_THREADS];
    slot_t slot[SFQ_MAX_THREADS];
    int nworkers;         /* started (owner only) */
    uint_fast64_t issued; /* last ticket handed out (owner only) */
    job_t job;            /* written by the owner before the tickets */
    atomic_int remaining; /* chunks of the current job not yet done by workers */
    atomic_int stop;
} pool = {
    .owner = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

static void *worker_main(void *arg)
{
    const int t = (int)(intptr_t)arg;
    atomic_uint_fast64_t *ticket = &pool.slot[t].ticket;
    uint_fast64_t seen = pool.slot[t].first; /* not the ticket: a job may already be issued */
    for (;;) {
        uint_fast64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(ticket, memory_order_acquire)) == seen && spins < SFQ_SPIN) {
            cpu_relax();
            spins++;
        }
        if (g == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((g = atomic_load_explicit(ticket, memory_order_acquire)) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = g;
        if (atomic_load_explicit(&pool.stop, memory_order_acquire))
            return NULL;
        const job_t j = pool.job;
        run_chunk(&j, t + 1);
        if (atomic_fetch_sub_explicit(&pool.remaining, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
}

/* Start workers until there are `want` (owner held). Returns how many run. */
static int grow_pool(int want)
{
    if (pool.nworkers >= want)
        return pool.nworkers;
    sigset_t all, old;
    sigfillset(&all);
    const int masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    while (pool.nworkers < want) {
        const int t = pool.nworkers;
        pool.slot[t].first = pool.issued;
        pool.slot[t].cpu = -1;
        atomic_store_explicit(&pool.slot[t].ticket, pool.issued, memory_order_relaxed);
        if (pthread_create(&pool.tids[t], NULL, worker_main, (void *)(intptr_t)t) != 0)
            break;
        pool.nworkers++;
    }
    if (masked)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool.nworkers;
}

/* Hand out tickets to workers 0 .. count-1 and wake the sleeping ones. */
static void issue(int count)
{
    pool.issued++;
    pthread_mutex_lock(&pool.lock);
    for (int t = 0; t < count; t++)
        atomic_store_explicit(&pool.slot[t].ticket, pool.issued, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
}

/* Keep workers 0 .. count-1 off the caller's CPU, each on the next CPU of
 * the caller's set after the caller's (wrapping; see next_cpu). A worker
 * is re-pinned only when the caller has moved. */
static void place_workers(int count)
{
    int self;
    cpu_set_t allowed;
    if (!other_cpus(&self, &allowed))
        return;
    int cpu = self;
    for (int t = 0; t < count; t++) {
        cpu = next_cpu(&allowed, self, cpu);
        if (pool.slot[t].cpu != cpu) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pool.slot[t].cpu = pthread_setaffinity_np(pool.tids[t], sizeof one, &one) == 0 ? cpu : -1;
        }
    }
}

static void run_pooled(const job_t *j)
{
    place_workers(j->chunks - 1);
    pool.job = *j;
    atomic_store_explicit(&pool.remaining, j->chunks - 1, memory_order_relaxed);
    issue(j->chunks - 1);
    run_chunk(j, 0);
    for (int spins = 0; spins < SFQ_SPIN; spins++) {
        if (atomic_load_explicit(&pool.remaining, memory_order_acquire) == 0)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&pool.lock);
    while (atomic_load_explicit(&pool.remaining, memory_order_acquire) != 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
}

static void stop_pool(void)
{
    if (pool.nworkers == 0)
        return;
    atomic_store_explicit(&pool.stop, 1, memory_order_release);
    issue(pool.nworkers);
    for (int t = 0; t < pool.nworkers; t++)
        pthread_join(pool.tids[t], NULL);
    pool.nworkers = 0;
    atomic_store_explicit(&pool.stop, 0, memory_order_release);
}

/* Unload or exit: join the workers (they are asleep or spinning; a job in
 * flight on another thread is finished first because the owner is held). */
__attribute__((destructor)) static void sfq_threads_shutdown(void)
{
    if (pthread_mutex_trylock(&pool.owner) != 0)
        return; /* a job is running on another thread; leave it alone */
    stop_pool();
    pthread_mutex_unlock(&pool.owner);
}

/* A forked child has only the forking thread: forget the workers. */
static void after_fork_child(void)
{
    pthread_mutex_init(&pool.owner, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.nworkers = 0;
    atomic_store(&pool.stop, 0);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void register_fork(void)
{
    pthread_atfork(NULL, NULL, after_fork_child);
}

/* ---- entry points ---- */

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
    const job_t j = {fn, ctx, n, nthreads};
    if (pthread_mutex_trylock(&pool.owner) == 0) {
        pthread_once(&fork_once, register_fork);
        if (grow_pool(nthreads - 1) >= nthreads - 1) {
            run_pooled(&j);
            pthread_mutex_unlock(&pool.owner);
            return;
        }
        pthread_mutex_unlock(&pool.owner);
    }
    run_spawned(&j);
}
