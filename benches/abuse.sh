#!/usr/bin/env bash
#! One abuse-resistance measurement: a fresh server (default limits, sign-ups lifted for the
#! bench's one address) and `cordon bench --abuse` against it. Run it for two builds side by side:
#!   benches/abuse.sh ./target/release/cordon            # this build
#!   benches/abuse.sh /tmp/cordon-before [users] [secs]  # another build, same bench binary
set -euo pipefail
server_bin=${1:-./target/release/cordon}
users=${2:-50}
duration=${3:-20}
bench_bin=${BENCH_BIN:-./target/release/cordon}
port=${PORT_ABUSE:-18480}
data=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"' EXIT
"$server_bin" serve --addr "127.0.0.1:$port" --data-dir "$data" --signups-per-hour 100000 \
  >"$data/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
"$bench_bin" bench --url "ws://127.0.0.1:$port" --abuse --users "$users" --duration "$duration" \
  --server-pid "$server" ${BENCH_EXTRA:-}
