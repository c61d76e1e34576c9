#!/usr/bin/env bash
# One instance on SQLite, one on PostgreSQL, and three on the same PostgreSQL with nats-server
# between them, under the same `cordon bench` load (the offline model without step delays, so the
# server, not the model, is the bottleneck), in one sitting (two alternating rounds).
# Usage: benches/cluster.sh [BINARY] (default target/release/cordon). Prints each bench's report.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/cordon}
LOAD=(--users 200 --messages 20)
SECRET="a benchmark signing secret of at least 32 bytes"
. scripts/throwaway-postgres.sh
WORK=$(mktemp -d)
start_throwaway_postgres "$WORK" max_connections=200
NATS_PORT=$(shuf -i 20000-60000 -n 1)
nats-server -a 127.0.0.1 -p "$NATS_PORT" >/dev/null 2>&1 &
NATS_PID=$!
PIDS=()
cleanup() {
  kill "${PIDS[@]}" "$NATS_PID" 2>/dev/null || true
  stop_throwaway_postgres "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT

# serve NAME PORT [ARGS...]: starts an instance and waits until it is ready.
serve() {
  local name=$1 port=$2; shift 2
  mkdir -p "$WORK/$name"
  CORDON_JWT_SECRET="$SECRET" "$BIN" serve --addr "127.0.0.1:$port" --data-dir "$WORK/$name" \
    --signups-per-hour 1000000 --offline-delay-ms 0 "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.1; done
}
stop_all() { kill -TERM "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null || true; PIDS=(); }
database() { psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE $1"; echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"; }

for round in 1 2; do
  echo "== round $round: one instance on SQLite"
  serve sqlite$round 18101
  "$BIN" bench --url ws://127.0.0.1:18101 --server-pid "${PIDS[0]}" "${LOAD[@]}"
  stop_all

  echo "== round $round: one instance on PostgreSQL"
  url=$(database one$round)
  serve pg$round 18102 --database-url "$url"
  "$BIN" bench --url ws://127.0.0.1:18102 --server-pid "${PIDS[0]}" "${LOAD[@]}"
  stop_all

  echo "== round $round: three instances on one PostgreSQL, nats-server between them"
  url=$(database three$round)
  for port in 18103 18104 18105; do
    serve "c$round-$port" "$port" --database-url "$url" --broker-url "nats://127.0.0.1:$NATS_PORT"
  done
  "$BIN" bench --url ws://127.0.0.1:18103 --also-url ws://127.0.0.1:18104 \
    --also-url ws://127.0.0.1:18105 --server-pid "${PIDS[0]}" "${LOAD[@]}"
  stop_all
done
