/* Elman's temporal XOR (Finding Structure in Time, 1990): a stream of bits made of triples
 * (a, b, a XOR b) with a and b random. An Elman network reads the stream one bit at a time and
 * predicts the next bit (one logit per step, sigmoid cross-entropy). Only every third bit is
 * predictable, from the two before it; the others are coin flips. A network that learned the
 * task predicts the XOR bits almost perfectly, while its accuracy on the other bits stays
 * near 50%: Elman's saw-tooth error curve.
 *
 * The network: h_t = tanh(x_t U + h_{t-1} W + b), o_t = h_t V + c (the seeds' equations).
 * Training reads S parallel streams (each starting at a random phase of its triples) in
 * chunks of k steps: truncated BPTT with the library's ur_tbptt helper. The last hidden state
 * of a chunk carries over to the next as a detached leaf, so values flow on but gradients
 * stop at the chunk boundary; every chunk is recorded on the same tape after a reset.
 *
 * Shapes: k steps per chunk, S streams (the batch), H hidden units; inputs, targets and
 * logits are time-stacked, row t*S + s is step t of stream s. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/common.h"
#include "graph/ur_train.h"
#include "unroll.h"

typedef struct opts {
    int hidden, bptt, streams, steps, test_bits, seed;
    float lr, clip;
    const char *log;
} opts;

/* One bit stream: the current triple and the position in it. */
typedef struct stream {
    unsigned char triple[3];
    int pos;
} stream;

static void stream_init(stream *s, ur_rng *r)
{
    unsigned a = ur_rng_below(r, 2), b = ur_rng_below(r, 2);
    s->triple[0] = (unsigned char)a;
    s->triple[1] = (unsigned char)b;
    s->triple[2] = (unsigned char)(a ^ b);
    s->pos = (int)ur_rng_below(r, 3); /* a random phase */
}

/* The next bit; *phase gets its position in its triple (2: the predictable XOR bit). */
static int stream_next(stream *s, ur_rng *r, int *phase)
{
    if (s->pos == 3) {
        unsigned a = ur_rng_below(r, 2), b = ur_rng_below(r, 2);
        s->triple[0] = (unsigned char)a;
        s->triple[1] = (unsigned char)b;
        s->triple[2] = (unsigned char)(a ^ b);
        s->pos = 0;
    }
    *phase = s->pos;
    return s->triple[s->pos++];
}

/* S streams read k steps at a time: inputs x, next-bit targets y, the targets' phases. */
typedef struct feed {
    int S, k;
    stream *st;
    float *cur;     /* S: the bit each stream shows next as input */
    float *x, *y;   /* k*S, time-stacked */
    int *phase;     /* k*S */
    ur_rng rng;
} feed;

static int feed_init(feed *f, int S, int k, uint64_t seed)
{
    f->S = S;
    f->k = k;
    ur_rng_seed(&f->rng, seed);
    f->st = malloc((size_t)S * sizeof *f->st);
    f->cur = malloc((size_t)S * sizeof *f->cur);
    f->x = malloc((size_t)k * S * sizeof *f->x);
    f->y = malloc((size_t)k * S * sizeof *f->y);
    f->phase = malloc((size_t)k * S * sizeof *f->phase);
    if (!f->st || !f->cur || !f->x || !f->y || !f->phase) return -1;
    for (int s = 0; s < S; s++) {
        int ph;
        stream_init(&f->st[s], &f->rng);
        f->cur[s] = (float)stream_next(&f->st[s], &f->rng, &ph);
    }
    return 0;
}

static void feed_free(feed *f)
{
    free(f->st);
    free(f->cur);
    free(f->x);
    free(f->y);
    free(f->phase);
}

/* Fills the next chunk of k steps. */
static void feed_chunk(feed *f)
{
    for (int t = 0; t < f->k; t++)
        for (int s = 0; s < f->S; s++) {
            int j = t * f->S + s;
            f->x[j] = f->cur[s];
            f->cur[s] = (float)stream_next(&f->st[s], &f->rng, &f->phase[j]);
            f->y[j] = f->cur[s];
        }
}

typedef struct model {
    ur_params *ps;
    ur_cell cell;
    ur_tensor *v, *c;
} model;

