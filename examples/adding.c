/* The adding problem (Hochreiter & Schmidhuber 1997): a sequence of T pairs (value, marker),
 * values uniform in [0, 1], exactly two markers set to 1 (one in the first half, one in the
 * second); the target, read once at the end, is the sum of the two marked values. Always
 * answering 1 (the mean of the sum) scores an MSE of Var = 2/12 = 1/6, so a model has
 * learned something only when its test MSE falls well below 0.167.
 *
 * Both cells are trained as single-output models (unroll, a linear head on the last h, MSE)
 * on the same training sequences with Adam and gradient-norm clipping, for a fixed budget of
 * sequences (no early stopping). The LSTM gets under 0.01 at T = 100; the tanh Elman network
 * stays near the baseline. The picture of ||dL/dh_t|| over t (printed, and written to
 * --grad-csv) at the start of training shows why: the gradient reaching the first marker is
 * many orders of magnitude below the one at the end, for both cells; the LSTM's gates learn
 * to carry it (the same picture after training), the Elman network's tanh and W cannot.
 * --grad-plot FILE.png draws that picture (log ||dL/dh_t|| against t, both cells, start and
 * end) with gnuplot. --checkpoint K trains with memory-efficient BPTT (a checkpoint every K
 * steps, -1: about sqrt(T)): the same gradients in a fraction of the memory, for long T.
 *
 * Shapes: T time steps, B sequences per batch, H hidden units. Inputs are time-stacked,
 * row t*B + b holds step t of sequence b (2 features); targets are B x 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/common.h"
#include "graph/ur_train.h"
#include "unroll.h"

typedef struct opts {
    int T, sequences, batch, hidden, test, seed, checkpoint;
    float lr, clip;
    const char *cells, *log, *grad_csv, *grad_plot;
} opts;

/* One batch of B sequences: x (T*B x 2, time-stacked) and y (B x 1). */
static void make_batch(ur_rng *r, int T, int B, float *x, float *y)
{
    memset(x, 0, (size_t)T * B * 2 * sizeof *x);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) x[((size_t)t * B + b) * 2] = ur_rng_uniform(r);
        int half = T / 2;
        int t1 = (int)ur_rng_below(r, (uint32_t)half);
        int t2 = half + (int)ur_rng_below(r, (uint32_t)(T - half));
        x[((size_t)t1 * B + b) * 2 + 1] = 1.0f;
        x[((size_t)t2 * B + b) * 2 + 1] = 1.0f;
        y[b] = x[((size_t)t1 * B + b) * 2] + x[((size_t)t2 * B + b) * 2];
    }
}

/* A single-output model: a cell and a linear head (H x 1 weights, 1 x 1 bias). */
typedef struct model {
    ur_params *ps;
    ur_cell cell;
    ur_tensor *wo, *bo;
} model;

static int model_init(model *m, const char *kind, int hidden, ur_rng *rng)
{
    memset(m, 0, sizeof *m);
    m->ps = ur_params_new();
    if (!m->ps) return -1;
    int rc = ex_cell_init(&m->cell, m->ps, kind, kind, 2, hidden, rng);
    float k = 1.0f / sqrtf((float)hidden);
    m->wo = ur_model_param(m->ps, "head", "W", hidden, 1, k, rng);
    m->bo = ur_model_param(m->ps, "head", "b", 1, 1, k, rng);
    return rc == 0 && m->wo && m->bo ? 0 : -1;
}

/* Records the forward pass of one batch; returns the B x 1 predictions. This is what
 * ur_single_output does, but through the unroll's seq, from which the gradient picture reads
 * ||dL/dh_t|| after backward (ur_seq_grad_norms). checkpoint: 0 plain BPTT, else the
 * interval of a checkpointed unroll that keeps only the last state (the loss reads no other). */
static ur_tensor *model_forward(ur_tape *tp, const model *m, const float *x, int T, int B,
                                int checkpoint, ur_seq *seq)
{
    ur_tensor *xs = ur_input_from(tp, T * B, 2, x);
    ur_state init = {NULL, NULL};
    ur_checkpoint ck = {checkpoint, 1};
    if (ur_unroll_checkpointed(tp, &m->cell, xs, T, init, 0, &ck, seq) != 0)
        return ur_tape_poison(tp);
    return ur_linear(tp, seq->last.h, m->wo, m->bo);
}

