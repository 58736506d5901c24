/* char_lm: a character-level language model, trained on any text and sampled from.
 *
 *     char_lm [--data FILE] [options]       train (default: the system's license texts)
 *     char_lm sample --model FILE [options] print text drawn from a trained model
 *
 * The text is cut into a training head and a held-out tail (--val-frac). The network is
 * embedding -> recurrent layers (LSTM, GRU or Elman) -> a linear head over the time-stacked
 * top states (one GEMM for all steps) -> softmax cross-entropy, trained with Adam on B
 * parallel streams of the training text by truncated BPTT: --bptt steps per update, the
 * state carried detached from one update to the next. At the end it also fits add-alpha
 * n-gram models (n = 1..5) on the same split and prints every model's validation bits per
 * character side by side. Model files hold the weights, and the shape, vocabulary, step count
 * and Adam's state as metadata records (see lm_model.h). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "char_lm_dist.h"
#include "common.h"
#include "lm_model.h"
#include "ngram.h"
#include "text.h"
#include "unroll.h"

#define LICENSE_DIR "/usr/share/common-licenses"
#define EVAL_STEPS 128        /* time steps per forward pass when evaluating */

typedef struct train_opts {
    const char *data, *cell, *log, *save, *resume;
    float val_frac, lr, clip, dropout, rec_dropout, minutes, report;
    int layers, hidden, embed, batch, bptt, steps, seed, eval_chars, save_every, check_every;
} train_opts;

static const char *train_usage =
    "Trains a character-level language model on a text file (default: the concatenated\n"
    "regular files of " LICENSE_DIR ", sorted by name) and compares its validation\n"
    "bits per character with add-alpha n-gram models (n = 1..5) on the same split.\n"
    "Model shape and vocabulary are stored in the --save file; with --resume they come\n"
    "from the checkpoint (--cell, --layers, --hidden, --embed, --dropout and\n"
    "--recurrent-dropout are then ignored).\n"
    "--steps counts from the start of the first run, so a resumed run continues the same\n"
    "learning-rate schedule, and Adam's moments are restored from the checkpoint.\n"
    "The n-gram alpha is chosen per order from {0.001, 0.003, ..., 1} by fitting on the\n"
    "first 90% of the training text and scoring its last 10%: the validation text is\n"
    "never used to tune anything.\n"
    "Small models run fastest with OPENBLAS_NUM_THREADS=1, above all on a busy machine.\n"
    "Data-parallel (built with ./configure --with-mpi): mpirun -np N char_lm [options] with\n"
    "the same options splits the --batch streams over N processes, which average their\n"
    "gradients every step; rank 0 alone logs, saves and evaluates. On a cluster: mpirun\n"
    "--hostfile FILE --map-by node (or socket) -x OPENBLAS_NUM_THREADS=K char_lm ...; the\n"
    "text and a --resume checkpoint must be readable on every node (README: Data-parallel).\n"
    "Sampling: char_lm sample --model FILE [--prime TEXT] [--temperature T] [--length N]\n"
    "[--top-k K] [--seed S] (see char_lm sample --help).";

static const char *sample_usage =
    "Loads a model saved by char_lm --save, reads the prime text, then draws --length\n"
    "characters one at a time from the softmax of the logits divided by the temperature\n"
    "(0: always the most likely character), optionally among the --top-k most likely only,\n"
    "and prints the prime followed by them.";

/* "1h02m", "3m05s", "42s". */
static const char *fmt_time(double s, char *buf, size_t len)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (t >= 3600) snprintf(buf, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, len, "%lds", t);
    return buf;
}

/* ---- Data -------------------------------------------------------------------------------- */

typedef struct dataset {
    ex_text text;
    ex_vocab vocab;
    int *ids;            /* the whole text as ids */
    size_t n, n_train;   /* ids[0..n_train) train, ids[n_train..n) validation */
} dataset;

