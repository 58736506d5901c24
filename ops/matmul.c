/* Matrix products through cblas_sgemm.
 *
 *   C = op(A) op(B)            op(X) is X or X^T, chosen by a cblas flag (never a copy)
 *   dop(A) = dC op(B)^T        dop(B) = op(A)^T dC
 * so with A^T stored: dA = (dC op(B)^T)^T = op(B) dC^T, and likewise for B. Every gradient is
 * accumulated straight into the input's gradient buffer with beta = 1.
 */
#include "ops/ur_ops.h"

#include <string.h>

#include "ops/blas.h"
#include "ops/colsum.h"
#include "ops/linear.h"

/* out (m x n) = op_x(X) op_y(Y) + beta out, X and Y stored row-major with their own cols. */
static void gemm_acc(int tx, int ty, int m, int n, int k, const ur_tensor *x, const float *xv,
                     const ur_tensor *y, const float *yv, float *out, float beta)
{
    ur_blas_gemm(tx, ty, m, n, k, xv, x->cols, yv, y->cols, beta, out, n);
}

/* Gradients of C = op(A) op(B) (m x n) given dC, for A stored ar x ac at a and B stored
 * br x bc at b, into da and db (either may be NULL). */
static void product_grads(int ta, int tb, int ar, int ac, const float *a, float *da, int br,
                          int bc, const float *b, float *db, int m, int n, const float *dc)
{
    if (da) {
        if (!ta) /* dA (m x k) = dC op(B)^T */
            ur_blas_gemm(0, !tb, ar, ac, n, dc, n, b, bc, 1.0f, da, ac);
        else     /* dA (k x m) = op(B) dC^T */
            ur_blas_gemm(tb, 1, ar, ac, n, b, bc, dc, n, 1.0f, da, ac);
    }
    if (db) {
        if (!tb) /* dB (k x n) = op(A)^T dC */
            ur_blas_gemm(!ta, 0, br, bc, m, a, ac, dc, n, 1.0f, db, bc);
        else     /* dB (n x k) = dC^T op(A) */
            ur_blas_gemm(1, ta, br, bc, m, dc, n, a, ac, 1.0f, db, bc);
    }
}

/* Gradients of C = op(A) op(B) given dC, into A and B (those that need them). */
static void matmul_grads(const ur_tensor *dc_t, const float *dc, ur_tensor *a, ur_tensor *b,
                         int ta, int tb)
{
    product_grads(ta, tb, a->rows, a->cols, a->val, a->requires_grad ? ur_grad(a) : NULL,
                  b->rows, b->cols, b->val, b->requires_grad ? ur_grad(b) : NULL, dc_t->rows,
                  dc_t->cols, dc);
}

static void matmul_backward(ur_node *n)
{
    matmul_grads(n->out, n->out->grad, n->in[0], n->in[1], n->i[0], n->i[1]);
}
static const ur_op matmul_op = {"matmul", matmul_backward};

ur_tensor *ur_matmul(ur_tape *tp, ur_tensor *a, ur_tensor *b, int trans_a, int trans_b)
{
    if (!ur_op_begin(tp, "matmul", 2, a, b)) return ur_tape_poison(tp);
    trans_a = !!trans_a;
    trans_b = !!trans_b;
    int m = trans_a ? a->cols : a->rows, k = trans_a ? a->rows : a->cols;
    int kb = trans_b ? b->cols : b->rows, n = trans_b ? b->rows : b->cols;
    if (k != kb) return ur_shape_error(tp, "matmul", "inner dimensions differ", a, b);
    ur_tensor *c = ur_tensor_new(tp, m, n);
    if (!c) return ur_tape_poison(tp);
    gemm_acc(trans_a, trans_b, m, n, k, a, a->val, b, b->val, c->val, 0.0f);
    ur_node *nd = ur_record(tp, &matmul_op, c, 2, a, b);
    if (nd) { nd->i[0] = trans_a; nd->i[1] = trans_b; }
    return c;
}

/* y = c + a b:  dc += dy,  and the product's gradients as above. */
static void addmm_backward(ur_node *n)
{
    ur_tensor *y = n->out, *c = n->in[0];
    if (c->requires_grad) {
        float *dc = ur_grad(c);
        for (size_t k = 0; k < ur_numel(y); k++) dc[k] += y->grad[k];
    }
    matmul_grads(y, y->grad, n->in[1], n->in[2], 0, 0);
}
static const ur_op addmm_op = {"addmm", addmm_backward};

ur_tensor *ur_addmm(ur_tape *tp, ur_tensor *c, ur_tensor *a, ur_tensor *b)
{
    if (!ur_op_begin(tp, "addmm", 3, c, a, b)) return ur_tape_poison(tp);
    if (a->cols != b->rows) return ur_shape_error(tp, "addmm", "inner dimensions differ", a, b);
    if (c->rows != a->rows || c->cols != b->cols)
        return ur_tape_fail(tp, "addmm: c is %dx%d but a b is %dx%d", c->rows, c->cols, a->rows,
                            b->cols);
    ur_tensor *y = ur_tensor_new(tp, c->rows, c->cols);
    if (!y) return ur_tape_poison(tp);
    memcpy(y->val, c->val, ur_numel(y) * sizeof(float));
    gemm_acc(0, 0, a->rows, b->cols, a->cols, a, a->val, b, b->val, y->val, 1.0f);
    ur_record(tp, &addmm_op, y, 3, c, a, b);
    return y;
}

