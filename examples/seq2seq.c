/* seq2seq: an encoder-decoder that reverses digit strings.
 *
 *     input   3 1 4 1 5            (L digits)
 *     output  5 1 4 1 3 <end>
 *
 * The encoder is a many-to-one RNN: it reads the L digits and only its last state is kept.
 * The decoder is a one-to-many RNN whose initial state is that last state; it reads <start>
 * and then its previous output token, and emits one token per step until <end>. Everything
 * the decoder knows about the input passes through one fixed-size state.
 *
 * Training uses teacher forcing: the decoder reads <start> y_0 ... y_{L-1} (the true tokens)
 * and is scored on y_0 ... y_{L-1} <end>, so the whole decoder is one unroll. At test time
 * it decodes greedily (each step's argmax token is the next step's input) and with a beam
 * of --beam K hypotheses (ur_beam_decode; width 1 is the greedy decoding). A string counts
 * as right only if every digit and the position of <end> are right (exact match).
 *
 * Held-out strings: a string is in the test set when a hash of it is 0 modulo 10; training
 * never draws one of those, so the test strings were never seen. (Short lengths have few:
 * 100 of the 1000 strings of length 3, so the test draws repeat there.)
 *
 * Shapes: B = batch, L = string length, E = embedding size, H = hidden units, V = 12 tokens
 * (digits 0-9, <start> = 10, <end> = 11). Sequences are time-stacked: row t*B + b.
 */
#define _POSIX_C_SOURCE 200809L
#include "examples/common.h"
#include "graph/ur_train.h"
#include "models/ur_models.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N_DIGITS = 10, START = 10, END = 11, VOCAB = 12 };

typedef struct config {
    int steps, batch, min_len, max_len, embed, hidden, test, eval_every, seed, smoke, beam;
    float lr, clip, alpha;
    const char *log, *cell;
} config;

typedef struct model {
    ur_params *ps;
    ur_tensor *emb;     /* VOCAB x E, shared by encoder and decoder */
    ur_cell enc, dec;
    ur_tensor *V, *c;   /* head: H x VOCAB, 1 x VOCAB */
} model;

static int make_cell(const config *cfg, ur_cell *cell, ur_params *ps, const char *prefix,
                     ur_rng *rng)
{
    if (strcmp(cfg->cell, "elman") == 0)
        return ur_elman_cell(cell, ps, prefix, cfg->embed, cfg->hidden, rng);
    if (strcmp(cfg->cell, "gru") == 0)
        return ur_gru_cell(cell, ps, prefix, cfg->embed, cfg->hidden, rng);
    return ur_lstm_cell(cell, ps, prefix, cfg->embed, cfg->hidden, rng);
}

static int model_init(model *m, const config *cfg, ur_rng *rng)
{
    memset(m, 0, sizeof *m);
    if (!(m->ps = ur_params_new())) return -1;
    m->emb = ur_model_param(m->ps, "embed", "E", VOCAB, cfg->embed, 1.0f, rng);
    if (!m->emb || make_cell(cfg, &m->enc, m->ps, "encoder", rng) != 0 ||
        make_cell(cfg, &m->dec, m->ps, "decoder", rng) != 0)
        return -1;
    float k = 1.0f / sqrtf((float)cfg->hidden);
    m->V = ur_model_param(m->ps, "head", "V", cfg->hidden, VOCAB, k, rng);
    m->c = ur_model_param(m->ps, "head", "c", 1, VOCAB, k, rng);
    return m->V && m->c ? 0 : -1;
}

/* 1 if the L digits s[0], s[stride], ... belong to the held-out test set (FNV-1a hash). */
static int held_out(const int *s, int L, int stride)
{
    uint32_t h = 2166136261u;
    for (int t = 0; t < L; t++) h = (h ^ (uint32_t)(s[t * stride] + 1)) * 16777619u;
    h = (h ^ (uint32_t)L) * 16777619u;
    return h % 10 == 0;
}

/* B random strings of length L, time-stacked into src (L*B ids); test picks held-out ones
 * (1) or training ones (0). */
static void draw_strings(ur_rng *rng, int L, int B, int test, int *src)
{
    for (int b = 0; b < B; b++) {
        do {
            for (int t = 0; t < L; t++) src[t * B + b] = (int)ur_rng_below(rng, N_DIGITS);
        } while (held_out(src + b, L, B) != test);
    }
}

