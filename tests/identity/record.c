/* record.c - the byte-identity record of what the library computes.
 *
 * Prints one line per result, "<case> <FNV-1a 64 of its bytes>", for every
 * fixture model and default model: logits, attention and feature
 * read-backs, input gradients (from logits, from logits + attention), at 1
 * and 2 library threads; quantized models (RepQ-ViT and min/max, several
 * bit widths, with and without block reconstruction): their logits and the
 * bytes of the saved file, which hold every calibrated quantizer parameter
 * and weight code; synthesized images and targets of every method at a
 * fixed seed. Uses the public API only, so that it runs unchanged on any
 * version and a refactor can be held against the record of the version
 * before it (tests/identity/check.sh).
 *
 * usage: record DATA_DIR MODELS_DIR TMP_DIR */
#include "sardfq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *data_dir, *models_dir, *tmp_dir;
static int failures;

static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void put(const char *what, const char *name, const void *p, size_t bytes)
{
    printf("%s %s %016llx\n", what, name, (unsigned long long)fnv(p, bytes));
}

static void put_status(const char *what, const char *name, sardfq_status s)
{
    printf("%s %s status=%d\n", what, name, (int)s);
}

/* Deterministic N(0, 1)-ish values (a 64-bit LCG and Box-Muller). */
static uint64_t lcg;
static double uniform01(void)
{
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(lcg >> 11) + 0.5) / 9007199254740992.0;
}
static void fill_normal(float *x, size_t n, uint64_t seed)
{
    lcg = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01()));
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "record: out of memory\n");
        exit(2);
    }
    return p;
}

static sardfq_model *load(const char *path, int threads)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.n_threads = threads;
    if (strstr(path, "nometa")) /* no metadata, embed_dim 48: heads from the test */
        p.num_heads = 3;
    sardfq_model *m = NULL;
    sardfq_status s = sardfq_model_load(path, &p, &m);
    if (s) {
        fprintf(stderr, "record: %s: %s\n", path, sardfq_last_error());
        failures++;
        return NULL;
    }
    return m;
}

static sardfq_model_info info_of(const sardfq_model *m)
{
    sardfq_model_info i;
    memset(&i, 0, sizeof i);
    i.struct_size = sizeof i;
    if (sardfq_model_get_info(m, &i))
        failures++;
    return i;
}

/* The floating-point graph: forward, read-backs, backward. */
static void record_fp(const char *name, sardfq_model *m, int n)
{
    const sardfq_model_info in = info_of(m);
    const size_t img = (size_t)in.in_chans * in.img_h * in.img_w, K = (size_t)in.num_classes;
    const size_t A = (size_t)in.attention_floats, F = (size_t)in.num_features;
    float *x = xcalloc((size_t)n * img, sizeof(float)), *logits = xcalloc((size_t)n * K, sizeof(float));
    float *att = xcalloc((size_t)n * A, sizeof(float)), *feat = xcalloc((size_t)n * F, sizeof(float));
    float *dl = xcalloc((size_t)n * K, sizeof(float)), *da = xcalloc((size_t)n * A, sizeof(float));
    float *dx = xcalloc((size_t)n * img, sizeof(float));
    fill_normal(x, (size_t)n * img, 1);
    fill_normal(dl, (size_t)n * K, 2);
    fill_normal(da, (size_t)n * A, 3);
    sardfq_status s = sardfq_model_forward(m, x, n, logits);
    if (s)
        put_status("forward", name, s);
    else
        put("logits", name, logits, sizeof(float) * (size_t)n * K);
    sardfq_state *st = NULL;
    if (sardfq_state_create(m, &st)) {
        failures++;
        goto done;
    }
    s = sardfq_model_forward_ex(m, st, x, n,
                                SARDFQ_FORWARD_ATTENTION | SARDFQ_FORWARD_BACKWARD | SARDFQ_FORWARD_FEATURES,
                                logits);
    if (s) {
        put_status("forward_ex", name, s);
        /* a quantized model has no backward: read-backs only */
        s = sardfq_model_forward_ex(m, st, x, n, SARDFQ_FORWARD_ATTENTION | SARDFQ_FORWARD_FEATURES, logits);
        if (s) {
            put_status("forward_ex_nobwd", name, s);
            goto done;
        }
    }
    put("logits_ex", name, logits, sizeof(float) * (size_t)n * K);
    if (!sardfq_state_get_attention(st, att, (size_t)n * A))
        put("attention", name, att, sizeof(float) * (size_t)n * A);
    if (!sardfq_state_get_features(st, feat, (size_t)n * F))
        put("features", name, feat, sizeof(float) * (size_t)n * F);
    s = sardfq_model_backward(m, st, dl, NULL, dx);
    if (s) {
        put_status("backward", name, s);
        goto done;
    }
    put("dimages_logits", name, dx, sizeof(float) * (size_t)n * img);
    s = sardfq_model_backward(m, st, dl, da, dx);
    if (!s)
        put("dimages_logits_attn", name, dx, sizeof(float) * (size_t)n * img);
    s = sardfq_model_backward(m, st, NULL, da, dx);
    if (!s)
        put("dimages_attn", name, dx, sizeof(float) * (size_t)n * img);
done:
    sardfq_state_free(st);
    free(x);
    free(logits);
    free(att);
    free(feat);
    free(dl);
    free(da);
    free(dx);
}

