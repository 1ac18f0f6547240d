/* cli_bench.c - `sardfq bench`: forward and forward+backward throughput of a
 * model, next to what OpenBLAS sgemm reaches on this machine in the same run.
 *
 * Procedure, in this order:
 *   (a) cblas_sgemm 1024x1024x1024, one warm-up then the median of R runs;
 *   (b) sardfq_model_forward on a random batch, one warm-up then median of R;
 *   (c) the peak RSS at that point (the forward peak);
 *   (d) sardfq_model_forward_ex(BACKWARD | ATTENTION) + sardfq_model_backward
 *       timed as one unit, one warm-up then median of R; then the peak RSS.
 * The last line of stdout is
 *   fwd_gflops=X sgemm_gflops=Y ratio=X/Y bwd_over_fwd=R peak_rss_mb=M
 * where bwd_over_fwd = t(forward_ex + backward) / t(forward) and M is the
 * forward peak RSS in MiB.
 *
 * With --synth METHOD (batch default 32), (e) also times generator steps
 * (one warm-up, then the median of R) and prints a last line
 *   synth_step_s=S model_s=T loss_share=F fwd_bwd_s=U
 * where T is the part of a step inside the model's forward and backward
 * calls, F = 1 - T/S (losses, jitter, resizes, Adam) and U the plain
 * forward_ex + backward of the same batch, from (d). */
#include "cli.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

void cli_usage_bench(FILE *f)
{
    fputs("usage: sardfq bench (--model M | --arch A) [--batch B] [--threads T]\n"
          "                    [--repeat R] [--heads N] [--quant WxAy [--scheme S]]\n"
          "                    [--executor int|fake]\n"
          "\n"
          "Times a 1024^3 OpenBLAS sgemm, the forward pass and the forward+backward\n"
          "pass (to the input, with attention kept) on a random batch; each is the\n"
          "median of R runs after one warm-up. The last line of standard output is\n"
          "  fwd_gflops=X sgemm_gflops=Y ratio=X/Y bwd_over_fwd=R peak_rss_mb=M\n"
          "(R is \"none\" for a quantized model, which has no backward pass)\n"
          "\n"
          "  --model M    a safetensors model\n"
          "  --arch A     random weights (seed 0) of deit_tiny, deit_small, deit_base,\n"
          "               vit_tiny, vit_small, vit_base, swin_tiny, swin_small or\n"
          "               swin_base (224x224, 1000 classes)\n"
          "  --batch B    images per call (default 8)\n"
          "  --threads T  threads for the model and for the sgemm (default: the number\n"
          "               of online CPUs)\n"
          "  --repeat R   timed runs per measurement (default 5)\n"
          "  --heads N    number of attention heads, when the file does not say\n"
          "  --quant WxAy instead: quantize the model (W8A8 .. W2A2; --scheme repq or\n"
          "               minmax) on 32 noise images and time its forward against the\n"
          "               float forward, alternated; a quantized --model is timed\n"
          "               against its own fake-quantized executor. Last line:\n"
          "               fwd_gflops=F q_fwd_gflops=Q q_speedup=S weight_mb=W\n"
          "               q_weight_mb=V peak_rss_mb=M rss_mb=N (N: resident now,\n"
          "               both models alive)\n"
          "  --save F     also save the model it times to F (with --quant on a\n"
          "               floating-point model: the quantized one), e.g. for sardfq\n"
          "               export\n"
          "  --executor int|fake  the quantized model's executor (default int)\n"
          "  --synth M    also time synthesis steps of method M (noise, psaq, sardfq)\n"
          "               on a batch of B images (default 32); last line:\n"
          "               synth_step_s=S model_s=T loss_share=F fwd_bwd_s=U\n",
          f);
}

static const char *const archs[] = {"deit_tiny", "deit_small", "deit_base", "vit_tiny",  "vit_small",
                                    "vit_base",  "swin_tiny",  "swin_small", "swin_base"};

/* (a): GFLOP/s of a square sgemm of size n, median of repeat runs. */
static int bench_sgemm(int n, int repeat, double *gflops, double *median_s)
{
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double *t = malloc((size_t)repeat * sizeof *t);
    uint64_t rng = 1;
    if (!a || !b || !c || !t) {
        free(a), free(b), free(c), free(t);
        return cli_fail("bench: out of memory for the %dx%d sgemm", n, n);
    }
    cli_fill_normal(a, nn, 1.0f, &rng);
    cli_fill_normal(b, nn, 1.0f, &rng);
    for (int r = -1; r < repeat; r++) {
        double t0 = cli_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        if (r >= 0)
            t[r] = cli_now() - t0;
    }
    *median_s = cli_median(t, repeat);
    *gflops = 2.0 * (double)n * n * n / *median_s * 1e-9;
    free(a), free(b), free(c), free(t);
    return 0;
}

