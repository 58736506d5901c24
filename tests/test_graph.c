/* The graph layer: tape and arena, backward order and accumulation, views, parameters,
 * the sticky error, the RNG and the gradient check itself. */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

START_TEST(test_params_basic)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 2, 3);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->rows, 2);
    ck_assert_int_eq(w->cols, 3);
    ck_assert_ptr_nonnull(w->grad);
    ck_assert_int_eq(w->requires_grad, 1);
    ck_assert_str_eq(w->name, "w");
    ck_assert_ptr_null(ur_params_add(ps, "w", 1, 1));
    ck_assert_ptr_nonnull(strstr(ur_params_error(ps), "already used"));
    ck_assert_ptr_null(ur_params_add(ps, "z", 0, 3));
    ck_assert_ptr_nonnull(strstr(ur_params_error(ps), "bad size 0x3"));
    ck_assert_ptr_null(ur_params_add(ps, NULL, 1, 1));
    ur_tensor *b = ur_params_add(ps, "b", 1, 3);
    ck_assert_ptr_eq(ur_params_get(ps, "b"), b);
    ck_assert_ptr_null(ur_params_get(ps, "nope"));
    ck_assert_int_eq(ur_params_count(ps), 2);
    ck_assert_ptr_eq(ur_params_at(ps, 0), w);
    ck_assert_ptr_null(ur_params_at(ps, 2));
    ck_assert_uint_eq(ur_params_numel(ps), 9);
    w->grad[4] = 3;
    ur_params_zero_grad(ps);
    ck_assert_float_eq(w->grad[4], 0);
    ur_params_free(ps);
    ur_params_free(NULL);
}
END_TEST

START_TEST(test_rng)
{
    ur_rng a, b;
    ur_rng_seed(&a, 42);
    ur_rng_seed(&b, 42);
    for (int k = 0; k < 100; k++) ck_assert_uint_eq(ur_rng_next(&a), ur_rng_next(&b));
    ur_rng_seed(&b, 43);
    ck_assert_uint_ne(ur_rng_next(&a), ur_rng_next(&b));
    double sum = 0, sq = 0;
    int counts[5] = {0};
    const int n = 200000;
    for (int k = 0; k < n; k++) {
        float u = ur_rng_uniform(&a);
        ck_assert(u >= 0.0f && u < 1.0f);
        float z = ur_rng_normal(&a);
        sum += z;
        sq += (double)z * z;
        counts[ur_rng_below(&a, 5)]++;
    }
    ck_assert_double_lt(fabs(sum / n), 0.01);
    ck_assert_double_lt(fabs(sq / n - 1.0), 0.02);
    for (int k = 0; k < 5; k++) ck_assert_int_lt(abs(counts[k] - n / 5), 1000);
}
END_TEST

/* A parameter used at several places gets the sum of the gradients: L = sum(w*w + 3w). */
START_TEST(test_shared_param_sums)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 1, 3);
    float v[3] = {1, -2, 0.5f};
    memcpy(w->val, v, sizeof v);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *l = ur_sum(tp, ur_add(tp, ur_mul(tp, w, w), ur_scale(tp, w, 3)));
    ck_assert_int_eq(ur_backward(tp, l), 0);
    for (int k = 0; k < 3; k++) ck_assert_float_eq_tol(w->grad[k], 2 * v[k] + 3, 1e-6);
    ck_assert_float_eq_tol(l->val[0], 1 + 4 + 0.25f + 3 * (1 - 2 + 0.5f), 1e-5);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* Gradients of row views land in the parent's gradient. */
