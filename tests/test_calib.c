/* test_calib.c - calibration sets on disk (src/io/calib.c) and normalised
 * images to PNG (src/io/png_images.c). */
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




static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static float *random_floats(size_t n, unsigned seed, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    srand(seed);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)rand() / (float)RAND_MAX;
    return x;
}

/* write a safetensors file with the given tensors (F32 data unless noted) */
static void write_st(const char *path, const sfq_st_out_tensor *t, int nt, const char *fmt,
                     const char *ver)
{
    const char *keys[2] = {"format", "version"}, *vals[2] = {fmt, ver};
    ck_assert_int_eq(sfq_st_write(path, t, nt, keys, vals, fmt ? 2 : 0), SARDFQ_OK);
}

static sfq_st_out_tensor tensor(const char *name, sfq_dtype dt, int ndim, const int64_t *shape,
                                const void *data)
{
    sfq_st_out_tensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.dtype = dt;
    t.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t.shape[d] = shape[d];
    t.data = data;
    return t;
}

/* ---- calibration sets ---------------------------------------------------- */

START_TEST(round_trip)
{
    char *dir = tu_make_tmpdir("sfq_calib");
    const char *path = tu_join(dir, "calib.safetensors");
    const int n = 3, C = 3, H = 5, W = 7, K = 10;
    const size_t ni = (size_t)n * C * H * W, nt = (size_t)n * K;
    float *img = random_floats(ni, 1, -2.5f, 2.5f), *tgt = random_floats(nt, 2, 0.0f, 1.0f);
    img[0] = -0.0f;
    img[1] = 1e-40f; /* subnormal */
    img[2] = 3.4e38f;
    ck_assert_int_eq(sardfq_calib_save(path, img, tgt, n, C, H, W, K), SARDFQ_OK);
    ck_assert_int_eq(tu_count_entries(dir), 1); /* no temporary left behind */

    /* the metadata and the tensors as documented */
    size_t len;
    uint8_t *buf = tu_read_file(path, &len);
    sfq_st_file f;
    ck_assert_int_eq(sfq_st_parse(buf, len, &f), SARDFQ_OK);
    ck_assert_str_eq(sfq_st_meta(&f, "format"), "sardfq-calib");
    ck_assert_str_eq(sfq_st_meta(&f, "version"), "1");
    const sfq_st_tensor *ti = sfq_st_find(&f, "images"), *tt = sfq_st_find(&f, "targets");
    ck_assert(ti && ti->dtype == SFQ_DT_F32 && ti->ndim == 4 && ti->shape[0] == n &&
              ti->shape[1] == C && ti->shape[2] == H && ti->shape[3] == W);
    ck_assert(tt && tt->dtype == SFQ_DT_F32 && tt->ndim == 2 && tt->shape[0] == n &&
              tt->shape[1] == K);
    sfq_st_release(&f);
    free(buf);

    /* size query: only the sizes are written */
    int qn = -1, qc = -1, qh = -1, qw = -1, qk = -1;
    ck_assert_int_eq(sardfq_calib_load(path, NULL, NULL, &qn, &qc, &qh, &qw, &qk), SARDFQ_OK);
    ck_assert(qn == n && qc == C && qh == H && qw == W && qk == K);
    float *li = malloc(sizeof(float) * ni), *lt = malloc(sizeof(float) * nt);
    ck_assert_int_eq(sardfq_calib_load(path, li, lt, &qn, &qc, &qh, &qw, &qk), SARDFQ_OK);
    ck_assert_mem_eq(li, img, sizeof(float) * ni);
    ck_assert_mem_eq(lt, tgt, sizeof(float) * nt);
    ck_assert(qn == n && qc == C && qh == H && qw == W && qk == K);
    /* targets may be skipped */
    memset(li, 0, sizeof(float) * ni);
    ck_assert_int_eq(sardfq_calib_load(path, li, NULL, &qn, &qc, &qh, &qw, &qk), SARDFQ_OK);
    ck_assert_mem_eq(li, img, sizeof(float) * ni);
    ck_assert_int_eq(qk, K);

    /* overwrite in place, without targets */
    ck_assert_int_eq(sardfq_calib_save(path, img, NULL, 2, C, H, W, 0), SARDFQ_OK);
    ck_assert_int_eq(sardfq_calib_save(path, img, NULL, 2, C, H, W, 123), SARDFQ_OK);
    ck_assert_int_eq(sardfq_calib_load(path, NULL, NULL, &qn, &qc, &qh, &qw, &qk), SARDFQ_OK);
    ck_assert(qn == 2 && qc == C && qh == H && qw == W && qk == 0);
    for (size_t i = 0; i < nt; i++)
        lt[i] = -9.0f;
    ck_assert_int_eq(sardfq_calib_load(path, li, lt, &qn, &qc, &qh, &qw, &qk), SARDFQ_OK);
    ck_assert_mem_eq(li, img, sizeof(float) * 2 * C * H * W);
    ck_assert_int_eq(qk, 0);
    for (size_t i = 0; i < nt; i++)
        ck_assert_float_eq(lt[i], -9.0f); /* no targets: buffer untouched */
    ck_assert_int_eq(tu_count_entries(dir), 1);
    free(li);
    free(lt);
    free(img);
    free(tgt);
    tu_rm_rf(dir);
}
END_TEST

