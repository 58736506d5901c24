/* Internal: which copy of the vectorised loops runs (AVX-512, AVX2 or plain x86-64).
 *
 * A loop written once as name_body is compiled three times by UR_VECTOR_VOID / UR_VECTOR_RET
 * (target("avx512f,fma"), target("avx2,fma"), and the default target; configure's
 * -ffp-contract=fast fuses multiply-adds in the first two) and name() calls the copy of
 * the level chosen once per process: the best the CPU has, lowered by UR_ISA=avx2 or
 * UR_ISA=generic in the environment (ur_isa in ops/ur_ops.h). gcc's target_clones would pick
 * from the CPU alone (libgcc reads CPUID, which glibc's GLIBC_TUNABLES hwcaps mask does not
 * change), so the AVX2 and plain copies could never be tested on an AVX-512 machine.
 *
 *     UR_VECTOR_BODY void scale_body(float *y, int n) { ...loop... }
 *     UR_VECTOR_VOID(scale, (float *y, int n), (y, n))        defines static scale(y, n)
 */
#ifndef UR_ISA_H
#define UR_ISA_H

#include <stdatomic.h>

enum { UR_ISA_GENERIC = 0, UR_ISA_AVX2 = 1, UR_ISA_AVX512 = 2 };

/* The level chosen, or -1 before the first ur_isa_level(). */
extern atomic_int ur_isa_chosen;
/* Chooses the level (once) and returns it. */
int ur_isa_init(void);
/* The level in use: UR_ISA_GENERIC, UR_ISA_AVX2 or UR_ISA_AVX512. */
static inline int ur_isa_level(void)
{
    int l = atomic_load_explicit(&ur_isa_chosen, memory_order_relaxed);
    return l >= 0 ? l : ur_isa_init();
}
/* For tests: switches to the level called name ("avx512", "avx2", "generic"); -1 when the CPU
 * lacks it or the name is unknown. Not thread-safe: only while no op runs. */
int ur_isa_select(const char *name);

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
/* The loop, inlined into each copy and compiled there for that copy's target. */
#define UR_VECTOR_BODY static inline __attribute__((always_inline))
#define UR_VECTOR_COPIES(ret, name, params, args)                                           \
    __attribute__((target("avx512f,fma"))) static ret name##_avx512 params                  \
    {                                                                                       \
        return name##_body args;                                                            \
    }                                                                                       \
    __attribute__((target("avx2,fma"))) static ret name##_avx2 params                       \
    {                                                                                       \
        return name##_body args;                                                            \
    }                                                                                       \
    static ret name##_generic params { return name##_body args; }
/* static ret name(params): name_body(args) in the copy of the chosen level. */
#define UR_VECTOR_RET(ret, name, params, args)                                              \
    UR_VECTOR_COPIES(ret, name, params, args)                                               \
    static ret name params                                                                  \
    {                                                                                       \
        int l_ = ur_isa_level();                                                            \
        return l_ == UR_ISA_AVX512 ? name##_avx512 args                                     \
               : l_ == UR_ISA_AVX2 ? name##_avx2 args : name##_generic args;                \
    }
/* The same for a function returning void. */
#define UR_VECTOR_VOID(name, params, args)                                                  \
    __attribute__((target("avx512f,fma"))) static void name##_avx512 params                 \
    {                                                                                       \
        name##_body args;                                                                   \
    }                                                                                       \
    __attribute__((target("avx2,fma"))) static void name##_avx2 params                      \
    {                                                                                       \
        name##_body args;                                                                   \
    }                                                                                       \
    static void name##_generic params { name##_body args; }                                 \
    static void name params                                                                 \
    {                                                                                       \
        int l_ = ur_isa_level();                                                            \
        if (l_ == UR_ISA_AVX512) name##_avx512 args;                                        \
        else if (l_ == UR_ISA_AVX2) name##_avx2 args;                                       \
        else name##_generic args;                                                           \
    }
#else
#define UR_VECTOR_BODY static inline
#define UR_VECTOR_RET(ret, name, params, args)                                              \
    static ret name params { return name##_body args; }
#define UR_VECTOR_VOID(name, params, args)                                                  \
    static void name params { name##_body args; }
#endif

#endif
