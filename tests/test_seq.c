/* Sequence training modes: the Jordan network (teacher forcing, free-running, scheduled
 * sampling) and truncated BPTT. Shapes: T steps, B sequences, IN inputs, HID hidden, OUT
 * outputs; sequences are time-stacked (T*B rows). */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

/* Gradient checks: |a - n| <= ATOL + RTOL |n| at step EPS. The gradients here are 0.2 .. 5
 * (10th to 90th percentile), so a 1% error fails everywhere; a correct backward stays 7x
 * below the criterion. */
#define ATOL 1e-6
#define RTOL 1e-3
#define EPS UR_GRADCHECK_EPS
enum { T = 6, B = 2, IN = 3, HID = 4, OUT = 2 };

/* ---- Jordan fixture: a model, its inputs and targets, and y0 as a parameter ------------- */

typedef struct {
    ur_params *ps;
    ur_jordan m;
    ur_tensor *y0;           /* a parameter, so gradcheck covers the initial fed-back vector */
    float x[T * B * IN], y[T * B * OUT], r[T * B * OUT];
    ur_jordan_opts opts;
    uint64_t seed;           /* reseeds opts.rng before every run (same coins every time) */
    ur_rng rng;
} jfix;

static void jfix_init(jfix *f, ur_jordan_mode mode, ur_jordan_feed feed)
{
    memset(f, 0, sizeof *f);
    ur_rng r;
    ur_rng_seed(&r, 11);
    f->ps = ur_params_new();
    ck_assert_int_eq(ur_jordan_init(&f->m, f->ps, "jordan", IN, HID, OUT, &r), 0);
    f->y0 = ur_params_add(f->ps, "y0", B, OUT);
    ck_assert_ptr_nonnull(f->y0);
    ur_test_fill(f->y0, &r, -0.5f, 0.5f);
    for (int k = 0; k < T * B * IN; k++) f->x[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    for (int k = 0; k < T * B * OUT; k++) f->y[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    for (int k = 0; k < T * B * OUT; k++) f->r[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    f->opts = (ur_jordan_opts){.mode = mode, .feed = feed, .p_teacher = 0.5f, .rng = &f->rng};
    f->seed = 5;
}

static ur_tensor *jrun(ur_tape *tp, jfix *f, ur_tensor **H, ur_tensor **fed)
{
    ur_rng_seed(&f->rng, f->seed);
    ur_tensor *x = ur_input_from(tp, T * B, IN, f->x);
    ur_tensor *y = ur_input_from(tp, T * B, OUT, f->y);
    return ur_jordan_run(tp, &f->m, x, T, y, f->y0, &f->opts, H, fed);
}

/* sum(o * R + (o - y)^2): every output element matters, with a weight of its own. One sum
 * at the end, so the gradient check reads the loss in double (ur_tensor.exact). */
static ur_tensor *jloss(ur_tape *tp, void *ctx)
{
    jfix *f = ctx;
    ur_tensor *o = jrun(tp, f, NULL, NULL);
    ur_tensor *r = ur_input_from(tp, T * B, OUT, f->r);
    ur_tensor *d = ur_sub(tp, o, ur_input_from(tp, T * B, OUT, f->y));
    return ur_sum(tp, ur_add(tp, ur_mul(tp, o, r), ur_mul(tp, d, d)));
}

static void jcheck_grad(ur_jordan_mode mode, ur_jordan_feed feed, float p)
{
    jfix f;
    jfix_init(&f, mode, feed);
    f.opts.p_teacher = p;
    ur_assert_gradcheck(f.ps, jloss, &f, EPS, ATOL, RTOL);
    /* every scalar of U, W, b, V, c and y0 was compared */
    ur_gradcheck_result res;
    ck_assert_int_eq(ur_gradcheck(f.ps, jloss, &f, NULL, &res), 0);
    ck_assert_int_eq(res.checked, IN * HID + OUT * HID + HID + HID * OUT + OUT + B * OUT);
    ur_gradcheck_result_free(&res);
    ur_params_free(f.ps);
}

START_TEST(test_jordan_grad_teacher) { jcheck_grad(UR_JORDAN_TEACHER, UR_FEED_OUTPUT, 0); }
END_TEST
START_TEST(test_jordan_grad_free) { jcheck_grad(UR_JORDAN_FREE, UR_FEED_OUTPUT, 0); }
END_TEST
START_TEST(test_jordan_grad_free_softmax) { jcheck_grad(UR_JORDAN_FREE, UR_FEED_SOFTMAX, 0); }
END_TEST
START_TEST(test_jordan_grad_scheduled) { jcheck_grad(UR_JORDAN_SCHEDULED, UR_FEED_OUTPUT, 0.5f); }
END_TEST

/* Copies of H and o after one run. */
static void jvalues(jfix *f, float *H, float *o, float *fed)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *h, *y;
    ur_tensor *out = jrun(tp, f, &h, &y);
    ck_assert_msg(!ur_tape_error(tp), "%s", ur_tape_error(tp));
    if (H) memcpy(H, h->val, sizeof(float) * T * B * HID);
    if (o) memcpy(o, out->val, sizeof(float) * T * B * OUT);
    if (fed) memcpy(fed, y->val, sizeof(float) * T * B * OUT);
    ur_tape_free(tp);
}

/* Perturbs V and c (which change o_{t-1} but not the targets) and reports whether the
 * hidden states of steps >= 1 changed; step 0 never does. */
static int hidden_moves_with_output_weights(ur_jordan_mode mode)
{
    jfix f;
    jfix_init(&f, mode, UR_FEED_OUTPUT);
    float H1[T * B * HID], H2[T * B * HID], o1[T * B * OUT], o2[T * B * OUT];
    jvalues(&f, H1, o1, NULL);
    for (size_t k = 0; k < ur_numel(f.m.V); k++) f.m.V->val[k] += 0.25f;
    for (size_t k = 0; k < ur_numel(f.m.c); k++) f.m.c->val[k] -= 0.5f;
    jvalues(&f, H2, o2, NULL);
    ck_assert_msg(memcmp(o1, o2, sizeof o1) != 0, "the outputs did not change");
    ck_assert_msg(memcmp(H1, H2, sizeof(float) * B * HID) == 0, "h_0 changed");
    int moved = memcmp(H1 + B * HID, H2 + B * HID, sizeof(float) * (T - 1) * B * HID) != 0;
    ur_params_free(f.ps);
    return moved;
}

START_TEST(test_jordan_teacher_ignores_own_output)
{
    ck_assert_msg(!hidden_moves_with_output_weights(UR_JORDAN_TEACHER),
                  "teacher forcing: h_t depends on the model's own o_{t-1}");
    ck_assert_msg(hidden_moves_with_output_weights(UR_JORDAN_FREE),
                  "free running: h_t does not depend on o_{t-1}");
}
END_TEST

static double max_diff(const float *a, const float *b, int n)
{
    double d = 0;
    for (int k = 0; k < n; k++) d = fmax(d, fabs((double)a[k] - b[k]));
    return d;
}

START_TEST(test_jordan_scheduled_limits)
{
    jfix f;
    jfix_init(&f, UR_JORDAN_TEACHER, UR_FEED_OUTPUT);
    float Ht[T * B * HID], ot[T * B * OUT], Hs[T * B * HID], os[T * B * OUT];
    float Hf[T * B * HID], of[T * B * OUT], fed[T * B * OUT];
    jvalues(&f, Ht, ot, fed);
    /* teacher forcing feeds y0, then the targets of steps 0 .. T-2 */
    ck_assert(memcmp(fed, f.y0->val, sizeof(float) * B * OUT) == 0);
    ck_assert(memcmp(fed + B * OUT, f.y, sizeof(float) * (T - 1) * B * OUT) == 0);

    f.opts.mode = UR_JORDAN_SCHEDULED;
    f.opts.p_teacher = 1.0f;
    jvalues(&f, Hs, os, fed);
    ck_assert(memcmp(fed + B * OUT, f.y, sizeof(float) * (T - 1) * B * OUT) == 0);
    /* one GEMM over all steps against one per step: equal up to float rounding */
    ck_assert_msg(max_diff(Ht, Hs, T * B * HID) <= 1e-6, "H differs by %g",
                  max_diff(Ht, Hs, T * B * HID));
    ck_assert_msg(max_diff(ot, os, T * B * OUT) <= 1e-6, "o differs by %g",
                  max_diff(ot, os, T * B * OUT));

    f.opts.p_teacher = 0.0f;
    jvalues(&f, Hs, os, NULL);
    f.opts.mode = UR_JORDAN_FREE;
    jvalues(&f, Hf, of, fed);
    ck_assert(memcmp(Hs, Hf, sizeof Hs) == 0 && memcmp(os, of, sizeof os) == 0);
    /* free running feeds o_{t-1} itself */
    ck_assert(memcmp(fed + B * OUT, of, sizeof(float) * (T - 1) * B * OUT) == 0);
    ur_params_free(f.ps);
}
END_TEST

START_TEST(test_jordan_scheduled_reproducible)
{
    jfix f;
    jfix_init(&f, UR_JORDAN_SCHEDULED, UR_FEED_OUTPUT);
    f.opts.p_teacher = 0.5f;
    float o1[T * B * OUT], o2[T * B * OUT], fed1[T * B * OUT], fed2[T * B * OUT];
    jvalues(&f, NULL, o1, fed1);
    jvalues(&f, NULL, o2, fed2);
    ck_assert(memcmp(o1, o2, sizeof o1) == 0 && memcmp(fed1, fed2, sizeof fed1) == 0);
    /* each fed row is either the target row or the model's own previous output row */
    int n_target = 0, n_own = 0;
    for (int t = 1; t < T; t++)
        for (int b = 0; b < B; b++) {
            const float *row = fed1 + (t * B + b) * OUT;
            if (memcmp(row, f.y + ((t - 1) * B + b) * OUT, sizeof(float) * OUT) == 0) n_target++;
            else if (memcmp(row, o1 + ((t - 1) * B + b) * OUT, sizeof(float) * OUT) == 0) n_own++;
            else ck_abort_msg("step %d row %d is neither the target nor the output", t, b);
        }
    ck_assert_int_eq(n_target + n_own, (T - 1) * B);
    ck_assert_msg(n_target > 0 && n_own > 0, "p = 0.5 fed %d targets, %d outputs", n_target, n_own);
    ur_params_free(f.ps);
}
END_TEST

/* Classification feeds: one-hot rows with no gradient path, probabilities with one. */
START_TEST(test_jordan_classification_feeds)
{
    jfix f;
    jfix_init(&f, UR_JORDAN_FREE, UR_FEED_ARGMAX);
    f.y0 = NULL; /* zeros: a leaf, so only the model's own feeds can carry a gradient */
    for (ur_jordan_feed feed = UR_FEED_SOFTMAX; feed <= UR_FEED_SAMPLE; feed++) {
        f.opts.feed = feed;
        ur_tape *tp = ur_tape_new(0);
        ur_tensor *fed, *o = jrun(tp, &f, NULL, &fed);
        ck_assert_msg(!ur_tape_error(tp), "%s", ur_tape_error(tp));
        for (int t = 1; t < T; t++)
            for (int b = 0; b < B; b++) {
                const float *row = fed->val + (t * B + b) * OUT, *prev = o->val + ((t - 1) * B + b) * OUT;
                double sum = 0;
                for (int k = 0; k < OUT; k++) sum += row[k];
                ck_assert(fabs(sum - 1.0) < 1e-5);
                if (feed == UR_FEED_ARGMAX)
                    ck_assert(row[prev[1] > prev[0]] == 1.0f);
                if (feed != UR_FEED_SOFTMAX)
                    ck_assert(row[0] == 0.0f || row[0] == 1.0f);
            }
        /* the feed of steps >= 1 is a leaf for one-hots, on the gradient path for softmax */
        ur_tensor *later = ur_rows(tp, fed, B, (T - 1) * B);
        ck_assert_int_eq(later->requires_grad, feed == UR_FEED_SOFTMAX);
        ur_tape_free(tp);
    }
    /* a sampled run is reproducible from its seed */
    float fed1[T * B * OUT], fed2[T * B * OUT];
    f.opts.feed = UR_FEED_SAMPLE;
    jvalues(&f, NULL, NULL, fed1);
    jvalues(&f, NULL, NULL, fed2);
    ck_assert(memcmp(fed1, fed2, sizeof fed1) == 0);
    ur_params_free(f.ps);
}
END_TEST

START_TEST(test_jordan_errors)
{
    jfix f;
    jfix_init(&f, UR_JORDAN_TEACHER, UR_FEED_OUTPUT);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input_from(tp, T * B, IN, f.x);
    ur_tensor *o = ur_jordan_run(tp, &f.m, x, T, NULL, NULL, NULL, NULL, NULL);
    ck_assert_ptr_eq(o, ur_tape_poison(tp));
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "targets"));
    ur_tape_reset(tp);
    x = ur_input_from(tp, T * B, IN, f.x);
    f.opts = (ur_jordan_opts){.mode = UR_JORDAN_SCHEDULED, .feed = UR_FEED_OUTPUT, .p_teacher = 0.5f};
    ur_jordan_run(tp, &f.m, x, T, ur_input(tp, T * B, OUT), NULL, &f.opts, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "rng"));
    ur_tape_reset(tp);
    x = ur_input_from(tp, T * B, IN, f.x);
    ur_jordan_run(tp, &f.m, x, 5, NULL, NULL, &f.opts, NULL, NULL);
    ck_assert_ptr_nonnull(ur_tape_error(tp));
    ur_tape_free(tp);
    ck_assert_int_eq(ur_jordan_init(&f.m, f.ps, "jordan", IN, HID, OUT, &f.rng), -1); /* dup */
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "jordan(jordan)"));
    ck_assert_int_eq(ur_jordan_init(&f.m, f.ps, "j2", IN, 0, OUT, &f.rng), -1);
    ck_assert_ptr_nonnull(strstr(ur_model_error(), "sizes"));
    ur_params_free(f.ps);
}
END_TEST

