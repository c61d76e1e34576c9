#!/usr/bin/env bash
#! Budgets and analytics side by side: `cordon bench` against a fresh server with neither, with
#! budgets every model call is checked against (limits high enough never to refuse), and with
#! analytics written to a live ClickHouse (Debian's clickhouse-server, started here on loopback).
#!   benches/analytics.sh [BINARY] [users] [secs]      ORDER="clickhouse budgets none" rotates them
set -euo pipefail
server_bin=${1:-./target/release/cordon}
users=${2:-200}
duration=${3:-10}
bench_bin=${BENCH_BIN:-$server_bin}
port=${PORT_ANALYTICS:-18495}
ch_port=$((port + 1))
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
clickhouse=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  [ -n "$clickhouse" ] && kill "$clickhouse" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_clickhouse() {
  mkdir -p "$work/ch"
  cat >"$work/ch/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$work/ch/server.log</log><errorlog>$work/ch/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$ch_port</http_port>
  <tcp_port>$((ch_port + 1))</tcp_port>
  <path>$work/ch/data/</path>
  <tmp_path>$work/ch/tmp/</tmp_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
  cat >"$work/ch/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
  clickhouse-server --config-file="$work/ch/config.xml" >/dev/null 2>&1 &
  clickhouse=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$ch_port/?query=SELECT%201" >/dev/null && return
    sleep 0.1
  done
  echo "clickhouse-server did not start" >&2
  exit 1
}

one() {
  local name=$1; shift
  start_bench_server "$work/$name-$RANDOM" "$@"
  echo "== $name ($*)"
  run_bench "runs completed|to agent_completed|runs per second"
  sleep 2 # the buffer's last inserts
  server_metrics "^cordon_analytics_(rows_written|rows_dropped|buffered)"
  stop_bench_server
}

start_clickhouse
for name in ${ORDER:-none budgets clickhouse}; do
  case $name in
    none) one none ;;
    budgets) one budgets --budget-daily-tokens 1000000000000 --budget-monthly-usd 1000000 ;;
    clickhouse) one clickhouse --clickhouse-url "http://127.0.0.1:$ch_port/cordon_bench" ;;
  esac
done
