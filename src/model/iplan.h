/* iplan.h - a quantized model's integer form: which steps of its plan run
 * on integer kernels, with the weight codes those kernels read.
 *
 * Made once when a quantized model becomes final (loaded, or made by the
 * quantizer), from the plan and the quantization spec alone. A linear (the
 * patch embedding, qkv, proj, fc1, fc2, the Swin reductions, the heads)
 * runs as an integer product when its weights have per-row quantizers with
 * integer zero points whose codes reproduce the stored weights exactly,
 * and its input is the output of an active uniform quantizer with an
 * integer zero point (then the product of codes with the exact zero-point
 * correction is what the fake-quantized float product approximates). An
 * attention's q k^T runs on integer codes when q and k are quantized that
 * way (RepQ-ViT); the log-sqrt2 probabilities times v stay float. Anything
 * else runs as the fake-quantized float op, and the report says why.
 *
 * When a linear is the only reader of its input, the producer's quantizer
 * is not applied in float: the linear encodes its input (the same codes). */
#ifndef SFQ_IPLAN_H
#define SFQ_IPLAN_H

#include "igemm.h"
#include "vit.h"

enum { SFQ_IMODE_FLOAT = 0, SFQ_IMODE_INT = 1 };

typedef struct {
    int mode;       /* SFQ_IMODE_* */
    int in_pt[2];   /* points quantizing the input (HEAD: rows 0 and 1) */
    int skip_out;   /* this step's output point is applied by its reader */
    sfq_ipack w[2]; /* weights (HEAD distilled: head, head_dist) */
    float *wscale[2]; /* per-row weight scales [np] */
    char why[96];   /* SFQ_IMODE_FLOAT on a quantized op: the reason */
} sfq_istep;

typedef struct sfq_iplan {
    sfq_istep *steps; /* per plan step */
    int nsteps;
    int n_int, n_float; /* quantized ops by mode */
    int isa;            /* SFQ_ISA_* of the kernels (resolved when made) */
    size_t weight_bytes; /* packed codes + per-row scales, zeros, sums */
    size_t float_params; /* parameters outside the integer linears */
    size_t int_weights;  /* weights inside them */
    char *report;        /* one line per quantized op: "name mode detail" */
} sfq_iplan;

/* Make m->ip for a quantized model (nothing for a floating-point one), from
 * its float weights or, while it loads, the file's codes (m->load_codes):
 * once, before sfq_model_finalize (vit.h) drops the copies that the codes
 * give back. SARDFQ_E_NOMEM. */
sardfq_status sfq_model_prepare_int(sardfq_model *m);
void sfq_iplan_free(sfq_iplan *ip);

/* The packed codes of linear `lin` (qspec.h index) when m's integer form
 * runs it on integer kernels, else NULL. */
const sfq_ipack *sfq_iplan_pack(const sardfq_model *m, int lin);

/* Those codes dequantized into out (sfq_qlin_rows x sfq_qlin_cols floats,
 * sfq_uq_value of each code with its row's quantizer): 0, or -1 (nothing
 * written) when lin has no such codes. */
int sfq_iplan_dequant(const sardfq_model *m, int lin, float *out);

#endif
