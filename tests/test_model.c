/* test_model.c - the ViT graph against PyTorch goldens (tests/reference/
 * make_fixtures.py), finite differences, threads and determinism.
 *
 * Each golden holds images, logits, attn (class-token rows), glogits, gattn
 * and dimages = d/dimages [sum(glogits * logits) + sum(gattn * attn)],
 * computed in float64 by an independent PyTorch implementation. */
#include "inspect.h"
#include "safetensors.h"
#include "testutil.h"
#include "exec.h"
#include "vit.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static sardfq_model *load(const char *file, int heads)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.num_heads = heads;
    sardfq_model *m = NULL;
    sardfq_status s = sardfq_model_load(tu_data(file), &p, &m);
    ck_assert_msg(s == SARDFQ_OK, "load %s: %s", file, sardfq_last_error());
    return m;
}

/* Parity limits against the float64 goldens: about 10x the largest error
 * measured over all fixtures, ViT and Swin (logits 2.9e-7, attention
 * 4.5e-7, dimages 9.8e-7 on the 0.3.0 tree), so that a realistic slip such
 * as ViT's LayerNorm eps at 1e-5 instead of 1e-6 fails. */
#define LOGITS_TOL 3e-6  /* max |diff| / max |logit| */
#define ATTN_TOL 5e-6    /* max |diff| (probabilities) */
#define DIMAGES_TOL 1e-5 /* max |diff| / max |dL/dimages| */

/* Compare logits, attention and input gradient with a golden. */
static void check_parity(const char *model_file, const char *golden_file, int heads)
{
    sardfq_model *m = load(model_file, heads);
    sardfq_model_info info = tu_info(m);
    tu_fixture g;
    tu_fixture_open(&g, golden_file);
    size_t n_img, n_log, n_att, n_gl, n_ga, n_di;
    float *images = tu_fixture_get(&g, "images", &n_img);
    float *ref_logits = tu_fixture_get(&g, "logits", &n_log);
    float *ref_attn = tu_fixture_get(&g, "attn", &n_att);
    float *glogits = tu_fixture_get(&g, "glogits", &n_gl);
    float *gattn = tu_fixture_get(&g, "gattn", &n_ga);
    float *ref_dimages = tu_fixture_get(&g, "dimages", &n_di);
    const size_t per_img = (size_t)info.in_chans * info.img_h * info.img_w;
    const int n = (int)(n_img / per_img);
    ck_assert_uint_eq(n_log, (size_t)n * info.num_classes);
    ck_assert_uint_eq(n_att, (size_t)n * info.attention_floats);
    if (info.arch != SARDFQ_ARCH_SWIN)
        ck_assert_int_eq(info.attention_floats, (int64_t)info.depth * info.num_heads * info.num_tokens);

    float *logits = calloc(n_log, sizeof(float)), *logits2 = calloc(n_log, sizeof(float));
    float *attn = calloc(n_att, sizeof(float)), *dimages = calloc(n_di, sizeof(float));
    sardfq_state *s = NULL;
    ck_assert_int_eq(sardfq_state_create(m, &s), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward_ex(m, s, images, n,
                                             SARDFQ_FORWARD_ATTENTION | SARDFQ_FORWARD_BACKWARD, logits),
                     SARDFQ_OK);
    ck_assert_int_eq(sardfq_state_get_attention(s, attn, n_att), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_backward(m, s, glogits, gattn, dimages), SARDFQ_OK);

    double e_log = tu_max_abs_diff(logits, ref_logits, n_log) / tu_max_abs(ref_logits, n_log);
    double e_att = tu_max_abs_diff(attn, ref_attn, n_att);
    double e_grad = tu_max_abs_diff(dimages, ref_dimages, n_di) / tu_max_abs(ref_dimages, n_di);
    printf("parity %-28s logits %.2e (rel. max|logit|)  attn %.2e (abs)  dimages %.2e (rel. max|grad|)\n",
           model_file, e_log, e_att, e_grad);
    ck_assert_msg(e_log <= LOGITS_TOL, "%s: logits error %g (limit %g)", model_file, e_log, LOGITS_TOL);
    ck_assert_msg(e_att <= ATTN_TOL, "%s: attention error %g (limit %g)", model_file, e_att, ATTN_TOL);
    ck_assert_msg(e_grad <= DIMAGES_TOL, "%s: input gradient error %g (limit %g)", model_file, e_grad,
                  DIMAGES_TOL);

    /* the inference path computes the same logits, bit for bit */
    ck_assert_int_eq(sardfq_model_forward(m, images, n, logits2), SARDFQ_OK);
    ck_assert_int_eq(memcmp(logits, logits2, n_log * sizeof(float)), 0);

    /* backward is repeatable on the same kept activations */
    float *dimages2 = calloc(n_di, sizeof(float));
    ck_assert_int_eq(sardfq_model_backward(m, s, glogits, gattn, dimages2), SARDFQ_OK);
    ck_assert_int_eq(memcmp(dimages, dimages2, n_di * sizeof(float)), 0);

    sardfq_state_free(s);
    sardfq_model_free(m);
    tu_fixture_close(&g);
    free(images), free(ref_logits), free(ref_attn), free(glogits), free(gattn), free(ref_dimages);
    free(logits), free(logits2), free(attn), free(dimages), free(dimages2);
}

