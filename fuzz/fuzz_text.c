/* libFuzzer target: the text reader and vocabulary (examples/text.c). The input is written
 * to a file, read back under a cap that the first byte chooses, and encoded. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "examples/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        strcpy(path, "/tmp/ur_fuzz_text.XXXXXX");
        int fd = mkstemp(path);
        if (fd < 0) abort();
        close(fd);
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) abort();
    size_t cap = size ? (size_t)data[0] * 16 : 8;
    ex_text t;
    char err[512];
    if (ex_text_read_file(&t, path, cap, err, sizeof err) == 0) {
        if (t.n != size || t.n > cap || (size && memcmp(t.bytes, data, size) != 0)) abort();
        ex_vocab v;
        ex_vocab_build(&v, t.bytes, t.n);
        int *ids = malloc((t.n ? t.n : 1) * sizeof *ids);
        if (ids && ex_vocab_encode(&v, t.bytes, t.n, ids, err, sizeof err) != 0) abort();
        for (size_t k = 0; ids && k < t.n; k++)
            if (v.byte[ids[k]] != t.bytes[k]) abort();
        free(ids);
        ex_vocab w;
        if (v.size > 0 && ex_vocab_set(&w, v.byte, v.size) != 0) abort();
        ex_text_free(&t);
    } else if (size <= cap) {
        abort(); /* a regular file within the cap must be read */
    }
    return 0;
}
