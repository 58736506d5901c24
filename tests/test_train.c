/* Training utilities: optimizers, schedules, clipping and initialisers.
 * Expected optimizer values are recomputed here in double from the formulas written out. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ur_test.h"

/* ---- Optimizers ------------------------------------------------------------------------- */

/* Four scalars in two parameters, so that state offsets across parameters are exercised. */
#define NP 4
static const double P0[NP] = {0.5, -1.0, 2.0, 0.25};

/* The gradient of a made-up loss: depends on the current value and on the step. */
static double grad_of(double p, int i, int step)
{
    return 2.0 * p + 0.1 * (i + 1) * (step % 2 ? -1.0 : 1.0) + 0.05 * step;
}

static ur_params *opt_model(void)
{
    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a", 1, 3);
    ur_tensor *b = ur_params_add(ps, "b", 1, 1);
    ck_assert(a && b);
    for (int i = 0; i < 3; i++) a->val[i] = (float)P0[i];
    b->val[0] = (float)P0[3];
    return ps;
}

static float *scalar(ur_params *ps, int i, int grad)
{
    ur_tensor *t = ur_params_at(ps, i < 3 ? 0 : 1);
    return (grad ? t->grad : t->val) + (i < 3 ? i : 0);
}

/* Runs three steps of cfg; got[s][i] is scalar i after step s + 1. */
static void run_optim(const ur_optim_config *cfg, double got[3][NP])
{
    ur_params *ps = opt_model();
    char err[128] = "";
    ur_optim *opt = ur_optim_new(ps, cfg, err, sizeof err);
    ck_assert_msg(opt != NULL, "optim_new: %s", err);
    for (int s = 0; s < 3; s++) {
        float g[NP];
        for (int i = 0; i < NP; i++) *scalar(ps, i, 1) = g[i] = (float)grad_of(*scalar(ps, i, 0), i, s);
        ck_assert_int_eq(ur_optim_step(opt), 0);
        for (int i = 0; i < NP; i++) {
            got[s][i] = *scalar(ps, i, 0);
            ck_assert(*scalar(ps, i, 1) == g[i]); /* the step leaves gradients alone */
        }
        ck_assert_int_eq(ur_optim_steps(opt), s + 1);
    }
    ur_optim_free(opt);
    ur_params_free(ps);
}

static void expect_close(double got[3][NP], double want[3][NP], const char *what)
{
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < NP; i++)
            ck_assert_msg(fabs(got[s][i] - want[s][i]) <= 2e-6 * fmax(1.0, fabs(want[s][i])),
                          "%s: step %d scalar %d: got %.9g want %.9g", what, s + 1, i,
                          got[s][i], want[s][i]);
}

START_TEST(test_sgd)
{
    /* Plain with L2 weight decay: p -= lr (g + wd p). */
    ur_optim_config c = ur_optim_defaults(UR_OPTIM_SGD);
    c.lr = 0.1f;
    c.weight_decay = 0.01f;
    double got[3][NP], want[3][NP], p[NP], v[NP];
    run_optim(&c, got);
    for (int i = 0; i < NP; i++) p[i] = P0[i];
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < NP; i++) {
            double g = grad_of(p[i], i, s) + 0.01 * p[i];
            p[i] -= 0.1 * g;
            want[s][i] = p[i];
        }
    expect_close(got, want, "sgd");

    /* Momentum 0.9: v = 0.9 v + g, p -= lr v. */
    c.weight_decay = 0.0f;
    c.momentum = 0.9f;
    run_optim(&c, got);
    for (int i = 0; i < NP; i++) p[i] = P0[i], v[i] = 0.0;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < NP; i++) {
            double g = grad_of(p[i], i, s);
            v[i] = 0.9 * v[i] + g;
            p[i] -= 0.1 * v[i];
            want[s][i] = p[i];
        }
    expect_close(got, want, "sgd momentum");

    /* Nesterov: v = 0.9 v + g, p -= lr (g + 0.9 v). */
    c.nesterov = 1;
    run_optim(&c, got);
    for (int i = 0; i < NP; i++) p[i] = P0[i], v[i] = 0.0;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < NP; i++) {
            double g = grad_of(p[i], i, s);
            v[i] = 0.9 * v[i] + g;
            p[i] -= 0.1 * (g + 0.9 * v[i]);
            want[s][i] = p[i];
        }
    expect_close(got, want, "sgd nesterov");
    /* First step by hand for scalar 0: g = 2 * 0.5 + 0.1 = 1.1, v = 1.1,
     * p = 0.5 - 0.1 * (1.1 + 0.99) = 0.291. */
    ck_assert(fabs(got[0][0] - 0.291) < 1e-6);
}
END_TEST

