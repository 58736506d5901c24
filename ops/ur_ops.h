/* libunroll: ops. Each op computes its value now and records itself on the tape (when any
 * input needs a gradient). Shapes are rows x cols, rows = batch. On a shape mismatch or a
 * NULL input an op fails the tape with a message naming itself and both shapes, and returns
 * the tape's poison tensor; every later op on that tape does nothing. Every op passes NaN on:
 * a NaN input element gives NaN in each output element that depends on it (clamp, relu and
 * max included, never a silent 0). */
#ifndef UR_OPS_H
#define UR_OPS_H

#include "graph/ur_graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Matrix products (cblas_sgemm; transposes are flags, never copies) ----------------- */

/* op(a) op(b), where op(x) is x or x^T as trans_a / trans_b say. */
ur_tensor *ur_matmul(ur_tape *tp, ur_tensor *a, ur_tensor *b, int trans_a, int trans_b);
/* c + a b: c is copied once and the product accumulated into it (beta = 1). c is B x N. */
ur_tensor *ur_addmm(ur_tape *tp, ur_tensor *c, ur_tensor *a, ur_tensor *b);
/* The linear layer x W + b: x is B x in, W is in x out, b is 1 x out (NULL for none). */
ur_tensor *ur_linear(ur_tape *tp, ur_tensor *x, ur_tensor *w, ur_tensor *b);
/* One product per block: a and b are nblocks equal row blocks A_k, B_k; block k of the result
 * is op(A_k) op(B_k), stacked by rows (nblocks * m x n). One BLAS call per block. E.g. for
 * B sequences of T steps stored batch-major (B*T x H) and queries q (B x H): scores
 * ur_block_matmul(q, E, B, 0, 1) is B x T (q_k E_k^T), context ur_block_matmul(w, E, B, 0, 0)
 * with weights w (B x T) is B x H. */
ur_tensor *ur_block_matmul(ur_tape *tp, ur_tensor *a, ur_tensor *b, int nblocks, int trans_a,
                           int trans_b);

/* ---- Element-wise --------------------------------------------------------------------- */

/* Broadcasting: a and b are the same shape m x n, or one of them is 1 x n (reused for every
 * row), m x 1 (one value per row) or 1 x 1; in general each dimension is equal or 1 on one
 * side, and the result is max(rows) x max(cols). A broadcast operand's gradient is summed
 * back to its own shape. */
/* a + b (broadcasting). */
ur_tensor *ur_add(ur_tape *tp, ur_tensor *a, ur_tensor *b);
/* a - b (broadcasting). */
ur_tensor *ur_sub(ur_tape *tp, ur_tensor *a, ur_tensor *b);
/* a * b element-wise (Hadamard; broadcasting). */
ur_tensor *ur_mul(ur_tape *tp, ur_tensor *a, ur_tensor *b);
/* a / b element-wise (broadcasting); b = 0 gives +-Inf or NaN as in C. */
ur_tensor *ur_div(ur_tape *tp, ur_tensor *a, ur_tensor *b);
/* s * a. */
ur_tensor *ur_scale(ur_tape *tp, ur_tensor *a, float s);
/* x + b with the 1 x cols row b added to every row of x: ur_add with b's shape enforced. */
ur_tensor *ur_add_bias(ur_tape *tp, ur_tensor *x, ur_tensor *b);
/* tanh(x). */
ur_tensor *ur_tanh(ur_tape *tp, ur_tensor *x);
/* tanh(x) written into out (same shape, on the tape, not yet written by any op, not x: e.g.
 * a row view of a time-stacked H), which becomes the op's output and is returned. out NULL:
 * ur_tanh. out may hold x's memory when they are views of different tensors (an unroll's H
 * stacked over a projection, ur_cell_proj.h_over): x's values are then replaced by tanh(x),
 * which the backward reads (it never reads x), and the two keep their own gradients. */