/* Test-set MSE of the model, in batches of B. */
static double test_mse(ur_tape *tp, const model *m, const float *tx, const float *ty, int n_batches,
                       int T, int B)
{
    double sum = 0.0;
    for (int k = 0; k < n_batches; k++) {
        ur_tape_reset(tp);
        ur_seq seq;
        ur_tensor *y = model_forward(tp, m, tx + (size_t)k * T * B * 2, T, B, 0, &seq);
        if (ur_tape_error(tp)) return NAN;
        for (int b = 0; b < B; b++) {
            double d = y->val[b] - ty[(size_t)k * B + b];
            sum += d * d;
        }
    }
    return sum / ((double)n_batches * B);
}

typedef struct run_result {
    double first_loss, last_loss, test_mse, seconds;
    double gn_first, gn_last; /* global gradient norm before clipping, first and last batch */
    size_t peak;              /* the tape's peak bytes (training steps and evaluation) */
    double *gnorm; /* 2T values: ||dL/dh_t|| on the first batch (before any update), then on
                      the last one */
} run_result;

/* Trains one cell kind on the shared data stream; appends to the CSV log. */
static int train(const opts *o, const char *kind, const float *tx, const float *ty, int n_test_b,
                 FILE *log, run_result *res)
{
    int T = o->T, B = o->batch;
    long steps = (o->sequences + B - 1) / B;
    ur_rng init_rng, data_rng;
    ex_rng_stream(&init_rng, o->seed, 1);
    ex_rng_stream(&data_rng, o->seed, 2); /* same data for every cell */
    model m = {0};
    char err[256] = "";
    float *x = malloc((size_t)T * B * 2 * sizeof *x), *y = malloc((size_t)B * sizeof *y);
    ur_tape *tp = ur_tape_new(0);
    ur_optim *opt = NULL;
    int rc = -1;
    if (!x || !y || !tp || model_init(&m, kind, o->hidden, &init_rng) != 0) {
        fprintf(stderr, "adding: cannot build the %s model: %s\n", kind,
                ur_model_error() ? ur_model_error() : "out of memory");
        goto done;
    }
    ur_optim_config cfg = ur_optim_defaults(UR_OPTIM_ADAM);
    cfg.lr = o->lr;
    if (!(opt = ur_optim_new(m.ps, &cfg, err, sizeof err))) {
        fprintf(stderr, "adding: %s\n", err);
        goto done;
    }
    ex_loss_track lt; /* first/last loss: mean over 5% of steps */
    ex_loss_start(&lt, steps, steps / 20 > 0 ? steps / 20 : 1, 0.05);
    ex_progress pr;
    ex_progress_start(&pr, steps, 2.0);
    printf("training %s (H = %d, %ld parameters): %ld steps of %d sequences, T = %d%s\n", kind,
           o->hidden, (long)ur_params_numel(m.ps), steps, B, T,
           o->checkpoint ? ", checkpointed BPTT" : "");
    for (long step = 0; step < steps; step++) {
        make_batch(&data_rng, T, B, x, y);
        ur_tape_reset(tp);
        ur_seq seq;
        ur_tensor *pred = model_forward(tp, &m, x, T, B, o->checkpoint, &seq);
        ur_tensor *loss = ur_mse(tp, pred, ur_input_from(tp, B, 1, y), UR_MEAN);
        double gn;
        if (ex_update(tp, loss, m.ps, opt, o->clip, o->lr, "adding", &gn) != 0) goto done;
        /* The gradient picture, first and last batch: ||dL/dh_t|| after backward, and the
         * global norm before clipping. */
        if ((step == 0 || step + 1 == steps) &&
            ur_seq_grad_norms(&seq, res->gnorm + (step == 0 ? 0 : T)) != 0) {
            fprintf(stderr, "adding: no gradient norms\n");
            goto done;
        }
        if (step == 0) res->gn_first = gn;
        if (step + 1 == steps) res->gn_last = gn;
        double l = loss->val[0];
        ex_loss_add(&lt, step, l);
        int eval = (step + 1) % (steps / 10 > 0 ? steps / 10 : 1) == 0 || step + 1 == steps;
        double mse = eval ? test_mse(tp, &m, tx, ty, n_test_b, T, B) : NAN;
        if (eval && isnan(mse)) {
            fprintf(stderr, "adding: evaluation failed: %s\n",
                    ur_tape_error(tp) ? ur_tape_error(tp) : "the test MSE is not a number");
            goto done;
        }
        if (log) {
            fprintf(log, "%s,%ld,%ld,%.6f,%.4f,%.2f,", kind, step + 1, (step + 1) * B, l, gn,
                    ex_elapsed(&pr));
            if (eval) fprintf(log, "%.6f", mse);
            fputc('\n', log);
        }
        if (ex_progress_due(&pr, step) || eval) {
            double el = ex_elapsed(&pr);
            printf("  %s step %ld/%ld  loss %.4f  %.0f seq/s  ETA %.0fs", kind, step + 1, steps,
                   ex_loss_recent(&lt), (double)(step + 1) * B / (el > 0 ? el : 1e-9),
                   ex_eta(&pr, step));
            if (eval) printf("  test MSE %.4f", mse);
            printf("\n");
            fflush(stdout);
        }
        if (eval && step + 1 == steps) res->test_mse = mse;
    }
    res->peak = ur_tape_peak_bytes(tp);
    res->first_loss = lt.first;
    res->last_loss = lt.last;
    res->seconds = ex_elapsed(&pr);
    rc = 0;
done:
    ur_optim_free(opt);
    ur_tape_free(tp);
    ur_params_free(m.ps);
    free(x);
    free(y);
    return rc;
}

