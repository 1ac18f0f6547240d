/* cli_info.c - `sardfq info`: a model's configuration, where each field came
 * from, its size and cost, and its metadata. */
#include "cli.h"

#include <string.h>

void cli_usage_info(FILE *f)
{
    fputs("usage: sardfq info [MODEL] [--heads N]\n"
          "\n"
          "Prints the configuration of the safetensors model MODEL (or --model M), and\n"
          "for each field whether it was read from the file's metadata, inferred from\n"
          "tensor shapes, set by an override or a default; the parameter count, the\n"
          "forward FLOPs per image and every metadata entry.\n"
          "\n"
          "  --heads N   number of attention heads, when the file does not say\n",
          f);
}

static const char *source_name(int32_t s)
{
    switch (s) {
    case SARDFQ_SOURCE_METADATA: return "metadata";
    case SARDFQ_SOURCE_SHAPES: return "inferred from shapes";
    case SARDFQ_SOURCE_PARAMS: return "params override";
    case SARDFQ_SOURCE_DEFAULT: return "default";
    default: return "?";
    }
}

static const char *arch_name(int32_t a)
{
    switch (a) {
    case SARDFQ_ARCH_VIT: return "vit (class token)";
    case SARDFQ_ARCH_DEIT_DISTILLED: return "deit_distilled (cls + dist token)";
    case SARDFQ_ARCH_SWIN: return "swin (shifted windows)";
    default: return "unknown";
    }
}

static const char *naming_name(int32_t n)
{
    switch (n) {
    case SARDFQ_NAMING_TIMM: return "timm";
    case SARDFQ_NAMING_TORCHVISION: return "torchvision";
    case SARDFQ_NAMING_RANDOM: return "random weights";
    default: return "unknown";
    }
}

static void row(const sardfq_model_info *info, const char *name, int field, const char *value)
{
    printf("  %-12s %-34s %s\n", name, value,
           field >= 0 ? source_name(info->source[field]) : "");
}

static void per_channel(char *buf, size_t size, const float *v, int n)
{
    int used = 0;
    buf[0] = '\0';
    for (int c = 0; c < n && c < 3 && (size_t)used < size; c++)
        used += snprintf(buf + used, size - (size_t)used, "%s%.4f", c ? " " : "", v[c]);
}

/* Thousands separators for the parameter count. */
static void grouped(char *buf, size_t size, int64_t v)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)v), j = 0;
    for (int i = 0; i < n && (size_t)j + 2 < size; i++) {
        if (i > 0 && digits[i - 1] != '-' && (n - i) % 3 == 0)
            buf[j++] = ',';
        buf[j++] = digits[i];
    }
    buf[j] = '\0';
}


