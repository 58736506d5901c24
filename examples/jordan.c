/* jordan: teacher forcing, free-running and scheduled sampling on a Jordan network.
 *
 * A Jordan network feeds its previous OUTPUT back into its hidden layer:
 *     h_t = tanh(b + W y_{t-1} + U x_t),     o_t = c + V h_t
 * Here it has no external input (x_t = 0): its only memory is what it fed back, and it must
 * generate a periodic signal on its own. The signal is a wave with two harmonics, drawn as a
 * point going round a closed curve in the plane (the wave and its quadrature):
 *     z(theta) = e^{i theta} + a2 e^{2 i theta} + a3 e^{3 i theta},   theta_t = theta_0 + 2 pi t / P
 * The point y_{t-1} fixes the phase, so y_t is a function of y_{t-1}: a network that learns
 * that function can generate the signal from any starting point.
 *
 * Teacher forcing trains on y_{t-1} = the TRUE previous point. Free-running (open loop)
 * feeds back the model's own previous output, so at test time it sees points it never saw
 * in training, its small errors pile up and the generated wave drifts: the exposure bias.
 * Scheduled sampling trains on a mix: each sequence at each step feeds the truth with
 * probability p, its own output otherwise, with p going from 1 down to --ss-final over
 * training (a curriculum). The model then learns to recover from its own errors.
 *
 * Shapes: B = batch, T = steps, H = hidden units, 2 = output (x, y of the point).
 * Time-stacked: row t*B + b is step t of sequence b.
 */
#define _POSIX_C_SOURCE 200809L
#include "examples/common.h"
#include "graph/ur_train.h"
#include "models/ur_models.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TWO_PI 6.28318530717958647692

typedef struct config {
    int steps, batch, len, eval_len, eval, period, hidden, seed;
    float lr, clip, a2, a3, ss_final, ss_end;
    const char *log, *trace;
} config;

typedef struct model {
    const char *name;
    ur_params *ps;
    ur_jordan net;
} model;

/* The point at phase th: (Re z, Im z). */
static void point(const config *cfg, double th, float *out)
{
    out[0] = (float)(cos(th) + cfg->a2 * cos(2 * th) + cfg->a3 * cos(3 * th));
    out[1] = (float)(sin(th) + cfg->a2 * sin(2 * th) + cfg->a3 * sin(3 * th));
}

/* B sequences from random phases: y0 (B x 2) is the point before step 0, targets
 * (T*B x 2) the next T points. */
static void make_batch(const config *cfg, ur_rng *rng, int T, int B, float *y0, float *targets)
{
    double w = TWO_PI / cfg->period;
    for (int b = 0; b < B; b++) {
        double th = TWO_PI * ur_rng_uniform(rng);
        point(cfg, th, y0 + 2 * b);
        for (int t = 0; t < T; t++) point(cfg, th + (t + 1) * w, targets + 2 * ((size_t)t * B + b));
    }
}

/* Records a run of the network in the given mode; returns o (T*B x 2). */
static ur_tensor *run(ur_tape *tp, const model *m, int T, int B, const float *y0,
                      const float *targets, ur_jordan_mode mode, float p, ur_rng *rng)
{
    ur_tensor *x = ur_input(tp, T * B, 1); /* no external input */
    ur_tensor *yt = ur_input_from(tp, T * B, 2, targets);
    ur_tensor *y_init = ur_input_from(tp, B, 2, y0);
    ur_jordan_opts op = {.mode = mode, .feed = UR_FEED_OUTPUT, .p_teacher = p, .rng = rng};
    return ur_jordan_run(tp, &m->net, x, T, yt, y_init, &op, NULL, NULL);
}

/* Root-mean-square distance between o and the targets, over all steps and sequences. */
static double rms_error(const ur_tensor *o, const float *targets)
{
    double s = 0.0;
    size_t n = ur_numel(o);
    for (size_t k = 0; k < n; k++) {
        double d = (double)o->val[k] - targets[k];
        s += d * d;
    }
    return sqrt(2.0 * s / (double)n); /* per point: sum over x and y, mean over points */
}

typedef struct errors {
    double teacher, free;
} errors;

