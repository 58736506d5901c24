/* Shared helpers for the Check test programs. */
#ifndef UR_TEST_H
#define UR_TEST_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unroll.h"

/* Fills t with uniform values in [lo, hi). */
static inline void ur_test_fill(ur_tensor *t, ur_rng *r, float lo, float hi)
{
    for (size_t k = 0; k < ur_numel(t); k++) t->val[k] = lo + (hi - lo) * ur_rng_uniform(r);
}

/* One line of a gradient-check report: the parameter's counts and worst errors. */
static inline int ur_test_gradcheck_param_line(const ur_gradcheck_param *p, char *buf, size_t n)
{
    return snprintf(buf, n,
                    "%s: %d checked, %d failed; max abs %.3g at [%d,%d], max rel %.3g at "
                    "[%d,%d], worst ratio %.3g at [%d,%d]",
                    p->name, p->checked, p->failed, p->max_abs, p->abs_row, p->abs_col,
                    p->max_rel, p->rel_row, p->rel_col, p->worst_ratio, p->ratio_row,
                    p->ratio_col);
}

/* The report of a check: why it did not run, or the worst scalar and its parameter's line. */
static inline void ur_test_gradcheck_report(int rc, const ur_gradcheck_result *r, char *buf,
                                            size_t n)
{
    if (rc != 0) { snprintf(buf, n, "gradcheck did not run: %s", r->error); return; }
    if (r->checked == 0) { snprintf(buf, n, "gradcheck compared nothing"); return; }
    int len = snprintf(buf, n,
                       "gradcheck: %d of %d scalars fail |a - n| <= %g + %g |n| (eps %g); "
                       "worst %s[%d,%d]: analytic %.7g numeric %.7g, ratio %.3g; ",
                       r->failures, r->checked, r->atol, r->rtol, r->eps, r->worst.param,
                       r->worst.row, r->worst.col, r->worst.analytic, r->worst.numeric,
                       r->worst.ratio);
    for (int k = 0; k < r->n_params && len >= 0 && (size_t)len < n; k++)
        if (strcmp(r->params[k].name, r->worst.param) == 0)
            ur_test_gradcheck_param_line(&r->params[k], buf + len, n - (size_t)len);
}

/* Runs ur_gradcheck with step eps and the criterion |a - n| <= atol + rtol |n| and fails the
 * test, printing the worst scalar and its parameter's report, unless every scalar passes.
 * UR_TEST_VERBOSE=1 in the environment prints every check's figures to stderr. */
#define ur_assert_gradcheck(ps, fn, ctx, eps_, atol_, rtol_)                                  \
    do {                                                                                      \
        ur_gradcheck_opts gc_opts_ = {.eps = (eps_), .atol = (atol_), .rtol = (rtol_)};       \
        ur_gradcheck_result gc_res_;                                                          \
        char gc_msg_[1024];                                                                   \
        int gc_rc_ = ur_gradcheck((ps), (fn), (ctx), &gc_opts_, &gc_res_);                    \
        ur_test_gradcheck_report(gc_rc_, &gc_res_, gc_msg_, sizeof gc_msg_);                  \
        if (getenv("UR_TEST_VERBOSE"))                                                        \
            fprintf(stderr, "%s:%d: max abs %.3g, max rel %.3g; %s\n", __FILE__, __LINE__,    \
                    gc_res_.max_abs, gc_res_.max_rel, gc_msg_);                               \
        int gc_ok_ = gc_rc_ == 0 && gc_res_.checked > 0 && gc_res_.passed;                    \
        ur_gradcheck_result_free(&gc_res_);                                                   \
        ck_assert_msg(gc_ok_, "%s", gc_msg_);                                                 \
    } while (0)

/* Sets t's values from v (t's element count of them). */
static inline void ur_test_set(ur_tensor *t, const float *v)
{
    memcpy(t->val, v, ur_numel(t) * sizeof(float));
}

/* Asserts that t is rows x cols and within tol of want element by element (an infinite or NaN
 * want must be matched exactly in kind). */
static inline void ur_test_expect(const ur_tensor *t, int rows, int cols, const float *want,
                                  double tol)
{
    ck_assert_int_eq(t->rows, rows);
    ck_assert_int_eq(t->cols, cols);
    for (int k = 0; k < rows * cols; k++)
        ck_assert_msg(fabs(t->val[k] - want[k]) <= tol ||
                          (isinf(want[k]) && t->val[k] == want[k]) ||
                          (isnan(want[k]) && isnan(t->val[k])),
                      "element %d: got %.9g, want %.9g", k, (double)t->val[k], (double)want[k]);
}

/* Asserts that a parameter's gradient is want, exactly. */
static inline void ur_test_expect_grad(const ur_tensor *p, const float *want)
{
    ur_tensor g = {.rows = p->rows, .cols = p->cols, .val = p->grad};
    ur_test_expect(&g, p->rows, p->cols, want, 0);
}

/* Asserts that an op returned the tape's poison with exactly the error want, then resets. */
static inline void ur_test_expect_error(ur_tape *tp, ur_tensor *got, const char *want)
{
    ck_assert_ptr_eq(got, ur_tape_poison(tp));
    ck_assert_ptr_nonnull(ur_tape_error(tp));
    ck_assert_str_eq(ur_tape_error(tp), want);
    ur_tape_reset(tp);
}

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
