/* cli_quantize.c - `sardfq quantize`: calibration images (a file, synthesis
 * or real images) -> quantized model -> optional evaluation. */
#include "cli.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void cli_usage_quantize(FILE *f)
{
    fputs("usage: sardfq quantize (--out Q.safetensors | --eval PATH) [--model M]\n"
          "           (--calib FILE | --synth noise|psaq|sardfq | --real PATH)\n"
          "           [--wbits 4] [--abits 4] [--scheme repq|minmax] [--keep LAYER=W,A]...\n"
          "           [--n 32] [--seed S] [--iters 1000] [--no-apa] [--no-msr] [--no-sl]\n"
          "           [--alpha A] [--prior gmm|laplace] [--prior-k K] [--head-align W]\n"
          "           [--head-align-form cosine|ssim] [--threads T]\n"
          "           [--recon-iters N [--recon-attn W]] [--save-calib FILE]\n"
          "           [--out Q] [--eval PATH [--limit N]]\n"
          "\n"
          "Quantize the model with a calibration set: a file written by `sardfq synth`\n"
          "(--calib; with --n, its first n images), images synthesised now (--synth,\n"
          "the options of `sardfq synth`),\n"
          "or --n real images drawn with --seed from the labelled set PATH (a folder as\n"
          "for `sardfq eval`; an IDX folder with both splits gives the t10k split, so\n"
          "point it at a folder holding only the train files to calibrate on training\n"
          "images). --scheme repq (default) is RepQ-ViT's quantizer, minmax PSAQ-ViT's.\n"
          "--keep LAYER=W,A overrides the bits of the layers matching LAYER (fnmatch\n"
          "pattern over names such as patch_embed, blocks.3.mlp.fc2, blocks.*.attn.qkv,\n"
          "blocks.0.attn.matmul2, head; Swin: layers.1.blocks.0.attn.qkv,\n"
          "layers.2.downsample.reduction); 0 keeps that side in floating point.\n"
          "--recon-iters N > 0 adds block reconstruction (N Adam iterations per block,\n"
          "SARDFQ uses 100; repq only) after the calibration; --recon-attn W adds W\n"
          "times the head-wise attention distillation term to it (default 0, off).\n"
          "Writes Q.safetensors (sardfq eval/info read it), if --out is given. With\n"
          "--eval, evaluates the\n"
          "floating-point and the quantized model on PATH (its first N images with\n"
          "--limit); the last line of stdout is\n"
          "  fp_top1=<percent> q_top1=<percent> n=<count>\n",
          f);
}

static int recon_progress(void *user, int64_t done, int64_t total, const char *stage)
{
    (void)user;
    if (done == total || done % 20 == 0)
        fprintf(stderr, "%s %lld/%lld%s", stage, (long long)done, (long long)total, done == total ? "\n" : "\r");
    return 0;
}

/* --keep LAYER=W,A */
static int parse_keep(const char *v, char *layer, size_t n, long *w, long *a)
{
    const char *eq = strrchr(v, '=');
    if (!eq || eq == v || (size_t)(eq - v) >= n)
        return -1;
    memcpy(layer, v, (size_t)(eq - v));
    layer[eq - v] = 0;
    char *end;
    *w = strtol(eq + 1, &end, 10);
    if (*end != ',')
        return -1;
    *a = strtol(end + 1, &end, 10);
    if (*end || *w < 0 || *w > 8 || *a < 0 || *a > 8 || *w == 1 || *a == 1)
        return -1;
    return 0;
}

/* n distinct indices of [0, total), drawn with a seeded Fisher-Yates. */
static void draw_indices(int64_t total, int n, uint64_t seed, int64_t *out)
{
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)total);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    if (!perm) {
        for (int i = 0; i < n; i++)
            out[i] = i;
        return;
    }
    for (int64_t i = 0; i < total; i++)
        perm[i] = i;
    for (int i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        const uint64_t r = (x * 0x2545F4914F6CDD1Dull) >> 11;
        const int64_t j = i + (int64_t)(r % (uint64_t)(total - i));
        const int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        out[i] = perm[i];
    }
    free(perm);
}

typedef struct {
    const char *calib, *synth, *real, *eval, *save_calib;
} sources;

