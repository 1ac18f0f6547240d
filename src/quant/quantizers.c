/* quantizers.c - uniform, log-sqrt2 and PSAQ min/max quantizers and
 * RepQ-ViT's calibration search (see quant.h).
 *
 * Exactness notes (verified against torch 1.13 / numpy 1.24 on CPU, and
 * against zkkli/RepQ-ViT classification/quant/quantizer.py and
 * zkkli/PSAQ-ViT models/quantization_utils/quant_utils.py):
 *
 *  - Every per-element operation is the float32 IEEE operation the reference
 *    performs, in the same order (the project builds with -std=c11, so GCC
 *    does not contract a*b+c into an FMA). torch.round = rintf in the default
 *    rounding mode (half to even).
 *  - torch.quantile(x, p) (linear): the sorted values s, rank
 *    r = float(p) * float(n - 1) in float32, lo = trunc(r), hi = ceil(r),
 *    w = r - lo, result = lerp(s[lo], s[hi], w) with torch's CPU lerp:
 *    fma(w, s[hi] - s[lo], s[lo]) if |w| < 0.5 else
 *    fma(w - 1, s[hi] - s[lo], s[hi]) (single rounding; a two-rounding
 *    formula disagrees with torch in ~3% of cases). The lower quantile's p
 *    is the double 1.0 - pct rounded to float.
 *  - torch.quantile refuses more than 2^24 values; RepQ-ViT's except branch
 *    then calls numpy.percentile(x, pct * 100) (linear): q = (pct*100)/100,
 *    v = (n - 1) * q, lo = floor(v), hi = lo + 1 (clipped), g = v - lo,
 *    d = float32(s[hi] - s[lo]), result = s[lo] + d*g (g < 0.5) or
 *    s[hi] - d*(1 - g), all in double, then rounded to float32.
 *  - Order statistics come from an in-place multi-selection (quickselect
 *    with a heapsort fallback) on a copy, which yields the sorted values at
 *    the needed ranks without sorting everything.
 *  - The search score is computed as sum((x - xhat)^2) / n with the float32
 *    difference squared and summed in double; RepQ-ViT's lp_loss(...,
 *    reduction='all') is the float32 torch mean of the same squares. The two
 *    can order two candidates differently only when their scores agree to
 *    ~1e-6 relative (the fixtures are built to stay away from that).
 */
#include "quant.h"
#include "threads.h"

#include <float.h>
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

const double sfq_repq_pcts[SFQ_NCAND] = {0.999, 0.9999, 0.99999};

/* ---------------------------------------------------------------------- */
/* validation                                                              */

static sardfq_status check_bits(const char *fn, int bits)
{
    if (bits < SFQ_QBITS_MIN || bits > SFQ_QBITS_MAX)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: bits = %d, must be in [%d, %d]", fn, bits,
                        SFQ_QBITS_MIN, SFQ_QBITS_MAX);
    return SARDFQ_OK;
}

static sardfq_status check_array(const char *fn, const void *x, const void *y, size_t n)
{
    if (!x || !y)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: NULL array", fn);
    if (n == 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: empty array (n = 0)", fn);
    return SARDFQ_OK;
}

static sardfq_status check_matrix(const char *fn, const void *x, const void *y, size_t rows,
                                  size_t cols)
{
    size_t n;
    if (!x || !y)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: NULL array", fn);
    if (rows == 0 || cols == 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: empty matrix (%zu x %zu)", fn, rows, cols);
    if (!sfq_mul_size(rows, cols, &n) || n > SIZE_MAX / sizeof(float))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: %zu x %zu overflows", fn, rows, cols);
    return SARDFQ_OK;
}

static sardfq_status check_finite(const char *fn, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: element %zu is not finite (%g)", fn, i,
                            (double)x[i]);
    return SARDFQ_OK;
}

static sardfq_status uq_check_named(const char *fn, const sfq_uq *p)
{
    if (!p)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: NULL quantizer", fn);
    sardfq_status s = check_bits(fn, p->bits);
    if (s != SARDFQ_OK)
        return s;
    if (!(p->scale > 0.0f) || !isfinite(p->scale))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: scale = %g, must be finite and > 0", fn,
                        (double)p->scale);
    if (!isfinite(p->zero))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: zero point is not finite", fn);
    if (p->form != SFQ_UQ_REPQ && p->form != SFQ_UQ_PSAQ)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: unknown form %d", fn, p->form);
    return SARDFQ_OK;
}

sardfq_status sfq_uq_check(const sfq_uq *p) { return uq_check_named("sfq_uq_check", p); }

static sardfq_status lq_check_named(const char *fn, const sfq_lq *p)
{
    if (!p)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: NULL quantizer", fn);
    sardfq_status s = check_bits(fn, p->bits);
    if (s != SARDFQ_OK)
        return s;
    if (!(p->scale > 0.0f) || !isfinite(p->scale))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: scale = %g, must be finite and > 0", fn,
                        (double)p->scale);
    return SARDFQ_OK;
}

sardfq_status sfq_lq_check(const sfq_lq *p) { return lq_check_named("sfq_lq_check", p); }

/* ---------------------------------------------------------------------- */
/* uniform fake quantization and codes                                     */

sardfq_status sfq_uq_fake(const sfq_uq *p, const float *x, float *y, size_t n)
{
    sardfq_status s = uq_check_named("sfq_uq_fake", p);
    if (s == SARDFQ_OK)
        s = check_array("sfq_uq_fake", x, y, n);
    if (s != SARDFQ_OK)
        return s;
    const sfq_uq q = *p;
    for (size_t i = 0; i < n; i++)
        y[i] = sfq_uq_apply(&q, x[i]);
    return SARDFQ_OK;
}

