/* LSTM cell, PyTorch's equations and gate order (i, f, g, o), in row-vector form:
 *
 *     z_t = x_t Wx + b + h_{t-1} Wh              (B x 4H; one fused GEMM per step)
 *     [zi | zf | zg | zo] = z_t                  (four H-wide column blocks)
 *     i = sigmoid(zi)   f = sigmoid(zf)   g = tanh(zg)   o = sigmoid(zo)
 *     c_t = f * c_{t-1} + i * g
 *     h_t = o * tanh(c_t)
 *
 * x_t Wx + b does not depend on the recurrence, so the cell declares it as a projection,
 * which the unroll computes for all T steps by one GEMM; it declares h_{t-1} Wh fused into
 * it, which the unroll adds into each step's rows before the step runs, and the gate
 * nonlinearities and the c/h update run as one fused op (ur_lstm_gates, ops/gates.c; its
 * test checks it against the same equations written with ur_sigmoid, ur_tanh, ur_mul and
 * ur_add). Backward through time needs no LSTM code: every op records its own backward. */
#include "models/ur_models.h"

#include "graph/ur_train.h"

#include <math.h>

enum { WX, WH, B };

/* in->proj[0] = z = x Wx + b + h Wh, fused by the unroll: a tensor of the unroll's that
 * nothing else reads, so the gate activations may overwrite it; h goes straight into the
 * unroll's stacked H (in->h_out). */
static ur_state lstm_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)cell;
    ur_state s;
    ur_lstm_gates_into(tp, in->proj[0], prev.c, in->h_out, &s.h, &s.c);
    return s;
}

int ur_lstm_cell(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                 ur_rng *rng)
{
    ur_model_clear_error();
    if (!cell || !ps || !prefix || !rng)
        return ur_model_fail("lstm_cell: cell, params, prefix and rng must not be NULL");
    if (in_dim <= 0 || hidden <= 0)
        return ur_model_fail("lstm_cell(%s): sizes must be positive, got in_dim %d, hidden %d",
                             prefix, in_dim, hidden);
    if (hidden > (1 << 28))
        return ur_model_fail("lstm_cell(%s): hidden %d is too large for 4 gates", prefix, hidden);
    float k = 1.0f / sqrtf((float)hidden);
    *cell = (ur_cell){.kind = "lstm", .step = lstm_step, .in_dim = in_dim, .hidden = hidden,
                      .has_c = 1, .n_params = 3};
    cell->p[WX] = ur_model_param(ps, prefix, "Wx", in_dim, 4 * hidden, k, rng);
    cell->p[WH] = ur_model_param(ps, prefix, "Wh", hidden, 4 * hidden, k, rng);
    cell->p[B] = ur_model_param(ps, prefix, "b", 1, 4 * hidden, k, rng);
    if (!cell->p[WX] || !cell->p[WH] || !cell->p[B])
        return ur_model_fail("lstm_cell(%s): %s", prefix,
                             ur_model_error() ? ur_model_error() : "cannot add parameters");
    cell->n_proj = 1;
    cell->proj[0] = (ur_cell_proj){cell->p[WX], cell->p[B]};
    cell->n_rec = 1;
    cell->rec[0] = (ur_cell_rec){cell->p[WH], NULL, 0};
    for (int j = hidden; j < 2 * hidden; j++) cell->p[B]->val[j] = 1.0f; /* forget gate */
    return 0;
}

/* ---- Layer-normalised and peephole LSTM --------------------------------------------------
 * Ba et al. 2016 (layer_norm): each product is normalised over its 4H row on its own, with a
 * gain (starting at 1), and the cell state before the output tanh, with a gain and a bias:
 *     z = LN(x Wx) gx + LN(h_{t-1} Wh) gh + b
 *     h_t = o * tanh(LN(c_t) gc + bc)
 * so x Wx and h Wh are declared apart (into = -1): each must be normalised before the sum.
 * Gers & Schmidhuber 2000 (peephole): the gates see the cell state through diagonal weights,
 *     i = sigmoid(zi + pi * c_{t-1}),  f = sigmoid(zf + pf * c_{t-1}),  o = sigmoid(zo + po * c_t)
 * Both may be combined. p[] = {Wx, Wh, b}, then with layer_norm {gx (1 x 4H), gh (1 x 4H),
 * gc (1 x H), bc (1 x H)}, then with peephole {pi, pf, po (1 x H each)}. */
/* The parameters after {Wx, Wh, b}, at fixed places: the layer-norm gains and bias first. */
enum { GX = 3, GH, GC, BC };
static int peep_at(int ln) { return ln ? 7 : 3; } /* pi; pf and po follow */

