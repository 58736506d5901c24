/* Gradient clipping over a whole parameter set: by global L2 norm, and by value. */
#include "graph/ur_train.h"

#include <math.h>

#define LANES 16
#define BLOCK 4096

/* Sum of squares of g[0..n): within a block of BLOCK values, LANES float partial sums (a loop
 * the compiler vectorises; each partial sum adds at most BLOCK / LANES terms, so its relative
 * rounding error is bounded by 256 float ulps and is far smaller in practice);
 * blocks are added in double. */
static double sum_squares(const float *g, size_t n)
{
    double total = 0.0;
    for (size_t b = 0; b < n; b += BLOCK) {
        size_t end = n - b < BLOCK ? n : b + BLOCK, k = b;
        float lane[LANES] = {0};
        for (; k + LANES <= end; k += LANES)
            for (int j = 0; j < LANES; j++) lane[j] += g[k + j] * g[k + j];
        for (; k < end; k++) lane[0] += g[k] * g[k];
        for (int j = 0; j < LANES; j++) total += lane[j];
    }
    return total;
}

double ur_grad_norm(const ur_params *ps)
{
    double sum = 0.0;
    for (int i = 0; i < ur_params_count(ps); i++) {
        const ur_tensor *t = ur_params_at(ps, i);
        sum += sum_squares(t->grad, ur_numel(t));
    }
    return sqrt(sum);
}

/* g <- g * (max_norm / norm) when norm > max_norm, so that the new global norm is max_norm. */
int ur_clip_grad_norm_stats(ur_params *ps, double max_norm, ur_clip_stats *stats)
{
    ur_clip_stats st = {ur_grad_norm(ps), 1.0, 0};
    int rc = 0;
    if (!(max_norm > 0.0) || !isfinite(max_norm) || !isfinite(st.norm)) {
        rc = -1;
    } else if (st.norm > max_norm) {
        st.scale = max_norm / st.norm;
        st.clipped = 1;
        const float fscale = (float)st.scale;
        for (int i = 0; i < ur_params_count(ps); i++) {
            ur_tensor *t = ur_params_at(ps, i);
            size_t n = ur_numel(t);
            for (size_t k = 0; k < n; k++) t->grad[k] *= fscale;
        }
    }
    if (stats) *stats = st;
    return rc;
}

double ur_clip_grad_norm(ur_params *ps, double max_norm)
{
    ur_clip_stats st;
    return ur_clip_grad_norm_stats(ps, max_norm, &st) == 0 ? st.norm : -1.0;
}

int ur_clip_grad_value(ur_params *ps, float limit)
{
    if (!(limit >= 0.0f)) return -1;
    for (int i = 0; i < ur_params_count(ps); i++) {
        ur_tensor *t = ur_params_at(ps, i);
        size_t n = ur_numel(t);
        float *g = t->grad;
        for (size_t k = 0; k < n; k++) {
            if (g[k] > limit) g[k] = limit;
            else if (g[k] < -limit) g[k] = -limit;
        }
    }
    return 0;
}