/* The gradient-flow picture from the --grad-csv file: log ||dL/dh_t|| against t, each trained
 * cell at the start and at the end of training. 0 drawn (or gnuplot missing: said), -1 failed. */
static int grad_plot(const opts *o, const int *want)
{
    char csv[1024], png[1024], title[256], script[4096];
    snprintf(title, sizeof title, "Gradient flow on the adding problem, T = %d: ||dL/dh_t|| on "
             "one batch (the loss reads h_%d)", o->T, o->T - 1);
    if (ex_gnuplot_quote(csv, sizeof csv, o->grad_csv) != 0 ||
        ex_gnuplot_quote(png, sizeof png, o->grad_plot) != 0) {
        fprintf(stderr, "adding: file names too long for the plot\n");
        return -1;
    }
    int n = snprintf(script, sizeof script,
                     "set terminal pngcairo size 900,540 noenhanced font 'Helvetica,11'\n"
                     "set output %s\nset datafile separator ','\n"
                     "set title '%s'\nset xlabel 'time step t'\n"
                     "set ylabel '||dL/dh_t|| (log scale)'\nset logscale y\nset format y '%%.0e'\n"
                     "set grid\nset key below\nplot ", png, title);
    /* Columns: t, lstm_start, elman_start, lstm_end, elman_end. */
    const char *names[2] = {"LSTM", "Elman"};
    const char *colors[2] = {"#1f6fb4", "#d6402b"};
    int first = 1;
    for (int c = 0; c < 2; c++)
        for (int half = 0; half < 2; half++) {
            if (!want[c] || n < 0 || (size_t)n >= sizeof script) continue;
            n += snprintf(script + n, sizeof script - (size_t)n,
                          "%s%s skip 1 using 1:%d with lines lw %s dt %d lc rgb '%s' title "
                          "'%s, %s of training'", first ? "" : ", ", csv, 2 + c + 2 * half,
                          half ? "2.5" : "1.5", half ? 1 : 2, colors[c], names[c],
                          half ? "end" : "start");
            first = 0;
        }
    if (n < 0 || (size_t)n + 2 >= sizeof script) {
        fprintf(stderr, "adding: the plot script is too long\n");
        return -1;
    }
    strcat(script, "\n");
    int r = ex_gnuplot("adding", script, o->grad_plot);
    if (r == 0) printf("gradient-flow picture: %s\n", o->grad_plot);
    return r < 0 ? -1 : 0;
}

