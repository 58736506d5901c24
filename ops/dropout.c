/* Inverted dropout: y = x * mask, mask_k = 0 with probability p, else 1 / (1 - p), drawn
 * from the caller's seeded generator. Backward: dx += dy * mask. */
#include "ops/ur_ops.h"

static void dropout_backward(ur_node *n)
{
    const float *mask = n->aux, *dy = n->out->grad;
    float *dx = ur_grad(n->in[0]);
    for (size_t k = 0; k < ur_numel(n->out); k++) dx[k] += dy[k] * mask[k];
}
static const ur_op dropout_op = {"dropout", dropout_backward};

ur_tensor *ur_dropout(ur_tape *tp, ur_tensor *x, float p, ur_rng *rng)
{
    if (!ur_op_begin(tp, "dropout", 1, x)) return ur_tape_poison(tp);
    if (!(p >= 0.0f && p < 1.0f)) return ur_tape_fail(tp, "dropout: p = %g is outside [0, 1)", p);
    if (p == 0.0f) return x;
    if (!rng) return ur_tape_fail(tp, "dropout: rng is NULL");
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    float *mask = ur_tape_alloc(tp, ur_numel(x) * sizeof *mask);
    if (!y || !mask) return ur_tape_poison(tp);
    float keep = 1.0f / (1.0f - p);
    for (size_t k = 0; k < ur_numel(x); k++) {
        mask[k] = ur_rng_uniform(rng) < p ? 0.0f : keep;
        y->val[k] = x->val[k] * mask[k];
    }
    ur_node *nd = ur_record(tp, &dropout_op, y, 1, x);
    if (nd) nd->aux = mask;
    return y;
}
