/* test_oom.c - out-of-memory injection over whole public-API sequences.
 * For n = 1, 2, 3, ... the n-th library allocation fails
 * (sfq_alloc_fail_countdown); the call that meets it must return
 * SARDFQ_E_NOMEM with its outputs and handles unchanged, everything created
 * before must still work and be freeable, and the loop ends with the first
 * pass that completes without using the countdown. Calls that absorb the
 * failure and succeed must give the same results as a clean pass. Leaks
 * are caught by the AddressSanitizer build of tests/run.sh. */
#define SARDFQ_EXPERIMENTAL
#include "sardfq.h"
#include "core.h"
#include "testutil.h"
#include "exec.h"
#include "vit.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "vit_p16_rgb.model.safetensors"
#define N_IMG 2
#define SENTINEL 12345.5f
#define MAX_PASSES 100000

/* Stand-in handle values: a failing call must leave them as they are. */
static char handle_marker[4];
#define FAKE_MODEL ((sardfq_model *)(void *)&handle_marker[0])
#define FAKE_STATE ((sardfq_state *)(void *)&handle_marker[1])
#define FAKE_GEN ((sardfq_generator *)(void *)&handle_marker[2])
#define FAKE_PRIOR ((sardfq_prior *)(void *)&handle_marker[3])

static float *sentinel_buf(size_t n)
{
    float *b = malloc(sizeof(float) * (n ? n : 1));
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++)
        b[i] = SENTINEL;
    return b;
}

static void reset_sentinel(float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = SENTINEL;
}

static int all_sentinel(const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != SENTINEL)
            return 0;
    return 1;
}

/* Arm the injection: the k-th following allocation fails (k = 0: none). */
static int armed;
static void arm(long k)
{
    armed = k > 0;
    sfq_alloc_fail_countdown = k;
}

/* Was the injected failure consumed since arm()? Disarms it. */
static int consumed(void)
{
    int hit = armed && sfq_alloc_fail_countdown == 0;
    armed = 0;
    sfq_alloc_fail_countdown = 0;
    return hit;
}

static void expect_nomem(sardfq_status s, long n, const char *call)
{
    ck_assert_msg(s == SARDFQ_E_NOMEM, "countdown %ld: %s returned %d (%s), expected SARDFQ_E_NOMEM",
                  n, call, (int)s, sardfq_last_error());
    ck_assert_msg(sardfq_last_error()[0] != '\0', "countdown %ld: %s: no message", n, call);
}

static void expect_close(const float *got, const float *want, size_t n, long k, const char *what)
{
    double d = tu_max_abs_diff(got, want, n);
    ck_assert_msg(d <= 1e-5 * (1.0 + tu_max_abs(want, n)), "countdown %ld: %s differs by %g", k,
                  what, d);
}

/* ------------------------------------------------------------------------ */
/* load -> state -> forward_ex -> backward -> get_attention                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    uint8_t *file;
    size_t file_len;
    size_t n_in, n_logits, n_attn;
    float *images, *dlogits;
    float *ref_logits, *ref_dimages, *ref_attn; /* from the clean pass */
} model_seq;

static sardfq_model_params one_thread(void)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.n_threads = 1;
    return p;
}

/* One pass with the countdown armed at k (0 = clean pass, which fills the
 * reference outputs). Returns 1 if the countdown was consumed. */
