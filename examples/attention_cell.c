/* Graph code (doc/graph-code.md): two cells that are not built in, from public ops only.
 * A layer-normalised LSTM (Ba, Kiros & Hinton 2016) encodes a string; a decoder with Luong
 * dot-product attention (Luong, Pham & Manning 2015) reads it back reversed. Both cells are
 * gradient-checked by finite differences, then the pair learns to reverse strings. Exits 0
 * only if both checks passed and the loss fell to a fifth of its first value. */
#include <stdio.h>

#include "unroll.h"

/* T = string length, B = strings per batch, K = symbols (+ <start> = K), E = embedding
 * size, H = hidden units of both cells. */
enum { T = 5, B = 16, K = 6, START = K, E = 6, H = 12 };
enum { WX, WH, BIAS, GX, GH, GC, BC }; /* the layer-norm LSTM's cell->p */
enum { U, W, BD, WC };                 /* the attention decoder's cell->p */

/* One step of the layer-normalised LSTM. The products x Wx and h Wh come in apart (proj[0],
 * rec[0]) so that each is normalised with its own gain before they are added:
 *     [zi | zf | zg | zo] = LN(x_t Wx) gx + LN(h_{t-1} Wh) gh + b            (B x 4H)
 *     c_t = sigmoid(zf) c_{t-1} + sigmoid(zi) tanh(zg)
 *     h_t = sigmoid(zo) tanh(LN(c_t) gc + bc) */
static ur_state ln_lstm_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in,
                             ur_state prev)
{
    ur_tensor *const *p = cell->p;
    ur_tensor *zx = ur_layer_norm(tp, in->proj[0], p[GX], NULL, 1e-5f);
    ur_tensor *zh = ur_layer_norm(tp, in->rec[0], p[GH], NULL, 1e-5f);
    ur_tensor *z = ur_add(tp, ur_add(tp, zx, zh), p[BIAS]), *g[4];
    if (ur_split_cols(tp, z, 4, g) != 0) return (ur_state){ur_tape_poison(tp), NULL};
    ur_tensor *c = ur_add(tp, ur_mul(tp, ur_sigmoid(tp, g[1]), prev.c),
                          ur_mul(tp, ur_sigmoid(tp, g[0]), ur_tanh(tp, g[2])));
    ur_tensor *h = ur_mul(tp, ur_sigmoid(tp, g[3]),
                          ur_tanh(tp, ur_layer_norm(tp, c, p[GC], p[BC], 1e-5f)));
    return (ur_state){h, c};
}

/* The constructor declares x Wx (no bias) and h Wh (kept apart: into = -1). Gains start at 1,
 * biases at 0 except the forget gate's, at 1. Ba et al.'s separate biases of LN(x Wx) and
 * LN(h Wh) would only add to b, so there is one. */
static int ln_lstm_cell(ur_cell *cell, ur_params *ps, const char *pre, ur_rng *rng)
{
    *cell = (ur_cell){.kind = "ln-lstm", .step = ln_lstm_step, .in_dim = E, .hidden = H,
                      .has_c = 1, .n_params = 7};
    float k = 1.0f; /* the norms undo any scale of Wx and Wh; +-1 keeps the loss smooth in them */
    ur_tensor **p = cell->p;
    p[WX] = ur_model_param(ps, pre, "Wx", E, 4 * H, k, rng);
    p[WH] = ur_model_param(ps, pre, "Wh", H, 4 * H, k, rng);
    p[BIAS] = ur_model_param(ps, pre, "b", 1, 4 * H, 0.0f, rng);
    p[GX] = ur_model_param(ps, pre, "gx", 1, 4 * H, 0.0f, rng);
    p[GH] = ur_model_param(ps, pre, "gh", 1, 4 * H, 0.0f, rng);
    p[GC] = ur_model_param(ps, pre, "gc", 1, H, 0.0f, rng);
    p[BC] = ur_model_param(ps, pre, "bc", 1, H, 0.0f, rng);
    for (int j = 0; j < 7; j++) if (!p[j]) return -1;
    cell->n_proj = 1; /* x Wx, for all T steps in one GEMM */
    cell->proj[0] = (ur_cell_proj){p[WX], NULL};
    cell->n_rec = 1;  /* h Wh, apart in rec[0]; its gradient in one GEMM over the steps */
    cell->rec[0] = (ur_cell_rec){p[WH], NULL, -1};
    for (int j = H; j < 2 * H; j++) p[BIAS]->val[j] = 1.0f; /* forget gate */
    ur_init_constant(p[GX], 1.0f);
    ur_init_constant(p[GH], 1.0f);
    return ur_init_constant(p[GC], 1.0f);
}