sardfq_status sfq_uq_fake_rows(const sfq_uq *p, const float *x, float *y, size_t rows, size_t cols)
{
    sardfq_status s = check_matrix("sfq_uq_fake_rows", x, y, rows, cols);
    if (s != SARDFQ_OK)
        return s;
    if (!p)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_uq_fake_rows: NULL quantizers");
    for (size_t r = 0; r < rows; r++)
        if ((s = uq_check_named("sfq_uq_fake_rows", &p[r])) != SARDFQ_OK)
            return s;
    for (size_t r = 0; r < rows; r++) {
        const sfq_uq q = p[r];
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        for (size_t c = 0; c < cols; c++)
            yr[c] = sfq_uq_apply(&q, xr[c]);
    }
    return SARDFQ_OK;
}

sardfq_status sfq_uq_fake_cols(const sfq_uq *p, const float *x, float *y, size_t rows, size_t cols)
{
    sardfq_status s = check_matrix("sfq_uq_fake_cols", x, y, rows, cols);
    if (s != SARDFQ_OK)
        return s;
    if (!p)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_uq_fake_cols: NULL quantizers");
    for (size_t c = 0; c < cols; c++)
        if ((s = uq_check_named("sfq_uq_fake_cols", &p[c])) != SARDFQ_OK)
            return s;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        for (size_t c = 0; c < cols; c++)
            yr[c] = sfq_uq_apply(&p[c], xr[c]);
    }
    return SARDFQ_OK;
}

sardfq_status sfq_uq_encode(const sfq_uq *p, const float *x, uint8_t *q, size_t n)
{
    sardfq_status s = uq_check_named("sfq_uq_encode", p);
    if (s == SARDFQ_OK)
        s = check_array("sfq_uq_encode", x, q, n);
    if (s != SARDFQ_OK)
        return s;
    if (rintf(p->zero) != p->zero)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sfq_uq_encode: zero point %g is not an integer (no integer codes)",
                        (double)p->zero);
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i]))
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_uq_encode: element %zu is NaN", i);
    const sfq_uq u = *p;
    for (size_t i = 0; i < n; i++)
        q[i] = (uint8_t)sfq_uq_level(&u, x[i]);
    return SARDFQ_OK;
}

