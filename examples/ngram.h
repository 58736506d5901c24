/* Markov (n-gram) character models with add-alpha smoothing, the baselines a character
 * language model must beat:
 *     P(x | c) = (count(c x) + alpha) / (count(c) + alpha V)
 * where c is the n - 1 previous characters and V the vocabulary size. Counts live in an
 * open-addressing hash table, so order 5 over a large vocabulary costs only what occurs. */
#ifndef UR_EXAMPLES_NGRAM_H
#define UR_EXAMPLES_NGRAM_H

#include <stddef.h>

#define EX_NGRAM_MAX_ORDER 5

typedef struct ex_ngram ex_ngram;

/* An empty model of the given order (1..EX_NGRAM_MAX_ORDER) over ids in [0, vocab),
 * vocab <= 256. NULL on a bad argument or out of memory. */
ex_ngram *ex_ngram_new(int order, int vocab);
/* Frees the model. NULL is ignored. */
void ex_ngram_free(ex_ngram *m);
/* Counts every position of ids[0..n) that has order - 1 characters of context before it.
 * Returns 0, or -1 on an id out of range or out of memory. */
int ex_ngram_fit(ex_ngram *m, const int *ids, size_t n);
/* Mean bits per character of ids[from..to), each given its preceding characters in ids
 * (positions before order - 1 are skipped). alpha > 0. Returns -1 on bad arguments. */
double ex_ngram_bpc(const ex_ngram *m, const int *ids, size_t from, size_t to, double alpha);

/* The alphas tried by ex_ngram_tune_alpha. */
extern const double ex_ngram_alphas[];
extern const int ex_ngram_n_alphas;
/* Chooses alpha for an order-n model of ids[0..n) without looking at any validation text:
 * fits on the first 90% and sets *alpha to the alpha of ex_ngram_alphas with the lowest bits
 * per character on the last 10%. Returns 0; 1 when n is too short to tune (*alpha is left
 * alone); -1 when memory runs out, which is an error, not a short text. */
int ex_ngram_tune_alpha(int order, int vocab, const int *ids, size_t n, double *alpha);

#endif
