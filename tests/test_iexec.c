/* test_iexec.c - the integer executor (model/iplan.c, kernels/igemm.c and
 * the integer ops of exec/fp32.c, attention.c) on quantized models.
 *
 *  - Against the fake-quantized float executor (SARDFQ_EXECUTOR_FAKE, 0.3's
 *    arithmetic): the default ViT and the Fashion-MNIST Swin, RepQ-ViT at
 *    W8A8, W4A4, W3A3 and min/max at W8A8, W4A8, on 64 images: every
 *    integer linear and head against the float product of the same input
 *    (sfq_exec_check_int) within about 10x the measured float rounding,
 *    arg-max agreement of the whole forward, and the ops the report says
 *    run on integers.
 *  - The three instruction paths (SARDFQ_ISA=c, avx2, vnni where the CPU
 *    has them) give bitwise the same logits.
 *  - An input quantizer without integer codes (a fractional zero point, as
 *    0.4's RepQ-ViT files have) makes that linear run in float, reported.
 *  - A final model holds its integer linears' weights only as codes, and
 *    the FAKE executor computing with them gives bitwise what it gave with
 *    resident float copies.
 *  - Bad executor settings are refused. */
#include "core.h"
#include "exec.h"
#include "iplan.h"
#include "names.h"
#include "qspec.h"
#include "safetensors.h"
#include "testutil.h"
#include "vit.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_EVAL 64
#define N_CALIB 32

static sardfq_model *load(const char *rel, int executor)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.n_threads = 2;
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_load(tu_src(rel), &p, &m), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_set_executor(m, executor), SARDFQ_OK);
    return m;
}

/* Fashion-MNIST-like inputs: normalised noise images, fixed seed. */
static float *images(const sardfq_model_info *I, int n, uint64_t seed)
{
    const size_t per = (size_t)I->in_chans * I->img_h * I->img_w;
    float *x = malloc(sizeof(float) * per * n);
    uint64_t s = seed;
    for (size_t i = 0; i < per * n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const float u = (float)(s >> 40) / 16777216.0f;
        x[i] = ((i / 97) % 3 ? u : 0.0f) * 2.8f - 0.81f; /* in the normalised range of [0, 1] */
    }
    return x;
}

static sardfq_model *quantize(const sardfq_model *fp, int scheme, int w, int a)
{
    sardfq_model_info I = tu_info(fp);
    float *calib = images(&I, N_CALIB, 7);
    sardfq_quant_params qp;
    sardfq_quant_default_params(&qp);
    qp.scheme = scheme;
    qp.weight_bits = w;
    qp.act_bits = a;
    sardfq_quantizer *q = NULL;
    sardfq_model *out = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(fp, &qp, &q), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, calib, N_CALIB), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &out), SARDFQ_OK);
    sardfq_quantizer_free(q);
    free(calib);
    return out;
}