static ur_state lstm_ex(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev,
                        int ln, int peep)
{
    ur_tensor *const *p = cell->p;
    const float eps = cell->hp[0];
    const int pi = peep_at(ln), pf = pi + 1, po = pi + 2;
    ur_tensor *z = in->proj[0];
    if (ln)
        z = ur_add(tp, ur_add(tp, ur_layer_norm(tp, in->proj[0], p[GX], NULL, eps),
                              ur_layer_norm(tp, in->rec[0], p[GH], NULL, eps)),
                   p[B]);
    ur_tensor *g[4];
    ur_state s = {ur_tape_poison(tp), ur_tape_poison(tp)};
    if (ur_split_cols(tp, z, 4, g) != 0) return s;
    ur_tensor *zi = g[0], *zf = g[1];
    if (peep) {
        zi = ur_add(tp, zi, ur_mul(tp, prev.c, p[pi]));
        zf = ur_add(tp, zf, ur_mul(tp, prev.c, p[pf]));
    }
    ur_tensor *c = ur_add(tp, ur_mul(tp, ur_sigmoid(tp, zf), prev.c),
                          ur_mul(tp, ur_sigmoid(tp, zi), ur_tanh(tp, g[2])));
    ur_tensor *zo = peep ? ur_add(tp, g[3], ur_mul(tp, c, p[po])) : g[3];
    ur_tensor *cn = ln ? ur_layer_norm(tp, c, p[GC], p[BC], eps) : c;
    s.h = ur_mul(tp, ur_sigmoid(tp, zo), ur_tanh(tp, cn));
    s.c = c;
    return s;
}

static ur_state lstm_ln_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    return lstm_ex(tp, cell, in, prev, 1, 0);
}
static ur_state lstm_peep_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in,
                               ur_state prev)
{
    return lstm_ex(tp, cell, in, prev, 0, 1);
}
static ur_state lstm_ln_peep_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in,
                                  ur_state prev)
{
    return lstm_ex(tp, cell, in, prev, 1, 1);
}

int ur_lstm_cell_ex(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                    const ur_cell_opts *opts, ur_rng *rng)
{
    ur_cell_opts o = opts ? *opts : (ur_cell_opts){0};
    if (o.gru_reset_before) {
        ur_model_clear_error();
        return ur_model_fail("lstm_cell(%s): gru_reset_before is not an option of the LSTM",
                             prefix ? prefix : "");
    }
    if (!(o.ln_eps >= 0.0f)) {
        ur_model_clear_error();
        return ur_model_fail("lstm_cell(%s): ln_eps must be >= 0, got %g", prefix ? prefix : "",
                             (double)o.ln_eps);
    }
    if (ur_lstm_cell(cell, ps, prefix, in_dim, hidden, rng) != 0) return -1;
    if (!o.layer_norm && !o.peephole) return 0;
    const int ln = o.layer_norm != 0, peep = o.peephole != 0;
    float k = 1.0f / sqrtf((float)hidden);
    int n = 3;
    if (ln) {
        cell->p[GX] = ur_model_param(ps, prefix, "gx", 1, 4 * hidden, 0.0f, rng);
        cell->p[GH] = ur_model_param(ps, prefix, "gh", 1, 4 * hidden, 0.0f, rng);
        cell->p[GC] = ur_model_param(ps, prefix, "gc", 1, hidden, 0.0f, rng);
        cell->p[BC] = ur_model_param(ps, prefix, "bc", 1, hidden, 0.0f, rng);
        n = 7;
    }
    if (peep) {
        cell->p[n] = ur_model_param(ps, prefix, "pi", 1, hidden, k, rng);
        cell->p[n + 1] = ur_model_param(ps, prefix, "pf", 1, hidden, k, rng);
        cell->p[n + 2] = ur_model_param(ps, prefix, "po", 1, hidden, k, rng);
        n += 3;
    }
    for (int j = 3; j < n; j++)
        if (!cell->p[j])
            return ur_model_fail("lstm_cell(%s): %s", prefix,
                                 ur_model_error() ? ur_model_error() : "cannot add parameters");
    if (ln) {
        ur_init_constant(cell->p[GX], 1.0f);
        ur_init_constant(cell->p[GH], 1.0f);
        ur_init_constant(cell->p[GC], 1.0f);
        cell->rec[0].into = -1; /* h Wh is normalised on its own */
        cell->proj[0].b = NULL; /* b joins after the norms */
    }
    cell->n_params = n;
    cell->kind = ln && peep ? "lstm-ln-peephole" : ln ? "lstm-ln" : "lstm-peephole";
    cell->step = ln && peep ? lstm_ln_peep_step : ln ? lstm_ln_step : lstm_peep_step;
    cell->hp[0] = o.ln_eps > 0.0f ? o.ln_eps : 1e-5f;
    return 0;
}
