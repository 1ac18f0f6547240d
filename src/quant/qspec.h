/* qspec.h - where a quantized ViT or Swin quantizes, and with what.
 *
 * A quantized model is an ordinary sardfq_model whose weights already hold
 * their fake-quantized values ((q - z) * D, exactly what an integer kernel
 * sees after dequantization) and whose `q` member lists the activation
 * quantizers the forward applies on the way (the fake-quantized executor;
 * the integer executor reads the same spec through the model's integer form,
 * model/iplan.h). Both schemes share one list of activation points; each
 * scheme switches on its own subset:
 *
 *   RepQ-ViT (`repq`): the input of every linear (image at 8 bits, qkv,
 *   proj, fc1, fc2, head), both operands of q k^T and of probs v (probs with
 *   the log-sqrt2 quantizer). Calibrated lazily, sequentially, in one
 *   forward over the calibration batch; the post-LayerNorm inputs of qkv and
 *   fc1 are calibrated per channel and folded into LayerNorm + the linear
 *   (the folded per-tensor zero point rounded to an integer since 0.5).
 *   PSAQ-ViT (`minmax`): the image, the patch-embedding output, the token
 *   sequence, the position embedding and their sum, and per block the LN1
 *   output, qkv output, pre-softmax scores, attention output, proj output,
 *   the residual sum, the LN2 output, the GELU output, fc2 output, residual
 *   sum; then the class-token features and the logits. Min/max of one FP
 *   forward.
 *   Swin under `minmax` (the same rule: every LayerNorm and linear output,
 *   the scores, the GELU output, the residual sums, the logits): the image,
 *   patch_embed.output, then instead of embed / pos / embed_pos (no prefix
 *   tokens, no position embedding: those stay off) the patch-embedding
 *   LayerNorm output patch_embed.norm.output, which is what enters the
 *   first block as embed_pos does on a ViT; per stage s >= 1 the merging
 *   LayerNorm output (layers.s.downsample.reduction.input) and the
 *   reduction's output (.reduction.output, the stage's entering sequence);
 *   per block the ViT's ten, with the scores being scale q k^T + relative
 *   bias + mask (q scaled first, as timm does), proj.output before the
 *   scatter back to raster order and residual1 after the scatter-add;
 *   head.input is the mean-pooled final-LN features. Softmax output, q, k,
 *   v and the mask / bias stay floating point, as on the ViT.
 *
 * Points have fixed names (sfq_qpoint_name, names.h), which are also the
 * tensor name prefixes in a saved quantized model and the names tests/reference uses. */
#ifndef SFQ_QSPEC_H
#define SFQ_QSPEC_H

#include "quant.h"

/* Activation points inside block l ("blocks.<l>." + name). */
enum {
    SFQ_AP_QKV_IN,   /* attn.qkv.input      = LN1 output          */
    SFQ_AP_QKV_OUT,  /* attn.qkv.output                           */
    SFQ_AP_Q,        /* attn.matmul1.a      = q                   */
    SFQ_AP_K,        /* attn.matmul1.b      = k                   */
    SFQ_AP_SCORES,   /* attn.scores         = scale q k^T         */
    SFQ_AP_PROBS,    /* attn.matmul2.a      = softmax             */
    SFQ_AP_V,        /* attn.matmul2.b      = v                   */
    SFQ_AP_PROJ_IN,  /* attn.proj.input     = probs v             */
    SFQ_AP_PROJ_OUT, /* attn.proj.output                          */
    SFQ_AP_RES1,     /* residual1           = x + attention       */
    SFQ_AP_FC1_IN,   /* mlp.fc1.input       = LN2 output          */
    SFQ_AP_FC2_IN,   /* mlp.fc2.input       = GELU output         */
    SFQ_AP_FC2_OUT,  /* mlp.fc2.output                            */
    SFQ_AP_RES2,     /* residual2           = x + MLP             */
    SFQ_AP_COUNT
};

