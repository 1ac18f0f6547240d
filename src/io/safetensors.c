/* safetensors.c - strict reader and atomic writer of the safetensors format.
 *
 * The reader parses the JSON header with a small recursive-descent parser of
 * its own (RFC 8259 syntax, UTF-8 validated, nesting limited to
 * ST_MAX_DEPTH) and checks every entry before anything is handed out. No size
 * taken from the file is allocated before it has been checked against the
 * length of the buffer: strings are at most as long as the header, and the
 * header is at most the buffer. Unknown fields inside a tensor entry are
 * skipped (they must still be valid JSON); everything else is strict. */
#include "safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_DEPTH 64

static const struct {
    const char *name;
    size_t size;
} dtype_table[SFQ_DT_COUNT] = {
    [SFQ_DT_F32] = {"F32", 4},  [SFQ_DT_F16] = {"F16", 2}, [SFQ_DT_BF16] = {"BF16", 2},
    [SFQ_DT_F64] = {"F64", 8},  [SFQ_DT_I8] = {"I8", 1},   [SFQ_DT_U8] = {"U8", 1},
    [SFQ_DT_I16] = {"I16", 2},  [SFQ_DT_U16] = {"U16", 2}, [SFQ_DT_I32] = {"I32", 4},
    [SFQ_DT_U32] = {"U32", 4},  [SFQ_DT_I64] = {"I64", 8}, [SFQ_DT_U64] = {"U64", 8},
    [SFQ_DT_BOOL] = {"BOOL", 1},
};

/* Dtypes the safetensors format defines that this library does not handle. */
static const char *const unsupported_dtypes[] = {"F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ",
                                                 "F8_E5M2FNUZ", "F4", "F6_E2M3", "F6_E3M2",
                                                 "C64", "C128", NULL};

size_t sfq_dtype_size(sfq_dtype dt)
{
    if ((int)dt < 0 || dt >= SFQ_DT_COUNT)
        return 0;
    return dtype_table[dt].size;
}

const char *sfq_dtype_name(sfq_dtype dt)
{
    if ((int)dt < 0 || dt >= SFQ_DT_COUNT)
        return "?";
    return dtype_table[dt].name;
}

/* ------------------------------------------------------------------------ */
/* Half-precision conversions (exact)                                       */
/* ------------------------------------------------------------------------ */

static float bits_to_float(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

float sfq_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {
            /* subnormal: mant * 2^-24; normalise into a float32 normal */
            uint32_t e = 127 - 15 + 1;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                e--;
            }
            bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, or NaN keeping its payload */
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    return bits_to_float(bits);
}

float sfq_bf16_to_float(uint16_t h) { return bits_to_float((uint32_t)h << 16); }

/* ------------------------------------------------------------------------ */
/* JSON parsing                                                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *s; /* header text */
    size_t n, pos;
    int depth;
} jp;

static sardfq_status jfail_status(jp *j, sardfq_status st, const char *fmt, ...) SFQ_PRINTF(3, 4);

static sardfq_status jfail_status(jp *j, sardfq_status st, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sfq_fail(st, "safetensors header: %s (at header byte %zu)", msg, j->pos);
}

#define jfail(j, ...) jfail_status((j), SARDFQ_E_FORMAT, __VA_ARGS__)

