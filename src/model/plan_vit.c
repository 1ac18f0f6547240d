/* plan_vit.c - the plan of a ViT / DeiT / distilled DeiT (pre-norm blocks;
 * a block's steps come from plan_block.c, with one window of all tokens).
 *
 * B images, N tokens (P prefix + G patches), D dim, H heads of hd, M mlp
 * hidden, K classes:
 *   patches = im2col(image); tok = patches Wp^T + bp
 *   x = [class; dist; tok] + pos
 *   block: h = LN1(x); qkv = h Wqkv^T + bqkv
 *          ao = softmax(hd^-1/2 Q K^T) V per (image, head)
 *          x += ao Wproj^T + bproj
 *          h = LN2(x); pre = h W1^T + b1; hid = GELU(pre); x += hid W2^T + b2
 *   xf = the P prefix rows of x; hf = LN(xf)
 *   logits = head(hf class row), or (head(class) + head_dist(dist)) / 2
 * Points (qspec.h): every linear input and output, q, k, v, the scores and
 * the probabilities, the token sequence and its sum with pos, the residual
 * sums, the head inputs and the logits. */
#include "plan.h"

#include "qspec.h"
#include "vit.h"

#include <math.h>

enum { X, H, AO, HID, QKV, PROBS, PATCHES, XF, HF };

static int bp(int l, int which) { return sfq_qpoint_index(l, which); }

sardfq_status sfq_plan_build_vit(sardfq_model *m, sfq_plan *p)
{
    const sardfq_model_info *cfg = &m->info;
    const int D = cfg->embed_dim, N = cfg->num_tokens, M = cfg->mlp_hidden, H_ = cfg->num_heads;
    const int P = cfg->num_prefix_tokens, G = cfg->grid_h * cfg->grid_w;
    const int cpp = cfg->in_chans * cfg->patch_size * cfg->patch_size;
    const int patches = sfq_plan_var(p, "patches", G, cpp, PATCHES);
    const int tok = sfq_plan_var(p, "tokens", G, D, H);
    const int x = sfq_plan_var(p, "x", N, D, X);
    const int h = sfq_plan_var(p, "h", N, D, H);
    const int qkv = sfq_plan_var(p, "qkv", N, 3 * D, QKV);
    const int probs = sfq_plan_var(p, "probs", H_ * N, N, PROBS);
    const int ao = sfq_plan_var(p, "attn_out", N, D, AO);
    const int pre = sfq_plan_var(p, "fc1_out", N, M, HID);
    const int hid = sfq_plan_var(p, "gelu_out", N, M, HID);
    const int xf = sfq_plan_var(p, "prefix", P, D, XF);
    const int hf = sfq_plan_var(p, "prefix_norm", P, D, HF);
    sfq_plan_patch_embed(p, m, patches, tok);
    sfq_step *s = sfq_plan_step(p, SFQ_OP_PREFIX_POS, tok, x, -1);
    s->cls = m->cls;
    s->dist = m->dist;
    s->pos = m->pos;
    s->pt[SFQ_PT_MID] = bp(-1, SFQ_AG_EMBED);
    s->pt[SFQ_PT_OUT] = bp(-1, SFQ_AG_EMBED_POS);
    sfq_step attn = {.heads = H_, .dim = D, .tokens = N, .alpha = 1.0f / sqrtf((float)cfg->head_dim),
                     .readback = SFQ_READ_CLS_ROW};
    const sfq_block_vars v = {.x = x, .xw = -1, .h = h, .qkv = qkv, .probs = probs, .ao = ao, .hp = -1,
                              .pre = pre, .hid = hid};
    for (int l = 0; l < cfg->depth; l++) {
        attn.read_off = (int64_t)l * H_ * N;
        sfq_plan_block(p, &m->blocks[l], l, &v, &attn);
    }
    p->block_first[cfg->depth] = p->nsteps;
    p->block_resid[cfg->depth] = x;
    sfq_plan_step(p, SFQ_OP_SELECT_PREFIX, x, xf, -1);
    s = sfq_plan_step(p, SFQ_OP_LAYERNORM, xf, hf, -1);
    s->w = m->norm_w;
    s->b = m->norm_b;
    p->features = hf;
    s = sfq_plan_step(p, SFQ_OP_HEAD, hf, -1, -1);
    s->w = m->head_w;
    s->b = m->head_b;
    s->lin = sfq_qlin_head(cfg);
    s->w2 = m->head_dist_w;
    s->b2 = m->head_dist_b;
    s->pt[SFQ_PT_IN0] = bp(-1, SFQ_AG_HEAD_IN);
    s->pt[SFQ_PT_IN0 + 1] = P == 2 ? bp(-1, SFQ_AG_HDIST_IN) : -1;
    s->pt[SFQ_PT_OUT] = bp(-1, SFQ_AG_LOGITS);
    return SARDFQ_OK;
}
