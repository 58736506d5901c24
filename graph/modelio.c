/* Model files: save and load a parameter set.
 *
 * Layout, all integers little-endian, floats as IEEE-754 binary32 little-endian:
 *   magic     8 bytes  "URMODEL\0"
 *   version   u32      UR_MODEL_FORMAT_VERSION
 *   count     u32      number of parameters
 *   count times:
 *     name_len u32     1..255
 *     name     name_len bytes, no NUL
 *     rows     u32     >= 1
 *     cols     u32     >= 1
 *     data     rows * cols floats, row-major
 *   checksum  u64      FNV-1a 64 of every byte before it
 *
 * Save writes path.tmp.XXXXXX in the same directory, fsyncs it and renames it over path, so
 * a crash leaves either the old file or the new one. Load reads the whole file, checks its
 * structure against its size (a header cannot make us allocate more than the file holds),
 * the checksum, and that names and shapes match the model, before it copies anything.
 */
#define _POSIX_C_SOURCE 200809L
#include "graph/ur_train.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char MAGIC[8] = {'U', 'R', 'M', 'O', 'D', 'E', 'L', 0};
#define HEADER_BYTES 16u   /* magic, version, count */
#define CHECKSUM_BYTES 8u
#define NAME_LEN_MAX 255u

static void set_err(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- FNV-1a 64 and little-endian coding -------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t k = 0; k < n; k++) h = (h ^ p[k]) * FNV_PRIME;
    return h;
}

static void put_u32(unsigned char *b, uint32_t x)
{
    for (int k = 0; k < 4; k++) b[k] = (unsigned char)(x >> (8 * k));
}

