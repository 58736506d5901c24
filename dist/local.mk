# dist: data-parallel training over MPI (configure --with-mpi), with its tests and benchmark.
# A library of its own, libunroll_dist, so that libunroll itself never depends on MPI. Every
# source is distributed (make dist) whether or not MPI was found.
if HAVE_MPI
lib_LTLIBRARIES += libunroll_dist.la
libunroll_dist_la_SOURCES = dist/dist.c dist/grads.c dist/params.c dist/shard.c \
	dist/dist_internal.h
libunroll_dist_la_CPPFLAGS = $(AM_CPPFLAGS) $(MPI_CFLAGS)
libunroll_dist_la_LIBADD = libunroll.la $(MPI_LIBS)
libunroll_dist_la_LDFLAGS = -version-info $(UR_LT_VERSION) -no-undefined
nobase_pkginclude_HEADERS += dist/ur_dist.h
pkgconfig_DATA += libunroll-dist.pc
# How programs built with MPI compile and link.
DIST_CPPFLAGS = $(AM_CPPFLAGS) $(MPI_CFLAGS) -DUR_HAVE_MPI
DIST_LDADD = libunroll_dist.la $(UR_LDADD) $(MPI_LIBS)

# tests/test_dist runs under mpirun, driven by tests/test-dist.sh. A program built with the
# others, not a check program: those are run alone, without mpirun.
noinst_PROGRAMS += tests/test_dist
tests_test_dist_SOURCES = tests/test_dist.c
tests_test_dist_CPPFLAGS = $(DIST_CPPFLAGS)
tests_test_dist_LDADD = $(DIST_LDADD)

# bench_dist: data-parallel training steps under mpirun; bench/run-dist drives it.
noinst_PROGRAMS += bench/bench_dist
bench_bench_dist_SOURCES = bench/bench_dist.c $(BENCH_COMMON)
bench_bench_dist_CPPFLAGS = $(DIST_CPPFLAGS)
bench_bench_dist_LDADD = examples/libexcommon.la $(DIST_LDADD)
endif
EXTRA_DIST += dist/ur_dist.h bench/run-dist tests/test-dist.sh

# tests/test-dist.sh reports SKIP (exit 77) when MPI was not built; the environment tells it.
TESTS += tests/test-dist.sh
AM_TESTS_ENVIRONMENT = UR_WITH_MPI='$(UR_WITH_MPI)'; MPIEXEC='$(MPIEXEC)'; \
	export UR_WITH_MPI MPIEXEC;
