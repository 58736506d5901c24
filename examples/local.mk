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
# examples/test-docs.sh checks that doc/tutorial.md shows this program in full.
TESTS += examples/test-docs.sh
EXTRA_DIST += examples/test-docs.sh doc/tutorial.md doc/graph-code.md

# Unit tests of the examples' shared plumbing: strict number parsing, checked output (issue 12).
check_PROGRAMS += tests/test_excommon
tests_test_excommon_SOURCES = tests/test_excommon.c tests/ur_test.h
tests_test_excommon_CFLAGS = $(TEST_CFLAGS)
tests_test_excommon_LDADD = examples/libexcommon.la $(TEST_LDADD)

# char_lm's checkpoints: metadata round trip, hostile files rejected before allocation (issue 12).
check_PROGRAMS += tests/test_charlm
tests_test_charlm_SOURCES = tests/test_charlm.c tests/ur_test.h examples/lm_model.c examples/lm_model.h
tests_test_charlm_CFLAGS = $(TEST_CFLAGS)
tests_test_charlm_LDADD = $(TEST_LDADD)

# Allocation-failure sweep over a training step, model files, checkpoints, n-grams and text
# (issue 12). Replaces the allocator, so check-valgrind leaves it out and ASan builds skip it.
check_PROGRAMS += tests/test_allocfail
tests_test_allocfail_SOURCES = tests/test_allocfail.c examples/lm_model.c examples/lm_model.h \
	examples/ngram.c examples/ngram.h examples/text.c examples/text.h
tests_test_allocfail_CFLAGS = $(AM_CFLAGS)
tests_test_allocfail_LDADD = $(UR_LDADD)

# attention_cell: the program shown in doc/graph-code.md (a layer-normalised LSTM and a Luong
# attention decoder written as graph code, gradient-checked and trained), run like the tutorial
# (examples/test-docs.sh checks the page against it).
check_PROGRAMS += examples/attention_cell
examples_attention_cell_LDADD = $(UR_LDADD)

# unfold: the unfolded graphs of small Elman and Jordan networks as Graphviz drawings (issue 14).
noinst_PROGRAMS += examples/unfold
examples_unfold_LDADD = $(EX_LDADD)
TESTS += examples/test-plots.sh
EXTRA_DIST += examples/test-plots.sh examples/plot-log.sh

# caption: image captioning on generated images, uneven caption lengths, greedy and beam
# decoding scored by BLEU-4 (issue 13).
noinst_PROGRAMS += examples/caption
examples_caption_SOURCES = examples/caption.c examples/bleu.c examples/bleu.h
examples_caption_LDADD = $(EX_LDADD)
check_PROGRAMS += tests/test_bleu
tests_test_bleu_SOURCES = tests/test_bleu.c examples/bleu.c examples/bleu.h
tests_test_bleu_CFLAGS = $(TEST_CFLAGS)
tests_test_bleu_LDADD = $(TEST_LDADD)
TESTS += examples/test-examples-3.sh
EXTRA_DIST += examples/test-examples-3.sh
