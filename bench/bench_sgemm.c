/* bench_sgemm: the machine's cblas_sgemm rate on the products of one training step of a
 * configuration, and on 1024^3. For x (m x k) W (k x n) a step does, as ops/matmul.c does:
 *     forward  y  = x W          NoTrans, NoTrans   (m x n, inner k)
 *     backward dx = dy W^T       NoTrans, Trans     (m x k, inner n)
 *              dW = x^T dy       Trans,   NoTrans   (k x n, inner m)
 * each accumulating (beta = 1). The step's sgemm-bound time is the sum over its products of
 * the three measured times (times the count, e.g. T recurrent products); the bound in
 * tokens/s is T*B over that time. Prints a summary and a 'RESULT key=value ...' line. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench_common.h"
#include "examples/common.h"

int openblas_get_num_threads(void); /* OpenBLAS's own: its sgemm runs on them here */

/* Seconds per call of C (m x n) += op(A) op(B), best of `rounds` timings of >= min_time s. */
static double time_gemm(int ta, int tb, int m, int n, int k, const float *a, const float *b,
                        float *c, double min_time, int rounds)
{
    int lda = ta ? m : k, ldb = tb ? k : n;
    CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    cblas_sgemm(CblasRowMajor, TA, TB, m, n, k, 1.0f, a, lda, b, ldb, 1.0f, c, n); /* warm */
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        long reps = 0;
        double t0 = bench_now(), t;
        do {
            cblas_sgemm(CblasRowMajor, TA, TB, m, n, k, 1.0f, a, lda, b, ldb, 1.0f, c, n);
            reps++;
            t = bench_now() - t0;
        } while (t < min_time || reps < 3);
        if (t / reps < best) best = t / reps;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *config = "lstm-256";
    int quick = 0, rounds = 3;
    float min_time = 0.1f;
    const ex_opt opts[] = {
        {"config", EX_STRING, &config, 0, 0, "lstm-256, lstm-512x2, elman-128 or minchar"},
        {"quick", EX_FLAG, &quick, 0, 0, "shorter timings"},
        {"rounds", EX_INT, &rounds, 1, 100, "timings per product; the best counts"},
        {"min-time", EX_FLOAT, &min_time, 0.001, 10, "seconds per timing"},
    };
    int rc = ex_parse(argc, argv, 1, "bench_sgemm",
                      "Times cblas_sgemm on a configuration's training-step products and on "
                      "1024^3; OPENBLAS_NUM_THREADS sets the threads.",
                      opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc != 0) return rc > 0 ? 0 : 2;
    const bench_config *c = bench_config_find(config);
    if (!c || c->sample) {
        fprintf(stderr, "bench_sgemm: config '%s' is not a training configuration\n", config);
        return 2;
    }
    if (quick) min_time /= 4;

    bench_gemm_shape s[2 * BENCH_MAX_LAYERS + 1];
    int n = bench_gemm_shapes(c, s, 2 * BENCH_MAX_LAYERS + 1);
    size_t biggest = 1024 * 1024;
    for (int i = 0; i < n; i++) {
        size_t sizes[3] = {(size_t)s[i].m * s[i].k, (size_t)s[i].k * s[i].n,
                           (size_t)s[i].m * s[i].n};
        for (int j = 0; j < 3; j++)
            if (sizes[j] > biggest) biggest = sizes[j];
    }
    ur_rng rng;
    ur_rng_seed(&rng, 7);
    float *a = bench_filled(biggest, &rng), *b = bench_filled(biggest, &rng);
    float *cc = bench_filled(biggest, &rng);
    if (!a || !b || !cc) { fprintf(stderr, "bench_sgemm: out of memory\n"); return 1; }

    const char *core = bench_blas_core();
    int threads = openblas_get_num_threads(); /* no libunroll product: OpenBLAS's threads */
    printf("sgemm on the products of one %s step (OpenBLAS core %s, %d thread(s)):\n", c->name,
           core, threads);
    double step_time = 0.0, step_flops = 0.0;
    for (int i = 0; i < n; i++) {
        int m = s[i].m, k = s[i].k, nn = s[i].n;
        double f = 2.0 * m * (double)k * nn;
        double tf = time_gemm(0, 0, m, nn, k, a, b, cc, min_time, rounds);
        double tx = time_gemm(0, 1, m, k, nn, a, b, cc, min_time, rounds);
        double tw = time_gemm(1, 0, k, nn, m, a, b, cc, min_time, rounds);
        step_time += s[i].count * (tf + tx + tw);
        step_flops += s[i].count * 3.0 * f;
        printf("  %-26s %5d x %4d x %4d (x%d): forward %6.1f, dx %6.1f, dW %6.1f GFLOP/s\n",
               s[i].what, m, k, nn, s[i].count, 1e-9 * f / tf, 1e-9 * f / tx, 1e-9 * f / tw);
    }
    double t1024 = time_gemm(0, 0, 1024, 1024, 1024, a, b, cc, min_time, rounds);
    double g1024 = 1e-9 * 2.0 * 1024 * 1024 * 1024 / t1024;
    long tokens = (long)c->T * c->batch;
    double fpt = bench_flops_per_token(c);
    printf("  per step: %.3f GFLOP of GEMM in %.3f ms (%.1f GFLOP/s): bound %.0f tokens/s\n",
           1e-9 * step_flops, 1e3 * step_time, 1e-9 * step_flops / step_time, tokens / step_time);
    printf("  1024^3: %.1f GFLOP/s; FLOPs per token %.0f\n", g1024, fpt);
    printf("RESULT impl=sgemm config=%s flops_per_token=%.0f gemm_ms_per_step=%.4f "
           "bound_tokens_per_s=%.2f gflops_shapes=%.3f gflops_1024=%.3f core=%s threads=%d\n",
           c->name, fpt, 1e3 * step_time, tokens / step_time, 1e-9 * step_flops / step_time,
           g1024, core, threads);
    free(a);
    free(b);
    free(cc);
    return 0;
}