/* Per-phase tallies of correct predictions and loss. */
typedef struct tally {
    long right[3], n[3];
    double loss[3];
} tally;

static void tally_add(tally *ty, const feed *f, const ur_tensor *logits)
{
    for (int j = 0; j < f->k * f->S; j++) {
        float z = logits->val[j], y = f->y[j];
        int p = f->phase[j];
        ty->right[p] += (z > 0.0f) == (y > 0.5f);
        ty->n[p]++;
        /* log(1 + e^z) - y z, stably */
        ty->loss[p] += (z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))) - y * z;
    }
}

static double acc_pred(const tally *t) { return t->n[2] ? (double)t->right[2] / t->n[2] : NAN; }
static double acc_unpred(const tally *t)
{
    long n = t->n[0] + t->n[1];
    return n ? (double)(t->right[0] + t->right[1]) / n : NAN;
}

/* Records one chunk on tp from the state init; returns the k*S x 1 logits, seq filled. */
static ur_tensor *chunk_forward(ur_tape *tp, const model *m, const feed *f, ur_state init,
                                ur_seq *seq)
{
    ur_tensor *x = ur_input_from(tp, f->k * f->S, 1, f->x);
    if (ur_unroll(tp, &m->cell, x, f->k, init, 0, seq) != 0) return ur_tape_poison(tp);
    return ur_linear(tp, seq->H, m->v, m->c);
}

/* Runs the model over fresh test streams, carrying the state from chunk to chunk as in
 * training, and tallies its predictions per phase. */
static int evaluate(const opts *o, const model *m, ur_tape *tp, tally *ty)
{
    feed f = {0};
    ur_tbptt tb;
    ur_tbptt_chunk ch;
    int rc = -1, chunks = (o->test_bits + o->streams * o->bptt - 1) / (o->streams * o->bptt);
    memset(ty, 0, sizeof *ty);
    if (ur_tbptt_init(&tb, chunks * o->bptt, o->bptt, 0, o->streams, o->hidden, 0) != 0 ||
        feed_init(&f, o->streams, o->bptt, (uint64_t)o->seed * 2654435761u + 23) != 0)
        goto done;
    while (ur_tbptt_next(&tb, &ch)) {
        ur_seq seq;
        ur_tape_reset(tp);
        feed_chunk(&f);
        ur_tensor *logits = chunk_forward(tp, m, &f, ur_tbptt_state(&tb, tp), &seq);
        if (ur_tape_error(tp) || ur_tbptt_carry_from(&tb, &ch, seq.states) != 0) goto done;
        tally_add(ty, &f, logits);
    }
    rc = 0;
done:
    ur_tbptt_free(&tb);
    feed_free(&f);
    return rc;
}

/* Everything one training run holds. */
typedef struct run {
    model m;
    feed f;
    ur_tape *tp, *eval_tp;
    ur_tbptt tb;
    ur_optim *opt;
    FILE *log;
} run;

/* Builds the model (an Elman cell and a linear head), the data feed and the optimizer; 0, or -1
 * after a message. */
static int run_init(run *r, const opts *o)
{
    ur_rng init_rng;
    ex_rng_stream(&init_rng, o->seed, 21);
    r->tp = ur_tape_new(0);
    r->eval_tp = ur_tape_new(0);
    r->m.ps = ur_params_new();
    float k = 1.0f / sqrtf((float)o->hidden);
    if (!r->m.ps || !r->tp || !r->eval_tp ||
        ur_elman_cell(&r->m.cell, r->m.ps, "elman", 1, o->hidden, &init_rng) != 0 ||
        !(r->m.v = ur_model_param(r->m.ps, "head", "V", o->hidden, 1, k, &init_rng)) ||
        !(r->m.c = ur_model_param(r->m.ps, "head", "c", 1, 1, k, &init_rng)) ||
        feed_init(&r->f, o->streams, o->bptt, (uint64_t)o->seed * 2654435761u + 22) != 0 ||
        ur_tbptt_init(&r->tb, o->steps * o->bptt, o->bptt, 0, o->streams, o->hidden, 0) != 0) {
        fprintf(stderr, "xor: cannot build the model: out of memory\n");
        return -1;
    }
    char err[256] = "";
    ur_optim_config cfg = ur_optim_defaults(UR_OPTIM_ADAM);
    cfg.lr = o->lr;
    if (!(r->opt = ur_optim_new(r->m.ps, &cfg, err, sizeof err))) {
        fprintf(stderr, "xor: %s\n", err);
        return -1;
    }
    return 0;
}

