/* The recurrent product's own kernels and thread pool (ops/rgemm.h, ops/pool.h), and the
 * unroll's states written in place: every kernel the CPU has against a double-precision
 * product on awkward shapes, the pool under many quick runs, the unroll's rules for a
 * step's h_out, and the fused steps of both GRUs against generic ops. */
#include "tests/ur_test.h"

#include <stdatomic.h>

#include <float.h>

#include "ops/isa.h"
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
                                    {200, 40, 70}, {400, 20, 300}, /* split by rows on 2+ threads */
                                    {37, 260, 300}, {400, 256, 200}}; /* AVX-512: X packed too */
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

/* C1 += X1^T Y and C2 += X2^T Y by ur_rgemm_gemm_tn2 against double sums, with row strides
 * other than the widths and columns past n that must stay untouched. */
static void check_gemm_tn2(int m1, int m2, int n, int k)
{
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)(m1 * 31 + m2 * 7919 + n * 104729 + k));
    int ld1 = m1 + 1, ld2 = m2 + 3, ldy = n + 2, ldc = n + 3, ms[2] = {m1, m2};
    float *x[2] = {malloc((size_t)k * ld1 * sizeof(float)), malloc((size_t)k * ld2 * sizeof(float))};
    float *y = malloc((size_t)k * ldy * sizeof *y);
    float *c[2] = {malloc((size_t)m1 * ldc * sizeof(float)), malloc((size_t)m2 * ldc * sizeof(float))};
    ck_assert(x[0] && x[1] && y && c[0] && c[1]);
    for (size_t i = 0; i < (size_t)k * ld1; i++) x[0][i] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (size_t i = 0; i < (size_t)k * ld2; i++) x[1][i] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (size_t i = 0; i < (size_t)k * ldy; i++) y[i] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < ms[b] * ldc; i++) c[b][i] = (float)((i + b) % 5) - 2.0f;
    int lds[2] = {ld1, ld2};
    double *want[2] = {malloc((size_t)m1 * n * sizeof(double)), malloc((size_t)m2 * n * sizeof(double))};
    ck_assert(want[0] && want[1]);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < ms[b]; i++)
            for (int j = 0; j < n; j++) {
                double s = c[b][(size_t)i * ldc + j];
                for (int q = 0; q < k; q++)
                    s += (double)x[b][(size_t)q * lds[b] + i] * y[(size_t)q * ldy + j];
                want[b][(size_t)i * n + j] = s;
            }
    ck_assert_int_eq(ur_rgemm_gemm_tn2(m1, m2, n, k, x[0], ld1, x[1], ld2, y, ldy, c[0], ldc,
                                       c[1], ldc), 0);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < ms[b]; i++) {
            for (int j = 0; j < n; j++) {
                double got = c[b][(size_t)i * ldc + j], w = want[b][(size_t)i * n + j];
                ck_assert_msg(fabs(got - w) <= 1e-5 * k + 1e-6 * fabs(w),
                              "%s tn2 m %d+%d n %d k %d: C%d[%d][%d] = %.8g, expected %.8g",
                              ur_rgemm_kernel(), m1, m2, n, k, b + 1, i, j, got, w);
            }
            for (int j = n; j < ldc; j++)
                ck_assert_msg(c[b][(size_t)i * ldc + j] == (float)((i * ldc + j + b) % 5) - 2.0f,
                              "%s tn2 m %d+%d n %d k %d: C%d column %d past n was written",
                              ur_rgemm_kernel(), m1, m2, n, k, b + 1, j);
        }
    for (int b = 0; b < 2; b++) {
        free(x[b]);
        free(c[b]);
        free(want[b]);
    }
    free(y);
}

