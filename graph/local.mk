libunroll_la_SOURCES += graph/tape.c graph/tensor.c graph/params.c graph/rng.c graph/gradcheck.c \
	graph/dot.c
nobase_pkginclude_HEADERS += graph/ur_graph.h
libunroll_la_SOURCES += graph/finite.h graph/optim.c graph/schedule.c graph/clip.c graph/init.c graph/modelio_save.c graph/modelio_read.c graph/modelio_internal.h graph/meta.c graph/meta_internal.h graph/sample.c
nobase_pkginclude_HEADERS += graph/ur_train.h
