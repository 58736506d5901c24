/* The recurrent product's GEMM kernels (ops/rgemm.h).
 *
 * Shapes: m = batch rows of h (1 to a few hundred), k = the inner size, n = the output
 * columns, NR = panel width, MR = rows per tile.
 *
 *     for each panel p of this thread's columns          (P's K x NR block, read from cache)
 *         for each block of MR rows of A
 *             acc (MR x NR) = sum_k A[rows, k] P[k, panel]     (registers)
 *             C[rows, panel] += acc
 *
 * A tile keeps MR x NR sums in registers: AVX-512 8 x 32 (16 zmm accumulators, one
 * broadcast of A and two loads of P per 16 FMAs), AVX2 6 x 16 (12 ymm). With few rows
 * (batch 1) a tile spans several panels instead, so that enough independent sums are in
 * flight to hide the FMA latency. Each sum runs over k in order, one FMA per term.
 */
#define _POSIX_C_SOURCE 200809L
#include "ops/rgemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>

#include "ops/isa.h"
#include "ops/pool.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define UR_HAVE_KERNELS 1
#include <immintrin.h>
#endif

enum { K_NONE, K_AVX2, K_AVX512 };
static int kernel_id = -1;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

/* The widest kernel this CPU runs (and this compiler built). */
static int cpu_kernel(void)
{
#ifdef UR_HAVE_KERNELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return K_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return K_AVX2;
#endif
    return K_NONE;
}

static void choose(void)
{
    int best = cpu_kernel();
    const char *want = getenv("UR_RGEMM");
    if (want && strcmp(want, "blas") == 0) best = K_NONE;
    else if (want && strcmp(want, "avx2") == 0 && best >= K_AVX2) best = K_AVX2;
    /* UR_ISA caps ours too: avx2 allows the AVX2 kernel at most, generic none (cblas) */
    int isa = ur_isa_level();
    if (isa == UR_ISA_GENERIC) best = K_NONE;
    else if (isa == UR_ISA_AVX2 && best > K_AVX2) best = K_AVX2;
    kernel_id = best;
}

static int kernel(void)
{
    pthread_once(&choose_once, choose);
    return kernel_id;
}

const char *ur_rgemm_kernel(void)
{
    switch (kernel()) {
    case K_AVX512: return "avx512";
    case K_AVX2: return "avx2";
    default: return "blas";
    }
}

int ur_rgemm_available(void) { return kernel() != K_NONE; }

int ur_rgemm_select(const char *name)
{
    int best = cpu_kernel();
    kernel();
    int want = strcmp(name, "avx512") == 0 ? K_AVX512 : strcmp(name, "avx2") == 0 ? K_AVX2
             : strcmp(name, "blas") == 0 ? K_NONE : -1;
    if (want < 0 || want > best) return -1;
    kernel_id = want;
    return 0;
}

static int panel_width(void) { return kernel() == K_AVX512 ? 32 : 16; }

size_t ur_rgemm_packed_floats(int k, int n)
{
    int nr = panel_width();
    size_t panels = ((size_t)n + (size_t)nr - 1) / (size_t)nr;
    return panels * (size_t)k * (size_t)nr; /* nr is a multiple of 16 */
}

#ifdef UR_HAVE_KERNELS
/* A whole panel of W (not W^T): d (k x nr, row after row) = columns [0, nr) of w's k rows, a
 * row's nr floats in two vector copies (gcc makes a plain loop of them a memcpy call per 128
 * bytes, which costs more than the copy). */
__attribute__((target("avx512f"))) static void copy_panel32(float *restrict d,
                                                             const float *restrict w, int ldw,
                                                             int k)
{
    for (int r = 0; r < k; r++, d += 32, w += ldw) {
        _mm512_storeu_ps(d, _mm512_loadu_ps(w));
        _mm512_storeu_ps(d + 16, _mm512_loadu_ps(w + 16));
    }
}
__attribute__((target("avx2"))) static void copy_panel16(float *restrict d,
                                                         const float *restrict w, int ldw, int k)
{
    for (int r = 0; r < k; r++, d += 16, w += ldw) {
        _mm256_storeu_ps(d, _mm256_loadu_ps(w));
        _mm256_storeu_ps(d + 8, _mm256_loadu_ps(w + 8));
    }
}
static void copy_panel(float *d, const float *w, int ldw, int k, int nr)
{
    if (nr == 32) copy_panel32(d, w, ldw, k);
    else copy_panel16(d, w, ldw, k);
}
#endif

