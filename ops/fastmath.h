/* Internal: exp, sigmoid and tanh written so that gcc vectorises loops over them (libm's
 * expf and tanhf are scalar calls and would cost more than the LSTM's GEMMs).
 *
 * exp(x) = 2^n e^r with n = round(x / ln 2) and |r| <= ln(2)/2; e^r by its degree-7 Taylor
 * polynomial (truncation error r^8/8! < 3e-9, below float's half-ulp) and 2^n by building
 * the float's exponent bits. x is clamped to [-87, 88] so 2^n stays a normal float;
 * exp(88) = 1.65e38 is then the largest value returned, and exp(-87) the smallest.
 * Measured against double-precision exp: at most 2 ulp over the whole range (tests/test_ops).
 */
#ifndef UR_FASTMATH_H
#define UR_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* Loops marked with this are compiled for AVX-512, AVX2 and plain x86-64, picked at load. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define UR_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define UR_VECTOR_CLONES
#endif

static inline float ur_exp(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693145751953125f;       /* ln 2, high part (exact product) */
    r = r - n * 1.42860682030941723212e-6f;     /* ln 2, low part */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float ur_sigmoid1(float x) { return 1.0f / (1.0f + ur_exp(-x)); }

/* tanh x = (1 - e^{-2|x|}) / (1 + e^{-2|x|}) with x's sign; below |x| = 0.0625 the
 * subtraction would cancel, so there the odd Taylor series to x^9 is used instead. */
static inline float ur_tanh1(float x)
{
    float a = x < 0 ? -x : x;
    float e = ur_exp(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    float x2 = x * x;
    float small = a * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315 + x2 * (62.0f / 2835)))));
    float t = a < 0.0625f ? small : big;
    return x < 0 ? -t : t;
}

#endif
