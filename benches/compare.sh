#!/usr/bin/env bash
# Side-by-side: the release broker on a real disk, driven by `klamm producer-perf-test` and
# `klamm consumer-perf-test`, beside the machine's loopback TCP throughput (iperf3)
# measured in the same run. Prints records/s, MB/s and p99 for each case, the ratio to
# loopback, and the broker's CPU seconds per GiB (from /proc/<pid>/stat).
#
#   benches/compare.sh [records-1k] [records-100b]
#
# Data goes to $KLAMM_BENCH_DIR (default target/bench-data/compare), removed after.
set -euo pipefail
cd "$(dirname "$0")/.."
records_1k=${1:-1000000}
records_100=${2:-5000000}
dir=${KLAMM_BENCH_DIR:-target/bench-data}/compare
port=19192
command -v iperf3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3 >/dev/null
cargo build --release --quiet
klamm=target/release/klamm
rm -rf "$dir" && mkdir -p "$dir"

loopback=$(iperf3 -s -1 -p 19193 >/dev/null 2>&1 & sleep 0.5; iperf3 -c 127.0.0.1 -p 19193 -t 5 -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8 / 1e6)')

$klamm server --override listeners=PLAINTEXT://127.0.0.1:$port --override log.dirs="$dir/data" 2>"$dir/broker.log" &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$dir"' EXIT
sleep 1
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/$broker/stat; }

printf '%-34s %12s %10s %8s %12s %14s\n' case records/s MB/s p99_ms vs_loopback broker_cpu_s/GiB
run_produce() {
    local name=$1 topic=$2 n=$3 size=$4 acks=$5
    $klamm topics --bootstrap-server 127.0.0.1:$port --create --topic "$topic" --partitions 1 >/dev/null
    local before; before=$(cpu)
    local line; line=$($klamm producer-perf-test --topic "$topic" --num-records "$n" --record-size "$size" --throughput -1 \
        --producer-props bootstrap.servers=127.0.0.1:$port acks="$acks" batch.size=262144 linger.ms=5 | tail -1)
    local after; after=$(cpu)
    python3 - "$name" "$line" "$before" "$after" "$ticks" "$n" "$size" "$loopback" <<'PY'
import re, sys
name, line, before, after, ticks, n, size, loopback = sys.argv[1:]
rps = float(re.search(r"([\d.]+) records/sec", line).group(1))
mbs = float(re.search(r"\(([\d.]+) MB/sec\)", line).group(1)) * 1.048576
p99 = re.search(r"(\d+) ms 99th", line).group(1)
gib = int(n) * int(size) / 2**30
cpu = (int(after) - int(before)) / int(ticks)
print(f"{name:<34} {rps:>12.0f} {mbs:>10.1f} {p99:>8} {mbs / float(loopback):>12.2f} {cpu / gib:>14.2f}")
PY
}
run_consume() {
    local name=$1 topic=$2 n=$3 size=$4
    local before; before=$(cpu)
    local line; line=$($klamm consumer-perf-test --bootstrap-server 127.0.0.1:$port --topic "$topic" --messages "$n" --hide-header --timeout 10000)
    local after; after=$(cpu)
    python3 - "$name" "$line" "$before" "$after" "$ticks" "$n" "$size" "$loopback" <<'PY'
import sys
name, line, before, after, ticks, n, size, loopback = sys.argv[1:]
f = [x.strip() for x in line.split(",")]
mbs, rps = float(f[3]) * 1.048576, float(f[5])
gib = int(n) * int(size) / 2**30
cpu = (int(after) - int(before)) / int(ticks)
print(f"{name:<34} {rps:>12.0f} {mbs:>10.1f} {'-':>8} {mbs / float(loopback):>12.2f} {cpu / gib:>14.2f}")
PY
}
run_produce "produce 1 KiB acks=1" p1k "$records_1k" 1024 1
run_consume "consume 1 KiB" p1k "$records_1k" 1024
run_produce "produce 1 KiB acks=all" p1k-all "$records_1k" 1024 all
run_produce "produce 100 B acks=1" p100 "$records_100" 100 1
run_consume "consume 100 B" p100 "$records_100" 100
printf 'loopback TCP (iperf3, 1 stream, same run): %.0f MB/s\n' "$loopback"
