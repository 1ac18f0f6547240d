/* msr.c - bilinear region resize for Multi-Semantic Reinforcement and its
 * adjoint (see losses.h).
 *
 * PyTorch's rule (upsample_bilinear2d, align_corners=False, size given so
 * scale = in / out): for output index o, s = max(0, (o + 0.5) * in / out -
 * 0.5), i0 = floor(s), i1 = min(i0 + 1, in - 1), lambda = s - i0, and the
 * value is (1 - lambda) v[i0] + lambda v[i1], separately along rows and
 * columns (rows blended last, as PyTorch does). Weights are computed in
 * double and applied in float.
 *
 * Separable evaluation: output columns are processed in chunks of CHUNK
 * (column taps on the stack); within a chunk each source row is resized
 * horizontally once into one of two cached rows and output rows are vertical
 * blends of the cached rows (rows only move forward, so two suffice). The
 * adjoint runs the same schedule backwards: vertical scatter into two
 * cached rows, each scattered horizontally into dsrc when it is retired. */
#include "losses.h"

#include <string.h>

#define CHUNK 256

typedef struct {
    int i0, i1;
    float l0, l1;
} tap;

static tap tap_of(int o, int in, int out)
{
    const double scale = (double)in / out;
    double s = (o + 0.5) * scale - 0.5;
    if (s < 0)
        s = 0;
    int i0 = (int)s;
    if (i0 > in - 1)
        i0 = in - 1;
    double lam = s - i0;
    if (lam > 1)
        lam = 1;
    tap t;
    t.i0 = i0;
    t.i1 = i0 < in - 1 ? i0 + 1 : i0;
    t.l1 = (float)lam;
    t.l0 = (float)(1.0 - lam);
    return t;
}

static int region_ok(int C, int H, int W, int y0, int x0, int h, int w)
{
    return C > 0 && H > 0 && W > 0 && h > 0 && w > 0 && y0 >= 0 && x0 >= 0 && y0 <= H - h &&
           x0 <= W - w;
}

/* Column taps of one chunk, split into arrays (source offsets relative to
 * the source row). */
typedef struct {
    int b0[CHUNK], b1[CHUNK];
    float l0[CHUNK], l1[CHUNK];
} coltaps;

static void fill_cols(coltaps *ct, int j0, int nj, int x0, int w, int W)
{
    for (int j = 0; j < nj; j++) {
        const tap t = tap_of(j0 + j, w, W);
        ct->b0[j] = x0 + t.i0;
        ct->b1[j] = x0 + t.i1;
        ct->l0[j] = t.l0;
        ct->l1[j] = t.l1;
    }
}

/* Two cached rows, identified by source row index (-1 = empty). */
typedef struct {
    int id[2];
    float buf[2][CHUNK];
} rowcache;

/* Slot for row r given that row `keep` is also needed: a slot already
 * holding r, else one not holding keep (*fresh = 1). */
static int slot_for(const rowcache *rc, int r, int keep, int *fresh)
{
    *fresh = 0;
    if (rc->id[0] == r)
        return 0;
    if (rc->id[1] == r)
        return 1;
    *fresh = 1;
    return (rc->id[0] == keep && keep != r) ? 1 : 0;
}

static void hresize(const float *row, const coltaps *ct, int nj, float *out)
{
    for (int j = 0; j < nj; j++)
        out[j] = ct->l0[j] * row[ct->b0[j]] + ct->l1[j] * row[ct->b1[j]];
}

void sfq_crop_resize(const float *src, int C, int H, int W, int y0, int x0, int h, int w,
                     float *dst)
{
    if (!region_ok(C, H, W, y0, x0, h, w))
        return;
    coltaps ct;
    rowcache rc;
    const size_t plane = (size_t)H * W;
    for (int j0 = 0; j0 < W; j0 += CHUNK) {
        const int nj = W - j0 < CHUNK ? W - j0 : CHUNK;
        fill_cols(&ct, j0, nj, x0, w, W);
        for (int c = 0; c < C; c++) {
            const float *sp = src + c * plane;
            rc.id[0] = rc.id[1] = -1;
            for (int i = 0; i < H; i++) {
                const tap ry = tap_of(i, h, H);
                int fresh;
                const int s0 = slot_for(&rc, ry.i0, ry.i1, &fresh);
                if (fresh) {
                    rc.id[s0] = ry.i0;
                    hresize(sp + (size_t)(y0 + ry.i0) * W, &ct, nj, rc.buf[s0]);
                }
                const int s1 = slot_for(&rc, ry.i1, ry.i0, &fresh);
                if (fresh) {
                    rc.id[s1] = ry.i1;
                    hresize(sp + (size_t)(y0 + ry.i1) * W, &ct, nj, rc.buf[s1]);
                }
                const float *top = rc.buf[s0], *bot = rc.buf[s1];
                const float a = ry.l0, b = ry.l1;
                float *d = dst + c * plane + (size_t)i * W + j0;
                for (int j = 0; j < nj; j++)
                    d[j] = a * top[j] + b * bot[j];
            }
        }
    }
}

static void hscatter(const float *acc, const coltaps *ct, int nj, float *row)
{
    for (int j = 0; j < nj; j++) {
        row[ct->b0[j]] += ct->l0[j] * acc[j];
        row[ct->b1[j]] += ct->l1[j] * acc[j];
    }
}

void sfq_crop_resize_adjoint(const float *ddst, int C, int H, int W, int y0, int x0, int h, int w,
                             float *dsrc)
{
    if (!region_ok(C, H, W, y0, x0, h, w))
        return;
    coltaps ct;
    rowcache rc;
    const size_t plane = (size_t)H * W;
    for (int j0 = 0; j0 < W; j0 += CHUNK) {
        const int nj = W - j0 < CHUNK ? W - j0 : CHUNK;
        fill_cols(&ct, j0, nj, x0, w, W);
        for (int c = 0; c < C; c++) {
            float *sp = dsrc + c * plane;
            rc.id[0] = rc.id[1] = -1;
            for (int i = 0; i < H; i++) {
                const tap ry = tap_of(i, h, H);
                int s[2];
                const int need[2] = {ry.i0, ry.i1};
                for (int k = 0; k < 2; k++) {
                    int fresh;
                    s[k] = slot_for(&rc, need[k], need[1 - k], &fresh);
                    if (fresh) {
                        /* retire the row held there, start an empty one */
                        if (rc.id[s[k]] >= 0)
                            hscatter(rc.buf[s[k]], &ct, nj, sp + (size_t)(y0 + rc.id[s[k]]) * W);
                        rc.id[s[k]] = need[k];
                        memset(rc.buf[s[k]], 0, (size_t)nj * sizeof(float));
                    }
                }
                const float *g = ddst + c * plane + (size_t)i * W + j0;
                float *top = rc.buf[s[0]];
                const float a = ry.l0, b = ry.l1;
                for (int j = 0; j < nj; j++)
                    top[j] += a * g[j];
                float *bot = rc.buf[s[1]];
                for (int j = 0; j < nj; j++)
                    bot[j] += b * g[j];
            }
            for (int k = 0; k < 2; k++)
                if (rc.id[k] >= 0)
                    hscatter(rc.buf[k], &ct, nj, sp + (size_t)(y0 + rc.id[k]) * W);
        }
    }
}
