#!/usr/bin/env bash
# Installs the real MCP servers crates/cordon/tests/mcp.rs calls into DIR (default target/mcp-test-servers):
# the reference @modelcontextprotocol/server-everything (npm, locked in crates/cordon/tests/mcp/package-lock.json)
# and the official Python SDK `mcp` (PyPI, pinned in requirements.txt) in a venv. Prints the two exports
# the tests read. Needs node, npm and python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$(realpath -m "${1:-target/mcp-test-servers}")
mkdir -p "$DIR"
cp crates/cordon/tests/mcp/package.json crates/cordon/tests/mcp/package-lock.json "$DIR/"
npm ci --prefix "$DIR" --no-audit --no-fund --silent >/dev/null
[ -x "$DIR/venv/bin/python" ] || python3 -m venv "$DIR/venv"
"$DIR/venv/bin/pip" install --quiet --disable-pip-version-check -r crates/cordon/tests/mcp/requirements.txt
echo "export CORDON_TEST_MCP_EVERYTHING=$DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
echo "export CORDON_TEST_MCP_PYTHON=$DIR/venv/bin/python"
