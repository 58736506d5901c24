/* bench_train: times full training steps (forward, backward, clipping, optimizer) of a
 * character language model on random tokens, or generation one token at a time, and checks
 * that no step after the first allocates. Prints a summary and one 'RESULT key=value ...' line
 * for bench/run. See bench_common.h for the configurations and the graph of a step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/alloc_count.h"
#include "bench/bench_common.h"
#include "examples/common.h"
#include "ops/rgemm.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Steps counted as the first ones for allocations (graph/tape.c's header pools, 4). */
#define FIRST_STEPS 4

static double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

static void print_allocs(const char *what, const bench_alloc_counts *a)
{
    printf("%s: %ld calls (libunroll/bench %ld, OpenBLAS %ld, libc %ld, other %ld)\n", what,
           a->total, a->ours, a->openblas, a->libc, a->other);
}

int main(int argc, char **argv)
{
    const char *config = "lstm-256";
    int steps = 0, warmup = -1, quick = 0, seed = 1, trap = 0;
    const ex_opt opts[] = {
        {"config", EX_STRING, &config, 0, 0,
         "lstm-256, lstm-512x2, elman-128, minchar or sample"},
        {"steps", EX_INT, &steps, 0, 1e8, "timed steps (0: the configuration's default)"},
        {"warmup", EX_INT, &warmup, -1, 1e6, "untimed steps after the first (-1: steps / 10, at least 4)"},
        {"quick", EX_FLAG, &quick, 0, 0, "a short run (a quarter of the default steps)"},
        {"seed", EX_INT, &seed, 0, 1e9, "random seed"},
        {"check-finite", EX_FLAG, &trap, 0, 0, "turn the tape's non-finite trap on"},
    };
    int rc = ex_parse(argc, argv, 1, "bench_train",
                      "Times training steps (or sampling) of a character model on random tokens; "
                      "OPENBLAS_NUM_THREADS sets the BLAS threads.",
                      opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc != 0) return rc > 0 ? 0 : 2;
    const bench_config *c = bench_config_find(config);
    if (!c) {
        fprintf(stderr, "bench_train: unknown config '%s' (one of: %s)\n", config,
                bench_config_names());
        return 2;
    }
    if (steps <= 0) steps = c->steps;
    if (quick) steps = steps / 4 > 0 ? steps / 4 : 1;
    if (warmup < 0) warmup = steps / 10 > FIRST_STEPS ? steps / 10 : FIRST_STEPS;

    char err[512];
    bench_model m;
    if (bench_model_init(&m, c, (unsigned long)seed, err, sizeof err) != 0) {
        fprintf(stderr, "bench_train: %s\n", err);
        bench_model_free(&m);
        return 1;
    }
    ur_tape_check_finite(m.tp, trap);
    double *times = malloc((size_t)steps * sizeof *times);
    if (!times) { fprintf(stderr, "bench_train: out of memory\n"); return 1; }

    bench_phase_times pt = {0};
    bench_alloc_counts first = {0}, later = {0}, a;
    long counted_steps = 0;
    int fail = 0;
    /* Step 0 (grows the arena, makes gradients and OpenBLAS buffers), then the warm-up, then
     * the timed steps; allocations are counted in every step, the first FIRST_STEPS apart. */
    for (long k = 0; k < 1 + warmup + steps && !fail; k++) {
        long timed = k - 1 - warmup;
        bench_alloc_start();
        double t0 = bench_now();
        int r = c->sample ? bench_sample_step(&m, err, sizeof err)
                          : bench_train_step(&m, k, timed >= 0 ? &pt : NULL, err, sizeof err);
        double t1 = bench_now();
        bench_alloc_stop(&a);
        if (r != 0) {
            fprintf(stderr, "bench_train: step %ld: %s\n", k, err);
            fail = 1;
        }
        /* The tape keeps its tensor headers in a few pools used in turn, one per reset, so
         * the first steps each grow one pool: "later" starts once every pool has been used. */
        if (k < FIRST_STEPS) {
            bench_alloc_add(&first, &a);
        } else {
            bench_alloc_add(&later, &a);
            counted_steps++;
        }
        if (timed >= 0) times[timed] = t1 - t0;
    }
    if (fail) { free(times); bench_model_free(&m); return 1; }

    double total = 0.0;
    for (int k = 0; k < steps; k++) total += times[k];
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double median = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
    double best = times[0];
    long tokens_per_step = (long)c->T * c->batch;
    double tps = (double)tokens_per_step * steps / total;
    long rss = bench_maxrss_kb();
    size_t arena = ur_tape_arena_bytes(m.tp);

    printf("libunroll %s: %.0f tokens/s, %.4f ms/step (median %.4f, best %.4f) over %d steps "
           "after %d warm-up\n", c->name, tps, 1e3 * total / steps, 1e3 * median, 1e3 * best,
           steps, warmup);
    printf("OpenBLAS core %s, %d thread(s)\n", bench_blas_core(), bench_blas_threads());
    if (!c->sample) {
        printf("per step: forward %.3f ms, backward %.3f ms, clip %.3f ms, optimizer %.3f ms; "
               "loss %.4f\n", 1e3 * pt.forward / steps, 1e3 * pt.backward / steps,
               1e3 * pt.clip / steps, 1e3 * pt.optim / steps, m.loss);
    }
    printf("memory: peak RSS %.1f MiB; tape arena %.2f MiB, used after forward %.2f MiB",
           rss / 1024.0, mib((double)arena), mib((double)m.used_after_forward));
    if (!c->sample) printf(", after backward %.2f MiB", mib((double)m.used_after_backward));
    printf("; %d nodes\n", ur_tape_node_count(m.tp));
    size_t min_act = bench_min_activation_bytes(c);
    if (!c->sample)
        printf("activation memory: tape after forward %.2f MiB; BPTT minimum (inputs, %s) "
               "%.2f MiB; ratio %.2f; the recurrent layers' own part (their tape and the "
               "input) %.2f MiB, ratio %.2f\n", mib((double)m.used_after_forward),
               strcmp(c->cell, "lstm") == 0 ? "i f g o gates, c and h per step"
               : strcmp(c->cell, "gru") == 0 ? "r z n gates, h Whn + bhn and h per step"
                                             : "h per step",
               mib((double)min_act), (double)m.used_after_forward / (double)min_act,
               mib((double)m.used_by_cells), (double)m.used_by_cells / (double)min_act);
    printf("recurrent kernel: %s (UR_RGEMM=%s); large products: %s (UR_GEMM=%s)\n",
           ur_rgemm_kernel(), getenv("UR_RGEMM") ? getenv("UR_RGEMM") : "unset",
           ur_rgemm_gemm_path(), getenv("UR_GEMM") ? getenv("UR_GEMM") : "unset");

    long bad = bench_alloc_available() && counted_steps > 0 ? 0 : -1; /* -1: not counted */
    if (bad == 0) {
        print_allocs("allocations in the first 4 steps", &first);
        print_allocs("allocations in the later steps", &later);
        bad = later.total - later.openblas;
        if (later.openblas)
            printf("note: OpenBLAS allocated %ld times after the first 4 steps (%.2f per step)\n",
                   later.openblas, (double)later.openblas / counted_steps);
        printf("allocations per step: %ld%s\n", bad / counted_steps,
               bad % counted_steps ? " (plus a remainder)" : "");
    } else {
        printf("allocations per step: not counted (the hook is off: sanitizer build or valgrind; or "
               "no step after the first 4)\n");
    }
    printf("RESULT impl=ours config=%s tokens_per_s=%.2f ms_per_step=%.4f median_ms=%.4f "
           "best_ms=%.4f maxrss_kb=%ld tape_arena=%zu tape_used_fwd=%zu tape_used_bwd=%zu "
           "min_act=%zu allocs_first=%ld allocs_later=%ld allocs_blas_later=%ld "
           "fwd_ms=%.4f bwd_ms=%.4f clip_ms=%.4f optim_ms=%.4f core=%s threads=%d steps=%d "
           "tokens_per_step=%ld counted_steps=%ld cells_tape=%zu kernel=%s gemm=%s\n", c->name, tps, 1e3 * total / steps, 1e3 * median, 1e3 * best,
           rss, arena, m.used_after_forward, m.used_after_backward, min_act, first.total,
           bad, later.openblas, 1e3 * pt.forward / steps, 1e3 * pt.backward / steps,
           1e3 * pt.clip / steps, 1e3 * pt.optim / steps, bench_blas_core(),
           bench_blas_threads(), steps, tokens_per_step, counted_steps, m.used_by_cells,
           ur_rgemm_kernel(), ur_rgemm_gemm_path());
    free(times);
    bench_model_free(&m);
    if (bad > 0) {
        fprintf(stderr, "bench_train: FAIL: %ld allocations in %ld steps after the first 4 "
                "(expected 0)\n", bad, counted_steps);
        return 1;
    }
    return 0;
}
