/* Reductions of an m x n tensor x, summed in double:
 *
 *     row_sum    y_r = sum_j x_rj          (m x 1)     dx_rj += dy_r
 *     row_mean   y_r = sum_j x_rj / n      (m x 1)     dx_rj += dy_r / n
 *     col_sum    y_j = sum_r x_rj          (1 x n)     dx_rj += dy_j
 *     col_mean   y_j = sum_r x_rj / m      (1 x n)     dx_rj += dy_j / m
 *     mean       y = sum_rj x_rj / (m n)   (1 x 1)     dx_rj += dy / (m n)
 * (The total sum, ur_sum, is in ops/elementwise.c.) A NaN anywhere in a row / column / the
 * tensor makes that sum NaN.
 */
#include "ops/ur_ops.h"

/* Columns are summed a block at a time into doubles on the stack, row after row, so that the
 * inner loop runs along a row (contiguous) and no scratch comes from the tape. */
#define COL_BLOCK 256

/* The gradient of a row reduction: dx_rj += s dy_r */
static void row_reduce_backward(ur_node *n)
{
    ur_tensor *x = n->in[0];
    const float *dy = n->out->grad;
    float s = n->f[0], *dx = ur_grad(x);
    for (int r = 0; r < x->rows; r++) {
        float g = s * dy[r];
        float *d = dx + (size_t)r * x->cols;
        for (int j = 0; j < x->cols; j++) d[j] += g;
    }
}
static const ur_op row_sum_op = {"row_sum", row_reduce_backward};
static const ur_op row_mean_op = {"row_mean", row_reduce_backward};

static ur_tensor *row_reduce(ur_tape *tp, const ur_op *op, ur_tensor *x, int mean)
{
    if (!ur_op_begin(tp, op->name, 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, x->rows, 1);
    if (!y) return ur_tape_poison(tp);
    double s = mean ? 1.0 / x->cols : 1.0;
    for (int r = 0; r < x->rows; r++) {
        const float *xr = x->val + (size_t)r * x->cols;
        double t = 0;
        for (int j = 0; j < x->cols; j++) t += xr[j];
        y->val[r] = (float)(t * s);
    }
    ur_node *nd = ur_record(tp, op, y, 1, x);
    if (nd) nd->f[0] = (float)s;
    return y;
}

ur_tensor *ur_row_sum(ur_tape *tp, ur_tensor *x) { return row_reduce(tp, &row_sum_op, x, 0); }
ur_tensor *ur_row_mean(ur_tape *tp, ur_tensor *x) { return row_reduce(tp, &row_mean_op, x, 1); }

/* The gradient of a column reduction: dx_rj += s dy_j */
static void col_reduce_backward(ur_node *n)
{
    ur_tensor *x = n->in[0];
    const float *dy = n->out->grad;
    float s = n->f[0], *dx = ur_grad(x);
    for (int r = 0; r < x->rows; r++) {
        float *d = dx + (size_t)r * x->cols;
        for (int j = 0; j < x->cols; j++) d[j] += s * dy[j];
    }
}
static const ur_op col_sum_op = {"col_sum", col_reduce_backward};
static const ur_op col_mean_op = {"col_mean", col_reduce_backward};

static ur_tensor *col_reduce(ur_tape *tp, const ur_op *op, ur_tensor *x, int mean)
{
    if (!ur_op_begin(tp, op->name, 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, 1, x->cols);
    if (!y) return ur_tape_poison(tp);
    double s = mean ? 1.0 / x->rows : 1.0;
    double acc[COL_BLOCK];
    for (int j0 = 0; j0 < x->cols; j0 += COL_BLOCK) {
        int w = x->cols - j0 < COL_BLOCK ? x->cols - j0 : COL_BLOCK;
        for (int j = 0; j < w; j++) acc[j] = 0;
        for (int r = 0; r < x->rows; r++) {
            const float *xr = x->val + (size_t)r * x->cols + j0;
            for (int j = 0; j < w; j++) acc[j] += xr[j];
        }
        for (int j = 0; j < w; j++) y->val[j0 + j] = (float)(acc[j] * s);
    }
    ur_node *nd = ur_record(tp, op, y, 1, x);
    if (nd) nd->f[0] = (float)s;
    return y;
}

ur_tensor *ur_col_sum(ur_tape *tp, ur_tensor *x) { return col_reduce(tp, &col_sum_op, x, 0); }
ur_tensor *ur_col_mean(ur_tape *tp, ur_tensor *x) { return col_reduce(tp, &col_mean_op, x, 1); }

/* y = mean x:  dx += dy / (m n) */
static void mean_backward(ur_node *n)
{
    ur_tensor *x = n->in[0];
    float g = n->out->grad[0] * n->f[0], *dx = ur_grad(x);
    for (size_t k = 0; k < ur_numel(x); k++) dx[k] += g;
}
static const ur_op mean_op = {"mean", mean_backward};

ur_tensor *ur_mean(ur_tape *tp, ur_tensor *x)
{
    if (!ur_op_begin(tp, "mean", 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, 1, 1);
    if (!y) return ur_tape_poison(tp);
    double t = 0;
    for (size_t k = 0; k < ur_numel(x); k++) t += x->val[k];
    y->exact = t / (double)ur_numel(x);
    y->has_exact = 1;
    y->val[0] = (float)y->exact;
    ur_node *nd = ur_record(tp, &mean_op, y, 1, x);
    if (nd) nd->f[0] = (float)(1.0 / (double)ur_numel(x));
    return y;
}
