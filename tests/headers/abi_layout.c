/* abi_layout.c - freezes the 0.1 layout of every public struct that hosts
 * fill or read: its size and alignment, and the offset and size of each
 * field, as compiled for x86-64 / LP64 (System V). A host that mirrors these
 * structs (ctypes, cffi, Rust, Go) relies on exactly these numbers.
 *
 * The numbers were printed once from the 0.1 header and frozen here. If this
 * file stops compiling, the header changed the layout of a released struct:
 * that is an ABI break. Structs may only grow at the tail (struct_size tells
 * the library how much the caller knows): add the new field's FIELD line and
 * update the SIZE line, never edit an existing FIELD line. See lib/ABI.md.
 *
 * On other targets the program is compiled but skips (exit 77). */
#include <sardfq.h>

#include <stddef.h>
#include <stdio.h>

#if defined(__x86_64__) && defined(__LP64__)

#define SIZE(T, size, align)                                                           \
    _Static_assert(sizeof(T) == (size) && _Alignof(T) == (align), #T ": size or alignment")
#define FIELD(T, f, off, size)                                                         \
    _Static_assert(offsetof(T, f) == (off) && sizeof(((T *)0)->f) == (size),           \
                   #T "." #f ": offset or size")

SIZE(sardfq_model_params, 12, 4);
FIELD(sardfq_model_params, struct_size, 0, 4);
FIELD(sardfq_model_params, num_heads, 4, 4);
FIELD(sardfq_model_params, n_threads, 8, 4);

SIZE(sardfq_model_info, 328, 8);
FIELD(sardfq_model_info, struct_size, 0, 4);
FIELD(sardfq_model_info, arch, 4, 4);
FIELD(sardfq_model_info, naming, 8, 4);
FIELD(sardfq_model_info, img_h, 12, 4);
FIELD(sardfq_model_info, img_w, 16, 4);
FIELD(sardfq_model_info, patch_size, 20, 4);
FIELD(sardfq_model_info, in_chans, 24, 4);
FIELD(sardfq_model_info, embed_dim, 28, 4);
FIELD(sardfq_model_info, depth, 32, 4);
FIELD(sardfq_model_info, num_heads, 36, 4);
FIELD(sardfq_model_info, head_dim, 40, 4);
FIELD(sardfq_model_info, mlp_hidden, 44, 4);
FIELD(sardfq_model_info, num_classes, 48, 4);
FIELD(sardfq_model_info, grid_h, 52, 4);
FIELD(sardfq_model_info, grid_w, 56, 4);
FIELD(sardfq_model_info, num_prefix_tokens, 60, 4);
FIELD(sardfq_model_info, num_tokens, 64, 4);
FIELD(sardfq_model_info, mean, 68, 12);
FIELD(sardfq_model_info, std, 80, 12);
FIELD(sardfq_model_info, crop_pct, 92, 4);
FIELD(sardfq_model_info, ln_eps, 96, 4);
FIELD(sardfq_model_info, num_params, 104, 8);
FIELD(sardfq_model_info, flops_per_image, 112, 8);
FIELD(sardfq_model_info, source, 120, 52);
/* 0.3: the stage description of hierarchical models */
FIELD(sardfq_model_info, num_stages, 172, 4);
FIELD(sardfq_model_info, window_size, 176, 4);
FIELD(sardfq_model_info, stage_depth, 180, 32);
FIELD(sardfq_model_info, stage_heads, 212, 32);
FIELD(sardfq_model_info, stage_dim, 244, 32);
FIELD(sardfq_model_info, num_features, 276, 4);
FIELD(sardfq_model_info, attention_floats, 280, 8);
/* 0.5: quantized models and their executor */
FIELD(sardfq_model_info, quantized, 288, 4);
FIELD(sardfq_model_info, quant_scheme, 292, 4);
FIELD(sardfq_model_info, weight_bits, 296, 4);
FIELD(sardfq_model_info, act_bits, 300, 4);
FIELD(sardfq_model_info, executor, 304, 4);
FIELD(sardfq_model_info, int_ops, 308, 4);
FIELD(sardfq_model_info, float_ops, 312, 4);
FIELD(sardfq_model_info, weight_bytes, 320, 8);

SIZE(sardfq_eval_params, 40, 8);
FIELD(sardfq_eval_params, struct_size, 0, 4);
FIELD(sardfq_eval_params, limit, 8, 8);
FIELD(sardfq_eval_params, batch, 16, 4);
FIELD(sardfq_eval_params, progress, 24, 8);
FIELD(sardfq_eval_params, user_data, 32, 8);

SIZE(sardfq_eval_result, 32, 8);
FIELD(sardfq_eval_result, struct_size, 0, 4);
FIELD(sardfq_eval_result, n, 8, 8);
FIELD(sardfq_eval_result, top1_correct, 16, 8);
FIELD(sardfq_eval_result, top5_correct, 24, 8);

SIZE(sardfq_prior_params, 32, 8);
FIELD(sardfq_prior_params, struct_size, 0, 4);
FIELD(sardfq_prior_params, kind, 4, 4);
FIELD(sardfq_prior_params, max_components, 8, 4);
FIELD(sardfq_prior_params, scale_min, 12, 4);
FIELD(sardfq_prior_params, scale_max, 16, 4);
FIELD(sardfq_prior_params, seed, 24, 8);

SIZE(sardfq_generator_params, 128, 8);
FIELD(sardfq_generator_params, struct_size, 0, 4);
FIELD(sardfq_generator_params, method, 4, 4);
FIELD(sardfq_generator_params, n_images, 8, 4);
FIELD(sardfq_generator_params, iters, 12, 4);
FIELD(sardfq_generator_params, rounds, 16, 4);
FIELD(sardfq_generator_params, warmup, 20, 4);
FIELD(sardfq_generator_params, lr, 24, 4);
FIELD(sardfq_generator_params, beta1, 28, 4);
FIELD(sardfq_generator_params, beta2, 32, 4);
FIELD(sardfq_generator_params, adam_eps, 36, 4);
FIELD(sardfq_generator_params, use_apa, 40, 4);
FIELD(sardfq_generator_params, use_msr, 44, 4);
FIELD(sardfq_generator_params, use_sl, 48, 4);
FIELD(sardfq_generator_params, apa_weight, 52, 4);
FIELD(sardfq_generator_params, tv_weight, 56, 4);
FIELD(sardfq_generator_params, tv_min, 60, 4);
FIELD(sardfq_generator_params, tv_max, 64, 4);
FIELD(sardfq_generator_params, sl_min, 68, 4);
FIELD(sardfq_generator_params, sl_max, 72, 4);
FIELD(sardfq_generator_params, msr_regions, 76, 4);
FIELD(sardfq_generator_params, prior_kind, 80, 4);
FIELD(sardfq_generator_params, prior_components, 84, 4);
FIELD(sardfq_generator_params, prior_scale_min, 88, 4);
FIELD(sardfq_generator_params, prior_scale_max, 92, 4);
FIELD(sardfq_generator_params, micro_batch, 96, 4);
FIELD(sardfq_generator_params, seed, 104, 8);
FIELD(sardfq_generator_params, progress, 112, 8);
FIELD(sardfq_generator_params, user_data, 120, 8);

SIZE(sardfq_synth_report, 52, 4);
FIELD(sardfq_synth_report, struct_size, 0, 4);
FIELD(sardfq_synth_report, step, 4, 4);
FIELD(sardfq_synth_report, total, 8, 4);
FIELD(sardfq_synth_report, lr, 12, 4);
FIELD(sardfq_synth_report, loss, 16, 4);
FIELD(sardfq_synth_report, apa, 20, 4);
FIELD(sardfq_synth_report, ce, 24, 4);
FIELD(sardfq_synth_report, msr, 28, 4);
FIELD(sardfq_synth_report, tv, 32, 4);
FIELD(sardfq_synth_report, pse, 36, 4);
FIELD(sardfq_synth_report, target_prob, 40, 4);
FIELD(sardfq_synth_report, seconds, 44, 4);
FIELD(sardfq_synth_report, model_seconds, 48, 4);

/* 0.2 */
SIZE(sardfq_quant_params, 48, 8);
FIELD(sardfq_quant_params, struct_size, 0, 4);
FIELD(sardfq_quant_params, weight_bits, 4, 4);
FIELD(sardfq_quant_params, act_bits, 8, 4);
FIELD(sardfq_quant_params, scheme, 12, 4);
FIELD(sardfq_quant_params, n_threads, 16, 4);
FIELD(sardfq_quant_params, recon_iters, 20, 4);
FIELD(sardfq_quant_params, recon_lr, 24, 4);
FIELD(sardfq_quant_params, progress, 32, 8);
FIELD(sardfq_quant_params, user_data, 40, 8);

int main(void)
{
    printf("layout of the 8 public structs is the frozen 0.1/0.2 layout (x86-64 LP64)\n");
    return 0;
}

#else

/* 0.2 */
SIZE(sardfq_quant_params, 48, 8);
FIELD(sardfq_quant_params, struct_size, 0, 4);
FIELD(sardfq_quant_params, weight_bits, 4, 4);
FIELD(sardfq_quant_params, act_bits, 8, 4);
FIELD(sardfq_quant_params, scheme, 12, 4);
FIELD(sardfq_quant_params, n_threads, 16, 4);
FIELD(sardfq_quant_params, recon_iters, 20, 4);
FIELD(sardfq_quant_params, recon_lr, 24, 4);
FIELD(sardfq_quant_params, progress, 32, 8);
FIELD(sardfq_quant_params, user_data, 40, 8);

int main(void)
{
    printf("not x86-64 LP64: layout not checked\n");
    return 77;
}

#endif
