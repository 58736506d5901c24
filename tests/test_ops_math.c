/* The ops of issue 10: element-wise functions, broadcasting arithmetic, reductions, softmax,
 * layer norm, constants and the layout ops for attention.
 *
 * One table drives every op (cases[] below): a gradient check of L = sum(op(...) * R), R fixed
 * and random so that every output element matters, and a NaN-propagation check. Forward
 * values are checked against numbers worked out by hand, family by family, further down.
 * Inputs are O(1) and kept away from kinks and poles, so that the gradients are O(1) too and
 * the check's tolerance, absolute for gradients below 1, still means something.
 */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

static void set(ur_tensor *t, const float *v) { memcpy(t->val, v, ur_numel(t) * sizeof(float)); }

static void expect(const ur_tensor *t, int rows, int cols, const float *want, double tol)
{
    ck_assert_int_eq(t->rows, rows);
    ck_assert_int_eq(t->cols, cols);
    for (int k = 0; k < rows * cols; k++)
        ck_assert_msg(fabs(t->val[k] - want[k]) <= tol ||
                          (isinf(want[k]) && t->val[k] == want[k]) ||
                          (isnan(want[k]) && isnan(t->val[k])),
                      "element %d: got %.9g, want %.9g", k, (double)t->val[k], (double)want[k]);
}

/* A parameter's gradient, exactly. */
static void expect_grad(const ur_tensor *p, const float *want)
{
    ur_tensor g = {.rows = p->rows, .cols = p->cols, .val = p->grad};
    expect(&g, p->rows, p->cols, want, 0);
}

static void expect_error(ur_tape *tp, ur_tensor *got, const char *want)
{
    ck_assert_ptr_eq(got, ur_tape_poison(tp));
    ck_assert_ptr_nonnull(ur_tape_error(tp));
    ck_assert_str_eq(ur_tape_error(tp), want);
    ur_tape_reset(tp);
}

/* ---- The op table ----------------------------------------------------------------------- */

typedef struct op_case op_case;
/* Records the op under test on tp from the inputs in ps ("a", and "b", "c" when it has them). */
typedef ur_tensor *(*op_fn)(ur_tape *tp, ur_params *ps, const op_case *c);

enum { MAX_IN = 3 };
struct op_case {
    const char *name;
    op_fn fn;
    ur_tensor *(*binary)(ur_tape *, ur_tensor *, ur_tensor *); /* for the broadcasting ops */
    int shape[MAX_IN][2];  /* rows x cols of a, b, c; 0 x 0: no such input */
    float lo, hi;          /* inputs are uniform in [lo, hi] ... */
    int flip;              /* ... and, when flip, of random sign (|x| in [lo, hi]) */
    float arg[2];          /* op arguments (clamp bounds, the scalar, epsilon) */
    int same_index;        /* 1: an element-wise op whose derivative may be 0 (relu, clamp), so
                              the NaN check takes output k as input k's, not the Jacobian's */
};

static ur_tensor *A(ur_params *ps) { return ur_params_get(ps, "a"); }
static ur_tensor *B(ur_params *ps) { return ur_params_get(ps, "b"); }
static ur_tensor *C(ur_params *ps) { return ur_params_get(ps, "c"); }

static ur_params *case_params(const op_case *c, uint64_t seed)
{
    static const char *const names[MAX_IN] = {"a", "b", "c"};
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, seed);
    for (int k = 0; k < MAX_IN && c->shape[k][0]; k++) {
        ur_tensor *p = ur_params_add(ps, names[k], c->shape[k][0], c->shape[k][1]);
        ck_assert_ptr_nonnull(p);
        ur_test_fill(p, &rng, c->lo, c->hi);
        if (c->flip)
            for (size_t j = 0; j < ur_numel(p); j++)
                if (ur_rng_uniform(&rng) < 0.5f) p->val[j] = -p->val[j];
    }
    return ps;
}

/* ---- Gradient check: the one place where this file asserts a gradient ---------------------- */

/* The project's criterion |a - n| <= atol + rtol |n| at the default step (3e-2); inputs are
 * O(1), away from kinks and poles. */
#define GC_EPS 0
#define GC_ATOL 1e-5
#define GC_RTOL 1e-3

typedef struct { ur_params *ps; const op_case *c; } gc_ctx;

static ur_tensor *weighted_sum(ur_tape *tp, void *vctx)
{
    gc_ctx *g = vctx;
    ur_tensor *y = g->c->fn(tp, g->ps, g->c);
    if (ur_tape_error(tp)) return y;
    ur_tensor *r = ur_input(tp, y->rows, y->cols);
    ur_rng rng;
    ur_rng_seed(&rng, 99);
    ur_test_fill(r, &rng, -1.0f, 1.0f);
    return ur_sum(tp, ur_mul(tp, y, r));
}

/* Every gradient assertion of this file goes through here (the criterion lives in one place). */
static void assert_gradients(ur_params *ps, const op_case *c)
{
    gc_ctx g = {ps, c};
    ur_assert_gradcheck(ps, weighted_sum, &g, GC_EPS, GC_ATOL, GC_RTOL);
}

/* ---- Ops under test ------------------------------------------------------------------------ */

static ur_tensor *op_binary(ur_tape *tp, ur_params *ps, const op_case *c)
{
    return c->binary(tp, A(ps), B(ps));
}
static ur_tensor *op_add_bias(ur_tape *tp, ur_params *ps, const op_case *c)
{
    (void)c;
    return ur_add_bias(tp, A(ps), B(ps));
}
#define UNARY(fn)                                                              \
    static ur_tensor *op_##fn(ur_tape *tp, ur_params *ps, const op_case *c)  \
    {                                                                          \
        (void)c;                                                               \
        return ur_##fn(tp, A(ps));                                             \
    }
