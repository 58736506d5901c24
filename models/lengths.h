/* Internal to the models: the checks of a batch's lengths and of an initial state
 * (models/unroll.c), and the checkpointed unroll (models/checkpoint.c) that ur_unroll_with
 * hands over to. */
#ifndef UR_MODELS_LENGTHS_H
#define UR_MODELS_LENGTHS_H

#include "models/ur_models.h"

/* 0 when each of the B lengths is in [1, T] ([0, T] with allow_empty); else fails the tape
 * with a message naming op, the sequence and its length, and returns -1. */
int ur_lengths_check(ur_tape *tp, const char *op, const int *lengths, int B, int T,
                     int allow_empty);

/* given when it is rows x cols (else fails the tape naming op and what, "h" or "c"), a zero
 * state of that shape when given is NULL; NULL with the tape failed. */
ur_tensor *ur_initial_or_zeros(ur_tape *tp, ur_tensor *given, int rows, int cols, const char *op,
                               const char *what);

/* ur_unroll_with when opts->checkpoint asks for checkpoints (interval != 0): reverse, lengths
 * and allow_empty as opts says. */
int ur_checkpointed_unroll(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T,
                           ur_state init, const ur_unroll_opts *opts, ur_seq *out);

#endif
