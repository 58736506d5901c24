/* Unrolling: call a cell T times over a time-stacked sequence with the same parameters.
 *
 * The unroll computes what the cell declared (ur_cell): each input projection x W + b for
 * all T steps with one GEMM, before the recurrence; each recurrent product h_{t-1} U + c at
 * step t through ops/recurrent.c, which computes U's gradient as one GEMM over all steps. A
 * product fused into a projection is accumulated in the projection's own rows: the unroll
 * made that tensor and hands the step only the sum, so nothing else ever reads the partial
 * values, and no declaration can make this wrong.
 *
 * Uneven lengths (ur_unroll_opts.lengths): every row runs at every step. A step where every
 * row is real records exactly what an unroll without lengths does (h made in its rows of H).
 * At a step where some rows are past their length, the step makes h apart, the state goes
 * through ur_select_rows (the new state for the real rows, the previous one for the others)
 * and the output, zero past the length, is written into the step's rows of H by
 * ur_mask_rows_into; a step where no row is real keeps the previous state as it is. Nothing
 * is stacked at the end. The carry reads only what a step returned, never the projection
 * rows a step may overwrite in place (the LSTM's gate activations), so such steps stay
 * correct: a finished row's gradient is zero from its step's output down.
 *
 * The recurrent weights' gradients read h_{t-1} from H where the state carried into step t is
 * H's block t-1 itself (after a step where every row was real, as without lengths); after a
 * step with a carry, the state is select's output, not H's (masked) rows, and the recurrent
 * context keeps a copy of it (ops/recurrent.c), so the gradient is exact either way. */
#include "models/ur_models.h"

#include <stdio.h>
#include <string.h>

#include "models/lengths.h"

static const char *kind_of(const ur_cell *cell) { return cell->kind ? cell->kind : "cell"; }

/* A zero state of the right shape for a missing initial h or c (models/lengths.h). */
ur_tensor *ur_initial_or_zeros(ur_tape *tp, ur_tensor *given, int rows, int cols, const char *op,
                               const char *what)
{
    if (!given) return ur_input(tp, rows, cols);
    char name[96];
    snprintf(name, sizeof name, "%s: initial %s", op, what);
    if (!ur_op_begin(tp, name, 1, given)) return NULL;
    if (given->rows != rows || given->cols != cols) {
        ur_tape_fail(tp, "%s: initial %s is %dx%d, expected %dx%d", op, what, given->rows,
                     given->cols, rows, cols);
        return NULL;
    }
    return given;
}

