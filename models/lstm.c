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
