/* libunroll: recurrent models as graph code.
 *
 * A cell records one time step, state_t = cell(x_t, state_{t-1}), with ops on the tape. Unrolling
 * calls it T times with the same parameter tensors, so the gradient of each parameter is the
 * sum over steps: BPTT falls out of the generic backward, with no RNN-specific gradient code.
 *
 * Sequences are time-stacked matrices: T*B rows, rows [t*B, (t+1)*B) hold step t of all B
 * sequences (ur_rows gives a step as a zero-copy view). A cell declares its input
 * projections (x W + b) and recurrent products (h_{t-1} U + c); the unroll computes them,
 * batched over time, and hands step t its rows.
 */
#ifndef UR_MODELS_H
#define UR_MODELS_H

#include "graph/ur_graph.h"
#include "ops/ur_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The state carried between steps: h (B x hidden) and, for LSTM-like cells, c (else NULL). */
typedef struct ur_state {
    ur_tensor *h;
    ur_tensor *c;
} ur_state;

typedef struct ur_cell ur_cell;

#define UR_CELL_MAX_PROJ 4     /* declared input projections per cell */
#define UR_CELL_MAX_REC 4      /* declared recurrent products per cell */
#define UR_CELL_MAX_PARAMS 32  /* p[]: enough for the built-ins; a cell needing more keeps its
                                  parameters in its own struct behind user */

/* What a step receives for time step t. Every tensor is B rows; the declared products are
 * already computed (the unroll batches them over time, see ur_cell). */
typedef struct ur_step_in {
    int t;                           /* the step index (0 .. T-1, also inside a checkpointed
                                        segment; -1 from ur_cell_step) */
    ur_tensor *x;                    /* step t's rows of the raw input (B x in_dim) */
    ur_tensor *proj[UR_CELL_MAX_PROJ];/* x_t W_k + b_k for each declared projection k, plus
                                        h_{t-1} U_j + c_j for a recurrent product j fused into it */
    ur_tensor *rec[UR_CELL_MAX_REC]; /* h_{t-1} U_j + c_j for each recurrent product j that is
                                        not fused (NULL for fused ones); proj and rec are this
                                        step's alone (nothing else reads their values), so the
                                        built-in steps' fused ops overwrite them
                                        (ur_lstm_gates_into, ur_gru_gates, ur_gru_cho_gates) */
    ur_tensor *h_out;                /* step t's rows of the unroll's stacked H (B x hidden), or
                                        NULL: a step may compute its h into it (ur_tanh_into,
                                        ur_lstm_gates_into) and return it, which saves a copy; a
                                        step that writes it must return it as its h (with
                                        h_over, the same memory as proj[0]; see ur_cell) */
} ur_step_in;

/* Records one step from prev (prev.h and, with has_c, prev.c, never NULL) and returns the
 * new state. It holds only the cell's maths: the products it declared are in `in`. */
typedef ur_state (*ur_cell_step_fn)(ur_tape *tp, const ur_cell *cell, const ur_step_in *in,
                                    ur_state prev);

/* A declared input projection x W + b: W is in_dim x n, b is 1 x n or NULL. */
typedef struct ur_cell_proj {
    ur_tensor *w, *b;
} ur_cell_proj;

/* A declared recurrent product h_{t-1} U + c: U is hidden x n, c is 1 x n or NULL. into = k
 * (0 <= k < n_proj) adds it to projection k, whose width must be n, and the step then sees
 * the sum in proj[k] (the LSTM's z = x Wx + b + h Wh); into = -1 keeps it apart, in rec[j]
 * (the GRU's h Wh + bh, which the reset gate scales). */
typedef struct ur_cell_rec {
    ur_tensor *w, *b;
    int into;
} ur_cell_rec;

/* A cell: its step, sizes, declared products and parameters. Built-in cells come from the
 * constructors below; a user cell fills it the same way (see doc/tutorial.md), and gets
 * the same speed: ur_unroll computes each projection for all T steps with one GEMM, and
 * each recurrent weight's gradient with one GEMM over all steps (ops/recurrent.c), keeping
 * the sums in the projection's own memory when fused. Every field is the cell's own
 * description: nothing here is bookkeeping of the unroll, and no combination of
 * declarations can make a gradient wrong. */
struct ur_cell {
    const char *kind;          /* "elman", "lstm", "gru", ... (for messages; must outlive) */
    ur_cell_step_fn step;
    int in_dim, hidden;
    int has_c;                 /* 1 if the state has a cell state c */
    int n_proj;                /* declared input projections, proj[0 .. n_proj) */
    ur_cell_proj proj[UR_CELL_MAX_PROJ];
    int n_rec;                 /* declared recurrent products, rec[0 .. n_rec) */
    ur_cell_rec rec[UR_CELL_MAX_REC];
    int h_over;                /* 1: the step computes h in place over proj[0] (width hidden),
                                  as ur_tanh_into(in->proj[0], in->h_out) does (Elman), and
                                  the unroll stacks H in that projection's memory: the
                                  pre-activations, which backward does not read, take no
                                  T*B*hidden floats of their own. Checked at every step: an
                                  op of the step that reads proj[0], other than one of that
                                  single input writing h_out, fails the tape; except at the
                                  first step, when it left h_out unwritten (a built-in cell
                                  copied with a user's step): H then gets memory apart. */
    int n_params;              /* p[0 .. n_params): every parameter, in a documented order */
    ur_tensor *p[UR_CELL_MAX_PARAMS];
    float hp[4];               /* hyper-parameters, meaning defined by the cell kind (the
                                  layer-normalised LSTM's epsilon in hp[0]) */
    void *user;                /* free for user cells */
    /* Variational (recurrent) dropout, Gal & Ghahramani 2016: ur_unroll draws one mask per
     * sequence from rng and uses it at every step, on the input (in_dropout) and on h_{t-1}
     * where the declared recurrent products read it (rec_dropout); inverted (kept values
     * scaled by 1 / (1 - p)). Each in [0, 1); set both to 0 for evaluation. */
    float in_dropout, rec_dropout;
    ur_rng *rng;
};

