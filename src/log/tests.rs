//! Unit tests of the partition log on the simulated disk, as data where they can be.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;

use super::*;
use crate::config::LogConfig;
use crate::error::ErrorCode;
use crate::io::{CrashKind, DiskFaults, SimStorage, Storage, StorageFile};
use crate::record::{self, AppendOrigin, Compression, RecordBatchBuilder, TimestampType, ValidationLimits};

pub(crate) fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(f)
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        message_timestamp_after_max_ms: i64::MAX,
        ..LogConfig::default()
    }
}

fn batch(first: u32, n: u32, timestamp: i64) -> BytesMut {
    let mut b = RecordBatchBuilder::new(Compression::None);
    for i in first..first + n {
        b.append(timestamp, None, Some(format!("v{i}").as_bytes()), &[]);
    }
    b.build()
}

const DIR: &str = "topic-0";

async fn open(disk: &SimStorage, config: LogConfig) -> UnifiedLog<SimStorage> {
    UnifiedLog::open(disk.clone(), Path::new(DIR), config, LogDirFailureChannel::new(), 0)
        .await
        .expect("open")
}

/// Every record from the log start, as (offset, timestamp, value).
async fn read_all<S: Storage>(log: &UnifiedLog<S>) -> Vec<(i64, i64, String)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset().await;
    let limits = ValidationLimits {
        decompressed_bytes_max: 1 << 24,
    };
    loop {
        let info = log.read(offset, 4096, None, true).await.expect("read");
        if info.batches.is_empty() {
            return out;
        }
        let mut scratch = Vec::new();
        for (_, header, bytes) in record::BatchFrames::new(&info.records) {
            record::for_each_record(bytes, &limits, &mut scratch, |o, r| {
                if o >= offset {
                    out.push((o, r.timestamp, String::from_utf8(r.value.unwrap().to_vec()).unwrap()))
                }
            })
            .expect("a served batch is valid");
            offset = header.next_offset();
        }
    }
}

fn values(records: &[(i64, i64, String)]) -> Vec<String> {
    records.iter().map(|r| r.2.clone()).collect()
}

fn expected(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("v{i}")).collect()
}

#[test]
fn append_assigns_offsets_and_reads_back() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = open(&disk, small_config()).await;
        let cases = [(3, 0, 2), (1, 3, 3), (5, 4, 8)];
        let mut first = 0;
        for (n, first_offset, last_offset) in cases {
            let info = log
                .append_as_leader(batch(first, n, 100), 7, AppendOrigin::Client, 100)
                .await
                .unwrap();
            assert_eq!(
                (info.first_offset, info.last_offset, info.records_count),
                (first_offset, last_offset, n as i64)
            );
            first += n;
        }
        assert_eq!(log.log_end_offset().await, 9);
        let records = read_all(&log).await;
        assert_eq!(values(&records), expected(0..9));
        assert_eq!(
            records.iter().map(|r| r.0).collect::<Vec<_>>(),
            (0..9).collect::<Vec<_>>()
        );
        let info = log.read(4, 4096, None, false).await.unwrap();
        assert_eq!(info.batches[0].base_offset, 4);
        assert_eq!(info.batches[0].partition_leader_epoch, 7);
        assert_eq!(info.records.len(), info.batches.iter().map(|b| b.size()).sum::<usize>());
    })
}

#[test]
fn reads_respect_bounds() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = open(
            &disk,
            LogConfig {
                segment_bytes: 1 << 20,
                ..small_config()
            },
        )
        .await;
        for i in 0..10 {
            log.append_as_leader(batch(i * 2, 2, 5), 0, AppendOrigin::Client, 5)
                .await
                .unwrap();
        }
        let one_batch = log.read(0, 1, None, true).await.unwrap().batches[0].size();
        // (fetch offset, max bytes, max offset, min one message) -> (batch base offsets) or error
        let cases: [(i64, usize, Option<i64>, bool, Result<Vec<i64>, ErrorCode>); 9] = [
            (0, one_batch * 3, None, false, Ok(vec![0, 2, 4])),
            (1, one_batch * 2, None, false, Ok(vec![0, 2])),
            (0, 1, None, false, Ok(vec![])),
            (0, 1, None, true, Ok(vec![0])),
            (0, 1 << 20, Some(6), false, Ok(vec![0, 2, 4])),
            (0, 1 << 20, Some(5), false, Ok(vec![0, 2])),
            (20, 1 << 20, None, false, Ok(vec![])),
            (21, 1 << 20, None, false, Err(ErrorCode::OffsetOutOfRange)),
            (-1, 1 << 20, None, false, Err(ErrorCode::OffsetOutOfRange)),
        ];
        for (fetch, max_bytes, max_offset, min_one, want) in cases {
            let got = log.read(fetch, max_bytes, max_offset, min_one).await;
            let got = got
                .map(|i| i.batches.iter().map(|b| b.base_offset).collect::<Vec<_>>())
                .map_err(|e| e.code);
            assert_eq!(got, want, "read({fetch}, {max_bytes}, {max_offset:?}, {min_one})");
        }
    })
}

#[test]
fn segments_roll_on_size_time_and_index() {
    let cases: [(&str, LogConfig, i64, usize); 3] = [
        (
            "segment.bytes",
            LogConfig {
                segment_bytes: 300,
                ..small_config()
            },
            0,
            3,
        ),
        (
            "segment.ms",
            LogConfig {
                segment_bytes: 1 << 20,
                segment_ms: 1000,
                ..small_config()
            },
            400,
            4,
        ),
        (
            "segment.index.bytes",
            LogConfig {
                segment_bytes: 1 << 20,
                index_interval_bytes: 1,
                segment_index_bytes: 32,
                ..small_config()
            },
            0,
            2,
        ),
    ];
    for (name, config, step_ms, segments) in cases {
        run(async {
            let disk = SimStorage::new(1, DiskFaults::none());
            let log = open(&disk, config).await;
            for i in 0..10 {
                let now = i as i64 * step_ms;
                log.append_as_leader(batch(i, 1, now), 0, AppendOrigin::Client, now)
                    .await
                    .unwrap();
            }
            assert_eq!(log.segment_base_offsets().await.len(), segments, "{name}");
            assert_eq!(values(&read_all(&log).await), expected(0..10), "{name}");
            let names = disk.list(Path::new(DIR)).await.unwrap();
            assert!(names.contains(&"00000000000000000000.log".to_string()), "{names:?}");
            assert!(names.contains(&"00000000000000000000.index".to_string()), "{names:?}");
            assert!(
                names.contains(&"00000000000000000000.timeindex".to_string()),
                "{names:?}"
            );
        })
    }
}