UNARY(exp)
UNARY(log)
UNARY(sqrt)
UNARY(rsqrt)
UNARY(square)
UNARY(abs)
UNARY(reciprocal)
UNARY(softplus)
UNARY(relu)
UNARY(row_sum)
UNARY(row_mean)
UNARY(col_sum)
UNARY(col_mean)
UNARY(mean)
UNARY(softmax)
UNARY(log_softmax)
UNARY(transpose)
#undef UNARY
static ur_tensor *op_clamp(ur_tape *tp, ur_params *ps, const op_case *c)
{
    return ur_clamp(tp, A(ps), c->arg[0], c->arg[1]);
}
static ur_tensor *op_add_scalar(ur_tape *tp, ur_params *ps, const op_case *c)
{
    return ur_add_scalar(tp, A(ps), c->arg[0]);
}
/* layer norm with gain b and bias c, gain only, bias only (b), neither */
static ur_tensor *op_layer_norm(ur_tape *tp, ur_params *ps, const op_case *c)
{
    ur_tensor *gain = NULL, *bias = NULL;
    if (c->arg[1] == 1 || c->arg[1] == 3) gain = B(ps);
    if (c->arg[1] == 2) bias = B(ps);
    if (c->arg[1] == 3) bias = C(ps);
    return ur_layer_norm(tp, A(ps), gain, bias, c->arg[0]);
}
/* every row of a used, row 2 twice; arg[0] = 1: gathered from a^2, an op's output (not from
 * tanh: fastmath's exp is not yet NaN-safe under the sanitizers) */
static const int gather_idx[5] = {2, 0, 1, 3, 2};
static ur_tensor *op_gather(ur_tape *tp, ur_params *ps, const op_case *c)
{
    ur_tensor *x = c->arg[0] ? ur_square(tp, A(ps)) : A(ps);
    return ur_gather_rows(tp, x, gather_idx, 5);
}
static ur_tensor *op_time_to_batch(ur_tape *tp, ur_params *ps, const op_case *c)
{
    return ur_time_to_batch(tp, A(ps), (int)c->arg[0]);
}
static ur_tensor *op_batch_to_time(ur_tape *tp, ur_params *ps, const op_case *c)
{
    return ur_batch_to_time(tp, A(ps), (int)c->arg[0]);
}
/* a viewed as arg[0] x arg[1]; of a^2, an op's output, when the shape says 6 x 2 */
static ur_tensor *op_reshape(ur_tape *tp, ur_params *ps, const op_case *c)
{
    int rows = (int)c->arg[0], cols = (int)c->arg[1];
    ur_tensor *x = rows == 6 ? ur_square(tp, A(ps)) : A(ps);
    return ur_reshape(tp, x, rows, cols);
}
/* arg[0] blocks, arg[1] = trans_a + 2 trans_b */
static ur_tensor *op_block_matmul(ur_tape *tp, ur_params *ps, const op_case *c)
{
    int flags = (int)c->arg[1];
    return ur_block_matmul(tp, A(ps), B(ps), (int)c->arg[0], flags & 1, flags >> 1);
}

#define BIN(op, ar, ac, br, bc, l, h, f)                                                    \
    {.name = #op " " #ar "x" #ac " " #br "x" #bc, .fn = op_binary, .binary = ur_##op,          \
     .shape = {{ar, ac}, {br, bc}}, .lo = l, .hi = h, .flip = f}
/* The broadcast shapes: same, b a row, a column, a scalar; a the broadcast side; outer. */
#define BIN_SHAPES(op, l, h, f)                                                                \
    BIN(op, 3, 4, 3, 4, l, h, f), BIN(op, 3, 4, 1, 4, l, h, f), BIN(op, 3, 4, 3, 1, l, h, f),   \
    BIN(op, 3, 4, 1, 1, l, h, f), BIN(op, 1, 4, 3, 4, l, h, f), BIN(op, 3, 1, 3, 4, l, h, f),   \
    BIN(op, 1, 1, 3, 4, l, h, f), BIN(op, 1, 4, 3, 1, l, h, f)
/* An op with inputs uniform in [l, h], shapes and arguments given; UN: one 3 x 4 input. */
#define OP(nm, f, l, h, ...) {.name = nm, .fn = f, .lo = l, .hi = h, __VA_ARGS__}
#define UN(nm, f, l, h, ...) OP(nm, f, l, h, .shape = {{3, 4}}, __VA_ARGS__)

