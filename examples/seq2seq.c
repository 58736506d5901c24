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
 * it decodes greedily: each step's argmax token is the next step's input; with --beam K also
 * by beam search (ur_beam_decode, the K most probable prefixes kept per string). A string
 * counts as right only if every digit and the position of <end> are right (exact match); the
 * per-character accuracy counts the right ones of the L+1 positions (the digits and <end>).
 *
 * Held-out strings: a string is in the test set when a hash of it is 0 modulo 10; training
 * never draws one of those, so the test strings were never seen. (Short lengths have few:
 * 100 of the 1000 strings of length 3, so the test draws repeat there.)
 *
 * With --attention the decoder also looks at every encoder state (Luong attention, below the
 * encoder), and the strings of --test-len digits, longer than any trained on, show how far
 * each model carries over to unseen lengths.
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
    int steps, batch, min_len, max_len, embed, hidden, test, eval_every, seed;
    float lr, clip;
    const char *log, *cell;
    int attention, test_len; /* --attention; --test-len (0: twice --max-len) */
    int beam;                /* --beam K: also decode with a beam of K (0: greedy only) */
    float alpha;             /* --length-alpha: the beam's length normalisation */
} config;

typedef struct model {
    ur_params *ps;
    ur_tensor *emb;     /* VOCAB x E, shared by encoder and decoder */
    ur_cell enc, dec;
    ur_tensor *V, *c;   /* head: H x VOCAB (2H x VOCAB with attention), 1 x VOCAB */
    int attention;      /* 1: the decoder attends to the encoder states (attn_* below) */
} model;

