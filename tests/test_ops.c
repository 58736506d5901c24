/* Every op: a forward value against numbers worked out by hand, and a gradient check of
 * L = sum(op(...) * R) (R fixed and random, so every output element matters) against
 * central differences. */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

/* Gradient checks pass when |a - n| <= ATOL + RTOL |n| at step EPS: a 1% error fails at every
 * gradient above 1.1e-4 (all the non-zero ones: they are 0.017 .. 0.9 from the 10th to the
 * 90th percentile); a correct backward stays 4x below it. */
#define ATOL 1e-6
#define RTOL 1e-3
#define EPS UR_GRADCHECK_EPS

/* ---- Gradient-check harness: a closure over a parameter set and an op under test. ------- */

typedef ur_tensor *(*op_under_test)(ur_tape *tp, ur_params *ps);
typedef struct { ur_params *ps; op_under_test op; unsigned seed; } gc_ctx;

static ur_tensor *weighted_sum(ur_tape *tp, void *vctx)
{
    gc_ctx *c = vctx;
    ur_tensor *y = c->op(tp, c->ps);
    if (y->rows == 1 && y->cols == 1) return y; /* losses are checked as they are */
    ur_tensor *r = ur_input(tp, y->rows, y->cols);
    ur_rng rng;
    ur_rng_seed(&rng, c->seed);
    ur_test_fill(r, &rng, -1.0f, 1.0f);
    return ur_sum(tp, ur_mul(tp, y, r));
}

/* Fills every parameter away from 0 (|v| in [0.1, 1]) so relu's kink is not crossed. */
static void check_op(ur_params *ps, op_under_test op, double eps)
{
    ur_rng rng;
    ur_rng_seed(&rng, 7);
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        for (size_t j = 0; j < ur_numel(p); j++) {
            float v = 0.1f + 0.9f * ur_rng_uniform(&rng);
            p->val[j] = ur_rng_uniform(&rng) < 0.5f ? -v : v;
        }
    }
    gc_ctx c = {ps, op, 99};
    ur_assert_gradcheck(ps, weighted_sum, &c, eps, ATOL, RTOL);
}

static ur_tensor *P(ur_params *ps, const char *name) { return ur_params_get(ps, name); }

static ur_params *params2(int ar, int ac, int br, int bc)
{
    ur_params *ps = ur_params_new();
    ur_params_add(ps, "a", ar, ac);
    if (br) ur_params_add(ps, "b", br, bc);
    return ps;
}

/* ---- Matrix products ------------------------------------------------------------------- */

START_TEST(test_matmul_forward)
{
    ur_params *ps = params2(2, 3, 3, 2);
    ur_test_set(P(ps, "a"), (float[]){1, 2, 3, 4, 5, 6});
    ur_test_set(P(ps, "b"), (float[]){7, 8, 9, 10, 11, 12});
    ur_tape *tp = ur_tape_new(0);
    ur_test_expect(ur_matmul(tp, P(ps, "a"), P(ps, "b"), 0, 0), 2, 2, (float[]){58, 64, 139, 154}, 0);
    /* a^T b^T = (b a)^T: b a = [[39 54 69] [49 68 87] [59 82 105]] */
    ur_test_expect(ur_matmul(tp, P(ps, "a"), P(ps, "b"), 1, 1), 3, 3,
           (float[]){39, 49, 59, 54, 68, 82, 69, 87, 105}, 0);
    /* a a^T and a^T a */
    ur_test_expect(ur_matmul(tp, P(ps, "a"), P(ps, "a"), 0, 1), 2, 2, (float[]){14, 32, 32, 77}, 0);
    ur_test_expect(ur_matmul(tp, P(ps, "a"), P(ps, "a"), 1, 0), 3, 3,
           (float[]){17, 22, 27, 22, 29, 36, 27, 36, 45}, 0);
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_matmul(tp, P(ps, "a"), P(ps, "a"), 0, 0);
    ck_assert_str_eq(ur_tape_error(tp), "matmul: inner dimensions differ: 2x3 and 2x3");
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

static int g_ta, g_tb;
static ur_tensor *op_matmul(ur_tape *tp, ur_params *ps)
{
    return ur_matmul(tp, P(ps, "a"), P(ps, "b"), g_ta, g_tb);
}
START_TEST(test_matmul_grad)
{
    /* _i runs the four transpose combinations; a is 3x4 or its transpose, b 4x5 or its. */
    g_ta = _i & 1;
    g_tb = _i >> 1;
    ur_params *ps = params2(g_ta ? 4 : 3, g_ta ? 3 : 4, g_tb ? 5 : 4, g_tb ? 4 : 5);
    check_op(ps, op_matmul, EPS);
    ur_params_free(ps);
}
END_TEST

/* Products with one row, one column or k = 1 take the sgemv / sger paths: every transpose
 * combination of each, forward against a plain triple loop and backward by gradient check. */
START_TEST(test_matmul_vector_shapes)
{
    static const int shapes[3][3] = {{1, 4, 5}, {3, 4, 1}, {3, 1, 5}}; /* m, k, n */
    const int *mkn = shapes[_i / 4];
    g_ta = _i & 1;
    g_tb = (_i >> 1) & 1;
    int m = mkn[0], k = mkn[1], n = mkn[2];
    ur_params *ps = params2(g_ta ? k : m, g_ta ? m : k, g_tb ? n : k, g_tb ? k : n);
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)_i);
    ur_test_fill(P(ps, "a"), &rng, -1, 1);
    ur_test_fill(P(ps, "b"), &rng, -1, 1);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *c = op_matmul(tp, ps);
    ck_assert_int_eq(c->rows, m);
    ck_assert_int_eq(c->cols, n);
    const ur_tensor *a = P(ps, "a"), *b = P(ps, "b");
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double want = 0;
            for (int q = 0; q < k; q++)
                want += (double)(g_ta ? a->val[q * a->cols + i] : a->val[i * a->cols + q]) *
                        (g_tb ? b->val[j * b->cols + q] : b->val[q * b->cols + j]);
            ck_assert_double_eq_tol(c->val[i * n + j], want, 1e-5);
        }
    ur_tape_free(tp);
    check_op(ps, op_matmul, EPS);
    ur_params_free(ps);
}
END_TEST

