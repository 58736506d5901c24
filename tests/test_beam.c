/* Beam search (models/beam.c): width 1 is greedy decoding written by hand with ur_cell_step
 * (LSTM, GRU, Elman); on a hand-built bigram model with known probabilities the beam finds
 * the best sequence that greedy misses, with the exact log-probability; length normalisation
 * changes the winner as it should; a wide beam finds the exhaustive optimum of a random LSTM;
 * a batch decodes as its examples alone; a callback head equals the linear one; with input
 * feeding a wide beam is exhaustive and width 1 greedy; hypotheses cut at max_len; bad
 * options and arguments are errors.
 *
 * Sizes: V = vocabulary, E = embedding, HID = hidden, N = examples. */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

enum { V = 5, E = 4, HID = 6, N = 6, START = 0, END = 4, MAXLEN = 8 };

/* ---- A random decoder: embedding, cell, linear head ---------------------------------------- */

typedef struct {
    ur_params *ps;
    ur_cell cell;
    ur_tensor *E, *W, *b;
    float h0[N * HID], c0[N * HID];
} dec;

static void dec_init(dec *d, int kind, unsigned seed, float end_bias)
{
    ur_rng r;
    ur_rng_seed(&r, seed);
    d->ps = ur_params_new();
    int rc = kind == 0   ? ur_lstm_cell(&d->cell, d->ps, "dec", E, HID, &r)
             : kind == 1 ? ur_gru_cell(&d->cell, d->ps, "dec", E, HID, &r)
                         : ur_elman_cell(&d->cell, d->ps, "dec", E, HID, &r);
    ck_assert_int_eq(rc, 0);
    d->E = ur_model_param(d->ps, "embed", "E", V, E, 1.0f, &r);
    d->W = ur_model_param(d->ps, "head", "W", HID, V, 1.5f, &r);
    d->b = ur_model_param(d->ps, "head", "b", 1, V, 0.5f, &r);
    d->b->val[END] += end_bias;
    for (int k = 0; k < N * HID; k++) {
        d->h0[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
        d->c0[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    }
}

static ur_state dec_init_state(ur_tape *tp, const dec *d, int from, int n)
{
    ur_state s = {ur_input_from(tp, n, HID, d->h0 + from * HID), NULL};
    if (d->cell.has_c) s.c = ur_input_from(tp, n, HID, d->c0 + from * HID);
    return s;
}

static ur_beam *dec_beam(const dec *d, int width, float alpha, int cap)
{
    ur_beam_opts o = {.width = width, .start = START, .end = END, .max_len = MAXLEN,
                      .length_alpha = alpha, .embed = d->E, .head_w = d->W, .head_b = d->b};
    ur_beam *bs = ur_beam_new(&d->cell, &o, cap);
    ck_assert_msg(bs != NULL, "%s", ur_model_error());
    return bs;
}

/* log softmax(row)[v] in double. */
static double log_prob(const float *row, int n, int v)
{
    double m = row[0], s = 0;
    for (int j = 1; j < n; j++) m = fmax(m, row[j]);
    for (int j = 0; j < n; j++) s += exp(row[j] - m);
    return row[v] - m - log(s);
}

/* Greedy decoding of example i by hand: argmax at every step until the end token. */
static int greedy_by_hand(const dec *d, int i, int *tokens, int *ended, double *logp)
{
    ur_tape *tp = ur_tape_new(0);
    ur_state s = dec_init_state(tp, d, i, 1);
    int tok = START, n = 0;
    *ended = 0;
    *logp = 0;
    for (int t = 0; t < MAXLEN; t++) {
        s = ur_cell_step(tp, &d->cell, ur_embedding(tp, d->E, &tok, 1), s);
        ur_tensor *logits = ur_linear(tp, s.h, d->W, d->b);
        ck_assert_ptr_null(ur_tape_error(tp));
        tok = ur_argmax(logits->val, V);
        *logp += log_prob(logits->val, V, tok);
        if (tok == END) {
            *ended = 1;
            break;
        }
        tokens[n++] = tok;
    }
    ur_tape_free(tp);
    return n;
}

START_TEST(test_width1_is_greedy)
{
    int ended_some = 0, cut_some = 0;
    for (int kind = 0; kind < 3; kind++)
        for (int a = 0; a < 2; a++) {
            dec d;
            dec_init(&d, kind, 10 + (unsigned)kind, -0.5f);
            ur_beam *bs = dec_beam(&d, 1, a ? 0.8f : 0.0f, N);
            ur_tape *tp = ur_tape_new(0);
            ck_assert_msg(ur_beam_decode(bs, N, dec_init_state(tp, &d, 0, N), 0) == 0, "%s",
                          ur_beam_error(bs));
            for (int i = 0; i < N; i++) {
                int want[MAXLEN], ended;
                double logp;
                int n = greedy_by_hand(&d, i, want, &ended, &logp);
                ur_beam_hyp h = ur_beam_best(bs, i);
                ck_assert_int_eq(h.len, n);
                ck_assert_int_eq(h.ended, ended);
                for (int t = 0; t < n; t++) ck_assert_int_eq(h.tokens[t], want[t]);
                ck_assert_msg(fabs(h.logprob - logp) <= 1e-5, "%.9g vs %.9g", h.logprob, logp);
                ended_some += ended;
                cut_some += !ended;
            }
            ur_tape_free(tp);
            ur_beam_free(bs);
            ur_params_free(d.ps);
        }
    ck_assert_msg(ended_some > 0 && cut_some > 0, "ended %d, cut %d", ended_some, cut_some);
    if (getenv("UR_TEST_VERBOSE"))
        fprintf(stderr, "greedy: %d ended, %d cut\n", ended_some, cut_some);
}
END_TEST

/* ---- A hand-built bigram model -----------------------------------------------------------
 * The cell's state is its input, the one-hot of the previous token (no embedding), and the
 * head's W holds log P(next | previous), so the probabilities are known exactly. */

enum { BV = 4, BSTART = 0, BA = 1, BB = 2, BEND = 3 };

static ur_state copy_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)tp;
    (void)cell;
    (void)prev;
    return (ur_state){in->x, NULL};
}

