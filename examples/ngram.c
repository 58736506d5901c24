#include "ngram.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* Keys: tag << 56 | packed ids (8 bits each). Tag 1: a context c, tag 2: c followed by x.
 * Key 0 marks an empty slot. */
struct ex_ngram {
    int order, vocab;
    uint64_t *keys;
    uint32_t *counts;
    size_t cap, used;   /* cap is a power of two, kept at most half full */
};

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t slot(const uint64_t *keys, size_t cap, uint64_t key)
{
    size_t k = (size_t)mix(key) & (cap - 1);
    while (keys[k] != 0 && keys[k] != key) k = (k + 1) & (cap - 1);
    return k;
}

static int grow(ex_ngram *m)
{
    size_t cap = m->cap ? 2 * m->cap : 1024;
    uint64_t *keys = calloc(cap, sizeof *keys);
    uint32_t *counts = calloc(cap, sizeof *counts);
    if (!keys || !counts) {
        free(keys);
        free(counts);
        return -1;
    }
    for (size_t k = 0; k < m->cap; k++) {
        if (!m->keys[k]) continue;
        size_t s = slot(keys, cap, m->keys[k]);
        keys[s] = m->keys[k];
        counts[s] = m->counts[k];
    }
    free(m->keys);
    free(m->counts);
    m->keys = keys;
    m->counts = counts;
    m->cap = cap;
    return 0;
}

static int add(ex_ngram *m, uint64_t key)
{
    if (2 * (m->used + 1) > m->cap && grow(m) != 0) return -1;
    size_t s = slot(m->keys, m->cap, key);
    if (!m->keys[s]) {
        m->keys[s] = key;
        m->used++;
    }
    m->counts[s]++;
    return 0;
}

static uint32_t count(const ex_ngram *m, uint64_t key)
{
    if (!m->cap) return 0;
    size_t s = slot(m->keys, m->cap, key);
    return m->keys[s] ? m->counts[s] : 0;
}

/* The context of position i (the order - 1 ids before it), packed. */
static uint64_t context(const ex_ngram *m, const int *ids, size_t i)
{
    uint64_t c = 0;
    for (int j = m->order - 1; j >= 1; j--) c = (c << 8) | (uint64_t)ids[i - (size_t)j];
    return c;
}

ex_ngram *ex_ngram_new(int order, int vocab)
{
    if (order < 1 || order > EX_NGRAM_MAX_ORDER || vocab < 1 || vocab > 256) return NULL;
    ex_ngram *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->order = order;
    m->vocab = vocab;
    return m;
}

void ex_ngram_free(ex_ngram *m)
{
    if (!m) return;
    free(m->keys);
    free(m->counts);
    free(m);
}

int ex_ngram_fit(ex_ngram *m, const int *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->vocab) return -1;
    for (size_t i = (size_t)m->order - 1; i < n; i++) {
        uint64_t c = context(m, ids, i);
        if (add(m, 1ull << 56 | c) != 0 || add(m, 2ull << 56 | c << 8 | (uint64_t)ids[i]) != 0)
            return -1;
    }
    return 0;
}

double ex_ngram_bpc(const ex_ngram *m, const int *ids, size_t from, size_t to, double alpha)
{
    if (!m || !(alpha > 0)) return -1;
    if (from < (size_t)m->order - 1) from = (size_t)m->order - 1;
    if (from >= to) return -1;
    double bits = 0;
    for (size_t i = from; i < to; i++) {
        if (ids[i] < 0 || ids[i] >= m->vocab) return -1;
        uint64_t c = context(m, ids, i);
        double num = count(m, 2ull << 56 | c << 8 | (uint64_t)ids[i]) + alpha;
        double den = count(m, 1ull << 56 | c) + alpha * m->vocab;
        bits -= log2(num / den);
    }
    return bits / (double)(to - from);
}

const double ex_ngram_alphas[] = {0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0};
const int ex_ngram_n_alphas = (int)(sizeof ex_ngram_alphas / sizeof ex_ngram_alphas[0]);

int ex_ngram_tune_alpha(int order, int vocab, const int *ids, size_t n, double *alpha)
{
    size_t cut = n - n / 10;
    if (n < 20 || cut <= (size_t)order) return 1;
    ex_ngram *m = ex_ngram_new(order, vocab);
    if (!m || ex_ngram_fit(m, ids, cut) != 0) {
        ex_ngram_free(m);
        return -1;
    }
    double best = -1, best_bpc = INFINITY;
    for (int k = 0; k < ex_ngram_n_alphas; k++) {
        double bpc = ex_ngram_bpc(m, ids, cut, n, ex_ngram_alphas[k]);
        if (bpc >= 0 && bpc < best_bpc) {
            best_bpc = bpc;
            best = ex_ngram_alphas[k];
        }
    }
    ex_ngram_free(m);
    if (best < 0) return 1;
    *alpha = best;
    return 0;
}