/* Activation points outside the blocks. */
enum {
    SFQ_AG_INPUT,     /* patch_embed.input  = the image            */
    SFQ_AG_PATCH_OUT, /* patch_embed.output = patch tokens         */
    SFQ_AG_EMBED,     /* embed              = [prefix; tokens]     */
    SFQ_AG_POS,       /* pos                = position embedding   */
    SFQ_AG_EMBED_POS, /* embed_pos          = embed + pos          */
    SFQ_AG_HEAD_IN,   /* head.input         = final-LN class token */
    SFQ_AG_HDIST_IN,  /* head_dist.input    = final-LN dist token  */
    SFQ_AG_LOGITS,    /* logits                                    */
    SFQ_AG_PATCH_NORM, /* patch_embed.norm.output (Swin)           */
    SFQ_AG_COUNT
};

/* Linear layers (weights): patch_embed, then per block qkv, proj, fc1, fc2,
 * then head and head_dist. */
enum { SFQ_LW_QKV, SFQ_LW_PROJ, SFQ_LW_FC1, SFQ_LW_FC2, SFQ_LW_PER_BLOCK };

enum { SFQ_QK_OFF = 0, SFQ_QK_UNIFORM = 1, SFQ_QK_LOG = 2 };

typedef struct {
    int kind; /* SFQ_QK_* */
    int bits; /* 2..8 when on */
    sfq_uq u; /* SFQ_QK_UNIFORM */
    sfq_lq lq; /* SFQ_QK_LOG */
} sfq_qact;

typedef struct {
    int bits;     /* 0 = FP */
    sfq_uq *rows; /* [out] per output channel, NULL when FP */
} sfq_qweight;

typedef struct sfq_qspec {
    int scheme; /* SARDFQ_SCHEME_* */
    int wbits, abits;
    int depth;
    int npoints, nlin;  /* sfq_qspec_n_points / n_linears of the model */
    sfq_qact *acts;     /* npoints: SFQ_AG_COUNT globals, depth * SFQ_AP_COUNT,
                           the reduction inputs, the reduction outputs */
    sfq_qweight *lin;   /* nlin */
} sfq_qspec;

/* Index of a point: l < 0 -> global point `which`, else block l's. */
static inline int sfq_qpoint_index(int l, int which)
{
    return l < 0 ? which : SFQ_AG_COUNT + l * SFQ_AP_COUNT + which;
}
/* Stages after the first (Swin: each begins with a patch merging). */
static inline int sfq_qspec_merges(const sardfq_model_info *c) { return c->num_stages > 1 ? c->num_stages - 1 : 0; }
/* Points: the globals, every block's, then the input of each stage s >= 1's
 * patch-merging reduction, then each reduction's output (global points:
 * pass the index as `which` with l = -1). */
static inline int sfq_qspec_n_points(const sardfq_model_info *c)
{
    return SFQ_AG_COUNT + c->depth * SFQ_AP_COUNT + 2 * sfq_qspec_merges(c);
}
static inline int sfq_qpoint_reduction(const sardfq_model_info *c, int s)
{
    return SFQ_AG_COUNT + c->depth * SFQ_AP_COUNT + s - 1;
}
static inline int sfq_qpoint_reduction_out(const sardfq_model_info *c, int s)
{
    return SFQ_AG_COUNT + c->depth * SFQ_AP_COUNT + sfq_qspec_merges(c) + s - 1;
}
/* Linear index: patch_embed 0, block l's k at 1 + 4 l + k, head, head_dist,
 * then stage s >= 1's reduction. */
static inline int sfq_qlin_index(int l, int k) { return 1 + l * SFQ_LW_PER_BLOCK + k; }
static inline int sfq_qlin_head(const sardfq_model_info *c) { return 1 + c->depth * SFQ_LW_PER_BLOCK; }
static inline int sfq_qlin_reduction(const sardfq_model_info *c, int s) { return 3 + c->depth * SFQ_LW_PER_BLOCK + s - 1; }
static inline int sfq_qspec_n_linears(const sardfq_model_info *c)
{
    return 3 + c->depth * SFQ_LW_PER_BLOCK + sfq_qspec_merges(c);
}

