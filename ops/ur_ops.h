/* libunroll: ops. Each op computes its value now and records itself on the tape (when any
 * input needs a gradient). Shapes are rows x cols, rows = batch. On a shape mismatch or a
 * NULL input an op fails the tape with a message naming itself and both shapes, and returns
 * the tape's poison tensor; every later op on that tape does nothing. */
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

/* ---- Element-wise --------------------------------------------------------------------- */

/* a + b, same shapes. */
ur_tensor *ur_add(ur_tape *tp, ur_tensor *a, ur_tensor *b);
/* a - b, same shapes. */
ur_tensor *ur_sub(ur_tape *tp, ur_tensor *a, ur_tensor *b);
/* a * b element-wise (Hadamard), same shapes. */
ur_tensor *ur_mul(ur_tape *tp, ur_tensor *a, ur_tensor *b);
/* s * a. */
ur_tensor *ur_scale(ur_tape *tp, ur_tensor *a, float s);
/* x + b with the 1 x cols row b added to every row of x. */
ur_tensor *ur_add_bias(ur_tape *tp, ur_tensor *x, ur_tensor *b);
/* tanh(x). */
ur_tensor *ur_tanh(ur_tape *tp, ur_tensor *x);
/* 1 / (1 + exp(-x)), computed without overflow. */
ur_tensor *ur_sigmoid(ur_tape *tp, ur_tensor *x);
/* max(x, 0). */
ur_tensor *ur_relu(ur_tape *tp, ur_tensor *x);
/* 1 - x (used by GRU's update gate). */
ur_tensor *ur_one_minus(ur_tape *tp, ur_tensor *x);
/* Sum of all elements, as a 1 x 1 tensor. */
ur_tensor *ur_sum(ur_tape *tp, ur_tensor *x);

/* ---- Shape ---------------------------------------------------------------------------- */

/* [x_0 | x_1 | ... ] side by side: all have the same rows, cols add up. */
ur_tensor *ur_concat_cols(ur_tape *tp, int n, ur_tensor *const *x);
/* Columns [col0, col0 + n) of x, copied (a column slice is not contiguous). */
ur_tensor *ur_cols(ur_tape *tp, ur_tensor *x, int col0, int n);
/* Splits x's columns into n equal parts written to out[0..n-1]. Returns 0, -1 on error. */
int ur_split_cols(ur_tape *tp, ur_tensor *x, int n, ur_tensor **out);
/* [a ; b ; ...] stacked by rows (per-step tensors into one time-stacked matrix). */
ur_tensor *ur_concat_rows(ur_tape *tp, int n, ur_tensor *const *x);

/* ---- Embedding ------------------------------------------------------------------------ */

/* Rows ids[0..n-1] of the table E (vocab x dim), as an n x dim tensor. An id outside
 * [0, vocab) fails the tape. Backward scatter-adds into E's gradient. */
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

/* ---- Fused gates ----------------------------------------------------------------------- */

/* The element-wise half of an LSTM step in one op: z (B x 4H) holds the pre-activations
 * [i | f | g | o] (PyTorch's order); c = sigmoid(f) c_prev + sigmoid(i) tanh(g) and
 * h = sigmoid(o) tanh(c), both B x H. Returns 0, or -1 with the tape failed. */
int ur_lstm_gates(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor **h, ur_tensor **c);
/* The same, storing the activations over z's values (saving B x 4H floats per step): z must
 * be a temporary that no other op reads afterwards (as in an LSTM step). */
int ur_lstm_gates_inplace(ur_tape *tp, ur_tensor *z, ur_tensor *c_prev, ur_tensor **h,
                          ur_tensor **c);

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

#ifdef __cplusplus
}
#endif
#endif
