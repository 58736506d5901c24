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

#define GC_EPS 5e-3
#define GC_TOL 5e-4

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
    ur_assert_gradcheck(ps, weighted_sum, &g, GC_EPS, GC_TOL);
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
#undef UNARY
static ur_tensor *op_clamp(ur_tape *tp, ur_params *ps, const op_case *c)
{
    return ur_clamp(tp, A(ps), c->arg[0], c->arg[1]);
}
static ur_tensor *op_add_scalar(ur_tape *tp, ur_params *ps, const op_case *c)
{
    return ur_add_scalar(tp, A(ps), c->arg[0]);
}

#define BIN(op, ar, ac, br, bc, l, h, f)                                                    \
    {.name = #op " " #ar "x" #ac " " #br "x" #bc, .fn = op_binary, .binary = ur_##op,          \
     .shape = {{ar, ac}, {br, bc}}, .lo = l, .hi = h, .flip = f}
/* The broadcast shapes: same, b a row, a column, a scalar; a the broadcast side; outer. */
#define BIN_SHAPES(op, l, h, f)                                                                \
    BIN(op, 3, 4, 3, 4, l, h, f), BIN(op, 3, 4, 1, 4, l, h, f), BIN(op, 3, 4, 3, 1, l, h, f),   \
    BIN(op, 3, 4, 1, 1, l, h, f), BIN(op, 1, 4, 3, 4, l, h, f), BIN(op, 3, 1, 3, 4, l, h, f),   \
    BIN(op, 1, 1, 3, 4, l, h, f), BIN(op, 1, 4, 3, 1, l, h, f)
/* An op of one 3 x 4 input, uniform in [l, h]. */
#define UN(nm, f, l, h, ...) {.name = nm, .fn = f, .shape = {{3, 4}}, .lo = l, .hi = h, __VA_ARGS__}

static const op_case cases[] = {
    BIN_SHAPES(add, -1, 1, 0),
    BIN_SHAPES(sub, -1, 1, 0),
    BIN_SHAPES(mul, -1, 1, 0),
    BIN_SHAPES(div, 0.5f, 1.5f, 1), /* |b| >= 0.5: away from the pole */
    {.name = "add_bias", .fn = op_add_bias, .shape = {{3, 4}, {1, 4}}, .lo = -1, .hi = 1},
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
    ur_tensor *l = ur_add(tp, ur_add(tp, ur_sum(tp, ur_mul(tp, a, col)), ur_sum(tp, ur_sub(tp, a, row))),
                          ur_sum(tp, ur_div(tp, row, s)));
    ck_assert_int_eq(ur_backward(tp, l), 0);
    expect(&(ur_tensor){.rows = 2, .cols = 1, .val = col->grad}, 2, 1, (float[]){6, 15}, 0);
    expect(&(ur_tensor){.rows = 2, .cols = 3, .val = a->grad}, 2, 3, (float[]){3, 3, 3, 5, 5, 5}, 0);
    expect(&(ur_tensor){.rows = 1, .cols = 3, .val = row->grad}, 1, 3, (float[]){0, 0, 0}, 0);
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
    expect(ur_add_scalar(tp, x, -1.5f), 1, 6, (float[]){-1.5f, -0.5f, -2.5f, 2.5f, -1.25f, -3.5f}, 0);
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
    expect(&(ur_tensor){.rows = 1, .cols = 5, .val = x->grad}, 1, 5, (float[]){0, 1, 1, 1, 0}, 0);
    ur_tape_reset(tp);
    ur_params_zero_grad(ps);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_abs(tp, x))), 0);
    expect(&(ur_tensor){.rows = 1, .cols = 5, .val = x->grad}, 1, 5, (float[]){-1, -1, 0, 1, 1}, 0);
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
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