/* Reads the text and encodes it with vocab (NULL: the bytes that occur). */
static int load_data(dataset *d, const train_opts *o, const ex_vocab *vocab)
{
    char err[512];
    memset(d, 0, sizeof *d);
    int rc = o->data ? ex_text_read_file(&d->text, o->data, EX_TEXT_MAX_BYTES, err, sizeof err)
                     : ex_text_read_dir(&d->text, LICENSE_DIR, EX_TEXT_MAX_BYTES, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "char_lm: %s%s\n", err, o->data ? "" : " (give a text with --data FILE)");
        return -1;
    }
    d->n = d->text.n;
    size_t n_val = (size_t)((double)d->n * o->val_frac);
    d->n_train = d->n - n_val;
    if (n_val < 2 || d->n_train < (size_t)o->batch + 1) {
        fprintf(stderr, "char_lm: the text has %zu bytes: too short for a validation tail of %g "
                "and %d training streams (--batch)\n", d->n, o->val_frac, o->batch);
        return -1;
    }
    if (vocab) d->vocab = *vocab;
    else ex_vocab_build(&d->vocab, d->text.bytes, d->n);
    if (d->vocab.size < 2) {
        fprintf(stderr, "char_lm: the text is %zu copies of one byte: there is nothing to "
                "predict (every model scores 0 bits per character)\n", d->n);
        return -1;
    }
    if (!(d->ids = malloc(d->n * sizeof *d->ids))) {
        fprintf(stderr, "char_lm: out of memory for %zu characters\n", d->n);
        return -1;
    }
    if (ex_vocab_encode(&d->vocab, d->text.bytes, d->n, d->ids, err, sizeof err) != 0) {
        fprintf(stderr, "char_lm: %s: %s\n", o->data ? o->data : LICENSE_DIR, err);
        return -1;
    }
    return 0;
}

static void free_data(dataset *d)
{
    ex_text_free(&d->text);
    free(d->ids);
}

/* Streams to evaluate n characters with: as many as keep each at least EVAL_STEPS long. */
static int eval_streams(size_t n)
{
    size_t b = (n - 1) / EVAL_STEPS;
    return b < 1 ? 1 : b > 32 ? 32 : (int)b;
}

/* ---- N-gram baselines -------------------------------------------------------------------- */

/* Fits n-gram models of orders 1..5 on the training part and writes their validation bits
 * per character into bpc[0..4] and the alphas chosen into alpha[0..4]. */
static int ngram_baselines(const dataset *d, double *bpc, double *alpha)
{
    for (int order = 1; order <= EX_NGRAM_MAX_ORDER; order++) {
        double a = 0.1; /* kept when the text is too short to tune */
        int tuned = ex_ngram_tune_alpha(order, d->vocab.size, d->ids, d->n_train, &a);
        ex_ngram *m = tuned < 0 ? NULL : ex_ngram_new(order, d->vocab.size);
        if (!m || ex_ngram_fit(m, d->ids, d->n_train) != 0) {
            ex_ngram_free(m);
            fprintf(stderr, "char_lm: out of memory fitting the %d-gram model\n", order);
            return -1;
        }
        bpc[order - 1] = ex_ngram_bpc(m, d->ids, d->n_train, d->n, a);
        alpha[order - 1] = a;
        ex_ngram_free(m);
    }
    return 0;
}

/* ---- Training ---------------------------------------------------------------------------- */

/* What the training loop keeps between progress lines. */
typedef struct run_state {
    long step, first_step;
    double loss_sum;
    long loss_n;
    double train_time, last_report_time;
    long tokens, last_report_tokens;
    double limit;          /* seconds, --minutes; 0: a step count */
    ex_progress prog;
    FILE *log;
} run_state;

