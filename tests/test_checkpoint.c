/* Checkpointed unrolls (models/checkpoint.c) against plain BPTT: the same forward values, the
 * same gradients (parameters, x, the initial state) within 1e-6 relative, the same
 * gradient-flow norms, for Elman, LSTM, GRU, stacked LSTM and bidirectional models, forward and
 * reversed, for intervals that divide T and that do not, with variational dropout; and the
 * tape's rules (once-only backward, retain, stale tensors, the non-finite trap) through the
 * scratch tape. Shapes: T steps, B sequences, IN inputs, HID hidden. */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

enum { T = 11, B = 3, IN = 4, HID = 5 };
#define REL 1e-6

typedef enum { M_ELMAN, M_LSTM, M_GRU, M_GRU_CHO, M_STACK, M_BIDIR } model_kind;

/* A model, its data, and leaves that require gradients (x and the initial state are copied
 * into parameters of their own so that their gradients can be compared like the others). */
typedef struct {
    model_kind kind;
    ur_params *ps;
    ur_cell cell[2];
    ur_stack st;
    ur_tensor *x, *h0, *c0;     /* parameters standing for x_all and the initial state */
    float r[T * B * 2 * HID];   /* weights of the loss on H */
    float rc[B * HID];          /* and on the last c / last h */
    ur_rng drop_rng;            /* dropout masks (reseeded before every run) */
    int dropout;
    int reverse;
    int linear_loss;            /* sum(H * R) only (for the finite-difference check) */
    int steps;                  /* 0: T; else the first steps steps of x only */
    const int *lengths;         /* B lengths (each <= steps), or NULL */
} fixture;

/* The steps a fixture runs. */
static int steps_of(const fixture *f) { return f->steps ? f->steps : T; }

