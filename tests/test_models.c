/* Models: every cell and builder checked by finite differences through its unrolled graph
 * (initial states included), Elman against a hand-written BPTT, parameter sharing and linear
 * tape growth, LSTM against hand-computed values, and the builders' error messages.
 *
 * Sizes: T = time steps, B = batch, IN = input features, H = hidden, K = classes. */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

/* Gradient checks: |a - n| <= ATOL + RTOL |n| at the default step. The correct backwards stay
 * 2.5x below it; a 1% error fails at every gradient above 1.1e-3 (~93% of them: the
 * median is 2e-2), which check_model shows on each model. */
#define ATOL 1e-5
#define RTOL 1e-3
#define EPS UR_GRADCHECK_EPS

enum { IN = 3, H = 4, H2 = 3, K = 3, BATCH = 2 };

/* ---- A small model: one or two cells, their initial states as parameters, a linear head
 * and a summed softmax NLL over every output row. ------------------------------------------ */

/* ELMAN, LSTM, GRU: one cell, every step's h to the head. STACK: LSTM (H) under GRU (H2)
 * with dropout between them. BIDIR: LSTM forward, GRU backward, [h_fw | h_bw] to the head.
 * SINGLE: LSTM, the last h only (B rows, the first B targets). */
typedef enum { ELMAN, LSTM, GRU, STACK, BIDIR, SINGLE } kind;

typedef struct model {
    kind kind;
    int T, B;
    ur_params *ps;
    ur_cell cell[2];
    ur_stack st;
    ur_rng drop_rng;          /* reseeded every forward pass: the same masks each time */
    ur_tensor *h0[2], *c0[2]; /* parameters, so the gradient check covers them */
    ur_tensor *V, *c;         /* head: out_width x K, 1 x K */
    float *x;                 /* T*B x IN */
    int *y;                   /* T*B targets */
    float grad_error;         /* 0, or the loss's backward is off by this factor (1.01: 1%) */
} model;

static void init_state(model *m, int l, ur_rng *rng)
{
    char name[32];
    snprintf(name, sizeof name, "h0.%d", l);
    m->h0[l] = ur_params_add(m->ps, name, m->B, m->cell[l].hidden);
    ur_test_fill(m->h0[l], rng, -0.5f, 0.5f);
    if (m->cell[l].has_c) {
        snprintf(name, sizeof name, "c0.%d", l);
        m->c0[l] = ur_params_add(m->ps, name, m->B, m->cell[l].hidden);
        ur_test_fill(m->c0[l], rng, -0.5f, 0.5f);
    }
}

static int make_cell(ur_cell *cell, kind k, ur_params *ps, const char *prefix, int in, int hid,
                     ur_rng *rng)
{
    switch (k) {
    case ELMAN: return ur_elman_cell(cell, ps, prefix, in, hid, rng);
    case LSTM: return ur_lstm_cell(cell, ps, prefix, in, hid, rng);
    case GRU: return ur_gru_cell(cell, ps, prefix, in, hid, rng);
    default: break;
    }
    return -1;
}

static model *model_new(kind k, int T, int B, unsigned seed)
{
    model *m = calloc(1, sizeof *m);
    ur_rng rng;
    ur_rng_seed(&rng, seed);
    m->kind = k;
    m->T = T;
    m->B = B;
    m->ps = ur_params_new();
    int width = H;
    if (k == ELMAN || k == LSTM || k == GRU) {
        ck_assert_int_eq(make_cell(&m->cell[0], k, m->ps, "rnn", IN, H, &rng), 0);
    } else if (k == SINGLE) {
        ck_assert_int_eq(ur_lstm_cell(&m->cell[0], m->ps, "rnn", IN, H, &rng), 0);
    } else {
        ck_assert_int_eq(ur_lstm_cell(&m->cell[0], m->ps, "rnn0", IN, H, &rng), 0);
        ck_assert_int_eq(ur_gru_cell(&m->cell[1], m->ps, "rnn1", k == STACK ? H : IN, H2, &rng),
                         0);
        init_state(m, 1, &rng);
        width = k == STACK ? H2 : H + H2;
        if (k == STACK)
            ck_assert_int_eq(ur_stack_init(&m->st, 2, m->cell, 0.3f, &m->drop_rng), 0);
    }
    init_state(m, 0, &rng);
    m->V = ur_model_param(m->ps, "head", "V", width, K, 0.5f, &rng);
    m->c = ur_model_param(m->ps, "head", "c", 1, K, 0.5f, &rng);
    m->x = malloc((size_t)T * B * IN * sizeof *m->x);
    m->y = malloc((size_t)T * B * sizeof *m->y);
    for (int j = 0; j < T * B * IN; j++) m->x[j] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (int j = 0; j < T * B; j++) m->y[j] = (int)ur_rng_below(&rng, K);
    return m;
}

