/* Misuse of the tape is an error, never a silent wrong answer: stale and foreign tensors, a
 * second backward, non-finite values (the trap), NaN through every op, and an optimizer that
 * refuses a non-finite gradient. */
#include "ur_test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops/fastmath.h"

static void assert_error_has(const ur_tape *tp, const char *a, const char *b, const char *c)
{
    const char *e = ur_tape_error(tp);
    ck_assert_msg(e != NULL, "expected an error");
    ck_assert_msg(strstr(e, a) != NULL, "error \"%s\" lacks \"%s\"", e, a);
    if (b) ck_assert_msg(strstr(e, b) != NULL, "error \"%s\" lacks \"%s\"", e, b);
    if (c) ck_assert_msg(strstr(e, c) != NULL, "error \"%s\" lacks \"%s\"", e, c);
}

/* ---- Generations ------------------------------------------------------------------------ */

START_TEST(test_stale_tensor_is_an_error)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 3, 3);
    ur_tape *tp = ur_tape_new(0);
    ck_assert_uint_eq(ur_tape_generation(tp), 1);
    ur_tensor *old = ur_tanh(tp, ur_input(tp, 2, 3));
    ck_assert(ur_tensor_is_live(old));
    ur_tape_reset(tp);
    ck_assert_uint_eq(ur_tape_generation(tp), 2);
    ck_assert(!ur_tensor_is_live(old));
    ck_assert(ur_tensor_is_live(w)); /* parameters are exempt */
    /* Record as much as the first step did: the stale header must still be recognised. */
    ur_tensor *fresh = ur_tanh(tp, ur_input(tp, 2, 3));
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_tensor *y = ur_matmul(tp, fresh, old, 0, 0);
    ck_assert_ptr_eq(y, ur_tape_poison(tp));
    assert_error_has(tp, "matmul: input 2 is stale", "generation 1", "ur_tape_reset");
    /* Three resets after it was made, its header is still stamped with its old generation. */
    for (int k = 0; k < 2; k++) {
        ur_tape_reset(tp);
        ur_tanh(tp, ur_input(tp, 2, 3));
    }
    ur_add(tp, old, old);
    assert_error_has(tp, "add: input 1 is stale", NULL, NULL);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_foreign_tensor_is_an_error)
{
    ur_tape *t1 = ur_tape_new(0), *t2 = ur_tape_new(0);
    ur_tensor *a = ur_input(t1, 2, 2), *b = ur_input(t2, 2, 2);
    ur_sub(t1, a, b);
    assert_error_has(t1, "sub: input 2", "another tape", NULL);
    ck_assert_ptr_null(ur_tape_error(t2));
    /* concat takes its inputs in an array: checked the same way. */
    ur_tape_reset(t1);
    a = ur_input(t1, 2, 2);
    ur_tensor *x[2] = {a, b};
    ur_concat_rows(t1, 2, x);
    assert_error_has(t1, "concat_rows: input 2", "another tape", NULL);
    /* Detach copies from another tape (truncated BPTT), but not from a stale tensor. */
    ur_tape_reset(t1);
    b->val[3] = 7.0f;
    ur_tensor *d = ur_detach(t1, b);
    ck_assert_ptr_null(ur_tape_error(t1));
    ck_assert_float_eq(d->val[3], 7.0f);
    ur_tape_reset(t2);
    ur_detach(t1, b);
    assert_error_has(t1, "detach", "stale", NULL);
    ur_tape_free(t1);
    ur_tape_free(t2);
}
END_TEST

START_TEST(test_stale_state_into_unroll)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 1);
    ur_cell cell;
    ck_assert_int_eq(ur_lstm_cell(&cell, ps, "l", 3, 4, &rng), 0);
    ur_tape *tp = ur_tape_new(0);
    ur_seq seq;
    ck_assert_int_eq(ur_unroll(tp, &cell, ur_input(tp, 6, 3), 3, (ur_state){0}, 0, &seq), 0);
    ur_state kept = seq.last; /* the classic truncated-BPTT mistake: no detach */
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_unroll(tp, &cell, ur_input(tp, 6, 3), 3, kept, 0, &seq), -1);
    assert_error_has(tp, "unroll(lstm): initial h", "input 1 is stale", NULL);
    /* The c state alone is checked too. */
    ur_tape_reset(tp);
    ur_state half = {ur_input(tp, 2, 4), kept.c};
    ck_assert_int_eq(ur_unroll(tp, &cell, ur_input(tp, 6, 3), 3, half, 0, &seq), -1);
    assert_error_has(tp, "unroll(lstm): initial c", "stale", NULL);
    /* A stale loss given to backward. */
    ur_tape_reset(tp);
    ur_tensor *loss = ur_sum(tp, ur_tanh(tp, ur_params_at(ps, 0)));
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_backward(tp, loss), -1);
    assert_error_has(tp, "backward: input 1 is stale", NULL, NULL);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* ---- Second backward -------------------------------------------------------------------- */

