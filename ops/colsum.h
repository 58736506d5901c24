/* Column sums of a row-major gradient, for the gradients of biases added to every row. */
#ifndef UR_OPS_COLSUM_H
#define UR_OPS_COLSUM_H

/* Columns per block where a caller sums its own local gradients in double block by block
 * (ops/broadcast.c): 64 double accumulators (512 bytes) stay in L1 while the rows stream past. */
#define UR_COLSUM_BLOCK 64

/* db[j] += s * (sum over the rows of g[r][j]) for a rows x cols g, each column summed in
 * double and rounded once. A bias of a time-stacked product adds T*B rows (up to 10^6);
 * summed in float one row at a time into db, the small rows' low bits are lost to the large
 * running total, and the result depends on the order of the rows (a checkpointed unroll adds
 * its segments last to first). s is +1 or -1 in the library (exact). ops/colsum.c. */
void ur_add_column_sums_scaled(float *restrict db, float s, const float *restrict g, int rows,
                               int cols);

/* acc[j] += sum over the rows of g[r][j], in double (for sums made in parts and rounded once). */
void ur_column_sums_double(double *restrict acc, const float *restrict g, int rows, int cols);

/* db[j] += sum over the rows of g[r][j], in double as above. */
void ur_add_column_sums(float *restrict db, const float *restrict g, int rows, int cols);

#endif
