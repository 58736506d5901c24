# bench
# Benchmarks (not installed, not run by make check): bench/run drives them.
noinst_PROGRAMS += bench/bench_train bench/bench_sgemm
BENCH_COMMON = bench/bench_common.c bench/bench_common.h
bench_bench_train_SOURCES = bench/bench_train.c bench/alloc_count.c bench/alloc_count.h \
	$(BENCH_COMMON)
bench_bench_train_LDADD = $(EX_LDADD)
bench_bench_sgemm_SOURCES = bench/bench_sgemm.c $(BENCH_COMMON)
bench_bench_sgemm_LDADD = $(EX_LDADD)
EXTRA_DIST += bench/run bench/bench_torch.py bench/trap
noinst_PROGRAMS += bench/bench_cells
bench_bench_cells_SOURCES = bench/bench_cells.c $(BENCH_COMMON)
bench_bench_cells_LDADD = $(EX_LDADD)
# bench_checkpoint: memory and time of checkpointed against plain BPTT, and each cell's tape
# against the BPTT minimum (issue 14).
noinst_PROGRAMS += bench/bench_checkpoint
bench_bench_checkpoint_SOURCES = bench/bench_checkpoint.c bench/alloc_count.c \
	bench/alloc_count.h $(BENCH_COMMON)
bench_bench_checkpoint_LDADD = $(EX_LDADD)

noinst_PROGRAMS += bench/bench_dnnl
bench_bench_dnnl_SOURCES = bench/bench_dnnl.c $(BENCH_COMMON)
bench_bench_dnnl_LDADD = $(EX_LDADD) $(DNNL_LIBS)
EXTRA_DIST += bench/run-dnnl

# bench_lengths: the cost of a length per row (masking) against equal lengths.
noinst_PROGRAMS += bench/bench_lengths
bench_bench_lengths_SOURCES = bench/bench_lengths.c $(BENCH_COMMON)
bench_bench_lengths_LDADD = $(EX_LDADD)
# bench_beam: beam-search decoding time, and no allocation after the first step.
noinst_PROGRAMS += bench/bench_beam
bench_bench_beam_SOURCES = bench/bench_beam.c bench/alloc_count.c bench/alloc_count.h \
	$(BENCH_COMMON)
bench_bench_beam_LDADD = $(EX_LDADD)
# bench_rgemm: our GEMM kernels against cblas_sgemm, one product at a time.
noinst_PROGRAMS += bench/bench_rgemm
bench_bench_rgemm_SOURCES = bench/bench_rgemm.c $(BENCH_COMMON)
bench_bench_rgemm_LDADD = $(EX_LDADD)
