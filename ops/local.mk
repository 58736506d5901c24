libunroll_la_SOURCES += ops/matmul.c ops/elementwise.c ops/activation.c ops/shape.c \
	ops/embedding.c ops/loss.c ops/dropout.c ops/gates.c \
	ops/recurrent.c ops/blas.c ops/rgemm.c ops/pool.c
nobase_pkginclude_HEADERS += ops/ur_ops.h
libunroll_la_SOURCES += ops/fastmath.h ops/blas.h ops/rgemm.h ops/pool.h