typedef struct pack_job {
    const float *w;
    int ldw, trans, k, n, nr;
    float *packed;
} pack_job;

/* Panels [p0, p1). W^T is read in 16 x nr blocks, so that each source row is read in runs of
 * 16 floats instead of one float per row. */
static void pack_range(void *ctx, int p0, int p1)
{
    const pack_job *j = ctx;
    int k = j->k, n = j->n, nr = j->nr, ldw = j->ldw;
    for (int p = p0; p < p1; p++) {
        int c0 = p * nr, w_cols = n - c0 < nr ? n - c0 : nr;
        float *dst = j->packed + (size_t)p * (size_t)k * (size_t)nr;
#ifdef UR_HAVE_KERNELS
        if (!j->trans && w_cols == nr && kernel() != K_NONE) { /* the CPU has the copy's ISA */
            copy_panel(dst, j->w + c0, ldw, k, nr);
            continue;
        }
#endif
        if (!j->trans) {
            for (int r = 0; r < k; r++) {
                float *d = dst + (size_t)r * nr;
                memcpy(d, j->w + (size_t)r * ldw + c0, (size_t)w_cols * sizeof *d);
                for (int q = w_cols; q < nr; q++) d[q] = 0.0f;
            }
            continue;
        }
        for (int r0 = 0; r0 < k; r0 += 16) {
            int rows = k - r0 < 16 ? k - r0 : 16;
            for (int q = 0; q < w_cols; q++) {
                const float *src = j->w + (size_t)(c0 + q) * ldw + r0;
                for (int r = 0; r < rows; r++) dst[(size_t)(r0 + r) * nr + q] = src[r];
            }
            for (int r = 0; r < rows; r++)
                for (int q = w_cols; q < nr; q++) dst[(size_t)(r0 + r) * nr + q] = 0.0f;
        }
    }
}

void ur_rgemm_pack(const float *w, int ldw, int trans, int k, int n, float *packed)
{
    int nr = panel_width();
    pack_job j = {w, ldw, trans, k, n, nr, packed};
    /* split like the products, so that each thread packs the panels it will mostly use */
    ur_pool_for((n + nr - 1) / nr, 1, pack_range, &j);
}

#ifdef UR_HAVE_KERNELS

#define INLINE static inline __attribute__((always_inline))
#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2,fma")))

/* ---- AVX-512: panels of 32 columns (two zmm), tiles of up to 8 rows x 32 or 1-2 rows x 128 */

/* C[0..mr) x [0..cols) += A[0..mr) P[np panels]; cols <= 32 np (less only in the last tile). */
AVX512 INLINE void tile512(const int mr, const int np, const int ta, int k,
                           const float *restrict a, int lda, const float *restrict p,
                           size_t pstride, float *restrict c, int ldc, int cols, int store,
                           const float *restrict bias)
{
    __m512 acc[8][8];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int j = 0; j < 2 * np; j++) {
            acc[i][j] = _mm512_setzero_ps();
            /* C's lines, read (and written) after the sums: fetched while they run */
            if (16 * j < cols) __builtin_prefetch(c + (size_t)i * ldc + 16 * j, 1, 3);
        }
    for (int q = 0; q < k; q++) {
        __m512 b[8];
#pragma GCC unroll 4
        for (int j = 0; j < np; j++) {
            b[2 * j] = _mm512_loadu_ps(p + j * pstride + (size_t)q * 32);
            b[2 * j + 1] = _mm512_loadu_ps(p + j * pstride + (size_t)q * 32 + 16);
        }
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512 x = _mm512_set1_ps(ta ? a[(size_t)q * lda + i] : a[(size_t)i * lda + q]);
#pragma GCC unroll 8
            for (int j = 0; j < 2 * np; j++) acc[i][j] = _mm512_fmadd_ps(x, b[j], acc[i][j]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
#pragma GCC unroll 8
        for (int j = 0; j < 2 * np; j++) {
            int rem = cols - 16 * j;
            if (rem >= 16) {
                const float *old = store ? bias : ci; /* bias: C's old value is the bias */
                __m512 v = acc[i][j];
                if (old) v = _mm512_add_ps(_mm512_loadu_ps(old + 16 * j), v);
                _mm512_storeu_ps(ci + 16 * j, v);
            } else if (rem > 0) {
                __mmask16 m = (__mmask16)((1u << rem) - 1u);
                const float *old = store ? bias : ci;
                __m512 v = acc[i][j];
                if (old) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, old + 16 * j), v);
                _mm512_mask_storeu_ps(ci + 16 * j, m, v);
            }
        }
    }
}

