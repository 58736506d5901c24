/* bench_dnnl: the recurrent layer alone, libunroll against oneDNN's RNN primitives (LSTM and
 * the tanh RNN), forward for training plus backward, on the same shapes and weights.
 *
 * Shapes: T = steps, B = batch, I = input width, H = hidden, L = layers (stacked, each its own
 * primitive on oneDNN's side: its multi-layer primitive needs I = H). One iteration:
 *     ours    tape reset; x (T*B x I, needs a gradient) -> ur_unroll / ur_stack_unroll -> H;
 *             zero the gradients; backward from dH = G for a fixed G (ur_backward_seeded:
 *             dx, dWx, dWh, db of every layer; the initial state is zero and constant)
 *     onednn  per layer: forward_training (src_iter, src_iter_c explicitly zero: without them
 *             2.6.3 computes a wrong weights_iter gradient), then per layer in reverse: zero
 *             the weight gradients, backward with diff_dst_layer = G (or the layer above's
 *             diff_src_layer) and zero diff_dst_iter(_c)
 * Gate order i, f, g, o on both sides; oneDNN's weights are ldigo (I x 4H, H x 4H) and its
 * bias ldgo (4H), which are libunroll's Wx, Wh and b as they are. oneDNN's weights are
 * reordered into its own layouts once, outside the timing (as if they stayed in them), and,
 * with --reorder, in every iteration as a training step whose weights change would need.
 *
 *     bench_dnnl --impl ours|onednn|check --config lstm-256 [--iters N] [--rounds R]
 *
 * check runs both once on the same weights and compares H and every weight gradient.
 * Prints a summary and a 'RESULT key=value ...' line (bench/run-dnnl alternates the two).
 * Threads: OPENBLAS_NUM_THREADS for ours, OMP_NUM_THREADS for oneDNN. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_common.h"
#include "examples/common.h"
#include "ops/rgemm.h"

#ifdef HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

typedef struct layer_config {
    const char *name;
    int lstm; /* 1: LSTM, 0: tanh RNN */
    int I, H, L, B, T;
    int iters;
} layer_config;

static const layer_config configs[] = {
    {"lstm-256", 1, 64, 256, 1, 32, 64, 20},
    {"lstm-512x2", 1, 64, 512, 2, 32, 64, 5},
    {"rnn-128", 0, 64, 128, 1, 32, 64, 100},
    {"lstm-256-b1", 1, 64, 256, 1, 1, 64, 100},
    {"lstm-256-b128", 1, 64, 256, 1, 128, 64, 5},
};
#define N_CONFIGS ((int)(sizeof configs / sizeof configs[0]))
#define MAX_L 2

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* CPU seconds of the whole process (all its threads): on a shared machine, the work done. */
static double process_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- libunroll ------------------------------------------------------------------------- */

typedef struct ours {
    const layer_config *c;
    ur_params *ps;
    ur_cell cells[MAX_L];
    ur_stack stack;
    ur_tape *tp;
    const float *x, *g;
    ur_tensor *H; /* after a run */
} ours;

static int ours_init(ours *o, const layer_config *c, const float *x, const float *g)
{
    memset(o, 0, sizeof *o);
    o->c = c;
    o->x = x;
    o->g = g;
    o->ps = ur_params_new();
    o->tp = ur_tape_new(0);
    ur_rng rng;
    ur_rng_seed(&rng, 11);
    for (int l = 0; l < c->L; l++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "rnn.%d", l);
        int in = l ? c->H : c->I;
        int rc = c->lstm ? ur_lstm_cell(&o->cells[l], o->ps, prefix, in, c->H, &rng)
                         : ur_elman_cell(&o->cells[l], o->ps, prefix, in, c->H, &rng);
        if (rc != 0) return -1;
    }
    if (c->L > 1 && ur_stack_init(&o->stack, c->L, o->cells, 0.0f, NULL) != 0) return -1;
    return 0;
}

