/* Internal: the recurrent product's own GEMM, for a weight packed once and used T times.
 *
 *     C (m x n) += A (m x k) P,   P = op(W) (k x n) packed by ur_rgemm_pack
 *
 * A recurrence multiplies a small h (m = batch rows) by the same weight at every step.
 * cblas_sgemm copies ("packs") W into its panel layout on every call, T times per pass, and
 * that copy was a third of an LSTM step. Packing once per forward (W) and once per backward
 * (W^T) and calling this kernel per step does the copy twice per pass instead. The columns
 * are split in whole panels over the threads of ops/pool.h, each thread always the same
 * columns, so its share of P stays in its own core's cache from step to step.
 *
 * Panel layout: NR columns per panel (32 for AVX-512, 16 for AVX2), panel p holds rows
 * 0 .. k-1 of columns [p NR, p NR + NR) one row after another, zero past column n.
 * The kernel is picked at load from the CPU (AVX-512F, else AVX2 with FMA, else none:
 * callers then keep cblas); UR_RGEMM=avx512|avx2|blas in the environment forces one (blas:
 * none; a kernel the CPU lacks is never chosen), and UR_ISA (ops/isa.h) caps it: avx2 allows
 * the AVX2 kernel at most, generic none.
 */
#ifndef UR_RGEMM_H
#define UR_RGEMM_H

#include <stddef.h>

/* "avx512", "avx2" or "blas" (no kernel of ours: use cblas). */
const char *ur_rgemm_kernel(void);
/* For tests: switches to the kernel called name ("avx512", "avx2", "blas"); -1 when the CPU
 * lacks it. Not thread-safe: only while no product runs, and before anything is packed. */
int ur_rgemm_select(const char *name);
/* 1 when a kernel is available. */
int ur_rgemm_available(void);
/* Floats a packed k x n takes (a multiple of 16, so consecutive buffers stay aligned). */
size_t ur_rgemm_packed_floats(int k, int n);
/* Packs op(W) (k x n): W is k x n with row stride ldw, or n x k when trans (op(W) = W^T). */
void ur_rgemm_pack(const float *w, int ldw, int trans, int k, int n, float *packed);
/* C += A P (beta = 1); A has row stride lda, C ldc. Split over the pool's threads when the
 * product is large enough to gain from it. Only with a kernel available. */
void ur_rgemm(int m, int n, int k, const float *a, int lda, const float *packed, float *c,
              int ldc);

/* Panels a packed k x n has: the units a split of ur_rgemm_range's work counts in. */
int ur_rgemm_panels(int n);
/* Panels per range when a per-step m x n x k product is split over the pool's threads (whole
 * tiles), or 0 when it is too small to gain from a split: one thread does it all. */
int ur_rgemm_step_grain(int m, int n, int k);
/* ur_rgemm's product for the columns of panels [p0, p1) only, on the calling thread: for a
 * caller that splits several products (and other work) over the pool in one hand-over. */
void ur_rgemm_range(int m, int n, int k, const float *a, int lda, const float *packed, float *c,
                    int ldc, int p0, int p1);

/* C = op(X) op(Y) + beta C (row-major, beta 0 or 1) by the same kernels, op(Y) packed per call
 * into a buffer of the calling thread (with AVX-512, op(X) too when n >= 256); 0, or -1
 * (nothing done) without a kernel, for another beta, or when the buffer cannot grow. */
int ur_rgemm_gemm(int tx, int ty, int m, int n, int k, const float *x, int ldx, const float *y,
                  int ldy, float beta, float *c, int ldc);
/* C = bias + op(X) op(Y), bias (1 x n) added to every row; 0 or -1 as above. */
int ur_rgemm_gemm_bias(int tx, int ty, int m, int n, int k, const float *x, int ldx,
                       const float *y, int ldy, const float *bias, float *c, int ldc);
/* C1 += X1^T Y and C2 += X2^T Y (X1 k x m1, X2 k x m2, Y k x n) as one product [X1 X2]^T Y,
 * op(Y) packed once for both (two weights' gradients from one dZ); 0, or -1 as above. */
int ur_rgemm_gemm_tn2(int m1, int m2, int n, int k, const float *x1, int ldx1, const float *x2,
                      int ldx2, const float *y, int ldy, float *c1, int ldc1, float *c2, int ldc2);
/* 1 when ur_blas_gemm should use ur_rgemm_gemm for an m x n x k product: OpenBLAS's core is
 * narrower than our kernel, or as wide and the product has under 2^26 multiply-adds
 * (UR_GEMM=blas|own in the environment forces either); and the product is large enough for
 * its packing to pay. */
int ur_rgemm_gemm_preferred(int m, int n, int k);
/* 1 when ur_blas_gemm_tn2 should use ur_rgemm_gemm_tn2 rather than two ur_blas_gemm calls. */
int ur_rgemm_gemm_tn2_preferred(int m1, int m2, int n, int k);
/* What runs the large products: "ours-avx512", "ours-avx2", "openblas", or
 * "ours-avx512-small+openblas" / "ours-avx2-small+openblas". */
const char *ur_rgemm_gemm_path(void);

#endif
