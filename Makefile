# dirtytrack - see README.md.  `make` builds, `make check` runs every test
# (once plainly, once under AddressSanitizer + UBSan), `make demo` shows it.

CC       ?= gcc
BUILD    ?= build
SANFLAGS ?=
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Wshadow -Wno-missing-field-initializers \
            -D_GNU_SOURCE -I. -I$(BUILD)/gen $(SANFLAGS) -MMD -MP
LDFLAGS  += $(SANFLAGS)
NL_CFLAGS := $(shell pkg-config --cflags libnl-3.0 2>/dev/null || echo -I/usr/include/libnl3)
NL_LIBS   := $(shell pkg-config --libs libnl-3.0 2>/dev/null || echo -lnl-3)
CFLAGS   += $(NL_CFLAGS)
# libunwind's remote (ptrace) unwinder: Debian's libunwind-dev has a .pc for it
UNW_CFLAGS := $(shell pkg-config --cflags libunwind-ptrace 2>/dev/null)
UNW_LIBS   := $(shell pkg-config --libs libunwind-ptrace 2>/dev/null || \
		echo -lunwind-ptrace -lunwind-generic -lunwind)
CFLAGS   += $(UNW_CFLAGS)
LIBS     := -lcap -lprotobuf-c $(NL_LIBS) $(UNW_LIBS)
PYTHON   ?= python3
VERSION  := 0.1

# make install / uninstall: the binary, the man page, the bash completion.
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
INSTALL  ?= install

