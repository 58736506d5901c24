# Example programs. Each links the shared plumbing in examples/common.c.
noinst_LTLIBRARIES = examples/libexcommon.la
examples_libexcommon_la_SOURCES = examples/common.c examples/common.h
EX_LDADD = examples/libexcommon.la $(UR_LDADD)

# char_lm: character-level language model with n-gram baselines (issue 5).
noinst_PROGRAMS += examples/char_lm
examples_char_lm_SOURCES = examples/char_lm.c examples/lm_model.c examples/lm_model.h \
	examples/ngram.c examples/ngram.h examples/text.c examples/text.h
examples_char_lm_LDADD = $(EX_LDADD)
# Its data-parallel mode (issue 16): MPI when configured --with-mpi, a no-op otherwise.
examples_char_lm_SOURCES += examples/char_lm_dist.c examples/char_lm_dist.h
if HAVE_MPI
examples_char_lm_CPPFLAGS = $(DIST_CPPFLAGS)
examples_char_lm_LDADD += libunroll_dist.la $(MPI_LIBS)
endif
TESTS += examples/test-char-lm.sh
EXTRA_DIST += examples/test-char-lm.sh

# adding, classify, xor: long-range memory (LSTM vs Elman) and Elman's temporal XOR (issue 5).
noinst_PROGRAMS += examples/adding examples/classify examples/xor
examples_adding_LDADD = $(EX_LDADD)
examples_classify_LDADD = $(EX_LDADD)
examples_xor_LDADD = $(EX_LDADD)
TESTS += examples/test-examples-1.sh
EXTRA_DIST += examples/test-examples-1.sh examples/check-results

# jordan, bitag, seq2seq: exposure bias, bidirectional tagging, encoder-decoder (issue 5).
noinst_PROGRAMS += examples/jordan examples/bitag examples/seq2seq
examples_jordan_LDADD = $(EX_LDADD)
examples_bitag_LDADD = $(EX_LDADD)
examples_seq2seq_LDADD = $(EX_LDADD)
TESTS += examples/test-examples-2.sh
EXTRA_DIST += examples/test-examples-2.sh

# tutorial_cell: the program shown in doc/tutorial.md (an IRNN cell written as graph code).
# A check program, so `make check` builds and runs it (TESTS += $(check_PROGRAMS) in
# tests/local.mk) and the tutorial cannot rot.
check_PROGRAMS += examples/tutorial_cell
examples_tutorial_cell_LDADD = $(UR_LDADD)
TESTS += examples/test-tutorial.sh
EXTRA_DIST += examples/test-tutorial.sh doc/tutorial.md
