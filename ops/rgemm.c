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

#include "ops/isa.h"
#include "ops/pool.h"
#include "ops/rgemm_job.h"

#ifdef UR_HAVE_KERNELS
#include <immintrin.h>
#endif

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

int ur_rgemm_kernel_id(void) { return kernel(); }

int ur_rgemm_panel_width(void) { return panel_width(); }

int ur_rgemm_tile_rows(void) { return kernel() == K_AVX512 ? 8 : 6; }

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
    /* C's rows fetched while the sums run: a tall product's C (rows 4 KiB apart, out of cache)
     * otherwise stalls the stores (measured, bench_rgemm one thread on Zen 3: x Wx 2048 x 1024
     * x 64 0.56 -> 0.82 of OpenBLAS; the per-step products unchanged) */
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)i * ldc + 16 * np - 1), _MM_HINT_T0);
    }
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
        const int tta = ta != 0, tlda = ta == 2 ? 6 : lda; /* packed: read as A^T of 6 columns */
        for (int r = 0; r < m; r += 6) {
            int mr = m - r < 6 ? m - r : 6;
            const float *ar = ta == 2 ? a + (size_t)r * k : ta ? a + r : a + (size_t)r * lda;
            float *cr = c + (size_t)r * ldc + (size_t)p * 16;
            const float *br = bias ? bias + (size_t)p * 16 : NULL;
            if (wide == 4) {
                tile256(1, 4, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br);
                continue;
            }
            if (wide == 2) {
                tile256(2, 2, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br);
                continue;
            }
            switch (mr) {
            case 1: tile256(1, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            case 2: tile256(2, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            case 3: tile256(3, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            case 4: tile256(4, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            case 5: tile256(5, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            default: tile256(6, 1, tta, k, ar, tlda, pp, ps, cr, ldc, cols, store, br); break;
            }
        }
        p += wide;
    }
}

AVX2 static void block256(int ta, int m, int n, int k, const float *a, int lda,
                          const float *packed, size_t ps, float *c, int ldc, int p0, int p1,
                          int store, const float *bias)
{
    if (ta == 2) block256_t(2, m, n, k, a, lda, packed, ps, c, ldc, p0, p1, store, bias);
    else if (ta) block256_t(1, m, n, k, a, lda, packed, ps, c, ldc, p0, p1, store, bias);
    else block256_t(0, m, n, k, a, lda, packed, ps, c, ldc, p0, p1, store, bias);
}

#endif /* UR_HAVE_KERNELS */

static void panels_range(const rgemm_job *j, int p0, int p1);

void ur_rgemm_job_range(void *ctx, int p0, int p1)
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
    ur_pool_for(panels, grain ? grain : panels, ur_rgemm_job_range, &j);
}