typedef struct {
    ur_params *ps;
    ur_cell elman, lstm, gru;
    ur_tensor *V;
} three_cells;

static ur_tensor *three_cell_loss(ur_tape *tp, three_cells *m)
{
    ur_rng rng;
    ur_rng_seed(&rng, 5);
    ur_tensor *x = ur_input(tp, 4 * 2, 3);
    ur_test_fill(x, &rng, -1, 1);
    ur_seq a, b, c;
    ur_unroll(tp, &m->elman, x, 4, (ur_state){0}, 0, &a);
    ur_unroll(tp, &m->lstm, a.H, 4, (ur_state){0}, 0, &b);
    ur_unroll(tp, &m->gru, b.H, 4, (ur_state){0}, 1, &c);
    int tgt[8] = {0, 1, 2, 1, 0, 2, 2, 1};
    return ur_softmax_nll(tp, ur_matmul(tp, c.H, m->V, 0, 0), tgt, UR_MEAN);
}

static float *grads_copy(ur_params *ps)
{
    float *g = malloc(ur_params_numel(ps) * sizeof *g);
    size_t at = 0;
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(g + at, p->grad, ur_numel(p) * sizeof *g);
        at += ur_numel(p);
    }
    return g;
}

START_TEST(test_second_backward)
{
    three_cells m;
    m.ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 2);
    ck_assert_int_eq(ur_elman_cell(&m.elman, m.ps, "e", 3, 4, &rng), 0);
    ck_assert_int_eq(ur_lstm_cell(&m.lstm, m.ps, "l", 4, 5, &rng), 0);
    ck_assert_int_eq(ur_gru_cell(&m.gru, m.ps, "g", 5, 3, &rng), 0);
    m.V = ur_model_param(m.ps, "head", "V", 3, 3, 0.5f, &rng);
    ur_tape *tp = ur_tape_new(0);

    /* Plain backward: once per recording. */
    ur_tensor *loss = three_cell_loss(tp, &m);
    ur_params_zero_grad(m.ps);
    ck_assert_int_eq(ur_backward(tp, loss), 0);
    float *once = grads_copy(m.ps);
    ck_assert_int_eq(ur_backward(tp, loss), -1);
    assert_error_has(tp, "already back-propagated", "ur_backward_retain", NULL);
    ck_assert_int_eq(ur_backward(tp, loss), -1);
    float *after = grads_copy(m.ps);
    ck_assert(memcmp(once, after, ur_params_numel(m.ps) * sizeof(float)) == 0);
    free(after);

    /* Retained: every call adds exactly one gradient, whatever ran before. */
    ur_tape_reset(tp);
    loss = three_cell_loss(tp, &m);
    ur_params_zero_grad(m.ps);
    ck_assert_int_eq(ur_backward_retain(tp, loss), 0);
    ck_assert_int_eq(ur_backward_retain(tp, loss), 0);
    float *twice = grads_copy(m.ps);
    ur_params_zero_grad(m.ps);
    ck_assert_int_eq(ur_backward(tp, loss), 0); /* allowed after a retained one; the last */
    float *third = grads_copy(m.ps);
    for (size_t k = 0; k < ur_params_numel(m.ps); k++) {
        ck_assert_msg(fabsf(twice[k] - 2 * once[k]) <= 1e-6f * (1 + fabsf(once[k])),
                      "scalar %zu: %g after two backwards, %g after one", k, twice[k], once[k]);
        ck_assert_msg(third[k] == once[k], "scalar %zu: %g after zero_grad, want %g", k,
                      third[k], once[k]);
    }
    ck_assert_int_eq(ur_backward(tp, loss), -1);
    free(once);
    free(twice);
    free(third);
    ur_tape_free(tp);
    ur_params_free(m.ps);
}
END_TEST