static void model_free(model *m)
{
    ur_params_free(m->ps);
    free(m->x);
    free(m->y);
    free(m);
}

static ur_tensor *model_x(ur_tape *tp, const model *m)
{
    return ur_input_from(tp, m->T * m->B, IN, m->x);
}

/* The model's output rows (T*B x width or B x width) before the head. */
static ur_tensor *model_body(ur_tape *tp, model *m)
{
    ur_state init[2] = {{m->h0[0], m->c0[0]}, {m->h0[1], m->c0[1]}};
    ur_tensor *x = model_x(tp, m);
    switch (m->kind) {
    case STACK: {
        ur_stack_seq seq;
        ur_rng_seed(&m->drop_rng, 42);
        return ur_stack_unroll(tp, &m->st, x, m->T, init, &seq) == 0 ? seq.H
                                                                     : ur_tape_poison(tp);
    }
    case BIDIR: {
        ur_bidir_seq seq;
        return ur_bidir_unroll(tp, &m->cell[0], &m->cell[1], x, m->T, init[0], init[1], &seq) == 0
                   ? seq.H
                   : ur_tape_poison(tp);
    }
    case SINGLE: return ur_single_output(tp, &m->cell[0], x, m->T, init[0], NULL);
    default: {
        ur_seq seq;
        return ur_unroll(tp, &m->cell[0], x, m->T, init[0], 0, &seq) == 0 ? seq.H
                                                                          : ur_tape_poison(tp);
    }
    }
}

/* Identity on a 1 x 1 loss whose backward multiplies by node->f[0]: a planted error. */
static void wrong_grad_backward(ur_node *n)
{
    ur_grad(n->in[0])[0] += n->f[0] * n->out->grad[0];
}
static const ur_op wrong_grad_op = {"wrong_grad", wrong_grad_backward};
static ur_tensor *wrong_grad(ur_tape *tp, ur_tensor *loss, float factor)
{
    ur_tensor *y = ur_tensor_new(tp, 1, 1);
    if (!y) return ur_tape_poison(tp);
    y->val[0] = loss->val[0];
    y->has_exact = loss->has_exact;
    y->exact = loss->exact;
    ur_node *nd = ur_record(tp, &wrong_grad_op, y, 1, loss);
    if (nd) nd->f[0] = factor;
    return y;
}

static ur_tensor *model_loss(ur_tape *tp, void *ctx)
{
    model *m = ctx;
    ur_tensor *out = model_body(tp, m);
    ur_tensor *loss = ur_softmax_nll(tp, ur_linear(tp, out, m->V, m->c), m->y, UR_SUM);
    return m->grad_error ? wrong_grad(tp, loss, m->grad_error) : loss;
}

/* The check passes, and the same tolerances fail every gradient 1% wrong (nearly everywhere). */
static void check_model(model *m)
{
    ur_assert_gradcheck(m->ps, model_loss, m, EPS, ATOL, RTOL);
    m->grad_error = 1.01f;
    ur_gradcheck_result res;
    ck_assert_int_eq(ur_gradcheck(m->ps, model_loss, m,
                                  &(ur_gradcheck_opts){.eps = EPS, .atol = ATOL, .rtol = RTOL},
                                  &res), 0);
    if (getenv("UR_TEST_VERBOSE"))
        fprintf(stderr, "1%% wrong: %d of %d scalars fail, worst ratio %.3g\n", res.failures,
                res.checked, res.worst.ratio);
    ck_assert_int_eq(res.passed, 0);
    ck_assert_int_ge(res.failures, res.checked * 8 / 10);
    ur_gradcheck_result_free(&res);
    m->grad_error = 0;
}

