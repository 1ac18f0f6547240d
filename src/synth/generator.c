/* generator.c - synthetic calibration images: Gaussian noise, PSAQ-ViT and
 * SARDFQ, optimised with Adam on the pixels.
 *
 * One step (PSAQ-ViT's schedule and jitter, shared by both methods):
 *   1. jitter: roll the images by (dy, dx) ~ U{-lim..lim}^2 pixels (lim =
 *      W/15 in round 1, 2W/15 in round 2, ...) and flip them horizontally
 *      with probability 1/2;
 *   2. MSR (SARDFQ, use_msr): per image m ~ U{1..K_MSR} regions, one in
 *      each of m distinct quadrants picked at random; a region's sides are
 *      U[1/4, 1/2] of the image's and its position within the quadrant is
 *      uniform, so regions never overlap. Each region is cut from the
 *      un-jittered image, resized bilinearly to the input size and
 *      forwarded as an image of its own, with the target of its quadrant's
 *      class; its gradient returns through the exact adjoint of the resize,
 *      so it reaches only its region;
 *   3. forward + backward of all items (whole images, then regions) in
 *      micro-batches; the losses:
 *        SARDFQ: alpha L_APA(whole images) + L_CE(whole) + L_CE(regions)
 *                + tv_weight |TV(x) - tau|
 *        PSAQ:   L_PSE(every block) + L_CE(whole) + tv_weight |TV(x) - tau|
 *      L_CE is the soft-label cross-entropy (use_sl) or the one-hot one;
 *      each CE term is a mean over its items. Two deviations from PSAQ-ViT's
 *      code, both immaterial at the defaults: TV is taken on the un-jittered
 *      images (PSAQ-ViT takes it after the roll, whose wrap-around adds a
 *      seam), and the KDE grid of L_PSE spans the similarities of one
 *      micro-batch (PSAQ-ViT: the whole batch; the same when micro_batch
 *      >= n_images, the default);
 *   4. Adam step, then clamp every channel to the normalised image of
 *      [0, 1].
 *
 * Targets. Image i gets classes c_i0..c_i3 (distinct when the model has 4
 * or more classes); c_i0, its primary class, runs through a shuffled cycle
 * of all classes so every class is covered about equally. Quadrant q's
 * regions take class c_iq. The whole image's soft target is softmax(Z) with
 * Z ~ U(sl_min, sl_max) at c_i0 (and at c_i1..c_i3 when MSR is on: the
 * image then carries all its regions' classes), 0 elsewhere; each region
 * has the soft target of its class. Without SL the targets are one-hot at
 * c_i0 (whole image) or c_iq (region).
 *
 * APA priors are drawn once per (image, block, head) and stay fixed; under
 * jitter the prior is rolled by the jitter rounded to whole patches and
 * flipped with the image, so it keeps describing the same content.
 *
 * Swin. A block's read-back is the mean attention over all queries on its
 * stage's grid, so each prior is drawn on that grid (one sampler per stage)
 * and rolled by the jitter rounded to the stage's token size (patch << s).
 * Windowed attention fixes how much mass each window (and each region of a
 * shifted window) receives, so the loss compares the read-back with the
 * prior renormalised to those masses (sfq_swin_apa_target): APA shapes the
 * attention inside every window and leaves the per-window masses, which no
 * input can change, out of the loss.
 *
 * Coupling groups and shards (sardfq.h): the set is optimised as
 * independent groups of SARDFQ_SYNTH_GROUP consecutive images; each step
 * runs group by group (its jitter, its items in micro-batches, its TV term
 * with its own tau, each loss a mean over the group). A generator for a
 * shard [first, first + count) of a set of `set_n` images works on the span
 * of whole groups that covers the shard (for noise: the shard itself) and
 * hands out only the shard. Every draw comes from a keyed stream
 * (core/rng.h): the key names the image (noise, targets, priors, MSR), the
 * group (tau, jitter) or the class cycle, the step and the stream, so no
 * draw depends on which other images the generator holds.
 *
 * Replay (tests only, synth.h): sfq_generator_replay_step sets the state and
 * runs one step with given jitter and regions instead of the random draws,
 * so a test can compare a whole step with a PyTorch reference. */
#define SARDFQ_EXPERIMENTAL /* sardfq_head_align_form */
#include "losses.h"
#include "swin.h"
#include "synth.h"
#include "exec.h"
#include "vit.h"

#include <math.h>
#include <string.h>
#include <time.h>

#define MAX_REGIONS 4
#define GROUP SARDFQ_SYNTH_GROUP

/* Stream ids of the keyed draws (core/rng.h); part of the randomness
 * contract: changing one changes the images. */
enum {
    ST_NOISE = 1,  /* key (seed, image, 0): the initial N(0, 1) pixels */
    ST_CYCLE = 2,  /* key (seed, cycle = image / classes, 0): the shuffled cycle */
    ST_TARGET = 3, /* key (seed, image, 0): classes 1..3 and soft logits */
    ST_TAU = 4,    /* key (seed, group, 0): the TV target */
    ST_PRIOR = 5,  /* key (seed, image, stage): the prior sampler's seed */
    ST_JITTER = 6, /* key (seed, group, step): roll and flip */
    ST_MSR = 7,    /* key (seed, image, step): regions */
};

typedef struct {
    int image;  /* source image */
    int region; /* -1 = whole image, else quadrant 0..3 */
    int y0, x0, h, w;
} item;

