/* Internal: a recurrent context (ops/recurrent.c) taking over the weight gradient of the input
 * projection it accumulates into. That projection y = x Wx + b and the recurrence's sums share
 * one tensor and so one gradient dZ; Wx's gradient x^T dZ and the recurrent weight's H^T dZ
 * then run as one product that packs dZ once (ur_blas_gemm_tn2) instead of two. */
#ifndef UR_LINEAR_H
#define UR_LINEAR_H

#include "graph/ur_graph.h"

/* When y is an ur_linear output (itself, not a view) that no op recorded after it reads or
 * writes: sets *x and *w to its input and weight, makes its backward leave W's gradient to the
 * caller (which must add x^T dy into it), and returns 1. Else 0, changing nothing. */
int ur_linear_cede_weight(const ur_tape *tp, ur_tensor *y, ur_tensor **x, ur_tensor **w);

#endif