/* ---- The non-finite trap ---------------------------------------------------------------- */

START_TEST(test_trap_forward_names_op_and_step)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 3);
    ur_cell cell;
    ck_assert_int_eq(ur_elman_cell(&cell, ps, "e", 2, 3, &rng), 0);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input(tp, 5 * 2, 2);
    x->val[3 * 4 + 1] = NAN; /* step 3, row 1, column 1 */
    ur_seq seq;
    /* Off by default: the NaN flows on silently. */
    ck_assert_int_eq(ur_unroll(tp, &cell, x, 5, (ur_state){0}, 0, &seq), 0);
    ck_assert(isnan(seq.last.h->val[0]) && !isnan(seq.last.h->val[3]));

    ur_tape_reset(tp);
    ur_tape_check_finite(tp, 1);
    x = ur_input(tp, 5 * 2, 2);
    x->val[3 * 4 + 1] = NAN;
    ck_assert_int_eq(ur_unroll(tp, &cell, x, 5, (ur_state){0}, 0, &seq), -1);
    /* The input projection x U + b runs for all steps first and meets the NaN at row 6. */
    assert_error_has(tp, "forward of op 'linear'", "NaN", "[6,");
    /* A NaN arriving through the recurrence is reported with the cell and the step. */
    ur_tape_reset(tp);
    x = ur_input(tp, 5 * 2, 2);
    ur_tensor *W = ur_params_get(ps, "e.W");
    float keep = W->val[4];
    W->val[4] = INFINITY;
    ur_unroll(tp, &cell, x, 5, (ur_state){0}, 0, &seq);
    W->val[4] = keep;
    /* Step 0 multiplies the zero initial state by the infinite weight: 0 * Inf is NaN. */
    assert_error_has(tp, "forward of op 'recurrent_addmm'", "recorded in 'elman' at time step 0",
                     "NaN");
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* A user's cell with no input projection: the NaN in the input of step 3 is met in step 3. */
static ur_state my_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    ur_tensor *a = ur_add(tp, ur_matmul(tp, in->x, cell->p[0], 0, 0),
                          ur_matmul(tp, prev.h, cell->p[1], 0, 0));
    return (ur_state){ur_tanh(tp, a), NULL};
}

START_TEST(test_trap_in_user_cell)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 3);
    ur_cell cell = {.kind = "mycell", .step = my_step, .in_dim = 2, .hidden = 3};
    cell.p[0] = ur_model_param(ps, "my", "U", 2, 3, 0.5f, &rng);
    cell.p[1] = ur_model_param(ps, "my", "W", 3, 3, 0.5f, &rng);
    ur_tape *tp = ur_tape_new(0);
    ur_tape_check_finite(tp, 1);
    ur_tensor *x = ur_input(tp, 5 * 2, 2);
    x->val[3 * 4 + 1] = NAN; /* step 3, row 0 of the step, column 1 */
    ur_seq seq;
    ck_assert_int_eq(ur_unroll(tp, &cell, x, 5, (ur_state){0}, 0, &seq), -1);
    assert_error_has(tp, "forward of op 'matmul'", "gave NaN in its 2x3 output at [0,",
                     "recorded in 'mycell' at time step 3");
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* An op whose backward produces Inf: the trap must name it, its node and the input. */
static void bad_backward(ur_node *n)
{
    float *dx = ur_grad(n->in[0]);
    for (size_t k = 0; k < ur_numel(n->out); k++) dx[k] += k == 2 ? INFINITY : n->out->grad[k];
}
static const ur_op bad_op = {"bad_identity", bad_backward};

static ur_tensor *bad_identity(ur_tape *tp, ur_tensor *x)
{
    if (!ur_op_begin(tp, "bad_identity", 1, x)) return ur_tape_poison(tp);
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    if (!y) return ur_tape_poison(tp);
    memcpy(y->val, x->val, ur_numel(x) * sizeof(float));
    ur_record(tp, &bad_op, y, 1, x);
    return y;
}

