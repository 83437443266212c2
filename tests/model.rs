//! Model test: any sequence of appends, reads, rolls, retention, DeleteRecords,
//! truncation, reopens and process crashes agrees with a plain in-memory model of the log.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{read_all, run, Entry};
use klamm::config::LogConfig;
use klamm::io::{CrashKind, DiskFaults, SimStorage, StorageFile};
use klamm::log::{LogDirFailureChannel, UnifiedLog};
use klamm::record::{AppendOrigin, Compression, RecordBatchBuilder};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append { records: u8, timestamp: u16, codec: u8 },
    Read { pick: u16, max_bytes: u16 },
    Roll,
    AdvanceHighWatermark,
    Retention { advance_ms: u16 },
    DeleteRecords { pick: u16 },
    Truncate { pick: u16 },
    FindTimestamp { timestamp: u16 },
    Reopen,
    CrashProcess,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..5, 0u16..2000, 0u8..5).prop_map(|(records, timestamp, codec)| Op::Append { records, timestamp, codec }),
        3 => (any::<u16>(), 1u16..2000).prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        1 => Just(Op::Roll),
        2 => Just(Op::AdvanceHighWatermark),
        1 => (0u16..3000).prop_map(|advance_ms| Op::Retention { advance_ms }),
        1 => any::<u16>().prop_map(|pick| Op::DeleteRecords { pick }),
        1 => any::<u16>().prop_map(|pick| Op::Truncate { pick }),
        2 => (0u16..2100).prop_map(|timestamp| Op::FindTimestamp { timestamp }),
        1 => Just(Op::Reopen),
        1 => Just(Op::CrashProcess),
    ]
}

#[derive(Default)]
struct Model {
    records: BTreeMap<i64, Entry>,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    now_ms: i64,
    next_value: u64,
}

impl Model {
    /// An offset in [start, end], chosen by `pick`.
    fn pick(&self, pick: u16, upper: i64) -> i64 {
        let span = (upper - self.log_start_offset + 1).max(1);
        self.log_start_offset + pick as i64 % span
    }
}

const RETENTION_MS: i64 = 1000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 100,
        retention_ms: RETENTION_MS,
        message_timestamp_after_max_ms: i64::MAX,
        message_timestamp_before_max_ms: i64::MAX,
        ..LogConfig::default()
    }
}

async fn open(disk: &SimStorage, now_ms: i64) -> UnifiedLog<SimStorage> {
    UnifiedLog::open(
        disk.clone(),
        Path::new("m-0"),
        config(),
        LogDirFailureChannel::new(),
        now_ms,
    )
    .await
    .expect("open")
}

