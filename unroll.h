/* libunroll: recurrent neural networks as unrolled computational graphs.
 * One include for the whole public API: graph (tensors, tape, parameters), ops, models. */
#ifndef UNROLL_H
#define UNROLL_H
#include "graph/ur_graph.h"
#include "graph/ur_train.h"
#include "ops/ur_ops.h"
#include "models/ur_models.h"
#endif
