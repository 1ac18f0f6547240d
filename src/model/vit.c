/* vit.c - the ViT / DeiT parameter layout (vit.h): one block's floats and
 * views (shared with Swin's blocks), the parameter buffer and its views,
 * and the derived figures (parameter count, FLOPs, read-back size). */
#include "vit.h"

#include <string.h>

/* ---- derived numbers and the parameter buffer ------------------------- */

void sfq_model_fill_derived(sardfq_model *m)
{
    sardfq_model_info *cfg = &m->info;
    const double D = cfg->embed_dim, N = cfg->num_tokens, M = cfg->mlp_hidden, K = cfg->num_classes;
    const double G = (double)cfg->grid_h * cfg->grid_w, cpp = (double)cfg->in_chans * cfg->patch_size * cfg->patch_size;
    const int heads = cfg->arch == SARDFQ_ARCH_DEIT_DISTILLED ? 2 : 1;
    double per_block = 2 * N * (4 * D * D + 2 * D * M) + 4 * N * N * D;
    cfg->flops_per_image = 2 * G * D * cpp + cfg->depth * per_block + heads * 2 * D * K;
    cfg->num_params = (int64_t)m->n_params;
    cfg->num_stages = 1;
    cfg->window_size = 0;
    for (int s = 0; s < SARDFQ_MAX_STAGES; s++)
        cfg->stage_depth[s] = cfg->stage_heads[s] = cfg->stage_dim[s] = 0;
    cfg->stage_depth[0] = cfg->depth;
    cfg->stage_heads[0] = cfg->num_heads;
    cfg->stage_dim[0] = cfg->embed_dim;
    cfg->num_features = cfg->embed_dim;
    cfg->attention_floats = (int64_t)cfg->depth * cfg->num_heads * cfg->num_tokens;
}

size_t sfq_block_floats(size_t D, size_t M) { return 4 * D + 3 * D * D + 3 * D + D * D + D + 2 * M * D + M + D; }

float *sfq_block_views(sfq_block *b, float *p, size_t D, size_t M)
{
#define TAKE(n) (p += (n), p - (n))
    b->ln1_w = TAKE(D);
    b->ln1_b = TAKE(D);
    b->qkv_w = TAKE(3 * D * D);
    b->qkv_b = TAKE(3 * D);
    b->proj_w = TAKE(D * D);
    b->proj_b = TAKE(D);
    b->ln2_w = TAKE(D);
    b->ln2_b = TAKE(D);
    b->fc1_w = TAKE(M * D);
    b->fc1_b = TAKE(M);
    b->fc2_w = TAKE(D * M);
    b->fc2_b = TAKE(D);
#undef TAKE
    return p;
}
sardfq_status sfq_vit_alloc_params(sardfq_model *m)
{
    const sardfq_model_info *cfg = &m->info;
    const size_t D = (size_t)cfg->embed_dim, M = (size_t)cfg->mlp_hidden, K = (size_t)cfg->num_classes;
    const size_t cpp = (size_t)cfg->in_chans * cfg->patch_size * cfg->patch_size;
    const int distilled = cfg->arch == SARDFQ_ARCH_DEIT_DISTILLED;
    size_t per_block = sfq_block_floats(D, M);
    size_t total = D * cpp + D + D + (distilled ? D : 0) + (size_t)cfg->num_tokens * D +
                   (size_t)cfg->depth * per_block + 2 * D + (K * D + K) * (distilled ? 2 : 1);
    m->blocks = sfq_alloc_zero(sizeof(sfq_block) * (size_t)cfg->depth);
    m->params = sfq_alloc_array(total, sizeof(float));
    if (!m->blocks || !m->params)
        return sfq_fail(SARDFQ_E_NOMEM, "cannot allocate %zu parameters", total);
    m->n_params = total;
    float *p = m->params;
#define TAKE(n) (p += (n), p - (n))
    m->patch_w = TAKE(D * cpp);
    m->patch_b = TAKE(D);
    m->cls = TAKE(D);
    m->dist = distilled ? TAKE(D) : NULL;
    m->pos = TAKE((size_t)cfg->num_tokens * D);
    for (int l = 0; l < cfg->depth; l++)
        p = sfq_block_views(&m->blocks[l], p, D, M);
    m->norm_w = TAKE(D);
    m->norm_b = TAKE(D);
    m->head_w = TAKE(K * D);
    m->head_b = TAKE(K);
    if (distilled) {
        m->head_dist_w = TAKE(K * D);
        m->head_dist_b = TAKE(K);
    }
#undef TAKE
    if ((size_t)(p - m->params) != total)
        return sfq_fail(SARDFQ_E_INTERNAL, "parameter layout mismatch");
    sfq_model_fill_derived(m);
    return SARDFQ_OK;
}
