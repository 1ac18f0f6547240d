/* cli.h - shared helpers of the sardfq command-line tool (examples/cli_*.c).
 * The tool uses only the public API (sardfq.h), plus cblas for the bench's
 * reference sgemm. */
#ifndef SARDFQ_CLI_H
#define SARDFQ_CLI_H

/* the tool uses the experimental section (export, head alignment,
 * attention distillation) */
#ifndef SARDFQ_EXPERIMENTAL
#define SARDFQ_EXPERIMENTAL
#endif
#include "sardfq.h"

#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

/* Exit codes. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1  /* a runtime failure: file, library call, memory */
#define CLI_EXIT_USAGE 2 /* bad command line */
/* Not an exit code: this process did its part and another one (rank 0 of
 * sardfq-mpi) holds the result and writes it; the command returns 0. */
#define CLI_EXIT_ELSEWHERE (-1)

/* One line on stderr, "<program>: <message>" (program: "sardfq" unless
 * cli_set_program says otherwise), or, after cli_capture_errors(buf, size)
 * with buf != NULL, the first such message (without the program name) kept
 * in buf and nothing printed. Each returns its exit code. */
void cli_set_program(const char *name);
void cli_capture_errors(char *buf, size_t size);
int cli_usage_error(const char *fmt, ...) CLI_PRINTF(1, 2); /* + a hint, 2 */
int cli_fail(const char *fmt, ...) CLI_PRINTF(1, 2);        /* 1 */
/* "sardfq: <message>: <status string>[: <sardfq_last_error()>]", 1. */
int cli_lib_fail(sardfq_status s, const char *fmt, ...) CLI_PRINTF(2, 3);

/* If argv[*i] is the option --name, as "--name VALUE" or "--name=VALUE":
 * stores VALUE, advances *i past it and returns 1. Returns 0 if argv[*i] is
 * another argument, -1 (after a usage message) if the value is missing. */
int cli_option(const char *cmd, int argc, char **argv, int *i, const char *name,
               const char **value);
/* Parses a decimal integer in [min, max] for option opt of cmd; on error
 * prints a usage message and returns -1. */
int cli_parse_long(const char *cmd, const char *opt, const char *s, long min, long max,
                   long *out);
/* Parses a finite number >= 0 for option opt of cmd; on error prints a
 * usage message and returns -1. */
int cli_parse_nonneg(const char *cmd, const char *opt, const char *s, double *out);
/* Sets *out to values[k] for the names[k] equal to s (n choices); otherwise
 * prints "unknown --opt 's' (names...)" and returns -1. */
int cli_parse_choice(const char *cmd, const char *opt, const char *s, const char *const *names, const int *values,
                     int n, int *out);
/* 1 if arg is -h or --help. */
int cli_is_help(const char *arg);

/* Number of online CPUs (at least 1). */
int cli_online_cpus(void);
/* Monotonic clock in seconds. */
double cli_now(void);
/* Peak resident set size of this process so far, in MiB. */
double cli_peak_rss_mib(void);
/* Resident set size of this process now, in MiB (0 where /proc is not). */
double cli_rss_mib(void);
/* Median of n values (sorts v). */
double cli_median(double *v, int n);
/* Fills v with N(0, sd^2) samples from the generator state *rng. */
void cli_fill_normal(float *v, size_t n, float sd, uint64_t *rng);

/* Where the model came from when --model is not given (may be NULL). */
const char *cli_default_model(void);
/* Loads path with n_threads and the optional num_heads override (0 = none);
 * on failure prints the error and returns NULL. */
sardfq_model *cli_load_model(const char *path, int n_threads, int num_heads);
/* The executor of the models cli_load_model loads (--executor int|fake;
 * int = SARDFQ_EXECUTOR_AUTO), and its parser (0, or -1 after a usage
 * message). */
extern int cli_executor;
/* `bench --quant`: "W8A8" into *w, *a (0, or a usage message and -1), and
 * the measurement (cli_bench_quant.c). */
