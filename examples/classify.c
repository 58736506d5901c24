/* The temporal-order task (Hochreiter & Schmidhuber 1997, experiment 6a): classify a long
 * sequence by the order of two marker symbols hidden in noise.
 *
 * Alphabet (one-hot, 8 symbols): noise a b c d, start B, end E, markers X Y. A sequence of
 * length L (uniform in [--min-len, --max-len], default 50..100) is B, then noise, with a
 * marker (X or Y) at a random position t1 in [10, 20] and another at t2 in [L/2, L/2 + 10],
 * and E last. The class is the markers' order: XX, XY, YX or YY (4 classes, chance 25%).
 * The network must carry the first marker for 30..90 steps past t1 and ignore everything
 * else: the gate-based memory of the LSTM does this, a tanh Elman network does not.
 *
 * Variable lengths in mixed batches: each sequence of a batch has its own length, drawn
 * uniformly; the batch is padded to its longest and the unroll takes a length per row
 * (ur_single_output_with), so the head reads each sequence's state at its own last step and
 * the gradients are exactly those of the sequences run alone. The test set (--test, default
 * 512 sequences of random lengths) is evaluated the same way, as one batch of mixed lengths.
 * A failed evaluation (e.g. the tape over its --tape-limit) is an error: a message, exit 1,
 * and no accuracy printed.
 *
 * Both cells are single-output models (unroll, a linear head on the last h, softmax + NLL),
 * trained on the same sequences with Adam (learning rate warming up linearly over --warmup
 * steps, then decaying on a half cosine to 0) and
 * gradient-norm clipping for a fixed budget. The LSTM's forget-gate bias starts at 3
 * (--forget-bias) instead of the library's 1, so that at the start of training its cell state
 * remembers for ~20 steps rather than ~4 and the gradient from the end reaches the first
 * marker: with 1 it learns the task too, but later and less steadily.
 *
 * Shapes: L time steps, B sequences per batch, H hidden units, K = 4 classes; inputs are
 * time-stacked, row t*B + b holds step t of sequence b. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/common.h"
#include "graph/ur_train.h"
#include "unroll.h"

enum { SYM_B = 4, SYM_E = 5, SYM_X = 6, SYM_Y = 7, N_SYM = 8, N_CLASS = 4, MAX_LEN = 10000 };
static const char *class_name[N_CLASS] = {"XX", "XY", "YX", "YY"};

typedef struct opts {
    int sequences, batch, hidden, test, min_len, max_len, seed, warmup, tape_limit_mb;
    float lr, clip, forget_bias;
    const char *cells, *log;
} opts;

/* One sequence of length L into sym[0..L-1]; returns its class. */
static int make_sequence(ur_rng *r, int L, unsigned char *sym)
{
    for (int t = 1; t < L - 1; t++) sym[t] = (unsigned char)ur_rng_below(r, 4);
    sym[0] = SYM_B;
    sym[L - 1] = SYM_E;
    int t1 = 10 + (int)ur_rng_below(r, 11);
    int t2 = L / 2 + (int)ur_rng_below(r, 11);
    int m1 = (int)ur_rng_below(r, 2), m2 = (int)ur_rng_below(r, 2);
    sym[t1] = (unsigned char)(SYM_X + m1);
    sym[t2] = (unsigned char)(SYM_X + m2);
    return 2 * m1 + m2;
}

/* One-hot, time-stacked input for B sequences of lengths lens[b] padded to L steps: x is
 * L*B x N_SYM, zero past each length. */
static void one_hot(unsigned char *const *seqs, const int *lens, int L, int B, float *x)
{
    memset(x, 0, (size_t)L * B * N_SYM * sizeof *x);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < lens[b]; t++) x[((size_t)t * B + b) * N_SYM + seqs[b][t]] = 1.0f;
}

typedef struct model {
    ur_params *ps;
    ur_cell cell;
    ur_tensor *wo, *bo;
} model;

static int model_init(model *m, const char *kind, int hidden, float forget_bias, ur_rng *rng)
{
    memset(m, 0, sizeof *m);
    m->ps = ur_params_new();
    if (!m->ps) return -1;
    int rc = ex_cell_init(&m->cell, m->ps, kind, kind, N_SYM, hidden, rng);
    /* The LSTM's bias b (1 x 4H) holds the gates i, f, g, o in column blocks: a larger forget
     * bias keeps the cell state longer at the start of training. */
    ur_tensor *b = strcmp(kind, "lstm") == 0 ? ur_params_get(m->ps, "lstm.b") : NULL;
    if (b)
        for (int j = hidden; j < 2 * hidden; j++) b->val[j] = forget_bias;
    float k = 1.0f / sqrtf((float)hidden);
    m->wo = ur_model_param(m->ps, "head", "W", hidden, N_CLASS, k, rng);
    m->bo = ur_model_param(m->ps, "head", "b", 1, N_CLASS, k, rng);
    return rc == 0 && m->wo && m->bo ? 0 : -1;
}