START_TEST(test_trap_backward_names_op)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 2, 3);
    ur_init_constant(w, 0.5f);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *loss = ur_sum(tp, ur_tanh(tp, bad_identity(tp, ur_scale(tp, w, 2.0f))));
    ck_assert_int_eq(ur_backward(tp, loss), 0); /* off: Inf lands in w's gradient */
    ck_assert(isinf(w->grad[2]));
    ur_params_zero_grad(ps);
    ur_tape_reset(tp);
    ur_tape_check_finite(tp, 1);
    loss = ur_sum(tp, ur_tanh(tp, bad_identity(tp, ur_scale(tp, w, 2.0f))));
    ck_assert_int_eq(ur_backward(tp, loss), -1);
    assert_error_has(tp, "backward of op 'bad_identity' (node 1)", "+Inf", "input 1 (2x3) at [0,2]");
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* ---- NaN and Inf through every op ------------------------------------------------------- */

START_TEST(test_fast_exp_special_values)
{
    ck_assert(isnan(ur_exp1(NAN)));
    ck_assert(isinf(ur_exp1(INFINITY)) && ur_exp1(INFINITY) > 0);
    ck_assert_float_eq(ur_exp1(-INFINITY), 0.0f);
    ck_assert(isinf(ur_exp1(88.73f)));
    ck_assert(isfinite(ur_exp1(88.72f)));
    ck_assert(fabs(ur_exp1(88.72f) / exp((double)88.72f) - 1) < 3e-7);
    ck_assert(fabs(ur_exp1(88.5f) / exp(88.5) - 1) < 3e-7);
    ck_assert(fabs(ur_exp1(-90.0f) / exp(-90.0) - 1) < 1e-3); /* subnormal, few bits */
    ck_assert_float_eq(ur_exp1(-104.5f), 0.0f);
    ck_assert(isnan(ur_tanh1(NAN)) && isnan(ur_sigmoid1(NAN)));
    ck_assert_float_eq(ur_tanh1(INFINITY), 1.0f);
    ck_assert_float_eq(ur_tanh1(-INFINITY), -1.0f);
    ck_assert_float_eq(ur_sigmoid1(INFINITY), 1.0f);
    ck_assert_float_eq(ur_sigmoid1(-INFINITY), 0.0f);
}
END_TEST

START_TEST(test_sigmoid_xent_infinite_logits)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input_from(tp, 1, 4, (float[]){INFINITY, INFINITY, -INFINITY, -INFINITY});
    ur_tensor *z = ur_input_from(tp, 1, 4, (float[]){1, 0, 0, 1});
    ur_tensor *l01 = ur_sigmoid_xent(tp, ur_cols(tp, x, 0, 1), ur_cols(tp, z, 0, 1), UR_SUM);
    ur_tensor *l02 = ur_sigmoid_xent(tp, ur_cols(tp, x, 2, 1), ur_cols(tp, z, 2, 1), UR_SUM);
    ck_assert_float_eq(l01->val[0], 0.0f);
    ck_assert_float_eq(l02->val[0], 0.0f);
    ur_tensor *bad = ur_sigmoid_xent(tp, ur_cols(tp, x, 1, 1), ur_cols(tp, z, 1, 1), UR_SUM);
    ck_assert(isinf(bad->val[0]) && bad->val[0] > 0);
    ur_tensor *bad2 = ur_sigmoid_xent(tp, ur_cols(tp, x, 3, 1), ur_cols(tp, z, 3, 1), UR_SUM);
    ck_assert(isinf(bad2->val[0]) && bad2->val[0] > 0);
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_tape_free(tp);
}
END_TEST

/* Each op gets inputs with one NaN element; the output must hold a NaN (ops that mix rows or
 * columns put it elsewhere, so the test only asks for one somewhere). Where the derivative
 * depends on the input's value (grad_nan), the gradient must hold a NaN too. */
typedef ur_tensor *(*nan_op)(ur_tape *tp, ur_tensor *a, ur_tensor *b);