START_TEST(test_row_views)
{
    ur_params *ps = ur_params_new();
    ur_tensor *x = ur_params_add(ps, "x", 4, 2);
    for (int k = 0; k < 8; k++) x->val[k] = (float)k;
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *top = ur_rows(tp, x, 0, 2), *bottom = ur_rows(tp, x, 2, 2);
    ck_assert_float_eq(bottom->val[0], 4);
    ur_tensor *l = ur_sum(tp, ur_mul(tp, top, bottom));
    ck_assert_float_eq(l->val[0], 0 * 4 + 1 * 5 + 2 * 6 + 3 * 7);
    ck_assert_int_eq(ur_backward(tp, l), 0);
    float want[8] = {4, 5, 6, 7, 0, 1, 2, 3};
    for (int k = 0; k < 8; k++) ck_assert_float_eq(x->grad[k], want[k]);
    /* A view of a tape tensor: its base's producer receives the gradient. */
    ur_params_zero_grad(ps);
    ur_tape_reset(tp);
    ur_tensor *y = ur_scale(tp, x, 2);
    ur_tensor *l2 = ur_sum(tp, ur_rows(tp, ur_rows(tp, y, 1, 3), 1, 1));
    ck_assert_float_eq(l2->val[0], 2 * (4 + 5));
    ck_assert_int_eq(ur_backward(tp, l2), 0);
    float want2[8] = {0, 0, 0, 0, 2, 2, 0, 0};
    for (int k = 0; k < 8; k++) ck_assert_float_eq(x->grad[k], want2[k]);
    ck_assert_ptr_eq(ur_rows(tp, x, 3, 2), ur_tape_poison(tp));
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "rows [3, 5) are outside a 4x2"));
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* A backward makes its gradient buffers without filling them and fills each part when an op
 * first reaches it: over an arena whose memory held other values, what no op reached (rows of
 * x outside the view summed, an output nobody used) still reads zero afterwards, an op that
 * stores into a gradient nothing wrote yet (the LSTM gates' dz) adds when something did, a
 * retained re-run adds up, and the finite-value check sees no stale value. */
START_TEST(test_grads_fill_lazily)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tape_check_finite(tp, 1);
    for (int pass = 0; pass < 3; pass++) {
        /* the last pass's tensors and gradients filled the arena with NaN and 7 */
        ur_tensor *junk = ur_input(tp, 300, 300);
        for (size_t k = 0; k < ur_numel(junk); k++) junk->val[k] = k % 2 ? NAN : 7.0f;
        ur_tape_reset(tp);
        ur_tensor *x = ur_requires_grad(ur_input(tp, 4, 3));
        for (int k = 0; k < 12; k++) x->val[k] = (float)k;
        ur_tensor *z = ur_requires_grad(ur_input(tp, 2, 4 * 3));
        for (int k = 0; k < 24; k++) z->val[k] = 0.1f * (float)(k % 5);
        ur_tensor *cp = ur_input(tp, 2, 3);
        for (int k = 0; k < 6; k++) cp->val[k] = 0.5f;
        ur_tensor *h, *c; /* only h is used below; c gets nothing */
        ck_assert_int_eq(ur_lstm_gates(tp, z, cp, &h, &c), 0);
        ur_tensor *l = ur_add(tp, ur_sum(tp, ur_rows(tp, x, 2, 2)), ur_sum(tp, h));
        if (pass == 1) l = ur_add(tp, l, ur_sum(tp, ur_scale(tp, z, 3))); /* dz: 3 before gates */
        ck_assert_ptr_nonnull(l);
        int rc = pass == 2 ? ur_backward_retain(tp, l) : ur_backward(tp, l);
        ck_assert_int_eq(rc, 0);
        if (pass == 2) ck_assert_int_eq(ur_backward(tp, l), 0);
        float runs = pass == 2 ? 2.0f : 1.0f;
        for (int k = 0; k < 12; k++) ck_assert_float_eq(x->grad[k], k < 6 ? 0.0f : runs);
        for (int k = 0; k < 6; k++) ck_assert_float_eq(c->grad[k], 0.0f);
        for (int k = 0; k < 24; k++) ck_assert(isfinite(z->grad[k]));
        /* d sum(h) / dz_i of the first unit (gates i, f, g, o at 0, 0.3, 0.1, 0.4) */
        double si = 0.5, sf = 1 / (1 + exp(-0.3)), tg = tanh(0.1), so = 1 / (1 + exp(-0.4));
        double cn = sf * 0.5 + si * tg, want = so * (1 - tanh(cn) * tanh(cn)) * tg * si * (1 - si);
        ck_assert_double_eq_tol(z->grad[0], runs * want + (pass == 1 ? 3 : 0), 1e-6);
        ur_tape_reset(tp);
        /* tanh and sigmoid store into dw when they reach it first (pass 1), else add to 3 */
        for (int act = 0; act < 2; act++) {
            ur_tensor *w = ur_requires_grad(ur_input(tp, 1, 3));
            for (int k = 0; k < 3; k++) w->val[k] = 0.5f * (float)k - 0.5f;
            ur_tensor *a = NULL, *b = NULL; /* the one recorded last runs its backward first */
            if (pass == 1) b = ur_sum(tp, ur_scale(tp, w, 3));
            a = ur_sum(tp, act ? ur_sigmoid(tp, w) : ur_tanh(tp, w));
            if (pass != 1) b = ur_sum(tp, ur_scale(tp, w, 3));
            ck_assert_int_eq(ur_backward(tp, ur_add(tp, a, b)), 0);
            for (int k = 0; k < 3; k++) {
                double v = w->val[k], sv = 1 / (1 + exp(-v));
                double d = act ? sv * (1 - sv) : 1 - tanh(v) * tanh(v);
                ck_assert_double_eq_tol(w->grad[k], 3 + d, 1e-6);
            }
            ur_tape_reset(tp);
        }
    }
    ur_tape_free(tp);
}
END_TEST

