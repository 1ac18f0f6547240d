/* test_io.c - safetensors reader/writer (round trip, exact F16/BF16, every
 * truncation, random byte flips, one malformed header per validation rule),
 * IDX and PNG readers, the eval transform against a PIL fixture
 * (tests/reference/make_resize_fixture.py), datasets and evaluation. */
#include "image.h"
#include "safetensors.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}




static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* No "*.tmp.*" file left in dir. */
static void assert_no_temp_files(const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q '\\.tmp\\.'", dir);
    ck_assert_msg(system(cmd) != 0, "a temporary file was left in %s", dir);
}

#define ASSERT_MSG_HAS(sub)                                                                  \
    ck_assert_msg(strstr(sardfq_last_error(), (sub)) != NULL, "message '%s' lacks '%s'",     \
                  sardfq_last_error(), (sub))

static int all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* 8-byte length + header + data_len bytes of data (0x55). */
static uint8_t *make_st(const char *header, size_t data_len, size_t *len)
{
    size_t hl = strlen(header);
    *len = 8 + hl + data_len;
    uint8_t *b = malloc(*len);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, 0x55, data_len);
    return b;
}

static sardfq_status parse_header(const char *header, size_t data_len, sfq_st_file *f)
{
    size_t len;
    uint8_t *b = make_st(header, data_len, &len);
    sardfq_status s = sfq_st_parse(b, len, f);
    if (s == SARDFQ_OK) {
        sfq_st_release(f);
    } else {
        ck_assert_msg(all_zero(f, sizeof *f), "output not zeroed on failure");
        ck_assert_msg(sardfq_last_error()[0] != '\0', "failure without a message");
    }
    free(b);
    return s;
}

static void expect_bad(const char *header, size_t data_len, sardfq_status want, const char *sub)
{
    sfq_st_file f;
    memset(&f, 0xab, sizeof f);
    sardfq_status s = parse_header(header, data_len, &f);
    ck_assert_msg(s == want, "header %s: status %d, expected %d (%s)", header, s, want,
                  sardfq_last_error());
    ASSERT_MSG_HAS(sub);
}

static void expect_ok(const char *header, size_t data_len)
{
    sfq_st_file f;
    sardfq_status s = parse_header(header, data_len, &f);
    ck_assert_msg(s == SARDFQ_OK, "header %s: status %d (%s)", header, s, sardfq_last_error());
}

/* A parsed table must be self-consistent: ranges inside the buffer, sizes
 * matching shapes, tiling the data exactly. */
static void check_consistent(const uint8_t *buf, size_t len, const sfq_st_file *f)
{
    ck_assert(f->data >= buf + 8 && f->data + f->data_len == buf + len);
    size_t covered = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const sfq_st_tensor *t = &f->tensors[i];
        ck_assert_ptr_nonnull(t->name);
        ck_assert(t->ndim >= 0 && t->ndim <= SFQ_ST_MAX_DIMS);
        ck_assert(t->begin <= t->end && t->end <= f->data_len);
        int64_t n = 1;
        for (int d = 0; d < t->ndim; d++)
            n *= t->shape[d];
        ck_assert_int_eq(n, t->numel);
        ck_assert_uint_eq(t->end - t->begin, (size_t)t->numel * sfq_dtype_size(t->dtype));
        covered += t->end - t->begin;
        if (t->dtype == SFQ_DT_F32 || t->dtype == SFQ_DT_F16 || t->dtype == SFQ_DT_BF16) {
            float *dst = malloc((size_t)t->numel * sizeof(float) + 1);
            ck_assert_int_eq(sfq_st_read_f32(f, t, dst), SARDFQ_OK);
            free(dst);
        }
    }
    ck_assert_uint_eq(covered, f->data_len);
    for (int i = 0; i < f->n_meta; i++)
        ck_assert(f->meta_keys[i] && f->meta_vals[i]);
}

/* ------------------------------------------------------------------------ */
/* Safetensors: round trip and conversions                                  */
/* ------------------------------------------------------------------------ */

/* Half value computed from the definition, independently of the library. */
static double half_ref(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp((double)m, -24) : ldexp((double)(1024 + m), e - 25);
    return s ? -v : v;
}

START_TEST(half_and_bfloat_exact)
{
    /* every finite half, against the definition */
    for (uint32_t h = 0; h < 65536; h++) {
        int e = (h >> 10) & 31;
        float f = sfq_half_to_float((uint16_t)h);
        if (e == 31) {
            if (h & 1023)
                ck_assert_msg(isnan(f), "0x%04x not NaN", h);
            else
                ck_assert_msg(isinf(f) && (f < 0) == (h >> 15), "0x%04x not inf", h);
            continue;
        }
        ck_assert_msg((double)f == half_ref((uint16_t)h), "half 0x%04x -> %a", h, (double)f);
        ck_assert_int_eq(!!signbit(f), (int)(h >> 15));
    }
    /* known patterns */
    ck_assert(sfq_half_to_float(0x3C00) == 1.0f);
    ck_assert(sfq_half_to_float(0x0001) == ldexpf(1.0f, -24));
    ck_assert(sfq_half_to_float(0x03FF) == 1023.0f * ldexpf(1.0f, -24));
    ck_assert(sfq_half_to_float(0x0400) == ldexpf(1.0f, -14));
    ck_assert(sfq_half_to_float(0x7BFF) == 65504.0f);
    ck_assert(sfq_half_to_float(0xC000) == -2.0f);
    ck_assert(sfq_half_to_float(0x3555) == 0.333251953125f);
    ck_assert(isinf(sfq_half_to_float(0x7C00)) && sfq_half_to_float(0x7C00) > 0);
    ck_assert(isinf(sfq_half_to_float(0xFC00)) && sfq_half_to_float(0xFC00) < 0);
    ck_assert(isnan(sfq_half_to_float(0x7E00)));
    ck_assert(sfq_half_to_float(0x8000) == 0.0f && signbit(sfq_half_to_float(0x8000)));
    /* bfloat16: the top half of a float32 */
    ck_assert(sfq_bf16_to_float(0x3F80) == 1.0f);
    ck_assert(sfq_bf16_to_float(0x4049) == 3.140625f);
    ck_assert(sfq_bf16_to_float(0xC2F7) == -123.5f);
    ck_assert(sfq_bf16_to_float(0x0001) == ldexpf(1.0f, -133));
    ck_assert(isinf(sfq_bf16_to_float(0x7F80)) && isinf(sfq_bf16_to_float(0xFF80)));
    ck_assert(isnan(sfq_bf16_to_float(0x7FC0)));
}
END_TEST

static const uint16_t HALF_BITS[] = {0x3C00, 0x0001, 0x7C00, 0xFC00, 0x8000, 0x7BFF, 0x03FF, 0x3555};
static const uint16_t BF16_BITS[] = {0x3F80, 0x4049, 0x0001, 0xFF80, 0xC2F7};

/* Write a small file with all kinds of entries; returns its path. */
static const char *write_sample(const char *dir)
{
    static float f32[6] = {1.5f, -2.25f, 0.0f, 3e-40f /* subnormal */, 1e30f, -7.0f};
    static uint8_t u8[5] = {0, 1, 2, 254, 255};
    static uint8_t f16s[sizeof HALF_BITS], bf16s[sizeof BF16_BITS]; /* little-endian */
    for (size_t i = 0; i < sizeof HALF_BITS / 2; i++) {
        f16s[2 * i] = (uint8_t)HALF_BITS[i];
        f16s[2 * i + 1] = (uint8_t)(HALF_BITS[i] >> 8);
    }
    for (size_t i = 0; i < sizeof BF16_BITS / 2; i++) {
        bf16s[2 * i] = (uint8_t)BF16_BITS[i];
        bf16s[2 * i + 1] = (uint8_t)(BF16_BITS[i] >> 8);
    }
    sfq_st_out_tensor t[6];
    memset(t, 0, sizeof t);
    t[0] = (sfq_st_out_tensor){"w.f32", SFQ_DT_F32, 2, {2, 3}, f32};
    t[1] = (sfq_st_out_tensor){"half \"quoted\" \\ name", SFQ_DT_F16, 1, {8}, f16s};
    t[2] = (sfq_st_out_tensor){"bf16.\xc3\xa9\xf0\x9f\x98\x80", SFQ_DT_BF16, 1, {5}, bf16s};
    t[3] = (sfq_st_out_tensor){"bytes", SFQ_DT_U8, 3, {1, 5, 1}, u8};
    t[4] = (sfq_st_out_tensor){"empty", SFQ_DT_I64, 2, {2, 0}, NULL};
    t[5] = (sfq_st_out_tensor){"scalar", SFQ_DT_F32, 0, {0}, f32 + 5};
    const char *keys[] = {"arch", "quote\"key", "ctl", "uni"};
    const char *vals[] = {"vit_tiny", "line\nvalue\twith\\escapes", "\x01\x1f", "h\xc3\xa9llo"};
    const char *path = tu_join(dir, "sample.safetensors");
    ck_assert_int_eq(sfq_st_write(path, t, 6, keys, vals, 4), SARDFQ_OK);
    return path;
}

