/* safetensors.h - internal reader and writer of the safetensors format.
 *
 * Format: 8-byte little-endian u64 header length N, N bytes of a UTF-8 JSON
 * object, then the byte buffer. Each tensor entry is
 *   "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}
 * with offsets relative to the buffer; the optional "__metadata__" entry is
 * a string -> string map. The parser validates everything before anything
 * is read: the header length against the buffer, JSON syntax, the entry
 * shapes, dtype names, shape x dtype size == end - begin (with overflow
 * checks), offsets in range, and that the sorted ranges tile the buffer
 * exactly (no overlap, no hole, nothing trailing), no duplicate names. */
#ifndef SFQ_SAFETENSORS_H
#define SFQ_SAFETENSORS_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

#define SFQ_ST_MAX_DIMS 8
#define SFQ_ST_MAX_HEADER ((size_t)100000000) /* the reference's limit */

typedef enum {
    SFQ_DT_F32 = 0,
    SFQ_DT_F16,
    SFQ_DT_BF16,
    SFQ_DT_F64,
    SFQ_DT_I8,
    SFQ_DT_U8,
    SFQ_DT_I16,
    SFQ_DT_U16,
    SFQ_DT_I32,
    SFQ_DT_U32,
    SFQ_DT_I64,
    SFQ_DT_U64,
    SFQ_DT_BOOL,
    SFQ_DT_COUNT
} sfq_dtype;

typedef struct {
    char *name;
    sfq_dtype dtype;
    int ndim;
    int64_t shape[SFQ_ST_MAX_DIMS];
    int64_t numel;
    size_t begin, end; /* byte range within the data buffer */
} sfq_st_tensor;

typedef struct {
    const uint8_t *data; /* start of the byte buffer (borrowed) */
    size_t data_len;
    sfq_st_tensor *tensors; /* n_tensors entries, in file order */
    int n_tensors;
    char **meta_keys, **meta_vals; /* n_meta pairs from __metadata__ */
    int n_meta;
} sfq_st_file;

/* Parse buf[0..len). buf must stay valid while *out is used. On failure
 * returns SARDFQ_E_FORMAT (or _NOMEM/_UNSUPPORTED) with a message, and *out
 * is left zeroed. */
sardfq_status sfq_st_parse(const uint8_t *buf, size_t len, sfq_st_file *out);
void sfq_st_release(sfq_st_file *f);

const sfq_st_tensor *sfq_st_find(const sfq_st_file *f, const char *name);
const char *sfq_st_meta(const sfq_st_file *f, const char *key);
size_t sfq_dtype_size(sfq_dtype dt);
const char *sfq_dtype_name(sfq_dtype dt);

/* Convert a F32/F16/BF16 tensor to float32 into dst (numel floats); the
 * source may be unaligned. Other dtypes -> SARDFQ_E_UNSUPPORTED. */
sardfq_status sfq_st_read_f32(const sfq_st_file *f, const sfq_st_tensor *t, float *dst);

/* Exact conversions of one IEEE half / bfloat16 value to float32
 * (subnormals, infinities and NaN payloads preserved). */
float sfq_half_to_float(uint16_t h);
float sfq_bf16_to_float(uint16_t h);

/* Read a whole file into memory (sfq_alloc'ed; free with sfq_free). Refuses
 * files larger than max_len with SARDFQ_E_FORMAT. */
sardfq_status sfq_read_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len);

/* Writer: tensors are given as (name, dtype, ndim, shape, data); the file is
 * written to "<path>.tmp.<pid>" and renamed over path, so a failure never
 * leaves a partial file. Metadata pairs may be NULL/0. */
typedef struct {
    const char *name;
    sfq_dtype dtype;
    int ndim;
    int64_t shape[SFQ_ST_MAX_DIMS];
    const void *data; /* numel * dtype size bytes, little-endian */
} sfq_st_out_tensor;

sardfq_status sfq_st_write(const char *path, const sfq_st_out_tensor *tensors, int n_tensors,
                           const char *const *meta_keys, const char *const *meta_vals,
                           int n_meta);

#endif