typedef struct {
    ur_params *ps;
    ur_cell cell;
    ur_tensor *W;
} bigram;

/* P[prev][next]; zeros become a logit of -40. */
static void bigram_init(bigram *m, const double P[BV][BV])
{
    m->ps = ur_params_new();
    m->cell = (ur_cell){.kind = "copy", .step = copy_step, .in_dim = BV, .hidden = BV};
    m->W = ur_params_add(m->ps, "W", BV, BV);
    for (int i = 0; i < BV; i++)
        for (int j = 0; j < BV; j++)
            m->W->val[i * BV + j] = P[i][j] > 0 ? (float)log(P[i][j]) : -40.0f;
}

static ur_beam_hyp bigram_decode(bigram *m, int width, float alpha, ur_beam **keep)
{
    ur_beam_opts o = {.width = width, .start = BSTART, .end = BEND, .max_len = 6,
                      .length_alpha = alpha, .head_w = m->W};
    ur_beam *bs = ur_beam_new(&m->cell, &o, 1);
    ck_assert_msg(bs != NULL, "%s", ur_model_error());
    ck_assert_msg(ur_beam_decode(bs, 1, (ur_state){NULL, NULL}, 0) == 0, "%s", ur_beam_error(bs));
    *keep = bs;
    return ur_beam_best(bs, 0);
}