ur_tensor *ur_tanh_into(ur_tape *tp, ur_tensor *x, ur_tensor *out);
/* 1 / (1 + exp(-x)), computed without overflow. */
ur_tensor *ur_sigmoid(ur_tape *tp, ur_tensor *x);
/* max(x, 0); NaN stays NaN. */
ur_tensor *ur_relu(ur_tape *tp, ur_tensor *x);
/* Element-wise functions, y the shape of x. Edges as in C (libm): log 0 = -Inf, log and sqrt
 * of x < 0 are NaN, 1/0 = Inf, exp overflows to Inf; NaN in gives NaN out. */
/* e^x (libm expf: Inf above 88.7, 0 below -103). */
ur_tensor *ur_exp(ur_tape *tp, ur_tensor *x);
/* ln x. */
ur_tensor *ur_log(ur_tape *tp, ur_tensor *x);
/* sqrt(x); its gradient at 0 is Inf. */
ur_tensor *ur_sqrt(ur_tape *tp, ur_tensor *x);
/* 1 / sqrt(x). */
ur_tensor *ur_rsqrt(ur_tape *tp, ur_tensor *x);
/* x^2. */
ur_tensor *ur_square(ur_tape *tp, ur_tensor *x);
/* |x|; gradient sign(x), 0 at 0. */
ur_tensor *ur_abs(ur_tape *tp, ur_tensor *x);
/* 1 / x. */
ur_tensor *ur_reciprocal(ur_tape *tp, ur_tensor *x);
/* ln(1 + e^x), stable for any x (max(x, 0) + log1p(e^-|x|)); gradient sigmoid(x). */
ur_tensor *ur_softplus(ur_tape *tp, ur_tensor *x);
/* min(max(x, lo), hi) with lo <= hi (either may be infinite); gradient 1 inside [lo, hi],
 * 0 outside. */
ur_tensor *ur_clamp(ur_tape *tp, ur_tensor *x, float lo, float hi);
/* x + s. */
ur_tensor *ur_add_scalar(ur_tape *tp, ur_tensor *x, float s);
/* 1 - x (used by GRU's update gate). */
ur_tensor *ur_one_minus(ur_tape *tp, ur_tensor *x);
/* Sum of all elements, as a 1 x 1 tensor. */
ur_tensor *ur_sum(ur_tape *tp, ur_tensor *x);

/* ---- Reductions (summed in double) ----------------------------------------------------- */

/* Sum of each row: m x n -> m x 1. */
ur_tensor *ur_row_sum(ur_tape *tp, ur_tensor *x);
/* Mean of each row: m x n -> m x 1. */
ur_tensor *ur_row_mean(ur_tape *tp, ur_tensor *x);
/* Sum of each column: m x n -> 1 x n. */
ur_tensor *ur_col_sum(ur_tape *tp, ur_tensor *x);
/* Mean of each column: m x n -> 1 x n. */
ur_tensor *ur_col_mean(ur_tape *tp, ur_tensor *x);
/* Mean of all elements, as a 1 x 1 tensor (the total sum is ur_sum, above). */
ur_tensor *ur_mean(ur_tape *tp, ur_tensor *x);

/* ---- Normalisation -------------------------------------------------------------------- */

/* Softmax of each row of x (m x n -> m x n), stable for logits of any finite size; a logit of
 * -Inf gets probability 0; a row holding a NaN (or +Inf, or only -Inf) comes out all NaN. */
ur_tensor *ur_softmax(ur_tape *tp, ur_tensor *x);
/* log(softmax(x)) per row, computed as (x - max) - log sum exp(x - max): exact for large
 * logits where log(ur_softmax) would give -Inf. */
ur_tensor *ur_log_softmax(ur_tape *tp, ur_tensor *x);
/* Layer norm of each row of x (m x n): (x - mean) / sqrt(var + eps) * gain + bias, the
 * variance biased (over n); gain and bias are 1 x n or NULL (1 and 0); eps >= 0. One fused
 * op that saves each row's mean and 1/std. */
ur_tensor *ur_layer_norm(ur_tape *tp, ur_tensor *x, ur_tensor *gain, ur_tensor *bias, float eps);

/* ---- Constants (leaves without a gradient) ---------------------------------------------- */

/* rows x cols, every element value. */
ur_tensor *ur_constant(ur_tape *tp, int rows, int cols, float value);
/* rows x cols of 0. */
ur_tensor *ur_zeros(ur_tape *tp, int rows, int cols);
/* rows x cols of 1. */
ur_tensor *ur_ones(ur_tape *tp, int rows, int cols);
/* t's shape, every element value (t's values are not read). */
ur_tensor *ur_constant_like(ur_tape *tp, const ur_tensor *t, float value);

