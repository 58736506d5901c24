/* The tape as a Graphviz DOT drawing: the unfolded computational graph.
 *
 *   op nodes      one box per recorded node: the op's name and its output's shape
 *   parameters    one ellipse per parameter (a tensor of no tape), however many ops use it,
 *                 with an edge to each of them: shared weights are visibly shared
 *   leaves        one note per input leaf (data, a zero initial state), views resolved to it
 *   edges         one per input of each node, from the node that produced it; a tensor a node
 *                 reads without differentiating it there (node->uses: the recurrent weight of
 *                 ur_recurrent_addmm, whose gradient the batched recurrent_weight node sums)
 *                 gets a dashed edge
 *   clusters      optionally, the nodes recorded at time step t (ur_tape_set_context) in one
 *                 box "t = t": the unrolled steps of the seeds' pictures
 *
 * A view's producer is the node whose output is a view of the same tensor covering its rows
 * (a recurrent step writes its rows of the time-stacked accumulator this way), else whatever
 * produced the viewed tensor. Every write is checked. */
#include "graph/ur_graph.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dot_writer {
    FILE *f;
    int failed;
    ur_node **nodes;           /* by index */
    int n_nodes;
    const ur_tensor **params;  /* parameters and leaves seen so far, with their ids */
    int n_params, cap_params;
    const ur_tensor **leaves;
    int n_leaves, cap_leaves;
} dot_writer;

static void emit(dot_writer *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void emit(dot_writer *w, const char *fmt, ...)
{
    if (w->failed) return;
    va_list ap;
    va_start(ap, fmt);
    if (vfprintf(w->f, fmt, ap) < 0) w->failed = 1;
    va_end(ap);
}

/* s with '"' and '\' escaped, as the inside of a DOT string. */
static void emit_escaped(dot_writer *w, const char *s)
{
    for (; s && *s && !w->failed; s++) {
        if (*s == '"' || *s == '\\') emit(w, "\\%c", *s);
        else if (*s == '\n') emit(w, "\\n");
        else emit(w, "%c", *s);
    }
}

/* The index of t in *list (added when new); -1 when out of memory. */
static int intern(const ur_tensor ***list, int *n, int *cap, const ur_tensor *t)
{
    for (int k = 0; k < *n; k++)
        if ((*list)[k] == t) return k;
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 16;
        const ur_tensor **grown = realloc((void *)*list, (size_t)c * sizeof *grown);
        if (!grown) return -1;
        *list = grown;
        *cap = c;
    }
    (*list)[*n] = t;
    return (*n)++;
}

/* Writes the DOT id of the source of x as read by the node with index `reader` into id and
 * sets *node to the source node's index (-1 for a parameter or a leaf); 0, or -1 when out of
 * memory. */
static int source_id(dot_writer *w, const ur_tensor *x, int reader, char *id, size_t len,
                     int *node)
{
    *node = -1;
    while (x) {
        if (x->node) {
            snprintf(id, len, "n%d", x->node->index);
            *node = x->node->index;
            return 0;
        }
        if (!x->base) break;
        /* A node recorded before the reader whose output is a view of the same rows. */
        size_t lo = x->offset, hi = x->offset + ur_numel(x);
        for (int k = reader - 1; k >= 0; k--) {
            const ur_tensor *o = w->nodes[k]->out;
            if (o->base == x->base && o->offset <= lo && hi <= o->offset + ur_numel(o)) {
                snprintf(id, len, "n%d", k);
                *node = k;
                return 0;
            }
        }
        x = x->base;
    }
    if (!x) return -1;
    if (!x->tape) {
        int k = intern(&w->params, &w->n_params, &w->cap_params, x);
        if (k < 0) return -1;
        snprintf(id, len, "p%d", k);
    } else {
        int k = intern(&w->leaves, &w->n_leaves, &w->cap_leaves, x);
        if (k < 0) return -1;
        snprintf(id, len, "l%d", k);
    }
    return 0;
}

