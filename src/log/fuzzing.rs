//! The entry point of the `log_recovery` fuzz target: a partition log written for real on
//! the simulated disk, left by a clean close or a crash, then damaged as bytes allow (bits
//! flipped, files cut, overwritten, extended, removed), then opened again. Opening may
//! fail with an I/O error, never panic; a log that opens is valid: its offsets ordered,
//! every read in bounds, and it takes the next append at its log end offset, which reads
//! back or (damage in the way) fails with CORRUPT_MESSAGE.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use super::{LogDirFailureChannel, UnifiedLog};
use crate::config::LogConfig;
use crate::error::ErrorCode;
use crate::io::{CrashKind, DiskFaults, OpenMode, SimStorage, Storage, StorageFile};
use crate::record::{self, AppendOrigin, Compression, RecordBatchBuilder, ValidationLimits};

const DIR: &str = "topic-0";
/// Damage operations per input at most.
const DAMAGE_MAX: usize = 32;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        message_timestamp_after_max_ms: i64::MAX,
        ..LogConfig::default()
    }
}

fn batch(first: u32, n: u32) -> BytesMut {
    let codec = [Compression::None, Compression::Gzip][(first % 7 == 3) as usize];
    let mut b = RecordBatchBuilder::new(codec);
    for i in first..first + n {
        b.append(1_000 + i as i64, None, Some(format!("value-{i}").as_bytes()), &[]);
    }
    b.build()
}

/// Runs a fuzz input's future on a fresh single-threaded runtime: the simulated disk needs
/// no more, and each input starts from nothing.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// Runs one input: byte 0 is how many batches to write, byte 1 how the writer stops, and
/// each following 5 bytes a damage: kind, file, position (2 bytes), value.
pub fn recover(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    block_on(recover_async(data));
}

async fn recover_async(data: &[u8]) {
    let disk = SimStorage::new(data[0] as u64, DiskFaults::none());
    let dir = Path::new(DIR);
    let log = UnifiedLog::open(disk.clone(), dir, config(), LogDirFailureChannel::new(), 0)
        .await
        .expect("an empty log opens");
    let mut next = 0u32;
    for i in 0..(data[0] % 48) as u32 {
        let n = 1 + i % 4;
        log.append_as_leader(batch(next, n), 0, AppendOrigin::Client, 1_000)
            .await
            .expect("an append to a healthy disk");
        next += n;
    }
    match data[1] % 4 {
        0 => log.close(2_000).await.expect("a clean close"),
        1 => disk.crash(CrashKind::Process),
        2 => {
            log.flush(2_000).await.expect("a flush");
            disk.crash(CrashKind::Machine);
        }
        _ => disk.crash(CrashKind::Machine),
    }
    drop(log);
    for op in data[2..].chunks_exact(5).take(DAMAGE_MAX) {
        damage(&disk, dir, op).await;
    }
    let Ok(log) = UnifiedLog::open(disk.clone(), dir, config(), LogDirFailureChannel::new(), 3_000).await else {
        return;
    };
    let (log_start_offset, _, log_end_offset) = log.offsets().await;
    assert!(0 <= log_start_offset && log_start_offset <= log_end_offset);
    let limits = ValidationLimits {
        decompressed_bytes_max: 1 << 20,
    };
    let mut scratch = Vec::new();
    let mut offset = log_start_offset;
    // Every read stays inside the log and moves forward; damage below the recovery point
    // may make one fail (as Kafka serves such a batch and the client's CRC check catches it).
    while offset < log_end_offset {
        let Ok(info) = log.read(offset, 4096, None, true).await else {
            break;
        };
        let Some(last) = info.batches.last() else {
            break;
        };
        assert!(
            last.last_offset() < log_end_offset,
            "a batch past the log end {log_end_offset}"
        );
        for (_, _, bytes) in record::BatchFrames::new(&info.records) {
            let _ = record::for_each_record(bytes, &limits, &mut scratch, |_, _| {});
        }
        assert!(
            last.last_offset() >= offset,
            "a read from {offset} went back to {}",
            last.last_offset()
        );
        offset = last.last_offset() + 1;
    }
    if let Ok(info) = log
        .append_as_leader(batch(next, 2), 0, AppendOrigin::Client, 4_000)
        .await
    {
        assert_eq!(
            info.first_offset, log_end_offset,
            "the next append takes the log end offset"
        );
        // Read back it is, unless the walk to it crosses damage the clean close did not
        // scan for (Kafka trusts a cleanly closed log too): then CORRUPT_MESSAGE, never
        // another batch.
        match log.read(info.first_offset, 4096, None, true).await {
            Ok(read) => assert_eq!(read.batches.first().map(|b| b.base_offset), Some(info.first_offset)),
            Err(e) => assert_eq!(e.code, ErrorCode::CorruptMessage, "{e:?}"),
        }
    }
}

