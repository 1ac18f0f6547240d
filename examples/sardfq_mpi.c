/* sardfq_mpi.c - `sardfq-mpi`, the MPI front-end of the sardfq tool: the
 * same commands and options (the code of cli_*.c), with the work spread
 * over the ranks of an MPI job. Only this program links MPI; the library
 * does not.
 *
 *   synth        the set is cut into contiguous shards of whole coupling
 *                groups (SARDFQ_SYNTH_GROUP images, sardfq.h), one per
 *                rank, each made by sardfq_generator_create_shard
 *                (noise: shards of single images); rank 0 gathers
 *                images and targets in index order and writes the files
 *                (each through a temporary name). The library's randomness
 *                contract makes the result byte-identical to `sardfq synth`.
 *   quantize     --synth as above, then calibration, reconstruction, saving
 *                and --eval on rank 0 alone (no floating-point reduction
 *                across ranks).
 *   eval         the images are cut into contiguous runs of whole batches
 *                (so every batch holds the images it holds in one process),
 *                each rank evaluates its run (sardfq_evaluate_range) and
 *                the correct counts are summed as integers.
 *   info         rank 0 only.
 *
 * Output: standard output and standard error of ranks other than 0 go to
 * /dev/null; progress lines come from rank 0 (its shard advances step by
 * step with all others). Errors: every rank keeps its first error message
 * instead of printing it; at each agreement point (before any collective
 * that moves data, and at the end) the ranks compare their exit codes, and
 * if one failed every rank stops, rank 0 prints the message of the lowest
 * failed rank once ("sardfq-mpi: rank R of P: ..." when not all failed)
 * and every rank exits with the largest code. A rank that fails during
 * its part of the work also sends every other rank a message (tag
 * TAG_FAIL); they look for it after every synthesis step and every
 * evaluated batch, stop, and meet it at the next agreement, where the
 * message shown is the failed rank's, not "stopped: another process
 * failed". Rank 0 writes only after an
 * agreement that every rank succeeded, and writes each file to a temporary
 * name first, so no partial file is left. Waiting ranks sleep instead of
 * spinning (the machine may have fewer cores than ranks).
 *
 * Test hooks: SARDFQ_MPI_FAIL_RANK=r makes rank r fail as if its part of
 * the work (synthesis or evaluation) had failed; SARDFQ_MPI_STATUS_DIR=D
 * makes every rank write its exit status to D/rank.<r>. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MSG_SIZE 2048
#define TAG_FAIL 7301

static int rank, ranks;
static char message[MSG_SIZE]; /* this rank's first error message */
static int agreed_failure;     /* an agreement has seen a failure: no more collectives */
static int agreed_rc;
static int announced; /* this rank told the others it failed */
static int stopped;   /* this rank stopped because another one failed */

/* Tell every other rank that this one failed (once). */
static void announce_failure(void)
{
    static int one = 1;
    if (announced)
        return;
    announced = 1;
    for (int r = 0; r < ranks; r++)
        if (r != rank) {
            MPI_Request req;
            MPI_Isend(&one, 1, MPI_INT, r, TAG_FAIL, MPI_COMM_WORLD, &req);
            MPI_Request_free(&req);
        }
}

/* Has another rank announced a failure? (cli_stop_requested) */
static int peer_failed(void)
{
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, TAG_FAIL, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
    if (flag)
        stopped = 1;
    return flag;
}

/* Before MPI_Finalize: receive every failure announcement sent to this
 * rank (each announcing rank sent one to each other rank). */
