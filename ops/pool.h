/* Internal: a persistent pool of worker threads for the per-step work of a recurrence.
 *
 * A recurrent layer does two or three small products and element-wise passes per time step,
 * T steps one after the other. Handing each to OpenBLAS's threads wakes them T times per pass
 * (a third of an LSTM step's time went there); this pool keeps its workers spinning for a
 * short while between runs, so a step's work is shared across the cores at the cost of a few
 * cache-line writes. Nothing is allocated per call.
 *
 *     ur_pool_for(n, grain, fn, ctx)   calls fn(ctx, begin, end) on ranges of [0, n) of about
 *                                      grain items until all n are done, then returns.
 *
 * The caller takes ranges from the front and the workers from the back, so no thread waits for
 * another to start: on a busy machine a worker that is not running leaves its share to the
 * caller, which waits only for ranges a worker has already taken. When all run, each thread
 * gets the same end of the items every time, so the data it reads every step (its columns
 * of a packed weight) stays in its own core's cache. The number of threads is taken once from
 * OpenBLAS's (OPENBLAS_NUM_THREADS), at most UR_POOL_MAX, unless ur_set_threads sets it; at
 * that moment OpenBLAS is set to one thread, for good (ops/blas.h). There is one pool per
 * process: a call made while it is busy (from another thread, or from inside a run) never
 * waits for it, it runs on its caller alone, with the same result, so the pool is safe to
 * use from any number of threads at once. Workers sleep after about a millisecond without
 * work; a forked child starts its own.
 */
#ifndef UR_POOL_H
#define UR_POOL_H

#define UR_POOL_MAX 8

typedef void (*ur_pool_fn)(void *ctx, int begin, int end);

/* Threads a split should be made for: ur_threads(), between 1 and UR_POOL_MAX. The first call
 * (or ur_set_threads) reads OpenBLAS's count and sets OpenBLAS to one thread. */
int ur_pool_threads(void);
/* Runs fn over [0, n) in ranges of grain items (the last may be shorter), on up to
 * ur_pool_threads() threads; n up to 2^20 - 1 (more runs on the caller alone). */
void ur_pool_for(int n, int grain, ur_pool_fn fn, void *ctx);
/* The same on at most threads threads. */
void ur_pool_for_threads(int threads, int n, int grain, ur_pool_fn fn, void *ctx);

#endif
