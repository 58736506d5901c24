/* The gradient check itself: it must fail wrong backwards (20%, 5%, 1% off, and a 20% error
 * in a gradient of 1e-4) and pass the correct one; report the failing parameter, row and
 * column; refuse a non-deterministic forward; check exactly k scalars per parameter when
 * asked; and say why it could not run. UR_TEST_VERBOSE=1 prints the figures. */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

/* ---- A user's element-wise op, with its own descriptor and a backward via ur_record ------
 * ISRU (inverse square root unit): y = x / sqrt(1 + x^2),  dy/dx = (1 + x^2)^(-3/2).
 * Smooth, with every derivative non-zero, so the finite difference has truncation error to
 * remove. The backward multiplies its gradient by node->f[0] (1: correct) at row node->i[0]
 * and column node->i[1] (-1: every row, every column). */
static void isru_backward(ur_node *n)
{
    const float *x = n->in[0]->val, *dy = n->out->grad;
    float *dx = ur_grad(n->in[0]);
    int cols = n->out->cols;
    for (size_t k = 0; k < ur_numel(n->out); k++) {
        float s = 1.0f / sqrtf(1.0f + x[k] * x[k]);
        int here = (n->i[0] < 0 || n->i[0] == (int)(k / cols)) &&
                   (n->i[1] < 0 || n->i[1] == (int)(k % cols));
        dx[k] += dy[k] * s * s * s * (here ? n->f[0] : 1.0f);
    }
}
static const ur_op isru_op = {"isru", isru_backward};

