/* Shared helpers for the Check test programs. */
#ifndef UR_TEST_H
#define UR_TEST_H

#include <check.h>
#include <math.h>
#include <stdio.h>

#include "unroll.h"

/* Fills t with uniform values in [lo, hi). */
static inline void ur_test_fill(ur_tensor *t, ur_rng *r, float lo, float hi)
{
    for (size_t k = 0; k < ur_numel(t); k++) t->val[k] = lo + (hi - lo) * ur_rng_uniform(r);
}

/* Runs ur_gradcheck and fails the test, naming the worst scalar, if its error exceeds tol. */
#define ur_assert_gradcheck(ps, fn, ctx, eps, tol)                                            \
    do {                                                                                      \
        ur_gradcheck_result gc_res_;                                                          \
        ck_assert_msg(ur_gradcheck((ps), (fn), (ctx), (eps), &gc_res_) == 0,                  \
                      "gradcheck failed to run: %s", gc_res_.param);                          \
        ck_assert_msg(gc_res_.checked > 0, "gradcheck compared nothing");                     \
        ck_assert_msg(gc_res_.worst <= (tol),                                                 \
                      "gradcheck: worst error %.3g at %s[%d,%d]: analytic %.6g numeric %.6g", \
                      gc_res_.worst, gc_res_.param, gc_res_.row, gc_res_.col,                 \
                      gc_res_.analytic, gc_res_.numeric);                                     \
    } while (0)

/* Runs a suite and returns the process exit status (0 when everything passed). */
static inline int ur_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

#endif
