# Fuzzing (issue 12). The harnesses fuzz/fuzz_*.c are built two ways:
#  - always, with the ordinary compiler, as replay programs: make check runs each over the
#    seed corpus (fuzz/corpus/TARGET) and every saved crash (fuzz/regressions/TARGET), so a
#    crash found once stays a regression test (fuzz/test-replay.sh);
#  - with clang's libFuzzer, AddressSanitizer and UBSan, when configure found them
#    (--enable-fuzzing; by default when clang links -fsanitize=fuzzer): `make` builds
#    fuzz/fuzz_TARGET, and `make fuzz-run FUZZ_SECONDS=N` fuzzes each target for N seconds
#    (fuzz/run; CI runs it for a few seconds).
FUZZ_TARGETS = modelio checkpoint text options

check_PROGRAMS += fuzz/replay_modelio fuzz/replay_checkpoint fuzz/replay_text fuzz/replay_options
fuzz_replay_modelio_SOURCES = fuzz/replay.c fuzz/fuzz_modelio.c
fuzz_replay_modelio_LDADD = $(UR_LDADD)
fuzz_replay_checkpoint_SOURCES = fuzz/replay.c fuzz/fuzz_checkpoint.c examples/lm_model.c \
	examples/lm_model.h
fuzz_replay_checkpoint_LDADD = $(UR_LDADD)
fuzz_replay_text_SOURCES = fuzz/replay.c fuzz/fuzz_text.c examples/text.c examples/text.h
fuzz_replay_options_SOURCES = fuzz/replay.c fuzz/fuzz_options.c
fuzz_replay_options_LDADD = $(EX_LDADD)
TESTS += fuzz/test-replay.sh
# The binary seeds (model files, checkpoints) come from this program: fuzz/make_seeds fuzz/corpus
noinst_PROGRAMS += fuzz/make_seeds
fuzz_make_seeds_SOURCES = fuzz/make_seeds.c examples/lm_model.c examples/lm_model.h
fuzz_make_seeds_LDADD = $(UR_LDADD)
EXTRA_DIST += fuzz/run fuzz/test-replay.sh fuzz/corpus fuzz/regressions

if FUZZING
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_COMPILE = $(FUZZ_CC) -std=c11 -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) $(DEFS) \
	-I$(top_builddir) $(AM_CPPFLAGS) $(CPPFLAGS)
FUZZ_LINK = $(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(OPENBLAS_LIBS) -lm
FUZZ_LIB_O = $(patsubst %.c,fuzz/obj/%.o,$(filter %.c,$(libunroll_la_SOURCES)))
FUZZ_BIN = $(addprefix fuzz/fuzz_,$(FUZZ_TARGETS))

fuzz/obj/%.o: $(srcdir)/%.c
	@mkdir -p $(@D)
	$(AM_V_CC)$(FUZZ_COMPILE) -c $< -o $@
fuzz/fuzz_modelio: fuzz/obj/fuzz/fuzz_modelio.o $(FUZZ_LIB_O)
	$(AM_V_CCLD)$(FUZZ_LINK)
fuzz/fuzz_checkpoint: fuzz/obj/fuzz/fuzz_checkpoint.o fuzz/obj/examples/lm_model.o $(FUZZ_LIB_O)
	$(AM_V_CCLD)$(FUZZ_LINK)
fuzz/fuzz_text: fuzz/obj/fuzz/fuzz_text.o fuzz/obj/examples/text.o
	$(AM_V_CCLD)$(FUZZ_LINK)
fuzz/fuzz_options: fuzz/obj/fuzz/fuzz_options.o fuzz/obj/examples/common.o $(FUZZ_LIB_O)
	$(AM_V_CCLD)$(FUZZ_LINK)

all-local: $(FUZZ_BIN)
fuzz: $(FUZZ_BIN)
fuzz-run: $(FUZZ_BIN)
	$(srcdir)/fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)
CLEANFILES += $(FUZZ_BIN)
else
fuzz fuzz-run:
	@echo "fuzzing was skipped: configure found no compiler linking -fsanitize=fuzzer (clang and"
	@echo "libclang-rt-dev on Debian); see ./configure --help, --enable-fuzzing and FUZZ_CC"
endif
FUZZ_SECONDS = 10
clean-local:
	-rm -rf fuzz/obj fuzz/work
.PHONY: fuzz fuzz-run
