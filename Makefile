# digits — one build entry point.
#   make            libraries (build/libdigits.a, build/libdigits.so) + build/digits
#   make install    PREFIX=/usr/local DESTDIR=; make uninstall removes it again.
#                   Installs the portable build (PORTABLE=1, below) unless
#                   PORTABLE=0 is given: an installed binary or package may
#                   run on another CPU than the one it was built on
#   make test       build and run every test (tests/run_tests.sh)
#   make bench      build the benchmark programs
#   make SANITIZE=1 address + undefined-behaviour sanitizers (into build-san/);
#                   `make SANITIZE=1 test` runs the whole suite sanitized
#   make FUZZ=1 fuzz   libFuzzer targets with clang (into build-fuzz/); see bench/fuzz.sh
#   make COVERAGE=1    clang source-based coverage (into build-cov/); see bench/fuzz_cov.sh
#   make DEBUG=1    -O0 -g
#   make OPENMP=0   single-threaded build
#   make MPI=1      data-parallel training on Open MPI (libopenmpi-dev) into
#                   $(BUILD)-mpi/ (build-mpi/digits; build-san-mpi/ with
#                   SANITIZE=1): `mpirun -np N build-mpi/digits train ...`;
#                   see src/dist/dist.h. Without it src/dist/dist_single.c
#                   stands in (one process) and no MPI header is needed
#   make PORTABLE=1 runs on any x86-64-v2 CPU (SSE4.2), not just this one (into
#                   build-portable/; the Docker image): the program compiled
#                   for x86-64-v2, the kernels (src/ops/) three times, for
#                   AVX-512 + AVX512_BF16, AVX2 + FMA and x86-64-v2, the level
#                   picked at run time from cpuid (src/ops/isa.c); DIGITS_ISA=
#                   avx512|avx2|generic forces one. Plain make: -march=native,
#                   for this machine only
# The core is a static library (build/libdigits.a) linked by the CLI, the
# tests and the benchmarks; build/libdigits.so.0 is the same code built
# -fPIC (objects in build/pic/) for programs that link it shared.

CC      ?= gcc
OPENMP  ?= 1
DEBUG   ?= 0
SANITIZE ?= 0
FUZZ    ?= 0
COVERAGE ?= 0
# `make install` defaults to the portable build (see the top of this file)
ifneq ($(filter install,$(MAKECMDGOALS)),)
PORTABLE ?= 1
endif
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
MPI     ?= 0
ifeq ($(MPI),1)
BUILD   := $(BUILD)-mpi
endif
# PORTABLE=1: -march of each kernel level (see "kernel levels" below)
ISA_LEVELS := avx512 avx2 generic
ISA_FLAGS_avx512  := -march=x86-64-v4 -mavx512bf16 -mtune=generic
ISA_FLAGS_avx2    := -march=x86-64-v3 -mtune=generic
ISA_FLAGS_generic := -march=x86-64-v2 -mtune=generic

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
ifeq ($(PORTABLE),1)
CFLAGS  += -DDG_ISA_DISPATCH
endif
ifeq ($(MPI),1)
CFLAGS  += $(shell pkg-config --cflags ompi-c) -DDG_HAVE_MPI
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
LDLIBS  := -lcjson -lpng -ljpeg -lz -lm -ldl -lpthread -lmicrohttpd -lcairo -lsvm -lyaml -lprotobuf-c
ifeq ($(MPI),1)
LDLIBS  += $(shell pkg-config --libs ompi-c)
endif

