/* The recurrent product's own kernels and thread pool (ops/rgemm.h, ops/pool.h), and the
 * unroll's states written in place: every kernel the CPU has against a double-precision
 * product on awkward shapes, the pool under many quick runs, the unroll's rules for a
 * step's h_out, and the fused GRU gates against generic ops. */
#include "tests/ur_test.h"

#include <stdatomic.h>

#include "ops/pool.h"
#include "ops/rgemm.h"

static const char *kernels[] = {"avx512", "avx2"};

/* C += A op(W) by ur_rgemm against double sums, for op(W) = W and W^T. */
static void check_product(int m, int n, int k, int trans)
{
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)(m * 1000003 + n * 1009 + k * 7 + trans));
    float *a = malloc((size_t)m * k * sizeof *a), *w = malloc((size_t)k * n * sizeof *w);
    float *c = malloc((size_t)m * (n + 3) * sizeof *c);
    float *p = malloc(ur_rgemm_packed_floats(k, n) * sizeof *p);
    double *ref = malloc((size_t)m * n * sizeof *ref);
    ck_assert(a && w && c && p && ref);
    for (int i = 0; i < m * k; i++) a[i] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (int i = 0; i < k * n; i++) w[i] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    int ldc = n + 3; /* a row stride other than n; the 3 extra columns must stay untouched */
    for (int i = 0; i < m * ldc; i++) c[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = c[(size_t)i * ldc + j];
            for (int q = 0; q < k; q++) {
                double wv = trans ? w[(size_t)j * k + q] : w[(size_t)q * n + j];
                s += (double)a[(size_t)i * k + q] * wv;
            }
            ref[(size_t)i * n + j] = s;
        }
    ur_rgemm_pack(w, trans ? k : n, trans, k, n, p);
    ur_rgemm(m, n, k, a, k, p, c, ldc);
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double got = c[(size_t)i * ldc + j], want = ref[(size_t)i * n + j];
            ck_assert_msg(fabs(got - want) <= 1e-5 * k + 1e-6 * fabs(want),
                          "%s m %d n %d k %d trans %d: C[%d][%d] = %.8g, expected %.8g",
                          ur_rgemm_kernel(), m, n, k, trans, i, j, got, want);
        }
        for (int j = n; j < ldc; j++)
            ck_assert_msg(c[(size_t)i * ldc + j] == (float)((i * ldc + j) % 7) - 3.0f,
                          "%s m %d n %d k %d: column %d past n was written", ur_rgemm_kernel(),
                          m, n, k, j);
    }
    free(a);
    free(w);
    free(c);
    free(p);
    free(ref);
}

START_TEST(test_rgemm_shapes)
{
    static const int ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 32, 33, 128};
    static const int ns[] = {1, 15, 16, 17, 31, 32, 33, 100, 128, 200, 1024};
    static const int ks[] = {1, 7, 64, 256};
    int ran = 0;
    for (size_t kk = 0; kk < sizeof kernels / sizeof kernels[0]; kk++) {
        if (ur_rgemm_select(kernels[kk]) != 0) continue;
        ran++;
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
            for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++)
                for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
                    if (ms[i] * ns[j] * ks[q] > 1100000) continue;
                    check_product(ms[i], ns[j], ks[q], (int)((i + j + q) % 2));
                }
    }
    if (!ran) fprintf(stderr, "test_rgemm_shapes: no kernel on this CPU (cblas is used)\n");
}
END_TEST

/* C = op(X) op(Y) + beta C by ur_rgemm_gemm (or bias + op(X) op(Y) by ur_rgemm_gemm_bias)
 * against double sums: every transpose, beta 0 (C's old values, NaN here, ignored) and 1,
 * inner sizes across the kernel's k blocks. */