#[test]
fn retention_deletes_whole_old_segments_never_the_active_one() {
    // (retention.ms, retention.bytes, now) -> segments left
    let cases: [(i64, i64, i64, usize); 5] = [
        (-1, -1, 1_000_000, 5),
        (1000, -1, 100_000, 1),
        (1000, -1, 5_500, 3),
        (-1, 0, 0, 1),
        (-1, 500, 0, 4),
    ];
    for (retention_ms, retention_bytes, now, left) in cases {
        run(async {
            let disk = SimStorage::new(1, DiskFaults::none());
            let config = LogConfig {
                segment_bytes: 200,
                retention_ms,
                retention_bytes,
                ..small_config()
            };
            let log = open(&disk, config).await;
            for i in 0..10 {
                log.append_as_leader(batch(i, 1, i as i64 * 1000), 0, AppendOrigin::Client, 0)
                    .await
                    .unwrap();
            }
            log.update_high_watermark(10).await;
            log.delete_old_segments(now).await.unwrap();
            let bases = log.segment_base_offsets().await;
            assert_eq!(
                bases.len(),
                left,
                "retention.ms={retention_ms} retention.bytes={retention_bytes} now={now}: {bases:?}"
            );
            assert_eq!(log.log_start_offset().await, bases[0]);
            assert_eq!(values(&read_all(&log).await), expected(bases[0] as u32..10));
            let files = disk
                .list(Path::new(DIR))
                .await
                .unwrap()
                .iter()
                .filter(|n| n.ends_with(".log"))
                .count();
            assert_eq!(files, left);
        })
    }
}

#[test]
fn retention_stops_at_the_high_watermark() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = open(
            &disk,
            LogConfig {
                segment_bytes: 200,
                retention_bytes: 0,
                ..small_config()
            },
        )
        .await;
        for i in 0..10 {
            log.append_as_leader(batch(i, 1, 0), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
        }
        log.update_high_watermark(4).await;
        log.delete_old_segments(0).await.unwrap();
        assert!(log.log_start_offset().await <= 4);
        assert!(log.segment_base_offsets().await.iter().any(|&b| b <= 4));
    })
}

#[test]
fn delete_records_moves_the_log_start_offset() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = open(
            &disk,
            LogConfig {
                segment_bytes: 200,
                ..small_config()
            },
        )
        .await;
        for i in 0..10 {
            log.append_as_leader(batch(i, 1, 0), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
        }
        assert_eq!(
            log.delete_records_before(5).await.unwrap_err().code,
            ErrorCode::OffsetOutOfRange
        );
        log.update_high_watermark(10).await;
        assert_eq!(log.delete_records_before(5).await.unwrap(), 5);
        assert_eq!(
            log.read(4, 100, None, true).await.unwrap_err().code,
            ErrorCode::OffsetOutOfRange
        );
        assert_eq!(values(&read_all(&log).await), expected(5..10));
        assert!(log.segment_base_offsets().await[0] <= 5);
        log.flush(0).await.unwrap();
        drop(log);
        disk.crash(CrashKind::Machine);
        let log = open(
            &disk,
            LogConfig {
                segment_bytes: 200,
                ..small_config()
            },
        )
        .await;
        assert_eq!(log.log_start_offset().await, 5, "the log start offset is checkpointed");
        assert_eq!(values(&read_all(&log).await), expected(5..10));
    })
}

#[test]
fn truncation_removes_the_tail() {
    for (offset, end) in [(10, 10), (9, 9), (4, 4), (0, 0), (7, 7)] {
        run(async {
            let disk = SimStorage::new(1, DiskFaults::none());
            let log = open(
                &disk,
                LogConfig {
                    segment_bytes: 200,
                    ..small_config()
                },
            )
            .await;
            for i in 0..10 {
                log.append_as_leader(batch(i, 1, 0), 0, AppendOrigin::Client, 0)
                    .await
                    .unwrap();
            }
            log.update_high_watermark(10).await;
            log.truncate_to(offset).await.unwrap();
            assert_eq!(log.log_end_offset().await, end);
            assert!(log.high_watermark().await <= end);
            assert_eq!(values(&read_all(&log).await), expected(0..end as u32));
            let info = log
                .append_as_leader(batch(100, 1, 0), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
            assert_eq!(info.first_offset, end);
            drop(log);
            disk.crash(CrashKind::Process);
            let log = open(
                &disk,
                LogConfig {
                    segment_bytes: 200,
                    ..small_config()
                },
            )
            .await;
            assert_eq!(log.log_end_offset().await, end + 1, "truncate to {offset}");
        })
    }
}

#[test]
fn offsets_by_timestamp() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = open(
            &disk,
            LogConfig {
                segment_bytes: 300,
                ..small_config()
            },
        )
        .await;
        // Batches of 2 records with timestamps 10i and 10i+5.
        for i in 0..10u32 {
            let mut b = RecordBatchBuilder::new(Compression::Gzip);
            b.append(10 * i as i64, None, Some(b"a"), &[]);
            b.append(10 * i as i64 + 5, None, Some(b"b"), &[]);
            log.append_as_leader(b.build(), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
        }
        assert!(log.segment_base_offsets().await.len() > 2);
        let cases = [
            (0, Some((0, 0))),
            (1, Some((1, 5))),
            (5, Some((1, 5))),
            (6, Some((2, 10))),
            (47, Some((10, 50))),
            (95, Some((19, 95))),
            (96, None),
        ];
        for (timestamp, want) in cases {
            assert_eq!(
                log.fetch_offset_by_timestamp(timestamp).await.unwrap(),
                want,
                "{timestamp}"
            );
        }
    })
}

