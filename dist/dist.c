/* The data-parallel context: starting and ending MPI, ranks, per-rank seeds, stopping every
 * rank on a failure, and the small agreements the other files build on. */
#include "dist/dist_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ur_dist_fail(char *err, size_t errlen, const char *what, const char *fmt, ...)
{
    if (!err || errlen == 0) return -1;
    int n = snprintf(err, errlen, "%s: ", what);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int ur_dist_launched(void)
{
    /* Open MPI, MPICH/Intel MPI (PMI), PMIx launchers (Open MPI 5, srun --mpi=pmix), MVAPICH. */
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK",
                                       "PMIX_RANK", "MV2_COMM_WORLD_SIZE"};
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++)
        if (getenv(vars[k])) return 1;
    return 0;
}

ur_dist *ur_dist_new(MPI_Comm comm, char *err, size_t errlen)
{
    ur_dist *d = calloc(1, sizeof *d);
    /* MPI_Comm_dup is collective: every rank calls it, even one that is out of memory. */
    MPI_Comm dup;
    MPI_Comm_dup(comm, &dup);
    if (!d) {
        MPI_Comm_free(&dup);
        ur_dist_fail(err, errlen, "dist_new", "out of memory");
        return NULL;
    }
    d->comm = dup;
    MPI_Comm_rank(dup, &d->rank);
    MPI_Comm_size(dup, &d->size);
    return d;
}

ur_dist *ur_dist_init(int *argc, char ***argv, char *err, size_t errlen)
{
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised && MPI_Init(argc, argv) != MPI_SUCCESS) {
        ur_dist_fail(err, errlen, "dist_init", "MPI_Init failed");
        return NULL;
    }
    ur_dist *d = ur_dist_new(MPI_COMM_WORLD, err, errlen);
    if (d) d->finalize = !initialised;
    else if (!initialised) MPI_Finalize();
    return d;
}

void ur_dist_free(ur_dist *d)
{
    if (!d) return;
    int finalize = d->finalize, finalized = 0;
    MPI_Comm_free(&d->comm);
    free(d->buf);
    free(d);
    MPI_Finalized(&finalized);
    if (finalize && !finalized) MPI_Finalize();
}

int ur_dist_rank(const ur_dist *d) { return d ? d->rank : 0; }
int ur_dist_size(const ur_dist *d) { return d ? d->size : 1; }
int ur_dist_is_root(const ur_dist *d) { return ur_dist_rank(d) == 0; }

/* splitmix64's finaliser: a bijection on 64-bit words that mixes every bit into every bit. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t ur_dist_rank_seed(const ur_dist *d, uint64_t seed)
{
    int r = ur_dist_rank(d);
    return r == 0 ? seed : mix64(seed ^ mix64(0x9e3779b97f4a7c15ULL * (uint64_t)r));
}

void ur_dist_abort(ur_dist *d, int code, const char *fmt, ...)
{
    int initialised = 0, finalized = 0;
    MPI_Initialized(&initialised);
    MPI_Finalized(&finalized);
    int rank = 0, size = 1;
    if (d) {
        rank = d->rank;
        size = d->size;
    } else if (initialised && !finalized) {
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    }
    fflush(stdout);
    fprintf(stderr, "rank %d of %d: ", rank, size);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nrank %d of %d: stopping every rank (MPI_Abort, exit code %d)\n", rank,
            size, code);
    fflush(stderr);
    if (initialised && !finalized) MPI_Abort(d ? d->comm : MPI_COMM_WORLD, code);
    _Exit(code); /* MPI_Abort does not return; without MPI there is no one else to stop */
}

float *ur_dist_buffer(ur_dist *d, size_t n)
{
    if (n <= d->cap) return d->buf;
    float *b = realloc(d->buf, n * sizeof *b);
    if (!b) return NULL;
    d->buf = b;
    d->cap = n;
    return b;
}

int ur_dist_agree(ur_dist *d, long long x, long long *lo, long long *hi)
{
    long long v[2] = {x, -x};   /* max of -x is -min x: one MPI_MAX gives both ends */
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_LONG_LONG, MPI_MAX, d->comm);
    if (lo) *lo = -v[1];
    if (hi) *hi = v[0];
    return v[0] == -v[1];
}

int ur_dist_share_result(ur_dist *d, int root, int rc, char *err, size_t errlen)
{
    struct { int rc; char msg[508]; } r = {rc, ""};
    if (d->rank == root && rc != 0 && err) snprintf(r.msg, sizeof r.msg, "%s", err);
    MPI_Bcast(&r, (int)sizeof r, MPI_BYTE, root, d->comm);
    if (r.rc != 0 && err && errlen) snprintf(err, errlen, "%s", r.msg);
    return r.rc;
}

int ur_dist_broadcast(ur_dist *d, void *buf, size_t bytes, char *err, size_t errlen)
{
    if (!d) return ur_dist_fail(err, errlen, "dist_broadcast", "no context");
    long long lo, hi;   /* -1 stands for a NULL buffer, so that every rank sees it */
    int same = ur_dist_agree(d, bytes && !buf ? -1 : (long long)bytes, &lo, &hi);
    if (lo < 0)
        return ur_dist_fail(err, errlen, "dist_broadcast", "a rank passed a NULL buffer; "
                            "nothing was sent");
    if (!same)
        return ur_dist_fail(err, errlen, "dist_broadcast", "the ranks broadcast different "
                            "sizes (%lld to %lld bytes); nothing was sent", lo, hi);
    for (size_t off = 0; off < bytes;) {  /* MPI counts are int: 1 GiB at a time */
        size_t n = bytes - off < ((size_t)1 << 30) ? bytes - off : (size_t)1 << 30;
        MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, 0, d->comm);
        off += n;
    }
    return 0;
}

ur_dist_stats ur_dist_get_stats(const ur_dist *d)
{
    ur_dist_stats none = {0};
    return d ? d->stats : none;
}