static ur_tensor *isru(ur_tape *tp, ur_tensor *x, float factor, int row, int col)
{
    if (!ur_op_begin(tp, "isru", 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    if (!y) return ur_tape_poison(tp);
    for (size_t k = 0; k < ur_numel(x); k++)
        y->val[k] = x->val[k] / sqrtf(1.0f + x->val[k] * x->val[k]);
    ur_node *nd = ur_record(tp, &isru_op, y, 1, x);
    if (nd) {
        nd->f[0] = factor;
        nd->i[0] = row;
        nd->i[1] = col;
    }
    return y;
}

/* L = sum(isru(X) * R) over a parameter X, R fixed: dL/dX = R (1 + X^2)^(-3/2). */
typedef struct {
    ur_params *ps;
    float factor;  /* the backward's error factor (at every element), 1 for the correct one */
    float r[64];
} isru_ctx;

static ur_tensor *isru_loss(ur_tape *tp, void *vctx)
{
    isru_ctx *c = vctx;
    ur_tensor *x = ur_params_get(c->ps, "x");
    ur_tensor *r = ur_input_from(tp, x->rows, x->cols, c->r);
    return ur_sum(tp, ur_mul(tp, isru(tp, x, c->factor, -1, -1), r));
}

static void isru_setup(isru_ctx *c, int rows, int cols)
{
    memset(c, 0, sizeof *c);
    c->ps = ur_params_new();
    ur_tensor *x = ur_params_add(c->ps, "x", rows, cols);
    ur_rng rng;
    ur_rng_seed(&rng, 21);
    ur_test_fill(x, &rng, -2, 2);
    for (int k = 0; k < rows * cols; k++) c->r[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    c->factor = 1;
}

static void say(const char *what, const ur_gradcheck_result *r)
{
    if (!getenv("UR_TEST_VERBOSE")) return;
    fprintf(stderr, "%-34s passed %d, %3d of %3d fail; worst ratio %8.3g (a %.7g n %.7g); "
                    "max abs %.2g, max rel %.2g\n", what, r->passed, r->failures, r->checked,
            r->worst.ratio, r->worst.analytic, r->worst.numeric, r->max_abs, r->max_rel);
}

/* The correct backward passes the default criterion with a wide margin; 20%, 5% and 1% wrong
 * fail it, each at (nearly) every scalar. */
START_TEST(test_wrong_backwards_fail)
{
    static const float factors[] = {1.0f, 1.2f, 1.05f, 1.01f};
    static const char *names[] = {"isru correct", "isru 20% wrong", "isru 5% wrong",
                                  "isru 1% wrong"};
    for (int k = 0; k < 4; k++) {
        isru_ctx c;
        isru_setup(&c, 6, 8);
        c.factor = factors[k];
        ur_gradcheck_result res;
        ck_assert_int_eq(ur_gradcheck(c.ps, isru_loss, &c, NULL, &res), 0);
        say(names[k], &res);
        ck_assert_int_eq(res.checked, 48);
        ck_assert_str_eq(res.error, "");
        ck_assert_double_eq(res.eps, UR_GRADCHECK_EPS);
        ck_assert_double_eq(res.atol, UR_GRADCHECK_ATOL);
        ck_assert_double_eq(res.rtol, UR_GRADCHECK_RTOL);
        if (k == 0) {
            ck_assert_int_eq(res.passed, 1);
            ck_assert_int_eq(res.failures, 0);
            ck_assert_double_lt(res.worst.ratio, 0.05); /* 20x margin */
            ck_assert_double_lt(res.max_rel, 1e-4);
        } else {
            ck_assert_int_eq(res.passed, 0);
            /* every gradient above (atol / (error - rtol)) fails: all but the tiny ones */
            ck_assert_int_ge(res.failures, k == 3 ? 40 : 46);
            ck_assert_double_gt(res.worst.ratio, k == 3 ? 5 : 30);
            double off = res.worst.analytic / res.worst.numeric - 1;
            ck_assert_double_eq_tol(off, factors[k] - 1, 1e-4);
        }
        ck_assert_int_eq(res.n_params, 1);
        ck_assert_int_eq(res.params[0].checked, 48);
        ck_assert_int_eq(res.params[0].failed, res.failures);
        ur_gradcheck_result_free(&res);
        ck_assert_ptr_null(res.params);
        ur_params_free(c.ps);
    }
}
END_TEST

/* ---- A gradient of 1e-4, wrong by 20% -----------------------------------------------------
 * L = sum(isru(X W) * R), W 3 x 2, with column 1 of R ~5e-5 so that W's column-1 gradients
 * are ~1e-4; the planted error: isru's backward 20% too large in that column. The old
 * measure, |a - n| / max(1, |a|, |n|), scored it ~2e-5 (a pass). */
typedef struct {
    ur_params *ps;
    float factor;
    float x[4 * 3], r[4 * 2];
} small_ctx;

static ur_tensor *small_loss(ur_tape *tp, void *vctx)
{
    small_ctx *c = vctx;
    ur_tensor *x = ur_input_from(tp, 4, 3, c->x), *r = ur_input_from(tp, 4, 2, c->r);
    ur_tensor *h = ur_matmul(tp, x, ur_params_get(c->ps, "w1"), 0, 0); /* 4 x 2 */
    return ur_sum(tp, ur_mul(tp, isru(tp, h, c->factor, -1, 1), r));
}

START_TEST(test_small_gradient_error)
{
    small_ctx c = {.factor = 1};
    c.ps = ur_params_new();
    ur_tensor *w1 = ur_params_add(c.ps, "w1", 3, 2);
    ur_rng rng;
    ur_rng_seed(&rng, 5);
    ur_test_fill(w1, &rng, -1, 1);
    for (int k = 0; k < 12; k++) c.x[k] = 0.2f + 0.8f * ur_rng_uniform(&rng); /* no cancelling */
    for (int k = 0; k < 8; k++)
        c.r[k] = (k % 2 ? 1e-4f : 1.0f) * (0.3f + 0.4f * ur_rng_uniform(&rng));
    /* dL/dW[j,1] = sum_i x[i,j] r[i,1] isru'(h[i,1]): four positive terms of ~3e-5. */
    ur_gradcheck_opts tight = {.atol = 1e-6};
    ur_gradcheck_result res;
    ck_assert_int_eq(ur_gradcheck(c.ps, small_loss, &c, &tight, &res), 0);
    say("small model correct, atol 1e-6", &res);
    ck_assert_int_eq(res.passed, 1);
    ck_assert_double_lt(res.worst.ratio, 0.2); /* the noise floor is far below 1e-6 here */
    for (int j = 0; j < 3; j++) {
        double g = fabs(w1->grad[j * 2 + 1]);
        ck_assert_msg(g > 3e-5 && g < 3e-4, "w1[%d,1] gradient %g is not ~1e-4", j, g);
    }
    ur_gradcheck_result_free(&res);

    c.factor = 1.2f;
    ck_assert_int_eq(ur_gradcheck(c.ps, small_loss, &c, NULL, &res), 0);
    say("small model 20% wrong, defaults", &res);
    ck_assert_int_eq(res.passed, 0);   /* the default atol 1e-5 catches it, barely */
    ck_assert_str_eq(res.worst.param, "w1");
    ck_assert_int_eq(res.worst.col, 1);
    ck_assert_double_gt(res.worst.ratio, 1.2);
    double a = res.worst.analytic, n = res.worst.numeric;
    ck_assert_double_lt(fabs(n), 3e-4);
    ck_assert_double_lt(fabs(a - n) / fmax(1, fmax(fabs(a), fabs(n))), 1e-4); /* old: a pass */
    ur_gradcheck_result_free(&res);

    ck_assert_int_eq(ur_gradcheck(c.ps, small_loss, &c, &tight, &res), 0);
    say("small model 20% wrong, atol 1e-6", &res);
    ck_assert_int_eq(res.passed, 0);
    ck_assert_double_gt(res.worst.ratio, 10); /* with atol 1e-6, by a factor of 10 and more */
    ck_assert_int_eq(res.params[0].failed, 3); /* every w1[j,1]; column 0 is right */
    ur_gradcheck_result_free(&res);
    ur_params_free(c.ps);
}
END_TEST

/* ---- Per-parameter report -------------------------------------------------------------- */

/* Three parameters through the ISRU op; a 20% error planted at p1[row, col] only. */
typedef struct { ur_params *ps; int row, col; float factor; } three_ctx;
static ur_tensor *three_loss(ur_tape *tp, void *vctx)
{
    three_ctx *c = vctx;
    ur_tensor *p0 = ur_params_get(c->ps, "p0"), *p1 = ur_params_get(c->ps, "p1");
    ur_tensor *p2 = ur_params_get(c->ps, "p2");
    ur_tensor *parts[2] = {ur_mul(tp, isru(tp, p0, 1, -1, -1), p0), /* 1 x 5 */
                           ur_mul(tp, isru(tp, p1, c->factor, c->row, c->col), p2)}; /* 4 x 5 */
    return ur_sum(tp, ur_concat_rows(tp, 2, parts));
}

START_TEST(test_report_names_planted_error)
{
    three_ctx c = {ur_params_new(), 2, 1, 1.2f};
    ur_rng rng;
    ur_rng_seed(&rng, 8);
    ur_test_fill(ur_params_add(c.ps, "p0", 1, 5), &rng, -1, 1);
    ur_test_fill(ur_params_add(c.ps, "p1", 4, 5), &rng, -1, 1);
    ur_test_fill(ur_params_add(c.ps, "p2", 4, 5), &rng, 0.5f, 1);
    ur_gradcheck_result res;
    ck_assert_int_eq(ur_gradcheck(c.ps, three_loss, &c, NULL, &res), 0);
    ck_assert_int_eq(res.passed, 0);
    ck_assert_int_eq(res.failures, 1);
    ck_assert_int_eq(res.checked, 5 + 20 + 20);
    ck_assert_str_eq(res.worst.param, "p1");
    ck_assert_int_eq(res.worst.row, 2);
    ck_assert_int_eq(res.worst.col, 1);
    ck_assert_int_eq(res.n_params, 3);
    const ur_gradcheck_param *p = res.params;
    ck_assert_str_eq(p[0].name, "p0");
    ck_assert_str_eq(p[1].name, "p1");
    ck_assert_str_eq(p[2].name, "p2");
    ck_assert_int_eq(p[0].checked, 5);
    ck_assert_int_eq(p[1].checked, 20);
    ck_assert_int_eq(p[2].checked, 20);
    ck_assert_int_eq(p[0].failed, 0);
    ck_assert_int_eq(p[1].failed, 1);
    ck_assert_int_eq(p[2].failed, 0);
    ck_assert(p[1].ratio_row == 2 && p[1].ratio_col == 1);
    ck_assert(p[1].abs_row == 2 && p[1].abs_col == 1);
    ck_assert(p[1].rel_row == 2 && p[1].rel_col == 1);
    ck_assert_double_eq_tol(p[1].max_rel, 0.2 / 1.2, 1e-4); /* |a - n| / max(|a|, |n|) */
    ck_assert_double_gt(p[1].worst_ratio, 30);
    ck_assert_double_lt(p[0].worst_ratio, 0.1);
    ck_assert_double_lt(p[2].worst_ratio, 0.1);
    ck_assert_double_eq(res.max_abs, p[1].max_abs);
    /* The test macro's message names the worst scalar and prints its parameter's line. */
    char msg[1024];
    ur_test_gradcheck_report(0, &res, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "1 of 45 scalars fail") && strstr(msg, "worst p1[2,1]") &&
                      strstr(msg, "p1: 20 checked, 1 failed"), "%s", msg);
    ur_gradcheck_result_free(&res);
    ur_params_free(c.ps);
}
END_TEST

/* ---- samples = k ------------------------------------------------------------------------- */

START_TEST(test_samples)
{
    three_ctx c = {ur_params_new(), -1, -1, 1};
    ur_rng rng;
    ur_rng_seed(&rng, 9);
    ur_test_fill(ur_params_add(c.ps, "p0", 1, 5), &rng, -1, 1);
    ur_test_fill(ur_params_add(c.ps, "p1", 4, 5), &rng, -1, 1);
    ur_test_fill(ur_params_add(c.ps, "p2", 4, 5), &rng, 0.5f, 1);
    for (int k = 1; k <= 25; k += 4) {
        ur_gradcheck_opts o = {.samples = k, .seed = (uint64_t)k};
        ur_gradcheck_result res;
        ck_assert_int_eq(ur_gradcheck(c.ps, three_loss, &c, &o, &res), 0);
        int want0 = k < 5 ? k : 5, want = k < 20 ? k : 20;
        ck_assert_int_eq(res.params[0].checked, want0);
        ck_assert_int_eq(res.params[1].checked, want);
        ck_assert_int_eq(res.params[2].checked, want);
        ck_assert_int_eq(res.checked, want0 + 2 * want);
        ck_assert_int_eq(res.passed, 1);
        ur_gradcheck_result_free(&res);
    }
    /* Which scalars: the same seed picks the same ones, other seeds others. Planting the
     * error at p1[2,1], 3 of 20 scalars find it with probability 3/20 per seed. */
    c.row = 2;
    c.col = 1;
    c.factor = 1.2f;
    int found = 0, again = 0;
    for (uint64_t seed = 0; seed < 40; seed++) {
        ur_gradcheck_opts o = {.samples = 3, .seed = seed};
        ur_gradcheck_result r1, r2;
        ck_assert_int_eq(ur_gradcheck(c.ps, three_loss, &c, &o, &r1), 0);
        ck_assert_int_eq(ur_gradcheck(c.ps, three_loss, &c, &o, &r2), 0);
        found += !r1.passed;
        again += r1.passed == r2.passed && r1.max_abs == r2.max_abs;
        ur_gradcheck_result_free(&r1);
        ur_gradcheck_result_free(&r2);
    }
    ck_assert_int_eq(again, 40);
    ck_assert_msg(found >= 2 && found <= 14, "found the planted error with %d of 40 seeds", found);
    ur_params_free(c.ps);
}
END_TEST

/* ---- A forward that is not deterministic ------------------------------------------------ */

typedef struct { ur_params *ps; ur_rng rng; int reseed; } drop_ctx;
static ur_tensor *drop_loss(ur_tape *tp, void *vctx)
{
    drop_ctx *c = vctx;
    if (c->reseed) ur_rng_seed(&c->rng, 3); /* the same mask every time */
    ur_tensor *x = ur_params_get(c->ps, "x");
    return ur_sum(tp, ur_mul(tp, ur_dropout(tp, x, 0.5f, &c->rng), x));
}

START_TEST(test_not_deterministic)
{
    drop_ctx c = {ur_params_new(), {{0}}, 0};
    ur_rng rng;
    ur_rng_seed(&rng, 4);
    ur_test_fill(ur_params_add(c.ps, "x", 4, 4), &rng, -1, 1);
    ur_rng_seed(&c.rng, 3);
    ur_gradcheck_result res;
    ck_assert_int_eq(ur_gradcheck(c.ps, drop_loss, &c, NULL, &res), -1);
    ck_assert_msg(strstr(res.error, "gradcheck: forward is not deterministic (loss ") &&
                      strstr(res.error, "): dropout or sampling?"), "%s", res.error);
    ck_assert_int_eq(res.passed, 0);
    ck_assert_int_eq(res.checked, 0);
    ck_assert_ptr_null(res.params);
    ur_gradcheck_result_free(&res);
    /* Reseeded each pass, the same forward is deterministic and its gradient right. */
    c.reseed = 1;
    ck_assert_int_eq(ur_gradcheck(c.ps, drop_loss, &c, NULL, &res), 0);
    ck_assert_int_eq(res.passed, 1);
    ur_gradcheck_result_free(&res);
    ur_params_free(c.ps);
}
END_TEST

/* ---- When the check cannot run ---------------------------------------------------------- */

static ur_tensor *bad_shape_loss(ur_tape *tp, void *ctx)
{
    return ur_mul(tp, ur_params_get(ctx, "x"), ur_params_get(ctx, "x"));
}
static ur_tensor *failing_loss(ur_tape *tp, void *ctx)
{
    ur_tensor *x = ur_params_get(ctx, "x");
    return ur_sum(tp, ur_matmul(tp, x, x, 0, 0)); /* 2x3 by 2x3 */
}
static ur_tensor *nan_loss(ur_tape *tp, void *ctx)
{
    ur_tensor *x = ur_params_get(ctx, "x");
    ur_tensor *y = ur_sum(tp, x);
    y->val[0] = NAN;
    y->has_exact = 0;
    return y;
}
static ur_tensor *sum_loss(ur_tape *tp, void *ctx) { return ur_sum(tp, ur_params_get(ctx, "x")); }

START_TEST(test_cannot_run)
{
    ur_params *ps = ur_params_new();
    ur_params_add(ps, "x", 2, 3)->val[0] = 1e6f;
    ur_gradcheck_result res;
    ck_assert_int_eq(ur_gradcheck(NULL, sum_loss, ps, NULL, &res), -1);
    ck_assert_str_eq(res.error, "gradcheck: NULL argument");
    ur_gradcheck_result_free(&res);
    ck_assert_int_eq(ur_gradcheck(ps, NULL, ps, NULL, &res), -1);
    ck_assert_str_eq(res.error, "gradcheck: NULL argument");
    ck_assert_int_eq(ur_gradcheck(ps, sum_loss, ps, NULL, NULL), -1);
    ck_assert_int_eq(ur_gradcheck(ps, sum_loss, ps, &(ur_gradcheck_opts){.samples = -1}, &res), -1);
    ck_assert_str_eq(res.error, "gradcheck: samples = -1 is negative");
    ck_assert_int_eq(ur_gradcheck(ps, bad_shape_loss, ps, NULL, &res), -1);
    ck_assert_str_eq(res.error, "gradcheck: backward failed: backward: loss must be 1x1, got 2x3");
    ck_assert_int_eq(ur_gradcheck(ps, failing_loss, ps, NULL, &res), -1);
    ck_assert_str_eq(res.error,
                     "gradcheck: backward failed: matmul: inner dimensions differ: 2x3 and 2x3");
    ck_assert_int_eq(ur_gradcheck(ps, nan_loss, ps, NULL, &res), -1);
    ck_assert_str_eq(res.error, "gradcheck: the loss is not finite (nan)");
    /* At 1e6 float's spacing is 0.0625: a step of 1e-2 vanishes. */
    ck_assert_int_eq(ur_gradcheck(ps, sum_loss, ps, &(ur_gradcheck_opts){.eps = 1e-2}, &res), -1);
    ck_assert_str_eq(res.error,
                     "gradcheck: step 0.01 vanishes in float at the value 1e+06 (at x[0,0])");
    ck_assert_ptr_null(res.params);
    ur_gradcheck_result_free(&res);
    ur_gradcheck_result_free(NULL);
    /* The check ran: the parameters are as they were. */
    ck_assert_float_eq(ur_params_get(ps, "x")->val[0], 1e6f);
    ck_assert_int_eq(ur_gradcheck(ps, sum_loss, ps, &(ur_gradcheck_opts){.eps = 0.25}, &res), 0);
    ck_assert_int_eq(res.passed, 1);
    ck_assert_float_eq(ur_params_get(ps, "x")->val[0], 1e6f);
    ur_gradcheck_result_free(&res);
    ur_params_free(ps);
}
END_TEST

/* ---- The loss in double ----------------------------------------------------------------- */

/* ur_sum and the losses keep the double they accumulated; the float is its rounding. */
START_TEST(test_exact_loss)
{
    ur_tape *tp = ur_tape_new(0);
    float v[4] = {1.0f, 1e-8f, 3e-8f, -2e-8f};
    ur_tensor *x = ur_input_from(tp, 1, 4, v);
    ur_tensor *s = ur_sum(tp, x);
    ck_assert_int_eq(s->has_exact, 1);
    ck_assert_double_eq(s->exact, (double)v[0] + v[1] + v[2] + v[3]);
    ck_assert_float_eq(s->val[0], 1.0f);
    ck_assert_double_ne(s->exact, 1.0);
    ur_tensor *z = ur_input_from(tp, 1, 4, (float[]){1, 0, 0, 0});
    ur_tensor *m = ur_mse(tp, x, z, UR_MEAN);
    ck_assert_int_eq(m->has_exact, 1);
    ck_assert_double_eq_tol(m->exact, (1e-16 + 9e-16 + 4e-16) / 4, 1e-22);
    ck_assert_float_eq(m->val[0], (float)m->exact);
    ur_tensor *xe = ur_sigmoid_xent(tp, x, z, UR_SUM);
    ck_assert_int_eq(xe->has_exact, 1);
    ck_assert_float_eq(xe->val[0], (float)xe->exact);
    ur_tensor *nll = ur_softmax_nll(tp, x, (int[]){0}, UR_SUM);
    ck_assert_int_eq(nll->has_exact, 1);
    ck_assert_float_eq(nll->val[0], (float)nll->exact);
    /* Other ops leave it unset. */
    ck_assert_int_eq(ur_scale(tp, s, 2)->has_exact, 0);
    ck_assert_int_eq(ur_add(tp, s, s)->has_exact, 0);
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_tape_free(tp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("gradcheck");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wrong_backwards_fail);
    tcase_add_test(tc, test_small_gradient_error);
    tcase_add_test(tc, test_report_names_planted_error);
    tcase_add_test(tc, test_samples);
    tcase_add_test(tc, test_not_deterministic);
    tcase_add_test(tc, test_cannot_run);
    tcase_add_test(tc, test_exact_loss);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