/* The cell's parameter whose name ends in ".<name>" (e.g. "Wh" for "enc.Wh"), or NULL. */
ur_tensor *ur_cell_param(const ur_cell *cell, const char *name);

/* One step of cell from prev on the B x in_dim input x, outside an unroll (generation,
 * decoding): the declared products are computed for this step, then the step runs.
 * A NULL prev.h or prev.c means zeros. The tape's poison state on error. */
ur_state ur_cell_step(ur_tape *tp, const ur_cell *cell, ur_tensor *x, ur_state prev);

/* Options of the built-in LSTM and GRU constructors (the _ex variants); all zero: the plain
 * cell. */
typedef struct ur_cell_opts {
    int layer_norm;        /* LSTM: Ba et al. 2016 layer norm of x Wx, of h Wh (each with its
                              own gain and bias) and of c before the output tanh */
    int peephole;          /* LSTM: Gers & Schmidhuber 2000, i and f see c_{t-1}, o sees c_t */
    int gru_reset_before;  /* GRU: Cho et al. 2014, the reset gate applied to h before Un */
    float ln_eps;          /* layer norm's epsilon (0: 1e-5) */
} ur_cell_opts;

/* ---- Built-in cells ----------------------------------------------------------------------
 * Each adds its parameters to ps under "<prefix>.<name>" and initialises them from rng
 * (uniform in +-1/sqrt(hidden), as PyTorch does). Returns 0, or -1 when a parameter cannot
 * be added (message in ur_params_error). */

/* Elman: a = b + W h_{t-1} + U x_t, h_t = tanh(a). p[] = {U (in x H), W (H x H), b (1 x H)};
 * declares x U + b and h W fused into it. */
int ur_elman_cell(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                  ur_rng *rng);

/* Adds parameter "<prefix>.<name>" (rows x cols) to ps, uniform in [-k, k] from rng; NULL
 * on failure, with the reason (name too long, duplicate, bad size, no memory) recorded in
 * ur_model_error unless an earlier one is. For cell constructors, built-in or user-written. */
ur_tensor *ur_model_param(ur_params *ps, const char *prefix, const char *name, int rows, int cols,
                          float k, ur_rng *rng);

/* ---- Unrolling --------------------------------------------------------------------------- */

/* The result of an unroll: T steps of B rows. */
typedef struct ur_seq {
    int T, B;
    ur_tensor *H;       /* T*B x hidden: every step's h, time-stacked (one copy at the end);
                           with lengths, zero in the rows past each sequence's length */
    ur_state *states;   /* T states (on the tape), states[t] after reading step t */
    ur_state last;      /* the state after the last step read (states[T-1], or states[0]
                           when reversed): with lengths, each row's state at its own end */
    double *grad_norms; /* checkpointed unrolls: ||dL/dh_t|| per step, written by backward
                           (read it with ur_seq_grad_norms); NULL for plain ones */
    const int *lengths; /* with lengths: a copy of them (on the tape); else NULL */
    ur_tensor *mask;    /* with lengths: the T*B x 1 mask of real steps (ur_length_mask), for
                           the masked losses; else NULL */
} ur_seq;

/* ---- Uneven lengths ------------------------------------------------------------------------
 * A batch may mix sequences of different lengths: pad each to the batch's T steps (any
 * finite values; zeros are the usual choice) and give lengths[b], the number of real steps
 * of sequence b. Every row is still computed at every step, so the GEMMs keep their shapes,
 * but past its length a row's state is carried unchanged and its output (the rows of H) is
 * zero: state_t = m_t state_new + (1 - m_t) state_{t-1} with m_t = [t < length], by the op
 * ur_select_rows, whose gradient is exact. So last is each row's state at its own last step,
 * a reversed unroll starts each row at its own last step (it carries the initial state
 * through the padding), and a padded batch's gradients are the sums of the gradients of its
 * sequences run alone, once the loss is masked too (ur_softmax_nll_masked with seq.mask):
 *
 *     ur_unroll_opts uo = {.lengths = lens};             // lens[b] in [1, T]
 *     ur_unroll_with(tp, &cell, x, T, init, &uo, &seq);  // x: T*B rows, padded
 *     ur_tensor *logits = ur_linear(tp, seq.H, V, c);
 *     ur_tensor *loss = ur_softmax_nll_masked(tp, logits, y, seq.mask, UR_MEAN);
 *
 * A step where every row is real records exactly what it would without lengths; one where
 * some rows have ended adds a ur_select_rows per state tensor (h, and c) and a ur_mask_rows
 * for the output, B x H each, and copies nothing else (cost: bench/bench_lengths, README).
 * The cell must treat rows independently (every built-in cell does). */
