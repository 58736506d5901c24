/* Beam search over any cell and output layer.
 *
 * Shapes: N examples, k = beam width, V = vocabulary, Hd = the cell's hidden width. Slot
 * s = i*k + j is beam j of example i; every step runs all N*k slots through the cell and the
 * head as one batch (ur_cell_step: one GEMM per declared product), so the GEMMs keep their
 * shape whatever is alive, and the tape (reset every step) and every buffer are sized once.
 *
 * The search, per example (a "shrinking" beam, so that width 1 is greedy decoding exactly):
 *     live = {start}, with log-probability 0; finished = {}
 *     at step t: candidates = every live beam extended by every token, scored by
 *                log P(beam) + log softmax(logits)[token];
 *                keep the best k - |finished| of them (ties: lower beam, then lower token);
 *                those ending in the end token join finished, the others are the new live
 *     until nothing is live, or at max_len the live beams join finished unended.
 * The answer is the finished hypothesis of the best score = log P / len^alpha (len counts
 * the end token; alpha 0: log P itself). The search also stops once no live beam can beat
 * the best finished one: log P only falls as a beam grows, so a live beam's final score is
 * at most log P(beam) / max_len^alpha (log P <= 0), and this bound loses nothing.
 *
 * Input feeding (opts feed > 0): the head also returns a vector per slot (F wide) that joins
 * the next step's input, x_t = [embed(token) | f_{t-1}], f_{-1} = 0. It is part of a beam's
 * state: it moves with the beam exactly as h and c do. */
#include "models/ur_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WIDTH 4096

/* A candidate extension: beam `slot` of the example, followed by `token`. */
typedef struct cand {
    double logp;
    int slot, token;
} cand;

struct ur_beam {
    const ur_cell *cell;
    ur_beam_opts o;
    int V, Hd, F, cap, k;   /* vocabulary, hidden width, feed width, max examples, width */
    ur_tape *tp;
    float *h, *c, *h2, *c2; /* cap*k x Hd: the slots' states, and the next step's */
    float *f, *f2;          /* cap*k x F: the slots' fed-back vectors (input feeding) */
    int *tok, *tok2;        /* cap*k: each slot's last token (the next step's input) */
    double *logp, *logp2;   /* cap*k: each slot's log-probability; -inf: not live */
    int *hist, *parent;     /* max_len x cap*k: token appended at step t, slot it extended */
    cand *cands;            /* k: the best extensions of one example */
    double *lsm;            /* V: one row's log-softmax */
    /* finished hypotheses: k per example */
    int *fin_tok;           /* cap*k x max_len */
    int *fin_len, *fin_ended, *n_fin, *live, *done;
    double *fin_logp, *fin_score;
    int n;                  /* examples of the last decode */
    char err[256];
};

void ur_beam_free(ur_beam *bs)
{
    if (!bs) return;
    ur_tape_free(bs->tp);
    free(bs->h);
    free(bs->c);
    free(bs->h2);
    free(bs->c2);
    free(bs->f);
    free(bs->f2);
    free(bs->tok);
    free(bs->tok2);
    free(bs->logp);
    free(bs->logp2);
    free(bs->hist);
    free(bs->parent);
    free(bs->cands);
    free(bs->lsm);
    free(bs->fin_tok);
    free(bs->fin_len);
    free(bs->fin_ended);
    free(bs->n_fin);
    free(bs->live);
    free(bs->done);
    free(bs->fin_logp);
    free(bs->fin_score);
    free(bs);
}

