/* Batches of uneven lengths.
 *
 * Ops: the length mask, ur_select_rows, ur_mask_rows and ur_mask_rows_into (values, gradients,
 * a NaN in a row not chosen stays out), the masked losses (equal to the unmasked ones over the real rows).
 * Models: a batch of three sequences of lengths 2, 5 and 7, padded to 7 steps with junk, gives
 * the sum of the gradients of the three sequences run alone (to 1e-5 relative) for Elman,
 * LSTM, GRU, stacked, bidirectional, single-output and stacked single-output models, Jordan
 * networks (teacher forcing and free-running) and truncated BPTT; the masked models pass the
 * gradient check; outputs past a length are zero and pass no gradient back (a loss reading
 * them unmasked has the masked one's gradient); lengths of T cost nothing; a length of 0,
 * above T or negative is an error with a message.
 *
 * Sizes: T = padded steps, B = batch, IN = input features, H and H2 = hidden, K = classes. */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

/* The project's gradient-check criterion (tests/test_models.c). */
#define ATOL 1e-5
#define RTOL 1e-3
#define EPS UR_GRADCHECK_EPS
/* A padded batch against the sum of its sequences run alone: per parameter,
 * max |batch - sum| <= SUM_RTOL max |sum|. */
#define SUM_RTOL 1e-5

enum { T = 7, B = 3, IN = 3, H = 4, H2 = 3, K = 3 };
static const int LENS[B] = {2, 5, 7};

static void expect_error(const ur_tape *tp, const char *const *parts)
{
    const char *e = ur_tape_error(tp);
    ck_assert_msg(e != NULL, "expected a tape error");
    for (; *parts; parts++) ck_assert_msg(strstr(e, *parts), "'%s' lacks '%s'", e, *parts);
}

/* Every parameter's gradient, in ur_params_at order (malloc'd). */
static float *grads_copy(ur_params *ps)
{
    float *g = malloc(ur_params_numel(ps) * sizeof *g), *at = g;
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(at, p->grad, ur_numel(p) * sizeof *g);
        at += ur_numel(p);
    }
    return g;
}

/* Each parameter's gradient against want: max |g - want| <= SUM_RTOL max |want|. */
static void expect_grads(ur_params *ps, const float *want, const char *what)
{
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        double num = 0, den = 0;
        for (size_t j = 0; j < ur_numel(p); j++) {
            num = fmax(num, fabs((double)p->grad[j] - want[j]));
            den = fmax(den, fabs((double)want[j]));
        }
        if (getenv("UR_TEST_VERBOSE"))
            fprintf(stderr, "%s %s: max |batch - sum| %.3g, max |sum| %.3g\n", what, p->name, num,
                    den);
        ck_assert_msg(den > 0, "%s: %s has no gradient at all", what, p->name);
        ck_assert_msg(num <= SUM_RTOL * den, "%s: %s differs from the sum of the sequences run "
                      "alone by %.3g (max |gradient| %.3g)", what, p->name, num, den);
        want += ur_numel(p);
    }
}

/* ---- The ops ---------------------------------------------------------------------------- */

START_TEST(test_length_mask)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *m = ur_length_mask(tp, 3, 3, (const int[]){2, 0, 3});
    const float want[9] = {1, 0, 1, 1, 0, 1, 0, 0, 1};
    ck_assert_int_eq(m->rows, 9);
    ck_assert_int_eq(m->cols, 1);
    for (int r = 0; r < 9; r++) ck_assert_float_eq(m->val[r], want[r]);
    ck_assert_int_eq(m->requires_grad, 0);
    ur_tape_reset(tp);
    ur_length_mask(tp, 3, 2, (const int[]){2, 4});
    expect_error(tp, (const char *[]){"length_mask", "sequence 1 has length 4", "[0, 3]", NULL});
    ur_tape_reset(tp);
    ur_length_mask(tp, 3, 2, NULL);
    expect_error(tp, (const char *[]){"length_mask", "lengths NULL", NULL});
    ur_tape_free(tp);
}
END_TEST

