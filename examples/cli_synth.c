/* cli_synth.c - `sardfq synth`: synthesise calibration images and write
 * DIR/calib.safetensors, DIR/NNN.png and DIR/sheet.png. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_usage_synth(FILE *f)
{
    fputs("usage: sardfq synth --out DIR [--model M] [--method noise|psaq|sardfq]\n"
          "                    [--no-apa] [--no-msr] [--no-sl] [--alpha A] [--n 32]\n"
          "                    [--iters 1000] [--seed S] [--threads T] [--heads N]\n"
          "                    [--prior gmm|laplace] [--prior-k K] [--head-align W]\n"
          "                    [--head-align-form cosine|ssim]\n"
          "\n"
          "Synthesise calibration images from the model alone. sardfq (default):\n"
          "Attention Priors Alignment (weight --alpha), Multi-Semantic Reinforcement\n"
          "and Soft-Label learning, each switchable off; psaq: PSAQ-ViT's patch-\n"
          "similarity entropy + cross-entropy; noise: Gaussian noise. --head-align W\n"
          "adds W times the inter-head attention alignment term (psaq, sardfq;\n"
          "default 0, off), in the form 1 - cos (default) or 1 - SSIM. Writes\n"
          "DIR/calib.safetensors (images + targets), DIR/NNN.png and DIR/sheet.png;\n"
          "DIR is created if missing. A progress line on stderr shows the step, the\n"
          "loss terms and the time left. The last line of stdout is\n"
          "  images=<n> steps=<s> seconds=<t> target_prob=<p> out=<DIR>\n",
          f);
}

int cli_synth(int argc, char **argv)
{
    const char *model_path = cli_default_model(), *out = NULL, *v;
    sardfq_generator_params p;
    sardfq_generator_default_params(&p);
    long heads = 0;
    cli_gen_options go;
    cli_gen_options_init(&go);
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            cli_usage_synth(stdout);
            return CLI_EXIT_OK;
        }
        if ((r = cli_option("synth", argc, argv, &i, "model", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            model_path = v;
        } else if ((r = cli_option("synth", argc, argv, &i, "out", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            out = v;
        } else if ((r = cli_option("synth", argc, argv, &i, "method", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            if (!strcmp(v, "noise"))
                p.method = SARDFQ_SYNTH_NOISE;
            else if (!strcmp(v, "psaq"))
                p.method = SARDFQ_SYNTH_PSAQ;
            else if (!strcmp(v, "sardfq"))
                p.method = SARDFQ_SYNTH_SARDFQ;
            else
                return cli_usage_error("synth: unknown --method '%s' (noise, psaq, sardfq)", v);
        } else if ((r = cli_option("synth", argc, argv, &i, "heads", &v)) != 0) {
            if (r < 0 || cli_parse_long("synth", "heads", v, 1, 4096, &heads) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_gen_option("synth", argc, argv, &i, &go)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--no-apa")) {
            p.use_apa = 0;
        } else if (!strcmp(argv[i], "--no-msr")) {
            p.use_msr = 0;
        } else if (!strcmp(argv[i], "--no-sl")) {
            p.use_sl = 0;
        } else {
            return cli_usage_error("synth: unknown option '%s'", argv[i]);
        }
    }
    if (!out)
        return cli_usage_error("synth: --out DIR is required");
    if (!model_path)
        return cli_usage_error("synth: --model is required (no installed default model)");
    if (p.method != SARDFQ_SYNTH_SARDFQ && (!p.use_apa || !p.use_msr || !p.use_sl))
        return cli_usage_error("synth: --no-apa/--no-msr/--no-sl apply to --method sardfq only");
    cli_gen_options_apply(&go, &p);

    /* Check the output folder before the long work: create it if missing
     * (and remove it again if we fail before writing anything). Only the
     * process that writes (sardfq-mpi: rank 0) touches it. */
    struct stat st;
    int created = 0;
    if (!cli_is_writer) {
        /* nothing to check */
    } else if (stat(out, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return cli_fail("synth: '%s' exists and is not a folder", out);
        if (access(out, W_OK) != 0)
            return cli_fail("synth: cannot write to '%s': %s", out, strerror(errno));
    } else if (mkdir(out, 0777) == 0) {
        created = 1;
    } else {
        return cli_fail("synth: cannot create '%s': %s", out, strerror(errno));
    }

    int rc = CLI_EXIT_FAIL;
    sardfq_model *m = cli_load_model(model_path, (int)go.threads, (int)heads);
    float *images = NULL, *targets = NULL;
    sardfq_model_info info;
    sardfq_status s;
    if (!m || cli_model_info(m, &info))
        goto done;
    const size_t n_img = (size_t)p.n_images * info.in_chans * info.img_h * info.img_w;
    images = malloc(sizeof(float) * n_img);
    targets = malloc(sizeof(float) * (size_t)p.n_images * info.num_classes);
    if (!images || !targets) {
        cli_fail("synth: out of memory");
        goto done;
    }
    const double t0 = cli_now();
    sardfq_synth_report r;
    memset(&r, 0, sizeof r);
    if ((rc = cli_synthesize("synth", m, &info, &p, images, targets, &r)) != 0) {
        if (rc == CLI_EXIT_ELSEWHERE)
            rc = CLI_EXIT_OK;
        goto done;
    }
    rc = CLI_EXIT_FAIL;
    const double seconds = cli_now() - t0;
    char path[4096];
    snprintf(path, sizeof path, "%s/calib.safetensors", out);
    if ((s = sardfq_calib_save(path, images, targets, p.n_images, info.in_chans, info.img_h, info.img_w,
                               info.num_classes))) {
        cli_lib_fail(s, "synth: cannot write %s", path);
        goto done;
    }
    created = 0; /* the folder now holds a result */
    if ((s = sardfq_images_write_png(out, m, images, p.n_images, 1))) {
        cli_lib_fail(s, "synth: cannot write the PNG images to %s", out);
        goto done;
    }
    printf("images=%d steps=%d seconds=%.2f target_prob=%.4f out=%s\n", p.n_images, r.step, seconds,
           r.target_prob, out);
    rc = CLI_EXIT_OK;
done:
    if (created)
        rmdir(out);
    free(images);
    free(targets);
    sardfq_model_free(m);
    return rc;
}
