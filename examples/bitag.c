/* bitag: why a bidirectional RNN sees the future.
 *
 * Each sequence is T random symbols from an alphabet of K, and the label of step t is the
 * symbol d steps later: y_t = x_{t+d} (the last d steps have no label; their target is -1,
 * which ur_softmax_nll skips). A forward-only RNN has not read x_{t+d} when it must answer
 * at step t, so the best it can do is guess (accuracy 1/K). A bidirectional RNN also runs a
 * second RNN from the end of the sequence backwards; at step t that one has just read
 * x_{t+d}, ..., x_t and only needs to remember the symbol it saw d steps ago.
 *
 * Both models are trained the same way, with (nearly) the same number of parameters: the
 * forward-only one gets a wider hidden layer to make up for its missing second direction.
 *
 * Shapes: B = batch, T = steps, K = symbols, H = hidden units. Inputs are one-hot rows,
 * time-stacked: row t*B + b is step t of sequence b.
 */
#define _POSIX_C_SOURCE 200809L
#include "examples/common.h"
#include "graph/ur_train.h"
#include "models/ur_models.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct config {
    int steps, batch, len, symbols, delay, hidden, eval, seed;
    float lr, clip;
    const char *log, *cell;
} config;

/* A model: one cell (forward-only) or two (bidirectional), and a softmax head. */
typedef struct model {
    const char *name;
    int bidir;
    ur_params *ps;
    ur_cell fwd, bwd;
    ur_tensor *V, *c; /* head: (H or 2H) x K and 1 x K */
} model;

static int model_init(model *m, const config *cfg, int bidir, int hidden, ur_rng *rng)
{
    memset(m, 0, sizeof *m);
    m->name = bidir ? "bidirectional" : "forward";
    m->bidir = bidir;
    m->ps = ur_params_new();
    if (!m->ps) return -1;
    if (ex_cell_init(&m->fwd, m->ps, cfg->cell, "fwd", cfg->symbols, hidden, rng) != 0) return -1;
    if (bidir && ex_cell_init(&m->bwd, m->ps, cfg->cell, "bwd", cfg->symbols, hidden, rng) != 0)
        return -1;
    int feat = bidir ? 2 * hidden : hidden;
    float k = 1.0f / sqrtf((float)feat);
    m->V = ur_model_param(m->ps, "head", "V", feat, cfg->symbols, k, rng);
    m->c = ur_model_param(m->ps, "head", "c", 1, cfg->symbols, k, rng);
    return m->V && m->c ? 0 : -1;
}

/* Parameters of a model with the given hidden width (to size the forward-only one), counted by
 * building it; 0 when it cannot be built. */
static size_t count_params(const config *cfg, int bidir, int hidden)
{
    model m;
    ur_rng scratch;
    ur_rng_seed(&scratch, 0);
    size_t n = model_init(&m, cfg, bidir, hidden, &scratch) == 0 ? ur_params_numel(m.ps) : 0;
    ur_params_free(m.ps);
    return n;
}

/* The forward-only width whose parameter count is closest to the bidirectional model's; -1
 * when a model cannot be built. */
static int matching_width(const config *cfg)
{
    size_t target = count_params(cfg, 1, cfg->hidden), best_n = count_params(cfg, 0, cfg->hidden);
    int best = cfg->hidden;
    if (!target || !best_n) return -1;
    for (int h = cfg->hidden + 1; h <= 4 * cfg->hidden; h++) {
        size_t n = count_params(cfg, 0, h);
        if (!n) return -1;
        size_t dn = n > target ? n - target : target - n;
        size_t db = best_n > target ? best_n - target : target - best_n;
        if (dn < db) { best = h; best_n = n; }
        if (n > target) break; /* the count grows with h */
    }
    return best;
}

/* Draws B sequences of T symbols: ids[t*B + b], one-hot rows in x, labels y_t = x_{t+d}. */
static void make_batch(const config *cfg, ur_rng *rng, int *ids, float *x, int *targets)
{
    int T = cfg->len, B = cfg->batch, K = cfg->symbols, d = cfg->delay;
    for (int r = 0; r < T * B; r++) ids[r] = (int)ur_rng_below(rng, (uint32_t)K);
    memset(x, 0, (size_t)T * B * K * sizeof *x);
    for (int r = 0; r < T * B; r++) x[(size_t)r * K + ids[r]] = 1.0f;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++)
            targets[t * B + b] = t + d < T ? ids[(t + d) * B + b] : -1;
}

/* Records the forward pass and returns the T*B x K logits (NULL on a tape error). */
static ur_tensor *forward(ur_tape *tp, const model *m, const config *cfg, const float *x)
{
    int T = cfg->len, B = cfg->batch;
    ur_tensor *xs = ur_input_from(tp, T * B, cfg->symbols, x);
    ur_state zero = {NULL, NULL};
    ur_tensor *feat;
    if (m->bidir) { /* row block t of H is [forward h_t | backward h_t] */
        ur_bidir_seq s;
        if (ur_bidir_unroll(tp, &m->fwd, &m->bwd, xs, T, zero, zero, &s) != 0) return NULL;
        feat = s.H;
    } else {
        ur_seq s;
        if (ur_unroll(tp, &m->fwd, xs, T, zero, 0, &s) != 0) return NULL;
        feat = s.H;
    }
    ur_tensor *logits = ur_linear(tp, feat, m->V, m->c);
    return ur_tape_error(tp) ? NULL : logits;
}

