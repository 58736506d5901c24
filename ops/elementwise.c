/* Element-wise arithmetic: scale, one_minus, sum (add, sub, mul, div and the bias add are in
 * ops/broadcast.c). */
#include "ops/ur_ops.h"

/* Adds s * g into x's gradient when x needs one. */
static void acc(ur_tensor *x, const float *g, float s, size_t n)
{
    if (!x->requires_grad) return;
    float *dx = ur_grad(x);
    for (size_t k = 0; k < n; k++) dx[k] += s * g[k];
}

/* y = s a:  da += s dy */
static void scale_backward(ur_node *n) { acc(n->in[0], n->out->grad, n->f[0], ur_numel(n->out)); }
static const ur_op scale_op = {"scale", scale_backward};

ur_tensor *ur_scale(ur_tape *tp, ur_tensor *a, float s)
{
    if (!ur_op_begin(tp, "scale", 1, a)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, a->rows, a->cols);
    if (!y) return ur_tape_poison(tp);
    for (size_t k = 0; k < ur_numel(y); k++) y->val[k] = s * a->val[k];
    ur_node *nd = ur_record(tp, &scale_op, y, 1, a);
    if (nd) nd->f[0] = s;
    return y;
}

/* y = 1 - x:  dx -= dy */
static void one_minus_backward(ur_node *n) { acc(n->in[0], n->out->grad, -1.0f, ur_numel(n->out)); }
static const ur_op one_minus_op = {"one_minus", one_minus_backward};

ur_tensor *ur_one_minus(ur_tape *tp, ur_tensor *x)
{
    if (!ur_op_begin(tp, "one_minus", 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    if (!y) return ur_tape_poison(tp);
    for (size_t k = 0; k < ur_numel(y); k++) y->val[k] = 1.0f - x->val[k];
    ur_record(tp, &one_minus_op, y, 1, x);
    return y;
}

/* y = sum x:  dx += dy (a scalar, broadcast) */
static void sum_backward(ur_node *n)
{
    ur_tensor *x = n->in[0];
    float *dx = ur_grad(x);
    float g = n->out->grad[0];
    for (size_t k = 0; k < ur_numel(x); k++) dx[k] += g;
}
static const ur_op sum_op = {"sum", sum_backward};

ur_tensor *ur_sum(ur_tape *tp, ur_tensor *x)
{
    if (!ur_op_begin(tp, "sum", 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, 1, 1);
    if (!y) return ur_tape_poison(tp);
    double s = 0;
    for (size_t k = 0; k < ur_numel(x); k++) s += x->val[k];
    y->val[0] = (float)s;
    y->exact = s; /* the gradient check reads the sum before rounding */
    y->has_exact = 1;
    ur_record(tp, &sum_op, y, 1, x);
    return y;
}
