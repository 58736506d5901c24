#include "ops/blas.h"

/* OpenBLAS's own calls, declared here so that any cblas.h will do. */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

#define T(flag) ((flag) ? CblasTrans : CblasNoTrans)
#define SMALL_PRODUCT ((double)(1 << 20))

void ur_blas_gemm(int tx, int ty, int m, int n, int k, const float *x, int ldx, const float *y,
                  int ldy, float beta, float *out, int ldo)
{
    int threads = openblas_get_num_threads();
    int single = threads > 1 && (double)m * n * k < SMALL_PRODUCT;
    if (single) openblas_set_num_threads(1);
    if (m == 1) /* out^T = op(Y)^T x^T: Y is k x n stored as such, or n x k when ty */
        cblas_sgemv(CblasRowMajor, ty ? CblasNoTrans : CblasTrans, ty ? n : k, ty ? k : n, 1.0f,
                    y, ldy, x, tx ? ldx : 1, beta, out, 1);
    else if (n == 1) /* out = op(X) y: X is m x k stored as such, or k x m when tx */
        cblas_sgemv(CblasRowMajor, T(tx), tx ? k : m, tx ? m : k, 1.0f, x, ldx, y, ty ? 1 : ldy,
                    beta, out, ldo);
    else if (k == 1 && beta == 1.0f) /* out += x y^T */
        cblas_sger(CblasRowMajor, m, n, 1.0f, x, tx ? 1 : ldx, y, ty ? ldy : 1, out, ldo);
    else
        cblas_sgemm(CblasRowMajor, T(tx), T(ty), m, n, k, 1.0f, x, ldx, y, ldy, beta, out, ldo);
    if (single) openblas_set_num_threads(threads);
}
