//! LogSegment: one `.log` file of batches with its `.index` and `.timeindex`, named by the
//! 20-digit base offset.
//!
//! A segment below the recovery point trusts its files and loads its indexes lazily, on the
//! first lookup. A segment at or above it is scanned batch by batch by recovery, which
//! truncates at the first torn or corrupt batch and rebuilds the indexes.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::index::{OffsetIndex, TimeIndex};
use crate::config::LogConfig;
use crate::io::{OpenMode, Storage, StorageFile};
use crate::record::{crc_matches, BatchFrames, BatchHeader, FrameError, MAGIC_V2, RECORD_BATCH_OVERHEAD};

/// Recovery reads batches of up to this size even when `max.message.bytes` is lower, so
/// that lowering the config never truncates data written under an older, higher value.
pub const RECOVERY_BATCH_BYTES_MIN: u64 = 16 * 1024 * 1024;
/// Recovery and rebuilds read the log in chunks of this size.
const SCAN_CHUNK_BYTES: usize = 1024 * 1024;

pub fn log_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

pub fn offset_index_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.index")
}

pub fn time_index_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.timeindex")
}

/// The base offset a segment file name carries, and its extension.
pub fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, extension) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, extension))
}

pub struct LogSegment<S: Storage> {
    pub base_offset: i64,
    dir: PathBuf,
    /// Bytes in the `.log` file.
    pub size: u64,
    file: Option<S::File>,
    /// Loaded on first use for a segment below the recovery point.
    indexes: Option<Indexes>,
    /// For closing the least recently used files.
    pub last_used: u64,
}

/// What a segment knows of its batches once its indexes are loaded.
#[derive(Clone, Debug, Default)]
pub struct Indexes {
    pub offsets: OffsetIndex,
    pub times: TimeIndex,
    /// The offset after the segment's last batch.
    pub next_offset: i64,
    /// The largest batch max timestamp in the segment, or -1.
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    /// The max timestamp of the first batch, for `segment.ms`.
    pub first_batch_timestamp: Option<i64>,
    bytes_since_last_entry: u64,
    /// The index files hold entries that the memory no longer has: rewrite them whole.
    rewrite: bool,
}

/// What [`LogSegment::find_batch`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Batch(u64, BatchHeader),
    /// No batch at or after the offset.
    End,
    /// Damaged bytes at this position, before any such batch.
    Corrupt(u64),
}

/// How a scan of a segment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte is a valid batch.
    Clean,
    /// The segment holds a torn or corrupt batch at `position`; the rest is not to be trusted.
    Invalid { position: u64 },
}

impl<S: Storage> LogSegment<S> {
    /// Creates a new empty segment. The caller syncs the directory.
    pub async fn create(storage: &S, dir: &Path, base_offset: i64) -> io::Result<LogSegment<S>> {
        let file = storage
            .open(&dir.join(log_file_name(base_offset)), OpenMode::Create)
            .await?;
        file.truncate(0).await?;
        let indexes = Indexes {
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            ..Indexes::default()
        };
        let mut segment = LogSegment {
            base_offset,
            dir: dir.to_path_buf(),
            size: 0,
            file: Some(file),
            indexes: Some(indexes),
            last_used: 0,
        };
        // Stale index files of an earlier segment at this offset must not be trusted.
        segment.indexes.as_mut().expect("just set").rewrite = true;
        Ok(segment)
    }

    /// An existing segment; reads nothing but its length.
    pub async fn open(storage: &S, dir: &Path, base_offset: i64) -> io::Result<LogSegment<S>> {
        let file = storage
            .open(&dir.join(log_file_name(base_offset)), OpenMode::Existing)
            .await?;
        let size = file.len().await?;
        Ok(LogSegment {
            base_offset,
            dir: dir.to_path_buf(),
            size,
            file: None,
            indexes: None,
            last_used: 0,
        })
    }

    pub fn is_file_open(&self) -> bool {
        self.file.is_some()
    }

    pub fn close_file(&mut self) {
        self.file = None;
    }