/* ---- Gradient checks through the unrolled graph --------------------------------------------- */

START_TEST(test_gradcheck_elman)
{
    model *m = model_new(ELMAN, 6, BATCH, 1);
    check_model(m);
    model_free(m);
}
END_TEST

START_TEST(test_gradcheck_lstm)
{
    model *m = model_new(LSTM, 6, BATCH, 2);
    check_model(m);
    model_free(m);
}
END_TEST

START_TEST(test_gradcheck_gru)
{
    model *m = model_new(GRU, 6, BATCH, 9);
    check_model(m);
    model_free(m);
}
END_TEST

START_TEST(test_gradcheck_stack)
{
    model *m = model_new(STACK, 5, BATCH, 10);
    check_model(m);
    model_free(m);
}
END_TEST

START_TEST(test_gradcheck_bidir)
{
    model *m = model_new(BIDIR, 5, BATCH, 11);
    check_model(m);
    model_free(m);
}
END_TEST

START_TEST(test_gradcheck_single)
{
    model *m = model_new(SINGLE, 7, 3, 12);
    check_model(m);
    model_free(m);
}
END_TEST

/* ---- Elman against a hand-written BPTT in double ----------------------------------------------
 * Row-vector form of the seeds' equations (W, U, V act on the right):
 *     a_t = b + h_{t-1} W + x_t U,  h_t = tanh a_t,  o_t = c + h_t V,  p_t = softmax o_t
 *     L = sum_t sum_rows -log p_t[y_t]
 * Backward, from t = T down to 1:
 *     do_t = p_t - onehot(y_t)
 *     dh_t = do_t V^T + da_{t+1} W^T          (da_{T+1} = 0)
 *     da_t = dh_t * (1 - h_t^2)
 *     dV += h_t^T do_t, dc += sum do_t, dW += h_{t-1}^T da_t, dU += x_t^T da_t, db += sum da_t
 * and dh_0 = da_1 W^T. */

typedef struct { double *U, *W, *b, *V, *c, *h0; } elman_grads;

static double *dvec(size_t n) { return calloc(n, sizeof(double)); }

static void hand_bptt(const model *m, elman_grads *g)
{
    int T = m->T, B = m->B;
    const float *U = m->cell[0].p[0]->val, *W = m->cell[0].p[1]->val, *b = m->cell[0].p[2]->val;
    const float *V = m->V->val, *c = m->c->val;
    double *h = dvec((size_t)(T + 1) * B * H); /* h[0] = h0, h[t] after step t */
    for (int j = 0; j < B * H; j++) h[j] = m->h0[0]->val[j];
    double *p = dvec((size_t)T * B * K);
    for (int t = 1; t <= T; t++)
        for (int r = 0; r < B; r++) {
            const float *x = m->x + ((size_t)(t - 1) * B + r) * IN;
            const double *hp = h + ((size_t)(t - 1) * B + r) * H;
            double *hn = h + ((size_t)t * B + r) * H;
            for (int j = 0; j < H; j++) {
                double a = b[j];
                for (int k = 0; k < H; k++) a += hp[k] * W[k * H + j];
                for (int k = 0; k < IN; k++) a += x[k] * U[k * H + j];
                hn[j] = tanh(a);
            }
            double o[K], mx = -1e300, z = 0;
            for (int q = 0; q < K; q++) {
                o[q] = c[q];
                for (int k = 0; k < H; k++) o[q] += hn[k] * V[k * K + q];
                if (o[q] > mx) mx = o[q];
            }
            for (int q = 0; q < K; q++) z += exp(o[q] - mx);
            for (int q = 0; q < K; q++) p[((size_t)(t - 1) * B + r) * K + q] = exp(o[q] - mx) / z;
        }

    double *da_next = dvec((size_t)B * H), *da = dvec((size_t)B * H);
    for (int t = T; t >= 1; t--) {
        for (int r = 0; r < B; r++) {
            double dO[K], dh[H];
            for (int q = 0; q < K; q++)
                dO[q] = p[((size_t)(t - 1) * B + r) * K + q] - (m->y[(t - 1) * B + r] == q);
            const double *ht = h + ((size_t)t * B + r) * H;
            const double *hp = h + ((size_t)(t - 1) * B + r) * H;
            const float *x = m->x + ((size_t)(t - 1) * B + r) * IN;
            for (int k = 0; k < H; k++) {
                dh[k] = 0;
                for (int q = 0; q < K; q++) dh[k] += dO[q] * V[k * K + q];
                for (int j = 0; j < H; j++) dh[k] += da_next[r * H + j] * W[k * H + j];
                da[r * H + k] = dh[k] * (1 - ht[k] * ht[k]);
            }
            for (int q = 0; q < K; q++) {
                g->c[q] += dO[q];
                for (int k = 0; k < H; k++) g->V[k * K + q] += ht[k] * dO[q];
            }
            for (int j = 0; j < H; j++) {
                g->b[j] += da[r * H + j];
                for (int k = 0; k < H; k++) g->W[k * H + j] += hp[k] * da[r * H + j];
                for (int k = 0; k < IN; k++) g->U[k * H + j] += x[k] * da[r * H + j];
            }
        }
        memcpy(da_next, da, (size_t)B * H * sizeof *da);
    }
    for (int r = 0; r < B; r++)
        for (int k = 0; k < H; k++)
            for (int j = 0; j < H; j++) g->h0[r * H + k] += da_next[r * H + j] * W[k * H + j];
    free(h);
    free(p);
    free(da);
    free(da_next);
}

