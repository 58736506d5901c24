/* Recurrent product with its weight gradient done once over all steps.
 *
 * A recurrence multiplies every step's previous state by the same weight: z_t = c_t + h_{t-1} W.
 * Backward needs dh_{t-1} = dz_t W^T step by step (it feeds the step before), but the weight's
 * gradient is a sum over steps,
 *     dW = sum_t h_{t-1}^T dz_t = A^T dZ,   A = [h_{-1}; h_0; ...],  dZ = [dz_0; dz_1; ...]
 * which is one GEMM with K = T*B instead of T GEMMs with K = B (each of which reads and
 * writes all of dW). So: every step's output z_t is a row block of one time-stacked Z, each
 * step copies its h_{t-1} into the rows of A, and a node recorded *before* the steps (so
 * that backward reaches it after all of them) computes A^T dZ.
 *
 * When the c_t are the row blocks of one tensor that nothing else reads (an input projection
 * x U + b made for the recurrence), Z can be that tensor: each step adds h W into its rows in
 * place, and y_t and c_t share their gradient, so neither a copy nor dc += dy is needed.
 *
 * When the states are themselves time-stacked as they are made (an unroll's H, given to
 * ur_recurrent_begin_states), the rows of A already exist: step t's h_{t-1} is H's row block
 * t-1 (t+1 in a reversed unroll), so only the first step's h (the initial state) is copied and
 * A^T dZ is two GEMMs, one over the first step and one over the others, reading H in place.
 * In general each step records where its h_{t-1} lies, and the weight's gradient is one GEMM
 * per run of steps whose states are consecutive in memory. A later step whose h_{t-1} is not
 * where the states say (a state an unroll carried past a sequence's end) gets a copy in row
 * block t of one spill buffer, made at the first such step, so that copies of consecutive
 * steps still make one GEMM; the first step's initial state gets a block of its own.
 *
 * When that tensor is an ur_linear output no other op reads (the unroll's projection for a
 * fused product), the context does the projection's backward (ops/linear.h): its weight's
 * gradient x^T dZ comes from the same dZ over the same rows, so each run of steps computes
 * [x h]^T dZ as one product that packs dZ once (ur_blas_gemm_tn2) instead of two that pack it
 * each, and each step makes its rows of dx = dZ Wx^T and of db in its own backward, while its
 * dz_t is in cache: with the kernel, dh, dx and db of a step are the items of one split over
 * the pool's threads, one hand-over per step instead of three.
 *
 * The per-step products h W (forward) and dz W^T (backward) have a few rows (the batch) and
 * the same W every step: W is packed once into the kernel's panel layout at the first step of
 * the forward pass and W^T at the first step of the backward pass (ops/rgemm.h, one buffer
 * for both), instead of cblas_sgemm copying W on each of the T calls.
 */
#include "ops/ur_ops.h"

#include <string.h>

#include "ops/blas.h"
#include "ops/colsum.h"
#include "ops/linear.h"
#include "ops/pool.h"
#include "ops/rgemm.h"

/* Batches up to this many rows use the packed kernel; larger ones cblas_sgemm. */
#define RGEMM_MAX_ROWS 512

enum { PACKED_NONE, PACKED_W, PACKED_WT };

struct ur_recurrent {
    ur_tensor *w;        /* in x out */
    ur_tensor *z;        /* steps*rows x out: the steps' outputs (the caller's, when in place) */
    int in_place;        /* 1: z_t = c_t + h W is accumulated into c_t, a row block of z */
    ur_tensor *a;        /* steps*rows x in: copies of the steps' previous states, or NULL */
    ur_tensor *states;   /* with a NULL: the time-stacked states the steps read (steps*rows x in) */
    int reverse;         /* states: step t reads block t+1 instead of t-1 */
    float *spill;        /* with states: steps*rows x in, the copies of the others (or NULL) */
    const float **prev;  /* per step: where its h_{t-1} lies (rows x in), NULL until recorded */
    float *packed;       /* W (forward) or W^T (backward) in the kernel's layout, or NULL */
    int packed_as;       /* PACKED_*: what packed holds now */
    int steps, rows;
    ur_tensor *px, *pw, *pb; /* the input projection z = x Wx + b whose backward this context
                                does (ur_linear_cede; pb may be NULL), or all NULL */
    float *packed_x;     /* with px and the kernel: Wx^T packed, for each step's rows of dx */
    int packed_x_ready;
    double *db;          /* with pb: its gradient summed in double over the steps, or NULL */
};

