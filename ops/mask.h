/* Internal to the ops: the check every op taking a row mask makes (ops/mask.c). */
#ifndef UR_OPS_MASK_H
#define UR_OPS_MASK_H

#include "graph/ur_graph.h"

/* 0 when mask is a rows x 1 column of 0s and 1s; else fails the tape naming op, returns -1. */
int ur_mask_check(ur_tape *tp, const char *op, const ur_tensor *mask, int rows);

#endif