static void record_file(const char *what, const char *name, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        failures++;
        return;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = xcalloc((size_t)len, 1);
    if (fread(b, 1, (size_t)len, f) != (size_t)len)
        failures++;
    fclose(f);
    put(what, name, b, (size_t)len);
    free(b);
    remove(path);
}

/* Quantize m with (scheme, wbits, abits) on n calibration images, with
 * `recon` reconstruction iterations (0 = none); record the quantized
 * model's results and its saved file. */
static void record_quant(const char *name, const sardfq_model *m, int scheme, int wb, int ab, int recon, int n)
{
    char tag[256], path[1024];
    snprintf(tag, sizeof tag, "%s/%s_w%da%d_r%d", name, scheme == SARDFQ_SCHEME_MINMAX ? "minmax" : "repq", wb, ab,
             recon);
    const sardfq_model_info in = info_of(m);
    const size_t img = (size_t)in.in_chans * in.img_h * in.img_w;
    float *x = xcalloc((size_t)n * img, sizeof(float));
    fill_normal(x, (size_t)n * img, 7);
    sardfq_quant_params p;
    sardfq_quant_default_params(&p);
    p.scheme = scheme;
    p.weight_bits = wb;
    p.act_bits = ab;
    if (recon)
        p.recon_iters = recon;
    p.n_threads = 2;
    sardfq_quantizer *q = NULL;
    sardfq_model *qm = NULL;
    sardfq_status s = sardfq_quantizer_create(m, &p, &q);
    if (!s)
        s = sardfq_quantizer_calibrate(q, x, n);
    if (!s && recon)
        s = sardfq_quantizer_reconstruct(q, x, n);
    if (!s)
        s = sardfq_quantizer_finalize(q, &qm);
    if (s) {
        put_status("quantize", tag, s);
    } else {
        record_fp(tag, qm, 3);
        snprintf(path, sizeof path, "%s/identity_q.safetensors", tmp_dir);
        s = sardfq_model_save(qm, path);
        if (s)
            put_status("save", tag, s);
        else
            record_file("qfile", tag, path);
    }
    sardfq_model_free(qm);
    sardfq_quantizer_free(q);
    free(x);
}

static void record_synth(const char *name, sardfq_model *m, int method, int micro_batch)
{
    static const char *const names[] = {"noise", "psaq", "sardfq"};
    char tag[256];
    snprintf(tag, sizeof tag, "%s/%s_mb%d", name, names[method], micro_batch);
    sardfq_generator_params p;
    sardfq_generator_default_params(&p);
    p.method = method;
    p.n_images = 4;
    p.iters = 6;
    p.rounds = 2;
    p.warmup = 1;
    p.micro_batch = micro_batch;
    p.seed = 11;
    sardfq_generator *g = NULL;
    sardfq_synth_report rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    sardfq_status s = sardfq_generator_create(m, &p, &g);
    if (!s)
        s = sardfq_generator_run(g, &rep);
    if (s) {
        put_status("synth", tag, s);
        sardfq_generator_free(g);
        return;
    }
    const sardfq_model_info in = info_of(m);
    const size_t img = (size_t)p.n_images * in.in_chans * in.img_h * in.img_w;
    const size_t tg = (size_t)p.n_images * in.num_classes;
    float *x = xcalloc(img, sizeof(float)), *t = xcalloc(tg, sizeof(float));
    if (!sardfq_generator_get_images(g, x, img))
        put("synth_images", tag, x, sizeof(float) * img);
    if (!sardfq_generator_get_targets(g, t, tg))
        put("synth_targets", tag, t, sizeof(float) * tg);
    const float losses[] = {rep.loss, rep.apa, rep.ce, rep.msr, rep.tv, rep.pse, rep.target_prob};
    put("synth_report", tag, losses, sizeof losses);
    free(x);
    free(t);
    sardfq_generator_free(g);
}