static uint32_t get_u32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(const unsigned char *b)
{
    return (uint64_t)get_u32(b) | (uint64_t)get_u32(b + 4) << 32;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- Save ------------------------------------------------------------------------------- */

typedef struct writer {
    FILE *f;
    uint64_t hash;
    int failed;
} writer;

static void w_bytes(writer *w, const void *p, size_t n)
{
    w->hash = fnv1a(w->hash, p, n);
    if (!w->failed && fwrite(p, 1, n, w->f) != n) w->failed = 1;
}

static void w_u32(writer *w, uint32_t x)
{
    unsigned char b[4];
    put_u32(b, x);
    w_bytes(w, b, 4);
}

static void w_floats(writer *w, const float *x, size_t n)
{
    unsigned char buf[4096];
    while (n > 0) {
        size_t chunk = n < sizeof buf / 4 ? n : sizeof buf / 4;
        for (size_t k = 0; k < chunk; k++) put_u32(buf + 4 * k, float_bits(x[k]));
        w_bytes(w, buf, 4 * chunk);
        x += chunk;
        n -= chunk;
    }
}

static void write_model(writer *w, const ur_params *ps)
{
    int count = ur_params_count(ps);
    w_bytes(w, MAGIC, sizeof MAGIC);
    w_u32(w, UR_MODEL_FORMAT_VERSION);
    w_u32(w, (uint32_t)count);
    for (int i = 0; i < count; i++) {
        const ur_tensor *t = ur_params_at(ps, i);
        size_t len = strlen(t->name);
        w_u32(w, (uint32_t)len);
        w_bytes(w, t->name, len);
        w_u32(w, (uint32_t)t->rows);
        w_u32(w, (uint32_t)t->cols);
        w_floats(w, t->val, ur_numel(t));
    }
    unsigned char sum[8];
    put_u32(sum, (uint32_t)w->hash);
    put_u32(sum + 4, (uint32_t)(w->hash >> 32));
    if (!w->failed && fwrite(sum, 1, sizeof sum, w->f) != sizeof sum) w->failed = 1;
}

/* Makes the rename durable: fsync the directory that holds path (best effort). */
static void sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash) strcpy(dir, ".");
    else if (slash == path) strcpy(dir, "/");
    else if ((size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    } else return;
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int ur_params_save(const ur_params *ps, const char *path, char *err, size_t errlen)
{
    if (!ps || !path || !*path) {
        set_err(err, errlen, "params_save: %s", ps ? "empty path" : "no parameter set");
        return -1;
    }
    for (int i = 0; i < ur_params_count(ps); i++)
        if (strlen(ur_params_at(ps, i)->name) > NAME_LEN_MAX) {
            set_err(err, errlen, "%s: parameter name longer than %u bytes", path, NAME_LEN_MAX);
            return -1;
        }
    static const char suffix[] = ".tmp.XXXXXX";
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof suffix);
    if (!tmp) {
        set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    /* mkstemp makes the file 0600; keep the mode of the file we replace, else 0644. */
    struct stat st;
    (void)fchmod(fd, stat(path, &st) == 0 ? (st.st_mode & 07777) : 0644);
    writer w = {fdopen(fd, "wb"), FNV_OFFSET, 0};
    if (!w.f) {
        set_err(err, errlen, "%s: cannot open temporary file %s: %s", path, tmp, strerror(errno));
        close(fd);
        goto fail;
    }
    write_model(&w, ps);
    if (w.failed || fflush(w.f) != 0 || fsync(fd) != 0) {
        set_err(err, errlen, "%s: cannot write temporary file %s: %s", path, tmp, strerror(errno));
        fclose(w.f);
        goto fail;
    }
    if (fclose(w.f) != 0) {
        set_err(err, errlen, "%s: cannot close temporary file %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        set_err(err, errlen, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    sync_dir_of(path);
    free(tmp);
    return 0;
fail:
    unlink(tmp);
    free(tmp);
    return -1;
}

/* ---- Load ------------------------------------------------------------------------------- */

/* Reads the whole regular file at path into *buf (malloc'd, caller frees). */
static int read_whole(const char *path, unsigned char **buf, size_t *size, char *err, size_t errlen)
{
    *buf = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK); /* a FIFO must not block us: fstat rejects it */
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: is a directory, not a model file", path);
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size == 0) {
        set_err(err, errlen, "%s: empty file (0 bytes), not a model file", path);
        goto fail;
    }
    if ((uintmax_t)st.st_size > (uintmax_t)SIZE_MAX / 2) {
        set_err(err, errlen, "%s: file too large (%jd bytes)", path, (intmax_t)st.st_size);
        goto fail;
    }
    size_t n = (size_t)st.st_size, got = 0;
    *buf = malloc(n);
    if (!*buf) {
        set_err(err, errlen, "%s: out of memory reading %zu bytes", path, n);
        goto fail;
    }
    while (got < n) {
        ssize_t r = read(fd, *buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0) {
            set_err(err, errlen, "%s: file shrank while reading (%zu of %zu bytes)", path, got, n);
            goto fail;
        }
        got += (size_t)r;
    }
    close(fd);
    *size = n;
    return 0;
fail:
    free(*buf);
    *buf = NULL;
    close(fd);
    return -1;
}

/* One parameter record as found in the file buffer. */
typedef struct entry {
    char name[NAME_LEN_MAX + 1];
    uint32_t rows, cols;
    const unsigned char *data;   /* rows * cols little-endian floats */
} entry;

typedef struct cursor {
    const unsigned char *p;
    size_t left;                 /* bytes from p up to (not including) the checksum */
    size_t file_size;
    const char *path;
    uint32_t index;              /* index of the next record */
} cursor;

/* Parses the next record at c into e; checks it against the bytes that remain. */
static int next_entry(cursor *c, entry *e, char *err, size_t errlen)
{
    size_t offset = c->file_size - CHECKSUM_BYTES - c->left;
    if (c->left < 4) goto truncated;
    uint32_t len = get_u32(c->p);
    if (len == 0 || len > NAME_LEN_MAX) {
        set_err(err, errlen, "%s: parameter #%u (byte %zu) has an implausible name length %u "
                "(1 to %u expected)", c->path, c->index, offset, len, NAME_LEN_MAX);
        return -1;
    }
    if (c->left < 4 + (size_t)len + 8) goto truncated;
    memcpy(e->name, c->p + 4, len);
    e->name[len] = '\0';
    if (memchr(e->name, '\0', len)) {
        set_err(err, errlen, "%s: parameter #%u (byte %zu) has a NUL byte in its name",
                c->path, c->index, offset);
        return -1;
    }
    e->rows = get_u32(c->p + 4 + len);
    e->cols = get_u32(c->p + 8 + len);
    c->p += 12 + (size_t)len;
    c->left -= 12 + (size_t)len;
    if (e->rows == 0 || e->cols == 0 || e->rows > INT_MAX || e->cols > INT_MAX) {
        set_err(err, errlen, "%s: parameter %s has an invalid shape %ux%u",
                c->path, e->name, e->rows, e->cols);
        return -1;
    }
    uint64_t numel = (uint64_t)e->rows * e->cols;  /* < 2^62: no overflow */
    if (numel > c->file_size / 4) {
        set_err(err, errlen, "%s: truncated or corrupt: parameter %s claims %ux%u = %llu floats "
                "(%llu bytes), more than the whole file (%zu bytes)", c->path, e->name,
                e->rows, e->cols, (unsigned long long)numel, (unsigned long long)numel * 4,
                c->file_size);
        return -1;
    }
    if (numel * 4 > c->left) {
        set_err(err, errlen, "%s: truncated: parameter %s (%ux%u) needs %llu bytes of data, "
                "only %zu are left before the checksum", c->path, e->name, e->rows, e->cols,
                (unsigned long long)numel * 4, c->left);
        return -1;
    }
    e->data = c->p;
    c->p += (size_t)numel * 4;
    c->left -= (size_t)numel * 4;
    c->index++;
    return 0;
truncated:
    set_err(err, errlen, "%s: truncated: parameter #%u (byte %zu) is cut short",
            c->path, c->index, offset);
    return -1;
}

/* Checks magic, version, every record's structure, the absence of trailing bytes and the
 * checksum. Fills *count and the cursor at the first record. */
static int check_file(const char *path, const unsigned char *buf, size_t size, uint32_t *count,
                      cursor *first, char *err, size_t errlen)
{
    if (size < sizeof MAGIC && memcmp(buf, MAGIC, size) == 0) {
        set_err(err, errlen, "%s: truncated: %zu bytes, a model file has at least %u",
                path, size, HEADER_BYTES + CHECKSUM_BYTES);
        return -1;
    }
    if (size < sizeof MAGIC || memcmp(buf, MAGIC, sizeof MAGIC) != 0) {
        set_err(err, errlen, "%s: not a libunroll model file (bad magic)", path);
        return -1;
    }
    if (size < HEADER_BYTES + CHECKSUM_BYTES) {
        set_err(err, errlen, "%s: truncated: %zu bytes, a model file has at least %u",
                path, size, HEADER_BYTES + CHECKSUM_BYTES);
        return -1;
    }
    uint32_t version = get_u32(buf + 8);
    if (version > UR_MODEL_FORMAT_VERSION) {
        set_err(err, errlen, "%s: format version %u is newer than this library reads (up to %u)",
                path, version, UR_MODEL_FORMAT_VERSION);
        return -1;
    }
    if (version == 0) {
        set_err(err, errlen, "%s: invalid format version 0", path);
        return -1;
    }
    *count = get_u32(buf + 12);
    cursor c = {buf + HEADER_BYTES, size - HEADER_BYTES - CHECKSUM_BYTES, size, path, 0};
    *first = c;
    entry e;
    /* Each record consumes at least 17 bytes, so this loop ends quickly whatever count says. */
    for (uint32_t i = 0; i < *count; i++)
        if (next_entry(&c, &e, err, errlen) != 0) return -1;
    if (c.left > 0) {
        set_err(err, errlen, "%s: %zu unexpected bytes after the last of %u parameters",
                path, c.left, *count);
        return -1;
    }
    uint64_t stored = get_u64(buf + size - CHECKSUM_BYTES);
    uint64_t computed = fnv1a(FNV_OFFSET, buf, size - CHECKSUM_BYTES);
    if (stored != computed) {
        set_err(err, errlen, "%s: checksum mismatch, the file is corrupted (stored %016llx, "
                "computed %016llx)", path, (unsigned long long)stored,
                (unsigned long long)computed);
        return -1;
    }
    return 0;
}

static int index_of(const ur_params *ps, const char *name)
{
    for (int i = 0; i < ur_params_count(ps); i++)
        if (strcmp(ur_params_at(ps, i)->name, name) == 0) return i;
    return -1;
}

static void copy_values(float *dst, const unsigned char *src, size_t n)
{
    for (size_t k = 0; k < n; k++) dst[k] = bits_float(get_u32(src + 4 * k));
}

/* Every record matches a distinct model parameter of the same shape, and every model
 * parameter is in the file. */
static int match_model(const ur_params *ps, uint32_t count, cursor c, char *err, size_t errlen)
{
    int n = ur_params_count(ps);
    unsigned char *seen = calloc(n > 0 ? (size_t)n : 1, 1);
    if (!seen) {
        set_err(err, errlen, "%s: out of memory", c.path);
        return -1;
    }
    entry e;
    int rc = -1;
    for (uint32_t i = 0; i < count; i++) {
        next_entry(&c, &e, err, errlen); /* already validated */
        int k = index_of(ps, e.name);
        if (k < 0) {
            set_err(err, errlen, "%s: parameter %s is in the file but not in the model",
                    c.path, e.name);
            goto done;
        }
        if (seen[k]) {
            set_err(err, errlen, "%s: parameter %s appears twice in the file", c.path, e.name);
            goto done;
        }
        seen[k] = 1;
        const ur_tensor *t = ur_params_at(ps, k);
        if ((int)e.rows != t->rows || (int)e.cols != t->cols) {
            set_err(err, errlen, "%s: parameter %s has shape %ux%u in the file, %dx%d in the model",
                    c.path, e.name, e.rows, e.cols, t->rows, t->cols);
            goto done;
        }
    }
    for (int k = 0; k < n; k++)
        if (!seen[k]) {
            set_err(err, errlen, "%s: parameter %s of the model is missing from the file",
                    c.path, ur_params_at(ps, k)->name);
            goto done;
        }
    rc = 0;
done:
    free(seen);
    return rc;
}

int ur_params_load(ur_params *ps, const char *path, char *err, size_t errlen)
{
    if (!ps || !path || !*path) {
        set_err(err, errlen, "params_load: %s", ps ? "empty path" : "no parameter set");
        return -1;
    }
    unsigned char *buf;
    size_t size;
    if (read_whole(path, &buf, &size, err, errlen) != 0) return -1;
    uint32_t count;
    cursor first;
    int rc = -1;
    if (check_file(path, buf, size, &count, &first, err, errlen) != 0 ||
        match_model(ps, count, first, err, errlen) != 0)
        goto done;
    entry e;
    for (uint32_t i = 0; i < count; i++) {
        next_entry(&first, &e, err, errlen);
        ur_tensor *t = ur_params_get(ps, e.name);
        copy_values(t->val, e.data, ur_numel(t));
    }
    rc = 0;
done:
    free(buf);
    return rc;
}

ur_params *ur_params_load_new(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        set_err(err, errlen, "params_load_new: empty path");
        return NULL;
    }
    unsigned char *buf;
    size_t size;
    if (read_whole(path, &buf, &size, err, errlen) != 0) return NULL;
    uint32_t count;
    cursor c;
    ur_params *ps = NULL;
    if (check_file(path, buf, size, &count, &c, err, errlen) != 0) goto done;
    ps = ur_params_new();
    if (!ps) {
        set_err(err, errlen, "%s: out of memory", path);
        goto done;
    }
    entry e;
    for (uint32_t i = 0; i < count; i++) {
        next_entry(&c, &e, err, errlen);
        ur_tensor *t = ur_params_add(ps, e.name, (int)e.rows, (int)e.cols);
        if (!t) {
            set_err(err, errlen, "%s: %s", path, ur_params_error(ps));
            ur_params_free(ps);
            ps = NULL;
            goto done;
        }
        copy_values(t->val, e.data, ur_numel(t));
    }
done:
    free(buf);
    return ps;
}