/* AVX-512 for the bulk quantizer loops below (encoder, fake rows). */
static int have_avx512(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512dq")))
/* sfq_uq_level's rounding of 16 values before its clamp: x / D (a
 * division), round to nearest even, + z (or x / D + z, then round). */
AVX512_TARGET static inline __m512 uq_round16(__m512 x, __m512 D, __m512 z, int psaq)
{
    const __m512 t = _mm512_div_ps(x, D);
    return psaq ? _mm512_roundscale_ps(_mm512_add_ps(t, z), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
                : _mm512_add_ps(_mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
}
#endif

typedef struct {
    sfq_uq u;
    const float *x;
    int cols, pad;
    int64_t ldx, ldq;
    uint8_t *q;
    int32_t *rowsum;
    int avx512;
} enc_ctx;

#if defined(__x86_64__)
/* The same IEEE operations as sfq_uq_level (uq_round16, then the clamp). */
AVX512_TARGET static int32_t enc_row_avx512(const enc_ctx *c, const float *x, uint8_t *q)
{
    const __m512 D = _mm512_set1_ps(c->u.scale), z = _mm512_set1_ps(c->u.zero), lo = _mm512_setzero_ps();
    const __m512 hi = _mm512_set1_ps((float)((1 << c->u.bits) - 1));
    const int psaq = c->u.form == SFQ_UQ_PSAQ;
    __m512i sum = _mm512_setzero_si512();
    int j = 0;
    for (; j + 16 <= c->cols; j += 16) {
        const __m512 t = _mm512_min_ps(_mm512_max_ps(uq_round16(_mm512_loadu_ps(x + j), D, z, psaq), lo), hi);
        const __m512i v = _mm512_cvtps_epi32(t);
        sum = _mm512_add_epi32(sum, v);
        _mm_storeu_si128((__m128i *)(q + j), _mm512_cvtepi32_epi8(v));
    }
    int32_t s = _mm512_reduce_add_epi32(sum);
    for (; j < c->cols; j++) {
        q[j] = (uint8_t)sfq_uq_level(&c->u, x[j]);
        s += q[j];
    }
    return s;
}
#endif

static void enc_range(void *vc, int64_t r0, int64_t r1)
{
    const enc_ctx *c = vc;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = c->x + r * c->ldx;
        uint8_t *q = c->q + r * c->ldq;
        int32_t s = 0;
#if defined(__x86_64__)
        if (c->avx512) {
            s = enc_row_avx512(c, x, q);
        } else
#endif
        {
            for (int j = 0; j < c->cols; j++) {
                q[j] = (uint8_t)sfq_uq_level(&c->u, x[j]);
                s += q[j];
            }
        }
        if (c->pad > c->cols)
            memset(q + c->cols, 0, (size_t)(c->pad - c->cols));
        if (c->rowsum)
            c->rowsum[r] = s;
    }
}

void sfq_uq_encode_rows(const sfq_uq *p, const float *x, int64_t rows, int cols, int64_t ldx, uint8_t *q,
                        int64_t ldq, int pad, int32_t *rowsum, int nt)
{
    enc_ctx c = {*p, x, cols, pad, ldx, ldq, q, rowsum, 0};
#if defined(__x86_64__)
    c.avx512 = have_avx512();
#endif
    sfq_parallel_for(rows * cols >= 65536 ? nt : 1, rows, enc_range, &c);
}

sardfq_status sfq_uq_decode(const sfq_uq *p, const uint8_t *q, float *y, size_t n)
{
    sardfq_status s = uq_check_named("sfq_uq_decode", p);
    if (s == SARDFQ_OK)
        s = check_array("sfq_uq_decode", q, y, n);
    if (s != SARDFQ_OK)
        return s;
    const int top = (1 << p->bits) - 1;
    for (size_t i = 0; i < n; i++)
        if (q[i] > top)
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_uq_decode: code %d at %zu exceeds %d",
                            (int)q[i], i, top);
    for (size_t i = 0; i < n; i++)
        y[i] = sfq_uq_value(p, (float)q[i]);
    return SARDFQ_OK;
}

/* ---------------------------------------------------------------------- */
/* selection                                                               */

static void sift_down(float *a, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && a[child + 1] > a[child])
            child++;
        if (!(a[child] > a[root]))
            return;
        float t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

static void insertion_sort(float *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        float v = a[i];
        size_t j = i;
        while (j > 0 && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

static void sort_floats(float *a, size_t n)
{
    if (n <= 32) {
        insertion_sort(a, n);
        return;
    }
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (size_t end = n - 1; end > 0; end--) {
        float t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end);
    }
}

static float med3(float a, float b, float c)
{
    if (a < b) {
        if (b < c)
            return b;
        return a < c ? c : a;
    }
    if (a < c)
        return a;
    return b < c ? c : b;
}

/* Rearrange a[lo..hi) so that a[k] holds the value of rank k (0-based over
 * the whole array, lo <= k < hi), everything in [lo, k) is <= a[k] and
 * everything in (k, hi) is >= a[k]. Values are finite (no NaN). */
static void select_kth(float *a, size_t lo, size_t hi, size_t k)
{
    size_t budget = 64;
    for (size_t m = hi - lo; m > 1; m >>= 1)
        budget += 2;
    while (hi - lo > 24) {
        if (budget-- == 0) {
            sort_floats(a + lo, hi - lo);
            return;
        }
        size_t mid = lo + (hi - lo) / 2;
        float pv = med3(a[lo], a[mid], a[hi - 1]);
        /* three-way partition: [lo, lt) < pv, [lt, i) == pv, (gt, hi) > pv */
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            float v = a[i];
            if (v < pv) {
                a[i] = a[lt];
                a[lt] = v;
                lt++;
                i++;
            } else if (v > pv) {
                gt--;
                a[i] = a[gt];
                a[gt] = v;
            } else {
                i++;
            }
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return; /* a[k] == pv and it is in place */
    }
    insertion_sort(a + lo, hi - lo);
}

/* Make a[idx[j]] the value of rank idx[j] for all j, idx sorted ascending,
 * unique, all within [lo, hi); a[lo..hi) holds exactly the ranks lo..hi-1.
 * The pivot is taken at the widest gap of the index list, so two clusters
 * near both ends cost two linear selections. */
static void multiselect(float *a, size_t lo, size_t hi, const size_t *idx, size_t m)
{
    while (m > 0) {
        if (hi - lo <= 32) {
            insertion_sort(a + lo, hi - lo);
            return;
        }
        /* widest gap: before idx[0], between idx[j-1] and idx[j], after idx[m-1] */
        size_t best_gap = idx[0] - lo, pick = 0; /* select idx[pick] */
        for (size_t j = 1; j < m; j++) {
            size_t g = idx[j] - idx[j - 1];
            if (g > best_gap) {
                best_gap = g;
                pick = j;
            }
        }
        if (hi - 1 - idx[m - 1] > best_gap)
            pick = m - 1;
        size_t k = idx[pick];
        select_kth(a, lo, hi, k);
        /* left part recursively (smaller index lists), continue on the right */
        multiselect(a, lo, k, idx, pick);
        lo = k + 1;
        idx += pick + 1;
        m -= pick + 1;
    }
}

/* Position of a quantile in the sorted order. */
typedef struct {
    size_t lo, hi;
    int numpy;
    float wf;  /* torch: float32 weight */
    double wd; /* numpy: double weight */
} qpos;

static qpos quantile_pos(size_t n, double p, int numpy)
{
    qpos q;
    memset(&q, 0, sizeof q);
    q.numpy = numpy;
    if (!numpy) {
        float r = (float)p * (float)(n - 1);
        if (r < 0.0f)
            r = 0.0f;
        if (r > (float)(n - 1))
            r = (float)(n - 1);
        q.lo = (size_t)r;
        q.hi = (size_t)ceilf(r);
        if (q.hi > n - 1)
            q.hi = n - 1;
        q.wf = r - (float)q.lo;
    } else {
        double qq = (p * 100.0) / 100.0;
        double v = (double)(n - 1) * qq;
        if (v >= (double)(n - 1)) {
            q.lo = q.hi = n - 1;
            q.wd = 0.0;
        } else if (v < 0.0) {
            q.lo = q.hi = 0;
            q.wd = 0.0;
        } else {
            double f = floor(v);
            q.lo = (size_t)f;
            q.hi = q.lo + 1 < n ? q.lo + 1 : n - 1;
            q.wd = v - f;
        }
    }
    return q;
}

static float quantile_value(const qpos *q, float a, float b)
{
    if (!q->numpy) {
        float w = q->wf, d = b - a;
        return fabsf(w) < 0.5f ? fmaf(w, d, a) : fmaf(w - 1.0f, d, b);
    }
    double d = (double)(b - a), g = q->wd;
    double r = g < 0.5 ? (double)a + d * g : (double)b - d * (1.0 - g);
    return (float)r;
}

static int use_numpy(size_t n, int method)
{
    if (method == SFQ_QUANTILE_NUMPY)
        return 1;
    if (method == SFQ_QUANTILE_TORCH)
        return 0;
    return n > SFQ_TORCH_QUANTILE_MAX;
}

#define SFQ_MAXQ 16

/* Quantiles of buf[0..n) (permuted in place) for np <= SFQ_MAXQ values. */
static void quantiles_inplace(float *buf, size_t n, const double *p, int np, int numpy, float *out)
{
    qpos pos[SFQ_MAXQ];
    size_t idx[2 * SFQ_MAXQ] = {0};
    size_t m = 0;
    for (int k = 0; k < np; k++) {
        pos[k] = quantile_pos(n, p[k], numpy);
        idx[m++] = pos[k].lo;
        idx[m++] = pos[k].hi;
    }
    /* sort + unique the index list (tiny) */
    for (size_t i = 1; i < m; i++) {
        size_t v = idx[i], j = i;
        while (j > 0 && idx[j - 1] > v) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || idx[u - 1] != idx[i])
            idx[u++] = idx[i];
    multiselect(buf, 0, n, idx, u);
    for (int k = 0; k < np; k++)
        out[k] = quantile_value(&pos[k], buf[pos[k].lo], buf[pos[k].hi]);
}

sardfq_status sfq_quantiles(const float *x, size_t n, const double *p, int np, int method, float *out)
{
    sardfq_status s = check_array("sfq_quantiles", x, out, n);
    if (s != SARDFQ_OK)
        return s;
    if (!p || np < 1 || np > SFQ_MAXQ)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_quantiles: need 1..%d probabilities (got %d)",
                        SFQ_MAXQ, np);
    for (int k = 0; k < np; k++)
        if (!(p[k] >= 0.0 && p[k] <= 1.0))
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_quantiles: p[%d] = %g outside [0, 1]", k,
                            p[k]);
    if (method != SFQ_QUANTILE_AUTO && method != SFQ_QUANTILE_TORCH && method != SFQ_QUANTILE_NUMPY)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_quantiles: unknown method %d", method);
    if ((s = check_finite("sfq_quantiles", x, n)) != SARDFQ_OK)
        return s;
    float *buf = sfq_alloc_array(n, sizeof(float));
    if (!buf)
        return sfq_fail(SARDFQ_E_NOMEM, "sfq_quantiles: cannot allocate %zu floats", n);
    memcpy(buf, x, n * sizeof(float));
    quantiles_inplace(buf, n, p, np, use_numpy(n, method), out);
    sfq_free(buf);
    return SARDFQ_OK;
}