START_TEST(test_adagrad)
{
    ur_optim_config c = ur_optim_defaults(UR_OPTIM_ADAGRAD);
    c.lr = 0.1f;
    c.initial_accumulator = 0.1f;
    double got[3][NP], want[3][NP], p[NP], sum[NP];
    run_optim(&c, got);
    for (int i = 0; i < NP; i++) p[i] = P0[i], sum[i] = 0.1;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < NP; i++) {
            double g = grad_of(p[i], i, s);
            sum[i] += g * g;
            p[i] -= 0.1 * g / (sqrt(sum[i]) + 1e-10);
            want[s][i] = p[i];
        }
    expect_close(got, want, "adagrad");
}
END_TEST

START_TEST(test_rmsprop)
{
    ur_optim_config c = ur_optim_defaults(UR_OPTIM_RMSPROP);
    c.lr = 0.01f;
    double got[3][NP], want[3][NP], p[NP], sq[NP], buf[NP];
    run_optim(&c, got);
    for (int i = 0; i < NP; i++) p[i] = P0[i], sq[i] = 0.0;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < NP; i++) {
            double g = grad_of(p[i], i, s);
            sq[i] = 0.99 * sq[i] + 0.01 * g * g;
            p[i] -= 0.01 * g / (sqrt(sq[i]) + 1e-8);
            want[s][i] = p[i];
        }
    expect_close(got, want, "rmsprop");
    /* First step: sq = 0.01 g^2, so the update is lr g / (0.1 |g|) = 0.1 sign(g). */
    ck_assert(fabs(got[0][0] - (0.5 - 0.1)) < 1e-6);

    c.momentum = 0.5f;
    run_optim(&c, got);
    for (int i = 0; i < NP; i++) p[i] = P0[i], sq[i] = 0.0, buf[i] = 0.0;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < NP; i++) {
            double g = grad_of(p[i], i, s);
            sq[i] = 0.99 * sq[i] + 0.01 * g * g;
            buf[i] = 0.5 * buf[i] + g / (sqrt(sq[i]) + 1e-8);
            p[i] -= 0.01 * buf[i];
            want[s][i] = p[i];
        }
    expect_close(got, want, "rmsprop momentum");
}
END_TEST

/* Adam reference; decoupled selects AdamW, else wd is L2 on the gradient. */
static void adam_ref(double lr, double wd, int decoupled, double want[3][NP])
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double p[NP], m[NP] = {0}, v[NP] = {0};
    for (int i = 0; i < NP; i++) p[i] = P0[i];
    for (int s = 0; s < 3; s++) {
        int t = s + 1;
        for (int i = 0; i < NP; i++) {
            double g = grad_of(p[i], i, s);
            if (decoupled) p[i] -= lr * wd * p[i];
            else g += wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            double mhat = m[i] / (1 - pow(b1, t));
            double vhat = v[i] / (1 - pow(b2, t));
            p[i] -= lr * mhat / (sqrt(vhat) + eps);
            want[s][i] = p[i];
        }
    }
}