/* The calibration images into *images (*n of them); 0 or an exit code. */
static int get_images(sardfq_model *m, const sardfq_model_info *info, const sources *src,
                      const cli_gen_options *go, const sardfq_generator_params *gp, float **images, int *n)
{
    const size_t per = (size_t)info->in_chans * info->img_h * info->img_w;
    sardfq_status s;
    if (src->calib) {
        int c = 0, h = 0, w = 0, k = 0;
        if ((s = sardfq_calib_load(src->calib, NULL, NULL, n, &c, &h, &w, &k)))
            return cli_lib_fail(s, "quantize: cannot read %s", src->calib);
        if (c != info->in_chans || h != info->img_h || w != info->img_w)
            return cli_fail("quantize: %s holds %dx%dx%d images but the model takes %dx%dx%d", src->calib, c,
                            h, w, info->in_chans, info->img_h, info->img_w);
        if (*n <= 0)
            return cli_fail("quantize: %s holds no images", src->calib);
        *images = malloc(sizeof(float) * per * (size_t)*n);
        if (!*images)
            return cli_fail("quantize: out of memory");
        if ((s = sardfq_calib_load(src->calib, *images, NULL, n, &c, &h, &w, &k)))
            return cli_lib_fail(s, "quantize: cannot read %s", src->calib);
        if (go->n_given && go->n < *n) /* the first --n images */
            *n = (int)go->n;
        return 0;
    }
    if (src->real) {
        sardfq_dataset *d = NULL;
        if ((s = sardfq_dataset_open(src->real, m, &d)))
            return cli_lib_fail(s, "quantize: cannot open %s", src->real);
        const int64_t total = sardfq_dataset_count(d);
        *n = (int)(go->n < total ? go->n : total);
        int64_t *idx = malloc(sizeof(int64_t) * (size_t)*n);
        *images = malloc(sizeof(float) * per * (size_t)*n);
        int rc = 0;
        if (!idx || !*images) {
            rc = cli_fail("quantize: out of memory");
        } else {
            draw_indices(total, *n, (uint64_t)go->seed, idx);
            for (int i = 0; i < *n && !rc; i++) {
                int32_t label;
                if ((s = sardfq_dataset_read(d, idx[i], 1, *images + per * (size_t)i, &label)))
                    rc = cli_lib_fail(s, "quantize: cannot read image %lld of %s", (long long)idx[i], src->real);
            }
        }
        free(idx);
        sardfq_dataset_free(d);
        return rc;
    }
    *n = gp->n_images;
    float *t = malloc(sizeof(float) * (size_t)*n * info->num_classes);
    *images = malloc(sizeof(float) * per * (size_t)*n);
    if (!t || !*images) {
        free(t);
        return cli_fail("quantize: out of memory");
    }
    sardfq_synth_report r;
    memset(&r, 0, sizeof r);
    int rc = cli_synthesize("synth", m, info, gp, *images, t, &r);
    if (!rc && src->save_calib &&
        (s = sardfq_calib_save(src->save_calib, *images, t, *n, info->in_chans, info->img_h, info->img_w,
                               info->num_classes)))
        rc = cli_lib_fail(s, "quantize: cannot write %s", src->save_calib);
    free(t);
    return rc;
}

static int top1(sardfq_model *m, const char *path, long limit, const char *what, double *pct, int64_t *n)
{
    sardfq_dataset *d = NULL;
    sardfq_status s = sardfq_dataset_open(path, m, &d);
    if (s)
        return cli_lib_fail(s, "quantize: cannot open %s", path);
    sardfq_eval_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    sardfq_eval_params ep;
    sardfq_eval_default_params(&ep);
    ep.limit = limit;
    s = sardfq_evaluate(m, d, &ep, &r);
    sardfq_dataset_free(d);
    if (s)
        return cli_lib_fail(s, "quantize: evaluating the %s model", what);
    *pct = r.n ? 100.0 * (double)r.top1_correct / (double)r.n : 0;
    *n = r.n;
    return 0;
}

