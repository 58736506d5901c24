/* Batches of uneven lengths: the unrolls.
 *
 * A batch of three sequences of lengths 2, 5 and 7, padded to 7 steps with junk, gives the sum
 * of the gradients of the three sequences run alone (to 1e-5 relative) for Elman, LSTM, GRU,
 * stacked, bidirectional, single-output and stacked single-output models; the masked models
 * pass the gradient check; outputs past a length are zero and pass no gradient back (a loss
 * reading them unmasked has the masked one's gradient); steps where no row is real and rows
 * with no real step change nothing for the others; lengths of T cost nothing; a length of 0,
 * above T or negative is an error with a message. */
#include "lengths_common.h"

/* ---- Models: a padded batch against its sequences run alone --------------------------------
 * ELMAN, LSTM, GRU: one cell, a head on every step's h and on the last state (h and c).
 * STACK: LSTM (H) under GRU (H2). BIDIR: LSTM forward, GRU backward, a head on [fw | bw] and on
 * both last states. SINGLE: LSTM, the head on the last h only. STACK_SINGLE: Elman (H) under
 * LSTM (H2), the head on the top last h and on both layers' last states. Every term goes
 * through one masked softmax NLL (summed), so the gradient check reads the loss in double. */
typedef enum { ELMAN, LSTM, GRU, STACK, BIDIR, SINGLE, STACK_SINGLE, N_KINDS } kind;
static const char *const kind_name[N_KINDS] = {"elman", "lstm", "gru", "stack", "bidir",
                                               "single", "stack_single"};

typedef struct model {
    kind kind;
    int n_cells;
    ur_params *ps;
    ur_cell cell[2];
    ur_stack st;
    ur_tensor *h0[2], *c0[2]; /* B x hidden parameters; sequence b alone starts from row b */
    ur_tensor *V, *c;         /* head on the outputs: width x K, 1 x K */
    ur_tensor *Vh[2], *Vc[2]; /* heads on the last states: hidden x K */
    float x[T * B * IN];      /* padded with junk past each length */
    int y[T * B];
    int T;                    /* padded steps (T, or more to test steps where no row is real) */
    int allow_empty;
    const int *lens;
    int no_lengths;           /* 1: the batch runs without lengths (every row T steps) */
    int raw_out;              /* 1: the loss is sum(out R) over every row; 2: R masked */
    float r[(T + 2) * B * (H + H2)];
} model;

static int make_cell(ur_cell *cell, int which, ur_params *ps, const char *prefix, int in, int hid,
                     ur_rng *rng)
{
    switch (which) {
    case ELMAN: return ur_elman_cell(cell, ps, prefix, in, hid, rng);
    case GRU: return ur_gru_cell(cell, ps, prefix, in, hid, rng);
    default: return ur_lstm_cell(cell, ps, prefix, in, hid, rng);
    }
}

static void add_state(model *m, int l, ur_rng *rng)
{
    char name[32];
    int hid = m->cell[l].hidden;
    snprintf(name, sizeof name, "h0.%d", l);
    m->h0[l] = ur_params_add(m->ps, name, B, hid);
    ur_test_fill(m->h0[l], rng, -0.5f, 0.5f);
    if (m->cell[l].has_c) {
        snprintf(name, sizeof name, "c0.%d", l);
        m->c0[l] = ur_params_add(m->ps, name, B, hid);
        ur_test_fill(m->c0[l], rng, -0.5f, 0.5f);
    }
    m->Vh[l] = ur_model_param(m->ps, "last", l ? "Vh1" : "Vh0", hid, K, 0.5f, rng);
    if (m->cell[l].has_c)
        m->Vc[l] = ur_model_param(m->ps, "last", l ? "Vc1" : "Vc0", hid, K, 0.5f, rng);
}