static void emit_node(dot_writer *w, const ur_node *n, const char *indent)
{
    emit(w, "%sn%d [label=\"", indent, n->index);
    emit_escaped(w, n->op && n->op->name ? n->op->name : "op");
    emit(w, "\\n%dx%d", n->out->rows, n->out->cols);
    if (n->out2) emit(w, ", %dx%d", n->out2->rows, n->out2->cols);
    emit(w, "\", shape=box, style=\"rounded,filled\", fillcolor=\"#e8eef8\"];\n");
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int ur_tape_write_dot(const ur_tape *tp, FILE *out, const ur_dot_opts *opts)
{
    if (!tp || !out) {
        errno = EINVAL;
        return -1;
    }
    ur_dot_opts o = opts ? *opts : (ur_dot_opts){0};
    dot_writer w = {.f = out, .n_nodes = ur_tape_node_count(tp)};
    int *steps = NULL, rc = -1, oom = 1; /* until the writing starts */
    if (w.n_nodes > 0) {
        w.nodes = malloc((size_t)w.n_nodes * sizeof *w.nodes);
        steps = malloc((size_t)w.n_nodes * sizeof *steps);
        if (!w.nodes || !steps) goto done;
    }
    oom = 0;
    for (ur_node *n = ur_tape_last(tp); n; n = n->prev)
        if (n->index >= 0 && n->index < w.n_nodes) w.nodes[n->index] = n;

    /* Time left to right: with clusters, the steps side by side, each drawn bottom to top, and
     * the edges from one step to another left out of the ranking; without, rankdir=LR. */
    const int side_by_side = o.left_to_right && o.cluster_steps;
    emit(&w, "digraph tape {\n  rankdir=%s;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
         "  edge [color=\"#555555\"];\n",
         side_by_side ? "BT" : o.left_to_right ? "LR" : "TB");
    /* Keep the steps in the order they are declared (t = 0 first): dot's crossing reduction
     * would otherwise be free to swap the boxes. */
    if (side_by_side) emit(&w, "  mclimit=0.01;\n");
    if (o.title) {
        emit(&w, "  labelloc=t;\n  label=\"");
        emit_escaped(&w, o.title);
        emit(&w, "\";\n");
    }
    /* Op nodes: those of each time step in its cluster when asked, the others outside. */
    int n_steps = 0;
    for (int k = 0; k < w.n_nodes; k++)
        if (o.cluster_steps && w.nodes[k]->ctx_step >= 0) steps[n_steps++] = w.nodes[k]->ctx_step;
    if (n_steps) qsort(steps, (size_t)n_steps, sizeof *steps, cmp_int);
    for (int i = 0; i < n_steps; i++) {
        if (i > 0 && steps[i] == steps[i - 1]) continue;
        emit(&w, "  subgraph cluster_t%d {\n    label=\"t = %d\";\n    style=\"rounded\";\n"
             "    color=\"#9999bb\";\n", steps[i], steps[i]);
        for (int k = 0; k < w.n_nodes; k++)
            if (w.nodes[k]->ctx_step == steps[i]) emit_node(&w, w.nodes[k], "    ");
        emit(&w, "  }\n");
    }
    for (int k = 0; k < w.n_nodes; k++)
        if (!o.cluster_steps || w.nodes[k]->ctx_step < 0) emit_node(&w, w.nodes[k], "  ");
    /* Edges; parameters and leaves are numbered as they are met. */
    for (int k = 0; k < w.n_nodes && !w.failed; k++) {
        const ur_node *n = w.nodes[k];
        for (int j = 0; j <= n->n_in; j++) {
            const ur_tensor *x = j < n->n_in ? n->in[j] : n->uses;
            if (!x) continue;
            char id[32];
            int from;
            if (source_id(&w, x, k, id, sizeof id, &from) != 0) {
                oom = 1;
                goto done;
            }
            int across = side_by_side && from >= 0 && n->ctx_step >= 0 &&
                         w.nodes[from]->ctx_step >= 0 && w.nodes[from]->ctx_step != n->ctx_step;
            const char *attr = j == n->n_in ? (across ? " [style=dashed, constraint=false]"
                                                     : " [style=dashed]")
                                            : (across ? " [constraint=false]" : "");
            emit(&w, "  %s -> n%d%s;\n", id, k, attr);
        }
    }
    for (int k = 0; k < w.n_params; k++) {
        const ur_tensor *p = w.params[k];
        emit(&w, "  p%d [label=\"", k);
        emit_escaped(&w, p->name ? p->name : "parameter");
        emit(&w, "\\n%dx%d\", shape=ellipse, style=filled, fillcolor=\"#fde9c8\"];\n", p->rows,
             p->cols);
    }
    for (int k = 0; k < w.n_leaves; k++) {
        const ur_tensor *l = w.leaves[k];
        emit(&w, "  l%d [label=\"%s\\n%dx%d\", shape=note, style=filled, fillcolor=\"#eeeeee\"];\n",
             k, l->requires_grad ? "leaf (grad)" : "input", l->rows, l->cols);
    }
    emit(&w, "}\n");
    if (!w.failed && fflush(out) == 0 && !ferror(out)) rc = 0;
done:
    if (oom) errno = ENOMEM; /* otherwise a failed write left stdio's errno */
    free(w.nodes);
    free(steps);
    free((void *)w.params);
    free((void *)w.leaves);
    return rc;
}

int ur_tape_write_dot_file(const ur_tape *tp, const char *path, const ur_dot_opts *opts)
{
    if (!tp || !path) {
        errno = EINVAL;
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int rc = ur_tape_write_dot(tp, f, opts);
    int saved = errno;
    if (fclose(f) != 0 && rc == 0) return -1;
    errno = saved;
    return rc;
}
