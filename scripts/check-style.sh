#!/usr/bin/env bash
# scripts/check-style.sh BUILD_DIR: the checks .clang-format and .clang-tidy configure, enforced.
#   1. clang-format --dry-run -Werror on every C and C++ file git tracks;
#   2. clang-tidy, with the checks .clang-tidy names, on every project source in BUILD_DIR's
#      compile_commands.json (generated flatbuffers headers and third-party code excluded), any
#      finding failing the run. A source whose inputs are byte for byte those of an earlier clean
#      run is skipped (keys by scripts/tidy_cache_keys.py, kept in PIO_TIDY_CACHE, default
#      ~/.cache/pio-tidy).
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
# Project sources that this build compiles (CUDA-only files are absent without CUDA), less those
# built on libtorch's precompiled header: clang 14, the newest clang-tidy Debian 12 has, cannot
# compile libtorch's headers as C++20 (ATen's List.h destroys a std::vector of the then
# incomplete c10::IValue), so those few are checked by g++ -Wall -Wextra -Werror alone.
mapfile -t compiled < <(python3 -c '
import json, os, sys
for e in json.load(open(sys.argv[1])):
    if "cmake_pch.hxx" not in e["command"]:
        print(os.path.relpath(e["file"]))' "$db")
mapfile -t sources < <(git ls-files 'ipc/*.cc' 'sandbox/*.cc' 'plugin_sdk/*.cc' 'host/*.cc' \
  'kernels/*.cc' 'plugins/*.cc' 'examples/*.cc' | grep -x -F -f <(printf '%s\n' "${compiled[@]}"))
# A source whose exact inputs already passed (scripts/tidy_cache_keys.py) is not checked again.
cache=${PIO_TIDY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pio-tidy}
mkdir -p "$cache"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
declare -A key_of=()
while read -r key file; do key_of[$file]=$key; done \
  < <(python3 scripts/tidy_cache_keys.py "$build" "$tidy" "${sources[@]}")
todo=()
for f in "${sources[@]}"; do
  k=${key_of[$f]:-}
  if [ -z "$k" ] || [ ! -e "$cache/$k" ]; then todo+=("$f"); fi
done
echo "-- clang-tidy on ${#todo[@]} of ${#sources[@]} sources ($jobs jobs; the rest passed before as they are)"
export tidy build logs
printf '%s\n' "${todo[@]}" | xargs -r -P "$jobs" -I{} \
  sh -c 'l="$logs/$(echo "$1" | tr / _)"; "$tidy" -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option "$1" >"$l.log" 2>&1; echo $? >"$l.rc"' _ {}
failed=0
finding='^[^ ]+:[0-9]+:[0-9]+: (warning|error): '
for f in "${todo[@]}"; do
  log="$logs/$(echo "$f" | tr / _).log"
  if grep -E "$finding" "$log" >/dev/null; then
    grep -E -A3 "$finding" "$log" | head -n 60
    failed=1
  elif [ "$(cat "${log%.log}.rc")" != 0 ]; then
    tail -n 20 "$log"
    echo "check-style: clang-tidy failed on $f (above)" >&2
    failed=1
  elif [ -n "${key_of[$f]:-}" ]; then
    touch "$cache/${key_of[$f]}"
  fi
done
if [ "$failed" = 1 ]; then
  echo "check-style: clang-tidy found the problems above" >&2
  exit 1
fi
echo "check-style: clean"