START_TEST(parity_timm_rgb_p16_nonsquare) { check_parity("vit_p16_rgb.model.safetensors", "vit_p16_rgb.golden.safetensors", 0); }
END_TEST
START_TEST(parity_timm_gray_p4_no_metadata) { check_parity("vit_p4_gray_nometa.model.safetensors", "vit_p4_gray_nometa.golden.safetensors", 3); }
END_TEST
START_TEST(parity_deit_distilled) { check_parity("deit_distilled.model.safetensors", "deit_distilled.golden.safetensors", 0); }
END_TEST
START_TEST(parity_torchvision) { check_parity("tv_vit.model.safetensors", "tv_vit.golden.safetensors", 0); }
END_TEST
START_TEST(parity_torchvision_legacy_mlp) { check_parity("tv_vit_legacy.model.safetensors", "tv_vit.golden.safetensors", 0); }
END_TEST
START_TEST(parity_f16_weights) { check_parity("vit_f16.model.safetensors", "vit_f16.golden.safetensors", 0); }
END_TEST
START_TEST(parity_bf16_weights) { check_parity("vit_bf16.model.safetensors", "vit_bf16.golden.safetensors", 0); }
END_TEST
/* Swin (tests/reference/make_swin_fixtures.py): one set of weights in the
 * three layouts, a non-square 1-channel model (shift along one axis), and
 * a grid smaller than the window (clipped window, no shift) */
START_TEST(parity_swin_timm) { check_parity("swin_a.timm.model.safetensors", "swin_a.golden.safetensors", 0); }
END_TEST
START_TEST(parity_swin_timm_old_layout) { check_parity("swin_a.timm_old.model.safetensors", "swin_a.golden.safetensors", 0); }
END_TEST
START_TEST(parity_swin_torchvision) { check_parity("swin_a.tv.model.safetensors", "swin_a.golden.safetensors", 0); }
END_TEST
START_TEST(parity_swin_nonsquare_gray) { check_parity("swin_b.model.safetensors", "swin_b.golden.safetensors", 0); }
END_TEST
START_TEST(parity_swin_clipped_window) { check_parity("swin_c.model.safetensors", "swin_c.golden.safetensors", 0); }
END_TEST
START_TEST(parity_swin_clipped_tables) { check_parity("swin_c.clipped.model.safetensors", "swin_c.golden.safetensors", 0); }
END_TEST

/* ---- finite differences ------------------------------------------------ */

/* L = sum(gl * logits) + sum(ga * attn), accumulated in double. */
static double loss_at(sardfq_model *m, sardfq_state *s, const float *x, int n, const float *gl,
                      const float *ga, size_t n_log, size_t n_att)
{
    float *logits = malloc(n_log * sizeof(float)), *attn = malloc(n_att * sizeof(float));
    ck_assert_int_eq(sardfq_model_forward_ex(m, s, x, n, SARDFQ_FORWARD_ATTENTION, logits), SARDFQ_OK);
    ck_assert_int_eq(sardfq_state_get_attention(s, attn, n_att), SARDFQ_OK);
    double L = 0;
    for (size_t i = 0; i < n_log; i++)
        L += (double)gl[i] * logits[i];
    for (size_t i = 0; i < n_att; i++)
        L += (double)ga[i] * attn[i];
    free(logits);
    free(attn);
    return L;
}

