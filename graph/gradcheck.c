/* Finite-difference gradient check: backward's gradient of every parameter scalar against
 * the central difference (f(p + eps) - f(p - eps)) / 2 eps, the loss evaluated in float. */
#include "graph/ur_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int eval(ur_tape *tp, ur_loss_fn f, void *ctx, double *loss)
{
    ur_tape_reset(tp);
    ur_tensor *l = f(tp, ctx);
    if (ur_tape_error(tp) || !l || l->rows != 1 || l->cols != 1) return -1;
    *loss = l->val[0];
    return 0;
}

static int fail(ur_gradcheck_result *res, ur_tape *tp, const char *what)
{
    snprintf(res->param, sizeof res->param, "%s", ur_tape_error(tp) ? ur_tape_error(tp) : what);
    ur_tape_free(tp);
    return -1;
}

int ur_gradcheck(ur_params *ps, ur_loss_fn f, void *ctx, double eps, ur_gradcheck_result *res)
{
    if (!res) return -1;
    memset(res, 0, sizeof *res);
    if (!ps || !f) { snprintf(res->param, sizeof res->param, "gradcheck: NULL argument"); return -1; }
    if (eps <= 0) eps = 1e-2;
    ur_tape *tp = ur_tape_new(0);
    if (!tp) { snprintf(res->param, sizeof res->param, "gradcheck: out of memory"); return -1; }

    /* Analytic gradients, copied out because later forward passes reuse the tape. */
    size_t total = ur_params_numel(ps);
    float *analytic = malloc((total ? total : 1) * sizeof *analytic);
    if (!analytic) return fail(res, tp, "gradcheck: out of memory");
    ur_params_zero_grad(ps);
    ur_tape_reset(tp);
    ur_tensor *loss = f(tp, ctx);
    if (ur_backward(tp, loss) != 0) { free(analytic); return fail(res, tp, "gradcheck: backward failed"); }
    size_t at = 0;
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(analytic + at, p->grad, ur_numel(p) * sizeof(float));
        at += ur_numel(p);
    }

    at = 0;
    for (int k = 0; k < ur_params_count(ps); k++) {
        ur_tensor *p = ur_params_at(ps, k);
        for (size_t j = 0; j < ur_numel(p); j++, at++) {
            float keep = p->val[j];
            double plus, minus;
            p->val[j] = keep + (float)eps;
            double h1 = (double)p->val[j] - keep; /* the step float actually took */
            int bad = eval(tp, f, ctx, &plus);
            p->val[j] = keep - (float)eps;
            double h2 = keep - (double)p->val[j];
            bad |= eval(tp, f, ctx, &minus);
            p->val[j] = keep;
            if (bad) { free(analytic); return fail(res, tp, "gradcheck: forward failed"); }
            double numeric = (plus - minus) / (h1 + h2);
            double a = analytic[at];
            double scale = fmax(1.0, fmax(fabs(a), fabs(numeric)));
            double err = fabs(a - numeric) / scale;
            res->checked++;
            if (err > res->worst || res->checked == 1) {
                res->worst = err;
                snprintf(res->param, sizeof res->param, "%s", p->name);
                res->row = (int)(j / (size_t)p->cols);
                res->col = (int)(j % (size_t)p->cols);
                res->analytic = a;
                res->numeric = numeric;
            }
        }
    }
    free(analytic);
    ur_tape_free(tp);
    return 0;
}
