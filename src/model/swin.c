/* swin.c - Swin Transformer (V1) forward and backward-to-input, with timm's
 * semantics (swin_*_patch4_window7_224).
 *
 * B images; stage s has a gh x gw token grid (N tokens), width C, h heads
 * of hd = C / h, mlp hidden M, windows of wh x ww (Nw tokens, nW windows).
 * The residual stream x is kept in raster order [B][N][C]; the attention
 * branch of a block works in window order: token i of window w of image b
 * is row (b nW + w) Nw + i, at image position sfq_swin_token_pos (which
 * undoes the cyclic shift of the odd blocks).
 *
 *   embedding: tokens = patches Wp^T + bp, x = LN(tokens)
 *   block:     xw = gather(x); hw = LN1(xw); qkv = hw Wqkv^T + bqkv
 *              per (image, window, head): S = scale Q K^T + bias + mask,
 *              P = softmax(S), O = P V
 *              x += scatter(O Wproj^T + bproj)
 *              x += fc2(GELU(fc1(LN2(x))))
 *   merging:   x' = LN([x(2i,2j), x(2i+1,2j), x(2i,2j+1), x(2i+1,2j+1)]) Wr^T
 *   head:      logits = mean_t(LN(x)) Wh^T + bh
 * bias[i][j] = table[idx(i, j)][head] (relative position), mask[i][j] =
 * -100 when tokens i and j come from different regions of the shifted
 * frame (timm's attn_mask), 0 otherwise. */
#include "swin.h"

#include "compute.h"
#include "qspec.h"
#include "smallgemm.h"
#include "threads.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

#define MASK_VALUE (-100.0f)

/* ---- geometry ------------------------------------------------------------ */

int sfq_swin_block_stage(const sardfq_model *m, int l)
{
    const sfq_swin *w = m->swin;
    int s = 0;
    while (s + 1 < w->n_stages && l >= w->st[s + 1].first)
        s++;
    return s;
}

int sfq_swin_token_pos(const sfq_swin_stage *st, int shifted, int w, int i)
{
    const int nww = st->gw / st->ww;
    const int wy = w / nww, wx = w % nww, iy = i / st->ww, ix = i % st->ww;
    int y = wy * st->wh + iy, x = wx * st->ww + ix;
    if (shifted) {
        y = (y + st->sh) % st->gh;
        x = (x + st->sw) % st->gw;
    }
    return y * st->gw + x;
}

/* Region of a position of the shifted frame along one axis (timm's mask
 * slices [0, n - win), [n - win, n - shift), [n - shift, n)). */
