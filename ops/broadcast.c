/* Broadcasting arithmetic: y = a op b for op in {+, -, *, /}.
 *
 * Shapes: in each of the two dimensions the sizes are equal, or one of them is 1 and that
 * side's single row (column) is reused for every row (column) of the other. So with y m x n,
 * b may be m x n (same shape), 1 x n (a row added to every row, as a bias), m x 1 (one value
 * per row) or 1 x 1 (a scalar), and likewise a; a 1 x n with an m x 1 gives their outer
 * combination. y is max(rows) x max(cols).
 *
 * Backward: the element-wise local gradient, then R, the sum over the dimensions the operand
 * was broadcast along (its rows when it is 1 x n, its columns when m x 1, both when 1 x 1):
 *     y = a + b:   da += R(dy)            db += R(dy)
 *     y = a - b:   da += R(dy)            db -= R(dy)
 *     y = a * b:   da += R(dy b)          db += R(dy a)
 *     y = a / b:   da += R(dy / b)        db -= R(dy y / b)     (d(a/b)/db = -a/b^2 = -y/b)
 * Same shapes take a fast path: one flat loop per direction, as before broadcasting existed.
 * Otherwise each output row reads, of each operand, either a whole row (contiguous) or a
 * single value, so every inner loop is still a plain loop over one row. An operand broadcast
 * down the rows (a bias: 1 x n under T*B rows) has its gradient summed per column in double
 * (ops/colsum.h), rounded once; a row's sum for an m x 1 operand is in double too.
 */
#include "ops/ur_ops.h"

#include "ops/colsum.h"

typedef enum binop { ADD, SUB, MUL, DIV } binop;

/* ---- Forward ----------------------------------------------------------------------------- */

static void same_shape_forward(binop op, size_t len, const float *restrict a,
                               const float *restrict b, float *restrict y)
{
    switch (op) {
    case ADD: for (size_t k = 0; k < len; k++) y[k] = a[k] + b[k]; break;
    case SUB: for (size_t k = 0; k < len; k++) y[k] = a[k] - b[k]; break;
    case MUL: for (size_t k = 0; k < len; k++) y[k] = a[k] * b[k]; break;
    case DIV: for (size_t k = 0; k < len; k++) y[k] = a[k] / b[k]; break;
    }
}

/* One output row of n values. a_one / b_one: that operand gives a single value to the whole
 * row (it has one column while y has n > 1); otherwise it gives a row of n. */
#define ROW_LOOPS(EXPR)                                                                     \
    do {                                                                                    \
        if (a_one) {                                                                        \
            const float A = a[0];                                                           \
            for (int j = 0; j < n; j++) { const float B = b[j]; y[j] = (EXPR); }            \
        } else if (b_one) {                                                                 \
            const float B = b[0];                                                           \
            for (int j = 0; j < n; j++) { const float A = a[j]; y[j] = (EXPR); }            \
        } else {                                                                            \
            for (int j = 0; j < n; j++) { const float A = a[j], B = b[j]; y[j] = (EXPR); }  \
        }                                                                                   \
    } while (0)

static void broadcast_row(binop op, int n, const float *restrict a, int a_one,
                          const float *restrict b, int b_one, float *restrict y)
{
    switch (op) {
    case ADD: ROW_LOOPS(A + B); break;
    case SUB: ROW_LOOPS(A - B); break;
    case MUL: ROW_LOOPS(A * B); break;
    case DIV: ROW_LOOPS(A / B); break;
    }
}
#undef ROW_LOOPS

/* Row r of an operand broadcast to y's rows: its own row r, or its only row. */
static const float *row_of(const ur_tensor *t, int r)
{
    return t->val + (t->rows == 1 ? 0 : (size_t)r * (size_t)t->cols);
}

/* ---- Backward ---------------------------------------------------------------------------- */

/* Adds s dy into dx, x having y's shape (the flat fast path). */
static void acc_flat(float *restrict dx, const float *restrict dy, float s, size_t len)
{
    for (size_t k = 0; k < len; k++) dx[k] += s * dy[k];
}

/* The local gradient of one output row of a product or quotient, g[j] = dy[j] * (this side's
 * factor): the other operand for mul; 1 / b for a and -y / b for b for div. side 0 is a, 1 is
 * b; rows of a, b and y as in broadcast_row. (For add and sub it is +-dy itself.) */