static int model_pass(model_seq *q, long k)
{
    sardfq_model_params p = one_thread();
    sardfq_model *m = FAKE_MODEL;
    sardfq_state *st = FAKE_STATE;
    float *logits = sentinel_buf(q->n_logits);
    float *dimages = sentinel_buf(q->n_in);
    float *attn = sentinel_buf(q->n_attn);
    int hit = 0;
    sardfq_status s;

    arm(k);
    s = sardfq_model_load_memory(q->file, q->file_len, &p, &m);
    if (s != SARDFQ_OK) {
        hit = consumed();
        ck_assert_msg(hit, "countdown %ld: load failed without the injection: %s", k,
                      sardfq_last_error());
        expect_nomem(s, k, "sardfq_model_load_memory");
        ck_assert_ptr_eq(m, FAKE_MODEL);
        goto out;
    }
    ck_assert_ptr_ne(m, FAKE_MODEL);

    s = sardfq_state_create(m, &st);
    if (s != SARDFQ_OK) {
        hit = consumed();
        ck_assert_msg(hit, "countdown %ld: state_create failed: %s", k, sardfq_last_error());
        expect_nomem(s, k, "sardfq_state_create");
        ck_assert_ptr_eq(st, FAKE_STATE);
        st = NULL;
        goto out;
    }

    s = sardfq_model_forward_ex(m, st, q->images, N_IMG,
                                SARDFQ_FORWARD_BACKWARD | SARDFQ_FORWARD_ATTENTION, logits);
    if (s != SARDFQ_OK) {
        hit = consumed();
        ck_assert_msg(hit, "countdown %ld: forward_ex failed: %s", k, sardfq_last_error());
        expect_nomem(s, k, "sardfq_model_forward_ex");
        ck_assert_msg(all_sentinel(logits, q->n_logits), "countdown %ld: forward_ex failed but wrote logits", k);
        /* the state is still usable: the same call succeeds once memory is back */
        s = sardfq_model_forward_ex(m, st, q->images, N_IMG,
                                    SARDFQ_FORWARD_BACKWARD | SARDFQ_FORWARD_ATTENTION, logits);
        ck_assert_msg(s == SARDFQ_OK, "countdown %ld: forward_ex retry: %s", k, sardfq_last_error());
    }
    if (k == 0)
        memcpy(q->ref_logits, logits, sizeof(float) * q->n_logits);
    else
        expect_close(logits, q->ref_logits, q->n_logits, k, "logits");

    s = sardfq_model_backward(m, st, q->dlogits, NULL, dimages);
    if (s != SARDFQ_OK) {
        hit = consumed();
        ck_assert_msg(hit, "countdown %ld: backward failed: %s", k, sardfq_last_error());
        expect_nomem(s, k, "sardfq_model_backward");
        ck_assert_msg(all_sentinel(dimages, q->n_in), "countdown %ld: backward failed but wrote dimages", k);
        /* the kept activations stay valid */
        s = sardfq_model_backward(m, st, q->dlogits, NULL, dimages);
        ck_assert_msg(s == SARDFQ_OK, "countdown %ld: backward retry: %s", k, sardfq_last_error());
    }
    if (k == 0)
        memcpy(q->ref_dimages, dimages, sizeof(float) * q->n_in);
    else
        expect_close(dimages, q->ref_dimages, q->n_in, k, "dimages");

    s = sardfq_state_get_attention(st, attn, q->n_attn);
    if (s != SARDFQ_OK) {
        hit = consumed();
        ck_assert_msg(hit, "countdown %ld: get_attention failed: %s", k, sardfq_last_error());
        expect_nomem(s, k, "sardfq_state_get_attention");
        ck_assert(all_sentinel(attn, q->n_attn));
        s = sardfq_state_get_attention(st, attn, q->n_attn);
        ck_assert_int_eq(s, SARDFQ_OK);
    }
    if (k == 0)
        memcpy(q->ref_attn, attn, sizeof(float) * q->n_attn);
    else
        expect_close(attn, q->ref_attn, q->n_attn, k, "attention");

out:
    if (!hit)
        hit = consumed();
    if (st != FAKE_STATE)
        sardfq_state_free(st);
    if (m != FAKE_MODEL)
        sardfq_model_free(m);
    free(logits);
    free(dimages);
    free(attn);
    return hit;
}

START_TEST(model_sequence)
{
    model_seq q;
    memset(&q, 0, sizeof q);
    q.file = tu_read_file(tu_data(MODEL), &q.file_len);
    ck_assert_ptr_nonnull(q.file);

    sardfq_model_params p = one_thread();
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_load_memory(q.file, q.file_len, &p, &m), SARDFQ_OK);
    sardfq_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sardfq_model_get_info(m, &info), SARDFQ_OK);
    sardfq_model_free(m);
    q.n_in = (size_t)N_IMG * info.in_chans * info.img_h * info.img_w;
    q.n_logits = (size_t)N_IMG * info.num_classes;
    q.n_attn = (size_t)N_IMG * info.depth * info.num_heads * info.num_tokens;
    q.images = malloc(sizeof(float) * q.n_in);
    q.dlogits = malloc(sizeof(float) * q.n_logits);
    q.ref_logits = malloc(sizeof(float) * q.n_logits);
    q.ref_dimages = malloc(sizeof(float) * q.n_in);
    q.ref_attn = malloc(sizeof(float) * q.n_attn);
    ck_assert(q.images && q.dlogits && q.ref_logits && q.ref_dimages && q.ref_attn);
    for (size_t i = 0; i < q.n_in; i++)
        q.images[i] = (float)sin(0.37 * (double)i);
    for (size_t i = 0; i < q.n_logits; i++)
        q.dlogits[i] = (float)cos(0.91 * (double)i);

    ck_assert_int_eq(model_pass(&q, 0), 0);
    long k;
    for (k = 1; k < MAX_PASSES; k++)
        if (!model_pass(&q, k))
            break;
    ck_assert_int_lt(k, MAX_PASSES);
    printf("oom model sequence: %ld allocations injected\n", k - 1);

    free(q.file);
    free(q.images);
    free(q.dlogits);
    free(q.ref_logits);
    free(q.ref_dimages);
    free(q.ref_attn);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* synthesis: generator_create + 2 steps (+ images and targets)             */
/* ------------------------------------------------------------------------ */

typedef struct {
    sardfq_model *m;
    int method;
    size_t n_img, n_tgt;
    float *ref_img, *ref_tgt;
    float ref_loss[2];
} synth_seq;