static int argmax(const float *x, int k)
{
    int b = 0;
    for (int i = 1; i < k; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

/* The FAKE executor's logits for the same quantized model. */
static void fake_logits(sardfq_model *q, const float *x, int n, float *out)
{
    ck_assert_int_eq(sardfq_model_set_executor(q, SARDFQ_EXECUTOR_FAKE), SARDFQ_OK);
    ck_assert_int_eq(tu_info(q).executor, SARDFQ_EXECUTOR_FAKE);
    ck_assert_int_eq(sardfq_model_forward(q, x, n, out), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_set_executor(q, SARDFQ_EXECUTOR_AUTO), SARDFQ_OK);
}

/* Max |int - fake| over max |fake| and the arg-max agreement. */
static void int_vs_fake(const char *model, int scheme, int w, int a, double max_rel, int min_agree,
                        int want_float_ops)
{
    sardfq_model *fp = load(model, SARDFQ_EXECUTOR_AUTO);
    sardfq_model *q = quantize(fp, scheme, w, a);
    sardfq_model_info I = tu_info(q);
    ck_assert_int_eq(I.quantized, 1);
    ck_assert_int_eq(I.quant_scheme, scheme);
    ck_assert_int_eq(I.weight_bits, w);
    ck_assert_int_eq(I.act_bits, a);
    ck_assert_int_eq(I.executor, SARDFQ_EXECUTOR_AUTO);
    ck_assert_ptr_nonnull(sardfq_model_executor_report(q));
    ck_assert_int_eq(I.float_ops, want_float_ops);
    ck_assert_int_gt(I.int_ops, 0);
    ck_assert_int_lt(I.weight_bytes, tu_info(fp).weight_bytes);
    const int K = I.num_classes;
    float *x = images(&I, N_EVAL, 11);
    float *li = malloc(sizeof(float) * N_EVAL * K), *lf = malloc(sizeof(float) * N_EVAL * K);
    ck_assert_int_eq(sardfq_model_forward(q, x, N_EVAL, li), SARDFQ_OK);
    fake_logits(q, x, N_EVAL, lf);
    double diff = 0, mag = 0;
    int agree = 0;
    for (int i = 0; i < N_EVAL * K; i++) {
        ck_assert(isfinite(li[i]));
        diff = fmax(diff, fabs((double)li[i] - lf[i]));
        mag = fmax(mag, fabs((double)lf[i]));
    }
    for (int b = 0; b < N_EVAL; b++)
        agree += argmax(li + b * K, K) == argmax(lf + b * K, K);
    double step_rel = -1;
    int steps = 0;
    ck_assert_int_eq(sfq_exec_check_int(q, x, N_EVAL, &step_rel, &steps), SARDFQ_OK);
    printf("iexec %s %s W%dA%d: max |int - fake| = %.3g (%.3g of max |logit| %.3g), arg-max %d/%d, "
           "%d int ops, %d float ops; per step on the same input: %.3g over %d steps\n",
           model, scheme == SARDFQ_SCHEME_REPQ ? "repq" : "minmax", w, a, diff, diff / mag, mag, agree, N_EVAL,
           I.int_ops, I.float_ops, step_rel, steps);
    /* the same input through both: float rounding only (measured at most
     * 6.2e-7 of the step's largest output); end to end, codes that sit on a
     * rounding boundary may flip between the two (an exact integer sum
     * against a float accumulation), so only the decisions are held. */
    ck_assert_msg(step_rel <= max_rel, "a step differs by %.3g of its largest output (bound %.3g)", step_rel,
                  max_rel);
    ck_assert_int_eq(steps, I.int_ops - (scheme == SARDFQ_SCHEME_REPQ ? tu_info(fp).depth : 0));
    ck_assert_int_ge(agree, min_agree);
    free(x), free(li), free(lf);
    sardfq_model_free(q);
    sardfq_model_free(fp);
}

#define VIT "examples/models/fmnist_vit.safetensors"
#define SWIN "examples/models/fmnist_swin.safetensors"

/* ViT, RepQ: everything but the 4 probs x v products on integers. Swin,
 * RepQ: its 6 blocks' probs x v in float. min/max: q and k are not quantized
 * (PSAQ-ViT quantizes qkv's output), so both attention products stay float. */
START_TEST(vit_repq_w8a8) { int_vs_fake(VIT, SARDFQ_SCHEME_REPQ, 8, 8, 6e-6, 62, 4); }
END_TEST
START_TEST(vit_repq_w4a4) { int_vs_fake(VIT, SARDFQ_SCHEME_REPQ, 4, 4, 6e-6, 62, 4); }
END_TEST
START_TEST(vit_repq_w3a3) { int_vs_fake(VIT, SARDFQ_SCHEME_REPQ, 3, 3, 6e-6, 62, 4); }
END_TEST
START_TEST(vit_minmax_w8a8) { int_vs_fake(VIT, SARDFQ_SCHEME_MINMAX, 8, 8, 6e-6, 62, 8); }
END_TEST
START_TEST(vit_minmax_w4a8) { int_vs_fake(VIT, SARDFQ_SCHEME_MINMAX, 4, 8, 6e-6, 62, 8); }
END_TEST
START_TEST(swin_repq_w8a8) { int_vs_fake(SWIN, SARDFQ_SCHEME_REPQ, 8, 8, 6e-6, 62, 6); }
END_TEST
START_TEST(swin_repq_w4a4) { int_vs_fake(SWIN, SARDFQ_SCHEME_REPQ, 4, 4, 6e-6, 62, 6); }
END_TEST
START_TEST(swin_repq_w3a3) { int_vs_fake(SWIN, SARDFQ_SCHEME_REPQ, 3, 3, 6e-6, 62, 6); }
END_TEST
START_TEST(swin_minmax_w8a8) { int_vs_fake(SWIN, SARDFQ_SCHEME_MINMAX, 8, 8, 6e-6, 62, 12); }
END_TEST

/* Against an independent reference of the integer arithmetic
 * (tests/reference/make_int_fixtures.py: int64 products of the codes,
 * float32 epilogues in one rounding, the float ops in PyTorch) on tiny ViT
 * and Swin models quantized at W8A8, W4A4, W3A3, 16 images each. Measured:
 * 95 of the 96 images give bitwise PyTorch's logits; one Swin W8A8 image
 * differs by 0.7 % of max |logit|, a code on a quantizer's rounding
 * boundary that C's and PyTorch's float ops (not the pooling mean, not
 * P v: both checked in float64) round to different sides. Held: at least
 * 15 of 16 images within 1e-6 of max |logit| per file, and every logit
 * within 5 % (one such flip). */
static void against_reference(const char *tag)
{
    char path[128];
    snprintf(path, sizeof path, "tests/data/%s.q.safetensors", tag);
    sardfq_model *m = load(path, SARDFQ_EXECUTOR_AUTO);
    sardfq_model_info I = tu_info(m);
    ck_assert_int_gt(I.int_ops, 0);
    tu_fixture f;
    tu_fixture_open(&f, "int_exec.golden.safetensors");
    char name[128];
    size_t ni, nl;
    snprintf(name, sizeof name, "%s.images", tag);
    float *x = tu_fixture_get(&f, name, &ni);
    snprintf(name, sizeof name, "%s.logits", tag);
    float *want = tu_fixture_get(&f, name, &nl);
    const int K = I.num_classes, n = (int)(nl / K);
    float *got = malloc(sizeof(float) * nl);
    ck_assert_int_eq(sardfq_model_forward(m, x, n, got), SARDFQ_OK);
    double mag = 0, worst = 0;
    for (size_t i = 0; i < nl; i++)
        mag = fmax(mag, fabs((double)want[i]));
    int exact = 0;
    for (int b = 0; b < n; b++) {
        double d = 0;
        for (int j = 0; j < K; j++)
            d = fmax(d, fabs((double)got[b * K + j] - want[b * K + j]));
        exact += d <= 1e-6 * mag;
        worst = fmax(worst, d);
    }
    printf("iexec %s vs PyTorch integer reference: %d/%d images within 1e-6, worst %.3g of max |logit| %.3g\n",
           tag, exact, n, worst / mag, mag);
    ck_assert_int_ge(exact, n - 1);
    ck_assert_msg(worst <= 0.05 * mag, "%s: %.3g of max |logit|", tag, worst / mag);
    free(x), free(want), free(got);
    tu_fixture_close(&f);
    sardfq_model_free(m);
}

START_TEST(reference_vit)
{
    against_reference("int_vit_w8a8");
    against_reference("int_vit_w4a4");
    against_reference("int_vit_w3a3");
}
END_TEST

START_TEST(reference_swin)
{
    against_reference("int_swin_w8a8");
    against_reference("int_swin_w4a4");
    against_reference("int_swin_w3a3");
}
END_TEST

/* Save once, load under each instruction path: bitwise equal logits. */
static void paths_identical(const char *model, int w, int a)
{
    sardfq_model *fp = load(model, SARDFQ_EXECUTOR_AUTO);
    sardfq_model *q = quantize(fp, SARDFQ_SCHEME_REPQ, w, a);
    char *dir = tu_make_tmpdir("sfq_iexec"), path[512];
    snprintf(path, sizeof path, "%s", tu_join(dir, "q.safetensors"));
    ck_assert_int_eq(sardfq_model_save(q, path), SARDFQ_OK);
    sardfq_model_info I = tu_info(q);
    const int K = I.num_classes;
    float *x = images(&I, 16, 5), *first = malloc(sizeof(float) * 16 * K), *l = malloc(sizeof(float) * 16 * K);
    static const char *isas[] = {"c", "avx2", "vnni"};
    int ran = 0;
    for (int k = 0; k < 3; k++) {
        setenv("SARDFQ_ISA", isas[k], 1);
        sardfq_model_params p;
        sardfq_model_default_params(&p);
        sardfq_model *m = NULL;
        const sardfq_status s = sardfq_model_load(path, &p, &m);
        if (s == SARDFQ_E_UNSUPPORTED) /* this CPU lacks the path */
            continue;
        ck_assert_int_eq(s, SARDFQ_OK);
        ck_assert_int_eq(((sfq_iplan *)m->ip)->isa, SFQ_ISA_C + k);
        ck_assert_int_eq(sardfq_model_forward(m, x, 16, ran ? l : first), SARDFQ_OK);
        if (ran)
            ck_assert_msg(memcmp(first, l, sizeof(float) * 16 * K) == 0, "%s differs from c", isas[k]);
        ran++;
        sardfq_model_free(m);
    }
    unsetenv("SARDFQ_ISA");
    ck_assert_int_ge(ran, 1);
    tu_rm_rf(dir);
    free(x), free(first), free(l);
    sardfq_model_free(q);
    sardfq_model_free(fp);
}

START_TEST(isa_paths_identical_vit) { paths_identical(VIT, 4, 4); }
END_TEST
START_TEST(isa_paths_identical_swin) { paths_identical(SWIN, 8, 8); }
END_TEST

START_TEST(fractional_zero_runs_float_and_says_so)
{
    sardfq_model *fp = load(VIT, SARDFQ_EXECUTOR_AUTO);
    sardfq_model *q = quantize(fp, SARDFQ_SCHEME_REPQ, 4, 4);
    const int before = tu_info(q).float_ops;
    /* a 0.4-style folded quantizer: zero point the fractional mean */
    const int pt = sfq_qpoint_index(1, SFQ_AP_FC1_IN);
    ck_assert_int_eq(q->q->acts[pt].kind, SFQ_QK_UNIFORM);
    q->q->acts[pt].u.zero += 0.25f;
    /* a final model is made once (it holds its integer linears' weights
     * only as codes): make the new integer form on a copy */
    ck_assert_int_eq(sfq_model_prepare_int(q), SARDFQ_E_INTERNAL);
    sardfq_model *final = q;
    ck_assert_int_eq(sfq_model_clone(final, &q), SARDFQ_OK);
    sardfq_model_free(final);
    ck_assert_int_eq(sfq_model_prepare_int(q), SARDFQ_OK);
    ck_assert_int_eq(tu_info(q).float_ops, before + 1);
    const char *rep = sardfq_model_executor_report(q);
    const char *line = strstr(rep, "blocks.1.mlp.fc1 ");
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_nonnull(strstr(line, "float fake-quantized float: its input zero point is fractional"));
    ck_assert_ptr_nonnull(strstr(rep, "blocks.0.mlp.fc1                     int"));
    /* and the forward still agrees with the fake executor */
    sardfq_model_info I = tu_info(q);
    float *x = images(&I, 8, 3), *li = malloc(sizeof(float) * 8 * 10), *lf = malloc(sizeof(float) * 8 * 10);
    ck_assert_int_eq(sardfq_model_forward(q, x, 8, li), SARDFQ_OK);
    fake_logits(q, x, 8, lf);
    for (int i = 0; i < 80; i++)
        ck_assert_float_eq_tol(li[i], lf[i], 1e-3);
    free(x), free(li), free(lf);
    sardfq_model_free(q);
    sardfq_model_free(fp);
}
END_TEST

/* A final quantized model holds the weights of its integer linears only as
 * codes: no float copy stays resident (n_held), each weight reads back
 * (sfq_qlin_weight_read) as the file's codes dequantized here, on their
 * own ((code - zero) * scale from the file's bytes), and the FAKE executor,
 * which computes with them, gives bitwise the logits and read-backs of a
 * copy that holds every weight as floats (a clone: not final, so it runs
 * the float path with its resident weights, as 0.5 did). q was saved at
 * path (or loaded from it). */
static void held_as_codes(sardfq_model *q, const char *path)
{
    const sardfq_model_info *cfg = &q->info;
    const sfq_iplan *ip = q->ip;
    ck_assert_ptr_nonnull(ip);
    ck_assert_int_gt(ip->int_weights, 0);
    ck_assert_uint_eq(q->n_held, q->n_params - ip->int_weights);
    size_t len;
    uint8_t *buf = tu_read_file(path, &len);
    sfq_st_file st;
    ck_assert_int_eq(sfq_st_parse(buf, len, &st), SARDFQ_OK);
    sardfq_model *c = NULL;
    ck_assert_int_eq(sfq_model_clone(q, &c), SARDFQ_OK);
    ck_assert_uint_eq(c->n_held, c->n_params);
    ck_assert_ptr_null(c->ip);
    int held = 0;
    for (int lin = 0; lin < sfq_qspec_n_linears(cfg); lin++) {
        if (!sfq_qlin_exists(cfg, lin) || !sfq_iplan_pack(q, lin))
            continue;
        held++;
        ck_assert_ptr_null(sfq_qlin_weight(q, lin));
        const int rows = sfq_qlin_rows(cfg, lin), cols = sfq_qlin_cols(cfg, lin), bits = q->q->lin[lin].bits;
        char name[200], key[240];
        sfq_qlin_tensor_name(cfg, lin, name, sizeof name);
        snprintf(key, sizeof key, "%s_codes", name);
        const sfq_st_tensor *tc = sfq_st_find(&st, key);
        ck_assert_ptr_nonnull(tc);
        float *scale = malloc(sizeof(float) * rows), *zero = malloc(sizeof(float) * rows);
        snprintf(key, sizeof key, "%s_scale", name);
        ck_assert_int_eq(sfq_st_read_f32(&st, sfq_st_find(&st, key), scale), SARDFQ_OK);
        snprintf(key, sizeof key, "%s_zero", name);
        ck_assert_int_eq(sfq_st_read_f32(&st, sfq_st_find(&st, key), zero), SARDFQ_OK);
        float *want = malloc(sizeof(float) * rows * cols), *got = malloc(sizeof(float) * rows * cols);
        const size_t rb = bits <= 4 ? ((size_t)cols + 1) / 2 : (size_t)cols;
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < cols; k++) {
                const uint8_t byte = st.data[tc->begin + (size_t)r * rb + (size_t)(bits <= 4 ? k / 2 : k)];
                const int code = bits <= 4 ? (byte >> (4 * (k & 1))) & 15 : byte;
                want[(size_t)r * cols + k] = ((float)code - zero[r]) * scale[r];
            }
        ck_assert_ptr_eq(sfq_qlin_weight_read(q, lin, got), got);
        ck_assert_msg(memcmp(got, want, sizeof(float) * rows * cols) == 0, "%s: codes read back differ", name);
        ck_assert_msg(memcmp(sfq_qlin_weight(c, lin), want, sizeof(float) * rows * cols) == 0,
                      "%s: the clone's floats differ", name);
        free(scale), free(zero), free(want), free(got);
    }
    ck_assert_int_gt(held, 0);
    /* FAKE from codes against FAKE from resident floats, bit for bit */
    const int K = cfg->num_classes, n = 8;
    float *x = images(cfg, n, 21), *lq = malloc(sizeof(float) * n * K), *lc = malloc(sizeof(float) * n * K);
    ck_assert_int_eq(sardfq_model_set_executor(q, SARDFQ_EXECUTOR_FAKE), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_set_executor(c, SARDFQ_EXECUTOR_FAKE), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward(q, x, n, lq), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward(c, x, n, lc), SARDFQ_OK);
    ck_assert_msg(memcmp(lq, lc, sizeof(float) * n * K) == 0, "FAKE logits differ");
    const size_t na = (size_t)n * (size_t)cfg->attention_floats;
    float *aq = malloc(sizeof(float) * na), *ac = malloc(sizeof(float) * na);
    sardfq_state *sq = NULL, *sc = NULL;
    ck_assert_int_eq(sardfq_state_create(q, &sq), SARDFQ_OK);
    ck_assert_int_eq(sardfq_state_create(c, &sc), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward_ex(q, sq, x, n, SARDFQ_FORWARD_ATTENTION, lq), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward_ex(c, sc, x, n, SARDFQ_FORWARD_ATTENTION, lc), SARDFQ_OK);
    ck_assert_int_eq(sardfq_state_get_attention(sq, aq, na), SARDFQ_OK);
    ck_assert_int_eq(sardfq_state_get_attention(sc, ac, na), SARDFQ_OK);
    ck_assert(memcmp(lq, lc, sizeof(float) * n * K) == 0 && memcmp(aq, ac, sizeof(float) * na) == 0);
    /* no backward: neither through the API nor the internal entry point */
    ck_assert_int_eq(sfq_forward_state(q, sq, x, n, SARDFQ_FORWARD_BACKWARD, lq), SARDFQ_E_UNSUPPORTED);
    printf("iexec %s: %d weights held as codes, %zu of %zu parameter floats resident\n", path, held, q->n_held,
           q->n_params);
    sardfq_state_free(sq), sardfq_state_free(sc);
    ck_assert_int_eq(sardfq_model_set_executor(q, SARDFQ_EXECUTOR_AUTO), SARDFQ_OK);
    free(x), free(lq), free(lc), free(aq), free(ac);
    sardfq_model_free(c);
    sfq_st_release(&st);
    free(buf);
}

START_TEST(int_weights_held_as_codes)
{
    /* loaded: the reference fixtures, ViT and Swin at 8, 4 and 3 bits */
    static const char *tags[] = {"int_vit_w8a8", "int_vit_w4a4", "int_vit_w3a3",
                                 "int_swin_w8a8", "int_swin_w4a4", "int_swin_w3a3"};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/data/%s.q.safetensors", tags[i]);
        sardfq_model *m = load(rel, SARDFQ_EXECUTOR_AUTO);
        held_as_codes(m, tu_src(rel));
        sardfq_model_free(m);
    }
    /* finalized: both schemes, ViT and Swin (checked against their file) */
    static const struct {
        const char *model;
        int scheme, bits;
    } made[] = {{VIT, SARDFQ_SCHEME_REPQ, 4}, {VIT, SARDFQ_SCHEME_MINMAX, 8}, {SWIN, SARDFQ_SCHEME_REPQ, 3},
                {SWIN, SARDFQ_SCHEME_MINMAX, 4}};
    char *dir = tu_make_tmpdir("sfq_held");
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
        sardfq_model *fp = load(made[i].model, SARDFQ_EXECUTOR_AUTO);
        sardfq_model *q = quantize(fp, made[i].scheme, made[i].bits, made[i].bits);
        const char *path = tu_join(dir, "q.safetensors");
        ck_assert_int_eq(sardfq_model_save(q, path), SARDFQ_OK);
        held_as_codes(q, path);
        sardfq_model_free(q);
        sardfq_model_free(fp);
    }
    tu_rm_rf(dir);
}
END_TEST

