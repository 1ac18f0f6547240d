/* test_synth.c - the generator through the public API on small fixture
 * models: reproducibility, the losses going down, cancellation and resume,
 * argument checking; and the jitter's adjoint. The losses themselves are
 * checked against PyTorch in test_losses.c. */
#include "sardfq.h"
#include "losses.h"
#include "rng.h"
#include "synth.h"
#include "vit.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sardfq_model *fixture_model(void)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.num_heads = 3;
    p.n_threads = 1;
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_load(tu_data("vit_p4_gray_nometa.model.safetensors"), &p, &m), SARDFQ_OK);
    return m;
}

static sardfq_generator_params small_params(int method)
{
    sardfq_generator_params p;
    sardfq_generator_default_params(&p);
    p.method = method;
    p.n_images = 6;
    p.iters = 40;
    p.warmup = 4;
    p.micro_batch = 5; /* forces several micro-batches per step */
    p.seed = 3;
    return p;
}

static float *images_of(sardfq_generator *g, size_t n)
{
    float *x = malloc(sizeof(float) * n);
    ck_assert_int_eq(sardfq_generator_get_images(g, x, n), SARDFQ_OK);
    return x;
}

START_TEST(same_seed_same_images)
{
    sardfq_model *m = fixture_model();
    const size_t n = (size_t)6 * 28 * 28;
    float *x[2];
    for (int k = 0; k < 2; k++) {
        sardfq_generator_params p = small_params(SARDFQ_SYNTH_SARDFQ);
        p.iters = 5;
        sardfq_generator *g = NULL;
        ck_assert_int_eq(sardfq_generator_create(m, &p, &g), SARDFQ_OK);
        ck_assert_int_eq(sardfq_generator_run(g, NULL), SARDFQ_OK);
        x[k] = images_of(g, n);
        sardfq_generator_free(g);
    }
    ck_assert_int_eq(memcmp(x[0], x[1], n * sizeof(float)), 0);
    /* another seed gives other images */
    sardfq_generator_params p = small_params(SARDFQ_SYNTH_SARDFQ);
    p.iters = 5;
    p.seed = 4;
    sardfq_generator *g = NULL;
    ck_assert_int_eq(sardfq_generator_create(m, &p, &g), SARDFQ_OK);
    ck_assert_int_eq(sardfq_generator_run(g, NULL), SARDFQ_OK);
    float *y = images_of(g, n);
    ck_assert_int_ne(memcmp(x[0], y, n * sizeof(float)), 0);
    sardfq_generator_free(g);
    free(x[0]), free(x[1]), free(y);
    sardfq_model_free(m);
}
END_TEST

/* Mean of a report field over the first and the last k steps. */
static void run_and_compare(int method, int apa, int msr, int sl, float alpha)
{
    sardfq_model *m = fixture_model();
    sardfq_generator_params p = small_params(method);
    p.use_apa = apa, p.use_msr = msr, p.use_sl = sl, p.apa_weight = alpha;
    p.iters = 60;
    p.rounds = 1;
    sardfq_generator *g = NULL;
    ck_assert_int_eq(sardfq_generator_create(m, &p, &g), SARDFQ_OK);
    sardfq_synth_report r;
    r.struct_size = sizeof r;
    double first_ce = 0, last_ce = 0, first_apa = 0, last_apa = 0, first_pse = 0, last_pse = 0;
    for (int s = 0; s < 60; s++) {
        ck_assert_int_eq(sardfq_generator_step(g, &r), SARDFQ_OK);
        ck_assert_int_eq(r.step, s + 1);
        ck_assert(isfinite(r.loss));
        ck_assert(r.model_seconds <= r.seconds);
        if (s < 5)
            first_ce += r.ce, first_apa += r.apa, first_pse += r.pse;
        if (s >= 55)
            last_ce += r.ce, last_apa += r.apa, last_pse += r.pse;
    }
    printf("method %d apa %d msr %d sl %d: ce %.4f -> %.4f, apa %.3g -> %.3g, pse %.4f -> %.4f\n", method,
           apa, msr, sl, first_ce / 5, last_ce / 5, first_apa / 5, last_apa / 5, first_pse / 5, last_pse / 5);
    ck_assert(last_ce < first_ce);
    if (method == SARDFQ_SYNTH_SARDFQ && apa)
        ck_assert(last_apa < first_apa);
    if (method == SARDFQ_SYNTH_PSAQ) /* its gradient: pse_through_the_model */
        ck_assert(first_pse != 0 && isfinite(last_pse));
    ck_assert_int_eq(sardfq_generator_step(g, &r), SARDFQ_E_STATE);
    /* images stay inside the normalised image of [0, 1] (mean = std = 0.5) */
    float *x = images_of(g, (size_t)6 * 28 * 28);
    for (size_t i = 0; i < (size_t)6 * 28 * 28; i++)
        ck_assert(x[i] >= -1.0f && x[i] <= 1.0f);
    free(x);
    sardfq_generator_free(g);
    sardfq_model_free(m);
}