static int synth_pass(synth_seq *q, long k)
{
    sardfq_generator_params gp;
    sardfq_generator_default_params(&gp);
    gp.method = q->method;
    gp.n_images = 2;
    gp.iters = 2;
    gp.warmup = 1;
    gp.micro_batch = 2;
    gp.seed = 7;
    sardfq_generator *g = FAKE_GEN;
    float *img = sentinel_buf(q->n_img);
    float *tgt = sentinel_buf(q->n_tgt);
    int hit = 0;
    sardfq_status s;

    arm(k);
    s = sardfq_generator_create(q->m, &gp, &g);
    if (s != SARDFQ_OK) {
        hit = consumed();
        ck_assert_msg(hit, "countdown %ld: generator_create failed: %s", k, sardfq_last_error());
        expect_nomem(s, k, "sardfq_generator_create");
        ck_assert_ptr_eq(g, FAKE_GEN);
        g = NULL;
        goto out;
    }
    for (int step = 0; step < 2; step++) {
        sardfq_synth_report r, before;
        memset(&r, 0x5a, sizeof r);
        r.struct_size = sizeof r;
        before = r;
        s = sardfq_generator_step(g, &r);
        if (s != SARDFQ_OK) {
            hit = consumed();
            ck_assert_msg(hit, "countdown %ld: step %d failed: %s", k, step, sardfq_last_error());
            expect_nomem(s, k, "sardfq_generator_step");
            ck_assert_msg(memcmp(&r, &before, sizeof r) == 0,
                          "countdown %ld: failed step %d wrote its report", k, step);
            /* the generator did not advance: the step can be done again */
            s = sardfq_generator_step(g, &r);
            ck_assert_msg(s == SARDFQ_OK, "countdown %ld: step %d retry: %s", k, step, sardfq_last_error());
            /* ... and gives what a clean run gives (compared below): a
             * failed step puts back the random numbers it consumed */
        }
        ck_assert_msg(r.step == step + 1, "countdown %ld: report.step %d after step %d", k, r.step,
                      step + 1);
        if (k == 0)
            q->ref_loss[step] = r.loss;
        else
            ck_assert_msg(fabsf(r.loss - q->ref_loss[step]) <= 1e-4f * (1.0f + fabsf(q->ref_loss[step])),
                          "countdown %ld: step %d loss %g, clean pass %g", k, step, r.loss,
                          q->ref_loss[step]);
    }
    s = sardfq_generator_get_images(g, img, q->n_img);
    if (s != SARDFQ_OK) {
        hit = consumed();
        expect_nomem(s, k, "sardfq_generator_get_images");
        ck_assert(all_sentinel(img, q->n_img));
        ck_assert_int_eq(sardfq_generator_get_images(g, img, q->n_img), SARDFQ_OK);
    }
    s = sardfq_generator_get_targets(g, tgt, q->n_tgt);
    if (s != SARDFQ_OK) {
        hit = consumed();
        expect_nomem(s, k, "sardfq_generator_get_targets");
        ck_assert(all_sentinel(tgt, q->n_tgt));
        ck_assert_int_eq(sardfq_generator_get_targets(g, tgt, q->n_tgt), SARDFQ_OK);
    }
    if (k == 0) {
        memcpy(q->ref_img, img, sizeof(float) * q->n_img);
        memcpy(q->ref_tgt, tgt, sizeof(float) * q->n_tgt);
    } else {
        expect_close(img, q->ref_img, q->n_img, k, "synthetic images");
        expect_close(tgt, q->ref_tgt, q->n_tgt, k, "targets");
    }
out:
    if (!hit)
        hit = consumed();
    if (g != FAKE_GEN)
        sardfq_generator_free(g);
    free(img);
    free(tgt);
    return hit;
}

static void synth_loop(int method)
{
    uint8_t *file;
    size_t len;
    file = tu_read_file(tu_data(MODEL), &len);
    ck_assert_ptr_nonnull(file);
    sardfq_model_params p = one_thread();
    synth_seq q;
    memset(&q, 0, sizeof q);
    q.method = method;
    ck_assert_int_eq(sardfq_model_load_memory(file, len, &p, &q.m), SARDFQ_OK);
    free(file);
    sardfq_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sardfq_model_get_info(q.m, &info), SARDFQ_OK);
    q.n_img = (size_t)2 * info.in_chans * info.img_h * info.img_w;
    q.n_tgt = (size_t)2 * info.num_classes;
    q.ref_img = malloc(sizeof(float) * q.n_img);
    q.ref_tgt = malloc(sizeof(float) * q.n_tgt);
    ck_assert(q.ref_img && q.ref_tgt);

    ck_assert_int_eq(synth_pass(&q, 0), 0);
    long k;
    for (k = 1; k < MAX_PASSES; k++)
        if (!synth_pass(&q, k))
            break;
    ck_assert_int_lt(k, MAX_PASSES);
    printf("oom synthesis (method %d): %ld allocations injected\n", method, k - 1);
    free(q.ref_img);
    free(q.ref_tgt);
    sardfq_model_free(q.m);
}

START_TEST(synthesis_sardfq) { synth_loop(SARDFQ_SYNTH_SARDFQ); }
END_TEST

START_TEST(synthesis_psaq) { synth_loop(SARDFQ_SYNTH_PSAQ); }
END_TEST