static ur_tensor *op_addmm(ur_tape *tp, ur_params *ps)
{
    return ur_addmm(tp, P(ps, "c"), P(ps, "a"), P(ps, "b"));
}
START_TEST(test_addmm)
{
    ur_params *ps = params2(2, 3, 3, 2);
    ur_params_add(ps, "c", 2, 2);
    ur_test_set(P(ps, "a"), (float[]){1, 2, 3, 4, 5, 6});
    ur_test_set(P(ps, "b"), (float[]){7, 8, 9, 10, 11, 12});
    ur_test_set(P(ps, "c"), (float[]){1, -1, 0.5f, 2});
    ur_tape *tp = ur_tape_new(0);
    ur_test_expect(op_addmm(tp, ps), 2, 2, (float[]){59, 63, 139.5f, 156}, 0);
    ur_addmm(tp, P(ps, "a"), P(ps, "a"), P(ps, "b"));
    ck_assert_str_eq(ur_tape_error(tp), "addmm: c is 2x3 but a b is 2x2");
    ur_tape_free(tp);
    check_op(ps, op_addmm, EPS);
    ur_params_free(ps);
}
END_TEST

static ur_tensor *op_linear(ur_tape *tp, ur_params *ps)
{
    return ur_linear(tp, P(ps, "a"), P(ps, "b"), P(ps, "bias"));
}
START_TEST(test_linear)
{
    ur_params *ps = params2(2, 3, 3, 2);
    ur_params_add(ps, "bias", 1, 2);
    ur_test_set(P(ps, "a"), (float[]){1, 2, 3, 4, 5, 6});
    ur_test_set(P(ps, "b"), (float[]){7, 8, 9, 10, 11, 12});
    ur_test_set(P(ps, "bias"), (float[]){0.5f, -1});
    ur_tape *tp = ur_tape_new(0);
    ur_test_expect(op_linear(tp, ps), 2, 2, (float[]){58.5f, 63, 139.5f, 153}, 0);
    ur_test_expect(ur_linear(tp, P(ps, "a"), P(ps, "b"), NULL), 2, 2, (float[]){58, 64, 139, 154}, 0);
    ur_linear(tp, P(ps, "a"), P(ps, "b"), P(ps, "a"));
    ck_assert_str_eq(ur_tape_error(tp), "linear: bias must be 1 x W's cols: 2x3 and 3x2");
    ur_tape_reset(tp);
    ur_linear(tp, P(ps, "b"), P(ps, "b"), NULL);
    ck_assert_str_eq(ur_tape_error(tp), "linear: x and W do not chain: 3x2 and 3x2");
    ur_tape_free(tp);
    check_op(ps, op_linear, EPS);
    ur_params_free(ps);
}
END_TEST

