/* igemm.c - u8 x s8 -> s32 products with a fused float epilogue (igemm.h).
 *
 * One packed layout serves all three paths: panels of 16 output channels,
 * 4 consecutive reduction elements per channel (the operand of vpdpbusd).
 * The AVX-512 path keeps a 6 x 32 tile of sums in registers and applies the
 * epilogue there; the AVX2 and C paths write the tile's int32 sums and share
 * one scalar epilogue (fmaf), which rounds exactly as the vector one. */
#include "igemm.h"

#include "threads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define SFQ_X86 1
#include <immintrin.h>
#else
#define SFQ_X86 0
#endif

/* ---- dispatch ------------------------------------------------------------ */

int sfq_isa_best(void)
{
#if SFQ_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        return SFQ_ISA_VNNI;
    if (__builtin_cpu_supports("avx2"))
        return SFQ_ISA_AVX2;
#endif
    return SFQ_ISA_C;
}

const char *sfq_isa_name(int isa)
{
    switch (isa) {
    case SFQ_ISA_C: return "c";
    case SFQ_ISA_AVX2: return "avx2";
    case SFQ_ISA_VNNI: return "vnni";
    default: return "auto";
    }
}

sardfq_status sfq_isa_resolve(int request, int *isa)
{
    const int best = sfq_isa_best();
    if (request == SFQ_ISA_AUTO) {
        const char *env = getenv("SARDFQ_ISA");
        if (!env || !*env || !strcmp(env, "auto")) {
            *isa = best;
            return SARDFQ_OK;
        }
        if (!strcmp(env, "c"))
            request = SFQ_ISA_C;
        else if (!strcmp(env, "avx2"))
            request = SFQ_ISA_AVX2;
        else if (!strcmp(env, "vnni"))
            request = SFQ_ISA_VNNI;
        else
            return sfq_fail(SARDFQ_E_INVALID_ARG, "SARDFQ_ISA=%s: expected auto, c, avx2 or vnni", env);
    }
    if (request < SFQ_ISA_C || request > SFQ_ISA_VNNI)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "instruction path %d is unknown", request);
    if (request > best)
        return sfq_fail(SARDFQ_E_UNSUPPORTED, "this CPU cannot run the %s integer kernels (best: %s)",
                        sfq_isa_name(request), sfq_isa_name(best));
    *isa = request;
    return SARDFQ_OK;
}

/* ---- packing ------------------------------------------------------------- */

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

size_t sfq_ipack_data_bytes(int n, int k, int bits)
{
    const size_t groups = (size_t)round_up(n, 16) / 16 * (size_t)(round_up(k, 4) / 4);
    return groups * (bits <= 4 ? 32 : 64);
}

void sfq_ipack_into(const uint8_t *codes, int64_t ldc, int n, int k, int bits, const int32_t *zero,
                    sfq_ipack *p, uint8_t *data, int32_t *zbuf, int32_t *wsum)
{
    p->n = n;
    p->k = k;
    p->kp = round_up(k, 4);
    p->np = round_up(n, 16);
    p->bits = bits;
    p->nibbles = bits <= 4;
    p->off = p->nibbles ? 8 : 128;
    p->data = data;
    p->zero = zbuf;
    p->wsum = wsum;
    p->bytes = sfq_ipack_data_bytes(n, k, bits);
    const int kg = p->kp / 4, gbytes = p->nibbles ? 32 : 64;
    for (int pn = 0; pn < p->np / 16; pn++) {
        for (int g = 0; g < kg; g++) {
            uint8_t *dst = data + ((size_t)pn * kg + g) * gbytes;
            int8_t e[64];
            for (int c = 0; c < 16; c++) {
                const int row = pn * 16 + c;
                for (int kk = 0; kk < 4; kk++) {
                    const int col = 4 * g + kk;
                    e[c * 4 + kk] = (int8_t)(row < n && col < k ? (int)codes[row * ldc + col] - p->off : 0);
                }
            }
            if (p->nibbles)
                for (int j = 0; j < 32; j++)
                    dst[j] = (uint8_t)(((e[j] + 8) & 15) | (((e[j + 32] + 8) & 15) << 4));
            else
                memcpy(dst, e, 64);
        }
    }
    for (int r = 0; r < p->np; r++) {
        const int32_t z = r < n && zero ? zero[r] : 0;
        int32_t s = 0;
        if (r < n)
            for (int c = 0; c < k; c++)
                s += (int32_t)codes[r * ldc + c] - z;
        zbuf[r] = z;
        wsum[r] = s;
    }
}

