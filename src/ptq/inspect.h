/* inspect.h - a narrow, read-only view of a model by name, for the tests.
 *
 * The test suites check quantizer parameters and (reparameterised,
 * fake-quantized) tensors against reference fixtures. They reach them only
 * through these functions, by the names the library already gives them,
 * never through struct sardfq_model, sfq_qspec or sfq_swin, so that the
 * model's internal layout can change without the tests changing with it.
 * Whoever changes that layout re-implements this file; the contracts below
 * are what the tests rely on.
 *
 * Names:
 *   activation points  sfq_qpoint_name's names: "patch_embed.input",
 *                      "blocks.0.attn.qkv.input", "head.input",
 *                      "layers.1.blocks.0.attn.matmul2.a",
 *                      "layers.1.downsample.reduction.input", ...
 *                      (the tensor-name prefixes of a saved quantized model);
 *   linears            "patch_embed", "blocks.0.attn.qkv", "blocks.3.mlp.fc2",
 *                      "head", "head_dist", "layers.1.downsample.reduction",
 *                      "layers.0.blocks.1.attn.proj", ...;
 *   tensors            the names a floating-point model is saved with
 *                      (sardfq_model_save): "blocks.0.norm1.weight",
 *                      "blocks.0.attn.qkv.weight", "pos_embed",
 *                      "layers.1.downsample.reduction.bias", "head.fc.weight".
 *
 * Nothing here allocates, prints or changes the model. Unknown names and
 * bad arguments return SARDFQ_E_INVALID_ARG with a message (sfq_fail). This
 * header is internal: not part of include/sardfq.h, not exported from the
 * shared library. */
#ifndef SFQ_INSPECT_H
#define SFQ_INSPECT_H

#include "quant.h"

/* Kind of an activation quantizer. */
enum { SFQ_INSPECT_OFF = 0, SFQ_INSPECT_UNIFORM = 1, SFQ_INSPECT_LOG = 2 };

/* One activation quantizer, by value. */
typedef struct {
    int kind;    /* SFQ_INSPECT_*; OFF for every point of a floating-point
                    model and for points the scheme leaves unquantized */
    int bits;    /* 2..8 when on, 0 when off */
    float scale; /* UNIFORM: the step D; LOG: the largest level D; 0 when off */
    float zero;  /* UNIFORM: the zero point (may be fractional after
                    RepQ-ViT's reparameterisation); 0 for LOG and OFF */
    sfq_uq u;    /* UNIFORM: the whole quantizer (scale, zero, bits, form),
                    for tests that run the quantizer maths; zeroed otherwise */
    sfq_lq lq;   /* LOG: the whole quantizer; zeroed otherwise */
} sfq_act_view;

/* One linear layer's weight quantizer. */
typedef struct {
    int bits;          /* 2..8, or 0 = floating point */
    int rows, cols;    /* the weight as a [rows][cols] matrix (the patch
                          embedding's [D][C][p][p] as [D][C p p]) */
    const sfq_uq *row; /* bits > 0: rows per-output-row quantizers (use
                          .scale, .zero); NULL when bits = 0. Borrowed:
                          valid while the model is alive and unchanged */
} sfq_lin_view;

/* Is m a quantized model (one that carries quantizers, even if every
 * layer was overridden to floating point)? 0 for NULL. */
int sfq_inspect_quantized(const sardfq_model *m);

/* Activation points of m's architecture, on or off: their count, and the
 * name of point i (0 <= i < count) into buf (n bytes; a name that does not
 * fit is SARDFQ_E_INVALID_ARG). The order is stable for a model but is not
 * part of the contract: classify points by name. */
int sfq_inspect_act_count(const sardfq_model *m);
sardfq_status sfq_inspect_act_name(const sardfq_model *m, int i, char *buf, size_t n);
/* The quantizer at the point called `name` into *out. */
sardfq_status sfq_inspect_act(const sardfq_model *m, const char *name, sfq_act_view *out);

/* Linear layers m has (head_dist only when distilled; the patch-merging
 * reductions only for Swin), quantized or not: count and names, as for the
 * activation points. */
int sfq_inspect_linear_count(const sardfq_model *m);
sardfq_status sfq_inspect_linear_name(const sardfq_model *m, int i, char *buf, size_t n);
/* The weight quantizer of the linear called `name` into *out. */
sardfq_status sfq_inspect_linear(const sardfq_model *m, const char *name, sfq_lin_view *out);

/* The values of m's tensor called `name` (a floating-point save's name):
 * *data receives a copy of its *count floats (allocated; the caller frees
 * it with sfq_free). For a quantized model a weight ("<linear>.weight",
 * saved as "<linear>.weight_codes") reads as the fake-quantized floats the
 * model computes with (a final model's integer linears hold them only as
 * codes: dequantized), and the reparameterised LayerNorms and biases read
 * as they now are. Activation quantizers are not tensors here
 * (sfq_inspect_act). */
sardfq_status sfq_inspect_tensor(const sardfq_model *m, const char *name, float **data, size_t *count);

#endif
