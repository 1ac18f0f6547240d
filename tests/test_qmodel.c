/* test_qmodel.c - the quantizer on a whole model (sardfq_quantizer, the
 * quantized forward, save/load), against tests/reference/make_qmodel_fixtures.py
 * (an independent float32 PyTorch implementation of RepQ-ViT's and PSAQ-ViT's
 * calibration of the default model on 32 Fashion-MNIST training images). */
#define SARDFQ_EXPERIMENTAL /* sardfq_quantizer_set_recon_attn */
#include "inspect.h"
#include "qspec.h"
#include "exec.h"
#include "quantizer.h"
#include "recon.h"
#include "sardfq.h"
#include "testutil.h"
#include "vit.h"

#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "qmodel_fmnist.safetensors"

static sardfq_model *load_default(void)
{
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_load(tu_src("examples/models/fmnist_vit.safetensors"), NULL, &m), 0);
    return m;
}

static int argmax(const float *x, int k)
{
    int b = 0;
    for (int i = 1; i < k; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

/* The model's public configuration. */
/* Name from printf-style arguments into buf (256 bytes). */
static const char *vname(char *buf, const char *fmt, va_list ap)
{
    vsnprintf(buf, 256, fmt, ap);
    return buf;
}

/* m's activation quantizer, linear and tensor called fmt... (inspect.h);
 * a name m does not have fails the test. */
static sfq_act_view act_of(const sardfq_model *m, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vname(name, fmt, ap);
    va_end(ap);
    sfq_act_view a;
    ck_assert_msg(sfq_inspect_act(m, name, &a) == 0, "%s", sardfq_last_error());
    return a;
}

static sfq_lin_view lin_of(const sardfq_model *m, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vname(name, fmt, ap);
    va_end(ap);
    sfq_lin_view w;
    ck_assert_msg(sfq_inspect_linear(m, name, &w) == 0, "%s", sardfq_last_error());
    return w;
}

/* The copies tensor_of hands out, freed when the test process ends. */
static float **tensor_copies;
static size_t n_tensor_copies, cap_tensor_copies;

static void free_tensor_copies(void)
{
    for (size_t i = 0; i < n_tensor_copies; i++)
        sfq_free(tensor_copies[i]);
    free(tensor_copies);
    tensor_copies = NULL;
    n_tensor_copies = cap_tensor_copies = 0;
}

/* *count floats (count may be NULL): a copy, valid until the process ends. */
static const float *tensor_of(const sardfq_model *m, size_t *count, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vname(name, fmt, ap);
    va_end(ap);
    float *d = NULL;
    size_t k = 0;
    ck_assert_msg(sfq_inspect_tensor(m, name, &d, &k) == 0, "%s", sardfq_last_error());
    if (n_tensor_copies == cap_tensor_copies) {
        if (!tensor_copies)
            atexit(free_tensor_copies);
        cap_tensor_copies = cap_tensor_copies ? 2 * cap_tensor_copies : 64;
        tensor_copies = realloc(tensor_copies, cap_tensor_copies * sizeof *tensor_copies);
        ck_assert_ptr_nonnull(tensor_copies);
    }
    tensor_copies[n_tensor_copies++] = d;
    if (count)
        *count = k;
    return d;
}

static int ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-30); }

typedef struct {
    int n;        /* quantizer parameters compared */
    int off;      /* relative difference > 1e-5 */
    int big;      /* relative difference > 1e-2 (a flipped quantile candidate) */
    int rows;     /* weight rows with a value off by > 1e-5 */
    double worst; /* largest relative difference */
} cmp_stats;

static void cmp_rel(cmp_stats *c, double r)
{
    c->n++;
    c->off += r > 1e-5;
    c->big += r > 1e-2;
    c->worst = fmax(c->worst, r);
}

static void cmp(cmp_stats *c, double got, double want) { cmp_rel(c, rel(got, want)); }

/* The fixture's tensor "<run>.<name><suffix>"; *k values. */
static float *fixture_run_get(tu_fixture *f, const char *run, const char *name, const char *suffix, size_t *k)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s%s", run, name, suffix);
    return tu_fixture_get(f, key, k);
}

/* Activation quantizer ac (of point `name`) against the fixture's
 * "<run>.<name>.scale" / ".zero"; the fixture has a zero (0) for a log
 * quantizer when log_zero. Zero points, fractional after the
 * reparameterisation, compare relatively (+ 1000). */
static void cmp_act(cmp_stats *into, tu_fixture *f, const char *run, const char *name, const sfq_act_view *ac,
                    int log_zero)
{
    size_t k;
    float *sc = fixture_run_get(f, run, name, ".scale", &k);
    cmp(into, ac->scale, sc[0]);
    free(sc);
    if (ac->kind == SFQ_INSPECT_UNIFORM || log_zero) {
        float *zr = fixture_run_get(f, run, name, ".zero", &k);
        if (ac->kind == SFQ_INSPECT_UNIFORM)
            cmp(into, ac->zero + 1000.0, zr[0] + 1000.0);
        else
            ck_assert_float_eq(zr[0], 0.0f);
        free(zr);
    }
}

/* The per-row weight quantizers qw of linear `name` against the
 * fixture's "<run>.<name>.weight.scale" / ".zero"; counts the rows off. */
static void cmp_weight_rows(cmp_stats *into, tu_fixture *f, const char *run, const char *name,
                            const sfq_lin_view *qw)
{
    size_t k;
    float *sc = fixture_run_get(f, run, name, ".weight.scale", &k);
    float *zr = fixture_run_get(f, run, name, ".weight.zero", &k);
    ck_assert_int_eq((int)k, qw->rows);
    for (size_t r = 0; r < k; r++) {
        const int before = into->off;
        cmp(into, qw->row[r].scale, sc[r]);
        cmp(into, qw->row[r].zero + 1000.0, zr[r] + 1000.0);
        into->rows += into->off > before;
    }
    free(sc);
    free(zr);
}

/* Which statistics (an index) the quantizer of the activation point or
 * linear called name is counted in. */
typedef int (*quant_class)(const char *name);

/* Every active activation and weight quantizer of qm (the model being
 * calibrated) against the fixture (cmp_act, cmp_weight_rows), into
 * stats[act_class / lin_class]. Counts the active points and linears. */
static void compare_quantizers(cmp_stats *stats, const sardfq_model *qm, tu_fixture *f, const char *run,
                               int log_zero, quant_class act_class, quant_class lin_class, int *points,
                               int *linears)
{
    char pt[96];
    *points = *linears = 0;
    for (int i = 0; i < sfq_inspect_act_count(qm); i++) {
        ck_assert_int_eq(sfq_inspect_act_name(qm, i, pt, sizeof pt), 0);
        const sfq_act_view a = act_of(qm, "%s", pt);
        if (a.kind) {
            cmp_act(&stats[act_class(pt)], f, run, pt, &a, log_zero);
            ++*points;
        }
    }
    for (int i = 0; i < sfq_inspect_linear_count(qm); i++) {
        ck_assert_int_eq(sfq_inspect_linear_name(qm, i, pt, sizeof pt), 0);
        const sfq_lin_view w = lin_of(qm, "%s", pt);
        if (w.bits) {
            cmp_weight_rows(&stats[lin_class(pt)], f, run, pt, &w);
            ++*linears;
        }
    }
}

/* Calibrate the default model with the fixture's images. */
static sardfq_quantizer *calibrated(sardfq_model *m, tu_fixture *f, int scheme, int w, int a)
{
    sardfq_quant_params p;
    sardfq_quant_default_params(&p);
    p.weight_bits = w;
    p.act_bits = a;
    p.scheme = scheme;
    sardfq_quantizer *q = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(m, &p, &q), 0);
    size_t n;
    float *calib = tu_fixture_get(f, "calib.images", &n);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, calib, (int)(n / 784)), 0);
    free(calib);
    return q;
}

/* Open fixture into f and calibrate m with RepQ-ViT at w / a bits on its
 * images. */
static sardfq_quantizer *repq_calibrated(sardfq_model *m, tu_fixture *f, const char *fixture, int w, int a)
{
    tu_fixture_open(f, fixture);
    return calibrated(m, f, SARDFQ_SCHEME_REPQ, w, a);
}

/* Logits of model m on the fixture's evaluation images; *n images. */
static float *eval_logits(sardfq_model *m, tu_fixture *f, int *n)
{
    size_t ne;
    float *img = tu_fixture_get(f, "eval.images", &ne);
    *n = (int)(ne / 784);
    float *lg = malloc(sizeof(float) * 10 * (size_t)*n);
    ck_assert_int_eq(sardfq_model_forward(m, img, *n, lg), 0);
    free(img);
    return lg;
}

static void compare_logits(const char *what, const float *got, const float *want, int n, int min_agree,
                           double max_diff)
{
    int agree = 0;
    double worst = 0, scale = 0;
    for (int i = 0; i < n; i++) {
        agree += argmax(got + 10 * i, 10) == argmax(want + 10 * i, 10);
        for (int j = 0; j < 10; j++) {
            worst = fmax(worst, fabs(got[10 * i + j] - want[10 * i + j]));
            scale = fmax(scale, fabs(want[10 * i + j]));
        }
    }
    fprintf(stderr, "%s: arg-max agrees on %d/%d, max |logit diff| %.3g (max |logit| %.3g)\n", what, agree,
            n, worst, scale);
    ck_assert_int_ge(agree, min_agree);
    ck_assert_double_le(worst, max_diff * scale);
}

/* Finalize q, compare the logits on the evaluation images with the
 * fixture's "<run>.logits", and free everything. */
static void finish_case(sardfq_quantizer *q, sardfq_model *m, tu_fixture *f, const char *run, int min_agree,
                        double max_diff)
{
    sardfq_model *fin = NULL;
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &fin), 0);
    int n;
    float *lg = eval_logits(fin, f, &n);
    char name[96];
    snprintf(name, sizeof name, "%s.logits", run);
    size_t k;
    float *want = tu_fixture_get(f, name, &k);
    compare_logits(run, lg, want, n, min_agree, max_diff);
    free(lg);
    free(want);
    sardfq_model_free(fin);
    sardfq_quantizer_free(q);
    tu_fixture_close(f);
    sardfq_model_free(m);
}

enum { VIT_EARLY, VIT_ACTS, VIT_WFIXED, VIT_WTS, VIT_N };

