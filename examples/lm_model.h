/* The character language model of char_lm: embedding -> stacked recurrent cells -> one linear
 * head over the time-stacked top states -> softmax. Shapes: V = vocabulary, E = embedding,
 * H = hidden, L = layers, T = time steps, B = parallel streams; sequences are time-stacked
 * (row t*B + b is step t of stream b).
 *
 * The checkpoint is a model file (doc/model-format.md) holding the weights and, as metadata
 * records (never as parameters, so the optimizer and clipping never see them):
 *     char_lm.format   int64    LM_FORMAT
 *     char_lm.cell     string   "elman", "lstm", "gru", "lstm-ln", "gru-ln" or "lstm-peephole"
 *     char_lm.layers, char_lm.hidden, char_lm.embed, char_lm.vocab   int64
 *     char_lm.dropout  float64
 *     char_lm.rec_dropout  float64  variational dropout on the input and h (absent: 0)
 *     char_lm.bytes    bytes    the byte of each id (V distinct bytes)
 *     char_lm.steps    int64    training steps done (exact)
 *     char_lm.adam, char_lm.adam_steps   bytes, int64   Adam's moments (float32
 *                      little-endian, ur_optim_state's layout) and step count, for resuming
 * A checkpoint alone rebuilds the model. lm_load checks all of it against the caps below and
 * against the weights the file actually holds before it allocates the model. */
#ifndef UR_EXAMPLES_LM_MODEL_H
#define UR_EXAMPLES_LM_MODEL_H

#include <stdint.h>
#include <stdio.h>

#include "unroll.h"

enum { LM_ELMAN = 0, LM_LSTM, LM_GRU, LM_LSTM_LN, LM_GRU_LN, LM_LSTM_PEEPHOLE, LM_CELLS };
#define LM_MAX_LAYERS 8
#define LM_MAX_HIDDEN 4096   /* --hidden's and --embed's upper bounds, and a checkpoint's */
#define LM_MAX_EMBED 4096
#define LM_FORMAT 2          /* 1: the configuration as parameters (before issue 12) */

/* The shape of a model: what must come back from a checkpoint to rebuild it. */
typedef struct lm_config {
    int cell;       /* LM_ELMAN .. LM_CELLS - 1 */
    int layers;     /* 1..LM_MAX_LAYERS */
    int hidden;     /* H */
    int embed;      /* E */
    int vocab;      /* V, 1..256 */
    float dropout;  /* between layers and before the head, training only */
    float rec_dropout; /* variational dropout in every cell (ur_cell.in_dropout/rec_dropout) */
} lm_config;

typedef struct lm_model {
    lm_config cfg;
    unsigned char vocab[256];       /* id -> byte */
    ur_params *ps;                  /* every tensor below */
    ur_tensor *emb;                 /* V x E */
    ur_cell cells[LM_MAX_LAYERS];      /* for training: with the variational dropout */
    ur_cell eval_cells[LM_MAX_LAYERS]; /* the same cells without it */
    ur_stack train_stack, eval_stack;  /* cells and eval_cells, with and without dropout */
    ur_tensor *w_out, *b_out;       /* H x V, 1 x V */
    ur_meta *loaded;                /* the records of the checkpoint it came from, or NULL */
    ur_rng dropout_rng;
} lm_model;

/* The name of a cell kind ("elman", "lstm", ...), and the kind of a name (-1: unknown). */
const char *lm_cell_name(int cell);
int lm_cell_kind(const char *name);

/* Builds a freshly initialised model from rng. Returns 0, or -1 with a message in err. */
int lm_build(lm_model *m, const lm_config *cfg, const unsigned char *vocab, ur_rng *rng,
             char *err, size_t errlen);
/* Checks a checkpoint read with ur_model_file_read: its records give a configuration within
 * the caps above (2 <= V <= 256 distinct bytes), and it holds exactly the weights that
 * configuration needs, name by name and shape by shape. Fills cfg, vocab and *steps. 0, or
 * -1 with a message in err. Allocates nothing. */
int lm_check_file(const ur_model_file *f, lm_config *cfg, unsigned char vocab[256], long *steps,
                  char *err, size_t errlen);
/* Reads the checkpoint at path, checks it (lm_check_file) and only then builds the model and
 * loads its weights; m->loaded keeps the file's records (for lm_restore_optim). *steps gets
 * the training steps recorded in it. 0, or -1 with a message. */
int lm_load(lm_model *m, const char *path, long *steps, char *err, size_t errlen);
/* Saves the weights and the records above (Adam's state from opt when not NULL) to path,
 * atomically. 0, or -1 with a message in err. */
int lm_save(const lm_model *m, long steps, const ur_optim *opt, const char *path, char *err,
            size_t errlen);
/* Restores opt's state from the checkpoint m was loaded from. 1 when restored, 0 when the
 * checkpoint has none, -1 with a message when it does not fit opt. */
int lm_restore_optim(const lm_model *m, ur_optim *opt, char *err, size_t errlen);
/* Frees the parameters and the records. */
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
