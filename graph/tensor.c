/* Leaves and views on a tape: data inputs, detached copies, row-block views. */
#include "graph/ur_graph.h"

#include <string.h>

ur_tensor *ur_input(ur_tape *tp, int rows, int cols)
{
    if (!ur_op_begin(tp, "input", 0)) return ur_tape_poison(tp);
    ur_tensor *t = ur_tensor_new(tp, rows, cols);
    if (!t) return ur_tape_poison(tp);
    memset(t->val, 0, ur_numel(t) * sizeof(float));
    return t;
}

ur_tensor *ur_input_from(ur_tape *tp, int rows, int cols, const float *src)
{
    if (!ur_op_begin(tp, "input_from", 0)) return ur_tape_poison(tp);
    if (!src) return ur_tape_fail(tp, "input_from: source values are NULL");
    ur_tensor *t = ur_tensor_new(tp, rows, cols);
    if (!t) return ur_tape_poison(tp);
    memcpy(t->val, src, ur_numel(t) * sizeof(float));
    return t;
}

ur_tensor *ur_requires_grad(ur_tensor *t)
{
    if (t && !t->node && (!t->tape || t != ur_tape_poison(t->tape))) t->requires_grad = 1;
    return t;
}

ur_tensor *ur_detach(ur_tape *tp, const ur_tensor *t)
{
    if (!ur_op_begin(tp, "detach", 0)) return ur_tape_poison(tp);
    if (!t) return ur_tape_fail(tp, "detach: input 1 is NULL");
    /* t may live on another tape (the previous chunk's), but must still be live there. */
    if (!ur_tensor_is_live(t))
        return ur_tape_fail(tp, "detach: input 1 is stale: its tape was reset after it was "
                            "recorded, so its values are gone");
    return ur_input_from(tp, t->rows, t->cols, t->val);
}

ur_tensor *ur_rows(ur_tape *tp, ur_tensor *x, int row0, int n)
{
    if (!ur_op_begin(tp, "rows", 1, x)) return ur_tape_poison(tp);
    if (row0 < 0 || n <= 0 || row0 > x->rows - n)
        return ur_tape_fail(tp, "rows: rows [%d, %d) are outside a %dx%d tensor", row0, row0 + n,
                            x->rows, x->cols);
    ur_tensor *v = ur_tensor_header(tp);
    if (!v) return ur_tape_poison(tp);
    v->rows = n;
    v->cols = x->cols;
    v->offset = (size_t)row0 * (size_t)x->cols;
    v->val = x->val + v->offset;
    v->base = x;
    v->requires_grad = x->requires_grad;
    if (x->grad) v->grad = x->grad + v->offset;
    return v;
}

const ur_tensor *ur_tensor_root(const ur_tensor *t)
{
    while (t && t->base) t = t->base;
    return t;
}
