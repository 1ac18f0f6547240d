/* loss_apa.c - Attention Priors Alignment loss (see losses.h). */
#include "losses.h"

#include <string.h>

double sfq_loss_apa(const float *attn, const float *prior, int B, int depth, int H, int N, int P,
                    float *dattn)
{
    const int G = N - P;
    const size_t row = (size_t)N;
    const size_t total = (size_t)B * depth * H * row;
    if (dattn && total)
        memset(dattn, 0, total * sizeof(float));
    if (B <= 0 || depth <= 0 || H <= 0 || G <= 0)
        return 0.0;
    const int first = depth / 2 > 1 ? depth / 2 : 1; /* 1-based first used block */
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        for (int l = first; l <= depth; l++) {
            /* d/d attn of (1/B)(l/depth)(1/G) sum_t e_t^2 is c * e_t with: */
            const double wl = (double)l / depth / ((double)B * G);
            const float c = (float)(2.0 * wl);
            for (int h = 0; h < H; h++) {
                const size_t r = (((size_t)b * depth + (l - 1)) * H + h);
                const float *a = attn + r * row + P;
                const float *p = prior + r * (size_t)G;
                float *d = dattn ? dattn + r * row + P : NULL;
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
                loss += wl * ((s0 + s1) + (s2 + s3));
                if (d)
                    for (t = 0; t < G; t++)
                        d[t] = c * (a[t] - p[t]);
            }
        }
    }
    return loss;
}
