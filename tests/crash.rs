//! Crash tests of the partition log on the simulated disk: for each seed, concurrent
//! appenders run against a log whose disk tears, slows and loses unsynced writes; the
//! process or the machine crashes at a random point; the log is reopened and checked.
//!
//! Checks, after reopening:
//! - the log is a prefix of what was appended before the crash (inconsistent-offsets,
//!   duplicate, and per-appender order);
//! - nothing that had to survive is missing (lost-write): after a process crash every
//!   acknowledged record; after a machine crash every acknowledged record in durable mode,
//!   and every record below the flushed offset in page-cache mode;
//! - every batch served has a valid CRC (the read path checks; a failure is an error here);
//! - the indexes agree with the data: a read at each offset lands on the batch holding it,
//!   and a timestamp lookup agrees with a scan;
//! - recovering twice gives the same log.
//!
//! `KLAMM_SEED=<n>` picks the first seed and `KLAMM_SEEDS=<count>` how many run (2,000 by
//! default). A failure prints the command that reruns its seed alone.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{read_all, run, seeds_from_env, Entry};
use klamm::config::LogConfig;
use klamm::error::ErrorCode;
use klamm::io::{CrashKind, DiskFaults, SimRng, SimStorage};
use klamm::log::{LogDirFailureChannel, UnifiedLog};
use klamm::record::{AppendOrigin, Compression, RecordBatchBuilder};

#[derive(Debug)]
struct Scenario {
    seed: u64,
    crash: CrashKind,
    config: LogConfig,
    faults: DiskFaults,
    appenders: u64,
    batches_per_appender: u64,
    codec: Compression,
    yields_before_crash: u64,
}

impl Scenario {
    /// Swarm testing: each seed draws its own configuration and faults.
    fn draw(seed: u64) -> Scenario {
        let mut rng = SimRng::new(seed ^ 0x6b6c_616d_6d00);
        let crash = if rng.chance(0.5) {
            CrashKind::Machine
        } else {
            CrashKind::Process
        };
        let flush_messages = match rng.below(3) {
            0 => 1,
            1 => 1 + rng.below(8) as i64,
            _ => i64::MAX,
        };
        let config = LogConfig {
            segment_bytes: 300 + rng.below(3000),
            index_interval_bytes: 1 + rng.below(600),
            flush_messages,
            message_timestamp_after_max_ms: i64::MAX,
            segment_files_open_max: 1 + rng.below(4) as usize,
            ..LogConfig::default()
        };
        // A third of the seeds also fail writes and syncs (fsyncgate): the log must go
        // offline and never acknowledge what a failed sync dropped.
        let eio = if rng.chance(0.33) {
            rng.below(5) as f64 / 100.0
        } else {
            0.0
        };
        let faults = DiskFaults {
            write_eio_probability: eio,
            sync_eio_probability: eio,
            torn_write_probability: if rng.chance(0.7) {
                1.0
            } else {
                rng.below(100) as f64 / 100.0
            },
            writeback_probability: rng.below(60) as f64 / 100.0,
            sector_bytes: [64, 512, 4096][rng.below(3) as usize],
            slow_probability: if rng.chance(0.5) {
                rng.below(50) as f64 / 100.0
            } else {
                0.0
            },
            slow_latency: Duration::from_micros(100 + rng.below(5000)),
            ..DiskFaults::none()
        };
        let codec = Compression::ALL[rng.below(5) as usize];
        Scenario {
            seed,
            crash,
            config,
            faults,
            appenders: 1 + rng.below(4),
            batches_per_appender: 1 + rng.below(25),
            codec,
            yields_before_crash: rng.below(300),
        }
    }
}

/// A unique value, padded so that batches span several sectors and torn writes leave holes.
fn value(appender: u64, batch: u64, record: u64) -> String {
    let pad = (appender * 7 + batch * 13 + record * 29) % 300;
    format!("a{appender}-b{batch}-r{record}-{}", ".".repeat(pad as usize))
}

#[derive(Default)]
struct History {
    /// offset -> value, for acknowledged appends.
    acked: BTreeMap<i64, String>,
    attempted: HashSet<String>,
}

