/* idx.c - MNIST-style IDX files (unsigned byte images and labels), read
 * through zlib so that gzip-compressed and plain files are both accepted.
 *
 * The header's dimensions are checked against fixed bounds, and the payload
 * is read in chunks into a buffer that grows only as data actually arrives,
 * so a header claiming a huge set never causes a huge allocation: a short
 * file fails with SARDFQ_E_FORMAT ("truncated") after reading what exists. */
#include "image.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAX_COUNT ((int64_t)1 << 31) /* images or labels per file */
#define IDX_MAX_SIDE 4096                /* pixels per image side */
#define IDX_MAX_BYTES ((uint64_t)1 << 36) /* whole payload */
#define IDX_CHUNK ((size_t)1 << 22)

static sardfq_status idx_open(const char *path, gzFile *out)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sfq_fail(SARDFQ_E_IO, "cannot open IDX file '%s': %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return sfq_fail(SARDFQ_E_IO, "IDX file '%s' is not a regular file", path);
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return sfq_fail(errno ? SARDFQ_E_IO : SARDFQ_E_NOMEM, "cannot open IDX file '%s': %s", path,
                        errno ? strerror(errno) : "out of memory");
    *out = gz;
    return SARDFQ_OK;
}

/* Read up to n bytes into dst; *got is the count read (< n only at the end
 * of the data). A zlib or read error fails with a message. */
static sardfq_status gz_read_full(gzFile gz, const char *path, void *dst, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > ((size_t)1 << 30))
            want = (size_t)1 << 30;
        int r = gzread(gz, (uint8_t *)dst + *got, (unsigned)want);
        if (r < 0) {
            int errnum = 0;
            const char *msg = gzerror(gz, &errnum);
            if (errnum == Z_ERRNO)
                return sfq_fail(SARDFQ_E_IO, "error reading IDX file '%s': %s", path,
                                strerror(errno));
            return sfq_fail(SARDFQ_E_FORMAT, "corrupt or truncated compressed data in IDX file '%s': %s", path,
                            msg ? msg : "zlib error");
        }
        if (r == 0) {
            /* end of data: zlib reports a missing or cut gzip trailer
             * (CRC, length) only through gzerror, not through gzread */
            int errnum = Z_OK;
            const char *msg = gzerror(gz, &errnum);
            if (errnum != Z_OK)
                return sfq_fail(SARDFQ_E_FORMAT, "truncated compressed data in IDX file '%s': %s", path,
                                msg ? msg : "zlib error");
            break;
        }
        *got += (size_t)r;
    }
    return SARDFQ_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read the magic and ndim dimensions. */
static sardfq_status read_header(gzFile gz, const char *path, uint32_t magic, int ndim,
                                 uint32_t *dims)
{
    uint8_t h[16];
    size_t need = 4 + 4 * (size_t)ndim;
    size_t got;
    sardfq_status st = gz_read_full(gz, path, h, need, &got);
    if (st != SARDFQ_OK)
        return st;
    if (got >= 4 && be32(h) != magic) {
        uint32_t m = be32(h);
        if ((m >> 16) == 0 && ((m >> 8) & 0xff) != 0x08)
            return sfq_fail(SARDFQ_E_UNSUPPORTED,
                            "IDX file '%s' holds element type 0x%02x; only unsigned bytes (0x08) "
                            "are supported",
                            path, (m >> 8) & 0xff);
        return sfq_fail(SARDFQ_E_FORMAT,
                        "'%s' is not an IDX %s file (magic 0x%08x, expected 0x%08x)", path,
                        magic == IDX_MAGIC_IMAGES ? "image" : "label", m, magic);
    }
    if (got < need)
        return sfq_fail(SARDFQ_E_FORMAT,
                        "IDX file '%s' is truncated in its header (%zu of %zu bytes)", path, got,
                        need);
    for (int i = 0; i < ndim; i++)
        dims[i] = be32(h + 4 + 4 * i);
    return SARDFQ_OK;
}

/* Read exactly total payload bytes, growing the buffer as data arrives, and
 * require the end of the file after it. */
