/* The examples' shared plumbing (examples/common.c): strict number parsing, option parsing
 * and checked output. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "examples/common.h"
#include "ur_test.h"

static void int_ok(const char *s, long long min, long long max, long long want)
{
    long long v = -12345;
    char err[256] = "";
    ck_assert_msg(ex_parse_int(s, min, max, &v, err, sizeof err) == 0, "'%s': %s", s, err);
    ck_assert_msg(v == want, "'%s' gave %lld, want %lld", s, v, want);
}

static void int_bad(const char *s, long long min, long long max, const char *needle)
{
    long long v = 777;
    char err[256] = "";
    ck_assert_msg(ex_parse_int(s, min, max, &v, err, sizeof err) == -1, "'%s' accepted", s);
    ck_assert_msg(strstr(err, needle) != NULL, "'%s': \"%s\" does not say \"%s\"", s, err, needle);
    ck_assert_msg(v == 777, "'%s': rejected but *out changed", s);
}

START_TEST(test_parse_int)
{
    int_ok("5", 0, 10, 5);
    int_ok("0", 0, 10, 0);
    int_ok("-0", -1, 1, 0);
    int_ok("-7", -10, 10, -7);
    int_ok("2147483647", 0, 2147483647, 2147483647);
    int_ok("-9223372036854775808", LLONG_MIN, 0, LLONG_MIN);
    int_ok("9223372036854775807", 0, LLONG_MAX, LLONG_MAX);
    int_ok("007", 0, 10, 7);
    /* The forms a sloppy strtod/strtol accepts. */
    const char *junk[] = {" 5", "5 ", "+3", "0x10", "1e3", "1.0", "1.5", "", "-", "--1", "5a",
                          "inf", "nan", "1,000", "\t5", "5\n", "١"};
    for (size_t k = 0; k < sizeof junk / sizeof *junk; k++) int_bad(junk[k], -100, 10000, "not a whole number");
    /* Ranges are printed as integers. */
    int_bad("4097", 1, 4096, "4097 is outside [1, 4096]");
    int_bad("-1", 0, 2147483647, "-1 is outside [0, 2147483647]");
    int_bad("9223372036854775808", 0, LLONG_MAX, "outside");
    int_bad("-9223372036854775809", LLONG_MIN, 0, "outside");
    int_bad("99999999999999999999999", 0, 10, "outside [0, 10]");
}
END_TEST

static void float_ok(const char *s, double min, double max, double want)
{
    double v = -1;
    char err[256] = "";
    ck_assert_msg(ex_parse_float(s, min, max, &v, err, sizeof err) == 0, "'%s': %s", s, err);
    ck_assert_msg(v == want, "'%s' gave %g, want %g", s, v, want);
}

static void float_bad(const char *s, double min, double max, const char *needle)
{
    double v = 777;
    char err[256] = "";
    ck_assert_msg(ex_parse_float(s, min, max, &v, err, sizeof err) == -1, "'%s' accepted", s);
    ck_assert_msg(strstr(err, needle) != NULL, "'%s': \"%s\" does not say \"%s\"", s, err, needle);
    ck_assert(v == 777);
}

START_TEST(test_parse_float)
{
    float_ok("0.5", 0, 1, 0.5);
    float_ok("5", 0, 10, 5);
    float_ok("-3", -10, 10, -3);
    float_ok("1e-4", 0, 1, 1e-4);
    float_ok("1E-4", 0, 1, 1e-4);
    float_ok("2.5e+1", 0, 100, 25);
    float_ok(".25", 0, 1, 0.25);
    float_ok("3.", 0, 10, 3);
    float_ok("0", 0, 1, 0);
    float_ok("0e-999", 0, 1, 0);  /* zero, written oddly: not an underflow */
    const char *junk[] = {" 1", "1 ", "+1", "0x10", "0x1p3", "inf", "-inf", "nan", "infinity",
                          "", ".", "-", "e5", "1e", "1e+", "1.2.3", "1,5", "abc"};
    for (size_t k = 0; k < sizeof junk / sizeof *junk; k++) float_bad(junk[k], -1e9, 1e9, "not a number");
    float_bad("1e-400", 0, 1, "out of range (too small in magnitude");
    float_bad("-1e-400", -1, 1, "underflows");
    float_bad("1e-45", 0, 1, "underflows");      /* a double, but a float denormal */
    float_bad("1e400", 0, 1e9, "out of range (too large");
    float_bad("1e39", 0, 1e40, "out of range");  /* a double, not a float */
    float_bad("5", 0, 1, "5 is outside [0, 1]");
}
END_TEST

