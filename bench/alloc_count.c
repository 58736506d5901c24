/* Counting malloc/free hook: the program's own definitions interpose on glibc's for every
 * shared object (libunroll, OpenBLAS, libc itself), and forward to glibc's __libc_* entry
 * points. While counting, each call bumps an atomic counter and stores its return address in
 * a fixed table (no allocation inside the allocator); stop resolves the addresses with dladdr
 * afterwards, outside the counted window. */
#define _GNU_SOURCE
#include "bench/alloc_count.h"

#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define BENCH_NO_HOOK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BENCH_NO_HOOK 1
#endif
#endif

void bench_alloc_add(bench_alloc_counts *a, const bench_alloc_counts *b)
{
    a->ours += b->ours;
    a->openblas += b->openblas;
    a->libc += b->libc;
    a->other += b->other;
    a->total += b->total;
}

#ifdef BENCH_NO_HOOK

int bench_alloc_available(void) { return 0; }
void bench_alloc_start(void) {}
void bench_alloc_stop(bench_alloc_counts *c) { memset(c, 0, sizeof *c); }

#else

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cblas.h>
#include "graph/ur_graph.h"

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t k, size_t n);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);
void *__libc_memalign(size_t align, size_t n);

#define MAX_CALLERS 4096

static atomic_int counting;
static atomic_long n_calls;
static void *callers[MAX_CALLERS];

static inline void note(void *ret)
{
    if (!atomic_load_explicit(&counting, memory_order_relaxed)) return;
    long k = atomic_fetch_add(&n_calls, 1);
    if (k < MAX_CALLERS) callers[k] = ret;
}

void *malloc(size_t n)
{
    note(__builtin_return_address(0));
    return __libc_malloc(n);
}

void *calloc(size_t k, size_t n)
{
    note(__builtin_return_address(0));
    return __libc_calloc(k, n);
}

void *realloc(void *p, size_t n)
{
    note(__builtin_return_address(0));
    return __libc_realloc(p, n);
}

void free(void *p)
{
    if (p) note(__builtin_return_address(0));
    __libc_free(p);
}

void *aligned_alloc(size_t align, size_t n)
{
    note(__builtin_return_address(0));
    return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
    note(__builtin_return_address(0));
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    note(__builtin_return_address(0));
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

/* 1 if the hook really sees the calls: under valgrind, for one, its own malloc replaces ours.
 * Probed once with a malloc/free pair through volatile pointers (so none is elided). */
int bench_alloc_available(void)
{
    static int probed = -1;
    if (probed < 0) {
        void *(*volatile get)(size_t) = malloc;
        void (*volatile put)(void *) = free;
        atomic_store(&n_calls, 0);
        atomic_store(&counting, 1);
        put(get(16));
        atomic_store(&counting, 0);
        probed = atomic_load(&n_calls) == 2;
    }
    return probed;
}

void bench_alloc_start(void)
{
    atomic_store(&n_calls, 0);
    atomic_store(&counting, 1);
}

/* The load address of the object holding function f. */
static void *base_of(const void *f)
{
    Dl_info info;
    return dladdr(f, &info) ? info.dli_fbase : NULL;
}

/* With BENCH_ALLOC_VERBOSE set, prints each caller once per stop (function and object). */
static void print_callers(long n)
{
    for (long k = 0; k < n && k < MAX_CALLERS; k++) {
        int seen = 0;
        for (long j = 0; j < k && !seen; j++) seen = callers[j] == callers[k];
        if (seen) continue;
        Dl_info info;
        if (dladdr(callers[k], &info))
            fprintf(stderr, "  alloc caller %p: %s in %s\n", callers[k],
                    info.dli_sname ? info.dli_sname : "?", info.dli_fname ? info.dli_fname : "?");
        else
            fprintf(stderr, "  alloc caller %p: unknown\n", callers[k]);
    }
}

void bench_alloc_stop(bench_alloc_counts *c)
{
    atomic_store(&counting, 0);
    memset(c, 0, sizeof *c);
    long n = atomic_load(&n_calls);
    c->total = n;
    if (n > 0 && getenv("BENCH_ALLOC_VERBOSE")) print_callers(n);
    void *self = base_of((const void *)(uintptr_t)bench_alloc_start);
    void *lib = base_of((const void *)(uintptr_t)ur_tape_new);
    void *blas = base_of((const void *)(uintptr_t)cblas_sgemm);
    for (long k = 0; k < n; k++) {
        if (k >= MAX_CALLERS) { c->other += n - k; break; }
        Dl_info info;
        if (!dladdr(callers[k], &info)) { c->other++; continue; }
        if (info.dli_fbase == self || info.dli_fbase == lib) c->ours++;
        else if (info.dli_fbase == blas) c->openblas++;
        else if (info.dli_fname && strstr(info.dli_fname, "libc.so")) c->libc++;
        else c->other++;
    }
}

#endif