/* What the decoder attends to: the encoder's states of the current forward pass, batch-major
 * (B*T x H: rows [b*T, (b+1)*T) are string b's T states). The cell points at it (user). */
typedef struct memory { ur_tensor *enc; } memory;

/* One step of the attention decoder, Luong's global attention with the dot score and input
 * feeding. Its state is Luong's attentional vector h~, which is fed back into the next step:
 *     d_t   = tanh(x_t U + b + h~_{t-1} W)                      (B x H)
 *     a_t   = softmax_j(d_t . e_j)   over each string's T states (B x T)
 *     ctx_t = sum_j a_tj e_j                                      (B x H)
 *     h~_t  = tanh([d_t | ctx_t] Wc)                              (B x H) */
static ur_state attention_step(ur_tape *tp, const ur_cell *cell, const ur_step_in *in,
                               ur_state prev)
{
    (void)prev; /* h~_{t-1} enters through the declared product, in proj[0] */
    ur_tensor *enc = ((const memory *)cell->user)->enc;
    ur_tensor *d = ur_tanh(tp, in->proj[0]);
    int n = d->rows; /* strings: block b of d is its row b, block b of enc its T states */
    ur_tensor *a = ur_softmax(tp, ur_block_matmul(tp, d, enc, n, 0, 1));
    ur_tensor *dc[2] = {d, ur_block_matmul(tp, a, enc, n, 0, 0)};
    return (ur_state){ur_tanh(tp, ur_matmul(tp, ur_concat_cols(tp, 2, dc), cell->p[WC], 0, 0)),
                      NULL};
}

static int attention_cell(ur_cell *cell, ur_params *ps, memory *mem, ur_rng *rng)
{
    *cell = (ur_cell){.kind = "attention", .step = attention_step, .in_dim = E, .hidden = H,
                      .n_params = 4, .user = mem};
    cell->p[U] = ur_model_param(ps, "dec", "U", E, H, 0.4f, rng);
    cell->p[W] = ur_model_param(ps, "dec", "W", H, H, 0.3f, rng);
    cell->p[BD] = ur_model_param(ps, "dec", "b", 1, H, 0.0f, rng);
    cell->p[WC] = ur_model_param(ps, "dec", "Wc", 2 * H, H, 0.3f, rng);
    if (!cell->p[U] || !cell->p[W] || !cell->p[BD] || !cell->p[WC]) return -1;
    cell->n_proj = 1; /* x U + b, all steps at once */
    cell->proj[0] = (ur_cell_proj){cell->p[U], cell->p[BD]};
    cell->n_rec = 1;  /* h~ W, added into projection 0 */
    cell->rec[0] = (ur_cell_rec){cell->p[W], NULL, 0};
    return 0;
}

typedef struct model {
    ur_params *ps;
    ur_tensor *emb, *V, *c;  /* (K+1) x E, shared by both sides; head H x K, 1 x K */
    ur_cell enc, dec;
    memory mem;
    int src[T * B], dec_in[T * B], tgt[T * B]; /* time-stacked ids: row t*B + b */
    float y[T * B * H];      /* regression targets of the encoder-only check */
} model;

/* The encoder-decoder's loss: encode, put the states batch-major, decode with teacher forcing
 * (the decoder reads <start>, y_0, ..., y_{T-2}), a head on every step, cross-entropy. */
static ur_tensor *seq2seq_loss(ur_tape *tp, void *ctx)
{
    model *m = ctx;
    ur_seq e, d;
    ur_unroll(tp, &m->enc, ur_embedding(tp, m->emb, m->src, T * B), T, (ur_state){NULL, NULL},
              0, &e);
    m->mem.enc = ur_time_to_batch(tp, e.H, T);
    ur_unroll(tp, &m->dec, ur_embedding(tp, m->emb, m->dec_in, T * B), T,
              (ur_state){e.last.h, NULL}, 0, &d);
    return ur_softmax_nll(tp, ur_linear(tp, d.H, m->V, m->c), m->tgt, UR_MEAN);
}

