libunroll_la_SOURCES += graph/tape.c graph/tensor.c graph/params.c graph/rng.c graph/gradcheck.c
nobase_pkginclude_HEADERS += graph/ur_graph.h
