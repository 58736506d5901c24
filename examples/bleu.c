/* Corpus BLEU-4. For each n, every distinct n-gram g of a hypothesis contributes
 * min(count of g in the hypothesis, count of g in its reference) matches (the "clipping"
 * that stops "the the the" from scoring), out of the hypothesis's n-grams; matches and
 * counts are summed over the corpus before dividing, then
 *     BLEU = BP exp(1/4 sum_n log p_n),   BP = 1 if c > r else exp(1 - r / c)
 * with c and r the total hypothesis and reference lengths. Sentences here are short (tens of
 * tokens), so the n-grams are counted by direct comparison. */
#include "examples/bleu.h"

#include <math.h>
#include <string.h>

void ex_bleu_start(ex_bleu *b) { memset(b, 0, sizeof *b); }

/* Occurrences of the n-gram g in s (len tokens). */
static int count(const int *s, int len, const int *g, int n)
{
    int c = 0;
    for (int i = 0; i + n <= len; i++) c += memcmp(s + i, g, (size_t)n * sizeof *g) == 0;
    return c;
}

void ex_bleu_add(ex_bleu *b, const int *hyp, int hyp_len, const int *ref, int ref_len)
{
    b->hyp_len += hyp_len;
    b->ref_len += ref_len;
    for (int n = 1; n <= EX_BLEU_N; n++) {
        for (int i = 0; i + n <= hyp_len; i++) {
            b->total[n - 1]++;
            if (count(hyp, i + n - 1, hyp + i, n) > 0) continue; /* seen earlier: counted */
            int in_hyp = count(hyp, hyp_len, hyp + i, n), in_ref = count(ref, ref_len, hyp + i, n);
            b->match[n - 1] += in_hyp < in_ref ? in_hyp : in_ref;
        }
    }
}

double ex_bleu_score(const ex_bleu *b)
{
    if (b->hyp_len == 0) return 0.0;
    double log_sum = 0.0;
    for (int n = 0; n < EX_BLEU_N; n++) {
        if (b->match[n] == 0 || b->total[n] == 0) return 0.0;
        log_sum += log((double)b->match[n] / (double)b->total[n]);
    }
    double bp = b->hyp_len > b->ref_len ? 1.0 : exp(1.0 - (double)b->ref_len / (double)b->hyp_len);
    return bp * exp(log_sum / EX_BLEU_N);
}
