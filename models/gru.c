/* GRU cell, PyTorch's equations and gate order (r, z, n), in row-vector form:
 *
 *     [xr | xz | xn] = x_t Wx + bx                 (all T steps by one GEMM before the loop)
 *     [hr | hz | hn] = h_{t-1} Wh + bh             (one fused GEMM per step, B x 3H)
 *     r = sigmoid(xr + hr)      z = sigmoid(xz + hz)
 *     n = tanh(xn + r * hn)     (the reset gate scales h_{t-1} Wn + bn, as PyTorch does)
 *     h_t = (1 - z) * n + z * h_{t-1}
 *
 * bh's r and z blocks duplicate bx's; both are kept so weights map one to one onto
 * torch.nn.GRU (bias_ih, bias_hh). Backward is the ops' own. */
#include "models/ur_models.h"

#include <math.h>

enum { WX, BX, WH, BH };

static ur_tensor *gru_project(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all)
{
    return ur_linear(tp, x_all, cell->p[WX], cell->p[BX]);
}

static ur_state gru_step(ur_tape *tp, const ur_cell *cell, ur_tensor *px, ur_state prev)
{
    ur_state s = {NULL, NULL};
    ur_tensor *x[3], *h[3]; /* r, z, n blocks of the input and the hidden projections */
    ur_tensor *ph = ur_linear(tp, prev.h, cell->p[WH], cell->p[BH]);
    if (ur_split_cols(tp, px, 3, x) != 0 || ur_split_cols(tp, ph, 3, h) != 0) {
        s.h = ur_tape_poison(tp);
        return s;
    }
    ur_tensor *r = ur_sigmoid(tp, ur_add(tp, x[0], h[0]));
    ur_tensor *z = ur_sigmoid(tp, ur_add(tp, x[1], h[1]));
    ur_tensor *n = ur_tanh(tp, ur_add(tp, x[2], ur_mul(tp, r, h[2])));
    s.h = ur_add(tp, ur_mul(tp, ur_one_minus(tp, z), n), ur_mul(tp, z, prev.h));
    return s;
}

int ur_gru_cell(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                ur_rng *rng)
{
    ur_model_clear_error();
    if (!cell || !ps || !prefix || !rng)
        return ur_model_fail("gru_cell: cell, params, prefix and rng must not be NULL");
    if (in_dim <= 0 || hidden <= 0)
        return ur_model_fail("gru_cell(%s): sizes must be positive, got in_dim %d, hidden %d",
                             prefix, in_dim, hidden);
    if (hidden > (1 << 28))
        return ur_model_fail("gru_cell(%s): hidden %d is too large for 3 gates", prefix, hidden);
    float k = 1.0f / sqrtf((float)hidden);
    *cell = (ur_cell){.kind = "gru", .step = gru_step, .project = gru_project,
                      .in_dim = in_dim, .hidden = hidden};
    cell->p[WX] = ur_model_param(ps, prefix, "Wx", in_dim, 3 * hidden, k, rng);
    cell->p[BX] = ur_model_param(ps, prefix, "bx", 1, 3 * hidden, k, rng);
    cell->p[WH] = ur_model_param(ps, prefix, "Wh", hidden, 3 * hidden, k, rng);
    cell->p[BH] = ur_model_param(ps, prefix, "bh", 1, 3 * hidden, k, rng);
    if (!cell->p[WX] || !cell->p[BX] || !cell->p[WH] || !cell->p[BH])
        return ur_model_fail("gru_cell(%s): %s", prefix,
                             ur_model_error() ? ur_model_error() : "cannot add parameters");
    return 0;
}
