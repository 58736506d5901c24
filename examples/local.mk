# Example programs. Each links the shared plumbing in examples/common.c.
noinst_LTLIBRARIES = examples/libexcommon.la
examples_libexcommon_la_SOURCES = examples/common.c examples/common.h
EX_LDADD = examples/libexcommon.la $(UR_LDADD)

# tutorial_cell: the program shown in doc/tutorial.md (an IRNN cell written as graph code).
# A check program, so `make check` builds and runs it (TESTS += $(check_PROGRAMS) in
# tests/local.mk) and the tutorial cannot rot.
check_PROGRAMS += examples/tutorial_cell
examples_tutorial_cell_LDADD = $(UR_LDADD)
TESTS += examples/test-tutorial.sh
EXTRA_DIST += examples/test-tutorial.sh doc/tutorial.md