/* Teacher-forced and free-running error on the same held-out sequences. */
static int evaluate(ur_tape *tp, const model *m, const config *cfg, errors *e, float *y0,
                    float *targets)
{
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)cfg->seed * 7919u + 5u);
    int T = cfg->eval_len, B = cfg->eval;
    make_batch(cfg, &rng, T, B, y0, targets);
    ur_tape_reset(tp);
    ur_tensor *o = run(tp, m, T, B, y0, targets, UR_JORDAN_TEACHER, 1.0f, NULL);
    if (ur_tape_error(tp)) return -1;
    e->teacher = rms_error(o, targets);
    ur_tape_reset(tp);
    o = run(tp, m, T, B, y0, targets, UR_JORDAN_FREE, 0.0f, NULL);
    if (ur_tape_error(tp)) return -1;
    e->free = rms_error(o, targets);
    return 0;
}

/* Probability of feeding the truth at step (scheduled sampling): linear from 1 down to
 * ss_final, reached at the fraction ss_end of training. */
static float teacher_prob(const config *cfg, long step)
{
    double f = (double)step / (cfg->ss_end * cfg->steps);
    if (f > 1.0) f = 1.0;
    return (float)(1.0 - f * (1.0 - cfg->ss_final));
}

typedef struct outcome {
    double first_loss, last_loss, seconds;
    errors err;
} outcome;

static int train(model *m, const config *cfg, int scheduled, FILE *log, uint64_t data_seed,
                 outcome *res)
{
    int T = cfg->len, B = cfg->batch;
    size_t rows = (size_t)(T > cfg->eval_len ? T : cfg->eval_len) *
                  (size_t)(B > cfg->eval ? B : cfg->eval);
    float *y0 = malloc(rows * 2 * sizeof *y0), *targets = malloc(rows * 2 * sizeof *targets);
    ur_tape *tp = ur_tape_new(0);
    char err[256];
    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
    oc.lr = cfg->lr;
    ur_optim *opt = ur_optim_new(m->ps, &oc, err, sizeof err);
    int rc = -1;
    if (!y0 || !targets || !tp || !opt) {
        fprintf(stderr, "jordan: %s\n", opt ? "out of memory" : err);
        goto done;
    }
    ur_rng data, coins;
    ur_rng_seed(&data, data_seed);
    ur_rng_seed(&coins, data_seed ^ 0x5eedu);
    ex_loss_track lt;
    ex_loss_start(&lt, cfg->steps, cfg->steps >= 100 ? 20 : 5, 0.05);
    ex_progress pg;
    ex_progress_start(&pg, cfg->steps, 2.0);
    for (long step = 0; step < cfg->steps; step++) {
        float p = scheduled ? teacher_prob(cfg, step) : 1.0f;
        make_batch(cfg, &data, T, B, y0, targets);
        ur_tape_reset(tp);
        ur_tensor *o = run(tp, m, T, B, y0, targets,
                           scheduled ? UR_JORDAN_SCHEDULED : UR_JORDAN_TEACHER, p, &coins);
        ur_tensor *loss = ur_mse(tp, o, ur_input_from(tp, T * B, 2, targets), UR_MEAN);
        if (ex_update(tp, loss, m->ps, opt, cfg->clip,
                      ur_lr_cosine(cfg->lr, step, cfg->steps, 0, 0.05f * cfg->lr), "jordan",
                      NULL) != 0)
            goto done;

        double l = loss->val[0];
        ex_loss_add(&lt, step, l);
        double el = ex_elapsed(&pg);
        fprintf(log, "%s,%ld,%.6g,%.3f,%.2f\n", m->name, step + 1, l, p, el);
        if (ex_progress_due(&pg, step))
            printf("%-19s step %5ld/%d  loss %.5f  p(truth) %.2f  %6.0f seq/s  elapsed %5.1fs  "
                   "ETA %5.1fs\n", m->name, step + 1, cfg->steps, lt.running, p,
                   (step + 1) * B / (el > 0 ? el : 1e-9), el, ex_eta(&pg, step));
    }
    res->first_loss = lt.first;
    res->last_loss = lt.last;
    res->seconds = ex_elapsed(&pg);
    if (evaluate(tp, m, cfg, &res->err, y0, targets) != 0) {
        fprintf(stderr, "jordan: %s\n", ur_tape_error(tp));
        goto done;
    }
    rc = 0;
done:
    ur_optim_free(opt);
    ur_tape_free(tp);
    free(targets);
    free(y0);
    return rc;
}