START_TEST(test_rgemm_gemm_tn2)
{
    /* a weight's and a recurrent weight's gradients: X1 the inputs, X2 the states; blocks of
     * op(X) packed or not, rows not a multiple of the tile, k across the kernel's blocks */
    static const int shapes[][4] = {{1, 1, 1, 1},     {3, 5, 17, 9},     {8, 24, 64, 40},
                                    {64, 256, 256, 300}, {13, 37, 260, 520}, {5, 120, 300, 129},
                                    {64, 64, 1024, 64}};
    int ran = 0;
    for (size_t kk = 0; kk < sizeof kernels / sizeof kernels[0]; kk++) {
        if (ur_rgemm_select(kernels[kk]) != 0) continue;
        ran++;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            check_gemm_tn2(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]);
    }
    if (ur_rgemm_select("blas") == 0) {
        float v = 0.0f;
        ck_assert_int_eq(ur_rgemm_gemm_tn2(1, 1, 1, 1, &v, 1, &v, 1, &v, 1, &v, 1, &v, 1), -1);
    }
    if (kernels[0] && ur_rgemm_select(kernels[0]) != 0) (void)ur_rgemm_select("avx2");
    if (!ran) fprintf(stderr, "test_rgemm_gemm_tn2: no kernel on this CPU (cblas is used)\n");
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

START_TEST(test_fused_weight_gradients_match_apart)
{
    /* large enough for the kernel's fused product on the steps after the first (80 rows of
     * [x h]^T), the first step's small one through two products */
    const int T = 6, B = 8, in_dim = 16, hidden = 64;
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
                                  "%s %s reverse %d: gradient %zu fused %.8g vs apart %.8g",
                                  kname, lstm ? "lstm" : "elman", reverse, i, fused[i],
                                  apart[i]);
                free(fused);
                free(apart);
                ur_params_free(ps);
            }
    }
    if (kernels[0] && ur_rgemm_select(kernels[0]) != 0) (void)ur_rgemm_select("avx2");
    ck_assert(ran > 0);
}
END_TEST

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

/* Every copy of the vectorised loops (ops/isa.h) the CPU runs gives the plain copy's values
 * and gradients, each within 4 float epsilons of the largest of its array: tanh, sigmoid, the
 * fused LSTM and GRU gates (both GRUs), log-softmax and softmax + NLL, forward and backward.
 * ur_isa names the copy selected. */
enum { ISA_B = 9, ISA_H = 13, ISA_N = 4 * ISA_H * ISA_B, ISA_OPS = 7 };

/* Op `which`'s values, then x's and h's gradients, into out (3 * ISA_N floats). x is
 * B x 4H (B x 3H for the GRUs, whose g is more of xv), h is B x H. */
static void isa_run(int which, const float *xv, const float *hv, float *out)
{
    ur_tape *tp = ur_tape_new(0);
    int cols = which == 4 || which == 6 ? 3 * ISA_H : 4 * ISA_H;
    ur_tensor *x = ur_requires_grad(ur_input_from(tp, ISA_B, cols, xv));
    ur_tensor *h = ur_requires_grad(ur_input_from(tp, ISA_B, ISA_H, hv));
    ur_tensor *xc = ur_scale(tp, x, 1.0f); /* a temporary for the ops that overwrite theirs */
    ur_tensor *y = NULL, *loss = NULL, *hn = NULL, *c = NULL;
    int labels[ISA_B];
    for (int b = 0; b < ISA_B; b++) labels[b] = (b * 5) % cols;
    switch (which) {
    case 0: y = ur_tanh(tp, x); break;
    case 1: y = ur_sigmoid(tp, x); break;
    case 2: y = ur_log_softmax(tp, x); break;
    case 3:
        ck_assert_int_eq(ur_lstm_gates_inplace(tp, xc, h, &hn, &c), 0);
        y = ur_mul(tp, hn, c);
        break;
    case 4: y = ur_gru_gates(tp, xc, ur_input_from(tp, ISA_B, cols, xv + ISA_H), h, NULL); break;
    case 6: /* g and Un more of xv, Un scaled down */
        y = ur_gru_cho_gates(tp, xc, ur_input_from(tp, ISA_B, 2 * ISA_H, xv + ISA_H), h,
                             ur_scale(tp, ur_input_from(tp, ISA_H, ISA_H, xv + 2 * ISA_H), 0.1f),
                             NULL);
        break;
    case 5: y = loss = ur_softmax_nll(tp, x, labels, UR_MEAN); break;
    default: ck_abort_msg("isa_run: no op %d", which);
    }
    if (!loss) loss = ur_sum(tp, ur_mul(tp, y, y));
    ck_assert_msg(ur_backward(tp, loss) == 0, "%s", ur_tape_error(tp));
    memset(out, 0, 3 * ISA_N * sizeof *out);
    memcpy(out, y->val, ur_numel(y) * sizeof *out);
    memcpy(out + ISA_N, x->grad, ur_numel(x) * sizeof *out);
    if (h->grad) memcpy(out + 2 * ISA_N, h->grad, ur_numel(h) * sizeof *out);
    ur_tape_free(tp);
}