/* OpenBLAS's kernel set (its corename), part of the record's machine line:
 * GEMM results depend on it (OPENBLAS_CORETYPE can change it on one CPU). */
extern char *openblas_get_corename(void);

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--blas-core") == 0) {
        printf("%s\n", openblas_get_corename());
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: record DATA_DIR MODELS_DIR TMP_DIR\n");
        return 2;
    }
    data_dir = argv[1];
    models_dir = argv[2];
    tmp_dir = argv[3];
    static const char *const fixtures[] = {
        "vit_p16_rgb", "vit_p4_gray_nometa", "vit_f16",     "vit_bf16",        "deit_distilled",
        "tv_vit",      "tv_vit_legacy",      "swin_a.timm", "swin_a.timm_old", "swin_a.tv",
        "swin_b",      "swin_c",             "swin_c.clipped"};
    char path[1024];
    for (int threads = 1; threads <= 2; threads++) {
        for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
            snprintf(path, sizeof path, "%s/%s.model.safetensors", data_dir, fixtures[i]);
            sardfq_model *m = load(path, threads);
            if (!m)
                continue;
            char tag[128];
            snprintf(tag, sizeof tag, "%s/t%d", fixtures[i], threads);
            record_fp(tag, m, 3);
            sardfq_model_free(m);
        }
    }
    static const char *const defaults[] = {"fmnist_vit", "fmnist_swin"};
    for (int d = 0; d < 2; d++) {
        snprintf(path, sizeof path, "%s/%s.safetensors", models_dir, defaults[d]);
        for (int threads = 1; threads <= 2; threads++) {
            sardfq_model *m = load(path, threads);
            if (!m)
                continue;
            char tag[128];
            snprintf(tag, sizeof tag, "%s/t%d", defaults[d], threads);
            record_fp(tag, m, 5);
            sardfq_model_free(m);
        }
        sardfq_model *m = load(path, 2);
        if (!m)
            continue;
        record_quant(defaults[d], m, SARDFQ_SCHEME_REPQ, 8, 8, 0, 8);
        record_quant(defaults[d], m, SARDFQ_SCHEME_REPQ, 4, 4, 0, 8);
        record_quant(defaults[d], m, SARDFQ_SCHEME_REPQ, 3, 3, 0, 8);
        record_quant(defaults[d], m, SARDFQ_SCHEME_REPQ, 4, 4, 3, 8);
        record_quant(defaults[d], m, SARDFQ_SCHEME_MINMAX, 8, 8, 0, 8);
        record_quant(defaults[d], m, SARDFQ_SCHEME_MINMAX, 4, 8, 0, 8);
        for (int method = 0; method < 3; method++) {
            record_synth(defaults[d], m, method, 4);
            if (method)
                record_synth(defaults[d], m, method, 2);
        }
        sardfq_model_free(m);
    }
    /* distilled DeiT through the quantizer and synthesis too */
    snprintf(path, sizeof path, "%s/deit_distilled.model.safetensors", data_dir);
    sardfq_model *m = load(path, 2);
    if (m) {
        record_quant("deit_distilled", m, SARDFQ_SCHEME_REPQ, 4, 4, 0, 6);
        record_quant("deit_distilled", m, SARDFQ_SCHEME_REPQ, 4, 4, 2, 6);
        record_quant("deit_distilled", m, SARDFQ_SCHEME_MINMAX, 8, 8, 0, 6);
        record_synth("deit_distilled", m, SARDFQ_SYNTH_SARDFQ, 2);
        record_synth("deit_distilled", m, SARDFQ_SYNTH_PSAQ, 2);
        sardfq_model_free(m);
    }
    /* a real-size architecture with random weights */
    static const char *const randoms[] = {"deit_tiny", "swin_tiny"};
    for (int r = 0; r < 2; r++) {
        sardfq_model_params p;
        sardfq_model_default_params(&p);
        p.n_threads = 2;
        m = NULL;
        if (sardfq_model_create_random(randoms[r], 5, &p, &m)) {
            failures++;
            continue;
        }
        record_fp(randoms[r], m, 2);
        sardfq_model_free(m);
    }
    if (failures)
        fprintf(stderr, "record: %d failures\n", failures);
    return failures ? 1 : 0;
}
