/* Helpers shared by the model file tests (tests/modelio_util.c). */
#ifndef UR_TEST_MODELIO_UTIL_H
#define UR_TEST_MODELIO_UTIL_H

#include "tests/ur_test.h"

/* Each test gets its own directory tmpdir inside rootdir. rootdir belongs to the test case
 * (an unchecked fixture, run by the parent process), so it is removed even when a test
 * fails and its forked process exits early. */
extern char rootdir[64], tmpdir[128];

/* A test case whose tests each run in a fresh tmpdir. */
TCase *io_tcase(const char *name);
/* Removes path and, if it is a directory, everything below it. */
void remove_tree(const char *path);
/* tmpdir/name (the last four results stay valid). */
const char *tmp_path(const char *name);
/* Entries of tmpdir other than . and .. (their names, up to max, in names). */
int dir_entries(char names[][64], int max);
/* A model like a small LSTM language model; w_cols changes the first shape, extra adds a
 * parameter, drop_head leaves the last one out. */
ur_params *io_model(int w_cols, int extra, int drop_head, uint64_t seed);
/* io_model(16, 0, 0, seed). */
ur_params *base_model(uint64_t seed);
/* 1 if every value of a and b is the same bit pattern (and names and shapes agree). */
int same_bits(const ur_params *a, const ur_params *b);
/* The whole file at path (64 spare bytes at the end); its size in *n. */
unsigned char *read_bytes(const char *path, size_t *n);
/* Writes n bytes to path. */
void write_bytes(const char *path, const void *b, size_t n);
/* x as 4 little-endian bytes at b. */
void le32(unsigned char *b, uint32_t x);
/* Rewrites the last 8 bytes as the FNV-1a 64 of everything before them (written out here
 * independently of the library). */
void fix_checksum(unsigned char *b, size_t n);
/* Loading path into a fresh base model must fail with a message containing needle and
 * leave every value unchanged. file_bad: the file itself is bad, so load_new fails too. */
void expect_rejected_as(const char *path, const char *needle, int file_bad);
/* expect_rejected_as(path, needle, 1). */
void expect_rejected(const char *path, const char *needle);
/* Builds a version 1 file by hand: n_rec records of (name, rows, cols) with data_bytes zero
 * bytes of data each, and a correct checksum. Returns its size. */
size_t craft(unsigned char *b, int n_rec, const char *const *names, const uint32_t *rows,
             const uint32_t *cols, const size_t *data_bytes);

#endif
