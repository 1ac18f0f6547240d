/* test_threads.c - several host threads share one loaded model (and one
 * quantized model), each with its own state, while the library runs its own
 * worker threads (n_threads = 2). Every thread must get bitwise the
 * single-threaded results. Run by tests/run.sh under ThreadSanitizer too
 * (suite threads), where any data race fails it.
 *
 * The second case drives the parallel loop itself: every index is visited
 * exactly once, in the static chunks, for thread counts that grow and
 * shrink the worker pool, for loops nested in a chunk, for several host
 * threads at once (one owns the pool, the others fall back to their own
 * threads) and in a forked child. */
#include "sardfq.h"
#include "testutil.h"
#include "threads.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define REPS 3

typedef struct {
    sardfq_model *m, *qm;
    const float *x;
    int n, k;
    const float *ref, *qref, *attn_ref;
    size_t nattn;
    int ok;
} job;

static void *worker(void *p)
{
    job *j = p;
    float *out = malloc(sizeof(float) * (size_t)j->n * j->k);
    float *attn = malloc(sizeof(float) * j->nattn);
    sardfq_state *s = NULL;
    j->ok = out && attn && sardfq_state_create(j->m, &s) == SARDFQ_OK;
    for (int r = 0; r < REPS && j->ok; r++) {
        j->ok = sardfq_model_forward(j->m, j->x, j->n, out) == SARDFQ_OK &&
                memcmp(out, j->ref, sizeof(float) * (size_t)j->n * j->k) == 0;
        j->ok = j->ok && sardfq_model_forward(j->qm, j->x, j->n, out) == SARDFQ_OK &&
                memcmp(out, j->qref, sizeof(float) * (size_t)j->n * j->k) == 0;
        j->ok = j->ok && sardfq_model_forward_ex(j->m, s, j->x, j->n, SARDFQ_FORWARD_ATTENTION, out) == SARDFQ_OK &&
                sardfq_state_get_attention(s, attn, j->nattn) == SARDFQ_OK &&
                memcmp(attn, j->attn_ref, sizeof(float) * j->nattn) == 0;
    }
    sardfq_state_free(s);
    free(out);
    free(attn);
    return NULL;
}

START_TEST(threads_share_models)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.n_threads = 2;
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_load(tu_data("vit_p16_rgb.model.safetensors"), &p, &m), SARDFQ_OK);
    sardfq_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sardfq_model_get_info(m, &info), SARDFQ_OK);
    const int n = 3, k = info.num_classes;
    const size_t per = (size_t)info.in_chans * info.img_h * info.img_w;
    const size_t nattn = (size_t)n * info.depth * info.num_heads * info.num_tokens;
    float *x = malloc(sizeof(float) * per * n);
    for (size_t i = 0; i < per * n; i++)
        x[i] = sinf((float)i * 0.37f);
    /* a quantized copy, calibrated on the same images */
    sardfq_quant_params qp;
    sardfq_quant_default_params(&qp);
    sardfq_quantizer *q = NULL;
    sardfq_model *qm = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(m, &qp, &q), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, x, n), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &qm), SARDFQ_OK);
    sardfq_quantizer_free(q);
    float *ref = malloc(sizeof(float) * n * k), *qref = malloc(sizeof(float) * n * k);
    float *attn_ref = malloc(sizeof(float) * nattn);
    sardfq_state *s = NULL;
    ck_assert_int_eq(sardfq_state_create(m, &s), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward(m, x, n, ref), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward(qm, x, n, qref), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward_ex(m, s, x, n, SARDFQ_FORWARD_ATTENTION, ref), SARDFQ_OK);
    ck_assert_int_eq(sardfq_state_get_attention(s, attn_ref, nattn), SARDFQ_OK);
    sardfq_state_free(s);
    job j[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        j[i] = (job){m, qm, x, n, k, ref, qref, attn_ref, nattn, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &j[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(j[i].ok, "thread %d got other results", i);
    }
    free(x);
    free(ref);
    free(qref);
    free(attn_ref);
    sardfq_model_free(qm);
    sardfq_model_free(m);
}
END_TEST

/* ---- the parallel loop ---- */

#define COVER_N 1000

typedef struct {
    atomic_int hits[COVER_N];
    int64_t n;
    int chunks; /* expected chunk count */
    atomic_int bad;
    int nested; /* threads of an inner loop run in each chunk, 0 = none */
} cover;

static void inner(void *ctx, int chunk, int64_t b, int64_t e)
{
    (void)chunk;
    atomic_int *sum = ctx;
    atomic_fetch_add(sum, (int)(e - b));
}

static void mark(void *ctx, int chunk, int64_t b, int64_t e)
{
    cover *c = ctx;
    if (chunk < 0 || chunk >= c->chunks || b != c->n * chunk / c->chunks || e != c->n * (chunk + 1) / c->chunks)
        atomic_store(&c->bad, 1);
    for (int64_t i = b; i < e; i++)
        atomic_fetch_add(&c->hits[i], 1);
    if (c->nested) {
        atomic_int sum = 0;
        sfq_parallel_chunks(c->nested, 97, inner, &sum);
        if (atomic_load(&sum) != 97)
            atomic_store(&c->bad, 1);
    }
}

/* Run one loop of n indices on nthreads; 1 if it covered [0, n) exactly once. */
static int cover_once(int nthreads, int64_t n, int nested)
{
    static _Thread_local cover c;
    for (int i = 0; i < COVER_N; i++)
        atomic_store(&c.hits[i], 0);
    c.n = n;
    c.chunks = nthreads < 1 ? 1 : nthreads > n ? (int)n : nthreads;
    atomic_store(&c.bad, 0);
    c.nested = nested;
    sfq_parallel_chunks(nthreads, n, mark, &c);
    int ok = !atomic_load(&c.bad);
    for (int64_t i = 0; i < COVER_N; i++)
        ok = ok && atomic_load(&c.hits[i]) == (i < n ? 1 : 0);
    return ok;
}

static void *cover_host(void *p)
{
    int *ok = p;
    for (int r = 0; r < 200 && *ok; r++)
        *ok = cover_once(2 + r % 3, 500 + r, r % 7 == 0 ? 2 : 0);
    return NULL;
}

START_TEST(threads_parallel_loop)
{
    static const int counts[] = {2, 4, 8, 3, 2, 64, 5, 2, 1, 0, 7};
    for (int rep = 0; rep < 20; rep++)
        for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
            ck_assert_msg(cover_once(counts[k], 1 + (rep * 37 + (int)k * 101) % COVER_N, 0),
                          "nthreads %d rep %d", counts[k], rep);
            ck_assert_msg(cover_once(counts[k], 3, 0), "nthreads %d, 3 indices", counts[k]);
        }
    ck_assert(cover_once(4, COVER_N, 3)); /* nested loops */
    int ok[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ok[i] = 1;
        ck_assert_int_eq(pthread_create(&t[i], NULL, cover_host, &ok[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(ok[i], "host thread %d", i);
    }
#if !defined(__SANITIZE_THREAD__) /* ThreadSanitizer cannot start threads after such a fork */
    /* a child forked after the pool started gets a working loop of its own */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(cover_once(4, COVER_N, 0) && cover_once(2, 77, 2) ? 0 : 1);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
#endif
    ck_assert(cover_once(3, COVER_N, 0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, threads_share_models);
    tcase_add_test(tc, threads_parallel_loop);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
