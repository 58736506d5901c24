# Example programs. Each links the shared plumbing in examples/common.c.
noinst_LTLIBRARIES = examples/libexcommon.la
examples_libexcommon_la_SOURCES = examples/common.c examples/common.h
EX_LDADD = examples/libexcommon.la $(UR_LDADD)