static int model_init(model *m, const config *cfg, ur_rng *rng)
{
    memset(m, 0, sizeof *m);
    m->attention = cfg->attention;
    /* the decoder: with attention it reads [x | previous context] */
    int dec_in = cfg->attention ? cfg->embed + cfg->hidden : cfg->embed;
    if (!(m->ps = ur_params_new())) return -1;
    m->emb = ur_model_param(m->ps, "embed", "E", VOCAB, cfg->embed, 1.0f, rng);
    if (!m->emb ||
        ex_cell_init(&m->enc, m->ps, cfg->cell, "encoder", cfg->embed, cfg->hidden, rng) != 0 ||
        ex_cell_init(&m->dec, m->ps, cfg->cell, "decoder", dec_in, cfg->hidden, rng) != 0)
        return -1;
    float k = 1.0f / sqrtf((float)cfg->hidden);
    int head_in = cfg->attention ? 2 * cfg->hidden : cfg->hidden; /* [h | context] */
    m->V = ur_model_param(m->ps, "head", "V", head_in, VOCAB, k, rng);
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

/* ---- Attention (--attention) --------------------------------------------------------------
 * Luong et al. 2015, global attention with the dot score and input feeding. At decoder step s
 * the state d_s scores every encoder state e_j of its own string, a softmax over the L steps
 * weighs them, and their weighted mean, the context, joins d_s in the output layer:
 *     d_s = cell([x_s | ctx_{s-1}], d_{s-1})        (ctx_{-1} = 0; d_{-1} = the encoder's last)
 *     a_s = softmax_j(d_s . e_j),     ctx_s = sum_j a_sj e_j,     logits_s = [d_s | ctx_s] V + c
 * (V is 2H x VOCAB). Feeding ctx_{s-1} back tells the decoder where it looked last; without
 * it, the decoder finds each position by counting alone, and does worse than no attention on
 * strings longer than it was trained on (LSTM, seeds 1-5: 39-78% exact at length 12, against
 * 83-88% without attention). Scores and contexts are per string, so the encoder
 * states are put batch-major (B*L x H, block b = string b's L states) and each product is a
 * block matmul over the B blocks. Public ops only, as a user would write it. */

/* Runs the encoder over src (L*B ids) and returns all its states batch-major (B*L x H);
 * *last gets its last state. NULL on a tape error. */
static ur_tensor *attn_encode(ur_tape *tp, const model *m, const int *src, int L, int B,
                              ur_state *last)
{
    ur_seq e;
    ur_tensor *x = ur_embedding(tp, m->emb, src, L * B);
    if (ur_unroll(tp, &m->enc, x, L, (ur_state){NULL, NULL}, 0, &e) != 0) return NULL;
    *last = e.last;
    return ur_time_to_batch(tp, e.H, L);
}

/* One decoder step on the embedded tokens x (B x E): updates *d and *ctx (B x H each) and
 * returns the logits (B x VOCAB). enc: the encoder states, batch-major (B*L x H). */
static ur_tensor *attn_step(ur_tape *tp, const model *m, ur_tensor *x, ur_tensor *enc,
                            ur_state *d, ur_tensor **ctx)
{
    int B = x->rows;
    ur_tensor *in[2] = {x, *ctx};
    *d = ur_cell_step(tp, &m->dec, ur_concat_cols(tp, 2, in), *d);
    ur_tensor *scores = ur_block_matmul(tp, d->h, enc, B, 0, 1); /* B x L: d . e_j */
    ur_tensor *a = ur_softmax(tp, scores);                       /* over each string's L */
    *ctx = ur_block_matmul(tp, a, enc, B, 0, 0);                 /* B x H: sum_j a_j e_j */
    ur_tensor *out[2] = {d->h, *ctx};
    return ur_linear(tp, ur_concat_cols(tp, 2, out), m->V, m->c);
}

/* Teacher-forced loss with attention (dec_in and dec_out as in teacher_forced_loss): the
 * mean over the L+1 steps of each step's mean negative log-likelihood. */
static ur_tensor *attn_loss(ur_tape *tp, const model *m, const int *src, int L, int B,
                            const int *dec_in, const int *dec_out)
{
    ur_state d;
    ur_tensor *enc = attn_encode(tp, m, src, L, B, &d);
    if (!enc) return ur_tape_poison(tp);
    ur_tensor *x = ur_embedding(tp, m->emb, dec_in, (L + 1) * B), *loss = NULL;
    ur_tensor *ctx = ur_zeros(tp, B, m->enc.hidden);
    for (int s = 0; s <= L; s++) {
        ur_tensor *logits = attn_step(tp, m, ur_rows(tp, x, s * B, B), enc, &d, &ctx);
        ur_tensor *l = ur_softmax_nll(tp, logits, dec_out + (size_t)s * B, UR_MEAN);
        loss = loss ? ur_add(tp, loss, l) : l;
    }
    return ur_scale(tp, loss, 1.0f / (float)(L + 1));
}

/* Greedy decoding with attention, as greedy_decode does without. */
static int attn_greedy_decode(ur_tape *tp, const model *m, const int *src, int L, int B,
                              int *tok, int *out)
{
    ur_state d;
    ur_tensor *enc = attn_encode(tp, m, src, L, B, &d);
    if (!enc) return -1;
    ur_tensor *ctx = ur_zeros(tp, B, m->enc.hidden);
    for (int b = 0; b < B; b++) tok[b] = START;
    for (int s = 0; s < L + 2; s++) {
        ur_tensor *logits = attn_step(tp, m, ur_embedding(tp, m->emb, tok, B), enc, &d, &ctx);
        if (ur_tape_error(tp)) return -1;
        for (int b = 0; b < B; b++) {
            tok[b] = ur_argmax(logits->val + (size_t)b * VOCAB, VOCAB);
            out[s * B + b] = tok[b];
        }
    }
    return 0;
}

/* ---- Beam search (--beam K) ----------------------------------------------------------------
 * ur_beam_decode runs the decoder cell with the linear head; with attention, the head is
 * attn_beam_head below and the context is fed back (the beam's input feeding, so each beam
 * keeps its own ctx). Beam j of string b is row b*K + j, so each row attends to its own
 * string's encoder states: beam_enc repeats each string's block K times. */

typedef struct beam_ctx {
    const model *m;
    int L;            /* the encoder states per string */
    float *enc;       /* (B*K*L) x H: string b's L states as block b*K + j, for each beam j */
} beam_ctx;

/* The attention head of attn_step for the beam's rows: logits, and in *feed the context. */
static ur_tensor *attn_beam_head(ur_tape *tp, ur_tensor *h, ur_tensor **feed, void *ctx)
{
    const beam_ctx *bc = ctx;
    int R = h->rows, H = h->cols;
    ur_tensor *enc = ur_input_from(tp, R * bc->L, H, bc->enc);
    ur_tensor *a = ur_softmax(tp, ur_block_matmul(tp, h, enc, R, 0, 1)); /* R x L */
    *feed = ur_block_matmul(tp, a, enc, R, 0, 0);                        /* R x H */
    ur_tensor *out[2] = {h, *feed};
    return ur_linear(tp, ur_concat_cols(tp, 2, out), bc->m->V, bc->m->c);
}

/* A decoder of width K for up to B strings of up to max_len digits (NULL: ur_model_error). */
static ur_beam *beam_new(const model *m, beam_ctx *bc, int K, float alpha, int B, int max_len)
{
    ur_beam_opts bo = {.width = K, .start = START, .end = END, .max_len = max_len + 2,
                       .length_alpha = alpha, .embed = m->emb};
    if (m->attention) {
        bo.feed = m->enc.hidden;
        bo.head_feed = attn_beam_head;
        bo.head_ctx = bc;
        bo.vocab = VOCAB;
    } else {
        bo.head_w = m->V;
        bo.head_b = m->c;
    }
    return ur_beam_new(&m->dec, &bo, B);
}

/* Beam decoding of the B strings in src; hypothesis b is ur_beam_best(bs, b). -1 on error
 * (message printed). */
static int beam_decode(ur_tape *tp, const model *m, ur_beam *bs, beam_ctx *bc, int K,
                       const int *src, int L, int B)
{
    ur_state last;
    if (m->attention) {
        ur_tensor *enc = attn_encode(tp, m, src, L, B, &last);
        if (!enc) return -1;
        size_t blk = (size_t)L * (size_t)m->enc.hidden;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < K; j++)
                memcpy(bc->enc + ((size_t)b * K + j) * blk, enc->val + b * blk,
                       blk * sizeof(float));
        bc->L = L;
    } else {
        last = encode(tp, m, src, L, B);
        if (!last.h) return -1;
    }
    if (ur_beam_decode(bs, B, last, L + 2) != 0) {
        fprintf(stderr, "seq2seq: %s\n", ur_beam_error(bs));
        return -2;
    }
    return 0;
}

