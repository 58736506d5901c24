/* The worker pool of ops/pool.h.
 *
 * One run: the caller (holding `busy`) stores fn and ctx, then the range word `work`
 * (the run's tag, and the items [lo, hi) still to take), then bumps `gen` to wake the
 * workers. Every thread takes ranges by compare-and-swap on `work`: the caller raises lo, the
 * workers lower hi; a swap fails if another thread took items first or, for a worker, if the
 * tag is no longer its run's (the caller has returned: fn and ctx belong to nobody). A thread
 * adds the items it ran to `done`; the caller returns when done reaches n, so ctx lives as long
 * as any worker can still run a range of it.
 *
 * Sleeping without a lost wake-up: a worker increments `sleepers` and re-reads gen under
 * `lock` before it waits; the caller bumps gen, then reads sleepers and, if any, broadcasts
 * under `lock`. Both are sequentially consistent, so either the worker sees the new gen or
 * the caller sees the sleeper (and then cannot broadcast before the worker waits).
 */
#define _POSIX_C_SOURCE 200809L
#include "ops/pool.h"

#include "ops/ur_ops.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

/* work: tag (24 bits) | lo (20 bits) | hi (20 bits) */
#define ITEM_BITS 20
#define ITEM_MASK ((1u << ITEM_BITS) - 1u)
#define MAX_ITEMS ((int)ITEM_MASK)
#define PACK(tag, lo, hi) (((uint64_t)(tag) << (2 * ITEM_BITS)) | ((uint64_t)(lo) << ITEM_BITS) | (uint64_t)(hi))
#define TAG(w) ((uint32_t)((w) >> (2 * ITEM_BITS)) & 0xffffffu)
#define LO(w) ((int)(((w) >> ITEM_BITS) & ITEM_MASK))
#define HI(w) ((int)((w) & ITEM_MASK))

#define SPIN_NS 50000L     /* a worker spins for 50 us after a run ... */
#define YIELD_NS 1000000L  /* ... then yields the core until 1 ms, then sleeps */

static struct {
    pthread_mutex_t busy;   /* held by the thread that runs on the pool */
    pthread_mutex_t lock;   /* guards sleeping */
    pthread_cond_t wake;
    atomic_uint gen;        /* bumped once per run: wakes the workers */
    atomic_int sleepers;
    _Atomic uint64_t work;  /* the run's tag and the items not yet taken */
    atomic_int done;        /* items finished in this run */
    ur_pool_fn fn;          /* the current run's, written before work and gen */
    void *ctx;
    atomic_int grain;       /* read by a worker before its swap tells whether the run is its */
    int workers;            /* worker threads started */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          0, 0, 0, 0, NULL, NULL, 1, 0};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* The child of a fork has none of the parent's workers: it starts its own when it needs them. */
static void pool_after_fork_child(void)
{
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    atomic_store(&pool.sleepers, 0);
    pool.workers = 0;
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, pool_after_fork_child); }

/* Takes a range of run tag from the front (front = 1) or the back; 0 when none is left. */
static int take(uint32_t tag, int front, int *b, int *e)
{
    uint64_t w = atomic_load_explicit(&pool.work, memory_order_acquire);
    for (;;) {
        int lo = LO(w), hi = HI(w);
        if (TAG(w) != tag || lo >= hi) return 0;
        int g = atomic_load_explicit(&pool.grain, memory_order_relaxed);
        int nlo = front ? (hi - lo > g ? lo + g : hi) : lo;
        int nhi = front ? hi : (hi - lo > g ? hi - g : lo);
        if (atomic_compare_exchange_weak_explicit(&pool.work, &w, PACK(tag, nlo, nhi),
                                                  memory_order_acq_rel, memory_order_acquire)) {
            *b = front ? lo : nhi;
            *e = front ? nlo : hi;
            return 1;
        }
    }
}

/* Runs ranges of run tag until none is left. */
static void work_on(uint32_t tag, int front)
{
    int b, e;
    while (take(tag, front, &b, &e)) {
        pool.fn(pool.ctx, b, e); /* the run is still on: the caller waits for these items */
        atomic_fetch_add_explicit(&pool.done, e - b, memory_order_release);
    }
}