static void fixture_init(fixture *f, model_kind kind, int dropout)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->dropout = dropout;
    ur_rng rng;
    ur_rng_seed(&rng, 7 + (uint64_t)kind);
    f->ps = ur_params_new();
    ur_cell_opts cho = {.gru_reset_before = 1};
    switch (kind) {
    case M_ELMAN: ck_assert_int_eq(ur_elman_cell(&f->cell[0], f->ps, "e", IN, HID, &rng), 0); break;
    case M_LSTM: ck_assert_int_eq(ur_lstm_cell(&f->cell[0], f->ps, "l", IN, HID, &rng), 0); break;
    case M_GRU: ck_assert_int_eq(ur_gru_cell(&f->cell[0], f->ps, "g", IN, HID, &rng), 0); break;
    case M_GRU_CHO:
        ck_assert_int_eq(ur_gru_cell_ex(&f->cell[0], f->ps, "g", IN, HID, &cho, &rng), 0);
        break;
    case M_STACK:
        ck_assert_int_eq(ur_lstm_cell(&f->cell[0], f->ps, "l0", IN, HID, &rng), 0);
        ck_assert_int_eq(ur_lstm_cell(&f->cell[1], f->ps, "l1", HID, HID, &rng), 0);
        break;
    case M_BIDIR:
        ck_assert_int_eq(ur_lstm_cell(&f->cell[0], f->ps, "fw", IN, HID, &rng), 0);
        ck_assert_int_eq(ur_gru_cell(&f->cell[1], f->ps, "bw", IN, HID, &rng), 0);
        break;
    }
    if (dropout)
        for (int l = 0; l < 2; l++) {
            f->cell[l].in_dropout = 0.25f;
            f->cell[l].rec_dropout = 0.2f;
            f->cell[l].rng = &f->drop_rng;
        }
    if (kind == M_STACK) ck_assert_int_eq(ur_stack_init(&f->st, 2, f->cell, dropout ? 0.3f : 0.0f,
                                                        &f->drop_rng), 0);
    f->x = ur_params_add(f->ps, "x", T * B, IN);
    f->h0 = ur_params_add(f->ps, "h0", B, HID);
    f->c0 = ur_params_add(f->ps, "c0", B, HID);
    ur_test_fill(f->x, &rng, -1.0f, 1.0f);
    ur_test_fill(f->h0, &rng, -0.5f, 0.5f);
    ur_test_fill(f->c0, &rng, -0.5f, 0.5f);
    for (int k = 0; k < T * B * 2 * HID; k++) f->r[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (int k = 0; k < B * HID; k++) f->rc[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
}

/* The loss sum(H * R) + sum(last * Rc) + sum(H^2) / 2 (last: c where the cell has one, else
 * h), recorded with checkpoint interval k (0: plain) and last_only; seq gets the first unroll.
 * last_only models read only the last state: sum(h_last * Rc) + sum(c_last * Rc). */
static ur_tensor *record(ur_tape *tp, fixture *f, int k, int last_only, ur_seq *seq)
{
    ur_rng_seed(&f->drop_rng, 99);
    ur_checkpoint ck = {k, last_only};
    ur_tensor *H = NULL;
    ur_state last = {NULL, NULL};
    ur_state init = {f->h0, f->cell[0].has_c ? f->c0 : NULL};
    const int Tn = steps_of(f);
    ur_tensor *x = Tn == T ? f->x : ur_rows(tp, f->x, 0, Tn * B);
    if (f->lengths) { /* lengths and checkpoints through the options */
        ur_unroll_opts o = {.reverse = f->reverse, .lengths = f->lengths, .checkpoint = &ck};
        if (f->kind == M_STACK) {
            ur_state inits[2] = {init, {f->h0, f->c0}};
            ur_stack_seq ss;
            if (ur_stack_unroll_with(tp, &f->st, x, Tn, inits, &o, &ss) != 0) return NULL;
            H = ss.H;
            last = ss.last[1];
            *seq = ss.layer[0];
        } else if (f->kind == M_BIDIR) {
            ur_bidir_seq bs;
            if (ur_bidir_unroll_with(tp, &f->cell[0], &f->cell[1], x, Tn, init,
                                     (ur_state){f->h0, NULL}, &o, &bs) != 0)
                return NULL;
            H = bs.H;
            last = bs.fw.last;
            *seq = bs.bw;
        } else {
            if (ur_unroll_with(tp, &f->cell[0], x, Tn, init, &o, seq) != 0) return NULL;
            H = seq->H;
            last = seq->last;
            ck_assert_ptr_nonnull(seq->mask);
            ck_assert_ptr_nonnull(seq->lengths);
            ck_assert_int_eq(seq->lengths[B - 1], f->lengths[B - 1]);
        }
    } else if (f->kind == M_STACK) {
        ur_state inits[2] = {init, {f->h0, f->c0}};
        ur_stack_seq ss;
        if (ur_stack_unroll_checkpointed(tp, &f->st, f->x, T, inits, &ck, &ss) != 0) return NULL;
        H = ss.H;
        last = ss.last[1];
        *seq = ss.layer[0];
    } else if (f->kind == M_BIDIR) {
        ur_bidir_seq bs;
        if (ur_bidir_unroll_checkpointed(tp, &f->cell[0], &f->cell[1], f->x, T, init,
                                         (ur_state){f->h0, NULL}, &ck, &bs) != 0)
            return NULL;
        H = bs.H;
        last = bs.fw.last;
        *seq = bs.bw;
    } else {
        if (ur_unroll_checkpointed(tp, &f->cell[0], f->x, T, init, f->reverse, &ck, seq) != 0)
            return NULL;
        H = seq->H;
        last = seq->last;
    }
    ur_tensor *rc = ur_input_from(tp, B, HID, f->rc);
    ur_tensor *loss = ur_sum(tp, ur_mul(tp, last.c ? last.c : last.h, rc));
    if (last_only) return ur_add(tp, loss, ur_sum(tp, ur_mul(tp, last.h, rc)));
    ur_tensor *r = ur_input_from(tp, H->rows, H->cols, f->r);
    if (f->linear_loss) return ur_sum(tp, ur_mul(tp, H, r));
    ur_tensor *quad = ur_scale(tp, ur_sum(tp, ur_mul(tp, H, H)), 0.5f);
    return ur_add(tp, ur_add(tp, ur_sum(tp, ur_mul(tp, H, r)), loss), quad);
}

/* Every parameter's gradient, concatenated in ur_params_at order (n floats). */
static float *grads(fixture *f, ur_tape *tp, int k, int last_only, double *loss, float **H,
                    double *norms)
{
    size_t n = ur_params_numel(f->ps);
    float *g = malloc(n * sizeof *g);
    ck_assert_ptr_nonnull(g);
    ur_tape_reset(tp);
    ur_seq seq;
    ur_tensor *l = record(tp, f, k, last_only, &seq);
    ck_assert_msg(l && !ur_tape_error(tp), "k = %d: %s", k, ur_tape_error(tp));
    ur_params_zero_grad(f->ps);
    ck_assert_msg(ur_backward(tp, l) == 0, "k = %d: %s", k, ur_tape_error(tp));
    *loss = l->has_exact ? l->exact : l->val[0];
    size_t at = 0;
    for (int p = 0; p < ur_params_count(f->ps); p++) {
        ur_tensor *t = ur_params_at(f->ps, p);
        memcpy(g + at, t->grad, ur_numel(t) * sizeof *g);
        at += ur_numel(t);
    }
    if (H && seq.H) {
        *H = malloc(ur_numel(seq.H) * sizeof **H);
        memcpy(*H, seq.H->val, ur_numel(seq.H) * sizeof **H);
    } else if (H) {
        *H = NULL;
    }
    if (norms) ck_assert_int_eq(ur_seq_grad_norms(&seq, norms), 0);
    return g;
}

/* Over each parameter, max |a - b| <= max_tol * max |b| and ||a - b|| <= fro_tol * ||b||;
 * returns the worst max |a - b| / max |b| seen. */
static double compare_tol(fixture *f, const float *a, const float *b, const char *what,
                          double max_tol, double fro_tol)
{
    size_t at = 0;
    double worst = 0.0;
    for (int p = 0; p < ur_params_count(f->ps); p++) {
        ur_tensor *t = ur_params_at(f->ps, p);
        double diff = 0.0, scale = 0.0, d2 = 0.0, b2 = 0.0;
        for (size_t j = 0; j < ur_numel(t); j++, at++) {
            double d = fabs((double)a[at] - b[at]);
            if (d > diff) diff = d;
            if (fabs(b[at]) > scale) scale = fabs(b[at]);
            d2 += d * d;
            b2 += (double)b[at] * b[at];
        }
        if (scale == 0.0) {
            ck_assert_msg(diff == 0.0, "%s: %s: gradient should be 0, differs by %g", what,
                          t->name, diff);
            continue;
        }
        double rel = diff / scale, fro = sqrt(d2 / b2);
        if (rel > worst) worst = rel;
        ck_assert_msg(rel <= max_tol && fro <= fro_tol, "%s: %s: max |checkpointed - plain| = "
                      "%g, %g of its largest gradient %g; ||difference|| / ||gradient|| = %g",
                      what, t->name, diff, rel, scale, fro);
    }
    return worst;
}

static double compare(fixture *f, const float *a, const float *b, const char *what)
{
    return compare_tol(f, a, b, what, REL, REL);
}

/* Plain BPTT against every interval (1 .. T + 1 and auto), with H and the norms too. */
static void check_equal_lengths(model_kind kind, int dropout, int reverse, int last_only,
                                int steps, const int *lengths)
{
    fixture f;
    fixture_init(&f, kind, dropout);
    f.reverse = reverse;
    f.steps = steps;
    f.lengths = lengths;
    const int Tn = steps_of(&f);
    ur_tape *tp = ur_tape_new(0);
    double loss0, norms0[T], norms[T];
    float *H0;
    float *g0 = grads(&f, tp, 0, 0, &loss0, &H0, norms0);
    double lp;
    float *gl = last_only ? grads(&f, tp, 0, 1, &lp, NULL, NULL) : NULL;
    const int ks[] = {1, 2, 3, 4, 5, T - 1, T, T + 1, UR_CHECKPOINT_AUTO};
    double worst = 0.0;
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        double loss;
        float *H;
        char what[96];
        snprintf(what, sizeof what, "model %d dropout %d reverse %d last_only %d k %d%s", kind,
                 dropout, reverse, last_only, ks[i], lengths ? " with lengths" : "");
        float *g = grads(&f, tp, ks[i], last_only, &loss, &H, norms);
        if (last_only) {
            double w = compare(&f, g, gl, what);
            if (w > worst) worst = w;
        } else {
            ck_assert_msg(loss == loss0, "%s: loss %.17g, plain %.17g", what, loss, loss0);
            ck_assert_msg(memcmp(H, H0, sizeof(float) * Tn * B * HID) == 0,
                          "%s: H differs from plain BPTT's", what);
            double w = compare(&f, g, g0, what);
            if (w > worst) worst = w;
            for (int t = 0; t < Tn; t++)
                ck_assert_msg(fabs(norms[t] - norms0[t]) <= REL * norms0[t] + 1e-12,
                              "%s: ||dL/dh_%d|| %.9g, plain %.9g", what, t, norms[t], norms0[t]);
        }
        free(g);
        free(H);
    }
    if (getenv("UR_TEST_VERBOSE"))
        fprintf(stderr, "checkpoint model %d dropout %d reverse %d last_only %d%s: worst "
                "relative difference %.3g\n", kind, dropout, reverse, last_only,
                lengths ? " lengths" : "", worst);
    free(g0);
    free(gl);
    free(H0);
    ur_tape_free(tp);
    ur_params_free(f.ps);
}

