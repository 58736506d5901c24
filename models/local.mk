libunroll_la_SOURCES += models/unroll.c models/elman.c
nobase_pkginclude_HEADERS += models/ur_models.h
libunroll_la_SOURCES += models/lstm.c models/model_error.c
libunroll_la_SOURCES += models/gru.c models/stack.c models/bidir.c models/single.c
libunroll_la_SOURCES += models/jordan.c models/tbptt.c
libunroll_la_SOURCES += models/checkpoint.c

libunroll_la_SOURCES += models/lengths.h
libunroll_la_SOURCES += models/beam.c