START_TEST(half_precision_files)
{
    char *dir = tu_make_tmpdir("sfq_calib");
    const char *path = tu_join(dir, "h.safetensors");
    /* 1 x 1 x 2 x 2 images: 1.0, -2.0, 0.5, 65504 in F16 ; targets BF16 */
    const uint16_t img16[4] = {0x3C00, 0xC000, 0x3800, 0x7BFF};
    const uint16_t tgt16[3] = {0x3F80, 0x0000, 0x3E80}; /* 1, 0, 0.25 */
    const int64_t si[4] = {1, 1, 2, 2}, st[2] = {1, 3};
    sfq_st_out_tensor t[2] = {tensor("images", SFQ_DT_F16, 4, si, img16),
                              tensor("targets", SFQ_DT_BF16, 2, st, tgt16)};
    write_st(path, t, 2, NULL, NULL);
    int n = 0, c = 0, h = 0, w = 0, k = 0;
    ck_assert_int_eq(sardfq_calib_load(path, NULL, NULL, &n, &c, &h, &w, &k), SARDFQ_OK);
    ck_assert(n == 1 && c == 1 && h == 2 && w == 2 && k == 3);
    float im[4], tg[3];
    ck_assert_int_eq(sardfq_calib_load(path, im, tg, &n, &c, &h, &w, &k), SARDFQ_OK);
    ck_assert_float_eq(im[0], 1.0f);
    ck_assert_float_eq(im[1], -2.0f);
    ck_assert_float_eq(im[2], 0.5f);
    ck_assert_float_eq(im[3], 65504.0f);
    ck_assert_float_eq(tg[0], 1.0f);
    ck_assert_float_eq(tg[1], 0.0f);
    ck_assert_float_eq(tg[2], 0.25f);
    tu_rm_rf(dir);
}
END_TEST

