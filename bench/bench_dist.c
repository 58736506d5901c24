/* bench_dist: data-parallel training steps under mpirun (dist/ur_dist.h). Prints the job's
 * tokens/s, the share of a step spent averaging gradients (packing, and MPI_Allreduce over
 * the one flat buffer), the all-reduce's own cost by message size (after a barrier, so
 * without waiting for a slower rank), and from that cost a projection to 8 and 64 ranks.
 *
 *     mpirun -np 2 bench/bench_dist --config lstm-256              # 32 per rank: 64 in all
 *     mpirun -np 2 bench/bench_dist --config lstm-256 --global-batch 32   # 16 per rank
 *
 * Each rank builds the model from the same seed (then rank 0's values are broadcast) and
 * trains on its own random tokens; OPENBLAS_NUM_THREADS sets each rank's BLAS threads. One
 * 'RESULT key=value ...' line for bench/run-dist. Model and step: bench_common.h.
 *
 * On a shared machine other processes stretch both the steps and the all-reduce (a rank that
 * is descheduled makes the other wait). So besides the wall-clock figures it prints an
 * estimate for an idle machine: each rank's CPU time per step outside the all-reduce (with
 * one BLAS thread, the time it computes), plus the all-reduce alone (the smaller of its
 * fastest timing and the fit below at its size).
 *
 * The projection (weak scaling: every rank keeps its batch, the global batch grows with the
 * ranks) models a bandwidth-optimal all-reduce (ring, or reduce-scatter + all-gather) of n
 * bytes over P ranks as
 *     t(P) = 2 (P - 1) alpha + 2 (P - 1) / P * n * beta,
 * which for P = 2 is 2 alpha + n beta: alpha and beta come from the sweep on this machine's
 * ranks (fastest timings; alpha from 4 KiB, beta the lowest cost per byte from 256 KiB up). It
 * assumes every link between ranks moves bytes at that measured cost, which between two
 * processes of one machine is shared memory's: far faster than a network. So it also projects
 * for 10 Gbit/s Ethernet (alpha 30 us, 1.25 GB/s) and 100 Gbit/s InfiniBand (2 us, 12.5 GB/s),
 * and for --link-gbps / --link-us when given. Each rank computes as in the idle estimate; no
 * overlap of the all-reduce with backward; no straggler. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_common.h"
#include "dist/ur_dist.h"
#include "examples/common.h"

/* CPU seconds of this process (every thread: with one BLAS thread, the one that computes). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct sync_ctx {
    ur_dist *d;
    double weight;   /* this rank's share of the global batch */
    double cpu;      /* CPU seconds spent in the all-reduce hook (spinning included) */
} sync_ctx;

