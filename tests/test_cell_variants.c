/* The built-in cells' variants against references computed independently in double: GRU as
 * Cho et al. (2014) write it (reset before or after the product), the layer-normalised and
 * peephole LSTMs and the layer-normalised GRU, each also gradient-checked; and variational
 * (per-sequence) dropout on a cell's input and recurrent state. */
#include "cell_test.h"

#include <stdlib.h>
#include <string.h>

/* ---- GRU (Cho et al. 2014) ---------------------------------------------------------------- */

static double sig(double v) { return 1.0 / (1.0 + exp(-v)); }

/* x (rows x n) times W (n x m), in double, row-major, W of row stride ldw from column c0. */
static void mm(const float *x, int rows, int n, const float *w, int ldw, int c0, int m, double *out)
{
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < m; j++) {
            double a = 0;
            for (int k = 0; k < n; k++) a += (double)x[r * n + k] * w[k * ldw + c0 + j];
            out[r * m + j] = a;
        }
}

START_TEST(test_gru_cho_forward_in_double)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 21);
    ur_cell cell;
    ur_cell_opts o = {.gru_reset_before = 1};
    ck_assert_int_eq(ur_gru_cell_ex(&cell, ps, "g", IN, H, &o, &rng), 0);
    ck_assert_str_eq(cell.kind, "gru-cho");
    ck_assert_ptr_eq(ur_cell_param(&cell, "Un"), cell.p[4]);
    float x[T * B * IN];
    for (int k = 0; k < T * B * IN; k++) x[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    ur_tape *tp = ur_tape_new(0);
    ur_seq seq;
    ck_assert_int_eq(ur_unroll(tp, &cell, ur_input_from(tp, T * B, IN, x), T, (ur_state){0}, 0, &seq), 0);
    const float *Wx = cell.p[0]->val, *bx = cell.p[1]->val, *Wh = cell.p[2]->val,
                *bh = cell.p[3]->val, *Un = cell.p[4]->val;
    double h[B * H] = {0}, px[B * 3 * H], ph[B * 2 * H], rh[B * H], pn[B * H];
    float hf[B * H], rhf[B * H];
    for (int t = 0; t < T; t++) {
        mm(x + t * B * IN, B, IN, Wx, 3 * H, 0, 3 * H, px);
        for (int k = 0; k < B * H; k++) hf[k] = (float)h[k];
        mm(hf, B, H, Wh, 2 * H, 0, 2 * H, ph);
        double r[B * H], z[B * H];
        for (int b = 0; b < B; b++)
            for (int j = 0; j < H; j++) {
                r[b * H + j] = sig(px[b * 3 * H + j] + bx[j] + ph[b * 2 * H + j] + bh[j]);
                z[b * H + j] = sig(px[b * 3 * H + H + j] + bx[H + j] + ph[b * 2 * H + H + j] + bh[H + j]);
                rh[b * H + j] = r[b * H + j] * h[b * H + j];
                rhf[b * H + j] = (float)rh[b * H + j];
            }
        mm(rhf, B, H, Un, H, 0, H, pn);
        for (int b = 0; b < B; b++)
            for (int j = 0; j < H; j++) {
                double n = tanh(px[b * 3 * H + 2 * H + j] + bx[2 * H + j] + pn[b * H + j]);
                h[b * H + j] = (1 - z[b * H + j]) * n + z[b * H + j] * h[b * H + j];
            }
        for (int k = 0; k < B * H; k++)
            ck_assert_msg(fabs(seq.states[t].h->val[k] - h[k]) < 2e-6, "t %d h[%d]: %.7g, want %.7g",
                          t, k, seq.states[t].h->val[k], h[k]);
    }
    ur_tape_free(tp);
    /* Its gradients, through the whole unroll. */
    run_ctx c = {ps, &cell, {0}};
    memcpy(c.x, x, sizeof c.x);
    ur_assert_gradcheck(ps, run_loss, &c, 0, 1e-5, 1e-3);
    ur_params_free(ps);
}
END_TEST

/* The fused op of that step (ur_gru_cho_gates) alone, against the equations in double, with
 * its documented overwrites: [r | z | n] over x, r * h_prev over g's first H columns. Also
 * with h written into a row view of a larger tensor (h_into), as the unroll does. */
