/* Internal: exp, sigmoid and tanh written so that gcc vectorises loops over them (libm's
 * expf and tanhf are scalar calls and would cost more than the LSTM's GEMMs).
 *
 * exp(x) = 2^n e^r with n = round(x / ln 2) and |r| <= ln(2)/2; e^r by its degree-7 Taylor
 * polynomial (truncation error r^8/8! < 3e-9, below float's half-ulp) and 2^n by building
 * the float's exponent bits, as the product of two powers 2^(n/2) 2^(n - n/2) so that each
 * stays a normal float over the whole clamp range [-104, 89]: the product then overflows to
 * +Inf above ln(FLT_MAX) = 88.72 and underflows through the subnormals to 0 below -103.9,
 * as libm's expf does, and the conversion to an integer is always defined. NaN gives NaN
 * (a select, which vectorises). Measured against double-precision exp: at most 2 ulp over
 * the normal range (tests/test_ops).
 */
#ifndef UR_FASTMATH_H
#define UR_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* Loops over these are compiled for AVX-512, AVX2 and plain x86-64 (ops/isa.h). */
#include "ops/isa.h"

static inline float ur_exp1(float x_in)
{
    float x = x_in == x_in ? x_in : 0.0f; /* NaN: compute something defined, select below */
    x = x < -104.0f ? -104.0f : x;
    x = x > 89.0f ? 89.0f : x;
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
    int32_t ni = (int32_t)n, half = ni / 2;  /* n in [-150, 129] */
    int32_t bits_a = (half + 127) << 23, bits_b = (ni - half + 127) << 23;
    float sa, sb;
    memcpy(&sa, &bits_a, sizeof sa);
    memcpy(&sb, &bits_b, sizeof sb);
    float y = (p * sa) * sb;
    return x_in == x_in ? y : x_in;
}

static inline float ur_sigmoid1(float x) { return 1.0f / (1.0f + ur_exp1(-x)); }

/* tanh x = (1 - e^{-2|x|}) / (1 + e^{-2|x|}) with x's sign; below |x| = 0.0625 the
 * subtraction would cancel, so there the odd Taylor series to x^9 is used instead. */
static inline float ur_tanh1(float x)
{
    float a = x < 0 ? -x : x;
    float e = ur_exp1(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    float x2 = x * x;
    float small = a * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315 + x2 * (62.0f / 2835)))));
    float t = a < 0.0625f ? small : big;
    return x < 0 ? -t : t;
}

#endif