typedef struct ur_unroll_opts {
    int reverse;          /* 1: read steps T-1 .. 0 (bidirectional models); states[t] is still
                             step t */
    const int *lengths;   /* B lengths, each in [1, T]; NULL: every sequence has T steps */
    int allow_empty;      /* 1: a length may be 0, a row with no real step (truncated BPTT's
                             chunks after a sequence ended); else 0 is an error */
    const struct ur_checkpoint *checkpoint; /* non-NULL with an interval other than 0:
                             checkpointed BPTT (below), also with lengths; NULL: plain */
} ur_unroll_opts;

/* Runs cell over the time-stacked x_all (T*B x in_dim) from init (a NULL h or c means zeros;
 * a given one that requires a gradient receives it). reverse = 1 reads steps T-1 .. 0 (for
 * bidirectional models); states[t] still belongs to step t. Returns 0, or -1 with the tape
 * failed. */
int ur_unroll(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T, ur_state init,
              int reverse, ur_seq *out);
/* Same over T per-step tensors x[t] (each B x in_dim); they are stacked first. */
int ur_unroll_steps(ur_tape *tp, const ur_cell *cell, int T, ur_tensor *const *x, ur_state init,
                    int reverse, ur_seq *out);
/* ur_unroll with options (reverse, lengths per row, checkpointing; NULL: none, as ur_unroll
 * with reverse 0). */
int ur_unroll_with(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T, ur_state init,
                   const ur_unroll_opts *opts, ur_seq *out);

/* After backward: ||dL/dh_t||, the L2 norm of the gradient of the whole B x hidden state after
 * step t (all that flows into it: from the loss and from the steps after it), for t = 0 .. T-1
 * into norms (T values; 0 where no gradient flowed). The gradient-flow picture of vanishing
 * and exploding gradients. Works for plain and checkpointed unrolls alike (for a plain one it
 * reads seq->states[t].h's gradient). Returns 0, or -1 on a NULL argument or an empty seq. */
int ur_seq_grad_norms(const ur_seq *seq, double *norms);

/* ---- Memory-efficient BPTT (models/checkpoint.c) ------------------------------------------
 * Chen et al. 2016, Gruslys et al. 2016. A checkpointed unroll keeps only the state every k
 * steps: each segment of k steps is ONE node on the tape, whose forward runs the segment on the
 * tape's scratch tape (ur_tape_scratch) and keeps its outputs, and whose backward records the
 * segment again from its checkpoint and back-propagates it there. Memory: T/k checkpoints, one
 * segment's recording, and H (T*B x hidden) unless last_only; time: one more forward pass.
 * k ~ sqrt(T) (UR_CHECKPOINT_AUTO) makes both O(sqrt(T)). The forward values are plain
 * BPTT's bit for bit; the gradients differ only where a sum over time is split into per-segment
 * sums: within 1e-6 of each parameter's largest gradient in tests/test_checkpoint.c (T = 11)
 * and bench/bench_checkpoint (T = 1000, 3e-7), within 1e-6 in norm at T = 300, where plain
 * BPTT's own float rounding becomes the larger error. The scratch tape is reset, not freed:
 * after the first step nothing is allocated. The cell must depend only on its parameters, x
 * and the state (a tensor of the main tape read inside the step cannot be reached from the
 * scratch tape); in->t still counts steps in the whole sequence.
 * What differs in the result (ur_seq):
 *   H          every step's h as before (NULL with last_only);
 *   states[t]  .h is a view of H's rows of step t; .c is kept only for the last step of each
 *              segment (NULL elsewhere); the whole array is NULL with last_only. Their values
 *              take gradients like any tensor's, but a view's gradient after backward is only
 *              what reached H directly: read ||dL/dh_t|| with ur_seq_grad_norms. With lengths,
 *              H's rows are the steps' outputs (zero past a row's length), and the last step
 *              of each segment has the carried state (h and c) instead;
 *   last       as before (both h and c; with lengths each row's state at its own end).
 * With lengths (ur_unroll_with, opts->lengths and opts->checkpoint) each segment runs as the
 * plain unroll with lengths over its steps, a row's length cut to the segment (a row that
 * ended before it is carried through, one not yet ended runs every step), so the values are
 * the plain lengths path's and the gradients equal them within rounding; seq.lengths and
 * seq.mask are as there. */
#define UR_CHECKPOINT_AUTO (-1)

typedef struct ur_checkpoint {
    int interval;   /* k > 0: a checkpoint every k steps; UR_CHECKPOINT_AUTO: k = ceil(sqrt(T));
                       0: plain BPTT (the plain unroll itself) */
    int last_only;  /* 1: only out->last is wanted (a single-output model): H and states are
                       not kept, saving T*B*hidden floats and their gradient */
} ur_checkpoint;

/* The interval a checkpointed unroll of T steps uses for interval (min(k, T), ceil(sqrt(T))
 * for UR_CHECKPOINT_AUTO, 0 for plain BPTT or a bad value). */
int ur_checkpoint_interval(int T, int interval);
/* ur_unroll with checkpoints as ck says (NULL or interval 0: ur_unroll itself). */
int ur_unroll_checkpointed(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T,
                           ur_state init, int reverse, const ur_checkpoint *ck, ur_seq *out);