/* Writes one held-out sequence: the truth and each model's free-running generation. */
static int write_trace(const config *cfg, model *const *ms, int n_models)
{
    FILE *f = ex_csv_open(cfg->trace, "t,true_x,true_y,tf_free_x,tf_free_y,ss_free_x,ss_free_y");
    if (!f) return -1;
    int T = cfg->eval_len;
    float y0[2], *targets = malloc((size_t)T * 2 * sizeof *targets);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor **o = calloc((size_t)n_models, sizeof *o);
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)cfg->seed * 31u + 7u);
    int rc = -1;
    if (!targets || !tp || !o) goto done;
    make_batch(cfg, &rng, T, 1, y0, targets);
    for (int k = 0; k < n_models; k++)
        o[k] = run(tp, ms[k], T, 1, y0, targets, UR_JORDAN_FREE, 0.0f, NULL);
    if (ur_tape_error(tp)) goto done;
    for (int t = 0; t < T; t++) {
        fprintf(f, "%d,%.5f,%.5f", t, targets[2 * t], targets[2 * t + 1]);
        for (int k = 0; k < n_models; k++)
            fprintf(f, ",%.5f,%.5f", o[k]->val[2 * t], o[k]->val[2 * t + 1]);
        fprintf(f, "\n");
    }
    rc = 0;
done:
    if (ex_close_output(f, cfg->trace, "jordan") != 0) rc = -1;
    free(o);
    ur_tape_free(tp);
    free(targets);
    return rc;
}

/* Each model's held-out error fed the truth and fed itself, and the machine-readable line. */
static void report(const config *cfg, const outcome *rt, const outcome *rs)
{
    printf("\nRMS error per point on %d held-out sequences of %d steps:\n", cfg->eval,
           cfg->eval_len);
    printf("  trained with          teacher-forced   free-running   free / teacher\n");
    printf("  teacher forcing       %14.4f %14.4f %12.1fx\n", rt->err.teacher, rt->err.free,
           rt->err.free / rt->err.teacher);
    printf("  scheduled sampling    %14.4f %14.4f %12.1fx\n", rs->err.teacher, rs->err.free,
           rs->err.free / rs->err.teacher);
    printf("(the wave's own RMS size is about 1; training took %.1fs + %.1fs)\n", rt->seconds,
           rs->seconds);
    printf("log written to %s, free-running trace to %s\n", cfg->log, cfg->trace);
    printf("result: tf_teacher=%.5f tf_free=%.5f ss_teacher=%.5f ss_free=%.5f "
           "first_loss=%.6f last_loss=%.6f seconds=%.1f\n",
           rt->err.teacher, rt->err.free, rs->err.teacher, rs->err.free, rt->first_loss,
           rt->last_loss, rt->seconds + rs->seconds);
}

