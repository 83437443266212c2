#!/usr/bin/env bash
# Runs each fuzz target for a bounded number of executions from a fixed libFuzzer seed, as
# CI does: the same inputs every run, so CI replays what was already explored and a new
# crash shows up first where someone fuzzes for longer (see fuzz/README.md).
# Usage: fuzz/run.sh [SCALE [SEED]]   (SCALE multiplies each target's run count)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-1}
seed=${2:-1}
export RUSTC_BOOTSTRAP=1   # cargo-fuzz needs nightly flags; the stable toolchain allows them so
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for spec in request_decoder:1000000 record_batch:1000000 client_response:1500000 group_coordinator:150000 log_recovery:15000 log_ops:35000 log_compaction:20000; do
    target=${spec%%:*}
    runs=$(( ${spec##*:} * scale ))
    start=$(date +%s)
    # A fresh, empty corpus each time: the same seed then gives the same inputs.
    mkdir -p "$corpus/$target"
    dict=()
    case $target in request_decoder | client_response) dict=(-dict=fuzz/protocol.dict) ;; esac
    # Seeds written by the test suite, which runs before this: real clients' requests
    # (tests/clients.rs) and valid batches of every codec (tests/fuzz_seeds.rs).
    seeds=()
    if [ -d "target/fuzz-seeds/$target" ]; then seeds=("target/fuzz-seeds/$target"); fi
    cargo fuzz run -O "$target" "$corpus/$target" "${seeds[@]}" -- -runs="$runs" -seed="$seed" -rss_limit_mb=2048 -max_len=4096 "${dict[@]}" 2>&1 |
        grep -A3 -E "^Done|panicked|SUMMARY|ERROR" || true
    # cargo fuzz exits non-zero on a crash; rerun the check on its status.
    if [ -n "$(ls fuzz/artifacts/"$target" 2>/dev/null)" ]; then
        echo "fuzz target $target crashed; artifacts in fuzz/artifacts/$target"
        # The input in hex, so that a crash on a CI machine reproduces anywhere.
        for crash in fuzz/artifacts/"$target"/*; do
            echo "$crash: $(od -An -v -tx1 "$crash" | tr -d ' \n' | head -c 8192)"
        done
        exit 1
    fi
    echo "fuzz target $target: $runs runs in $(( $(date +%s) - start ))s"
done