int cli_quantize(int argc, char **argv)
{
    const char *model_path = cli_default_model(), *out = NULL, *v;
    sources src = {0};
    sardfq_quant_params qp;
    sardfq_quant_default_params(&qp);
    sardfq_generator_params gp;
    sardfq_generator_default_params(&gp);
    cli_gen_options go;
    cli_gen_options_init(&go);
    enum { MAX_KEEP = 64 };
    const char *keeps[MAX_KEEP];
    int nkeep = 0;
    long recon = 0, limit = 0;
    double recon_attn = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        long x;
        if (cli_is_help(argv[i])) {
            cli_usage_quantize(stdout);
            return CLI_EXIT_OK;
        }
        if ((r = cli_option("quantize", argc, argv, &i, "model", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            model_path = v;
        } else if ((r = cli_option("quantize", argc, argv, &i, "out", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            out = v;
        } else if ((r = cli_option("quantize", argc, argv, &i, "calib", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            src.calib = v;
        } else if ((r = cli_option("quantize", argc, argv, &i, "real", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            src.real = v;
        } else if ((r = cli_option("quantize", argc, argv, &i, "eval", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            src.eval = v;
        } else if ((r = cli_option("quantize", argc, argv, &i, "save-calib", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            src.save_calib = v;
        } else if ((r = cli_option("quantize", argc, argv, &i, "synth", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            src.synth = v;
            if (!strcmp(v, "noise"))
                gp.method = SARDFQ_SYNTH_NOISE;
            else if (!strcmp(v, "psaq"))
                gp.method = SARDFQ_SYNTH_PSAQ;
            else if (!strcmp(v, "sardfq"))
                gp.method = SARDFQ_SYNTH_SARDFQ;
            else
                return cli_usage_error("quantize: unknown --synth '%s' (noise, psaq, sardfq)", v);
        } else if ((r = cli_option("quantize", argc, argv, &i, "wbits", &v)) != 0) {
            if (r < 0 || cli_parse_long("quantize", "wbits", v, 2, 8, &x) < 0)
                return CLI_EXIT_USAGE;
            qp.weight_bits = (int32_t)x;
        } else if ((r = cli_option("quantize", argc, argv, &i, "abits", &v)) != 0) {
            if (r < 0 || cli_parse_long("quantize", "abits", v, 2, 8, &x) < 0)
                return CLI_EXIT_USAGE;
            qp.act_bits = (int32_t)x;
        } else if ((r = cli_option("quantize", argc, argv, &i, "scheme", &v)) != 0) {
            if (r < 0 || cli_parse_scheme("quantize", v, &qp.scheme) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("quantize", argc, argv, &i, "limit", &v)) != 0) {
            if (r < 0 || cli_parse_long("quantize", "limit", v, 1, INT64_MAX / 2, &limit) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("quantize", argc, argv, &i, "recon-iters", &v)) != 0) {
            if (r < 0 || cli_parse_long("quantize", "recon-iters", v, 0, 1000000, &recon) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("quantize", argc, argv, &i, "recon-attn", &v)) != 0) {
            if (r < 0 || cli_parse_nonneg("quantize", "recon-attn", v, &recon_attn) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("quantize", argc, argv, &i, "keep", &v)) != 0) {
            char layer[128];
            long w, a;
            if (r < 0)
                return CLI_EXIT_USAGE;
            if (parse_keep(v, layer, sizeof layer, &w, &a) < 0)
                return cli_usage_error("quantize: --keep wants LAYER=W,A with bits 0 or 2..8 (got '%s')", v);
            if (nkeep == MAX_KEEP)
                return cli_usage_error("quantize: at most %d --keep options", MAX_KEEP);
            keeps[nkeep++] = v;
        } else if ((r = cli_gen_option("quantize", argc, argv, &i, &go)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--no-apa")) {
            gp.use_apa = 0;
        } else if (!strcmp(argv[i], "--no-msr")) {
            gp.use_msr = 0;
        } else if (!strcmp(argv[i], "--no-sl")) {
            gp.use_sl = 0;
        } else {
            return cli_usage_error("quantize: unknown option '%s'", argv[i]);
        }
    }
    if (!out && !src.eval)
        return cli_usage_error("quantize: --out FILE or --eval PATH is required");
    if (!model_path)
        return cli_usage_error("quantize: --model is required (no installed default model)");
    if (!!src.calib + !!src.synth + !!src.real != 1)
        return cli_usage_error("quantize: give exactly one of --calib FILE, --synth METHOD, --real PATH");
    if ((!gp.use_apa || !gp.use_msr || !gp.use_sl) && !(src.synth && gp.method == SARDFQ_SYNTH_SARDFQ))
        return cli_usage_error("quantize: --no-apa/--no-msr/--no-sl apply to --synth sardfq only");
    if (limit && !src.eval)
        return cli_usage_error("quantize: --limit applies to --eval");
    if (src.save_calib && !src.synth)
        return cli_usage_error("quantize: --save-calib applies to --synth only");
    if (recon > 0 && qp.scheme != SARDFQ_SCHEME_REPQ)
        return cli_usage_error("quantize: --recon-iters needs --scheme repq");
    if (recon_attn > 0 && recon <= 0)
        return cli_usage_error("quantize: --recon-attn applies with --recon-iters N > 0");
    cli_gen_options_apply(&go, &gp);
    qp.n_threads = (int32_t)go.threads;
    if (recon > 0) {
        qp.recon_iters = (int32_t)recon;
        qp.progress = recon_progress;
    }

    int rc = CLI_EXIT_FAIL;
    sardfq_model *m = cli_load_model(model_path, (int)go.threads, 0);
    sardfq_model *qm = NULL;
    sardfq_quantizer *q = NULL;
    float *images = NULL;
    int n = 0;
    sardfq_model_info info;
    sardfq_status s;
    if (!m || cli_model_info(m, &info))
        goto done;
    if ((s = sardfq_quantizer_create(m, &qp, &q))) {
        cli_lib_fail(s, "quantize: cannot create the quantizer");
        goto done;
    }
    if (recon_attn > 0 && (s = sardfq_quantizer_set_recon_attn(q, (float)recon_attn))) {
        cli_lib_fail(s, "quantize: --recon-attn");
        goto done;
    }
    for (int k = 0; k < nkeep; k++) {
        char layer[128];
        long w, a;
        parse_keep(keeps[k], layer, sizeof layer, &w, &a);
        if ((s = sardfq_quantizer_set_layer(q, layer, (int32_t)w, (int32_t)a))) {
            cli_lib_fail(s, "quantize: --keep %s", keeps[k]);
            goto done;
        }
    }
    double t0 = cli_now();
    if ((rc = get_images(m, &info, &src, &go, &gp, &images, &n)) != 0) {
        rc = rc == CLI_EXIT_ELSEWHERE ? CLI_EXIT_OK : CLI_EXIT_FAIL; /* sardfq-mpi: rank 0 goes on */
        goto done;
    }
    rc = CLI_EXIT_FAIL;
    const double t_images = cli_now() - t0;
    t0 = cli_now();
    if ((s = sardfq_quantizer_calibrate(q, images, n))) {
        cli_lib_fail(s, "quantize: calibration failed");
        goto done;
    }
    const double t_calib = cli_now() - t0;
    t0 = cli_now();
    if (recon > 0 && (s = sardfq_quantizer_reconstruct(q, images, n))) {
        cli_lib_fail(s, "quantize: block reconstruction failed");
        goto done;
    }
    const double t_recon = cli_now() - t0;
    if ((s = sardfq_quantizer_finalize(q, &qm)) || (out && (s = sardfq_model_save(qm, out)))) {
        cli_lib_fail(s, "quantize: cannot write %s", out ? out : "the quantized model");
        goto done;
    }
    printf("images=%d source=%s scheme=%s wbits=%d abits=%d recon_iters=%ld seconds_images=%.2f "
           "seconds_calibrate=%.3f seconds_reconstruct=%.2f out=%s\n",
           n, src.calib ? "file" : src.real ? "real" : src.synth, qp.scheme == SARDFQ_SCHEME_REPQ ? "repq" : "minmax",
           (int)qp.weight_bits, (int)qp.act_bits, recon, t_images, t_calib, t_recon, out ? out : "none");
    if (src.eval) {
        double fp, qt;
        int64_t nf, nq;
        t0 = cli_now();
        if (top1(m, src.eval, limit, "floating-point", &fp, &nf) || top1(qm, src.eval, limit, "quantized", &qt, &nq))
            goto done;
        printf("seconds_eval=%.2f\n", cli_now() - t0);
        printf("fp_top1=%.2f q_top1=%.2f n=%lld\n", fp, qt, (long long)nq);
    }
    rc = CLI_EXIT_OK;
done:
    free(images);
    sardfq_model_free(qm);
    sardfq_quantizer_free(q);
    sardfq_model_free(m);
    return rc;
}