/* Before the first point fed by per-channel-reparameterised data downstream
 * of block 0's attention, C and PyTorch see the same activations up to the
 * last bit or two: the image, and block 0's attention points up to the
 * projection's input (not its output). */
static int vit_point_class(const char *name)
{
    const int early = strcmp(name, "patch_embed.input") == 0 ||
                      (strncmp(name, "blocks.0.attn.", 14) == 0 && strcmp(name, "blocks.0.attn.proj.output") != 0);
    return early ? VIT_EARLY : VIT_ACTS;
}

/* qkv and fc1 are searched on reparameterised weights, which depend on the
 * (diverging) activations; the others only on the FP weights. */
static int vit_linear_class(const char *name)
{
    return ends_with(name, ".attn.qkv") || ends_with(name, ".mlp.fc1") ? VIT_WTS : VIT_WFIXED;
}

/* RepQ-ViT: every quantizer parameter and the logits against PyTorch. */
static void repq_case(const char *run, int w, int a, int min_agree, double max_diff, int max_tie_rows,
                      double max_act_rel)
{
    sardfq_model *m = load_default();
    tu_fixture f;
    sardfq_quantizer *q = repq_calibrated(m, &f, FIX, w, a);
    const sardfq_model *qm = sfq_quantizer_model(q);
    ck_assert_ptr_nonnull(qm);
    const int depth = tu_info(m).depth;
    char name[200];
    cmp_stats st[VIT_N] = {{0}};
    int points, linears;
    compare_quantizers(st, qm, &f, run, 0, vit_point_class, vit_linear_class, &points, &linears);
    const cmp_stats *early = &st[VIT_EARLY], *acts = &st[VIT_ACTS], *wfixed = &st[VIT_WFIXED], *wts = &st[VIT_WTS];
    /* the reparameterised LayerNorms */
    cmp_stats ln = {0};
    for (int l = 0; l < depth; l++) {
        const char *nm[4] = {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"};
        for (int t = 0; t < 4; t++) {
            size_t k, km;
            const float *mine = tensor_of(qm, &km, "blocks.%d.%s", l, nm[t]);
            snprintf(name, sizeof name, "%s.blocks.%d.%s", run, l, nm[t]);
            float *g = tu_fixture_get(&f, name, &k);
            ck_assert_uint_eq(km, k);
            for (size_t c = 0; c < k; c++)
                cmp(&ln, mine[c] + 1.0, g[c] + 1.0);
            free(g);
        }
    }
    fprintf(stderr,
            "%s: image + block-0 attention quantizers %d values, %d off by > 1e-5 (worst %.3g); later "
            "activation quantizers %d, %d off (worst %.3g); data-independent weight rows %d, %d off "
            "(worst %.3g); reparameterised weight rows %d, %d off (worst %.3g); LayerNorm %d, %d off "
            "(worst %.3g)\n",
            run, early->n, early->off, early->worst, acts->n, acts->off, acts->worst, wfixed->n, wfixed->off,
            wfixed->worst, wts->n, wts->off, wts->worst, ln.n, ln.off, ln.worst);
    ck_assert_int_eq(early->off, 0);
    ck_assert_int_le(wfixed->off, max_tie_rows);
    ck_assert_double_le(acts->worst, max_act_rel);
    finish_case(q, m, &f, run, min_agree, max_diff);
}

/* Tolerances. C and PyTorch sum in different orders (last-bit differences,
 * e.g. the mean of 96 scales in the reparameterisation); through a chain of
 * quantile searches on quantized activations those move values across
 * rounding boundaries, so the later quantizers and the logits drift apart
 * by amounts that grow with depth and with fewer bits. What is exact: the
 * image and block-0 attention quantizers (1e-5), and every weight quantizer
 * that depends only on the FP weights, except rows the fixture script lists
 * as within 1e-5 of a tie between two candidates (0 at 8 bits, 2 at 4).
 * The end-to-end check is top1_matches_pytorch. Measured, later activation
 * quantizers at W8A8: worst 7.6e-4 with OpenBLAS's Cooperlake kernels, 0.163
 * with its Haswell kernels (OPENBLAS_CORETYPE=Haswell), where one search
 * lands on the neighbouring candidate, as at W4A4 (0.168 with either); the
 * limit is W4A4's. */
START_TEST(repq_w8a8_matches_pytorch) { repq_case("repq_w8a8", 8, 8, 126, 0.1, 0, 0.25); }
END_TEST

START_TEST(repq_w4a4_matches_pytorch) { repq_case("repq_w4a4", 4, 4, 122, 0.25, 2, 0.25); }
END_TEST

/* Top-1 on the whole Fashion-MNIST test set within 0.3 points (30 images)
 * of the PyTorch reference, for all four runs. */
START_TEST(top1_matches_pytorch)
{
    static const struct {
        const char *run;
        int scheme, w, a;
    } runs[] = {{"repq_w8a8", SARDFQ_SCHEME_REPQ, 8, 8},
                {"repq_w4a4", SARDFQ_SCHEME_REPQ, 4, 4},
                {"minmax_w8a8", SARDFQ_SCHEME_MINMAX, 8, 8},
                {"minmax_w4a8", SARDFQ_SCHEME_MINMAX, 4, 8}};
    sardfq_model *m = load_default();
    tu_fixture f;
    tu_fixture_open(&f, FIX);
    sardfq_dataset *d = NULL;
    ck_assert_msg(sardfq_dataset_open("/usr/share/datasets/fashion-mnist", m, &d) == 0,
                  "install dataset-fashion-mnist: %s", sardfq_last_error());
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        sardfq_quantizer *q = calibrated(m, &f, runs[r].scheme, runs[r].w, runs[r].a);
        sardfq_model *fin = NULL;
        ck_assert_int_eq(sardfq_quantizer_finalize(q, &fin), 0);
        sardfq_eval_result res;
        res.struct_size = sizeof res;
        ck_assert_int_eq(sardfq_evaluate(fin, d, NULL, &res), 0);
        char name[96];
        snprintf(name, sizeof name, "%s.test_correct", runs[r].run);
        size_t k;
        float *want = tu_fixture_get(&f, name, &k);
        fprintf(stderr, "%s: top-1 %lld / %lld, PyTorch %d\n", runs[r].run, (long long)res.top1_correct,
                (long long)res.n, (int)want[0]);
        ck_assert_int_eq(res.n, 10000);
        ck_assert_int_le(llabs(res.top1_correct - (long long)want[0]), 30);
        free(want);
        sardfq_model_free(fin);
        sardfq_quantizer_free(q);
    }
    sardfq_dataset_free(d);
    tu_fixture_close(&f);
    sardfq_model_free(m);
}
END_TEST

/* PSAQ-ViT's min/max: the recorded ranges give the same quantizers, and the
 * logits agree. */
static void minmax_case(const char *run, int w, int a, int min_agree, double max_diff)
{
    static const char *const map[][2] = {
        {"patch_embed.input", "input"},     {"attn.qkv.input", "norm1.output"},
        {"attn.proj.input", "attn.matmul2.output"}, {"mlp.fc1.input", "norm2.output"},
        {"mlp.fc2.input", "mlp.act"}};
    sardfq_model *m = load_default();
    tu_fixture f;
    tu_fixture_open(&f, FIX);
    sardfq_quantizer *q = calibrated(m, &f, SARDFQ_SCHEME_MINMAX, w, a);
    const sardfq_model *qm = sfq_quantizer_model(q);
    cmp_stats st = {0};
    char name[200], pt[96], ref[96];
    int points = 0;
    for (int i = 0; i < sfq_inspect_act_count(qm); i++) {
        ck_assert_int_eq(sfq_inspect_act_name(qm, i, pt, sizeof pt), 0);
        const sfq_act_view ac = act_of(qm, "%s", pt);
        if (!ac.kind)
            continue;
        points++;
        snprintf(ref, sizeof ref, "%s", pt);
        for (size_t t = 0; t < sizeof map / sizeof map[0]; t++) {
            const char *hit = strstr(pt, map[t][0]);
            if (hit && strcmp(hit, map[t][0]) == 0) {
                snprintf(ref, sizeof ref, "%.*s%s", (int)(hit - pt), pt, map[t][1]);
                break;
            }
        }
        size_t k;
        snprintf(name, sizeof name, "%s.%s.min", run, ref);
        float *mn = tu_fixture_get(&f, name, &k);
        snprintf(name, sizeof name, "%s.%s.max", run, ref);
        float *mx = tu_fixture_get(&f, name, &k);
        sfq_uq want;
        ck_assert_int_eq(sfq_psaq_act(mn[0], mx[0], ac.bits, &want), 0);
        cmp(&st, ac.u.scale, want.scale);
        cmp(&st, ac.u.zero + 1000.0, want.zero + 1000.0);
        free(mn);
        free(mx);
    }
    fprintf(stderr, "%s: %d activation points, %d values off by > 1e-5 (worst %.3g)\n", run, points, st.off,
            st.worst);
    ck_assert_int_eq(points, 47);
    ck_assert_int_le(st.off, 2);
    finish_case(q, m, &f, run, min_agree, max_diff);
}

START_TEST(minmax_w8a8_matches_pytorch) { minmax_case("minmax_w8a8", 8, 8, 127, 0.02); }
END_TEST

START_TEST(minmax_w4a8_matches_pytorch) { minmax_case("minmax_w4a8", 4, 8, 125, 0.05); }
END_TEST

/* The RepQ W4A4 calibration of m on its fixture, the reparameterised FP
 * model rp (no rounding), both models' logits a, b on the n evaluation
 * images, and max |b - a| (d) and max |b - PyTorch's reparameterised
 * logits "fp_reparam_w4a4.logits"| (d_torch). */
typedef struct {
    sardfq_model *m, *rp;
    tu_fixture f;
    sardfq_quantizer *q;
    int n;
    float *a, *b;
    double d, d_torch;
} reparam_case;

