/* bench_lengths: the cost of uneven lengths in one batch. A training step (forward and
 * backward of a loss over every step's h) of the same padded T x B batch, four ways, run
 * alternately in one process (T=64, B=32, in 64, H 256 by default):
 *   equal      no lengths: the unroll as it always was (the baseline)
 *   full       lengths given, all T: must record exactly the same graph
 *   mixed      lengths uniform in [T/2, T] (one of them T): the usual padded batch
 *   wide       lengths uniform in [1, T] (one of them T)
 * for the LSTM, GRU and Elman cells. Prints a markdown table: median CPU ms per step (process
 * CPU time, steadier than wall time on a shared machine; run with OPENBLAS_NUM_THREADS=1 so
 * that it counts no spinning threads), the ratio to equal, median wall ms, the steps where
 * some rows had ended (where the carry ops run), tape bytes, nodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "examples/common.h"

enum { EQUAL, FULL, MIXED, WIDE, N_MODES };
static const char *const mode_name[N_MODES] = {"equal", "full", "mixed", "wide"};

typedef struct {
    double wall_ms;  /* of the last step */
    size_t tape;
    int nodes;
} figures;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One training step; returns its CPU time in ms (f gets its wall time), or -1. */
static double step(ur_tape *tp, ur_params *ps, const ur_cell *cell, const float *x, int T, int B,
                   const int *lengths, figures *f)
{
    double t0 = bench_now(), c0 = bench_cpu_now();
    ur_tape_reset(tp);
    ur_tensor *xs = ur_input_from(tp, T * B, cell->in_dim, x);
    ur_seq seq;
    ur_unroll_opts opts = {.lengths = lengths};
    ur_unroll_with(tp, cell, xs, T, (ur_state){0}, &opts, &seq);
    ur_tensor *loss = ur_sum(tp, ur_mul(tp, seq.H, seq.H));
    ur_params_zero_grad(ps);
    if (ur_backward(tp, loss) != 0) {
        fprintf(stderr, "bench_lengths: %s\n", ur_tape_error(tp));
        return -1;
    }
    double ms = (bench_cpu_now() - c0) * 1e3;
    f->wall_ms = (bench_now() - t0) * 1e3;
    f->tape = ur_tape_used_bytes(tp);
    f->nodes = ur_tape_node_count(tp);
    return ms;
}

/* Steps at which some but not all rows are real. */
static int mixed_steps(const int *lengths, int T, int B)
{
    int n = 0;
    for (int t = 0; t < T; t++) {
        int live = 0;
        for (int b = 0; b < B; b++) live += t < lengths[b];
        n += live > 0 && live < B;
    }
    return n;
}

int main(int argc, char **argv)
{
    int T = 64, B = 32, in = 64, H = 256, steps = 20, quick = 0, seed = 1;
    const ex_opt opts[] = {
        {"T", EX_INT, &T, 2, 100000, "padded time steps"},
        {"batch", EX_INT, &B, 2, 100000, "sequences per batch"},
        {"in", EX_INT, &in, 1, 100000, "input width"},
        {"hidden", EX_INT, &H, 1, 100000, "hidden width"},
        {"steps", EX_INT, &steps, 1, 100000, "timed steps per mode"},
        {"seed", EX_INT, &seed, 0, 1e9, "random seed (lengths, inputs, weights)"},
        {"quick", EX_FLAG, &quick, 0, 0, "a quarter of the steps"},
    };
    int rc = ex_parse(argc, argv, 1, "bench_lengths",
                      "Times training steps of one padded batch with and without lengths per row "
                      "(the masking's cost).",
                      opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (quick) steps = steps / 4 > 1 ? steps / 4 : 2;

    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)seed);
    const char *names[3] = {"lstm", "gru", "elman"};
    ur_cell cells[3];
    if (!ps || ur_lstm_cell(&cells[0], ps, "l", in, H, &rng) != 0 ||
        ur_gru_cell(&cells[1], ps, "g", in, H, &rng) != 0 ||
        ur_elman_cell(&cells[2], ps, "e", in, H, &rng) != 0) {
        fprintf(stderr, "bench_lengths: %s\n",
                ur_model_error() ? ur_model_error() : "out of memory");
        return 1;
    }
    float *x = malloc((size_t)T * B * in * sizeof *x);
    int *lens[N_MODES];
    double *times[N_MODES], *walls[N_MODES];
    for (int m = 0; m < N_MODES; m++) {
        lens[m] = malloc((size_t)B * sizeof *lens[m]);
        times[m] = malloc((size_t)steps * sizeof *times[m]);
        walls[m] = malloc((size_t)steps * sizeof *walls[m]);
        if (!lens[m] || !times[m] || !walls[m]) x = NULL;
    }
    ur_tape *tp = ur_tape_new(0);
    if (!x || !tp) {
        fprintf(stderr, "bench_lengths: out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < (size_t)T * B * in; k++) x[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    long real[N_MODES];
    for (int m = 0; m < N_MODES; m++) {
        real[m] = 0;
        for (int b = 0; b < B; b++) {
            int lo = m == MIXED ? T / 2 : 1;
            lens[m][b] = m <= FULL || b == 0
                             ? T : lo + (int)ur_rng_below(&rng, (uint32_t)(T - lo + 1));
            real[m] += lens[m][b];
        }
    }

    printf("T=%d B=%d in=%d H=%d, %d steps per mode, core=%s threads=%d\n", T, B, in, H, steps,
           bench_blas_core(), bench_blas_threads());
    for (int m = FULL; m < N_MODES; m++)
        printf("%-5s lengths: %ld real steps of %d (%.0f%%), %d of %d steps with ended rows\n",
               mode_name[m], real[m], T * B, 100.0 * (double)real[m] / (T * B),
               mixed_steps(lens[m], T, B), T);
    printf("\n| cell | lengths | CPU ms per step | vs equal | wall ms | tape MiB | nodes |\n"
           "|---|---|---:|---:|---:|---:|---:|\n");
    for (int c = 0; c < 3; c++) {
        figures f[N_MODES] = {{0}};
        for (int w = 0; w < 2; w++) /* warm-up: arena sized, caches warm */
            for (int m = 0; m < N_MODES; m++)
                step(tp, ps, &cells[c], x, T, B, m == EQUAL ? NULL : lens[m], &f[m]);
        for (int s = 0; s < steps; s++)
            for (int m = 0; m < N_MODES; m++) {
                times[m][s] = step(tp, ps, &cells[c], x, T, B, m == EQUAL ? NULL : lens[m], &f[m]);
                if (times[m][s] < 0) return 1;
                walls[m][s] = f[m].wall_ms;
            }
        double med[N_MODES], wmed[N_MODES];
        for (int m = 0; m < N_MODES; m++) {
            qsort(times[m], (size_t)steps, sizeof *times[m], cmp_double);
            qsort(walls[m], (size_t)steps, sizeof *walls[m], cmp_double);
            med[m] = times[m][steps / 2];
            wmed[m] = walls[m][steps / 2];
        }
        for (int m = 0; m < N_MODES; m++)
            printf("| %s | %s | %.2f | %.3f | %.2f | %.1f | %d |\n", names[c], mode_name[m],
                   med[m], med[m] / med[EQUAL], wmed[m], f[m].tape / 1048576.0, f[m].nodes);
        fflush(stdout);
    }
    free(x);
    for (int m = 0; m < N_MODES; m++) {
        free(lens[m]);
        free(times[m]);
        free(walls[m]);
    }
    ur_tape_free(tp);
    ur_params_free(ps);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "bench_lengths: cannot write the results\n");
        return 1;
    }
    return 0;
}
