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
