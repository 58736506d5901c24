/* The fused layer norm: its forward against values by hand, its values and gradients against
 * the same normalisation composed from elementary ops, and a layer-normalised LSTM step
 * (Ba et al. 2016) built both ways, with the tape memory each takes.
 */
#include "ur_test.h"

#include <stdlib.h>
#include <string.h>

START_TEST(test_layer_norm_forward)
{
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *x = ur_input_from(tp, 3, 4, (float[]){1, 2, 3, 4, -1, 0, 3, 2, 5, 5, 5, 5});
    ur_tensor *gain = ur_input_from(tp, 1, 4, (float[]){1, 2, 0.5f, -1});
    ur_tensor *bias = ur_input_from(tp, 1, 4, (float[]){0, 1, 0, 1});
    /* row 0: mean 2.5, var 1.25; row 1: mean 1, var 2.5; row 2 constant: 0 / 0 without an
     * epsilon, 0 (then the bias) with one */
    ur_test_expect(ur_layer_norm(tp, x, NULL, NULL, 0), 3, 4,
           (float[]){-1.34164079f, -0.447213595f, 0.447213595f, 1.34164079f, -1.26491106f,
                     -0.632455532f, 1.26491106f, 0.632455532f, NAN, NAN, NAN, NAN}, 1e-6);
    ur_test_expect(ur_layer_norm(tp, x, gain, bias, 0), 3, 4,
           (float[]){-1.34164079f, 0.105572809f, 0.223606798f, -0.341640786f, -1.26491106f,
                     -0.264911064f, 0.632455532f, 0.367544468f, NAN, NAN, NAN, NAN}, 1e-6);
    ur_test_expect(ur_layer_norm(tp, x, NULL, bias, 0.5f), 3, 4,
           (float[]){-1.13389342f, 0.622035527f, 0.377964473f, 2.13389342f, -1.15470054f,
                     0.422649731f, 1.15470054f, 1.57735027f, 0, 1, 0, 1}, 1e-6);
    ur_test_expect(ur_layer_norm(tp, x, gain, NULL, 1e-5f), 3, 4,
           (float[]){-1.34163542f, -0.894423613f, 0.223605903f, -1.34163542f, -1.26490853f,
                     -1.26490853f, 0.632454267f, -0.632454267f, 0, 0, 0, 0}, 1e-6);
    ck_assert_ptr_null(ur_tape_error(tp));
    ur_test_expect_error(tp, ur_layer_norm(tp, ur_input(tp, 2, 4), ur_input(tp, 1, 3), NULL, 1e-5f),
                 "layer_norm: gain must be 1 x cols of x: 2x4 and 1x3");
    ur_test_expect_error(tp, ur_layer_norm(tp, ur_input(tp, 2, 4), NULL, ur_input(tp, 2, 4), 1e-5f),
                 "layer_norm: bias must be 1 x cols of x: 2x4 and 2x4");
    ur_test_expect_error(tp, ur_layer_norm(tp, ur_input(tp, 2, 4), NULL, NULL, -1e-5f),
                 "layer_norm: epsilon -1e-05 must be finite and >= 0");
    ur_test_expect_error(tp, ur_layer_norm(tp, ur_input(tp, 2, 4), NULL, NULL, INFINITY),
                 "layer_norm: epsilon inf must be finite and >= 0");
    ur_test_expect_error(tp, ur_layer_norm(tp, NULL, NULL, NULL, 1e-5f), "layer_norm: input 1 is NULL");
    ur_tape_free(tp);
}
END_TEST

/* Layer norm written with the primitive ops, as a user would without the fused op. */
static ur_tensor *layer_norm_composed(ur_tape *tp, ur_tensor *x, ur_tensor *gain, ur_tensor *bias,
                                      float eps)
{
    ur_tensor *xc = ur_sub(tp, x, ur_row_mean(tp, x));
    ur_tensor *rstd = ur_rsqrt(tp, ur_add_scalar(tp, ur_row_mean(tp, ur_square(tp, xc)), eps));
    ur_tensor *y = ur_mul(tp, xc, rstd);
    if (gain) y = ur_mul(tp, y, gain);
    if (bias) y = ur_add(tp, y, bias);
    return y;
}

typedef ur_tensor *(*layer_norm_fn)(ur_tape *, ur_tensor *, ur_tensor *, ur_tensor *, float);

