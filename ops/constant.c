/* Constants: leaves filled with one value, needing no gradient (a mask, an initial state, a
 * scalar to broadcast), so that no program fills a ur_input by hand. They record no node. */
#include "ops/ur_ops.h"

static ur_tensor *filled(ur_tape *tp, const char *op, int rows, int cols, float value)
{
    if (!ur_op_begin(tp, op, 0)) return ur_tape_poison(tp);
    if (rows <= 0 || cols <= 0)
        return ur_tape_fail(tp, "%s: bad size %dx%d (both must be positive)", op, rows, cols);
    ur_tensor *t = ur_tensor_new(tp, rows, cols);
    if (!t) return ur_tape_poison(tp);
    for (size_t k = 0; k < ur_numel(t); k++) t->val[k] = value;
    return t;
}

ur_tensor *ur_constant(ur_tape *tp, int rows, int cols, float value)
{
    return filled(tp, "constant", rows, cols, value);
}

ur_tensor *ur_zeros(ur_tape *tp, int rows, int cols)
{
    return filled(tp, "zeros", rows, cols, 0.0f);
}

ur_tensor *ur_ones(ur_tape *tp, int rows, int cols)
{
    return filled(tp, "ones", rows, cols, 1.0f);
}

ur_tensor *ur_constant_like(ur_tape *tp, const ur_tensor *t, float value)
{
    if (!ur_op_begin(tp, "constant_like", 1, t)) return ur_tape_poison(tp);
    return filled(tp, "constant_like", t->rows, t->cols, value);
}
