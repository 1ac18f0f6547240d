/* testutil.c - helpers shared by the Check suites. */
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

const char *tu_data(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", env_or("SARDFQ_TEST_DATA", "tests/data"), name);
    return buf;
}

const char *tu_src(const char *rel)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", env_or("SARDFQ_SOURCE_ROOT", "."), rel);
    return buf;
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

double tu_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) /* also catches NaN */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

double tu_max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m)
            m = fabs(a[i]);
    return m;
}

void tu_fixture_open(tu_fixture *f, const char *name)
{
    size_t len;
    f->buf = tu_read_file(tu_data(name), &len);
    ck_assert_msg(f->buf != NULL, "cannot read fixture %s", name);
    ck_assert_int_eq(sfq_st_parse(f->buf, len, &f->st), SARDFQ_OK);
}

float *tu_fixture_get(tu_fixture *f, const char *tensor, size_t *numel)
{
    const sfq_st_tensor *t = sfq_st_find(&f->st, tensor);
    ck_assert_msg(t != NULL, "fixture tensor %s missing", tensor);
    float *x = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    ck_assert_int_eq(sfq_st_read_f32(&f->st, t, x), SARDFQ_OK);
    if (numel)
        *numel = (size_t)t->numel;
    return x;
}

void tu_fixture_close(tu_fixture *f)
{
    sfq_st_release(&f->st);
    free(f->buf);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

char *tu_make_tmpdir(const char *prefix)
{
    static char dir[256];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/%s_XXXXXX", base && *base ? base : "/tmp", prefix);
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    return dir;
}

const char *tu_join(const char *a, const char *b)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 1024, "%s/%s", a, b);
    return p;
}

sardfq_model_info tu_info(const sardfq_model *m)
{
    sardfq_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sardfq_model_get_info(m, &info), SARDFQ_OK);
    return info;
}

int tu_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    ck_assert_msg(d != NULL, "opendir %s: %s", dir, strerror(errno));
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}
