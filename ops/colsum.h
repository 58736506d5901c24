/* Column sums of a row-major gradient, for the gradients of biases added to every row. */
#ifndef UR_OPS_COLSUM_H
#define UR_OPS_COLSUM_H

#include <stddef.h>

/* Columns per block: the block's double accumulators (512 bytes) stay in L1 while the rows
 * stream past. */
#define UR_COLSUM_BLOCK 64

/* db[j] += s * (sum over the rows of g[r][j]) for a rows x cols g, each column summed in
 * double and rounded once. A bias of a time-stacked product adds T*B rows (up to 10^6);
 * summed in float one row at a time into db, the small rows' low bits are lost to the large
 * running total, and the result depends on the order of the rows (a checkpointed unroll adds
 * its segments last to first). Per column block, four rows are added in double before they
 * touch the accumulators, so the inner loops are contiguous, vectorise, and read and write
 * the accumulators once per four rows. s is +1 or -1 in the library (exact). */
static inline void ur_add_column_sums_scaled(float *restrict db, float s,
                                             const float *restrict g, int rows, int cols)
{
    for (int j0 = 0; j0 < cols; j0 += UR_COLSUM_BLOCK) {
        const int n = cols - j0 < UR_COLSUM_BLOCK ? cols - j0 : UR_COLSUM_BLOCK;
        const size_t ld = (size_t)cols;
        double acc[UR_COLSUM_BLOCK] = {0};
        const float *gr = g + j0;
        int r = 0;
        for (; r + 4 <= rows; r += 4, gr += 4 * ld)
            for (int j = 0; j < n; j++)
                acc[j] += ((double)gr[j] + (double)gr[ld + j]) +
                          ((double)gr[2 * ld + j] + (double)gr[3 * ld + j]);
        for (; r < rows; r++, gr += ld)
            for (int j = 0; j < n; j++) acc[j] += (double)gr[j];
        for (int j = 0; j < n; j++) db[j0 + j] += (float)((double)s * acc[j]);
    }
}

/* db[j] += sum over the rows of g[r][j], in double as above. */
static inline void ur_add_column_sums(float *restrict db, const float *restrict g, int rows,
                                      int cols)
{
    ur_add_column_sums_scaled(db, 1.0f, g, rows, cols);
}

#endif