/* ---- Element-wise ---------------------------------------------------------------------- */

static ur_tensor *op_add(ur_tape *tp, ur_params *ps) { return ur_add(tp, P(ps, "a"), P(ps, "b")); }
static ur_tensor *op_sub(ur_tape *tp, ur_params *ps) { return ur_sub(tp, P(ps, "a"), P(ps, "b")); }
static ur_tensor *op_mul(ur_tape *tp, ur_params *ps) { return ur_mul(tp, P(ps, "a"), P(ps, "b")); }
static ur_tensor *op_scale(ur_tape *tp, ur_params *ps) { return ur_scale(tp, P(ps, "a"), -2.5f); }
static ur_tensor *op_one_minus(ur_tape *tp, ur_params *ps) { return ur_one_minus(tp, P(ps, "a")); }
static ur_tensor *op_bias(ur_tape *tp, ur_params *ps) { return ur_add_bias(tp, P(ps, "a"), P(ps, "b")); }
static ur_tensor *op_sum(ur_tape *tp, ur_params *ps) { return ur_sum(tp, P(ps, "a")); }
static ur_tensor *op_tanh(ur_tape *tp, ur_params *ps) { return ur_tanh(tp, P(ps, "a")); }
static ur_tensor *op_sigmoid(ur_tape *tp, ur_params *ps) { return ur_sigmoid(tp, P(ps, "a")); }
static ur_tensor *op_relu(ur_tape *tp, ur_params *ps) { return ur_relu(tp, P(ps, "a")); }