static const op_case cases[] = {
    BIN_SHAPES(add, -1, 1, 0),
    BIN_SHAPES(sub, -1, 1, 0),
    BIN_SHAPES(mul, -1, 1, 0),
    BIN_SHAPES(div, 0.5f, 1.5f, 1), /* |b| >= 0.5: away from the pole */
    OP("add_bias", op_add_bias, -1, 1, .shape = {{3, 4}, {1, 4}}),
    UN("exp", op_exp, -1.5f, 1.5f),
    UN("log", op_log, 0.5f, 2.0f),
    UN("sqrt", op_sqrt, 0.5f, 2.0f),
    UN("rsqrt", op_rsqrt, 0.5f, 2.0f),
    UN("square", op_square, -1.5f, 1.5f),
    UN("abs", op_abs, 0.1f, 1.5f, .flip = 1),
    UN("reciprocal", op_reciprocal, 0.6f, 2.0f, .flip = 1),
    UN("softplus", op_softplus, -3, 3),
    UN("relu", op_relu, 0.1f, 1.5f, .flip = 1, .same_index = 1),
    /* |x| in [0.1, 0.4] or [0.6, 1.5]: inside or outside the bounds, never within eps of them */
    UN("clamp in", op_clamp, 0.1f, 0.4f, .flip = 1, .arg = {-0.5f, 0.5f}, .same_index = 1),
    UN("clamp out", op_clamp, 0.6f, 1.5f, .flip = 1, .arg = {-0.5f, 0.5f}, .same_index = 1),
    UN("add_scalar", op_add_scalar, -1, 1, .arg = {2.5f}),
    UN("row_sum", op_row_sum, -1, 1),
    UN("row_mean", op_row_mean, -1, 1),
    UN("col_sum", op_col_sum, -1, 1),
    UN("col_mean", op_col_mean, -1, 1),
    UN("mean", op_mean, -1, 1),
    OP("softmax", op_softmax, -2, 2, .shape = {{3, 5}}),
    OP("log_softmax", op_log_softmax, -2, 2, .shape = {{3, 5}}),
    OP("layer_norm", op_layer_norm, -2, 2, .shape = {{3, 5}}, .arg = {1e-5f, 0}),
    OP("layer_norm gain", op_layer_norm, -2, 2, .shape = {{3, 5}, {1, 5}}, .arg = {1e-5f, 1}),
    OP("layer_norm bias", op_layer_norm, -2, 2, .shape = {{3, 5}, {1, 5}}, .arg = {1e-5f, 2}),
    OP("layer_norm gain bias", op_layer_norm, -2, 2, .shape = {{3, 5}, {1, 5}, {1, 5}},
       .arg = {0.1f, 3}),
    OP("layer_norm gain bias 1 row", op_layer_norm, -2, 2, .shape = {{1, 7}, {1, 7}, {1, 7}},
       .arg = {1e-5f, 3}),
    OP("gather_rows", op_gather, -1, 1, .shape = {{4, 3}}),
    OP("gather_rows of square", op_gather, -1, 1, .shape = {{4, 3}}, .arg = {1}),
    OP("time_to_batch", op_time_to_batch, -1, 1, .shape = {{6, 2}}, .arg = {3}),
    OP("batch_to_time", op_batch_to_time, -1, 1, .shape = {{6, 2}}, .arg = {3}),
    UN("transpose", op_transpose, -1, 1),
    UN("reshape", op_reshape, -1, 1, .arg = {2, 6}),
    UN("reshape of square", op_reshape, -1, 1, .arg = {6, 2}),
    /* block products, 2 blocks: scores q_k E_k^T, contexts w_k E_k, column scores E_k q_k,
     * both transposed, and a general one (sgemm) */
    OP("block_matmul scores", op_block_matmul, -1, 1, .shape = {{2, 3}, {8, 3}}, .arg = {2, 2}),
    OP("block_matmul context", op_block_matmul, -1, 1, .shape = {{2, 4}, {8, 3}}, .arg = {2, 0}),
    OP("block_matmul column", op_block_matmul, -1, 1, .shape = {{8, 3}, {6, 1}}, .arg = {2, 0}),
    OP("block_matmul trans_a", op_block_matmul, -1, 1, .shape = {{8, 2}, {8, 3}}, .arg = {2, 1}),
    OP("block_matmul trans_ab", op_block_matmul, -1, 1, .shape = {{8, 2}, {6, 4}}, .arg = {2, 3}),
    OP("block_matmul general", op_block_matmul, -1, 1, .shape = {{6, 4}, {8, 5}}, .arg = {2, 0}),
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

START_TEST(test_gradients)
{
    const op_case *c = &cases[_i];
    ur_params *ps = case_params(c, 7 + (uint64_t)_i);
    assert_gradients(ps, c);
    ur_params_free(ps);
}
END_TEST

/* ---- NaN propagation -----------------------------------------------------------------------
 * For every op and every input element: with that element NaN, each output element that
 * depends on it (a nonzero entry of the Jacobian at finite inputs, found by backward from that
 * output alone) is NaN. Backward then runs through the NaNs too (for the sanitizers). */

/* d out[j] / d in[k] != 0 for every (j, k) of input p, by one backward per output element. */
static unsigned char *dependence(const op_case *c, ur_params *ps, ur_tensor *p, int *n_out)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *y = c->fn(tp, ps, c);
    ck_assert_msg(!ur_tape_error(tp), "%s: %s", c->name, ur_tape_error(tp));
    int ny = (int)ur_numel(y), np = (int)ur_numel(p);
    unsigned char *dep = calloc((size_t)ny * (size_t)np, 1);
    for (int j = 0; j < ny; j++) {
        ur_tape_reset(tp);
        ur_params_zero_grad(ps);
        y = c->fn(tp, ps, c);
        ur_tensor *pick = ur_input(tp, y->rows, y->cols);
        pick->val[j] = 1;
        ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, y, pick))), 0);
        for (int k = 0; k < np; k++)
            dep[(size_t)j * np + k] = c->same_index ? j == k : p->grad[k] != 0.0f;
    }
    ur_tape_free(tp);
    *n_out = ny;
    return dep;
}

START_TEST(test_nan_propagation)
{
    const op_case *c = &cases[_i];
    ur_params *ps = case_params(c, 7 + (uint64_t)_i);
    for (int in = 0; in < ur_params_count(ps); in++) {
        ur_tensor *p = ur_params_at(ps, in);
        int ny;
        unsigned char *dep = dependence(c, ps, p, &ny);
        for (size_t k = 0; k < ur_numel(p); k++) {
            float keep = p->val[k];
            p->val[k] = NAN;
            ur_tape *tp = ur_tape_new(0);
            ur_tensor *y = c->fn(tp, ps, c);
            int depends = 0;
            for (int j = 0; j < ny; j++) {
                if (!dep[(size_t)j * ur_numel(p) + k]) continue;
                depends = 1;
                ck_assert_msg(isnan(y->val[j]), "%s: %s[%zu] = NaN gives output %d = %g", c->name,
                              p->name, k, j, (double)y->val[j]);
            }
            ck_assert_msg(depends, "%s: no output depends on %s[%zu]", c->name, p->name, k);
            ck_assert_int_eq(ur_backward(tp, weighted_sum(tp, &(gc_ctx){ps, c})), 0);
            ur_tape_free(tp);
            p->val[k] = keep;
        }
        free(dep);
    }
    ur_params_free(ps);
}
END_TEST

/* ---- Forward values by hand ----------------------------------------------------------------- */