static void check_equal(model_kind kind, int dropout, int reverse, int last_only)
{
    check_equal_lengths(kind, dropout, reverse, last_only, 0, NULL);
}

START_TEST(test_elman) { check_equal(M_ELMAN, 0, 0, 0); }
END_TEST
START_TEST(test_lstm) { check_equal(M_LSTM, 0, 0, 0); }
END_TEST
START_TEST(test_gru) { check_equal(M_GRU, 0, 0, 0); }
END_TEST
START_TEST(test_gru_cho) { check_equal(M_GRU_CHO, 0, 0, 0); }
END_TEST
START_TEST(test_stacked_lstm) { check_equal(M_STACK, 0, 0, 0); }
END_TEST
START_TEST(test_bidirectional) { check_equal(M_BIDIR, 0, 0, 0); }
END_TEST
START_TEST(test_reversed) { check_equal(M_LSTM, 0, 1, 0); check_equal(M_ELMAN, 0, 1, 0); }
END_TEST
START_TEST(test_dropout)
{
    check_equal(M_LSTM, 1, 0, 0);
    check_equal(M_GRU, 1, 1, 0);
    check_equal(M_STACK, 1, 0, 0);
}
END_TEST
/* Lengths 2, 5 and 7 padded to 7 steps: every interval against the plain unroll with the same
 * lengths (the reference is plain BPTT with lengths, whose gradients equal those of each
 * sequence run alone: tests/test_lengths_unrolls.c). */