typedef struct bench_buffers {
    float *images, *logits, *dlogits, *dimages;
    double *t;
} bench_buffers;

static void free_buffers(bench_buffers *b)
{
    free(b->images), free(b->logits), free(b->dlogits), free(b->dimages), free(b->t);
}

int cli_bench(int argc, char **argv)
{
    const char *model_path = NULL, *arch = NULL, *v;
    int synth = -1, batch_given = 0, qw = 0, qa = 0;
    int32_t qscheme = SARDFQ_SCHEME_REPQ;
    long batch = 8, threads = cli_online_cpus(), repeat = 5, heads = 0;
    double sgemm_gflops = 0, sgemm_s = 0, t_fwd, t_fb, rss_fwd, rss_fb;
    sardfq_model *m = NULL;
    sardfq_state *st = NULL;
    sardfq_model_info info;
    sardfq_status s = SARDFQ_OK;
    bench_buffers buf;
    size_t image_floats;
    uint64_t rng = 42;
    int r, n;

    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cli_usage_bench(stdout);
            return CLI_EXIT_OK;
        }
        if ((r = cli_option("bench", argc, argv, &i, "model", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            model_path = v;
        } else if ((r = cli_option("bench", argc, argv, &i, "arch", &v)) != 0) {
            size_t k, nk = sizeof archs / sizeof archs[0];
            if (r < 0)
                return CLI_EXIT_USAGE;
            for (k = 0; k < nk && strcmp(v, archs[k]) != 0; k++)
                ;
            if (k == nk)
                return cli_usage_error("bench: unknown --arch '%s' (deit_tiny, deit_small, "
                                       "deit_base, vit_tiny, vit_small, vit_base, swin_tiny, "
                                       "swin_small, swin_base)",
                                       v);
            arch = v;
        } else if ((r = cli_option("bench", argc, argv, &i, "batch", &v)) != 0) {
            if (r < 0 || cli_parse_long("bench", "batch", v, 1, 4096, &batch) != 0)
                return CLI_EXIT_USAGE;
            batch_given = 1;
        } else if ((r = cli_option("bench", argc, argv, &i, "synth", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            if (!strcmp(v, "psaq"))
                synth = SARDFQ_SYNTH_PSAQ;
            else if (!strcmp(v, "sardfq"))
                synth = SARDFQ_SYNTH_SARDFQ;
            else
                return cli_usage_error("bench: unknown --synth '%s' (psaq, sardfq)", v);
        } else if ((r = cli_option("bench", argc, argv, &i, "quant", &v)) != 0) {
            if (r < 0 || cli_parse_wa(v, &qw, &qa) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("bench", argc, argv, &i, "save", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            cli_bench_save = v;
        } else if ((r = cli_option("bench", argc, argv, &i, "scheme", &v)) != 0) {
            if (r < 0 || cli_parse_scheme("bench", v, &qscheme) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("bench", argc, argv, &i, "executor", &v)) != 0) {
            if (r < 0 || cli_parse_executor("bench", v) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("bench", argc, argv, &i, "threads", &v)) != 0) {
            if (r < 0 || cli_parse_long("bench", "threads", v, 1, 4096, &threads) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("bench", argc, argv, &i, "repeat", &v)) != 0) {
            if (r < 0 || cli_parse_long("bench", "repeat", v, 1, 100000, &repeat) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("bench", argc, argv, &i, "heads", &v)) != 0) {
            if (r < 0 || cli_parse_long("bench", "heads", v, 1, 4096, &heads) != 0)
                return CLI_EXIT_USAGE;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("bench: unknown option '%s'", argv[i]);
        } else {
            return cli_usage_error("bench: unexpected argument '%s'", argv[i]);
        }
    }
    if ((model_path == NULL) == (arch == NULL))
        return cli_usage_error("bench: give exactly one of --model M and --arch A");
    if (synth >= 0 && !batch_given)
        batch = 32;
    n = (int)batch;

    if (qw > 0) { /* the quantized forward against the float one */
        if (synth >= 0)
            return cli_usage_error("bench: --quant and --synth are separate measurements");
        if (model_path) {
            if ((m = cli_load_model(model_path, (int)threads, (int)heads)) == NULL)
                return CLI_EXIT_FAIL;
        } else {
            sardfq_model_params p;
            sardfq_model_default_params(&p);
            p.n_threads = (int32_t)threads;
            p.num_heads = (int32_t)heads;
            s = sardfq_model_create_random(arch, 0, &p, &m);
            if (s == SARDFQ_OK && (s = sardfq_model_set_executor(m, cli_executor)) != SARDFQ_OK)
                sardfq_model_free(m);
            if (s != SARDFQ_OK)
                return cli_lib_fail(s, "cannot create a random %s", arch);
        }
        r = cli_bench_quant(m, model_path ? model_path : arch, qw, qa, qscheme, n, (int)repeat, (int)threads);
        sardfq_model_free(m);
        return r;
    }
    /* (a) The machine's ceiling, before the model exists, so that its
     * buffers are gone before the forward's peak RSS is read. */
    openblas_set_num_threads((int)threads);
    if (bench_sgemm(1024, (int)repeat, &sgemm_gflops, &sgemm_s) != 0)
        return CLI_EXIT_FAIL;

    if (model_path) {
        if ((m = cli_load_model(model_path, (int)threads, (int)heads)) == NULL)
            return CLI_EXIT_FAIL;
    } else {
        sardfq_model_params p;
        sardfq_model_default_params(&p);
        p.n_threads = (int32_t)threads;
        p.num_heads = (int32_t)heads;
        s = sardfq_model_create_random(arch, 0, &p, &m);
        if (s != SARDFQ_OK)
            return cli_lib_fail(s, "cannot create a random %s", arch);
    }
    if (cli_bench_save && (s = sardfq_model_save(m, cli_bench_save)) != SARDFQ_OK) {
        sardfq_model_free(m);
        return cli_lib_fail(s, "bench: cannot save %s", cli_bench_save);
    }
    if (cli_model_info(m, &info) != 0) {
        sardfq_model_free(m);
        return CLI_EXIT_FAIL;
    }

    image_floats = (size_t)info.in_chans * (size_t)info.img_h * (size_t)info.img_w;
    memset(&buf, 0, sizeof buf);
    buf.images = malloc((size_t)n * image_floats * sizeof(float));
    buf.dimages = malloc((size_t)n * image_floats * sizeof(float));
    buf.logits = malloc((size_t)n * (size_t)info.num_classes * sizeof(float));
    buf.dlogits = malloc((size_t)n * (size_t)info.num_classes * sizeof(float));
    buf.t = malloc((size_t)repeat * sizeof(double));
    if (!buf.images || !buf.dimages || !buf.logits || !buf.dlogits || !buf.t) {
        free_buffers(&buf);
        sardfq_model_free(m);
        return cli_fail("bench: out of memory for a batch of %d", n);
    }
    cli_fill_normal(buf.images, (size_t)n * image_floats, 1.0f, &rng);
    cli_fill_normal(buf.dlogits, (size_t)n * (size_t)info.num_classes,
                    1.0f / (float)info.num_classes, &rng);

    /* (b) forward */
    for (int k = -1; k < repeat && s == SARDFQ_OK; k++) {
        double t0 = cli_now();
        s = sardfq_model_forward(m, buf.images, n, buf.logits);
        if (k >= 0)
            buf.t[k] = cli_now() - t0;
    }
    if (s != SARDFQ_OK) {
        free_buffers(&buf);
        sardfq_model_free(m);
        return cli_lib_fail(s, "bench: forward failed");
    }
    t_fwd = cli_median(buf.t, (int)repeat);
    /* (c) */
    rss_fwd = cli_peak_rss_mib();

    /* (d) forward keeping activations and attention, then backward (a
     * quantized model has none: skipped) */
    const int quantized = sardfq_model_get_metadata(m, "sardfq.quant.scheme") != NULL;
    if (quantized && synth >= 0) {
        free_buffers(&buf);
        sardfq_model_free(m);
        return cli_usage_error("bench: --synth needs a floating-point model (this one is quantized)");
    }
    s = quantized ? SARDFQ_E_STATE : sardfq_state_create(m, &st);
    for (int k = -1; k < repeat && s == SARDFQ_OK; k++) {
        double t0 = cli_now();
        s = sardfq_model_forward_ex(m, st, buf.images, n,
                                    SARDFQ_FORWARD_BACKWARD | SARDFQ_FORWARD_ATTENTION,
                                    buf.logits);
        if (s == SARDFQ_OK)
            s = sardfq_model_backward(m, st, buf.dlogits, NULL, buf.dimages);
        if (k >= 0)
            buf.t[k] = cli_now() - t0;
    }
    if (s != SARDFQ_OK && !quantized) {
        free_buffers(&buf);
        sardfq_state_free(st);
        sardfq_model_free(m);
        return cli_lib_fail(s, "bench: forward+backward failed");
    }
    t_fb = quantized ? 0 : cli_median(buf.t, (int)repeat);
    rss_fb = cli_peak_rss_mib();
    sardfq_state_free(st);

    /* (e) synthesis steps */
    double t_step = 0, t_model = 0;
    if (synth >= 0) {
        sardfq_generator_params gp;
        sardfq_generator_default_params(&gp);
        gp.method = synth;
        gp.n_images = n;
        gp.micro_batch = n;
        gp.iters = (int32_t)repeat + 1;
        gp.rounds = 1;
        gp.warmup = 1;
        sardfq_generator *g = NULL;
        sardfq_synth_report rep;
        memset(&rep, 0, sizeof rep);
        rep.struct_size = sizeof rep;
        double *tm = malloc((size_t)repeat * sizeof(double));
        s = tm ? sardfq_generator_create(m, &gp, &g) : SARDFQ_E_NOMEM;
        for (int k = -1; k < repeat && s == SARDFQ_OK; k++) {
            s = sardfq_generator_step(g, &rep);
            if (k >= 0) {
                buf.t[k] = rep.seconds;
                tm[k] = rep.model_seconds;
            }
        }
        if (s == SARDFQ_OK) {
            t_step = cli_median(buf.t, (int)repeat);
            t_model = cli_median(tm, (int)repeat);
        }
        free(tm);
        sardfq_generator_free(g);
        if (s != SARDFQ_OK) {
            free_buffers(&buf);
            sardfq_model_free(m);
            return cli_lib_fail(s, "bench: synthesis step failed");
        }
    }
    sardfq_model_free(m);
    free_buffers(&buf);

    {
        double flops = info.flops_per_image * n;
        double fwd_gflops = flops / t_fwd * 1e-9;
        double ratio = sgemm_gflops > 0 ? fwd_gflops / sgemm_gflops : 0.0;
        double bwd_over_fwd = t_fb / t_fwd;

        printf("sardfq bench: %s%s\n", model_path ? model_path : arch,
               model_path ? "" : " (random weights, seed 0)");
        printf("  input %dx%dx%d, patch %d, dim %d, depth %d, heads %d, %d classes\n",
               info.in_chans, info.img_h, info.img_w, info.patch_size, info.embed_dim,
               info.depth, info.num_heads, info.num_classes);
        printf("  %lld parameters, weights %.1f MiB (float32), %.3f GFLOP/image forward\n",
               (long long)info.num_params, (double)info.num_params * 4.0 / (1024.0 * 1024.0),
               info.flops_per_image * 1e-9);
        printf("  batch %d, threads %ld, median of %ld runs after 1 warm-up\n\n", n, threads,
               repeat);
        printf("  %-28s %10s %10s %10s %10s\n", "measurement", "median ms", "img/s", "ms/img",
               "GFLOP/s");
        printf("  %-28s %10.2f %10s %10s %10.2f\n", "sgemm 1024^3 (OpenBLAS)", sgemm_s * 1e3,
               "-", "-", sgemm_gflops);
        printf("  %-28s %10.2f %10.2f %10.3f %10.2f\n", "forward", t_fwd * 1e3, n / t_fwd,
               t_fwd * 1e3 / n, fwd_gflops);
        if (quantized)
            printf("  %-28s %10s   (quantized model: no backward)\n", "forward_ex + backward", "-");
        else
            printf("  %-28s %10.2f %10.2f %10.3f %10s\n", "forward_ex + backward", t_fb * 1e3, n / t_fb,
                   t_fb * 1e3 / n, "-");
        printf("\n  %-40s %.3f\n", "forward GFLOP/s / sgemm GFLOP/s", ratio);
        if (!quantized)
            printf("  %-40s %.3f\n", "time (forward_ex + backward) / forward", bwd_over_fwd);
        printf("  %-40s %.1f MiB\n", "peak RSS after forward", rss_fwd);
        printf("  %-40s %.1f MiB\n", "peak RSS after forward + backward", rss_fb);
        if (synth >= 0) {
            printf("  %-40s %.3f s\n", synth == SARDFQ_SYNTH_PSAQ ? "PSAQ-ViT step" : "SARDFQ step",
                   t_step);
            printf("  %-40s %.3f s\n", "  of which model forward + backward", t_model);
            printf("  %-40s %.1f%%\n", "  of which losses, jitter, resize, Adam",
                   100.0 * (1.0 - t_model / t_step));
            printf("  %-40s %.3f s (x %.0f steps = %.0f s)\n", "full synthesis estimate", t_step, 1000.0,
                   t_step * 1000.0);
        }
        if (quantized)
            printf("fwd_gflops=%.2f sgemm_gflops=%.2f ratio=%.3f bwd_over_fwd=none peak_rss_mb=%.2f\n",
                   fwd_gflops, sgemm_gflops, ratio, rss_fwd);
        else
            printf("fwd_gflops=%.2f sgemm_gflops=%.2f ratio=%.3f bwd_over_fwd=%.3f "
                   "peak_rss_mb=%.2f\n",
                   fwd_gflops, sgemm_gflops, ratio, bwd_over_fwd, rss_fwd);
        if (synth >= 0)
            printf("synth_step_s=%.4f model_s=%.4f loss_share=%.4f fwd_bwd_s=%.4f\n", t_step, t_model,
                   1.0 - t_model / t_step, t_fb);
    }
    return CLI_EXIT_OK;
}