static void local_grad_row(binop op, int side, int n, const float *restrict dy,
                           const float *restrict a, int a_one, const float *restrict b, int b_one,
                           const float *restrict y, float *restrict g)
{
    if (op == MUL) {
        const float *o = side == 0 ? b : a;
        if (side == 0 ? b_one : a_one) {
            const float v = o[0];
            for (int j = 0; j < n; j++) g[j] = dy[j] * v;
        } else {
            for (int j = 0; j < n; j++) g[j] = dy[j] * o[j];
        }
    } else if (side == 0) {
        if (b_one) { const float v = b[0]; for (int j = 0; j < n; j++) g[j] = dy[j] / v; }
        else for (int j = 0; j < n; j++) g[j] = dy[j] / b[j];
    } else {
        if (b_one) { const float v = b[0]; for (int j = 0; j < n; j++) g[j] = -dy[j] * y[j] / v; }
        else for (int j = 0; j < n; j++) g[j] = -dy[j] * y[j] / b[j];
    }
}

/* Adds one row of local gradient s g (n values) into the operand's gradient row dx: element
 * by element, or summed (in double) into its single value when the operand was broadcast
 * along the row. */
static inline __attribute__((always_inline)) void reduce_row(float *restrict dx, int x_one,
                                                            const float *restrict g, float s,
                                                            int n)
{
    if (x_one) {
        double t = 0;
        for (int j = 0; j < n; j++) t += g[j];
        dx[0] += s * (float)t;
    } else {
        for (int j = 0; j < n; j++) dx[j] += s * g[j];
    }
}

/* The gradient of an operand broadcast down all m rows of y (1 x n, or 1 x 1 when x_one):
 * dx[j] += s * sum_r g_r[j] (or dx[0] += s * sum_rj g_r[j]), g_r being dy's row r for add
 * and sub and the local gradient of row r otherwise, summed in double per column block as
 * in ops/colsum.h, so that T*B rows do not lose the small rows' bits. g is one row of
 * scratch (n floats). */
static void column_sums_backward(binop op, int side, int m, int n, const float *dy,
                                 const ur_tensor *a, int a_one, const ur_tensor *b, int b_one,
                                 const ur_tensor *y, float *restrict g, float *restrict dx,
                                 int x_one, float s)
{
    const int linear = op == ADD || op == SUB;
    double total = 0;
    for (int j0 = 0; j0 < n; j0 += UR_COLSUM_BLOCK) {
        const int w = n - j0 < UR_COLSUM_BLOCK ? n - j0 : UR_COLSUM_BLOCK;
        double acc[UR_COLSUM_BLOCK] = {0};
        for (int r = 0; r < m; r++) {
            const size_t at = (size_t)r * (size_t)n + (size_t)j0;
            const float *lg = dy + at;
            if (!linear) {
                const float *ar = row_of(a, r) + (a_one ? 0 : j0);
                const float *br = row_of(b, r) + (b_one ? 0 : j0);
                local_grad_row(op, side, w, dy + at, ar, a_one, br, b_one, y->val + at, g);
                lg = g;
            }
            for (int j = 0; j < w; j++) acc[j] += (double)lg[j];
        }
        if (x_one)
            for (int j = 0; j < w; j++) total += acc[j];
        else
            for (int j = 0; j < w; j++) dx[j0 + j] += (float)((double)s * acc[j]);
    }
    if (x_one) dx[0] += (float)((double)s * total);
}

static inline __attribute__((always_inline)) void binary_backward(ur_node *nd, binop op)
{
    ur_tensor *a = nd->in[0], *b = nd->in[1], *y = nd->out;
    const float *dy = y->grad;
    size_t len = ur_numel(y);
    if (nd->i[0]) { /* same shapes */
        float *da = a->requires_grad ? ur_grad(a) : NULL;
        float *db = b->requires_grad ? ur_grad(b) : NULL;
        switch (op) {
        case ADD:
        case SUB:
            if (da) acc_flat(da, dy, 1.0f, len);
            if (db) acc_flat(db, dy, op == SUB ? -1.0f : 1.0f, len);
            break;
        case MUL:
            if (da) for (size_t k = 0; k < len; k++) da[k] += dy[k] * b->val[k];
            if (db) for (size_t k = 0; k < len; k++) db[k] += dy[k] * a->val[k];
            break;
        case DIV:
            if (da) for (size_t k = 0; k < len; k++) da[k] += dy[k] / b->val[k];
            if (db) for (size_t k = 0; k < len; k++) db[k] -= dy[k] * y->val[k] / b->val[k];
            break;
        }
        return;
    }
    int n = y->cols, a_one = a->cols == 1 && n > 1, b_one = b->cols == 1 && n > 1;
    float *g = nd->aux; /* one row of scratch, saved at forward */
    for (int side = 0; side < 2; side++) {
        ur_tensor *x = nd->in[side];
        if (!x->requires_grad) continue;
        float *dx = ur_grad(x);
        int x_one = side == 0 ? a_one : b_one, linear = op == ADD || op == SUB;
        float s = op == SUB && side == 1 ? -1.0f : 1.0f;
        if (linear && x->rows == y->rows && x->cols == n) { /* the side that was not broadcast */
            acc_flat(dx, dy, s, len);
            continue;
        }
        if (x->rows == 1 && y->rows > 1) { /* broadcast down the rows: column sums in double */
            if (linear && !x_one) ur_add_column_sums_scaled(dx, s, dy, y->rows, n);
            else column_sums_backward(op, side, y->rows, n, dy, a, a_one, b, b_one, y, g, dx,
                                      x_one, s);
            continue;
        }
        for (int r = 0; r < y->rows; r++) {
            size_t at = (size_t)r * (size_t)n;
            const float *lg = dy + at;
            if (!linear) {
                local_grad_row(op, side, n, dy + at, row_of(a, r), a_one, row_of(b, r), b_one,
                               y->val + at, g);
                lg = g;
            }
            reduce_row(dx + (x->rows == 1 ? 0 : (size_t)r * (size_t)x->cols), x_one, lg, s, n);
        }
    }
}