START_TEST(safetensors_round_trip)
{
    char *dir = tu_make_tmpdir("sfq_io");
    const char *path = write_sample(dir);
    assert_no_temp_files(dir);
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(sfq_read_file(path, 1 << 20, &buf, &len), SARDFQ_OK);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | buf[i];
    ck_assert_uint_eq(hl % 8, 0); /* padded with spaces to a multiple of 8 */
    ck_assert_int_eq(buf[8], '{');

    sfq_st_file f;
    ck_assert_int_eq(sfq_st_parse(buf, len, &f), SARDFQ_OK);
    check_consistent(buf, len, &f);
    ck_assert_int_eq(f.n_tensors, 6);
    ck_assert_int_eq(f.n_meta, 4);
    ck_assert_str_eq(sfq_st_meta(&f, "arch"), "vit_tiny");
    ck_assert_str_eq(sfq_st_meta(&f, "quote\"key"), "line\nvalue\twith\\escapes");
    ck_assert_str_eq(sfq_st_meta(&f, "ctl"), "\x01\x1f");
    ck_assert_str_eq(sfq_st_meta(&f, "uni"), "h\xc3\xa9llo");
    ck_assert_ptr_null(sfq_st_meta(&f, "missing"));
    ck_assert_ptr_null(sfq_st_find(&f, "missing"));

    const sfq_st_tensor *t = sfq_st_find(&f, "w.f32");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, SFQ_DT_F32);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 2);
    ck_assert_int_eq(t->shape[1], 3);
    float v[8];
    ck_assert_int_eq(sfq_st_read_f32(&f, t, v), SARDFQ_OK);
    const float want32[6] = {1.5f, -2.25f, 0.0f, 3e-40f, 1e30f, -7.0f};
    ck_assert(memcmp(v, want32, sizeof want32) == 0);

    t = sfq_st_find(&f, "half \"quoted\" \\ name");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, SFQ_DT_F16);
    ck_assert_int_eq(sfq_st_read_f32(&f, t, v), SARDFQ_OK);
    ck_assert(v[0] == 1.0f);
    ck_assert(v[1] == ldexpf(1.0f, -24));
    ck_assert(isinf(v[2]) && v[2] > 0);
    ck_assert(isinf(v[3]) && v[3] < 0);
    ck_assert(v[4] == 0.0f && signbit(v[4]));
    ck_assert(v[5] == 65504.0f);
    ck_assert(v[6] == 1023.0f * ldexpf(1.0f, -24));
    ck_assert(v[7] == 0.333251953125f);

    t = sfq_st_find(&f, "bf16.\xc3\xa9\xf0\x9f\x98\x80");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(sfq_st_read_f32(&f, t, v), SARDFQ_OK);
    ck_assert(v[0] == 1.0f && v[1] == 3.140625f && v[2] == ldexpf(1.0f, -133));
    ck_assert(isinf(v[3]) && v[3] < 0 && v[4] == -123.5f);

    t = sfq_st_find(&f, "bytes");
    ck_assert_int_eq(t->dtype, SFQ_DT_U8);
    ck_assert_int_eq(t->numel, 5);
    ck_assert_int_eq(f.data[t->begin + 3], 254);
    ck_assert_int_eq(sfq_st_read_f32(&f, t, v), SARDFQ_E_UNSUPPORTED);
    ASSERT_MSG_HAS("U8");

    t = sfq_st_find(&f, "empty");
    ck_assert_int_eq(t->numel, 0);
    ck_assert_uint_eq(t->begin, t->end);
    t = sfq_st_find(&f, "scalar");
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_int_eq(t->numel, 1);
    ck_assert_int_eq(sfq_st_read_f32(&f, t, v), SARDFQ_OK);
    ck_assert(v[0] == -7.0f);

    sfq_st_release(&f);
    sfq_st_release(&f); /* idempotent */
    free(buf);

    /* an empty file: no tensors, no metadata */
    const char *p2 = tu_join(dir, "empty.safetensors");
    ck_assert_int_eq(sfq_st_write(p2, NULL, 0, NULL, NULL, 0), SARDFQ_OK);
    ck_assert_int_eq(sfq_read_file(p2, 100, &buf, &len), SARDFQ_OK);
    ck_assert_int_eq(sfq_st_parse(buf, len, &f), SARDFQ_OK);
    ck_assert_int_eq(f.n_tensors, 0);
    sfq_st_release(&f);
    free(buf);
    tu_rm_rf(dir);
}
END_TEST

