/* bench_cells: a user's cell against the built-in one, same weights and shapes (T=64, B=32,
 * in 64, H 256 by default): time per training step (forward + backward of a loss over every
 * step's h) and tape bytes, side by side in one run, alternating the two.
 *   elman       ur_elman_cell              vs a user Elman with the same declarations (h into
 *               in->h_out with ur_tanh_into, both public)
 *   lstm        ur_lstm_cell (fused gates) vs a user LSTM from sigmoid/tanh/mul/add
 *   gru         ur_gru_cell                vs a user GRU with the same declarations
 *   gru-before  ur_gru_cell                vs the GRU as it was before declarations: h Wh + bh
 *               by ur_linear in every step (Wh's gradient T GEMMs instead of one)
 * Prints a markdown table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "examples/common.h"

typedef struct {
    const char *name;
    ur_cell builtin, user;
} pair;

static ur_state user_elman(ur_tape *tp, const ur_cell *c, const ur_step_in *in, ur_state prev)
{
    (void)c;
    (void)prev;
    /* h straight into the unroll's stacked H through the public ur_tanh_into, as the
     * built-in step does */
    return (ur_state){ur_tanh_into(tp, in->proj[0], in->h_out), NULL};
}

static ur_state user_lstm(ur_tape *tp, const ur_cell *c, const ur_step_in *in, ur_state prev)
{
    (void)c;
    ur_tensor *g[4];
    ur_split_cols(tp, in->proj[0], 4, g);
    ur_tensor *i = ur_sigmoid(tp, g[0]), *f = ur_sigmoid(tp, g[1]);
    ur_tensor *gg = ur_tanh(tp, g[2]), *o = ur_sigmoid(tp, g[3]);
    ur_tensor *cc = ur_add(tp, ur_mul(tp, f, prev.c), ur_mul(tp, i, gg));
    return (ur_state){ur_mul(tp, o, ur_tanh(tp, cc)), cc};
}

static ur_state gru_math(ur_tape *tp, ur_tensor *px, ur_tensor *ph, ur_state prev)
{
    ur_tensor *x[3], *h[3];
    ur_split_cols(tp, px, 3, x);
    ur_split_cols(tp, ph, 3, h);
    ur_tensor *r = ur_sigmoid(tp, ur_add(tp, x[0], h[0]));
    ur_tensor *z = ur_sigmoid(tp, ur_add(tp, x[1], h[1]));
    ur_tensor *n = ur_tanh(tp, ur_add(tp, x[2], ur_mul(tp, r, h[2])));
    return (ur_state){ur_add(tp, ur_mul(tp, ur_one_minus(tp, z), n), ur_mul(tp, z, prev.h)), NULL};
}

static ur_state user_gru(ur_tape *tp, const ur_cell *c, const ur_step_in *in, ur_state prev)
{
    (void)c;
    return gru_math(tp, in->proj[0], in->rec[0], prev);
}

/* Before declarations: the recurrent product is an ordinary per-step op. */
static ur_state gru_before(ur_tape *tp, const ur_cell *c, const ur_step_in *in, ur_state prev)
{
    return gru_math(tp, in->proj[0], ur_linear(tp, prev.h, c->p[2], c->p[3]), prev);
}

typedef struct {
    double ms;
    size_t tape;
    int nodes;
} figures;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One training step's forward + backward; returns its time in ms, or -1. */
static double step(ur_tape *tp, ur_params *ps, const ur_cell *cell, const float *x, int T, int B,
                   figures *f)
{
    double t0 = bench_now();
    ur_tape_reset(tp);
    ur_tensor *xs = ur_input_from(tp, T * B, cell->in_dim, x);
    ur_seq seq;
    ur_unroll(tp, cell, xs, T, (ur_state){0}, 0, &seq);
    ur_tensor *loss = ur_sum(tp, ur_mul(tp, seq.H, seq.H));
    ur_params_zero_grad(ps);
    if (ur_backward(tp, loss) != 0) {
        fprintf(stderr, "bench_cells: %s\n", ur_tape_error(tp));
        return -1;
    }
    double ms = (bench_now() - t0) * 1e3;
    f->tape = ur_tape_used_bytes(tp);
    f->nodes = ur_tape_node_count(tp);
    return ms;
}

