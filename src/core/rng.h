/* rng.h - the library's random numbers: xoshiro256** seeded by splitmix64.
 * Same seed -> same sequence on every platform. */
#ifndef SFQ_RNG_H
#define SFQ_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} sfq_rng;

void sfq_rng_seed(sfq_rng *r, uint64_t seed);
uint64_t sfq_rng_next(sfq_rng *r);
/* Uniform in [0, 1) with 53 bits. */
double sfq_rng_uniform(sfq_rng *r);
/* Standard normal (Box-Muller, one value per call). */
double sfq_rng_normal(sfq_rng *r);

#endif
