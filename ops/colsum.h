/* Column sums of a row-major gradient, for the gradients of biases added to every row. */
#ifndef UR_OPS_COLSUM_H
#define UR_OPS_COLSUM_H

#include <stddef.h>

#include "ops/fastmath.h"

/* db[j] += sum over the rows of g[r][j] (rows x cols), each column summed in double and
 * rounded once. A bias of a time-stacked product adds T*B rows; summed in float one row at a
 * time into db, the small rows' low bits would be lost to the large running total, and the
 * result would depend on the order of the rows (a checkpointed unroll adds its segments last
 * to first). Blocks of columns keep the sums in L1 and the rows' reads contiguous. */
UR_VECTOR_CLONES static inline void ur_add_column_sums(float *db, const float *g, int rows, int cols)
{
    enum { BLOCK = 1024 }; /* 8 KiB of sums stay in L1 while the rows stream through */
    double acc[BLOCK];
    for (int j0 = 0; j0 < cols; j0 += BLOCK) {
        const int n = cols - j0 < BLOCK ? cols - j0 : BLOCK;
        for (int j = 0; j < n; j++) acc[j] = 0.0;
        for (int r = 0; r < rows; r++) {
            const float *gr = g + (size_t)r * (size_t)cols + j0;
            for (int j = 0; j < n; j++) acc[j] += gr[j];
        }
        for (int j = 0; j < n; j++) db[j0 + j] += (float)acc[j];
    }
}

#endif
