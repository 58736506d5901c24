/* Thread safety: two trainings, each with its own tape, parameters, optimizer and RNG, run in
 * two threads at once end with the same parameters, bit for bit, as the same two run one
 * after the other. The products are large enough that both threads want the shared worker
 * pool (ur_set_threads(2)): one gets it, the other runs alone, and neither may wait for the
 * other or change its result. While they run, OpenBLAS's thread count must stay at 1 (set once,
 * never flipped per product). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "tests/ur_test.h"

int openblas_get_num_threads(void); /* OpenBLAS's own */

enum { T = 12, B = 32, IN = 16, H = 64, K = 4, STEPS = 6, ROUNDS = 3 };

/* One training: a cell ("lstm" or "gru") read by a linear head at the last step, softmax +
 * NLL over K classes of random one-hot-ish inputs, STEPS steps of Adam with clipping. */
typedef struct training {
    const char *cell;
    uint64_t seed;
    float *params;   /* out: every parameter's values, in ur_params_at order */
    size_t n;        /* their count */
    char err[256];   /* empty when the training ran */
} training;

static void run_training(training *tr)
{
    ur_rng rng;
    ur_rng_seed(&rng, tr->seed);
    ur_params *ps = ur_params_new();
    ur_tape *tp = ur_tape_new(0);
    ur_optim *opt = NULL;
    ur_cell cell;
    float *x = malloc(sizeof(float) * T * B * IN);
    int labels[B];
    tr->err[0] = '\0';
    tr->params = NULL;
    if (!ps || !tp || !x) {
        snprintf(tr->err, sizeof tr->err, "out of memory");
        goto done;
    }
    int rc = strcmp(tr->cell, "lstm") == 0 ? ur_lstm_cell(&cell, ps, "rnn", IN, H, &rng)
                                           : ur_gru_cell(&cell, ps, "rnn", IN, H, &rng);
    ur_tensor *wo = ur_model_param(ps, "head", "W", H, K, 0.2f, &rng);
    ur_tensor *bo = ur_model_param(ps, "head", "b", 1, K, 0.2f, &rng);
    ur_optim_config cfg = ur_optim_defaults(UR_OPTIM_ADAM);
    cfg.lr = 0.01f;
    if (rc != 0 || !wo || !bo || !(opt = ur_optim_new(ps, &cfg, tr->err, sizeof tr->err))) {
        if (!tr->err[0]) snprintf(tr->err, sizeof tr->err, "model: %s", ur_model_error());
        goto done;
    }
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < T * B * IN; i++) x[i] = ur_rng_uniform(&rng) - 0.5f;
        for (int b = 0; b < B; b++) labels[b] = (int)ur_rng_below(&rng, K);
        ur_tape_reset(tp);
        ur_state init = {NULL, NULL};
        ur_tensor *h = ur_single_output(tp, &cell, ur_input_from(tp, T * B, IN, x), T, init,
                                        NULL);
        ur_tensor *loss = ur_softmax_nll(tp, ur_linear(tp, h, wo, bo), labels, UR_MEAN);
        ur_params_zero_grad(ps);
        if (ur_backward(tp, loss) != 0) {
            snprintf(tr->err, sizeof tr->err, "step %d: %s", step, ur_tape_error(tp));
            goto done;
        }
        ur_clip_grad_norm(ps, 1.0f);
        if (ur_optim_step(opt) != 0) {
            snprintf(tr->err, sizeof tr->err, "step %d: %s", step, ur_optim_error(opt));
            goto done;
        }
    }
    tr->n = ur_params_numel(ps);
    tr->params = malloc(tr->n * sizeof *tr->params);
    if (!tr->params) {
        snprintf(tr->err, sizeof tr->err, "out of memory");
        goto done;
    }
    size_t at = 0;
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(tr->params + at, p->val, ur_numel(p) * sizeof *p->val);
        at += ur_numel(p);
    }
done:
    ur_optim_free(opt);
    ur_tape_free(tp);
    ur_params_free(ps);
    free(x);
}

static void *training_thread(void *arg)
{
    run_training(arg);
    return NULL;
}

/* OpenBLAS's thread count, sampled until stop is set: the highest and lowest seen. */
typedef struct watch {
    atomic_int stop;
    int max_seen, min_seen;
} watch;

static void *watch_thread(void *arg)
{
    watch *w = arg;
    w->max_seen = 0;
    w->min_seen = 1 << 30;
    do {
        int n = openblas_get_num_threads();
        w->max_seen = n > w->max_seen ? n : w->max_seen;
        w->min_seen = n < w->min_seen ? n : w->min_seen;
        sched_yield();
    } while (!atomic_load(&w->stop));
    return NULL;
}

/* 1 when a and b hold the same n floats bit for bit. */
static int same_bits(const training *a, const training *b)
{
    return a->params && b->params && a->n == b->n &&
           memcmp(a->params, b->params, a->n * sizeof *a->params) == 0;
}

START_TEST(test_set_threads)
{
    int before = ur_threads();
    ck_assert_int_ge(before, 1);
    ck_assert_int_eq(openblas_get_num_threads(), 1); /* set once, by the first call */
    ck_assert_int_eq(ur_set_threads(0), 1);
    ck_assert_int_eq(ur_threads(), 1);
    ck_assert_int_eq(ur_set_threads(100), 8);
    ck_assert_int_eq(ur_threads(), 8);
    ck_assert_int_eq(ur_set_threads(2), 2);
    ck_assert_int_eq(ur_threads(), 2);
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    ur_set_threads(before);
}
END_TEST

START_TEST(test_two_trainings_in_two_threads)
{
    ur_set_threads(2);
    training ref[2] = {{.cell = "lstm", .seed = 11}, {.cell = "gru", .seed = 12}};
    for (int i = 0; i < 2; i++) {
        run_training(&ref[i]);
        ck_assert_msg(ref[i].err[0] == '\0', "%s alone: %s", ref[i].cell, ref[i].err);
    }
    ck_assert(!same_bits(&ref[0], &ref[1])); /* two different trainings */
    for (int round = 0; round < ROUNDS; round++) {
        training par[2] = {{.cell = "lstm", .seed = 11}, {.cell = "gru", .seed = 12}};
        watch w = {0};
        pthread_t th[2], wt;
        ck_assert_int_eq(pthread_create(&wt, NULL, watch_thread, &w), 0);
        for (int i = 0; i < 2; i++)
            ck_assert_int_eq(pthread_create(&th[i], NULL, training_thread, &par[i]), 0);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        atomic_store(&w.stop, 1);
        pthread_join(wt, NULL);
        ck_assert_int_eq(w.max_seen, 1);
        ck_assert_int_eq(w.min_seen, 1);
        for (int i = 0; i < 2; i++) {
            ck_assert_msg(par[i].err[0] == '\0', "%s in a thread: %s", par[i].cell, par[i].err);
            ck_assert_msg(same_bits(&par[i], &ref[i]),
                          "round %d: the %s trained beside another differs from it alone", round,
                          par[i].cell);
            free(par[i].params);
        }
    }
    for (int i = 0; i < 2; i++) free(ref[i].params);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_set_threads);
    tcase_add_test(tc, test_two_trainings_in_two_threads);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