/* ---- Shape ---------------------------------------------------------------------------- */

/* [x_0 | x_1 | ... ] side by side: all have the same rows, cols add up. */
ur_tensor *ur_concat_cols(ur_tape *tp, int n, ur_tensor *const *x);
/* Columns [col0, col0 + n) of x, copied (a column slice is not contiguous). */
ur_tensor *ur_cols(ur_tape *tp, ur_tensor *x, int col0, int n);
/* Splits x's columns into n equal parts written to out[0..n-1]. Returns 0, -1 on error. */
int ur_split_cols(ur_tape *tp, ur_tensor *x, int n, ur_tensor **out);
/* [a ; b ; ...] stacked by rows (per-step tensors into one time-stacked matrix). */
ur_tensor *ur_concat_rows(ur_tape *tp, int n, ur_tensor *const *x);
/* x^T (rows x cols -> cols x rows), copied: for where a GEMM's transpose flag cannot reach. */
ur_tensor *ur_transpose(ur_tape *tp, ur_tensor *x);
/* x viewed as rows x cols (same number of elements, same row-major order): zero-copy, like
 * ur_rows; its gradient lands in x's. */
ur_tensor *ur_reshape(ur_tape *tp, ur_tensor *x, int rows, int cols);
/* A time-major sequence (T*B x F, rows [t*B, (t+1)*B) are step t) reordered batch-major
 * (B*T x F, rows [b*T, (b+1)*T) are sequence b's T steps). */
ur_tensor *ur_time_to_batch(ur_tape *tp, ur_tensor *x, int T);
/* The inverse: batch-major B*T x F back to time-major T*B x F. */
ur_tensor *ur_batch_to_time(ur_tape *tp, ur_tensor *x, int T);
/* The same written into out (rows adding up, on the tape, not yet written by any op), which
 * becomes the output and is returned. An x_i that already is out's row block (a row view of
 * out that an op wrote in place, e.g. by ur_tanh_into) is neither copied nor, in backward,
 * added to: its gradient is out's. An unroll stacks its states this way without a copy. */
ur_tensor *ur_concat_rows_into(ur_tape *tp, int n, ur_tensor *const *x, ur_tensor *out);
/* b (1 x n) repeated on rows rows (e.g. a recurrent product's bias, to accumulate into). */
ur_tensor *ur_repeat_rows(ur_tape *tp, ur_tensor *b, int rows);

/* ---- Gather / embedding --------------------------------------------------------------- */

/* Rows idx[0..n-1] of any x (rows x cols), as an n x cols tensor; an index outside [0, rows)
 * fails the tape. Backward scatter-adds into x's gradient (a row picked twice gets both). */
ur_tensor *ur_gather_rows(ur_tape *tp, ur_tensor *x, const int *idx, int n);
/* Rows ids[0..n-1] of the table E (vocab x dim), as an n x dim tensor: ur_gather_rows under
 * the name of its commonest use. An id outside [0, vocab) fails the tape. */
ur_tensor *ur_embedding(ur_tape *tp, ur_tensor *table, const int *ids, int n);

/* ---- Losses (each returns a 1 x 1 tensor) ---------------------------------------------- */

typedef enum ur_reduction { UR_MEAN = 0, UR_SUM = 1 } ur_reduction;

/* Softmax over each row of logits (B x K) fused with the negative log-likelihood of
 * targets[b] (in [0, K), or -1 to skip the row); mean over counted rows or sum. Stable for
 * logits of any size (log-sum-exp with the row max subtracted). */
ur_tensor *ur_softmax_nll(ur_tape *tp, ur_tensor *logits, const int *targets, ur_reduction red);
/* Mean (or sum) over all elements of (x - target)^2; target needs no gradient. */
ur_tensor *ur_mse(ur_tape *tp, ur_tensor *x, ur_tensor *target, ur_reduction red);
/* Sigmoid cross-entropy of logits against targets in [0, 1], computed stably; mean or sum. */
ur_tensor *ur_sigmoid_xent(ur_tape *tp, ur_tensor *logits, ur_tensor *target, ur_reduction red);
/* Softmax of each row (no gradient path; for sampling and accuracy). Writes B x K probs. */
int ur_softmax_rows(const ur_tensor *logits, float *probs);