int cli_info(int argc, char **argv)
{
    const char *path = NULL, *v;
    long heads = 0;
    sardfq_model *m;
    sardfq_model_info info;
    char buf[128], num[40];
    int r, shown = 0;

    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cli_usage_info(stdout);
            return CLI_EXIT_OK;
        }
        if ((r = cli_option("info", argc, argv, &i, "model", &v)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            path = v;
        } else if ((r = cli_option("info", argc, argv, &i, "heads", &v)) != 0) {
            if (r < 0 || cli_parse_long("info", "heads", v, 1, 4096, &heads) != 0)
                return CLI_EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error("info: unknown option '%s'", argv[i]);
        } else if (path == NULL) {
            path = argv[i];
        } else {
            return cli_usage_error("info: one model at a time (got '%s' and '%s')", path,
                                   argv[i]);
        }
    }
    if (path == NULL && (path = cli_default_model()) == NULL)
        return cli_usage_error("info: no model given");

    if ((m = cli_load_model(path, 0, (int)heads)) == NULL)
        return CLI_EXIT_FAIL;
    if (cli_model_info(m, &info) != 0) {
        sardfq_model_free(m);
        return CLI_EXIT_FAIL;
    }

    printf("model %s\n", path);
    printf("  %-12s %-34s %s\n", "field", "value", "source");
    row(&info, "arch", SARDFQ_FIELD_ARCH, arch_name(info.arch));
    row(&info, "naming", -1, naming_name(info.naming));
    snprintf(buf, sizeof buf, "%d x %d", info.img_h, info.img_w);
    row(&info, "img_size", SARDFQ_FIELD_IMG_SIZE, buf);
    snprintf(buf, sizeof buf, "%d", info.patch_size);
    row(&info, "patch_size", SARDFQ_FIELD_PATCH_SIZE, buf);
    snprintf(buf, sizeof buf, "%d", info.in_chans);
    row(&info, "in_chans", SARDFQ_FIELD_IN_CHANS, buf);
    snprintf(buf, sizeof buf, "%d", info.embed_dim);
    row(&info, "embed_dim", SARDFQ_FIELD_EMBED_DIM, buf);
    snprintf(buf, sizeof buf, "%d", info.depth);
    row(&info, "depth", SARDFQ_FIELD_DEPTH, buf);
    snprintf(buf, sizeof buf, "%d (head_dim %d)", info.num_heads, info.head_dim);
    row(&info, "num_heads", SARDFQ_FIELD_NUM_HEADS, buf);
    snprintf(buf, sizeof buf, "%d", info.mlp_hidden);
    row(&info, "mlp_hidden", SARDFQ_FIELD_MLP_HIDDEN, buf);
    snprintf(buf, sizeof buf, "%d", info.num_classes);
    row(&info, "num_classes", SARDFQ_FIELD_NUM_CLASSES, buf);
    per_channel(buf, sizeof buf, info.mean, info.in_chans);
    row(&info, "mean", SARDFQ_FIELD_MEAN, buf);
    per_channel(buf, sizeof buf, info.std, info.in_chans);
    row(&info, "std", SARDFQ_FIELD_STD, buf);
    snprintf(buf, sizeof buf, "%.3f", info.crop_pct);
    row(&info, "crop_pct", SARDFQ_FIELD_CROP_PCT, buf);
    snprintf(buf, sizeof buf, "%g", info.ln_eps);
    row(&info, "ln_eps", SARDFQ_FIELD_LN_EPS, buf);

    if (info.arch == SARDFQ_ARCH_SWIN) {
        printf("window      %d x %d\n", info.window_size, info.window_size);
        for (int s = 0; s < info.num_stages; s++)
            printf("stage %d     %d blocks, dim %d, %d heads, %d x %d tokens\n", s, info.stage_depth[s],
                   info.stage_dim[s], info.stage_heads[s], info.grid_h >> s, info.grid_w >> s);
    } else {
        printf("tokens      %d (%d prefix + %d x %d patches)\n", info.num_tokens,
               info.num_prefix_tokens, info.grid_h, info.grid_w);
    }
    grouped(num, sizeof num, info.num_params);
    printf("parameters  %s (%.2f MiB as float32)\n", num,
           (double)info.num_params * 4.0 / (1024.0 * 1024.0));
    if (info.flops_per_image >= 1e9)
        printf("flops       %.3f GFLOP per image (forward)\n", info.flops_per_image * 1e-9);
    else
        printf("flops       %.3f MFLOP per image (forward)\n", info.flops_per_image * 1e-6);

    if (info.quantized) {
        const char *rep = sardfq_model_executor_report(m);
        printf("quantized   %s W%dA%d, executor %s: %d ops on integer kernels, %d in float; weights %.2f MiB\n",
               info.quant_scheme == SARDFQ_SCHEME_REPQ ? "repq" : "minmax", info.weight_bits, info.act_bits,
               info.executor == SARDFQ_EXECUTOR_FAKE ? "fake" : "int", info.int_ops, info.float_ops,
               (double)info.weight_bytes / (1024.0 * 1024.0));
        if (rep)
            printf("ops\n%s", rep);
    }
    for (int32_t k = 0; k < sardfq_model_metadata_count(m); k++) {
        const char *key = sardfq_model_metadata_key(m, k);
        if (!shown++)
            printf("metadata\n");
        printf("  %-16s %s\n", key, sardfq_model_get_metadata(m, key));
    }
    sardfq_model_free(m);
    return CLI_EXIT_OK;
}
