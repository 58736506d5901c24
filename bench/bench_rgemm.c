/* bench_rgemm: our GEMM kernels (ops/rgemm.c, ops/rgemm_gemm.c) against cblas_sgemm, one product
 * at a time, on the shapes of the recurrent layers of bench/run-dnnl: the per-step recurrent
 * product with its weight packed once (ur_rgemm: h (B x H) times W (H x G H), and dZ (B x G H)
 * times W^T in the backward pass) and the whole-sequence products (ur_rgemm_gemm: the input
 * projection x (T B x in) W_x, and the weight gradients x^T dZ and h^T dZ). GFLOP/s of each, best
 * of rounds; the per-step figure for ours excludes the packing (done once per pass), cblas's
 * includes its own. The pool's threads come from OPENBLAS_NUM_THREADS as in the library. Prints a
 * table and a 'RESULT ...' line per shape. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "examples/common.h"
#include "ops/pool.h"
#include "ops/rgemm.h"

typedef struct shape {
    const char *name;
    int tx, ty, m, n, k; /* C (m x n) += op(X) (m x k) op(Y) (k x n) */
    int packed;          /* 1: ur_rgemm on op(Y) packed once */
    int m1;              /* > 0 (with tx): two products from one Y, X1^T Y (m1 rows) and X2^T Y
                            (the other m - m1): cblas as two calls, ours as ur_rgemm_gemm_tn2 */
} shape;

static const shape shapes[] = {
    {"lstm-256 h W", 0, 0, 32, 1024, 256, 1, 0},
    {"lstm-256 dZ W^T", 0, 1, 32, 256, 1024, 1, 0},
    {"lstm-256 b1 h W", 0, 0, 1, 1024, 256, 1, 0},
    {"lstm-256 b128 h W", 0, 0, 128, 1024, 256, 1, 0},
    {"lstm-512 h W", 0, 0, 32, 2048, 512, 1, 0},
    {"lstm-512 dZ W^T", 0, 1, 32, 512, 2048, 1, 0},
    {"rnn-128 h W", 0, 0, 32, 128, 128, 1, 0},
    {"rnn-128 dZ W^T", 0, 1, 32, 128, 128, 1, 0},
    {"lstm-256 x Wx", 0, 0, 2048, 1024, 64, 0, 0},
    {"lstm-256 x^T dZ", 1, 0, 64, 1024, 2048, 0, 0},
    {"lstm-256 h^T dZ", 1, 0, 256, 1024, 2048, 0, 0},
    {"lstm-256 x^T,h^T dZ", 1, 0, 320, 1024, 2048, 0, 64},
    {"lstm-256 dZ Wx^T", 0, 1, 2048, 64, 1024, 0, 0},
    {"rnn-128 x Wx", 0, 0, 2048, 128, 64, 0, 0},
    {"rnn-128 h^T dZ", 1, 0, 128, 128, 2048, 0, 0},
    {"lstm-512 x^T,h^T dZ", 1, 0, 576, 2048, 2048, 0, 64},
    {"lstm-512 l2 [x h]^T", 1, 0, 1024, 2048, 2048, 0, 512},
    {"1024^3", 0, 0, 1024, 1024, 1024, 0, 0},
};

/* One call of the product by impl (0 cblas, 1 ours). */
static void run(int impl, const shape *s, const float *x, const float *y, const float *packed,
                float *c)
{
    int ldx = s->tx ? s->m : s->k, ldy = s->ty ? s->k : s->n;
    if (s->m1) { /* X1 (k x m1) then X2 (k x m - m1) in x, C1 then C2 in c */
        int m2 = s->m - s->m1;
        const float *x2 = x + (size_t)s->k * s->m1;
        float *c2 = c + (size_t)s->m1 * s->n;
        if (impl == 1) {
            (void)ur_rgemm_gemm_tn2(s->m1, m2, s->n, s->k, x, s->m1, x2, m2, y, s->n, c, s->n,
                                    c2, s->n);
            return;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->m1, s->n, s->k, 1.0f, x, s->m1,
                    y, s->n, 1.0f, c, s->n);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m2, s->n, s->k, 1.0f, x2, m2, y,
                    s->n, 1.0f, c2, s->n);
        return;
    }
    if (impl == 0)
        cblas_sgemm(CblasRowMajor, s->tx ? CblasTrans : CblasNoTrans,
                    s->ty ? CblasTrans : CblasNoTrans, s->m, s->n, s->k, 1.0f, x, ldx, y, ldy,
                    1.0f, c, s->n);
    else if (s->packed)
        ur_rgemm(s->m, s->n, s->k, x, ldx, packed, c, s->n);
    else
        (void)ur_rgemm_gemm(s->tx, s->ty, s->m, s->n, s->k, x, ldx, y, ldy, 1.0f, c, s->n);
}

