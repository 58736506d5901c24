/* Column concat / slice / split and row concat. Row slices are zero-copy views (ur_rows);
 * column slices are copies because a column block of a row-major matrix is not contiguous. */
#include "ops/ur_ops.h"

#include <string.h>

#include "ops/colsum.h"

/* y = [x_0 | x_1 | ...]:  dx_i += the columns of dy that x_i filled */
static void concat_cols_backward(ur_node *n)
{
    ur_tensor *y = n->out;
    int c0 = 0;
    for (int i = 0; i < n->n_in; i++) {
        ur_tensor *x = n->in[i];
        if (x->requires_grad) {
            float *dx = ur_grad(x);
            for (int r = 0; r < y->rows; r++) {
                const float *g = y->grad + (size_t)r * y->cols + c0;
                float *d = dx + (size_t)r * x->cols;
                for (int j = 0; j < x->cols; j++) d[j] += g[j];
            }
        }
        c0 += x->cols;
    }
}
static const ur_op concat_cols_op = {"concat_cols", concat_cols_backward};

ur_tensor *ur_concat_cols(ur_tape *tp, int n, ur_tensor *const *x)
{
    if (!ur_op_begin_array(tp, "concat_cols", n, x)) return ur_tape_poison(tp);
    int cols = 0;
    for (int i = 0; i < n; i++) {
        if (x[i]->rows != x[0]->rows)
            return ur_shape_error(tp, "concat_cols", "row counts differ", x[0], x[i]);
        cols += x[i]->cols;
    }
    ur_tensor *y = ur_tensor_new(tp, x[0]->rows, cols);
    if (!y) return ur_tape_poison(tp);
    for (int r = 0; r < y->rows; r++) {
        float *dst = y->val + (size_t)r * cols;
        for (int i = 0; i < n; i++) {
            memcpy(dst, x[i]->val + (size_t)r * x[i]->cols, (size_t)x[i]->cols * sizeof(float));
            dst += x[i]->cols;
        }
    }
    ur_record_array(tp, &concat_cols_op, y, n, x);
    return y;
}

/* y = x[:, c0:c0+k]:  dx[:, c0:c0+k] += dy */
static void cols_backward(ur_node *n)
{
    ur_tensor *x = n->in[0], *y = n->out;
    float *dx = ur_grad(x);
    for (int r = 0; r < y->rows; r++) {
        const float *g = y->grad + (size_t)r * y->cols;
        float *d = dx + (size_t)r * x->cols + n->i[0];
        for (int j = 0; j < y->cols; j++) d[j] += g[j];
    }
}
static const ur_op cols_op = {"cols", cols_backward};

ur_tensor *ur_cols(ur_tape *tp, ur_tensor *x, int col0, int k)
{
    if (!ur_op_begin(tp, "cols", 1, x)) return ur_tape_poison(tp);
    if (col0 < 0 || k <= 0 || col0 > x->cols - k)
        return ur_tape_fail(tp, "cols: columns [%d, %d) are outside a %dx%d tensor", col0, col0 + k,
                            x->rows, x->cols);
    ur_tensor *y = ur_tensor_new(tp, x->rows, k);
    if (!y) return ur_tape_poison(tp);
    for (int r = 0; r < x->rows; r++)
        memcpy(y->val + (size_t)r * k, x->val + (size_t)r * x->cols + col0, (size_t)k * sizeof(float));
    ur_node *nd = ur_record(tp, &cols_op, y, 1, x);
    if (nd) nd->i[0] = col0;
    return y;
}

int ur_split_cols(ur_tape *tp, ur_tensor *x, int n, ur_tensor **out)
{
    if (!ur_op_begin(tp, "split_cols", 1, x)) return -1;
    if (!out || n <= 0 || x->cols % n != 0) {
        ur_tape_fail(tp, "split_cols: cannot split %dx%d into %d equal column blocks", x->rows,
                     x->cols, n);
        return -1;
    }
    int w = x->cols / n;
    for (int i = 0; i < n; i++) out[i] = ur_cols(tp, x, i * w, w);
    return ur_tape_error(tp) ? -1 : 0;
}

/* y = [x_0 ; x_1 ; ...]:  dx_i += its row block of dy */
static void concat_rows_backward(ur_node *n)
{
    const float *g = n->out->grad;
    for (int i = 0; i < n->n_in; i++) {
        ur_tensor *x = n->in[i];
        size_t len = ur_numel(x);
        if (x->requires_grad) {
            float *dx = ur_grad(x);
            for (size_t k = 0; k < len; k++) dx[k] += g[k];
        }
        g += len;
    }
}
static const ur_op concat_rows_op = {"concat_rows", concat_rows_backward};