/* Tape reuse: 1000 record/backward/reset cycles keep the arena's size fixed after the first. */
START_TEST(test_arena_steady)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 16, 16), *b = ur_params_add(ps, "b", 1, 16);
    ur_rng r;
    ur_rng_seed(&r, 1);
    ur_test_fill(w, &r, -0.3f, 0.3f);
    ur_tape *tp = ur_tape_new(4096); /* small chunks so the graph spans several */
    size_t after_first = 0, used_first = 0;
    int targets[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int it = 0; it < 1000; it++) {
        ur_tape_reset(tp);
        ur_tensor *h = ur_input(tp, 8, 16);
        for (int t = 0; t < 10; t++) h = ur_tanh(tp, ur_linear(tp, h, w, b));
        ur_tensor *loss = ur_softmax_nll(tp, h, targets, UR_MEAN);
        ur_params_zero_grad(ps);
        ck_assert_int_eq(ur_backward(tp, loss), 0);
        if (it == 0) {
            after_first = ur_tape_arena_bytes(tp);
            used_first = ur_tape_used_bytes(tp);
            ck_assert_uint_gt(after_first, 4096);
        }
        ck_assert_uint_eq(ur_tape_arena_bytes(tp), after_first);
        ck_assert_uint_eq(ur_tape_used_bytes(tp), used_first);
    }
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* Errors are sticky: later ops do nothing and return the poison, backward fails. */
START_TEST(test_sticky_error)
{
    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a", 2, 3), *b = ur_params_add(ps, "b", 3, 2);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *bad = ur_add(tp, a, b);
    ck_assert_ptr_eq(bad, ur_tape_poison(tp));
    ck_assert(isnan(bad->val[0]));
    ck_assert_str_eq(ur_tape_error(tp), "add: shapes differ: 2x3 and 3x2");
    int nodes = ur_tape_node_count(tp);
    ur_tensor *later = ur_tanh(tp, ur_matmul(tp, a, b, 0, 0));
    ck_assert_ptr_eq(later, ur_tape_poison(tp));
    ck_assert_int_eq(ur_tape_node_count(tp), nodes);
    ck_assert_str_eq(ur_tape_error(tp), "add: shapes differ: 2x3 and 3x2");
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, later)), -1);
    ur_tape_reset(tp);
    ck_assert_ptr_null(ur_tape_error(tp));
    /* NULL and zero-size arguments. */
    ck_assert_ptr_eq(ur_tanh(tp, NULL), ur_tape_poison(tp));
    ck_assert_str_eq(ur_tape_error(tp), "tanh: input 1 is NULL");
    ur_tape_reset(tp);
    ck_assert_ptr_eq(ur_input(tp, 0, 4), ur_tape_poison(tp));
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "bad size 0x4"));
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_backward(tp, NULL), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "loss is NULL"));
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_backward(tp, ur_matmul(tp, a, b, 0, 0)), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "loss must be 1x1, got 2x2"));
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_input(tp, 2, 2))), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "does not depend on any parameter"));
    ck_assert_ptr_null(ur_tanh(NULL, a));
    ck_assert_int_eq(ur_backward(NULL, a), -1);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* Nodes are recorded only when a gradient can flow; data-only ops cost no node. */
START_TEST(test_record_only_when_needed)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 2, 2);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input(tp, 2, 2);
    ur_tensor *y = ur_tanh(tp, ur_scale(tp, x, 2));
    ck_assert_int_eq(ur_tape_node_count(tp), 0);
    ck_assert_int_eq(y->requires_grad, 0);
    ur_tensor *z = ur_matmul(tp, y, w, 0, 0);
    ck_assert_int_eq(ur_tape_node_count(tp), 1);
    ck_assert_int_eq(z->requires_grad, 1);
    /* A leaf that asks for a gradient gets one. */
    ur_tensor *h0 = ur_requires_grad(ur_input(tp, 1, 2));
    h0->val[0] = 1;
    h0->val[1] = 2;
    ur_tensor *l = ur_sum(tp, ur_scale(tp, h0, 5));
    ck_assert_int_eq(ur_backward(tp, l), 0);
    ck_assert_float_eq(h0->grad[0], 5);
    ck_assert_float_eq(h0->grad[1], 5);
    /* A detached copy has the values and no gradient path. */
    ur_tensor *d = ur_detach(tp, h0);
    ck_assert_float_eq(d->val[1], 2);
    ck_assert_int_eq(d->requires_grad, 0);
    ck_assert_ptr_null(d->node);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* The gradient check itself must catch a wrong backward. */