/* Records the forward pass of B one-hot sequences of lengths lens[b], padded to L steps;
 * returns the B x K logits, each row from its sequence's own last step. */
static ur_tensor *model_forward(ur_tape *tp, const model *m, const float *x, const int *lens,
                                int L, int B)
{
    ur_state init = {NULL, NULL};
    ur_unroll_opts uo = {.lengths = lens};
    ur_tensor *h = ur_single_output_with(tp, &m->cell, ur_input_from(tp, L * B, N_SYM, x), L,
                                         init, &uo, NULL);
    return ur_linear(tp, h, m->wo, m->bo);
}

/* The longest of n lengths. */
static int longest(const int *lens, int n)
{
    int L = 0;
    for (int b = 0; b < n; b++) L = lens[b] > L ? lens[b] : L;
    return L;
}

/* The held-out set, in the order drawn. */
typedef struct test_seq {
    int len, label;
    unsigned char *sym;
} test_seq;

/* Fraction of the n test sequences classified correctly, all in one batch padded to the
 * longest (each read at its own last step); per-class counts in right[]/total[]. x holds
 * max-len x n one-hot rows, ptrs and lens n entries. NaN when the tape failed (its error
 * says why). */
static double test_accuracy(ur_tape *tp, const model *m, const test_seq *ts, int n, float *x,
                            unsigned char **ptrs, int *lens, int right[N_CLASS],
                            int total[N_CLASS])
{
    for (int c = 0; c < N_CLASS; c++) right[c] = total[c] = 0;
    for (int b = 0; b < n; b++) {
        ptrs[b] = ts[b].sym;
        lens[b] = ts[b].len;
    }
    int L = longest(lens, n), correct = 0;
    one_hot(ptrs, lens, L, n, x);
    ur_tape_reset(tp);
    ur_tensor *logits = model_forward(tp, m, x, lens, L, n);
    if (ur_tape_error(tp)) return NAN;
    for (int b = 0; b < n; b++) {
        int label = ts[b].label;
        int ok = ur_argmax(logits->val + (size_t)b * N_CLASS, N_CLASS) == label;
        correct += ok;
        right[label] += ok;
        total[label]++;
    }
    return (double)correct / n;
}

typedef struct run_result {
    double first_loss, last_loss, test_acc, seconds;
    int right[N_CLASS], total[N_CLASS];
} run_result;