/* The same three losses over the rows whose mask is 1 (mask: rows x 1 of 0s and 1s, such as
 * ur_seq.mask or ur_length_mask): a row whose mask is 0 (a padded step) counts for nothing,
 * its values and target are not read, and UR_MEAN divides by the real rows only (times cols
 * for mse and sigmoid_xent). A NULL mask counts every row, as the unmasked functions do. */
ur_tensor *ur_softmax_nll_masked(ur_tape *tp, ur_tensor *logits, const int *targets,
                                 ur_tensor *mask, ur_reduction red);
ur_tensor *ur_mse_masked(ur_tape *tp, ur_tensor *x, ur_tensor *target, ur_tensor *mask,
                         ur_reduction red);
ur_tensor *ur_sigmoid_xent_masked(ur_tape *tp, ur_tensor *logits, ur_tensor *target,
                                  ur_tensor *mask, ur_reduction red);

/* ---- Recurrent products ---------------------------------------------------------------- */

/* The weight W of a product used at every time step, z_t = c_t + h_{t-1} W, with W's gradient
 * computed once as one GEMM over all steps (sum_t h_{t-1}^T dz_t) instead of once per step.
 * ur_unroll sets one up for each recurrent product a cell declares (models/ur_models.h). */
typedef struct ur_recurrent ur_recurrent;

/* Starts a recurrent product over steps steps of rows rows each; NULL with the tape failed.
 * into (steps*rows x W's cols, or NULL): accumulate in place into it; every step's c must then
 * be its row block t, and into's values must not be needed by anything else afterwards. */
ur_recurrent *ur_recurrent_begin(ur_tape *tp, ur_tensor *w, int steps, int rows, ur_tensor *into);
/* c + h W for step t (0 <= t < steps); the result is row block t of one time-stacked tensor.
 * Each step t may be recorded once, in any order. */
ur_tensor *ur_recurrent_addmm(ur_tape *tp, ur_recurrent *r, int t, ur_tensor *c, ur_tensor *h);
/* ur_recurrent_begin for states that are time-stacked as they are made (steps*rows x W's
 * rows, e.g. an unroll's H): step t's h is then expected to be the states' row block t-1
 * (t+1 when reverse), which the weight's gradient reads in place instead of a copy; any other
 * h (the first step's initial state) is copied. The states' values must not change before
 * backward. */
ur_recurrent *ur_recurrent_begin_states(ur_tape *tp, ur_tensor *w, int steps, int rows,
                                        ur_tensor *into, ur_tensor *states, int reverse);

/* ---- Fused gates ----------------------------------------------------------------------- */

/* The element-wise half of an LSTM step in one op: z (B x 4H) holds the pre-activations
 * [i | f | g | o] (PyTorch's order); c = sigmoid(f) c_prev + sigmoid(i) tanh(g) and
 * h = sigmoid(o) tanh(c), both B x H. Returns 0, or -1 with the tape failed. */
int ur_lstm_gates(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor **h, ur_tensor **c);
/* The same, storing the activations over z's values (saving B x 4H floats per step): z must
 * be a temporary that no other op reads afterwards (as in an LSTM step). */
int ur_lstm_gates_inplace(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor **h,
                          ur_tensor **c);
/* ur_lstm_gates_inplace with h written into h_into (B x H, on the tape, not yet written by any
 * op: e.g. a row view of a time-stacked H), which becomes *h. h_into NULL: a new tensor. */
int ur_lstm_gates_into(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor *h_into,
                       ur_tensor **h, ur_tensor **c);
/* The element-wise half of a GRU step (PyTorch's r, z, n): x = x_t Wx + bx and g = h_{t-1} Wh
 * + bh (both B x 3H), r = sigmoid(xr + hr), z = sigmoid(xz + hz), n = tanh(xn + r hn),
 * h = (1 - z) n + z h_prev (B x H), written into h_into when not NULL (as ur_lstm_gates_into).
 * The activations overwrite x: x must be a temporary that no other op reads afterwards (as
 * the unroll's projection is); g's values must stay. */
