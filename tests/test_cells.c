/* User cells through the public declarations (models/ur_models.h): every combination of
 * input projections and recurrent products (fused or apart, with and without biases) is
 * gradient-checked through a whole unroll, forwards and reversed; the declared products
 * equal the same maths written by hand with ops; ur_cell_step equals a one-step unroll; a
 * user LSTM and Elman from public ops match the built-in cells; bad declarations are errors. */
#include "cell_test.h"

#include <stdlib.h>
#include <string.h>

/* ---- A generic user cell ------------------------------------------------------------------
 * h_t = tanh(sum of every declared input it receives) * sigmoid(x_t Q) + 0.5 h_{t-1} (the
 * last term, and x_t Q, so the raw input and the previous state are used too). */
typedef struct {
    ur_params *ps;
    ur_cell cell;
    ur_tensor *Q, *V;
    float x[T * B * IN];
    int reverse;
    ur_state init;
    int init_grad;
} gen_model;

static ur_state gen_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    const gen_model *m = cell->user;
    ur_tensor *sum = NULL;
    for (int k = 0; k < cell->n_proj; k++) sum = sum ? ur_add(tp, sum, in->proj[k]) : in->proj[k];
    for (int j = 0; j < cell->n_rec; j++)
        if (in->rec[j]) sum = sum ? ur_add(tp, sum, in->rec[j]) : in->rec[j];
    if (!sum) sum = prev.h;
    ur_tensor *gate = ur_sigmoid(tp, ur_matmul(tp, in->x, m->Q, 0, 0));
    ur_tensor *h = ur_add(tp, ur_mul(tp, ur_tanh(tp, sum), gate), ur_scale(tp, prev.h, 0.5f));
    return (ur_state){h, NULL};
}

/* The same step with every product written out by hand from the parameters. */
static ur_state gen_step_by_hand(ur_tape *tp, const ur_cell *cell, ur_tensor *x, ur_state prev)
{
    const gen_model *m = cell->user;
    ur_tensor *sum = NULL;
    for (int k = 0; k < cell->n_proj; k++) {
        ur_tensor *p = ur_linear(tp, x, cell->proj[k].w, cell->proj[k].b);
        sum = sum ? ur_add(tp, sum, p) : p;
    }
    for (int j = 0; j < cell->n_rec; j++) {
        ur_tensor *r = ur_linear(tp, prev.h, cell->rec[j].w, cell->rec[j].b);
        sum = sum ? ur_add(tp, sum, r) : r;
    }
    if (!sum) sum = prev.h;
    ur_tensor *gate = ur_sigmoid(tp, ur_matmul(tp, x, m->Q, 0, 0));
    ur_tensor *h = ur_add(tp, ur_mul(tp, ur_tanh(tp, sum), gate), ur_scale(tp, prev.h, 0.5f));
    return (ur_state){h, NULL};
}

/* The declaration combinations: n projections (with bias or not) and recurrent products
 * (fused into projection `into`, or apart with -1; with bias or not). */
typedef struct {
    const char *name;
    int n_proj, proj_bias[2];
    int n_rec, rec_into[2], rec_bias[2];
} decl;

static const decl decls[] = {
    {"proj+b, rec fused", 1, {1}, 1, {0}, {0}},
    {"proj, rec fused+c", 1, {0}, 1, {0}, {1}},
    {"proj+b, rec apart", 1, {1}, 1, {-1}, {0}},
    {"proj+b, rec apart+c", 1, {1}, 1, {-1}, {1}},
    {"two proj, one fused, one apart+c", 2, {1, 0}, 2, {1, -1}, {1, 1}},
    {"rec apart only", 0, {0}, 1, {-1}, {1}},
    {"proj only", 1, {1}, 0, {0}, {0}},
    {"nothing declared", 0, {0}, 0, {0}, {0}},
};