static void reparam_open(reparam_case *r, sardfq_model *m, const char *fixture)
{
    r->m = m;
    r->q = repq_calibrated(m, &r->f, fixture, 4, 4);
    r->rp = NULL;
    ck_assert_int_eq(sfq_quantizer_reparam_fp(r->q, &r->rp), 0);
    r->a = eval_logits(m, &r->f, &r->n);
    r->b = eval_logits(r->rp, &r->f, &r->n);
    size_t k;
    float *want = tu_fixture_get(&r->f, "fp_reparam_w4a4.logits", &k);
    ck_assert_int_eq((int)k, 10 * r->n);
    r->d = tu_max_abs_diff(r->b, r->a, k);
    r->d_torch = tu_max_abs_diff(r->b, want, k);
    free(want);
}

static void reparam_close(reparam_case *r)
{
    free(r->a);
    free(r->b);
    sardfq_model_free(r->rp);
    sardfq_quantizer_free(r->q);
    tu_fixture_close(&r->f);
    sardfq_model_free(r->m);
}

/* The reparameterised FP model (LayerNorm / r - b, W r, bias + W r b, no
 * rounding) gives the original logits within 1e-4 (of max |logit|), and
 * PyTorch's reparameterised logits. */
START_TEST(reparam_preserves_logits)
{
    reparam_case r;
    reparam_open(&r, load_default(), FIX);
    const double s = tu_max_abs(r.a, (size_t)r.n * 10);
    fprintf(stderr, "reparameterised FP vs FP: max |diff| %.3g of max |logit| %.3g; vs PyTorch %.3g\n", r.d, s,
            r.d_torch);
    ck_assert_double_le(r.d, 1e-4 * s);
    ck_assert_double_le(r.d_torch, 1e-4 * s);
    /* and it really changed the parameters */
    size_t ka, kb;
    const float *ln_rp = tensor_of(r.rp, &ka, "blocks.0.norm1.weight"), *ln_m = tensor_of(r.m, &kb, "blocks.0.norm1.weight");
    ck_assert(ka >= 96 && kb >= 96);
    ck_assert(memcmp(ln_rp, ln_m, sizeof(float) * 96) != 0);
    reparam_close(&r);
}
END_TEST

/* Everything kept in floating point: the quantized forward (two-phase
 * attention, hooks) is bitwise the FP forward. */
START_TEST(all_fp_override_is_identity)
{
    sardfq_model *m = load_default();
    tu_fixture f;
    tu_fixture_open(&f, FIX);
    sardfq_quantizer *q = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(m, NULL, &q), 0);
    ck_assert_int_eq(sardfq_quantizer_set_layer(q, "*", 0, 0), 0);
    size_t n;
    float *calib = tu_fixture_get(&f, "calib.images", &n);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, calib, 32), 0);
    sardfq_model *fin = NULL;
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &fin), 0);
    int ne;
    float *a = eval_logits(m, &f, &ne), *b = eval_logits(fin, &f, &ne);
    ck_assert_int_eq(memcmp(a, b, sizeof(float) * 10 * (size_t)ne), 0);
    free(a);
    free(b);
    free(calib);
    sardfq_model_free(fin);
    sardfq_quantizer_free(q);
    tu_fixture_close(&f);
    sardfq_model_free(m);
}
END_TEST

/* Overrides: the head at 8 bits, blocks.*.mlp.fc2 in FP. */
START_TEST(layer_overrides)
{
    sardfq_model *m = load_default();
    tu_fixture f;
    tu_fixture_open(&f, FIX);
    sardfq_quantizer *q = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(m, NULL, &q), 0);
    ck_assert_int_eq(sardfq_quantizer_set_layer(q, "head", 8, 8), 0);
    ck_assert_int_eq(sardfq_quantizer_set_layer(q, "blocks.*.mlp.fc2", 0, 0), 0);
    ck_assert_int_eq(sardfq_quantizer_set_layer(q, "no.such.layer", 8, 8), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_quantizer_set_layer(q, "head", 9, 8), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_quantizer_set_layer(q, "head", 8, 1), SARDFQ_E_INVALID_ARG);
    size_t n;
    float *calib = tu_fixture_get(&f, "calib.images", &n);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, calib, 32), 0);
    const sardfq_model *qm = sfq_quantizer_model(q);
    const int d = tu_info(m).depth;
    ck_assert_int_eq(lin_of(qm, "head").bits, 8);
    ck_assert_int_eq(act_of(qm, "head.input").bits, 8);
    ck_assert_int_eq(lin_of(qm, "blocks.1.mlp.fc1").bits, 4);
    for (int l = 0; l < d; l++) {
        ck_assert_int_eq(lin_of(qm, "blocks.%d.mlp.fc2", l).bits, 0);
        ck_assert_int_eq(act_of(qm, "blocks.%d.mlp.fc2.input", l).kind, SFQ_INSPECT_OFF);
        /* an FP layer keeps its FP weight */
        size_t ka, kb;
        const float *wq = tensor_of(qm, &ka, "blocks.%d.mlp.fc2.weight", l);
        const float *wf = tensor_of(m, &kb, "blocks.%d.mlp.fc2.weight", l);
        ck_assert(ka >= 96 * 192 && kb >= 96 * 192);
        ck_assert_int_eq(memcmp(wq, wf, sizeof(float) * 96 * 192), 0);
    }
    free(calib);
    sardfq_quantizer_free(q);
    tu_fixture_close(&f);
    sardfq_model_free(m);
}
END_TEST

static sardfq_model *load_swin(void);
#define QSWIN "qswin_fmnist.safetensors"

/* Swin min/max limits (minmax_swin_case, swin_minmax_top1_matches_pytorch),
 * about 10x what was measured (tests/reference/README.md): activation
 * quantizers 2.3e-7 relative, weight row scales identical, logits 1.1 % of
 * max |logit| with arg-max 127/128 (W8A8) and 128/128 (W4A8). */
#define MM_SWIN_ACT_W8A8 2.5e-6
#define MM_SWIN_ACT_W4A8 2.5e-6
#define MM_SWIN_W 1e-7
#define MM_SWIN_AGREE_W8A8 118
#define MM_SWIN_AGREE_W4A8 118
#define MM_SWIN_DIFF_W8A8 0.1
#define MM_SWIN_DIFF_W4A8 0.1
#define MM_SWIN_TOP1 30

/* Save + load gives bitwise the same logits (quantized at 4 and 8 bits,
 * both schemes, and the FP model; the ViT, or the Swin when swin); 4-bit
 * codes are packed two per byte. */
static void round_trip_of(int swin, int scheme, int w, int a)
{
    sardfq_model *m = swin ? load_swin() : load_default();
    tu_fixture f;
    tu_fixture_open(&f, swin ? QSWIN : FIX);
    sardfq_model *fin = NULL;
    if (w) {
        sardfq_quantizer *q = calibrated(m, &f, scheme, w, a);
        ck_assert_int_eq(sardfq_quantizer_finalize(q, &fin), 0);
        sardfq_quantizer_free(q);
    }
    sardfq_model *src = w ? fin : m;
    char *dir = tu_make_tmpdir("sfq_qsave");
    const char *path = tu_join(dir, "q.safetensors");
    ck_assert_int_eq(sardfq_model_save(src, path), 0);
    sardfq_model *back = NULL;
    ck_assert_msg(sardfq_model_load(path, NULL, &back) == 0, "%s", sardfq_last_error());
    int n;
    float *la = eval_logits(src, &f, &n), *lb = eval_logits(back, &f, &n);
    ck_assert_int_eq(memcmp(la, lb, sizeof(float) * 10 * (size_t)n), 0);
    if (w) {
        ck_assert_str_eq(sardfq_model_get_metadata(back, "sardfq.quant.scheme"),
                         scheme == SARDFQ_SCHEME_REPQ ? "repq" : "minmax");
        /* the file: codes U8, packed at <= 4 bits */
        size_t len;
        uint8_t *buf = tu_read_file(path, &len);
        sfq_st_file st;
        ck_assert_int_eq(sfq_st_parse(buf, len, &st), 0);
        /* fc1 of the first block: 192 x 96 (ViT), 192 x 48 (Swin) */
        const char *fc1 = swin ? "layers.0.blocks.0.mlp.fc1.weight" : "blocks.0.mlp.fc1.weight";
        const int cols = swin ? 48 : 96;
        char codes[96];
        snprintf(codes, sizeof codes, "%s_codes", fc1);
        const sfq_st_tensor *t = sfq_st_find(&st, codes);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(t->dtype, SFQ_DT_U8);
        ck_assert_int_eq(t->shape[0], 192);
        ck_assert_int_eq(t->shape[1], w <= 4 ? cols / 2 : cols);
        ck_assert_ptr_null(sfq_st_find(&st, fc1));
        sfq_st_release(&st);
        /* saving the loaded model again (its weights held only as codes,
         * written from the packed codes) gives the same file, byte for
         * byte, and the same logits again */
        ck_assert_int_eq(sardfq_model_save(back, path), 0);
        size_t len2;
        uint8_t *buf2 = tu_read_file(path, &len2);
        ck_assert_msg(len2 == len && memcmp(buf, buf2, len) == 0, "the loaded model saves a different file");
        free(buf2);
        free(buf);
        sardfq_model *again = NULL;
        ck_assert_int_eq(sardfq_model_load(path, NULL, &again), 0);
        float *lc = eval_logits(again, &f, &n);
        ck_assert_int_eq(memcmp(la, lc, sizeof(float) * 10 * (size_t)n), 0);
        free(lc);
        sardfq_model_free(again);
    }
    free(la);
    free(lb);
    sardfq_model_free(back);
    sardfq_model_free(fin);
    tu_rm_rf(dir);
    tu_fixture_close(&f);
    sardfq_model_free(m);
}

static void round_trip(int scheme, int w, int a) { round_trip_of(0, scheme, w, a); }

START_TEST(save_load_repq_w4a4) { round_trip(SARDFQ_SCHEME_REPQ, 4, 4); }
END_TEST
START_TEST(save_load_repq_w8a8) { round_trip(SARDFQ_SCHEME_REPQ, 8, 8); }
END_TEST
START_TEST(save_load_minmax_w3a4) { round_trip(SARDFQ_SCHEME_MINMAX, 3, 4); }
END_TEST
/* the Swin's min/max points (patch_embed.norm.output, the reductions'
 * outputs, the scores, ...) are saved under their names and read back */
START_TEST(save_load_swin_minmax_w3a4) { round_trip_of(1, SARDFQ_SCHEME_MINMAX, 3, 4); }
END_TEST
START_TEST(save_load_swin_minmax_w8a8) { round_trip_of(1, SARDFQ_SCHEME_MINMAX, 8, 8); }
END_TEST
START_TEST(save_load_fp) { round_trip(0, 0, 0); }
END_TEST

