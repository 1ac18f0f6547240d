/* bench_gemm.c - `sardfq-bench-gemm`: the integer executor's u8 x s8 GEMM
 * (src/kernels/igemm.h, with its fused float epilogue) at the ViT linears'
 * shapes, next to OpenBLAS sgemm on the same shapes in the same run.
 *
 * M = 197 * 8 rows (a DeiT batch of 8); (K, N) = (D, 3D) qkv, (D, D) proj,
 * (D, 4D) fc1, (4D, D) fc2 for D = 192, 384, 768. Each shape: one warm-up
 * of each, then R alternated pairs (sgemm, igemm), medians. Both rates count
 * 2 M N K operations. Options: --threads T (default 2), --repeat R (default
 * 7), --isa c|avx2|vnni (default: the best of this CPU), --bits 8|4. A
 * sample of one side is a warm-up call and then 5 calls back to back (as in
 * a forward; a single call after the other library's would also time its
 * idle workers, which spin and hold a core); the sides alternate. The last
 * line: igemm_gops_D384=... igemm_gops_D768=... sgemm_gflops_D384=...
 * sgemm_gflops_D768=... ratio_D384=... ratio_D768=... (per-D sums of times).
 *
 * Built with oneDNN (Debian libdnnl-dev, found by meson; optional), a third
 * side times dnnl_gemm_u8s8s32 on the same codes (int32 output, no
 * epilogue; its OpenMP threads set to T through omp_set_num_threads
 * unless OMP_NUM_THREADS is set), and the last line adds onednn_gops_D384/D768 and
 * ours_over_onednn_D384/D768.
 *
 * On the vnni path a first line gives the core's ceiling for these
 * products: vpdpbusd on 512-bit registers only (ten independent
 * accumulators, no loads), on each of the T threads at once, in GOP/s
 * (2 x 64 per instruction), and the igemm rates as a share of it.
 *
 * A benchmark of library internals: it links the static library. */
#include "compute.h"
#include "igemm.h"
#include "threads.h"

#include <cblas.h>
#ifdef SFQ_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
/* OpenMP's call, when oneDNN brought an OpenMP runtime in (weak: the
 * bench needs no OpenMP headers or flags of its own) */
extern void omp_set_num_threads(int n) __attribute__((weak));
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define BURST 5

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PEAK_ITERS 20000000L

/* Ten independent vpdpbusd chains on registers, PEAK_ITERS times each:
 * each accumulator starts apart, so none of the chains can be merged. */
__attribute__((target("avx512f,avx512vnni"))) static void peak_range(void *ctx, int64_t c0, int64_t c1)
{
    int32_t *sink = ctx;
    for (int64_t c = c0; c < c1; c++) {
        __m512i a = _mm512_set1_epi32(0x01020304 + (int)c), b = _mm512_set1_epi32(0x05060708);
        __m512i r0 = _mm512_set1_epi32(0), r1 = _mm512_set1_epi32(1), r2 = _mm512_set1_epi32(2),
                r3 = _mm512_set1_epi32(3), r4 = _mm512_set1_epi32(4), r5 = _mm512_set1_epi32(5),
                r6 = _mm512_set1_epi32(6), r7 = _mm512_set1_epi32(7), r8 = _mm512_set1_epi32(8),
                r9 = _mm512_set1_epi32(9);
        for (long i = 0; i < PEAK_ITERS; i++) {
            __asm__ volatile("" : "+v"(a), "+v"(b));
            r0 = _mm512_dpbusd_epi32(r0, a, b);
            r1 = _mm512_dpbusd_epi32(r1, a, b);
            r2 = _mm512_dpbusd_epi32(r2, a, b);
            r3 = _mm512_dpbusd_epi32(r3, a, b);
            r4 = _mm512_dpbusd_epi32(r4, a, b);
            r5 = _mm512_dpbusd_epi32(r5, a, b);
            r6 = _mm512_dpbusd_epi32(r6, a, b);
            r7 = _mm512_dpbusd_epi32(r7, a, b);
            r8 = _mm512_dpbusd_epi32(r8, a, b);
            r9 = _mm512_dpbusd_epi32(r9, a, b);
        }
        __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(r0, r1), _mm512_add_epi32(r2, r3)),
                                     _mm512_add_epi32(_mm512_add_epi32(r4, r5), _mm512_add_epi32(r6, r7)));
        s = _mm512_add_epi32(s, _mm512_add_epi32(r8, r9));
        sink[c] = _mm512_reduce_add_epi32(s);
    }
}

