/* Model files: save and load, and every way a file can be wrong (corrupt, mismatched,
 * crafted, not a regular file); and sampling from logits. Metadata records are in
 * test_modelmeta.c, saving to odd targets and killed saves in test_modelsave.c. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/modelio_util.h"

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

int main(void)
{
    Suite *s = suite_create("modelio");
    TCase *io = io_tcase("modelio");
    tcase_add_test(io, test_save_load_roundtrip);
    tcase_add_test(io, test_save_errors);
    tcase_add_test(io, test_load_corrupt);
    tcase_add_test(io, test_load_mismatch);
    tcase_add_test(io, test_load_crafted);
    tcase_add_test(io, test_load_not_a_file);
    suite_add_tcase(s, io);

    TCase *smp = tcase_create("sample");
    tcase_set_timeout(smp, 60);
    tcase_add_test(smp, test_sample_greedy);
    tcase_add_test(smp, test_sample_seeded);
    tcase_add_test(smp, test_sample_frequencies);
    tcase_add_test(smp, test_sample_top_k_large);
    suite_add_tcase(s, smp);
    return ur_test_run(s);
}