static void wrong_backward(ur_node *n)
{
    float *dx = ur_grad(n->in[0]);
    for (size_t k = 0; k < ur_numel(n->out); k++) dx[k] += 2.0f * n->out->grad[k]; /* true: 3 */
}
static const ur_op wrong_op = {"triple_wrong", wrong_backward};
static ur_tensor *triple_wrong(ur_tape *tp, ur_tensor *x)
{
    ur_tensor *y = ur_tensor_new(tp, x->rows, x->cols);
    for (size_t k = 0; k < ur_numel(x); k++) y->val[k] = 3.0f * x->val[k];
    ur_record(tp, &wrong_op, y, 1, x);
    return y;
}
static ur_tensor *wrong_loss(ur_tape *tp, void *ctx)
{
    return ur_sum(tp, triple_wrong(tp, ur_params_get(ctx, "x")));
}
START_TEST(test_gradcheck_catches_bug)
{
    ur_params *ps = ur_params_new();
    ur_params_add(ps, "x", 2, 2);
    ur_gradcheck_result res;
    ck_assert_int_eq(ur_gradcheck(ps, wrong_loss, ps, NULL, &res), 0);
    ck_assert_int_eq(res.checked, 4);
    ck_assert_int_eq(res.passed, 0);
    ck_assert_int_eq(res.failures, 4);
    ck_assert_double_eq_tol(res.worst.analytic, 2.0, 1e-6);
    ck_assert_double_eq_tol(res.worst.numeric, 3.0, 1e-5);
    ck_assert_double_gt(res.worst.ratio, 100);
    ck_assert_str_eq(res.worst.param, "x");
    ur_gradcheck_result_free(&res);
    ur_params_free(ps);
}
END_TEST

/* A seeded backward is the vector-Jacobian product: seeding y with G gives the gradients of
 * sum(y * G), and several outputs add up. Same once-per-recording rule. */
START_TEST(test_backward_seeded)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 3, 2);
    ur_rng r;
    ur_rng_seed(&r, 4);
    ur_test_fill(w, &r, -1, 1);
    float xv[6] = {0.5f, -1, 2, 0.25f, 1, -0.5f}, G[4] = {1, -2, 0.5f, 3}, G2[4] = {2, 0, -1, 1};
    float want[6];
    ur_tape *tp = ur_tape_new(0);
    /* seeds on y and on z = 3 y, then (same) on y twice: the second seed adds to the first */
    for (int same = 0; same < 2; same++)
        for (int pass = 0; pass < 2; pass++) {
            ur_tape_reset(tp);
            ur_tensor *x = ur_input_from(tp, 2, 3, xv);
            ur_tensor *y = ur_tanh(tp, ur_matmul(tp, x, w, 0, 0));
            ur_tensor *z = same ? y : ur_scale(tp, y, 3);
            ur_params_zero_grad(ps);
            if (pass == 0) {
                ur_tensor *l = ur_add(tp, ur_sum(tp, ur_mul(tp, y, ur_input_from(tp, 2, 2, G))),
                                      ur_sum(tp, ur_mul(tp, z, ur_input_from(tp, 2, 2, G2))));
                ck_assert_int_eq(ur_backward(tp, l), 0);
                memcpy(want, w->grad, sizeof want);
                continue;
            }
            ur_tensor *outs[2] = {y, z};
            const float *seeds[2] = {G, G2};
            ck_assert_int_eq(ur_backward_seeded(tp, 2, outs, seeds), 0);
            for (int k = 0; k < 6; k++) ck_assert_float_eq_tol(w->grad[k], want[k], 1e-6f);
            ck_assert_int_eq(ur_backward_seeded(tp, 2, outs, seeds), -1);
            ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "already back-propagated"));
        }
    ur_tape_reset(tp);
    ur_tensor *c = ur_input(tp, 2, 2);
    const float *seed[1] = {G};
    ck_assert_int_eq(ur_backward_seeded(tp, 1, &c, seed), -1);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(tp), "does not depend"));
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_backward_seeded(tp, 0, &c, seed), -1);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* The scratch tape is the tape's own (made once, freed with it, counted in its arena and
 * peak); the peak is the most bytes a recording used; the last node leads to every other;
 * the step offset numbers steps of a segment in the whole sequence. */
