/* loss_ce.c - soft-label cross-entropy and soft targets (see losses.h). */
#include "losses.h"

#include <math.h>

double sfq_loss_soft_ce(const float *logits, const float *targets, int B, int K, float *dlogits)
{
    if (B <= 0 || K <= 0)
        return 0.0;
    double loss = 0.0;
    const double invB = 1.0 / B;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        const float *t = targets + (size_t)b * K;
        double mx = z[0];
        for (int k = 1; k < K; k++)
            if (z[k] > mx)
                mx = z[k];
        double se = 0.0, st = 0.0, stz = 0.0;
        for (int k = 0; k < K; k++) {
            se += exp((double)z[k] - mx);
            st += t[k];
            stz += (double)t[k] * ((double)z[k] - mx);
        }
        const double lse = log(se); /* log sum exp(z - mx) */
        /* -sum_k t_k (z_k - mx - lse) */
        loss += st * lse - stz;
        if (dlogits) {
            /* dL/dz_k = (softmax_k * sum(t) - t_k) / B */
            float *d = dlogits + (size_t)b * K;
            const double inv = 1.0 / se;
            for (int k = 0; k < K; k++)
                d[k] = (float)((exp((double)z[k] - mx) * inv * st - t[k]) * invB);
        }
    }
    return loss * invB;
}

void sfq_soft_target(sfq_rng *r, const int32_t *classes, int m, int K, float lo, float hi,
                     float *target)
{
    if (K <= 0)
        return;
    for (int k = 0; k < K; k++)
        target[k] = 0.0f;
    for (int i = 0; i < m; i++) {
        const int32_t c = classes[i];
        const double u = sfq_rng_uniform(r);
        if (c >= 0 && c < K)
            target[c] = (float)(lo + (hi - (double)lo) * u);
    }
    double mx = target[0];
    for (int k = 1; k < K; k++)
        if (target[k] > mx)
            mx = target[k];
    double s = 0.0;
    for (int k = 0; k < K; k++)
        s += exp((double)target[k] - mx);
    const double inv = 1.0 / s;
    for (int k = 0; k < K; k++)
        target[k] = (float)(exp((double)target[k] - mx) * inv);
}
