/* compute.c - the thread policy of compute calls, GEMMs split by rows, and
 * patch extraction (see compute.h). */
#include "compute.h"

#include "threads.h"
#include "vmath.h"

#include <cblas.h>
#include <pthread.h>
#include <string.h>

/* OpenBLAS's thread controls (declared in its cblas.h on Debian, repeated
 * here so other cblas headers work too). */
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);

int sfq_compute_threads(int n_threads)
{
    if (n_threads > 0)
        return n_threads;
    int t = openblas_get_num_threads();
    return t > 0 ? t : 1;
}

/* Threads. With n_threads > 0 (the model's setting) the library runs
 * everything on its own threads: each large GEMM is split by rows into
 * single-threaded OpenBLAS calls, and OpenBLAS is set to one thread for the
 * duration of the compute call (its previous setting is restored by
 * end_compute). Otherwise OpenBLAS
 * threads each GEMM itself and the library's element-wise loops use as many
 * threads as OpenBLAS has. One pool at a time: OpenBLAS's idle workers spin
 * on sched_yield while other threads compute, which cost ~17% of a forward
 * on two cores. */

/* OpenBLAS's thread count is process-global, and several host threads may
 * compute at once (on one model or several): the first compute call to
 * start saves the count and sets 1, the last one to end restores it. (With
 * a save/restore per call, two overlapping calls could restore in the wrong
 * order and leave a call running GEMMs on OpenBLAS's threads: found by the
 * threads test under valgrind, which serialises threads.) */
static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;
static int blas_users, blas_saved;

sfq_compute sfq_begin_compute(int n_threads)
{
    sfq_compute c = {sfq_compute_threads(n_threads), 1, 0};
    if (n_threads > 0) {
        c.split = n_threads;
        c.blas_before = 1;
        pthread_mutex_lock(&blas_lock);
        if (blas_users++ == 0) {
            blas_saved = openblas_get_num_threads();
            openblas_set_num_threads(1);
        }
        pthread_mutex_unlock(&blas_lock);
    }
    return c;
}

void sfq_end_compute(const sfq_compute *c)
{
    if (!c->blas_before)
        return;
    pthread_mutex_lock(&blas_lock);
    if (--blas_users == 0)
        openblas_set_num_threads(blas_saved);
    pthread_mutex_unlock(&blas_lock);
}

typedef struct {
    int transa, transb, M, N, K, lda, ldb, ldc, item, per_item;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_args;

/* Blocks b0..b1-1: block j of item i covers the item's rows
 * j*SFQ_GEMM_BLOCK.. (at most SFQ_GEMM_BLOCK of them), one call each. */
static void gemm_blocks(void *vc, int64_t b0, int64_t b1)
{
    const gemm_args *g = vc;
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t first = blk / g->per_item * g->item;
        const int64_t r0 = first + blk % g->per_item * SFQ_GEMM_BLOCK;
        int64_t r1 = r0 + SFQ_GEMM_BLOCK;
        if (r1 > first + g->item)
            r1 = first + g->item;
        if (r1 > g->M)
            r1 = g->M;
        if (r1 <= r0)
            continue;
        const float *A = g->transa ? g->A + r0 : g->A + r0 * g->lda;
        cblas_sgemm(CblasRowMajor, g->transa ? CblasTrans : CblasNoTrans, g->transb ? CblasTrans : CblasNoTrans,
                    (int)(r1 - r0), g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->beta, g->C + r0 * g->ldc,
                    g->ldc);
    }
}

void sfq_gemm(int split, int item, int transa, int transb, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0)
        return;
    if (item <= 0 || item > M)
        item = M;
    const int per_item = (item + SFQ_GEMM_BLOCK - 1) / SFQ_GEMM_BLOCK;
    const int64_t items = ((int64_t)M + item - 1) / item, blocks = items * per_item;
    gemm_args g = {transa, transb, M, N, K, lda, ldb, ldc, item, per_item, alpha, beta, A, B, C};
    /* threads share whole blocks; tiny products stay on one thread */
    if ((int64_t)M * N * K < (int64_t)1 << 18)
        split = 1;
    if (split > blocks)
        split = (int)blocks;
    sfq_parallel_for(split > 1 ? split : 1, blocks, gemm_blocks, &g);
}

void sfq_linear(const sfq_compute *c, const float *x, const float *W, const float *b, float *y,
                int rows, int item, int in, int out, int accumulate)
{
    if (!b) {
        sfq_gemm(c->split, item, 0, 1, rows, out, in, 1.0f, x, in, W, in, accumulate ? 1.0f : 0.0f, y, out);
        return;
    }
    if (!accumulate)
        sfq_fill_rows(y, b, rows, out, c->nt);
    sfq_gemm(c->split, item, 0, 1, rows, out, in, 1.0f, x, in, W, in, 1.0f, y, out);
    if (accumulate)
        sfq_add_bias(y, b, rows, out, c->nt);
}

typedef struct {
    int C, H, W, p, gh, gw;
    const float *images;
    float *patches;
} im2col_ctx;

static void im2col_range(void *vc, int64_t r0, int64_t r1)
{
    const im2col_ctx *c = vc;
    const int p = c->p, C = c->C, H = c->H, W = c->W, gw = c->gw;
    const int G = c->gh * gw, cpp = C * p * p;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / G;
        const int g = (int)(r % G), gy = g / gw, gx = g % gw;
        float *dst = c->patches + r * cpp;
        for (int ch = 0; ch < C; ch++)
            for (int ky = 0; ky < p; ky++)
                memcpy(dst + (ch * p + ky) * p,
                       c->images + ((b * C + ch) * H + (int64_t)gy * p + ky) * W + (int64_t)gx * p,
                       sizeof(float) * (size_t)p);
    }
}

static void col2im_range(void *vc, int64_t r0, int64_t r1)
{
    const im2col_ctx *c = vc;
    const int p = c->p, C = c->C, H = c->H, W = c->W, gw = c->gw;
    const int G = c->gh * gw, cpp = C * p * p;
    float *img = (float *)c->images;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / G;
        const int g = (int)(r % G), gy = g / gw, gx = g % gw;
        const float *src = c->patches + r * cpp;
        for (int ch = 0; ch < C; ch++)
            for (int ky = 0; ky < p; ky++)
                memcpy(img + ((b * C + ch) * H + (int64_t)gy * p + ky) * W + (int64_t)gx * p,
                       src + (ch * p + ky) * p, sizeof(float) * (size_t)p);
    }
}

void sfq_im2col(int C, int H, int W, int p, int gh, int gw, const float *images, int n, float *patches, int nt)
{
    im2col_ctx ic = {C, H, W, p, gh, gw, images, patches};
    sfq_parallel_for(nt, (int64_t)n * gh * gw, im2col_range, &ic);
}

void sfq_col2im(int C, int H, int W, int p, int gh, int gw, float *images, int n, const float *patches, int nt)
{
    im2col_ctx ic = {C, H, W, p, gh, gw, images, (float *)patches};
    sfq_parallel_for(nt, (int64_t)n * gh * gw, col2im_range, &ic);
}
