/* Column sums of a row-major gradient, for the gradients of biases added to every row. */
#ifndef UR_OPS_COLSUM_H
#define UR_OPS_COLSUM_H

#include <stddef.h>

/* db[j] += sum over the rows of g[r][j] (rows x cols), each column summed in double and
 * rounded once. A bias of a time-stacked product adds T*B rows; summed in float one row at a
 * time into db, the small rows' low bits would be lost to the large running total, and the
 * result would depend on the order of the rows (a checkpointed unroll adds its segments last
 * to first). Column blocks keep the accumulators in registers and the rows' reads contiguous. */
static inline void ur_add_column_sums(float *db, const float *g, int rows, int cols)
{
    enum { BLOCK = 64 };
    for (int j0 = 0; j0 < cols; j0 += BLOCK) {
        const int n = cols - j0 < BLOCK ? cols - j0 : BLOCK;
        double acc[BLOCK] = {0};
        for (int r = 0; r < rows; r++) {
            const float *gr = g + (size_t)r * (size_t)cols + j0;
            for (int j = 0; j < n; j++) acc[j] += gr[j];
        }
        for (int j = 0; j < n; j++) db[j0 + j] += (float)acc[j];
    }
}

#endif