/* ------------------------------------------------------------------------ */
/* priors: create + sample                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(prior_sequence)
{
    enum { GH = 7, GW = 5, COUNT = 3 };
    float ref[COUNT * GH * GW], out[COUNT * GH * GW];
    sardfq_prior_params pp;
    for (long k = 0; k < MAX_PASSES; k++) {
        sardfq_prior_default_params(&pp);
        pp.seed = 11;
        sardfq_prior *pr = FAKE_PRIOR;
        int hit = 0;
        reset_sentinel(out, COUNT * GH * GW);
        arm(k);
        sardfq_status s = sardfq_prior_create(GH, GW, &pp, &pr);
        if (s != SARDFQ_OK) {
            hit = consumed();
            ck_assert(hit);
            expect_nomem(s, k, "sardfq_prior_create");
            ck_assert_ptr_eq(pr, FAKE_PRIOR);
            continue;
        }
        s = sardfq_prior_sample(pr, COUNT, out);
        if (s != SARDFQ_OK) {
            hit = consumed();
            ck_assert(hit);
            expect_nomem(s, k, "sardfq_prior_sample");
            ck_assert(all_sentinel(out, COUNT * GH * GW));
            /* the sequence did not advance */
            ck_assert_int_eq(sardfq_prior_sample(pr, COUNT, out), SARDFQ_OK);
        }
        if (!hit)
            hit = consumed();
        if (k == 0)
            memcpy(ref, out, sizeof ref);
        else
            ck_assert_msg(memcmp(out, ref, sizeof ref) == 0, "countdown %ld: priors differ", k);
        sardfq_prior_free(pr);
        if (k > 0 && !hit) {
            printf("oom priors: %ld allocations injected\n", k - 1);
            return;
        }
    }
    ck_abort_msg("no pass completed");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* quantizer: create -> set_layer -> calibrate -> reconstruct -> finalize ->  */
/* forward -> save -> load, both schemes                                     */
/* ------------------------------------------------------------------------ */

#define FAKE_QUANT ((sardfq_quantizer *)(void *)&handle_marker[0])

/* Retry a failed call once the injection is spent: it must now succeed. */
#define FAILED(call, expr)                                                                       \
    do {                                                                                         \
        hit = consumed();                                                                        \
        ck_assert_msg(hit, "countdown %ld: %s failed: %s", k, call, sardfq_last_error());        \
        expect_nomem(s, k, call);                                                                \
        s = (expr);                                                                              \
        ck_assert_msg(s == SARDFQ_OK, "countdown %ld: %s retry: %s", k, call, sardfq_last_error()); \
    } while (0)

static int quant_pass(sardfq_model *m, const float *images, int n, int scheme, const char *path, float *ref,
                      size_t nlog, long k)
{
    sardfq_quant_params p;
    sardfq_quant_default_params(&p);
    p.weight_bits = 4;
    p.act_bits = 4;
    p.scheme = scheme;
    p.recon_iters = 2;
    p.n_threads = 1;
    sardfq_quantizer *q = FAKE_QUANT;
    sardfq_model *qm = FAKE_MODEL, *back = FAKE_MODEL;
    float *logits = sentinel_buf(nlog);
    int hit = 0;
    arm(k);
    sardfq_status s = sardfq_quantizer_create(m, &p, &q);
    if (s != SARDFQ_OK) {
        hit = consumed();
        ck_assert(hit);
        expect_nomem(s, k, "sardfq_quantizer_create");
        ck_assert_ptr_eq(q, FAKE_QUANT);
        free(logits);
        return 1;
    }
    if ((s = sardfq_quantizer_set_layer(q, "head", 8, 8)) != SARDFQ_OK)
        FAILED("sardfq_quantizer_set_layer", sardfq_quantizer_set_layer(q, "head", 8, 8));
    if ((s = sardfq_quantizer_calibrate(q, images, n)) != SARDFQ_OK) {
        /* nothing calibrated yet: finalize still refuses */
        sardfq_model *tmp = FAKE_MODEL;
        sardfq_status s2 = s;
        hit = consumed();
        ck_assert(hit);
        s = s2;
        expect_nomem(s, k, "sardfq_quantizer_calibrate");
        ck_assert_int_eq(sardfq_quantizer_finalize(q, &tmp), SARDFQ_E_STATE);
        ck_assert_ptr_eq(tmp, FAKE_MODEL);
        s = sardfq_quantizer_calibrate(q, images, n);
        ck_assert_msg(s == SARDFQ_OK, "countdown %ld: calibrate retry: %s", k, sardfq_last_error());
    }
    if (scheme == SARDFQ_SCHEME_REPQ && (s = sardfq_quantizer_reconstruct(q, images, n)) != SARDFQ_OK)
        FAILED("sardfq_quantizer_reconstruct", sardfq_quantizer_reconstruct(q, images, n));
    if ((s = sardfq_quantizer_finalize(q, &qm)) != SARDFQ_OK) {
        ck_assert_ptr_eq(qm, FAKE_MODEL);
        FAILED("sardfq_quantizer_finalize", sardfq_quantizer_finalize(q, &qm));
    }
    if ((s = sardfq_model_forward(qm, images, n, logits)) != SARDFQ_OK) {
        ck_assert(all_sentinel(logits, nlog));
        FAILED("sardfq_model_forward (quantized)", sardfq_model_forward(qm, images, n, logits));
    }
    /* the fake-quantized executor dequantizes the weights held as codes */
    float *fake = sentinel_buf(nlog);
    ck_assert_int_eq(sardfq_model_set_executor(qm, SARDFQ_EXECUTOR_FAKE), SARDFQ_OK);
    if ((s = sardfq_model_forward(qm, images, n, fake)) != SARDFQ_OK) {
        ck_assert(all_sentinel(fake, nlog));
        FAILED("sardfq_model_forward (quantized, fake)", sardfq_model_forward(qm, images, n, fake));
    }
    ck_assert_int_eq(sardfq_model_set_executor(qm, SARDFQ_EXECUTOR_AUTO), SARDFQ_OK);
    remove(path);
    if ((s = sardfq_model_save(qm, path)) != SARDFQ_OK) {
        FILE *f = fopen(path, "rb");
        ck_assert_msg(!f, "countdown %ld: a failed save left %s", k, path);
        FAILED("sardfq_model_save", sardfq_model_save(qm, path));
    }
    if ((s = sardfq_model_load(path, NULL, &back)) != SARDFQ_OK) {
        ck_assert_ptr_eq(back, FAKE_MODEL);
        FAILED("sardfq_model_load (quantized)", sardfq_model_load(path, NULL, &back));
    }
    if (!hit)
        hit = consumed();
    /* the result does not depend on where the failure was absorbed */
    float *again = sentinel_buf(nlog);
    ck_assert_int_eq(sardfq_model_forward(back, images, n, again), SARDFQ_OK);
    ck_assert_msg(memcmp(again, logits, sizeof(float) * nlog) == 0, "countdown %ld: loaded model differs", k);
    ck_assert_int_eq(sardfq_model_set_executor(back, SARDFQ_EXECUTOR_FAKE), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward(back, images, n, again), SARDFQ_OK);
    ck_assert_msg(memcmp(again, fake, sizeof(float) * nlog) == 0, "countdown %ld: fake executor differs", k);
    free(fake);
    if (k == 0)
        memcpy(ref, logits, sizeof(float) * nlog);
    else
        ck_assert_msg(memcmp(ref, logits, sizeof(float) * nlog) == 0, "countdown %ld: logits differ from a clean pass",
                      k);
    free(again);
    free(logits);
    sardfq_model_free(back);
    sardfq_model_free(qm);
    sardfq_quantizer_free(q);
    return hit;
}