    pub async fn file(&mut self, storage: &S) -> io::Result<S::File> {
        if let Some(file) = &self.file {
            return Ok(file.clone());
        }
        let file = storage
            .open(&self.dir.join(log_file_name(self.base_offset)), OpenMode::Existing)
            .await?;
        self.file = Some(file.clone());
        Ok(file)
    }

    /// The indexes, loading them (or rebuilding them from the log) on first use.
    pub async fn indexes(&mut self, storage: &S, config: &LogConfig) -> io::Result<&mut Indexes> {
        if self.indexes.is_none() {
            let loaded = self.load_indexes(storage, config).await?;
            self.indexes = Some(match loaded {
                Some(indexes) => indexes,
                None => self.rebuild(storage, config).await?.0,
            });
        }
        Ok(self.indexes.as_mut().expect("loaded above"))
    }

    /// Loads the on-disk indexes if they agree with the log, and returns the segment's next
    /// offset; `None` (and nothing loaded) if they do not.
    pub async fn load_trusted_indexes(&mut self, storage: &S, config: &LogConfig) -> io::Result<Option<i64>> {
        let Some(indexes) = self.load_indexes(storage, config).await? else {
            return Ok(None);
        };
        let next_offset = indexes.next_offset;
        self.indexes = Some(indexes);
        Ok(Some(next_offset))
    }

    /// Scans the whole segment, validating every batch, and rebuilds the indexes in memory.
    /// Returns the indexes and where the valid batches end.
    pub async fn rebuild(&mut self, storage: &S, config: &LogConfig) -> io::Result<(Indexes, ScanEnd)> {
        let file = self.file(storage).await?;
        let mut indexes = Indexes {
            next_offset: self.base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: self.base_offset,
            rewrite: true,
            ..Indexes::default()
        };
        let batch_bytes_max = config.max_message_bytes.max(RECOVERY_BATCH_BYTES_MIN);
        let mut position = 0u64;
        while position < self.size {
            let want = SCAN_CHUNK_BYTES.min((self.size - position) as usize);
            let chunk = file.read_at(position, want).await?;
            let mut frames = BatchFrames::new(&chunk);
            let mut advanced = 0usize;
            for (at, header, bytes) in frames.by_ref() {
                if !self.batch_is_valid(&header, bytes, indexes.next_offset, config.cleanup_compact) {
                    return Ok((
                        indexes,
                        ScanEnd::Invalid {
                            position: position + at as u64,
                        },
                    ));
                }
                indexes.add_batch(self.base_offset, (position + at as u64) as u32, &header, config);
                advanced = at + header.size();
            }
            let (stop, why) = frames.rest();
            debug_assert_eq!(stop, advanced);
            match why {
                None => {}
                Some(FrameError::BadLength(_)) => {
                    return Ok((
                        indexes,
                        ScanEnd::Invalid {
                            position: position + stop as u64,
                        },
                    ))
                }
                Some(FrameError::Truncated) => {
                    // A batch crosses the chunk's end: read it whole if the segment holds it.
                    let at = position + stop as u64;
                    let header = BatchHeader::parse(&chunk[stop..]).ok();
                    let size = header.map(|h| h.size() as u64).unwrap_or(RECORD_BATCH_OVERHEAD as u64);
                    if stop > 0 && at + size <= self.size && size <= batch_bytes_max {
                        position = at;
                        continue;
                    }
                    if at + size > self.size || size > batch_bytes_max {
                        return Ok((indexes, ScanEnd::Invalid { position: at }));
                    }
                    // One batch larger than a chunk.
                    let bytes = file.read_at(at, size as usize).await?;
                    let header = header.expect("size came from a header");
                    if !self.batch_is_valid(&header, &bytes, indexes.next_offset, config.cleanup_compact) {
                        return Ok((indexes, ScanEnd::Invalid { position: at }));
                    }
                    indexes.add_batch(self.base_offset, at as u32, &header, config);
                    position = at + size;
                    continue;
                }
            }
            position += stop as u64;
        }
        Ok((indexes, ScanEnd::Clean))
    }

