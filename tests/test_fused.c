/* The unroll's fusions against the same computations apart: a step's h written in place into
 * the stacked states (models/unroll.c's rules for h_out), the input projection's backward done
 * by the recurrent context it feeds (ops/linear.h), on every kernel of ops/rgemm.h and on
 * cblas, and the fused steps of both GRUs (ops/gates.c) against generic ops. */
#include "tests/ur_test.h"

#include "ops/rgemm.h"

static const char *kernels[] = {"avx512", "avx2"};

/* A step that writes h_out and returns another tensor is an error, not a silent wrong H. */
static ur_state bad_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)cell;
    (void)prev;
    ur_tensor *h = ur_tanh_into(tp, in->proj[0], in->h_out);
    return (ur_state){ur_scale(tp, h, 0.5f), NULL};
}

/* A step that ignores h_out: its h is copied into H, and gradients are the same. */
static ur_state copy_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)cell;
    (void)prev;
    return (ur_state){ur_tanh(tp, in->proj[0]), NULL};
}

static double run_cell(ur_cell_step_fn step, int reverse, ur_params *ps, ur_cell *cell,
                       const char **err)
{
    ur_tape *tp = ur_tape_new(0);
    ur_rng rng;
    ur_rng_seed(&rng, 3);
    int T = 5, B = 3;
    ur_tensor *x = ur_input(tp, T * B, cell->in_dim);
    ur_test_fill(x, &rng, -1.0f, 1.0f);
    cell->step = step;
    ur_seq seq;
    ur_params_zero_grad(ps);
    double loss = NAN;
    *err = NULL;
    if (ur_unroll(tp, cell, x, T, (ur_state){NULL, NULL}, reverse, &seq) == 0) {
        ur_tensor *l = ur_sum(tp, ur_mul(tp, seq.H, seq.H));
        if (ur_backward(tp, l) == 0) loss = l->val[0];
    }
    static char msg[256];
    if (ur_tape_error(tp)) {
        snprintf(msg, sizeof msg, "%s", ur_tape_error(tp));
        *err = msg;
    }
    ur_tape_free(tp);
    return loss;
}

START_TEST(test_unroll_h_out_rules)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 5);
    ur_cell cell;
    ck_assert_int_eq(ur_elman_cell(&cell, ps, "e", 4, 6, &rng), 0);
    const char *err;
    run_cell(bad_step, 0, ps, &cell, &err);
    ck_assert_msg(err && strstr(err, "wrote h_out but returned another h"), "got %s",
                  err ? err : "no error");
    ur_tensor *W = ur_params_get(ps, "e.W");
    float *g_in_place = malloc(ur_numel(W) * sizeof *g_in_place);
    for (int reverse = 0; reverse < 2; reverse++) {
        ur_cell c = cell;
        double l1 = run_cell(copy_step, reverse, ps, &c, &err);
        ck_assert_msg(!err, "%s", err);
        memcpy(g_in_place, W->grad, ur_numel(W) * sizeof *g_in_place);
        ur_cell e;
        ur_params *ps2 = ur_params_new();
        ur_rng_seed(&rng, 5);
        ck_assert_int_eq(ur_elman_cell(&e, ps2, "e", 4, 6, &rng), 0);
        ur_cell_step_fn builtin = e.step;
        double l2 = run_cell(builtin, reverse, ps2, &e, &err);
        ck_assert_msg(!err, "%s", err);
        ck_assert_msg(fabs(l1 - l2) <= 1e-5 * fabs(l2), "loss %.8g vs %.8g", l1, l2);
        ur_tensor *W2 = ur_params_get(ps2, "e.W");
        for (size_t k = 0; k < ur_numel(W); k++)
            ck_assert_msg(fabsf(g_in_place[k] - W2->grad[k]) <= 1e-5f * (1.0f + fabsf(W2->grad[k])),
                          "reverse %d: dW[%zu] copied %.8g vs in place %.8g", reverse, k,
                          g_in_place[k], W2->grad[k]);
        ur_params_free(ps2);
    }
    free(g_in_place);
    ur_params_free(ps);
}
END_TEST

/* The same recurrences without the fusion: the recurrent product apart (into -1) and added to
 * the projection by the step, so that the unroll's projection keeps its own weight gradient. */