/* Prints a progress line (and a CSV row) after step; evaluates on the validation slice. */
static int report(run_state *r, lm_model *m, ur_tape *tp, const dataset *d, const train_opts *o)
{
    if (!cl_dist_root()) return 0;   /* data-parallel: rank 0 reports */
    char err[512], t1[32], t2[32];
    size_t n_val = d->n - d->n_train, n_eval = n_val;
    if (o->eval_chars > 0 && (size_t)o->eval_chars < n_eval) n_eval = (size_t)o->eval_chars;
    if (n_eval < 2) n_eval = 2;
    double val = lm_eval_bpc(m, tp, d->ids + d->n_train, n_eval, eval_streams(n_eval),
                             EVAL_STEPS, err, sizeof err);
    if (val < 0) {
        fprintf(stderr, "char_lm: %s\n", err);
        return -1;
    }
    double loss = r->loss_n ? r->loss_sum / (double)r->loss_n : NAN;
    double dt = r->train_time - r->last_report_time;
    double tps = dt > 0 ? (double)(r->tokens - r->last_report_tokens) / dt : 0;
    double elapsed = ex_elapsed(&r->prog);
    double eta = r->limit > 0 ? r->limit - elapsed : ex_eta(&r->prog, r->step - r->first_step);
    char total[32] = "";
    if (r->limit <= 0) snprintf(total, sizeof total, "/%d", o->steps);
    fprintf(stderr, "step %5ld%s  loss %.3f (%.2f bpc)  val %.3f bpc%s  %6.0f tok/s  %s  ETA %s\n",
            r->step + 1, total, loss, loss / log(2.0), val,
            n_eval < n_val ? " (slice)" : "", tps, fmt_time(elapsed, t1, sizeof t1),
            fmt_time(eta, t2, sizeof t2));
    if (r->log) {
        fprintf(r->log, "%ld,%.5f,%.5f,%.1f,%.2f\n", r->step + 1, loss, val, tps, elapsed);
        fflush(r->log);
    }
    r->loss_sum = 0;
    r->loss_n = 0;
    r->last_report_time = r->train_time;
    r->last_report_tokens = r->tokens;
    return 0;
}

static int save_model(lm_model *m, long steps, const ur_optim *opt, const char *path)
{
    char err[512];
    if (lm_save(m, steps, opt, path, err, sizeof err) != 0) {
        fprintf(stderr, "char_lm: %s\n", err);
        return -1;
    }
    return 0;
}

/* The training loop proper: B streams of the training text, TBPTT chunks of --bptt steps. */
static int train_loop(lm_model *m, ur_optim *opt, ur_tape *tp, const dataset *d,
                      const train_opts *o, run_state *r)
{
    int B = o->batch, L = m->cfg.layers, b0, nb;   /* this rank's streams: [b0, b0 + nb) */
    cl_dist_shard(B, &b0, &nb);
    long steps_per_stream = (long)((d->n_train - 1) / (size_t)B);
    if (steps_per_stream > 1 << 30) steps_per_stream = 1 << 30;
    ur_tbptt tb[LM_MAX_LAYERS];
    int n_tb = 0, rc = -1;
    int *in = malloc((size_t)o->bptt * (size_t)nb * 2 * sizeof *in);
    if (!in) goto out;
    for (; n_tb < L; n_tb++)
        if (ur_tbptt_init(&tb[n_tb], (int)steps_per_stream, o->bptt, 0, nb, m->cfg.hidden,
                          m->cells[n_tb].has_c) != 0) goto out;
    int *tgt = in + (size_t)o->bptt * nb;
    /* A resumed run picks up at the chunk where the first one stopped (from a zero state). */
    long chunks = (steps_per_stream + o->bptt - 1) / o->bptt;
    ur_tbptt_chunk ch;
    for (long k = 0; k < r->first_step % chunks; k++) ur_tbptt_next(&tb[0], &ch);

    for (r->step = r->first_step;; r->step++) {
        double elapsed = cl_dist_clock(ex_elapsed(&r->prog));
        if (r->limit > 0 ? elapsed >= r->limit : r->step >= o->steps) break;
        double t0 = ex_now();
        if (!ur_tbptt_next(&tb[0], &ch)) { /* a new pass over the text, from zero states */
            for (int l = 0; l < L; l++) ur_tbptt_rewind(&tb[l], 0);
            ur_tbptt_next(&tb[0], &ch);
        }
        ur_tape_reset(tp);
        for (int t = 0; t < ch.len; t++)
            for (int b = 0; b < nb; b++) {
                size_t at = (size_t)(b0 + b) * (size_t)steps_per_stream + (size_t)(ch.start + t);
                in[t * nb + b] = d->ids[at];
                tgt[t * nb + b] = d->ids[at + 1];
            }
        ur_state init[LM_MAX_LAYERS];
        for (int l = 0; l < L; l++) init[l] = ur_tbptt_state(&tb[l], tp);
        ur_stack_seq seq;
        ur_tensor *logits = lm_forward(tp, m, in, ch.len, nb, init, 1, &seq);
        ur_tensor *loss = ur_softmax_nll(tp, logits, tgt, UR_MEAN);
        ur_params_zero_grad(m->ps);
        if (ur_backward(tp, loss) != 0) {
            fprintf(stderr, "char_lm: step %ld: %s\n", r->step + 1, ur_tape_error(tp));
            goto out;
        }
        /* Data-parallel: the gradient and loss of the whole batch, on every rank. */
        if (cl_dist_sync(m, &loss->val[0], nb, B, r->step, o->check_every) != 0) goto out;
        if (!isfinite(loss->val[0])) {
            fprintf(stderr, "char_lm: training diverged at step %ld (loss %g); try a lower --lr "
                    "or --clip\n", r->step + 1, loss->val[0]);
            goto out;
        }
        if (o->clip > 0) ur_clip_grad_norm(m->ps, o->clip);
        /* Cosine decay from --lr to --lr / 10 over the run (steps, or time with --minutes). */
        double frac = r->limit > 0 ? elapsed / r->limit : (double)r->step / o->steps;
        ur_optim_set_lr(opt, ur_lr_cosine(o->lr, (long)(frac * 1e6), 1000000, 0, o->lr / 10));
        if (ur_optim_step(opt) != 0) {
            fprintf(stderr, "char_lm: step %ld: %s; try a lower --lr or --clip\n", r->step + 1,
                    ur_optim_error(opt));
            goto out;
        }
        for (int l = 0; l < L; l++) ur_tbptt_carry_from(&tb[l], &ch, seq.layer[l].states);

        r->loss_sum += loss->val[0];
        r->loss_n++;
        r->tokens += (long)ch.len * B;
        r->train_time += ex_now() - t0;
        int last = r->limit <= 0 && r->step + 1 >= o->steps;
        if ((last || ex_progress_due(&r->prog, r->step - r->first_step)) &&
            report(r, m, tp, d, o) != 0)
            goto out;
        if (o->save && o->save_every > 0 && (r->step + 1) % o->save_every == 0 &&
            save_model(m, r->step + 1, opt, o->save) != 0)
            goto out;
    }
    if (r->loss_n > 0 && report(r, m, tp, d, o) != 0) goto out;
    rc = 0;
out:
    if (rc != 0 && !in) fprintf(stderr, "char_lm: out of memory\n");
    for (int l = 0; l < n_tb; l++) ur_tbptt_free(&tb[l]);
    free(in);
    return rc;
}