sardfq_status sfq_ipack_new(const uint8_t *codes, int64_t ldc, int n, int k, int bits, const int32_t *zero,
                            sfq_ipack *out)
{
    if (n <= 0 || k <= 0 || bits < 2 || bits > 8)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "integer weights: %d x %d codes of %d bits", n, k, bits);
    const int np = round_up(n, 16);
    uint8_t *data = sfq_alloc(sfq_ipack_data_bytes(n, k, bits));
    int32_t *z = sfq_alloc_array((size_t)np, sizeof(int32_t));
    int32_t *w = sfq_alloc_array((size_t)np, sizeof(int32_t));
    if (!data || !z || !w) {
        sfq_free(data);
        sfq_free(z);
        sfq_free(w);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory");
    }
    sfq_ipack_into(codes, ldc, n, k, bits, zero, out, data, z, w);
    return SARDFQ_OK;
}

void sfq_ipack_codes(const sfq_ipack *p, int row, uint8_t *out)
{
    /* the inverse of sfq_ipack_into for one row: element e = 4 c + kk of a
     * group (c the row within the panel, kk the column within the group) */
    const int kg = p->kp / 4, gbytes = p->nibbles ? 32 : 64, c = row % 16;
    const uint8_t *panel = p->data + (size_t)(row / 16) * kg * gbytes;
    for (int g = 0; g < kg; g++) {
        const uint8_t *b = panel + (size_t)g * gbytes;
        for (int kk = 0; kk < 4 && 4 * g + kk < p->k; kk++) {
            const int e = 4 * c + kk;
            int v;
            if (p->nibbles) /* stored (code - off + 8) & 15 with off = 8 */
                v = e < 32 ? b[e] & 15 : b[e - 32] >> 4;
            else            /* stored (int8)(code - off) */
                v = (int)(int8_t)b[e] + p->off;
            out[4 * g + kk] = (uint8_t)v;
        }
    }
}

void sfq_ipack_levels(const sfq_ipack *p, int row, float *out)
{
    /* the codes into the first k bytes of out, then widened in place from
     * the end (float i covers bytes 4i..4i+3, at or after byte i) */
    uint8_t *c = (uint8_t *)out;
    sfq_ipack_codes(p, row, c);
    for (int i = p->k - 1; i >= 0; i--)
        out[i] = (float)c[i];
}

void sfq_ipack_free(sfq_ipack *p)
{
    if (!p)
        return;
    sfq_free(p->data);
    sfq_free(p->zero);
    sfq_free(p->wsum);
    p->data = NULL;
    p->zero = p->wsum = NULL;
}

void sfq_iepi_vectors(const sfq_ipack *p, float sa, int32_t za, const float *sw, int sw_stride, float *scale,
                      int32_t *corr, int32_t *zoff)
{
    for (int r = 0; r < p->np; r++) {
        if (r < p->n) {
            scale[r] = sa * sw[(size_t)r * sw_stride];
            corr[r] = -za * p->wsum[r];
            zoff[r] = p->off - p->zero[r];
        } else {
            scale[r] = 0.0f;
            corr[r] = zoff[r] = 0;
        }
    }
}

/* ---- the shared scalar epilogue ------------------------------------------ */

/* Tile of sums t[r][c] (row stride ldt) for rows m0.. and columns n0.. */
static void epilogue_tile(const int32_t *t, int ldt, int rows, int cols, int64_t m0, int n0, const sfq_iepi *e)
{
    for (int r = 0; r < rows; r++) {
        float *o = e->out + (m0 + r) * e->ldo + n0;
        const int32_t as = e->asum[m0 + r];
        for (int c = 0; c < cols; c++) {
            const int n = n0 + c;
            const int32_t s = t[r * ldt + c] + e->zoff[n] * as + e->corr[n];
            const float y = fmaf((float)s, e->scale[n], e->bias ? e->bias[n] : 0.0f);
            o[c] = e->accumulate ? o[c] + y : y;
        }
    }
}

static void sums_tile(const int32_t *t, int ldt, int rows, int cols, int32_t *C, int64_t ldc, int64_t m0, int n0)
{
    for (int r = 0; r < rows; r++)
        memcpy(C + (m0 + r) * ldc + n0, t + r * ldt, sizeof(int32_t) * (size_t)cols);
}