/* Calibration images far outside the model's input range are refused
 * (one stray 1e30 pixel; unnormalised 0-255 pixels); N(0, 1) noise is not. */
START_TEST(calibration_images_out_of_range)
{
    sardfq_model *fp = load(VIT, SARDFQ_EXECUTOR_AUTO);
    sardfq_model_info I = tu_info(fp);
    const size_t per = (size_t)I.img_h * I.img_w;
    float *x = images(&I, 4, 1);
    sardfq_quant_params qp;
    sardfq_quant_default_params(&qp);
    sardfq_quantizer *q = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(fp, &qp, &q), SARDFQ_OK);
    x[per + 17] = 1e30f;
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, x, 4), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "image 1 channel 0 has the value 1e+30"));
    for (size_t i = 0; i < 4 * per; i++)
        x[i] = (float)(i % 256);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, x, 4), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "normalised with the model's mean and std"));
    uint64_t st = 3;
    for (size_t i = 0; i < 4 * per; i++) { /* Box-Muller N(0, 1) */
        st = st * 6364136223846793005ULL + 1;
        const double u1 = ((st >> 11) + 1.0) / 9007199254740993.0;
        st = st * 6364136223846793005ULL + 1;
        const double u2 = (st >> 11) / 9007199254740992.0;
        x[i] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, x, 4), SARDFQ_OK);
    sardfq_quantizer_free(q);
    free(x);
    sardfq_model_free(fp);
}
END_TEST