/* How many of the L+1 positions of string b (L digits reversed, then <end>) the n tokens
 * tok[0], tok[stride], ... get right; a decoding stops at its first <end>. */
static int right_chars(const int *tok, int n, int stride, const int *src, int L, int B, int b)
{
    int right = 0;
    for (int t = 0; t <= L && t < n; t++) {
        int y = t < L ? src[(L - 1 - t) * B + b] : END, got = tok[t * stride];
        right += got == y;
        if (got == END) break;
    }
    return right;
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
    if (m->attention) return attn_loss(tp, m, src, L, B, dec_in, dec_out);
    ur_state h = encode(tp, m, src, L, B);
    if (!h.h) return ur_tape_poison(tp);
    ur_seq d;
    ur_tensor *x = ur_embedding(tp, m->emb, dec_in, (L + 1) * B);
    if (ur_unroll(tp, &m->dec, x, L + 1, h, 0, &d) != 0) return ur_tape_poison(tp);
    ur_tensor *logits = ur_linear(tp, d.H, m->V, m->c);
    return ur_softmax_nll(tp, logits, dec_out, UR_MEAN);
}

/* Greedy decoding of a batch into out ((L+2)*B ids, time-stacked); -1 on a tape error. */
static int greedy_decode(ur_tape *tp, const model *m, const int *src, int L, int B, int *tok,
                         int *out)
{
    if (m->attention) return attn_greedy_decode(tp, m, src, L, B, tok, out);
    int steps = L + 2; /* enough to see a late <end> */
    ur_state h = encode(tp, m, src, L, B);
    if (!h.h) return -1;
    for (int b = 0; b < B; b++) tok[b] = START;
    for (int s = 0; s < steps; s++) {
        ur_seq d;
        ur_tensor *x = ur_embedding(tp, m->emb, tok, B);
        if (ur_unroll(tp, &m->dec, x, 1, h, 0, &d) != 0) return -1;
        ur_tensor *logits = ur_linear(tp, d.H, m->V, m->c);
        if (ur_tape_error(tp)) return -1;
        for (int b = 0; b < B; b++) {
            tok[b] = ur_argmax(logits->val + (size_t)b * VOCAB, VOCAB);
            out[s * B + b] = tok[b];
        }
        h = d.last;
    }
    return 0;
}

/* Held-out scores of one decoding: exact matches and right characters, of n strings and
 * n_chars positions. */
typedef struct tally {
    long exact, chars, n, n_chars;
} tally;

/* The beam decoder for evaluate (bs NULL: greedy only). */
typedef struct beam_eval {
    ur_beam *bs;
    beam_ctx *bc;
    int K;
} beam_eval;