/* ---------------------------------------------------------------------- */
/* uniform search                                                          */

static double uq_mse(const sfq_uq *q, const float *x, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        float e = x[i] - sfq_uq_apply(q, x[i]);
        acc += (double)e * (double)e;
    }
    return acc / (double)n;
}

/* RepQ-ViT's candidate from a range: D = (hi - lo) / (2^b - 1),
 * z = round(-lo / D). Returns 0 when D is not finite and > 0 (RepQ-ViT's
 * score is NaN there). */
static int uq_from_range(float lo, float hi, int bits, sfq_uq *q)
{
    const float levels = (float)((1 << bits) - 1);
    float d = (hi - lo) / levels;
    q->scale = d;
    q->zero = rintf(-lo / d);
    q->bits = bits;
    q->form = SFQ_UQ_REPQ;
    return d > 0.0f && isfinite(d) && isfinite(q->zero);
}

/* The search on buf[0..n) (a copy of the data; permuted). */
static void uq_search_buf(float *buf, size_t n, int bits, sfq_uq *out, sfq_search_info *info)
{
    double p[2 * SFQ_NCAND];
    float qv[2 * SFQ_NCAND];
    for (int k = 0; k < SFQ_NCAND; k++) {
        p[2 * k] = sfq_repq_pcts[k];           /* new_max */
        p[2 * k + 1] = 1.0 - sfq_repq_pcts[k]; /* new_min */
    }
    quantiles_inplace(buf, n, p, 2 * SFQ_NCAND, use_numpy(n, SFQ_QUANTILE_AUTO), qv);

    sfq_search_info inf;
    memset(&inf, 0, sizeof inf);
    inf.chosen = -1;
    sfq_uq cand[SFQ_NCAND];
    int ok[SFQ_NCAND];
    double best = INFINITY;
    for (int k = 0; k < SFQ_NCAND; k++) {
        inf.hi[k] = qv[2 * k];
        inf.lo[k] = qv[2 * k + 1];
        ok[k] = uq_from_range(inf.lo[k], inf.hi[k], bits, &cand[k]);
        inf.mse[k] = NAN;
        if (!ok[k])
            continue;
        /* an identical earlier candidate has the identical score */
        int same = -1;
        for (int j = 0; j < k; j++)
            if (ok[j] && cand[j].scale == cand[k].scale && cand[j].zero == cand[k].zero)
                same = j;
        inf.mse[k] = same >= 0 ? inf.mse[same] : uq_mse(&cand[k], buf, n);
        if (inf.mse[k] < best) {
            best = inf.mse[k];
            inf.chosen = k;
        }
    }
    if (inf.chosen >= 0) {
        *out = cand[inf.chosen];
    } else {
        /* No usable candidate: every quantile pair is a single value (a
         * constant tensor, or one whose outliers are fewer than the 0.001%
         * tails). RepQ-ViT fails here (delta stays None). Use the full range
         * [min, max]; for a constant v the range [min(v, 0), max(v, 0)]; for
         * all zeros D = 1, z = 0. Every choice reproduces a constant. */
        float mn = buf[0], mx = buf[0];
        for (size_t i = 1; i < n; i++) {
            if (buf[i] < mn)
                mn = buf[i];
            if (buf[i] > mx)
                mx = buf[i];
        }
        if (mx == mn) {
            mn = fminf(mn, 0.0f);
            mx = fmaxf(mx, 0.0f);
        }
        if (!uq_from_range(mn, mx, bits, out)) {
            out->scale = 1.0f;
            out->zero = 0.0f;
        }
    }
    if (info)
        *info = inf;
}