START_TEST(test_adam)
{
    ur_optim_config c = ur_optim_defaults(UR_OPTIM_ADAM);
    ck_assert(c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f);
    c.lr = 0.1f;
    double got[3][NP], want[3][NP];
    run_optim(&c, got);
    adam_ref(0.1, 0.0, 0, want);
    expect_close(got, want, "adam");
    /* With bias correction the first step moves every scalar by lr against its gradient. */
    for (int i = 0; i < NP; i++) {
        double g = grad_of(P0[i], i, 0);
        ck_assert(fabs(got[0][i] - (P0[i] - 0.1 * (g > 0 ? 1 : -1))) < 1e-6);
    }

    c.weight_decay = 0.1f;
    run_optim(&c, got);
    adam_ref(0.1, 0.1, 0, want);
    expect_close(got, want, "adam l2");
}
END_TEST

START_TEST(test_adamw)
{
    ur_optim_config c = ur_optim_defaults(UR_OPTIM_ADAMW);
    ck_assert(c.weight_decay == 0.01f);
    c.lr = 0.1f;
    c.weight_decay = 0.2f;
    double got[3][NP], want[3][NP];
    run_optim(&c, got);
    adam_ref(0.1, 0.2, 1, want);
    expect_close(got, want, "adamw");
    /* Decoupled differs from L2. */
    adam_ref(0.1, 0.2, 0, want);
    ck_assert(fabs(got[2][2] - want[2][2]) > 1e-4);
}
END_TEST

START_TEST(test_optim_api)
{
    ur_params *ps = opt_model();
    char err[128];
    ur_optim_config c = ur_optim_defaults(UR_OPTIM_SGD);
    c.lr = -1.0f;
    ck_assert(ur_optim_new(ps, &c, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "lr") != NULL, "%s", err);
    c = ur_optim_defaults(UR_OPTIM_SGD);
    c.nesterov = 1;
    ck_assert(ur_optim_new(ps, &c, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "nesterov") != NULL, "%s", err);
    c = ur_optim_defaults(UR_OPTIM_ADAM);
    c.beta2 = 1.0f;
    ck_assert(ur_optim_new(ps, &c, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "beta") != NULL, "%s", err);
    c = ur_optim_defaults(UR_OPTIM_RMSPROP);
    c.eps = 0.0f;
    ck_assert(ur_optim_new(ps, &c, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "eps") != NULL, "%s", err);
    ck_assert(ur_optim_new(NULL, &c, NULL, 0) == NULL);
    ck_assert_int_eq(ur_optim_step(NULL), -1);

    /* Learning rate set per step: lr 0 leaves the values alone. */
    c = ur_optim_defaults(UR_OPTIM_SGD);
    ur_optim *opt = ur_optim_new(ps, &c, err, sizeof err);
    ck_assert(opt != NULL);
    ck_assert(ur_optim_lr(opt) == 0.01f);
    ur_optim_set_lr(opt, 0.0f);
    for (int i = 0; i < NP; i++) *scalar(ps, i, 1) = 1.0f;
    ck_assert_int_eq(ur_optim_step(opt), 0);
    for (int i = 0; i < NP; i++) ck_assert(*scalar(ps, i, 0) == (float)P0[i]);
    ur_optim_set_lr(opt, 0.5f);
    ur_optim_set_lr(opt, -2.0f); /* ignored */
    ck_assert(ur_optim_lr(opt) == 0.5f);
    ck_assert_int_eq(ur_optim_step(opt), 0);
    ck_assert(*scalar(ps, 0, 0) == (float)P0[0] - 0.5f);
    ck_assert(*scalar(ps, 0, 1) == 1.0f); /* gradient not zeroed */
    ur_optim_reset(opt);
    ck_assert_int_eq(ur_optim_steps(opt), 0);

    /* A parameter added after creation: the state no longer fits, the step refuses. */
    ck_assert(ur_params_add(ps, "late", 2, 2) != NULL);
    ck_assert_int_eq(ur_optim_step(opt), -1);
    ur_optim_free(opt);
    ur_optim_free(NULL);
    ur_params_free(ps);
}
END_TEST

/* ---- Schedules -------------------------------------------------------------------------- */