struct sardfq_generator {
    const sardfq_model *m;
    sardfq_model_info info;
    sardfq_generator_params p;
    sardfq_state *state;
    int first, count, set_n; /* the shard and the set (global indices) */
    int base;                /* global index of local image 0 (the span) */
    int groups;              /* coupling groups in the span */
    int n, C, H, W, K, G, N, P, D, depth, heads, mb;
    size_t img; /* floats per image */
    int classes_per_image;
    float *x, *am, *av;    /* images and Adam moments */
    float *targets;        /* [n][K] whole-image targets */
    float *region_targets; /* [n][4][K] */
    int32_t *classes;      /* [n][4] */
    float *priors;         /* [n][prior_img]: ViT [depth][heads][G]; Swin per
                              block [heads][stage grid] */
    size_t att_img, prior_img; /* read-back / prior floats per image */
    sfq_apa_block *apa;    /* per block: layout of read-back and priors */
    int *apa_gh, *apa_gw, *apa_cell; /* per block: prior grid, token size in pixels */
    float *tau; /* [groups] the TV targets */
    const sfq_generator_replay *replay; /* during sfq_generator_replay_step only */
    float lo[3], hi[3];
    int step, total;
    float head_align; /* weight of the inter-head alignment term (0 = off) */
    int head_align_form; /* SFQ_HEAD_ALIGN_COSINE or _SSIM */
    /* scratch */
    item *items;           /* GROUP * (1 + MAX_REGIONS): one group's */
    float *grad;           /* [n][img] */
    float *batch, *dbatch; /* [mb][img] */
    float *logits, *dlogits;
    float *attn, *dattn; /* [mb][att_img] */
    float *prior_aug;    /* [prior_img] */
    float *dao;          /* [mb] attention outputs, sfq_ao_offset layout (PSAQ) */
};

SARDFQ_API void sardfq_generator_default_params(sardfq_generator_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->method = SARDFQ_SYNTH_SARDFQ;
    p->n_images = 32;
    p->iters = 1000;
    p->rounds = 2;
    p->warmup = 100;
    p->lr = 0.2f;
    p->beta1 = 0.5f;
    p->beta2 = 0.9f;
    p->adam_eps = 1e-8f;
    p->use_apa = p->use_msr = p->use_sl = 1;
    p->apa_weight = 100.0f;
    p->tv_weight = 0.05f;
    p->tv_min = 2500.0f;
    p->tv_max = 3000.0f;
    p->sl_min = 5.0f;
    p->sl_max = 10.0f;
    p->msr_regions = 4;
    p->prior_kind = SARDFQ_PRIOR_GMM;
    p->prior_components = 5;
    sardfq_prior_params pp;
    sardfq_prior_default_params(&pp);
    p->prior_scale_min = pp.scale_min;
    p->prior_scale_max = pp.scale_max;
    p->micro_batch = 32;
    p->seed = 0;
}

static sardfq_status read_params(const sardfq_generator_params *in, sardfq_generator_params *out)
{
    sardfq_generator_default_params(out);
    sardfq_status s = sfq_read_params(in, out, sizeof *out,
                                      offsetof(sardfq_generator_params, user_data) + sizeof(void *),
                                      "sardfq_generator_params");
    if (s)
        return s;
    const sardfq_generator_params *q = out;
#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond))                                              \
            return sfq_fail(SARDFQ_E_INVALID_ARG, __VA_ARGS__);   \
    } while (0)
    CHECK(q->method >= SARDFQ_SYNTH_NOISE && q->method <= SARDFQ_SYNTH_SARDFQ,
          "unknown synthesis method %d", q->method);
    CHECK(q->n_images >= 1 && q->n_images <= 65536, "n_images must be in 1..65536 (got %d)", q->n_images);
    CHECK(q->iters >= 0 && q->iters <= 10000000, "iters must be in 0..1e7 (got %d)", q->iters);
    CHECK(q->rounds >= 1 && q->rounds <= 64, "rounds must be in 1..64 (got %d)", q->rounds);
    CHECK(q->warmup >= 0, "warmup must be >= 0 (got %d)", q->warmup);
    CHECK(q->lr > 0 && q->lr < 1e3f, "lr must be positive (got %g)", q->lr);
    CHECK(q->beta1 >= 0 && q->beta1 < 1 && q->beta2 >= 0 && q->beta2 < 1,
          "Adam betas must be in [0, 1) (got %g, %g)", q->beta1, q->beta2);
    CHECK(q->adam_eps > 0, "adam_eps must be positive (got %g)", q->adam_eps);
    CHECK(q->apa_weight >= 0 && isfinite(q->apa_weight), "apa_weight must be >= 0");
    CHECK(q->tv_weight >= 0 && isfinite(q->tv_weight), "tv_weight must be >= 0");
    CHECK(q->tv_min >= 0 && q->tv_min <= q->tv_max && isfinite(q->tv_max), "need 0 <= tv_min <= tv_max");
    CHECK(q->sl_min <= q->sl_max && isfinite(q->sl_min) && isfinite(q->sl_max), "need sl_min <= sl_max");
    CHECK(q->msr_regions >= 1 && q->msr_regions <= MAX_REGIONS, "msr_regions must be in 1..4 (got %d)",
          q->msr_regions);
    CHECK(q->micro_batch >= 1 && q->micro_batch <= 4096, "micro_batch must be in 1..4096 (got %d)",
          q->micro_batch);
#undef CHECK
    return SARDFQ_OK;
}

SARDFQ_API void sardfq_generator_free(sardfq_generator *g)
{
    if (!g)
        return;
    sardfq_state_free(g->state);
    void *bufs[] = {g->tau, g->x, g->am, g->av, g->targets, g->region_targets, g->classes, g->priors,
                    g->items, g->grad, g->batch, g->dbatch, g->logits, g->dlogits, g->attn,
                    g->dattn, g->prior_aug, g->dao, g->apa, g->apa_gh, g->apa_gw, g->apa_cell};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        sfq_free(bufs[i]);
    sfq_free(g);
}

