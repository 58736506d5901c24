/* Parameter sets: named tensors that outlive tapes, each with a persistent gradient. */
#include "graph/ur_graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN UR_PARAM_NAME_MAX

struct ur_params {
    ur_tensor **items;
    int n, cap;
    char err[UR_PARAM_NAME_MAX + 96];
};

ur_params *ur_params_new(void) { return calloc(1, sizeof(ur_params)); }

static void param_free(ur_tensor *t)
{
    if (!t) return;
    free(t->val);
    free(t->grad);
    free((char *)t->name);
    free(t);
}

void ur_params_free(ur_params *ps)
{
    if (!ps) return;
    for (int k = 0; k < ps->n; k++) param_free(ps->items[k]);
    free(ps->items);
    free(ps);
}

ur_tensor *ur_params_add(ur_params *ps, const char *name, int rows, int cols)
{
    if (!ps) return NULL;
    ps->err[0] = '\0';
    if (!name || !*name || strlen(name) > NAME_MAX_LEN) {
        snprintf(ps->err, sizeof ps->err, "params_add: name must have 1 to %d bytes", NAME_MAX_LEN);
        return NULL;
    }
    if (rows <= 0 || cols <= 0 || (size_t)rows * (size_t)cols > ((size_t)1 << 31)) {
        snprintf(ps->err, sizeof ps->err, "params_add: %s: bad size %dx%d", name, rows, cols);
        return NULL;
    }
    if (ur_params_get(ps, name)) {
        snprintf(ps->err, sizeof ps->err, "params_add: %s: name already used", name);
        return NULL;
    }
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 16;
        ur_tensor **items = realloc(ps->items, (size_t)cap * sizeof *items);
        if (!items) goto oom;
        ps->items = items;
        ps->cap = cap;
    }
    ur_tensor *t = calloc(1, sizeof *t);
    size_t n = (size_t)rows * (size_t)cols;
    if (!t) goto oom;
    t->val = calloc(n, sizeof(float));
    t->grad = calloc(n, sizeof(float));
    t->name = malloc(strlen(name) + 1);
    if (!t->val || !t->grad || !t->name) { param_free(t); goto oom; }
    strcpy((char *)t->name, name);
    t->rows = rows;
    t->cols = cols;
    t->requires_grad = 1;
    ps->items[ps->n++] = t;
    return t;
oom:
    snprintf(ps->err, sizeof ps->err, "params_add: %s: out of memory", name);
    return NULL;
}

ur_tensor *ur_params_get(const ur_params *ps, const char *name)
{
    if (!ps || !name) return NULL;
    for (int k = 0; k < ps->n; k++)
        if (strcmp(ps->items[k]->name, name) == 0) return ps->items[k];
    return NULL;
}

int ur_params_count(const ur_params *ps) { return ps ? ps->n : 0; }

ur_tensor *ur_params_at(const ur_params *ps, int k)
{
    return ps && k >= 0 && k < ps->n ? ps->items[k] : NULL;
}

size_t ur_params_numel(const ur_params *ps)
{
    size_t n = 0;
    for (int k = 0; ps && k < ps->n; k++) n += ur_numel(ps->items[k]);
    return n;
}

void ur_params_zero_grad(ur_params *ps)
{
    for (int k = 0; ps && k < ps->n; k++)
        memset(ps->items[k]->grad, 0, ur_numel(ps->items[k]) * sizeof(float));
}

const char *ur_params_error(const ur_params *ps) { return ps && ps->err[0] ? ps->err : NULL; }