START_TEST(test_schedules)
{
    const double pi = 3.141592653589793;
    ck_assert(ur_lr_constant(0.3f, 0) == 0.3f && ur_lr_constant(0.3f, 12345) == 0.3f);

    ck_assert(fabs(ur_lr_step_decay(0.1f, 0, 10, 0.5f) - 0.1) < 1e-7);
    ck_assert(fabs(ur_lr_step_decay(0.1f, 9, 10, 0.5f) - 0.1) < 1e-7);
    ck_assert(fabs(ur_lr_step_decay(0.1f, 10, 10, 0.5f) - 0.05) < 1e-7);
    ck_assert(fabs(ur_lr_step_decay(0.1f, 25, 10, 0.5f) - 0.025) < 1e-7);
    ck_assert(fabs(ur_lr_step_decay(0.1f, 25, 0, 0.5f) - 0.1) < 1e-7);

    /* Cosine without warmup over 100 steps, from 1 to 0. */
    ck_assert(fabs(ur_lr_cosine(1.0f, 0, 100, 0, 0.0f) - 1.0) < 1e-6);
    ck_assert(fabs(ur_lr_cosine(1.0f, 25, 100, 0, 0.0f) - 0.5 * (1 + cos(pi / 4))) < 1e-6);
    ck_assert(fabs(ur_lr_cosine(1.0f, 50, 100, 0, 0.0f) - 0.5) < 1e-6);
    ck_assert(fabs(ur_lr_cosine(1.0f, 100, 100, 0, 0.0f)) < 1e-7);
    ck_assert(fabs(ur_lr_cosine(1.0f, 500, 100, 0, 0.0f)) < 1e-7);

    /* Warmup 10, total 110, min 0.01: (step + 1) / 10 ramp, then cosine over 100 steps. */
    ck_assert(fabs(ur_lr_cosine(0.1f, 0, 110, 10, 0.01f) - 0.01) < 1e-7);
    ck_assert(fabs(ur_lr_cosine(0.1f, 4, 110, 10, 0.01f) - 0.05) < 1e-7);
    ck_assert(fabs(ur_lr_cosine(0.1f, 9, 110, 10, 0.01f) - 0.1) < 1e-7);
    ck_assert(fabs(ur_lr_cosine(0.1f, 10, 110, 10, 0.01f) - 0.1) < 1e-7);
    ck_assert(fabs(ur_lr_cosine(0.1f, 60, 110, 10, 0.01f) - 0.055) < 1e-7);
    ck_assert(fabs(ur_lr_cosine(0.1f, 110, 110, 10, 0.01f) - 0.01) < 1e-7);
}
END_TEST

/* ---- Clipping --------------------------------------------------------------------------- */

static ur_params *clip_model(void)
{
    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a", 1, 3), *b = ur_params_add(ps, "b", 1, 2);
    a->grad[0] = 3.0f, a->grad[1] = 0.0f, a->grad[2] = 4.0f;
    b->grad[0] = 0.0f, b->grad[1] = -12.0f; /* global norm sqrt(9 + 16 + 144) = 13 */
    return ps;
}

