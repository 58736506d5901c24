/* Model files (save, load and every way a file can be wrong) and sampling from logits. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ur_test.h"

/* ---- Model files ------------------------------------------------------------------------ */

/* Each test gets its own directory tmpdir inside rootdir. rootdir belongs to the test case
 * (an unchecked fixture, run by the parent process), so it is removed even when a test
 * fails and its forked process exits early. */
static char rootdir[64], tmpdir[128];

/* Removes path and, if it is a directory, everything below it. */
static void remove_tree(const char *path)
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

static const char *tmp_path(const char *name)
{
    static char p[4][256];
    static int next;
    char *out = p[next++ % 4];
    snprintf(out, 256, "%s/%s", tmpdir, name);
    return out;
}

/* Entries of tmpdir other than . and .. */
static int dir_entries(char names[][64], int max)
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
static ur_params *io_model(int w_cols, int extra, int drop_head, uint64_t seed)
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

static ur_params *base_model(uint64_t seed) { return io_model(16, 0, 0, seed); }

/* 1 if every value of a and b is the same bit pattern (same names and shapes assumed). */
static int same_bits(const ur_params *a, const ur_params *b)
{
    if (ur_params_count(a) != ur_params_count(b)) return 0;
    for (int i = 0; i < ur_params_count(a); i++) {
        const ur_tensor *x = ur_params_at(a, i), *y = ur_params_at(b, i);
        if (strcmp(x->name, y->name) != 0 || x->rows != y->rows || x->cols != y->cols) return 0;
        if (memcmp(x->val, y->val, ur_numel(x) * sizeof(float)) != 0) return 0;
    }
    return 1;
}

static unsigned char *read_bytes(const char *path, size_t *n)
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

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    ck_assert(n == 0 || fwrite(b, 1, n, f) == n);
    fclose(f);
}

static void le32(unsigned char *b, uint32_t x)
{
    for (int k = 0; k < 4; k++) b[k] = (unsigned char)(x >> (8 * k));
}

/* Rewrites the last 8 bytes as the FNV-1a 64 of everything before them (written out here
 * independently of the library). */
static void fix_checksum(unsigned char *b, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t k = 0; k < n - 8; k++) h = (h ^ b[k]) * 0x100000001b3ULL;
    le32(b + n - 8, (uint32_t)h);
    le32(b + n - 4, (uint32_t)(h >> 32));
}

/* Loading path into a fresh base model must fail with a message containing needle and
 * leave every value unchanged. file_bad: the file itself is bad, so load_new fails too. */
static void expect_rejected_as(const char *path, const char *needle, int file_bad)
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

static void expect_rejected(const char *path, const char *needle)
{
    expect_rejected_as(path, needle, 1);
}

