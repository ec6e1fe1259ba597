#!/usr/bin/env bash
# scripts/bench.sh NAME [benchmark flags...]: builds bench_NAME (Release), runs it, prints the
# table and writes bench/results/NAME.json. Figures are ratios against a baseline measured in the
# same run; never compare them with a fixed time.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/bench.sh NAME (ipc, spawn, host, decode, server)}
shift
bash scripts/install-deps.sh
# The plugin runs of the decode and server benchmarks need the real tokenizer.
if [ "$name" = decode ] || [ "$name" = server ]; then bash scripts/fetch-test-data.sh; fi
build=${PIO_BENCH_BUILD_DIR:-build/release}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPIO_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"${PIO_JOBS:-2}" --target "bench_$name"
mkdir -p bench/results
"$build/bin/bench_$name" --benchmark_out="bench/results/$name.json" \
  --benchmark_out_format=json "$@"
echo "wrote bench/results/$name.json"
