#!/usr/bin/env bash
# Builds the simulator once per planted bug and checks that the swarm scenario (the groups
# scenario for group canaries) catches it within 1,000 seeds; prints how many seeds each
# took. Usage: sim/canaries.sh [NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
canaries=("$@")
if [ ${#canaries[@]} -eq 0 ]; then
    canaries=(ack-before-append ack-before-sync recovery-skips-crc index-off-by-one
              fetch-past-high-watermark retention-deletes-active-segment
              forget-producer-state accept-sequence-gap group-stale-commit
              group-double-assign)
fi
log=$(mktemp)
for canary in "${canaries[@]}"; do
    echo "::: canary $canary"
    status=0
    cargo sim --features "canary-$canary" --test canary >"$log" 2>&1 || status=$?
    # The seed that caught it printed its violations; show the verdict and the first few.
    grep -E "^klamm-sim: canary .*caught" "$log" || true
    grep -E "^    [a-z-]+:" "$log" | head -2 | cut -c1-240 || true
    if [ $status -ne 0 ]; then
        tail -20 "$log"
        echo "canary $canary was NOT caught"
        exit 1
    fi
done
rm -f "$log"
