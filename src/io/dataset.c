/* dataset.c - labelled image sets for evaluation.
 *
 * Two layouts are recognised in a folder:
 *
 * - MNIST-format IDX files, gzip-compressed or not:
 *   t10k-images-idx3-ubyte + t10k-labels-idx1-ubyte (preferred), else
 *   train-images-idx3-ubyte + train-labels-idx1-ubyte; each name may also
 *   use '.' before "idx" (t10k-images.idx3-ubyte) and may end in ".gz".
 *   The images must already have the configured size (no resizing); they
 *   are gray, and a 3-channel configuration gets the gray value replicated
 *   in all three channels. Pixels are normalised (v/255 - mean[c]) / std[c].
 *   The whole set is decoded at open time.
 *
 * - Class sub-folders of PNG images, as torchvision's ImageFolder: the
 *   sorted (byte-wise) sub-folder names are classes 0..K-1, and each
 *   class's *.png files (case-insensitive extension, searched recursively)
 *   are ordered by (folder path, file name). Names starting with '.' are
 *   skipped. Other image formats (.jpg, ...) are refused rather than
 *   silently ignored. Images are decoded lazily at read time and pass
 *   through sfq_eval_transform (timm's eval transform).
 */
#include "image.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define DS_MAX_DEPTH 32

enum { DS_IDX = 1, DS_FOLDER = 2 };

struct sardfq_dataset {
    int kind;
    sfq_dataset_cfg cfg;
    int64_t n;
    int32_t *labels;  /* n */
    uint8_t *pixels;  /* DS_IDX: n * h * w gray */
    char **files;     /* DS_FOLDER: n paths */
    int n_classes;    /* DS_FOLDER */
    float *scratch;   /* DS_FOLDER: batch staging */
    size_t scratch_n; /* floats */
};

static char *path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = sfq_alloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    size_t o = la;
    if (la && a[la - 1] != '/')
        p[o++] = '/';
    memcpy(p + o, b, lb + 1);
    return p;
}