/* ---- portable C ------------------------------------------------------------ */

/* Sums of rows [m0, m0 + rows) (rows <= 4) against panel pn into t[4][16]. */
static void c_tile(const uint8_t *A, int64_t lda, const sfq_ipack *p, int pn, int64_t m0, int rows, int32_t *t)
{
    const int kg = p->kp / 4, gbytes = p->nibbles ? 32 : 64;
    const uint8_t *b = p->data + (size_t)pn * kg * gbytes;
    memset(t, 0, sizeof(int32_t) * 4 * 16);
    for (int g = 0; g < kg; g++, b += gbytes) {
        int8_t e[64];
        if (p->nibbles) {
            for (int j = 0; j < 32; j++) {
                e[j] = (int8_t)((b[j] & 15) - 8);
                e[j + 32] = (int8_t)((b[j] >> 4) - 8);
            }
        } else {
            memcpy(e, b, 64);
        }
        for (int r = 0; r < rows; r++) {
            const uint8_t *a = A + (m0 + r) * lda + 4 * g;
            int32_t *tr = t + r * 16;
            for (int c = 0; c < 16; c++)
                tr[c] += a[0] * e[c * 4] + a[1] * e[c * 4 + 1] + a[2] * e[c * 4 + 2] + a[3] * e[c * 4 + 3];
        }
    }
}

/* Rows [m0, m0 + rows) (rows <= mr) against panel pn into t[mr][16]. */
typedef void (*tile_fn)(const uint8_t *A, int64_t lda, const sfq_ipack *p, int pn, int64_t m0, int rows,
                        int32_t *t);

/* Rows [m0, m1) in tiles of mr rows x 16 columns, each through the scalar
 * epilogue (or into C): the driver of the C and AVX2 paths. */
static void tile_rows(tile_fn tile, int mr, const uint8_t *A, int64_t lda, const sfq_ipack *p, const sfq_iepi *e,
                      int32_t *C, int64_t ldc, int64_t m0, int64_t m1)
{
    int32_t t[4 * 16];
    for (int64_t m = m0; m < m1; m += mr) {
        const int rows = m1 - m < mr ? (int)(m1 - m) : mr;
        for (int pn = 0; pn < p->np / 16; pn++) {
            const int n0 = pn * 16, cols = p->n - n0 < 16 ? p->n - n0 : 16;
            tile(A, lda, p, pn, m, rows, t);
            if (e)
                epilogue_tile(t, 16, rows, cols, m, n0, e);
            else
                sums_tile(t, 16, rows, cols, C, ldc, m, n0);
        }
    }
}

#if SFQ_X86
/* ---- AVX2: int16 products, vpmaddwd (exact) -------------------------------- */

#define AVX2_TARGET __attribute__((target("avx2")))

/* 16 signed codes (4 channels x 4) of group bytes -> 16 int16. */
AVX2_TARGET static inline __m256i avx2_w16(__m128i b) { return _mm256_cvtepi8_epi16(b); }

AVX2_TARGET static void avx2_tile(const uint8_t *A, int64_t lda, const sfq_ipack *p, int pn, int64_t m0, int rows,
                                  int32_t *t)
{
    const int kg = p->kp / 4, gbytes = p->nibbles ? 32 : 64;
    const uint8_t *b = p->data + (size_t)pn * kg * gbytes;
    __m256i acc[3][4];
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < 4; j++)
            acc[r][j] = _mm256_setzero_si256();
    const __m256i low4 = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
    for (int g = 0; g < kg; g++, b += gbytes) {
        __m128i q[4];
        if (p->nibbles) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)b);
            const __m256i lo = _mm256_sub_epi8(_mm256_and_si256(x, low4), eight);
            const __m256i hi = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(x, 4), low4), eight);
            q[0] = _mm256_castsi256_si128(lo);
            q[1] = _mm256_extracti128_si256(lo, 1);
            q[2] = _mm256_castsi256_si128(hi);
            q[3] = _mm256_extracti128_si256(hi, 1);
        } else {
            for (int j = 0; j < 4; j++)
                q[j] = _mm_loadu_si128((const __m128i *)(b + 16 * j));
        }
        __m256i w[4];
        for (int j = 0; j < 4; j++)
            w[j] = avx2_w16(q[j]);
        for (int r = 0; r < rows; r++) {
            const uint8_t *a = A + (m0 + r) * lda + 4 * g;
            const long long pk = (long long)((uint64_t)a[0] | (uint64_t)a[1] << 16 | (uint64_t)a[2] << 32 |
                                             (uint64_t)a[3] << 48);
            const __m256i av = _mm256_set1_epi64x(pk);
            for (int j = 0; j < 4; j++)
                acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(av, w[j]));
        }
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < 4; j += 2) {
            /* lanes (channel, pair) -> channels 4j .. 4j + 7 in order */
            const __m256i h = _mm256_hadd_epi32(acc[r][j], acc[r][j + 1]);
            _mm256_storeu_si256((__m256i *)(t + r * 16 + 4 * j), _mm256_permute4x64_epi64(h, 0xD8));
        }
}

