/* char_lm checkpoints (examples/lm_model.c): metadata records round-trip, and a hostile
 * checkpoint is rejected before the model it describes is allocated. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "examples/lm_model.h"
#include "ur_test.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/ur_test_charlm.XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert(system(cmd) == 0);
}

static const char *path_of(const char *name)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void small_model(lm_model *m, int cell)
{
    unsigned char vocab[5] = {'a', 'b', 'c', ' ', '\n'};
    lm_config cfg = {cell, 2, 12, 6, 5, 0.1f, cell % 2 ? 0.25f : 0.0f};
    ur_rng rng;
    ur_rng_seed(&rng, 3);
    char err[256];
    ck_assert_msg(lm_build(m, &cfg, vocab, &rng, err, sizeof err) == 0, "%s", err);
}

START_TEST(test_roundtrip)
{
    for (int cell = LM_ELMAN; cell < LM_CELLS; cell++) {
        lm_model a, b;
        small_model(&a, cell);
        /* No config or vocabulary among the parameters: the optimizer never sees them. */
        for (int k = 0; k < ur_params_count(a.ps); k++)
            ck_assert(strncmp(ur_params_at(a.ps, k)->name, "meta", 4) != 0);
        ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
        char err[512];
        ur_optim *opt = ur_optim_new(a.ps, &oc, err, sizeof err), *opt2;
        ck_assert(opt != NULL);
        for (int k = 0; k < ur_params_count(a.ps); k++) /* any gradient, so the moments move */
            for (size_t j = 0; j < ur_numel(ur_params_at(a.ps, k)); j++)
                ur_params_at(a.ps, k)->grad[j] = 0.01f * (float)(j % 7) - 0.02f;
        ur_optim_step(opt);
        ur_optim_step(opt);
        long steps = 16777217; /* 2^24 + 1: not exact as a float, exact as int64 */
        ck_assert_msg(lm_save(&a, steps, opt, path_of("m.urm"), err, sizeof err) == 0, "%s", err);
        long got = 0;
        ck_assert_msg(lm_load(&b, path_of("m.urm"), &got, err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(got, steps);
        ck_assert(b.cfg.cell == cell && b.cfg.layers == 2 && b.cfg.hidden == 12 &&
                  b.cfg.embed == 6 && b.cfg.vocab == 5 && b.cfg.dropout == 0.1f &&
                  b.cfg.rec_dropout == (cell % 2 ? 0.25f : 0.0f));
        /* Training cells carry the variational dropout, evaluation cells do not. */
        ck_assert(b.cells[0].rec_dropout == b.cfg.rec_dropout && b.eval_cells[1].rec_dropout == 0);
        ck_assert(memcmp(b.vocab, "abc \n", 5) == 0);
        for (int k = 0; k < ur_params_count(a.ps); k++)
            ck_assert(memcmp(ur_params_at(a.ps, k)->val, ur_params_at(b.ps, k)->val,
                             ur_numel(ur_params_at(a.ps, k)) * sizeof(float)) == 0);
        opt2 = ur_optim_new(b.ps, &oc, err, sizeof err);
        ck_assert_int_eq(lm_restore_optim(&b, opt2, err, sizeof err), 1);
        ck_assert_int_eq(ur_optim_steps(opt2), 2);
        ck_assert(memcmp(ur_optim_state(opt), ur_optim_state(opt2),
                         ur_optim_state_size(opt) * sizeof(float)) == 0);
        ur_optim_free(opt);
        ur_optim_free(opt2);
        lm_free(&a);
        lm_free(&b);
    }
}
END_TEST

/* Writes a checkpoint whose records say (cell, layers, hidden, embed, V) but whose weights
 * are those of the small model; edit lets a test change one record. */
static void forge(const char *path, const char *cell, int64_t layers, int64_t hidden,
                  int64_t embed, int64_t V, const char *drop_key)
{
    lm_model m;
    small_model(&m, LM_LSTM);
    ur_meta *meta = ur_meta_new();
    unsigned char bytes[256];
    for (int k = 0; k < 256; k++) bytes[k] = (unsigned char)k;
    ck_assert(ur_meta_set_int64(meta, "char_lm.format", LM_FORMAT) == 0);
    ck_assert(ur_meta_set_string(meta, "char_lm.cell", cell) == 0);
    ck_assert(ur_meta_set_int64(meta, "char_lm.layers", layers) == 0);
    ck_assert(ur_meta_set_int64(meta, "char_lm.hidden", hidden) == 0);
    ck_assert(ur_meta_set_int64(meta, "char_lm.embed", embed) == 0);
    ck_assert(ur_meta_set_int64(meta, "char_lm.vocab", V) == 0);
    ck_assert(ur_meta_set_float64(meta, "char_lm.dropout", 0.0) == 0);
    ck_assert(ur_meta_set_bytes(meta, "char_lm.bytes", bytes, V > 0 && V <= 256 ? (size_t)V : 5) == 0);
    ck_assert(ur_meta_set_int64(meta, "char_lm.steps", 0) == 0);
    if (drop_key) ck_assert(ur_meta_remove(meta, drop_key) == 0);
    char err[512];
    ck_assert_msg(ur_params_save_meta(m.ps, meta, path, err, sizeof err) == 0, "%s", err);
    ur_meta_free(meta);
    lm_free(&m);
}