LIB_SRC     := $(wildcard lib/*.c)
PAGEMAP_SRC := $(wildcard pagemap/*.c)
TRACKER_SRC := $(wildcard tracker/*.c)
CLI_SRC     := $(wildcard cli/*.c)
IMAGE_SRC   := $(wildcard image/*.c)
PROTOS      := $(wildcard proto/*.proto)
PROTO_C     := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H     := $(PROTO_C:.c=.h)
CORE_SRC    := $(LIB_SRC) $(PAGEMAP_SRC) $(TRACKER_SRC) $(IMAGE_SRC)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

BIN        := $(BUILD)/dirtytrack
TARGET_BIN := $(BUILD)/dt-target
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))

.PHONY: all check check-unit check-integration check-asan check-fuzz fuzz demo clean install \
	uninstall man check-man FORCE

all: $(BIN) $(TARGET_BIN) $(UNIT_BIN)

# C for the image schemas is generated here, never committed (and kept:
# they are not intermediate files to delete after the build).
.SECONDARY: $(PROTO_C) $(PROTO_H)

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto $(PROTOS)
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -Iproto $<

# The version and the commit the binary is built from, rewritten only when
# they change.  A tree without .git (a tarball) says so in --version.
VERSION_H := $(BUILD)/gen/version.h
$(VERSION_H): FORCE
	@mkdir -p $(dir $@)
	@c=$$(git rev-parse --short=12 HEAD 2>/dev/null) || c=""; \
	if [ -n "$$c" ] && ! git diff --quiet HEAD -- 2>/dev/null; then c="$$c-dirty"; fi; \
	printf '#define DT_VERSION "%s"\n#define DT_COMMIT "%s"\n' '$(VERSION)' "$$c" >$@.tmp; \
	if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(BUILD)/obj/cli/help.o: $(VERSION_H)

# System call names, from the headers the tool is built against: the
# compiler's own view of <asm/unistd_64.h> (-dM), one "[NR] = "name"," a call.
SYSCALL_NAMES_H := $(BUILD)/gen/syscall_names.h
$(SYSCALL_NAMES_H): Makefile
	@mkdir -p $(dir $@)
	echo '#include <asm/unistd_64.h>' | $(CC) -E -dM - | \
		sed -n 's/^#define __NR_\([a-z0-9_]*\) \([0-9][0-9]*\)$$/\t[\2] = "\1",/p' >$@.tmp
	@test -s $@.tmp || { echo "no system call numbers in <asm/unistd_64.h>"; rm -f $@.tmp; exit 1; }
	@mv $@.tmp $@

$(BUILD)/obj/lib/syscalls.o: $(SYSCALL_NAMES_H)

$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-unused-parameter -c $< -o $@

PROTO_OBJ := $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))

$(BIN): $(call obj,$(CORE_SRC) $(CLI_SRC)) $(PROTO_OBJ)
	$(CC) $(LDFLAGS) $^ $(LIBS) -o $@

# The test target is a plain program: no sanitizer in the measured process.
$(TARGET_BIN): tests/target/dt-target.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -Wall -Wextra -pthread $< -o $@

# Unit tests link every layer, cli/ too, all but the entry point.
$(BUILD)/unit/test_%: tests/unit/test_%.c $(call obj,$(CORE_SRC) $(filter-out cli/dirtytrack.c,$(CLI_SRC))) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LIBS) -lcmocka -o $@

# One after the other, so that the last line is the last suite's summary.
check:
	@$(MAKE) --no-print-directory check-unit
	@$(MAKE) --no-print-directory check-integration
	@$(MAKE) --no-print-directory check-fuzz
	@$(MAKE) --no-print-directory check-asan

check-unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do echo "== $$t"; $$t || exit 1; done

check-integration: $(BIN) $(TARGET_BIN)
	$(PYTHON) tests/integration/run.py --bin $(BIN) --target $(TARGET_BIN) \
		$(if $(SAN_LOGS),--sanitizer-logs $(SAN_LOGS))

# The same suites again with the tool built under ASan + UBSan: any report fails.
# Reports go to files too: the holder's stderr is /dev/null.
SAN_LOGS  = $(abspath build-asan)/sanitizer
ASAN_MAKE = ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:log_path=$(SAN_LOGS)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(SAN_LOGS)/ubsan SAN_LOGS=$(SAN_LOGS) \
	$(MAKE) --no-print-directory BUILD=build-asan \
	SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

check-asan:
	@$(ASAN_MAKE) check-unit
	@$(ASAN_MAKE) check-integration

# Fuzzing (tests/fuzz/): libFuzzer harnesses over every reader of untrusted
# input, built with clang under ASan + UBSan.  `make fuzz` runs each target
# FUZZ_SECONDS (default 60) from the committed seeds, keeping what it finds in
# build-fuzz/corpus/; `make check` runs each a few seconds (about 60 s in all).
# Any crash, leak or undefined behaviour fails, and leaves build-fuzz/crash-*.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_IMAGE   := inventory pstree mm core stats pagemap
FUZZ_PROC    := maps smaps stat status fdinfo
FUZZ_TARGETS := $(FUZZ_IMAGE) $(FUZZ_PROC) chain
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_MAKE     = $(MAKE) --no-print-directory BUILD=build-fuzz CC=$(FUZZ_CC) \
		SANFLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN)"
FUZZ_HARNESS := image proc chain

# (run with BUILD=build-fuzz, by FUZZ_MAKE)
$(BUILD)/fuzz/harness_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(call obj,$(CORE_SRC)) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(filter %.c %.o,$^) $(LIBS) -o $@

fuzz-bins: $(patsubst %,$(BUILD)/fuzz/harness_%,$(FUZZ_HARNESS))
	@cd $(BUILD)/fuzz && for t in $(FUZZ_IMAGE); do ln -f harness_image fuzz_$$t; done && \
		for t in $(FUZZ_PROC); do ln -f harness_proc fuzz_$$t; done && \
		ln -f harness_chain fuzz_chain

FUZZ_RUN = command -v $(FUZZ_CC) >/dev/null || \
		{ echo "fuzz: $(FUZZ_CC) is missing: apt-get install clang libclang-rt-14-dev (./bootstrap.sh)"; \
		  exit 1; }; \
	$(FUZZ_MAKE) fuzz-bins && \
	for t in $(FUZZ_TARGETS); do \
		mkdir -p build-fuzz/corpus/$$t; \
		echo "== fuzz_$$t ($$secs s)"; \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		build-fuzz/fuzz/fuzz_$$t -max_total_time=$$secs -print_final_stats=1 \
			-artifact_prefix=build-fuzz/crash-$$t- build-fuzz/corpus/$$t \
			tests/fuzz/corpus/$$t 2>build-fuzz/fuzz_$$t.log || \
			{ tail -40 build-fuzz/fuzz_$$t.log; echo "fuzz_$$t FAILED"; exit 1; }; \
		grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)|^\#[0-9]+.*DONE" \
			build-fuzz/fuzz_$$t.log | tr '\n' ' '; echo; \
	done

fuzz:
	@secs=$(FUZZ_SECONDS); $(FUZZ_RUN)

check-fuzz:
	@secs=5; $(FUZZ_RUN)

demo: $(BIN) $(BUILD)/bench/workload
	@sh scripts/demo.sh $(BIN) $(BUILD)/bench/workload

clean:
	rm -rf build build-asan build-fuzz

# The man page's SYNOPSIS, OPTIONS and per-command EXIT STATUS are written by
# the binary from its tables: `make man` puts them in, `make check-man`
# (run by the tests too) fails when the page and the tables differ.
man: $(BIN)
	$(PYTHON) scripts/man-sync.py --bin $(BIN) man/dirtytrack.1

check-man: $(BIN)
	$(PYTHON) scripts/man-sync.py --bin $(BIN) --check man/dirtytrack.1

install: $(BIN)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/dirtytrack
	$(INSTALL) -m 0644 man/dirtytrack.1 $(DESTDIR)$(MANDIR)/man1/dirtytrack.1
	$(INSTALL) -m 0644 bash-completion/dirtytrack $(DESTDIR)$(BASHCOMPDIR)/dirtytrack

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dirtytrack $(DESTDIR)$(MANDIR)/man1/dirtytrack.1 \
	      $(DESTDIR)$(BASHCOMPDIR)/dirtytrack

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Benchmarks (bench/, see BENCHMARKS.md).  `make bench` measures everything
# and rewrites the tables in BENCHMARKS.md; `make bench-quick` is the
# two-minute subset.  Plots need gnuplot: installed here when missing and
# we are root, otherwise the run skips them and says so.
BENCH_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -D_GNU_SOURCE -I.
BENCH_BIN    := $(BUILD)/bench/workload $(BUILD)/bench/raw_fault $(BUILD)/bench/scanbench
# built with everything else, so that they cannot rot unnoticed
all: $(BENCH_BIN)
BENCH_RUN     = $(PYTHON) bench/run.py --bin $(BIN) --bench-bin $(BUILD)/bench
BENCH_APT     = DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox
BENCH_GNUPLOT = command -v gnuplot >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && { $(BENCH_APT) || { apt-get update -q && $(BENCH_APT); }; } \
		  >/dev/null 2>&1; } || \
		echo "bench: gnuplot is missing (apt-get install gnuplot-nox): plots will be skipped"

$(BUILD)/bench/workload: bench/workload.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -pthread $< -o $@

$(BUILD)/bench/raw_fault: bench/raw_fault.c lib/uapi.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $< -o $@

# links the project's own collection code: what it measures is dirty_collect()
$(BUILD)/bench/scanbench: bench/scanbench.c $(call obj,$(CORE_SRC)) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -pthread $(LDFLAGS) $^ $(LIBS) -o $@

.PHONY: bench bench-quick
bench: $(BIN) $(BENCH_BIN)
	@$(BENCH_GNUPLOT)
	$(BENCH_RUN)

bench-quick: $(BIN) $(BENCH_BIN)
	@$(BENCH_GNUPLOT)
	$(BENCH_RUN) --quick