static void drain_announcements(void)
{
    int mine = announced, all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    for (int k = 0; k < all - mine; k++) {
        int v;
        MPI_Recv(&v, 1, MPI_INT, MPI_ANY_SOURCE, TAG_FAIL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
}

/* Wait for a nonblocking collective without spinning. */
static void wait_for(MPI_Request *req)
{
    int done = 0;
    struct timespec ts = {0, 1000000}; /* 1 ms */
    for (;;) {
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done)
            return;
        nanosleep(&ts, NULL);
    }
}

/* Every rank calls this at the same points with its exit code (0 or an
 * exit code > 0). Returns the largest code over the ranks; on failure rank 0
 * holds in `message` the message of the lowest rank that failed by itself
 * (not stopped by another's failure), prefixed with its rank unless every
 * rank failed by itself. */
static int agree(int rc)
{
    if (agreed_failure)
        return agreed_rc;
    /* the rank whose message is shown: the lowest that failed by itself,
     * else the lowest that failed (key: rank, ranks + rank, 2 ranks) */
    const int key = rc && !stopped ? rank : rc ? ranks + rank : 2 * ranks;
    int in[2] = {rc, -key}, out[2];
    MPI_Request req;
    /* max code and, through max of -key, the lowest key */
    MPI_Iallreduce(in, out, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &req);
    wait_for(&req);
    int failed = rc != 0 && !stopped, nfailed = 0; /* failed by themselves */
    MPI_Iallreduce(&failed, &nfailed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD, &req);
    wait_for(&req);
    if (out[0] == 0)
        return 0;
    const int first = -out[1] % ranks;
    char buf[MSG_SIZE];
    memcpy(buf, message, sizeof buf);
    if (!buf[0])
        snprintf(buf, sizeof buf, "failed (exit status %d) without a message", rc);
    MPI_Ibcast(buf, MSG_SIZE, MPI_CHAR, first, MPI_COMM_WORLD, &req);
    wait_for(&req);
    buf[MSG_SIZE - 1] = '\0';
    if (nfailed < ranks)
        snprintf(message, sizeof message, "rank %d of %d: %s", first, ranks, buf);
    else
        snprintf(message, sizeof message, "%s", buf);
    agreed_failure = 1;
    agreed_rc = out[0];
    return out[0];
}

static int injected_failure(const char *what)
{
    const char *v = getenv("SARDFQ_MPI_FAIL_RANK");
    if (v && *v && atoi(v) == rank)
        return cli_fail("%s: injected failure (SARDFQ_MPI_FAIL_RANK=%s)", what, v);
    return 0;
}

/* Rank r's shard of n images: contiguous runs of whole units of `unit`
 * images, units spread as evenly as possible. */
static void shard(int64_t n, int64_t unit, int r, int64_t *first, int64_t *count)
{
    const int64_t units = (n + unit - 1) / unit;
    const int64_t u0 = units * r / ranks, u1 = units * (r + 1) / ranks;
    const int64_t a = u0 * unit < n ? u0 * unit : n, b = u1 * unit < n ? u1 * unit : n;
    *first = a;
    *count = b - a;
}

static int mpi_synthesize(const char *cmd, const sardfq_model *m, const sardfq_model_info *info,
                          const sardfq_generator_params *p, float *images, float *targets,
                          sardfq_synth_report *r)
{
    const int n = p->n_images;
    const int64_t unit = p->method == SARDFQ_SYNTH_NOISE ? 1 : SARDFQ_SYNTH_GROUP;
    const int64_t units = (n + unit - 1) / unit;
    int rc = 0;
    if (units < ranks) {
        if (unit == 1)
            rc = cli_usage_error("%s: --n %d images cannot be split over %d ranks (each needs at least one)",
                                 cmd, n, ranks);
        else
            rc = cli_usage_error("%s: --n %d is %lld coupling group(s) of up to %d images, which cannot be split "
                                 "over %d ranks (each rank needs a whole group: use --n > %lld or fewer ranks)",
                                 cmd, n, (long long)units, SARDFQ_SYNTH_GROUP, ranks,
                                 (long long)(ranks - 1) * SARDFQ_SYNTH_GROUP);
    }
    const size_t per = (size_t)info->in_chans * info->img_h * info->img_w, K = (size_t)info->num_classes;
    if (!rc && (double)n * per > (double)INT32_MAX)
        rc = cli_fail("%s: %d images are too many floats for one MPI gather", cmd, n);
    if ((rc = agree(rc)) != 0)
        return rc;

    int64_t first, count;
    shard(n, unit, rank, &first, &count);
    sardfq_generator_params q = *p;
    q.n_images = (int32_t)count;
    float *mine = malloc(sizeof(float) * per * (size_t)count);
    float *tmine = malloc(sizeof(float) * K * (size_t)count);
    if (!mine || !tmine)
        rc = cli_fail("%s: out of memory", cmd);
    if (!rc)
        rc = injected_failure(cmd);
    sardfq_generator *g = NULL;
    sardfq_status s;
    if (!rc && (s = sardfq_generator_create_shard(m, &q, (int)first, n, &g)))
        rc = cli_lib_fail(s, "%s: cannot create the generator for images %lld..%lld", cmd, (long long)first,
                          (long long)(first + count - 1));
    if (!rc)
        rc = cli_generate(cmd, g, r);
    if (!rc && ((s = sardfq_generator_get_images(g, mine, per * (size_t)count)) ||
                (s = sardfq_generator_get_targets(g, tmine, K * (size_t)count))))
        rc = cli_lib_fail(s, "%s: cannot read the synthetic images", cmd);
    sardfq_generator_free(g);
    if (rc && !stopped)
        announce_failure();
    /* the report of the whole set: the target probability is each
     * generator's mean over its groups; weight by images (printed only) */
    double tp[2] = {r->target_prob * (double)count, (double)count}, all[2] = {0, 0};
    int *counts = NULL, *displs = NULL, *tcounts = NULL, *tdispls = NULL;
    if (!rc && rank == 0 && !(counts = calloc((size_t)ranks * 4, sizeof(int))))
        rc = cli_fail("%s: out of memory", cmd);
    if ((rc = agree(rc)) != 0) {
        free(counts);
        free(mine);
        free(tmine);
        return rc;
    }
    if (rank == 0) {
        displs = counts + ranks, tcounts = counts + 2 * ranks, tdispls = counts + 3 * ranks;
        for (int k = 0; k < ranks; k++) {
            int64_t f, c;
            shard(n, unit, k, &f, &c);
            counts[k] = (int)(c * (int64_t)per);
            displs[k] = (int)(f * (int64_t)per);
            tcounts[k] = (int)(c * (int64_t)K);
            tdispls[k] = (int)(f * (int64_t)K);
        }
    }
    MPI_Request req;
    MPI_Igatherv(mine, (int)(count * (int64_t)per), MPI_FLOAT, images, counts, displs, MPI_FLOAT, 0,
                 MPI_COMM_WORLD, &req);
    wait_for(&req);
    MPI_Igatherv(tmine, (int)(count * (int64_t)K), MPI_FLOAT, targets, tcounts, tdispls, MPI_FLOAT, 0,
                 MPI_COMM_WORLD, &req);
    wait_for(&req);
    MPI_Ireduce(tp, all, 2, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD, &req);
    wait_for(&req);
    free(counts);
    free(mine);
    free(tmine);
    if (rank != 0)
        return CLI_EXIT_ELSEWHERE;
    r->target_prob = (float)(all[1] > 0 ? all[0] / all[1] : 0);
    return 0;
}

/* The host's progress callback, and a stop when another rank failed. */
typedef struct {
    sardfq_progress_fn fn;
    void *user_data;
} eval_chain;

static int eval_progress(void *user_data, int64_t done, int64_t total, const char *stage)
{
    const eval_chain *c = user_data;
    if (peer_failed())
        return 1;
    return c->fn ? c->fn(c->user_data, done, total, stage) : 0;
}

static sardfq_status mpi_evaluate(const sardfq_model *m, sardfq_dataset *d, const sardfq_eval_params *p,
                                  sardfq_eval_result *out)
{
    /* the whole range and batch as sardfq_evaluate would take them */
    int64_t total = sardfq_dataset_count(d);
    if (p->limit > 0 && p->limit < total)
        total = p->limit;
    if (total < 0)
        total = 0;
    int64_t batch = p->batch > 0 ? p->batch : 64;
    if (batch > total)
        batch = total > 0 ? total : 1;
    int64_t first, count;
    shard(total, batch, rank, &first, &count);
    sardfq_eval_params q = *p;
    q.limit = count;
    eval_chain chain = {rank == 0 ? p->progress : NULL, p->user_data};
    q.progress = eval_progress;
    q.user_data = &chain;
    sardfq_eval_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    sardfq_status s = SARDFQ_OK;
    int rc = injected_failure("eval");
    if (!rc && count > 0 && (s = sardfq_evaluate_range(m, d, &q, first, &r)))
        rc = stopped ? cli_fail("eval: stopped: another process failed")
                     : cli_lib_fail(s, "eval: images %lld..%lld failed", (long long)first,
                                    (long long)(first + count - 1));
    if (rc && !stopped)
        announce_failure();
    if (agree(rc))
        return SARDFQ_E_IO; /* the message of the failed rank is rank 0's */
    int64_t mine[3] = {r.n, r.top1_correct, r.top5_correct}, sum[3];
    MPI_Request req;
    MPI_Iallreduce(mine, sum, 3, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD, &req);
    wait_for(&req);
    out->n = sum[0];
    out->top1_correct = sum[1];
    out->top5_correct = sum[2];
    return SARDFQ_OK;
}

static void usage(FILE *f)
{
    fputs("usage: mpirun -np P sardfq-mpi <command> [options]\n"
          "\n"
          "The sardfq tool's commands, spread over the P ranks of an MPI job, with\n"
          "the same options and output as `sardfq` (see `sardfq help COMMAND`):\n"
          "  synth     each rank makes a contiguous shard of whole coupling groups of\n"
          "            32 images; rank 0 gathers them and writes the same files\n"
          "            (byte for byte) as `sardfq synth`\n"
          "  quantize  --synth as synth, then calibration on rank 0\n"
          "  eval      each rank evaluates a contiguous run of whole batches; the\n"
          "            correct counts are summed\n"
          "  info      on rank 0\n"
          "Use --threads 1 with one rank per core. Errors: one message, from rank 0;\n"
          "every rank exits with the status (1 failure, 2 bad command line).\n",
          f);
}

static int run(int argc, char **argv)
{
    if (argc < 2) {
        if (rank == 0)
            usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (cli_is_help(cmd) || !strcmp(cmd, "help")) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("sardfq-mpi %s (libsardfq %s)\n", SARDFQ_VERSION_STRING, sardfq_version_string());
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "synth"))
        return cli_synth(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize"))
        return cli_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval"))
        return cli_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "info"))
        return rank == 0 ? cli_info(argc - 1, argv + 1) : CLI_EXIT_OK;
    return cli_usage_error("unknown command '%s' (synth, quantize, eval, info)", cmd);
}