/* Loading path must fail with status; nothing written to the outputs. */
static void expect_load_fails(const char *path, sardfq_status want, const char *needle)
{
    int n = 7, c = 7, h = 7, w = 7, k = 7;
    ck_assert_int_eq(sardfq_calib_load(path, NULL, NULL, &n, &c, &h, &w, &k), want);
    ck_assert_msg(sardfq_last_error()[0] != '\0', "no message");
    if (needle)
        ck_assert_msg(strstr(sardfq_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                      sardfq_last_error(), needle);
    ck_assert(n == 7 && c == 7 && h == 7 && w == 7 && k == 7);
    /* a second call with buffers fails the same way and writes nothing */
    float img[64], tgt[64];
    for (int i = 0; i < 64; i++)
        img[i] = tgt[i] = 42.0f;
    n = c = h = w = 1;
    k = 1;
    ck_assert_int_eq(sardfq_calib_load(path, img, tgt, &n, &c, &h, &w, &k), want);
    for (int i = 0; i < 64; i++)
        ck_assert(img[i] == 42.0f && tgt[i] == 42.0f);
    ck_assert(n == 1 && c == 1 && h == 1 && w == 1 && k == 1);
}

START_TEST(bad_files)
{
    char *dir = tu_make_tmpdir("sfq_calib");
    const char *path = tu_join(dir, "bad.safetensors");
    float img[16], tgt[8];
    for (int i = 0; i < 16; i++)
        img[i] = (float)i * 0.1f;
    for (int i = 0; i < 8; i++)
        tgt[i] = 0.125f;
    const int64_t s4[4] = {2, 1, 2, 4}, s3[3] = {2, 2, 4}, s2[2] = {2, 4}, s2bad[2] = {1, 8},
                  s1[1] = {8}, s0[4] = {0, 1, 2, 4}, s2z[2] = {2, 0};

    expect_load_fails(tu_join(dir, "missing.safetensors"), SARDFQ_E_IO, "missing.safetensors");
    expect_load_fails(dir, SARDFQ_E_IO, NULL); /* a directory */

    /* truncated: every prefix of a valid file */
    ck_assert_int_eq(sardfq_calib_save(path, img, tgt, 2, 1, 2, 4, 4), SARDFQ_OK);
    size_t len;
    uint8_t *good = tu_read_file(path, &len);
    const char *cut = tu_join(dir, "cut.safetensors");
    for (size_t l = 0; l < len; l += (l < 16 ? 1 : 7)) {
        FILE *fp = fopen(cut, "wb");
        ck_assert_uint_eq(fwrite(good, 1, l, fp), l);
        fclose(fp);
        expect_load_fails(cut, SARDFQ_E_FORMAT, NULL);
    }
    free(good);

    /* wrong shapes */
    sfq_st_out_tensor t[2];
    t[0] = tensor("images", SFQ_DT_F32, 3, s3, img);
    write_st(path, t, 1, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, "4");
    t[0] = tensor("images", SFQ_DT_F32, 4, s0, img);
    write_st(path, t, 1, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, "images");
    t[0] = tensor("pixels", SFQ_DT_F32, 4, s4, img);
    write_st(path, t, 1, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, "images");
    t[0] = tensor("images", SFQ_DT_F32, 4, s4, img);
    t[1] = tensor("targets", SFQ_DT_F32, 2, s2bad, tgt);
    write_st(path, t, 2, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, "targets");
    t[1] = tensor("targets", SFQ_DT_F32, 1, s1, tgt);
    write_st(path, t, 2, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, "targets");
    t[1] = tensor("targets", SFQ_DT_F32, 2, s2z, tgt);
    write_st(path, t, 2, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, "targets");

    /* dtypes */
    int32_t ints[16] = {0};
    t[0] = tensor("images", SFQ_DT_I32, 4, s4, ints);
    write_st(path, t, 1, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_UNSUPPORTED, "I32");
    t[0] = tensor("images", SFQ_DT_F32, 4, s4, img);
    t[1] = tensor("targets", SFQ_DT_I32, 2, s2, ints);
    write_st(path, t, 2, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_UNSUPPORTED, "targets");

    /* non-finite values */
    img[5] = NAN;
    t[0] = tensor("images", SFQ_DT_F32, 4, s4, img);
    write_st(path, t, 1, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, "NaN");
    img[5] = -INFINITY;
    write_st(path, t, 1, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, "infinite");
    img[5] = 0.5f;
    const uint16_t h16[16] = {0x3C00, 0x7C00}; /* 1, +Inf */
    t[0] = tensor("images", SFQ_DT_F16, 4, s4, h16);
    write_st(path, t, 1, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, NULL);
    const uint16_t b16[16] = {0x3F80, 0, 0, 0x7FC0}; /* 1, 0, 0, NaN */
    t[0] = tensor("images", SFQ_DT_BF16, 4, s4, b16);
    write_st(path, t, 1, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, NULL);
    t[0] = tensor("images", SFQ_DT_F32, 4, s4, img);
    tgt[3] = NAN;
    t[1] = tensor("targets", SFQ_DT_F32, 2, s2, tgt);
    write_st(path, t, 2, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, "targets");
    tgt[3] = -0.25f;
    write_st(path, t, 2, NULL, NULL);
    expect_load_fails(path, SARDFQ_E_FORMAT, "targets");
    tgt[3] = -0.0f; /* negative zero is a zero */
    write_st(path, t, 2, NULL, NULL);
    int n, c, h, w, k;
    ck_assert_int_eq(sardfq_calib_load(path, NULL, NULL, &n, &c, &h, &w, &k), SARDFQ_OK);
    tgt[3] = 0.125f;

    /* a newer version of our own format */
    t[1] = tensor("targets", SFQ_DT_F32, 2, s2, tgt);
    write_st(path, t, 2, "sardfq-calib", "2");
    expect_load_fails(path, SARDFQ_E_UNSUPPORTED, "version");
    write_st(path, t, 2, "something-else", "7"); /* other formats: just tensors */
    ck_assert_int_eq(sardfq_calib_load(path, NULL, NULL, &n, &c, &h, &w, &k), SARDFQ_OK);
    ck_assert(n == 2 && c == 1 && h == 2 && w == 4 && k == 4);
    tu_rm_rf(dir);
}
END_TEST

START_TEST(load_argument_errors)
{
    char *dir = tu_make_tmpdir("sfq_calib");
    const char *path = tu_join(dir, "c.safetensors");
    float img[24], tgt[10];
    for (int i = 0; i < 24; i++)
        img[i] = (float)i;
    for (int i = 0; i < 10; i++)
        tgt[i] = 0.2f;
    ck_assert_int_eq(sardfq_calib_save(path, img, tgt, 2, 3, 2, 2, 5), SARDFQ_OK);
    int n = 0, c = 0, h = 0, w = 0, k = 0;
    ck_assert_int_eq(sardfq_calib_load(NULL, NULL, NULL, &n, &c, &h, &w, &k), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_calib_load("", NULL, NULL, &n, &c, &h, &w, &k), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_calib_load(path, NULL, NULL, NULL, &c, &h, &w, &k),
                     SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_calib_load(path, NULL, NULL, &n, &c, &h, &w, NULL),
                     SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_calib_load(path, NULL, tgt, &n, &c, &h, &w, &k), SARDFQ_E_INVALID_ARG);
    ck_assert(n == 0 && c == 0 && h == 0 && w == 0 && k == 0);
    /* buffers sized for another set */
    float li[24], lt[10];
    for (int i = 0; i < 24; i++)
        li[i] = -1.0f;
    for (int i = 0; i < 10; i++)
        lt[i] = -1.0f;
    n = 1, c = 3, h = 2, w = 2, k = 5;
    ck_assert_int_eq(sardfq_calib_load(path, li, lt, &n, &c, &h, &w, &k), SARDFQ_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "n=2"));
    n = 2, k = 4;
    ck_assert_int_eq(sardfq_calib_load(path, li, lt, &n, &c, &h, &w, &k), SARDFQ_E_SHAPE);
    for (int i = 0; i < 24; i++)
        ck_assert_float_eq(li[i], -1.0f);
    for (int i = 0; i < 10; i++)
        ck_assert_float_eq(lt[i], -1.0f);
    ck_assert(n == 2 && c == 3 && h == 2 && w == 2 && k == 4);
    /* classes are not checked when targets are not wanted */
    ck_assert_int_eq(sardfq_calib_load(path, li, NULL, &n, &c, &h, &w, &k), SARDFQ_OK);
    ck_assert_mem_eq(li, img, sizeof img);
    ck_assert_int_eq(k, 5);
    tu_rm_rf(dir);
}
END_TEST

