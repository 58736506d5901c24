/* Jordan network (the seeds' output-recurrent RNN):
 *     h_t = tanh(b + W y_{t-1} + U x_t),     o_t = c + V h_t
 * row-vector form: h_t = tanh(x_t U + y_{t-1} W + b), o_t = h_t V + c.
 * Shapes: T steps, B sequences; x_all T*B x in, H T*B x hidden, o and targets T*B x out.
 *
 * Teacher forcing feeds y_{t-1} = target_{t-1}, known in advance, so the whole sequence is
 * three GEMMs: A = x_all U + b, A += Yprev W, o = tanh(A) V + c, with Yprev = [y0 ; targets
 * without the last step]. Free-running and scheduled sampling need o_{t-1} before step t,
 * so those run step by step (the x_t U + b part is still one GEMM up front).
 *
 * With lengths, o and H are zero past each row's length (ur_mask_rows): in teacher forcing
 * once over all steps, step by step otherwise (only at steps where some rows have ended).
 * Rows never mix, so what a finished row feeds back reaches nothing that counts. */
#include "models/ur_models.h"

#include <math.h>
#include <string.h>

#include "models/lengths.h"

/* One-hot rows of argmax o (sample = 0) or of a draw from softmax(o) (sample = 1); a leaf. */
static ur_tensor *one_hot_of(ur_tape *tp, ur_tensor *o, int sample, ur_rng *rng)
{
    ur_tensor *y = ur_input(tp, o->rows, o->cols);
    if (ur_tape_error(tp)) return y;
    if (sample && ur_softmax_rows(o, y->val) != 0) return ur_tape_fail(tp, "jordan: softmax failed");
    for (int r = 0; r < o->rows; r++) {
        float *yr = y->val + (size_t)r * o->cols;
        const float *orow = o->val + (size_t)r * o->cols;
        int pick = 0;
        if (sample) {
            float u = ur_rng_uniform(rng), acc = 0.0f;
            pick = o->cols - 1; /* rounding left u above the total: the last class */
            for (int k = 0; k < o->cols; k++) {
                acc += yr[k];
                if (u < acc) { pick = k; break; }
            }
        } else {
            for (int k = 1; k < o->cols; k++)
                if (orow[k] > orow[pick]) pick = k;
        }
        memset(yr, 0, (size_t)o->cols * sizeof *yr);
        yr[pick] = 1.0f;
    }
    return y;
}

/* What the model feeds back of its own output o_{t-1}. */
static ur_tensor *own_feed(ur_tape *tp, ur_tensor *o, const ur_jordan_opts *op)
{
    switch (op->feed) {
    case UR_FEED_OUTPUT: return o;
    case UR_FEED_SOFTMAX: return ur_softmax(tp, o); /* with a gradient */
    case UR_FEED_ARGMAX: return one_hot_of(tp, o, 0, NULL);
    case UR_FEED_SAMPLE: return one_hot_of(tp, o, 1, op->rng);
    }
    return ur_tape_fail(tp, "jordan: unknown feed %d", (int)op->feed);
}

/* Scheduled sampling at one step: row r takes target row r with probability p, else the
 * model's own feed. All-target and all-own steps pass the chosen tensor through untouched;
 * a mixed step is mask * target + (1 - mask) * own, with 0/1 masks (exact, and the gradient
 * reaches only the rows that were chosen). */
static ur_tensor *scheduled_feed(ur_tape *tp, ur_tensor *o, ur_tensor *target,
                                 const ur_jordan_opts *op)
{
    int B = o->rows, n_target = 0;
    ur_tensor *mask = ur_input(tp, B, o->cols), *inv = ur_input(tp, B, o->cols);
    if (ur_tape_error(tp)) return ur_tape_poison(tp);
    for (int r = 0; r < B; r++) {
        int take = ur_rng_uniform(op->rng) < op->p_teacher;
        n_target += take;
        for (int k = 0; k < o->cols; k++) {
            mask->val[(size_t)r * o->cols + k] = take ? 1.0f : 0.0f;
            inv->val[(size_t)r * o->cols + k] = take ? 0.0f : 1.0f;
        }
    }
    if (n_target == B) return target;
    ur_tensor *own = own_feed(tp, o, op);
    if (n_target == 0) return own;
    return ur_add(tp, ur_mul(tp, mask, target), ur_mul(tp, inv, own));
}