/* A quantized file is refused when a code exceeds its width, a weight
 * zero point is fractional, or a quantizer's kind does not belong to the
 * file's scheme; the bytes are edited in place in a saved W3A3 file. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc(*len);
    ck_assert_uint_eq(fread(b, 1, *len, fp), *len);
    fclose(fp);
    return b;
}

/* Byte offset (in the file) of tensor `name`'s data. */
static size_t data_of(const char *b, const char *name)
{
    uint64_t hl;
    memcpy(&hl, b, 8);
    char key[128];
    snprintf(key, sizeof key, "\"%s\"", name);
    const char *t = strstr(b + 8, key);
    ck_assert_ptr_nonnull(t);
    const char *o = strstr(t, "\"data_offsets\":[");
    ck_assert_ptr_nonnull(o);
    unsigned long long begin = 0;
    ck_assert_int_eq(sscanf(o + 16, "%llu", &begin), 1);
    return 8 + (size_t)hl + (size_t)begin;
}

static sardfq_status load_bytes(const char *b, size_t len)
{
    sardfq_model *m = NULL;
    const sardfq_status s = sardfq_model_load_memory(b, len, NULL, &m);
    sardfq_model_free(m);
    return s;
}

START_TEST(corrupt_quantized_files_refused)
{
    size_t len;
    char *b = slurp(tu_src("tests/data/int_vit_w3a3.q.safetensors"), &len);
    ck_assert_int_eq(load_bytes(b, len), SARDFQ_OK);
    /* a 3-bit code of 15 */
    const size_t c = data_of(b, "blocks.1.mlp.fc2.weight_codes");
    const char keep = b[c];
    b[c] = (char)0xF0;
    ck_assert_int_eq(load_bytes(b, len), SARDFQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "code 15 exceeds 3 bits"));
    b[c] = keep;
    /* a fractional weight zero point */
    const size_t z = data_of(b, "head.weight_zero");
    float v;
    memcpy(&v, b + z, 4);
    const float frac = v + 0.5f;
    memcpy(b + z, &frac, 4);
    ck_assert_int_eq(load_bytes(b, len), SARDFQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "is not an integer"));
    memcpy(b + z, &v, 4);
    /* an unknown scheme */
    char *sch = strstr(b + 8, "\"sardfq.quant.scheme\":\"repq\"");
    ck_assert_ptr_nonnull(sch);
    char *r = sch + strlen("\"sardfq.quant.scheme\":\"");
    memcpy(r, "mmax", 4);
    ck_assert_int_eq(load_bytes(b, len), SARDFQ_E_UNSUPPORTED);
    memcpy(r, "repq", 4);
    ck_assert_int_eq(load_bytes(b, len), SARDFQ_OK);
    free(b);
    /* a RepQ-ViT (uniform) activation quantizer in a min/max file */
    sardfq_model *fp = load(VIT, SARDFQ_EXECUTOR_AUTO);
    sardfq_model *q = quantize(fp, SARDFQ_SCHEME_MINMAX, 8, 8);
    char *dir = tu_make_tmpdir("sfq_iexec_mix"), path[512];
    snprintf(path, sizeof path, "%s", tu_join(dir, "q.safetensors"));
    ck_assert_int_eq(sardfq_model_save(q, path), SARDFQ_OK);
    b = slurp(path, &len);
    char *u = strstr(b + 8, "\"uniform-psaq 8\"");
    ck_assert_ptr_nonnull(u);
    memcpy(u + 1, "uniform     ", 12);
    ck_assert_int_eq(load_bytes(b, len), SARDFQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "which the minmax scheme does not use"));
    tu_rm_rf(dir);
    sardfq_model_free(q);
    sardfq_model_free(fp);
    free(b);
}
END_TEST