START_TEST(save_argument_errors)
{
    char *dir = tu_make_tmpdir("sfq_calib");
    const char *path = tu_join(dir, "s.safetensors");
    float img[8] = {0, 1, 2, 3, 4, 5, 6, 7}, tgt[4] = {0.5f, 0.5f, 1, 0};
#define BAD(expr, status, needle)                                                             \
    do {                                                                                      \
        ck_assert_int_eq((expr), (status));                                                   \
        ck_assert_msg(strstr(sardfq_last_error(), needle) != NULL, "%s: message '%s'", #expr, \
                      sardfq_last_error());                                                   \
        ck_assert_int_eq(tu_count_entries(dir), 0);                                              \
    } while (0)
    BAD(sardfq_calib_save(NULL, img, tgt, 2, 1, 2, 2, 2), SARDFQ_E_INVALID_ARG, "path");
    BAD(sardfq_calib_save("", img, tgt, 2, 1, 2, 2, 2), SARDFQ_E_INVALID_ARG, "path");
    BAD(sardfq_calib_save(path, NULL, tgt, 2, 1, 2, 2, 2), SARDFQ_E_INVALID_ARG, "images");
    BAD(sardfq_calib_save(path, img, tgt, 0, 1, 2, 2, 2), SARDFQ_E_INVALID_ARG, "> 0");
    BAD(sardfq_calib_save(path, img, tgt, 2, -1, 2, 2, 2), SARDFQ_E_INVALID_ARG, "> 0");
    BAD(sardfq_calib_save(path, img, tgt, 2, 1, 0, 2, 2), SARDFQ_E_INVALID_ARG, "> 0");
    BAD(sardfq_calib_save(path, img, tgt, 2, 1, 2, -5, 2), SARDFQ_E_INVALID_ARG, "> 0");
    BAD(sardfq_calib_save(path, img, tgt, 2, 1, 2, 2, 0), SARDFQ_E_INVALID_ARG, "classes");
    BAD(sardfq_calib_save(path, img, NULL, 2, 1, 2, 2, -1), SARDFQ_E_INVALID_ARG, "classes");
    if (sizeof(size_t) == 8)
        BAD(sardfq_calib_save(path, img, tgt, 2147483647, 2147483647, 2147483647, 2147483647, 1),
            SARDFQ_E_INVALID_ARG, "overflow");
    img[6] = NAN;
    BAD(sardfq_calib_save(path, img, tgt, 2, 1, 2, 2, 2), SARDFQ_E_INVALID_ARG, "images[6]");
    img[6] = INFINITY;
    BAD(sardfq_calib_save(path, img, tgt, 2, 1, 2, 2, 2), SARDFQ_E_INVALID_ARG, "infinite");
    img[6] = 6;
    tgt[1] = -0.5f;
    BAD(sardfq_calib_save(path, img, tgt, 2, 1, 2, 2, 2), SARDFQ_E_INVALID_ARG, "targets[1]");
    tgt[1] = NAN;
    BAD(sardfq_calib_save(path, img, tgt, 2, 1, 2, 2, 2), SARDFQ_E_INVALID_ARG, "targets[1]");
    tgt[1] = 0.5f;
    /* an unwritable place */
    BAD(sardfq_calib_save(tu_join(dir, "no/such/dir/x.safetensors"), img, tgt, 2, 1, 2, 2, 2),
        SARDFQ_E_IO, "no/such/dir");
    ck_assert_int_eq(sardfq_calib_save(path, img, tgt, 2, 1, 2, 2, 2), SARDFQ_OK);
#undef BAD
    tu_rm_rf(dir);
}
END_TEST