START_TEST(test_elementwise)
{
    ur_params *ps = params2(2, 2, 2, 2);
    ur_test_set(P(ps, "a"), (float[]){1, -2, 3, 0.5f});
    ur_test_set(P(ps, "b"), (float[]){4, 5, -6, 2});
    ur_tape *tp = ur_tape_new(0);
    ur_test_expect(op_add(tp, ps), 2, 2, (float[]){5, 3, -3, 2.5f}, 0);
    ur_test_expect(op_sub(tp, ps), 2, 2, (float[]){-3, -7, 9, -1.5f}, 0);
    ur_test_expect(op_mul(tp, ps), 2, 2, (float[]){4, -10, -18, 1}, 0);
    ur_test_expect(op_scale(tp, ps), 2, 2, (float[]){-2.5f, 5, -7.5f, -1.25f}, 0);
    ur_test_expect(op_one_minus(tp, ps), 2, 2, (float[]){0, 3, -2, 0.5f}, 0);
    ur_test_expect(op_sum(tp, ps), 1, 1, (float[]){2.5f}, 0);
    ur_test_expect(ur_add_bias(tp, P(ps, "a"), ur_rows(tp, P(ps, "b"), 1, 1)), 2, 2,
           (float[]){-5, 0, -3, 2.5f}, 0);
    ck_assert_ptr_null(ur_tape_error(tp));
    /* 1 x 2, 2 x 1 and 1 x 1 broadcast against 2 x 2 (tests/test_ops_values.c); 3 x 2 does not. */
    const char *names[] = {"add", "sub", "mul", "div"};
    ur_tensor *(*fns[])(ur_tape *, ur_tensor *, ur_tensor *) = {ur_add, ur_sub, ur_mul, ur_div};
    for (int k = 0; k < 4; k++) {
        ur_tape_reset(tp);
        ur_tensor *tall = ur_input(tp, 3, 2);
        ck_assert_ptr_eq(fns[k](tp, P(ps, "a"), tall), ur_tape_poison(tp));
        char want[64];
        snprintf(want, sizeof want, "%s: shapes differ: 2x2 and 3x2", names[k]);
        ck_assert_str_eq(ur_tape_error(tp), want);
    }
    ur_tape_reset(tp);
    ur_add_bias(tp, P(ps, "a"), P(ps, "b"));
    ck_assert_str_eq(ur_tape_error(tp), "add_bias: bias must be 1 x cols of x: 2x2 and 2x2");
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_elementwise_grads)
{
    op_under_test binary[] = {op_add, op_sub, op_mul};
    for (int k = 0; k < 3; k++) {
        ur_params *ps = params2(3, 4, 3, 4);
        check_op(ps, binary[k], EPS);
        ur_params_free(ps);
    }
    op_under_test unary[] = {op_scale, op_one_minus, op_sum, op_tanh, op_sigmoid, op_relu};
    for (int k = 0; k < 6; k++) {
        ur_params *ps = params2(3, 4, 0, 0);
        check_op(ps, unary[k], EPS);
        ur_params_free(ps);
    }
    ur_params *ps = params2(3, 4, 1, 4);
    check_op(ps, op_bias, EPS);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_activations)
{
    ur_params *ps = params2(1, 5, 0, 0);
    ur_test_set(P(ps, "a"), (float[]){0, 1, -2, 100, -100});
    ur_tape *tp = ur_tape_new(0);
    ur_test_expect(op_tanh(tp, ps), 1, 5, (float[]){0, 0.76159416f, -0.96402758f, 1, -1}, 1e-6);
    ur_test_expect(op_sigmoid(tp, ps), 1, 5, (float[]){0.5f, 0.73105858f, 0.11920292f, 1, 0}, 1e-6);
    ur_test_expect(op_relu(tp, ps), 1, 5, (float[]){0, 1, 0, 100, 0}, 0);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* tanh and sigmoid use our own vectorised exp: within 4 ulp of double precision everywhere. */
START_TEST(test_activation_accuracy)
{
    const int n = 100000;
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input(tp, 1, n);
    for (int k = 0; k < n; k++) x->val[k] = -100.0f + 200.0f * (float)k / (float)n;
    x->val[0] = 0;
    x->val[1] = 1e-30f;
    x->val[2] = -3e-4f;
    ur_tensor *t = ur_tanh(tp, x), *s = ur_sigmoid(tp, x);
    double worst_t = 0, worst_s = 0;
    for (int k = 0; k < n; k++) {
        double xt = tanh((double)x->val[k]), xs = 1.0 / (1.0 + exp(-(double)x->val[k]));
        double ut = nextafterf(fabsf((float)xt), INFINITY) - fabsf((float)xt);
        double us = nextafterf(fabsf((float)xs), INFINITY) - fabsf((float)xs);
        worst_t = fmax(worst_t, fabs(t->val[k] - xt) / ut);
        /* Below e^-87 the sigmoid stops at e^-87 (about 1.6e-38) rather than underflowing. */
        if (x->val[k] > -87.0f) worst_s = fmax(worst_s, fabs(s->val[k] - xs) / us);
        else ck_assert_float_le(s->val[k], 2e-38f);
    }
    ck_assert_msg(worst_t <= 4, "tanh error %.2f ulp", worst_t);
    ck_assert_msg(worst_s <= 4, "sigmoid error %.2f ulp", worst_s);
    ck_assert_float_eq(t->val[0], 0);
    ck_assert_float_eq(t->val[1], 1e-30f);
    ur_tape_free(tp);
}
END_TEST

/* ---- Shape ---------------------------------------------------------------------------- */

static ur_tensor *op_concat_cols(ur_tape *tp, ur_params *ps)
{
    ur_tensor *x[3] = {P(ps, "a"), P(ps, "b"), P(ps, "a")};
    return ur_concat_cols(tp, 3, x);
}
static ur_tensor *op_concat_rows(ur_tape *tp, ur_params *ps)
{
    ur_tensor *x[2] = {P(ps, "a"), P(ps, "b")};
    return ur_concat_rows(tp, 2, x);
}
static ur_tensor *op_cols(ur_tape *tp, ur_params *ps) { return ur_cols(tp, P(ps, "a"), 1, 2); }
static ur_tensor *op_split_mix(ur_tape *tp, ur_params *ps)
{
    ur_tensor *part[2];
    ur_split_cols(tp, P(ps, "a"), 2, part);
    return ur_mul(tp, part[0], ur_tanh(tp, part[1]));
}
static ur_tensor *op_rows_mix(ur_tape *tp, ur_params *ps)
{
    ur_tensor *a = P(ps, "a");
    return ur_mul(tp, ur_rows(tp, a, 0, 1), ur_rows(tp, a, 1, 1));
}

START_TEST(test_shape_ops)
{
    ur_params *ps = params2(2, 2, 2, 1);
    ur_test_set(P(ps, "a"), (float[]){1, 2, 3, 4});
    ur_test_set(P(ps, "b"), (float[]){5, 6});
    ur_tape *tp = ur_tape_new(0);
    ur_test_expect(op_concat_cols(tp, ps), 2, 5, (float[]){1, 2, 5, 1, 2, 3, 4, 6, 3, 4}, 0);
    ur_test_expect(ur_cols(tp, P(ps, "a"), 1, 1), 2, 1, (float[]){2, 4}, 0);
    ur_tensor *part[2];
    ck_assert_int_eq(ur_split_cols(tp, P(ps, "a"), 2, part), 0);
    ur_test_expect(part[0], 2, 1, (float[]){1, 3}, 0);
    ur_test_expect(part[1], 2, 1, (float[]){2, 4}, 0);
    ur_tensor *rows[2] = {P(ps, "a"), ur_rows(tp, P(ps, "a"), 1, 1)};
    ur_test_expect(ur_concat_rows(tp, 2, rows), 3, 2, (float[]){1, 2, 3, 4, 3, 4}, 0);
    ck_assert_ptr_null(ur_tape_error(tp));
    ck_assert_ptr_eq(op_concat_rows(tp, ps), ur_tape_poison(tp));
    ck_assert_str_eq(ur_tape_error(tp), "concat_rows: column counts differ: 2x2 and 2x1");
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_split_cols(tp, P(ps, "a"), 3, part), -1);
    ck_assert_str_eq(ur_tape_error(tp), "split_cols: cannot split 2x2 into 3 equal column blocks");
    ur_tape_reset(tp);
    ur_tensor *mixed[2] = {P(ps, "a"), ur_rows(tp, P(ps, "a"), 1, 1)};
    ck_assert_ptr_eq(ur_concat_cols(tp, 2, mixed), ur_tape_poison(tp));
    ck_assert_str_eq(ur_tape_error(tp), "concat_cols: row counts differ: 2x2 and 1x2");
    ur_tape_reset(tp);
    ur_cols(tp, P(ps, "a"), 1, 2);
    ck_assert_str_eq(ur_tape_error(tp), "cols: columns [1, 3) are outside a 2x2 tensor");
    ur_tape_reset(tp);
    ur_concat_cols(tp, 0, NULL);
    ck_assert_ptr_nonnull(ur_tape_error(tp));
    ur_tape_free(tp);
    ur_params_free(ps);

    ps = params2(3, 4, 3, 2);
    check_op(ps, op_concat_cols, EPS);
    ur_params_free(ps);
    ps = params2(3, 4, 2, 4);
    check_op(ps, op_concat_rows, EPS);
    check_op(ps, op_cols, EPS);
    check_op(ps, op_split_mix, EPS);
    check_op(ps, op_rows_mix, EPS);
    ur_params_free(ps);
}
END_TEST

