/* Bidirectional unroll: a forward pass over steps 0 .. T-1 and a backward pass over
 * T-1 .. 0 of the same input, h joined per step: H[t] = [fw.h_t | bw.h_t]. Both unrolls are
 * time-stacked and indexed by step, so the join is one column concat of the two stacked H.
 * With lengths, the reversed pass carries init_bw unchanged through each row's padding
 * (steps T-1 .. length), so every row starts at its own last step. */
#include "models/ur_models.h"

#include <string.h>

static int bidir_unroll(ur_tape *tp, const ur_cell *fw, const ur_cell *bw, ur_tensor *x_all,
                        int T, ur_state init_fw, ur_state init_bw, const ur_unroll_opts *opts,
                        const ur_checkpoint *ck, ur_bidir_seq *out);

int ur_bidir_unroll(ur_tape *tp, const ur_cell *fw, const ur_cell *bw, ur_tensor *x_all, int T,
                    ur_state init_fw, ur_state init_bw, ur_bidir_seq *out)
{
    return bidir_unroll(tp, fw, bw, x_all, T, init_fw, init_bw, NULL, NULL, out);
}

int ur_bidir_unroll_checkpointed(ur_tape *tp, const ur_cell *fw, const ur_cell *bw,
                                 ur_tensor *x_all, int T, ur_state init_fw, ur_state init_bw,
                                 const ur_checkpoint *ck, ur_bidir_seq *out)
{
    return bidir_unroll(tp, fw, bw, x_all, T, init_fw, init_bw, NULL, ck, out);
}

int ur_bidir_unroll_with(ur_tape *tp, const ur_cell *fw, const ur_cell *bw, ur_tensor *x_all,
                         int T, ur_state init_fw, ur_state init_bw, const ur_unroll_opts *opts,
                         ur_bidir_seq *out)
{
    return bidir_unroll(tp, fw, bw, x_all, T, init_fw, init_bw, opts, NULL, out);
}

/* Both directions with options (lengths, checkpointing) and/or ck (which overrides
 * opts->checkpoint). */
static int bidir_unroll(ur_tape *tp, const ur_cell *fw, const ur_cell *bw, ur_tensor *x_all,
                        int T, ur_state init_fw, ur_state init_bw, const ur_unroll_opts *opts,
                        const ur_checkpoint *ck, ur_bidir_seq *out)
{
    if (!ur_op_begin(tp, "bidir_unroll", 1, x_all)) return -1;
    if (opts && opts->reverse) {
        ur_tape_fail(tp, "bidir_unroll: opts.reverse must be 0 (the backward cell is reversed "
                     "already)");
        return -1;
    }
    if (!fw || !bw || !out) {
        ur_tape_fail(tp, "bidir_unroll: both cells and the output must not be NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (T <= 0 || x_all->rows % T != 0) {
        ur_tape_fail(tp, "bidir_unroll: %d steps do not divide the %dx%d input", T, x_all->rows,
                     x_all->cols);
        return -1;
    }
    if (fw->in_dim != x_all->cols || bw->in_dim != x_all->cols) {
        ur_tape_fail(tp, "bidir_unroll: input is %dx%d but the forward cell (%s) takes %d "
                     "features and the backward cell (%s) %d", x_all->rows, x_all->cols,
                     fw->kind, fw->in_dim, bw->kind, bw->in_dim);
        return -1;
    }
    int B = x_all->rows / T;
    const ur_cell *cells[2] = {fw, bw};
    const ur_state inits[2] = {init_fw, init_bw};
    for (int d = 0; d < 2; d++) {
        const ur_tensor *given[2] = {inits[d].h, inits[d].c};
        for (int k = 0; k < 2; k++)
            if (given[k] && (given[k]->rows != B || given[k]->cols != cells[d]->hidden)) {
                ur_tape_fail(tp, "bidir_unroll: %s cell (%s) initial %s is %dx%d, expected %dx%d",
                             d ? "backward" : "forward", cells[d]->kind, k ? "c" : "h",
                             given[k]->rows, given[k]->cols, B, cells[d]->hidden);
                return -1;
            }
    }
    ur_unroll_opts fo = {0}, bo;
    if (opts) fo = *opts;
    if (ck) fo.checkpoint = ck;
    if (fo.checkpoint && fo.checkpoint->interval != 0 && fo.checkpoint->last_only) {
        ur_tape_fail(tp, "bidir_unroll: last_only checkpointing is not possible: the join "
                     "needs every step's h of both directions");
        return -1;
    }
    bo = fo;
    bo.reverse = 1;
    if (ur_unroll_with(tp, fw, x_all, T, init_fw, &fo, &out->fw) != 0) return -1;
    if (ur_unroll_with(tp, bw, x_all, T, init_bw, &bo, &out->bw) != 0) return -1;
    ur_tensor *both[2] = {out->fw.H, out->bw.H};
    out->H = ur_concat_cols(tp, 2, both);
    out->mask = out->fw.mask;
    return ur_tape_error(tp) ? -1 : 0;
}
