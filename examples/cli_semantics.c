/* cli_semantics.c - `sardfq semantics`: how much class semantics synthetic
 * images carry, for each synthesis method and SARDFQ ablation.
 *
 * For every variant: synthesise n images (seeded), then with the FP model
 *   - target: the fraction of images whose arg-max class is their primary
 *     target class (the arg-max of their target distribution);
 *   - in set: the fraction whose arg-max class is any of their target
 *     classes (an MSR image carries its regions' classes by design);
 *   - cosine: the mean cosine similarity between an image's final
 *     class-token feature and the mean feature of the real images of its
 *     primary class (the paper's "semantic distortion" measure: real 0.68,
 *     PSAQ-ViT 0.44 on ImageNet).
 * The real class means come from the labelled set given with --data; a
 * "real" row measures n real images (classes cycling) the same way.
 * Prints a Markdown table; the last line is
 *   variants=<k> n=<n> iters=<i> seed=<s> */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cli_usage_semantics(FILE *f)
{
    fputs("usage: sardfq semantics --data PATH [--model M] [--n 32] [--iters 1000]\n"
          "                        [--seed S] [--alpha A] [--threads T] [--only LIST]\n"
          "                        [--prior gmm|laplace] [--prior-k K]\n"
          "\n"
          "Synthesises images with every method and SARDFQ ablation (noise, psaq,\n"
          "sardfq, sardfq-no-apa, sardfq-no-msr, sardfq-no-sl, apa-only) and reports,\n"
          "as a Markdown table, the wall time, the fraction of images the model\n"
          "assigns to their target class, and the mean cosine similarity between\n"
          "each image's final class-token feature and the mean feature of real\n"
          "images (from --data) of the same class. --only takes a comma-separated\n"
          "subset of the variant names.\n",
          f);
}

typedef struct {
    const char *name;
    int method, apa, msr, sl;
} variant;

static const variant VARIANTS[] = {
    {"noise", SARDFQ_SYNTH_NOISE, 0, 0, 0},       {"psaq", SARDFQ_SYNTH_PSAQ, 0, 0, 0},
    {"sardfq", SARDFQ_SYNTH_SARDFQ, 1, 1, 1},     {"sardfq-no-apa", SARDFQ_SYNTH_SARDFQ, 0, 1, 1},
    {"sardfq-no-msr", SARDFQ_SYNTH_SARDFQ, 1, 0, 1}, {"sardfq-no-sl", SARDFQ_SYNTH_SARDFQ, 1, 1, 0},
    {"apa-only", SARDFQ_SYNTH_SARDFQ, 1, 0, 0},
};

static int in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n))
            return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* Features and logits of n images (batches of 64). */
static sardfq_status features(sardfq_model *m, sardfq_state *st, const float *x, int n, size_t img, int D,
                              int K, float *feat, float *logits)
{
    for (int s = 0; s < n; s += 64) {
        int b = n - s < 64 ? n - s : 64;
        sardfq_status r = sardfq_model_forward_ex(m, st, x + (size_t)s * img, b, SARDFQ_FORWARD_FEATURES,
                                                  logits + (size_t)s * K);
        if (!r)
            r = sardfq_state_get_features(st, feat + (size_t)s * D, (size_t)b * D);
        if (r)
            return r;
    }
    return SARDFQ_OK;
}

static double cosine(const float *a, const double *b, int D)
{
    double ab = 0, aa = 0, bb = 0;
    for (int d = 0; d < D; d++)
        ab += a[d] * b[d], aa += (double)a[d] * a[d], bb += b[d] * b[d];
    return ab / (sqrt(aa * bb) + 1e-30);
}

static int argmax(const float *v, int K)
{
    int a = 0;
    for (int k = 1; k < K; k++)
        if (v[k] > v[a])
            a = k;
    return a;
}

/* Mean over n images of [arg-max(logits) == cls], of [arg-max(logits) is
 * one of the image's target classes] (targets: rows whose entries above the
 * row's minimum mark the targets; NULL = cls only) and cos(feat,
 * mean[cls]). */
