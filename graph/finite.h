/* Internal: find the first NaN or Inf in a float array, fast when there is none. */
#ifndef UR_FINITE_H
#define UR_FINITE_H

#include <math.h>
#include <stddef.h>

/* Index of the first NaN or Inf in v[0..n), or n when every value is finite. The screen
 * (x * 0 is 0 for finite x, NaN otherwise) runs on 16 independent partial sums, a loop the
 * compiler vectorises; the search runs only when the screen finds something. */
static inline size_t ur_first_non_finite(const float *v, size_t n)
{
    float lane[16] = {0};
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        for (int j = 0; j < 16; j++) lane[j] += v[k + j] * 0.0f;
    float acc = 0.0f;
    for (; k < n; k++) acc += v[k] * 0.0f;
    for (int j = 0; j < 16; j++) acc += lane[j];
    if (acc == 0.0f) return n;
    for (k = 0; k < n; k++)
        if (!isfinite(v[k])) return k;
    return n;
}

#endif
