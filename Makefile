# digits — one build entry point.
#   make            library + build/digits
#   make test       build and run every test (tests/run_tests.sh)
#   make bench      build the benchmark programs
#   make SANITIZE=1 address + undefined-behaviour sanitizers (into build-san/)
#   make DEBUG=1    -O0 -g
#   make OPENMP=0   single-threaded build
# The core is a static library (build/libdigits.a) linked by the CLI, the
# tests and the benchmarks.

CC      ?= gcc
OPENMP  ?= 1
DEBUG   ?= 0
SANITIZE ?= 0

BUILD   ?= build
ifeq ($(SANITIZE),1)
BUILD   := build-san
endif

CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -MMD -MP \
           -Iinclude -Isrc -DDG_HAVE_JPEG
ifeq ($(DEBUG),1)
CFLAGS  += -O0 -g
else
CFLAGS  += -O3 -march=native -g
endif
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(OPENMP),1)
CFLAGS  += -fopenmp
LDFLAGS += -fopenmp
endif

# OpenBLAS: the OpenMP build (libopenblas0-openmp) so that one runtime owns
# the threads; see docs/ARCHITECTURE.md "Threads".
LDLIBS  := -lcjson -lpng -ljpeg -lz -lm -ldl -lpthread -lmicrohttpd

LIB_SRC  := $(shell find src -name '*.c' | sort)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
APP_SRC  := $(wildcard apps/*.c)
APP_OBJ  := $(APP_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(BUILD)/tests/testutil.o
# the web page of `digits serve`, embedded in the library at build time
WEB_SRC  := web/index.html web/app.js web/style.css
WEB_OBJ  := $(BUILD)/gen/web_assets.o
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test bench clean
# keep intermediate objects (testutil.o): no "rm" after the test summary
.SECONDARY:
all: $(BUILD)/digits

$(BUILD)/libdigits.a: $(LIB_OBJ) $(WEB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/digits: $(APP_OBJ) $(BUILD)/libdigits.a
	$(CC) $(LDFLAGS) -o $@ $(APP_OBJ) $(BUILD)/libdigits.a $(LDLIBS)

# flags live here: a changed Makefile rebuilds everything
$(BUILD)/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# web/* -> const byte arrays web_index_html[], web_index_html_len, ... (xxd -i)
$(BUILD)/gen/web_assets.c: $(WEB_SRC) Makefile
	@mkdir -p $(dir $@)
	for f in $(WEB_SRC); do xxd -i -n web_$$(basename $$f | tr .- __) $$f | sed 's/^unsigned/const unsigned/'; \
	done > $@.tmp && mv $@.tmp $@

$(WEB_OBJ): $(BUILD)/gen/web_assets.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/test_serve: LDLIBS += -lcurl

$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) $(BUILD)/libdigits.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(TEST_HELPERS) $(BUILD)/libdigits.a $(LDLIBS) -lcmocka $(LDFLAGS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libdigits.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdigits.a $(LDLIBS) $(LDFLAGS)

test: $(BUILD)/digits $(TEST_BIN)
	BUILD=$(BUILD) bash tests/run_tests.sh

bench: $(BUILD)/digits $(BENCH_BIN)

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