START_TEST(test_beam_beats_greedy)
{
    /* greedy takes A (0.6), then the end (0.4): 0.24; B (0.4) then the end (0.9) is 0.36 */
    static const double P[BV][BV] = {{0, 0.6, 0.4, 0},
                                     {0, 0.3, 0.3, 0.4},
                                     {0, 0.05, 0.05, 0.9},
                                     {0.25, 0.25, 0.25, 0.25}};
    bigram m;
    bigram_init(&m, P);
    ur_beam *bs;
    ur_beam_hyp g = bigram_decode(&m, 1, 0, &bs);
    ck_assert_int_eq(g.len, 1);
    ck_assert_int_eq(g.tokens[0], BA);
    ck_assert_int_eq(g.ended, 1);
    ck_assert(fabs(g.logprob - log(0.24)) < 1e-6);
    ur_beam_free(bs);
    for (int width = 2; width <= 4; width++) {
        ur_beam_hyp h = bigram_decode(&m, width, 0, &bs);
        ck_assert_int_eq(h.len, 1);
        ck_assert_int_eq(h.tokens[0], BB);
        ck_assert_int_eq(h.ended, 1);
        ck_assert_msg(fabs(h.logprob - log(0.36)) < 1e-6, "width %d: log P %.9g", width,
                      h.logprob);
        ck_assert(h.score == h.logprob);
        ur_beam_free(bs);
    }
    ur_params_free(m.ps);
}
END_TEST

/* Stopping at once (0.55) beats A then the end (0.45 x 0.98 = 0.441) on log P, but not per
 * token: alpha = 1 ranks [A] first (log 0.441 / 2 > log 0.55). */
START_TEST(test_length_normalisation)
{
    static const double P[BV][BV] = {{0, 0.45, 0, 0.55},
                                     {0, 0.01, 0.01, 0.98},
                                     {0, 0.5, 0, 0.5},
                                     {0.25, 0.25, 0.25, 0.25}};
    bigram m;
    bigram_init(&m, P);
    ur_beam *bs;
    ur_beam_hyp h = bigram_decode(&m, 2, 0, &bs);
    ck_assert_int_eq(h.len, 0);
    ck_assert_int_eq(h.ended, 1);
    ck_assert(fabs(h.logprob - log(0.55)) < 1e-6);
    ur_beam_free(bs);
    h = bigram_decode(&m, 2, 1.0f, &bs);
    ck_assert_int_eq(h.len, 1);
    ck_assert_int_eq(h.tokens[0], BA);
    ck_assert(fabs(h.logprob - log(0.441)) < 1e-6);
    ck_assert(fabs(h.score - log(0.441) / 2) < 1e-6);
    ur_beam_free(bs);
    ur_params_free(m.ps);
}
END_TEST

/* ---- Exhaustive search of a random LSTM ---------------------------------------------------- */

/* The best sequence an exhaustive search has seen so far, and the prefix it is extending. */
typedef struct {
    int max_len;
    float alpha;
    double best;
    int best_tok[MAXLEN], best_len, best_ended;
    int prefix[MAXLEN];
} best_seq;

/* Scores prefix + v (log P lp) where it ends (v is END or the length is max_len) and keeps it
 * if it is the best; returns 1 where the search goes on below it instead. */
static int offer(best_seq *S, int len, int v, double lp)
{
    int ended = v == END, n = ended ? len : len + 1;
    if (!ended) S->prefix[len] = v;
    if (!ended && n < S->max_len) return 1;
    double score = lp / pow(n + ended, S->alpha);
    if (score > S->best) {
        S->best = score;
        S->best_len = n;
        S->best_ended = ended;
        memcpy(S->best_tok, S->prefix, (size_t)n * sizeof(int));
    }
    return 0;
}

typedef struct {
    best_seq b;
    const dec *d;
    int i;
} search;

/* Every continuation of prefix (len tokens, log P logp, state h/c after it). */
static void dfs(search *S, int len, double logp, const float *h, const float *c)
{
    ur_tape *tp = ur_tape_new(0);
    int tok = len ? S->b.prefix[len - 1] : START;
    ur_state s = {ur_input_from(tp, 1, HID, h), c ? ur_input_from(tp, 1, HID, c) : NULL};
    s = ur_cell_step(tp, &S->d->cell, ur_embedding(tp, S->d->E, &tok, 1), s);
    ur_tensor *logits = ur_linear(tp, s.h, S->d->W, S->d->b);
    ck_assert_ptr_null(ur_tape_error(tp));
    float hn[HID], cn[HID], row[V];
    memcpy(hn, s.h->val, sizeof hn);
    if (c) memcpy(cn, s.c->val, sizeof cn);
    memcpy(row, logits->val, sizeof row);
    ur_tape_free(tp);
    for (int v = 0; v < V; v++) {
        double lp = logp + log_prob(row, V, v);
        if (offer(&S->b, len, v, lp)) dfs(S, len + 1, lp, hn, c ? cn : NULL);
    }
}

