// header_cxx.cpp - the public header compiled as C++11 with -Werror, and the
// exact type of every exported function checked at compile time. decltype
// does not odr-use a function, so only the version and status functions need
// to link. A failing static_assert here means the ABI changed: update the
// map node and the soname policy, not just this file. The experimental
// section is checked too (its signatures may still change between minor
// releases; then this file changes with them).
#define SARDFQ_EXPERIMENTAL
#include "sardfq.h"

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <type_traits>

// SARDFQ_NODISCARD puts warn_unused_result on the function types; the
// comparison ignores it (and says so), which is what we want here.
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wignored-attributes"
#endif

#define SIG(fn, type) \
    static_assert(std::is_same<decltype(&fn), type>::value, #fn " changed its signature")

SIG(sardfq_version_string, const char *(*)(void));
SIG(sardfq_version_number, uint32_t (*)(void));
SIG(sardfq_status_string, const char *(*)(sardfq_status));
SIG(sardfq_last_error, const char *(*)(void));
SIG(sardfq_model_default_params, void (*)(sardfq_model_params *));
SIG(sardfq_model_load, sardfq_status (*)(const char *, const sardfq_model_params *, sardfq_model **));
SIG(sardfq_model_load_memory,
    sardfq_status (*)(const void *, size_t, const sardfq_model_params *, sardfq_model **));
SIG(sardfq_model_create_random,
    sardfq_status (*)(const char *, uint64_t, const sardfq_model_params *, sardfq_model **));
SIG(sardfq_model_free, void (*)(sardfq_model *));
SIG(sardfq_model_get_info, sardfq_status (*)(const sardfq_model *, sardfq_model_info *));
SIG(sardfq_model_get_metadata, const char *(*)(const sardfq_model *, const char *));
SIG(sardfq_model_executor_report, const char *(*)(const sardfq_model *));
SIG(sardfq_model_set_executor, sardfq_status (*)(sardfq_model *, int32_t));
SIG(sardfq_model_metadata_count, int32_t (*)(const sardfq_model *));
SIG(sardfq_model_metadata_key, const char *(*)(const sardfq_model *, int32_t));
SIG(sardfq_model_forward, sardfq_status (*)(const sardfq_model *, const float *, int, float *));
SIG(sardfq_state_create, sardfq_status (*)(const sardfq_model *, sardfq_state **));
SIG(sardfq_state_free, void (*)(sardfq_state *));
SIG(sardfq_model_forward_ex,
    sardfq_status (*)(const sardfq_model *, sardfq_state *, const float *, int, uint32_t, float *));
SIG(sardfq_state_get_attention, sardfq_status (*)(const sardfq_state *, float *, size_t));
SIG(sardfq_state_get_features, sardfq_status (*)(const sardfq_state *, float *, size_t));
SIG(sardfq_model_backward, sardfq_status (*)(const sardfq_model *, sardfq_state *, const float *,
                                             const float *, float *));
SIG(sardfq_dataset_open, sardfq_status (*)(const char *, const sardfq_model *, sardfq_dataset **));
SIG(sardfq_dataset_free, void (*)(sardfq_dataset *));
SIG(sardfq_dataset_count, int64_t (*)(const sardfq_dataset *));
SIG(sardfq_dataset_read, sardfq_status (*)(sardfq_dataset *, int64_t, int, float *, int32_t *));
SIG(sardfq_eval_default_params, void (*)(sardfq_eval_params *));
SIG(sardfq_evaluate, sardfq_status (*)(const sardfq_model *, sardfq_dataset *,
                                       const sardfq_eval_params *, sardfq_eval_result *));
SIG(sardfq_evaluate_range, sardfq_status (*)(const sardfq_model *, sardfq_dataset *,
                                             const sardfq_eval_params *, int64_t, sardfq_eval_result *));
SIG(sardfq_export_default_params, void (*)(sardfq_export_params *));
SIG(sardfq_model_export_onnx, sardfq_status (*)(const sardfq_model *, const char *, const sardfq_export_params *));
SIG(sardfq_generator_set_head_align, sardfq_status (*)(sardfq_generator *, float));
SIG(sardfq_quantizer_set_recon_attn, sardfq_status (*)(sardfq_quantizer *, float));
SIG(sardfq_prior_default_params, void (*)(sardfq_prior_params *));
SIG(sardfq_prior_create,
    sardfq_status (*)(int, int, const sardfq_prior_params *, sardfq_prior **));
SIG(sardfq_prior_free, void (*)(sardfq_prior *));
SIG(sardfq_prior_sample, sardfq_status (*)(sardfq_prior *, int, float *));
SIG(sardfq_calib_save, sardfq_status (*)(const char *, const float *, const float *, int, int,
                                         int, int, int));
SIG(sardfq_calib_load, sardfq_status (*)(const char *, float *, float *, int *, int *, int *,
                                         int *, int *));
SIG(sardfq_images_write_png,
    sardfq_status (*)(const char *, const sardfq_model *, const float *, int, int));
SIG(sardfq_generator_default_params, void (*)(sardfq_generator_params *));
SIG(sardfq_generator_create,
    sardfq_status (*)(const sardfq_model *, const sardfq_generator_params *, sardfq_generator **));
SIG(sardfq_generator_create_shard,
    sardfq_status (*)(const sardfq_model *, const sardfq_generator_params *, int, int, sardfq_generator **));
SIG(sardfq_generator_free, void (*)(sardfq_generator *));
SIG(sardfq_generator_set_priors, sardfq_status (*)(sardfq_generator *, const float *, size_t));
SIG(sardfq_generator_step, sardfq_status (*)(sardfq_generator *, sardfq_synth_report *));
SIG(sardfq_generator_run, sardfq_status (*)(sardfq_generator *, sardfq_synth_report *));
SIG(sardfq_generator_get_images, sardfq_status (*)(const sardfq_generator *, float *, size_t));
SIG(sardfq_generator_get_targets, sardfq_status (*)(const sardfq_generator *, float *, size_t));
SIG(sardfq_quant_default_params, void (*)(sardfq_quant_params *));
SIG(sardfq_quantizer_create,
    sardfq_status (*)(const sardfq_model *, const sardfq_quant_params *, sardfq_quantizer **));
SIG(sardfq_quantizer_free, void (*)(sardfq_quantizer *));
SIG(sardfq_quantizer_set_layer, sardfq_status (*)(sardfq_quantizer *, const char *, int32_t, int32_t));
SIG(sardfq_quantizer_calibrate, sardfq_status (*)(sardfq_quantizer *, const float *, int32_t));
SIG(sardfq_quantizer_reconstruct, sardfq_status (*)(sardfq_quantizer *, const float *, int32_t));
SIG(sardfq_quantizer_finalize, sardfq_status (*)(sardfq_quantizer *, sardfq_model **));
SIG(sardfq_model_save, sardfq_status (*)(const sardfq_model *, const char *));
static_assert(std::is_same<sardfq_progress_fn,
                           int (*)(void *, int64_t, int64_t, const char *)>::value,
              "sardfq_progress_fn changed");

static_assert(SARDFQ_VERSION_NUMBER == SARDFQ_VERSION_MAJOR * 10000 +
                                           SARDFQ_VERSION_MINOR * 100 + SARDFQ_VERSION_PATCH,
              "version number");
static_assert(std::is_same<sardfq_status, int32_t>::value, "sardfq_status is int32_t");
static_assert(std::is_standard_layout<sardfq_model_info>::value, "info is a C struct");
static_assert(offsetof(sardfq_model_params, struct_size) == 0, "struct_size first");
static_assert(offsetof(sardfq_model_info, struct_size) == 0, "struct_size first");
static_assert(offsetof(sardfq_eval_params, struct_size) == 0, "struct_size first");
static_assert(offsetof(sardfq_eval_result, struct_size) == 0, "struct_size first");
static_assert(offsetof(sardfq_prior_params, struct_size) == 0, "struct_size first");
static_assert(offsetof(sardfq_generator_params, struct_size) == 0, "struct_size first");
static_assert(offsetof(sardfq_synth_report, struct_size) == 0, "struct_size first");

int main()
{
    const char *s = sardfq_version_string();
    if (sardfq_version_number() != SARDFQ_VERSION_NUMBER || s == nullptr ||
        std::strcmp(s, SARDFQ_VERSION_STRING) != 0) {
        std::fprintf(stderr, "header %s but library %s\n", SARDFQ_VERSION_STRING,
                     s ? s : "(null)");
        return 1;
    }
    const char *ok = sardfq_status_string(SARDFQ_OK);
    if (ok == nullptr || ok[0] == '\0')
        return 1;
    std::printf("libsardfq %s from C++: ok\n", s);
    return 0;
}
