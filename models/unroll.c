/* Unrolling: call a cell T times over a time-stacked sequence with the same parameters. */
#include "models/ur_models.h"

#include <stdio.h>
#include <string.h>

/* A zero state of the right shape for a missing initial h or c. */
static ur_tensor *zeros_or(ur_tape *tp, ur_tensor *given, int rows, int cols, const char *what,
                           const char *kind)
{
    if (!given) return ur_input(tp, rows, cols);
    char op[96];
    snprintf(op, sizeof op, "unroll(%s): initial %s", kind, what);
    if (!ur_op_begin(tp, op, 1, given)) return NULL;
    if (given->rows != rows || given->cols != cols) {
        ur_tape_fail(tp, "unroll(%s): initial %s is %dx%d, expected %dx%d", kind, what,
                     given->rows, given->cols, rows, cols);
        return NULL;
    }
    return given;
}

int ur_unroll(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T, ur_state init,
              int reverse, ur_seq *out)
{
    if (!ur_op_begin(tp, "unroll", 1, x_all)) return -1;
    if (!cell || !cell->step || !out) {
        ur_tape_fail(tp, "unroll: cell, its step function and the output must not be NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    const char *kind = cell->kind ? cell->kind : "cell";
    if (T <= 0 || x_all->rows % T != 0) {
        ur_tape_fail(tp, "unroll(%s): %d steps do not divide the %dx%d input", kind, T,
                     x_all->rows, x_all->cols);
        return -1;
    }
    if (x_all->cols != cell->in_dim) {
        ur_tape_fail(tp, "unroll(%s): input is %dx%d but the cell takes %d features", kind,
                     x_all->rows, x_all->cols, cell->in_dim);
        return -1;
    }
    int B = x_all->rows / T;
    ur_state s = {zeros_or(tp, init.h, B, cell->hidden, "h", kind), NULL};
    if (cell->has_c) s.c = zeros_or(tp, init.c, B, cell->hidden, "c", kind);
    if (!s.h || (cell->has_c && !s.c)) return -1;

    ur_tensor *xin = cell->project ? cell->project(tp, cell, x_all) : x_all;
    /* The step sees a private copy of the cell that knows the step index and, when the cell
     * names its recurrent weight, the context that sums that weight's gradient in one GEMM. */
    ur_cell at = *cell;
    ur_tensor *into = cell->project && cell->project_owned && xin != x_all ? xin : NULL;
    at.rec = cell->recurrent_w ? ur_recurrent_begin(tp, cell->recurrent_w, T, B, into) : NULL;
    ur_state *states = ur_tape_alloc(tp, (size_t)T * sizeof *states);
    ur_tensor **hs = ur_tape_alloc(tp, (size_t)T * sizeof *hs);
    if (!states || !hs || ur_tape_error(tp)) return -1;
    for (int k = 0; k < T; k++) {
        int t = reverse ? T - 1 - k : k;
        at.t = t;
        ur_tape_set_context(tp, kind, t);
        s = cell->step(tp, &at, ur_rows(tp, xin, t * B, B), s);
        ur_tape_set_context(tp, NULL, -1);
        if (ur_tape_error(tp)) return -1;
        states[t] = s;
        hs[t] = s.h;
    }
    out->T = T;
    out->B = B;
    out->states = states;
    out->last = s;
    out->H = ur_concat_rows(tp, T, hs);
    return ur_tape_error(tp) ? -1 : 0;
}

int ur_unroll_steps(ur_tape *tp, const ur_cell *cell, int T, ur_tensor *const *x, ur_state init,
                    int reverse, ur_seq *out)
{
    if (!ur_op_begin(tp, "unroll_steps", 0)) return -1;
    ur_tensor *x_all = ur_concat_rows(tp, T, x);
    if (ur_tape_error(tp)) return -1;
    return ur_unroll(tp, cell, x_all, T, init, reverse, out);
}

ur_tensor *ur_cell_addmm(ur_tape *tp, const ur_cell *cell, ur_tensor *c, ur_tensor *h)
{
    if (!cell || !cell->recurrent_w)
        return ur_tape_fail(tp, "cell_addmm: the cell has no recurrent_w");
    if (cell->rec) return ur_recurrent_addmm(tp, cell->rec, cell->t, c, h);
    return ur_addmm(tp, c, h, cell->recurrent_w);
}
