/* Allocation-failure sweep: a shim fails the n-th allocation (malloc, calloc, realloc,
 * aligned_alloc) of a scenario, for every n up to the number the scenario makes when nothing
 * fails. Each run must report an error (never succeed after a failed allocation), must not
 * crash, and must free everything it allocated. Scenarios: one full training step (model,
 * optimizer, tape, forward, backward, clipping, update), one save and load of a model file
 * with metadata, a char_lm checkpoint, the n-gram tuning and the text reader.
 *
 * The shim replaces the allocator in this executable (the library's calls reach it), so it
 * cannot run under AddressSanitizer or valgrind, which bring their own: the program then
 * skips (exit 77), and check-valgrind leaves it out. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "examples/lm_model.h"
#include "examples/ngram.h"
#include "examples/text.h"
#include "unroll.h"

#if defined(__SANITIZE_ADDRESS__)
#define UR_NO_SHIM 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UR_NO_SHIM 1
#endif
#endif

/* ---- The shim --------------------------------------------------------------------------- */

static long fail_at;        /* the allocation to fail, counted from 1; 0: none */
static long n_allocs;       /* allocations since arm() */
static int armed, failed_one;
static __thread int on_main; /* only the test's thread counts (OpenBLAS may have others) */

/* The live blocks allocated while armed: an open-addressing set of pointers. */
#define LIVE_CAP (1 << 16)
static void *live[LIVE_CAP];
static long n_live;

static size_t slot_of(void *p)
{
    size_t k = ((size_t)p >> 4) * 0x9e3779b97f4a7c15ull & (LIVE_CAP - 1);
    while (live[k] && live[k] != p) k = (k + 1) & (LIVE_CAP - 1);
    return k;
}

static void live_add(void *p)
{
    size_t k = slot_of(p);
    if (!live[k]) {
        live[k] = p;
        n_live++;
    }
}

/* Removes p from the set (backward-shift deletion keeps the probe chains intact). */
static void live_remove(void *p)
{
    size_t k = slot_of(p);
    if (!live[k]) return;
    live[k] = NULL;
    n_live--;
    for (size_t j = (k + 1) & (LIVE_CAP - 1); live[j]; j = (j + 1) & (LIVE_CAP - 1)) {
        void *q = live[j];
        live[j] = NULL;
        live[slot_of(q)] = q;
    }
}

/* 1 if this allocation must fail. */
static int must_fail(void)
{
    if (!armed || !on_main) return 0;
    if (++n_allocs == fail_at) {
        failed_one = 1;
        return 1;
    }
    return 0;
}

#ifndef UR_NO_SHIM
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

void *malloc(size_t n)
{
    if (must_fail()) return NULL;
    void *p = __libc_malloc(n);
    if (p && armed && on_main) live_add(p);
    return p;
}

void *calloc(size_t a, size_t b)
{
    if (must_fail()) return NULL;
    void *p = __libc_calloc(a, b);
    if (p && armed && on_main) live_add(p);
    return p;
}

void *realloc(void *old, size_t n)
{
    if (must_fail()) return NULL;
    void *p = __libc_realloc(old, n);
    if (p && on_main) {
        if (old) live_remove(old);
        if (armed) live_add(p);
    }
    return p;
}

void *aligned_alloc(size_t align, size_t n)
{
    if (must_fail()) return NULL;
    void *p = __libc_memalign(align, n);
    if (p && armed && on_main) live_add(p);
    return p;
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (must_fail()) return ENOMEM;
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    if (armed && on_main) live_add(p);
    *out = p;
    return 0;
}

void free(void *p)
{
    if (p && on_main) live_remove(p);
    __libc_free(p);
}
#endif

static void arm(long n)
{
    memset(live, 0, sizeof live);
    n_live = 0;
    n_allocs = 0;
    fail_at = n;
    failed_one = 0;
    armed = 1;
}

static void disarm(void) { armed = 0; }

/* ---- Scenarios: each returns 0 on success, -1 on an error it reported ------------------- */

static char dir[64];