sardfq_status sfq_uq_search(const float *x, size_t n, int bits, sfq_uq *out, sfq_search_info *info)
{
    sardfq_status s = check_bits("sfq_uq_search", bits);
    if (s == SARDFQ_OK)
        s = check_array("sfq_uq_search", x, out, n);
    if (s == SARDFQ_OK)
        s = check_finite("sfq_uq_search", x, n);
    if (s != SARDFQ_OK)
        return s;
    float *buf = sfq_alloc_array(n, sizeof(float));
    if (!buf)
        return sfq_fail(SARDFQ_E_NOMEM, "sfq_uq_search: cannot allocate %zu floats", n);
    memcpy(buf, x, n * sizeof(float));
    uq_search_buf(buf, n, bits, out, info);
    sfq_free(buf);
    return SARDFQ_OK;
}

typedef struct {
    const float *x;
    size_t rows, cols;
    int by_cols;
    int bits;
    sfq_uq *out;
    sfq_search_info *info;
} chan_ctx;

static void chan_range(void *vctx, int64_t begin, int64_t end)
{
    chan_ctx *c = vctx;
    size_t len = c->by_cols ? c->rows : c->cols;
    float *buf = sfq_alloc_array(len, sizeof(float));
    if (!buf)
        return; /* out[ch].bits stays 0: reported by the caller */
    for (int64_t ch = begin; ch < end; ch++) {
        if (c->by_cols) {
            for (size_t r = 0; r < c->rows; r++)
                buf[r] = c->x[r * c->cols + (size_t)ch];
        } else {
            memcpy(buf, c->x + (size_t)ch * c->cols, len * sizeof(float));
        }
        uq_search_buf(buf, len, c->bits, &c->out[ch], c->info ? &c->info[ch] : NULL);
    }
    sfq_free(buf);
}

static sardfq_status uq_search_channels(const char *fn, const float *x, size_t rows, size_t cols,
                                        int bits, int nthreads, sfq_uq *out,
                                        sfq_search_info *info, int by_cols)
{
    sardfq_status s = check_bits(fn, bits);
    if (s == SARDFQ_OK)
        s = check_matrix(fn, x, out, rows, cols);
    if (s == SARDFQ_OK)
        s = check_finite(fn, x, rows * cols);
    if (s != SARDFQ_OK)
        return s;
    size_t nch = by_cols ? cols : rows;
    if (nch > (size_t)INT64_MAX)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "%s: too many channels", fn);
    for (size_t ch = 0; ch < nch; ch++)
        out[ch].bits = 0;
    chan_ctx c = {x, rows, cols, by_cols, bits, out, info};
    sfq_parallel_for(nthreads < 1 ? 1 : nthreads, (int64_t)nch, chan_range, &c);
    for (size_t ch = 0; ch < nch; ch++)
        if (out[ch].bits != bits)
            return sfq_fail(SARDFQ_E_NOMEM, "%s: cannot allocate the search buffer", fn);
    return SARDFQ_OK;
}

sardfq_status sfq_uq_search_rows(const float *x, size_t rows, size_t cols, int bits, int nthreads,
                                 sfq_uq *out, sfq_search_info *info)
{
    return uq_search_channels("sfq_uq_search_rows", x, rows, cols, bits, nthreads, out, info, 0);
}

sardfq_status sfq_uq_search_cols(const float *x, size_t rows, size_t cols, int bits, int nthreads,
                                 sfq_uq *out, sfq_search_info *info)
{
    return uq_search_channels("sfq_uq_search_cols", x, rows, cols, bits, nthreads, out, info, 1);
}

/* ---------------------------------------------------------------------- */
/* log-sqrt2                                                               */

float sfq_lq_level_value(int q)
{
    if (q < 0)
        return NAN;
    /* RepQ-ViT: 2 ** (-ceil(q / 2)) * ((q % 2) * (sqrt(2) - 1) + 1), float32,
     * where the python double sqrt(2) - 1 is rounded to float first. */
    const float odd = (float)(1.4142135623730951 - 1.0) + 1.0f;
    float m = ldexpf(1.0f, -((q + 1) / 2));
    return (q & 1) ? m * odd : m;
}

int sfq_lq_code(const sfq_lq *p, float x)
{
    if (isnan(x))
        return -1;
    const int levels = 1 << p->bits;
    if (!(x > 0.0f))
        return levels; /* x = 0 (log2 = -inf -> level +inf), or x < 0 */
    float r = x / p->scale;
    float v = rintf(-2.0f * log2f(r)); /* = round(-1 * log2(r) * 2) */
    if (!(v < (float)levels))
        return levels;
    if (v < 0.0f)
        return 0;
    return (int)v;
}

