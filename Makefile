# digits — one build entry point.
#   make            library + build/digits
#   make test       build and run every test (tests/run_tests.sh)
#   make bench      build the benchmark programs
#   make SANITIZE=1 address + undefined-behaviour sanitizers (into build-san/);
#                   `make SANITIZE=1 test` runs the whole suite sanitized
#   make FUZZ=1 fuzz   libFuzzer targets with clang (into build-fuzz/); see bench/fuzz.sh
#   make COVERAGE=1    clang source-based coverage (into build-cov/); see bench/fuzz_cov.sh
#   make DEBUG=1    -O0 -g
#   make OPENMP=0   single-threaded build
#   make PORTABLE=1 any x86-64-v2 CPU (SSE4.2, no AVX), not just this one (into
#                   build-portable/; the Docker image): the generic C kernels
#                   instead of the AVX-512 ones, which are chosen at compile time
# The core is a static library (build/libdigits.a) linked by the CLI, the
# tests and the benchmarks.

CC      ?= gcc
OPENMP  ?= 1
DEBUG   ?= 0
SANITIZE ?= 0
FUZZ    ?= 0
COVERAGE ?= 0
PORTABLE ?= 0

BUILD   ?= build
ifeq ($(SANITIZE),1)
BUILD   := build-san
endif
ifeq ($(FUZZ),1)
# libFuzzer needs clang; coverage-instrument the library, single-threaded
BUILD   := build-fuzz
CC      := clang
OPENMP  := 0
endif
ifeq ($(COVERAGE),1)
BUILD   := build-cov
CC      := clang
OPENMP  := 0
endif
ARCH    := -march=native
ifeq ($(PORTABLE),1)
BUILD   := build-portable
ARCH    := -march=x86-64-v2 -mtune=generic
endif

# -fno-math-errno: nothing reads errno after libm calls, and with it GCC may
# inline sqrtf and vectorise loops that take square roots (Adam's step was
# a scalar loop with a library call per parameter). Results are unchanged:
# the instructions are the correctly rounded IEEE operations.
CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -MMD -MP \
           -Iinclude -Isrc -DDG_HAVE_JPEG -fno-math-errno
ifeq ($(DEBUG),1)
CFLAGS  += -O0 -g
else ifeq ($(FUZZ),1)
CFLAGS  += -O2 $(ARCH) -g
else
CFLAGS  += -O3 $(ARCH) -g
endif
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer \
           -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined,float-cast-overflow
endif
ifeq ($(FUZZ),1)
CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=all
endif
ifeq ($(COVERAGE),1)
CFLAGS  += -fprofile-instr-generate -fcoverage-mapping
LDFLAGS += -fprofile-instr-generate
endif
ifeq ($(OPENMP),1)
CFLAGS  += -fopenmp
LDFLAGS += -fopenmp
endif

# OpenBLAS: the OpenMP build (libopenblas0-openmp) so that one runtime owns
# the threads; see docs/ARCHITECTURE.md "Threads".
# libmicrohttpd serves the web app; cairo draws the report's pictures, libsvm
# trains the classical baseline; LAPACK comes from the same run-time OpenBLAS
# (src/core/blas.h).
LDLIBS  := -lcjson -lpng -ljpeg -lz -lm -ldl -lpthread -lmicrohttpd -lcairo -lsvm -lyaml

# The install prefix's data folder: the binary also looks for models/ (the
# zoo and models/pretrained) there, besides itself and $$DIGITS_MODELS.
DATADIR ?= /usr/local/share/digits
$(BUILD)/src/model/model.o: CFLAGS += -DDG_DATADIR='"$(DATADIR)"'

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
# helper programs the end-to-end tests call (not tests themselves)
TEST_TOOLS := $(BUILD)/tests/check_png
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
# fuzz/fuzz_NAME.c: a libFuzzer target; built with gcc plus fuzz/replay.c
# (replay_NAME) it replays fuzz/corpus/NAME/ in `make test`.
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:fuzz/fuzz_%.c=$(BUILD)/fuzz/replay_%)
FUZZ_BIN := $(FUZZ_SRC:fuzz/fuzz_%.c=$(BUILD)/fuzz/fuzz_%)

.PHONY: all test bench fuzz clean
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

$(BUILD)/tests/check_png: tests/check_png.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< -lpng -lm $(LDFLAGS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libdigits.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdigits.a $(LDLIBS) $(LDFLAGS)

$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c $(BUILD)/fuzz/replay.o $(BUILD)/libdigits.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/fuzz/replay.o $(BUILD)/libdigits.a $(LDLIBS) $(LDFLAGS)

# libFuzzer binaries (make FUZZ=1 fuzz): the library is instrumented for
# coverage (fuzzer-no-link above); the target links libFuzzer's main.
$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c $(BUILD)/libdigits.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libdigits.a $(LDLIBS) $(LDFLAGS) \
	    -fsanitize=fuzzer,address,undefined

fuzz: $(FUZZ_BIN)

test: $(BUILD)/digits $(TEST_BIN) $(TEST_TOOLS) $(FUZZ_REPLAY)
	BUILD=$(BUILD) bash tests/run_tests.sh

bench: $(BUILD)/digits $(BENCH_BIN)

clean:
	rm -rf build build-san build-fuzz build-cov build-portable

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