START_TEST(invalid_arguments)
{
    sardfq_model *m = load_default();
    sardfq_quant_params p;
    sardfq_quant_default_params(&p);
    sardfq_quantizer *q = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(NULL, &p, &q), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_quantizer_create(m, &p, NULL), SARDFQ_E_INVALID_ARG);
    const int bad[][2] = {{1, 4}, {9, 4}, {4, 1}, {4, 9}, {0, 4}, {4, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p.weight_bits = bad[i][0];
        p.act_bits = bad[i][1];
        ck_assert_int_eq(sardfq_quantizer_create(m, &p, &q), SARDFQ_E_INVALID_ARG);
        ck_assert_ptr_null(q);
    }
    sardfq_quant_default_params(&p);
    p.scheme = 7;
    ck_assert_int_eq(sardfq_quantizer_create(m, &p, &q), SARDFQ_E_INVALID_ARG);
    sardfq_quant_default_params(&p);
    ck_assert_int_eq(sardfq_quantizer_create(m, &p, &q), 0);
    sardfq_model *out = NULL;
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &out), SARDFQ_E_STATE);
    float img[784 * 2];
    for (int i = 0; i < 784 * 2; i++)
        img[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, img, 0), SARDFQ_E_INVALID_ARG); /* empty set */
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, NULL, 2), SARDFQ_E_INVALID_ARG);
    img[900] = NAN;
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, img, 2), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &out), SARDFQ_E_STATE); /* nothing kept */
    img[900] = 0.5f;
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, img, 2), 0);
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &out), 0);
    /* a quantized model: no backward, no second quantization */
    sardfq_quantizer *q2 = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(out, NULL, &q2), SARDFQ_E_UNSUPPORTED);
    sardfq_state *s = NULL;
    ck_assert_int_eq(sardfq_state_create(out, &s), 0);
    float logits[20];
    ck_assert_int_eq(sardfq_model_forward_ex(out, s, img, 2, SARDFQ_FORWARD_BACKWARD, logits),
                     SARDFQ_E_UNSUPPORTED);
    ck_assert_int_eq(sardfq_model_forward_ex(out, s, img, 2, SARDFQ_FORWARD_ATTENTION, logits), 0);
    sardfq_generator *g = NULL;
    ck_assert_int_eq(sardfq_generator_create(out, NULL, &g), SARDFQ_E_UNSUPPORTED);
    ck_assert_int_eq(sardfq_model_save(out, NULL), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_model_save(NULL, "x"), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_model_save(out, "/nonexistent-dir/x.safetensors"), SARDFQ_E_IO);
    sardfq_state_free(s);
    sardfq_model_free(out);
    sardfq_quantizer_free(q);
    sardfq_quantizer_free(NULL);
    sardfq_model_free(m);
}
END_TEST


/* ---- block reconstruction ------------------------------------------------ */

#define ATTN_W 100.0f /* the distillation weight of the gradient checks */

static double rblock_loss(sfq_rblock *rb, const float *x, const float *tgt, int frozen)
{
    double loss = -1;
    ck_assert_int_eq(sfq_rblock_forward(rb, x, tgt, frozen, &loss), 0);
    return loss;
}

/* The backward of a quantized block against central finite differences of
 * the STE surrogate (rounding offsets frozen at the current parameters):
 * every activation step size, and rounding variables of all four weights.
 * Block l (named `block`) of model m (FP) calibrated by q on n images. */
static void check_recon_gradients(const sardfq_model *m, sardfq_quantizer *q, const float *calib, int n, int l,
                                  const char *block, float hv, double vlimit, float attn_w)
{
    const sardfq_model *work = sfq_quantizer_model(q);
    sardfq_model *rp = NULL;
    ck_assert_int_eq(sfq_quantizer_reparam_fp(q, &rp), 0);
    /* set up as the driver does: block l of the calibrated model, AdaRound
     * from the reparameterised FP block's weights */
    sfq_rblock rb;
    ck_assert_int_eq(sfq_rblock_setup(&rb, work, rp, l, n), 0);
    float *xin = malloc(sizeof(float) * rb.out_floats), *tgt = malloc(sizeof(float) * rb.out_floats);
    ck_assert_int_eq(sfq_forward_blocks(work, calib, n, l, xin), 0);
    ck_assert_int_eq(sfq_exec_forward_through(m, calib, n, l, tgt), 0);
    float *ptgt = NULL;
    if (attn_w > 0) {
        /* head-wise attention distillation: the FP block's probabilities
         * (block l of rp on the FP stream entering it), as the driver takes
         * them */
        float *xf = malloc(sizeof(float) * rb.out_floats);
        ck_assert_int_eq(sfq_exec_forward_blocks(m, NULL, calib, n, l, xf), 0);
        sardfq_state *st = NULL;
        const float *y;
        ck_assert_int_eq(sardfq_state_create(rp, &st), 0);
        ck_assert_int_eq(sfq_exec_block_forward(rp, st, NULL, l, xf, n, &y), 0);
        int64_t rows;
        int cols;
        const float *P = sfq_exec_block_probs(rp, st, &rows, &cols);
        ck_assert_ptr_nonnull(P);
        ptgt = malloc(sizeof(float) * (size_t)rows * cols);
        memcpy(ptgt, P, sizeof(float) * (size_t)rows * cols);
        ck_assert_int_eq(sfq_rblock_set_attn_target(&rb, attn_w, ptgt, rows, cols), 0);
        ck_assert_int_eq(sfq_rblock_set_attn_target(&rb, attn_w, ptgt, rows, cols + 1), SARDFQ_E_SHAPE);
        sardfq_state_free(st);
        free(xf);
    }
    for (int k = 0; k < 4; k++) {
        ck_assert_int_gt(rb.wbits[k], 0);
        /* move the rounding variables off their initial values so that
         * h'(V) is not the same everywhere */
        for (size_t j = 0; j < rb.wsize[k]; j++)
            rb.ada[k].v[j] += 0.3f * (float)((int)(j * 2654435761u % 7) - 3);
    }
    /* the uniform activation slots in recon.h's order (qkv input, q, k, v,
     * proj input, fc1 input, fc2 input), and the log quantizer of probs */
    static const char *const slot[SFQ_RQ_COUNT] = {"attn.qkv.input", "attn.matmul1.a", "attn.matmul1.b",
                                                   "attn.matmul2.b", "attn.proj.input", "mlp.fc1.input",
                                                   "mlp.fc2.input"};
    for (int sl = 0; sl < SFQ_RQ_COUNT; sl++) {
        const sfq_act_view a = act_of(work, "%s.%s", block, slot[sl]);
        ck_assert(rb.on[sl]);
        ck_assert(a.kind == SFQ_INSPECT_UNIFORM && a.u.scale == rb.act[sl].scale);
    }
    ck_assert(rb.log_on);
    printf("%s:\n", block);
    const double L0 = rblock_loss(&rb, xin, tgt, 0);
    ck_assert_int_eq(sfq_rblock_backward(&rb, tgt), 0);
    ck_assert(L0 > 0);
    if (attn_w > 0) { /* the term must carry weight in the checked loss */
        printf("loss %.6g, of which attention distillation %.6g x %.6g\n", L0, (double)attn_w, rb.attn_loss);
        ck_assert(rb.attn_loss > 0 && attn_w * rb.attn_loss > 0.3 * L0);
    }
    /* frozen forward at the same parameters reproduces the loss */
    ck_assert_double_eq_tol(rblock_loss(&rb, xin, tgt, 1), L0, 1e-9 * L0);
    double worst = 0;
    for (int sl = 0; sl < SFQ_RQ_COUNT; sl++) {
        const float s0 = rb.act[sl].scale, hstep = s0 * 1e-3f;
        rb.act[sl].scale = s0 + hstep;
        const double lp = rblock_loss(&rb, xin, tgt, 1);
        rb.act[sl].scale = s0 - hstep;
        const double lm = rblock_loss(&rb, xin, tgt, 1);
        rb.act[sl].scale = s0;
        const double fd = (lp - lm) / (2.0 * hstep), an = rb.gs[sl];
        const double err = fabs(fd - an) / fmax(fabs(fd), 1e-3 * L0 / s0);
        printf("step size slot %d: analytic %.6g finite difference %.6g (rel %.2g)\n", sl, an, fd, err);
        worst = fmax(worst, err);
    }
    ck_assert_double_le(worst, 1e-2);
    /* rounding variables: the directional derivative of each weight's V
     * along a fixed +-1 direction */
    double vworst = 0;
    for (int k = 0; k < 4; k++) {
        const size_t nw = rb.wsize[k];
        float *v0 = malloc(sizeof(float) * nw);
        memcpy(v0, rb.ada[k].v, sizeof(float) * nw);
        double an = 0;
        for (size_t j = 0; j < nw; j++)
            an += (j * 2654435761u >> 7) & 1 ? rb.gv[k][j] : -rb.gv[k][j];
        double lpm[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            for (size_t j = 0; j < nw; j++)
                rb.ada[k].v[j] = v0[j] + (sgn ? -hv : hv) * ((j * 2654435761u >> 7) & 1 ? 1.0f : -1.0f);
            lpm[sgn] = rblock_loss(&rb, xin, tgt, 1);
        }
        memcpy(rb.ada[k].v, v0, sizeof(float) * nw);
        const double fd = (lpm[0] - lpm[1]) / (2.0 * hv), err = fabs(fd - an) / fabs(fd);
        printf("rounding variables of weight %d: directional derivative %.6g, finite difference %.6g (rel %.2g)\n",
                k, an, fd, err);
        vworst = fmax(vworst, err);
        free(v0);
    }
    ck_assert_double_le(vworst, vlimit);
    /* the rounding regulariser's gradient (beta = 4) along a +-1 direction
     * over the entries away from its kinks (h clamped at 0 or 1, h = 0.5) */
    {
        const size_t nw = rb.wsize[2];
        float *g = calloc(nw, sizeof(float)), *v0 = malloc(sizeof(float) * nw), *dir = calloc(nw, sizeof(float));
        memcpy(v0, rb.ada[2].v, sizeof(float) * nw);
        sfq_ada_reg(&rb.ada[2], nw, 4.0f, 0.01f, g);
        double an = 0, gabs = 0, r[2];
        int used = 0;
        for (size_t j = 0; j < nw; j++) {
            const float sg = 1.0f / (1.0f + expf(-v0[j])), h = sg * 1.2f - 0.1f;
            if (h > 0.05f && h < 0.95f && fabsf(2 * h - 1) > 0.1f) {
                dir[j] = (j * 2654435761u >> 7) & 1 ? 1.0f : -1.0f;
                an += dir[j] * g[j];
                gabs += fabs(g[j]);
                used++;
            }
        }
        for (int sgn = 0; sgn < 2; sgn++) {
            for (size_t j = 0; j < nw; j++)
                rb.ada[2].v[j] = v0[j] + (sgn ? -2e-2f : 2e-2f) * dir[j];
            r[sgn] = sfq_ada_reg(&rb.ada[2], nw, 4.0f, 0.01f, NULL);
        }
        memcpy(rb.ada[2].v, v0, sizeof(float) * nw);
        /* step 2e-2 (h moves by at most 0.006, inside the kink margins):
         * at 1e-3 the float rounding of h over the ~1000 entries was 6% of
         * the difference (failed under ASan with Haswell kernels) */
        const double fd = (r[0] - r[1]) / 4e-2;
        printf("rounding regulariser (%d entries): directional derivative %.6g, finite difference %.6g, "
               "sum |g| %.6g\n", used, an, fd, gabs);
        ck_assert_int_ge(used, 1000);
        /* the +-1 direction can cancel the terms down to 1e-5 of sum |g|,
         * where the float h's rounding dominates the difference; measured
         * error 8e-7 of sum |g| on the ViT block */
        ck_assert_double_le(fabs(fd - an), 1e-2 * fmax(fabs(fd), 1e-3 * gabs));
        free(g);
        free(v0);
        free(dir);
    }
    sfq_rblock_free(&rb);
    free(xin);
    free(tgt);
    free(ptgt);
    sardfq_model_free(rp);
}

