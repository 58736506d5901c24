/* Column sums in double (ops/colsum.h). The rows stream past a block of double accumulators
 * that stays in L1 (1024 columns, 8 KiB); the inner loop runs along a row, contiguous, and is
 * compiled in the AVX-512, AVX2 and plain copies of ops/isa.h. Each column's terms are added
 * in row order, so every copy gives the same bits. */
#include "ops/colsum.h"

#include <stddef.h>

#include "ops/isa.h"

enum { COLSUM_BLOCK = 1024 };

UR_VECTOR_BODY void column_sums_body(float *restrict db, float s, const float *restrict g,
                                     int rows, int cols)
{
    double acc[COLSUM_BLOCK];
    for (int j0 = 0; j0 < cols; j0 += COLSUM_BLOCK) {
        const int n = cols - j0 < COLSUM_BLOCK ? cols - j0 : COLSUM_BLOCK;
        for (int j = 0; j < n; j++) acc[j] = 0.0;
        for (int r = 0; r < rows; r++) {
            const float *gr = g + (size_t)r * (size_t)cols + j0;
            for (int j = 0; j < n; j++) acc[j] += (double)gr[j];
        }
        for (int j = 0; j < n; j++) db[j0 + j] += (float)((double)s * acc[j]);
    }
}
UR_VECTOR_VOID(column_sums,
               (float *restrict db, float s, const float *restrict g, int rows, int cols),
               (db, s, g, rows, cols))

void ur_add_column_sums_scaled(float *restrict db, float s, const float *restrict g, int rows,
                               int cols)
{
    column_sums(db, s, g, rows, cols);
}

void ur_add_column_sums(float *restrict db, const float *restrict g, int rows, int cols)
{
    column_sums(db, 1.0f, g, rows, cols);
}
