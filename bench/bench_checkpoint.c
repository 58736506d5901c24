/* bench_checkpoint: memory-efficient BPTT against plain BPTT, side by side. An LSTM (hidden
 * 256, batch 32, input 64 by default) is unrolled over T = 100, 1000 and 10000 steps and
 * trained one step at a time (forward, zero grad, backward), plain and checkpointed
 * (interval ceil(sqrt(T)) unless --interval), alternating the two. Two losses:
 *   last   a single-output model, the loss reads the last h: sum(h_T * G); checkpointed with
 *          last_only, so H is not kept;
 *   every  the loss reads every step's h: sum(H * G), G a fixed T*B x hidden leaf; H and its
 *          gradient (2 T B hidden floats) are then kept by either method.
 * The input x is a leaf that takes a gradient, as an embedding's output or a lower layer's H
 * would (--no-input-grad: raw data; the backward then skips dx, and the forward that
 * checkpointing repeats is a larger share of the step).
 * Memory is the tape's peak (ur_tape_peak_bytes: the main tape's and the scratch tape's most
 * bytes in use, input x and G included), and the activations that peak less x and its
 * gradient, which both methods hold alike; time is the median step (wall clock, or with --cpu
 * the process's CPU time). Steps after the first four
 * must allocate nothing in libunroll (counted, as bench_train does; the scratch tape is reset,
 * not freed; a tape's tensor headers rotate through four pools, one per generation, so a
 * long plain recording still grows a pool in each of its first four steps). The gradients of the two methods are compared after the last step: the largest
 * |difference| over a parameter against its largest |gradient|, and the relative Frobenius
 * norm of the difference. Then the tape bytes of every built-in cell's plain unroll against
 * the BPTT minimum (T = 64).
 *
 *   bench/bench_checkpoint [--T "100 1000 10000"] [--steps N] [--interval K] [--quick] [--cpu]
 *
 * Shapes: T steps, B batch, I input width, Hd hidden. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/alloc_count.h"
#include "bench/bench_common.h"
#include "examples/common.h"

typedef struct run {
    ur_tape *tp;
    double *ms;       /* per timed step */
    long allocs;      /* libunroll's allocations in the steps after the first (-1: not counted) */
    size_t peak;      /* ur_tape_peak_bytes after the steps */
    size_t arena;     /* ur_tape_arena_bytes after the steps */
    int nodes;
} run;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double mib(size_t bytes) { return (double)bytes / 1048576.0; }

/* --cpu: steps are timed by the process's CPU time (all its threads), which a loaded machine
 * disturbs far less than the wall clock; with OPENBLAS_NUM_THREADS=1 it is the step's own. */
static int use_cpu_time;