static void add_backward(ur_node *n) { binary_backward(n, ADD); }
static void sub_backward(ur_node *n) { binary_backward(n, SUB); }
static void mul_backward(ur_node *n) { binary_backward(n, MUL); }
static void div_backward(ur_node *n) { binary_backward(n, DIV); }
static const ur_op binop_desc[] = {
    {"add", add_backward}, {"sub", sub_backward}, {"mul", mul_backward}, {"div", div_backward}};
static const ur_op add_bias_op = {"add_bias", add_backward};

/* ---- The ops ----------------------------------------------------------------------------- */

/* 1 if a dimension of sizes p and q broadcasts (equal, or one of them 1). */
static int fits(int p, int q) { return p == q || p == 1 || q == 1; }

static ur_tensor *binary_as(ur_tape *tp, binop op, const ur_op *desc, ur_tensor *a, ur_tensor *b)
{
    const char *name = desc->name;
    if (!ur_op_begin(tp, name, 2, a, b)) return ur_tape_poison(tp);
    if (!fits(a->rows, b->rows) || !fits(a->cols, b->cols))
        return ur_shape_error(tp, name, "shapes differ", a, b);
    int same = a->rows == b->rows && a->cols == b->cols;
    int m = a->rows > b->rows ? a->rows : b->rows, n = a->cols > b->cols ? a->cols : b->cols;
    ur_tensor *y = ur_tensor_new(tp, m, n);
    if (!y) return ur_tape_poison(tp);
    if (same) {
        same_shape_forward(op, ur_numel(y), a->val, b->val, y->val);
    } else {
        int a_one = a->cols == 1 && n > 1, b_one = b->cols == 1 && n > 1;
        for (int r = 0; r < m; r++)
            broadcast_row(op, n, row_of(a, r), a_one, row_of(b, r), b_one,
                          y->val + (size_t)r * (size_t)n);
    }
    ur_node *nd = ur_record(tp, desc, y, 2, a, b);
    if (nd) {
        nd->i[0] = same;
        /* one row of scratch for the local gradient of a broadcast product or quotient */
        if (!same && (op == MUL || op == DIV) &&
            !(nd->aux = ur_tape_alloc(tp, (size_t)n * sizeof(float))))
            return ur_tape_poison(tp);
    }
    return y;
}

static ur_tensor *binary(ur_tape *tp, binop op, ur_tensor *a, ur_tensor *b)
{
    return binary_as(tp, op, &binop_desc[op], a, b);
}

ur_tensor *ur_add(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return binary(tp, ADD, a, b); }
ur_tensor *ur_sub(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return binary(tp, SUB, a, b); }
ur_tensor *ur_mul(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return binary(tp, MUL, a, b); }
ur_tensor *ur_div(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return binary(tp, DIV, a, b); }

/* The bias add of a layer: ur_add restricted to a 1 x cols b (kept as its own name). */
ur_tensor *ur_add_bias(ur_tape *tp, ur_tensor *x, ur_tensor *b)
{
    if (!ur_op_begin(tp, "add_bias", 2, x, b)) return ur_tape_poison(tp);
    if (b->rows != 1 || b->cols != x->cols)
        return ur_shape_error(tp, "add_bias", "bias must be 1 x cols of x", x, b);
    return binary_as(tp, ADD, &add_bias_op, x, b);
}
