/* Shared parts of the benchmarks: configurations, the character model, its steps, timing and
 * memory figures. Shape legend in bench_common.h. */
#define _POSIX_C_SOURCE 200809L
#include "bench/bench_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* OpenBLAS extensions (declared here so any cblas.h will do). */
char *openblas_get_corename(void);

static const bench_config configs[] = {
    /* name         cell     V   E   H    L  B   T   adagrad sample steps */
    {"lstm-256", "lstm", 96, 64, 256, 1, 32, 64, 0, 0, 30},
    {"lstm-512x2", "lstm", 96, 64, 512, 2, 32, 64, 0, 0, 8},
    {"elman-128", "elman", 96, 64, 128, 1, 32, 64, 0, 0, 60},
    {"minchar", "elman", 96, 0, 100, 1, 1, 25, 1, 0, 2000},
    {"sample", "lstm", 96, 64, 256, 1, 1, 1, 0, 1, 4000},
    {"gru-256", "gru", 96, 64, 256, 1, 32, 64, 0, 0, 30},
};
#define N_CONFIGS ((int)(sizeof configs / sizeof configs[0]))

const bench_config *bench_config_find(const char *name)
{
    for (int k = 0; name && k < N_CONFIGS; k++)
        if (strcmp(configs[k].name, name) == 0) return &configs[k];
    return NULL;
}

const char *bench_config_names(void) { return "lstm-256 lstm-512x2 elman-128 minchar sample gru-256"; }

int bench_in_dim(const bench_config *c) { return c->embed ? c->embed : c->vocab; }

static int gates(const bench_config *c)
{
    return strcmp(c->cell, "lstm") == 0 ? 4 : strcmp(c->cell, "gru") == 0 ? 3 : 1;
}

int bench_gemm_shapes(const bench_config *c, bench_gemm_shape *out, int max)
{
    int n = 0, TB = c->T * c->batch, G = gates(c);
    for (int l = 0; l < c->layers && n + 2 <= max; l++) {
        int in = l == 0 ? bench_in_dim(c) : c->hidden;
        out[n++] = (bench_gemm_shape){l == 0 ? "input projection, layer 0" :
                                      "input projection, layer 1", TB, in, G * c->hidden, 1};
        out[n++] = (bench_gemm_shape){l == 0 ? "recurrent, layer 0" : "recurrent, layer 1",
                                      c->batch, c->hidden, G * c->hidden, c->T};
    }
    if (n < max) out[n++] = (bench_gemm_shape){"head", TB, c->hidden, c->vocab, 1};
    return n;
}

double bench_flops_per_token(const bench_config *c)
{
    bench_gemm_shape s[2 * BENCH_MAX_LAYERS + 1];
    int n = bench_gemm_shapes(c, s, 2 * BENCH_MAX_LAYERS + 1);
    double f = 0.0;
    for (int k = 0; k < n; k++) f += 3.0 * 2.0 * s[k].m * (double)s[k].k * s[k].n * s[k].count;
    return f / ((double)c->T * c->batch);
}

size_t bench_min_activation_bytes(const bench_config *c)
{
    size_t per_row = 0;
    for (int l = 0; l < c->layers; l++) {
        int in = l == 0 ? bench_in_dim(c) : c->hidden;
        /* LSTM: i f g o, c, h; GRU: r z n, h Whn + bhn (for dr), h; Elman: h */
        per_row += (size_t)in + (gates(c) == 4 ? 6u : gates(c) == 3 ? 5u : 1u) * (size_t)c->hidden;
    }
    return per_row * (size_t)c->T * (size_t)c->batch * sizeof(float);
}

static int failf(char *err, size_t errlen, const char *what, const char *detail)
{
    if (err && errlen) snprintf(err, errlen, "%s: %s", what, detail ? detail : "failed");
    return -1;
}