async fn check_seed(s: &Scenario) -> Result<(), String> {
    let dir = Path::new("topic-0");
    let disk = SimStorage::new(s.seed, DiskFaults::none());
    let log = Arc::new(
        UnifiedLog::open(disk.clone(), dir, s.config.clone(), LogDirFailureChannel::new(), 0)
            .await
            .map_err(|e| e.to_string())?,
    );
    disk.set_faults(s.faults.clone());
    let history = Arc::new(Mutex::new(History::default()));
    let mut tasks = Vec::new();
    for appender in 0..s.appenders {
        let (log, history, batches, codec) = (log.clone(), history.clone(), s.batches_per_appender, s.codec);
        tasks.push(tokio::spawn(async move {
            for batch in 0..batches {
                let mut builder = RecordBatchBuilder::new(codec);
                let records = 1 + (appender + batch) % 3;
                let mut values = Vec::new();
                for r in 0..records {
                    let v = value(appender, batch, r);
                    builder.append(
                        (batch * 10 + r) as i64,
                        None,
                        Some(v.as_bytes()),
                        &[("k", Some(b"x")), ("k", None)],
                    );
                    values.push(v);
                }
                history.lock().unwrap().attempted.extend(values.iter().cloned());
                let info = match log.append_as_leader(builder.build(), 1, AppendOrigin::Client, 0).await {
                    Ok(info) => info,
                    Err(e) if e.code == ErrorCode::KafkaStorageError => return,
                    Err(e) => panic!("append failed with {e}"),
                };
                let mut h = history.lock().unwrap();
                for (i, v) in values.into_iter().enumerate() {
                    h.acked.insert(info.first_offset + i as i64, v);
                }
            }
        }));
    }
    for _ in 0..s.yields_before_crash {
        tokio::task::yield_now().await;
    }
    // What the log held just before the crash, read with slow operations off so that the
    // appenders cannot run in the middle of the read.
    disk.set_faults(DiskFaults {
        slow_probability: 0.0,
        read_eio_probability: 0.0,
        write_eio_probability: 0.0,
        sync_eio_probability: 0.0,
        ..s.faults.clone()
    });
    // An offline log answers nothing; its on-disk state is still checked after the crash.
    let before: Vec<Entry> = read_all(&log).await.unwrap_or_default();
    let flushed = log.flushed_offset();
    let (acked, attempted) = {
        let h = history.lock().unwrap();
        (h.acked.clone(), h.attempted.clone())
    };
    disk.crash(s.crash);
    for task in &tasks {
        task.abort();
    }
    drop(log);
    for task in tasks {
        let _ = task.await;
    }

    disk.set_faults(DiskFaults::none());
    let log = UnifiedLog::open(disk.clone(), dir, s.config.clone(), LogDirFailureChannel::new(), 0)
        .await
        .map_err(|e| format!("reopen: {e}"))?;
    let after = read_all(&log).await?;
    check_prefix(&before, &after, &acked, &attempted)?;
    let must_survive: Vec<(&i64, &String)> = match s.crash {
        CrashKind::Process => acked.iter().collect(),
        CrashKind::Machine if s.config.durable() => acked.iter().collect(),
        CrashKind::Machine => acked.iter().filter(|(o, _)| **o < flushed).collect(),
    };
    let by_offset: HashMap<i64, &String> = after.iter().map(|e| (e.offset, &e.value)).collect();
    for (offset, v) in must_survive {
        if by_offset.get(offset) != Some(&v) {
            return Err(format!(
                "lost-write: {v} acknowledged at offset {offset} (flushed offset {flushed}) is missing"
            ));
        }
    }
    check_indexes(&log, &after).await?;
    // Recovering twice gives the same log, after either kind of crash.
    drop(log);
    for kind in [CrashKind::Process, CrashKind::Machine] {
        disk.crash(kind);
        let again = UnifiedLog::open(disk.clone(), dir, s.config.clone(), LogDirFailureChannel::new(), 0)
            .await
            .map_err(|e| format!("reopen: {e}"))?;
        let records = read_all(&again).await?;
        if records != after {
            return Err(format!(
                "recovering again after a {kind:?} crash changed the log: {} records, then {}",
                after.len(),
                records.len()
            ));
        }
    }
    Ok(())
}

/// The recovered log is a prefix of the log before the crash, and every record in it was
/// appended once, at the offset it was acknowledged at.
fn check_prefix(
    before: &[Entry],
    after: &[Entry],
    acked: &BTreeMap<i64, String>,
    attempted: &HashSet<String>,
) -> Result<(), String> {
    let mut seen = HashSet::new();
    for (i, entry) in after.iter().enumerate() {
        if entry.offset != i as i64 {
            return Err(format!("offsets are not dense: {} at position {i}", entry.offset));
        }
        if let Some(b) = before.get(i) {
            if b != entry {
                return Err(format!(
                    "inconsistent-offsets: offset {} held {:?} before the crash and {:?} after",
                    entry.offset, b, entry
                ));
            }
        }
        if let Some(v) = acked.get(&entry.offset) {
            if *v != entry.value {
                return Err(format!(
                    "inconsistent-offsets: {v} acknowledged at {}, found {}",
                    entry.offset, entry.value
                ));
            }
        }
        if !attempted.contains(&entry.value) {
            return Err(format!(
                "offset {} holds {}, which nobody appended",
                entry.offset, entry.value
            ));
        }
        if !seen.insert(entry.value.clone()) {
            return Err(format!("duplicate: {} appears twice", entry.value));
        }
    }
    Ok(())
}

/// A read at each offset lands on the batch that holds it; timestamp lookups agree with a
/// scan of the records.
async fn check_indexes(log: &UnifiedLog<SimStorage>, records: &[Entry]) -> Result<(), String> {
    for entry in records {
        let info = log
            .read(entry.offset, 1, None, true)
            .await
            .map_err(|e| format!("read at {}: {e}", entry.offset))?;
        let first = info
            .batches
            .first()
            .ok_or(format!("read at {} found nothing", entry.offset))?;
        if first.base_offset > entry.offset || first.last_offset() < entry.offset {
            return Err(format!(
                "read at {} returned batch {}..={}",
                entry.offset,
                first.base_offset,
                first.last_offset()
            ));
        }
    }
    for target in [0, 5, 10, 41, 100, 250, 1000] {
        let want = records
            .iter()
            .find(|e| e.timestamp >= target)
            .map(|e| (e.offset, e.timestamp));
        let got = log.fetch_offset_by_timestamp(target).await.map_err(|e| e.to_string())?;
        if got != want {
            return Err(format!(
                "offset for timestamp {target}: index says {got:?}, scan says {want:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn crash_seeds() {
    let (first, count) = seeds_from_env(2_000);
    for seed in first..first + count {
        let scenario = Scenario::draw(seed);
        let result = std::panic::catch_unwind(|| run(check_seed(&scenario)));
        let failure = match result {
            Ok(Ok(())) => continue,
            Ok(Err(why)) => why,
            Err(panic) => format!("panic: {}", common::panic_message(&panic)),
        };
        panic!(
            "crash test failed at seed {seed}: {failure}\n  scenario: {scenario:?}\n  reproduce: KLAMM_SEED={seed} KLAMM_SEEDS=1 cargo test --release --test crash -- --nocapture"
        );
    }
    println!("crash_seeds: {count} seeds from {first} passed");
}