/* ---- PNG images ---------------------------------------------------------- */

static sardfq_model *load_model(const char *file, int heads)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.num_heads = heads;
    sardfq_model *m = NULL;
    sardfq_status s = sardfq_model_load(tu_data(file), &p, &m);
    ck_assert_msg(s == SARDFQ_OK, "load %s: %s", file, sardfq_last_error());
    return m;
}

/* the documented conversion, restated */
static uint8_t expect_u8(float x, float mean, float std)
{
    double v = floor(((double)x * std + mean) * 255.0 + 0.5);
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

static uint8_t *read_png(const char *path, int channels, int *h, int *w)
{
    uint8_t *px = NULL;
    sardfq_status s = sfq_png_read(path, channels, &px, h, w);
    ck_assert_msg(s == SARDFQ_OK, "read %s: %s", path, sardfq_last_error());
    return px;
}

/* Write n images for m, read them back, compare every pixel, check the
 * sheet layout. */
static void check_png_model(sardfq_model *m, int n, int expect_c, int expect_h, int expect_w,
                            float mean0, float std0)
{
    sardfq_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sardfq_model_get_info(m, &info), SARDFQ_OK);
    const int C = info.in_chans, H = info.img_h, W = info.img_w;
    ck_assert(C == expect_c && H == expect_h && W == expect_w);
    ck_assert_float_eq_tol(info.mean[0], mean0, 1e-6f);
    ck_assert_float_eq_tol(info.std[0], std0, 1e-6f);
    const size_t plane = (size_t)H * W, per = plane * C;
    float *img = random_floats(per * n, 7, -3.0f, 3.0f);
    /* named pixels of image 0, channel 0: black, white, clamped, mid-grey */
    img[0] = (0.0f - info.mean[0]) / info.std[0];
    img[1] = (1.0f - info.mean[0]) / info.std[0];
    img[2] = 100.0f;
    img[3] = -100.0f;
    img[4] = (float)((127.3 / 255.0 - info.mean[0]) / info.std[0]);
    img[5] = (float)((127.7 / 255.0 - info.mean[0]) / info.std[0]);
    char *dir = tu_make_tmpdir("sfq_calib");
    ck_assert_int_eq(sardfq_images_write_png(dir, m, img, n, 1), SARDFQ_OK);
    ck_assert_int_eq(tu_count_entries(dir), n + 1);

    int cols = 1;
    while (cols * cols < n)
        cols++;
    const int rows = (n + cols - 1) / cols;
    int sh, sw;
    uint8_t *sheet = read_png(tu_join(dir, "sheet.png"), C, &sh, &sw);
    ck_assert_int_eq(sw, cols * W + (cols - 1) * 2);
    ck_assert_int_eq(sh, rows * H + (rows - 1) * 2);
    /* which sheet pixels are covered by an image */
    char *covered = calloc((size_t)sh * sw, 1);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "%03d.png", i);
        int h, w;
        uint8_t *px = read_png(tu_join(dir, name), C, &h, &w);
        ck_assert(h == H && w == W);
        const int y0 = (i / cols) * (H + 2), x0 = (i % cols) * (W + 2);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                covered[(size_t)(y0 + y) * sw + (size_t)(x0 + x)] = 1;
                for (int c = 0; c < C; c++) {
                    float v = img[(size_t)i * per + (size_t)c * plane + (size_t)y * W + x];
                    uint8_t want = expect_u8(v, info.mean[c], info.std[c]);
                    uint8_t got = px[((size_t)y * W + x) * C + c];
                    ck_assert_msg(got == want, "image %d (%d,%d) c%d: %u, expected %u", i, y, x,
                                  c, got, want);
                    ck_assert_uint_eq(sheet[((size_t)(y0 + y) * sw + (size_t)(x0 + x)) * C + c],
                                      want);
                }
            }
        if (i == 0) {
            ck_assert_uint_eq(px[0], 0);
            ck_assert_uint_eq(px[1 * C], 255);
            ck_assert_uint_eq(px[2 * C], 255);
            ck_assert_uint_eq(px[3 * C], 0);
            ck_assert_uint_eq(px[4 * C], 127);
            ck_assert_uint_eq(px[5 * C], 128);
        }
        free(px);
    }
    /* gaps and empty cells are black */
    for (size_t p = 0; p < (size_t)sh * sw; p++)
        if (!covered[p])
            for (int c = 0; c < C; c++)
                ck_assert_uint_eq(sheet[p * C + c], 0);
    free(covered);
    free(sheet);

    /* without the sheet, into a path with a trailing slash */
    char *dir2 = strdup(tu_make_tmpdir("sfq_calib"));
    char slash[300];
    snprintf(slash, sizeof slash, "%s/", dir2);
    ck_assert_int_eq(sardfq_images_write_png(slash, m, img, 1, 0), SARDFQ_OK);
    ck_assert_int_eq(tu_count_entries(dir2), 1);
    ck_assert(exists(tu_join(dir2, "000.png")));
    tu_rm_rf(dir2);
    free(dir2);
    free(img);
    tu_rm_rf(dir);
}

