/* Model files, format version 2: metadata records (round trip, hostile records), version 1
 * files, non-finite values and the name limits shared by the format and ur_params_add. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/modelio_util.h"

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


int main(void)
{
    Suite *s = suite_create("modelmeta");
    TCase *io = io_tcase("modelmeta");
    tcase_add_test(io, test_meta_roundtrip);
    tcase_add_test(io, test_load_version1);
    tcase_add_test(io, test_load_hostile_meta);
    tcase_add_test(io, test_nonfinite_refused);
    tcase_add_test(io, test_name_limits);
    suite_add_tcase(s, io);
    return ur_test_run(s);
}