START_TEST(sardfq_losses_go_down) { run_and_compare(SARDFQ_SYNTH_SARDFQ, 1, 1, 1, 1000.0f); }
END_TEST
START_TEST(sardfq_apa_only_goes_down) { run_and_compare(SARDFQ_SYNTH_SARDFQ, 1, 0, 0, 1000.0f); }
END_TEST
START_TEST(psaq_losses_go_down) { run_and_compare(SARDFQ_SYNTH_PSAQ, 0, 0, 0, 0.0f); }
END_TEST

START_TEST(noise_has_no_steps_and_targets_are_distributions)
{
    sardfq_model *m = fixture_model();
    sardfq_generator_params p = small_params(SARDFQ_SYNTH_NOISE);
    p.n_images = 200;
    sardfq_generator *g = NULL;
    ck_assert_int_eq(sardfq_generator_create(m, &p, &g), SARDFQ_OK);
    ck_assert_int_eq(sardfq_generator_step(g, NULL), SARDFQ_E_STATE);
    ck_assert_int_eq(sardfq_generator_run(g, NULL), SARDFQ_OK);
    const size_t n = (size_t)200 * 28 * 28;
    float *x = images_of(g, n);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i], s2 += (double)x[i] * x[i];
    ck_assert(fabs(s / n) < 0.01 && fabs(s2 / n - 1) < 0.02);
    float t[200 * 10];
    ck_assert_int_eq(sardfq_generator_get_targets(g, t, 200 * 10 - 1), SARDFQ_E_SHAPE);
    ck_assert_int_eq(sardfq_generator_get_targets(g, t, 200 * 10), SARDFQ_OK);
    int count[10] = {0};
    for (int i = 0; i < 200; i++) {
        double sum = 0;
        int arg = 0;
        for (int k = 0; k < 10; k++) {
            sum += t[i * 10 + k];
            if (t[i * 10 + k] > t[i * 10 + arg])
                arg = k;
        }
        ck_assert(fabs(sum - 1) < 1e-5);
        count[arg]++;
    }
    for (int k = 0; k < 10; k++) /* primary classes cycle through all classes */
        ck_assert_int_eq(count[k], 20);
    free(x);
    sardfq_generator_free(g);
    sardfq_model_free(m);
}
END_TEST

static int cancel_at_3(void *ud, int64_t done, int64_t total, const char *stage)
{
    (void)ud;
    ck_assert_str_eq(stage, "synth");
    ck_assert_int_eq(total, 8);
    return done == 3;
}