static void check_fd(const char *model_file, const char *golden_file, int heads, int use_attn)
{
    sardfq_model *m = load(model_file, heads);
    tu_fixture g;
    tu_fixture_open(&g, golden_file);
    size_t n_img, n_log, n_att;
    float *x = tu_fixture_get(&g, "images", &n_img);
    float *gl = tu_fixture_get(&g, "glogits", &n_log);
    float *ga = tu_fixture_get(&g, "gattn", &n_att);
    if (!use_attn)
        memset(ga, 0, n_att * sizeof(float));
    sardfq_model_info info = tu_info(m);
    const int n = (int)(n_img / ((size_t)info.in_chans * info.img_h * info.img_w));
    sardfq_state *s = NULL;
    ck_assert_int_eq(sardfq_state_create(m, &s), SARDFQ_OK);
    float *grad = malloc(n_img * sizeof(float));
    ck_assert_int_eq(sardfq_model_forward_ex(m, s, x, n, SARDFQ_FORWARD_BACKWARD, NULL), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_backward(m, s, gl, use_attn ? ga : NULL, grad), SARDFQ_OK);
    /* central differences on 60 pixels spread over the batch */
    const float h = 1e-2f;
    double num = 0, den = 0, max_g = tu_max_abs(grad, n_img);
    for (int k = 0; k < 60; k++) {
        size_t i = (size_t)((k * 7919u) % n_img);
        float keep = x[i];
        x[i] = keep + h;
        double Lp = loss_at(m, s, x, n, gl, ga, n_log, n_att);
        x[i] = keep - h;
        double Lm = loss_at(m, s, x, n, gl, ga, n_log, n_att);
        x[i] = keep;
        double fd = (Lp - Lm) / (2.0 * h);
        num += (fd - grad[i]) * (fd - grad[i]);
        den += fd * fd;
        ck_assert_msg(fabs(fd - grad[i]) <= 2e-2 * max_g + 1e-4,
                      "%s pixel %zu: finite difference %g vs backward %g", model_file, i, fd, grad[i]);
    }
    double rel = sqrt(num / (den > 0 ? den : 1));
    printf("finite differences %-24s (%s): relative L2 error %.2e\n", model_file,
           use_attn ? "logits+attention" : "logits", rel);
    ck_assert_msg(rel < 1e-2, "%s: finite-difference relative error %g", model_file, rel);
    sardfq_state_free(s);
    sardfq_model_free(m);
    tu_fixture_close(&g);
    free(x), free(gl), free(ga), free(grad);
}

START_TEST(fd_logits_and_attention) { check_fd("vit_p4_gray_nometa.model.safetensors", "vit_p4_gray_nometa.golden.safetensors", 3, 1); }
END_TEST
START_TEST(fd_logits_only_distilled) { check_fd("deit_distilled.model.safetensors", "deit_distilled.golden.safetensors", 0, 0); }
END_TEST
START_TEST(fd_attention_rgb) { check_fd("vit_p16_rgb.model.safetensors", "vit_p16_rgb.golden.safetensors", 0, 1); }
END_TEST
START_TEST(fd_swin_logits_and_attention) { check_fd("swin_a.timm.model.safetensors", "swin_a.golden.safetensors", 0, 1); }
END_TEST
START_TEST(fd_swin_nonsquare) { check_fd("swin_b.model.safetensors", "swin_b.golden.safetensors", 0, 1); }
END_TEST

/* ---- threads and determinism ------------------------------------------- */

typedef struct {
    sardfq_model *m;
    const float *x;
    int n;
    float *out;
    int reps;
    int ok;
} thr_arg;

static void *thr_main(void *p)
{
    thr_arg *a = p;
    a->ok = 1;
    for (int r = 0; r < a->reps && a->ok; r++)
        a->ok = sardfq_model_forward(a->m, a->x, a->n, a->out) == SARDFQ_OK;
    return NULL;
}