static int train(const opts *o, const char *kind, const test_seq *ts, FILE *log, run_result *res)
{
    int B = o->batch, Lmax = o->max_len, nbuf = B > o->test ? B : o->test;
    long steps = (o->sequences + B - 1) / B;
    ur_rng init_rng, data_rng;
    ex_rng_stream(&init_rng, o->seed, 11);
    ex_rng_stream(&data_rng, o->seed, 12); /* same data for every cell */
    model m = {0};
    char err[256] = "";
    float *x = malloc((size_t)Lmax * nbuf * N_SYM * sizeof *x);
    unsigned char *syms = malloc((size_t)B * Lmax);
    unsigned char **ptrs = malloc((size_t)nbuf * sizeof *ptrs);
    int *labels = malloc((size_t)B * sizeof *labels), *lens = malloc((size_t)nbuf * sizeof *lens);
    ur_tape *tp = ur_tape_new(0);
    ur_tape_set_limit(tp, (size_t)o->tape_limit_mb << 20);
    ur_optim *opt = NULL;
    int rc = -1;
    if (!x || !syms || !ptrs || !labels || !lens || !tp ||
        model_init(&m, kind, o->hidden, o->forget_bias, &init_rng) != 0) {
        fprintf(stderr, "classify: cannot build the %s model: %s\n", kind,
                ur_model_error() ? ur_model_error() : "out of memory");
        goto done;
    }
    ur_optim_config cfg = ur_optim_defaults(UR_OPTIM_ADAM);
    cfg.lr = o->lr;
    if (!(opt = ur_optim_new(m.ps, &cfg, err, sizeof err))) {
        fprintf(stderr, "classify: %s\n", err);
        goto done;
    }
    ex_loss_track lt;
    ex_loss_start(&lt, steps, steps / 20 > 0 ? steps / 20 : 1, 0.05);
    ex_progress pr;
    ex_progress_start(&pr, steps, 2.0);
    printf("training %s (H = %d, %ld parameters): %ld steps of %d sequences of mixed lengths "
           "%d..%d\n", kind, o->hidden, (long)ur_params_numel(m.ps), steps, B, o->min_len,
           o->max_len);
    for (long step = 0; step < steps; step++) {
        uint32_t span = (uint32_t)(o->max_len - o->min_len + 1);
        for (int b = 0; b < B; b++) {
            ptrs[b] = syms + (size_t)b * Lmax;
            lens[b] = o->min_len + (int)ur_rng_below(&data_rng, span);
            labels[b] = make_sequence(&data_rng, lens[b], ptrs[b]);
        }
        int L = longest(lens, B);
        one_hot(ptrs, lens, L, B, x);
        ur_tape_reset(tp);
        ur_tensor *loss =
            ur_softmax_nll(tp, model_forward(tp, &m, x, lens, L, B), labels, UR_MEAN);
        double gn;
        if (ex_update(tp, loss, m.ps, opt, o->clip, ur_lr_cosine(o->lr, step, steps, o->warmup, 0.0f),
                      "classify", &gn) != 0)
            goto done;
        double l = loss->val[0];
        ex_loss_add(&lt, step, l);
        int eval = (step + 1) % (steps / 10 > 0 ? steps / 10 : 1) == 0 || step + 1 == steps;
        double acc = eval ? test_accuracy(tp, &m, ts, o->test, x, ptrs, lens, res->right,
                                          res->total)
                          : NAN;
        if (eval && isnan(acc)) {
            fprintf(stderr, "classify: evaluation failed: %s\n",
                    ur_tape_error(tp) ? ur_tape_error(tp) : "no accuracy");
            goto done;
        }
        if (log) {
            fprintf(log, "%s,%ld,%ld,%.6f,%.4f,%.2f,", kind, step + 1, (step + 1) * B, l, gn,
                    ex_elapsed(&pr));
            if (eval) fprintf(log, "%.4f", acc);
            fputc('\n', log);
        }
        if (ex_progress_due(&pr, step) || eval) {
            double el = ex_elapsed(&pr);
            printf("  %s step %ld/%ld  loss %.4f  %.0f seq/s  ETA %.0fs", kind, step + 1, steps,
                   ex_loss_recent(&lt), (double)(step + 1) * B / (el > 0 ? el : 1e-9),
                   ex_eta(&pr, step));
            if (eval) printf("  test accuracy %.1f%%", 100.0 * acc);
            printf("\n");
            fflush(stdout);
        }
        if (step + 1 == steps) res->test_acc = acc;
    }
    res->first_loss = lt.first;
    res->last_loss = lt.last;
    res->seconds = ex_elapsed(&pr);
    rc = 0;
done:
    ur_optim_free(opt);
    ur_tape_free(tp);
    ur_params_free(m.ps);
    free(x);
    free(syms);
    free(ptrs);
    free(labels);
    free(lens);
    return rc;
}

/* The held-out accuracy of each cell trained, per class, and the machine-readable lines. */
static void report(const opts *o, const int want[2], const run_result res[2])
{
    static const char *kinds[2] = {"lstm", "elman"};
    printf("\ntest accuracy on %d held-out sequences (length %d..%d) after %d training "
           "sequences; chance 25%%:\n",
           o->test, o->min_len, o->max_len, o->sequences);
    for (int c = 0; c < 2; c++) {
        if (!want[c]) continue;
        printf("  %-5s %6.2f%%  (%.1f s)  per class:", kinds[c], 100.0 * res[c].test_acc,
               res[c].seconds);
        for (int k = 0; k < N_CLASS; k++)
            printf(" %s %d/%d", class_name[k], res[c].right[k], res[c].total[k]);
        printf("\n");
    }
    printf("log: %s\n", o->log);
    for (int c = 0; c < 2; c++)
        if (want[c])
            printf("result: cell=%s first_loss=%.6f last_loss=%.6f test_acc=%.6f seconds=%.1f\n",
                   kinds[c], res[c].first_loss, res[c].last_loss, res[c].test_acc, res[c].seconds);
}