static ur_tensor *n_add(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return ur_add(tp, a, b); }
static ur_tensor *n_sub(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return ur_sub(tp, a, b); }
static ur_tensor *n_mul(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return ur_mul(tp, a, b); }
static ur_tensor *n_scale(ur_tape *tp, ur_tensor *a, ur_tensor *b) { (void)b; return ur_scale(tp, a, 3); }
static ur_tensor *n_one_minus(ur_tape *tp, ur_tensor *a, ur_tensor *b) { (void)b; return ur_one_minus(tp, a); }
static ur_tensor *n_bias(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return ur_add_bias(tp, a, ur_rows(tp, b, 0, 1)); }
static ur_tensor *n_tanh(ur_tape *tp, ur_tensor *a, ur_tensor *b) { (void)b; return ur_tanh(tp, a); }
static ur_tensor *n_sigmoid(ur_tape *tp, ur_tensor *a, ur_tensor *b) { (void)b; return ur_sigmoid(tp, a); }
static ur_tensor *n_relu(ur_tape *tp, ur_tensor *a, ur_tensor *b) { (void)b; return ur_relu(tp, a); }
static ur_tensor *n_sum(ur_tape *tp, ur_tensor *a, ur_tensor *b) { (void)b; return ur_sum(tp, a); }
static ur_tensor *n_matmul(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return ur_matmul(tp, a, b, 0, 1); }
static ur_tensor *n_addmm(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return ur_addmm(tp, a, a, ur_matmul(tp, b, b, 1, 0)); }
static ur_tensor *n_linear(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return ur_linear(tp, a, ur_matmul(tp, b, b, 1, 0), ur_rows(tp, b, 0, 1)); }
static ur_tensor *n_concat_cols(ur_tape *tp, ur_tensor *a, ur_tensor *b) { ur_tensor *x[2] = {b, a}; return ur_concat_cols(tp, 2, x); }
static ur_tensor *n_concat_rows(ur_tape *tp, ur_tensor *a, ur_tensor *b) { ur_tensor *x[2] = {b, a}; return ur_concat_rows(tp, 2, x); }
static ur_tensor *n_cols(ur_tape *tp, ur_tensor *a, ur_tensor *b) { (void)b; return ur_cols(tp, a, 1, 3); }
static ur_tensor *n_rows(ur_tape *tp, ur_tensor *a, ur_tensor *b) { (void)b; return ur_rows(tp, a, 1, 2); }
static ur_tensor *n_mse(ur_tape *tp, ur_tensor *a, ur_tensor *b) { return ur_mse(tp, a, b, UR_MEAN); }
static ur_tensor *n_xent(ur_tape *tp, ur_tensor *a, ur_tensor *b) { (void)b; return ur_sigmoid_xent(tp, a, ur_input(tp, a->rows, a->cols), UR_MEAN); }
static ur_tensor *n_softmax_nll(ur_tape *tp, ur_tensor *a, ur_tensor *b)
{
    (void)b;
    static const int tgt[3] = {0, 3, 1};
    return ur_softmax_nll(tp, a, tgt, UR_SUM);
}
static ur_tensor *n_dropout(ur_tape *tp, ur_tensor *a, ur_tensor *b)
{
    (void)b;
    ur_rng rng;
    ur_rng_seed(&rng, 4);
    return ur_dropout(tp, a, 0.25f, &rng);
}
static ur_tensor *n_gates(ur_tape *tp, ur_tensor *a, ur_tensor *b)
{
    ur_tensor *h, *c;
    ur_lstm_gates(tp, ur_concat_cols(tp, 4, (ur_tensor *[]){a, b, a, b}), a, &h, &c);
    return ur_concat_cols(tp, 2, (ur_tensor *[]){h, c});
}
static ur_tensor *n_recurrent(ur_tape *tp, ur_tensor *a, ur_tensor *b)
{
    ur_tensor *w = ur_matmul(tp, b, b, 1, 0); /* 4 x 4 */
    ur_recurrent *r = ur_recurrent_begin(tp, w, 1, 3, NULL);
    return ur_recurrent_addmm(tp, r, 0, b, a);
}

