/* Internal: the one place where ops call BLAS for a product.
 *
 * out (m x n) = op(X) op(Y) + beta out, X and Y row-major with leading dimensions ldx, ldy.
 * A product with one row or one column is a matrix-vector product and one with k = 1 an
 * outer product: sgemv and sger do those without sgemm's per-call packing of the whole
 * matrix, which dominates at batch size 1 (sampling, min-char-rnn). OpenBLAS itself always
 * runs on one thread here, set once for the process by ops/pool.c before the first product
 * (never changed per call, which would race with other threads): a product of at least 2^20
 * multiply-adds is cut by rows or columns of out into one part per thread of ops/pool.h
 * (ur_threads(): OPENBLAS_NUM_THREADS unless ur_set_threads says otherwise), each a
 * single-threaded sgemm; smaller ones run on the caller. OpenBLAS's own threads would
 * otherwise wake for every large product and then spin, yielding, for a while after it,
 * beside the pool's threads that run a recurrence's per-step work.
 */
#ifndef UR_BLAS_H
#define UR_BLAS_H

#include <cblas.h>

void ur_blas_gemm(int tx, int ty, int m, int n, int k, const float *x, int ldx, const float *y,
                  int ldy, float beta, float *out, int ldo);
/* out = bias + op(X) op(Y), the 1 x n bias added to every row (in the kernel's store when ours
 * runs the product, else copied into out's rows before an sgemm with beta = 1). */
void ur_blas_gemm_bias(int tx, int ty, int m, int n, int k, const float *x, int ldx,
                       const float *y, int ldy, const float *bias, float *out, int ldo);
/* C1 += X1^T Y and C2 += X2^T Y (X1 k x m1, X2 k x m2, Y k x n): one product of ours that packs
 * Y once for both (ops/rgemm.h) where that is preferred, else two ur_blas_gemm calls. */
void ur_blas_gemm_tn2(int m1, int m2, int n, int k, const float *x1, int ldx1, const float *x2,
                      int ldx2, const float *y, int ldy, float *c1, int ldc1, float *c2,
                      int ldc2);

#endif