static void skip_ws(jp *j)
{
    while (j->pos < j->n) {
        uint8_t c = j->s[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        j->pos++;
    }
}

/* Current byte, or 0 at the end (the header may not contain NUL outside
 * strings, and a NUL is a syntax error everywhere else anyway). */
static int peek(const jp *j) { return j->pos < j->n ? j->s[j->pos] : -1; }

static const char *describe(int c)
{
    switch (c) {
    case -1: return "end of header";
    case '{': return "an object";
    case '[': return "an array";
    case '"': return "a string";
    case 't':
    case 'f': return "a boolean";
    case 'n': return "null";
    case '}': return "'}'";
    case ']': return "']'";
    case ',': return "','";
    case ':': return "':'";
    default: return (c == '-' || (c >= '0' && c <= '9')) ? "a number" : "an invalid character";
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_hex4(jp *j, uint32_t *out)
{
    if (j->n - j->pos < 4)
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->s[j->pos + (size_t)i]);
        if (h < 0)
            return 0;
        v = v * 16 + (uint32_t)h;
    }
    j->pos += 4;
    *out = v;
    return 1;
}

/* Length of a valid UTF-8 sequence starting at s[0] (n bytes available), or
 * 0 if invalid (overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

static size_t put_utf8(char *d, uint32_t cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Parse a string at j->pos (which is '"'). With out != NULL the decoded,
 * NUL-terminated string is allocated into *out; a string containing U+0000
 * is then refused (it cannot be a C string). `what` names the string in
 * messages. */
static sardfq_status parse_string(jp *j, char **out, const char *what)
{
    if (peek(j) != '"')
        return jfail(j, "expected a string for %s, found %s", what, describe(peek(j)));
    j->pos++;
    size_t start = j->pos;
    /* Find the closing quote to size the buffer (decoded <= raw length). */
    size_t end = start;
    while (end < j->n && j->s[end] != '"') {
        if (j->s[end] == '\\')
            end++;
        end++;
    }
    if (end >= j->n)
        return jfail(j, "unterminated string in %s", what);
    char *d = NULL;
    size_t dl = 0;
    if (out) {
        d = sfq_alloc(end - start + 1);
        if (!d)
            return sfq_fail(SARDFQ_E_NOMEM, "safetensors header: out of memory for a %zu-byte string",
                            end - start + 1);
    }
    sardfq_status st = SARDFQ_OK;
    while (j->pos < end) {
        uint8_t c = j->s[j->pos];
        if (c < 0x20) {
            st = jfail(j, "unescaped control character 0x%02x in %s", c, what);
            goto fail;
        }
        if (c == '\\') {
            j->pos++;
            int e = j->s[j->pos++];
            uint32_t cp;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (!read_hex4(j, &cp)) {
                    st = jfail(j, "bad \\u escape in %s (four hex digits expected)", what);
                    goto fail;
                }
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    st = jfail(j, "lone low surrogate \\u%04X in %s", (unsigned)cp, what);
                    goto fail;
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo;
                    if (j->n - j->pos < 2 || j->s[j->pos] != '\\' || j->s[j->pos + 1] != 'u') {
                        st = jfail(j, "high surrogate \\u%04X not followed by a low surrogate in %s",
                                   (unsigned)cp, what);
                        goto fail;
                    }
                    j->pos += 2;
                    if (!read_hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                        st = jfail(j, "high surrogate \\u%04X not followed by a low surrogate in %s",
                                   (unsigned)cp, what);
                        goto fail;
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (cp == 0 && out) {
                    st = jfail(j, "%s contains a NUL character (\\u0000)", what);
                    goto fail;
                }
                break;
            default:
                j->pos--;
                st = jfail(j, "invalid escape '\\%c' in %s", e >= 0x20 && e < 0x7f ? e : '?', what);
                goto fail;
            }
            if (d)
                dl += put_utf8(d + dl, cp);
            continue;
        }
        size_t l = utf8_len(j->s + j->pos, end - j->pos);
        if (l == 0) {
            st = jfail(j, "invalid UTF-8 in %s", what);
            goto fail;
        }
        if (d)
            memcpy(d + dl, j->s + j->pos, l);
        dl += l;
        j->pos += l;
    }
    j->pos = end + 1;
    if (out) {
        d[dl] = '\0';
        *out = d;
    }
    return SARDFQ_OK;
fail:
    sfq_free(d);
    return st;
}

/* Validate (and skip) a JSON number per the RFC grammar. */
static sardfq_status skip_number(jp *j)
{
    size_t p = j->pos;
    if (p < j->n && j->s[p] == '-')
        p++;
    if (p >= j->n || j->s[p] < '0' || j->s[p] > '9')
        return jfail(j, "invalid number");
    if (j->s[p] == '0')
        p++;
    else
        while (p < j->n && j->s[p] >= '0' && j->s[p] <= '9')
            p++;
    if (p < j->n && j->s[p] == '.') {
        p++;
        if (p >= j->n || j->s[p] < '0' || j->s[p] > '9')
            return jfail(j, "invalid number (digit expected after '.')");
        while (p < j->n && j->s[p] >= '0' && j->s[p] <= '9')
            p++;
    }
    if (p < j->n && (j->s[p] == 'e' || j->s[p] == 'E')) {
        p++;
        if (p < j->n && (j->s[p] == '+' || j->s[p] == '-'))
            p++;
        if (p >= j->n || j->s[p] < '0' || j->s[p] > '9')
            return jfail(j, "invalid number (digit expected in exponent)");
        while (p < j->n && j->s[p] >= '0' && j->s[p] <= '9')
            p++;
    }
    j->pos = p;
    return SARDFQ_OK;
}

static int match_literal(jp *j, const char *lit)
{
    size_t l = strlen(lit);
    if (j->n - j->pos < l || memcmp(j->s + j->pos, lit, l) != 0)
        return 0;
    j->pos += l;
    return 1;
}

static sardfq_status skip_value(jp *j);

static sardfq_status skip_container(jp *j, int close)
{
    sardfq_status st;
    if (++j->depth > ST_MAX_DEPTH)
        return jfail(j, "JSON nesting deeper than %d levels", ST_MAX_DEPTH);
    j->pos++;
    skip_ws(j);
    if (peek(j) == close) {
        j->pos++;
        j->depth--;
        return SARDFQ_OK;
    }
    for (;;) {
        if (close == '}') {
            if ((st = parse_string(j, NULL, "an object key")) != SARDFQ_OK)
                return st;
            skip_ws(j);
            if (peek(j) != ':')
                return jfail(j, "expected ':' after an object key");
            j->pos++;
            skip_ws(j);
        }
        if ((st = skip_value(j)) != SARDFQ_OK)
            return st;
        skip_ws(j);
        int c = peek(j);
        if (c == ',') {
            j->pos++;
            skip_ws(j);
            continue;
        }
        if (c == close) {
            j->pos++;
            j->depth--;
            return SARDFQ_OK;
        }
        return jfail(j, "expected ',' or '%c', found %s", close, describe(c));
    }
}

static sardfq_status skip_value(jp *j)
{
    int c = peek(j);
    switch (c) {
    case '{': return skip_container(j, '}');
    case '[': return skip_container(j, ']');
    case '"': return parse_string(j, NULL, "a string value");
    case 't':
        if (match_literal(j, "true"))
            return SARDFQ_OK;
        break;
    case 'f':
        if (match_literal(j, "false"))
            return SARDFQ_OK;
        break;
    case 'n':
        if (match_literal(j, "null"))
            return SARDFQ_OK;
        break;
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return skip_number(j);
        break;
    }
    return jfail(j, "invalid JSON value");
}

/* A non-negative JSON integer (no fraction, no exponent) <= INT64_MAX. */
static sardfq_status parse_count(jp *j, uint64_t *out, const char *what, const char *tname)
{
    sardfq_status st;
    int c = peek(j);
    if (c == '-') {
        /* "-0" is zero; any other negative number is refused */
        size_t save = j->pos;
        if ((st = skip_number(j)) != SARDFQ_OK)
            return st;
        size_t tl = j->pos - save;
        j->pos = save;
        if (tl == 2 && j->s[save + 1] == '0') {
            j->pos = save + 2;
            *out = 0;
            return SARDFQ_OK;
        }
        int nonzero = 0;
        for (size_t q = save + 1; q < save + tl && j->s[q] != 'e' && j->s[q] != 'E'; q++)
            if (j->s[q] >= '1' && j->s[q] <= '9')
                nonzero = 1;
        return jfail(j, nonzero ? "%s of tensor '%s' contains a negative value"
                                : "%s of tensor '%s' must contain integers, found a non-integer number",
                     what, tname);
    }
    if (c < '0' || c > '9')
        return jfail(j, "%s of tensor '%s' must contain integers, found %s", what, tname,
                     describe(c));
    size_t start = j->pos;
    uint64_t v = 0;
    int overflow = 0;
    if (c == '0') {
        j->pos++;
    } else {
        while (j->pos < j->n && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') {
            unsigned dgt = (unsigned)(j->s[j->pos] - '0');
            if (v > ((uint64_t)INT64_MAX - dgt) / 10)
                overflow = 1;
            else
                v = v * 10 + dgt;
            j->pos++;
        }
    }
    c = peek(j);
    if (c == '.' || c == 'e' || c == 'E') {
        j->pos = start;
        return jfail(j, "%s of tensor '%s' must contain integers, found a non-integer number", what,
                     tname);
    }
    if (c >= '0' && c <= '9') {
        j->pos = start;
        return jfail(j, "%s of tensor '%s' contains a number with a leading zero", what, tname);
    }
    if (overflow) {
        j->pos = start;
        return jfail(j, "%s of tensor '%s' contains a value too large (> 2^63-1)", what, tname);
    }
    *out = v;
    return SARDFQ_OK;
}

/* Parse an array of non-negative integers into vals (at most max entries). */
static sardfq_status parse_int_array(jp *j, uint64_t *vals, int max, int *count, const char *what,
                                     const char *tname)
{
    sardfq_status st;
    if (peek(j) != '[')
        return jfail(j, "%s of tensor '%s' must be an array, found %s", what, tname,
                     describe(peek(j)));
    j->pos++;
    skip_ws(j);
    int n = 0;
    if (peek(j) == ']') {
        j->pos++;
        *count = 0;
        return SARDFQ_OK;
    }
    for (;;) {
        uint64_t v = 0;
        if (n >= max)
            return jfail_status(j, max == SFQ_ST_MAX_DIMS ? SARDFQ_E_UNSUPPORTED : SARDFQ_E_FORMAT,
                                "%s of tensor '%s' has more than %d entries", what, tname, max);
        if ((st = parse_count(j, &v, what, tname)) != SARDFQ_OK)
            return st;
        vals[n++] = v;
        skip_ws(j);
        int c = peek(j);
        if (c == ',') {
            j->pos++;
            skip_ws(j);
            continue;
        }
        if (c == ']') {
            j->pos++;
            break;
        }
        return jfail(j, "expected ',' or ']' in %s of tensor '%s', found %s", what, tname,
                     describe(c));
    }
    *count = n;
    return SARDFQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Building the table                                                       */
/* ------------------------------------------------------------------------ */

typedef struct {
    sfq_st_file f;
    int cap_t, cap_m;
} builder;

static int grow(void **arr, int *cap, int used, size_t elem)
{
    if (used < *cap)
        return 1;
    int ncap = *cap ? *cap * 2 : 16;
    if (ncap < *cap) /* overflow */
        return 0;
    void *p = sfq_alloc_array((size_t)ncap, elem);
    if (!p)
        return 0;
    if (*arr && used)
        memcpy(p, *arr, (size_t)used * elem);
    sfq_free(*arr);
    *arr = p;
    *cap = ncap;
    return 1;
}

static sardfq_status parse_metadata(jp *j, builder *b)
{
    sardfq_status st;
    if (peek(j) != '{')
        return jfail(j, "__metadata__ must be an object mapping strings to strings, found %s",
                     describe(peek(j)));
    j->pos++;
    skip_ws(j);
    if (peek(j) == '}') {
        j->pos++;
        return SARDFQ_OK;
    }
    for (;;) {
        char *key = NULL, *val = NULL;
        if ((st = parse_string(j, &key, "a __metadata__ key")) != SARDFQ_OK)
            return st;
        skip_ws(j);
        if (peek(j) != ':') {
            st = jfail(j, "expected ':' after __metadata__ key '%s'", key);
            sfq_free(key);
            return st;
        }
        j->pos++;
        skip_ws(j);
        if (peek(j) != '"') {
            st = jfail(j, "__metadata__ value of key '%s' must be a string, found %s", key,
                       describe(peek(j)));
            sfq_free(key);
            return st;
        }
        if ((st = parse_string(j, &val, "a __metadata__ value")) != SARDFQ_OK) {
            sfq_free(key);
            return st;
        }
        int cap_v = b->cap_m;
        if (!grow((void **)&b->f.meta_keys, &b->cap_m, b->f.n_meta, sizeof(char *)) ||
            !grow((void **)&b->f.meta_vals, &cap_v, b->f.n_meta, sizeof(char *))) {
            sfq_free(key);
            sfq_free(val);
            return sfq_fail(SARDFQ_E_NOMEM, "safetensors header: out of memory for metadata");
        }
        b->f.meta_keys[b->f.n_meta] = key;
        b->f.meta_vals[b->f.n_meta] = val;
        b->f.n_meta++;
        skip_ws(j);
        int c = peek(j);
        if (c == ',') {
            j->pos++;
            skip_ws(j);
            continue;
        }
        if (c == '}') {
            j->pos++;
            return SARDFQ_OK;
        }
        return jfail(j, "expected ',' or '}' in __metadata__, found %s", describe(c));
    }
}

static sardfq_status lookup_dtype(jp *j, const char *name, const char *tname, sfq_dtype *out)
{
    for (int i = 0; i < SFQ_DT_COUNT; i++)
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (sfq_dtype)i;
            return SARDFQ_OK;
        }
    for (int i = 0; unsupported_dtypes[i]; i++)
        if (strcmp(name, unsupported_dtypes[i]) == 0)
            return jfail_status(j, SARDFQ_E_UNSUPPORTED, "dtype %s of tensor '%s' is not supported",
                                name, tname);
    return jfail(j, "unknown dtype '%.40s' of tensor '%s'", name, tname);
}

/* Parse one tensor entry; name is moved into the table on success. */
static sardfq_status parse_tensor(jp *j, builder *b, char *name, size_t data_len)
{
    sardfq_status st;
    if (peek(j) != '{') {
        st = jfail(j, "entry '%s' is not an object (found %s)", name, describe(peek(j)));
        sfq_free(name);
        return st;
    }
    if (++j->depth > ST_MAX_DEPTH) {
        sfq_free(name);
        return jfail(j, "JSON nesting deeper than %d levels", ST_MAX_DEPTH);
    }
    j->pos++;
    skip_ws(j);
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    sfq_dtype dt = SFQ_DT_F32;
    uint64_t shape[SFQ_ST_MAX_DIMS], offs[2];
    int ndim = 0, noffs = 0;
    if (peek(j) != '}') {
        for (;;) {
            char *key = NULL;
            if ((st = parse_string(j, &key, "a field name")) != SARDFQ_OK)
                goto fail;
            skip_ws(j);
            if (peek(j) != ':') {
                sfq_free(key);
                st = jfail(j, "expected ':' after a field name in tensor '%s'", name);
                goto fail;
            }
            j->pos++;
            skip_ws(j);
            int *seen = NULL;
            if (strcmp(key, "dtype") == 0)
                seen = &have_dtype;
            else if (strcmp(key, "shape") == 0)
                seen = &have_shape;
            else if (strcmp(key, "data_offsets") == 0)
                seen = &have_offsets;
            if (seen && *seen) {
                st = jfail(j, "duplicate field '%s' in tensor '%s'", key, name);
                sfq_free(key);
                goto fail;
            }
            if (seen == &have_dtype) {
                char *dts = NULL;
                if (peek(j) != '"') {
                    st = jfail(j, "dtype of tensor '%s' must be a string, found %s", name,
                               describe(peek(j)));
                } else if ((st = parse_string(j, &dts, "a dtype")) == SARDFQ_OK) {
                    st = lookup_dtype(j, dts, name, &dt);
                    sfq_free(dts);
                }
            } else if (seen == &have_shape) {
                st = parse_int_array(j, shape, SFQ_ST_MAX_DIMS, &ndim, "shape", name);
            } else if (seen == &have_offsets) {
                st = parse_int_array(j, offs, 2, &noffs, "data_offsets", name);
                if (st == SARDFQ_OK && noffs != 2)
                    st = jfail(j, "data_offsets of tensor '%s' must have 2 entries, found %d",
                               name, noffs);
            } else {
                st = skip_value(j); /* unknown field: tolerated, must be valid JSON */
            }
            sfq_free(key);
            if (st != SARDFQ_OK)
                goto fail;
            if (seen)
                *seen = 1;
            skip_ws(j);
            int c = peek(j);
            if (c == ',') {
                j->pos++;
                skip_ws(j);
                continue;
            }
            if (c == '}')
                break;
            st = jfail(j, "expected ',' or '}' in tensor '%s', found %s", name, describe(c));
            goto fail;
        }
    }
    j->pos++; /* '}' */
    j->depth--;
    if (!have_dtype || !have_shape || !have_offsets) {
        st = jfail(j, "tensor '%s' has no '%s' field", name,
                   !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
        goto fail;
    }
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] != 0 && numel > (uint64_t)INT64_MAX / shape[i]) {
            st = jfail(j, "shape of tensor '%s' overflows (element count beyond 2^63)", name);
            goto fail;
        }
        numel *= shape[i];
    }
    uint64_t esize = dtype_table[dt].size;
    if (numel > UINT64_MAX / esize || numel * esize > SIZE_MAX) {
        st = jfail(j, "byte size of tensor '%s' (%llu elements of %s) overflows", name,
                   (unsigned long long)numel, dtype_table[dt].name);
        goto fail;
    }
    uint64_t bytes = numel * esize;
    if (offs[1] < offs[0]) {
        st = jfail(j, "data_offsets of tensor '%s' end before they begin ([%llu, %llu])", name,
                   (unsigned long long)offs[0], (unsigned long long)offs[1]);
        goto fail;
    }
    if (offs[1] > data_len) {
        st = jfail(j,
                   "data_offsets of tensor '%s' [%llu, %llu] are out of range: beyond the "
                   "end of the %zu-byte data buffer",
                   name, (unsigned long long)offs[0], (unsigned long long)offs[1], data_len);
        goto fail;
    }
    if (offs[1] - offs[0] != bytes) {
        st = jfail(j,
                   "tensor '%s' (%s, %llu elements) needs %llu bytes but its data_offsets "
                   "[%llu, %llu] span %llu: size mismatch",
                   name, dtype_table[dt].name, (unsigned long long)numel,
                   (unsigned long long)bytes, (unsigned long long)offs[0],
                   (unsigned long long)offs[1], (unsigned long long)(offs[1] - offs[0]));
        goto fail;
    }
    if (!grow((void **)&b->f.tensors, &b->cap_t, b->f.n_tensors, sizeof(sfq_st_tensor))) {
        st = sfq_fail(SARDFQ_E_NOMEM, "safetensors header: out of memory for the tensor table");
        goto fail;
    }
    if (b->f.n_tensors == INT32_MAX) {
        st = jfail(j, "too many tensors");
        goto fail;
    }
    sfq_st_tensor *t = &b->f.tensors[b->f.n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = (int64_t)shape[i];
    t->numel = (int64_t)numel;
    t->begin = (size_t)offs[0];
    t->end = (size_t)offs[1];
    return SARDFQ_OK;
fail:
    sfq_free(name);
    return st;
}

