/* Element-wise arithmetic: add, sub, mul, scale, one_minus, bias broadcast, sum. */
#include "ops/ur_ops.h"

#include <string.h>
#include "ops/colsum.h"

static int same_shape(ur_tape *tp, const char *op, const ur_tensor *a, const ur_tensor *b)
{
    if (a->rows == b->rows && a->cols == b->cols) return 1;
    ur_shape_error(tp, op, "shapes differ", a, b);
    return 0;
}

/* Adds s * g into x's gradient when x needs one. */
static void acc(ur_tensor *x, const float *g, float s, size_t n)
{
    if (!x->requires_grad) return;
    float *dx = ur_grad(x);
    for (size_t k = 0; k < n; k++) dx[k] += s * g[k];
}

/* y = a + b:  da += dy,  db += dy */
static void add_backward(ur_node *n)
{
    acc(n->in[0], n->out->grad, 1.0f, ur_numel(n->out));
    acc(n->in[1], n->out->grad, 1.0f, ur_numel(n->out));
}
static const ur_op add_op = {"add", add_backward};

ur_tensor *ur_add(ur_tape *tp, ur_tensor *a, ur_tensor *b)
{
    if (!ur_op_begin(tp, "add", 2, a, b) || !same_shape(tp, "add", a, b)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, a->rows, a->cols);
    if (!y) return ur_tape_poison(tp);
    for (size_t k = 0; k < ur_numel(y); k++) y->val[k] = a->val[k] + b->val[k];
    ur_record(tp, &add_op, y, 2, a, b);
    return y;
}

/* y = a - b:  da += dy,  db -= dy */
static void sub_backward(ur_node *n)
{
    acc(n->in[0], n->out->grad, 1.0f, ur_numel(n->out));
    acc(n->in[1], n->out->grad, -1.0f, ur_numel(n->out));
}
static const ur_op sub_op = {"sub", sub_backward};

ur_tensor *ur_sub(ur_tape *tp, ur_tensor *a, ur_tensor *b)
{
    if (!ur_op_begin(tp, "sub", 2, a, b) || !same_shape(tp, "sub", a, b)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, a->rows, a->cols);
    if (!y) return ur_tape_poison(tp);
    for (size_t k = 0; k < ur_numel(y); k++) y->val[k] = a->val[k] - b->val[k];
    ur_record(tp, &sub_op, y, 2, a, b);
    return y;
}

/* y = a * b:  da += dy * b,  db += dy * a */
static void mul_backward(ur_node *n)
{
    ur_tensor *a = n->in[0], *b = n->in[1];
    const float *dy = n->out->grad;
    size_t len = ur_numel(n->out);
    if (a->requires_grad) {
        float *da = ur_grad(a);
        for (size_t k = 0; k < len; k++) da[k] += dy[k] * b->val[k];
    }
    if (b->requires_grad) {
        float *db = ur_grad(b);
        for (size_t k = 0; k < len; k++) db[k] += dy[k] * a->val[k];
    }
}
static const ur_op mul_op = {"mul", mul_backward};

ur_tensor *ur_mul(ur_tape *tp, ur_tensor *a, ur_tensor *b)
{
    if (!ur_op_begin(tp, "mul", 2, a, b) || !same_shape(tp, "mul", a, b)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, a->rows, a->cols);
    if (!y) return ur_tape_poison(tp);
    for (size_t k = 0; k < ur_numel(y); k++) y->val[k] = a->val[k] * b->val[k];
    ur_record(tp, &mul_op, y, 2, a, b);
    return y;
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

/* y[r] = x[r] + b:  dx += dy,  db += sum over rows of dy */
static void add_bias_backward(ur_node *n)
{
    ur_tensor *x = n->in[0], *b = n->in[1], *y = n->out;
    acc(x, y->grad, 1.0f, ur_numel(y));
    if (b->requires_grad) ur_add_column_sums(ur_grad(b), y->grad, y->rows, y->cols);
}
static const ur_op add_bias_op = {"add_bias", add_bias_backward};

ur_tensor *ur_add_bias(ur_tape *tp, ur_tensor *x, ur_tensor *b)
{
    if (!ur_op_begin(tp, "add_bias", 2, x, b)) return ur_tape_poison(tp);
    if (b->rows != 1 || b->cols != x->cols)
        return ur_shape_error(tp, "add_bias", "bias must be 1 x cols of x", x, b);
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    if (!y) return ur_tape_poison(tp);
    for (int r = 0; r < x->rows; r++) {
        const float *xr = x->val + (size_t)r * x->cols;
        float *yr = y->val + (size_t)r * x->cols;
        for (int j = 0; j < x->cols; j++) yr[j] = xr[j] + b->val[j];
    }
    ur_record(tp, &add_bias_op, y, 2, x, b);
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