START_TEST(test_clip_norm)
{
    ur_params *ps = clip_model();
    ur_tensor *a = ur_params_at(ps, 0), *b = ur_params_at(ps, 1);
    ck_assert(fabs(ur_grad_norm(ps) - 13.0) < 1e-12);

    /* Below or at the threshold: nothing changes, bit for bit. */
    float before[5];
    memcpy(before, a->grad, 3 * sizeof(float));
    memcpy(before + 3, b->grad, 2 * sizeof(float));
    ck_assert(fabs(ur_clip_grad_norm(ps, 20.0) - 13.0) < 1e-12);
    ck_assert(fabs(ur_clip_grad_norm(ps, 13.0) - 13.0) < 1e-12);
    ck_assert(memcmp(before, a->grad, 3 * sizeof(float)) == 0);
    ck_assert(memcmp(before + 3, b->grad, 2 * sizeof(float)) == 0);

    /* Above: returns the old norm, the new one equals the threshold, directions kept. */
    ck_assert(fabs(ur_clip_grad_norm(ps, 6.5) - 13.0) < 1e-12);
    ck_assert(fabs(ur_grad_norm(ps) - 6.5) < 1e-6);
    ck_assert(fabs(a->grad[0] - 1.5) < 1e-6 && fabs(a->grad[2] - 2.0) < 1e-6);
    ck_assert(fabs(b->grad[1] + 6.0) < 1e-6 && a->grad[1] == 0.0f);

    /* A non-finite norm is reported and nothing is scaled. */
    b->grad[0] = NAN;
    ck_assert(ur_clip_grad_norm(ps, 1.0) == -1.0);
    ck_assert(fabs(a->grad[0] - 1.5) < 1e-6);
    b->grad[0] = INFINITY;
    ck_assert(ur_clip_grad_norm(ps, 1.0) == -1.0);
    ck_assert(fabs(a->grad[0] - 1.5) < 1e-6);
    b->grad[0] = 0;
    ck_assert(ur_clip_grad_norm(ps, 0.0) == -1.0);
    ck_assert(ur_clip_grad_norm(ps, NAN) == -1.0);
    ck_assert(fabs(a->grad[0] - 1.5) < 1e-6);

    /* The stats: the norm before clipping, the scale, and the norm even when not finite. */
    ur_clip_stats st;
    ck_assert_int_eq(ur_clip_grad_norm_stats(ps, 100.0, &st), 0);
    ck_assert(fabs(st.norm - 6.5) < 1e-6 && st.scale == 1.0 && st.clipped == 0);
    ck_assert_int_eq(ur_clip_grad_norm_stats(ps, 3.25, &st), 0);
    ck_assert(fabs(st.norm - 6.5) < 1e-6 && fabs(st.scale - 0.5) < 1e-9 && st.clipped == 1);
    ck_assert(fabs(ur_grad_norm(ps) - 3.25) < 1e-6);
    b->grad[0] = INFINITY;
    ck_assert_int_eq(ur_clip_grad_norm_stats(ps, 1.0, &st), -1);
    ck_assert(isinf(st.norm) && st.clipped == 0);
    ck_assert_int_eq(ur_clip_grad_norm_stats(ps, 1.0, NULL), -1);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_clip_value)
{
    ur_params *ps = clip_model();
    ur_tensor *a = ur_params_at(ps, 0), *b = ur_params_at(ps, 1);
    a->grad[1] = 0.5f;
    b->grad[0] = NAN;
    ck_assert_int_eq(ur_clip_grad_value(ps, 1.0f), 0);
    ck_assert(a->grad[0] == 1.0f && a->grad[1] == 0.5f && a->grad[2] == 1.0f);
    ck_assert(isnan(b->grad[0]) && b->grad[1] == -1.0f);
    ck_assert_int_eq(ur_clip_grad_value(ps, -1.0f), -1);
    ck_assert_int_eq(ur_clip_grad_value(ps, NAN), -1);
    ur_params_free(ps);
}
END_TEST

/* ---- Initialisers ----------------------------------------------------------------------- */

/* Worst |G - gain^2 I| where G = W^T W (cols_gram) or W W^T. */
static double gram_error(const ur_tensor *w, int cols_gram, double gain)
{
    int n = cols_gram ? w->cols : w->rows, inner = cols_gram ? w->rows : w->cols;
    double worst = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double g = 0.0;
            for (int k = 0; k < inner; k++) {
                double x = cols_gram ? w->val[k * w->cols + i] : w->val[i * w->cols + k];
                double y = cols_gram ? w->val[k * w->cols + j] : w->val[j * w->cols + k];
                g += x * y;
            }
            worst = fmax(worst, fabs(g - (i == j ? gain * gain : 0.0)));
        }
    return worst;
}

