/* Optimizers over a parameter set: SGD (momentum, Nesterov), Adagrad, RMSprop, Adam, AdamW.
 *
 * Notation, per scalar: p parameter, g its gradient, lr learning rate, wd weight decay,
 * t the step number counted from 1.
 *   SGD      g' = g + wd p;  v = mu v + g';  p -= lr (nesterov ? g' + mu v : v)   (mu = 0: p -= lr g')
 *   Adagrad  g' = g + wd p;  s += g'^2;  p -= lr g' / (sqrt(s) + eps)
 *   RMSprop  g' = g + wd p;  s = a s + (1 - a) g'^2;  u = g' / (sqrt(s) + eps);
 *            with momentum b = mu b + u, p -= lr b;  without, p -= lr u
 *   Adam     g' = g + wd p;  m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;
 *            p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *   AdamW    p -= lr wd p (decoupled), then Adam with g' = g
 * The state lives in one slab of n_slots x numel floats, allocated by ur_optim_new.
 */
#include "graph/ur_train.h"

#include "graph/finite.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ur_optim {
    ur_params *ps;
    ur_optim_config cfg;
    int n_params;     /* parameter count at creation; the step refuses a changed set */
    size_t numel;     /* scalars over all parameters */
    float *slot[2];   /* per-scalar state: momentum / accumulator / first and second moment */
    float *slab;
    long t;           /* steps taken */
    char err[192];    /* why the last step was refused */
};

