/* Tests of data-parallel training (dist/ur_dist.h), run by tests/test-dist.sh under
 * mpirun -np 2 (most modes) or -np 1.
 *
 *     test_dist unit                 every check below that runs within one job
 *     test_dist save DIR K           K steps, checkpoint DIR/ckpt.urm, one more step: DIR/next.urm
 *     test_dist resume DIR K         loads DIR/ckpt.urm, one step; must match DIR/next.urm
 *     test_dist fail                 rank 1 hits a tape error and stops every rank
 *     test_dist die                  rank 1 is killed (SIGKILL) while rank 0 waits for it
 *
 * Not a Check program: Check's fork mode and MPI do not mix, and in its no-fork mode a
 * failed assertion on one rank would send that rank to the next test while the other waits
 * in a collective of this one. Here a failed check prints its message and calls
 * ur_dist_abort, which ends every rank, so a failure can never hang the job.
 *
 * The model: embedding (V x E) -> LSTM (H) -> linear head -> softmax cross-entropy, on
 * sequences of T + 1 tokens from a fixed random dataset of N_EX examples; the global batch of
 * a step is ur_dist_batch_examples's, split over the ranks. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/ur_dist.h"
#include "unroll.h"

enum { V = 7, E = 5, H = 8, T = 6, N_EX = 40, MAX_B = 16 };
#define SEED 7u
#define DATA_SEED 11u
#define LR 0.5f
#define MOMENTUM 0.9f
#define CLIP 0.25

/* Parameters of the two runs may differ by this much (absolute; they are O(1)). Why: both
 * compute the same sums in a different order. On one rank a weight's gradient adds the
 * batch's rows in one GEMM; on two, each rank adds its rows, the halves are weighted (by 1/2,
 * exactly, or by 3/5 and 2/5) and added: a float rounding of about 6e-8 relative per sum.
 * SGD's momentum and the clipping scale carry those errors from step to step without
 * amplifying them (lr * |dg| per step). Measured after 10 steps: 6.0e-8 (global batch 6)
 * and 6.7e-8 (5), one or two float ulps of the largest values. 2e-6 is 30x that, and 30000x
 * smaller than the effect of clipping each rank's gradient before averaging (measured on
 * the same runs, at least 0.06), so the wrong order cannot pass. */
#define TOL 2e-6

static ur_dist *D;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            char msg_[1024];                                                                  \
            snprintf(msg_, sizeof msg_, __VA_ARGS__);                                        \
            ur_dist_abort(D, 1, "FAIL %s:%d: %s: %s", __FILE__, __LINE__, #cond, msg_);      \
        }                                                                                    \
    } while (0)

/* ---- The model and the data -------------------------------------------------------------- */

typedef struct model {
    ur_params *ps;
    ur_tensor *emb, *w, *b;
    ur_cell cell;
    ur_optim *opt;
    ur_tape *tp;
} model;

static int data[N_EX][T + 1];

static void make_data(void)
{
    ur_rng r;
    ur_rng_seed(&r, DATA_SEED);
    for (int i = 0; i < N_EX; i++)
        for (int t = 0; t <= T; t++) data[i][t] = (int)ur_rng_below(&r, V);
}

/* The model from seed, with SGD of learning rate LR and the given momentum. */
static void model_init(model *m, uint64_t seed, float momentum)
{
    char err[256];
    ur_rng r;
    ur_rng_seed(&r, seed);
    m->ps = ur_params_new();
    m->emb = ur_model_param(m->ps, "embed", "E", V, E, 1.0f, &r);
    CHECK(ur_lstm_cell(&m->cell, m->ps, "lstm", E, H, &r) == 0, "lstm cell");
    m->w = ur_model_param(m->ps, "head", "W", H, V, 0.3f, &r);
    m->b = ur_model_param(m->ps, "head", "b", 1, V, 0.3f, &r);
    CHECK(m->emb && m->w && m->b, "parameters");
    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_SGD);
    oc.lr = LR;
    oc.momentum = momentum;
    m->opt = ur_optim_new(m->ps, &oc, err, sizeof err);
    m->tp = ur_tape_new(0);
    CHECK(m->opt && m->tp, "%s", err);
}