/* Runs the encoder over the L*B ids in src and returns its last state. */
static ur_state encode(ur_tape *tp, const model *m, const int *src, int L, int B)
{
    ur_state zero = {NULL, NULL}, last = {NULL, NULL};
    ur_tensor *x = ur_embedding(tp, m->emb, src, L * B);
    ur_single_output(tp, &m->enc, x, L, zero, &last); /* many-to-one: keep the last state */
    return ur_tape_error(tp) ? zero : last;
}

/* Teacher-forced loss of reversing src (L*B ids). dec_in and dec_out hold (L+1)*B ids. */
static ur_tensor *teacher_forced_loss(ur_tape *tp, const model *m, const int *src, int L, int B,
                                      int *dec_in, int *dec_out)
{
    for (int b = 0; b < B; b++) {
        dec_in[b] = START;
        for (int t = 0; t < L; t++) {
            int y = src[(L - 1 - t) * B + b]; /* the reversed string */
            dec_out[t * B + b] = y;
            dec_in[(t + 1) * B + b] = y;
        }
        dec_out[L * B + b] = END;
    }
    ur_state h = encode(tp, m, src, L, B);
    if (!h.h) return ur_tape_poison(tp);
    ur_seq d;
    ur_tensor *x = ur_embedding(tp, m->emb, dec_in, (L + 1) * B);
    if (ur_unroll(tp, &m->dec, x, L + 1, h, 0, &d) != 0) return ur_tape_poison(tp);
    ur_tensor *logits = ur_linear(tp, d.H, m->V, m->c);
    return ur_softmax_nll(tp, logits, dec_out, UR_MEAN);
}

/* Decodes a batch with bs (greedy at width 1, else a beam); returns how many of the B
 * strings come out exactly reversed, <end> included (-1 on an error, message printed). */
static int decode_correct(ur_tape *tp, const model *m, ur_beam *bs, const int *src, int L, int B)
{
    ur_state h = encode(tp, m, src, L, B);
    if (!h.h) {
        fprintf(stderr, "seq2seq: %s\n", ur_tape_error(tp));
        return -1;
    }
    if (ur_beam_decode(bs, B, h, L + 2) != 0) { /* L + 2: enough to see a late <end> */
        fprintf(stderr, "seq2seq: %s\n", ur_beam_error(bs));
        return -1;
    }
    int right = 0;
    for (int b = 0; b < B; b++) {
        ur_beam_hyp y = ur_beam_best(bs, b);
        int ok = y.ended && y.len == L;
        for (int t = 0; t < L && ok; t++) ok = y.tokens[t] == src[(L - 1 - t) * B + b];
        right += ok;
    }
    return right;
}

/* Exact-match accuracy over n held-out strings per length (the same strings every call),
 * decoded by bs. */
static double evaluate(ur_tape *tp, const model *m, const config *cfg, int n, int *src,
                       ur_beam *bs, double *per_len)
{
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)cfg->seed * 7919u + 101u);
    long right = 0, total = 0;
    for (int L = cfg->min_len; L <= cfg->max_len; L++) {
        long rl = 0, tl = 0;
        for (int done = 0; done < n; done += cfg->batch) {
            int B = n - done < cfg->batch ? n - done : cfg->batch;
            draw_strings(&rng, L, B, 1, src);
            ur_tape_reset(tp);
            int r = decode_correct(tp, m, bs, src, L, B);
            if (r < 0) return -1.0;
            rl += r;
            tl += B;
        }
        if (per_len) per_len[L] = (double)rl / (double)tl;
        right += rl;
        total += tl;
    }
    return (double)right / (double)total;
}

