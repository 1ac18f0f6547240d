/* cli_eval.c - `sardfq eval`: top-1/top-5 accuracy of a model on a labelled
 * image set, with a progress line on stderr. The last line of stdout is
 * "top1=<percent> top5=<percent> n=<count>". */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

void cli_usage_eval(FILE *f)
{
    fputs("usage: sardfq eval --data PATH [--model M] [--limit N] [--batch B]\n"
          "                   [--threads T] [--heads N] [--executor int|fake]\n"
          "\n"
          "Top-1/top-5 accuracy of model M on the labelled images at PATH: a folder of\n"
          "MNIST-format IDX files (e.g. /usr/share/datasets/fashion-mnist) or a folder of\n"
          "class sub-folders of PNG images. The last line of standard output is\n"
          "  top1=<percent> top5=<percent> n=<images>\n"
          "\n"
          "  --limit N    the first N images only (default: all)\n"
          "  --batch B    images per forward call (default 64)\n"
          "  --threads T  compute threads (default: the number of online CPUs)\n"
          "  --executor int|fake  a quantized model's forward: integer kernels where\n"
          "               it has integer codes (int, the default) or 0.3's\n"
          "               fake-quantized float path (fake)\n"
          "  --heads N    number of attention heads, when the file does not say\n",
          f);
}

typedef struct progress {
    double t0;      /* start of the evaluation */
    double last;    /* time of the last redraw */
    int tty;        /* stderr is a terminal: redraw one line with \r */
    int last_tenth; /* not a terminal: last 10% step printed */
    int drawn;      /* a \r line is on screen */
} progress;

static void format_eta(char *buf, size_t size, double s)
{
    long t = s < 0 ? 0 : (s > 359999 ? 359999 : (long)(s + 0.5));
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

static int on_progress(void *user_data, int64_t done, int64_t total, const char *stage)
{
    progress *p = user_data;
    double now = cli_now(), elapsed = now - p->t0;
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    char eta[32];
    if (total <= 0)
        return 0;
    format_eta(eta, sizeof eta, rate > 0 ? (double)(total - done) / rate : 0.0);
    if (p->tty) {
        if (done < total && now - p->last < 0.1)
            return 0; /* at most ten redraws a second */
        p->last = now;
        fprintf(stderr, "\r%s %lld/%lld images  %.1f img/s  ETA %s   ", stage ? stage : "eval",
                (long long)done, (long long)total, rate, eta);
        p->drawn = 1;
    } else {
        int tenth = (int)(done * 10 / total);
        if (tenth <= p->last_tenth)
            return 0;
        p->last_tenth = tenth;
        fprintf(stderr, "%s: %lld/%lld images (%d%%), %.1f img/s, ETA %s\n",
                stage ? stage : "eval", (long long)done, (long long)total, tenth * 10, rate,
                eta);
    }
    fflush(stderr);
    return 0;
}

int cli_eval(int argc, char **argv)
{
    const char *model_path = NULL, *data_path = NULL, *v;
    long limit = 0, batch = 64, threads = cli_online_cpus(), heads = 0;
    sardfq_model *m = NULL;
    sardfq_dataset *d = NULL;
    sardfq_eval_params ep;
    sardfq_eval_result res;
    sardfq_status s;
    progress prog;
    int64_t count;
    double t;
    int r;

    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cli_usage_eval(stdout);
            return CLI_EXIT_OK;
        }
        if ((r = cli_option("eval", argc, argv, &i, "model", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            model_path = v;
        } else if ((r = cli_option("eval", argc, argv, &i, "data", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            data_path = v;
        } else if ((r = cli_option("eval", argc, argv, &i, "limit", &v)) != 0) {
            if (r < 0 || cli_parse_long("eval", "limit", v, 0, LONG_MAX, &limit) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("eval", argc, argv, &i, "batch", &v)) != 0) {
            if (r < 0 || cli_parse_long("eval", "batch", v, 1, 65536, &batch) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("eval", argc, argv, &i, "executor", &v)) != 0) {
            if (r < 0 || cli_parse_executor("eval", v) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("eval", argc, argv, &i, "threads", &v)) != 0) {
            if (r < 0 || cli_parse_long("eval", "threads", v, 1, 4096, &threads) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("eval", argc, argv, &i, "heads", &v)) != 0) {
            if (r < 0 || cli_parse_long("eval", "heads", v, 1, 4096, &heads) != 0)
                return CLI_EXIT_USAGE;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("eval: unknown option '%s'", argv[i]);
        } else {
            return cli_usage_error("eval: unexpected argument '%s'", argv[i]);
        }
    }
    if (data_path == NULL)
        return cli_usage_error("eval: --data PATH is required");
    if (model_path == NULL && (model_path = cli_default_model()) == NULL)
        return cli_usage_error("eval: --model M is required");

    if ((m = cli_load_model(model_path, (int)threads, (int)heads)) == NULL)
        return CLI_EXIT_FAIL;
    s = sardfq_dataset_open(data_path, m, &d);
    if (s != SARDFQ_OK) {
        sardfq_model_free(m);
        return cli_lib_fail(s, "cannot open data set '%s'", data_path);
    }
    count = sardfq_dataset_count(d);

    sardfq_eval_default_params(&ep);
    ep.limit = limit;
    ep.batch = (int32_t)batch;
    ep.progress = on_progress;
    ep.user_data = &prog;
    memset(&prog, 0, sizeof prog);
    prog.tty = isatty(STDERR_FILENO);
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;

    printf("model   %s\n", model_path);
    if (limit > 0 && limit < count)
        printf("data    %s (%lld images, evaluating the first %ld)\n", data_path,
               (long long)count, limit);
    else
        printf("data    %s (%lld images)\n", data_path, (long long)count);
    fflush(stdout);
    prog.t0 = cli_now();
    s = cli_evaluate(m, d, &ep, &res); /* sardfq-mpi: over all ranks */
    t = cli_now() - prog.t0;
    if (prog.drawn)
        fputc('\n', stderr);
    sardfq_dataset_free(d);
    sardfq_model_free(m);
    if (s != SARDFQ_OK)
        return cli_lib_fail(s, "evaluation failed");

    printf("time    %.2f s (%.1f img/s, batch %ld, %ld threads)\n", t,
           t > 0 ? (double)res.n / t : 0.0, batch, threads);
    printf("top1=%.2f top5=%.2f n=%lld\n",
           res.n > 0 ? 100.0 * (double)res.top1_correct / (double)res.n : 0.0,
           res.n > 0 ? 100.0 * (double)res.top5_correct / (double)res.n : 0.0,
           (long long)res.n);
    return CLI_EXIT_OK;
}