static void model_free(model *m)
{
    ur_tape_free(m->tp);
    ur_optim_free(m->opt);
    ur_params_free(m->ps);
}

/* Forward and backward of the mean loss over examples ex[0..nb); returns the loss. */
static double forward_backward(model *m, const long *ex, long nb)
{
    int in[T * MAX_B], tgt[T * MAX_B];
    CHECK(nb >= 1 && nb <= MAX_B, "batch of %ld", nb);
    for (int t = 0; t < T; t++)
        for (long b = 0; b < nb; b++) {
            in[t * nb + b] = data[ex[b]][t];
            tgt[t * nb + b] = data[ex[b]][t + 1];
        }
    ur_tape_reset(m->tp);
    ur_seq seq;
    ur_tensor *x = ur_embedding(m->tp, m->emb, in, T * (int)nb);
    ur_unroll(m->tp, &m->cell, x, T, (ur_state){0}, 0, &seq);
    ur_tensor *loss = ur_softmax_nll(m->tp, ur_linear(m->tp, seq.H, m->w, m->b), tgt, UR_MEAN);
    ur_params_zero_grad(m->ps);
    CHECK(ur_backward(m->tp, loss) == 0, "%s", ur_tape_error(m->tp));
    return loss->val[0];
}

/* How a step combines the ranks' gradients with clipping. */
enum { ALONE, AVERAGE_THEN_CLIP, CLIP_THEN_AVERAGE };

/* One training step at global step `step` with global batch B: on this rank's examples,
 * or (ALONE) on all of them. Returns the global mean loss; *clipped is set when the norm
 * exceeded CLIP. */
static double train_step(model *m, long step, long B, int how, int *clipped)
{
    char err[512];
    long ex[MAX_B], nb;
    int rank = how == ALONE ? 0 : ur_dist_rank(D), size = how == ALONE ? 1 : ur_dist_size(D);
    CHECK(ur_dist_batch_examples(N_EX, B, step, DATA_SEED, rank, size, ex, &nb) == 0, "batch");
    float loss = (float)forward_backward(m, ex, nb);
    double w = (double)nb / (double)B;
    if (how == CLIP_THEN_AVERAGE) ur_clip_grad_norm(m->ps, CLIP);
    if (how != ALONE) {
        float extra = (float)w * loss;
        CHECK(ur_dist_average_grads(D, m->ps, w, &extra, 1, err, sizeof err) == 0, "%s", err);
        loss = extra;
    }
    double norm = how == CLIP_THEN_AVERAGE ? 0 : ur_clip_grad_norm(m->ps, CLIP);
    if (clipped && norm > CLIP) *clipped = 1;
    CHECK(ur_optim_step(m->opt) == 0, "%s", ur_optim_error(m->opt));
    return loss;
}

/* Largest |a - b| over two sets of the same structure. */
static double max_diff(const ur_params *a, const ur_params *b)
{
    double worst = 0;
    for (int i = 0; i < ur_params_count(a); i++) {
        const ur_tensor *x = ur_params_at(a, i), *y = ur_params_at(b, i);
        for (size_t k = 0; k < ur_numel(x); k++) {
            double d = fabs((double)x->val[k] - (double)y->val[k]);
            if (!(d <= worst)) worst = d;
        }
    }
    return worst;
}

#define ROOT_SAYS(...)                                                                       \
    do {                                                                                     \
        if (ur_dist_is_root(D)) {                                                            \
            printf(__VA_ARGS__);                                                             \
            fflush(stdout);                                                                  \
        }                                                                                    \
    } while (0)

/* ---- unit: the checks that run within one job ---------------------------------------------- */