int main(int argc, char **argv)
{
    int T = 64, B = 32, in = 64, H = 256, steps = 20, quick = 0;
    const ex_opt opts[] = {
        {"T", EX_INT, &T, 1, 100000, "time steps"},
        {"batch", EX_INT, &B, 1, 100000, "sequences per batch"},
        {"in", EX_INT, &in, 1, 100000, "input width"},
        {"hidden", EX_INT, &H, 1, 100000, "hidden width"},
        {"steps", EX_INT, &steps, 1, 100000, "timed steps per side"},
        {"quick", EX_FLAG, &quick, 0, 0, "a quarter of the steps"},
    };
    int rc = ex_parse(argc, argv, 1, "bench_cells",
                      "Times a user's cell against the built-in one (same weights and shapes).",
                      opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (quick) steps = steps / 4 > 1 ? steps / 4 : 2;

    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 1);
    pair pairs[4];
    pairs[0].name = "elman";
    pairs[1].name = "lstm";
    pairs[2].name = "gru";
    pairs[3].name = "gru-before";
    if (!ps || ur_elman_cell(&pairs[0].builtin, ps, "e", in, H, &rng) != 0 ||
        ur_lstm_cell(&pairs[1].builtin, ps, "l", in, H, &rng) != 0 ||
        ur_gru_cell(&pairs[2].builtin, ps, "g", in, H, &rng) != 0) {
        fprintf(stderr, "bench_cells: %s\n", ur_model_error() ? ur_model_error() : "out of memory");
        return 1;
    }
    pairs[3].builtin = pairs[2].builtin;
    for (int k = 0; k < 4; k++) pairs[k].user = pairs[k].builtin;
    pairs[0].user.step = user_elman;
    pairs[1].user.step = user_lstm;
    pairs[2].user.step = user_gru;
    pairs[3].user.step = gru_before;
    pairs[3].user.n_rec = 0;
    float *x = malloc((size_t)T * B * in * sizeof *x);
    double *tb = malloc((size_t)steps * sizeof *tb), *tu = malloc((size_t)steps * sizeof *tu);
    ur_tape *tp = ur_tape_new(0);
    if (!x || !tb || !tu || !tp) {
        fprintf(stderr, "bench_cells: out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < (size_t)T * B * in; k++) x[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;

    printf("T=%d B=%d in=%d H=%d, %d steps per side, core=%s threads=%d\n\n", T, B, in, H, steps,
           bench_blas_core(), bench_blas_threads());
    printf("| cell | built-in ms | user ms | user / built-in | built-in tape MiB | user tape MiB "
           "| tape ratio | nodes built-in / user |\n|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < 4; k++) {
        figures fb = {0}, fu = {0};
        for (int w = 0; w < 2; w++) { /* warm-up: arena sized, caches warm */
            step(tp, ps, &pairs[k].builtin, x, T, B, &fb);
            step(tp, ps, &pairs[k].user, x, T, B, &fu);
        }
        for (int s = 0; s < steps; s++) {
            tb[s] = step(tp, ps, &pairs[k].builtin, x, T, B, &fb);
            tu[s] = step(tp, ps, &pairs[k].user, x, T, B, &fu);
            if (tb[s] < 0 || tu[s] < 0) return 1;
        }
        qsort(tb, (size_t)steps, sizeof *tb, cmp_double);
        qsort(tu, (size_t)steps, sizeof *tu, cmp_double);
        double mb = tb[steps / 2], mu = tu[steps / 2];
        printf("| %s | %.2f | %.2f | %.3f | %.1f | %.1f | %.3f | %d / %d |\n", pairs[k].name, mb,
               mu, mu / mb, fb.tape / 1048576.0, fu.tape / 1048576.0,
               (double)fu.tape / (double)fb.tape, fb.nodes, fu.nodes);
        fflush(stdout);
    }
    free(x);
    free(tb);
    free(tu);
    ur_tape_free(tp);
    ur_params_free(ps);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "bench_cells: cannot write the results\n");
        return 1;
    }
    return 0;
}
