/* libunroll: data-parallel training over MPI (configure --with-mpi; link libunroll_dist,
 * pkg-config libunroll-dist).
 *
 * Every rank (process) holds a whole copy of the model and computes the gradient of its own
 * slice of the global batch. After backward, ur_dist_average_grads turns each rank's
 * gradient into the gradient of the whole batch with one MPI_Allreduce over one flat buffer;
 * clipping and the optimizer then see the same numbers on every rank, so every copy takes
 * the same step and the copies stay identical, bit for bit. Nothing else is shared: no
 * parameter server, and the optimizer state (Adam's moments) is the same on every rank too.
 *
 *     ur_dist *d = ur_dist_init(&argc, &argv, err, sizeof err);   // MPI_Init, MPI_COMM_WORLD
 *     ...build the model and optimizer on every rank...
 *     ur_dist_broadcast_params(d, ps, err, sizeof err);           // rank 0's values everywhere
 *     long b0, nb;                                                // this rank's rows of the batch
 *     ur_dist_shard(B, ur_dist_rank(d), ur_dist_size(d), &b0, &nb);
 *     for (long step = 0; step < n; step++) {
 *         ...forward on rows [b0, b0 + nb) of the global batch; loss = their mean...
 *         ur_params_zero_grad(ps);
 *         if (ur_backward(tp, loss) != 0)
 *             ur_dist_abort(d, 1, "step %ld: %s", step, ur_tape_error(tp));   // no rank hangs
 *         ur_dist_average_grads(d, ps, (double)nb / B, NULL, 0, err, sizeof err);
 *         ur_clip_grad_norm(ps, 5.0);             // the averaged gradient: the same everywhere
 *         ur_optim_step(opt);
 *         if (ur_dist_check_params(d, ps, step, 100, err, sizeof err) != 0) ...;  // diverged
 *         if (ur_dist_is_root(d)) ...log...;      // and ur_dist_save_params writes from rank 0
 *     }
 *     ur_dist_free(d);                            // MPI_Finalize, since ur_dist_init called MPI_Init
 *
 * Every function taking a ur_dist is collective: all ranks call it, in the same order, with
 * the same step numbers and sizes; each returns the same value on every rank (an error on one
 * rank is an error on all, with the same message), so a program can stop cleanly. MPI's own
 * failures (a lost connection, a dead peer) end the job through MPI's default error handler
 * (MPI_ERRORS_ARE_FATAL): no call here waits forever for a rank that is gone.
 *
 * A checkpoint is rank 0's copy, which is everyone's: it resumes on any number of ranks. Data
 * order that depends only on the global step (ur_dist_batch_examples, or streams split with
 * ur_dist_shard) makes the resumed run read what the original run would have read.
 */
#ifndef UR_DIST_H
#define UR_DIST_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/ur_graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ur_dist ur_dist;

/* ---- Setting up ------------------------------------------------------------------------- */

/* 1 when an MPI launcher (mpirun, mpiexec, srun) started this process, judged from the
 * environment it sets; 0 for a plain run, which can then skip MPI_Init altogether. */
int ur_dist_launched(void);
/* Calls MPI_Init (unless MPI is already initialised) and returns a context over
 * MPI_COMM_WORLD. NULL with a message in err when out of memory or MPI cannot start. */
ur_dist *ur_dist_init(int *argc, char ***argv, char *err, size_t errlen);
/* A context over a copy of comm, for a program that initialised MPI itself; collective over
 * comm. NULL with a message in err when out of memory. */
ur_dist *ur_dist_new(MPI_Comm comm, char *err, size_t errlen);
/* Frees the context (collective); calls MPI_Finalize when ur_dist_init called MPI_Init.
 * NULL is ignored. */
void ur_dist_free(ur_dist *d);
/* This process's rank, 0 .. size - 1. */
int ur_dist_rank(const ur_dist *d);
/* The number of ranks. */
int ur_dist_size(const ur_dist *d);
/* 1 on rank 0, the rank that writes checkpoints and logs. */
int ur_dist_is_root(const ur_dist *d);
/* A seed for this rank's own random stream (dropout, noise) from the common seed: seed itself
 * on rank 0, so one rank draws what a plain run draws; a different stream on every rank. */
uint64_t ur_dist_rank_seed(const ur_dist *d, uint64_t seed);

/* Prints "<rank r of n>: message" on stderr and ends every rank with MPI_Abort(code). For a
 * failure one rank cannot share (a tape error, a failed read): the others are stopped, not
 * left waiting. Not collective. Never returns. */
void ur_dist_abort(ur_dist *d, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4), noreturn))
#endif
    ;

/* ---- Identical parameters ---------------------------------------------------------------- */

