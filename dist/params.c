/* Identical parameters on every rank: broadcast from rank 0, checksums compared across ranks,
 * checkpoints written and read by rank 0 alone. */
#include "dist/dist_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/ur_train.h"

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t k = 0; k < n; k++) h = (h ^ b[k]) * FNV_PRIME;
    return h;
}

/* The structure of a set, hashed: count, then every name and shape in order. */
static uint64_t structure_hash(const ur_params *ps)
{
    int count = ur_params_count(ps);
    uint64_t h = fnv_bytes(FNV_OFFSET, &count, sizeof count);
    for (int i = 0; i < count; i++) {
        const ur_tensor *t = ur_params_at(ps, i);
        int shape[2] = {t->rows, t->cols};
        h = fnv_bytes(h, t->name, strlen(t->name) + 1);
        h = fnv_bytes(h, shape, sizeof shape);
    }
    return h;
}

/* FNV-1a over 32-bit words in four lanes (independent multiplies), values word by word. */
static void hash_words(uint64_t lane[4], const float *x, size_t n)
{
    size_t k = 0;
    uint32_t w[4];
    for (; k + 4 <= n; k += 4) {
        memcpy(w, x + k, sizeof w);
        for (int j = 0; j < 4; j++) lane[j] = (lane[j] ^ w[j]) * FNV_PRIME;
    }
    for (; k < n; k++) {
        memcpy(w, x + k, sizeof w[0]);
        lane[0] = (lane[0] ^ w[0]) * FNV_PRIME;
    }
}

static uint64_t lanes_final(const uint64_t lane[4])
{
    return fnv_bytes(FNV_OFFSET, lane, 4 * sizeof lane[0]);
}

static uint64_t param_checksum(const ur_tensor *t)
{
    uint64_t lane[4] = {FNV_OFFSET, FNV_OFFSET + 1, FNV_OFFSET + 2, FNV_OFFSET + 3};
    hash_words(lane, t->val, ur_numel(t));
    return lanes_final(lane);
}

uint64_t ur_dist_params_checksum(const ur_params *ps)
{
    uint64_t lane[4] = {FNV_OFFSET, FNV_OFFSET + 1, FNV_OFFSET + 2, FNV_OFFSET + 3};
    for (int i = 0; i < ur_params_count(ps); i++) {
        const ur_tensor *t = ur_params_at(ps, i);
        hash_words(lane, t->val, ur_numel(t));
    }
    return lanes_final(lane);
}

/* 0 when every rank's set has rank 0's names and shapes (collective); else -1 on every rank,
 * naming the lowest rank that differs. */
static int same_structure(ur_dist *d, const ur_params *ps, const char *what, char *err,
                          size_t errlen)
{
    unsigned long long mine = structure_hash(ps), root = mine;
    MPI_Bcast(&root, 1, MPI_UNSIGNED_LONG_LONG, 0, d->comm);
    int differ = mine != root ? d->rank : INT_MAX, first;
    MPI_Allreduce(&differ, &first, 1, MPI_INT, MPI_MIN, d->comm);
    if (first == INT_MAX) return 0;
    return ur_dist_fail(err, errlen, what, "rank %d's parameter set differs from rank 0's "
                        "(names, shapes or order); nothing was changed", first);
}

/* Room in d's buffer for every value of ps on every rank (collective). 0, or -1 on all. */
static int reserve(ur_dist *d, const ur_params *ps, const char *what, char *err, size_t errlen)
{
    size_t n = ur_params_numel(ps);
    long long lo;
    ur_dist_agree(d, ur_dist_buffer(d, n > 0 ? n : 1) ? 0 : -1, &lo, NULL);
    if (lo < 0) return ur_dist_fail(err, errlen, what, "out of memory for %zu floats on a rank", n);
    if (n > INT_MAX)
        return ur_dist_fail(err, errlen, what, "%zu values do not fit one MPI_Bcast", n);
    return 0;
}

/* Rank 0's values into every rank's ps, in one MPI_Bcast (collective; after reserve). */
static void send_values(ur_dist *d, ur_params *ps)
{
    size_t off = 0;
    if (d->rank == 0)
        for (int i = 0; i < ur_params_count(ps); i++) {
            const ur_tensor *t = ur_params_at(ps, i);
            memcpy(d->buf + off, t->val, ur_numel(t) * sizeof(float));
            off += ur_numel(t);
        }
    MPI_Bcast(d->buf, (int)ur_params_numel(ps), MPI_FLOAT, 0, d->comm);
    off = 0;
    for (int i = 0; i < ur_params_count(ps); i++) {
        ur_tensor *t = ur_params_at(ps, i);
        memcpy(t->val, d->buf + off, ur_numel(t) * sizeof(float));
        off += ur_numel(t);
    }
}

int ur_dist_broadcast_params(ur_dist *d, ur_params *ps, char *err, size_t errlen)
{
    static const char *what = "dist_broadcast_params";
    if (!d) return ur_dist_fail(err, errlen, what, "no context");
    if (same_structure(d, ps, what, err, errlen) != 0 ||
        reserve(d, ps, what, err, errlen) != 0)
        return -1;
    send_values(d, ps);
    return 0;
}

/* After a checksum mismatch: which parameter of rank `who` first differs from rank 0's, and
 * by how much at most (collective; every rank gets the answer). */
typedef struct diff_report {
    int index;          /* the parameter, -1 if none differs on who */
    int row, col;       /* where the largest difference is */
    double max_abs;     /* largest |value - rank 0's value| (NaN if a value is not finite) */
} diff_report;

