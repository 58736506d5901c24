/* Row masks, for batches of sequences of uneven lengths.
 *
 * B sequences padded to T steps are time-stacked (row t*B + b is step t of sequence b). Their
 * mask is the T*B x 1 column m with m[t*B + b] = 1 when t < length_b and 0 past it; row block
 * t of it (ur_rows) is step t's B x 1 column. Two ops use such a column (R rows; a, b, x and
 * y are R x C):
 *
 *     select rows:  y[r] = m[r] ? a[r] : b[r]      da[r] += m[r] dy[r]
 *                                                  db[r] += (1 - m[r]) dy[r]
 *     mask rows:    y[r] = m[r] ? x[r] : 0         dx[r] += m[r] dy[r]
 *
 * An unroll carries a finished row's state with select (h_t = m h_new + (1 - m) h_{t-1}) and
 * zeroes its output with mask, written straight into the step's rows of the stacked H. They are written as selections, not as m a + (1 - m) b: a NaN
 * or Inf in a row that is not chosen (what a cell made of a padded step) stays out of the
 * result and out of every gradient, where the arithmetic form would let it in (0 * Inf = NaN).
 * The mask is a constant: it never receives a gradient. */
#include "ops/ur_ops.h"

#include <string.h>

#include "ops/mask.h"

ur_tensor *ur_length_mask(ur_tape *tp, int T, int B, const int *lengths)
{
    if (!ur_op_begin(tp, "length_mask", 0)) return ur_tape_poison(tp);
    if (T <= 0 || B <= 0 || !lengths)
        return ur_tape_fail(tp, "length_mask: needs T > 0, B > 0 and B lengths; got T %d, B %d%s",
                            T, B, lengths ? "" : ", lengths NULL");
    for (int b = 0; b < B; b++)
        if (lengths[b] < 0 || lengths[b] > T)
            return ur_tape_fail(tp, "length_mask: sequence %d has length %d, outside [0, %d]", b,
                                lengths[b], T);
    ur_tensor *m = ur_input(tp, T * B, 1);
    if (ur_tape_error(tp)) return ur_tape_poison(tp);
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) m->val[(size_t)t * B + b] = t < lengths[b] ? 1.0f : 0.0f;
    return m;
}

int ur_mask_check(ur_tape *tp, const char *op, const ur_tensor *mask, int rows)
{
    if (mask->rows != rows || mask->cols != 1) {
        ur_tape_fail(tp, "%s: the mask is %dx%d, expected a %dx1 column", op, mask->rows,
                     mask->cols, rows);
        return -1;
    }
    for (int r = 0; r < rows; r++)
        if (mask->val[r] != 0.0f && mask->val[r] != 1.0f) {
            ur_tape_fail(tp, "%s: mask row %d is %g; a row mask holds 0 or 1", op, r,
                         (double)mask->val[r]);
            return -1;
        }
    return 0;
}

/* Adds row r of g into dx for the rows where m[r] == keep (1: chosen rows, 0: the others). */
static void add_rows_where(ur_tensor *x, const float *g, const float *m, float keep)
{
    if (!x->requires_grad) return;
    float *dx = ur_grad(x);
    size_t C = (size_t)x->cols;
    for (int r = 0; r < x->rows; r++) {
        if (m[r] != keep) continue;
        float *d = dx + (size_t)r * C;
        const float *gr = g + (size_t)r * C;
        for (size_t j = 0; j < C; j++) d[j] += gr[j];
    }
}

/* y[r] = m[r] ? a[r] : b[r]: the chosen rows' gradient goes to a, the others' to b. */
static void select_rows_backward(ur_node *n)
{
    const float *m = n->aux;
    add_rows_where(n->in[0], n->out->grad, m, 1.0f);
    add_rows_where(n->in[1], n->out->grad, m, 0.0f);
}
static const ur_op select_rows_op = {"select_rows", select_rows_backward};

ur_tensor *ur_select_rows(ur_tape *tp, ur_tensor *mask, ur_tensor *a, ur_tensor *b)
{
    if (!ur_op_begin(tp, "select_rows", 3, mask, a, b)) return ur_tape_poison(tp);
    if (a->rows != b->rows || a->cols != b->cols)
        return ur_shape_error(tp, "select_rows", "a and b differ", a, b);
    if (ur_mask_check(tp, "select_rows", mask, a->rows) != 0) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, a->rows, a->cols);
    if (!y) return ur_tape_poison(tp);
    size_t C = (size_t)a->cols;
    for (int r = 0; r < a->rows; r++) {
        const ur_tensor *src = mask->val[r] != 0.0f ? a : b;
        memcpy(y->val + (size_t)r * C, src->val + (size_t)r * C, C * sizeof(float));
    }
    ur_node *nd = ur_record(tp, &select_rows_op, y, 2, a, b);
    if (nd) nd->aux = mask->val;
    return y;
}

/* y[r] = m[r] ? x[r] : 0 */
static void mask_rows_backward(ur_node *n)
{
    add_rows_where(n->in[0], n->out->grad, n->aux, 1.0f);
}
static const ur_op mask_rows_op = {"mask_rows", mask_rows_backward};

ur_tensor *ur_mask_rows(ur_tape *tp, ur_tensor *x, ur_tensor *mask)
{
    if (!ur_op_begin(tp, "mask_rows", 2, x, mask)) return ur_tape_poison(tp);
    if (ur_mask_check(tp, "mask_rows", mask, x->rows) != 0) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    if (!y) return ur_tape_poison(tp);
    size_t C = (size_t)x->cols;
    for (int r = 0; r < x->rows; r++) {
        float *yr = y->val + (size_t)r * C;
        if (mask->val[r] != 0.0f) memcpy(yr, x->val + (size_t)r * C, C * sizeof(float));
        else memset(yr, 0, C * sizeof(float));
    }
    ur_node *nd = ur_record(tp, &mask_rows_op, y, 1, x);
    if (nd) nd->aux = mask->val;
    return y;
}

ur_tensor *ur_mask_rows_into(ur_tape *tp, ur_tensor *x, ur_tensor *mask, ur_tensor *out)
{
    if (!ur_op_begin(tp, "mask_rows_into", 3, x, mask, out)) return ur_tape_poison(tp);
    if (ur_mask_check(tp, "mask_rows_into", mask, x->rows) != 0) return ur_tape_poison(tp);
    if (out->rows != x->rows || out->cols != x->cols || out->node || !out->tape)
        return ur_tape_fail(tp, "mask_rows_into: out must be a %dx%d tensor of the tape that no "
                            "op has written; got %dx%d", x->rows, x->cols, out->rows, out->cols);
    const float *xe = x->val + ur_numel(x), *oe = out->val + ur_numel(out);
    if (x->val < oe && out->val < xe)
        return ur_tape_fail(tp, "mask_rows_into: x and out overlap");
    size_t C = (size_t)x->cols;
    for (int r = 0; r < x->rows; r++) {
        float *yr = out->val + (size_t)r * C;
        if (mask->val[r] != 0.0f) memcpy(yr, x->val + (size_t)r * C, C * sizeof(float));
        else memset(yr, 0, C * sizeof(float));
    }
    ur_node *nd = ur_record(tp, &mask_rows_op, out, 1, x);
    if (nd) nd->aux = mask->val;
    return out;
}
