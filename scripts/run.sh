#!/usr/bin/env bash
# The run command: builds the host and runs it on a plugin.
# Today this is the embedding example (examples/embed): it discovers the built plugins, activates
# echo in a low-trust sandboxed worker, serves requests, kills the worker and keeps serving from
# the restarted one. Usage: scripts/run.sh [PLUGIN_NAME]   (default: echo)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${PIO_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${PIO_JOBS:-2}" --target pio_embed_example pio-worker pio_plugin_echo pio_plugin_minimal
exec "$build/bin/pio_embed_example" "$build/plugins" "${1:-echo}"