static gen_model *gen_new(const decl *d, unsigned seed)
{
    gen_model *m = calloc(1, sizeof *m);
    m->ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, seed);
    ur_cell *c = &m->cell;
    *c = (ur_cell){.kind = "gen", .step = gen_step, .in_dim = IN, .hidden = H, .user = m};
    char name[16];
    for (int k = 0; k < d->n_proj; k++) {
        snprintf(name, sizeof name, "W%d", k);
        c->proj[k].w = ur_model_param(m->ps, "gen", name, IN, H, 0.6f, &rng);
        snprintf(name, sizeof name, "b%d", k);
        if (d->proj_bias[k]) c->proj[k].b = ur_model_param(m->ps, "gen", name, 1, H, 0.6f, &rng);
    }
    for (int j = 0; j < d->n_rec; j++) {
        snprintf(name, sizeof name, "U%d", j);
        c->rec[j].w = ur_model_param(m->ps, "gen", name, H, H, 0.6f, &rng);
        snprintf(name, sizeof name, "c%d", j);
        if (d->rec_bias[j]) c->rec[j].b = ur_model_param(m->ps, "gen", name, 1, H, 0.6f, &rng);
        c->rec[j].into = d->rec_into[j];
    }
    c->n_proj = d->n_proj;
    c->n_rec = d->n_rec;
    m->Q = ur_model_param(m->ps, "gen", "Q", IN, H, 0.6f, &rng);
    m->V = ur_model_param(m->ps, "head", "V", H, 2, 0.6f, &rng);
    for (int k = 0; k < ur_params_count(m->ps) && k < UR_CELL_MAX_PARAMS; k++)
        c->p[c->n_params++] = ur_params_at(m->ps, k);
    for (int k = 0; k < T * B * IN; k++) m->x[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    return m;
}

static void gen_free(gen_model *m)
{
    ur_params_free(m->ps);
    free(m);
}

/* Loss over every step's h and the last state, so each step's gradient matters. */
static ur_tensor *gen_loss(ur_tape *tp, void *ctx)
{
    gen_model *m = ctx;
    ur_tensor *x = ur_input_from(tp, T * B, IN, m->x);
    ur_state init = {NULL, NULL};
    if (m->init_grad) {
        init.h = ur_input(tp, B, H);
        for (int k = 0; k < B * H; k++) init.h->val[k] = 0.1f * (float)(k % 5) - 0.2f;
        ur_requires_grad(init.h);
    }
    ur_seq seq;
    ur_unroll(tp, &m->cell, x, T, init, m->reverse, &seq);
    ur_tensor *o = ur_matmul(tp, seq.H, m->V, 0, 0);
    ur_tensor *w = ur_input(tp, T * B, 2);
    for (int k = 0; k < T * B * 2; k++) w->val[k] = (float)((k * 7) % 11) / 11.0f - 0.4f;
    return ur_add(tp, ur_sum(tp, ur_mul(tp, o, w)), ur_sum(tp, ur_mul(tp, seq.last.h, seq.last.h)));
}

/* The same loss with the steps written by hand (no declarations used). */
static ur_tensor *gen_loss_by_hand(ur_tape *tp, void *ctx)
{
    gen_model *m = ctx;
    ur_tensor *x = ur_input_from(tp, T * B, IN, m->x);
    ur_state s = {ur_input(tp, B, H), NULL};
    ur_tensor *hs[T];
    for (int k = 0; k < T; k++) {
        int t = m->reverse ? T - 1 - k : k;
        s = gen_step_by_hand(tp, &m->cell, ur_rows(tp, x, t * B, B), s);
        hs[t] = s.h;
    }
    ur_tensor *o = ur_matmul(tp, ur_concat_rows(tp, T, hs), m->V, 0, 0);
    ur_tensor *w = ur_input(tp, T * B, 2);
    for (int k = 0; k < T * B * 2; k++) w->val[k] = (float)((k * 7) % 11) / 11.0f - 0.4f;
    return ur_add(tp, ur_sum(tp, ur_mul(tp, o, w)), ur_sum(tp, ur_mul(tp, s.h, s.h)));
}

static void check_grads(ur_params *ps, ur_loss_fn f, void *ctx)
{
    ur_assert_gradcheck(ps, f, ctx, 0, 1e-5, 1e-3); /* the defaults: step 3e-2 */
}