static model *model_new(kind k, unsigned seed)
{
    model *m = calloc(1, sizeof *m);
    ur_rng rng;
    ur_rng_seed(&rng, seed);
    m->kind = k;
    m->T = T;
    m->lens = LENS;
    m->ps = ur_params_new();
    int width = H;
    if (k == ELMAN || k == LSTM || k == GRU || k == SINGLE) {
        ck_assert_int_eq(make_cell(&m->cell[0], k == SINGLE ? LSTM : (int)k, m->ps, "rnn", IN, H,
                                   &rng), 0);
        m->n_cells = 1;
    } else if (k == STACK || k == BIDIR) {
        ck_assert_int_eq(ur_lstm_cell(&m->cell[0], m->ps, "rnn0", IN, H, &rng), 0);
        ck_assert_int_eq(ur_gru_cell(&m->cell[1], m->ps, "rnn1", k == STACK ? H : IN, H2, &rng), 0);
        m->n_cells = 2;
        width = k == STACK ? H2 : H + H2;
    } else { /* STACK_SINGLE */
        ck_assert_int_eq(ur_elman_cell(&m->cell[0], m->ps, "rnn0", IN, H, &rng), 0);
        ck_assert_int_eq(ur_lstm_cell(&m->cell[1], m->ps, "rnn1", H, H2, &rng), 0);
        m->n_cells = 2;
        width = H2;
    }
    if (k == STACK || k == STACK_SINGLE)
        ck_assert_int_eq(ur_stack_init(&m->st, 2, m->cell, 0.0f, NULL), 0);
    for (int l = 0; l < m->n_cells; l++) add_state(m, l, &rng);
    m->V = ur_model_param(m->ps, "head", "V", width, K, 0.5f, &rng);
    m->c = ur_model_param(m->ps, "head", "c", 1, K, 0.5f, &rng);
    for (int j = 0; j < T * B * IN; j++) m->x[j] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (int j = 0; j < T * B; j++) m->y[j] = (int)ur_rng_below(&rng, K);
    for (size_t j = 0; j < sizeof m->r / sizeof m->r[0]; j++)
        m->r[j] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    return m;
}

static void model_free(model *m)
{
    ur_params_free(m->ps);
    free(m);
}

static int single_kind(kind k) { return k == SINGLE || k == STACK_SINGLE; }

/* The loss of the padded batch (solo < 0) or of sequence solo alone (its own length, no
 * padding, its rows of the initial states). *out_rows, if not NULL, gets the outputs. */
static ur_tensor *forward(ur_tape *tp, model *m, int solo, ur_tensor **out_rows)
{
    int n = solo < 0 ? B : 1, Tn = solo < 0 ? m->T : m->lens[solo];
    float xs[T * B * IN + 8 * B * IN];
    for (int t = 0; t < Tn; t++)
        for (int r = 0; r < n; r++) {
            int src = t < T ? t * B + (solo < 0 ? r : solo) : -1;
            for (int j = 0; j < IN; j++)
                xs[(t * n + r) * IN + j] = src >= 0 ? m->x[src * IN + j] : 0.75f; /* beyond T */
        }
    ur_tensor *x = ur_input_from(tp, Tn * n, IN, xs);
    ur_state init[2];
    for (int l = 0; l < m->n_cells; l++) {
        init[l].h = solo < 0 ? m->h0[l] : ur_rows(tp, m->h0[l], solo, 1);
        init[l].c = !m->c0[l] ? NULL : solo < 0 ? m->c0[l] : ur_rows(tp, m->c0[l], solo, 1);
    }
    ur_unroll_opts opts = {.lengths = solo < 0 && !m->no_lengths ? m->lens : NULL,
                           .allow_empty = m->allow_empty};
    ur_tensor *out = NULL, *mask = NULL;
    ur_state last[2] = {{0}};
    int rc = 0;
    switch (m->kind) {
    case STACK: {
        ur_stack_seq s;
        rc = ur_stack_unroll_with(tp, &m->st, x, Tn, init, &opts, &s);
        out = s.H, mask = s.mask, last[0] = s.last[0], last[1] = s.last[1];
        break;
    }
    case BIDIR: {
        ur_bidir_seq s;
        rc = ur_bidir_unroll_with(tp, &m->cell[0], &m->cell[1], x, Tn, init[0], init[1], &opts, &s);
        out = s.H, mask = s.mask, last[0] = s.fw.last, last[1] = s.bw.last;
        break;
    }
    case SINGLE: out = ur_single_output_with(tp, &m->cell[0], x, Tn, init[0], &opts, last); break;
    case STACK_SINGLE:
        out = ur_stack_single_output_with(tp, &m->st, x, Tn, init, &opts, last);
        break;
    default: {
        ur_seq s;
        rc = ur_unroll_with(tp, &m->cell[0], x, Tn, init[0], &opts, &s);
        out = s.H, mask = s.mask, last[0] = s.last;
        break;
    }
    }
    if (rc != 0 || ur_tape_error(tp)) return ur_tape_poison(tp);
    if (out_rows) *out_rows = out;
    if (m->raw_out) { /* sum(out R), R's rows past each length zero when raw_out is 2 */
        ur_tensor *R = ur_input_from(tp, out->rows, out->cols, m->r);
        if (ur_tape_error(tp)) return ur_tape_poison(tp);
        for (int r = 0; r < out->rows && m->raw_out == 2; r++)
            if (r / n >= m->lens[solo < 0 ? r % n : solo])
                memset(R->val + (size_t)r * out->cols, 0, (size_t)out->cols * sizeof(float));
        return ur_sum(tp, ur_mul(tp, out, R));
    }
    /* logits: the outputs' rows, then each last state's h and c rows */
    ur_tensor *parts[5];
    int np = 0, rows = 0;
    parts[np++] = ur_linear(tp, out, m->V, m->c);
    for (int l = 0; l < m->n_cells; l++) {
        parts[np++] = ur_matmul(tp, last[l].h, m->Vh[l], 0, 0);
        if (m->Vc[l]) parts[np++] = ur_matmul(tp, last[l].c, m->Vc[l], 0, 0);
    }
    for (int i = 0; i < np; i++) rows += parts[i]->rows;
    float mv[T * B + 8 * B + 4 * B];
    int yv[T * B + 8 * B + 4 * B];
    for (int r = 0; r < rows; r++) {
        int step_row = r < out->rows; /* a row of the outputs */
        int seq = solo < 0 ? r % n : solo; /* which sequence the row belongs to */
        /* an empty sequence has no last state to score (it is not run alone) */
        mv[r] = step_row && mask ? mask->val[r] : m->lens[seq] > 0 ? 1.0f : 0.0f;
        if (step_row && !single_kind(m->kind)) {
            int t = r / n;
            yv[r] = t < T ? m->y[t * B + seq] : 0;
        } else {
            yv[r] = (m->y[seq] + (r - (step_row ? 0 : out->rows)) / n) % K; /* per head row */
        }
    }
    ur_tensor *logits = ur_concat_rows(tp, np, parts);
    return ur_softmax_nll_masked(tp, logits, yv, ur_input_from(tp, rows, 1, mv), UR_SUM);
}

