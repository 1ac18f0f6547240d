/* test_api.c - the public API end to end on the default model: evaluation
 * on the Fashion-MNIST test set (Debian package dataset-fashion-mnist) must
 * count exactly as many correct images as PyTorch did when the model was
 * trained (metadata test_correct, written by tests/reference/
 * train_default.py), and so must the Swin model (train_swin.py) and the
 * benchmark ViT (train_bench.py); datasets
 * and evaluate refuse misuse; ONNX export refuses bad arguments, leaves
 * nothing behind on failure and writes the same bytes every time. */
#define SARDFQ_EXPERIMENTAL
#include "sardfq.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"
#define DEFAULT_MODEL "examples/models/fmnist_vit.safetensors"

#define SWIN_MODEL "examples/models/fmnist_swin.safetensors"
/* the calibration-sensitivity benchmark ViT (tests/reference/train_bench.py) */
#define BENCH_MODEL "examples/models/fmnist_vit_bench.safetensors"
#define BENCH_S1_MODEL "examples/models/fmnist_vit_bench_s1.safetensors"

static sardfq_model *load_model(const char *file)
{
    sardfq_model *m = NULL;
    sardfq_status s = sardfq_model_load(tu_src(file), NULL, &m);
    ck_assert_msg(s == SARDFQ_OK, "%s", sardfq_last_error());
    return m;
}

static sardfq_model *default_model(void) { return load_model(DEFAULT_MODEL); }

static void matches_pytorch_count(const char *file)
{
    sardfq_model *m = load_model(file);
    const char *want = sardfq_model_get_metadata(m, "test_correct");
    const char *want_n = sardfq_model_get_metadata(m, "test_n");
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(want_n);
    sardfq_dataset *d = NULL;
    sardfq_status s = sardfq_dataset_open(FMNIST, m, &d);
    ck_assert_msg(s == SARDFQ_OK, "install dataset-fashion-mnist: %s", sardfq_last_error());
    ck_assert_int_eq(sardfq_dataset_count(d), 10000);
    sardfq_eval_params p;
    sardfq_eval_default_params(&p);
    p.batch = 250;
    sardfq_eval_result r;
    r.struct_size = sizeof r;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &r), SARDFQ_OK);
    printf("%s: %lld/%lld correct (PyTorch: %s/%s), top-5 %lld\n", file, (long long)r.top1_correct,
           (long long)r.n, want, want_n, (long long)r.top5_correct);
    ck_assert_int_eq(r.n, atoll(want_n));
    ck_assert_int_eq(r.top1_correct, atoll(want));
    ck_assert_int_ge(r.top5_correct, r.top1_correct);
    sardfq_dataset_free(d);
    sardfq_model_free(m);
}

START_TEST(default_model_matches_pytorch_count) { matches_pytorch_count(DEFAULT_MODEL); }
END_TEST
/* the Swin model of tests/reference/train_swin.py */
START_TEST(swin_model_matches_pytorch_count) { matches_pytorch_count(SWIN_MODEL); }
END_TEST
START_TEST(bench_model_matches_pytorch_count) { matches_pytorch_count(BENCH_MODEL); }
END_TEST

START_TEST(bench_s1_model_matches_pytorch_count) { matches_pytorch_count(BENCH_S1_MODEL); }
END_TEST

static int cancel_after_two(void *ud, int64_t done, int64_t total, const char *stage)
{
    int *calls = ud;
    ck_assert_str_eq(stage, "eval");
    ck_assert_int_le(done, total);
    return ++*calls >= 2;
}

