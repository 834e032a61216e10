#!/usr/bin/env bash
# A short run of every fuzz target (default 10 s each), starting from the committed corpora.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); nightly features come from RUSTC_BOOTSTRAP, so
# the stable toolchain is enough. New interesting inputs are left in fuzz/corpus for review.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-10}
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for target in $(cargo fuzz list); do
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run -O "$target" -- -max_total_time="$seconds" -max_len=4096 -print_final_stats=0 2>&1 \
    | grep -E '^(Done|INFO: (Loaded|seed corpus)|==.*ERROR|SUMMARY)' || true
  # libFuzzer exits non-zero on a crash; pipefail would hide it behind grep, so check artifacts.
  if ls "artifacts/$target"/crash-* "artifacts/$target"/oom-* "artifacts/$target"/timeout-* >/dev/null 2>&1; then
    echo "fuzz: $target found a failing input:" artifacts/"$target"/* >&2
    exit 1
  fi
done
echo "fuzz: no crash"