/* 1 when the steps' products go to the packed kernel. */
static int use_kernel(const ur_recurrent *r) { return r->packed != NULL; }

/* packed holds W (want PACKED_W: k = in, n = out) or W^T (k = out, n = in) after this. */
static void ensure_packed(ur_recurrent *r, int want)
{
    if (r->packed_as == want) return;
    const ur_tensor *w = r->w;
    if (want == PACKED_W) ur_rgemm_pack(w->val, w->cols, 0, w->rows, w->cols, r->packed);
    else ur_rgemm_pack(w->val, w->cols, 1, w->cols, w->rows, r->packed);
    r->packed_as = want;
}

/* A step's backward products by the kernel, split over the pool in one hand-over: the
 * items are dh's panels (dh += dz W^T), then dx's (dx += dz Wx^T, the ceded projection's),
 * then one for db's double sums of dz's columns; any part may be absent (0 items). */
typedef struct step_grads_job {
    int rows, G;          /* dz is rows x G */
    const float *dz;
    int nh, ph;           /* dh: rows x nh, ph panels of W^T */
    const float *pwt;
    float *dh;
    int nx, px;           /* dx: rows x nx, px panels of Wx^T */
    const float *pwxt;
    float *dx;
    double *db;           /* or NULL: no db item */
} step_grads_job;

static void step_grads_range(void *ctx, int b, int e)
{
    const step_grads_job *j = ctx;
    int h0 = b, h1 = e < j->ph ? e : j->ph;
    if (h0 < h1) ur_rgemm_range(j->rows, j->nh, j->G, j->dz, j->G, j->pwt, j->dh, j->nh, h0, h1);
    int x0 = (b > j->ph ? b : j->ph) - j->ph, x1 = (e < j->ph + j->px ? e : j->ph + j->px) - j->ph;
    if (x0 < x1) ur_rgemm_range(j->rows, j->nx, j->G, j->dz, j->G, j->pwxt, j->dx, j->nx, x0, x1);
    if (j->db && e > j->ph + j->px) ur_column_sums_double(j->db, j->dz, j->rows, j->G);
}

/* With the kernel: step t's dh (when h learns) and its rows of the ceded projection's dx and
 * db, from its dz = dy (Wx^T packed at the first step). */
static void step_grads(ur_recurrent *r, int t, const float *dz, ur_tensor *h)
{
    ur_tensor *x = r->px;
    step_grads_job j = {r->rows, r->w->cols, dz, 0, 0, r->packed, NULL, 0, 0, r->packed_x, NULL,
                        r->db};
    if (h->requires_grad) {
        ensure_packed(r, PACKED_WT);
        j.nh = h->cols;
        j.ph = ur_rgemm_panels(h->cols);
        j.dh = ur_grad(h);
    }
    if (x && x->requires_grad && r->packed_x) {
        if (!r->packed_x_ready)
            ur_rgemm_pack(r->pw->val, r->pw->cols, 1, r->pw->cols, r->pw->rows, r->packed_x);
        r->packed_x_ready = 1;
        j.nx = x->cols;
        j.px = ur_rgemm_panels(x->cols);
        j.dx = ur_grad(x) + (size_t)t * r->rows * x->cols;
    }
    int items = j.ph + j.px + (j.db != NULL);
    int grain = ur_rgemm_step_grain(j.rows, j.nh + j.nx, j.G);
    ur_pool_for(items, grain ? grain : items, step_grads_range, &j);
}

/* The rest of the projection's backward, after every step's: dx and db for the rows of steps
 * never recorded (and all of dx without the kernel), then db rounded once. */