START_TEST(test_every_declaration_gradchecked)
{
    for (size_t d = 0; d < sizeof decls / sizeof decls[0]; d++)
        for (int rev = 0; rev < 2; rev++) {
            gen_model *m = gen_new(&decls[d], 11 + (unsigned)d);
            m->reverse = rev;
            m->init_grad = (int)(d % 2);
            /* The declared products give the same values and gradients as the maths
             * written out by hand. */
            ur_tape *tp = ur_tape_new(0);
            ur_params_zero_grad(m->ps);
            ur_tensor *l1 = gen_loss(tp, m);
            ck_assert_msg(ur_backward(tp, l1) == 0, "%s: %s", decls[d].name, ur_tape_error(tp));
            float v1 = l1->val[0];
            size_t n = ur_params_numel(m->ps), at = 0;
            float *g1 = malloc(n * sizeof *g1);
            for (int k = 0; k < ur_params_count(m->ps); k++) {
                ur_tensor *p = ur_params_at(m->ps, k);
                memcpy(g1 + at, p->grad, ur_numel(p) * sizeof *g1);
                at += ur_numel(p);
            }
            int keep = m->init_grad;
            m->init_grad = 0;
            ur_tape_reset(tp);
            ur_params_zero_grad(m->ps);
            ur_tensor *l0 = gen_loss(tp, m), *l2 = NULL;
            float v0 = l0->val[0];
            ur_tape_reset(tp);
            l2 = gen_loss_by_hand(tp, m);
            ck_assert_int_eq(ur_backward(tp, l2), 0);
            ck_assert_msg(fabsf(l2->val[0] - v0) <= 1e-5f * (1 + fabsf(v0)),
                          "%s (reverse %d): loss %.7g declared, %.7g by hand", decls[d].name, rev,
                          v0, l2->val[0]);
            m->init_grad = keep;
            if (!keep) {
                ck_assert(fabsf(v1 - v0) == 0);
                at = 0;
                for (int k = 0; k < ur_params_count(m->ps); k++) {
                    ur_tensor *p = ur_params_at(m->ps, k);
                    for (size_t j = 0; j < ur_numel(p); j++, at++)
                        ck_assert_msg(fabsf(p->grad[j] - g1[at]) <= 1e-5f * (1 + fabsf(g1[at])),
                                      "%s (reverse %d): %s[%zu] %.7g by hand, %.7g declared",
                                      decls[d].name, rev, p->name, j, p->grad[j], g1[at]);
                }
            }
            free(g1);
            ur_tape_free(tp);
            check_grads(m->ps, gen_loss, m);
            gen_free(m);
        }
}
END_TEST

START_TEST(test_cell_step_equals_unroll_of_one)
{
    for (size_t d = 0; d < sizeof decls / sizeof decls[0]; d++) {
        gen_model *m = gen_new(&decls[d], 5);
        ur_tape *tp = ur_tape_new(0);
        ur_tensor *x = ur_input_from(tp, B, IN, m->x);
        ur_tensor *h0 = ur_input_from(tp, B, H, m->x + 1);
        ur_seq seq;
        ck_assert_msg(ur_unroll(tp, &m->cell, x, 1, (ur_state){h0, NULL}, 0, &seq) == 0, "%s: %s",
                      decls[d].name, ur_tape_error(tp));
        ur_state s = ur_cell_step(tp, &m->cell, x, (ur_state){h0, NULL});
        ck_assert_msg(!ur_tape_error(tp), "%s", ur_tape_error(tp));
        for (int k = 0; k < B * H; k++)
            ck_assert_msg(fabsf(s.h->val[k] - seq.last.h->val[k]) <= 1e-6f, "%s: h[%d] %g vs %g",
                          decls[d].name, k, s.h->val[k], seq.last.h->val[k]);
        ur_tape_free(tp);
        gen_free(m);
    }
}
END_TEST

/* ---- Built-in cells against user cells from public ops -------------------------------------- */

/* A user LSTM from sigmoid/tanh/mul/add, with the same declarations as ur_lstm_cell. */
static ur_state user_lstm_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in,
                               ur_state prev)
{
    (void)cell;
    ur_tensor *g[4];
    ur_split_cols(tp, in->proj[0], 4, g);
    ur_tensor *i = ur_sigmoid(tp, g[0]), *f = ur_sigmoid(tp, g[1]);
    ur_tensor *gg = ur_tanh(tp, g[2]), *o = ur_sigmoid(tp, g[3]);
    ur_tensor *c = ur_add(tp, ur_mul(tp, f, prev.c), ur_mul(tp, i, gg));
    return (ur_state){ur_mul(tp, o, ur_tanh(tp, c)), c};
}