/* Per-step accuracy over the labelled steps of n_batches held-out batches. */
static double evaluate(ur_tape *tp, const model *m, const config *cfg, uint64_t seed,
                       int *ids, float *x, int *targets)
{
    ur_rng rng;
    ur_rng_seed(&rng, seed);
    long right = 0, total = 0;
    int n_batches = (cfg->eval + cfg->batch - 1) / cfg->batch;
    for (int k = 0; k < n_batches; k++) {
        make_batch(cfg, &rng, ids, x, targets);
        ur_tape_reset(tp);
        ur_tensor *logits = forward(tp, m, cfg, x);
        if (!logits) return -1.0;
        for (int r = 0; r < logits->rows; r++) {
            if (targets[r] < 0) continue;
            right += ur_argmax(logits->val + (size_t)r * cfg->symbols, cfg->symbols) == targets[r];
            total++;
        }
    }
    return total ? (double)right / (double)total : 0.0;
}

typedef struct outcome {
    double first_loss, last_loss, accuracy, seconds;
} outcome;

static int train(model *m, const config *cfg, FILE *log, ur_rng *rng, outcome *res)
{
    int T = cfg->len, B = cfg->batch, K = cfg->symbols;
    int *ids = malloc((size_t)T * B * sizeof *ids);
    int *targets = malloc((size_t)T * B * sizeof *targets);
    float *x = malloc((size_t)T * B * K * sizeof *x);
    ur_tape *tp = ur_tape_new(0);
    char err[256];
    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
    oc.lr = cfg->lr;
    ur_optim *opt = ur_optim_new(m->ps, &oc, err, sizeof err);
    int rc = -1;
    if (!ids || !targets || !x || !tp || !opt) {
        fprintf(stderr, "bitag: %s\n", opt ? "out of memory" : err);
        goto done;
    }

    /* The first and last losses are averages over a window, so one lucky batch cannot
     * fake progress. */
    ex_loss_track lt;
    ex_loss_start(&lt, cfg->steps, cfg->steps >= 50 ? 10 : 1, 0.05);
    ex_progress pr;
    ex_progress_start(&pr, cfg->steps, 2.0);
    for (long step = 0; step < cfg->steps; step++) {
        make_batch(cfg, rng, ids, x, targets);
        ur_tape_reset(tp);
        ur_tensor *logits = forward(tp, m, cfg, x);
        ur_tensor *loss = ur_softmax_nll(tp, logits, targets, UR_MEAN);
        if (ex_update(tp, loss, m->ps, opt, cfg->clip,
                      ur_lr_cosine(cfg->lr, step, cfg->steps, 0, 0.1f * cfg->lr), "bitag",
                      NULL) != 0)
            goto done;

        double l = loss->val[0];
        ex_loss_add(&lt, step, l);
        double el = ex_elapsed(&pr);
        if (log)
            fprintf(log, "%s,%ld,%.6f,%.2f\n", m->name, step + 1, l, el);
        if (ex_progress_due(&pr, step))
            printf("%-13s step %5ld/%d  loss %.4f  %7.0f seq/s  elapsed %5.1fs  ETA %5.1fs\n",
                   m->name, step + 1, cfg->steps, lt.running, (step + 1) * B / (el > 0 ? el : 1e-9),
                   el, ex_eta(&pr, step));
    }
    res->first_loss = lt.first;
    res->last_loss = lt.last;
    res->seconds = ex_elapsed(&pr);
    /* The held-out sequences come from their own stream, the same for both models. */
    res->accuracy = evaluate(tp, m, cfg, (uint64_t)cfg->seed * 7919u + 17u, ids, x, targets);
    if (res->accuracy < 0) {
        fprintf(stderr, "bitag: %s\n", ur_tape_error(tp));
        goto done;
    }
    rc = 0;
done:
    ur_optim_free(opt);
    ur_tape_free(tp);
    free(x);
    free(targets);
    free(ids);
    return rc;
}

/* The held-out accuracies of both models, and the machine-readable result line. */
static void report(const config *cfg, const outcome *rb, const outcome *rf)
{
    double chance = 1.0 / cfg->symbols;
    printf("\nper-step accuracy on %d held-out sequences (chance %.1f%%):\n", cfg->eval,
           100 * chance);
    printf("  bidirectional  %6.2f%%  (loss %.3f -> %.3f, %.1fs)\n", 100 * rb->accuracy,
           rb->first_loss, rb->last_loss, rb->seconds);
    printf("  forward-only   %6.2f%%  (loss %.3f -> %.3f, %.1fs)\n", 100 * rf->accuracy,
           rf->first_loss, rf->last_loss, rf->seconds);
    printf("log written to %s\n", cfg->log);
    printf("result: bi_acc=%.4f fwd_acc=%.4f chance=%.4f first_loss=%.4f last_loss=%.4f "
           "fwd_first_loss=%.4f fwd_last_loss=%.4f seconds=%.1f\n",
           rb->accuracy, rf->accuracy, chance, rb->first_loss, rb->last_loss, rf->first_loss,
           rf->last_loss, rb->seconds + rf->seconds);
}

