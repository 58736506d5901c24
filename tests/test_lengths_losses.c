/* Batches of uneven lengths: the ops and the losses.
 *
 * The length mask, ur_select_rows, ur_mask_rows and ur_mask_rows_into (values, gradients, a
 * NaN in a row not chosen stays out, bad masks are errors); the masked losses equal the
 * unmasked ones over the real rows, and pass the gradient check. The unrolls are in
 * tests/test_lengths_unrolls.c, Jordan networks and truncated BPTT in test_lengths_tbptt.c. */
#include "lengths_common.h"

/* ---- The ops ---------------------------------------------------------------------------- */

START_TEST(test_length_mask)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *m = ur_length_mask(tp, 3, 3, (const int[]){2, 0, 3});
    const float want[9] = {1, 0, 1, 1, 0, 1, 0, 0, 1};
    ck_assert_int_eq(m->rows, 9);
    ck_assert_int_eq(m->cols, 1);
    for (int r = 0; r < 9; r++) ck_assert_float_eq(m->val[r], want[r]);
    ck_assert_int_eq(m->requires_grad, 0);
    ur_tape_reset(tp);
    ur_length_mask(tp, 3, 2, (const int[]){2, 4});
    expect_error(tp, (const char *[]){"length_mask", "sequence 1 has length 4", "[0, 3]", NULL});
    ur_tape_reset(tp);
    ur_length_mask(tp, 3, 2, NULL);
    expect_error(tp, (const char *[]){"length_mask", "lengths NULL", NULL});
    ur_tape_free(tp);
}
END_TEST

/* select and mask: the chosen rows only, and a NaN or Inf elsewhere reaches nothing. */
START_TEST(test_select_and_mask_rows)
{
    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a", 3, 2), *b = ur_params_add(ps, "b", 3, 2);
    for (int k = 0; k < 6; k++) {
        a->val[k] = (float)(k + 1);
        b->val[k] = -(float)(k + 1);
    }
    a->val[2] = NAN;      /* row 1 of a: not chosen */
    b->val[1] = INFINITY; /* row 0 of b: not chosen */
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *m = ur_input_from(tp, 3, 1, (const float[]){1, 0, 1});
    ur_tensor *y = ur_select_rows(tp, m, a, b);
    ur_tensor *z = ur_mask_rows(tp, a, m);
    const float wy[6] = {1, 2, -3, -4, 5, 6};
    for (int k = 0; k < 6; k++) {
        ck_assert(isfinite(y->val[k]) && isfinite(z->val[k]));
        int r = k / 2;
        ck_assert_float_eq(y->val[k], r == 1 ? -(float)(k + 1) : (float)(k + 1));
        ck_assert_float_eq(z->val[k], r == 1 ? 0.0f : (float)(k + 1));
    }
    ur_tensor *loss = ur_add(tp, ur_sum(tp, ur_mul(tp, y, ur_input_from(tp, 3, 2, wy))),
                             ur_sum(tp, ur_scale(tp, z, 0.5f)));
    ur_params_zero_grad(ps);
    ck_assert_int_eq(ur_backward(tp, loss), 0);
    for (int k = 0; k < 6; k++) {
        int r = k / 2;
        ck_assert_float_eq(a->grad[k], r == 1 ? 0.0f : wy[k] + 0.5f);
        ck_assert_float_eq(b->grad[k], r == 1 ? wy[k] : 0.0f);
    }
    ck_assert_ptr_null(m->grad); /* the mask is a constant */

    /* bad masks */
    ur_tape_reset(tp);
    ur_select_rows(tp, ur_input_from(tp, 3, 1, (const float[]){1, 0.5f, 0}), a, b);
    expect_error(tp, (const char *[]){"select_rows", "mask row 1 is 0.5", "0 or 1", NULL});
    ur_tape_reset(tp);
    ur_mask_rows(tp, a, ur_input(tp, 3, 2));
    expect_error(tp, (const char *[]){"mask_rows", "3x2", "3x1 column", NULL});
    ur_tape_reset(tp);
    ur_select_rows(tp, ur_input(tp, 3, 1), a, ur_input(tp, 3, 3));
    expect_error(tp, (const char *[]){"select_rows", "3x2", "3x3", NULL});
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* mask_rows_into: the values and gradient of mask_rows, written into rows of a bigger tensor. */
START_TEST(test_mask_rows_into)
{
    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a", 3, 2);
    for (int k = 0; k < 6; k++) a->val[k] = (float)(k + 1);
    a->val[2] = NAN; /* row 1: masked out */
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *m = ur_input_from(tp, 3, 1, (const float[]){1, 0, 1});
    ur_tensor *big = ur_tensor_new(tp, 6, 2);
    ur_tensor *y = ur_mask_rows_into(tp, a, m, ur_rows(tp, big, 3, 3));
    ck_assert(y->val == big->val + 6);
    for (int k = 0; k < 6; k++) ck_assert_float_eq(y->val[k], k / 2 == 1 ? 0.0f : (float)(k + 1));
    const float w[6] = {0.5f, -1, 2, 3, -0.25f, 4};
    ur_params_zero_grad(ps);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, y, ur_input_from(tp, 3, 2, w)))), 0);
    for (int k = 0; k < 6; k++) ck_assert_float_eq(a->grad[k], k / 2 == 1 ? 0.0f : w[k]);
    /* out must be unwritten, of x's shape, apart from x */
    ur_tape_reset(tp);
    m = ur_input_from(tp, 3, 1, (const float[]){1, 0, 1});
    ur_tensor *x = ur_tanh(tp, a);
    ur_mask_rows_into(tp, a, m, x);
    expect_error(tp, (const char *[]){"mask_rows_into", "no op has written", NULL});
    ur_tape_reset(tp);
    m = ur_input_from(tp, 3, 1, (const float[]){1, 0, 1});
    ur_mask_rows_into(tp, a, m, ur_input(tp, 2, 2));
    expect_error(tp, (const char *[]){"mask_rows_into", "3x2", "2x2", NULL});
    ur_tape_reset(tp);
    m = ur_input_from(tp, 3, 1, (const float[]){1, 0, 1});
    big = ur_input(tp, 4, 2);
    ur_mask_rows_into(tp, ur_rows(tp, big, 0, 3), m, ur_rows(tp, big, 1, 3));
    expect_error(tp, (const char *[]){"mask_rows_into", "overlap", NULL});
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