START_TEST(safetensors_write_errors)
{
    char *dir = tu_make_tmpdir("sfq_io");
    float x[2] = {1, 2};
    sfq_st_out_tensor t[2] = {{"a", SFQ_DT_F32, 1, {2}, x}, {"a", SFQ_DT_F32, 1, {2}, x}};
    const char *path = tu_join(dir, "out.safetensors");
    ck_assert_int_eq(sfq_st_write(path, t, 2, NULL, NULL, 0), SARDFQ_E_INVALID_ARG);
    ASSERT_MSG_HAS("duplicate");
    t[1].name = "__metadata__";
    ck_assert_int_eq(sfq_st_write(path, t, 2, NULL, NULL, 0), SARDFQ_E_INVALID_ARG);
    t[1].name = "b";
    t[1].shape[0] = -1;
    ck_assert_int_eq(sfq_st_write(path, t, 2, NULL, NULL, 0), SARDFQ_E_INVALID_ARG);
    t[1].shape[0] = 2;
    t[1].dtype = SFQ_DT_COUNT;
    ck_assert_int_eq(sfq_st_write(path, t, 2, NULL, NULL, 0), SARDFQ_E_INVALID_ARG);
    t[1].dtype = SFQ_DT_F32;
    t[1].data = NULL;
    ck_assert_int_eq(sfq_st_write(path, t, 2, NULL, NULL, 0), SARDFQ_E_INVALID_ARG);
    t[1].data = x;
    const char *k[] = {"k", "k"}, *v[] = {"1", "2"};
    ck_assert_int_eq(sfq_st_write(path, t, 2, k, v, 2), SARDFQ_E_INVALID_ARG);
    const char *bad[] = {"\xff"};
    ck_assert_int_eq(sfq_st_write(path, t, 2, bad, v, 1), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(access(path, F_OK), -1); /* nothing written */
    /* a directory that does not exist */
    const char *nodir = tu_join(dir, "no/such/dir/x.safetensors");
    ck_assert_int_eq(sfq_st_write(nodir, t, 2, NULL, NULL, 0), SARDFQ_E_IO);
    ASSERT_MSG_HAS("no/such/dir");
    /* renaming over a directory fails: the temp file must be removed */
    char sub[512];
    snprintf(sub, sizeof sub, "%s/adir", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    FILE *fp = fopen(tu_join(sub, "keep"), "w");
    fclose(fp);
    ck_assert_int_eq(sfq_st_write(sub, t, 2, NULL, NULL, 0), SARDFQ_E_IO);
    ASSERT_MSG_HAS("rename");
    assert_no_temp_files(dir);
    /* success, and the result overwrites atomically */
    ck_assert_int_eq(sfq_st_write(path, t, 2, NULL, NULL, 0), SARDFQ_OK);
    ck_assert_int_eq(sfq_st_write(path, t, 1, NULL, NULL, 0), SARDFQ_OK);
    assert_no_temp_files(dir);
    tu_rm_rf(dir);
}
END_TEST

START_TEST(read_file_errors)
{
    char *dir = tu_make_tmpdir("sfq_io");
    uint8_t *buf = (uint8_t *)(uintptr_t)1;
    size_t len = 77;
    const char *missing = tu_join(dir, "missing.safetensors");
    ck_assert_int_eq(sfq_read_file(missing, 100, &buf, &len), SARDFQ_E_IO);
    ASSERT_MSG_HAS("missing.safetensors");
    ASSERT_MSG_HAS(strerror(ENOENT));
    ck_assert_int_eq(sfq_read_file(dir, 100, &buf, &len), SARDFQ_E_IO);
    ASSERT_MSG_HAS("not a regular file");
    const char *p = tu_join(dir, "ten");
    write_bytes(p, "0123456789", 10);
    ck_assert_int_eq(sfq_read_file(p, 9, &buf, &len), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("limit");
    ck_assert(buf == (uint8_t *)(uintptr_t)1 && len == 77); /* outputs unchanged */
    ck_assert_int_eq(sfq_read_file(p, 10, &buf, &len), SARDFQ_OK);
    ck_assert_uint_eq(len, 10);
    ck_assert(memcmp(buf, "0123456789", 10) == 0);
    sfq_free(buf);
    tu_rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Safetensors: mutations                                                   */
/* ------------------------------------------------------------------------ */

static uint8_t *sample_buffer(size_t *len, uint64_t *hl)
{
    char *dir = tu_make_tmpdir("sfq_io");
    const char *path = write_sample(dir);
    uint8_t *buf;
    ck_assert_int_eq(sfq_read_file(path, 1 << 20, &buf, len), SARDFQ_OK);
    tu_rm_rf(dir);
    *hl = 0;
    for (int i = 7; i >= 0; i--)
        *hl = *hl << 8 | buf[i];
    return buf;
}

/* Parse an exact-size copy (so ASan sees overreads); on success check
 * consistency, on failure the status and message. */
static sardfq_status parse_copy(const uint8_t *src, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, src, len);
    sfq_st_file f;
    sardfq_status s = sfq_st_parse(copy, len, &f);
    if (s == SARDFQ_OK) {
        check_consistent(copy, len, &f);
        sfq_st_release(&f);
    } else {
        ck_assert_msg(s == SARDFQ_E_FORMAT || s == SARDFQ_E_UNSUPPORTED, "status %d (%s)", s,
                      sardfq_last_error());
        ck_assert_msg(sardfq_last_error()[0] != '\0', "failure without a message");
        ck_assert(all_zero(&f, sizeof f));
    }
    free(copy);
    return s;
}

START_TEST(safetensors_truncations)
{
    size_t len;
    uint64_t hl;
    uint8_t *buf = sample_buffer(&len, &hl);
    ck_assert_int_eq(parse_copy(buf, len), SARDFQ_OK);
    for (size_t cut = 0; cut <= 8 + hl; cut++)
        ck_assert_msg(parse_copy(buf, cut) != SARDFQ_OK, "cut at %zu parsed", cut);
    for (size_t cut = 8 + hl; cut < len; cut++)
        ck_assert_int_eq(parse_copy(buf, cut), SARDFQ_E_FORMAT);
    /* appending bytes is refused too */
    uint8_t *more = malloc(len + 3);
    memcpy(more, buf, len);
    memset(more + len, 0, 3);
    ck_assert_int_eq(parse_copy(more, len + 3), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("trailing");
    free(more);
    sfq_free(buf);
}
END_TEST

START_TEST(safetensors_random_flips)
{
    size_t len;
    uint64_t hl;
    uint8_t *buf = sample_buffer(&len, &hl);
    uint8_t *m = malloc(len);
    rng_state = 0x1234567887654321ull;
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(m, buf, len);
        int flips = 1 + (iter % 4 == 3 ? (int)(rng_next() % 3) : 0);
        for (int k = 0; k < flips; k++) {
            size_t pos = (rng_next() % 10 < 9) ? (size_t)(rng_next() % (8 + hl))
                                               : (size_t)(rng_next() % len);
            uint8_t nv;
            switch (rng_next() % 4) {
            case 0: nv = (uint8_t)rng_next(); break;
            case 1: nv = (uint8_t)(m[pos] ^ (1u << (rng_next() % 8))); break;
            case 2: nv = "{}[]\":,0123456789-.eE\\u "[rng_next() % 24]; break;
            default: nv = (uint8_t)(m[pos] + 1); break;
            }
            m[pos] = nv;
        }
        if (parse_copy(m, len) == SARDFQ_OK)
            ok++;
        else
            bad++;
    }
    fprintf(stderr, "random flips: %d parsed consistently, %d refused\n", ok, bad);
    ck_assert(bad > 1000); /* most mutations of the header must be caught */
    ck_assert(ok > 0);     /* some (e.g. in data, names) are harmless */
    free(m);
    sfq_free(buf);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Safetensors: one malformed header per rule                               */
/* ------------------------------------------------------------------------ */

#define T4(name, off0, off1) \
    "\"" name "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" #off0 "," #off1 "]}"

START_TEST(safetensors_rules)
{
    sfq_st_file f;
    /* too short for the length field */
    uint8_t tiny[5] = {1, 0, 0, 0, 0};
    memset(&f, 0xab, sizeof f);
    ck_assert_int_eq(sfq_st_parse(tiny, 5, &f), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("too short");
    ck_assert(all_zero(&f, sizeof f));
    /* header length beyond the buffer */
    uint8_t b1[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    ck_assert_int_eq(sfq_st_parse(b1, 16, &f), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("beyond the end");
    /* header length above the limit (checked before the buffer) */
    uint64_t big = (uint64_t)SFQ_ST_MAX_HEADER + 1;
    for (int i = 0; i < 8; i++)
        b1[i] = (uint8_t)(big >> (8 * i));
    ck_assert_int_eq(sfq_st_parse(b1, 16, &f), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("exceeds the limit");
    for (int i = 0; i < 8; i++)
        b1[i] = 0xff;
    ck_assert_int_eq(sfq_st_parse(b1, 16, &f), SARDFQ_E_FORMAT);

    /* JSON level */
    expect_bad("hello world", 0, SARDFQ_E_FORMAT, "not a JSON object");
    expect_bad("[1,2]", 0, SARDFQ_E_FORMAT, "not a JSON object");
    expect_bad("{} x", 0, SARDFQ_E_FORMAT, "unexpected data after");
    expect_bad("{\"a\" {}}", 0, SARDFQ_E_FORMAT, "expected ':'");
    expect_bad("{" T4("a", 0, 4) ",}", 4, SARDFQ_E_FORMAT, "expected a string");
    expect_bad("{" T4("a", 0, 4), 4, SARDFQ_E_FORMAT, "expected ',' or '}'");
    expect_bad("{\"a", 0, SARDFQ_E_FORMAT, "unterminated string");
    expect_bad("{\"a\\x\":{}}", 0, SARDFQ_E_FORMAT, "invalid escape");
    expect_bad("{\"a\\u12G4\":{}}", 0, SARDFQ_E_FORMAT, "\\u escape");
    expect_bad("{\"a\\uD800\":{}}", 0, SARDFQ_E_FORMAT, "surrogate");
    expect_bad("{\"a\\uDC00\":{}}", 0, SARDFQ_E_FORMAT, "surrogate");
    expect_bad("{\"a\\u0000\":{}}", 0, SARDFQ_E_FORMAT, "NUL");
    expect_bad("{\"a\xff\":{}}", 0, SARDFQ_E_FORMAT, "UTF-8");
    expect_bad("{\"a\xc0\x80\":{}}", 0, SARDFQ_E_FORMAT, "UTF-8"); /* overlong */
    expect_bad("{\"a\x01\":{}}", 0, SARDFQ_E_FORMAT, "control character");

    /* entries */
    expect_bad("{\"a\":5}", 0, SARDFQ_E_FORMAT, "'a' is not an object");
    expect_bad("{\"a\":[]}", 0, SARDFQ_E_FORMAT, "'a' is not an object");
    expect_bad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SARDFQ_E_FORMAT,
               "no 'dtype'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, SARDFQ_E_FORMAT,
               "no 'shape'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, SARDFQ_E_FORMAT,
               "no 'data_offsets'");
    expect_bad("{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SARDFQ_E_FORMAT,
               "dtype of tensor 'a' must be a string");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               4, SARDFQ_E_FORMAT, "duplicate field 'dtype'");
    expect_bad("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "unknown dtype 'F33'");
    expect_bad("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
               SARDFQ_E_UNSUPPORTED, "F8_E4M3");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "shape of tensor 'a' must be an array");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "integers");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "integers");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "integers, found a boolean");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "integers, found null");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "integers, found a string");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "leading zero");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "integers");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
               4, SARDFQ_E_UNSUPPORTED, "more than 8");
    expect_ok("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4);
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "negative");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-0.5],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "negative");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}",
               4, SARDFQ_E_FORMAT, "too large");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
               "\"data_offsets\":[0,4]}}",
               4, SARDFQ_E_FORMAT, "overflows");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
               "\"data_offsets\":[0,4]}}",
               4, SARDFQ_E_FORMAT, "byte size of tensor 'a'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
               SARDFQ_E_FORMAT, "data_offsets of tensor 'a' must have 2 entries");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
               SARDFQ_E_FORMAT, "data_offsets of tensor 'a' has more than 2");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
               SARDFQ_E_FORMAT, "negative");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}}", 4,
               SARDFQ_E_FORMAT, "must be an array");
    expect_bad("{" T4("a", 8, 4) "}", 8, SARDFQ_E_FORMAT, "end before they begin");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
               SARDFQ_E_FORMAT, "size mismatch");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
               SARDFQ_E_FORMAT, "out of range");
    expect_bad("{" T4("a", 0, 4) "," T4("b", 4, 8) "}", 4, SARDFQ_E_FORMAT, "out of range");
    /* tiling */
    expect_ok("{" T4("a", 0, 4) "," T4("b", 4, 8) "}", 8);
    expect_ok("{" T4("b", 4, 8) "," T4("a", 0, 4) "}", 8); /* any order in the header */
    expect_bad("{" T4("a", 0, 4) "," T4("b", 2, 6) "}", 8, SARDFQ_E_FORMAT, "overlap");
    expect_bad("{" T4("a", 0, 4) "," T4("b", 0, 4) "}", 4, SARDFQ_E_FORMAT, "overlap");
    expect_bad("{" T4("a", 0, 4) "," T4("b", 8, 12) "}", 12, SARDFQ_E_FORMAT, "hole");
    expect_bad("{" T4("a", 4, 8) "}", 8, SARDFQ_E_FORMAT, "hole");
    expect_bad("{" T4("a", 0, 4) "}", 8, SARDFQ_E_FORMAT, "4 trailing bytes");
    expect_bad("{}", 1, SARDFQ_E_FORMAT, "trailing");
    expect_bad("{" T4("a", 0, 4) "," T4("a", 4, 8) "}", 8, SARDFQ_E_FORMAT,
               "duplicate tensor name 'a'");
    /* metadata */
    expect_bad("{\"__metadata__\":\"x\"}", 0, SARDFQ_E_FORMAT, "__metadata__ must be an object");
    expect_bad("{\"__metadata__\":[]}", 0, SARDFQ_E_FORMAT, "__metadata__ must be an object");
    expect_bad("{\"__metadata__\":{\"k\":1}}", 0, SARDFQ_E_FORMAT,
               "__metadata__ value of key 'k' must be a string");
    expect_bad("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, SARDFQ_E_FORMAT, "must be a string");
    expect_bad("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, SARDFQ_E_FORMAT,
               "duplicate __metadata__ key 'k'");
    expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, SARDFQ_E_FORMAT,
               "duplicate __metadata__");
    /* nesting depth in a skipped unknown field */
    char deep[512] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":";
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    for (int i = 0; i < 100; i++)
        strcat(deep, "]");
    strcat(deep, "}}");
    expect_bad(deep, 4, SARDFQ_E_FORMAT, "nesting deeper");
    /* accepted variants */
    expect_ok("{}", 0);
    expect_ok(" \t\r\n{ } \n   ", 0);
    expect_ok("{\"__metadata__\":{}}", 0);
    expect_ok("{\"a\":{\"data_offsets\":[0,4],\"shape\":[1],\"dtype\":\"F32\","
              "\"extra\":{\"x\":[1,2.5e-3,true,false,null,\"s\"]}}}",
              4);
    expect_ok("{\"e\":{\"dtype\":\"F16\",\"shape\":[0,-0],\"data_offsets\":[0,0]}}", 0);
    /* \u escapes decode to UTF-8 */
    size_t len;
    uint8_t *b = make_st("{\"\\u00e9\\ud83d\\ude00\\n\":{\"dtype\":\"U8\",\"shape\":[],"
                         "\"data_offsets\":[0,1]}}",
                         1, &len);
    ck_assert_int_eq(sfq_st_parse(b, len, &f), SARDFQ_OK);
    ck_assert_str_eq(f.tensors[0].name, "\xc3\xa9\xf0\x9f\x98\x80\n");
    sfq_st_release(&f);
    free(b);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* IDX                                                                      */
