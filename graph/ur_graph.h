/* libunroll: the graph layer. Tensors, the tape, backward, parameter sets, the RNG and the
 * finite-difference gradient check.
 *
 * A forward pass records every op on a tape as it computes its value. ur_backward walks the
 * tape in reverse and each op's backward adds into its inputs' gradients. Parameters
 * (ur_params) outlive tapes: a recurrent model uses the same parameter tensor at every time
 * step, so its gradient is the sum over steps, which is BPTT.
 *
 *     ur_tape *tp = ur_tape_new(0);
 *     for (step = 0; step < n; step++) {
 *         ur_tape_reset(tp);                       // rewinds the arena, allocates nothing
 *         ur_tensor *loss = my_forward(tp, params, batch);
 *         ur_params_zero_grad(params);
 *         if (ur_backward(tp, loss) != 0) { fprintf(stderr, "%s\n", ur_tape_error(tp)); ... }
 *         ...optimizer step...
 *     }
 *
 * Errors are sticky: the first bad call on a tape (a shape mismatch, NULL, out of memory)
 * stores a message naming the op and the shapes; later ops return a poisoned tensor and do
 * nothing; ur_backward returns -1. Check once per step.
 */
#ifndef UR_GRAPH_H
#define UR_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ur_tape ur_tape;
typedef struct ur_node ur_node;
typedef struct ur_tensor ur_tensor;

/* A row-major float32 matrix, rows x cols (batch x features; a vector is 1 x n). */
struct ur_tensor {
    int rows, cols;
    float *val;          /* rows * cols values */
    float *grad;         /* same size; NULL until backward needs it (parameters: always set) */
    ur_node *node;       /* the op that produced it; NULL for leaves, views and parameters */
    ur_tape *tape;       /* the tape whose arena holds it; NULL for parameters */
    ur_tensor *base;     /* for a row view: the tensor it views; NULL otherwise */
    size_t offset;       /* for a row view: index of its first element in base */
    int requires_grad;   /* 1 if a gradient must flow into it */
    const char *name;    /* parameter name or NULL */
};

/* Number of elements, rows * cols. */
static inline size_t ur_numel(const ur_tensor *t) { return (size_t)t->rows * (size_t)t->cols; }

/* ---- Tape ------------------------------------------------------------------------------ */

/* Makes an empty tape whose arena grows in chunks of at least chunk_bytes (0: 1 MiB).
 * Returns NULL when out of memory. */
