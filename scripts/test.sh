#!/usr/bin/env bash
# The whole test suite: formatting, lints, Rust tests, then the interop tests that drive the real
# `junction` binary with Autobahn|Python, Autobahn|JS and xconn. Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test (unit, in-process, transport, durability, bench smoke)"
mkdir -p target
# The bench smoke test drives the real binary.
cargo build --quiet -p junction --bin junction
cargo test --workspace --quiet 2>&1 | tee target/cargo-test.log
# cargo prints one result line per test binary; show the total once.
awk '/^test result:/ { p += $4; f += $6 } END { printf "cargo: %d passed, %d failed\n", p, f }' target/cargo-test.log

step "interop tests with real WAMP clients"
scripts/test-interop.sh

if command -v cargo-fuzz >/dev/null; then
  step "fuzz smoke (${FUZZ_SECONDS:-10}s per target)"
  scripts/fuzz-smoke.sh
else
  step "fuzz smoke skipped: cargo-fuzz is not installed (cargo install cargo-fuzz)"
fi