ur_tensor *ur_concat_rows(ur_tape *tp, int n, ur_tensor *const *x)
{
    if (!ur_op_begin_array(tp, "concat_rows", n, x)) return ur_tape_poison(tp);
    int rows = 0;
    for (int i = 0; i < n; i++) {
        if (x[i]->cols != x[0]->cols)
            return ur_shape_error(tp, "concat_rows", "column counts differ", x[0], x[i]);
        rows += x[i]->rows;
    }
    ur_tensor *y = ur_tensor_new(tp, rows, x[0]->cols);
    if (!y) return ur_tape_poison(tp);
    float *dst = y->val;
    for (int i = 0; i < n; i++) {
        memcpy(dst, x[i]->val, ur_numel(x[i]) * sizeof(float));
        dst += ur_numel(x[i]);
    }
    ur_record_array(tp, &concat_rows_op, y, n, x);
    return y;
}

/* 1 when x is y itself or a row view of it (through views of views) starting at element off:
 * then x's gradient is y's own. (The same memory alone is not enough: an unroll's H may share
 * a projection's values while each keeps its gradient.) */
static int is_block_of(const ur_tensor *x, const ur_tensor *y, size_t off)
{
    size_t at = 0;
    while (x != y && x->base) {
        at += x->offset;
        x = x->base;
    }
    return x == y && at == off;
}

/* out = [x_0 ; x_1 ; ...] in out's own rows:  dx_i += its row block of dout, except for an x_i
 * that already is that row block (an op wrote it in place): its gradient is out's own. */
static void concat_rows_into_backward(ur_node *n)
{
    const ur_tensor *y = n->out;
    size_t off = 0;
    for (int i = 0; i < n->n_in; i++) {
        ur_tensor *x = n->in[i];
        size_t len = ur_numel(x);
        if (x->requires_grad && !is_block_of(x, y, off)) {
            float *dx = ur_grad(x);
            const float *g = y->grad + off;
            for (size_t k = 0; k < len; k++) dx[k] += g[k];
        }
        off += len;
    }
}
static const ur_op concat_rows_into_op = {"concat_rows_into", concat_rows_into_backward};

ur_tensor *ur_concat_rows_into(ur_tape *tp, int n, ur_tensor *const *x, ur_tensor *out)
{
    if (!ur_op_begin_array(tp, "concat_rows_into", n, x)) return ur_tape_poison(tp);
    if (!ur_op_begin(tp, "concat_rows_into", 1, out)) return ur_tape_poison(tp);
    int rows = 0;
    for (int i = 0; i < n; i++) {
        if (x[i]->cols != out->cols)
            return ur_shape_error(tp, "concat_rows_into", "column counts differ", out, x[i]);
        rows += x[i]->rows;
    }
    if (rows != out->rows || out->node || !out->tape)
        return ur_tape_fail(tp, "concat_rows_into: out must be a %dx%d tensor of the tape that no "
                            "op has written; got %dx%d", rows, out->cols, out->rows, out->cols);
    const float *end = out->val + ur_numel(out);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t len = ur_numel(x[i]);
        const float *src = x[i]->val, *dst = out->val + off;
        if (src != dst) {
            if (src + len > out->val && src < end)
                return ur_tape_fail(tp, "concat_rows_into: input %d overlaps other rows of out",
                                    i + 1);
            memcpy(out->val + off, src, len * sizeof(float));
        }
        off += len;
    }
    ur_record_array(tp, &concat_rows_into_op, out, n, x);
    return out;
}

/* y = b repeated on every row (rows x n from 1 x n):  db += the column sums of dy (in double,
 * ops/colsum.h: a GRU's recurrent bias is repeated over T*B rows). */
static void repeat_rows_backward(ur_node *n)
{
    const ur_tensor *y = n->out;
    ur_add_column_sums(ur_grad(n->in[0]), y->grad, y->rows, y->cols);
}
static const ur_op repeat_rows_op = {"repeat_rows", repeat_rows_backward};

ur_tensor *ur_repeat_rows(ur_tape *tp, ur_tensor *b, int rows)
{
    if (!ur_op_begin(tp, "repeat_rows", 1, b)) return ur_tape_poison(tp);
    if (b->rows != 1 || rows <= 0)
        return ur_tape_fail(tp, "repeat_rows: needs a 1 x n row and rows > 0, got %dx%d and %d",
                            b->rows, b->cols, rows);
    ur_tensor *y = ur_tensor_new(tp, rows, b->cols);
    if (!y) return ur_tape_poison(tp);
    for (int r = 0; r < rows; r++)
        memcpy(y->val + (size_t)r * b->cols, b->val, (size_t)b->cols * sizeof(float));
    ur_record(tp, &repeat_rows_op, y, 1, b);
    return y;
}
