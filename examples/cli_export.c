/* cli_export.c - `sardfq export`: a model (floating-point or quantized) as
 * an ONNX file (sardfq_model_export_onnx, experimental). */
#define SARDFQ_EXPERIMENTAL
#include "cli.h"

#include <string.h>

void cli_usage_export(FILE *f)
{
    fputs("usage: sardfq export --onnx OUT.onnx [--model M] [--flavor exact|ort] [--batch N|dynamic]\n"
          "                     [--heads N]\n"
          "\n"
          "Writes the model M (a floating-point or a quantized safetensors file) as an\n"
          "ONNX file (IR 8, opset 17) that takes the normalised images (N x C x H x W,\n"
          "input \"input\") and gives the logits (output \"logits\"). --flavor exact\n"
          "(the default) reproduces the library's arithmetic: weight codes behind\n"
          "per-channel DequantizeLinear, every active activation quantizer at its\n"
          "point (QuantizeLinear + DequantizeLinear, a Clip first below 8 bits), the\n"
          "log-sqrt2 softmax quantizer as float ops. --flavor ort lays a quantized\n"
          "model out for ONNX Runtime's integer kernels: the softmax on a uniform\n"
          "8-bit grid instead, PSAQ-ViT's quantizers as QuantizeLinear.\n"
          "--batch N fixes the batch dimension (default: dynamic, named N). The\n"
          "file is written through a temporary file and rename. --heads N: the\n"
          "number of attention heads, when the model file does not say. The last\n"
          "line of stdout is\n"
          "  onnx=<OUT> bytes=<size>\n",
          f);
}

int cli_export(int argc, char **argv)
{
    const char *path = NULL, *out = NULL, *v;
    long heads = 0;
    sardfq_export_params ep;
    sardfq_export_default_params(&ep);
    int r;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cli_usage_export(stdout);
            return CLI_EXIT_OK;
        }
        if ((r = cli_option("export", argc, argv, &i, "model", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            path = v;
        } else if ((r = cli_option("export", argc, argv, &i, "onnx", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            out = v;
        } else if ((r = cli_option("export", argc, argv, &i, "flavor", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            if (strcmp(v, "exact") == 0)
                ep.flavor = SARDFQ_ONNX_EXACT;
            else if (strcmp(v, "ort") == 0)
                ep.flavor = SARDFQ_ONNX_ORT;
            else
                return cli_usage_error("export: --flavor: 'exact' or 'ort' (got '%s')", v);
        } else if ((r = cli_option("export", argc, argv, &i, "heads", &v)) != 0) {
            if (r < 0 || cli_parse_long("export", "heads", v, 1, 4096, &heads) != 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_option("export", argc, argv, &i, "batch", &v)) != 0) {
            long n = 0;
            if (r < 0)
                return CLI_EXIT_USAGE;
            if (strcmp(v, "dynamic") != 0 && cli_parse_long("export", "batch", v, 1, 1 << 20, &n) != 0)
                return CLI_EXIT_USAGE;
            ep.batch = (int32_t)n;
        } else {
            return cli_usage_error("export: unknown argument '%s'", argv[i]);
        }
    }
    if (!out)
        return cli_usage_error("export: --onnx OUT is required");
    if (path == NULL && (path = cli_default_model()) == NULL)
        return cli_usage_error("export: no model given");
    sardfq_model *m = cli_load_model(path, 0, (int)heads);
    if (!m)
        return CLI_EXIT_FAIL;
    sardfq_status s = sardfq_model_export_onnx(m, out, &ep);
    sardfq_model_free(m);
    if (s)
        return cli_lib_fail(s, "export: cannot write %s", out);
    FILE *f = fopen(out, "rb");
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (f)
        fclose(f);
    printf("onnx=%s bytes=%ld\n", out, size);
    return CLI_EXIT_OK;
}