/* ------------------------------------------------------------------------ */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Write an IDX file: magic, dims, then payload_len bytes (i * 7 + 3). */
static void write_idx(const char *path, uint32_t magic, const uint32_t *dims, int nd,
                      size_t payload_len, int gz)
{
    size_t n = 4 + 4 * (size_t)nd + payload_len;
    uint8_t *b = malloc(n);
    put_be32(b, magic);
    for (int i = 0; i < nd; i++)
        put_be32(b + 4 + 4 * i, dims[i]);
    for (size_t i = 0; i < payload_len; i++)
        b[4 + 4 * nd + i] = (uint8_t)(i * 7 + 3);
    if (gz) {
        gzFile g = gzopen(path, "wb");
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(gzwrite(g, b, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(g), Z_OK);
    } else {
        write_bytes(path, b, n);
    }
    free(b);
}

START_TEST(idx_read)
{
    char *dir = tu_make_tmpdir("sfq_io");
    uint32_t d[3] = {5, 4, 3};
    for (int gz = 0; gz < 2; gz++) {
        const char *pi = tu_join(dir, gz ? "img.gz" : "img");
        const char *pl = tu_join(dir, gz ? "lab.gz" : "lab");
        write_idx(pi, 0x803, d, 3, 60, gz);
        write_idx(pl, 0x801, d, 1, 5, gz);
        sfq_u8_images im;
        ck_assert_int_eq(sfq_idx_read_images(pi, &im), SARDFQ_OK);
        ck_assert_int_eq(im.n, 5);
        ck_assert_int_eq(im.h, 4);
        ck_assert_int_eq(im.w, 3);
        ck_assert_int_eq(im.c, 1);
        for (int i = 0; i < 60; i++)
            ck_assert_int_eq(im.pixels[i], (uint8_t)(i * 7 + 3));
        sfq_free(im.pixels);
        int32_t *lab;
        int64_t n;
        ck_assert_int_eq(sfq_idx_read_labels(pl, &lab, &n), SARDFQ_OK);
        ck_assert_int_eq(n, 5);
        for (int i = 0; i < 5; i++)
            ck_assert_int_eq(lab[i], (uint8_t)(i * 7 + 3));
        sfq_free(lab);
        /* wrong kind of file */
        ck_assert_int_eq(sfq_idx_read_labels(pi, &lab, &n), SARDFQ_E_FORMAT);
        ASSERT_MSG_HAS("magic 0x00000803");
        ck_assert_int_eq(sfq_idx_read_images(pl, &im), SARDFQ_E_FORMAT);
        ASSERT_MSG_HAS("not an IDX image file");
        /* truncated payload, plain or compressed */
        write_idx(pi, 0x803, d, 3, 59, gz);
        ck_assert_int_eq(sfq_idx_read_images(pi, &im), SARDFQ_E_FORMAT);
        ASSERT_MSG_HAS("truncated");
        write_idx(pl, 0x801, d, 1, 4, gz);
        ck_assert_int_eq(sfq_idx_read_labels(pl, &lab, &n), SARDFQ_E_FORMAT);
        ASSERT_MSG_HAS("truncated");
        /* truncated header */
        write_bytes(pi, "\0\0\x08\x03\0\0", 6);
        ck_assert_int_eq(sfq_idx_read_images(pi, &im), SARDFQ_E_FORMAT);
        ASSERT_MSG_HAS("truncated");
        /* trailing bytes */
        write_idx(pi, 0x803, d, 3, 61, gz);
        ck_assert_int_eq(sfq_idx_read_images(pi, &im), SARDFQ_E_FORMAT);
        ASSERT_MSG_HAS("trailing");
    }
    /* a corrupt gzip stream: cut a valid .gz in the middle */
    const char *pz = tu_join(dir, "cut.gz");
    uint32_t dd[3] = {50, 28, 28};
    write_idx(pz, 0x803, dd, 3, 50 * 28 * 28, 1);
    size_t zl;
    uint8_t *z = tu_read_file(pz, &zl);
    write_bytes(pz, z, zl / 2);
    free(z);
    sfq_u8_images im;
    ck_assert_int_eq(sfq_idx_read_images(pz, &im), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("cut.gz");
    /* all the data there but the gzip trailer (CRC, length) cut: zlib says
     * so only through gzerror (found by tests/fuzz/fuzz_idx) */
    write_idx(pz, 0x803, dd, 3, 50 * 28 * 28, 1);
    z = tu_read_file(pz, &zl);
    write_bytes(pz, z, zl - 4);
    free(z);
    ck_assert_int_eq(sfq_idx_read_images(pz, &im), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("truncated");
    /* implausible or huge dimensions do not allocate them */
    const char *pb = tu_join(dir, "big");
    uint32_t huge[3] = {50000000, 28, 28}; /* 39 GB announced, 100 bytes present */
    write_idx(pb, 0x803, huge, 3, 100, 0);
    ck_assert_int_eq(sfq_idx_read_images(pb, &im), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("truncated");
    huge[0] = 0x7fffffff; /* beyond the 64 GiB cap */
    write_idx(pb, 0x803, huge, 3, 100, 0);
    ck_assert_int_eq(sfq_idx_read_images(pb, &im), SARDFQ_E_UNSUPPORTED);
    ASSERT_MSG_HAS("too large");
    uint32_t zero[3] = {1, 0, 28};
    write_idx(pb, 0x803, zero, 3, 0, 0);
    ck_assert_int_eq(sfq_idx_read_images(pb, &im), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("implausible");
    uint32_t wide[3] = {1, 100000, 28};
    write_idx(pb, 0x803, wide, 3, 0, 0);
    ck_assert_int_eq(sfq_idx_read_images(pb, &im), SARDFQ_E_FORMAT);
    /* element types other than u8 */
    write_idx(pb, 0x0d03, d, 3, 240, 0);
    ck_assert_int_eq(sfq_idx_read_images(pb, &im), SARDFQ_E_UNSUPPORTED);
    ASSERT_MSG_HAS("0x0d");
    /* missing file */
    ck_assert_int_eq(sfq_idx_read_images(tu_join(dir, "nope"), &im), SARDFQ_E_IO);
    ASSERT_MSG_HAS("nope");
    /* empty set is valid */
    uint32_t none[3] = {0, 28, 28};
    write_idx(pb, 0x803, none, 3, 0, 0);
    ck_assert_int_eq(sfq_idx_read_images(pb, &im), SARDFQ_OK);
    ck_assert_int_eq(im.n, 0);
    sfq_free(im.pixels);
    tu_rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* PNG                                                                      */
/* ------------------------------------------------------------------------ */

START_TEST(png_round_trip)
{
    char *dir = tu_make_tmpdir("sfq_io");
    const int h = 13, w = 17;
    uint8_t src[13 * 17 * 3];
    rng_state = 42;
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)rng_next();
    for (int c = 1; c <= 3; c += 2) {
        const char *p = tu_join(dir, c == 1 ? "g.png" : "rgb.png");
        ck_assert_int_eq(sfq_png_write(p, src, h, w, c), SARDFQ_OK);
        uint8_t *px;
        int rh, rw;
        ck_assert_int_eq(sfq_png_read(p, c, &px, &rh, &rw), SARDFQ_OK);
        ck_assert_int_eq(rh, h);
        ck_assert_int_eq(rw, w);
        ck_assert(memcmp(px, src, (size_t)h * w * c) == 0);
        sfq_free(px);
    }
    /* a gray image read as RGB is replicated */
    uint8_t *px;
    int rh, rw;
    ck_assert_int_eq(sfq_png_read(tu_join(dir, "g.png"), 3, &px, &rh, &rw), SARDFQ_OK);
    for (int i = 0; i < h * w; i++)
        ck_assert(px[3 * i] == src[i] && px[3 * i + 1] == src[i] && px[3 * i + 2] == src[i]);
    sfq_free(px);
    /* an RGB image with equal channels read as gray keeps the value */
    uint8_t grayish[13 * 17 * 3];
    for (int i = 0; i < h * w; i++)
        grayish[3 * i] = grayish[3 * i + 1] = grayish[3 * i + 2] = src[i];
    ck_assert_int_eq(sfq_png_write(tu_join(dir, "gg.png"), grayish, h, w, 3), SARDFQ_OK);
    ck_assert_int_eq(sfq_png_read(tu_join(dir, "gg.png"), 1, &px, &rh, &rw), SARDFQ_OK);
    for (int i = 0; i < h * w; i++)
        ck_assert_int_le(abs((int)px[i] - (int)src[i]), 1);
    sfq_free(px);
    assert_no_temp_files(dir);
    /* 16-bit gray (no gAMA) is scaled to 8 bits, not gamma-encoded */
    ck_assert_int_eq(sfq_png_read(tu_data("io/gray16.png"), 1, &px, &rh, &rw), SARDFQ_OK);
    ck_assert_int_eq(rw, 16);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(px[i], 17 * i);
    sfq_free(px);
    /* errors */
    uint8_t *sentinel = (uint8_t *)(uintptr_t)8;
    px = sentinel;
    ck_assert_int_eq(sfq_png_read(tu_join(dir, "missing.png"), 3, &px, &rh, &rw), SARDFQ_E_IO);
    ASSERT_MSG_HAS("missing.png");
    write_bytes(tu_join(dir, "fake.png"), "this is not a png at all", 24);
    ck_assert_int_eq(sfq_png_read(tu_join(dir, "fake.png"), 3, &px, &rh, &rw), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("fake.png");
    /* truncated PNG */
    size_t len;
    uint8_t *b = tu_read_file(tu_join(dir, "rgb.png"), &len);
    write_bytes(tu_join(dir, "cut.png"), b, len / 2);
    free(b);
    ck_assert_int_eq(sfq_png_read(tu_join(dir, "cut.png"), 3, &px, &rh, &rw), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("cut.png");
    ck_assert_ptr_eq(px, sentinel);
    ck_assert_int_eq(sfq_png_read(tu_join(dir, "g.png"), 2, &px, &rh, &rw), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_png_write(tu_join(dir, "no/dir/x.png"), src, h, w, 3), SARDFQ_E_IO);
    ASSERT_MSG_HAS("no/dir");
    ck_assert_int_eq(sfq_png_write(tu_join(dir, "x.png"), src, 0, w, 3), SARDFQ_E_INVALID_ARG);
    assert_no_temp_files(dir);
    tu_rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Eval transform against PIL                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    sfq_st_file f;
    uint8_t *buf;
} fixture;

static void fixture_open(fixture *fx)
{
    size_t len;
    ck_assert_int_eq(sfq_read_file(tu_data("io/resize_expected.safetensors"), 1 << 22, &fx->buf,
                                   &len),
                     SARDFQ_OK);
    ck_assert_int_eq(sfq_st_parse(fx->buf, len, &fx->f), SARDFQ_OK);
}

static void fixture_close(fixture *fx)
{
    sfq_st_release(&fx->f);
    sfq_free(fx->buf);
}

static float *fixture_f32(fixture *fx, const char *name, int64_t *numel)
{
    const sfq_st_tensor *t = sfq_st_find(&fx->f, name);
    ck_assert_msg(t != NULL, "fixture tensor %s missing", name);
    float *v = malloc((size_t)t->numel * sizeof(float));
    ck_assert_int_eq(sfq_st_read_f32(&fx->f, t, v), SARDFQ_OK);
    *numel = t->numel;
    return v;
}

static const float IMNET_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IMNET_STD[3] = {0.229f, 0.224f, 0.225f};

START_TEST(eval_transform_matches_pil)
{
    static const struct {
        const char *name, *png;
        int c, size;
        float crop;
        const float *mean, *std;
    } cases[] = {
        {"rgb_24_0.875", "io/resize_rgb.png", 3, 24, 0.875f, IMNET_MEAN, IMNET_STD},
        {"rgb_32_0.9", "io/resize_rgb.png", 3, 32, 0.9f, IMNET_MEAN, IMNET_STD},
        {"rgb_16_1.0", "io/resize_rgb.png", 3, 16, 1.0f, NULL, NULL},
        {"rgb_40_0.8", "io/resize_rgb.png", 3, 40, 0.8f, IMNET_MEAN, IMNET_STD},
        {"rgb_24_1.5", "io/resize_rgb.png", 3, 24, 1.5f, IMNET_MEAN, IMNET_STD},
        {"gray_24_0.875", "io/resize_gray.png", 1, 24, 0.875f, NULL, NULL},
        {"small_24_0.875", "io/resize_small.png", 3, 24, 0.875f, IMNET_MEAN, IMNET_STD},
        {"small_20_0.5", "io/resize_small.png", 3, 20, 0.5f, IMNET_MEAN, IMNET_STD},
    };
    const float half[3] = {0.5f, 0.5f, 0.5f}, mn_mean[1] = {0.1307f}, mn_std[1] = {0.3081f};
    fixture fx;
    fixture_open(&fx);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const float *mean = cases[k].mean, *std = cases[k].std;
        if (!mean) {
            mean = cases[k].c == 1 ? mn_mean : half;
            std = cases[k].c == 1 ? mn_std : half;
        }
        uint8_t *px;
        int h, w;
        ck_assert_int_eq(sfq_png_read(tu_data(cases[k].png), cases[k].c, &px, &h, &w), SARDFQ_OK);
        int64_t n;
        float *want = fixture_f32(&fx, cases[k].name, &n);
        int s = cases[k].size;
        ck_assert_int_eq(n, (int64_t)cases[k].c * s * s);
        float *got = malloc((size_t)n * sizeof(float));
        ck_assert_int_eq(sfq_eval_transform(px, h, w, cases[k].c, s, s, cases[k].crop, mean, std,
                                            got),
                         SARDFQ_OK);
        double d = tu_max_abs_diff(got, want, (size_t)n);
        ck_assert_msg(d == 0.0, "%s: max |diff| %g against PIL", cases[k].name, d);
        free(got);
        free(want);
        sfq_free(px);
    }
    /* RGBA: alpha is dropped, as PIL's convert("RGB") */
    uint8_t *px;
    int h, w;
    ck_assert_int_eq(sfq_png_read(tu_data("io/resize_rgba.png"), 3, &px, &h, &w), SARDFQ_OK);
    const sfq_st_tensor *t = sfq_st_find(&fx.f, "rgba_as_rgb");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->numel, (int64_t)h * w * 3);
    ck_assert(memcmp(px, fx.f.data + t->begin, (size_t)t->numel) == 0);
    sfq_free(px);
    fixture_close(&fx);
}
END_TEST

START_TEST(eval_transform_args)
{
    uint8_t img[4 * 4 * 3] = {0};
    float out[3 * 4 * 4];
    const float m[3] = {0, 0, 0}, s[3] = {1, 1, 1}, z[3] = {1, 0, 1};
    ck_assert_int_eq(sfq_eval_transform(NULL, 4, 4, 3, 4, 4, 1.0f, m, s, out), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_eval_transform(img, 0, 4, 3, 4, 4, 1.0f, m, s, out), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_eval_transform(img, 4, 4, 2, 4, 4, 1.0f, m, s, out), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_eval_transform(img, 4, 4, 3, 4, 4, 0.0f, m, s, out), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_eval_transform(img, 4, 4, 3, 4, 4, NAN, m, s, out), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_eval_transform(img, 4, 4, 3, 4, 4, 1.0f, m, z, out), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_eval_transform(img, 4, 4, 3, 4, 4, 100.0f, m, s, out),
                     SARDFQ_E_INVALID_ARG);
    /* identity: same size, crop 1 */
    for (int i = 0; i < 48; i++)
        img[i] = (uint8_t)(i * 5);
    ck_assert_int_eq(sfq_eval_transform(img, 4, 4, 3, 4, 4, 1.0f, m, s, out), SARDFQ_OK);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 16; i++)
            ck_assert(out[c * 16 + i] == (float)img[i * 3 + c] / 255.0f);
    /* extreme aspect ratio: long side capped, not allocated */
    uint8_t line[1 * 2000];
    memset(line, 9, sizeof line);
    float o1[8 * 8];
    ck_assert_int_eq(sfq_eval_transform(line, 1, 2000, 1, 8, 8, 0.01f, m, s, o1),
                     SARDFQ_E_UNSUPPORTED);
    ck_assert_int_eq(sfq_eval_transform(line, 1, 2000, 1, 8, 8, 1.0f, m, s, o1), SARDFQ_OK);
    /* non-square output (timm ResizeKeepRatio) runs */
    float o2[3 * 6 * 10];
    ck_assert_int_eq(sfq_eval_transform(img, 4, 4, 3, 6, 10, 0.9f, m, s, o2), SARDFQ_OK);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Datasets                                                                 */
/* ------------------------------------------------------------------------ */

static sfq_dataset_cfg cfg_rgb16(void)
{
    sfq_dataset_cfg c;
    memset(&c, 0, sizeof c);
    c.c = 3;
    c.h = c.w = 16;
    memcpy(c.mean, IMNET_MEAN, sizeof c.mean);
    memcpy(c.std, IMNET_STD, sizeof c.std);
    c.crop_pct = 0.875f;
    return c;
}

START_TEST(dataset_png_folder)
{
    sfq_dataset_cfg cfg = cfg_rgb16();
    sardfq_dataset *d = NULL;
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_data("io/classes"), &cfg, &d), SARDFQ_OK);
    ck_assert_int_eq(sardfq_dataset_count(d), 4);
    fixture fx;
    fixture_open(&fx);
    int64_t n;
    float *want = fixture_f32(&fx, "dataset_16", &n);
    ck_assert_int_eq(n, 4 * 3 * 16 * 16);
    const sfq_st_tensor *tl = sfq_st_find(&fx.f, "dataset_labels");
    ck_assert_ptr_nonnull(tl);
    int32_t want_lab[4];
    memcpy(want_lab, fx.f.data + tl->begin, sizeof want_lab);
    ck_assert(want_lab[0] == 0 && want_lab[1] == 0 && want_lab[2] == 1 && want_lab[3] == 1);

    float *got = malloc((size_t)n * sizeof(float));
    int32_t lab[4] = {-1, -1, -1, -1};
    ck_assert_int_eq(sardfq_dataset_read(d, 0, 4, got, lab), SARDFQ_OK);
    ck_assert_msg(tu_max_abs_diff(got, want, (size_t)n) == 0.0, "dataset images differ: %g",
                  tu_max_abs_diff(got, want, (size_t)n));
    ck_assert(memcmp(lab, want_lab, sizeof lab) == 0);
    /* a sub-range, labels may be NULL */
    ck_assert_int_eq(sardfq_dataset_read(d, 1, 2, got, NULL), SARDFQ_OK);
    ck_assert(tu_max_abs_diff(got, want + 768, 2 * 768) == 0.0);
    ck_assert_int_eq(sardfq_dataset_read(d, 3, 1, got, lab), SARDFQ_OK);
    ck_assert_int_eq(lab[0], 1);
    /* bad ranges leave the outputs unchanged */
    for (int i = 0; i < 768; i++)
        got[i] = 42.0f;
    lab[0] = 7;
    ck_assert_int_eq(sardfq_dataset_read(d, 3, 2, got, lab), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_dataset_read(d, -1, 1, got, lab), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_dataset_read(d, 0, 0, got, lab), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_dataset_read(d, 5, 1, got, lab), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_dataset_read(d, 0, 1, NULL, lab), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_dataset_read(NULL, 0, 1, got, lab), SARDFQ_E_INVALID_ARG);
    ck_assert(got[0] == 42.0f && got[767] == 42.0f && lab[0] == 7);
    sardfq_dataset_free(d);
    sardfq_dataset_free(NULL);
    ck_assert_int_eq(sardfq_dataset_count(NULL), 0);

    /* one channel: PNGs read as gray */
    cfg.c = 1;
    cfg.mean[0] = 0.5f;
    cfg.std[0] = 0.5f;
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_data("io/classes"), &cfg, &d), SARDFQ_OK);
    ck_assert_int_eq(sardfq_dataset_read(d, 0, 4, got, lab), SARDFQ_OK);
    for (int i = 0; i < 4 * 256; i++)
        ck_assert(got[i] >= -1.0f && got[i] <= 1.0f);
    sardfq_dataset_free(d);
    free(got);
    free(want);
    fixture_close(&fx);
}
END_TEST

START_TEST(dataset_folder_errors)
{
    char *dir = tu_make_tmpdir("sfq_io");
    char root[300];
    snprintf(root, sizeof root, "%s", dir);
    sfq_dataset_cfg cfg = cfg_rgb16();
    sardfq_dataset *sentinel = (sardfq_dataset *)(uintptr_t)16, *d = sentinel;
    /* missing path */
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_join(root, "nope"), &cfg, &d), SARDFQ_E_IO);
    ASSERT_MSG_HAS("nope");
    ck_assert_ptr_eq(d, sentinel);
    /* a file, not a folder */
    write_bytes(tu_join(root, "file"), "x", 1);
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_join(root, "file"), &cfg, &d), SARDFQ_E_INVALID_ARG);
    ASSERT_MSG_HAS("not a folder");
    /* an empty folder */
    ck_assert_int_eq(mkdir(tu_join(root, "empty"), 0700), 0);
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_join(root, "empty"), &cfg, &d), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("neither IDX");
    /* a class folder without PNG images */
    ck_assert_int_eq(mkdir(tu_join(root, "set"), 0700), 0);
    ck_assert_int_eq(mkdir(tu_join(root, "set/a"), 0700), 0);
    ck_assert_int_eq(mkdir(tu_join(root, "set/b"), 0700), 0);
    uint8_t px[8 * 8 * 3];
    memset(px, 128, sizeof px);
    ck_assert_int_eq(sfq_png_write(tu_join(root, "set/a/1.png"), px, 8, 8, 3), SARDFQ_OK);
    write_bytes(tu_join(root, "set/b/readme.txt"), "x", 1);
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_join(root, "set"), &cfg, &d), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("contains no PNG");
    ASSERT_MSG_HAS("set/b");
    /* a JPEG is refused, not skipped */
    write_bytes(tu_join(root, "set/b/x.JPG"), "x", 1);
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_join(root, "set"), &cfg, &d), SARDFQ_E_UNSUPPORTED);
    ASSERT_MSG_HAS("x.JPG");
    remove(tu_join(root, "set/b/x.JPG"));
    /* hidden folders are skipped; a corrupt PNG fails at read time */
    ck_assert_int_eq(mkdir(tu_join(root, "set/.hidden"), 0700), 0);
    write_bytes(tu_join(root, "set/b/2.png"), "not a png", 9);
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_join(root, "set"), &cfg, &d), SARDFQ_OK);
    ck_assert_int_eq(sardfq_dataset_count(d), 2);
    float out[2 * 768];
    int32_t lab[2] = {5, 5};
    out[0] = 3.0f;
    ck_assert_int_eq(sardfq_dataset_read(d, 0, 2, out, lab), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("2.png");
    ck_assert(out[0] == 3.0f && lab[0] == 5); /* unchanged */
    ck_assert_int_eq(sardfq_dataset_read(d, 0, 1, out, lab), SARDFQ_OK);
    ck_assert_int_eq(lab[0], 0);
    ck_assert_float_eq_tol(out[0], (128.0f / 255.0f - IMNET_MEAN[0]) / IMNET_STD[0], 1e-6f);
    sardfq_dataset_free(d);
    /* bad configurations */
    cfg.c = 2;
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_join(root, "set"), &cfg, &d), SARDFQ_E_UNSUPPORTED);
    cfg = cfg_rgb16();
    cfg.std[1] = 0;
    d = sentinel;
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_join(root, "set"), &cfg, &d), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sfq_dataset_open_cfg(NULL, &cfg, &d), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_eq(d, sentinel);
    tu_rm_rf(dir);
}
END_TEST

