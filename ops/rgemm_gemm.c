/* Any product through the recurrent product's kernels (ops/rgemm.h, ops/rgemm.c), and which
 * products go to ours and which to OpenBLAS. */
#define _POSIX_C_SOURCE 200809L
#include "ops/rgemm.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ops/pool.h"
#include "ops/rgemm_job.h"

#ifdef UR_HAVE_KERNELS
#include <immintrin.h>
#endif

/* C = op(X) op(Y) + beta C (beta 0 or 1): op(Y) is packed into the calling thread's buffer
 * (grown to the largest product seen, so a training loop allocates only in its first step),
 * then the tiles run as for a packed weight; op(X) is packed too for the larger products (below)
 * or read in place (op(X) = X^T: a tile's rows of X^T at one k are consecutive floats of X).
 * Each sum still runs over k in order, one FMA per term. */
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

/* op(X)'s block (m x kb, of X or of X^T when tx) in tiles of g rows (8 for the AVX-512 kernel,
 * 6 for AVX2): tile t holds rows [g t, g t + g) as kb groups of g (zero past row m), so that a
 * tile reads one stream of consecutive floats instead of g rows of X (or kb rows of X^T, g
 * floats of each 64-byte line, which beside a 32 KiB panel overflow L1). */
typedef struct pack_rows_job {
    const float *x;
    int ldx, tx, m, kb;
    float *out;
    int g; /* rows per tile: 8 (AVX-512) or 6 (AVX2) */
} pack_rows_job;

#ifdef UR_HAVE_KERNELS
/* d[q 8 + i] = x[i ldx + q] for i, q < 8: an 8 x 8 block of X transposed in registers. */
__attribute__((target("avx2"))) static void transpose8(const float *x, int ldx, float *d)
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
    const int g = j->g;
    for (int t = t0; t < t1; t++) {
        float *d = j->out + (size_t)t * g * (size_t)j->kb;
        int rows = j->m - g * t < g ? j->m - g * t : g, q = 0;
        if (rows == g && j->tx) { /* g consecutive floats of each row of X^T */
            for (; q < j->kb; q++, d += g)
                memcpy(d, j->x + (size_t)q * j->ldx + (size_t)g * t, sizeof *d * (size_t)g);
            continue;
        }
#ifdef UR_HAVE_KERNELS
        if (rows == 8 && g == 8) /* X's 8 rows, 8 columns at a time */
            for (; q + 8 <= j->kb; q += 8, d += 64)
                transpose8(j->x + (size_t)8 * t * j->ldx + q, j->ldx, d);
#endif
        for (; q < j->kb; q++, d += g) {
            if (j->tx) {
                const float *src = j->x + (size_t)q * j->ldx + (size_t)g * t;
                for (int i = 0; i < rows; i++) d[i] = src[i];
            } else {
                for (int i = 0; i < rows; i++) d[i] = j->x[(size_t)(g * t + i) * j->ldx + q];
            }
            for (int i = rows; i < g; i++) d[i] = 0.0f;
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
    int id = ur_rgemm_kernel_id(), m = 0;
    for (int i = 0; i < nrows; i++) m += rows[i].m;
    if (id == K_NONE || m <= 0 || n <= 0 || k <= 0 || (beta != 0.0f && beta != 1.0f)) return -1;
    int kc = k < KC ? k : KC;
    /* op(X)'s block packed too (tiles of 8 rows with AVX-512, 6 with AVX2), where each tile of
     * it is read by 8 panels or more over a long enough k (measured, bench/bench_rgemm: AVX-512
     * 1024^3 1.27x, lstm-256's h^T dZ 1.07x, with 2 panels, dZ Wx^T, 0.70x, and over k = 64,
     * x Wx, 0.92x, so not there; AVX2 on Zen 3 with C prefetched, 1024^3 0.72 -> 0.90 of
     * OpenBLAS, lstm-512's [x h]^T dZ 0.73 -> 0.91, x^T,h^T dZ 0.70 -> 0.92) */
    int pack_x = m > 8 && n >= 256 && kc >= 128;
    const int g = ur_rgemm_tile_rows();
    /* packed op(X): block i's tiles from row x_at[i] on (the blocks' rows rounded up to g) */
    size_t y_floats = ur_rgemm_packed_floats(kc, n), x_rows = 0, x_at[2] = {0, 0};
    for (int i = 0; i < nrows && pack_x; i++) {
        x_at[i] = x_rows;
        x_rows += (size_t)(rows[i].m + g - 1) / g * g;
    }
    size_t x_floats = x_rows * (size_t)kc;
    float *packed = scratch_for(y_floats + x_floats);
    if (!packed) return -1;
    float *xp = packed + y_floats;
    int nr = ur_rgemm_panel_width(), panels = (n + nr - 1) / nr;
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
                pack_rows_job pj = {xb, r->ldx, tx, r->m, kb, xp + x_at[i] * kb, g};
                ur_pool_for((r->m + g - 1) / g, 1, pack_rows_range, &pj);
            }
            j[i] = (rgemm_job){r->m, n, kb, r->ldx, r->ldc, id, pack_x ? 2 : tx != 0,
                               beta == 0.0f && k0 == 0, pack_x ? xp + x_at[i] * kb : xb,
                               packed, r->c, (size_t)kb * nr, bias, by_rows,
                               i + 1 < nrows ? &j[i + 1] : NULL};
        }
        if (by_rows) ur_pool_for(groups, 1, ur_rgemm_job_range, &j[0]);
        else ur_pool_for(panels, grain, ur_rgemm_job_range, &j[0]);
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
    own_gemm = ur_rgemm_kernel_id() == K_NONE ? 0 : blas < ur_rgemm_kernel_id() ? 1 : 2;
    if (want && strcmp(want, "blas") == 0) own_gemm = 0;
    else if (want && strcmp(want, "own") == 0) own_gemm = ur_rgemm_kernel_id() != K_NONE;
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
    return ur_rgemm_gemm_preferred(m1 + m2, n, k) || ur_rgemm_kernel_id() == K_AVX512;
}

const char *ur_rgemm_gemm_path(void)
{
    pthread_once(&own_once, choose_own);
    if (!own_gemm) return "openblas";
    if (own_gemm == 2)
        return ur_rgemm_kernel_id() == K_AVX512 ? "ours-avx512-small+openblas" : "ours-avx2-small+openblas";
    return ur_rgemm_kernel_id() == K_AVX512 ? "ours-avx512" : "ours-avx2";
}
