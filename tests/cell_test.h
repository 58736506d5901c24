/* What the cell tests (tests/test_cells.c, tests/test_cell_variants.c) share: the sizes of
 * their unrolls and a loss over a whole unroll of a cell, sum(H * W) with W fixed. */
#ifndef UR_CELL_TEST_H
#define UR_CELL_TEST_H

#include "ur_test.h"

enum { T = 4, B = 3, IN = 3, H = 4 };

typedef struct {
    ur_params *ps;
    ur_cell *cell;
    float x[T * B * IN];
} run_ctx;

static inline ur_tensor *run_loss(ur_tape *tp, void *vctx)
{
    run_ctx *c = vctx;
    ur_seq seq;
    ur_unroll(tp, c->cell, ur_input_from(tp, T * B, IN, c->x), T, (ur_state){0}, 0, &seq);
    ur_tensor *w = ur_input(tp, T * B, c->cell->hidden);
    for (size_t k = 0; k < ur_numel(w); k++) w->val[k] = (float)((k * 5) % 9) / 9.0f - 0.5f;
    return ur_sum(tp, ur_mul(tp, seq.H, w));
}

#endif