/* ex_parse drives the same parsers and prints the reason. */
START_TEST(test_parse_options)
{
    int n = 3, flag = 0;
    float x = 0.5f;
    const char *s = NULL;
    const ex_opt opts[] = {
        {"n", EX_INT, &n, 1, 4096, "an integer"},
        {"x", EX_FLOAT, &x, 0, 1, "a float"},
        {"s", EX_STRING, &s, 0, 0, "a string"},
        {"flag", EX_FLAG, &flag, 0, 0, "a flag"},
    };
    char *ok[] = {"prog", "--n", "7", "--x=0.25", "--s", "hi", "--flag"};
    ck_assert_int_eq(ex_parse(7, ok, 1, "prog", "usage", opts, 4), 0);
    ck_assert_int_eq(n, 7);
    ck_assert(x == 0.25f && flag == 1 && strcmp(s, "hi") == 0);
    char *bad[][3] = {{"prog", "--n", " 5"}, {"prog", "--n", "+3"}, {"prog", "--n", "0x10"},
                      {"prog", "--n", "1e3"}, {"prog", "--x", "1e-400"}, {"prog", "--n", "5000"},
                      {"prog", "--bogus", "1"}, {"prog", "--s", ""}};
    /* stderr is noisy here; the messages are checked through the parsers above. */
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        ck_assert_msg(ex_parse(3, bad[k], 1, "prog", "usage", opts, 4) == -1, "%s %s accepted",
                      bad[k][1], bad[k][2]);
    ck_assert_int_eq(n, 7);
}
END_TEST

/* --smoke applies its option list first, wherever it stands, so options beside it still win;
 * a choice accepts only its values; a smoke list with a bad value is an error. */
START_TEST(test_parse_smoke_and_choices)
{
    int steps = 1000, eval = 50;
    const char *cell = "elman";
    const ex_opt opts[] = {
        {"steps", EX_INT, &steps, 1, 100000, "steps"},
        {"eval", EX_INT, &eval, 1, 1000, "eval"},
        {"cell", EX_CHOICE, &(ex_choice){&cell, "elman|lstm|gru"}, 0, 0, "cell"},
        {"smoke", EX_SMOKE, (const char *[]){"--steps=20", "--eval", "5", NULL}, 0, 0, "quick"},
    };
    char *a1[] = {"prog", "--smoke"};
    ck_assert_int_eq(ex_parse(2, a1, 1, "prog", "usage", opts, 4), 0);
    ck_assert(steps == 20 && eval == 5 && strcmp(cell, "elman") == 0);
    steps = 1000, eval = 50;
    char *a2[] = {"prog", "--steps", "77", "--smoke", "--cell", "gru"};
    ck_assert_int_eq(ex_parse(6, a2, 1, "prog", "usage", opts, 4), 0);
    ck_assert(steps == 77 && eval == 5 && strcmp(cell, "gru") == 0);
    steps = 1000, eval = 50;
    char *a3[] = {"prog", "--eval", "9"};
    ck_assert_int_eq(ex_parse(3, a3, 1, "prog", "usage", opts, 4), 0);
    ck_assert(steps == 1000 && eval == 9);
    char *bad[][3] = {{"prog", "--cell", "lst"}, {"prog", "--cell", "lstmx"},
                      {"prog", "--cell", ""}, {"prog", "--smoke=1", "--eval"}};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        ck_assert_msg(ex_parse(3, bad[k], 1, "prog", "usage", opts, 4) == -1, "%s %s accepted",
                      bad[k][1], bad[k][2]);
    ck_assert_str_eq(cell, "gru");
    const ex_opt broken[] = {
        {"eval", EX_INT, &eval, 1, 1000, "eval"},
        {"smoke", EX_SMOKE, (const char *[]){"--eval=0", NULL}, 0, 0, "quick"},
    };
    ck_assert_int_eq(ex_parse(2, a1, 1, "prog", "usage", broken, 2), -1);
}
END_TEST

/* Writing to /dev/full fails at the flush; ex_close_output must say so. */
START_TEST(test_close_output_full)
{
    FILE *f = fopen("/dev/full", "w");
    if (!f) return; /* no /dev/full here */
    fprintf(f, "step,loss\n1,2.0\n");
    ck_assert_int_eq(ex_close_output(f, "/dev/full", "test"), -1);
    FILE *g = fopen("/dev/null", "w");
    ck_assert(g != NULL);
    fprintf(g, "fine\n");
    ck_assert_int_eq(ex_close_output(g, "/dev/null", "test"), 0);
    ck_assert_int_eq(ex_close_output(NULL, "none", "test"), 0);
    /* An error in an early write is reported even if the buffer was flushed since. */
    FILE *h = fopen("/dev/full", "w");
    ck_assert(h != NULL);
    setvbuf(h, NULL, _IONBF, 0);
    fprintf(h, "lost\n");
    ck_assert_int_eq(ex_close_output(h, "/dev/full", "test"), -1);
}
END_TEST

static Suite *excommon_suite(void)
{
    Suite *s = suite_create("excommon");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_int);
    tcase_add_test(tc, test_parse_float);
    tcase_add_test(tc, test_parse_options);
    tcase_add_test(tc, test_parse_smoke_and_choices);
    tcase_add_test(tc, test_close_output_full);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return ur_test_run(excommon_suite()); }