/* The ceiling in GOP/s on `threads` threads: the best of 3 runs. */
static double vnni_peak(int threads)
{
    int32_t *sink = calloc((size_t)threads, sizeof(int32_t));
    double best = 0;
    for (int r = 0; sink && r < 3; r++) {
        const double t0 = now();
        sfq_parallel_for(threads, threads, peak_range, sink);
        const double g = 2.0 * 64 * 10 * PEAK_ITERS * threads / (now() - t0) * 1e-9;
        best = g > best ? g : best;
    }
    free(sink);
    return best;
}
#else
static double vnni_peak(int threads) { return (void)threads, 0.0; }
#endif

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

int main(int argc, char **argv)
{
    int threads = 2, repeat = 7, isa_req = SFQ_ISA_AUTO, bits = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat"))
            repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--bits"))
            bits = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--isa"))
            isa_req = !strcmp(argv[i + 1], "c") ? SFQ_ISA_C : !strcmp(argv[i + 1], "avx2") ? SFQ_ISA_AVX2 : SFQ_ISA_VNNI;
        else {
            fprintf(stderr, "usage: sardfq-bench-gemm [--threads T] [--repeat R] [--isa c|avx2|vnni] [--bits 8|4]\n");
            return 2;
        }
    }
    if (threads < 1 || repeat < 1 || bits < 2 || bits > 8) {
        fprintf(stderr, "sardfq-bench-gemm: bad option value\n");
        return 2;
    }
    int isa;
    if (sfq_isa_resolve(isa_req, &isa) != SARDFQ_OK) {
        fprintf(stderr, "sardfq-bench-gemm: %s\n", sardfq_last_error());
        return 1;
    }
    openblas_set_num_threads(threads);
#ifdef SFQ_HAVE_DNNL
    /* the OpenMP runtime read its environment when it was loaded, before
     * main: set its thread count through its call instead (unless the
     * user's OMP_NUM_THREADS says otherwise) */
    if (!getenv("OMP_NUM_THREADS") && omp_set_num_threads)
        omp_set_num_threads(threads);
    double sum_d[3] = {0};
    const int have_dnnl = 1;
#else
    const int have_dnnl = 0;