static void quant_loop(int scheme)
{
    uint8_t *file;
    size_t len;
    file = tu_read_file(tu_data(MODEL), &len);
    ck_assert_ptr_nonnull(file);
    sardfq_model_params p = one_thread();
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_load_memory(file, len, &p, &m), SARDFQ_OK);
    free(file);
    sardfq_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sardfq_model_get_info(m, &info), SARDFQ_OK);
    const int n = 3;
    const size_t nin = (size_t)n * info.in_chans * info.img_h * info.img_w, nlog = (size_t)n * info.num_classes;
    float *images = malloc(sizeof(float) * nin), *ref = malloc(sizeof(float) * nlog);
    for (size_t i = 0; i < nin; i++)
        images[i] = (float)sin(0.37 * (double)i) * 1.5f;
    char *dir = tu_make_tmpdir("sfq_oomq");
    const char *path = tu_join(dir, "q.safetensors");
    char pathbuf[4096];
    snprintf(pathbuf, sizeof pathbuf, "%s", path);
    ck_assert_int_eq(quant_pass(m, images, n, scheme, pathbuf, ref, nlog, 0), 0);
    long k;
    for (k = 1; k < MAX_PASSES; k++)
        if (!quant_pass(m, images, n, scheme, pathbuf, ref, nlog, k))
            break;
    ck_assert_int_lt(k, MAX_PASSES);
    printf("oom quantization (scheme %d): %ld allocations injected\n", scheme, k - 1);
    tu_rm_rf(dir);
    free(images);
    free(ref);
    sardfq_model_free(m);
}

START_TEST(quantization_repq) { quant_loop(SARDFQ_SCHEME_REPQ); }
END_TEST

START_TEST(quantization_minmax) { quant_loop(SARDFQ_SCHEME_MINMAX); }
END_TEST

/* ------------------------------------------------------------------------ */
/* OpenBLAS's thread count survives failed compute calls                    */
/* ------------------------------------------------------------------------ */

/* With n_threads > 0 a compute call holds OpenBLAS at one thread and puts
 * the host's count back when it ends (kernels/compute.c); a call that fails
 * must put it back too, or OpenBLAS stays at one thread for the rest of the
 * process. Every compute entry point, on ViT and Swin, with the n-th
 * allocation failing for n = 1, 2, ... until the call succeeds. */
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);

#define BLAS_HOST_THREADS 2

typedef struct {
    sardfq_model *m;
    sardfq_state *st;
    sardfq_dataset *d;
    sardfq_generator *g;
    sardfq_quantizer *q;
    int n, upto;
    float *images, *logits, *dlogits, *dimages, *x;
} blas_ctx;

typedef sardfq_status (*blas_call)(blas_ctx *c);
typedef void (*blas_prepare)(blas_ctx *c);