ur_optim_config ur_optim_defaults(ur_optim_kind kind)
{
    ur_optim_config c = {0};
    c.kind = kind;
    c.lr = 0.01f;
    c.alpha = 0.99f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    switch (kind) {
    case UR_OPTIM_ADAGRAD: c.eps = 1e-10f; break;
    case UR_OPTIM_ADAM: c.lr = 1e-3f; break;
    case UR_OPTIM_ADAMW: c.lr = 1e-3f; c.weight_decay = 0.01f; break;
    default: break;
    }
    return c;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int in_unit(float x) { return x >= 0.0f && x < 1.0f; } /* false for NaN */

/* Checks cfg; returns NULL when fine, or what is wrong. */
static const char *config_problem(const ur_optim_config *c)
{
    if (c->kind < UR_OPTIM_SGD || c->kind > UR_OPTIM_ADAMW) return "unknown optimizer kind";
    if (!(c->lr >= 0.0f) || isinf(c->lr)) return "lr must be finite and >= 0";
    if (!(c->weight_decay >= 0.0f) || isinf(c->weight_decay))
        return "weight_decay must be finite and >= 0";
    if ((c->kind == UR_OPTIM_SGD || c->kind == UR_OPTIM_RMSPROP) && !in_unit(c->momentum))
        return "momentum must be in [0, 1)";
    if (c->kind == UR_OPTIM_SGD && c->nesterov && c->momentum == 0.0f)
        return "nesterov needs momentum > 0";
    if (c->kind == UR_OPTIM_RMSPROP && !in_unit(c->alpha)) return "alpha must be in [0, 1)";
    if ((c->kind == UR_OPTIM_ADAM || c->kind == UR_OPTIM_ADAMW) &&
        (!in_unit(c->beta1) || !in_unit(c->beta2)))
        return "beta1 and beta2 must be in [0, 1)";
    if (c->kind != UR_OPTIM_SGD && (!(c->eps > 0.0f) || isinf(c->eps)))
        return "eps must be finite and > 0";
    if (c->kind == UR_OPTIM_ADAGRAD && (!(c->initial_accumulator >= 0.0f) ||
                                        isinf(c->initial_accumulator)))
        return "initial_accumulator must be finite and >= 0";
    return NULL;
}

static int slot_count(const ur_optim_config *c)
{
    switch (c->kind) {
    case UR_OPTIM_SGD: return c->momentum > 0.0f ? 1 : 0;
    case UR_OPTIM_ADAGRAD: return 1;
    case UR_OPTIM_RMSPROP: return c->momentum > 0.0f ? 2 : 1;
    default: return 2;
    }
}

void ur_optim_reset(ur_optim *opt)
{
    if (!opt) return;
    opt->t = 0;
    float init0 = opt->cfg.kind == UR_OPTIM_ADAGRAD ? opt->cfg.initial_accumulator : 0.0f;
    for (int s = 0; s < 2; s++) {
        if (!opt->slot[s]) continue;
        for (size_t k = 0; k < opt->numel; k++) opt->slot[s][k] = s == 0 ? init0 : 0.0f;
    }
}

ur_optim *ur_optim_new(ur_params *ps, const ur_optim_config *cfg, char *err, size_t errlen)
{
    if (!ps || !cfg) {
        set_err(err, errlen, "optim_new: %s is NULL", ps ? "the configuration" : "the parameter set");
        return NULL;
    }
    const char *problem = config_problem(cfg);
    if (problem) {
        set_err(err, errlen, "optim_new: %s", problem);
        return NULL;
    }
    ur_optim *opt = calloc(1, sizeof *opt);
    if (!opt) goto oom;
    opt->ps = ps;
    opt->cfg = *cfg;
    opt->n_params = ur_params_count(ps);
    opt->numel = ur_params_numel(ps);
    int n_slots = slot_count(cfg);
    if (n_slots > 0 && opt->numel > 0) {
        opt->slab = malloc((size_t)n_slots * opt->numel * sizeof(float));
        if (!opt->slab) goto oom;
        for (int s = 0; s < n_slots; s++) opt->slot[s] = opt->slab + (size_t)s * opt->numel;
    }
    ur_optim_reset(opt);
    return opt;
oom:
    free(opt);
    set_err(err, errlen, "optim_new: out of memory");
    return NULL;
}

void ur_optim_free(ur_optim *opt)
{
    if (!opt) return;
    free(opt->slab);
    free(opt);
}

void ur_optim_set_lr(ur_optim *opt, float lr)
{
    if (opt && lr >= 0.0f && !isinf(lr)) opt->cfg.lr = lr;
}

float ur_optim_lr(const ur_optim *opt) { return opt ? opt->cfg.lr : 0.0f; }

long ur_optim_steps(const ur_optim *opt) { return opt ? opt->t : 0; }
const char *ur_optim_error(const ur_optim *opt) { return opt && opt->err[0] ? opt->err : NULL; }

/* Each update below works on one parameter: n scalars p, their gradients g and the state
 * arrays at the same offset. */

static void sgd_update(const ur_optim_config *c, size_t n, float *p, const float *g, float *v)
{
    const float lr = c->lr, wd = c->weight_decay, mu = c->momentum;
    for (size_t k = 0; k < n; k++) {
        float gk = g[k] + wd * p[k];
        if (v) {
            v[k] = mu * v[k] + gk;
            gk = c->nesterov ? gk + mu * v[k] : v[k];
        }
        p[k] -= lr * gk;
    }
}

static void adagrad_update(const ur_optim_config *c, size_t n, float *p, const float *g, float *s)
{
    const float lr = c->lr, wd = c->weight_decay, eps = c->eps;
    for (size_t k = 0; k < n; k++) {
        float gk = g[k] + wd * p[k];
        s[k] += gk * gk;
        p[k] -= lr * gk / (sqrtf(s[k]) + eps);
    }
}

static void rmsprop_update(const ur_optim_config *c, size_t n, float *p, const float *g, float *s,
                           float *b)
{
    const float lr = c->lr, wd = c->weight_decay, eps = c->eps, a = c->alpha, mu = c->momentum;
    for (size_t k = 0; k < n; k++) {
        float gk = g[k] + wd * p[k];
        s[k] = a * s[k] + (1.0f - a) * gk * gk;
        float u = gk / (sqrtf(s[k]) + eps);
        if (b) {
            b[k] = mu * b[k] + u;
            u = b[k];
        }
        p[k] -= lr * u;
    }
}

/* step_size = lr / (1 - b1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - b2^t), computed in double. */
static void adam_update(const ur_optim_config *c, size_t n, float *p, const float *g, float *m,
                        float *v, float step_size, float inv_sqrt_bc2)
{
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    const float l2 = c->kind == UR_OPTIM_ADAM ? c->weight_decay : 0.0f;
    const float shrink = c->kind == UR_OPTIM_ADAMW ? 1.0f - c->lr * c->weight_decay : 1.0f;
    for (size_t k = 0; k < n; k++) {
        float gk = g[k] + l2 * p[k];
        m[k] = b1 * m[k] + (1.0f - b1) * gk;
        v[k] = b2 * v[k] + (1.0f - b2) * gk * gk;
        p[k] = shrink * p[k] - step_size * m[k] / (sqrtf(v[k]) * inv_sqrt_bc2 + eps);
    }
}


int ur_optim_step(ur_optim *opt)
{
    if (!opt) return -1;
    opt->err[0] = '\0';
    if (ur_params_count(opt->ps) != opt->n_params || ur_params_numel(opt->ps) != opt->numel) {
        snprintf(opt->err, sizeof opt->err, "optim_step: the parameter set changed since the "
                 "optimizer was made (%d parameters then, %d now)", opt->n_params,
                 ur_params_count(opt->ps));
        return -1;
    }
    /* A non-finite gradient would write NaN into every parameter it touches (and, through
     * Adam's moments, into every later step): refuse it before changing anything. */
    for (int i = 0; i < opt->n_params; i++) {
        const ur_tensor *t = ur_params_at(opt->ps, i);
        size_t n = ur_numel(t), at = ur_first_non_finite(t->grad, n);
        if (at < n) {
            snprintf(opt->err, sizeof opt->err, "optim_step: the gradient of %s holds %s at "
                     "[%zu,%zu]; no parameter was changed", t->name,
                     isnan(t->grad[at]) ? "NaN" : "Inf", at / (size_t)t->cols,
                     at % (size_t)t->cols);
            return -1;
        }
    }
    const ur_optim_config *c = &opt->cfg;
    opt->t++;
    float step_size = 0.0f, inv_sqrt_bc2 = 0.0f;
    if (c->kind == UR_OPTIM_ADAM || c->kind == UR_OPTIM_ADAMW) {
        double bc1 = 1.0 - pow((double)c->beta1, (double)opt->t);
        double bc2 = 1.0 - pow((double)c->beta2, (double)opt->t);
        step_size = (float)((double)c->lr / bc1);
        inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    }
    size_t off = 0;
    for (int i = 0; i < opt->n_params; i++) {
        ur_tensor *t = ur_params_at(opt->ps, i);
        size_t n = ur_numel(t);
        float *s0 = opt->slot[0] ? opt->slot[0] + off : NULL;
        float *s1 = opt->slot[1] ? opt->slot[1] + off : NULL;
        switch (c->kind) {
        case UR_OPTIM_SGD: sgd_update(c, n, t->val, t->grad, s0); break;
        case UR_OPTIM_ADAGRAD: adagrad_update(c, n, t->val, t->grad, s0); break;
        case UR_OPTIM_RMSPROP: rmsprop_update(c, n, t->val, t->grad, s0, s1); break;
        case UR_OPTIM_ADAM:
        case UR_OPTIM_ADAMW:
            adam_update(c, n, t->val, t->grad, s0, s1, step_size, inv_sqrt_bc2);
            break;
        }
        off += n;
    }
    return 0;
}

size_t ur_optim_state_size(const ur_optim *opt)
{
    return opt ? (size_t)slot_count(&opt->cfg) * opt->numel : 0;
}

const float *ur_optim_state(const ur_optim *opt) { return opt ? opt->slab : NULL; }

int ur_optim_set_state(ur_optim *opt, const float *state, size_t n, long steps)
{
    if (!opt || n != ur_optim_state_size(opt) || (n && !state) || steps < 0) return -1;
    for (size_t k = 0; k < n; k++)
        if (!isfinite(state[k])) return -1;
    if (n) memcpy(opt->slab, state, n * sizeof *state);
    opt->t = steps;
    return 0;
}
