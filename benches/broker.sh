#!/usr/bin/env bash
# NATS vs PostgreSQL LISTEN/NOTIFY as the broker between cordon instances, side by side in one
# sitting: starts a throw-away PostgreSQL and a nats-server on loopback, then runs
# crates/cordon-cluster/examples/broker_latency.rs (three alternating rounds of each).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")
WORK=$(mktemp -d)
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
as_postgres "$PG_BIN/initdb" -D "$WORK/data" -A trust -U postgres >/dev/null
PG_PORT=$(shuf -i 20000-60000 -n 1)
NATS_PORT=$(shuf -i 20000-60000 -n 1)
as_postgres "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/log" -w -o \
  "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null
nats-server -a 127.0.0.1 -p "$NATS_PORT" >/dev/null 2>&1 &
NATS_PID=$!
trap 'kill $NATS_PID; as_postgres "$PG_BIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null; rm -rf "$WORK"' EXIT
sleep 0.5
CORDON_BENCH_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres" \
CORDON_BENCH_NATS_URL="nats://127.0.0.1:$NATS_PORT" \
  cargo run -q --release -p cordon-cluster --example broker_latency
