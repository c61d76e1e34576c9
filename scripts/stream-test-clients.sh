#!/usr/bin/env bash
# Installs the reference clients crates/cordon/tests/standard_streams.rs drives into DIR (default
# target/stream-test-clients): the `ai` package (the AI SDK's useChat engine and UI message stream
# reader) and `@ag-ui/client`, locked in crates/cordon/tests/streams/package-lock.json. Prints the
# export the tests read. Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$(realpath -m "${1:-target/stream-test-clients}")
mkdir -p "$DIR"
cp crates/cordon/tests/streams/package.json crates/cordon/tests/streams/package-lock.json "$DIR/"
# `ai` asks for node >= 22 in its engines field; it runs on the node 20 Debian and this image ship.
npm ci --prefix "$DIR" --no-audit --no-fund --silent --engine-strict=false >/dev/null
echo "export CORDON_TEST_STREAM_CLIENTS=$DIR"
