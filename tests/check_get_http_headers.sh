#!/usr/bin/env bash
# The get_http_headers example against a URL: its own --serve-once server on loopback stands in
# for a web server. When curl is installed, curl's view of the same server's headers must be the
# same lines; without curl that comparison is skipped (with a message).
set -uo pipefail
exe=$1
server=
tmp=$(mktemp -d) || exit 1
trap 'kill $server 2>/dev/null; rm -rf "$tmp"' EXIT

# Starts a --serve-once server in the background and sets $url once it says where it listens.
start_server() {
    : >"$tmp/server.out"  # emptied here, not by the background redirection: it may come late
    "$exe" --serve-once >"$tmp/server.out" 2>&1 &
    server=$!
    url=
    for _ in $(seq 1 300); do
        url=$(sed -n 's/^serving on //p' "$tmp/server.out")
        [ -n "$url" ] && return 0
        kill -0 $server 2>/dev/null || break
        sleep 0.1
    done
    echo "check_get_http_headers: the server did not start"; cat "$tmp/server.out"; exit 1
}

start_server
"$exe" "$url" >"$tmp/example.out" 2>&1 || { echo "check_get_http_headers: the example failed"; cat "$tmp/example.out"; exit 1; }
wait $server || { echo "check_get_http_headers: the server failed"; exit 1; }
cat "$tmp/example.out"
sed -n 's/^HTTP header> //p' "$tmp/example.out" >"$tmp/ours"
grep -qx 'HTTP/1.0 200 OK' "$tmp/ours" || { echo "check_get_http_headers: no status line"; exit 1; }
grep -qx 'Server: tulip-example' "$tmp/ours" || { echo "check_get_http_headers: no Server header"; exit 1; }

if ! command -v curl >/dev/null; then
    echo "check_get_http_headers: curl is not installed, skipping the comparison with curl"
    exit 0
fi
start_server
curl -sS --http1.0 -I "$url" | tr -d '\r' | sed '/^$/d' >"$tmp/curl" || { echo "check_get_http_headers: curl failed"; exit 1; }
wait $server || { echo "check_get_http_headers: the server failed"; exit 1; }
diff "$tmp/ours" "$tmp/curl" || { echo "check_get_http_headers: curl saw other headers"; exit 1; }
echo "check_get_http_headers: ok (same headers as curl)"
