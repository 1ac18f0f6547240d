/* test_core.c - status strings, errors, rng, parallel loops, and the
 * element-wise math kernels against double-precision libm. */
#include "core.h"
#include "rng.h"
#include "testutil.h"
#include "threads.h"
#include "vmath.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(status_strings_and_version)
{
    ck_assert_str_eq(sardfq_status_string(SARDFQ_OK), "success");
    for (int s = SARDFQ_E_INTERNAL; s < 0; s++) {
        ck_assert_ptr_nonnull(sardfq_status_string(s));
        ck_assert_str_ne(sardfq_status_string(s), "unknown status");
    }
    ck_assert_str_eq(sardfq_status_string(-1000), "unknown status");
    ck_assert_str_eq(sardfq_version_string(), SARDFQ_VERSION_STRING);
    ck_assert_uint_eq(sardfq_version_number(), SARDFQ_VERSION_NUMBER);
    ck_assert_int_eq(sfq_fail(SARDFQ_E_IO, "disk %d on fire", 3), SARDFQ_E_IO);
    ck_assert_str_eq(sardfq_last_error(), "disk 3 on fire");
}
END_TEST

START_TEST(rng_reproducible)
{
    sfq_rng a, b;
    sfq_rng_seed(&a, 42);
    sfq_rng_seed(&b, 42);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        ck_assert_uint_eq(sfq_rng_next(&a), sfq_rng_next(&b));
        double z = sfq_rng_normal(&a);
        (void)sfq_rng_normal(&b);
        s += z;
        s2 += z * z;
    }
    ck_assert(fabs(s / 100000) < 0.02);
    ck_assert(fabs(s2 / 100000 - 1) < 0.02);
}
END_TEST

static void mark(void *ctx, int64_t b, int64_t e)
{
    int *v = ctx;
    for (int64_t i = b; i < e; i++)
        v[i] += 1;
}

START_TEST(parallel_for_covers_once)
{
    int v[1000];
    for (int t = 1; t <= 8; t++) {
        memset(v, 0, sizeof v);
        sfq_parallel_for(t, 1000, mark, v);
        for (int i = 0; i < 1000; i++)
            ck_assert_int_eq(v[i], 1);
    }
    sfq_parallel_for(4, 0, mark, v); /* nothing to do */
}
END_TEST

/* ulp distance of two floats */
static double ulps(float a, double ref)
{
    float r = (float)ref;
    if (r == a)
        return 0;
    float next = nextafterf(r, INFINITY);
    return fabs((double)a - ref) / fabs((double)next - (double)r);
}

START_TEST(expf_accuracy)
{
    double worst = 0;
    for (double x = -87.0; x <= 88.0; x += 0.00137) {
        double u = ulps(sfq_expf((float)x), exp((double)(float)x));
        if (u > worst)
            worst = u;
    }
    printf("sfq_expf: max error %.2f ulp on [-87, 88]\n", worst);
    ck_assert(worst <= 2.0);
    ck_assert(sfq_expf(-200.0f) == 0.0f);
    ck_assert(sfq_expf(0.0f) == 1.0f);
    /* NaN stays NaN and never reaches the float-to-int conversion
     * (found by tests/fuzz/fuzz_safetensors under clang's UBSan) */
    ck_assert(isnan(sfq_expf(NAN)));
    ck_assert(isnan(sfq_gauss_cdf(NAN)));
    ck_assert(sfq_expf(INFINITY) > 1e38f);
    ck_assert(sfq_expf(-INFINITY) == 0.0f);
}
END_TEST

