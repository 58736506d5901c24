/* Element-wise functions of one tensor, y = f(x) (any shape), each beside its derivative:
 *
 *     exp          y = e^x                        dx += dy y
 *     log          y = ln x                       dx += dy / x
 *     sqrt         y = x^(1/2)                    dx += dy / (2 y)
 *     rsqrt        y = x^(-1/2)                   dx += -dy y^3 / 2
 *     square       y = x^2                        dx += 2 dy x
 *     abs          y = |x|                        dx += dy sign(x)        (sign(0) = 0)
 *     reciprocal   y = 1 / x                      dx += -dy y^2
 *     softplus     y = ln(1 + e^x)                dx += dy sigmoid(x)
 *     clamp        y = min(max(x, lo), hi)        dx += dy [lo <= x <= hi]
 *     add_scalar   y = x + s                      dx += dy
 *
 * Edges behave as C's float functions do: log 0 = -Inf, log of a negative or sqrt of a
 * negative is NaN, 1/0 = +-Inf, exp overflows to Inf above 88.7 and underflows to 0 below
 * -103. So exp, log and softplus call libm (expf, logf, log1pf), exact at those edges, and
 * not fastmath's ur_exp, which clamps its argument to [-87, 88] and so never gives Inf or 0.
 * sqrt compiles to the vector square-root instruction (-fno-math-errno).
 * softplus is computed as max(x, 0) + log1p(e^-|x|): e^-|x| <= 1 never overflows, and for
 * large |x| the result is x (or e^x) to float precision.
 * NaN in gives NaN out in every op, clamp included (both comparisons are false for NaN, so
 * it passes through; its gradient passes dy through as well).
 */
#include "ops/ur_ops.h"

#include <math.h>

typedef enum unary_fn { EXP, LOG, SQRT, RSQRT, SQUARE, ABS, RECIPROCAL, SOFTPLUS } unary_fn;

static void unary_forward(unary_fn f, size_t len, const float *restrict x, float *restrict y)
{
    switch (f) {
    case EXP: for (size_t k = 0; k < len; k++) y[k] = expf(x[k]); break;
    case LOG: for (size_t k = 0; k < len; k++) y[k] = logf(x[k]); break;
    case SQRT: for (size_t k = 0; k < len; k++) y[k] = sqrtf(x[k]); break;
    case RSQRT: for (size_t k = 0; k < len; k++) y[k] = 1.0f / sqrtf(x[k]); break;
    case SQUARE: for (size_t k = 0; k < len; k++) y[k] = x[k] * x[k]; break;
    case ABS: for (size_t k = 0; k < len; k++) y[k] = fabsf(x[k]); break;
    case RECIPROCAL: for (size_t k = 0; k < len; k++) y[k] = 1.0f / x[k]; break;
    case SOFTPLUS:
        for (size_t k = 0; k < len; k++)
            y[k] = (x[k] > 0.0f ? x[k] : 0.0f) + log1pf(expf(-fabsf(x[k])));
        break;
    }
}

/* dx += dy f'(x), written with whichever of x and y gives the simpler form. */
static void unary_grad(unary_fn f, size_t len, const float *restrict x, const float *restrict y,
                       const float *restrict dy, float *restrict dx)
{
    switch (f) {
    case EXP: for (size_t k = 0; k < len; k++) dx[k] += dy[k] * y[k]; break;
    case LOG: for (size_t k = 0; k < len; k++) dx[k] += dy[k] / x[k]; break;
    case SQRT: for (size_t k = 0; k < len; k++) dx[k] += 0.5f * dy[k] / y[k]; break;
    case RSQRT: for (size_t k = 0; k < len; k++) dx[k] -= 0.5f * dy[k] * y[k] * y[k] * y[k]; break;
    case SQUARE: for (size_t k = 0; k < len; k++) dx[k] += 2.0f * dy[k] * x[k]; break;
    case ABS: /* sign(x) = [x > 0] - [x < 0] */
        for (size_t k = 0; k < len; k++)
            dx[k] += dy[k] * ((float)(x[k] > 0.0f) - (float)(x[k] < 0.0f));
        break;
    case RECIPROCAL: for (size_t k = 0; k < len; k++) dx[k] -= dy[k] * y[k] * y[k]; break;
    case SOFTPLUS: /* sigmoid(x) = 1 / (1 + e^-x): e^-x = Inf gives 0, as it should */
        for (size_t k = 0; k < len; k++) dx[k] += dy[k] / (1.0f + expf(-x[k]));
        break;
    }
}

