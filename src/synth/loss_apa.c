/* loss_apa.c - Attention Priors Alignment loss (see losses.h). */
#include "losses.h"

#include <string.h>

/* sum_t (a[t] - p[t])^2 over G values, in four double partial sums; with
 * d, writes d[t] = c (a[t] - p[t]). */
static double row_sq_error(const float *a, const float *p, int G, float c, float *d)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int t = 0;
    for (; t + 4 <= G; t += 4) {
        const double e0 = (double)a[t] - p[t], e1 = (double)a[t + 1] - p[t + 1];
        const double e2 = (double)a[t + 2] - p[t + 2], e3 = (double)a[t + 3] - p[t + 3];
        s0 += e0 * e0;
        s1 += e1 * e1;
        s2 += e2 * e2;
        s3 += e3 * e3;
    }
    for (; t < G; t++) {
        const double e = (double)a[t] - p[t];
        s0 += e * e;
    }
    if (d)
        for (t = 0; t < G; t++)
            d[t] = c * (a[t] - p[t]);
    return (s0 + s1) + (s2 + s3);
}

/* 1-based first block the loss uses */
static int first_block(int depth) { return depth / 2 > 1 ? depth / 2 : 1; }

double sfq_loss_apa_blocks(const float *attn, const float *target, int depth, const sfq_apa_block *blk,
                           double scale, float *dattn)
{
    if (depth <= 0)
        return 0.0;
    if (dattn) {
        const sfq_apa_block *last = &blk[depth - 1];
        memset(dattn, 0, (last->attn_off + (size_t)last->heads * last->tokens) * sizeof(float));
    }
    double loss = 0.0;
    for (int l = first_block(depth); l <= depth; l++) {
        const sfq_apa_block *k = &blk[l - 1];
        const int G = k->tokens - k->prefix;
        if (G <= 0)
            continue;
        const double wl = (double)l / depth / G * scale;
        const float c = (float)(2.0 * wl);
        for (int h = 0; h < k->heads; h++) {
            const size_t a = k->attn_off + (size_t)h * k->tokens + k->prefix;
            loss += wl * row_sq_error(attn + a, target + k->prior_off + (size_t)h * G, G, c,
                                      dattn ? dattn + a : NULL);
        }
    }
    return loss;
}
