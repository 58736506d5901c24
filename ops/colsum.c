/* Column sums in double (ops/colsum.h). The rows stream past a block of double accumulators
 * that stays in L1 (1024 columns, 8 KiB); the inner loop runs along a row, contiguous, and is
 * compiled in the AVX-512, AVX2 and plain copies of ops/isa.h. Each column's terms are added
 * in row order, so every copy gives the same bits, and so does a split of the columns over the
 * pool's threads (ops/pool.h), which large sums get (a step's bias gradient is T B rows). */
#include "ops/colsum.h"

#include <stddef.h>

#include "ops/isa.h"
#include "ops/pool.h"

enum { COLSUM_BLOCK = 1024 };

/* acc[j] += sum_r g[r ld + j] for j < cols, each column in row order. */
UR_VECTOR_BODY void column_sums_double_body(double *restrict acc, const float *restrict g,
                                            int rows, int cols, int ld)
{
    for (int r = 0; r < rows; r++) {
        const float *gr = g + (size_t)r * (size_t)ld;
        for (int j = 0; j < cols; j++) acc[j] += (double)gr[j];
    }
}
UR_VECTOR_VOID(column_sums_double,
               (double *restrict acc, const float *restrict g, int rows, int cols, int ld),
               (acc, g, rows, cols, ld))

/* db[j] += s sum_r g[r ld + j] for j < cols, in blocks of accumulators that stay in L1. */
static void column_sums(float *restrict db, float s, const float *restrict g, int rows, int cols,
                        int ld)
{
    double acc[COLSUM_BLOCK];
    for (int j0 = 0; j0 < cols; j0 += COLSUM_BLOCK) {
        const int n = cols - j0 < COLSUM_BLOCK ? cols - j0 : COLSUM_BLOCK;
        for (int j = 0; j < n; j++) acc[j] = 0.0;
        column_sums_double(acc, g + j0, rows, n, ld);
        for (int j = 0; j < n; j++) db[j0 + j] += (float)((double)s * acc[j]);
    }
}

void ur_column_sums_double(double *restrict acc, const float *restrict g, int rows, int cols)
{
    column_sums_double(acc, g, rows, cols, cols);
}

/* Columns are handed out in runs of COLSUM_SPLIT; below PARALLEL_MIN terms one thread does all. */
enum { COLSUM_SPLIT = 128, PARALLEL_MIN = 1 << 18 };

typedef struct colsum_job {
    float *db;
    float s;
    const float *g;
    int rows, cols;
} colsum_job;

static void colsum_range(void *ctx, int b0, int b1)
{
    const colsum_job *j = ctx;
    int c0 = b0 * COLSUM_SPLIT, c1 = b1 * COLSUM_SPLIT < j->cols ? b1 * COLSUM_SPLIT : j->cols;
    column_sums(j->db + c0, j->s, j->g + c0, j->rows, c1 - c0, j->cols);
}

void ur_add_column_sums_scaled(float *restrict db, float s, const float *restrict g, int rows,
                               int cols)
{
    if ((long)rows * cols < PARALLEL_MIN || ur_pool_threads() < 2) {
        column_sums(db, s, g, rows, cols, cols);
        return;
    }
    colsum_job j = {db, s, g, rows, cols};
    ur_pool_for((cols + COLSUM_SPLIT - 1) / COLSUM_SPLIT, 1, colsum_range, &j);
}

void ur_add_column_sums(float *restrict db, const float *restrict g, int rows, int cols)
{
    ur_add_column_sums_scaled(db, 1.0f, g, rows, cols);
}
