#include "lm_model.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static const char *const cell_names[LM_CELLS] = {"elman", "lstm", "gru", "lstm-ln", "gru-ln",
                                                 "lstm-peephole"};

const char *lm_cell_name(int cell)
{
    return cell >= 0 && cell < LM_CELLS ? cell_names[cell] : "?";
}

int lm_cell_kind(const char *name)
{
    for (int k = 0; k < LM_CELLS; k++)
        if (strcmp(name, cell_names[k]) == 0) return k;
    return -1;
}

/* The reason a parameter or cell could not be made. */
static int build_fail(lm_model *m, const char *what, char *err, size_t errlen)
{
    const char *why = ur_model_error() ? ur_model_error() : ur_params_error(m->ps);
    snprintf(err, errlen, "cannot build the model (%s): %s", what, why ? why : "out of memory");
    lm_free(m);
    return -1;
}

int lm_build(lm_model *m, const lm_config *cfg, const unsigned char *vocab, ur_rng *rng,
             char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (cfg->cell < LM_ELMAN || cfg->cell >= LM_CELLS || cfg->layers < 1 ||
        cfg->layers > LM_MAX_LAYERS || cfg->hidden < 1 || cfg->hidden > LM_MAX_HIDDEN ||
        cfg->embed < 1 || cfg->embed > LM_MAX_EMBED || cfg->vocab < 1 ||
        cfg->vocab > 256 || !(cfg->dropout >= 0 && cfg->dropout < 1) ||
        !(cfg->rec_dropout >= 0 && cfg->rec_dropout < 1)) {
        snprintf(err, errlen, "bad model shape (cell %d, %d layers, hidden %d, embed %d, "
                 "vocabulary %d, dropout %g, recurrent dropout %g)", cfg->cell, cfg->layers,
                 cfg->hidden, cfg->embed, cfg->vocab, cfg->dropout, cfg->rec_dropout);
        return -1;
    }
    m->cfg = *cfg;
    memcpy(m->vocab, vocab, (size_t)cfg->vocab);
    if (!(m->ps = ur_params_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->emb = ur_model_param(m->ps, "embed", "E", cfg->vocab, cfg->embed, 1.0f, rng);
    if (!m->emb) return build_fail(m, "embedding", err, errlen);
    for (int l = 0; l < cfg->layers; l++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "layer%d", l);
        int in = l == 0 ? cfg->embed : cfg->hidden, rc;
        ur_cell *c = &m->cells[l];
        ur_cell_opts opts = {.layer_norm = cfg->cell == LM_LSTM_LN || cfg->cell == LM_GRU_LN,
                             .peephole = cfg->cell == LM_LSTM_PEEPHOLE};
        if (cfg->cell == LM_GRU || cfg->cell == LM_GRU_LN)
            rc = ur_gru_cell_ex(c, m->ps, prefix, in, cfg->hidden, &opts, rng);
        else if (cfg->cell == LM_ELMAN)
            rc = ur_elman_cell(c, m->ps, prefix, in, cfg->hidden, rng);
        else
            rc = ur_lstm_cell_ex(c, m->ps, prefix, in, cfg->hidden, &opts, rng);
        if (rc != 0) return build_fail(m, prefix, err, errlen);
        m->eval_cells[l] = *c;
        c->in_dropout = c->rec_dropout = cfg->rec_dropout;
        c->rng = &m->dropout_rng;
    }
    float k = 1.0f / sqrtf((float)cfg->hidden);
    m->w_out = ur_model_param(m->ps, "head", "W", cfg->hidden, cfg->vocab, k, rng);
    m->b_out = ur_model_param(m->ps, "head", "b", 1, cfg->vocab, k, rng);
    if (!m->w_out || !m->b_out) return build_fail(m, "head", err, errlen);

    ur_rng_seed(&m->dropout_rng, ur_rng_next(rng));
    if (ur_stack_init(&m->train_stack, cfg->layers, m->cells, cfg->dropout, &m->dropout_rng) != 0 ||
        ur_stack_init(&m->eval_stack, cfg->layers, m->eval_cells, 0.0f, NULL) != 0)
        return build_fail(m, "stack", err, errlen);
    return 0;
}

void lm_free(lm_model *m)
{
    ur_params_free(m->ps);
    m->ps = NULL;
    ur_meta_free(m->loaded);
    m->loaded = NULL;
}

/* ---- Checkpoints ------------------------------------------------------------------------- */

/* The weights a configuration needs, in the order lm_build adds them (names as the cells of
 * models/ make them; ur_model_file_load checks them again against the built model). */
typedef struct weight {
    char name[32];
    int rows, cols;
} weight;

static int expected_weights(const lm_config *c, weight *w)
{
    int n = 0, H = c->hidden;
    w[n++] = (weight){"embed.E", c->vocab, c->embed};
    for (int l = 0; l < c->layers; l++) {
        int in = l == 0 ? c->embed : H;
        const char *names[7];
        int rows[7], cols[7], k = 0;
        if (c->cell == LM_LSTM || c->cell == LM_LSTM_LN || c->cell == LM_LSTM_PEEPHOLE) {
            names[k] = "Wx", rows[k] = in, cols[k++] = 4 * H;
            names[k] = "Wh", rows[k] = H, cols[k++] = 4 * H;
            names[k] = "b", rows[k] = 1, cols[k++] = 4 * H;
            if (c->cell == LM_LSTM_LN) {
                names[k] = "gx", rows[k] = 1, cols[k++] = 4 * H;
                names[k] = "gh", rows[k] = 1, cols[k++] = 4 * H;
                names[k] = "gc", rows[k] = 1, cols[k++] = H;
                names[k] = "bc", rows[k] = 1, cols[k++] = H;
            }
            if (c->cell == LM_LSTM_PEEPHOLE) {
                names[k] = "pi", rows[k] = 1, cols[k++] = H;
                names[k] = "pf", rows[k] = 1, cols[k++] = H;
                names[k] = "po", rows[k] = 1, cols[k++] = H;
            }
        } else if (c->cell == LM_GRU || c->cell == LM_GRU_LN) {
            names[k] = "Wx", rows[k] = in, cols[k++] = 3 * H;
            names[k] = "bx", rows[k] = 1, cols[k++] = 3 * H;
            names[k] = "Wh", rows[k] = H, cols[k++] = 3 * H;
            names[k] = "bh", rows[k] = 1, cols[k++] = 3 * H;
            if (c->cell == LM_GRU_LN) {
                names[k] = "gx", rows[k] = 1, cols[k++] = 3 * H;
                names[k] = "gh", rows[k] = 1, cols[k++] = 3 * H;
            }
        } else {
            names[k] = "U", rows[k] = in, cols[k++] = H;
            names[k] = "W", rows[k] = H, cols[k++] = H;
            names[k] = "b", rows[k] = 1, cols[k++] = H;
        }
        for (int j = 0; j < k; j++) {
            snprintf(w[n].name, sizeof w[n].name, "layer%d.%s", l, names[j]);
            w[n].rows = rows[j];
            w[n++].cols = cols[j];
        }
    }
    w[n++] = (weight){"head.W", H, c->vocab};
    w[n++] = (weight){"head.b", 1, c->vocab};
    return n;
}

#define MAX_WEIGHTS (3 + 7 * LM_MAX_LAYERS)

/* An int64 record in [lo, hi] into *out; else the reason. */
static const char *int_record(const ur_meta *meta, const char *key, int64_t lo, int64_t hi,
                              int64_t *out)
{
    if (ur_meta_type_of(meta, key) == UR_META_NONE) return "is missing";
    if (ur_meta_int64(meta, key, out) != 0) return "is not an integer";
    if (*out < lo || *out > hi) return "is out of range";
    return NULL;
}

int lm_check_file(const ur_model_file *f, lm_config *cfg, unsigned char vocab[256], long *steps,
                  char *err, size_t errlen)
{
    const ur_meta *meta = ur_model_file_meta(f);
    int64_t format, layers, hidden, embed, V, done;
    const char *why = NULL, *key = NULL;
    if (ur_meta_type_of(meta, "char_lm.format") == UR_META_NONE) {
        snprintf(err, errlen, "%s", ur_model_file_find(f, "meta.config", NULL, NULL) >= 0
                 ? "a checkpoint of an older char_lm (its configuration stored as parameters), "
                   "which this one does not read: train it again"
                 : "no char_lm.format record: not a char_lm checkpoint");
        return -1;
    }
    if ((why = int_record(meta, key = "char_lm.format", LM_FORMAT, LM_FORMAT, &format)) ||
        (why = int_record(meta, key = "char_lm.layers", 1, LM_MAX_LAYERS, &layers)) ||
        (why = int_record(meta, key = "char_lm.hidden", 1, LM_MAX_HIDDEN, &hidden)) ||
        (why = int_record(meta, key = "char_lm.embed", 1, LM_MAX_EMBED, &embed)) ||
        (why = int_record(meta, key = "char_lm.vocab", 2, 256, &V)) ||
        (why = int_record(meta, key = "char_lm.steps", 0, INT32_MAX, &done))) {
        snprintf(err, errlen, "record %s %s (layers 1 to %d, hidden 1 to %d, embed 1 to %d, "
                 "vocabulary 2 to 256, format %d)", key, why, LM_MAX_LAYERS, LM_MAX_HIDDEN,
                 LM_MAX_EMBED, LM_FORMAT);
        return -1;
    }
    const char *cell = ur_meta_string(meta, "char_lm.cell");
    double dropout;
    size_t nb = 0;
    const unsigned char *bytes = ur_meta_bytes(meta, "char_lm.bytes", &nb);
    if (!cell || lm_cell_kind(cell) < 0) {
        snprintf(err, errlen, "record char_lm.cell is missing or not a cell char_lm knows "
                 "(elman, lstm, gru, lstm-ln, gru-ln, lstm-peephole)");
        return -1;
    }
    double rec_dropout = 0; /* absent in checkpoints made before it existed */
    if (ur_meta_type_of(meta, "char_lm.rec_dropout") != UR_META_NONE &&
        (ur_meta_float64(meta, "char_lm.rec_dropout", &rec_dropout) != 0 ||
         !(rec_dropout >= 0 && rec_dropout < 1))) {
        snprintf(err, errlen, "record char_lm.rec_dropout is not a number in [0, 1)");
        return -1;
    }
    if (ur_meta_float64(meta, "char_lm.dropout", &dropout) != 0 || !(dropout >= 0 && dropout < 1)) {
        snprintf(err, errlen, "record char_lm.dropout is missing or not in [0, 1)");
        return -1;
    }
    if (!bytes || nb != (size_t)V) {
        snprintf(err, errlen, "record char_lm.bytes is missing or does not hold %d bytes",
                 (int)V);
        return -1;
    }
    int seen[256] = {0};
    for (size_t k = 0; k < nb; k++)
        if (seen[bytes[k]]++) {
            snprintf(err, errlen, "record char_lm.bytes repeats byte 0x%02x", bytes[k]);
            return -1;
        }
    lm_config c = {lm_cell_kind(cell), (int)layers, (int)hidden, (int)embed, (int)V,
                   (float)dropout, (float)rec_dropout};
    /* The weights this configuration needs must be the file's, exactly. */
    weight w[MAX_WEIGHTS];
    int n = expected_weights(&c, w);
    for (int k = 0; k < n; k++) {
        int r, cl;
        if (ur_model_file_find(f, w[k].name, &r, &cl) < 0) {
            snprintf(err, errlen, "the configuration (%s, %d layer(s) of %d, embedding %d, "
                     "vocabulary %d) needs weight %s, which the file does not hold", cell,
                     c.layers, c.hidden, c.embed, c.vocab, w[k].name);
            return -1;
        }
        if (r != w[k].rows || cl != w[k].cols) {
            snprintf(err, errlen, "weight %s is %dx%d in the file, but the configuration needs "
                     "%dx%d", w[k].name, r, cl, w[k].rows, w[k].cols);
            return -1;
        }
    }
    if (ur_model_file_count(f) != n) {
        snprintf(err, errlen, "the file holds %d weights, the configuration %d",
                 ur_model_file_count(f), n);
        return -1;
    }
    *cfg = c;
    memcpy(vocab, bytes, nb);
    *steps = (long)done;
    return 0;
}

int lm_load(lm_model *m, const char *path, long *steps, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    char why[384];
    ur_model_file *f = ur_model_file_read(path, err, errlen);
    if (!f) return -1;
    lm_config cfg;
    unsigned char vocab[256];
    if (lm_check_file(f, &cfg, vocab, steps, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        ur_model_file_free(f);
        return -1;
    }
    ur_rng rng;
    ur_rng_seed(&rng, 0);
    int rc = lm_build(m, &cfg, vocab, &rng, err, errlen);
    if (rc == 0 && !(m->loaded = ur_meta_new())) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc == 0) rc = ur_model_file_load(f, m->ps, m->loaded, err, errlen);
    ur_model_file_free(f);
    if (rc != 0) lm_free(m);
    return rc;
}

int lm_save(const lm_model *m, long steps, const ur_optim *opt, const char *path, char *err,
            size_t errlen)
{
    const lm_config *c = &m->cfg;
    ur_meta *meta = ur_meta_new();
    int rc = !meta || ur_meta_set_int64(meta, "char_lm.format", LM_FORMAT) ||
             ur_meta_set_string(meta, "char_lm.cell", lm_cell_name(c->cell)) ||
             ur_meta_set_int64(meta, "char_lm.layers", c->layers) ||
             ur_meta_set_int64(meta, "char_lm.hidden", c->hidden) ||
             ur_meta_set_int64(meta, "char_lm.embed", c->embed) ||
             ur_meta_set_int64(meta, "char_lm.vocab", c->vocab) ||
             ur_meta_set_float64(meta, "char_lm.dropout", c->dropout) ||
             ur_meta_set_float64(meta, "char_lm.rec_dropout", c->rec_dropout) ||
             ur_meta_set_bytes(meta, "char_lm.bytes", m->vocab, (size_t)c->vocab) ||
             ur_meta_set_int64(meta, "char_lm.steps", steps);
    unsigned char *state = NULL;
    size_t n = opt ? ur_optim_state_size(opt) : 0;
    if (!rc && n > 0) {
        /* float32 little-endian, as the model file stores weights */
        const float *s = ur_optim_state(opt);
        state = malloc(4 * n);
        rc = !state;
        for (size_t k = 0; !rc && k < n; k++) {
            uint32_t u;
            memcpy(&u, &s[k], 4);
            for (int b = 0; b < 4; b++) state[4 * k + b] = (unsigned char)(u >> (8 * b));
        }
        rc = rc || ur_meta_set_bytes(meta, "char_lm.adam", state, 4 * n) ||
             ur_meta_set_int64(meta, "char_lm.adam_steps", ur_optim_steps(opt));
    }
    if (rc) snprintf(err, errlen, "%s: out of memory", path);
    else rc = ur_params_save_meta(m->ps, meta, path, err, errlen);
    free(state);
    ur_meta_free(meta);
    return rc ? -1 : 0;
}

int lm_restore_optim(const lm_model *m, ur_optim *opt, char *err, size_t errlen)
{
    size_t nb = 0;
    const unsigned char *b = ur_meta_bytes(m->loaded, "char_lm.adam", &nb);
    int64_t t;
    if (!b) return 0;
    size_t n = ur_optim_state_size(opt);
    if (nb != 4 * n || ur_meta_int64(m->loaded, "char_lm.adam_steps", &t) != 0 || t < 0 ||
        t > INT32_MAX) {
        snprintf(err, errlen, "the checkpoint's optimizer state (%zu bytes) does not fit this "
                 "optimizer (%zu floats)", nb, n);
        return -1;
    }
    float *s = malloc(n ? 4 * n : 1);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        uint32_t u = (uint32_t)b[4 * k] | (uint32_t)b[4 * k + 1] << 8 |
                     (uint32_t)b[4 * k + 2] << 16 | (uint32_t)b[4 * k + 3] << 24;
        memcpy(&s[k], &u, 4);
    }
    int rc = ur_optim_set_state(opt, s, n, (long)t);
    free(s);
    if (rc != 0) {
        snprintf(err, errlen, "the checkpoint's optimizer state holds a non-finite value");
        return -1;
    }
    return 1;
}

