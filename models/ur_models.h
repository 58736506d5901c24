/* libunroll: recurrent models as graph code.
 *
 * A cell records one time step, state_t = cell(x_t, state_{t-1}), with ops on the tape. Unrolling
 * calls it T times with the same parameter tensors, so the gradient of each parameter is the
 * sum over steps: BPTT falls out of the generic backward, with no RNN-specific gradient code.
 *
 * Sequences are time-stacked matrices: T*B rows, rows [t*B, (t+1)*B) hold step t of all B
 * sequences (ur_rows gives a step as a zero-copy view). A cell may declare an input
 * projection done for all T steps by one GEMM before the recurrence (x_all W + b); its step
 * then receives that projection's rows for step t instead of the raw input.
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

/* Records one step. x is step t's rows of the projected input when the cell has a project
 * function, else of the raw input (B x in_dim). prev.h / prev.c are never NULL. */
typedef ur_state (*ur_cell_step_fn)(ur_tape *tp, const ur_cell *cell, ur_tensor *x, ur_state prev);
/* Projects the whole time-stacked input (T*B x in_dim) at once, e.g. x_all U + b. */
typedef ur_tensor *(*ur_cell_project_fn)(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all);

#define UR_CELL_MAX_PARAMS 8

/* A cell: its step, optional input projection, sizes and parameter tensors. Built-in cells
 * come from the constructors below; a user cell fills this struct by hand. */
struct ur_cell {
    const char *kind;          /* "elman", "lstm", "gru", ... (for messages) */
    ur_cell_step_fn step;
    ur_cell_project_fn project;/* NULL: the step gets raw input rows */
    int in_dim, hidden;
    int has_c;                 /* 1 if the state has a cell state c */
    ur_tensor *p[UR_CELL_MAX_PARAMS]; /* parameters, meaning defined by the cell kind */
    void *user;                /* free for user cells */
};

/* ---- Built-in cells ----------------------------------------------------------------------
 * Each adds its parameters to ps under "<prefix>.<name>" and initialises them from rng
 * (uniform in +-1/sqrt(hidden), as PyTorch does). Returns 0, or -1 when a parameter cannot
 * be added (message in ur_params_error). */

/* Elman: a = b + W h_{t-1} + U x_t, h_t = tanh(a). Params: U (in x H), W (H x H), b (1 x H). */
int ur_elman_cell(ur_cell *cell, ur_params *ps, const char *prefix, int in_dim, int hidden,
                  ur_rng *rng);

/* Adds parameter "<prefix>.<name>" (rows x cols) to ps, uniform in [-k, k] from rng; NULL
 * on failure (see ur_params_error). For cell constructors, built-in or user-written. */
ur_tensor *ur_model_param(ur_params *ps, const char *prefix, const char *name, int rows, int cols,
                          float k, ur_rng *rng);

/* ---- Unrolling --------------------------------------------------------------------------- */

/* The result of an unroll: T steps of B rows. */
typedef struct ur_seq {
    int T, B;
    ur_tensor *H;       /* T*B x hidden: every step's h, time-stacked (one copy at the end) */
    ur_state *states;   /* T states (on the tape), states[t] after reading step t */
    ur_state last;      /* the state after the last step read (states[T-1], or states[0]
                           when reversed) */
} ur_seq;

/* Runs cell over the time-stacked x_all (T*B x in_dim) from init (a NULL h or c means zeros;
 * a given one that requires a gradient receives it). reverse = 1 reads steps T-1 .. 0 (for
 * bidirectional models); states[t] still belongs to step t. Returns 0, or -1 with the tape
 * failed. */
int ur_unroll(ur_tape *tp, const ur_cell *cell, ur_tensor *x_all, int T, ur_state init,
              int reverse, ur_seq *out);
/* Same over T per-step tensors x[t] (each B x in_dim); they are stacked first. */
int ur_unroll_steps(ur_tape *tp, const ur_cell *cell, int T, ur_tensor *const *x, ur_state init,
                    int reverse, ur_seq *out);

#ifdef __cplusplus
}
#endif
#endif
