/* A small seeded generator of our own: xoshiro256** (Blackman and Vigna), its state filled
 * by splitmix64 so that any 64-bit seed, zero included, gives a good stream. */
#include "graph/ur_graph.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void ur_rng_seed(ur_rng *r, uint64_t seed)
{
    for (int k = 0; k < 4; k++) r->s[k] = splitmix64(&seed);
}

uint64_t ur_rng_next(ur_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

float ur_rng_uniform(ur_rng *r)
{
    return (float)(ur_rng_next(r) >> 40) * (1.0f / 16777216.0f); /* 24 bits: exact in float */
}

uint32_t ur_rng_below(ur_rng *r, uint32_t n)
{
    if (n <= 1) return 0;
    /* Reject the top partial block so every residue is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = ur_rng_next(r); while (x >= limit);
    return (uint32_t)(x % n);
}

float ur_rng_normal(ur_rng *r)
{
    double u1 = ((double)(ur_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double u2 = (double)(ur_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
