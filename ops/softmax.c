/* Softmax and log-softmax over each row of x (m x n), with gradients.
 *
 *     softmax       y_j = e^(x_j - M) / S          M = max_k x_k,  S = sum_k e^(x_k - M)
 *     log_softmax   y_j = (x_j - M) - ln S
 * Subtracting the row max keeps every exponent <= 0: the largest term is e^0 = 1, so S is in
 * [1, n] and logits of 1e4 (or any finite size) neither overflow nor lose their row.
 *
 * Backward, g = dy of one row:
 *     softmax       dx_j += y_j (g_j - sum_k g_k y_k)
 *     log_softmax   dx_j += g_j - softmax_j sum_k g_k,    softmax_j = e^(y_j)
 *
 * The exps come from fastmath's vectorised ur_exp (a row of attention scores or of an output
 * layer is a hot loop; libm's expf is a scalar call). An exponent below -87, where ur_exp
 * stops, is taken as 0: the true value is below 2e-38 next to a largest term of 1, and a
 * logit of -Inf (a mask) gets a probability of exactly 0. A row whose max is not finite (a
 * NaN anywhere, a +Inf, or nothing but -Inf) has no defined normaliser: it comes out all NaN,
 * and no exp is taken of a NaN.
 */
#include "ops/ur_ops.h"

#include "ops/fastmath.h"

#include <math.h>

/* The max of a row, NaN if the row holds a NaN. */
static float row_max(int n, const float *x)
{
    float m = x[0];
    int nan = 0;
    for (int j = 0; j < n; j++) {
        m = x[j] > m ? x[j] : m;
        nan |= x[j] != x[j];
    }
    return nan ? NAN : m;
}

/* p_j = e^(x_j - m), 0 below e^-87; returns their sum (in double). */
UR_VECTOR_BODY double exp_shifted_body(int n, const float *restrict x, float m,
                                       float *restrict p)
{
    for (int j = 0; j < n; j++) {
        float d = x[j] - m;
        p[j] = d < -87.0f ? 0.0f : ur_exp1(d);
    }
    double s = 0;
    for (int j = 0; j < n; j++) s += p[j];
    return s;
}
UR_VECTOR_RET(double, exp_shifted,
              (int n, const float *restrict x, float m, float *restrict p),
              (n, x, m, p))

static void fill_nan(int n, float *y)
{
    for (int j = 0; j < n; j++) y[j] = NAN;
}

/* The forward of both ops: each row's max and shifted exps, then the row is finished as
 * probabilities (y_j = p_j / S) or, for log_softmax, as (x_j - M) - ln S. */
static ur_tensor *softmax_forward(ur_tape *tp, const ur_op *op, ur_tensor *x, int log_space)
{
    if (!ur_op_begin(tp, op->name, 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    if (!y) return ur_tape_poison(tp);
    int n = x->cols;
    for (int r = 0; r < x->rows; r++) {
        const float *xr = x->val + (size_t)r * n;
        float *yr = y->val + (size_t)r * n;
        float m = row_max(n, xr);
        if (!isfinite(m)) { fill_nan(n, yr); continue; }
        double s = exp_shifted(n, xr, m, yr);
        if (log_space) { /* the exps only give S */
            float log_s = (float)log(s);
            for (int j = 0; j < n; j++) yr[j] = (xr[j] - m) - log_s;
        } else {
            float inv = (float)(1.0 / s);
            for (int j = 0; j < n; j++) yr[j] *= inv;
        }
    }
    ur_record(tp, op, y, 1, x);
    return y;
}

/* ---- softmax ------------------------------------------------------------------------------ */

static void softmax_backward(ur_node *nd)
{
    const ur_tensor *y = nd->out;
    int n = y->cols;
    float *dx = ur_grad(nd->in[0]);
    for (int r = 0; r < y->rows; r++) {
        const float *yr = y->val + (size_t)r * n, *g = y->grad + (size_t)r * n;
        float *d = dx + (size_t)r * n;
        double dot = 0;
        for (int j = 0; j < n; j++) dot += (double)g[j] * yr[j];
        float fdot = (float)dot;
        for (int j = 0; j < n; j++) d[j] += yr[j] * (g[j] - fdot);
    }
}
static const ur_op softmax_op = {"softmax", softmax_backward};

ur_tensor *ur_softmax(ur_tape *tp, ur_tensor *x)
{
    return softmax_forward(tp, &softmax_op, x, 0);
}

/* ---- log_softmax -------------------------------------------------------------------------- */

/* dx_j += g_j - e^(y_j) sum_k g_k; a NaN row (see above) passes its NaN on. */
UR_VECTOR_BODY void log_softmax_row_backward_body(int n, const float *restrict y,
                                                  const float *restrict g, float *restrict d)
{
    double sg = 0;
    for (int j = 0; j < n; j++) sg += g[j];
    float s = (float)sg;
    for (int j = 0; j < n; j++) d[j] += g[j] - (y[j] < -87.0f ? 0.0f : ur_exp1(y[j])) * s;
}
UR_VECTOR_VOID(log_softmax_row_backward,
               (int n, const float *restrict y, const float *restrict g, float *restrict d),
               (n, y, g, d))

static void log_softmax_backward(ur_node *nd)
{
    const ur_tensor *y = nd->out;
    int n = y->cols;
    float *dx = ur_grad(nd->in[0]);
    for (int r = 0; r < y->rows; r++) {
        const float *yr = y->val + (size_t)r * n, *g = y->grad + (size_t)r * n;
        float *d = dx + (size_t)r * n;
        if (isnan(yr[0])) {
            for (int j = 0; j < n; j++) d[j] += yr[0];
            continue;
        }
        log_softmax_row_backward(n, yr, g, d);
    }
}
static const ur_op log_softmax_op = {"log_softmax", log_softmax_backward};

ur_tensor *ur_log_softmax(ur_tape *tp, ur_tensor *x)
{
    return softmax_forward(tp, &log_softmax_op, x, 1);
}
