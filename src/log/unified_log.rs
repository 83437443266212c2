//! UnifiedLog: one partition's log over the disk seam.
//!
//! Appends are serialised by one lock; CPU work (validation, decompression) runs before
//! it. In durable mode (`flush.messages=1`) an append returns only once its data is synced,
//! and appends that wait together share one fdatasync (group commit).
//!
//! Any I/O error marks the log directory offline through its [`LogDirFailureChannel`]; from
//! then on every operation answers KAFKA_STORAGE_ERROR. A failed sync is never retried:
//! Linux may have dropped the data it was to write.

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::Mutex;

use super::checkpoint::LogCheckpoint;
use super::cleaner::{filter_batch, FilterRules, Filtered, OffsetMap};
use super::partition_metadata;
use super::producer_state::{last_sequence, ProducerStateManager, SequenceCheck};
use super::segment::{log_file_name, parse_file_name, Found, LogSegment, ScanEnd};
use crate::config::{LogConfig, SEGMENT_BYTES_MAX};
use crate::error::{ErrorCode, KafkaError, KafkaResult};
use crate::io::{read_to_end, write_atomically, OpenMode, Storage, StorageFile};
use crate::record::{
    self, crc_matches, AppendOrigin, BatchFrames, BatchHeader, Records, TimestampType, ValidationLimits,
    RECORD_BATCH_OVERHEAD,
};

/// Kafka's LogDirFailureChannel: the shared flag that takes a whole log directory offline
/// after an I/O error.
#[derive(Debug, Default)]
pub struct LogDirFailureChannel {
    offline: AtomicBool,
    reason: StdMutex<Option<String>>,
    went_offline: tokio::sync::Notify,
}

impl LogDirFailureChannel {
    pub fn new() -> Arc<LogDirFailureChannel> {
        Arc::new(LogDirFailureChannel::default())
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn mark_offline(&self, why: String) {
        let mut reason = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if reason.is_none() {
            *reason = Some(why);
        }
        self.offline.store(true, Ordering::Release);
        self.went_offline.notify_waiters();
    }

    /// Resolves once the directory is offline.
    pub async fn offline(&self) {
        loop {
            let notified = self.went_offline.notified();
            if self.is_offline() {
                return;
            }
            notified.await;
        }
    }
}

/// What an append wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogAppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    /// The broker's time stamped on the batches under LogAppendTime, else -1.
    pub log_append_time: i64,
    pub records_count: i64,
    pub segment_base_offset: i64,
    /// Where the batches start in the segment's `.log` file.
    pub position: u64,
    pub bytes: u64,
    /// A retried idempotent batch already in the log: nothing was appended, and the
    /// offsets are the original ones.
    pub duplicate: bool,
    /// This append rolled the log: the segment it sealed is not yet synced, and the
    /// caller should run [`UnifiedLog::flush_rolled_segments`] soon, off its own path.
    pub rolled: bool,
}

/// What a read found: whole batches from one segment, as bytes and as the file range they
/// came from, so that the server may send the range without copying.
#[derive(Clone, Debug)]
pub struct LogReadInfo<F> {
    /// The batches' bytes ([`UnifiedLog::read`]); empty from [`UnifiedLog::read_range`].
    pub records: Bytes,
    /// The length of the range in the file, whichever read made it.
    pub size: usize,
    pub batches: Vec<BatchHeader>,
    /// The segment file and the range of `records` in it; `None` when nothing was read.
    pub file: Option<F>,
    pub segment_base_offset: i64,
    pub position: u64,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
}

pub struct UnifiedLog<S: Storage> {
    storage: S,
    dir: PathBuf,
    config: StdMutex<Arc<LogConfig>>,
    failure: Arc<LogDirFailureChannel>,
    /// Visible to the log's tests, which hold it to order calls that wait for it.
    pub(super) state: Mutex<LogState<S>>,
    /// Held by the one group-commit sync in flight.
    sync_lock: Mutex<()>,
    /// Every offset below this is durable.
    flushed_offset: AtomicI64,
    /// Bumped by truncation, so that a sync that began before it does not claim offsets
    /// that were truncated and written again.
    truncations: AtomicU64,
    /// The `LogState::dir_changes` count that the last completed sync of the log directory
    /// covered: a segment created after it may vanish in a power loss.
    dir_synced: AtomicU64,
    deleted: AtomicBool,
}

pub(super) struct LogState<S: Storage> {
    segments: BTreeMap<i64, LogSegment<S>>,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    recovery_point: i64,
    /// The idempotent producers' sequence state, as of the log end offset.
    producers: ProducerStateManager,
    messages_since_flush: i64,
    last_flush_ms: i64,
    use_tick: u64,
    /// The log cleaner's first dirty offset: everything below was cleaned (in memory only;
    /// after a restart the first pass treats the whole log as dirty).
    first_dirty_offset: i64,
    /// Segments created in the log directory (by a roll) since the log was opened; the
    /// directory is durable up to `UnifiedLog::dir_synced` of them.
    dir_changes: u64,
    /// The producer state encoded at the last roll, with the offset it is valid at, not yet
    /// written: the flush after the roll writes it (Kafka also flushes the roll's producer
    /// snapshot in the background), so that no sync runs under the lock at a roll.
    pending_snapshot: Option<(i64, Bytes)>,
}

impl<S: Storage> LogState<S> {
    /// The base offset of the segment that holds `offset` (`i64::MIN` if none starts at or
    /// below it), where a flush or sync from `offset` on begins.
    fn segment_base_at_or_below(&self, offset: i64) -> i64 {
        self.segments
            .range(..=offset)
            .next_back()
            .map(|(&b, _)| b)
            .unwrap_or(i64::MIN)
    }
}

