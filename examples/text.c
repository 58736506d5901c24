#define _POSIX_C_SOURCE 200809L
#include "text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Appends the regular file at path to t, keeping t->n <= max. The file is opened without
 * blocking (a FIFO must not hang us) and checked with fstat on the open descriptor, so what
 * is read is what was checked: a FIFO, a device (/dev/zero) or a socket is refused, and a
 * file that is, or grows while read to be, larger than the cap is refused without reading
 * past it. */
static int append_file(ex_text *t, const char *path, size_t max, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is a directory, not a text file", path);
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file (a FIFO, a device or a socket): only "
                 "regular files are read as text", path);
        goto done;
    }
    size_t room = max - t->n;
    if ((uintmax_t)st.st_size > room) {
        snprintf(err, errlen, "%s is too large: %jd bytes, and at most %zu bytes of text are "
                 "read (%zu MiB%s)", path, (intmax_t)st.st_size, max, max >> 20,
                 t->n ? " in all" : "");
        goto done;
    }
    /* Room for the size fstat gave plus one byte, to notice a file that grew since. */
    size_t cap = (size_t)st.st_size + 1, got = 0;
    for (;;) {
        if (got == cap || got == 0) {
            if (got > room) {
                snprintf(err, errlen, "%s grew while being read to more than %zu bytes", path,
                         max);
                goto done;
            }
            if (got == cap) {
                size_t more = got < ((size_t)1 << 20) ? got : ((size_t)1 << 20);
                cap += more < room + 1 - got ? more : room + 1 - got;
            }
            unsigned char *nb = realloc(t->bytes, t->n + cap);
            if (!nb) {
                snprintf(err, errlen, "out of memory reading %s (%zu bytes)", path, cap);
                goto done;
            }
            t->bytes = nb;
        }
        ssize_t r = read(fd, t->bytes + t->n + got, cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    if (got > room) {
        snprintf(err, errlen, "%s grew while being read to more than %zu bytes", path, max);
        goto done;
    }
    t->n += got;
    rc = 0;
done:
    close(fd);
    return rc;
}

int ex_text_read_file(ex_text *t, const char *path, size_t max, char *err, size_t errlen)
{
    t->bytes = NULL;
    t->n = 0;
    if (append_file(t, path, max, err, errlen) != 0) {
        ex_text_free(t);
        return -1;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ex_text_read_dir(ex_text *t, const char *dir, size_t max, char *err, size_t errlen)
{
    t->bytes = NULL;
    t->n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open the directory %s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) { rc = -1; break; }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) { rc = -1; break; }
        n++;
    }
    closedir(d);
    if (rc != 0) snprintf(err, errlen, "out of memory listing %s", dir);
    else qsort(names, n, sizeof *names, by_name);
    for (size_t k = 0; k < n && rc == 0; k++) {
        char path[4096];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, names[k]) >= (int)sizeof path) continue;
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        rc = append_file(t, path, max, err, errlen);
    }
    for (size_t k = 0; k < n; k++) free(names[k]);
    free(names);
    if (rc == 0 && t->n == 0) {
        snprintf(err, errlen, "no text in the regular files of %s", dir);
        rc = -1;
    }
    if (rc != 0) ex_text_free(t);
    return rc;
}

void ex_text_free(ex_text *t)
{
    free(t->bytes);
    t->bytes = NULL;
    t->n = 0;
}

void ex_vocab_build(ex_vocab *v, const unsigned char *b, size_t n)
{
    int seen[256] = {0};
    for (size_t k = 0; k < n; k++) seen[b[k]] = 1;
    v->size = 0;
    for (int c = 0; c < 256; c++) {
        v->id[c] = seen[c] ? v->size : -1;
        if (seen[c]) v->byte[v->size++] = (unsigned char)c;
    }
}

int ex_vocab_set(ex_vocab *v, const unsigned char *bytes, int size)
{
    if (size < 1 || size > 256) return -1;
    for (int c = 0; c < 256; c++) v->id[c] = -1;
    for (int k = 0; k < size; k++) {
        if (v->id[bytes[k]] >= 0) return -1;
        v->id[bytes[k]] = k;
        v->byte[k] = bytes[k];
    }
    v->size = size;
    return 0;
}

int ex_vocab_encode(const ex_vocab *v, const unsigned char *b, size_t n, int *ids, char *err,
                    size_t errlen)
{
    for (size_t k = 0; k < n; k++) {
        ids[k] = v->id[b[k]];
        if (ids[k] < 0) {
            if (b[k] >= 0x20 && b[k] < 0x7f)
                snprintf(err, errlen, "'%c' (byte 0x%02x) at offset %zu is not in the model's "
                         "vocabulary", b[k], b[k], k);
            else
                snprintf(err, errlen, "byte 0x%02x at offset %zu is not in the model's "
                         "vocabulary", b[k], k);
            return -1;
        }
    }
    return 0;
}
