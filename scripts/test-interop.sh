#!/usr/bin/env bash
# End-to-end interop tests of the junction router with real WAMP clients:
#   tests/interop/python  Autobahn|Python, xconn and hand-written frames (pytest)
#   tests/interop/js      Autobahn|JS (node --test)
# Run from anywhere; works in the repository root. Needs python3 (3.11+), node (20+), npm, cargo.
#
# Environment:
#   JUNCTION_INTEROP_SKIP_BUILD=1  use the existing target/debug/junction instead of building it
#   PYTEST_ADDOPTS / NODE_OPTIONS  passed through to the test runners as usual
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY_TESTS=tests/interop/python
JS_TESTS=tests/interop/js

echo "== interop: Python environment ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PY_TESTS/requirements.txt"

echo "== interop: JavaScript dependencies ($JS_TESTS)"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  # Debian 12 ships Node 18; the npm registry carries Node 20 itself (package `node`).
  echo "node 20+ not found (have: $(node --version 2>/dev/null || echo none)); installing node@20 into .tools/"
  npm install --prefix "$ROOT/.tools" --no-audit --no-fund --loglevel=error node@20.9.0
  export PATH=$ROOT/.tools/node_modules/.bin:$PATH
  node --version
fi
# npm ci when node_modules is missing or older than the lock file.
if [ ! -f "$JS_TESTS/node_modules/.package-lock.json" ] \
  || [ "$JS_TESTS/package-lock.json" -nt "$JS_TESTS/node_modules/.package-lock.json" ]; then
  (cd "$JS_TESTS" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "${JUNCTION_INTEROP_SKIP_BUILD:-0}" != "1" ]; then
  echo "== interop: building junction"
  cargo build -p junction --bin junction
fi
export JUNCTION_BIN=$ROOT/target/debug/junction
if [ ! -x "$JUNCTION_BIN" ]; then
  echo "junction binary not found at $JUNCTION_BIN" >&2
  exit 1
fi

status=0

echo "== interop: Python suite"
"$VENV/bin/python" -m pytest -q "$PY_TESTS" || status=1

echo "== interop: JavaScript suite"
node --test "$JS_TESTS/" || status=1

if [ "$status" -ne 0 ]; then
  echo "== interop: FAILED" >&2
else
  echo "== interop: all suites passed"
fi
exit "$status"
