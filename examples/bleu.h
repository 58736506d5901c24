/* Corpus BLEU (Papineni et al., 2002) over token ids, one reference per hypothesis. */
#ifndef UR_EXAMPLES_BLEU_H
#define UR_EXAMPLES_BLEU_H

#define EX_BLEU_N 4

/* The corpus totals: clipped n-gram matches and n-gram counts for n = 1..4, and lengths. */
typedef struct ex_bleu {
    long match[EX_BLEU_N], total[EX_BLEU_N];
    long hyp_len, ref_len;
} ex_bleu;

/* Empties the totals. */
void ex_bleu_start(ex_bleu *b);
/* Adds one hypothesis and its reference (token ids, without start and end tokens). */
void ex_bleu_add(ex_bleu *b, const int *hyp, int hyp_len, const int *ref, int ref_len);
/* BLEU-4 of the corpus: the brevity penalty min(1, exp(1 - r/c)) times the geometric mean of
 * the four clipped n-gram precisions p_n = match_n / total_n; 0 when any p_n is 0 (the
 * original definition, no smoothing) or the corpus is empty. In [0, 1]. */
double ex_bleu_score(const ex_bleu *b);

#endif