/* y = x W + b:  dx += dy W^T,  dW += x^T dy,  db += sum over rows of dy (in double). With
 * i[0] set (ur_linear_cede) a recurrent context does all three. */
static void linear_backward(ur_node *n)
{
    if (n->i[0]) return;
    ur_tensor *y = n->out;
    matmul_grads(y, y->grad, n->in[0], n->in[1], 0, 0);
    if (n->n_in == 3 && n->in[2]->requires_grad) {
        ur_add_column_sums(ur_grad(n->in[2]), y->grad, y->rows, y->cols);
    }
}
static const ur_op linear_op = {"linear", linear_backward};

ur_tensor *ur_linear(ur_tape *tp, ur_tensor *x, ur_tensor *w, ur_tensor *b)
{
    if (!ur_op_begin(tp, "linear", 2, x, w)) return ur_tape_poison(tp);
    if (x->cols != w->rows) return ur_shape_error(tp, "linear", "x and W do not chain", x, w);
    if (b && (b->rows != 1 || b->cols != w->cols))
        return ur_shape_error(tp, "linear", "bias must be 1 x W's cols", b, w);
    ur_tensor *y = ur_tensor_new(tp, x->rows, w->cols);
    if (!y) return ur_tape_poison(tp);
    if (b)
        ur_blas_gemm_bias(0, 0, x->rows, w->cols, x->cols, x->val, x->cols, w->val, w->cols,
                          b->val, y->val, y->cols);
    else
        gemm_acc(0, 0, x->rows, w->cols, x->cols, x, x->val, w, w->val, y->val, 0.0f);
    if (b) ur_record(tp, &linear_op, y, 3, x, w, b);
    else ur_record(tp, &linear_op, y, 2, x, w);
    return y;
}

int ur_linear_cede(const ur_tape *tp, ur_tensor *y, ur_tensor **x, ur_tensor **w,
                   ur_tensor **b)
{
    ur_node *made = y->node;
    if (!made || made->op != &linear_op || made->out != y || made->i[0]) return 0;
    for (const ur_node *nd = ur_tape_last(tp); nd && nd != made; nd = nd->prev) {
        if (ur_tensor_root(nd->out) == y || ur_tensor_root(nd->out2) == y ||
            ur_tensor_root(nd->uses) == y)
            return 0;
        for (int k = 0; k < nd->n_in; k++)
            if (ur_tensor_root(nd->in[k]) == y) return 0;
    }
    made->i[0] = 1;
    *x = made->in[0];
    *w = made->in[1];
    *b = made->n_in == 3 ? made->in[2] : NULL;
    return 1;
}

/* Block k of C = op(A_k) op(B_k), A_k and B_k the k-th of nblocks equal row blocks of a and b;
 * dop(A_k) and dop(B_k) as for one product, block by block. i[0..2] = trans_a, trans_b,
 * nblocks. */
static void block_matmul_backward(ur_node *nd)
{
    ur_tensor *a = nd->in[0], *b = nd->in[1], *c = nd->out;
    int ta = nd->i[0], tb = nd->i[1], nb = nd->i[2];
    int ar = a->rows / nb, br = b->rows / nb, m = c->rows / nb, n = c->cols;
    float *da = a->requires_grad ? ur_grad(a) : NULL, *db = b->requires_grad ? ur_grad(b) : NULL;
    size_t sa = (size_t)ar * a->cols, sb = (size_t)br * b->cols, sc = (size_t)m * n;
    for (int k = 0; k < nb; k++)
        product_grads(ta, tb, ar, a->cols, a->val + k * sa, da ? da + k * sa : NULL, br, b->cols,
                      b->val + k * sb, db ? db + k * sb : NULL, m, n, c->grad + k * sc);
}
static const ur_op block_matmul_op = {"block_matmul", block_matmul_backward};

ur_tensor *ur_block_matmul(ur_tape *tp, ur_tensor *a, ur_tensor *b, int nblocks, int trans_a,
                           int trans_b)
{
    if (!ur_op_begin(tp, "block_matmul", 2, a, b)) return ur_tape_poison(tp);
    if (nblocks <= 0 || a->rows % nblocks != 0 || b->rows % nblocks != 0)
        return ur_tape_fail(tp,
                            "block_matmul: %dx%d and %dx%d do not both split into %d row blocks",
                            a->rows, a->cols, b->rows, b->cols, nblocks);
    trans_a = !!trans_a;
    trans_b = !!trans_b;
    int ar = a->rows / nblocks, br = b->rows / nblocks;
    int m = trans_a ? a->cols : ar, k = trans_a ? ar : a->cols;
    int kb = trans_b ? b->cols : br, n = trans_b ? br : b->cols;
    if (k != kb)
        return ur_shape_error(tp, "block_matmul", "inner dimensions of the blocks differ", a, b);
    ur_tensor *c = ur_tensor_new(tp, nblocks * m, n);
    if (!c) return ur_tape_poison(tp);
    size_t sa = (size_t)ar * a->cols, sb = (size_t)br * b->cols, sc = (size_t)m * n;
    for (int q = 0; q < nblocks; q++)
        ur_blas_gemm(trans_a, trans_b, m, n, k, a->val + q * sa, a->cols, b->val + q * sb, b->cols,
                     0.0f, c->val + q * sc, n);
    ur_node *nd = ur_record(tp, &block_matmul_op, c, 2, a, b);
    if (nd) { nd->i[0] = trans_a; nd->i[1] = trans_b; nd->i[2] = nblocks; }
    return c;
}
