#!/usr/bin/env bash
# Installs the project's build into a temporary prefix, builds examples/embed on its own against
# it (find_package(pio)), and runs it: it must serve echo, survive the worker it kills, and serve
# again, with the worker and policies the installed package gives (not the build tree's).
#   embed_against_install.sh BUILD_DIR SOURCE_DIR ECHO_PLUGIN_DIR
set -euo pipefail
build=$1 source=$2 echo_dir=$3
work=$(mktemp -d /tmp/pio-embed-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$source/examples/embed" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
# The worker's unprivileged identity must be able to read the plugin.
mkdir -p "$work/plugins/echo"
cp "$echo_dir/libecho.so" "$echo_dir/plugin_manifest.json" "$work/plugins/echo/"
chmod -R a+rX "$work"
# The installed worker and policies, never the build tree's.
PIO_WORKER="$work/prefix/libexec/pio/pio-worker" PIO_POLICY_DIR="$work/prefix/share/pio/policies" \
  "$work/build/pio_embed_example" "$work/plugins" echo
