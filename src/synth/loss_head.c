/* loss_head.c - inter-head attention alignment (see losses.h). */
#include "losses.h"

#include <math.h>

/* 1 - cos(u, v) over G values and, with du/dv, += c * its gradient. */
static double one_minus_cos(const float *u, const float *v, int G, double c, float *du, float *dv)
{
    double uu = 0, vv = 0, uv = 0;
    for (int t = 0; t < G; t++) {
        uu += (double)u[t] * u[t];
        vv += (double)v[t] * v[t];
        uv += (double)u[t] * v[t];
    }
    const double nu = sqrt(uu) > 1e-12 ? sqrt(uu) : 1e-12, nv = sqrt(vv) > 1e-12 ? sqrt(vv) : 1e-12;
    const double cs = uv / (nu * nv);
    if (du) {
        /* d cos / du = v / (|u||v|) - cos u / |u|^2 (the clamp, when it
         * binds, gets no gradient through the norm) */
        const double a = c / (nu * nv), bu = sqrt(uu) > 1e-12 ? c * cs / uu : 0,
                     bv = sqrt(vv) > 1e-12 ? c * cs / vv : 0;
        for (int t = 0; t < G; t++) {
            du[t] -= (float)(a * v[t] - bu * u[t]);
            dv[t] -= (float)(a * u[t] - bv * v[t]);
        }
    }
    return 1.0 - cs;
}

double sfq_loss_head_align(const float *attn, int depth, const sfq_apa_block *blk, double scale, float *dattn)
{
    if (depth <= 0)
        return 0.0;
    double loss = 0.0;
    for (int l = 0; l < depth; l++) {
        const sfq_apa_block *k = &blk[l];
        const int H = k->heads, G = k->tokens - k->prefix;
        if (H < 2 || G <= 0)
            continue;
        const double w = scale / depth * 2.0 / ((double)H * (H - 1));
        for (int h = 0; h < H; h++)
            for (int h2 = h + 1; h2 < H; h2++) {
                const size_t a = k->attn_off + (size_t)h * k->tokens + k->prefix;
                const size_t b = k->attn_off + (size_t)h2 * k->tokens + k->prefix;
                loss += w * one_minus_cos(attn + a, attn + b, G, w, dattn ? dattn + a : NULL,
                                          dattn ? dattn + b : NULL);
            }
    }
    return loss;
}