START_TEST(cancel_and_resume_equals_one_run)
{
    sardfq_model *m = fixture_model();
    sardfq_generator_params p = small_params(SARDFQ_SYNTH_SARDFQ);
    p.iters = 8;
    sardfq_generator *a = NULL, *b = NULL;
    ck_assert_int_eq(sardfq_generator_create(m, &p, &a), SARDFQ_OK);
    ck_assert_int_eq(sardfq_generator_run(a, NULL), SARDFQ_OK);
    p.progress = cancel_at_3;
    ck_assert_int_eq(sardfq_generator_create(m, &p, &b), SARDFQ_OK);
    ck_assert_int_eq(sardfq_generator_run(b, NULL), SARDFQ_E_CANCELLED);
    sardfq_synth_report r;
    r.struct_size = sizeof r;
    ck_assert_int_eq(sardfq_generator_step(b, &r), SARDFQ_OK);
    ck_assert_int_eq(r.step, 4);
    ck_assert_int_eq(sardfq_generator_run(b, &r), SARDFQ_OK); /* callback says go on after 3 */
    ck_assert_int_eq(r.step, 8);
    const size_t n = (size_t)6 * 28 * 28;
    float *x = images_of(a, n), *y = images_of(b, n);
    ck_assert_int_eq(memcmp(x, y, n * sizeof(float)), 0);
    free(x), free(y);
    sardfq_generator_free(a);
    sardfq_generator_free(b);
    sardfq_model_free(m);
}
END_TEST

START_TEST(host_priors_and_misuse)
{
    sardfq_model *m = fixture_model();
    sardfq_generator_params p = small_params(SARDFQ_SYNTH_SARDFQ);
    sardfq_generator *g = NULL;
    ck_assert_int_eq(sardfq_generator_create(NULL, &p, &g), SARDFQ_E_INVALID_ARG);
    p.method = 7;
    ck_assert_int_eq(sardfq_generator_create(m, &p, &g), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "method"));
    p = small_params(SARDFQ_SYNTH_SARDFQ);
    p.msr_regions = 5;
    ck_assert_int_eq(sardfq_generator_create(m, &p, &g), SARDFQ_E_INVALID_ARG);
    p = small_params(SARDFQ_SYNTH_SARDFQ);
    p.beta2 = 1.0f;
    ck_assert_int_eq(sardfq_generator_create(m, &p, &g), SARDFQ_E_INVALID_ARG);
    p = small_params(SARDFQ_SYNTH_SARDFQ);
    p.struct_size = 8;
    ck_assert_int_eq(sardfq_generator_create(m, &p, &g), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_null(g);
    p = small_params(SARDFQ_SYNTH_SARDFQ);
    ck_assert_int_eq(sardfq_generator_create(m, &p, &g), SARDFQ_OK);
    /* 6 images x 2 blocks x 3 heads x 49 patches */
    const size_t count = (size_t)6 * 2 * 3 * 49;
    float *pr = malloc(sizeof(float) * count);
    for (size_t i = 0; i < count; i++)
        pr[i] = 1.0f / 49;
    ck_assert_int_eq(sardfq_generator_set_priors(g, pr, count - 1), SARDFQ_E_SHAPE);
    pr[5] = NAN;
    ck_assert_int_eq(sardfq_generator_set_priors(g, pr, count), SARDFQ_E_INVALID_ARG);
    pr[5] = 1.0f / 49;
    ck_assert_int_eq(sardfq_generator_set_priors(g, pr, count), SARDFQ_OK);
    sardfq_synth_report r;
    r.struct_size = 4;
    ck_assert_int_eq(sardfq_generator_step(g, &r), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_generator_step(g, NULL), SARDFQ_OK);
    ck_assert_int_eq(sardfq_generator_get_images(g, NULL, 10), SARDFQ_E_INVALID_ARG);
    free(pr);
    sardfq_generator_free(g);
    sardfq_generator_free(NULL);
    sardfq_model_free(m);
}
END_TEST