/* Waits until gen differs from seen; returns the new value. */
static unsigned wait_for_work(unsigned seen)
{
    long t0 = now_ns();
    for (unsigned i = 1;; i++) {
        unsigned g = atomic_load_explicit(&pool.gen, memory_order_acquire);
        if (g != seen) return g;
        if (i % 256 == 0) {
            long dt = now_ns() - t0;
            if (dt > YIELD_NS) break;
            if (dt > SPIN_NS) sched_yield();
        }
        cpu_relax();
    }
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add(&pool.sleepers, 1);
    unsigned g;
    while ((g = atomic_load(&pool.gen)) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
    atomic_fetch_sub(&pool.sleepers, 1);
    pthread_mutex_unlock(&pool.lock);
    return g;
}

static void *worker_main(void *arg)
{
    unsigned seen = (unsigned)(uintptr_t)arg;
    for (;;) {
        seen = wait_for_work(seen);
        work_on(seen & 0xffffffu, 0);
    }
    return NULL;
}

/* Starts workers until there are want - 1 (with busy held); returns the threads available. */
static int start_workers(int want)
{
    if (pool.workers + 1 >= want) return want;
    pthread_once(&atfork_once, register_atfork);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals go to the caller's threads */
    while (pool.workers + 1 < want) {
        pthread_attr_t attr;
        pthread_t th;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&th, &attr, worker_main,
                                (void *)(uintptr_t)atomic_load(&pool.gen));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool.workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool.workers + 1;
}

/* ---- The thread count: set once, never flipped per call ---------------------------------- */

static atomic_int n_threads; /* the pool's threads; 0 until threads_init */
static pthread_once_t threads_once = PTHREAD_ONCE_INIT;

static int clamp_threads(int n) { return n < 1 ? 1 : n > UR_POOL_MAX ? UR_POOL_MAX : n; }

/* Once per process, at the first product or ur_set_threads: the pool takes OpenBLAS's thread
 * count (OPENBLAS_NUM_THREADS, or what the program set before), and OpenBLAS is set to one
 * thread for good, since ops/blas.c splits large products over the pool instead. */
static void threads_init(void)
{
    int n = openblas_get_num_threads();
    openblas_set_num_threads(1);
    int unset = 0;
    atomic_compare_exchange_strong(&n_threads, &unset, clamp_threads(n));
}

int ur_pool_threads(void)
{
    pthread_once(&threads_once, threads_init);
    return atomic_load_explicit(&n_threads, memory_order_relaxed);
}

int ur_set_threads(int n)
{
    pthread_once(&threads_once, threads_init);
    atomic_store(&n_threads, clamp_threads(n));
    return clamp_threads(n);
}

int ur_threads(void) { return ur_pool_threads(); }

void ur_pool_for(int n, int grain, ur_pool_fn fn, void *ctx)
{
    ur_pool_for_threads(ur_pool_threads(), n, grain, fn, ctx);
}

void ur_pool_for_threads(int threads, int n, int grain, ur_pool_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (threads > UR_POOL_MAX) threads = UR_POOL_MAX;
    if (threads < 2 || n <= grain || n > MAX_ITEMS || pthread_mutex_trylock(&pool.busy) != 0) {
        fn(ctx, 0, n);
        return;
    }
    if (start_workers(threads) < 2) {
        pthread_mutex_unlock(&pool.busy);
        fn(ctx, 0, n);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    atomic_store_explicit(&pool.grain, grain, memory_order_relaxed);
    atomic_store(&pool.done, 0);
    unsigned g = atomic_load(&pool.gen) + 1u;
    uint32_t tag = g & 0xffffffu;
    atomic_store(&pool.work, PACK(tag, 0, n));
    atomic_store(&pool.gen, g); /* seq_cst: publishes the run, then sleepers is read */
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    work_on(tag, 1);
    long t0 = 0;
    for (unsigned i = 1; atomic_load_explicit(&pool.done, memory_order_acquire) < n; i++) {
        if (i % 256 == 0) {
            if (!t0) t0 = now_ns();
            else if (now_ns() - t0 > SPIN_NS) sched_yield();
        }
        cpu_relax();
    }
    pthread_mutex_unlock(&pool.busy);
}
