/* Layout ops: transpose, reshape, and the reorder of a sequence between time-major and
 * batch-major. None computes anything; each moves values (or, reshape, only the shape).
 *
 * A sequence of T steps of B rows is time-major when stacked by time (row t*B + b, the
 * layout of ur_unroll: step t is a row block) and batch-major when stacked by sequence (row
 * b*T + t: sequence b is a row block, as per-sequence attention wants it). Both reorders are
 * one op: view the P*Q rows as a P x Q grid of rows, row p*Q + q, and move row (p, q) to row
 * q*P + p. time -> batch is P = T, Q = B; batch -> time is P = B, Q = T. Its gradient is the
 * reorder back: dx[p*Q + q] += dy[q*P + p].
 */
#include "ops/ur_ops.h"

#include <string.h>

/* ---- Row-block reorder ------------------------------------------------------------------- */

static void reorder_backward(ur_node *nd)
{
    ur_tensor *x = nd->in[0], *y = nd->out;
    int P = nd->i[0], Q = nd->i[1], F = x->cols;
    float *dx = ur_grad(x);
    for (int p = 0; p < P; p++)
        for (int q = 0; q < Q; q++) {
            float *d = dx + ((size_t)p * Q + q) * F;
            const float *g = y->grad + ((size_t)q * P + p) * F;
            for (int j = 0; j < F; j++) d[j] += g[j];
        }
}
static const ur_op time_to_batch_op = {"time_to_batch", reorder_backward};
static const ur_op batch_to_time_op = {"batch_to_time", reorder_backward};

/* steps_first: x is time-major (P = T blocks of Q = B rows); else batch-major. */
static ur_tensor *reorder(ur_tape *tp, const ur_op *op, ur_tensor *x, int T, int steps_first)
{
    if (!ur_op_begin(tp, op->name, 1, x)) return ur_tape_poison(tp);
    if (T <= 0 || x->rows % T != 0)
        return ur_tape_fail(tp, "%s: %dx%d is not T*B rows with T = %d", op->name, x->rows,
                            x->cols, T);
    int B = x->rows / T, P = steps_first ? T : B, Q = steps_first ? B : T, F = x->cols;
    ur_tensor *y = ur_tensor_new(tp, x->rows, F);
    if (!y) return ur_tape_poison(tp);
    for (int p = 0; p < P; p++)
        for (int q = 0; q < Q; q++)
            memcpy(y->val + ((size_t)q * P + p) * F, x->val + ((size_t)p * Q + q) * F,
                   (size_t)F * sizeof(float));
    ur_node *nd = ur_record(tp, op, y, 1, x);
    if (nd) { nd->i[0] = P; nd->i[1] = Q; }
    return y;
}

ur_tensor *ur_time_to_batch(ur_tape *tp, ur_tensor *x, int T)
{
    return reorder(tp, &time_to_batch_op, x, T, 1);
}

ur_tensor *ur_batch_to_time(ur_tape *tp, ur_tensor *x, int T)
{
    return reorder(tp, &batch_to_time_op, x, T, 0);
}

/* ---- Transpose --------------------------------------------------------------------------- */

/* out (cols x rows) += or = in^T, in rows x cols; in tiles, so that both sides stay in cache. */
#define TILE 32
static void transpose_into(int rows, int cols, const float *restrict in, float *restrict out,
                           int accumulate)
{
    for (int r0 = 0; r0 < rows; r0 += TILE)
        for (int c0 = 0; c0 < cols; c0 += TILE) {
            int r1 = r0 + TILE < rows ? r0 + TILE : rows, c1 = c0 + TILE < cols ? c0 + TILE : cols;
            for (int c = c0; c < c1; c++) {
                float *o = out + (size_t)c * rows;
                for (int r = r0; r < r1; r++) {
                    float v = in[(size_t)r * cols + c];
                    o[r] = accumulate ? o[r] + v : v;
                }
            }
        }
}

/* y = x^T:  dx += dy^T */
static void transpose_backward(ur_node *nd)
{
    const ur_tensor *y = nd->out;
    transpose_into(y->rows, y->cols, y->grad, ur_grad(nd->in[0]), 1);
}
static const ur_op transpose_op = {"transpose", transpose_backward};

ur_tensor *ur_transpose(ur_tape *tp, ur_tensor *x)
{
    if (!ur_op_begin(tp, "transpose", 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, x->cols, x->rows);
    if (!y) return ur_tape_poison(tp);
    transpose_into(x->rows, x->cols, x->val, y->val, 0);
    ur_record(tp, &transpose_op, y, 1, x);
    return y;
}

/* ---- Reshape ----------------------------------------------------------------------------- */

ur_tensor *ur_reshape(ur_tape *tp, ur_tensor *x, int rows, int cols)
{
    if (!ur_op_begin(tp, "reshape", 1, x)) return ur_tape_poison(tp);
    if (rows <= 0 || cols <= 0 || (size_t)rows * (size_t)cols != ur_numel(x))
        return ur_tape_fail(tp, "reshape: cannot view %dx%d as %dx%d", x->rows, x->cols, rows,
                            cols);
    ur_tensor *v = ur_tensor_header(tp);
    if (!v) return ur_tape_poison(tp);
    v->rows = rows;
    v->cols = cols;
    v->val = x->val;
    v->base = x; /* a view at offset 0: its gradient is x's, element for element */
    v->requires_grad = x->requires_grad;
    v->grad = x->grad;
    return v;
}