    /// In a log that is not compacted, offsets are dense, so each batch starts where the
    /// last ended; that also catches damage to the base offset, which the CRC does not
    /// cover. The cleaner leaves gaps between batches and inside them (a batch keeps its
    /// base offset and lastOffsetDelta), so a compacted log's offsets need only increase.
    fn batch_is_valid(&self, header: &BatchHeader, bytes: &[u8], next_offset: i64, compacted: bool) -> bool {
        let dense =
            header.records_count as i64 == header.last_offset_delta as i64 + 1 && header.base_offset == next_offset;
        let sparse = header.records_count >= 1
            && header.records_count as i64 <= header.last_offset_delta as i64 + 1
            && header.base_offset >= next_offset;
        header.magic == MAGIC_V2
            && header.last_offset_delta >= 0
            && (dense || (compacted && sparse))
            && header.last_offset() - self.base_offset <= u32::MAX as i64
            && (crate::canary::RECOVERY_SKIPS_CRC || crc_matches(bytes))
    }

    /// Recovery: scans the whole segment, truncates it at the first invalid batch and
    /// installs the rebuilt indexes. Returns whether it truncated.
    ///
    /// The kept bytes are written again before the caller syncs them: after a failed fsync
    /// Linux marks the unwritten pages clean, so data that a read finds in the page cache
    /// may never reach the disk unless it is rewritten. Recovering twice must give the same
    /// log, even across a power loss in between.
    pub async fn recover(&mut self, storage: &S, config: &LogConfig) -> io::Result<bool> {
        let (indexes, end) = self.rebuild(storage, config).await?;
        let file = self.file(storage).await?;
        let truncated = match end {
            ScanEnd::Clean => false,
            ScanEnd::Invalid { position } => {
                file.truncate(position).await?;
                self.size = position;
                true
            }
        };
        let mut position = 0;
        while position < self.size {
            let chunk = file
                .read_at(position, SCAN_CHUNK_BYTES.min((self.size - position) as usize))
                .await?;
            let n = chunk.len() as u64;
            file.write_at(position, chunk).await?;
            position += n;
        }
        self.indexes = Some(indexes);
        Ok(truncated)
    }

    /// Reads the index files and the tail of the log after the last entry. `None` if the
    /// files are missing or inconsistent with the log: the caller rebuilds.
    async fn load_indexes(&mut self, storage: &S, config: &LogConfig) -> io::Result<Option<Indexes>> {
        let Some(offset_bytes) = read_optional(
            storage,
            &self.dir.join(offset_index_file_name(self.base_offset)),
            config.segment_index_bytes,
        )
        .await?
        else {
            return Ok(None);
        };
        let Some(time_bytes) = read_optional(
            storage,
            &self.dir.join(time_index_file_name(self.base_offset)),
            config.segment_index_bytes * 2,
        )
        .await?
        else {
            return Ok(None);
        };
        let (Some(offsets), Some(times)) = (
            OffsetIndex::decode(&offset_bytes, self.size),
            TimeIndex::decode(&time_bytes),
        ) else {
            return Ok(None);
        };
        let mut indexes = Indexes {
            offsets,
            times,
            next_offset: self.base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: self.base_offset,
            ..Indexes::default()
        };
        if let Some((t, o)) = indexes.times.last() {
            indexes.max_timestamp = t;
            indexes.offset_of_max_timestamp = self.base_offset + o as i64;
        }
        // Walk the batches after the last index entry to learn the segment's end.
        let start = indexes.offsets.lookup(u32::MAX).1 as u64;
        let file = self.file(storage).await?;
        let tail = file.read_at(start, (self.size - start) as usize).await?;
        let mut frames = BatchFrames::new(&tail);
        let mut first = true;
        for (_, header, _) in frames.by_ref() {
            if header.magic != MAGIC_V2
                || header.base_offset < indexes.next_offset
                || (first
                    && start > 0
                    && header.base_offset
                        != self.base_offset + indexes.offsets.last_relative_offset().unwrap_or(0) as i64)
            {
                return Ok(None);
            }
            first = false;
            indexes.next_offset = header.next_offset();
            if header.max_timestamp > indexes.max_timestamp {
                indexes.max_timestamp = header.max_timestamp;
                indexes.offset_of_max_timestamp = header.base_offset;
            }
            if indexes.first_batch_timestamp.is_none() && start == 0 {
                indexes.first_batch_timestamp = Some(header.max_timestamp);
            }
        }
        if frames.rest() != (tail.len(), None) {
            return Ok(None);
        }
        Ok(Some(indexes))
    }