static int ours_run(ours *o)
{
    const layer_config *c = o->c;
    ur_tape *tp = o->tp;
    ur_tape_reset(tp);
    ur_tensor *x = ur_requires_grad(ur_input_from(tp, c->T * c->B, c->I, o->x));
    ur_tensor *H = NULL;
    if (c->L == 1) {
        ur_seq seq;
        if (ur_unroll(tp, &o->cells[0], x, c->T, (ur_state){NULL, NULL}, 0, &seq) == 0) H = seq.H;
    } else {
        ur_stack_seq ss;
        if (ur_stack_unroll(tp, &o->stack, x, c->T, NULL, &ss) == 0) H = ss.H;
    }
    if (!H) return -1;
    /* dH = G as the seed, as oneDNN's diff_dst_layer: no loss op on either side */
    const float *seed = o->g;
    ur_params_zero_grad(o->ps);
    if (ur_backward_seeded(tp, 1, &H, &seed) != 0) return -1;
    o->H = H;
    return 0;
}

static void ours_free(ours *o)
{
    ur_tape_free(o->tp);
    ur_params_free(o->ps);
}

/* Weight l.name of ours (Wx, Wh, b for LSTM; U, W, b for the RNN). */
static ur_tensor *ours_param(const ours *o, int l, int which)
{
    static const char *lstm_names[] = {"Wx", "Wh", "b"}, *rnn_names[] = {"U", "W", "b"};
    char name[32];
    snprintf(name, sizeof name, "rnn.%d.%s", l, o->c->lstm ? lstm_names[which] : rnn_names[which]);
    return ur_params_get(o->ps, name);
}

/* ---- oneDNN ---------------------------------------------------------------------------- */

