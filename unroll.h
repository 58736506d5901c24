/* libunroll: recurrent neural networks as unrolled computational graphs.
 * One include for the whole public API: graph (tensors, tape, parameters), ops, models.
 *
 * Threads. The library may be called from several threads at once, each working on its own
 * objects. Per object, never shared by the library (so a thread must not use one that another
 * thread is using at the same time): a tape (its arena, its four pools of tensor headers,
 * its scratch tape, its sticky error and memory limit), a parameter set (values, gradients,
 * its error), an optimizer (its state and error), a cell or stack, an ur_rng (there is no
 * global RNG: every random draw takes one), a model file being read or written.
 * Shared by the whole process:
 *   - the worker pool that splits large products and a recurrence's per-step work
 *     (ops/pool.c): one product at a time uses it; a product started while it is busy runs
 *     on its own thread instead, cut into the same parts, so its result is the same bit for
 *     bit; nothing waits for another thread's product and nothing deadlocks;
 *   - the thread count (ur_set_threads, ur_threads) and OpenBLAS's own thread count, which
 *     libunroll sets to one, once, at the first product (or ur_set_threads) and never
 *     changes again; another OpenBLAS user in the process then runs on one thread too;
 *   - the choice of vector kernels (ur_isa, UR_ISA and UR_RGEMM in the environment), made
 *     once at the first use;
 *   - per thread, not shared: the reason the last constructor (ur_model_error) or
 *     initialiser (ur_init_error) failed in that thread.
 * Results depend on the data, the seeds and ur_threads() (a large product is cut into that
 * many parts), never on what other threads are doing (tests/test_threads.c). */
#ifndef UNROLL_H
#define UNROLL_H
#include "graph/ur_graph.h"
#include "graph/ur_train.h"
#include "ops/ur_ops.h"
#include "models/ur_models.h"
#endif