START_TEST(test_scratch_peak_last)
{
    ur_tape *tp = ur_tape_new(4096);
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 4, 4);
    ck_assert_ptr_null(ur_tape_last(tp));
    size_t arena0 = ur_tape_arena_bytes(tp);
    ur_tape *sc = ur_tape_scratch(tp);
    ck_assert_ptr_nonnull(sc);
    ck_assert_ptr_eq(ur_tape_scratch(tp), sc);
    ck_assert_uint_eq(ur_tape_arena_bytes(tp), arena0 + ur_tape_arena_bytes(sc));
    ur_tape_check_finite(tp, 1);
    ur_tape_scratch(tp);
    ur_tape_reset(sc);
    ur_tensor *bad = ur_input(sc, 1, 4);
    bad->val[2] = NAN;
    ur_matmul(sc, bad, w, 0, 0);
    ck_assert_ptr_nonnull(strstr(ur_tape_error(sc), "non-finite")); /* the trap was passed on */

    ur_tensor *h = ur_input(tp, 8, 4);
    for (int k = 0; k < 5; k++) h = ur_tanh(tp, ur_matmul(tp, h, w, 0, 0));
    size_t big = ur_tape_used_bytes(tp);
    int n = 0;
    for (ur_node *nd = ur_tape_last(tp); nd; nd = nd->prev) n++;
    ck_assert_int_eq(n, ur_tape_node_count(tp));
    ck_assert_ptr_eq(ur_tape_last(tp), h->node);
    ur_tape_reset(tp);
    ur_input(tp, 1, 1);
    ck_assert_uint_ge(ur_tape_peak_bytes(tp), big + ur_tape_used_bytes(sc));
    ck_assert_uint_lt(ur_tape_used_bytes(tp), big);

    ur_tape_set_step_offset(tp, 30);
    ck_assert_int_eq(ur_tape_step_offset(tp), 30);
    ur_tape_set_context(tp, "cell", 2);
    ur_tensor *y = ur_tanh(tp, ur_matmul(tp, ur_input(tp, 1, 4), w, 0, 0));
    ck_assert_int_eq(y->node->ctx_step, 32);
    ur_tape_reset(tp);
    ck_assert_int_eq(ur_tape_step_offset(tp), 0);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* A tape's memory limit: ops within it run as without one; the first that needs more fails
 * the tape with a message naming the limit, reserves nothing past it, and the tape works again
 * after a reset once the cap is raised; the scratch tape gets the same cap. */
START_TEST(test_tape_limit)
{
    ur_tape *tp = ur_tape_new(4096);
    ck_assert_uint_eq(ur_tape_limit(tp), 0);
    size_t base = ur_tape_arena_bytes(tp), cap = base + 64 * 1024;
    ur_tape_set_limit(tp, cap);
    ck_assert_uint_eq(ur_tape_limit(tp), cap);
    ck_assert_uint_eq(ur_tape_limit(ur_tape_scratch(tp)), cap);
    base = ur_tape_arena_bytes(tp) - ur_tape_arena_bytes(ur_tape_scratch(tp));
    ur_tensor *small = ur_input(tp, 64, 64); /* 16 KiB: fits */
    ck_assert_ptr_nonnull(small);
    ck_assert_ptr_null(ur_tape_error(tp));
    ck_assert_ptr_eq(ur_input(tp, 256, 256), ur_tape_poison(tp)); /* 256 KiB: over the cap */
    const char *err = ur_tape_error(tp);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "memory limit of"));
    ck_assert_uint_le(ur_tape_arena_bytes(tp) - ur_tape_arena_bytes(ur_tape_scratch(tp)), cap);
    ck_assert_uint_gt(cap, base);
    ur_tape_reset(tp);
    ur_tape_set_limit(tp, 0);
    ur_tensor *big = ur_input(tp, 256, 256);
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_null(ur_tape_error(tp));
    ck_assert_uint_eq(ur_tape_limit(ur_tape_scratch(tp)), 0);
    ur_tape_free(tp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_params_basic);
    tcase_add_test(tc, test_rng);
    tcase_add_test(tc, test_shared_param_sums);
    tcase_add_test(tc, test_row_views);
    tcase_add_test(tc, test_grads_fill_lazily);
    tcase_add_test(tc, test_arena_steady);
    tcase_add_test(tc, test_sticky_error);
    tcase_add_test(tc, test_record_only_when_needed);
    tcase_add_test(tc, test_gradcheck_catches_bug);
    tcase_add_test(tc, test_backward_seeded);
    tcase_add_test(tc, test_scratch_peak_last);
    tcase_add_test(tc, test_tape_limit);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
