/* Internal: the one place where ops call BLAS for a product.
 *
 * out (m x n) = op(X) op(Y) + beta out, X and Y row-major with leading dimensions ldx, ldy.
 * A product with one row or one column is a matrix-vector product and one with k = 1 an
 * outer product: sgemv and sger do those without sgemm's per-call packing of the whole
 * matrix, which dominates at batch size 1 (sampling, min-char-rnn). Products too small to
 * gain from OpenBLAS's threads (fewer than 2^20 multiply-adds) run on one thread: waking the
 * pool costs more than such a product.
 */
#ifndef UR_BLAS_H
#define UR_BLAS_H

#include <cblas.h>

void ur_blas_gemm(int tx, int ty, int m, int n, int k, const float *x, int ldx, const float *y,
                  int ldy, float beta, float *out, int ldo);

#endif