START_TEST(test_wide_beam_is_exhaustive)
{
    dec d;
    dec_init(&d, 0, 77, 0.0f);
    for (int a = 0; a < 2; a++) {
        float alpha = a ? 1.0f : 0.0f;
        ur_beam_opts o = {.width = 1024, .start = START, .end = END, .max_len = 4,
                          .length_alpha = alpha, .embed = d.E, .head_w = d.W, .head_b = d.b};
        ur_beam *bs = ur_beam_new(&d.cell, &o, 2);
        ck_assert_ptr_nonnull(bs);
        ur_tape *tp = ur_tape_new(0);
        ck_assert_int_eq(ur_beam_decode(bs, 2, dec_init_state(tp, &d, 0, 2), 0), 0);
        for (int i = 0; i < 2; i++) {
            search S = {.b = {.max_len = 4, .alpha = alpha, .best = -INFINITY}, .d = &d, .i = i};
            dfs(&S, 0, 0.0, d.h0 + i * HID, d.c0 + i * HID);
            ur_beam_hyp h = ur_beam_best(bs, i);
            ck_assert_msg(fabs(h.score - S.b.best) < 1e-5, "alpha %g, example %d: beam %.9g, "
                          "exhaustive %.9g", (double)alpha, i, h.score, S.b.best);
            ck_assert_int_eq(h.len, S.b.best_len);
            ck_assert_int_eq(h.ended, S.b.best_ended);
            for (int t = 0; t < h.len; t++) ck_assert_int_eq(h.tokens[t], S.b.best_tok[t]);
        }
        ur_tape_free(tp);
        ur_beam_free(bs);
    }
    ur_params_free(d.ps);
}
END_TEST

/* ---- Batches, callback heads, cuts, reuse ------------------------------------------------- */

static ur_tensor *linear_head(ur_tape *tp, ur_tensor *h, void *ctx)
{
    const dec *d = ctx;
    return ur_linear(tp, h, d->W, d->b);
}

START_TEST(test_batch_equals_alone)
{
    dec d;
    dec_init(&d, 0, 5, 0.5f);
    ur_beam *all = dec_beam(&d, 3, 0.5f, N), *one = dec_beam(&d, 3, 0.5f, 1);
    ur_beam_opts o = {.width = 3, .start = START, .end = END, .max_len = MAXLEN,
                      .length_alpha = 0.5f, .embed = d.E, .head = linear_head, .head_ctx = &d,
                      .vocab = V};
    ur_beam *cb = ur_beam_new(&d.cell, &o, N);
    ck_assert_ptr_nonnull(cb);
    ur_tape *tp = ur_tape_new(0);
    for (int round = 0; round < 2; round++) { /* a second decode reuses everything */
        ck_assert_int_eq(ur_beam_decode(all, N, dec_init_state(tp, &d, 0, N), 0), 0);
        ck_assert_int_eq(ur_beam_decode(cb, N, dec_init_state(tp, &d, 0, N), 0), 0);
        for (int i = 0; i < N; i++) {
            ck_assert_int_eq(ur_beam_decode(one, 1, dec_init_state(tp, &d, i, 1), 0), 0);
            ur_beam_hyp a = ur_beam_best(all, i), b = ur_beam_best(one, 0), c = ur_beam_best(cb, i);
            ck_assert_int_eq(a.len, b.len);
            ck_assert_int_eq(a.ended, b.ended);
            ck_assert_int_eq(a.len, c.len);
            for (int t = 0; t < a.len; t++) {
                ck_assert_int_eq(a.tokens[t], b.tokens[t]);
                ck_assert_int_eq(a.tokens[t], c.tokens[t]);
            }
            ck_assert(fabs(a.logprob - b.logprob) < 1e-5 && a.logprob == c.logprob);
        }
    }
    ur_tape_free(tp);
    ur_beam_free(all);
    ur_beam_free(one);
    ur_beam_free(cb);
    ur_params_free(d.ps);
}
END_TEST