static void projection_backward(ur_recurrent *r)
{
    ur_tensor *x = r->px, *wx = r->pw;
    int G = wx->cols;
    for (int t0 = 0; t0 < r->steps;) {
        int apart = !r->prev[t0], t1 = t0 + 1; /* apart: the step's backward did nothing */
        while (t1 < r->steps && (r->prev[t1] == NULL) == apart) t1++;
        int k = (t1 - t0) * r->rows;
        const float *dz = ur_grad(r->z) + (size_t)t0 * r->rows * G;
        if (x->requires_grad && (apart || !r->packed_x))
            ur_blas_gemm(0, 1, k, x->cols, G, dz, G, wx->val, G, 1.0f,
                         ur_grad(x) + (size_t)t0 * r->rows * x->cols, x->cols);
        if (apart && r->db) ur_column_sums_double(r->db, dz, k, G);
        t0 = t1;
    }
    if (!r->db) return;
    float *db = ur_grad(r->pb);
    for (int j = 0; j < G; j++) {
        db[j] += (float)r->db[j];
        r->db[j] = 0.0; /* a retained recording's next backward sums afresh */
    }
}

/* dW += A^T dZ, one GEMM per run of steps whose previous states are consecutive rows; with the
 * projection's backward ceded, dWx += x^T dZ over the same rows in the same product. */
static void recurrent_weight_backward(ur_node *n)
{
    const ur_recurrent *r = n->aux;
    ur_tensor *w = r->w, *x = r->px;
    float *dw = w->requires_grad ? ur_grad(w) : NULL;
    float *dwx = x && r->pw->requires_grad ? ur_grad(r->pw) : NULL;
    size_t block = (size_t)r->rows * (size_t)w->rows;
    for (int t0 = 0; t0 < r->steps;) {
        int t1 = t0 + 1;
        if (r->prev[t0]) {
            while (t1 < r->steps && r->prev[t1] == r->prev[t1 - 1] + block) t1++;
        } else { /* steps never recorded: nothing for W, their rows still for Wx */
            while (t1 < r->steps && !r->prev[t1]) t1++;
        }
        int k = (t1 - t0) * r->rows;
        const float *dz = ur_grad(r->z) + (size_t)t0 * r->rows * w->cols;
        const float *xr = x ? x->val + (size_t)t0 * r->rows * x->cols : NULL;
        const float *h = r->prev[t0];
        if (h && dw && dwx)
            ur_blas_gemm_tn2(x->cols, w->rows, w->cols, k, xr, x->cols, h, w->rows, dz, w->cols,
                             dwx, w->cols, dw, w->cols);
        else if (h && dw)
            ur_blas_gemm(1, 0, w->rows, w->cols, k, h, w->rows, dz, w->cols, 1.0f, dw, w->cols);
        else if (dwx)
            ur_blas_gemm(1, 0, x->cols, w->cols, k, xr, x->cols, dz, w->cols, 1.0f, dwx,
                         w->cols);
        t0 = t1;
    }
    if (x) projection_backward((ur_recurrent *)r);
}
static const ur_op recurrent_weight_op = {"recurrent_weight", recurrent_weight_backward};

/* Takes over the backward of the ur_linear that made into, where it may (ops/linear.h), with
 * the buffers that needs; 0 with the tape failed (out of memory). */
static int cede_projection(ur_tape *tp, ur_recurrent *r, ur_tensor *into)
{
    ur_tensor *x, *wx, *b;
    if (!ur_linear_cede(tp, into, &x, &wx, &b)) return 1;
    int G = r->w->cols;
    r->px = x;
    r->pw = wx;
    r->pb = b;
    if (r->packed && x->requires_grad &&
        !(r->packed_x = ur_tape_alloc(tp, ur_rgemm_packed_floats(G, x->cols) * sizeof(float))))
        return 0;
    if (b && b->requires_grad) {
        if (!(r->db = ur_tape_alloc(tp, (size_t)G * sizeof *r->db))) return 0;
        memset(r->db, 0, (size_t)G * sizeof *r->db);
    }
    return 1;
}

