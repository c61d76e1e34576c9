#!/usr/bin/env bash
#! Trace export's cost, side by side in one sitting: the same `cordon bench` against a fresh server
#! with no exporter, with --otlp-endpoint at a dead collector (a closed port), and at a live one
#! (a minimal OTLP/HTTP sink in Python that reads each batch and answers 200).
#!   benches/otel.sh [server binary] [users] [secs]
set -euo pipefail
server_bin=${1:-./target/release/cordon}
users=${2:-200}
duration=${3:-10}
bench_bin=${BENCH_BIN:-$server_bin}
port=${PORT_OTEL:-18490}
sink_port=$((port + 1))
dead_port=$((port + 2))
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
sink=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  [ -n "$sink" ] && kill "$sink" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/sink.py" <<'PY'
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
python3 "$work/sink.py" "$sink_port" &
sink=$!

one() {
  local name=$1; shift
  start_bench_server "$work/$name" "$@"
  echo "== $name ($*)"
  run_bench "runs completed|to agent_completed|runs per second"
  sleep 1 # the exporter's last batch
  server_metrics "^cordon_otel_spans_(exported|dropped)_total"
  stop_bench_server
}

# ORDER="live dead none" runs them the other way round (to see an order effect).
for name in ${ORDER:-none dead live}; do
  case $name in
    none) one none ;;
    dead) one dead --otlp-endpoint "http://127.0.0.1:$dead_port" ;;
    live) one live --otlp-endpoint "http://127.0.0.1:$sink_port" ;;
  esac
done
