/* Internal: a recurrent context (ops/recurrent.c) taking over the backward of the input
 * projection it accumulates into. That projection y = x Wx + b and the recurrence's sums share
 * one tensor and so one gradient dZ: Wx's gradient x^T dZ and the recurrent weight's H^T dZ
 * then run as one product that packs dZ once (ur_blas_gemm_tn2) instead of two, and each
 * step's rows of dx = dZ Wx^T and db = sum dZ are made in the step's backward, while that
 * step's dZ is still in cache, instead of in passes over all of dZ. */
#ifndef UR_LINEAR_H
#define UR_LINEAR_H

#include "graph/ur_graph.h"

/* When y is an ur_linear output (itself, not a view) that no op recorded after it reads or
 * writes: sets *x, *w and *b to its input, weight and bias (NULL without one), makes its
 * backward do nothing, and returns 1: the caller must then add dx, dW and db. Else 0, changing
 * nothing. */
int ur_linear_cede(const ur_tape *tp, ur_tensor *y, ur_tensor **x, ur_tensor **w,
                   ur_tensor **b);

#endif