/* The layer-norm LSTM alone: its states against random targets (mean squared error). */
static ur_tensor *encoder_loss(ur_tape *tp, void *ctx)
{
    model *m = ctx;
    ur_seq e;
    ur_unroll(tp, &m->enc, ur_embedding(tp, m->emb, m->src, T * B), T, (ur_state){NULL, NULL},
              0, &e);
    return ur_mse(tp, e.H, ur_input_from(tp, T * B, H, m->y), UR_MEAN);
}

/* B new random strings and their reversals, time-stacked. */
static void draw(model *m, ur_rng *rng)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) m->src[t * B + b] = (int)ur_rng_below(rng, K);
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            m->tgt[t * B + b] = m->src[(T - 1 - t) * B + b];
            m->dec_in[t * B + b] = t == 0 ? START : m->tgt[(t - 1) * B + b];
        }
}

/* Checks f's gradients with the library's criterion, |a - n| <= atol + rtol |n|, at a step of
 * 3e-3 (the default 3e-2 is too coarse for layer norm: see the page), and prints the figures;
 * 1 if every scalar passed. */
static int check(const char *what, ur_loss_fn f, model *m)
{
    ur_gradcheck_opts opts = {.eps = 3e-3, .atol = 1e-5, .rtol = 1e-3};
    ur_gradcheck_result gc;
    int ok = ur_gradcheck(m->ps, f, m, &opts, &gc) == 0 && gc.passed;
    printf("gradcheck %s: %s, %d scalars, max |a - n| %.2g, worst %s[%d,%d] at %.2g of the "
           "tolerance%s\n", what, ok ? "passed" : "FAILED", gc.checked, gc.max_abs,
           gc.worst.param, gc.worst.row, gc.worst.col, gc.worst.ratio, gc.error);
    ur_gradcheck_result_free(&gc);
    return ok;
}

int main(void)
{
    static model m;
    ur_rng rng;
    ur_rng_seed(&rng, 7);
    ur_tape *tp = ur_tape_new(0);
    if (!(m.ps = ur_params_new()) || !tp) return 1;
    m.emb = ur_model_param(m.ps, "embed", "E", K + 1, E, 2.0f, &rng); /* +-2: see the page */
    if (!m.emb || ln_lstm_cell(&m.enc, m.ps, "enc", &rng) != 0 ||
        attention_cell(&m.dec, m.ps, &m.mem, &rng) != 0)
        return 1;
    m.V = ur_model_param(m.ps, "head", "V", H, K, 0.3f, &rng);
    m.c = ur_model_param(m.ps, "head", "c", 1, K, 0.0f, &rng);
    if (!m.V || !m.c) return 1;
    draw(&m, &rng);
    for (int k = 0; k < T * B * H; k++) m.y[k] = ur_rng_uniform(&rng) - 0.5f;
    int ok = check("layer-norm LSTM", encoder_loss, &m);
    ok &= check("encoder + attention decoder", seq2seq_loss, &m);

    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
    oc.lr = 0.01f;
    char err[128];
    ur_optim *opt = ur_optim_new(m.ps, &oc, err, sizeof err);
    if (!opt) { fprintf(stderr, "%s\n", err); return 1; }
    double first = 0, last = 0;
    for (int step = 0; step < 600; step++) {
        draw(&m, &rng);
        ur_tape_reset(tp);
        ur_tensor *loss = seq2seq_loss(tp, &m);
        ur_params_zero_grad(m.ps);
        if (ur_backward(tp, loss) != 0) { fprintf(stderr, "%s\n", ur_tape_error(tp)); return 1; }
        ur_clip_grad_norm(m.ps, 5.0);
        if (ur_optim_step(opt) != 0) { fprintf(stderr, "%s\n", ur_optim_error(opt)); return 1; }
        if (step < 10) first += loss->val[0] / 10;
        if (step >= 590) last += loss->val[0] / 10;
    }
    printf("reversal loss %.4f -> %.4f (mean of the first and last 10 of 600 steps)\n", first,
           last);
    ur_optim_free(opt);
    ur_tape_free(tp);
    ur_params_free(m.ps);
    return ok && last < 0.2 * first ? 0 : 1;
}
