/* Row gather: y[r] = x[idx[r]] for r < n, an n x cols tensor. Backward scatter-adds dy[r] into
 * dx[idx[r]], so a row gathered twice gets both contributions and an ungathered row none.
 * x may be any tensor: a parameter table (ur_embedding, the lookup of token embeddings) or
 * an op's output whose gradient flows on (attention picking rows of a sequence). */
#include "ops/ur_ops.h"

#include <string.h>

static void gather_backward(ur_node *n)
{
    ur_tensor *x = n->in[0], *y = n->out;
    const int *idx = n->aux;
    float *dx = ur_grad(x);
    for (int r = 0; r < y->rows; r++) {
        const float *g = y->grad + (size_t)r * y->cols;
        float *d = dx + (size_t)idx[r] * x->cols;
        for (int j = 0; j < y->cols; j++) d[j] += g[j];
    }
}
static const ur_op gather_rows_op = {"gather_rows", gather_backward};
static const ur_op embedding_op = {"embedding", gather_backward};

/* what: the messages' words for an index and for x ("id" / "table", "index" / "tensor"). */
static ur_tensor *gather(ur_tape *tp, const ur_op *op, const char *what_idx, const char *what_x,
                         ur_tensor *x, const int *idx, int n)
{
    if (!ur_op_begin(tp, op->name, 1, x)) return ur_tape_poison(tp);
    if (!idx || n <= 0)
        return ur_tape_fail(tp, "%s: needs at least one %s, got n = %d", op->name, what_idx, n);
    for (int r = 0; r < n; r++)
        if (idx[r] < 0 || idx[r] >= x->rows)
            return ur_tape_fail(tp, "%s: %s %d at position %d is outside the %dx%d %s", op->name,
                                what_idx, idx[r], r, x->rows, x->cols, what_x);
    ur_tensor *y = ur_tensor_new(tp, n, x->cols);
    if (!y) return ur_tape_poison(tp);
    for (int r = 0; r < n; r++)
        memcpy(y->val + (size_t)r * y->cols, x->val + (size_t)idx[r] * x->cols,
               (size_t)x->cols * sizeof(float));
    ur_node *nd = ur_record(tp, op, y, 1, x);
    if (nd) {
        int *saved = ur_tape_alloc(tp, (size_t)n * sizeof *saved);
        if (!saved) return ur_tape_poison(tp);
        memcpy(saved, idx, (size_t)n * sizeof *saved);
        nd->aux = saved;
    }
    return y;
}

ur_tensor *ur_gather_rows(ur_tape *tp, ur_tensor *x, const int *idx, int n)
{
    return gather(tp, &gather_rows_op, "index", "tensor", x, idx, n);
}

ur_tensor *ur_embedding(ur_tape *tp, ur_tensor *table, const int *ids, int n)
{
    return gather(tp, &embedding_op, "id", "table", table, ids, n);
}
