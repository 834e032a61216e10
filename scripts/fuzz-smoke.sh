#!/usr/bin/env bash
# A short run of every fuzz target (default 10 s each), seeded with the committed corpora.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); nightly features come from RUSTC_BOOTSTRAP, so
# the stable toolchain is enough. New inputs and failing inputs go to fuzz/target/smoke/ (not
# to fuzz/corpus, so a test run leaves the tree clean); merge worthwhile ones with
# `cargo fuzz cmin`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-10}
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for target in $(cargo fuzz list); do
  scratch="target/smoke/$target"
  rm -rf "$scratch" && mkdir -p "$scratch/new" "$scratch/artifacts"
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run -O "$target" "$scratch/new" "corpus/$target" -- \
    -artifact_prefix="$scratch/artifacts/" -max_total_time="$seconds" -max_len=4096 \
    -print_final_stats=0 2>&1 \
    | grep -E '^(Done|INFO: (Loaded|seed corpus)|==.*ERROR|SUMMARY)' || true
  # libFuzzer exits non-zero on a crash; pipefail would hide it behind grep, so check artifacts.
  if [ -n "$(ls -A "$scratch/artifacts")" ]; then
    echo "fuzz: $target found a failing input:" "$scratch"/artifacts/* >&2
    exit 1
  fi
done
echo "fuzz: no crash"