/* ---- AVX-512 VNNI: vpdpbusd, 6 x 32 tiles ---------------------------------- */

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))

VNNI_TARGET static inline __m512i vnni_w(const uint8_t *b, int nibbles)
{
    if (!nibbles)
        return _mm512_loadu_si512((const void *)b);
    const __m256i x = _mm256_loadu_si256((const __m256i *)b), low4 = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(x, low4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
    return _mm512_sub_epi8(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(8));
}

VNNI_TARGET static inline __m512i bcast4(const uint8_t *a)
{
    int32_t v;
    memcpy(&v, a, 4);
    return _mm512_set1_epi32(v);
}

/* One row's 16 sums of panel column block n0 through the epilogue (or into C). */
VNNI_TARGET static inline void vnni_out(__m512i acc, int64_t m, int n0, int cols, const sfq_iepi *e, int32_t *C,
                                        int64_t ldc)
{
    const __mmask16 k = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
    if (!e) {
        _mm512_mask_storeu_epi32(C + m * ldc + n0, k, acc);
        return;
    }
    const __m512i s = _mm512_add_epi32(
        _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_loadu_si512((const void *)(e->zoff + n0)),
                                                 _mm512_set1_epi32(e->asum[m]))),
        _mm512_loadu_si512((const void *)(e->corr + n0)));
    const __m512 bias = e->bias ? _mm512_maskz_loadu_ps(k, e->bias + n0) : _mm512_setzero_ps();
    __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_loadu_ps(e->scale + n0), bias);
    float *o = e->out + m * e->ldo + n0;
    if (e->accumulate)
        y = _mm512_add_ps(_mm512_maskz_loadu_ps(k, o), y);
    _mm512_mask_storeu_ps(o, k, y);
}

#define R6(X) X(0) X(1) X(2) X(3) X(4) X(5)