START_TEST(recon_gradients_match_finite_differences)
{
    sardfq_model *m = load_default();
    tu_fixture f;
    tu_fixture_open(&f, FIX);
    sardfq_quantizer *q = calibrated(m, &f, SARDFQ_SCHEME_REPQ, 4, 4);
    size_t nc;
    float *calib = tu_fixture_get(&f, "calib.images", &nc);
    /* fc1's rounding variables (weight 2) reach the loss through the 4-bit
     * fc2.input quantizer: the analytic gradient takes its straight-through
     * derivative, the finite difference sees the staircase; 2.0-2.5 % apart
     * for steps 1e-2 down to 2.5e-3 (a bias, not noise), the other weights
     * 0.05-0.4 %. With 0.5's integer zero points it measures 2.01 % at
     * step 1e-2, just above the former bound of 2 %. */
    check_recon_gradients(m, q, calib, 4, 1, "blocks.1", 1e-2f, 5e-2, 0);
    /* with head-wise attention distillation on, at a weight where the KL
     * term is a large part of the loss: its gradient enters at the softmax
     * output and reaches every step size and weight before it */
    check_recon_gradients(m, q, calib, 4, 1, "blocks.1", 1e-2f, 5e-2, ATTN_W);
    /* the setter's checks, then a whole (short) reconstruction with and
     * without the term: both run, and they learn different models */
    ck_assert_int_eq(sardfq_quantizer_set_recon_attn(NULL, 1.0f), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_quantizer_set_recon_attn(q, -1.0f), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_quantizer_set_recon_attn(q, NAN), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_quantizer_set_recon_attn(q, INFINITY), SARDFQ_E_INVALID_ARG);
    float *lg[2];
    for (int k = 0; k < 2; k++) {
        sardfq_quant_params p;
        sardfq_quant_default_params(&p);
        p.recon_iters = 5;
        sardfq_quantizer *r = NULL;
        sardfq_model *qm = NULL;
        ck_assert_int_eq(sardfq_quantizer_create(m, &p, &r), 0);
        ck_assert_int_eq(sardfq_quantizer_set_recon_attn(r, k ? ATTN_W : 0.0f), 0);
        ck_assert_int_eq(sardfq_quantizer_calibrate(r, calib, 8), 0);
        ck_assert_int_eq(sardfq_quantizer_reconstruct(r, calib, 8), 0);
        ck_assert_int_eq(sardfq_quantizer_finalize(r, &qm), 0);
        int ne;
        lg[k] = eval_logits(qm, &f, &ne);
        if (k)
            ck_assert(memcmp(lg[0], lg[1], sizeof(float) * 10 * (size_t)ne) != 0);
        sardfq_model_free(qm);
        sardfq_quantizer_free(r);
    }
    free(lg[0]), free(lg[1]);
    free(calib);
    sardfq_quantizer_free(q);
    tu_fixture_close(&f);
    sardfq_model_free(m);
}
END_TEST

/* The same through a Swin block: a shifted one (window gather with the
 * cyclic shift, the mask, the relative bias, q scaled before its
 * quantizer), in stage 1 (after a patch merging). */
START_TEST(recon_gradients_swin)
{
    sardfq_model *m = load_swin();
    tu_fixture f;
    tu_fixture_open(&f, QSWIN);
    size_t nc;
    float *calib = tu_fixture_get(&f, "calib.images", &nc);
    sardfq_quant_params p;
    sardfq_quant_default_params(&p);
    sardfq_quantizer *q = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(m, &p, &q), 0);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, calib, 8), 0);
    /* the surrogate has kinks (AdaRound's h clamps at 0 and 1) that the
     * rounding variables' central differences straddle: on this block the
     * projection's relative error falls with the step, 0.096, 0.055, 0.018,
     * 0.013 at 0.04, 0.02, 0.01, 0.005 (measured), so a smaller step and a
     * limit above the kink floor */
    check_recon_gradients(m, q, calib, 4, 3, "layers.1.blocks.1", 5e-3f, 5e-2, 0);
    check_recon_gradients(m, q, calib, 4, 3, "layers.1.blocks.1", 5e-3f, 5e-2, ATTN_W);
    free(calib);
    sardfq_quantizer_free(q);
    tu_fixture_close(&f);
    sardfq_model_free(m);
}
END_TEST


static double sq_err(const float *a, const float *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++)
        se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se;
}

static int cancel_after(void *user, int64_t done, int64_t total, const char *stage)
{
    (void)total;
    ck_assert_str_eq(stage, "reconstruct");
    return done >= *(int64_t *)user;
}

/* Reconstruction lowers every block's output error, keeps weights on the
 * integer grid (save/load round trip), and cancellation keeps the
 * calibrated state. */
START_TEST(recon_reduces_block_error)
{
    sardfq_model *m = load_default();
    tu_fixture f;
    tu_fixture_open(&f, FIX);
    sardfq_quant_params p;
    sardfq_quant_default_params(&p);
    p.weight_bits = 3;
    p.act_bits = 3;
    p.recon_iters = 60;
    int64_t stop = 70;
    p.progress = cancel_after;
    p.user_data = &stop;
    sardfq_quantizer *q = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(m, &p, &q), 0);
    size_t nc;
    float *calib = tu_fixture_get(&f, "calib.images", &nc);
    ck_assert_int_eq(sardfq_quantizer_reconstruct(q, calib, 32), SARDFQ_E_STATE);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, calib, 32), 0);
    const sardfq_model_info I = tu_info(m);
    const int N = I.num_tokens, D = 96, depth = I.depth;
    const size_t act = (size_t)32 * N * D;
    float *xq = malloc(sizeof(float) * act), *xf = malloc(sizeof(float) * act);
    double before[8];
    for (int l = 1; l <= depth; l++) {
        ck_assert_int_eq(sfq_forward_blocks(sfq_quantizer_model(q), calib, 32, l, xq), 0);
        ck_assert_int_eq(sfq_forward_blocks(m, calib, 32, l, xf), 0);
        before[l - 1] = sq_err(xq, xf, act);
    }
    sardfq_model *m0 = NULL;
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &m0), 0);
    /* cancelled in block 1 (60 iterations per block): nothing changes */
    ck_assert_int_eq(sardfq_quantizer_reconstruct(q, calib, 32), SARDFQ_E_CANCELLED);
    sardfq_model *m1 = NULL;
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &m1), 0);
    int ne;
    float *l0 = eval_logits(m0, &f, &ne), *l1 = eval_logits(m1, &f, &ne);
    ck_assert_int_eq(memcmp(l0, l1, sizeof(float) * 10 * (size_t)ne), 0);
    stop = INT64_MAX;
    ck_assert_int_eq(sardfq_quantizer_reconstruct(q, calib, 32), 0);
    double sb = 0, sa = 0;
    for (int l = 1; l <= depth; l++) {
        ck_assert_int_eq(sfq_forward_blocks(sfq_quantizer_model(q), calib, 32, l, xq), 0);
        ck_assert_int_eq(sfq_forward_blocks(m, calib, 32, l, xf), 0);
        const double se = sq_err(xq, xf, act);
        fprintf(stderr, "block %d output: squared error to FP before %.4g, after %.4g\n", l - 1, before[l - 1], se);
        sb += before[l - 1];
        sa += se;
        /* every block's output is closer to FP */
        ck_assert_double_lt(se, before[l - 1]);
    }
    fprintf(stderr, "sum over blocks: %.4g -> %.4g\n", sb, sa);
    sardfq_model *m2 = NULL;
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &m2), 0);
    /* on the grid: save/load is exact */
    char *dir = tu_make_tmpdir("sfq_recon");
    const char *path = tu_join(dir, "r.safetensors");
    ck_assert_int_eq(sardfq_model_save(m2, path), 0);
    sardfq_model *back = NULL;
    ck_assert_int_eq(sardfq_model_load(path, NULL, &back), 0);
    float *l2 = eval_logits(m2, &f, &ne), *l3 = eval_logits(back, &f, &ne);
    ck_assert_int_eq(memcmp(l2, l3, sizeof(float) * 10 * (size_t)ne), 0);
    ck_assert(memcmp(l0, l2, sizeof(float) * 10 * (size_t)ne) != 0);
    tu_rm_rf(dir);
    free(l0);
    free(l1);
    free(l2);
    free(l3);
    free(xq);
    free(xf);
    free(calib);
    sardfq_model_free(m0);
    sardfq_model_free(m1);
    sardfq_model_free(m2);
    sardfq_model_free(back);
    sardfq_quantizer_free(q);
    tu_fixture_close(&f);
    sardfq_model_free(m);
}
END_TEST

