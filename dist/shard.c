/* Sharding data over ranks: contiguous slices, and a shuffled order that every rank computes
 * alike without a table.
 *
 * ur_dist_permute is a Feistel network on 2h-bit words (the smallest even width with
 * 2^(2h) >= n): six rounds x = (L, R) -> (R, L ^ F_k(R)), where F_k hashes R with a round key
 * drawn from (seed, epoch). Each round is invertible, so the network permutes [0, 2^(2h));
 * "cycle walking" (apply it again while the result is >= n) restricts it to a permutation of
 * [0, n). 2^(2h) < 4n, so fewer than four walks are needed on average. */
#include "dist/ur_dist.h"

#define ROUNDS 6
#define MAX_N ((long)1 << 62)

void ur_dist_shard(long n, int rank, int size, long *begin, long *count)
{
    if (n < 0 || size < 1 || rank < 0 || rank >= size) {
        *begin = 0;
        *count = 0;
        return;
    }
    long q = n / size, extra = n % size;
    *begin = (long)rank * q + (rank < extra ? rank : extra);
    *count = q + (rank < extra ? 1 : 0);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

long ur_dist_permute(long i, long n, uint64_t seed, long epoch)
{
    if (n < 1 || n > MAX_N || i < 0 || i >= n) return -1;
    int h = 1;
    while (((uint64_t)1 << (2 * h)) < (uint64_t)n) h++;
    const uint64_t mask = ((uint64_t)1 << h) - 1;
    uint64_t key[ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        key[r] = mix64(seed ^ mix64((uint64_t)epoch * 0x9e3779b97f4a7c15ULL + (uint64_t)r + 1));
    uint64_t x = (uint64_t)i;
    do {
        uint64_t left = x >> h, right = x & mask;
        for (int r = 0; r < ROUNDS; r++) {
            uint64_t f = mix64(right ^ key[r]) & mask;
            uint64_t next = left ^ f;
            left = right;
            right = next;
        }
        x = left << h | right;
    } while (x >= (uint64_t)n);
    return (long)x;
}

int ur_dist_batch_examples(long n, long global_batch, long step, uint64_t seed, int rank,
                           int size, long *idx, long *count)
{
    if (!idx || !count || n < 1 || n > MAX_N || global_batch < 1 || global_batch > n ||
        step < 0 || size < 1 || rank < 0 || rank >= size)
        return -1;
    long steps_per_epoch = n / global_batch;
    long epoch = step / steps_per_epoch, first = step % steps_per_epoch * global_batch;
    long begin;
    ur_dist_shard(global_batch, rank, size, &begin, count);
    for (long k = 0; k < *count; k++) idx[k] = ur_dist_permute(first + begin + k, n, seed, epoch);
    return 0;
}
