/* Losses, each reduced to a 1 x 1 tensor (mean or sum).
 *
 * softmax + NLL, fused: for a row x with target t,
 *     loss = logsumexp(x) - x_t = m + log sum_j exp(x_j - m) - x_t,   m = max_j x_j
 *     dloss/dx_j = softmax(x)_j - [j == t]
 * Subtracting the row max keeps exp() in (0, 1], so logits of 1e4 are fine; the exps come
 * from the vectorised ur_exp (ops/fastmath.h) and are summed in double.
 * Sigmoid cross-entropy with target z: loss = z softplus(-x) + (1 - z) softplus(x)
 *     = max(x, 0) - x z + log(1 + exp(-|x|)),
 *     dloss/dx = sigmoid(x) - z,   dloss/dz = -x.
 * Mean squared error: loss = (x - z)^2,  dloss/dx = 2 (x - z) = -dloss/dz.
 * Masked (uneven lengths): rows whose mask is 0 are left out of the sum, of the count a mean
 * divides by, and of the gradient; their values are never read.
 */
#include "ops/ur_ops.h"

#include <math.h>
#include <string.h>

#include "ops/fastmath.h"
#include "ops/mask.h"

/* y = the reduced total, in float and, for the gradient check, in double (y->exact). */
static void reduce(ur_tensor *y, double total, size_t count, ur_reduction red)
{
    y->exact = red == UR_SUM ? total : count ? total / (double)count : 0.0;
    y->has_exact = 1;
    y->val[0] = (float)y->exact;
}

/* One row: p = softmax(x), returns log sum_j exp(x_j - max x) (double accumulation). */
UR_VECTOR_BODY double softmax_row_body(int k, const float *restrict x, float *restrict p,
                                       float *max_out)
{
    float m = x[0];
    for (int j = 1; j < k; j++) m = x[j] > m ? x[j] : m;
    for (int j = 0; j < k; j++) p[j] = ur_exp1(x[j] - m);
    double s = 0;
    for (int j = 0; j < k; j++) s += p[j];
    float inv = (float)(1.0 / s);
    for (int j = 0; j < k; j++) p[j] *= inv;
    *max_out = m;
    return log(s);
}
UR_VECTOR_RET(double, softmax_row,
              (int k, const float *restrict x, float *restrict p, float *max_out),
              (k, x, p, max_out))

int ur_softmax_rows(const ur_tensor *logits, float *probs)
{
    if (!logits || !probs) return -1;
    float m;
    for (int r = 0; r < logits->rows; r++)
        softmax_row(logits->cols, logits->val + (size_t)r * logits->cols,
                    probs + (size_t)r * logits->cols, &m);
    return 0;
}

/* aux holds the softmax probabilities (B x K) then the targets (B ints); f[0] the scale. */
static void softmax_nll_backward(ur_node *n)
{
    ur_tensor *x = n->in[0];
    const float *probs = n->aux;
    const int *tgt = (const int *)(probs + ur_numel(x));
    float g = n->out->grad[0] * n->f[0];
    float *dx = ur_grad(x);
    for (int r = 0; r < x->rows; r++) {
        if (tgt[r] < 0) continue;
        const float *p = probs + (size_t)r * x->cols;
        float *d = dx + (size_t)r * x->cols;
        for (int j = 0; j < x->cols; j++) d[j] += g * p[j];
        d[tgt[r]] -= g;
    }
}
static const ur_op softmax_nll_op = {"softmax_nll", softmax_nll_backward};

/* 1 when row r counts: no mask, or its mask is 1. */
static int counts(const ur_tensor *mask, int r) { return !mask || mask->val[r] != 0.0f; }

/* The mask's values for a backward (NULL: every row), after checking it; -1 on a bad mask. */
static int check_mask(ur_tape *tp, const char *op, ur_tensor *mask, int rows)
{
    if (!mask) return 0;
    if (!ur_op_begin(tp, op, 1, mask)) return -1;
    return ur_mask_check(tp, op, mask, rows);
}