/* Swin: reconstruction through the same executor lowers every block's
 * output error (raster order, before any patch merging), and the result
 * saves and loads exactly. */
START_TEST(recon_reduces_block_error_swin)
{
    sardfq_model *m = load_swin();
    tu_fixture f;
    tu_fixture_open(&f, QSWIN);
    size_t nc;
    float *calib = tu_fixture_get(&f, "calib.images", &nc);
    const int n = 16;
    ck_assert_uint_ge(nc, (size_t)n * 784);
    sardfq_quant_params p;
    sardfq_quant_default_params(&p);
    p.weight_bits = 3;
    p.act_bits = 3;
    p.recon_iters = 30;
    sardfq_quantizer *q = NULL;
    ck_assert_int_eq(sardfq_quantizer_create(m, &p, &q), 0);
    ck_assert_int_eq(sardfq_quantizer_calibrate(q, calib, n), 0);
    const sardfq_model_info I = tu_info(m);
    const size_t act = (size_t)n * I.num_tokens * I.embed_dim; /* the largest block output */
    float *xq = malloc(sizeof(float) * act), *xf = malloc(sizeof(float) * act);
    double before[16];
    ck_assert_int_le(I.depth, 16);
    for (int l = 0; l < I.depth; l++) {
        const int s = l < I.stage_depth[0] ? 0 : 1;
        const size_t a = (size_t)n * (I.grid_h >> s) * (I.grid_w >> s) * I.stage_dim[s];
        ck_assert_int_eq(sfq_exec_forward_through(sfq_quantizer_model(q), calib, n, l, xq), 0);
        ck_assert_int_eq(sfq_exec_forward_through(m, calib, n, l, xf), 0);
        before[l] = sq_err(xq, xf, a);
    }
    ck_assert_int_eq(I.num_stages, 2);
    ck_assert_int_eq(sardfq_quantizer_reconstruct(q, calib, n), 0);
    for (int l = 0; l < I.depth; l++) {
        const int s = l < I.stage_depth[0] ? 0 : 1;
        const size_t a = (size_t)n * (I.grid_h >> s) * (I.grid_w >> s) * I.stage_dim[s];
        ck_assert_int_eq(sfq_exec_forward_through(sfq_quantizer_model(q), calib, n, l, xq), 0);
        ck_assert_int_eq(sfq_exec_forward_through(m, calib, n, l, xf), 0);
        const double se = sq_err(xq, xf, a);
        printf("Swin block %d output: squared error to FP before %.4g, after %.4g\n", l, before[l], se);
        ck_assert_double_lt(se, before[l]);
    }
    sardfq_model *qm = NULL;
    ck_assert_int_eq(sardfq_quantizer_finalize(q, &qm), 0);
    char *dir = tu_make_tmpdir("sfq_recon_swin");
    const char *path = tu_join(dir, "r.safetensors");
    ck_assert_int_eq(sardfq_model_save(qm, path), 0);
    sardfq_model *back = NULL;
    ck_assert_int_eq(sardfq_model_load(path, NULL, &back), 0);
    float *l0 = malloc(sizeof(float) * 10 * n), *l1 = malloc(sizeof(float) * 10 * n);
    ck_assert_int_eq(sardfq_model_forward(qm, calib, n, l0), 0);
    ck_assert_int_eq(sardfq_model_forward(back, calib, n, l1), 0);
    ck_assert_int_eq(memcmp(l0, l1, sizeof(float) * 10 * n), 0);
    tu_rm_rf(dir);
    free(l0);
    free(l1);
    free(xq);
    free(xf);
    free(calib);
    sardfq_model_free(qm);
    sardfq_model_free(back);
    sardfq_quantizer_free(q);
    tu_fixture_close(&f);
    sardfq_model_free(m);
}
END_TEST

/* ---- Swin (tests/reference/make_qswin_fixtures.py) ---------------------- */

static sardfq_model *load_swin(void)
{
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_load(tu_src("examples/models/fmnist_swin.safetensors"), NULL, &m), 0);
    ck_assert_int_eq(tu_info(m).arch, SARDFQ_ARCH_SWIN);
    return m;
}

/* Stage 0 (and the image in front of it): C and PyTorch calibrate on the
 * same data up to the last bit there. Stage 1 drifts: at W8A8 from a channel
 * of layers.1.downsample.reduction.input within 7e-6 of a tie (listed by the
 * fixture script), at W4A4 from layers.1.blocks.0.mlp.fc1.input (a tail
 * value moved by an upstream 4-bit rounding that flips on the last bit). */
static int swin_stage0(const char *name)
{
    return strcmp(name, "patch_embed.input") == 0 || strncmp(name, "layers.0.", 9) == 0;
}

/* Tensor `name` of model m against the fixture's "<run>.<name>" (the same
 * number of values): difference relative to max(1, |value|) (LayerNorm
 * biases and folded biases cross 0 and -1). */
static void cmp_tensor(cmp_stats *s, tu_fixture *f, const char *run, const sardfq_model *m, const char *name)
{
    size_t n, k;
    const float *got = tensor_of(m, &k, "%s", name);
    char key[256];
    snprintf(key, sizeof key, "%s.%s", run, name);
    float *want = tu_fixture_get(f, key, &n);
    ck_assert_uint_eq(n, k);
    for (size_t i = 0; i < k; i++)
        cmp_rel(s, fabs((double)got[i] - want[i]) / fmax(1.0, fabs(want[i])));
    free(want);
}

static void print_stats(const char *what, const cmp_stats *s)
{
    char rows[32] = "";
    if (s->rows)
        snprintf(rows, sizeof rows, " (%d rows)", s->rows);
    printf("  %-46s %5d values, %4d off by > 1e-5%s, %3d by > 1e-2, worst %.3g\n", what, s->n, s->off, rows,
           s->big, s->worst);
}

typedef struct {
    int w, a;
    int min_agree;      /* arg-max agreement with PyTorch on the 128 images */
    double max_diff;    /* max |logit diff| / max |logit| */
    int max_tie_rows;   /* FP-weight rows off (listed near-ties) */
    int max_tie_rows0;  /* stage-0 reparameterised weight rows off (near-ties) */
    int max_big;        /* stage >= 1 activation values off by > 1e-2 */
    double max_act_rel; /* stage >= 1 activation quantizers: worst */
} swin_tol;

enum { SW_EARLY, SW_ACTS, SW_WFIXED, SW_WTS0, SW_WTS, SW_LN0, SW_LN, SW_N };

static int swin_point_class(const char *name)
{
    return swin_stage0(name) ? SW_EARLY : SW_ACTS;
}

/* qkv, fc1 and the reductions are searched on reparameterised weights,
 * which depend on the activations; the others only on the FP weights. */
static int swin_linear_class(const char *name)
{
    const int folded = ends_with(name, ".attn.qkv") || ends_with(name, ".mlp.fc1") || ends_with(name, ".reduction");
    return !folded ? SW_WFIXED : swin_stage0(name) ? SW_WTS0 : SW_WTS;
}

/* RepQ-ViT on the Fashion-MNIST Swin: every quantizer parameter, the
 * reparameterised LayerNorms and folded biases, and the logits against
 * PyTorch. */
static void repq_swin_case(const char *run, const swin_tol *t)
{
    sardfq_model *m = load_swin();
    tu_fixture f;
    sardfq_quantizer *q = repq_calibrated(m, &f, QSWIN, t->w, t->a);
    const sardfq_model *qm = sfq_quantizer_model(q);
    ck_assert_ptr_nonnull(qm);
    char name[200];
    cmp_stats c[SW_N] = {{0}};
    int points, linears;
    compare_quantizers(c, qm, &f, run, 1, swin_point_class, swin_linear_class, &points, &linears);
    /* the reparameterised LayerNorms and the biases that absorbed W_new bb */
    const sardfq_model_info I = tu_info(m);
    for (int s = 0; s < I.num_stages; s++) {
        cmp_stats *into = &c[s ? SW_LN : SW_LN0];
        if (s) {
            static const char *const ds[3] = {"norm.weight", "norm.bias", "reduction.bias"};
            for (int k = 0; k < 3; k++) {
                snprintf(name, sizeof name, "layers.%d.downsample.%s", s, ds[k]);
                cmp_tensor(into, &f, run, qm, name);
            }
        }
        for (int b = 0; b < I.stage_depth[s]; b++) {
            const char *nm[6] = {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.qkv.bias",
                                 "mlp.fc1.bias"};
            for (int k = 0; k < 6; k++) {
                snprintf(name, sizeof name, "layers.%d.blocks.%d.%s", s, b, nm[k]);
                cmp_tensor(into, &f, run, qm, name);
            }
        }
    }
    printf("%s (Swin): %d activation points, %d linears; C vs PyTorch, relative differences:\n", run, points,
           linears);
    static const char *const what[SW_N] = {"image + stage-0 activation quantizers",
                                           "stage >= 1 activation quantizers",
                                           "FP-weight rows (patch_embed, proj, fc2, head)",
                                           "stage-0 reparameterised weight rows",
                                           "stage >= 1 reparameterised weight rows",
                                           "stage-0 LayerNorms + folded biases",
                                           "stage >= 1 LayerNorms + folded biases"};
    for (int i = 0; i < SW_N; i++)
        print_stats(what[i], &c[i]);
    fflush(stdout);
    /* 1 image + 6 blocks x 8 + 1 reduction + head; 1 + 6 x 4 + 1 + 1 */
    ck_assert_int_eq(points, 51);
    ck_assert_int_eq(linears, 27);
    ck_assert_int_eq(c[SW_EARLY].off, 0);
    ck_assert_int_eq(c[SW_LN0].off, 0);
    ck_assert_int_le(c[SW_WFIXED].rows, t->max_tie_rows);
    ck_assert_int_le(c[SW_WTS0].rows, t->max_tie_rows0);
    ck_assert_int_le(c[SW_ACTS].big, t->max_big);
    ck_assert_double_le(c[SW_ACTS].worst, t->max_act_rel);
    ck_assert_double_le(c[SW_WTS].worst, t->max_act_rel);
    finish_case(q, m, &f, run, t->min_agree, t->max_diff);
}

