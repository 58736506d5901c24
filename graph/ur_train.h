/* libunroll: training utilities. Optimizers, learning-rate schedules, gradient clipping,
 * initialisers, model files and sampling from a softmax head.
 *
 *     char err[256];
 *     ur_optim_config cfg = ur_optim_defaults(UR_OPTIM_ADAM);
 *     ur_optim *opt = ur_optim_new(params, &cfg, err, sizeof err);
 *     for (long step = 0; step < n_steps; step++) {
 *         ...forward, ur_params_zero_grad, ur_backward...
 *         ur_clip_grad_norm(params, 5.0);
 *         ur_optim_set_lr(opt, ur_lr_cosine(cfg.lr, step, n_steps, 100, 0.0f));
 *         ur_optim_step(opt);
 *     }
 *     if (ur_params_save(params, "model.urm", err, sizeof err) != 0) fprintf(stderr, "%s\n", err);
 *     ur_optim_free(opt);
 *
 * Functions that can fail return an error value (-1 or NULL); those taking (err, errlen)
 * also write a message there (err may be NULL). Nothing here aborts on user input.
 */
#ifndef UR_TRAIN_H
#define UR_TRAIN_H

#include "graph/ur_graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Optimizers ------------------------------------------------------------------------- */

typedef enum ur_optim_kind {
    UR_OPTIM_SGD,      /* p -= lr g; with momentum v = mu v + g, p -= lr v (Nesterov: g + mu v) */
    UR_OPTIM_ADAGRAD,  /* s += g^2, p -= lr g / (sqrt(s) + eps) */
    UR_OPTIM_RMSPROP,  /* s = a s + (1 - a) g^2, p -= lr g / (sqrt(s) + eps) (+ momentum) */
    UR_OPTIM_ADAM,     /* bias-corrected moments; weight_decay is L2 added to the gradient */
    UR_OPTIM_ADAMW     /* Adam with decoupled weight decay: p -= lr wd p before the update */
} ur_optim_kind;

/* Hyper-parameters; start from ur_optim_defaults and change what you need. */
typedef struct ur_optim_config {
    ur_optim_kind kind;
    float lr;            /* learning rate (>= 0) */
    float momentum;      /* SGD and RMSprop, in [0, 1); 0: none */
    int nesterov;        /* SGD: Nesterov momentum (needs momentum > 0) */
    float alpha;         /* RMSprop: decay of the squared-gradient average, in [0, 1) */
    float beta1, beta2;  /* Adam/AdamW: decays of the two moments, in [0, 1) */
    float eps;           /* Adagrad, RMSprop, Adam/AdamW: added to the denominator (> 0) */
    float weight_decay;  /* >= 0; L2 on the gradient, except AdamW where it is decoupled */
    float initial_accumulator; /* Adagrad: starting value of s (>= 0) */
} ur_optim_config;

/* An optimizer bound to one parameter set; its state is allocated once, at creation. */
typedef struct ur_optim ur_optim;

/* Defaults for kind: SGD lr 0.01; Adagrad lr 0.01 eps 1e-10; RMSprop lr 0.01 alpha 0.99
 * eps 1e-8; Adam lr 1e-3 betas 0.9/0.999 eps 1e-8; AdamW the same with weight_decay 0.01. */
ur_optim_config ur_optim_defaults(ur_optim_kind kind);
/* Makes an optimizer for ps (which must outlive it and keep its parameters). Returns NULL
 * with a message in err on a bad configuration or out of memory. */
ur_optim *ur_optim_new(ur_params *ps, const ur_optim_config *cfg, char *err, size_t errlen);
/* Applies one update from the parameters' gradients (it does not zero them) and allocates
 * nothing. Returns 0, or -1 (nothing changed; reason in ur_optim_error) if opt is NULL,
 * parameters were added to the set since, or a gradient holds a NaN or Inf. */
int ur_optim_step(ur_optim *opt);
/* Why the last ur_optim_step returned -1, or NULL when it succeeded. */
const char *ur_optim_error(const ur_optim *opt);
/* Sets the learning rate used by the next steps (for schedules); ignored if not finite or < 0. */
void ur_optim_set_lr(ur_optim *opt, float lr);
/* The current learning rate. */
float ur_optim_lr(const ur_optim *opt);
/* Number of steps taken so far (Adam's t). */
long ur_optim_steps(const ur_optim *opt);
/* Forgets the state (moments, accumulators, step count); keeps the configuration. */
void ur_optim_reset(ur_optim *opt);
/* Frees the optimizer (not the parameters). NULL is ignored. */
void ur_optim_free(ur_optim *opt);

/* ---- Learning-rate schedules: pure functions of the step number (0, 1, 2, ...) ---------- */

/* base_lr at every step. */
float ur_lr_constant(float base_lr, long step);
/* base_lr * gamma^floor(step / step_size) (step_size <= 0: base_lr). */
float ur_lr_step_decay(float base_lr, long step, long step_size, float gamma);
/* Linear warmup base_lr * (step + 1) / warmup for step < warmup, then a half cosine from
 * base_lr down to min_lr at step total_steps; min_lr from there on. warmup may be 0. */
