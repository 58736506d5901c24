/* libFuzzer target: the examples' option parsing (examples/common.c). The input, cut at NUL
 * bytes, is an argv for ex_parse; each piece is also given to the strict number parsers,
 * whose answers are checked against what they promise. Run with -close_fd_mask=3: ex_parse
 * prints messages. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "examples/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 if s is [-]digits only. */
static int plain_integer(const char *s)
{
    if (*s == '-') s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[64];
    int argc = 0;
    argv[argc++] = "prog";
    for (char *p = buf; p <= buf + size && argc < 64; p += strlen(p) + 1) argv[argc++] = p;

    for (int a = 1; a < argc; a++) {
        long long i;
        double d;
        char err[256];
        if (ex_parse_int(argv[a], -1000, 1000000, &i, err, sizeof err) == 0) {
            if (!plain_integer(argv[a]) || i != strtoll(argv[a], NULL, 10) || i < -1000 ||
                i > 1000000)
                abort();
        }
        if (ex_parse_float(argv[a], -1e30, 1e30, &d, err, sizeof err) == 0) {
            if (!isfinite(d) || d != strtod(argv[a], NULL) || d < -1e30 || d > 1e30 ||
                strchr(argv[a], ' ') || strchr(argv[a], 'x') || strchr(argv[a], '+') == argv[a])
                abort();
        }
    }
    int n = 7, flag = 0;
    float x = 0.5f;
    const char *s = NULL;
    const ex_opt opts[] = {
        {"n", EX_INT, &n, 1, 4096, "an integer"},
        {"x", EX_FLOAT, &x, 0, 1, "a float"},
        {"s", EX_STRING, &s, 0, 0, "a string"},
        {"flag", EX_FLAG, &flag, 0, 0, "a flag"},
    };
    if (ex_parse(argc, argv, 1, "prog", "usage", opts, 4) >= 0)
        if (n < 1 || n > 4096 || !(x >= 0 && x <= 1) || (s && !*s)) abort();
    free(buf);
    return 0;
}