/* ---- LSTM ---------------------------------------------------------------------------------
 * PyTorch's equations and gate order (i, f, g, o), so weights compare with torch.nn.LSTM:
 *     z = x_t Wx + b + h_{t-1} Wh = [zi | zf | zg | zo]      (one fused GEMM, B x 4H)
 *     i = sigmoid(zi), f = sigmoid(zf), g = tanh(zg), o = sigmoid(zo)
 *     c_t = f * c_{t-1} + i * g,     h_t = o * tanh(c_t)
 * p[] = {Wx (in x 4H) = weight_ih^T, Wh (H x 4H) = weight_hh^T, b (1 x 4H) = bias_ih +
 * bias_hh}; column block k of each holds gate k. x Wx + b is projected for all T steps at once.
 * Uniform init in +-1/sqrt(H) except the forget-gate block of b, which starts at 1. */
int ur_lstm_cell(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                 ur_rng *rng);
/* The LSTM with options (ur_cell_opts): layer_norm (kind "lstm-ln"; Ba et al. 2016)
 *     z = LN(x_t Wx) gx + LN(h_{t-1} Wh) gh + b,    h_t = o * tanh(LN(c_t) gc + bc)
 * each product normalised over its 4H row (so both are declared apart), the gains starting
 * at 1; peephole (kind "lstm-peephole"; Gers & Schmidhuber 2000)
 *     i = sigmoid(zi + pi * c_{t-1}), f = sigmoid(zf + pf * c_{t-1}), o = sigmoid(zo + po * c_t)
 * with diagonal (1 x H) weights; both together: "lstm-ln-peephole". p[] = {Wx, Wh, b}, then
 * with layer_norm {gx, gh (1 x 4H), gc, bc (1 x H)}, then with peephole {pi, pf, po}. The
 * layer norm's epsilon is hp[0]. opts NULL or all zero: ur_lstm_cell. */
int ur_lstm_cell_ex(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                    const ur_cell_opts *opts, ur_rng *rng);

/* ---- Constructor errors ------------------------------------------------------------------- */

/* Constructors (cells, Jordan, stack, truncated BPTT) return 0 or -1, and on -1 this gives
 * the reason: the first problem that call met (e.g. "params_add: l.Wh: out of memory"),
 * prefixed by the constructor. Each constructor clears it on entry, so after a success it is
 * NULL. Per thread. */
const char *ur_model_error(void);
/* Clears ur_model_error; a user-written cell constructor calls it first, as built-ins do. */
void ur_model_clear_error(void);
/* Records a constructor's failure reason (printf format; the arguments may include
 * ur_model_error() itself) for ur_model_error; returns -1. For user-written constructors. */
int ur_model_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* ---- Jordan network ----------------------------------------------------------------------
 * The hidden layer is fed by the previous OUTPUT instead of the previous hidden state:
 *     h_t = tanh(b + W y_{t-1} + U x_t),     o_t = c + V h_t
 * in row-vector form h_t = tanh(x_t U + y_{t-1} W + b), o_t = h_t V + c. y_{-1} is the given
 * initial fed-back vector (zeros when NULL). What y_{t-1} is depends on the mode:
 *   UR_JORDAN_TEACHER    teacher forcing: the previous target (training). Nothing is
 *                        recurrent then, so all T steps run as three large GEMMs; h_t does not
 *                        depend on V or c at all.
 *   UR_JORDAN_FREE       free-running (open loop): the model's own previous output, as chosen
 *                        by feed (below). Steps run one after the other.
 *   UR_JORDAN_SCHEDULED  scheduled sampling: at each step t >= 1, each of the B sequences
 *                        independently feeds its target with probability p_teacher, else the
 *                        model's own output (coins drawn from rng: a fixed seed reproduces a run).
 * What of its own output the model feeds back (UR_JORDAN_FREE and _SCHEDULED):
 *   UR_FEED_OUTPUT   o_{t-1} itself (regression). The gradient flows through the fed-back
 *                    output: the loss at t reaches V, c and h_{t-1} through y_{t-1} as well.
 *   UR_FEED_SOFTMAX  softmax(o_{t-1}), the class probabilities; the gradient flows through it.
 *   UR_FEED_ARGMAX   a one-hot of argmax o_{t-1} (first on ties): a constant, no gradient.
 *   UR_FEED_SAMPLE   a one-hot of a class drawn from softmax(o_{t-1}) with rng: no gradient.
 * For classification, targets are one-hot rows (out_dim = number of classes) and o holds the
 * logits, e.g. for ur_softmax_nll. */
typedef enum ur_jordan_mode {
    UR_JORDAN_TEACHER = 0,
    UR_JORDAN_FREE,
    UR_JORDAN_SCHEDULED
} ur_jordan_mode;

typedef enum ur_jordan_feed {
    UR_FEED_OUTPUT = 0,
    UR_FEED_SOFTMAX,
    UR_FEED_ARGMAX,
    UR_FEED_SAMPLE
} ur_jordan_feed;

