/* cli_bench_quant.c - `sardfq bench --quant WxAy`: the quantized forward
 * next to the floating-point forward it came from, in one run.
 *
 * With --arch A the random-weight model is quantized (RepQ-ViT, or
 * --scheme minmax) on 32 Gaussian-noise images, so real-size shapes can be
 * measured; with --model on a floating-point file, that model is; with
 * --model on a quantized file, that file is benched against its own
 * fake-quantized float executor. Timing: R alternated pairs (float,
 * quantized), each side an untimed call then a timed one; medians. Last line of stdout:
 *   fwd_gflops=F q_fwd_gflops=Q q_speedup=Q/F weight_mb=W q_weight_mb=V
 *   peak_rss_mb=M rss_mb=N
 * where both rates count the floating-point FLOPs of the model, W is the
 * float32 weights and V what the quantized forward reads (packed codes with
 * their per-row figures, plus the float parameters outside the integer
 * linears); M is the process's peak resident set (which the quantization
 * itself sets: the FP model, the quantizer's work model and calibration
 * buffers) and N its resident set after the timed runs, with the float
 * model and the quantized one both alive. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cli_parse_wa(const char *v, int *w, int *a)
{
    char tail;
    if (sscanf(v, "W%dA%d%c", w, a, &tail) != 2 && sscanf(v, "w%da%d%c", w, a, &tail) != 2)
        return cli_usage_error("bench: --quant must look like W8A8 (got '%s')", v);
    if (*w < 2 || *w > 8 || *a < 2 || *a > 8)
        return cli_usage_error("bench: --quant widths must be 2..8 (got '%s')", v);
    return 0;
}

static double median_of(double *t, int n) { return cli_median(t, n); }

const char *cli_bench_save = NULL;

int cli_bench_quant(sardfq_model *fp, const char *label, int wbits, int abits, int scheme, int n, int repeat,
                    int threads)
{
    sardfq_model *q = NULL, *ref = fp;
    sardfq_model_info fi, qi;
    sardfq_status s = SARDFQ_OK;
    uint64_t rng = 42;
    int rc = CLI_EXIT_FAIL;
    if (cli_model_info(fp, &fi) != 0)
        return CLI_EXIT_FAIL;
    const size_t per = (size_t)fi.in_chans * fi.img_h * fi.img_w;
    float *images = malloc(sizeof(float) * per * (size_t)(n > 32 ? n : 32));
    float *logits = malloc(sizeof(float) * (size_t)n * fi.num_classes);
    double *tf = malloc(sizeof(double) * (size_t)repeat), *tq = malloc(sizeof(double) * (size_t)repeat);
    if (!images || !logits || !tf || !tq) {
        cli_fail("bench: out of memory");
        goto out;
    }
    if (fi.quantized) {
        /* a quantized file: against its own fake-quantized executor */
        sardfq_model_params p;
        sardfq_model_default_params(&p);
        p.n_threads = threads;
        const char *path = label;
        q = fp;
        if ((s = sardfq_model_load(path, &p, &ref)) != SARDFQ_OK ||
            (s = sardfq_model_set_executor(ref, SARDFQ_EXECUTOR_FAKE)) != SARDFQ_OK) {
            cli_lib_fail(s, "bench: cannot load '%s' again", path);
            q = NULL;
            goto out;
        }
    } else {
        sardfq_quant_params qp;
        sardfq_quantizer *qz = NULL;
        sardfq_quant_default_params(&qp);
        qp.weight_bits = wbits;
        qp.act_bits = abits;
        qp.scheme = scheme;
        cli_fill_normal(images, per * 32, 1.0f, &rng);
        s = sardfq_quantizer_create(fp, &qp, &qz);
        if (s == SARDFQ_OK)
            s = sardfq_quantizer_calibrate(qz, images, 32);
        if (s == SARDFQ_OK)
            s = sardfq_quantizer_finalize(qz, &q);
        sardfq_quantizer_free(qz);
        if (s != SARDFQ_OK) {
            cli_lib_fail(s, "bench: quantizing W%dA%d failed", wbits, abits);
            goto out;
        }
        if (cli_bench_save && (s = sardfq_model_save(q, cli_bench_save)) != SARDFQ_OK) {
            cli_lib_fail(s, "bench: cannot save %s", cli_bench_save);
            goto out;
        }
    }
    if (cli_model_info(q, &qi) != 0 || cli_model_info(ref, &fi) != 0)
        goto out;
    cli_fill_normal(images, per * (size_t)n, 1.0f, &rng);
    /* a sample of one side: an untimed call, then the timed one (the
     * other side's idle threads, OpenBLAS's in particular, spin for a while
     * after a call and would take a core from a call right after it) */
    for (int k = -1; k < repeat && s == SARDFQ_OK; k++) {
        s = sardfq_model_forward(ref, images, n, logits);
        const double t0 = cli_now();
        if (s == SARDFQ_OK)
            s = sardfq_model_forward(ref, images, n, logits);
        const double t1 = cli_now();
        if (s == SARDFQ_OK)
            s = sardfq_model_forward(q, images, n, logits);
        const double t2 = cli_now();
        if (s == SARDFQ_OK)
            s = sardfq_model_forward(q, images, n, logits);
        if (k >= 0) {
            tf[k] = t1 - t0;
            tq[k] = cli_now() - t2;
        }
    }
    if (s != SARDFQ_OK) {
        cli_lib_fail(s, "bench: forward failed");
        goto out;
    }
    {
        const double flops = fi.flops_per_image * n, t_f = median_of(tf, repeat), t_q = median_of(tq, repeat);
        const double gf = flops / t_f * 1e-9, gq = flops / t_q * 1e-9;
        const double wmb = (double)fi.weight_bytes / (1024.0 * 1024.0);
        const double qmb = (double)qi.weight_bytes / (1024.0 * 1024.0);
        printf("sardfq bench --quant: %s, %s W%dA%d, executor %s, batch %d, threads %d, median of %d "
               "alternated pairs (each call after an untimed one)\n",
               label, qi.quant_scheme == SARDFQ_SCHEME_REPQ ? "repq" : "minmax", qi.weight_bits, qi.act_bits,
               qi.executor == SARDFQ_EXECUTOR_FAKE ? "fake" : "int", n, threads, repeat);
        printf("  quantized ops: %d on integer kernels, %d in float\n", qi.int_ops, qi.float_ops);
        printf("  %-30s %10s %10s %10s\n", "forward", "median ms", "ms/img", "GFLOP/s");
        printf("  %-30s %10.2f %10.3f %10.2f\n", fi.quantized ? "fake-quantized float" : "float32", t_f * 1e3,
               t_f * 1e3 / n, gf);
        printf("  %-30s %10.2f %10.3f %10.2f\n", "quantized", t_q * 1e3, t_q * 1e3 / n, gq);
        printf("fwd_gflops=%.2f q_fwd_gflops=%.2f q_speedup=%.3f weight_mb=%.2f q_weight_mb=%.2f "
               "peak_rss_mb=%.2f rss_mb=%.2f\n",
               gf, gq, t_f / t_q, wmb, qmb, cli_peak_rss_mib(), cli_rss_mib());
    }
    rc = CLI_EXIT_OK;
out:
    if (ref != fp)
        sardfq_model_free(ref);
    if (q != fp)
        sardfq_model_free(q);
    free(images), free(logits), free(tf), free(tq);
    return rc;
}