/* ---- Embedding ------------------------------------------------------------------------ */

static const int emb_ids[5] = {2, 0, 2, 3, 2};
static ur_tensor *op_embedding(ur_tape *tp, ur_params *ps)
{
    return ur_embedding(tp, P(ps, "a"), emb_ids, 5);
}
START_TEST(test_embedding)
{
    ur_params *ps = params2(4, 3, 0, 0);
    for (int k = 0; k < 12; k++) P(ps, "a")->val[k] = (float)k;
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *y = op_embedding(tp, ps);
    ur_test_expect(y, 5, 3, (float[]){6, 7, 8, 0, 1, 2, 6, 7, 8, 9, 10, 11, 6, 7, 8}, 0);
    /* A repeated id gets the sum of its rows' gradients; an unused id gets none. */
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, y)), 0);
    float want[12] = {1, 1, 1, 0, 0, 0, 3, 3, 3, 1, 1, 1};
    for (int k = 0; k < 12; k++) ck_assert_float_eq(P(ps, "a")->grad[k], want[k]);
    ur_tape_reset(tp);
    int bad[2] = {1, 4};
    ck_assert_ptr_eq(ur_embedding(tp, P(ps, "a"), bad, 2), ur_tape_poison(tp));
    ck_assert_str_eq(ur_tape_error(tp), "embedding: id 4 at position 1 is outside the 4x3 table");
    ur_tape_free(tp);
    check_op(ps, op_embedding, EPS);
    ur_params_free(ps);
}
END_TEST

/* ---- Losses --------------------------------------------------------------------------- */

static const int nll_targets[3] = {2, -1, 0};
static ur_reduction g_red;
static ur_tensor *op_nll(ur_tape *tp, ur_params *ps)
{
    return ur_softmax_nll(tp, P(ps, "a"), nll_targets, g_red);
}
static ur_tensor *op_mse(ur_tape *tp, ur_params *ps)
{
    return ur_mse(tp, P(ps, "a"), P(ps, "b"), g_red);
}
static ur_tensor *op_xent(ur_tape *tp, ur_params *ps)
{
    ur_tensor *z = ur_sigmoid(tp, P(ps, "b")); /* targets in (0, 1), with a gradient */
    return ur_sigmoid_xent(tp, P(ps, "a"), z, g_red);
}

