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

/// Runs one input: byte 0 is how many batches to write, byte 1 how the writer stops, and
/// each following 5 bytes a damage: kind, file, position (2 bytes), value.
pub fn recover(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
        .block_on(recover_async(data));
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
}