static int is_regular(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ------------------------------------------------------------------------ */
/* Growable string list                                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    char **v;
    size_t n, cap;
} strlist;

static int sl_push(strlist *l, char *s)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        char **nv = sfq_alloc_array(ncap, sizeof(char *));
        if (!nv)
            return 0;
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof(char *));
        sfq_free(l->v);
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = s;
    return 1;
}

static void sl_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        sfq_free(l->v[i]);
    sfq_free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ------------------------------------------------------------------------ */
/* IDX                                                                      */
/* ------------------------------------------------------------------------ */

/* Find "<dir>/<prefix>-<kind>-idx<d>-ubyte" in its variants; NULL if none. */
static char *find_idx(const char *dir, const char *prefix, const char *kind, int d)
{
    static const char *const seps[] = {"-", "."};
    static const char *const exts[] = {"", ".gz"};
    char name[128];
    for (int s = 0; s < 2; s++)
        for (int e = 0; e < 2; e++) {
            snprintf(name, sizeof name, "%s-%s%sidx%d-ubyte%s", prefix, kind, seps[s], d, exts[e]);
            char *p = path_join(dir, name);
            if (!p)
                return NULL;
            if (is_regular(p))
                return p;
            sfq_free(p);
        }
    return NULL;
}

/* 1 = opened (or failed: *st set), 0 = no IDX files in dir. */
static int try_idx(const char *dir, sardfq_dataset *d, sardfq_status *st)
{
    static const char *const prefixes[] = {"t10k", "train"};
    for (int p = 0; p < 2; p++) {
        char *img = find_idx(dir, prefixes[p], "images", 3);
        char *lab = find_idx(dir, prefixes[p], "labels", 1);
        if (!img && !lab)
            continue;
        if (!img || !lab) {
            *st = sfq_fail(SARDFQ_E_FORMAT, "dataset '%s': found %s but no matching %s-%s file",
                           dir, img ? img : lab, prefixes[p],
                           img ? "labels-idx1-ubyte" : "images-idx3-ubyte");
            sfq_free(img);
            sfq_free(lab);
            return 1;
        }
        sfq_u8_images im;
        memset(&im, 0, sizeof im);
        int32_t *labels = NULL;
        int64_t nl = 0;
        *st = sfq_idx_read_images(img, &im);
        if (*st == SARDFQ_OK)
            *st = sfq_idx_read_labels(lab, &labels, &nl);
        if (*st == SARDFQ_OK && nl != im.n)
            *st = sfq_fail(SARDFQ_E_FORMAT,
                           "dataset '%s': %lld labels in '%s' but %lld images in '%s'", dir,
                           (long long)nl, lab, (long long)im.n, img);
        if (*st == SARDFQ_OK && (im.h != d->cfg.h || im.w != d->cfg.w))
            *st = sfq_fail(SARDFQ_E_SHAPE,
                           "dataset '%s': IDX images are %dx%d but the model expects %dx%d "
                           "(IDX images are not resized)",
                           dir, im.h, im.w, d->cfg.h, d->cfg.w);
        if (*st == SARDFQ_OK) {
            d->kind = DS_IDX;
            d->n = im.n;
            d->pixels = im.pixels;
            d->labels = labels;
        } else {
            sfq_free(im.pixels);
            sfq_free(labels);
        }
        sfq_free(img);
        sfq_free(lab);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Class folders                                                            */
/* ------------------------------------------------------------------------ */

static int has_ext(const char *name, const char *ext)
{
    size_t ln = strlen(name), le = strlen(ext);
    return ln > le && strcasecmp(name + ln - le, ext) == 0;
}

static int other_image_ext(const char *name)
{
    static const char *const exts[] = {".jpg", ".jpeg", ".ppm", ".bmp", ".pgm",
                                       ".tif", ".tiff", ".webp", NULL};
    for (int i = 0; exts[i]; i++)
        if (has_ext(name, exts[i]))
            return 1;
    return 0;
}

/* Sorted, non-hidden entry names of dir; want_dirs selects sub-folders
 * (1) or regular files (0). */
static sardfq_status list_dir(const char *dir, int want_dirs, strlist *out)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return sfq_fail(SARDFQ_E_IO, "cannot open folder '%s': %s", dir, strerror(errno));
    sardfq_status st = SARDFQ_OK;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *full = path_join(dir, de->d_name);
        if (!full) {
            st = sfq_fail(SARDFQ_E_NOMEM, "out of memory listing '%s'", dir);
            break;
        }
        int keep = want_dirs ? is_dir(full) : is_regular(full);
        sfq_free(full);
        if (!keep)
            continue;
        char *name = sfq_strdup(de->d_name);
        if (!name || !sl_push(out, name)) {
            sfq_free(name);
            st = sfq_fail(SARDFQ_E_NOMEM, "out of memory listing '%s'", dir);
            break;
        }
        errno = 0;
    }
    if (st == SARDFQ_OK && errno != 0)
        st = sfq_fail(SARDFQ_E_IO, "cannot list folder '%s': %s", dir, strerror(errno));
    closedir(dp);
    if (st == SARDFQ_OK && out->n > 1)
        qsort(out->v, out->n, sizeof(char *), cmp_cstr);
    return st;
}

/* Append the PNG files under dir (recursively; the caller sorts them). */
static sardfq_status walk_class(const char *dir, int depth, strlist *files)
{
    if (depth > DS_MAX_DEPTH)
        return sfq_fail(SARDFQ_E_FORMAT, "folder '%s' is nested more than %d levels deep", dir,
                        DS_MAX_DEPTH);
    strlist names = {0}, subs = {0};
    sardfq_status st = list_dir(dir, 0, &names);
    if (st == SARDFQ_OK)
        st = list_dir(dir, 1, &subs);
    for (size_t i = 0; st == SARDFQ_OK && i < names.n; i++) {
        if (has_ext(names.v[i], ".png")) {
            char *full = path_join(dir, names.v[i]);
            if (!full || !sl_push(files, full)) {
                sfq_free(full);
                st = sfq_fail(SARDFQ_E_NOMEM, "out of memory listing '%s'", dir);
            }
        } else if (other_image_ext(names.v[i])) {
            st = sfq_fail(SARDFQ_E_UNSUPPORTED,
                          "dataset image '%s/%s' is not a PNG; only PNG class folders are "
                          "supported",
                          dir, names.v[i]);
        }
    }
    for (size_t i = 0; st == SARDFQ_OK && i < subs.n; i++) {
        char *full = path_join(dir, subs.v[i]);
        if (!full) {
            st = sfq_fail(SARDFQ_E_NOMEM, "out of memory listing '%s'", dir);
            break;
        }
        st = walk_class(full, depth + 1, files);
        sfq_free(full);
    }
    sl_free(&names);
    sl_free(&subs);
    return st;
}

/* ImageFolder's order: sorted(os.walk(class_dir)) then sorted file names,
 * i.e. by (folder path as a string, file name). */
static int cmp_walk_order(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t dx = (size_t)(strrchr(x, '/') - x), dy = (size_t)(strrchr(y, '/') - y);
    int c = memcmp(x, y, dx < dy ? dx : dy);
    if (c == 0 && dx != dy)
        c = dx < dy ? -1 : 1;
    if (c == 0)
        c = strcmp(x + dx + 1, y + dy + 1);
    return c;
}

static sardfq_status open_folder(const char *dir, sardfq_dataset *d)
{
    strlist classes = {0}, files = {0};
    int32_t *labels = NULL;
    size_t lcap = 0;
    sardfq_status st = list_dir(dir, 1, &classes);
    if (st != SARDFQ_OK) {
        sl_free(&classes);
        return st;
    }
    if (classes.n == 0) {
        sl_free(&classes);
        return sfq_fail(SARDFQ_E_FORMAT,
                        "dataset '%s' holds neither IDX files (t10k-/train-images-idx3-ubyte[.gz] "
                        "with labels) nor class sub-folders of PNG images",
                        dir);
    }
    if (classes.n > INT32_MAX) {
        sl_free(&classes);
        return sfq_fail(SARDFQ_E_UNSUPPORTED, "dataset '%s' has too many classes", dir);
    }
    for (size_t c = 0; st == SARDFQ_OK && c < classes.n; c++) {
        char *cdir = path_join(dir, classes.v[c]);
        if (!cdir) {
            st = sfq_fail(SARDFQ_E_NOMEM, "out of memory opening dataset '%s'", dir);
            break;
        }
        size_t before = files.n;
        st = walk_class(cdir, 0, &files);
        if (st == SARDFQ_OK && files.n - before > 1)
            qsort(files.v + before, files.n - before, sizeof(char *), cmp_walk_order);
        if (st == SARDFQ_OK && files.n == before)
            st = sfq_fail(SARDFQ_E_FORMAT, "dataset class folder '%s' contains no PNG images",
                          cdir);
        sfq_free(cdir);
        if (st != SARDFQ_OK)
            break;
        if (files.n > lcap) {
            size_t ncap = files.cap;
            int32_t *nl = sfq_alloc_array(ncap, sizeof(int32_t));
            if (!nl) {
                st = sfq_fail(SARDFQ_E_NOMEM, "out of memory opening dataset '%s'", dir);
                break;
            }
            if (before)
                memcpy(nl, labels, before * sizeof(int32_t));
            sfq_free(labels);
            labels = nl;
            lcap = ncap;
        }
        for (size_t i = before; i < files.n; i++)
            labels[i] = (int32_t)c;
    }
    if (st == SARDFQ_OK) {
        d->kind = DS_FOLDER;
        d->n = (int64_t)files.n;
        d->files = files.v;
        d->labels = labels;
        d->n_classes = (int)classes.n;
        files.v = NULL;
        files.n = 0;
    } else {
        sfq_free(labels);
    }
    sl_free(&files);
    sl_free(&classes);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Public and internal entry points                                         */
/* ------------------------------------------------------------------------ */

sardfq_status sfq_dataset_open_cfg(const char *path, const sfq_dataset_cfg *cfg,
                                   sardfq_dataset **out)
{
    if (!path || !cfg || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_dataset_open: NULL argument");
    if (cfg->c != 1 && cfg->c != 3)
        return sfq_fail(SARDFQ_E_UNSUPPORTED,
                        "sardfq_dataset_open: models with %d input channels are not supported "
                        "(1 or 3)",
                        cfg->c);
    if (cfg->h <= 0 || cfg->w <= 0 || cfg->h > (1 << 14) || cfg->w > (1 << 14))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_dataset_open: bad input size %dx%d",
                        cfg->w, cfg->h);
    for (int k = 0; k < cfg->c; k++)
        if (!(cfg->std[k] != 0.0f))
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_dataset_open: std[%d] is zero", k);
    if (!(cfg->crop_pct > 0.0f))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_dataset_open: crop_pct must be > 0");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sfq_fail(SARDFQ_E_IO, "cannot open dataset '%s': %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "dataset path '%s' is not a folder (expected IDX files or class "
                        "sub-folders inside it)",
                        path);
    sardfq_dataset *d = sfq_alloc_zero(sizeof *d);
    if (!d)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory opening dataset '%s'", path);
    d->cfg = *cfg;
    sardfq_status st = SARDFQ_OK;
    if (!try_idx(path, d, &st))
        st = open_folder(path, d);
    if (st != SARDFQ_OK) {
        sardfq_dataset_free(d);
        return st;
    }
    *out = d;
    return SARDFQ_OK;
}

void sfq_dataset_geometry(const sardfq_dataset *d, int *c, int *h, int *w)
{
    if (c)
        *c = d ? d->cfg.c : 0;
    if (h)
        *h = d ? d->cfg.h : 0;
    if (w)
        *w = d ? d->cfg.w : 0;
}

SARDFQ_API void sardfq_dataset_free(sardfq_dataset *d)
{
    if (!d)
        return;
    if (d->files) {
        for (int64_t i = 0; i < d->n; i++)
            sfq_free(d->files[i]);
        sfq_free(d->files);
    }
    sfq_free(d->pixels);
    sfq_free(d->labels);
    sfq_free(d->scratch);
    sfq_free(d);
}

SARDFQ_API int64_t sardfq_dataset_count(const sardfq_dataset *d) { return d ? d->n : 0; }

static void normalise_gray(const sfq_dataset_cfg *cfg, const uint8_t *px, float *dst)
{
    size_t hw = (size_t)cfg->h * (size_t)cfg->w;
    for (int q = 0; q < cfg->c; q++) {
        float m = cfg->mean[q], s = cfg->std[q];
        float *plane = dst + (size_t)q * hw;
        for (size_t i = 0; i < hw; i++)
            plane[i] = ((float)px[i] / 255.0f - m) / s;
    }
}

SARDFQ_API sardfq_status sardfq_dataset_read(sardfq_dataset *d, int64_t start, int n,
                                             float *images, int32_t *labels)
{
    if (!d || !images)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_dataset_read: NULL argument");
    if (n <= 0)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_dataset_read: n must be > 0, not %d", n);
    if (start < 0 || start > d->n || (int64_t)n > d->n - start)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "sardfq_dataset_read: images [%lld, %lld) are outside the dataset's %lld",
                        (long long)start, (long long)start + n, (long long)d->n);
    size_t chw = (size_t)d->cfg.c * (size_t)d->cfg.h * (size_t)d->cfg.w;
    if (d->kind == DS_IDX) {
        size_t hw = (size_t)d->cfg.h * (size_t)d->cfg.w;
        for (int i = 0; i < n; i++)
            normalise_gray(&d->cfg, d->pixels + (size_t)(start + i) * hw, images + (size_t)i * chw);
    } else {
        size_t need;
        if (!sfq_mul_size(chw, (size_t)n, &need))
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sardfq_dataset_read: n = %d is too large", n);
        if (d->scratch_n < need) {
            float *ns = sfq_alloc_array(need, sizeof(float));
            if (!ns)
                return sfq_fail(SARDFQ_E_NOMEM,
                                "sardfq_dataset_read: out of memory for %d images", n);
            sfq_free(d->scratch);
            d->scratch = ns;
            d->scratch_n = need;
        }
        for (int i = 0; i < n; i++) {
            const char *file = d->files[start + i];
            uint8_t *px = NULL;
            int ih = 0, iw = 0;
            sardfq_status st = sfq_png_read(file, d->cfg.c, &px, &ih, &iw);
            if (st != SARDFQ_OK)
                return st;
            st = sfq_eval_transform(px, ih, iw, d->cfg.c, d->cfg.h, d->cfg.w, d->cfg.crop_pct,
                                    d->cfg.mean, d->cfg.std, d->scratch + (size_t)i * chw);
            sfq_free(px);
            if (st != SARDFQ_OK) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", sardfq_last_error());
                return sfq_fail(st, "dataset image '%s': %s", file, msg);
            }
        }
        memcpy(images, d->scratch, (size_t)n * chw * sizeof(float));
    }
    if (labels)
        memcpy(labels, d->labels + start, (size_t)n * sizeof(int32_t));
    return SARDFQ_OK;
}
