#!/usr/bin/env bash
#! Builds the cordon container image from the static (musl) binary, without a daemon or a registry:
#!   scripts/build-image.sh [tag]        # default tag: cordon:latest
#! Needs the x86_64-unknown-linux-musl Rust target, musl-gcc (Debian: musl-tools) for the C parts
#! (SQLite, tree-sitter grammars, ring), and podman. Prints the image size.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-cordon:latest}
target=x86_64-unknown-linux-musl
CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc} \
  cargo build --profile container --locked --target "$target" -p cordon
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/etc" "$context/data"
cp "target/$target/container/cordon" "$context/cordon"
echo "cordon:x:10001:10001:cordon:/data:/sbin/nologin" >"$context/etc/passwd"
echo "cordon:x:10001:" >"$context/etc/group"
command -v podman >/dev/null || { echo "podman is needed (Debian: apt-get install podman)" >&2; exit 1; }
# Docker format: the OCI format has no HEALTHCHECK.
podman build --format docker -f Containerfile -t "$tag" "$context"
podman image inspect "$tag" --format '{{.Size}}' | awk '{printf "image size: %.1f MB\n", $1 / 1e6}'