/* select and mask: the chosen rows only, and a NaN or Inf elsewhere reaches nothing. */
START_TEST(test_select_and_mask_rows)
{
    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a", 3, 2), *b = ur_params_add(ps, "b", 3, 2);
    for (int k = 0; k < 6; k++) {
        a->val[k] = (float)(k + 1);
        b->val[k] = -(float)(k + 1);
    }
    a->val[2] = NAN;      /* row 1 of a: not chosen */
    b->val[1] = INFINITY; /* row 0 of b: not chosen */
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *m = ur_input_from(tp, 3, 1, (const float[]){1, 0, 1});
    ur_tensor *y = ur_select_rows(tp, m, a, b);
    ur_tensor *z = ur_mask_rows(tp, a, m);
    const float wy[6] = {1, 2, -3, -4, 5, 6};
    for (int k = 0; k < 6; k++) {
        ck_assert(isfinite(y->val[k]) && isfinite(z->val[k]));
        int r = k / 2;
        ck_assert_float_eq(y->val[k], r == 1 ? -(float)(k + 1) : (float)(k + 1));
        ck_assert_float_eq(z->val[k], r == 1 ? 0.0f : (float)(k + 1));
    }
    ur_tensor *loss = ur_add(tp, ur_sum(tp, ur_mul(tp, y, ur_input_from(tp, 3, 2, wy))),
                             ur_sum(tp, ur_scale(tp, z, 0.5f)));
    ur_params_zero_grad(ps);
    ck_assert_int_eq(ur_backward(tp, loss), 0);
    for (int k = 0; k < 6; k++) {
        int r = k / 2;
        ck_assert_float_eq(a->grad[k], r == 1 ? 0.0f : wy[k] + 0.5f);
        ck_assert_float_eq(b->grad[k], r == 1 ? wy[k] : 0.0f);
    }
    ck_assert_ptr_null(m->grad); /* the mask is a constant */

    /* bad masks */
    ur_tape_reset(tp);
    ur_select_rows(tp, ur_input_from(tp, 3, 1, (const float[]){1, 0.5f, 0}), a, b);
    expect_error(tp, (const char *[]){"select_rows", "mask row 1 is 0.5", "0 or 1", NULL});
    ur_tape_reset(tp);
    ur_mask_rows(tp, a, ur_input(tp, 3, 2));
    expect_error(tp, (const char *[]){"mask_rows", "3x2", "3x1 column", NULL});
    ur_tape_reset(tp);
    ur_select_rows(tp, ur_input(tp, 3, 1), a, ur_input(tp, 3, 3));
    expect_error(tp, (const char *[]){"select_rows", "3x2", "3x3", NULL});
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* mask_rows_into: the values and gradient of mask_rows, written into rows of a bigger tensor. */
START_TEST(test_mask_rows_into)
{
    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a", 3, 2);
    for (int k = 0; k < 6; k++) a->val[k] = (float)(k + 1);
    a->val[2] = NAN; /* row 1: masked out */
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *m = ur_input_from(tp, 3, 1, (const float[]){1, 0, 1});
    ur_tensor *big = ur_tensor_new(tp, 6, 2);
    ur_tensor *y = ur_mask_rows_into(tp, a, m, ur_rows(tp, big, 3, 3));
    ck_assert(y->val == big->val + 6);
    for (int k = 0; k < 6; k++) ck_assert_float_eq(y->val[k], k / 2 == 1 ? 0.0f : (float)(k + 1));
    const float w[6] = {0.5f, -1, 2, 3, -0.25f, 4};
    ur_params_zero_grad(ps);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, y, ur_input_from(tp, 3, 2, w)))), 0);
    for (int k = 0; k < 6; k++) ck_assert_float_eq(a->grad[k], k / 2 == 1 ? 0.0f : w[k]);
    /* out must be unwritten, of x's shape, apart from x */
    ur_tape_reset(tp);
    m = ur_input_from(tp, 3, 1, (const float[]){1, 0, 1});
    ur_tensor *x = ur_tanh(tp, a);
    ur_mask_rows_into(tp, a, m, x);
    expect_error(tp, (const char *[]){"mask_rows_into", "no op has written", NULL});
    ur_tape_reset(tp);
    m = ur_input_from(tp, 3, 1, (const float[]){1, 0, 1});
    ur_mask_rows_into(tp, a, m, ur_input(tp, 2, 2));
    expect_error(tp, (const char *[]){"mask_rows_into", "3x2", "2x2", NULL});
    ur_tape_reset(tp);
    m = ur_input_from(tp, 3, 1, (const float[]){1, 0, 1});
    big = ur_input(tp, 4, 2);
    ur_mask_rows_into(tp, ur_rows(tp, big, 0, 3), m, ur_rows(tp, big, 1, 3));
    expect_error(tp, (const char *[]){"mask_rows_into", "overlap", NULL});
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

