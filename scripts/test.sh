#!/usr/bin/env bash
# Quick start 2: set up, build and run the whole test suite.
#
#   g++    (debugoptimized, -Werror): the suite on every backend, plus the examples
#   clang  (clang++-16, -Werror):     the suite on every backend
#   asan   (g++, ASan+UBSan, -O0):    the suite on every backend
#   tsan   (clang++-16, TSan):        the cross-thread tests
#
# TULIP_TEST_BUILDS="gcc clang" limits the builds. Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
# clang-16 alone (without recommends) lacks the sanitizer runtimes that the tsan build links.
tulip_install_packages "${tulip_required_packages[@]}" clang-16 libclang-rt-16-dev
jobs=2
builds=${TULIP_TEST_BUILDS:-gcc clang asan tsan}
summary=()
start_all=$(date +%s)

setup() {  # name, meson options...
    local dir=build/$1; shift
    [ -d "$dir" ] || meson setup "$dir" "$@" >/dev/null
}

run_build() {  # name
    local name=$1 dir=build/$1 start=$(date +%s)
    echo "=== $name: building"
    if ! ninja -C "$dir" -j $jobs > "$dir/build-output.txt" 2>&1; then
        tail -n 60 "$dir/build-output.txt"
        summary+=("$name: BUILD FAILED")
        return 1
    fi
    echo "=== $name: testing"
    local suites=()
    [ "$name" = tsan ] && suites=(--suite threads)
    if ! meson test -C "$dir" --num-processes $jobs --print-errorlogs "${suites[@]}"; then
        summary+=("$name: FAILED")
        return 1
    fi
    summary+=("$name: ok in $(( $(date +%s) - start ))s
$(python3 scripts/summarize_tests.py "$dir/meson-logs/testlog.json")")
}

status=0
for b in $builds; do
    case $b in
        gcc)   setup gcc -Dbuildtype=debugoptimized ;;
        clang) CXX=clang++-16 setup clang -Dbuildtype=debugoptimized ;;
        asan)  setup asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false ;;
        tsan)  CXX=clang++-16 setup tsan -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false -Dbench=false ;;
        *) echo "unknown build $b" >&2; exit 2 ;;
    esac
    run_build "$b" || status=1
done

echo
echo "=== summary ($(( $(date +%s) - start_all ))s)"
printf '%s\n' "${summary[@]}"
exit $status
