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

# Model files: files, metadata, where saves go (helpers shared in tests/modelio_util.c)
MODELIO_UTIL = tests/modelio_util.c tests/modelio_util.h tests/ur_test.h
check_PROGRAMS += tests/test_modelio
tests_test_modelio_SOURCES = tests/test_modelio.c $(MODELIO_UTIL)
tests_test_modelio_CFLAGS = $(TEST_CFLAGS)
tests_test_modelio_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_modelmeta
tests_test_modelmeta_SOURCES = tests/test_modelmeta.c $(MODELIO_UTIL)
tests_test_modelmeta_CFLAGS = $(TEST_CFLAGS)
tests_test_modelmeta_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_modelsave
tests_test_modelsave_SOURCES = tests/test_modelsave.c $(MODELIO_UTIL)
tests_test_modelsave_CFLAGS = $(TEST_CFLAGS)
tests_test_modelsave_LDADD = $(TEST_LDADD)

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
tests_test_cells_SOURCES = tests/test_cells.c tests/cell_test.h tests/ur_test.h
tests_test_cells_CFLAGS = $(TEST_CFLAGS)
tests_test_cells_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_cell_variants
tests_test_cell_variants_SOURCES = tests/test_cell_variants.c tests/cell_test.h tests/ur_test.h
tests_test_cell_variants_CFLAGS = $(TEST_CFLAGS)
tests_test_cell_variants_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_gradcheck
tests_test_gradcheck_SOURCES = tests/test_gradcheck.c tests/ur_test.h
tests_test_gradcheck_CFLAGS = $(TEST_CFLAGS)
tests_test_gradcheck_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_ops_table
tests_test_ops_table_SOURCES = tests/test_ops_table.c tests/ur_test.h
tests_test_ops_table_CFLAGS = $(TEST_CFLAGS)
tests_test_ops_table_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_ops_values
tests_test_ops_values_SOURCES = tests/test_ops_values.c tests/ur_test.h
tests_test_ops_values_CFLAGS = $(TEST_CFLAGS)
tests_test_ops_values_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_layer_norm
tests_test_layer_norm_SOURCES = tests/test_layer_norm.c tests/ur_test.h
tests_test_layer_norm_CFLAGS = $(TEST_CFLAGS)
tests_test_layer_norm_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_checkpoint
tests_test_checkpoint_SOURCES = tests/test_checkpoint.c tests/ur_test.h
tests_test_checkpoint_CFLAGS = $(TEST_CFLAGS)
tests_test_checkpoint_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_dot
tests_test_dot_SOURCES = tests/test_dot.c tests/ur_test.h
tests_test_dot_CFLAGS = $(TEST_CFLAGS)
tests_test_dot_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_kernels
tests_test_kernels_SOURCES = tests/test_kernels.c tests/ur_test.h
tests_test_kernels_CFLAGS = $(TEST_CFLAGS)
tests_test_kernels_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_fused
tests_test_fused_SOURCES = tests/test_fused.c tests/ur_test.h
tests_test_fused_CFLAGS = $(TEST_CFLAGS)
tests_test_fused_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_lengths_unrolls
tests_test_lengths_unrolls_SOURCES = tests/test_lengths_unrolls.c tests/lengths_common.h tests/ur_test.h
tests_test_lengths_unrolls_CFLAGS = $(TEST_CFLAGS)
tests_test_lengths_unrolls_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_lengths_losses
tests_test_lengths_losses_SOURCES = tests/test_lengths_losses.c tests/lengths_common.h tests/ur_test.h
tests_test_lengths_losses_CFLAGS = $(TEST_CFLAGS)
tests_test_lengths_losses_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_lengths_tbptt
tests_test_lengths_tbptt_SOURCES = tests/test_lengths_tbptt.c tests/lengths_common.h tests/ur_test.h
tests_test_lengths_tbptt_CFLAGS = $(TEST_CFLAGS)
tests_test_lengths_tbptt_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_beam
tests_test_beam_SOURCES = tests/test_beam.c tests/ur_test.h
tests_test_beam_CFLAGS = $(TEST_CFLAGS)
tests_test_beam_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test_threads
tests_test_threads_SOURCES = tests/test_threads.c tests/ur_test.h
tests_test_threads_CFLAGS = $(TEST_CFLAGS) -pthread
tests_test_threads_LDADD = $(TEST_LDADD)
tests_test_threads_LDFLAGS = $(AM_LDFLAGS) -pthread
