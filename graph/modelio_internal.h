/* Between graph/modelio_save.c and graph/modelio_read.c: the model file's constants and the
 * byte helpers both sides share (the layout is in doc/model-format.md). Not part of the
 * public interface. */
#ifndef UR_MODELIO_INTERNAL_H
#define UR_MODELIO_INTERNAL_H

#include "graph/meta_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const unsigned char MAGIC[8] = {'U', 'R', 'M', 'O', 'D', 'E', 'L', 0};
#define CHECKSUM_BYTES 8u
#define NAME_LEN_MAX 255u
#if UR_PARAM_NAME_MAX != 255 || UR_META_KEY_MAX != 255
#error "the name limits of ur_params_add, metadata keys and the file format must agree"
#endif

/* Writes a message into err (errlen bytes; nothing when err is NULL or errlen 0). */
static inline void set_err(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static inline void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- FNV-1a 64 and little-endian coding -------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static inline uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t k = 0; k < n; k++) h = (h ^ p[k]) * FNV_PRIME;
    return h;
}

static inline void put_u32(unsigned char *b, uint32_t x)
{
    for (int k = 0; k < 4; k++) b[k] = (unsigned char)(x >> (8 * k));
}

static inline uint32_t get_u32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t get_u64(const unsigned char *b)
{
    return (uint64_t)get_u32(b) | (uint64_t)get_u32(b + 4) << 32;
}

static inline uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* 1 if the binary32 with these bits is NaN or +-Inf (exponent all ones). */
static inline int bits_nonfinite(uint32_t u) { return (u & 0x7f800000u) == 0x7f800000u; }

#endif
