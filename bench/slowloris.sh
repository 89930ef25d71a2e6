#!/usr/bin/env bash
# Reliability check 12's latency half: does a crowd of slowloris peers (one byte every 100 ms,
# never a newline) slow down a well-behaved client? For tulip's echo server on each backend and
# API, the ping-pong round trip (1 connection, 64 bytes, depth 1) is measured by bench/loadgen
# first alone, then with bench/slow_peers.py holding 200 slow connections to the same server;
# the table gives both p50/p99 and the p99 ratio (the check asks for at most 1.10).
#
#   bench/slowloris.sh [--duration=S] [--conns=N]
#
# Needs what bench/run_echo.sh builds (it is run first if BUILD_DIR lacks loadgen or
# echo_server). Server on CPU 0, load on CPU 1, the slow peers unpinned. Every process it starts
# is killed by its PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=3
slow_conns=200
for arg in "$@"; do
    case $arg in
        --duration=*) duration=${arg#*=} ;;
        --conns=*) slow_conns=${arg#*=} ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "slowloris.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done
build_dir=${BUILD_DIR:-build-bench-release}
python=${PYTHON:-/usr/bin/python3}
loadgen=$build_dir/bench/loadgen
echo_server=$build_dir/examples/echo_server
if [ ! -x "$loadgen" ] || [ ! -x "$echo_server" ]; then
    bench/run_echo.sh --quick --only=epoll-floor --workloads=pingpong >/dev/null
fi
port=${BENCH_PORT:-19500}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

measure() {  # port -> "p50 p99"
    taskset -c 1 "$loadgen" --port "$1" --conns 1 --size 64 --depth 1 --warmup 0.5 --duration "$duration" |
        tr ' ' '\n' | awk -F= '$1=="p50_us"{a=$2} $1=="p99_us"{b=$2} END{print a, b}'
}

printf '%-24s %10s %10s %10s %10s %12s\n' server "p50 alone" "p99 alone" "p50 slow" "p99 slow" "p99 ratio"
for backend in epoll io_uring; do
    for api in protocol streams; do
        port=$((port + 1))
        taskset -c 0 "$echo_server" --port "$port" --backend "$backend" --api "$api" >/dev/null &
        server=$!
        pids+=("$server")
        "$loadgen" --port "$port" --probe --timeout 5 >/dev/null
        read -r p50a p99a < <(measure "$port")
        "$python" bench/slow_peers.py --port "$port" --conns "$slow_conns" >/dev/null &
        slow=$!
        pids+=("$slow")
        sleep 1  # let the slow peers connect and start dribbling
        read -r p50b p99b < <(measure "$port")
        kill "$slow" "$server" 2>/dev/null || true
        wait "$slow" "$server" 2>/dev/null || true
        ratio=$(awk -v a="$p99a" -v b="$p99b" 'BEGIN{printf "%.2f", b / a}')
        printf '%-24s %10s %10s %10s %10s %12s\n' "tulip-$backend-$api" "$p50a" "$p99a" "$p50b" "$p99b" "$ratio"
    done
done
echo "# 1 connection ping-ponging 64 bytes for ${duration} s; slow: ${slow_conns} peers sending 1 byte per 100 ms"