static int region(int p, int n, int win, int shift)
{
    if (!shift)
        return 0;
    return p < n - win ? 0 : p < n - shift ? 1 : 2;
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

/* ---- buffers ------------------------------------------------------------- */

/* Per image, in floats, the largest over the stages. */
typedef struct {
    size_t NC, N3C, NM, PR, N, GC, T, Cf;
    size_t chunk; /* attention scratch per thread */
} sw_sizes;

static sw_sizes sizes(const sardfq_model *m)
{
    const sfq_swin *w = m->swin;
    const sardfq_model_info *cfg = &m->info;
    sw_sizes z = {0};
    for (int s = 0; s < w->n_stages; s++) {
        const sfq_swin_stage *st = &w->st[s];
        const size_t N = (size_t)st->gh * st->gw, C = (size_t)st->dim, Nw = (size_t)st->wh * st->ww;
        const size_t hd = C / (size_t)st->heads, ldN = (size_t)sfq_pack_ld((int)Nw), ldh = (size_t)sfq_pack_ld((int)hd);
        const size_t NC = N * C, PR = (size_t)st->heads * N * Nw, NM = N * (size_t)st->hidden;
        const size_t chunk = Nw * ldN + (hd * ldN > Nw * ldh ? hd * ldN : Nw * ldh) + 16;
        z.NC = NC > z.NC ? NC : z.NC;
        z.N3C = 3 * NC > z.N3C ? 3 * NC : z.N3C;
        z.NM = NM > z.NM ? NM : z.NM;
        z.PR = PR > z.PR ? PR : z.PR;
        z.N = N > z.N ? N : z.N;
        z.chunk = chunk > z.chunk ? chunk : z.chunk;
    }
    z.GC = (size_t)cfg->grid_h * cfg->grid_w * cfg->in_chans * cfg->patch_size * cfg->patch_size;
    z.T = (size_t)cfg->attention_floats;
    z.Cf = (size_t)cfg->num_features;
    return z;
}

typedef struct {
    float *x, *xw, *h, *ao, *qkv, *probs, *hid, *patches, *pool;
    float *scratch;
} sw_work;

static size_t work_floats(const sw_sizes *z, int n, int nt)
{
    return (size_t)nt * z->chunk + (size_t)n * (4 * z->NC + z->N3C + z->PR + z->NM + z->GC + z->Cf);
}

static void work_carve(sw_work *w, float *p, const sw_sizes *z, int n, int nt)
{
    w->scratch = p;
    p += (size_t)nt * z->chunk;
#define TAKE(k) (p += (size_t)n * (k), p - (size_t)n * (k))
    w->x = TAKE(z->NC);
    w->xw = TAKE(z->NC);
    w->h = TAKE(z->NC);
    w->ao = TAKE(z->NC);
    w->qkv = TAKE(z->N3C);
    w->probs = TAKE(z->PR);
    w->hid = TAKE(z->NM);
    w->patches = TAKE(z->GC);
    w->pool = TAKE(z->Cf);
#undef TAKE
}

/* ---- data movement --------------------------------------------------------- */

typedef struct {
    const sfq_swin_stage *st;
    int shifted, C, N;
    const float *src;
    float *dst;
    int scatter, add; /* scatter (else gather); scatter adding to dst */
} perm_ctx;

/* Window-order row r (all images) <-> its raster row: gather copies the
 * raster row to row r, scatter copies (or adds) row r back. */
static void perm_range(void *vc, int64_t r0, int64_t r1)
{
    const perm_ctx *c = vc;
    const int Nw = c->st->wh * c->st->ww;
    const size_t bytes = sizeof(float) * (size_t)c->C;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / c->N;
        const int k = (int)(r % c->N), pos = sfq_swin_token_pos(c->st, c->shifted, k / Nw, k % Nw);
        const int64_t raster = (b * c->N + pos) * c->C, window = r * c->C;
        if (!c->scatter) {
            memcpy(c->dst + window, c->src + raster, bytes);
        } else if (c->add) {
            for (int i = 0; i < c->C; i++)
                c->dst[raster + i] += c->src[window + i];
        } else {
            memcpy(c->dst + raster, c->src + window, bytes);
        }
    }
}

static void permute(const sfq_swin_stage *st, int shifted, int n, const float *src, float *dst, int scatter,
                    int add, int nt)
{
    perm_ctx c = {st, shifted, st->dim, st->gh * st->gw, src, dst, scatter, add};
    sfq_parallel_for(nt, (int64_t)n * c.N, perm_range, &c);
}

/* Patch merging gather: m4[b][t][k C' + c] from the previous stage's x
 * (st = the previous stage), k = 0 (2y, 2x), 1 (2y+1, 2x), 2 (2y, 2x+1),
 * 3 (2y+1, 2x+1); or the inverse scatter. */
typedef struct {
    const sfq_swin_stage *st;
    float *x, *m4;
    int scatter;
} merge_ctx;

static void merge_range(void *vc, int64_t r0, int64_t r1)
{
    const merge_ctx *c = vc;
    const int C = c->st->dim, gw = c->st->gw, oh = c->st->gh / 2, ow = gw / 2;
    const int64_t No = (int64_t)oh * ow, Ni = (int64_t)c->st->gh * gw;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / No;
        const int t = (int)(r % No), y = t / ow, x = t % ow;
        for (int k = 0; k < 4; k++) {
            const int yy = 2 * y + (k & 1), xx = 2 * x + (k >> 1);
            float *xi = c->x + (b * Ni + (int64_t)yy * gw + xx) * C, *mi = c->m4 + (r * 4 + k) * C;
            if (c->scatter)
                memcpy(xi, mi, sizeof(float) * (size_t)C);
            else
                memcpy(mi, xi, sizeof(float) * (size_t)C);
        }
    }
}

/* ---- attention ----------------------------------------------------------- */

typedef struct {
    const sfq_swin_stage *st;
    const int *relidx;
    const float *table;
    int shifted, l;
    float alpha;      /* on Q K^T: the scale, or 1 when Q holds scale q */
    int64_t attn_off; /* this block's offset in an image's read-back */
    int64_t T;        /* read-back floats per image */
    const float *qkv, *dao, *dattn;
    float *probs, *ao, *attn, *dqkv, *dS;
    float *scratch;
    size_t chunk;
} sw_attn;

