#!/usr/bin/env bash
#! What the side-by-side benches share: a fresh `cordon serve` with limits no load reaches, and one
#! `cordon bench` sitting against it. Sourced; the caller sets server_bin, bench_bin, port, users and
#! duration, and its EXIT trap kills "$server" when a sitting is cut short.

server=""

# start_bench_server DATA_DIR [SERVE FLAGS...]: starts the server and waits until it is ready.
start_bench_server() {
  local data=$1; shift
  mkdir -p "$data"
  "$server_bin" serve --addr "127.0.0.1:$port" --data-dir "$data" --offline-delay-ms 0 \
    --max-runs-global 4096 --messages-per-minute 1000000 --max-sockets-per-user 16 \
    --signups-per-hour 100000 "$@" >"$data/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "cordon serve did not become ready (see $data/server.log)" >&2
  exit 1
}

# run_bench PATTERN: one sustained-load sitting; prints the report lines PATTERN matches.
run_bench() {
  "$bench_bin" bench --url "ws://127.0.0.1:$port" --users "$users" --duration "$duration" \
    --server-pid "$server" | grep -E "$1"
}

# server_metrics PATTERN: the server's /metrics lines PATTERN matches (none is no error).
server_metrics() {
  curl -s "http://127.0.0.1:$port/metrics" | grep -E "$1" || true
}

stop_bench_server() {
  kill -TERM "$server"
  wait "$server" 2>/dev/null || true
  server=""
}
