# uspair build.  `make` builds the libraries, tests and tools into $(BUILD);
# `make check` runs every test; `make bench` runs the side-by-side benchmark.
# Sanitizer builds: `make check SAN=address,undefined` or `make check SAN=thread`
# (each goes to its own build directory).

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BINDIR ?= $(PREFIX)/bin
DESTDIR ?=

VERSION := 0.1.0
SOMAJOR := 0

CC ?= cc
SAN ?=
ifeq ($(SAN),)
BUILD ?= build
SANFLAGS :=
else
BUILD ?= build-$(subst $(comma),-,$(SAN))
SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
comma := ,

OPT ?= -O2
CFLAGS ?= $(OPT) -g
# Link-time optimisation of the plain build: the library's hot path calls
# small functions that live in their own files (locks, ring, accounting,
# wake-ups); LTO inlines them (22% fewer instructions per send+recv round,
# callgrind).  The objects are fat, so the static library links without
# LTO too.  gcc only; sanitizer builds go without.  `make LTO=` turns it off.
CC_IS_GCC := $(shell $(CC) -v 2>&1 | grep -q '^gcc version' && echo yes)
ifeq ($(SAN)$(CC_IS_GCC),yes)
LTO ?= -flto=auto -ffat-lto-objects
else
LTO ?=
endif
WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wmissing-prototypes -Wstrict-prototypes
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -fPIC -pthread -Iinclude -Isrc $(WARN) $(CFLAGS) $(SANFLAGS) $(LTO)
ALL_LDFLAGS := -pthread $(SANFLAGS) $(LTO) $(CFLAGS) $(LDFLAGS)

