/* Internal: a persistent pool of worker threads for the per-step work of a recurrence.
 *
 * A recurrent layer does two or three small products and element-wise passes per time step,
 * T steps one after the other. Handing each to OpenBLAS's threads wakes them T times per pass
 * (a third of an LSTM step's time went there); this pool keeps its workers spinning for a
 * short while between tasks, so a step's work is split across the cores at the cost of a few
 * cache-line writes. Nothing is allocated per call.
 *
 *     ur_pool_run(n, fn, ctx)   runs fn(ctx, 0, n) ... fn(ctx, n-1, n), task 0 on the
 *                               calling thread, task k on worker k; returns when all are done.
 *
 * Task k always runs on the same thread, so data a task reads every step (its columns of a
 * packed weight) stays in that core's cache. The number of threads follows OpenBLAS's
 * (OPENBLAS_NUM_THREADS), at most UR_POOL_MAX. A call made while the pool is busy (from another
 * thread) runs its tasks one after another on the caller, so the pool is safe to use from any
 * thread. Workers sleep after about a millisecond without work; a forked child starts its own.
 */
#ifndef UR_POOL_H
#define UR_POOL_H

#define UR_POOL_MAX 8

typedef void (*ur_pool_fn)(void *ctx, int task, int n_tasks);

/* Threads a split should be made for: OpenBLAS's thread count, between 1 and UR_POOL_MAX. */
int ur_pool_threads(void);
/* Runs tasks 0 .. n_tasks-1 (n_tasks <= ur_pool_threads() to run them in parallel). */
void ur_pool_run(int n_tasks, ur_pool_fn fn, void *ctx);

#endif
