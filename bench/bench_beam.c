/* bench_beam: beam-search decoding (models/beam.c) with a random LSTM decoder (embedding 64,
 * H 256, vocabulary 1000 by default; the end token is made unlikely, so every hypothesis
 * runs the whole max_len): time per decode of a batch at widths 1 (greedy) and k, and the
 * allocations made by decodes after the decoder's first step, which must be none of ours.
 * Exit status 1 when libunroll or this program allocated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/alloc_count.h"
#include "bench/bench_common.h"
#include "examples/common.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int H = 256, V = 1000, E = 64, N = 32, width = 5, max_len = 20, decodes = 10, seed = 1;
    const ex_opt opts[] = {
        {"hidden", EX_INT, &H, 1, 100000, "LSTM hidden width"},
        {"vocab", EX_INT, &V, 2, 1000000, "vocabulary"},
        {"embed", EX_INT, &E, 1, 100000, "embedding width"},
        {"batch", EX_INT, &N, 1, 100000, "examples decoded together"},
        {"width", EX_INT, &width, 1, 4096, "beam width of the second measurement"},
        {"max-len", EX_INT, &max_len, 1, 100000, "tokens per hypothesis"},
        {"decodes", EX_INT, &decodes, 1, 100000, "timed decodes per width"},
        {"seed", EX_INT, &seed, 0, 1e9, "random seed"},
    };
    int rc = ex_parse(argc, argv, 1, "bench_beam",
                      "Times beam-search decoding and checks that it allocates nothing after "
                      "its first step.",
                      opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc != 0) return rc > 0 ? 0 : 2;

    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)seed);
    ur_cell cell;
    if (!ps || ur_lstm_cell(&cell, ps, "dec", E, H, &rng) != 0) {
        fprintf(stderr, "bench_beam: %s\n", ur_model_error() ? ur_model_error() : "out of memory");
        return 1;
    }
    ur_tensor *emb = ur_model_param(ps, "embed", "E", V, E, 1.0f, &rng);
    ur_tensor *w = ur_model_param(ps, "head", "W", H, V, 1.0f, &rng);
    ur_tensor *b = ur_model_param(ps, "head", "b", 1, V, 0.1f, &rng);
    if (!emb || !w || !b) {
        fprintf(stderr, "bench_beam: %s\n", ur_model_error());
        return 1;
    }
    b->val[1] = -100.0f; /* the end token */
    float *h0 = malloc((size_t)N * H * sizeof *h0);
    double *ms = malloc((size_t)decodes * sizeof *ms);
    ur_tape *tp = ur_tape_new(0);
    if (!h0 || !ms || !tp) {
        fprintf(stderr, "bench_beam: out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < (size_t)N * H; k++) h0[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    ur_state init = {ur_input_from(tp, N, H, h0), NULL};

    printf("LSTM decoder E=%d H=%d V=%d, %d examples, max_len %d, core=%s threads=%d\n\n", E, H,
           V, N, max_len, bench_blas_core(), bench_blas_threads());
    printf("| width | ms per decode | beam-steps/s | allocations after the first step (ours / "
           "OpenBLAS / libc) |\n|---:|---:|---:|---|\n");
    int widths[2] = {1, width}, leaked = 0;
    for (int q = 0; q < (width == 1 ? 1 : 2); q++) {
        ur_beam_opts bo = {.width = widths[q], .start = 0, .end = 1, .max_len = max_len,
                           .embed = emb, .head_w = w, .head_b = b};
        ur_beam *bs = ur_beam_new(&cell, &bo, N);
        if (!bs) {
            fprintf(stderr, "bench_beam: %s\n", ur_model_error());
            return 1;
        }
        /* the first step sizes the tape; from then on nothing may allocate */
        if (ur_beam_decode(bs, N, init, 1) != 0) {
            fprintf(stderr, "bench_beam: %s\n", ur_beam_error(bs));
            return 1;
        }
        bench_alloc_counts all = {0};
        for (int d = 0; d < decodes; d++) {
            bench_alloc_counts c;
            double t0 = bench_now();
            bench_alloc_start();
            int r = ur_beam_decode(bs, N, init, 0);
            bench_alloc_stop(&c);
            ms[d] = (bench_now() - t0) * 1e3;
            if (r != 0) {
                fprintf(stderr, "bench_beam: %s\n", ur_beam_error(bs));
                return 1;
            }
            bench_alloc_add(&all, &c);
        }
        qsort(ms, (size_t)decodes, sizeof *ms, cmp_double);
        double med = ms[decodes / 2];
        printf("| %d | %.2f | %.0f | %s%ld / %ld / %ld |\n", widths[q], med,
               (double)N * widths[q] * max_len / (med * 1e-3),
               bench_alloc_available() ? "" : "(not counted) ", all.ours, all.openblas, all.libc);
        leaked |= all.ours != 0;
        ur_beam_free(bs);
    }
    free(h0);
    free(ms);
    ur_tape_free(tp);
    ur_params_free(ps);
    if (leaked) fprintf(stderr, "bench_beam: decoding allocated after its first step\n");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "bench_beam: cannot write the results\n");
        return 1;
    }
    return leaked;
}
