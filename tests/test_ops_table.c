/* The ops of issue 10 (element-wise functions, broadcasting arithmetic, reductions, softmax,
 * layer norm, constants and the layout ops for attention) and the fused Cho GRU step, driven
 * by one table, cases[] below: for each op a gradient check of L = sum(op(...) * R), R fixed
 * and random so that every output element matters, and a NaN-propagation check. Inputs are
 * O(1) and kept away from kinks and poles, so that the gradients are O(1) too and the check's
 * tolerance, absolute for gradients below 1, still means something. Forward values by hand are
 * in tests/test_ops_values.c and tests/test_layer_norm.c (the Cho GRU step's against double in
 * tests/test_cell_variants.c, and against generic ops in tests/test_kernels.c).
 */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

/* ---- The op table ----------------------------------------------------------------------- */

typedef struct op_case op_case;
/* Records the op under test on tp from the inputs in ps ("a", and "b", "c", "d" when it has
 * them). */
typedef ur_tensor *(*op_fn)(ur_tape *tp, ur_params *ps, const op_case *c);

enum { MAX_IN = 4 };
struct op_case {
    const char *name;
    op_fn fn;
    ur_tensor *(*binary)(ur_tape *, ur_tensor *, ur_tensor *); /* for the broadcasting ops */
    int shape[MAX_IN][2];  /* rows x cols of a, b, c, d; 0 x 0: no such input */
    float lo, hi;          /* inputs are uniform in [lo, hi] ... */
    int flip;              /* ... and, when flip, of random sign (|x| in [lo, hi]) */
    float arg[2];          /* op arguments (clamp bounds, the scalar, epsilon) */
    int same_index;        /* 1: an element-wise op whose derivative may be 0 (relu, clamp), so
                              the NaN check takes output k as input k's, not the Jacobian's */
};

static ur_tensor *A(ur_params *ps) { return ur_params_get(ps, "a"); }
static ur_tensor *B(ur_params *ps) { return ur_params_get(ps, "b"); }
static ur_tensor *C(ur_params *ps) { return ur_params_get(ps, "c"); }
static ur_tensor *D(ur_params *ps) { return ur_params_get(ps, "d"); }

static ur_params *case_params(const op_case *c, uint64_t seed)
{
    static const char *const names[MAX_IN] = {"a", "b", "c", "d"};
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

/* The fused Cho GRU step: x = a (B x 3H), g = b (B x 2H), h_prev = c (B x H), Un = d (H x H).
 * The op overwrites x and g, so it is given copies whose gradients flow to a and b. */
static ur_tensor *op_gru_cho_gates(ur_tape *tp, ur_params *ps, const op_case *c)
{
    (void)c;
    return ur_gru_cho_gates(tp, ur_scale(tp, A(ps), 1.0f), ur_scale(tp, B(ps), 1.0f), C(ps),
                            D(ps), NULL);
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
    /* B = 3, H = 4; and one row (the products become matrix-vector ones) */
    OP("gru_cho_gates", op_gru_cho_gates, -1, 1, .shape = {{3, 12}, {3, 8}, {3, 4}, {4, 4}}),
    OP("gru_cho_gates 1 row", op_gru_cho_gates, -1, 1, .shape = {{1, 15}, {1, 10}, {1, 5}, {5, 5}}),
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

int main(void)
{
    Suite *s = suite_create("ops_table");
    TCase *tc = tcase_create("ops_table");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_gradients, 0, N_CASES);
    tcase_add_loop_test(tc, test_nan_propagation, 0, N_CASES);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
