# Thin wrapper over Meson/Ninja. The two commands a newcomer needs are
# `make run` (demo node) and `make test` (everything CI runs).
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PY         ?= /usr/bin/python3
FUZZ_SECONDS ?= 60

.PHONY: all deps build asan fuzz-build run test unit integration fuzz bench stress valgrind clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) --buildtype=debugoptimized -Dfuzz=true -Db_lundef=false

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

fuzz-build: $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)

run: deps build
	@scripts/run-demo $(BUILD)

# make test: -Werror release-ish build, ASan+UBSan build, unit tests (cmocka),
# integration tests (pytest, real processes, ASan binaries), short fuzz runs.
# Ends with one line "N passed, N failed".
test: deps build asan fuzz-build
	@$(PY) scripts/run-tests --build $(ASAN_BUILD) --release-build $(BUILD) --fuzz-build $(FUZZ_BUILD) --fuzz-seconds 30

unit: asan
	@$(PY) scripts/run-tests --build $(ASAN_BUILD) --only unit

integration: asan
	@$(PY) scripts/run-tests --build $(ASAN_BUILD) --only integration

fuzz: deps fuzz-build
	@$(PY) scripts/run-tests --fuzz-build $(FUZZ_BUILD) --only fuzz --fuzz-seconds $(FUZZ_SECONDS)

bench: deps build
	@$(PY) bench/run-all --build $(BUILD) $(if $(QUICK),--quick,)

# make stress: the long runs (issue 9): reliability suite at full size, every
# integration area with DISKENGINE_STRESS=1, fuzzers, valgrind smoke; summary table.
stress: deps build asan fuzz-build
	@$(PY) scripts/stress --build $(ASAN_BUILD) --release-build $(BUILD) --fuzz-build $(FUZZ_BUILD) --fuzz-seconds $(FUZZ_SECONDS)

# valgrind memcheck over an end-to-end smoke run (release build; ~2 min).
valgrind: deps build
	@scripts/valgrind-smoke --build $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