#ifdef HAVE_DNNL
#define DNNL_OK(call)                                                                      \
    do {                                                                                   \
        dnnl_status_t st_ = (call);                                                        \
        if (st_ != dnnl_success) {                                                         \
            fprintf(stderr, "bench_dnnl: %s failed (status %d) at line %d\n", #call, (int)st_, \
                    __LINE__);                                                             \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

typedef struct dnnl_layer {
    int in;
    dnnl_primitive_t fwd, bwd;
    /* user layouts (ldigo / ldgo), ours */
    float *w_layer, *w_iter, *bias, *dw_layer, *dw_iter, *dbias;
    dnnl_memory_t u_wl, u_wi, u_dwl, u_dwi;    /* user-layout views of the above */
    dnnl_memory_t f_wl, f_wi, b_wl, b_wi;      /* the primitives' weight layouts */
    dnnl_memory_t b_dwl, b_dwi;                /* backward's gradient layouts */
    dnnl_primitive_t r_fwl, r_fwi, r_bwl, r_bwi, r_dwl, r_dwi; /* reorders */
    dnnl_memory_t m_bias, m_dbias;
    dnnl_memory_t src, src_iter, src_iter_c, dst, dst_iter, dst_iter_c, ws;
    dnnl_memory_t d_src, d_src_iter, d_src_iter_c, d_dst, d_dst_iter, d_dst_iter_c;
} dnnl_layer;

typedef struct onednn {
    const layer_config *c;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    dnnl_layer layer[MAX_L];
    int reorder_each;
} onednn;

static void md_tag(dnnl_memory_desc_t *md, int nd, const dnnl_dims_t dims, dnnl_format_tag_t tag)
{
    DNNL_OK(dnnl_memory_desc_init_by_tag(md, nd, dims, dnnl_f32, tag));
}

static dnnl_memory_t mem(const onednn *d, const dnnl_memory_desc_t *md, void *handle)
{
    dnnl_memory_t m;
    DNNL_OK(dnnl_memory_create(&m, md, d->eng, handle ? handle : DNNL_MEMORY_ALLOCATE));
    return m;
}

static void zero_mem(dnnl_memory_t m)
{
    const dnnl_memory_desc_t *md;
    void *p;
    DNNL_OK(dnnl_memory_get_memory_desc(m, &md));
    DNNL_OK(dnnl_memory_get_data_handle(m, &p));
    memset(p, 0, dnnl_memory_desc_get_size(md));
}

static dnnl_primitive_t reorder(const onednn *d, dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *a, *b;
    DNNL_OK(dnnl_memory_get_memory_desc(from, &a));
    DNNL_OK(dnnl_memory_get_memory_desc(to, &b));
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_reorder_primitive_desc_create(&pd, a, d->eng, b, d->eng, NULL));
    dnnl_primitive_t p;
    DNNL_OK(dnnl_primitive_create(&p, pd));
    DNNL_OK(dnnl_primitive_desc_destroy(pd));
    return p;
}

static void run_reorder(const onednn *d, dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to)
{
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    DNNL_OK(dnnl_primitive_execute(r, d->st, 2, args));
}

static const dnnl_memory_desc_t *q(const_dnnl_primitive_desc_t pd, int arg)
{
    return dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
}

/* Builds layer l with ours's weights copied in (user layout = ours). */
static void onednn_layer_init(onednn *d, int l, const ours *o, dnnl_memory_t src, dnnl_memory_t d_src_of_above)
{
    const layer_config *c = d->c;
    dnnl_layer *y = &d->layer[l];
    int G = c->lstm ? 4 : 1, I = l ? c->H : c->I, H = c->H, T = c->T, B = c->B;
    y->in = I;
    dnnl_dims_t src_d = {T, B, I}, dst_d = {T, B, H}, iter_d = {1, 1, B, H};
    dnnl_dims_t wl_d = {1, 1, I, G, H}, wi_d = {1, 1, H, G, H}, b_d = {1, 1, G, H};
    dnnl_memory_desc_t src_md, dst_md, iter_md, wl_any, wi_any, wl_u, wi_u, b_md;
    md_tag(&src_md, 3, src_d, dnnl_tnc);
    md_tag(&dst_md, 3, dst_d, dnnl_tnc);
    md_tag(&iter_md, 4, iter_d, dnnl_ldnc);
    md_tag(&wl_any, 5, wl_d, dnnl_format_tag_any);
    md_tag(&wi_any, 5, wi_d, dnnl_format_tag_any);
    md_tag(&wl_u, 5, wl_d, dnnl_ldigo);
    md_tag(&wi_u, 5, wi_d, dnnl_ldigo);
    md_tag(&b_md, 4, b_d, dnnl_ldgo);

    dnnl_rnn_desc_t fd, bd;
    if (c->lstm) {
        DNNL_OK(dnnl_lstm_forward_desc_init(&fd, dnnl_forward_training,
                                            dnnl_unidirectional_left2right, &src_md, &iter_md,
                                            &iter_md, &wl_any, &wi_any, &b_md, &dst_md, &iter_md,
                                            &iter_md, 0));
        DNNL_OK(dnnl_lstm_backward_desc_init(&bd, dnnl_backward, dnnl_unidirectional_left2right,
                                             &src_md, &iter_md, &iter_md, &wl_any, &wi_any, &b_md,
                                             &dst_md, &iter_md, &iter_md, &src_md, &iter_md,
                                             &iter_md, &wl_any, &wi_any, &b_md, &dst_md, &iter_md,
                                             &iter_md, 0));
    } else {
        DNNL_OK(dnnl_vanilla_rnn_forward_desc_init(&fd, dnnl_forward_training, dnnl_eltwise_tanh,
                                                   dnnl_unidirectional_left2right, &src_md,
                                                   &iter_md, &wl_any, &wi_any, &b_md, &dst_md,
                                                   &iter_md, 0, 0.0f, 0.0f));
        DNNL_OK(dnnl_vanilla_rnn_backward_desc_init(&bd, dnnl_backward, dnnl_eltwise_tanh,
                                                    dnnl_unidirectional_left2right, &src_md,
                                                    &iter_md, &wl_any, &wi_any, &b_md, &dst_md,
                                                    &iter_md, &src_md, &iter_md, &wl_any, &wi_any,
                                                    &b_md, &dst_md, &iter_md, 0, 0.0f, 0.0f));
    }
    dnnl_primitive_desc_t fpd, bpd;
    DNNL_OK(dnnl_primitive_desc_create(&fpd, &fd, NULL, d->eng, NULL));
    DNNL_OK(dnnl_primitive_desc_create(&bpd, &bd, NULL, d->eng, fpd));
    DNNL_OK(dnnl_primitive_create(&y->fwd, fpd));
    DNNL_OK(dnnl_primitive_create(&y->bwd, bpd));

    size_t nwl = (size_t)I * G * H, nwi = (size_t)H * G * H, nb = (size_t)G * H;
    y->w_layer = malloc(nwl * sizeof(float));
    y->w_iter = malloc(nwi * sizeof(float));
    y->bias = malloc(nb * sizeof(float));
    y->dw_layer = calloc(nwl, sizeof(float));
    y->dw_iter = calloc(nwi, sizeof(float));
    y->dbias = calloc(nb, sizeof(float));
    memcpy(y->w_layer, ours_param(o, l, 0)->val, nwl * sizeof(float));
    memcpy(y->w_iter, ours_param(o, l, 1)->val, nwi * sizeof(float));
    memcpy(y->bias, ours_param(o, l, 2)->val, nb * sizeof(float));
    y->u_wl = mem(d, &wl_u, y->w_layer);
    y->u_wi = mem(d, &wi_u, y->w_iter);
    y->u_dwl = mem(d, &wl_u, y->dw_layer);
    y->u_dwi = mem(d, &wi_u, y->dw_iter);
    y->m_bias = mem(d, &b_md, y->bias);
    y->m_dbias = mem(d, &b_md, y->dbias);
    y->f_wl = mem(d, q(fpd, DNNL_ARG_WEIGHTS_LAYER), NULL);
    y->f_wi = mem(d, q(fpd, DNNL_ARG_WEIGHTS_ITER), NULL);
    y->b_wl = mem(d, q(bpd, DNNL_ARG_WEIGHTS_LAYER), NULL);
    y->b_wi = mem(d, q(bpd, DNNL_ARG_WEIGHTS_ITER), NULL);
    y->b_dwl = mem(d, q(bpd, DNNL_ARG_DIFF_WEIGHTS_LAYER), NULL);
    y->b_dwi = mem(d, q(bpd, DNNL_ARG_DIFF_WEIGHTS_ITER), NULL);
    y->r_fwl = reorder(d, y->u_wl, y->f_wl);
    y->r_fwi = reorder(d, y->u_wi, y->f_wi);
    y->r_bwl = reorder(d, y->u_wl, y->b_wl);
    y->r_bwi = reorder(d, y->u_wi, y->b_wi);
    y->r_dwl = reorder(d, y->b_dwl, y->u_dwl);
    y->r_dwi = reorder(d, y->b_dwi, y->u_dwi);
    run_reorder(d, y->r_fwl, y->u_wl, y->f_wl);
    run_reorder(d, y->r_fwi, y->u_wi, y->f_wi);
    run_reorder(d, y->r_bwl, y->u_wl, y->b_wl);
    run_reorder(d, y->r_bwi, y->u_wi, y->b_wi);

    y->src = src;
    y->src_iter = mem(d, &iter_md, NULL);
    y->src_iter_c = mem(d, &iter_md, NULL);
    zero_mem(y->src_iter);
    zero_mem(y->src_iter_c);
    y->dst = mem(d, &dst_md, NULL);
    y->dst_iter = mem(d, &iter_md, NULL);
    y->dst_iter_c = mem(d, &iter_md, NULL);
    y->ws = mem(d, q(fpd, DNNL_ARG_WORKSPACE), NULL);
    y->d_src = mem(d, &src_md, NULL);
    y->d_src_iter = mem(d, &iter_md, NULL);
    y->d_src_iter_c = mem(d, &iter_md, NULL);
    y->d_dst = d_src_of_above;
    y->d_dst_iter = mem(d, &iter_md, NULL);
    y->d_dst_iter_c = mem(d, &iter_md, NULL);
    zero_mem(y->d_dst_iter);
    zero_mem(y->d_dst_iter_c);
    DNNL_OK(dnnl_primitive_desc_destroy(fpd));
    DNNL_OK(dnnl_primitive_desc_destroy(bpd));
}

static void onednn_init(onednn *d, const layer_config *c, const ours *o, float *x, float *g,
                        int reorder_each)
{
    memset(d, 0, sizeof *d);
    d->c = c;
    d->reorder_each = reorder_each;
    DNNL_OK(dnnl_engine_create(&d->eng, dnnl_cpu, 0));
    DNNL_OK(dnnl_stream_create(&d->st, d->eng, dnnl_stream_default_flags));
    dnnl_dims_t src_d = {c->T, c->B, c->I}, top_d = {c->T, c->B, c->H};
    dnnl_memory_desc_t src_md, top_md;
    md_tag(&src_md, 3, src_d, dnnl_tnc);
    md_tag(&top_md, 3, top_d, dnnl_tnc);
    dnnl_memory_t x_mem = mem(d, &src_md, x), g_mem = mem(d, &top_md, g);
    /* layer l reads layer l-1's dst and its diff_dst is layer l+1's diff_src: build bottom up
     * with the top's diff_dst = G, then wire the lower ones */
    for (int l = 0; l < c->L; l++)
        onednn_layer_init(d, l, o, l ? d->layer[l - 1].dst : x_mem, l == c->L - 1 ? g_mem : NULL);
    for (int l = 0; l + 1 < c->L; l++) d->layer[l].d_dst = d->layer[l + 1].d_src;
}

static void onednn_run(onednn *d)
{
    const layer_config *c = d->c;
    for (int l = 0; l < c->L; l++) {
        dnnl_layer *y = &d->layer[l];
        if (d->reorder_each) {
            run_reorder(d, y->r_fwl, y->u_wl, y->f_wl);
            run_reorder(d, y->r_fwi, y->u_wi, y->f_wi);
        }
        dnnl_exec_arg_t a[] = {
            {DNNL_ARG_SRC_LAYER, y->src}, {DNNL_ARG_SRC_ITER, y->src_iter},
            {DNNL_ARG_SRC_ITER_C, y->src_iter_c}, {DNNL_ARG_WEIGHTS_LAYER, y->f_wl},
            {DNNL_ARG_WEIGHTS_ITER, y->f_wi}, {DNNL_ARG_BIAS, y->m_bias},
            {DNNL_ARG_DST_LAYER, y->dst}, {DNNL_ARG_DST_ITER, y->dst_iter},
            {DNNL_ARG_DST_ITER_C, y->dst_iter_c}, {DNNL_ARG_WORKSPACE, y->ws}};
        int n = (int)(sizeof a / sizeof a[0]);
        if (!c->lstm) { /* no c state: drop SRC_ITER_C and DST_ITER_C */
            dnnl_exec_arg_t b[] = {a[0], a[1], a[3], a[4], a[5], a[6], a[7], a[9]};
            DNNL_OK(dnnl_primitive_execute(y->fwd, d->st, 8, b));
        } else {
            DNNL_OK(dnnl_primitive_execute(y->fwd, d->st, n, a));
        }
    }
    for (int l = c->L - 1; l >= 0; l--) {
        dnnl_layer *y = &d->layer[l];
        if (d->reorder_each) {
            run_reorder(d, y->r_bwl, y->u_wl, y->b_wl);
            run_reorder(d, y->r_bwi, y->u_wi, y->b_wi);
        }
        zero_mem(y->b_dwl);
        zero_mem(y->b_dwi);
        zero_mem(y->m_dbias);
        dnnl_exec_arg_t a[] = {
            {DNNL_ARG_SRC_LAYER, y->src}, {DNNL_ARG_SRC_ITER, y->src_iter},
            {DNNL_ARG_WEIGHTS_LAYER, y->b_wl}, {DNNL_ARG_WEIGHTS_ITER, y->b_wi},
            {DNNL_ARG_BIAS, y->m_bias}, {DNNL_ARG_DST_LAYER, y->dst},
            {DNNL_ARG_DST_ITER, y->dst_iter}, {DNNL_ARG_WORKSPACE, y->ws},
            {DNNL_ARG_DIFF_SRC_LAYER, y->d_src}, {DNNL_ARG_DIFF_SRC_ITER, y->d_src_iter},
            {DNNL_ARG_DIFF_WEIGHTS_LAYER, y->b_dwl}, {DNNL_ARG_DIFF_WEIGHTS_ITER, y->b_dwi},
            {DNNL_ARG_DIFF_BIAS, y->m_dbias}, {DNNL_ARG_DIFF_DST_LAYER, y->d_dst},
            {DNNL_ARG_DIFF_DST_ITER, y->d_dst_iter},
            /* LSTM only from here */
            {DNNL_ARG_SRC_ITER_C, y->src_iter_c}, {DNNL_ARG_DST_ITER_C, y->dst_iter_c},
            {DNNL_ARG_DIFF_SRC_ITER_C, y->d_src_iter_c},
            {DNNL_ARG_DIFF_DST_ITER_C, y->d_dst_iter_c}};
        int n = c->lstm ? (int)(sizeof a / sizeof a[0]) : 15;
        DNNL_OK(dnnl_primitive_execute(y->bwd, d->st, n, a));
        if (d->reorder_each) {
            run_reorder(d, y->r_dwl, y->b_dwl, y->u_dwl);
            run_reorder(d, y->r_dwi, y->b_dwi, y->u_dwi);
        }
    }
    DNNL_OK(dnnl_stream_wait(d->st));
}

static const float *onednn_top(const onednn *d)
{
    void *p;
    DNNL_OK(dnnl_memory_get_data_handle(d->layer[d->c->L - 1].dst, &p));
    return p;
}
#endif /* HAVE_DNNL */

/* ---- main ------------------------------------------------------------------------------ */

static float *random_floats(size_t n, unsigned long seed, float scale)
{
    ur_rng rng;
    ur_rng_seed(&rng, seed);
    float *p = malloc(n * sizeof *p);
    if (p)
        for (size_t k = 0; k < n; k++) p[k] = scale * (2.0f * ur_rng_uniform(&rng) - 1.0f);
    return p;
}

/* max |a - b| / max(max |b|, tiny) */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0, m = 1e-30;
    for (size_t k = 0; k < n; k++) {
        double e = fabs((double)a[k] - b[k]);
        if (e > d) d = e;
        if (fabs(b[k]) > m) m = fabs(b[k]);
    }
    return d / m;
}

