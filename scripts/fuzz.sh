#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [NAME...]: a fuzzing campaign. Builds the libFuzzer targets (clang,
# AddressSanitizer + UndefinedBehaviorSanitizer), runs each for SECONDS (default 600) starting from
# fuzz/corpus/NAME, then replaces fuzz/corpus/NAME with the minimised union of the old corpus and
# what the run found (libFuzzer -merge=1). Crashing, leaking or hanging inputs land in
# fuzz/findings/NAME/ and fail the script; fix the parser, then add the input to the corpus.
# Environment: PIO_BUILD_DIR (default build; the fuzz build goes to BUILD_DIR/asan),
# PIO_FUZZ_JOBS (targets run at once, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-600}
shift || true
asan=${PIO_BUILD_DIR:-build}/asan
jobs=${PIO_FUZZ_JOBS:-1}

cmake -S . -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DPIO_SANITIZE=ON -DPIO_FUZZ=ON -DPIO_BUILD_BENCH=OFF >/dev/null
if [ $# -gt 0 ]; then
  fuzzers=$(printf '%s_fuzzer ' "$@")
else
  fuzzers=$(cmake --build "$asan" --target help | sed -n 's/^\([a-z_]*_fuzzer\):.*/\1/p')
fi
# shellcheck disable=SC2086
cmake --build "$asan" -j2 --target $fuzzers

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# campaign NAME_fuzzer: one target's run and merge; prints one summary line.
campaign() {
  local f=$1 name=${1%_fuzzer}
  local corpus="$root/fuzz/corpus/$name" findings="$root/fuzz/findings/$name"
  local work merged log
  work=$(mktemp -d) merged=$(mktemp -d) log="$root/fuzz/findings/$name.log"
  mkdir -p "$corpus" "$findings"
  local before
  before=$(find "$corpus" -type f | wc -l)
  # -fork keeps going past a finding so one bug does not end the campaign early.
  "$asan/bin/$f" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -fork=1 \
    -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$work" "$corpus" >"$log" 2>&1 || true
  "$asan/bin/$f" -merge=1 "$merged" "$corpus" "$work" >>"$log" 2>&1
  rm -rf "$corpus" && mv "$merged" "$corpus" && chmod 755 "$corpus"
  rm -rf "$work"
  local runs found
  runs=$(sed -n 's/^#\([0-9]*\): cov: \([0-9]*\).*/\1 runs, coverage \2 edges/p' "$log" | tail -n 1)
  found=$(find "$findings" -type f | wc -l)
  echo "$name: ${seconds}s, ${runs:-? runs}, corpus $before -> $(find "$corpus" -type f | wc -l), findings $found"
  [ "$found" = 0 ] && rmdir "$findings"
  return 0
}
export -f campaign
export asan root seconds

# shellcheck disable=SC2086
printf '%s\n' $fuzzers | xargs -P "$jobs" -I{} bash -c 'campaign {}'
if [ -n "$(find "$root/fuzz/findings" -mindepth 2 -type f 2>/dev/null)" ]; then
  echo "fuzz: findings under fuzz/findings/ (logs next to them)" >&2
  exit 1
fi
echo "fuzz: no findings"