#[test]
fn log_append_time_is_stamped() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = open(
            &disk,
            LogConfig {
                message_timestamp_type: TimestampType::LogAppendTime,
                ..small_config()
            },
        )
        .await;
        let info = log
            .append_as_leader(batch(0, 3, 5), 0, AppendOrigin::Client, 777)
            .await
            .unwrap();
        assert_eq!((info.log_append_time, info.max_timestamp), (777, 777));
        let read = log.read(0, 4096, None, false).await.unwrap();
        assert_eq!(read.batches[0].timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(read.batches[0].max_timestamp, 777);
        assert!(record::crc_matches(&read.records));
    })
}

#[test]
fn bad_appends_get_kafka_codes() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let config = LogConfig {
            max_message_bytes: 200,
            message_timestamp_after_max_ms: 1000,
            ..small_config()
        };
        let log = open(&disk, config).await;
        let mut two = batch(0, 1, 0);
        two.extend_from_slice(&batch(1, 1, 0));
        let mut torn = batch(0, 1, 0);
        torn.truncate(torn.len() - 1);
        let cases: [(&str, BytesMut, Result<i64, ErrorCode>); 6] = [
            ("good", batch(0, 1, 0), Ok(0)),
            ("two batches from a client", two, Err(ErrorCode::InvalidRecord)),
            ("torn", torn, Err(ErrorCode::CorruptMessage)),
            ("too large", batch(0, 20, 0), Err(ErrorCode::MessageTooLarge)),
            ("from the future", batch(0, 1, 5000), Err(ErrorCode::InvalidTimestamp)),
            ("empty", BytesMut::new(), Err(ErrorCode::InvalidRecord)),
        ];
        for (name, records, want) in cases {
            let got = log
                .append_as_leader(records, 0, AppendOrigin::Client, 0)
                .await
                .map(|i| i.first_offset)
                .map_err(|e| e.code);
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(log.log_end_offset().await, 1, "rejected appends write nothing");
    })
}

#[test]
fn a_failed_sync_takes_the_directory_offline() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let failure = LogDirFailureChannel::new();
        let config = LogConfig {
            flush_messages: 1,
            ..small_config()
        };
        let log = UnifiedLog::open(disk.clone(), Path::new(DIR), config, failure.clone(), 0)
            .await
            .unwrap();
        log.append_as_leader(batch(0, 1, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap();
        disk.set_faults(DiskFaults {
            sync_eio_probability: 1.0,
            ..DiskFaults::none()
        });
        let err = log
            .append_as_leader(batch(1, 1, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::KafkaStorageError);
        assert!(failure.is_offline());
        disk.set_faults(DiskFaults::none());
        for _ in 0..3 {
            let err = log
                .append_as_leader(batch(2, 1, 0), 0, AppendOrigin::Client, 0)
                .await
                .unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::KafkaStorageError,
                "no retry pretends the data is safe"
            );
        }
        assert_eq!(
            log.read(0, 100, None, true).await.unwrap_err().code,
            ErrorCode::KafkaStorageError
        );
        drop(log);
        disk.crash(CrashKind::Machine);
        let log = open(&disk, small_config()).await;
        assert_eq!(
            values(&read_all(&log).await),
            expected(0..1),
            "only the synced record survives"
        );
    })
}

#[test]
fn a_full_disk_is_a_storage_error() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = open(&disk, small_config()).await;
        log.append_as_leader(batch(0, 1, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap();
        disk.set_faults(DiskFaults {
            capacity_bytes: 100,
            ..DiskFaults::none()
        });
        let err = log
            .append_as_leader(batch(1, 1, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::KafkaStorageError);
    })
}

#[test]
fn durable_mode_acknowledges_only_synced_data() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = Arc::new(
            open(
                &disk,
                LogConfig {
                    flush_messages: 1,
                    ..small_config()
                },
            )
            .await,
        );
        let mut tasks = Vec::new();
        for i in 0..8 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.append_as_leader(batch(i, 1, 0), 0, AppendOrigin::Client, 0)
                    .await
                    .unwrap()
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let syncs = disk.stats().syncs;
        assert_eq!(log.flushed_offset(), 8);
        drop(log);
        disk.crash(CrashKind::Machine);
        let log = open(&disk, small_config()).await;
        assert_eq!(read_all(&log).await.len(), 8);
        assert!(syncs > 0);
    })
}

#[test]
fn page_cache_mode_loses_only_unsynced_data_on_power_loss() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = open(
            &disk,
            LogConfig {
                flush_messages: 4,
                ..small_config()
            },
        )
        .await;
        for i in 0..6 {
            log.append_as_leader(batch(i, 1, 0), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
        }
        assert_eq!(log.flushed_offset(), 4);
        drop(log);
        disk.crash(CrashKind::Process);
        let log = open(&disk, small_config()).await;
        assert_eq!(read_all(&log).await.len(), 6, "kill -9 keeps the page cache");
        for i in 6..9 {
            log.append_as_leader(batch(i, 1, 0), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
        }
        drop(log);
        disk.crash(CrashKind::Machine);
        let log = open(&disk, small_config()).await;
        assert_eq!(
            values(&read_all(&log).await),
            expected(0..6),
            "opening synced what recovery kept; the rest was lost"
        );
    })
}

#[test]
fn clean_reopen_reads_only_the_active_segment() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let config = LogConfig {
            segment_bytes: 200,
            ..small_config()
        };
        let log = open(&disk, config.clone()).await;
        for i in 0..100 {
            log.append_as_leader(batch(i, 1, 0), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
        }
        let segments = log.segment_base_offsets().await.len();
        assert!(segments > 30);
        log.close(0).await.unwrap();
        drop(log);
        let before = disk.stats();
        let log = open(&disk, config.clone()).await;
        let reads = disk.stats().reads - before.reads;
        let bytes = disk.stats().bytes_read - before.bytes_read;
        assert!(reads <= 5, "{reads} reads to open {segments} segments");
        assert!(
            bytes < 200 + 128,
            "{bytes} bytes read: the two index files, the checkpoint, the producer snapshot and the log after the last index entry"
        );
        assert_eq!(log.log_end_offset().await, 100);
        assert_eq!(values(&read_all(&log).await), expected(0..100));
    })
}