int ur_jordan_init(ur_jordan *m, ur_params *ps, const char *prefix, int in_dim, int hidden,
                   int out_dim, ur_rng *rng)
{
    ur_model_clear_error();
    if (!m || !ps || !prefix || !rng)
        return ur_model_fail("jordan: model, params, prefix and rng must not be NULL");
    if (in_dim <= 0 || hidden <= 0 || out_dim <= 0)
        return ur_model_fail("jordan(%s): sizes must be positive, got in %d, hidden %d, out %d",
                             prefix, in_dim, hidden, out_dim);
    float k = 1.0f / sqrtf((float)hidden);
    *m = (ur_jordan){.in_dim = in_dim, .hidden = hidden, .out_dim = out_dim};
    m->U = ur_model_param(ps, prefix, "U", in_dim, hidden, k, rng);
    m->W = ur_model_param(ps, prefix, "W", out_dim, hidden, k, rng);
    m->b = ur_model_param(ps, prefix, "b", 1, hidden, k, rng);
    m->V = ur_model_param(ps, prefix, "V", hidden, out_dim, k, rng);
    m->c = ur_model_param(ps, prefix, "c", 1, out_dim, k, rng);
    if (!m->U || !m->W || !m->b || !m->V || !m->c)
        return ur_model_fail("jordan(%s): %s", prefix,
                             ur_model_error() ? ur_model_error() : "cannot add parameters");
    return 0;
}

/* Checks the arguments; returns B, or -1 with the tape failed. */
static int check_args(ur_tape *tp, const ur_jordan *m, ur_tensor *x_all, int T, ur_tensor *targets,
                      ur_tensor *y0, const ur_jordan_opts *op)
{
    if (!m || !m->U || !m->W || !m->b || !m->V || !m->c) {
        ur_tape_fail(tp, "jordan: the model is NULL or not initialised");
        return -1;
    }
    if (T <= 0 || x_all->rows % T != 0 || x_all->cols != m->in_dim) {
        ur_tape_fail(tp, "jordan: input is %dx%d, expected T*B x %d with T = %d", x_all->rows,
                     x_all->cols, m->in_dim, T);
        return -1;
    }
    int B = x_all->rows / T;
    if (op->mode != UR_JORDAN_TEACHER && op->mode != UR_JORDAN_FREE &&
        op->mode != UR_JORDAN_SCHEDULED) {
        ur_tape_fail(tp, "jordan: unknown mode %d", (int)op->mode);
        return -1;
    }
    if (op->mode != UR_JORDAN_FREE &&
        (!targets || targets->rows != T * B || targets->cols != m->out_dim)) {
        ur_tape_fail(tp, "jordan: targets are %dx%d, expected %dx%d (T*B x out)",
                     targets ? targets->rows : 0, targets ? targets->cols : 0, T * B, m->out_dim);
        return -1;
    }
    if (y0 && (y0->rows != B || y0->cols != m->out_dim)) {
        ur_tape_fail(tp, "jordan: initial fed-back vector is %dx%d, expected %dx%d", y0->rows,
                     y0->cols, B, m->out_dim);
        return -1;
    }
    int needs_rng = op->mode == UR_JORDAN_SCHEDULED ||
                    (op->mode == UR_JORDAN_FREE && op->feed == UR_FEED_SAMPLE);
    if (needs_rng && !op->rng) {
        ur_tape_fail(tp, "jordan: scheduled sampling and sampled feeds need an rng");
        return -1;
    }
    if (op->mode == UR_JORDAN_SCHEDULED && !(op->p_teacher >= 0.0f && op->p_teacher <= 1.0f)) {
        ur_tape_fail(tp, "jordan: p_teacher %g is outside [0, 1]", (double)op->p_teacher);
        return -1;
    }
    return B;
}