# make install PREFIX=/usr/local DESTDIR= (and make uninstall): the CLI,
# libdigits.so.0 + libdigits.a, include/digits.h (the public API: one
# self-contained header; src/'s headers stay internal), digits.pc, the man
# page and share/digits/.
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
# The install prefix's data folder: the binary also looks for models/ (the
# zoo and models/pretrained) there, besides itself and $$DIGITS_MODELS.
DATADIR ?= $(PREFIX)/share/digits
# model.o has DATADIR compiled in: a stamp file that changes with it
# rebuilds model.o when `make install PREFIX=...` names another prefix.
DATADIR_STAMP := $(BUILD)/datadir.txt
ifeq ($(filter clean,$(MAKECMDGOALS)),)
$(shell mkdir -p $(BUILD) && (echo '$(DATADIR)' | cmp -s - $(DATADIR_STAMP) || echo '$(DATADIR)' > $(DATADIR_STAMP)))
endif
$(BUILD)/src/model/model.o $(BUILD)/pic/src/model/model.o: CFLAGS += -DDG_DATADIR='"$(DATADIR)"'
$(BUILD)/src/model/model.o $(BUILD)/pic/src/model/model.o: $(DATADIR_STAMP)
.DEFAULT_GOAL := all
# the shared library: soname libdigits.so.$(SOMAJOR), real name with the
# version of src/core/version.h
VERSION := $(shell sed -n 's/^\#define DG_VERSION "\(.*\)"/\1/p' src/core/version.h)
SOMAJOR := 0
SONAME  := libdigits.so.$(SOMAJOR)
SOLIB   := $(BUILD)/libdigits.so.$(VERSION)