#endif
    const double peak = isa == SFQ_ISA_VNNI ? vnni_peak(threads) : 0.0;
    const int M = 197 * 8, Ds[3] = {192, 384, 768};
    double sum_i[3] = {0}, sum_s[3] = {0}, ops_d[3] = {0};
    printf("sardfq-bench-gemm: M = %d, %d threads, %s path, W%d codes, median of %d alternated pairs of 5-call bursts\n", M,
           threads, sfq_isa_name(isa), bits, repeat);
    printf("  %-14s %10s %10s %12s %12s %8s%s\n", "D: (K, N)", "sgemm ms", "igemm ms", "sgemm GF/s", "igemm GOP/s",
           "ratio", have_dnnl ? "  oneDNN GOP/s  vs oneDNN" : "");
    for (int di = 0; di < 3; di++) {
        const int D = Ds[di];
        const int shapes[4][2] = {{D, 3 * D}, {D, D}, {D, 4 * D}, {4 * D, D}};
        for (int sh = 0; sh < 4; sh++) {
            const int K = shapes[sh][0], N = shapes[sh][1], kp = (K + 3) / 4 * 4, np = (N + 15) / 16 * 16;
            float *A = malloc(sizeof(float) * (size_t)M * K), *W = malloc(sizeof(float) * (size_t)N * K);
            float *C = malloc(sizeof(float) * (size_t)M * N), *bias = calloc((size_t)N, sizeof(float));
            uint8_t *Aq = calloc((size_t)M * kp, 1), *Wq = malloc((size_t)N * K);
            int32_t *asum = calloc((size_t)M, sizeof(int32_t)), *corr = calloc((size_t)np, 4), *zoff = calloc((size_t)np, 4);
            float *scale = calloc((size_t)np, sizeof(float)), *sw = malloc(sizeof(float) * (size_t)N);
            double *ts = malloc(sizeof(double) * (size_t)repeat), *ti = malloc(sizeof(double) * (size_t)repeat);
            uint64_t st = 1;
            for (size_t e = 0; e < (size_t)M * K; e++) {
                st = st * 6364136223846793005ULL + 1;
                A[e] = (float)((st >> 40) & 255) / 255.0f;
                Aq[(e / K) * kp + e % K] = (uint8_t)((st >> 40) & 255);
            }
            for (size_t e = 0; e < (size_t)N * K; e++) {
                st = st * 6364136223846793005ULL + 1;
                W[e] = (float)((int)((st >> 40) & 255) - 128) / 128.0f;
                Wq[e] = (uint8_t)(((st >> 40) & 255) >> (8 - bits));
            }
            for (int n = 0; n < N; n++)
                sw[n] = 1.0f / 128;
            sfq_ipack p;
            if (sfq_ipack_new(Wq, K, N, K, bits, NULL, &p) != SARDFQ_OK) {
                fprintf(stderr, "sardfq-bench-gemm: out of memory\n");
                return 1;
            }
            sfq_iepi_vectors(&p, 1.0f / 255, 0, sw, 1, scale, corr, zoff);
            const sfq_iepi e = {scale, bias, corr, zoff, asum, C, N, 0};
#ifdef SFQ_HAVE_DNNL
            int8_t *Ws = malloc((size_t)N * K);
            int32_t *C32 = malloc(sizeof(int32_t) * (size_t)M * N), co = 0;
            double *td = malloc(sizeof(double) * (size_t)repeat);
            for (size_t q = 0; q < (size_t)N * K; q++)
                Ws[q] = (int8_t)((int)Wq[q] - (bits <= 4 ? 8 : 128));
#endif
            for (int r = -1; r < repeat; r++) {
                /* a sample: a warm-up call, then BURST calls back to back
                 * (what a forward does), for each side in turn */
                double t0 = now();
                for (int b = 0; b <= BURST; b++) {
                    if (b == 1)
                        t0 = now();
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
                }
                const double t1 = now();
                double t2 = now();
                for (int b = 0; b <= BURST; b++) {
                    if (b == 1)
                        t2 = now();
                    sfq_igemm(isa, threads, Aq, kp, M, &p, &e);
                }
                const double t3 = now();
#ifdef SFQ_HAVE_DNNL
                double t4 = now();
                for (int b = 0; b <= BURST; b++) {
                    if (b == 1)
                        t4 = now();
                    dnnl_gemm_u8s8s32('N', 'T', 'F', M, N, K, 1.0f, Aq, kp, 0, Ws, K, 0, 0.0f, C32, N, &co);
                }
                if (r >= 0)
                    td[r] = (now() - t4) / BURST;
#endif
                if (r >= 0) {
                    ts[r] = (t1 - t0) / BURST;
                    ti[r] = (t3 - t2) / BURST;
                }
            }
            const double ms = median(ts, repeat), mi = median(ti, repeat), ops = 2.0 * M * N * K;
            sum_s[di] += ms;
            sum_i[di] += mi;
            ops_d[di] += ops;
            char name[32];
            snprintf(name, sizeof name, "%d: (%d, %d)", D, K, N);
            printf("  %-14s %10.3f %10.3f %12.1f %12.1f %8.2f", name, ms * 1e3, mi * 1e3, ops / ms * 1e-9,
                   ops / mi * 1e-9, ms / mi);
#ifdef SFQ_HAVE_DNNL
            const double md = median(td, repeat);
            sum_d[di] += md;
            printf(" %13.1f %10.2f", ops / md * 1e-9, md / mi);
            free(Ws), free(C32), free(td);
#endif
            printf("\n");
            sfq_ipack_free(&p);
            free(A), free(W), free(C), free(bias), free(Aq), free(Wq), free(asum), free(corr), free(zoff);
            free(scale), free(sw), free(ts), free(ti);
        }
    }
    printf("igemm_gops_D384=%.1f igemm_gops_D768=%.1f sgemm_gflops_D384=%.1f sgemm_gflops_D768=%.1f "
           "ratio_D384=%.2f ratio_D768=%.2f\n",
           ops_d[1] / sum_i[1] * 1e-9, ops_d[2] / sum_i[2] * 1e-9, ops_d[1] / sum_s[1] * 1e-9,
           ops_d[2] / sum_s[2] * 1e-9, sum_s[1] / sum_i[1], sum_s[2] / sum_i[2]);
    if (peak > 0)
        printf("vnni_peak_gops=%.1f igemm_over_peak_D384=%.2f igemm_over_peak_D768=%.2f\n", peak,
               ops_d[1] / sum_i[1] * 1e-9 / peak, ops_d[2] / sum_i[2] * 1e-9 / peak);
#ifdef SFQ_HAVE_DNNL
    printf("onednn_gops_D384=%.1f onednn_gops_D768=%.1f ours_over_onednn_D384=%.2f ours_over_onednn_D768=%.2f\n",
           ops_d[1] / sum_d[1] * 1e-9, ops_d[2] / sum_d[2] * 1e-9, sum_d[1] / sum_i[1], sum_d[2] / sum_i[2]);
#endif
    return 0;
}