/* Validation bpc of the network and the n-grams, side by side, and a short sample. */
static int final_report(lm_model *m, ur_tape *tp, const dataset *d, const run_state *r)
{
    if (!cl_dist_root()) return 0;   /* data-parallel: rank 0 reports */
    char err[512], t1[32];
    size_t n_val = d->n - d->n_train;
    double t0 = ex_now();
    double net = lm_eval_bpc(m, tp, d->ids + d->n_train, n_val, eval_streams(n_val), EVAL_STEPS,
                             err, sizeof err);
    if (net < 0) {
        fprintf(stderr, "char_lm: %s\n", err);
        return -1;
    }
    double eval_time = ex_now() - t0;
    double bpc[EX_NGRAM_MAX_ORDER], alpha[EX_NGRAM_MAX_ORDER];
    if (ngram_baselines(d, bpc, alpha) != 0) return -1;
    int best = 0;
    for (int k = 1; k < EX_NGRAM_MAX_ORDER; k++)
        if (bpc[k] < bpc[best]) best = k;
    printf("\nvalidation bits per character (%zu held-out characters, %zu for training):\n",
           n_val, d->n_train);
    for (int k = 0; k < EX_NGRAM_MAX_ORDER; k++)
        printf("  %d-gram, add-alpha %-6g   %.3f\n", k + 1, alpha[k], bpc[k]);
    printf("  %s %dx%d (%ld steps)%*s %.3f   %s the best n-gram (%d-gram) by %.3f\n",
           lm_cell_name(m->cfg.cell), m->cfg.layers, m->cfg.hidden, r->step,
           (int)(8 - strlen(lm_cell_name(m->cfg.cell))), "", net,
           net < bpc[best] ? "beats" : "trails", best + 1, fabs(bpc[best] - net));
    double tps = r->train_time > 0 ? (double)r->tokens / r->train_time : 0;
    printf("result: val_bpc=%.4f trigram_bpc=%.4f best_ngram_bpc=%.4f best_ngram=%d "
           "tokens_per_s=%.0f\n", net, bpc[2], bpc[best], best + 1, tps);
    printf("training: %ld tokens in %s of training (%.0f tokens/s), %s wall; full evaluation "
           "%.1fs\n", r->tokens, fmt_time(r->train_time, t1, sizeof t1), tps,
           fmt_time(ex_elapsed(&r->prog), t1, sizeof t1), eval_time);

    /* A short sample, primed with the start of the validation text. */
    int n_prime = n_val - 1 < 16 ? (int)n_val - 1 : 16;
    ur_rng rng;
    ur_rng_seed(&rng, 1);
    printf("sample (temperature 0.8):\n");
    fwrite(d->text.bytes + d->n_train, 1, (size_t)n_prime, stdout);
    if (lm_generate(m, tp, d->ids + d->n_train, n_prime, 300, 0.8f, 0, &rng, stdout, err,
                    sizeof err) != 0) {
        fprintf(stderr, "char_lm: %s\n", err);
        return -1;
    }
    printf("\n");
    return 0;
}