ur_tensor *ur_jordan_run(ur_tape *tp, const ur_jordan *m, ur_tensor *x_all, int T,
                         ur_tensor *targets, ur_tensor *y0, const ur_jordan_opts *opts,
                         ur_tensor **H, ur_tensor **fed)
{
    static const ur_jordan_opts teacher = {.mode = UR_JORDAN_TEACHER, .feed = UR_FEED_OUTPUT,
                                           .p_teacher = 1.0f};
    const ur_jordan_opts *op = opts ? opts : &teacher;
    if (!ur_op_begin(tp, "jordan", 1, x_all)) return ur_tape_poison(tp);
    int B = check_args(tp, m, x_all, T, targets, y0, op);
    if (B < 0) return ur_tape_poison(tp);
    ur_tensor *mask = NULL;
    int full = 1; /* every row has T real steps */
    if (op->lengths) {
        if (ur_lengths_check(tp, "jordan", op->lengths, B, T, op->allow_empty) != 0)
            return ur_tape_poison(tp);
        for (int b = 0; b < B; b++) full &= op->lengths[b] == T;
        if (!full) mask = ur_length_mask(tp, T, B, op->lengths);
    }
    if (!y0) y0 = ur_input(tp, B, m->out_dim);
    ur_tensor *xu = ur_linear(tp, x_all, m->U, m->b); /* x_t U + b for every step at once */

    ur_tensor *Hs, *o, *Y;
    if (op->mode == UR_JORDAN_TEACHER) {
        ur_tensor *parts[2] = {y0, T > 1 ? ur_rows(tp, targets, 0, (T - 1) * B) : NULL};
        Y = T > 1 ? ur_concat_rows(tp, 2, parts) : y0;
        Hs = ur_tanh(tp, ur_addmm(tp, xu, Y, m->W));
        o = ur_linear(tp, Hs, m->V, m->c);
        if (mask) {
            o = ur_mask_rows(tp, o, mask);
            if (H) Hs = ur_mask_rows(tp, Hs, mask);
        }
    } else {
        ur_tensor **hs = ur_tape_alloc(tp, 3 * (size_t)T * sizeof *hs);
        if (!hs || ur_tape_error(tp)) return ur_tape_poison(tp);
        ur_tensor **os = hs + T, **ys = hs + 2 * T;
        ur_tensor *prev = y0;
        for (int t = 0; t < T; t++) {
            ur_tape_set_context(tp, "jordan", t); /* names the step (trap, drawings) */
            if (t > 0) {
                ur_tensor *own_o = os[t - 1];
                prev = op->mode == UR_JORDAN_FREE
                           ? own_feed(tp, own_o, op)
                           : scheduled_feed(tp, own_o, ur_rows(tp, targets, (t - 1) * B, B), op);
            }
            ys[t] = prev;
            hs[t] = ur_tanh(tp, ur_addmm(tp, ur_rows(tp, xu, t * B, B), prev, m->W));
            os[t] = ur_linear(tp, hs[t], m->V, m->c);
            int live = B;
            if (mask) {
                live = 0;
                for (int b = 0; b < B; b++) live += t < op->lengths[b];
            }
            if (live < B) {
                ur_tensor *mt = ur_rows(tp, mask, t * B, B);
                hs[t] = ur_mask_rows(tp, hs[t], mt);
                os[t] = ur_mask_rows(tp, os[t], mt);
            }
            ur_tape_set_context(tp, NULL, -1);
            if (ur_tape_error(tp)) return ur_tape_poison(tp);
        }
        Hs = ur_concat_rows(tp, T, hs);
        o = ur_concat_rows(tp, T, os);
        Y = fed ? ur_concat_rows(tp, T, ys) : NULL;
    }
    if (ur_tape_error(tp)) return ur_tape_poison(tp);
    if (H) *H = Hs;
    if (fed) *fed = Y;
    return o;
}
