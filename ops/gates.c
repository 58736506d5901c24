/* Fused LSTM gates: the element-wise half of an LSTM step in one pass over B x 4H, instead of
 * eleven small ops (four column copies, four activations, three products and a sum), each
 * with its own tensor and gradient buffer. The recurrence and BPTT stay on the generic tape:
 * this is one op with one backward, like any other.
 *
 *     [zi | zf | zg | zo] = z                         (PyTorch's gate order)
 *     i = sigmoid(zi)  f = sigmoid(zf)  g = tanh(zg)  o = sigmoid(zo)
 *     c = f * c_prev + i * g
 *     h = o * tanh(c)
 *
 * Backward, with tc = tanh(c) recomputed and dh, dc the outputs' gradients:
 *     dC = dc + dh * o * (1 - tc^2)                   (c reaches the loss through h and on)
 *     dzi = dC * g * i (1 - i)        dzf = dC * c_prev * f (1 - f)
 *     dzg = dC * i * (1 - g^2)        dzo = dh * tc * o (1 - o)
 *     dc_prev += dC * f
 */
#include "ops/ur_ops.h"

#include "ops/fast.h"

/* One row: a receives the activations [i | f | g | o]. */
/* a may be z itself (in place): every a[j] depends only on z[j]. */
UR_VECTOR_CLONES static void gates_row(int H, const float *z, const float *restrict cp, float *a,
                                       float *restrict c, float *restrict h)
{
    for (int j = 0; j < 2 * H; j++) a[j] = ur_sigmoid1(z[j]);
    for (int j = 2 * H; j < 3 * H; j++) a[j] = ur_tanh1(z[j]);
    for (int j = 3 * H; j < 4 * H; j++) a[j] = ur_sigmoid1(z[j]);
    for (int j = 0; j < H; j++) {
        c[j] = a[H + j] * cp[j] + a[j] * a[2 * H + j];
        h[j] = a[3 * H + j] * ur_tanh1(c[j]);
    }
}

UR_VECTOR_CLONES static void gates_row_backward(int H, const float *restrict a,
                                                const float *restrict cp, const float *restrict c,
                                                const float *restrict dh, const float *restrict dc,
                                                float *restrict dz, float *restrict dcp)
{
    const float *i = a, *f = a + H, *g = a + 2 * H, *o = a + 3 * H;
    for (int j = 0; j < H; j++) {
        float tc = ur_tanh1(c[j]);
        float dC = dc[j] + dh[j] * o[j] * (1.0f - tc * tc);
        dz[j] += dC * g[j] * i[j] * (1.0f - i[j]);
        dz[H + j] += dC * cp[j] * f[j] * (1.0f - f[j]);
        dz[2 * H + j] += dC * i[j] * (1.0f - g[j] * g[j]);
        dz[3 * H + j] += dh[j] * tc * o[j] * (1.0f - o[j]);
        if (dcp) dcp[j] += dC * f[j];
    }
}

static void lstm_gates_backward(ur_node *n)
{
    ur_tensor *z = n->in[0], *cp = n->in[1], *h = n->out, *c = n->out2;
    const float *acts = n->aux;
    int H = h->cols;
    float *dz = z->requires_grad ? ur_grad(z) : NULL;
    float *dcp = cp->requires_grad ? ur_grad(cp) : NULL;
    for (int r = 0; r < h->rows && !dz; r++) { /* z is a constant: only c_prev learns */
        size_t o4 = (size_t)r * 4 * H, o1 = (size_t)r * H;
        for (int j = 0; j < H; j++) {
            float tc = ur_tanh1(c->val[o1 + j]), o = acts[o4 + 3 * H + j];
            float dC = c->grad[o1 + j] + h->grad[o1 + j] * o * (1.0f - tc * tc);
            dcp[o1 + j] += dC * acts[o4 + H + j];
        }
    }
    for (int r = 0; r < h->rows && dz; r++) {
        size_t o4 = (size_t)r * 4 * H, o1 = (size_t)r * H;
        gates_row_backward(H, acts + o4, cp->val + o1, c->val + o1, h->grad + o1, c->grad + o1,
                           dz + o4, dcp ? dcp + o1 : NULL);
    }
}
static const ur_op lstm_gates_op = {"lstm_gates", lstm_gates_backward};

static int lstm_gates(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor **h, ur_tensor **c,
                      int in_place)
{
    if (h) *h = ur_tape_poison(tp);
    if (c) *c = ur_tape_poison(tp);
    if (!ur_op_begin(tp, "lstm_gates", 2, z, c_prev)) return -1;
    if (!h || !c) { ur_tape_fail(tp, "lstm_gates: h and c outputs must not be NULL"); return -1; }
    if (z->cols % 4 != 0 || z->rows != c_prev->rows || z->cols / 4 != c_prev->cols) {
        ur_shape_error(tp, "lstm_gates", "z must be B x 4H and c_prev B x H", z, c_prev);
        return -1;
    }
    int B = z->rows, H = c_prev->cols;
    ur_tensor *hh = ur_tensor_new(tp, B, H), *cc = ur_tensor_new(tp, B, H);
    float *acts = in_place ? z->val : ur_tape_alloc(tp, ur_numel(z) * sizeof *acts);
    if (!hh || !cc || !acts) return -1;
    for (int r = 0; r < B; r++)
        gates_row(H, z->val + (size_t)r * 4 * H, c_prev->val + (size_t)r * H,
                  acts + (size_t)r * 4 * H, cc->val + (size_t)r * H, hh->val + (size_t)r * H);
    ur_node *nd = ur_record(tp, &lstm_gates_op, hh, 2, z, c_prev);
    if (nd) {
        nd->aux = acts;
        ur_record_second_output(nd, cc);
    }
    *h = hh;
    *c = cc;
    return 0;
}

int ur_lstm_gates(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor **h, ur_tensor **c)
{
    return lstm_gates(tp, z, c_prev, h, c, 0);
}

int ur_lstm_gates_inplace(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor **h,
                          ur_tensor **c)
{
    return lstm_gates(tp, z, c_prev, h, c, 1);
}
