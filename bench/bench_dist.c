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
 * The projection (weak scaling: every rank keeps its batch, the global batch grows with the
 * ranks) models a bandwidth-optimal all-reduce (ring, or reduce-scatter + all-gather) of n
 * bytes over P ranks as
 *     t(P) = 2 (P - 1) alpha + 2 (P - 1) / P * n * beta,
 * which for P = 2 is 2 alpha + n beta: alpha and beta come from the sweep on this machine's
 * ranks (beta from the slope between 1 and 16 MiB, alpha from 4 KiB). It assumes every link
 * between ranks moves bytes at that measured cost (--link-gbps and --link-us replace it by a
 * network's), that each rank computes as fast as here, no overlap, and no straggler. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "dist/ur_dist.h"
#include "examples/common.h"

typedef struct sync_ctx {
    ur_dist *d;
    double weight;   /* this rank's share of the global batch */
} sync_ctx;

static int average(bench_model *m, void *ctx, char *err, size_t errlen)
{
    sync_ctx *s = ctx;
    return ur_dist_average_grads(s->d, m->ps, s->weight, NULL, 0, err, errlen);
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

/* Seconds per MPI_Allreduce of bytes bytes (floats, in place) on MPI_COMM_WORLD: the median
 * of 5 timings of reps calls each, every timing after a barrier. */
static double allreduce_cost(float *buf, size_t bytes)
{
    int n = (int)(bytes / sizeof(float));
    int reps = bytes <= 65536 ? 200 : bytes <= (1u << 20) ? 20 : 4;
    double t[5];
    for (int k = 0; k < 5; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int r = 0; r < reps; r++)
            MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[k] = (MPI_Wtime() - t0) / reps;
    }
    double v = median(t, 5);
    MPI_Bcast(&v, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);   /* rank 0's figure for everyone */
    return v;
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
         "project with a network of this many Gbit/s instead of the measured cost per byte"},
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
    sync_ctx sc = {d, (double)nb / (double)B};
    m.after_backward = average;
    m.after_backward_ctx = &sc;

    double *times = malloc((size_t)steps * sizeof *times);
    if (!times) ur_dist_abort(d, 1, "bench_dist: out of memory");
    bench_phase_times pt = {0};
    ur_dist_stats s0 = {0};
    for (long k = 0; k < 1 + warmup + steps; k++) {
        long timed = k - 1 - warmup;
        if (timed == 0) {
            MPI_Barrier(MPI_COMM_WORLD);
            s0 = ur_dist_get_stats(d);
        }
        double t0 = bench_now();
        if (bench_train_step(&m, k, timed >= 0 ? &pt : NULL, err, sizeof err) != 0)
            ur_dist_abort(d, 1, "bench_dist: step %ld: %s", k, err);
        if (timed >= 0) times[timed] = bench_now() - t0;
    }
    ur_dist_stats s1 = ur_dist_get_stats(d);
    if (ur_dist_check_params(d, m.ps, 1, 1, err, sizeof err) != 0) ur_dist_abort(d, 1, "%s", err);

    /* Per step, averaged over the timed steps; the largest over the ranks. */
    double mine[6] = {pt.forward / steps, pt.backward / steps, pt.sync / steps,
                      (s1.allreduce_s - s0.allreduce_s) / steps, pt.clip / steps,
                      pt.optim / steps}, worst[6];
    MPI_Allreduce(mine, worst, 6, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
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

    double alpha = 0, beta = 0, t_model = 0;
    if (sweep && P > 1) {
        float *buf = calloc((size_t)1 << 22, sizeof *buf);   /* 16 MiB */
        if (!buf) ur_dist_abort(d, 1, "bench_dist: out of memory");
        printf("  MPI_Allreduce alone (after a barrier), %d ranks:", P);
        double t_small = 0, t_1m = 0, t_16m = 0;
        for (size_t b = 4096; b <= ((size_t)1 << 24); b *= 4) {
            double t = allreduce_cost(buf, b);
            if (b == 4096) t_small = t;
            if (b == ((size_t)1 << 20)) t_1m = t;
            if (b == ((size_t)1 << 24)) t_16m = t;
            printf(" %zu KiB %.1f us;", b / 1024, 1e6 * t);
        }
        t_model = allreduce_cost(buf, (size_t)bytes < ((size_t)1 << 24) ? (size_t)bytes
                                                                        : (size_t)1 << 24);
        printf(" the model's %.2f MiB %.3f ms\n", bytes / 1048576.0, 1e3 * t_model);
        free(buf);
        /* For P ranks, t = 2 (P - 1) alpha + 2 (P - 1) / P n beta. */
        beta = (t_16m - t_1m) / (double)(((size_t)1 << 24) - ((size_t)1 << 20)) /
               (2.0 * (P - 1) / P);
        alpha = t_small / (2.0 * (P - 1));
        printf("  fit: alpha %.1f us per message, beta %.3f ns per byte (%.2f GB/s); in the "
               "step the all-reduce took %.3f ms, %.3f ms more than alone: waiting for the "
               "slower rank\n", 1e6 * alpha, 1e9 * beta, 1e-9 / beta, 1e3 * worst[3],
               1e3 * (worst[3] - t_model));
    }
    double proj_tps[3] = {0}, proj_eff[3] = {0};
    static const int proj_ranks[3] = {2, 8, 64};
    if (alpha > 0 || beta > 0 || link_gbps > 0) {
        const char *how = "the cost per byte and per message measured above";
        if (link_gbps > 0) {
            beta = 8.0 / (link_gbps * 1e9);
            alpha = 1e-6 * link_us;
            how = "the given network";
        }
        /* Per-rank work: the step less its MPI_Allreduce (transfer and waiting; the packing
         * stays), to which the model's all-reduce time for Q ranks is added. */
        double compute = med - mine[3];
        printf("  projection (weak scaling: %ld sequences per rank; %s):", nb, how);
        for (int k = 0; k < 3; k++) {
            int Q = proj_ranks[k];
            double step = compute + ring_time(Q, bytes, alpha, beta);
            proj_tps[k] = (double)Q * nb * cfg.T / step;
            proj_eff[k] = (med - mine[2]) / step;
            printf(" %d ranks %.0f tokens/s (efficiency %.1f%%, all-reduce %.2f ms);", Q,
                   proj_tps[k], 100 * proj_eff[k], 1e3 * ring_time(Q, bytes, alpha, beta));
        }
        printf("\n");
    }
    printf("RESULT impl=dist config=%s ranks=%d batch_per_rank=%ld global_batch=%ld threads=%d "
           "tokens_per_s=%.2f best_tokens_per_s=%.2f median_ms=%.4f best_ms=%.4f mean_ms=%.4f fwd_ms=%.4f bwd_ms=%.4f sync_ms=%.4f "
           "allreduce_ms=%.4f clip_ms=%.4f optim_ms=%.4f share=%.5f bytes=%.0f alpha_us=%.3f "
           "beta_ns=%.5f alone_ms=%.4f p2_tps=%.1f p8_tps=%.1f p64_tps=%.1f p2_eff=%.4f "
           "p8_eff=%.4f p64_eff=%.4f steps=%d core=%s\n", c->name, P, nb, B,
           bench_blas_threads(), tps, (double)tokens_per_step / best, 1e3 * med, 1e3 * best,
           1e3 * total / steps, 1e3 * worst[0],
           1e3 * worst[1], 1e3 * worst[2], 1e3 * worst[3], 1e3 * worst[4], 1e3 * worst[5],
           share, bytes, 1e6 * alpha, 1e9 * beta, 1e3 * t_model, proj_tps[0], proj_tps[1],
           proj_tps[2], proj_eff[0], proj_eff[1], proj_eff[2], steps, bench_blas_core());
    free(times);
    bench_model_free(&m);
    ur_dist_free(d);
    return 0;
}
