/* libFuzzer target: the model file reader (graph/modelio_read.c). Any bytes: parsed and validated;
 * a file that passes is loaded into a parameter set built from it, and into that set again
 * through ur_model_file_load, and its metadata read back through every getter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unroll.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    ur_model_file *f = ur_model_file_parse(data, size, "fuzz", err, sizeof err);
    if (!f) return 0;
    const ur_meta *meta = ur_model_file_meta(f);
    for (int k = 0; k < ur_meta_count(meta); k++) {
        const char *key = ur_meta_key(meta, k);
        int64_t i;
        double d;
        size_t n;
        switch (ur_meta_type_of(meta, key)) {
        case UR_META_STRING: if (!ur_meta_string(meta, key)) abort(); break;
        case UR_META_INT64: if (ur_meta_int64(meta, key, &i) != 0) abort(); break;
        case UR_META_FLOAT64:
            if (ur_meta_float64(meta, key, &d) != 0 || d != d) abort();
            break;
        case UR_META_BYTES: if (!ur_meta_bytes(meta, key, &n)) abort(); break;
        default: abort();
        }
    }
    ur_params *ps = ur_model_file_new_params(f, err, sizeof err);
    if (ps) {
        ur_meta *m = ur_meta_new();
        if (m && ur_model_file_load(f, ps, m, err, sizeof err) != 0) abort(); /* it must fit */
        if (m && ur_meta_count(m) != ur_meta_count(meta)) abort();
        ur_meta_free(m);
        for (int k = 0; k < ur_params_count(ps); k++) {
            int r, c;
            const char *name = ur_model_file_param(f, k, &r, &c);
            const ur_tensor *t = ur_params_at(ps, k);
            if (!name || strcmp(name, t->name) != 0 || r != t->rows || c != t->cols) abort();
        }
        ur_params_free(ps);
    }
    ur_model_file_free(f);
    return 0;
}