static diff_report find_difference(ur_dist *d, const ur_params *ps, int who)
{
    diff_report r = {-1, 0, 0, 0.0};
    int count = ur_params_count(ps);
    unsigned long long *sums = malloc((size_t)(count > 0 ? count : 1) * sizeof *sums);
    /* -1 for "no memory here": the per-parameter checksums need every rank's, same count. */
    if (ur_dist_agree(d, sums ? count : -1, NULL, NULL) && sums) {
        for (int i = 0; i < count; i++) sums[i] = param_checksum(ur_params_at(ps, i));
        MPI_Bcast(sums, count, MPI_UNSIGNED_LONG_LONG, 0, d->comm);
        if (d->rank == who)
            for (int i = 0; i < count && r.index < 0; i++)
                if (sums[i] != param_checksum(ur_params_at(ps, i))) r.index = i;
    }
    free(sums);
    MPI_Bcast(&r.index, 1, MPI_INT, who, d->comm);
    if (r.index < 0) return r;
    /* Rank 0's values of that parameter to `who`, which measures the difference. */
    const ur_tensor *t = ur_params_at(ps, r.index);
    size_t n = ur_numel(t);
    float *theirs = d->rank == who ? malloc(n * sizeof *theirs) : NULL;
    int have = theirs != NULL;
    MPI_Bcast(&have, 1, MPI_INT, who, d->comm);
    if (have && d->rank == 0) MPI_Send(t->val, (int)n, MPI_FLOAT, who, 0, d->comm);
    if (have && d->rank == who) {
        MPI_Recv(theirs, (int)n, MPI_FLOAT, 0, 0, d->comm, MPI_STATUS_IGNORE);
        for (size_t k = 0; k < n; k++) {
            double diff = fabs((double)t->val[k] - (double)theirs[k]);
            if (!(diff <= r.max_abs) && !isnan(r.max_abs)) {
                r.max_abs = diff;   /* NaN sticks: it means a non-finite value */
                r.row = (int)(k / (size_t)t->cols);
                r.col = (int)(k % (size_t)t->cols);
            }
        }
    }
    free(theirs);
    double v[3] = {r.max_abs, r.row, r.col};
    MPI_Bcast(v, 3, MPI_DOUBLE, who, d->comm);
    r.max_abs = v[0];
    r.row = (int)v[1];
    r.col = (int)v[2];
    return r;
}

int ur_dist_check_params(ur_dist *d, const ur_params *ps, long step, long every, char *err,
                         size_t errlen)
{
    static const char *what = "dist_check_params";
    if (!d) return ur_dist_fail(err, errlen, what, "no context");
    if (every <= 0 || step % every != 0) return 0;
    unsigned long long mine = ur_dist_params_checksum(ps), root = mine;
    MPI_Bcast(&root, 1, MPI_UNSIGNED_LONG_LONG, 0, d->comm);
    int differ[2] = {mine != root ? d->rank : INT_MAX, mine != root}, got[2];
    /* The lowest differing rank, and how many differ: MPI_MIN of the rank, MPI_SUM of 1s. */
    MPI_Allreduce(&differ[0], &got[0], 1, MPI_INT, MPI_MIN, d->comm);
    MPI_Allreduce(&differ[1], &got[1], 1, MPI_INT, MPI_SUM, d->comm);
    if (got[0] == INT_MAX) return 0;
    int who = got[0];
    unsigned long long theirs = mine;
    MPI_Bcast(&theirs, 1, MPI_UNSIGNED_LONG_LONG, who, d->comm);
    diff_report r = find_difference(d, ps, who);
    char where[384] = "";
    if (r.index >= 0)
        snprintf(where, sizeof where, "; first differing parameter %s, largest difference %.3g "
                 "at [%d,%d]", ur_params_at(ps, r.index)->name, r.max_abs, r.row, r.col);
    return ur_dist_fail(err, errlen, what, "parameters differ across ranks at step %ld: rank "
                        "%d's checksum %016llx is not rank 0's %016llx (%d of %d ranks "
                        "differ)%s", step, who, theirs, root, got[1], d->size, where);
}

int ur_dist_save_params(ur_dist *d, const ur_params *ps, const char *path, char *err,
                        size_t errlen)
{
    if (!d) return ur_dist_fail(err, errlen, "dist_save_params", "no context");
    int rc = 0;
    char msg[508] = "";
    if (d->rank == 0) rc = ur_params_save(ps, path, msg, sizeof msg);
    rc = ur_dist_share_result(d, 0, rc, msg, sizeof msg);
    if (rc != 0 && err && errlen) snprintf(err, errlen, "%s", msg);
    return rc;
}

int ur_dist_load_params(ur_dist *d, ur_params *ps, const char *path, char *err, size_t errlen)
{
    static const char *what = "dist_load_params";
    if (!d) return ur_dist_fail(err, errlen, what, "no context");
    if (same_structure(d, ps, what, err, errlen) != 0 ||
        reserve(d, ps, what, err, errlen) != 0)
        return -1;
    int rc = 0;
    char msg[508] = "";
    if (d->rank == 0) rc = ur_params_load(ps, path, msg, sizeof msg);
    rc = ur_dist_share_result(d, 0, rc, msg, sizeof msg);
    if (rc != 0) {
        if (err && errlen) snprintf(err, errlen, "%s", msg);
        return -1;
    }
    send_values(d, ps);
    return 0;
}