int bench_model_init(bench_model *m, const bench_config *c, unsigned long seed, char *err,
                     size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->cfg = c;
    ur_rng_seed(&m->rng, seed);
    m->ps = ur_params_new();
    m->tp = ur_tape_new(0);
    if (!m->ps || !m->tp) return failf(err, errlen, "init", "out of memory");
    int in = bench_in_dim(c), H = c->hidden, lstm = gates(c) == 4;
    if (c->embed) {
        m->E = ur_model_param(m->ps, "embed", "E", c->vocab, c->embed, 1.0f, &m->rng);
        if (!m->E) return failf(err, errlen, "embedding", ur_params_error(m->ps));
    }
    for (int l = 0; l < c->layers; l++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "rnn.%d", l);
        int rc = lstm ? ur_lstm_cell(&m->cells[l], m->ps, prefix, l ? H : in, H, &m->rng)
                 : gates(c) == 3 ? ur_gru_cell(&m->cells[l], m->ps, prefix, l ? H : in, H, &m->rng)
                      : ur_elman_cell(&m->cells[l], m->ps, prefix, l ? H : in, H, &m->rng);
        if (rc != 0) return failf(err, errlen, "cell", ur_params_error(m->ps));
    }
    if (c->layers > 1 && ur_stack_init(&m->stack, c->layers, m->cells, 0.0f, NULL) != 0)
        return failf(err, errlen, "stack", ur_model_error());
    float k = 1.0f / sqrtf((float)H);
    m->Wy = ur_model_param(m->ps, "head", "W", H, c->vocab, k, &m->rng);
    m->by = ur_model_param(m->ps, "head", "b", 1, c->vocab, k, &m->rng);
    if (!m->Wy || !m->by) return failf(err, errlen, "head", ur_params_error(m->ps));

    ur_optim_config oc = ur_optim_defaults(c->adagrad ? UR_OPTIM_ADAGRAD : UR_OPTIM_ADAM);
    oc.lr = c->adagrad ? 0.1f : 1e-3f;
    char msg[256] = "";
    m->opt = ur_optim_new(m->ps, &oc, msg, sizeof msg);
    if (!m->opt) return failf(err, errlen, "optimizer", msg);

    for (int l = 0; l < c->layers; l++) {
        m->h[l] = calloc((size_t)c->batch * H, sizeof(float));
        m->c[l] = calloc((size_t)c->batch * H, sizeof(float));
        if (!m->h[l] || !m->c[l]) return failf(err, errlen, "state", "out of memory");
    }
    int TB = c->T * c->batch;
    m->n_batches = c->sample ? 1 : 8;
    m->ids = malloc((size_t)m->n_batches * TB * sizeof *m->ids);
    m->targets = malloc((size_t)m->n_batches * TB * sizeof *m->targets);
    if (!m->ids || !m->targets) return failf(err, errlen, "tokens", "out of memory");
    for (long r = 0; r < (long)m->n_batches * TB; r++) {
        m->ids[r] = (int)ur_rng_below(&m->rng, (uint32_t)c->vocab);
        m->targets[r] = (int)ur_rng_below(&m->rng, (uint32_t)c->vocab);
    }
    return 0;
}

void bench_model_free(bench_model *m)
{
    ur_optim_free(m->opt);
    ur_tape_free(m->tp);
    ur_params_free(m->ps);
    for (int l = 0; l < BENCH_MAX_LAYERS; l++) {
        free(m->h[l]);
        free(m->c[l]);
    }
    free(m->ids);
    free(m->targets);
    memset(m, 0, sizeof *m);
}

/* The carried state as detached leaves on the tape. */
static void load_state(bench_model *m, ur_state *init)
{
    const bench_config *c = m->cfg;
    for (int l = 0; l < c->layers; l++) {
        init[l].h = ur_input_from(m->tp, c->batch, c->hidden, m->h[l]);
        init[l].c = m->cells[l].has_c ? ur_input_from(m->tp, c->batch, c->hidden, m->c[l]) : NULL;
    }
}

/* Keeps the values of the last states for the next step. */
static void carry_state(bench_model *m, const ur_state *last)
{
    const bench_config *c = m->cfg;
    size_t bytes = (size_t)c->batch * c->hidden * sizeof(float);
    for (int l = 0; l < c->layers; l++) {
        memcpy(m->h[l], last[l].h->val, bytes);
        if (last[l].c) memcpy(m->c[l], last[l].c->val, bytes);
    }
}

/* Records the unroll of all layers over x; fills the top H and each layer's last state. */
static int unroll_layers(bench_model *m, ur_tensor *x, int T, ur_state *init, ur_tensor **H,
                         ur_state *last)
{
    if (m->cfg->layers == 1) {
        ur_seq seq;
        if (ur_unroll(m->tp, &m->cells[0], x, T, init[0], 0, &seq) != 0) return -1;
        *H = seq.H;
        last[0] = seq.last;
        return 0;
    }
    ur_stack_seq ss;
    if (ur_stack_unroll(m->tp, &m->stack, x, T, init, &ss) != 0) return -1;
    *H = ss.H;
    for (int l = 0; l < m->cfg->layers; l++) last[l] = ss.last[l];
    return 0;
}