START_TEST(png_gray)
{
    sardfq_model *m = load_model("vit_p4_gray_nometa.model.safetensors", 3);
    check_png_model(m, 3, 1, 28, 28, 0.5f, 0.5f);
    sardfq_model_free(m);
}
END_TEST

START_TEST(png_rgb)
{
    sardfq_model *m = load_model("vit_p16_rgb.model.safetensors", 0);
    check_png_model(m, 5, 3, 32, 48, 0.485f, 0.229f);
    sardfq_model_free(m);
    m = load_model("vit_p16_rgb.model.safetensors", 0);
    check_png_model(m, 1, 3, 32, 48, 0.485f, 0.229f); /* a 1 x 1 sheet */
    sardfq_model_free(m);
}
END_TEST

START_TEST(png_many_names)
{
    /* indices past 999 get more digits */
    sardfq_model *m = load_model("vit_p4_gray_nometa.model.safetensors", 3);
    const int n = 1001;
    float *img = calloc((size_t)n * 28 * 28, sizeof(float));
    char *dir = tu_make_tmpdir("sfq_calib");
    ck_assert_int_eq(sardfq_images_write_png(dir, m, img, n, 1), SARDFQ_OK);
    ck_assert(exists(tu_join(dir, "999.png")));
    ck_assert(exists(tu_join(dir, "1000.png")));
    int h, w;
    uint8_t *sheet = read_png(tu_join(dir, "sheet.png"), 1, &h, &w);
    ck_assert_int_eq(w, 32 * 28 + 31 * 2); /* cols = ceil(sqrt(1001)) = 32 */
    ck_assert_int_eq(h, 32 * 28 + 31 * 2);
    free(sheet);
    free(img);
    tu_rm_rf(dir);
    sardfq_model_free(m);
}
END_TEST

