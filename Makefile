# dirtytrack - see README.md.  `make` builds, `make check` runs every test
# (once plainly, once under AddressSanitizer + UBSan), `make demo` shows it.

CC       ?= gcc
BUILD    ?= build
SANFLAGS ?=
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Wshadow -Wno-missing-field-initializers \
            -D_GNU_SOURCE -I. -I$(BUILD)/gen $(SANFLAGS) -MMD -MP
LDFLAGS  += $(SANFLAGS)
LIBS     := -lcap -lprotobuf-c
PYTHON   ?= python3

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

.PHONY: all check check-unit check-integration check-asan demo clean

all: $(BIN) $(TARGET_BIN) $(UNIT_BIN)

# C for the image schemas is generated here, never committed.
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto $(PROTOS)
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -Iproto $<

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

$(BUILD)/unit/test_%: tests/unit/test_%.c $(call obj,$(CORE_SRC)) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LIBS) -lcmocka -o $@

check: check-unit check-integration check-asan

check-unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do echo "== $$t"; $$t || exit 1; done

check-integration: $(BIN) $(TARGET_BIN)
	$(PYTHON) tests/integration/run.py --bin $(BIN) --target $(TARGET_BIN)

# The same suites again with the tool built under ASan + UBSan: any report fails.
check-asan:
	ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	$(MAKE) --no-print-directory BUILD=build-asan SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		check-unit check-integration

demo: $(BIN) $(TARGET_BIN)
	sh scripts/demo.sh $(BIN) $(TARGET_BIN)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