int bench_train_step(bench_model *m, long k, bench_phase_times *pt, char *err, size_t errlen)
{
    const bench_config *c = m->cfg;
    ur_tape *tp = m->tp;
    int TB = c->T * c->batch;
    const int *ids = m->ids + (size_t)(k % m->n_batches) * TB;
    const int *targets = m->targets + (size_t)(k % m->n_batches) * TB;

    double t0 = bench_now();
    ur_tape_reset(tp);
    ur_tensor *x;
    if (c->embed) {
        x = ur_embedding(tp, m->E, ids, TB);
    } else {
        x = ur_input(tp, TB, c->vocab);
        if (!ur_tape_error(tp))
            for (int r = 0; r < TB; r++) x->val[(size_t)r * c->vocab + ids[r]] = 1.0f;
    }
    ur_state init[BENCH_MAX_LAYERS], last[BENCH_MAX_LAYERS];
    load_state(m, init);
    ur_tensor *H = NULL;
    size_t before = ur_tape_used_bytes(tp);
    if (unroll_layers(m, x, c->T, init, &H, last) != 0)
        return failf(err, errlen, "forward", ur_tape_error(tp));
    m->used_by_cells = ur_tape_used_bytes(tp) - before + ur_numel(x) * sizeof(float);
    ur_tensor *logits = ur_linear(tp, H, m->Wy, m->by);
    ur_tensor *loss = ur_softmax_nll(tp, logits, targets, UR_MEAN);
    if (ur_tape_error(tp)) return failf(err, errlen, "forward", ur_tape_error(tp));
    carry_state(m, last);
    m->loss = loss->val[0];
    m->used_after_forward = ur_tape_used_bytes(tp);

    double t1 = bench_now();
    ur_params_zero_grad(m->ps);
    if (ur_backward(tp, loss) != 0) return failf(err, errlen, "backward", ur_tape_error(tp));
    m->used_after_backward = ur_tape_used_bytes(tp);
    double t2 = bench_now();
    if (m->after_backward && m->after_backward(m, m->after_backward_ctx, err, errlen) != 0)
        return -1;
    double t2s = bench_now();
    ur_clip_grad_norm(m->ps, BENCH_CLIP);
    double t3 = bench_now();
    if (ur_optim_step(m->opt) != 0) return failf(err, errlen, "optimizer", "step failed");
    double t4 = bench_now();
    if (pt) {
        pt->forward += t1 - t0;
        pt->backward += t2 - t1;
        pt->sync += t2s - t2;
        pt->clip += t3 - t2s;
        pt->optim += t4 - t3;
    }
    return 0;
}

int bench_sample_step(bench_model *m, char *err, size_t errlen)
{
    const bench_config *c = m->cfg;
    ur_tape *tp = m->tp;
    ur_tape_reset(tp);
    ur_tensor *x = ur_embedding(tp, m->E, &m->token, 1);
    ur_state init[BENCH_MAX_LAYERS], last[BENCH_MAX_LAYERS];
    load_state(m, init);
    ur_tensor *H = NULL;
    if (unroll_layers(m, x, 1, init, &H, last) != 0)
        return failf(err, errlen, "sample", ur_tape_error(tp));
    ur_tensor *logits = ur_linear(tp, last[c->layers - 1].h, m->Wy, m->by);
    if (ur_tape_error(tp)) return failf(err, errlen, "sample", ur_tape_error(tp));
    int tok = ur_sample_logits(logits->val, c->vocab, 1.0f, 0, &m->rng);
    if (tok < 0) return failf(err, errlen, "sample", "no token drawn");
    m->token = tok;
    carry_state(m, last);
    m->used_after_forward = ur_tape_used_bytes(tp);
    return 0;
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bench_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

long bench_maxrss_kb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

const char *bench_blas_core(void)
{
    const char *s = openblas_get_corename();
    return s ? s : "?";
}

int bench_blas_threads(void) { return ur_threads(); }

float *bench_filled(size_t n, ur_rng *rng)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = ur_rng_uniform(rng) * 0.02f - 0.01f;
    return p;
}