static ur_state elman_apart(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)cell;
    (void)prev;
    return (ur_state){ur_tanh(tp, ur_add(tp, in->proj[0], in->rec[0])), NULL};
}

static ur_state lstm_apart(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)cell;
    ur_state s = {NULL, NULL};
    ur_lstm_gates(tp, ur_add(tp, in->proj[0], in->rec[0]), prev.c, &s.h, &s.c);
    return s;
}

/* Runs cell over a fixed sequence, loss sum(H^2); dx and every parameter's gradient in g (in
 * the parameters' order, then dx). *ceded: whether the projection left its weight's gradient
 * to the recurrent context. Returns the loss. */
static double run_fused(ur_cell *cell, ur_params *ps, int T, int B, int reverse, float *g,
                        int *ceded)
{
    ur_tape *tp = ur_tape_new(0);
    ur_rng rng;
    ur_rng_seed(&rng, 11);
    ur_tensor *x = ur_input(tp, T * B, cell->in_dim);
    ur_test_fill(x, &rng, -1.0f, 1.0f);
    x->requires_grad = 1;
    ur_params_zero_grad(ps);
    ur_seq seq;
    ck_assert_int_eq(ur_unroll(tp, cell, x, T, (ur_state){NULL, NULL}, reverse, &seq), 0);
    *ceded = -1;
    for (const ur_node *nd = ur_tape_last(tp); nd; nd = nd->prev)
        if (strcmp(nd->op->name, "linear") == 0) *ceded = nd->i[0];
    ur_tensor *l = ur_sum(tp, ur_mul(tp, seq.H, seq.H));
    ck_assert_msg(ur_backward(tp, l) == 0, "%s", ur_tape_error(tp));
    double loss = l->val[0];
    size_t at = 0;
    for (int k = 0; k < ur_params_count(ps); k++) {
        const ur_tensor *p = ur_params_at(ps, k);
        memcpy(g + at, p->grad, ur_numel(p) * sizeof *g);
        at += ur_numel(p);
    }
    memcpy(g + at, x->grad, ur_numel(x) * sizeof *g);
    ur_tape_free(tp);
    return loss;
}

/* Fused against apart for one shape, on every kernel the CPU has and on cblas; returns how
 * many of those ran. */
static int fused_matches_apart(int T, int B, int in_dim, int hidden)
{
    int ran = 0;
    for (size_t kk = 0; kk <= sizeof kernels / sizeof kernels[0]; kk++) {
        const char *kname = kk < sizeof kernels / sizeof kernels[0] ? kernels[kk] : "blas";
        if (ur_rgemm_select(kname) != 0) continue;
        ran++;
        for (int lstm = 0; lstm < 2; lstm++)
            for (int reverse = 0; reverse < 2; reverse++) {
                ur_params *ps = ur_params_new();
                ur_rng rng;
                ur_rng_seed(&rng, 7);
                ur_cell cell;
                ck_assert_int_eq(lstm ? ur_lstm_cell(&cell, ps, "c", in_dim, hidden, &rng)
                                      : ur_elman_cell(&cell, ps, "c", in_dim, hidden, &rng), 0);
                size_t n = ur_params_numel(ps) + (size_t)T * B * in_dim;
                float *fused = malloc(n * sizeof *fused), *apart = malloc(n * sizeof *apart);
                ck_assert(fused && apart);
                int c1, c2;
                double l1 = run_fused(&cell, ps, T, B, reverse, fused, &c1);
                ur_cell sep = cell;
                sep.rec[0].into = -1;
                sep.h_over = 0;
                sep.step = lstm ? lstm_apart : elman_apart;
                double l2 = run_fused(&sep, ps, T, B, reverse, apart, &c2);
                ck_assert_msg(c1 == 1 && c2 == 0, "%s: projection ceded its weight %d / %d",
                              kname, c1, c2);
                ck_assert_msg(fabs(l1 - l2) <= 1e-5 * fabs(l2), "loss %.8g vs %.8g", l1, l2);
                float big = 0.0f;
                for (size_t i = 0; i < n; i++) big = fmaxf(big, fabsf(apart[i]));
                ck_assert(big > 0.0f);
                for (size_t i = 0; i < n; i++)
                    ck_assert_msg(fabsf(fused[i] - apart[i]) <= 2e-5f * big,
                                  "%s %s B %d H %d reverse %d: gradient %zu fused %.8g vs "
                                  "apart %.8g", kname, lstm ? "lstm" : "elman", B, hidden,
                                  reverse, i, fused[i], apart[i]);
                free(fused);
                free(apart);
                ur_params_free(ps);
            }
    }
    if (kernels[0] && ur_rgemm_select(kernels[0]) != 0) (void)ur_rgemm_select("avx2");
    return ran;
}

