/* Internal to ops/rgemm.c and ops/rgemm_gemm.c: one product as the kernels of ops/rgemm.c
 * take it, so that any product (ops/rgemm_gemm.c) runs through the same tiles as the
 * recurrent one. Not installed. */
#ifndef UR_RGEMM_JOB_H
#define UR_RGEMM_JOB_H

#include <stddef.h>

/* Our kernels are built with gcc on x86-64 (target attributes, one copy per ISA). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define UR_HAVE_KERNELS 1
#endif

/* The kernels, narrowest first. */
enum { K_NONE, K_AVX2, K_AVX512 };

/* One product; the pool hands out ranges of panels. */
typedef struct rgemm_job {
    int m, n, k, lda, ldc, id, ta, store;
    const float *a, *packed;
    float *c;
    size_t ps;         /* floats from one panel to the next: k NR */
    const float *bias; /* with store: C = bias + the product (each row), or NULL */
    int by_rows;       /* the pool's items are groups of ROW_GROUP rows (all panels), not panels */
    const struct rgemm_job *also; /* a second product over the same packed op(Y), run panel by
                                     panel beside this one (its panel in L1 for both), or NULL */
} rgemm_job;

/* Rows per item when a product is split by rows: whole tiles of either kernel (8 or 6 rows). */
#define ROW_GROUP 24

/* Below this many multiply-adds a product runs on one thread: the hand-over costs more. */
#define PARALLEL_MIN (1L << 15)

/* The kernel in use (K_*), chosen once from the CPU and the environment. */
int ur_rgemm_kernel_id(void);
/* Columns per panel of the kernel in use: 32 (AVX-512) or 16. */
int ur_rgemm_panel_width(void);
/* Rows per tile of the kernel in use: 8 (AVX-512) or 6; a packed op(X) is in tiles of these. */
int ur_rgemm_tile_rows(void);
/* Runs items [p0, p1) of the rgemm_job at ctx (panels, or row groups when by_rows): the pool's
 * callback (ops/pool.h). */
void ur_rgemm_job_range(void *ctx, int p0, int p1);

#endif