START_TEST(shared_model_two_threads)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.n_threads = 1;
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_load(tu_data("vit_p16_rgb.model.safetensors"), &p, &m), SARDFQ_OK);
    sardfq_model_info info = tu_info(m);
    const int n = 4;
    const size_t per = (size_t)info.in_chans * info.img_h * info.img_w;
    float *x = malloc(sizeof(float) * per * n);
    for (size_t i = 0; i < per * n; i++)
        x[i] = sinf((float)i * 0.37f);
    float *ref = malloc(sizeof(float) * n * info.num_classes);
    ck_assert_int_eq(sardfq_model_forward(m, x, n, ref), SARDFQ_OK);
    thr_arg a[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (thr_arg){m, x, n, malloc(sizeof(float) * n * info.num_classes), 20, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, thr_main, &a[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        ck_assert(a[i].ok);
        ck_assert_int_eq(memcmp(a[i].out, ref, sizeof(float) * n * info.num_classes), 0);
        free(a[i].out);
    }
    free(x), free(ref);
    sardfq_model_free(m);
}
END_TEST

START_TEST(batch_independent_and_deterministic)
{
    sardfq_model *m = load("deit_distilled.model.safetensors", 0);
    sardfq_model_info info = tu_info(m);
    const int n = 5;
    const size_t per = (size_t)info.in_chans * info.img_h * info.img_w;
    float *x = malloc(sizeof(float) * per * n);
    for (size_t i = 0; i < per * n; i++)
        x[i] = cosf((float)i * 0.11f);
    float *a = malloc(sizeof(float) * n * info.num_classes), *b = malloc(sizeof(float) * n * info.num_classes);
    ck_assert_int_eq(sardfq_model_forward(m, x, n, a), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward(m, x, n, b), SARDFQ_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof(float) * n * info.num_classes), 0);
    /* each image alone gives the same logits as in the batch (to rounding) */
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(sardfq_model_forward(m, x + per * i, 1, b), SARDFQ_OK);
        ck_assert(tu_max_abs_diff(a + (size_t)i * info.num_classes, b, (size_t)info.num_classes) <
                  1e-5 * (1 + tu_max_abs(b, (size_t)info.num_classes)));
    }
    free(x), free(a), free(b);
    sardfq_model_free(m);
}
END_TEST

/* ---- info and misuse ---------------------------------------------------- */

START_TEST(info_sources)
{
    sardfq_model *m = load("vit_p4_gray_nometa.model.safetensors", 3);
    sardfq_model_info info = tu_info(m);
    ck_assert_int_eq(info.img_h, 28);
    ck_assert_int_eq(info.img_w, 28);
    ck_assert_int_eq(info.patch_size, 4);
    ck_assert_int_eq(info.num_heads, 3);
    ck_assert_int_eq(info.source[SARDFQ_FIELD_NUM_HEADS], SARDFQ_SOURCE_PARAMS);
    ck_assert_int_eq(info.source[SARDFQ_FIELD_IMG_SIZE], SARDFQ_SOURCE_SHAPES);
    ck_assert_int_eq(info.source[SARDFQ_FIELD_MEAN], SARDFQ_SOURCE_DEFAULT);
    ck_assert_int_eq(info.num_tokens, 50);
    sardfq_model_free(m);
    m = load("vit_p16_rgb.model.safetensors", 0);
    info = tu_info(m);
    ck_assert_int_eq(info.img_h, 32);
    ck_assert_int_eq(info.img_w, 48);
    ck_assert_int_eq(info.source[SARDFQ_FIELD_IMG_SIZE], SARDFQ_SOURCE_METADATA);
    ck_assert_int_eq(info.source[SARDFQ_FIELD_NUM_HEADS], SARDFQ_SOURCE_METADATA);
    ck_assert(fabsf(info.mean[1] - 0.456f) < 1e-7f);
    ck_assert_str_eq(sardfq_model_get_metadata(m, "arch"), "vit");
    ck_assert_ptr_null(sardfq_model_get_metadata(m, "no such key"));
    /* listing: every key is found again by name */
    ck_assert_int_ge(sardfq_model_metadata_count(m), 10);
    for (int32_t i = 0; i < sardfq_model_metadata_count(m); i++)
        ck_assert_ptr_nonnull(sardfq_model_get_metadata(m, sardfq_model_metadata_key(m, i)));
    ck_assert_ptr_null(sardfq_model_metadata_key(m, -1));
    ck_assert_ptr_null(sardfq_model_metadata_key(m, sardfq_model_metadata_count(m)));
    sardfq_model_free(m);
    /* a contradicting head count is refused with a message naming both */
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.num_heads = 2;
    m = NULL;
    ck_assert_int_eq(sardfq_model_load(tu_data("vit_p16_rgb.model.safetensors"), &p, &m), SARDFQ_E_SHAPE);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "num_heads"));
    /* heads not inferable: 48 is not a multiple of 64 and there is no metadata */
    ck_assert_int_eq(sardfq_model_load(tu_data("vit_p4_gray_nometa.model.safetensors"), NULL, &m), SARDFQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "heads"));
}
END_TEST

