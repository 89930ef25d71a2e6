#!/usr/bin/env bash
# Runs examples/echo_server: bad arguments exit 2 with a usage message; on a free port it echoes
# a message through a plain TCP client on each API (protocol, streams) (bash's /dev/tcp), then
# SIGTERM ends it with exit 0. Then the same with --threads 2 (two shards on one port, through
# SO_REUSEPORT), over several connections, since the kernel spreads them over the shards.
set -uo pipefail
exe=$1 backend=${2:-epoll}
fail() { echo "check_echo_server: $*"; exit 1; }

"$exe" --port nope >/dev/null 2>&1; [ $? -eq 2 ] || fail "a bad port did not exit 2"
msg=$("$exe" --port 0 --backend nope 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$msg" == *"unknown backend 'nope'"*usage:* ]] || fail "a bad backend: exit $rc, '$msg'"
"$exe" >/dev/null 2>&1; [ $? -eq 2 ] || fail "a missing --port did not exit 2"
for bad in 0 -1 two 1025 ''; do
    msg=$("$exe" --port 0 --threads "$bad" 2>&1); rc=$?
    [ $rc -eq 2 ] && [[ "$msg" == *"bad thread count '$bad' (1..1024)"*usage:*--threads* ]] ||
        fail "--threads '$bad': exit $rc, '$msg'"
done
msg=$("$exe" --port 0 --threads 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$msg" == *"missing value after --threads"* ]] || fail "a missing thread count: exit $rc, '$msg'"

out=$(mktemp); trap 'rm -f "$out"' EXIT
check_api() {
    local api=$1 threads=${2:-1} connections=${3:-1} pid port rc reply i
    : >"$out"  # emptied here, not by the background redirection: it may come after the first read
    "$exe" --port 0 --backend "$backend" --api "$api" --threads "$threads" >"$out" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 1 300); do
        port=$(sed -n 's/^echo_server: listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
        [ -n "$port" ] && break
        kill -0 $pid 2>/dev/null || { cat "$out"; fail "echo_server exited early"; }
        sleep 0.1
    done
    [ -n "$port" ] || { kill $pid; fail "echo_server did not say it was listening"; }
    cat "$out"

    [[ $(cat "$out") == *", $threads thread"* ]] || { kill $pid; fail "not $threads threads: $(cat "$out")"; }

    for i in $(seq 1 "$connections"); do
        exec 3<>/dev/tcp/127.0.0.1/"$port" || { kill $pid; fail "cannot connect to port $port"; }
        printf 'hello, echo' >&3
        reply=
        IFS= read -r -t 30 -N 11 reply <&3
        exec 3>&-
        [ "$reply" = "hello, echo" ] || { kill $pid; fail "echoed '$reply' on connection $i"; }
    done
    echo "echoed: $reply ($connections connection(s))"

    kill -TERM $pid
    wait $pid; rc=$?
    [ $rc -eq 0 ] || fail "echo_server exited with $rc after SIGTERM"
    echo "check_echo_server: ok ($backend, $api, $threads thread(s))"
}

check_api protocol
check_api streams
check_api protocol 2 16