/* Call `call` with the k-th allocation failing, k = 1, 2, ..., until it
 * succeeds without using the injection; `prepare` (may be NULL) runs before
 * each call, outside the injection. Returns the number of failed calls. */
static long blas_kept(const char *model, const char *what, blas_prepare prepare, blas_call call, blas_ctx *c)
{
    long failed = 0;
    for (long k = 1; k < MAX_PASSES; k++) {
        if (prepare)
            prepare(c);
        openblas_set_num_threads(BLAS_HOST_THREADS);
        ck_assert_int_eq(openblas_get_num_threads(), BLAS_HOST_THREADS);
        arm(k);
        sardfq_status s = call(c);
        int hit = consumed();
        ck_assert_msg(openblas_get_num_threads() == BLAS_HOST_THREADS,
                      "%s: %s (countdown %ld, status %d): OpenBLAS left at %d threads, the host set %d", model,
                      what, k, (int)s, openblas_get_num_threads(), BLAS_HOST_THREADS);
        if (s != SARDFQ_OK) {
            ck_assert_msg(hit, "%s: %s failed without the injection: %s", model, what, sardfq_last_error());
            expect_nomem(s, k, what);
            failed++;
        } else if (!hit) {
            return failed;
        }
    }
    ck_abort_msg("%s: %s never succeeded", model, what);
    return failed;
}

static sardfq_status call_forward(blas_ctx *c) { return sardfq_model_forward(c->m, c->images, c->n, c->logits); }

static void fresh_state(blas_ctx *c)
{
    sardfq_state_free(c->st);
    c->st = NULL;
    ck_assert_int_eq(sardfq_state_create(c->m, &c->st), SARDFQ_OK);
}

static sardfq_status call_forward_ex(blas_ctx *c)
{
    return sardfq_model_forward_ex(c->m, c->st, c->images, c->n, SARDFQ_FORWARD_BACKWARD | SARDFQ_FORWARD_ATTENTION,
                                   c->logits);
}

static sardfq_status call_backward(blas_ctx *c)
{
    return sardfq_model_backward(c->m, c->st, c->dlogits, NULL, c->dimages);
}

static sardfq_status call_evaluate(blas_ctx *c)
{
    sardfq_eval_params p;
    sardfq_eval_default_params(&p);
    p.limit = c->n;
    p.batch = c->n;
    sardfq_eval_result r;
    r.struct_size = sizeof r;
    return sardfq_evaluate(c->m, c->d, &p, &r);
}

static void fresh_generator(blas_ctx *c)
{
    sardfq_generator_free(c->g);
    c->g = NULL;
    sardfq_generator_params gp;
    sardfq_generator_default_params(&gp);
    gp.n_images = 2;
    gp.iters = 2;
    gp.warmup = 1;
    gp.micro_batch = 2;
    gp.seed = 7;
    ck_assert_int_eq(sardfq_generator_create(c->m, &gp, &c->g), SARDFQ_OK);
}

static sardfq_status call_step(blas_ctx *c)
{
    sardfq_synth_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    return sardfq_generator_step(c->g, &r);
}

static void fresh_quantizer(blas_ctx *c)
{
    sardfq_quantizer_free(c->q);
    c->q = NULL;
    sardfq_quant_params p;
    sardfq_quant_default_params(&p);
    p.weight_bits = 4;
    p.act_bits = 4;
    p.recon_iters = 2;
    ck_assert_int_eq(sardfq_quantizer_create(c->m, &p, &c->q), SARDFQ_OK);
}

static sardfq_status call_calibrate(blas_ctx *c) { return sardfq_quantizer_calibrate(c->q, c->images, c->n); }

static sardfq_status call_reconstruct(blas_ctx *c)
{
    return sardfq_quantizer_reconstruct(c->q, c->images, c->n);
}

static sardfq_status call_forward_blocks(blas_ctx *c)
{
    return sfq_forward_blocks(c->m, c->images, c->n, c->upto, c->x);
}

