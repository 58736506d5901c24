/* Model files, the writing half: a parameter set and its metadata records into the bytes of
 * doc/model-format.md (graph/modelio_internal.h has the constants), and where they go.
 *
 * Save refuses non-finite values, writes an unnamed temporary file (O_TMPFILE) or a fixed,
 * hashed temporary name in the target's directory, fsyncs it and renames it over the target
 * (whose final symbolic links are followed), then fsyncs the directory.
 */
#define _GNU_SOURCE /* O_TMPFILE, linkat's AT_EMPTY_PATH */
#include "graph/modelio_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Save: the bytes --------------------------------------------------------------------- */

typedef struct writer {
    int fd;
    uint64_t hash;
    int failed, errnum;
    size_t used;
    unsigned char buf[1 << 16];
} writer;

static void w_flush(writer *w)
{
    size_t done = 0;
    while (!w->failed && done < w->used) {
        ssize_t r = write(w->fd, w->buf + done, w->used - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            w->failed = 1;
            w->errnum = r < 0 ? errno : EIO;
        } else {
            done += (size_t)r;
        }
    }
    w->used = 0;
}

static void w_raw(writer *w, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0) {
        if (w->used == sizeof w->buf) w_flush(w);
        size_t chunk = sizeof w->buf - w->used < n ? sizeof w->buf - w->used : n;
        memcpy(w->buf + w->used, b, chunk);
        w->used += chunk;
        b += chunk;
        n -= chunk;
    }
}

static void w_bytes(writer *w, const void *p, size_t n)
{
    w->hash = fnv1a(w->hash, p, n);
    w_raw(w, p, n);
}

static void w_u32(writer *w, uint32_t x)
{
    unsigned char b[4];
    put_u32(b, x);
    w_bytes(w, b, 4);
}

static void w_floats(writer *w, const float *x, size_t n)
{
    unsigned char b[4096];
    while (n > 0) {
        size_t chunk = n < sizeof b / 4 ? n : sizeof b / 4;
        for (size_t k = 0; k < chunk; k++) put_u32(b + 4 * k, float_bits(x[k]));
        w_bytes(w, b, 4 * chunk);
        x += chunk;
        n -= chunk;
    }
}

/* Writes the whole file into w (version 2). Returns w->failed == 0. */
static int write_model(writer *w, const ur_params *ps, const ur_meta *meta)
{
    int count = ur_params_count(ps), n_meta = ur_meta_count(meta);
    w->hash = FNV_OFFSET;
    w_bytes(w, MAGIC, sizeof MAGIC);
    w_u32(w, UR_MODEL_FORMAT_VERSION);
    w_u32(w, (uint32_t)count);
    w_u32(w, (uint32_t)n_meta);
    for (int k = 0; k < n_meta; k++) {
        ur_meta_record r;
        ur_meta_raw(meta, k, &r);
        size_t kl = strlen(r.key);
        w_u32(w, (uint32_t)kl);
        w_bytes(w, r.key, kl);
        w_u32(w, (uint32_t)r.type);
        w_u32(w, (uint32_t)r.len);
        w_bytes(w, r.value, r.len);
    }
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
    w_raw(w, sum, sizeof sum);
    w_flush(w);
    return !w->failed;
}

/* What save refuses before it touches the disk: names the format cannot hold, NaN or Inf. */
static int check_savable(const ur_params *ps, const ur_meta *meta, const char *path, char *err,
                         size_t errlen)
{
    for (int i = 0; i < ur_params_count(ps); i++) {
        const ur_tensor *t = ur_params_at(ps, i);
        if (strlen(t->name) > NAME_LEN_MAX) {
            set_err(err, errlen, "%s: parameter name longer than %u bytes", path, NAME_LEN_MAX);
            return -1;
        }
        for (size_t k = 0; k < ur_numel(t); k++)
            if (!isfinite(t->val[k])) {
                set_err(err, errlen, "%s: not saved: parameter %s holds %s at row %zu, column %zu "
                        "(training diverged?)", path, t->name, isnan(t->val[k]) ? "NaN" : "Inf",
                        k / (size_t)t->cols, k % (size_t)t->cols);
                return -1;
            }
    }
    for (int k = 0; k < ur_meta_count(meta); k++) {
        ur_meta_record r;
        ur_meta_raw(meta, k, &r);
        if (r.len > UINT32_MAX) {
            set_err(err, errlen, "%s: metadata %s is too long (%zu bytes)", path, r.key, r.len);
            return -1;
        }
    }
    return 0;
}

/* ---- Save: where the bytes go ------------------------------------------------------------ */

/* The path save really replaces: path with its final symbolic links followed (up to 40; a
 * dangling link names the file to create). malloc'd; NULL with a message on error. */
static char *final_target(const char *path, char *err, size_t errlen)
{
    char *cur = strdup(path);
    for (int hops = 0; cur; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) return cur;
        if (hops == 40) {
            set_err(err, errlen, "%s: too many levels of symbolic links", path);
            free(cur);
            return NULL;
        }
        char link[PATH_MAX];
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0) {
            set_err(err, errlen, "%s: cannot read the symbolic link %s: %s", path, cur,
                    strerror(errno));
            free(cur);
            return NULL;
        }
        link[n] = '\0';
        const char *slash = strrchr(cur, '/');
        size_t dl = link[0] == '/' || !slash ? 0 : (size_t)(slash - cur) + 1;
        char *next = malloc(dl + (size_t)n + 1);
        if (next) {
            memcpy(next, cur, dl);
            memcpy(next + dl, link, (size_t)n + 1);
        }
        free(cur);
        cur = next;
    }
    set_err(err, errlen, "%s: out of memory", path);
    return NULL;
}