ur_tensor *ur_gru_gates(ur_tape *tp, ur_tensor *x, ur_tensor *g, ur_tensor *h_prev,
                        ur_tensor *h_into);
/* A GRU step as Cho et al. (2014) write it, the reset gate before the product, in one op:
 * x = x_t Wx + bx (B x 3H), g = h_{t-1} Wh + bh (B x 2H, r and z only), Un (H x H);
 * r = sigmoid(xr + hr), z = sigmoid(xz + hz), n = tanh(xn + (r h_prev) Un),
 * h = (1 - z) n + z h_prev (B x H), written into h_into when not NULL (as ur_gru_gates).
 * Both x and g are overwritten (with [r | z | n] and r h_prev): they must be temporaries that
 * no other op reads afterwards (as the unroll's products are), sharing no memory. */
ur_tensor *ur_gru_cho_gates(ur_tape *tp, ur_tensor *x, ur_tensor *g, ur_tensor *h_prev,
                            ur_tensor *un, ur_tensor *h_into);

/* ---- Regularisation ------------------------------------------------------------------- */

/* Inverted dropout: each element is zeroed with probability p and the rest scaled by
 * 1 / (1 - p); the mask comes from rng. p = 0 returns x itself. 0 <= p < 1. */
ur_tensor *ur_dropout(ur_tape *tp, ur_tensor *x, float p, ur_rng *rng);

/* ---- Row masks (batches of uneven lengths; ops/mask.c) ---------------------------------- */

/* The T*B x 1 mask of B time-stacked sequences padded to T steps: row t*B + b is 1 when
 * t < lengths[b], else 0. Each length in [0, T]. A leaf (no gradient). */
ur_tensor *ur_length_mask(ur_tape *tp, int T, int B, const int *lengths);
/* Row r of a where mask[r] is 1, of b where it is 0 (mask R x 1 of 0s and 1s; a, b R x C):
 * h_t = m h_new + (1 - m) h_{t-1} as a selection, exact and NaN-safe; no gradient to mask. */
ur_tensor *ur_select_rows(ur_tape *tp, ur_tensor *mask, ur_tensor *a, ur_tensor *b);
/* x with the rows where mask (R x 1 of 0s and 1s) is 0 set to zero; no gradient to mask. */
ur_tensor *ur_mask_rows(ur_tape *tp, ur_tensor *x, ur_tensor *mask);
/* ur_mask_rows written into out (x's shape, on tp, not yet written by any op: e.g. a step's
 * rows of a time-stacked H), which it returns. */
ur_tensor *ur_mask_rows_into(ur_tape *tp, ur_tensor *x, ur_tensor *mask, ur_tensor *out);

/* ---- Threads and kernels (process-wide; see unroll.h for what threads share) ------------- */

/* The vector instruction set of the element-wise loops and the recurrent product's kernel:
 * "avx512", "avx2" or "generic" (plain x86-64; the recurrence then uses cblas). It is the
 * best the CPU has, unless UR_ISA=avx2 or UR_ISA=generic in the environment asks for less
 * (read once, at the first use; a higher or unknown value is ignored). Results agree across
 * the levels to rounding; tests run under each level where the CPU has it (.ci/run). */
const char *ur_isa(void);

/* Sets the number of threads (1 to 8; outside that, the nearest) that libunroll's products and
 * recurrences are split over, for the whole process, and returns it. Call it at any time from
 * any thread; it applies to the products started after it. Without it, the count is taken
 * once from OpenBLAS's (OPENBLAS_NUM_THREADS) at the first product. Either way OpenBLAS itself
 * is set to one thread, once, for good: libunroll never changes OpenBLAS's count afterwards,
 * and another OpenBLAS user in the process then runs single-threaded too. */
int ur_set_threads(int n);
/* The number of threads products are split over (ur_set_threads, or OpenBLAS's count taken
 * once; the first call takes it and sets OpenBLAS to one thread). */
int ur_threads(void);

#ifdef __cplusplus
}
#endif
#endif
