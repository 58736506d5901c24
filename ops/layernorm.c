/* Layer normalisation over each row (Ba, Kiros and Hinton 2016), one fused op.
 *
 * Shapes: x m x n (rows = batch, normalised over the n features), gain g and bias b 1 x n
 * (each optional: NULL means 1 and 0), y m x n. For one row:
 *     mu  = (1/n) sum_j x_j
 *     var = (1/n) sum_j (x_j - mu)^2                (biased, as in the paper and PyTorch)
 *     r   = 1 / sqrt(var + eps)
 *     xh_j = (x_j - mu) r
 *     y_j  = g_j xh_j + b_j
 * mu and r of every row are saved on the tape (2 m floats); xh is recomputed from x.
 *
 * Backward. db_j += sum over rows of dy_j and dg_j += sum over rows of dy_j xh_j (both summed
 * in double per column). For dx, let
 * h_j = dy_j g_j, the gradient reaching xh. Since d mu / dx_j = 1/n and
 *     d var / dx_j = (2/n) (x_j - mu) - (2/n) sum_i (x_i - mu) / n = (2/n) (x_j - mu),
 *     d r / dx_j = -(1/2) (var + eps)^(-3/2) d var / dx_j = -r^3 (x_j - mu) / n = -r^2 xh_j / n,
 * the Jacobian of the normalisation is
 *     d xh_i / d x_j = r (delta_ij - 1/n) + (x_i - mu) d r / d x_j
 *                    = r (delta_ij - 1/n - xh_i xh_j / n)
 * and so
 *     dx_j = sum_i h_i d xh_i / d x_j = r (h_j - mean(h) - xh_j mean(h xh)),
 * two row sums and one pass, instead of the dozen ops (and tensors) of the composed form. The
 * row statistics are accumulated in double. A NaN in a row makes that row NaN.
 */
#include "ops/ur_ops.h"

#include <math.h>

#include "ops/colsum.h"

/* dg_j += sum over the rows of dy_j xh_j, each column summed in double (as in ops/colsum.h:
 * the rows may be T*B). */
static void gain_grad(float *restrict dg, const float *x, const float *dy, const float *mu,
                      const float *rs, int m, int n)
{
    for (int j0 = 0; j0 < n; j0 += UR_COLSUM_BLOCK) {
        const int w = n - j0 < UR_COLSUM_BLOCK ? n - j0 : UR_COLSUM_BLOCK;
        double acc[UR_COLSUM_BLOCK] = {0};
        for (int r = 0; r < m; r++) {
            const float *xr = x + (size_t)r * n + j0, *dr = dy + (size_t)r * n + j0;
            const float u = mu[r], rr = rs[r];
            for (int j = 0; j < w; j++) acc[j] += (double)(dr[j] * (xr[j] - u) * rr);
        }
        for (int j = 0; j < w; j++) dg[j0 + j] += (float)acc[j];
    }
}

/* in[0] = x, then the gain when i[0], then the bias when i[1]; aux = mu[m] then r[m]. */
static void layer_norm_backward(ur_node *nd)
{
    ur_tensor *x = nd->in[0], *y = nd->out;
    ur_tensor *gain = nd->i[0] ? nd->in[1] : NULL, *bias = nd->i[1] ? nd->in[1 + nd->i[0]] : NULL;
    int m = x->rows, n = x->cols;
    const float *mu = nd->aux, *rs = mu + m, *g = gain ? gain->val : NULL;
    float *dx = x->requires_grad ? ur_grad(x) : NULL;
    float *dg = gain && gain->requires_grad ? ur_grad(gain) : NULL;
    float *db = bias && bias->requires_grad ? ur_grad(bias) : NULL;
    if (db) ur_add_column_sums(db, y->grad, m, n);
    if (dg) gain_grad(dg, x->val, y->grad, mu, rs, m, n);
    if (!dx) return;
    for (int r = 0; r < m; r++) {
        const float *xr = x->val + (size_t)r * n, *dy = y->grad + (size_t)r * n;
        const float u = mu[r], rr = rs[r];
        float *d = dx + (size_t)r * n;
        double sh = 0, shx = 0; /* sum h, sum h xh */
        for (int j = 0; j < n; j++) {
            float hj = g ? dy[j] * g[j] : dy[j];
            sh += hj;
            shx += (double)hj * ((xr[j] - u) * rr);
        }
        const float mh = (float)(sh / n), mhx = (float)(shx / n);
        if (g)
            for (int j = 0; j < n; j++) d[j] += rr * (dy[j] * g[j] - mh - (xr[j] - u) * rr * mhx);
        else
            for (int j = 0; j < n; j++) d[j] += rr * (dy[j] - mh - (xr[j] - u) * rr * mhx);
    }
}
static const ur_op layer_norm_op = {"layer_norm", layer_norm_backward};

ur_tensor *ur_layer_norm(ur_tape *tp, ur_tensor *x, ur_tensor *gain, ur_tensor *bias, float eps)
{
    if (!ur_op_begin(tp, "layer_norm", 1, x)) return ur_tape_poison(tp);
    if (gain && (gain->rows != 1 || gain->cols != x->cols))
        return ur_shape_error(tp, "layer_norm", "gain must be 1 x cols of x", x, gain);
    if (bias && (bias->rows != 1 || bias->cols != x->cols))
        return ur_shape_error(tp, "layer_norm", "bias must be 1 x cols of x", x, bias);
    if (!(eps >= 0.0f) || isinf(eps))
        return ur_tape_fail(tp, "layer_norm: epsilon %g must be finite and >= 0", (double)eps);
    int m = x->rows, n = x->cols;
    ur_tensor *y = ur_tensor_new(tp, m, n);
    float *stats = ur_tape_alloc(tp, 2 * (size_t)m * sizeof *stats);
    if (!y || !stats) return ur_tape_poison(tp);
    for (int r = 0; r < m; r++) {
        const float *xr = x->val + (size_t)r * n;
        float *yr = y->val + (size_t)r * n;
        double s = 0, ss = 0;
        for (int j = 0; j < n; j++) s += xr[j];
        const double mu = s / n;
        for (int j = 0; j < n; j++) ss += ((double)xr[j] - mu) * ((double)xr[j] - mu);
        const float u = (float)mu, rr = (float)(1.0 / sqrt(ss / n + (double)eps));
        stats[r] = u;
        stats[m + r] = rr;
        for (int j = 0; j < n; j++) yr[j] = (xr[j] - u) * rr;
        if (gain) for (int j = 0; j < n; j++) yr[j] *= gain->val[j];
        if (bias) for (int j = 0; j < n; j++) yr[j] += bias->val[j];
    }
    ur_tensor *in[3] = {x};
    int n_in = 1;
    if (gain) in[n_in++] = gain;
    if (bias) in[n_in++] = bias;
    ur_node *nd = ur_record_array(tp, &layer_norm_op, y, n_in, in);
    if (nd) {
        nd->aux = stats;
        nd->i[0] = gain != NULL;
        nd->i[1] = bias != NULL;
    }
    return y;
}