static void score(const float *feat, const float *logits, const int *cls, const float *targets, int n,
                  int D, int K, const double *means, double *target, double *in_set, double *cos)
{
    *target = *in_set = *cos = 0;
    for (int i = 0; i < n; i++) {
        const int a = argmax(logits + (size_t)i * K, K);
        *target += a == cls[i];
        if (targets) {
            const float *t = targets + (size_t)i * K;
            float lo = t[0];
            for (int k = 1; k < K; k++)
                lo = t[k] < lo ? t[k] : lo;
            *in_set += t[a] > lo;
        } else {
            *in_set += a == cls[i];
        }
        *cos += cosine(feat + (size_t)i * D, means + (size_t)cls[i] * D, D);
    }
    *target /= n;
    *in_set /= n;
    *cos /= n;
}

int cli_semantics(int argc, char **argv)
{
    const char *model_path = cli_default_model(), *data = NULL, *only = NULL, *v;
    cli_gen_options go;
    cli_gen_options_init(&go);
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            cli_usage_semantics(stdout);
            return CLI_EXIT_OK;
        }
        if ((r = cli_option("semantics", argc, argv, &i, "model", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            model_path = v;
        } else if ((r = cli_option("semantics", argc, argv, &i, "data", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            data = v;
        } else if ((r = cli_option("semantics", argc, argv, &i, "only", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            only = v;
        } else if ((r = cli_gen_option("semantics", argc, argv, &i, &go)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
        } else {
            return cli_usage_error("semantics: unknown option '%s'", argv[i]);
        }
    }
    if (!data)
        return cli_usage_error("semantics: --data PATH (real labelled images) is required");
    if (!model_path)
        return cli_usage_error("semantics: --model is required (no installed default model)");
    if (only)
        for (const char *p = only; *p;) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p), k;
            for (k = 0; k < sizeof VARIANTS / sizeof VARIANTS[0]; k++)
                if (strlen(VARIANTS[k].name) == len && !strncmp(VARIANTS[k].name, p, len))
                    break;
            if (k == sizeof VARIANTS / sizeof VARIANTS[0])
                return cli_usage_error("semantics: unknown variant in --only '%s'", only);
            if (!e)
                break;
            p = e + 1;
        }

    int rc = CLI_EXIT_FAIL;
    sardfq_model_info info;
    sardfq_model *m = cli_load_model(model_path, (int)go.threads, 0);
    sardfq_dataset *ds = NULL;
    sardfq_state *st = NULL;
    float *x = NULL, *feat = NULL, *logits = NULL, *targets = NULL;
    double *means = NULL;
    int *cls = NULL, *count = NULL;
    int32_t *labels = NULL;
    sardfq_status s;
    if (!m || cli_model_info(m, &info))
        goto done;
    const int D = info.num_features, K = info.num_classes;
    const size_t img = (size_t)info.in_chans * info.img_h * info.img_w;
    if ((s = sardfq_dataset_open(data, m, &ds))) {
        cli_lib_fail(s, "semantics: cannot open %s", data);
        goto done;
    }
    const int64_t total = sardfq_dataset_count(ds);
    const int chunk = 256;
    const long n = go.n;
    const int rows = (int)(n > chunk ? n : chunk);
    x = malloc(sizeof(float) * img * (size_t)rows);
    feat = malloc(sizeof(float) * (size_t)D * rows);
    logits = malloc(sizeof(float) * (size_t)K * rows);
    targets = malloc(sizeof(float) * (size_t)K * n);
    means = calloc((size_t)K * D, sizeof(double));
    count = calloc((size_t)K, sizeof(int));
    cls = malloc(sizeof(int) * (size_t)n);
    labels = malloc(sizeof(int32_t) * (size_t)chunk);
    if (!x || !feat || !logits || !targets || !means || !count || !cls || !labels) {
        cli_fail("semantics: out of memory");
        goto done;
    }
    if ((s = sardfq_state_create(m, &st))) {
        cli_lib_fail(s, "semantics: state");
        goto done;
    }
    /* real class means */
    fprintf(stderr, "semantics: class-mean features of %lld real images...\n", (long long)total);
    for (int64_t s0 = 0; s0 < total; s0 += chunk) {
        int b = (int)(total - s0 < chunk ? total - s0 : chunk);
        if ((s = sardfq_dataset_read(ds, s0, b, x, labels)) ||
            (s = features(m, st, x, b, img, D, K, feat, logits))) {
            cli_lib_fail(s, "semantics: real images");
            goto done;
        }
        for (int i = 0; i < b; i++) {
            if (labels[i] < 0 || labels[i] >= K)
                continue;
            count[labels[i]]++;
            for (int d = 0; d < D; d++)
                means[(size_t)labels[i] * D + d] += feat[(size_t)i * D + d];
        }
    }
    for (int k = 0; k < K; k++)
        for (int d = 0; d < D; d++)
            means[(size_t)k * D + d] /= count[k] > 0 ? count[k] : 1;

    printf("| variant | seconds | FP arg-max = target class | FP arg-max among the image's target classes | cosine to real class mean |\n");
    printf("|---|---:|---:|---:|---:|\n");
    /* real: n images, classes cycling, taken in order of the data set */
    {
        int got = 0;
        for (int64_t s0 = 0; s0 < total && got < n; s0 += chunk) {
            int b = (int)(total - s0 < chunk ? total - s0 : chunk);
            float *tmp = malloc(sizeof(float) * img * (size_t)b);
            if (!tmp || (s = sardfq_dataset_read(ds, s0, b, tmp, labels))) {
                free(tmp);
                cli_fail("semantics: cannot read real images");
                goto done;
            }
            for (int i = 0; i < b && got < n; i++)
                if (labels[i] == got % K) {
                    memcpy(x + (size_t)got * img, tmp + (size_t)i * img, sizeof(float) * img);
                    cls[got++] = labels[i];
                }
            free(tmp);
        }
        double tgt, set, cs;
        if ((s = features(m, st, x, got, img, D, K, feat, logits))) {
            cli_lib_fail(s, "semantics: real images");
            goto done;
        }
        score(feat, logits, cls, NULL, got, D, K, means, &tgt, &set, &cs);
        printf("| real (%d test images) | - | %.3f | %.3f | %.3f |\n", got, tgt, set, cs);
        fflush(stdout);
    }
    int done_variants = 0;
    for (size_t k = 0; k < sizeof VARIANTS / sizeof VARIANTS[0]; k++) {
        const variant *va = &VARIANTS[k];
        if (only && !in_list(only, va->name))
            continue;
        sardfq_generator_params gp;
        sardfq_generator_default_params(&gp);
        gp.method = va->method;
        gp.use_apa = va->apa;
        gp.use_msr = va->msr;
        gp.use_sl = va->sl;
        cli_gen_options_apply(&go, &gp);
        sardfq_generator *g = NULL;
        fprintf(stderr, "semantics: %s...\n", va->name);
        double t0 = cli_now();
        if ((s = sardfq_generator_create(m, &gp, &g)) ||
            (s = cli_set_head_align(g)) ||
            (s = sardfq_generator_run(g, NULL))) {
            sardfq_generator_free(g);
            cli_lib_fail(s, "semantics: %s", va->name);
            goto done;
        }
        double secs = cli_now() - t0;
        s = sardfq_generator_get_images(g, x, (size_t)n * img);
        if (!s)
            s = sardfq_generator_get_targets(g, targets, (size_t)n * K);
        sardfq_generator_free(g);
        if (s || (s = features(m, st, x, (int)n, img, D, K, feat, logits))) {
            cli_lib_fail(s, "semantics: %s", va->name);
            goto done;
        }
        for (int i = 0; i < n; i++)
            cls[i] = argmax(targets + (size_t)i * K, K);
        double tgt, set, cs;
        score(feat, logits, cls, targets, (int)n, D, K, means, &tgt, &set, &cs);
        printf("| %s | %.1f | %.3f | %.3f | %.3f |\n", va->name, secs, tgt, set, cs);
        fflush(stdout);
        done_variants++;
    }
    printf("variants=%d n=%ld iters=%ld seed=%ld\n", done_variants, go.n, go.iters, go.seed);
    rc = CLI_EXIT_OK;
done:
    free(x), free(feat), free(logits), free(targets), free(means), free(cls), free(count), free(labels);
    sardfq_state_free(st);
    sardfq_dataset_free(ds);
    sardfq_model_free(m);
    return rc;
}
