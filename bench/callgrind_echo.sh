#!/usr/bin/env bash
# User-space instructions per echoed message, counted by callgrind, for the epoll floor, Asio and
# tulip's echo server on the epoll backend (each when present).
#
#   bench/callgrind_echo.sh [--messages=N] [--conns=C] [--only=NAME,...]
#
# Each server runs under `valgrind --tool=callgrind` twice: once for a short run (C connections
# ping-ponging 100 messages of 64 bytes each) and once for a long one (100 + N each, N = 2000 by
# default). bench/loadgen sends exactly that many messages (--messages) and exits; the server is
# then stopped with SIGTERM and callgrind writes its count. The difference between the two runs
# is the cost of C x N messages alone: start-up, accepting the connections and shutting down
# cancel out. Instructions in the kernel (the system calls themselves) are not counted: this is
# what each implementation adds on top of them. The same difference of the calls to the C
# allocator (malloc, calloc, realloc, ...; operator new calls malloc) gives heap allocations per
# message: 0.00 is an echo that allocates nothing in steady state. tulip's block cache serves
# coroutine frames, futures and callback nodes without malloc; build with -Dblock_cache=false
# (and TULIP_ECHO=that build's echo_server) to count those too.
#
# Builds what is missing in BUILD_DIR (default build-bench-release) like bench/run_echo.sh.
# TULIP_ECHO=path picks tulip's echo_server; BENCH_PORT the first port (default 19600).
# Callgrind output files stay in bench/results/callgrind/. --only picks servers by name
# (epoll-floor, asio, tulip-epoll-protocol, tulip-epoll-streams).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build-bench-release}
port=${BENCH_PORT:-19600}
messages=2000 conns=50 base=100 only=
for arg in "$@"; do
    case $arg in
        --messages=*) messages=${arg#*=} ;;
        --conns=*) conns=${arg#*=} ;;
        --only=*) only=,${arg#*=}, ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "callgrind_echo.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
[[ $messages =~ ^[1-9][0-9]*$ && $conns =~ ^[1-9][0-9]*$ ]] ||
    { echo "callgrind_echo.sh: --messages and --conns must be positive integers" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "callgrind_echo.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }

server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -f "$build_dir/build.ninja" ]; then
    echo "== configuring $build_dir (release)"
    meson setup "$build_dir" --buildtype=release -Dtests=false -Dbench=true >/dev/null
fi
targets=(bench/loadgen bench/echo_epoll)
has_target() { ninja -C "$build_dir" -t query "$1" >/dev/null 2>&1; }
has_target bench/echo_asio && targets+=(bench/echo_asio)
has_target examples/echo_server && targets+=(examples/echo_server)
echo "== building ${targets[*]} in $build_dir"
ninja -C "$build_dir" "${targets[@]}" >/dev/null
bin=$build_dir/bench
loadgen=$bin/loadgen
out_dir=bench/results/callgrind
mkdir -p "$out_dir"

names=() cmds=()
names+=(epoll-floor) cmds+=("$bin/echo_epoll")
if [ -x "$bin/echo_asio" ]; then names+=(asio) cmds+=("$bin/echo_asio"); fi
tulip=${TULIP_ECHO:-}
if [ -z "$tulip" ]; then
    for t in "$build_dir/examples/echo_server" build/examples/echo_server; do
        if [ -x "$t" ]; then tulip=$t; break; fi
    done
fi
if [ -n "$tulip" ] && [ -x "$tulip" ]; then
    for api in protocol streams; do
        names+=("tulip-epoll-$api") cmds+=("$tulip --backend epoll --api $api")
    done
else
    echo "# tulip: skipped, no examples/echo_server binary (build it, or set TULIP_ECHO=path)"
fi

# Run server $1 (command $2) under callgrind for $3 messages per connection; print its Ir total.
count_instructions() {
    local out=$out_dir/$1.$3.out
    port=$((port + 1))
    rm -f "$out"
    # shellcheck disable=SC2086
    valgrind --tool=callgrind --callgrind-out-file="$out" $2 --port "$port" \
        >"$out_dir/$1.log" 2>&1 &
    server_pid=$!
    local ready=
    for _ in $(seq 1 300); do  # valgrind takes seconds to start on a busy machine
        kill -0 "$server_pid" 2>/dev/null || break
        if "$loadgen" --port "$port" --probe --timeout 0.2 2>/dev/null; then ready=1; break; fi
    done
    if [ -z "$ready" ]; then
        echo "# $1: did not start under valgrind: $(head -c 300 "$out_dir/$1.log" | tr '\n' ' ')" >&2
        cleanup; wait "$server_pid" 2>/dev/null || true; server_pid=
        return 1
    fi
    "$loadgen" --port "$port" --conns "$conns" --size 64 --depth 1 --messages "$3" >/dev/null
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    # The totals line of the callgrind file: events of the whole run (Ir first), then the calls
    # to the allocator.
    printf '%s %s\n' "$(awk '/^(summary|totals):/ { print $2; exit }' "$out")" "$(count_allocations "$out")"
}

# Calls to the C allocator in callgrind output file $1 (names are compressed: "cfn=(id) name"
# the first time, "cfn=(id)" afterwards; a "calls=N ..." line follows the callee's cfn line).
count_allocations() {
    awk '
        /^c?fn=\(/ {
            id = $1; sub(/^c?fn=/, "", id)
            name = $0; sub(/^c?fn=\([0-9]+\) ?/, "", name)
            if (name != "") names[id] = name
            if ($0 ~ /^cfn=/) callee = names[id]
            next
        }
        /^calls=/ && callee ~ /^(malloc|calloc|realloc|aligned_alloc|memalign|posix_memalign)$/ {
            n = $1; sub(/^calls=/, "", n); total += n
        }
        END { print total + 0 }' "$1"
}

printf '%-22s %16s %16s %14s %15s\n' server "Ir ($base/conn)" "Ir ($((base + messages))/conn)" "Ir/message" \
    "allocs/message"
for i in "${!names[@]}"; do
    name=${names[$i]}
    if [ -n "$only" ] && [[ $only != *",$name,"* ]]; then continue; fi
    read -r short short_allocs < <(count_instructions "$name" "${cmds[$i]}" "$base") || continue
    read -r long long_allocs < <(count_instructions "$name" "${cmds[$i]}" "$((base + messages))") || continue
    [ -n "$short" ] && [ -n "$long" ] || continue
    n=$((conns * messages))
    per=$(awk -v a="$short" -v b="$long" -v n="$n" 'BEGIN { printf "%.0f", (b - a) / n }')
    allocs=$(awk -v a="$short_allocs" -v b="$long_allocs" -v n="$n" \
        'BEGIN { v = (b - a) / n; if (v < 0.005 && v > -0.005) v = 0; printf "%.2f", v }')
    printf '%-22s %16s %16s %14s %15s\n' "$name" "$short" "$long" "$per" "$allocs"
done
echo "# $conns connections, 64-byte messages ping-ponged one at a time; Ir/message =" \
     "(long - short) / ($conns x $messages); user space only; allocs/message likewise, calls to malloc & co."