START_TEST(test_fused_weight_gradients_match_apart)
{
    /* The first shape is large enough for the kernel's fused product on the steps after the
     * first (80 rows of [x h]^T), the first step's small one through two products. The others
     * split each backward step's dh, dx and db over two threads in one hand-over (an in_dim
     * that ends in a partial panel; at batch 2, ranges of 4 panels that straddle dh and dx). */
    static const int shapes[][4] = {{6, 8, 16, 64}, {2, 16, 40, 128}, {2, 2, 72, 160}};
    int threads = ur_threads();
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        ur_set_threads(sh ? 2 : threads);
        ck_assert(fused_matches_apart(shapes[sh][0], shapes[sh][1], shapes[sh][2],
                                      shapes[sh][3]) > 0);
    }
    ur_set_threads(threads);
}
END_TEST

/* The fused GRU gates against the same equations written with generic ops: h and every
 * input's gradient. */
START_TEST(test_gru_gates_match_generic_ops)
{
    const int B = 5, H = 7;
    ur_rng rng;
    ur_rng_seed(&rng, 9);
    float xv[5 * 21], gv[5 * 21], hv[5 * 7], wv[5 * 7];
    for (int k = 0; k < B * 3 * H; k++) xv[k] = 3.0f * ur_rng_uniform(&rng) - 1.5f;
    for (int k = 0; k < B * 3 * H; k++) gv[k] = 3.0f * ur_rng_uniform(&rng) - 1.5f;
    for (int k = 0; k < B * H; k++) hv[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (int k = 0; k < B * H; k++) wv[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    float h_out[2][5 * 7], dx[2][5 * 21], dg[2][5 * 21], dhp[2][5 * 7];
    for (int fused = 0; fused < 2; fused++) {
        ur_tape *tp = ur_tape_new(0);
        ur_tensor *x = ur_requires_grad(ur_input_from(tp, B, 3 * H, xv));
        ur_tensor *g = ur_requires_grad(ur_input_from(tp, B, 3 * H, gv));
        ur_tensor *hp = ur_requires_grad(ur_input_from(tp, B, H, hv));
        ur_tensor *w = ur_input_from(tp, B, H, wv);
        ur_tensor *h;
        if (fused) {
            /* the op overwrites its x: give it a copy whose gradient flows to x */
            ur_tensor *xc = ur_scale(tp, x, 1.0f);
            h = ur_gru_gates(tp, xc, g, hp, NULL);
        } else {
            ur_tensor *xs[3], *gs[3];
            ck_assert_int_eq(ur_split_cols(tp, x, 3, xs), 0);
            ck_assert_int_eq(ur_split_cols(tp, g, 3, gs), 0);
            ur_tensor *r = ur_sigmoid(tp, ur_add(tp, xs[0], gs[0]));
            ur_tensor *z = ur_sigmoid(tp, ur_add(tp, xs[1], gs[1]));
            ur_tensor *n = ur_tanh(tp, ur_add(tp, xs[2], ur_mul(tp, r, gs[2])));
            h = ur_add(tp, ur_mul(tp, ur_one_minus(tp, z), n), ur_mul(tp, z, hp));
        }
        ur_tensor *loss = ur_sum(tp, ur_mul(tp, h, w));
        ck_assert_msg(ur_backward(tp, loss) == 0, "%s", ur_tape_error(tp));
        memcpy(h_out[fused], h->val, sizeof h_out[0]);
        memcpy(dx[fused], x->grad, sizeof dx[0]);
        memcpy(dg[fused], g->grad, sizeof dg[0]);
        memcpy(dhp[fused], hp->grad, sizeof dhp[0]);
        ur_tape_free(tp);
    }
    for (int k = 0; k < B * H; k++) {
        ck_assert_msg(fabsf(h_out[0][k] - h_out[1][k]) <= 1e-6f, "h[%d]", k);
        ck_assert_msg(fabsf(dhp[0][k] - dhp[1][k]) <= 1e-6f, "dh_prev[%d]", k);
    }
    for (int k = 0; k < B * 3 * H; k++) {
        ck_assert_msg(fabsf(dx[0][k] - dx[1][k]) <= 1e-6f, "dx[%d] %g vs %g", k, dx[0][k], dx[1][k]);
        ck_assert_msg(fabsf(dg[0][k] - dg[1][k]) <= 1e-6f, "dg[%d] %g vs %g", k, dg[0][k], dg[1][k]);
    }
}
END_TEST

/* The fused Cho GRU step (ur_gru_cho_gates) against its equations written with generic ops,
 * as models/gru.c wrote the step before: h and every input's gradient, Un's included; then a
 * second backward (ur_backward_retain) finds the values the first one read, and gives twice
 * the gradients. */
START_TEST(test_gru_cho_gates_match_generic_ops)
{
    const int B = 5, H = 7;
    ur_rng rng;
    ur_rng_seed(&rng, 13);
    float xv[5 * 21], gv[5 * 14], hv[5 * 7], uv[7 * 7], wv[5 * 7];
    for (int k = 0; k < B * 3 * H; k++) xv[k] = 3.0f * ur_rng_uniform(&rng) - 1.5f;
    for (int k = 0; k < B * 2 * H; k++) gv[k] = 3.0f * ur_rng_uniform(&rng) - 1.5f;
    for (int k = 0; k < B * H; k++) hv[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (int k = 0; k < H * H; k++) uv[k] = ur_rng_uniform(&rng) - 0.5f;
    for (int k = 0; k < B * H; k++) wv[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    float h_out[2][5 * 7], dx[2][5 * 21], dg[2][5 * 14], dhp[2][5 * 7], du[2][7 * 7];
    for (int fused = 0; fused < 2; fused++) {
        ur_tape *tp = ur_tape_new(0);
        ur_tensor *x = ur_requires_grad(ur_input_from(tp, B, 3 * H, xv));
        ur_tensor *g = ur_requires_grad(ur_input_from(tp, B, 2 * H, gv));
        ur_tensor *hp = ur_requires_grad(ur_input_from(tp, B, H, hv));
        ur_tensor *u = ur_requires_grad(ur_input_from(tp, H, H, uv));
        ur_tensor *w = ur_input_from(tp, B, H, wv);
        ur_tensor *h;
        if (fused) {
            /* the op overwrites x and g: give it copies whose gradients flow to them */
            h = ur_gru_cho_gates(tp, ur_scale(tp, x, 1.0f), ur_scale(tp, g, 1.0f), hp, u, NULL);
        } else {
            ur_tensor *xs[3], *gs[2];
            ck_assert_int_eq(ur_split_cols(tp, x, 3, xs), 0);
            ck_assert_int_eq(ur_split_cols(tp, g, 2, gs), 0);
            ur_tensor *r = ur_sigmoid(tp, ur_add(tp, xs[0], gs[0]));
            ur_tensor *z = ur_sigmoid(tp, ur_add(tp, xs[1], gs[1]));
            ur_tensor *n = ur_tanh(tp, ur_addmm(tp, xs[2], ur_mul(tp, r, hp), u));
            h = ur_add(tp, ur_mul(tp, ur_one_minus(tp, z), n), ur_mul(tp, z, hp));
        }
        ur_tensor *loss = ur_sum(tp, ur_mul(tp, h, w));
        ck_assert_msg(ur_backward_retain(tp, loss) == 0, "%s", ur_tape_error(tp));
        memcpy(h_out[fused], h->val, sizeof h_out[0]);
        memcpy(dx[fused], x->grad, sizeof dx[0]);
        memcpy(dg[fused], g->grad, sizeof dg[0]);
        memcpy(dhp[fused], hp->grad, sizeof dhp[0]);
        memcpy(du[fused], u->grad, sizeof du[0]);
        if (fused) {
            ck_assert_msg(ur_backward_retain(tp, loss) == 0, "%s", ur_tape_error(tp));
            for (int k = 0; k < B * 3 * H; k++)
                ck_assert_msg(fabsf(x->grad[k] - 2.0f * dx[1][k]) <= 1e-6f, "2nd dx[%d]", k);
            for (int k = 0; k < H * H; k++)
                ck_assert_msg(fabsf(u->grad[k] - 2.0f * du[1][k]) <= 1e-6f, "2nd dUn[%d]", k);
            for (int k = 0; k < B * H; k++)
                ck_assert_msg(fabsf(hp->grad[k] - 2.0f * dhp[1][k]) <= 1e-6f, "2nd dh_prev[%d]", k);
        }
        ur_tape_free(tp);
    }
    for (int k = 0; k < B * H; k++) {
        ck_assert_msg(fabsf(h_out[0][k] - h_out[1][k]) <= 1e-6f, "h[%d]", k);
        ck_assert_msg(fabsf(dhp[0][k] - dhp[1][k]) <= 1e-6f, "dh_prev[%d] %g vs %g", k, dhp[0][k],
                      dhp[1][k]);
    }
    for (int k = 0; k < B * 3 * H; k++)
        ck_assert_msg(fabsf(dx[0][k] - dx[1][k]) <= 1e-6f, "dx[%d] %g vs %g", k, dx[0][k],
                      dx[1][k]);
    for (int k = 0; k < B * 2 * H; k++)
        ck_assert_msg(fabsf(dg[0][k] - dg[1][k]) <= 1e-6f, "dg[%d] %g vs %g", k, dg[0][k],
                      dg[1][k]);
    for (int k = 0; k < H * H; k++)
        ck_assert_msg(fabsf(du[0][k] - du[1][k]) <= 1e-6f, "dUn[%d] %g vs %g", k, du[0][k],
                      du[1][k]);
}
END_TEST

/* Its misuse fails the tape with a message: shapes, x or g sharing memory, a written h_into. */
START_TEST(test_gru_cho_gates_rules)
{
    const int B = 2, H = 3;
    struct { int xc, gc, ur, share, written; const char *want; } c[] = {
        {3 * H, 2 * H, H, 0, 0, NULL},
        {3 * H, 3 * H, H, 0, 0, "gru_cho_gates: for h_prev 2x3, x must be 2x9, g 2x6 and Un 3x3; "
                                "got 2x9, 2x9 and 3x3"},
        {3 * H, 2 * H, H + 1, 0, 0, "Un 3x3; got 2x9, 2x6 and 4x3"},
        {3 * H, 2 * H, H, 1, 0, "must not share their values"},
        {3 * H, 2 * H, H, 0, 1, "h_into must be a 2x3 tensor of the tape that no op has written"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        ur_tape *tp = ur_tape_new(0);
        ur_tensor *x = ur_requires_grad(ur_input(tp, B, c[i].xc)), *g = ur_input(tp, B, c[i].gc);
        ur_tensor *hp = ur_requires_grad(ur_input(tp, B, H)), *u = ur_input(tp, c[i].ur, H);
        if (c[i].share) u = ur_reshape(tp, ur_rows(tp, x, 0, 1), H, H); /* x's first row */
        ur_tensor *into = c[i].written ? ur_scale(tp, hp, 1.0f) : NULL;
        ur_tensor *h = ur_gru_cho_gates(tp, x, g, hp, u, into);
        if (!c[i].want) {
            ck_assert_msg(!ur_tape_error(tp), "%s", ur_tape_error(tp));
            ck_assert_int_eq(h->rows, B);
            ck_assert_int_eq(h->cols, H);
        } else {
            ck_assert_ptr_nonnull(ur_tape_error(tp));
            ck_assert_msg(strstr(ur_tape_error(tp), c[i].want), "case %zu: %s", i,
                          ur_tape_error(tp));
        }
        ur_tape_free(tp);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fused");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_unroll_h_out_rules);
    tcase_add_test(tc, test_fused_weight_gradients_match_apart);
    tcase_add_test(tc, test_gru_gates_match_generic_ops);
    tcase_add_test(tc, test_gru_cho_gates_match_generic_ops);
    tcase_add_test(tc, test_gru_cho_gates_rules);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
