/* Internal: ops/fastmath.h for op files, which also see the public ur_exp op (ops/ur_ops.h).
 * fastmath's scalar exp is also called ur_exp; here it is renamed ur_exp1 (like ur_tanh1 and
 * ur_sigmoid1), and in a file that includes this header "ur_exp" means that scalar exp, never
 * the op. (Should fastmath.h itself name it ur_exp1, this header is just the two includes.) */
#ifndef UR_FAST_H
#define UR_FAST_H

#include "ops/ur_ops.h" /* first, so that its ur_exp stays the op's declaration */

#define ur_exp ur_exp1
#include "ops/fastmath.h"

#endif