float ur_lr_cosine(float base_lr, long step, long total_steps, long warmup, float min_lr);

/* ---- Gradient clipping ------------------------------------------------------------------ */

/* The L2 norm of all gradients of ps taken together, summed in double. */
double ur_grad_norm(const ur_params *ps);
/* Scales all gradients by max_norm / norm when the global norm exceeds max_norm > 0.
 * Returns the norm before clipping (>= 0), or -1 when the norm is not finite (a NaN or Inf
 * gradient; nothing is scaled) or max_norm is not a positive number. */
double ur_clip_grad_norm(ur_params *ps, double max_norm);
/* What a clipping saw and did. */
typedef struct ur_clip_stats {
    double norm;   /* the global gradient norm before clipping (ur_grad_norm): the figure to log,
                      NaN or Inf when a gradient is not finite */
    double scale;  /* the factor every gradient was multiplied by (1 when none was) */
    int clipped;   /* 1 if the gradients were scaled */
} ur_clip_stats;
/* ur_clip_grad_norm that reports in stats (when not NULL) the norm before clipping, finite or
 * not, and what it did. Returns 0, or -1 when the norm is not finite or max_norm is not a
 * positive number (nothing is scaled then; stats->norm still says what the norm was). */
int ur_clip_grad_norm_stats(ur_params *ps, double max_norm, ur_clip_stats *stats);
/* Clamps every gradient value to [-limit, limit] (NaN stays NaN). -1 if limit < 0 or NaN. */
int ur_clip_grad_value(ur_params *ps, float limit);

/* ---- Initialisers: fill t->val; 0 on success, -1 on a bad argument (t is then unchanged) - */

/* Why the last initialiser called in this thread returned -1 ("ur_init_normal: needs ..."),
 * or NULL when it succeeded: each initialiser clears it on entry. */
const char *ur_init_error(void);

/* Uniform in [lo, hi). */
int ur_init_uniform(ur_tensor *t, float lo, float hi, ur_rng *rng);
/* Normal with the given mean and standard deviation (std >= 0). */
int ur_init_normal(ur_tensor *t, float mean, float std, ur_rng *rng);
/* Glorot/Xavier uniform: U(-a, a), a = gain sqrt(6 / (rows + cols)) (fan_in = rows of W in x W). */
int ur_init_xavier_uniform(ur_tensor *t, float gain, ur_rng *rng);
/* Glorot/Xavier normal: N(0, s^2), s = gain sqrt(2 / (rows + cols)). */
int ur_init_xavier_normal(ur_tensor *t, float gain, ur_rng *rng);
/* gain times a uniformly (Haar) distributed orthogonal matrix, from a QR of a Gaussian
 * matrix: orthonormal columns when rows >= cols, orthonormal rows when rows < cols.
 * -1 also when LAPACK fails or memory runs out. */
int ur_init_orthogonal(ur_tensor *t, float gain, ur_rng *rng);
/* scale on the main diagonal, 0 elsewhere (IRNN recurrent weights); any shape. */
int ur_init_identity(ur_tensor *t, float scale);
/* Every value set to value. */
int ur_init_constant(ur_tensor *t, float value);
/* Every value set to 0. */
int ur_init_zeros(ur_tensor *t);

/* ---- Model files ------------------------------------------------------------------------ */

/* Format version written by ur_params_save; files with a newer version are rejected. */
#define UR_MODEL_FORMAT_VERSION 1u

/* Writes every parameter (name, shape, values) to path atomically: a temporary file in the
 * same directory, flushed and fsynced, then renamed. 0, or -1 with a message in err. */
int ur_params_save(const ur_params *ps, const char *path, char *err, size_t errlen);
/* Reads path into ps, whose parameters must match the file's exactly (names and shapes).
 * Everything is validated first; on any problem returns -1 with a message and leaves ps
 * untouched. */
int ur_params_load(ur_params *ps, const char *path, char *err, size_t errlen);
/* Builds a new parameter set holding the file's parameters, in file order. NULL with a
 * message in err on any problem. */
ur_params *ur_params_load_new(const char *path, char *err, size_t errlen);

/* ---- Sampling from a softmax head ------------------------------------------------------- */

/* Draws an index in [0, k) from softmax(logits / temperature), keeping only the top_k
 * largest logits when 0 < top_k < k (ties at the cut-off are all kept). temperature 0 or
 * top_k 1 gives the argmax (first one on ties) and uses no randomness. NaN and -inf logits
 * are never drawn. No heap memory and no limit on k or top_k: top_k <= 256 uses 1 KiB of
 * stack, larger top_k a slower bisection (32 extra passes over the logits).
 * Returns -1 on bad arguments (temperature < 0, k <= 0, rng NULL when needed) or when no
 * logit is drawable. */
int ur_sample_logits(const float *logits, int k, float temperature, int top_k, ur_rng *rng);
/* Index of the largest logit (first on ties; NaN and -inf ignored); -1 if there is none. */
int ur_argmax(const float *logits, int k);

#ifdef __cplusplus
}
#endif
#endif