START_TEST(misuse_returns_status)
{
    sardfq_model *m = load("vit_p16_rgb.model.safetensors", 0);
    sardfq_model_info info = tu_info(m);
    float x[3 * 32 * 48] = {0}, logits[10], *dimg = calloc(3 * 32 * 48, sizeof(float));
    ck_assert_int_eq(sardfq_model_forward(NULL, x, 1, logits), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_model_forward(m, NULL, 1, logits), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_model_forward(m, x, 0, logits), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "n must be"));
    ck_assert_int_eq(sardfq_model_forward(m, x, -3, logits), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_model_forward(m, x, 1, NULL), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_model_get_info(m, NULL), SARDFQ_E_INVALID_ARG);
    sardfq_model_info small = {0};
    ck_assert_int_eq(sardfq_model_get_info(m, &small), SARDFQ_E_INVALID_ARG);
    sardfq_state *s = NULL;
    ck_assert_int_eq(sardfq_state_create(NULL, &s), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_state_create(m, &s), SARDFQ_OK);
    /* backward or attention before a forward that kept them */
    ck_assert_int_eq(sardfq_model_backward(m, s, logits, NULL, dimg), SARDFQ_E_STATE);
    ck_assert_int_eq(sardfq_model_forward_ex(m, s, x, 1, 0, logits), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_backward(m, s, logits, NULL, dimg), SARDFQ_E_STATE);
    float attn[1];
    ck_assert_int_eq(sardfq_state_get_attention(s, attn, 1), SARDFQ_E_STATE);
    ck_assert_int_eq(sardfq_model_forward_ex(m, s, x, 1, SARDFQ_FORWARD_ATTENTION, logits), SARDFQ_OK);
    ck_assert_int_eq(sardfq_state_get_attention(s, attn, 1), SARDFQ_E_SHAPE);
    ck_assert_int_eq(sardfq_model_forward_ex(m, s, x, 1, 0x80, logits), SARDFQ_E_INVALID_ARG);
    /* a state is bound to its model */
    sardfq_model *m2 = load("tv_vit.model.safetensors", 0);
    ck_assert_int_eq(sardfq_model_forward_ex(m2, s, x, 1, 0, NULL), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_model_backward(m2, s, logits, NULL, dimg), SARDFQ_E_INVALID_ARG);
    /* params struct validation */
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.struct_size = 4;
    sardfq_model *m3 = NULL;
    ck_assert_int_eq(sardfq_model_load(tu_data("tv_vit.model.safetensors"), &p, &m3), SARDFQ_E_INVALID_ARG);
    sardfq_model_default_params(&p);
    p.n_threads = -1;
    ck_assert_int_eq(sardfq_model_load(tu_data("tv_vit.model.safetensors"), &p, &m3), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_null(m3);
    ck_assert_int_eq(sardfq_model_load(NULL, NULL, &m3), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_model_load(tu_data("no-such-file"), NULL, &m3), SARDFQ_E_IO);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "no-such-file"));
    ck_assert_int_eq(sardfq_model_create_random("resnet50", 0, NULL, &m3), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_null(m3);
    sardfq_state_free(NULL);
    sardfq_model_free(NULL);
    (void)info;
    sardfq_state_free(s);
    sardfq_model_free(m2);
    sardfq_model_free(m);
    free(dimg);
}
END_TEST

START_TEST(random_architectures)
{
    static const struct {
        const char *name;
        int dim, heads;
        double gflops;
    } archs[] = {{"deit_tiny", 192, 3, 2.5}, {"vit_small", 384, 6, 9.2}, {"vit_base", 768, 12, 35.2}};
    for (int i = 0; i < 3; i++) {
        sardfq_model *m = NULL;
        ck_assert_int_eq(sardfq_model_create_random(archs[i].name, 1, NULL, &m), SARDFQ_OK);
        sardfq_model_info info = tu_info(m);
        ck_assert_int_eq(info.embed_dim, archs[i].dim);
        ck_assert_int_eq(info.num_heads, archs[i].heads);
        ck_assert_int_eq(info.num_tokens, 197);
        /* FLOPs per image within 3% of the design's performance model */
        ck_assert_msg(fabs(info.flops_per_image / 1e9 - archs[i].gflops) < 0.03 * archs[i].gflops,
                      "%s: %.2f GFLOP", archs[i].name, info.flops_per_image / 1e9);
        if (i == 0) {
            float *x = calloc((size_t)3 * 224 * 224, sizeof(float)), logits[1000];
            ck_assert_int_eq(sardfq_model_forward(m, x, 1, logits), SARDFQ_OK);
            for (int c = 0; c < 1000; c++)
                ck_assert(isfinite(logits[c]));
            free(x);
        }
        sardfq_model_free(m);
    }
}
END_TEST

/* timm's Swin family: parameter counts and MACs from timm's tables
 * (research/perf_eco.md: Swin-T 28.29 M parameters, 4.51 GMACs), stage
 * geometry, and a forward that runs */
