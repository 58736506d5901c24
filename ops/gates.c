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

#include "ops/fastmath.h"
#include "ops/pool.h"

/* Rows are split over the pool's threads (ops/pool.h) when a step has at least this many
 * gate values; below it the hand-over costs more than the work. */
#define PARALLEL_MIN 8192

/* One row: a receives the activations [i | f | g | o]. A step's rows are split over the
 * pool's threads, forward and backward (rows are independent). */
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

/* A step's rows, forward or backward; the pool hands out ranges of them. */
typedef struct gates_job {
    int H;
    const float *z, *cp, *acts;
    float *a, *c, *h;                     /* forward */
    const float *cv, *dh, *dc;            /* backward */
    float *dz, *dcp;
    int rows;
} gates_job;

/* Rows per range handed out by the pool: all of them when the step is small. */
static int grain_for(int rows, int H)
{
    if ((long)rows * 4 * H < PARALLEL_MIN) return rows;
    int g = rows / 8;
    return g < 1 ? 1 : g;
}

static void backward_rows(void *ctx, int r0, int r1)
{
    const gates_job *j = ctx;
    int H = j->H;
    for (int r = r0; r < r1 && !j->dz; r++) { /* z is a constant: only c_prev learns */
        size_t o4 = (size_t)r * 4 * H, o1 = (size_t)r * H;
        for (int q = 0; q < H; q++) {
            float tc = ur_tanh1(j->cv[o1 + q]), o = j->acts[o4 + 3 * H + q];
            float dC = j->dc[o1 + q] + j->dh[o1 + q] * o * (1.0f - tc * tc);
            j->dcp[o1 + q] += dC * j->acts[o4 + H + q];
        }
    }
    for (int r = r0; r < r1 && j->dz; r++) {
        size_t o4 = (size_t)r * 4 * H, o1 = (size_t)r * H;
        gates_row_backward(H, j->acts + o4, j->cp + o1, j->cv + o1, j->dh + o1, j->dc + o1,
                           j->dz + o4, j->dcp ? j->dcp + o1 : NULL);
    }
}

static void lstm_gates_backward(ur_node *n)
{
    ur_tensor *z = n->in[0], *cp = n->in[1], *h = n->out, *c = n->out2;
    gates_job j = {.H = h->cols, .cp = cp->val, .acts = n->aux, .cv = c->val, .dh = h->grad,
                   .dc = c->grad, .dz = z->requires_grad ? ur_grad(z) : NULL,
                   .dcp = cp->requires_grad ? ur_grad(cp) : NULL, .rows = h->rows};
    ur_pool_for(j.rows, grain_for(j.rows, j.H), backward_rows, &j);
}
static const ur_op lstm_gates_op = {"lstm_gates", lstm_gates_backward};

static void forward_rows(void *ctx, int r0, int r1)
{
    const gates_job *j = ctx;
    int H = j->H;
    for (int r = r0; r < r1; r++)
        gates_row(H, j->z + (size_t)r * 4 * H, j->cp + (size_t)r * H, j->a + (size_t)r * 4 * H,
                  j->c + (size_t)r * H, j->h + (size_t)r * H);
}

static int lstm_gates(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor *h_into,
                      ur_tensor **h, ur_tensor **c, int in_place)
{
    if (h) *h = ur_tape_poison(tp);
    if (c) *c = ur_tape_poison(tp);
    if (!ur_op_begin(tp, "lstm_gates", 2, z, c_prev)) return -1;
    if (h_into && !ur_op_begin(tp, "lstm_gates", 1, h_into)) return -1;
    if (!h || !c) { ur_tape_fail(tp, "lstm_gates: h and c outputs must not be NULL"); return -1; }
    if (z->cols % 4 != 0 || z->rows != c_prev->rows || z->cols / 4 != c_prev->cols) {
        ur_shape_error(tp, "lstm_gates", "z must be B x 4H and c_prev B x H", z, c_prev);
        return -1;
    }
    int B = z->rows, H = c_prev->cols;
    if (h_into && (h_into->rows != B || h_into->cols != H || h_into->node || !h_into->tape)) {
        ur_tape_fail(tp, "lstm_gates: h_into must be a %dx%d tensor of the tape that no op has "
                     "written; got %dx%d", B, H, h_into->rows, h_into->cols);
        return -1;
    }
    ur_tensor *hh = h_into ? h_into : ur_tensor_new(tp, B, H), *cc = ur_tensor_new(tp, B, H);
    float *acts = in_place ? z->val : ur_tape_alloc(tp, ur_numel(z) * sizeof *acts);
    if (!hh || !cc || !acts) return -1;
    gates_job j = {.H = H, .z = z->val, .cp = c_prev->val, .a = acts, .c = cc->val, .h = hh->val,
                   .rows = B};
    ur_pool_for(B, grain_for(B, H), forward_rows, &j);
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
    return lstm_gates(tp, z, c_prev, NULL, h, c, 0);
}

int ur_lstm_gates_inplace(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor **h,
                          ur_tensor **c)
{
    return lstm_gates(tp, z, c_prev, NULL, h, c, 1);
}

int ur_lstm_gates_into(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor *h_into,
                       ur_tensor **h, ur_tensor **c)
{
    return lstm_gates(tp, z, c_prev, h_into, h, c, 1);
}