static int cmd_train(int argc, char **argv)
{
    /* Defaults measured on the license texts (OPENBLAS_NUM_THREADS=1): 1500 steps beat the
     * best n-gram (the 4-gram) by ~0.06 bpc. Hidden 128 runs 2.5x faster but overfits this
     * 213 kB text after ~500 steps (val 2.36 after 1500); hidden 256 without dropout levels
     * off near the 4-gram; lr 0.003 learns markedly slower than 0.005-0.01. */
    train_opts o = {.cell = "lstm", .val_frac = 0.1f, .lr = 5e-3f, .clip = 1.0f,
                    .dropout = 0.2f, .minutes = 0.0f, .report = 2.0f, .layers = 1,
                    .hidden = 256, .embed = 32, .batch = 64, .bptt = 32, .steps = 1500,
                    .seed = 1, .eval_chars = 8192, .save_every = 500, .check_every = 100};
    const ex_opt opts[] = {
        {"data", EX_STRING, &o.data, 0, 0, "text file to train on (default: " LICENSE_DIR "/*)"},
        {"val-frac", EX_FLOAT, &o.val_frac, 0.01, 0.5,
         "fraction held out at the end for validation"},
        {"cell", EX_STRING, &o.cell, 0, 0,
         "recurrent cell: lstm, gru, elman, lstm-ln, gru-ln (layer norm) or lstm-peephole"},
        {"layers", EX_INT, &o.layers, 1, LM_MAX_LAYERS, "stacked recurrent layers"},
        {"hidden", EX_INT, &o.hidden, 1, LM_MAX_HIDDEN, "hidden units per layer"},
        {"embed", EX_INT, &o.embed, 1, LM_MAX_EMBED, "character embedding size"},
        {"dropout", EX_FLOAT, &o.dropout, 0, 0.9,
         "dropout between layers and before the head (training only)"},
        {"recurrent-dropout", EX_FLOAT, &o.rec_dropout, 0, 0.9,
         "variational dropout in every cell: one mask per stream and chunk, on the input and "
         "on h(t-1) (training only)"},
        {"batch", EX_INT, &o.batch, 1, 4096, "parallel streams of the text per step"},
        {"bptt", EX_INT, &o.bptt, 1, 10000, "truncated BPTT length: time steps per update"},
        {"lr", EX_FLOAT, &o.lr, 1e-7, 1, "Adam learning rate (cosine decay to lr/10)"},
        {"clip", EX_FLOAT, &o.clip, 0, 1e6, "global gradient norm limit (0: no clipping)"},
        {"steps", EX_INT, &o.steps, 1, 1e7, "training steps (total, counting a resumed run's)"},
        {"minutes", EX_FLOAT, &o.minutes, 0, 1e5, "train this long instead of --steps (0: off)"},
        {"seed", EX_INT, &o.seed, 0, 2147483647, "random seed (initialisation, dropout)"},
        {"eval-chars", EX_INT, &o.eval_chars, 0, 1e9,
         "validation characters scored at each progress line (0: all); all at the end"},
        {"report", EX_FLOAT, &o.report, 0, 3600, "seconds between progress lines"},
        {"log", EX_STRING, &o.log, 0, 0, "CSV log: step, train loss, val bpc, tokens/s, elapsed"},
        {"save", EX_STRING, &o.save, 0, 0, "model file, written atomically as training goes"},
        {"save-every", EX_INT, &o.save_every, 0, 1e7, "steps between saves (0: at the end only)"},
        {"resume", EX_STRING, &o.resume, 0, 0, "continue training the model in this file"},
        {"check-every", EX_INT, &o.check_every, 0, 1e7,
         "data-parallel: steps between checks that every rank's parameters are identical"},
    };
    int prc = ex_parse(argc, argv, 1, "char_lm", train_usage, opts,
                       (int)(sizeof opts / sizeof opts[0]));
    if (prc != 0) return prc > 0 ? 0 : 2;
    int cell = lm_cell_kind(o.cell);
    if (cell < 0) {
        fprintf(stderr, "char_lm: --cell: '%s' is not lstm, gru, elman, lstm-ln, gru-ln or "
                "lstm-peephole\n", o.cell);
        return 2;
    }
    ex_blas_notice();
    if (!cl_dist_root()) o.save = o.log = NULL;   /* data-parallel: rank 0 writes the files */

    char err[512];
    lm_model m;
    long done = 0;
    dataset d;
    int rc = 1;
    if (o.resume) {
        if (lm_load(&m, o.resume, &done, err, sizeof err) != 0) {
            fprintf(stderr, "char_lm: cannot resume: %s\n", err);
            return 1;
        }
        ex_vocab v;
        ex_vocab_set(&v, m.vocab, m.cfg.vocab);
        if (cl_dist_root())
            fprintf(stderr, "resuming %s at step %ld: %s, %d layer(s) of %d, embedding %d, "
                    "dropout %g\n", o.resume, done, lm_cell_name(m.cfg.cell), m.cfg.layers,
                    m.cfg.hidden, m.cfg.embed, m.cfg.dropout);
        if (load_data(&d, &o, &v) != 0) goto fail_model;
        if (o.minutes <= 0 && done >= o.steps) {
            fprintf(stderr, "char_lm: %s has already trained %ld steps (--steps %d)\n", o.resume,
                    done, o.steps);
            goto fail_model;
        }
    } else {
        if (load_data(&d, &o, NULL) != 0) goto fail_data;
        lm_config cfg = {cell, o.layers, o.hidden, o.embed, d.vocab.size, o.dropout,
                         o.rec_dropout};
        ur_rng rng;
        ur_rng_seed(&rng, (uint64_t)o.seed);
        if (lm_build(&m, &cfg, d.vocab.byte, &rng, err, sizeof err) != 0) {
            fprintf(stderr, "char_lm: %s\n", err);
            goto fail_data;
        }
    }
    if (cl_dist_root()) {
        fprintf(stderr, "%s: %zu bytes, vocabulary %d; %zu for training, %zu held out\n",
                o.data ? o.data : LICENSE_DIR, d.n, d.vocab.size, d.n_train, d.n - d.n_train);
        fprintf(stderr, "model: %s, %d layer(s) of %d, embedding %d, %zu parameters; batch "
                "%d, bptt %d, lr %g\n", lm_cell_name(m.cfg.cell), m.cfg.layers, m.cfg.hidden,
                m.cfg.embed, ur_params_numel(m.ps), o.batch, o.bptt, o.lr);
    }
    if (cl_dist_start(&m, o.batch) != 0) goto fail_model;

    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
    oc.lr = o.lr;
    ur_optim *opt = ur_optim_new(m.ps, &oc, err, sizeof err);
    ur_tape *tp = ur_tape_new(0);
    run_state r = {.first_step = done, .limit = 60.0 * o.minutes};
    if (!opt || !tp) {
        fprintf(stderr, "char_lm: %s\n", opt ? "out of memory" : err);
        goto fail_train;
    }
    if (o.resume) {
        int restored = lm_restore_optim(&m, opt, err, sizeof err);
        if (restored < 0) {
            fprintf(stderr, "char_lm: cannot resume %s: %s\n", o.resume, err);
            goto fail_train;
        }
        fprintf(stderr, "%s\n", restored ? "Adam's moments restored from the checkpoint"
                                         : "the checkpoint has no optimizer state: Adam starts afresh");
    }
    if (o.log && !(r.log = ex_csv_open(o.log, "step,train_loss,val_bpc,tokens_per_s,elapsed_s")))
        goto fail_train;
    /* Save once before training, so an unwritable --save path fails now, not after the run. */
    if (o.save && save_model(&m, done, opt, o.save) != 0) goto fail_train;
    ex_progress_start(&r.prog, r.limit > 0 ? 1L << 40 : o.steps - done, o.report);
    if (train_loop(&m, opt, tp, &d, &o, &r) != 0) goto fail_train;
    if (o.save && save_model(&m, r.step, opt, o.save) != 0) goto fail_train;
    if (final_report(&m, tp, &d, &r) != 0) goto fail_train;
    if (o.save) printf("model saved to %s\n", o.save);
    rc = 0;
fail_train:
    if (ex_close_output(r.log, o.log, "char_lm") != 0) rc = 1;
    if (ex_finish_stdout("char_lm") != 0) rc = 1;
    ur_tape_free(tp);
    ur_optim_free(opt);
fail_model:
    lm_free(&m);
fail_data:
    free_data(&d);
    return rc;
}