/* Checks the declarations against the cell's sizes; 0, or -1 with the tape failed. */
static int check_cell(ur_tape *tp, const ur_cell *cell, const char *op)
{
    if (cell->in_dim <= 0 || cell->hidden <= 0) {
        ur_tape_fail(tp, "%s: the cell's sizes must be positive, got in_dim %d, hidden %d", op,
                     cell->in_dim, cell->hidden);
        return -1;
    }
    if (cell->n_proj < 0 || cell->n_proj > UR_CELL_MAX_PROJ || cell->n_rec < 0 ||
        cell->n_rec > UR_CELL_MAX_REC) {
        ur_tape_fail(tp, "%s: %d projections and %d recurrent products declared; at most %d "
                     "and %d", op, cell->n_proj, cell->n_rec, UR_CELL_MAX_PROJ, UR_CELL_MAX_REC);
        return -1;
    }
    for (int k = 0; k < cell->n_proj; k++) {
        const ur_cell_proj *d = &cell->proj[k];
        if (!d->w || d->w->rows != cell->in_dim ||
            (d->b && (d->b->rows != 1 || d->b->cols != d->w->cols))) {
            ur_tape_fail(tp, "%s: projection %d needs W of %d x n and b of 1 x n or NULL; got "
                         "W %dx%d, b %dx%d", op, k, cell->in_dim, d->w ? d->w->rows : 0,
                         d->w ? d->w->cols : 0, d->b ? d->b->rows : 0, d->b ? d->b->cols : 0);
            return -1;
        }
    }
    if (cell->h_over && (cell->n_proj < 1 || cell->proj[0].w->cols != cell->hidden)) {
        ur_tape_fail(tp, "%s: h_over needs projection 0 of width hidden (%d); %s", op,
                     cell->hidden, cell->n_proj < 1 ? "none is declared" : "it has another");
        return -1;
    }
    for (int j = 0; j < cell->n_rec; j++) {
        const ur_cell_rec *d = &cell->rec[j];
        if (!d->w || d->w->rows != cell->hidden ||
            (d->b && (d->b->rows != 1 || d->b->cols != d->w->cols))) {
            ur_tape_fail(tp, "%s: recurrent product %d needs U of %d x n and c of 1 x n or NULL; "
                         "got U %dx%d, c %dx%d", op, j, cell->hidden, d->w ? d->w->rows : 0,
                         d->w ? d->w->cols : 0, d->b ? d->b->rows : 0, d->b ? d->b->cols : 0);
            return -1;
        }
        if (d->into < -1 || d->into >= cell->n_proj ||
            (d->into >= 0 && cell->proj[d->into].w->cols != d->w->cols)) {
            ur_tape_fail(tp, "%s: recurrent product %d is fused into projection %d, which %s", op,
                         j, d->into, d->into < -1 || d->into >= cell->n_proj
                                         ? "is not declared" : "has another width");
            return -1;
        }
        for (int i = 0; i < j; i++)
            if (d->into >= 0 && cell->rec[i].into == d->into) {
                ur_tape_fail(tp, "%s: recurrent products %d and %d are both fused into "
                             "projection %d; fuse one and keep the other apart", op, i, j, d->into);
                return -1;
            }
    }
    if (!(cell->in_dropout >= 0.0f && cell->in_dropout < 1.0f) ||
        !(cell->rec_dropout >= 0.0f && cell->rec_dropout < 1.0f)) {
        ur_tape_fail(tp, "%s: dropout must be in [0, 1), got in_dropout %g, rec_dropout %g", op,
                     (double)cell->in_dropout, (double)cell->rec_dropout);
        return -1;
    }
    if ((cell->in_dropout > 0.0f || cell->rec_dropout > 0.0f) && !cell->rng) {
        ur_tape_fail(tp, "%s: variational dropout needs the cell's rng", op);
        return -1;
    }
    return 0;
}

/* A rows x cols inverted-dropout mask (0 or 1 / (1 - p)), each row repeated `times` times
 * one block after another: row b of every block is sequence b's mask. */
static ur_tensor *sequence_mask(ur_tape *tp, int rows, int cols, int times, float p, ur_rng *rng)
{
    ur_tensor *m = ur_input(tp, rows * times, cols);
    if (ur_tape_error(tp)) return NULL;
    const float keep = 1.0f / (1.0f - p);
    size_t n = (size_t)rows * (size_t)cols;
    for (size_t k = 0; k < n; k++) m->val[k] = ur_rng_uniform(rng) < p ? 0.0f : keep;
    for (int t = 1; t < times; t++) memcpy(m->val + (size_t)t * n, m->val, n * sizeof(float));
    return m;
}

int ur_lengths_check(ur_tape *tp, const char *op, const int *lengths, int B, int T,
                     int allow_empty)
{
    int lo = allow_empty ? 0 : 1;
    for (int b = 0; b < B; b++)
        if (lengths[b] < lo || lengths[b] > T) {
            ur_tape_fail(tp, "%s: sequence %d has length %d, outside [%d, %d] (the input has %d "
                         "steps%s)", op, b, lengths[b], lo, T, T,
                         !allow_empty && lengths[b] == 0 ? "; an empty sequence is an error" : "");
            return -1;
        }
    return 0;
}

/* H for a cell whose h overwrites projection p's rows: a tensor of its own (its gradient is
 * apart from p's) over p's values. */
static ur_tensor *stacked_over(ur_tape *tp, const ur_tensor *p)
{
    ur_tensor *H = ur_tensor_header(tp);
    if (!H) return NULL;
    H->rows = p->rows;
    H->cols = p->cols;
    H->val = p->val;
    return H;
}

/* With H over projection p: the step's ops, recorded after mark, may read p only through one
 * op that has it as its only input and writes h_out (ur_tanh_into, in place): any other
 * would read, in backward, rows that now hold h. NULL, or the first op that breaks this. */
static const ur_node *reads_over(const ur_tape *tp, const ur_node *mark, const ur_tensor *p,
                                 const ur_tensor *h_out)
{
    for (const ur_node *nd = ur_tape_last(tp); nd && nd != mark; nd = nd->prev) {
        if (nd->n_in == 1 && nd->out == h_out) continue;
        for (int i = 0; i < nd->n_in; i++)
            if (ur_tensor_root(nd->in[i]) == p) return nd;
    }
    return NULL;
}