int main(int argc, char **argv)
{
    const char *impl = "ours", *config = "lstm-256";
    int iters = 0, rounds = 5, reorder_each = 0;
    const ex_opt opts[] = {
        {"impl", EX_STRING, &impl, 0, 0, "ours, onednn or check"},
        {"config", EX_STRING, &config, 0, 0,
         "lstm-256, lstm-512x2, rnn-128, lstm-256-b1 or lstm-256-b128"},
        {"iters", EX_INT, &iters, 0, 1e6, "iterations per round (0: the configuration's)"},
        {"rounds", EX_INT, &rounds, 1, 1000, "rounds; the median round counts"},
        {"reorder", EX_FLAG, &reorder_each, 0, 0,
         "oneDNN: reorder the weights in every iteration (a training step's weights change)"},
    };
    int rc = ex_parse(argc, argv, 1, "bench_dnnl",
                      "Times a recurrent layer's forward + backward, libunroll or oneDNN.", opts,
                      (int)(sizeof opts / sizeof opts[0]));
    if (rc != 0) return rc > 0 ? 0 : 2;
    const layer_config *c = NULL;
    for (int k = 0; k < N_CONFIGS; k++)
        if (strcmp(configs[k].name, config) == 0) c = &configs[k];
    if (!c) { fprintf(stderr, "bench_dnnl: unknown config '%s'\n", config); return 2; }
    int use_dnnl = strcmp(impl, "onednn") == 0, check = strcmp(impl, "check") == 0;
    if (!use_dnnl && !check && strcmp(impl, "ours") != 0) {
        fprintf(stderr, "bench_dnnl: --impl is ours, onednn or check\n");
        return 2;
    }
#ifndef HAVE_DNNL
    if (use_dnnl || check) {
        printf("bench_dnnl: skipped: oneDNN was not found by configure (apt-get install "
               "libdnnl-dev, then ./configure)\n");
        return 0;
    }
#endif
    if (iters <= 0) iters = c->iters;
    size_t nx = (size_t)c->T * c->B * c->I, nh = (size_t)c->T * c->B * c->H;
    float *x = random_floats(nx, 21, 1.0f), *g = random_floats(nh, 22, 1.0f);
    ours o;
    if (!x || !g || ours_init(&o, c, x, g) != 0) {
        fprintf(stderr, "bench_dnnl: setup failed: %s\n", ur_model_error() ? ur_model_error() : "?");
        return 1;
    }
#ifdef HAVE_DNNL
    onednn d;
    if (use_dnnl || check) onednn_init(&d, c, &o, x, g, reorder_each || check);
    if (check) {
        if (ours_run(&o) != 0) { fprintf(stderr, "bench_dnnl: %s\n", ur_tape_error(o.tp)); return 1; }
        onednn_run(&d);
        double worst = rel_diff(o.H->val, onednn_top(&d), nh);
        printf("check %s: H differs by %.2e (relative to max |H|)", c->name, worst);
        for (int l = 0; l < c->L; l++) {
            const dnnl_layer *y = &d.layer[l];
            int G = c->lstm ? 4 : 1;
            double e[3] = {rel_diff(ours_param(&o, l, 0)->grad, y->dw_layer, (size_t)y->in * G * c->H),
                           rel_diff(ours_param(&o, l, 1)->grad, y->dw_iter, (size_t)c->H * G * c->H),
                           rel_diff(ours_param(&o, l, 2)->grad, y->dbias, (size_t)G * c->H)};
            printf("; layer %d dW_layer %.2e dW_iter %.2e db %.2e", l, e[0], e[1], e[2]);
            for (int k = 0; k < 3; k++) worst = e[k] > worst ? e[k] : worst;
        }
        int ok = worst < 1e-4;
        printf("\nRESULT impl=check config=%s worst_rel=%.3e ok=%d\n", c->name, worst, ok);
        return ok ? 0 : 1;
    }
#endif
    double *times = malloc((size_t)rounds * sizeof *times);
    double *cpu = malloc((size_t)rounds * sizeof *cpu);
    for (int r = -1; r < rounds; r++) { /* round -1: warm-up */
        double t0 = bench_now(), c0 = process_cpu();
        for (int k = 0; k < iters; k++) {
#ifdef HAVE_DNNL
            if (use_dnnl) { onednn_run(&d); continue; }
#endif
            if (ours_run(&o) != 0) {
                fprintf(stderr, "bench_dnnl: %s\n", ur_tape_error(o.tp));
                return 1;
            }
        }
        if (r >= 0) {
            times[r] = (bench_now() - t0) / iters;
            cpu[r] = (process_cpu() - c0) / iters;
        }
    }
    qsort(cpu, (size_t)rounds, sizeof *cpu, cmp_double);
    double cpu_med = rounds % 2 ? cpu[rounds / 2] : 0.5 * (cpu[rounds / 2 - 1] + cpu[rounds / 2]);
    double best = 1e30;
    for (int r = 0; r < rounds; r++) best = times[r] < best ? times[r] : best;
    qsort(times, (size_t)rounds, sizeof *times, cmp_double);
    double med = rounds % 2 ? times[rounds / 2] : 0.5 * (times[rounds / 2 - 1] + times[rounds / 2]);
    const char *name = use_dnnl ? (reorder_each ? "onednn+reorder" : "onednn") : "ours";
    const char *omp = getenv("OMP_NUM_THREADS");
    printf("%s %s: %.3f ms per forward + backward (median of %d rounds of %d; best %.3f); "
           "kernel %s, OpenBLAS core %s, %d thread(s), OMP_NUM_THREADS=%s\n", name, c->name,
           1e3 * med, rounds, iters, 1e3 * best, use_dnnl ? "onednn" : ur_rgemm_kernel(),
           bench_blas_core(), bench_blas_threads(), omp ? omp : "unset");
    printf("RESULT impl=%s config=%s median_ms=%.4f best_ms=%.4f cpu_ms=%.4f kernel=%s gemm=%s "
           "core=%s threads=%d\n", name, c->name, 1e3 * med, 1e3 * best, 1e3 * cpu_med,
           use_dnnl ? "onednn" : ur_rgemm_kernel(), use_dnnl ? "onednn" : ur_rgemm_gemm_path(),
           bench_blas_core(), bench_blas_threads());
    free(times);
    free(cpu);
    ours_free(&o);
    free(x);
    free(g);
    return 0;
}
