#!/usr/bin/env python3
"""Prints each benchmark beside its baseline from the same run, as ratios: the log's
against the raw disk, the codec's against a copy of the same bytes.

Reads criterion's estimates under target/criterion after `cargo bench --bench log` and
`cargo bench --bench protocol`."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def throughput(group, bench):
    """Bytes per second, from the mean time per iteration and the bytes per iteration."""
    base = root / group / bench / "new"
    estimates = json.loads((base / "estimates.json").read_text())
    info = json.loads((base / "benchmark.json").read_text())
    nanos = estimates["mean"]["point_estimate"]
    return info["throughput"]["Bytes"] / (nanos / 1e9)


def find(group, prefix):
    matches = sorted(p for p in (root / group).glob(prefix + "*") if (p / "new").exists())
    if not matches:
        # criterion nests a BenchmarkId's parameter one directory down
        matches = sorted(p for p in (root / group).glob(prefix + "*/*") if (p / "new").exists())
    return str(matches[0].relative_to(root / group)) if matches else None


rows = [
    ("append", "log_page_cache_16k", "raw_write_16k", "page-cache append vs raw write (target >= 0.80)"),
    ("append", "log_durable_group_commit_16k", "log_page_cache_16k", "durable group commit (8 appenders) vs page-cache append (target >= 0.50)"),
    ("append", "log_durable_group_commit_16k", "raw_write_fdatasync_16k", "durable group commit (8 appenders) vs raw write+fdatasync per 16 KiB"),
    ("read", "log_read_1m", "raw_pread_1m", "sequential log read vs raw pread, 1 MiB"),
]
print(f"{'comparison':<78} {'MB/s':>9} {'base MB/s':>10} {'ratio':>6}")
for group, bench, base, label in rows:
    b, a = find(group, bench), find(group, base)
    if not b or not a:
        print(f"{label:<78} (missing)")
        continue
    t, u = throughput(group, b), throughput(group, a)
    print(f"{label:<78} {t / 1e6:>9.0f} {u / 1e6:>10.0f} {t / u:>6.2f}")
crc = find("validate", "crc32c_16k")
if crc:
    c = throughput("validate", crc)
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        v = find("validate", codec)
        if v:
            t = throughput("validate", v)
            print(f"{'validate 16 KiB batch, ' + codec + ' (vs CRC32C alone)':<78} {t / 1e6:>9.0f} {c / 1e6:>10.0f} {t / c:>6.2f}")
for group in ["produce_request", "fetch_request", "fetch_response"]:
    base = find(group, "copy_baseline")
    if not base:
        continue
    u = throughput(group, base)
    for op in ["decode", "encode"]:
        b = find(group, op)
        if b:
            t = throughput(group, b)
            print(f"{group + ' ' + b + ' (vs copying its bytes)':<78} {t / 1e6:>9.0f} {u / 1e6:>10.0f} {t / u:>6.2f}")
join = root / "group_coordinator" / "join_sync_round_3_members" / "new" / "estimates.json"
if join.exists():
    nanos = json.loads(join.read_text())["mean"]["point_estimate"]
    print(f"{'group coordinator: 3 members join and sync, one round':<78} {nanos / 1e3:>8.1f} us")
