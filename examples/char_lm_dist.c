/* char_lm's data-parallel mode: see char_lm_dist.h. */
#include "char_lm_dist.h"

#include <stdio.h>

#ifdef UR_HAVE_MPI
#include "dist/ur_dist.h"

static ur_dist *dist;         /* NULL when running alone */
static float shared_clock;    /* rank 0's elapsed seconds, agreed in the last cl_dist_sync */
static float local_clock;     /* this rank's, to send in the next one */

int cl_dist_begin(int *argc, char ***argv)
{
    char err[256];
    if (!ur_dist_launched()) return 0;
    if (!(dist = ur_dist_init(argc, argv, err, sizeof err))) {
        fprintf(stderr, "char_lm: %s\n", err);
        return -1;
    }
    if (ur_dist_size(dist) == 1) {   /* mpirun -np 1: exactly the plain run */
        ur_dist_free(dist);
        dist = NULL;
    } else if (!ur_dist_is_root(dist) && !freopen("/dev/null", "w", stdout)) {
        ur_dist_abort(dist, 1, "char_lm: cannot send stdout to /dev/null");
    }
    return 0;
}

int cl_dist_end(int rc)
{
    if (dist && rc != 0)
        ur_dist_abort(dist, rc, "char_lm stopped with status %d (its message is above)", rc);
    ur_dist_free(dist);
    dist = NULL;
    return rc;
}

int cl_dist_root(void) { return ur_dist_is_root(dist); }

void cl_dist_shard(int B, int *b0, int *nb)
{
    long begin, count;
    ur_dist_shard(B, ur_dist_rank(dist), ur_dist_size(dist), &begin, &count);
    *b0 = (int)begin;
    *nb = (int)count;
}

double cl_dist_clock(double local)
{
    if (!dist) return local;
    local_clock = (float)local;
    return shared_clock;
}

int cl_dist_start(lm_model *m, int B)
{
    char err[512];
    if (!dist) return 0;
    int n = ur_dist_size(dist);
    if (B < n) {
        fprintf(stderr, "char_lm: --batch %d is smaller than the %d ranks: each rank needs at "
                "least one stream\n", B, n);
        return -1;
    }
    if (ur_dist_broadcast_params(dist, m->ps, err, sizeof err) != 0) {
        fprintf(stderr, "char_lm: %s\n", err);
        return -1;
    }
    /* Rank 0 keeps the plain run's dropout stream; the others draw their own masks. */
    if (!ur_dist_is_root(dist))
        ur_rng_seed(&m->dropout_rng, ur_dist_rank_seed(dist, ur_rng_next(&m->dropout_rng)));
    if (ur_dist_is_root(dist))
        fprintf(stderr, "data-parallel: %d ranks share the %d streams of the batch (%d to %d "
                "each); one MPI_Allreduce of %.2f MiB per step\n", n, B, B / n,
                (B + n - 1) / n, (double)(ur_params_numel(m->ps) + 3) * 4 / 1048576.0);
    return 0;
}

int cl_dist_sync(lm_model *m, float *loss, int nb, int B, long step, int check_every)
{
    char err[768];
    if (!dist) return 0;
    if (ur_dist_check_params(dist, m->ps, step, check_every, err, sizeof err) != 0) {
        fprintf(stderr, "char_lm: %s\n", err);
        return -1;
    }
    double w = (double)nb / (double)B;
    float extra[2] = {(float)w * *loss, ur_dist_is_root(dist) ? local_clock : 0.0f};
    if (ur_dist_average_grads(dist, m->ps, w, extra, 2, err, sizeof err) != 0) {
        fprintf(stderr, "char_lm: step %ld: %s\n", step + 1, err);
        return -1;
    }
    *loss = extra[0];
    shared_clock = extra[1];
    return 0;
}

#else /* built without MPI: one process, all streams */

int cl_dist_begin(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int cl_dist_end(int rc) { return rc; }
int cl_dist_root(void) { return 1; }

void cl_dist_shard(int B, int *b0, int *nb)
{
    *b0 = 0;
    *nb = B;
}

double cl_dist_clock(double local) { return local; }

int cl_dist_start(lm_model *m, int B)
{
    (void)m;
    (void)B;
    return 0;
}

int cl_dist_sync(lm_model *m, float *loss, int nb, int B, long step, int check_every)
{
    (void)m;
    (void)loss;
    (void)nb;
    (void)B;
    (void)step;
    (void)check_every;
    return 0;
}

#endif