static ur_recurrent *begin(ur_tape *tp, const char *op, ur_tensor *w, int steps, int rows,
                           ur_tensor *into, ur_tensor *states, int reverse)
{
    if (steps <= 0 || rows <= 0) {
        ur_tape_fail(tp, "%s: needs steps > 0 and rows > 0, got %d and %d", op, steps, rows);
        return NULL;
    }
    if (into && (into->rows != steps * rows || into->cols != w->cols || into->base)) {
        ur_tape_fail(tp, "%s: accumulator is %dx%d, expected a %dx%d tensor (not a view)", op,
                     into->rows, into->cols, steps * rows, w->cols);
        return NULL;
    }
    if (states && (states->rows != steps * rows || states->cols != w->rows)) {
        ur_tape_fail(tp, "%s: states are %dx%d, expected %dx%d", op, states->rows, states->cols,
                     steps * rows, w->rows);
        return NULL;
    }
    ur_recurrent *r = ur_tape_alloc(tp, sizeof *r);
    ur_tensor *z = into ? into : ur_tensor_new(tp, steps * rows, w->cols);
    ur_tensor *a = states ? NULL : ur_tensor_new(tp, steps * rows, w->rows);
    const float **prev = ur_tape_alloc(tp, (size_t)steps * sizeof *prev);
    if (!r || !z || (!states && !a) || !prev) return NULL;
    memset(prev, 0, (size_t)steps * sizeof *prev);
    float *packed = NULL;
    if (ur_rgemm_available() && rows <= RGEMM_MAX_ROWS) {
        size_t fw = ur_rgemm_packed_floats(w->rows, w->cols), bw = ur_rgemm_packed_floats(w->cols, w->rows);
        packed = ur_tape_alloc(tp, (fw > bw ? fw : bw) * sizeof *packed);
        if (!packed) return NULL;
    }
    /* Steps fill z's row blocks; until then it must hold numbers (the non-finite trap reads
     * it when the node below is recorded). */
    if (!into) memset(z->val, 0, ur_numel(z) * sizeof(float));
    *r = (ur_recurrent){w, z, into != NULL, a, states, reverse != 0, NULL, prev, packed,
                        PACKED_NONE, steps, rows, NULL, NULL, NULL, NULL, 0, NULL};
    ur_node *producer = z->node;
    /* an input projection made for the recurrence: its backward joins this one's */
    if (into && !cede_projection(tp, r, into)) return NULL;
    /* the projection's tensors are inputs too: their gradients come from here */
    ur_tensor *in[4] = {w, r->pw, r->px, r->pb};
    ur_node *nd = ur_record_array(tp, &recurrent_weight_op, z, !r->px ? 1 : r->pb ? 4 : 3, in);
    if (nd) nd->aux = r;
    if (into) z->node = producer; /* the accumulator still names the op that made it */
    return r;
}

ur_recurrent *ur_recurrent_begin(ur_tape *tp, ur_tensor *w, int steps, int rows, ur_tensor *into)
{
    if (!ur_op_begin(tp, "recurrent_begin", 1, w)) return NULL;
    return begin(tp, "recurrent_begin", w, steps, rows, into, NULL, 0);
}

ur_recurrent *ur_recurrent_begin_states(ur_tape *tp, ur_tensor *w, int steps, int rows,
                                        ur_tensor *into, ur_tensor *states, int reverse)
{
    if (!ur_op_begin(tp, "recurrent_begin_states", 2, w, states)) return NULL;
    return begin(tp, "recurrent_begin_states", w, steps, rows, into, states, reverse);
}

/* y = c + h W (W's gradient left to the node above):  dc += dy,  dh += dy W^T. In place,
 * y and c are the same rows of the accumulator and share their gradient: only dh is left. */