/* Gives every rank rank 0's parameter values, in one MPI_Bcast of a flat buffer, after
 * checking that every rank's set has the same names and shapes in the same order. 0, or -1
 * (nothing changed) with a message in err. */
int ur_dist_broadcast_params(ur_dist *d, ur_params *ps, char *err, size_t errlen);
/* Broadcasts bytes bytes at buf from rank 0 (optimizer state, a step count, an RNG). 0, or -1
 * when the ranks disagree on bytes (nothing changed), with a message in err. */
int ur_dist_broadcast(ur_dist *d, void *buf, size_t bytes, char *err, size_t errlen);
/* A 64-bit hash of the bits of every parameter value, in set order (cheap: one multiply per
 * value, in four interleaved lanes). Equal sets give equal hashes; not collective. */
uint64_t ur_dist_params_checksum(const ur_params *ps);
/* Every `every` steps (when step % every == 0; every <= 0: never), compares the parameters'
 * checksums over the ranks. 0 when they agree (or no check was due); -1 when they differ,
 * with err naming the step, a rank that differs from rank 0 and its first differing
 * parameter: "parameters differ across ranks at step 120: rank 1 ...". */
int ur_dist_check_params(ur_dist *d, const ur_params *ps, long step, long every, char *err,
                         size_t errlen);

/* ---- Gradients -------------------------------------------------------------------------- */

/* Replaces every gradient of ps by the sum over ranks of weight * gradient, in one
 * MPI_Allreduce over one flat float buffer (kept by d: no allocation after the first call
 * for a given size). weight is this rank's share of the global batch (its examples / all
 * examples), so that per-rank mean losses make the gradient of the global mean loss; 1/size
 * for even shards. The n_extra floats at extra are summed across ranks in the same call
 * (e.g. weight * loss gives the global mean loss; NULL, 0 for none). 0, or -1 (nothing
 * changed) with a message when weight is not finite and >= 0, the ranks' sets have different
 * sizes, or memory runs out. */
int ur_dist_average_grads(ur_dist *d, ur_params *ps, double weight, float *extra, int n_extra,
                          char *err, size_t errlen);

/* Time and volume of ur_dist_average_grads since the context was made. */
typedef struct ur_dist_stats {
    long calls;          /* ur_dist_average_grads calls */
    double bytes;        /* bytes all-reduced per rank (the flat buffer, summed over calls) */
    double pack_s;       /* copying (and weighting) gradients into the buffer and back */
    double allreduce_s;  /* inside MPI_Allreduce: transfer, and waiting for slower ranks */
} ur_dist_stats;
/* The figures so far. */
ur_dist_stats ur_dist_get_stats(const ur_dist *d);

/* ---- Checkpoints: rank 0 reads and writes -------------------------------------------------- */

/* Rank 0 saves ps to path (ur_params_save: atomic); the others write nothing. Every rank
 * returns rank 0's result and message. */
int ur_dist_save_params(ur_dist *d, const ur_params *ps, const char *path, char *err,
                        size_t errlen);
/* Rank 0 loads path into ps (ur_params_load: validated first) and broadcasts the values, so
 * only rank 0 needs the file; saved on any number of ranks, it loads on any number. Every
 * rank returns rank 0's result and message; on -1 no rank's ps changed. */
int ur_dist_load_params(ur_dist *d, ur_params *ps, const char *path, char *err, size_t errlen);

/* ---- Sharding data (pure functions, not collective) --------------------------------------- */

/* Splits n items into size contiguous slices in rank order, the first n % size ranks one
 * item longer: rank's slice is [*begin, *begin + *count). Over the ranks the slices cover
 * [0, n) exactly once. */
void ur_dist_shard(long n, int rank, int size, long *begin, long *count);
/* The i-th example (0 <= i < n) of epoch's shuffled order: a permutation of [0, n) that
 * depends only on seed and epoch (a keyed Feistel network, no table), so every rank computes
 * the same order in O(1) per example. -1 when i or n is out of range. */
long ur_dist_permute(long i, long n, uint64_t seed, long epoch);
/* The examples a rank reads at global step step, when each step takes global_batch examples
 * in the shuffled order of its epoch (n / global_batch steps per epoch; each epoch's last
 * n % global_batch examples are skipped). The rank's share is its ur_dist_shard slice of the
 * step's global batch: idx[0 .. *count) (idx holds at least global_batch / size + 1). The
 * union over ranks is the same global batch for every size, so a run resumed on another
 * number of ranks reads what the first run would have. 0, or -1 on bad arguments. */
int ur_dist_batch_examples(long n, long global_batch, long step, uint64_t seed, int rank,
                           int size, long *idx, long *count);

#ifdef __cplusplus
}
#endif
#endif