static ur_tensor *batch_loss(ur_tape *tp, void *ctx) { return forward(tp, ctx, -1, NULL); }

/* The padded batch's gradients and loss against the sums over the sequences run alone. */
static void check_against_solo(model *m, const char *what)
{
    ur_tape *tp = ur_tape_new(0);
    double total = 0;
    ur_params_zero_grad(m->ps);
    for (int b = 0; b < B; b++) {
        if (m->lens[b] == 0) continue;
        ur_tape_reset(tp);
        ur_tensor *loss = forward(tp, m, b, NULL);
        ck_assert_msg(ur_backward(tp, loss) == 0, "%s", ur_tape_error(tp));
        total += loss->exact;
    }
    float *want = grads_copy(m->ps);
    ur_tape_reset(tp);
    ur_params_zero_grad(m->ps);
    ur_tensor *out, *loss = forward(tp, m, -1, &out);
    ck_assert_msg(ur_backward(tp, loss) == 0, "%s", ur_tape_error(tp));
    ck_assert_msg(fabs(loss->exact - total) <= SUM_RTOL * fabs(total),
                  "%s: batch loss %.9g, sum alone %.9g", what, loss->exact, total);
    expect_grads(m->ps, want, what);
    /* outputs past each length are zero */
    if (!single_kind(m->kind))
        for (int t = 0; t < m->T; t++)
            for (int b = 0; b < B; b++)
                if (t >= m->lens[b])
                    for (int j = 0; j < out->cols; j++)
                        ck_assert_msg(out->val[(size_t)(t * B + b) * out->cols + j] == 0.0f,
                                      "%s: output of step %d of sequence %d (length %d) is %g",
                                      what, t, b, m->lens[b],
                                      (double)out->val[(size_t)(t * B + b) * out->cols + j]);
    free(want);
    ur_tape_free(tp);
}

START_TEST(test_padded_equals_alone)
{
    kind k = (kind)_i;
    model *m = model_new(k, 20 + (unsigned)k);
    check_against_solo(m, kind_name[k]);
    model_free(m);
}
END_TEST