async fn check(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let disk = SimStorage::new(0, DiskFaults::none());
    let mut log = open(&disk, 0).await;
    let mut m = Model::default();
    for op in ops {
        match op {
            Op::Append {
                records,
                timestamp,
                codec,
            } => {
                let mut builder = RecordBatchBuilder::new(Compression::ALL[codec as usize]);
                let mut entries = Vec::new();
                for i in 0..records {
                    let ts = timestamp as i64 + i as i64;
                    let value = format!("v{}", m.next_value);
                    m.next_value += 1;
                    builder.append(ts, None, Some(value.as_bytes()), &[]);
                    entries.push((ts, value));
                }
                let info = log
                    .append_as_leader(builder.build(), 0, AppendOrigin::Client, m.now_ms)
                    .await
                    .unwrap();
                prop_assert_eq!(info.first_offset, m.log_end_offset);
                for (ts, value) in entries {
                    m.records.insert(
                        m.log_end_offset,
                        Entry {
                            offset: m.log_end_offset,
                            timestamp: ts,
                            value,
                        },
                    );
                    m.log_end_offset += 1;
                }
            }
            Op::Read { pick, max_bytes } => {
                let offset = m.pick(pick, m.log_end_offset);
                let info = log.read(offset, max_bytes as usize, None, true).await.unwrap();
                if offset < m.log_end_offset {
                    prop_assert!(!info.batches.is_empty());
                    let first = info.batches[0];
                    prop_assert!(first.base_offset <= offset && offset <= first.last_offset());
                    prop_assert!(info.records.len() <= (max_bytes as usize).max(first.size()));
                } else {
                    prop_assert!(info.batches.is_empty());
                }
                // The zero-copy read finds the same batches at the same place in the file,
                // reading only their headers.
                let range = log.read_range(offset, max_bytes as usize, None, true).await.unwrap();
                prop_assert_eq!(&range.batches, &info.batches);
                prop_assert_eq!(
                    (range.segment_base_offset, range.position),
                    (info.segment_base_offset, info.position)
                );
                prop_assert_eq!(range.size, info.records.len());
                prop_assert_eq!(info.size, info.records.len());
                prop_assert!(range.records.is_empty());
                if let Some(file) = &range.file {
                    prop_assert_eq!(
                        file.read_at(range.position, range.size).await.unwrap(),
                        info.records.clone()
                    );
                }
            }
            Op::Roll => log.roll_now().await.unwrap(),
            Op::AdvanceHighWatermark => {
                m.high_watermark = log.update_high_watermark(m.log_end_offset).await;
                prop_assert_eq!(m.high_watermark, m.log_end_offset);
            }
            Op::Retention { advance_ms } => {
                m.now_ms += advance_ms as i64;
                log.delete_old_segments(m.now_ms).await.unwrap();
                let start = log.log_start_offset().await;
                prop_assert!(start >= m.log_start_offset && start <= m.high_watermark.max(m.log_start_offset));
                for (offset, entry) in m.records.range(..start) {
                    prop_assert!(
                        m.now_ms - entry.timestamp > RETENTION_MS,
                        "offset {} at {} deleted at {}",
                        offset,
                        entry.timestamp,
                        m.now_ms
                    );
                }
                m.log_start_offset = start;
                m.records = m.records.split_off(&start);
            }
            Op::DeleteRecords { pick } => {
                let offset = m.pick(pick, m.high_watermark.max(m.log_start_offset));
                let start = log.delete_records_before(offset).await.unwrap();
                prop_assert_eq!(start, offset.max(m.log_start_offset));
                m.log_start_offset = start;
                m.records = m.records.split_off(&start);
            }
            Op::Truncate { pick } => {
                // Truncation lands on a batch boundary at or below the target.
                let target = m.pick(pick, m.log_end_offset);
                log.truncate_to(target).await.unwrap();
                let end = log.log_end_offset().await;
                prop_assert!(end <= target && end >= m.log_start_offset.min(target));
                m.records.split_off(&end);
                m.log_end_offset = end;
                m.high_watermark = m.high_watermark.min(end);
            }
            Op::FindTimestamp { timestamp } => {
                let want = m
                    .records
                    .values()
                    .find(|e| e.timestamp >= timestamp as i64)
                    .map(|e| (e.offset, e.timestamp));
                prop_assert_eq!(log.fetch_offset_by_timestamp(timestamp as i64).await.unwrap(), want);
            }
            Op::Reopen => {
                log.close(m.now_ms).await.unwrap();
                drop(log);
                log = open(&disk, m.now_ms).await;
                m.high_watermark = log.update_high_watermark(m.high_watermark).await;
            }
            Op::CrashProcess => {
                drop(log);
                disk.crash(CrashKind::Process);
                log = open(&disk, m.now_ms).await;
                m.high_watermark = log.update_high_watermark(m.high_watermark).await;
            }
        }
        prop_assert_eq!(log.log_start_offset().await, m.log_start_offset);
        prop_assert_eq!(log.log_end_offset().await, m.log_end_offset);
        let records = read_all(&log).await.map_err(TestCaseError::fail)?;
        prop_assert_eq!(records, m.records.values().cloned().collect::<Vec<_>>());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256), ..ProptestConfig::default() })]

    #[test]
    fn log_agrees_with_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(check(ops))?;
    }
}