static const int lens[B] = {2, 5, 7};
START_TEST(test_lengths)
{
    check_equal_lengths(M_ELMAN, 0, 0, 0, 7, lens);
    check_equal_lengths(M_LSTM, 0, 0, 0, 7, lens);
    check_equal_lengths(M_GRU, 0, 0, 0, 7, lens);
    check_equal_lengths(M_STACK, 0, 0, 0, 7, lens);
    check_equal_lengths(M_BIDIR, 0, 0, 0, 7, lens);
    check_equal_lengths(M_ELMAN, 0, 1, 0, 7, lens);   /* reversed */
    check_equal_lengths(M_LSTM, 1, 0, 0, 7, lens);    /* with dropout */
    check_equal_lengths(M_LSTM, 0, 0, 1, 7, lens);    /* last_only */
    check_equal_lengths(M_STACK, 0, 0, 1, 7, lens);
    static const int uneven[B] = {11, 1, 6};          /* T = 11, one sequence of one step */
    check_equal_lengths(M_LSTM, 0, 1, 0, 0, uneven);
}
END_TEST

START_TEST(test_last_only)
{
    check_equal(M_LSTM, 0, 0, 1);
    check_equal(M_ELMAN, 0, 1, 1);
    check_equal(M_STACK, 0, 0, 1);
}
END_TEST

/* A longer sequence, where the sums over time have 2400 terms. The gradients agree within
 * 1e-6 relative in norm; element-wise, within 4e-6 of each parameter's largest gradient: there
 * plain BPTT's own float rounding is the limit (its one GEMM over all 2400 rows puts Elman's
 * U gradient 1.4e-6 of the largest one away from the exact sum of the same terms, the
 * checkpointed per-segment GEMMs 3.5e-7). */