/* Tolerances (measured: tests/reference/README.md). Exact (1e-5): the image
 * and every stage-0 quantizer (both blocks, the shifted one included), the
 * stage-0 LayerNorms and folded biases, and every weight row searched on FP
 * weights or on stage-0 reparameterised weights, except rows the fixture
 * script lists as near-ties (FP weights: 0 at W8A8, 4 at W4A4; stage-0
 * reparameterised: 1 each). Stage 1 drifts (see swin_stage0): at W8A8 one
 * quantile candidate flips (layers.1.blocks.1.attn.matmul2.b, 10 %); PyTorch
 * itself, with float64 linears or LayerNorms instead of float32, moves its
 * stage-1 quantizers by up to 2 % and its logits by 2-6 % of max |logit|.
 * Measured here: W8A8 127/128 arg-max agreement, 1.8 % logit difference;
 * W4A4 125/128, 6.6 %. */
START_TEST(swin_repq_w8a8_matches_pytorch)
{
    static const swin_tol t = {8, 8, 125, 0.05, 0, 1, 4, 0.25};
    repq_swin_case("repq_w8a8", &t);
}
END_TEST

START_TEST(swin_repq_w4a4_matches_pytorch)
{
    static const swin_tol t = {4, 4, 122, 0.15, 4, 1, 4, 0.25};
    repq_swin_case("repq_w4a4", &t);
}
END_TEST

/* The FP Swin forward against PyTorch, and the reparameterised FP model
 * (norm1 -> qkv, norm2 -> fc1 and downsample.norm -> reduction folded, no
 * rounding) gives the original logits. */
START_TEST(swin_reparam_preserves_logits)
{
    reparam_case r;
    reparam_open(&r, load_swin(), QSWIN);
    size_t k;
    float *fp = tu_fixture_get(&r.f, "fp.logits", &k);
    ck_assert_int_eq((int)k, 10 * r.n);
    const double s = tu_max_abs(fp, k), d_fp = tu_max_abs_diff(r.a, fp, k);
    printf("Swin FP vs PyTorch: max |diff| %.3g of max |logit| %.3g; reparameterised FP vs FP %.3g, vs "
           "PyTorch's reparameterised %.3g\n",
           d_fp, s, r.d, r.d_torch);
    fflush(stdout);
    ck_assert_double_le(d_fp, 1e-5 * s);
    ck_assert_double_le(r.d, 1e-5 * s);
    ck_assert_double_le(r.d_torch, 1e-5 * s);
    /* every fold site changed its parameters; the reduction gained a bias */
    const sardfq_model *m = r.m, *rp = r.rp;
    const sardfq_model_info I = tu_info(m);
    size_t ka, kb;
    for (int st = 0; st < I.num_stages; st++)
        for (int b = 0; b < I.stage_depth[st]; b++)
            for (int n = 1; n <= 2; n++) {
                const float *a = tensor_of(rp, &ka, "layers.%d.blocks.%d.norm%d.weight", st, b, n);
                const float *o = tensor_of(m, &kb, "layers.%d.blocks.%d.norm%d.weight", st, b, n);
                ck_assert(ka >= 48 && kb >= 48);
                ck_assert(memcmp(a, o, sizeof(float) * 48) != 0);
            }
    const float *a = tensor_of(rp, &ka, "layers.1.downsample.norm.weight");
    const float *o = tensor_of(m, &kb, "layers.1.downsample.norm.weight");
    ck_assert_uint_eq(ka, kb);
    ck_assert(memcmp(a, o, sizeof(float) * ka) != 0);
    const float *rb = tensor_of(rp, &ka, "layers.1.downsample.reduction.bias");
    ck_assert_double_gt(tu_max_abs(rb, ka), 0.0);
    free(fp);
    reparam_close(&r);
}
END_TEST

/* PSAQ-ViT's min/max on the Swin: every activation quantizer against the
 * one PyTorch's recorded range gives (sfq_psaq_act), every weight row's
 * symmetric scale, the point set (the Swin mapping of qspec.h) and the
 * logits. */
typedef struct {
    int w, a;
    double max_act_rel; /* activation scale / zero: worst relative difference */
    double max_w_rel;   /* weight row scales: worst relative difference */
    int min_agree;      /* arg-max agreement with PyTorch on the 128 images */
    double max_diff;    /* max |logit diff| / max |logit| */
} swin_mm_tol;

static void minmax_swin_case(const char *run, const swin_mm_tol *t)
{
    sardfq_model *m = load_swin();
    tu_fixture f;
    tu_fixture_open(&f, QSWIN);
    sardfq_quantizer *q = calibrated(m, &f, SARDFQ_SCHEME_MINMAX, t->w, t->a);
    const sardfq_model *qm = sfq_quantizer_model(q);
    ck_assert_ptr_nonnull(qm);
    cmp_stats acts = {0}, wts = {0};
    char name[200], pt[96];
    int points = 0, linears = 0, reductions_out = 0, scores = 0;
    for (int i = 0; i < sfq_inspect_act_count(qm); i++) {
        ck_assert_int_eq(sfq_inspect_act_name(qm, i, pt, sizeof pt), 0);
        const sfq_act_view ac = act_of(qm, "%s", pt);
        if (!ac.kind)
            continue;
        ck_assert_int_eq(ac.kind, SFQ_INSPECT_UNIFORM);
        ck_assert_int_eq(ac.bits, t->a);
        points++;
        reductions_out += ends_with(pt, ".reduction.output");
        scores += ends_with(pt, ".attn.scores");
        size_t k;
        snprintf(name, sizeof name, "%s.%s.min", run, pt);
        float *mn = tu_fixture_get(&f, name, &k);
        snprintf(name, sizeof name, "%s.%s.max", run, pt);
        float *mx = tu_fixture_get(&f, name, &k);
        sfq_uq want;
        ck_assert_int_eq(sfq_psaq_act(mn[0], mx[0], ac.bits, &want), 0);
        cmp(&acts, ac.u.scale, want.scale);
        cmp(&acts, ac.u.zero + 1000.0, want.zero + 1000.0);
        free(mn);
        free(mx);
    }
    for (int i = 0; i < sfq_inspect_linear_count(qm); i++) {
        ck_assert_int_eq(sfq_inspect_linear_name(qm, i, pt, sizeof pt), 0);
        const sfq_lin_view w = lin_of(qm, "%s", pt);
        ck_assert_int_eq(w.bits, t->w);
        linears++;
        size_t k;
        float *sc = fixture_run_get(&f, run, pt, ".weight.scale", &k);
        ck_assert_int_eq((int)k, w.rows);
        for (size_t r = 0; r < k; r++) {
            const int before = wts.off;
            cmp(&wts, w.row[r].scale, sc[r]);
            wts.rows += wts.off > before;
        }
        free(sc);
    }
    /* the off points: no prefix, no position embedding, q/k/v and the
     * softmax stay floating point */
    static const char *const off[] = {"embed", "pos", "embed_pos", "head_dist.input",
                                      "layers.0.blocks.1.attn.matmul1.a", "layers.1.blocks.3.attn.matmul2.a"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
        ck_assert_int_eq(act_of(qm, "%s", off[i]).kind, SFQ_INSPECT_OFF);
    printf("%s (Swin): %d activation points, %d linears; C vs PyTorch, relative differences:\n", run, points,
           linears);
    print_stats("activation quantizers (scale, zero)", &acts);
    print_stats("weight row scales", &wts);
    fflush(stdout);
    /* 5 global (image, patch_embed.output, patch_embed.norm.output,
     * head.input, logits) + 6 blocks x 10 + 1 reduction x 2; 27 linears */
    ck_assert_int_eq(points, 67);
    ck_assert_int_eq(reductions_out, 1);
    ck_assert_int_eq(scores, 6);
    ck_assert_int_eq(linears, 27);
    ck_assert_double_le(acts.worst, t->max_act_rel);
    ck_assert_double_le(wts.worst, t->max_w_rel);
    finish_case(q, m, &f, run, t->min_agree, t->max_diff);
}

/* Tolerances (MM_SWIN_*): the ranges come from one floating-point forward,
 * so the quantizers agree to float32 rounding; the logits differ where an
 * activation lands within float32 rounding of a quantization boundary. */
START_TEST(swin_minmax_w8a8_matches_pytorch)
{
    static const swin_mm_tol t = {8, 8, MM_SWIN_ACT_W8A8, MM_SWIN_W, MM_SWIN_AGREE_W8A8, MM_SWIN_DIFF_W8A8};
    minmax_swin_case("minmax_w8a8", &t);
}
END_TEST

START_TEST(swin_minmax_w4a8_matches_pytorch)
{
    static const swin_mm_tol t = {4, 8, MM_SWIN_ACT_W4A8, MM_SWIN_W, MM_SWIN_AGREE_W4A8, MM_SWIN_DIFF_W4A8};
    minmax_swin_case("minmax_w4a8", &t);
}
END_TEST

/* Top-1 of the Swin's min/max runs on the whole Fashion-MNIST test set
 * against PyTorch's (the fixture's "<run>.test_correct"). */
START_TEST(swin_minmax_top1_matches_pytorch)
{
    static const struct {
        const char *run;
        int w, a;
    } runs[] = {{"minmax_w8a8", 8, 8}, {"minmax_w4a8", 4, 8}};
    sardfq_model *m = load_swin();
    tu_fixture f;
    tu_fixture_open(&f, QSWIN);
    sardfq_dataset *d = NULL;
    ck_assert_msg(sardfq_dataset_open("/usr/share/datasets/fashion-mnist", m, &d) == 0,
                  "install dataset-fashion-mnist: %s", sardfq_last_error());
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        sardfq_quantizer *q = calibrated(m, &f, SARDFQ_SCHEME_MINMAX, runs[r].w, runs[r].a);
        sardfq_model *fin = NULL;
        ck_assert_int_eq(sardfq_quantizer_finalize(q, &fin), 0);
        sardfq_eval_result res;
        res.struct_size = sizeof res;
        ck_assert_int_eq(sardfq_evaluate(fin, d, NULL, &res), 0);
        char name[96];
        snprintf(name, sizeof name, "%s.test_correct", runs[r].run);
        size_t k;
        float *want = tu_fixture_get(&f, name, &k);
        printf("%s (Swin): top-1 %lld / %lld, PyTorch %d\n", runs[r].run, (long long)res.top1_correct,
               (long long)res.n, (int)want[0]);
        fflush(stdout);
        ck_assert_int_eq(res.n, 10000);
        ck_assert_int_le(llabs(res.top1_correct - (long long)want[0]), MM_SWIN_TOP1);
        free(want);
        sardfq_model_free(fin);
        sardfq_quantizer_free(q);
    }
    sardfq_dataset_free(d);
    tu_fixture_close(&f);
    sardfq_model_free(m);
}
END_TEST