static int scenario_train(void)
{
    enum { V = 7, E = 5, H = 6, T = 4, B = 3 };
    int rc = -1;
    ur_rng rng;
    ur_rng_seed(&rng, 1);
    ur_params *ps = ur_params_new();
    ur_optim *opt = NULL;
    ur_tape *tp = NULL;
    char err[256];
    ur_cell cell;
    if (!ps) return -1;
    ur_tensor *emb = ur_model_param(ps, "embed", "E", V, E, 1.0f, &rng);
    if (!emb || ur_lstm_cell(&cell, ps, "lstm", E, H, &rng) != 0) goto done;
    ur_tensor *w = ur_model_param(ps, "head", "W", H, V, 0.3f, &rng);
    ur_tensor *b = ur_model_param(ps, "head", "b", 1, V, 0.3f, &rng);
    if (!w || !b) goto done;
    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
    if (!(opt = ur_optim_new(ps, &oc, err, sizeof err)) || !(tp = ur_tape_new(4096))) goto done;
    int ids[T * B], tgt[T * B];
    for (int k = 0; k < T * B; k++) ids[k] = k % V, tgt[k] = (k + 1) % V;
    ur_seq seq;
    ur_tensor *x = ur_embedding(tp, emb, ids, T * B);
    if (ur_unroll(tp, &cell, x, T, (ur_state){NULL, NULL}, 0, &seq) != 0) goto done;
    ur_tensor *loss = ur_softmax_nll(tp, ur_linear(tp, seq.H, w, b), tgt, UR_MEAN);
    ur_params_zero_grad(ps);
    if (ur_backward(tp, loss) != 0) goto done;
    ur_clip_grad_norm(ps, 1.0);
    if (ur_optim_step(opt) != 0) goto done;
    rc = 0;
done:
    ur_tape_free(tp);
    ur_optim_free(opt);
    ur_params_free(ps);
    return rc;
}

static ur_params *fixed_model(void)
{
    ur_params *ps = ur_params_new();
    if (!ps) return NULL;
    const char *names[3] = {"a.W", "a.b", "head.V"};
    for (int k = 0; k < 3; k++) {
        ur_tensor *t = ur_params_add(ps, names[k], 3 + k, 4);
        if (!t) {
            ur_params_free(ps);
            return NULL;
        }
        for (size_t j = 0; j < ur_numel(t); j++) t->val[j] = 0.25f * (float)j - (float)k;
    }
    return ps;
}

/* Saves a model with metadata, then loads it three ways. */
static int scenario_save_load(void)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/m.urm", dir);
    int rc = -1;
    ur_params *a = fixed_model(), *b = NULL, *c = NULL;
    ur_meta *m = ur_meta_new(), *got = ur_meta_new();
    ur_model_file *f = NULL;
    if (!a || !m || !got || ur_meta_set_string(m, "name", "sweep") != 0 ||
        ur_meta_set_int64(m, "steps", 12) != 0 || ur_meta_set_bytes(m, "v", "xyz", 3) != 0 ||
        ur_meta_set_float64(m, "p", 0.5) != 0)
        goto done;
    if (ur_params_save_meta(a, m, path, err, sizeof err) != 0) goto done;
    if (!(b = fixed_model())) goto done;
    if (ur_params_load_meta(b, got, path, err, sizeof err) != 0) goto done;
    if (!(c = ur_params_load_new(path, err, sizeof err))) goto done;
    if (!(f = ur_model_file_read(path, err, sizeof err))) goto done;
    rc = 0;
done:
    ur_model_file_free(f);
    ur_params_free(a);
    ur_params_free(b);
    ur_params_free(c);
    ur_meta_free(m);
    ur_meta_free(got);
    return rc;
}

/* A loaded set must be untouched by a load that failed: checked separately, as the sweep
 * runs (the set is made before arming). */
static ur_params *untouched;

static int scenario_load_into(void)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/m.urm", dir);
    ur_meta *meta = ur_meta_new();
    if (!meta) return -1;
    int rc = ur_params_load_meta(untouched, meta, path, err, sizeof err);
    ur_meta_free(meta);
    return rc;
}

static int scenario_checkpoint(void)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/lm.urm", dir);
    lm_model m;
    long steps;
    if (lm_load(&m, path, &steps, err, sizeof err) != 0) return -1;
    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
    ur_optim *opt = ur_optim_new(m.ps, &oc, err, sizeof err);
    int rc = opt && lm_restore_optim(&m, opt, err, sizeof err) == 1 &&
                     lm_save(&m, steps + 1, opt, path, err, sizeof err) == 0
                 ? 0
                 : -1;
    ur_optim_free(opt);
    lm_free(&m);
    return rc;
}

static int ngram_ids[5000];

static int scenario_ngram(void)
{
    double alpha = 0;
    int r = ex_ngram_tune_alpha(5, 30, ngram_ids, 5000, &alpha);
    return r == 0 ? 0 : r == 1 ? 1 /* "too short": wrong, see the sweep */ : -1;
}

static int scenario_text(void)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/text.txt", dir);
    ex_text t;
    if (ex_text_read_file(&t, path, EX_TEXT_MAX_BYTES, err, sizeof err) != 0) return -1;
    ex_text_free(&t);
    return 0;
}