START_TEST(random_swin)
{
    static const struct {
        const char *name;
        int dim, depth, heads3;
        double mparams;
    } archs[] = {{"swin_tiny", 96, 12, 24, 28.29}, {"swin_small", 96, 24, 24, 49.61}, {"swin_base", 128, 24, 32, 87.77}};
    for (int i = 0; i < 3; i++) {
        sardfq_model *m = NULL;
        ck_assert_int_eq(sardfq_model_create_random(archs[i].name, 1, NULL, &m), SARDFQ_OK);
        sardfq_model_info info = tu_info(m);
        ck_assert_int_eq(info.arch, SARDFQ_ARCH_SWIN);
        ck_assert_int_eq(info.num_stages, 4);
        ck_assert_int_eq(info.window_size, 7);
        ck_assert_int_eq(info.embed_dim, archs[i].dim);
        ck_assert_int_eq(info.depth, archs[i].depth);
        ck_assert_int_eq(info.stage_heads[3], archs[i].heads3);
        ck_assert_int_eq(info.num_features, 8 * archs[i].dim);
        ck_assert_int_eq(info.grid_h, 56);
        printf("%s: %.3f M parameters, %.3f GMAC\n", archs[i].name, info.num_params / 1e6,
               info.flops_per_image / 2e9);
        ck_assert_msg(fabs(info.num_params / 1e6 - archs[i].mparams) < 0.006, "%s: %lld parameters", archs[i].name,
                      (long long)info.num_params);
        if (i == 0) {
            ck_assert_msg(fabs(info.flops_per_image / 2e9 - 4.51) < 0.03 * 4.51, "%.3f GMAC",
                          info.flops_per_image / 2e9);
            float *x = malloc(sizeof(float) * 3 * 224 * 224), logits[1000];
            for (int k = 0; k < 3 * 224 * 224; k++)
                x[k] = sinf(0.01f * (float)k);
            ck_assert_int_eq(sardfq_model_forward(m, x, 1, logits), SARDFQ_OK);
            for (int c = 0; c < 1000; c++)
                ck_assert(isfinite(logits[c]));
            free(x);
        }
        sardfq_model_free(m);
    }
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.num_heads = 4;
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_create_random("swin_tiny", 1, &p, &m), SARDFQ_E_INVALID_ARG);
}
END_TEST

/* Saved and loaded back, a model computes the same logits bit for bit. */
static void save_load_same(sardfq_model *m, const float *x, int n, const char *tag)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/sardfq-test-swin-%s-%d.safetensors", tag, (int)getpid());
    const int K = tu_info(m).num_classes;
    float *a = malloc(sizeof(float) * n * K), *b = malloc(sizeof(float) * n * K);
    ck_assert_int_eq(sardfq_model_forward(m, x, n, a), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_save(m, path), SARDFQ_OK);
    sardfq_model *r = NULL;
    ck_assert_msg(sardfq_model_load(path, NULL, &r) == SARDFQ_OK, "%s", sardfq_last_error());
    ck_assert_int_eq(sardfq_model_forward(r, x, n, b), SARDFQ_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof(float) * n * K), 0);
    ck_assert_int_eq(tu_info(r).arch, SARDFQ_ARCH_SWIN);
    ck_assert_int_eq(sfq_inspect_quantized(r), sfq_inspect_quantized(m));
    sardfq_model_free(r);
    unlink(path);
    free(a), free(b);
}

/* The quantizer on a Swin model: RepQ-ViT and min/max, no reconstruction yet;
 * timm-style layer names; quantized models save and load bit-exactly; with
 * every layer kept in floating point the quantized model computes the FP
 * logits (to the rounding of timm's "q * scale before Q K^T" order).
 * Parity with PyTorch: test_qmodel. */
