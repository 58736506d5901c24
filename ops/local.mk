libunroll_la_SOURCES += ops/matmul.c ops/elementwise.c ops/broadcast.c ops/unary.c \
	ops/activation.c ops/reduce.c ops/softmax.c ops/layernorm.c ops/constant.c ops/shape.c \
	ops/layout.c ops/gather.c ops/loss.c ops/dropout.c ops/gates.c ops/recurrent.c ops/blas.c \
	ops/rgemm.c ops/rgemm_gemm.c ops/pool.c ops/isa.c ops/colsum.c
nobase_pkginclude_HEADERS += ops/ur_ops.h
libunroll_la_SOURCES += ops/fastmath.h ops/blas.h ops/colsum.h ops/rgemm.h ops/rgemm_job.h \
    ops/pool.h ops/isa.h ops/linear.h
# row masks for batches of uneven lengths
libunroll_la_SOURCES += ops/mask.c ops/mask.h
