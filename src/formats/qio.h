/* qio.h - reading and writing the quantizers of a quantized model (format
 * in qio.c). */
#ifndef SFQ_QIO_H
#define SFQ_QIO_H

#include "qspec.h"
#include "safetensors.h"

/* Does the file carry a quantized model (metadata sardfq.quant.scheme)? */
int sfq_qfile_is_quantized(const sfq_st_file *st);
/* A view of st in which every "<W>_codes" tensor appears as "<W>" with the
 * weight's logical shape (dtype stays U8), so the configuration and shape
 * checks of a floating-point file apply unchanged. Release with
 * sfq_qview_release (st must outlive the view). */
sardfq_status sfq_qview_prepare(const sfq_st_file *st, sfq_st_file *view);
void sfq_qview_release(const sfq_st_file *st, sfq_st_file *view);
/* The quantizers of the file for configuration cfg; marks the tensors it
 * read in used[] (indexed like st->tensors; may be NULL). */
sardfq_status sfq_qspec_read(const sfq_st_file *st, const sardfq_model_info *cfg, char *used,
                             sfq_qspec **out);

#endif