/* Exact-match accuracy of greedy decoding over n held-out strings per length (the same
 * strings every call); per_len[L] gets each length's. With be, the strings are also beam
 * decoded; greedy and beam (if be) add up all lengths' figures. -1.0 on an error. */
static double evaluate(ur_tape *tp, const model *m, const config *cfg, int n, int *src,
                       int *tok, int *out, double *per_len, const beam_eval *be, tally *greedy,
                       tally *beam)
{
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)cfg->seed * 7919u + 101u);
    tally g = {0, 0, 0, 0}, bm = {0, 0, 0, 0};
    for (int L = cfg->min_len; L <= cfg->max_len; L++) {
        long rl = 0, tl = 0;
        for (int done = 0; done < n; done += cfg->batch) {
            int B = n - done < cfg->batch ? n - done : cfg->batch;
            draw_strings(&rng, L, B, 1, src);
            ur_tape_reset(tp);
            if (greedy_decode(tp, m, src, L, B, tok, out) < 0) return -1.0;
            for (int b = 0; b < B; b++) {
                int r = right_chars(out + b, L + 2, B, src, L, B, b);
                rl += r == L + 1;
                g.chars += r;
            }
            tl += B;
            if (be && be->bs) {
                int rc = beam_decode(tp, m, be->bs, be->bc, be->K, src, L, B);
                if (rc < 0) return rc == -1 ? -1.0 : -2.0;
                for (int b = 0; b < B; b++) {
                    ur_beam_hyp y = ur_beam_best(be->bs, b);
                    int r = right_chars(y.tokens, y.len, 1, src, L, B, b);
                    r += y.ended && y.len == L; /* <end> in its place */
                    bm.exact += r == L + 1;
                    bm.chars += r;
                }
                bm.n += B;
                bm.n_chars += (long)B * (L + 1);
            }
        }
        if (per_len) per_len[L] = (double)rl / (double)tl;
        g.exact += rl;
        g.n += tl;
        g.n_chars += tl * (L + 1);
    }
    if (greedy) *greedy = g;
    if (beam) *beam = bm;
    return (double)g.exact / (double)g.n;
}

/* Everything one run holds: the model, its optimizer, the token buffers (long enough for the
 * longest test strings), the tape and the beam decoder. */
typedef struct run {
    model m;
    ur_optim *opt;
    int *src, *dec_in, *dec_out;
    double *per_len; /* exact match per length, 0 .. test_len */
    ur_tape *tp;
    beam_ctx bc;
    beam_eval be;
    FILE *log;
} run;

/* Builds what cfg asks for; 0, or -1 after a message. */
static int run_init(run *r, const config *cfg, ur_rng *rng)
{
    char err[256] = "";
    if (model_init(&r->m, cfg, rng) != 0) {
        fprintf(stderr, "seq2seq: cannot build the model: %s\n",
                ur_model_error() ? ur_model_error() : "out of memory");
        return -1;
    }
    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
    oc.lr = cfg->lr;
    r->opt = ur_optim_new(r->m.ps, &oc, err, sizeof err);
    size_t n = (size_t)(cfg->test_len + 2) * (size_t)cfg->batch; /* test_len > max_len */
    r->src = malloc(n * sizeof *r->src);
    r->dec_in = malloc(n * sizeof *r->dec_in);
    r->dec_out = malloc(n * sizeof *r->dec_out);
    r->per_len = calloc((size_t)cfg->test_len + 1, sizeof *r->per_len);
    r->tp = ur_tape_new(0);
    if (!r->opt || !r->src || !r->dec_in || !r->dec_out || !r->per_len || !r->tp) {
        fprintf(stderr, "seq2seq: %s\n", r->opt ? "out of memory" : err);
        return -1;
    }
    r->bc = (beam_ctx){&r->m, 0, NULL};
    r->be = (beam_eval){NULL, &r->bc, cfg->beam};
    if (cfg->beam > 0) {
        if (cfg->attention &&
            !(r->bc.enc = malloc((size_t)cfg->batch * (size_t)cfg->beam * (size_t)cfg->test_len *
                                 (size_t)cfg->hidden * sizeof *r->bc.enc))) {
            fprintf(stderr, "seq2seq: out of memory for the beam's encoder states\n");
            return -1;
        }
        if (!(r->be.bs = beam_new(&r->m, &r->bc, cfg->beam, cfg->alpha, cfg->batch,
                                  cfg->test_len))) {
            fprintf(stderr, "seq2seq: cannot make the beam decoder: %s\n", ur_model_error());
            return -1;
        }
    }
    return 0;
}

