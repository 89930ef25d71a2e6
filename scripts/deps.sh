#!/usr/bin/env bash
# Installs the Debian packages tulip builds with, if any are missing. Sourced by demo.sh and
# test.sh. Needs root (or sudo) only when something is missing, and says what it installs.
set -euo pipefail

tulip_required_packages=(meson ninja-build pkg-config g++ liburing-dev libssl-dev libspdlog-dev catch2)

tulip_install_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "tulip: installing missing Debian packages: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "tulip: run as root or install: ${missing[*]}" >&2; return 1; }
        sudo="sudo"
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
