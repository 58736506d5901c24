/* What the files of dist/ share: the context and a few helpers. Not installed. */
#ifndef UR_DIST_INTERNAL_H
#define UR_DIST_INTERNAL_H

#include "dist/ur_dist.h"

struct ur_dist {
    MPI_Comm comm;        /* our own copy, so our collectives never meet the program's */
    int rank, size;
    int finalize;         /* 1: ur_dist_init called MPI_Init, ur_dist_free calls MPI_Finalize */
    float *buf;           /* the flat buffer of the all-reduce and the broadcasts */
    size_t cap;           /* floats it holds */
    size_t agreed;        /* buffer length the ranks last agreed on in ur_dist_average_grads */
    ur_dist_stats stats;
};

/* The flat buffer with room for n floats (grown, never shrunk); NULL when out of memory. */
float *ur_dist_buffer(ur_dist *d, size_t n);
/* Writes "<what>: <printf message>" into err (err may be NULL). Returns -1. */
int ur_dist_fail(char *err, size_t errlen, const char *what, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* 1 when every rank passed the same x (collective: one MPI_Allreduce of two numbers); the
 * smallest and largest values in *lo and *hi when not NULL. */
int ur_dist_agree(ur_dist *d, long long x, long long *lo, long long *hi);
/* Every rank gets rank root's rc and message (collective); returns that rc. */
int ur_dist_share_result(ur_dist *d, int root, int rc, char *err, size_t errlen);

#endif
