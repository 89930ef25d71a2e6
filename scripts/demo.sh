#!/usr/bin/env bash
# Quick start 1: set up, build and run the main demo (examples/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
tulip_install_packages "${tulip_required_packages[@]}"
[ -d build/demo ] || meson setup build/demo -Dtests=false -Dbench=false --buildtype=release >/dev/null
ninja -C build/demo examples/demo >/dev/null
exec ./build/demo/examples/demo "$@"
