//! Typed configuration with Kafka's key names, and every limit the log keeps.

use crate::record::TimestampType;

/// A topic's log configuration (Kafka's topic-level keys; the broker-level `log.` keys
/// give the defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it passes this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty active segment this long after its first batch.
    pub segment_ms: i64,
    /// `segment.index.bytes`: the largest offset index; a full index rolls the segment.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: log bytes between two offset index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger; -1 for no bound.
    pub retention_bytes: i64,
    /// `flush.messages`: fsync after this many messages. 1 makes the log durable: an
    /// append completes only once it is synced, and concurrent appends share one sync.
    pub flush_messages: i64,
    /// `flush.ms`: fsync when the last flush is this old.
    pub flush_ms: i64,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: u64,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime timestamp may be.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime timestamp may be.
    pub message_timestamp_after_max_ms: i64,
    /// Inactive segments whose log file is kept open; the least recently used is closed past it.
    pub segment_files_open_max: usize,
    /// The largest decompressed records section of one batch.
    pub decompressed_bytes_max: usize,
    /// `producer.id.expiration.ms` (a broker key): an idempotent producer's state goes
    /// once it has not appended for this long.
    pub producer_id_expiration_ms: i64,
    /// `cleanup.policy` holds `delete`: retention deletes old segments.
    pub cleanup_delete: bool,
    /// `cleanup.policy` holds `compact`: the log cleaner keeps the last record of each key.
    pub cleanup_compact: bool,
    /// `delete.retention.ms`: how long a compacted log keeps a tombstone (a null value), so
    /// that a consumer reading from the start sees the delete.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long.
    pub min_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean once this share of the log is dirty.
    pub min_cleanable_dirty_ratio: f64,
}

/// Kafka's maximum segment size: positions in the indexes are 32-bit.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
pub const SEGMENT_BYTES_MIN: u64 = 14;
pub const OFFSET_INDEX_ENTRY_BYTES: u64 = 8;
pub const TIME_INDEX_ENTRY_BYTES: u64 = 12;
/// Checkpoint files are a few lines; anything larger is not one.
pub const CHECKPOINT_BYTES_MAX: u64 = 4096;

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            max_message_bytes: 1024 * 1024 + 12,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 60 * 60 * 1000,
            segment_files_open_max: 256,
            decompressed_bytes_max: 64 * 1024 * 1024,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

impl LogConfig {
    /// Checks the relations between values; the error names the Kafka key.
    pub fn validate(&self) -> Result<(), String> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(format!(
                "segment.bytes must be in {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}, not {}",
                self.segment_bytes
            ));
        }
        if self.segment_ms < 1 {
            return Err(format!("segment.ms must be positive, not {}", self.segment_ms));
        }
        if self.segment_index_bytes < 4 * OFFSET_INDEX_ENTRY_BYTES {
            return Err(format!(
                "segment.index.bytes must be at least 32, not {}",
                self.segment_index_bytes
            ));
        }
        if self.index_interval_bytes < 1 {
            return Err(format!(
                "index.interval.bytes must be positive, not {}",
                self.index_interval_bytes
            ));
        }
        if self.retention_ms < -1 {
            return Err(format!("retention.ms must be -1 or more, not {}", self.retention_ms));
        }
        if self.flush_messages < 1 {
            return Err(format!("flush.messages must be positive, not {}", self.flush_messages));
        }
        if self.flush_ms < 0 {
            return Err(format!("flush.ms must be 0 or more, not {}", self.flush_ms));
        }
        if self.max_message_bytes < 61 || self.max_message_bytes > i32::MAX as u64 {
            return Err(format!(
                "max.message.bytes must be in 61..={}, not {}",
                i32::MAX,
                self.max_message_bytes
            ));
        }
        if self.segment_files_open_max < 1 {
            return Err("segment_files_open_max must be positive".into());
        }
        if !self.cleanup_delete && !self.cleanup_compact {
            return Err("cleanup.policy must hold delete, compact or both".into());
        }
        if self.delete_retention_ms < 0 {
            return Err(format!(
                "delete.retention.ms must be 0 or more, not {}",
                self.delete_retention_ms
            ));
        }
        if self.min_compaction_lag_ms < 0 {
            return Err(format!(
                "min.compaction.lag.ms must be 0 or more, not {}",
                self.min_compaction_lag_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(format!(
                "min.cleanable.dirty.ratio must be in 0..=1, not {}",
                self.min_cleanable_dirty_ratio
            ));
        }
        Ok(())
    }

    /// Parses `cleanup.policy`: `delete`, `compact`, or both, comma-separated.
    pub fn set_cleanup_policy(&mut self, value: &str) -> Result<(), String> {
        let (mut delete, mut compact) = (false, false);
        for policy in value.split(',').map(str::trim) {
            match policy {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => return Err(format!("Invalid value {value} for configuration cleanup.policy")),
            }
        }
        self.cleanup_delete = delete;
        self.cleanup_compact = compact;
        Ok(())
    }

    /// Durable mode: an append completes only once synced (`flush.messages=1`).
    pub fn durable(&self) -> bool {
        self.flush_messages == 1
    }

    pub fn offset_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / OFFSET_INDEX_ENTRY_BYTES) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::LogConfig;

    #[test]
    fn validation_names_the_key() {
        assert_eq!(LogConfig::default().validate(), Ok(()));
        let cases: [(fn(&mut LogConfig), &str); 6] = [
            (|c| c.segment_bytes = 1 << 40, "segment.bytes"),
            (|c| c.segment_ms = 0, "segment.ms"),
            (|c| c.index_interval_bytes = 0, "index.interval.bytes"),
            (|c| c.flush_messages = 0, "flush.messages"),
            (|c| c.max_message_bytes = 10, "max.message.bytes"),
            (|c| c.retention_ms = -5, "retention.ms"),
        ];
        for (mutate, key) in cases {
            let mut config = LogConfig::default();
            mutate(&mut config);
            let error = config.validate().unwrap_err();
            assert!(error.starts_with(key), "{error}");
        }
    }
}
