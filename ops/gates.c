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

#include <string.h>

#include "ops/blas.h"
#include "ops/fastmath.h"
#include "ops/pool.h"

/* Rows are split over the pool's threads (ops/pool.h) when a step has at least this many
 * gate values; below it the hand-over costs more than the work. */
#define PARALLEL_MIN 8192

/* One row: a receives the activations [i | f | g | o]. A step's rows are split over the
 * pool's threads, forward and backward (rows are independent). */
/* a may be z itself (in place): every a[j] depends only on z[j]. */
UR_VECTOR_BODY void gates_row_body(int H, const float *z, const float *restrict cp, float *a,
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
UR_VECTOR_VOID(gates_row,
               (int H, const float *z, const float *restrict cp, float *a, float *restrict c,
                float *restrict h),
               (H, z, cp, a, c, h))

/* One row's gradients: dz += (add) or = (store: the first write of those rows) the four
 * gates', dc_prev += its own. */
UR_VECTOR_BODY void gates_row_grads(const int add, int H, const float *restrict a,
                                    const float *restrict cp, const float *restrict c,
                                    const float *restrict dh, const float *restrict dc,
                                    float *restrict dz, float *restrict dcp)
{
    const float *i = a, *f = a + H, *g = a + 2 * H, *o = a + 3 * H;
    for (int j = 0; j < H; j++) {
        float tc = ur_tanh1(c[j]);
        float dC = dc[j] + dh[j] * o[j] * (1.0f - tc * tc);
        float di = dC * g[j] * i[j] * (1.0f - i[j]), df = dC * cp[j] * f[j] * (1.0f - f[j]);
        float dg = dC * i[j] * (1.0f - g[j] * g[j]), dO = dh[j] * tc * o[j] * (1.0f - o[j]);
        dz[j] = add ? dz[j] + di : di;
        dz[H + j] = add ? dz[H + j] + df : df;
        dz[2 * H + j] = add ? dz[2 * H + j] + dg : dg;
        dz[3 * H + j] = add ? dz[3 * H + j] + dO : dO;
        if (dcp) dcp[j] += dC * f[j];
    }
}
UR_VECTOR_BODY void gates_row_backward_body(int H, const float *restrict a,
                                            const float *restrict cp, const float *restrict c,
                                            const float *restrict dh, const float *restrict dc,
                                            float *restrict dz, float *restrict dcp, int add)
{
    if (add) gates_row_grads(1, H, a, cp, c, dh, dc, dz, dcp);
    else gates_row_grads(0, H, a, cp, c, dh, dc, dz, dcp);
}
UR_VECTOR_VOID(gates_row_backward,
               (int H, const float *restrict a, const float *restrict cp,
                const float *restrict c, const float *restrict dh, const float *restrict dc,
                float *restrict dz, float *restrict dcp, int add),
               (H, a, cp, c, dh, dc, dz, dcp, add))

/* A step's rows, forward or backward; the pool hands out ranges of them. */
typedef struct gates_job {
    int H;
    const float *z, *cp, *acts;
    float *a, *c, *h;                     /* forward */
    const float *cv, *dh, *dc;            /* backward */
    float *dz, *dcp;
    int rows;
    int dz_add; /* backward: dz += the gates' gradients (0: dz = them, its first write) */
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
                           j->dz + o4, j->dcp ? j->dcp + o1 : NULL, j->dz_add);
    }
}

