# Each test program is one Check runner; add yours with the same three lines.
check_PROGRAMS += tests/test_graph
tests_test_graph_SOURCES = tests/test_graph.c tests/ur_test.h
tests_test_graph_CFLAGS = $(TEST_CFLAGS)
tests_test_graph_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_ops
tests_test_ops_SOURCES = tests/test_ops.c tests/ur_test.h
tests_test_ops_CFLAGS = $(TEST_CFLAGS)
tests_test_ops_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_models
tests_test_models_SOURCES = tests/test_models.c tests/ur_test.h
tests_test_models_CFLAGS = $(TEST_CFLAGS)
tests_test_models_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_modelio
tests_test_modelio_SOURCES = tests/test_modelio.c tests/ur_test.h
tests_test_modelio_CFLAGS = $(TEST_CFLAGS)
tests_test_modelio_LDADD = $(TEST_LDADD)

TESTS += $(check_PROGRAMS)

check_PROGRAMS += tests/test_train
tests_test_train_SOURCES = tests/test_train.c tests/ur_test.h
tests_test_train_CFLAGS = $(TEST_CFLAGS)
tests_test_train_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_seq
tests_test_seq_SOURCES = tests/test_seq.c tests/ur_test.h
tests_test_seq_CFLAGS = $(TEST_CFLAGS)
tests_test_seq_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_safety
tests_test_safety_SOURCES = tests/test_safety.c tests/ur_test.h
tests_test_safety_CFLAGS = $(TEST_CFLAGS)
tests_test_safety_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_cells
tests_test_cells_SOURCES = tests/test_cells.c tests/ur_test.h
tests_test_cells_CFLAGS = $(TEST_CFLAGS)
tests_test_cells_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_gradcheck
tests_test_gradcheck_SOURCES = tests/test_gradcheck.c tests/ur_test.h
tests_test_gradcheck_CFLAGS = $(TEST_CFLAGS)
tests_test_gradcheck_LDADD = $(TEST_LDADD)
