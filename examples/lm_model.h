/* The character language model of char_lm: embedding -> stacked recurrent cells -> one linear
 * head over the time-stacked top states -> softmax. Shapes: V = vocabulary, E = embedding,
 * H = hidden, L = layers, T = time steps, B = parallel streams; sequences are time-stacked
 * (row t*B + b is step t of stream b).
 *
 * The checkpoint is the model's parameter set itself, saved with ur_params_save: besides the
 * weights it holds two small parameters that are never trained,
 *     meta.config  1 x 8: format, cell kind, L, H, E, V, training steps done, dropout
 *     meta.vocab   1 x V: the byte of each id
 * so a checkpoint alone rebuilds the model (and ur_params_load then checks every name and
 * shape against the file). */
#ifndef UR_EXAMPLES_LM_MODEL_H
#define UR_EXAMPLES_LM_MODEL_H

#include <stdint.h>
#include <stdio.h>

#include "unroll.h"

enum { LM_ELMAN = 0, LM_LSTM = 1, LM_GRU = 2 };
#define LM_MAX_LAYERS 8
#define LM_FORMAT 1

/* The shape of a model: what must come back from a checkpoint to rebuild it. */
typedef struct lm_config {
    int cell;       /* LM_ELMAN, LM_LSTM or LM_GRU */
    int layers;     /* 1..LM_MAX_LAYERS */
    int hidden;     /* H */
    int embed;      /* E */
    int vocab;      /* V, 1..256 */
    float dropout;  /* between layers and before the head, training only */
} lm_config;

typedef struct lm_model {
    lm_config cfg;
    unsigned char vocab[256];       /* id -> byte */
    ur_params *ps;                  /* every tensor below */
    ur_tensor *emb;                 /* V x E */
    ur_cell cells[LM_MAX_LAYERS];
    ur_stack train_stack, eval_stack;  /* the same cells, with and without dropout */
    ur_tensor *w_out, *b_out;       /* H x V, 1 x V */
    ur_tensor *meta, *meta_vocab;   /* meta.config, meta.vocab */
    ur_rng dropout_rng;
} lm_model;

/* The name of a cell kind ("elman", "lstm", "gru"), and the kind of a name (-1: unknown). */
const char *lm_cell_name(int cell);
int lm_cell_kind(const char *name);

/* Builds a freshly initialised model from rng. Returns 0, or -1 with a message in err. */
int lm_build(lm_model *m, const lm_config *cfg, const unsigned char *vocab, ur_rng *rng,
             char *err, size_t errlen);
/* Rebuilds the model stored at path (shape and vocabulary from its meta parameters) and loads
 * its weights; *steps gets the training steps recorded in it. 0, or -1 with a message. */
int lm_load(lm_model *m, const char *path, long *steps, char *err, size_t errlen);
/* Records the training steps done (saved with the checkpoint). */
void lm_set_steps(lm_model *m, long steps);
/* Frees the parameters. */
void lm_free(lm_model *m);

/* Records the forward pass over T steps of B streams: in (T*B ids, time-stacked), init (one
 * state per layer, NULL for zeros). seq gets every layer's states (for carrying them on).
 * Returns the logits (T*B x V), or the tape's poison tensor on error. train selects the
 * stack with dropout (between layers and on the top states before the head). */
ur_tensor *lm_forward(ur_tape *tp, lm_model *m, const int *in, int T, int B,
                      const ur_state *init, int train, ur_stack_seq *seq);

/* Mean bits per character of predicting ids[1..n) from what precedes each, read as B streams
 * of (n - 1) / B steps in parallel, T steps per forward pass, the state carried from chunk to
 * chunk (each stream starts from zeros; a tail of fewer than B characters is not scored).
 * Returns the bits per character, or -1 with a message in err. */
double lm_eval_bpc(lm_model *m, ur_tape *tp, const int *ids, size_t n, int B, int T, char *err,
                   size_t errlen);
/* Reads the n_prime ids of prime (n_prime >= 1), then draws length characters one at a time
 * with ur_sample_logits (temperature, top_k) and writes their bytes to out. 0, or -1 with a
 * message in err. */
int lm_generate(lm_model *m, ur_tape *tp, const int *prime, int n_prime, int length,
                float temperature, int top_k, ur_rng *rng, FILE *out, char *err, size_t errlen);

#endif
