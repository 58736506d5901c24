/* Internal to the models: the check of a batch's lengths (models/unroll.c). */
#ifndef UR_MODELS_LENGTHS_H
#define UR_MODELS_LENGTHS_H

#include "graph/ur_graph.h"

/* 0 when each of the B lengths is in [1, T] ([0, T] with allow_empty); else fails the tape
 * with a message naming op, the sequence and its length, and returns -1. */
int ur_lengths_check(ur_tape *tp, const char *op, const int *lengths, int B, int T,
                     int allow_empty);

#endif