/* Triple t = (b nW + w) h + head. */
typedef struct {
    int b, w, hh;
    size_t row0;  /* first window row of the image: (b nW + w) Nw */
} triple;

static triple split_triple(const sw_attn *c, int64_t t)
{
    const sfq_swin_stage *st = c->st;
    const int nW = (st->gh / st->wh) * (st->gw / st->ww), Nw = st->wh * st->ww;
    triple r;
    r.hh = (int)(t % st->heads);
    const int64_t bw = t / st->heads;
    r.b = (int)(bw / nW);
    r.w = (int)(bw % nW);
    r.row0 = (size_t)bw * Nw;
    return r;
}

/* Window labels of the shifted frame (lab[Nw]). */
static void window_labels(const sfq_swin_stage *st, int w, int *lab)
{
    const int nww = st->gw / st->ww, wy = w / nww, wx = w % nww;
    for (int i = 0; i < st->wh * st->ww; i++) {
        const int y = wy * st->wh + i / st->ww, x = wx * st->ww + i % st->ww;
        lab[i] = region(y, st->gh, st->wh, st->sh) * 3 + region(x, st->gw, st->ww, st->sw);
    }
}

/* The two halves of one triple's attention with the thread's packing
 * buffer: S = alpha Q K^T + bias + mask, softmax (into probs); and
 * O = P V (into ao) with the read-back of P. */
static void triple_scores(const sw_attn *c, int64_t t, float *buf)
{
    const sfq_swin_stage *st = c->st;
    const int C = st->dim, h = st->heads, hd = C / h, Nw = st->wh * st->ww, ldN = sfq_pack_ld(Nw);
    const triple r = split_triple(c, t);
    const float *q = c->qkv + r.row0 * 3 * C + (size_t)r.hh * hd;
    float *S = c->probs + (size_t)t * Nw * Nw;
    int lab[64 * 64];
    sfq_pack_transpose(q + C, 3 * C, Nw, hd, buf, ldN); /* K^T */
    sfq_gemm_packed(Nw, Nw, hd, c->alpha, q, 3 * C, buf, ldN, S, Nw);
    for (int i = 0; i < Nw * Nw; i++)
        S[i] += c->table[(size_t)c->relidx[i] * h + r.hh];
    if (c->shifted) {
        window_labels(st, r.w, lab);
        for (int i = 0; i < Nw; i++)
            for (int j = 0; j < Nw; j++)
                if (lab[i] != lab[j])
                    S[i * Nw + j] += MASK_VALUE;
    }
    sfq_softmax_fwd(S, Nw, Nw, 1);
}

static void triple_pv(const sw_attn *c, int64_t t, float *buf)
{
    const sfq_swin_stage *st = c->st;
    const int C = st->dim, h = st->heads, hd = C / h, Nw = st->wh * st->ww, N = st->gh * st->gw;
    const int ldh = sfq_pack_ld(hd);
    const triple r = split_triple(c, t);
    const float *q = c->qkv + r.row0 * 3 * C + (size_t)r.hh * hd;
    const float *S = c->probs + (size_t)t * Nw * Nw;
    sfq_pack_rows(q + 2 * C, 3 * C, Nw, hd, buf, ldh); /* V */
    sfq_gemm_packed(Nw, hd, Nw, 1.0f, S, Nw, buf, ldh, c->ao + r.row0 * C + (size_t)r.hh * hd, C);
    if (c->attn) {
        float *a = c->attn + (size_t)r.b * c->T + c->attn_off + (size_t)r.hh * N;
        for (int j = 0; j < Nw; j++) {
            double sum = 0;
            for (int i = 0; i < Nw; i++)
                sum += S[i * Nw + j];
            a[sfq_swin_token_pos(st, c->shifted, r.w, j)] = (float)(sum / N);
        }
    }
}

static float *triple_buf(const sw_attn *c, int chunk)
{
    const int Nw = c->st->wh * c->st->ww;
    return c->scratch + (size_t)chunk * c->chunk + (size_t)Nw * sfq_pack_ld(Nw);
}

static void attention_fwd_range(void *vc, int chunk, int64_t t0, int64_t t1)
{
    const sw_attn *c = vc;
    float *buf = triple_buf(c, chunk);
    for (int64_t t = t0; t < t1; t++) {
        triple_scores(c, t, buf);
        triple_pv(c, t, buf);
    }
}

