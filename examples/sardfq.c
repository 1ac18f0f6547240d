/* sardfq.c - the sardfq command-line tool: inspect, evaluate and benchmark
 * Vision Transformers with libsardfq. A host program of the public API only
 * (sardfq.h); the commands live in cli_info.c, cli_eval.c and cli_bench.c.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 bad command line. */
#include "cli.h"

#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: sardfq COMMAND [OPTIONS]\n"
          "\n"
          "Data-free quantization of Vision Transformers (SARDFQ), engine commands.\n"
          "\n"
          "commands:\n"
          "  info  [MODEL]                 configuration of a safetensors model and\n"
          "                                where each field came from\n"
          "  eval  --data PATH [--model M] top-1/top-5 accuracy on a labelled image set\n"
          "  synth --out DIR [--model M]   synthesise calibration images (noise, PSAQ-ViT\n"
          "                                or SARDFQ) into DIR\n"
          "  quantize --out Q [--model M]  quantize with real, synthetic or noise\n"
          "                                calibration images (RepQ-ViT or PSAQ-ViT)\n"
          "  semantics --data PATH         class semantics of synthetic images, per\n"
          "                                method and ablation\n"
          "  export --onnx OUT [--model M]  the model as an ONNX file (FP32 or\n"
          "                                quantized; experimental)\n"
          "  bench (--model M | --arch A)  forward and forward+backward speed against\n"
          "                                a 1024^3 OpenBLAS sgemm\n"
          "  help  [COMMAND]               this text, or a command's options\n"
          "\n"
          "  --help, --version             usage, version\n",
          f);
    if (cli_default_model())
        fprintf(f, "\nWithout --model, info, eval and synth use %s\n", cli_default_model());
    fputs("\nExit status: 0 success, 1 failure, 2 bad command line.\n", f);
}

static int help(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 2)
        return cli_usage_error("help: one command at most");
    if (strcmp(argv[1], "info") == 0)
        cli_usage_info(stdout);
    else if (strcmp(argv[1], "eval") == 0)
        cli_usage_eval(stdout);
    else if (strcmp(argv[1], "bench") == 0)
        cli_usage_bench(stdout);
    else if (strcmp(argv[1], "synth") == 0)
        cli_usage_synth(stdout);
    else if (strcmp(argv[1], "semantics") == 0)
        cli_usage_semantics(stdout);
    else if (strcmp(argv[1], "quantize") == 0)
        cli_usage_quantize(stdout);
    else if (strcmp(argv[1], "export") == 0)
        cli_usage_export(stdout);
    else if (strcmp(argv[1], "help") == 0)
        usage(stdout);
    else
        return cli_usage_error("help: unknown command '%s'", argv[1]);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    const char *cmd;
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        if (argc > 2)
            return cli_usage_error("--version takes no arguments");
        printf("sardfq %s (libsardfq %s)\n", SARDFQ_VERSION_STRING, sardfq_version_string());
        return CLI_EXIT_OK;
    }
    if (cli_is_help(cmd) || strcmp(cmd, "help") == 0)
        return help(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0)
        return cli_info(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0)
        return cli_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return cli_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "synth") == 0)
        return cli_synth(argc - 1, argv + 1);
    if (strcmp(cmd, "semantics") == 0)
        return cli_semantics(argc - 1, argv + 1);
    if (strcmp(cmd, "quantize") == 0)
        return cli_quantize(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0)
        return cli_export(argc - 1, argv + 1);
    if (cmd[0] == '-')
        return cli_usage_error("unknown option '%s'", cmd);
    return cli_usage_error("unknown command '%s'", cmd);
}