/* max |tape - hand| / max |hand| over one parameter. */
static double rel_err(const ur_tensor *t, const double *want)
{
    double num = 0, den = 0;
    for (size_t j = 0; j < ur_numel(t); j++) {
        num = fmax(num, fabs(t->grad[j] - want[j]));
        den = fmax(den, fabs(want[j]));
    }
    return den > 0 ? num / den : num;
}

START_TEST(test_elman_hand_bptt)
{
    model *m = model_new(ELMAN, 7, 3, 3);
    ur_tape *tp = ur_tape_new(0);
    ur_params_zero_grad(m->ps);
    ck_assert_int_eq(ur_backward(tp, model_loss(tp, m)), 0);
    elman_grads g = {dvec(IN * H), dvec(H * H), dvec(H), dvec(H * K), dvec(K), dvec(3 * H)};
    hand_bptt(m, &g);
    struct { const ur_tensor *t; double *want; } cmp[] = {
        {m->cell[0].p[0], g.U}, {m->cell[0].p[1], g.W}, {m->cell[0].p[2], g.b},
        {m->V, g.V}, {m->c, g.c}, {m->h0[0], g.h0}};
    for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++) {
        double e = rel_err(cmp[k].t, cmp[k].want);
        ck_assert_msg(e <= 1e-5, "%s: tape vs hand BPTT relative error %.3g", cmp[k].t->name, e);
        free(cmp[k].want);
    }
    ur_tape_free(tp);
    model_free(m);
}
END_TEST

/* ---- Parameter sharing and linear tape growth --------------------------------------------- */

static int nodes_for(kind k, int T)
{
    model *m = model_new(k, T, BATCH, 4);
    ur_tape *tp = ur_tape_new(0);
    model_loss(tp, m);
    ck_assert_ptr_null(ur_tape_error(tp));
    int n = ur_tape_node_count(tp);
    ur_tape_free(tp);
    model_free(m);
    return n;
}