START_TEST(dataset_idx)
{
    char *dir = tu_make_tmpdir("sfq_io");
    char root[300];
    snprintf(root, sizeof root, "%s", dir);
    uint32_t d6[3] = {6, 16, 16};
    write_idx(tu_join(root, "t10k-images-idx3-ubyte.gz"), 0x803, d6, 3, 6 * 256, 1);
    write_idx(tu_join(root, "t10k-labels-idx1-ubyte"), 0x801, d6, 1, 6, 0);
    uint32_t d2[3] = {2, 16, 16};
    write_idx(tu_join(root, "train-images-idx3-ubyte"), 0x803, d2, 3, 2 * 256, 0);
    write_idx(tu_join(root, "train-labels-idx1-ubyte"), 0x801, d2, 1, 2, 0);
    sfq_dataset_cfg cfg = cfg_rgb16();
    cfg.c = 1;
    cfg.mean[0] = 0.1307f;
    cfg.std[0] = 0.3081f;
    sardfq_dataset *d;
    ck_assert_int_eq(sfq_dataset_open_cfg(root, &cfg, &d), SARDFQ_OK);
    ck_assert_int_eq(sardfq_dataset_count(d), 6); /* t10k preferred */
    float img[6 * 3 * 256];
    int32_t lab[6];
    ck_assert_int_eq(sardfq_dataset_read(d, 0, 6, img, lab), SARDFQ_OK);
    for (int i = 0; i < 6 * 256; i++)
        ck_assert(img[i] == ((float)(uint8_t)(i * 7 + 3) / 255.0f - 0.1307f) / 0.3081f);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(lab[i], (uint8_t)(i * 7 + 3));
    sardfq_dataset_free(d);
    /* three channels: the gray value replicated */
    cfg = cfg_rgb16();
    ck_assert_int_eq(sfq_dataset_open_cfg(root, &cfg, &d), SARDFQ_OK);
    ck_assert_int_eq(sardfq_dataset_read(d, 2, 1, img, lab), SARDFQ_OK);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 256; i++)
            ck_assert(img[c * 256 + i] ==
                      ((float)(uint8_t)((512 + i) * 7 + 3) / 255.0f - IMNET_MEAN[c]) / IMNET_STD[c]);
    sardfq_dataset_free(d);
    /* size mismatch */
    cfg.h = cfg.w = 28;
    ck_assert_int_eq(sfq_dataset_open_cfg(root, &cfg, &d), SARDFQ_E_SHAPE);
    ASSERT_MSG_HAS("16x16");
    ASSERT_MSG_HAS("28x28");
    /* fallback to train-* */
    cfg = cfg_rgb16();
    remove(tu_join(root, "t10k-images-idx3-ubyte.gz"));
    remove(tu_join(root, "t10k-labels-idx1-ubyte"));
    ck_assert_int_eq(sfq_dataset_open_cfg(root, &cfg, &d), SARDFQ_OK);
    ck_assert_int_eq(sardfq_dataset_count(d), 2);
    sardfq_dataset_free(d);
    /* label count != image count */
    uint32_t d3[1] = {3};
    write_idx(tu_join(root, "train-labels-idx1-ubyte"), 0x801, d3, 1, 3, 0);
    ck_assert_int_eq(sfq_dataset_open_cfg(root, &cfg, &d), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("3 labels");
    ASSERT_MSG_HAS("2 images");
    /* images without labels */
    remove(tu_join(root, "train-labels-idx1-ubyte"));
    ck_assert_int_eq(sfq_dataset_open_cfg(root, &cfg, &d), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("no matching");
    /* truncated images file */
    write_idx(tu_join(root, "train-labels-idx1-ubyte"), 0x801, d2, 1, 2, 0);
    write_idx(tu_join(root, "train-images-idx3-ubyte"), 0x803, d2, 3, 300, 0);
    ck_assert_int_eq(sfq_dataset_open_cfg(root, &cfg, &d), SARDFQ_E_FORMAT);
    ASSERT_MSG_HAS("truncated");
    tu_rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Evaluation on a tiny model                                               */
/* ------------------------------------------------------------------------ */

/* A tiny timm ViT: 16x16 input, patch 8, D 16, 2 heads, 1 block, K classes. */
static sardfq_model *tiny_model(const char *dir, int chans, int classes)
{
    enum { D = 16, P = 8, M = 32, T = 5 };
    static float buf[1 << 16];
    size_t used = 0;
    rng_state = 77;
    sfq_st_out_tensor t[32];
    int n = 0;
#define ADD(nm, nd, s0, s1, s2, s3)                                                          \
    do {                                                                                     \
        int64_t sh[4] = {s0, s1, s2, s3};                                                    \
        size_t ne = 1;                                                                       \
        memset(&t[n], 0, sizeof t[n]);                                                       \
        t[n].name = nm;                                                                      \
        t[n].dtype = SFQ_DT_F32;                                                             \
        t[n].ndim = nd;                                                                      \
        for (int q = 0; q < nd; q++) {                                                       \
            t[n].shape[q] = sh[q];                                                           \
            ne *= (size_t)sh[q];                                                             \
        }                                                                                    \
        for (size_t q = 0; q < ne; q++)                                                      \
            buf[used + q] = (float)((double)(rng_next() % 2001) / 1000.0 - 1.0) * 0.5f;      \
        t[n].data = buf + used;                                                              \
        used += ne;                                                                          \
        n++;                                                                                 \
    } while (0)
    ADD("patch_embed.proj.weight", 4, D, chans, P, P);
    ADD("patch_embed.proj.bias", 1, D, 0, 0, 0);
    ADD("cls_token", 3, 1, 1, D, 0);
    ADD("pos_embed", 3, 1, T, D, 0);
    ADD("blocks.0.norm1.weight", 1, D, 0, 0, 0);
    ADD("blocks.0.norm1.bias", 1, D, 0, 0, 0);
    ADD("blocks.0.attn.qkv.weight", 2, 3 * D, D, 0, 0);
    ADD("blocks.0.attn.qkv.bias", 1, 3 * D, 0, 0, 0);
    ADD("blocks.0.attn.proj.weight", 2, D, D, 0, 0);
    ADD("blocks.0.attn.proj.bias", 1, D, 0, 0, 0);
    ADD("blocks.0.norm2.weight", 1, D, 0, 0, 0);
    ADD("blocks.0.norm2.bias", 1, D, 0, 0, 0);
    ADD("blocks.0.mlp.fc1.weight", 2, M, D, 0, 0);
    ADD("blocks.0.mlp.fc1.bias", 1, M, 0, 0, 0);
    ADD("blocks.0.mlp.fc2.weight", 2, D, M, 0, 0);
    ADD("blocks.0.mlp.fc2.bias", 1, D, 0, 0, 0);
    ADD("norm.weight", 1, D, 0, 0, 0);
    ADD("norm.bias", 1, D, 0, 0, 0);
    ADD("head.weight", 2, classes, D, 0, 0);
    ADD("head.bias", 1, classes, 0, 0, 0);
#undef ADD
    const char *keys[] = {"num_heads", "crop_pct"}, *vals[] = {"2", "0.875"};
    const char *path = tu_join(dir, "tiny.safetensors");
    ck_assert_int_eq(sfq_st_write(path, t, n, keys, vals, 2), SARDFQ_OK);
    sardfq_model *m = NULL;
    sardfq_status s = sardfq_model_load(path, NULL, &m);
    ck_assert_msg(s == SARDFQ_OK, "tiny model: %s", sardfq_last_error());
    return m;
}

static int progress_calls;
static int64_t progress_last;
static int progress_cb(void *ud, int64_t done, int64_t total, const char *stage)
{
    progress_calls++;
    progress_last = done;
    ck_assert_str_eq(stage, "eval");
    ck_assert(done <= total);
    return ud != NULL; /* cancel when user_data is set */
}

/* Reference ranking by sorting (stable, descending). */
static void ref_scores(const float *logits, int k, int label, int *t1, int *t5)
{
    int idx[64];
    for (int i = 0; i < k; i++)
        idx[i] = i;
    for (int i = 1; i < k; i++) /* insertion sort, stable */
        for (int j = i; j > 0 && logits[idx[j]] > logits[idx[j - 1]]; j--) {
            int tmp = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = tmp;
        }
    *t1 = idx[0] == label;
    *t5 = 0;
    for (int i = 0; i < 5 && i < k; i++)
        *t5 |= idx[i] == label;
}

START_TEST(evaluate_tiny_model)
{
    char *dir = tu_make_tmpdir("sfq_io");
    sardfq_model *m = tiny_model(dir, 3, 7);
    sardfq_dataset *d = NULL;
    ck_assert_int_eq(sardfq_dataset_open(tu_data("io/classes"), m, &d), SARDFQ_OK);
    ck_assert_int_eq(sardfq_dataset_count(d), 4);

    /* reference: forward all, rank by sorting */
    float img[4 * 768], logits[4 * 7];
    int32_t lab[4];
    ck_assert_int_eq(sardfq_dataset_read(d, 0, 4, img, lab), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_forward(m, img, 4, logits), SARDFQ_OK);
    int64_t r1 = 0, r5 = 0;
    for (int i = 0; i < 4; i++) {
        int a, b;
        ref_scores(logits + 7 * i, 7, lab[i], &a, &b);
        r1 += a;
        r5 += b;
    }

    sardfq_eval_params p;
    sardfq_eval_default_params(&p);
    ck_assert_uint_eq(p.struct_size, sizeof p);
    p.batch = 3;
    p.progress = progress_cb;
    sardfq_eval_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    progress_calls = 0;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &res), SARDFQ_OK);
    ck_assert_int_eq(res.n, 4);
    ck_assert_int_eq(res.top1_correct, r1);
    ck_assert_int_eq(res.top5_correct, r5);
    ck_assert_int_eq(progress_calls, 2);
    ck_assert_int_eq(progress_last, 4);
    /* defaults, limit */
    ck_assert_int_eq(sardfq_evaluate(m, d, NULL, &res), SARDFQ_OK);
    ck_assert_int_eq(res.n, 4);
    ck_assert_int_eq(res.top1_correct, r1);
    p.progress = NULL;
    p.limit = 2;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &res), SARDFQ_OK);
    ck_assert_int_eq(res.n, 2);
    /* cancel */
    sardfq_eval_result keep = res;
    p.limit = 0;
    p.progress = progress_cb;
    p.user_data = &keep;
    progress_calls = 0;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &res), SARDFQ_E_CANCELLED);
    ck_assert_int_eq(progress_calls, 1);
    ck_assert(memcmp(&res, &keep, sizeof res) == 0);
    /* arguments */
    p.user_data = NULL;
    p.struct_size = 4;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &res), SARDFQ_E_INVALID_ARG);
    ASSERT_MSG_HAS("struct_size");
    p.struct_size = sizeof p;
    res.struct_size = 8;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &res), SARDFQ_E_INVALID_ARG);
    ASSERT_MSG_HAS("struct_size");
    res.struct_size = sizeof res;
    p.batch = -1;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &res), SARDFQ_E_INVALID_ARG);
    p.batch = 0;
    p.limit = -1;
    ck_assert_int_eq(sardfq_evaluate(m, d, &p, &res), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_evaluate(NULL, d, NULL, &res), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_evaluate(m, NULL, NULL, &res), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_evaluate(m, d, NULL, NULL), SARDFQ_E_INVALID_ARG);
    ck_assert(memcmp(&res, &keep, sizeof res) == 0);
    sardfq_dataset_free(d);

    /* a dataset prepared for another geometry */
    sfq_dataset_cfg cfg = cfg_rgb16();
    cfg.c = 1;
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_data("io/classes"), &cfg, &d), SARDFQ_OK);
    ck_assert_int_eq(sardfq_evaluate(m, d, NULL, &res), SARDFQ_E_SHAPE);
    sardfq_dataset_free(d);
    ck_assert_int_eq(sardfq_dataset_open(NULL, m, &d), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_dataset_open(tu_data("io/classes"), NULL, &d), SARDFQ_E_INVALID_ARG);
    sardfq_model_free(m);

    /* labels outside the model's classes */
    m = tiny_model(dir, 3, 1);
    ck_assert_int_eq(sardfq_dataset_open(tu_data("io/classes"), m, &d), SARDFQ_OK);
    ck_assert_int_eq(sardfq_evaluate(m, d, NULL, &res), SARDFQ_E_SHAPE);
    ASSERT_MSG_HAS("label 1");
    sardfq_dataset_free(d);
    sardfq_model_free(m);
    tu_rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Out-of-memory injection                                                  */
