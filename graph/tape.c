/* The tape: an arena of large chunks, the list of recorded nodes, the sticky error, and
 * backward. Reset rewinds the arena to its first chunk and keeps every chunk, so a training
 * loop that records the same graph each step stops allocating after its first step. */
#include "graph/ur_graph.h"

#include "graph/finite.h"

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
    size_t size;     /* usable bytes */
    size_t used;
    unsigned char *data;
} chunk;

/* A list of chunks with bump allocation; reset rewinds it and keeps every chunk. */
typedef struct arena {
    chunk *first, *cur;
    size_t chunk_bytes;
    size_t reserved;       /* bytes of every chunk's data */
    size_t used_before;    /* bytes used in the chunks before cur */
} arena;

/* Tensor headers live apart from values, in HEADER_POOLS pools used in turn, one per
 * generation: a header of one of the last HEADER_POOLS - 1 generations is never overwritten,
 * so its generation stamp still tells it is stale (see ur_tensor_is_live). */
#define HEADER_POOLS 4
#define HEADER_CHUNK ((size_t)64 << 10)

struct ur_tape {
    arena main;
    arena hdr[HEADER_POOLS];
    unsigned gen;          /* generation: 1 at creation, + 1 per reset */
    ur_node *last;
    int n_nodes;
    int failed;
    int backward_runs;     /* backward passes since the last reset */
    int retained;          /* the last backward allowed another one */
    int check_finite;
    const char *ctx_what;  /* recording context (ur_tape_set_context) */
    int ctx_step;
    int step_offset;       /* added to the steps given to ur_tape_set_context */
    size_t peak;           /* the most bytes used before any reset so far */
    size_t limit;          /* ur_tape_set_limit's bytes; 0: none */
    ur_tape *scratch;      /* ur_tape_scratch's tape, made on first use */
    char err[ERR_LEN];
    float poison_val;
    ur_tensor poison;
};

/* Bytes the tape's own arenas have reserved (its scratch tape's not included). */
static size_t own_reserved(const ur_tape *tp)
{
    size_t n = tp->main.reserved;
    for (int k = 0; k < HEADER_POOLS; k++) n += tp->hdr[k].reserved;
    return n;
}

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

static int arena_init(arena *a, size_t chunk_bytes)
{
    memset(a, 0, sizeof *a);
    a->chunk_bytes = chunk_bytes;
    a->first = a->cur = chunk_new(chunk_bytes);
    if (!a->first) return -1;
    a->reserved = chunk_bytes;
    return 0;
}

static void arena_free(arena *a)
{
    for (chunk *c = a->first, *next; c; c = next) {
        next = c->next;
        free(c->data);
        free(c);
    }
    a->first = a->cur = NULL;
}

static void arena_reset(arena *a)
{
    for (chunk *c = a->first; c; c = c->next) c->used = 0;
    a->cur = a->first;
    a->used_before = 0;
}

static size_t arena_used(const arena *a) { return a->used_before + a->cur->used; }

/* need: a multiple of ARENA_ALIGN. NULL when the system has no memory, or when a new chunk
 * would take more than *room bytes (room NULL: no limit; else lowered by each new chunk). */