START_TEST(test_broadcast_forward)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *a = ur_input_from(tp, 2, 3, (float[]){1, 2, 3, 4, 5, 6});
    ur_tensor *row = ur_input_from(tp, 1, 3, (float[]){10, 20, 30});
    ur_tensor *col = ur_input_from(tp, 2, 1, (float[]){100, 200});
    ur_tensor *s = ur_input_from(tp, 1, 1, (float[]){2});
    expect(ur_add(tp, a, row), 2, 3, (float[]){11, 22, 33, 14, 25, 36}, 0);
    expect(ur_add(tp, row, a), 2, 3, (float[]){11, 22, 33, 14, 25, 36}, 0);
    expect(ur_add_bias(tp, a, row), 2, 3, (float[]){11, 22, 33, 14, 25, 36}, 0);
    expect(ur_sub(tp, a, row), 2, 3, (float[]){-9, -18, -27, -6, -15, -24}, 0);
    expect(ur_sub(tp, row, a), 2, 3, (float[]){9, 18, 27, 6, 15, 24}, 0);
    expect(ur_sub(tp, a, col), 2, 3, (float[]){-99, -98, -97, -196, -195, -194}, 0);
    expect(ur_mul(tp, a, col), 2, 3, (float[]){100, 200, 300, 800, 1000, 1200}, 0);
    expect(ur_mul(tp, col, a), 2, 3, (float[]){100, 200, 300, 800, 1000, 1200}, 0);
    expect(ur_mul(tp, s, a), 2, 3, (float[]){2, 4, 6, 8, 10, 12}, 0);
    expect(ur_div(tp, a, s), 2, 3, (float[]){0.5f, 1, 1.5f, 2, 2.5f, 3}, 0);
    expect(ur_div(tp, s, a), 2, 3, (float[]){2, 1, 2.0f / 3, 0.5f, 0.4f, 2.0f / 6}, 0);
    expect(ur_div(tp, a, a), 2, 3, (float[]){1, 1, 1, 1, 1, 1}, 0);
    expect(ur_div(tp, row, col), 2, 3, (float[]){0.1f, 0.2f, 0.3f, 0.05f, 0.1f, 0.15f}, 1e-8);
    expect(ur_add(tp, row, col), 2, 3, (float[]){110, 120, 130, 210, 220, 230}, 0); /* outer */
    expect(ur_mul(tp, col, s), 2, 1, (float[]){200, 400}, 0);
    expect(ur_sub(tp, s, s), 1, 1, (float[]){0}, 0);
    /* division by zero as in C */
    ur_tensor *z = ur_input_from(tp, 1, 3, (float[]){0, 0, 0});
    ur_tensor *num = ur_input_from(tp, 1, 3, (float[]){1, -1, 0});
    expect(ur_div(tp, num, z), 1, 3, (float[]){INFINITY, -INFINITY, NAN}, 0);
    ck_assert_ptr_null(ur_tape_error(tp));
    /* shapes that do not broadcast */
    ur_tensor *tall = ur_input(tp, 3, 1);
    expect_error(tp, ur_add(tp, a, tall), "add: shapes differ: 2x3 and 3x1");
    a = ur_input(tp, 2, 3);
    expect_error(tp, ur_div(tp, ur_input(tp, 1, 2), a), "div: shapes differ: 1x2 and 2x3");
    a = ur_input(tp, 2, 3);
    expect_error(tp, ur_add_bias(tp, a, ur_input(tp, 2, 1)),
                 "add_bias: bias must be 1 x cols of x: 2x3 and 2x1");
    expect_error(tp, ur_mul(tp, NULL, ur_input(tp, 1, 1)), "mul: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

/* The broadcast side's gradient is its share summed back to its shape. */
START_TEST(test_broadcast_backward)
{
    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a", 2, 3), *col = ur_params_add(ps, "col", 2, 1);
    ur_tensor *row = ur_params_add(ps, "row", 1, 3), *s = ur_params_add(ps, "s", 1, 1);
    set(a, (float[]){1, 2, 3, 4, 5, 6});
    set(col, (float[]){2, 4});
    set(row, (float[]){1, -1, 2});
    set(s, (float[]){0.5f});
    ur_tape *tp = ur_tape_new(0);
    /* L = sum(a * col) + sum(a - row) + sum(row / s): dcol = row sums of a, da = col + 1,
     * drow = -2 + 1 / s = 0 per element, ds = -sum(row) / s^2 = -8 */
    ur_tensor *l = ur_add(tp, ur_sum(tp, ur_mul(tp, a, col)), ur_sum(tp, ur_sub(tp, a, row)));
    l = ur_add(tp, l, ur_sum(tp, ur_div(tp, row, s)));
    ck_assert_int_eq(ur_backward(tp, l), 0);
    expect_grad(col, (float[]){6, 15});
    expect_grad(a, (float[]){3, 3, 3, 5, 5, 5});
    expect_grad(row, (float[]){0, 0, 0});
    ck_assert_float_eq(s->grad[0], -8);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_unary_forward)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input_from(tp, 1, 6, (float[]){0, 1, -1, 4, 0.25f, -2});
    expect(ur_exp(tp, x), 1, 6,
           (float[]){1, 2.71828183f, 0.36787944f, 54.5981500f, 1.28402542f, 0.13533528f}, 1e-5);
    expect(ur_log(tp, x), 1, 6, (float[]){-INFINITY, 0, NAN, 1.38629436f, -1.38629436f, NAN}, 1e-6);
    expect(ur_sqrt(tp, x), 1, 6, (float[]){0, 1, NAN, 2, 0.5f, NAN}, 0);
    expect(ur_rsqrt(tp, x), 1, 6, (float[]){INFINITY, 1, NAN, 0.5f, 2, NAN}, 0);
    expect(ur_square(tp, x), 1, 6, (float[]){0, 1, 1, 16, 0.0625f, 4}, 0);
    expect(ur_abs(tp, x), 1, 6, (float[]){0, 1, 1, 4, 0.25f, 2}, 0);
    expect(ur_reciprocal(tp, x), 1, 6, (float[]){INFINITY, 1, -1, 0.25f, 4, -0.5f}, 0);
    /* softplus: ln 2, ln(1 + e), ln(1 + 1/e), ... */
    expect(ur_softplus(tp, x), 1, 6,
           (float[]){0.69314718f, 1.31326169f, 0.31326169f, 4.01814993f, 0.82593942f, 0.126928011f},
           1e-6);
    expect(ur_clamp(tp, x, -0.5f, 2), 1, 6, (float[]){0, 1, -0.5f, 2, 0.25f, -0.5f}, 0);
    expect(ur_clamp(tp, x, -INFINITY, 0.5f), 1, 6, (float[]){0, 0.5f, -1, 0.5f, 0.25f, -2}, 0);
    expect(ur_add_scalar(tp, x, -1.5f), 1, 6,
           (float[]){-1.5f, -0.5f, -2.5f, 2.5f, -1.25f, -3.5f}, 0);
    /* the edges: exp overflows to Inf and underflows to 0; softplus stays finite and exact */
    ur_tensor *big = ur_input_from(tp, 1, 4, (float[]){89, -110, 100, -100});
    expect(ur_exp(tp, big), 1, 4, (float[]){INFINITY, 0, INFINITY, 3.7200760e-44f}, 1e-45);
    ur_tensor *sp = ur_softplus(tp, big);
    expect(sp, 1, 4, (float[]){89, 0, 100, 3.7200760e-44f}, 1e-45);
    ck_assert_ptr_null(ur_tape_error(tp));
    expect_error(tp, ur_clamp(tp, x, 1, -1), "clamp: bounds [1, -1] are not ordered (lo <= hi)");
    x = ur_input(tp, 1, 1);
    expect_error(tp, ur_clamp(tp, x, NAN, 1), "clamp: bounds [nan, 1] are not ordered (lo <= hi)");
    expect_error(tp, ur_sqrt(tp, NULL), "sqrt: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

/* Gradients at the edges, by hand: clamp is 0 outside and 1 inside, abs is 0 at 0, softplus'
 * is sigmoid even where e^-x overflows. */
START_TEST(test_unary_backward_edges)
{
    ur_params *ps = ur_params_new();
    ur_tensor *x = ur_params_add(ps, "x", 1, 5);
    set(x, (float[]){-2, -0.5f, 0, 0.5f, 200});
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *l = ur_sum(tp, ur_clamp(tp, x, -1, 1));
    ck_assert_int_eq(ur_backward(tp, l), 0);
    expect_grad(x, (float[]){0, 1, 1, 1, 0});
    ur_tape_reset(tp);
    ur_params_zero_grad(ps);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_abs(tp, x))), 0);
    expect_grad(x, (float[]){-1, -1, 0, 1, 1});
    ur_tape_reset(tp);
    ur_params_zero_grad(ps);
    set(x, (float[]){-200, -1, 0, 1, 200});
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_softplus(tp, x))), 0);
    expect(&(ur_tensor){.rows = 1, .cols = 5, .val = x->grad}, 1, 5,
           (float[]){0, 0.26894142f, 0.5f, 0.73105858f, 1}, 1e-7);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_reductions)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input_from(tp, 2, 3, (float[]){1, 2, 3, 4, 5, 6});
    expect(ur_row_sum(tp, x), 2, 1, (float[]){6, 15}, 0);
    expect(ur_row_mean(tp, x), 2, 1, (float[]){2, 5}, 0);
    expect(ur_col_sum(tp, x), 1, 3, (float[]){5, 7, 9}, 0);
    expect(ur_col_mean(tp, x), 1, 3, (float[]){2.5f, 3.5f, 4.5f}, 0);
    expect(ur_mean(tp, x), 1, 1, (float[]){3.5f}, 0);
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
    expect_error(tp, ur_row_mean(tp, NULL), "row_mean: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

START_TEST(test_softmax_forward)
{
    ur_tape *tp = ur_tape_new(0);
    float big = 1e4f;
    ur_tensor *x = ur_input_from(tp, 3, 3, (float[]){1, 2, 3, big, 0, -big, 0, -INFINITY, 0});
    expect(ur_softmax(tp, x), 3, 3,
           (float[]){0.0900305732f, 0.244728471f, 0.665240956f, 1, 0, 0, 0.5f, 0, 0.5f}, 1e-7);
    expect(ur_log_softmax(tp, x), 3, 3,
           (float[]){-2.40760596f, -1.40760596f, -0.407605964f, 0, -1e4f, -2e4f, -0.693147181f,
                     -INFINITY, -0.693147181f}, 1e-6);
    /* a shift of every logit changes nothing */
    ur_tensor *shifted = ur_input_from(tp, 1, 3, (float[]){1001, 1002, 1003});
    expect(ur_softmax(tp, shifted), 1, 3,
           (float[]){0.0900305732f, 0.244728471f, 0.665240956f}, 1e-7);
    /* rows without a finite max are all NaN; the others are untouched */
    ur_tensor *bad = ur_input_from(tp, 3, 2, (float[]){INFINITY, 0, -INFINITY, -INFINITY, 0, 0});
    expect(ur_softmax(tp, bad), 3, 2, (float[]){NAN, NAN, NAN, NAN, 0.5f, 0.5f}, 1e-7);
    expect(ur_log_softmax(tp, bad), 3, 2,
           (float[]){NAN, NAN, NAN, NAN, -0.693147181f, -0.693147181f}, 1e-7);
    ck_assert_ptr_null(ur_tape_error(tp));
    expect_error(tp, ur_log_softmax(tp, NULL), "log_softmax: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

/* Gradients at logits of 1e4 are finite and right: softmax's is ~0 for a saturated row, and
 * log_softmax's is g - p sum(g) with p one-hot. */
START_TEST(test_softmax_large_logits)
{
    ur_params *ps = ur_params_new();
    ur_tensor *x = ur_params_add(ps, "x", 1, 3);
    set(x, (float[]){1e4f, 0, -1e4f});
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *g = ur_input_from(tp, 1, 3, (float[]){1, 2, 3});
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, ur_log_softmax(tp, x), g))), 0);
    expect_grad(x, (float[]){1 - 6, 2, 3});
    ur_tape_reset(tp);
    ur_params_zero_grad(ps);
    g = ur_input_from(tp, 1, 3, (float[]){1, 2, 3});
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, ur_softmax(tp, x), g))), 0);
    expect_grad(x, (float[]){0, 0, 0});
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_layer_norm_forward)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input_from(tp, 3, 4, (float[]){1, 2, 3, 4, -1, 0, 3, 2, 5, 5, 5, 5});
    ur_tensor *gain = ur_input_from(tp, 1, 4, (float[]){1, 2, 0.5f, -1});
    ur_tensor *bias = ur_input_from(tp, 1, 4, (float[]){0, 1, 0, 1});
    /* row 0: mean 2.5, var 1.25; row 1: mean 1, var 2.5; row 2 constant: 0 / 0 without an
     * epsilon, 0 (then the bias) with one */
    expect(ur_layer_norm(tp, x, NULL, NULL, 0), 3, 4,
           (float[]){-1.34164079f, -0.447213595f, 0.447213595f, 1.34164079f, -1.26491106f,
                     -0.632455532f, 1.26491106f, 0.632455532f, NAN, NAN, NAN, NAN}, 1e-6);
    expect(ur_layer_norm(tp, x, gain, bias, 0), 3, 4,
           (float[]){-1.34164079f, 0.105572809f, 0.223606798f, -0.341640786f, -1.26491106f,
                     -0.264911064f, 0.632455532f, 0.367544468f, NAN, NAN, NAN, NAN}, 1e-6);
    expect(ur_layer_norm(tp, x, NULL, bias, 0.5f), 3, 4,
           (float[]){-1.13389342f, 0.622035527f, 0.377964473f, 2.13389342f, -1.15470054f,
                     0.422649731f, 1.15470054f, 1.57735027f, 0, 1, 0, 1}, 1e-6);
    expect(ur_layer_norm(tp, x, gain, NULL, 1e-5f), 3, 4,
           (float[]){-1.34163542f, -0.894423613f, 0.223605903f, -1.34163542f, -1.26490853f,
                     -1.26490853f, 0.632454267f, -0.632454267f, 0, 0, 0, 0}, 1e-6);
    ck_assert_ptr_null(ur_tape_error(tp));
    expect_error(tp, ur_layer_norm(tp, ur_input(tp, 2, 4), ur_input(tp, 1, 3), NULL, 1e-5f),
                 "layer_norm: gain must be 1 x cols of x: 2x4 and 1x3");
    expect_error(tp, ur_layer_norm(tp, ur_input(tp, 2, 4), NULL, ur_input(tp, 2, 4), 1e-5f),
                 "layer_norm: bias must be 1 x cols of x: 2x4 and 2x4");
    expect_error(tp, ur_layer_norm(tp, ur_input(tp, 2, 4), NULL, NULL, -1e-5f),
                 "layer_norm: epsilon -1e-05 must be finite and >= 0");
    expect_error(tp, ur_layer_norm(tp, ur_input(tp, 2, 4), NULL, NULL, INFINITY),
                 "layer_norm: epsilon inf must be finite and >= 0");
    expect_error(tp, ur_layer_norm(tp, NULL, NULL, NULL, 1e-5f), "layer_norm: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

/* Layer norm written with the primitive ops, as a user would without the fused op. */
static ur_tensor *layer_norm_composed(ur_tape *tp, ur_tensor *x, ur_tensor *gain, ur_tensor *bias,
                                      float eps)
{
    ur_tensor *xc = ur_sub(tp, x, ur_row_mean(tp, x));
    ur_tensor *rstd = ur_rsqrt(tp, ur_add_scalar(tp, ur_row_mean(tp, ur_square(tp, xc)), eps));
    ur_tensor *y = ur_mul(tp, xc, rstd);
    if (gain) y = ur_mul(tp, y, gain);
    if (bias) y = ur_add(tp, y, bias);
    return y;
}

typedef ur_tensor *(*layer_norm_fn)(ur_tape *, ur_tensor *, ur_tensor *, ur_tensor *, float);

/* Copies out every parameter's gradient of sum(f(x, g, b) * R) and returns the values. */
static void layer_norm_run(ur_params *ps, layer_norm_fn f, float *vals, float *grads)
{
    ur_tape *tp = ur_tape_new(0);
    ur_params_zero_grad(ps);
    ur_tensor *x = ur_params_get(ps, "x"), *g = ur_params_get(ps, "g"), *b = ur_params_get(ps, "b");
    ur_tensor *y = f(tp, x, g, b, 1e-3f);
    memcpy(vals, y->val, ur_numel(y) * sizeof(float));
    ur_tensor *r = ur_input(tp, y->rows, y->cols);
    ur_rng rng;
    ur_rng_seed(&rng, 5);
    ur_test_fill(r, &rng, -1, 1);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, y, r))), 0);
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(grads, p->grad, ur_numel(p) * sizeof(float));
        grads += ur_numel(p);
    }
    ur_tape_free(tp);
}