static void blas_kept_on(const char *file, int swin)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.n_threads = 2;
    blas_ctx c;
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(sardfq_model_load(tu_src(file), &p, &c.m), SARDFQ_OK);
    sardfq_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sardfq_model_get_info(c.m, &info), SARDFQ_OK);
    c.n = 2;
    c.upto = info.depth / 2 + 1;
    const size_t nin = (size_t)c.n * info.in_chans * info.img_h * info.img_w;
    const size_t nlog = (size_t)c.n * info.num_classes;
    c.images = malloc(sizeof(float) * nin);
    c.dimages = malloc(sizeof(float) * nin);
    c.logits = malloc(sizeof(float) * nlog);
    c.dlogits = malloc(sizeof(float) * nlog);
    c.x = malloc(sizeof(float) * (size_t)c.n * info.num_tokens * info.embed_dim);
    ck_assert(c.images && c.dimages && c.logits && c.dlogits && c.x);
    for (size_t i = 0; i < nin; i++)
        c.images[i] = (float)sin(0.37 * (double)i);
    for (size_t i = 0; i < nlog; i++)
        c.dlogits[i] = (float)cos(0.91 * (double)i);
    ck_assert_msg(sardfq_dataset_open("/usr/share/datasets/fashion-mnist", c.m, &c.d) == SARDFQ_OK,
                  "install dataset-fashion-mnist: %s", sardfq_last_error());

    long f[8];
    f[0] = blas_kept(file, "sardfq_model_forward", NULL, call_forward, &c);
    f[1] = blas_kept(file, "sardfq_model_forward_ex", fresh_state, call_forward_ex, &c);
    /* the state now holds a forward_ex kept for backward */
    f[2] = blas_kept(file, "sardfq_model_backward", NULL, call_backward, &c);
    f[3] = blas_kept(file, "sardfq_evaluate", NULL, call_evaluate, &c);
    f[4] = blas_kept(file, "sardfq_generator_step", fresh_generator, call_step, &c);
    f[5] = blas_kept(file, "sardfq_quantizer_calibrate", fresh_quantizer, call_calibrate, &c);
    f[6] = f[7] = -1;
    if (!swin) { /* block-wise forward and reconstruction are ViT only */
        f[6] = blas_kept(file, "sardfq_quantizer_reconstruct", NULL, call_reconstruct, &c);
        f[7] = blas_kept(file, "sfq_forward_blocks", NULL, call_forward_blocks, &c);
    }
    printf("oom OpenBLAS threads, %s: failed calls forward %ld, forward_ex %ld, backward %ld, evaluate %ld, "
           "step %ld, calibrate %ld, reconstruct %ld, forward_blocks %ld\n",
           file, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]);
    /* every call that allocates was made to fail at least once */
    ck_assert(f[0] > 0 && f[1] > 0 && f[3] > 0 && f[4] > 0 && f[5] > 0);
    ck_assert(swin || (f[6] > 0 && f[7] > 0));

    sardfq_quantizer_free(c.q);
    sardfq_generator_free(c.g);
    sardfq_state_free(c.st);
    sardfq_dataset_free(c.d);
    sardfq_model_free(c.m);
    free(c.images);
    free(c.dimages);
    free(c.logits);
    free(c.dlogits);
    free(c.x);
}

START_TEST(blas_threads_vit) { blas_kept_on("examples/models/fmnist_vit.safetensors", 0); }
END_TEST

START_TEST(blas_threads_swin) { blas_kept_on("examples/models/fmnist_swin.safetensors", 1); }
END_TEST

/* ------------------------------------------------------------------------ */
/* a failed forward_ex keeps the previous forward                           */
/* ------------------------------------------------------------------------ */

/* Forward 1 image with ATTENTION | BACKWARD, then 3 images (the state must
 * grow) with the k-th allocation failing, k = 1, 2, ... until it succeeds:
 * after each failure the first forward's attention read-back and backward
 * must be what they were, bit for bit. */
static void failed_forward_ex_keeps_state(const char *file)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.n_threads = 1;
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_load(tu_src(file), &p, &m), SARDFQ_OK);
    sardfq_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sardfq_model_get_info(m, &info), SARDFQ_OK);
    enum { SMALL = 1, LARGE = 3 };
    const uint32_t flags = SARDFQ_FORWARD_ATTENTION | SARDFQ_FORWARD_BACKWARD;
    const size_t per = (size_t)info.in_chans * info.img_h * info.img_w;
    const size_t nin = LARGE * per, nlog = LARGE * (size_t)info.num_classes;
    const size_t nattn = SMALL * (size_t)info.attention_floats;
    float *images = malloc(sizeof(float) * nin), *logits = malloc(sizeof(float) * nlog);
    float *dlogits = malloc(sizeof(float) * nlog);
    float *attn0 = malloc(sizeof(float) * nattn), *attn = malloc(sizeof(float) * nattn);
    float *dimg0 = malloc(sizeof(float) * SMALL * per), *dimg = malloc(sizeof(float) * SMALL * per);
    ck_assert(images && logits && dlogits && attn0 && attn && dimg0 && dimg);
    for (size_t i = 0; i < nin; i++)
        images[i] = (float)sin(0.37 * (double)i);
    for (size_t i = 0; i < nlog; i++)
        dlogits[i] = (float)cos(0.91 * (double)i);

    long k, failed = 0;
    for (k = 1; k < MAX_PASSES; k++) {
        sardfq_state *st = NULL;
        ck_assert_int_eq(sardfq_state_create(m, &st), SARDFQ_OK);
        ck_assert_int_eq(sardfq_model_forward_ex(m, st, images, SMALL, flags, logits), SARDFQ_OK);
        ck_assert_int_eq(sardfq_state_get_attention(st, attn0, nattn), SARDFQ_OK);
        ck_assert_int_eq(sardfq_model_backward(m, st, dlogits, NULL, dimg0), SARDFQ_OK);
        arm(k);
        sardfq_status s = sardfq_model_forward_ex(m, st, images, LARGE, flags | SARDFQ_FORWARD_FEATURES, logits);
        int hit = consumed();
        if (s != SARDFQ_OK) {
            ck_assert_msg(hit, "%s: forward_ex failed without the injection: %s", file, sardfq_last_error());
            expect_nomem(s, k, "sardfq_model_forward_ex");
            failed++;
            reset_sentinel(attn, nattn);
            s = sardfq_state_get_attention(st, attn, nattn);
            ck_assert_msg(s == SARDFQ_OK, "%s, countdown %ld: after a failed forward_ex: %s", file, k,
                          sardfq_last_error());
            ck_assert_msg(memcmp(attn, attn0, sizeof(float) * nattn) == 0,
                          "%s, countdown %ld: a failed forward_ex changed the attention read-back", file, k);
            /* ... of one image (above: count fits 1 image, not 3), and
             * without features */
            float feat[1];
            ck_assert_int_eq(sardfq_state_get_features(st, feat, 1), SARDFQ_E_STATE);
            reset_sentinel(dimg, SMALL * per);
            s = sardfq_model_backward(m, st, dlogits, NULL, dimg);
            ck_assert_msg(s == SARDFQ_OK, "%s, countdown %ld: backward after a failed forward_ex: %s", file, k,
                          sardfq_last_error());
            ck_assert_msg(memcmp(dimg, dimg0, sizeof(float) * SMALL * per) == 0,
                          "%s, countdown %ld: backward changed after a failed forward_ex", file, k);
        }
        sardfq_state_free(st);
        if (s == SARDFQ_OK && !hit)
            break;
    }
    ck_assert_int_lt(k, MAX_PASSES);
    ck_assert_int_gt(failed, 0);
    printf("oom forward_ex keeps the last forward, %s: %ld failures injected\n", file, failed);
    free(images);
    free(logits);
    free(dlogits);
    free(attn0);
    free(attn);
    free(dimg0);
    free(dimg);
    sardfq_model_free(m);
}

