/* Model files, the reading half: the cursor that walks a file's bytes, the checks, the
 * ur_model_file API and the loads into a parameter set (layout in doc/model-format.md; in
 * short, little-endian integers, IEEE-754 binary32 little-endian floats):
 *   "URMODEL\0", u32 version (1 or 2), u32 parameter count, [v2: u32 record count,
 *   records: u32 key length, key, u32 type, u32 value length, value], parameters: u32 name
 *   length, name, u32 rows, u32 cols, rows * cols floats; u64 FNV-1a 64 of all before it.
 *
 * Load reads the whole file (its size is what we allocate, never a size the file claims),
 * walks its structure against the bytes that remain (a header cannot make us allocate more
 * than the file holds), checks the checksum, finite values and unique names, then builds a
 * small index; only then is anything copied into a model, and only when every name and shape
 * matches.
 */
#define _GNU_SOURCE
#include "graph/modelio_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Load: reading and validating -------------------------------------------------------- */

/* One parameter record as found in the file buffer. */
typedef struct entry {
    const char *name;            /* NUL-terminated copy, in ur_model_file's names block */
    uint32_t rows, cols;
    const unsigned char *data;   /* rows * cols little-endian floats */
} entry;

struct ur_model_file {
    char *path;                  /* for messages */
    unsigned char *buf;
    size_t size;
    int version;
    uint32_t count;
    entry *entries;
    char *names;
    ur_meta *meta;
};

typedef struct cursor {
    const unsigned char *p;
    size_t left;                 /* bytes from p up to (not including) the checksum */
    size_t file_size;
    const char *path;
} cursor;

static size_t offset_of(const cursor *c) { return c->file_size - CHECKSUM_BYTES - c->left; }

static int truncated(const cursor *c, const char *what, uint32_t index, size_t offset, char *err,
                     size_t errlen)
{
    set_err(err, errlen, "%s: truncated: %s #%u (byte %zu) is cut short", c->path, what, index,
            offset);
    return -1;
}

/* Walks metadata record #index at c: key, type, value checked against the bytes left. On
 * success advances c and, if out is not NULL, adds the record to it. */
static int next_meta(cursor *c, uint32_t index, ur_meta *out, char *err, size_t errlen)
{
    size_t offset = offset_of(c);
    if (c->left < 4) return truncated(c, "metadata record", index, offset, err, errlen);
    uint32_t kl = get_u32(c->p);
    if (kl == 0 || kl > UR_META_KEY_MAX) {
        set_err(err, errlen, "%s: metadata record #%u (byte %zu) has an implausible key length "
                "%u (1 to %u expected)", c->path, index, offset, kl, UR_META_KEY_MAX);
        return -1;
    }
    if (c->left < 12 + (size_t)kl) return truncated(c, "metadata record", index, offset, err, errlen);
    char key[UR_META_KEY_MAX + 1];
    memcpy(key, c->p + 4, kl);
    key[kl] = '\0';
    if (memchr(key, '\0', kl)) {
        set_err(err, errlen, "%s: metadata record #%u (byte %zu) has a NUL byte in its key",
                c->path, index, offset);
        return -1;
    }
    uint32_t type = get_u32(c->p + 4 + kl), len = get_u32(c->p + 8 + kl);
    const unsigned char *v = c->p + 12 + kl;
    if (type < UR_META_STRING || type > UR_META_BYTES) {
        set_err(err, errlen, "%s: metadata %s has an unknown type %u", c->path, key, type);
        return -1;
    }
    if ((type == UR_META_INT64 || type == UR_META_FLOAT64) && len != 8) {
        set_err(err, errlen, "%s: metadata %s: a number takes 8 bytes, not %u", c->path, key, len);
        return -1;
    }
    if (len > c->left - 12 - kl) {
        set_err(err, errlen, "%s: truncated: metadata %s needs %u bytes, only %zu are left "
                "before the checksum", c->path, key, len, c->left - 12 - kl);
        return -1;
    }
    if ((size_t)len > UR_META_VALUE_MAX) {
        set_err(err, errlen, "%s: metadata %s is longer than %zu bytes", c->path, key,
                (size_t)UR_META_VALUE_MAX);
        return -1;
    }
    if (type == UR_META_STRING && memchr(v, '\0', len)) {
        set_err(err, errlen, "%s: metadata %s: a string holds a NUL byte", c->path, key);
        return -1;
    }
    double f = 0.0;
    if (type == UR_META_FLOAT64) {
        uint64_t u = get_u64(v);
        memcpy(&f, &u, 8);
        if (!isfinite(f)) {
            set_err(err, errlen, "%s: metadata %s is not a finite number", c->path, key);
            return -1;
        }
    }
    if (out) {
        if (ur_meta_type_of(out, key) != UR_META_NONE) {
            set_err(err, errlen, "%s: metadata %s appears twice in the file", c->path, key);
            return -1;
        }
        int rc = type == UR_META_INT64   ? ur_meta_set_int64(out, key, (int64_t)get_u64(v))
                 : type == UR_META_FLOAT64 ? ur_meta_set_float64(out, key, f)
                 : type == UR_META_BYTES   ? ur_meta_set_bytes(out, key, v, len)
                                           : -2;
        if (rc == -2) { /* a string: NUL-terminate a copy */
            char *s = malloc((size_t)len + 1);
            rc = -1;
            if (s) {
                memcpy(s, v, len);
                s[len] = '\0';
                rc = ur_meta_set_string(out, key, s);
                free(s);
            }
        }
        if (rc != 0) {
            set_err(err, errlen, "%s: out of memory reading metadata %s", c->path, key);
            return -1;
        }
    }
    c->p += 12 + (size_t)kl + len;
    c->left -= 12 + (size_t)kl + len;
    return 0;
}

