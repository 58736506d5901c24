/* Memory-efficient BPTT: checkpointed unrolls (Chen et al. 2016, "Training deep nets with
 * sublinear memory cost"; Gruslys et al. 2016, "Memory-efficient backpropagation through time").
 *
 * Shapes: T steps, B sequences, I = cell->in_dim, Hd = cell->hidden, k the interval.
 *
 * Plain BPTT keeps every step's intermediates until backward: memory grows with T. Here the T
 * steps are cut into segments of k steps and the main tape records ONE node per segment:
 *
 *   forward   run the segment with ur_unroll on the tape's scratch tape, starting from the
 *             previous segment's last state; copy out what the rest of the graph may read
 *             (the segment's rows of H, len*B x Hd, and its last state, the checkpoint the
 *             next segment starts from); drop the scratch recording.
 *   backward  record the segment again on the scratch tape from the checkpointed state (now a
 *             leaf that requires a gradient), seed its outputs with the gradients they
 *             received (ur_backward_seeded) and back-propagate: the scratch ops add straight
 *             into the shared parameters' gradients; then pass the checkpoint's gradient (and
 *             x's) back to the main tape.
 *
 * The nodes are recorded in reading order, so the backward walk meets the last segment first;
 * by the time it reaches segment j, the gradient of j's last state is complete (what the loss
 * gave it plus what segment j + 1 passed back). What the main tape keeps: T/k checkpoints
 * (B x Hd, and c), one small node each, and H (T*B x Hd; not kept with last_only). What the
 * scratch tape holds at most: one segment's recording and its gradients. With k ~ sqrt(T) both
 * are O(sqrt(T)) besides H. The price is one more forward pass: every segment is recorded
 * twice.
 *
 * Same operations in the same order: a segment is the plain unroll over fewer steps, so the
 * forward values are the plain unroll's, and the gradients differ from plain BPTT's only where
 * a sum over all T steps (the batched projection's and the recurrent weights' GEMMs) is split
 * into one sum per segment: rounding, a few float ulps.
 *
 * Randomness: every segment, in forward and again in backward, starts the cell's rng from the
 * state it had when the unroll began. ur_unroll draws its variational dropout masks at its
 * start, one per sequence, so every segment draws the same masks as the plain unroll over the
 * whole sequence does, and the backward replays exactly what the forward computed. (A cell
 * that draws from its rng inside its step gets the same draws in each segment; its gradients
 * are still exact for what the forward computed.) */
#include "models/ur_models.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/lengths.h"

/* What every segment of one checkpointed unroll shares (on the main tape). */
typedef struct ckpt_run ckpt_run;

/* One segment: time steps [t0, t0 + len). */
typedef struct ckpt_seg {
    ckpt_run *run;
    int t0, len;
    int *lengths;     /* with lengths: each row's length cut to the segment, in [0, len]; NULL
                         when every row runs every step of it (as without lengths) */
} ckpt_seg;

/* A segment's recording on the scratch tape: its leaves and its unroll. */
typedef struct ckpt_rec {
    ur_tensor *h0, *c0, *xs;
    ur_seq seq;
} ckpt_rec;

struct ckpt_run {
    ur_cell cell;     /* the caller's cell, with rng pointing at `rng` below */
    ur_rng rng0;      /* the caller's rng when the unroll began: each segment starts from it */
    ur_rng rng;
    int T, B, reverse, last_only;
    int state_out;    /* 1: a segment's second output is its last state, h's rows then c's
                         (with lengths, where H's last rows are outputs, not the state); 0: c */
    double *norms;    /* T values: ||dL/dh_t||, written by the segments' backward */
    char op[64];      /* "unroll_checkpointed(<kind>)", for messages */
    /* The last segment's forward recording is still on the scratch tape when backward
     * reaches it first, unless something reset the scratch tape since: then it is used as it
     * is instead of being recorded again. */
    const ckpt_seg *kept;
    unsigned kept_gen;
    ckpt_rec kept_rec;
};

int ur_checkpoint_interval(int T, int interval)
{
    if (T <= 0) return 0;
    if (interval > 0) return interval < T ? interval : T;
    if (interval != UR_CHECKPOINT_AUTO) return 0;
    int k = (int)sqrt((double)T);
    while ((long)k * k < T) k++;
    return k;
}