static void unary_backward(ur_node *n)
{
    unary_grad((unary_fn)n->i[0], ur_numel(n->out), n->in[0]->val, n->out->val, n->out->grad,
               ur_grad(n->in[0]));
}

static const ur_op unary_op[] = {
    [EXP] = {"exp", unary_backward},
    [LOG] = {"log", unary_backward},
    [SQRT] = {"sqrt", unary_backward},
    [RSQRT] = {"rsqrt", unary_backward},
    [SQUARE] = {"square", unary_backward},
    [ABS] = {"abs", unary_backward},
    [RECIPROCAL] = {"reciprocal", unary_backward},
    [SOFTPLUS] = {"softplus", unary_backward},
};

static ur_tensor *unary(ur_tape *tp, unary_fn f, ur_tensor *x)
{
    if (!ur_op_begin(tp, unary_op[f].name, 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    if (!y) return ur_tape_poison(tp);
    unary_forward(f, ur_numel(y), x->val, y->val);
    ur_node *nd = ur_record(tp, &unary_op[f], y, 1, x);
    if (nd) nd->i[0] = (int)f;
    return y;
}

ur_tensor *ur_exp(ur_tape *tp, ur_tensor *x) { return unary(tp, EXP, x); }
ur_tensor *ur_log(ur_tape *tp, ur_tensor *x) { return unary(tp, LOG, x); }
ur_tensor *ur_sqrt(ur_tape *tp, ur_tensor *x) { return unary(tp, SQRT, x); }
ur_tensor *ur_rsqrt(ur_tape *tp, ur_tensor *x) { return unary(tp, RSQRT, x); }
ur_tensor *ur_square(ur_tape *tp, ur_tensor *x) { return unary(tp, SQUARE, x); }
ur_tensor *ur_abs(ur_tape *tp, ur_tensor *x) { return unary(tp, ABS, x); }
ur_tensor *ur_reciprocal(ur_tape *tp, ur_tensor *x) { return unary(tp, RECIPROCAL, x); }
ur_tensor *ur_softplus(ur_tape *tp, ur_tensor *x) { return unary(tp, SOFTPLUS, x); }

/* y = min(max(x, lo), hi):  dx += dy where lo <= x <= hi (and where x is NaN), else 0 */
static void clamp_backward(ur_node *n)
{
    const float *restrict x = n->in[0]->val, *restrict dy = n->out->grad;
    const float lo = n->f[0], hi = n->f[1];
    const size_t len = ur_numel(n->out);
    float *restrict dx = ur_grad(n->in[0]);
    for (size_t k = 0; k < len; k++) dx[k] += dy[k] * (1.0f - (float)((x[k] < lo) | (x[k] > hi)));
}
static const ur_op clamp_op = {"clamp", clamp_backward};

ur_tensor *ur_clamp(ur_tape *tp, ur_tensor *x, float lo, float hi)
{
    if (!ur_op_begin(tp, "clamp", 1, x)) return ur_tape_poison(tp);
    if (!(lo <= hi))
        return ur_tape_fail(tp, "clamp: bounds [%g, %g] are not ordered (lo <= hi)", (double)lo,
                            (double)hi);
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    if (!y) return ur_tape_poison(tp);
    for (size_t k = 0; k < ur_numel(y); k++) {
        float v = x->val[k];
        y->val[k] = v < lo ? lo : v > hi ? hi : v;
    }
    ur_node *nd = ur_record(tp, &clamp_op, y, 1, x);
    if (nd) { nd->f[0] = lo; nd->f[1] = hi; }
    return y;
}

/* y = x + s:  dx += dy */
static void add_scalar_backward(ur_node *n)
{
    const float *dy = n->out->grad;
    float *dx = ur_grad(n->in[0]);
    for (size_t k = 0; k < ur_numel(n->out); k++) dx[k] += dy[k];
}
static const ur_op add_scalar_op = {"add_scalar", add_scalar_backward};

ur_tensor *ur_add_scalar(ur_tape *tp, ur_tensor *x, float s)
{
    if (!ur_op_begin(tp, "add_scalar", 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    if (!y) return ur_tape_poison(tp);
    for (size_t k = 0; k < ur_numel(y); k++) y->val[k] = x->val[k] + s;
    ur_record(tp, &add_scalar_op, y, 1, x);
    return y;
}