START_TEST(test_softmax_nll)
{
    ur_params *ps = params2(3, 3, 0, 0);
    ur_test_set(P(ps, "a"), (float[]){1, 2, 3, 0, 0, 0, 1e4f, 0, -1e4f});
    ur_tape *tp = ur_tape_new(0);
    /* Row 0: log(e + e^2 + e^3) - 3 = 0.40760596; row 1 skipped; row 2: 0 (stable at 1e4). */
    g_red = UR_SUM;
    ur_test_expect(op_nll(tp, ps), 1, 1, (float[]){0.40760596f}, 1e-6);
    g_red = UR_MEAN;
    ur_tensor *l = op_nll(tp, ps);
    ur_test_expect(l, 1, 1, (float[]){0.40760596f / 2}, 1e-6);
    ck_assert_int_eq(ur_backward(tp, l), 0);
    const float *g = P(ps, "a")->grad;
    ck_assert_float_eq_tol(g[0], 0.09003057f / 2, 1e-6);
    ck_assert_float_eq_tol(g[2], (0.66524096f - 1) / 2, 1e-6);
    ck_assert_float_eq(g[3], 0);
    ck_assert(isfinite(g[6]) && fabsf(g[6]) < 1e-6f);
    /* Targets out of range. */
    ur_tape_reset(tp);
    int bad[3] = {0, 3, 0};
    ur_softmax_nll(tp, P(ps, "a"), bad, UR_MEAN);
    ck_assert_str_eq(ur_tape_error(tp),
                     "softmax_nll: target 3 in row 1 is outside [0, 3) for 3x3 logits");
    ur_tape_free(tp);
    float probs[9];
    ur_softmax_rows(P(ps, "a"), probs);
    ck_assert_float_eq_tol(probs[0] + probs[1] + probs[2], 1, 1e-6);
    ck_assert_float_eq_tol(probs[6], 1, 1e-6);
    for (int red = 0; red < 2; red++) {
        g_red = (ur_reduction)red;
        check_op(ps, op_nll, EPS);
    }
    ur_params_free(ps);
}
END_TEST

START_TEST(test_mse_xent)
{
    ur_params *ps = params2(2, 2, 2, 2);
    ur_test_set(P(ps, "a"), (float[]){1, 2, 3, 4});
    ur_test_set(P(ps, "b"), (float[]){1, 0, 5, 4});
    ur_tape *tp = ur_tape_new(0);
    g_red = UR_SUM;
    ur_test_expect(op_mse(tp, ps), 1, 1, (float[]){8}, 0);
    g_red = UR_MEAN;
    ur_test_expect(op_mse(tp, ps), 1, 1, (float[]){2}, 0);
    /* Sigmoid cross-entropy at logit 0 is log 2 whatever the target; at logit 100 with
     * target 1 it is about e^-100; at -100 with target 1 it is 100. */
    ur_tensor *x = ur_input_from(tp, 1, 3, (float[]){0, 100, -100});
    ur_tensor *z = ur_input_from(tp, 1, 3, (float[]){0.3f, 1, 1});
    ur_test_expect(ur_sigmoid_xent(tp, x, z, UR_SUM), 1, 1, (float[]){0.69314718f + 100}, 1e-4);
    ur_mse(tp, P(ps, "a"), x, UR_MEAN);
    ck_assert_str_eq(ur_tape_error(tp), "mse: input and target shapes differ: 2x2 and 1x3");
    ur_tape_free(tp);
    for (int red = 0; red < 2; red++) {
        g_red = (ur_reduction)red;
        check_op(ps, op_mse, EPS);
        check_op(ps, op_xent, EPS);
    }
    ur_params_free(ps);
}
END_TEST

/* ---- Recurrent product ---------------------------------------------------------------- */

/* Three steps h_t = tanh(c_t + h_{t-1} W) through ur_recurrent_addmm; W's gradient is one GEMM
 * over the steps. The same with ur_addmm must give the same values and gradients. */