START_TEST(evaluate_limit_cancel_and_misuse)
{
    sardfq_model *m = default_model();
    sardfq_dataset *d = NULL;
    ck_assert_int_eq(sardfq_dataset_open(FMNIST, m, &d), SARDFQ_OK);
    sardfq_eval_params p;
    sardfq_eval_default_params(&p);
    p.limit = 300;
    p.batch = 64;
    sardfq_eval_result r;
    r.struct_size = sizeof r;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &r), SARDFQ_OK);
    ck_assert_int_eq(r.n, 300);
    /* the batch size does not change the count */
    sardfq_eval_result r2;
    r2.struct_size = sizeof r2;
    p.batch = 7;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &r2), SARDFQ_OK);
    ck_assert_int_eq(r2.top1_correct, r.top1_correct);
    ck_assert_int_eq(r2.top5_correct, r.top5_correct);
    /* ranges: [0, 128) + [128, 300) (starting at a multiple of the batch:
     * the same batches) give the whole run's counts, as integers */
    p.batch = 64;
    sardfq_eval_result a, b;
    a.struct_size = b.struct_size = sizeof a;
    p.limit = 128;
    ck_assert_int_eq(sardfq_evaluate_range(m, d, &p, 0, &a), SARDFQ_OK);
    p.limit = 172;
    ck_assert_int_eq(sardfq_evaluate_range(m, d, &p, 128, &b), SARDFQ_OK);
    ck_assert_int_eq(a.n + b.n, 300);
    ck_assert_int_eq(a.top1_correct + b.top1_correct, r.top1_correct);
    ck_assert_int_eq(a.top5_correct + b.top5_correct, r.top5_correct);
    /* limit counts from first */
    ck_assert_int_eq(sardfq_evaluate_range(m, d, &p, 9990, &b), SARDFQ_OK);
    ck_assert_int_eq(b.n, 10);
    ck_assert_int_eq(sardfq_evaluate_range(m, d, &p, 10001, &b), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_evaluate_range(m, d, &p, -1, &b), SARDFQ_E_INVALID_ARG);
    p.limit = 300;
    p.batch = 7;
    /* cancellation */
    int calls = 0;
    p.progress = cancel_after_two;
    p.user_data = &calls;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &r2), SARDFQ_E_CANCELLED);
    ck_assert_int_eq(calls, 2);
    /* misuse */
    p.progress = NULL;
    ck_assert_int_eq(sardfq_evaluate(NULL, d, &p, &r2), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_evaluate(m, NULL, &p, &r2), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, NULL), SARDFQ_E_INVALID_ARG);
    p.batch = -1;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &r2), SARDFQ_E_INVALID_ARG);
    /* reading */
    float img[28 * 28];
    int32_t label = -1;
    ck_assert_int_eq(sardfq_dataset_read(d, 0, 1, img, &label), SARDFQ_OK);
    ck_assert(label >= 0 && label < 10);
    ck_assert_int_eq(sardfq_dataset_read(d, 9999, 2, img, &label), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_dataset_read(d, -1, 1, img, &label), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_dataset_read(d, 0, 1, NULL, &label), SARDFQ_E_INVALID_ARG);
    sardfq_dataset_free(d);
    sardfq_dataset_free(NULL);
    /* opening */
    sardfq_dataset *d2 = NULL;
    ck_assert_int_ne(sardfq_dataset_open("/nonexistent/folder", m, &d2), SARDFQ_OK);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "/nonexistent/folder"));
    ck_assert_ptr_null(d2);
    ck_assert_int_eq(sardfq_dataset_open(NULL, m, &d2), SARDFQ_E_INVALID_ARG);
    /* a model whose input size differs from the IDX images is refused */
    sardfq_model *other = NULL;
    ck_assert_int_eq(sardfq_model_load(tu_data("vit_p16_rgb.model.safetensors"), NULL, &other), SARDFQ_OK);
    ck_assert_int_eq(sardfq_dataset_open(FMNIST, other, &d2), SARDFQ_E_SHAPE);
    ck_assert_ptr_null(d2);
    sardfq_model_free(other);
    sardfq_model_free(m);
}
END_TEST