/* ---- Sampling ---------------------------------------------------------------------------- */

static int cmd_sample(int argc, char **argv)
{
    const char *model = NULL, *prime = "The ";
    float temperature = 0.8f;
    int length = 500, top_k = 0, seed = 1;
    const ex_opt opts[] = {
        {"model", EX_STRING, &model, 0, 0, "model file written by char_lm --save (required)"},
        {"prime", EX_STRING, &prime, 0, 0, "text to start from (printed first)"},
        {"temperature", EX_FLOAT, &temperature, 0, 100, "softmax temperature (0: argmax)"},
        {"length", EX_INT, &length, 1, 1e8, "characters to generate"},
        {"top-k", EX_INT, &top_k, 0, 256, "draw among the K most likely characters only (0: all)"},
        {"seed", EX_INT, &seed, 0, 2147483647, "random seed"},
    };
    int prc = ex_parse(argc, argv, 2, "char_lm sample", sample_usage, opts,
                       (int)(sizeof opts / sizeof opts[0]));
    if (prc != 0) return prc > 0 ? 0 : 2;
    if (!model) {
        fprintf(stderr, "char_lm sample: --model FILE is required (see --help)\n");
        return 2;
    }
    ex_blas_notice();
    char err[512];
    lm_model m;
    long steps;
    if (lm_load(&m, model, &steps, err, sizeof err) != 0) {
        fprintf(stderr, "char_lm sample: cannot load the model: %s\n", err);
        return 1;
    }
    int rc = 1;
    ex_vocab v;
    ex_vocab_set(&v, m.vocab, m.cfg.vocab);
    size_t n = strlen(prime);
    int *ids = malloc(n * sizeof *ids);
    ur_tape *tp = ur_tape_new(0);
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)seed);
    if (!ids || !tp) fprintf(stderr, "char_lm sample: out of memory\n");
    else if (n > 1u << 20) fprintf(stderr, "char_lm sample: --prime is too long\n");
    else if (ex_vocab_encode(&v, (const unsigned char *)prime, n, ids, err, sizeof err) != 0)
        fprintf(stderr, "char_lm sample: --prime: %s\n", err);
    else {
        fputs(prime, stdout);
        if (lm_generate(&m, tp, ids, (int)n, length, temperature, top_k, &rng, stdout, err,
                        sizeof err) != 0)
            fprintf(stderr, "\nchar_lm sample: %s\n", err);
        else {
            putchar('\n');
            rc = 0;
        }
    }
    if (ex_finish_stdout("char_lm sample") != 0) rc = 1;
    ur_tape_free(tp);
    free(ids);
    lm_free(&m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "sample") == 0) return cmd_sample(argc, argv);
    if (cl_dist_begin(&argc, &argv) != 0) return 1;
    return cl_dist_end(cmd_train(argc, argv));
}