static int g_use_recurrent; /* 0: ur_addmm, 1: ur_recurrent_addmm, 2: the same in place */
static ur_tensor *op_recurrent(ur_tape *tp, ur_params *ps)
{
    ur_tensor *w = P(ps, "a"), *c = P(ps, "b"), *h = P(ps, "h0");
    if (g_use_recurrent == 2) c = ur_scale(tp, c, 1); /* a temporary only the steps read */
    ur_tensor *into = g_use_recurrent == 2 ? c : NULL;
    ur_recurrent *r = g_use_recurrent ? ur_recurrent_begin(tp, w, 3, 2, into) : NULL;
    ur_tensor *hs[3];
    for (int t = 2; t >= 0; t--) { /* steps may be recorded in any order */
        ur_tensor *ct = ur_rows(tp, c, 2 * t, 2);
        h = ur_tanh(tp, r ? ur_recurrent_addmm(tp, r, t, ct, h) : ur_addmm(tp, ct, h, w));
        hs[t] = h;
    }
    return ur_concat_rows(tp, 3, hs);
}
START_TEST(test_recurrent_addmm)
{
    ur_params *ps = params2(4, 4, 6, 4);
    ur_params_add(ps, "h0", 2, 4);
    ur_rng rng;
    ur_rng_seed(&rng, 11);
    for (int k = 0; k < 3; k++) ur_test_fill(ur_params_at(ps, k), &rng, -0.8f, 0.8f);
    float grads[3][3][24];
    float vals[3][24];
    for (g_use_recurrent = 0; g_use_recurrent < 3; g_use_recurrent++) {
        ur_tape *tp = ur_tape_new(0);
        ur_params_zero_grad(ps);
        ur_tensor *y = op_recurrent(tp, ps);
        memcpy(vals[g_use_recurrent], y->val, 24 * sizeof(float));
        ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, y, y))), 0);
        for (int k = 0; k < 3; k++)
            memcpy(grads[g_use_recurrent][k], ur_params_at(ps, k)->grad,
                   ur_numel(ur_params_at(ps, k)) * sizeof(float));
        ur_tape_free(tp);
    }
    for (int v = 1; v < 3; v++) {
        for (int j = 0; j < 24; j++) ck_assert_float_eq_tol(vals[v][j], vals[0][j], 1e-6);
        for (int k = 0; k < 3; k++)
            for (size_t j = 0; j < ur_numel(ur_params_at(ps, k)); j++)
                ck_assert_float_eq_tol(grads[v][k][j], grads[0][k][j], 1e-5);
    }
    for (g_use_recurrent = 1; g_use_recurrent < 3; g_use_recurrent++)
        check_op(ps, op_recurrent, EPS);
    ur_tape *tp = ur_tape_new(0);
    ur_recurrent *r = ur_recurrent_begin(tp, P(ps, "a"), 3, 2, NULL);
    ur_recurrent_addmm(tp, r, 3, ur_rows(tp, P(ps, "b"), 0, 2), P(ps, "h0"));
    ck_assert_str_eq(ur_tape_error(tp), "recurrent_addmm: step 3 is outside [0, 3)");
    ur_tape_reset(tp);
    r = ur_recurrent_begin(tp, P(ps, "a"), 3, 2, NULL);
    ur_recurrent_addmm(tp, r, 0, ur_rows(tp, P(ps, "b"), 0, 2), P(ps, "b"));
    ck_assert_str_eq(ur_tape_error(tp), "recurrent_addmm: h and W do not chain: 6x4 and 4x4");
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* ---- Fused LSTM gates ----------------------------------------------------------------- */