ur_beam *ur_beam_new(const ur_cell *cell, const ur_beam_opts *opts, int max_batch)
{
    ur_model_clear_error();
    if (!cell || !cell->step || !opts) {
        ur_model_fail("beam_new: the cell, its step function and the options must not be NULL");
        return NULL;
    }
    const ur_beam_opts *o = opts;
    int V = o->head_w ? o->head_w->cols : o->vocab;
    if (o->feed < 0 || o->feed > (1 << 20) || (o->feed > 0) != (o->head_feed != NULL) ||
        (o->feed > 0 && (o->head_w || o->head))) {
        ur_model_fail("beam_new: input feeding needs feed in [1, %d] with head_feed (and no "
                      "head_w or head), and feed 0 without; got feed %d, head_feed %s, head_w %s,"
                      " head %s", 1 << 20, o->feed, o->head_feed ? "set" : "NULL",
                      o->head_w ? "set" : "NULL", o->head ? "set" : "NULL");
        return NULL;
    }
    if (!o->head_w && !o->head && !o->head_feed) {
        ur_model_fail("beam_new: needs an output layer: head_w (and head_b) or a head callback");
        return NULL;
    }
    if (o->head_w && (o->head_w->rows != cell->hidden ||
                      (o->head_b && (o->head_b->rows != 1 || o->head_b->cols != V)))) {
        ur_model_fail("beam_new: the head needs W of %d x V and b of 1 x V; got W %dx%d, b %dx%d",
                      cell->hidden, o->head_w->rows, o->head_w->cols,
                      o->head_b ? o->head_b->rows : 0, o->head_b ? o->head_b->cols : 0);
        return NULL;
    }
    if (V < 1) {
        ur_model_fail("beam_new: a callback head needs vocab >= 1, got %d", V);
        return NULL;
    }
    int n_inputs = o->embed ? o->embed->rows : V, tok_dim = o->embed ? o->embed->cols : V;
    if (tok_dim + o->feed != cell->in_dim) {
        ur_model_fail("beam_new: the %s cell takes %d features but %s gives %d%s",
                      cell->kind ? cell->kind : "user", cell->in_dim,
                      o->embed ? "the embedding" : "a one-hot token (no embedding)", tok_dim,
                      o->feed ? " plus the fed-back vector's" : "");
        return NULL;
    }
    if (o->width < 1 || o->width > MAX_WIDTH || o->max_len < 1 || max_batch < 1 ||
        (size_t)max_batch * (size_t)o->width > ((size_t)1 << 24) || o->max_len > (1 << 20)) {
        ur_model_fail("beam_new: needs width in [1, %d], max_len in [1, %d] and max_batch >= 1 "
                      "(at most 2^24 slots); got width %d, max_len %d, max_batch %d",
                      MAX_WIDTH, 1 << 20, o->width, o->max_len, max_batch);
        return NULL;
    }
    if (o->start < 0 || o->start >= n_inputs || o->end < 0 || o->end >= V) {
        ur_model_fail("beam_new: start token %d must be in [0, %d) and end token %d in [0, %d)",
                      o->start, n_inputs, o->end, V);
        return NULL;
    }
    if (!(o->length_alpha >= 0.0f && o->length_alpha <= 10.0f)) {
        ur_model_fail("beam_new: length_alpha %g is outside [0, 10]", (double)o->length_alpha);
        return NULL;
    }
    ur_beam *bs = calloc(1, sizeof *bs);
    if (!bs) {
        ur_model_fail("beam_new: out of memory");
        return NULL;
    }
    bs->cell = cell;
    bs->o = *o;
    bs->V = V;
    bs->Hd = cell->hidden;
    bs->F = o->feed;
    bs->cap = max_batch;
    bs->k = o->width;
    size_t slots = (size_t)max_batch * (size_t)o->width, hd = (size_t)cell->hidden;
    size_t steps = (size_t)o->max_len;
    bs->tp = ur_tape_new(0);
    bs->h = calloc(slots * hd, sizeof *bs->h);
    bs->h2 = calloc(slots * hd, sizeof *bs->h2);
    if (cell->has_c) {
        bs->c = calloc(slots * hd, sizeof *bs->c);
        bs->c2 = calloc(slots * hd, sizeof *bs->c2);
    }
    if (bs->F) {
        bs->f = calloc(slots * (size_t)bs->F, sizeof *bs->f);
        bs->f2 = calloc(slots * (size_t)bs->F, sizeof *bs->f2);
    }
    bs->tok = calloc(slots, sizeof *bs->tok);
    bs->tok2 = calloc(slots, sizeof *bs->tok2);
    bs->logp = calloc(slots, sizeof *bs->logp);
    bs->logp2 = calloc(slots, sizeof *bs->logp2);
    bs->hist = calloc(steps * slots, sizeof *bs->hist);
    bs->parent = calloc(steps * slots, sizeof *bs->parent);
    bs->cands = calloc((size_t)o->width, sizeof *bs->cands);
    bs->lsm = calloc((size_t)V, sizeof *bs->lsm);
    bs->fin_tok = calloc(slots * steps, sizeof *bs->fin_tok);
    bs->fin_len = calloc(slots, sizeof *bs->fin_len);
    bs->fin_ended = calloc(slots, sizeof *bs->fin_ended);
    bs->fin_logp = calloc(slots, sizeof *bs->fin_logp);
    bs->fin_score = calloc(slots, sizeof *bs->fin_score);
    bs->n_fin = calloc((size_t)max_batch, sizeof *bs->n_fin);
    bs->live = calloc((size_t)max_batch, sizeof *bs->live);
    bs->done = calloc((size_t)max_batch, sizeof *bs->done);
    if (!bs->tp || !bs->h || !bs->h2 || (cell->has_c && (!bs->c || !bs->c2)) ||
        (bs->F && (!bs->f || !bs->f2)) || !bs->tok ||
        !bs->tok2 || !bs->logp || !bs->logp2 || !bs->hist || !bs->parent || !bs->cands ||
        !bs->lsm || !bs->fin_tok || !bs->fin_len || !bs->fin_ended || !bs->fin_logp ||
        !bs->fin_score || !bs->n_fin || !bs->live || !bs->done) {
        ur_beam_free(bs);
        ur_model_fail("beam_new: out of memory for %zu beams of %d steps", slots, o->max_len);
        return NULL;
    }
    return bs;
}

