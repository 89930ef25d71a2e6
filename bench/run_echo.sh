#!/usr/bin/env bash
# The echo benchmark: tulip's echo server against the floors (plain epoll and io_uring in C) and
# the peers a user would pick instead (Asio, CPython asyncio, uvloop), in one run.
#
#   bench/run_echo.sh [--quick] [--rounds=N] [--duration=S] [--warmup=S] [--only=A,B,...]
#                     [--workloads=W,...] [--threads=T,...]
#
# Builds what is missing (bench/loadgen, echo_epoll, echo_uring, echo_asio if <asio.hpp> exists,
# and examples/echo_server if the tree has it) in release mode in BUILD_DIR (default
# build-bench-release), then for every round, workload and server: starts the server pinned to
# CPU 0, waits until it accepts a connection, runs bench/loadgen pinned to CPU 1 against it
# (closed loop: warm-up, then a measured window), and stops the server. Every figure is the
# median of the rounds. Prints a table, writes bench/results/echo.csv (and the raw lines to
# bench/results/echo_raw.txt), and draws docs/echo_benchmarks.png (CHART=... to change, CHART=
# for none). bench/README.md says what each figure means.
#
# Workloads (connections, message size, messages in flight per connection):
#   pingpong (1, 64, 1)  small (50, 64, 8)  medium (50, 4096, 4)  bulk (10, 65536, 2)
#
# --quick: 1 round of 2 s after 0.5 s of warm-up (default: 3 rounds of 5 s after 1 s).
# --only=epoll-floor,tulip-epoll-protocol,...: only these servers (the floor is needed for ratios).
# --workloads=small,...: only these workloads (default: all four).
# --threads=1,2: run each tulip server with each of these `--threads` (shards, one loop per
# thread); T > 1 is named tulip-<backend>-<api>-t<T>. A server with several threads needs
# several CPUs: pair it with SERVER_CPU=none LOAD_CPU=none (or SERVER_CPU=0,1), or its threads
# share CPU 0.
# tulip's servers are `echo_server --port N --backend B --api A`; TULIP_ECHO=path picks the
# binary (default: BUILD_DIR's, else build/examples/echo_server). A server that is missing, does
# not start, or fails a run is skipped with a note.
# SERVER_CPU / LOAD_CPU (default 0 / 1, "none" for no pinning), BENCH_PORT (first port, 19100),
# PYTHON (default /usr/bin/python3, which has Debian's python3-uvloop).
#
# Prerequisites (Debian): meson ninja-build g++ liburing-dev, util-linux (taskset); for the peers
# libasio-dev, python3-uvloop; for the chart python3-matplotlib. No root needed to run.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build-bench-release}
python=${PYTHON:-/usr/bin/python3}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
port=${BENCH_PORT:-19100}
chart=${CHART-docs/echo_benchmarks.png}
results=bench/results
rounds=3 duration=5 warmup=1 only= only_workloads= tulip_threads=1
for arg in "$@"; do
    case $arg in
        --quick) rounds=1 duration=2 warmup=0.5 ;;
        --rounds=*) rounds=${arg#*=} ;;
        --duration=*) duration=${arg#*=} ;;
        --warmup=*) warmup=${arg#*=} ;;
        --only=*) only=,${arg#*=}, ;;
        --workloads=*) only_workloads=,${arg#*=}, ;;
        --threads=*) tulip_threads=${arg#*=} ;;
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "run_echo.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "run_echo.sh: --rounds must be a positive integer" >&2; exit 2; }
[[ $tulip_threads =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
    { echo "run_echo.sh: --threads must be positive integers separated by commas, not '$tulip_threads'" >&2; exit 2; }
workloads=()
for w in "pingpong 1 64 1" "small 50 64 8" "medium 50 4096 4" "bulk 10 65536 2"; do
    if [ -z "$only_workloads" ] || [[ $only_workloads == *",${w%% *},"* ]]; then workloads+=("$w"); fi
done
[ ${#workloads[@]} -gt 0 ] || { echo "run_echo.sh: --workloads matched none of pingpong, small, medium, bulk" >&2; exit 2; }

# --- every process started here is stopped by its PID on exit -------------------------------
# (the load generator runs in the foreground; the server of the moment is the only one running)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build ------------------------------------------------------------------------------------
if [ ! -f "$build_dir/build.ninja" ]; then
    echo "== configuring $build_dir (release)"
    meson setup "$build_dir" --buildtype=release -Dtests=false -Dbench=true >/dev/null
fi
targets=(bench/loadgen bench/echo_epoll bench/echo_uring)
has_target() { ninja -C "$build_dir" -t query "$1" >/dev/null 2>&1; }
has_target bench/echo_asio && targets+=(bench/echo_asio)
has_target examples/echo_server && targets+=(examples/echo_server)
echo "== building ${targets[*]} in $build_dir"
ninja -C "$build_dir" "${targets[@]}" >/dev/null
bin=$build_dir/bench
loadgen=$bin/loadgen

# --- the servers: name, then the command without --port --------------------------------------
names=() cmds=() notes=()
add() { names+=("$1"); cmds+=("$2"); }
add epoll-floor "$bin/echo_epoll"
add uring-floor "$bin/echo_uring"
if [ -x "$bin/echo_asio" ]; then add asio "$bin/echo_asio"
else notes+=("asio: skipped, <asio.hpp> not found at configure time (apt-get install libasio-dev)"); fi
for api in protocol streams; do add "asyncio-$api" "$python bench/peer_asyncio.py --loop asyncio --api $api"; done
if "$python" -c 'import uvloop' 2>/dev/null; then
    for api in protocol streams; do add "uvloop-$api" "$python bench/peer_asyncio.py --loop uvloop --api $api"; done
else
    notes+=("uvloop: skipped, $python has no uvloop (apt-get install python3-uvloop)")
fi
tulip=${TULIP_ECHO:-}
if [ -z "$tulip" ]; then
    for t in "$build_dir/examples/echo_server" build/examples/echo_server; do
        if [ -x "$t" ]; then tulip=$t; break; fi
    done
fi
if [ -n "$tulip" ] && [ -x "$tulip" ]; then
    for api in protocol streams; do
        for backend in io_uring epoll poll select; do
            for t in ${tulip_threads//,/ }; do
                if [ "$t" = 1 ]; then add "tulip-$backend-$api" "$tulip --backend $backend --api $api"
                else add "tulip-$backend-$api-t$t" "$tulip --backend $backend --api $api --threads $t"; fi
            done
        done
    done
else
    notes+=("tulip: skipped, no examples/echo_server binary (build it, or set TULIP_ECHO=path)")
fi
if [ -n "$only" ]; then
    keep_names=() keep_cmds=()
    for i in "${!names[@]}"; do
        if [[ $only == *",${names[$i]},"* ]]; then keep_names+=("${names[$i]}"); keep_cmds+=("${cmds[$i]}"); fi
    done
    names=("${keep_names[@]}") cmds=("${keep_cmds[@]}")
fi

pin() { # pin CPU: the prefix that runs a command on that CPU
    if [ "$1" != none ] && command -v taskset >/dev/null; then echo "taskset -c $1"; fi
}
server_pin=$(pin "$server_cpu")
load_pin=$(pin "$load_cpu")

# Start server i on a fresh port; sets server_pid and server_port. Fails if it does not accept
# within 10 s or exits (a tulip --api not implemented yet, for one).
start_server() {
    port=$((port + 1))
    # shellcheck disable=SC2086
    $server_pin ${cmds[$1]} --port "$port" >"$results/server.log" 2>&1 &
    server_pid=$!
    server_port=$port
    for _ in $(seq 1 50); do
        kill -0 "$server_pid" 2>/dev/null || return 1
        "$loadgen" --port "$port" --probe --timeout 0.2 2>/dev/null && return 0
    done
    return 1
}

# Stop the server by its PID: SIGTERM, then SIGKILL if it is still there after 5 s.
stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

mkdir -p "$results"
raw=$results/echo_raw.txt
: >"$raw"
declare -A failed=()
echo "== ${#names[@]} servers x ${#workloads[@]} workloads x $rounds rounds of ${duration} s" \
     "(+${warmup} s warm-up); server on CPU $server_cpu, load on CPU $load_cpu"
start=$(date +%s)
for round in $(seq 1 "$rounds"); do
    for w in "${workloads[@]}"; do
        read -r wname conns size depth <<<"$w"
        for i in "${!names[@]}"; do
            name=${names[$i]}
            [ -z "${failed[$name]:-}" ] || continue
            if ! start_server "$i"; then
                failed[$name]="did not start or accept connections"
                notes+=("$name: skipped, ${failed[$name]}; it said: $(head -c 300 "$results/server.log" | tr '\n' ' ')")
                stop_server
                continue
            fi
            # shellcheck disable=SC2086
            if line=$($load_pin "$loadgen" --port "$server_port" --conns "$conns" --size "$size" \
                      --depth "$depth" --warmup "$warmup" --duration "$duration" \
                      --server-pid "$server_pid" 2>"$results/loadgen.log"); then
                echo "server=$name workload=$wname round=$round $line" | tee -a "$raw"
            else
                failed[$name]="failed on $wname: $(tr '\n' ' ' <"$results/loadgen.log")"
                notes+=("$name: dropped, ${failed[$name]}")
            fi
            stop_server
        done
    done
done
echo "== ran in $(( $(date +%s) - start )) s; raw lines in $raw"
echo
"$python" bench/echo_table.py "$raw" "$results/echo.csv" ${chart:+"$chart"}
for n in "${notes[@]}"; do echo "# $n"; done