/* How to run a Jordan network; all zeros (or NULL) means teacher forcing. */
typedef struct ur_jordan_opts {
    ur_jordan_mode mode;
    ur_jordan_feed feed;  /* what the model feeds back of its own output */
    float p_teacher;      /* UR_JORDAN_SCHEDULED: probability of feeding the target, in [0, 1] */
    ur_rng *rng;          /* needed by UR_JORDAN_SCHEDULED and UR_FEED_SAMPLE */
    const int *lengths;   /* B lengths in [1, T] (see "Uneven lengths"), or NULL: past its
                             length a row's o and H are zero (mask the loss with
                             ur_length_mask); rows never mix, so the rest is unchanged */
    int allow_empty;      /* 1: a length may be 0 (truncated BPTT's chunks) */
} ur_jordan_opts;

/* A Jordan network's sizes and parameters (owned by the ur_params it was made in). */
typedef struct ur_jordan {
    int in_dim, hidden, out_dim;
    ur_tensor *U;   /* in_dim x hidden */
    ur_tensor *W;   /* out_dim x hidden: fed-back output to hidden */
    ur_tensor *b;   /* 1 x hidden */
    ur_tensor *V;   /* hidden x out_dim */
    ur_tensor *c;   /* 1 x out_dim */
} ur_jordan;

/* Adds "<prefix>.U/W/b/V/c" to ps, uniform in +-1/sqrt(hidden) from rng, and fills m.
 * Returns 0, or -1 with the reason in ur_model_error (bad argument, parameter not added). */
int ur_jordan_init(ur_jordan *m, ur_params *ps, const char *prefix, int in_dim, int hidden,
                   int out_dim, ur_rng *rng);

/* Runs m over the time-stacked x_all (T*B x in_dim) and returns the outputs o (T*B x out_dim,
 * logits for classification). targets (T*B x out_dim) is needed by teacher forcing and
 * scheduled sampling and ignored when free-running (may be NULL then); y0 (B x out_dim) is
 * the vector fed at t = 0 (NULL: zeros; one that requires a gradient receives it). H, if not
 * NULL, receives the hidden states (T*B x hidden); fed, if not NULL, the vectors fed at each
 * step (T*B x out_dim: rows of step t hold y_{t-1}). On error the tape fails and the
 * poison tensor is returned. */
ur_tensor *ur_jordan_run(ur_tape *tp, const ur_jordan *m, ur_tensor *x_all, int T,
                         ur_tensor *targets, ur_tensor *y0, const ur_jordan_opts *opts,
                         ur_tensor **H, ur_tensor **fed);

/* ---- Truncated BPTT ----------------------------------------------------------------------
 * A long sequence of T steps is cut into chunks, each recorded on a fresh tape (after
 * ur_tape_reset) and updated on its own. The state reached in one chunk starts the next one
 * as a detached value: a leaf with the same numbers and no node, so the gradient stops at
 * the chunk boundary while the values carry on. ur_tbptt keeps those values in memory it
 * owns (the old tape's tensors are gone after the reset).
 *
 * TBPTT(k1, k2): an update every k1 steps, each backpropagating through k2 >= k1 steps
 * (k2 = 0 means k2 = k1, plain non-overlapping chunks). Chunk j:
 *     loss window   steps [j k1, min((j+1) k1, T))  -- each step is counted exactly once
 *     reads         steps [start, end of the window), start = max(0, j k1 - (k2 - k1)),
 *                   so len <= k2 (shorter at the beginning, where there is less history)
 *     loss_from     = j k1 - start: chunk-relative index of the first step the loss counts
 *     carry         the next chunk starts k1 steps later (at start' = max(0, (j+1) k1 -
 *                   (k2 - k1))), so it starts from the state after step start' - 1 of the
 *                   sequence: chunk-relative index carry = start' - start - 1, which is k1 - 1
 *                   in the steady state (the state after the FIRST k1 steps of the chunk,
 *                   not its last state, unless k1 = k2); -1 when start' = start (keep the
 *                   carried state as it is).
 * The first k2 - k1 steps of a chunk are read again by the next chunk: overlap costs k2 / k1
 * times the forward work of plain chunks.
 *
 *     ur_tbptt tb;                                      // B sequences read in parallel
 *     ur_tbptt_chunk ch;
 *     if (ur_tbptt_init(&tb, T, k1, k2, B, cell.hidden, cell.has_c) != 0) ...;
 *     while (ur_tbptt_next(&tb, &ch)) {
 *         ur_tape_reset(tp);
 *         ur_tensor *x = ur_input_from(tp, ch.len * B, in, xs + (size_t)ch.start * B * in);
 *         ur_seq seq;
 *         ur_unroll(tp, &cell, x, ch.len, ur_tbptt_state(&tb, tp), 0, &seq);
 *         int n = (ch.len - ch.loss_from) * B;          // rows the loss counts
 *         ur_tensor *y = ur_input_from(tp, n, out, ys + (size_t)(ch.start + ch.loss_from) * B * out);
 *         ur_tensor *o = ur_linear(tp, ur_rows(tp, seq.H, ch.loss_from * B, n), V, c);
 *         ur_tensor *loss = ur_mse(tp, o, y, UR_MEAN);
 *         ur_params_zero_grad(ps);
 *         if (ur_backward(tp, loss) != 0) break;        // message: ur_tape_error(tp)
 *         ...optimizer step...
 *         ur_tbptt_carry_from(&tb, &ch, seq.states);    // before the tape is reset
 *     }
 *     ur_tbptt_free(&tb);
 * A stacked model keeps one ur_tbptt per layer; a Jordan network carries its fed-back vector
 * (width out_dim) the same way. */