#[test]
fn clean_reopen_does_not_scan_the_active_segment() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let config = LogConfig {
            segment_bytes: 1 << 20,
            index_interval_bytes: 1024,
            ..small_config()
        };
        let log = open(&disk, config.clone()).await;
        for i in 0..2000 {
            log.append_as_leader(batch(i, 1, 0), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
        }
        let size = log.size_bytes().await;
        log.close(0).await.unwrap();
        drop(log);
        let before = disk.stats().bytes_read;
        let log = open(&disk, config.clone()).await;
        let bytes = disk.stats().bytes_read - before;
        assert!(bytes < 4096, "read {bytes} of a {size}-byte segment to reopen it");
        assert_eq!(log.log_end_offset().await, 2000);
        // After a crash that lost nothing past the recovery point, the same holds; after one
        // that left data past it, recovery scans.
        log.append_as_leader(batch(2000, 1, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap();
        drop(log);
        disk.crash(CrashKind::Process);
        let before = disk.stats().bytes_read;
        let log = open(&disk, config).await;
        assert!(
            disk.stats().bytes_read - before >= size,
            "a crash with unsynced data recovers the segment"
        );
        assert_eq!(values(&read_all(&log).await), expected(0..2001));
    })
}

#[test]
fn open_files_are_bounded() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let config = LogConfig {
            segment_bytes: 200,
            segment_files_open_max: 3,
            ..small_config()
        };
        let log = open(&disk, config).await;
        for i in 0..60 {
            log.append_as_leader(batch(i, 1, 0), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
        }
        assert_eq!(values(&read_all(&log).await), expected(0..60));
        assert!(log.open_file_count().await <= 4, "{}", log.open_file_count().await);
    })
}

#[test]
fn missing_and_corrupt_indexes_are_rebuilt() {
    for damage in ["remove", "garbage", "truncate"] {
        run(async {
            let disk = SimStorage::new(1, DiskFaults::none());
            let config = LogConfig {
                segment_bytes: 400,
                index_interval_bytes: 1,
                ..small_config()
            };
            let log = open(&disk, config.clone()).await;
            for i in 0..30 {
                log.append_as_leader(batch(i, 1, i as i64), 0, AppendOrigin::Client, 0)
                    .await
                    .unwrap();
            }
            log.close(0).await.unwrap();
            drop(log);
            let index = Path::new(DIR).join(offset_index_file_name(0));
            match damage {
                "remove" => disk.remove(&index).await.unwrap(),
                "garbage" => {
                    for at in 0..16 {
                        disk.flip_bit(&index, at, 3).unwrap();
                    }
                }
                _ => {
                    let file = disk.open(&index, crate::io::OpenMode::Existing).await.unwrap();
                    crate::io::StorageFile::truncate(&file, 3).await.unwrap();
                }
            }
            let log = open(&disk, config).await;
            for offset in 0..30 {
                let info = log.read(offset, 1, None, true).await.unwrap();
                assert!(
                    info.batches[0].base_offset <= offset && offset <= info.batches[0].last_offset(),
                    "{damage}: {offset}"
                );
            }
            assert_eq!(
                log.fetch_offset_by_timestamp(3).await.unwrap(),
                Some((3, 3)),
                "{damage}"
            );
        })
    }
}

#[test]
fn disk_faults_are_deterministic_per_seed() {
    fn trace(seed: u64) -> u64 {
        run(async move {
            let faults = DiskFaults {
                torn_write_probability: 0.5,
                slow_probability: 0.3,
                ..DiskFaults::none()
            };
            let disk = SimStorage::new(seed, faults);
            let log = open(
                &disk,
                LogConfig {
                    flush_messages: 3,
                    ..small_config()
                },
            )
            .await;
            for i in 0..20 {
                log.append_as_leader(batch(i, 1, 0), 0, AppendOrigin::Client, 0)
                    .await
                    .unwrap();
            }
            drop(log);
            disk.crash(CrashKind::Machine);
            let log = open(&disk, small_config()).await;
            let _ = read_all(&log).await;
            disk.stats().trace_hash
        })
    }
    assert_eq!(trace(7), trace(7));
    assert_ne!(trace(7), trace(8));
}

#[test]
fn reads_return_every_batch_up_to_the_limit() {
    for codec in Compression::ALL {
        run(async {
            let disk = SimStorage::new(1, DiskFaults::none());
            let log = open(
                &disk,
                LogConfig {
                    segment_bytes: 1 << 20,
                    ..small_config()
                },
            )
            .await;
            for i in 0..9 {
                let mut b = RecordBatchBuilder::new(codec);
                b.append(
                    1_700_000_000_000,
                    Some(b"k"),
                    Some(format!("v{i}").as_bytes()),
                    &[("h", Some(b"1"))],
                );
                b.append(
                    1_700_000_000_000,
                    Some(b"k"),
                    Some(format!("w{i}").as_bytes()),
                    &[("h", Some(b"2"))],
                );
                log.append_as_leader(b.build(), 0, AppendOrigin::Client, 0)
                    .await
                    .unwrap();
            }
            let info = log.read(0, 1 << 20, Some(18), true).await.unwrap();
            assert_eq!(info.batches.len(), 9, "{}", codec.name());
        })
    }
}

fn idempotent(first: u32, n: u32, producer_id: i64, epoch: i16) -> BytesMut {
    let mut b = RecordBatchBuilder::new(Compression::None).producer(producer_id, epoch, first as i32);
    for i in first..first + n {
        b.append(0, None, Some(format!("v{i}").as_bytes()), &[]);
    }
    b.build()
}

/// How a retry of sequences `first..first + n` fares: Some(original base offset) for a
/// duplicate, None for a fresh append, Err for a rejection.
async fn retry(log: &UnifiedLog<SimStorage>, first: u32, n: u32) -> Result<Option<i64>, crate::error::ErrorCode> {
    match log
        .append_as_leader(idempotent(first, n, 7, 0), 0, AppendOrigin::Client, 0)
        .await
    {
        Ok(info) if info.duplicate => Ok(Some(info.first_offset)),
        Ok(_) => Ok(None),
        Err(e) => Err(e.code),
    }
}