static void check_gemm(int tx, int ty, int m, int n, int k, float beta, int with_bias)
{
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)(m * 7919 + n * 104729 + k * 31 + tx * 2 + ty));
    int ldx = (tx ? m : k) + 2, ldy = (ty ? k : n) + 1, ldc = n + 3;
    size_t nx = (size_t)(tx ? k : m) * ldx, ny = (size_t)(ty ? n : k) * ldy;
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y);
    float *c = malloc((size_t)m * ldc * sizeof *c);
    double *ref = malloc((size_t)m * n * sizeof *ref);
    float *bias = malloc((size_t)n * sizeof *bias);
    ck_assert(x && y && c && ref && bias);
    for (int j = 0; j < n; j++) bias[j] = (float)(j % 9) - 4.0f;
    for (size_t i = 0; i < nx; i++) x[i] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (size_t i = 0; i < ny; i++) y[i] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (int i = 0; i < m * ldc; i++) c[i] = beta == 0.0f && i % ldc < n ? NAN : (float)(i % 5) - 2.0f;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = with_bias ? bias[j] : beta == 0.0f ? 0.0 : c[(size_t)i * ldc + j];
            for (int q = 0; q < k; q++) {
                double xv = tx ? x[(size_t)q * ldx + i] : x[(size_t)i * ldx + q];
                double yv = ty ? y[(size_t)j * ldy + q] : y[(size_t)q * ldy + j];
                s += xv * yv;
            }
            ref[(size_t)i * n + j] = s;
        }
    if (with_bias)
        ck_assert_int_eq(ur_rgemm_gemm_bias(tx, ty, m, n, k, x, ldx, y, ldy, bias, c, ldc), 0);
    else
        ck_assert_int_eq(ur_rgemm_gemm(tx, ty, m, n, k, x, ldx, y, ldy, beta, c, ldc), 0);
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double got = c[(size_t)i * ldc + j], want = ref[(size_t)i * n + j];
            ck_assert_msg(fabs(got - want) <= 1e-5 * k + 1e-6 * fabs(want),
                          "%s gemm tx %d ty %d m %d n %d k %d beta %g: C[%d][%d] = %.8g, "
                          "expected %.8g", ur_rgemm_kernel(), tx, ty, m, n, k, (double)beta, i,
                          j, got, want);
        }
        for (int j = n; j < ldc; j++)
            ck_assert_msg(c[(size_t)i * ldc + j] == (float)((i * ldc + j) % 5) - 2.0f,
                          "%s gemm m %d n %d k %d: column %d past n was written",
                          ur_rgemm_kernel(), m, n, k, j);
    }
    free(x);
    free(y);
    free(c);
    free(ref);
    free(bias);
}

START_TEST(test_rgemm_gemm_shapes)
{
    static const int shapes[][3] = {{1, 1, 1},   {3, 17, 5},    {8, 32, 256},  {9, 33, 257},
                                    {2, 200, 300}, {64, 100, 600}, {130, 48, 513}, {33, 64, 1024},
                                    {200, 40, 70}, {400, 20, 300}}; /* the last two: split by
                                                                        rows on 2+ threads */
    int ran = 0;
    for (size_t kk = 0; kk < sizeof kernels / sizeof kernels[0]; kk++) {
        if (ur_rgemm_select(kernels[kk]) != 0) continue;
        ran++;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int t = 0; t < 12; t++) /* 8-11: C = bias + op(X) op(Y) */
                check_gemm(t & 1, (t >> 1) & 1, shapes[i][0], shapes[i][1], shapes[i][2],
                           (t >> 2) == 1 ? 1.0f : 0.0f, t >= 8);
    }
    if (ur_rgemm_select("blas") == 0) /* no kernel: the caller keeps cblas */
        ck_assert_int_eq(ur_rgemm_gemm(0, 0, 4, 4, 4, NULL, 4, NULL, 4, 1.0f, NULL, 4), -1);
    if (kernels[0] && ur_rgemm_select(kernels[0]) != 0) (void)ur_rgemm_select("avx2");
    if (!ran) fprintf(stderr, "test_rgemm_gemm_shapes: no kernel on this CPU (cblas is used)\n");
}
END_TEST

static atomic_int item_runs[1000];

static void count_items(void *ctx, int begin, int end)
{
    int n = *(const int *)ctx;
    ck_assert(0 <= begin && begin < end && end <= n);
    for (int i = begin; i < end; i++) atomic_fetch_add(&item_runs[i], 1);
}

START_TEST(test_pool_runs_every_item_once)
{
    static const int ns[] = {1, 2, 3, 7, 64, 1000};
    for (size_t q = 0; q < sizeof ns / sizeof ns[0]; q++)
        for (int grain = 1; grain <= 5; grain += 2) {
            int n = ns[q];
            for (int i = 0; i < n; i++) atomic_store(&item_runs[i], 0);
            for (int r = 0; r < 2000; r++) ur_pool_for(n, grain, count_items, &n);
            for (int i = 0; i < n; i++)
                ck_assert_msg(atomic_load(&item_runs[i]) == 2000, "n %d grain %d: item %d ran %d times",
                              n, grain, i, atomic_load(&item_runs[i]));
        }
}
END_TEST

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

int main(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rgemm_shapes);
    tcase_add_test(tc, test_rgemm_gemm_shapes);
    tcase_add_test(tc, test_pool_runs_every_item_once);
    tcase_add_test(tc, test_unroll_h_out_rules);
    tcase_add_test(tc, test_gru_gates_match_generic_ops);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