LIB_SRC  := $(shell find src -name '*.c' | sort)
# src/dist: Open MPI (MPI=1) or the one-process stand-in
ifeq ($(MPI),1)
LIB_SRC  := $(filter-out src/dist/dist_single.c,$(LIB_SRC))
else
LIB_SRC  := $(filter-out src/dist/dist_mpi.c,$(LIB_SRC))
endif
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
# PORTABLE=1: the kernels as one object per level instead (kernel levels below)
ISA_SRC  := $(filter-out src/ops/isa.c,$(wildcard src/ops/*.c src/ops/conv2d/*.c))
ifeq ($(PORTABLE),1)
LIB_OBJ  := $(filter-out $(ISA_SRC:%.c=$(BUILD)/%.o),$(LIB_OBJ)) $(ISA_LEVELS:%=$(BUILD)/isa/ops-%.o)
endif
APP_SRC  := $(wildcard apps/*.c)
APP_OBJ  := $(APP_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(BUILD)/tests/testutil.o
# the web page of `digits serve`, embedded in the library at build time
WEB_SRC  := web/index.html web/app.js web/style.css
WEB_OBJ  := $(BUILD)/gen/web_assets.o
# helper programs the end-to-end tests call (not tests themselves)
TEST_TOOLS := $(BUILD)/tests/check_png $(BUILD)/tests/onnx_ref
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
# fuzz/fuzz_NAME.c: a libFuzzer target; built with gcc plus fuzz/replay.c
# (replay_NAME) it replays fuzz/corpus/NAME/ in `make test`.
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:fuzz/fuzz_%.c=$(BUILD)/fuzz/replay_%)
FUZZ_BIN := $(FUZZ_SRC:fuzz/fuzz_%.c=$(BUILD)/fuzz/fuzz_%)

# ONNX files (src/model/onnx_*.c): C code generated by protoc-c from the
# committed schema third_party/onnx/onnx.proto (ONNX 1.12, opsets <= 17)
ONNX_PROTO := third_party/onnx/onnx.proto
ONNX_OBJ := $(BUILD)/gen/onnx.pb-c.o

# -fPIC copies of the library objects for the shared library
PIC_OBJ  := $(LIB_OBJ:$(BUILD)/%=$(BUILD)/pic/%) $(BUILD)/pic/gen/web_assets.o $(BUILD)/pic/gen/onnx.pb-c.o

.PHONY: all test bench fuzz clean install uninstall
# keep intermediate objects (testutil.o): no "rm" after the test summary
.SECONDARY:
all: $(BUILD)/digits $(BUILD)/libdigits.so

$(BUILD)/libdigits.a: $(LIB_OBJ) $(WEB_OBJ) $(ONNX_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/digits: $(APP_OBJ) $(BUILD)/libdigits.a
	$(CC) $(LDFLAGS) -o $@ $(APP_OBJ) $(BUILD)/libdigits.a $(LDLIBS)

$(SOLIB): $(PIC_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libdigits.so: $(SOLIB)
	ln -sf $(notdir $(SOLIB)) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

# the shared library exports only the public API: the dg_* functions that
# include/digits.h marks DG_API (tests/e2e/install.sh checks it with nm -D)
$(BUILD)/pic/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(BUILD)/pic/gen/web_assets.o: $(BUILD)/gen/web_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

# flags live here: a changed Makefile rebuilds everything
$(BUILD)/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# kernel levels (PORTABLE=1): ISA_SRC compiled with each level's -march
# (into isa/LEVEL/, and pic/isa/LEVEL/ for the shared library), merged into
# one object per level (ld -r) whose global symbols then get the level's
# suffix (objcopy --redefine-syms: conv2d_forward -> conv2d_forward_avx2), so
# calls between kernels stay in their level; src/ops/isa.c defines the plain
# names as calls through the table of the level chosen at run time.
isa_link = $(LD) -r -o $@.all.o $^ && nm -g --defined-only -P $@.all.o | \
    awk '{ print $$1, $$1 "_$(1)" }' > $@.syms && objcopy --redefine-syms=$@.syms $@.all.o $@ && rm -f $@.all.o
define ISA_LEVEL_RULES
$(BUILD)/isa/$(1)/%.o: %.c Makefile
	@mkdir -p $$(dir $$@)
	$$(CC) $$(filter-out $$(ARCH),$$(CFLAGS)) $$(ISA_FLAGS_$(1)) -c -o $$@ $$<
$(BUILD)/pic/isa/$(1)/%.o: %.c Makefile
	@mkdir -p $$(dir $$@)
	$$(CC) $$(filter-out $$(ARCH),$$(CFLAGS)) $$(ISA_FLAGS_$(1)) -fPIC -fvisibility=hidden -c -o $$@ $$<
$(BUILD)/isa/ops-$(1).o: $(ISA_SRC:%.c=$(BUILD)/isa/$(1)/%.o)
	$$(call isa_link,$(1))
$(BUILD)/pic/isa/ops-$(1).o: $(ISA_SRC:%.c=$(BUILD)/pic/isa/$(1)/%.o)
	$$(call isa_link,$(1))
endef
$(foreach L,$(ISA_LEVELS),$(eval $(call ISA_LEVEL_RULES,$(L))))

# web/* -> const byte arrays web_index_html[], web_index_html_len, ... (xxd -i)
$(BUILD)/gen/web_assets.c: $(WEB_SRC) Makefile
	@mkdir -p $(dir $@)
	for f in $(WEB_SRC); do xxd -i -n web_$$(basename $$f | tr .- __) $$f | sed 's/^unsigned/const unsigned/'; \
	done > $@.tmp && mv $@.tmp $@

$(WEB_OBJ): $(BUILD)/gen/web_assets.c
	$(CC) $(CFLAGS) -c -o $@ $<

# onnx.proto -> onnx.pb-c.c/.h (protoc-c); the ONNX sources include the header
$(BUILD)/gen/onnx.pb-c.c: $(ONNX_PROTO)
	@mkdir -p $(dir $@)
	protoc-c --proto_path=$(dir $(ONNX_PROTO)) --c_out=$(BUILD)/gen $(notdir $(ONNX_PROTO))
$(BUILD)/gen/onnx.pb-c.h: $(BUILD)/gen/onnx.pb-c.c
$(ONNX_OBJ): $(BUILD)/gen/onnx.pb-c.c Makefile
	$(CC) $(CFLAGS) -I$(BUILD)/gen -c -o $@ $<
$(BUILD)/pic/gen/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(BUILD)/gen -fPIC -fvisibility=hidden -c -o $@ $<
ONNX_SRC_OBJ := $(filter $(BUILD)/src/model/onnx_%,$(LIB_OBJ))
$(ONNX_SRC_OBJ) $(ONNX_SRC_OBJ:$(BUILD)/%=$(BUILD)/pic/%): CFLAGS += -I$(BUILD)/gen
$(ONNX_SRC_OBJ) $(ONNX_SRC_OBJ:$(BUILD)/%=$(BUILD)/pic/%): $(BUILD)/gen/onnx.pb-c.h

# src/quant/qref.h as bytes (qref_h[], qref_h_len): `digits export --format c`
# (src/quant/export_c.c) copies it verbatim into the code it writes
EXPORT_C_OBJ := $(BUILD)/src/quant/export_c.o $(BUILD)/pic/src/quant/export_c.o
$(BUILD)/gen/qref_text.h: src/quant/qref.h
	@mkdir -p $(dir $@)
	xxd -i -n qref_h $< | sed 's/^unsigned/static const unsigned/' > $@.tmp && mv $@.tmp $@
$(EXPORT_C_OBJ): CFLAGS += -I$(BUILD)/gen
$(EXPORT_C_OBJ): $(BUILD)/gen/qref_text.h

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

test: $(BUILD)/digits $(BUILD)/libdigits.so $(TEST_BIN) $(TEST_TOOLS) $(FUZZ_REPLAY)
	BUILD=$(BUILD) bash tests/run_tests.sh

bench: $(BUILD)/digits $(BENCH_BIN)

MODEL_FILES := $(wildcard models/*.spec) $(wildcard models/pretrained/*.safetensors) \
               models/pretrained/manifest.tsv
D := $(DESTDIR)

install: $(BUILD)/digits $(BUILD)/libdigits.a $(BUILD)/libdigits.so
	install -d $(D)$(BINDIR) $(D)$(LIBDIR)/pkgconfig $(D)$(INCLUDEDIR) \
	    $(D)$(DATADIR)/models/pretrained $(D)$(MANDIR)/man1
	install -m 755 $(BUILD)/digits $(D)$(BINDIR)/digits
	install -m 755 $(SOLIB) $(D)$(LIBDIR)/$(notdir $(SOLIB))
	ln -sf $(notdir $(SOLIB)) $(D)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(D)$(LIBDIR)/libdigits.so
	install -m 644 $(BUILD)/libdigits.a $(D)$(LIBDIR)/libdigits.a
	install -m 644 include/digits.h $(D)$(INCLUDEDIR)/digits.h
	for f in $(MODEL_FILES); do install -m 644 $$f $(D)$(DATADIR)/$$f || exit 1; done
	install -m 644 docs/digits.1 $(D)$(MANDIR)/man1/digits.1
	install -D -m 644 tools/digits.bash-completion $(D)$(PREFIX)/share/bash-completion/completions/digits
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' tools/digits.pc.in > $(D)$(LIBDIR)/pkgconfig/digits.pc

uninstall:
	rm -f $(D)$(BINDIR)/digits $(D)$(LIBDIR)/$(notdir $(SOLIB)) $(D)$(LIBDIR)/$(SONAME) \
	    $(D)$(LIBDIR)/libdigits.so $(D)$(LIBDIR)/libdigits.a $(D)$(LIBDIR)/pkgconfig/digits.pc \
	    $(D)$(INCLUDEDIR)/digits.h $(D)$(MANDIR)/man1/digits.1 \
	    $(D)$(PREFIX)/share/bash-completion/completions/digits
	for f in $(MODEL_FILES); do rm -f $(D)$(DATADIR)/$$f; done
	-rmdir $(D)$(DATADIR)/models/pretrained $(D)$(DATADIR)/models $(D)$(DATADIR) 2>/dev/null

clean:
	rm -rf build build-san build-fuzz build-cov build-portable build-mpi build-san-mpi

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
