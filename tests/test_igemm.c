/* test_igemm.c - the integer matrix products (kernels/igemm.h): every
 * instruction path this CPU has against a plain int64 reference, over
 * widths 2..8, odd shapes (rows not a multiple of 16, reduction not a
 * multiple of 4, tiles cut at every edge) and nonzero zero points; the
 * epilogue bitwise equal across paths and to fmaf of the exact sum. */
#include "core.h"
#include "igemm.h"
#include "rng.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int paths[3], npaths;

static void find_paths(void)
{
    npaths = 0;
    for (int isa = SFQ_ISA_C; isa <= SFQ_ISA_VNNI; isa++) {
        int got;
        if (sfq_isa_resolve(isa, &got) == SARDFQ_OK)
            paths[npaths++] = got;
    }
}

typedef struct {
    int M, N, K, bits;
    uint8_t *A, *W;
    int32_t *zw;
    int64_t lda;
} problem;

static void make(problem *pr, int M, int N, int K, int bits, uint64_t seed)
{
    sfq_rng r;
    sfq_rng_seed(&r, seed);
    pr->M = M, pr->N = N, pr->K = K, pr->bits = bits;
    pr->lda = (K + 3) / 4 * 4 + 8; /* a stride wider than the padding */
    pr->A = calloc((size_t)M * pr->lda, 1);
    pr->W = malloc((size_t)N * K);
    pr->zw = malloc(sizeof(int32_t) * (size_t)N);
    const int top = (1 << bits) - 1;
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) /* extremes included: 0 and 255 */
            pr->A[m * pr->lda + k] = (uint8_t)(m == 0 ? 255 : sfq_rng_next(&r) % 256);
    for (int n = 0; n < N; n++) {
        pr->zw[n] = (int32_t)(sfq_rng_next(&r) % (uint64_t)(top + 1));
        for (int k = 0; k < K; k++)
            pr->W[n * K + k] = (uint8_t)(n == 0 ? 0 : n == 1 ? top : (int)(sfq_rng_next(&r) % (uint64_t)(top + 1)));
    }
}

static void drop(problem *pr)
{
    free(pr->A);
    free(pr->W);
    free(pr->zw);
}

/* sum_k a (w - off), in int64 from the codes */
static int64_t ref_dot(const problem *pr, int m, int n, int off)
{
    int64_t s = 0;
    for (int k = 0; k < pr->K; k++)
        s += (int64_t)pr->A[m * pr->lda + k] * ((int64_t)pr->W[n * pr->K + k] - off);
    return s;
}

START_TEST(sums_match_reference_on_every_path)
{
    find_paths();
    ck_assert_int_ge(npaths, 1);
    static const int shapes[][3] = {{1, 1, 1}, {7, 17, 5}, {6, 32, 4}, {13, 33, 63}, {25, 48, 192}, {50, 10, 3}};
    for (int bits = 2; bits <= 8; bits++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            problem pr;
            make(&pr, shapes[s][0], shapes[s][1], shapes[s][2], bits, 100 + bits * 10 + s);
            sfq_ipack p;
            ck_assert_int_eq(sfq_ipack_new(pr.W, pr.K, pr.N, pr.K, bits, pr.zw, &p), SARDFQ_OK);
            ck_assert_int_eq(p.nibbles, bits <= 4);
            ck_assert_uint_eq(p.bytes, (size_t)p.np / 16 * (p.kp / 4) * (bits <= 4 ? 32 : 64));
            for (int n = 0; n < pr.N; n++) {
                int32_t ws = 0;
                for (int k = 0; k < pr.K; k++)
                    ws += pr.W[n * pr.K + k] - pr.zw[n];
                ck_assert_int_eq(p.wsum[n], ws);
            }
            int32_t *C = malloc(sizeof(int32_t) * (size_t)pr.M * pr.N);
            for (int i = 0; i < npaths; i++) {
                memset(C, 0x55, sizeof(int32_t) * (size_t)pr.M * pr.N);
                sfq_igemm_s32(paths[i], pr.A, pr.lda, pr.M, &p, C, pr.N);
                for (int m = 0; m < pr.M; m++)
                    for (int n = 0; n < pr.N; n++)
                        if (C[m * pr.N + n] != ref_dot(&pr, m, n, p.off))
                            ck_abort_msg("%s bits %d shape %zu: C[%d][%d] = %d, expected %lld",
                                         sfq_isa_name(paths[i]), bits, s, m, n, C[m * pr.N + n],
                                         (long long)ref_dot(&pr, m, n, p.off));
            }
            free(C);
            sfq_ipack_free(&p);
            drop(&pr);
        }
    }
}
END_TEST