typedef struct {
    ur_params *ps;
    ur_tensor *a, *b;
    float m[5], w[5 * 4];
} rows_fix;

static ur_tensor *rows_loss(ur_tape *tp, void *ctx)
{
    rows_fix *f = ctx;
    ur_tensor *m = ur_input_from(tp, 5, 1, f->m), *w = ur_input_from(tp, 5, 4, f->w);
    ur_tensor *y = ur_select_rows(tp, m, ur_tanh(tp, f->a), f->b);
    ur_tensor *z = ur_mask_rows(tp, ur_mul(tp, f->a, f->b), m);
    return ur_sum(tp, ur_mul(tp, ur_add(tp, y, z), w));
}

START_TEST(test_rows_gradcheck)
{
    rows_fix f = {.m = {1, 0, 0, 1, 1}};
    ur_rng r;
    ur_rng_seed(&r, 3);
    f.ps = ur_params_new();
    f.a = ur_params_add(f.ps, "a", 5, 4);
    f.b = ur_params_add(f.ps, "b", 5, 4);
    ur_test_fill(f.a, &r, -1, 1);
    ur_test_fill(f.b, &r, -1, 1);
    for (int k = 0; k < 20; k++) f.w[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    ur_assert_gradcheck(f.ps, rows_loss, &f, EPS, ATOL, RTOL);
    ur_params_free(f.ps);
}
END_TEST

/* ---- Masked losses ------------------------------------------------------------------------ */

enum { LR = 6, LC = 3 };
static const float LMASK[LR] = {1, 0, 1, 1, 0, 1};

typedef struct {
    ur_params *ps;
    ur_tensor *x;
    float z[LR * LC], zb[LR * LC]; /* regression targets, 0/1-ish targets */
    int y[LR];
    int which; /* 0 nll, 1 mse, 2 xent */
    ur_reduction red;
} loss_fix;

static ur_tensor *masked_loss(ur_tape *tp, void *ctx)
{
    loss_fix *f = ctx;
    ur_tensor *m = ur_input_from(tp, LR, 1, LMASK);
    switch (f->which) {
    case 0: return ur_softmax_nll_masked(tp, f->x, f->y, m, f->red);
    case 1: return ur_mse_masked(tp, f->x, ur_input_from(tp, LR, LC, f->z), m, f->red);
    default: return ur_sigmoid_xent_masked(tp, f->x, ur_input_from(tp, LR, LC, f->zb), m, f->red);
    }
}

/* The same loss computed without the mask on the real rows only (copied into a leaf whose
 * gradient is then spread back by hand). */
static double unmasked_value(loss_fix *f, float *grad)
{
    ur_tape *tp = ur_tape_new(0);
    float xs[LR * LC], zs[LR * LC], zbs[LR * LC];
    int ys[LR], rows[LR], n = 0;
    for (int r = 0; r < LR; r++)
        if (LMASK[r] != 0.0f) {
            memcpy(xs + n * LC, f->x->val + r * LC, LC * sizeof(float));
            memcpy(zs + n * LC, f->z + r * LC, LC * sizeof(float));
            memcpy(zbs + n * LC, f->zb + r * LC, LC * sizeof(float));
            ys[n] = f->y[r];
            rows[n++] = r;
        }
    ur_tensor *x = ur_requires_grad(ur_input_from(tp, n, LC, xs)), *loss;
    switch (f->which) {
    case 0: loss = ur_softmax_nll(tp, x, ys, f->red); break;
    case 1: loss = ur_mse(tp, x, ur_input_from(tp, n, LC, zs), f->red); break;
    default: loss = ur_sigmoid_xent(tp, x, ur_input_from(tp, n, LC, zbs), f->red); break;
    }
    ck_assert_int_eq(ur_backward(tp, loss), 0);
    memset(grad, 0, LR * LC * sizeof *grad);
    for (int i = 0; i < n; i++) memcpy(grad + rows[i] * LC, x->grad + i * LC, LC * sizeof(float));
    double v = loss->exact;
    ur_tape_free(tp);
    return v;
}

START_TEST(test_masked_losses)
{
    ur_rng r;
    ur_rng_seed(&r, 4);
    loss_fix f = {0};
    f.ps = ur_params_new();
    f.x = ur_params_add(f.ps, "x", LR, LC);
    ur_test_fill(f.x, &r, -2, 2);
    for (int k = 0; k < LR * LC; k++) {
        f.z[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
        f.zb[k] = ur_rng_uniform(&r);
    }
    for (int k = 0; k < LR; k++) f.y[k] = (int)ur_rng_below(&r, LC);
    f.y[1] = 99; /* a masked row's target is never read */
    ur_tape *tp = ur_tape_new(0);
    for (f.which = 0; f.which < 3; f.which++)
        for (int red = 0; red < 2; red++) {
            f.red = red ? UR_SUM : UR_MEAN;
            float want[LR * LC];
            int saved = f.y[1];
            f.y[1] = 0;
            double v = unmasked_value(&f, want);
            f.y[1] = saved;
            /* junk in the masked rows changes nothing */
            f.x->val[1 * LC] = NAN;
            f.x->val[4 * LC + 2] = INFINITY;
            ur_tape_reset(tp);
            ur_params_zero_grad(f.ps);
            ur_tensor *loss = masked_loss(tp, &f);
            ck_assert_int_eq(ur_backward(tp, loss), 0);
            ck_assert_msg(fabs(loss->exact - v) <= 1e-6 * fabs(v), "loss %d/%d: %.9g vs %.9g",
                          f.which, red, loss->exact, v);
            for (int k = 0; k < LR * LC; k++)
                ck_assert_msg(fabsf(f.x->grad[k] - want[k]) <= 1e-6f,
                              "loss %d/%d: gradient %d is %g, want %g", f.which, red, k,
                              (double)f.x->grad[k], (double)want[k]);
            f.x->val[1 * LC] = 0.25f;
            f.x->val[4 * LC + 2] = -0.5f;
            ur_assert_gradcheck(f.ps, masked_loss, &f, EPS, ATOL, RTOL);
        }
    /* a NULL mask is the unmasked loss; a wrong mask is an error */
    ur_tape_reset(tp);
    ur_tensor *a = ur_softmax_nll_masked(tp, f.x, (const int[]){0, 1, 2, 0, 1, 2}, NULL, UR_MEAN);
    ur_tensor *b = ur_softmax_nll(tp, f.x, (const int[]){0, 1, 2, 0, 1, 2}, UR_MEAN);
    ck_assert(a->exact == b->exact);
    ur_mse_masked(tp, f.x, f.x, ur_input(tp, LR - 1, 1), UR_MEAN);
    expect_error(tp, (const char *[]){"mse_masked", "5x1", "6x1 column", NULL});
    ur_tape_reset(tp);
    ur_softmax_nll_masked(tp, f.x, (const int[]){0, 1, 2, 3, 1, 2}, ur_input_from(tp, LR, 1, LMASK),
                          UR_MEAN);
    expect_error(tp, (const char *[]){"softmax_nll_masked", "target 3 in row 3", NULL});
    /* every row masked: a mean of nothing is 0 */
    ur_tape_reset(tp);
    ck_assert_float_eq(ur_mse_masked(tp, f.x, f.x, ur_input(tp, LR, 1), UR_MEAN)->val[0], 0.0f);
    ur_tape_free(tp);
    ur_params_free(f.ps);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lengths: ops and losses");
    TCase *ops = tcase_create("ops");
    tcase_add_test(ops, test_length_mask);
    tcase_add_test(ops, test_select_and_mask_rows);
    tcase_add_test(ops, test_mask_rows_into);
    tcase_add_test(ops, test_rows_gradcheck);
    tcase_add_test(ops, test_masked_losses);
    suite_add_tcase(s, ops);
    return ur_test_run(s);
}