ur_tensor *lm_forward(ur_tape *tp, lm_model *m, const int *in, int T, int B,
                      const ur_state *init, int train, ur_stack_seq *seq)
{
    ur_tensor *x = ur_embedding(tp, m->emb, in, T * B);
    if (ur_stack_unroll(tp, train ? &m->train_stack : &m->eval_stack, x, T, init, seq) != 0)
        return ur_tape_poison(tp);
    ur_tensor *h = seq->H;
    if (train && m->cfg.dropout > 0) h = ur_dropout(tp, h, m->cfg.dropout, &m->dropout_rng);
    return ur_linear(tp, h, m->w_out, m->b_out);
}

/* One ur_tbptt per layer: the state carried between chunks (B x H, and c for LSTM). */
static int carriers_init(ur_tbptt *tb, const lm_model *m, int steps, int k1, int B)
{
    for (int l = 0; l < m->cfg.layers; l++)
        if (ur_tbptt_init(&tb[l], steps, k1, 0, B, m->cfg.hidden, m->cells[l].has_c) != 0) {
            for (int j = 0; j <= l; j++) ur_tbptt_free(&tb[j]);
            return -1;
        }
    return 0;
}

static void carriers_free(ur_tbptt *tb, const lm_model *m)
{
    for (int l = 0; l < m->cfg.layers; l++) ur_tbptt_free(&tb[l]);
}