static ur_tensor *softmax_nll(ur_tape *tp, const char *op, ur_tensor *logits, const int *targets,
                              ur_tensor *mask, ur_reduction red)
{
    if (!ur_op_begin(tp, op, 1, logits)) return ur_tape_poison(tp);
    if (!targets) return ur_tape_fail(tp, "%s: targets are NULL", op);
    if (red != UR_MEAN && red != UR_SUM)
        return ur_tape_fail(tp, "%s: bad reduction %d", op, (int)red);
    int rows = logits->rows, k = logits->cols;
    if (check_mask(tp, op, mask, rows) != 0) return ur_tape_poison(tp);
    size_t count = 0;
    for (int r = 0; r < rows; r++) {
        if (!counts(mask, r)) continue;
        if (targets[r] < -1 || targets[r] >= k)
            return ur_tape_fail(tp, "%s: target %d in row %d is outside [0, %d) for %dx%d logits",
                                op, targets[r], r, k, rows, k);
        count += targets[r] >= 0;
    }
    ur_tensor *y = ur_tensor_new(tp, 1, 1);
    float *probs = ur_tape_alloc(tp, ur_numel(logits) * sizeof(float) + (size_t)rows * sizeof(int));
    if (!y || !probs) return ur_tape_poison(tp);
    double total = 0;
    for (int r = 0; r < rows; r++) {
        if (!counts(mask, r)) continue;
        const float *x = logits->val + (size_t)r * k;
        float m;
        double lse = softmax_row(k, x, probs + (size_t)r * k, &m);
        if (targets[r] >= 0) total += lse - ((double)x[targets[r]] - m);
    }
    reduce(y, total, count, red);
    ur_node *nd = ur_record(tp, &softmax_nll_op, y, 1, logits);
    if (nd) {
        int *saved = (int *)(probs + ur_numel(logits));
        for (int r = 0; r < rows; r++) saved[r] = counts(mask, r) ? targets[r] : -1;
        nd->aux = probs;
        nd->f[0] = red == UR_SUM ? 1.0f : (count ? 1.0f / (float)count : 0.0f);
    }
    return y;
}

ur_tensor *ur_softmax_nll(ur_tape *tp, ur_tensor *logits, const int *targets, ur_reduction red)
{
    return softmax_nll(tp, "softmax_nll", logits, targets, NULL, red);
}

ur_tensor *ur_softmax_nll_masked(ur_tape *tp, ur_tensor *logits, const int *targets,
                                 ur_tensor *mask, ur_reduction red)
{
    return softmax_nll(tp, "softmax_nll_masked", logits, targets, mask, red);
}

static int check_pair(ur_tape *tp, const char *op, ur_tensor *x, ur_tensor *z, ur_tensor *mask,
                      ur_reduction red)
{
    if (!ur_op_begin(tp, op, 2, x, z)) return 0;
    if (x->rows != z->rows || x->cols != z->cols) {
        ur_shape_error(tp, op, "input and target shapes differ", x, z);
        return 0;
    }
    if (red != UR_MEAN && red != UR_SUM) {
        ur_tape_fail(tp, "%s: bad reduction %d", op, (int)red);
        return 0;
    }
    return check_mask(tp, op, mask, x->rows) == 0;
}

/* Elements in the rows that count. */
static size_t counted(const ur_tensor *x, const ur_tensor *mask)
{
    size_t rows = 0;
    for (int r = 0; r < x->rows; r++) rows += counts(mask, r);
    return rows * (size_t)x->cols;
}

/* aux: the mask's values, or NULL. */
static void mse_backward(ur_node *n)
{
    ur_tensor *x = n->in[0], *z = n->in[1];
    const float *m = n->aux;
    float g = 2.0f * n->out->grad[0] * n->f[0];
    float *dx = x->requires_grad ? ur_grad(x) : NULL;
    float *dz = z->requires_grad ? ur_grad(z) : NULL;
    size_t C = (size_t)x->cols;
    for (int r = 0; r < x->rows; r++) {
        if (m && m[r] == 0.0f) continue;
        for (size_t k = (size_t)r * C; k < (size_t)(r + 1) * C; k++) {
            float d = g * (x->val[k] - z->val[k]);
            if (dx) dx[k] += d;
            if (dz) dz[k] -= d;
        }
    }
}
static const ur_op mse_op = {"mse", mse_backward};

