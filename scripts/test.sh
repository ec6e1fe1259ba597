#!/usr/bin/env bash
# The test command: installs what is missing, checks formatting, builds (2 cores), runs clang-tidy,
# runs every test.
#   1. the main build (g++, warnings as errors), clang-tidy on its sources, all its ctest suites;
#   2. a clang build with AddressSanitizer + UndefinedBehaviorSanitizer of the suites that parse
#      untrusted bytes (listed in PIO_ASAN_SUITES), and a short smoke run of every fuzz target.
# Environment: PIO_BUILD_DIR (default build), PIO_FUZZ_SECONDS (default 20 per target).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/install-deps.sh
if [ -f scripts/fetch-test-data.sh ]; then bash scripts/fetch-test-data.sh; fi

echo "== formatting (scripts/check-style.sh: clang-format as .clang-format configures it)"
PIO_TIDY=0 bash scripts/check-style.sh "${PIO_BUILD_DIR:-build}"

build=${PIO_BUILD_DIR:-build}
jobs=${PIO_JOBS:-2}

echo "== configure + build ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIO_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs"

echo "== static analysis (scripts/check-style.sh: clang-tidy as .clang-tidy configures it)"
PIO_FORMAT=0 PIO_JOBS="$jobs" bash scripts/check-style.sh "$build"

echo "== tests"
(cd "$build" && ctest --output-on-failure -j"$jobs" --timeout 600)

if command -v clang++ >/dev/null 2>&1; then
  asan="$build/asan"
  # Suites that read bytes a worker controls run again under the sanitizers.
  suites=(${PIO_ASAN_SUITES:-ipc_tests runtime_tests})
  echo "== sanitizer build ($asan): ${suites[*]} and the fuzz targets"
  cmake -S . -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DPIO_SANITIZE=ON -DPIO_FUZZ=ON -DPIO_BUILD_BENCH=OFF >/dev/null
  fuzzers=$(cmake --build "$asan" --target help | sed -n 's/^\([a-z_]*_fuzzer\):.*/\1/p')
  cmake --build "$asan" -j"$jobs" --target "${suites[@]}" $fuzzers
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  for s in "${suites[@]}"; do
    echo "-- $s under ASan/UBSan"
    "$asan/bin/$s" --gtest_brief=1
  done
  seconds=${PIO_FUZZ_SECONDS:-20}
  for f in $fuzzers; do
    corpus="$root/fuzz/corpus/${f%_fuzzer}"
    work=$(mktemp -d)
    cp -r "$corpus"/. "$work"/ 2>/dev/null || true
    echo "-- fuzz smoke: $f for ${seconds}s"
    "$asan/bin/$f" -max_total_time="$seconds" -print_final_stats=0 "$work" 2>&1 | tail -n 3
    rm -rf "$work"
  done
else
  echo "== clang not found: sanitizer and fuzz passes skipped"
fi
echo "== all tests passed"
