#!/usr/bin/env bash
# scripts/soak.sh [SECONDS]: `pio serve` for SECONDS (default 1800) under mixed traffic, random
# worker kills, memory bombs, crashing plugins and a flooding tenant (tests/soak/soak_main.cc).
# Passes when no request was lost and the server's fds, threads, RSS and cgroups came back to
# where they were after warm-up. Not part of scripts/test.sh: it runs for half an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-1800}
bash scripts/install-deps.sh
build=${PIO_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${PIO_JOBS:-2}" --target pio_soak
"$build/bin/pio_soak" "$seconds"