START_TEST(test_layer_norm_vs_composed)
{
    enum { M = 5, N = 6 };
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 17);
    ur_test_fill(ur_params_add(ps, "x", M, N), &rng, -3, 3);
    ur_test_fill(ur_params_add(ps, "g", 1, N), &rng, -1.5f, 1.5f);
    ur_test_fill(ur_params_add(ps, "b", 1, N), &rng, -1, 1);
    float v1[M * N], v2[M * N], g1[M * N + 2 * N], g2[M * N + 2 * N];
    layer_norm_run(ps, ur_layer_norm, v1, g1);
    layer_norm_run(ps, layer_norm_composed, v2, g2);
    for (int k = 0; k < M * N; k++) ck_assert_float_eq_tol(v1[k], v2[k], 2e-6);
    for (int k = 0; k < M * N + 2 * N; k++)
        ck_assert_msg(fabsf(g1[k] - g2[k]) <= 1e-5f * fmaxf(1, fabsf(g2[k])),
                      "gradient %d: fused %.8g, composed %.8g", k, (double)g1[k], (double)g2[k]);
    ur_params_free(ps);
}
END_TEST

/* ---- A layer-normalised LSTM step (Ba et al. 2016, section 3.1), fused vs composed norm:
 *     z = LN(x Wx; g1, b1) + LN(h Wh; g2, b2) + b,   [i f g o] = z
 *     c' = sigmoid(f) c + sigmoid(i) tanh(g),         h' = sigmoid(o) tanh(LN(c'; g3, b3))
 * Both must agree; the numbers of nodes and tape bytes are printed (issue 10's closing note). */

