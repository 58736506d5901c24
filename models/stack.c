/* Stacked recurrent layers: layer l reads the time-stacked h of layer l - 1 (T*B x H_{l-1}),
 * each layer one ur_unroll, so each layer's input projection is still one GEMM over all T
 * steps. Inverted dropout, if any, sits between layers (on the whole stacked H), not after
 * the top layer. */
#include "models/ur_models.h"

#include <string.h>

int ur_stack_init(ur_stack *st, int layers, const ur_cell *cells, float dropout, ur_rng *rng)
{
    ur_model_clear_error();
    if (!st || !cells) return ur_model_fail("stack_init: stack and cells must not be NULL");
    if (layers < 1 || layers > UR_STACK_MAX_LAYERS)
        return ur_model_fail("stack_init: %d layers, expected 1 to %d", layers,
                             UR_STACK_MAX_LAYERS);
    if (!(dropout >= 0.0f && dropout < 1.0f))
        return ur_model_fail("stack_init: dropout %g is outside [0, 1)", dropout);
    if (dropout > 0.0f && !rng) return ur_model_fail("stack_init: dropout %g needs an rng", dropout);
    for (int l = 0; l < layers; l++) {
        if (!cells[l].step)
            return ur_model_fail("stack_init: layer %d has no step function", l);
        if (l > 0 && cells[l].in_dim != cells[l - 1].hidden)
            return ur_model_fail("stack_init: layer %d (%s) takes %d features but layer %d (%s) "
                                 "gives %d", l, cells[l].kind, cells[l].in_dim, l - 1,
                                 cells[l - 1].kind, cells[l - 1].hidden);
    }
    memset(st, 0, sizeof *st);
    st->layers = layers;
    for (int l = 0; l < layers; l++) st->cell[l] = &cells[l];
    st->dropout = dropout;
    st->rng = rng;
    return 0;
}

static int stack_unroll(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                        const ur_state *init, const ur_unroll_opts *opts,
                        const ur_checkpoint *ck, ur_stack_seq *out);

int ur_stack_unroll(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                    const ur_state *init, ur_stack_seq *out)
{
    return stack_unroll(tp, st, x_all, T, init, NULL, NULL, out);
}

int ur_stack_unroll_checkpointed(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                                 const ur_state *init, const ur_checkpoint *ck,
                                 ur_stack_seq *out)
{
    return stack_unroll(tp, st, x_all, T, init, NULL, ck, out);
}

int ur_stack_unroll_with(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                         const ur_state *init, const ur_unroll_opts *opts, ur_stack_seq *out)
{
    return stack_unroll(tp, st, x_all, T, init, opts, NULL, out);
}

/* The stacked unroll with options (lengths, reverse, checkpointing) and/or ck (which
 * overrides opts->checkpoint). */
static int stack_unroll(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                        const ur_state *init, const ur_unroll_opts *opts,
                        const ur_checkpoint *ck, ur_stack_seq *out)
{
    if (!ur_op_begin(tp, "stack_unroll", 1, x_all)) return -1;
    if (!st || !out) {
        ur_tape_fail(tp, "stack_unroll: the stack and the output must not be NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (st->layers < 1 || st->layers > UR_STACK_MAX_LAYERS) {
        ur_tape_fail(tp, "stack_unroll: %d layers, expected 1 to %d", st->layers,
                     UR_STACK_MAX_LAYERS);
        return -1;
    }
    if (T <= 0 || x_all->rows % T != 0) {
        ur_tape_fail(tp, "stack_unroll: %d steps do not divide the %dx%d input", T, x_all->rows,
                     x_all->cols);
        return -1;
    }
    int B = x_all->rows / T;
    for (int l = 0; l < st->layers; l++) {
        const ur_cell *c = st->cell[l];
        int width = l == 0 ? x_all->cols : st->cell[l - 1]->hidden;
        if (!c || c->in_dim != width) {
            ur_tape_fail(tp, "stack_unroll: layer %d (%s) takes %d features but its input is "
                         "%dx%d", l, c ? c->kind : "NULL cell", c ? c->in_dim : 0, x_all->rows,
                         width);
            return -1;
        }
        const ur_tensor *given[2] = {init ? init[l].h : NULL, init ? init[l].c : NULL};
        for (int k = 0; k < 2; k++)
            if (given[k] && (given[k]->rows != B || given[k]->cols != c->hidden)) {
                ur_tape_fail(tp, "stack_unroll: layer %d (%s) initial %s is %dx%d, expected "
                             "%dx%d", l, c->kind, k ? "c" : "h", given[k]->rows, given[k]->cols,
                             B, c->hidden);
                return -1;
            }
    }
    ur_unroll_opts o = {0};
    if (opts) o = *opts;
    if (ck) o.checkpoint = ck;
    ur_tensor *x = x_all;
    for (int l = 0; l < st->layers; l++) {
        ur_state s0 = init ? init[l] : (ur_state){NULL, NULL};
        if (l > 0) x = ur_dropout(tp, x, st->dropout, st->rng);
        ur_unroll_opts lo = o;
        ur_checkpoint layer_ck;
        if (o.checkpoint) { /* only the top layer may drop its H: the others feed the next */
            layer_ck = *o.checkpoint;
            if (l + 1 < st->layers) layer_ck.last_only = 0;
            lo.checkpoint = &layer_ck;
        }
        if (ur_unroll_with(tp, st->cell[l], x, T, s0, &lo, &out->layer[l]) != 0) return -1;
        out->last[l] = out->layer[l].last;
        x = out->layer[l].H;
    }
    out->layers = st->layers;
    out->H = x;
    out->mask = out->layer[0].mask;
    return 0;
}
