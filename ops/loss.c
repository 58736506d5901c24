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
 */
#include "ops/ur_ops.h"

#include <math.h>
#include <string.h>

#include "ops/fastmath.h"

/* y = the reduced total, in float and, for the gradient check, in double (y->exact). */
static void reduce(ur_tensor *y, double total, size_t count, ur_reduction red)
{
    y->exact = red == UR_SUM ? total : count ? total / (double)count : 0.0;
    y->has_exact = 1;
    y->val[0] = (float)y->exact;
}

/* One row: p = softmax(x), returns log sum_j exp(x_j - max x) (double accumulation). */
UR_VECTOR_CLONES static double softmax_row(int k, const float *restrict x, float *restrict p,
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

ur_tensor *ur_softmax_nll(ur_tape *tp, ur_tensor *logits, const int *targets, ur_reduction red)
{
    if (!ur_op_begin(tp, "softmax_nll", 1, logits)) return ur_tape_poison(tp);
    if (!targets) return ur_tape_fail(tp, "softmax_nll: targets are NULL");
    if (red != UR_MEAN && red != UR_SUM) return ur_tape_fail(tp, "softmax_nll: bad reduction %d", (int)red);
    int rows = logits->rows, k = logits->cols;
    size_t count = 0;
    for (int r = 0; r < rows; r++) {
        if (targets[r] < -1 || targets[r] >= k)
            return ur_tape_fail(tp, "softmax_nll: target %d in row %d is outside [0, %d) for %dx%d logits",
                                targets[r], r, k, rows, k);
        count += targets[r] >= 0;
    }
    ur_tensor *y = ur_tensor_new(tp, 1, 1);
    float *probs = ur_tape_alloc(tp, ur_numel(logits) * sizeof(float) + (size_t)rows * sizeof(int));
    if (!y || !probs) return ur_tape_poison(tp);
    double total = 0;
    for (int r = 0; r < rows; r++) {
        const float *x = logits->val + (size_t)r * k;
        float m;
        double lse = softmax_row(k, x, probs + (size_t)r * k, &m);
        if (targets[r] >= 0) total += lse - ((double)x[targets[r]] - m);
    }
    reduce(y, total, count, red);
    ur_node *nd = ur_record(tp, &softmax_nll_op, y, 1, logits);
    if (nd) {
        int *saved = (int *)(probs + ur_numel(logits));
        memcpy(saved, targets, (size_t)rows * sizeof *saved);
        nd->aux = probs;
        nd->f[0] = red == UR_SUM ? 1.0f : (count ? 1.0f / (float)count : 0.0f);
    }
    return y;
}

static int check_pair(ur_tape *tp, const char *op, ur_tensor *x, ur_tensor *z, ur_reduction red)
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
    return 1;
}

static void mse_backward(ur_node *n)
{
    ur_tensor *x = n->in[0], *z = n->in[1];
    float g = 2.0f * n->out->grad[0] * n->f[0];
    float *dx = x->requires_grad ? ur_grad(x) : NULL;
    float *dz = z->requires_grad ? ur_grad(z) : NULL;
    for (size_t k = 0; k < ur_numel(x); k++) {
        float d = g * (x->val[k] - z->val[k]);
        if (dx) dx[k] += d;
        if (dz) dz[k] -= d;
    }
}
static const ur_op mse_op = {"mse", mse_backward};

ur_tensor *ur_mse(ur_tape *tp, ur_tensor *x, ur_tensor *target, ur_reduction red)
{
    if (!check_pair(tp, "mse", x, target, red)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, 1, 1);
    if (!y) return ur_tape_poison(tp);
    double total = 0;
    for (size_t k = 0; k < ur_numel(x); k++) {
        double d = (double)x->val[k] - target->val[k];
        total += d * d;
    }
    reduce(y, total, ur_numel(x), red);
    ur_node *nd = ur_record(tp, &mse_op, y, 2, x, target);
    if (nd) nd->f[0] = red == UR_SUM ? 1.0f : 1.0f / (float)ur_numel(x);
    return y;
}

static void sigmoid_xent_backward(ur_node *n)
{
    ur_tensor *x = n->in[0], *z = n->in[1];
    float g = n->out->grad[0] * n->f[0];
    float *dx = x->requires_grad ? ur_grad(x) : NULL;
    float *dz = z->requires_grad ? ur_grad(z) : NULL;
    for (size_t k = 0; k < ur_numel(x); k++) {
        if (dx) dx[k] += g * (1.0f / (1.0f + expf(-x->val[k])) - z->val[k]);
        if (dz) dz[k] -= g * x->val[k];
    }
}
static const ur_op sigmoid_xent_op = {"sigmoid_xent", sigmoid_xent_backward};

ur_tensor *ur_sigmoid_xent(ur_tape *tp, ur_tensor *logits, ur_tensor *target, ur_reduction red)
{
    if (!check_pair(tp, "sigmoid_xent", logits, target, red)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, 1, 1);
    if (!y) return ur_tape_poison(tp);
    double total = 0;
    for (size_t k = 0; k < ur_numel(logits); k++) {
        double x = logits->val[k], z = target->val[k];
        /* z softplus(-x) + (1 - z) softplus(x), a term left out when its weight is 0 so that
         * an infinite logit with a 0/1 target gives Inf or 0, not Inf - Inf. */
        double tail = log1p(exp(-fabs(x)));
        if (z != 0) total += z * ((x < 0 ? -x : 0) + tail);
        if (z != 1) total += (1 - z) * ((x > 0 ? x : 0) + tail);
    }
    reduce(y, total, ur_numel(logits), red);
    ur_node *nd = ur_record(tp, &sigmoid_xent_op, y, 2, logits, target);
    if (nd) nd->f[0] = red == UR_SUM ? 1.0f : 1.0f / (float)ur_numel(logits);
    return y;
}
