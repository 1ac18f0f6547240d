/* quantizer.h - test access to a sardfq_quantizer (quantizer.c): what the
 * recipe built so far. Internal; not exported from the shared library. */
#ifndef SFQ_QUANTIZER_H
#define SFQ_QUANTIZER_H

#include "vit.h"

/* The calibrated, not yet finalized model (or NULL). */
const sardfq_model *sfq_quantizer_model(const sardfq_quantizer *q);
/* The floating-point model with RepQ-ViT's reparameterisation applied and
 * nothing quantized. */
sardfq_status sfq_quantizer_reparam_fp(const sardfq_quantizer *q, sardfq_model **out);

#endif