/* Walks parameter record #index at c, checked against the bytes left; fills e (e->name is
 * left NULL, the name goes to name[]). */
static int next_entry(cursor *c, uint32_t index, entry *e, char name[NAME_LEN_MAX + 1],
                      char *err, size_t errlen)
{
    size_t offset = offset_of(c);
    if (c->left < 4) return truncated(c, "parameter", index, offset, err, errlen);
    uint32_t len = get_u32(c->p);
    if (len == 0 || len > NAME_LEN_MAX) {
        set_err(err, errlen, "%s: parameter #%u (byte %zu) has an implausible name length %u "
                "(1 to %u expected)", c->path, index, offset, len, NAME_LEN_MAX);
        return -1;
    }
    if (c->left < 4 + (size_t)len + 8) return truncated(c, "parameter", index, offset, err, errlen);
    memcpy(name, c->p + 4, len);
    name[len] = '\0';
    if (memchr(name, '\0', len)) {
        set_err(err, errlen, "%s: parameter #%u (byte %zu) has a NUL byte in its name",
                c->path, index, offset);
        return -1;
    }
    e->name = NULL;
    e->rows = get_u32(c->p + 4 + len);
    e->cols = get_u32(c->p + 8 + len);
    c->p += 12 + (size_t)len;
    c->left -= 12 + (size_t)len;
    if (e->rows == 0 || e->cols == 0 || e->rows > INT_MAX || e->cols > INT_MAX) {
        set_err(err, errlen, "%s: parameter %s has an invalid shape %ux%u",
                c->path, name, e->rows, e->cols);
        return -1;
    }
    uint64_t numel = (uint64_t)e->rows * e->cols;  /* < 2^62: no overflow */
    if (numel > c->file_size / 4) {
        set_err(err, errlen, "%s: truncated or corrupt: parameter %s claims %ux%u = %llu floats "
                "(%llu bytes), more than the whole file (%zu bytes)", c->path, name,
                e->rows, e->cols, (unsigned long long)numel, (unsigned long long)numel * 4,
                c->file_size);
        return -1;
    }
    if (numel * 4 > c->left) {
        set_err(err, errlen, "%s: truncated: parameter %s (%ux%u) needs %llu bytes of data, "
                "only %zu are left before the checksum", c->path, name, e->rows, e->cols,
                (unsigned long long)numel * 4, c->left);
        return -1;
    }
    e->data = c->p;
    c->p += (size_t)numel * 4;
    c->left -= (size_t)numel * 4;
    return 0;
}

/* Checks magic, version and every record's structure against the file size, the absence of
 * trailing bytes and the checksum, allocating nothing. Fills the counts, the version and the
 * cursors at the first metadata and parameter records. */
