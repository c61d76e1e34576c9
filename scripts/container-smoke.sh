#!/usr/bin/env bash
#! The container image, tried once end to end: builds it (scripts/build-image.sh), checks its size
#! (under 30 MB) and its user (not root), runs it on a random loopback port, waits for its health
#! check, runs the golden path against it with `cordon bench` (sign up, open a socket, ask, receive
#! every event of the run, nothing of another user's), then stops it with SIGTERM and checks that
#! cordon, as PID 1, exited by itself with 0 well inside the stop timeout.
#!   scripts/container-smoke.sh [tag]
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-cordon:smoke}
scripts/build-image.sh "$tag"
size=$(podman image inspect "$tag" --format '{{.Size}}')
[ "$size" -lt 30000000 ] || { echo "image is $size bytes, over 30 MB" >&2; exit 1; }
user=$(podman image inspect "$tag" --format '{{.Config.User}}')
[ -n "$user" ] && [ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ] || { echo "image runs as '$user'" >&2; exit 1; }

port=$(shuf -i 20000-60000 -n 1)
name=cordon-smoke-$$
# Explicit limits and the host's network: some sandboxes (this project's CI among them) refuse to
# raise rlimits or to set up container networking. CONTAINER_RUNTIME picks the OCI runtime (CI: runc,
# since crun rejects hybrid cgroups); there is no systemd here for the health check's timer, so the
# check is run by hand below.
podman ${CONTAINER_RUNTIME:+--runtime "$CONTAINER_RUNTIME"} run -d --name "$name" \
  --ulimit nofile=16384:16384 --ulimit nproc=4096:4096 --network host --health-interval disable \
  -e CORDON_ADDR="127.0.0.1:$port" -e CORDON_OFFLINE_DELAY_MS=0 "$tag" >/dev/null
trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 100); do
  podman ${CONTAINER_RUNTIME:+--runtime "$CONTAINER_RUNTIME"} healthcheck run "$name" >/dev/null 2>&1 && break
  sleep 0.2
done
podman ${CONTAINER_RUNTIME:+--runtime "$CONTAINER_RUNTIME"} healthcheck run "$name" >/dev/null || { podman logs "$name"; echo "never healthy" >&2; exit 1; }
echo "healthy on 127.0.0.1:$port"

# The golden path from outside: 5 users, 2 messages each, every event checked for its owner.
report=$(./target/x86_64-unknown-linux-musl/container/cordon bench --url "ws://127.0.0.1:$port" \
  --users 5 --messages 2 --json)
echo "$report" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["runs_completed"] == 10 and r["runs_failed"] == 0, r
assert r["cross_user_events"] == 0 and r["connections_failed"] == 0, r
print("golden path: 10 runs completed, 0 failed, 0 cross-user events")'

started=$(date +%s.%N)
podman ${CONTAINER_RUNTIME:+--runtime "$CONTAINER_RUNTIME"} stop --time 20 "$name" >/dev/null
took=$(echo "$(date +%s.%N) - $started" | bc)
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
echo "stopped by SIGTERM in ${took}s, exit code $code"
[ "$code" -eq 0 ] || { podman logs "$name" | tail -20; exit 1; }
# podman would have sent SIGKILL at 20 s: a PID 1 that ignored SIGTERM takes that long.
awk -v t="$took" 'BEGIN { exit !(t < 15) }' || { echo "SIGTERM was not handled" >&2; exit 1; }
podman logs "$name" 2>&1 | grep -q "shutdown complete" || { echo "no clean shutdown in the log" >&2; exit 1; }
echo "container smoke test passed"