static void check_sharing(kind k)
{
    model *m = model_new(k, 9, BATCH, 5);
    int count = ur_params_count(m->ps);
    size_t numel = ur_params_numel(m->ps);
    const float *storage[16];
    for (int j = 0; j < count; j++) storage[j] = ur_params_at(m->ps, j)->val;
    ur_tape *tp = ur_tape_new(0);
    for (int T = 5; T <= 9; T += 4) {
        m->T = T; /* the first T steps of the same data */
        ur_tape_reset(tp);
        ck_assert_int_eq(ur_backward(tp, model_loss(tp, m)), 0);
        ck_assert_int_eq(ur_params_count(m->ps), count);
        ck_assert_uint_eq(ur_params_numel(m->ps), numel);
        for (int j = 0; j < count; j++) ck_assert_ptr_eq(ur_params_at(m->ps, j)->val, storage[j]);
    }
    ur_tape_free(tp);
    model_free(m);

    int n3 = nodes_for(k, 3), n4 = nodes_for(k, 4), n10 = nodes_for(k, 10);
    int per_step = n4 - n3, fixed = n3 - 3 * per_step;
    ck_assert_int_gt(per_step, 0);
    ck_assert_msg(n10 == fixed + 10 * per_step, "nodes at T=10: %d, expected %d + 10 * %d", n10,
                  fixed, per_step);
}

START_TEST(test_sharing_elman) { check_sharing(ELMAN); }
END_TEST

START_TEST(test_sharing_lstm) { check_sharing(LSTM); }
END_TEST

/* ---- LSTM against hand-computed values ------------------------------------------------------
 * H = 1, IN = 1: Wx = [0.5 -0.5 1 0.25] (gates i f g o), Wh = [0.3 0.2 -0.4 0.1], b = [0 1 0 0]
 * (the forget bias the constructor sets), h0 = 0, c0 = 0.5, x = 1 then -1:
 *   step 1: i = s(0.5) = 0.62245933, f = s(0.5), g = tanh 1 = 0.76159416, o = s(0.25) =
 *           0.56217650, c1 = f 0.5 + i g = 0.78529105, h1 = o tanh c1 = 0.36863777
 *   step 2: z = [-0.5 + 0.3 h1, 1.5 + 0.2 h1, -1 - 0.4 h1, -0.25 + 0.1 h1]:
 *           c2 = 0.32055116, h2 = 0.13854651 */
START_TEST(test_lstm_hand_values)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 6);
    ur_cell cell;
    ck_assert_int_eq(ur_lstm_cell(&cell, ps, "lstm", 1, 1, &rng), 0);
    ur_tensor *wx = ur_params_get(ps, "lstm.Wx"), *wh = ur_params_get(ps, "lstm.Wh");
    ur_tensor *b = ur_params_get(ps, "lstm.b");
    ck_assert_ptr_nonnull(wx);
    ck_assert_int_eq(wx->cols, 4);
    ck_assert_float_eq(b->val[1], 1.0f); /* forget gate bias initialised to 1 */
    memcpy(wx->val, (float[]){0.5f, -0.5f, 1.0f, 0.25f}, 4 * sizeof(float));
    memcpy(wh->val, (float[]){0.3f, 0.2f, -0.4f, 0.1f}, 4 * sizeof(float));
    b->val[0] = b->val[2] = b->val[3] = 0.0f;

    ur_tape *tp = ur_tape_new(0);
    ur_state init = {NULL, ur_input_from(tp, 1, 1, (float[]){0.5f})};
    ur_seq seq;
    ck_assert_int_eq(ur_unroll(tp, &cell, ur_input_from(tp, 2, 1, (float[]){1, -1}), 2, init, 0,
                               &seq), 0);
    ck_assert_float_eq_tol(seq.states[0].c->val[0], 0.7852910545643936, 1e-6);
    ck_assert_float_eq_tol(seq.states[0].h->val[0], 0.36863776968363376, 1e-6);
    ck_assert_float_eq_tol(seq.states[1].c->val[0], 0.3205511571835971, 1e-6);
    ck_assert_float_eq_tol(seq.states[1].h->val[0], 0.13854651246393826, 1e-6);
    ck_assert_float_eq_tol(seq.H->val[1], 0.13854651246393826, 1e-6);
    ck_assert_ptr_eq(seq.last.h, seq.states[1].h);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* ---- Bidirectional: who sees what ------------------------------------------------------------
 * Changing the inputs after step t0 leaves the forward half of every step <= t0 bit-exact, and
 * changes the backward half at step 0 (it has read the whole sequence). */