START_TEST(test_nan_through_every_op)
{
    static const struct { const char *name; nan_op f; int grad_nan; } ops[] = {
        {"add", n_add, 0}, {"sub", n_sub, 0}, {"mul", n_mul, 1}, {"scale", n_scale, 0},
        {"one_minus", n_one_minus, 0}, {"add_bias", n_bias, 0}, {"tanh", n_tanh, 1},
        {"sigmoid", n_sigmoid, 1}, {"relu", n_relu, 1}, {"sum", n_sum, 0},
        {"matmul", n_matmul, 1}, {"addmm", n_addmm, 1}, {"linear", n_linear, 1},
        {"concat_cols", n_concat_cols, 0}, {"concat_rows", n_concat_rows, 0},
        {"cols", n_cols, 0}, {"rows", n_rows, 0}, {"mse", n_mse, 1},
        {"sigmoid_xent", n_xent, 1}, {"softmax_nll", n_softmax_nll, 1},
        {"dropout", n_dropout, 0}, {"lstm_gates", n_gates, 1},
        {"recurrent_addmm", n_recurrent, 1},
    };
    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a", 3, 4), *b = ur_params_add(ps, "b", 3, 4);
    ur_tape *tp = ur_tape_new(0);
    ur_rng rng;
    ur_rng_seed(&rng, 9);
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        ur_test_fill(a, &rng, -1, 1);
        ur_test_fill(b, &rng, -1, 1);
        a->val[1 * 4 + 2] = NAN; /* row 1, column 2: kept by every op above */
        ur_tape_reset(tp);
        ur_tensor *y = ops[k].f(tp, a, b);
        ck_assert_msg(!ur_tape_error(tp), "%s: %s", ops[k].name, ur_tape_error(tp));
        int found = 0;
        for (size_t j = 0; j < ur_numel(y); j++) found |= isnan(y->val[j]);
        ck_assert_msg(found, "%s: NaN in, no NaN out", ops[k].name);
        ur_params_zero_grad(ps);
        ur_tensor *loss = ur_sum(tp, y);
        ck_assert_int_eq(ur_backward(tp, loss), 0);
        found = 0;
        for (size_t j = 0; j < ur_numel(a); j++) found |= isnan(a->grad[j]) || isnan(b->grad[j]);
        ck_assert_msg(found == ops[k].grad_nan, "%s: NaN in forward, %s NaN in the gradient",
                      ops[k].name, found ? "a" : "no");
        /* The trap turns the same into an error naming the op. */
        ur_tape_reset(tp);
        ur_tape_check_finite(tp, 1);
        ops[k].f(tp, a, b);
        ur_tape_check_finite(tp, 0);
        if (strcmp(ops[k].name, "rows") != 0) /* a view computes nothing, so it is no op */
            assert_error_has(tp, "non-finite value: forward of op", "NaN", NULL);
    }
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* ---- Optimizer and clipping --------------------------------------------------------------- */

START_TEST(test_optimizer_refuses_non_finite_gradient)
{
    const ur_optim_kind kinds[] = {UR_OPTIM_SGD, UR_OPTIM_ADAGRAD, UR_OPTIM_RMSPROP,
                                   UR_OPTIM_ADAM, UR_OPTIM_ADAMW};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        ur_params *ps = ur_params_new();
        ur_tensor *a = ur_params_add(ps, "a", 2, 2), *b = ur_params_add(ps, "b", 1, 3);
        ur_init_constant(a, 1.0f);
        ur_init_constant(b, 2.0f);
        ur_optim_config cfg = ur_optim_defaults(kinds[k]);
        char err[128];
        ur_optim *opt = ur_optim_new(ps, &cfg, err, sizeof err);
        ck_assert_ptr_nonnull(opt);
        for (int j = 0; j < 4; j++) a->grad[j] = 0.5f;
        b->grad[1] = k % 2 ? INFINITY : NAN;
        ck_assert_int_eq(ur_optim_step(opt), -1);
        ck_assert_ptr_nonnull(ur_optim_error(opt));
        ck_assert_msg(strstr(ur_optim_error(opt), "gradient of b") &&
                      strstr(ur_optim_error(opt), "[0,1]"), "%s", ur_optim_error(opt));
        for (int j = 0; j < 4; j++) ck_assert_float_eq(a->val[j], 1.0f);
        for (int j = 0; j < 3; j++) ck_assert_float_eq(b->val[j], 2.0f);
        ck_assert_int_eq(ur_optim_steps(opt), 0);
        b->grad[1] = 0.0f;
        ck_assert_int_eq(ur_optim_step(opt), 0);
        ck_assert_ptr_null(ur_optim_error(opt));
        ck_assert(a->val[0] < 1.0f);
        ur_optim_free(opt);
        ur_params_free(ps);
    }
}
END_TEST