static int check_structure(const char *path, const unsigned char *buf, size_t size, int *version,
                           uint32_t *n_meta, uint32_t *count, cursor *meta_at, cursor *params_at,
                           char *err, size_t errlen)
{
    if (size < sizeof MAGIC && memcmp(buf, MAGIC, size) == 0) {
        set_err(err, errlen, "%s: truncated: %zu bytes, a model file has at least %u",
                path, size, 16 + CHECKSUM_BYTES);
        return -1;
    }
    if (size < sizeof MAGIC || memcmp(buf, MAGIC, sizeof MAGIC) != 0) {
        set_err(err, errlen, "%s: not a libunroll model file (bad magic)", path);
        return -1;
    }
    if (size < 16 + CHECKSUM_BYTES) {
        set_err(err, errlen, "%s: truncated: %zu bytes, a model file has at least %u",
                path, size, 16 + CHECKSUM_BYTES);
        return -1;
    }
    uint32_t v = get_u32(buf + 8);
    if (v > UR_MODEL_FORMAT_VERSION) {
        set_err(err, errlen, "%s: format version %u is newer than this library reads (up to %u)",
                path, v, UR_MODEL_FORMAT_VERSION);
        return -1;
    }
    if (v == 0) {
        set_err(err, errlen, "%s: invalid format version 0", path);
        return -1;
    }
    size_t header = v == 1 ? 16 : 20;
    if (size < header + CHECKSUM_BYTES) {
        set_err(err, errlen, "%s: truncated: %zu bytes, a version %u model file has at least %zu",
                path, size, v, header + CHECKSUM_BYTES);
        return -1;
    }
    *version = (int)v;
    *count = get_u32(buf + 12);
    *n_meta = v == 1 ? 0 : get_u32(buf + 16);
    if (*n_meta > UR_META_COUNT_MAX) {
        set_err(err, errlen, "%s: %u metadata records, more than the %u allowed", path, *n_meta,
                UR_META_COUNT_MAX);
        return -1;
    }
    cursor c = {buf + header, size - header - CHECKSUM_BYTES, size, path};
    *meta_at = c;
    /* Each record consumes at least 13 bytes, so these loops end quickly whatever the counts
     * say: a count larger than the file can hold fails as "truncated". */
    for (uint32_t i = 0; i < *n_meta; i++)
        if (next_meta(&c, i, NULL, err, errlen) != 0) return -1;
    *params_at = c;
    entry e;
    char name[NAME_LEN_MAX + 1];
    for (uint32_t i = 0; i < *count; i++)
        if (next_entry(&c, i, &e, name, err, errlen) != 0) return -1;
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

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const entry *const *)a)->name, (*(const entry *const *)b)->name);
}

/* Builds the index of a buffer whose structure check_structure accepted: entries with their
 * names, the metadata; then rejects repeated names and non-finite values. */
static int build_index(ur_model_file *f, const char *path, cursor meta_at, cursor params_at,
                       uint32_t n_meta, char *err, size_t errlen)
{
    if (!(f->meta = ur_meta_new())) goto oom;
    for (uint32_t i = 0; i < n_meta; i++)
        if (next_meta(&meta_at, i, f->meta, err, errlen) != 0) return -1;
    /* count <= size / 17 and the names fit in the file: both allocations are bounded by it. */
    size_t name_bytes = 0;
    cursor c = params_at;
    entry e;
    char name[NAME_LEN_MAX + 1];
    for (uint32_t i = 0; i < f->count; i++) {
        next_entry(&c, i, &e, name, err, errlen);
        name_bytes += strlen(name) + 1;
    }
    size_t n = f->count ? f->count : 1;
    f->entries = malloc(n * sizeof *f->entries);
    f->names = malloc(name_bytes ? name_bytes : 1);
    entry **sorted = malloc(n * sizeof *sorted);
    if (!f->entries || !f->names || !sorted) {
        free(sorted);
        goto oom;
    }
    char *at = f->names;
    c = params_at;
    for (uint32_t i = 0; i < f->count; i++) {
        next_entry(&c, i, &f->entries[i], name, err, errlen);
        size_t len = strlen(name) + 1;
        memcpy(at, name, len);
        f->entries[i].name = at;
        at += len;
        sorted[i] = &f->entries[i];
    }
    qsort(sorted, f->count, sizeof *sorted, by_name);
    int rc = 0;
    for (uint32_t i = 1; i < f->count && rc == 0; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            set_err(err, errlen, "%s: parameter %s appears twice in the file", path,
                    sorted[i]->name);
            rc = -1;
        }
    free(sorted);
    for (uint32_t i = 0; i < f->count && rc == 0; i++) {
        const entry *x = &f->entries[i];
        size_t numel = (size_t)x->rows * x->cols;
        for (size_t k = 0; k < numel; k++)
            if (bits_nonfinite(get_u32(x->data + 4 * k))) {
                set_err(err, errlen, "%s: parameter %s holds %s at row %zu, column %zu",
                        path, x->name, (get_u32(x->data + 4 * k) & 0x7fffff) ? "NaN" : "Inf",
                        k / x->cols, k % x->cols);
                rc = -1;
                break;
            }
    }
    return rc;
oom:
    set_err(err, errlen, "%s: out of memory", path);
    return -1;
}

