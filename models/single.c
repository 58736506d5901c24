/* Single-output models: read the whole sequence, keep only the last state's h (B x H) for a
 * head such as ur_linear (sequence classification, "many to one"). With lengths, the last
 * state holds each row's state at its own last step (the unroll carries it through the
 * padding), so nothing needs to pick rows out. */
#include "models/ur_models.h"

ur_tensor *ur_single_output(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T,
                            ur_state init, ur_state *last)
{
    return ur_single_output_with(tp, cell, x_all, T, init, NULL, last);
}

ur_tensor *ur_single_output_with(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T,
                                 ur_state init, const ur_unroll_opts *opts, ur_state *last)
{
    ur_seq seq;
    if (ur_unroll_with(tp, cell, x_all, T, init, opts, &seq) != 0) return ur_tape_poison(tp);
    if (last) *last = seq.last;
    return seq.last.h;
}

ur_tensor *ur_stack_single_output(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                                  const ur_state *init, ur_state *last)
{
    return ur_stack_single_output_with(tp, st, x_all, T, init, NULL, last);
}

ur_tensor *ur_stack_single_output_with(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                                       const ur_state *init, const ur_unroll_opts *opts,
                                       ur_state *last)
{
    ur_stack_seq seq;
    if (ur_stack_unroll_with(tp, st, x_all, T, init, opts, &seq) != 0) return ur_tape_poison(tp);
    if (last)
        for (int l = 0; l < seq.layers; l++) last[l] = seq.last[l];
    return seq.last[seq.layers - 1].h;
}