VNNI_TARGET static void vnni_rows(const uint8_t *A, int64_t lda, const sfq_ipack *p, const sfq_iepi *e, int32_t *C,
                                  int64_t ldc, int64_t m0, int64_t m1)
{
    const int kg = p->kp / 4, gbytes = p->nibbles ? 32 : 64, nib = p->nibbles;
    const size_t pstride = (size_t)kg * gbytes;
    const int npan = p->np / 16;
    /* blocks of 96 rows (kept in L2) against each pair of panels in turn
     * (kept in L1/L2 while the block's 6-row tiles pass) */
    const int64_t full = m0 + (m1 - m0) / 6 * 6;
    /* 4-bit codes: each panel pair is unpacked once per row block into
     * bytes (rather than once per 6-row tile); without the buffer (out of
     * memory) the tiles unpack in registers */
    uint8_t *ub = nib && full > m0 ? sfq_alloc((size_t)kg * 128) : NULL;
    for (int64_t mb = m0; mb < full; mb += 96)
    for (int pn = 0; pn < npan; pn += 2) {
        const int two = pn + 1 < npan;
        const uint8_t *b0 = p->data + (size_t)pn * pstride, *b1 = two ? b0 + pstride : b0;
        int gb = gbytes, nb = nib;
        if (ub) {
            for (int g = 0; g < kg; g++) {
                _mm512_storeu_si512((void *)(ub + (size_t)g * 64), vnni_w(b0 + (size_t)g * 32, 1));
                _mm512_storeu_si512((void *)(ub + ((size_t)kg + g) * 64), vnni_w(b1 + (size_t)g * 32, 1));
            }
            b0 = ub;
            b1 = ub + (size_t)kg * 64;
            gb = 64;
            nb = 0;
        }
    for (int64_t m = mb; m < full && m < mb + 96; m += 6) {
        const uint8_t *a0 = A + m * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda, *a4 = a3 + lda,
                      *a5 = a4 + lda;
        {
#define Z(r) __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = _mm512_setzero_si512();
            R6(Z)
#undef Z
            for (int g = 0; g < kg; g++) {
                const __m512i w0 = vnni_w(b0 + (size_t)g * gb, nb), w1 = vnni_w(b1 + (size_t)g * gb, nb);
#define D(r)                                                                                                   \
    {                                                                                                          \
        const __m512i av = bcast4(a##r + 4 * g);                                                               \
        c##r##0 = _mm512_dpbusd_epi32(c##r##0, av, w0);                                                        \
        c##r##1 = _mm512_dpbusd_epi32(c##r##1, av, w1);                                                        \
    }
                R6(D)
#undef D
            }
            const int n0 = pn * 16, cols0 = p->n - n0 < 16 ? p->n - n0 : 16;
            const int cols1 = p->n - n0 - 16 < 16 ? p->n - n0 - 16 : 16;
#define O(r)                                                                                                   \
    vnni_out(c##r##0, m + r, n0, cols0, e, C, ldc);                                                            \
    if (two)                                                                                                   \
        vnni_out(c##r##1, m + r, n0 + 16, cols1, e, C, ldc);
            R6(O)
#undef O
        }
    }
    }
    sfq_free(ub);
    for (int64_t m = full; m < m1; m++) {
        const uint8_t *a = A + m * lda;
        for (int pn = 0; pn < npan; pn++) {
            const uint8_t *b = p->data + (size_t)pn * pstride;
            __m512i c = _mm512_setzero_si512();
            for (int g = 0; g < kg; g++)
                c = _mm512_dpbusd_epi32(c, bcast4(a + 4 * g), vnni_w(b + (size_t)g * gbytes, nib));
            const int n0 = pn * 16;
            vnni_out(c, m, n0, p->n - n0 < 16 ? p->n - n0 : 16, e, C, ldc);
        }
    }
}
#endif

static void rows_any(int isa, const uint8_t *A, int64_t lda, const sfq_ipack *p, const sfq_iepi *e, int32_t *C,
                     int64_t ldc, int64_t m0, int64_t m1)
{
#if SFQ_X86
    if (isa == SFQ_ISA_VNNI) {
        vnni_rows(A, lda, p, e, C, ldc, m0, m1);
        return;
    }
    if (isa == SFQ_ISA_AVX2) {
        tile_rows(avx2_tile, 3, A, lda, p, e, C, ldc, m0, m1);
        return;
    }
#endif
    tile_rows(c_tile, 4, A, lda, p, e, C, ldc, m0, m1);
}

void sfq_igemm_rows(int isa, const uint8_t *A, int64_t lda, const sfq_ipack *p, const sfq_iepi *e, int64_t m0,
                    int64_t m1)
{
    rows_any(isa, A, lda, p, e, NULL, 0, m0, m1);
}

void sfq_igemm_s32(int isa, const uint8_t *A, int64_t lda, int64_t M, const sfq_ipack *p, int32_t *C, int64_t ldc)
{
    rows_any(isa, A, lda, p, NULL, C, ldc, 0, M);
}

typedef struct {
    int isa;
    const uint8_t *A;
    int64_t lda, M;
    const sfq_ipack *p;
    const sfq_iepi *e;
} igemm_ctx;

#define ROW_BLOCK 24 /* rows per task: a multiple of every tile height */

static void igemm_range(void *vc, int64_t b0, int64_t b1)
{
    const igemm_ctx *c = vc;
    const int64_t m0 = b0 * ROW_BLOCK, m1 = b1 * ROW_BLOCK < c->M ? b1 * ROW_BLOCK : c->M;
    rows_any(c->isa, c->A, c->lda, c->p, c->e, NULL, 0, m0, m1);
}

void sfq_igemm(int isa, int nt, const uint8_t *A, int64_t lda, int64_t M, const sfq_ipack *p, const sfq_iepi *e)
{
    igemm_ctx c = {isa, A, lda, M, p, e};
    const int64_t blocks = (M + ROW_BLOCK - 1) / ROW_BLOCK;
    sfq_parallel_for(blocks > 1 ? nt : 1, blocks, igemm_range, &c);
}