/* Opens the directory of target (O_RDONLY, for openat, renameat, flock and fsync) and points
 * *base at the last component. -1 with a message on error. */
static int open_dir_of(const char *target, const char **base, const char *path, char *err,
                       size_t errlen)
{
    const char *slash = strrchr(target, '/');
    *base = slash ? slash + 1 : target;
    if (!**base || strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0) {
        set_err(err, errlen, "%s: is a directory, not a file name", path);
        return -1;
    }
    char *dir = slash ? strndup(target, slash == target ? 1 : (size_t)(slash - target)) : strdup(".");
    if (!dir) {
        set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        set_err(err, errlen, "%s: cannot create temporary file in %s: %s", path, dir,
                strerror(errno));
    free(dir);
    return fd;
}

/* The fixed temporary name of a target: ".urm-" + 16 hex digits of FNV-1a 64 of its name +
 * ".tmp", 25 bytes whatever the name's length. */
static void temp_name(const char *base, char out[32])
{
    uint64_t h = fnv1a(FNV_OFFSET, (const unsigned char *)base, strlen(base));
    snprintf(out, 32, ".urm-%016llx.tmp", (unsigned long long)h);
}

/* Gives the unnamed file fd the name tmp in dirfd (replacing a stale one). 0 or -1. */
static int link_tmpfile(int fd, int dirfd, const char *tmp)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (linkat(AT_FDCWD, proc, dirfd, tmp, AT_SYMLINK_FOLLOW) == 0) return 0;
        if (errno == ENOENT && linkat(fd, "", dirfd, tmp, AT_EMPTY_PATH) == 0) return 0;
        if (errno != EEXIST) return -1;
        unlinkat(dirfd, tmp, 0); /* a save killed between link and rename left it */
    }
    return -1;
}

int ur_params_save_meta(const ur_params *ps, const ur_meta *meta, const char *path, char *err,
                        size_t errlen)
{
    if (!ps || !path || !*path) {
        set_err(err, errlen, "params_save: %s", ps ? "empty path" : "no parameter set");
        return -1;
    }
    if (check_savable(ps, meta, path, err, errlen) != 0) return -1;
    char *target = final_target(path, err, errlen);
    if (!target) return -1;
    const char *base;
    int dirfd = open_dir_of(target, &base, path, err, errlen);
    writer *w = malloc(sizeof *w);
    int fd = -1, named = 0, locked = 0, rc = -1;
    char tmp[32];
    if (dirfd < 0) goto done;
    if (!w) {
        set_err(err, errlen, "%s: out of memory", path);
        goto done;
    }
    temp_name(base, tmp);
    /* A replaced file keeps its mode; a new one gets 0666 less the umask (open's mode). */
    struct stat st;
    int exists = fstatat(dirfd, base, &st, 0) == 0, keep_mode = exists && S_ISREG(st.st_mode);
    if (exists && !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: exists and is not a regular file (%s): not replaced", path,
                S_ISDIR(st.st_mode) ? "a directory" : "a device, FIFO or socket");
        goto done;
    }

    /* First choice: an unnamed file, which a kill cannot leave behind. */
#ifdef O_TMPFILE
    /* UR_SAVE_NO_TMPFILE (any value) forces the fallback: for its tests. */
    if (!getenv("UR_SAVE_NO_TMPFILE"))
        fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
#endif
    for (int pass = 0; pass < 2 && rc != 0; pass++) {
        if (pass == 1 || fd < 0) {
            /* Fallback: the fixed temporary name, under the directory's lock so two saves to
             * one target cannot write it at once; a stale one is removed first. */
            if (fd >= 0) close(fd);
            fd = -1;
            if (!locked && flock(dirfd, LOCK_EX) == 0) locked = 1;
            unlinkat(dirfd, tmp, 0);
            fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
            if (fd < 0) {
                set_err(err, errlen, "%s: cannot create temporary file %s: %s", path, tmp,
                        strerror(errno));
                goto done;
            }
            named = 1;
            pass = 1;
        }
        if (keep_mode) (void)fchmod(fd, st.st_mode & 07777);
        w->fd = fd;
        w->failed = 0;
        w->errnum = 0;
        w->used = 0;
        if (!write_model(w, ps, meta) || fsync(fd) != 0) {
            set_err(err, errlen, "%s: cannot write temporary file: %s", path,
                    strerror(w->failed ? w->errnum : errno));
            goto done;
        }
        if (!named) {
            if (!locked && flock(dirfd, LOCK_EX) == 0) locked = 1;
            if (link_tmpfile(fd, dirfd, tmp) != 0) continue; /* no way to name it: pass 2 */
            named = 1;
        }
        if (close(fd) != 0) {
            fd = -1;
            set_err(err, errlen, "%s: cannot close temporary file %s: %s", path, tmp,
                    strerror(errno));
            goto done;
        }
        fd = -1;
        if (renameat(dirfd, tmp, dirfd, base) != 0) {
            set_err(err, errlen, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
            goto done;
        }
        named = 0;
        (void)fsync(dirfd); /* makes the rename durable (best effort) */
        rc = 0;
    }
done:
    if (fd >= 0) close(fd);
    if (named) unlinkat(dirfd, tmp, 0);
    if (dirfd >= 0) close(dirfd); /* releases the lock */
    free(w);
    free(target);
    return rc;
}

int ur_params_save(const ur_params *ps, const char *path, char *err, size_t errlen)
{
    return ur_params_save_meta(ps, NULL, path, err, errlen);
}