/* 1 when a and b are within 4 FLT_EPSILON of scale, the largest magnitude of the reference's
 * array (or both NaN). Not per element in ulps: the AVX2 and AVX-512 copies fuse multiply-adds
 * (ops/isa.h), so a tanh rounds differently by an ulp or two (3 seen), and dy (1 - y^2) where
 * tanh saturates turns that into a thousand ulps of a gradient 1e-3 of its array's largest.
 * Measured: at most 1.4 epsilons of the largest, values and gradients. */
static int close_scaled(float a, float b, float scale)
{
    if (a == b || (a != a && b != b)) return 1;
    return fabsf(a - b) <= 4.0f * FLT_EPSILON * scale;
}

START_TEST(test_isa_copies_agree)
{
    const char *levels[] = {"generic", "avx2", "avx512"};
    const char *start = ur_isa(), *env = getenv("UR_ISA");
    /* Under UR_ISA=avx2 or generic (.ci/run's passes), that copy is the one selected (avx2:
     * where this build and CPU have it, which selecting it tells). */
    int env_avx2 = env && strcmp(env, "avx2") == 0 && ur_isa_select("avx2") == 0;
    ck_assert_int_eq(ur_isa_select(start), 0);
    if (env_avx2 || (env && strcmp(env, "generic") == 0)) ck_assert_str_eq(start, env);
    ur_rng rng;
    ur_rng_seed(&rng, 21);
    float xv[ISA_N], hv[ISA_B * ISA_H];
    for (int k = 0; k < ISA_N; k++) xv[k] = 12.0f * ur_rng_uniform(&rng) - 6.0f;
    for (int k = 0; k < ISA_B * ISA_H; k++) hv[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    static float ref[ISA_OPS][3 * ISA_N], got[3 * ISA_N];
    ck_assert_int_eq(ur_isa_select("generic"), 0);
    ck_assert_str_eq(ur_isa(), "generic");
    for (int w = 0; w < ISA_OPS; w++) isa_run(w, xv, hv, ref[w]);
    int tried = 0;
    for (int l = 1; l < 3; l++) {
        if (ur_isa_select(levels[l]) != 0) continue;
        ck_assert_str_eq(ur_isa(), levels[l]);
        tried++;
        for (int w = 0; w < ISA_OPS; w++) {
            isa_run(w, xv, hv, got);
            float scale[3] = {0};
            for (int k = 0; k < 3 * ISA_N; k++)
                scale[k / ISA_N] = fmaxf(scale[k / ISA_N], fabsf(ref[w][k]));
            for (int k = 0; k < 3 * ISA_N; k++)
                ck_assert_msg(close_scaled(got[k], ref[w][k], scale[k / ISA_N]),
                              "%s, op %d, value %d: %.9g vs %.9g (largest %.9g)", levels[l], w,
                              k, got[k], ref[w][k], scale[k / ISA_N]);
        }
    }
    if (getenv("UR_TEST_VERBOSE")) fprintf(stderr, "isa: %d copies besides generic\n", tried);
    ck_assert_int_eq(ur_isa_select("nonsense"), -1);
    ck_assert_int_eq(ur_isa_select(start), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rgemm_shapes);
    tcase_add_test(tc, test_rgemm_gemm_shapes);
    tcase_add_test(tc, test_rgemm_gemm_tn2);
    tcase_add_test(tc, test_fused_weight_gradients_match_apart);
    tcase_add_test(tc, test_pool_runs_every_item_once);
    tcase_add_test(tc, test_unroll_h_out_rules);
    tcase_add_test(tc, test_gru_gates_match_generic_ops);
    tcase_add_test(tc, test_gru_cho_gates_match_generic_ops);
    tcase_add_test(tc, test_gru_cho_gates_rules);
    tcase_add_test(tc, test_isa_copies_agree);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
