/* plan_swin.c - the plan of a Swin Transformer (V1), timm's semantics (a
 * block's steps come from plan_block.c, windowed).
 *
 * Stage s has a gh x gw token grid (N tokens), width C, h heads, mlp hidden
 * M, windows of wh x ww (Nw tokens). The residual stream x is kept in
 * raster order; a block's attention branch works in window order (the
 * gather undoes nothing: the odd blocks' cyclic shift is part of it):
 *   patches = im2col(image); tok = patches Wp^T + bp; x = LN(tok)
 *   stage s > 0: xm = merge(x) [N/4][4 C']; hm = LN(xm); x = hm Wr^T + br
 *   block: xw = gather(x); h = LN1(xw); qkv = h Wqkv^T + bqkv
 *          ao = softmax(scale Q K^T + bias + mask) V per (window, head)
 *          x += scatter(ao Wproj^T + bproj)
 *          h = LN2(x); pre = h W1^T + b1; hid = GELU(pre); x += hid W2^T + b2
 *   hf = LN(x); feat = mean over tokens of hf; logits = feat Wh^T + bh
 * Points (qspec.h): RepQ-ViT's, the image, every linear input (the merging
 * reduction's too), q (times the scale, as timm and RepQ-ViT's window
 * attention quantize it), k, v and the probabilities; PSAQ-ViT's, every
 * LayerNorm and linear output (patch embedding, its LayerNorm, the merging
 * LayerNorm and reduction, qkv, proj before the scatter, fc2 before its
 * add), the scores (scale q k^T + bias + mask), the GELU output, the
 * residual sums (the attention branch's after the scatter-add), the head
 * input and the logits. A scheme switches on its subset. */
#include "plan.h"

#include "qspec.h"
#include "swin.h"

#include <math.h>

enum { X, XW, H, AO, QKV, PROBS, HID, PATCHES, POOL };

static int bp(int l, int which) { return sfq_qpoint_index(l, which); }

static sfq_window window_of(const sfq_swin_stage *st, int shifted)
{
    sfq_window w = {st->gh, st->gw, st->wh, st->ww, st->sh, st->sw, shifted};
    return w;
}

sardfq_status sfq_plan_build_swin(sardfq_model *m, sfq_plan *p)
{
    const sardfq_model_info *cfg = &m->info;
    const sfq_swin *sw = m->swin;
    const int C0 = cfg->embed_dim, G = cfg->grid_h * cfg->grid_w;
    const int cpp = cfg->in_chans * cfg->patch_size * cfg->patch_size;
    const int patches = sfq_plan_var(p, "patches", G, cpp, PATCHES);
    const int tok = sfq_plan_var(p, "tokens", G, C0, H);
    int x = sfq_plan_var(p, "x", G, C0, X);
    sfq_plan_patch_embed(p, m, patches, tok);
    sfq_step *s = sfq_plan_step(p, SFQ_OP_LAYERNORM, tok, x, -1);
    s->w = sw->pe_norm_w;
    s->b = sw->pe_norm_b;
    s->pt[SFQ_PT_OUT] = bp(-1, SFQ_AG_PATCH_NORM);
    int64_t read_off = 0;
    for (int si = 0; si < sw->n_stages; si++) {
        const sfq_swin_stage *st = &sw->st[si];
        const int C = st->dim, M = st->hidden, N = st->gh * st->gw, Nw = st->wh * st->ww;
        if (si) {
            const int xm = sfq_plan_var(p, "merge", N, 2 * C, XW);
            const int hm = sfq_plan_var(p, "merge_norm", N, 2 * C, H);
            const int xs = sfq_plan_var(p, "x", N, C, X);
            s = sfq_plan_step(p, SFQ_OP_MERGE_GATHER, x, xm, -1);
            s->win = window_of(&sw->st[si - 1], 0);
            s = sfq_plan_step(p, SFQ_OP_LAYERNORM, xm, hm, -1);
            s->w = st->ds_norm_w;
            s->b = st->ds_norm_b;
            s->pt[SFQ_PT_OUT] = bp(-1, sfq_qpoint_reduction(cfg, si));
            s = sfq_plan_step(p, SFQ_OP_LINEAR, hm, xs, -1);
            s->w = st->ds_red_w;
            s->b = st->ds_red_b;
            s->lin = sfq_qlin_reduction(cfg, si);
            s->pt[SFQ_PT_OUT] = bp(-1, sfq_qpoint_reduction_out(cfg, si));
            x = xs;
        }
        const int xw = sfq_plan_var(p, "x_windows", N, C, XW);
        const int h = sfq_plan_var(p, "h", N, C, H);
        const int qkv = sfq_plan_var(p, "qkv", N, 3 * C, QKV);
        const int probs = sfq_plan_var(p, "probs", st->heads * N, Nw, PROBS);
        const int ao = sfq_plan_var(p, "attn_out", N, C, AO);
        const int hp = sfq_plan_var(p, "proj_out", N, C, H);
        const int pre = sfq_plan_var(p, "fc1_out", N, M, HID);
        const int hid = sfq_plan_var(p, "gelu_out", N, M, HID);
        const sfq_block_vars v = {.x = x, .xw = xw, .h = h, .qkv = qkv, .probs = probs, .ao = ao, .hp = hp,
                                  .pre = pre, .hid = hid};
        for (int l = st->first; l < st->first + st->depth; l++) {
            const int shifted = ((l - st->first) & 1) && (st->sh || st->sw);
            const sfq_step attn = {.win = window_of(st, shifted), .heads = st->heads, .dim = C, .tokens = Nw,
                                   .alpha = 1.0f / sqrtf((float)(C / st->heads)), .prescale_q = 1,
                                   .bias_table = m->blocks[l].rel_table, .relidx = sw->relidx[si],
                                   .readback = SFQ_READ_MEAN_QUERY, .read_off = read_off};
            read_off += (int64_t)st->heads * N;
            sfq_plan_block(p, &m->blocks[l], l, &v, &attn);
        }
    }
    const sfq_swin_stage *last = &sw->st[sw->n_stages - 1];
    const int Nl = last->gh * last->gw, Cf = last->dim;
    p->block_first[cfg->depth] = p->nsteps;
    p->block_resid[cfg->depth] = x;
    const int hf = sfq_plan_var(p, "norm", Nl, Cf, H);
    const int feat = sfq_plan_var(p, "features", 1, Cf, POOL);
    s = sfq_plan_step(p, SFQ_OP_LAYERNORM, x, hf, -1);
    s->w = m->norm_w;
    s->b = m->norm_b;
    sfq_plan_step(p, SFQ_OP_MEAN_TOKENS, hf, feat, -1);
    p->features = feat;
    s = sfq_plan_step(p, SFQ_OP_HEAD, feat, -1, -1);
    s->w = m->head_w;
    s->b = m->head_b;
    s->lin = sfq_qlin_head(cfg);
    s->pt[SFQ_PT_IN0] = bp(-1, SFQ_AG_HEAD_IN);
    s->pt[SFQ_PT_OUT] = bp(-1, SFQ_AG_LOGITS);
    return SARDFQ_OK;
}