#[test]
fn producer_state_survives_crashes_and_follows_truncation() {
    run(async {
        for kind in [CrashKind::Process, CrashKind::Machine] {
            let disk = SimStorage::new(3, DiskFaults::none());
            // Durable, so that a machine crash keeps every append; small segments, so that
            // snapshots are taken at rolls and the replay after the newest one matters.
            let config = LogConfig {
                segment_bytes: 300,
                flush_messages: 1,
                ..small_config()
            };
            let log = open(&disk, config.clone()).await;
            for i in 0..20 {
                assert_eq!(retry(&log, i * 2, 2).await, Ok(None), "{kind:?}: batch {i}");
            }
            assert!(log.segment_base_offsets().await.len() > 3);
            drop(log);
            disk.crash(kind);
            let log = open(&disk, config.clone()).await;
            assert_eq!(retry(&log, 38, 2).await, Ok(Some(38)), "{kind:?}: the last batch");
            assert_eq!(retry(&log, 30, 2).await, Ok(Some(30)), "{kind:?}: the oldest of five");
            assert_eq!(
                retry(&log, 28, 2).await,
                Err(crate::error::ErrorCode::OutOfOrderSequenceNumber),
                "{kind:?}: out of the window"
            );
            assert_eq!(
                retry(&log, 41, 1).await,
                Err(crate::error::ErrorCode::OutOfOrderSequenceNumber)
            );
            // Truncation rolls the state back: the truncated batches are new again.
            log.truncate_to(34).await.unwrap();
            assert_eq!(retry(&log, 32, 2).await, Ok(Some(32)), "{kind:?}: kept");
            assert_eq!(
                retry(&log, 36, 2).await,
                Err(crate::error::ErrorCode::OutOfOrderSequenceNumber)
            );
            assert_eq!(
                retry(&log, 34, 2).await,
                Ok(None),
                "{kind:?}: truncated, so appended again"
            );
            assert_eq!(log.log_end_offset().await, 36);
            assert_eq!(values(&read_all(&log).await), expected(0..36));
        }
    })
}

#[test]
fn producer_snapshots_that_are_damaged_or_ahead_are_dropped() {
    run(async {
        let disk = SimStorage::new(4, DiskFaults::none());
        let config = LogConfig {
            segment_bytes: 300,
            ..small_config()
        };
        let log = open(&disk, config.clone()).await;
        for i in 0..20 {
            assert_eq!(retry(&log, i * 2, 2).await, Ok(None));
        }
        log.close(0).await.unwrap();
        drop(log);
        // Flip a bit in every snapshot: the log replays from its start instead.
        let names = disk.list(Path::new(DIR)).await.unwrap();
        let snapshots: Vec<_> = names.iter().filter(|n| n.ends_with(".snapshot")).collect();
        assert!(!snapshots.is_empty());
        for name in &snapshots {
            disk.flip_bit(&Path::new(DIR).join(name), 8, 3).unwrap();
        }
        let log = open(&disk, config.clone()).await;
        assert_eq!(retry(&log, 38, 2).await, Ok(Some(38)));
        let names = disk.list(Path::new(DIR)).await.unwrap();
        for name in &snapshots {
            assert!(!names.contains(name), "damaged snapshot {name} removed");
        }
    })
}

#[test]
fn directories_created_durably_survive_a_power_loss() {
    run(async {
        for durably in [false, true] {
            let disk = SimStorage::new(5, DiskFaults::none());
            let dir = Path::new("/var/lib/klamm");
            if durably {
                crate::io::create_dir_all_durably(&disk, dir).await.unwrap();
            } else {
                disk.create_dir_all(dir).await.unwrap();
            }
            disk.crash(CrashKind::Machine);
            assert_eq!(
                disk.list(Path::new("/var/lib")).await.is_ok_and(|n| n == ["klamm"]),
                durably
            );
        }
    })
}

#[test]
fn the_high_watermark_only_advances() {
    run(async {
        let disk = SimStorage::new(6, DiskFaults::none());
        let log = open(&disk, small_config()).await;
        log.append_as_leader(batch(0, 10, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap();
        // Appends finishing out of order raise it to their own ends: 10, then 4.
        assert_eq!(log.advance_high_watermark(10).await, 10);
        assert_eq!(log.advance_high_watermark(4).await, 10);
        assert_eq!(
            log.advance_high_watermark(99).await,
            10,
            "clamped to the log end offset"
        );
    })
}

fn compacted_config() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..small_config()
    }
}

/// Six small segments of keyed records, k0..k2 written over and over, all below the high
/// watermark and flushed; one cleaner group covers them.
async fn keyed_log(disk: &SimStorage) -> UnifiedLog<SimStorage> {
    let log = open(disk, compacted_config()).await;
    for i in 0..6u32 {
        let mut b = RecordBatchBuilder::new(Compression::None);
        for j in 0..2u32 {
            let n = i * 2 + j;
            b.append(
                100,
                Some(format!("k{}", n % 3).as_bytes()),
                Some(format!("v{n}").as_bytes()),
                &[],
            );
        }
        log.append_as_leader(b.build(), 0, AppendOrigin::Client, 100)
            .await
            .unwrap();
        log.roll_now().await.unwrap();
    }
    let end = log.log_end_offset().await;
    log.advance_high_watermark(end).await;
    log.flush(100).await.unwrap();
    log
}

#[test]
fn the_cleaner_keeps_the_last_record_of_each_key() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = keyed_log(&disk).await;
        let before = read_all(&log).await;
        assert_eq!(before.len(), 12);
        let stats = log.clean(200, 1 << 20).await.unwrap();
        assert_eq!((stats.records_removed, stats.segments_cleaned, stats.keys), (9, 6, 3));
        assert_eq!((stats.first_dirty_offset, stats.end_offset), (0, 12));
        let after = read_all(&log).await;
        // The last of k0, k1, k2: v9, v10, v11 at their offsets.
        assert_eq!(
            after.iter().map(|r| (r.0, r.2.as_str())).collect::<Vec<_>>(),
            [(9, "v9"), (10, "v10"), (11, "v11")]
        );
        assert_eq!(
            log.segment_base_offsets().await,
            [0, 12],
            "one cleaned segment and the active one"
        );
        // A read from a removed offset gets the next record; a second pass finds nothing dirty.
        let info = log.read(3, 4096, None, true).await.unwrap();
        assert_eq!(
            info.batches[0].base_offset, 8,
            "the batch holding 9 keeps its base offset"
        );
        assert_eq!(log.clean(300, 1 << 20).await.unwrap().records_removed, 0);
        // Appends go on at the log end, and the cleaned log survives a power loss and reopens.
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.append(300, Some(b"k0"), Some(b"v12"), &[]);
        let info = log
            .append_as_leader(b.build(), 0, AppendOrigin::Client, 300)
            .await
            .unwrap();
        assert_eq!(info.first_offset, 12);
        log.flush(300).await.unwrap();
        drop(log);
        disk.crash(CrashKind::Machine);
        let log = open(&disk, compacted_config()).await;
        let mut want = after.clone();
        want.push((12, 300, "v12".to_string()));
        assert_eq!(read_all(&log).await, want);
    })
}