static void run_free(run *r)
{
    ur_beam_free(r->be.bs);
    free(r->bc.enc);
    ur_tape_free(r->tp);
    free(r->per_len);
    free(r->dec_out);
    free(r->dec_in);
    free(r->src);
    ur_optim_free(r->opt);
    ur_params_free(r->m.ps);
}

/* Trains with teacher forcing, one length per step, checking held-out strings every
 * --eval-every steps; progress lines and a CSV row per step. 0, or -1 after a message. */
static int train(run *r, const config *cfg, ur_rng *rng, ex_loss_track *lt, double *seconds)
{
    double seqs = 0.0;
    ex_loss_start(lt, cfg->steps, cfg->steps >= 100 ? 20 : 5, 0.02);
    ex_progress pg;
    ex_progress_start(&pg, cfg->steps, 2.0);
    for (long step = 0; step < cfg->steps; step++) {
        int L = cfg->min_len + (int)ur_rng_below(rng, (uint32_t)(cfg->max_len - cfg->min_len + 1));
        draw_strings(rng, L, cfg->batch, 0, r->src);
        ur_tape_reset(r->tp);
        ur_tensor *loss = teacher_forced_loss(r->tp, &r->m, r->src, L, cfg->batch, r->dec_in,
                                              r->dec_out);
        if (ex_update(r->tp, loss, r->m.ps, r->opt, cfg->clip,
                      ur_lr_cosine(cfg->lr, step, cfg->steps, 100, 0.1f * cfg->lr), "seq2seq",
                      NULL) != 0)
            return -1;
        double l = loss->val[0];
        seqs += cfg->batch;
        ex_loss_add(lt, step, l);
        double acc = -1.0;
        if (cfg->eval_every > 0 && (step + 1) % cfg->eval_every == 0 && step + 1 < cfg->steps) {
            int n_check = cfg->test / 5 > 0 ? cfg->test / 5 : 1;
            acc = evaluate(r->tp, &r->m, cfg, n_check, r->src, r->dec_in, r->dec_out, NULL, NULL,
                           NULL, NULL);
            if (acc < 0) {
                fprintf(stderr, "seq2seq: %s\n", ur_tape_error(r->tp));
                return -1;
            }
        }
        double el = ex_elapsed(&pg);
        if (acc >= 0) fprintf(r->log, "%ld,%.6f,%.4f,%.2f\n", step + 1, l, acc, el);
        else fprintf(r->log, "%ld,%.6f,,%.2f\n", step + 1, l, el);
        if (ex_progress_due(&pg, step) || acc >= 0) {
            printf("step %5ld/%d  loss %.4f  %6.0f seq/s  elapsed %5.1fs  ETA %5.1fs", step + 1,
                   cfg->steps, lt->running, seqs / (el > 0 ? el : 1e-9), el, ex_eta(&pg, step));
            if (acc >= 0) printf("  held-out exact match %.1f%%", 100 * acc);
            printf("\n");
            fflush(stdout);
        }
    }
    *seconds = ex_elapsed(&pg);
    return 0;
}

/* The held-out figures: greedy exact match on the trained lengths and on longer ones, and the
 * greedy and beam tallies of the same two sets. */
typedef struct scores {
    double exact, beyond;
    tally g_in, b_in, g_out, b_out;
} scores;

/* Evaluates the trained model on both held-out sets; 0, or -1 after a message. */
static int score(run *r, const config *cfg, scores *sc)
{
    sc->exact = evaluate(r->tp, &r->m, cfg, cfg->test, r->src, r->dec_in, r->dec_out,
                         r->per_len, &r->be, &sc->g_in, &sc->b_in);
    if (sc->exact < 0) {
        if (sc->exact > -2.0) fprintf(stderr, "seq2seq: %s\n", ur_tape_error(r->tp));
        return -1;
    }
    config lc = *cfg; /* the longer strings, each length as many times as the trained ones */
    lc.min_len = cfg->max_len + 1;
    lc.max_len = cfg->test_len;
    sc->beyond = evaluate(r->tp, &r->m, &lc, cfg->test, r->src, r->dec_in, r->dec_out,
                          r->per_len, &r->be, &sc->g_out, &sc->b_out);
    if (sc->beyond < 0) {
        if (sc->beyond > -2.0) fprintf(stderr, "seq2seq: %s\n", ur_tape_error(r->tp));
        return -1;
    }
    return 0;
}