START_TEST(test_bidir_dependence)
{
    model *m = model_new(BIDIR, 6, BATCH, 13);
    int T = m->T, B = m->B, W = H + H2;
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *ref = model_body(tp, m);
    ck_assert_ptr_null(ur_tape_error(tp));
    ck_assert_int_eq(ref->rows, T * B);
    ck_assert_int_eq(ref->cols, W);
    float *base = malloc(ur_numel(ref) * sizeof *base);
    memcpy(base, ref->val, ur_numel(ref) * sizeof *base);
    float *x0 = malloc((size_t)T * B * IN * sizeof *x0);
    memcpy(x0, m->x, (size_t)T * B * IN * sizeof *x0);

    for (int t0 = T - 2; t0 >= 0; t0--) {
        memcpy(m->x, x0, (size_t)T * B * IN * sizeof *x0);
        for (int j = (t0 + 1) * B * IN; j < T * B * IN; j++) m->x[j] += 0.25f;
        ur_tape_reset(tp);
        ur_tensor *out = model_body(tp, m);
        for (int r = 0; r < (t0 + 1) * B; r++)
            ck_assert_msg(memcmp(out->val + (size_t)r * W, base + (size_t)r * W,
                                 H * sizeof(float)) == 0,
                          "forward half of row %d changed with inputs after step %d", r, t0);
        double moved = 0; /* backward half at step 0 */
        for (int r = 0; r < B; r++)
            for (int j = H; j < W; j++)
                moved = fmax(moved, fabs(out->val[r * W + j] - base[r * W + j]));
        ck_assert_msg(moved > 1e-4, "backward half at step 0 ignores steps after %d", t0);
    }
    /* and only the last input changed: step 0's backward half still moves */
    memcpy(m->x, x0, (size_t)T * B * IN * sizeof *x0);
    for (int j = (T - 1) * B * IN; j < T * B * IN; j++) m->x[j] -= 0.5f;
    ur_tape_reset(tp);
    ur_tensor *out = model_body(tp, m);
    ck_assert(memcmp(out->val, base, (size_t)B * W * sizeof(float)) != 0);
    ck_assert(memcmp(out->val, base, (size_t)(T - 1) * B * W * sizeof(float)) != 0);
    free(base);
    free(x0);
    ur_tape_free(tp);
    model_free(m);
}
END_TEST

/* ---- A stack of two LSTMs is two LSTMs chained by hand -------------------------------------- */

static ur_tensor *chain_loss(ur_tape *tp, model *m, const ur_cell *cells, int stacked)
{
    ur_tensor *x = model_x(tp, m), *top;
    ur_state init[2] = {{m->h0[0], m->c0[0]}, {m->h0[1], m->c0[1]}};
    if (stacked) {
        ur_stack st;
        ur_stack_seq seq;
        ck_assert_int_eq(ur_stack_init(&st, 2, cells, 0.0f, NULL), 0);
        ck_assert_int_eq(ur_stack_unroll(tp, &st, x, m->T, init, &seq), 0);
        ck_assert_int_eq(seq.layers, 2);
        ck_assert_ptr_eq(seq.last[1].h, seq.layer[1].last.h);
        top = seq.H;
    } else {
        ur_seq s0, s1;
        ck_assert_int_eq(ur_unroll(tp, &cells[0], x, m->T, init[0], 0, &s0), 0);
        ck_assert_int_eq(ur_unroll(tp, &cells[1], s0.H, m->T, init[1], 0, &s1), 0);
        top = s1.H;
    }
    return ur_softmax_nll(tp, ur_linear(tp, top, m->V, m->c), m->y, UR_SUM);
}

