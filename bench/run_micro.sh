#!/usr/bin/env bash
# The core microbenchmarks, tulip against CPython's asyncio and uvloop, in one run.
#
#   bench/run_micro.sh [--quick] [--amortized] [--repeat=N]
#
# Builds bench/micro_core in release mode in its own build directory (build-bench-release),
# makes sure Debian's /usr/bin/python3 has uvloop (installs python3-uvloop with apt-get if not),
# runs micro_core.cpp and micro_core.py (asyncio, then uvloop) one after the other, and prints one
# table: ns per operation for each runtime, the ratios asyncio/tulip and uvloop/tulip (how many
# times faster tulip is), and tulip's heap allocations per operation. The raw lines and a CSV go
# to bench/results/ (not versioned); bench/micro_table.py makes the table.
#
# --quick runs a fifth of the operations, and 200k pending timers instead of a million.
# --amortized adds the amortized call_later+cancel figure: a million cancellations against the
# million pending timers, so that one compaction of the timer heap is paid for (~10 s more).
# --repeat=N runs the whole sequence N times; the table shows the median of the passes for each
# figure and the range of the ratios within a pass (on a noisy machine, read them that way).
# ROUNDS=N sets the timed rounds of every figure; BUILD_DIR changes the build directory.
# BENCH_CPU=N pins all three runtimes to CPU N (default 0; "none" to leave them free): on a shared
# virtual machine the CPUs need not be alike, and a ratio is only fair on the same one.
#
# The interpreter must be Debian's /usr/bin/python3, not whatever `python3` is first on PATH:
# python3-uvloop is installed for that one. PYTHON=... overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build-bench-release}
bench_cpu=${BENCH_CPU:-0}
repeat=1
python=${PYTHON:-/usr/bin/python3}
results=bench/results
cpp_args=()
py_args=()
if [ -n "${ROUNDS:-}" ]; then
    cpp_args+=("--rounds=$ROUNDS")
    py_args+=("--rounds=$ROUNDS")
fi
for arg in "$@"; do
    case $arg in
        --quick) cpp_args+=(--scale=0.2); py_args+=(--scale=0.2) ;;
        --amortized) cpp_args+=(--amortized); py_args+=(--amortized) ;;
        --repeat=*)
            repeat=${arg#--repeat=}
            [[ $repeat =~ ^[1-9][0-9]*$ ]] || { echo "run_micro.sh: bad $arg" >&2; exit 2; } ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "run_micro.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

# --- uvloop for Debian's python3 --------------------------------------------------------------
if ! "$python" -c 'import uvloop' 2>/dev/null; then
    echo "== $python has no uvloop: installing python3-uvloop with apt-get"
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    if ! $sudo apt-get install -y python3-uvloop >/dev/null; then
        echo "== apt-get install failed; updating the package lists and trying again"
        $sudo apt-get update >/dev/null
        $sudo apt-get install -y python3-uvloop >/dev/null
    fi
fi

# --- build ------------------------------------------------------------------------------------
if [ ! -f "$build_dir/build.ninja" ]; then
    echo "== configuring $build_dir (release)"
    meson setup "$build_dir" --buildtype=release -Dtests=false -Dbench=true >/dev/null
fi
echo "== building $build_dir/bench/micro_core"
ninja -C "$build_dir" bench/micro_core >/dev/null

pin=()
if [ "$bench_cpu" != none ] && command -v taskset >/dev/null; then
    pin=(taskset -c "$bench_cpu")
    echo "== every runtime runs on CPU $bench_cpu (BENCH_CPU)"
fi

mkdir -p "$results"
raw=$results/micro_core.txt
: > "$raw"
start=$(date +%s)
for pass in $(seq 1 "$repeat"); do
    if [ "$repeat" -gt 1 ]; then
        echo "== pass $pass of $repeat"
        echo "# pass=$pass" >> "$raw"
    fi
    echo "== tulip"
    "${pin[@]}" "$build_dir/bench/micro_core" "${cpp_args[@]}" | tee -a "$raw"
    echo "== CPython asyncio and uvloop ($python)"
    "${pin[@]}" "$python" bench/micro_core.py "${py_args[@]}" | tee -a "$raw"
done
echo "== ran in $(( $(date +%s) - start ))s; raw lines in $raw"
echo
"$python" bench/micro_table.py "$raw" "$results/micro_core.csv"