static double frac(long num, long den) { return (double)num / (double)den; }

/* Prints the scores and the machine-readable result line. */
static void report(const config *cfg, const run *r, const scores *sc, const ex_loss_track *lt,
                   double train_s)
{
    printf("\ngreedy exact match on %d held-out strings per length:\n", cfg->test);
    for (int L = cfg->min_len; L <= cfg->max_len; L++)
        printf("  length %2d  %6.2f%%\n", L, 100 * r->per_len[L]);
    printf("  overall    %6.2f%%   (training %.1fs)\n", 100 * sc->exact, train_s);
    printf("longer than any trained on:\n");
    for (int L = cfg->max_len + 1; L <= cfg->test_len; L++)
        printf("  length %2d  %6.2f%%\n", L, 100 * r->per_len[L]);
    printf("  overall    %6.2f%%\n", 100 * sc->beyond);
    double gc = frac(sc->g_in.chars, sc->g_in.n_chars);
    double gco = frac(sc->g_out.chars, sc->g_out.n_chars);
    if (cfg->beam > 0) {
        printf("greedy vs beam of %d (alpha %g), held-out strings:\n", cfg->beam,
               (double)cfg->alpha);
        printf("                      exact match      per character\n");
        printf("  lengths %2d-%-2d greedy  %6.2f%%          %6.2f%%\n", cfg->min_len,
               cfg->max_len, 100 * sc->exact, 100 * gc);
        printf("                beam    %6.2f%%          %6.2f%%\n",
               100 * frac(sc->b_in.exact, sc->b_in.n), 100 * frac(sc->b_in.chars, sc->b_in.n_chars));
        printf("  lengths %2d-%-2d greedy  %6.2f%%          %6.2f%%\n", cfg->max_len + 1,
               cfg->test_len, 100 * sc->beyond, 100 * gco);
        printf("                beam    %6.2f%%          %6.2f%%\n",
               100 * frac(sc->b_out.exact, sc->b_out.n),
               100 * frac(sc->b_out.chars, sc->b_out.n_chars));
    }
    printf("log written to %s\n", cfg->log);
    printf("result: exact=%.4f exact_long=%.4f exact_beyond=%.4f chars=%.4f chars_beyond=%.4f "
           "test_len=%d attention=%d", sc->exact, r->per_len[cfg->test_len], sc->beyond, gc, gco,
           cfg->test_len, cfg->attention);
    if (cfg->beam > 0)
        printf(" beam=%d beam_exact=%.4f beam_chars=%.4f beam_exact_beyond=%.4f "
               "beam_chars_beyond=%.4f", cfg->beam, frac(sc->b_in.exact, sc->b_in.n),
               frac(sc->b_in.chars, sc->b_in.n_chars), frac(sc->b_out.exact, sc->b_out.n),
               frac(sc->b_out.chars, sc->b_out.n_chars));
    printf(" first_loss=%.4f last_loss=%.4f seconds=%.1f\n", lt->first, lt->last, train_s);
}

