/* rng.h - the library's random numbers: xoshiro256** seeded by splitmix64.
 * Same seed -> same sequence on every platform.
 *
 * Keyed streams (synthesis, since 0.5): sfq_rng_seed_key starts the stream
 * of one key (seed, index, step, stream id); the key is hashed with
 * SplitMix64's finaliser, one component at a time, into the seed of a
 * fresh xoshiro256** state. A draw then depends only on its key and its
 * position within that key's stream, never on what else was drawn before,
 * so work can be split across threads or processes in any way. */
#ifndef SFQ_RNG_H
#define SFQ_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} sfq_rng;

void sfq_rng_seed(sfq_rng *r, uint64_t seed);
/* The seed of the stream keyed by (seed, index, step, stream). */
uint64_t sfq_rng_key(uint64_t seed, uint64_t index, uint64_t step, uint64_t stream);
/* sfq_rng_seed(r, sfq_rng_key(seed, index, step, stream)). */
void sfq_rng_seed_key(sfq_rng *r, uint64_t seed, uint64_t index, uint64_t step, uint64_t stream);
uint64_t sfq_rng_next(sfq_rng *r);
/* Uniform in [0, 1) with 53 bits. */
double sfq_rng_uniform(sfq_rng *r);
/* Standard normal (Box-Muller, one value per call). */
double sfq_rng_normal(sfq_rng *r);

#endif
