#!/usr/bin/env bash
# The standard benchmark set behind `make bench`: starts the built server in embedded mode on a
# temporary data directory with loopback ports (rate limits raised so the load is not refused),
# runs e2e (closed loop, 10 s), backlog (2,000 messages) and idle (500 connections) against it,
# prints each run's JSON summary and stops the server. Needs the release binaries of
# obscura-server and obscura-bench in $CARGO_TARGET_DIR (BENCH_PROFILE=debug for debug builds).
set -euo pipefail

profile="${BENCH_PROFILE:-release}"
bin="${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}/${profile}"
server="${bin}/obscura-server"
bench="${bin}/obscura-bench"
for binary in "$server" "$bench"; do
    [[ -x "$binary" ]] || { echo "missing $binary: build it first (make bench does)" >&2; exit 1; }
done

data="$(mktemp -d)"
log="${data}/server.log"
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT

RUST_LOG="${RUST_LOG:-warn,obscura_server=info}" "$server" \
    --data-dir "$data" \
    --server-host 127.0.0.1 --server-port 0 --mgmt-port 0 \
    --log-format json \
    --rate-limit-per-second 1000000 --rate-limit-burst 1000000 \
    --auth-rate-limit-per-second 100000 --auth-rate-limit-burst 100000 \
    --bundle-rate-limit-per-minute 1000000 --bundle-rate-limit-burst 1000000 \
    --shutdown-timeout-secs 5 \
    >"$log" 2>&1 &
pid=$!

api=""
for _ in $(seq 1 300); do
    api="$(grep -o '"api":"[^"]*"' "$log" | head -n1 | cut -d'"' -f4 || true)"
    [[ -n "$api" ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "the server exited before listening" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$api" ]] || { cat "$log" >&2; echo "the server did not report its address within 30 s" >&2; exit 1; }
target="http://${api}"
echo "server ${pid} listening on ${target} (${profile} build)" >&2

status=0
"$bench" --target "$target" --deadline-secs 120 e2e --duration-secs 10 | tail -n1 || status=1
"$bench" --target "$target" --deadline-secs 120 backlog --messages 2000 | tail -n1 || status=1
"$bench" --target "$target" --deadline-secs 120 idle --connections 500 --hold-secs 5 --pid "$pid" | tail -n1 || status=1
exit "$status"