enum { LN_B = 32, LN_IN = 128, LN_H = 128 };

static void ln_lstm_step(ur_tape *tp, ur_params *ps, layer_norm_fn ln, ur_tensor *x, ur_tensor *h,
                         ur_tensor *c, ur_tensor **h_out, ur_tensor **c_out)
{
#define PARAM(name) ur_params_get(ps, name)
    ur_tensor *zx = ln(tp, ur_matmul(tp, x, PARAM("Wx"), 0, 0), PARAM("g1"), PARAM("b1"), 1e-5f);
    ur_tensor *zh = ln(tp, ur_matmul(tp, h, PARAM("Wh"), 0, 0), PARAM("g2"), PARAM("b2"), 1e-5f);
    ur_tensor *z = ur_add_bias(tp, ur_add(tp, zx, zh), PARAM("b"));
    ur_tensor *q[4];
    ur_split_cols(tp, z, 4, q);
    ur_tensor *i = ur_sigmoid(tp, q[0]), *f = ur_sigmoid(tp, q[1]);
    ur_tensor *g = ur_tanh(tp, q[2]), *o = ur_sigmoid(tp, q[3]);
    *c_out = ur_add(tp, ur_mul(tp, f, c), ur_mul(tp, i, g));
    *h_out = ur_mul(tp, o, ur_tanh(tp, ln(tp, *c_out, PARAM("g3"), PARAM("b3"), 1e-5f)));
#undef PARAM
}

typedef struct { int nodes; size_t forward_bytes, total_bytes; } step_cost;

