//! Append throughput of the log against the raw disk, interleaved round by round so that
//! both see the same page-cache and writeback conditions (on this VM, fresh page-cache
//! pages come from the host and dirty-page writeback throttles writers, which moves both
//! figures by several times between runs). Prints the median ratio of each pair.
//!
//! `cargo bench --bench append_ratio`. Data goes to `KLAMM_BENCH_DIR` (default
//! `target/bench-data`) and is removed after.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use klamm::config::LogConfig;
use klamm::io::RealStorage;
use klamm::log::{LogDirFailureChannel, UnifiedLog};
use klamm::record::{AppendOrigin, Compression, RecordBatchBuilder};

const BATCH_BYTES: usize = 16 * 1024;
const ROUND_BYTES: usize = 64 * 1024 * 1024;
const DURABLE_ROUND_BYTES: usize = 8 * 1024 * 1024;
const ROUNDS: usize = 9;
const APPENDERS: usize = 8;
/// Group commit scales with the appends waiting on one sync; this shows how far.
const APPENDERS_WIDE: usize = 64;
const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;

fn batch() -> BytesMut {
    let mut b = RecordBatchBuilder::new(Compression::None);
    let value = vec![b'x'; 1024];
    let mut i = 0;
    while b.records_bytes() + 1024 + 16 <= BATCH_BYTES - 61 {
        b.append(0, Some(format!("key-{i}").as_bytes()), Some(&value), &[]);
        i += 1;
    }
    b.build()
}

fn config(durable: bool) -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        flush_messages: if durable { 1 } else { i64::MAX },
        message_timestamp_after_max_ms: i64::MAX,
        ..LogConfig::default()
    }
}

struct Raw {
    dir: PathBuf,
    file: fs::File,
    written: u64,
    files: u64,
}

impl Raw {
    fn new(dir: &Path) -> Raw {
        Raw {
            dir: dir.to_path_buf(),
            file: fs::File::create(dir.join("raw-0")).unwrap(),
            written: 0,
            files: 0,
        }
    }

    fn write(&mut self, data: &[u8], sync: bool) {
        if self.written + data.len() as u64 > SEGMENT_BYTES {
            self.files += 1;
            self.file = fs::File::create(self.dir.join(format!("raw-{}", self.files))).unwrap();
            self.written = 0;
        }
        self.file.write_all(data).unwrap();
        if sync {
            self.file.sync_data().unwrap();
        }
        self.written += data.len() as u64;
    }
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn report(name: &str, base_name: &str, pairs: &[(f64, f64)]) {
    let ratios: Vec<f64> = pairs.iter().map(|(a, b)| a / b).collect();
    println!(
        "{name:<44} median {:>7.0} MB/s   {base_name:<30} median {:>7.0} MB/s   ratio median {:.2} (min {:.2}, max {:.2})",
        median(pairs.iter().map(|p| p.0).collect()),
        median(pairs.iter().map(|p| p.1).collect()),
        median(ratios.clone()),
        ratios.iter().cloned().fold(f64::MAX, f64::min),
        ratios.iter().cloned().fold(0.0, f64::max),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches lists benches; nothing to list here
    }
    let root = std::env::var("KLAMM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target/bench-data"))
        .join("append-ratio");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let payload = batch();
    let batches = ROUND_BYTES / payload.len();
    let storage = RealStorage::new(&root);
    let log = Arc::new(
        rt.block_on(UnifiedLog::open(
            storage.clone(),
            Path::new("page-cache"),
            config(false),
            LogDirFailureChannel::new(),
            0,
        ))
        .unwrap(),
    );
    let durable = Arc::new(
        rt.block_on(UnifiedLog::open(
            storage,
            Path::new("durable"),
            config(true),
            LogDirFailureChannel::new(),
            0,
        ))
        .unwrap(),
    );
    let mut raw = Raw::new(&root);

    let mut page_cache = Vec::new();
    let mut group_commit = Vec::new();
    let mut group_commit_wide = Vec::new();
    let mut raw_sync = Vec::new();
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always meets the other's dirty pages.
        let mut log_figure = 0.0;
        let mut raw_figure = 0.0;
        for turn in 0..2 {
            if (turn + round) % 2 == 0 {
                let requests: Vec<BytesMut> = (0..batches).map(|_| payload.clone()).collect();
                let start = Instant::now();
                for request in &requests {
                    raw.write(request, false);
                }
                raw_figure = mb_per_s(batches * payload.len(), start.elapsed());
            } else {
                // The request buffers exist before the log sees them (the network read
                // them); the raw writer writes from the same kind of buffers.
                let requests: Vec<BytesMut> = (0..batches).map(|_| payload.clone()).collect();
                let start = Instant::now();
                rt.block_on(async {
                    for request in requests {
                        log.append_as_leader(request, 0, AppendOrigin::Client, 0).await.unwrap();
                    }
                });
                log_figure = mb_per_s(batches * payload.len(), start.elapsed());
            }
        }
        page_cache.push((log_figure, raw_figure));

        let durable_figure = durable_round(&rt, &durable, &payload, APPENDERS);
        group_commit.push((durable_figure, log_figure));
        group_commit_wide.push((durable_round(&rt, &durable, &payload, APPENDERS_WIDE), log_figure));
        let sync_batches = DURABLE_ROUND_BYTES / payload.len() / APPENDERS;
        let start = Instant::now();
        for _ in 0..sync_batches {
            raw.write(&payload, true);
        }
        raw_sync.push((durable_figure, mb_per_s(sync_batches * payload.len(), start.elapsed())));
    }
    println!(
        "{ROUNDS} rounds; {} MiB per page-cache round, {} MiB per durable round, 16 KiB batches of 1 KiB records",
        ROUND_BYTES >> 20,
        DURABLE_ROUND_BYTES >> 20
    );
    report("log append, page cache", "raw write", &page_cache);
    report(
        &format!("log append, durable, {APPENDERS} appenders"),
        "log append, page cache",
        &group_commit,
    );
    report(
        &format!("log append, durable, {APPENDERS_WIDE} appenders"),
        "log append, page cache",
        &group_commit_wide,
    );
    report(
        &format!("log append, durable, {APPENDERS} appenders"),
        "raw write + fdatasync each",
        &raw_sync,
    );
    drop(log);
    drop(durable);
    let _ = fs::remove_dir_all(&root);
}

/// Durable appends of one round's bytes by `appenders` concurrent appenders, in MB/s.
fn durable_round(
    rt: &tokio::runtime::Runtime,
    durable: &Arc<UnifiedLog<RealStorage>>,
    payload: &BytesMut,
    appenders: usize,
) -> f64 {
    let per_appender = DURABLE_ROUND_BYTES / payload.len() / appenders;
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..appenders)
            .map(|_| {
                let (log, payload) = (durable.clone(), payload.clone());
                tokio::spawn(async move {
                    for _ in 0..per_appender {
                        log.append_as_leader(payload.clone(), 0, AppendOrigin::Client, 0)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    mb_per_s(per_appender * appenders * payload.len(), start.elapsed())
}
