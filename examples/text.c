#define _POSIX_C_SOURCE 200809L
#include "text.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Appends the file at path to t (t->bytes grows by realloc). */
static int append_file(ex_text *t, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        unsigned char *nb = realloc(t->bytes, t->n + got);
        if (!nb) {
            snprintf(err, errlen, "out of memory reading %s", path);
            rc = -1;
            break;
        }
        t->bytes = nb;
        memcpy(t->bytes + t->n, buf, got);
        t->n += got;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

int ex_text_read_file(ex_text *t, const char *path, char *err, size_t errlen)
{
    t->bytes = NULL;
    t->n = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is a directory, not a text file", path);
        return -1;
    }
    if (append_file(t, path, err, errlen) != 0) {
        ex_text_free(t);
        return -1;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ex_text_read_dir(ex_text *t, const char *dir, char *err, size_t errlen)
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
        rc = append_file(t, path, err, errlen);
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
