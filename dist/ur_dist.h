/* libunroll: data-parallel training over MPI (configure --with-mpi; link libunroll_dist,
 * pkg-config libunroll-dist).
 *
 * Every rank (process) holds a whole copy of the model and computes the gradient of its own
 * slice of the global batch. After backward, ur_dist_average_grads turns each rank's
 * gradient into the gradient of the whole batch with one MPI_Allreduce over one flat buffer;
 * clipping and the optimizer then see the same numbers on every rank, so every copy takes
 * the same step and the copies stay identical, bit for bit (MPI does not promise every rank
 * the same bits from a float reduction, though Open MPI's algorithms give them: the checksum
 * check catches it otherwise). Nothing else is shared: no parameter server, and the
 * optimizer state (Adam's moments) is the same on every rank too.
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
 * Every function that communicates is collective (all but ur_dist_rank, _size, _is_root,
 * _rank_seed, _abort, _get_stats and the sharding functions): all ranks call it, in the same
 * order, with the same step numbers and sizes; each returns the same value on every rank (an
 * error on one rank is an error on all, with the same message), so a program can stop
 * cleanly. MPI's own
 * failures (a lost connection, a dead peer) end the job through MPI's default error handler
 * (MPI_ERRORS_ARE_FATAL): no call here waits forever for a rank that is gone.
 *
 * A checkpoint is rank 0's copy, which is everyone's: it resumes on any number of ranks. Data
 * order that depends only on the global step (ur_dist_batch_examples, or streams split with
 * ur_dist_shard) makes the resumed run read what the original run would have read.
 *
 * Gradients. weight = (this rank's examples) / (the global batch's) turns per-rank mean
 * losses into the gradient of the global mean loss, for any split (1 / size for even ones).
 * The n_extra floats at extra (NULL, 0: none) are summed in the same call: weight * loss
 * gives the global mean loss. The buffer is kept, so nothing is allocated once its size is
 * known. -1 (with nothing changed on any rank) when a rank's weight is not finite and >= 0,
 * the ranks' sizes differ, or memory runs out.
 *
 * Sharding. ur_dist_batch_examples takes global_batch examples per step in the shuffled
 * order of the step's epoch (n / global_batch steps an epoch; its last n % global_batch
 * examples are skipped) and gives each rank its ur_dist_shard slice of them. The global
 * batch of a step is the same for every number of ranks.
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

/* 1 when an MPI launcher (mpirun, mpiexec, srun) started this process, from its environment
 * variables; a plain run can then skip MPI altogether. */
int ur_dist_launched(void);
/* MPI_Init (unless already done) and a context over MPI_COMM_WORLD; NULL with a message. */
ur_dist *ur_dist_init(int *argc, char ***argv, char *err, size_t errlen);
/* A context over a copy of comm, for a program that started MPI itself; NULL with a message. */
ur_dist *ur_dist_new(MPI_Comm comm, char *err, size_t errlen);
/* Frees the context, and calls MPI_Finalize if ur_dist_init called MPI_Init. NULL is ignored. */
void ur_dist_free(ur_dist *d);
/* This process's rank, 0 .. size - 1 (0 for NULL). */
int ur_dist_rank(const ur_dist *d);
/* The number of ranks (1 for NULL). */
int ur_dist_size(const ur_dist *d);
/* 1 on rank 0, the rank that writes checkpoints and logs. */
int ur_dist_is_root(const ur_dist *d);
/* A seed for this rank's own stream (dropout, noise): seed on rank 0, a different one on
 * every other rank. Not collective. */
uint64_t ur_dist_rank_seed(const ur_dist *d, uint64_t seed);
/* Prints "rank r of n: <message>" on stderr and stops every rank with MPI_Abort(code): for a
 * failure of one rank (a tape error, a failed read). Not collective; never returns. */
void ur_dist_abort(ur_dist *d, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4), noreturn))
#endif
    ;

/* ---- Identical parameters ---------------------------------------------------------------- */

/* Rank 0's values into every rank's ps (one MPI_Bcast), once their names and shapes are
 * checked to agree. 0, or -1 with a message naming a rank that differs (nothing changed). */
int ur_dist_broadcast_params(ur_dist *d, ur_params *ps, char *err, size_t errlen);
/* Broadcasts bytes bytes at buf from rank 0 (optimizer state, a step count). 0, or -1 with a
 * message when the ranks disagree on bytes (nothing sent). */
int ur_dist_broadcast(ur_dist *d, void *buf, size_t bytes, char *err, size_t errlen);
/* A 64-bit hash of the bits of every parameter value, in set order (one multiply per value).
 * Not collective. */
uint64_t ur_dist_params_checksum(const ur_params *ps);
/* When step % every == 0 (every > 0), compares the checksums over the ranks: 0 when equal or
 * not due; -1 with the step, a differing rank and its first differing parameter in err. */
int ur_dist_check_params(ur_dist *d, const ur_params *ps, long step, long every, char *err,
                         size_t errlen);

/* ---- Gradients -------------------------------------------------------------------------- */

/* Every gradient of ps becomes the sum over ranks of weight * gradient (weight: this rank's
 * share of the global batch), in one MPI_Allreduce over one flat buffer; see "Gradients". */
int ur_dist_average_grads(ur_dist *d, ur_params *ps, double weight, float *extra, int n_extra,
                          char *err, size_t errlen);

/* Time and volume of ur_dist_average_grads since the context was made. */
typedef struct ur_dist_stats {
    long calls;          /* ur_dist_average_grads calls that communicated */
    double bytes;        /* bytes all-reduced per rank (the flat buffer, summed over calls) */
    double pack_s;       /* copying (and weighting) gradients into the buffer and back */
    double allreduce_s;  /* inside MPI_Allreduce: transfer, and waiting for slower ranks */
} ur_dist_stats;
/* The figures so far (zeros for NULL). */
ur_dist_stats ur_dist_get_stats(const ur_dist *d);

/* ---- Checkpoints: rank 0 reads and writes -------------------------------------------------- */

/* Rank 0 saves ps to path (ur_params_save, atomic); every rank returns its result and message. */
int ur_dist_save_params(ur_dist *d, const ur_params *ps, const char *path, char *err,
                        size_t errlen);
/* Rank 0 loads path (ur_params_load) and broadcasts the values: only rank 0 needs the file.
 * Every rank returns rank 0's result and message; on -1 no rank's ps changed. */
int ur_dist_load_params(ur_dist *d, ur_params *ps, const char *path, char *err, size_t errlen);

/* ---- Sharding data (pure functions, not collective) --------------------------------------- */

/* Rank's slice [*begin, *begin + *count) of n items split in size contiguous slices, the
 * first n % size one longer; the slices cover [0, n) once. */
void ur_dist_shard(long n, int rank, int size, long *begin, long *count);
/* The i-th example of epoch's shuffled order of [0, n), from seed and epoch alone (a keyed
 * Feistel network: no table, O(1)); -1 when i or n is out of range. */
long ur_dist_permute(long i, long n, uint64_t seed, long epoch);
/* Rank's share of global step step's examples, into idx[0 .. *count) (room for
 * global_batch / size + 1); see "Sharding". 0, or -1 on bad arguments. */
int ur_dist_batch_examples(long n, long global_batch, long step, uint64_t seed, int rank,
                           int size, long *idx, long *count);

#ifdef __cplusplus
}
#endif
#endif