/* The vanishing-gradient picture: ||dL/dh_t|| relative to the last step's, on the first batch
 * (before any update) and on the last; and every norm into the CSV gf (checked when closed). */
static void report_grad_flow(const opts *o, const int want[2], double *const gn[2], FILE *gf)
{
    static const char *kinds[2] = {"lstm", "elman"};
    int T = o->T;
    printf("\n||dL/dh_t|| / ||dL/dh_%d|| (norms over the batch; the loss reads h_%d):\n", T - 1,
           T - 1);
    printf("  %6s", "t");
    for (int c = 0; c < 2; c++)
        if (want[c]) printf("  %5s at start   at end", kinds[c]);
    printf("\n");
    int stride = T / 10 > 0 ? T / 10 : 1;
    for (int t = 0; t < T; t++) {
        if (t % stride != 0 && t != T - 1) continue;
        printf("  %6d", t);
        for (int c = 0; c < 2; c++)
            if (want[c])
                printf("  %14.2e %8.2e", gn[c][t] / gn[c][T - 1], gn[c][T + t] / gn[c][2 * T - 1]);
        printf("\n");
    }
    for (int t = 0; t < T; t++) {
        fprintf(gf, "%d", t);
        for (int half = 0; half < 2; half++)
            for (int c = 0; c < 2; c++) {
                fputc(',', gf);
                if (want[c]) fprintf(gf, "%.6e", gn[c][half * T + t]);
            }
        fputc('\n', gf);
    }
}

/* The figures of each cell trained, and the machine-readable result lines. */
static void report_results(const opts *o, const int want[2], const run_result res[2], int n_test,
                           double base1)
{
    static const char *kinds[2] = {"lstm", "elman"};
    printf("\nglobal gradient norm before clipping (at %g), first and last batch:\n", (double)o->clip);
    for (int c = 0; c < 2; c++)
        if (want[c])
            printf("  %-5s  %.3e  %.3e   (tape peak %.1f MiB)\n", kinds[c], res[c].gn_first,
                   res[c].gn_last, (double)res[c].peak / 1048576.0);
    printf("\ntest MSE on %d held-out sequences, T = %d, after %d training sequences:\n", n_test,
           o->T, o->sequences);
    printf("  baseline 1/6 (always answer 1, theory)   %.4f\n", 1.0 / 6.0);
    printf("  always answer 1 (this test set)          %.4f\n", base1);
    for (int c = 0; c < 2; c++)
        if (want[c])
            printf("  %-5s                                    %.4f  (%.1f s)\n", kinds[c],
                   res[c].test_mse, res[c].seconds);
    printf("log: %s, gradient norms: %s\n", o->log, o->grad_csv);
    for (int c = 0; c < 2; c++)
        if (want[c])
            printf("result: cell=%s first_loss=%.6f last_loss=%.6f test_mse=%.6f baseline=%.6f "
                   "grad_norm_first=%.4g grad_norm_last=%.4g seconds=%.1f\n",
                   kinds[c], res[c].first_loss, res[c].last_loss, res[c].test_mse, base1,
                   res[c].gn_first, res[c].gn_last, res[c].seconds);
}

