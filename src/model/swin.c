/* swin.c - Swin Transformer (V1) configuration and geometry, timm's
 * semantics (swin_*_patch4_window7_224): stage grids, windows and shifts,
 * the parameter layout and its views, the relative-position index, and
 * the APA target of the mean-attention read-back. The network itself is
 * its plan (plan_swin.c).
 *
 * Stage s has a gh x gw token grid (N tokens), width C, h heads of
 * hd = C / h, mlp hidden M, windows of wh x ww (Nw tokens, nW windows);
 * token i of window w sits at image position sfq_swin_token_pos (which
 * undoes the cyclic shift of the odd blocks). */
#include "swin.h"

#include "plan.h"

#include <math.h>
#include <string.h>

/* ---- geometry ------------------------------------------------------------ */

int sfq_swin_block_stage(const sardfq_model *m, int l)
{
    const sfq_swin *w = m->swin;
    int s = 0;
    while (s + 1 < w->n_stages && l >= w->st[s + 1].first)
        s++;
    return s;
}

static sfq_window stage_window(const sfq_swin_stage *st, int shifted)
{
    sfq_window g = {st->gh, st->gw, st->wh, st->ww, st->sh, st->sw, shifted};
    return g;
}

int sfq_swin_token_pos(const sfq_swin_stage *st, int shifted, int w, int i)
{
    const sfq_window g = stage_window(st, shifted);
    return sfq_window_pos(&g, w, i);
}

static int block_shifted(const sfq_swin_stage *st, int l)
{
    return ((l - st->first) & 1) && (st->sh || st->sw);
}

sardfq_status sfq_swin_configure(sardfq_model_info *cfg)
{
    const int S = cfg->num_stages, p = cfg->patch_size, win = cfg->window_size;
    if (S < 1 || S > SARDFQ_MAX_STAGES)
        return sfq_fail(SARDFQ_E_SHAPE, "Swin: %d stages (1..%d supported)", S, SARDFQ_MAX_STAGES);
    if (win < 1 || win > 64)
        return sfq_fail(SARDFQ_E_SHAPE, "Swin: window size %d (1..64 supported)", win);
    if (p < 1 || cfg->img_h % p || cfg->img_w % p)
        return sfq_fail(SARDFQ_E_SHAPE, "image %dx%d is not a multiple of the patch size %d", cfg->img_h,
                        cfg->img_w, p);
    cfg->grid_h = cfg->img_h / p;
    cfg->grid_w = cfg->img_w / p;
    int gh = cfg->grid_h, gw = cfg->grid_w, depth = 0;
    int64_t attn = 0;
    for (int s = 0; s < S; s++) {
        const int C = cfg->stage_dim[s], h = cfg->stage_heads[s];
        if (cfg->stage_depth[s] < 1 || C < 1 || h < 1 || C % h)
            return sfq_fail(SARDFQ_E_SHAPE, "Swin stage %d: depth %d, width %d, %d heads (heads must divide the width)",
                            s, cfg->stage_depth[s], C, h);
        if (s > 0) {
            if (C != 2 * cfg->stage_dim[s - 1])
                return sfq_fail(SARDFQ_E_SHAPE, "Swin stage %d has width %d, expected twice %d", s, C,
                                cfg->stage_dim[s - 1]);
            if (gh % 2 || gw % 2)
                return sfq_fail(SARDFQ_E_SHAPE,
                                "image %dx%d: the %dx%d grid of stage %d cannot be merged into stage %d "
                                "(odd side)",
                                cfg->img_h, cfg->img_w, gh, gw, s - 1, s);
            gh /= 2;
            gw /= 2;
        }
        const int wh = win < gh ? win : gh, ww = win < gw ? win : gw;
        if (gh % wh || gw % ww)
            return sfq_fail(SARDFQ_E_SHAPE,
                            "image %dx%d: stage %d has a %dx%d grid, not a whole number of %dx%d windows",
                            cfg->img_h, cfg->img_w, s, gh, gw, wh, ww);
        depth += cfg->stage_depth[s];
        attn += (int64_t)cfg->stage_depth[s] * h * gh * gw;
    }
    for (int s = S; s < SARDFQ_MAX_STAGES; s++)
        cfg->stage_depth[s] = cfg->stage_heads[s] = cfg->stage_dim[s] = 0;
    cfg->depth = depth;
    cfg->embed_dim = cfg->stage_dim[0];
    cfg->num_heads = cfg->stage_heads[0];
    cfg->head_dim = cfg->embed_dim / cfg->num_heads;
    cfg->num_prefix_tokens = 0;
    cfg->num_tokens = cfg->grid_h * cfg->grid_w;
    cfg->num_features = cfg->stage_dim[S - 1];
    cfg->attention_floats = attn;
    return SARDFQ_OK;
}