static ur_tensor *mse(ur_tape *tp, const char *op, ur_tensor *x, ur_tensor *target,
                      ur_tensor *mask, ur_reduction red)
{
    if (!check_pair(tp, op, x, target, mask, red)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, 1, 1);
    if (!y) return ur_tape_poison(tp);
    double total = 0;
    size_t C = (size_t)x->cols, count = counted(x, mask);
    for (int r = 0; r < x->rows; r++) {
        if (!counts(mask, r)) continue;
        for (size_t k = (size_t)r * C; k < (size_t)(r + 1) * C; k++) {
            double d = (double)x->val[k] - target->val[k];
            total += d * d;
        }
    }
    reduce(y, total, count, red);
    ur_node *nd = ur_record(tp, &mse_op, y, 2, x, target);
    if (nd) {
        nd->f[0] = red == UR_SUM ? 1.0f : (count ? 1.0f / (float)count : 0.0f);
        nd->aux = mask ? mask->val : NULL;
    }
    return y;
}

ur_tensor *ur_mse(ur_tape *tp, ur_tensor *x, ur_tensor *target, ur_reduction red)
{
    return mse(tp, "mse", x, target, NULL, red);
}

ur_tensor *ur_mse_masked(ur_tape *tp, ur_tensor *x, ur_tensor *target, ur_tensor *mask,
                         ur_reduction red)
{
    return mse(tp, "mse_masked", x, target, mask, red);
}

/* aux: the mask's values, or NULL. */
static void sigmoid_xent_backward(ur_node *n)
{
    ur_tensor *x = n->in[0], *z = n->in[1];
    const float *m = n->aux;
    float g = n->out->grad[0] * n->f[0];
    float *dx = x->requires_grad ? ur_grad(x) : NULL;
    float *dz = z->requires_grad ? ur_grad(z) : NULL;
    size_t C = (size_t)x->cols;
    for (int r = 0; r < x->rows; r++) {
        if (m && m[r] == 0.0f) continue;
        for (size_t k = (size_t)r * C; k < (size_t)(r + 1) * C; k++) {
            if (dx) dx[k] += g * (1.0f / (1.0f + expf(-x->val[k])) - z->val[k]);
            if (dz) dz[k] -= g * x->val[k];
        }
    }
}
static const ur_op sigmoid_xent_op = {"sigmoid_xent", sigmoid_xent_backward};

static ur_tensor *sigmoid_xent(ur_tape *tp, const char *op, ur_tensor *logits, ur_tensor *target,
                               ur_tensor *mask, ur_reduction red)
{
    if (!check_pair(tp, op, logits, target, mask, red)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, 1, 1);
    if (!y) return ur_tape_poison(tp);
    double total = 0;
    size_t C = (size_t)logits->cols, count = counted(logits, mask);
    for (size_t k = 0; k < ur_numel(logits); k++) {
        if (mask && mask->val[k / C] == 0.0f) continue;
        double x = logits->val[k], z = target->val[k];
        /* z softplus(-x) + (1 - z) softplus(x), a term left out when its weight is 0 so that
         * an infinite logit with a 0/1 target gives Inf or 0, not Inf - Inf. */
        double tail = log1p(exp(-fabs(x)));
        if (z != 0) total += z * ((x < 0 ? -x : 0) + tail);
        if (z != 1) total += (1 - z) * ((x > 0 ? x : 0) + tail);
    }
    reduce(y, total, count, red);
    ur_node *nd = ur_record(tp, &sigmoid_xent_op, y, 2, logits, target);
    if (nd) {
        nd->f[0] = red == UR_SUM ? 1.0f : (count ? 1.0f / (float)count : 0.0f);
        nd->aux = mask ? mask->val : NULL;
    }
    return y;
}

ur_tensor *ur_sigmoid_xent(ur_tape *tp, ur_tensor *logits, ur_tensor *target, ur_reduction red)
{
    return sigmoid_xent(tp, "sigmoid_xent", logits, target, NULL, red);
}

ur_tensor *ur_sigmoid_xent_masked(ur_tape *tp, ur_tensor *logits, ur_tensor *target,
                                  ur_tensor *mask, ur_reduction red)
{
    return sigmoid_xent(tp, "sigmoid_xent_masked", logits, target, mask, red);
}