START_TEST(jitter_adjoint_identity)
{
    /* <J x, y> = <x, J^T y> for every roll/flip on a non-square grid */
    enum { H = 5, W = 7 };
    float x[H * W], y[H * W], jx[H * W], jty[H * W];
    sfq_rng r;
    sfq_rng_seed(&r, 1);
    for (int i = 0; i < H * W; i++)
        x[i] = (float)sfq_rng_normal(&r), y[i] = (float)sfq_rng_normal(&r);
    for (int dy = -6; dy <= 6; dy += 3)
        for (int dx = -8; dx <= 8; dx += 4)
            for (int flip = 0; flip < 2; flip++) {
                sfq_jitter(x, jx, H, W, dy, dx, flip);
                memset(jty, 0, sizeof jty);
                sfq_jitter_adjoint(y, jty, H, W, dy, dx, flip);
                double a = 0, b = 0;
                for (int i = 0; i < H * W; i++)
                    a += (double)jx[i] * y[i], b += (double)x[i] * jty[i];
                ck_assert(fabs(a - b) < 1e-9 * (1 + fabs(a)));
            }
    /* torch.roll semantics: out[y][x] = in[y - dy][x - dx] */
    sfq_jitter(x, jx, H, W, 1, 2, 0);
    ck_assert(jx[1 * W + 2] == x[0]);
}
END_TEST


/* The PSAQ-ViT loss summed over blocks, through the model: a step of
 * length eps against the gradient lowers it by eps |grad| to first order. */
static double pse_total(sardfq_model *m, sardfq_state *s, const float *x, int n, float *dao, float *grad)
{
    const sardfq_model_info *I = &m->info;
    uint32_t flags = SFQ_FORWARD_KEEP_AO | (grad ? SARDFQ_FORWARD_BACKWARD : 0);
    ck_assert_int_eq(sfq_forward_state(m, s, x, n, flags, NULL), SARDFQ_OK);
    const size_t blk = (size_t)n * I->num_tokens * I->embed_dim;
    double L = 0;
    for (int l = 0; l < I->depth; l++)
        L += sfq_loss_pse(sfq_state_attn_output(s, l), n, I->num_tokens, I->num_heads, I->head_dim,
                          I->num_prefix_tokens, dao + l * blk);
    if (grad)
        ck_assert_int_eq(sfq_backward_state(m, s, NULL, NULL, dao, grad), SARDFQ_OK);
    return L;
}

START_TEST(pse_through_the_model)
{
    sardfq_model *m = fixture_model();
    const int n = 6;
    const size_t N = (size_t)n * 28 * 28;
    float *x = malloc(sizeof(float) * N), *g = malloc(sizeof(float) * N), *x2 = malloc(sizeof(float) * N);
    float *dao = malloc(sizeof(float) * 2 * n * 50 * 48);
    for (size_t i = 0; i < N; i++)
        x[i] = sinf((float)i * 0.37f) * 0.8f;
    sardfq_state *s = NULL;
    ck_assert_int_eq(sardfq_state_create(m, &s), SARDFQ_OK);
    double L0 = pse_total(m, s, x, n, dao, g), gn = 0;
    for (size_t i = 0; i < N; i++)
        gn += (double)g[i] * g[i];
    gn = sqrt(gn);
    ck_assert(gn > 0);
    const double eps = 1e-3;
    for (size_t i = 0; i < N; i++)
        x2[i] = x[i] - (float)(eps * g[i] / gn);
    double L1 = pse_total(m, s, x2, n, dao, NULL);
    printf("PSE through the model: dL %.4g, predicted %.4g\n", L1 - L0, -eps * gn);
    ck_assert(fabs((L1 - L0) / (-eps * gn) - 1) < 0.05);
    sardfq_state_free(s);
    free(x), free(g), free(x2), free(dao);
    sardfq_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("generator");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, same_seed_same_images);
    tcase_add_test(tc, sardfq_losses_go_down);
    tcase_add_test(tc, sardfq_apa_only_goes_down);
    tcase_add_test(tc, psaq_losses_go_down);
    tcase_add_test(tc, noise_has_no_steps_and_targets_are_distributions);
    tcase_add_test(tc, cancel_and_resume_equals_one_run);
    tcase_add_test(tc, host_priors_and_misuse);
    tcase_add_test(tc, jitter_adjoint_identity);
    tcase_add_test(tc, pse_through_the_model);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