/* Uniform integer in [lo, hi]. */
static int uniform_int(sfq_rng *r, int lo, int hi)
{
    return lo + (int)(sfq_rng_next(r) % (uint64_t)(hi - lo + 1));
}

static void shuffle(sfq_rng *r, int32_t *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = uniform_int(r, 0, i);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Targets: classes per image, whole-image and region targets. */
static sardfq_status init_targets(sardfq_generator *g)
{
    const int n = g->n, K = g->K;
    const int use_sl = g->p.method == SARDFQ_SYNTH_SARDFQ && g->p.use_sl;
    const int use_msr = g->p.method == SARDFQ_SYNTH_SARDFQ && g->p.use_msr;
    int32_t *cycle = sfq_alloc_array((size_t)K, sizeof(int32_t));
    if (!cycle)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    int64_t have = -1; /* the cycle in `cycle` */
    for (int i = 0; i < n; i++) {
        const int64_t j = (int64_t)g->base + i; /* the image's index in the set */
        int32_t *c = g->classes + (size_t)i * MAX_REGIONS;
        if (j / K != have) { /* cycle j / K of primary classes, shuffled */
            have = j / K;
            sfq_rng cr;
            sfq_rng_seed_key(&cr, g->p.seed, (uint64_t)have, 0, ST_CYCLE);
            for (int k = 0; k < K; k++)
                cycle[k] = k;
            shuffle(&cr, cycle, K);
        }
        sfq_rng rng;
        sfq_rng_seed_key(&rng, g->p.seed, (uint64_t)j, 0, ST_TARGET);
        c[0] = cycle[j % K];
        for (int q = 1; q < MAX_REGIONS; q++) {
            int32_t v;
            int distinct;
            do {
                v = (int32_t)uniform_int(&rng, 0, K - 1);
                distinct = 1;
                for (int e = 0; e < q; e++)
                    distinct &= v != c[e];
            } while (!distinct && K >= MAX_REGIONS);
            c[q] = v;
        }
        float *t = g->targets + (size_t)i * K;
        if (use_sl) {
            sfq_soft_target(&rng, c, use_msr ? g->classes_per_image : 1, K, g->p.sl_min, g->p.sl_max, t);
        } else {
            memset(t, 0, sizeof(float) * (size_t)K);
            t[c[0]] = 1.0f;
        }
        for (int q = 0; q < MAX_REGIONS; q++) {
            float *rt = g->region_targets + ((size_t)i * MAX_REGIONS + q) * K;
            if (use_sl) {
                sfq_soft_target(&rng, &c[q], 1, K, g->p.sl_min, g->p.sl_max, rt);
            } else {
                memset(rt, 0, sizeof(float) * (size_t)K);
                rt[c[q]] = 1.0f;
            }
        }
    }
    sfq_free(cycle);
    return SARDFQ_OK;
}

/* Where each block's read-back and priors live, and their grids. */
static void apa_layout(sardfq_generator *g)
{
    const sardfq_model_info *I = &g->info;
    size_t off = 0;
    for (int l = 0; l < g->depth; l++) {
        sfq_apa_block *k = &g->apa[l];
        if (g->m->info.arch == SARDFQ_ARCH_SWIN) {
            const int s = sfq_swin_block_stage(g->m, l);
            g->apa_gh[l] = I->grid_h >> s;
            g->apa_gw[l] = I->grid_w >> s;
            g->apa_cell[l] = I->patch_size << s;
            k->heads = I->stage_heads[s];
            k->tokens = g->apa_gh[l] * g->apa_gw[l];
            k->prefix = 0;
            k->attn_off = k->prior_off = off;
            off += (size_t)k->heads * k->tokens;
        } else {
            g->apa_gh[l] = I->grid_h;
            g->apa_gw[l] = I->grid_w;
            g->apa_cell[l] = I->patch_size;
            k->heads = g->heads;
            k->tokens = g->N;
            k->prefix = g->P;
            k->attn_off = (size_t)l * g->heads * g->N;
            k->prior_off = (size_t)l * g->heads * g->G;
        }
    }
}

/* One prior per (image, block, head), from a sampler per image (and, for
 * Swin, per stage: each stage's grid) seeded by the key (seed, image,
 * stage, ST_PRIOR); within it the priors come in (block, head) order. */
static sardfq_status draw_priors(sardfq_generator *g, sardfq_prior_params *pp)
{
    const sardfq_model_info *I = &g->info;
    const int swin = g->m->info.arch == SARDFQ_ARCH_SWIN, stages = swin ? I->num_stages : 1;
    sardfq_status s = SARDFQ_OK;
    for (int i = 0; i < g->n && !s; i++)
        for (int st = 0; st < stages && !s; st++) {
            sardfq_prior *pr = NULL;
            pp->seed = sfq_rng_key(g->p.seed, (uint64_t)g->base + (uint64_t)i, (uint64_t)st, ST_PRIOR);
            if ((s = sardfq_prior_create(I->grid_h >> st, I->grid_w >> st, pp, &pr)))
                return s;
            float *out = g->priors + (size_t)i * g->prior_img;
            if (!swin)
                s = sardfq_prior_sample(pr, g->depth * g->heads, out);
            for (int l = 0; swin && l < g->depth && !s; l++)
                if (sfq_swin_block_stage(g->m, l) == st)
                    s = sardfq_prior_sample(pr, g->apa[l].heads, out + g->apa[l].prior_off);
            sardfq_prior_free(pr);
        }
    return s;
}

/* A generator for images first_image .. first_image + n_images - 1 of a set
 * of total_images (sardfq_generator_create: the whole set). */
static sardfq_status create(const sardfq_model *m, const sardfq_generator_params *params, int first_image,
                            int total_images, sardfq_generator **out, const char *fn)
{
    if (!m || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: %s is NULL", fn, !m ? "model" : "out");
    if (m->q)
        return sfq_fail(SARDFQ_E_UNSUPPORTED, "%s: synthesis needs the floating-point model (this one is quantized)",
                        fn);
    sardfq_generator_params p;
    sardfq_status s = read_params(params, &p);
    if (s)
        return s;
    if (total_images < 0) /* the whole set */
        total_images = first_image + p.n_images;
    if (first_image < 0 || first_image > (1 << 30) || total_images > (1 << 30) ||
        (int64_t)first_image + p.n_images > total_images)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "%s: images %d..%lld are not a shard of a set of %d (need 0 <= first_image, "
                        "first_image + n_images <= total_images <= 2^30)",
                        fn, first_image, (long long)first_image + p.n_images - 1, total_images);
    sardfq_generator *g = sfq_alloc_zero(sizeof *g);
    if (!g)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    g->m = m;
    g->p = p;
    g->info = m->info;
    const sardfq_model_info *I = &g->info;
    g->first = first_image;
    g->count = p.n_images;
    g->set_n = total_images;
    if (p.method == SARDFQ_SYNTH_NOISE) { /* no coupling: the shard alone */
        g->base = g->first;
        g->n = g->count;
    } else { /* whole groups */
        g->base = g->first / GROUP * GROUP;
        const int64_t end = ((int64_t)g->first + g->count + GROUP - 1) / GROUP * GROUP;
        g->n = (int)((end < g->set_n ? end : g->set_n) - g->base);
    }
    g->groups = (g->n + GROUP - 1) / GROUP;
    g->C = I->in_chans;
    g->H = I->img_h;
    g->W = I->img_w;
    g->K = I->num_classes;
    g->G = I->grid_h * I->grid_w;
    g->N = I->num_tokens;
    g->P = I->num_prefix_tokens;
    g->D = I->embed_dim;
    g->depth = I->depth;
    g->heads = I->num_heads;
    g->img = (size_t)g->C * g->H * g->W;
    g->classes_per_image = g->K < MAX_REGIONS ? g->K : MAX_REGIONS;
    g->mb = p.micro_batch;
    g->total = p.method == SARDFQ_SYNTH_NOISE ? 0 : p.iters;
    for (int c = 0; c < g->C; c++) {
        g->lo[c] = -I->mean[c] / I->std[c];
        g->hi[c] = (1.0f - I->mean[c]) / I->std[c];
    }
    const size_t n = (size_t)g->n, mb = (size_t)g->mb, att = (size_t)g->depth * g->heads;
    g->att_img = (size_t)I->attention_floats;
    g->prior_img = m->info.arch == SARDFQ_ARCH_SWIN ? g->att_img : att * g->G;
#define ALLOC(ptr, count)                                          \
    do {                                                           \
        (ptr) = sfq_alloc_array((size_t)(count), sizeof(*(ptr)));  \
        if (!(ptr))                                                \
            goto nomem;                                            \
    } while (0)
    ALLOC(g->x, n * g->img);
    ALLOC(g->am, n * g->img);
    ALLOC(g->av, n * g->img);
    ALLOC(g->targets, n * g->K);
    ALLOC(g->region_targets, n * MAX_REGIONS * g->K);
    ALLOC(g->classes, n * MAX_REGIONS);
    ALLOC(g->priors, n * g->prior_img);
    ALLOC(g->apa, g->depth);
    ALLOC(g->apa_gh, g->depth);
    ALLOC(g->apa_gw, g->depth);
    ALLOC(g->apa_cell, g->depth);
    ALLOC(g->items, GROUP * (1 + MAX_REGIONS));
    ALLOC(g->tau, g->groups);
    ALLOC(g->grad, n * g->img);
    ALLOC(g->batch, mb * g->img);
    ALLOC(g->dbatch, mb * g->img);
    ALLOC(g->logits, mb * g->K);
    ALLOC(g->dlogits, mb * g->K);
    ALLOC(g->attn, mb * g->att_img);
    ALLOC(g->dattn, mb * g->att_img);
    ALLOC(g->prior_aug, g->prior_img);
    if (p.method == SARDFQ_SYNTH_PSAQ)
        ALLOC(g->dao, sfq_ao_offset(m, (int)mb, g->depth));
#undef ALLOC
    apa_layout(g);
    memset(g->am, 0, sizeof(float) * n * g->img);
    memset(g->av, 0, sizeof(float) * n * g->img);
    /* initial noise N(0, 1) in normalised space, image by image */
    for (size_t i = 0; i < n; i++) {
        sfq_rng r;
        sfq_rng_seed_key(&r, p.seed, (uint64_t)g->base + i, 0, ST_NOISE);
        for (size_t j = 0; j < g->img; j++)
            g->x[i * g->img + j] = (float)sfq_rng_normal(&r);
    }
    if ((s = init_targets(g)))
        goto fail;
    /* tau per group at PSAQ-ViT's scale (32 x 3 x 224 x 224), scaled by
     * sqrt(elements of the group) */
    for (int k = 0; k < g->groups; k++) {
        const int ng = g->n - k * GROUP < GROUP ? g->n - k * GROUP : GROUP;
        const double scale = sqrt((double)ng * g->img / (32.0 * 3 * 224 * 224));
        sfq_rng r;
        sfq_rng_seed_key(&r, p.seed, (uint64_t)(g->base / GROUP + k), 0, ST_TAU);
        g->tau[k] = (float)((p.tv_min + (p.tv_max - p.tv_min) * sfq_rng_uniform(&r)) * scale);
    }
    if (p.method != SARDFQ_SYNTH_NOISE) {
        sardfq_prior_params pp;
        sardfq_prior_default_params(&pp);
        pp.kind = p.prior_kind;
        pp.max_components = p.prior_components;
        pp.scale_min = p.prior_scale_min;
        pp.scale_max = p.prior_scale_max;
        if ((s = draw_priors(g, &pp)))
            goto fail;
    }
    if ((s = sardfq_state_create(m, &g->state)))
        goto fail;
    *out = g;
    return SARDFQ_OK;
nomem:
    s = sfq_fail(SARDFQ_E_NOMEM, "%s: out of memory for %d images", fn, g->n);
fail:
    sardfq_generator_free(g);
    return s;
}

SARDFQ_API sardfq_status sardfq_generator_create(const sardfq_model *m, const sardfq_generator_params *p,
                                                 sardfq_generator **out)
{
    return create(m, p, 0, -1, out, "sardfq_generator_create");
}

SARDFQ_API sardfq_status sardfq_generator_create_shard(const sardfq_model *m, const sardfq_generator_params *p,
                                                       int first_image, int total_images, sardfq_generator **out)
{
    return create(m, p, first_image, total_images, out, "sardfq_generator_create_shard");
}

SARDFQ_API sardfq_status sardfq_generator_set_priors(sardfq_generator *g, const float *priors, size_t count)
{
    if (!g || !priors)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_generator_set_priors: %s is NULL", !g ? "generator" : "priors");
    size_t need = (size_t)g->count * g->prior_img;
    if (count != need)
        return sfq_fail(SARDFQ_E_SHAPE, "sardfq_generator_set_priors: %zu floats given, %zu expected "
                                        "(n_images x %zu)", count, need, g->prior_img);
    for (size_t i = 0; i < need; i++)
        if (!isfinite(priors[i]))
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_generator_set_priors: value %zu is not finite", i);
    memcpy(g->priors + (size_t)(g->first - g->base) * g->prior_img, priors, need * sizeof(float));
    return SARDFQ_OK;
}

void sfq_jitter(const float *src, float *dst, int h, int w, int dy, int dx, int flip)
{
    for (int y = 0; y < h; y++) {
        const float *row = src + (size_t)(((y - dy) % h + h) % h) * w;
        for (int x = 0; x < w; x++) {
            int xs = flip ? w - 1 - x : x;
            dst[(size_t)y * w + x] = row[((xs - dx) % w + w) % w];
        }
    }
}

void sfq_jitter_adjoint(const float *ddst, float *dsrc, int h, int w, int dy, int dx, int flip)
{
    for (int y = 0; y < h; y++) {
        float *row = dsrc + (size_t)(((y - dy) % h + h) % h) * w;
        for (int x = 0; x < w; x++) {
            int xs = flip ? w - 1 - x : x;
            row[((xs - dx) % w + w) % w] += ddst[(size_t)y * w + x];
        }
    }
}

static float lr_at(const sardfq_generator *g, int step)
{
    const int len = g->total / g->p.rounds > 0 ? g->total / g->p.rounds : 1;
    int r = step / len;
    if (r >= g->p.rounds)
        r = g->p.rounds - 1;
    const int it = step - r * len;
    const int round_len = r == g->p.rounds - 1 ? g->total - r * len : len;
    const int warm = g->p.warmup < round_len ? g->p.warmup : round_len - 1;
    if (it < warm)
        return g->p.lr * (float)(it + 1) / (float)warm;
    const double e = it - warm, es = round_len - warm;
    return (float)(0.5 * (1.0 + cos(M_PI * e / (es > 0 ? es : 1))) * g->p.lr);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Build this step's items of the group of local images [g0, g1): whole
 * images, then MSR regions (each image's drawn from the key (seed, image,
 * step, ST_MSR)). */
static int make_items(sardfq_generator *g, int g0, int g1)
{
    int count = 0;
    for (int i = g0; i < g1; i++)
        g->items[count++] = (item){i, -1, 0, 0, g->H, g->W};
    if (g->replay) {
        for (int k = 0; k < g->replay->n_regions; k++) {
            const int32_t *r = g->replay->regions + (size_t)k * 6;
            if (r[0] >= g0 && r[0] < g1)
                g->items[count++] = (item){r[0], r[1], r[2], r[3], r[4], r[5]};
        }
        return count;
    }
    if (g->p.method != SARDFQ_SYNTH_SARDFQ || !g->p.use_msr)
        return count;
    const int qh = g->H / 2, qw = g->W / 2;
    for (int i = g0; i < g1; i++) {
        sfq_rng rng;
        sfq_rng_seed_key(&rng, g->p.seed, (uint64_t)g->base + (uint64_t)i, (uint64_t)g->step, ST_MSR);
        int quads[MAX_REGIONS] = {0, 1, 2, 3};
        shuffle(&rng, quads, MAX_REGIONS);
        int m = uniform_int(&rng, 1, g->p.msr_regions);
        for (int k = 0; k < m; k++) {
            int q = quads[k];
            int h = uniform_int(&rng, qh / 2 > 1 ? qh / 2 : 1, qh > 1 ? qh : 1);
            int w = uniform_int(&rng, qw / 2 > 1 ? qw / 2 : 1, qw > 1 ? qw : 1);
            int y0 = (q / 2) * qh + uniform_int(&rng, 0, qh - h);
            int x0 = (q % 2) * qw + uniform_int(&rng, 0, qw - w);
            g->items[count++] = (item){i, q, y0, x0, h, w};
        }
    }
    return count;
}

static sardfq_status step(sardfq_generator *g, sardfq_synth_report *report);

/* A step that fails (e.g. out of memory) leaves no trace: the images and
 * Adam moments change only at its very end, and its draws are keyed by the
 * step number, so retrying gives what one clean run gives. */
SARDFQ_API sardfq_status sardfq_generator_step(sardfq_generator *g, sardfq_synth_report *report)
{
    if (!g)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_generator_step: generator is NULL");
    return step(g, report);
}

/* Sums over groups of each group's loss terms (the report is their mean). */
typedef struct {
    double apa, head, ce, msr, pse, prob, tv, t_model;
} group_sums;

/* One step's work on coupling group grp (local images [g0, g0 + ng)): its
 * jitter, its items in micro-batches, the losses and their gradients into
 * g->grad, and its TV term; lim is the jitter range of the round. */
static sardfq_status step_group(sardfq_generator *g, int grp, int lim, group_sums *sum)
{
    const sardfq_generator_params *p = &g->p;
    const int sardfq = p->method == SARDFQ_SYNTH_SARDFQ, psaq = p->method == SARDFQ_SYNTH_PSAQ;
    const int use_apa = sardfq && p->use_apa && p->apa_weight > 0;
    const int use_head = p->method != SARDFQ_SYNTH_NOISE && g->head_align > 0;
    const int use_attn = use_apa || use_head;
    const int n = g->n, K = g->K, C = g->C, H = g->H, W = g->W;
    const size_t att = g->att_img;
    const int g0 = grp * GROUP, ng = n - g0 < GROUP ? n - g0 : GROUP;
    /* 1. jitter for this step and group */
    int dy, dx, flip;
    if (g->replay) {
        dy = g->replay->dy;
        dx = g->replay->dx;
        flip = g->replay->flip != 0;
    } else {
        sfq_rng rng;
        sfq_rng_seed_key(&rng, p->seed, (uint64_t)(g->base / GROUP + grp), (uint64_t)g->step, ST_JITTER);
        dy = uniform_int(&rng, -lim, lim);
        dx = uniform_int(&rng, -lim, lim);
        flip = sfq_rng_uniform(&rng) < 0.5;
    }

    /* 2. items */
    const int n_items = make_items(g, g0, g0 + ng);
    int n_regions = n_items - ng;
    double L_apa = 0, L_head = 0, L_ce = 0, L_msr = 0, L_pse = 0, prob = 0;

    /* 3. micro-batches */
    for (int start = 0; start < n_items; start += g->mb) {
        const int B = n_items - start < g->mb ? n_items - start : g->mb;
        for (int b = 0; b < B; b++) {
            const item *it = &g->items[start + b];
            const float *src = g->x + (size_t)it->image * g->img;
            float *dst = g->batch + (size_t)b * g->img;
            if (it->region < 0)
                for (int c = 0; c < C; c++)
                    sfq_jitter(src + (size_t)c * H * W, dst + (size_t)c * H * W, H, W, dy, dx, flip);
            else
                sfq_crop_resize(src, C, H, W, it->y0, it->x0, it->h, it->w, dst);
        }
        uint32_t flags = SARDFQ_FORWARD_BACKWARD | (use_attn ? SARDFQ_FORWARD_ATTENTION : 0) |
                         (psaq ? SFQ_FORWARD_KEEP_AO : 0);
        double tm = now();
        sardfq_status s = sfq_forward_state(g->m, g->state, g->batch, B, flags, g->logits);
        sum->t_model += now() - tm;
        if (s)
            return s;
        /* losses on this micro-batch */
        memset(g->dattn, 0, sizeof(float) * (size_t)B * att);
        for (int b = 0; b < B; b++) {
            const item *it = &g->items[start + b];
            const float *target = it->region < 0
                                      ? g->targets + (size_t)it->image * K
                                      : g->region_targets + ((size_t)it->image * MAX_REGIONS + it->region) * K;
            const float wgt = it->region < 0 ? 1.0f / (float)ng : 1.0f / (float)n_regions;
            float *dl = g->dlogits + (size_t)b * K;
            double ce = sfq_loss_soft_ce(g->logits + (size_t)b * K, target, 1, K, dl);
            for (int k = 0; k < K; k++)
                dl[k] *= wgt;
            if (it->region < 0) {
                L_ce += ce / ng;
                /* probability of the first target class */
                const float *z = g->logits + (size_t)b * K;
                float mx = z[0];
                for (int k = 1; k < K; k++)
                    mx = z[k] > mx ? z[k] : mx;
                double den = 0;
                for (int k = 0; k < K; k++)
                    den += exp((double)z[k] - mx);
                prob += exp((double)z[g->classes[(size_t)it->image * MAX_REGIONS]] - mx) / den / ng;
            } else {
                L_msr += ce / n_regions;
            }
        }
        if (use_attn) {
            if ((s = sardfq_state_get_attention(g->state, g->attn, (size_t)B * att)))
                return s;
        }
        for (int b = 0; use_attn && b < B; b++) {
            const item *it = &g->items[start + b];
            if (it->region >= 0)
                continue;
            float *da = g->dattn + (size_t)b * att;
            if (use_apa) {
                const float *pr = g->priors + (size_t)it->image * g->prior_img;
                for (int l = 0; l < g->depth; l++) {
                    const sfq_apa_block *k = &g->apa[l];
                    const int gh = g->apa_gh[l], gw = g->apa_gw[l], cell = g->apa_cell[l];
                    const int gdy = (int)lround((double)dy / cell), gdx = (int)lround((double)dx / cell);
                    for (int h = 0; h < k->heads; h++) {
                        const size_t o = k->prior_off + (size_t)h * gh * gw;
                        sfq_jitter(pr + o, g->prior_aug + o, gh, gw, gdy, gdx, flip);
                        if (g->m->info.arch == SARDFQ_ARCH_SWIN)
                            sfq_swin_apa_target(g->m, l, g->prior_aug + o);
                    }
                }
                L_apa += sfq_loss_apa_blocks(g->attn + (size_t)b * att, g->prior_aug, g->depth, g->apa, 1.0, da) / ng;
                const float wgt = p->apa_weight / (float)ng;
                for (size_t j = 0; j < att; j++)
                    da[j] *= wgt;
            }
            if (use_head) /* weighted by head_align / ng into da, reported unweighted */
                L_head += sfq_loss_head_align(g->attn + (size_t)b * att, g->depth, g->apa,
                                              (double)g->head_align / ng, g->head_align_form, da) /
                          g->head_align;
        }
        if (psaq) {
            /* L_PSE = -sum_l H_l, averaged over the group's images (weight
             * B/ng per micro-batch) */
            for (int l = 0; l < g->depth; l++) {
                float *dao = g->dao + sfq_ao_offset(g->m, B, l);
                const size_t blk = sfq_ao_offset(g->m, B, l + 1) - sfq_ao_offset(g->m, B, l);
                int windows, tokens, heads, hd;
                sfq_block_attention_shape(g->m, l, &windows, &tokens, &heads, &hd);
                /* PSAQ-ViT drops token 0 only (also for a distilled DeiT);
                 * on Swin, token 0 of every window */
                double pse = sfq_loss_pse_windows(sfq_state_attn_output(g->state, l), B, windows, tokens, heads,
                                                  hd, 1, dao);
                if (isnan(pse))
                    return sfq_fail(SARDFQ_E_NOMEM, "out of memory in the patch-similarity loss");
                L_pse += pse * B / ng;
                const float wgt = (float)B / (float)ng;
                for (size_t j = 0; j < blk; j++)
                    dao[j] *= wgt;
            }
        }
        tm = now();
        s = sfq_backward_state(g->m, g->state, g->dlogits, use_attn ? g->dattn : NULL, psaq ? g->dao : NULL,
                               g->dbatch);
        sum->t_model += now() - tm;
        if (s)
            return s;
        for (int b = 0; b < B; b++) {
            const item *it = &g->items[start + b];
            float *gi = g->grad + (size_t)it->image * g->img;
            const float *d = g->dbatch + (size_t)b * g->img;
            if (it->region < 0)
                for (int c = 0; c < C; c++)
                    sfq_jitter_adjoint(d + (size_t)c * H * W, gi + (size_t)c * H * W, H, W, dy, dx, flip);
            else
                sfq_crop_resize_adjoint(d, C, H, W, it->y0, it->x0, it->h, it->w, gi);
        }
    }
    double tv = 0;
    const float tau = g->replay ? g->replay->tau : g->tau[grp];
    sum->tv += sfq_loss_tv(g->x + (size_t)g0 * g->img, ng, C, H, W, tau, p->tv_weight,
                        g->grad + (size_t)g0 * g->img, &tv);
    sum->apa += L_apa;
    sum->head += L_head;
    sum->ce += L_ce;
    sum->msr += L_msr;
    sum->pse += L_pse;
    sum->prob += prob;
    return SARDFQ_OK;
}

static sardfq_status step(sardfq_generator *g, sardfq_synth_report *report)
{
    if (!g)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_generator_step: generator is NULL");
    if (report && report->struct_size < sizeof *report)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_synth_report.struct_size must be set");
    if (g->step >= g->total)
        return sfq_fail(SARDFQ_E_STATE, "sardfq_generator_step: all %d steps are done", g->total);
    const double t0 = now();
    const sardfq_generator_params *p = &g->p;
    const int use_apa = p->method == SARDFQ_SYNTH_SARDFQ && p->use_apa && p->apa_weight > 0;
    const int n = g->n, C = g->C, H = g->H, W = g->W;
    const float lr = lr_at(g, g->step);

    const int round = g->step / (g->total / p->rounds > 0 ? g->total / p->rounds : 1);
    const int lim = (int)lround((round + 1) * (double)W / 15.0);
    memset(g->grad, 0, sizeof(float) * (size_t)n * g->img);
    group_sums sum = {0};
    for (int grp = 0; grp < g->groups; grp++) {
        sardfq_status s = step_group(g, grp, lim, &sum);
        if (s)
            return s;
    }
    const double L_apa = sum.apa / g->groups, L_ce = sum.ce / g->groups, L_msr = sum.msr / g->groups,
                 L_pse = sum.pse / g->groups, L_tv = sum.tv / g->groups, prob = sum.prob / g->groups,
                 L_head = sum.head / g->groups,
                 t_model = sum.t_model;

    /* 4. Adam and the clamp */
    g->step++;
    const double bc1 = 1.0 - pow(p->beta1, g->step), bc2 = 1.0 - pow(p->beta2, g->step);
    const float step_size = (float)(lr / bc1), inv_bc2 = (float)(1.0 / sqrt(bc2));
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++) {
            const size_t off = (size_t)i * g->img + (size_t)c * H * W;
            const float lo = g->lo[c], hi = g->hi[c];
            for (size_t j = off; j < off + (size_t)H * W; j++) {
                const float gr = g->grad[j];
                g->am[j] = p->beta1 * g->am[j] + (1 - p->beta1) * gr;
                g->av[j] = p->beta2 * g->av[j] + (1 - p->beta2) * gr * gr;
                float v = g->x[j] - step_size * g->am[j] / (sqrtf(g->av[j]) * inv_bc2 + p->adam_eps);
                g->x[j] = v < lo ? lo : v > hi ? hi : v;
            }
        }
    if (report) {
        report->step = g->step;
        report->total = g->total;
        report->lr = lr;
        report->apa = (float)L_apa;
        report->ce = (float)L_ce;
        report->msr = (float)L_msr;
        report->tv = (float)L_tv;
        report->pse = (float)L_pse;
        report->loss = (float)((use_apa ? p->apa_weight * L_apa : 0) + g->head_align * L_head + L_ce + L_msr + L_pse +
                               p->tv_weight * L_tv);
        report->target_prob = (float)prob;
        report->seconds = (float)(now() - t0);
        report->model_seconds = (float)t_model;
    }
    return SARDFQ_OK;
}