static void check_long(model_kind kind, int k)
{
    enum { LT = 300, LB = 8, LI = 8, LH = 32 };
    ur_rng rng;
    ur_rng_seed(&rng, 21);
    ur_params *ps = ur_params_new();
    ur_cell cell;
    if (kind == M_LSTM) ck_assert_int_eq(ur_lstm_cell(&cell, ps, "l", LI, LH, &rng), 0);
    else if (kind == M_GRU) ck_assert_int_eq(ur_gru_cell(&cell, ps, "g", LI, LH, &rng), 0);
    else ck_assert_int_eq(ur_elman_cell(&cell, ps, "e", LI, LH, &rng), 0);
    size_t nx = (size_t)LT * LB * LI, nh = (size_t)LT * LB * LH;
    float *x = malloc(nx * sizeof *x), *r = malloc(nh * sizeof *r);
    for (size_t j = 0; j < nx; j++) x[j] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (size_t j = 0; j < nh; j++) r[j] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    size_t n = ur_params_numel(ps);
    float *g[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    ur_tape *tp = ur_tape_new(0);
    for (int m = 0; m < 2; m++) {
        ur_tape_reset(tp);
        ur_seq seq;
        ur_checkpoint ck = {m ? k : 0, 0};
        ck_assert_int_eq(ur_unroll_checkpointed(tp, &cell, ur_input_from(tp, LT * LB, LI, x), LT,
                                                (ur_state){0}, 0, &ck, &seq), 0);
        ur_tensor *l = ur_sum(tp, ur_mul(tp, seq.H, ur_input_from(tp, LT * LB, LH, r)));
        ur_params_zero_grad(ps);
        ck_assert_msg(ur_backward(tp, l) == 0, "%s", ur_tape_error(tp));
        size_t at = 0;
        for (int p = 0; p < ur_params_count(ps); p++) {
            ur_tensor *t = ur_params_at(ps, p);
            memcpy(g[m] + at, t->grad, ur_numel(t) * sizeof(float));
            at += ur_numel(t);
        }
    }
    fixture f = {.ps = ps};
    char what[64];
    snprintf(what, sizeof what, "T = %d, %s, k = %d", LT, cell.kind, k);
    double w = compare_tol(&f, g[1], g[0], what, 4e-6, REL);
    if (getenv("UR_TEST_VERBOSE")) fprintf(stderr, "%s: worst relative difference %.3g\n", what, w);
    ur_tape_free(tp);
    free(g[0]);
    free(g[1]);
    free(x);
    free(r);
    ur_params_free(ps);
}
START_TEST(test_long)
{
    check_long(M_LSTM, UR_CHECKPOINT_AUTO);
    check_long(M_LSTM, 7);
    check_long(M_GRU, UR_CHECKPOINT_AUTO);
    check_long(M_ELMAN, 25);
}
END_TEST

/* Finite differences agree with a checkpointed LSTM's backward too. */
static ur_tensor *gc_loss(ur_tape *tp, void *ctx)
{
    ur_seq seq;
    return record(tp, ctx, 3, 0, &seq);
}
START_TEST(test_gradcheck)
{
    fixture f;
    fixture_init(&f, M_LSTM, 0);
    f.linear_loss = 1;
    ur_assert_gradcheck(f.ps, gc_loss, &f, UR_GRADCHECK_EPS, UR_GRADCHECK_ATOL, UR_GRADCHECK_RTOL);
    ur_params_free(f.ps);
}
END_TEST

/* The tape's rules hold through the segments: one backward per recording, retain adds one
 * d(loss)/dp per call, tensors of the recording are stale after a reset. */
START_TEST(test_tape_rules)
{
    fixture f;
    fixture_init(&f, M_LSTM, 0);
    ur_tape *tp = ur_tape_new(0);
    ur_seq seq;
    ur_tensor *l = record(tp, &f, 4, 0, &seq);
    ur_params_zero_grad(f.ps);
    ck_assert_int_eq(ur_backward_retain(tp, l), 0);
    ur_tensor *wx = ur_params_at(f.ps, 0);
    float once = wx->grad[3];
    ck_assert_int_eq(ur_backward(tp, l), 0);
    ck_assert_float_eq_tol(wx->grad[3], 2 * once, 1e-6f * fabsf(once));
    ck_assert_int_eq(ur_backward(tp, l), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "already back-propagated"));

    ur_tape_reset(tp);
    ur_state carried = seq.last;
    ur_seq s2;
    ur_checkpoint ck = {4, 0};
    ck_assert_int_eq(ur_unroll_checkpointed(tp, &f.cell[0], ur_input(tp, T * B, IN), T, carried,
                                            0, &ck, &s2), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "stale"));
    ur_tape_free(tp);
    ur_params_free(f.ps);
}
END_TEST

/* An op whose backward writes a NaN: y = x, dx += NaN. */
static void nan_backward(ur_node *n)
{
    float *dx = ur_grad(n->in[0]);
    dx[0] += NAN;
}
static const ur_op nan_op = {"nan_grad", nan_backward};

