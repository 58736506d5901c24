#include "lm_model.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

enum { META_FORMAT, META_CELL, META_LAYERS, META_HIDDEN, META_EMBED, META_VOCAB, META_STEPS,
       META_DROPOUT, META_N };

static const char *const cell_names[] = {"elman", "lstm", "gru"};

const char *lm_cell_name(int cell)
{
    return cell >= 0 && cell <= LM_GRU ? cell_names[cell] : "?";
}

int lm_cell_kind(const char *name)
{
    for (int k = 0; k <= LM_GRU; k++)
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
    if (cfg->cell < LM_ELMAN || cfg->cell > LM_GRU || cfg->layers < 1 ||
        cfg->layers > LM_MAX_LAYERS || cfg->hidden < 1 || cfg->embed < 1 || cfg->vocab < 1 ||
        cfg->vocab > 256 || !(cfg->dropout >= 0 && cfg->dropout < 1)) {
        snprintf(err, errlen, "bad model shape (cell %d, %d layers, hidden %d, embed %d, "
                 "vocabulary %d, dropout %g)", cfg->cell, cfg->layers, cfg->hidden, cfg->embed,
                 cfg->vocab, cfg->dropout);
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
        if (cfg->cell == LM_LSTM) rc = ur_lstm_cell(c, m->ps, prefix, in, cfg->hidden, rng);
        else if (cfg->cell == LM_GRU) rc = ur_gru_cell(c, m->ps, prefix, in, cfg->hidden, rng);
        else rc = ur_elman_cell(c, m->ps, prefix, in, cfg->hidden, rng);
        if (rc != 0) return build_fail(m, prefix, err, errlen);
    }
    float k = 1.0f / sqrtf((float)cfg->hidden);
    m->w_out = ur_model_param(m->ps, "head", "W", cfg->hidden, cfg->vocab, k, rng);
    m->b_out = ur_model_param(m->ps, "head", "b", 1, cfg->vocab, k, rng);
    m->meta = ur_params_add(m->ps, "meta.config", 1, META_N);
    m->meta_vocab = ur_params_add(m->ps, "meta.vocab", 1, cfg->vocab);
    if (!m->w_out || !m->b_out || !m->meta || !m->meta_vocab)
        return build_fail(m, "head", err, errlen);
    float meta[META_N] = {LM_FORMAT, (float)cfg->cell, (float)cfg->layers, (float)cfg->hidden,
                          (float)cfg->embed, (float)cfg->vocab, 0.0f, cfg->dropout};
    memcpy(m->meta->val, meta, sizeof meta);
    for (int v = 0; v < cfg->vocab; v++) m->meta_vocab->val[v] = vocab[v];

    ur_rng_seed(&m->dropout_rng, ur_rng_next(rng));
    if (ur_stack_init(&m->train_stack, cfg->layers, m->cells, cfg->dropout, &m->dropout_rng) != 0 ||
        ur_stack_init(&m->eval_stack, cfg->layers, m->cells, 0.0f, NULL) != 0)
        return build_fail(m, "stack", err, errlen);
    return 0;
}

void lm_set_steps(lm_model *m, long steps)
{
    m->meta->val[META_STEPS] = (float)steps;
}

void lm_free(lm_model *m)
{
    ur_params_free(m->ps);
    m->ps = NULL;
}

/* 1 if x is a whole number in [lo, hi]. */
static int whole(float x, double lo, double hi)
{
    return isfinite(x) && x == floorf(x) && x >= lo && x <= hi;
}

int lm_load(lm_model *m, const char *path, long *steps, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    ur_params *file = ur_params_load_new(path, err, errlen);
    if (!file) return -1;
    const ur_tensor *meta = ur_params_get(file, "meta.config");
    const ur_tensor *mv = ur_params_get(file, "meta.vocab");
    const char *bad = NULL;
    lm_config cfg = {0};
    unsigned char vocab[256];
    if (!meta || !mv) bad = "it has no meta.config or meta.vocab: not a char_lm model";
    else if (meta->rows != 1 || meta->cols != META_N) bad = "meta.config has the wrong shape";
    else if (meta->val[META_FORMAT] != LM_FORMAT) bad = "unknown char_lm format";
    else if (!whole(meta->val[META_CELL], LM_ELMAN, LM_GRU) ||
             !whole(meta->val[META_LAYERS], 1, LM_MAX_LAYERS) ||
             !whole(meta->val[META_HIDDEN], 1, 1 << 16) ||
             !whole(meta->val[META_EMBED], 1, 1 << 16) ||
             !whole(meta->val[META_VOCAB], 1, 256) || !whole(meta->val[META_STEPS], 0, 1e9) ||
             !(meta->val[META_DROPOUT] >= 0 && meta->val[META_DROPOUT] < 1))
        bad = "meta.config holds an impossible value";
    else if (mv->rows != 1 || mv->cols != (int)meta->val[META_VOCAB])
        bad = "meta.vocab does not match the vocabulary size";
    else {
        int seen[256] = {0};
        for (int v = 0; v < mv->cols && !bad; v++) {
            if (!whole(mv->val[v], 0, 255) || seen[(int)mv->val[v]]++)
                bad = "meta.vocab is not a list of distinct bytes";
            else vocab[v] = (unsigned char)mv->val[v];
        }
    }
    if (!bad) {
        cfg = (lm_config){(int)meta->val[META_CELL], (int)meta->val[META_LAYERS],
                          (int)meta->val[META_HIDDEN], (int)meta->val[META_EMBED],
                          (int)meta->val[META_VOCAB], meta->val[META_DROPOUT]};
        *steps = (long)meta->val[META_STEPS];
    }
    ur_params_free(file);
    if (bad) {
        snprintf(err, errlen, "%s: %s", path, bad);
        return -1;
    }
    ur_rng rng;
    ur_rng_seed(&rng, 0);
    if (lm_build(m, &cfg, vocab, &rng, err, errlen) != 0 ||
        ur_params_load(m->ps, path, err, errlen) != 0) {
        lm_free(m);
        return -1;
    }
    return 0;
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