static void *arena_alloc(arena *a, size_t need, size_t *failed_size, size_t *room)
{
    chunk *c = a->cur;
    /* Move on through the chunks kept from earlier steps before asking the system. */
    while (c->size - c->used < need) {
        if (c->next && c->next->size >= need) {
            a->used_before += c->used;
            c = a->cur = c->next;
            continue;
        }
        size_t size = need > a->chunk_bytes ? need : a->chunk_bytes;
        if (room && size > *room) size = need; /* the last room: no more than asked for */
        chunk *fresh = room && size > *room ? NULL : chunk_new(size);
        if (!fresh) { *failed_size = size; return NULL; }
        if (room) *room -= size;
        /* Insert after c: later chunks stay available for later steps. */
        fresh->next = c->next;
        c->next = fresh;
        a->reserved += size;
        a->used_before += c->used;
        c = a->cur = fresh;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

/* Largest chunk size asked for: far beyond any real tape, and safe from overflow. */
#define MAX_CHUNK ((size_t)1 << 40)

ur_tape *ur_tape_new(size_t chunk_bytes)
{
    if (chunk_bytes == 0) chunk_bytes = DEFAULT_CHUNK;
    if (chunk_bytes > MAX_CHUNK) return NULL;
    ur_tape *tp = calloc(1, sizeof *tp);
    if (!tp) return NULL;
    chunk_bytes = (chunk_bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    int ok = arena_init(&tp->main, chunk_bytes) == 0;
    for (int k = 0; k < HEADER_POOLS; k++) ok = ok && arena_init(&tp->hdr[k], HEADER_CHUNK) == 0;
    if (!ok) {
        arena_free(&tp->main);
        for (int k = 0; k < HEADER_POOLS; k++) arena_free(&tp->hdr[k]);
        free(tp);
        return NULL;
    }
    tp->gen = 1;
    tp->ctx_step = -1;
    tp->poison_val = NAN;
    tp->poison.rows = tp->poison.cols = 1;
    tp->poison.val = &tp->poison_val;
    tp->poison.tape = tp;
    tp->poison.gen = tp->gen;
    tp->poison.name = "poison";
    return tp;
}

void ur_tape_free(ur_tape *tp)
{
    if (!tp) return;
    ur_tape_free(tp->scratch);
    arena_free(&tp->main);
    for (int k = 0; k < HEADER_POOLS; k++) arena_free(&tp->hdr[k]);
    free(tp);
}

void ur_tape_reset(ur_tape *tp)
{
    if (!tp) return;
    size_t used = ur_tape_used_bytes(tp);
    if (used > tp->peak) tp->peak = used;
    arena_reset(&tp->main);
    tp->gen = tp->gen + 1 ? tp->gen + 1 : 1;
    arena_reset(&tp->hdr[tp->gen % HEADER_POOLS]);
    tp->last = NULL;
    tp->n_nodes = 0;
    tp->failed = 0;
    tp->backward_runs = 0;
    tp->retained = 0;
    tp->ctx_what = NULL;
    tp->ctx_step = -1;
    tp->step_offset = 0;
    tp->err[0] = '\0';
    tp->poison_val = NAN;
    tp->poison.grad = NULL;
    tp->poison.gen = tp->gen;
}

size_t ur_tape_arena_bytes(const ur_tape *tp)
{
    return tp ? own_reserved(tp) + ur_tape_arena_bytes(tp->scratch) : 0;
}

void ur_tape_set_limit(ur_tape *tp, size_t bytes)
{
    if (!tp) return;
    tp->limit = bytes;
    if (tp->scratch) tp->scratch->limit = bytes;
}
size_t ur_tape_limit(const ur_tape *tp) { return tp ? tp->limit : 0; }
size_t ur_tape_used_bytes(const ur_tape *tp)
{
    return tp ? arena_used(&tp->main) + arena_used(&tp->hdr[tp->gen % HEADER_POOLS]) : 0;
}
size_t ur_tape_peak_bytes(const ur_tape *tp)
{
    if (!tp) return 0;
    size_t used = ur_tape_used_bytes(tp);
    return (used > tp->peak ? used : tp->peak) + ur_tape_peak_bytes(tp->scratch);
}
int ur_tape_node_count(const ur_tape *tp) { return tp ? tp->n_nodes : 0; }
ur_node *ur_tape_last(const ur_tape *tp) { return tp ? tp->last : NULL; }

ur_tape *ur_tape_scratch(ur_tape *tp)
{
    if (!tp) return NULL;
    if (!tp->scratch) tp->scratch = ur_tape_new(tp->main.chunk_bytes);
    if (tp->scratch) {
        tp->scratch->check_finite = tp->check_finite;
        tp->scratch->limit = tp->limit;
    }
    return tp->scratch;
}
const char *ur_tape_error(const ur_tape *tp) { return tp && tp->failed ? tp->err : NULL; }
ur_tensor *ur_tape_poison(ur_tape *tp) { return tp ? &tp->poison : NULL; }
unsigned ur_tape_generation(const ur_tape *tp) { return tp ? tp->gen : 0; }
void ur_tape_check_finite(ur_tape *tp, int on) { if (tp) tp->check_finite = on != 0; }

void ur_tape_set_context(ur_tape *tp, const char *what, int step)
{
    if (!tp) return;
    tp->ctx_what = what;
    tp->ctx_step = what && step >= 0 ? step + tp->step_offset : -1;
}

void ur_tape_set_step_offset(ur_tape *tp, int offset)
{
    if (tp) tp->step_offset = offset;
}
int ur_tape_step_offset(const ur_tape *tp) { return tp ? tp->step_offset : 0; }

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

/* need bytes (a multiple of ARENA_ALIGN) from arena a of tp, within tp's limit; fails the tape
 * and returns NULL when the system or the limit refuses. */
static void *arena_take(ur_tape *tp, arena *a, size_t need)
{
    size_t size = 0, used = tp->limit ? own_reserved(tp) : 0;
    size_t room = tp->limit > used ? tp->limit - used : 0;
    void *p = arena_alloc(a, need, &size, tp->limit ? &room : NULL);
    if (p) return p;
    if (tp->limit && size > room)
        ur_tape_fail(tp, "tape: memory limit of %zu bytes reached (%zu reserved, %zu more asked "
                     "for; see ur_tape_set_limit)", tp->limit, used, size);
    else
        ur_tape_fail(tp, "tape: out of memory allocating %zu bytes", size);
    return NULL;
}

static void *tape_alloc(ur_tape *tp, arena *a, size_t bytes)
{
    if (!tp || tp->failed) return NULL;
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need < bytes || need > MAX_CHUNK) {
        ur_tape_fail(tp, "tape: allocation of %zu bytes is too large", bytes);
        return NULL;
    }
    return arena_take(tp, a, need);
}

void *ur_tape_alloc(ur_tape *tp, size_t bytes) { return tp ? tape_alloc(tp, &tp->main, bytes) : NULL; }

ur_tensor *ur_tensor_header(ur_tape *tp)
{
    if (!tp) return NULL;
    if (tp->failed) return NULL;
    size_t need = (sizeof(ur_tensor) + 15) / 16 * 16;
    ur_tensor *t = arena_take(tp, &tp->hdr[tp->gen % HEADER_POOLS], need);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->tape = tp;
    t->gen = tp->gen;
    return t;
}

int ur_tensor_is_live(const ur_tensor *t)
{
    return t && (!t->tape || t->gen == t->tape->gen);
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
    ur_tensor *t = ur_tensor_header(tp);
    float *v = ur_tape_alloc(tp, n * sizeof *v);
    if (!t || !v) return NULL;
    t->rows = rows;
    t->cols = cols;
    t->val = v;
    return t;
}

/* t's gradient buffer, made on first use without filling it: the root it lies in counts its
 * leading elements not yet zero-filled, and ur_grad fills a tensor's part of them when an op
 * first reaches it. A backward makes every buffer up front this way, and meets the views of a
 * time-stacked gradient from the last step down, so it fills each step's rows just before
 * they are written, while they are in cache, instead of a pass over all of them first. */
static float *reserve_grad(ur_tensor *t)
{
    if (t->grad) return t->grad;
    if (t->base) {
        float *g = reserve_grad(t->base);
        if (g) t->grad = g + t->offset;
        return t->grad;
    }
    float *g = ur_tape_alloc(t->tape, ur_numel(t) * sizeof *g);
    if (!g) return NULL;
    t->grad = g;
    t->grad_unfilled = ur_numel(t);
    return g;
}

/* The root t lies in, and in *at the index of t's first element there. */
static ur_tensor *root_at(ur_tensor *t, size_t *at)
{
    *at = 0;
    for (; t->base; t = t->base) *at += t->offset;
    return t;
}

float *ur_grad(ur_tensor *t)
{
    if (!reserve_grad(t)) return NULL;
    size_t at;
    ur_tensor *r = root_at(t, &at);
    if (at < r->grad_unfilled) { /* then every element from t's first on is filled */
        memset(r->grad + at, 0, (r->grad_unfilled - at) * sizeof(float));
        r->grad_unfilled = at;
    }
    return t->grad;
}

float *ur_grad_write(ur_tensor *t, int *fresh)
{
    *fresh = 0;
    if (!reserve_grad(t)) return NULL;
    size_t at;
    ur_tensor *r = root_at(t, &at);
    if (r->grad_unfilled != at + ur_numel(t)) return ur_grad(t);
    r->grad_unfilled = at; /* t is the unfilled part's top: the caller's stores fill it */
    *fresh = 1;
    return t->grad;
}

/* 1 when t's gradient buffer exists and is filled (an op wrote it or ur_grad zeroed it). */
static int grad_filled(ur_tensor *t)
{
    size_t at;
    return t->grad && root_at(t, &at)->grad_unfilled <= at;
}

/* 0 after failing the tape when input k (1-based) of op cannot be used on tp. */
static int check_input(ur_tape *tp, const char *op, int k, const ur_tensor *t)
{
    if (!t) {
        ur_tape_fail(tp, "%s: input %d is NULL", op, k);
        return 0;
    }
    if (!t->tape) return 1; /* a parameter (or a tensor the caller owns) */
    if (t->tape != tp) {
        ur_tape_fail(tp, "%s: input %d (%dx%d) belongs to another tape", op, k, t->rows, t->cols);
        return 0;
    }
    if (t->gen != tp->gen) {
        ur_tape_fail(tp, "%s: input %d is stale: it was recorded before the last ur_tape_reset "
                     "(generation %u, the tape is at %u); carry values across a reset with "
                     "ur_detach or ur_input_from before resetting", op, k, t->gen, tp->gen);
        return 0;
    }
    return 1;
}

int ur_op_begin(ur_tape *tp, const char *op, int n, ...)
{
    if (!tp) return 0;
    if (tp->failed) return 0;
    va_list ap;
    va_start(ap, n);
    int ok = 1;
    for (int k = 0; k < n && ok; k++) ok = check_input(tp, op, k + 1, va_arg(ap, ur_tensor *));
    va_end(ap);
    return ok;
}

int ur_op_begin_array(ur_tape *tp, const char *op, int n, ur_tensor *const *x)
{
    if (!tp || tp->failed) return 0;
    if (n <= 0 || !x) {
        ur_tape_fail(tp, "%s: needs at least one tensor, got %d", op, x ? n : 0);
        return 0;
    }
    for (int k = 0; k < n; k++)
        if (!check_input(tp, op, k + 1, x[k])) return 0;
    return 1;
}

ur_tensor *ur_shape_error(ur_tape *tp, const char *op, const char *what,
                          const ur_tensor *a, const ur_tensor *b)
{
    return ur_tape_fail(tp, "%s: %s: %dx%d and %dx%d", op, what, a->rows, a->cols, b->rows,
                        b->cols);
}

/* ---- The non-finite trap ----------------------------------------------------------------- */


static void describe_context(char *buf, size_t len, const char *what, int step)
{
    if (what && step >= 0) snprintf(buf, len, "; recorded in '%s' at time step %d", what, step);
    else if (what) snprintf(buf, len, "; recorded in '%s'", what);
    else buf[0] = '\0';
}

/* Fails the tape when v (t's values or gradient) holds a NaN or Inf. input: 0 for an op's
 * output in forward, else the 1-based input whose gradient a backward produced. */
static int trap(ur_tape *tp, const ur_tensor *t, const float *v, const char *op, int node,
                const char *what, int step, int input)
{
    size_t n = ur_numel(t), at = ur_first_non_finite(v, n);
    if (at == n) return 0;
    char ctx[160];
    describe_context(ctx, sizeof ctx, what, step);
    const char *kind = isnan(v[at]) ? "NaN" : v[at] > 0 ? "+Inf" : "-Inf";
    size_t row = at / (size_t)t->cols, col = at % (size_t)t->cols;
    if (input)
        ur_tape_fail(tp, "non-finite value: backward of op '%s' (node %d) gave %s in the "
                     "gradient of input %d (%dx%d) at [%zu,%zu]%s", op, node, kind, input,
                     t->rows, t->cols, row, col, ctx);
    else
        ur_tape_fail(tp, "non-finite value: forward of op '%s' (node %d) gave %s in its %dx%d "
                     "output at [%zu,%zu]%s", op, node, kind, t->rows, t->cols, row, col, ctx);
    return -1;
}

static void check_forward(ur_tape *tp, const ur_op *op, const ur_tensor *out)
{
    if (tp->check_finite)
        trap(tp, out, out->val, op->name, tp->n_nodes, tp->ctx_what, tp->ctx_step, 0);
}

ur_node *ur_record_array(ur_tape *tp, const ur_op *op, ur_tensor *out, int n_in,
                         ur_tensor *const *in)
{
    if (!tp || tp->failed) return NULL;
    check_forward(tp, op, out);
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
    n->index = tp->n_nodes;
    n->ctx_what = tp->ctx_what;
    n->ctx_step = tp->ctx_step;
    n->prev = tp->last;
    tp->last = n;
    tp->n_nodes++;
    out->node = n;
    out->requires_grad = 1;
    return n;
}

void ur_record_second_output(ur_node *node, ur_tensor *out2)
{
    ur_tape *tp = out2->tape;
    if (tp && tp->check_finite)
        trap(tp, out2, out2->val, node->op->name, node->index, node->ctx_what, node->ctx_step,
             0);
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

/* ---- Backward ---------------------------------------------------------------------------- */

/* Zeroes the gradients of every op's outputs (not of parameters and leaves), so that a
 * backward run again on the same recording starts from clean intermediate gradients. */
static void zero_intermediate_grads(ur_tape *tp)
{
    for (ur_node *n = tp->last; n; n = n->prev) {
        if (n->out->grad) memset(n->out->grad, 0, ur_numel(n->out) * sizeof(float));
        if (n->out2 && n->out2->grad) memset(n->out2->grad, 0, ur_numel(n->out2) * sizeof(float));
    }
}

/* Checks that tp may run a backward and makes every gradient buffer it will need (unfilled:
 * ur_grad fills each on first use); seeds come after this (a re-run zeroes the intermediate
 * gradients first). 0, or -1 with tp failed. */
static int backward_begin(ur_tape *tp, int retain)
{
    if (tp->backward_runs > 0 && !tp->retained) {
        ur_tape_fail(tp, "backward: this recording was already back-propagated; ur_tape_reset "
                     "and record the forward pass again, or use ur_backward_retain to allow "
                     "another backward (the gradients then add up)");
        return -1;
    }
    /* Make every gradient buffer first, so that no backward can meet an allocation failure
     * half-way; a node whose output received no gradient is still skipped below. */
    for (ur_node *n = tp->last; n; n = n->prev) {
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k]->requires_grad && !reserve_grad(n->in[k])) return -1;
        /* A two-output node sees both gradients, zero where nothing flowed. */
        if (n->out2 && (!reserve_grad(n->out) || !reserve_grad(n->out2))) return -1;
    }
    if (tp->backward_runs > 0) zero_intermediate_grads(tp);
    tp->backward_runs++;
    tp->retained = retain;
    return 0;
}

/* Fills what no op reached of every gradient buffer of the recording (the rows of a tensor
 * outside its views that ops read, say), so that it reads as zero after the backward, as if
 * it had been filled up front. */
static void fill_unreached(ur_tensor *t)
{
    size_t at;
    ur_tensor *r = root_at(t, &at);
    if (r->grad && r->grad_unfilled) ur_grad(r);
}

static void fill_unreached_grads(ur_tape *tp)
{
    for (ur_node *n = tp->last; n; n = n->prev) {
        fill_unreached(n->out);
        if (n->out2) fill_unreached(n->out2);
        for (int k = 0; k < n->n_in; k++) fill_unreached(n->in[k]);
    }
}

/* Runs every recorded op's backward in reverse order, once the seeds are in place. */
static int backward_walk(ur_tape *tp)
{
    for (ur_node *n = tp->last; n && !tp->failed; n = n->prev) {
        if (!n->out->grad) continue;
        ur_grad(n->out); /* fills an output no later op reached: its gradient is zero */
        if (n->out2) ur_grad(n->out2);
        n->op->backward(n);
        if (!tp->check_finite) continue;
        for (int k = 0; k < n->n_in; k++) {
            ur_tensor *x = n->in[k];
            if (x->requires_grad && grad_filled(x) &&
                trap(tp, x, x->grad, n->op->name, n->index, n->ctx_what, n->ctx_step, k + 1))
                break;
        }
    }
    fill_unreached_grads(tp);
    return tp->failed ? -1 : 0;
}

static int backward(ur_tape *tp, ur_tensor *loss, int retain)
{
    if (!tp) return -1;
    if (tp->failed) return -1;
    if (!loss) { ur_tape_fail(tp, "backward: loss is NULL"); return -1; }
    if (!check_input(tp, "backward", 1, loss)) return -1;
    if (loss->rows != 1 || loss->cols != 1) {
        ur_tape_fail(tp, "backward: loss must be 1x1, got %dx%d", loss->rows, loss->cols);
        return -1;
    }
    if (!loss->requires_grad) {
        ur_tape_fail(tp, "backward: the loss does not depend on any parameter");
        return -1;
    }
    if (!reserve_grad(loss) || backward_begin(tp, retain) != 0) return -1;
    ur_grad(loss)[0] += 1.0f; /* the seed, after a re-run's zeroing of the intermediate ones */
    return backward_walk(tp);
}

int ur_backward(ur_tape *tp, ur_tensor *loss) { return backward(tp, loss, 0); }
int ur_backward_retain(ur_tape *tp, ur_tensor *loss) { return backward(tp, loss, 1); }

int ur_backward_seeded(ur_tape *tp, int n, ur_tensor *const *outs, const float *const *seeds)
{
    if (!tp || tp->failed) return -1;
    if (n <= 0 || !outs || !seeds) {
        ur_tape_fail(tp, "backward_seeded: needs n >= 1 outputs and their seeds, got %d", n);
        return -1;
    }
    for (int k = 0; k < n; k++) {
        if (!check_input(tp, "backward_seeded", k + 1, outs[k])) return -1;
        if (!seeds[k]) {
            ur_tape_fail(tp, "backward_seeded: the seed of output %d is NULL", k + 1);
            return -1;
        }
        if (!outs[k]->requires_grad) {
            ur_tape_fail(tp, "backward_seeded: output %d (%dx%d) does not depend on any "
                         "parameter", k + 1, outs[k]->rows, outs[k]->cols);
            return -1;
        }
        if (!reserve_grad(outs[k])) return -1;
    }
    if (backward_begin(tp, 0) != 0) return -1;
    for (int k = 0; k < n; k++) {
        int fresh;
        float *g = ur_grad_write(outs[k], &fresh);
        const float *s = seeds[k];
        size_t len = ur_numel(outs[k]);
        if (fresh) memcpy(g, s, len * sizeof *g);
        else
            for (size_t j = 0; j < len; j++) g[j] += s[j];
    }
    return backward_walk(tp);
}