START_TEST(gelu_accuracy)
{
    /* Phi against erfc in double; GELU and its derivative through the
     * array kernels. */
    double worst_cdf = 0, worst_gelu = 0, worst_d = 0;
    enum { N = 40001 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float)), *d = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) {
        x[i] = -10.0f + 20.0f * (float)i / (N - 1);
        d[i] = 1.0f;
    }
    sfq_gelu_fwd(x, y, N, 2);
    sfq_gelu_bwd(x, d, N, 2);
    for (int i = 0; i < N; i++) {
        double xd = x[i], cdf = 0.5 * erfc(-xd / sqrt(2.0));
        double rel = fabs(sfq_gauss_cdf(x[i]) - cdf) / cdf;
        if (rel > worst_cdf)
            worst_cdf = rel;
        double pdf = exp(-0.5 * xd * xd) / sqrt(2 * M_PI);
        double g = xd * cdf, dg = cdf + xd * pdf;
        /* GELU' = Phi + x phi crosses zero near x = -0.75, where the two
         * terms cancel: measure relative to their magnitudes */
        double eg = fabs(y[i] - g) / (fabs(g) + 1e-30), ed = fabs(d[i] - dg) / (cdf + fabs(xd) * pdf);
        if (fabs(g) > 1e-30 && eg > worst_gelu)
            worst_gelu = eg;
        if (ed > worst_d)
            worst_d = ed;
    }
    printf("Phi: max relative error %.2e; GELU %.2e; GELU' %.2e\n", worst_cdf, worst_gelu, worst_d);
    ck_assert(worst_cdf < 5e-7);
    ck_assert(worst_gelu < 5e-7);
    ck_assert(worst_d < 1e-6);
    free(x), free(y), free(d);
}
END_TEST

START_TEST(layernorm_and_softmax_backward_fd)
{
    /* finite differences of sum(g * f(x)) for LayerNorm and softmax */
    enum { D = 24 };
    float x[D], w[D], b[D], g[D], out[D], xhat[D], rstd[1], dx[D];
    for (int i = 0; i < D; i++) {
        x[i] = sinf(i * 1.3f) * 2 + 0.5f;
        w[i] = 1 + 0.3f * cosf(i * 0.7f);
        b[i] = 0.1f * i;
        g[i] = cosf(i * 2.1f);
    }
    memset(dx, 0, sizeof dx);
    sfq_layernorm_fwd(x, w, b, out, xhat, rstd, 1, D, 1e-6f, 1);
    sfq_layernorm_bwd(g, xhat, rstd, w, dx, 1, D, 1);
    for (int i = 0; i < D; i++) {
        float keep = x[i], h = 1e-3f;
        double lp = 0, lm = 0;
        x[i] = keep + h;
        sfq_layernorm_fwd(x, w, b, out, NULL, NULL, 1, D, 1e-6f, 1);
        for (int j = 0; j < D; j++)
            lp += (double)g[j] * out[j];
        x[i] = keep - h;
        sfq_layernorm_fwd(x, w, b, out, NULL, NULL, 1, D, 1e-6f, 1);
        for (int j = 0; j < D; j++)
            lm += (double)g[j] * out[j];
        x[i] = keep;
        ck_assert_msg(fabs((lp - lm) / (2 * h) - dx[i]) < 2e-3, "LN dx[%d]", i);
    }
    float p[D], dp[D];
    memcpy(p, x, sizeof p);
    sfq_softmax_fwd(p, 1, D, 1);
    memcpy(dp, g, sizeof dp);
    sfq_softmax_bwd(p, dp, 1, D, 1);
    for (int i = 0; i < D; i++) {
        float q[D];
        double lp = 0, lm = 0, h = 1e-3;
        memcpy(q, x, sizeof q);
        q[i] += (float)h;
        sfq_softmax_fwd(q, 1, D, 1);
        for (int j = 0; j < D; j++)
            lp += (double)g[j] * q[j];
        memcpy(q, x, sizeof q);
        q[i] -= (float)h;
        sfq_softmax_fwd(q, 1, D, 1);
        for (int j = 0; j < D; j++)
            lm += (double)g[j] * q[j];
        ck_assert_msg(fabs((lp - lm) / (2 * h) - dp[i]) < 1e-3, "softmax dp[%d]", i);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, status_strings_and_version);
    tcase_add_test(tc, rng_reproducible);
    tcase_add_test(tc, parallel_for_covers_once);
    tcase_add_test(tc, expf_accuracy);
    tcase_add_test(tc, gelu_accuracy);
    tcase_add_test(tc, layernorm_and_softmax_backward_fd);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
