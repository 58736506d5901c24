/* The choice of vectorised copies (ops/isa.h): the CPU's best, capped by UR_ISA, made once. */
#define _POSIX_C_SOURCE 200809L
#include "ops/isa.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ur_ops.h"

atomic_int ur_isa_chosen = -1;
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;

/* The best level this CPU runs (and this compiler built copies for). */
static int cpu_best(void)
{
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return UR_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return UR_ISA_AVX2;
#endif
    return UR_ISA_GENERIC;
}

/* The level called name, or -1. */
static int level_named(const char *name)
{
    return !name ? -1
           : strcmp(name, "avx512") == 0  ? UR_ISA_AVX512
           : strcmp(name, "avx2") == 0    ? UR_ISA_AVX2
           : strcmp(name, "generic") == 0 ? UR_ISA_GENERIC
                                          : -1;
}

static void isa_choose(void)
{
    int best = cpu_best(), want = level_named(getenv("UR_ISA"));
    atomic_store(&ur_isa_chosen, want >= 0 && want < best ? want : best);
}

int ur_isa_init(void)
{
    pthread_once(&isa_once, isa_choose);
    return atomic_load(&ur_isa_chosen);
}

int ur_isa_select(const char *name)
{
    ur_isa_init();
    int want = level_named(name);
    if (want < 0 || want > cpu_best()) return -1;
    atomic_store(&ur_isa_chosen, want);
    return 0;
}

const char *ur_isa(void)
{
    static const char *const names[] = {"generic", "avx2", "avx512"};
    return names[ur_isa_level()];
}
