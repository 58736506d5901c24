/* Elman cell (the seeds' equations):
 *     a_t = b + W h_{t-1} + U x_t,     h_t = tanh(a_t)
 * in row-vector form a_t = x_t U + h_{t-1} W + b. The input term x_t U + b does not depend on
 * the recurrence, so it is projected for all T steps by one GEMM; each step adds h W. */
#include "models/ur_models.h"

#include <math.h>
#include <stdio.h>

enum { U, W, B };

/* in->proj[0] = x U + b + h W, fused by the unroll; h goes straight into the unroll's
 * stacked H (in->h_out; NULL from ur_cell_step: a new tensor), which the declaration
 * h_over lays over the projection's own rows: tanh's backward needs only h, so
 * the pre-activations need no memory of their own. */
static ur_state elman_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)cell;
    (void)prev;
    return (ur_state){ur_tanh_into(tp, in->proj[0], in->h_out), NULL};
}

/* Adds "<prefix>.<name>" uniform in [-k, k]. */
ur_tensor *ur_model_param(ur_params *ps, const char *prefix, const char *name, int rows, int cols,
                          float k, ur_rng *rng)
{
    char full[64];
    if (!ps || !prefix || !name || !rng) {
        if (!ur_model_error()) ur_model_fail("model_param: params, prefix, name and rng must not be NULL");
        return NULL;
    }
    int len = snprintf(full, sizeof full, "%s.%s", prefix, name);
    if (len < 0 || len >= (int)sizeof full) {
        if (!ur_model_error())
            ur_model_fail("model_param: name \"%s.%s\" has %d bytes, at most %d are allowed",
                          prefix, name, len, (int)sizeof full - 1);
        return NULL;
    }
    ur_tensor *t = ur_params_add(ps, full, rows, cols);
    if (!t) {
        if (!ur_model_error()) ur_model_fail("%s", ur_params_error(ps));
        return NULL;
    }
    for (size_t j = 0; j < ur_numel(t); j++) t->val[j] = k * (2.0f * ur_rng_uniform(rng) - 1.0f);
    return t;
}

int ur_elman_cell(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                  ur_rng *rng)
{
    ur_model_clear_error();
    if (!cell || !ps || !prefix || !rng)
        return ur_model_fail("elman_cell: cell, params, prefix and rng must not be NULL");
    if (in_dim <= 0 || hidden <= 0)
        return ur_model_fail("elman_cell(%s): sizes must be positive, got in_dim %d, hidden %d",
                             prefix, in_dim, hidden);
    float k = 1.0f / sqrtf((float)hidden);
    *cell = (ur_cell){.kind = "elman", .step = elman_step, .in_dim = in_dim, .hidden = hidden,
                      .n_params = 3, .h_over = 1};
    cell->p[U] = ur_model_param(ps, prefix, "U", in_dim, hidden, k, rng);
    cell->p[W] = ur_model_param(ps, prefix, "W", hidden, hidden, k, rng);
    cell->p[B] = ur_model_param(ps, prefix, "b", 1, hidden, k, rng);
    if (!cell->p[U] || !cell->p[W] || !cell->p[B])
        return ur_model_fail("elman_cell(%s): %s", prefix,
                             ur_model_error() ? ur_model_error() : "cannot add parameters");
    cell->n_proj = 1;
    cell->proj[0] = (ur_cell_proj){cell->p[U], cell->p[B]};
    cell->n_rec = 1;
    cell->rec[0] = (ur_cell_rec){cell->p[W], NULL, 0};
    return 0;
}