static int cmp_name(const void *a, const void *b)
{
    const sfq_st_tensor *x = *(const sfq_st_tensor *const *)a;
    const sfq_st_tensor *y = *(const sfq_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_range(const void *a, const void *b)
{
    const sfq_st_tensor *x = *(const sfq_st_tensor *const *)a;
    const sfq_st_tensor *y = *(const sfq_st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static sardfq_status check_table(const sfq_st_file *f)
{
    sardfq_status st = SARDFQ_OK;
    size_t n = (size_t)f->n_tensors;
    if (f->n_meta > 1) {
        const char **keys = sfq_alloc_array((size_t)f->n_meta, sizeof(char *));
        if (!keys)
            return sfq_fail(SARDFQ_E_NOMEM, "safetensors: out of memory checking metadata");
        memcpy(keys, f->meta_keys, (size_t)f->n_meta * sizeof(char *));
        qsort(keys, (size_t)f->n_meta, sizeof(char *), cmp_str);
        for (int i = 1; i < f->n_meta; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                st = sfq_fail(SARDFQ_E_FORMAT, "safetensors header: duplicate __metadata__ key '%s'",
                              keys[i]);
                break;
            }
        sfq_free(keys);
        if (st != SARDFQ_OK)
            return st;
    }
    const sfq_st_tensor **order = sfq_alloc_array(n ? n : 1, sizeof(*order));
    if (!order)
        return sfq_fail(SARDFQ_E_NOMEM, "safetensors: out of memory checking the tensor table");
    for (size_t i = 0; i < n; i++)
        order[i] = &f->tensors[i];
    qsort(order, n, sizeof(*order), cmp_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            st = sfq_fail(SARDFQ_E_FORMAT, "safetensors header: duplicate tensor name '%s'",
                          order[i]->name);
            goto done;
        }
    qsort(order, n, sizeof(*order), cmp_range);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const sfq_st_tensor *t = order[i];
        if (t->begin < pos) {
            st = sfq_fail(SARDFQ_E_FORMAT,
                          "safetensors: data of tensors '%s' and '%s' overlap ([%zu, %zu] and "
                          "[%zu, %zu])",
                          order[i - 1]->name, t->name, order[i - 1]->begin, order[i - 1]->end,
                          t->begin, t->end);
            goto done;
        }
        if (t->begin > pos) {
            st = sfq_fail(SARDFQ_E_FORMAT,
                          "safetensors: hole in the data buffer: bytes [%zu, %zu) before "
                          "tensor '%s' belong to no tensor",
                          pos, t->begin, t->name);
            goto done;
        }
        pos = t->end;
    }
    if (pos != f->data_len)
        st = sfq_fail(SARDFQ_E_FORMAT,
                      "safetensors: %zu trailing bytes after the last tensor's data "
                      "(data buffer %zu bytes, tensors end at %zu)",
                      f->data_len - pos, f->data_len, pos);
done:
    sfq_free(order);
    return st;
}

void sfq_st_release(sfq_st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_tensors; i++)
        sfq_free(f->tensors[i].name);
    sfq_free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        sfq_free(f->meta_keys[i]);
        sfq_free(f->meta_vals[i]);
    }
    sfq_free(f->meta_keys);
    sfq_free(f->meta_vals);
    memset(f, 0, sizeof *f);
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

sardfq_status sfq_st_parse(const uint8_t *buf, size_t len, sfq_st_file *out)
{
    sardfq_status st;
    if (!out)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!buf && len)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_parse: buf is NULL");
    if (len < 8)
        return sfq_fail(SARDFQ_E_FORMAT,
                        "safetensors: file too short (%zu bytes) to hold the 8-byte header length",
                        len);
    uint64_t hlen = le64(buf);
    if (hlen > SFQ_ST_MAX_HEADER)
        return sfq_fail(SARDFQ_E_FORMAT,
                        "safetensors: header length %llu exceeds the limit of %zu bytes",
                        (unsigned long long)hlen, SFQ_ST_MAX_HEADER);
    if (hlen > len - 8)
        return sfq_fail(SARDFQ_E_FORMAT,
                        "safetensors: header length %llu extends beyond the end of the file "
                        "(only %zu bytes follow the length field; truncated file?)",
                        (unsigned long long)hlen, len - 8);
    if (hlen < 2)
        return sfq_fail(SARDFQ_E_FORMAT,
                        "safetensors: header length %llu is too small for a JSON object",
                        (unsigned long long)hlen);
    size_t data_len = len - 8 - (size_t)hlen;
    jp j = {buf + 8, (size_t)hlen, 0, 0};
    builder b;
    memset(&b, 0, sizeof b);
    b.f.data = buf + 8 + hlen;
    b.f.data_len = data_len;

    skip_ws(&j);
    if (peek(&j) != '{') {
        st = jfail(&j, "the header is not a JSON object (found %s; not a safetensors file?)",
                   describe(peek(&j)));
        goto fail;
    }
    j.pos++;
    j.depth = 1;
    skip_ws(&j);
    int seen_meta = 0;
    if (peek(&j) == '}') {
        j.pos++;
    } else {
        for (;;) {
            char *key = NULL;
            if ((st = parse_string(&j, &key, "a tensor name")) != SARDFQ_OK)
                goto fail;
            skip_ws(&j);
            if (peek(&j) != ':') {
                st = jfail(&j, "expected ':' after the entry name '%s'", key);
                sfq_free(key);
                goto fail;
            }
            j.pos++;
            skip_ws(&j);
            if (strcmp(key, "__metadata__") == 0) {
                sfq_free(key);
                if (seen_meta) {
                    st = jfail(&j, "duplicate __metadata__ entry");
                    goto fail;
                }
                seen_meta = 1;
                if ((st = parse_metadata(&j, &b)) != SARDFQ_OK)
                    goto fail;
            } else if ((st = parse_tensor(&j, &b, key, data_len)) != SARDFQ_OK) {
                goto fail;
            }
            skip_ws(&j);
            int c = peek(&j);
            if (c == ',') {
                j.pos++;
                skip_ws(&j);
                continue;
            }
            if (c == '}') {
                j.pos++;
                break;
            }
            st = jfail(&j, "expected ',' or '}' after an entry, found %s", describe(c));
            goto fail;
        }
    }
    skip_ws(&j);
    if (j.pos != j.n) {
        st = jfail(&j, "unexpected data after the JSON object");
        goto fail;
    }
    if ((st = check_table(&b.f)) != SARDFQ_OK)
        goto fail;
    *out = b.f;
    return SARDFQ_OK;
fail:
    sfq_st_release(&b.f);
    return st;
}

const sfq_st_tensor *sfq_st_find(const sfq_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *sfq_st_meta(const sfq_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}

sardfq_status sfq_st_read_f32(const sfq_st_file *f, const sfq_st_tensor *t, float *dst)
{
    if (!f || !t || (!dst && t->numel > 0))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_read_f32: NULL argument");
    if (t->dtype != SFQ_DT_F32 && t->dtype != SFQ_DT_F16 && t->dtype != SFQ_DT_BF16)
        return sfq_fail(SARDFQ_E_UNSUPPORTED,
                        "tensor '%s' has dtype %s; only F32, F16 and BF16 can be read as float32",
                        t->name ? t->name : "?", sfq_dtype_name(t->dtype));
    size_t es = sfq_dtype_size(t->dtype), bytes;
    if (t->numel < 0 || !sfq_mul_size((size_t)t->numel, es, &bytes) || t->end < t->begin ||
        t->end - t->begin != bytes || t->end > f->data_len)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "tensor '%s' does not fit its file's data buffer",
                        t->name ? t->name : "?");
    const uint8_t *p = f->data + t->begin;
    size_t n = (size_t)t->numel;
    if (t->dtype == SFQ_DT_F32) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n)
            memcpy(dst, p, bytes);
#else
        for (size_t i = 0; i < n; i++) {
            const uint8_t *q = p + 4 * i;
            dst[i] = bits_to_float((uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                                   (uint32_t)q[3] << 24);
        }
#endif
    } else if (t->dtype == SFQ_DT_F16) {
        for (size_t i = 0; i < n; i++)
            dst[i] = sfq_half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    } else {
        for (size_t i = 0; i < n; i++)
            dst[i] = sfq_bf16_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    }
    return SARDFQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Whole-file reading                                                       */
/* ------------------------------------------------------------------------ */

sardfq_status sfq_read_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len)
{
    if (!path || !out || !out_len)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_read_file: NULL argument");
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sfq_fail(SARDFQ_E_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        int e = errno;
        fclose(fp);
        return sfq_fail(SARDFQ_E_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(fp);
        return sfq_fail(SARDFQ_E_IO, "'%s' is not a regular file", path);
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > (uint64_t)max_len) {
        fclose(fp);
        return sfq_fail(SARDFQ_E_FORMAT, "'%s' is %lld bytes, more than the limit of %zu bytes",
                        path, (long long)sb.st_size, max_len);
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *buf = sfq_alloc(size);
    if (!buf) {
        fclose(fp);
        return sfq_fail(SARDFQ_E_NOMEM, "out of memory reading '%s' (%zu bytes)", path, size);
    }
    size_t got = size ? fread(buf, 1, size, fp) : 0;
    if (got != size || ferror(fp)) {
        int e = errno;
        int err = ferror(fp);
        fclose(fp);
        sfq_free(buf);
        if (err)
            return sfq_fail(SARDFQ_E_IO, "error reading '%s': %s", path, strerror(e));
        return sfq_fail(SARDFQ_E_IO, "'%s' shrank while being read (%zu of %zu bytes)", path, got,
                        size);
    }
    if (fgetc(fp) != EOF) {
        fclose(fp);
        sfq_free(buf);
        return sfq_fail(SARDFQ_E_IO, "'%s' grew while being read", path);
    }
    fclose(fp);
    *out = buf;
    *out_len = size;
    return SARDFQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_put(strbuf *s, const char *d, size_t n)
{
    if (s->oom)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t ncap = s->cap ? s->cap : 256;
        while (ncap < s->len + n + 1) {
            if (ncap > SIZE_MAX / 2) {
                s->oom = 1;
                return;
            }
            ncap *= 2;
        }
        char *np = sfq_alloc(ncap);
        if (!np) {
            s->oom = 1;
            return;
        }
        if (s->len)
            memcpy(np, s->p, s->len);
        sfq_free(s->p);
        s->p = np;
        s->cap = ncap;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void sb_puts(strbuf *s, const char *d) { sb_put(s, d, strlen(d)); }

static void sb_printf(strbuf *s, const char *fmt, ...) SFQ_PRINTF(2, 3);
static void sb_printf(strbuf *s, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        s->oom = 1;
        return;
    }
    sb_put(s, tmp, (size_t)n);
}

static int valid_utf8(const char *str)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t n = strlen(str);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len(s + i, n - i);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

static void sb_json_string(strbuf *s, const char *str)
{
    sb_put(s, "\"", 1);
    for (const char *p = str; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            sb_put(s, "\\\"", 2);
        else if (c == '\\')
            sb_put(s, "\\\\", 2);
        else if (c == '\n')
            sb_put(s, "\\n", 2);
        else if (c == '\t')
            sb_put(s, "\\t", 2);
        else if (c == '\r')
            sb_put(s, "\\r", 2);
        else if (c < 0x20)
            sb_printf(s, "\\u%04x", c);
        else
            sb_put(s, p, 1);
    }
    sb_put(s, "\"", 1);
}

static int write_all(FILE *fp, const void *p, size_t n)
{
    return n == 0 || fwrite(p, 1, n, fp) == n;
}

sardfq_status sfq_st_write(const char *path, const sfq_st_out_tensor *tensors, int n_tensors,
                           const char *const *meta_keys, const char *const *meta_vals, int n_meta)
{
    if (!path || !*path)
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: path is NULL or empty");
    if (n_tensors < 0 || (n_tensors > 0 && !tensors))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: bad tensor list");
    if (n_meta < 0 || (n_meta > 0 && (!meta_keys || !meta_vals)))
        return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: bad metadata list");
    for (int i = 0; i < n_meta; i++) {
        if (!meta_keys[i] || !meta_vals[i])
            return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: metadata pair %d is NULL", i);
        if (!valid_utf8(meta_keys[i]) || !valid_utf8(meta_vals[i]))
            return sfq_fail(SARDFQ_E_INVALID_ARG,
                            "sfq_st_write: metadata pair %d is not valid UTF-8", i);
        for (int k = 0; k < i; k++)
            if (strcmp(meta_keys[k], meta_keys[i]) == 0)
                return sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: duplicate metadata key '%s'",
                                meta_keys[i]);
    }
    size_t total = 0;
    size_t *sizes = sfq_alloc_array(n_tensors ? (size_t)n_tensors : 1, sizeof(size_t));
    if (!sizes)
        return sfq_fail(SARDFQ_E_NOMEM, "sfq_st_write: out of memory");
    sardfq_status st = SARDFQ_OK;
    strbuf hb = {0};
    char *tmp = NULL;
    FILE *fp = NULL;
    for (int i = 0; i < n_tensors; i++) {
        const sfq_st_out_tensor *t = &tensors[i];
        if (!t->name || !valid_utf8(t->name) || strcmp(t->name, "__metadata__") == 0) {
            st = sfq_fail(SARDFQ_E_INVALID_ARG,
                          "sfq_st_write: tensor %d has a NULL, non-UTF-8 or reserved name", i);
            goto out;
        }
        if ((int)t->dtype < 0 || t->dtype >= SFQ_DT_COUNT || t->ndim < 0 ||
            t->ndim > SFQ_ST_MAX_DIMS) {
            st = sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: tensor '%s' has a bad dtype or ndim",
                          t->name);
            goto out;
        }
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0 || (uint64_t)t->shape[d] > SIZE_MAX ||
                !sfq_mul_size(numel, (size_t)t->shape[d], &numel)) {
                st = sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: tensor '%s' has a bad shape",
                              t->name);
                goto out;
            }
        }
        if (!sfq_mul_size(numel, dtype_table[t->dtype].size, &sizes[i]) ||
            total + sizes[i] < total) {
            st = sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: tensor '%s' is too large", t->name);
            goto out;
        }
        if (sizes[i] && !t->data) {
            st = sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: tensor '%s' has no data", t->name);
            goto out;
        }
        for (int k = 0; k < i; k++)
            if (strcmp(tensors[k].name, t->name) == 0) {
                st = sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: duplicate tensor name '%s'",
                              t->name);
                goto out;
            }
        total += sizes[i];
    }

    /* Header. */
    sb_puts(&hb, "{");
    if (n_meta > 0) {
        sb_puts(&hb, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i)
                sb_puts(&hb, ",");
            sb_json_string(&hb, meta_keys[i]);
            sb_puts(&hb, ":");
            sb_json_string(&hb, meta_vals[i]);
        }
        sb_puts(&hb, "}");
    }
    size_t off = 0;
    for (int i = 0; i < n_tensors; i++) {
        const sfq_st_out_tensor *t = &tensors[i];
        if (i || n_meta > 0)
            sb_puts(&hb, ",");
        sb_json_string(&hb, t->name);
        sb_puts(&hb, ":{\"dtype\":\"");
        sb_puts(&hb, dtype_table[t->dtype].name);
        sb_puts(&hb, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++)
            sb_printf(&hb, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        sb_printf(&hb, "],\"data_offsets\":[%zu,", off);
        off += sizes[i];
        sb_printf(&hb, "%zu]}", off);
    }
    sb_puts(&hb, "}");
    while (!hb.oom && hb.len % 8 != 0)
        sb_puts(&hb, " ");
    if (hb.oom) {
        st = sfq_fail(SARDFQ_E_NOMEM, "sfq_st_write: out of memory building the header");
        goto out;
    }
    if (hb.len > SFQ_ST_MAX_HEADER) {
        st = sfq_fail(SARDFQ_E_INVALID_ARG, "sfq_st_write: header of %zu bytes exceeds the limit",
                      hb.len);
        goto out;
    }

    /* Temporary file in the same directory, then rename. */
    size_t tl = strlen(path) + 32;
    tmp = sfq_alloc(tl);
    if (!tmp) {
        st = sfq_fail(SARDFQ_E_NOMEM, "sfq_st_write: out of memory");
        goto out;
    }
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    fp = fopen(tmp, "wb");
    if (!fp) {
        st = sfq_fail(SARDFQ_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)((uint64_t)hb.len >> (8 * i));
    int ok = write_all(fp, lenb, 8) && write_all(fp, hb.p, hb.len);
    for (int i = 0; ok && i < n_tensors; i++)
        ok = write_all(fp, tensors[i].data, sizes[i]);
    if (ok)
        ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    if (!ok) {
        int e = errno;
        fclose(fp);
        fp = NULL;
        remove(tmp);
        st = sfq_fail(SARDFQ_E_IO, "cannot write '%s': %s", tmp, strerror(e));
        goto out;
    }
    int rc = fclose(fp);
    fp = NULL;
    if (rc != 0) {
        int e = errno;
        remove(tmp);
        st = sfq_fail(SARDFQ_E_IO, "cannot write '%s': %s", tmp, strerror(e));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        st = sfq_fail(SARDFQ_E_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
        goto out;
    }
out:
    sfq_free(tmp);
    sfq_free(hb.p);
    sfq_free(sizes);
    return st;
}
