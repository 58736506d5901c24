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
/* The optimizer's state for a checkpoint: ur_optim_state_size floats (0 for plain SGD), one
 * slot after the other (momentum; accumulator; Adam's first then second moment), each
 * covering the parameters in set order, and read with ur_optim_state (NULL when empty). */
size_t ur_optim_state_size(const ur_optim *opt);
const float *ur_optim_state(const ur_optim *opt);
/* Restores n floats of state (as ur_optim_state gave them) and the step count steps. 0, or
 * -1 (nothing changed) when n is not ur_optim_state_size, a value is not finite or steps < 0. */
int ur_optim_set_state(ur_optim *opt, const float *state, size_t n, long steps);
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

/* ---- Metadata: typed key/value records saved with the parameters ----------------------- */

/* What a model needs besides its weights (configuration, vocabulary, step count) belongs
 * here, not in parameters: the optimizer, clipping and ur_params_numel never see it. Keys
 * are 1 to UR_META_KEY_MAX bytes and unique (setting a key again replaces its record). */
typedef struct ur_meta ur_meta;
typedef enum ur_meta_type {
    UR_META_NONE = 0,     /* (no such key) */
    UR_META_STRING = 1,   /* bytes without NUL, NUL-terminated in memory */
    UR_META_INT64 = 2,    /* int64_t, exact */
    UR_META_FLOAT64 = 3,  /* finite double */
    UR_META_BYTES = 4     /* any bytes */
} ur_meta_type;
#define UR_META_KEY_MAX 255u
#define UR_META_VALUE_MAX ((size_t)1 << 30)   /* bytes of one string or bytes value */
#define UR_META_COUNT_MAX 4096u               /* records in one set (and one file) */

/* An empty set of records; NULL when out of memory. */
ur_meta *ur_meta_new(void);
/* Frees it; NULL is ignored. */
void ur_meta_free(ur_meta *m);
/* Removes every record. */
void ur_meta_clear(ur_meta *m);
/* Each sets key to a value of its type (copied). 0, or -1 on a bad key, a NULL value, a
 * non-finite float, a value over UR_META_VALUE_MAX, a new key beyond UR_META_COUNT_MAX
 * records, or no memory (m is then unchanged). */
int ur_meta_set_string(ur_meta *m, const char *key, const char *value);
int ur_meta_set_int64(ur_meta *m, const char *key, int64_t value);
int ur_meta_set_float64(ur_meta *m, const char *key, double value);
int ur_meta_set_bytes(ur_meta *m, const char *key, const void *data, size_t len);
/* Removes key: 0, or -1 when it is absent. */
int ur_meta_remove(ur_meta *m, const char *key);
/* The type of key's record, UR_META_NONE when absent. */
ur_meta_type ur_meta_type_of(const ur_meta *m, const char *key);
/* Getters: the value when key exists with that type; otherwise NULL, or -1 (*out untouched).
 * ur_meta_bytes sets *len and returns a non-NULL pointer even for 0 bytes. Pointers stay
 * valid until the key is set again or removed, or m is cleared or freed. */
const char *ur_meta_string(const ur_meta *m, const char *key);
int ur_meta_int64(const ur_meta *m, const char *key, int64_t *out);
int ur_meta_float64(const ur_meta *m, const char *key, double *out);
const void *ur_meta_bytes(const ur_meta *m, const char *key, size_t *len);
/* Number of records, and the key of the k-th (in the order first set); NULL out of range. */
int ur_meta_count(const ur_meta *m);
const char *ur_meta_key(const ur_meta *m, int k);

/* ---- Model files ------------------------------------------------------------------------ */

/* The layout, byte by byte, with every limit: doc/model-format.md. Version 2 adds the
 * metadata section; version 1 files (no metadata) still load. */
#define UR_MODEL_FORMAT_VERSION 2u

/* Writes every parameter (name, shape, values) and the records of meta (NULL: none) to path
 * atomically: the old file or the new one, never a mix, even when killed. Refuses, with a
 * message naming it, a parameter holding NaN or Inf. A symbolic link at path is followed and
 * its target replaced (the link stays). The data goes to an unnamed file (O_TMPFILE) that is
 * named only to be renamed over the target; where the file system has no O_TMPFILE, to the
 * temporary "<dir>/.urm-<16 hex digits>.tmp", fixed per target, so a save killed midway leaves
 * at most that one file, which the next save to the same path reuses and removes. A failed
 * save removes its temporary file. A new file gets mode 0666 less the umask, a replaced one
 * keeps its mode. 0, or -1 with a message in err. */
int ur_params_save_meta(const ur_params *ps, const ur_meta *meta, const char *path, char *err,
                        size_t errlen);
/* ur_params_save_meta without metadata. */
int ur_params_save(const ur_params *ps, const char *path, char *err, size_t errlen);
/* Reads path into ps, whose parameters must match the file's exactly (names and shapes),
 * and, if meta is not NULL, replaces meta's records with the file's. Everything is validated
 * first (structure against the file size, before allocating anything it asks for; checksum;
 * finite values); on any problem returns -1 with a message and leaves ps and meta untouched. */
int ur_params_load_meta(ur_params *ps, ur_meta *meta, const char *path, char *err,
                        size_t errlen);
/* ur_params_load_meta without metadata (a file's records are then ignored). */
int ur_params_load(ur_params *ps, const char *path, char *err, size_t errlen);
/* Builds a new parameter set holding the file's parameters, in file order. NULL with a
 * message in err on any problem. */
ur_params *ur_params_load_new(const char *path, char *err, size_t errlen);

/* A model file read and validated in memory, to look at before building anything: a program
 * checks the names, shapes and metadata it will need (against its own limits) and only then
 * allocates a model and loads it. The file's bytes are kept until ur_model_file_free. */
typedef struct ur_model_file ur_model_file;
/* Reads the regular file at path (a FIFO or device is refused without blocking) and
 * validates it whole. NULL with a message in err on any problem. */
ur_model_file *ur_model_file_read(const char *path, char *err, size_t errlen);
/* The same from size bytes in memory (copied); name is used in messages. */
ur_model_file *ur_model_file_parse(const void *bytes, size_t size, const char *name, char *err,
                                   size_t errlen);
/* Frees it; NULL is ignored. */
void ur_model_file_free(ur_model_file *f);
/* The format version of the file (1 or 2). */
int ur_model_file_version(const ur_model_file *f);
/* Number of parameters, and the name and shape of the k-th (file order); NULL out of range. */
int ur_model_file_count(const ur_model_file *f);
const char *ur_model_file_param(const ur_model_file *f, int k, int *rows, int *cols);
/* Index of the parameter called name (its shape in *rows, *cols when not NULL), or -1. */
int ur_model_file_find(const ur_model_file *f, const char *name, int *rows, int *cols);
/* The file's metadata (empty for a version 1 file); owned by f. */
const ur_meta *ur_model_file_meta(const ur_model_file *f);
/* Copies the file's values into ps and its metadata into meta (NULL: not wanted), all or
 * nothing, as ur_params_load_meta does. */
int ur_model_file_load(const ur_model_file *f, ur_params *ps, ur_meta *meta, char *err,
                       size_t errlen);
/* A new parameter set holding the file's parameters, in file order; NULL with a message. */
ur_params *ur_model_file_new_params(const ur_model_file *f, char *err, size_t errlen);

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