static void run_free(run *r)
{
    feed_free(&r->f);
    ur_optim_free(r->opt);
    ur_tbptt_free(&r->tb);
    ur_tape_free(r->tp);
    ur_tape_free(r->eval_tp);
    ur_params_free(r->m.ps);
}

/* Trains over the whole stream, chunk by chunk, evaluating on the test streams ten times (te
 * holds the last evaluation), with progress lines and a CSV row per step; 0, or -1. */
static int train(run *r, const opts *o, ex_loss_track *lt, tally *te)
{
    long steps = o->steps;
    ex_loss_start(lt, steps, steps / 20 > 0 ? steps / 20 : 1, 0.05);
    tally tr = {0};
    ex_progress pr;
    ex_progress_start(&pr, steps, 2.0);
    printf("training an Elman network (H = %d, %ld parameters) on %d streams, %d-step chunks, "
           "%ld steps\n",
           o->hidden, (long)ur_params_numel(r->m.ps), o->streams, o->bptt, steps);
    ur_tbptt_chunk ch;
    while (ur_tbptt_next(&r->tb, &ch)) {
        long step = ch.index;
        ur_seq seq;
        ur_tape_reset(r->tp);
        feed_chunk(&r->f);
        ur_tensor *logits = chunk_forward(r->tp, &r->m, &r->f, ur_tbptt_state(&r->tb, r->tp), &seq);
        ur_tensor *y = ur_input_from(r->tp, o->bptt * o->streams, 1, r->f.y);
        ur_tensor *loss = ur_sigmoid_xent(r->tp, logits, y, UR_MEAN);
        if (ex_update(r->tp, loss, r->m.ps, r->opt, o->clip, o->lr, "xor", NULL) != 0) return -1;
        if (ur_tbptt_carry_from(&r->tb, &ch, seq.states) != 0) {
            fprintf(stderr, "xor: tbptt carry\n");
            return -1;
        }
        tally chunk = {0};
        tally_add(&chunk, &r->f, logits);
        tally_add(&tr, &r->f, logits);
        double l = loss->val[0];
        ex_loss_add(lt, step, l);
        int eval = (step + 1) % (steps / 10 > 0 ? steps / 10 : 1) == 0 || step + 1 == steps;
        if (eval && evaluate(o, &r->m, r->eval_tp, te) != 0) {
            fprintf(stderr, "xor: evaluation failed\n");
            return -1;
        }
        fprintf(r->log, "%ld,%ld,%.6f,%.4f,%.4f,%.2f,", step + 1,
                (step + 1) * o->bptt * o->streams, l, acc_pred(&chunk), acc_unpred(&chunk),
                ex_elapsed(&pr));
        if (eval) fprintf(r->log, "%.4f,%.4f", acc_pred(te), acc_unpred(te));
        else fputc(',', r->log);
        fputc('\n', r->log);
        if (ex_progress_due(&pr, step) || eval) {
            double el = ex_elapsed(&pr);
            printf("  step %ld/%ld  loss %.4f  XOR bits %.1f%%  other bits %.1f%%  "
                   "%.0f bits/s  ETA %.0fs",
                   step + 1, steps, ex_loss_recent(lt), 100.0 * acc_pred(&tr),
                   100.0 * acc_unpred(&tr),
                   (double)(step + 1) * o->bptt * o->streams / (el > 0 ? el : 1e-9),
                   ex_eta(&pr, step));
            if (eval) printf("  test: XOR bits %.1f%%", 100.0 * acc_pred(te));
            printf("\n");
            fflush(stdout);
            memset(&tr, 0, sizeof tr);
        }
    }
    return 0;
}

