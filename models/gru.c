/* GRU cell, PyTorch's equations and gate order (r, z, n), in row-vector form:
 *
 *     [xr | xz | xn] = x_t Wx + bx                 (all T steps by one GEMM before the loop)
 *     [hr | hz | hn] = h_{t-1} Wh + bh             (one fused GEMM per step, B x 3H)
 *     r = sigmoid(xr + hr)      z = sigmoid(xz + hz)
 *     n = tanh(xn + r * hn)     (the reset gate scales h_{t-1} Wn + bn, as PyTorch does)
 *     h_t = (1 - z) * n + z * h_{t-1}
 *
 * bh's r and z blocks duplicate bx's; both are kept so weights map one to one onto
 * torch.nn.GRU (bias_ih, bias_hh). The element-wise part is one fused op (ur_gru_gates;
 * tests/test_kernels checks it against these equations written with generic ops). */
#include "models/ur_models.h"

#include "graph/ur_train.h"

#include <math.h>

enum { WX, BX, WH, BH };

/* in->proj[0] = x Wx + bx and in->rec[0] = h Wh + bh, both from the unroll, which made them
 * for this step alone: the fused gates (ops/gates.c) overwrite the first with the activations
 * and write h into the unroll's stacked H (in->h_out). From ur_cell_step, where proj[0] is
 * also a temporary, h is a new tensor. */
static ur_state gru_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)cell;
    return (ur_state){ur_gru_gates(tp, in->proj[0], in->rec[0], prev.h, in->h_out), NULL};
}

/* Cho et al. 2014: the reset gate scales h_{t-1} before its product,
 *     [xr | xz | xn] = x_t Wx + bx,   [hr | hz] = h_{t-1} Wh + bh   (declared, batched)
 *     r = sigmoid(xr + hr),  z = sigmoid(xz + hz)
 *     n = tanh(xn + (r * h_{t-1}) Un)  (r * h is new at every step: a per-step product)
 *     h_t = (1 - z) * n + z * h_{t-1}
 * in one fused op (ur_gru_cho_gates, ops/gates.c), which overwrites both of the unroll's
 * temporaries and keeps only r * h_{t-1} besides [r | z | n]; tests/test_kernels checks it
 * against these equations written with generic ops. */
static ur_state gru_cho_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in,
                             ur_state prev)
{
    return (ur_state){ur_gru_cho_gates(tp, in->proj[0], in->rec[0], prev.h, cell->p[4], in->h_out),
                      NULL};
}

/* Layer-normalised GRU (Ba et al. 2016): each product normalised over its 3H row, with its
 * own gain (starting at 1), before its bias:
 *     [xr | xz | xn] = LN(x_t Wx) gx + bx,   [hr | hz | hn] = LN(h_{t-1} Wh) gh + bh
 * then the GRU's equations as above. Both products are declared without bias. */
static ur_state gru_ln_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    ur_tensor *const *p = cell->p;
    const float eps = cell->hp[0];
    ur_step_in n = *in;
    n.proj[0] = ur_layer_norm(tp, in->proj[0], p[4], p[BX], eps);
    n.rec[0] = ur_layer_norm(tp, in->rec[0], p[5], p[BH], eps);
    return gru_step(tp, cell, &n, prev);
}

/* The parameters and declarations of the PyTorch GRU (cho = 0) or of Cho et al.'s (cho = 1,
 * whose Wh and bh cover r and z only, with Un for n). */
static int gru_build(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                     int cho, ur_rng *rng)
{
    if (!cell || !ps || !prefix || !rng)
        return ur_model_fail("gru_cell: cell, params, prefix and rng must not be NULL");
    if (in_dim <= 0 || hidden <= 0)
        return ur_model_fail("gru_cell(%s): sizes must be positive, got in_dim %d, hidden %d",
                             prefix, in_dim, hidden);
    if (hidden > (1 << 28))
        return ur_model_fail("gru_cell(%s): hidden %d is too large for 3 gates", prefix, hidden);
    float k = 1.0f / sqrtf((float)hidden);
    const int hw = cho ? 2 * hidden : 3 * hidden; /* width of h Wh + bh */
    *cell = (ur_cell){.kind = cho ? "gru-cho" : "gru", .step = cho ? gru_cho_step : gru_step,
                      .in_dim = in_dim, .hidden = hidden, .n_params = cho ? 5 : 4};
    cell->p[WX] = ur_model_param(ps, prefix, "Wx", in_dim, 3 * hidden, k, rng);
    cell->p[BX] = ur_model_param(ps, prefix, "bx", 1, 3 * hidden, k, rng);
    cell->p[WH] = ur_model_param(ps, prefix, "Wh", hidden, hw, k, rng);
    cell->p[BH] = ur_model_param(ps, prefix, "bh", 1, hw, k, rng);
    if (cho) cell->p[4] = ur_model_param(ps, prefix, "Un", hidden, hidden, k, rng);
    for (int j = 0; j < cell->n_params; j++)
        if (!cell->p[j])
            return ur_model_fail("gru_cell(%s): %s", prefix,
                                 ur_model_error() ? ur_model_error() : "cannot add parameters");
    cell->n_proj = 1;
    cell->proj[0] = (ur_cell_proj){cell->p[WX], cell->p[BX]};
    cell->n_rec = 1;
    cell->rec[0] = (ur_cell_rec){cell->p[WH], cell->p[BH], -1};
    return 0;
}

int ur_gru_cell(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                ur_rng *rng)
{
    ur_model_clear_error();
    return gru_build(cell, ps, prefix, in_dim, hidden, 0, rng);
}

int ur_gru_cell_ex(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                   const ur_cell_opts *opts, ur_rng *rng)
{
    ur_model_clear_error();
    ur_cell_opts o = opts ? *opts : (ur_cell_opts){0};
    if (o.peephole || (o.layer_norm && o.gru_reset_before) || !(o.ln_eps >= 0.0f))
        return ur_model_fail("gru_cell(%s): %s", prefix ? prefix : "",
                             o.peephole ? "peephole is not an option of the GRU"
                             : o.layer_norm && o.gru_reset_before
                                 ? "layer_norm is offered for the PyTorch form only"
                                 : "ln_eps must be >= 0");
    if (gru_build(cell, ps, prefix, in_dim, hidden, o.gru_reset_before != 0, rng) != 0) return -1;
    if (!o.layer_norm) return 0;
    cell->p[4] = ur_model_param(ps, prefix, "gx", 1, 3 * hidden, 0.0f, rng);
    cell->p[5] = ur_model_param(ps, prefix, "gh", 1, 3 * hidden, 0.0f, rng);
    if (!cell->p[4] || !cell->p[5])
        return ur_model_fail("gru_cell(%s): %s", prefix,
                             ur_model_error() ? ur_model_error() : "cannot add parameters");
    ur_init_constant(cell->p[4], 1.0f);
    ur_init_constant(cell->p[5], 1.0f);
    cell->kind = "gru-ln";
    cell->step = gru_ln_step;
    cell->n_params = 6;
    cell->proj[0].b = NULL; /* the biases join after the norms */
    cell->rec[0].b = NULL;
    cell->hp[0] = o.ln_eps > 0.0f ? o.ln_eps : 1e-5f;
    return 0;
}