static ur_state user_elman_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in,
                                ur_state prev)
{
    (void)cell;
    (void)prev;
    return (ur_state){ur_tanh(tp, in->proj[0]), NULL};
}

static void compare_with_builtin(ur_cell *builtin, ur_cell *user, ur_params *ps, const float *x)
{
    run_ctx a = {ps, builtin, {0}}, b = {ps, user, {0}};
    memcpy(a.x, x, sizeof a.x);
    memcpy(b.x, x, sizeof b.x);
    ur_tape *tp = ur_tape_new(0);
    ur_params_zero_grad(ps);
    ur_tensor *la = run_loss(tp, &a);
    ck_assert_int_eq(ur_backward(tp, la), 0);
    float va = la->val[0];
    size_t n = ur_params_numel(ps), at = 0;
    float *ga = malloc(n * sizeof *ga);
    for (int k = 0; k < ur_params_count(ps); k++) {
        memcpy(ga + at, ur_params_at(ps, k)->grad, ur_numel(ur_params_at(ps, k)) * sizeof *ga);
        at += ur_numel(ur_params_at(ps, k));
    }
    ur_tape_reset(tp);
    ur_params_zero_grad(ps);
    ur_tensor *lb = run_loss(tp, &b);
    ck_assert_int_eq(ur_backward(tp, lb), 0);
    ck_assert_msg(fabsf(lb->val[0] - va) <= 1e-5f * (1 + fabsf(va)), "loss %g vs %g", lb->val[0], va);
    at = 0;
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        for (size_t j = 0; j < ur_numel(p); j++, at++)
            ck_assert_msg(fabsf(p->grad[j] - ga[at]) <= 1e-5f * (1 + fabsf(ga[at])),
                          "%s[%zu]: user %.7g, built-in %.7g", p->name, j, p->grad[j], ga[at]);
    }
    free(ga);
    ur_tape_free(tp);
}

START_TEST(test_user_cells_match_builtins)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 8);
    float x[T * B * IN];
    for (int k = 0; k < T * B * IN; k++) x[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    ur_cell lstm, elman;
    ck_assert_int_eq(ur_lstm_cell(&lstm, ps, "l", IN, H, &rng), 0);
    ck_assert_int_eq(ur_elman_cell(&elman, ps, "e", IN, H, &rng), 0);
    /* The parameters are reachable by name, in the documented order. */
    ck_assert_ptr_eq(ur_cell_param(&lstm, "Wx"), lstm.p[0]);
    ck_assert_ptr_eq(ur_cell_param(&lstm, "Wh"), lstm.p[1]);
    ck_assert_ptr_eq(ur_cell_param(&lstm, "b"), lstm.p[2]);
    ck_assert_ptr_eq(ur_cell_param(&elman, "W"), elman.p[1]);
    ck_assert_ptr_null(ur_cell_param(&elman, "Wh"));
    ck_assert_int_eq(lstm.n_params, 3);
    ur_cell ul = lstm, ue = elman;
    ul.step = user_lstm_step;
    ul.kind = "user-lstm";
    ue.step = user_elman_step;
    compare_with_builtin(&lstm, &ul, ps, x);
    compare_with_builtin(&elman, &ue, ps, x);
    ur_params_free(ps);
}
END_TEST

/* ---- Elman's H over its projection (ur_cell.h_over) ---------------------------------------- */

/* Elman's step that, at step 2, also reads its projection through another op. */
static ur_state peek_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)cell;
    (void)prev;
    if (in->t == 2) ur_scale(tp, in->proj[0], 2.0f);
    return (ur_state){ur_tanh_into(tp, in->proj[0], in->h_out), NULL};
}

