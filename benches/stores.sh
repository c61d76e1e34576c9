#!/usr/bin/env bash
#! SQLite against PostgreSQL, side by side: one fresh server per run, `cordon bench` sustained load
#! (400 users back to back), the stores alternating. PostgreSQL runs in a throw-away cluster started
#! here with `synchronous_commit=off`, the match of SQLite's WAL with `synchronous=NORMAL` (a commit
#! survives a crash of the process, not of the machine).
#!   benches/stores.sh [pairs] [secs] [users]
set -euo pipefail
pairs=${1:-3}
duration=${2:-20}
users=${3:-400}
server_bin=${BENCH_BIN:-./target/release/cordon}
bench_bin=$server_bin
port=${PORT_STORES:-18490}
. "$(dirname "$0")/../scripts/throwaway-postgres.sh"
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d)
start_throwaway_postgres "$work" synchronous_commit=off shared_buffers=512MB
pg_port=$PG_PORT
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  stop_throwaway_postgres "$work"
  rm -rf "$work"
}
trap cleanup EXIT

one_run() { # store, run number
  local store=$1 n=$2 extra=()
  if [ "$store" = postgres ]; then
    psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -c "CREATE DATABASE bench_$n"
    extra=(--database-url "postgres://postgres@127.0.0.1:$pg_port/bench_$n")
  fi
  start_bench_server "$work/data-$store-$n" "${extra[@]}"
  echo "=== $store, run $n"
  run_bench "runs per second|runs completed|agent_started|agent_completed|RSS before|cross-user"
  stop_bench_server
}

for n in $(seq "$pairs"); do
  one_run sqlite "$n"
  one_run postgres "$n"
done