START_TEST(test_gradcheck_masked)
{
    kind k = (kind)_i;
    model *m = model_new(k, 40 + (unsigned)k);
    ur_assert_gradcheck(m->ps, batch_loss, m, EPS, ATOL, RTOL);
    model_free(m);
}
END_TEST

/* Outputs past a length are constants: a loss that reads them (unmasked) gets the gradient of
 * the same loss with them left out, for the in-place masking of the unroll's H (forward,
 * reversed in bidir, and under a stack layer). */
START_TEST(test_padded_outputs_get_no_gradient)
{
    for (kind k = ELMAN; k <= BIDIR; k++) {
        model *m = model_new(k, 100 + (unsigned)k);
        ur_tape *tp = ur_tape_new(0);
        float *g[2];
        for (int q = 0; q < 2; q++) {
            m->raw_out = 2 - q; /* masked R first: the reference */
            ur_tape_reset(tp);
            ur_params_zero_grad(m->ps);
            ur_tensor *loss = forward(tp, m, -1, NULL);
            ck_assert_msg(ur_backward(tp, loss) == 0, "%s", ur_tape_error(tp));
            g[q] = grads_copy(m->ps);
        }
        size_t at = 0;
        int seen = 0;
        for (int p = 0; p < ur_params_count(m->ps); p++) {
            ur_tensor *t = ur_params_at(m->ps, p);
            double num = 0, den = 0;
            for (size_t j = 0; j < ur_numel(t); j++, at++) {
                num = fmax(num, fabs((double)g[1][at] - g[0][at]));
                den = fmax(den, fabs((double)g[0][at]));
            }
            seen += den > 0;
            ck_assert_msg(num <= SUM_RTOL * den, "%s: %s: the padded outputs' gradient leaks in "
                          "(%.3g, max |gradient| %.3g)", kind_name[k], t->name, num, den);
        }
        ck_assert_int_ge(seen, 3);
        free(g[0]);
        free(g[1]);
        ur_tape_free(tp);
        model_free(m);
    }
}
END_TEST

/* Padding beyond every length (steps where no row is real) and a row with no real step
 * (allow_empty) change nothing for the other rows. */
START_TEST(test_steps_without_real_rows)
{
    for (kind k = ELMAN; k < N_KINDS; k++) {
        model *m = model_new(k, 60 + (unsigned)k);
        m->T = T + 2;
        check_against_solo(m, kind_name[k]);
        static const int with_empty[B] = {4, 0, 6};
        m->T = T;
        m->lens = with_empty;
        m->allow_empty = 1;
        check_against_solo(m, kind_name[k]);
        model_free(m);
    }
}
END_TEST

/* Lengths of T record exactly what no lengths do: the same nodes, the same values. */
START_TEST(test_full_lengths_cost_nothing)
{
    static const int full[B] = {T, T, T};
    for (kind k = ELMAN; k < N_KINDS; k++) {
        model *m = model_new(k, 80 + (unsigned)k);
        ur_tape *a = ur_tape_new(0), *b = ur_tape_new(0);
        m->lens = full;
        ur_tensor *oa, *ob, *la = forward(a, m, -1, &oa);
        m->no_lengths = 1;
        ur_tensor *lb = forward(b, m, -1, &ob);
        ck_assert_ptr_null(ur_tape_error(a));
        ck_assert_ptr_null(ur_tape_error(b));
        ck_assert_int_eq(ur_tape_node_count(a), ur_tape_node_count(b));
        ck_assert_int_eq(oa->rows, ob->rows);
        ck_assert_msg(memcmp(oa->val, ob->val, ur_numel(oa) * sizeof(float)) == 0,
                      "%s: lengths of T change the outputs", kind_name[k]);
        ck_assert(la->exact == lb->exact);
        ur_tape_free(a);
        ur_tape_free(b);
        model_free(m);
    }
}
END_TEST

/* ---- Bad lengths -------------------------------------------------------------------------- */