/* ------------------------------------------------------------------------ */

/* Run op with the k-th allocation failing for k = 1, 2, ... until it
 * succeeds; every failure must be SARDFQ_E_NOMEM with a message (leaks
 * show up under ASan with CK_FORK=no). */
#define OOM_LOOP(op, cleanup)                                                            \
    do {                                                                                 \
        for (long oom_k = 1;; oom_k++) {                                                 \
            ck_assert_msg(oom_k < 100000, "no success after %ld failures", oom_k);       \
            sfq_alloc_fail_countdown = oom_k;                                            \
            sardfq_status st_ = (op);                                                    \
            int hit_ = sfq_alloc_fail_countdown == 0;                                    \
            sfq_alloc_fail_countdown = 0;                                                \
            if (st_ == SARDFQ_OK) {                                                      \
                cleanup;                                                                 \
                if (!hit_)                                                               \
                    break;                                                               \
                continue;                                                                \
            }                                                                            \
            ck_assert_msg(hit_ && st_ == SARDFQ_E_NOMEM, "%s: status %d at k=%ld (%s)", #op, \
                          st_, oom_k, sardfq_last_error());                              \
            ck_assert(sardfq_last_error()[0] != '\0');                                   \
        }                                                                                \
    } while (0)

START_TEST(out_of_memory_paths)
{
    size_t len;
    uint64_t hl;
    uint8_t *buf = sample_buffer(&len, &hl); /* before make_tmpdir: it reuses the name */
    char *dir = tu_make_tmpdir("sfq_io");
    sfq_st_file f;
    OOM_LOOP(sfq_st_parse(buf, len, &f), sfq_st_release(&f));
    /* many entries and metadata pairs: the tables grow several times */
    char big[20000] = "{\"__metadata__\":{";
    for (int i = 0; i < 40; i++)
        sprintf(big + strlen(big), "%s\"k%d\":\"v\"", i ? "," : "", i);
    strcat(big, "}");
    for (int i = 0; i < 40; i++)
        sprintf(big + strlen(big), ",\"t%d\":{\"dtype\":\"U8\",\"shape\":[1],"
                                   "\"data_offsets\":[%d,%d]}", i, i, i + 1);
    strcat(big, "}");
    size_t blen;
    uint8_t *bb = make_st(big, 40, &blen);
    OOM_LOOP(sfq_st_parse(bb, blen, &f), sfq_st_release(&f));
    free(bb);
    float x[4] = {1, 2, 3, 4};
    sfq_st_out_tensor t[2] = {{"a", SFQ_DT_F32, 1, {2}, x}, {"b", SFQ_DT_F32, 1, {2}, x + 2}};
    const char *k[] = {"key"}, *v[] = {"value"};
    OOM_LOOP(sfq_st_write(tu_join(dir, "o.safetensors"), t, 2, k, v, 1), (void)0);
    uint8_t *rb;
    size_t rl;
    OOM_LOOP(sfq_read_file(tu_join(dir, "o.safetensors"), 1000, &rb, &rl), sfq_free(rb));

    uint32_t d[3] = {3, 4, 4};
    write_idx(tu_join(dir, "i.gz"), 0x803, d, 3, 48, 1);
    write_idx(tu_join(dir, "l"), 0x801, d, 1, 3, 0);
    sfq_u8_images im;
    OOM_LOOP(sfq_idx_read_images(tu_join(dir, "i.gz"), &im), sfq_free(im.pixels));
    int32_t *lab;
    int64_t n;
    OOM_LOOP(sfq_idx_read_labels(tu_join(dir, "l"), &lab, &n), sfq_free(lab));

    uint8_t *px;
    int h, w;
    OOM_LOOP(sfq_png_read(tu_data("io/resize_rgb.png"), 3, &px, &h, &w), (void)0);
    OOM_LOOP(sfq_png_write(tu_join(dir, "o.png"), px, h, w, 3), (void)0);
    float out[3 * 24 * 24];
    OOM_LOOP(sfq_eval_transform(px, h, w, 3, 24, 24, 0.875f, IMNET_MEAN, IMNET_STD, out), (void)0);
    sfq_free(px);

    sfq_dataset_cfg cfg = cfg_rgb16();
    sardfq_dataset *ds;
    float imgs[4 * 768];
    OOM_LOOP(sfq_dataset_open_cfg(tu_data("io/classes"), &cfg, &ds), sardfq_dataset_free(ds));
    ck_assert_int_eq(sfq_dataset_open_cfg(tu_data("io/classes"), &cfg, &ds), SARDFQ_OK);
    OOM_LOOP(sardfq_dataset_read(ds, 0, 4, imgs, NULL), (void)0);
    sardfq_dataset_free(ds);
    sfq_free(buf);
    tu_rm_rf(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("safetensors");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, half_and_bfloat_exact);
    tcase_add_test(tc, safetensors_round_trip);
    tcase_add_test(tc, safetensors_write_errors);
    tcase_add_test(tc, read_file_errors);
    tcase_add_test(tc, safetensors_truncations);
    tcase_add_test(tc, safetensors_random_flips);
    tcase_add_test(tc, safetensors_rules);
    suite_add_tcase(s, tc);
    tc = tcase_create("images");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, idx_read);
    tcase_add_test(tc, png_round_trip);
    tcase_add_test(tc, eval_transform_matches_pil);
    tcase_add_test(tc, eval_transform_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("datasets");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, dataset_png_folder);
    tcase_add_test(tc, dataset_folder_errors);
    tcase_add_test(tc, dataset_idx);
    tcase_add_test(tc, evaluate_tiny_model);
    tcase_add_test(tc, out_of_memory_paths);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