static double now(void)
{
    if (!use_cpu_time) return bench_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One step: record the unroll and the loss, zero the gradients, backward. ms, or -1. */
static double step(run *r, ur_params *ps, const ur_cell *cell, const float *x, const float *g,
                   int T, int B, int interval, int every, int input_grad)
{
    double t0 = now();
    ur_tape *tp = r->tp;
    ur_tape_reset(tp);
    ur_tensor *xs = ur_input_from(tp, T * B, cell->in_dim, x);
    if (input_grad) ur_requires_grad(xs);
    ur_checkpoint ck = {interval, !every};
    ur_seq seq;
    if (ur_unroll_checkpointed(tp, cell, xs, T, (ur_state){0}, 0, &ck, &seq) != 0) {
        fprintf(stderr, "bench_checkpoint: %s\n", ur_tape_error(tp));
        return -1;
    }
    ur_tensor *loss;
    if (every) {
        loss = ur_sum(tp, ur_mul(tp, seq.H, ur_input_from(tp, T * B, cell->hidden, g)));
    } else {
        loss = ur_sum(tp, ur_mul(tp, seq.last.h, ur_input_from(tp, B, cell->hidden, g)));
    }
    ur_params_zero_grad(ps);
    if (ur_backward(tp, loss) != 0) {
        fprintf(stderr, "bench_checkpoint: %s\n", ur_tape_error(tp));
        return -1;
    }
    double ms = (now() - t0) * 1e3;
    r->nodes = ur_tape_node_count(tp);
    return ms;
}

/* The gradients now against saved ones: over the parameters, the worst max|difference| /
 * max|saved gradient| (*inf) and the worst ||difference|| / ||saved gradient|| (*fro). */
static void rel_diff(ur_params *ps, float *const *saved, double *inf, double *fro)
{
    *inf = *fro = 0.0;
    for (int p = 0; p < ur_params_count(ps); p++) {
        const ur_tensor *t = ur_params_at(ps, p);
        double d = 0.0, s = 0.0, d2 = 0.0, s2 = 0.0;
        for (size_t k = 0; k < ur_numel(t); k++) {
            double e = fabs((double)t->grad[k] - saved[p][k]), v = fabs((double)saved[p][k]);
            if (e > d) d = e;
            if (v > s) s = v;
            d2 += e * e;
            s2 += v * v;
        }
        if (s > 0 && d / s > *inf) *inf = d / s;
        if (s2 > 0 && sqrt(d2 / s2) > *fro) *fro = sqrt(d2 / s2);
    }
}

/* Floats per time step and row that BPTT must keep for a cell's backward (besides its input):
 * Elman h; LSTM i, f, g, o, c and h; GRU r, z, n, h Wn + bn (the reset gate's other factor)
 * and h; GRU-Cho r, z, n, r * h and h. */
static int min_floats(const char *kind)
{
    if (strcmp(kind, "lstm") == 0) return 6;
    if (strncmp(kind, "gru", 3) == 0) return 5;
    return 1;
}

static int cell_ratios(int I, int Hd, int B, ur_rng *rng)
{
    const int T = 64;
    ur_params *ps = ur_params_new();
    ur_cell cells[4];
    ur_cell_opts cho = {.gru_reset_before = 1};
    if (!ps || ur_elman_cell(&cells[0], ps, "e", I, Hd, rng) != 0 ||
        ur_lstm_cell(&cells[1], ps, "l", I, Hd, rng) != 0 ||
        ur_gru_cell(&cells[2], ps, "g", I, Hd, rng) != 0 ||
        ur_gru_cell_ex(&cells[3], ps, "c", I, Hd, &cho, rng) != 0) {
        fprintf(stderr, "bench_checkpoint: %s\n", ur_model_error() ? ur_model_error() : "no memory");
        ur_params_free(ps);
        return -1;
    }
    float *x = malloc((size_t)T * B * I * sizeof *x);
    ur_tape *tp = ur_tape_new(0);
    if (!x || !tp) {
        fprintf(stderr, "bench_checkpoint: out of memory\n");
        free(x);
        ur_tape_free(tp);
        ur_params_free(ps);
        return -1;
    }
    for (size_t k = 0; k < (size_t)T * B * I; k++) x[k] = 2.0f * ur_rng_uniform(rng) - 1.0f;
    printf("\nEach built-in cell's plain unroll: tape bytes after forward (the input x included) "
           "against the BPTT minimum\n(x and, per step and row, what the backward must read: "
           "Elman h; LSTM i f g o c h; GRU r z n hn h; GRU-Cho r z n rh h), T=%d B=%d I=%d H=%d;\n"
           "target: a ratio of at most 1.5:\n\n"
           "| cell | tape after forward MiB | BPTT minimum MiB | ratio | nodes |\n"
           "|---|---:|---:|---:|---:|\n", T, B, I, Hd);
    int over = 0;
    for (int c = 0; c < 4; c++) {
        ur_tape_reset(tp);
        ur_seq seq;
        ur_tensor *xs = ur_input_from(tp, T * B, I, x);
        if (ur_unroll(tp, &cells[c], xs, T, (ur_state){0}, 0, &seq) != 0) {
            fprintf(stderr, "bench_checkpoint: %s\n", ur_tape_error(tp));
            break;
        }
        size_t used = ur_tape_used_bytes(tp);
        size_t min = (size_t)T * B * ((size_t)I + (size_t)min_floats(cells[c].kind) * Hd) * sizeof(float);
        printf("| %s | %.2f | %.2f | %.2f | %d |\n", cells[c].kind, mib(used), mib(min),
               (double)used / (double)min, ur_tape_node_count(tp));
        printf("RATIO cell=%s tape=%zu min=%zu ratio=%.3f\n", cells[c].kind, used, min,
               (double)used / (double)min);
        if ((double)used > 1.5 * (double)min) over++;
    }
    printf("\n%s\n", over ? "some cell's tape is over the 1.5 target"
                          : "every cell's tape is within the 1.5 target");
    free(x);
    ur_tape_free(tp);
    ur_params_free(ps);
    return 0;
}

int main(int argc, char **argv)
{
    int B = 32, I = 64, Hd = 256, steps = 0, interval = UR_CHECKPOINT_AUTO, quick = 0;
    int no_input_grad = 0;
    const char *Ts = "100 1000 10000", *losses = "last every";
    const ex_opt opts[] = {
        {"T", EX_STRING, &Ts, 0, 0, "sequence lengths, space-separated"},
        {"batch", EX_INT, &B, 1, 4096, "sequences per batch"},
        {"in", EX_INT, &I, 1, 4096, "input width"},
        {"hidden", EX_INT, &Hd, 1, 4096, "LSTM hidden width"},
        {"steps", EX_INT, &steps, 0, 10000, "timed steps per method (0: 2e4 / T, 4 to 20)"},
        {"interval", EX_INT, &interval, -1, 1e6, "checkpoint interval k (-1: ceil(sqrt(T)))"},
        {"loss", EX_STRING, &losses, 0, 0, "which losses: last, every or both"},
        {"no-input-grad", EX_FLAG, &no_input_grad, 0, 0, "the input takes no gradient"},
        {"quick", EX_FLAG, &quick, 0, 0, "fewer steps"},
        {"cpu", EX_FLAG, &use_cpu_time, 0, 0,
         "time steps by the process's CPU time instead of the wall clock"},
    };
    int rc = ex_parse(argc, argv, 1, "bench_checkpoint",
                      "Peak tape memory and time per training step of an LSTM, plain BPTT against "
                      "checkpointed BPTT,\nfor several sequence lengths; then each built-in "
                      "cell's tape against the BPTT minimum.",
                      opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (interval == 0) {
        fprintf(stderr, "bench_checkpoint: --interval 0 is plain BPTT; give k > 0 or -1\n");
        return 2;
    }
    ur_rng rng;
    ur_rng_seed(&rng, 1);
    ur_params *ps = ur_params_new();
    ur_cell cell;
    if (!ps || ur_lstm_cell(&cell, ps, "lstm", I, Hd, &rng) != 0) {
        fprintf(stderr, "bench_checkpoint: %s\n", ur_model_error() ? ur_model_error() : "no memory");
        return 1;
    }
    float *saved[UR_CELL_MAX_PARAMS];
    for (int p = 0; p < ur_params_count(ps); p++)
        saved[p] = malloc(ur_numel(ur_params_at(ps, p)) * sizeof(float));

    printf("LSTM hidden %d, batch %d, input %d (%s); core=%s threads=%d\n", Hd, B, I,
           no_input_grad ? "no gradient" : "takes a gradient", bench_blas_core(),
           bench_blas_threads());
    printf("peak: the tape's most bytes in use during the step (main + scratch tape, the input "
           "included); time: median step (forward + backward), %s, the two methods "
           "alternating\n\n", use_cpu_time ? "CPU time" : "wall clock");
    printf("activations: the peak less the input x and its gradient (%s), which both methods "
           "hold alike\n\n", no_input_grad ? "none here" : "T*B*I floats each");
    printf("| loss | T | k | plain peak MiB | checkpointed peak MiB | memory ratio "
           "| activation ratio | plain ms | checkpointed ms | time ratio "
           "| grad difference (max / Frobenius, relative) | allocations after step 4 |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    int fail = 0;
    for (int every = 0; every < 2 && !fail; every++) {
        if (!strstr(losses, every ? "every" : "last") && !strstr(losses, "both")) continue;
        const char *p = Ts;
        int T;
        int used_chars;
        while (!fail && sscanf(p, "%d%n", &T, &used_chars) == 1) {
            p += used_chars;
            if (T < 1) continue;
            int n = steps > 0 ? steps : 20000 / T;
            if (steps <= 0 && n < 4) n = 4;
            if (n > 20) n = 20;
            if (quick) n = n / 4 > 2 ? n / 4 : 2;
            int k = ur_checkpoint_interval(T, interval);
            size_t nx = (size_t)T * B * I, ng = every ? (size_t)T * B * Hd : (size_t)B * Hd;
            float *x = malloc(nx * sizeof *x), *g = malloc(ng * sizeof *g);
            run r[2] = {{ur_tape_new(0), malloc((size_t)n * sizeof(double)), 0, 0, 0, 0},
                        {ur_tape_new(0), malloc((size_t)n * sizeof(double)), 0, 0, 0, 0}};
            if (!x || !g || !r[0].tp || !r[1].tp || !r[0].ms || !r[1].ms) {
                fprintf(stderr, "bench_checkpoint: out of memory at T = %d\n", T);
                fail = 1;
            }
            for (size_t j = 0; !fail && j < nx; j++) x[j] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
            for (size_t j = 0; !fail && j < ng; j++) g[j] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
            /* One untimed step each (the arenas grow to their size), then alternate. */
            for (int s = -1; s < n && !fail; s++)
                for (int m = 0; m < 2 && !fail; m++) {
                    bench_alloc_counts a;
                    bench_alloc_start();
                    double ms = step(&r[m], ps, &cell, x, g, T, B, m ? interval : 0, every,
                                     !no_input_grad);
                    bench_alloc_stop(&a);
                    if (s >= 3) r[m].allocs += a.total - a.openblas; /* after four steps */
                    if (ms < 0) fail = 1;
                    else if (s >= 0) r[m].ms[s] = ms;
                    if (m == 0 && s == n - 1)
                        for (int q = 0; q < ur_params_count(ps); q++)
                            memcpy(saved[q], ur_params_at(ps, q)->grad,
                                   ur_numel(ur_params_at(ps, q)) * sizeof(float));
                }
            if (!fail) {
                double inf, fro;
                rel_diff(ps, saved, &inf, &fro);
                for (int m = 0; m < 2; m++) {
                    r[m].peak = ur_tape_peak_bytes(r[m].tp);
                    r[m].arena = ur_tape_arena_bytes(r[m].tp);
                    if (!bench_alloc_available() || n < 4) r[m].allocs = -1; /* not counted */
                }
                double t0 = median(r[0].ms, n), t1 = median(r[1].ms, n);
                const size_t input = nx * sizeof(float) * (no_input_grad ? 1 : 2);
                const double act = (double)(r[1].peak - input) / (double)(r[0].peak - input);
                printf("| %s | %d | %d | %.1f | %.1f | %.3f | %.3f | %.1f | %.1f | %.3f "
                       "| %.1e / %.1e | %ld |\n", every ? "every h" : "last h", T, k,
                       mib(r[0].peak), mib(r[1].peak), (double)r[1].peak / (double)r[0].peak, act,
                       t0, t1, t1 / t0, inf, fro, r[1].allocs);
                printf("RESULT loss=%s T=%d k=%d steps=%d plain_peak=%zu ckpt_peak=%zu "
                       "plain_arena=%zu ckpt_arena=%zu mem_ratio=%.4f act_ratio=%.4f plain_ms=%.3f "
                       "ckpt_ms=%.3f "
                       "time_ratio=%.4f grad_diff_max=%.3g grad_diff_fro=%.3g allocs_plain=%ld "
                       "allocs_ckpt=%ld\n", every ? "every" : "last", T, k, n, r[0].peak,
                       r[1].peak, r[0].arena, r[1].arena, (double)r[1].peak / (double)r[0].peak,
                       act, t0, t1, t1 / t0, inf, fro, r[0].allocs, r[1].allocs);
                fflush(stdout);
                if (r[0].allocs > 0 || r[1].allocs > 0) {
                    fprintf(stderr, "bench_checkpoint: FAIL: libunroll allocated in steps after "
                            "the first (plain %ld, checkpointed %ld)\n", r[0].allocs, r[1].allocs);
                    fail = 1;
                }
            }
            for (int m = 0; m < 2; m++) {
                ur_tape_free(r[m].tp);
                free(r[m].ms);
            }
            free(x);
            free(g);
        }
    }
    if (!fail && cell_ratios(I, Hd, B, &rng) != 0) fail = 1;
    for (int p = 0; p < ur_params_count(ps); p++) free(saved[p]);
    ur_params_free(ps);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "bench_checkpoint: cannot write the results\n");
        return 1;
    }
    return fail;
}