#[test]
fn compacted_topics_refuse_records_without_a_key() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = open(&disk, compacted_config()).await;
        let err = log
            .append_as_leader(batch(0, 2, 100), 0, AppendOrigin::Client, 100)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRecord);
    })
}

#[test]
fn an_interrupted_cleaner_swap_is_finished_or_undone_on_open() {
    run(async {
        // The cleaned segment, from a log that finished its pass.
        let cleaned_disk = SimStorage::new(1, DiskFaults::none());
        let cleaned_log = keyed_log(&cleaned_disk).await;
        cleaned_log.clean(200, 1 << 20).await.unwrap();
        let after = read_all(&cleaned_log).await;
        let cleaned_path = Path::new(DIR).join(log_file_name(0));
        let file = cleaned_disk
            .open(&cleaned_path, crate::io::OpenMode::Existing)
            .await
            .unwrap();
        let cleaned = file.read_at(0, file.len().await.unwrap() as usize).await.unwrap();
        // (suffix of the file the crash left, old segments the pass had deleted, expected)
        let cases: [(&str, &[i64], bool); 4] = [
            ("log.cleaned", &[], false),
            ("log.swap", &[], true),
            ("log.swap", &[0], true),
            ("log.swap", &[0, 2, 4], true),
        ];
        for (suffix, deleted, finished) in cases {
            let disk = SimStorage::new(1, DiskFaults::none());
            let log = keyed_log(&disk).await;
            let before = read_all(&log).await;
            log.close(100).await.unwrap();
            drop(log);
            let path = Path::new(DIR).join(format!("{:020}.{suffix}", 0));
            let f = disk.open(&path, crate::io::OpenMode::Create).await.unwrap();
            f.append(cleaned.clone()).await.unwrap();
            f.sync_data().await.unwrap();
            for &base in deleted {
                disk.remove(&Path::new(DIR).join(log_file_name(base))).await.unwrap();
            }
            disk.sync_dir(Path::new(DIR)).await.unwrap();
            disk.crash(CrashKind::Machine);
            let log = open(&disk, compacted_config()).await;
            let want = if finished { &after } else { &before };
            assert_eq!(&read_all(&log).await, want, "{suffix} with {deleted:?} deleted");
            let names = disk.list(Path::new(DIR)).await.unwrap();
            assert!(
                !names.iter().any(|n| n.ends_with(".cleaned") || n.ends_with(".swap")),
                "{names:?}"
            );
        }
    })
}

#[test]
fn damage_stops_the_cleaner_without_taking_the_directory_offline() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let log = keyed_log(&disk).await;
        let before = read_all(&log).await;
        // A bit flips inside the CRC-covered bytes of an inactive segment.
        disk.flip_bit(&Path::new(DIR).join(log_file_name(4)), 40, 3).unwrap();
        let err = log.clean(200, 1 << 20).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::CorruptMessage, "{err:?}");
        // Nothing was swapped and the log still serves and appends.
        let names = disk.list(Path::new(DIR)).await.unwrap();
        assert!(
            !names.iter().any(|n| n.contains(".cleaned") || n.contains(".swap")),
            "{names:?}"
        );
        let info = log.read(0, 4096, Some(4), true).await.unwrap();
        assert_eq!(info.batches.iter().map(|b| b.base_offset).collect::<Vec<_>>(), [0]);
        assert_eq!(before.len(), 12);
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.append(300, Some(b"k0"), Some(b"v12"), &[]);
        log.append_as_leader(b.build(), 0, AppendOrigin::Client, 300)
            .await
            .unwrap();
    })
}

/// Batches of 1 to 3 records whose values run from a few bytes to 6 KiB, so that range reads
/// meet both small batches (several headers in one read) and big ones (a header per read).
async fn mixed_size_log(disk: &SimStorage) -> (UnifiedLog<SimStorage>, Vec<(i64, u64)>) {
    let log = open(
        disk,
        LogConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        },
    )
    .await;
    let sizes = [5usize, 6000, 3, 40, 5000, 4100, 10, 10, 10, 9000, 2, 700];
    for (i, size) in sizes.iter().enumerate() {
        let mut b = RecordBatchBuilder::new(Compression::None);
        for _ in 0..1 + i % 3 {
            b.append(0, None, Some(&vec![b'x'; *size]), &[]);
        }
        log.append_as_leader(b.build(), 0, AppendOrigin::Client, 0)
            .await
            .unwrap();
    }
    let all = log.read(0, 1 << 20, None, true).await.unwrap();
    let mut position = all.position;
    let mut placed = Vec::new();
    for header in &all.batches {
        placed.push((header.base_offset, position));
        position += header.size() as u64;
    }
    (log, placed)
}