START_TEST(test_stack_equals_chain)
{
    model *m = model_new(LSTM, 6, BATCH, 14);
    ur_rng rng;
    ur_rng_seed(&rng, 15);
    ur_cell cells[2] = {m->cell[0]};
    ck_assert_int_eq(ur_lstm_cell(&cells[1], m->ps, "top", H, H, &rng), 0);
    m->cell[1] = cells[1];
    init_state(m, 1, &rng);
    int n = ur_params_count(m->ps);
    size_t total = ur_params_numel(m->ps);
    float *g = malloc(total * sizeof *g);
    float loss[2];
    ur_tape *tp = ur_tape_new(0);
    for (int stacked = 0; stacked < 2; stacked++) {
        ur_tape_reset(tp);
        ur_params_zero_grad(m->ps);
        ur_tensor *l = chain_loss(tp, m, cells, stacked);
        loss[stacked] = l->val[0];
        ck_assert_int_eq(ur_backward(tp, l), 0);
        size_t at = 0;
        for (int k = 0; k < n; k++) {
            ur_tensor *p = ur_params_at(m->ps, k);
            if (!stacked) memcpy(g + at, p->grad, ur_numel(p) * sizeof *g);
            else
                for (size_t j = 0; j < ur_numel(p); j++)
                    ck_assert_msg(g[at + j] == p->grad[j], "%s[%zu]: chained %g, stacked %g",
                                  p->name, j, (double)g[at + j], (double)p->grad[j]);
            at += ur_numel(p);
        }
    }
    ck_assert_float_eq(loss[0], loss[1]);
    free(g);
    ur_tape_free(tp);
    model_free(m);
}
END_TEST

/* ---- Errors --------------------------------------------------------------------------------- */

static void expect_error(const ur_tape *tp, const char *const *parts)
{
    const char *e = ur_tape_error(tp);
    ck_assert_msg(e != NULL, "expected a tape error");
    for (; *parts; parts++) ck_assert_msg(strstr(e, *parts), "'%s' lacks '%s'", e, *parts);
}

START_TEST(test_errors_unroll)
{
    model *m = model_new(LSTM, 5, BATCH, 8);
    ur_tape *tp = ur_tape_new(0);
    ur_seq seq;
    ur_state none = {NULL, NULL};

    /* wrong input width */
    ck_assert_int_eq(ur_unroll(tp, &m->cell[0], ur_input(tp, 10, IN + 1), 5, none, 0, &seq), -1);
    expect_error(tp, (const char *[]){"unroll", "lstm", "10x4", "3 features", NULL});
    /* T does not divide the rows */
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_unroll(tp, &m->cell[0], ur_input(tp, 10, IN), 3, none, 0, &seq), -1);
    expect_error(tp, (const char *[]){"unroll", "lstm", "3 steps", "10x3", NULL});
    /* wrong initial state shape */
    ur_tape_reset(tp);
    ur_state bad = {ur_input(tp, 3, H), NULL};
    ck_assert_int_eq(ur_unroll(tp, &m->cell[0], ur_input(tp, 10, IN), 5, bad, 0, &seq), -1);
    expect_error(tp, (const char *[]){"unroll", "lstm", "3x4", "2x4", NULL});
    ur_tape_reset(tp);
    ur_state badc = {NULL, ur_input(tp, 2, H + 1)};
    ck_assert_int_eq(ur_unroll(tp, &m->cell[0], ur_input(tp, 10, IN), 5, badc, 0, &seq), -1);
    expect_error(tp, (const char *[]){"initial c", "2x5", "2x4", NULL});

    /* constructors */
    ur_cell cell;
    ur_rng rng;
    ur_rng_seed(&rng, 1);
    ck_assert_int_eq(ur_lstm_cell(&cell, m->ps, "x", 0, 4, &rng), -1);
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "lstm_cell"));
    ck_assert_int_eq(ur_lstm_cell(&cell, m->ps, "rnn", 3, 4, &rng), -1); /* names taken */
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "lstm_cell(rnn)"));
    ck_assert_int_eq(ur_gru_cell(&cell, m->ps, "g", 3, -1, &rng), -1);
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "gru_cell(g)"));
    ur_tape_free(tp);
    model_free(m);
}
END_TEST

