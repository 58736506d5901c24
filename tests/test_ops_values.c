/* Forward (and some backward) values of the ops of issue 10 against numbers worked out by
 * hand, family by family: broadcasting arithmetic, element-wise functions, reductions,
 * softmax, constants, gather and the layout ops, block matmul; the errors each gives on bad
 * shapes; and bias gradients over many rows, summed in double. The gradient checks and NaN
 * checks of the same ops are tests/test_ops_table.c.
 */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

/* ---- Forward values by hand ----------------------------------------------------------------- */

START_TEST(test_broadcast_forward)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *a = ur_input_from(tp, 2, 3, (float[]){1, 2, 3, 4, 5, 6});
    ur_tensor *row = ur_input_from(tp, 1, 3, (float[]){10, 20, 30});
    ur_tensor *col = ur_input_from(tp, 2, 1, (float[]){100, 200});
    ur_tensor *s = ur_input_from(tp, 1, 1, (float[]){2});
    ur_test_expect(ur_add(tp, a, row), 2, 3, (float[]){11, 22, 33, 14, 25, 36}, 0);
    ur_test_expect(ur_add(tp, row, a), 2, 3, (float[]){11, 22, 33, 14, 25, 36}, 0);
    ur_test_expect(ur_add_bias(tp, a, row), 2, 3, (float[]){11, 22, 33, 14, 25, 36}, 0);
    ur_test_expect(ur_sub(tp, a, row), 2, 3, (float[]){-9, -18, -27, -6, -15, -24}, 0);
    ur_test_expect(ur_sub(tp, row, a), 2, 3, (float[]){9, 18, 27, 6, 15, 24}, 0);
    ur_test_expect(ur_sub(tp, a, col), 2, 3, (float[]){-99, -98, -97, -196, -195, -194}, 0);
    ur_test_expect(ur_mul(tp, a, col), 2, 3, (float[]){100, 200, 300, 800, 1000, 1200}, 0);
    ur_test_expect(ur_mul(tp, col, a), 2, 3, (float[]){100, 200, 300, 800, 1000, 1200}, 0);
    ur_test_expect(ur_mul(tp, s, a), 2, 3, (float[]){2, 4, 6, 8, 10, 12}, 0);
    ur_test_expect(ur_div(tp, a, s), 2, 3, (float[]){0.5f, 1, 1.5f, 2, 2.5f, 3}, 0);
    ur_test_expect(ur_div(tp, s, a), 2, 3, (float[]){2, 1, 2.0f / 3, 0.5f, 0.4f, 2.0f / 6}, 0);
    ur_test_expect(ur_div(tp, a, a), 2, 3, (float[]){1, 1, 1, 1, 1, 1}, 0);
    ur_test_expect(ur_div(tp, row, col), 2, 3, (float[]){0.1f, 0.2f, 0.3f, 0.05f, 0.1f, 0.15f}, 1e-8);
    ur_test_expect(ur_add(tp, row, col), 2, 3, (float[]){110, 120, 130, 210, 220, 230}, 0); /* outer */
    ur_test_expect(ur_mul(tp, col, s), 2, 1, (float[]){200, 400}, 0);
    ur_test_expect(ur_sub(tp, s, s), 1, 1, (float[]){0}, 0);
    /* division by zero as in C */
    ur_tensor *z = ur_input_from(tp, 1, 3, (float[]){0, 0, 0});
    ur_tensor *num = ur_input_from(tp, 1, 3, (float[]){1, -1, 0});
    ur_test_expect(ur_div(tp, num, z), 1, 3, (float[]){INFINITY, -INFINITY, NAN}, 0);
    ck_assert_ptr_null(ur_tape_error(tp));
    /* shapes that do not broadcast */
    ur_tensor *tall = ur_input(tp, 3, 1);
    ur_test_expect_error(tp, ur_add(tp, a, tall), "add: shapes differ: 2x3 and 3x1");
    a = ur_input(tp, 2, 3);
    ur_test_expect_error(tp, ur_div(tp, ur_input(tp, 1, 2), a), "div: shapes differ: 1x2 and 2x3");
    a = ur_input(tp, 2, 3);
    ur_test_expect_error(tp, ur_add_bias(tp, a, ur_input(tp, 2, 1)),
                 "add_bias: bias must be 1 x cols of x: 2x3 and 2x1");
    ur_test_expect_error(tp, ur_mul(tp, NULL, ur_input(tp, 1, 1)), "mul: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

/* The broadcast side's gradient is its share summed back to its shape. */
START_TEST(test_broadcast_backward)
{
    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a", 2, 3), *col = ur_params_add(ps, "col", 2, 1);
    ur_tensor *row = ur_params_add(ps, "row", 1, 3), *s = ur_params_add(ps, "s", 1, 1);
    ur_test_set(a, (float[]){1, 2, 3, 4, 5, 6});
    ur_test_set(col, (float[]){2, 4});
    ur_test_set(row, (float[]){1, -1, 2});
    ur_test_set(s, (float[]){0.5f});
    ur_tape *tp = ur_tape_new(0);
    /* L = sum(a * col) + sum(a - row) + sum(row / s): dcol = row sums of a, da = col + 1,
     * drow = -2 + 1 / s = 0 per element, ds = -sum(row) / s^2 = -8 */
    ur_tensor *l = ur_add(tp, ur_sum(tp, ur_mul(tp, a, col)), ur_sum(tp, ur_sub(tp, a, row)));
    l = ur_add(tp, l, ur_sum(tp, ur_div(tp, row, s)));
    ck_assert_int_eq(ur_backward(tp, l), 0);
    ur_test_expect_grad(col, (float[]){6, 15});
    ur_test_expect_grad(a, (float[]){3, 3, 3, 5, 5, 5});
    ur_test_expect_grad(row, (float[]){0, 0, 0});
    ck_assert_float_eq(s->grad[0], -8);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_unary_forward)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input_from(tp, 1, 6, (float[]){0, 1, -1, 4, 0.25f, -2});
    ur_test_expect(ur_exp(tp, x), 1, 6,
           (float[]){1, 2.71828183f, 0.36787944f, 54.5981500f, 1.28402542f, 0.13533528f}, 1e-5);
    ur_test_expect(ur_log(tp, x), 1, 6, (float[]){-INFINITY, 0, NAN, 1.38629436f, -1.38629436f, NAN}, 1e-6);
    ur_test_expect(ur_sqrt(tp, x), 1, 6, (float[]){0, 1, NAN, 2, 0.5f, NAN}, 0);
    ur_test_expect(ur_rsqrt(tp, x), 1, 6, (float[]){INFINITY, 1, NAN, 0.5f, 2, NAN}, 0);
    ur_test_expect(ur_square(tp, x), 1, 6, (float[]){0, 1, 1, 16, 0.0625f, 4}, 0);
    ur_test_expect(ur_abs(tp, x), 1, 6, (float[]){0, 1, 1, 4, 0.25f, 2}, 0);
    ur_test_expect(ur_reciprocal(tp, x), 1, 6, (float[]){INFINITY, 1, -1, 0.25f, 4, -0.5f}, 0);
    /* softplus: ln 2, ln(1 + e), ln(1 + 1/e), ... */
    ur_test_expect(ur_softplus(tp, x), 1, 6,
           (float[]){0.69314718f, 1.31326169f, 0.31326169f, 4.01814993f, 0.82593942f, 0.126928011f},
           1e-6);
    ur_test_expect(ur_clamp(tp, x, -0.5f, 2), 1, 6, (float[]){0, 1, -0.5f, 2, 0.25f, -0.5f}, 0);
    ur_test_expect(ur_clamp(tp, x, -INFINITY, 0.5f), 1, 6, (float[]){0, 0.5f, -1, 0.5f, 0.25f, -2}, 0);
    ur_test_expect(ur_add_scalar(tp, x, -1.5f), 1, 6,
           (float[]){-1.5f, -0.5f, -2.5f, 2.5f, -1.25f, -3.5f}, 0);
    /* the edges: exp overflows to Inf and underflows to 0; softplus stays finite and exact */
    ur_tensor *big = ur_input_from(tp, 1, 4, (float[]){89, -110, 100, -100});
    ur_test_expect(ur_exp(tp, big), 1, 4, (float[]){INFINITY, 0, INFINITY, 3.7200760e-44f}, 1e-45);
    ur_tensor *sp = ur_softplus(tp, big);
    ur_test_expect(sp, 1, 4, (float[]){89, 0, 100, 3.7200760e-44f}, 1e-45);
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_test_expect_error(tp, ur_clamp(tp, x, 1, -1), "clamp: bounds [1, -1] are not ordered (lo <= hi)");
    x = ur_input(tp, 1, 1);
    ur_test_expect_error(tp, ur_clamp(tp, x, NAN, 1), "clamp: bounds [nan, 1] are not ordered (lo <= hi)");
    ur_test_expect_error(tp, ur_sqrt(tp, NULL), "sqrt: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

/* Gradients at the edges, by hand: clamp is 0 outside and 1 inside, abs is 0 at 0, softplus'
 * is sigmoid even where e^-x overflows. */
START_TEST(test_unary_backward_edges)
{
    ur_params *ps = ur_params_new();
    ur_tensor *x = ur_params_add(ps, "x", 1, 5);
    ur_test_set(x, (float[]){-2, -0.5f, 0, 0.5f, 200});
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *l = ur_sum(tp, ur_clamp(tp, x, -1, 1));
    ck_assert_int_eq(ur_backward(tp, l), 0);
    ur_test_expect_grad(x, (float[]){0, 1, 1, 1, 0});
    ur_tape_reset(tp);
    ur_params_zero_grad(ps);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_abs(tp, x))), 0);
    ur_test_expect_grad(x, (float[]){-1, -1, 0, 1, 1});
    ur_tape_reset(tp);
    ur_params_zero_grad(ps);
    ur_test_set(x, (float[]){-200, -1, 0, 1, 200});
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_softplus(tp, x))), 0);
    ur_test_expect(&(ur_tensor){.rows = 1, .cols = 5, .val = x->grad}, 1, 5,
           (float[]){0, 0.26894142f, 0.5f, 0.73105858f, 1}, 1e-7);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_reductions)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input_from(tp, 2, 3, (float[]){1, 2, 3, 4, 5, 6});
    ur_test_expect(ur_row_sum(tp, x), 2, 1, (float[]){6, 15}, 0);
    ur_test_expect(ur_row_mean(tp, x), 2, 1, (float[]){2, 5}, 0);
    ur_test_expect(ur_col_sum(tp, x), 1, 3, (float[]){5, 7, 9}, 0);
    ur_test_expect(ur_col_mean(tp, x), 1, 3, (float[]){2.5f, 3.5f, 4.5f}, 0);
    ur_test_expect(ur_mean(tp, x), 1, 1, (float[]){3.5f}, 0);
    /* Summed in double: 1e8 + 1 + ... + 1 - 1e8 loses nothing. Columns wider than one
     * accumulation block (256) are summed right as well. */
    ur_tensor *w = ur_constant(tp, 3, 1000, 1.0f);
    w->val[0] = 1e8f;
    w->val[999] = -1e8f;
    w->val[1000] = 0.5f;
    ur_tensor *rs = ur_row_sum(tp, w), *cs = ur_col_sum(tp, w);
    ck_assert_float_eq(rs->val[0], 998);
    ck_assert_float_eq(rs->val[1], 999.5f);
    ck_assert_float_eq(cs->val[0], 1e8f + 2);
    ck_assert_float_eq(cs->val[1], 3);
    ck_assert_float_eq(cs->val[999], -1e8f + 2);
    ck_assert_float_eq(ur_mean(tp, w)->val[0], (float)(2997.5 / 3000));
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_test_expect_error(tp, ur_row_mean(tp, NULL), "row_mean: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

START_TEST(test_softmax_forward)
{
    ur_tape *tp = ur_tape_new(0);
    float big = 1e4f;
    ur_tensor *x = ur_input_from(tp, 3, 3, (float[]){1, 2, 3, big, 0, -big, 0, -INFINITY, 0});
    ur_test_expect(ur_softmax(tp, x), 3, 3,
           (float[]){0.0900305732f, 0.244728471f, 0.665240956f, 1, 0, 0, 0.5f, 0, 0.5f}, 1e-7);
    ur_test_expect(ur_log_softmax(tp, x), 3, 3,
           (float[]){-2.40760596f, -1.40760596f, -0.407605964f, 0, -1e4f, -2e4f, -0.693147181f,
                     -INFINITY, -0.693147181f}, 1e-6);
    /* a shift of every logit changes nothing */
    ur_tensor *shifted = ur_input_from(tp, 1, 3, (float[]){1001, 1002, 1003});
    ur_test_expect(ur_softmax(tp, shifted), 1, 3,
           (float[]){0.0900305732f, 0.244728471f, 0.665240956f}, 1e-7);
    /* rows without a finite max are all NaN; the others are untouched */
    ur_tensor *bad = ur_input_from(tp, 3, 2, (float[]){INFINITY, 0, -INFINITY, -INFINITY, 0, 0});
    ur_test_expect(ur_softmax(tp, bad), 3, 2, (float[]){NAN, NAN, NAN, NAN, 0.5f, 0.5f}, 1e-7);
    ur_test_expect(ur_log_softmax(tp, bad), 3, 2,
           (float[]){NAN, NAN, NAN, NAN, -0.693147181f, -0.693147181f}, 1e-7);
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_test_expect_error(tp, ur_log_softmax(tp, NULL), "log_softmax: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

/* Gradients at logits of 1e4 are finite and right: softmax's is ~0 for a saturated row, and
 * log_softmax's is g - p sum(g) with p one-hot. */
START_TEST(test_softmax_large_logits)
{
    ur_params *ps = ur_params_new();
    ur_tensor *x = ur_params_add(ps, "x", 1, 3);
    ur_test_set(x, (float[]){1e4f, 0, -1e4f});
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *g = ur_input_from(tp, 1, 3, (float[]){1, 2, 3});
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, ur_log_softmax(tp, x), g))), 0);
    ur_test_expect_grad(x, (float[]){1 - 6, 2, 3});
    ur_tape_reset(tp);
    ur_params_zero_grad(ps);
    g = ur_input_from(tp, 1, 3, (float[]){1, 2, 3});
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, ur_softmax(tp, x), g))), 0);
    ur_test_expect_grad(x, (float[]){0, 0, 0});
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_constants)
{
    ur_tape *tp = ur_tape_new(0);
    ur_test_expect(ur_constant(tp, 2, 3, -1.5f), 2, 3,
           (float[]){-1.5f, -1.5f, -1.5f, -1.5f, -1.5f, -1.5f}, 0);
    ur_test_expect(ur_zeros(tp, 1, 2), 1, 2, (float[]){0, 0}, 0);
    ur_test_expect(ur_ones(tp, 3, 1), 3, 1, (float[]){1, 1, 1}, 0);
    ur_tensor *x = ur_input_from(tp, 1, 2, (float[]){NAN, 4});
    ur_tensor *c = ur_constant_like(tp, x, 7);
    ur_test_expect(c, 1, 2, (float[]){7, 7}, 0); /* x's values are not read */
    ck_assert_int_eq(c->requires_grad, 0);
    ck_assert_int_eq(ur_tape_node_count(tp), 0);
    /* a constant scalar broadcasts */
    ur_test_expect(ur_mul(tp, ur_constant(tp, 1, 1, 0.5f), ur_ones(tp, 2, 2)), 2, 2,
           (float[]){0.5f, 0.5f, 0.5f, 0.5f}, 0);
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_test_expect_error(tp, ur_zeros(tp, 0, 3), "zeros: bad size 0x3 (both must be positive)");
    ur_test_expect_error(tp, ur_constant(tp, 2, -1, 1), "constant: bad size 2x-1 (both must be positive)");
    ur_test_expect_error(tp, ur_constant_like(tp, NULL, 1), "constant_like: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

START_TEST(test_gather_rows)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 3, 2);
    ur_test_set(w, (float[]){1, 2, 3, 4, 5, 6});
    ur_tape *tp = ur_tape_new(0);
    /* from an op's output: the gradient flows through the gather into w */
    ur_tensor *x = ur_scale(tp, w, 2);
    ur_tensor *y = ur_gather_rows(tp, x, (int[]){2, 2, 0}, 3);
    ur_test_expect(y, 3, 2, (float[]){10, 12, 10, 12, 2, 4}, 0);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, y)), 0);
    ur_test_expect_grad(w, (float[]){2, 2, 0, 0, 4, 4});
    ur_tape_reset(tp);
    /* from a view (a time step of a stacked sequence) */
    ur_params_zero_grad(ps);
    y = ur_gather_rows(tp, ur_rows(tp, w, 1, 2), (int[]){1}, 1);
    ur_test_expect(y, 1, 2, (float[]){5, 6}, 0);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, y)), 0);
    ur_test_expect_grad(w, (float[]){0, 0, 0, 0, 1, 1});
    ur_tape_reset(tp);
    ur_test_expect_error(tp, ur_gather_rows(tp, w, (int[]){0, 3}, 2),
                 "gather_rows: index 3 at position 1 is outside the 3x2 tensor");
    ur_test_expect_error(tp, ur_gather_rows(tp, w, (int[]){-1}, 1),
                 "gather_rows: index -1 at position 0 is outside the 3x2 tensor");
    ur_test_expect_error(tp, ur_gather_rows(tp, w, NULL, 2),
                 "gather_rows: needs at least one index, got n = 2");
    ur_test_expect_error(tp, ur_embedding(tp, w, (int[]){0}, 0),
                 "embedding: needs at least one id, got n = 0");
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_layout)
{
    ur_tape *tp = ur_tape_new(0);
    /* T = 3 steps of B = 2: time-major rows t0b0 t0b1 t1b0 t1b1 t2b0 t2b1 (values 10 t + b) */
    float tm[12] = {0, 0.5f, 1, 1.5f, 10, 10.5f, 11, 11.5f, 20, 20.5f, 21, 21.5f};
    ur_tensor *x = ur_input_from(tp, 6, 2, tm);
    ur_tensor *bm = ur_time_to_batch(tp, x, 3);
    ur_test_expect(bm, 6, 2, (float[]){0, 0.5f, 10, 10.5f, 20, 20.5f, 1, 1.5f, 11, 11.5f, 21, 21.5f}, 0);
    ur_test_expect(ur_batch_to_time(tp, bm, 3), 6, 2, tm, 0);
    /* B = 1 or T = 1: nothing moves */
    ur_test_expect(ur_time_to_batch(tp, x, 6), 6, 2, x->val, 0);
    ur_test_expect(ur_time_to_batch(tp, x, 1), 6, 2, x->val, 0);
    ur_tensor *m = ur_input_from(tp, 2, 3, (float[]){1, 2, 3, 4, 5, 6});
    ur_test_expect(ur_transpose(tp, m), 3, 2, (float[]){1, 4, 2, 5, 3, 6}, 0);
    ur_tensor *v = ur_reshape(tp, m, 3, 2);
    ur_test_expect(v, 3, 2, (float[]){1, 2, 3, 4, 5, 6}, 0);
    ck_assert_ptr_eq(v->val, m->val); /* zero-copy */
    ur_test_expect(ur_reshape(tp, ur_rows(tp, m, 1, 1), 3, 1), 3, 1, (float[]){4, 5, 6}, 0);
    /* a transpose larger than its tiles, with ragged edges, against the definition */
    ur_rng rng;
    ur_rng_seed(&rng, 3);
    ur_tensor *big = ur_input(tp, 70, 45);
    ur_test_fill(big, &rng, -1, 1);
    ur_tensor *bt = ur_transpose(tp, big);
    ck_assert_int_eq(bt->rows, 45);
    for (int r = 0; r < 70; r++)
        for (int c = 0; c < 45; c++) ck_assert(bt->val[c * 70 + r] == big->val[r * 45 + c]);
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_test_expect_error(tp, ur_time_to_batch(tp, ur_input(tp, 5, 2), 2),
                 "time_to_batch: 5x2 is not T*B rows with T = 2");
    ur_test_expect_error(tp, ur_batch_to_time(tp, ur_input(tp, 4, 2), 0),
                 "batch_to_time: 4x2 is not T*B rows with T = 0");
    ur_test_expect_error(tp, ur_reshape(tp, ur_input(tp, 2, 3), 4, 2), "reshape: cannot view 2x3 as 4x2");
    ur_test_expect_error(tp, ur_transpose(tp, NULL), "transpose: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

START_TEST(test_block_matmul)
{
    ur_tape *tp = ur_tape_new(0);
    /* B = 2 queries q_k (1 x 2) against B = 2 sequences E_k of T = 2 steps (2 x 2) */
    ur_tensor *q = ur_input_from(tp, 2, 2, (float[]){1, 2, 3, 4});
    ur_tensor *e = ur_input_from(tp, 4, 2, (float[]){1, 0, 0, 1, 1, 1, 2, -1});
    ur_test_expect(ur_block_matmul(tp, q, e, 2, 0, 1), 2, 2, (float[]){1, 2, 7, 2}, 0); /* q_k E_k^T */
    ur_tensor *w = ur_input_from(tp, 2, 2, (float[]){0.5f, 0.5f, 1, 0});
    ur_test_expect(ur_block_matmul(tp, w, e, 2, 0, 0), 2, 2, (float[]){0.5f, 0.5f, 1, 1}, 0); /* w_k E_k */
    ur_tensor *qc = ur_input_from(tp, 4, 1, (float[]){1, 2, 3, 4});
    ur_test_expect(ur_block_matmul(tp, e, qc, 2, 0, 0), 4, 1, (float[]){1, 2, 7, 2}, 0); /* E_k q_k */
    /* every flag combination, against ur_matmul on each pair of row blocks */
    ur_rng rng;
    ur_rng_seed(&rng, 8);
    for (int flags = 0; flags < 4; flags++) {
        int ta = flags & 1, tb = flags >> 1, nb = 3, m = 4, k = 5, n = 6;
        ur_tensor *a = ur_input(tp, nb * (ta ? k : m), ta ? m : k);
        ur_tensor *b = ur_input(tp, nb * (tb ? n : k), tb ? k : n);
        ur_test_fill(a, &rng, -1, 1);
        ur_test_fill(b, &rng, -1, 1);
        ur_tensor *c = ur_block_matmul(tp, a, b, nb, ta, tb);
        ck_assert_int_eq(c->rows, nb * m);
        ck_assert_int_eq(c->cols, n);
        for (int blk = 0; blk < nb; blk++) {
            ur_tensor *ak = ur_rows(tp, a, blk * a->rows / nb, a->rows / nb);
            ur_tensor *bk = ur_rows(tp, b, blk * b->rows / nb, b->rows / nb);
            ur_tensor *want = ur_matmul(tp, ak, bk, ta, tb);
            for (int j = 0; j < m * n; j++)
                ck_assert_float_eq_tol(c->val[blk * m * n + j], want->val[j], 1e-6);
        }
    }
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_test_expect_error(tp, ur_block_matmul(tp, ur_input(tp, 3, 2), ur_input(tp, 4, 2), 2, 0, 1),
                 "block_matmul: 3x2 and 4x2 do not both split into 2 row blocks");
    ur_test_expect_error(tp, ur_block_matmul(tp, ur_input(tp, 2, 3), ur_input(tp, 8, 2), 2, 0, 1),
                 "block_matmul: inner dimensions of the blocks differ: 2x3 and 8x2");
    ur_test_expect_error(tp, ur_block_matmul(tp, ur_input(tp, 2, 3), ur_input(tp, 8, 2), 0, 0, 0),
                 "block_matmul: 2x3 and 8x2 do not both split into 0 row blocks");
    ur_tape_free(tp);
}
END_TEST

/* ---- Bias gradients over many rows --------------------------------------------------------
 * A bias added to T*B rows gets the column sums of their gradients. Summed in float row by
 * row, a row of 1e6 and then 2e5 rows of values in [0, 1) lose about 1e-5 of the sum (each
 * addition is rounded to the running total's ulp, 1/8); summed in double and rounded once,
 * the result is within one float rounding (6e-8 relative) of the exact sum. Every op that
 * reduces a gradient down the rows is checked: add_bias, add / sub / mul / div with a 1 x n
 * operand on either side, a 1 x 1 operand, linear's bias, repeat_rows and layer_norm's gain
 * and bias. */
enum { BIG_ROWS = 200003, BIG_COLS = 6 };
#define BIG_RTOL 1.5e-7

/* Fails unless got[j] is within BIG_RTOL of want[j] for every j. */
static void expect_sums(const char *what, const float *got, const double *want, int n)
{
    for (int j = 0; j < n; j++)
        ck_assert_msg(fabs(got[j] - want[j]) <= BIG_RTOL * fabs(want[j]),
                      "%s: column %d is %.9g, the exact sum %.9g (relative error %.3g)", what, j,
                      (double)got[j], want[j], fabs(got[j] - want[j]) / fabs(want[j]));
}

START_TEST(test_bias_grad_many_rows)
{
    const int m = BIG_ROWS, n = BIG_COLS;
    ur_rng rng;
    ur_rng_seed(&rng, 14);
    ur_tape *tp = ur_tape_new(0);
    ur_params *ps = ur_params_new();
    ur_tensor *b = ur_params_add(ps, "b", 1, n), *s1 = ur_params_add(ps, "s", 1, 1);
    ur_tensor *g = ur_params_add(ps, "g", 1, n), *w = ur_params_add(ps, "W", n, n);
    for (int j = 0; j < n; j++) b->val[j] = g->val[j] = 1;
    for (int j = 0; j < n * n; j++) w->val[j] = j % (n + 1) == 0; /* the identity */
    /* c: the gradient reaching the op's output (L = sum(y * c)); x: its other operand, each
     * row (-1, 1, -1, ...) so that layer norm's xh is x exactly (mean 0, variance 1) */
    float *c = malloc((size_t)m * n * sizeof *c), *x = malloc((size_t)m * n * sizeof *x);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(x);
    for (size_t k = 0; k < (size_t)m * n; k++) {
        c[k] = k < (size_t)n ? 1e6f : ur_rng_uniform(&rng); /* one large row first */
        x[k] = k % 2 ? 1.0f : -1.0f;
    }
    double sum_c[BIG_COLS] = {0}, sum_cx[BIG_COLS] = {0}, total = 0;
    float naive[BIG_COLS] = {0};
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            float ck = c[(size_t)r * n + j];
            sum_c[j] += ck;
            sum_cx[j] += (double)ck * x[(size_t)r * n + j];
            naive[j] += ck;
        }
    for (int j = 0; j < n; j++) total += sum_c[j];
    double neg_c[BIG_COLS], neg_cx[BIG_COLS];
    for (int j = 0; j < n; j++) neg_c[j] = -sum_c[j], neg_cx[j] = -sum_cx[j];
    /* the test means something: float row-by-row summation misses the tolerance tenfold */
    double worst = 0;
    for (int j = 0; j < n; j++) worst = fmax(worst, fabs(naive[j] - sum_c[j]) / sum_c[j]);
    ck_assert_msg(worst > 30 * BIG_RTOL, "float summation is off by only %.3g", worst);

    for (int op = 0; op < 9; op++) {
        ur_params_zero_grad(ps);
        ur_tensor *xt = ur_input_from(tp, m, n, x), *ct = ur_input_from(tp, m, n, c), *y = NULL;
        switch (op) {
        case 0: y = ur_add_bias(tp, xt, b); break;
        case 1: y = ur_add(tp, b, xt); break;
        case 2: y = ur_sub(tp, xt, b); break;
        case 3: y = ur_mul(tp, xt, b); break;
        case 4: y = ur_add(tp, xt, s1); break;
        case 5: y = ur_linear(tp, xt, w, b); break;
        case 6: y = ur_mul(tp, ur_repeat_rows(tp, b, m), ct); break; /* dy: c again */
        case 7: y = ur_layer_norm(tp, xt, g, b, 0.0f); break;
        case 8: y = ur_div(tp, xt, b); break; /* b = 1: db = -sum(c y / b) = -sum(c x) */
        }
        ur_tensor *l = op == 6 ? ur_sum(tp, y) : ur_sum(tp, ur_mul(tp, y, ct));
        ck_assert_int_eq(ur_backward(tp, l), 0);
        static const char *names[] = {"add_bias", "add (bias first)", "sub", "mul", "add 1x1",
                                      "linear", "repeat_rows", "layer_norm", "div"};
        if (op == 2) expect_sums(names[op], b->grad, neg_c, n);
        else if (op == 3) expect_sums(names[op], b->grad, sum_cx, n);
        else if (op == 4) expect_sums(names[op], s1->grad, &total, 1);
        else if (op == 8) expect_sums(names[op], b->grad, neg_cx, n);
        else expect_sums(names[op], b->grad, sum_c, n);
        if (op == 7) expect_sums("layer_norm gain", g->grad, sum_cx, n);
        ur_tape_reset(tp);
    }
    free(c);
    free(x);
    ur_params_free(ps);
    ur_tape_free(tp);
}
END_TEST

/* Across a column block of the double sums (1024 columns, ops/colsum.c): 1030 columns of small
 * integers, whose sums are exact either way. */
START_TEST(test_bias_grad_blocks)
{
    enum { M = 7, N = 1030 };
    const int m = M, n = N;
    ur_tape *tp = ur_tape_new(0);
    ur_params *ps = ur_params_new();
    ur_tensor *b = ur_params_add(ps, "b", 1, n);
    for (int j = 0; j < n; j++) b->val[j] = 2;
    static float c[M * N], x[M * N];
    double want_add[N] = {0}, want_mul[N] = {0};
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            c[r * n + j] = (float)((r * 7 + j) % 11 - 5);
            x[r * n + j] = (float)((r + 3 * j) % 5 - 2);
            want_add[j] += c[r * n + j];
            want_mul[j] += c[r * n + j] * x[r * n + j];
        }
    for (int op = 0; op < 3; op++) {
        ur_params_zero_grad(ps);
        ur_tensor *xt = ur_input_from(tp, m, n, x), *ct = ur_input_from(tp, m, n, c);
        ur_tensor *y = op == 0 ? ur_add_bias(tp, xt, b)
                       : op == 1 ? ur_mul(tp, b, xt) : ur_layer_norm(tp, xt, NULL, b, 1e-5f);
        ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, y, ct))), 0);
        for (int j = 0; j < n; j++)
            ck_assert_msg(b->grad[j] == (float)(op == 1 ? want_mul[j] : want_add[j]),
                          "op %d column %d: %g", op, j, (double)b->grad[j]);
        ur_tape_reset(tp);
    }
    ur_params_free(ps);
    ur_tape_free(tp);
}
END_TEST


int main(void)
{
    Suite *s = suite_create("ops_values");
    TCase *tc = tcase_create("ops_values");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_broadcast_forward);
    tcase_add_test(tc, test_broadcast_backward);
    tcase_add_test(tc, test_unary_forward);
    tcase_add_test(tc, test_unary_backward_edges);
    tcase_add_test(tc, test_reductions);
    tcase_add_test(tc, test_softmax_forward);
    tcase_add_test(tc, test_softmax_large_logits);
    tcase_add_test(tc, test_constants);
    tcase_add_test(tc, test_gather_rows);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_block_matmul);
    tcase_add_test(tc, test_bias_grad_many_rows);
    tcase_add_test(tc, test_bias_grad_blocks);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