static void test_shard(void)
{
    for (long n = 0; n <= 23; n++)
        for (int size = 1; size <= 5; size++) {
            long next = 0;
            for (int r = 0; r < size; r++) {
                long b, c;
                ur_dist_shard(n, r, size, &b, &c);
                CHECK(b == next && c >= n / size && c <= n / size + 1, "n %ld rank %d", n, r);
                next = b + c;
            }
            CHECK(next == n, "shards of %ld over %d cover %ld", n, size, next);
        }
    static const long sizes[] = {1, 2, 3, 7, 64, 1000, 4097};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        long n = sizes[s];
        unsigned char *seen = calloc((size_t)n, 1);
        long moved = 0;
        for (long i = 0; i < n; i++) {
            long p = ur_dist_permute(i, n, 5, 3);
            CHECK(p >= 0 && p < n && !seen[p], "permute(%ld of %ld) = %ld", i, n, p);
            seen[p] = 1;
            moved += p != i;
            CHECK(p == ur_dist_permute(i, n, 5, 3), "same seed, same order");
        }
        CHECK(n < 64 || moved > n / 2, "a shuffle of %ld moves %ld", n, moved);
        free(seen);
    }
    CHECK(ur_dist_permute(0, 1000, 5, 3) != ur_dist_permute(0, 1000, 5, 4) ||
              ur_dist_permute(1, 1000, 5, 3) != ur_dist_permute(1, 1000, 5, 4),
          "epochs are shuffled differently");
    CHECK(ur_dist_permute(-1, 10, 0, 0) == -1 && ur_dist_permute(10, 10, 0, 0) == -1, "range");
    /* The global batch of a step is the same whatever the number of ranks. */
    for (long step = 0; step < 12; step++) {
        long one[MAX_B], n1;
        CHECK(ur_dist_batch_examples(N_EX, 7, step, 3, 0, 1, one, &n1) == 0 && n1 == 7, "1 rank");
        for (int size = 2; size <= 5; size++) {
            long all[MAX_B], got = 0;
            for (int r = 0; r < size; r++) {
                long part[MAX_B], c;
                CHECK(ur_dist_batch_examples(N_EX, 7, step, 3, r, size, part, &c) == 0, "split");
                memcpy(all + got, part, (size_t)c * sizeof *part);
                got += c;
            }
            CHECK(got == 7 && memcmp(all, one, sizeof(long) * 7) == 0, "step %ld, %d ranks",
                  step, size);
        }
    }
    long ex[MAX_B], c;
    CHECK(ur_dist_batch_examples(5, 6, 0, 0, 0, 1, ex, &c) == -1, "batch larger than the data");
    CHECK(ur_dist_batch_examples(5, 2, 0, 0, 2, 2, ex, &c) == -1, "rank out of range");
}

static void test_broadcast(void)
{
    char err[512];
    model m;
    model_init(&m, SEED + (uint64_t)ur_dist_rank(D), MOMENTUM);   /* different on each rank */
    uint64_t mine = ur_dist_params_checksum(m.ps);
    CHECK(ur_dist_check_params(D, m.ps, 0, 1, err, sizeof err) == -1, "unequal starts pass");
    CHECK(ur_dist_broadcast_params(D, m.ps, err, sizeof err) == 0, "%s", err);
    CHECK(ur_dist_check_params(D, m.ps, 0, 1, err, sizeof err) == 0, "%s", err);
    model ref;
    model_init(&ref, SEED, MOMENTUM);
    CHECK(max_diff(m.ps, ref.ps) == 0, "rank 0's values everywhere");
    CHECK(ur_dist_rank(D) != 0 || ur_dist_params_checksum(m.ps) == mine, "rank 0 unchanged");
    /* A set of another structure on rank 1: refused on every rank, nothing changed. */
    if (ur_dist_rank(D) == 1) ur_params_add(m.ps, "extra", 1, 1);
    uint64_t before = ur_dist_params_checksum(m.ps);
    CHECK(ur_dist_broadcast_params(D, m.ps, err, sizeof err) == -1, "mismatch accepted");
    CHECK(strstr(err, "rank 1's parameter set differs"), "message: %s", err);
    CHECK(ur_dist_params_checksum(m.ps) == before, "changed after a refusal");
    /* A generic broadcast, and one with sizes that disagree. */
    long step = ur_dist_is_root(D) ? 1234 : 0;
    CHECK(ur_dist_broadcast(D, &step, sizeof step, err, sizeof err) == 0 && step == 1234, "%s",
          err);
    CHECK(ur_dist_broadcast(D, &step, ur_dist_is_root(D) ? 8 : 4, err, sizeof err) == -1 &&
              strstr(err, "different sizes"), "size mismatch: %s", err);
    model_free(&m);
    model_free(&ref);
    /* Rank 0's own stream is the plain run's; every other rank's differs from it. */
    uint64_t s = ur_dist_rank_seed(D, 42);
    CHECK(ur_dist_is_root(D) ? s == 42 : s != 42, "rank %d's seed is %llu", ur_dist_rank(D),
          (unsigned long long)s);
}

