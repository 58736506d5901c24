libunroll_la_SOURCES += ops/matmul.c ops/elementwise.c ops/activation.c ops/shape.c \
	ops/embedding.c ops/loss.c ops/dropout.c ops/gates.c \
	ops/recurrent.c ops/blas.c
nobase_pkginclude_HEADERS += ops/ur_ops.h
libunroll_la_SOURCES += ops/fastmath.h ops/blas.h
# row masks for batches of uneven lengths
libunroll_la_SOURCES += ops/mask.c ops/mask.h
