#!/usr/bin/env bash
# The run command: a real generation by the Qwen3 plugin in a low-trust sandboxed worker.
# Installs what it needs, builds pio, pio-worker, pio-mkmodel and the Qwen3 plugins, fetches the
# real Qwen3 tokenizer, writes a small checkpoint with the real Qwen3 architecture, tensor names
# and tokenizer but random weights (so the text it streams is gibberish), and streams a
# generation from it with `pio generate`.
#
#   scripts/run.sh [PROMPT]
#   PIO_MODEL_DIR=/path/to/Qwen3-0.6B scripts/run.sh "Explain sandboxes"   downloaded weights
#   PIO_PLUGIN=qwen3_4b_instruct_2507 PIO_MODEL_DIR=/path/to/Qwen3-4B-Instruct-2507 \
#     PIO_TRUST=high scripts/run.sh                    (8 GB of weights: over low trust's 2 GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/fetch-test-data.sh
build=${PIO_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${PIO_JOBS:-2}" --target pio pio-worker pio-mkmodel \
  pio_plugin_qwen3_0_6b pio_plugin_qwen3_4b_instruct_2507

model=${PIO_MODEL_DIR:-}
if [ -z "$model" ]; then
  model="$build/models/qwen3-small-random"
  if [ ! -f "$model/config.json" ]; then
    echo "run: writing a random Qwen3 checkpoint (4 layers, hidden 256, the real vocabulary) to $model"
    "$build/bin/pio-mkmodel" --out "$model" --preset tiny --layers 4 --hidden-size 256 \
      --intermediate-size 768 --heads 8 --kv-heads 4 --head-dim 32 --seed 1 \
      --tokenizer-dir "$build/test-data/qwen3-tokenizer"
  fi
fi
# The worker runs as an unprivileged identity: the model must be readable by others.
chmod -R o+rX "$model" 2>/dev/null || true

exec "$build/bin/pio" generate --plugin "${PIO_PLUGIN:-qwen3_0_6b}" --model "$model" \
  --trust "${PIO_TRUST:-low}" --max-tokens "${PIO_MAX_TOKENS:-48}" --temperature 0.7 --seed 1 \
  "${1:-The sandboxed worker says:}"
