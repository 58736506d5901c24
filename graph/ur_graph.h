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
#include <stdio.h>

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
    size_t grad_unfilled; /* grad's leading elements not yet zero-filled (ur_grad fills them) */
    const char *name;    /* parameter name or NULL */
    unsigned gen;        /* the tape's generation when it was made (see ur_tensor_is_live) */
    int has_exact;       /* 1 if exact is set: a 1 x 1 reduction that accumulated in double */
    double exact;        /* that value before rounding to float (ur_sum, the losses) */
};

/* Number of elements, rows * cols. */
static inline size_t ur_numel(const ur_tensor *t) { return (size_t)t->rows * (size_t)t->cols; }

/* ---- Tape ------------------------------------------------------------------------------ */

/* Makes an empty tape whose arena grows in chunks of at least chunk_bytes (0: 1 MiB).
 * Returns NULL when out of memory or when chunk_bytes is absurd (over 1 TiB). */
ur_tape *ur_tape_new(size_t chunk_bytes);
/* Frees the tape, its arena and every tensor recorded on it. NULL is ignored. */
void ur_tape_free(ur_tape *tp);
/* Forgets every node and tensor and clears the error; keeps the arena's memory for reuse.
 * Starts a new generation: an op given a tensor recorded before the reset fails the tape
 * ("input k is stale"), instead of reading memory that now holds other tensors. This is
 * always detected for the last three generations, and for older ones unless the tensor's
 * header slot has since been reused. Tensors of another tape are refused the same way. */
void ur_tape_reset(ur_tape *tp);
/* The tape's generation: 1 when made, one more after every ur_tape_reset. */
unsigned ur_tape_generation(const ur_tape *tp);
/* 1 when t may be used: a parameter (no tape), or a tensor of its tape's current generation. */
int ur_tensor_is_live(const ur_tensor *t);
/* Bytes the arena has reserved from the system (constant once training reaches steady state),
 * the scratch tape's included. */
size_t ur_tape_arena_bytes(const ur_tape *tp);
/* Caps the bytes tp's arena may reserve from the system at bytes (0: no cap, the default);
 * the cap counts what is already reserved (ur_tape_arena_bytes without the scratch tape,
 * which gets the same cap of its own). An op that would need more fails the tape ("tape:
 * memory limit of N bytes reached"), like running out of memory, but at a chosen size. */
void ur_tape_set_limit(ur_tape *tp, size_t bytes);
/* The cap set by ur_tape_set_limit (0: none). */
size_t ur_tape_limit(const ur_tape *tp);
/* Bytes of the arena in use since the last reset (tensors, gradients, nodes). */
size_t ur_tape_used_bytes(const ur_tape *tp);
/* The most bytes ever in use at once on tp since it was made (ur_tape_used_bytes at its
 * highest), plus the same figure for its scratch tape: the peak memory of a recording and its
 * backward, checkpointed segments included (an upper bound when both peaks did not coincide). */
size_t ur_tape_peak_bytes(const ur_tape *tp);
/* Number of nodes (recorded ops) since the last reset. */
int ur_tape_node_count(const ur_tape *tp);
/* The last node recorded since the last reset (NULL if none); node->prev leads to the others. */
ur_node *ur_tape_last(const ur_tape *tp);
/* A second tape owned by tp, made on first use (NULL when out of memory) and freed with it, for
 * an op that records a sub-graph and back-propagates it inside its own forward or backward
 * (checkpointing re-records a segment of an unroll this way). Its recordings are independent
 * of tp's: reset it before each use. Each call gives it tp's non-finite trap setting. */
ur_tape *ur_tape_scratch(ur_tape *tp);
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
 * loss must be 1 x 1. Once per recording: a second call before ur_tape_reset is an error
 * (it would add the gradients again), unless the previous one was ur_backward_retain.
 * Returns 0, or -1 with the tape's error set. */
int ur_backward(ur_tape *tp, ur_tensor *loss);
/* ur_backward that allows another backward on the same recording (like PyTorch's
 * retain_graph=True): each later call first zeroes the ops' intermediate gradients, so every
 * call adds exactly one d(loss)/dp to the gradients of parameters and leaves, whichever
 * 1 x 1 loss of the recording it starts from. */
int ur_backward_retain(ur_tape *tp, ur_tensor *loss);
/* Backward from outputs of any shape with given gradients (a vector-Jacobian product): adds
 * seeds[k] (ur_numel(outs[k]) values) into the gradient of outs[k] for k < n, then runs every
 * recorded op's backward in reverse as ur_backward does, under the same once-per-recording
 * rule. With one 1 x 1 output seeded with 1 it is ur_backward. Every output must depend on a
 * parameter or a leaf that requires a gradient. Returns 0, or -1 with the tape's error set. */
int ur_backward_seeded(ur_tape *tp, int n, ur_tensor *const *outs, const float *const *seeds);

