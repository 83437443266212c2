//! Benchmarks of the partition log against a real directory on disk (not tmpfs), each beside
//! the raw disk doing the same work in the same run, so that figures read as ratios.
//!
//! `cargo bench --bench log`; then `python3 benches/ratios.py` prints the ratios.
//! The data directory is `KLAMM_BENCH_DIR` (default `target/bench-data`), removed after.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use klamm::config::LogConfig;
use klamm::io::RealStorage;
use klamm::log::{LogDirFailureChannel, OffsetIndex, UnifiedLog};
use klamm::record::{self, AppendOrigin, Compression, RecordBatchBuilder, ValidationLimits};

const BATCH_BYTES: usize = 16 * 1024;
const RECORD_BYTES: usize = 1024;
const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
const DURABLE_APPENDERS: usize = 8;

fn bench_dir(name: &str) -> PathBuf {
    let root = std::env::var("KLAMM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target/bench-data"));
    let dir = root.join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("bench dir");
    dir
}

/// Record values that compress about as well as JSON events do.
fn value(i: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(RECORD_BYTES);
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    while v.len() < RECORD_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let word = ["user", "event", "click", "view", "session", "page"][(x % 6) as usize];
        v.extend_from_slice(format!("{{\"{word}\":{}}},", x % 10_000).as_bytes());
    }
    v.truncate(RECORD_BYTES);
    v
}

/// A batch of 1 KiB records, about 16 KiB before compression.
fn batch(codec: Compression) -> BytesMut {
    let mut b = RecordBatchBuilder::new(codec);
    let mut i = 0;
    while b.records_bytes() + RECORD_BYTES + 16 <= BATCH_BYTES - 61 {
        b.append(
            1_700_000_000_000,
            Some(format!("key-{i}").as_bytes()),
            Some(&value(i)),
            &[],
        );
        i += 1;
    }
    b.build()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn config(durable: bool) -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        flush_messages: if durable { 1 } else { i64::MAX },
        message_timestamp_after_max_ms: i64::MAX,
        message_timestamp_before_max_ms: i64::MAX,
        ..LogConfig::default()
    }
}

async fn open_log(dir: &Path, durable: bool) -> UnifiedLog<RealStorage> {
    UnifiedLog::open(
        RealStorage::new(dir),
        Path::new("t-0"),
        config(durable),
        LogDirFailureChannel::new(),
        0,
    )
    .await
    .expect("open")
}

/// Writes like the log does (sequential appends, a new file every segment) with no log.
struct RawWriter {
    dir: PathBuf,
    file: fs::File,
    written: u64,
    files: u64,
}

impl RawWriter {
    fn new(dir: PathBuf) -> RawWriter {
        let file = fs::File::create(dir.join("raw-0")).expect("raw file");
        RawWriter {
            dir,
            file,
            written: 0,
            files: 0,
        }
    }

    fn write(&mut self, data: &[u8], sync: bool) {
        if self.written + data.len() as u64 > SEGMENT_BYTES {
            self.files += 1;
            self.file = fs::File::create(self.dir.join(format!("raw-{}", self.files))).expect("raw file");
            self.written = 0;
        }
        self.file.write_all(data).expect("raw write");
        if sync {
            self.file.sync_data().expect("raw fdatasync");
        }
        self.written += data.len() as u64;
    }
}