/* Fill st[] (geometry) from the configured info. */
static void geometry(const sardfq_model_info *cfg, sfq_swin *w)
{
    w->n_stages = cfg->num_stages;
    int gh = cfg->grid_h, gw = cfg->grid_w, first = 0;
    const int win = cfg->window_size, ratio_num = cfg->mlp_hidden, ratio_den = cfg->embed_dim;
    for (int s = 0; s < w->n_stages; s++) {
        sfq_swin_stage *st = &w->st[s];
        if (s) {
            gh /= 2;
            gw /= 2;
        }
        st->dim = cfg->stage_dim[s];
        st->heads = cfg->stage_heads[s];
        st->hidden = (int)((int64_t)st->dim * ratio_num / ratio_den);
        st->gh = gh;
        st->gw = gw;
        st->wh = win < gh ? win : gh;
        st->ww = win < gw ? win : gw;
        st->sh = gh <= win ? 0 : win / 2;
        st->sw = gw <= win ? 0 : win / 2;
        st->depth = cfg->stage_depth[s];
        st->first = first;
        first += st->depth;
    }
}

void sfq_swin_free(sfq_swin *w)
{
    if (!w)
        return;
    for (int s = 0; s < SARDFQ_MAX_STAGES; s++)
        sfq_free(w->relidx[s]);
    sfq_free(w);
}