const char *ur_beam_error(const ur_beam *bs)
{
    return !bs ? "beam: NULL decoder" : bs->err[0] ? bs->err : NULL;
}

/* Copies n rows of init (NULL: zeros) into every beam of each example: rows i*k .. i*k+k-1. */
static void spread(float *dst, const ur_tensor *init, int n, int k, int Hd)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            float *d = dst + ((size_t)i * k + j) * Hd;
            if (init) memcpy(d, init->val + (size_t)i * Hd, (size_t)Hd * sizeof *d);
            else memset(d, 0, (size_t)Hd * sizeof *d);
        }
}

/* row's log-softmax into out (V); NaN logits count as -inf. */
static void log_softmax(const float *row, int V, double *out)
{
    double m = -INFINITY, s = 0.0;
    for (int v = 0; v < V; v++)
        if (row[v] > m) m = row[v];
    if (!(m > -INFINITY)) { /* nothing drawable */
        for (int v = 0; v < V; v++) out[v] = -INFINITY;
        return;
    }
    for (int v = 0; v < V; v++) s += row[v] == row[v] ? exp((double)row[v] - m) : 0.0;
    double lse = m + log(s);
    for (int v = 0; v < V; v++) out[v] = row[v] == row[v] ? (double)row[v] - lse : -INFINITY;
}

/* Inserts c into the best-first list of at most m (ties keep the earlier one). */
static void keep_best(cand *list, int *count, int m, cand c)
{
    if (!(c.logp > -INFINITY)) return;
    if (*count == m && !(c.logp > list[m - 1].logp)) return;
    int at = *count < m ? (*count)++ : m - 1;
    while (at > 0 && c.logp > list[at - 1].logp) {
        list[at] = list[at - 1];
        at--;
    }
    list[at] = c;
}

static double norm_score(double logp, int len, float alpha)
{
    return alpha == 0.0f ? logp : logp / pow((double)len, (double)alpha);
}

/* Records a finished hypothesis of example i: slot `from`'s tokens after step t - 1, then,
 * when ended, the end token at step t (not stored); len tokens counted for the score. */
static void finish(ur_beam *bs, int i, int t, int from, int ended, double logp)
{
    int slots = bs->cap * bs->k, f = i * bs->k + bs->n_fin[i]++;
    int *dst = bs->fin_tok + (size_t)f * bs->o.max_len, n = ended ? t : t + 1;
    /* from is a slot after step t - 1 (ended) or after step t (cut at max_len) */
    int s = from;
    for (int u = n - 1; u >= 0; u--) {
        dst[u] = bs->hist[(size_t)u * slots + s];
        s = bs->parent[(size_t)u * slots + s];
    }
    bs->fin_len[f] = n;
    bs->fin_ended[f] = ended;
    bs->fin_logp[f] = logp;
    bs->fin_score[f] = norm_score(logp, n + ended, bs->o.length_alpha);
}