double lm_eval_bpc(lm_model *m, ur_tape *tp, const int *ids, size_t n, int B, int T, char *err,
                   size_t errlen)
{
    if (B < 1 || T < 1 || n < 2 || (n - 1) / (size_t)B < 1 ||
        (n - 1) / (size_t)B > (size_t)1 << 30) {
        snprintf(err, errlen, "evaluation: %zu characters cannot make %d streams", n, B);
        return -1;
    }
    int steps = (int)((n - 1) / (size_t)B);
    ur_tbptt tb[LM_MAX_LAYERS];
    int *in = malloc((size_t)T * (size_t)B * 2 * sizeof *in);
    if (!in || carriers_init(tb, m, steps, T, B) != 0) {
        free(in);
        snprintf(err, errlen, "evaluation: out of memory");
        return -1;
    }
    int *tgt = in + (size_t)T * B;
    double nats = 0, count = 0;
    ur_tbptt_chunk ch;
    while (ur_tbptt_next(&tb[0], &ch)) {
        ur_tape_reset(tp);
        for (int t = 0; t < ch.len; t++)
            for (int b = 0; b < B; b++) {
                size_t at = (size_t)b * steps + (size_t)(ch.start + t);
                in[t * B + b] = ids[at];
                tgt[t * B + b] = ids[at + 1];
            }
        ur_state init[LM_MAX_LAYERS];
        for (int l = 0; l < m->cfg.layers; l++) init[l] = ur_tbptt_state(&tb[l], tp);
        ur_stack_seq seq;
        ur_tensor *logits = lm_forward(tp, m, in, ch.len, B, init, 0, &seq);
        ur_tensor *loss = ur_softmax_nll(tp, logits, tgt, UR_SUM);
        if (ur_tape_error(tp)) {
            snprintf(err, errlen, "evaluation: %s", ur_tape_error(tp));
            nats = -1;
            break;
        }
        nats += loss->val[0];
        count += (double)ch.len * B;
        for (int l = 0; l < m->cfg.layers; l++)
            ur_tbptt_carry_from(&tb[l], &ch, seq.layer[l].states);
    }
    carriers_free(tb, m);
    free(in);
    return nats < 0 ? -1 : nats / count / log(2.0);
}