sardfq_status sfq_swin_alloc_params(sardfq_model *m)
{
    sardfq_model_info *cfg = &m->info;
    sfq_swin *w = sfq_alloc_zero(sizeof *w);
    if (!w)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    m->swin = w;
    geometry(cfg, w);
    const size_t cpp = (size_t)cfg->in_chans * cfg->patch_size * cfg->patch_size,
                 K = (size_t)cfg->num_classes, win = (size_t)cfg->window_size;
    const size_t table_rows = (2 * win - 1) * (2 * win - 1);
    size_t total = (size_t)cfg->embed_dim * (cpp + 3);
    for (int s = 0; s < w->n_stages; s++) {
        const size_t C = (size_t)w->st[s].dim, M = (size_t)w->st[s].hidden, h = (size_t)w->st[s].heads;
        if (s)
            total += 2 * 2 * C + C * 2 * C + C; /* merge norm [4C'] = [2C], reduction [C][2C] + [C] */
        total += (size_t)w->st[s].depth * (sfq_block_floats(C, M) + table_rows * h);
    }
    const size_t Cf = (size_t)cfg->num_features;
    total += 2 * Cf + K * Cf + K;
    m->blocks = sfq_alloc_zero(sizeof(sfq_block) * (size_t)cfg->depth);
    m->params = sfq_alloc_array(total, sizeof(float));
    if (!m->blocks || !m->params)
        return sfq_fail(SARDFQ_E_NOMEM, "cannot allocate %zu parameters", total);
    for (int s = 0; s < w->n_stages; s++) {
        const sfq_swin_stage *st = &w->st[s];
        const int Nw = st->wh * st->ww;
        w->relidx[s] = sfq_alloc_array((size_t)Nw * Nw, sizeof(int));
        if (!w->relidx[s])
            return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
        /* the tables are laid out for the model's window: stride 2w - 1 and
         * offset w - 1 also when the grid clips the window */
        for (int i = 0; i < Nw; i++)
            for (int j = 0; j < Nw; j++) {
                const int dy = i / st->ww - j / st->ww, dx = i % st->ww - j % st->ww;
                w->relidx[s][i * Nw + j] = (dy + (int)win - 1) * (2 * (int)win - 1) + dx + (int)win - 1;
            }
    }
    m->n_params = total;
    float *p = m->params;
#define TAKE(n) (p += (n), p - (n))
    const size_t C0 = (size_t)cfg->embed_dim;
    m->patch_w = TAKE(C0 * cpp);
    m->patch_b = TAKE(C0);
    w->pe_norm_w = TAKE(C0);
    w->pe_norm_b = TAKE(C0);
    for (int s = 0; s < w->n_stages; s++) {
        sfq_swin_stage *st = &w->st[s];
        const size_t C = (size_t)st->dim, M = (size_t)st->hidden, h = (size_t)st->heads;
        if (s) {
            st->ds_norm_w = TAKE(2 * C);
            st->ds_norm_b = TAKE(2 * C);
            st->ds_red_w = TAKE(C * 2 * C);
            st->ds_red_b = TAKE(C);
            memset((float *)st->ds_red_b, 0, sizeof(float) * C);
        }
        for (int l = st->first; l < st->first + st->depth; l++) {
            p = sfq_block_views(&m->blocks[l], p, C, M);
            m->blocks[l].rel_table = TAKE(table_rows * h);
        }
    }
    m->norm_w = TAKE(Cf);
    m->norm_b = TAKE(Cf);
    m->head_w = TAKE(K * Cf);
    m->head_b = TAKE(K);
#undef TAKE
    if ((size_t)(p - m->params) != total)
        return sfq_fail(SARDFQ_E_INTERNAL, "Swin parameter layout mismatch");
    /* FLOPs (2 per multiply-add) */
    double fl = 2.0 * cfg->grid_h * cfg->grid_w * (double)C0 * cpp;
    for (int s = 0; s < w->n_stages; s++) {
        const sfq_swin_stage *st = &w->st[s];
        const double N = (double)st->gh * st->gw, C = st->dim, M = st->hidden, Nw = (double)st->wh * st->ww;
        if (s)
            fl += 2.0 * N * (2 * C) * C;
        fl += st->depth * (2 * N * (4 * C * C + 2 * C * M) + 4 * N * Nw * C);
    }
    fl += 2.0 * Cf * K;
    cfg->flops_per_image = fl;
    /* the reduction biases are not parameters of the checkpoint's model */
    int64_t extra = 0;
    for (int s = 1; s < w->n_stages; s++)
        extra += w->st[s].dim;
    cfg->num_params = (int64_t)total - extra;
    return SARDFQ_OK;
}

void sfq_swin_apa_target(const sardfq_model *m, int l, float *prior)
{
    const sfq_swin_stage *st = &m->swin->st[sfq_swin_block_stage(m, l)];
    const int shifted = block_shifted(st, l), Nw = st->wh * st->ww, N = st->gh * st->gw;
    const int nW = (st->gh / st->wh) * (st->gw / st->ww);
    int lab[64 * 64];
    for (int w = 0; w < nW; w++) {
        double mass[9] = {0};
        int count[9] = {0};
        for (int i = 0; i < Nw; i++)
            lab[i] = 0;
        if (shifted) {
            const sfq_window g = stage_window(st, 1);
            sfq_window_labels(&g, w, lab);
        }
        for (int i = 0; i < Nw; i++) {
            mass[lab[i]] += prior[sfq_swin_token_pos(st, shifted, w, i)];
            count[lab[i]]++;
        }
        for (int i = 0; i < Nw; i++) {
            float *p = &prior[sfq_swin_token_pos(st, shifted, w, i)];
            const int g = lab[i];
            *p = mass[g] > 0 ? (float)(*p / mass[g] * count[g] / N) : 1.0f / (float)N;
        }
    }
}