static step_cost ln_lstm_measure(ur_params *ps, layer_norm_fn ln, float *h_vals, float *grads)
{
    ur_tape *tp = ur_tape_new(0);
    ur_rng rng;
    ur_rng_seed(&rng, 23);
    ur_tensor *x = ur_input(tp, LN_B, LN_IN), *h = ur_input(tp, LN_B, LN_H);
    ur_tensor *c = ur_input(tp, LN_B, LN_H), *r = ur_input(tp, LN_B, LN_H);
    ur_test_fill(x, &rng, -1, 1);
    ur_test_fill(h, &rng, -1, 1);
    ur_test_fill(c, &rng, -1, 1);
    ur_test_fill(r, &rng, -1, 1);
    int nodes0 = ur_tape_node_count(tp);
    size_t bytes0 = ur_tape_used_bytes(tp);
    ur_tensor *h2, *c2;
    ln_lstm_step(tp, ps, ln, x, h, c, &h2, &c2);
    step_cost cost = {ur_tape_node_count(tp) - nodes0, ur_tape_used_bytes(tp) - bytes0, 0};
    memcpy(h_vals, h2->val, ur_numel(h2) * sizeof(float));
    ur_params_zero_grad(ps);
    ur_tensor *loss = ur_add(tp, ur_sum(tp, ur_mul(tp, h2, r)), ur_sum(tp, c2));
    ck_assert_msg(ur_backward(tp, loss) == 0, "%s", ur_tape_error(tp));
    cost.total_bytes = ur_tape_used_bytes(tp) - bytes0;
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(grads, p->grad, ur_numel(p) * sizeof(float));
        grads += ur_numel(p);
    }
    ur_tape_free(tp);
    return cost;
}