typedef struct {
    ur_params *ps;
    ur_tensor *a, *b;
    float m[5], w[5 * 4];
} rows_fix;

static ur_tensor *rows_loss(ur_tape *tp, void *ctx)
{
    rows_fix *f = ctx;
    ur_tensor *m = ur_input_from(tp, 5, 1, f->m), *w = ur_input_from(tp, 5, 4, f->w);
    ur_tensor *y = ur_select_rows(tp, m, ur_tanh(tp, f->a), f->b);
    ur_tensor *z = ur_mask_rows(tp, ur_mul(tp, f->a, f->b), m);
    return ur_sum(tp, ur_mul(tp, ur_add(tp, y, z), w));
}

START_TEST(test_rows_gradcheck)
{
    rows_fix f = {.m = {1, 0, 0, 1, 1}};
    ur_rng r;
    ur_rng_seed(&r, 3);
    f.ps = ur_params_new();
    f.a = ur_params_add(f.ps, "a", 5, 4);
    f.b = ur_params_add(f.ps, "b", 5, 4);
    ur_test_fill(f.a, &r, -1, 1);
    ur_test_fill(f.b, &r, -1, 1);
    for (int k = 0; k < 20; k++) f.w[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    ur_assert_gradcheck(f.ps, rows_loss, &f, EPS, ATOL, RTOL);
    ur_params_free(f.ps);
}
END_TEST

/* ---- Masked losses ------------------------------------------------------------------------ */

enum { LR = 6, LC = 3 };
static const float LMASK[LR] = {1, 0, 1, 1, 0, 1};

typedef struct {
    ur_params *ps;
    ur_tensor *x;
    float z[LR * LC], zb[LR * LC]; /* regression targets, 0/1-ish targets */
    int y[LR];
    int which; /* 0 nll, 1 mse, 2 xent */
    ur_reduction red;
} loss_fix;

static ur_tensor *masked_loss(ur_tape *tp, void *ctx)
{
    loss_fix *f = ctx;
    ur_tensor *m = ur_input_from(tp, LR, 1, LMASK);
    switch (f->which) {
    case 0: return ur_softmax_nll_masked(tp, f->x, f->y, m, f->red);
    case 1: return ur_mse_masked(tp, f->x, ur_input_from(tp, LR, LC, f->z), m, f->red);
    default: return ur_sigmoid_xent_masked(tp, f->x, ur_input_from(tp, LR, LC, f->zb), m, f->red);
    }
}

/* The same loss computed without the mask on the real rows only (copied into a leaf whose
 * gradient is then spread back by hand). */
static double unmasked_value(loss_fix *f, float *grad)
{
    ur_tape *tp = ur_tape_new(0);
    float xs[LR * LC], zs[LR * LC], zbs[LR * LC];
    int ys[LR], rows[LR], n = 0;
    for (int r = 0; r < LR; r++)
        if (LMASK[r] != 0.0f) {
            memcpy(xs + n * LC, f->x->val + r * LC, LC * sizeof(float));
            memcpy(zs + n * LC, f->z + r * LC, LC * sizeof(float));
            memcpy(zbs + n * LC, f->zb + r * LC, LC * sizeof(float));
            ys[n] = f->y[r];
            rows[n++] = r;
        }
    ur_tensor *x = ur_requires_grad(ur_input_from(tp, n, LC, xs)), *loss;
    switch (f->which) {
    case 0: loss = ur_softmax_nll(tp, x, ys, f->red); break;
    case 1: loss = ur_mse(tp, x, ur_input_from(tp, n, LC, zs), f->red); break;
    default: loss = ur_sigmoid_xent(tp, x, ur_input_from(tp, n, LC, zbs), f->red); break;
    }
    ck_assert_int_eq(ur_backward(tp, loss), 0);
    memset(grad, 0, LR * LC * sizeof *grad);
    for (int i = 0; i < n; i++) memcpy(grad + rows[i] * LC, x->grad + i * LC, LC * sizeof(float));
    double v = loss->exact;
    ur_tape_free(tp);
    return v;
}

START_TEST(test_masked_losses)
{
    ur_rng r;
    ur_rng_seed(&r, 4);
    loss_fix f = {0};
    f.ps = ur_params_new();
    f.x = ur_params_add(f.ps, "x", LR, LC);
    ur_test_fill(f.x, &r, -2, 2);
    for (int k = 0; k < LR * LC; k++) {
        f.z[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
        f.zb[k] = ur_rng_uniform(&r);
    }
    for (int k = 0; k < LR; k++) f.y[k] = (int)ur_rng_below(&r, LC);
    f.y[1] = 99; /* a masked row's target is never read */
    ur_tape *tp = ur_tape_new(0);
    for (f.which = 0; f.which < 3; f.which++)
        for (int red = 0; red < 2; red++) {
            f.red = red ? UR_SUM : UR_MEAN;
            float want[LR * LC];
            int saved = f.y[1];
            f.y[1] = 0;
            double v = unmasked_value(&f, want);
            f.y[1] = saved;
            /* junk in the masked rows changes nothing */
            f.x->val[1 * LC] = NAN;
            f.x->val[4 * LC + 2] = INFINITY;
            ur_tape_reset(tp);
            ur_params_zero_grad(f.ps);
            ur_tensor *loss = masked_loss(tp, &f);
            ck_assert_int_eq(ur_backward(tp, loss), 0);
            ck_assert_msg(fabs(loss->exact - v) <= 1e-6 * fabs(v), "loss %d/%d: %.9g vs %.9g",
                          f.which, red, loss->exact, v);
            for (int k = 0; k < LR * LC; k++)
                ck_assert_msg(fabsf(f.x->grad[k] - want[k]) <= 1e-6f,
                              "loss %d/%d: gradient %d is %g, want %g", f.which, red, k,
                              (double)f.x->grad[k], (double)want[k]);
            f.x->val[1 * LC] = 0.25f;
            f.x->val[4 * LC + 2] = -0.5f;
            ur_assert_gradcheck(f.ps, masked_loss, &f, EPS, ATOL, RTOL);
        }
    /* a NULL mask is the unmasked loss; a wrong mask is an error */
    ur_tape_reset(tp);
    ur_tensor *a = ur_softmax_nll_masked(tp, f.x, (const int[]){0, 1, 2, 0, 1, 2}, NULL, UR_MEAN);
    ur_tensor *b = ur_softmax_nll(tp, f.x, (const int[]){0, 1, 2, 0, 1, 2}, UR_MEAN);
    ck_assert(a->exact == b->exact);
    ur_mse_masked(tp, f.x, f.x, ur_input(tp, LR - 1, 1), UR_MEAN);
    expect_error(tp, (const char *[]){"mse_masked", "5x1", "6x1 column", NULL});
    ur_tape_reset(tp);
    ur_softmax_nll_masked(tp, f.x, (const int[]){0, 1, 2, 3, 1, 2}, ur_input_from(tp, LR, 1, LMASK),
                          UR_MEAN);
    expect_error(tp, (const char *[]){"softmax_nll_masked", "target 3 in row 3", NULL});
    /* every row masked: a mean of nothing is 0 */
    ur_tape_reset(tp);
    ck_assert_float_eq(ur_mse_masked(tp, f.x, f.x, ur_input(tp, LR, 1), UR_MEAN)->val[0], 0.0f);
    ur_tape_free(tp);
    ur_params_free(f.ps);
}
END_TEST

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

/* ---- Jordan networks ------------------------------------------------------------------------ */

enum { JOUT = 2 };

typedef struct {
    ur_params *ps;
    ur_jordan net;
    ur_tensor *y0; /* B x JOUT parameter */
    float x[T * B * IN], y[T * B * JOUT];
    ur_jordan_mode mode;
    ur_jordan_feed feed;
} jfix;

static void jfix_init(jfix *f, ur_jordan_mode mode, ur_jordan_feed feed)
{
    memset(f, 0, sizeof *f);
    ur_rng r;
    ur_rng_seed(&r, 31);
    f->ps = ur_params_new();
    ck_assert_int_eq(ur_jordan_init(&f->net, f->ps, "jordan", IN, H, JOUT, &r), 0);
    f->y0 = ur_params_add(f->ps, "y0", B, JOUT);
    ur_test_fill(f->y0, &r, -0.5f, 0.5f);
    for (int k = 0; k < T * B * IN; k++) f->x[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    for (int k = 0; k < T * B * JOUT; k++) f->y[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    f->mode = mode;
    f->feed = feed;
}

/* Summed squared error of o over the real steps, of the batch or of sequence solo alone. */
static ur_tensor *jforward(ur_tape *tp, jfix *f, int solo)
{
    int n = solo < 0 ? B : 1, Tn = solo < 0 ? T : LENS[solo];
    float xs[T * B * IN] = {0}, ys[T * B * JOUT] = {0};
    for (int t = 0; t < Tn; t++)
        for (int r = 0; r < n; r++) {
            int src = t * B + (solo < 0 ? r : solo);
            memcpy(xs + (t * n + r) * IN, f->x + src * IN, IN * sizeof(float));
            memcpy(ys + (t * n + r) * JOUT, f->y + src * JOUT, JOUT * sizeof(float));
        }
    ur_tensor *x = ur_input_from(tp, Tn * n, IN, xs), *y = ur_input_from(tp, Tn * n, JOUT, ys);
    ur_jordan_opts op = {.mode = f->mode, .feed = f->feed, .lengths = solo < 0 ? LENS : NULL};
    ur_tensor *y0 = solo < 0 ? f->y0 : ur_rows(tp, f->y0, solo, 1), *H_all;
    ur_tensor *o = ur_jordan_run(tp, &f->net, x, Tn, y, y0, &op, &H_all, NULL);
    if (solo < 0)
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++)
                if (t >= LENS[b] && !ur_tape_error(tp))
                    for (int j = 0; j < JOUT; j++)
                        ck_assert_float_eq(o->val[(t * B + b) * JOUT + j], 0.0f);
    ur_tensor *mask = solo < 0 ? ur_length_mask(tp, T, B, LENS) : NULL;
    return ur_mse_masked(tp, o, y, mask, UR_SUM);
}

static ur_tensor *jbatch_loss(ur_tape *tp, void *ctx) { return jforward(tp, ctx, -1); }

static void jcheck(ur_jordan_mode mode, ur_jordan_feed feed, const char *what)
{
    jfix f;
    jfix_init(&f, mode, feed);
    ur_tape *tp = ur_tape_new(0);
    ur_params_zero_grad(f.ps);
    for (int b = 0; b < B; b++) {
        ur_tape_reset(tp);
        ck_assert_msg(ur_backward(tp, jforward(tp, &f, b)) == 0, "%s", ur_tape_error(tp));
    }
    float *want = grads_copy(f.ps);
    ur_tape_reset(tp);
    ur_params_zero_grad(f.ps);
    ck_assert_msg(ur_backward(tp, jforward(tp, &f, -1)) == 0, "%s", ur_tape_error(tp));
    expect_grads(f.ps, want, what);
    ur_assert_gradcheck(f.ps, jbatch_loss, &f, EPS, ATOL, RTOL);
    /* bad lengths */
    ur_tape_reset(tp);
    ur_jordan_opts op = {.mode = mode, .feed = feed, .lengths = (const int[]){2, 0, 7}};
    ur_jordan_run(tp, &f.net, ur_input(tp, T * B, IN), T, ur_input(tp, T * B, JOUT), NULL, &op,
                  NULL, NULL);
    expect_error(tp, (const char *[]){"jordan", "sequence 1 has length 0", "[1, 7]", NULL});
    free(want);
    ur_tape_free(tp);
    ur_params_free(f.ps);
}

START_TEST(test_jordan_teacher) { jcheck(UR_JORDAN_TEACHER, UR_FEED_OUTPUT, "jordan teacher"); }
END_TEST
START_TEST(test_jordan_free) { jcheck(UR_JORDAN_FREE, UR_FEED_OUTPUT, "jordan free"); }
END_TEST
START_TEST(test_jordan_free_softmax) { jcheck(UR_JORDAN_FREE, UR_FEED_SOFTMAX, "jordan softmax"); }
END_TEST

/* ---- Truncated BPTT ------------------------------------------------------------------------
 * An LSTM and a linear head, every step's output scored by MSE (summed); the gradients of all
 * chunks are added up (no update in between), for the padded batch and for each sequence
 * alone through its own ur_tbptt of its own length. */

typedef struct {
    ur_params *ps;
    ur_cell cell;
    ur_tensor *V, *c;
    float x[T * B * IN], y[T * B * K];
} tfix;

/* Adds the gradients of every chunk of TBPTT(k1, k2) over sequence solo (or the batch). */
static void tbptt_grads(tfix *f, int k1, int k2, int solo)
{
    int n = solo < 0 ? B : 1, Tn = solo < 0 ? T : LENS[solo];
    float xs[T * B * IN], ys[T * B * K];
    for (int t = 0; t < Tn; t++)
        for (int r = 0; r < n; r++) {
            int src = t * B + (solo < 0 ? r : solo);
            memcpy(xs + (t * n + r) * IN, f->x + src * IN, IN * sizeof(float));
            memcpy(ys + (t * n + r) * K, f->y + src * K, K * sizeof(float));
        }
    ur_tbptt tb;
    ur_tbptt_chunk ch;
    ck_assert_int_eq(ur_tbptt_init(&tb, Tn, k1, k2, n, H, 1), 0);
    if (solo < 0) ck_assert_int_eq(ur_tbptt_set_lengths(&tb, LENS), 0);
    else ck_assert_ptr_null(ur_tbptt_lengths(&tb));
    ur_tape *tp = ur_tape_new(0);
    while (ur_tbptt_next(&tb, &ch)) {
        ur_tape_reset(tp);
        const int *cl = ur_tbptt_lengths(&tb);
        if (solo < 0)
            for (int b = 0; b < B; b++) {
                int want = LENS[b] - ch.start;
                want = want < 0 ? 0 : want > ch.len ? ch.len : want;
                ck_assert_int_eq(cl[b], want);
            }
        ur_tensor *x = ur_input_from(tp, ch.len * n, IN, xs + ch.start * n * IN);
        ur_seq seq;
        ur_unroll_opts opts = {.lengths = cl, .allow_empty = 1};
        ck_assert_int_eq(ur_unroll_with(tp, &f->cell, x, ch.len, ur_tbptt_state(&tb, tp), &opts,
                                        &seq), 0);
        int rows = (ch.len - ch.loss_from) * n;
        ur_tensor *y = ur_input_from(tp, rows, K, ys + (ch.start + ch.loss_from) * n * K);
        ur_tensor *o = ur_linear(tp, ur_rows(tp, seq.H, ch.loss_from * n, rows), f->V, f->c);
        ur_tensor *mask = seq.mask ? ur_rows(tp, seq.mask, ch.loss_from * n, rows) : NULL;
        ck_assert_msg(ur_backward(tp, ur_mse_masked(tp, o, y, mask, UR_SUM)) == 0, "%s",
                      ur_tape_error(tp));
        ck_assert_int_eq(ur_tbptt_carry_from(&tb, &ch, seq.states), 0);
    }
    ur_tape_free(tp);
    ur_tbptt_free(&tb);
}

static void tcheck(int k1, int k2)
{
    tfix f;
    ur_rng r;
    ur_rng_seed(&r, 50);
    f.ps = ur_params_new();
    ck_assert_int_eq(ur_lstm_cell(&f.cell, f.ps, "lstm", IN, H, &r), 0);
    f.V = ur_model_param(f.ps, "head", "V", H, K, 0.5f, &r);
    f.c = ur_model_param(f.ps, "head", "c", 1, K, 0.5f, &r);
    for (int k = 0; k < T * B * IN; k++) f.x[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    for (int k = 0; k < T * B * K; k++) f.y[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    ur_params_zero_grad(f.ps);
    for (int b = 0; b < B; b++) tbptt_grads(&f, k1, k2, b);
    float *want = grads_copy(f.ps);
    ur_params_zero_grad(f.ps);
    tbptt_grads(&f, k1, k2, -1);
    char what[32];
    snprintf(what, sizeof what, "tbptt(%d, %d)", k1, k2);
    expect_grads(f.ps, want, what);
    free(want);
    /* bad lengths are refused and change nothing */
    ur_tbptt tb;
    ck_assert_int_eq(ur_tbptt_init(&tb, T, k1, k2, B, H, 1), 0);
    ck_assert_int_eq(ur_tbptt_set_lengths(&tb, (const int[]){2, 0, 7}), -1);
    ck_assert_msg(strstr(ur_model_error(), "sequence 1 has length 0, outside [1, 7]"), "%s",
                  ur_model_error());
    ck_assert_ptr_null(tb.lengths);
    ck_assert_int_eq(ur_tbptt_set_lengths(&tb, LENS), 0);
    ck_assert_int_eq(ur_tbptt_set_lengths(&tb, NULL), 0);
    ck_assert_ptr_null(tb.lengths);
    ur_tbptt_free(&tb);
    ur_params_free(f.ps);
}

START_TEST(test_tbptt_chunks) { tcheck(3, 0); }
END_TEST
START_TEST(test_tbptt_overlap) { tcheck(2, 4); }
END_TEST

int main(void)
{
    Suite *s = suite_create("lengths");
    TCase *ops = tcase_create("ops");
    tcase_add_test(ops, test_length_mask);
    tcase_add_test(ops, test_select_and_mask_rows);
    tcase_add_test(ops, test_mask_rows_into);
    tcase_add_test(ops, test_rows_gradcheck);
    tcase_add_test(ops, test_masked_losses);
    suite_add_tcase(s, ops);
    TCase *models = tcase_create("models");
    tcase_set_timeout(models, 120);
    tcase_add_loop_test(models, test_padded_equals_alone, 0, N_KINDS);
    tcase_add_loop_test(models, test_gradcheck_masked, 0, N_KINDS);
    tcase_add_test(models, test_padded_outputs_get_no_gradient);
    tcase_add_test(models, test_steps_without_real_rows);
    tcase_add_test(models, test_full_lengths_cost_nothing);
    tcase_add_test(models, test_bad_lengths);
    suite_add_tcase(s, models);
    TCase *seq = tcase_create("jordan and tbptt");
    tcase_set_timeout(seq, 60);
    tcase_add_test(seq, test_jordan_teacher);
    tcase_add_test(seq, test_jordan_free);
    tcase_add_test(seq, test_jordan_free_softmax);
    tcase_add_test(seq, test_tbptt_chunks);
    tcase_add_test(seq, test_tbptt_overlap);
    suite_add_tcase(s, seq);
    return ur_test_run(s);
}