/* The test figures by position in the triple, and the machine-readable result line. */
static void report(const opts *o, const tally *te, const ex_loss_track *lt, double seconds)
{
    printf("\ntest streams, %ld bits: accuracy and mean loss by position in the triple\n",
           te->n[0] + te->n[1] + te->n[2]);
    const char *what[3] = {"a (random)", "b (random)", "a XOR b"};
    for (int p = 0; p < 3; p++)
        printf("  %-11s  accuracy %6.2f%%  loss %.4f\n", what[p],
               100.0 * te->right[p] / (te->n[p] ? te->n[p] : 1),
               te->loss[p] / (te->n[p] ? te->n[p] : 1));
    printf("  predictable (XOR) bits %.2f%%, unpredictable bits %.2f%% (chance 50%%), %.1f s\n",
           100.0 * acc_pred(te), 100.0 * acc_unpred(te), seconds);
    printf("log: %s\n", o->log);
    printf("result: first_loss=%.6f last_loss=%.6f acc_xor=%.6f acc_other=%.6f seconds=%.1f\n",
           lt->first, lt->last, acc_pred(te), acc_unpred(te), seconds);
}

int main(int argc, char **argv)
{
    /* 32 streams: with 16, about 1 seed in 100 (23 of 1..100) stays at chance on the XOR bits
     * after 3000 steps; with 32, none of seeds 1..300 does (measured for issue 12). */
    opts o = {.hidden = 8, .bptt = 6, .streams = 32, .steps = 3000, .test_bits = 30000,
              .seed = 1, .lr = 0.01f, .clip = 1.0f, .log = "xor.csv"};
    const ex_opt spec[] = {
        {"hidden", EX_INT, &o.hidden, 1, 4096, "hidden units of the Elman network"},
        {"bptt", EX_INT, &o.bptt, 1, 10000, "steps per truncated-BPTT chunk"},
        {"streams", EX_INT, &o.streams, 1, 4096, "parallel bit streams (the batch)"},
        {"steps", EX_INT, &o.steps, 1, 1e8, "training chunks (optimizer steps)"},
        {"lr", EX_FLOAT, &o.lr, 1e-7, 10, "Adam learning rate"},
        {"clip", EX_FLOAT, &o.clip, 1e-6, 1e6, "global gradient-norm clipping threshold"},
        {"test-bits", EX_INT, &o.test_bits, 3, 1e8, "bits in the held-out test streams"},
        {"seed", EX_INT, &o.seed, 0, 2147483647, "random seed (data and initialisation)"},
        {"log", EX_STRING, &o.log, 0, 0, "CSV training log (step,bits,loss,accuracies)"},
        {"smoke", EX_SMOKE, (const char *[]){"--steps=300", NULL}, 0, 0, "quick run for the tests"},
    };
    int pc = ex_parse(argc, argv, 1, "xor",
                      "Trains an Elman network with truncated BPTT to predict the next bit of "
                      "Elman's (1990) temporal\nXOR stream (triples a, b, a XOR b) and reports its "
                      "accuracy on the predictable (XOR) bits and\non the unpredictable ones.",
                      spec, (int)(sizeof spec / sizeof spec[0]));
    if (pc != 0) return pc > 0 ? 0 : 2;
    if ((double)o.steps * o.bptt > 2e9) {
        fprintf(stderr, "xor: --steps %d times --bptt %d is too many steps\n", o.steps, o.bptt);
        return 2;
    }
    ex_blas_notice();
    run r = {0};
    ex_loss_track lt;
    tally te = {0};
    int rc = 1;
    if (run_init(&r, &o) != 0) goto done;
    if (!(r.log = ex_csv_open(o.log, "step,bits,loss,chunk_acc_xor_bits,chunk_acc_other_bits,"
                                     "elapsed_s,test_acc_xor_bits,test_acc_other_bits")))
        goto done;
    double start = ex_now();
    if (train(&r, &o, &lt, &te) != 0) goto done;
    report(&o, &te, &lt, ex_now() - start);
    rc = 0;
done:
    if (ex_close_output(r.log, o.log, "xor") != 0) rc = 1;
    if (ex_finish_stdout("xor") != 0) rc = 1;
    run_free(&r);
    return rc;
}
