/* Allocation counting for the benchmarks: the bench program defines malloc, calloc, realloc,
 * free, aligned_alloc, posix_memalign and memalign itself (forwarding to glibc's __libc_*),
 * so every call from libunroll, OpenBLAS and the program lands here. Between start and stop
 * each call is counted and its caller's address recorded; stop sorts the callers by the
 * shared object they lie in (BENCH_ALLOC_VERBOSE=1 in the environment prints each caller).
 * Under AddressSanitizer the hook is compiled out. */
#ifndef BENCH_ALLOC_COUNT_H
#define BENCH_ALLOC_COUNT_H

/* Calls counted between bench_alloc_start and bench_alloc_stop, by where the caller lies. */
typedef struct bench_alloc_counts {
    long ours;      /* the bench program or libunroll */
    long openblas;  /* libopenblas (its buffers, its threads) */
    long libc;      /* glibc on someone's behalf (e.g. qsort, stdio) */
    long other;     /* anything else (or not resolvable) */
    long total;
} bench_alloc_counts;

/* 1 if the hook is compiled in (not under AddressSanitizer) and sees the calls (not under
 * valgrind, whose malloc replaces ours). */
int bench_alloc_available(void);
/* Starts counting (resets the counters). */
void bench_alloc_start(void);
/* Stops counting and classifies the recorded callers into c. */
void bench_alloc_stop(bench_alloc_counts *c);
/* Adds b into a. */
void bench_alloc_add(bench_alloc_counts *a, const bench_alloc_counts *b);

#endif