/* ---- Input feeding: the head's vector joins the next input, and moves with its beam ----------
 * A decoder whose cell reads [embed(token) | f] and whose head gives logits = h W + b and
 * f = tanh(h Wf); a wide beam must find the exhaustive optimum (which it can only if every
 * beam carries its own f), and width 1 the greedy decoding written by hand. */

enum { FD = 3 };

typedef struct {
    ur_params *ps;
    ur_cell cell;
    ur_tensor *E, *W, *b, *Wf;
    float h0[N * HID], c0[N * HID];
} fed_dec;

static void fed_init(fed_dec *d, int kind, unsigned seed)
{
    ur_rng r;
    ur_rng_seed(&r, seed);
    d->ps = ur_params_new();
    int rc = kind == 0 ? ur_lstm_cell(&d->cell, d->ps, "dec", E + FD, HID, &r)
                       : ur_gru_cell(&d->cell, d->ps, "dec", E + FD, HID, &r);
    ck_assert_int_eq(rc, 0);
    d->E = ur_model_param(d->ps, "embed", "E", V, E, 1.0f, &r);
    d->W = ur_model_param(d->ps, "head", "W", HID, V, 1.5f, &r);
    d->b = ur_model_param(d->ps, "head", "b", 1, V, 0.5f, &r);
    d->Wf = ur_model_param(d->ps, "head", "Wf", HID, FD, 3.0f, &r);
    for (int k = 0; k < N * HID; k++) {
        d->h0[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
        d->c0[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    }
}

static ur_tensor *fed_head(ur_tape *tp, ur_tensor *h, ur_tensor **feed, void *ctx)
{
    const fed_dec *d = ctx;
    *feed = ur_tanh(tp, ur_matmul(tp, h, d->Wf, 0, 0));
    return ur_linear(tp, h, d->W, d->b);
}

/* One step by hand: the state (h, c) and feed f after token tok; the logits into row. */
static void fed_step(const fed_dec *d, int tok, float *h, float *c, float *f, float *row)
{
    ur_tape *tp = ur_tape_new(0);
    ur_state s = {ur_input_from(tp, 1, HID, h), d->cell.has_c ? ur_input_from(tp, 1, HID, c) : NULL};
    ur_tensor *in[2] = {ur_embedding(tp, d->E, &tok, 1), ur_input_from(tp, 1, FD, f)};
    s = ur_cell_step(tp, &d->cell, ur_concat_cols(tp, 2, in), s);
    ur_tensor *fn;
    ur_tensor *logits = fed_head(tp, s.h, &fn, (void *)d);
    ck_assert_ptr_null(ur_tape_error(tp));
    memcpy(h, s.h->val, HID * sizeof *h);
    if (d->cell.has_c) memcpy(c, s.c->val, HID * sizeof *c);
    memcpy(f, fn->val, FD * sizeof *f);
    memcpy(row, logits->val, V * sizeof *row);
    ur_tape_free(tp);
}

typedef struct {
    best_seq b;
    const fed_dec *d;
} fed_search;

static void fed_dfs(fed_search *S, int len, double logp, const float *h, const float *c,
                    const float *f)
{
    float hn[HID], cn[HID], fn[FD], row[V];
    memcpy(hn, h, sizeof hn);
    memcpy(cn, c, sizeof cn);
    memcpy(fn, f, sizeof fn);
    fed_step(S->d, len ? S->b.prefix[len - 1] : START, hn, cn, fn, row);
    for (int v = 0; v < V; v++) {
        double lp = logp + log_prob(row, V, v);
        if (offer(&S->b, len, v, lp)) fed_dfs(S, len + 1, lp, hn, cn, fn);
    }
}

START_TEST(test_input_feeding)
{
    for (int kind = 0; kind < 2; kind++) {
        fed_dec d;
        fed_init(&d, kind, 31 + (unsigned)kind);
        ur_tape *tp = ur_tape_new(0);
        ur_state init = {ur_input_from(tp, 2, HID, d.h0),
                         d.cell.has_c ? ur_input_from(tp, 2, HID, d.c0) : NULL};
        float zero_f[FD] = {0};
        /* a wide beam: the exhaustive optimum, with and without length normalisation */
        for (int a = 0; a < 2; a++) {
            float alpha = a ? 1.0f : 0.0f;
            ur_beam_opts o = {.width = 1024, .start = START, .end = END, .max_len = 4,
                              .length_alpha = alpha, .embed = d.E, .feed = FD,
                              .head_feed = fed_head, .head_ctx = &d, .vocab = V};
            ur_beam *bs = ur_beam_new(&d.cell, &o, 2);
            ck_assert_msg(bs != NULL, "%s", ur_model_error());
            ck_assert_msg(ur_beam_decode(bs, 2, init, 0) == 0, "%s", ur_beam_error(bs));
            for (int i = 0; i < 2; i++) {
                fed_search S = {.b = {.max_len = 4, .alpha = alpha, .best = -INFINITY}, .d = &d};
                fed_dfs(&S, 0, 0.0, d.h0 + i * HID, d.c0 + i * HID, zero_f);
                ur_beam_hyp h = ur_beam_best(bs, i);
                ck_assert_msg(fabs(h.score - S.b.best) < 1e-5, "kind %d alpha %g example %d: "
                              "beam %.9g, exhaustive %.9g", kind, (double)alpha, i, h.score,
                              S.b.best);
                ck_assert_int_eq(h.len, S.b.best_len);
                ck_assert_int_eq(h.ended, S.b.best_ended);
                for (int t = 0; t < h.len; t++) ck_assert_int_eq(h.tokens[t], S.b.best_tok[t]);
            }
            ur_beam_free(bs);
        }
        /* width 1: greedy by hand, for MAXLEN steps */
        ur_beam_opts o = {.width = 1, .start = START, .end = END, .max_len = MAXLEN,
                          .embed = d.E, .feed = FD, .head_feed = fed_head, .head_ctx = &d,
                          .vocab = V};
        ur_beam *bs = ur_beam_new(&d.cell, &o, 2);
        ck_assert_ptr_nonnull(bs);
        ck_assert_int_eq(ur_beam_decode(bs, 2, init, 0), 0);
        for (int i = 0; i < 2; i++) {
            float h[HID], c[HID], f[FD] = {0}, row[V];
            memcpy(h, d.h0 + i * HID, sizeof h);
            memcpy(c, d.c0 + i * HID, sizeof c);
            int tok = START, n = 0, ended = 0, want[MAXLEN];
            double logp = 0;
            for (int t = 0; t < MAXLEN && !ended; t++) {
                fed_step(&d, tok, h, c, f, row);
                tok = ur_argmax(row, V);
                logp += log_prob(row, V, tok);
                if (tok == END) ended = 1;
                else want[n++] = tok;
            }
            ur_beam_hyp hy = ur_beam_best(bs, i);
            ck_assert_int_eq(hy.len, n);
            ck_assert_int_eq(hy.ended, ended);
            for (int t = 0; t < n; t++) ck_assert_int_eq(hy.tokens[t], want[t]);
            ck_assert_msg(fabs(hy.logprob - logp) <= 1e-5, "%.9g vs %.9g", hy.logprob, logp);
        }
        ur_beam_free(bs);
        /* bad feeding options */
        ur_beam_opts bad = o;
        bad.feed = 0;
        ck_assert_ptr_null(ur_beam_new(&d.cell, &bad, 2));
        ck_assert_ptr_nonnull(strstr(ur_model_error(), "input feeding"));
        bad = o;
        bad.feed = FD + 1; /* the cell takes E + FD */
        ck_assert_ptr_null(ur_beam_new(&d.cell, &bad, 2));
        ck_assert_ptr_nonnull(strstr(ur_model_error(), "takes 7 features"));
        bad = o;
        bad.head_w = d.W;
        ck_assert_ptr_null(ur_beam_new(&d.cell, &bad, 2));
        ck_assert_ptr_nonnull(strstr(ur_model_error(), "no head_w or head"));
        ur_tape_free(tp);
        ur_params_free(d.ps);
    }
}
END_TEST

START_TEST(test_cut_at_max_len)
{
    dec d;
    dec_init(&d, 2, 8, -40.0f); /* the end token is (almost) never chosen */
    ur_beam *bs = dec_beam(&d, 2, 0.0f, N);
    ck_assert_int_eq(ur_beam_decode(bs, 2, (ur_state){NULL, NULL}, 3), 0);
    for (int i = 0; i < 2; i++) {
        ur_beam_hyp h = ur_beam_best(bs, i);
        ck_assert_int_eq(h.len, 3);
        ck_assert_int_eq(h.ended, 0);
        ck_assert(h.logprob < 0 && h.score == h.logprob);
    }
    ck_assert_ptr_null(ur_beam_best(bs, 2).tokens); /* only 2 decoded */
    ur_beam_free(bs);
    ur_params_free(d.ps);
}
END_TEST

START_TEST(test_beam_errors)
{
    dec d;
    dec_init(&d, 0, 9, 0.0f);
    ur_beam_opts o = {.width = 2, .start = START, .end = END, .max_len = MAXLEN, .embed = d.E,
                      .head_w = d.W, .head_b = d.b};
    ur_beam_opts bad = o;
    bad.width = 0;
    ck_assert_ptr_null(ur_beam_new(&d.cell, &bad, 4));
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "width"));
    bad = o;
    bad.end = V;
    ck_assert_ptr_null(ur_beam_new(&d.cell, &bad, 4));
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "end token 5 in [0, 5)"));
    bad = o;
    bad.head_w = d.E; /* V x E: not hidden x V */
    bad.head_b = NULL;
    ck_assert_ptr_null(ur_beam_new(&d.cell, &bad, 4));
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "W of 6 x V"));
    bad = o;
    bad.embed = NULL; /* one-hot would need in_dim V */
    ck_assert_ptr_null(ur_beam_new(&d.cell, &bad, 4));
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "takes 4 features"));
    bad = o;
    bad.head_w = NULL;
    ck_assert_ptr_null(ur_beam_new(&d.cell, &bad, 4));
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "output layer"));
    ck_assert_ptr_null(ur_beam_new(NULL, &o, 4));

    ur_beam *bs = ur_beam_new(&d.cell, &o, 4);
    ck_assert_ptr_nonnull(bs);
    ck_assert_ptr_null(ur_beam_error(bs));
    ck_assert_int_eq(ur_beam_decode(bs, 5, (ur_state){NULL, NULL}, 0), -1);
    ck_assert_ptr_nonnull(strstr(ur_beam_error(bs), "1 to 4 examples"));
    ck_assert_int_eq(ur_beam_decode(bs, 2, (ur_state){NULL, NULL}, MAXLEN + 1), -1);
    ur_tape *tp = ur_tape_new(0);
    ck_assert_int_eq(ur_beam_decode(bs, 2, (ur_state){ur_input(tp, 3, HID), NULL}, 0), -1);
    ck_assert_ptr_nonnull(strstr(ur_beam_error(bs), "initial h is 3x6, expected 2x6"));
    ck_assert_int_eq(ur_beam_decode(bs, 2, (ur_state){NULL, NULL}, 0), 0);
    ck_assert_ptr_null(ur_beam_error(bs));
    ur_tape_free(tp);
    ur_beam_free(bs);
    ur_beam_free(NULL);
    ur_params_free(d.ps);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("beam");
    TCase *tc = tcase_create("beam");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_width1_is_greedy);
    tcase_add_test(tc, test_beam_beats_greedy);
    tcase_add_test(tc, test_length_normalisation);
    tcase_add_test(tc, test_wide_beam_is_exhaustive);
    tcase_add_test(tc, test_batch_equals_alone);
    tcase_add_test(tc, test_input_feeding);
    tcase_add_test(tc, test_cut_at_max_len);
    tcase_add_test(tc, test_beam_errors);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