/* Copies the scratch tape's error onto the main tape, naming the segment. */
static void fail_from_scratch(ur_tape *tp, ur_tape *sc, const ckpt_run *r, const ckpt_seg *s,
                              const char *when)
{
    ur_tape_fail(tp, "%s (in %s, the segment of steps %d..%d, %s)",
                 ur_tape_error(sc) ? ur_tape_error(sc) : "scratch tape failed", r->op, s->t0,
                 s->t0 + s->len - 1, when);
}

/* Resets the scratch tape sc and records segment s on it from the values of the state before
 * it (hp, cp) and of its rows of x (xv), as leaves that require a gradient where those do.
 * 0, or -1 with sc failed. */
static int record_segment(ur_tape *sc, const ckpt_seg *s, const ur_tensor *hp,
                          const ur_tensor *cp, const ur_tensor *xv, ckpt_rec *rec)
{
    ckpt_run *r = s->run;
    const int B = r->B, Hd = r->cell.hidden;
    ur_tape_reset(sc);
    rec->h0 = ur_input_from(sc, B, Hd, hp->val);
    rec->c0 = cp ? ur_input_from(sc, B, Hd, cp->val) : NULL;
    rec->xs = ur_input_from(sc, xv->rows, xv->cols, xv->val);
    if (ur_tape_error(sc)) return -1;
    if (hp->requires_grad) ur_requires_grad(rec->h0);
    if (cp && cp->requires_grad) ur_requires_grad(rec->c0);
    if (xv->requires_grad) ur_requires_grad(rec->xs);
    r->rng = r->rng0;
    ur_tape_set_step_offset(sc, s->t0);
    ur_unroll_opts o = {.reverse = r->reverse, .lengths = s->lengths, .allow_empty = 1};
    return ur_unroll_with(sc, &r->cell, rec->xs, s->len, (ur_state){rec->h0, rec->c0}, &o,
                          &rec->seq);
}

/* ||g||_2 of a B x Hd state's gradient, summed in double; 0 when nothing flowed into it. */
static double grad_norm(const ur_tensor *h)
{
    if (!h || !h->grad) return 0.0;
    double s = 0.0;
    for (size_t k = 0; k < ur_numel(h); k++) s += (double)h->grad[k] * h->grad[k];
    return sqrt(s);
}

/* dst += src over n values. */
static void add_into(float *dst, const float *src, size_t n)
{
    for (size_t k = 0; k < n; k++) dst[k] += src[k];
}

/* The node's inputs: in[0] = h before the segment, in[1] = c (cells with c), then the
 * segment's rows of x, then the parameters the segment's ops used. */