START_TEST(test_gru_cho_gates_in_double)
{
    ur_rng rng;
    ur_rng_seed(&rng, 23);
    float xv[B * 3 * H], gv[B * 2 * H], hv[B * H], uv[H * H];
    for (int k = 0; k < B * 3 * H; k++) xv[k] = 4.0f * ur_rng_uniform(&rng) - 2.0f;
    for (int k = 0; k < B * 2 * H; k++) gv[k] = 4.0f * ur_rng_uniform(&rng) - 2.0f;
    for (int k = 0; k < B * H; k++) hv[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (int k = 0; k < H * H; k++) uv[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    for (int into = 0; into < 2; into++) {
        ur_tape *tp = ur_tape_new(0);
        ur_tensor *x = ur_input_from(tp, B, 3 * H, xv), *g = ur_input_from(tp, B, 2 * H, gv);
        ur_tensor *hs = ur_input(tp, 3 * B, H);
        ur_tensor *h_into = into ? ur_rows(tp, hs, B, B) : NULL;
        ur_tensor *h = ur_gru_cho_gates(tp, x, g, ur_input_from(tp, B, H, hv),
                                        ur_input_from(tp, H, H, uv), h_into);
        ck_assert_msg(!ur_tape_error(tp), "%s", ur_tape_error(tp));
        if (into) ck_assert_ptr_eq(h, h_into);
        for (int b = 0; b < B; b++) {
            double r[H], rh[H];
            for (int j = 0; j < H; j++) {
                r[j] = sig((double)xv[b * 3 * H + j] + gv[b * 2 * H + j]);
                rh[j] = r[j] * hv[b * H + j];
            }
            for (int j = 0; j < H; j++) {
                double z = sig((double)xv[b * 3 * H + H + j] + gv[b * 2 * H + H + j]);
                double a = xv[b * 3 * H + 2 * H + j];
                for (int k = 0; k < H; k++) a += rh[k] * uv[k * H + j];
                double n = tanh(a), want = (1 - z) * n + z * hv[b * H + j];
                const float *got = x->val + b * 3 * H;
                ck_assert_msg(fabs(h->val[b * H + j] - want) < 2e-6, "h[%d][%d]: %.7g, want %.7g",
                              b, j, h->val[b * H + j], want);
                ck_assert_msg(fabs(got[j] - r[j]) < 1e-6, "r[%d][%d]", b, j);
                ck_assert_msg(fabs(got[H + j] - z) < 1e-6, "z[%d][%d]", b, j);
                ck_assert_msg(fabs(got[2 * H + j] - n) < 2e-6, "n[%d][%d]", b, j);
                ck_assert_msg(fabs(g->val[b * 2 * H + j] - rh[j]) < 1e-6, "rh[%d][%d]", b, j);
            }
        }
        ur_tape_free(tp);
    }
}
END_TEST

/* ---- Layer-normalised and peephole LSTM -------------------------------------------------------- */

/* Normalises v[0..n) in place (biased variance), in double. */
static void ln_row(double *v, int n, double eps)
{
    double m = 0, var = 0;
    for (int j = 0; j < n; j++) m += v[j];
    m /= n;
    for (int j = 0; j < n; j++) var += (v[j] - m) * (v[j] - m);
    var /= n;
    for (int j = 0; j < n; j++) v[j] = (v[j] - m) / sqrt(var + eps);
}

/* The variant's equations in double, independently of the library; h and c per step. */
static void lstm_ref(const ur_cell *cell, int ln, int peep, const float *x, double hs[T][B * H],
                     double cs[T][B * H])
{
    const float *Wx = cell->p[0]->val, *Wh = cell->p[1]->val, *b = cell->p[2]->val;
    const int pi = ln ? 7 : 3;
    double h[B * H] = {0}, c[B * H] = {0}, eps = cell->hp[0];
    for (int t = 0; t < T; t++)
        for (int r = 0; r < B; r++) {
            double zx[4 * H], zh[4 * H], z[4 * H];
            for (int j = 0; j < 4 * H; j++) {
                zx[j] = zh[j] = 0;
                for (int k = 0; k < IN; k++) zx[j] += (double)x[(t * B + r) * IN + k] * Wx[k * 4 * H + j];
                for (int k = 0; k < H; k++) zh[j] += (double)(float)h[r * H + k] * Wh[k * 4 * H + j];
            }
            if (ln) {
                ln_row(zx, 4 * H, eps);
                ln_row(zh, 4 * H, eps);
                for (int j = 0; j < 4 * H; j++)
                    z[j] = zx[j] * cell->p[3]->val[j] + zh[j] * cell->p[4]->val[j] + b[j];
            } else {
                for (int j = 0; j < 4 * H; j++) z[j] = zx[j] + zh[j] + b[j];
            }
            double cn[H];
            for (int j = 0; j < H; j++) {
                double cp = c[r * H + j];
                double zi = z[j], zf = z[H + j];
                if (peep) {
                    zi += cell->p[pi]->val[j] * cp;
                    zf += cell->p[pi + 1]->val[j] * cp;
                }
                cn[j] = sig(zf) * cp + sig(zi) * tanh(z[2 * H + j]);
            }
            double cl[H];
            memcpy(cl, cn, sizeof cl);
            if (ln) {
                ln_row(cl, H, eps);
                for (int j = 0; j < H; j++) cl[j] = cl[j] * cell->p[5]->val[j] + cell->p[6]->val[j];
            }
            for (int j = 0; j < H; j++) {
                double zo = z[3 * H + j] + (peep ? cell->p[pi + 2]->val[j] * cn[j] : 0);
                hs[t][r * H + j] = sig(zo) * tanh(cl[j]);
                cs[t][r * H + j] = cn[j];
            }
            for (int j = 0; j < H; j++) { /* the next row reads only its own h, c */ }
            memcpy(h + r * H, hs[t] + r * H, sizeof(double) * H);
            memcpy(c + r * H, cs[t] + r * H, sizeof(double) * H);
        }
}

START_TEST(test_lstm_variants)
{
    static const struct { int ln, peep; const char *kind; int n_params; } v[] = {
        {1, 0, "lstm-ln", 7}, {0, 1, "lstm-peephole", 6}, {1, 1, "lstm-ln-peephole", 10}};
    for (int k = 0; k < 3; k++) {
        ur_params *ps = ur_params_new();
        ur_rng rng;
        ur_rng_seed(&rng, 30 + (unsigned)k);
        ur_cell cell;
        ur_cell_opts o = {.layer_norm = v[k].ln, .peephole = v[k].peep};
        ck_assert_int_eq(ur_lstm_cell_ex(&cell, ps, "l", IN, H, &o, &rng), 0);
        ck_assert_str_eq(cell.kind, v[k].kind);
        ck_assert_int_eq(cell.n_params, v[k].n_params);
        ck_assert_int_eq(ur_params_count(ps), v[k].n_params);
        if (v[k].peep) ck_assert_ptr_eq(ur_cell_param(&cell, "po"), cell.p[v[k].n_params - 1]);
        /* Gains away from 1 and a bias away from 0, so that they matter in the checks. */
        for (int j = 3; j < cell.n_params; j++)
            for (size_t e = 0; e < ur_numel(cell.p[j]); e++) cell.p[j]->val[e] += 0.3f * ur_rng_uniform(&rng) - 0.15f;
        float x[T * B * IN];
        for (int j = 0; j < T * B * IN; j++) x[j] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
        ur_tape *tp = ur_tape_new(0);
        ur_seq seq;
        ck_assert_int_eq(ur_unroll(tp, &cell, ur_input_from(tp, T * B, IN, x), T, (ur_state){0}, 0,
                                   &seq), 0);
        double hs[T][B * H], cs[T][B * H];
        lstm_ref(&cell, v[k].ln, v[k].peep, x, hs, cs);
        for (int t = 0; t < T; t++)
            for (int j = 0; j < B * H; j++) {
                ck_assert_msg(fabs(seq.states[t].h->val[j] - hs[t][j]) < 1e-5, "%s t %d h[%d] %.7g want %.7g",
                              v[k].kind, t, j, seq.states[t].h->val[j], hs[t][j]);
                ck_assert_msg(fabs(seq.states[t].c->val[j] - cs[t][j]) < 1e-5, "%s t %d c[%d] %.7g want %.7g",
                              v[k].kind, t, j, seq.states[t].c->val[j], cs[t][j]);
            }
        if (v[k].ln) { /* the normalised pre-activations: mean 0, variance 1 per row */
            int seen = 0;
            for (ur_node *n = tp == NULL ? NULL : seq.H->node; n; n = n->prev) {
                if (strcmp(n->op->name, "layer_norm") != 0 || n->n_in < 2) continue;
                /* y = LN(x) g (+ b): divide the gain out (and the bias) to get LN(x) itself. */
                const ur_tensor *y = n->out, *g = n->in[1];
                const ur_tensor *bb = n->n_in > 2 ? n->in[2] : NULL;
                for (int r = 0; r < y->rows; r++) {
                    double m = 0, q = 0;
                    for (int j = 0; j < y->cols; j++) {
                        double u = (y->val[r * y->cols + j] - (bb ? bb->val[j] : 0)) / g->val[j];
                        m += u;
                        q += u * u;
                    }
                    m /= y->cols;
                    q = q / y->cols - m * m;
                    /* var(LN(x)) = var(x) / (var(x) + eps): 1 unless x's row is (nearly) flat,
                     * as h_{-1} Wh = 0 is at the first step. */
                    const float *xr = n->in[0]->val + (size_t)r * y->cols;
                    double xm = 0, xv = 0;
                    for (int j = 0; j < y->cols; j++) xm += xr[j];
                    xm /= y->cols;
                    for (int j = 0; j < y->cols; j++) xv += (xr[j] - xm) * (xr[j] - xm);
                    xv /= y->cols;
                    double want = xv / (xv + cell.hp[0]);
                    ck_assert_msg(fabs(m) < 1e-5 && fabs(q - want) < 1e-4, "%s: row mean %g var %g, "
                                  "want 0 and %g", v[k].kind, m, q, want);
                    if (xv > 1e-3) ck_assert(fabs(q - 1) < 1e-2);
                }
                seen++;
            }
            ck_assert_int_eq(seen, 3 * T);
        }
        ur_tape_free(tp);
        run_ctx c = {ps, &cell, {0}};
        memcpy(c.x, x, sizeof c.x);
        /* Step 2e-2: the layer norm's curvature makes 3e-2's truncation error reach 0.3%, and
         * at 1e-2 the forward's float noise (about 2e-7 of the loss, divided by the step) is
         * the whole tolerance of a 4e-4 gradient (worst ratio 1.04 under UR_ISA=generic on an
         * AVX-512 Xeon). Measured worst ratios at 2e-2: 0.62 (generic), 0.60 (AVX2, AVX-512). */
        ur_assert_gradcheck(ps, run_loss, &c, 2e-2, 1e-5, 1e-3);
        ur_params_free(ps);
    }
    /* Options that do not belong to the cell are errors. */
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 1);
    ur_cell cell;
    ck_assert_int_eq(ur_lstm_cell_ex(&cell, ps, "x", IN, H, &(ur_cell_opts){.gru_reset_before = 1}, &rng), -1);
    ck_assert_msg(strstr(ur_model_error(), "not an option of the LSTM"), "%s", ur_model_error());
    ck_assert_int_eq(ur_gru_cell_ex(&cell, ps, "y", IN, H, &(ur_cell_opts){.peephole = 1}, &rng), -1);
    ck_assert_msg(strstr(ur_model_error(), "not an option of the GRU"), "%s", ur_model_error());
    ur_params_free(ps);
}
END_TEST

START_TEST(test_gru_ln)
{
    ur_params *ps = ur_params_new();
    ur_rng rng;
    ur_rng_seed(&rng, 41);
    ur_cell cell;
    ck_assert_int_eq(ur_gru_cell_ex(&cell, ps, "g", IN, H, &(ur_cell_opts){.layer_norm = 1}, &rng), 0);
    ck_assert_str_eq(cell.kind, "gru-ln");
    ck_assert_int_eq(cell.n_params, 6);
    for (int j = 4; j < 6; j++)
        for (size_t e = 0; e < ur_numel(cell.p[j]); e++) cell.p[j]->val[e] += 0.3f * ur_rng_uniform(&rng) - 0.15f;
    float x[T * B * IN];
    for (int j = 0; j < T * B * IN; j++) x[j] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
    ur_tape *tp = ur_tape_new(0);
    ur_seq seq;
    ck_assert_int_eq(ur_unroll(tp, &cell, ur_input_from(tp, T * B, IN, x), T, (ur_state){0}, 0, &seq), 0);
    const float *Wx = cell.p[0]->val, *bx = cell.p[1]->val, *Wh = cell.p[2]->val, *bh = cell.p[3]->val;
    const float *gx = cell.p[4]->val, *gh = cell.p[5]->val;
    double h[B * H] = {0};
    for (int t = 0; t < T; t++) {
        double hn[B * H];
        for (int r = 0; r < B; r++) {
            double px[3 * H], ph[3 * H];
            for (int j = 0; j < 3 * H; j++) {
                px[j] = ph[j] = 0;
                for (int k = 0; k < IN; k++) px[j] += (double)x[(t * B + r) * IN + k] * Wx[k * 3 * H + j];
                for (int k = 0; k < H; k++) ph[j] += (double)(float)h[r * H + k] * Wh[k * 3 * H + j];
            }
            ln_row(px, 3 * H, cell.hp[0]);
            ln_row(ph, 3 * H, cell.hp[0]);
            for (int j = 0; j < 3 * H; j++) {
                px[j] = px[j] * gx[j] + bx[j];
                ph[j] = ph[j] * gh[j] + bh[j];
            }
            for (int j = 0; j < H; j++) {
                double rr = sig(px[j] + ph[j]), z = sig(px[H + j] + ph[H + j]);
                double n = tanh(px[2 * H + j] + rr * ph[2 * H + j]);
                hn[r * H + j] = (1 - z) * n + z * h[r * H + j];
            }
        }
        memcpy(h, hn, sizeof h);
        for (int j = 0; j < B * H; j++)
            ck_assert_msg(fabs(seq.states[t].h->val[j] - h[j]) < 1e-5, "t %d h[%d] %.7g want %.7g", t,
                          j, seq.states[t].h->val[j], h[j]);
    }
    ur_tape_free(tp);
    run_ctx c = {ps, &cell, {0}};
    memcpy(c.x, x, sizeof c.x);
    /* as for the LSTM's layer norm; worst ratios at 2e-2: 0.37 (generic), 0.31 (AVX2, AVX-512) */
    ur_assert_gradcheck(ps, run_loss, &c, 2e-2, 1e-5, 1e-3);
    ur_params_free(ps);
}
END_TEST

/* ---- Variational dropout --------------------------------------------------------------------- */

typedef struct {
    float x[T][B * IN];       /* in->x at each step */
    float ratio[T][B * H];    /* in->rec[0] / h_{t-1} at each step t > 0 */
} probe_seen;

static ur_state probe_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    probe_seen *seen = cell->user;
    memcpy(seen->x[in->t], in->x->val, sizeof seen->x[0]);
    for (int k = 0; k < B * H; k++)
        seen->ratio[in->t][k] = prev.h->val[k] != 0 ? in->rec[0]->val[k] / prev.h->val[k] : -1;
    ur_tensor *one = ur_input(tp, B, H);
    for (int k = 0; k < B * H; k++) one->val[k] = 1.0f;
    return (ur_state){ur_add(tp, prev.h, one), NULL};
}