int lm_generate(lm_model *m, ur_tape *tp, const int *prime, int n_prime, int length,
                float temperature, int top_k, ur_rng *rng, FILE *out, char *err, size_t errlen)
{
    ur_tbptt tb[LM_MAX_LAYERS];
    int V = m->cfg.vocab;
    float *logits = malloc((size_t)V * sizeof *logits);
    if (!logits || carriers_init(tb, m, 1, 1, 1) != 0) {
        free(logits);
        snprintf(err, errlen, "sampling: out of memory");
        return -1;
    }
    int rc = 0, next = 0;
    for (int k = 0; k < length; k++) {
        /* The whole prime in the first pass, then the character drawn last. */
        const int *in = k == 0 ? prime : &next;
        int T = k == 0 ? n_prime : 1;
        ur_tape_reset(tp);
        ur_state init[LM_MAX_LAYERS];
        for (int l = 0; l < m->cfg.layers; l++) init[l] = ur_tbptt_state(&tb[l], tp);
        ur_stack_seq seq;
        ur_tensor *lg = lm_forward(tp, m, in, T, 1, init, 0, &seq);
        if (ur_tape_error(tp)) {
            snprintf(err, errlen, "sampling: %s", ur_tape_error(tp));
            rc = -1;
            break;
        }
        for (int l = 0; l < m->cfg.layers; l++) ur_tbptt_carry(&tb[l], seq.last[l]);
        memcpy(logits, lg->val + (size_t)(T - 1) * V, (size_t)V * sizeof *logits);
        next = ur_sample_logits(logits, V, temperature, top_k, rng);
        if (next < 0) {
            snprintf(err, errlen, "sampling: no character can be drawn (temperature %g, top-k %d)",
                     temperature, top_k);
            rc = -1;
            break;
        }
        fputc(m->vocab[next], out);
    }
    carriers_free(tb, m);
    free(logits);
    return rc;
}