START_TEST(png_errors)
{
    sardfq_model *m = load_model("vit_p4_gray_nometa.model.safetensors", 3);
    float img[2 * 28 * 28] = {0};
    char *dir = tu_make_tmpdir("sfq_calib");
    ck_assert_int_eq(sardfq_images_write_png(NULL, m, img, 1, 1), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_images_write_png("", m, img, 1, 1), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_images_write_png(dir, NULL, img, 1, 1), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_images_write_png(dir, m, NULL, 1, 1), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_images_write_png(dir, m, img, 0, 1), SARDFQ_E_INVALID_ARG);
    ck_assert_int_eq(sardfq_images_write_png(dir, m, img, -2, 0), SARDFQ_E_INVALID_ARG);
    /* a sheet too large for PNG is refused before anything is read */
    ck_assert_int_eq(sardfq_images_write_png(dir, m, img, 2000000, 1), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "sheet"));
    img[28 * 28 + 5] = NAN;
    ck_assert_int_eq(sardfq_images_write_png(dir, m, img, 2, 1), SARDFQ_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "image 1"));
    img[28 * 28 + 5] = 0;
    ck_assert_int_eq(tu_count_entries(dir), 0);
    /* the directory must exist and be one */
    const char *missing = tu_join(dir, "missing");
    ck_assert_int_eq(sardfq_images_write_png(missing, m, img, 1, 1), SARDFQ_E_IO);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), missing));
    const char *file = tu_join(dir, "file");
    FILE *fp = fopen(file, "w");
    fclose(fp);
    ck_assert_int_eq(sardfq_images_write_png(file, m, img, 1, 1), SARDFQ_E_IO);
    ck_assert_ptr_nonnull(strstr(sardfq_last_error(), "not a directory"));
    ck_assert_int_eq(tu_count_entries(dir), 1);
    /* an unwritable directory (skipped as root, who can write anywhere) */
    if (geteuid() != 0) {
        const char *ro = tu_join(dir, "ro");
        ck_assert_int_eq(mkdir(ro, 0500), 0);
        ck_assert_int_eq(sardfq_images_write_png(ro, m, img, 1, 1), SARDFQ_E_IO);
        ck_assert_int_eq(tu_count_entries(ro), 0);
        chmod(ro, 0700);
    }
    tu_rm_rf(dir);
    sardfq_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("calib");
    TCase *tc = tcase_create("calib");
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, half_precision_files);
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, load_argument_errors);
    tcase_add_test(tc, save_argument_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("png");
    tcase_add_test(tc, png_gray);
    tcase_add_test(tc, png_rgb);
    tcase_add_test(tc, png_many_names);
    tcase_add_test(tc, png_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