    /// Appends batches already validated and stamped. `batches` are the headers with their
    /// positions within `records`.
    pub async fn append(
        &mut self,
        storage: &S,
        records: Bytes,
        batches: &[(u32, BatchHeader)],
        config: &LogConfig,
    ) -> io::Result<u64> {
        let file = self.file(storage).await?;
        let position = self.size;
        let written = records.len() as u64;
        let at = file.append(records).await?;
        assert_eq!(at, position, "the segment's size tracks its file");
        self.size += written;
        let indexes = self.indexes.as_mut().expect("the active segment has its indexes");
        for &(relative_position, header) in batches {
            indexes.add_batch(
                self.base_offset,
                (position + relative_position as u64) as u32,
                &header,
                config,
            );
        }
        Ok(position)
    }

    /// The position and header of the first batch whose last offset is at or after `offset`.
    pub async fn find_batch(&mut self, storage: &S, config: &LogConfig, offset: i64) -> io::Result<Found> {
        let mut rebuilt = false;
        loop {
            let base = self.base_offset;
            let relative = (offset - base).clamp(0, u32::MAX as i64) as u32;
            let (entry_offset, start) = self.indexes(storage, config).await?.offsets.lookup(relative);
            let start = start as u64;
            // Offsets are dense unless compacted: the walk knows the base offset of every
            // batch it meets, which catches damage to base offsets that the CRC does not
            // cover. In a compacted log it knows only a lower bound.
            let mut expected = base + entry_offset as i64;
            let compacted = config.cleanup_compact;
            let file = self.file(storage).await?;
            let mut position = start;
            let mut damage = None;
            while position < self.size {
                let bytes = file.read_at(position, RECORD_BATCH_OVERHEAD).await?;
                let Ok(header) = BatchHeader::parse(&bytes) else {
                    damage = Some(position);
                    break;
                };
                if header.magic != MAGIC_V2
                    || header.base_offset < expected
                    || (!compacted && header.base_offset != expected)
                    || header.last_offset_delta < 0
                    || position + header.size() as u64 > self.size
                {
                    damage = Some(position);
                    break;
                }
                expected = header.next_offset();
                if header.last_offset() >= offset {
                    return Ok(Found::Batch(position, header));
                }
                position += header.size() as u64;
            }
            let Some(position) = damage else {
                return Ok(Found::End);
            };
            if rebuilt {
                // The index is fresh from the log, so the log itself is damaged here.
                return Ok(Found::Corrupt(position));
            }
            // The walk met something that is not a batch: rebuild the index from the log
            // and look again.
            let (indexes, _) = self.rebuild(storage, config).await?;
            self.indexes = Some(indexes);
            rebuilt = true;
        }
    }

    /// Truncates the segment at the first batch holding `offset` or later, and rebuilds its
    /// indexes. Returns the segment's new next offset.
    pub async fn truncate_to(&mut self, storage: &S, config: &LogConfig, offset: i64) -> io::Result<i64> {
        if let Found::Batch(position, _) | Found::Corrupt(position) = self.find_batch(storage, config, offset).await? {
            self.file(storage).await?.truncate(position).await?;
            self.size = position;
            let (indexes, end) = self.rebuild(storage, config).await?;
            assert_eq!(end, ScanEnd::Clean, "a truncated segment keeps only valid batches");
            self.indexes = Some(indexes);
        }
        Ok(self.indexes(storage, config).await?.next_offset)
    }

    /// Makes the segment durable: the log data, then the index files.
    pub async fn flush(&mut self, storage: &S) -> io::Result<()> {
        for file in self.write_for_flush(storage).await? {
            file.sync_data().await?;
        }
        Ok(())
    }