float sfq_lq_apply(const sfq_lq *p, float x)
{
    int q = sfq_lq_code(p, x);
    if (q < 0)
        return x; /* NaN */
    if (q >= (1 << p->bits))
        return 0.0f;
    return sfq_lq_level_value(q) * p->scale;
}

/* ---- bulk fake quantization (the forward's points) ------------------------ */

#if defined(__x86_64__)
/* The scalar operations of sfq_uq_apply, 16 at a time (the same IEEE
 * operations; max/min ordered so that NaN stays NaN as in the scalar). */
AVX512_TARGET static int uq_row_avx512(const sfq_uq *p, float *x, int n)
{
    const __m512 D = _mm512_set1_ps(p->scale), z = _mm512_set1_ps(p->zero), lo = _mm512_setzero_ps();
    const __m512 hi = _mm512_set1_ps((float)((1 << p->bits) - 1));
    const int psaq = p->form == SFQ_UQ_PSAQ;
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m512 t = _mm512_min_ps(hi, _mm512_max_ps(lo, uq_round16(_mm512_loadu_ps(x + j), D, z, psaq)));
        _mm512_storeu_ps(x + j, _mm512_mul_ps(_mm512_sub_ps(t, z), D));
    }
    return j;
}

/* sfq_lq_apply, 16 at a time: v = -2 log2(x / D) from the exponent and a
 * series for the mantissa (x / D as x times 1/D, and the series' division
 * by a reciprocal estimate with one Newton step: absolute error below 1e-4
 * in v, far inside the margin); lanes within 2e-3 of a rounding boundary (v = k + 1/2), and NaN
 * lanes, are recomputed with the scalar function, so every result is
 * sfq_lq_apply's bit for bit. tab[q] = level value q times D, tab[2^b] = 0. */
AVX512_TARGET static int lq_row_avx512(const sfq_lq *p, const float *tab, float *x, int n)
{
    const __m512 invD = _mm512_set1_ps(1.0f / p->scale), one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
    const __m512 two = _mm512_set1_ps(2.0f);
    const __m512 inv_ln2x2 = _mm512_set1_ps(-4.0f * 1.4426950408889634f), mtwo = _mm512_set1_ps(-2.0f);
    const __m512 c3 = _mm512_set1_ps(1.0f / 3), c5 = _mm512_set1_ps(1.0f / 5), c7 = _mm512_set1_ps(1.0f / 7);
    const __m512 c9 = _mm512_set1_ps(1.0f / 9), c11 = _mm512_set1_ps(1.0f / 11), c13 = _mm512_set1_ps(1.0f / 13);
    const __m512 eps = _mm512_set1_ps(2e-3f), zero = _mm512_setzero_ps();
    const int levels = 1 << p->bits;
    const __m512 top = _mm512_set1_ps((float)levels);
    int j = 0;
    if (!(p->scale > 1e-30f && p->scale < 1e30f))
        return 0; /* 1/D and x/D at the float range's ends: all scalar */
    /* levels: up to 32 table entries from two registers; more, computed */
    const int small = levels < 32;
    float t32[32] = {0};
    if (small)
        memcpy(t32, tab, sizeof(float) * (size_t)(levels + 1));
    const __m512 tlo = _mm512_loadu_ps(t32), thi = _mm512_loadu_ps(t32 + 16);
    const __m512 Dv = _mm512_set1_ps(p->scale), oddD = _mm512_set1_ps(p->scale * sfq_lq_level_value(1) * 2.0f);
    const __m512 fmin = _mm512_set1_ps(FLT_MIN);
    const __m512i ione = _mm512_set1_epi32(1);
    for (; j + 16 <= n; j += 16) {
        const __m512 xv = _mm512_loadu_ps(x + j);
        const __m512 r = _mm512_mul_ps(xv, invD);
        const __m512 e = _mm512_getexp_ps(r);
        const __m512 m = _mm512_getmant_ps(r, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
        /* t = (m - 1) / (m + 1) by a reciprocal estimate and one Newton step */
        const __m512 mp = _mm512_add_ps(m, one);
        __m512 y0 = _mm512_rcp14_ps(mp);
        y0 = _mm512_mul_ps(y0, _mm512_fnmadd_ps(mp, y0, two));
        const __m512 t = _mm512_mul_ps(_mm512_sub_ps(m, one), y0), t2 = _mm512_mul_ps(t, t);
        __m512 s = _mm512_fmadd_ps(t2, c13, c11);
        s = _mm512_fmadd_ps(s, t2, c9);
        s = _mm512_fmadd_ps(s, t2, c7);
        s = _mm512_fmadd_ps(s, t2, c5);
        s = _mm512_fmadd_ps(s, t2, c3);
        s = _mm512_fmadd_ps(s, t2, one);
        /* v = -2 (e + ln(m) / ln 2), ln(m) = 2 t s */
        const __m512 v = _mm512_fmadd_ps(_mm512_mul_ps(t, s), inv_ln2x2, _mm512_mul_ps(e, mtwo));
        const __m512 k = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 d = _mm512_sub_ps(_mm512_sub_ps(v, _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF |
                                                                                  _MM_FROUND_NO_EXC)),
                                       half);
        const __mmask16 near = _mm512_cmp_ps_mask(_mm512_abs_ps(d), eps, _CMP_LT_OQ);
        const __mmask16 pos = _mm512_cmp_ps_mask(xv, zero, _CMP_GT_OQ);
        const __mmask16 bad = _mm512_cmp_ps_mask(xv, xv, _CMP_UNORD_Q);
        /* code: k clamped below at 0; k >= 2^b (or x <= 0) is the zero level */
        __m512 kc = _mm512_max_ps(k, zero);
        const __mmask16 z = (__mmask16)(~pos | _mm512_cmp_ps_mask(kc, top, _CMP_GE_OQ));
        kc = _mm512_mask_mov_ps(kc, z, top);
        const __m512i idx = _mm512_cvttps_epi32(kc);
        __m512 y;
        __mmask16 look = 0;
        if (small) {
            y = _mm512_permutex2var_ps(tlo, idx, thi);
        } else {
            /* tab[q] = 2^-ceil(q/2) (q odd ? odd D : D), exact while normal;
             * the zero level and results below FLT_MIN read the table */
            const __m512i half_up = _mm512_srli_epi32(_mm512_add_epi32(idx, ione), 1);
            const __mmask16 odd = _mm512_test_epi32_mask(idx, ione);
            y = _mm512_scalef_ps(_mm512_mask_mov_ps(Dv, odd, oddD),
                                 _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_setzero_si512(), half_up)));
            look = (__mmask16)(_mm512_cmp_ps_mask(y, fmin, _CMP_LT_OQ) & ~z);
            y = _mm512_mask_mov_ps(y, z, zero);
        }
        _mm512_storeu_ps(x + j, y);
        if (look) {
            int32_t qi[16];
            _mm512_storeu_si512(qi, idx);
            while (look) {
                const int l = __builtin_ctz(look);
                x[j + l] = tab[qi[l]];
                look &= (__mmask16)(look - 1);
            }
        }
        __mmask16 redo = (__mmask16)((near & pos) | bad);
        while (redo) {
            const int l = __builtin_ctz(redo);
            x[j + l] = sfq_lq_apply(p, xv[l]);
            redo &= (__mmask16)(redo - 1);
        }
    }
    return j;
}
#endif

