#define _POSIX_C_SOURCE 200809L
/* examples/bleu.c: corpus BLEU-4 against an independent implementation (the values were
 * computed once by a separate Python version with collections.Counter), clipping, the
 * brevity penalty, and the zero of a missing 4-gram match. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "examples/bleu.h"

/* Word ids of a sentence: each distinct word gets the next id (a shared table). */
static const char *words[64];
static int n_words;

static int sentence(const char *text, int *ids)
{
    char buf[256];
    strncpy(buf, text, sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    int n = 0;
    for (char *w = strtok(buf, " "); w; w = strtok(NULL, " ")) {
        int id = -1;
        for (int k = 0; k < n_words && id < 0; k++)
            if (strcmp(words[k], w) == 0) id = k;
        if (id < 0) {
            words[n_words] = strdup(w);
            id = n_words++;
        }
        ids[n++] = id;
    }
    return n;
}

static double bleu(int n, const char *const *hyp, const char *const *ref)
{
    ex_bleu b;
    ex_bleu_start(&b);
    for (int k = 0; k < n; k++) {
        int h[32], r[32];
        int hl = sentence(hyp[k], h), rl = sentence(ref[k], r);
        ex_bleu_add(&b, h, hl, r, rl);
    }
    return ex_bleu_score(&b);
}

START_TEST(test_bleu_values)
{
    /* identical: 1 */
    const char *same[] = {"a red circle left of a small blue square"};
    ck_assert(fabs(bleu(1, same, same) - 1.0) < 1e-12);
    /* no 4-gram in common: 0 (no smoothing) */
    const char *h1[] = {"the cat sat on the mat"}, *r1[] = {"the cat is on the mat"};
    ck_assert(bleu(1, h1, r1) == 0.0);
    /* clipping: "the" counts at most twice, and no 2-gram matches */
    const char *h2[] = {"the the the the the the the"};
    ck_assert(bleu(1, h2, r1) == 0.0);
    ex_bleu b;
    ex_bleu_start(&b);
    int h[8], r[8];
    int hl = sentence(h2[0], h), rl = sentence(r1[0], r);
    ex_bleu_add(&b, h, hl, r, rl);
    ck_assert_int_eq(b.match[0], 2);
    ck_assert_int_eq(b.total[0], 7);
    ck_assert_int_eq(b.match[1], 0);
    /* a three-sentence corpus (Python: 0.6587567684612429) */
    const char *hc[] = {"a red circle left of a small blue square", "a red circle above a blue square",
                        "a small green triangle"};
    const char *rc[] = {"a red circle left of a small blue square",
                        "a red circle left of a blue square", "a small green triangle on the left"};
    ck_assert(fabs(bleu(3, hc, rc) - 0.6587567684612429) < 1e-12);
    /* brevity penalty only: every precision 1, c = 5 < r = 7 (exp(1 - 7/5)) */
    const char *hb[] = {"a b c d e"}, *rb[] = {"a b c d e f g"};
    ck_assert(fabs(bleu(1, hb, rb) - exp(1.0 - 7.0 / 5.0)) < 1e-12);
    /* empty corpus, empty hypothesis */
    ex_bleu_start(&b);
    ck_assert(ex_bleu_score(&b) == 0.0);
    ex_bleu_add(&b, h, 0, r, rl);
    ck_assert(ex_bleu_score(&b) == 0.0);
    for (int k = 0; k < n_words; k++) free((void *)words[k]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bleu");
    TCase *tc = tcase_create("bleu");
    tcase_add_test(tc, test_bleu_values);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
