/* The recurrent product's own kernels and thread pool (ops/rgemm.h, ops/pool.h), and the
 * vectorised loops' copies (ops/isa.h): every kernel the CPU has against a double-precision
 * product on awkward shapes, the pool under many quick runs, and each copy of the loops
 * against the plain one. The fusions built on them are in tests/test_fused.c. */
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
    tcase_add_test(tc, test_pool_runs_every_item_once);
    tcase_add_test(tc, test_isa_copies_agree);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