START_TEST(export_onnx_arguments)
{
    sardfq_model *m = load_model("tests/data/int_vit_w3a3.q.safetensors");
    char *dir = tu_make_tmpdir("api_onnx");
    const char *a = tu_join(dir, "a.onnx"), *b = tu_join(dir, "b.onnx");
    sardfq_export_params ep;
    sardfq_export_default_params(&ep);
    ck_assert_uint_eq(ep.struct_size, sizeof ep);
    ck_assert_int_eq(ep.flavor, SARDFQ_ONNX_EXACT);
    ck_assert_int_eq(ep.batch, 0);
    sardfq_status st = sardfq_model_export_onnx(m, a, &ep);
    if (st == SARDFQ_E_UNSUPPORTED) { /* built without ONNX export: says so */
        ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "ONNX"));
    } else {
        ck_assert_msg(st == SARDFQ_OK, "%s", sardfq_last_error());
        /* deterministic: the same bytes again, and a fixed batch differs */
        ck_assert_int_eq(sardfq_model_export_onnx(m, b, NULL), SARDFQ_OK);
        size_t na, nb;
        uint8_t *fa = tu_read_file(a, &na), *fb = tu_read_file(b, &nb);
        ck_assert(na == nb && memcmp(fa, fb, na) == 0);
        free(fb);
        ep.batch = 4;
        ck_assert_int_eq(sardfq_model_export_onnx(m, b, &ep), SARDFQ_OK);
        fb = tu_read_file(b, &nb);
        ck_assert(na != nb || memcmp(fa, fb, na) != 0);
        free(fa);
        free(fb);
        ep.batch = 0;
        ck_assert_int_eq(tu_count_entries(dir), 2);
    }
    /* bad arguments: refused before anything is written */
    const char *c = tu_join(dir, "c.onnx");
    ck_assert_int_eq(sardfq_model_export_onnx(NULL, c, NULL), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_model_export_onnx(m, NULL, NULL), SARDFQ_E_INVALID_ARG);
    sardfq_export_params bad = ep;
    bad.flavor = 7;
    ck_assert_int_eq(sardfq_model_export_onnx(m, c, &bad), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "flavor"));
    bad = ep;
    bad.batch = -1;
    ck_assert_int_eq(sardfq_model_export_onnx(m, c, &bad), SARDFQ_E_INVALID_ARG);
    bad = ep;
    bad.struct_size = 4;
    ck_assert_int_eq(sardfq_model_export_onnx(m, c, &bad), SARDFQ_E_INVALID_ARG);
    if (st == SARDFQ_OK) {
        /* a target that cannot be replaced (a folder): SARDFQ_E_IO, no
         * temporary file left */
        const char *sub = tu_join(dir, "sub");
        ck_assert_int_eq(mkdir(sub, 0700), 0);
        ck_assert_int_eq(sardfq_model_export_onnx(m, sub, NULL), SARDFQ_E_IO);
        ck_assert_int_eq(tu_count_entries(dir), 3);
        ck_assert_int_eq(sardfq_model_export_onnx(m, tu_join(dir, "no/such/dir.onnx"), NULL), SARDFQ_E_IO);
        ck_assert_int_eq(tu_count_entries(dir), 3);
    }
    sardfq_model_free(m);
    tu_rm_rf(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("default_model");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, default_model_matches_pytorch_count);
    tcase_add_test(tc, evaluate_limit_cancel_and_misuse);
    tcase_add_test(tc, export_onnx_arguments);
    suite_add_tcase(s, tc);
    /* the whole test set through the Swin model: tagged "heavy" (the
     * sanitizer runs skip it; it tests numbers, not memory) */
    tc = tcase_create("swin_model");
    tcase_set_timeout(tc, 600);
    tcase_set_tags(tc, "heavy");
    tcase_add_test(tc, swin_model_matches_pytorch_count);
    tcase_add_test(tc, bench_model_matches_pytorch_count);
    tcase_add_test(tc, bench_s1_model_matches_pytorch_count);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