/* The carried state at a step where only some rows are real (m: the step's mask). */
static ur_state carry(ur_tape *tp, ur_tensor *m, ur_state fresh, ur_state prev)
{
    ur_state s = {ur_select_rows(tp, m, fresh.h, prev.h), NULL};
    if (fresh.c) s.c = ur_select_rows(tp, m, fresh.c, prev.c);
    return s;
}

int ur_unroll(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T, ur_state init,
              int reverse, ur_seq *out)
{
    ur_unroll_opts opts = {.reverse = reverse};
    return ur_unroll_with(tp, cell, x_all, T, init, &opts, out);
}

int ur_unroll_with(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T, ur_state init,
                   const ur_unroll_opts *opts, ur_seq *out)
{
    static const ur_unroll_opts plain = {0};
    if (!opts) opts = &plain;
    if (opts->checkpoint && opts->checkpoint->interval != 0)
        return ur_checkpointed_unroll(tp, cell, x_all, T, init, opts, out);
    int reverse = opts->reverse;
    if (!ur_op_begin(tp, "unroll", 1, x_all)) return -1;
    if (!cell || !cell->step || !out) {
        ur_tape_fail(tp, "unroll: cell, its step function and the output must not be NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    const char *kind = kind_of(cell);
    char op[64];
    snprintf(op, sizeof op, "unroll(%s)", kind);
    if (check_cell(tp, cell, op) != 0) return -1;
    if (T <= 0 || x_all->rows % T != 0) {
        ur_tape_fail(tp, "%s: %d steps do not divide the %dx%d input", op, T, x_all->rows,
                     x_all->cols);
        return -1;
    }
    if (x_all->cols != cell->in_dim) {
        ur_tape_fail(tp, "%s: input is %dx%d but the cell takes %d features", op, x_all->rows,
                     x_all->cols, cell->in_dim);
        return -1;
    }
    int B = x_all->rows / T;
    int *lengths = NULL;
    ur_tensor *mask = NULL;
    if (opts->lengths) {
        if (ur_lengths_check(tp, op, opts->lengths, B, T, opts->allow_empty) != 0) return -1;
        lengths = ur_tape_alloc(tp, (size_t)B * sizeof *lengths);
        if (!lengths) return -1;
        memcpy(lengths, opts->lengths, (size_t)B * sizeof *lengths);
        mask = ur_length_mask(tp, T, B, lengths);
    }
    ur_state s = {ur_initial_or_zeros(tp, init.h, B, cell->hidden, op, "h"), NULL};
    if (cell->has_c) s.c = ur_initial_or_zeros(tp, init.c, B, cell->hidden, op, "c");
    if (!s.h || (cell->has_c && !s.c)) return -1;

    /* Projections for all steps, then one recurrent context per product: fused ones
     * accumulate into their projection, the others into a tensor of their own that starts
     * at the bias (or zero); all in place. */
    ur_tape_set_context(tp, kind, -1);
    ur_tensor *rec_mask = NULL;
    if (cell->in_dropout > 0.0f)
        x_all = ur_mul(tp, x_all, sequence_mask(tp, B, cell->in_dim, T, cell->in_dropout, cell->rng));
    if (cell->rec_dropout > 0.0f && cell->n_rec > 0)
        rec_mask = sequence_mask(tp, B, cell->hidden, 1, cell->rec_dropout, cell->rng);
    ur_tensor *P[UR_CELL_MAX_PROJ] = {0}, *Z[UR_CELL_MAX_REC] = {0};
    ur_recurrent *R[UR_CELL_MAX_REC] = {0};
    for (int k = 0; k < cell->n_proj; k++) {
        P[k] = ur_linear(tp, x_all, cell->proj[k].w, cell->proj[k].b);
        for (int j = 0; j < cell->n_rec; j++) /* a fused product's bias joins the projection */
            if (cell->rec[j].into == k && cell->rec[j].b) P[k] = ur_add_bias(tp, P[k], cell->rec[j].b);
    }
    /* The states are stacked into H as the steps make them (in place when the step computes
     * h into its rows); the recurrent products read h_{t-1} from H for their weights'
     * gradients, unless dropout masks it. With lengths, H holds the outputs (zero past a
     * row's length), which are the carried states wherever every row was real. Without
     * lengths, a cell whose h overwrites a projection (h_over) gets H over that projection's
     * values. */
    int over = !lengths && cell->h_over ? 0 : -1;
    ur_tensor *H = over >= 0 ? stacked_over(tp, P[over]) : ur_tensor_new(tp, T * B, cell->hidden);
    for (int j = 0; j < cell->n_rec; j++) {
        const ur_cell_rec *d = &cell->rec[j];
        if (d->into >= 0) Z[j] = P[d->into];
        else if (d->b) Z[j] = ur_repeat_rows(tp, d->b, T * B); /* accumulated in place too */
        else Z[j] = ur_input(tp, T * B, d->w->cols);
        R[j] = rec_mask ? ur_recurrent_begin(tp, d->w, T, B, Z[j])
                        : ur_recurrent_begin_states(tp, d->w, T, B, Z[j], H, reverse);
    }
    ur_tape_set_context(tp, NULL, -1);
    ur_state *states = ur_tape_alloc(tp, (size_t)T * sizeof *states);
    ur_tensor **hs = ur_tape_alloc(tp, (size_t)T * sizeof *hs);
    if (!states || !hs || ur_tape_error(tp)) return -1;
    for (int k = 0; k < T; k++) {
        int t = reverse ? T - 1 - k : k;
        ur_tape_set_context(tp, kind, t);
        /* t in the whole sequence, also when this is a checkpointed segment of it */
        int live = B; /* rows with a real step t */
        if (lengths) {
            live = 0;
            for (int b = 0; b < B; b++) live += t < lengths[b];
        }
        ur_tensor *h_rows = ur_rows(tp, H, t * B, B);
        ur_step_in in = {.t = t + ur_tape_step_offset(tp), .x = ur_rows(tp, x_all, t * B, B),
                         .h_out = live == B ? h_rows : NULL};
        for (int i = 0; i < cell->n_proj; i++) in.proj[i] = ur_rows(tp, P[i], t * B, B);
        ur_tensor *h_in = rec_mask && !ur_tape_error(tp) ? ur_mul(tp, s.h, rec_mask) : s.h;
        for (int j = 0; j < cell->n_rec; j++) {
            ur_tensor *y = ur_recurrent_addmm(tp, R[j], t, ur_rows(tp, Z[j], t * B, B), h_in);
            if (cell->rec[j].into >= 0) in.proj[cell->rec[j].into] = y;
            else in.rec[j] = y;
        }
        ur_state fresh = s;
        const ur_node *mark = ur_tape_last(tp);
        if (!ur_tape_error(tp)) fresh = cell->step(tp, cell, &in, s);
        const ur_node *bad = !ur_tape_error(tp) && over >= 0
                             ? reads_over(tp, mark, P[over], in.h_out) : NULL;
        if (bad && k == 0 && !in.h_out->node) {
            /* The first step reads the projection otherwise and wrote nothing over it (a
             * built-in cell's declarations with a user's step): H gets memory of its own. */
            H->val = ur_tape_alloc(tp, ur_numel(H) * sizeof(float));
            in.h_out = h_rows = H->val ? ur_rows(tp, H, t * B, B) : NULL;
            over = -1;
        } else if (bad) {
            ur_tape_fail(tp, "%s: step %d: %s reads projection 0, whose rows h_over gives to h; "
                         "only an op of that one input writing h_out (ur_tanh_into) may read it",
                         op, t, bad->op->name);
        }
        if (ur_tape_error(tp)) {
            ur_tape_set_context(tp, NULL, -1);
            return -1;
        }
        if (!fresh.h || (cell->has_c && !fresh.c)) {
            ur_tape_set_context(tp, NULL, -1);
            ur_tape_fail(tp, "%s: step %d returned a NULL %s", op, t, fresh.h ? "c" : "h");
            return -1;
        }
        if (live < B) {
            /* Rows past their length keep their state; the carry is recorded in the step's
             * context, so the non-finite trap names the step. */
            ur_tensor *m = ur_rows(tp, mask, t * B, B);
            if (live > 0) s = carry(tp, m, fresh, s); /* live 0: s stays as it was */
            hs[t] = ur_mask_rows_into(tp, fresh.h, m, h_rows);
        } else {
            if (fresh.h != h_rows) { /* the step made h elsewhere: copy it into H's rows */
                if (h_rows->node) {
                    ur_tape_set_context(tp, NULL, -1);
                    ur_tape_fail(tp, "%s: step %d wrote h_out but returned another h", op, t);
                    return -1;
                }
                fresh.h = ur_concat_rows_into(tp, 1, &fresh.h, h_rows);
            }
            s = fresh;
            hs[t] = s.h;
        }
        ur_tape_set_context(tp, NULL, -1);
        if (ur_tape_error(tp)) return -1;
        states[t] = s;
    }
    out->T = T;
    out->B = B;
    out->states = states;
    out->last = s;
    /* Every hs[t] already is its row block of H: no copy. */
    out->H = ur_concat_rows_into(tp, T, hs, H);
    out->lengths = lengths;
    out->mask = mask;
    return ur_tape_error(tp) ? -1 : 0;
}

int ur_unroll_steps(ur_tape *tp, const ur_cell *cell, int T, ur_tensor *const *x, ur_state init,
                    int reverse, ur_seq *out)
{
    if (!ur_op_begin(tp, "unroll_steps", 0)) return -1;
    ur_tensor *x_all = ur_concat_rows(tp, T, x);
    if (ur_tape_error(tp)) return -1;
    return ur_unroll(tp, cell, x_all, T, init, reverse, out);
}

ur_state ur_cell_step(ur_tape *tp, const ur_cell *cell, ur_tensor *x, ur_state prev)
{
    ur_state bad = {ur_tape_poison(tp), NULL};
    if (!ur_op_begin(tp, "cell_step", 1, x)) return bad;
    if (!cell || !cell->step) {
        ur_tape_fail(tp, "cell_step: the cell and its step function must not be NULL");
        return bad;
    }
    char op[64];
    snprintf(op, sizeof op, "cell_step(%s)", kind_of(cell));
    if (check_cell(tp, cell, op) != 0) return bad;
    if (x->cols != cell->in_dim) {
        ur_tape_fail(tp, "%s: input is %dx%d but the cell takes %d features", op, x->rows,
                     x->cols, cell->in_dim);
        return bad;
    }
    ur_state s = {ur_initial_or_zeros(tp, prev.h, x->rows, cell->hidden, op, "h"), NULL};
    if (cell->has_c) s.c = ur_initial_or_zeros(tp, prev.c, x->rows, cell->hidden, op, "c");
    if (!s.h || (cell->has_c && !s.c)) return bad;
    ur_tape_set_context(tp, kind_of(cell), -1);
    ur_step_in in = {.t = -1, .x = x};
    for (int k = 0; k < cell->n_proj; k++)
        in.proj[k] = ur_linear(tp, x, cell->proj[k].w, cell->proj[k].b);
    for (int j = 0; j < cell->n_rec; j++) {
        const ur_cell_rec *d = &cell->rec[j];
        if (d->into >= 0) {
            ur_tensor *p = in.proj[d->into];
            if (d->b) p = ur_add_bias(tp, p, d->b);
            in.proj[d->into] = ur_addmm(tp, p, s.h, d->w);
        } else {
            in.rec[j] = ur_linear(tp, s.h, d->w, d->b);
        }
    }
    ur_state out = ur_tape_error(tp) ? bad : cell->step(tp, cell, &in, s);
    ur_tape_set_context(tp, NULL, -1);
    if (ur_tape_error(tp)) return bad;
    if (!out.h || (cell->has_c && !out.c)) {
        ur_tape_fail(tp, "%s: the step returned a NULL %s", op, out.h ? "c" : "h");
        return bad;
    }
    return out;
}

ur_tensor *ur_cell_param(const ur_cell *cell, const char *name)
{
    if (!cell || !name) return NULL;
    size_t n = strlen(name);
    for (int k = 0; k < cell->n_params && k < UR_CELL_MAX_PARAMS; k++) {
        const ur_tensor *p = cell->p[k];
        if (!p || !p->name) continue;
        size_t len = strlen(p->name);
        if (len > n && p->name[len - n - 1] == '.' && strcmp(p->name + len - n, name) == 0)
            return cell->p[k];
        if (len == n && strcmp(p->name, name) == 0) return cell->p[k];
    }
    return NULL;
}