/* Turns the non-finite trap on or off (off when a tape is made; kept across resets). When
 * on, every op checks its output as it records it, and backward checks each gradient an
 * op's backward produced; the first NaN or Inf fails the tape with the op's name, its node
 * index, forward or backward, the element and, inside ur_unroll, the cell and time step.
 * Cost: one extra pass over each output and each gradient written, measured by bench/trap
 * at 1-13% of a training step (lstm-256, elman-128; README). */
void ur_tape_check_finite(ur_tape *tp, int on);
/* Names what is being recorded (e.g. a cell's kind; the string must outlive the recording)
 * and the time step (-1: none) for the trap's messages; what = NULL clears it. ur_unroll
 * sets it to the cell's kind and the step around each step. */
void ur_tape_set_context(ur_tape *tp, const char *what, int step);
/* From now until the next reset, ur_tape_set_context records step + offset for steps >= 0:
 * a segment of an unroll recorded on its own (checkpointing) keeps its steps' numbers in the
 * whole sequence. 0 after every reset. */
void ur_tape_set_step_offset(ur_tape *tp, int offset);
/* The offset ur_tape_set_step_offset set (0 when none). */
int ur_tape_step_offset(const ur_tape *tp);

/* ---- Drawing the tape (graph/dot.c) ------------------------------------------------------ */

/* How ur_tape_write_dot draws; all zero (or NULL) is a plain top-to-bottom drawing. */
typedef struct ur_dot_opts {
    int cluster_steps;   /* 1: the nodes recorded at time step t (ur_tape_set_context; ur_unroll
                            sets it) grouped in a box "t = t", the unfolded graph of the seeds */
    int left_to_right;   /* 1: time runs left to right: with cluster_steps the steps side by
                            side, each drawn bottom (inputs) to top (losses) as in the seeds;
                            without, rankdir=LR */
    const char *title;   /* a label over the drawing, or NULL */
} ur_dot_opts;

/* Writes the recording on tp as a Graphviz DOT graph: one box per recorded op with its name
 * and output shape ("n<index>"), each parameter once ("p<k>", its name and shape) with an edge
 * to every op that reads it, each input leaf once ("l<k>"), and one edge per input of each op
 * from whatever produced it (dashed for node->uses). Render with `dot -Tpng f.dot -o f.png`.
 * Returns 0, or -1 with errno set when a write fails (EIO, ENOSPC, ...) or memory runs out;
 * the stream is flushed. */
int ur_tape_write_dot(const ur_tape *tp, FILE *out, const ur_dot_opts *opts);
/* The same into a new file at path (replaced if it exists); -1 with errno also when the file
 * cannot be opened or closed. */
int ur_tape_write_dot_file(const ur_tape *tp, const char *path, const ur_dot_opts *opts);

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
/* The tensor a view views (through views of views), t itself when it is no view, NULL for NULL. */
const ur_tensor *ur_tensor_root(const ur_tensor *t);
/* The gradient buffer of t, made and zero-filled on first use (a view's lies in its base's).
 * Inside a backward, an op's backward reaches its inputs' gradients through this call only. */
float *ur_grad(ur_tensor *t);
/* ur_grad for a backward that writes every element of t's gradient: *fresh = 1 when nothing
 * was written there yet and the buffer is not zero-filled, so the caller stores (=) instead of
 * adding (+=), saving the fill; *fresh = 0 otherwise (add as after ur_grad). */
float *ur_grad_write(ur_tensor *t, int *fresh);

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
    int index;               /* 0 for the first node recorded since the last reset */
    const char *ctx_what;    /* the recording context (ur_tape_set_context) */
    int ctx_step;
    ur_tensor *uses;         /* a tensor the op reads whose gradient another node adds (the
                                recurrent weight of ur_recurrent_addmm): drawn as an input by
                                ur_tape_write_dot, ignored by backward; NULL for most ops */
};

/* 1 if the tape may record: tp not NULL, no error so far, and every tensor given non-NULL,
 * a parameter or live on tp (not stale, not of another tape). Otherwise records
 * "<op>: input k ..." (unless an error exists) and returns 0. */
int ur_op_begin(ur_tape *tp, const char *op, int n, ...);
/* The same for n >= 1 inputs in an array (ops such as concat). */
int ur_op_begin_array(ur_tape *tp, const char *op, int n, ur_tensor *const *x);
/* Records a shape error "<op>: <what>: a is RxC, b is RxC" and returns the poison tensor. */
ur_tensor *ur_shape_error(ur_tape *tp, const char *op, const char *what,
                          const ur_tensor *a, const ur_tensor *b);
/* A new rows x cols tensor on the tape, values uninitialised; NULL (and the tape failed) when
 * the size is absurd or memory runs out. */