/* N steps on the ranks against N steps of one process on the whole batch. Returns the
 * largest difference; *wrong gets that of clipping before averaging. */
static double equivalence(long B, int steps, double *wrong)
{
    char err[512];
    model dist, alone, bad;
    model_init(&dist, SEED, MOMENTUM);
    model_init(&alone, SEED, MOMENTUM);
    model_init(&bad, SEED, MOMENTUM);
    CHECK(ur_dist_broadcast_params(D, dist.ps, err, sizeof err) == 0, "%s", err);
    int clipped = 0;
    for (long s = 0; s < steps; s++) {
        double l1 = train_step(&dist, s, B, AVERAGE_THEN_CLIP, &clipped);
        double l2 = train_step(&alone, s, B, ALONE, NULL);
        train_step(&bad, s, B, CLIP_THEN_AVERAGE, NULL);
        CHECK(fabs(l1 - l2) < 1e-5, "step %ld: global loss %.9g, alone %.9g", s, l1, l2);
        CHECK(ur_dist_check_params(D, dist.ps, s, 1, err, sizeof err) == 0, "%s", err);
    }
    CHECK(clipped, "the test must make clipping act");
    double diff = max_diff(dist.ps, alone.ps);
    *wrong = max_diff(bad.ps, alone.ps);
    model_free(&dist);
    model_free(&alone);
    model_free(&bad);
    return diff;
}

static void test_equivalence(void)
{
    CHECK(ur_dist_size(D) == 2, "run with 2 ranks (mpirun -np 2)");
    static const long batches[] = {6, 5};   /* 3 + 3, and 3 + 2 (weights 3/5 and 2/5) */
    for (int k = 0; k < 2; k++) {
        double wrong, diff = equivalence(batches[k], 10, &wrong);
        ROOT_SAYS("equivalence: global batch %ld, 10 steps: max |2 ranks - 1 process| = %.3g "
                  "(tolerance %.0e); clipping before averaging would give %.3g\n", batches[k],
                  diff, TOL, wrong);
        CHECK(diff <= TOL, "global batch %ld: parameters differ by %.3g", batches[k], diff);
        CHECK(wrong > 100 * TOL, "the wrong order differs only by %.3g", wrong);
    }
}

static void test_divergence(void)
{
    char err[512];
    model m;
    model_init(&m, SEED, MOMENTUM);
    CHECK(ur_dist_broadcast_params(D, m.ps, err, sizeof err) == 0, "%s", err);
    for (long s = 0; s < 3; s++) train_step(&m, s, 6, AVERAGE_THEN_CLIP, NULL);
    CHECK(ur_dist_check_params(D, m.ps, 3, 1, err, sizeof err) == 0, "%s", err);
    /* Rank 1 nudges one value of the LSTM's recurrent weight by one ulp. */
    ur_tensor *w = ur_params_get(m.ps, "lstm.Wh");
    CHECK(w != NULL, "no lstm.Wh");
    float saved = w->val[13];
    if (ur_dist_rank(D) == 1) w->val[13] = nextafterf(saved, 10.0f);
    CHECK(ur_dist_check_params(D, m.ps, 7, 5, err, sizeof err) == 0, "step 7 is not due");
    CHECK(ur_dist_check_params(D, m.ps, 10, 5, err, sizeof err) == -1, "divergence missed");
    if (ur_dist_is_root(D)) printf("divergence: %s\n", err);
    CHECK(strstr(err, "at step 10") && strstr(err, "rank 1") && strstr(err, "lstm.Wh") &&
              strstr(err, "[0,13]"), "message: %s", err);   /* value 13 of an 8 x 32 matrix */
    w->val[13] = saved;
    CHECK(ur_dist_check_params(D, m.ps, 15, 5, err, sizeof err) == 0, "%s", err);
    model_free(&m);
}