/* Elman's step, with nan_grad after h at step 7 (in->t counts in the whole sequence). */
static ur_state nan_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)cell;
    (void)prev;
    ur_tensor *h = ur_tanh(tp, in->proj[0]);
    if (in->t == 7 && !ur_tape_error(tp)) {
        ur_tensor *y = ur_tensor_new(tp, h->rows, h->cols);
        if (!y) return (ur_state){ur_tape_poison(tp), NULL};
        memcpy(y->val, h->val, ur_numel(h) * sizeof(float));
        ur_record(tp, &nan_op, y, 1, h);
        h = y;
    }
    return (ur_state){h, NULL};
}

/* A NaN inside a segment is named with its op and its step in the whole sequence, in forward
 * and in backward (where the segment is recorded again). */
START_TEST(test_trap_names_step)
{
    fixture f;
    fixture_init(&f, M_ELMAN, 0);
    ur_tape *tp = ur_tape_new(0);
    ur_tape_check_finite(tp, 1);
    f.x->val[7 * B * IN + 2] = NAN; /* step 7 */
    ur_seq seq;
    ck_assert_ptr_null(record(tp, &f, 3, 0, &seq));
    const char *e = ur_tape_error(tp);
    ck_assert_ptr_nonnull(e);
    /* (the input projection of the segment's three steps is one op: no single step) */
    ck_assert_msg(strstr(e, "non-finite value: forward of op 'linear'") &&
                  strstr(e, "steps 6..8") && strstr(e, "recorded in forward"), "%s", e);
    f.x->val[7 * B * IN + 2] = 0.5f;

    ur_tape_reset(tp);
    f.cell[0].step = nan_step;
    f.cell[0].kind = "nancell";
    ck_assert_ptr_nonnull(record(tp, &f, 3, 0, &seq));
    ck_assert_msg(!ur_tape_error(tp), "%s", ur_tape_error(tp));
    ur_tensor *l = ur_sum(tp, seq.H);
    ck_assert_int_eq(ur_backward(tp, l), -1);
    e = ur_tape_error(tp);
    ck_assert_msg(strstr(e, "non-finite value: backward of op 'nan_grad'") &&
                  strstr(e, "'nancell' at time step 7") && strstr(e, "steps 6..8") &&
                  strstr(e, "back-propagated"), "%s", e);
    /* Without the trap the NaN reaches the gradients, as in plain BPTT. */
    ur_tape_check_finite(tp, 0);
    ur_tape_reset(tp);
    record(tp, &f, 3, 0, &seq);
    ur_params_zero_grad(f.ps);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, seq.H)), 0);
    ck_assert(isnan(f.x->grad[6 * B * IN]) || isnan(f.cell[0].p[0]->grad[0]));
    ur_tape_free(tp);
    ur_params_free(f.ps);
}
END_TEST

/* After the first step the arenas hold what every later step needs: nothing is allocated,
 * and the checkpointed peak is a fraction of the plain one. */
START_TEST(test_memory)
{
    enum { LT = 64 };
    ur_rng rng;
    ur_rng_seed(&rng, 3);
    ur_params *ps = ur_params_new();
    ur_cell cell;
    ck_assert_int_eq(ur_lstm_cell(&cell, ps, "l", 8, 32, &rng), 0);
    float *x = malloc(sizeof(float) * LT * 4 * 8);
    for (int k = 0; k < LT * 4 * 8; k++) x[k] = ur_rng_uniform(&rng);
    size_t peak[2];
    for (int mode = 0; mode < 2; mode++) {
        ur_tape *tp = ur_tape_new(64 << 10);
        size_t arena = 0;
        for (int step = 0; step < 4; step++) {
            ur_tape_reset(tp);
            ur_seq seq;
            ur_checkpoint ck = {mode ? UR_CHECKPOINT_AUTO : 0, 1};
            ck_assert_int_eq(ur_unroll_checkpointed(tp, &cell, ur_input_from(tp, LT * 4, 8, x),
                                                    LT, (ur_state){0}, 0, &ck, &seq), 0);
            ur_tensor *l = ur_sum(tp, ur_mul(tp, seq.last.h, seq.last.h));
            ur_params_zero_grad(ps);
            ck_assert_int_eq(ur_backward(tp, l), 0);
            if (step == 1) arena = ur_tape_arena_bytes(tp);
            if (step > 1) ck_assert_uint_eq(ur_tape_arena_bytes(tp), arena);
        }
        peak[mode] = ur_tape_peak_bytes(tp);
        ur_tape_free(tp);
    }
    /* T = 64, k = 8: 8 checkpoints and one segment of 8 steps against 64 steps, about a
     * quarter before fixed costs (measured 0.27 since h is written straight into H). */
    ck_assert_msg(peak[1] * 3 < peak[0], "checkpointed peak %zu, plain %zu", peak[1], peak[0]);
    free(x);
    ur_params_free(ps);
}
END_TEST