LIB_SRCS := $(wildcard src/*.c)
LIB_OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
TEST_SRCS := $(filter-out test/t_%.c,$(wildcard test/*.c))
TEST_HELPERS := $(wildcard test/t_*.c)
TEST_BINS := $(patsubst test/%.c,$(BUILD)/test/%,$(TEST_SRCS))
TOOL_SRCS := $(wildcard tools/*.c)

# gcc-ar indexes the LTO symbols too (plain ar would warn and leave them out)
AR_LTO := $(if $(LTO),$(shell command -v gcc-ar 2>/dev/null || echo ar),ar)

SHLIB := $(BUILD)/libuspair.so.$(VERSION)
STLIB := $(BUILD)/libuspair.a
PRELOAD := $(BUILD)/libuspair-preload.so

.PHONY: all lib tests tools check runtests check-all check-install bench install uninstall clean \
	fuzz fuzz-run hotpath aggregate rate-floor
all: lib tests tools
lib: $(SHLIB) $(STLIB) $(PRELOAD)
tests: $(TEST_BINS)
tools: $(BUILD)/uspair

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) include/uspair.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -c $< -o $@

$(SHLIB): $(LIB_OBJS) src/uspair.map
	$(CC) -shared -Wl,-soname,libuspair.so.$(SOMAJOR) -Wl,--version-script=src/uspair.map \
		$(LIB_OBJS) -o $@ $(ALL_LDFLAGS)
	ln -sf libuspair.so.$(VERSION) $(BUILD)/libuspair.so.$(SOMAJOR)
	ln -sf libuspair.so.$(SOMAJOR) $(BUILD)/libuspair.so

# The drop-in preload (preload/preload.c): the library objects again, with
# their libc calls renamed to usp__real_* (preload/real.syms, resolved by
# preload/real.c), so that the preload's own `read` and friends can be the
# program's.  No LTO: objcopy renames in machine code only.
PRELOAD_CFLAGS := -std=gnu11 -D_GNU_SOURCE -U_FORTIFY_SOURCE -fPIC -pthread -Iinclude -Isrc \
	$(WARN) $(CFLAGS) $(SANFLAGS)
PRELOAD_OBJS := $(patsubst src/%.c,$(BUILD)/preload-obj/%.o,$(LIB_SRCS))

$(BUILD)/preload-obj/%.o: src/%.c $(wildcard src/*.h) include/uspair.h preload/real.syms
	@mkdir -p $(dir $@)
	$(CC) $(PRELOAD_CFLAGS) -fvisibility=hidden -c $< -o $@.raw
	objcopy --redefine-syms=preload/real.syms $@.raw $@
	rm -f $@.raw

$(PRELOAD): $(PRELOAD_OBJS) preload/preload.c preload/real.c preload/preload.h preload/preload.map
	$(CC) $(PRELOAD_CFLAGS) -Ipreload -fvisibility=hidden -shared \
		-Wl,--version-script=preload/preload.map preload/preload.c preload/real.c \
		$(PRELOAD_OBJS) -o $@ -pthread $(SANFLAGS) -ldl

$(STLIB): $(LIB_OBJS)
	rm -f $@
	$(AR_LTO) rcs $@ $(LIB_OBJS)

$(BUILD)/test/%: test/%.c $(TEST_HELPERS) $(wildcard test/*.h) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itest $< $(TEST_HELPERS) $(STLIB) -o $@ $(ALL_LDFLAGS)

$(BUILD)/uspair: $(TOOL_SRCS) $(wildcard tools/*.h) $(STLIB)
	$(CC) $(ALL_CFLAGS) $(TOOL_SRCS) $(STLIB) -o $@ $(ALL_LDFLAGS) -lm

# TSan refuses to start threads in the child of a multi-threaded fork by
# default; uspair's watchdog thread (started at a child's first sleep) is
# one, and glibc supports it.
check runtests: all
	TSAN_OPTIONS="die_after_fork=0 $$TSAN_OPTIONS" BUILD=$(BUILD) SAN=$(SAN) \
		bash test/runtests.sh $(TEST_BINS) test/programs.sh

# Every test, plain, under ASan+UBSan and under TSan, then the quick
# benchmark regression check (ratios against the kernel, generous bounds),
# then every diff_fuzz seed input once (each is a past finding or a
# coverage seed; a divergence fails), then the fuzzers in CHECK_FUZZERS
# for a short while (CHECK_FUZZ_BUDGET seconds in all, at most
# FUZZ_SECONDS each), with a fixed seed so that a finding can be rerun.
# diff_fuzz does not explore in check-all: in CI it met a divergence that
# depends on timing and did not reproduce (issue 4 notes); `make fuzz-run`
# runs both with libFuzzer's own random seeds.
CHECK_FUZZ_BUDGET ?= 120
CHECK_FUZZ_SEED ?= 1
CHECK_FUZZERS ?= $(FUZZ_BUILD)/region_fuzz
check-all:
	$(MAKE) check
	$(MAKE) check SAN=address,undefined
	$(MAKE) check SAN=thread
	scripts/check-install.sh $(BUILD)
	$(BUILD)/uspair bench --check
	$(MAKE) fuzz
	$(FUZZ_BUILD)/diff_fuzz $(wildcard fuzz/corpus/diff_fuzz/*)
	$(MAKE) fuzz-run FUZZ_TOTAL_SECONDS=$(CHECK_FUZZ_BUDGET) FUZZ_RUN="$(CHECK_FUZZERS)" \
		FUZZ_SECONDS=$(CHECK_FUZZ_BUDGET) FUZZ_ARGS="-seed=$(CHECK_FUZZ_SEED) $(FUZZ_ARGS)"

# Instructions per one-byte send+recv round (callgrind): the repeatable
# measure for hot-path work.
hotpath: lib
	BUILD=$(BUILD) CC=$(CC) bash scripts/hotpath.sh

# Aggregate one-way throughput over 1, 2, 4 and 8 pairs, kernel and
# uspair alternating.
aggregate: lib
	$(CC) -O2 -Iinclude scripts/aggregate.c $(STLIB) -pthread -o $(BUILD)/aggregate
	$(BUILD)/aggregate $(AGGREGATE_ROUNDS)

# What 64-byte messages cost with bare shared memory, with a lock, with
# the wake protocol's fence and with a robust mutex, beside uspair's
# (scripts/rate_floor.c): where the message rate is bounded.
rate-floor: lib
	$(CC) -O2 $(WARN) -Iinclude scripts/rate_floor.c $(STLIB) -pthread -o $(BUILD)/rate_floor
	$(BUILD)/rate_floor $(RATE_FLOOR_ROUNDS)

# libFuzzer targets: every fuzz/NAME.c becomes build-fuzz/NAME, built with
# clang from the library sources directly (not from $(BUILD)), together
# with every test helper.  `make fuzz-run` runs each one for FUZZ_SECONDS
# (FUZZ_TOTAL_SECONDS, when given, is split between them) with a
# per-input time limit of FUZZ_TIMEOUT seconds, starting from the seeds in
# fuzz/corpus/NAME/ (copied: a run never writes into the repository).
FUZZ_CC ?= clang
FUZZ_BUILD := build-fuzz
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE -pthread \
	-Iinclude -Isrc -Itest
FUZZ_SRCS := $(wildcard fuzz/*.c)
FUZZ_BINS := $(patsubst fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRCS))
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 10

fuzz: $(FUZZ_BINS)

$(FUZZ_BUILD)/%: fuzz/%.c $(TEST_HELPERS) $(wildcard test/t_*.h) $(LIB_SRCS) $(wildcard src/*.h) include/uspair.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $< $(TEST_HELPERS) $(LIB_SRCS) -o $@

FUZZ_RUN ?= $(FUZZ_BINS)
fuzz-run: fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) \
		FUZZ_TOTAL_SECONDS=$(FUZZ_TOTAL_SECONDS) FUZZ_BUILD=$(FUZZ_BUILD) \
		FUZZ_ARGS="$(FUZZ_ARGS)" bash scripts/fuzz-run.sh $(FUZZ_RUN)

check-install: all
	scripts/check-install.sh $(BUILD)

bench: tools
	$(BUILD)/uspair bench $(BENCH_ARGS)

install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR)
	install -m 644 include/uspair.h $(DESTDIR)$(INCLUDEDIR)/uspair.h
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/libuspair.so.$(VERSION)
	ln -sf libuspair.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libuspair.so.$(SOMAJOR)
	ln -sf libuspair.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libuspair.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/libuspair.a
	install -m 755 $(PRELOAD) $(DESTDIR)$(LIBDIR)/libuspair-preload.so
	# the installed archive carries machine code only: LTO bytecode is
	# tied to this compiler's version and would break another's -flto link
	[ -z "$(LTO)" ] || objcopy -R '.gnu.lto_*' -R '.gnu.debuglto_*' \
		$(DESTDIR)$(LIBDIR)/libuspair.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' uspair.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/uspair.pc
	[ ! -f $(BUILD)/uspair ] || install -m 755 $(BUILD)/uspair $(DESTDIR)$(BINDIR)/uspair

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/uspair.h $(DESTDIR)$(LIBDIR)/libuspair.so* \
		$(DESTDIR)$(LIBDIR)/libuspair.a $(DESTDIR)$(LIBDIR)/libuspair-preload.so $(DESTDIR)$(PKGCONFIGDIR)/uspair.pc $(DESTDIR)$(BINDIR)/uspair

clean:
	rm -rf build build-*
