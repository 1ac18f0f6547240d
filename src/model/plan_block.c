/* plan_block.c - what the ViT and Swin plan builders (plan_vit.c,
 * plan_swin.c) share: the patch embedding (patches = im2col(image),
 * tok = patches Wp^T + bp; points on the image and the tokens), and the
 * steps of one pre-norm transformer block:
 *   [xw = gather(x)]                 Swin: window order, cyclic shift
 *   h = LN1(x or xw); qkv = h Wqkv^T + bqkv
 *   ao = attention(qkv)              the caller's geometry
 *   x += ao Wproj^T + bproj          Swin: hp = ao Wproj^T + bproj,
 *                                          x += scatter(hp)
 *   h = LN2(x); pre = h W1^T + b1; hid = GELU(pre); x += hid W2^T + b2
 * with the same quantization points for both (qspec.h): every linear input
 * and output, q, k, v, the scores, the probabilities, the residual sums. */
#include "plan.h"

#include "qspec.h"
#include "vit.h"

static sfq_step *linear(sfq_plan *p, int in, int out, int l, int k, const float *w, const float *b)
{
    sfq_step *s = sfq_plan_step(p, SFQ_OP_LINEAR, in, out, l);
    s->w = w;
    s->b = b;
    s->lin = sfq_qlin_index(l, k);
    return s;
}

static sfq_step *layernorm(sfq_plan *p, int in, int out, int l, const float *w, const float *b, int point)
{
    sfq_step *s = sfq_plan_step(p, SFQ_OP_LAYERNORM, in, out, l);
    s->w = w;
    s->b = b;
    s->pt[SFQ_PT_OUT] = sfq_qpoint_index(l, point);
    return s;
}

void sfq_plan_patch_embed(sfq_plan *p, const sardfq_model *m, int patches, int tok)
{
    sfq_plan_step(p, SFQ_OP_PATCHIFY, -1, patches, -1)->pt[SFQ_PT_OUT] = sfq_qpoint_index(-1, SFQ_AG_INPUT);
    sfq_step *s = sfq_plan_step(p, SFQ_OP_LINEAR, patches, tok, -1);
    s->w = m->patch_w;
    s->b = m->patch_b;
    s->lin = 0;
    s->pt[SFQ_PT_OUT] = sfq_qpoint_index(-1, SFQ_AG_PATCH_OUT);
}

void sfq_plan_block(sfq_plan *p, const sfq_block *blk, int l, const sfq_block_vars *v, const sfq_step *attn)
{
    const int windowed = v->xw >= 0;
    p->block_first[l] = p->nsteps;
    p->block_resid[l] = v->x;
    if (windowed)
        sfq_plan_step(p, SFQ_OP_WINDOW_GATHER, v->x, v->xw, l)->win = attn->win;
    layernorm(p, windowed ? v->xw : v->x, v->h, l, blk->ln1_w, blk->ln1_b, SFQ_AP_QKV_IN);
    sfq_step *s = linear(p, v->h, v->qkv, l, SFQ_LW_QKV, blk->qkv_w, blk->qkv_b);
    s->keep_out = 1;
    s->pt[SFQ_PT_OUT] = sfq_qpoint_index(l, SFQ_AP_QKV_OUT);
    s = sfq_plan_step(p, SFQ_OP_ATTENTION, v->qkv, v->ao, l);
    const sfq_step shape = *s;
    *s = *attn; /* the geometry */
    s->op = shape.op;
    s->in = shape.in;
    s->out = shape.out;
    s->in2 = v->probs;
    s->block = l;
    s->lin = -1;
    static const int apt[][2] = {{SFQ_PT_Q, SFQ_AP_Q}, {SFQ_PT_K, SFQ_AP_K}, {SFQ_PT_V, SFQ_AP_V},
                                 {SFQ_PT_SCORES, SFQ_AP_SCORES}, {SFQ_PT_PROBS, SFQ_AP_PROBS},
                                 {SFQ_PT_OUT, SFQ_AP_PROJ_IN}};
    for (int j = 0; j < 6; j++)
        s->pt[apt[j][0]] = sfq_qpoint_index(l, apt[j][1]);
    if (windowed) {
        /* the projection in window order, then back onto the stream */
        s = linear(p, v->ao, v->hp, l, SFQ_LW_PROJ, blk->proj_w, blk->proj_b);
        s->pt[SFQ_PT_OUT] = sfq_qpoint_index(l, SFQ_AP_PROJ_OUT);
        s = sfq_plan_step(p, SFQ_OP_WINDOW_SCATTER_ADD, v->hp, v->x, l);
        s->win = attn->win;
    } else {
        s = linear(p, v->ao, v->x, l, SFQ_LW_PROJ, blk->proj_w, blk->proj_b);
        s->in2 = v->h; /* the product before the add, when it is a point */
        s->pt[SFQ_PT_PRE_ADD] = sfq_qpoint_index(l, SFQ_AP_PROJ_OUT);
    }
    s->accumulate = 1;
    s->pt[SFQ_PT_OUT] = sfq_qpoint_index(l, SFQ_AP_RES1);
    layernorm(p, v->x, v->h, l, blk->ln2_w, blk->ln2_b, SFQ_AP_FC1_IN);
    linear(p, v->h, v->pre, l, SFQ_LW_FC1, blk->fc1_w, blk->fc1_b)->keep_out = 1;
    sfq_plan_step(p, SFQ_OP_GELU, v->pre, v->hid, l)->pt[SFQ_PT_OUT] = sfq_qpoint_index(l, SFQ_AP_FC2_IN);
    s = linear(p, v->hid, v->x, l, SFQ_LW_FC2, blk->fc2_w, blk->fc2_b);
    s->accumulate = 1;
    s->in2 = v->h;
    s->pt[SFQ_PT_PRE_ADD] = sfq_qpoint_index(l, SFQ_AP_FC2_OUT);
    s->pt[SFQ_PT_OUT] = sfq_qpoint_index(l, SFQ_AP_RES2);
}
