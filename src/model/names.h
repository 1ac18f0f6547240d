/* names.h - the model's tensor and layer names: one table per architecture
 * (names.c), read by loading and saving (formats/), the quantized file's
 * weight names, the layer names that sardfq_quantizer_set_layer patterns and
 * --keep match, the activation-point names and the test views (ptq/).
 *
 * A row of the table is one tensor of the model: what it is (SFQ_T_*, which
 * fixes its view and its shape in every architecture) and its name in each
 * naming flavour, a printf format with the tensor's stage and block index
 * formatted in. Renaming a tensor is editing its row; save and load cannot
 * disagree because both read it. */
#ifndef SFQ_NAMES_H
#define SFQ_NAMES_H

#include "core.h"

/* Naming flavours: the columns of a row. save writes timm names. An older
 * column left NULL in a row means "as the current one". */
enum {
    SFQ_NAMES_TIMM,     /* timm */
    SFQ_NAMES_TIMM_OLD, /* timm before 0.9 (Swin): the patch merging at the end
                           of stages 0..S-2, head.weight */
    SFQ_NAMES_TV,       /* torchvision; NULL: torchvision has no such tensor */
    SFQ_NAMES_TV_OLD,   /* torchvision's ViT before 0.13: mlp.linear_1/2 */
    SFQ_NAMES_COUNT
};

/* What a tensor is. Grouped by where it repeats, which is the order in
 * which sfq_tensors_walk visits the groups. */
enum {
    /* once, before the blocks (sardfq_model; Swin's patch norm: sfq_swin) */
    SFQ_T_PATCH_W, SFQ_T_PATCH_B, SFQ_T_CLS, SFQ_T_DIST, SFQ_T_POS, SFQ_T_PE_NORM_W, SFQ_T_PE_NORM_B,
    /* the patch merging into each Swin stage s >= 1 (sfq_swin_stage) */
    SFQ_T_DS_NORM_W, SFQ_T_DS_NORM_B, SFQ_T_DS_RED_W, SFQ_T_DS_RED_B,
    /* each block (sfq_block) */
    SFQ_T_LN1_W, SFQ_T_LN1_B, SFQ_T_QKV_W, SFQ_T_QKV_B, SFQ_T_PROJ_W, SFQ_T_PROJ_B, SFQ_T_LN2_W,
    SFQ_T_LN2_B, SFQ_T_FC1_W, SFQ_T_FC1_B, SFQ_T_FC2_W, SFQ_T_FC2_B, SFQ_T_REL_TABLE,
    /* once, after the blocks (sardfq_model) */
    SFQ_T_NORM_W, SFQ_T_NORM_B, SFQ_T_HEAD_W, SFQ_T_HEAD_B, SFQ_T_HEAD_DIST_W, SFQ_T_HEAD_DIST_B,
    SFQ_T_COUNT
};

/* Row flag: a file may lack the tensor, which is then zero (timm's
 * qkv_bias=False; Swin's reduction bias, which checkpoints lack and only
 * RepQ-ViT's reparameterisation gives a value). */
#define SFQ_NAME_OPTIONAL 1u

/* One tensor of a model, as sfq_tensors_walk visits it. */
typedef struct {
    int id;           /* SFQ_T_* */
    unsigned flags;   /* its row's SFQ_NAME_* */
    int stage, block; /* stage s and block b within it (ViT: 0 and l), as
                         sfq_tensor_name takes them */
    int lin;          /* spec index of the linear whose weight this is
                         (qspec.h), or -1 */
    float *data;      /* the view; writable for the owner of a private model.
                         NULL for a linear's weight that a final quantized
                         model holds only as integer codes (iplan.h:
                         sfq_qlin_weight_read gives its values) */
    int ndim;
    int64_t shape[4];
    const float **view; /* where the model keeps the view (for model.c,
                           which moves the parameters) */
} sfq_tensor;

/* Name of tensor `id` of architecture `arch` (SARDFQ_ARCH_*) in naming
 * `flavour`, for stage s and block b of that stage (ViT: s = 0, b = l;
 * merges: the stage s >= 1 they lead into), into buf (n bytes). Returns 0
 * (buf "") when the architecture or that naming has no such tensor. */
int sfq_tensor_name(int arch, int id, int flavour, int s, int b, char *buf, size_t n);

/* Visit every tensor m has, in the order save writes them: the rows before
 * the blocks, then per stage its patch merging (s >= 1) and its blocks, then
 * the rows after the blocks; rows whose view m lacks (a ViT's dist and
 * head_dist unless distilled) are skipped, except the weights of linears
 * held only as codes (data NULL). Stops at the first nonzero
 * return of fn and returns it; 0 when all were visited. */
int sfq_tensors_walk(const sardfq_model *m, int (*fn)(void *ctx, const sfq_tensor *t), void *ctx);

/* Names of the quantization spec's points and linears (qspec.h) into buf
 * (n bytes): points "blocks.3.attn.matmul1.a", "patch_embed.input", ...;
 * linears (layers) "patch_embed", "blocks.0.attn.qkv", "head",
 * "layers.1.downsample.reduction": the weight's timm name without
 * ".weight" unless the row says otherwise; sfq_qlin_tensor_name gives the
 * weight's timm name ("patch_embed.proj.weight", "head.fc.weight", ...).
 * "?" for an index the model cannot have. */
void sfq_qpoint_name(const sardfq_model_info *cfg, int index, char *buf, size_t n);
void sfq_qlin_name(const sardfq_model_info *cfg, int index, char *buf, size_t n);
void sfq_qlin_tensor_name(const sardfq_model_info *cfg, int index, char *buf, size_t n);

#endif
