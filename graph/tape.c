/* The tape: an arena of large chunks, the list of recorded nodes, the sticky error, and
 * backward. Reset rewinds the arena to its first chunk and keeps every chunk, so a training
 * loop that records the same graph each step stops allocating after its first step. */
#include "graph/ur_graph.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64
#define DEFAULT_CHUNK ((size_t)1 << 20)
#define ERR_LEN 512

typedef struct chunk {
    struct chunk *next;
    size_t size;     /* usable bytes after the header */
    size_t used;
    unsigned char *data;
} chunk;

struct ur_tape {
    chunk *first, *cur;
    size_t chunk_bytes;
    size_t reserved;       /* bytes of every chunk's data */
    size_t used_before;    /* bytes used in the chunks before cur */
    ur_node *last;
    int n_nodes;
    int failed;
    char err[ERR_LEN];
    float poison_val;
    ur_tensor poison;
};

static chunk *chunk_new(size_t size)
{
    chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->data = aligned_alloc(ARENA_ALIGN, size);
    if (!c->data) { free(c); return NULL; }
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

ur_tape *ur_tape_new(size_t chunk_bytes)
{
    ur_tape *tp = calloc(1, sizeof *tp);
    if (!tp) return NULL;
    if (chunk_bytes == 0) chunk_bytes = DEFAULT_CHUNK;
    tp->chunk_bytes = (chunk_bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    tp->first = tp->cur = chunk_new(tp->chunk_bytes);
    if (!tp->first) { free(tp); return NULL; }
    tp->reserved = tp->chunk_bytes;
    tp->poison_val = NAN;
    tp->poison.rows = tp->poison.cols = 1;
    tp->poison.val = &tp->poison_val;
    tp->poison.tape = tp;
    tp->poison.name = "poison";
    return tp;
}

void ur_tape_free(ur_tape *tp)
{
    if (!tp) return;
    for (chunk *c = tp->first, *next; c; c = next) {
        next = c->next;
        free(c->data);
        free(c);
    }
    free(tp);
}

void ur_tape_reset(ur_tape *tp)
{
    if (!tp) return;
    for (chunk *c = tp->first; c; c = c->next) c->used = 0;
    tp->cur = tp->first;
    tp->used_before = 0;
    tp->last = NULL;
    tp->n_nodes = 0;
    tp->failed = 0;
    tp->err[0] = '\0';
    tp->poison_val = NAN;
    tp->poison.grad = NULL;
}

size_t ur_tape_arena_bytes(const ur_tape *tp) { return tp ? tp->reserved : 0; }
size_t ur_tape_used_bytes(const ur_tape *tp) { return tp ? tp->used_before + tp->cur->used : 0; }
int ur_tape_node_count(const ur_tape *tp) { return tp ? tp->n_nodes : 0; }
const char *ur_tape_error(const ur_tape *tp) { return tp && tp->failed ? tp->err : NULL; }
ur_tensor *ur_tape_poison(ur_tape *tp) { return tp ? &tp->poison : NULL; }

ur_tensor *ur_tape_fail(ur_tape *tp, const char *fmt, ...)
{
    if (!tp) return NULL;
    if (!tp->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tp->err, sizeof tp->err, fmt, ap);
        va_end(ap);
        tp->failed = 1;
    }
    return &tp->poison;
}

void *ur_tape_alloc(ur_tape *tp, size_t bytes)
{
    if (!tp || tp->failed) return NULL;
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need < bytes) { ur_tape_fail(tp, "tape: allocation of %zu bytes overflows", bytes); return NULL; }
    chunk *c = tp->cur;
    /* Move on through the chunks kept from earlier steps before asking the system. */
    while (c->size - c->used < need) {
        if (c->next && c->next->size >= need) {
            tp->used_before += c->used;
            c = tp->cur = c->next;
            continue;
        }
        size_t size = need > tp->chunk_bytes ? need : tp->chunk_bytes;
        chunk *fresh = chunk_new(size);
        if (!fresh) { ur_tape_fail(tp, "tape: out of memory allocating %zu bytes", size); return NULL; }
        /* Insert after c: later chunks stay available for later steps. */
        fresh->next = c->next;
        c->next = fresh;
        tp->reserved += size;
        tp->used_before += c->used;
        c = tp->cur = fresh;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

ur_tensor *ur_tensor_new(ur_tape *tp, int rows, int cols)
{
    if (!tp || tp->failed) return NULL;
    if (rows <= 0 || cols <= 0) {
        ur_tape_fail(tp, "tensor: bad size %dx%d (both must be positive)", rows, cols);
        return NULL;
    }
    size_t n = (size_t)rows * (size_t)cols;
    if (n > ((size_t)1 << 34)) { ur_tape_fail(tp, "tensor: size %dx%d is too large", rows, cols); return NULL; }
    ur_tensor *t = ur_tape_alloc(tp, sizeof *t);
    float *v = ur_tape_alloc(tp, n * sizeof *v);
    if (!t || !v) return NULL;
    memset(t, 0, sizeof *t);
    t->rows = rows;
    t->cols = cols;
    t->val = v;
    t->tape = tp;
    return t;
}

float *ur_grad(ur_tensor *t)
{
    if (t->grad) return t->grad;
    if (t->base) {
        float *g = ur_grad(t->base);
        if (g) t->grad = g + t->offset;
        return t->grad;
    }
    float *g = ur_tape_alloc(t->tape, ur_numel(t) * sizeof *g);
    if (!g) return NULL;
    memset(g, 0, ur_numel(t) * sizeof *g);
    t->grad = g;
    return g;
}

int ur_op_begin(ur_tape *tp, const char *op, int n, ...)
{
    if (!tp) return 0;
    if (tp->failed) return 0;
    va_list ap;
    va_start(ap, n);
    int ok = 1;
    for (int k = 0; k < n; k++) {
        ur_tensor *t = va_arg(ap, ur_tensor *);
        if (!t) {
            ur_tape_fail(tp, "%s: input %d is NULL", op, k + 1);
            ok = 0;
            break;
        }
    }
    va_end(ap);
    return ok;
}

ur_tensor *ur_shape_error(ur_tape *tp, const char *op, const char *what,
                          const ur_tensor *a, const ur_tensor *b)
{
    return ur_tape_fail(tp, "%s: %s: %dx%d and %dx%d", op, what, a->rows, a->cols, b->rows,
                        b->cols);
}

ur_node *ur_record_array(ur_tape *tp, const ur_op *op, ur_tensor *out, int n_in,
                         ur_tensor *const *in)
{
    int needs = 0;
    for (int k = 0; k < n_in; k++) needs |= in[k]->requires_grad;
    if (!needs || tp->failed) return NULL;
    ur_node *n = ur_tape_alloc(tp, sizeof *n + (size_t)n_in * sizeof(ur_tensor *));
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->in = (ur_tensor **)(n + 1);
    memcpy(n->in, in, (size_t)n_in * sizeof(ur_tensor *));
    n->n_in = n_in;
    n->op = op;
    n->out = out;
    n->prev = tp->last;
    tp->last = n;
    tp->n_nodes++;
    out->node = n;
    out->requires_grad = 1;
    return n;
}

void ur_record_second_output(ur_node *node, ur_tensor *out2)
{
    node->out2 = out2;
    out2->node = node;
    out2->requires_grad = 1;
}

#define MAX_VA_INPUTS 8
ur_node *ur_record(ur_tape *tp, const ur_op *op, ur_tensor *out, int n_in, ...)
{
    ur_tensor *in[MAX_VA_INPUTS];
    if (n_in > MAX_VA_INPUTS) {
        ur_tape_fail(tp, "%s: ur_record takes at most %d inputs; use ur_record_array", op->name,
                     MAX_VA_INPUTS);
        return NULL;
    }
    va_list ap;
    va_start(ap, n_in);
    for (int k = 0; k < n_in; k++) in[k] = va_arg(ap, ur_tensor *);
    va_end(ap);
    return ur_record_array(tp, op, out, n_in, in);
}

int ur_backward(ur_tape *tp, ur_tensor *loss)
{
    if (!tp) return -1;
    if (tp->failed) return -1;
    if (!loss) { ur_tape_fail(tp, "backward: loss is NULL"); return -1; }
    if (loss->rows != 1 || loss->cols != 1) {
        ur_tape_fail(tp, "backward: loss must be 1x1, got %dx%d", loss->rows, loss->cols);
        return -1;
    }
    if (!loss->requires_grad) {
        ur_tape_fail(tp, "backward: the loss does not depend on any parameter");
        return -1;
    }
    float *g = ur_grad(loss);
    if (!g) return -1;
    /* Make every gradient buffer first, so that no backward can meet an allocation failure
     * half-way; a node whose output received no gradient is still skipped below. */
    for (ur_node *n = tp->last; n; n = n->prev) {
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k]->requires_grad && !ur_grad(n->in[k])) return -1;
        /* A two-output node sees both gradients, zero where nothing flowed. */
        if (n->out2 && (!ur_grad(n->out) || !ur_grad(n->out2))) return -1;
    }
    g[0] += 1.0f;
    for (ur_node *n = tp->last; n; n = n->prev)
        if (n->out->grad) n->op->backward(n);
    return tp->failed ? -1 : 0;
}