/* The nodes named op recorded on tp. */
static int count_nodes(const ur_tape *tp, const char *op)
{
    int n = 0;
    for (const ur_node *nd = ur_tape_last(tp); nd; nd = nd->prev)
        n += strcmp(nd->op->name, op) == 0;
    return n;
}

/* What the interval means: 0 is plain BPTT (the plain unroll itself), k > T one segment, auto
 * ceil(sqrt(T)), anything else negative an error; the same through ur_unroll_opts. */
START_TEST(test_intervals)
{
    fixture f;
    fixture_init(&f, M_ELMAN, 0);
    ur_tape *tp = ur_tape_new(0), *plain = ur_tape_new(0);
    ur_seq seq, ref;
    ck_assert_int_eq(ur_unroll(plain, &f.cell[0], f.x, T, (ur_state){0}, 0, &ref), 0);
    const struct { int interval, segments; } cases[] = {
        {1, T}, {2, 6}, {4, 3}, {T, 1}, {5 * T, 1}, {UR_CHECKPOINT_AUTO, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ur_tape_reset(tp);
        ur_checkpoint ck = {cases[i].interval, 0};
        ur_unroll_opts o = {.checkpoint = &ck};
        ck_assert_int_eq(ur_unroll_with(tp, &f.cell[0], f.x, T, (ur_state){0}, &o, &seq), 0);
        ck_assert_int_eq(count_nodes(tp, "checkpoint_segment"), cases[i].segments);
        ck_assert_ptr_nonnull(seq.grad_norms);
        ck_assert_mem_eq(seq.H->val, ref.H->val, ur_numel(ref.H) * sizeof(float));
    }
    ur_tape_reset(tp);
    ur_checkpoint none = {0, 1}; /* interval 0: plain, last_only ignored */
    ck_assert_int_eq(ur_unroll_checkpointed(tp, &f.cell[0], f.x, T, (ur_state){0}, 0, &none,
                                            &seq), 0);
    ck_assert_int_eq(count_nodes(tp, "checkpoint_segment"), 0);
    ck_assert_int_eq(ur_tape_node_count(tp), ur_tape_node_count(plain));
    ck_assert_ptr_null(seq.grad_norms);
    ck_assert_ptr_nonnull(seq.H);
    ur_tape_reset(tp);
    ur_checkpoint bad = {-2, 0};
    ur_unroll_opts o = {.checkpoint = &bad};
    ck_assert_int_eq(ur_unroll_with(tp, &f.cell[0], f.x, T, (ur_state){0}, &o, &seq), -1);
    ck_assert_str_eq(ur_tape_error(tp), "unroll_checkpointed(elman): interval -2; expected k > "
                     "0, 0 (plain BPTT) or UR_CHECKPOINT_AUTO");
    ur_tape_reset(tp);
    ur_checkpoint one = {1, 0};
    o.checkpoint = &one;
    ck_assert_int_eq(ur_unroll_with(tp, NULL, f.x, T, (ur_state){0}, &o, &seq), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "unroll_checkpointed: cell, its step"));
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_unroll_with(tp, &f.cell[0], f.x, 4, (ur_state){0}, &o, &seq), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "4 steps do not divide the 33x4 input"));
    ur_tape_free(plain);
    ur_tape_free(tp);
    ur_params_free(f.ps);
}
END_TEST