/* lm_load must fail with a message containing needle, within 100 ms, in a child whose
 * address space is capped at 256 MiB more than it uses now: a loader that built the model
 * the checkpoint describes before checking it would fail on memory instead (or take long). */
static void expect_hostile(const char *path, const char *needle)
{
    int fds[2];
    ck_assert(pipe(fds) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct rlimit rl;
        FILE *f = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (f && fscanf(f, "%lu", &pages) == 1) {
            rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20);
            setrlimit(RLIMIT_AS, &rl);
        }
        if (f) fclose(f);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        lm_model m;
        long steps;
        char err[512] = "";
        int rc = lm_load(&m, path, &steps, err, sizeof err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = 1e3 * (double)(t1.tv_sec - t0.tv_sec) + 1e-6 * (double)(t1.tv_nsec - t0.tv_nsec);
        char msg[700];
        int n = snprintf(msg, sizeof msg, "%d %.3f %s", rc, ms, err);
        if (write(fds[1], msg, (size_t)n) != n) _exit(3);
        if (rc == 0) lm_free(&m);
        _exit(0);
    }
    close(fds[1]);
    char buf[700] = "";
    ssize_t got = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 && got > 0, "the child died");
    buf[got] = '\0';
    int rc;
    double ms;
    int off = 0;
    ck_assert(sscanf(buf, "%d %lf %n", &rc, &ms, &off) == 2);
    ck_assert_msg(rc == -1, "hostile checkpoint accepted (%s)", needle);
    ck_assert_msg(strstr(buf + off, needle) != NULL, "\"%s\" does not say \"%s\"", buf + off, needle);
    ck_assert_msg(ms < 100.0, "rejecting took %.1f ms", ms);
}

START_TEST(test_hostile)
{
    const char *p = path_of("hostile.urm");
    /* Beyond the command line's caps (the 2 GB and 137 GB requests of issue 12). */
    forge(p, "lstm", 8, 65536, 16, 96, NULL);
    expect_hostile(p, "record char_lm.hidden is out of range");
    forge(p, "lstm", 1, 8, 65536, 96, NULL);
    expect_hostile(p, "record char_lm.embed is out of range");
    forge(p, "gru", 9, 8, 8, 96, NULL);
    expect_hostile(p, "record char_lm.layers is out of range");
    forge(p, "lstm", 1, 8, 8, 257, NULL);
    expect_hostile(p, "record char_lm.vocab is out of range");
    forge(p, "lstm", 1, 8, 8, 1, NULL);
    expect_hostile(p, "record char_lm.vocab is out of range");
    /* Within the caps, but ~1.5 GB of weights the file does not hold. */
    forge(p, "lstm", 8, 4096, 4096, 256, NULL);
    expect_hostile(p, "weight embed.E is 5x6 in the file, but the configuration needs 256x4096");
    forge(p, "elman", 3, 12, 6, 5, NULL);
    expect_hostile(p, "needs weight layer0.U, which the file does not hold");
    /* Right names, wrong shapes; the right configuration's weights with the wrong cell. */
    forge(p, "lstm", 2, 13, 6, 5, NULL);
    expect_hostile(p, "weight layer0.Wx is 6x48 in the file, but the configuration needs 6x52");
    forge(p, "gru", 2, 12, 6, 5, NULL);
    expect_hostile(p, "weight layer0.Wx is 6x48 in the file, but the configuration needs 6x36");
    forge(p, "lstm", 1, 12, 6, 5, NULL);
    expect_hostile(p, "the file holds 9 weights, the configuration 6");
    forge(p, "rnn", 2, 12, 6, 5, NULL);
    expect_hostile(p, "char_lm.cell is missing or not a cell char_lm knows");
    forge(p, "lstm", 2, 12, 6, 5, "char_lm.steps");
    expect_hostile(p, "record char_lm.steps is missing");
    forge(p, "lstm", 2, 12, 6, 5, "char_lm.format");
    expect_hostile(p, "not a char_lm checkpoint");
    forge(p, "lstm-ln", 2, 12, 6, 5, NULL); /* a plain LSTM's weights */
    expect_hostile(p, "needs weight layer0.gx, which the file does not hold");
    /* The control: the same forging with the true configuration loads. */
    forge(p, "lstm", 2, 12, 6, 5, NULL);
    lm_model m;
    long steps;
    char err[512];
    ck_assert_msg(lm_load(&m, p, &steps, err, sizeof err) == 0, "%s", err);
    lm_free(&m);
}
END_TEST

static Suite *charlm_suite(void)
{
    Suite *s = suite_create("charlm");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_hostile);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return ur_test_run(charlm_suite()); }