START_TEST(test_bad_lengths)
{
    model *m = model_new(BIDIR, 9);
    model *s = model_new(STACK_SINGLE, 10);
    ur_tape *tp = ur_tape_new(0);
    const int bad[3][B] = {{2, 0, 7}, {2, 8, 7}, {-3, 5, 7}};
    const char *want[3][3] = {{"sequence 1 has length 0", "[1, 7]", "empty sequence is an error"},
                              {"sequence 1 has length 8", "[1, 7]", "7 steps"},
                              {"sequence 0 has length -3", "[1, 7]", "7 steps"}};
    for (int c = 0; c < 3; c++) {
        ur_unroll_opts opts = {.lengths = bad[c]};
        const char *parts[] = {want[c][0], want[c][1], want[c][2], NULL};
        ur_seq seq;
        ur_bidir_seq bseq;
        ur_stack_seq sseq;
        ur_state none = {NULL, NULL};
        ur_tape_reset(tp);
        ck_assert_int_eq(ur_unroll_with(tp, &m->cell[0], ur_input(tp, T * B, IN), T, none, &opts,
                                        &seq), -1);
        expect_error(tp, parts);
        expect_error(tp, (const char *[]){"unroll(lstm)", NULL});
        ur_tape_reset(tp);
        ck_assert_int_eq(ur_bidir_unroll_with(tp, &m->cell[0], &m->cell[1], ur_input(tp, T * B, IN),
                                              T, none, none, &opts, &bseq), -1);
        expect_error(tp, parts);
        ur_tape_reset(tp);
        ck_assert_int_eq(ur_stack_unroll_with(tp, &s->st, ur_input(tp, T * B, IN), T, NULL, &opts,
                                              &sseq), -1);
        expect_error(tp, parts);
        ur_tape_reset(tp);
        ck_assert(ur_single_output_with(tp, &m->cell[0], ur_input(tp, T * B, IN), T, none, &opts,
                                        NULL) == ur_tape_poison(tp));
        expect_error(tp, parts);
        ur_tape_reset(tp);
        ck_assert(ur_stack_single_output_with(tp, &s->st, ur_input(tp, T * B, IN), T, NULL, &opts,
                                              NULL) == ur_tape_poison(tp));
        expect_error(tp, parts);
    }
    /* allow_empty admits 0, never more than T */
    const ur_unroll_opts empty_ok[2] = {{.lengths = bad[0], .allow_empty = 1},
                                        {.lengths = bad[1], .allow_empty = 1}};
    ur_seq seq;
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_unroll_with(tp, &m->cell[0], ur_input(tp, T * B, IN), T, (ur_state){0},
                                    &empty_ok[0], &seq), 0);
    ck_assert_int_eq(ur_unroll_with(tp, &m->cell[0], ur_input(tp, T * B, IN), T, (ur_state){0},
                                    &empty_ok[1], &seq), -1);
    expect_error(tp, (const char *[]){"sequence 1 has length 8", "[0, 7]", NULL});
    /* a reversed bidirectional unroll makes no sense */
    ur_bidir_seq bseq;
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_bidir_unroll_with(tp, &m->cell[0], &m->cell[1], ur_input(tp, T * B, IN), T,
                                          (ur_state){0}, (ur_state){0},
                                          &(ur_unroll_opts){.reverse = 1}, &bseq), -1);
    expect_error(tp, (const char *[]){"bidir_unroll", "reverse must be 0", NULL});
    /* a row with no real step keeps its initial state and outputs zeros */
    ur_tape_reset(tp);
    ur_state init = {ur_input(tp, B, H), ur_input(tp, B, H)};
    for (int j = 0; j < B * H; j++) init.h->val[j] = init.c->val[j] = 0.125f * (float)(j % 7);
    ck_assert_int_eq(ur_unroll_with(tp, &m->cell[0], ur_input_from(tp, T * B, IN, m->x), T, init,
                                    &empty_ok[0], &seq), 0);
    for (int j = 0; j < H; j++) {
        ck_assert_float_eq(seq.last.h->val[H + j], init.h->val[H + j]);
        ck_assert_float_eq(seq.last.c->val[H + j], init.c->val[H + j]);
        for (int t = 0; t < T; t++) ck_assert_float_eq(seq.H->val[(t * B + 1) * H + j], 0.0f);
    }
    ur_tape_free(tp);
    model_free(m);
    model_free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lengths: unrolls");
    TCase *models = tcase_create("models");
    tcase_set_timeout(models, 120);
    tcase_add_loop_test(models, test_padded_equals_alone, 0, N_KINDS);
    tcase_add_loop_test(models, test_gradcheck_masked, 0, N_KINDS);
    tcase_add_test(models, test_padded_outputs_get_no_gradient);
    tcase_add_test(models, test_steps_without_real_rows);
    tcase_add_test(models, test_full_lengths_cost_nothing);
    tcase_add_test(models, test_bad_lengths);
    suite_add_tcase(s, models);
    return ur_test_run(s);
}
