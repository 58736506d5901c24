/* Activations. Each backward uses the saved output: tanh' = 1 - y^2, sigmoid' = y (1 - y),
 * relu' = [y > 0]. NaN in gives NaN out, forward and backward. */
#include "ops/ur_ops.h"

#include "ops/fastmath.h"

UR_VECTOR_BODY void tanh_kernel_body(float *restrict y, const float *restrict x, size_t n)
{
    for (size_t k = 0; k < n; k++) y[k] = ur_tanh1(x[k]);
}
UR_VECTOR_VOID(tanh_kernel,
               (float *restrict y, const float *restrict x, size_t n),
               (y, x, n))

/* tanh in place (restrict forbids passing the same array as both y and x above) */
UR_VECTOR_BODY void tanh_kernel_inplace_body(float *restrict y, size_t n)
{
    for (size_t k = 0; k < n; k++) y[k] = ur_tanh1(y[k]);
}
UR_VECTOR_VOID(tanh_kernel_inplace, (float *restrict y, size_t n), (y, n))

UR_VECTOR_BODY void sigmoid_kernel_body(float *restrict y, const float *restrict x, size_t n)
{
    for (size_t k = 0; k < n; k++) y[k] = ur_sigmoid1(x[k]);
}
UR_VECTOR_VOID(sigmoid_kernel,
               (float *restrict y, const float *restrict x, size_t n),
               (y, x, n))

static ur_tensor *unary(ur_tape *tp, const char *name, ur_tensor *x)
{
    if (!ur_op_begin(tp, name, 1, x)) return NULL;
    return ur_tensor_new(tp, x->rows, x->cols);
}

/* dx += dy (1 - y^2); add 0 (the first write of dx, not filled): dx = that */
UR_VECTOR_BODY void tanh_backward_kernel_body(float *restrict dx, const float *restrict y,
                                              const float *restrict dy, size_t n, int add)
{
    if (add)
        for (size_t k = 0; k < n; k++) dx[k] += dy[k] * (1.0f - y[k] * y[k]);
    else
        for (size_t k = 0; k < n; k++) dx[k] = dy[k] * (1.0f - y[k] * y[k]);
}
UR_VECTOR_VOID(tanh_backward_kernel,
               (float *restrict dx, const float *restrict y, const float *restrict dy, size_t n,
                int add),
               (dx, y, dy, n, add))

static void tanh_backward(ur_node *n)
{
    int fresh;
    float *dx = ur_grad_write(n->in[0], &fresh);
    tanh_backward_kernel(dx, n->out->val, n->out->grad, ur_numel(n->out), !fresh);
}
static const ur_op tanh_op = {"tanh", tanh_backward};

ur_tensor *ur_tanh(ur_tape *tp, ur_tensor *x)
{
    ur_tensor *y = unary(tp, "tanh", x);
    if (!y) return ur_tape_poison(tp);
    tanh_kernel(y->val, x->val, ur_numel(y));
    ur_record(tp, &tanh_op, y, 1, x);
    return y;
}

ur_tensor *ur_tanh_into(ur_tape *tp, ur_tensor *x, ur_tensor *out)
{
    if (!out) return ur_tanh(tp, x);
    if (!ur_op_begin(tp, "tanh_into", 2, x, out)) return ur_tape_poison(tp);
    if (out->rows != x->rows || out->cols != x->cols || out->node || !out->tape ||
        (out->val == x->val && ur_tensor_root(out) == ur_tensor_root(x)))
        return ur_tape_fail(tp, "tanh_into: out must be a %dx%d tensor of the tape that no op "
                            "has written and that is not x; got %dx%d", x->rows, x->cols,
                            out->rows, out->cols);
    if (out->val == x->val) tanh_kernel_inplace(out->val, ur_numel(out));
    else tanh_kernel(out->val, x->val, ur_numel(out));
    ur_record(tp, &tanh_op, out, 1, x);
    return out;
}

/* dx += dy y (1 - y); add 0 (the first write of dx, not filled): dx = that */
UR_VECTOR_BODY void sigmoid_backward_kernel_body(float *restrict dx, const float *restrict y,
                                                 const float *restrict dy, size_t n, int add)
{
    if (add)
        for (size_t k = 0; k < n; k++) dx[k] += dy[k] * y[k] * (1.0f - y[k]);
    else
        for (size_t k = 0; k < n; k++) dx[k] = dy[k] * y[k] * (1.0f - y[k]);
}
UR_VECTOR_VOID(sigmoid_backward_kernel,
               (float *restrict dx, const float *restrict y, const float *restrict dy, size_t n,
                int add),
               (dx, y, dy, n, add))

static void sigmoid_backward(ur_node *n)
{
    int fresh;
    float *dx = ur_grad_write(n->in[0], &fresh);
    sigmoid_backward_kernel(dx, n->out->val, n->out->grad, ur_numel(n->out), !fresh);
}
static const ur_op sigmoid_op = {"sigmoid", sigmoid_backward};

ur_tensor *ur_sigmoid(ur_tape *tp, ur_tensor *x)
{
    ur_tensor *y = unary(tp, "sigmoid", x);
    if (!y) return ur_tape_poison(tp);
    sigmoid_kernel(y->val, x->val, ur_numel(y));
    ur_record(tp, &sigmoid_op, y, 1, x);
    return y;
}

/* dx += dy [y > 0] */
static void relu_backward(ur_node *n)
{
    const float *y = n->out->val, *dy = n->out->grad;
    float *dx = ur_grad(n->in[0]);
    /* y is NaN where x was: the gradient is NaN there too, not a silent 0. */
    for (size_t k = 0; k < ur_numel(n->out); k++)
        dx[k] += y[k] > 0.0f ? dy[k] : y[k] == 0.0f ? 0.0f : y[k];
}
static const ur_op relu_op = {"relu", relu_backward};

ur_tensor *ur_relu(ur_tape *tp, ur_tensor *x)
{
    ur_tensor *y = unary(tp, "relu", x);
    if (!y) return ur_tape_poison(tp);
    for (size_t k = 0; k < ur_numel(y); k++) { /* NaN passes through, as in every op */
        float v = x->val[k];
        y->val[k] = v > 0.0f || v != v ? v : 0.0f;
    }
    ur_record(tp, &relu_op, y, 1, x);
    return y;
}