/* Copies out every parameter's gradient of sum(f(x, g, b) * R) and returns the values. */
static void layer_norm_run(ur_params *ps, layer_norm_fn f, float *vals, float *grads)
{
    ur_tape *tp = ur_tape_new(0);
    ur_params_zero_grad(ps);
    ur_tensor *x = ur_params_get(ps, "x"), *g = ur_params_get(ps, "g"), *b = ur_params_get(ps, "b");
    ur_tensor *y = f(tp, x, g, b, 1e-3f);
    memcpy(vals, y->val, ur_numel(y) * sizeof(float));
    ur_tensor *r = ur_input(tp, y->rows, y->cols);
    ur_rng rng;
    ur_rng_seed(&rng, 5);
    ur_test_fill(r, &rng, -1, 1);
    ck_assert_int_eq(ur_backward(tp, ur_sum(tp, ur_mul(tp, y, r))), 0);
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(grads, p->grad, ur_numel(p) * sizeof(float));
        grads += ur_numel(p);
    }
    ur_tape_free(tp);
}

START_TEST(test_layer_norm_vs_composed)
{
    enum { M = 5, N = 6 };
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 17);
    ur_test_fill(ur_params_add(ps, "x", M, N), &rng, -3, 3);
    ur_test_fill(ur_params_add(ps, "g", 1, N), &rng, -1.5f, 1.5f);
    ur_test_fill(ur_params_add(ps, "b", 1, N), &rng, -1, 1);
    float v1[M * N], v2[M * N], g1[M * N + 2 * N], g2[M * N + 2 * N];
    layer_norm_run(ps, ur_layer_norm, v1, g1);
    layer_norm_run(ps, layer_norm_composed, v2, g2);
    for (int k = 0; k < M * N; k++) ck_assert_float_eq_tol(v1[k], v2[k], 2e-6);
    for (int k = 0; k < M * N + 2 * N; k++)
        ck_assert_msg(fabsf(g1[k] - g2[k]) <= 1e-5f * fmaxf(1, fabsf(g2[k])),
                      "gradient %d: fused %.8g, composed %.8g", k, (double)g1[k], (double)g2[k]);
    ur_params_free(ps);
}
END_TEST

/* ---- A layer-normalised LSTM step (Ba et al. 2016, section 3.1), fused vs composed norm:
 *     z = LN(x Wx; g1, b1) + LN(h Wh; g2, b2) + b,   [i f g o] = z
 *     c' = sigmoid(f) c + sigmoid(i) tanh(g),         h' = sigmoid(o) tanh(LN(c'; g3, b3))
 * Both must agree; the numbers of nodes and tape bytes are printed (issue 10's closing note). */

enum { LN_B = 32, LN_IN = 128, LN_H = 128 };

static void ln_lstm_step(ur_tape *tp, ur_params *ps, layer_norm_fn ln, ur_tensor *x, ur_tensor *h,
                         ur_tensor *c, ur_tensor **h_out, ur_tensor **c_out)
{
#define PARAM(name) ur_params_get(ps, name)
    ur_tensor *zx = ln(tp, ur_matmul(tp, x, PARAM("Wx"), 0, 0), PARAM("g1"), PARAM("b1"), 1e-5f);
    ur_tensor *zh = ln(tp, ur_matmul(tp, h, PARAM("Wh"), 0, 0), PARAM("g2"), PARAM("b2"), 1e-5f);
    ur_tensor *z = ur_add_bias(tp, ur_add(tp, zx, zh), PARAM("b"));
    ur_tensor *q[4];
    ur_split_cols(tp, z, 4, q);
    ur_tensor *i = ur_sigmoid(tp, q[0]), *f = ur_sigmoid(tp, q[1]);
    ur_tensor *g = ur_tanh(tp, q[2]), *o = ur_sigmoid(tp, q[3]);
    *c_out = ur_add(tp, ur_mul(tp, f, c), ur_mul(tp, i, g));
    *h_out = ur_mul(tp, o, ur_tanh(tp, ln(tp, *c_out, PARAM("g3"), PARAM("b3"), 1e-5f)));
#undef PARAM
}

typedef struct { int nodes; size_t forward_bytes, total_bytes; } step_cost;

