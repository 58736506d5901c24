/* Text data for the character-level examples: reading a file or the system's license
 * texts, a byte vocabulary, and encoding bytes as ids. */
#ifndef UR_EXAMPLES_TEXT_H
#define UR_EXAMPLES_TEXT_H

#include <stddef.h>

/* Bytes read into memory (owned; free with ex_text_free). */
typedef struct ex_text {
    unsigned char *bytes;
    size_t n;
} ex_text;

/* The most text the examples read: 256 MiB (char_lm keeps 5 bytes per character). */
#define EX_TEXT_MAX_BYTES ((size_t)256 << 20)

/* Reads the whole file at path, which must be a regular file (a symbolic link to one is
 * followed) of at most max bytes: a directory, FIFO, device or socket is refused without
 * blocking or reading, and so is a larger file. Returns 0, or -1 with a message in err. */
int ex_text_read_file(ex_text *t, const char *path, size_t max, char *err, size_t errlen);
/* Concatenates the regular files (symbolic links skipped, so no text appears twice) of the
 * directory dir, in strcmp order of their names, at most max bytes in all. Returns 0, or -1
 * with a message in err. */
int ex_text_read_dir(ex_text *t, const char *dir, size_t max, char *err, size_t errlen);
/* Frees the bytes. */
void ex_text_free(ex_text *t);

/* The bytes that occur, mapped to dense ids 0..size-1 in increasing byte order. */
typedef struct ex_vocab {
    int size;
    unsigned char byte[256];  /* id -> byte */
    int id[256];              /* byte -> id, or -1 when the byte is not in the vocabulary */
} ex_vocab;

/* The vocabulary of the bytes occurring in b[0..n). */
void ex_vocab_build(ex_vocab *v, const unsigned char *b, size_t n);
/* Sets v from a list of size distinct bytes (e.g. from a checkpoint). 0, or -1 on repeats. */
int ex_vocab_set(ex_vocab *v, const unsigned char *bytes, int size);
/* Writes the ids of b[0..n) into ids. Returns 0, or -1 with a message in err naming the
 * first byte outside the vocabulary and its offset. */
int ex_vocab_encode(const ex_vocab *v, const unsigned char *b, size_t n, int *ids, char *err,
                    size_t errlen);

#endif