/* Takes buf (malloc'd, size bytes) over: the validated file, or NULL (buf freed). */
static ur_model_file *from_buffer(unsigned char *buf, size_t size, const char *path, char *err,
                                  size_t errlen)
{
    int version;
    uint32_t n_meta, count;
    cursor meta_at, params_at;
    if (check_structure(path, buf, size, &version, &n_meta, &count, &meta_at, &params_at, err,
                        errlen) != 0) {
        free(buf);
        return NULL;
    }
    ur_model_file *f = calloc(1, sizeof *f);
    if (!f) {
        set_err(err, errlen, "%s: out of memory", path);
        free(buf);
        return NULL;
    }
    f->buf = buf;
    f->size = size;
    if (!(f->path = strdup(path))) {
        set_err(err, errlen, "%s: out of memory", path);
        ur_model_file_free(f);
        return NULL;
    }
    f->version = version;
    f->count = count;
    if (build_index(f, path, meta_at, params_at, n_meta, err, errlen) != 0) {
        ur_model_file_free(f);
        return NULL;
    }
    return f;
}

/* Reads the whole regular file at path into *buf (malloc'd, caller frees). */
static int read_whole(const char *path, unsigned char **buf, size_t *size, char *err, size_t errlen)
{
    *buf = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC); /* a FIFO must not block */
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

ur_model_file *ur_model_file_read(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        set_err(err, errlen, "model_file_read: empty path");
        return NULL;
    }
    unsigned char *buf;
    size_t size;
    if (read_whole(path, &buf, &size, err, errlen) != 0) return NULL;
    return from_buffer(buf, size, path, err, errlen);
}

