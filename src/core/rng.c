/* rng.c - xoshiro256** (Blackman and Vigna's published algorithm). */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sfq_rng_seed(sfq_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

/* SplitMix64's output function (a bijection of 64-bit words). */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Each component is added (times the golden-ratio increment, offset so that
 * 0 is not a fixed point) to the running hash and mixed: distinct keys give
 * unrelated seeds. */
uint64_t sfq_rng_key(uint64_t seed, uint64_t index, uint64_t step, uint64_t stream)
{
    const uint64_t g = 0x9E3779B97F4A7C15ull;
    uint64_t h = mix64(seed + g);
    h = mix64(h + (index + 1) * g);
    h = mix64(h + (step + 1) * g);
    return mix64(h + (stream + 1) * g);
}

void sfq_rng_seed_key(sfq_rng *r, uint64_t seed, uint64_t index, uint64_t step, uint64_t stream)
{
    sfq_rng_seed(r, sfq_rng_key(seed, index, step, stream));
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sfq_rng_next(sfq_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sfq_rng_uniform(sfq_rng *r) { return (double)(sfq_rng_next(r) >> 11) * 0x1.0p-53; }

double sfq_rng_normal(sfq_rng *r)
{
    double u1 = sfq_rng_uniform(r), u2 = sfq_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
