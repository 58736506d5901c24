/* libFuzzer target: char_lm's checkpoint validation (examples/lm_model.c). A model file that
 * passes the library's checks goes through lm_check_file; one that passes that is built and
 * loaded, which must then succeed, and sampled from for a few characters. */
#include <stdint.h>
#include <stdlib.h>

#include "examples/lm_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    ur_model_file *f = ur_model_file_parse(data, size, "fuzz", err, sizeof err);
    if (!f) return 0;
    lm_config cfg;
    unsigned char vocab[256];
    long steps;
    if (lm_check_file(f, &cfg, vocab, &steps, err, sizeof err) == 0) {
        lm_model m;
        ur_rng rng;
        ur_rng_seed(&rng, 1);
        if (lm_build(&m, &cfg, vocab, &rng, err, sizeof err) != 0) abort();
        if (ur_model_file_load(f, m.ps, NULL, err, sizeof err) != 0) abort(); /* checked: fits */
        ur_tape *tp = ur_tape_new(0);
        FILE *out = fopen("/dev/null", "w");
        int prime = 0;
        if (tp && out) lm_generate(&m, tp, &prime, 1, 4, 1.0f, 0, &rng, out, err, sizeof err);
        if (out) fclose(out);
        ur_tape_free(tp);
        lm_free(&m);
    }
    ur_model_file_free(f);
    return 0;
}