/* The best finished score of example i, -inf if none. */
static double best_finished(const ur_beam *bs, int i)
{
    double b = -INFINITY;
    for (int f = 0; f < bs->n_fin[i]; f++) b = fmax(b, bs->fin_score[i * bs->k + f]);
    return b;
}

/* One step for example i: extends its live beams from the logits and moves the states (and
 * the fed-back vectors fed, NULL without input feeding). */
static void extend(ur_beam *bs, int i, int t, int max_len, const ur_tensor *logits, ur_state s,
                   const ur_tensor *fed)
{
    int k = bs->k, V = bs->V, Hd = bs->Hd, slots = bs->cap * k, m = k - bs->n_fin[i], count = 0;
    for (int j = 0; j < k; j++) {
        int slot = i * k + j;
        if (!(bs->logp[slot] > -INFINITY)) continue;
        log_softmax(logits->val + (size_t)slot * V, V, bs->lsm);
        for (int v = 0; v < V; v++)
            keep_best(bs->cands, &count, m, (cand){bs->logp[slot] + bs->lsm[v], slot, v});
    }
    int live = 0;
    for (int q = 0; q < count; q++) {
        cand c = bs->cands[q];
        if (c.token == bs->o.end) {
            finish(bs, i, t, c.slot, 1, c.logp);
            continue;
        }
        int to = i * k + live++;
        bs->hist[(size_t)t * slots + to] = c.token;
        bs->parent[(size_t)t * slots + to] = c.slot;
        bs->tok2[to] = c.token;
        bs->logp2[to] = c.logp;
        memcpy(bs->h2 + (size_t)to * Hd, s.h->val + (size_t)c.slot * Hd,
               (size_t)Hd * sizeof(float));
        if (bs->c2)
            memcpy(bs->c2 + (size_t)to * Hd, s.c->val + (size_t)c.slot * Hd,
                   (size_t)Hd * sizeof(float));
        if (fed)
            memcpy(bs->f2 + (size_t)to * bs->F, fed->val + (size_t)c.slot * bs->F,
                   (size_t)bs->F * sizeof(float));
    }
    for (int j = live; j < k; j++) { /* empty slots: no beam, a valid input token */
        bs->logp2[i * k + j] = -INFINITY;
        bs->tok2[i * k + j] = bs->o.start;
    }
    bs->live[i] = live;
    if (t + 1 == max_len) /* out of steps: the live beams end unended */
        for (int j = 0; j < live; j++) finish(bs, i, t, i * k + j, 0, bs->logp2[i * k + j]);
    double bound = -INFINITY;
    for (int j = 0; j < live; j++)
        bound = fmax(bound, norm_score(bs->logp2[i * k + j], max_len, bs->o.length_alpha));
    if (t + 1 == max_len || live == 0 || best_finished(bs, i) >= bound) bs->done[i] = 1;
}

