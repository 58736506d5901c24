/* Gradient averaging: the sum over ranks of weight * gradient, in one MPI_Allreduce over one
 * flat buffer per step.
 *
 * With B examples in the global batch and b_r on rank r, each rank's loss is the mean over
 * its own examples, L_r = (1 / b_r) sum_{i in r} l_i, and the global mean loss is
 *     L = (1 / B) sum_i l_i = sum_r (b_r / B) L_r,   so   dL/dp = sum_r w_r dL_r/dp,  w_r = b_r / B:
 * the gradient of the whole batch, whatever the split (even or not).
 *
 * The buffer, n = numel + n_extra + 1 floats:
 *   [0, numel)                w_r * gradient, parameters in set order
 *   [numel, numel + n_extra)  the caller's extra values, summed as they are
 *   [n - 1]                   1 when this rank's arguments were bad, else 0. The call is made
 *                             even then (a rank that returned early would leave the others
 *                             waiting in MPI_Allreduce); a non-zero sum makes every rank
 *                             refuse the result, and nothing is changed anywhere.
 * MPI_Allreduce needs the same count on every rank: the ranks agree on n (one small
 * all-reduce) the first time and whenever this rank's n changes.
 */
#include "dist/dist_internal.h"

#include <limits.h>
#include <math.h>
#include <string.h>

static const char *WHAT = "dist_average_grads";

/* Makes room for n floats and checks that every rank has the same n. 0, or -1 on every rank. */
static int agree_on_size(ur_dist *d, size_t n, char *err, size_t errlen)
{
    if (n == d->agreed) return 0;
    int have = ur_dist_buffer(d, n) != NULL;
    long long lo, hi;
    int same = ur_dist_agree(d, have ? (long long)n : -1, &lo, &hi);
    if (lo < 0) return ur_dist_fail(err, errlen, WHAT, "out of memory for %zu floats on a rank", n);
    if (!same)
        return ur_dist_fail(err, errlen, WHAT, "the ranks have different gradient sizes (%lld "
                            "to %lld floats: parameters plus extra values plus 1); nothing "
                            "was changed", lo, hi);
    if (n > INT_MAX)
        return ur_dist_fail(err, errlen, WHAT, "%zu floats do not fit one MPI_Allreduce "
                            "(at most %d)", n, INT_MAX);
    d->agreed = n;
    return 0;
}

int ur_dist_average_grads(ur_dist *d, ur_params *ps, double weight, float *extra, int n_extra,
                          char *err, size_t errlen)
{
    if (!d) return ur_dist_fail(err, errlen, WHAT, "no context");
    int bad = !ps || !(weight >= 0.0) || !isfinite(weight) || n_extra < 0 || (n_extra && !extra);
    if (d->size == 1 && !bad && weight == 1.0) return 0;   /* the sum over one rank */
    size_t numel = ur_params_numel(ps), n = numel + (size_t)(n_extra > 0 ? n_extra : 0) + 1;
    if (agree_on_size(d, n, err, errlen) != 0) return -1;

    double t0 = MPI_Wtime();
    float *buf = d->buf;
    if (!bad) {
        const float w = (float)weight;
        size_t off = 0;
        for (int i = 0; i < ur_params_count(ps); i++) {
            const ur_tensor *t = ur_params_at(ps, i);
            const float *g = t->grad;
            size_t m = ur_numel(t);
            for (size_t k = 0; k < m; k++) buf[off + k] = w * g[k];
            off += m;
        }
        if (n_extra > 0) memcpy(buf + numel, extra, (size_t)n_extra * sizeof *extra);
    }
    buf[n - 1] = bad ? 1.0f : 0.0f;
    double t1 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, d->comm);
    double t2 = MPI_Wtime();
    if (buf[n - 1] != 0.0f)
        return ur_dist_fail(err, errlen, WHAT, "%.0f rank(s) passed a bad weight (finite and "
                            ">= 0 expected) or extra values; no gradient was changed",
                            buf[n - 1]);
    size_t off = 0;
    for (int i = 0; i < ur_params_count(ps); i++) {
        ur_tensor *t = ur_params_at(ps, i);
        size_t m = ur_numel(t);
        memcpy(t->grad, buf + off, m * sizeof *buf);
        off += m;
    }
    if (n_extra > 0) memcpy(extra, buf + numel, (size_t)n_extra * sizeof *extra);
    d->stats.calls++;
    d->stats.bytes += (double)n * sizeof *buf;
    d->stats.pack_s += (t1 - t0) + (MPI_Wtime() - t2);
    d->stats.allreduce_s += t2 - t1;
    return 0;
}
