/* Recurrent product with its weight gradient done once over all steps.
 *
 * A recurrence multiplies every step's previous state by the same weight: z_t = c_t + h_{t-1} W.
 * Backward needs dh_{t-1} = dz_t W^T step by step (it feeds the step before), but the weight's
 * gradient is a sum over steps,
 *     dW = sum_t h_{t-1}^T dz_t = A^T dZ,   A = [h_{-1}; h_0; ...],  dZ = [dz_0; dz_1; ...]
 * which is one GEMM with K = T*B instead of T GEMMs with K = B (each of which reads and
 * writes all of dW). So: every step's output z_t is a row block of one time-stacked Z, each
 * step copies its h_{t-1} into the rows of A, and a node recorded *before* the steps (so
 * that backward reaches it after all of them) computes A^T dZ.
 *
 * When the c_t are the row blocks of one tensor that nothing else reads (an input projection
 * x U + b made for the recurrence), Z can be that tensor: each step adds h W into its rows in
 * place, and y_t and c_t share their gradient, so neither a copy nor dc += dy is needed.
 */
#include "ops/ur_ops.h"

#include <string.h>

#include "ops/blas.h"

struct ur_recurrent {
    ur_tensor *w;    /* in x out */
    ur_tensor *z;    /* steps*rows x out: the steps' outputs (the caller's, when in place) */
    int in_place;    /* 1: z_t = c_t + h W is accumulated into c_t, a row block of z */
    ur_tensor *a;    /* steps*rows x in: the steps' previous states */
    int steps, rows;
};

/* dW += A^T dZ */
static void recurrent_weight_backward(ur_node *n)
{
    const ur_recurrent *r = n->aux;
    ur_tensor *w = r->w;
    ur_blas_gemm(1, 0, w->rows, w->cols, r->z->rows, r->a->val, w->rows, r->z->grad, w->cols,
                 1.0f, ur_grad(w), w->cols);
}
static const ur_op recurrent_weight_op = {"recurrent_weight", recurrent_weight_backward};

ur_recurrent *ur_recurrent_begin(ur_tape *tp, ur_tensor *w, int steps, int rows, ur_tensor *into)
{
    if (!ur_op_begin(tp, "recurrent_begin", 1, w)) return NULL;
    if (steps <= 0 || rows <= 0) {
        ur_tape_fail(tp, "recurrent_begin: needs steps > 0 and rows > 0, got %d and %d", steps, rows);
        return NULL;
    }
    if (into && (into->rows != steps * rows || into->cols != w->cols || into->base)) {
        ur_tape_fail(tp, "recurrent_begin: accumulator is %dx%d, expected a %dx%d tensor (not a view)",
                     into->rows, into->cols, steps * rows, w->cols);
        return NULL;
    }
    ur_recurrent *r = ur_tape_alloc(tp, sizeof *r);
    ur_tensor *z = into ? into : ur_tensor_new(tp, steps * rows, w->cols);
    ur_tensor *a = ur_tensor_new(tp, steps * rows, w->rows);
    if (!r || !z || !a) return NULL;
    /* Steps fill z's row blocks; until then it must hold numbers (the non-finite trap reads
     * it when the node below is recorded). */
    if (!into) memset(z->val, 0, ur_numel(z) * sizeof(float));
    *r = (ur_recurrent){w, z, into != NULL, a, steps, rows};
    ur_node *producer = z->node;
    ur_node *nd = ur_record(tp, &recurrent_weight_op, z, 1, w);
    if (nd) nd->aux = r;
    if (into) z->node = producer; /* the accumulator still names the op that made it */
    return r;
}

/* y = c + h W (W's gradient left to the node above):  dc += dy,  dh += dy W^T. In place,
 * y and c are the same rows of the accumulator and share their gradient: only dh is left. */
static void recurrent_step_backward(ur_node *n)
{
    ur_tensor *y = n->out, *c = n->in[0], *h = n->in[1];
    const ur_tensor *w = n->aux;
    if (c->requires_grad && n->i[0] == 0) {
        float *dc = ur_grad(c);
        for (size_t k = 0; k < ur_numel(y); k++) dc[k] += y->grad[k];
    }
    if (h->requires_grad)
        ur_blas_gemm(0, 1, h->rows, h->cols, y->cols, y->grad, y->cols, w->val, w->cols, 1.0f,
                     ur_grad(h), h->cols);
}
static const ur_op recurrent_step_op = {"recurrent_addmm", recurrent_step_backward};

ur_tensor *ur_recurrent_addmm(ur_tape *tp, ur_recurrent *r, int t, ur_tensor *c, ur_tensor *h)
{
    if (!ur_op_begin(tp, "recurrent_addmm", 2, c, h)) return ur_tape_poison(tp);
    if (!r) return ur_tape_fail(tp, "recurrent_addmm: no recurrent context");
    if (t < 0 || t >= r->steps)
        return ur_tape_fail(tp, "recurrent_addmm: step %d is outside [0, %d)", t, r->steps);
    if (h->rows != r->rows || h->cols != r->w->rows)
        return ur_shape_error(tp, "recurrent_addmm", "h and W do not chain", h, r->w);
    if (c->rows != r->rows || c->cols != r->w->cols)
        return ur_tape_fail(tp, "recurrent_addmm: c is %dx%d but h W is %dx%d", c->rows, c->cols,
                            h->rows, r->w->cols);
    ur_tensor *y = ur_rows(tp, r->z, t * r->rows, r->rows);
    if (ur_tape_error(tp)) return ur_tape_poison(tp);
    if (!r->in_place) memcpy(y->val, c->val, ur_numel(y) * sizeof(float));
    else if (c->val != y->val)
        return ur_tape_fail(tp, "recurrent_addmm: in place, c of step %d must be rows [%d, %d) of "
                            "the accumulator", t, t * r->rows, (t + 1) * r->rows);
    ur_blas_gemm(0, 0, h->rows, r->w->cols, h->cols, h->val, h->cols, r->w->val, r->w->cols,
                 1.0f, y->val, y->cols);
    memcpy(r->a->val + (size_t)t * r->rows * h->cols, h->val, ur_numel(h) * sizeof(float));
    ur_node *nd = ur_record(tp, &recurrent_step_op, y, 2, c, h);
    if (nd) {
        nd->aux = r->w;
        nd->i[0] = r->in_place;
        nd->uses = r->w; /* drawn as an input; its gradient is the node above's */
    }
    return y;
}