ur_tape *ur_tape_new(size_t chunk_bytes);
/* Frees the tape, its arena and every tensor recorded on it. NULL is ignored. */
void ur_tape_free(ur_tape *tp);
/* Forgets every node and tensor and clears the error; keeps the arena's memory for reuse. */
void ur_tape_reset(ur_tape *tp);
/* Bytes the arena has reserved from the system (constant once training reaches steady state). */
size_t ur_tape_arena_bytes(const ur_tape *tp);
/* Bytes of the arena in use since the last reset (tensors, gradients, nodes). */
size_t ur_tape_used_bytes(const ur_tape *tp);
/* Number of nodes (recorded ops) since the last reset. */
int ur_tape_node_count(const ur_tape *tp);
/* The first error recorded since the last reset, or NULL when there is none. */
const char *ur_tape_error(const ur_tape *tp);
/* Records an error (printf format) unless one is already recorded; returns the poison tensor. */
ur_tensor *ur_tape_fail(ur_tape *tp, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The tape's poison tensor: 1 x 1 holding NaN, returned by every op once the tape failed. */
ur_tensor *ur_tape_poison(ur_tape *tp);

/* Seeds d(loss)/d(loss) = 1 and runs every recorded op's backward in reverse order,
 * accumulating into the gradients of parameters and of leaves that require them.
 * loss must be 1 x 1. Returns 0, or -1 with the tape's error set. */
int ur_backward(ur_tape *tp, ur_tensor *loss);

/* ---- Tensors on a tape ------------------------------------------------------------------ */

/* A new leaf of rows x cols on the tape, zero-filled, needing no gradient (data, targets). */
ur_tensor *ur_input(ur_tape *tp, int rows, int cols);
/* A new leaf holding a copy of rows*cols values from src. */
ur_tensor *ur_input_from(ur_tape *tp, int rows, int cols, const float *src);
/* Marks a leaf as needing a gradient (e.g. a given initial state); returns it. */
ur_tensor *ur_requires_grad(ur_tensor *t);
/* A detached copy of t's values on tape tp: same values, no gradient path back (truncated
 * BPTT carries a chunk's last state to the next tape this way). */
ur_tensor *ur_detach(ur_tape *tp, const ur_tensor *t);
/* Zero-copy view of rows [row0, row0 + n) of x. Gradients of the view land in x's gradient. */
ur_tensor *ur_rows(ur_tape *tp, ur_tensor *x, int row0, int n);
/* The gradient buffer of t, made and zero-filled on first use (a view's lies in its base's). */
float *ur_grad(ur_tensor *t);

/* ---- For op writers --------------------------------------------------------------------- */

/* An op's descriptor: its name (used in error messages) and its backward function, which
 * reads node->out->grad and adds into the gradients of node->in[k] that require one. */
typedef struct ur_op {
    const char *name;
    void (*backward)(ur_node *node);
} ur_op;

#define UR_NODE_SCALARS 4
struct ur_node {
    const ur_op *op;
    ur_tensor *out;
    ur_tensor *out2;         /* a second output (set with ur_record_second_output) or NULL */
    ur_tensor **in;          /* n_in inputs, in the order the op recorded them */
    int n_in;
    float f[UR_NODE_SCALARS];/* a few saved scalars (scale factor, reduction, ...) */
    int i[UR_NODE_SCALARS];  /* a few saved integers */
    void *aux;               /* op-specific saved data, allocated on the tape */
    ur_node *prev;           /* the node recorded before this one */
};

/* 1 if the tape may record: tp not NULL, no error so far, and every tensor given non-NULL.
 * Otherwise records "<op>: ..." (unless an error exists) and returns 0. */
int ur_op_begin(ur_tape *tp, const char *op, int n, ...);
/* Records a shape error "<op>: <what>: a is RxC, b is RxC" and returns the poison tensor. */
ur_tensor *ur_shape_error(ur_tape *tp, const char *op, const char *what,
                          const ur_tensor *a, const ur_tensor *b);
/* A new rows x cols tensor on the tape, values uninitialised; NULL (and the tape failed) when
 * the size is absurd or memory runs out. */
ur_tensor *ur_tensor_new(ur_tape *tp, int rows, int cols);
/* Bump-allocates bytes (64-byte aligned) from the tape's arena; NULL and failed on overflow. */
void *ur_tape_alloc(ur_tape *tp, size_t bytes);
/* Records a node for op with output out and n_in inputs (ur_tensor *...). If no input needs a
 * gradient, records nothing and returns NULL; otherwise marks out as needing one. */
ur_node *ur_record(ur_tape *tp, const ur_op *op, ur_tensor *out, int n_in, ...);
/* Same, with the inputs in an array (for ops with many inputs such as concat). */
ur_node *ur_record_array(ur_tape *tp, const ur_op *op, ur_tensor *out, int n_in,
                         ur_tensor *const *in);

/* Gives node a second output (for fused ops such as LSTM gates that produce h and c). Its
 * backward always finds both outputs' gradients allocated (zero where nothing flowed). */
void ur_record_second_output(ur_node *node, ur_tensor *out2);

/* ---- Parameters ------------------------------------------------------------------------- */

/* A named set of persistent tensors with gradients: the trainable state of a model. */
typedef struct ur_params ur_params;

/* An empty parameter set; NULL when out of memory. */
ur_params *ur_params_new(void);
/* Frees the set and all its tensors. NULL is ignored. */
void ur_params_free(ur_params *ps);
/* The longest parameter name, in bytes: the same limit as in model files. */
#define UR_PARAM_NAME_MAX 255
/* Adds a zero-filled rows x cols parameter named name (unique in the set, 1 to
 * UR_PARAM_NAME_MAX bytes).
 * Returns it, or NULL on a duplicate name, a bad size or no memory (see ur_params_error). */
ur_tensor *ur_params_add(ur_params *ps, const char *name, int rows, int cols);
/* The parameter called name, or NULL. */
ur_tensor *ur_params_get(const ur_params *ps, const char *name);
/* Number of parameters in the set. */
int ur_params_count(const ur_params *ps);
/* The k-th parameter, in the order they were added (0 <= k < count); NULL out of range. */
ur_tensor *ur_params_at(const ur_params *ps, int k);
/* Total number of scalars over all parameters. */
size_t ur_params_numel(const ur_params *ps);
/* Sets every parameter's gradient to zero. */
void ur_params_zero_grad(ur_params *ps);
/* Message of the last failed ur_params_add, or NULL. */
const char *ur_params_error(const ur_params *ps);

/* ---- Random numbers ---------------------------------------------------------------------- */

/* A seeded generator (xoshiro256**, seeded through splitmix64): same seed, same stream. */
typedef struct ur_rng { uint64_t s[4]; } ur_rng;

/* Seeds the generator; every seed, 0 included, gives a valid stream. */
void ur_rng_seed(ur_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t ur_rng_next(ur_rng *r);
/* Uniform float in [0, 1). */
float ur_rng_uniform(ur_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint32_t ur_rng_below(ur_rng *r, uint32_t n);
/* Standard normal sample (Box-Muller). */
float ur_rng_normal(ur_rng *r);

/* ---- Finite-difference gradient check --------------------------------------------------- */

/* Records a forward pass on tp from the parameters and returns the 1 x 1 loss. */
typedef ur_tensor *(*ur_loss_fn)(ur_tape *tp, void *ctx);

typedef struct ur_gradcheck_result {
    double worst;          /* worst error |analytic - numeric| / max(1, |analytic|, |numeric|) */
    char param[64];        /* where it is: parameter name, row and column */
    int row, col;
    double analytic, numeric;
    int checked;           /* number of scalars compared */
} ur_gradcheck_result;

/* Compares backward's gradient of every parameter scalar in ps with the central difference
 * (f(p+eps) - f(p-eps)) / 2 eps (eps <= 0: 1e-2). The function must be deterministic.
 * Returns 0 and fills res, or -1 when a forward or backward fails (message in res->param). */
int ur_gradcheck(ur_params *ps, ur_loss_fn f, void *ctx, double eps, ur_gradcheck_result *res);

#ifdef __cplusplus
}
#endif
#endif