void sfq_uq_fake_row(const sfq_uq *p, float *x, int n, int simd)
{
    int j = 0;
#if defined(__x86_64__)
    if (simd)
        j = uq_row_avx512(p, x, n);
#endif
    for (; j < n; j++)
        x[j] = sfq_uq_apply(p, x[j]);
}

void sfq_lq_table(const sfq_lq *p, float *tab)
{
    const int levels = 1 << p->bits;
    for (int q = 0; q < levels; q++)
        tab[q] = sfq_lq_level_value(q) * p->scale;
    tab[levels] = 0.0f;
}

void sfq_lq_fake_row(const sfq_lq *p, const float *tab, float *x, int n, int simd)
{
    int j = 0;
#if defined(__x86_64__)
    if (simd)
        j = lq_row_avx512(p, tab, x, n);
#endif
    for (; j < n; j++)
        x[j] = sfq_lq_apply(p, x[j]);
}

int sfq_quant_simd(void) { return have_avx512(); }

sardfq_status sfq_lq_fake(const sfq_lq *p, const float *x, float *y, size_t n)
{
    sardfq_status s = lq_check_named("sfq_lq_fake", p);
    if (s == SARDFQ_OK)
        s = check_array("sfq_lq_fake", x, y, n);
    if (s != SARDFQ_OK)
        return s;
    const sfq_lq q = *p;
    for (size_t i = 0; i < n; i++)
        y[i] = sfq_lq_apply(&q, x[i]);
    return SARDFQ_OK;
}

sardfq_status sfq_lq_encode(const sfq_lq *p, const float *x, uint16_t *q, size_t n)
{
    sardfq_status s = lq_check_named("sfq_lq_encode", p);
    if (s == SARDFQ_OK)
        s = check_array("sfq_lq_encode", x, q, n);
    if (s != SARDFQ_OK)
        return s;
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i]))
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_lq_encode: element %zu is NaN", i);
    for (size_t i = 0; i < n; i++)
        q[i] = (uint16_t)sfq_lq_code(p, x[i]);
    return SARDFQ_OK;
}

sardfq_status sfq_lq_decode(const sfq_lq *p, const uint16_t *q, float *y, size_t n)
{
    sardfq_status s = lq_check_named("sfq_lq_decode", p);
    if (s == SARDFQ_OK)
        s = check_array("sfq_lq_decode", q, y, n);
    if (s != SARDFQ_OK)
        return s;
    const int levels = 1 << p->bits;
    for (size_t i = 0; i < n; i++)
        if (q[i] > levels)
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_lq_decode: code %d at %zu exceeds %d",
                            (int)q[i], i, levels);
    for (size_t i = 0; i < n; i++)
        y[i] = q[i] == levels ? 0.0f : sfq_lq_level_value(q[i]) * p->scale;
    return SARDFQ_OK;
}

static double lq_mse(const sfq_lq *q, const float *x, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        float e = x[i] - sfq_lq_apply(q, x[i]);
        acc += (double)e * (double)e;
    }
    return acc / (double)n;
}