START_TEST(test_ln_lstm_step)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 29);
    float k = 1.0f / sqrtf(LN_H);
    ur_test_fill(ur_params_add(ps, "Wx", LN_IN, 4 * LN_H), &rng, -k, k);
    ur_test_fill(ur_params_add(ps, "Wh", LN_H, 4 * LN_H), &rng, -k, k);
    ur_test_fill(ur_params_add(ps, "b", 1, 4 * LN_H), &rng, -k, k);
    const char *norms[6] = {"g1", "b1", "g2", "b2", "g3", "b3"};
    for (int j = 0; j < 6; j++) {
        ur_tensor *p = ur_params_add(ps, norms[j], 1, j < 4 ? 4 * LN_H : LN_H);
        ur_test_fill(p, &rng, j % 2 ? -0.1f : 0.9f, j % 2 ? 0.1f : 1.1f); /* gains ~1, biases ~0 */
    }
    ck_assert_int_eq(ur_params_count(ps), 9);
    size_t np = ur_params_numel(ps);
    float *h1 = malloc(LN_B * LN_H * sizeof(float)), *h2 = malloc(LN_B * LN_H * sizeof(float));
    float *g1 = malloc(np * sizeof(float)), *g2 = malloc(np * sizeof(float));
    step_cost fused = ln_lstm_measure(ps, ur_layer_norm, h1, g1);
    step_cost composed = ln_lstm_measure(ps, layer_norm_composed, h2, g2);
    for (int j = 0; j < LN_B * LN_H; j++) ck_assert_float_eq_tol(h1[j], h2[j], 1e-5);
    double worst = 0;
    for (size_t j = 0; j < np; j++) worst = fmax(worst, fabs(g1[j] - g2[j]) / fmax(1, fabs(g2[j])));
    ck_assert_msg(worst < 1e-4, "fused and composed gradients differ by %g", worst);
    printf("layer-norm LSTM step, B %d, in %d, H %d: fused ur_layer_norm %d nodes, %zu tape bytes "
           "forward, %zu with gradients; composed %d nodes, %zu bytes forward, %zu with "
           "gradients\n",
           LN_B, LN_IN, LN_H, fused.nodes, fused.forward_bytes, fused.total_bytes, composed.nodes,
           composed.forward_bytes, composed.total_bytes);
    ck_assert_int_lt(fused.nodes, composed.nodes);
    ck_assert_uint_lt(fused.total_bytes, composed.total_bytes);
    free(h1);
    free(h2);
    free(g1);
    free(g2);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_constants)
{
    ur_tape *tp = ur_tape_new(0);
    expect(ur_constant(tp, 2, 3, -1.5f), 2, 3,
           (float[]){-1.5f, -1.5f, -1.5f, -1.5f, -1.5f, -1.5f}, 0);
    expect(ur_zeros(tp, 1, 2), 1, 2, (float[]){0, 0}, 0);
    expect(ur_ones(tp, 3, 1), 3, 1, (float[]){1, 1, 1}, 0);
    ur_tensor *x = ur_input_from(tp, 1, 2, (float[]){NAN, 4});
    ur_tensor *c = ur_constant_like(tp, x, 7);
    expect(c, 1, 2, (float[]){7, 7}, 0); /* x's values are not read */
    ck_assert_int_eq(c->requires_grad, 0);
    ck_assert_int_eq(ur_tape_node_count(tp), 0);
    /* a constant scalar broadcasts */
    expect(ur_mul(tp, ur_constant(tp, 1, 1, 0.5f), ur_ones(tp, 2, 2)), 2, 2,
           (float[]){0.5f, 0.5f, 0.5f, 0.5f}, 0);
    ck_assert_ptr_null(ur_tape_error(tp));
    expect_error(tp, ur_zeros(tp, 0, 3), "zeros: bad size 0x3 (both must be positive)");
    expect_error(tp, ur_constant(tp, 2, -1, 1), "constant: bad size 2x-1 (both must be positive)");
    expect_error(tp, ur_constant_like(tp, NULL, 1), "constant_like: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

START_TEST(test_gather_rows)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 3, 2);
    set(w, (float[]){1, 2, 3, 4, 5, 6});
    ur_tape *tp = ur_tape_new(0);
    /* from an op's output: the gradient flows through the gather into w */
    ur_tensor *x = ur_scale(tp, w, 2);
    ur_tensor *y = ur_gather_rows(tp, x, (int[]){2, 2, 0}, 3);
    expect(y, 3, 2, (float[]){10, 12, 10, 12, 2, 4}, 0);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, y)), 0);
    expect_grad(w, (float[]){2, 2, 0, 0, 4, 4});
    ur_tape_reset(tp);
    /* from a view (a time step of a stacked sequence) */
    ur_params_zero_grad(ps);
    y = ur_gather_rows(tp, ur_rows(tp, w, 1, 2), (int[]){1}, 1);
    expect(y, 1, 2, (float[]){5, 6}, 0);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, y)), 0);
    expect_grad(w, (float[]){0, 0, 0, 0, 1, 1});
    ur_tape_reset(tp);
    expect_error(tp, ur_gather_rows(tp, w, (int[]){0, 3}, 2),
                 "gather_rows: index 3 at position 1 is outside the 3x2 tensor");
    expect_error(tp, ur_gather_rows(tp, w, (int[]){-1}, 1),
                 "gather_rows: index -1 at position 0 is outside the 3x2 tensor");
    expect_error(tp, ur_gather_rows(tp, w, NULL, 2),
                 "gather_rows: needs at least one index, got n = 2");
    expect_error(tp, ur_embedding(tp, w, (int[]){0}, 0),
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
    expect(bm, 6, 2, (float[]){0, 0.5f, 10, 10.5f, 20, 20.5f, 1, 1.5f, 11, 11.5f, 21, 21.5f}, 0);
    expect(ur_batch_to_time(tp, bm, 3), 6, 2, tm, 0);
    /* B = 1 or T = 1: nothing moves */
    expect(ur_time_to_batch(tp, x, 6), 6, 2, x->val, 0);
    expect(ur_time_to_batch(tp, x, 1), 6, 2, x->val, 0);
    ur_tensor *m = ur_input_from(tp, 2, 3, (float[]){1, 2, 3, 4, 5, 6});
    expect(ur_transpose(tp, m), 3, 2, (float[]){1, 4, 2, 5, 3, 6}, 0);
    ur_tensor *v = ur_reshape(tp, m, 3, 2);
    expect(v, 3, 2, (float[]){1, 2, 3, 4, 5, 6}, 0);
    ck_assert_ptr_eq(v->val, m->val); /* zero-copy */
    expect(ur_reshape(tp, ur_rows(tp, m, 1, 1), 3, 1), 3, 1, (float[]){4, 5, 6}, 0);
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
    expect_error(tp, ur_time_to_batch(tp, ur_input(tp, 5, 2), 2),
                 "time_to_batch: 5x2 is not T*B rows with T = 2");
    expect_error(tp, ur_batch_to_time(tp, ur_input(tp, 4, 2), 0),
                 "batch_to_time: 4x2 is not T*B rows with T = 0");
    expect_error(tp, ur_reshape(tp, ur_input(tp, 2, 3), 4, 2), "reshape: cannot view 2x3 as 4x2");
    expect_error(tp, ur_transpose(tp, NULL), "transpose: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

START_TEST(test_block_matmul)
{
    ur_tape *tp = ur_tape_new(0);
    /* B = 2 queries q_k (1 x 2) against B = 2 sequences E_k of T = 2 steps (2 x 2) */
    ur_tensor *q = ur_input_from(tp, 2, 2, (float[]){1, 2, 3, 4});
    ur_tensor *e = ur_input_from(tp, 4, 2, (float[]){1, 0, 0, 1, 1, 1, 2, -1});
    expect(ur_block_matmul(tp, q, e, 2, 0, 1), 2, 2, (float[]){1, 2, 7, 2}, 0); /* q_k E_k^T */
    ur_tensor *w = ur_input_from(tp, 2, 2, (float[]){0.5f, 0.5f, 1, 0});
    expect(ur_block_matmul(tp, w, e, 2, 0, 0), 2, 2, (float[]){0.5f, 0.5f, 1, 1}, 0); /* w_k E_k */
    ur_tensor *qc = ur_input_from(tp, 4, 1, (float[]){1, 2, 3, 4});
    expect(ur_block_matmul(tp, e, qc, 2, 0, 0), 4, 1, (float[]){1, 2, 7, 2}, 0); /* E_k q_k */
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
    expect_error(tp, ur_block_matmul(tp, ur_input(tp, 3, 2), ur_input(tp, 4, 2), 2, 0, 1),
                 "block_matmul: 3x2 and 4x2 do not both split into 2 row blocks");
    expect_error(tp, ur_block_matmul(tp, ur_input(tp, 2, 3), ur_input(tp, 8, 2), 2, 0, 1),
                 "block_matmul: inner dimensions of the blocks differ: 2x3 and 8x2");
    expect_error(tp, ur_block_matmul(tp, ur_input(tp, 2, 3), ur_input(tp, 8, 2), 0, 0, 0),
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
enum { BIG_ROWS = 200003, BIG_COLS = 6 }; /* 200003: not a multiple of 4 */
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

/* The column blocks of the double sums (64 columns) and the rows left after the groups of
 * four: 130 columns of small integers, whose sums are exact either way. */
START_TEST(test_bias_grad_blocks)
{
    const int m = 7, n = 130;
    ur_tape *tp = ur_tape_new(0);
    ur_params *ps = ur_params_new();
    ur_tensor *b = ur_params_add(ps, "b", 1, n);
    for (int j = 0; j < n; j++) b->val[j] = 2;
    float c[7 * 130], x[7 * 130];
    double want_add[130] = {0}, want_mul[130] = {0};
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
    Suite *s = suite_create("ops_math");
    TCase *tc = tcase_create("ops_math");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_gradients, 0, N_CASES);
    tcase_add_loop_test(tc, test_nan_propagation, 0, N_CASES);
    tcase_add_test(tc, test_broadcast_forward);
    tcase_add_test(tc, test_broadcast_backward);
    tcase_add_test(tc, test_unary_forward);
    tcase_add_test(tc, test_unary_backward_edges);
    tcase_add_test(tc, test_reductions);
    tcase_add_test(tc, test_softmax_forward);
    tcase_add_test(tc, test_softmax_large_logits);
    tcase_add_test(tc, test_layer_norm_forward);
    tcase_add_test(tc, test_layer_norm_vs_composed);
    tcase_add_test(tc, test_ln_lstm_step);
    tcase_add_test(tc, test_constants);
    tcase_add_test(tc, test_gather_rows);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_block_matmul);
    tcase_add_test(tc, test_bias_grad_many_rows);
    tcase_add_test(tc, test_bias_grad_blocks);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
