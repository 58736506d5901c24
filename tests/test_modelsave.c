/* Model files, where a save goes: long file names, symbolic links, and saves killed at
 * random moments (no temporary file left behind, the target always whole). */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/modelio_util.h"

START_TEST(test_save_long_file_name)
{
    /* 250 bytes: valid on every Linux file system (NAME_MAX 255), and the temporary file
     * must not push it over. */
    char base[251], err[512] = "";
    memset(base, 'm', 250);
    base[250] = '\0';
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, base);
    ur_params *a = base_model(1), *b = base_model(2);
    for (int no_tmpfile = 0; no_tmpfile < 2; no_tmpfile++) {
        if (no_tmpfile) setenv("UR_SAVE_NO_TMPFILE", "1", 1);
        ck_assert_msg(ur_params_save(a, path, err, sizeof err) == 0, "%s", err);
        ck_assert_msg(ur_params_load(b, path, err, sizeof err) == 0, "%s", err);
        ck_assert(same_bits(a, b));
        char names[8][64];
        ck_assert_int_eq(dir_entries(names, 8), 1);
    }
    unsetenv("UR_SAVE_NO_TMPFILE");
    ur_params_free(a);
    ur_params_free(b);
}
END_TEST

/* Saving to a symbolic link follows it and replaces its target; the link stays a link. */
START_TEST(test_save_symlink)
{
    char err[512] = "";
    ur_params *a = base_model(1), *b = base_model(2), *c = base_model(3);
    ck_assert(mkdir(tmp_path("real"), 0700) == 0);
    char target[256];
    snprintf(target, sizeof target, "%s", tmp_path("real/model.urm"));
    ck_assert(ur_params_save(a, target, err, sizeof err) == 0);
    ck_assert(chmod(target, 0640) == 0);
    /* A relative link, and a link to that link. */
    ck_assert(symlink("real/model.urm", tmp_path("link.urm")) == 0);
    ck_assert(symlink("link.urm", tmp_path("link2.urm")) == 0);
    ck_assert_msg(ur_params_save(b, tmp_path("link2.urm"), err, sizeof err) == 0, "%s", err);
    struct stat st;
    ck_assert(lstat(tmp_path("link.urm"), &st) == 0 && S_ISLNK(st.st_mode));
    ck_assert(lstat(tmp_path("link2.urm"), &st) == 0 && S_ISLNK(st.st_mode));
    ck_assert(lstat(target, &st) == 0 && S_ISREG(st.st_mode));
    ck_assert_int_eq(st.st_mode & 07777, 0640); /* the replaced file keeps its mode */
    ck_assert(ur_params_load(c, target, err, sizeof err) == 0);
    ck_assert(same_bits(b, c));
    /* No temporary file next to the target or the links. */
    char names[8][64];
    ck_assert_int_eq(dir_entries(names, 8), 3);
    /* A dangling link names the file to create. */
    ck_assert(symlink("real/new.urm", tmp_path("dangling.urm")) == 0);
    ck_assert(ur_params_save(a, tmp_path("dangling.urm"), err, sizeof err) == 0);
    ck_assert(ur_params_load(c, tmp_path("real/new.urm"), err, sizeof err) == 0);
    ck_assert(same_bits(a, c));
    /* A loop is an error. */
    ck_assert(symlink("loop2.urm", tmp_path("loop1.urm")) == 0);
    ck_assert(symlink("loop1.urm", tmp_path("loop2.urm")) == 0);
    ck_assert_int_eq(ur_params_save(a, tmp_path("loop1.urm"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "too many levels of symbolic links") != NULL, "%s", err);
    ur_params_free(a);
    ur_params_free(b);
    ur_params_free(c);
}
END_TEST

/* Saves killed at random moments leave at most one temporary file (the fixed name of the
 * fallback, or one linked but not yet renamed), which the next save removes; the target is
 * always a whole, valid model. */
static void kill_saves(int no_tmpfile)
{
    const char *path = tmp_path("killed.urm");
    char err[512] = "";
    ur_params *big = ur_params_new();
    ck_assert(ur_params_add(big, "w", 512, 1024) != NULL); /* 2 MiB: saves take a while */
    ur_params *check = ur_params_new();
    ck_assert(ur_params_add(check, "w", 512, 1024) != NULL);
    ck_assert(ur_params_save(big, path, err, sizeof err) == 0);
    if (no_tmpfile) setenv("UR_SAVE_NO_TMPFILE", "1", 1);
    ur_rng r;
    ur_rng_seed(&r, 12);
    for (int round = 0; round < 25; round++) {
        pid_t pid = fork();
        ck_assert(pid >= 0);
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test, even on a timeout */
            for (int k = 0; k < 100000; k++) ur_params_save(big, path, NULL, 0);
            _exit(0);
        }
        struct timespec ts = {0, 1000000L + (long)ur_rng_below(&r, 20000000u)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char names[8][64];
        int n = dir_entries(names, 8);
        ck_assert_msg(n <= 2, "round %d: %d files after a kill", round, n);
        ck_assert_msg(ur_params_load(check, path, err, sizeof err) == 0, "%s", err);
    }
    ck_assert(ur_params_save(big, path, err, sizeof err) == 0);
    char names[8][64];
    ck_assert_int_eq(dir_entries(names, 8), 1);
    ck_assert_str_eq(names[0], "killed.urm");
    unsetenv("UR_SAVE_NO_TMPFILE");
    ur_params_free(big);
    ur_params_free(check);
}

START_TEST(test_save_killed) { kill_saves(0); }
END_TEST

START_TEST(test_save_killed_no_tmpfile) { kill_saves(1); }
END_TEST

int main(void)
{
    Suite *s = suite_create("modelsave");
    TCase *io = io_tcase("modelsave");
    tcase_add_test(io, test_save_long_file_name);
    tcase_add_test(io, test_save_symlink);
    tcase_add_test(io, test_save_killed);
    tcase_add_test(io, test_save_killed_no_tmpfile);
    suite_add_tcase(s, io);
    return ur_test_run(s);
}