static step_cost ln_lstm_measure(ur_params *ps, layer_norm_fn ln, float *h_vals, float *grads)
{
    ur_tape *tp = ur_tape_new(0);
    ur_rng rng;
    ur_rng_seed(&rng, 23);
    ur_tensor *x = ur_input(tp, LN_B, LN_IN), *h = ur_input(tp, LN_B, LN_H);
    ur_tensor *c = ur_input(tp, LN_B, LN_H), *r = ur_input(tp, LN_B, LN_H);
    ur_test_fill(x, &rng, -1, 1);
    ur_test_fill(h, &rng, -1, 1);
    ur_test_fill(c, &rng, -1, 1);
    ur_test_fill(r, &rng, -1, 1);
    int nodes0 = ur_tape_node_count(tp);
    size_t bytes0 = ur_tape_used_bytes(tp);
    ur_tensor *h2, *c2;
    ln_lstm_step(tp, ps, ln, x, h, c, &h2, &c2);
    step_cost cost = {ur_tape_node_count(tp) - nodes0, ur_tape_used_bytes(tp) - bytes0, 0};
    memcpy(h_vals, h2->val, ur_numel(h2) * sizeof(float));
    ur_params_zero_grad(ps);
    ur_tensor *loss = ur_add(tp, ur_sum(tp, ur_mul(tp, h2, r)), ur_sum(tp, c2));
    ck_assert_msg(ur_backward(tp, loss) == 0, "%s", ur_tape_error(tp));
    cost.total_bytes = ur_tape_used_bytes(tp) - bytes0;
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(grads, p->grad, ur_numel(p) * sizeof(float));
        grads += ur_numel(p);
    }
    ur_tape_free(tp);
    return cost;
}

START_TEST(test_ln_lstm_step)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 29);
    float k = 1.0f / sqrtf(LN_H);
    ur_test_fill(ur_params_add(ps, "Wx", LN_IN, 4 * LN_H), &rng, -k, k);
    ur_test_fill(ur_params_add(ps, "Wh", LN_H, 4 * LN_H), &rng, -k, k);
    ur_test_fill(ur_params_add(ps, "b", 1, 4 * LN_H), &rng, -k, k);
    const char *norms[6] = {"g1", "b1", "g2", "b2", "g3", "b3"};
    for (int j = 0; j < 6; j++) {
        ur_tensor *p = ur_params_add(ps, norms[j], 1, j < 4 ? 4 * LN_H : LN_H);
        ur_test_fill(p, &rng, j % 2 ? -0.1f : 0.9f, j % 2 ? 0.1f : 1.1f); /* gains ~1, biases ~0 */
    }
    ck_assert_int_eq(ur_params_count(ps), 9);
    size_t np = ur_params_numel(ps);
    float *h1 = malloc(LN_B * LN_H * sizeof(float)), *h2 = malloc(LN_B * LN_H * sizeof(float));
    float *g1 = malloc(np * sizeof(float)), *g2 = malloc(np * sizeof(float));
    step_cost fused = ln_lstm_measure(ps, ur_layer_norm, h1, g1);
    step_cost composed = ln_lstm_measure(ps, layer_norm_composed, h2, g2);
    for (int j = 0; j < LN_B * LN_H; j++) ck_assert_float_eq_tol(h1[j], h2[j], 1e-5);
    double worst = 0;
    for (size_t j = 0; j < np; j++) worst = fmax(worst, fabs(g1[j] - g2[j]) / fmax(1, fabs(g2[j])));
    ck_assert_msg(worst < 1e-4, "fused and composed gradients differ by %g", worst);
    printf("layer-norm LSTM step, B %d, in %d, H %d: fused ur_layer_norm %d nodes, %zu tape bytes "
           "forward, %zu with gradients; composed %d nodes, %zu bytes forward, %zu with "
           "gradients\n",
           LN_B, LN_IN, LN_H, fused.nodes, fused.forward_bytes, fused.total_bytes, composed.nodes,
           composed.forward_bytes, composed.total_bytes);
    ck_assert_int_lt(fused.nodes, composed.nodes);
    ck_assert_uint_lt(fused.total_bytes, composed.total_bytes);
    free(h1);
    free(h2);
    free(g1);
    free(g2);
    ur_params_free(ps);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layer_norm");
    TCase *tc = tcase_create("layer_norm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_layer_norm_forward);
    tcase_add_test(tc, test_layer_norm_vs_composed);
    tcase_add_test(tc, test_ln_lstm_step);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