typedef struct {
    ur_params *ps;
    ur_cell cell;
    ur_rng rng;
    unsigned seed;
    float x[T * B * IN];
} vd_ctx;

/* A fixed mask: the rng is seeded afresh for every forward. */
static ur_tensor *vd_loss(ur_tape *tp, void *vctx)
{
    vd_ctx *c = vctx;
    ur_rng_seed(&c->rng, c->seed);
    run_ctx r = {c->ps, &c->cell, {0}};
    memcpy(r.x, c->x, sizeof r.x);
    return run_loss(tp, &r);
}

START_TEST(test_variational_dropout)
{
    vd_ctx c = {.seed = 4};
    c.ps = ur_params_new();
    ur_rng_seed(&c.rng, 3);
    ck_assert_int_eq(ur_lstm_cell(&c.cell, c.ps, "l", IN, H, &c.rng), 0);
    for (int k = 0; k < T * B * IN; k++) c.x[k] = 1.0f + (float)(k % 7) * 0.1f; /* no zeros */
    c.cell.in_dropout = 0.5f;
    c.cell.rec_dropout = 0.5f;
    c.cell.rng = &c.rng;
    ur_tape *tp = ur_tape_new(0);
    ur_seq seq;
    ck_assert_int_eq(ur_unroll(tp, &c.cell, ur_input_from(tp, T * B, IN, c.x), T, (ur_state){0}, 0,
                               &seq), 0);
    ur_tape_reset(tp);
    /* A probe cell shows what the unroll hands its step: the masked input in in->x, and in
     * in->rec[0] = mask * h_{t-1} (U = I). h grows by 1 per step, so h_{t-1} > 0 for t > 0. */
    probe_seen seen = {0};
    ur_params *pp = ur_params_new();
    ur_tensor *I = ur_params_add(pp, "I", H, H);
    ur_init_identity(I, 1.0f);
    ur_cell probe = {.kind = "probe", .step = probe_step, .in_dim = IN, .hidden = H, .n_rec = 1,
                     .user = &seen, .in_dropout = 0.5f, .rec_dropout = 0.25f, .rng = &c.rng};
    probe.rec[0] = (ur_cell_rec){I, NULL, -1};
    ck_assert_int_eq(ur_unroll(tp, &probe, ur_input_from(tp, T * B, IN, c.x), T, (ur_state){0},
                               0, &seq), 0);
    int zeros = 0, differ = 0, rzeros = 0;
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < IN; j++) {
            float m0 = seen.x[0][b * IN + j] / c.x[b * IN + j];
            ck_assert_msg(m0 == 0.0f || fabsf(m0 - 2.0f) < 1e-6f, "input mask %g", m0);
            zeros += m0 == 0.0f;
            for (int t = 1; t < T; t++) /* the same at every step of a sequence */
                ck_assert_float_eq(seen.x[t][b * IN + j] / c.x[(t * B + b) * IN + j], m0);
            if (b > 0 && m0 != seen.x[0][j] / c.x[j]) differ = 1;
        }
        for (int j = 0; j < H; j++) {
            float m1 = seen.ratio[1][b * H + j];
            ck_assert_msg(m1 == 0.0f || fabsf(m1 - 1.0f / 0.75f) < 1e-5f, "state mask %g", m1);
            rzeros += m1 == 0.0f;
            for (int t = 2; t < T; t++) ck_assert_float_eq(seen.ratio[t][b * H + j], m1);
        }
    }
    ck_assert(zeros > 0 && zeros < B * IN && rzeros > 0 && rzeros < B * H);
    ck_assert_msg(differ, "every sequence got the same mask");
    ur_params_free(pp);
    /* Evaluation mode (p = 0) is the plain cell, bit for bit. */
    c.cell.in_dropout = c.cell.rec_dropout = 0.0f;
    ur_tape_reset(tp);
    ur_unroll(tp, &c.cell, ur_input_from(tp, T * B, IN, c.x), T, (ur_state){0}, 0, &seq);
    ur_cell plain;
    ur_params *ps2 = ur_params_new();
    ur_rng r2;
    ur_rng_seed(&r2, 3);
    ck_assert_int_eq(ur_lstm_cell(&plain, ps2, "l", IN, H, &r2), 0);
    ur_seq s2;
    ur_unroll(tp, &plain, ur_input_from(tp, T * B, IN, c.x), T, (ur_state){0}, 0, &s2);
    ck_assert(memcmp(seq.H->val, s2.H->val, ur_numel(seq.H) * sizeof(float)) == 0);
    ur_params_free(ps2);
    /* Bad settings are errors. */
    c.cell.rec_dropout = 1.0f;
    ur_tape_reset(tp);
    ur_unroll(tp, &c.cell, ur_input_from(tp, T * B, IN, c.x), T, (ur_state){0}, 0, &seq);
    ck_assert_msg(strstr(ur_tape_error(tp), "dropout must be in [0, 1)"), "%s", ur_tape_error(tp));
    c.cell.rec_dropout = 0.3f;
    c.cell.rng = NULL;
    ur_tape_reset(tp);
    ur_unroll(tp, &c.cell, ur_input_from(tp, T * B, IN, c.x), T, (ur_state){0}, 0, &seq);
    ck_assert_msg(strstr(ur_tape_error(tp), "needs the cell's rng"), "%s", ur_tape_error(tp));
    ur_tape_free(tp);
    /* Gradients with a fixed mask. */
    c.cell.rng = &c.rng;
    c.cell.in_dropout = 0.3f;
    ur_assert_gradcheck(c.ps, vd_loss, &c, 0, 1e-5, 1e-3);
    ur_params_free(c.ps);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cell_variants");
    TCase *tc = tcase_create("cell_variants");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gru_cho_forward_in_double);
    tcase_add_test(tc, test_gru_cho_gates_in_double);
    tcase_add_test(tc, test_variational_dropout);
    tcase_add_test(tc, test_lstm_variants);
    tcase_add_test(tc, test_gru_ln);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