int main(int argc, char **argv)
{
    config cfg = {.steps = 1500, .batch = 32, .len = 50, .eval_len = 0, .eval = 512,
                  .period = 20, .hidden = 32, .seed = 1, .lr = 0.003f, .clip = 1.0f,
                  .a2 = 0.25f, .a3 = 0.1f, .ss_final = 0.0f, .ss_end = 0.75f,
                  .log = "jordan.csv", .trace = "jordan-trace.csv"};
    const ex_opt opts[] = {
        {"steps", EX_INT, &cfg.steps, 1, 1e7, "training steps per model"},
        {"batch", EX_INT, &cfg.batch, 1, 4096, "sequences per step"},
        {"len", EX_INT, &cfg.len, 2, 100000, "training sequence length (T)"},
        {"eval-len", EX_INT, &cfg.eval_len, 0, 100000, "held-out sequence length (0: --len)"},
        {"eval", EX_INT, &cfg.eval, 1, 100000, "held-out sequences"},
        {"period", EX_INT, &cfg.period, 3, 100000, "steps per period of the wave (P)"},
        {"a2", EX_FLOAT, &cfg.a2, 0, 0.3, "amplitude of the second harmonic"},
        {"a3", EX_FLOAT, &cfg.a3, 0, 0.15, "amplitude of the third harmonic"},
        {"hidden", EX_INT, &cfg.hidden, 1, 4096, "hidden units"},
        {"lr", EX_FLOAT, &cfg.lr, 1e-6, 10, "Adam learning rate (cosine decay)"},
        {"clip", EX_FLOAT, &cfg.clip, 1e-3, 1e6, "global gradient-norm clipping threshold"},
        {"ss-final", EX_FLOAT, &cfg.ss_final, 0, 1,
         "scheduled sampling: final probability of feeding the truth"},
        {"ss-end", EX_FLOAT, &cfg.ss_end, 0.01, 1,
         "scheduled sampling: fraction of training after which p stays at --ss-final"},
        {"seed", EX_INT, &cfg.seed, 0, 2147483647, "random seed (same seed, same run)"},
        {"log", EX_STRING, &cfg.log, 0, 0, "CSV log: model,step,loss,p_truth,seconds"},
        {"trace", EX_STRING, &cfg.trace, 0, 0,
         "CSV of one held-out sequence: truth and both models' free-running output"},
        {"smoke", EX_SMOKE, (const char *[]){"--steps=150", "--eval=32", NULL}, 0, 0,
         "short run for the test suite"},
    };
    const char *usage =
        "Trains a Jordan network (output fed back to the hidden layer) to generate a wave with\n"
        "two harmonics, once with teacher forcing and once with scheduled sampling, and prints\n"
        "each model's error when fed the true previous point (teacher-forced) and when fed its\n"
        "own previous output (free-running): the gap between the two is the exposure bias.\n"
        "The last line is machine-readable: result: tf_teacher=... tf_free=... ss_teacher=...";
    int pr = ex_parse(argc, argv, 1, "jordan", usage, opts, (int)(sizeof opts / sizeof opts[0]));
    if (pr != 0) return pr > 0 ? 0 : 2;
    if (cfg.eval_len == 0) cfg.eval_len = cfg.len;
    if (cfg.eval_len < 2) {
        fprintf(stderr, "jordan: --eval-len must be at least 2\n");
        return 2;
    }
    ex_blas_notice();

    FILE *log = ex_csv_open(cfg.log, "model,step,loss,p_truth,seconds");
    /* Both models start from the same weights and see the same training sequences. */
    model tf = {.name = "teacher-forced"}, ss = {.name = "scheduled-sampling"};
    tf.ps = ur_params_new();
    ss.ps = ur_params_new();
    ur_rng r1, r2;
    ur_rng_seed(&r1, (uint64_t)cfg.seed);
    r2 = r1;
    int rc = 1;
    if (!log) goto done;
    if (!tf.ps || !ss.ps || ur_jordan_init(&tf.net, tf.ps, "jordan", 1, cfg.hidden, 2, &r1) != 0 ||
        ur_jordan_init(&ss.net, ss.ps, "jordan", 1, cfg.hidden, 2, &r2) != 0) {
        fprintf(stderr, "jordan: cannot build the model: %s\n",
                ur_model_error() ? ur_model_error() : "out of memory");
        goto done;
    }
    printf("jordan: period %d, harmonics %.2f/%.2f, %d hidden (%zu parameters), train T=%d, "
           "held-out T=%d, %d steps of %d\n", cfg.period, cfg.a2, cfg.a3, cfg.hidden,
           ur_params_numel(tf.ps), cfg.len, cfg.eval_len, cfg.steps, cfg.batch);
    outcome rt, rs;
    uint64_t data_seed = (uint64_t)cfg.seed + 1000u;
    if (train(&tf, &cfg, 0, log, data_seed, &rt) != 0 ||
        train(&ss, &cfg, 1, log, data_seed, &rs) != 0)
        goto done;
    int log_bad = ex_close_output(log, cfg.log, "jordan");
    log = NULL;
    model *both[2] = {&tf, &ss};
    if (log_bad) goto done;
    if (write_trace(&cfg, both, 2) != 0) {
        fprintf(stderr, "jordan: cannot write the trace %s\n", cfg.trace);
        goto done;
    }
    report(&cfg, &rt, &rs);
    rc = 0;
done:
    if (ex_close_output(log, cfg.log, "jordan") != 0) rc = 1;
    if (ex_finish_stdout("jordan") != 0) rc = 1;
    ur_params_free(tf.ps);
    ur_params_free(ss.ps);
    return rc;
}