START_TEST(test_init_orthogonal)
{
    ur_params *ps = ur_params_new();
    ur_tensor *sq = ur_params_add(ps, "sq", 16, 16), *tall = ur_params_add(ps, "tall", 32, 8);
    ur_tensor *wide = ur_params_add(ps, "wide", 8, 32), *one = ur_params_add(ps, "one", 1, 1);
    ur_tensor *small = ur_params_add(ps, "small", 3, 3);
    ur_rng r;
    ur_rng_seed(&r, 7);
    ck_assert_int_eq(ur_init_orthogonal(sq, 1.0f, &r), 0);
    ck_assert_int_eq(ur_init_orthogonal(tall, 1.0f, &r), 0);
    ck_assert_int_eq(ur_init_orthogonal(wide, 1.0f, &r), 0);
    ck_assert_msg(gram_error(sq, 1, 1.0) < 1e-5, "square W^T W: %g", gram_error(sq, 1, 1.0));
    ck_assert_msg(gram_error(sq, 0, 1.0) < 1e-5, "square W W^T: %g", gram_error(sq, 0, 1.0));
    ck_assert_msg(gram_error(tall, 1, 1.0) < 1e-5, "tall W^T W: %g", gram_error(tall, 1, 1.0));
    ck_assert_msg(gram_error(wide, 0, 1.0) < 1e-5, "wide W W^T: %g", gram_error(wide, 0, 1.0));
    ck_assert_int_eq(ur_init_orthogonal(sq, 2.0f, &r), 0);
    ck_assert(gram_error(sq, 1, 2.0) < 4e-5);
    ck_assert_int_eq(ur_init_orthogonal(one, 1.0f, &r), 0);
    ck_assert(fabsf(one->val[0]) == 1.0f);

    /* Same seed, same matrix; another seed, another one. */
    float copy[64];
    ur_rng_seed(&r, 11);
    ur_init_orthogonal(wide, 1.0f, &r);
    memcpy(copy, wide->val, sizeof copy);
    ur_rng_seed(&r, 11);
    ur_init_orthogonal(wide, 1.0f, &r);
    ck_assert(memcmp(copy, wide->val, sizeof copy) == 0);
    ur_rng_seed(&r, 12);
    ur_init_orthogonal(wide, 1.0f, &r);
    ck_assert(memcmp(copy, wide->val, sizeof copy) != 0);

    /* Haar distribution: without the sign fix LAPACK's Q has a fixed-sign first column
     * entry; with it every entry is symmetric around 0. */
    int positive = 0, n = 400;
    for (int k = 0; k < n; k++) {
        ur_init_orthogonal(small, 1.0f, &r);
        positive += small->val[0] > 0.0f;
    }
    ck_assert_msg(positive > n / 2 - 50 && positive < n / 2 + 50, "%d of %d positive", positive, n);

    ck_assert_int_eq(ur_init_orthogonal(NULL, 1.0f, &r), -1);
    ck_assert_int_eq(ur_init_orthogonal(sq, 1.0f, NULL), -1);
    ur_params_free(ps);
}
END_TEST

static void moments(const ur_tensor *t, double *mean, double *var, double *absmax)
{
    size_t n = ur_numel(t);
    double s = 0.0, s2 = 0.0, m = 0.0;
    for (size_t k = 0; k < n; k++) {
        s += t->val[k];
        s2 += (double)t->val[k] * t->val[k];
        m = fmax(m, fabs(t->val[k]));
    }
    *mean = s / n;
    *var = s2 / n - *mean * *mean;
    *absmax = m;
}

