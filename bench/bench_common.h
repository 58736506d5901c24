/* Shared parts of the benchmarks: the configurations, the character model and its training
 * and sampling steps, timing and memory figures.
 *
 * Shapes: V = vocabulary (96), E = embedding (64; 0 for a one-hot input), H = hidden,
 * L = layers, B = batch, T = truncated BPTT length. One training step records
 *     x (T*B x E) = embedding(ids)   or a one-hot ur_input (T*B x V)
 *     H (T*B x H) = unroll of the cell over T steps (stacked when L = 2)
 *     logits (T*B x V) = H Wy + by,  loss = mean softmax-NLL
 * then backward, global-norm clipping (5) and the optimizer (Adam 1e-3, Adagrad 0.1 for
 * minchar). The last state is carried to the next step, detached. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>

#include "graph/ur_graph.h"
#include "graph/ur_train.h"
#include "models/ur_models.h"

#define BENCH_MAX_LAYERS 2
#define BENCH_CLIP 5.0

typedef struct bench_config {
    const char *name;
    const char *cell;   /* "lstm", "elman" or "gru" */
    int vocab, embed;   /* embed 0: one-hot input of width vocab */
    int hidden, layers, batch, T;
    int adagrad;        /* 1: Adagrad lr 0.1, else Adam lr 1e-3 */
    int sample;         /* 1: generation, one token at a time, forward only */
    int steps;          /* default number of timed steps */
} bench_config;

/* The configuration called name, or NULL. */
const bench_config *bench_config_find(const char *name);
/* Prints the configuration names, space-separated. */
const char *bench_config_names(void);
/* Width of the cell's input (embed, or vocab for one-hot). */
int bench_in_dim(const bench_config *c);

/* One shape of a matrix product x (m x k) times W (k x n), done count times per step. */
typedef struct bench_gemm_shape {
    const char *what;
    int m, k, n;
    int count;
} bench_gemm_shape;
/* Fills up to max shapes of a training step's products (input projection per layer,
 * recurrent per layer, head); returns how many. Each costs 2 m k n FLOPs forward and twice
 * that backward (dx and dW). */
int bench_gemm_shapes(const bench_config *c, bench_gemm_shape *out, int max);
/* GEMM FLOPs of forward + backward per token: sum of 3 * 2 m k n count over the shapes,
 * divided by T*B. */
double bench_flops_per_token(const bench_config *c);

/* Time spent in each part of the training steps (seconds, summed). */
typedef struct bench_phase_times {
    double forward, backward, sync, clip, optim;   /* sync: the after_backward hook */
} bench_phase_times;

/* The model, its optimizer, its tape, the carried state and the random tokens. */
typedef struct bench_model {
    const bench_config *cfg;
    ur_params *ps;
    ur_tensor *E, *Wy, *by;
    ur_cell cells[BENCH_MAX_LAYERS];
    ur_stack stack;
    ur_optim *opt;
    ur_tape *tp;
    ur_rng rng;
    float *h[BENCH_MAX_LAYERS], *c[BENCH_MAX_LAYERS]; /* carried state, B x H each */
    int n_batches;              /* pre-made random batches, cycled through */
    int *ids, *targets;         /* n_batches x (T*B), time-major: [t*B + b] */
    int token;                  /* sampling: the last token drawn */
    size_t used_after_forward;  /* ur_tape_used_bytes at the end of the last forward */
    size_t used_after_backward; /* and after its backward */
    size_t used_by_cells;       /* what the unroll added to the tape, plus the input x */
    double loss;                /* the last step's loss */
    /* Called between backward and clipping when set (bench_dist: the gradient all-reduce);
     * 0, or -1 with a message in err. */
    int (*after_backward)(struct bench_model *m, void *ctx, char *err, size_t errlen);
    void *after_backward_ctx;
} bench_model;

/* Builds the model for c with seed; 0, or -1 with a message in err. */
int bench_model_init(bench_model *m, const bench_config *c, unsigned long seed, char *err,
                     size_t errlen);
/* Frees everything the model owns. */
void bench_model_free(bench_model *m);
/* One training step on batch k (mod n_batches); adds the phase times to pt when not NULL.
 * 0, or -1 with a message in err. */
int bench_train_step(bench_model *m, long k, bench_phase_times *pt, char *err, size_t errlen);
/* One generation step: feeds the last token, draws the next. 0, or -1 with a message. */
int bench_sample_step(bench_model *m, char *err, size_t errlen);

/* Bytes BPTT must keep for one step's forward at minimum: per time step and sequence the
 * cell's input, and for LSTM its four gate activations, c and h (GRU: r, z, n, h Whn + bhn
 * and h; Elman: h). */
size_t bench_min_activation_bytes(const bench_config *c);

/* Seconds from a monotonic clock. */
double bench_now(void);
/* n floats (at least one) uniform in [-0.01, 0.01) from rng, or NULL when out of memory. */
float *bench_filled(size_t n, ur_rng *rng);
/* CPU seconds used by the process, all threads (steadier than bench_now on a busy machine;
 * with OpenBLAS threads it counts their spinning too). */
double bench_cpu_now(void);
/* Peak resident set size of the process (getrusage ru_maxrss), in KiB. */
long bench_maxrss_kb(void);
/* The OpenBLAS kernel name, and the threads libunroll's products run on (ur_threads(): OpenBLAS
 * itself then runs on one). */
const char *bench_blas_core(void);
int bench_blas_threads(void);

#endif