/* Rows [0, m) and panels [p0, p1) of the product. ta: 0 A as it is, 1 A^T in place, 2 A packed
 * in tiles of 8 rows (pack_rows_range: rows [8t, 8t + 8) from t 8 k on, (i, q) at q 8 + i). */
AVX512 INLINE void block512_t(const int ta, int m, int n, int k, const float *a, int lda,
                              const float *packed, size_t ps, float *c, int ldc, int p0, int p1,
                              int store, const float *bias)
{
    for (int p = p0; p < p1;) {
        /* few rows: tiles of 4 panels (1-2 rows) or 2 panels (3-4 rows) */
        int wide = m <= 2 ? 4 : m <= 4 ? 2 : 1;
        if (p1 - p < wide) wide = 1;
        int cols = n - p * 32 < 32 * wide ? n - p * 32 : 32 * wide;
        const float *pp = packed + (size_t)p * ps;
        const int tta = ta != 0, tlda = ta == 2 ? 8 : lda; /* packed: read as A^T of 8 columns */
        for (int r = 0; r < m; r += 8) {
            int mr = m - r < 8 ? m - r : 8;
            const float *ar = ta == 2 ? a + (size_t)r * k : ta ? a + r : a + (size_t)r * lda;
            float *cr = c + (size_t)r * ldc + (size_t)p * 32;
            const float *br = bias ? bias + (size_t)p * 32 : NULL;
            if (wide == 4) {
                if (mr == 1) tile512(1, 4, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br);
                else tile512(2, 4, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br);
                continue;
            }
            if (wide == 2) {
                if (mr == 3) tile512(3, 2, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br);
                else tile512(4, 2, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br);
                continue;
            }
            switch (mr) {
            case 1: tile512(1, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            case 2: tile512(2, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            case 3: tile512(3, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            case 4: tile512(4, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            case 5: tile512(5, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            case 6: tile512(6, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            case 7: tile512(7, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            default: tile512(8, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            }
        }
        p += wide;
    }
}

AVX512 static void block512(int ta, int m, int n, int k, const float *a, int lda,
                            const float *packed, size_t ps, float *c, int ldc, int p0, int p1,
                            int store, const float *bias)
{
    if (ta == 2) block512_t(2, m, n, k, a, lda, packed, ps, c, ldc, p0, p1, store, bias);
    else if (ta) block512_t(1, m, n, k, a, lda, packed, ps, c, ldc, p0, p1, store, bias);
    else block512_t(0, m, n, k, a, lda, packed, ps, c, ldc, p0, p1, store, bias);
}

/* ---- AVX2 + FMA: panels of 16 columns (two ymm), tiles of up to 6 rows x 16 ------------- */

AVX2 INLINE void tile256(const int mr, const int np, const int ta, int k,
                         const float *restrict a, int lda, const float *restrict p,
                         size_t pstride, float *restrict c, int ldc, int cols, int store,
                         const float *restrict bias)
{
    __m256 acc[6][8];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int j = 0; j < 2 * np; j++) acc[i][j] = _mm256_setzero_ps();
    for (int q = 0; q < k; q++) {
        __m256 b[8];
#pragma GCC unroll 4
        for (int j = 0; j < np; j++) {
            b[2 * j] = _mm256_loadu_ps(p + j * pstride + (size_t)q * 16);
            b[2 * j + 1] = _mm256_loadu_ps(p + j * pstride + (size_t)q * 16 + 8);
        }
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 x = _mm256_broadcast_ss(ta ? a + (size_t)q * lda + i : a + (size_t)i * lda + q);
#pragma GCC unroll 8
            for (int j = 0; j < 2 * np; j++) acc[i][j] = _mm256_fmadd_ps(x, b[j], acc[i][j]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
#pragma GCC unroll 8
        for (int j = 0; j < 2 * np; j++) {
            int rem = cols - 8 * j;
            const float *old = store ? bias : ci; /* bias: C's old value is the bias */
            if (rem >= 8) {
                __m256 v = acc[i][j];
                if (old) v = _mm256_add_ps(_mm256_loadu_ps(old + 8 * j), v);
                _mm256_storeu_ps(ci + 8 * j, v);
            } else if (rem > 0) {
                float t[8];
                _mm256_storeu_ps(t, acc[i][j]);
                for (int e = 0; e < rem; e++) ci[8 * j + e] = old ? old[8 * j + e] + t[e] : t[e];
            }
        }
    }
}

AVX2 INLINE void block256_t(const int ta, int m, int n, int k, const float *a, int lda,
                            const float *packed, size_t ps, float *c, int ldc, int p0, int p1,
                            int store, const float *bias)
{
    for (int p = p0; p < p1;) {
        int wide = m == 1 ? 4 : m == 2 ? 2 : 1; /* at most 12 of the 16 ymm hold sums */
        if (p1 - p < wide) wide = 1;
        int cols = n - p * 16 < 16 * wide ? n - p * 16 : 16 * wide;
        const float *pp = packed + (size_t)p * ps;
        for (int r = 0; r < m; r += 6) {
            int mr = m - r < 6 ? m - r : 6;
            const float *ar = ta ? a + r : a + (size_t)r * lda;
            float *cr = c + (size_t)r * ldc + (size_t)p * 16;
            const float *br = bias ? bias + (size_t)p * 16 : NULL;
            if (wide == 4) {
                tile256(1, 4, ta, k, ar, lda, pp, ps, cr, ldc, cols, store, br);
                continue;
            }
            if (wide == 2) {
                tile256(2, 2, ta, k, ar, lda, pp, ps, cr, ldc, cols, store, br);
                continue;
            }
            switch (mr) {
            case 1: tile256(1, 1, ta, k, ar, lda, pp, ps, cr, ldc, cols, store, br); break;
            case 2: tile256(2, 1, ta, k, ar, lda, pp, ps, cr, ldc, cols, store, br); break;
            case 3: tile256(3, 1, ta, k, ar, lda, pp, ps, cr, ldc, cols, store, br); break;
            case 4: tile256(4, 1, ta, k, ar, lda, pp, ps, cr, ldc, cols, store, br); break;
            case 5: tile256(5, 1, ta, k, ar, lda, pp, ps, cr, ldc, cols, store, br); break;
            default: tile256(6, 1, ta, k, ar, lda, pp, ps, cr, ldc, cols, store, br); break;
            }
        }
        p += wide;
    }
}

AVX2 static void block256(int ta, int m, int n, int k, const float *a, int lda,
                          const float *packed, size_t ps, float *c, int ldc, int p0, int p1,
                          int store, const float *bias)
{
    if (ta) block256_t(1, m, n, k, a, lda, packed, ps, c, ldc, p0, p1, store, bias);
    else block256_t(0, m, n, k, a, lda, packed, ps, c, ldc, p0, p1, store, bias);
}

#endif /* UR_HAVE_KERNELS */

/* One product; the pool hands out ranges of panels. */
typedef struct rgemm_job {
    int m, n, k, lda, ldc, id, ta, store;
    const float *a, *packed;
    float *c;
    size_t ps;         /* floats from one panel to the next: k NR */
    const float *bias; /* with store: C = bias + the product (each row), or NULL */
    int by_rows;       /* the pool's items are groups of ROW_GROUP rows (all panels), not panels */
    const struct rgemm_job *also; /* a second product over the same packed op(Y), run panel by
                                     panel beside this one (its panel in L1 for both), or NULL */
} rgemm_job;

/* Rows per item when a product is split by rows: whole tiles of either kernel (8 or 6 rows). */
#define ROW_GROUP 24

static void panels_range(const rgemm_job *j, int p0, int p1);

static void rgemm_range(void *ctx, int p0, int p1)
{
    const rgemm_job *j = ctx;
    if (!j->also) {
        panels_range(j, p0, p1);
        return;
    }
    for (int p = p0; p < p1; p++) {
        panels_range(j, p, p + 1);
        panels_range(j->also, p, p + 1);
    }
}

static void panels_range(const rgemm_job *j, int p0, int p1)
{
#ifdef UR_HAVE_KERNELS
    if (j->by_rows) { /* rows [r0, r1), every panel */
        int r0 = p0 * ROW_GROUP, r1 = p1 * ROW_GROUP < j->m ? p1 * ROW_GROUP : j->m;
        rgemm_job part = *j;
        part.by_rows = 0;
        part.m = r1 - r0;
        part.a = j->ta == 2 ? j->a + (size_t)r0 * j->k
                 : j->ta ? j->a + r0 : j->a + (size_t)r0 * j->lda;
        part.c = j->c + (size_t)r0 * j->ldc;
        panels_range(&part, 0, (j->n + panel_width() - 1) / panel_width());
        return;
    }
    if (j->id == K_AVX512)
        block512(j->ta, j->m, j->n, j->k, j->a, j->lda, j->packed, j->ps, j->c, j->ldc, p0, p1,
                 j->store, j->bias);
    else
        block256(j->ta, j->m, j->n, j->k, j->a, j->lda, j->packed, j->ps, j->c, j->ldc, p0, p1,
                 j->store, j->bias);
#else
    (void)j;
    (void)p0;
    (void)p1;
#endif
}

/* Below this many multiply-adds a product runs on one thread: the hand-over costs more. */
#define PARALLEL_MIN (1L << 15)

/* A per-step product is split over the threads when it has at least STEP_PARALLEL_MIN
 * multiply-adds (about 5 us on one core) or a weight of at least STEP_PARALLEL_WEIGHT floats
 * (a batch of a few rows streams its weight from L2, and two cores halve that); below both the
 * hand-over costs more than the half it saves. Measured (bench_dnnl --impl ours, 2 threads,
 * two builds alternated): lstm-256 at batch 1 (1 x 1024 x 256) split 2.89 -> 2.33 ms;
 * rnn-128 (32 x 128 x 128 forward, 32 x 192 x 128 backward with dh and dx in one hand-over)
 * on one thread below 2^20 4.09 ms best and 4.28 median of 6, split from 2^18 3.61 and 4.00
 * (with three hand-overs per backward step, before, one thread was the faster: 3.59 against
 * 3.97). */
#define STEP_PARALLEL_MIN (1L << 18)
#define STEP_PARALLEL_WEIGHT (1L << 17)

int ur_rgemm_panels(int n) { return (n + panel_width() - 1) / panel_width(); }

int ur_rgemm_step_grain(int m, int n, int k)
{
    if ((long)m * n * k < STEP_PARALLEL_MIN && (long)k * n < STEP_PARALLEL_WEIGHT)
        return 0;
    return m <= 2 ? 4 : 1; /* ranges of whole tiles: a tile spans 4 panels at one or two rows */
}

void ur_rgemm_range(int m, int n, int k, const float *a, int lda, const float *packed, float *c,
                    int ldc, int p0, int p1)
{
    int nr = panel_width();
    rgemm_job j = {m, n, k, lda, ldc, kernel(), 0, 0, a, packed, c, (size_t)k * nr, NULL, 0, NULL};
    if (j.id == K_NONE || m <= 0 || n <= 0 || k <= 0 || p0 >= p1) return;
    panels_range(&j, p0, p1);
}

void ur_rgemm(int m, int n, int k, const float *a, int lda, const float *packed, float *c,
              int ldc)
{
    int nr = panel_width(), panels = (n + nr - 1) / nr;
    rgemm_job j = {m, n, k, lda, ldc, kernel(), 0, 0, a, packed, c, (size_t)k * nr, NULL, 0, NULL};
    if (j.id == K_NONE || m <= 0 || n <= 0 || k <= 0) return;
    int grain = ur_rgemm_step_grain(m, n, k);
    ur_pool_for(panels, grain ? grain : panels, rgemm_range, &j);
}

/* ---- Any product through the same kernels ------------------------------------------------
 * C = op(X) op(Y) + beta C (beta 0 or 1): op(Y) is packed into the calling thread's buffer
 * (grown to the largest product seen, so a training loop allocates only in its first step),
 * then the tiles run as above; op(X) = X^T is read in place (a tile's rows of X^T at one k are
 * consecutive floats of X). Each sum still runs over k in order, one FMA per term. */
/* The inner size is cut into blocks of KC: op(Y)'s block (KC x n, packed) stays in L2, a panel's
 * part of it in L1, and each sum is KC terms added into C. */
#ifndef KC
#define KC 256
#endif

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local float *scratch;
static _Thread_local size_t scratch_floats;

static void make_scratch_key(void) { (void)pthread_key_create(&scratch_key, free); }

static float *scratch_for(size_t floats)
{
    if (floats <= scratch_floats) return scratch;
    pthread_once(&scratch_once, make_scratch_key);
    float *p = malloc(floats * sizeof *p);
    if (!p) return NULL;
    free(scratch);
    scratch = p;
    scratch_floats = floats;
    (void)pthread_setspecific(scratch_key, p); /* freed when the thread ends */
    return p;
}

/* op(X)'s block (m x kb, of X or of X^T when tx) in tiles of 8 rows for the AVX-512 kernel:
 * tile t holds rows [8t, 8t + 8) as kb groups of 8 (zero past row m), so that a tile reads
 * one stream of consecutive floats instead of 8 rows of X (or kb rows of X^T, 32 bytes of
 * each 64-byte line, which beside a 32 KiB panel overflow L1). */
typedef struct pack_rows_job {
    const float *x;
    int ldx, tx, m, kb;
    float *out;
} pack_rows_job;

#ifdef UR_HAVE_KERNELS
/* d[q 8 + i] = x[i ldx + q] for i, q < 8: an 8 x 8 block of X transposed in registers. */
AVX512 static void transpose8(const float *x, int ldx, float *d)
{
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(x + (size_t)i * ldx);
    for (int i = 0; i < 8; i += 2) { /* pairs of rows interleaved */
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) { /* then pairs of pairs: columns of 4 rows per lane */
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) { /* lanes: rows 0-3 beside rows 4-7 */
        t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
        t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
    }
    for (int q = 0; q < 8; q++) _mm256_storeu_ps(d + 8 * q, t[q]);
}
#endif

static void pack_rows_range(void *ctx, int t0, int t1)
{
    const pack_rows_job *j = ctx;
    for (int t = t0; t < t1; t++) {
        float *d = j->out + (size_t)t * 8 * (size_t)j->kb;
        int rows = j->m - 8 * t < 8 ? j->m - 8 * t : 8, q = 0;
        if (rows == 8 && j->tx) { /* 8 consecutive floats of each row of X^T */
            for (; q < j->kb; q++, d += 8) memcpy(d, j->x + (size_t)q * j->ldx + 8 * t, 32);
            continue;
        }
#ifdef UR_HAVE_KERNELS
        if (rows == 8) /* X's 8 rows, 8 columns at a time */
            for (; q + 8 <= j->kb; q += 8, d += 64)
                transpose8(j->x + (size_t)8 * t * j->ldx + q, j->ldx, d);
#endif
        for (; q < j->kb; q++, d += 8) {
            if (j->tx) {
                const float *src = j->x + (size_t)q * j->ldx + 8 * t;
                for (int i = 0; i < rows; i++) d[i] = src[i];
            } else {
                for (int i = 0; i < rows; i++) d[i] = j->x[(size_t)(8 * t + i) * j->ldx + q];
            }
            for (int i = rows; i < 8; i++) d[i] = 0.0f;
        }
    }
}

/* One or two row blocks of op(X) and of C: C_i = op(X_i) op(Y) (+ beta C_i), m_i rows each. */
typedef struct gemm_rows {
    const float *x;
    int ldx, m;
    float *c;
    int ldc;
} gemm_rows;

/* C_i = op(X_i) op(Y) + beta C_i for each of nrows (1 or 2) row blocks, op(Y) packed once for
 * all of them; with bias (beta 0, one block) C = bias + op(X) op(Y) for every row. */
static int gemm(int tx, int ty, int nrows, const gemm_rows *rows, int n, int k, const float *y,
                int ldy, float beta, const float *bias)
{
    int id = kernel(), m = 0;
    for (int i = 0; i < nrows; i++) m += rows[i].m;
    if (id == K_NONE || m <= 0 || n <= 0 || k <= 0 || (beta != 0.0f && beta != 1.0f)) return -1;
    int kc = k < KC ? k : KC;
    /* AVX-512: op(X)'s block packed too, where each tile of it is read by 8 panels or more over
     * a long enough k (measured, bench/bench_rgemm: 1024^3 1.27x, lstm-256's h^T dZ 1.07x;
     * with 2 panels, dZ Wx^T, 0.70x, and over k = 64, x Wx, 0.92x, so not there) */
    int pack_x = id == K_AVX512 && m > 8 && n >= 256 && kc >= 128;
    /* packed op(X): block i's tiles from row x_at[i] on (the blocks' rows rounded up to 8) */
    size_t y_floats = ur_rgemm_packed_floats(kc, n), x_rows = 0, x_at[2] = {0, 0};
    for (int i = 0; i < nrows && pack_x; i++) {
        x_at[i] = x_rows;
        x_rows += (size_t)(rows[i].m + 7) / 8 * 8;
    }
    size_t x_floats = x_rows * (size_t)kc;
    float *packed = scratch_for(y_floats + x_floats);
    if (!packed) return -1;
    float *xp = packed + y_floats;
    int nr = panel_width(), panels = (n + nr - 1) / nr;
    int grain = m <= 2 && nrows == 1 ? 4 : 1;
    if ((long)m * n * kc < PARALLEL_MIN) grain = panels;
    /* few panels for the threads (a narrow C, e.g. a head's logits): split the rows instead */
    int threads = ur_pool_threads(), groups = (m + ROW_GROUP - 1) / ROW_GROUP;
    int by_rows = nrows == 1 && threads > 1 && panels < 4 * threads && groups >= 4 * threads;
    for (int k0 = 0; k0 < k; k0 += kc) {
        int kb = k - k0 < kc ? k - k0 : kc;
        /* rows [k0, k0 + kb) of op(Y): of Y, or its columns when ty */
        ur_rgemm_pack(ty ? y + k0 : y + (size_t)k0 * ldy, ldy, ty, kb, n, packed);
        rgemm_job j[2];
        for (int i = nrows - 1; i >= 0; i--) {
            const gemm_rows *r = &rows[i];
            const float *xb = tx ? r->x + (size_t)k0 * r->ldx : r->x + k0;
            if (pack_x) {
                pack_rows_job pj = {xb, r->ldx, tx, r->m, kb, xp + x_at[i] * kb};
                ur_pool_for((r->m + 7) / 8, 1, pack_rows_range, &pj);
            }
            j[i] = (rgemm_job){r->m, n, kb, r->ldx, r->ldc, id, pack_x ? 2 : tx != 0,
                               beta == 0.0f && k0 == 0, pack_x ? xp + x_at[i] * kb : xb,
                               packed, r->c, (size_t)kb * nr, bias, by_rows,
                               i + 1 < nrows ? &j[i + 1] : NULL};
        }
        if (by_rows) ur_pool_for(groups, 1, rgemm_range, &j[0]);
        else ur_pool_for(panels, grain, rgemm_range, &j[0]);
    }
    return 0;
}

int ur_rgemm_gemm_bias(int tx, int ty, int m, int n, int k, const float *x, int ldx,
                       const float *y, int ldy, const float *bias, float *c, int ldc)
{
    gemm_rows r = {x, ldx, m, c, ldc};
    return gemm(tx, ty, 1, &r, n, k, y, ldy, 0.0f, bias);
}

int ur_rgemm_gemm(int tx, int ty, int m, int n, int k, const float *x, int ldx, const float *y,
                  int ldy, float beta, float *c, int ldc)
{
    gemm_rows r = {x, ldx, m, c, ldc};
    return gemm(tx, ty, 1, &r, n, k, y, ldy, beta, NULL);
}

int ur_rgemm_gemm_tn2(int m1, int m2, int n, int k, const float *x1, int ldx1, const float *x2,
                      int ldx2, const float *y, int ldy, float *c1, int ldc1, float *c2, int ldc2)
{
    if (m1 <= 0 || m2 <= 0) return -1;
    gemm_rows r[2] = {{x1, ldx1, m1, c1, ldc1}, {x2, ldx2, m2, c2, ldc2}};
    return gemm(1, 0, 2, r, n, k, y, ldy, 1.0f, NULL);
}

char *openblas_get_corename(void);

static int own_gemm = -1;
static pthread_once_t own_once = PTHREAD_ONCE_INIT;

/* Which products are ours: 1 all of them, when OpenBLAS's kernel is narrower than ours (its
 * Haswell kernel on an AVX-512 CPU, e.g. under OPENBLAS_CORETYPE=Haswell, or a pre-AVX2 one);
 * 2 those under 2^26 multiply-adds, when both are as wide, for there OpenBLAS's per-call
 * packing and set-up weigh more than its larger blocking gains (measured, bench/run-dnnl):
 * with AVX-512 rnn-128's products took 10% less CPU time as ours, with AVX2 on Zen 3 35% less
 * (rnn-128 0.70 -> 0.98 of oneDNN), while the larger ones of lstm-256 and lstm-512x2 were 5%
 * and 14% faster in OpenBLAS. UR_GEMM=blas|own forces none or all. */
static void choose_own(void)
{
    const char *want = getenv("UR_GEMM"), *core = openblas_get_corename();
    char low[64] = "";
    for (size_t i = 0; core && core[i] && i + 1 < sizeof low; i++)
        low[i] = (char)tolower((unsigned char)core[i]);
    /* OpenBLAS's width: its AVX-512 cores, its AVX2 ones, or narrower (K_NONE) */
    int blas = K_NONE;
    if (strstr(low, "skylakex") || strstr(low, "cooperlake") || strstr(low, "sapphire"))
        blas = K_AVX512;
    else if (strstr(low, "haswell") || strstr(low, "zen") || strstr(low, "skylake") ||
             strstr(low, "excavator"))
        blas = K_AVX2;
    own_gemm = kernel() == K_NONE ? 0 : blas < kernel() ? 1 : 2;
    if (want && strcmp(want, "blas") == 0) own_gemm = 0;
    else if (want && strcmp(want, "own") == 0) own_gemm = kernel() != K_NONE;
}

/* 1 when ours runs products at all and this one is large enough for its packing to pay. */
static int own_sized(int m, int n, int k)
{
    pthread_once(&own_once, choose_own);
    return own_gemm && m >= 8 && n >= 8 && k >= 8 && (double)m * n * k >= (double)(1 << 16);
}

int ur_rgemm_gemm_preferred(int m, int n, int k)
{
    if (!own_sized(m, n, k)) return 0;
    return own_gemm != 2 || (double)m * n * k < (double)(1 << 26);
}

int ur_rgemm_gemm_tn2_preferred(int m1, int m2, int n, int k)
{
    if (!own_sized(m1 + m2, n, k)) return 0;
    /* With AVX-512 ours packs dZ once for both, ahead of OpenBLAS's two calls also where the
     * rule above gives one product to OpenBLAS (bench_rgemm, one thread: lstm-256's x^T dZ and
     * h^T dZ 1.13-1.19x, lstm-512's 1.00-1.03x); with AVX2, not measured, the rule above. */
    return ur_rgemm_gemm_preferred(m1 + m2, n, k) || kernel() == K_AVX512;
}

const char *ur_rgemm_gemm_path(void)
{
    pthread_once(&own_once, choose_own);
    if (!own_gemm) return "openblas";
    if (own_gemm == 2)
        return kernel() == K_AVX512 ? "ours-avx512-small+openblas" : "ours-avx2-small+openblas";
    return kernel() == K_AVX512 ? "ours-avx512" : "ours-avx2";
}