/* ---- Truncated BPTT on an Elman cell with a linear head and an MSE loss ----------------- */

enum { LT = 10 }; /* the long sequence */

typedef struct {
    ur_params *ps;
    ur_cell cell;
    ur_tensor *V, *c;
    float x[LT * B * IN], y[LT * B * OUT];
} tfix;

static void tfix_init(tfix *f)
{
    memset(f, 0, sizeof *f);
    ur_rng r;
    ur_rng_seed(&r, 21);
    f->ps = ur_params_new();
    ck_assert_int_eq(ur_elman_cell(&f->cell, f->ps, "rnn", IN, HID, &r), 0);
    f->V = ur_model_param(f->ps, "head", "V", HID, OUT, 0.5f, &r);
    f->c = ur_model_param(f->ps, "head", "c", 1, OUT, 0.5f, &r);
    for (int k = 0; k < LT * B * IN; k++) f->x[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    for (int k = 0; k < LT * B * OUT; k++) f->y[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
}

/* Records chunk ch from init; the loss sums the squared errors of its counted steps. */
static ur_tensor *chunk_loss(ur_tape *tp, tfix *f, const ur_tbptt_chunk *ch, ur_state init,
                             ur_seq *seq)
{
    ur_tensor *x = ur_input_from(tp, ch->len * B, IN, f->x + ch->start * B * IN);
    ck_assert_int_eq(ur_unroll(tp, &f->cell, x, ch->len, init, 0, seq), 0);
    int n = (ch->len - ch->loss_from) * B;
    ur_tensor *y = ur_input_from(tp, n, OUT, f->y + (ch->start + ch->loss_from) * B * OUT);
    ur_tensor *o = ur_linear(tp, ur_rows(tp, seq->H, ch->loss_from * B, n), f->V, f->c);
    return ur_mse(tp, o, y, UR_SUM);
}

/* Copies every parameter's gradient into g. */
static void grads(ur_params *ps, float *g)
{
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(g, p->grad, ur_numel(p) * sizeof *g);
        g += ur_numel(p);
    }
}

START_TEST(test_tbptt_plan)
{
    /* TBPTT(3, 5) over 10 steps: windows [0,3) [3,6) [6,9) [9,10) */
    const int want[4][4] = {{0, 3, 0, 0}, {1, 5, 2, 2}, {4, 5, 2, 2}, {7, 3, 2, -1}};
    ur_tbptt_chunk ch;
    for (int j = 0; j < 4; j++) {
        ck_assert_int_eq(ur_tbptt_plan(10, 3, 5, j, &ch), 1);
        ck_assert_msg(ch.start == want[j][0] && ch.len == want[j][1] &&
                          ch.loss_from == want[j][2] && ch.carry == want[j][3],
                      "chunk %d: start %d len %d loss_from %d carry %d", j, ch.start, ch.len,
                      ch.loss_from, ch.carry);
    }
    ck_assert_int_eq(ur_tbptt_plan(10, 3, 5, 4, &ch), 0);
    /* k2 = 0 is k1: plain chunks, carry the last state */
    ck_assert_int_eq(ur_tbptt_plan(10, 4, 0, 1, &ch), 1);
    ck_assert(ch.start == 4 && ch.len == 4 && ch.loss_from == 0 && ch.carry == 3);
    /* TBPTT(2, 7): the first chunks all start at 0, so nothing is carried between them */
    ck_assert_int_eq(ur_tbptt_plan(10, 2, 7, 0, &ch), 1);
    ck_assert(ch.start == 0 && ch.len == 2 && ch.carry == -1);
    ck_assert_int_eq(ur_tbptt_plan(10, 2, 7, 2, &ch), 1);
    ck_assert(ch.start == 0 && ch.len == 6 && ch.loss_from == 4 && ch.carry == 0);
    ck_assert_int_eq(ur_tbptt_plan(10, 3, 2, 0, &ch), -1);
    ck_assert_int_eq(ur_tbptt_plan(0, 3, 3, 0, &ch), -1);
    ur_tbptt tb;
    ck_assert_int_eq(ur_tbptt_init(&tb, 10, 3, 2, B, HID, 0), -1);
    ur_tbptt_free(&tb);
}
END_TEST

/* One chunk of length T is full BPTT: the same gradients. */
START_TEST(test_tbptt_whole_is_bptt)
{
    tfix f;
    tfix_init(&f);
    int n = (int)ur_params_numel(f.ps);
    float *g_full = malloc(sizeof(float) * n), *g_tb = malloc(sizeof(float) * n);
    ur_tape *tp = ur_tape_new(0);
    ur_tbptt_chunk whole = {0, 0, LT, 0, -1};
    ur_seq seq;
    ur_params_zero_grad(f.ps);
    ck_assert_int_eq(ur_backward(tp, chunk_loss(tp, &f, &whole, (ur_state){NULL, NULL}, &seq)), 0);
    grads(f.ps, g_full);

    ur_tbptt tb;
    ur_tbptt_chunk ch;
    ck_assert_int_eq(ur_tbptt_init(&tb, LT, LT, 0, B, HID, 0), 0);
    int chunks = 0;
    while (ur_tbptt_next(&tb, &ch)) {
        ur_tape_reset(tp);
        ur_params_zero_grad(f.ps);
        ck_assert_int_eq(ur_backward(tp, chunk_loss(tp, &f, &ch, ur_tbptt_state(&tb, tp), &seq)), 0);
        ck_assert_int_eq(ur_tbptt_carry_from(&tb, &ch, seq.states), 0);
        chunks++;
    }
    ck_assert_int_eq(chunks, 1);
    grads(f.ps, g_tb);
    ck_assert(memcmp(g_full, g_tb, sizeof(float) * n) == 0);
    ur_tbptt_free(&tb);
    ur_tape_free(tp);
    free(g_full);
    free(g_tb);
    ur_params_free(f.ps);
}
END_TEST

/* The states of one long forward pass over all LT steps, copied out (LT x B x HID). */
static void long_states(tfix *f, float *states)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tbptt_chunk whole = {0, 0, LT, 0, -1};
    ur_seq seq;
    chunk_loss(tp, f, &whole, (ur_state){NULL, NULL}, &seq);
    memcpy(states, seq.H->val, sizeof(float) * LT * B * HID);
    ur_tape_free(tp);
}