static void segment_backward(ur_node *n)
{
    ckpt_seg *s = n->aux;
    ckpt_run *r = s->run;
    ur_tape *tp = n->out->tape, *sc = ur_tape_scratch(tp);
    const int has_c = r->cell.has_c;
    ur_tensor *hp = n->in[0], *cp = has_c ? n->in[1] : NULL, *xv = n->in[1 + has_c];
    if (!sc) {
        ur_tape_fail(tp, "%s: out of memory for the scratch tape", r->op);
        return;
    }
    ckpt_rec rec;
    if (r->kept == s && ur_tape_generation(sc) == r->kept_gen) {
        rec = r->kept_rec; /* forward's recording of this segment is still there */
    } else if (record_segment(sc, s, hp, cp, xv, &rec) != 0) {
        fail_from_scratch(tp, sc, r, s, "recorded again in backward");
        return;
    }
    r->kept = NULL; /* back-propagated now: another backward must record it again */
    /* Seed what the main tape saw: H's rows (or the last h) and the last c, or with
     * state_out H's rows and the last state. */
    ur_tensor *outs[3];
    const float *seeds[3];
    int n_out = 0;
    ur_tensor *h_out = r->last_only ? rec.seq.last.h : rec.seq.H;
    if (h_out->requires_grad) {
        outs[n_out] = h_out;
        seeds[n_out++] = n->out->grad;
    }
    const size_t state = (size_t)r->B * (size_t)r->cell.hidden;
    if (r->state_out && rec.seq.last.h->requires_grad) {
        outs[n_out] = rec.seq.last.h;
        seeds[n_out++] = n->out2->grad;
    }
    if (has_c && n->out2 && rec.seq.last.c->requires_grad) {
        outs[n_out] = rec.seq.last.c;
        seeds[n_out++] = n->out2->grad + (r->state_out ? state : 0);
    }
    if (n_out == 0) return;
    /* The parameters' gradients of this segment are summed apart, from zero, and then added
     * in: the sums over time become sums of per-segment sums, whose rounding stays that of
     * plain BPTT's one long sum (adding a segment's small terms one by one to the large total
     * of the later segments would lose their low bits). */
    const int p0 = 2 + has_c, n_p = n->n_in - p0;
    size_t total = 0;
    for (int k = 0; k < n_p; k++) total += n->in[p0 + k]->grad ? ur_numel(n->in[p0 + k]) : 0;
    float **saved = ur_tape_alloc(sc, (size_t)(n_p > 0 ? n_p : 1) * sizeof *saved);
    float *apart = ur_tape_alloc(sc, (total > 0 ? total : 1) * sizeof *apart);
    if (!saved || !apart) {
        fail_from_scratch(tp, sc, r, s, "back-propagated");
        return;
    }
    memset(apart, 0, total * sizeof *apart);
    size_t at = 0;
    for (int k = 0; k < n_p; k++) {
        ur_tensor *p = n->in[p0 + k];
        saved[k] = p->grad;
        if (!p->grad) continue;
        p->grad = apart + at;
        at += ur_numel(p);
    }
    int rc = ur_backward_seeded(sc, n_out, outs, seeds);
    for (int k = 0; k < n_p; k++) {
        ur_tensor *p = n->in[p0 + k];
        if (!saved[k]) continue;
        const float *mine = p->grad;
        p->grad = saved[k];
        add_into(p->grad, mine, ur_numel(p));
    }
    if (rc != 0) {
        fail_from_scratch(tp, sc, r, s, "back-propagated");
        return;
    }
    for (int t = 0; t < s->len; t++) r->norms[s->t0 + t] = grad_norm(rec.seq.states[t].h);
    if (hp->requires_grad && rec.h0->grad) add_into(ur_grad(hp), rec.h0->grad, ur_numel(hp));
    if (cp && cp->requires_grad && rec.c0->grad) add_into(ur_grad(cp), rec.c0->grad, ur_numel(cp));
    if (xv->requires_grad && rec.xs->grad) add_into(ur_grad(xv), rec.xs->grad, ur_numel(xv));
}
static const ur_op segment_op = {"checkpoint_segment", segment_backward};

/* H's row blocks are the segments' outputs, views sharing its memory: their gradients are
 * already H's, so there is nothing to do. The node makes H an op's output like any other. */
static void join_backward(ur_node *n) { (void)n; }
static const ur_op join_op = {"checkpoint_join", join_backward};

/* Fills in[] with the inputs of the node of a segment just recorded on sc: the state before
 * it, its rows of x and every parameter its ops used (each once), found by walking the
 * scratch recording. Returns how many, or -1 with tp failed. */
static int segment_inputs(ur_tape *tp, ur_tape *sc, const ckpt_run *r, ur_state prev,
                          ur_tensor *xv, ur_tensor ***in_out)
{
    size_t cap = 3;
    for (ur_node *n = ur_tape_last(sc); n; n = n->prev) cap += (size_t)n->n_in + 1;
    ur_tensor **in = ur_tape_alloc(sc, cap * sizeof *in);
    if (!in) {
        ur_tape_fail(tp, "%s: %s", r->op, ur_tape_error(sc));
        return -1;
    }
    int n_in = 0;
    in[n_in++] = prev.h;
    if (r->cell.has_c) in[n_in++] = prev.c;
    in[n_in++] = xv;
    const int fixed = n_in;
    for (ur_node *n = ur_tape_last(sc); n; n = n->prev)
        for (int k = 0; k <= n->n_in; k++) {
            ur_tensor *t = k < n->n_in ? n->in[k] : n->uses;
            if (!t || t->tape || !t->requires_grad) continue;
            int seen = 0;
            for (int j = fixed; j < n_in && !seen; j++) seen = in[j] == t;
            if (!seen) in[n_in++] = t;
        }
    *in_out = in;
    return n_in;
}

int ur_unroll_checkpointed(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T,
                           ur_state init, int reverse, const ur_checkpoint *ck, ur_seq *out)
{
    ur_unroll_opts o = {.reverse = reverse, .checkpoint = ck};
    return ur_unroll_with(tp, cell, x_all, T, init, &o, out);
}