ur_tensor *ur_tensor_new(ur_tape *tp, int rows, int cols);
/* Bump-allocates bytes (64-byte aligned) from the tape's arena; NULL and failed on overflow. */
void *ur_tape_alloc(ur_tape *tp, size_t bytes);
/* A zeroed tensor header of tp's current generation (no values): for ops that make views.
 * NULL with the tape failed when memory runs out. */
ur_tensor *ur_tensor_header(ur_tape *tp);
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

/* Like torch.autograd.gradcheck: a scalar passes when |a - n| <= atol + rtol |n| (a: backward's
 * gradient, n: the finite difference). n is Richardson-extrapolated from central differences
 * at h and 2h over the steps float actually took (error O(h^4)), and reads the loss in double
 * (ur_tensor.exact) when its last op is ur_sum or a loss, so end the loss with one of those.
 * What is left is the forward's own float rounding, ~1 ulp per value, divided by h. Measured
 * with the default step on the correct backwards of tests/test_ops.c, test_models.c and
 * test_seq.c: |a - n| is at most 1.2e-5 for single ops (median 2e-7), 6.5e-6 for small
 * Elman/LSTM/GRU/stacked/bidirectional models (median 1e-6). Steps of 1e-2 and 2e-2 give
 * 1.5 to 2.5x that; from 4e-2 the h^4 truncation takes over. A function that bends on
 * scales below ~0.1, or has kinks (relu) near the point, wants a smaller eps.
 * With the default tolerances a 1% error fails in every gradient above 1.1e-3, a 20% error
 * in every gradient above 5e-5, and the correct model backwards stay 2.5x below them. For
 * smaller gradients pass a smaller atol, after checking a correct backward passes with it. */
#define UR_GRADCHECK_EPS 3e-2  /* default step h */
#define UR_GRADCHECK_ATOL 1e-5 /* default atol */
#define UR_GRADCHECK_RTOL 1e-3 /* default rtol */

/* NULL or zero-filled means every default. */
typedef struct ur_gradcheck_opts {
    double eps;     /* step h; <= 0: UR_GRADCHECK_EPS */
    double atol;    /* <= 0: UR_GRADCHECK_ATOL */
    double rtol;    /* <= 0: UR_GRADCHECK_RTOL */
    int samples;    /* 0: every scalar; k > 0: k distinct random scalars of each parameter
                     * (all of a parameter with fewer), drawn from ur_rng seeded with seed */
    uint64_t seed;
} ur_gradcheck_opts;

/* One parameter's report. rel is |a - n| / max(|a|, |n|), taken only over scalars whose
 * max(|a|, |n|) exceeds atol (below that the noise is all there is: atol judges them). */
typedef struct ur_gradcheck_param {
    char name[64];
    int checked, failed;          /* scalars compared, and of those failing the criterion */
    double max_abs;               /* worst |a - n| and where (-1, -1 if nothing checked) */
    int abs_row, abs_col;
    double max_rel;               /* worst rel and where (-1, -1 if no scalar was above atol) */
    int rel_row, rel_col;
    double worst_ratio;           /* worst |a - n| / (atol + rtol |n|); > 1 fails */
    int ratio_row, ratio_col;
} ur_gradcheck_param;

typedef struct ur_gradcheck_result {
    int passed;                   /* 1 if every checked scalar passed, else 0 */
    int checked, failures;        /* scalars compared; how many failed */
    struct {                      /* the scalar with the largest ratio */
        char param[64];
        int row, col;
        double analytic, numeric;
        double ratio;             /* |a - n| / (atol + rtol |n|); infinite for NaN or Inf */
    } worst;
    double max_abs, max_rel;      /* over all parameters (rel as in ur_gradcheck_param) */
    double eps, atol, rtol;       /* the values used, defaults filled in */
    int n_params;                 /* entries of params, in ur_params_at order */
    ur_gradcheck_param *params;   /* allocated by ur_gradcheck: ur_gradcheck_result_free */
    char error[256];              /* why the check could not run; "" when it ran */
} ur_gradcheck_result;

/* Checks backward's gradient of the parameters of ps against finite differences of f, which
 * must be deterministic: f runs twice at the starting point, and different losses are an
 * error. Parameters are restored exactly. Costs 2 + 4 * (scalars checked) forward passes.
 * opts NULL: defaults. Returns 0 when the check ran (res->passed says how it went), -1 when
 * it could not (NULL argument, forward or backward failed, non-finite or non-deterministic
 * loss, out of memory), with res->error set. Either way call ur_gradcheck_result_free. */
int ur_gradcheck(ur_params *ps, ur_loss_fn f, void *ctx, const ur_gradcheck_opts *opts,
                 ur_gradcheck_result *res);
/* Frees res->params and sets it to NULL (the rest of res stays readable). NULL is ignored. */
void ur_gradcheck_result_free(ur_gradcheck_result *res);

#ifdef __cplusplus
}
#endif
#endif