START_TEST(test_errors)
{
    fixture f;
    fixture_init(&f, M_LSTM, 0);
    ur_tape *tp = ur_tape_new(0);
    ur_seq seq;
    ur_checkpoint bad = {-5, 0};
    ck_assert_int_eq(ur_unroll_checkpointed(tp, &f.cell[0], f.x, T, (ur_state){0}, 0, &bad, &seq), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "interval -5"));
    ur_tape_reset(tp);
    ur_checkpoint lo = {2, 1};
    ur_bidir_seq bs;
    ck_assert_int_eq(ur_bidir_unroll_checkpointed(tp, &f.cell[0], &f.cell[0], f.x, T, (ur_state){0},
                                                  (ur_state){0}, &lo, &bs), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "last_only"));
    /* A bad declaration is found by the segment's own unroll, and named with the segment. */
    ur_tape_reset(tp);
    ur_cell broken = f.cell[0];
    broken.rec[0].into = 3;
    ck_assert_int_eq(ur_unroll_checkpointed(tp, &broken, f.x, T, (ur_state){0}, 0, &lo, &seq), -1);
    ck_assert_msg(strstr(ur_tape_error(tp), "is not declared") &&
                  strstr(ur_tape_error(tp), "unroll_checkpointed(lstm)"), "%s", ur_tape_error(tp));
    /* Lengths are checked as the plain unroll checks them, named with the checkpointed op;
     * lengths and last_only with a bidirectional model are still an error. */
    ur_tape_reset(tp);
    const int zero[B] = {3, 0, 11}, over[B] = {3, 12, 1}, fine[B] = {3, 5, 11};
    ur_unroll_opts with = {.lengths = zero, .checkpoint = &lo};
    ck_assert_int_eq(ur_unroll_with(tp, &f.cell[0], f.x, T, (ur_state){0}, &with, &seq), -1);
    ck_assert_msg(strstr(ur_tape_error(tp), "unroll_checkpointed(lstm): sequence 1 has length 0, "
                         "outside [1, 11]"), "%s", ur_tape_error(tp));
    ur_tape_reset(tp);
    with.lengths = over;
    ck_assert_int_eq(ur_unroll_with(tp, &f.cell[0], f.x, T, (ur_state){0}, &with, &seq), -1);
    ck_assert_msg(strstr(ur_tape_error(tp), "sequence 1 has length 12"), "%s", ur_tape_error(tp));
    ur_tape_reset(tp);
    with.lengths = zero;
    with.allow_empty = 1; /* a row with no real step: its state is the initial one, its H 0 */
    ck_assert_int_eq(ur_unroll_with(tp, &f.cell[0], f.x, T, (ur_state){0}, &with, &seq), 0);
    for (int j = 0; j < HID; j++) ck_assert_float_eq(seq.last.h->val[1 * HID + j], 0.0f);
    ur_tape_reset(tp);
    with.lengths = fine;
    with.allow_empty = 0;
    ck_assert_int_eq(ur_bidir_unroll_with(tp, &f.cell[0], &f.cell[0], f.x, T, (ur_state){0},
                                          (ur_state){0}, &with, &bs), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "last_only checkpointing is not possible"));
    ck_assert_int_eq(ur_checkpoint_interval(1000, UR_CHECKPOINT_AUTO), 32);
    ck_assert_int_eq(ur_checkpoint_interval(100, UR_CHECKPOINT_AUTO), 10);
    ck_assert_int_eq(ur_checkpoint_interval(10, 50), 10);
    ck_assert_int_eq(ur_checkpoint_interval(10, -7), 0);
    ck_assert_int_eq(ur_seq_grad_norms(NULL, NULL), -1);
    ur_tape_free(tp);
    ur_params_free(f.ps);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *eq = tcase_create("equal to plain BPTT");
    tcase_add_test(eq, test_elman);
    tcase_add_test(eq, test_lstm);
    tcase_add_test(eq, test_gru);
    tcase_add_test(eq, test_gru_cho);
    tcase_add_test(eq, test_stacked_lstm);
    tcase_add_test(eq, test_bidirectional);
    tcase_add_test(eq, test_reversed);
    tcase_add_test(eq, test_dropout);
    tcase_add_test(eq, test_last_only);
    tcase_add_test(eq, test_lengths);
    tcase_add_test(eq, test_long);
    tcase_add_test(eq, test_gradcheck);
    tcase_set_timeout(eq, 60);
    suite_add_tcase(s, eq);
    TCase *rules = tcase_create("rules");
    tcase_add_test(rules, test_tape_rules);
    tcase_add_test(rules, test_trap_names_step);
    tcase_add_test(rules, test_memory);
    tcase_add_test(rules, test_errors);
    tcase_add_test(rules, test_intervals);
    suite_add_tcase(s, rules);
    return ur_test_run(s);
}
