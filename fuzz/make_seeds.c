/* Writes the binary seeds of the fuzz corpus (fuzz/corpus/modelio, fuzz/corpus/checkpoint):
 *     make fuzz/make_seeds && fuzz/make_seeds fuzz/corpus
 * Small, valid files, so the fuzzer starts from inputs that reach deep into the checks. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "examples/lm_model.h"

static int save(const ur_params *ps, const ur_meta *m, const char *dir, const char *name)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (ur_params_save_meta(ps, m, path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 2;
    }
    char d1[512], d2[512];
    snprintf(d1, sizeof d1, "%s/modelio", argv[1]);
    snprintf(d2, sizeof d2, "%s/checkpoint", argv[1]);
    mkdir(argv[1], 0755);
    mkdir(d1, 0755);
    mkdir(d2, 0755);

    ur_params *ps = ur_params_new();
    ur_tensor *a = ur_params_add(ps, "a.W", 2, 3), *b = ur_params_add(ps, "b", 1, 2);
    for (int k = 0; k < 6; k++) a->val[k] = 0.5f * (float)k - 1.0f;
    b->val[0] = 3.0f;
    ur_meta *m = ur_meta_new();
    ur_meta_set_string(m, "s", "text");
    ur_meta_set_int64(m, "i", -5);
    ur_meta_set_float64(m, "f", 0.125);
    ur_meta_set_bytes(m, "b", "\x00\x01\xff", 3);
    int rc = save(ps, m, d1, "meta.urm") | save(ps, NULL, d1, "plain.urm");
    ur_params *empty = ur_params_new();
    rc |= save(empty, NULL, d1, "empty.urm");
    ur_params_free(empty);
    ur_params_free(ps);
    ur_meta_free(m);

    const int cells[3] = {LM_ELMAN, LM_LSTM, LM_GRU};
    for (int c = 0; c < 3; c++) {
        unsigned char vocab[3] = {'a', 'b', '\n'};
        lm_config cfg = {cells[c], c == 1 ? 2 : 1, 2, 2, 3, 0.0f, 0.0f};
        lm_model lm;
        ur_rng rng;
        ur_rng_seed(&rng, 1);
        char err[512], path[600];
        if (lm_build(&lm, &cfg, vocab, &rng, err, sizeof err) != 0) return 1;
        snprintf(path, sizeof path, "%s/%s.urm", d2, lm_cell_name(cells[c]));
        rc |= lm_save(&lm, 3, NULL, path, err, sizeof err);
        lm_free(&lm);
    }
    return rc ? 1 : 0;
}