/* Gradient check of one chunk started from fixed values: the analytic gradient is the
 * derivative with the initial state held constant, i.e. nothing crossed the boundary. */
typedef struct { tfix *f; ur_tbptt_chunk ch; const float *h0; } chunk_ctx;
static ur_tensor *fixed_start_loss(ur_tape *tp, void *ctx)
{
    chunk_ctx *c = ctx;
    ur_seq seq;
    ur_state init = {ur_input_from(tp, B, HID, c->h0), NULL};
    return chunk_loss(tp, c->f, &c->ch, init, &seq);
}

static void run_tbptt(int k1, int k2)
{
    tfix f;
    tfix_init(&f);
    float ref[LT * B * HID], h0[B * HID];
    long_states(&f, ref);
    ur_tape *tp = ur_tape_new(0);
    ur_tbptt tb;
    ur_tbptt_chunk ch;
    ck_assert_int_eq(ur_tbptt_init(&tb, LT, k1, k2, B, HID, 0), 0);
    int covered = 0;
    while (ur_tbptt_next(&tb, &ch)) {
        ur_tape_reset(tp);
        ur_state init = ur_tbptt_state(&tb, tp);
        /* the chunk starts from the long pass's state after step start - 1 */
        for (int k = 0; k < B * HID; k++) {
            float want = ch.start ? ref[(ch.start - 1) * B * HID + k] : 0.0f;
            ck_assert_msg(fabsf(init.h->val[k] - want) <= 1e-6f, "chunk %d: %g vs %g", ch.index,
                          (double)init.h->val[k], (double)want);
        }
        ck_assert_ptr_null(init.h->node);
        ck_assert_int_eq(init.h->requires_grad, 0);
        ck_assert_int_eq(ch.start + ch.loss_from, covered); /* every step counted once */
        covered += ch.len - ch.loss_from;
        memcpy(h0, init.h->val, sizeof h0);
        ur_seq seq;
        ur_params_zero_grad(f.ps);
        ck_assert_int_eq(ur_backward(tp, chunk_loss(tp, &f, &ch, init, &seq)), 0);
        ck_assert_ptr_null(init.h->grad); /* no gradient reached the carried state */
        ck_assert_int_eq(ur_tbptt_carry_from(&tb, &ch, seq.states), 0);
        if (ch.index == 1) {
            chunk_ctx c = {&f, ch, h0};
            ur_assert_gradcheck(f.ps, fixed_start_loss, &c, EPS, ATOL, RTOL);
        }
    }
    ck_assert_int_eq(covered, LT);
    /* rewinding starts over from zeros */
    ur_tbptt_rewind(&tb, 0);
    ck_assert_int_eq(ur_tbptt_next(&tb, &ch), 1);
    ck_assert(ch.index == 0 && tb.h[0] == 0.0f);
    ur_tbptt_free(&tb);
    ur_tape_free(tp);
    ur_params_free(f.ps);
}

