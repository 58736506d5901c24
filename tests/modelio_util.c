/* Helpers shared by the model file tests (test_modelio, test_modelmeta, test_modelsave):
 * a directory per test, small models, raw file bytes and files crafted by hand. */
#define _POSIX_C_SOURCE 200809L
#include "tests/modelio_util.h"

#include <dirent.h>
#include <unistd.h>

/* Each test gets its own directory tmpdir inside rootdir. rootdir belongs to the test case
 * (an unchecked fixture, run by the parent process), so it is removed even when a test
 * fails and its forked process exits early. */
char rootdir[64], tmpdir[128];

/* Removes path and, if it is a directory, everything below it. */
void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(p, sizeof p, "%s/%.255s", path, e->d_name);
            remove_tree(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void io_root_setup(void)
{
    strcpy(rootdir, "/tmp/ur_test_train.XXXXXX");
    ck_assert(mkdtemp(rootdir) != NULL);
}

static void io_root_teardown(void) { remove_tree(rootdir); }

static void io_setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/t.XXXXXX", rootdir);
    ck_assert(mkdtemp(tmpdir) != NULL);
}

static void io_teardown(void) { remove_tree(tmpdir); }

const char *tmp_path(const char *name)
{
    static char p[4][256]; /* the last four paths stay valid */
    static int next;
    char *out = p[next++ % 4];
    snprintf(out, 256, "%s/%s", tmpdir, name);
    return out;
}

/* Entries of tmpdir other than . and .. */
int dir_entries(char names[][64], int max)
{
    DIR *d = opendir(tmpdir);
    ck_assert(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (n < max) snprintf(names[n], 64, "%.63s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* A model like a small LSTM language model; w_cols changes the first shape, extra adds a
 * parameter, drop_head leaves the last one out. */
ur_params *io_model(int w_cols, int extra, int drop_head, uint64_t seed)
{
    ur_params *ps = ur_params_new();
    ur_rng r;
    ur_rng_seed(&r, seed);
    ck_assert(ur_params_add(ps, "lstm.0.W", 4, w_cols) != NULL);
    ck_assert(ur_params_add(ps, "lstm.0.b", 1, 16) != NULL);
    if (!drop_head) ck_assert(ur_params_add(ps, "head.V", 16, 5) != NULL);
    if (extra) ck_assert(ur_params_add(ps, "extra.U", 2, 2) != NULL);
    for (int i = 0; i < ur_params_count(ps); i++) ur_test_fill(ur_params_at(ps, i), &r, -1, 1);
    return ps;
}

ur_params *base_model(uint64_t seed) { return io_model(16, 0, 0, seed); }

/* 1 if every value of a and b is the same bit pattern (same names and shapes assumed). */
int same_bits(const ur_params *a, const ur_params *b)
{
    if (ur_params_count(a) != ur_params_count(b)) return 0;
    for (int i = 0; i < ur_params_count(a); i++) {
        const ur_tensor *x = ur_params_at(a, i), *y = ur_params_at(b, i);
        if (strcmp(x->name, y->name) != 0 || x->rows != y->rows || x->cols != y->cols) return 0;
        if (memcmp(x->val, y->val, ur_numel(x) * sizeof(float)) != 0) return 0;
    }
    return 1;
}

unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert(f != NULL);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 64);
    ck_assert(b != NULL && fread(b, 1, *n, f) == *n);
    fclose(f);
    return b;
}

void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    ck_assert(n == 0 || fwrite(b, 1, n, f) == n);
    fclose(f);
}

void le32(unsigned char *b, uint32_t x)
{
    for (int k = 0; k < 4; k++) b[k] = (unsigned char)(x >> (8 * k));
}

/* Rewrites the last 8 bytes as the FNV-1a 64 of everything before them (written out here
 * independently of the library). */
void fix_checksum(unsigned char *b, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t k = 0; k < n - 8; k++) h = (h ^ b[k]) * 0x100000001b3ULL;
    le32(b + n - 8, (uint32_t)h);
    le32(b + n - 4, (uint32_t)(h >> 32));
}

/* Loading path into a fresh base model must fail with a message containing needle and
 * leave every value unchanged. file_bad: the file itself is bad, so load_new fails too. */
void expect_rejected_as(const char *path, const char *needle, int file_bad)
{
    ur_params *ps = base_model(99), *ref = base_model(99);
    char err[512] = "";
    ck_assert_int_eq(ur_params_load(ps, path, err, sizeof err), -1);
    ck_assert_msg(strstr(err, needle) != NULL, "error \"%s\" does not say \"%s\"", err, needle);
    ck_assert_msg(same_bits(ps, ref), "a rejected load changed the model (%s)", needle);
    char err2[512] = "";
    ur_params *fresh = ur_params_load_new(path, err2, sizeof err2);
    if (file_bad) ck_assert_msg(fresh == NULL && strstr(err2, needle), "load_new: %s", err2);
    ur_params_free(fresh);
    ur_params_free(ps);
    ur_params_free(ref);
}

void expect_rejected(const char *path, const char *needle)
{
    expect_rejected_as(path, needle, 1);
}

/* Builds a file by hand: n_rec records of (name, rows, cols) with data_bytes zero bytes of
 * data each, and a correct checksum. Returns its size. */
size_t craft(unsigned char *b, int n_rec, const char *const *names, const uint32_t *rows,
                    const uint32_t *cols, const size_t *data_bytes)
{
    size_t n = 0;
    memcpy(b, "URMODEL", 8);
    le32(b + 8, 1);
    le32(b + 12, (uint32_t)n_rec);
    n = 16;
    for (int i = 0; i < n_rec; i++) {
        size_t len = strlen(names[i]);
        le32(b + n, (uint32_t)len);
        memcpy(b + n + 4, names[i], len);
        le32(b + n + 4 + len, rows[i]);
        le32(b + n + 8 + len, cols[i]);
        n += 12 + len;
        memset(b + n, 0, data_bytes[i]);
        n += data_bytes[i];
    }
    n += 8;
    fix_checksum(b, n);
    return n;
}

TCase *io_tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 120); /* the kill tests take seconds under sanitizers and load */
    tcase_add_unchecked_fixture(tc, io_root_setup, io_root_teardown);
    tcase_add_checked_fixture(tc, io_setup, io_teardown);
    return tc;
}