fn append(c: &mut Criterion) {
    let payload = batch(Compression::None);
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    {
        let mut raw = RawWriter::new(bench_dir("raw-write"));
        group.bench_function("raw_write_16k", |b| b.iter(|| raw.write(&payload, false)));
    }
    {
        let rt = runtime();
        let dir = bench_dir("log-page-cache");
        let log = rt.block_on(open_log(&dir, false));
        group.bench_function("log_page_cache_16k", |b| {
            b.iter_custom(|iters| {
                // The request buffers exist before the log sees them (the network read
                // them), as the raw writer's data does: make them outside the timing.
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(1024);
                    left -= n;
                    let requests: Vec<BytesMut> = (0..n).map(|_| payload.clone()).collect();
                    elapsed += rt.block_on(async {
                        let start = Instant::now();
                        for request in requests {
                            log.append_as_leader(request, 0, AppendOrigin::Client, 0)
                                .await
                                .expect("append");
                        }
                        start.elapsed()
                    });
                }
                elapsed
            })
        });
    }
    {
        let mut raw = RawWriter::new(bench_dir("raw-write-sync"));
        group.bench_function("raw_write_fdatasync_16k", |b| b.iter(|| raw.write(&payload, true)));
    }
    group.throughput(Throughput::Bytes((payload.len() * DURABLE_APPENDERS) as u64));
    {
        let rt = runtime();
        let dir = bench_dir("log-durable");
        let log = Arc::new(rt.block_on(open_log(&dir, true)));
        group.bench_function(
            BenchmarkId::new("log_durable_group_commit_16k", format!("{DURABLE_APPENDERS}_appenders")),
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..DURABLE_APPENDERS)
                            .map(|_| {
                                let (log, payload) = (log.clone(), payload.clone());
                                tokio::spawn(async move {
                                    for _ in 0..iters {
                                        log.append_as_leader(payload.clone(), 0, AppendOrigin::Client, 0)
                                            .await
                                            .expect("append");
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("appender");
                        }
                        start.elapsed()
                    })
                })
            },
        );
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    const READ_BYTES: usize = 1024 * 1024;
    const LOG_BYTES: usize = 256 * 1024 * 1024;
    let payload = batch(Compression::None);
    let rt = runtime();
    let dir = bench_dir("read");
    let log = rt.block_on(open_log(&dir, false));
    let batches = LOG_BYTES / payload.len();
    let mut raw = RawWriter::new(dir.join("t-0").to_path_buf());
    rt.block_on(async {
        for _ in 0..batches {
            log.append_as_leader(payload.clone(), 0, AppendOrigin::Client, 0)
                .await
                .expect("append");
        }
    });
    for _ in 0..batches {
        raw.write(&payload, false);
    }
    let raw_file = fs::File::open(dir.join("t-0").join("raw-0")).expect("raw");
    let end = rt.block_on(log.log_end_offset());
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(READ_BYTES as u64));
    let mut position = 0u64;
    let mut buf = vec![0u8; READ_BYTES];
    group.bench_function("raw_pread_1m", |b| {
        b.iter(|| {
            let n = raw_file.read_at(&mut buf, position).expect("pread");
            position = if n < READ_BYTES { 0 } else { position + n as u64 };
        })
    });
    let mut offset = 0;
    group.bench_function("log_read_1m", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let info = log.read(offset, READ_BYTES, None, true).await.expect("read");
                    offset = info
                        .batches
                        .last()
                        .map(|h| h.next_offset())
                        .filter(|&o| o < end)
                        .unwrap_or(0);
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("lookup");
    let mut probe = 1u64;
    group.bench_function("log_find_one_batch", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    probe = probe
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let target = (probe >> 33) as i64 % end;
                    let info = log.read(target, 1, None, true).await.expect("read");
                    assert!(info.batches[0].base_offset <= target);
                }
                start.elapsed()
            })
        })
    });
    let mut index = OffsetIndex::default();
    for i in 0..100_000u32 {
        index.append(i * 16, i * 4096);
    }
    group.bench_function("offset_index_100k_entries", |b| {
        b.iter(|| {
            probe = probe
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            criterion::black_box(index.lookup((probe >> 40) as u32 % 1_600_000))
        })
    });
    group.finish();
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    let limits = ValidationLimits {
        decompressed_bytes_max: 1 << 24,
    };
    let plain = batch(Compression::None);
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.bench_function("crc32c_16k", |b| {
        b.iter(|| criterion::black_box(crc32c::crc32c(&plain)))
    });
    for codec in Compression::ALL {
        let bytes = batch(codec);
        let mut scratch = Vec::new();
        group.bench_function(codec.name(), |b| {
            b.iter(|| record::validate_batch(&bytes, AppendOrigin::Client, &limits, &mut scratch).expect("valid"))
        });
    }
    group.finish();
}

fn cleanup(_: &mut Criterion) {
    let root = std::env::var("KLAMM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target/bench-data"));
    let _ = fs::remove_dir_all(root);
    let _ = std::io::stdout().flush();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = validate, append, read, cleanup
}
criterion_main!(benches);