#[test]
fn range_reads_find_the_batches_that_copying_reads_return() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let (log, placed) = mixed_size_log(&disk).await;
        let end = log.log_end_offset().await;
        let mut compared = 0;
        for fetch in 0..=end {
            for max_bytes in [0, 1, 60, 61, 200, 4096, 6100, 12_000, 20_000, 1 << 20] {
                for max_offset in [None, Some(end / 2), Some(fetch)] {
                    for min_one in [false, true] {
                        let copied = log.read(fetch, max_bytes, max_offset, min_one).await.unwrap();
                        let range = log.read_range(fetch, max_bytes, max_offset, min_one).await.unwrap();
                        let what = format!("read({fetch}, {max_bytes}, {max_offset:?}, {min_one})");
                        assert_eq!(range.batches, copied.batches, "{what}");
                        assert_eq!(range.size, copied.records.len(), "{what}");
                        assert!(range.records.is_empty(), "{what}");
                        if let Some(first) = copied.batches.first() {
                            assert_eq!(range.position, copied.position, "{what}");
                            let file = range.file.as_ref().unwrap();
                            assert_eq!(file.read_at(range.position, range.size).await.unwrap(), copied.records);
                            assert!(placed.contains(&(first.base_offset, range.position)), "{what}");
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert!(compared > 500, "{compared}");
    })
}

#[test]
fn range_reads_check_headers_and_leave_crcs_to_the_consumer() {
    run(async {
        let disk = SimStorage::new(1, DiskFaults::none());
        let (log, placed) = mixed_size_log(&disk).await;
        let path = Path::new(DIR).join(log_file_name(0));
        let bases = |info: &LogReadInfo<_>| info.batches.iter().map(|b| b.base_offset).collect::<Vec<i64>>();
        // A flipped bit in the records of the fourth batch: the copying read stops before
        // it and fails when it is first; the range read, which does not read records,
        // serves it, for the consumer's CRC check to catch (as Kafka's fetch does).
        let (fourth, at) = placed[3];
        disk.flip_bit(&path, at + 70, 1).unwrap();
        let copied = log.read(0, 1 << 20, None, true).await.unwrap();
        assert_eq!(bases(&copied), placed[..3].iter().map(|p| p.0).collect::<Vec<_>>());
        assert_eq!(
            log.read(fourth, 1 << 20, None, true).await.unwrap_err().code,
            ErrorCode::CorruptMessage
        );
        let range = log.read_range(0, 1 << 20, None, true).await.unwrap();
        assert_eq!(bases(&range), placed.iter().map(|p| p.0).collect::<Vec<_>>());
        // A flipped bit in the base offset of the seventh batch, outside the CRC: both reads
        // stop before it, and both fail when it would be first.
        let (seventh, at) = placed[6];
        disk.flip_bit(&path, at + 7, 2).unwrap();
        let range = log.read_range(placed[4].0, 1 << 20, None, true).await.unwrap();
        assert_eq!(bases(&range), [placed[4].0, placed[5].0]);
        for read in [
            log.read(seventh, 1 << 20, None, true).await,
            log.read_range(seventh, 1 << 20, None, true).await,
        ] {
            assert_eq!(read.unwrap_err().code, ErrorCode::CorruptMessage);
        }
    })
}

/// A roll does not sync the segment it seals (the flush after a roll runs later, off the
/// append path). A power loss before that flush may take the sealed segment's tail whole
/// while writeback kept the next segment: recovery must drop the next segment rather than
/// leave a gap in the offsets (found by `random_log_operations_match_the_model`).
#[test]
fn a_power_loss_before_the_flush_after_a_roll_leaves_no_gap() {
    run(async {
        let disk = SimStorage::new(3, DiskFaults::none());
        let log = open(&disk, small_config()).await;
        log.append_as_leader(batch(0, 2, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap();
        log.flush(0).await.unwrap();
        log.append_as_leader(batch(2, 2, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap();
        log.roll_now().await.unwrap();
        assert_eq!(log.recovery_point().await, 2, "the roll did not sync");
        let info = log
            .append_as_leader(batch(4, 2, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap();
        assert_eq!(info.segment_base_offset, 4);
        // Writeback reached the new segment, not the sealed one's tail.
        let newer = disk
            .open(&Path::new(DIR).join(log_file_name(4)), crate::io::OpenMode::Existing)
            .await
            .unwrap();
        newer.sync_data().await.unwrap();
        drop(log);
        disk.crash(CrashKind::Machine);
        let log = open(&disk, small_config()).await;
        assert_eq!(log.log_end_offset().await, 2);
        assert_eq!(values(&read_all(&log).await), expected(0..2));
        assert_eq!(log.segment_base_offsets().await, [0]);
    })
}

/// A roll syncs nothing while it holds the log's lock: every append and fetch of the
/// partition waits for that lock, and a sync there waits behind the disk's writeback of
/// the segment just sealed (hundreds of milliseconds for a 1 GiB segment on a busy disk).
/// The directory entry, the producer snapshot and the sealed segment are synced by the
/// flush after the roll, and a durable append syncs the directory itself.
#[test]
fn a_roll_syncs_nothing_and_the_flush_after_it_makes_it_durable() {
    run(async {
        for durable in [false, true] {
            let disk = SimStorage::new(7, DiskFaults::none());
            let config = LogConfig {
                flush_messages: if durable { 1 } else { i64::MAX },
                ..small_config()
            };
            let log = open(&disk, config.clone()).await;
            // An idempotent producer, so that the producer snapshot has something in it.
            assert_eq!(retry(&log, 0, 2).await, Ok(None));
            let syncs = disk.stats().syncs;
            log.roll_now().await.unwrap();
            assert_eq!(disk.stats().syncs, syncs, "durable {durable}: the roll synced");
            assert_eq!(retry(&log, 2, 2).await, Ok(None));
            let snapshots = |names: Vec<String>| names.into_iter().filter(|n| n.ends_with(".snapshot")).count();
            assert_eq!(snapshots(disk.list(Path::new(DIR)).await.unwrap()), 0);
            if durable {
                // Acknowledged means durable: the sync before the answer also made the new
                // segment's directory entry durable.
                drop(log);
                disk.crash(CrashKind::Machine);
                let log = open(&disk, config.clone()).await;
                assert_eq!(
                    values(&read_all(&log).await),
                    expected(0..4),
                    "durable append after a roll"
                );
                assert_eq!(log.segment_base_offsets().await, [0, 2]);
                continue;
            }
            log.flush_rolled_segments().await.unwrap();
            assert_eq!(log.recovery_point().await, 2);
            assert_eq!(
                snapshots(disk.list(Path::new(DIR)).await.unwrap()),
                1,
                "the roll's snapshot"
            );
            log.flush(0).await.unwrap();
            drop(log);
            disk.crash(CrashKind::Machine);
            let log = open(&disk, config.clone()).await;
            assert_eq!(values(&read_all(&log).await), expected(0..4), "flushed after a roll");
            // The producer state came back: the retry of the last batch is a duplicate.
            assert_eq!(retry(&log, 2, 2).await, Ok(Some(2)));
        }
    })
}

#[test]
fn the_flush_after_a_roll_moves_the_recovery_point() {
    run(async {
        let disk = SimStorage::new(3, DiskFaults::none());
        let log = open(&disk, small_config()).await;
        for i in 0..3 {
            let info = log
                .append_as_leader(batch(i * 2, 2, 0), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
            assert!(!info.rolled);
        }
        log.roll_now().await.unwrap();
        let info = log
            .append_as_leader(batch(6, 2, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap();
        assert_eq!(log.recovery_point().await, 0);
        log.flush_rolled_segments().await.unwrap();
        assert_eq!(log.recovery_point().await, info.segment_base_offset);
        // Everything before the active segment is now durable.
        drop(log);
        disk.crash(CrashKind::Machine);
        let log = open(&disk, small_config()).await;
        assert_eq!(values(&read_all(&log).await)[..6], expected(0..6)[..]);
    })
}

type LogOp = fn(Arc<UnifiedLog<SimStorage>>) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ErrorCode>> + Send>>;

/// A topic deleted while a call on its log waits for the log's lock (the broker's
/// background flush and retention run beside DeleteTopics): the call answers
/// UNKNOWN_TOPIC_OR_PARTITION and leaves the log directory online. It used to check
/// before the lock only, then write a checkpoint into the removed directory, which took
/// the whole directory (and a one-directory broker) offline.
#[test]
fn a_call_that_waited_for_a_delete_finds_the_log_gone() {
    fn op<T: 'static>(
        f: impl Future<Output = crate::error::KafkaResult<T>> + Send + 'static,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ErrorCode>> + Send>> {
        Box::pin(async move { f.await.map(drop).map_err(|e| e.code) })
    }
    // (what, the call, whether it takes the lock before the delete does; only the flush
    // after a roll, which holds the sync lock that a delete also takes, then finishes
    // before the delete begins)
    let cases: [(&str, LogOp, bool); 11] = [
        (
            "read",
            |l| op(async move { l.read(0, 4096, None, true).await.map(drop) }),
            false,
        ),
        (
            "offset by timestamp",
            |l| op(async move { l.fetch_offset_by_timestamp(0).await }),
            false,
        ),
        (
            "delete records",
            |l| op(async move { l.delete_records_before(1).await }),
            false,
        ),
        (
            "retention",
            |l| op(async move { l.delete_old_segments(i64::MAX / 2).await }),
            false,
        ),
        ("truncate", |l| op(async move { l.truncate_to(1).await }), false),
        (
            "truncate fully",
            |l| op(async move { l.truncate_fully_and_start_at(50).await }),
            false,
        ),
        (
            "maybe flush",
            |l| op(async move { l.maybe_flush(i64::MAX / 2).await }),
            false,
        ),
        ("flush", |l| op(async move { l.flush(0).await }), false),
        ("roll", |l| op(async move { l.roll_now().await }), false),
        ("close", |l| op(async move { l.close(0).await }), false),
        (
            "flush rolled segments",
            |l| op(async move { l.flush_rolled_segments().await }),
            true,
        ),
    ];
    for (what, call, call_first) in cases {
        run(async {
            let (log, failure) = rolled_log().await;
            let held = log.state.lock().await;
            let delete = |l: Arc<UnifiedLog<SimStorage>>| tokio::spawn(async move { l.delete().await });
            let (deleting, calling) = if call_first {
                let calling = tokio::spawn(call(log.clone()));
                tokio::task::yield_now().await;
                (delete(log.clone()), calling)
            } else {
                let deleting = delete(log.clone());
                tokio::task::yield_now().await;
                (deleting, tokio::spawn(call(log.clone())))
            };
            // Both wait for the lock now, in the order the case asks for.
            tokio::task::yield_now().await;
            drop(held);
            deleting.await.unwrap().unwrap();
            let result = calling.await.unwrap_or_else(|e| panic!("{what}: {e}"));
            // A flush after a roll that started first holds the log's sync lock, which a
            // delete takes too: it finishes before the delete begins.
            let want = if call_first {
                Ok(())
            } else {
                Err(ErrorCode::UnknownTopicOrPartition)
            };
            assert_eq!(result, want, "{what}");
            assert!(!failure.is_offline(), "{what}: {:?}", failure.reason());
        })
    }
}

/// A log of several segments, its high watermark at its end, not yet flushed.
async fn rolled_log() -> (Arc<UnifiedLog<SimStorage>>, Arc<LogDirFailureChannel>) {
    let disk = SimStorage::new(1, DiskFaults::none());
    let failure = LogDirFailureChannel::new();
    let config = LogConfig {
        // Appends at 0 do not flush; `maybe_flush` much later does.
        flush_ms: 1000,
        retention_ms: 1,
        ..small_config()
    };
    let log = Arc::new(
        UnifiedLog::open(disk.clone(), Path::new(DIR), config, failure.clone(), 0)
            .await
            .unwrap(),
    );
    for i in 0..40 {
        log.append_as_leader(batch(i * 4, 4, 0), 0, AppendOrigin::Client, 0)
            .await
            .unwrap();
    }
    let end = log.log_end_offset().await;
    log.update_high_watermark(end).await;
    let bases = log.segment_base_offsets().await;
    assert!(bases.len() > 2, "rolled: {bases:?}");
    (log, failure)
}

/// An append that finished just before its topic's delete took the lock moves the high
/// watermark of an emptied log: nothing to move, and no panic (found by the simulator's
/// churn scenario, seed 14).
#[test]
fn a_high_watermark_move_that_waited_for_a_delete_changes_nothing() {
    for advance in [true, false] {
        run(async {
            let (log, failure) = rolled_log().await;
            let end = log.log_end_offset().await;
            let held = log.state.lock().await;
            let deleting = tokio::spawn({
                let log = log.clone();
                async move { log.delete().await }
            });
            tokio::task::yield_now().await;
            let moving = tokio::spawn({
                let log = log.clone();
                async move {
                    if advance {
                        log.advance_high_watermark(end + 4).await
                    } else {
                        log.update_high_watermark(end + 4).await
                    }
                }
            });
            tokio::task::yield_now().await;
            drop(held);
            deleting.await.unwrap().unwrap();
            moving.await.unwrap_or_else(|e| panic!("advance {advance}: {e}"));
            let read = log.read(0, 4096, None, true).await.map(drop).map_err(|e| e.code);
            assert_eq!(read, Err(ErrorCode::UnknownTopicOrPartition), "advance {advance}");
            assert!(!failure.is_offline(), "advance {advance}: {:?}", failure.reason());
        })
    }
}
