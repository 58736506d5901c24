/* The worker pool of ops/pool.h.
 *
 * One run: the caller (holding `busy`) stores the task, sets `pending` to the number of
 * workers that have a task and bumps the generation `gen` (which also holds the task count); each worker waits for gen to
 * change (spinning, then yielding, then asleep on a condition variable), runs its task and
 * decrements pending; the caller runs task 0 and waits for pending to reach 0.
 *
 * Sleeping without a lost wake-up: a worker increments `sleepers` and re-reads gen under
 * `lock` before it waits; the caller bumps gen, then reads sleepers and, if any, broadcasts
 * under `lock`. Both are sequentially consistent, so either the worker sees the new gen or the
 * caller sees the sleeper (and then cannot broadcast before the worker waits).
 */
#define _POSIX_C_SOURCE 200809L
#include "ops/pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

int openblas_get_num_threads(void);

/* gen: a run counter in the high bits, the run's task count in the low four. */
#define GEN_TASKS 15u
#define GEN_STEP 16u

#define SPIN_NS 50000L     /* spin on the generation for 50 us after a task ... */
#define YIELD_NS 1000000L  /* ... then yield the core until 1 ms, then sleep */

static struct {
    pthread_mutex_t busy;  /* held by the thread that runs tasks on the pool */
    pthread_mutex_t lock;  /* guards sleeping */
    pthread_cond_t wake;
    atomic_uint gen;
    atomic_int sleepers;
    atomic_int pending;
    ur_pool_fn fn;         /* the current run, written before gen is bumped */
    void *ctx;
    int workers;           /* worker threads started (tasks 1 .. workers) */
    unsigned start_gen[UR_POOL_MAX];
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          0, 0, 0, NULL, NULL, 0, {0}};

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
    atomic_store(&pool.pending, 0);
    pool.workers = 0;
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, pool_after_fork_child); }

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
    int k = (int)(intptr_t)arg;
    unsigned seen = pool.start_gen[k];
    for (;;) {
        seen = wait_for_work(seen);
        int n = (int)(seen & GEN_TASKS); /* from gen itself: a worker without a task of this
                                            run must not read the next run's fields */
        if (k < n) {
            pool.fn(pool.ctx, k, n);
            atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
        }
    }
    return NULL;
}

/* Starts workers up to tasks 1 .. want-1 (with busy held); returns how many tasks can run. */
static int start_workers(int want)
{
    if (pool.workers + 1 >= want) return want;
    pthread_once(&atfork_once, register_atfork);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals go to the caller's threads */
    while (pool.workers + 1 < want) {
        int k = pool.workers + 1;
        pool.start_gen[k] = atomic_load(&pool.gen);
        pthread_attr_t attr;
        pthread_t th;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&th, &attr, worker_main, (void *)(intptr_t)k);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool.workers = k;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool.workers + 1 < want ? pool.workers + 1 : want;
}

int ur_pool_threads(void)
{
    int n = openblas_get_num_threads();
    return n < 1 ? 1 : n > UR_POOL_MAX ? UR_POOL_MAX : n;
}

static void run_inline(int n_tasks, ur_pool_fn fn, void *ctx)
{
    for (int k = 0; k < n_tasks; k++) fn(ctx, k, n_tasks);
}

void ur_pool_run(int n_tasks, ur_pool_fn fn, void *ctx)
{
    if (n_tasks <= 1 || n_tasks > UR_POOL_MAX) { run_inline(n_tasks, fn, ctx); return; }
    if (pthread_mutex_trylock(&pool.busy) != 0) { run_inline(n_tasks, fn, ctx); return; }
    if (start_workers(n_tasks) < n_tasks) {
        pthread_mutex_unlock(&pool.busy);
        run_inline(n_tasks, fn, ctx);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    atomic_store(&pool.pending, n_tasks - 1);
    unsigned g = atomic_load(&pool.gen);
    /* seq_cst: publishes the run, then sleepers is read */
    atomic_store(&pool.gen, ((g & ~GEN_TASKS) + GEN_STEP) | (unsigned)n_tasks);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    fn(ctx, 0, n_tasks);
    long t0 = 0;
    for (unsigned i = 1; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0; i++) {
        if (i % 256 == 0) {
            if (!t0) t0 = now_ns();
            else if (now_ns() - t0 > SPIN_NS) sched_yield();
        }
        cpu_relax();
    }
    pthread_mutex_unlock(&pool.busy);
}
