/* Shared by the tests of batches of uneven lengths (tests/test_lengths_*.c): the sizes, the
 * lengths of the padded batch, the tolerances and the gradient comparisons.
 *
 * Sizes: T = padded steps, B = batch, IN = input features, H and H2 = hidden, K = classes. */
#ifndef UR_TEST_LENGTHS_H
#define UR_TEST_LENGTHS_H

#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

/* The project's gradient-check criterion (tests/test_models.c). */
#define ATOL 1e-5
#define RTOL 1e-3
#define EPS UR_GRADCHECK_EPS
/* A padded batch against the sum of its sequences run alone: per parameter,
 * max |batch - sum| <= SUM_RTOL max |sum|. */
#define SUM_RTOL 1e-5

enum { T = 7, B = 3, IN = 3, H = 4, H2 = 3, K = 3 };
static const int LENS[B] = {2, 5, 7};


static inline void expect_error(const ur_tape *tp, const char *const *parts)
{
    const char *e = ur_tape_error(tp);
    ck_assert_msg(e != NULL, "expected a tape error");
    for (; *parts; parts++) ck_assert_msg(strstr(e, *parts), "'%s' lacks '%s'", e, *parts);
}

/* Every parameter's gradient, in ur_params_at order (malloc'd). */
static inline float *grads_copy(ur_params *ps)
{
    float *g = malloc(ur_params_numel(ps) * sizeof *g), *at = g;
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(at, p->grad, ur_numel(p) * sizeof *g);
        at += ur_numel(p);
    }
    return g;
}

/* Each parameter's gradient against want: max |g - want| <= SUM_RTOL max |want|. */
static inline void expect_grads(ur_params *ps, const float *want, const char *what)
{
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        double num = 0, den = 0;
        for (size_t j = 0; j < ur_numel(p); j++) {
            num = fmax(num, fabs((double)p->grad[j] - want[j]));
            den = fmax(den, fabs((double)want[j]));
        }
        if (getenv("UR_TEST_VERBOSE"))
            fprintf(stderr, "%s %s: max |batch - sum| %.3g, max |sum| %.3g\n", what, p->name, num,
                    den);
        ck_assert_msg(den > 0, "%s: %s has no gradient at all", what, p->name);
        ck_assert_msg(num <= SUM_RTOL * den, "%s: %s differs from the sum of the sequences run "
                      "alone by %.3g (max |gradient| %.3g)", what, p->name, num, den);
        want += ur_numel(p);
    }
}

#endif