    /// The first half of [`LogSegment::flush`]: writes the index entries not yet on disk and
    /// returns every file that must then be synced (the log, reopened if its handle was
    /// closed, and both indexes), so that a caller may sync them without the log's lock.
    pub async fn write_for_flush(&mut self, storage: &S) -> io::Result<Vec<S::File>> {
        let mut files = vec![self.file(storage).await?];
        let Some(indexes) = self.indexes.as_mut() else {
            return Ok(files);
        };
        let paths = [
            offset_index_file_name(self.base_offset),
            time_index_file_name(self.base_offset),
        ];
        let rewrite = indexes.rewrite;
        let (offset_at, offset_bytes) = if rewrite {
            (0, indexes.offsets.encode_all())
        } else {
            indexes.offsets.unpersisted()
        };
        let (time_at, time_bytes) = if rewrite {
            (0, indexes.times.encode_all())
        } else {
            indexes.times.unpersisted()
        };
        let lens = [indexes.offsets.file_bytes(), indexes.times.file_bytes()];
        for ((name, (at, bytes)), len) in paths
            .iter()
            .zip([(offset_at, offset_bytes), (time_at, time_bytes)])
            .zip(lens)
        {
            let file = storage.open(&self.dir.join(name), OpenMode::Create).await?;
            if !bytes.is_empty() {
                file.write_at(at, Bytes::from(bytes)).await?;
            }
            file.truncate(len).await?;
            files.push(file);
        }
        // Written, not yet synced: a failed sync takes the log directory offline, so
        // nothing ever trusts these entries without the sync having succeeded.
        let indexes = self.indexes.as_mut().expect("checked above");
        indexes.offsets.mark_persisted();
        indexes.times.mark_persisted();
        indexes.rewrite = false;
        Ok(files)
    }

    /// Removes the segment's files. The caller syncs the directory.
    pub async fn delete(self, storage: &S) -> io::Result<()> {
        let names = [
            log_file_name(self.base_offset),
            offset_index_file_name(self.base_offset),
            time_index_file_name(self.base_offset),
        ];
        drop(self.file);
        for name in names {
            match storage.remove(&self.dir.join(name)).await {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Records the final max timestamp in the time index, as the segment becomes inactive.
    pub fn seal(&mut self) {
        let base = self.base_offset;
        if let Some(indexes) = self.indexes.as_mut() {
            indexes.seal(base);
        }
    }

    /// Installs indexes that [`LogSegment::rebuild`] made.
    pub fn install_indexes(&mut self, indexes: Indexes) {
        self.indexes = Some(indexes);
    }

    pub fn loaded_indexes(&self) -> Option<&Indexes> {
        self.indexes.as_ref()
    }
}

impl Indexes {
    fn add_batch(&mut self, base_offset: i64, position: u32, header: &BatchHeader, config: &LogConfig) {
        assert!(
            header.base_offset >= self.next_offset,
            "batches in a segment have increasing offsets"
        );
        let relative = (header.base_offset - base_offset) as u32;
        if self.bytes_since_last_entry >= config.index_interval_bytes {
            self.offsets.append(relative, position);
            self.times
                .maybe_append(self.max_timestamp, (self.offset_of_max_timestamp - base_offset) as u32);
            self.bytes_since_last_entry = 0;
        }
        self.bytes_since_last_entry += header.size() as u64;
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(header.max_timestamp);
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        self.next_offset = header.next_offset();
    }

    /// Whether one more offset index entry would pass `segment.index.bytes`.
    pub fn is_full(&self, config: &LogConfig) -> bool {
        self.offsets.len() >= config.offset_index_entries_max()
    }

    /// Records the final max timestamp in the time index, as a segment becomes inactive.
    pub fn seal(&mut self, base_offset: i64) {
        if self.max_timestamp >= 0 {
            self.times
                .maybe_append(self.max_timestamp, (self.offset_of_max_timestamp - base_offset) as u32);
        }
    }
}

async fn read_optional<S: Storage>(storage: &S, path: &Path, len_max: u64) -> io::Result<Option<Bytes>> {
    match crate::io::read_to_end(storage, path, len_max).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::InvalidData => Ok(None),
        Err(e) => Err(e),
    }
}