int cli_parse_wa(const char *v, int *w, int *a);
int cli_bench_quant(sardfq_model *fp, const char *label, int wbits, int abits, int scheme, int n, int repeat,
                    int threads);
/* `bench --quant --save Q`: where to save the quantized model (NULL: not). */
extern const char *cli_bench_save;
int cli_parse_executor(const char *cmd, const char *v);
/* --scheme repq|minmax into *scheme (SARDFQ_SCHEME_*): 0, or -1 after a
 * usage message. */
int cli_parse_scheme(const char *cmd, const char *v, int32_t *scheme);
/* get_info with struct_size set; prints on failure and returns nonzero. */
int cli_model_info(const sardfq_model *m, sardfq_model_info *info);

/* Options shared by the commands that synthesise (synth, semantics,
 * quantize --synth): --n --iters --seed --threads --alpha --prior
 * --prior-k --head-align --head-align-form. */
typedef struct {
    long n, iters, seed, threads, prior_k;
    int n_given; /* --n was on the command line */
    int prior_kind;
    double alpha;      /* < 0: the library's default */
    double head_align; /* sardfq_generator_set_head_align; 0: off */
    int head_align_form; /* --head-align-form cosine|ssim (sardfq_head_align_form) */
} cli_gen_options;
/* Set the --head-align weight and form that cli_gen_options_apply recorded
 * (setters, not params fields) on g; cli_generate and `semantics` call it.
 * Nothing to do when the weight is 0. */
sardfq_status cli_set_head_align(sardfq_generator *g);
void cli_gen_options_init(cli_gen_options *o);
/* 1 if argv[*i] was one of them (consumed with its value), 0 if not, -1
 * after a usage message. */
int cli_gen_option(const char *cmd, int argc, char **argv, int *i, cli_gen_options *o);
/* Copy the options into generator params (and record the head alignment). */
void cli_gen_options_apply(const cli_gen_options *o, sardfq_generator_params *p);

/* Run the remaining steps of g with a progress line on stderr (SIGINT
 * stops after the current step). 0, or an exit code after a message. */
int cli_generate(const char *cmd, sardfq_generator *g, sardfq_synth_report *r);

/* How the commands synthesise and evaluate; sardfq (this file's
 * defaults) runs them in this process, sardfq-mpi replaces them by sharded
 * versions (sardfq_mpi.c).
 * cli_synthesize: all p->n_images images (n x C x H x W) and targets
 * (n x classes) into images and targets, the last step's report into r;
 * 0, an exit code after a message, or CLI_EXIT_ELSEWHERE (images and
 * targets untouched).
 * cli_evaluate: sardfq_evaluate's contract, over the whole range of p.
 * cli_is_writer: 1 if this process writes the output files (default 1). */
typedef int (*cli_synth_fn)(const char *cmd, const sardfq_model *m, const sardfq_model_info *info,
                            const sardfq_generator_params *p, float *images, float *targets,
                            sardfq_synth_report *r);
typedef sardfq_status (*cli_eval_fn)(const sardfq_model *m, sardfq_dataset *d, const sardfq_eval_params *p,
                                     sardfq_eval_result *out);
extern cli_synth_fn cli_synthesize;
extern cli_eval_fn cli_evaluate;
extern int cli_is_writer;
/* If set, cli_generate asks it after every step and stops with a failure
 * when it returns nonzero (sardfq-mpi: another rank has failed). */
extern int (*cli_stop_requested)(void);

/* The commands: argv[0] is the command name. Each returns an exit code. */
int cli_info(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_synth(int argc, char **argv);
int cli_semantics(int argc, char **argv);
int cli_quantize(int argc, char **argv);
int cli_export(int argc, char **argv);

void cli_usage_info(FILE *f);
void cli_usage_eval(FILE *f);
void cli_usage_bench(FILE *f);
void cli_usage_synth(FILE *f);
void cli_usage_semantics(FILE *f);
void cli_usage_quantize(FILE *f);
void cli_usage_export(FILE *f);

#endif