/* Stage of block l (0 for a ViT) and, in *in_stage, its index within the
 * stage. The points' and linears' names are the model's: sfq_qpoint_name
 * and sfq_qlin_name (model/names.h). */
int sfq_qspec_block_stage(const sardfq_model_info *cfg, int l, int *in_stage);

/* Output rows / input columns of linear `index` (the patch embedding is
 * [D][C p p]); its weight inside a model's parameters is sfq_qlin_weight
 * (vit.h). */
int sfq_qlin_rows(const sardfq_model_info *cfg, int index);
int sfq_qlin_cols(const sardfq_model_info *cfg, int index);
/* Does the model have this linear (head_dist only when distilled)? */
int sfq_qlin_exists(const sardfq_model_info *cfg, int index);

/* Allocate (everything off) / free (NULL-safe) / deep-copy without the
 * calibration context. SARDFQ_E_NOMEM on failure. */
sardfq_status sfq_qspec_new(const sardfq_model_info *cfg, sfq_qspec **out);
void sfq_qspec_free(sfq_qspec *q);
sardfq_status sfq_qspec_copy(const sfq_qspec *src, const sardfq_model_info *cfg, sfq_qspec **out);
/* Give linear `index` per-row quantizers at `bits` (allocating rows). */
sardfq_status sfq_qspec_set_weight(sfq_qspec *q, const sardfq_model_info *cfg, int index, int bits);

/* A weight's codes as files store them (formats/qio.c writes and reads
 * them; the integer form packs them, model/iplan.c): rows of
 * sfq_qcodes_row_bytes bytes, one code per byte, or two per byte at <= 4
 * bits (column 2i in the low nibble). */
size_t sfq_qcodes_row_bytes(int bits, int cols);
/* Column c's code in one row of that layout, and writing it (at <= 4 bits
 * into a row zeroed first). */
static inline int sfq_qcode_get(const uint8_t *row, int c, int bits)
{
    return bits <= 4 ? (row[c / 2] >> (4 * (c & 1))) & 15 : row[c];
}
static inline void sfq_qcode_set(uint8_t *row, int c, int bits, int code)
{
    if (bits <= 4)
        row[c / 2] |= (uint8_t)((code & 15) << (4 * (c & 1)));
    else
        row[c] = (uint8_t)code;
}
/* One row's codes (cols of them, starting at in) into one byte each, and
 * back (sfq_qcodes_put_row writes the row's sfq_qcodes_row_bytes). */
void sfq_qcodes_row(const uint8_t *in, int cols, int bits, uint8_t *codes);
void sfq_qcodes_put_row(const uint8_t *codes, int cols, int bits, uint8_t *out);
/* The codes of the fake-quantized weight w [nrows][cols] under rows[]
 * (every value must be on its row's grid: SARDFQ_E_INTERNAL otherwise),
 * and back ((code - zero) * scale, bitwise the fake-quantized value). */
sardfq_status sfq_qcodes_pack(const sfq_uq *rows, const float *w, int nrows, int cols, int bits,
                              uint8_t *out);
void sfq_qcodes_unpack(const sfq_uq *rows, const uint8_t *in, int nrows, int cols, int bits, float *w);

/* Fake-quantize x (rows x ncols, row stride ld floats) in place with the
 * point quantizer a, or with one uniform quantizer per column (cols, when
 * not NULL); nt = threads. */
void sfq_qact_apply(const sfq_qact *a, const sfq_uq *cols, float *x, int64_t rows, int ncols, int64_t ld,
                    int nt);

/* Point a made ready to apply row by row on the calling thread (its
 * log-sqrt2 table built once): the same bits as sfq_qact_apply without
 * per-column quantizers. a must be on (SFQ_QK_UNIFORM or SFQ_QK_LOG). */
typedef struct sfq_qact_ready {
    const sfq_qact *a;
    int simd;
    float tab[SFQ_LQ_TABLE];
} sfq_qact_ready;
void sfq_qact_prepare(const sfq_qact *a, sfq_qact_ready *rd);
void sfq_qact_apply_rows(const sfq_qact_ready *rd, float *x, int64_t rows, int ncols, int64_t ld);

#endif
