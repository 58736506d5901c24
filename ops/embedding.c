/* Embedding lookup: y[r] = E[ids[r]] (gather); backward scatter-adds dy[r] into dE[ids[r]],
 * so a token seen twice in a batch gets both contributions. */
#include "ops/ur_ops.h"

#include <string.h>

static void embedding_backward(ur_node *n)
{
    ur_tensor *e = n->in[0], *y = n->out;
    const int *ids = n->aux;
    float *de = ur_grad(e);
    for (int r = 0; r < y->rows; r++) {
        const float *g = y->grad + (size_t)r * y->cols;
        float *d = de + (size_t)ids[r] * e->cols;
        for (int j = 0; j < y->cols; j++) d[j] += g[j];
    }
}
static const ur_op embedding_op = {"embedding", embedding_backward};

ur_tensor *ur_embedding(ur_tape *tp, ur_tensor *table, const int *ids, int n)
{
    if (!ur_op_begin(tp, "embedding", 1, table)) return ur_tape_poison(tp);
    if (!ids || n <= 0) return ur_tape_fail(tp, "embedding: needs n > 0 ids, got %d", n);
    for (int r = 0; r < n; r++)
        if (ids[r] < 0 || ids[r] >= table->rows)
            return ur_tape_fail(tp, "embedding: id %d at position %d is outside the %dx%d table",
                                ids[r], r, table->rows, table->cols);
    ur_tensor *y = ur_tensor_new(tp, n, table->cols);
    if (!y) return ur_tape_poison(tp);
    for (int r = 0; r < n; r++)
        memcpy(y->val + (size_t)r * y->cols, table->val + (size_t)ids[r] * table->cols,
               (size_t)table->cols * sizeof(float));
    ur_node *nd = ur_record(tp, &embedding_op, y, 1, table);
    if (nd) {
        int *saved = ur_tape_alloc(tp, (size_t)n * sizeof *saved);
        if (!saved) return ur_tape_poison(tp);
        memcpy(saved, ids, (size_t)n * sizeof *saved);
        nd->aux = saved;
    }
    return y;
}