ur_model_file *ur_model_file_parse(const void *bytes, size_t size, const char *name, char *err,
                                   size_t errlen)
{
    if (!name) name = "(memory)";
    if (!bytes || size == 0) {
        set_err(err, errlen, "%s: empty, not a model file", name);
        return NULL;
    }
    unsigned char *buf = malloc(size);
    if (!buf) {
        set_err(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    memcpy(buf, bytes, size);
    return from_buffer(buf, size, name, err, errlen);
}

void ur_model_file_free(ur_model_file *f)
{
    if (!f) return;
    free(f->path);
    free(f->buf);
    free(f->entries);
    free(f->names);
    ur_meta_free(f->meta);
    free(f);
}

int ur_model_file_version(const ur_model_file *f) { return f ? f->version : 0; }
int ur_model_file_count(const ur_model_file *f) { return f ? (int)f->count : 0; }
const ur_meta *ur_model_file_meta(const ur_model_file *f) { return f ? f->meta : NULL; }

const char *ur_model_file_param(const ur_model_file *f, int k, int *rows, int *cols)
{
    if (!f || k < 0 || (uint32_t)k >= f->count) return NULL;
    if (rows) *rows = (int)f->entries[k].rows;
    if (cols) *cols = (int)f->entries[k].cols;
    return f->entries[k].name;
}

int ur_model_file_find(const ur_model_file *f, const char *name, int *rows, int *cols)
{
    for (uint32_t k = 0; f && name && k < f->count; k++)
        if (strcmp(f->entries[k].name, name) == 0) {
            ur_model_file_param(f, (int)k, rows, cols);
            return (int)k;
        }
    return -1;
}

static void copy_values(float *dst, const unsigned char *src, size_t n)
{
    for (size_t k = 0; k < n; k++) dst[k] = bits_float(get_u32(src + 4 * k));
}

static int index_of(const ur_params *ps, const char *name)
{
    for (int i = 0; i < ur_params_count(ps); i++)
        if (strcmp(ur_params_at(ps, i)->name, name) == 0) return i;
    return -1;
}

/* Every record matches a distinct model parameter of the same shape (names are unique in
 * the file), and every model parameter is in the file. */
static int match_model(const ur_params *ps, const ur_model_file *f, const char *path, char *err,
                       size_t errlen)
{
    int n = ur_params_count(ps);
    if ((uint32_t)n < f->count) {
        /* Some file record has no model parameter: find it for the message. */
        for (uint32_t i = 0; i < f->count; i++)
            if (index_of(ps, f->entries[i].name) < 0) {
                set_err(err, errlen, "%s: parameter %s is in the file but not in the model",
                        path, f->entries[i].name);
                return -1;
            }
    }
    for (uint32_t i = 0; i < f->count; i++) {
        const entry *e = &f->entries[i];
        int k = index_of(ps, e->name);
        if (k < 0) {
            set_err(err, errlen, "%s: parameter %s is in the file but not in the model",
                    path, e->name);
            return -1;
        }
        const ur_tensor *t = ur_params_at(ps, k);
        if ((int)e->rows != t->rows || (int)e->cols != t->cols) {
            set_err(err, errlen, "%s: parameter %s has shape %ux%u in the file, %dx%d in the model",
                    path, e->name, e->rows, e->cols, t->rows, t->cols);
            return -1;
        }
    }
    /* The file's names are distinct and all in the model: the counts decide the rest. */
    if ((uint32_t)n != f->count)
        for (int k = 0; k < n; k++)
            if (ur_model_file_find(f, ur_params_at(ps, k)->name, NULL, NULL) < 0) {
                set_err(err, errlen, "%s: parameter %s of the model is missing from the file",
                        path, ur_params_at(ps, k)->name);
                return -1;
            }
    return 0;
}

/* Copies the file's metadata into a fresh set (so a failure leaves meta untouched). */
static ur_meta *meta_copy(const ur_meta *src)
{
    ur_meta *m = ur_meta_new();
    for (int k = 0; m && k < ur_meta_count(src); k++) {
        ur_meta_record r;
        ur_meta_raw(src, k, &r);
        int rc = -1;
        if (r.type == UR_META_STRING) rc = ur_meta_set_string(m, r.key, (const char *)r.value);
        else if (r.type == UR_META_BYTES) rc = ur_meta_set_bytes(m, r.key, r.value, r.len);
        else if (r.type == UR_META_INT64) {
            int64_t i;
            ur_meta_int64(src, r.key, &i);
            rc = ur_meta_set_int64(m, r.key, i);
        } else {
            double d;
            ur_meta_float64(src, r.key, &d);
            rc = ur_meta_set_float64(m, r.key, d);
        }
        if (rc != 0) {
            ur_meta_free(m);
            return NULL;
        }
    }
    return m;
}

static int load_file(const ur_model_file *f, ur_params *ps, ur_meta *meta, const char *path,
                     char *err, size_t errlen)
{
    if (match_model(ps, f, path, err, errlen) != 0) return -1;
    ur_meta *copy = NULL;
    if (meta && !(copy = meta_copy(f->meta))) {
        set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (uint32_t i = 0; i < f->count; i++) {
        ur_tensor *t = ur_params_get(ps, f->entries[i].name);
        copy_values(t->val, f->entries[i].data, ur_numel(t));
    }
    if (meta) {
        ur_meta_swap(meta, copy);
        ur_meta_free(copy);
    }
    return 0;
}

int ur_model_file_load(const ur_model_file *f, ur_params *ps, ur_meta *meta, char *err,
                       size_t errlen)
{
    if (!f || !ps) {
        set_err(err, errlen, "model_file_load: %s", f ? "no parameter set" : "no file");
        return -1;
    }
    return load_file(f, ps, meta, f->path, err, errlen);
}

int ur_params_load_meta(ur_params *ps, ur_meta *meta, const char *path, char *err,
                        size_t errlen)
{
    if (!ps || !path || !*path) {
        set_err(err, errlen, "params_load: %s", ps ? "empty path" : "no parameter set");
        return -1;
    }
    ur_model_file *f = ur_model_file_read(path, err, errlen);
    if (!f) return -1;
    int rc = load_file(f, ps, meta, path, err, errlen);
    ur_model_file_free(f);
    return rc;
}

int ur_params_load(ur_params *ps, const char *path, char *err, size_t errlen)
{
    return ur_params_load_meta(ps, NULL, path, err, errlen);
}

static ur_params *new_params(const ur_model_file *f, const char *path, char *err, size_t errlen)
{
    ur_params *ps = ur_params_new();
    if (!ps) {
        set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    for (uint32_t i = 0; i < f->count; i++) {
        const entry *e = &f->entries[i];
        ur_tensor *t = ur_params_add(ps, e->name, (int)e->rows, (int)e->cols);
        if (!t) {
            set_err(err, errlen, "%s: %s", path, ur_params_error(ps));
            ur_params_free(ps);
            return NULL;
        }
        copy_values(t->val, e->data, ur_numel(t));
    }
    return ps;
}

ur_params *ur_model_file_new_params(const ur_model_file *f, char *err, size_t errlen)
{
    if (!f) {
        set_err(err, errlen, "model_file_new_params: no file");
        return NULL;
    }
    return new_params(f, f->path, err, errlen);
}

ur_params *ur_params_load_new(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        set_err(err, errlen, "params_load_new: empty path");
        return NULL;
    }
    ur_model_file *f = ur_model_file_read(path, err, errlen);
    if (!f) return NULL;
    ur_params *ps = new_params(f, path, err, errlen);
    ur_model_file_free(f);
    return ps;
}
