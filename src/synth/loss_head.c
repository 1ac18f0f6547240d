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

/* 1 - SSIM(u, v) over G values as one window (population statistics,
 * constants C1 = 0.01^2, C2 = 0.03^2 of a data range of 1, that of a
 * probability) and, with du/dv, += c * its gradient:
 *   SSIM = (2 mu_u mu_v + C1) (2 s_uv + C2) / ((mu_u^2 + mu_v^2 + C1) (s_uu + s_vv + C2)) */
static double one_minus_ssim(const float *u, const float *v, int G, double c, float *du, float *dv)
{
    const double C1 = 1e-4, C2 = 9e-4;
    double mu = 0, mv = 0;
    for (int t = 0; t < G; t++) {
        mu += u[t];
        mv += v[t];
    }
    mu /= G;
    mv /= G;
    double suu = 0, svv = 0, suv = 0;
    for (int t = 0; t < G; t++) {
        const double a = u[t] - mu, b = v[t] - mv;
        suu += a * a;
        svv += b * b;
        suv += a * b;
    }
    suu /= G;
    svv /= G;
    suv /= G;
    const double A = 2 * mu * mv + C1, B = 2 * suv + C2, C = mu * mu + mv * mv + C1, D = suu + svv + C2;
    const double S = A * B / (C * D);
    if (du) {
        /* dS = S (dA/A + dB/B - dC/C - dD/D); per element of u:
         * dA = 2 mv/G, dB = 2 (v_t - mv)/G, dC = 2 mu/G, dD = 2 (u_t - mu)/G */
        const double k = -c * S * 2.0 / G;
        const double cu = k * (mv / A - mu / C), cv = k * (mu / A - mv / C);
        for (int t = 0; t < G; t++) {
            const double a = u[t] - mu, b = v[t] - mv;
            du[t] += (float)(cu + k * (b / B - a / D));
            dv[t] += (float)(cv + k * (a / B - b / D));
        }
    }
    return 1.0 - S;
}

double sfq_loss_head_align(const float *attn, int depth, const sfq_apa_block *blk, double scale, int form,
                           float *dattn)
{
    double (*pair)(const float *, const float *, int, double, float *, float *) =
        form == SFQ_HEAD_ALIGN_SSIM ? one_minus_ssim : one_minus_cos;
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
                loss += w * pair(attn + a, attn + b, G, w, dattn ? dattn + a : NULL, dattn ? dattn + b : NULL);
            }
    }
    return loss;
}