START_TEST(test_tbptt_chunks) { run_tbptt(3, 0); }
END_TEST
START_TEST(test_tbptt_overlap) { run_tbptt(3, 5); }
END_TEST
START_TEST(test_tbptt_overlap_long_history) { run_tbptt(2, 7); }
END_TEST

/* Full BPTT of the loss of steps [3, 6) differs from its truncated gradient: the long pass
 * lets the gradient reach steps 0..2, the chunk does not. */
START_TEST(test_tbptt_truncates)
{
    tfix f;
    tfix_init(&f);
    int n = (int)ur_params_numel(f.ps);
    float *g_full = malloc(sizeof(float) * n), *g_tb = malloc(sizeof(float) * n);
    float ref[LT * B * HID];
    long_states(&f, ref);
    ur_tape *tp = ur_tape_new(0);
    ur_seq seq;
    ur_tbptt_chunk prefix = {0, 0, 6, 3, -1}, chunk = {1, 3, 3, 0, -1};
    ur_params_zero_grad(f.ps);
    ck_assert_int_eq(ur_backward(tp, chunk_loss(tp, &f, &prefix, (ur_state){NULL, NULL}, &seq)), 0);
    grads(f.ps, g_full);
    ur_tape_reset(tp);
    ur_params_zero_grad(f.ps);
    ur_state init = {ur_input_from(tp, B, HID, ref + 2 * B * HID), NULL};
    ck_assert_int_eq(ur_backward(tp, chunk_loss(tp, &f, &chunk, init, &seq)), 0);
    grads(f.ps, g_tb);
    /* U and W differ (gradient through the earlier steps); the head V, c agrees */
    int uw = IN * HID + HID * HID, head_from = uw + HID;
    ck_assert(max_diff(g_full, g_tb, uw) > 1e-4);
    ck_assert(max_diff(g_full + head_from, g_tb + head_from, n - head_from) <= 1e-5);
    ur_tape_free(tp);
    free(g_full);
    free(g_tb);
    ur_params_free(f.ps);
}
END_TEST

static Suite *seq_suite(void)
{
    Suite *s = suite_create("seq");
    TCase *j = tcase_create("jordan");
    tcase_add_test(j, test_jordan_grad_teacher);
    tcase_add_test(j, test_jordan_grad_free);
    tcase_add_test(j, test_jordan_grad_free_softmax);
    tcase_add_test(j, test_jordan_grad_scheduled);
    tcase_add_test(j, test_jordan_teacher_ignores_own_output);
    tcase_add_test(j, test_jordan_scheduled_limits);
    tcase_add_test(j, test_jordan_scheduled_reproducible);
    tcase_add_test(j, test_jordan_classification_feeds);
    tcase_add_test(j, test_jordan_errors);
    suite_add_tcase(s, j);
    TCase *t = tcase_create("tbptt");
    tcase_add_test(t, test_tbptt_plan);
    tcase_add_test(t, test_tbptt_whole_is_bptt);
    tcase_add_test(t, test_tbptt_chunks);
    tcase_add_test(t, test_tbptt_overlap);
    tcase_add_test(t, test_tbptt_overlap_long_history);
    tcase_add_test(t, test_tbptt_truncates);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return ur_test_run(seq_suite()); }