static void lstm_gates_backward(ur_node *n)
{
    ur_tensor *z = n->in[0], *cp = n->in[1], *h = n->out, *c = n->out2;
    int fresh = 0;
    gates_job j = {.H = h->cols, .cp = cp->val, .acts = n->aux, .cv = c->val, .dh = h->grad,
                   .dc = c->grad, .dz = z->requires_grad ? ur_grad_write(z, &fresh) : NULL,
                   .dcp = cp->requires_grad ? ur_grad(cp) : NULL, .rows = h->rows};
    j.dz_add = !fresh;
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

/* ---- GRU ------------------------------------------------------------------------------
 * The element-wise half of a GRU step (PyTorch's equations, gate order r, z, n) in one pass:
 *
 *     [xr | xz | xn] = x (x Wx + bx),   [hr | hz | hn] = g (h_{t-1} Wh + bh),   both B x 3H
 *     r = sigmoid(xr + hr)   z = sigmoid(xz + hz)   n = tanh(xn + r * hn)
 *     h = (1 - z) * n + z * h_prev
 *
 * The activations [r | z | n] overwrite x (a temporary of the unroll's that nothing else
 * reads); g's values stay, since hn is needed below. Backward, dh the output's gradient:
 *     dn = dh (1 - z)      dz = dh (h_prev - n)      dh_prev += dh z
 *     da = dn (1 - n^2):   dxn += da,  dhn += da r,  and dr = da hn
 *     dxr += dr r (1 - r),  dhr likewise;   dxz += dz z (1 - z),  dhz likewise
 */
UR_VECTOR_BODY void gru_row_body(int H, float *x, const float *restrict g,
                                 const float *restrict hp, float *restrict h)
{
    for (int j = 0; j < 2 * H; j++) x[j] = ur_sigmoid1(x[j] + g[j]);
    for (int j = 0; j < H; j++) x[2 * H + j] = ur_tanh1(x[2 * H + j] + x[j] * g[2 * H + j]);
    for (int j = 0; j < H; j++) {
        float z = x[H + j], n = x[2 * H + j];
        h[j] = (1.0f - z) * n + z * hp[j];
    }
}
UR_VECTOR_VOID(gru_row,
               (int H, float *x, const float *restrict g, const float *restrict hp,
                float *restrict h),
               (H, x, g, hp, h))

UR_VECTOR_BODY void gru_row_backward_body(int H, const float *restrict a,
                                          const float *restrict g, const float *restrict hp,
                                          const float *restrict dh, float *restrict dx,
                                          float *restrict dg, float *restrict dhp)
{
    const float *r = a, *z = a + H, *n = a + 2 * H, *hn = g + 2 * H;
    for (int j = 0; j < H; j++) {
        float dn = dh[j] * (1.0f - z[j]);
        float dz = dh[j] * (hp[j] - n[j]) * z[j] * (1.0f - z[j]);
        float da = dn * (1.0f - n[j] * n[j]);
        float dr = da * hn[j] * r[j] * (1.0f - r[j]);
        if (dx) {
            dx[j] += dr;
            dx[H + j] += dz;
            dx[2 * H + j] += da;
        }
        if (dg) {
            dg[j] += dr;
            dg[H + j] += dz;
            dg[2 * H + j] += da * r[j];
        }
        if (dhp) dhp[j] += dh[j] * z[j];
    }
}
UR_VECTOR_VOID(gru_row_backward,
               (int H, const float *restrict a, const float *restrict g,
                const float *restrict hp, const float *restrict dh, float *restrict dx,
                float *restrict dg, float *restrict dhp),
               (H, a, g, hp, dh, dx, dg, dhp))

typedef struct gru_job {
    int H;
    float *x;
    const float *g, *hp, *dh;
    float *h, *dx, *dg, *dhp;
} gru_job;

static void gru_forward_rows(void *ctx, int r0, int r1)
{
    const gru_job *j = ctx;
    size_t H = (size_t)j->H;
    for (int r = r0; r < r1; r++)
        gru_row(j->H, j->x + r * 3 * H, j->g + r * 3 * H, j->hp + r * H, j->h + r * H);
}

static void gru_backward_rows(void *ctx, int r0, int r1)
{
    const gru_job *j = ctx;
    size_t H = (size_t)j->H;
    for (int r = r0; r < r1; r++)
        gru_row_backward(j->H, j->x + r * 3 * H, j->g + r * 3 * H, j->hp + r * H, j->dh + r * H,
                         j->dx ? j->dx + r * 3 * H : NULL, j->dg ? j->dg + r * 3 * H : NULL,
                         j->dhp ? j->dhp + r * H : NULL);
}

static void gru_gates_backward(ur_node *n)
{
    ur_tensor *x = n->in[0], *g = n->in[1], *hp = n->in[2], *h = n->out;
    gru_job j = {.H = h->cols, .x = x->val, .g = g->val, .hp = hp->val, .dh = h->grad,
                 .dx = x->requires_grad ? ur_grad(x) : NULL,
                 .dg = g->requires_grad ? ur_grad(g) : NULL,
                 .dhp = hp->requires_grad ? ur_grad(hp) : NULL};
    ur_pool_for(h->rows, grain_for(h->rows, j.H), gru_backward_rows, &j);
}
static const ur_op gru_gates_op = {"gru_gates", gru_gates_backward};

ur_tensor *ur_gru_gates(ur_tape *tp, ur_tensor *x, ur_tensor *g, ur_tensor *h_prev,
                        ur_tensor *h_into)
{
    if (!ur_op_begin(tp, "gru_gates", 3, x, g, h_prev)) return ur_tape_poison(tp);
    if (h_into && !ur_op_begin(tp, "gru_gates", 1, h_into)) return ur_tape_poison(tp);
    int B = h_prev->rows, H = h_prev->cols;
    if (x->rows != B || g->rows != B || x->cols != 3 * H || g->cols != 3 * H)
        return ur_tape_fail(tp, "gru_gates: x and g must be %dx%d (B x 3H for h_prev %dx%d); got "
                            "%dx%d and %dx%d", B, 3 * H, B, H, x->rows, x->cols, g->rows, g->cols);
    if (x->val == g->val || x->val == h_prev->val)
        return ur_tape_fail(tp, "gru_gates: x must not share its values with g or h_prev");
    if (h_into && (h_into->rows != B || h_into->cols != H || h_into->node || !h_into->tape))
        return ur_tape_fail(tp, "gru_gates: h_into must be a %dx%d tensor of the tape that no op "
                            "has written; got %dx%d", B, H, h_into->rows, h_into->cols);
    ur_tensor *h = h_into ? h_into : ur_tensor_new(tp, B, H);
    if (!h) return ur_tape_poison(tp);
    gru_job j = {.H = H, .x = x->val, .g = g->val, .hp = h_prev->val, .h = h->val};
    ur_pool_for(B, grain_for(B, H), gru_forward_rows, &j);
    ur_record(tp, &gru_gates_op, h, 3, x, g, h_prev);
    return h;
}

/* ---- GRU, Cho et al. 2014 (reset before the product) -------------------------------------
 * The whole step after the unroll's products, in one op, the reset gate's product included:
 *
 *     [xr | xz | xn] = x (x_t Wx + bx, B x 3H),   [hr | hz] = g (h_{t-1} Wh + bh, B x 2H)
 *     r = sigmoid(xr + hr)   z = sigmoid(xz + hz)
 *     n = tanh(xn + (r * h_prev) Un)                     (Un is H x H)
 *     h = (1 - z) * n + z * h_prev
 *
 * Both x and g are the unroll's temporaries, whose values nothing else reads: [r | z | n]
 * overwrite x, and r * h_prev overwrites g's first H columns (the one intermediate the
 * backward must keep, for dUn); g's other H columns are the backward's scratch. Backward,
 * dh the output's gradient, rh = r * h_prev:
 *     dn = dh (1 - z)   dz = dh (h_prev - n)   dh_prev += dh z
 *     da = dn (1 - n^2):   dxn += da,   dUn += rh^T da,   drh = da Un^T
 *     dh_prev += drh r,    dr = drh h_prev
 *     dxr += dr r (1 - r), dhr likewise;   dxz += dz z (1 - z), dhz likewise
 * drh is made over rh (in g), and rh put back afterwards (r * h_prev again), so that a second
 * backward (ur_backward_retain) finds it. */
UR_VECTOR_BODY void cho_reset_row_body(int H, float *restrict x, float *restrict g,
                                       const float *restrict hp)
{
    for (int j = 0; j < 2 * H; j++) x[j] = ur_sigmoid1(x[j] + g[j]);
    for (int j = 0; j < H; j++) g[j] = x[j] * hp[j];
}
UR_VECTOR_VOID(cho_reset_row,
               (int H, float *restrict x, float *restrict g, const float *restrict hp),
               (H, x, g, hp))

UR_VECTOR_BODY void cho_out_row_body(int H, float *restrict x, const float *restrict hp,
                                     float *restrict h)
{
    for (int j = 0; j < H; j++) {
        float z = x[H + j], n = ur_tanh1(x[2 * H + j]);
        x[2 * H + j] = n;
        h[j] = (1.0f - z) * n + z * hp[j];
    }
}
UR_VECTOR_VOID(cho_out_row,
               (int H, float *restrict x, const float *restrict hp, float *restrict h),
               (H, x, hp, h))

/* da into da[0..H), the z and n gradients, and h_prev's through z */
UR_VECTOR_BODY void cho_back_gates_row_body(int H, const float *restrict a,
                                            const float *restrict hp, const float *restrict dh,
                                            float *restrict da, float *restrict dx,
                                            float *restrict dg, float *restrict dhp)
{
    for (int j = 0; j < H; j++) {
        float z = a[H + j], n = a[2 * H + j];
        float dn = dh[j] * (1.0f - z);
        float dz = dh[j] * (hp[j] - n) * z * (1.0f - z);
        float d = dn * (1.0f - n * n);
        da[j] = d;
        if (dx) {
            dx[H + j] += dz;
            dx[2 * H + j] += d;
        }
        if (dg) dg[H + j] += dz;
        if (dhp) dhp[j] += dh[j] * z;
    }
}
UR_VECTOR_VOID(cho_back_gates_row,
               (int H, const float *restrict a, const float *restrict hp,
                const float *restrict dh, float *restrict da, float *restrict dx,
                float *restrict dg, float *restrict dhp),
               (H, a, hp, dh, da, dx, dg, dhp))

/* from drh (in rh's place): the r gradients and h_prev's through r * h_prev; rh put back */
UR_VECTOR_BODY void cho_back_reset_row_body(int H, const float *restrict a,
                                            const float *restrict hp, float *restrict rh,
                                            float *restrict dx, float *restrict dg,
                                            float *restrict dhp)
{
    for (int j = 0; j < H; j++) {
        float r = a[j], drh = rh[j];
        float dr = drh * hp[j] * r * (1.0f - r);
        if (dx) dx[j] += dr;
        if (dg) dg[j] += dr;
        if (dhp) dhp[j] += drh * r;
        rh[j] = r * hp[j];
    }
}
UR_VECTOR_VOID(cho_back_reset_row,
               (int H, const float *restrict a, const float *restrict hp, float *restrict rh,
                float *restrict dx, float *restrict dg, float *restrict dhp),
               (H, a, hp, rh, dx, dg, dhp))

typedef struct cho_job {
    int H;
    float *x, *g, *h, *dx, *dg, *dhp;
    const float *hp, *dh;
} cho_job;

static void cho_reset_rows(void *ctx, int r0, int r1)
{
    const cho_job *j = ctx;
    size_t H = (size_t)j->H;
    for (int r = r0; r < r1; r++)
        cho_reset_row(j->H, j->x + r * 3 * H, j->g + r * 2 * H, j->hp + r * H);
}

static void cho_out_rows(void *ctx, int r0, int r1)
{
    const cho_job *j = ctx;
    size_t H = (size_t)j->H;
    for (int r = r0; r < r1; r++)
        cho_out_row(j->H, j->x + r * 3 * H, j->hp + r * H, j->h + r * H);
}

static void cho_back_gates_rows(void *ctx, int r0, int r1)
{
    const cho_job *j = ctx;
    size_t H = (size_t)j->H;
    for (int r = r0; r < r1; r++)
        cho_back_gates_row(j->H, j->x + r * 3 * H, j->hp + r * H, j->dh + r * H,
                           j->g + r * 2 * H + H, j->dx ? j->dx + r * 3 * H : NULL,
                           j->dg ? j->dg + r * 2 * H : NULL, j->dhp ? j->dhp + r * H : NULL);
}

static void cho_back_reset_rows(void *ctx, int r0, int r1)
{
    const cho_job *j = ctx;
    size_t H = (size_t)j->H;
    for (int r = r0; r < r1; r++) {
        float *rh = j->g + r * 2 * H;
        cho_back_reset_row(j->H, j->x + r * 3 * H, j->hp + r * H, rh,
                           j->dx ? j->dx + r * 3 * H : NULL, j->dg ? j->dg + r * 2 * H : NULL,
                           j->dhp ? j->dhp + r * H : NULL);
    }
}

static void gru_cho_gates_backward(ur_node *n)
{
    ur_tensor *x = n->in[0], *g = n->in[1], *hp = n->in[2], *un = n->in[3], *h = n->out;
    int B = h->rows, H = h->cols;
    cho_job j = {.H = H, .x = x->val, .g = g->val, .hp = hp->val, .dh = h->grad,
                 .dx = x->requires_grad ? ur_grad(x) : NULL,
                 .dg = g->requires_grad ? ur_grad(g) : NULL,
                 .dhp = hp->requires_grad ? ur_grad(hp) : NULL};
    int grain = grain_for(B, H);
    ur_pool_for(B, grain, cho_back_gates_rows, &j); /* da into g's second half */
    if (un->requires_grad) /* dUn += rh^T da */
        ur_blas_gemm(1, 0, H, H, B, j.g, 2 * H, j.g + H, 2 * H, 1.0f, ur_grad(un), H);
    if (!j.dx && !j.dg && !j.dhp) return;
    for (int r = 0; r < B; r++) memset(j.g + (size_t)r * 2 * H, 0, (size_t)H * sizeof(float));
    /* drh = da Un^T over rh (zeroed first: beta = 0 would still read it in some BLAS paths) */
    ur_blas_gemm(0, 1, B, H, H, j.g + H, 2 * H, un->val, H, 1.0f, j.g, 2 * H);
    ur_pool_for(B, grain, cho_back_reset_rows, &j);
}
static const ur_op gru_cho_gates_op = {"gru_cho_gates", gru_cho_gates_backward};

/* 1 when the n floats at a and the m floats at b overlap */
static int overlap(const float *a, size_t n, const float *b, size_t m)
{
    return a < b + m && b < a + n;
}

ur_tensor *ur_gru_cho_gates(ur_tape *tp, ur_tensor *x, ur_tensor *g, ur_tensor *h_prev,
                            ur_tensor *un, ur_tensor *h_into)
{
    if (!ur_op_begin(tp, "gru_cho_gates", 4, x, g, h_prev, un)) return ur_tape_poison(tp);
    if (h_into && !ur_op_begin(tp, "gru_cho_gates", 1, h_into)) return ur_tape_poison(tp);
    int B = h_prev->rows, H = h_prev->cols;
    if (x->rows != B || g->rows != B || x->cols != 3 * H || g->cols != 2 * H || un->rows != H ||
        un->cols != H)
        return ur_tape_fail(tp, "gru_cho_gates: for h_prev %dx%d, x must be %dx%d, g %dx%d and "
                            "Un %dx%d; got %dx%d, %dx%d and %dx%d", B, H, B, 3 * H, B, 2 * H, H,
                            H, x->rows, x->cols, g->rows, g->cols, un->rows, un->cols);
    size_t nx = ur_numel(x), ng = ur_numel(g), nh = ur_numel(h_prev), nu = ur_numel(un);
    if (overlap(x->val, nx, g->val, ng) || overlap(x->val, nx, h_prev->val, nh) ||
        overlap(g->val, ng, h_prev->val, nh) || overlap(x->val, nx, un->val, nu) ||
        overlap(g->val, ng, un->val, nu))
        return ur_tape_fail(tp, "gru_cho_gates: x and g must not share their values with each "
                            "other, h_prev or Un");
    if (h_into && (h_into->rows != B || h_into->cols != H || h_into->node || !h_into->tape))
        return ur_tape_fail(tp, "gru_cho_gates: h_into must be a %dx%d tensor of the tape that "
                            "no op has written; got %dx%d", B, H, h_into->rows, h_into->cols);
    ur_tensor *h = h_into ? h_into : ur_tensor_new(tp, B, H);
    if (!h) return ur_tape_poison(tp);
    cho_job j = {.H = H, .x = x->val, .g = g->val, .hp = h_prev->val, .h = h->val};
    int grain = grain_for(B, H);
    ur_pool_for(B, grain, cho_reset_rows, &j);
    /* xn += (r * h_prev) Un, in x's third block */
    ur_blas_gemm(0, 0, B, H, H, j.g, 2 * H, un->val, H, 1.0f, j.x + 2 * H, 3 * H);
    ur_pool_for(B, grain, cho_out_rows, &j);
    ur_record(tp, &gru_cho_gates_op, h, 4, x, g, h_prev, un);
    return h;
}