static void recurrent_step_backward(ur_node *n)
{
    ur_tensor *y = n->out, *c = n->in[0], *h = n->in[1];
    ur_recurrent *r = n->aux;
    const ur_tensor *w = r->w;
    if (c->requires_grad && !r->in_place) {
        float *dc = ur_grad(c);
        for (size_t k = 0; k < ur_numel(y); k++) dc[k] += y->grad[k];
    }
    if (use_kernel(r)) {
        step_grads(r, n->i[0], y->grad, h);
        return;
    }
    /* without the kernel dx's rows come after all steps (projection_backward) */
    if (r->db) ur_column_sums_double(r->db, y->grad, r->rows, w->cols);
    if (!h->requires_grad) return;
    ur_blas_gemm(0, 1, h->rows, h->cols, y->cols, y->grad, y->cols, w->val, w->cols, 1.0f,
                 ur_grad(h), h->cols);
}
static const ur_op recurrent_step_op = {"recurrent_addmm", recurrent_step_backward};

/* Where step t's h_{t-1} stays for the weight's gradient: in the states when it is their
 * expected block, else a copy in row block t of a (or of the spill buffer). NULL with the
 * tape failed. */
static const float *keep_prev(ur_tape *tp, ur_recurrent *r, int t, const ur_tensor *h)
{
    size_t block = ur_numel(h);
    if (r->a) {
        float *dst = r->a->val + (size_t)t * block;
        memcpy(dst, h->val, block * sizeof *dst);
        return dst;
    }
    int from = r->reverse ? t + 1 : t - 1;
    int inside = from >= 0 && from < r->steps;
    if (inside && h->val == r->states->val + (size_t)from * block) return h->val;
    float *dst;
    if (!inside) { /* the first step's initial state: a block of its own */
        dst = ur_tape_alloc(tp, block * sizeof *dst);
    } else {
        if (!r->spill &&
            !(r->spill = ur_tape_alloc(tp, (size_t)r->steps * block * sizeof *r->spill)))
            return NULL;
        dst = r->spill + (size_t)t * block;
    }
    if (dst) memcpy(dst, h->val, block * sizeof *dst);
    return dst;
}

ur_tensor *ur_recurrent_addmm(ur_tape *tp, ur_recurrent *r, int t, ur_tensor *c, ur_tensor *h)
{
    if (!ur_op_begin(tp, "recurrent_addmm", 2, c, h)) return ur_tape_poison(tp);
    if (!r) return ur_tape_fail(tp, "recurrent_addmm: no recurrent context");
    if (t < 0 || t >= r->steps)
        return ur_tape_fail(tp, "recurrent_addmm: step %d is outside [0, %d)", t, r->steps);
    if (h->rows != r->rows || h->cols != r->w->rows)
        return ur_shape_error(tp, "recurrent_addmm", "h and W do not chain", h, r->w);
    if (c->rows != r->rows || c->cols != r->w->cols)
        return ur_tape_fail(tp, "recurrent_addmm: c is %dx%d but h W is %dx%d", c->rows, c->cols,
                            h->rows, r->w->cols);
    if (r->prev[t])
        return ur_tape_fail(tp, "recurrent_addmm: step %d is recorded twice", t);
    ur_tensor *y = ur_rows(tp, r->z, t * r->rows, r->rows);
    if (ur_tape_error(tp)) return ur_tape_poison(tp);
    if (!r->in_place) memcpy(y->val, c->val, ur_numel(y) * sizeof(float));
    else if (c->val != y->val)
        return ur_tape_fail(tp, "recurrent_addmm: in place, c of step %d must be rows [%d, %d) of "
                            "the accumulator", t, t * r->rows, (t + 1) * r->rows);
    if (use_kernel(r)) {
        ensure_packed(r, PACKED_W);
        ur_rgemm(h->rows, r->w->cols, h->cols, h->val, h->cols, r->packed, y->val, y->cols);
    } else {
        ur_blas_gemm(0, 0, h->rows, r->w->cols, h->cols, h->val, h->cols, r->w->val, r->w->cols,
                     1.0f, y->val, y->cols);
    }
    r->prev[t] = keep_prev(tp, r, t, h);
    if (!r->prev[t]) return ur_tape_poison(tp);
    ur_node *nd = ur_record(tp, &recurrent_step_op, y, 2, c, h);
    if (nd) {
        nd->aux = r;
        nd->i[0] = t;
        nd->uses = r->w; /* drawn as an input; its gradient is the node above's */
    }
    return y;
}