START_TEST(test_init_random)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 200, 300);
    ur_rng r;
    ur_rng_seed(&r, 3);
    double mean, var, absmax;

    /* Xavier uniform: a = sqrt(6 / 500); U(-a, a) has variance a^2 / 3. */
    double a = sqrt(6.0 / 500.0);
    ck_assert_int_eq(ur_init_xavier_uniform(w, 1.0f, &r), 0);
    moments(w, &mean, &var, &absmax);
    ck_assert_msg(absmax <= a, "xavier max %g > %g", absmax, a);
    ck_assert_msg(absmax > 0.99 * a, "xavier max %g", absmax);
    ck_assert_msg(fabs(mean) < 0.0015, "xavier mean %g", mean);
    ck_assert_msg(fabs(var / (a * a / 3) - 1) < 0.03, "xavier var %g", var);

    /* Xavier normal: std sqrt(2 / 500). */
    ck_assert_int_eq(ur_init_xavier_normal(w, 1.0f, &r), 0);
    moments(w, &mean, &var, &absmax);
    ck_assert_msg(fabs(mean) < 0.0015 && fabs(var / (2.0 / 500.0) - 1) < 0.03, "%g %g", mean, var);

    ck_assert_int_eq(ur_init_normal(w, 1.0f, 2.0f, &r), 0);
    moments(w, &mean, &var, &absmax);
    ck_assert_msg(fabs(mean - 1.0) < 0.03 && fabs(var / 4.0 - 1) < 0.03, "%g %g", mean, var);

    ck_assert_int_eq(ur_init_uniform(w, 2.0f, 3.0f, &r), 0);
    moments(w, &mean, &var, &absmax);
    for (size_t k = 0; k < ur_numel(w); k++) ck_assert(w->val[k] >= 2.0f && w->val[k] < 3.0f);
    ck_assert_msg(fabs(mean - 2.5) < 0.005, "%g", mean);

    /* Bad arguments: -1 and the tensor unchanged. */
    float first = w->val[0];
    ck_assert_int_eq(ur_init_uniform(w, 1.0f, 0.0f, &r), -1);
    ck_assert_int_eq(ur_init_uniform(w, 0.0f, INFINITY, &r), -1);
    ck_assert_int_eq(ur_init_normal(w, 0.0f, -1.0f, &r), -1);
    ck_assert_int_eq(ur_init_xavier_uniform(w, NAN, &r), -1);
    ck_assert_int_eq(ur_init_xavier_normal(w, 1.0f, NULL), -1);
    ck_assert_int_eq(ur_init_uniform(NULL, 0.0f, 1.0f, &r), -1);
    ck_assert(w->val[0] == first);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_init_fixed)
{
    ur_params *ps = ur_params_new();
    ur_tensor *sq = ur_params_add(ps, "sq", 4, 4), *rect = ur_params_add(ps, "rect", 3, 5);
    ur_init_constant(sq, 9.0f);
    ck_assert_int_eq(ur_init_identity(sq, 0.5f), 0);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) ck_assert(sq->val[i * 4 + j] == (i == j ? 0.5f : 0.0f));
    ck_assert_int_eq(ur_init_identity(rect, 1.0f), 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) ck_assert(rect->val[i * 5 + j] == (i == j ? 1.0f : 0.0f));
    ck_assert_int_eq(ur_init_constant(rect, -2.5f), 0);
    for (int k = 0; k < 15; k++) ck_assert(rect->val[k] == -2.5f);
    ck_assert_int_eq(ur_init_zeros(rect), 0);
    for (int k = 0; k < 15; k++) ck_assert(rect->val[k] == 0.0f);
    ck_assert_int_eq(ur_init_identity(NULL, 1.0f), -1);
    ck_assert_int_eq(ur_init_identity(sq, NAN), -1);
    ck_assert_int_eq(ur_init_zeros(NULL), -1);
    ur_params_free(ps);
}
END_TEST

static Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *opt = tcase_create("optim");
    tcase_add_test(opt, test_sgd);
    tcase_add_test(opt, test_adagrad);
    tcase_add_test(opt, test_rmsprop);
    tcase_add_test(opt, test_adam);
    tcase_add_test(opt, test_adamw);
    tcase_add_test(opt, test_optim_api);
    tcase_add_test(opt, test_schedules);
    suite_add_tcase(s, opt);

    TCase *clip = tcase_create("clip_init");
    tcase_add_test(clip, test_clip_norm);
    tcase_add_test(clip, test_clip_value);
    tcase_add_test(clip, test_init_orthogonal);
    tcase_add_test(clip, test_init_random);
    tcase_add_test(clip, test_init_fixed);
    suite_add_tcase(s, clip);
    return s;
}

int main(void) { return ur_test_run(train_suite()); }