/* Loss sum(H * w) of a T2-step unroll; the tape bytes after forward in *bytes. */
static float h_over_run(ur_tape *tp, ur_cell *cell, ur_params *ps, const float *x, int T2,
                        int B2, size_t *bytes)
{
    ur_tape_reset(tp);
    ur_params_zero_grad(ps);
    ur_seq seq;
    ur_tensor *xs = ur_requires_grad(ur_input_from(tp, T2 * B2, IN, x));
    if (ur_unroll(tp, cell, xs, T2, (ur_state){0}, 0, &seq) != 0) return NAN;
    *bytes = ur_tape_used_bytes(tp);
    ur_tensor *w = ur_input(tp, T2 * B2, cell->hidden);
    for (size_t k = 0; k < ur_numel(w); k++) w->val[k] = (float)((k * 5) % 9) / 9.0f - 0.5f;
    ur_tensor *l = ur_sum(tp, ur_mul(tp, seq.H, w));
    ck_assert_int_eq(ur_backward(tp, l), 0);
    return l->val[0];
}

/* The built-in Elman stacks H over its projection: the same loss and gradients, bit for bit,
 * as with H apart, for T*B*H fewer floats, within 1.5x the BPTT minimum (x and h); a step that
 * reads the projection otherwise fails, or, at the first step and with h_out unwritten, gets H
 * apart; h_over on a projection of another width is an error. */