/* The same step written with the generic ops, as the reference. */
static void gates_by_hand(ur_tape *tp, ur_tensor *z, ur_tensor *cp, ur_tensor **h, ur_tensor **c)
{
    ur_tensor *g[4];
    ur_split_cols(tp, z, 4, g);
    ur_tensor *i = ur_sigmoid(tp, g[0]), *f = ur_sigmoid(tp, g[1]);
    ur_tensor *gg = ur_tanh(tp, g[2]), *o = ur_sigmoid(tp, g[3]);
    *c = ur_add(tp, ur_mul(tp, f, cp), ur_mul(tp, i, gg));
    *h = ur_mul(tp, o, ur_tanh(tp, *c));
}
static int g_gates_out; /* 0: loss on h and c, 1: on h only, 2: on c only */
static int g_gates_inplace; /* 1: ur_lstm_gates_inplace on a temporary copy of a */
static ur_tensor *op_gates(ur_tape *tp, ur_params *ps)
{
    ur_tensor *h, *c;
    if (g_gates_inplace) ur_lstm_gates_inplace(tp, ur_scale(tp, P(ps, "a"), 1), P(ps, "b"), &h, &c);
    else ur_lstm_gates(tp, P(ps, "a"), P(ps, "b"), &h, &c);
    if (g_gates_out == 1) return h;
    if (g_gates_out == 2) return c;
    ur_tensor *hc[2] = {h, c};
    return ur_concat_cols(tp, 2, hc);
}
START_TEST(test_lstm_gates)
{
    ur_params *ps = params2(3, 8, 3, 2);
    ur_rng rng;
    ur_rng_seed(&rng, 3);
    ur_test_fill(P(ps, "a"), &rng, -3, 3);
    ur_test_fill(P(ps, "b"), &rng, -2, 2);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *h, *c, *h2, *c2;
    ck_assert_int_eq(ur_lstm_gates(tp, P(ps, "a"), P(ps, "b"), &h, &c), 0);
    gates_by_hand(tp, P(ps, "a"), P(ps, "b"), &h2, &c2);
    for (int k = 0; k < 6; k++) {
        ck_assert_float_eq_tol(h->val[k], h2->val[k], 1e-6);
        ck_assert_float_eq_tol(c->val[k], c2->val[k], 1e-6);
    }
    /* Hand-computed: z = [0 0 0 0], c_prev = 1: i = f = o = 0.5, g = 0, c = 0.5,
     * h = 0.5 tanh(0.5) = 0.23105858. */
    ur_tensor *z0 = ur_input(tp, 1, 4), *c1 = ur_input_from(tp, 1, 1, (float[]){1});
    ur_lstm_gates(tp, z0, c1, &h, &c);
    ck_assert_float_eq_tol(c->val[0], 0.5f, 1e-7);
    ck_assert_float_eq_tol(h->val[0], 0.23105858f, 1e-7);
    ck_assert_int_eq(ur_lstm_gates(tp, P(ps, "a"), P(ps, "a"), &h, &c), -1);
    ck_assert_ptr_eq(h, ur_tape_poison(tp));
    ck_assert_str_eq(ur_tape_error(tp), "lstm_gates: z must be B x 4H and c_prev B x H: 3x8 and 3x8");
    ur_tape_free(tp);
    for (g_gates_inplace = 0; g_gates_inplace < 2; g_gates_inplace++)
        for (g_gates_out = 0; g_gates_out < 3; g_gates_out++) check_op(ps, op_gates, EPS);
    g_gates_inplace = 0;
    ur_params_free(ps);
}
END_TEST

/* ---- Dropout -------------------------------------------------------------------------- */

static ur_tensor *op_dropout(ur_tape *tp, ur_params *ps)
{
    ur_rng rng;
    ur_rng_seed(&rng, 5); /* same mask on every evaluation */
    return ur_dropout(tp, P(ps, "a"), 0.4f, &rng);
}
START_TEST(test_dropout)
{
    ur_params *ps = params2(100, 100, 0, 0);
    for (int k = 0; k < 10000; k++) P(ps, "a")->val[k] = 1;
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *y = op_dropout(tp, ps);
    int zeros = 0;
    for (int k = 0; k < 10000; k++) {
        ck_assert(y->val[k] == 0 || fabsf(y->val[k] - 1 / 0.6f) < 1e-6f);
        zeros += y->val[k] == 0;
    }
    ck_assert_int_lt(abs(zeros - 4000), 200);
    /* Same seed, same mask. */
    ur_tensor *y2 = op_dropout(tp, ps);
    ck_assert_mem_eq(y->val, y2->val, 10000 * sizeof(float));
    ur_rng rng;
    ck_assert_ptr_eq(ur_dropout(tp, P(ps, "a"), 0, &rng), P(ps, "a"));
    ur_dropout(tp, P(ps, "a"), 1, &rng);
    ck_assert_str_eq(ur_tape_error(tp), "dropout: p = 1 is outside [0, 1)");
    ur_tape_free(tp);
    ur_params_free(ps);
    ps = params2(3, 5, 0, 0);
    check_op(ps, op_dropout, EPS);
    ur_params_free(ps);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_matmul_forward);
    tcase_add_loop_test(tc, test_matmul_grad, 0, 4);
    tcase_add_loop_test(tc, test_matmul_vector_shapes, 0, 12);
    tcase_add_test(tc, test_addmm);
    tcase_add_test(tc, test_linear);
    tcase_add_test(tc, test_elementwise);
    tcase_add_test(tc, test_elementwise_grads);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_activation_accuracy);
    tcase_add_test(tc, test_shape_ops);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_softmax_nll);
    tcase_add_test(tc, test_mse_xent);
    tcase_add_test(tc, test_dropout);
    tcase_add_test(tc, test_lstm_gates);
    tcase_add_test(tc, test_recurrent_addmm);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
