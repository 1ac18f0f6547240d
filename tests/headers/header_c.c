/* header_c.c - the public header on its own, compiled as C89, C99 and C11
 * with -pedantic -Werror (see meson.build), then run against the shared
 * library: the version macros must match what the library reports.
 *
 * Only the version and status functions are called. Every other prototype is
 * type-checked inside sizeof, which does not evaluate (and so does not link)
 * the call. Written in C89 style: declarations first, no // comments. The
 * experimental section is compiled too. */
#define SARDFQ_EXPERIMENTAL
#include "sardfq.h"
#include "sardfq.h" /* the include guard works */

#include <stdio.h>
#include <string.h>

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define CHECK(cond, name) _Static_assert(cond, #name)
#else
#define CHECK(cond, name) typedef char check_##name[(cond) ? 1 : -1]
#endif

CHECK(SARDFQ_VERSION_NUMBER ==
          SARDFQ_VERSION_MAJOR * 10000 + SARDFQ_VERSION_MINOR * 100 + SARDFQ_VERSION_PATCH,
      version_number);
CHECK(SARDFQ_VERSION_MAJOR >= 0 && SARDFQ_VERSION_MINOR >= 0 && SARDFQ_VERSION_MINOR < 100 &&
          SARDFQ_VERSION_PATCH >= 0 && SARDFQ_VERSION_PATCH < 100,
      version_parts);
CHECK(sizeof(SARDFQ_VERSION_STRING) >= 6, version_string);
CHECK(sizeof(sardfq_status) == 4, status_size);
CHECK(SARDFQ_OK == 0 && SARDFQ_E_INVALID_ARG < 0 && SARDFQ_E_INTERNAL < 0, status_values);
CHECK(SARDFQ_FIELD_COUNT == 13, field_count);
CHECK(sizeof(((sardfq_model_info *)0)->source) / sizeof(int32_t) == SARDFQ_FIELD_COUNT,
      source_array);
/* Every params/info/result struct begins with its uint32_t struct_size. */
CHECK(sizeof(((sardfq_model_params *)0)->struct_size) == 4, params_struct_size);
CHECK(sizeof(((sardfq_model_info *)0)->struct_size) == 4, info_struct_size);
CHECK(sizeof(((sardfq_eval_params *)0)->struct_size) == 4, eval_params_struct_size);
CHECK(sizeof(((sardfq_eval_result *)0)->struct_size) == 4, eval_result_struct_size);
CHECK(sizeof(((sardfq_prior_params *)0)->struct_size) == 4, prior_params_struct_size);

/* Type-checks the calls without evaluating them. */
static size_t prototypes(void)
{
    sardfq_model *m = NULL;
    const sardfq_model *cm = NULL;
    sardfq_state *s = NULL;
    sardfq_dataset *d = NULL;
    sardfq_model_params mp;
    sardfq_model_info info;
    sardfq_eval_params ep;
    sardfq_eval_result er;
    sardfq_prior *pr = NULL;
    sardfq_prior_params pp;
    sardfq_generator *g = NULL;
    sardfq_generator_params gp;
    sardfq_synth_report rep;
    sardfq_quant_params qp;
    sardfq_export_params xp;
    sardfq_quantizer *qz = NULL;
    int dims[5];
    float f[1];
    int32_t labels[1];
    size_t n = 0;

    n += sizeof(sardfq_model_load("x", &mp, &m));
    n += sizeof(sardfq_model_load_memory(f, sizeof f, &mp, &m));
    n += sizeof(sardfq_model_create_random("deit_tiny", (uint64_t)0, &mp, &m));
    n += sizeof(sardfq_model_get_info(m, &info));
    n += sizeof(sardfq_model_get_metadata(m, "k"));
    n += sizeof(sardfq_model_executor_report(m));
    n += sizeof(sardfq_model_set_executor(m, SARDFQ_EXECUTOR_AUTO));
    n += sizeof(sardfq_model_metadata_count(m));
    n += sizeof(sardfq_model_metadata_key(m, 0));
    n += sizeof(sardfq_model_forward(m, f, 1, f));
    n += sizeof(sardfq_state_create(m, &s));
    n += sizeof(sardfq_model_forward_ex(m, s, f, 1, SARDFQ_FORWARD_BACKWARD, f));
    n += sizeof(sardfq_state_get_attention(s, f, (size_t)1));
    n += sizeof(sardfq_state_get_features(s, f, (size_t)1));
    n += sizeof(sardfq_model_backward(m, s, f, f, f));
    n += sizeof(sardfq_dataset_open("x", m, &d));
    n += sizeof(sardfq_dataset_count(d));
    n += sizeof(sardfq_dataset_read(d, (int64_t)0, 1, f, labels));
    n += sizeof(sardfq_evaluate(m, d, &ep, &er));
    n += sizeof(sardfq_last_error());
    n += sizeof(sardfq_prior_create(14, 14, &pp, &pr));
    n += sizeof(sardfq_prior_sample(pr, 1, f));
    n += sizeof(sardfq_calib_save("x", f, f, 1, 1, 1, 1, 1));
    n += sizeof(sardfq_calib_load("x", f, f, &dims[0], &dims[1], &dims[2], &dims[3], &dims[4]));
    n += sizeof(sardfq_images_write_png("x", m, f, 1, 1));
    n += sizeof(sardfq_generator_create(m, &gp, &g));
    n += sizeof(sardfq_generator_create_shard(m, &gp, 0, 1, &g));
    n += sizeof(sardfq_evaluate_range(m, d, &ep, 0, &er));
    n += sizeof(sardfq_generator_set_priors(g, f, (size_t)1));
    n += sizeof(sardfq_generator_step(g, &rep));
    n += sizeof(sardfq_generator_run(g, &rep));
    n += sizeof(sardfq_generator_get_images(g, f, (size_t)1));
    n += sizeof(sardfq_generator_get_targets(g, f, (size_t)1));
    n += sizeof(sardfq_quantizer_create(m, &qp, &qz));
    n += sizeof(sardfq_quantizer_set_layer(qz, "head", 8, 8));
    n += sizeof(sardfq_quantizer_calibrate(qz, f, 1));
    n += sizeof(sardfq_quantizer_reconstruct(qz, f, 1));
    n += sizeof(sardfq_quantizer_finalize(qz, &m));
    n += sizeof(sardfq_model_save(m, "x"));
    sardfq_export_default_params(&xp);
    n += sizeof(sardfq_model_export_onnx(m, "x", &xp));
    n += sizeof(sardfq_generator_set_head_align(g, 1.0f));
    n += sizeof(sardfq_quantizer_set_recon_attn(qz, 1.0f));
    /* the functions that only read the model take a pointer to const
     * (with -Werror a non-const parameter would reject cm) */
    n += sizeof(sardfq_model_forward(cm, f, 1, f));
    n += sizeof(sardfq_model_forward_ex(cm, s, f, 1, SARDFQ_FORWARD_BACKWARD, f));
    n += sizeof(sardfq_model_backward(cm, s, f, f, f));
    n += sizeof(sardfq_evaluate(cm, d, &ep, &er));
    n += sizeof(sardfq_generator_create(cm, &gp, &g));
    /* void functions: the comma operator gives sizeof an int operand */
    n += sizeof((sardfq_model_default_params(&mp), 0));
    n += sizeof((sardfq_model_free(m), 0));
    n += sizeof((sardfq_state_free(s), 0));
    n += sizeof((sardfq_dataset_free(d), 0));
    n += sizeof((sardfq_eval_default_params(&ep), 0));
    n += sizeof((sardfq_prior_default_params(&pp), 0));
    n += sizeof((sardfq_prior_free(pr), 0));
    n += sizeof((sardfq_generator_default_params(&gp), 0));
    n += sizeof((sardfq_generator_free(g), 0));
    n += sizeof((sardfq_quant_default_params(&qp), 0));
    n += sizeof((sardfq_quantizer_free(qz), 0));
    return n;
}

int main(void)
{
    const char *s = sardfq_version_string();
    uint32_t v = sardfq_version_number();
    const char *ok = sardfq_status_string(SARDFQ_OK);

    if (prototypes() == 0)
        return 1;
    if (v != (uint32_t)SARDFQ_VERSION_NUMBER || s == NULL ||
        strcmp(s, SARDFQ_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s (%d) but library %s (%lu)\n", SARDFQ_VERSION_STRING,
                SARDFQ_VERSION_NUMBER, s ? s : "(null)", (unsigned long)v);
        return 1;
    }
    if (ok == NULL || ok[0] == '\0') {
        fprintf(stderr, "sardfq_status_string(SARDFQ_OK) is empty\n");
        return 1;
    }
    printf("libsardfq %s, header %s: ok\n", s, SARDFQ_VERSION_STRING);
    return 0;
}