START_TEST(swin_quantizer_paths)
{
    sardfq_model *m = load("swin_a.timm.model.safetensors", 0);
    sardfq_model_info info = tu_info(m);
    const int n = 2;
    const size_t per = (size_t)3 * 56 * 56;
    float *x = malloc(sizeof(float) * per * n), fp[20], ql[20];
    for (size_t i = 0; i < per * n; i++)
        x[i] = sinf((float)i * 0.13f);
    ck_assert_int_eq(sardfq_model_forward(m, x, n, fp), SARDFQ_OK);
    sardfq_quant_params qp;
    sardfq_quant_default_params(&qp);
    qp.scheme = SARDFQ_SCHEME_MINMAX;
    sardfq_quantizer *q = NULL;
    /* PSAQ-ViT's min/max (shifted windows, a patch merging): calibrates,
     * has no reconstruction, saves and loads bit-exactly */
    ck_assert_int_eq(sardfq_quantizer_create(m, &qp, &q), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, x, n), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_reconstruct(q, x, n), SARDFQ_E_UNSUPPORTED);
    sardfq_model *mm = NULL;
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &mm), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward(mm, x, n, ql), SARDFQ_OK);
    for (int i = 0; i < n * info.num_classes; i++)
        ck_assert(isfinite(ql[i]));
    save_load_same(mm, x, n, "minmax");
    sardfq_model_free(mm);
    sardfq_quantizer_free(q);
    q = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(m, NULL, &q), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_set_layer(q, "layers.1.downsample.reduction", 8, 8), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_set_layer(q, "layers.*.blocks.*.attn.matmul2", 8, 8), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_set_layer(q, "blocks.0.attn.qkv", 8, 8), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, x, n), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_reconstruct(q, x, n), SARDFQ_OK); /* (since 0.4) */
    sardfq_model *qm = NULL;
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &qm), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward(qm, x, n, ql), SARDFQ_OK);
    for (int i = 0; i < n * info.num_classes; i++)
        ck_assert(isfinite(ql[i]));
    save_load_same(qm, x, n, "w8a8");
    sardfq_model_free(qm);
    sardfq_quantizer_free(q);
    /* everything floating point */
    ck_assert_int_eq(sardfq_quantizer_create(m, NULL, &q), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_set_layer(q, "*", 0, 0), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, x, n), SARDFQ_OK);
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &qm), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward(qm, x, n, ql), SARDFQ_OK);
    const double e = tu_max_abs_diff(ql, fp, (size_t)n * info.num_classes) / tu_max_abs(fp, (size_t)n * info.num_classes);
    printf("Swin, every layer kept FP: logits %.2e of max |logit| from the FP model\n", e);
    ck_assert(e < 1e-5);
    sardfq_model_free(qm);
    sardfq_quantizer_free(q);
    save_load_same(m, x, n, "fp");
    free(x);
    sardfq_model_free(m);
}
END_TEST


/* ---- features and attention outputs ------------------------------------ */

START_TEST(features_feed_the_head)
{
    /* logits = head(features) + bias, with the head read from the file */
    sardfq_model *m = load("vit_p16_rgb.model.safetensors", 0);
    sardfq_model_info info = tu_info(m);
    tu_fixture g, w;
    tu_fixture_open(&g, "vit_p16_rgb.golden.safetensors");
    tu_fixture_open(&w, "vit_p16_rgb.model.safetensors");
    size_t n_img, n_hw, n_hb;
    float *x = tu_fixture_get(&g, "images", &n_img);
    float *hw = tu_fixture_get(&w, "head.weight", &n_hw), *hb = tu_fixture_get(&w, "head.bias", &n_hb);
    const int n = (int)(n_img / ((size_t)3 * 32 * 48)), K = info.num_classes, D = info.embed_dim;
    float *logits = malloc(sizeof(float) * n * K), *feat = malloc(sizeof(float) * n * D);
    sardfq_state *s = NULL;
    ck_assert_int_eq(sardfq_state_create(m, &s), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward_ex(m, s, x, n, SARDFQ_FORWARD_FEATURES, logits), SARDFQ_OK);
    ck_assert_int_eq(sardfq_state_get_features(s, feat, (size_t)n * D - 1), SARDFQ_E_SHAPE);
    ck_assert_int_eq(sardfq_state_get_features(s, feat, (size_t)n * D), SARDFQ_OK);
    for (int b = 0; b < n; b++)
        for (int c = 0; c < K; c++) {
            double z = hb[c];
            for (int d = 0; d < D; d++)
                z += (double)hw[(size_t)c * D + d] * feat[(size_t)b * D + d];
            ck_assert(fabs(z - logits[(size_t)b * K + c]) < 1e-5 * (1 + fabs(z)));
        }
    ck_assert_int_eq(sardfq_model_forward_ex(m, s, x, n, 0, logits), SARDFQ_OK);
    ck_assert_int_eq(sardfq_state_get_features(s, feat, (size_t)n * D), SARDFQ_E_STATE);
    sardfq_state_free(s);
    sardfq_model_free(m);
    tu_fixture_close(&g);
    tu_fixture_close(&w);
    free(x), free(hw), free(hb), free(logits), free(feat);
}
END_TEST

