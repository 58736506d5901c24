/* Gradient clipping over a whole parameter set: by global L2 norm, and by value. */
#include "graph/ur_train.h"

#include <math.h>

double ur_grad_norm(const ur_params *ps)
{
    double sum = 0.0;
    for (int i = 0; i < ur_params_count(ps); i++) {
        const ur_tensor *t = ur_params_at(ps, i);
        size_t n = ur_numel(t);
        for (size_t k = 0; k < n; k++) sum += (double)t->grad[k] * (double)t->grad[k];
    }
    return sqrt(sum);
}

/* g <- g * (max_norm / norm) when norm > max_norm, so that the new global norm is max_norm. */
double ur_clip_grad_norm(ur_params *ps, double max_norm)
{
    double norm = ur_grad_norm(ps);
    if (!isfinite(norm) || !(max_norm > 0.0) || norm <= max_norm) return norm;
    double scale = max_norm / norm;
    for (int i = 0; i < ur_params_count(ps); i++) {
        ur_tensor *t = ur_params_at(ps, i);
        size_t n = ur_numel(t);
        for (size_t k = 0; k < n; k++) t->grad[k] = (float)((double)t->grad[k] * scale);
    }
    return norm;
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