async fn damage(disk: &SimStorage, dir: &Path, op: &[u8]) {
    let Ok(mut names) = disk.list(dir).await else {
        return;
    };
    names.sort();
    if names.is_empty() {
        return;
    }
    let path: PathBuf = dir.join(&names[op[1] as usize % names.len()]);
    let position = u16::from_be_bytes([op[2], op[3]]) as u64;
    let Ok(file) = disk.open(&path, OpenMode::Existing).await else {
        return;
    };
    let len = file.len().await.unwrap_or(0);
    match op[0] % 5 {
        0 => {
            let _ = disk.flip_bit(&path, position % len.max(1), op[4]);
        }
        1 => {
            let _ = file.truncate(position.min(len)).await;
        }
        2 => {
            let _ = file
                .write_at(position % len.max(1), Bytes::copy_from_slice(&[op[4]]))
                .await;
        }
        3 => {
            let _ = file.append(Bytes::from(vec![op[4]; 1 + position as usize % 64])).await;
        }
        _ => {
            drop(file);
            let _ = disk.remove(&path).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SimRng;

    /// Random inputs: the fuzz target's property on what a plain test can afford.
    #[test]
    fn damaged_logs_recover_or_fail_cleanly() {
        let mut rng = SimRng::new(0x10c);
        for _ in 0..200 {
            let len = 2 + rng.below(40) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            recover(&data);
        }
    }

    #[test]
    fn random_compactions_keep_the_last_record_of_every_key() {
        let mut rng = SimRng::new(0xc1ea);
        let (mut removed, mut cleaned_inputs) = (0, 0);
        for _ in 0..150 {
            let len = 1 + rng.below(160) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let n = compaction_ops(&data);
            removed += n;
            cleaned_inputs += (n > 0) as u32;
        }
        assert!(
            cleaned_inputs > 30,
            "the cleaner removed records in only {cleaned_inputs} inputs"
        );
        eprintln!("compaction: {removed} records removed over {cleaned_inputs} inputs");
    }

    #[test]
    fn random_log_operations_match_the_model() {
        let mut rng = SimRng::new(0x10c5);
        for _ in 0..100 {
            let len = 1 + rng.below(120) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            log_ops(&data);
        }
    }
}

/// The entry point of the `log_ops` fuzz target: operation sequences on one partition log
/// against a model (a vector of the values at each offset, the log start offset, and how
/// far the log was flushed): appends, reads, truncations, DeleteRecords, retention, rolls,
/// flushes, high watermark moves, and process and machine crashes with a reopen. Without a
/// crash the log holds exactly the model; after one it holds at least what was flushed, and
/// what it holds matches the model up to there.
pub fn log_ops(data: &[u8]) {
    if data.is_empty() {
        return;
    }
    block_on(log_ops_async(data));
}

/// Operations per input at most.
const OPS_MAX: usize = 200;

struct Model {
    /// The value at each offset from 0; offsets below `start` are gone.
    values: Vec<String>,
    start: i64,
    flushed: i64,
    next_value: u32,
    /// Where each batch starts: truncation cuts whole batches.
    batch_starts: Vec<i64>,
}

async fn open_log(disk: &SimStorage, retention_bytes: i64) -> UnifiedLog<SimStorage> {
    let config = LogConfig {
        retention_bytes,
        retention_ms: -1,
        ..config()
    };
    UnifiedLog::open(disk.clone(), Path::new(DIR), config, LogDirFailureChannel::new(), 0)
        .await
        .expect("a log on a disk without faults opens")
}

async fn read_values(log: &UnifiedLog<SimStorage>) -> Vec<(i64, String)> {
    let limits = ValidationLimits {
        decompressed_bytes_max: 1 << 20,
    };
    let mut scratch = Vec::new();
    let (mut offset, _, end) = log.offsets().await;
    let mut out = Vec::new();
    while offset < end {
        let info = log.read(offset, 2048, None, true).await.expect("a read inside the log");
        assert!(!info.batches.is_empty(), "nothing at {offset} below the log end {end}");
        for (_, header, bytes) in record::BatchFrames::new(&info.records) {
            record::for_each_record(bytes, &limits, &mut scratch, |o, r| {
                if o >= offset {
                    out.push((o, String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned()));
                }
            })
            .expect("a batch this log wrote validates");
            offset = offset.max(header.next_offset());
        }
    }
    out
}

async fn log_ops_async(data: &[u8]) {
    let retention_bytes = [-1, 2048, 4096][data[0] as usize % 3];
    let disk = SimStorage::new(data[0] as u64, DiskFaults::none());
    let mut log = open_log(&disk, retention_bytes).await;
    let mut m = Model {
        values: Vec::new(),
        start: 0,
        flushed: 0,
        next_value: 0,
        batch_starts: Vec::new(),
    };
    let mut now = 1_000i64;
    let mut bytes = data[1..].iter().copied();
    let mut history = Vec::new();
    for _ in 0..OPS_MAX {
        let Some(op) = bytes.next() else {
            break;
        };
        let arg = bytes.next().unwrap_or(0) as i64;
        now += 10;
        let end = m.values.len() as i64;
        history.push((op % 10, arg));
        match op % 10 {
            0..=2 => {
                let n = 1 + (arg % 5) as u32;
                let info = log
                    .append_as_leader(batch(m.next_value, n), 0, AppendOrigin::Client, now)
                    .await
                    .expect("an append");
                assert_eq!(info.first_offset, end, "an append takes the log end offset");
                m.batch_starts.push(end);
                for i in m.next_value..m.next_value + n {
                    m.values.push(format!("value-{i}"));
                }
                m.next_value += n;
            }
            3 => {
                // To a batch boundary at or above the log start, as replication truncates.
                let cuts: Vec<i64> = m
                    .batch_starts
                    .iter()
                    .copied()
                    .filter(|&b| b >= m.start)
                    .chain([end])
                    .collect();
                let to = cuts[arg as usize % cuts.len()];
                log.truncate_to(to).await.expect("a truncation above the log start");
                m.values.truncate(to as usize);
                m.batch_starts.retain(|&b| b < to);
                m.flushed = m.flushed.min(to);
            }
            4 => {
                let hw = log.advance_high_watermark(m.start + arg % (end - m.start + 1)).await;
                let to = m.start + arg % (hw - m.start + 1);
                let start = log
                    .delete_records_before(to)
                    .await
                    .expect("DeleteRecords below the high watermark");
                assert_eq!(start, m.start.max(to));
                m.start = start;
            }
            5 => {
                log.advance_high_watermark(end).await;
                log.delete_old_segments(now).await.expect("retention");
                let start = log.log_start_offset().await;
                assert!(start >= m.start && start <= end);
                m.start = start;
            }
            6 => log.roll_now().await.expect("a roll"),
            7 => {
                log.flush(now).await.expect("a flush");
                m.flushed = end;
            }
            8 => {
                let kind = if arg % 2 == 0 {
                    CrashKind::Process
                } else {
                    CrashKind::Machine
                };
                disk.crash(kind);
                drop(log);
                log = open_log(&disk, retention_bytes).await;
                let (start, _, recovered_end) = log.offsets().await;
                match kind {
                    CrashKind::Process => {
                        assert_eq!(recovered_end, end, "a process crash loses nothing");
                        assert_eq!(start, m.start);
                    }
                    CrashKind::Machine => {
                        assert!(
                            recovered_end >= m.flushed && recovered_end <= end,
                            "recovered to {recovered_end}: flushed {}, appended to {end}",
                            m.flushed
                        );
                        m.values.truncate(recovered_end as usize);
                        m.batch_starts.retain(|&b| b < recovered_end);
                        m.start = start;
                    }
                }
                // What recovery kept it made durable.
                m.flushed = recovered_end;
            }
            _ => {
                let at = m.start + arg % (end - m.start + 1);
                if at < end {
                    let info = log.read(at, 512, None, true).await.expect("a read inside the log");
                    let first = info.batches.first().expect("a batch at a live offset");
                    assert!(first.base_offset <= at && at <= first.last_offset());
                }
            }
        }
        let (start, _, log_end) = log.offsets().await;
        assert_eq!(
            (start, log_end),
            (m.start, m.values.len() as i64),
            "log start and end against the model after {history:?}"
        );
        if op % 10 >= 3 {
            let got = read_values(&log).await;
            let want: Vec<(i64, String)> = (m.start..log_end).map(|o| (o, m.values[o as usize].clone())).collect();
            assert_eq!(got, want, "the log's records against the model after {history:?}");
        }
    }
}

/// The entry point of the `log_compaction` fuzz target: operation sequences on one
/// compacted log (`cleanup.policy=compact`, durable, small segments) against a model of
/// every record appended: keyed appends (some tombstones, some compressed), rolls, cleaner
/// passes, and process and machine crashes with a reopen. After every operation the log
/// must hold, in order and unchanged, a subset of the appended records that keeps the last
/// record of every key (a tombstone may go once past `delete.retention.ms`, and then so has
/// every older record of its key), and nothing may be missing that a later record of its key
/// does not supersede.
///
/// Returns how many records the cleaner removed, so that a test can tell it did work.
pub fn compaction_ops(data: &[u8]) -> u64 {
    if data.is_empty() {
        return 0;
    }
    block_on(compaction_ops_async(data))
}

/// One appended record: key, and value (`None` for a tombstone).
type Appended = (String, Option<String>);

async fn open_compacted(disk: &SimStorage, delete_retention_ms: i64, ratio: f64) -> UnifiedLog<SimStorage> {
    let config = LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        flush_messages: 1,
        delete_retention_ms,
        min_cleanable_dirty_ratio: ratio,
        ..config()
    };
    UnifiedLog::open(disk.clone(), Path::new(DIR), config, LogDirFailureChannel::new(), 0)
        .await
        .expect("a log on a disk without faults opens")
}

/// Every record the log serves from its start, as (offset, key, value), reading from each
/// offset onwards as a consumer does, gaps and all.
async fn read_records(log: &UnifiedLog<SimStorage>) -> Vec<(i64, String, Option<String>)> {
    let limits = ValidationLimits {
        decompressed_bytes_max: 1 << 20,
    };
    let mut scratch = Vec::new();
    let (mut offset, _, end) = log.offsets().await;
    let mut out = Vec::new();
    while offset < end {
        let info = log.read(offset, 700, None, true).await.expect("a read inside the log");
        if info.batches.is_empty() {
            break;
        }
        for (_, header, bytes) in record::BatchFrames::new(&info.records) {
            assert!(
                header.last_offset() >= offset,
                "a read returns batches at or after its offset"
            );
            record::for_each_record(bytes, &limits, &mut scratch, |o, r| {
                if o >= offset {
                    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                    out.push((
                        o,
                        text(r.key).expect("a compacted log holds keyed records"),
                        text(r.value),
                    ));
                }
            })
            .expect("a batch the log serves validates");
            offset = offset.max(header.next_offset());
        }
    }
    out
}

fn check_compacted(model: &[Appended], got: &[(i64, String, Option<String>)], history: &[(u8, i64)]) {
    let mut last = -1;
    for (offset, key, value) in got {
        assert!(*offset > last, "offsets increase after {history:?}");
        last = *offset;
        let appended = &model[*offset as usize];
        assert_eq!(
            (&appended.0, &appended.1),
            (key, value),
            "record {offset} changed after {history:?}"
        );
    }
    let present: std::collections::HashSet<i64> = got.iter().map(|r| r.0).collect();
    let mut latest: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for (offset, (key, _)) in model.iter().enumerate() {
        latest.insert(key, offset as i64);
    }
    for (offset, (key, value)) in model.iter().enumerate() {
        let offset = offset as i64;
        if present.contains(&offset) {
            continue;
        }
        let newest = latest[key.as_str()];
        if offset < newest {
            continue; // superseded
        }
        // The key's newest record is gone: only a tombstone may go, and with it the key.
        assert!(
            value.is_none(),
            "record {offset}, the last of key {key}, is gone after {history:?}"
        );
        assert!(
            !got.iter().any(|r| &r.1 == key),
            "key {key} lost its tombstone yet keeps older records after {history:?}"
        );
    }
}

async fn compaction_ops_async(data: &[u8]) -> u64 {
    let mut removed = 0;
    let delete_retention_ms = [0, i64::MAX / 4][data[0] as usize % 2];
    let ratio = [0.0, 0.5, 1.0][data[0] as usize / 2 % 3];
    let disk = SimStorage::new(data[0] as u64, DiskFaults::none());
    let mut log = open_compacted(&disk, delete_retention_ms, ratio).await;
    let mut model: Vec<Appended> = Vec::new();
    let mut now = 1_000i64;
    let mut bytes = data[1..].iter().copied();
    let mut history = Vec::new();
    for _ in 0..OPS_MAX {
        let Some(op) = bytes.next() else {
            break;
        };
        let arg = bytes.next().unwrap_or(0) as i64;
        now += 10;
        history.push((op % 8, arg));
        match op % 8 {
            0..=3 => {
                let n = 1 + (arg % 6) as u32;
                let codec = [Compression::None, Compression::Lz4][(arg / 6 % 4 == 3) as usize];
                let mut b = RecordBatchBuilder::new(codec);
                let mut appended = Vec::new();
                for i in 0..n {
                    let key = format!("k{}", (arg as u32 * 7 + i * 3 + op as u32) % 9);
                    let tombstone = (arg as u32 + i) % 11 == 5;
                    let value = (!tombstone).then(|| format!("v{}", model.len() as u32 + i));
                    b.append(now, Some(key.as_bytes()), value.as_deref().map(str::as_bytes), &[]);
                    appended.push((key, value));
                }
                let info = log
                    .append_as_leader(b.build(), 0, AppendOrigin::Client, now)
                    .await
                    .expect("an append");
                assert_eq!(info.first_offset, model.len() as i64);
                model.extend(appended);
            }
            4 => log.roll_now().await.expect("a roll"),
            5 | 6 => {
                let (_, _, end) = log.offsets().await;
                log.advance_high_watermark(end).await;
                let before = log.offsets().await;
                let map_bytes_max = [1 << 20, 200][(arg % 3 == 2) as usize];
                removed += log
                    .clean(now, map_bytes_max)
                    .await
                    .expect("a cleaning pass")
                    .records_removed;
                assert_eq!(log.offsets().await, before, "cleaning moves no offset");
            }
            _ => {
                let kind = if arg % 2 == 0 {
                    CrashKind::Process
                } else {
                    CrashKind::Machine
                };
                disk.crash(kind);
                drop(log);
                log = open_compacted(&disk, delete_retention_ms, ratio).await;
                let (_, _, end) = log.offsets().await;
                assert_eq!(end, model.len() as i64, "a durable log loses nothing in a crash");
            }
        }
        let got = read_records(&log).await;
        check_compacted(&model, &got, &history);
    }
    removed
}
