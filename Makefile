# softmm: the developer's entry points; CMake does the building. See README.md.
#
#   make run       build, then run `softmm bench` with its defaults
#   make check     every test: optimized, ASan+UBSan, TSan, a short libFuzzer run
#   make soak      the long runs: diff_test --sequences 20000, 100,000 fork+exit
#                  cycles (test_fork), stress tests with
#                  SOFTMM_SOAK=1 (optimized and TSan), libFuzzer for SOAK_FUZZ_SECONDS
#   make install   PREFIX=/usr/local, DESTDIR honoured
#
# Build directories, one configuration each:
#   build/       optimized (-O2 -g), $(CC)
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer, $(CC)
#   build-tsan/  ThreadSanitizer, $(CC); only the tests labelled tsan
#   build-fuzz/  libFuzzer + ASan + UBSan, clang; runs only the fuzzer
# CC=clang make check builds the first three with clang.

PREFIX            ?= /usr/local
DESTDIR           ?=
JOBS              ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_CC           ?= clang
FUZZ_SECONDS      ?= 45
SOAK_FUZZ_SECONDS ?= 1800
SOAK_SEQUENCES    ?= 20000
ASAN_DIFF_ARGS    ?= --sequences 200

# Sanitizer reports stop the test and abort, so that replay and libFuzzer name the input.
export ASAN_OPTIONS  ?= abort_on_error=1:halt_on_error=1:detect_leaks=1:strict_string_checks=1
export UBSAN_OPTIONS ?= abort_on_error=1:halt_on_error=1:print_stacktrace=1
# A suppressions file for the stress tests is used when there is one.
TSAN_SUPP := $(wildcard $(CURDIR)/tests/stress/tsan.supp)
export TSAN_OPTIONS  ?= abort_on_error=1:halt_on_error=1:second_deadlock_stack=1$(if $(TSAN_SUPP),:suppressions=$(TSAN_SUPP))

CTEST      = ctest --output-on-failure -j2 --timeout 600 --test-dir
SOAK_CTEST = ctest --output-on-failure -j2 --timeout 10800 --test-dir

# Older ThreadSanitizer runtimes cannot map their shadow under the larger mmap
# randomization of newer kernels; without ASLR they always can.
NO_ASLR := $(shell setarch -R true >/dev/null 2>&1 && echo setarch -R)

# Debian packages the build and the tests need; clang's runtimes are added below.
DEBIAN_PACKAGES = cmake make gcc clang pkg-config binutils liburcu-dev libcmocka-dev libxxhash-dev

MAKEFLAGS += --no-print-directory
.NOTPARALLEL:
.PHONY: all deps build run check check-build check-install check-asan check-tsan \
	check-fuzz soak install uninstall clean

all: build