START_TEST(test_errors_builders)
{
    model *m = model_new(STACK, 5, BATCH, 16);
    ur_tape *tp = ur_tape_new(0);
    ur_stack_seq sseq;
    ur_bidir_seq bseq;
    ur_state none = {NULL, NULL}, init[2] = {{NULL, NULL}, {NULL, NULL}};

    /* stack: wrong input width, T not dividing, wrong initial state of layer 1 */
    ck_assert_int_eq(ur_stack_unroll(tp, &m->st, ur_input(tp, 10, 5), 5, NULL, &sseq), -1);
    expect_error(tp, (const char *[]){"stack_unroll", "layer 0 (lstm)", "3 features", "10x5", NULL});
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_stack_unroll(tp, &m->st, ur_input(tp, 10, IN), 4, NULL, &sseq), -1);
    expect_error(tp, (const char *[]){"stack_unroll", "4 steps", "10x3", NULL});
    ur_tape_reset(tp);
    init[1].h = ur_input(tp, 2, H);
    ck_assert_int_eq(ur_stack_unroll(tp, &m->st, ur_input(tp, 10, IN), 5, init, &sseq), -1);
    expect_error(tp, (const char *[]){"stack_unroll", "layer 1 (gru)", "2x4", "2x3", NULL});
    ur_tape_reset(tp);
    ck_assert(ur_stack_single_output(tp, &m->st, ur_input(tp, 9, IN), 5, NULL, NULL) ==
              ur_tape_poison(tp));
    expect_error(tp, (const char *[]){"stack_unroll", "5 steps", "9x3", NULL});

    /* bidirectional: cells reading different widths, T, a bad backward initial state */
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_bidir_unroll(tp, &m->cell[0], &m->cell[1], ur_input(tp, 10, IN), 5, none,
                                     none, &bseq), -1);
    expect_error(tp, (const char *[]){"bidir_unroll", "10x3", "(lstm) takes 3", "(gru) 4", NULL});
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_bidir_unroll(tp, &m->cell[0], &m->cell[0], ur_input(tp, 10, IN), 3, none,
                                     none, &bseq), -1);
    expect_error(tp, (const char *[]){"bidir_unroll", "3 steps", "10x3", NULL});
    ur_tape_reset(tp);
    ur_state badc = {NULL, ur_input(tp, 5, H)};
    ck_assert_int_eq(ur_bidir_unroll(tp, &m->cell[0], &m->cell[0], ur_input(tp, 10, IN), 5, none,
                                     badc, &bseq), -1);
    expect_error(tp, (const char *[]){"bidir_unroll", "backward cell (lstm) initial c", "5x4",
                                      "2x4", NULL});

    /* single output: the cell's own unroll reports */
    ur_tape_reset(tp);
    ck_assert(ur_single_output(tp, &m->cell[0], ur_input(tp, 10, IN + 2), 5, none, NULL) ==
              ur_tape_poison(tp));
    expect_error(tp, (const char *[]){"unroll(lstm)", "10x5", "3 features", NULL});

    /* stack_init: sizes that do not chain, bad dropout, dropout without rng */
    ur_stack st;
    ur_cell wide[2] = {m->cell[0], m->cell[0]};
    ck_assert_int_eq(ur_stack_init(&st, 2, wide, 0.0f, NULL), -1);
    ck_assert_msg(strstr(ur_model_error(), "layer 1 (lstm) takes 3 features but layer 0 (lstm) "
                                           "gives 4"), "%s", ur_model_error());
    ck_assert_int_eq(ur_stack_init(&st, 1, wide, 1.0f, NULL), -1);
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "dropout 1"));
    ck_assert_int_eq(ur_stack_init(&st, 1, wide, 0.5f, NULL), -1);
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "needs an rng"));
    ck_assert_int_eq(ur_stack_init(&st, 0, wide, 0.0f, NULL), -1);
    ck_assert_int_eq(ur_stack_init(&st, 1, wide, 0.0f, NULL), 0);
    ur_tape_free(tp);
    model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("models");
    TCase *tc = tcase_create("models");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gradcheck_elman);
    tcase_add_test(tc, test_gradcheck_lstm);
    tcase_add_test(tc, test_gradcheck_gru);
    tcase_add_test(tc, test_gradcheck_stack);
    tcase_add_test(tc, test_gradcheck_bidir);
    tcase_add_test(tc, test_gradcheck_single);
    tcase_add_test(tc, test_elman_hand_bptt);
    tcase_add_test(tc, test_sharing_elman);
    tcase_add_test(tc, test_sharing_lstm);
    tcase_add_test(tc, test_lstm_hand_values);
    tcase_add_test(tc, test_bidir_dependence);
    tcase_add_test(tc, test_stack_equals_chain);
    tcase_add_test(tc, test_errors_unroll);
    tcase_add_test(tc, test_errors_builders);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