static void test_bad_arguments(void)
{
    char err[512];
    model m;
    model_init(&m, SEED, MOMENTUM);
    long ex[MAX_B] = {0, 1, 2};
    forward_backward(&m, ex, 3);
    uint64_t before = 0;
    for (int i = 0; i < ur_params_count(m.ps); i++) {
        const ur_tensor *t = ur_params_at(m.ps, i);
        for (size_t k = 0; k < ur_numel(t); k++) before += (uint64_t)(t->grad[k] * 1e6f);
    }
    /* A NaN weight on rank 1 only: every rank refuses, no gradient changes. */
    double w = ur_dist_rank(D) == 1 ? NAN : 0.5;
    CHECK(ur_dist_average_grads(D, m.ps, w, NULL, 0, err, sizeof err) == -1, "NaN accepted");
    CHECK(strstr(err, "1 rank(s) passed a bad weight"), "message: %s", err);
    uint64_t after = 0;
    for (int i = 0; i < ur_params_count(m.ps); i++) {
        const ur_tensor *t = ur_params_at(m.ps, i);
        for (size_t k = 0; k < ur_numel(t); k++) after += (uint64_t)(t->grad[k] * 1e6f);
    }
    CHECK(before == after, "gradients changed after a refusal");
    /* Extra values of different counts on the ranks: refused before the all-reduce. */
    float extra[2] = {1, 2};
    int n_extra = ur_dist_rank(D) == 1 ? 2 : 1;
    CHECK(ur_dist_average_grads(D, m.ps, 0.5, extra, n_extra, err, sizeof err) == -1 &&
              strstr(err, "different gradient sizes"), "message: %s", err);
    CHECK(ur_dist_average_grads(D, m.ps, 0.5, extra, 2, err, sizeof err) == 0, "%s", err);
    CHECK(extra[0] == 2 && extra[1] == 4, "extras summed: %g %g", extra[0], extra[1]);
    ur_dist_stats st = ur_dist_get_stats(D);
    CHECK(st.calls > 0 && st.bytes > 0 && st.allreduce_s >= 0, "stats");
    model_free(&m);
}

static void test_files(const char *dir)
{
    char err[512], path[1024];
    snprintf(path, sizeof path, "%s/unit.urm", dir);
    model m, ref;
    model_init(&m, SEED + (uint64_t)ur_dist_rank(D), MOMENTUM);
    CHECK(ur_dist_save_params(D, m.ps, path, err, sizeof err) == 0, "%s", err);
    model_free(&m);
    model_init(&m, SEED + 100, MOMENTUM);
    CHECK(ur_dist_load_params(D, m.ps, path, err, sizeof err) == 0, "%s", err);
    model_init(&ref, SEED, MOMENTUM);   /* rank 0's values were saved */
    CHECK(max_diff(m.ps, ref.ps) == 0, "loaded values are rank 0's");
    snprintf(path, sizeof path, "%s/missing.urm", dir);
    CHECK(ur_dist_load_params(D, m.ps, path, err, sizeof err) == -1 && strstr(err, "missing"),
          "every rank reports rank 0's failure: %s", err);
    snprintf(path, sizeof path, "%s/no-such-dir/x.urm", dir);
    CHECK(ur_dist_save_params(D, m.ps, path, err, sizeof err) == -1 && strstr(err, "no-such-dir"),
          "every rank reports rank 0's failure: %s", err);
    model_free(&m);
    model_free(&ref);
}

/* ---- save / resume across rank counts --------------------------------------------------
 * Plain SGD (no momentum) here: its state is the parameters alone, which is all that
 * ur_params_save writes, so the step after a checkpoint depends only on the checkpoint and on
 * the data of that step. (An optimizer with state is the same on every rank, so rank 0's
 * copy of it is the one to checkpoint beside the parameters.) */

#define RESUME_B 6

