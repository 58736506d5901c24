/* char_lm's data-parallel mode (configure --with-mpi; dist/ur_dist.h). Under mpirun -np N
 * every rank trains on its slice of the --batch streams and the gradients are averaged, so
 * the run follows the single-process one with the same command line (up to the order of
 * float additions, and to dropout: each rank draws its own masks). Rank 0 alone logs, saves
 * and evaluates. Started without a launcher, or built without MPI, every function here keeps
 * char_lm's single-process behaviour: one rank, all streams, nothing to average. */
#ifndef UR_EXAMPLES_CHAR_LM_DIST_H
#define UR_EXAMPLES_CHAR_LM_DIST_H

#include "lm_model.h"

/* Starts MPI when an MPI launcher started the process; on ranks other than 0, stdout goes to
 * /dev/null (--help, the results). 0, or -1 after printing a message. */
int cl_dist_begin(int *argc, char ***argv);
/* Ends the run with status rc: a failure (rc != 0) with several ranks stops them all
 * (MPI_Abort; the failing rank has printed why), else MPI is finalised. Returns rc. */
int cl_dist_end(int rc);
/* 1 on rank 0 (always when alone): the rank that prints, logs, saves and evaluates. */
int cl_dist_root(void);
/* This rank's streams of the B in the global batch: [*b0, *b0 + *nb). */
void cl_dist_shard(int B, int *b0, int *nb);
/* The elapsed seconds every rank uses for --minutes and the schedule: local alone; with
 * several ranks, rank 0's clock at the start of the previous step (the ranks agree on it in
 * cl_dist_sync), so that they stop at the same step and share the learning rate. */
double cl_dist_clock(double local);
/* Broadcasts rank 0's parameters (a fresh model or a resumed checkpoint) and gives each rank
 * its own dropout stream; B is the global batch (at least one stream per rank). 0, or -1
 * after printing a message. */
int cl_dist_start(lm_model *m, int B);
/* After backward at step (0-based): averages the gradients of m over the ranks (weight
 * nb / B), puts the global mean loss into *loss, agrees on rank 0's clock, and every
 * check_every steps (0: never) checks that the ranks' parameters are identical. 0, or -1
 * after printing a message naming the step. */
int cl_dist_sync(lm_model *m, float *loss, int nb, int B, long step, int check_every);

#endif
