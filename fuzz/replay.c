/* Runs a fuzz target's LLVMFuzzerTestOneInput on each file named on the command line, so
 * the seed corpus and every saved crash replay in `make check` with the ordinary compiler,
 * also where libFuzzer is not available. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    for (int a = 1; a < argc; a++) {
        FILE *f = fopen(argv[a], "rb");
        if (!f) {
            fprintf(stderr, "replay: cannot open %s\n", argv[a]);
            return 1;
        }
        unsigned char *buf = NULL;
        size_t n = 0, cap = 0, got;
        do {
            if (n == cap) {
                cap = cap ? 2 * cap : 4096;
                unsigned char *nb = realloc(buf, cap);
                if (!nb) return 1;
                buf = nb;
            }
            got = fread(buf + n, 1, cap - n, f);
            n += got;
        } while (got > 0);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
    }
    printf("replay: %d inputs, no crash\n", argc - 1);
    return 0;
}