static void path_in(char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static void cmd_save(const char *dir, long k)
{
    char err[512], path[1024];
    model m;
    model_init(&m, SEED, 0.0f);
    CHECK(ur_dist_broadcast_params(D, m.ps, err, sizeof err) == 0, "%s", err);
    for (long s = 0; s < k; s++) train_step(&m, s, RESUME_B, AVERAGE_THEN_CLIP, NULL);
    path_in(path, sizeof path, dir, "ckpt.urm");
    CHECK(ur_dist_save_params(D, m.ps, path, err, sizeof err) == 0, "%s", err);
    train_step(&m, k, RESUME_B, AVERAGE_THEN_CLIP, NULL);
    path_in(path, sizeof path, dir, "next.urm");
    CHECK(ur_dist_save_params(D, m.ps, path, err, sizeof err) == 0, "%s", err);
    ROOT_SAYS("saved after %ld steps on %d rank(s), and the step after\n", k, ur_dist_size(D));
    model_free(&m);
}

static void cmd_resume(const char *dir, long k)
{
    char err[512], path[1024];
    model m, want;
    model_init(&m, SEED + 1, 0.0f);   /* other values: the checkpoint must replace them all */
    model_init(&want, SEED + 2, 0.0f);
    path_in(path, sizeof path, dir, "ckpt.urm");
    CHECK(ur_dist_load_params(D, m.ps, path, err, sizeof err) == 0, "%s", err);
    train_step(&m, k, RESUME_B, AVERAGE_THEN_CLIP, NULL);
    path_in(path, sizeof path, dir, "next.urm");
    CHECK(ur_dist_load_params(D, want.ps, path, err, sizeof err) == 0, "%s", err);
    double diff = max_diff(m.ps, want.ps);
    ROOT_SAYS("resumed on %d rank(s): step %ld differs from the saving run's by %.3g "
              "(tolerance %.0e)\n", ur_dist_size(D), k + 1, diff, TOL);
    CHECK(diff <= TOL, "the resumed step differs by %.3g", diff);
    CHECK(ur_dist_check_params(D, m.ps, k + 1, 1, err, sizeof err) == 0, "%s", err);
    model_free(&m);
    model_free(&want);
}

/* ---- failures ------------------------------------------------------------------------------ */

static void cmd_fail(void)
{
    char err[512];
    model m;
    model_init(&m, SEED, MOMENTUM);
    long ex[MAX_B] = {0, 1, 2};
    forward_backward(&m, ex, 3);
    if (ur_dist_rank(D) == 1) {
        ur_tape_reset(m.tp);
        ur_tensor *a = ur_input(m.tp, 2, 3), *b = ur_input(m.tp, 2, 3);
        ur_matmul(m.tp, ur_requires_grad(a), b, 0, 0);   /* 2x3 times 2x3: a shape error */
        ur_dist_abort(D, 3, "step 1: %s", ur_tape_error(m.tp));
    }
    ur_dist_average_grads(D, m.ps, 0.5, NULL, 0, err, sizeof err);  /* waits for rank 1 */
    CHECK(0, "rank 0 was not stopped");
}

static void cmd_die(void)
{
    char err[512];
    model m;
    model_init(&m, SEED, MOMENTUM);
    CHECK(ur_dist_broadcast_params(D, m.ps, err, sizeof err) == 0, "%s", err);
    if (ur_dist_rank(D) == 1) raise(SIGKILL);
    train_step(&m, 0, 6, AVERAGE_THEN_CLIP, NULL);   /* waits for rank 1 */
    CHECK(0, "rank 0 was not stopped");
}

int main(int argc, char **argv)
{
    char err[256];
    if (!(D = ur_dist_init(&argc, &argv, err, sizeof err))) {
        fprintf(stderr, "test_dist: %s\n", err);
        return 1;
    }
    make_data();
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "unit") == 0 && argc == 3) {
        test_shard();
        test_broadcast();
        test_equivalence();
        test_divergence();
        test_bad_arguments();
        test_files(argv[2]);
    } else if ((strcmp(mode, "save") == 0 || strcmp(mode, "resume") == 0) && argc == 4) {
        long k = atol(argv[3]);
        if (mode[0] == 's') cmd_save(argv[2], k);
        else cmd_resume(argv[2], k);
    } else if (strcmp(mode, "fail") == 0) {
        cmd_fail();
    } else if (strcmp(mode, "die") == 0) {
        cmd_die();
    } else {
        ur_dist_abort(D, 2, "usage: test_dist unit DIR | save DIR K | resume DIR K | fail | die");
    }
    if (ur_dist_is_root(D)) printf("test_dist %s: PASS\n", mode);
    ur_dist_free(D);
    return 0;
}