static sardfq_status read_payload(gzFile gz, const char *path, uint64_t total, uint8_t **out)
{
    size_t cap = total < IDX_CHUNK ? (size_t)total : IDX_CHUNK;
    uint8_t *buf = sfq_alloc(cap);
    if (!buf)
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory reading IDX file '%s'", path);
    size_t have = 0;
    while ((uint64_t)have < total) {
        if (have == cap) {
            size_t ncap = cap * 2;
            if ((uint64_t)ncap > total)
                ncap = (size_t)total;
            uint8_t *nb = sfq_alloc(ncap);
            if (!nb) {
                sfq_free(buf);
                return sfq_fail(SARDFQ_E_NOMEM, "out of memory reading IDX file '%s' (%zu bytes)",
                                path, ncap);
            }
            memcpy(nb, buf, have);
            sfq_free(buf);
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - have, r;
        sardfq_status st = gz_read_full(gz, path, buf + have, want, &r);
        if (st != SARDFQ_OK) {
            sfq_free(buf);
            return st;
        }
        have += r;
        if (r < want) {
            sfq_free(buf);
            return sfq_fail(SARDFQ_E_FORMAT,
                            "IDX file '%s' is truncated: its header announces %llu data bytes but "
                            "only %zu follow",
                            path, (unsigned long long)total, have);
        }
    }
    uint8_t extra;
    size_t r;
    sardfq_status st = gz_read_full(gz, path, &extra, 1, &r);
    if (st != SARDFQ_OK || r != 0) {
        sfq_free(buf);
        if (st != SARDFQ_OK)
            return st;
        return sfq_fail(SARDFQ_E_FORMAT,
                        "IDX file '%s' has trailing bytes after the %llu bytes its header announces",
                        path, (unsigned long long)total);
    }
    *out = buf;
    return SARDFQ_OK;
}

/* zlib's gz* API does not report a gzip trailer (CRC32, length) that is
 * missing or cut once all the data was delivered, so check it: the last 8
 * bytes of the file must hold the CRC32 and the length (mod 2^32) of the
 * decompressed stream (IDX .gz files are single-member). Plain files pass. */
static sardfq_status check_gzip_trailer(gzFile gz, const char *path, uint32_t magic, const uint32_t *dims,
                                        int ndim, const uint8_t *payload, uint64_t total)
{
    if (gzdirect(gz))
        return SARDFQ_OK;
    uint8_t h[16];
    const size_t need = 4 + 4 * (size_t)ndim;
    for (int i = 0; i <= ndim; i++) {
        const uint32_t v = i == 0 ? magic : dims[i - 1];
        h[4 * i] = (uint8_t)(v >> 24), h[4 * i + 1] = (uint8_t)(v >> 16);
        h[4 * i + 2] = (uint8_t)(v >> 8), h[4 * i + 3] = (uint8_t)v;
    }
    uLong crc = crc32(0L, h, (uInt)need);
    crc = crc32_z(crc, payload, (z_size_t)total);
    uint8_t t[8];
    FILE *f = fopen(path, "rb");
    int ok = f && fseek(f, -8, SEEK_END) == 0 && fread(t, 1, 8, f) == 8;
    if (f)
        fclose(f);
    if (!ok)
        return sfq_fail(SARDFQ_E_FORMAT, "IDX file '%s': cannot read its gzip trailer", path);
    const uint32_t want_crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    const uint32_t want_len = (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
    if (want_crc != (uint32_t)crc || want_len != (uint32_t)(need + total))
        return sfq_fail(SARDFQ_E_FORMAT,
                        "IDX file '%s': truncated or corrupt gzip data (the trailer's CRC or length "
                        "does not match the data)",
                        path);
    return SARDFQ_OK;
}

sardfq_status sfq_idx_read_images(const char *path, sfq_u8_images *out)
{
    if (!path || !out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_idx_read_images: NULL argument");
    gzFile gz;
    sardfq_status st = idx_open(path, &gz);
    if (st != SARDFQ_OK)
        return st;
    uint32_t d[3] = {0, 0, 0};
    uint8_t *px = NULL;
    if ((st = read_header(gz, path, IDX_MAGIC_IMAGES, 3, d)) != SARDFQ_OK)
        goto done;
    if ((int64_t)d[0] > IDX_MAX_COUNT || d[1] == 0 || d[2] == 0 || d[1] > IDX_MAX_SIDE ||
        d[2] > IDX_MAX_SIDE) {
        st = sfq_fail(SARDFQ_E_FORMAT,
                      "IDX file '%s' has implausible dimensions %u x %u x %u (at most 2^31 images "
                      "of 1..%d pixels per side)",
                      path, d[0], d[1], d[2], IDX_MAX_SIDE);
        goto done;
    }
    uint64_t total = (uint64_t)d[0] * d[1] * d[2];
    if (total > IDX_MAX_BYTES || total > SIZE_MAX) {
        st = sfq_fail(SARDFQ_E_UNSUPPORTED, "IDX file '%s' is too large (%llu bytes of images)",
                      path, (unsigned long long)total);
        goto done;
    }
    if ((st = read_payload(gz, path, total, &px)) != SARDFQ_OK)
        goto done;
    if ((st = check_gzip_trailer(gz, path, IDX_MAGIC_IMAGES, d, 3, px, total)) != SARDFQ_OK) {
        sfq_free(px);
        goto done;
    }
    out->pixels = px;
    out->n = (int64_t)d[0];
    out->h = (int)d[1];
    out->w = (int)d[2];
    out->c = 1;
done:
    gzclose(gz);
    return st;
}

sardfq_status sfq_idx_read_labels(const char *path, int32_t **labels, int64_t *n)
{
    if (!path || !labels || !n)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_idx_read_labels: NULL argument");
    gzFile gz;
    sardfq_status st = idx_open(path, &gz);
    if (st != SARDFQ_OK)
        return st;
    uint32_t d[1] = {0};
    uint8_t *raw = NULL;
    if ((st = read_header(gz, path, IDX_MAGIC_LABELS, 1, d)) != SARDFQ_OK)
        goto done;
    if ((int64_t)d[0] > IDX_MAX_COUNT) {
        st = sfq_fail(SARDFQ_E_FORMAT, "IDX file '%s' announces an implausible %u labels", path,
                      d[0]);
        goto done;
    }
    if ((st = read_payload(gz, path, d[0], &raw)) != SARDFQ_OK)
        goto done;
    if ((st = check_gzip_trailer(gz, path, IDX_MAGIC_LABELS, d, 1, raw, d[0])) != SARDFQ_OK)
        goto done;
    int32_t *lab = sfq_alloc_array(d[0] ? d[0] : 1, sizeof(int32_t));
    if (!lab) {
        st = sfq_fail(SARDFQ_E_NOMEM, "out of memory for %u labels", d[0]);
        goto done;
    }
    for (uint32_t i = 0; i < d[0]; i++)
        lab[i] = raw[i];
    *labels = lab;
    *n = (int64_t)d[0];
done:
    sfq_free(raw);
    gzclose(gz);
    return st;
}
