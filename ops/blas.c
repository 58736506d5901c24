#include "ops/blas.h"

#include <string.h>

#include "ops/pool.h"
#include "ops/rgemm.h"

#define T(flag) ((flag) ? CblasTrans : CblasNoTrans)
#define SMALL_PRODUCT ((double)(1 << 20))

/* One product, cut into parts by rows (split_rows) or columns of out. */
typedef struct gemm_job {
    int tx, ty, m, n, k, ldx, ldy, ldo, parts, split_rows;
    const float *x, *y;
    float beta;
    float *out;
    const float *bias; /* or NULL: each part first copies it into its rows of out (beta 1) */
} gemm_job;

/* Parts [p0, p1), each one sgemm over its own rows or columns, whoever runs it: OpenBLAS's
 * sums depend on the shape it is given (its blocking of k follows m and n), so a part must be
 * the same call whether a worker runs it or a caller that found the pool busy runs them all.
 * The result then depends on ur_threads() only, never on what other threads are doing. */
static void gemm_parts(void *ctx, int p0, int p1)
{
    const gemm_job *j = ctx;
    int len = j->split_rows ? j->m : j->n;
    for (int p = p0; p < p1; p++) {
        int a = (int)((long)len * p / j->parts), b = (int)((long)len * (p + 1) / j->parts);
        if (a >= b) continue;
        if (j->bias) { /* the part's block of out starts at the bias */
            int r0 = j->split_rows ? a : 0, r1 = j->split_rows ? b : j->m;
            int c0 = j->split_rows ? 0 : a, c1 = j->split_rows ? j->n : b;
            for (int r = r0; r < r1; r++)
                memcpy(j->out + (size_t)r * j->ldo + c0, j->bias + c0,
                       (size_t)(c1 - c0) * sizeof *j->out);
        }
        if (j->split_rows) { /* rows [a, b) of out and of op(X) */
            const float *x = j->tx ? j->x + a : j->x + (size_t)a * j->ldx;
            cblas_sgemm(CblasRowMajor, T(j->tx), T(j->ty), b - a, j->n, j->k, 1.0f, x, j->ldx,
                        j->y, j->ldy, j->beta, j->out + (size_t)a * j->ldo, j->ldo);
        } else { /* columns [a, b) of out and of op(Y) */
            const float *y = j->ty ? j->y + (size_t)a * j->ldy : j->y + a;
            cblas_sgemm(CblasRowMajor, T(j->tx), T(j->ty), j->m, b - a, j->k, 1.0f, j->x, j->ldx,
                        y, j->ldy, j->beta, j->out + a, j->ldo);
        }
    }
}

/* The threads an m x n x k product is split over: the pool's, or 1 for a product that is small
 * or that sgemv or sger does (one row or column, or k = 1 added to out). */
static int split_threads(int m, int n, int k, float beta)
{
    if (m == 1 || n == 1 || (k == 1 && beta == 1.0f) || (double)m * n * k < SMALL_PRODUCT)
        return 1;
    return ur_pool_threads();
}

void ur_blas_gemm(int tx, int ty, int m, int n, int k, const float *x, int ldx, const float *y,
                  int ldy, float beta, float *out, int ldo)
{
    if ((beta == 0.0f || beta == 1.0f) && ur_rgemm_gemm_preferred(m, n, k) &&
        ur_rgemm_gemm(tx, ty, m, n, k, x, ldx, y, ldy, beta, out, ldo) == 0)
        return;
    int threads = split_threads(m, n, k, beta);
    /* OpenBLAS runs on one thread (set once by ops/pool.c): a large product is split over the
     * pool's threads instead (each part a single-threaded sgemm), so that OpenBLAS's own
     * threads never spin beside the pool's between the per-step products of a recurrence. */
    if (threads > 1) {
        int split_rows = m >= n;
        gemm_job j = {tx, ty, m, n, k, ldx, ldy, ldo, threads, split_rows, x, y, beta, out, NULL};
        ur_pool_for_threads(threads, threads, 1, gemm_parts, &j);
    } else if (m == 1) { /* out^T = op(Y)^T x^T: Y is k x n stored as such, or n x k when ty */
        cblas_sgemv(CblasRowMajor, ty ? CblasNoTrans : CblasTrans, ty ? n : k, ty ? k : n, 1.0f,
                    y, ldy, x, tx ? ldx : 1, beta, out, 1);
    } else if (n == 1) { /* out = op(X) y: X is m x k stored as such, or k x m when tx */
        cblas_sgemv(CblasRowMajor, T(tx), tx ? k : m, tx ? m : k, 1.0f, x, ldx, y, ty ? 1 : ldy,
                    beta, out, ldo);
    } else if (k == 1 && beta == 1.0f) { /* out += x y^T */
        cblas_sger(CblasRowMajor, m, n, 1.0f, x, tx ? 1 : ldx, y, ty ? ldy : 1, out, ldo);
    } else {
        cblas_sgemm(CblasRowMajor, T(tx), T(ty), m, n, k, 1.0f, x, ldx, y, ldy, beta, out, ldo);
    }
}

void ur_blas_gemm_bias(int tx, int ty, int m, int n, int k, const float *x, int ldx,
                       const float *y, int ldy, const float *bias, float *out, int ldo)
{
    if (ur_rgemm_gemm_preferred(m, n, k) &&
        ur_rgemm_gemm_bias(tx, ty, m, n, k, x, ldx, y, ldy, bias, out, ldo) == 0)
        return;
    int threads = split_threads(m, n, k, 1.0f);
    if (threads > 1) {
        /* as ur_blas_gemm's split, each part copying the bias into its own block first */
        gemm_job j = {tx, ty, m, n, k, ldx, ldy, ldo, threads, m >= n, x, y, 1.0f, out, bias};
        ur_pool_for_threads(threads, threads, 1, gemm_parts, &j);
        return;
    }
    for (int r = 0; r < m; r++) memcpy(out + (size_t)r * ldo, bias, (size_t)n * sizeof *out);
    ur_blas_gemm(tx, ty, m, n, k, x, ldx, y, ldy, 1.0f, out, ldo);
}

void ur_blas_gemm_tn2(int m1, int m2, int n, int k, const float *x1, int ldx1, const float *x2,
                      int ldx2, const float *y, int ldy, float *c1, int ldc1, float *c2,
                      int ldc2)
{
    if (ur_rgemm_gemm_tn2_preferred(m1, m2, n, k) &&
        ur_rgemm_gemm_tn2(m1, m2, n, k, x1, ldx1, x2, ldx2, y, ldy, c1, ldc1, c2, ldc2) == 0)
        return;
    ur_blas_gemm(1, 0, m1, n, k, x1, ldx1, y, ldy, 1.0f, c1, ldc1);
    ur_blas_gemm(1, 0, m2, n, k, x2, ldx2, y, ldy, 1.0f, c2, ldc2);
}