impl<S: Storage> UnifiedLog<S> {
    /// Opens the log in `dir`, creating it if missing, and recovers it: segments from the
    /// one holding the recovery point on are validated batch by batch and truncated at the
    /// first torn or corrupt batch; later segments are deleted, as Kafka does.
    pub async fn open(
        storage: S,
        dir: &Path,
        config: LogConfig,
        failure: Arc<LogDirFailureChannel>,
        now_ms: i64,
    ) -> io::Result<UnifiedLog<S>> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let log = UnifiedLog::load(storage, dir, config, failure.clone(), now_ms).await;
        if let Err(e) = &log {
            failure.mark_offline(format!("opening {}: {e}", dir.display()));
        }
        log
    }

    async fn load(
        storage: S,
        dir: &Path,
        config: LogConfig,
        failure: Arc<LogDirFailureChannel>,
        now_ms: i64,
    ) -> io::Result<UnifiedLog<S>> {
        storage.create_dir_all(dir).await?;
        if let Some(parent) = dir.parent() {
            storage.sync_dir(parent).await?;
        }
        finish_cleaner_swaps(&storage, dir).await?;
        let names = storage.list(dir).await?;
        let checkpoint = LogCheckpoint::read(&storage, dir).await?;
        let mut bases = Vec::new();
        for name in &names {
            if name.ends_with(".tmp") {
                storage.remove(&dir.join(name)).await?;
            } else if let Some((base, "log")) = parse_file_name(name) {
                bases.push(base);
            }
        }
        let log_start_checkpoint = checkpoint.map(|c| c.log_start_offset).unwrap_or(0);
        // Index files without their log, from a crash in the middle of a delete.
        for name in &names {
            if let Some((base, "index" | "timeindex")) = parse_file_name(name) {
                if bases.binary_search(&base).is_err() {
                    storage.remove(&dir.join(name)).await?;
                }
            }
        }
        let mut segments = BTreeMap::new();
        for &base in &bases {
            segments.insert(base, LogSegment::open(&storage, dir, base).await?);
        }
        // Segments wholly below the log start offset: a retention delete that a crash cut short.
        let mut doomed = Vec::new();
        let keys: Vec<i64> = segments.keys().copied().collect();
        for pair in keys.windows(2) {
            if pair[1] <= log_start_checkpoint {
                doomed.push(pair[0]);
            }
        }
        for base in doomed {
            segments.remove(&base).expect("listed").delete(&storage).await?;
        }
        if segments.is_empty() {
            let segment = LogSegment::create(&storage, dir, log_start_checkpoint).await?;
            storage.sync_dir(dir).await?;
            segments.insert(log_start_checkpoint, segment);
        }
        let first_base = *segments.keys().next().expect("at least one segment");
        let recovery_point = checkpoint.map(|c| c.recovery_point).unwrap_or(first_base);
        let recover_from = segments
            .range(..=recovery_point)
            .next_back()
            .map(|(&b, _)| b)
            .unwrap_or(first_base);
        let clean = match checkpoint {
            Some(c) => clean_shutdown_end(&storage, &config, &mut segments, c.recovery_point).await?,
            None => None,
        };
        let log_end_offset = match clean {
            Some(end) => end,
            None => recover_segments(&storage, &config, &mut segments, recover_from).await?,
        };
        let log_start_offset = log_start_checkpoint.max(first_base).min(log_end_offset);
        let state = LogState {
            segments,
            log_start_offset,
            log_end_offset,
            high_watermark: log_start_offset,
            recovery_point: recover_from,
            producers: ProducerStateManager::default(),
            messages_since_flush: 0,
            last_flush_ms: now_ms,
            use_tick: 0,
            first_dirty_offset: 0,
            dir_changes: 0,
            pending_snapshot: None,
        };
        let log = UnifiedLog {
            storage,
            dir: dir.to_path_buf(),
            config: StdMutex::new(Arc::new(config)),
            failure,
            state: Mutex::new(state),
            sync_lock: Mutex::new(()),
            flushed_offset: AtomicI64::new(recover_from),
            truncations: AtomicU64::new(0),
            dir_synced: AtomicU64::new(0),
            deleted: AtomicBool::new(false),
        };
        {
            // Make what recovery kept durable, so that recovering again gives the same log.
            let mut state = log.state.lock().await;
            log.load_producer_state(&mut state, now_ms).await?;
            log.flush_locked(&mut state, now_ms).await?;
            log.write_checkpoint(&state).await?;
            log.check_invariants(&state);
        }
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The topic's log config now (AlterConfigs may change it).
    pub fn config(&self) -> Arc<LogConfig> {
        self.config.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the config; it takes effect from the next operation, as in Kafka.
    pub fn set_config(&self, config: LogConfig) -> Result<(), String> {
        config.validate()?;
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// Validates, stamps and appends the batches in `records` as the partition leader:
    /// offsets from the log end offset, `leader_epoch`, and LogAppendTime if configured.
    /// A client's request holds exactly one batch, as Kafka requires for magic 2.
    pub async fn append_as_leader(
        &self,
        records: BytesMut,
        leader_epoch: i32,
        origin: AppendOrigin,
        now_ms: i64,
    ) -> KafkaResult<LogAppendInfo> {
        self.check_online()?;
        // One config for the whole append, even if AlterConfigs changes it meanwhile.
        let config = self.config();
        let mut records = records;
        let summaries = self.validate(&records, origin, now_ms)?;
        let mut state = self.state.lock().await;
        self.check_online()?;
        if origin == AppendOrigin::Client {
            for (_, summary) in &summaries {
                let h = &summary.header;
                if h.producer_id < 0 {
                    continue;
                }
                let last_seq = last_sequence(h.base_sequence, h.last_offset_delta);
                let check = match state
                    .producers
                    .check(h.producer_id, h.producer_epoch, h.base_sequence, last_seq)
                {
                    Err(e) if crate::canary::ACCEPT_SEQUENCE_GAP && e.code == ErrorCode::OutOfOrderSequenceNumber => {
                        Ok(SequenceCheck::Append)
                    }
                    check => check,
                };
                if let SequenceCheck::Duplicate(batch) = check? {
                    if summaries.len() != 1 {
                        return Err(KafkaError::new(
                            ErrorCode::InvalidRecord,
                            "a retried idempotent batch must come alone",
                        ));
                    }
                    drop(state);
                    // The original may still wait for its sync: answer only once it is durable.
                    if config.durable() && !crate::canary::ACK_BEFORE_SYNC {
                        self.sync_to(batch.last_offset + 1).await?;
                    }
                    return Ok(LogAppendInfo {
                        first_offset: batch.first_offset,
                        last_offset: batch.last_offset,
                        max_timestamp: -1,
                        offset_of_max_timestamp: batch.first_offset,
                        log_append_time: -1,
                        records_count: 0,
                        segment_base_offset: -1,
                        position: 0,
                        bytes: 0,
                        duplicate: true,
                        rolled: false,
                    });
                }
            }
        }
        let bytes = records.len() as u64;
        let active_size = state
            .segments
            .values()
            .next_back()
            .expect("a log has an active segment")
            .size;
        let incoming_timestamp = match config.message_timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => summaries.iter().map(|(_, s)| s.max_timestamp).max().unwrap_or(-1),
        };
        let rolled = self
            .must_roll(&mut state, active_size, bytes, incoming_timestamp)
            .await?;
        if rolled {
            self.roll(&mut state).await.map_err(|e| self.fail("roll", e))?;
        }
        let first_offset = state.log_end_offset;
        let log_append_time = match config.message_timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => -1,
        };
        let mut next_offset = first_offset;
        let mut max_timestamp = (-1i64, first_offset);
        let mut batches = Vec::with_capacity(summaries.len());
        for (position, summary) in summaries {
            let batch = &mut records[position..position + summary.header.size()];
            record::set_base_offset(batch, next_offset);
            record::set_partition_leader_epoch(batch, leader_epoch);
            let batch_max = match config.message_timestamp_type {
                TimestampType::LogAppendTime => (now_ms, next_offset),
                TimestampType::CreateTime => (
                    summary.max_timestamp,
                    next_offset + summary.offset_delta_of_max_timestamp as i64,
                ),
            };
            record::set_max_timestamp(batch, config.message_timestamp_type, batch_max.0);
            if batch_max.0 > max_timestamp.0 {
                max_timestamp = batch_max;
            }
            let header = BatchHeader::parse(batch).expect("validated above");
            next_offset = header.next_offset();
            batches.push((position as u32, header));
        }
        let records = records.freeze();
        let records_count = next_offset - first_offset;
        let segment = state
            .segments
            .values_mut()
            .next_back()
            .expect("a log has an active segment");
        let segment_base_offset = segment.base_offset;
        let position = segment
            .append(&self.storage, records, &batches, &*config)
            .await
            .map_err(|e| self.fail("append", e))?;
        state.log_end_offset = next_offset;
        for (_, header) in &batches {
            record_producer_batch(&mut state.producers, header, now_ms);
        }
        state.messages_since_flush += records_count;
        let flush_now = !config.durable()
            && (state.messages_since_flush >= config.flush_messages || now_ms - state.last_flush_ms >= config.flush_ms);
        if flush_now {
            self.flush_locked(&mut state, now_ms)
                .await
                .map_err(|e| self.fail("flush", e))?;
        }
        self.check_invariants(&state);
        drop(state);
        if config.durable() && !crate::canary::ACK_BEFORE_SYNC {
            self.sync_to(next_offset).await?;
        }
        Ok(LogAppendInfo {
            first_offset,
            last_offset: next_offset - 1,
            max_timestamp: max_timestamp.0,
            offset_of_max_timestamp: max_timestamp.1,
            log_append_time,
            records_count,
            segment_base_offset,
            position,
            bytes,
            duplicate: false,
            rolled,
        })
    }

    /// Reads whole batches from `fetch_offset`, up to `max_bytes` (or the first batch whole if
    /// `min_one_message`), stopping before `max_offset` (the high watermark or the last
    /// stable offset) and at the end of the segment. Every batch returned has a valid CRC.
    pub async fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
        min_one_message: bool,
    ) -> KafkaResult<LogReadInfo<S::File>> {
        self.read_with(ReadMode::Copy, fetch_offset, max_bytes, max_offset, min_one_message)
            .await
    }

    /// The same batches as [`UnifiedLog::read`], as a file range only: it reads their
    /// headers, not their records, so that the server can send the range from the file
    /// without copying it (sendfile). `records` is empty and `size` says how long the range
    /// is. Headers are checked (magic, offsets in place, whole batches); CRCs are not, as in
    /// Kafka, whose fetch path does not read the records either: the data was checked when
    /// it was appended or recovered, and the consumer checks every batch's CRC.
    pub async fn read_range(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
        min_one_message: bool,
    ) -> KafkaResult<LogReadInfo<S::File>> {
        self.read_with(ReadMode::Range, fetch_offset, max_bytes, max_offset, min_one_message)
            .await
    }

    async fn read_with(
        &self,
        mode: ReadMode,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
        min_one_message: bool,
    ) -> KafkaResult<LogReadInfo<S::File>> {
        self.check_online()?;
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        let (log_start_offset, high_watermark, log_end_offset) =
            (state.log_start_offset, state.high_watermark, state.log_end_offset);
        if fetch_offset < log_start_offset || fetch_offset > log_end_offset {
            return Err(KafkaError::new(
                ErrorCode::OffsetOutOfRange,
                format!("offset {fetch_offset} is outside [{log_start_offset}, {log_end_offset}]"),
            ));
        }
        let mut info = LogReadInfo {
            records: Bytes::new(),
            size: 0,
            batches: Vec::new(),
            file: None,
            segment_base_offset: -1,
            position: 0,
            log_start_offset,
            high_watermark,
            log_end_offset,
        };
        let upper = max_offset.unwrap_or(log_end_offset).min(log_end_offset);
        if fetch_offset >= upper {
            return Ok(info);
        }
        let start = state
            .segments
            .range(..=fetch_offset)
            .next_back()
            .map(|(&b, _)| b)
            .expect("the first segment starts at or below the log start offset");
        let bases: Vec<i64> = state.segments.range(start..).map(|(&b, _)| b).collect();
        for base in bases {
            self.touch(&mut state, base);
            let segment = state.segments.get_mut(&base).expect("listed above");
            let found = segment
                .find_batch(&self.storage, &self.config(), fetch_offset)
                .await
                .map_err(|e| self.fail("read", e))?;
            let (position, header) = match found {
                Found::Batch(position, header) => (position, header),
                // Offsets are dense unless compacted, so the segment that spans the fetch
                // offset holds it: a walk that ends first met a batch header whose
                // lastOffsetDelta is damaged (it lies inside the CRC, which the walk does
                // not check). Never skip ahead to the next segment's batches.
                Found::End if !self.config().cleanup_compact => return Err(corrupt(base, segment.size)),
                Found::End => continue,
                Found::Corrupt(position) => return Err(corrupt(base, position)),
            };
            let mut want = max_bytes.min((segment.size - position) as usize);
            if min_one_message && header.size() > want {
                want = header.size();
            }
            let file = segment.file(&self.storage).await.map_err(|e| self.fail("read", e))?;
            let segment_end = state
                .segments
                .range(base + 1..)
                .next()
                .map(|(&b, _)| b)
                .unwrap_or(log_end_offset);
            let mut placement = Placement {
                expected: header.base_offset,
                compacted: self.config().cleanup_compact,
                segment_base: base,
                segment_end,
                fetch_offset,
            };
            let end = match mode {
                ReadMode::Copy => {
                    let bytes = file.read_at(position, want).await.map_err(|e| self.fail("read", e))?;
                    let mut end = 0;
                    for (at, header, batch) in BatchFrames::new(&bytes) {
                        if header.next_offset() > upper {
                            break;
                        }
                        if !placement.placed(&header, info.batches.is_empty()) || !crc_matches(batch) {
                            if info.batches.is_empty() {
                                return Err(bad_batch(base, &header));
                            }
                            break;
                        }
                        info.batches.push(header);
                        end = at + batch.len();
                    }
                    info.records = bytes.slice(..end);
                    end
                }
                ReadMode::Range => {
                    // Headers only: a window of a few KiB holds several headers of small
                    // batches; past a big batch, only its successor's header is read.
                    let mut end = 0;
                    let mut window = Bytes::new();
                    let mut window_at = 0;
                    let mut small = true;
                    while want - end >= RECORD_BATCH_OVERHEAD {
                        if end < window_at || end + RECORD_BATCH_OVERHEAD > window_at + window.len() {
                            let len = if small {
                                HEADER_WINDOW_BYTES
                            } else {
                                RECORD_BATCH_OVERHEAD
                            };
                            window_at = end;
                            window = file
                                .read_at(position + end as u64, len.min(want - end))
                                .await
                                .map_err(|e| self.fail("read", e))?;
                        }
                        let Ok(header) = BatchHeader::parse(&window[end - window_at..]) else {
                            break;
                        };
                        if header.size() > want - end || header.next_offset() > upper {
                            break;
                        }
                        if !placement.placed(&header, info.batches.is_empty()) {
                            if info.batches.is_empty() {
                                return Err(bad_batch(base, &header));
                            }
                            break;
                        }
                        small = header.size() < HEADER_WINDOW_BYTES;
                        info.batches.push(header);
                        end += header.size();
                    }
                    end
                }
            };
            info.size = end;
            info.file = Some(file);
            info.segment_base_offset = base;
            info.position = position;
            break;
        }
        self.evict_files(&mut state);
        Ok(info)
    }

    /// The offset and timestamp of the first record whose timestamp is at or after
    /// `timestamp` (ListOffsets), or `None` if every record is older.
    pub async fn fetch_offset_by_timestamp(&self, timestamp: i64) -> KafkaResult<Option<(i64, i64)>> {
        self.check_online()?;
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        let log_start_offset = state.log_start_offset;
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        let mut scratch = Vec::new();
        for base in bases {
            self.touch(&mut state, base);
            let segment = state.segments.get_mut(&base).expect("listed above");
            let indexes = segment
                .indexes(&self.storage, &self.config())
                .await
                .map_err(|e| self.fail("read", e))?;
            if indexes.max_timestamp < timestamp || indexes.next_offset <= log_start_offset {
                continue;
            }
            let from = (base + indexes.times.lookup(timestamp) as i64).max(log_start_offset);
            let mut position = match segment
                .find_batch(&self.storage, &self.config(), from)
                .await
                .map_err(|e| self.fail("read", e))?
            {
                Found::Batch(position, _) => position,
                Found::End => continue,
                Found::Corrupt(position) => return Err(corrupt(base, position)),
            };
            let file = segment.file(&self.storage).await.map_err(|e| self.fail("read", e))?;
            while position < segment.size {
                let head = file
                    .read_at(position, RECORD_BATCH_OVERHEAD)
                    .await
                    .map_err(|e| self.fail("read", e))?;
                let header = BatchHeader::parse(&head).map_err(|_| corrupt(base, position))?;
                if header.max_timestamp >= timestamp && header.last_offset() >= log_start_offset {
                    let batch = file
                        .read_at(position, header.size())
                        .await
                        .map_err(|e| self.fail("read", e))?;
                    if let Some(found) =
                        first_record_at_or_after(&batch, timestamp, log_start_offset, &self.config(), &mut scratch)?
                    {
                        return Ok(Some(found));
                    }
                }
                position += header.size() as u64;
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log (ListOffsets MAX_TIMESTAMP), or `None` if empty.
    pub async fn max_timestamp(&self) -> KafkaResult<Option<i64>> {
        self.check_online()?;
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        let log_start_offset = state.log_start_offset;
        let mut max = None;
        for segment in state.segments.values_mut() {
            let indexes = segment
                .indexes(&self.storage, &self.config())
                .await
                .map_err(|e| self.fail("read", e))?;
            if indexes.next_offset > log_start_offset && indexes.max_timestamp >= 0 {
                max = max.max(Some(indexes.max_timestamp));
            }
        }
        Ok(max)
    }

    /// Sets the high watermark, which the ReplicaManager owns. Clamped to the log.
    /// Moves the high watermark up to `high_watermark` (never down): appends that finish
    /// out of order (a group commit wakes its waiters in any order) each raise it to their
    /// own end.
    ///
    /// On a log deleted meanwhile (an append that finished just before its topic's delete
    /// took the lock) it changes nothing: the emptied log has no offsets to keep.
    pub async fn advance_high_watermark(&self, high_watermark: i64) -> i64 {
        let mut state = self.state.lock().await;
        if self.deleted.load(Ordering::Acquire) {
            return state.high_watermark;
        }
        state.high_watermark = state
            .high_watermark
            .max(high_watermark.clamp(state.log_start_offset, state.log_end_offset));
        self.check_invariants(&state);
        state.high_watermark
    }

    /// Sets the high watermark (clamped to the log); on a deleted log, changes nothing.
    pub async fn update_high_watermark(&self, high_watermark: i64) -> i64 {
        let mut state = self.state.lock().await;
        if self.deleted.load(Ordering::Acquire) {
            return state.high_watermark;
        }
        state.high_watermark = high_watermark.clamp(state.log_start_offset, state.log_end_offset);
        self.check_invariants(&state);
        state.high_watermark
    }

    /// DeleteRecords: advances the log start offset to `offset`, which must not pass the
    /// high watermark, then deletes the segments wholly below it.
    pub async fn delete_records_before(&self, offset: i64) -> KafkaResult<i64> {
        self.check_online()?;
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        if offset > state.high_watermark || offset < 0 {
            return Err(KafkaError::new(
                ErrorCode::OffsetOutOfRange,
                format!(
                    "cannot delete records before {offset}: the high watermark is {}",
                    state.high_watermark
                ),
            ));
        }
        if offset > state.log_start_offset {
            state.log_start_offset = offset;
            self.write_checkpoint(&state)
                .await
                .map_err(|e| self.fail("checkpoint", e))?;
        }
        self.delete_segments_below_start(&mut state).await?;
        self.check_invariants(&state);
        Ok(state.log_start_offset)
    }

    /// Retention: deletes the oldest inactive segments older than `retention.ms` or past
    /// `retention.bytes`, never the active one and never one past the high watermark.
    /// Returns how many went.
    pub async fn delete_old_segments(&self, now_ms: i64) -> KafkaResult<usize> {
        self.check_online()?;
        if !self.config().cleanup_delete {
            return Ok(0);
        }
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        let mut total: i64 = state.segments.values().map(|s| s.size as i64).sum();
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        let mut new_start = None;
        for pair in bases.windows(2) {
            let (base, next_base) = (pair[0], pair[1]);
            if next_base > state.high_watermark {
                break;
            }
            let segment = state.segments.get_mut(&base).expect("listed");
            let size = segment.size as i64;
            let max_timestamp = segment
                .indexes(&self.storage, &self.config())
                .await
                .map_err(|e| self.fail("retention", e))?
                .max_timestamp;
            let by_time = self.config().retention_ms >= 0 && now_ms - max_timestamp > self.config().retention_ms;
            let by_size = self.config().retention_bytes >= 0 && total - size >= self.config().retention_bytes;
            if !by_time && !by_size {
                break;
            }
            total -= size;
            new_start = Some(next_base);
        }
        let Some(mut new_start) = new_start else {
            return Ok(0);
        };
        if crate::canary::RETENTION_DELETES_ACTIVE_SEGMENT {
            new_start = state.high_watermark;
        }
        let before = state.segments.len();
        if new_start > state.log_start_offset {
            state.log_start_offset = new_start;
            self.write_checkpoint(&state)
                .await
                .map_err(|e| self.fail("checkpoint", e))?;
        }
        self.delete_segments_below_start(&mut state).await?;
        self.check_invariants(&state);
        Ok(before - state.segments.len())
    }

    /// The log cleaner's pass over a compacted log (`cleanup.policy` holds `compact`):
    /// builds the offset map of the dirty section (within `map_bytes_max`), then rewrites
    /// the cleanable segments, in groups of up to `segment.bytes`, keeping the last record
    /// of each key. Cleanable: inactive, below the high watermark and the recovery point,
    /// and older than `min.compaction.lag.ms`. Runs only once the dirty share of the
    /// cleanable bytes reaches `min.cleanable.dirty.ratio`.
    ///
    /// Each group is swapped in crash-safely: written whole to `<base>.log.cleaned` and
    /// synced, renamed to `<base>.log.swap` (the commit point), then the old segments are
    /// deleted and the swap file renamed to `<base>.log`. Opening the log finishes a swap a
    /// crash interrupted and removes a `.cleaned` file that never committed.
    ///
    /// Holds the log's lock for the whole pass: appends and reads wait (bounded by
    /// `segment.bytes` per group and the map's size).
    pub async fn clean(&self, now_ms: i64, map_bytes_max: usize) -> KafkaResult<CleanStats> {
        self.check_online()?;
        let config = self.config();
        let mut stats = CleanStats::default();
        if !config.cleanup_compact {
            return Ok(stats);
        }
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        let limits = ValidationLimits {
            decompressed_bytes_max: config.decompressed_bytes_max,
        };
        // The cleanable segments, with their sizes and max timestamps.
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        let horizon = state.high_watermark.min(state.recovery_point);
        let mut cleanable: Vec<(i64, i64, u64, i64)> = Vec::new(); // base, next base, size, max timestamp
        for pair in bases.windows(2) {
            let (base, next_base) = (pair[0], pair[1]);
            if next_base > horizon {
                break;
            }
            let segment = state.segments.get_mut(&base).expect("listed");
            let size = segment.size;
            let max_timestamp = segment
                .indexes(&self.storage, &config)
                .await
                .map_err(|e| self.fail("clean", e))?
                .max_timestamp;
            if config.min_compaction_lag_ms > 0 && now_ms.saturating_sub(max_timestamp) < config.min_compaction_lag_ms {
                break;
            }
            cleanable.push((base, next_base, size, max_timestamp));
        }
        let first_dirty = state.first_dirty_offset.max(state.log_start_offset);
        let total: u64 = cleanable.iter().map(|c| c.2).sum();
        let dirty: u64 = cleanable.iter().filter(|c| c.1 > first_dirty).map(|c| c.2).sum();
        if dirty == 0 || (dirty as f64) < config.min_cleanable_dirty_ratio * total as f64 {
            return Ok(stats);
        }
        // The offset map of the dirty section, segment by segment while the keys fit.
        let mut map = OffsetMap::new(map_bytes_max);
        let mut scratch = Vec::new();
        let mut end = first_dirty;
        'segments: for &(base, next_base, size, _) in cleanable.iter().filter(|c| c.1 > first_dirty) {
            let mut reader = self.segment_batches(&mut state, base, size).await?;
            while let Some(batches) = reader.next_chunk().await.map_err(|e| self.fail("clean", e))? {
                for (_, batch) in batches {
                    let fits = map
                        .add_batch(&batch, first_dirty, &limits, &mut scratch)
                        .map_err(|e| uncleanable(base, &e.message))?;
                    if !fits {
                        break 'segments;
                    }
                }
            }
            if !reader.finished() {
                return Err(uncleanable(base, "a batch that is not whole"));
            }
            end = next_base;
        }
        if end <= first_dirty {
            return Ok(stats);
        }
        // Group the segments below `end` by size, and clean each group.
        let tombstone_horizon = now_ms.saturating_sub(config.delete_retention_ms);
        let mut groups: Vec<Vec<(i64, i64, u64, i64)>> = Vec::new();
        for &segment in cleanable.iter().filter(|c| c.1 <= end) {
            match groups.last_mut() {
                Some(group)
                    if group.iter().map(|g| g.2).sum::<u64>() + segment.2 <= config.segment_bytes
                        && segment.1 - group[0].0 <= u32::MAX as i64 =>
                {
                    group.push(segment)
                }
                _ => groups.push(vec![segment]),
            }
        }
        for group in groups {
            let base = group[0].0;
            let cleaned_path = self.dir.join(format!("{}.cleaned", log_file_name(base)));
            let swap_path = self.dir.join(format!("{}.swap", log_file_name(base)));
            let cleaned = self
                .storage
                .open(&cleaned_path, OpenMode::Create)
                .await
                .map_err(|e| self.fail("clean", e))?;
            cleaned.truncate(0).await.map_err(|e| self.fail("clean", e))?;
            for &(segment_base, next_base, size, max_timestamp) in &group {
                stats.bytes_before += size;
                let rules_base = FilterRules {
                    // Tombstones go once their segment was cleaned before and is old enough.
                    drop_tombstones: next_base <= first_dirty && max_timestamp < tombstone_horizon,
                    keep_whole: false,
                };
                let mut reader = self.segment_batches(&mut state, segment_base, size).await?;
                while let Some(batches) = reader.next_chunk().await.map_err(|e| self.fail("clean", e))? {
                    let mut out = BytesMut::new();
                    for (header, batch) in batches {
                        let keep_whole = header.producer_id >= 0
                            && state
                                .producers
                                .get(header.producer_id)
                                .and_then(|p| p.batches.back())
                                .is_some_and(|b| b.last_offset == header.last_offset());
                        let rules = FilterRules {
                            keep_whole,
                            ..rules_base
                        };
                        let (filtered, removed) = match filter_batch(&batch, &map, rules, &limits, &mut scratch) {
                            Ok(outcome) => outcome,
                            Err(e) => {
                                let _ = self.storage.remove(&cleaned_path).await;
                                return Err(uncleanable(segment_base, &e.message));
                            }
                        };
                        stats.records_removed += removed as u64;
                        match filtered {
                            Filtered::Keep => out.extend_from_slice(&batch),
                            Filtered::Drop => {}
                            Filtered::Rewrite(bytes, _) => out.extend_from_slice(&bytes),
                        }
                    }
                    stats.bytes_after += out.len() as u64;
                    if !out.is_empty() {
                        cleaned.append(out.freeze()).await.map_err(|e| self.fail("clean", e))?;
                    }
                }
                if !reader.finished() {
                    let _ = self.storage.remove(&cleaned_path).await;
                    return Err(uncleanable(segment_base, "a batch that is not whole"));
                }
            }
            cleaned.sync_data().await.map_err(|e| self.fail("clean", e))?;
            drop(cleaned);
            // The commit point: from here a crash finishes the swap on open.
            self.storage
                .rename(&cleaned_path, &swap_path)
                .await
                .map_err(|e| self.fail("clean", e))?;
            self.storage
                .sync_dir(&self.dir)
                .await
                .map_err(|e| self.fail("clean", e))?;
            for &(segment_base, ..) in &group {
                let old = state.segments.remove(&segment_base).expect("listed");
                old.delete(&self.storage).await.map_err(|e| self.fail("clean", e))?;
            }
            self.storage
                .rename(&swap_path, &self.dir.join(log_file_name(base)))
                .await
                .map_err(|e| self.fail("clean", e))?;
            self.storage
                .sync_dir(&self.dir)
                .await
                .map_err(|e| self.fail("clean", e))?;
            let mut segment = LogSegment::open(&self.storage, &self.dir, base)
                .await
                .map_err(|e| self.fail("clean", e))?;
            let (indexes, end_of_scan) = segment
                .rebuild(&self.storage, &config)
                .await
                .map_err(|e| self.fail("clean", e))?;
            assert_eq!(end_of_scan, ScanEnd::Clean, "the cleaner writes valid batches");
            segment.install_indexes(indexes);
            segment.seal();
            segment.flush(&self.storage).await.map_err(|e| self.fail("clean", e))?;
            state.segments.insert(base, segment);
            stats.segments_cleaned += group.len();
        }
        state.first_dirty_offset = end;
        stats.first_dirty_offset = first_dirty;
        stats.end_offset = end;
        stats.keys = map.len();
        self.evict_files(&mut state);
        self.check_invariants(&state);
        Ok(stats)
    }

    /// A reader of the whole batches of segment `base`, `size` bytes long.
    async fn segment_batches(
        &self,
        state: &mut LogState<S>,
        base: i64,
        size: u64,
    ) -> KafkaResult<SegmentBatches<S::File>> {
        let segment = state.segments.get_mut(&base).expect("a listed segment");
        let file = segment.file(&self.storage).await.map_err(|e| self.fail("clean", e))?;
        Ok(SegmentBatches::new(file, size))
    }

    /// Removes every record at `offset` and after (replication's truncation on divergence).
    pub async fn truncate_to(&self, offset: i64) -> KafkaResult<()> {
        self.check_online()?;
        let _syncing = self.sync_lock.lock().await;
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        if offset >= state.log_end_offset {
            return Ok(());
        }
        if offset < state.log_start_offset {
            return Err(KafkaError::new(
                ErrorCode::OffsetOutOfRange,
                format!("cannot truncate below the log start offset to {offset}"),
            ));
        }
        self.truncations.fetch_add(1, Ordering::AcqRel);
        state.pending_snapshot = None;
        let doomed: Vec<i64> = state
            .segments
            .range((Bound::Excluded(offset), Bound::Unbounded))
            .map(|(&b, _)| b)
            .collect();
        let first = *state.segments.keys().next().expect("a log has segments");
        for base in doomed {
            if base == first {
                break;
            }
            let segment = state.segments.remove(&base).expect("listed");
            segment
                .delete(&self.storage)
                .await
                .map_err(|e| self.fail("truncate", e))?;
        }
        let log_start_offset = state.log_start_offset;
        let segment = state.segments.values_mut().next_back().expect("a log has segments");
        let end = segment
            .truncate_to(&self.storage, &self.config(), offset)
            .await
            .map_err(|e| self.fail("truncate", e))?;
        if end < log_start_offset {
            // The batch holding the log start offset went: nothing readable is left.
            return self
                .truncate_fully_and_start_at_locked(&mut state, log_start_offset)
                .await;
        }
        segment
            .flush(&self.storage)
            .await
            .map_err(|e| self.fail("truncate", e))?;
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(|e| self.fail("truncate", e))?;
        state.log_end_offset = end;
        state.high_watermark = state.high_watermark.min(end);
        state.recovery_point = state.recovery_point.min(end);
        self.flushed_offset.fetch_min(end, Ordering::AcqRel);
        let now_ms = state.last_flush_ms;
        self.load_producer_state(&mut state, now_ms)
            .await
            .map_err(|e| self.fail("producer state", e))?;
        self.write_checkpoint(&state)
            .await
            .map_err(|e| self.fail("checkpoint", e))?;
        self.check_invariants(&state);
        Ok(())
    }

    /// Deletes every segment and starts the log empty at `offset` (a follower that fell
    /// behind the leader's log start offset).
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> KafkaResult<()> {
        self.check_online()?;
        let _syncing = self.sync_lock.lock().await;
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        self.truncate_fully_and_start_at_locked(&mut state, offset).await
    }

    async fn truncate_fully_and_start_at_locked(&self, state: &mut LogState<S>, offset: i64) -> KafkaResult<()> {
        assert!(offset >= 0);
        self.truncations.fetch_add(1, Ordering::AcqRel);
        state.pending_snapshot = None;
        let segments = std::mem::take(&mut state.segments);
        for segment in segments.into_values() {
            segment
                .delete(&self.storage)
                .await
                .map_err(|e| self.fail("truncate", e))?;
        }
        let segment = LogSegment::create(&self.storage, &self.dir, offset)
            .await
            .map_err(|e| self.fail("truncate", e))?;
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(|e| self.fail("truncate", e))?;
        state.segments.insert(offset, segment);
        state.log_start_offset = offset;
        state.log_end_offset = offset;
        state.high_watermark = offset;
        state.recovery_point = offset;
        self.flushed_offset.store(offset, Ordering::Release);
        let now_ms = state.last_flush_ms;
        self.load_producer_state(state, now_ms)
            .await
            .map_err(|e| self.fail("producer state", e))?;
        self.write_checkpoint(state)
            .await
            .map_err(|e| self.fail("checkpoint", e))?;
        self.check_invariants(state);
        Ok(())
    }

    /// Flushes if `flush.ms` has passed since the last flush (the scheduler calls this).
    pub async fn maybe_flush(&self, now_ms: i64) -> KafkaResult<()> {
        self.check_online()?;
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        if now_ms - state.last_flush_ms >= self.config().flush_ms && state.recovery_point < state.log_end_offset {
            self.flush_locked(&mut state, now_ms)
                .await
                .map_err(|e| self.fail("flush", e))?;
        }
        Ok(())
    }

    /// Makes everything appended durable and advances the recovery point.
    pub async fn flush(&self, now_ms: i64) -> KafkaResult<()> {
        self.check_online()?;
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        self.flush_locked(&mut state, now_ms)
            .await
            .map_err(|e| self.fail("flush", e))
    }

    /// Rolls the active segment now (if it holds anything).
    pub async fn roll_now(&self) -> KafkaResult<()> {
        self.check_online()?;
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        let active = state.segments.values().next_back().expect("a log has segments");
        if active.size > 0 {
            self.roll(&mut state).await.map_err(|e| self.fail("roll", e))?;
        }
        Ok(())
    }

    /// Clean shutdown: flush and checkpoint, so that the next open recovers nothing but
    /// the active segment.
    pub async fn close(&self, now_ms: i64) -> KafkaResult<()> {
        self.check_online()?;
        let _syncing = self.sync_lock.lock().await;
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        self.flush_locked(&mut state, now_ms)
            .await
            .map_err(|e| self.fail("flush", e))?;
        state.pending_snapshot = None;
        let snapshot = Bytes::from(state.producers.encode_snapshot());
        self.write_producer_snapshot(state.log_end_offset, snapshot)
            .await
            .map_err(|e| self.fail("producer snapshot", e))?;
        self.write_checkpoint(&state)
            .await
            .map_err(|e| self.fail("checkpoint", e))
    }

    /// Drops producers idle for `producer.id.expiration.ms` (the scheduler calls this).
    pub async fn remove_expired_producers(&self, now_ms: i64) -> usize {
        let expiration_ms = self.config().producer_id_expiration_ms;
        self.state.lock().await.producers.remove_expired(now_ms, expiration_ms)
    }

    /// The sequence state of one producer: (epoch, last sequence), for tests and tools.
    pub async fn producer_state(&self, producer_id: i64) -> Option<(i16, i32)> {
        let state = self.state.lock().await;
        let entry = state.producers.get(producer_id)?;
        Some((entry.epoch, entry.batches.back().map(|b| b.last_seq).unwrap_or(-1)))
    }

    /// Writes `<offset>.snapshot` of the producer state as of `offset` (atomically, synced)
    /// and removes all but the two newest snapshots. The caller holds `sync_lock`, so that
    /// no other snapshot write, truncation or delete runs meanwhile.
    async fn write_producer_snapshot(&self, offset: i64, snapshot: Bytes) -> io::Result<()> {
        let path = self.dir.join(producer_snapshot_file_name(offset));
        write_atomically(&self.storage, &path, snapshot).await?;
        let mut snapshots = self.producer_snapshots().await?;
        snapshots.sort_unstable();
        let doomed = snapshots.len().saturating_sub(PRODUCER_SNAPSHOTS_KEPT);
        for offset in snapshots.into_iter().take(doomed) {
            self.storage
                .remove(&self.dir.join(producer_snapshot_file_name(offset)))
                .await?;
        }
        Ok(())
    }

    async fn producer_snapshots(&self) -> io::Result<Vec<i64>> {
        Ok(self
            .storage
            .list(&self.dir)
            .await?
            .iter()
            .filter_map(|name| name.strip_suffix(".snapshot").and_then(|o| o.parse().ok()))
            .collect())
    }

    /// Rebuilds the producer state as of the log end offset: the newest valid snapshot at or
    /// below it (later or damaged snapshots are removed), then every batch after it, from
    /// the disk. With no snapshot, the replay starts at the log start offset.
    async fn load_producer_state(&self, state: &mut LogState<S>, now_ms: i64) -> io::Result<()> {
        let mut snapshots = self.producer_snapshots().await?;
        snapshots.sort_unstable_by(|a, b| b.cmp(a));
        let mut loaded = None;
        for offset in snapshots {
            let path = self.dir.join(producer_snapshot_file_name(offset));
            if loaded.is_none() && offset <= state.log_end_offset {
                let bytes = read_to_end(&self.storage, &path, PRODUCER_SNAPSHOT_BYTES_MAX).await;
                if let Some(producers) = bytes.ok().and_then(|b| ProducerStateManager::decode_snapshot(&b)) {
                    loaded = Some((offset, producers));
                    continue;
                }
            }
            if loaded.is_none() || offset > state.log_end_offset {
                self.storage.remove(&path).await?;
            }
        }
        let (from, mut producers) = loaded.unwrap_or((state.log_start_offset, ProducerStateManager::default()));
        if crate::canary::FORGET_PRODUCER_STATE {
            state.producers = ProducerStateManager::default();
            return Ok(());
        }
        let from = from.max(state.log_start_offset);
        if from >= state.log_end_offset {
            state.producers = producers;
            return Ok(());
        }
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        let first = state
            .segments
            .range(..=from)
            .next_back()
            .map(|(&b, _)| b)
            .unwrap_or(bases[0]);
        let config = self.config();
        for base in bases.into_iter().filter(|&b| b >= first) {
            let segment = state.segments.get_mut(&base).expect("listed");
            let size = segment.size;
            // In the first segment, start at the batch holding `from` (the index finds it).
            let mut position = 0u64;
            if base == first {
                if let Found::Batch(at, _) = segment.find_batch(&self.storage, &config, from).await? {
                    position = at;
                }
            }
            let file = segment.file(&self.storage).await?;
            while position < size {
                let chunk = file
                    .read_at(position, PRODUCER_REPLAY_CHUNK_BYTES.min((size - position) as usize))
                    .await?;
                let mut consumed = 0usize;
                let mut whole = false;
                for (at, header, batch) in BatchFrames::new(&chunk) {
                    whole = true;
                    consumed = at + batch.len();
                    if header.next_offset() <= from || header.base_offset >= state.log_end_offset {
                        continue;
                    }
                    record_producer_batch(&mut producers, &header, now_ms);
                }
                if !whole {
                    // Recovery left whole batches only; a batch larger than a chunk is read whole.
                    let header = file.read_at(position, RECORD_BATCH_OVERHEAD).await?;
                    let Some(h) = BatchHeader::parse(&header).ok() else {
                        break;
                    };
                    consumed = h.size();
                    if h.next_offset() > from && h.base_offset < state.log_end_offset {
                        record_producer_batch(&mut producers, &h, now_ms);
                    }
                }
                position += consumed.max(1) as u64;
            }
        }
        state.producers = producers;
        Ok(())
    }

    /// Removes the log's files and its directory (the topic was deleted). Every later call
    /// answers UNKNOWN_TOPIC_OR_PARTITION.
    pub async fn delete(&self) -> KafkaResult<()> {
        // No flush after a roll is then writing a snapshot into the directory being removed.
        let _syncing = self.sync_lock.lock().await;
        let mut state = self.state.lock().await;
        self.deleted.store(true, Ordering::Release);
        let segments = std::mem::take(&mut state.segments);
        for segment in segments.into_values() {
            segment
                .delete(&self.storage)
                .await
                .map_err(|e| self.fail("delete log", e))?;
        }
        remove_log_dir(&self.storage, &self.dir)
            .await
            .map_err(|e| self.fail("delete log", e))?;
        Ok(())
    }

    /// `(log_start_offset, high_watermark, log_end_offset)` read together.
    pub async fn offsets(&self) -> (i64, i64, i64) {
        let state = self.state.lock().await;
        (state.log_start_offset, state.high_watermark, state.log_end_offset)
    }

    pub async fn log_start_offset(&self) -> i64 {
        self.state.lock().await.log_start_offset
    }

    pub async fn log_end_offset(&self) -> i64 {
        self.state.lock().await.log_end_offset
    }

    pub async fn high_watermark(&self) -> i64 {
        self.state.lock().await.high_watermark
    }

    pub async fn recovery_point(&self) -> i64 {
        self.state.lock().await.recovery_point
    }

    /// Every offset below this is durable.
    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset.load(Ordering::Acquire)
    }

    pub async fn size_bytes(&self) -> u64 {
        self.state.lock().await.segments.values().map(|s| s.size).sum()
    }

    pub async fn segment_base_offsets(&self) -> Vec<i64> {
        self.state.lock().await.segments.keys().copied().collect()
    }

    pub async fn open_file_count(&self) -> usize {
        self.state
            .lock()
            .await
            .segments
            .values()
            .filter(|s| s.is_file_open())
            .count()
    }

    fn validate(
        &self,
        records: &[u8],
        origin: AppendOrigin,
        now_ms: i64,
    ) -> KafkaResult<Vec<(usize, record::BatchSummary)>> {
        let limits = ValidationLimits {
            decompressed_bytes_max: self.config().decompressed_bytes_max,
        };
        let mut frames = BatchFrames::new(records);
        let mut summaries = Vec::new();
        let mut scratch = Vec::new();
        for (position, header, batch) in frames.by_ref() {
            if header.size() as u64 > self.config().max_message_bytes {
                return Err(KafkaError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "batch of {} bytes is larger than max.message.bytes {}",
                        header.size(),
                        self.config().max_message_bytes
                    ),
                ));
            }
            let summary = record::validate_batch(batch, origin, &limits, &mut scratch)?;
            if self.config().cleanup_compact && summary.has_keyless_record && !header.is_control() {
                return Err(KafkaError::new(
                    ErrorCode::InvalidRecord,
                    "a compacted topic cannot accept a record without a key",
                ));
            }
            if self.config().message_timestamp_type == TimestampType::CreateTime {
                self.check_timestamp(summary.max_timestamp, now_ms)?;
            }
            summaries.push((position, summary));
        }
        let (end, stop) = frames.rest();
        if stop.is_some() || end != records.len() {
            return Err(KafkaError::new(
                ErrorCode::CorruptMessage,
                format!(
                    "records end in {} bytes that are not a whole batch",
                    records.len() - end
                ),
            ));
        }
        if summaries.is_empty() {
            return Err(KafkaError::new(ErrorCode::InvalidRecord, "no record batch to append"));
        }
        if origin == AppendOrigin::Client && summaries.len() != 1 {
            return Err(KafkaError::new(
                ErrorCode::InvalidRecord,
                "a produce request holds exactly one record batch per partition",
            ));
        }
        if records.len() as u64 > self.config().segment_bytes {
            return Err(KafkaError::new(
                ErrorCode::RecordListTooLarge,
                "the batches are larger than segment.bytes",
            ));
        }
        Ok(summaries)
    }

    fn check_timestamp(&self, timestamp: i64, now_ms: i64) -> KafkaResult<()> {
        let too_old = now_ms.saturating_sub(timestamp) > self.config().message_timestamp_before_max_ms;
        let too_new = timestamp.saturating_sub(now_ms) > self.config().message_timestamp_after_max_ms;
        if too_old || too_new {
            return Err(KafkaError::new(
                ErrorCode::InvalidTimestamp,
                format!("timestamp {timestamp} is out of range at {now_ms}"),
            ));
        }
        Ok(())
    }

    async fn must_roll(
        &self,
        state: &mut LogState<S>,
        active_size: u64,
        incoming: u64,
        incoming_timestamp: i64,
    ) -> KafkaResult<bool> {
        if active_size == 0 {
            return Ok(false);
        }
        let segment = state.segments.values_mut().next_back().expect("a log has segments");
        let indexes = segment
            .indexes(&self.storage, &self.config())
            .await
            .map_err(|e| self.fail("roll", e))?;
        // As Kafka: the time a segment has waited is the incoming batches' timestamp less
        // the first batch's, so that old timestamps alone do not roll every append.
        let aged = indexes
            .first_batch_timestamp
            .is_some_and(|t| t >= 0 && incoming_timestamp - t >= self.config().segment_ms);
        Ok(active_size + incoming > self.config().segment_bytes || indexes.is_full(&self.config()) || aged)
    }

    async fn roll(&self, state: &mut LogState<S>) -> io::Result<()> {
        let log_end_offset = state.log_end_offset;
        let active = state.segments.values_mut().next_back().expect("a log has segments");
        assert!(active.base_offset < log_end_offset, "only a non-empty segment rolls");
        active.indexes(&self.storage, &self.config()).await?;
        active.seal();
        // Nothing is synced under the lock here. The sealed segment, the new segment's
        // directory entry and the producer snapshot are made durable later by
        // `flush_rolled_segments`, as Kafka schedules the flush after a roll: a sync here
        // would stall every producer of the partition for as long as the disk takes (half
        // a second for a 1 GiB segment; a directory sync measured 187 ms behind it). Until
        // then the recovery point stays where it is, so a power loss that takes the sealed
        // segment's tail makes recovery drop the segments after it (`recover_segments`),
        // and a durable append syncs the directory itself (`sync_to`).
        let segment = LogSegment::create(&self.storage, &self.dir, log_end_offset).await?;
        state.segments.insert(log_end_offset, segment);
        state.dir_changes += 1;
        state.pending_snapshot = Some((log_end_offset, Bytes::from(state.producers.encode_snapshot())));
        self.evict_files(state);
        Ok(())
    }

    /// Syncs the log directory if a segment was created in it since the last sync, given
    /// `dir_changes` read under the lock.
    async fn sync_dir_to(&self, dir_changes: u64) -> io::Result<()> {
        if self.dir_synced.load(Ordering::Acquire) < dir_changes {
            self.storage.sync_dir(&self.dir).await?;
            self.dir_synced.fetch_max(dir_changes, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Syncs every segment from the recovery point on, with its indexes.
    async fn flush_locked(&self, state: &mut LogState<S>, now_ms: i64) -> io::Result<()> {
        let from = state.segment_base_at_or_below(state.recovery_point);
        for segment in state.segments.range_mut(from..).map(|(_, s)| s) {
            segment.flush(&self.storage).await?;
        }
        self.sync_dir_to(state.dir_changes).await?;
        state.recovery_point = state.log_end_offset;
        state.messages_since_flush = 0;
        state.last_flush_ms = now_ms;
        self.flushed_offset.fetch_max(state.log_end_offset, Ordering::AcqRel);
        Ok(())
    }

    /// Group commit: returns once every offset below `offset` is durable. One caller syncs
    /// for all who wait behind it: the active segment, and any segment that rolled since
    /// the last sync and is not yet flushed.
    async fn sync_to(&self, offset: i64) -> KafkaResult<()> {
        loop {
            if self.flushed_offset.load(Ordering::Acquire) >= offset {
                return Ok(());
            }
            let _syncing = self.sync_lock.lock().await;
            if self.flushed_offset.load(Ordering::Acquire) >= offset {
                return Ok(());
            }
            let (files, target, truncations, dir_changes) = {
                let mut state = self.state.lock().await;
                self.check_online()?;
                let target = state.log_end_offset;
                let from = state.segment_base_at_or_below(self.flushed_offset.load(Ordering::Acquire));
                let mut files = Vec::new();
                for segment in state.segments.range_mut(from..).map(|(_, s)| s) {
                    files.push(segment.file(&self.storage).await.map_err(|e| self.fail("sync", e))?);
                }
                self.evict_files(&mut state);
                (
                    files,
                    target,
                    self.truncations.load(Ordering::Acquire),
                    state.dir_changes,
                )
            };
            for file in files {
                file.sync_data()
                    .await
                    .map_err(|e| self.fail_unless_deleted("fdatasync", e))?;
            }
            // A segment rolled since the last directory sync holds some of these offsets.
            self.sync_dir_to(dir_changes)
                .await
                .map_err(|e| self.fail_unless_deleted("sync log dir", e))?;
            if self.truncations.load(Ordering::Acquire) == truncations {
                self.flushed_offset.fetch_max(target, Ordering::AcqRel);
            }
        }
    }

    /// Syncs the segments that rolled since the last flush, with their indexes, and the log
    /// directory, writes the producer snapshot taken at the roll, and moves the recovery
    /// point to the active segment's base (Kafka's flush after a roll). The syncs run
    /// without the log's lock, so appends and fetches go on meanwhile. The shell runs this
    /// after an append that rolled (`LogAppendInfo::rolled`).
    pub async fn flush_rolled_segments(&self) -> KafkaResult<()> {
        // Held until the end: truncation, close and delete take it too, so none of them
        // runs between taking the pending snapshot and writing it.
        let _syncing = self.sync_lock.lock().await;
        let (files, target, truncations, dir_changes, snapshot) = {
            let mut state = self.state.lock().await;
            self.check_online()?;
            let active = *state.segments.keys().next_back().expect("a log has segments");
            let snapshot = state.pending_snapshot.take();
            if state.recovery_point >= active && snapshot.is_none() {
                return Ok(());
            }
            let from = state.segment_base_at_or_below(state.recovery_point);
            let mut files = Vec::new();
            for segment in state.segments.range_mut(from..active).map(|(_, s)| s) {
                files.extend(
                    segment
                        .write_for_flush(&self.storage)
                        .await
                        .map_err(|e| self.fail("flush", e))?,
                );
            }
            self.evict_files(&mut state);
            (
                files,
                active,
                self.truncations.load(Ordering::Acquire),
                state.dir_changes,
                snapshot,
            )
        };
        for file in files {
            file.sync_data()
                .await
                .map_err(|e| self.fail_unless_deleted("fdatasync", e))?;
        }
        self.sync_dir_to(dir_changes)
            .await
            .map_err(|e| self.fail_unless_deleted("sync log dir", e))?;
        if let Some((offset, bytes)) = snapshot {
            self.write_producer_snapshot(offset, bytes)
                .await
                .map_err(|e| self.fail_unless_deleted("producer snapshot", e))?;
        }
        let mut state = self.state.lock().await;
        // Again under the lock: a delete may have come between.
        self.check_online()?;
        // A truncation meanwhile may have removed what was synced; the next flush covers it.
        if self.truncations.load(Ordering::Acquire) == truncations
            && state.recovery_point < target
            && target <= state.log_end_offset
        {
            state.recovery_point = target;
            self.flushed_offset.fetch_max(target, Ordering::AcqRel);
            self.write_checkpoint(&state)
                .await
                .map_err(|e| self.fail("checkpoint", e))?;
            self.check_invariants(&state);
        }
        Ok(())
    }

    async fn delete_segments_below_start(&self, state: &mut LogState<S>) -> KafkaResult<()> {
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        let mut deleted = false;
        for pair in bases.windows(2) {
            if pair[1] > state.log_start_offset {
                break;
            }
            let segment = state.segments.remove(&pair[0]).expect("listed");
            segment
                .delete(&self.storage)
                .await
                .map_err(|e| self.fail("delete segment", e))?;
            deleted = true;
        }
        if deleted {
            self.storage
                .sync_dir(&self.dir)
                .await
                .map_err(|e| self.fail("delete segment", e))?;
        }
        Ok(())
    }

    async fn write_checkpoint(&self, state: &LogState<S>) -> io::Result<()> {
        let checkpoint = LogCheckpoint {
            log_start_offset: state.log_start_offset,
            recovery_point: state.recovery_point,
        };
        checkpoint.write(&self.storage, &self.dir).await
    }

    fn touch(&self, state: &mut LogState<S>, base: i64) {
        state.use_tick += 1;
        let tick = state.use_tick;
        state.segments.get_mut(&base).expect("a listed segment").last_used = tick;
    }

    /// Closes the least recently used inactive segment files past `segment_files_open_max`.
    fn evict_files(&self, state: &mut LogState<S>) {
        let active = *state.segments.keys().next_back().expect("a log has segments");
        loop {
            let open: Vec<(u64, i64)> = state
                .segments
                .iter()
                .filter(|(&b, s)| b != active && s.is_file_open())
                .map(|(&b, s)| (s.last_used, b))
                .collect();
            if open.len() <= self.config().segment_files_open_max {
                return;
            }
            let (_, oldest) = *open.iter().min().expect("more than the limit");
            state.segments.get_mut(&oldest).expect("listed").close_file();
        }
    }

    fn check_online(&self) -> KafkaResult<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(KafkaError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("{} was deleted", self.dir.display()),
            ));
        }
        if self.failure.is_offline() {
            return Err(KafkaError::new(
                ErrorCode::KafkaStorageError,
                format!(
                    "log directory is offline: {}",
                    self.failure.reason().unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }

    /// An I/O error on a file used without the log's lock (the syncs of a group commit or
    /// of a flush after a roll): if the log was deleted meanwhile, the file went with it,
    /// and that is no disk failure. Those syncs hold `sync_lock`, which `delete` takes
    /// first, so today the log cannot be deleted meanwhile; this stays as the guard.
    fn fail_unless_deleted(&self, what: &str, e: io::Error) -> KafkaError {
        if self.deleted.load(Ordering::Acquire) {
            return KafkaError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("{} was deleted during {what}", self.dir.display()),
            );
        }
        self.fail(what, e)
    }

    fn fail(&self, what: &str, e: io::Error) -> KafkaError {
        let why = format!("{what} in {}: {e}", self.dir.display());
        self.failure.mark_offline(why.clone());
        KafkaError::new(ErrorCode::KafkaStorageError, why)
    }

    fn check_invariants(&self, state: &LogState<S>) {
        assert!(
            state.log_start_offset <= state.high_watermark,
            "log_start_offset {} > high_watermark {}",
            state.log_start_offset,
            state.high_watermark
        );
        assert!(
            state.high_watermark <= state.log_end_offset,
            "high_watermark {} > log_end_offset {}",
            state.high_watermark,
            state.log_end_offset
        );
        assert!(
            state.recovery_point <= state.log_end_offset,
            "recovery_point {} > log_end_offset {}",
            state.recovery_point,
            state.log_end_offset
        );
        let first = *state.segments.keys().next().expect("a log has at least one segment");
        let active = *state
            .segments
            .keys()
            .next_back()
            .expect("a log has at least one segment");
        assert!(
            first <= state.log_start_offset,
            "first segment {first} starts after log_start_offset {}",
            state.log_start_offset
        );
        assert!(
            active <= state.log_end_offset,
            "active segment {active} starts after log_end_offset {}",
            state.log_end_offset
        );
    }
}

/// What one cleaning pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_cleaned: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    /// The dirty section cleaned: `[first_dirty_offset, end_offset)`.
    pub first_dirty_offset: i64,
    pub end_offset: i64,
    /// Keys in the offset map.
    pub keys: usize,
}

/// Damaged data stops a cleaning pass and leaves the log as it was (Kafka marks such a
/// partition uncleanable); unlike an I/O error it does not take the directory offline.
fn uncleanable(base: i64, why: &str) -> KafkaError {
    KafkaError::new(
        ErrorCode::CorruptMessage,
        format!("the log cleaner skips this log: segment {base}: {why}"),
    )
}

/// Reads a segment's whole batches a chunk at a time (a batch larger than a chunk whole).
/// The cleaner reads only segments that recovery or the appender wrote; a batch that is
/// not whole ends the walk (and the pass: see [`SegmentBatches::finished`]).
struct SegmentBatches<F: StorageFile> {
    file: F,
    size: u64,
    position: u64,
}

impl<F: StorageFile> SegmentBatches<F> {
    fn new(file: F, size: u64) -> SegmentBatches<F> {
        SegmentBatches {
            file,
            size,
            position: 0,
        }
    }

    /// Whether the walk reached the segment's end (and did not stop at damage).
    fn finished(&self) -> bool {
        self.position >= self.size
    }

    async fn next_chunk(&mut self) -> io::Result<Option<Vec<(BatchHeader, Bytes)>>> {
        if self.position >= self.size {
            return Ok(None);
        }
        let want = CLEANER_CHUNK_BYTES.min((self.size - self.position) as usize);
        let mut chunk = self.file.read_at(self.position, want).await?;
        let mut frames: Vec<(BatchHeader, Bytes)> = BatchFrames::new(&chunk)
            .map(|(at, header, batch)| (header, chunk.slice(at..at + batch.len())))
            .collect();
        if frames.is_empty() {
            // One batch larger than a chunk: read it whole.
            let Ok(header) = BatchHeader::parse(&chunk) else {
                return Ok(None);
            };
            if self.position + header.size() as u64 > self.size {
                return Ok(None);
            }
            chunk = self.file.read_at(self.position, header.size()).await?;
            frames = vec![(header, chunk)];
        }
        self.position += frames.iter().map(|(h, _)| h.size() as u64).sum::<u64>();
        Ok(Some(frames))
    }
}

/// Finishes what a crash left of the cleaner's swaps: removes `.cleaned` files (never
/// committed), and for each `<base>.log.swap` deletes the segments it replaces (those
/// whose base offset lies in the swap's offsets) and renames it to `<base>.log`.
async fn finish_cleaner_swaps<S: Storage>(storage: &S, dir: &Path) -> io::Result<()> {
    let names = storage.list(dir).await?;
    let mut changed = false;
    for name in &names {
        if name.ends_with(".log.cleaned") {
            storage.remove(&dir.join(name)).await?;
            changed = true;
        }
    }
    for name in &names {
        let Some((base, "log.swap")) = parse_file_name(name) else {
            continue;
        };
        let swap = dir.join(name);
        let file = storage.open(&swap, OpenMode::Existing).await?;
        let size = file.len().await?;
        let mut last = base;
        let mut reader = SegmentBatches::new(file, size.min(SEGMENT_BYTES_MAX));
        while let Some(batches) = reader.next_chunk().await? {
            if let Some((header, _)) = batches.last() {
                last = last.max(header.last_offset());
            }
        }
        for old in &names {
            if let Some((old_base, "log" | "index" | "timeindex")) = parse_file_name(old) {
                if (base..=last).contains(&old_base) {
                    match storage.remove(&dir.join(old)).await {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        other => other?,
                    }
                }
            }
        }
        storage.rename(&swap, &dir.join(log_file_name(base))).await?;
        changed = true;
    }
    if changed {
        storage.sync_dir(dir).await?;
    }
    Ok(())
}

/// The fast path after a clean shutdown (or a crash that lost nothing past the recovery
/// point): the recovery point lies in the last segment, whose on-disk indexes load and
/// agree with the log, and nothing follows the recovery point. Reads the index files and
/// the log after the last index entry, nothing else. `None` sends the caller to recovery.
async fn clean_shutdown_end<S: Storage>(
    storage: &S,
    config: &LogConfig,
    segments: &mut BTreeMap<i64, LogSegment<S>>,
    recovery_point: i64,
) -> io::Result<Option<i64>> {
    let (&base, segment) = segments.iter_mut().next_back().expect("a log has segments");
    if base > recovery_point {
        return Ok(None);
    }
    let end = segment.load_trusted_indexes(storage, config).await?;
    Ok(end.filter(|&end| end == recovery_point))
}

/// Recovers the segments from `from` on; returns the log end offset.
async fn recover_segments<S: Storage>(
    storage: &S,
    config: &LogConfig,
    segments: &mut BTreeMap<i64, LogSegment<S>>,
    from: i64,
) -> io::Result<i64> {
    let bases: Vec<i64> = segments.range(from..).map(|(&b, _)| b).collect();
    let mut end = None;
    for (i, &base) in bases.iter().enumerate() {
        let segment = segments.get_mut(&base).expect("listed");
        let truncated = segment.recover(storage, config).await?;
        let next_offset = segment.loaded_indexes().expect("recovered").next_offset;
        let next_base = bases.get(i + 1).copied();
        // A segment that lost its tail, or one whose successor does not start where it
        // ends: what follows is not to be trusted. A segment rolls without a sync (the
        // flush after a roll comes later), so a power loss can take a sealed segment's
        // unsynced tail whole, leaving a clean end below the next segment's base, while
        // writeback kept some of the next segment. Only the log cleaner leaves gaps between
        // segments, and only below the recovery point, where recovery does not look.
        if truncated || next_base.is_some_and(|n| n != next_offset) {
            for &doomed in &bases[i + 1..] {
                segments.remove(&doomed).expect("listed").delete(storage).await?;
            }
            end = Some(next_offset);
            break;
        }
        end = Some(next_offset);
    }
    let end = end.expect("the segment holding the recovery point is recovered");
    // A segment left empty at the end by recovery keeps its place; otherwise the active
    // segment must start at or below the log end.
    let active = *segments.keys().next_back().expect("a log has segments");
    assert!(active <= end);
    for segment in segments.range_mut(..active).map(|(_, s)| s) {
        segment.seal();
    }
    Ok(end)
}

fn first_record_at_or_after(
    batch: &[u8],
    timestamp: i64,
    log_start_offset: i64,
    config: &LogConfig,
    scratch: &mut Vec<u8>,
) -> KafkaResult<Option<(i64, i64)>> {
    let limits = ValidationLimits {
        decompressed_bytes_max: config.decompressed_bytes_max,
    };
    let summary = record::validate_batch(batch, AppendOrigin::Replication, &limits, scratch)?;
    let header = summary.header;
    if header.timestamp_type() == TimestampType::LogAppendTime {
        return Ok(Some((header.base_offset.max(log_start_offset), header.max_timestamp)));
    }
    let records = if header.compression() == Some(record::Compression::None) {
        &batch[RECORD_BATCH_OVERHEAD..]
    } else {
        &scratch[..]
    };
    let mut iter = Records::new(records, header.base_timestamp);
    while let Some(r) = iter.next_record()? {
        let offset = header.base_offset + r.offset_delta as i64;
        if r.timestamp >= timestamp && offset >= log_start_offset {
            return Ok(Some((offset, r.timestamp)));
        }
    }
    Ok(None)
}

/// Records an idempotent producer's batch, now in the log, in the producer state.
fn record_producer_batch(producers: &mut ProducerStateManager, header: &BatchHeader, now_ms: i64) {
    if header.producer_id >= 0 && !header.is_control() {
        producers.update(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            last_sequence(header.base_sequence, header.last_offset_delta),
            header.base_offset,
            header.last_offset(),
            now_ms,
        );
    }
}

/// Producer snapshots kept in a log directory.
const PRODUCER_SNAPSHOTS_KEPT: usize = 2;
/// Bytes a producer snapshot may have, at most.
const PRODUCER_SNAPSHOT_BYTES_MAX: u64 = 64 << 20;
/// Bytes read at a time while replaying batches into the producer state.
const PRODUCER_REPLAY_CHUNK_BYTES: usize = 1 << 20;
/// The cleaner reads segments in chunks of this size.
const CLEANER_CHUNK_BYTES: usize = 1 << 20;

/// Removes a partition directory and everything in it (a deleted topic's log, or a stray
/// directory an earlier topic of the same name left behind). `partition.metadata` goes
/// last, after the removal of the rest is synced, so that a crash midway leaves a
/// directory that still names its topic (and is removed as stray) or one that is empty.
pub async fn remove_log_dir<S: Storage>(storage: &S, dir: &Path) -> io::Result<()> {
    let metadata = partition_metadata::PARTITION_METADATA_FILE_NAME;
    let names = storage.list(dir).await?;
    for name in names.iter().filter(|n| *n != metadata) {
        storage.remove(&dir.join(name)).await?;
    }
    storage.sync_dir(dir).await?;
    match storage.remove(&dir.join(metadata)).await {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => other?,
    }
    storage.remove_dir(dir).await?;
    if let Some(parent) = dir.parent() {
        storage.sync_dir(parent).await?;
    }
    Ok(())
}

/// Kafka's name for a producer state snapshot: the log end offset it was taken at.
pub fn producer_snapshot_file_name(offset: i64) -> String {
    format!("{offset:020}.snapshot")
}

/// A read's first batch fails its checks: a CRC that does not match its bytes, or a header
/// out of place (magic, base offset, length).
fn bad_batch(base: i64, header: &BatchHeader) -> KafkaError {
    KafkaError::new(
        ErrorCode::CorruptMessage,
        format!(
            "batch at offset {} in segment {base} has a bad CRC32C or is out of place",
            header.base_offset
        ),
    )
}

/// How a read returns its batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadMode {
    /// Copies them and checks every CRC.
    Copy,
    /// Reads only their headers and returns the file range.
    Range,
}