# Installs what is missing (apt-get update at most once); nothing when all is there.
deps:
	@command -v dpkg >/dev/null || { echo "make deps: not Debian; install by hand: $(DEBIAN_PACKAGES)"; exit 0; }; \
	installed() { dpkg -s "$$1" 2>/dev/null | grep -q '^Status: install ok installed'; }; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	updated=; \
	apt_install() { \
		[ -n "$$updated" ] || $$sudo apt-get update -q || return 1; updated=1; \
		echo "make deps: installing $$*"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$$@"; \
	}; \
	missing=; for p in $(DEBIAN_PACKAGES); do installed $$p || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] || apt_install $$missing || exit 1; \
	rt=libclang-rt-$$(clang -dumpversion | cut -d. -f1)-dev; \
	installed $$rt || apt_install $$rt

# $(call configure,DIR,COMPILER,CMAKE-ARGS): (re)configure DIR; start it afresh
# if it was configured with another compiler, which CMake cannot change in place.
define configure
	@cc=$$(command -v $(2)) || { echo "make: no compiler $(2)" >&2; exit 1; }; \
	old=$$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' $(1)/CMakeCache.txt 2>/dev/null); \
	if [ -n "$$old" ] && [ "$$(realpath "$$old")" != "$$(realpath "$$cc")" ]; then \
		echo "make: $(1) was configured with $$old; starting it afresh with $$cc"; \
		rm -rf $(1); \
	fi; \
	cmake -S . -B $(1) -Wno-dev -DCMAKE_C_COMPILER="$$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo $(3)
endef

build: deps
	$(call configure,build,$(CC),-DCMAKE_INSTALL_PREFIX=$(PREFIX) -DSOFTMM_SANITIZE= -DSOFTMM_DIFF_ARGS=)
	cmake --build build -j$(JOBS)

run: build
	build/bin/softmm bench

check: check-build check-install check-asan check-tsan check-fuzz

# Stage 1: every test of the optimized build; bench --quick is one of them.
check-build: build
	$(CTEST) build

# The installed tree works from outside: pkg-config, the shared and the static
# library, only the API exported, the command.
check-install: build
	rm -rf build/destdir build/installed
	DESTDIR=$(CURDIR)/build/destdir cmake --install build >/dev/null
	@set -e; mkdir -p build/installed; \
	pc=$$(find build/destdir -name softmm.pc); \
	export PKG_CONFIG_PATH=$$(dirname $$pc) PKG_CONFIG_SYSROOT_DIR=$(CURDIR)/build/destdir; \
	lib=$$(dirname $$(find build/destdir -name libsoftmm.a)); \
	echo "pkg-config --cflags --libs softmm: $$(pkg-config --cflags --libs softmm)"; \
	$(CC) -Wall -Werror examples/embed.c $$(pkg-config --cflags --libs softmm) \
		-Wl,-rpath,$$lib -o build/installed/embed-shared; \
	$(CC) -Wall -Werror examples/embed.c $$(pkg-config --cflags softmm) \
		$$(pkg-config --static --libs softmm | sed 's/-lsoftmm/-l:libsoftmm.a/') \
		-o build/installed/embed-static; \
	build/installed/embed-shared >/dev/null; \
	build/installed/embed-static >/dev/null; \
	extra=$$(nm -D --defined-only $$lib/libsoftmm.so | awk '$$2 ~ /^[TDBRVWi]$$/ && $$3 !~ /^sm_/'); \
	[ -z "$$extra" ] || { echo "libsoftmm.so exports more than the API: $$extra"; exit 1; }; \
	build/destdir$(PREFIX)/bin/softmm help >/dev/null; \
	echo "check-install: OK"

# Stage 2: everything again under AddressSanitizer and UBSan.
check-asan: deps
	$(call configure,build-asan,$(CC),-DSOFTMM_SANITIZE=address$(,)undefined -DSOFTMM_DIFF_ARGS="$(ASAN_DIFF_ARGS)")
	cmake --build build-asan -j$(JOBS)
	$(CTEST) build-asan

# Stage 3: the stress tests and test_rwsem under ThreadSanitizer.
check-tsan: deps
	$(call configure,build-tsan,$(CC),-DSOFTMM_SANITIZE=thread)
	cmake --build build-tsan -j$(JOBS) --target tsan_tests
	$(NO_ASLR) $(CTEST) build-tsan -L tsan

# Stage 4: libFuzzer on fuzz_syscalls for FUZZ_SECONDS. Building everything here
# also proves that it all compiles with clang.
check-fuzz: deps
	$(call configure,build-fuzz,$(FUZZ_CC),-DSOFTMM_SANITIZE=address$(,)undefined -DSOFTMM_FUZZ=ON -DSOFTMM_FUZZ_SECONDS=$(FUZZ_SECONDS))
	cmake --build build-fuzz -j$(JOBS)
	$(CTEST) build-fuzz -R '^fuzz_syscalls$$'

soak: build
	build/bin/diff_test --sequences $(SOAK_SEQUENCES)
	SOFTMM_SOAK=1 build/bin/test_fork
	SOFTMM_SOAK=1 $(SOAK_CTEST) build -L stress
	$(call configure,build-tsan,$(CC),-DSOFTMM_SANITIZE=thread)
	cmake --build build-tsan -j$(JOBS) --target tsan_tests
	SOFTMM_SOAK=1 $(NO_ASLR) $(SOAK_CTEST) build-tsan -L stress
	$(MAKE) check-fuzz FUZZ_SECONDS=$(SOAK_FUZZ_SECONDS)

install: build
	DESTDIR="$(DESTDIR)" cmake --install build

uninstall:
	@[ -f build/install_manifest.txt ] || { echo "make uninstall: nothing installed from build/"; exit 1; }
	xargs -r rm -f < build/install_manifest.txt

clean:
	rm -rf build build-asan build-tsan build-fuzz

, := ,
