#!/usr/bin/env bash
# The run command: the OpenAI-compatible server with a real Qwen3 model in a low-trust sandboxed
# worker. Installs what it needs, builds pio, pio-worker, pio-mkmodel and the Qwen3 plugins,
# fetches the real Qwen3 tokenizer, writes a small checkpoint with the real Qwen3 architecture,
# tensor names and tokenizer but random weights (so its text is gibberish) into
# build/models/qwen3-small-random, the checkpoint `pio serve`'s embedded default config serves on
# 127.0.0.1:8000. Then it starts the server, asks it one chat question through the sandboxed
# worker, prints the answer and a curl line that works, and keeps serving until Ctrl-C.
#
#   scripts/run.sh
#   PIO_MODEL_DIR=/path/to/Qwen3-0.6B scripts/run.sh             downloaded weights
#   PIO_PLUGIN=qwen3_4b_instruct_2507 PIO_MODEL_DIR=/path/to/Qwen3-4B-Instruct-2507 \
#     PIO_TRUST=high scripts/run.sh                    (8 GB of weights: over low trust's 2 GiB)
#   PIO_PORT=8001 scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/fetch-test-data.sh
build=${PIO_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${PIO_JOBS:-2}" --target pio pio-worker pio-mkmodel \
  pio_plugin_qwen3_0_6b pio_plugin_qwen3_4b_instruct_2507

default_model="$build/models/qwen3-small-random"
if [ ! -f "$default_model/config.json" ]; then
  echo "run: writing a random Qwen3 checkpoint (4 layers, hidden 256, the real vocabulary) to $default_model"
  "$build/bin/pio-mkmodel" --out "$default_model" --preset tiny --layers 4 --hidden-size 256 \
    --intermediate-size 768 --heads 8 --kv-heads 4 --head-dim 32 --seed 1 \
    --tokenizer-dir "$build/test-data/qwen3-tokenizer"
fi
model=${PIO_MODEL_DIR:-$default_model}
plugin=${PIO_PLUGIN:-qwen3_0_6b}
port=${PIO_PORT:-8000}
# The worker runs as an unprivileged identity: the model must be readable by others.
chmod -R o+rX "$model" 2>/dev/null || true

"$build/bin/pio" serve --plugin "$plugin" --model "$model" --trust "${PIO_TRUST:-low}" \
  --port "$port" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true' INT TERM
for _ in $(seq 1 600); do
  if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 $server 2>/dev/null; then echo "run: pio serve exited" >&2; exit 1; fi
  sleep 0.2
done
echo "run: one chat request through the sandboxed worker:"
curl -s "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "{\"model\": \"$plugin\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"max_tokens\": 24, \"seed\": 1}"
echo
echo "run: serving on http://127.0.0.1:$port/v1 until Ctrl-C; try:"
echo "  curl -s http://127.0.0.1:$port/v1/chat/completions -H 'Content-Type: application/json' -d '{\"model\": \"$plugin\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"max_tokens\": 32}'"
wait $server