START_TEST(test_elman_h_over)
{
    enum { T2 = 40, B2 = 16, H2 = 64 };
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 21);
    ur_cell over;
    ck_assert_int_eq(ur_elman_cell(&over, ps, "e", IN, H2, &rng), 0);
    ck_assert_int_eq(over.h_over, 1);
    ur_cell apart = over;
    apart.h_over = 0;
    static float x[T2 * B2 * IN];
    for (int k = 0; k < T2 * B2 * IN; k++) x[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    ur_tape *tp = ur_tape_new(0);
    size_t n = ur_params_numel(ps), at = 0, bytes_apart = 0, bytes_over = 0;
    float *g = malloc(n * sizeof *g);
    float l_apart = h_over_run(tp, &apart, ps, x, T2, B2, &bytes_apart);
    for (int k = 0; k < ur_params_count(ps); k++) {
        const ur_tensor *p = ur_params_at(ps, k);
        memcpy(g + at, p->grad, ur_numel(p) * sizeof *g);
        at += ur_numel(p);
    }
    float l_over = h_over_run(tp, &over, ps, x, T2, B2, &bytes_over);
    ck_assert_float_eq(l_over, l_apart);
    at = 0;
    for (int k = 0; k < ur_params_count(ps); k++) {
        const ur_tensor *p = ur_params_at(ps, k);
        for (size_t j = 0; j < ur_numel(p); j++, at++)
            ck_assert_msg(p->grad[j] == g[at], "%s[%zu]: H over %.9g, apart %.9g", p->name, j,
                          (double)p->grad[j], (double)g[at]);
    }
    const size_t h_bytes = (size_t)T2 * B2 * H2 * sizeof(float);
    const size_t minimum = (size_t)T2 * B2 * (IN + H2) * sizeof(float);
    ck_assert_msg(bytes_apart - bytes_over >= h_bytes, "H over saves %zu bytes, not %zu",
                  bytes_apart - bytes_over, h_bytes);
    ck_assert_msg(bytes_over <= 1.5 * minimum, "tape %zu bytes (%zu with H apart), %.3gx the "
                  "minimum %zu", bytes_over, bytes_apart, (double)bytes_over / minimum, minimum);
    if (getenv("UR_TEST_VERBOSE"))
        fprintf(stderr, "elman T %d B %d H %d: tape %zu bytes over the projection, %zu apart, "
                "minimum %zu: %.3fx, %.3fx\n", T2, B2, H2, bytes_over, bytes_apart, minimum,
                (double)bytes_over / minimum, (double)bytes_apart / minimum);

    /* A step reading the projection through another op at step 2: an error, not a gradient
     * computed from rows that now hold h. */
    ur_cell peek = over;
    peek.step = peek_step;
    size_t unused;
    ck_assert(isnan(h_over_run(tp, &peek, ps, x, T2, B2, &unused)));
    ck_assert_msg(ur_tape_error(tp) &&
                      strstr(ur_tape_error(tp), "unroll(elman): step 2: scale reads projection 0"),
                  "%s", ur_tape_error(tp) ? ur_tape_error(tp) : "no error");
    /* Reading it at the first step, h_out unwritten (ur_tanh, then the unroll's copy): H apart,
     * the same numbers. */
    ur_cell copy = over;
    copy.step = user_elman_step;
    ck_assert_float_eq(h_over_run(tp, &copy, ps, x, T2, B2, &unused), l_apart);
    size_t bytes_copy_apart;
    copy.h_over = 0;
    ck_assert_float_eq(h_over_run(tp, &copy, ps, x, T2, B2, &bytes_copy_apart), l_apart);
    ck_assert_msg(unused >= bytes_copy_apart && unused - bytes_copy_apart <= 256, /* a header */
                  "%zu bytes after falling back, %zu with H apart", unused, bytes_copy_apart);
    /* h_over where projection 0 is not hidden wide */
    ur_cell wide;
    ck_assert_int_eq(ur_lstm_cell(&wide, ps, "l", IN, H2, &rng), 0);
    wide.h_over = 1;
    ck_assert(isnan(h_over_run(tp, &wide, ps, x, T2, B2, &unused)));
    ck_assert_msg(ur_tape_error(tp) && strstr(ur_tape_error(tp),
                  "unroll(lstm): h_over needs projection 0 of width hidden (64); it has another"),
                  "%s", ur_tape_error(tp) ? ur_tape_error(tp) : "no error");
    free(g);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

START_TEST(test_bad_declarations)
{
    gen_model *m = gen_new(&decls[4], 3);
    ur_tape *tp = ur_tape_new(0);
    ur_cell saved = m->cell;
    ur_seq seq;
    /* Fused into a projection that does not exist. */
    m->cell.rec[0].into = 5;
    ck_assert_int_eq(ur_unroll(tp, &m->cell, ur_input(tp, T * B, IN), T, (ur_state){0}, 0, &seq), -1);
    ck_assert_msg(strstr(ur_tape_error(tp), "recurrent product 0 is fused into projection 5"), "%s",
                  ur_tape_error(tp));
    /* Two products fused into one projection. */
    m->cell = saved;
    m->cell.rec[1].into = 1;
    ur_tape_reset(tp);
    ur_unroll(tp, &m->cell, ur_input(tp, T * B, IN), T, (ur_state){0}, 0, &seq);
    ck_assert_msg(strstr(ur_tape_error(tp), "both fused into projection 1"), "%s", ur_tape_error(tp));
    /* A projection weight of the wrong shape. */
    m->cell = saved;
    m->cell.proj[0].w = m->cell.rec[0].w; /* H x H, not IN x H */
    ur_tape_reset(tp);
    ur_unroll(tp, &m->cell, ur_input(tp, T * B, IN), T, (ur_state){0}, 0, &seq);
    ck_assert_msg(strstr(ur_tape_error(tp), "unroll(gen): projection 0 needs W of 3 x n"), "%s",
                  ur_tape_error(tp));
    /* A recurrent weight of the wrong shape, through ur_cell_step. */
    m->cell = saved;
    m->cell.rec[1].w = m->cell.proj[0].w;
    ur_tape_reset(tp);
    ur_cell_step(tp, &m->cell, ur_input(tp, B, IN), (ur_state){0});
    ck_assert_msg(strstr(ur_tape_error(tp), "cell_step(gen): recurrent product 1 needs U of 4 x n"),
                  "%s", ur_tape_error(tp));
    /* Too many declared. */
    m->cell = saved;
    m->cell.n_proj = UR_CELL_MAX_PROJ + 1;
    ur_tape_reset(tp);
    ur_unroll(tp, &m->cell, ur_input(tp, T * B, IN), T, (ur_state){0}, 0, &seq);
    ck_assert_msg(strstr(ur_tape_error(tp), "at most"), "%s", ur_tape_error(tp));
    ur_tape_free(tp);
    gen_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cells");
    TCase *tc = tcase_create("cells");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_declaration_gradchecked);
    tcase_add_test(tc, test_cell_step_equals_unroll_of_one);
    tcase_add_test(tc, test_user_cells_match_builtins);
    tcase_add_test(tc, test_bad_declarations);
    tcase_add_test(tc, test_elman_h_over);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