sardfq_status sfq_generator_replay_step(sardfq_generator *g, const sfq_generator_replay *r,
                                        sardfq_synth_report *report)
{
    if (!g || !r || !r->images || !r->adam_m || !r->adam_v || !r->classes || !r->targets || !r->region_targets)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_generator_replay_step: NULL argument");
    if (r->steps_done < 0 || r->steps_done >= g->total)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_generator_replay_step: steps_done %d not in 0..%d",
                        r->steps_done, g->total - 1);
    const int msr = g->p.method == SARDFQ_SYNTH_SARDFQ && g->p.use_msr;
    if (r->n_regions < 0 || r->n_regions > (msr ? g->n * MAX_REGIONS : 0) || (r->n_regions && !r->regions))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_generator_replay_step: %d regions", r->n_regions);
    for (int k = 0; k < r->n_regions; k++) {
        const int32_t *q = r->regions + (size_t)k * 6;
        if (q[0] < 0 || q[0] >= g->n || (k && q[0] < q[-6]) || q[1] < 0 || q[1] >= MAX_REGIONS || q[4] < 1 ||
            q[5] < 1 || q[2] < 0 || q[3] < 0 || q[2] + q[4] > g->H || q[3] + q[5] > g->W)
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_generator_replay_step: region %d is invalid", k);
    }
    for (size_t i = 0; i < (size_t)g->n * MAX_REGIONS; i++)
        if (r->classes[i] < 0 || r->classes[i] >= g->K)
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_generator_replay_step: class %d", (int)r->classes[i]);
    const size_t px = (size_t)g->n * g->img;
    memcpy(g->x, r->images, px * sizeof(float));
    memcpy(g->am, r->adam_m, px * sizeof(float));
    memcpy(g->av, r->adam_v, px * sizeof(float));
    memcpy(g->classes, r->classes, (size_t)g->n * MAX_REGIONS * sizeof(int32_t));
    memcpy(g->targets, r->targets, (size_t)g->n * g->K * sizeof(float));
    memcpy(g->region_targets, r->region_targets, (size_t)g->n * MAX_REGIONS * g->K * sizeof(float));
    g->step = r->steps_done;
    g->replay = r;
    sardfq_status s = step(g, report);
    g->replay = NULL;
    if (!s && r->grad)
        memcpy(r->grad, g->grad, px * sizeof(float));
    return s;
}