/* Where chunk j of a T-step sequence lies (see above); all indices count steps, not rows. */
typedef struct ur_tbptt_chunk {
    int index;      /* j */
    int start;      /* first step read (index in the whole sequence) */
    int len;        /* number of steps read: rows [start*B, (start+len)*B) of the sequence */
    int loss_from;  /* the loss counts chunk-relative steps [loss_from, len) */
    int carry;      /* chunk-relative step whose state starts the next chunk; -1: keep */
} ur_tbptt_chunk;

/* Plans chunk j of TBPTT(k1, k2) over T steps (k2 = 0: k1). Returns 1 and fills ch when
 * chunk j exists, 0 past the end, -1 on bad arguments (T, k1 < 1, 0 < k2 < k1, j < 0). */
int ur_tbptt_plan(int T, int k1, int k2, int j, ur_tbptt_chunk *ch);

/* The state carried between chunks and the chunk counter. */
typedef struct ur_tbptt {
    int T, k1, k2;        /* sequence length, update period, backpropagation length */
    int B, width, has_c;  /* carried state: h (and c when has_c), B x width each */
    int next;             /* index of the next chunk ur_tbptt_next returns */
    float *h, *c;         /* carried values (owned; c NULL without has_c) */
    int *lengths;         /* the sequences' lengths (ur_tbptt_set_lengths; owned) or NULL */
    int *chunk_lengths;   /* B: the current chunk's (ur_tbptt_lengths) */
} ur_tbptt;

/* Prepares TBPTT(k1, k2) over T steps with a zero state of B x width (and a c when has_c).
 * Returns 0, or -1 on bad arguments or out of memory (reason in ur_model_error; tb is then
 * safe to free). */
int ur_tbptt_init(ur_tbptt *tb, int T, int k1, int k2, int B, int width, int has_c);
/* Fills ch with the next chunk and returns 1; returns 0 once the sequence is done. */
int ur_tbptt_next(ur_tbptt *tb, ur_tbptt_chunk *ch);
/* The B sequences have these lengths (each in [1, T]; NULL: all T). Each chunk then has
 * lengths of its own (ur_tbptt_lengths), for ur_unroll_with (with allow_empty: a sequence
 * may have ended before the chunk) and for the loss's mask (rows [loss_from*B, len*B) of
 * seq.mask). A sequence that ended keeps its state, so the carry needs nothing more. Returns
 * 0, or -1 on a bad length or out of memory (reason in ur_model_error; nothing changed). */
int ur_tbptt_set_lengths(ur_tbptt *tb, const int *lengths);
/* After ur_tbptt_next, with lengths set: each row's real steps in the chunk, in [0, len]
 * (owned by tb, valid until its next chunk). NULL without lengths. */
const int *ur_tbptt_lengths(const ur_tbptt *tb);
/* The carried state as new leaves on tp (detached: no node, no gradient path), to start the
 * next chunk from; c is NULL without has_c. */
ur_state ur_tbptt_state(const ur_tbptt *tb, ur_tape *tp);
/* Copies the values of s (B x width h, and c when has_c) as the state to carry. Returns 0,
 * or -1 on a missing tensor or a shape mismatch (nothing is copied then). */
int ur_tbptt_carry(ur_tbptt *tb, ur_state s);
/* Carries states[ch->carry] (the states of the chunk, indexed by chunk-relative step, as in
 * ur_seq.states), or keeps the state when ch->carry is -1. Returns 0 or -1 as above. */
int ur_tbptt_carry_from(ur_tbptt *tb, const ur_tbptt_chunk *ch, const ur_state *states);
/* Starts over at chunk 0 (a new epoch); zeroes the carried state unless keep_state. */
void ur_tbptt_rewind(ur_tbptt *tb, int keep_state);
/* Frees the carried values. NULL is ignored. */
void ur_tbptt_free(ur_tbptt *tb);

/* ---- GRU ----------------------------------------------------------------------------------
 * PyTorch's equations and gate order (r, z, n), so weights compare with torch.nn.GRU:
 *     [xr | xz | xn] = x_t Wx + bx       (all T steps at once)
 *     [hr | hz | hn] = h_{t-1} Wh + bh   (one fused GEMM per step, B x 3H)
 *     r = sigmoid(xr + hr),  z = sigmoid(xz + hz),  n = tanh(xn + r * hn)
 *     h_t = (1 - z) * n + z * h_{t-1}
 * i.e. n = tanh(x Wn + bn + r * (h Whn + bhn)). p[] = {Wx (in x 3H) = weight_ih^T, bx (1 x 3H)
 * = bias_ih, Wh (H x 3H) = weight_hh^T, bh (1 x 3H) = bias_hh}. No c state. Declares x Wx +
 * bx and h Wh + bh apart (the reset gate scales the second), so Wh's gradient is one GEMM
 * over all steps too. */
