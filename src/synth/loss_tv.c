/* loss_tv.c - PSAQ-ViT's total-variation prior |TV - tau| (see losses.h).
 *
 * The four difference maps of one H x W plane (i = row, j = column):
 *   d1[i][j] = x[i][j]   - x[i][j+1]    i < H,   j < W-1
 *   d2[i][j] = x[i][j]   - x[i+1][j]    i < H-1, j < W
 *   d3[i][j] = x[i+1][j] - x[i][j+1]    i < H-1, j < W-1
 *   d4[i][j] = x[i][j]   - x[i+1][j+1]  i < H-1, j < W-1
 * TV = sum_k ||d_k||_2 over all planes of the batch. With s = sign(TV-tau)
 * and a_k = weight * s / ||d_k|| (0 when ||d_k|| = 0 or TV = tau, as
 * torch.norm's backward gives), the gradient at pixel (p, q) gathers
 *   a1 (d1[p][q] - d1[p][q-1]) + a2 (d2[p][q] - d2[p-1][q])
 * + a3 (d3[p-1][q] - d3[p][q-1]) + a4 (d4[p][q] - d4[p-1][q-1])
 * over the terms that exist. */
#include "losses.h"

#include <math.h>


#define LANES 8

/* Sums of squares of the four maps over one plane, added to acc[4]. */
SFQ_CLONES_AVX2 static void plane_sums(const float *x, int H, int W, double acc[4])
{
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    for (int i = 0; i < H; i++) {
        const float *r = x + (size_t)i * W;
        const float *n = i + 1 < H ? r + W : NULL;
        /* d1 on this row */
        float l1[LANES] = {0};
        int j = 0;
        for (; j + LANES <= W - 1; j += LANES)
            for (int l = 0; l < LANES; l++) {
                const float d = r[j + l] - r[j + l + 1];
                l1[l] += d * d;
            }
        double t1 = 0;
        for (; j < W - 1; j++) {
            const double d = (double)r[j] - r[j + 1];
            t1 += d * d;
        }
        for (int l = 0; l < LANES; l++)
            t1 += l1[l];
        s1 += t1;
        if (!n)
            continue;
        float l2[LANES] = {0}, l3[LANES] = {0}, l4[LANES] = {0};
        j = 0;
        for (; j + LANES <= W - 1; j += LANES)
            for (int l = 0; l < LANES; l++) {
                const float a = r[j + l] - n[j + l];
                const float c = n[j + l] - r[j + l + 1];
                const float e = r[j + l] - n[j + l + 1];
                l2[l] += a * a;
                l3[l] += c * c;
                l4[l] += e * e;
            }
        double t2 = 0, t3 = 0, t4 = 0;
        for (; j < W - 1; j++) {
            const double a = (double)r[j] - n[j];
            const double c = (double)n[j] - r[j + 1];
            const double e = (double)r[j] - n[j + 1];
            t2 += a * a;
            t3 += c * c;
            t4 += e * e;
        }
        if (W >= 1) {
            const double a = (double)r[W - 1] - n[W - 1];
            t2 += a * a;
        }
        for (int l = 0; l < LANES; l++) {
            t2 += l2[l];
            t3 += l3[l];
            t4 += l4[l];
        }
        s2 += t2;
        s3 += t3;
        s4 += t4;
    }
    acc[0] += s1;
    acc[1] += s2;
    acc[2] += s3;
    acc[3] += s4;
}

/* Gradient at one pixel, every boundary case handled. */
static float pixel_grad(const float *x, int H, int W, int p, int q, const float a[4])
{
#define X(i, j) x[(size_t)(i) * W + (j)]
    float g = 0;
    if (q < W - 1)
        g += a[0] * (X(p, q) - X(p, q + 1));
    if (q > 0)
        g -= a[0] * (X(p, q - 1) - X(p, q));
    if (p < H - 1)
        g += a[1] * (X(p, q) - X(p + 1, q));
    if (p > 0)
        g -= a[1] * (X(p - 1, q) - X(p, q));
    if (p > 0 && q < W - 1)
        g += a[2] * (X(p, q) - X(p - 1, q + 1));
    if (p < H - 1 && q > 0)
        g -= a[2] * (X(p + 1, q - 1) - X(p, q));
    if (p < H - 1 && q < W - 1)
        g += a[3] * (X(p, q) - X(p + 1, q + 1));
    if (p > 0 && q > 0)
        g -= a[3] * (X(p - 1, q - 1) - X(p, q));
#undef X
    return g;
}

SFQ_CLONES_AVX2 static void plane_grad(const float *x, int H, int W, const float a[4], float *dx)
{
    const float a1 = a[0], a2 = a[1], a3 = a[2], a4 = a[3];
    for (int p = 0; p < H; p++) {
        float *d = dx + (size_t)p * W;
        if (p == 0 || p == H - 1 || W < 3) {
            for (int q = 0; q < W; q++)
                d[q] += pixel_grad(x, H, W, p, q, a);
            continue;
        }
        const float *u = x + (size_t)(p - 1) * W, *r = u + W, *n = r + W;
        d[0] += pixel_grad(x, H, W, p, 0, a);
        for (int q = 1; q < W - 1; q++) {
            const float c = r[q];
            const float g = a1 * ((c - r[q + 1]) - (r[q - 1] - c)) +
                            a2 * ((c - n[q]) - (u[q] - c)) +
                            a3 * ((c - u[q + 1]) - (n[q - 1] - c)) +
                            a4 * ((c - n[q + 1]) - (u[q - 1] - c));
            d[q] += g;
        }
        d[W - 1] += pixel_grad(x, H, W, p, W - 1, a);
    }
}

double sfq_loss_tv(const float *x, int B, int C, int H, int W, float tau, float weight, float *dx,
                   double *tv)
{
    double acc[4] = {0, 0, 0, 0};
    const size_t planes = (size_t)(B > 0 ? B : 0) * (size_t)(C > 0 ? C : 0);
    const size_t plane = (size_t)(H > 0 ? H : 0) * (size_t)(W > 0 ? W : 0);
    if (plane)
        for (size_t k = 0; k < planes; k++)
            plane_sums(x + k * plane, H, W, acc);
    double n[4], TV = 0;
    for (int k = 0; k < 4; k++) {
        n[k] = sqrt(acc[k]);
        TV += n[k];
    }
    if (tv)
        *tv = TV;
    const double diff = TV - (double)tau;
    if (dx && plane && diff != 0.0 && weight != 0.0f) {
        const double s = diff > 0 ? weight : -(double)weight;
        float a[4];
        for (int k = 0; k < 4; k++)
            a[k] = n[k] > 0 ? (float)(s / n[k]) : 0.0f;
        for (size_t k = 0; k < planes; k++)
            plane_grad(x + k * plane, H, W, a, dx + k * plane);
    }
    return fabs(diff);
}