/* Each row's length cut to steps [t0, t0 + len) into cut (B values); 0 when every row runs
 * all of them. */
static int cut_lengths(const int *lengths, int B, int t0, int len, int *cut)
{
    int all = 1;
    for (int b = 0; b < B; b++) {
        int l = lengths[b] - t0;
        cut[b] = l < 0 ? 0 : l > len ? len : l;
        all &= cut[b] == len;
    }
    return !all;
}

int ur_checkpointed_unroll(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T,
                           ur_state init, const ur_unroll_opts *opts, ur_seq *out)
{
    const ur_checkpoint *ck = opts->checkpoint;
    const int reverse = opts->reverse;
    if (!ur_op_begin(tp, "unroll_checkpointed", 1, x_all)) return -1;
    if (!cell || !cell->step || !out) {
        ur_tape_fail(tp, "unroll_checkpointed: cell, its step function and the output must "
                     "not be NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    char op[64];
    snprintf(op, sizeof op, "unroll_checkpointed(%s)", cell->kind ? cell->kind : "cell");
    if (ck->interval < 0 && ck->interval != UR_CHECKPOINT_AUTO) {
        ur_tape_fail(tp, "%s: interval %d; expected k > 0, 0 (plain BPTT) or "
                     "UR_CHECKPOINT_AUTO", op, ck->interval);
        return -1;
    }
    if (T <= 0 || x_all->rows % T != 0) {
        ur_tape_fail(tp, "%s: %d steps do not divide the %dx%d input", op, T, x_all->rows,
                     x_all->cols);
        return -1;
    }
    if (cell->in_dim <= 0 || cell->hidden <= 0 || x_all->cols != cell->in_dim) {
        ur_tape_fail(tp, "%s: input is %dx%d but the cell takes %d features (hidden %d)", op,
                     x_all->rows, x_all->cols, cell->in_dim, cell->hidden);
        return -1;
    }
    const int B = x_all->rows / T, Hd = cell->hidden, has_c = cell->has_c != 0;
    const int k = ur_checkpoint_interval(T, ck->interval), n_seg = (T + k - 1) / k;
    const int full = !ck->last_only;
    int *lengths = NULL, *cuts = NULL;
    ur_tensor *mask = NULL;
    if (opts->lengths) {
        if (ur_lengths_check(tp, op, opts->lengths, B, T, opts->allow_empty) != 0) return -1;
        lengths = ur_tape_alloc(tp, (size_t)B * sizeof *lengths);
        cuts = ur_tape_alloc(tp, (size_t)n_seg * (size_t)B * sizeof *cuts);
        if (!lengths || !cuts) return -1;
        memcpy(lengths, opts->lengths, (size_t)B * sizeof *lengths);
        mask = ur_length_mask(tp, T, B, lengths);
    }
    /* With lengths, a segment's last rows of H are its outputs, not its state: the state is
     * an output of its own (h's rows, then c's). */
    const int state_out = lengths && full;
    ur_tape *sc = ur_tape_scratch(tp);
    if (!sc) {
        ur_tape_fail(tp, "%s: out of memory for the scratch tape", op);
        return -1;
    }
    ur_state prev = {ur_initial_or_zeros(tp, init.h, B, Hd, op, "h"), NULL};
    if (has_c) prev.c = ur_initial_or_zeros(tp, init.c, B, Hd, op, "c");
    if (!prev.h || (has_c && !prev.c)) return -1;

    ckpt_run *r = ur_tape_alloc(tp, sizeof *r);
    ckpt_seg *segs = ur_tape_alloc(tp, (size_t)n_seg * sizeof *segs);
    double *norms = ur_tape_alloc(tp, (size_t)T * sizeof *norms);
    ur_tensor **outs = full ? ur_tape_alloc(tp, (size_t)n_seg * sizeof *outs) : NULL;
    ur_state *states = full ? ur_tape_alloc(tp, (size_t)T * sizeof *states) : NULL;
    ur_tensor *H = full ? ur_tensor_new(tp, T * B, Hd) : NULL;
    if (ur_tape_error(tp)) return -1;
    memset(norms, 0, (size_t)T * sizeof *norms);
    *r = (ckpt_run){.cell = *cell, .T = T, .B = B, .reverse = reverse != 0,
                    .last_only = !full, .state_out = state_out, .norms = norms};
    if (cell->rng) {
        r->rng0 = *cell->rng;
        r->cell.rng = &r->rng;
    }
    memcpy(r->op, op, sizeof op);
    if (H) H->requires_grad = 1; /* its views, made before the join below, pass that on */

    for (int j = 0; j < n_seg; j++) {
        /* Reading positions [j k, j k + len); reversed, those are the last steps. */
        int len = T - j * k < k ? T - j * k : k;
        int t0 = reverse ? T - j * k - len : j * k;
        int t_last = reverse ? t0 : t0 + len - 1; /* the step read last */
        ckpt_seg *s = &segs[j];
        *s = (ckpt_seg){r, t0, len, NULL};
        if (lengths && cut_lengths(lengths, B, t0, len, cuts + (size_t)j * B))
            s->lengths = cuts + (size_t)j * B;
        ur_tensor *xv = ur_rows(tp, x_all, t0 * B, len * B);
        ur_tensor *h_out = full ? ur_rows(tp, H, t0 * B, len * B) : ur_tensor_new(tp, B, Hd);
        /* the second output: the last c, or with state_out the last state */
        ur_tensor *out2 = state_out ? ur_tensor_new(tp, (1 + has_c) * B, Hd)
                          : has_c ? ur_tensor_new(tp, B, Hd) : NULL;
        if (ur_tape_error(tp)) return -1;

        ckpt_rec rec;
        if (record_segment(sc, s, prev.h, prev.c, xv, &rec) != 0) {
            fail_from_scratch(tp, sc, r, s, "recorded in forward");
            return -1;
        }
        const ur_seq *seq = &rec.seq;
        const size_t state = (size_t)B * (size_t)Hd;
        if (full) memcpy(h_out->val, seq->H->val, ur_numel(h_out) * sizeof(float));
        else memcpy(h_out->val, seq->last.h->val, state * sizeof(float));
        if (state_out) memcpy(out2->val, seq->last.h->val, state * sizeof(float));
        if (has_c)
            memcpy(out2->val + (state_out ? state : 0), seq->last.c->val, state * sizeof(float));
        if (j == n_seg - 1) { /* backward starts with this one: keep its recording */
            r->kept = s;
            r->kept_gen = ur_tape_generation(sc);
            r->kept_rec = rec;
        }

        ur_tensor **in;
        int n_in = segment_inputs(tp, sc, r, prev, xv, &in);
        if (n_in < 0) return -1;
        ur_tape_set_context(tp, cell->kind, -1);
        ur_node *nd = ur_record_array(tp, &segment_op, h_out, n_in, in);
        if (nd) {
            nd->aux = s;
            if (out2) ur_record_second_output(nd, out2);
        }
        ur_tape_set_context(tp, NULL, -1);
        if (ur_tape_error(tp)) return -1;

        ur_tensor *h_last = state_out ? ur_rows(tp, out2, 0, B)
                            : full ? ur_rows(tp, H, t_last * B, B) : h_out;
        ur_tensor *c_out = !has_c ? NULL : state_out ? ur_rows(tp, out2, B, B) : out2;
        if (full) {
            outs[j] = h_out;
            for (int t = t0; t < t0 + len; t++)
                states[t] = (ur_state){t == t_last ? h_last : ur_rows(tp, H, t * B, B), NULL};
            states[t_last].c = c_out;
        }
        prev = (ur_state){h_last, c_out};
        if (ur_tape_error(tp)) return -1;
    }
    if (cell->rng) *cell->rng = r->rng; /* drawn as far as the plain unroll would have */
    if (full) {
        ur_tape_set_context(tp, cell->kind, -1);
        ur_record_array(tp, &join_op, H, n_seg, outs);
        ur_tape_set_context(tp, NULL, -1);
    }
    out->T = T;
    out->B = B;
    out->H = H;
    out->states = states;
    out->last = prev;
    out->grad_norms = norms;
    out->lengths = lengths;
    out->mask = mask;
    return ur_tape_error(tp) ? -1 : 0;
}

int ur_seq_grad_norms(const ur_seq *seq, double *norms)
{
    if (!seq || !norms || seq->T <= 0) return -1;
    if (seq->grad_norms) {
        memcpy(norms, seq->grad_norms, (size_t)seq->T * sizeof *norms);
        return 0;
    }
    if (!seq->states) return -1;
    for (int t = 0; t < seq->T; t++) norms[t] = grad_norm(seq->states[t].h);
    return 0;
}