int ur_gru_cell(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                ur_rng *rng);
/* The GRU with options. layer_norm (kind "gru-ln"; Ba et al. 2016): each product normalised
 * over its 3H row with its own gain (starting at 1) before its bias,
 *     [xr | xz | xn] = LN(x_t Wx) gx + bx,   [hr | hz | hn] = LN(h_{t-1} Wh) gh + bh,
 * p[] = {Wx, bx, Wh, bh, gx, gh}, epsilon in hp[0]. gru_reset_before selects Cho et al. 2014 (kind "gru-cho"):
 *     r, z as above from x_t Wx + bx and h_{t-1} Wh + bh (Wh is H x 2H, bh 1 x 2H: r, z only)
 *     n = tanh(xn + (r * h_{t-1}) Un)      (the reset gate scales h before the product)
 * p[] = {Wx (in x 3H), bx (1 x 3H), Wh (H x 2H), bh (1 x 2H), Un (H x H)}. opts NULL or
 * all zero: ur_gru_cell (PyTorch/cuDNN). */
int ur_gru_cell_ex(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                   const ur_cell_opts *opts, ur_rng *rng);

/* ---- Stacked layers -----------------------------------------------------------------------
 * Layer l's time-stacked H (T*B x H_l) is layer l+1's input; any cells, mixed kinds allowed.
 * Dropout (inverted, masks from rng) between layers, not after the top one; set dropout to 0
 * for evaluation. */
#define UR_STACK_MAX_LAYERS 16

typedef struct ur_stack {
    int layers;
    const ur_cell *cell[UR_STACK_MAX_LAYERS]; /* cell[l]->in_dim == cell[l-1]->hidden */
    float dropout;                            /* in [0, 1); 0: none */
    ur_rng *rng;                              /* dropout masks (needed when dropout > 0) */
} ur_stack;

/* The result of a stacked unroll. */
typedef struct ur_stack_seq {
    int layers;
    ur_seq layer[UR_STACK_MAX_LAYERS]; /* each layer's unroll */
    ur_state last[UR_STACK_MAX_LAYERS];/* each layer's last state (= layer[l].last) */
    ur_tensor *H;                      /* the top layer's T*B x hidden */
    ur_tensor *mask;                   /* with lengths: the T*B x 1 mask of real steps */
} ur_stack_seq;

/* Fills st with layers cells (the array must outlive st), checking that the sizes chain.
 * Returns 0, or -1 with the reason in ur_model_error. */
int ur_stack_init(ur_stack *st, int layers, const ur_cell *cells, float dropout, ur_rng *rng);
/* Unrolls every layer over x_all (T*B x cell[0]->in_dim). init: one state per layer, or NULL
 * for zeros (a NULL h or c inside means zeros too). Returns 0, or -1 with the tape failed. */
int ur_stack_unroll(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                    const ur_state *init, ur_stack_seq *out);
/* The same with every layer checkpointed as ck says (NULL: plain); last_only applies to the
 * top layer (out->H is then NULL), the others keep the H the next layer reads. */
int ur_stack_unroll_checkpointed(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                                 const ur_state *init, const ur_checkpoint *ck,
                                 ur_stack_seq *out);
/* The same with options (every layer reads the same lengths, and reversed when asked;
 * opts->checkpoint checkpoints every layer, as ur_stack_unroll_checkpointed, also with
 * lengths). */
int ur_stack_unroll_with(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                         const ur_state *init, const ur_unroll_opts *opts, ur_stack_seq *out);

/* ---- Bidirectional ------------------------------------------------------------------------ */

/* The result of a bidirectional unroll. */
typedef struct ur_bidir_seq {
    ur_seq fw;       /* steps 0 .. T-1; fw.last is after step T-1 */
    ur_seq bw;       /* read T-1 .. 0; bw.states[t] is still step t, bw.last after step 0 */
    ur_tensor *H;    /* T*B x (Hf + Hb): row block t is [fw h_t | bw h_t] */
    ur_tensor *mask; /* with lengths: the T*B x 1 mask of real steps */
} ur_bidir_seq;

/* Runs fw forward and bw reversed over the same x_all (T*B x in), each from its own initial
 * state, and joins their h per step. Returns 0, or -1 with the tape failed. */
int ur_bidir_unroll(ur_tape *tp, const ur_cell *fw, const ur_cell *bw, ur_tensor *x_all, int T,
                    ur_state init_fw, ur_state init_bw, ur_bidir_seq *out);
/* The same with both directions checkpointed as ck says (NULL: plain). The join needs every
 * step's h, so ck->last_only is an error here. */
int ur_bidir_unroll_checkpointed(ur_tape *tp, const ur_cell *fw, const ur_cell *bw,
                                 ur_tensor *x_all, int T, ur_state init_fw, ur_state init_bw,
                                 const ur_checkpoint *ck, ur_bidir_seq *out);
/* The same with lengths (opts->reverse must be 0): the backward cell starts each row at its
 * own last step, from init_bw, and bw.last is every row's state after its step 0.
 * opts->checkpoint checkpoints both directions (not last_only), also with lengths. */
int ur_bidir_unroll_with(ur_tape *tp, const ur_cell *fw, const ur_cell *bw, ur_tensor *x_all,
                         int T, ur_state init_fw, ur_state init_bw, const ur_unroll_opts *opts,
                         ur_bidir_seq *out);

/* ---- Single output and heads --------------------------------------------------------------
 * Heads are separate from cells and need no helper: a head on every step is one GEMM over the
 * stacked H, ur_linear(tp, seq.H, V, c) (T*B x out); a head on one output is
 * ur_linear(tp, h, V, c) on the h below (B x out). */