START_TEST(epilogue_is_exact_sum_through_one_fma_on_every_path)
{
    find_paths();
    const int M = 31, N = 45, K = 130;
    for (int bits = 3; bits <= 8; bits += 5) {
        problem pr;
        make(&pr, M, N, K, bits, 7 + bits);
        sfq_ipack p;
        ck_assert_int_eq(sfq_ipack_new(pr.W, pr.K, N, K, bits, pr.zw, &p), SARDFQ_OK);
        const int32_t za = 117;
        const float sa = 0.0173f;
        float sw[64], bias[64], scale[64];
        int32_t corr[64], zoff[64], asum[64];
        for (int n = 0; n < N; n++) {
            sw[n] = 0.001f * (float)(n + 3);
            bias[n] = 0.25f * (float)(n % 7) - 0.5f;
        }
        sfq_iepi_vectors(&p, sa, za, sw, 1, scale, corr, zoff);
        for (int m = 0; m < M; m++) {
            asum[m] = 0;
            for (int k = 0; k < K; k++)
                asum[m] += pr.A[m * pr.lda + k];
        }
        float *out = malloc(sizeof(float) * M * N), *first = malloc(sizeof(float) * M * N);
        for (int acc = 0; acc < 2; acc++) {
            for (int i = 0; i < npaths; i++) {
                for (int e = 0; e < M * N; e++)
                    out[e] = acc ? 1.5f : NAN;
                sfq_iepi ep = {scale, bias, corr, zoff, asum, out, N, acc};
                sfq_igemm(paths[i], 2, pr.A, pr.lda, M, &p, &ep);
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        /* the exact sum of (a - za)(w - zw), then one fma */
                        int64_t s = 0;
                        for (int k = 0; k < K; k++)
                            s += ((int64_t)pr.A[m * pr.lda + k] - za) * ((int64_t)pr.W[n * K + k] - pr.zw[n]);
                        const float y = fmaf((float)s, sa * sw[n], bias[n]);
                        const float want = acc ? 1.5f + y : y;
                        ck_assert_msg(memcmp(&out[m * N + n], &want, sizeof want) == 0,
                                      "%s: out[%d][%d] = %.9g, expected %.9g", sfq_isa_name(paths[i]), m, n,
                                      out[m * N + n], want);
                    }
                if (i == 0)
                    memcpy(first, out, sizeof(float) * M * N);
                else
                    ck_assert(memcmp(first, out, sizeof(float) * M * N) == 0);
            }
        }
        free(out);
        free(first);
        sfq_ipack_free(&p);
        drop(&pr);
    }
}
END_TEST

START_TEST(isa_requests)
{
    int isa = -1;
    ck_assert_int_eq(sfq_isa_resolve(SFQ_ISA_C, &isa), SARDFQ_OK);
    ck_assert_int_eq(isa, SFQ_ISA_C);
    ck_assert_int_eq(sfq_isa_resolve(42, &isa), SARDFQ_E_INVALID_ARG);
    setenv("SARDFQ_ISA", "avx9000", 1);
    ck_assert_int_eq(sfq_isa_resolve(SFQ_ISA_AUTO, &isa), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "SARDFQ_ISA"));
    setenv("SARDFQ_ISA", "c", 1);
    ck_assert_int_eq(sfq_isa_resolve(SFQ_ISA_AUTO, &isa), SARDFQ_OK);
    ck_assert_int_eq(isa, SFQ_ISA_C);
    unsetenv("SARDFQ_ISA");
    ck_assert_int_eq(sfq_isa_resolve(SFQ_ISA_AUTO, &isa), SARDFQ_OK);
    ck_assert_int_eq(isa, sfq_isa_best());
}
END_TEST

int main(void)
{
    Suite *s = suite_create("igemm");
    TCase *tc = tcase_create("igemm");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, sums_match_reference_on_every_path);
    tcase_add_test(tc, epilogue_is_exact_sum_through_one_fma_on_every_path);
    tcase_add_test(tc, isa_requests);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