/* The same in two passes, for a quantized model whose probability
 * quantizer sees the whole batch between them. */
static void attention_scores_range(void *vc, int chunk, int64_t t0, int64_t t1)
{
    const sw_attn *c = vc;
    float *buf = triple_buf(c, chunk);
    for (int64_t t = t0; t < t1; t++)
        triple_scores(c, t, buf);
}

static void attention_pv_range(void *vc, int chunk, int64_t t0, int64_t t1)
{
    const sw_attn *c = vc;
    float *buf = triple_buf(c, chunk);
    for (int64_t t = t0; t < t1; t++)
        triple_pv(c, t, buf);
}

/* dPr = dO V^T (+ dattn[pos(j)] / N on every row), dV = Pr^T dO, dS =
 * softmax backward, dQ = scale dS K, dK = scale dS^T Q. */
static void attention_bwd_range(void *vc, int chunk, int64_t t0, int64_t t1)
{
    const sw_attn *c = vc;
    const sfq_swin_stage *st = c->st;
    const int C = st->dim, h = st->heads, hd = C / h, Nw = st->wh * st->ww, N = st->gh * st->gw;
    const float scale = 1.0f / sqrtf((float)hd);
    float *At = c->scratch + (size_t)chunk * c->chunk, *buf = At + (size_t)Nw * sfq_pack_ld(Nw);
    for (int64_t t = t0; t < t1; t++) {
        const triple r = split_triple(c, t);
        const size_t qo = r.row0 * 3 * C + (size_t)r.hh * hd;
        const float *Pr = c->probs + (size_t)t * Nw * Nw;
        float *dS = c->dS + (size_t)t * Nw * Nw;
        sfq_attention_head_bwd_pv(c->qkv + qo, c->dqkv + qo, C, c->dao + r.row0 * C + (size_t)r.hh * hd, Pr, dS,
                                  Nw, hd, At, buf);
        if (c->dattn) { /* every query row: the read-back averages them */
            const float *g = c->dattn + (size_t)r.b * c->T + c->attn_off + (size_t)r.hh * N;
            for (int j = 0; j < Nw; j++) {
                const float gj = g[sfq_swin_token_pos(st, c->shifted, r.w, j)] / (float)N;
                for (int i = 0; i < Nw; i++)
                    dS[i * Nw + j] += gj;
            }
        }
        sfq_attention_head_bwd_qk(c->qkv + qo, c->dqkv + qo, C, Pr, dS, Nw, hd, scale, At, buf);
    }
}

static sw_attn attn_ctx(const sardfq_model *m, int l, const sw_work *w, size_t chunk)
{
    const sfq_swin *sw = m->swin;
    const int s = sfq_swin_block_stage(m, l);
    const sfq_swin_stage *st = &sw->st[s];
    sw_attn c = {.st = st, .relidx = sw->relidx[s], .table = m->blocks[l].rel_table,
                 .shifted = block_shifted(st, l), .l = l, .T = m->info.attention_floats,
                 .alpha = 1.0f / sqrtf((float)(st->dim / st->heads)),
                 .scratch = w->scratch, .chunk = chunk};
    for (int k = 0; k < l; k++) {
        const sfq_swin_stage *sk = &sw->st[sfq_swin_block_stage(m, k)];
        c.attn_off += (int64_t)sk->heads * sk->gh * sk->gw;
    }
    return c;
}

