/* Tutorial (doc/tutorial.md): a recurrent cell that is not built in, written as graph code.
 * IRNN (Le, Jaitly & Hinton 2015): h_t = relu(x_t U + h_{t-1} W + b), W starts as the
 * identity. Its gradients are checked by finite differences, then it learns the running sum
 * y_t = x_0 + ... + x_t. Exits 0 only if the gradient check passed and the loss fell. */
#include <stdio.h>

#include "unroll.h"

enum { T = 6, B = 8, H = 8 }; /* steps, sequences per batch, hidden units */
enum { U, W, BIAS };          /* which of cell->p is which */

/* One step: h_t = relu(x_t U + b + h_{t-1} W). The sum is in->proj[0], computed by the
 * unroll from what the constructor declares below. */
static ur_state irnn_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in, ur_state prev)
{
    (void)cell;
    (void)prev;
    return (ur_state){ur_relu(tp, in->proj[0]), NULL};
}

static int irnn_cell(ur_cell *cell, ur_params *ps, int in_dim, ur_rng *rng)
{
    *cell = (ur_cell){.kind = "irnn", .step = irnn_step, .in_dim = in_dim, .hidden = H,
                      .n_params = 3};
    cell->p[U] = ur_model_param(ps, "irnn", "U", in_dim, H, 0.5f, rng);
    cell->p[W] = ur_model_param(ps, "irnn", "W", H, H, 0.0f, rng);
    cell->p[BIAS] = ur_model_param(ps, "irnn", "b", 1, H, 0.0f, rng);
    if (!cell->p[U] || !cell->p[W] || !cell->p[BIAS]) return -1;
    cell->n_proj = 1; /* x U + b, for all T steps in one GEMM */
    cell->proj[0] = (ur_cell_proj){cell->p[U], cell->p[BIAS]};
    cell->n_rec = 1;  /* h W, added into projection 0; W's gradient in one GEMM */
    cell->rec[0] = (ur_cell_rec){cell->p[W], NULL, 0};
    return ur_init_identity(cell->p[W], 1.0f); /* W = I: the IRNN's one idea */
}

typedef struct { ur_params *ps; ur_cell cell; ur_tensor *V, *c; float x[T * B], y[T * B]; } model;

/* The whole forward pass: unroll, a linear head on every step, mean squared error. */
static ur_tensor *loss_fn(ur_tape *tp, void *ctx)
{
    model *m = ctx;
    ur_seq seq;
    ur_tensor *x = ur_input_from(tp, T * B, 1, m->x); /* time-stacked: row t*B + b */
    ur_unroll(tp, &m->cell, x, T, (ur_state){NULL, NULL}, 0, &seq); /* errors are sticky: */
    ur_tensor *o = ur_linear(tp, seq.H, m->V, m->c);               /* on failure, ops no-op */
    return ur_mse(tp, o, ur_input_from(tp, T * B, 1, m->y), UR_MEAN);
}

int main(void)
{
    model m = {.ps = ur_params_new()};
    ur_rng rng;
    ur_rng_seed(&rng, 42);
    ur_tape *tp = ur_tape_new(0);
    if (!m.ps || !tp || irnn_cell(&m.cell, m.ps, 1, &rng) != 0) return 1;
    m.V = ur_model_param(m.ps, "head", "V", H, 1, 0.3f, &rng);
    m.c = ur_model_param(m.ps, "head", "c", 1, 1, 0.0f, &rng);
    for (int k = 0; k < T * B; k++) { /* row k - B is the same sequence one step earlier */
        m.x[k] = 2.0f * ur_rng_uniform(&rng) - 1.0f;
        m.y[k] = m.x[k] + (k >= B ? m.y[k - B] : 0.0f);
    }

    /* Checked where relu is smooth: b = 1 puts every relu input at 0.5 or more (|x U| <= 0.5,
     * h >= 0, W = I), far from its kink at 0. Then b goes back to 0 for training. */
    for (int j = 0; j < H; j++) m.cell.p[BIAS]->val[j] = 1.0f;
    ur_gradcheck_opts opts = {.atol = 1e-5, .rtol = 1e-3}; /* pass: |a - n| <= atol + rtol |n| */
    ur_gradcheck_result gc;
    int grad_ok = ur_gradcheck(m.ps, loss_fn, &m, &opts, &gc) == 0 && gc.passed;
    for (int j = 0; j < H; j++) m.cell.p[BIAS]->val[j] = 0.0f;

    float first = 0, last = 0;
    for (int step = 0; step < 300; step++) {
        ur_tape_reset(tp);
        ur_tensor *loss = loss_fn(tp, &m);
        ur_params_zero_grad(m.ps);
        if (ur_backward(tp, loss) != 0) { fprintf(stderr, "%s\n", ur_tape_error(tp)); return 1; }
        last = loss->val[0];
        if (step == 0) first = last;
        for (int k = 0; k < ur_params_count(m.ps); k++) { /* plain SGD: p -= lr dp */
            ur_tensor *p = ur_params_at(m.ps, k);
            for (size_t j = 0; j < ur_numel(p); j++) p->val[j] -= 0.05f * p->grad[j];
        }
    }
    printf("loss %.4f -> %.4f; gradcheck %s, %d scalars, worst %s[%d,%d] at %.2g of the "
           "tolerance%s\n", first, last, grad_ok ? "passed" : "FAILED", gc.checked,
           gc.worst.param, gc.worst.row, gc.worst.col, gc.worst.ratio, gc.error);
    ur_gradcheck_result_free(&gc);
    ur_tape_free(tp);
    ur_params_free(m.ps);
    return last < 0.25f * first && grad_ok ? 0 : 1;
}