int main(int argc, char **argv)
{
    config cfg = {.steps = 1500, .batch = 32, .len = 24, .symbols = 8, .delay = 3, .hidden = 32,
                  .eval = 1024, .seed = 1, .lr = 0.01f, .clip = 5.0f, .log = "bitag.csv",
                  .cell = "elman"};
    const ex_opt opts[] = {
        {"steps", EX_INT, &cfg.steps, 1, 1e7, "training steps per model"},
        {"batch", EX_INT, &cfg.batch, 1, 4096, "sequences per step"},
        {"len", EX_INT, &cfg.len, 2, 10000, "steps per sequence (T)"},
        {"symbols", EX_INT, &cfg.symbols, 2, 1000, "alphabet size (K)"},
        {"delay", EX_INT, &cfg.delay, 1, 1000, "label of step t is the input at t + delay (d)"},
        {"hidden", EX_INT, &cfg.hidden, 1, 4096, "hidden units per direction of the bidirectional model"},
        {"eval", EX_INT, &cfg.eval, 1, 1e6, "held-out sequences for the accuracy"},
        {"lr", EX_FLOAT, &cfg.lr, 1e-6, 10, "Adam learning rate (cosine decay to a tenth)"},
        {"clip", EX_FLOAT, &cfg.clip, 1e-3, 1e6, "global gradient-norm clipping threshold"},
        {"cell", EX_CHOICE, &(ex_choice){&cfg.cell, "elman|lstm|gru"}, 0, 0, "recurrent cell"},
        {"seed", EX_INT, &cfg.seed, 0, 2147483647, "random seed (same seed, same run)"},
        {"log", EX_STRING, &cfg.log, 0, 0, "CSV log: model,step,loss,seconds"},
        {"smoke", EX_SMOKE, (const char *[]){"--steps=120", "--eval=256", NULL}, 0, 0,
         "short run for the test suite"},
    };
    const char *usage =
        "Tags each step of a random symbol sequence with the symbol `delay` steps later.\n"
        "Trains a bidirectional RNN and a forward-only RNN of about the same size and prints\n"
        "their per-step accuracy on held-out sequences: the bidirectional one reads the\n"
        "future and should be near 100%, the forward-only one can only guess (1/K).\n"
        "The last line is machine-readable: result: bi_acc=... fwd_acc=... chance=...";
    int pr = ex_parse(argc, argv, 1, "bitag", usage, opts, (int)(sizeof opts / sizeof opts[0]));
    if (pr != 0) return pr > 0 ? 0 : 2;
    if (cfg.delay >= cfg.len) {
        fprintf(stderr, "bitag: --delay %d leaves no labelled step in --len %d\n", cfg.delay, cfg.len);
        return 2;
    }
    ex_blas_notice();

    FILE *log = ex_csv_open(cfg.log, "model,step,loss,seconds");
    int fwd_hidden = matching_width(&cfg), rc = 1;
    model bi = {0}, fw = {0};
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)cfg.seed);
    if (!log) goto done;
    if (fwd_hidden < 0 || model_init(&bi, &cfg, 1, cfg.hidden, &rng) != 0 ||
        model_init(&fw, &cfg, 0, fwd_hidden, &rng) != 0) {
        fprintf(stderr, "bitag: cannot build the models: %s\n",
                ur_model_error() ? ur_model_error() : "out of memory");
        goto done;
    }
    printf("bitag: K=%d symbols, delay d=%d, T=%d, batch %d, %d steps, %s cells\n", cfg.symbols,
           cfg.delay, cfg.len, cfg.batch, cfg.steps, cfg.cell);
    printf("  bidirectional: 2 x %d hidden, %zu parameters\n", cfg.hidden, ur_params_numel(bi.ps));
    printf("  forward-only:  %d hidden, %zu parameters\n", fwd_hidden, ur_params_numel(fw.ps));
    outcome rb, rf;
    ur_rng rb_rng, rf_rng; /* the same training data for both models */
    ur_rng_seed(&rb_rng, (uint64_t)cfg.seed + 1000u);
    rf_rng = rb_rng;
    if (train(&bi, &cfg, log, &rb_rng, &rb) != 0 || train(&fw, &cfg, log, &rf_rng, &rf) != 0)
        goto done;
    int log_bad = ex_close_output(log, cfg.log, "bitag");
    log = NULL;
    if (log_bad) goto done;
    report(&cfg, &rb, &rf);
    rc = 0;
done:
    if (ex_close_output(log, cfg.log, "bitag") != 0) rc = 1;
    if (ex_finish_stdout("bitag") != 0) rc = 1;
    ur_params_free(bi.ps);
    ur_params_free(fw.ps);
    return rc;
}
