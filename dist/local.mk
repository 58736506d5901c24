# dist: data-parallel training over MPI (configure --with-mpi). A library of its own,
# libunroll_dist, so that libunroll itself never depends on MPI. Its sources are distributed
# (make dist) whether or not MPI was found.
if HAVE_MPI
lib_LTLIBRARIES += libunroll_dist.la
libunroll_dist_la_SOURCES = dist/dist.c dist/grads.c dist/params.c dist/shard.c \
	dist/dist_internal.h
libunroll_dist_la_CPPFLAGS = $(AM_CPPFLAGS) $(MPI_CFLAGS)
libunroll_dist_la_LIBADD = libunroll.la $(MPI_LIBS)
libunroll_dist_la_LDFLAGS = -version-info $(UR_LT_VERSION) -no-undefined
nobase_pkginclude_HEADERS += dist/ur_dist.h
pkgconfig_DATA += libunroll-dist.pc
# What programs built with MPI link and how they compile.
DIST_CPPFLAGS = $(AM_CPPFLAGS) $(MPI_CFLAGS) -DUR_HAVE_MPI
DIST_LDADD = libunroll_dist.la $(UR_LDADD) $(MPI_LIBS)
endif
EXTRA_DIST += dist/ur_dist.h