/// The bytes a range read takes at once while it walks batch headers, when batches are
/// small enough for several headers to share one read.
const HEADER_WINDOW_BYTES: usize = 4096;

/// Where a read's batches must lie. The base offset and magic lie outside the CRC, so they
/// are checked against the segment's dense offsets (increasing ones, in a compacted log).
struct Placement {
    expected: i64,
    compacted: bool,
    segment_base: i64,
    segment_end: i64,
    fetch_offset: i64,
}

impl Placement {
    /// Whether `header` is the next batch in place; if so, the one after is expected next.
    fn placed(&mut self, header: &BatchHeader, first: bool) -> bool {
        let placed = header.magic == record::MAGIC_V2
            && (header.base_offset == self.expected || (self.compacted && header.base_offset > self.expected))
            && header.base_offset >= self.segment_base
            && (!first || self.compacted || header.base_offset <= self.fetch_offset.max(self.segment_base))
            && header.last_offset_delta >= 0
            && header.next_offset() <= self.segment_end;
        if placed {
            self.expected = header.next_offset();
        }
        placed
    }
}

fn corrupt(base: i64, position: u64) -> KafkaError {
    KafkaError::new(
        ErrorCode::CorruptMessage,
        format!("no batch header at position {position} of segment {base}"),
    )
}