START_TEST(test_save_load_roundtrip)
{
    const char *path = tmp_path("model.urm");
    ur_params *a = base_model(1), *b = base_model(2);
    /* Special (finite) values survive bit for bit. */
    ur_tensor *w = ur_params_at(a, 0);
    uint32_t denorm = 0x00000003u, max = 0x7f7fffffu;
    memcpy(&w->val[0], &max, 4);
    memcpy(&w->val[1], &denorm, 4);
    w->val[2] = -0.0f;
    w->val[3] = -FLT_MAX;
    char err[512] = "";
    ck_assert_msg(ur_params_save(a, path, err, sizeof err) == 0, "%s", err);
    ck_assert(!same_bits(a, b));
    ck_assert_msg(ur_params_load(b, path, err, sizeof err) == 0, "%s", err);
    ck_assert(same_bits(a, b));

    /* The exact size: header 20, per record 4 + name + 8 + data, checksum 8. */
    struct stat st;
    ck_assert(stat(path, &st) == 0);
    ck_assert_int_eq(st.st_size, 20 + (12 + 8 + 256) + (12 + 8 + 64) + (12 + 6 + 320) + 8);

    /* Into a model built from the file. */
    ur_params *c = ur_params_load_new(path, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert(same_bits(a, c));

    /* Overwriting keeps one file and no temporary. */
    ur_params *d = base_model(3);
    ck_assert(ur_params_save(d, path, err, sizeof err) == 0);
    ck_assert(ur_params_load(b, path, err, sizeof err) == 0);
    ck_assert(same_bits(d, b));
    char names[8][64];
    ck_assert_int_eq(dir_entries(names, 8), 1);
    ck_assert_str_eq(names[0], "model.urm");

    /* An empty set round-trips too. */
    ur_params *e = ur_params_new(), *f = ur_params_new();
    ck_assert(ur_params_save(e, tmp_path("empty.urm"), err, sizeof err) == 0);
    ck_assert(ur_params_load(f, tmp_path("empty.urm"), err, sizeof err) == 0);
    ur_params_free(a);
    ur_params_free(b);
    ur_params_free(c);
    ur_params_free(d);
    ur_params_free(e);
    ur_params_free(f);
}
END_TEST

START_TEST(test_save_errors)
{
    ur_params *a = base_model(1);
    char err[512] = "";
    const char *bad = tmp_path("no/such/dir/model.urm");
    ck_assert_int_eq(ur_params_save(a, bad, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "cannot create temporary file") != NULL, "%s", err);
    /* A directory, FIFO or device is never replaced, and no temporary file is left. */
    const char *dir = tmp_path("adir");
    ck_assert(mkdir(dir, 0700) == 0);
    ck_assert_int_eq(ur_params_save(a, dir, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "exists and is not a regular file (a directory)") != NULL, "%s", err);
    ck_assert_int_eq(ur_params_save(a, "/dev/null", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "not replaced") != NULL, "%s", err);
    char names[8][64];
    ck_assert_int_eq(dir_entries(names, 8), 1);
    ck_assert_str_eq(names[0], "adir");
    ck_assert_int_eq(ur_params_save(NULL, bad, err, sizeof err), -1);
    ck_assert_int_eq(ur_params_save(a, "", NULL, 0), -1);
    ur_params_free(a);
}
END_TEST

START_TEST(test_load_corrupt)
{
    const char *good = tmp_path("good.urm"), *path = tmp_path("bad.urm");
    ur_params *a = base_model(1);
    char err[512];
    ck_assert(ur_params_save(a, good, err, sizeof err) == 0);
    size_t n;
    unsigned char *b = read_bytes(good, &n);

    /* Truncated anywhere. */
    size_t cuts[] = {n - 1, n - 4, n - 8, n - 9, n / 2, 40, 27, 23, 12, 4};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        write_bytes(path, b, cuts[k]);
        expect_rejected(path, "truncated");
    }

    /* One flipped byte in the data, in the checksum. */
    size_t w_data = 20 + 4 + 8 + 8;
    b[w_data + 10] ^= 0x40;
    write_bytes(path, b, n);
    expect_rejected(path, "checksum mismatch");
    b[w_data + 10] ^= 0x40;
    b[n - 3] ^= 0x01;
    write_bytes(path, b, n);
    expect_rejected(path, "checksum mismatch");
    b[n - 3] ^= 0x01;

    /* Bytes after the checksum. */
    memset(b + n, 0, 4);
    write_bytes(path, b, n + 4);
    expect_rejected(path, "4 unexpected bytes");

    /* Wrong magic. */
    b[1] = 'X';
    write_bytes(path, b, n);
    expect_rejected(path, "bad magic");
    b[1] = 'R';

    /* A newer format version, checksum made right so only the version is wrong. */
    le32(b + 8, UR_MODEL_FORMAT_VERSION + 1);
    fix_checksum(b, n);
    write_bytes(path, b, n);
    expect_rejected(path, "format version 3 is newer than this library reads (up to 2)");
    le32(b + 8, UR_MODEL_FORMAT_VERSION);
    fix_checksum(b, n);
    write_bytes(path, b, n);
    ur_params *c = base_model(5);
    ck_assert_msg(ur_params_load(c, path, err, sizeof err) == 0, "%s", err); /* fix_checksum is right */
    ck_assert(same_bits(a, c));

    free(b);
    ur_params_free(a);
    ur_params_free(c);
}
END_TEST