/* FNV-1a of the build: program and library versions and this file's build
 * time, so ranks running different builds are refused. */
static uint32_t build_id(void)
{
    char s[256];
    snprintf(s, sizeof s, "%s|%s|%s %s", SARDFQ_VERSION_STRING, sardfq_version_string(), __DATE__, __TIME__);
    uint32_t h = 2166136261u;
    for (const char *c = s; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return h;
}

int main(int argc, char **argv)
{
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fputs("sardfq-mpi: MPI_Init failed\n", stderr);
        return CLI_EXIT_FAIL;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    cli_set_program("sardfq-mpi");
    cli_capture_errors(message, sizeof message);
    cli_synthesize = mpi_synthesize;
    cli_stop_requested = peer_failed;
    cli_evaluate = mpi_evaluate;
    cli_is_writer = rank == 0;
    if (rank != 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            cli_fail("cannot silence rank %d's output", rank);
    }
    /* the same build on every rank */
    uint32_t id = build_id(), lo = 0, hi = 0;
    MPI_Allreduce(&id, &lo, 1, MPI_UINT32_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&id, &hi, 1, MPI_UINT32_T, MPI_MAX, MPI_COMM_WORLD);
    int rc = 0;
    if (lo != hi)
        rc = cli_fail("the ranks run different builds of sardfq-mpi (this one: %s, libsardfq %s, built %s %s)",
                      SARDFQ_VERSION_STRING, sardfq_version_string(), __DATE__, __TIME__);
    else
        rc = run(argc, argv);
    if (rc == CLI_EXIT_ELSEWHERE)
        rc = CLI_EXIT_OK;
    rc = agree(rc);
    drain_announcements();
    fflush(stdout);
    if (rc && rank == 0)
        fprintf(stderr, "sardfq-mpi: %s\n", message[0] ? message : "failed");
    const char *dir = getenv("SARDFQ_MPI_STATUS_DIR");
    if (dir && *dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/rank.%d", dir, rank);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%d\n", rc);
            fclose(f);
        }
    }
    MPI_Finalize();
    return rc;
}