/* Unrolls cell over x_all and returns the last state's h (B x hidden); *last (if not NULL)
 * gets the whole last state. The tape's poison tensor on error. */
ur_tensor *ur_single_output(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T,
                            ur_state init, ur_state *last);
/* The same through a stack: the top layer's last h; last (if not NULL) gets st->layers
 * states, one per layer. */
ur_tensor *ur_stack_single_output(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                                  const ur_state *init, ur_state *last);
/* Both with options: with lengths, each row's h at its own last step (at step 0 reversed). */
ur_tensor *ur_single_output_with(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T,
                                 ur_state init, const ur_unroll_opts *opts, ur_state *last);
ur_tensor *ur_stack_single_output_with(ur_tape *tp, const ur_stack *st, ur_tensor *x_all, int T,
                                       const ur_state *init, const ur_unroll_opts *opts,
                                       ur_state *last);

/* ---- Beam search ---------------------------------------------------------------------------
 * Decodes token sequences from any cell: each step's input is the previous token (the start
 * token first) through an embedding (or one-hot), an output layer gives the logits, and the
 * k most probable partial sequences are kept per example; a hypothesis ends at the end
 * token. All beams of all examples run as one batch (one GEMM per product per step), on the
 * decoder's own tape and buffers: after its first step a decode allocates nothing. Width 1
 * is greedy decoding. See models/beam.c for the search and its stopping rule.
 *
 *     ur_beam_opts bo = {.width = 5, .start = BOS, .end = EOS, .max_len = 30,
 *                        .embed = E, .head_w = V, .head_b = c};
 *     ur_beam *bs = ur_beam_new(&decoder, &bo, 64);      // NULL: ur_model_error()
 *     if (ur_beam_decode(bs, n, init, 0) != 0) ...;        // message: ur_beam_error(bs)
 *     ur_beam_hyp best = ur_beam_best(bs, i);             // tokens of example i
 *     ur_beam_free(bs); */

/* An output layer given as a function: the n x V logits of the n x hidden h, recorded on tp. */
typedef ur_tensor *(*ur_head_fn)(ur_tape *tp, ur_tensor *h, void *ctx);
/* An output layer with input feeding: the logits as ur_head_fn, and in *feed an n x feed
 * vector that the next step's cell input gets after the token's (e.g. an attention context). */
typedef ur_tensor *(*ur_head_feed_fn)(ur_tape *tp, ur_tensor *h, ur_tensor **feed, void *ctx);

typedef struct ur_beam_opts {
    int width;           /* k >= 1 hypotheses per example (1: greedy) */
    int start, end;      /* the first input token; the token that ends a hypothesis */
    int max_len;         /* tokens generated at most (the end token included) */
    float length_alpha;  /* length normalisation: rank by log P / len^alpha, len counting the
                            end token; 0: by log P (favours short outputs), 1: per token */
    ur_tensor *embed;    /* vocab_in x in_dim embedding of the input token; NULL: one-hot
                            (the cell's in_dim is then V) */
    ur_tensor *head_w, *head_b; /* the linear head logits = h W + b (hidden x V, 1 x V or
                            NULL); or head_w NULL and: */
    ur_head_fn head;     /* a head of one's own, with its context and its V */
    void *head_ctx;
    int vocab;
    int feed;            /* > 0: input feeding. The cell reads [token's input | feed], the
                            vector head_feed returned at the step before (zeros first), kept
                            per beam; head_feed then replaces head (head_w NULL), with head_ctx
                            and vocab. Row i*width + j of every step is beam j of example i. */
    ur_head_feed_fn head_feed;
} ur_beam_opts;

/* A decoder (opaque): the cell and the options' tensors must outlive it. */
typedef struct ur_beam ur_beam;

/* One decoded hypothesis (owned by the decoder, valid until its next decode). */
typedef struct ur_beam_hyp {
    const int *tokens;   /* len tokens, without the start and end tokens */
    int len;
    int ended;           /* 1 if it ended with the end token, 0 if cut at max_len */
    double logprob;      /* log P of the tokens (and of the end token when ended) */
    double score;        /* logprob / (len + ended)^alpha: what the search ranked by */
} ur_beam_hyp;

/* A decoder for up to max_batch examples at a time. NULL on bad options (sizes that do not
 * chain, tokens out of range) or no memory, with the reason in ur_model_error. */
ur_beam *ur_beam_new(const ur_cell *cell, const ur_beam_opts *opts, int max_batch);
/* Decodes n examples from init (n x hidden h, and c for LSTM-like cells; NULL: zeros; values
 * only are read, no gradient) in at most max_len steps (0: the options' max_len, which it may
 * not exceed). Returns 0, or -1 with the reason in ur_beam_error. */
int ur_beam_decode(ur_beam *bs, int n, ur_state init, int max_len);
/* Example i's best hypothesis after ur_beam_decode (tokens NULL if i is out of range). */
ur_beam_hyp ur_beam_best(const ur_beam *bs, int i);
/* Why the last ur_beam_decode failed, or NULL. */
const char *ur_beam_error(const ur_beam *bs);
/* Frees the decoder. NULL is ignored. */
void ur_beam_free(ur_beam *bs);

#ifdef __cplusplus
}
#endif
#endif