int main(int argc, char **argv)
{
    /* Warmup 300 steps (of 1250): without it the LSTM stops on a plateau for some seeds (seed
     * 7: 73%); with it, seeds 1-20 all reach 100% on OpenBLAS's SkylakeX kernel, and on its
     * Haswell kernel on an AVX-512 machine (2026-12-02; an earlier measurement on Haswell had
     * seed 12 near chance): see README, issue 12. */
    opts o = {.sequences = 40000, .batch = 32, .hidden = 32, .test = 512, .min_len = 50,
              .max_len = 100, .seed = 1, .warmup = 300, .lr = 0.01f, .clip = 1.0f,
              .forget_bias = 3.0f,
              .cells = "both", .log = "classify.csv"};
    const ex_opt spec[] = {
        {"sequences", EX_INT, &o.sequences, 1, 1e9, "training sequences per cell (fixed budget)"},
        {"batch", EX_INT, &o.batch, 1, 4096, "sequences per batch (of mixed lengths, padded)"},
        {"hidden", EX_INT, &o.hidden, 1, 4096, "hidden units"},
        {"lr", EX_FLOAT, &o.lr, 1e-7, 10, "Adam learning rate (cosine decay to 0 over the run)"},
        {"clip", EX_FLOAT, &o.clip, 1e-6, 1e6, "global gradient-norm clipping threshold"},
        {"forget-bias", EX_FLOAT, &o.forget_bias, -100, 100, "initial LSTM forget-gate bias"},
        {"min-len", EX_INT, &o.min_len, 42, MAX_LEN, "shortest sequence"},
        {"max-len", EX_INT, &o.max_len, 42, MAX_LEN, "longest sequence"},
        {"test", EX_INT, &o.test, 1, 1e6, "held-out test sequences (evaluated as one batch)"},
        {"tape-limit", EX_INT, &o.tape_limit_mb, 0, 1 << 20,
         "most MiB the tape may take (0: no limit); a step or evaluation needing more fails"},
        {"warmup", EX_INT, &o.warmup, 0, 1e9,
         "steps of linear learning-rate warmup before the cosine decay"},
        {"cells", EX_CHOICE, &(ex_choice){&o.cells, "lstm|elman|both"}, 0, 0, "which cells to train"},
        {"seed", EX_INT, &o.seed, 0, 2147483647, "random seed (data and initialisation)"},
        {"log", EX_STRING, &o.log, 0, 0, "CSV training log (cell,step,sequences,loss,...)"},
        {"smoke", EX_SMOKE,
         (const char *[]){"--sequences=8000", "--warmup=60", "--min-len=42", "--max-len=50",
                          "--test=128", NULL},
         0, 0, "quick run for the tests"},
    };
    int pc = ex_parse(argc, argv, 1, "classify",
                      "Trains an LSTM and a tanh Elman network on Hochreiter & Schmidhuber's "
                      "temporal-order task\n(the class is the order of two markers X/Y hidden in "
                      "a noise sequence of 50..100 symbols)\nand reports the accuracy on held-out "
                      "sequences; chance is 25%. Every batch mixes lengths:\nsequences are padded "
                      "to the batch's longest and the unroll takes a length per row,\nso each is "
                      "classified from its own last step (training and test alike). The held-out "
                      "set is\nevaluated as one batch, 10 times during each training.",
                      spec, (int)(sizeof spec / sizeof spec[0]));
    if (pc != 0) return pc > 0 ? 0 : 2;
    int want[2] = {strcmp(o.cells, "elman") != 0, strcmp(o.cells, "lstm") != 0};
    if (o.min_len > o.max_len) {
        fprintf(stderr, "classify: --min-len %d is larger than --max-len %d\n", o.min_len,
                o.max_len);
        return 2;
    }
    ex_blas_notice();

    ur_rng test_rng;
    ex_rng_stream(&test_rng, o.seed, 13);
    test_seq *ts = malloc((size_t)o.test * sizeof *ts);
    unsigned char *tsym = malloc((size_t)o.test * o.max_len);
    FILE *log = NULL;
    int rc = 1;
    if (!ts || !tsym) {
        fprintf(stderr, "classify: out of memory\n");
        goto done;
    }
    if (!(log = ex_csv_open(o.log, "cell,step,sequences,loss,grad_norm,elapsed_s,test_acc")))
        goto done;
    for (int i = 0; i < o.test; i++) {
        ts[i].sym = tsym + (size_t)i * o.max_len;
        ts[i].len = o.min_len + (int)ur_rng_below(&test_rng, (uint32_t)(o.max_len - o.min_len + 1));
        ts[i].label = make_sequence(&test_rng, ts[i].len, ts[i].sym);
    }

    const char *kinds[2] = {"lstm", "elman"};
    run_result res[2] = {{0}};
    for (int c = 0; c < 2; c++)
        if (want[c] && train(&o, kinds[c], ts, log, &res[c]) != 0) goto done;

    report(&o, want, res);
    rc = 0;
done:
    if (ex_close_output(log, o.log, "classify") != 0) rc = 1;
    if (ex_finish_stdout("classify") != 0) rc = 1;
    free(ts);
    free(tsym);
    return rc;
}