/* ---- the inspection interface (inspect.h) -------------------------------- */

/* The names the tests read models by are the names of the saved files:
 * every tensor of m's file reads back through inspect.h bit for bit -- a
 * float tensor "X" through sfq_inspect_tensor, "<point>.scale" / ".zero"
 * through sfq_inspect_act, "<W>_scale" / "_zero" through sfq_inspect_linear
 * (W's linear), "<W>_codes" as a quantized linear whose fake-quantized
 * weight "W" is there -- and every quantizer inspect.h reports on is in the
 * file. */
static int float_bits_eq(const float *a, const float *b, size_t n) { return memcmp(a, b, sizeof(float) * n) == 0; }

/* The weight quantizer of the linear whose weight tensor is `weight`
 * ("<linear>.weight"; timm's patch_embed.proj and Swin's head.fc). */
static sfq_lin_view linear_of_weight(const sardfq_model *m, const char *weight)
{
    char base[256];
    snprintf(base, sizeof base, "%s", weight);
    ck_assert(ends_with(base, ".weight"));
    base[strlen(base) - 7] = '\0';
    const char *lin = strcmp(base, "patch_embed.proj") == 0 ? "patch_embed" : strcmp(base, "head.fc") == 0 ? "head" : base;
    return lin_of(m, "%s", lin);
}

static void inspect_matches_file(const sardfq_model *m)
{
    char *dir = tu_make_tmpdir("sfq_inspect");
    const char *path = tu_join(dir, "m.safetensors");
    ck_assert_int_eq(sardfq_model_save(m, path), 0);
    size_t len;
    uint8_t *buf = tu_read_file(path, &len);
    sfq_st_file st;
    ck_assert_int_eq(sfq_st_parse(buf, len, &st), 0);
    int file_points = 0, file_linears = 0, tensors = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const sfq_st_tensor *t = &st.tensors[i];
        char base[256];
        snprintf(base, sizeof base, "%s", t->name);
        char *suffix = strrchr(base, '_');
        if (t->dtype == SFQ_DT_U8) { /* "<W>_codes" */
            ck_assert(suffix && strcmp(suffix, "_codes") == 0);
            *suffix = '\0';
            const sfq_lin_view w = linear_of_weight(m, base);
            size_t k;
            tensor_of(m, &k, "%s", base);
            ck_assert_int_gt(w.bits, 0);
            ck_assert_int_eq(t->shape[0], w.rows);
            ck_assert_uint_eq(k, (size_t)w.rows * (size_t)w.cols);
            file_linears++;
            continue;
        }
        ck_assert_int_eq(t->dtype, SFQ_DT_F32);
        float *v = malloc(sizeof(float) * (size_t)t->numel);
        ck_assert_int_eq(sfq_st_read_f32(&st, t, v), 0);
        char *dot = strrchr(base, '.');
        sfq_act_view a;
        if (dot && (strcmp(dot, ".scale") == 0 || strcmp(dot, ".zero") == 0)) {
            const int is_scale = strcmp(dot, ".scale") == 0;
            *dot = '\0';
            ck_assert_msg(sfq_inspect_act(m, base, &a) == 0, "%s: %s", t->name, sardfq_last_error());
            ck_assert_int_ne(a.kind, SFQ_INSPECT_OFF);
            ck_assert(is_scale || a.kind == SFQ_INSPECT_UNIFORM);
            ck_assert(float_bits_eq(v, is_scale ? &a.scale : &a.zero, 1));
            file_points += is_scale;
        } else if (suffix && (strcmp(suffix, "_scale") == 0 || strcmp(suffix, "_zero") == 0)) {
            const int is_scale = strcmp(suffix, "_scale") == 0;
            *suffix = '\0';
            const sfq_lin_view w = linear_of_weight(m, base);
            ck_assert_int_gt(w.bits, 0);
            ck_assert_int_eq(t->numel, w.rows);
            for (int r = 0; r < w.rows; r++)
                ck_assert(float_bits_eq(&v[r], is_scale ? &w.row[r].scale : &w.row[r].zero, 1));
        } else {
            size_t k;
            const float *d = tensor_of(m, &k, "%s", t->name);
            ck_assert_uint_eq(k, (size_t)t->numel);
            ck_assert_msg(float_bits_eq(d, v, k), "%s", t->name);
            tensors++;
        }
        free(v);
    }
    /* ... and every quantizer inspect.h reports on was in the file */
    int points = 0, linears = 0;
    char name[96];
    for (int i = 0; i < sfq_inspect_act_count(m); i++) {
        ck_assert_int_eq(sfq_inspect_act_name(m, i, name, sizeof name), 0);
        points += act_of(m, "%s", name).kind != SFQ_INSPECT_OFF;
    }
    for (int i = 0; i < sfq_inspect_linear_count(m); i++) {
        ck_assert_int_eq(sfq_inspect_linear_name(m, i, name, sizeof name), 0);
        const sfq_lin_view w = lin_of(m, "%s", name);
        linears += w.bits > 0;
        ck_assert_int_gt(w.rows, 0);
        ck_assert_int_gt(w.cols, 0);
        ck_assert(!w.bits == !w.row);
    }
    ck_assert_int_eq(points, file_points);
    ck_assert_int_eq(linears, file_linears);
    ck_assert_int_gt(tensors, 0);
    ck_assert_int_eq(sfq_inspect_quantized(m), points + linears > 0);
    /* unknown names and short buffers are errors, not crashes */
    float *d;
    size_t k;
    sfq_act_view a;
    sfq_lin_view w;
    ck_assert_int_eq(sfq_inspect_tensor(m, "no.such.tensor", &d, &k), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_inspect_act(m, "blocks.99.attn.qkv.input", &a), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_inspect_linear(m, "blocks.0.attn", &w), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_inspect_act_name(m, sfq_inspect_act_count(m), name, sizeof name), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_inspect_act_name(m, 0, name, 3), SARDFQ_E_INVALID_ARG);
    sfq_st_release(&st);
    free(buf);
    tu_rm_rf(dir);
}

START_TEST(inspect_names_are_file_names)
{
    static const struct {
        int swin, scheme, w, a; /* w = 0: the FP model */
    } cases[] = {{0, 0, 0, 0},
                 {1, 0, 0, 0},
                 {0, SARDFQ_SCHEME_REPQ, 4, 4},
                 {0, SARDFQ_SCHEME_MINMAX, 4, 8},
                 {1, SARDFQ_SCHEME_REPQ, 4, 4},
                 {1, SARDFQ_SCHEME_MINMAX, 4, 8}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sardfq_model *m = cases[c].swin ? load_swin() : load_default();
        if (!cases[c].w) {
            ck_assert(!sfq_inspect_quantized(m));
            inspect_matches_file(m);
        } else {
            tu_fixture f;
            tu_fixture_open(&f, cases[c].swin ? QSWIN : FIX);
            sardfq_quantizer *q = calibrated(m, &f, cases[c].scheme, cases[c].w, cases[c].a);
            sardfq_model *fin = NULL;
            ck_assert_int_eq(sardfq_quantizer_finalize(q, &fin), 0);
            ck_assert(sfq_inspect_quantized(fin));
            inspect_matches_file(fin);
            sardfq_model_free(fin);
            sardfq_quantizer_free(q);
            tu_fixture_close(&f);
        }
        sardfq_model_free(m);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qmodel");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, repq_w8a8_matches_pytorch);
    tcase_add_test(tc, repq_w4a4_matches_pytorch);
    tcase_add_test(tc, minmax_w8a8_matches_pytorch);
    tcase_add_test(tc, minmax_w4a8_matches_pytorch);
    tcase_add_test(tc, reparam_preserves_logits);
    suite_add_tcase(s, tc);
    /* 4 x 2 evaluations of the 10000 test images: tagged "heavy", which
     * tests/run.sh excludes in the sanitizer builds (CK_EXCLUDE_TAGS) */
    tc = tcase_create("fullset");
    tcase_set_tags(tc, "heavy");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, top1_matches_pytorch);
    suite_add_tcase(s, tc);
    tc = tcase_create("api");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, all_fp_override_is_identity);
    tcase_add_test(tc, layer_overrides);
    tcase_add_test(tc, save_load_repq_w4a4);
    tcase_add_test(tc, save_load_repq_w8a8);
    tcase_add_test(tc, save_load_minmax_w3a4);
    tcase_add_test(tc, save_load_swin_minmax_w3a4);
    tcase_add_test(tc, save_load_swin_minmax_w8a8);
    tcase_add_test(tc, save_load_fp);
    tcase_add_test(tc, invalid_arguments);
    suite_add_tcase(s, tc);
    tc = tcase_create("recon");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, recon_gradients_match_finite_differences);
    tcase_add_test(tc, recon_gradients_swin);
    tcase_add_test(tc, recon_reduces_block_error);
    tcase_add_test(tc, recon_reduces_block_error_swin);
    suite_add_tcase(s, tc);
    tc = tcase_create("swin");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, swin_repq_w8a8_matches_pytorch);
    tcase_add_test(tc, swin_repq_w4a4_matches_pytorch);
    tcase_add_test(tc, swin_reparam_preserves_logits);
    tcase_add_test(tc, swin_minmax_w8a8_matches_pytorch);
    tcase_add_test(tc, swin_minmax_w4a8_matches_pytorch);
    suite_add_tcase(s, tc);
    /* 2 x 10000 Swin test images: "heavy" as the ViT's fullset */
    tc = tcase_create("swin_fullset");
    tcase_set_tags(tc, "heavy");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, swin_minmax_top1_matches_pytorch);
    suite_add_tcase(s, tc);
    tc = tcase_create("inspect");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, inspect_names_are_file_names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
