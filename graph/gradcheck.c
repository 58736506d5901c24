/* Finite-difference gradient check: backward's gradient a of each parameter scalar against a
 * numerical derivative n, passing when |a - n| <= atol + rtol |n|.
 *
 * The numerical derivative, for a scalar v and a step h:
 *   - float cannot hold v + h exactly, so the steps taken are a = fl(v + h) - v and
 *     b = v - fl(v - h) (both exact in double). The three-point formula through v - b, v, v + a
 *         D = (b^2 (f(v+a) - f(v)) + a^2 (f(v) - f(v-b))) / (a b (a + b))
 *     is the central difference when a = b and, by Taylor, D = f' + (a b / 6) f''' + ...
 *     whatever a and b are.
 *   - Richardson: D1 at h, D2 at 2h. Their leading errors are in the ratio p2 / p1
 *     (p = a b, about 4), so n = (p2 D1 - p1 D2) / (p2 - p1) removes them: error O(h^4).
 *   - The loss is read in double (ur_tensor.exact) when its last op accumulated in double,
 *     so rounding the loss to float (ulp(loss) / h, often 1e-5) does not swamp small gradients.
 */
#include "graph/ur_graph.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records "gradcheck: ..." in res->error and returns -1. */
static int gc_fail(ur_gradcheck_result *res, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int gc_fail(ur_gradcheck_result *res, const char *fmt, ...)
{
    int n = snprintf(res->error, sizeof res->error, "gradcheck: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error + n, sizeof res->error - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The loss in double when its op kept it (and nothing wrote val since), else the float. */
static double loss_value(const ur_tensor *l)
{
    if (l->has_exact && (float)l->exact == l->val[0]) return l->exact;
    return l->val[0];
}

/* One forward pass on a fresh tape; 0, or -1 with res->error naming why. */
static int eval(ur_tape *tp, ur_loss_fn f, void *ctx, double *loss, ur_gradcheck_result *res)
{
    ur_tape_reset(tp);
    ur_tensor *l = f(tp, ctx);
    if (ur_tape_error(tp)) return gc_fail(res, "forward failed: %s", ur_tape_error(tp));
    if (!l) return gc_fail(res, "forward returned NULL");
    if (l->rows != 1 || l->cols != 1)
        return gc_fail(res, "the loss must be 1 x 1, not %dx%d", l->rows, l->cols);
    *loss = loss_value(l);
    return 0;
}

/* The extrapolated derivative of the loss in *p (restored before returning). */
static int numeric(ur_tape *tp, ur_loss_fn f, void *ctx, float *p, double h, double f0,
                   double *out, ur_gradcheck_result *res)
{
    const float keep = *p;
    double d[2], prod[2];
    for (int s = 0; s < 2; s++) {
        double step = h * (s + 1), plus, minus;
        *p = (float)((double)keep + step);
        double a = (double)*p - keep;
        int bad = eval(tp, f, ctx, &plus, res);
        *p = (float)((double)keep - step);
        double b = keep - (double)*p;
        if (!bad) bad = eval(tp, f, ctx, &minus, res);
        *p = keep;
        if (bad) return -1;
        if (a <= 0 || b <= 0)
            return gc_fail(res, "step %g vanishes in float at the value %g", step, (double)keep);
        d[s] = (b * b * (plus - f0) + a * a * (f0 - minus)) / (a * b * (a + b));
        prod[s] = a * b;
    }
    *out = (prod[1] * d[0] - prod[0] * d[1]) / (prod[1] - prod[0]);
    return 0;
}

/* Picks k of n indices in increasing order (Knuth's selection sampling): index j is taken with
 * probability (k - taken) / (n - j), so exactly k are taken. */
static int take(ur_rng *rng, size_t j, size_t n, size_t k, size_t *taken)
{
    if (*taken >= k) return 0;
    double u = (double)(ur_rng_next(rng) >> 11) * 0x1p-53;
    if (u * (double)(n - j) >= (double)(k - *taken)) return 0;
    (*taken)++;
    return 1;
}

static void note(ur_gradcheck_result *res, ur_gradcheck_param *pp, int row, int col, double a,
                 double n)
{
    double err = fabs(a - n);
    double ratio = err / (res->atol + res->rtol * fabs(n));
    if (!(ratio <= INFINITY)) ratio = INFINITY; /* NaN */
    if (!(err <= INFINITY)) err = INFINITY;
    double big = fmax(fabs(a), fabs(n));
    int has_rel = big > res->atol;
    double rel = has_rel ? err / big : 0;
    if (!(rel <= INFINITY)) rel = INFINITY;

    if (pp->checked == 0 || err > pp->max_abs) {
        pp->max_abs = err;
        pp->abs_row = row, pp->abs_col = col;
    }
    if (has_rel && (pp->rel_row < 0 || rel > pp->max_rel)) {
        pp->max_rel = rel;
        pp->rel_row = row, pp->rel_col = col;
    }
    if (pp->checked == 0 || ratio > pp->worst_ratio) {
        pp->worst_ratio = ratio;
        pp->ratio_row = row, pp->ratio_col = col;
    }
    pp->checked++;
    pp->failed += !(ratio <= 1);

    if (res->checked == 0 || ratio > res->worst.ratio) {
        snprintf(res->worst.param, sizeof res->worst.param, "%s", pp->name);
        res->worst.row = row, res->worst.col = col;
        res->worst.analytic = a, res->worst.numeric = n;
        res->worst.ratio = ratio;
    }
    res->max_abs = fmax(res->max_abs, err);
    if (has_rel) res->max_rel = fmax(res->max_rel, rel);
    res->checked++;
    res->failures += !(ratio <= 1);
}

static int check_all(ur_params *ps, ur_loss_fn f, void *ctx, const ur_gradcheck_opts *o,
                     ur_tape *tp, float *analytic, ur_gradcheck_result *res)
{
    /* Analytic gradients, copied out because later forward passes reuse the tape. */
    ur_params_zero_grad(ps);
    ur_tape_reset(tp);
    ur_tensor *loss = f(tp, ctx);
    if (ur_backward(tp, loss) != 0)
        return gc_fail(res, "backward failed: %s", ur_tape_error(tp) ? ur_tape_error(tp) : "?");
    double f0 = loss_value(loss), again;
    if (!isfinite(f0)) return gc_fail(res, "the loss is not finite (%g)", f0);
    size_t at = 0;
    for (int k = 0; k < res->n_params; k++) {
        ur_tensor *p = ur_params_at(ps, k);
        memcpy(analytic + at, p->grad, ur_numel(p) * sizeof(float));
        at += ur_numel(p);
    }
    if (eval(tp, f, ctx, &again, res) != 0) return -1;
    if (again != f0)
        return gc_fail(res, "forward is not deterministic (loss %.9g then %.9g): dropout or "
                            "sampling?", f0, again);

    ur_rng rng;
    ur_rng_seed(&rng, o ? o->seed : 0);
    size_t k_want = o && o->samples > 0 ? (size_t)o->samples : 0;
    at = 0;
    for (int k = 0; k < res->n_params; k++) {
        ur_tensor *p = ur_params_at(ps, k);
        ur_gradcheck_param *pp = &res->params[k];
        size_t n = ur_numel(p), taken = 0, want = k_want && k_want < n ? k_want : n;
        for (size_t j = 0; j < n; j++) {
            if (!take(&rng, j, n, want, &taken)) continue;
            double num = 0;
            if (numeric(tp, f, ctx, &p->val[j], res->eps, f0, &num, res) != 0) {
                size_t len = strlen(res->error);
                snprintf(res->error + len, sizeof res->error - len, " (at %s[%d,%d])", pp->name,
                         (int)(j / (size_t)p->cols), (int)(j % (size_t)p->cols));
                return -1;
            }
            note(res, pp, (int)(j / (size_t)p->cols), (int)(j % (size_t)p->cols),
                 analytic[at + j], num);
        }
        at += n;
    }
    res->passed = res->failures == 0;
    return 0;
}

int ur_gradcheck(ur_params *ps, ur_loss_fn f, void *ctx, const ur_gradcheck_opts *opts,
                 ur_gradcheck_result *res)
{
    if (!res) return -1;
    memset(res, 0, sizeof *res);
    res->eps = opts && opts->eps > 0 ? opts->eps : UR_GRADCHECK_EPS;
    res->atol = opts && opts->atol > 0 ? opts->atol : UR_GRADCHECK_ATOL;
    res->rtol = opts && opts->rtol > 0 ? opts->rtol : UR_GRADCHECK_RTOL;
    if (!ps || !f) return gc_fail(res, "NULL argument");
    if (opts && opts->samples < 0) return gc_fail(res, "samples = %d is negative", opts->samples);

    res->n_params = ur_params_count(ps);
    res->params = calloc(res->n_params ? (size_t)res->n_params : 1, sizeof *res->params);
    size_t total = ur_params_numel(ps);
    float *analytic = malloc((total ? total : 1) * sizeof *analytic);
    ur_tape *tp = ur_tape_new(0);
    int rc;
    if (!res->params || !analytic || !tp) {
        rc = gc_fail(res, "out of memory");
    } else {
        for (int k = 0; k < res->n_params; k++) {
            ur_gradcheck_param *pp = &res->params[k];
            const char *name = ur_params_at(ps, k)->name;
            snprintf(pp->name, sizeof pp->name, "%s", name ? name : "?");
            pp->abs_row = pp->abs_col = pp->rel_row = pp->rel_col = -1;
            pp->ratio_row = pp->ratio_col = -1;
        }
        rc = check_all(ps, f, ctx, opts, tp, analytic, res);
    }
    if (rc != 0) {
        res->passed = 0;
        ur_gradcheck_result_free(res);
    }
    free(analytic);
    ur_tape_free(tp);
    return rc;
}

void ur_gradcheck_result_free(ur_gradcheck_result *res)
{
    if (!res) return;
    free(res->params);
    res->params = NULL;
    res->n_params = 0;
}