START_TEST(test_load_mismatch)
{
    const char *path = tmp_path("model.urm");
    char err[512], want[512];

    ur_params *missing = io_model(16, 0, 1, 1);
    ck_assert(ur_params_save(missing, path, err, sizeof err) == 0);
    expect_rejected_as(path, "parameter head.V of the model is missing from the file", 0);

    ur_params *extra = io_model(16, 1, 0, 1);
    ck_assert(ur_params_save(extra, path, err, sizeof err) == 0);
    expect_rejected_as(path, "parameter extra.U is in the file but not in the model", 0);

    ur_params *shape = io_model(8, 0, 0, 1);
    ck_assert(ur_params_save(shape, path, err, sizeof err) == 0);
    ur_params *ps = base_model(4), *ref = base_model(4);
    ck_assert_int_eq(ur_params_load(ps, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: parameter lstm.0.W has shape 4x8 in the file, 4x16 in the model",
             path);
    ck_assert_str_eq(err, want);
    ck_assert(same_bits(ps, ref));

    ur_params_free(missing);
    ur_params_free(extra);
    ur_params_free(shape);
    ur_params_free(ps);
    ur_params_free(ref);
}
END_TEST

/* Builds a file by hand: n_rec records of (name, rows, cols) with data_bytes zero bytes of
 * data each, and a correct checksum. Returns its size. */
static size_t craft(unsigned char *b, int n_rec, const char *const *names, const uint32_t *rows,
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

START_TEST(test_load_crafted)
{
    const char *path = tmp_path("crafted.urm");
    unsigned char b[4096];

    /* A header claiming 2^20 x 2^20 = 2^40 floats: rejected without allocating them. */
    const char *n1[] = {"lstm.0.W"};
    uint32_t r1[] = {1u << 20}, c1[] = {1u << 20};
    size_t d1[] = {64};
    write_bytes(path, b, craft(b, 1, n1, r1, c1, d1));
    expect_rejected(path, "1048576x1048576 = 1099511627776 floats");
    expect_rejected(path, "more than the whole file");

    /* A count far larger than the file could hold. */
    size_t n = craft(b, 1, n1, (uint32_t[]){4}, (uint32_t[]){16}, (size_t[]){256});
    le32(b + 12, 0xffffffffu);
    fix_checksum(b, n);
    write_bytes(path, b, n);
    expect_rejected(path, "truncated");

    /* The same parameter twice. */
    const char *n2[] = {"lstm.0.b", "lstm.0.b"};
    write_bytes(path, b, craft(b, 2, n2, (uint32_t[]){1, 1}, (uint32_t[]){16, 16},
                                (size_t[]){64, 64}));
    expect_rejected_as(path, "parameter lstm.0.b appears twice in the file", 0);

    /* A zero shape and an absurd name length. */
    write_bytes(path, b, craft(b, 1, n1, (uint32_t[]){0}, (uint32_t[]){16}, (size_t[]){0}));
    expect_rejected(path, "invalid shape 0x16");
    n = craft(b, 1, n1, (uint32_t[]){4}, (uint32_t[]){16}, (size_t[]){256});
    le32(b + 16, 100000);
    fix_checksum(b, n);
    write_bytes(path, b, n);
    expect_rejected(path, "implausible name length 100000");
}
END_TEST

START_TEST(test_load_not_a_file)
{
    char err[512];
    write_bytes(tmp_path("empty.urm"), "", 0);
    expect_rejected(tmp_path("empty.urm"), "empty file");
    expect_rejected(tmpdir, "is a directory");
    expect_rejected(tmp_path("absent.urm"), "cannot open: No such file or directory");
    write_bytes(tmp_path("text.urm"), "hello, world, this is not a model\n", 34);
    expect_rejected(tmp_path("text.urm"), "not a libunroll model file");
    ck_assert_int_eq(ur_params_load(NULL, tmp_path("empty.urm"), err, sizeof err), -1);
    ck_assert(ur_params_load_new(NULL, NULL, 0) == NULL);
}
END_TEST

/* ---- Format version 2: metadata, limits, non-finite values ------------------------------ */

START_TEST(test_meta_roundtrip)
{
    const char *path = tmp_path("meta.urm");
    ur_params *a = base_model(1), *b = base_model(2);
    ur_meta *m = ur_meta_new(), *got = ur_meta_new();
    unsigned char vocab[256];
    for (int k = 0; k < 256; k++) vocab[k] = (unsigned char)(255 - k);
    ck_assert(ur_meta_set_string(m, "cell", "lstm") == 0);
    ck_assert(ur_meta_set_int64(m, "steps", 7) == 0);
    ck_assert(ur_meta_set_int64(m, "neg", INT64_MIN) == 0);
    ck_assert(ur_meta_set_float64(m, "dropout", 0.2) == 0);
    ck_assert(ur_meta_set_bytes(m, "vocab", vocab, 256) == 0);
    ck_assert(ur_meta_set_bytes(m, "empty", "", 0) == 0);
    ck_assert(ur_meta_set_string(m, "nothing", "") == 0);
    ck_assert(ur_meta_set_int64(m, "steps", INT64_C(9007199254740993)) == 0); /* replaced */
    ck_assert_int_eq(ur_meta_count(m), 7);
    /* Refused: bad keys, NaN, NULL values. */
    char long_key[300];
    memset(long_key, 'k', sizeof long_key);
    long_key[256] = '\0';
    ck_assert(ur_meta_set_int64(m, long_key, 1) == -1);
    long_key[255] = '\0';
    ck_assert(ur_meta_set_int64(m, long_key, 1) == 0);
    ck_assert(ur_meta_remove(m, long_key) == 0);
    ck_assert(ur_meta_set_int64(m, "", 1) == -1);
    ck_assert(ur_meta_set_float64(m, "x", NAN) == -1);
    ck_assert(ur_meta_set_float64(m, "x", INFINITY) == -1);
    ck_assert(ur_meta_set_string(m, "x", NULL) == -1);
    ck_assert_int_eq(ur_meta_count(m), 7);

    char err[512] = "";
    ck_assert_msg(ur_params_save_meta(a, m, path, err, sizeof err) == 0, "%s", err);
    ck_assert(ur_meta_set_string(got, "stale", "goes away") == 0);
    ck_assert_msg(ur_params_load_meta(b, got, path, err, sizeof err) == 0, "%s", err);
    ck_assert(same_bits(a, b));
    ck_assert_int_eq(ur_meta_count(got), 7);
    ck_assert(ur_meta_type_of(got, "stale") == UR_META_NONE);
    ck_assert_str_eq(ur_meta_string(got, "cell"), "lstm");
    ck_assert_str_eq(ur_meta_string(got, "nothing"), "");
    int64_t i = 0;
    ck_assert(ur_meta_int64(got, "steps", &i) == 0 && i == INT64_C(9007199254740993));
    ck_assert(ur_meta_int64(got, "neg", &i) == 0 && i == INT64_MIN);
    double d = 0;
    ck_assert(ur_meta_float64(got, "dropout", &d) == 0 && d == 0.2);
    size_t len = 0;
    const unsigned char *v = ur_meta_bytes(got, "vocab", &len);
    ck_assert(v && len == 256 && memcmp(v, vocab, 256) == 0);
    ck_assert(ur_meta_bytes(got, "empty", &len) != NULL && len == 0);
    /* A getter of the wrong type finds nothing and leaves its output alone. */
    i = 42;
    ck_assert(ur_meta_int64(got, "cell", &i) == -1 && i == 42);
    ck_assert(ur_meta_string(got, "steps") == NULL);
    ck_assert(ur_meta_bytes(got, "cell", NULL) == NULL);
    ck_assert(ur_meta_type_of(got, "vocab") == UR_META_BYTES);
    ck_assert_str_eq(ur_meta_key(got, 0), "cell");

    /* Plain ur_params_load ignores the records; the file API shows them before any load. */
    ck_assert(ur_params_load(b, path, err, sizeof err) == 0);
    ur_model_file *f = ur_model_file_read(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_int_eq(ur_model_file_version(f), 2);
    ck_assert_int_eq(ur_model_file_count(f), 3);
    int r = 0, c = 0;
    ck_assert_str_eq(ur_model_file_param(f, 2, &r, &c), "head.V");
    ck_assert(r == 16 && c == 5);
    ck_assert_int_eq(ur_model_file_find(f, "lstm.0.b", &r, &c), 1);
    ck_assert(r == 1 && c == 16);
    ck_assert_int_eq(ur_model_file_find(f, "nope", NULL, NULL), -1);
    ck_assert(ur_model_file_param(f, 3, NULL, NULL) == NULL);
    ck_assert_str_eq(ur_meta_string(ur_model_file_meta(f), "cell"), "lstm");
    ur_params *c2 = ur_model_file_new_params(f, err, sizeof err);
    ck_assert(c2 && same_bits(a, c2));
    ur_model_file_free(f);

    ur_params_free(a);
    ur_params_free(b);
    ur_params_free(c2);
    ur_meta_free(m);
    ur_meta_free(got);
}
END_TEST

/* A version 1 file (no metadata section, as written before format 2) still loads. */
START_TEST(test_load_version1)
{
    ur_params *a = base_model(7), *b = base_model(8);
    char err[512];
    const char *path = tmp_path("v1.urm");
    /* Write version 1 by hand from a's values. */
    unsigned char buf[4096];
    size_t n = 0;
    memcpy(buf, "URMODEL", 8);
    le32(buf + 8, 1);
    le32(buf + 12, (uint32_t)ur_params_count(a));
    n = 16;
    for (int i = 0; i < ur_params_count(a); i++) {
        const ur_tensor *t = ur_params_at(a, i);
        size_t len = strlen(t->name);
        le32(buf + n, (uint32_t)len);
        memcpy(buf + n + 4, t->name, len);
        le32(buf + n + 4 + len, (uint32_t)t->rows);
        le32(buf + n + 8 + len, (uint32_t)t->cols);
        n += 12 + len;
        for (size_t k = 0; k < ur_numel(t); k++) {
            uint32_t u;
            memcpy(&u, &t->val[k], 4);
            le32(buf + n, u);
            n += 4;
        }
    }
    n += 8;
    fix_checksum(buf, n);
    write_bytes(path, buf, n);
    ur_meta *m = ur_meta_new();
    ck_assert(ur_meta_set_int64(m, "old", 1) == 0);
    ck_assert_msg(ur_params_load_meta(b, m, path, err, sizeof err) == 0, "%s", err);
    ck_assert(same_bits(a, b));
    ck_assert_int_eq(ur_meta_count(m), 0); /* a version 1 file has no records */
    ur_model_file *f = ur_model_file_read(path, err, sizeof err);
    ck_assert(f && ur_model_file_version(f) == 1);
    ur_model_file_free(f);
    ur_meta_free(m);
    ur_params_free(a);
    ur_params_free(b);
}
END_TEST

/* Version 2 files with one metadata record (key, type, value length as given, value bytes)
 * before one parameter "p" of 1 x 1. Returns the size. */
static size_t craft_meta(unsigned char *b, const char *key, uint32_t key_len, uint32_t type,
                         uint32_t value_len, const void *value, size_t value_bytes)
{
    memcpy(b, "URMODEL", 8);
    le32(b + 8, 2);
    le32(b + 12, 1);
    le32(b + 16, 1);
    size_t n = 20;
    le32(b + n, key_len);
    memcpy(b + n + 4, key, strlen(key));
    n += 4 + strlen(key);
    le32(b + n, type);
    le32(b + n + 4, value_len);
    n += 8;
    memcpy(b + n, value, value_bytes);
    n += value_bytes;
    le32(b + n, 1);
    b[n + 4] = 'p';
    le32(b + n + 5, 1);
    le32(b + n + 9, 1);
    le32(b + n + 13, 0x3f800000u); /* 1.0f */
    n += 17 + 8;
    fix_checksum(b, n);
    return n;
}

static void expect_file_rejected(const char *path, const char *needle)
{
    char err[512] = "";
    ur_meta *m = ur_meta_new();
    ck_assert(ur_meta_set_int64(m, "mine", 5) == 0);
    ur_params *ps = ur_params_new();
    ur_tensor *p = ur_params_add(ps, "p", 1, 1);
    p->val[0] = 2.0f;
    ck_assert_int_eq(ur_params_load_meta(ps, m, path, err, sizeof err), -1);
    ck_assert_msg(strstr(err, needle) != NULL, "error \"%s\" does not say \"%s\"", err, needle);
    ck_assert(p->val[0] == 2.0f);
    int64_t i;
    ck_assert(ur_meta_count(m) == 1 && ur_meta_int64(m, "mine", &i) == 0 && i == 5);
    ck_assert(ur_model_file_read(path, NULL, 0) == NULL);
    ur_meta_free(m);
    ur_params_free(ps);
}

START_TEST(test_load_hostile_meta)
{
    const char *path = tmp_path("meta.urm");
    unsigned char b[8192];
    char err[512];
    uint64_t eight = 0;
    /* The good case first: the crafting is right. */
    write_bytes(path, b, craft_meta(b, "k", 1, UR_META_INT64, 8, &eight, 8));
    ur_model_file *f = ur_model_file_read(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ur_model_file_free(f);

    write_bytes(path, b, craft_meta(b, "", 0, UR_META_INT64, 8, &eight, 8));
    expect_file_rejected(path, "implausible key length 0");
    write_bytes(path, b, craft_meta(b, "k", 300, UR_META_INT64, 8, &eight, 8));
    expect_file_rejected(path, "implausible key length 300");
    write_bytes(path, b, craft_meta(b, "k", 1, 9, 8, &eight, 8));
    expect_file_rejected(path, "unknown type 9");
    write_bytes(path, b, craft_meta(b, "k", 1, UR_META_FLOAT64, 4, &eight, 4));
    expect_file_rejected(path, "a number takes 8 bytes, not 4");
    write_bytes(path, b, craft_meta(b, "k", 1, UR_META_BYTES, 0xfffffff0u, "abc", 3));
    expect_file_rejected(path, "truncated: metadata k needs 4294967280 bytes");
    write_bytes(path, b, craft_meta(b, "k", 1, UR_META_STRING, 3, "a\0b", 3));
    expect_file_rejected(path, "a string holds a NUL byte");
    write_bytes(path, b, craft_meta(b, "k\0x", 3, UR_META_STRING, 1, "a", 1));
    double nan = NAN;
    write_bytes(path, b, craft_meta(b, "k", 1, UR_META_FLOAT64, 8, &nan, 8));
    expect_file_rejected(path, "metadata k is not a finite number");
    /* A record count far beyond the file, and beyond the limit. */
    size_t n = craft_meta(b, "k", 1, UR_META_INT64, 8, &eight, 8);
    le32(b + 16, 1000);
    fix_checksum(b, n);
    write_bytes(path, b, n);
    expect_file_rejected(path, "metadata");
    le32(b + 16, 0xffffffffu);
    fix_checksum(b, n);
    write_bytes(path, b, n);
    expect_file_rejected(path, "more than the 4096 allowed");
    /* The same key twice. */
    memcpy(b, "URMODEL", 8);
    le32(b + 8, 2);
    le32(b + 12, 0);
    le32(b + 16, 2);
    n = 20;
    for (int k = 0; k < 2; k++) {
        le32(b + n, 1);
        b[n + 4] = 'k';
        le32(b + n + 5, UR_META_STRING);
        le32(b + n + 9, 0);
        n += 13;
    }
    n += 8;
    fix_checksum(b, n);
    write_bytes(path, b, n);
    ck_assert(ur_model_file_read(path, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "metadata k appears twice") != NULL, "%s", err);
}
END_TEST

START_TEST(test_nonfinite_refused)
{
    const char *path = tmp_path("nan.urm");
    char err[512] = "";
    ur_params *a = base_model(1);
    ck_assert(ur_params_save(a, path, err, sizeof err) == 0);
    size_t n0;
    unsigned char *before = read_bytes(path, &n0);
    float bad[3] = {NAN, INFINITY, -INFINITY};
    const char *word[3] = {"NaN", "Inf", "Inf"};
    for (int k = 0; k < 3; k++) {
        ur_params *b = base_model(2);
        ur_params_at(b, 1)->val[5] = bad[k];
        ck_assert_int_eq(ur_params_save(b, path, err, sizeof err), -1);
        char want[128];
        snprintf(want, sizeof want, "parameter lstm.0.b holds %s at row 0, column 5", word[k]);
        ck_assert_msg(strstr(err, want) != NULL, "%s", err);
        ur_params_free(b);
    }
    /* The file on disk is the one saved before, and nothing else appeared. */
    size_t n1;
    unsigned char *after = read_bytes(path, &n1);
    ck_assert(n0 == n1 && memcmp(before, after, n0) == 0);
    char names[8][64];
    ck_assert_int_eq(dir_entries(names, 8), 1);

    /* A file holding NaN (valid checksum) is rejected on load, untouched model. */
    uint32_t nan_bits = 0x7fc01234u, inf_bits = 0xff800000u;
    size_t data = 20 + 4 + 8 + 8;
    le32(after + data + 4 * 17, nan_bits);
    fix_checksum(after, n1);
    write_bytes(path, after, n1);
    expect_rejected(path, "parameter lstm.0.W holds NaN at row 1, column 1");
    le32(after + data + 4 * 17, inf_bits);
    fix_checksum(after, n1);
    write_bytes(path, after, n1);
    expect_rejected(path, "parameter lstm.0.W holds Inf at row 1, column 1");
    free(before);
    free(after);
    ur_params_free(a);
}
END_TEST

/* ur_params_add and the format agree: 255-byte names work end to end, 256 are refused. */
START_TEST(test_name_limits)
{
    char name[300], err[512] = "";
    memset(name, 'n', sizeof name);
    name[UR_PARAM_NAME_MAX] = '\0';
    ur_params *a = ur_params_new();
    ck_assert(ur_params_add(a, name, 2, 3) != NULL);
    name[UR_PARAM_NAME_MAX] = 'n';
    name[UR_PARAM_NAME_MAX + 1] = '\0';
    ck_assert(ur_params_add(a, name, 2, 3) == NULL);
    ck_assert_msg(strstr(ur_params_error(a), "1 to 255 bytes") != NULL, "%s", ur_params_error(a));
    const char *path = tmp_path("long.urm");
    ck_assert_msg(ur_params_save(a, path, err, sizeof err) == 0, "%s", err);
    ur_params *b = ur_params_load_new(path, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    ck_assert(same_bits(a, b));
    ck_assert_int_eq((int)strlen(ur_params_at(b, 0)->name), 255);
    /* A file with a 256-byte name is rejected. */
    unsigned char buf[1024];
    const char *n1[] = {name};
    write_bytes(path, buf, craft(buf, 1, n1, (uint32_t[]){1}, (uint32_t[]){1}, (size_t[]){4}));
    expect_rejected(path, "implausible name length 256 (1 to 255 expected)");
    ur_params_free(a);
    ur_params_free(b);
}
END_TEST

/* ---- Saving: long names, symbolic links, kills ----------------------------------------- */

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

/* ---- Sampling --------------------------------------------------------------------------- */

static const float LOGITS[6] = {0.1f, 2.0f, -1.0f, 1.7f, 0.5f, -0.3f};

START_TEST(test_sample_greedy)
{
    ur_rng r;
    ur_rng_seed(&r, 1);
    ck_assert_int_eq(ur_argmax(LOGITS, 6), 1);
    ck_assert_int_eq(ur_sample_logits(LOGITS, 6, 0.0f, 0, NULL), 1);
    for (int k = 0; k < 1000; k++) {
        ck_assert_int_eq(ur_sample_logits(LOGITS, 6, 1e-4f, 0, &r), 1);
        ck_assert_int_eq(ur_sample_logits(LOGITS, 6, 1.0f, 1, &r), 1);
        ck_assert_int_eq(ur_sample_logits(LOGITS, 6, 5.0f, 1, &r), 1);
    }
    /* Ties: the first maximum. NaN and -inf are never chosen. */
    const float tie[4] = {NAN, 3.0f, 3.0f, -INFINITY};
    ck_assert_int_eq(ur_argmax(tie, 4), 1);
    const float none[3] = {NAN, -INFINITY, NAN};
    ck_assert_int_eq(ur_argmax(none, 3), -1);
    ck_assert_int_eq(ur_sample_logits(none, 3, 1.0f, 0, &r), -1);
    /* Bad arguments. */
    ck_assert_int_eq(ur_sample_logits(NULL, 6, 1.0f, 0, &r), -1);
    ck_assert_int_eq(ur_sample_logits(LOGITS, 0, 1.0f, 0, &r), -1);
    ck_assert_int_eq(ur_sample_logits(LOGITS, 6, -1.0f, 0, &r), -1);
    ck_assert_int_eq(ur_sample_logits(LOGITS, 6, NAN, 0, &r), -1);
    ck_assert_int_eq(ur_sample_logits(LOGITS, 6, 1.0f, 0, NULL), -1);
}
END_TEST

START_TEST(test_sample_seeded)
{
    ur_rng r1, r2, r3;
    ur_rng_seed(&r1, 42);
    ur_rng_seed(&r2, 42);
    ur_rng_seed(&r3, 43);
    int differ = 0;
    for (int k = 0; k < 200; k++) {
        int a = ur_sample_logits(LOGITS, 6, 1.0f, 0, &r1);
        int b = ur_sample_logits(LOGITS, 6, 1.0f, 0, &r2);
        int c = ur_sample_logits(LOGITS, 6, 1.0f, 0, &r3);
        ck_assert_int_eq(a, b);
        ck_assert(a >= 0 && a < 6 && c >= 0 && c < 6);
        differ += a != c;
    }
    ck_assert(differ > 0);
}
END_TEST

/* Draws n samples and checks each frequency against p within 5 standard errors. */
static void check_frequencies(const float *x, int k, float temp, int top_k, const double *p,
                              uint64_t seed)
{
    enum { N = 100000 };
    long count[64] = {0};
    ur_rng r;
    ur_rng_seed(&r, seed);
    for (int s = 0; s < N; s++) {
        int i = ur_sample_logits(x, k, temp, top_k, &r);
        ck_assert(i >= 0 && i < k);
        count[i]++;
    }
    for (int i = 0; i < k; i++) {
        double f = (double)count[i] / N, se = sqrt(p[i] * (1 - p[i]) / N);
        if (p[i] == 0.0) ck_assert_msg(count[i] == 0, "index %d drawn %ld times", i, count[i]);
        else ck_assert_msg(fabs(f - p[i]) < 5 * se + 1e-9, "index %d: freq %.5f, p %.5f (T %g, top_k %d)",
                           i, f, p[i], temp, top_k);
    }
}

/* softmax(x / T) over the kept indices (keep == NULL: all), in double. */
static void softmax_ref(const float *x, int k, double t, const int *keep, double *p)
{
    double m = -INFINITY, z = 0.0;
    for (int i = 0; i < k; i++)
        if (!keep || keep[i]) m = fmax(m, x[i]);
    for (int i = 0; i < k; i++) {
        p[i] = (!keep || keep[i]) ? exp((x[i] - m) / t) : 0.0;
        z += p[i];
    }
    for (int i = 0; i < k; i++) p[i] /= z;
}

START_TEST(test_sample_frequencies)
{
    double p[6];
    softmax_ref(LOGITS, 6, 1.0, NULL, p);
    check_frequencies(LOGITS, 6, 1.0f, 0, p, 5);
    softmax_ref(LOGITS, 6, 0.5, NULL, p);
    check_frequencies(LOGITS, 6, 0.5f, 0, p, 6);
    softmax_ref(LOGITS, 6, 3.0, NULL, p);
    check_frequencies(LOGITS, 6, 3.0f, 6, p, 7); /* top_k >= k keeps all */

    /* Top 3 of {0.1, 2.0, -1.0, 1.7, 0.5, -0.3} are indices 1, 3, 4. */
    const int keep[6] = {0, 1, 0, 1, 1, 0};
    softmax_ref(LOGITS, 6, 1.0, keep, p);
    check_frequencies(LOGITS, 6, 1.0f, 3, p, 8);

    /* Huge logits: stable. NaN and -inf are never drawn. */
    const float big[4] = {1000.0f, 999.0f, NAN, -INFINITY};
    const double pb[4] = {1 / (1 + exp(-1.0)), exp(-1.0) / (1 + exp(-1.0)), 0, 0};
    check_frequencies(big, 4, 1.0f, 0, pb, 9);

    /* Ties at the top-k cut-off are all kept. */
    const float tie[4] = {1.0f, 1.0f, 1.0f, 0.0f};
    const double pt[4] = {1 / 3.0, 1 / 3.0, 1 / 3.0, 0};
    check_frequencies(tie, 4, 1.0f, 2, pt, 10);

    /* +inf: uniform over the infinite logits. */
    const float inf[4] = {INFINITY, 5.0f, INFINITY, 1.0f};
    const double pi[4] = {0.5, 0, 0.5, 0};
    check_frequencies(inf, 4, 1.0f, 0, pi, 11);
}
END_TEST

START_TEST(test_sample_top_k_large)
{
    enum { K = 50000, K2 = 1000 };
    static float x[K];
    ur_rng r;
    ur_rng_seed(&r, 4);
    for (int i = 0; i < K; i++) x[i] = ur_rng_normal(&r);
    /* Ten clear winners at known places: top_k 10 (the stack heap) draws only them. */
    for (int j = 0; j < 10; j++) x[j * 4999] = 10.0f + 0.1f * j;
    for (int s = 0; s < 300; s++) {
        int i = ur_sample_logits(x, K, 2.0f, 10, &r);
        ck_assert_msg(i >= 0 && i % 4999 == 0 && i / 4999 < 10, "drew %d", i);
    }

    /* Above the heap's bound the bisection takes over: 300 winners among 1000. */
    for (int i = 0; i < K2; i++) x[i] = ur_rng_normal(&r);
    for (int j = 0; j < 300; j++) x[j * 3 + 1] = 20.0f + 0.01f * j;
    for (int s = 0; s < 30; s++) {
        int i = ur_sample_logits(x, K2, 50.0f, 300, &r);
        ck_assert_msg(i >= 0 && i % 3 == 1 && i / 3 < 300, "drew %d", i);
    }
    /* top_k 301 adds exactly the best of the others; a high temperature makes the 301 kept
     * nearly equally likely, so it shows up about 3000 / 301 times. */
    int best_other = -1;
    for (int i = 0; i < K2; i++)
        if ((i % 3 != 1 || i / 3 >= 300) && (best_other < 0 || x[i] > x[best_other])) best_other = i;
    int outside = 0;
    for (int s = 0; s < 3000; s++) {
        int i = ur_sample_logits(x, K2, 1000.0f, 301, &r);
        ck_assert_msg(i == best_other || (i % 3 == 1 && i / 3 < 300), "drew %d", i);
        outside += i == best_other;
    }
    ck_assert_msg(outside > 0 && outside < 40, "best other drawn %d times", outside);
}
END_TEST

static Suite *modelio_suite(void)
{
    Suite *s = suite_create("modelio");
    TCase *io = tcase_create("modelio");
    tcase_set_timeout(io, 120); /* the kill tests take seconds under sanitizers and load */
    tcase_add_unchecked_fixture(io, io_root_setup, io_root_teardown);
    tcase_add_checked_fixture(io, io_setup, io_teardown);
    tcase_add_test(io, test_save_load_roundtrip);
    tcase_add_test(io, test_save_errors);
    tcase_add_test(io, test_load_corrupt);
    tcase_add_test(io, test_load_mismatch);
    tcase_add_test(io, test_load_crafted);
    tcase_add_test(io, test_load_not_a_file);
    tcase_add_test(io, test_meta_roundtrip);
    tcase_add_test(io, test_load_version1);
    tcase_add_test(io, test_load_hostile_meta);
    tcase_add_test(io, test_nonfinite_refused);
    tcase_add_test(io, test_name_limits);
    tcase_add_test(io, test_save_long_file_name);
    tcase_add_test(io, test_save_symlink);
    tcase_add_test(io, test_save_killed);
    tcase_add_test(io, test_save_killed_no_tmpfile);
    suite_add_tcase(s, io);

    TCase *smp = tcase_create("sample");
    tcase_set_timeout(smp, 60);
    tcase_add_test(smp, test_sample_greedy);
    tcase_add_test(smp, test_sample_seeded);
    tcase_add_test(smp, test_sample_frequencies);
    tcase_add_test(smp, test_sample_top_k_large);
    suite_add_tcase(s, smp);
    return s;
}

int main(void) { return ur_test_run(modelio_suite()); }
