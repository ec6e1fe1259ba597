#!/usr/bin/env bash
# scripts/check-style.sh BUILD_DIR: the checks .clang-format and .clang-tidy configure, enforced.
#   1. clang-format --dry-run -Werror on every C and C++ file git tracks;
#   2. clang-tidy, with the checks .clang-tidy names, on every project source in BUILD_DIR's
#      compile_commands.json (generated flatbuffers headers and third-party code excluded), any
#      finding failing the run.
# Environment: PIO_JOBS (default 2); PIO_FORMAT=0 or PIO_TIDY=0 leaves that check out.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/check-style.sh BUILD_DIR (a configured build with compile_commands.json)}
jobs=${PIO_JOBS:-2}

if [ "${PIO_FORMAT:-1}" = 1 ]; then
  echo "-- clang-format"
  mapfile -t files < <(git ls-files '*.c' '*.cc' '*.h' '*.cpp' '*.hpp')
  # One version: another clang-format lays out some constructs differently.
  format=$(command -v clang-format-14 || command -v clang-format)
  if ! "$format" --dry-run -Werror "${files[@]}"; then
    echo "check-style: the files above are not formatted; run: $format -i \$(git ls-files '*.cc' '*.h' '*.c')" >&2
    exit 1
  fi
fi

[ "${PIO_TIDY:-1}" = 1 ] || exit 0
tidy=$(command -v clang-tidy-14 || command -v clang-tidy || true)
if [ -z "$tidy" ]; then
  echo "check-style: clang-tidy not found (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
db="$build/compile_commands.json"
[ -f "$db" ] || { echo "check-style: no $db (configure $build first)" >&2; exit 1; }
# Project sources that this build compiles (CUDA-only files are absent without CUDA).
mapfile -t sources < <(git ls-files 'ipc/*.cc' 'sandbox/*.cc' 'plugin_sdk/*.cc' 'host/*.cc' \
  'kernels/*.cc' 'plugins/*.cc' 'examples/*.cc' | while read -r f; do
    grep -q "\"file\": \"$(pwd)/$f\"" "$db" && echo "$f"; done)
echo "-- clang-tidy on ${#sources[@]} sources ($jobs jobs)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -n 4 "$tidy" -p "$build" --quiet >"$log" 2>&1 || true
if grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error): ' "$log" >/dev/null; then
  grep -E -A3 '^[^ ]+:[0-9]+:[0-9]+: (warning|error): ' "$log" | head -n 300
  echo "check-style: clang-tidy found the problems above" >&2
  exit 1
fi
echo "check-style: clean"