START_TEST(test_absurd_sizes)
{
    ck_assert_ptr_null(ur_tape_new(SIZE_MAX));
    ck_assert_ptr_null(ur_tape_new(SIZE_MAX - 10));
    ur_tape *tp = ur_tape_new(0);
    ck_assert_ptr_null(ur_tape_alloc(tp, SIZE_MAX - 3));
    assert_error_has(tp, "tape: allocation of", "too large", NULL);
    ur_tape_reset(tp);
    ur_input(tp, 1 << 20, 1 << 20);
    assert_error_has(tp, "too large", NULL, NULL);
    ur_tape_free(tp);
}
END_TEST

/* ---- Errors of constructors and initialisers ----------------------------------------------- */

START_TEST(test_constructor_keeps_first_error)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 1);
    ur_cell cell;
    /* Only the first parameter's name is taken: the later ones are added fine, and the
     * reason must still be the first failure, not a generic one. */
    ck_assert_ptr_nonnull(ur_params_add(ps, "x.U", 2, 2));
    ck_assert_int_eq(ur_elman_cell(&cell, ps, "x", 3, 4, &rng), -1);
    ck_assert_msg(strstr(ur_model_error(), "elman_cell(x): params_add: x.U: name already used"),
                  "%s", ur_model_error());
    /* A success clears it. */
    ck_assert_int_eq(ur_elman_cell(&cell, ps, "y", 3, 4, &rng), 0);
    ck_assert_ptr_null(ur_model_error());
    /* A name too long says so. */
    char prefix[80];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    ck_assert_int_eq(ur_lstm_cell(&cell, ps, prefix, 3, 4, &rng), -1);
    ck_assert_msg(strstr(ur_model_error(), "lstm_cell(") && strstr(ur_model_error(), "at most 63"),
                  "%s", ur_model_error());
    ck_assert_ptr_null(ur_model_param(ps, prefix, "W", 2, 2, 0.1f, &rng));
    /* Truncated BPTT explains itself. */
    ur_tbptt tb;
    ck_assert_int_eq(ur_tbptt_init(&tb, 10, 0, 0, 2, 3, 0), -1);
    ck_assert_msg(strstr(ur_model_error(), "tbptt_init: needs T >= 1, k1 >= 1"), "%s",
                  ur_model_error());
    ck_assert_int_eq(ur_tbptt_init(&tb, 10, 2, 0, 0, 3, 0), -1);
    ck_assert_msg(strstr(ur_model_error(), "B >= 1"), "%s", ur_model_error());
    ck_assert_int_eq(ur_tbptt_init(&tb, 10, 2, 0, 2, 3, 0), 0);
    ck_assert_ptr_null(ur_model_error());
    ur_tbptt_free(&tb);
    /* Initialisers too. */
    ur_tensor *w = ur_params_get(ps, "y.W");
    ck_assert_int_eq(ur_init_normal(w, 0.0f, -1.0f, &rng), -1);
    ck_assert_msg(strstr(ur_init_error(), "ur_init_normal: needs a finite mean and a finite std"),
                  "%s", ur_init_error());
    ck_assert_int_eq(ur_init_uniform(w, 0.0f, 1.0f, NULL), -1);
    ck_assert_msg(strstr(ur_init_error(), "rng is NULL"), "%s", ur_init_error());
    ck_assert_int_eq(ur_init_orthogonal(w, 1.0f, &rng), 0);
    ck_assert_ptr_null(ur_init_error());
    ur_params_free(ps);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safety");
    TCase *tc = tcase_create("safety");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stale_tensor_is_an_error);
    tcase_add_test(tc, test_foreign_tensor_is_an_error);
    tcase_add_test(tc, test_stale_state_into_unroll);
    tcase_add_test(tc, test_second_backward);
    tcase_add_test(tc, test_trap_forward_names_op_and_step);
    tcase_add_test(tc, test_trap_in_user_cell);
    tcase_add_test(tc, test_trap_backward_names_op);
    tcase_add_test(tc, test_fast_exp_special_values);
    tcase_add_test(tc, test_sigmoid_xent_infinite_logits);
    tcase_add_test(tc, test_nan_through_every_op);
    tcase_add_test(tc, test_optimizer_refuses_non_finite_gradient);
    tcase_add_test(tc, test_absurd_sizes);
    tcase_add_test(tc, test_constructor_keeps_first_error);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