START_TEST(bad_executor_settings)
{
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_set_executor(NULL, SARDFQ_EXECUTOR_AUTO), SARDFQ_E_INVALID_ARG);
    m = load(VIT, SARDFQ_EXECUTOR_AUTO);
    ck_assert_int_eq(tu_info(m).executor, SARDFQ_EXECUTOR_AUTO);
    ck_assert_int_eq(sardfq_model_set_executor(m, 7), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "executor must be"));
    ck_assert_int_eq(tu_info(m).executor, SARDFQ_EXECUTOR_AUTO);
    sardfq_model_free(m);
    m = NULL;
    setenv("SARDFQ_ISA", "sse9", 1);
    sardfq_model *fp = load(VIT, SARDFQ_EXECUTOR_AUTO); /* a float model has no integer form */
    ck_assert_ptr_null(sardfq_model_executor_report(fp));
    ck_assert_int_eq(tu_info(fp).quantized, 0);
    unsetenv("SARDFQ_ISA");
    sardfq_model *q = quantize(fp, SARDFQ_SCHEME_REPQ, 8, 8);
    char *dir = tu_make_tmpdir("sfq_iexec_bad"), path[512];
    snprintf(path, sizeof path, "%s", tu_join(dir, "q.safetensors"));
    ck_assert_int_eq(sardfq_model_save(q, path), SARDFQ_OK);
    setenv("SARDFQ_ISA", "sse9", 1);
    ck_assert_int_eq(sardfq_model_load(path, NULL, &m), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "SARDFQ_ISA"));
    unsetenv("SARDFQ_ISA");
    tu_rm_rf(dir);
    sardfq_model_free(q);
    sardfq_model_free(fp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("iexec");
    TCase *tc = tcase_create("iexec");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, vit_repq_w8a8);
    tcase_add_test(tc, vit_repq_w4a4);
    tcase_add_test(tc, vit_repq_w3a3);
    tcase_add_test(tc, vit_minmax_w8a8);
    tcase_add_test(tc, vit_minmax_w4a8);
    tcase_add_test(tc, swin_repq_w8a8);
    tcase_add_test(tc, swin_repq_w4a4);
    tcase_add_test(tc, swin_repq_w3a3);
    tcase_add_test(tc, swin_minmax_w8a8);
    tcase_add_test(tc, reference_vit);
    tcase_add_test(tc, reference_swin);
    tcase_add_test(tc, isa_paths_identical_vit);
    tcase_add_test(tc, isa_paths_identical_swin);
    tcase_add_test(tc, fractional_zero_runs_float_and_says_so);
    tcase_add_test(tc, int_weights_held_as_codes);
    tcase_add_test(tc, bad_executor_settings);
    tcase_add_test(tc, corrupt_quantized_files_refused);
    tcase_add_test(tc, calibration_images_out_of_range);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