/* L = sum_l <G_l, ao_l> (attention outputs before the projection, as the
 * PSAQ-ViT loss reads them): backward with dao against central differences. */
START_TEST(fd_attention_output)
{
    sardfq_model *m = load("deit_distilled.model.safetensors", 0);
    sardfq_model_info info = tu_info(m);
    tu_fixture g;
    tu_fixture_open(&g, "deit_distilled.golden.safetensors");
    size_t n_img;
    float *x = tu_fixture_get(&g, "images", &n_img);
    const int n = (int)(n_img / ((size_t)info.in_chans * info.img_h * info.img_w));
    const size_t per_block = (size_t)n * info.num_tokens * info.embed_dim;
    const size_t total = per_block * info.depth;
    float *G = malloc(sizeof(float) * total), *grad = malloc(sizeof(float) * n_img);
    for (size_t i = 0; i < total; i++)
        G[i] = sinf((float)i * 0.731f);
    sardfq_state *s = NULL;
    ck_assert_int_eq(sardfq_state_create(m, &s), SARDFQ_OK);
    ck_assert_int_eq(sfq_forward_state(m, s, x, n, SARDFQ_FORWARD_BACKWARD | SFQ_FORWARD_KEEP_AO, NULL), SARDFQ_OK);
    ck_assert_ptr_nonnull(sfq_state_attn_output(s, info.depth - 1));
    ck_assert_ptr_null(sfq_state_attn_output(s, info.depth));
    ck_assert_int_eq(sfq_backward_state(m, s, NULL, NULL, G, grad), SARDFQ_OK);
    double max_g = tu_max_abs(grad, n_img);
    ck_assert(max_g > 0);
    for (int k = 0; k < 30; k++) {
        size_t i = (size_t)((k * 104729u) % n_img);
        float keep = x[i];
        double L[2];
        for (int side = 0; side < 2; side++) {
            x[i] = keep + (side ? -1e-2f : 1e-2f);
            ck_assert_int_eq(sfq_forward_state(m, s, x, n, SFQ_FORWARD_KEEP_AO, NULL), SARDFQ_OK);
            L[side] = 0;
            for (int l = 0; l < info.depth; l++) {
                const float *ao = sfq_state_attn_output(s, l);
                for (size_t j = 0; j < per_block; j++)
                    L[side] += (double)G[l * per_block + j] * ao[j];
            }
        }
        x[i] = keep;
        double fd = (L[0] - L[1]) / 2e-2;
        ck_assert_msg(fabs(fd - grad[i]) <= 2e-2 * max_g, "pixel %zu: fd %g backward %g", i, fd, grad[i]);
    }
    sardfq_state_free(s);
    sardfq_model_free(m);
    tu_fixture_close(&g);
    free(x), free(G), free(grad);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("parity");
    tcase_add_test(tc, parity_timm_rgb_p16_nonsquare);
    tcase_add_test(tc, parity_timm_gray_p4_no_metadata);
    tcase_add_test(tc, parity_deit_distilled);
    tcase_add_test(tc, parity_torchvision);
    tcase_add_test(tc, parity_torchvision_legacy_mlp);
    tcase_add_test(tc, parity_f16_weights);
    tcase_add_test(tc, parity_bf16_weights);
    tcase_add_test(tc, parity_swin_timm);
    tcase_add_test(tc, parity_swin_timm_old_layout);
    tcase_add_test(tc, parity_swin_torchvision);
    tcase_add_test(tc, parity_swin_nonsquare_gray);
    tcase_add_test(tc, parity_swin_clipped_window);
    tcase_add_test(tc, parity_swin_clipped_tables);
    suite_add_tcase(s, tc);
    tc = tcase_create("finite_differences");
    tcase_add_test(tc, fd_logits_and_attention);
    tcase_add_test(tc, fd_logits_only_distilled);
    tcase_add_test(tc, fd_attention_rgb);
    tcase_add_test(tc, fd_swin_logits_and_attention);
    tcase_add_test(tc, fd_swin_nonsquare);
    tcase_add_test(tc, fd_attention_output);
    suite_add_tcase(s, tc);
    tc = tcase_create("behaviour");
    tcase_add_test(tc, shared_model_two_threads);
    tcase_add_test(tc, batch_independent_and_deterministic);
    tcase_add_test(tc, info_sources);
    tcase_add_test(tc, misuse_returns_status);
    tcase_add_test(tc, random_architectures);
    tcase_add_test(tc, random_swin);
    tcase_add_test(tc, swin_quantizer_paths);
    tcase_add_test(tc, features_feed_the_head);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