int ur_beam_decode(ur_beam *bs, int n, ur_state init, int max_len)
{
    if (!bs) return -1;
    bs->err[0] = '\0';
    bs->n = 0;
    int k = bs->k, Hd = bs->Hd, rows = n * k;
    if (max_len == 0) max_len = bs->o.max_len;
    if (n < 1 || n > bs->cap || max_len < 1 || max_len > bs->o.max_len) {
        snprintf(bs->err, sizeof bs->err, "beam_decode: needs 1 to %d examples and max_len in "
                 "[1, %d]; got %d and %d", bs->cap, bs->o.max_len, n, max_len);
        return -1;
    }
    const ur_tensor *given[2] = {init.h, bs->cell->has_c ? init.c : NULL};
    for (int q = 0; q < 2; q++)
        if (given[q] && (given[q]->rows != n || given[q]->cols != Hd || !given[q]->val)) {
            snprintf(bs->err, sizeof bs->err, "beam_decode: initial %s is %dx%d, expected %dx%d",
                     q ? "c" : "h", given[q]->rows, given[q]->cols, n, Hd);
            return -1;
        }
    for (int q = 0; q < 2; q++) {
        float *a = q ? bs->h2 : bs->h, *c = q ? bs->c2 : bs->c;
        spread(a, init.h, n, k, Hd);
        if (c) spread(c, init.c, n, k, Hd);
    }
    if (bs->F) memset(bs->f, 0, (size_t)rows * (size_t)bs->F * sizeof *bs->f);
    for (int s = 0; s < rows; s++) {
        bs->tok[s] = bs->o.start;
        bs->logp[s] = s % k == 0 ? 0.0 : -INFINITY; /* one live beam per example at first */
    }
    for (int i = 0; i < n; i++) bs->n_fin[i] = bs->done[i] = 0, bs->live[i] = 1;
    int left = n;
    for (int t = 0; t < max_len && left > 0; t++) {
        ur_tape *tp = bs->tp;
        ur_tape_reset(tp);
        ur_tensor *x;
        if (bs->o.embed) {
            x = ur_embedding(tp, bs->o.embed, bs->tok, rows);
        } else {
            x = ur_input(tp, rows, bs->V);
            if (!ur_tape_error(tp))
                for (int s = 0; s < rows; s++) x->val[(size_t)s * bs->V + bs->tok[s]] = 1.0f;
        }
        if (bs->F) {
            ur_tensor *in[2] = {x, ur_input_from(tp, rows, bs->F, bs->f)};
            x = ur_concat_cols(tp, 2, in);
        }
        ur_state prev = {ur_input_from(tp, rows, Hd, bs->h),
                         bs->c ? ur_input_from(tp, rows, Hd, bs->c) : NULL};
        ur_state s = ur_cell_step(tp, bs->cell, x, prev);
        ur_tensor *logits, *fed = NULL;
        if (bs->o.head_w) logits = ur_linear(tp, s.h, bs->o.head_w, bs->o.head_b);
        else if (bs->F) logits = bs->o.head_feed(tp, s.h, &fed, bs->o.head_ctx);
        else logits = bs->o.head(tp, s.h, bs->o.head_ctx);
        if (ur_tape_error(tp) || !logits || (bs->F && !fed)) {
            snprintf(bs->err, sizeof bs->err, "beam_decode: step %d: %s", t,
                     ur_tape_error(tp) ? ur_tape_error(tp)
                     : !logits         ? "the head returned NULL"
                                       : "the head gave no fed-back vector");
            return -1;
        }
        if (fed && (fed->rows != rows || fed->cols != bs->F)) {
            snprintf(bs->err, sizeof bs->err, "beam_decode: the head fed back %dx%d, expected "
                     "%dx%d", fed->rows, fed->cols, rows, bs->F);
            return -1;
        }
        if (logits->rows != rows || logits->cols != bs->V) {
            snprintf(bs->err, sizeof bs->err, "beam_decode: the head gave %dx%d logits, expected "
                     "%dx%d", logits->rows, logits->cols, rows, bs->V);
            return -1;
        }
        for (int i = 0; i < n; i++)
            if (!bs->done[i]) {
                extend(bs, i, t, max_len, logits, s, fed);
                left -= bs->done[i];
            } else { /* nothing live: keep the slots empty */
                for (int j = 0; j < k; j++) {
                    bs->logp2[i * k + j] = -INFINITY;
                    bs->tok2[i * k + j] = bs->o.start;
                }
            }
        float *f = bs->h; bs->h = bs->h2; bs->h2 = f;
        f = bs->c; bs->c = bs->c2; bs->c2 = f;
        f = bs->f; bs->f = bs->f2; bs->f2 = f;
        int *ti = bs->tok; bs->tok = bs->tok2; bs->tok2 = ti;
        double *d = bs->logp; bs->logp = bs->logp2; bs->logp2 = d;
    }
    bs->n = n;
    return 0;
}

ur_beam_hyp ur_beam_best(const ur_beam *bs, int i)
{
    ur_beam_hyp h = {NULL, 0, 0, -INFINITY, -INFINITY};
    if (!bs || i < 0 || i >= bs->n || bs->n_fin[i] == 0) return h;
    int best = i * bs->k;
    for (int f = 1; f < bs->n_fin[i]; f++)
        if (bs->fin_score[i * bs->k + f] > bs->fin_score[best]) best = i * bs->k + f;
    h.tokens = bs->fin_tok + (size_t)best * bs->o.max_len;
    h.len = bs->fin_len[best];
    h.ended = bs->fin_ended[best];
    h.logprob = bs->fin_logp[best];
    h.score = bs->fin_score[best];
    return h;
}