int main(int argc, char **argv)
{
    opts o = {.T = 100, .sequences = 150000, .batch = 50, .hidden = 32, .test = 1000,
              .seed = 1, .lr = 0.01f, .clip = 1.0f, .cells = "both", .log = "adding.csv",
              .grad_csv = "adding_grad.csv", .grad_plot = NULL};
    const ex_opt spec[] = {
        {"T", EX_INT, &o.T, 2, 100000, "sequence length"},
        {"sequences", EX_INT, &o.sequences, 1, 1e9, "training sequences per cell (fixed budget)"},
        {"batch", EX_INT, &o.batch, 1, 4096, "sequences per batch"},
        {"hidden", EX_INT, &o.hidden, 1, 4096, "hidden units"},
        {"lr", EX_FLOAT, &o.lr, 1e-7, 10, "Adam learning rate"},
        {"clip", EX_FLOAT, &o.clip, 1e-6, 1e6, "global gradient-norm clipping threshold"},
        {"test", EX_INT, &o.test, 1, 1e7, "held-out test sequences (rounded up to whole batches)"},
        {"cells", EX_CHOICE, &(ex_choice){&o.cells, "lstm|elman|both"}, 0, 0, "which cells to train"},
        {"seed", EX_INT, &o.seed, 0, 2147483647, "random seed (data and initialisation)"},
        {"log", EX_STRING, &o.log, 0, 0, "CSV training log (cell,step,sequences,loss,...)"},
        {"grad-csv", EX_STRING, &o.grad_csv, 0, 0,
         "CSV of ||dL/dh_t|| per step t, on the first and the last batch"},
        {"grad-plot", EX_STRING, &o.grad_plot, 0, 0,
         "draw the --grad-csv figures as this PNG (gnuplot; log scale)"},
        {"checkpoint", EX_INT, &o.checkpoint, -1, 1e6,
         "memory-efficient BPTT: a checkpoint every K steps (-1: about sqrt(T); 0: plain)"},
        {"smoke", EX_SMOKE, (const char *[]){"--T=20", "--sequences=3000", "--test=200", NULL}, 0, 0,
         "quick run for the tests"},
    };
    int pc = ex_parse(argc, argv, 1, "adding",
                      "Trains an LSTM and a tanh Elman network on the adding problem (sum of the "
                      "two marked values\nof a length-T sequence) and reports the test MSE against "
                      "the 1/6 baseline, and the\nper-step gradient norms ||dL/dh_t|| at the start "
                      "and the end of training.",
                      spec, (int)(sizeof spec / sizeof spec[0]));
    if (pc != 0) return pc > 0 ? 0 : 2;
    ex_blas_notice();

    /* The held-out test set, from its own stream. */
    int T = o.T, B = o.batch, n_test_b = (o.test + B - 1) / B, rc = 1;
    float *tx = malloc((size_t)n_test_b * T * B * 2 * sizeof *tx);
    float *ty = malloc((size_t)n_test_b * B * sizeof *ty);
    double *gn[2] = {calloc(2 * (size_t)T, sizeof(double)), calloc(2 * (size_t)T, sizeof(double))};
    FILE *log = NULL, *gf = NULL;
    if (!tx || !ty || !gn[0] || !gn[1]) {
        fprintf(stderr, "adding: out of memory\n");
        goto done;
    }
    if (!(log = ex_csv_open(o.log, "cell,step,sequences,loss,grad_norm,elapsed_s,test_mse")) ||
        !(gf = ex_csv_open(o.grad_csv, "t,lstm_start,elman_start,lstm_end,elman_end")))
        goto done;
    ur_rng test_rng;
    ex_rng_stream(&test_rng, o.seed, 3);
    for (int k = 0; k < n_test_b; k++)
        make_batch(&test_rng, T, B, tx + (size_t)k * T * B * 2, ty + (size_t)k * B);
    double base1 = 0.0;
    for (int j = 0; j < n_test_b * B; j++) base1 += (ty[j] - 1.0) * (ty[j] - 1.0);
    base1 /= n_test_b * B;

    const char *kinds[2] = {"lstm", "elman"};
    int want[2] = {strcmp(o.cells, "elman") != 0, strcmp(o.cells, "lstm") != 0};
    run_result res[2] = {{0}};
    for (int c = 0; c < 2; c++) {
        if (!want[c]) continue;
        res[c].gnorm = gn[c];
        res[c].test_mse = NAN;
        if (train(&o, kinds[c], tx, ty, n_test_b, log, &res[c]) != 0) goto done;
    }
    report_grad_flow(&o, want, gn, gf);
    int gf_bad = ex_close_output(gf, o.grad_csv, "adding");
    gf = NULL;
    if (gf_bad) goto done;
    if (o.grad_plot && grad_plot(&o, want) < 0) goto done;
    report_results(&o, want, res, n_test_b * B, base1);
    rc = 0;
done:
    if (ex_close_output(log, o.log, "adding") != 0) rc = 1;
    if (ex_close_output(gf, o.grad_csv, "adding") != 0) rc = 1;
    if (ex_finish_stdout("adding") != 0) rc = 1;
    free(tx);
    free(ty);
    free(gn[0]);
    free(gn[1]);
    return rc;
}