static int average(bench_model *m, void *ctx, char *err, size_t errlen)
{
    sync_ctx *s = ctx;
    double c0 = cpu_now();
    int rc = ur_dist_average_grads(s->d, m->ps, s->weight, NULL, 0, err, errlen);
    s->cpu += cpu_now() - c0;
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Seconds per MPI_Allreduce of bytes bytes (floats, in place) on MPI_COMM_WORLD, from
 * `timings` (at most 32) timings of reps calls each, every one after a barrier: the median
 * in *med, the fastest returned (rank 0's figures for every rank). */
static double allreduce_cost(float *buf, size_t bytes, int timings, double *med)
{
    int n = (int)(bytes / sizeof(float));
    int reps = bytes <= 65536 ? 100 : bytes <= (1u << 20) ? 10 : 3;
    double t[32];
    for (int k = 0; k < timings; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int r = 0; r < reps; r++)
            MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[k] = (MPI_Wtime() - t0) / reps;
    }
    double v[2] = {median(t, timings), t[0]};   /* median sorts t */
    MPI_Bcast(v, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    *med = v[0];
    return v[1];
}

/* The model of t(P) in the header. */
static double ring_time(int P, double bytes, double alpha, double beta)
{
    return P < 2 ? 0.0 : 2.0 * (P - 1) * alpha + 2.0 * (P - 1) / P * bytes * beta;
}

int main(int argc, char **argv)
{
    char err[512];
    ur_dist *d = ur_dist_init(&argc, &argv, err, sizeof err);
    if (!d) ur_dist_abort(NULL, 1, "bench_dist: %s", err);
    int rank = ur_dist_rank(d), P = ur_dist_size(d), root = rank == 0;
    if (!root && !freopen("/dev/null", "w", stdout)) ur_dist_abort(d, 1, "bench_dist: stdout");

    const char *config = "lstm-256";
    int steps = 0, warmup = -1, seed = 1, per_rank = 0, global = 0, sweep = 1;
    float link_gbps = 0, link_us = 0;
    const ex_opt opts[] = {
        {"config", EX_STRING, &config, 0, 0, "lstm-256, lstm-512x2 or elman-128"},
        {"steps", EX_INT, &steps, 0, 1e8, "timed steps (0: the configuration's default)"},
        {"warmup", EX_INT, &warmup, -1, 1e6, "untimed steps after the first (-1: steps / 10)"},
        {"batch-per-rank", EX_INT, &per_rank, 0, 4096,
         "sequences per rank (0: the configuration's batch); the global batch is P times it"},
        {"global-batch", EX_INT, &global, 0, 65536,
         "split this global batch over the ranks instead (0: off)"},
        {"sweep", EX_INT, &sweep, 0, 1, "1: time MPI_Allreduce alone by size, and project"},
        {"link-gbps", EX_FLOAT, &link_gbps, 0, 1e5,
         "also project for a network of this many Gbit/s"},
        {"link-us", EX_FLOAT, &link_us, 0, 1e6, "and this latency per message (microseconds)"},
        {"seed", EX_INT, &seed, 0, 1e9, "random seed (initialisation; tokens differ by rank)"},
    };
    int rc = ex_parse(argc, argv, 1, "bench_dist",
                      "Times data-parallel training steps (run under mpirun); "
                      "OPENBLAS_NUM_THREADS sets each rank's BLAS threads.",
                      opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc != 0) {
        ur_dist_free(d);
        return rc > 0 ? 0 : 2;
    }
    const bench_config *c = bench_config_find(config);
    if (!c || c->sample) ur_dist_abort(d, 2, "bench_dist: '%s' is not a training configuration "
                                       "(one of: %s)", config, bench_config_names());
    if (steps <= 0) steps = c->steps;
    if (warmup < 0) warmup = steps / 10 > 2 ? steps / 10 : 2;
    long b0, nb, B;
    if (global > 0) {
        ur_dist_shard(global, rank, P, &b0, &nb);
        B = global;
    } else {
        nb = per_rank > 0 ? per_rank : c->batch;
        B = nb * P;
    }
    if (nb < 1) ur_dist_abort(d, 2, "bench_dist: --global-batch %d leaves rank %d nothing", global, rank);
    bench_config cfg = *c;   /* this rank's share of the batch */
    cfg.batch = (int)nb;

    bench_model m;
    if (bench_model_init(&m, &cfg, (unsigned long)seed, err, sizeof err) != 0)
        ur_dist_abort(d, 1, "bench_dist: %s", err);
    ur_rng tok;   /* each rank its own tokens */
    ur_rng_seed(&tok, ur_dist_rank_seed(d, (uint64_t)seed + 1000));
    for (long r = 0; r < (long)m.n_batches * cfg.T * cfg.batch; r++) {
        m.ids[r] = (int)ur_rng_below(&tok, (uint32_t)cfg.vocab);
        m.targets[r] = (int)ur_rng_below(&tok, (uint32_t)cfg.vocab);
    }
    if (ur_dist_broadcast_params(d, m.ps, err, sizeof err) != 0) ur_dist_abort(d, 1, "%s", err);
    sync_ctx sc = {d, (double)nb / (double)B, 0.0};
    m.after_backward = average;
    m.after_backward_ctx = &sc;

    double *times = malloc((size_t)steps * sizeof *times);
    if (!times) ur_dist_abort(d, 1, "bench_dist: out of memory");
    bench_phase_times pt = {0};
    ur_dist_stats s0 = {0};
    double cpu_steps = 0, cpu_sync0 = 0;
    for (long k = 0; k < 1 + warmup + steps; k++) {
        long timed = k - 1 - warmup;
        if (timed == 0) {
            MPI_Barrier(MPI_COMM_WORLD);
            s0 = ur_dist_get_stats(d);
            cpu_sync0 = sc.cpu;
        }
        double t0 = bench_now(), c0 = cpu_now();
        if (bench_train_step(&m, k, timed >= 0 ? &pt : NULL, err, sizeof err) != 0)
            ur_dist_abort(d, 1, "bench_dist: step %ld: %s", k, err);
        if (timed >= 0) {
            times[timed] = bench_now() - t0;
            cpu_steps += cpu_now() - c0;
        }
    }
    ur_dist_stats s1 = ur_dist_get_stats(d);
    /* Idle estimate of the per-rank work: CPU time outside the all-reduce hook, plus packing. */
    double work = (cpu_steps - (sc.cpu - cpu_sync0)) / steps + (s1.pack_s - s0.pack_s) / steps;
    if (ur_dist_check_params(d, m.ps, 1, 1, err, sizeof err) != 0) ur_dist_abort(d, 1, "%s", err);

    /* Per step, averaged over the timed steps; the largest over the ranks. */
    double mine[7] = {pt.forward / steps, pt.backward / steps, pt.sync / steps,
                      (s1.allreduce_s - s0.allreduce_s) / steps, pt.clip / steps,
                      pt.optim / steps, work}, worst[7];
    MPI_Allreduce(mine, worst, 7, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    work = worst[6];   /* the slowest rank sets the pace */
    double total = 0;
    for (int k = 0; k < steps; k++) total += times[k];
    double med = median(times, steps), best = times[0];   /* median sorts times */
    MPI_Bcast(&med, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(&best, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    double bytes = P > 1 ? (s1.bytes - s0.bytes) / (double)steps : 4.0 * ur_params_numel(m.ps);
    long tokens_per_step = (long)B * cfg.T;
    double tps = (double)tokens_per_step / med;
    double share = mine[2] * steps / total;   /* rank 0's: its steps are the job's steps */

    printf("libunroll data-parallel %s: %d rank(s) x %ld sequences (global batch %ld), %d BLAS "
           "thread(s) per rank (%s)\n", c->name, P, nb, B, bench_blas_threads(),
           bench_blas_core());
    printf("  %.0f tokens/s; median step %.2f ms (best %.2f: %.0f tokens/s) over %d steps "
           "after %d warm-up\n", tps, 1e3 * med, 1e3 * best, (double)tokens_per_step / best,
           steps, warmup);
    printf("  per step (slowest rank): forward %.2f ms, backward %.2f ms, gradient average %.3f "
           "ms (MPI_Allreduce %.3f ms, %.2f MiB), clip %.3f ms, optimizer %.3f ms\n",
           1e3 * worst[0], 1e3 * worst[1], 1e3 * worst[2], 1e3 * worst[3], bytes / 1048576.0,
           1e3 * worst[4], 1e3 * worst[5]);
    printf("  share of the step spent averaging gradients: %.2f%% (all of it is the most an "
           "all-reduce overlapped with backward could save)\n", 100 * share);

    /* The all-reduce alone, by size; fastest timings for the fit, medians shown beside. */
    double alpha = 0, beta = 0, t_model = 0, t_model_med = 0;
    if (sweep && P > 1) {
        float *buf = calloc((size_t)1 << 22, sizeof *buf);   /* 16 MiB */
        if (!buf) ur_dist_abort(d, 1, "bench_dist: out of memory");
        printf("  MPI_Allreduce alone (after a barrier; fastest / median of 9 timings, 32 for the model), %d ranks:", P);
        /* For P ranks, t = 2 (P - 1) alpha + 2 (P - 1) / P n beta: alpha from 4 KiB, beta the
         * lowest cost per byte seen from 256 KiB up (other load only ever adds time). */
        double med_t, t = allreduce_cost(buf, 4096, 9, &med_t);
        alpha = t / (2.0 * (P - 1));
        beta = INFINITY;
        printf(" 4 KiB %.0f / %.0f us;", 1e6 * t, 1e6 * med_t);
        size_t nbytes = (size_t)bytes < ((size_t)1 << 24) ? (size_t)bytes : (size_t)1 << 24;
        for (size_t b = (size_t)1 << 18; b <= ((size_t)1 << 24); b *= 4) {
            t = allreduce_cost(buf, b, 9, &med_t);
            double per_byte = (t - 2.0 * (P - 1) * alpha) / (2.0 * (P - 1) / P * (double)b);
            if (per_byte > 0 && per_byte < beta) beta = per_byte;
            printf(" %zu KiB %.0f / %.0f us;", b / 1024, 1e6 * t, 1e6 * med_t);
        }
        t_model = allreduce_cost(buf, nbytes, 32, &t_model_med);
        double per_byte = (t_model - 2.0 * (P - 1) * alpha) / (2.0 * (P - 1) / P * (double)nbytes);
        if (per_byte > 0 && per_byte < beta) beta = per_byte;
        if (!isfinite(beta)) beta = 0;
        printf(" the model's %.2f MiB %.3f / %.3f ms\n", bytes / 1048576.0, 1e3 * t_model,
               1e3 * t_model_med);
        free(buf);
        printf("  fit: alpha %.1f us per message, beta %.3f ns per byte (%.2f GB/s); in the "
               "steps the all-reduce took %.3f ms, the rest waiting for the slower rank\n",
               1e6 * alpha, 1e9 * beta, 1e-9 / beta, 1e3 * worst[3]);
    }
    /* Idle estimate: the slowest rank's CPU work, plus the all-reduce alone: the smaller of
     * its fastest timing and the fit at its size (other load only ever adds time). */
    double t_idle = P > 1 ? ring_time(P, bytes, alpha, beta) : 0;
    if (t_model > 0 && t_model < t_idle) t_idle = t_model;
    double idle_step = work + t_idle, idle_tps = 0, idle_share = 0;
    if (bench_blas_threads() == 1) {
        idle_tps = (double)tokens_per_step / idle_step;
        idle_share = idle_step > 0 ? t_idle / idle_step : 0;
        printf("  idle-machine estimate: %.2f ms of work per rank (CPU time) + %.3f ms "
               "all-reduce = %.2f ms a step: %.0f tokens/s, all-reduce %.2f%% of the step\n",
               1e3 * work, 1e3 * t_idle, 1e3 * idle_step, idle_tps, 100 * idle_share);
    }
    /* Projections: the link measured here, two common networks, and --link-gbps if given. */
    typedef struct link { const char *name; double alpha, beta; } link;
    link links[4] = {{"measured", alpha, beta},
                     {"10GbE", 30e-6, 8.0 / 10e9},      /* TCP over 10 Gbit/s Ethernet */
                     {"IB100", 2e-6, 8.0 / 100e9},      /* 100 Gbit/s InfiniBand (EDR) */
                     {"given", 1e-6 * link_us, link_gbps > 0 ? 8.0 / (link_gbps * 1e9) : 0}};
    int n_links = link_gbps > 0 ? 4 : 3;
    static const int proj_ranks[3] = {2, 8, 64};
    double proj_tps[4][3] = {{0}}, proj_eff[4][3] = {{0}};
    if (P > 1 && bench_blas_threads() == 1) {
        printf("  projection, weak scaling (%ld sequences per rank; each rank's work as in the "
               "idle estimate; a ring all-reduce of %.2f MiB):\n", nb, bytes / 1048576.0);
        for (int l = 0; l < n_links; l++) {
            printf("    %-8s (alpha %4.1f us, %6.2f GB/s):", links[l].name, 1e6 * links[l].alpha,
                   links[l].beta > 0 ? 1e-9 / links[l].beta : 0.0);
            for (int k = 0; k < 3; k++) {
                int Q = proj_ranks[k];
                double ar = ring_time(Q, bytes, links[l].alpha, links[l].beta), step = work + ar;
                proj_tps[l][k] = (double)Q * nb * cfg.T / step;
                proj_eff[l][k] = work / step;
                printf(" %d ranks %.0f tokens/s (%.1f%%, all-reduce %.2f ms);", Q,
                       proj_tps[l][k], 100 * proj_eff[l][k], 1e3 * ar);
            }
            printf("\n");
        }
    }
    char proj[1024] = "";
    for (int l = 0, len = 0; l < n_links && len < (int)sizeof proj; l++)
        len += snprintf(proj + len, sizeof proj - (size_t)len, " %s_p8_tps=%.1f %s_p64_tps=%.1f "
                        "%s_p8_eff=%.4f %s_p64_eff=%.4f", links[l].name, proj_tps[l][1],
                        links[l].name, proj_tps[l][2], links[l].name, proj_eff[l][1],
                        links[l].name, proj_eff[l][2]);
    printf("RESULT impl=dist config=%s ranks=%d batch_per_rank=%ld global_batch=%ld threads=%d "
           "tokens_per_s=%.2f best_tokens_per_s=%.2f median_ms=%.4f best_ms=%.4f mean_ms=%.4f "
           "fwd_ms=%.4f bwd_ms=%.4f sync_ms=%.4f allreduce_ms=%.4f clip_ms=%.4f optim_ms=%.4f "
           "share=%.5f bytes=%.0f alpha_us=%.3f beta_ns=%.5f alone_ms=%.4f alone_median_ms=%.4f "
           "idle_allreduce_ms=%.4f work_ms=%.4f idle_tokens_per_s=%.2f idle_share=%.5f%s steps=%d core=%s\n", c->name, P,
           nb, B, bench_blas_threads(), tps, (double)tokens_per_step / best, 1e3 * med,
           1e3 * best, 1e3 * total / steps, 1e3 * worst[0], 1e3 * worst[1], 1e3 * worst[2],
           1e3 * worst[3], 1e3 * worst[4], 1e3 * worst[5], share, bytes, 1e6 * alpha,
           1e9 * beta, 1e3 * t_model, 1e3 * t_model_med, 1e3 * t_idle, 1e3 * work, idle_tps, idle_share,
           proj, steps, bench_blas_core());
    free(times);
    bench_model_free(&m);
    ur_dist_free(d);
    return 0;
}
