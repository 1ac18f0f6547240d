/* cli_common.c - errors, option parsing, clocks and model loading for the
 * sardfq command-line tool. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Where error lines go: stderr, or (cli_capture_errors) the first one into
 * a buffer. */
static const char *program = "sardfq";
static char *capture;
static size_t capture_size;

void cli_set_program(const char *name) { program = name; }

void cli_capture_errors(char *buf, size_t size)
{
    capture = buf;
    capture_size = size;
    if (buf && size)
        buf[0] = '\0';
}

/* One error line: "<program>: <fmt...><tail>". */
static void emit(const char *tail, const char *fmt, va_list ap)
{
    char msg[2048];
    int len = vsnprintf(msg, sizeof msg, fmt, ap);
    if (len >= 0 && (size_t)len < sizeof msg)
        snprintf(msg + len, sizeof msg - (size_t)len, "%s", tail);
    if (capture) {
        if (capture_size && !capture[0])
            snprintf(capture, capture_size, "%s", msg);
        return;
    }
    fprintf(stderr, "%s: %s\n", program, msg);
}

int cli_usage_error(const char *fmt, ...)
{
    char tail[64];
    snprintf(tail, sizeof tail, " (see '%s help')", program);
    va_list ap;
    va_start(ap, fmt);
    emit(tail, fmt, ap);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit("", fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

int cli_lib_fail(sardfq_status s, const char *fmt, ...)
{
    const char *detail = sardfq_last_error();
    char tail[1200];
    snprintf(tail, sizeof tail, ": %s%s%s", sardfq_status_string(s), detail && detail[0] ? ": " : "",
             detail && detail[0] ? detail : "");
    va_list ap;
    va_start(ap, fmt);
    emit(tail, fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

int cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int cli_option(const char *cmd, int argc, char **argv, int *i, const char *name,
               const char **value)
{
    const char *a = argv[*i];
    size_t len = strlen(name);
    if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, len) != 0)
        return 0;
    if (a[2 + len] == '=') {
        *value = a + 3 + len;
        return 1;
    }
    if (a[2 + len] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_usage_error("%s: option --%s needs a value", cmd, name);
        return -1;
    }
    *i += 1;
    *value = argv[*i];
    return 1;
}

int cli_parse_long(const char *cmd, const char *opt, const char *s, long min, long max,
                   long *out)
{
    char *end = NULL;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE) {
        cli_usage_error("%s: --%s expects an integer, got '%s'", cmd, opt, s);
        return -1;
    }
    if (v < min || v > max) {
        cli_usage_error("%s: --%s must be between %ld and %ld, got %ld", cmd, opt, min, max, v);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_nonneg(const char *cmd, const char *opt, const char *s, double *out)
{
    char *end;
    const double v = strtod(s, &end);
    if (*end || end == s || !(v >= 0) || !isfinite(v)) {
        cli_usage_error("%s: --%s expects a number >= 0, got '%s'", cmd, opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_choice(const char *cmd, const char *opt, const char *s, const char *const *names, const int *values,
                     int n, int *out)
{
    char list[256] = "";
    for (int k = 0; k < n; k++) {
        if (!strcmp(s, names[k])) {
            *out = values[k];
            return 0;
        }
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", names[k]);
    }
    cli_usage_error("%s: unknown --%s '%s' (%s)", cmd, opt, s, list);
    return -1;
}

int cli_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > INT_MAX ? INT_MAX : (int)n);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cli_peak_rss_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

double cli_rss_mib(void)
{
    /* Linux: the second field of /proc/self/statm, resident pages */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    const int ok = f && fscanf(f, "%lu %lu", &size, &resident) == 2;
    if (f)
        fclose(f);
    return ok ? (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0) : 0.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cli_median(double *v, int n)
{
    if (n <= 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void cli_fill_normal(float *v, size_t n, float sd, uint64_t *rng)
{
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
        /* Box-Muller on two uniforms in (0, 1]. */
        double u1 = ((double)(splitmix64(rng) >> 11) + 1.0) * 0x1.0p-53;
        double u2 = (double)(splitmix64(rng) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(u1));
        v[i] = sd * (float)(r * cos(two_pi * u2));
        if (i + 1 < n)
            v[i + 1] = sd * (float)(r * sin(two_pi * u2));
    }
}

const char *cli_default_model(void)
{
#ifdef SARDFQ_DEFAULT_MODEL
    return SARDFQ_DEFAULT_MODEL;
#else
    return NULL;
#endif
}

int cli_executor = SARDFQ_EXECUTOR_AUTO;

int cli_parse_scheme(const char *cmd, const char *v, int32_t *scheme)
{
    if (!strcmp(v, "repq")) {
        *scheme = SARDFQ_SCHEME_REPQ;
        return 0;
    }
    if (!strcmp(v, "minmax")) {
        *scheme = SARDFQ_SCHEME_MINMAX;
        return 0;
    }
    cli_usage_error("%s: --scheme must be repq or minmax (got '%s')", cmd, v);
    return -1;
}

int cli_parse_executor(const char *cmd, const char *v)
{
    if (!strcmp(v, "int") || !strcmp(v, "auto")) {
        cli_executor = SARDFQ_EXECUTOR_AUTO;
        return 0;
    }
    if (!strcmp(v, "fake")) {
        cli_executor = SARDFQ_EXECUTOR_FAKE;
        return 0;
    }
    cli_usage_error("%s: --executor must be int or fake (got '%s')", cmd, v);
    return -1;
}

sardfq_model *cli_load_model(const char *path, int n_threads, int num_heads)
{
    sardfq_model_params p;
    sardfq_model *m = NULL;
    sardfq_status s;
    sardfq_model_default_params(&p);
    p.n_threads = n_threads;
    p.num_heads = num_heads;
    s = sardfq_model_load(path, &p, &m);
    if (s != SARDFQ_OK) {
        cli_lib_fail(s, "cannot load model '%s'", path);
        return NULL;
    }
    if ((s = sardfq_model_set_executor(m, cli_executor)) != SARDFQ_OK) {
        cli_lib_fail(s, "cannot set the executor");
        sardfq_model_free(m);
        return NULL;
    }
    return m;
}

int cli_model_info(const sardfq_model *m, sardfq_model_info *info)
{
    sardfq_status s;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    s = sardfq_model_get_info(m, info);
    if (s != SARDFQ_OK)
        return cli_lib_fail(s, "cannot read the model's configuration");
    return 0;
}

void cli_gen_options_init(cli_gen_options *o)
{
    sardfq_generator_params p;
    sardfq_generator_default_params(&p);
    o->n = p.n_images;
    o->n_given = 0;
    o->iters = p.iters;
    o->seed = 0;
    o->threads = 0;
    o->prior_k = p.prior_components;
    o->prior_kind = p.prior_kind;
    o->alpha = -1;
    o->head_align = 0;
    o->head_align_form = SARDFQ_HEAD_ALIGN_COSINE;
}

static double cli_head_align;
static int cli_head_align_form = SARDFQ_HEAD_ALIGN_COSINE;

sardfq_status cli_set_head_align(sardfq_generator *g)
{
    if (!(cli_head_align > 0))
        return SARDFQ_OK;
    sardfq_status s = sardfq_generator_set_head_align(g, (float)cli_head_align);
    return s ? s : sardfq_generator_set_head_align_form(g, (sardfq_head_align_form)cli_head_align_form);
}

int cli_gen_option(const char *cmd, int argc, char **argv, int *i, cli_gen_options *o)
{
    const char *v;
    int r;
    if ((r = cli_option(cmd, argc, argv, i, "n", &v)) != 0) {
        o->n_given = 1;
        return r < 0 || cli_parse_long(cmd, "n", v, 1, 65536, &o->n) < 0 ? -1 : 1;
    }
    if ((r = cli_option(cmd, argc, argv, i, "iters", &v)) != 0)
        return r < 0 || cli_parse_long(cmd, "iters", v, 0, 10000000, &o->iters) < 0 ? -1 : 1;
    if ((r = cli_option(cmd, argc, argv, i, "seed", &v)) != 0)
        return r < 0 || cli_parse_long(cmd, "seed", v, 0, 2147483647L, &o->seed) < 0 ? -1 : 1;
    if ((r = cli_option(cmd, argc, argv, i, "threads", &v)) != 0)
        return r < 0 || cli_parse_long(cmd, "threads", v, 1, 1024, &o->threads) < 0 ? -1 : 1;
    if ((r = cli_option(cmd, argc, argv, i, "prior-k", &v)) != 0)
        return r < 0 || cli_parse_long(cmd, "prior-k", v, 1, 64, &o->prior_k) < 0 ? -1 : 1;
    if ((r = cli_option(cmd, argc, argv, i, "alpha", &v)) != 0)
        return r < 0 || cli_parse_nonneg(cmd, "alpha", v, &o->alpha) < 0 ? -1 : 1;
    if ((r = cli_option(cmd, argc, argv, i, "head-align", &v)) != 0)
        return r < 0 || cli_parse_nonneg(cmd, "head-align", v, &o->head_align) < 0 ? -1 : 1;
    if ((r = cli_option(cmd, argc, argv, i, "head-align-form", &v)) != 0) {
        static const char *const names[] = {"cosine", "ssim"};
        static const int values[] = {SARDFQ_HEAD_ALIGN_COSINE, SARDFQ_HEAD_ALIGN_SSIM};
        return r < 0 || cli_parse_choice(cmd, "head-align-form", v, names, values, 2, &o->head_align_form) < 0 ? -1 : 1;
    }
    if ((r = cli_option(cmd, argc, argv, i, "prior", &v)) != 0) {
        static const char *const names[] = {"gmm", "laplace"};
        static const int values[] = {SARDFQ_PRIOR_GMM, SARDFQ_PRIOR_LAPLACE};
        return r < 0 || cli_parse_choice(cmd, "prior", v, names, values, 2, &o->prior_kind) < 0 ? -1 : 1;
    }
    return 0;
}

void cli_gen_options_apply(const cli_gen_options *o, sardfq_generator_params *p)
{
    p->n_images = (int32_t)o->n;
    p->iters = (int32_t)o->iters;
    p->seed = (uint64_t)o->seed;
    p->prior_kind = o->prior_kind;
    p->prior_components = (int32_t)o->prior_k;
    if (o->alpha >= 0)
        p->apa_weight = (float)o->alpha;
    cli_head_align = o->head_align;
    cli_head_align_form = o->head_align_form;
}

/* ---- running a generator with a progress line ------------------------- */

int cli_is_writer = 1;
int (*cli_stop_requested)(void);

/* The single-process synthesis: one generator for the whole set. */
static int synthesize_here(const char *cmd, const sardfq_model *m, const sardfq_model_info *info,
                           const sardfq_generator_params *p, float *images, float *targets,
                           sardfq_synth_report *r)
{
    sardfq_generator *g = NULL;
    sardfq_status s;
    if ((s = sardfq_generator_create(m, p, &g)))
        return cli_lib_fail(s, "%s: cannot create the generator", cmd);
    int rc = cli_generate(cmd, g, r);
    const size_t n = (size_t)p->n_images;
    if (!rc && ((s = sardfq_generator_get_images(g, images, n * info->in_chans * info->img_h * info->img_w)) ||
                (s = sardfq_generator_get_targets(g, targets, n * info->num_classes))))
        rc = cli_lib_fail(s, "%s: cannot read the synthetic images", cmd);
    sardfq_generator_free(g);
    return rc;
}

cli_synth_fn cli_synthesize = synthesize_here;

static sardfq_status evaluate_here(const sardfq_model *m, sardfq_dataset *d, const sardfq_eval_params *p,
                                   sardfq_eval_result *out)
{
    return sardfq_evaluate(m, d, p, out);
}

cli_eval_fn cli_evaluate = evaluate_here;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void progress_line(const char *cmd, const sardfq_synth_report *r, double elapsed, int tty, int final)
{
    double eta = r->step > 0 ? elapsed / r->step * (r->total - r->step) : 0;
    fprintf(stderr,
            "%s%s %5d/%d  loss %.4g  apa %.3g  ce %.3g  msr %.3g  tv %.3g  pse %.3g  p(target) %.3f  "
            "%.1fs, eta %.0fs%s",
            tty ? "\r" : "", cmd, r->step, r->total, r->loss, r->apa, r->ce, r->msr, r->tv, r->pse,
            r->target_prob, elapsed, eta, tty && !final ? "\033[K" : "\n");
    fflush(stderr);
}

int cli_generate(const char *cmd, sardfq_generator *g, sardfq_synth_report *r)
{
    signal(SIGINT, on_sigint);
    const int tty = isatty(2);
    const double t0 = cli_now();
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
    sardfq_status hs = cli_set_head_align(g);
    if (hs)
        return cli_lib_fail(hs, "%s: --head-align", cmd);
    int last_pct = -1;
    for (;;) {
        sardfq_status s = sardfq_generator_step(g, r);
        if (s == SARDFQ_E_STATE)
            break; /* all steps done (or none: noise) */
        if (s)
            return cli_lib_fail(s, "%s: step %d failed", cmd, r->step + 1);
        int pct = (int)(100.0 * r->step / r->total);
        if (tty || pct / 10 != last_pct / 10 || r->step == r->total)
            progress_line(cmd, r, cli_now() - t0, tty, r->step == r->total);
        last_pct = pct;
        if (interrupted)
            return cli_fail("%s: interrupted at step %d of %d; nothing written", cmd, r->step, r->total);
        if (cli_stop_requested && cli_stop_requested())
            return cli_fail("%s: stopped at step %d of %d: another process failed", cmd, r->step, r->total);
    }
    signal(SIGINT, SIG_DFL);
    return CLI_EXIT_OK;
}
