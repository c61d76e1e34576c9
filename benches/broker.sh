#!/usr/bin/env bash
# NATS vs PostgreSQL LISTEN/NOTIFY as the broker between cordon instances, side by side in one
# sitting: starts a throw-away PostgreSQL and a nats-server on loopback, then runs
# crates/cordon-cluster/examples/broker_latency.rs (three alternating rounds of each).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/throwaway-postgres.sh
WORK=$(mktemp -d)
start_throwaway_postgres "$WORK"
NATS_PORT=$(shuf -i 20000-60000 -n 1)
nats-server -a 127.0.0.1 -p "$NATS_PORT" >/dev/null 2>&1 &
NATS_PID=$!
trap 'kill $NATS_PID; stop_throwaway_postgres "$WORK"; rm -rf "$WORK"' EXIT
sleep 0.5
CORDON_BENCH_DATABASE_URL="$PG_URL" \
CORDON_BENCH_NATS_URL="nats://127.0.0.1:$NATS_PORT" \
  cargo run -q --release -p cordon-cluster --example broker_latency