int main(int argc, char **argv)
{
    config cfg = {.steps = 2500, .batch = 64, .min_len = 3, .max_len = 10, .embed = 16,
                  .hidden = 128, .test = 500, .eval_every = 500, .seed = 1, .beam = 4,
                  .lr = 0.005f, .clip = 5.0f, .log = "seq2seq.csv", .cell = "lstm"};
    const ex_opt opts[] = {
        {"steps", EX_INT, &cfg.steps, 1, 1e7, "training steps"},
        {"batch", EX_INT, &cfg.batch, 1, 4096, "strings per step (all of one length)"},
        {"min-len", EX_INT, &cfg.min_len, 1, 1000, "shortest string"},
        {"max-len", EX_INT, &cfg.max_len, 1, 1000, "longest string"},
        {"embed", EX_INT, &cfg.embed, 1, 4096, "embedding size"},
        {"hidden", EX_INT, &cfg.hidden, 1, 4096, "hidden units of encoder and decoder"},
        {"cell", EX_STRING, &cfg.cell, 0, 0, "recurrent cell: lstm, gru or elman"},
        {"lr", EX_FLOAT, &cfg.lr, 1e-6, 10, "Adam learning rate (cosine decay to a tenth)"},
        {"clip", EX_FLOAT, &cfg.clip, 1e-3, 1e6, "global gradient-norm clipping threshold"},
        {"test", EX_INT, &cfg.test, 1, 1e6, "held-out strings per length for the final accuracy"},
        {"eval-every", EX_INT, &cfg.eval_every, 0, 1e7,
         "steps between held-out checks (a fifth of --test strings; 0: none)"},
        {"beam", EX_INT, &cfg.beam, 1, 64, "beam width of the second decoding (1: greedy twice)"},
        {"length-alpha", EX_FLOAT, &cfg.alpha, 0, 10,
         "beam length normalisation: rank by log P / length^alpha (0: log P)"},
        {"seed", EX_INT, &cfg.seed, 0, 2147483647, "random seed (same seed, same run)"},
        {"log", EX_STRING, &cfg.log, 0, 0, "CSV log: step,loss,heldout_exact,seconds"},
        {"smoke", EX_FLAG, &cfg.smoke, 0, 0, "short run for the test suite (60 small steps)"},
    };
    const char *usage =
        "Trains an encoder-decoder RNN to reverse digit strings: the encoder's last state is\n"
        "the decoder's first. Teacher forcing in training; at test, greedy decoding and a beam\n"
        "search of --beam K hypotheses. Prints the exact-match accuracy of both on strings\n"
        "never seen in training, per length and overall. The last line is machine-readable:\n"
        "result: exact=... beam_exact=... first_loss=... last_loss=...";
    int pr = ex_parse(argc, argv, 1, "seq2seq", usage, opts, (int)(sizeof opts / sizeof opts[0]));
    if (pr != 0) return pr > 0 ? 0 : 2;
    if (strcmp(cfg.cell, "elman") != 0 && strcmp(cfg.cell, "lstm") != 0 &&
        strcmp(cfg.cell, "gru") != 0) {
        fprintf(stderr, "seq2seq: --cell: '%s' is not lstm, gru or elman\n", cfg.cell);
        return 2;
    }
    if (cfg.min_len > cfg.max_len) {
        fprintf(stderr, "seq2seq: --min-len %d is above --max-len %d\n", cfg.min_len, cfg.max_len);
        return 2;
    }
    if (cfg.smoke) {
        cfg.steps = 60;
        cfg.hidden = 32;
        cfg.batch = 32;
        cfg.test = 64;
        cfg.eval_every = 0;
    }
    ex_blas_notice();

    FILE *log = ex_csv_open(cfg.log, "step,loss,heldout_exact,seconds");
    if (!log) return 1;
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)cfg.seed);
    model m;
    char err[256];
    if (model_init(&m, &cfg, &rng) != 0) {
        fprintf(stderr, "seq2seq: cannot build the model: %s\n",
                ur_model_error() ? ur_model_error() : "out of memory");
        return 1;
    }
    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
    oc.lr = cfg.lr;
    ur_optim *opt = ur_optim_new(m.ps, &oc, err, sizeof err);
    size_t n = (size_t)(cfg.max_len + 2) * (size_t)cfg.batch;
    int *src = malloc(n * sizeof *src), *dec_in = malloc(n * sizeof *dec_in);
    int *dec_out = malloc(n * sizeof *dec_out);
    double *per_len = calloc((size_t)cfg.max_len + 1, sizeof *per_len);
    double *beam_len = calloc((size_t)cfg.max_len + 1, sizeof *beam_len);
    ur_tape *tp = ur_tape_new(0);
    if (!opt || !src || !dec_in || !dec_out || !per_len || !beam_len || !tp) {
        fprintf(stderr, "seq2seq: %s\n", opt ? "out of memory" : err);
        return 1;
    }
    ur_beam_opts bo = {.width = 1, .start = START, .end = END, .max_len = cfg.max_len + 2,
                       .length_alpha = cfg.alpha, .embed = m.emb, .head_w = m.V, .head_b = m.c};
    ur_beam *greedy = ur_beam_new(&m.dec, &bo, cfg.batch), *beam = NULL;
    bo.width = cfg.beam;
    if (greedy) beam = ur_beam_new(&m.dec, &bo, cfg.batch);
    if (!beam) {
        fprintf(stderr, "seq2seq: cannot make the decoders: %s\n", ur_model_error());
        return 1;
    }
    printf("seq2seq: reversing digit strings of length %d-%d, %s %d hidden, %zu parameters, "
           "%d steps of %d\n", cfg.min_len, cfg.max_len, cfg.cell, cfg.hidden,
           ur_params_numel(m.ps), cfg.steps, cfg.batch);

    int rc = 1;
    double seqs = 0.0;
    ex_loss_track lt;
    ex_loss_start(&lt, cfg.steps, cfg.steps >= 100 ? 20 : 5, 0.02);
    ex_progress pg;
    ex_progress_start(&pg, cfg.steps, 2.0);
    for (long step = 0; step < cfg.steps; step++) {
        int L = cfg.min_len + (int)ur_rng_below(&rng, (uint32_t)(cfg.max_len - cfg.min_len + 1));
        draw_strings(&rng, L, cfg.batch, 0, src);
        ur_tape_reset(tp);
        ur_tensor *loss = teacher_forced_loss(tp, &m, src, L, cfg.batch, dec_in, dec_out);
        if (ex_update(tp, loss, m.ps, opt, cfg.clip,
                      ur_lr_cosine(cfg.lr, step, cfg.steps, 100, 0.1f * cfg.lr), "seq2seq",
                      NULL) != 0)
            goto done;

        double l = loss->val[0];
        seqs += cfg.batch;
        ex_loss_add(&lt, step, l);
        double acc = -1.0;
        if (cfg.eval_every > 0 && (step + 1) % cfg.eval_every == 0 && step + 1 < cfg.steps) {
            int n_check = cfg.test / 5 > 0 ? cfg.test / 5 : 1;
            acc = evaluate(tp, &m, &cfg, n_check, src, greedy, NULL);
            if (acc < 0) goto done;
        }
        double el = ex_elapsed(&pg);
        if (acc >= 0) fprintf(log, "%ld,%.6f,%.4f,%.2f\n", step + 1, l, acc, el);
        else fprintf(log, "%ld,%.6f,,%.2f\n", step + 1, l, el);
        if (ex_progress_due(&pg, step) || acc >= 0) {
            printf("step %5ld/%d  loss %.4f  %6.0f seq/s  elapsed %5.1fs  ETA %5.1fs", step + 1,
                   cfg.steps, lt.running, seqs / (el > 0 ? el : 1e-9), el, ex_eta(&pg, step));
            if (acc >= 0) printf("  held-out exact match %.1f%%", 100 * acc);
            printf("\n");
            fflush(stdout);
        }
    }
    double train_s = ex_elapsed(&pg);
    double t0 = ex_now(), exact = evaluate(tp, &m, &cfg, cfg.test, src, greedy, per_len);
    double t1 = ex_now(), bexact = exact < 0 ? -1 : evaluate(tp, &m, &cfg, cfg.test, src, beam,
                                                             beam_len);
    double t2 = ex_now();
    if (exact < 0 || bexact < 0) goto done;
    fprintf(log, "%d,%.6f,%.4f,%.2f\n", cfg.steps, lt.last, exact, ex_elapsed(&pg));
    printf("\nexact match on %d held-out strings per length, greedy and beam of %d:\n", cfg.test,
           cfg.beam);
    for (int L = cfg.min_len; L <= cfg.max_len; L++)
        printf("  length %2d  %6.2f%%  %6.2f%%\n", L, 100 * per_len[L], 100 * beam_len[L]);
    printf("  overall    %6.2f%%  %6.2f%%   (training %.1fs; decoding %.2fs greedy, %.2fs beam)\n",
           100 * exact, 100 * bexact, train_s, t1 - t0, t2 - t1);
    printf("log written to %s\n", cfg.log);
    printf("result: exact=%.4f beam_exact=%.4f beam=%d first_loss=%.4f last_loss=%.4f "
           "seconds=%.1f\n", exact, bexact, cfg.beam, lt.first, lt.last, train_s);
    rc = 0;
done:
    fclose(log);
    ur_beam_free(greedy);
    ur_beam_free(beam);
    ur_tape_free(tp);
    free(beam_len);
    free(per_len);
    free(dec_out);
    free(dec_in);
    free(src);
    ur_optim_free(opt);
    ur_params_free(m.ps);
    return rc;
}
