/* Initialisers: fill a tensor's values, seeded by ur_rng so runs are reproducible.
 * Weights multiply on the right (y = x W), so W is fan_in x fan_out = rows x cols. */
#include "graph/ur_train.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* LAPACK (shipped inside OpenBLAS), Fortran calling convention, 32-bit integers.
 * sgeqrf: A = Q R, Householder reflectors below the diagonal of A, R on and above it.
 * sorgqr: turns the reflectors into the explicit m x n Q with orthonormal columns. */
extern void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau,
                    float *work, const int *lwork, int *info);
extern void sorgqr_(const int *m, const int *n, const int *k, float *a, const int *lda,
                    const float *tau, float *work, const int *lwork, int *info);

static _Thread_local char init_error[160];

const char *ur_init_error(void) { return init_error[0] ? init_error : NULL; }

/* Records why initialiser fn refused its arguments; returns -1. */
static int refuse(const char *fn, const char *why)
{
    snprintf(init_error, sizeof init_error, "%s: %s", fn, why);
    return -1;
}

/* 1 when t can be filled, else records why (and init_error names fn). Clears the error. */
static int usable_for(const char *fn, const ur_tensor *t)
{
    init_error[0] = '\0';
    if (!t || !t->val) return refuse(fn, "the tensor is NULL") + 1;
    if (t->rows <= 0 || t->cols <= 0) return refuse(fn, "the tensor has no elements") + 1;
    return 1;
}
#define usable(t) usable_for(__func__, (t))

int ur_init_uniform(ur_tensor *t, float lo, float hi, ur_rng *rng)
{
    if (!usable(t)) return -1;
    if (!rng) return refuse(__func__, "rng is NULL");
    if (!isfinite(lo) || !isfinite(hi) || hi < lo) return refuse(__func__, "needs finite lo <= hi");
    size_t n = ur_numel(t);
    for (size_t k = 0; k < n; k++) t->val[k] = lo + (hi - lo) * ur_rng_uniform(rng);
    return 0;
}

int ur_init_normal(ur_tensor *t, float mean, float std, ur_rng *rng)
{
    if (!usable(t)) return -1;
    if (!rng) return refuse(__func__, "rng is NULL");
    if (!isfinite(mean) || !isfinite(std) || std < 0.0f)
        return refuse(__func__, "needs a finite mean and a finite std >= 0");
    size_t n = ur_numel(t);
    for (size_t k = 0; k < n; k++) t->val[k] = mean + std * ur_rng_normal(rng);
    return 0;
}

int ur_init_xavier_uniform(ur_tensor *t, float gain, ur_rng *rng)
{
    if (!usable(t)) return -1;
    if (!isfinite(gain) || gain < 0.0f) return refuse(__func__, "needs a finite gain >= 0");
    float a = (float)(gain * sqrt(6.0 / ((double)t->rows + (double)t->cols)));
    return ur_init_uniform(t, -a, a, rng);
}

int ur_init_xavier_normal(ur_tensor *t, float gain, ur_rng *rng)
{
    if (!usable(t)) return -1;
    if (!isfinite(gain) || gain < 0.0f) return refuse(__func__, "needs a finite gain >= 0");
    float s = (float)(gain * sqrt(2.0 / ((double)t->rows + (double)t->cols)));
    return ur_init_normal(t, 0.0f, s, rng);
}

/* Draw A, m x n (m = max(rows, cols), n = min) with N(0, 1) entries, and factor A = Q R.
 * Q alone is not uniformly distributed: LAPACK's reflectors fix the signs of R's diagonal
 * in a way that depends on A. Multiplying column j of Q by sign(R_jj) makes Q R unique
 * with R_jj > 0, and then Q is Haar distributed. W is Q (tall) or Q^T (wide), times gain. */
int ur_init_orthogonal(ur_tensor *t, float gain, ur_rng *rng)
{
    if (!usable(t)) return -1;
    if (!rng) return refuse(__func__, "rng is NULL");
    if (!isfinite(gain)) return refuse(__func__, "needs a finite gain");
    if (ur_numel(t) > (size_t)INT_MAX) return refuse(__func__, "the tensor is too large for LAPACK");
    const int tall = t->rows >= t->cols;
    const int m = tall ? t->rows : t->cols, n = tall ? t->cols : t->rows;
    float *a = malloc((size_t)m * (size_t)n * sizeof *a);
    float *tau = malloc((size_t)n * sizeof *tau);
    float *sign = malloc((size_t)n * sizeof *sign);
    float *work = NULL;
    int info = 0, lwork = -1, rc = -1;
    float wsize = 0.0f;
    if (!a || !tau || !sign) goto done;
    for (size_t k = 0; k < (size_t)m * (size_t)n; k++) a[k] = ur_rng_normal(rng);

    /* One workspace size query serves both calls: take the larger. */
    sgeqrf_(&m, &n, a, &m, tau, &wsize, &lwork, &info);
    if (info != 0) goto done;
    float wsize2 = 0.0f;
    sorgqr_(&m, &n, &n, a, &m, tau, &wsize2, &lwork, &info);
    if (info != 0) goto done;
    lwork = (int)fmaxf(fmaxf(wsize, wsize2), (float)n) + 1;
    work = malloc((size_t)lwork * sizeof *work);
    if (!work) goto done;

    sgeqrf_(&m, &n, a, &m, tau, work, &lwork, &info);
    if (info != 0) goto done;
    for (int j = 0; j < n; j++) sign[j] = a[(size_t)j * m + j] < 0.0f ? -gain : gain;
    sorgqr_(&m, &n, &n, a, &m, tau, work, &lwork, &info);
    if (info != 0) goto done;

    /* a is column-major: Q(i, j) = a[j * m + i]. */
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float q = a[(size_t)j * m + i] * sign[j];
            if (tall) t->val[(size_t)i * t->cols + j] = q;  /* W = Q, rows x cols = m x n */
            else t->val[(size_t)j * t->cols + i] = q;       /* W = Q^T, rows x cols = n x m */
        }
    rc = 0;
done:
    free(a);
    free(tau);
    free(sign);
    free(work);
    if (rc != 0) refuse(__func__, info != 0 ? "LAPACK failed" : "out of memory");
    return rc;
}

int ur_init_identity(ur_tensor *t, float scale)
{
    if (!usable(t)) return -1;
    if (!isfinite(scale)) return refuse(__func__, "needs a finite scale");
    int d = t->rows < t->cols ? t->rows : t->cols;
    ur_init_zeros(t);
    for (int i = 0; i < d; i++) t->val[(size_t)i * t->cols + i] = scale;
    return 0;
}

int ur_init_constant(ur_tensor *t, float value)
{
    if (!usable(t)) return -1;
    size_t n = ur_numel(t);
    for (size_t k = 0; k < n; k++) t->val[k] = value;
    return 0;
}

int ur_init_zeros(ur_tensor *t) { return ur_init_constant(t, 0.0f); }