int main(int argc, char **argv)
{
    config cfg = {.steps = 2500, .batch = 64, .min_len = 3, .max_len = 10, .embed = 16,
                  .hidden = 128, .test = 500, .eval_every = 500, .seed = 1, .lr = 0.005f,
                  .clip = 5.0f, .log = "seq2seq.csv", .cell = "lstm"};
    const ex_opt opts[] = {
        {"steps", EX_INT, &cfg.steps, 1, 1e7, "training steps"},
        {"batch", EX_INT, &cfg.batch, 1, 4096, "strings per step (all of one length)"},
        {"min-len", EX_INT, &cfg.min_len, 1, 1000, "shortest string"},
        {"max-len", EX_INT, &cfg.max_len, 1, 1000, "longest string"},
        {"embed", EX_INT, &cfg.embed, 1, 4096, "embedding size"},
        {"hidden", EX_INT, &cfg.hidden, 1, 4096, "hidden units of encoder and decoder"},
        {"cell", EX_CHOICE, &(ex_choice){&cfg.cell, "lstm|gru|elman"}, 0, 0, "recurrent cell"},
        {"lr", EX_FLOAT, &cfg.lr, 1e-6, 10, "Adam learning rate (cosine decay to a tenth)"},
        {"clip", EX_FLOAT, &cfg.clip, 1e-3, 1e6, "global gradient-norm clipping threshold"},
        {"test", EX_INT, &cfg.test, 1, 1e6, "held-out strings per length for the final accuracy"},
        {"eval-every", EX_INT, &cfg.eval_every, 0, 1e7,
         "steps between held-out checks (a fifth of --test strings; 0: none)"},
        {"seed", EX_INT, &cfg.seed, 0, 2147483647, "random seed (same seed, same run)"},
        {"log", EX_STRING, &cfg.log, 0, 0, "CSV log: step,loss,heldout_exact,seconds"},
        {"smoke", EX_SMOKE,
         (const char *[]){"--steps=60", "--hidden=32", "--batch=32", "--test=64", "--eval-every=0",
                          NULL},
         0, 0, "short run for the test suite"},
        {"attention", EX_FLAG, &cfg.attention, 0, 0,
         "the decoder attends to every encoder state (Luong dot-product attention)"},
        {"test-len", EX_INT, &cfg.test_len, 0, 1000,
         "also test lengths --max-len+1 .. this, never trained on (0: twice --max-len)"},
        {"beam", EX_INT, &cfg.beam, 1, 64,
         "also decode the held-out strings with a beam of K (1-64) and report it next to "
         "greedy (unset: greedy only)"},
        {"length-alpha", EX_FLOAT, &cfg.alpha, 0, 10,
         "beam length normalisation: rank by log P / length^alpha (0: log P)"},
    };
    const char *usage =
        "Trains an encoder-decoder RNN to reverse digit strings: the encoder's last state is\n"
        "the decoder's first. Teacher forcing in training, greedy decoding at test; prints\n"
        "the exact-match accuracy on strings never seen in training, per length and overall,\n"
        "and on strings longer than any trained on. --attention lets the decoder look at every\n"
        "encoder state (Luong dot-product attention with input feeding). --beam K also\n"
        "decodes the held-out strings by beam search of width K, with or without attention,\n"
        "and prints its exact match and per-character accuracy next to greedy's.\n"
        "The last line is machine-readable: result: exact=... exact_long=... exact_beyond=... "
        "chars=... [beam=K beam_exact=... beam_chars=... beam_exact_beyond=... ...] "
        "first_loss=... last_loss=...";
    int pr = ex_parse(argc, argv, 1, "seq2seq", usage, opts, (int)(sizeof opts / sizeof opts[0]));
    if (pr != 0) return pr > 0 ? 0 : 2;
    if (cfg.min_len > cfg.max_len) {
        fprintf(stderr, "seq2seq: --min-len %d is above --max-len %d\n", cfg.min_len, cfg.max_len);
        return 2;
    }
    if (cfg.test_len == 0) cfg.test_len = 2 * cfg.max_len;
    if (cfg.test_len <= cfg.max_len) {
        fprintf(stderr, "seq2seq: --test-len %d is not above --max-len %d\n", cfg.test_len,
                cfg.max_len);
        return 2;
    }
    ex_blas_notice();

    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)cfg.seed);
    run r = {0};
    ex_loss_track lt;
    scores sc;
    double train_s = 0;
    int rc = 1;
    if (!(r.log = ex_csv_open(cfg.log, "step,loss,heldout_exact,seconds"))) goto done;
    if (run_init(&r, &cfg, &rng) != 0) goto done;
    printf("seq2seq: reversing digit strings of length %d-%d, %s %d hidden%s, %zu parameters, "
           "%d steps of %d\n", cfg.min_len, cfg.max_len, cfg.cell, cfg.hidden,
           cfg.attention ? " with attention" : "", ur_params_numel(r.m.ps), cfg.steps, cfg.batch);
    if (train(&r, &cfg, &rng, &lt, &train_s) != 0 || score(&r, &cfg, &sc) != 0) goto done;
    fprintf(r.log, "%d,%.6f,%.4f,%.2f\n", cfg.steps, lt.last, sc.exact, train_s);
    report(&cfg, &r, &sc, &lt, train_s);
    rc = 0;
done:
    if (ex_close_output(r.log, cfg.log, "seq2seq") != 0) rc = 1;
    if (ex_finish_stdout("seq2seq") != 0) rc = 1;
    run_free(&r);
    return rc;
}