/* Seconds per call, best of rounds timings of at least min_time seconds each. */
static double time_one(int impl, const shape *s, const float *x, const float *y,
                       const float *packed, float *c, double min_time, int rounds)
{
    run(impl, s, x, y, packed, c); /* warm: caches, the pool, our scratch buffer */
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        long reps = 0;
        double t0 = bench_now(), t;
        do {
            run(impl, s, x, y, packed, c);
            reps++;
            t = bench_now() - t0;
        } while (t < min_time || reps < 3);
        if (t / reps < best) best = t / reps;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *only = "";
    int rounds = 3;
    float min_time = 0.1f;
    const ex_opt opts[] = {
        {"shape", EX_STRING, &only, 0, 0, "time only the shapes whose name contains this"},
        {"rounds", EX_INT, &rounds, 1, 100, "timings per product; the best counts"},
        {"min-time", EX_FLOAT, &min_time, 0.001, 10, "seconds per timing"},
    };
    int rc = ex_parse(argc, argv, 1, "bench_rgemm",
                      "Times libunroll's own GEMM kernels against cblas_sgemm on the recurrent "
                      "layers' products; OPENBLAS_NUM_THREADS sets the threads.",
                      opts, sizeof opts / sizeof opts[0]);
    if (rc) return rc > 0 ? 0 : 2;
    if (!ur_rgemm_available()) {
        printf("bench_rgemm: no kernel of ours on this CPU (%s): nothing to compare\n",
               ur_rgemm_kernel());
        return 0;
    }
    int threads = ur_pool_threads(); /* sets OpenBLAS to 1 thread: ours split, as in a step */
    printf("our kernel %s, OpenBLAS core %s; %d thread(s) (ours: the pool; cblas: OpenBLAS's "
           "1, as the library calls it inside the pool)\n",
           ur_rgemm_kernel(), bench_blas_core(), threads);
    printf("%-20s %5s %5s %5s  %10s %10s %7s\n", "product", "m", "n", "k", "cblas GF/s",
           "ours GF/s", "ratio");
    ur_rng rng;
    ur_rng_seed(&rng, 1);
    int found = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        if (*only && !strstr(s->name, only)) continue;
        found = 1;
        size_t xs = (size_t)s->m * s->k, ys = (size_t)s->k * s->n, cs = (size_t)s->m * s->n;
        float *x = bench_filled(xs, &rng), *y = bench_filled(ys, &rng), *c = bench_filled(cs, &rng);
        float *packed = malloc(ur_rgemm_packed_floats(s->k, s->n) * sizeof *packed);
        if (!x || !y || !c || !packed) {
            fprintf(stderr, "bench_rgemm: out of memory\n");
            return 1;
        }
        ur_rgemm_pack(y, s->ty ? s->k : s->n, s->ty, s->k, s->n, packed);
        double flops = 2.0 * s->m * s->n * s->k;
        double tb = time_one(0, s, x, y, packed, c, min_time, rounds);
        double to = time_one(1, s, x, y, packed, c, min_time, rounds);
        printf("%-20s %5d %5d %5d  %10.1f %10.1f %7.2f\n", s->name, s->m, s->n, s->k,
               flops / tb * 1e-9, flops / to * 1e-9, tb / to);
        printf("RESULT shape=\"%s\" m=%d n=%d k=%d cblas_gflops=%.2f ours_gflops=%.2f "
               "kernel=%s core=%s threads=%d\n",
               s->name, s->m, s->n, s->k, flops / tb * 1e-9, flops / to * 1e-9,
               ur_rgemm_kernel(), bench_blas_core(), threads);
        free(x);
        free(y);
        free(c);
        free(packed);
    }
    if (!found) {
        fprintf(stderr, "bench_rgemm: no shape's name contains '%s'\n", only);
        return 2;
    }
    return 0;
}