/* ---- The sweep --------------------------------------------------------------------------- */

static int failures;

static void sweep(const char *name, int (*run)(void))
{
    /* Warm-up: lazy initialisations (OpenBLAS buffers, stdio) happen unarmed. */
    if (run() != 0) {
        printf("FAIL %s: the scenario fails without any injected failure\n", name);
        failures++;
        return;
    }
    arm(0);
    int rc = run();
    disarm();
    long total = n_allocs;
    if (rc != 0 || n_live != 0) {
        printf("FAIL %s: clean run: status %d, %ld blocks left\n", name, rc, n_live);
        failures++;
        return;
    }
    long bad = 0;
    for (long n = 1; n <= total; n++) {
        arm(n);
        rc = run();
        disarm();
        const char *why = NULL;
        if (failed_one && rc == 0) why = "succeeded after a failed allocation";
        else if (failed_one && rc == 1) why = "took a failed allocation for a short text";
        else if (!failed_one) why = "the injected failure did not happen (allocations vary?)";
        else if (n_live != 0) why = "leaked";
        if (why) {
            if (bad++ < 5) printf("FAIL %s: allocation %ld of %ld failed: %s (%ld blocks left)\n",
                                  name, n, total, why, n_live);
            failures++;
        }
    }
    printf("%s: %ld allocations, each failed in turn: %s\n", name, total,
           bad ? "FAILED" : "an error every time, no leak");
}

int main(void)
{
    on_main = 1;
#ifdef UR_NO_SHIM
    printf("SKIP: built with AddressSanitizer, which owns the allocator\n");
    return 77;
#endif
    /* Is the shim in charge? (Not under valgrind, which replaces malloc everywhere.) */
    void *(*volatile alloc)(size_t) = malloc;
    arm(1);
    void *probe = alloc(16);
    disarm();
    if (probe) {
        free(probe);
        printf("SKIP: the allocator is not this program's (valgrind?)\n");
        return 77;
    }
    strcpy(dir, "/tmp/ur_test_allocfail.XXXXXX");
    if (!mkdtemp(dir)) return 99;
    char path[128], err[512];

    /* Files the load scenarios read. */
    snprintf(path, sizeof path, "%s/text.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 99;
    for (int k = 0; k < 200; k++) fprintf(f, "line %d of a small text\n", k);
    fclose(f);
    unsigned char vocab[6] = {'a', 'b', 'c', 'd', ' ', '\n'};
    lm_config cfg = {LM_GRU, 2, 5, 3, 6, 0.0f, 0.0f};
    lm_model lm;
    ur_rng rng;
    ur_rng_seed(&rng, 2);
    if (lm_build(&lm, &cfg, vocab, &rng, err, sizeof err) != 0) return 99;
    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
    ur_optim *opt = ur_optim_new(lm.ps, &oc, err, sizeof err);
    snprintf(path, sizeof path, "%s/lm.urm", dir);
    if (!opt || lm_save(&lm, 10, opt, path, err, sizeof err) != 0) return 99;
    ur_optim_free(opt);
    lm_free(&lm);
    for (int k = 0; k < 5000; k++) ngram_ids[k] = (k * 7 + k / 13) % 30;

    sweep("training step", scenario_train);
    sweep("save and load", scenario_save_load);
    sweep("char_lm checkpoint", scenario_checkpoint);
    sweep("n-gram tuning", scenario_ngram);
    sweep("text reader", scenario_text);

    /* A failed load leaves the set it loads into as it was. */
    untouched = fixed_model();
    for (int k = 0; k < ur_params_count(untouched); k++) ur_params_at(untouched, k)->val[0] = 99;
    sweep("load into a model", scenario_load_into);
    arm(0);
    /* After the sweep's last (successful) run the values are the file's; one more failing
     * run at each allocation must not change them back or partly. */
    disarm();
    for (long n = 1; n <= 3; n++) {
        for (int k = 0; k < ur_params_count(untouched); k++) ur_params_at(untouched, k)->val[0] = 99;
        arm(n);
        int rc = scenario_load_into();
        disarm();
        for (int k = 0; k < ur_params_count(untouched); k++)
            if (rc != 0 && ur_params_at(untouched, k)->val[0] != 99) {
                printf("FAIL load into a model: a failed load (allocation %ld) changed %s\n", n,
                       ur_params_at(untouched, k)->name);
                failures++;
            }
    }
    ur_params_free(untouched);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 99;
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
    return failures ? 1 : 0;
}