START_TEST(forward_ex_failure_keeps_vit)
{
    failed_forward_ex_keeps_state("examples/models/fmnist_vit.safetensors");
}
END_TEST

START_TEST(forward_ex_failure_keeps_swin)
{
    failed_forward_ex_keeps_state("examples/models/fmnist_swin.safetensors");
}
END_TEST

/* ONNX export of a quantized model (weight codes, activation quantizers,
 * the log-sqrt2 quantizer) and of a Swin: every injected failure returns
 * SARDFQ_E_NOMEM and leaves no file (neither the target nor a temporary
 * one); the pass that completes writes bytes identical to a clean export. */
static void export_oom(const char *file)
{
    sardfq_model *m = NULL;
    ck_assert_int_eq(sardfq_model_load(file, NULL, &m), SARDFQ_OK);
    char *dir = tu_make_tmpdir("oom_onnx");
    const char *ref = tu_join(dir, "ref.onnx"), *out = tu_join(dir, "out.onnx");
    sardfq_status s = sardfq_model_export_onnx(m, ref, NULL);
    if (s == SARDFQ_E_UNSUPPORTED) { /* a build without ONNX export */
        sardfq_model_free(m);
        tu_rm_rf(dir);
        return;
    }
    ck_assert_msg(s == SARDFQ_OK, "clean export: %s", sardfq_last_error());
    size_t nref = 0, nout = 0;
    uint8_t *want = tu_read_file(ref, &nref);
    long k, failed = 0;
    for (k = 1; k < MAX_PASSES; k++) {
        arm(k);
        s = sardfq_model_export_onnx(m, out, NULL);
        const int hit = consumed();
        if (s != SARDFQ_OK) {
            ck_assert_msg(hit, "countdown %ld: export failed without the injection: %s", k, sardfq_last_error());
            expect_nomem(s, k, "export_onnx");
            /* nothing but ref.onnx in the folder */
            ck_assert_msg(tu_count_entries(dir) == 1, "countdown %ld: a failed export left a file in %s", k, dir);
            failed++;
            continue;
        }
        if (!hit)
            break;
        remove(out);
    }
    ck_assert_int_lt(k, MAX_PASSES);
    ck_assert_int_gt(failed, 0);
    uint8_t *got = tu_read_file(out, &nout);
    ck_assert_msg(nout == nref && memcmp(got, want, nref) == 0, "%s: the export after the failures differs", file);
    printf("oom export_onnx, %s: %ld failures injected\n", file, failed);
    free(want);
    free(got);
    sardfq_model_free(m);
    tu_rm_rf(dir);
}

START_TEST(export_onnx_quantized_vit) { export_oom(tu_data("int_vit_w4a4.q.safetensors")); }
END_TEST

START_TEST(export_onnx_quantized_swin) { export_oom(tu_data("int_swin_w3a3.q.safetensors")); }
END_TEST

int main(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, model_sequence);
    tcase_add_test(tc, synthesis_sardfq);
    tcase_add_test(tc, synthesis_psaq);
    tcase_add_test(tc, prior_sequence);
    tcase_add_test(tc, quantization_repq);
    tcase_add_test(tc, quantization_minmax);
    tcase_add_test(tc, blas_threads_vit);
    tcase_add_test(tc, blas_threads_swin);
    tcase_add_test(tc, forward_ex_failure_keeps_vit);
    tcase_add_test(tc, forward_ex_failure_keeps_swin);
    tcase_add_test(tc, export_onnx_quantized_vit);
    tcase_add_test(tc, export_onnx_quantized_swin);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