SARDFQ_API sardfq_status sardfq_generator_run(sardfq_generator *g, sardfq_synth_report *report)
{
    if (!g)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_generator_run: generator is NULL");
    sardfq_synth_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    while (g->step < g->total) {
        sardfq_status s = sardfq_generator_step(g, &r);
        if (s)
            return s;
        if (g->p.progress && g->p.progress(g->p.user_data, g->step, g->total, "synth"))
            return sfq_fail(SARDFQ_E_CANCELLED, "synthesis cancelled at step %d of %d", g->step, g->total);
    }
    if (report) {
        if (report->struct_size < sizeof r)
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_synth_report.struct_size must be set");
        *report = r;
    }
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_generator_set_head_align(sardfq_generator *g, float weight)
{
    if (!g)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_generator_set_head_align: generator is NULL");
    if (!(weight >= 0.0f) || !isfinite(weight))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_generator_set_head_align: weight must be finite and >= 0 (got %g)",
                        (double)weight);
    g->head_align = weight;
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_generator_set_head_align_form(sardfq_generator *g, sardfq_head_align_form form)
{
    if (!g)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_generator_set_head_align_form: generator is NULL");
    if (form != SARDFQ_HEAD_ALIGN_COSINE && form != SARDFQ_HEAD_ALIGN_SSIM)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_generator_set_head_align_form: form must be SARDFQ_HEAD_ALIGN_COSINE or _SSIM (got %d)",
                        (int)form);
    g->head_align_form = form == SARDFQ_HEAD_ALIGN_SSIM ? SFQ_HEAD_ALIGN_SSIM : SFQ_HEAD_ALIGN_COSINE;
    return SARDFQ_OK;
}

static sardfq_status copy_out(const sardfq_generator *g, const float *src, size_t need, float *out, size_t count,
                              const char *fn)
{
    if (!g || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: %s is NULL", fn, !g ? "generator" : "out");
    if (count < need)
        return sfq_fail(SARDFQ_E_SHAPE, "%s: out holds %zu floats, %zu needed", fn, count, need);
    memcpy(out, src, need * sizeof(float));
    return SARDFQ_OK;
}

SARDFQ_API sardfq_status sardfq_generator_get_images(const sardfq_generator *g, float *out, size_t count)
{
    return copy_out(g, g ? g->x + (size_t)(g->first - g->base) * g->img : NULL, g ? (size_t)g->count * g->img : 0,
                    out, count, "sardfq_generator_get_images");
}

SARDFQ_API sardfq_status sardfq_generator_get_targets(const sardfq_generator *g, float *out, size_t count)
{
    return copy_out(g, g ? g->targets + (size_t)(g->first - g->base) * g->K : NULL, g ? (size_t)g->count * g->K : 0,
                    out, count,
                    "sardfq_generator_get_targets");
}