sardfq_status sfq_lq_search(const float *x, size_t n, int bits, sfq_lq *out, sfq_search_info *info)
{
    sardfq_status s = check_bits("sfq_lq_search", bits);
    if (s == SARDFQ_OK)
        s = check_array("sfq_lq_search", x, out, n);
    if (s == SARDFQ_OK)
        s = check_finite("sfq_lq_search", x, n);
    if (s != SARDFQ_OK)
        return s;
    float mx = x[0];
    for (size_t i = 0; i < n; i++) {
        if (x[i] < 0.0f)
            return sfq_fail(SARDFQ_E_INVALID_ARG,
                            "sfq_lq_search: element %zu is negative (%g); the log-sqrt2 "
                            "quantizer takes x >= 0",
                            i, (double)x[i]);
        if (x[i] > mx)
            mx = x[i];
    }
    float *buf = sfq_alloc_array(n, sizeof(float));
    if (!buf)
        return sfq_fail(SARDFQ_E_NOMEM, "sfq_lq_search: cannot allocate %zu floats", n);
    memcpy(buf, x, n * sizeof(float));
    float qv[SFQ_NCAND];
    quantiles_inplace(buf, n, sfq_repq_pcts, SFQ_NCAND, use_numpy(n, SFQ_QUANTILE_AUTO), qv);

    sfq_search_info inf;
    memset(&inf, 0, sizeof inf);
    inf.chosen = -1;
    /* RepQ-ViT: delta = x.max(), best_score = 1e10, strict improvement. */
    double best = 1e10;
    sfq_lq res = {mx, bits};
    for (int k = 0; k < SFQ_NCAND; k++) {
        inf.hi[k] = qv[k];
        inf.mse[k] = NAN;
        sfq_lq c = {qv[k], bits};
        /* D = 0 gives NaN (0/0 at the zeros that make it 0) in RepQ-ViT */
        if (!(c.scale > 0.0f) || !isfinite(c.scale))
            continue;
        int same = -1;
        for (int j = 0; j < k; j++)
            if (!isnan(inf.mse[j]) && inf.hi[j] == c.scale)
                same = j;
        inf.mse[k] = same >= 0 ? inf.mse[same] : lq_mse(&c, buf, n);
        if (inf.mse[k] < best) {
            best = inf.mse[k];
            inf.chosen = k;
            res = c;
        }
    }
    sfq_free(buf);
    /* all zeros: RepQ-ViT keeps delta = 0 (NaN output); any D > 0 maps 0 to 0 */
    if (!(res.scale > 0.0f))
        res.scale = 1.0f;
    *out = res;
    if (info)
        *info = inf;
    return SARDFQ_OK;
}

/* ---------------------------------------------------------------------- */
/* PSAQ-ViT                                                                */

sardfq_status sfq_minmax(const float *x, size_t n, float *xmin, float *xmax)
{
    sardfq_status s = check_array("sfq_minmax", x, x, n);
    if (s == SARDFQ_OK && (!xmin || !xmax))
        s = sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_minmax: NULL output");
    if (s == SARDFQ_OK)
        s = check_finite("sfq_minmax", x, n);
    if (s != SARDFQ_OK)
        return s;
    float mn = x[0], mx = x[0];
    for (size_t i = 1; i < n; i++) {
        if (x[i] < mn)
            mn = x[i];
        if (x[i] > mx)
            mx = x[i];
    }
    *xmin = mn;
    *xmax = mx;
    return SARDFQ_OK;
}

sardfq_status sfq_psaq_weight_rows(const float *x, size_t rows, size_t cols, int bits, sfq_uq *out)
{
    sardfq_status s = check_bits("sfq_psaq_weight_rows", bits);
    if (s == SARDFQ_OK)
        s = check_matrix("sfq_psaq_weight_rows", x, out, rows, cols);
    if (s == SARDFQ_OK)
        s = check_finite("sfq_psaq_weight_rows", x, rows * cols);
    if (s != SARDFQ_OK)
        return s;
    /* quant_utils.symmetric_linear_quantization_params: qmax = 2^(b-1) - 1,
     * qmin = -2^(b-1), scale = max(-min, max) / (float(qmax - qmin) / 2),
     * clamped below at float32 eps. */
    const int half = 1 << (bits - 1);
    const float denom = (float)((double)((half - 1) - (-half)) / 2.0);
    for (size_t r = 0; r < rows; r++) {
        const float *w = x + r * cols;
        float mn = w[0], mx = w[0];
        for (size_t c = 1; c < cols; c++) {
            if (w[c] < mn)
                mn = w[c];
            if (w[c] > mx)
                mx = w[c];
        }
        float m = fmaxf(-mn, mx);
        float sc = m / denom;
        if (sc < FLT_EPSILON)
            sc = FLT_EPSILON;
        out[r].scale = sc;
        out[r].zero = (float)half;
        out[r].bits = bits;
        out[r].form = SFQ_UQ_REPQ;
    }
    return SARDFQ_OK;
}

sardfq_status sfq_psaq_act(float xmin, float xmax, int bits, sfq_uq *out)
{
    sardfq_status s = check_bits("sfq_psaq_act", bits);
    if (s != SARDFQ_OK)
        return s;
    if (!out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_psaq_act: NULL output");
    if (!isfinite(xmin) || !isfinite(xmax) || xmin > xmax)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_psaq_act: bad range [%g, %g]", (double)xmin,
                        (double)xmax);
    /* quant_utils.asymmetric_linear_quantization_params */
    const float qmax = (float)((1 << bits) - 1);
    float sc = (xmax - xmin) / qmax;
    if (!(sc >= FLT_EPSILON))
        sc = FLT_EPSILON;
    if (!isfinite(sc))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_psaq_act: range [%g, %g] overflows",
                        (double)xmin, (double)xmax);
    float z = 0.0f - rintf(xmin / sc);
    if (z < 0.0f)
        z = 0.0f;
    if (z > qmax)
        z = qmax;
    out->scale = sc;
    out->zero = z;
    out->bits = bits;
    out->form = SFQ_UQ_PSAQ;
    return SARDFQ_OK;
}