static int64_t n_triples(const sfq_swin_stage *st, int n)
{
    return (int64_t)n * (st->gh / st->wh) * (st->gw / st->ww) * st->heads;
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
        if (shifted)
            window_labels(st, w, lab);
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

/* ---- forward ------------------------------------------------------------- */

/* What a forward keeps (NULL = not kept). */
typedef struct {
    sfq_saved_block *saved;
    float **xhat_st, **rstd_st; /* per stage, or NULL */
    float *xhatf, *rstdf, *attn, *feat;
    float *ao; /* every block's attention output, sfq_ao_offset layout */
} sw_keep;

static void forward(const sardfq_model *m, const float *images, int n, sw_work *w, const sw_keep *k,
                    float *logits, const sfq_compute *c)
{
    const sfq_swin *sw = m->swin;
    const sardfq_model_info *cfg = &m->info;
    const int nt = c->nt, C0 = cfg->embed_dim, G = cfg->grid_h * cfg->grid_w;
    const int cpp = cfg->in_chans * cfg->patch_size * cfg->patch_size;
    const float eps = cfg->ln_eps;
    const size_t chunk = sizes(m).chunk;
    sfq_im2col(m, images, n, w->patches, nt);
    sfq_qhook(m, -1, SFQ_AG_INPUT, w->patches, (int64_t)n * G, cpp, cpp, nt);
    sfq_linear(c, w->patches, m->patch_w, m->patch_b, w->h, n * G, cpp, C0, 0);
    sfq_layernorm_fwd(w->h, sw->pe_norm_w, sw->pe_norm_b, w->x, k->xhat_st ? k->xhat_st[0] : NULL,
                      k->rstd_st ? k->rstd_st[0] : NULL, (int64_t)n * G, C0, eps, nt);
    for (int s = 0; s < sw->n_stages; s++) {
        const sfq_swin_stage *st = &sw->st[s];
        const int C = st->dim, M = st->hidden, BN = n * st->gh * st->gw;
        if (s) {
            const sfq_swin_stage *pv = &sw->st[s - 1];
            merge_ctx mc = {pv, w->x, w->xw, 0};
            sfq_parallel_for(nt, (int64_t)BN, merge_range, &mc);
            sfq_layernorm_fwd(w->xw, st->ds_norm_w, st->ds_norm_b, w->h, k->xhat_st ? k->xhat_st[s] : NULL,
                              k->rstd_st ? k->rstd_st[s] : NULL, BN, 2 * C, eps, nt);
            sfq_qhook(m, -1, sfq_qpoint_reduction(cfg, s), w->h, BN, 2 * C, 2 * C, nt);
            sfq_linear(c, w->h, st->ds_red_w, st->ds_red_b, w->x, BN, 2 * C, C, 0);
        }
        for (int l = st->first; l < st->first + st->depth; l++) {
            const sfq_block *blk = &m->blocks[l];
            sfq_saved_block *sv = k->saved ? &k->saved[l] : NULL;
            sw_attn ac = attn_ctx(m, l, w, chunk);
            float *qkv = sv ? sv->qkv : w->qkv, *pre = sv ? sv->pre : w->hid;
            permute(st, ac.shifted, n, w->x, w->xw, 0, 0, nt);
            sfq_layernorm_fwd(w->xw, blk->ln1_w, blk->ln1_b, w->h, sv ? sv->xhat1 : NULL, sv ? sv->rstd1 : NULL,
                              BN, C, eps, nt);
            sfq_qhook(m, l, SFQ_AP_QKV_IN, w->h, BN, C, C, nt);
            sfq_linear(c, w->h, blk->qkv_w, blk->qkv_b, qkv, BN, C, 3 * C, 0);
            ac.qkv = qkv;
            ac.probs = sv ? sv->probs : w->probs;
            ac.ao = k->ao ? k->ao + sfq_swin_ao_offset(m, n, l) : w->ao;
            ac.attn = k->attn;
            if (!m->q) {
                sfq_parallel_chunks(nt, n_triples(st, n), attention_fwd_range, &ac);
            } else {
                /* timm (and RepQ-ViT's matmul1) multiply q by the scale
                 * before Q K^T: the quantizer sees scale q */
                for (int64_t r = 0; r < BN; r++)
                    for (int i = 0; i < C; i++)
                        qkv[r * 3 * C + i] *= ac.alpha;
                ac.alpha = 1.0f;
                const int Nw = st->wh * st->ww;
                const int64_t rows = n_triples(st, n) * Nw;
                sfq_qhook(m, l, SFQ_AP_Q, qkv, BN, C, 3 * C, nt);
                sfq_qhook(m, l, SFQ_AP_K, qkv + C, BN, C, 3 * C, nt);
                sfq_qhook(m, l, SFQ_AP_V, qkv + 2 * C, BN, C, 3 * C, nt);
                sfq_parallel_chunks(nt, n_triples(st, n), attention_scores_range, &ac);
                sfq_qhook(m, l, SFQ_AP_PROBS, ac.probs, rows, Nw, Nw, nt);
                sfq_parallel_chunks(nt, n_triples(st, n), attention_pv_range, &ac);
            }
            sfq_qhook(m, l, SFQ_AP_PROJ_IN, ac.ao, BN, C, C, nt);
            sfq_linear(c, ac.ao, blk->proj_w, blk->proj_b, w->h, BN, C, C, 0);
            permute(st, ac.shifted, n, w->h, w->x, 1, 1, nt);
            sfq_layernorm_fwd(w->x, blk->ln2_w, blk->ln2_b, w->h, sv ? sv->xhat2 : NULL, sv ? sv->rstd2 : NULL,
                              BN, C, eps, nt);
            sfq_qhook(m, l, SFQ_AP_FC1_IN, w->h, BN, C, C, nt);
            sfq_linear(c, w->h, blk->fc1_w, blk->fc1_b, pre, BN, C, M, 0);
            sfq_gelu_fwd(pre, w->hid, (int64_t)BN * M, nt);
            sfq_qhook(m, l, SFQ_AP_FC2_IN, w->hid, BN, M, M, nt);
            sfq_linear(c, w->hid, blk->fc2_w, blk->fc2_b, w->x, BN, M, C, 1);
        }
    }
    const sfq_swin_stage *last = &sw->st[sw->n_stages - 1];
    const int N = last->gh * last->gw, Cf = last->dim, K = cfg->num_classes;
    sfq_layernorm_fwd(w->x, m->norm_w, m->norm_b, w->h, k->xhatf, k->rstdf, (int64_t)n * N, Cf, eps, nt);
    float *feat = k->feat ? k->feat : w->pool;
    for (int b = 0; b < n; b++) {
        const float *hb = w->h + (size_t)b * N * Cf;
        for (int d = 0; d < Cf; d++) {
            double sum = 0;
            for (int t = 0; t < N; t++)
                sum += hb[(size_t)t * Cf + d];
            feat[(size_t)b * Cf + d] = (float)(sum / N);
        }
    }
    if (!logits)
        return;
    if (m->q && feat != w->pool) /* the kept features stay unquantized */
        memcpy(w->pool, feat, sizeof(float) * (size_t)n * Cf);
    feat = m->q ? w->pool : feat;
    sfq_qhook(m, -1, SFQ_AG_HEAD_IN, feat, n, Cf, Cf, nt);
    sfq_linear(c, feat, m->head_w, m->head_b, logits, n, Cf, K, 0);
}

sardfq_status sfq_swin_forward(sardfq_model *m, const float *images, int n, float *logits)
{
    sfq_compute c = sfq_begin_compute(m);
    const sw_sizes z = sizes(m);
    const size_t floats = work_floats(&z, n, c.nt);
    float *base = sfq_alloc_array(floats, sizeof(float));
    if (!base) {
        sfq_end_compute(&c);
        return sfq_fail(SARDFQ_E_NOMEM, "sardfq_model_forward: cannot allocate %zu MB of scratch for %d images",
                        floats * sizeof(float) >> 20, n);
    }
    sw_work w;
    work_carve(&w, base, &z, n, c.nt);
    sw_keep k = {0};
    forward(m, images, n, &w, &k, logits, &c);
    sfq_end_compute(&c);
    sfq_free(base);
    return SARDFQ_OK;
}

/* Kept per image: read-back T, features Cf, final LN N_last (Cf + 1); with
 * backward also every stage's entry LN and every block's activations. */
static size_t kept_floats(const sardfq_model *m, int n, uint32_t flags)
{
    const sfq_swin *sw = m->swin;
    const sw_sizes z = sizes(m);
    const sfq_swin_stage *last = &sw->st[sw->n_stages - 1];
    size_t per = z.T + z.Cf + (size_t)last->gh * last->gw * (z.Cf + 1);
    if (flags & SFQ_FORWARD_KEEP_AO)
        per += sfq_swin_ao_offset(m, 1, m->info.depth);
    if (flags & SARDFQ_FORWARD_BACKWARD)
        for (int s = 0; s < sw->n_stages; s++) {
            const sfq_swin_stage *st = &sw->st[s];
            const size_t N = (size_t)st->gh * st->gw, C = (size_t)st->dim;
            per += N * ((s ? 2 * C : C) + 1);
            per += (size_t)st->depth * (N * (2 * C + 2 + 3 * C + (size_t)st->hidden) +
                                        (size_t)st->heads * N * st->wh * st->ww);
        }
    return (size_t)n * per;
}

sardfq_status sfq_swin_forward_state(sardfq_model *m, sardfq_state *s, const float *images, int n,
                                     uint32_t flags, float *logits)
{
    const sfq_swin *sw = m->swin;
    sfq_compute c = sfq_begin_compute(m);
    const sw_sizes z = sizes(m);
    sardfq_status st = sfq_state_grow(s, kept_floats(m, n, flags), work_floats(&z, n, c.nt), n);
    if (st) {
        sfq_end_compute(&c);
        return st;
    }
    const int backward = (flags & SARDFQ_FORWARD_BACKWARD) != 0;
    const sfq_swin_stage *last = &sw->st[sw->n_stages - 1];
    const size_t Nl = (size_t)last->gh * last->gw;
    float *p = s->buffers;
#define TAKE(k) (p += (size_t)n * (k), p - (size_t)n * (k))
    s->attn = TAKE(z.T);
    s->feat = TAKE(z.Cf);
    s->xhatf = TAKE(Nl * z.Cf);
    s->rstdf = TAKE(Nl);
    s->ao = flags & SFQ_FORWARD_KEEP_AO ? TAKE(sfq_swin_ao_offset(m, 1, m->info.depth)) : NULL;
    for (int k = 0; k < SARDFQ_MAX_STAGES; k++)
        s->xhat_st[k] = s->rstd_st[k] = NULL;
    for (int l = 0; l < m->info.depth; l++)
        memset(&s->saved[l], 0, sizeof s->saved[l]);
    if (backward)
        for (int k = 0; k < sw->n_stages; k++) {
            const sfq_swin_stage *g = &sw->st[k];
            const size_t N = (size_t)g->gh * g->gw, C = (size_t)g->dim;
            s->xhat_st[k] = TAKE(N * (k ? 2 * C : C));
            s->rstd_st[k] = TAKE(N);
            for (int l = g->first; l < g->first + g->depth; l++) {
                sfq_saved_block *b = &s->saved[l];
                b->xhat1 = TAKE(N * C);
                b->rstd1 = TAKE(N);
                b->qkv = TAKE(3 * N * C);
                b->probs = TAKE((size_t)g->heads * N * g->wh * g->ww);
                b->xhat2 = TAKE(N * C);
                b->rstd2 = TAKE(N);
                b->pre = TAKE(N * (size_t)g->hidden);
            }
        }
#undef TAKE
    sw_work w;
    work_carve(&w, s->work, &z, n, c.nt);
    sw_keep k = {0};
    if (backward) {
        k.saved = s->saved;
        k.xhat_st = s->xhat_st;
        k.rstd_st = s->rstd_st;
        k.xhatf = s->xhatf;
        k.rstdf = s->rstdf;
    }
    if (flags & SARDFQ_FORWARD_ATTENTION)
        k.attn = s->attn;
    k.feat = s->feat;
    k.ao = s->ao;
    forward(m, images, n, &w, &k, logits, &c);
    sfq_end_compute(&c);
    s->n = n;
    s->flags = flags;
    s->nt = c.nt;
    return SARDFQ_OK;
}

/* ---- backward ------------------------------------------------------------ */

size_t sfq_swin_ao_offset(const sardfq_model *m, int n, int block)
{
    size_t off = 0;
    for (int k = 0; k < block; k++) {
        const sfq_swin_stage *st = &m->swin->st[sfq_swin_block_stage(m, k)];
        off += (size_t)n * st->gh * st->gw * st->dim;
    }
    return off;
}

sardfq_status sfq_swin_backward_state(sardfq_model *m, sardfq_state *s, const float *dlogits,
                                      const float *dattn, const float *dao_ext, float *dimages)
{
    const sfq_swin *sw = m->swin;
    const sardfq_model_info *cfg = &m->info;
    const int n = s->n, K = cfg->num_classes, C0 = cfg->embed_dim, G = cfg->grid_h * cfg->grid_w;
    const int cpp = cfg->in_chans * cfg->patch_size * cfg->patch_size;
    sfq_compute cc = sfq_begin_compute(m);
    cc.nt = s->nt;
    const sfq_compute *c = &cc;
    const int nt = s->nt;
    const sw_sizes z = sizes(m);
    sw_work w;
    work_carve(&w, s->work, &z, n, nt);
    float *dx = w.x;
    /* head and pooling: dh[b][t] = (dlogits Wh)[b] / N, then the final LN */
    const sfq_swin_stage *last = &sw->st[sw->n_stages - 1];
    const int Nl = last->gh * last->gw, Cf = last->dim;
    memset(w.pool, 0, sizeof(float) * (size_t)n * Cf);
    if (dlogits)
        sfq_gemm(c->split, 0, 0, n, Cf, K, 1.0f, dlogits, K, m->head_w, Cf, 0.0f, w.pool, Cf);
    for (int b = 0; b < n; b++)
        for (int t = 0; t < Nl; t++)
            for (int d = 0; d < Cf; d++)
                w.h[((size_t)b * Nl + t) * Cf + d] = w.pool[(size_t)b * Cf + d] / (float)Nl;
    memset(dx, 0, sizeof(float) * (size_t)n * Nl * Cf);
    sfq_layernorm_bwd(w.h, s->xhatf, s->rstdf, m->norm_w, dx, (int64_t)n * Nl, Cf, nt);
    for (int si = sw->n_stages - 1; si >= 0; si--) {
        const sfq_swin_stage *st = &sw->st[si];
        const int C = st->dim, M = st->hidden, BN = n * st->gh * st->gw;
        for (int l = st->first + st->depth - 1; l >= st->first; l--) {
            const sfq_block *blk = &m->blocks[l];
            const sfq_saved_block *sv = &s->saved[l];
            sw_attn ac = attn_ctx(m, l, &w, z.chunk);
            /* MLP branch */
            sfq_gemm(c->split, 0, 0, BN, M, C, 1.0f, dx, C, blk->fc2_w, M, 0.0f, w.hid, M);
            sfq_gelu_bwd(sv->pre, w.hid, (int64_t)BN * M, nt);
            sfq_gemm(c->split, 0, 0, BN, C, M, 1.0f, w.hid, M, blk->fc1_w, C, 0.0f, w.h, C);
            sfq_layernorm_bwd(w.h, sv->xhat2, sv->rstd2, blk->ln2_w, dx, BN, C, nt);
            /* attention branch, in window order */
            permute(st, ac.shifted, n, dx, w.xw, 0, 0, nt);
            sfq_gemm(c->split, 0, 0, BN, C, C, 1.0f, w.xw, C, blk->proj_w, C, 0.0f, w.ao, C);
            if (dao_ext) {
                const float *e = dao_ext + sfq_swin_ao_offset(m, n, l);
                for (size_t i = 0; i < (size_t)BN * C; i++)
                    w.ao[i] += e[i];
            }
            ac.qkv = sv->qkv;
            ac.probs = sv->probs;
            ac.dao = w.ao;
            ac.dattn = dattn;
            ac.dqkv = w.qkv;
            ac.dS = w.probs;
            sfq_parallel_chunks(nt, n_triples(st, n), attention_bwd_range, &ac);
            sfq_gemm(c->split, 0, 0, BN, C, 3 * C, 1.0f, w.qkv, 3 * C, blk->qkv_w, C, 0.0f, w.h, C);
            sfq_layernorm_bwd(w.h, sv->xhat1, sv->rstd1, blk->ln1_w, w.xw, BN, C, nt);
            permute(st, ac.shifted, n, w.xw, dx, 1, 0, nt);
        }
        if (si) {
            /* patch merging: dm = dx Wr, LN backward, scatter to the
             * previous stage's grid */
            sfq_gemm(c->split, 0, 0, BN, 2 * C, C, 1.0f, dx, C, st->ds_red_w, 2 * C, 0.0f, w.h, 2 * C);
            memset(w.xw, 0, sizeof(float) * (size_t)BN * 2 * C);
            sfq_layernorm_bwd(w.h, s->xhat_st[si], s->rstd_st[si], st->ds_norm_w, w.xw, BN, 2 * C, nt);
            merge_ctx mc = {&sw->st[si - 1], dx, w.xw, 1};
            sfq_parallel_for(nt, (int64_t)BN, merge_range, &mc);
        }
    }
    /* embedding: LN backward, d(patches) = d(tokens) Wp, scatter */
    memset(w.h, 0, sizeof(float) * (size_t)n * G * C0);
    sfq_layernorm_bwd(dx, s->xhat_st[0], s->rstd_st[0], sw->pe_norm_w, w.h, (int64_t)n * G, C0, nt);
    sfq_gemm(c->split, 0, 0, n * G, cpp, C0, 1.0f, w.h, C0, m->patch_w, cpp, 0.0f, w.patches, cpp);
    sfq_col2im(m, dimages, n, w.patches, nt);
    sfq_end_compute(c);
    return SARDFQ_OK;
}
