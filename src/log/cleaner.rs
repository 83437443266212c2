//! The log cleaner's pure parts: the offset map of a dirty section and the filter that
//! decides what becomes of each batch. [`UnifiedLog::clean`](super::UnifiedLog::clean)
//! does the I/O: it reads the segments, writes the cleaned ones and swaps them in.
//!
//! Kafka's compaction: the last record of each key survives; an older record of a key
//! that appears again later in the log goes. A tombstone (a null value) survives until its
//! segment is `delete.retention.ms` old and has been cleaned once, so that a consumer
//! reading from the start sees the delete. A batch that loses records keeps its base
//! offset, its lastOffsetDelta and its producer fields, so that offsets never move and the
//! idempotent producers' sequences stay as they were.
//!
//! Never filtered: control batches and transactional batches (whether their transaction
//! committed is not known here until transactions exist), and the last batch of each
//! idempotent producer still in the producer state, which carries its sequence numbers.

use std::collections::HashMap;

use crate::error::KafkaResult;
use crate::record::{self, BatchHeader, Compression, Records, ValidationLimits, RECORD_BATCH_OVERHEAD};

/// Memory one key costs in the map beyond its bytes (hash table slot, offset, allocation).
pub const OFFSET_MAP_ENTRY_OVERHEAD_BYTES: usize = 48;

/// The last offset of every key in a dirty section, within a memory bound.
#[derive(Debug)]
pub struct OffsetMap {
    latest: HashMap<Vec<u8>, i64>,
    bytes: usize,
    bytes_max: usize,
}

impl OffsetMap {
    pub fn new(bytes_max: usize) -> OffsetMap {
        OffsetMap {
            latest: HashMap::new(),
            bytes: 0,
            bytes_max,
        }
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Adds the keyed records of one whole batch at offsets `from` and later. Returns
    /// false, with nothing added, if the new keys would not fit.
    pub fn add_batch(
        &mut self,
        batch: &[u8],
        from: i64,
        limits: &ValidationLimits,
        scratch: &mut Vec<u8>,
    ) -> KafkaResult<bool> {
        let mut keys: Vec<(Vec<u8>, i64)> = Vec::new();
        let header = record::for_each_record(batch, limits, scratch, |offset, r| {
            if let Some(key) = r.key {
                if offset >= from {
                    keys.push((key.to_vec(), offset));
                }
            }
        })?;
        if header.is_control() || header.is_transactional() {
            return Ok(true);
        }
        let new_bytes: usize = keys
            .iter()
            .filter(|(k, _)| !self.latest.contains_key(k))
            .map(|(k, _)| k.len() + OFFSET_MAP_ENTRY_OVERHEAD_BYTES)
            .sum();
        if self.bytes + new_bytes > self.bytes_max {
            return Ok(false);
        }
        self.bytes += new_bytes;
        for (key, offset) in keys {
            let entry = self.latest.entry(key).or_insert(offset);
            *entry = (*entry).max(offset);
        }
        Ok(true)
    }

    /// The last offset of `key` in the dirty section, if it appears there.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }
}

/// What becomes of one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Every record stays (or the batch is never filtered): copy it as it is.
    Keep,
    /// No record stays.
    Drop,
    /// Some records stay: this batch, uncompressed, with the same offsets and producer fields.
    Rewrite(Vec<u8>, usize),
}

/// How one batch is to be cleaned.
#[derive(Clone, Copy, Debug)]
pub struct FilterRules {
    /// The segment is past the tombstone horizon: tombstones go too.
    pub drop_tombstones: bool,
    /// The last batch of a live idempotent producer: never dropped nor rewritten.
    pub keep_whole: bool,
}

/// Decides what becomes of `batch` given the dirty section's offset map. Returns the
/// outcome and how many records went.
pub fn filter_batch(
    batch: &[u8],
    map: &OffsetMap,
    rules: FilterRules,
    limits: &ValidationLimits,
    scratch: &mut Vec<u8>,
) -> KafkaResult<(Filtered, usize)> {
    let summary = record::validate_batch(batch, record::AppendOrigin::Replication, limits, scratch)?;
    let header: BatchHeader = summary.header;
    if header.is_control() || header.is_transactional() || rules.keep_whole {
        return Ok((Filtered::Keep, 0));
    }
    let records: &[u8] = if header.compression() == Some(Compression::None) {
        &batch[RECORD_BATCH_OVERHEAD..]
    } else {
        &scratch[..]
    };
    let mut kept = Vec::new();
    let (mut kept_count, mut removed) = (0usize, 0usize);
    let mut iter = Records::new(records, header.base_timestamp);
    while let Some((bytes, r)) = iter.next_with_bytes()? {
        let offset = header.base_offset + r.offset_delta as i64;
        let retain = match r.key {
            // A keyless record has no place in a compacted log (Kafka drops it too).
            None => false,
            Some(key) => {
                let superseded = map.latest(key).is_some_and(|latest| latest > offset);
                let expired_tombstone = r.value.is_none() && rules.drop_tombstones;
                !superseded && !expired_tombstone
            }
        };
        if retain {
            kept.extend_from_slice(bytes);
            kept_count += 1;
        } else {
            removed += 1;
        }
    }
    if removed == 0 {
        return Ok((Filtered::Keep, 0));
    }
    if kept_count == 0 {
        return Ok((Filtered::Drop, removed));
    }
    let rewritten = record::batch_with_records(batch, &kept, kept_count as i32);
    Ok((Filtered::Rewrite(rewritten, kept_count), removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordBatchBuilder as B;

    fn limits() -> ValidationLimits {
        ValidationLimits {
            decompressed_bytes_max: 1 << 20,
        }
    }

    /// A batch at `base` of (key, value) records; `None` values are tombstones.
    fn batch(base: i64, records: &[(Option<&str>, Option<&str>)], compression: Compression) -> Vec<u8> {
        let mut b = B::new(compression);
        for (k, v) in records {
            b.append(1000, k.map(|k| k.as_bytes()), v.map(|v| v.as_bytes()), &[]);
        }
        let mut bytes = b.build();
        record::set_base_offset(&mut bytes, base);
        bytes.to_vec()
    }

    /// What a reader of the filtered batch sees: (offset, key, value).
    fn read(batch: &[u8]) -> Vec<(i64, Option<String>, Option<String>)> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
        record::for_each_record(batch, &limits(), &mut scratch, |o, r| {
            out.push((o, s(r.key), s(r.value)))
        })
        .unwrap();
        out
    }

    /// One case: the dirty section's records (offset, key), the batch, the rules, and the
    /// offsets that must survive.
    fn check(
        dirty: &[(i64, &str)],
        records: &[(Option<&str>, Option<&str>)],
        compression: Compression,
        rules: FilterRules,
        surviving: &[i64],
    ) {
        let mut map = OffsetMap::new(1 << 20);
        let mut scratch = Vec::new();
        for &(offset, key) in dirty {
            let b = batch(offset, &[(Some(key), Some("later"))], Compression::None);
            assert!(map.add_batch(&b, 0, &limits(), &mut scratch).unwrap());
        }
        let original = batch(100, records, compression);
        let (filtered, removed) = filter_batch(&original, &map, rules, &limits(), &mut scratch).unwrap();
        let all: Vec<i64> = (0..records.len() as i64).map(|d| 100 + d).collect();
        let got: Vec<i64> = match &filtered {
            Filtered::Keep => all.clone(),
            Filtered::Drop => vec![],
            Filtered::Rewrite(bytes, count) => {
                let header = BatchHeader::parse(bytes).unwrap();
                assert_eq!(header.base_offset, 100, "the base offset stays");
                assert_eq!(
                    header.last_offset_delta as usize,
                    records.len() - 1,
                    "so does lastOffsetDelta"
                );
                assert_eq!(header.records_count as usize, *count);
                assert!(record::crc_matches(bytes));
                let read = read(bytes);
                for (offset, key, value) in &read {
                    let (k, v) = records[(offset - 100) as usize];
                    assert_eq!(
                        (key.as_deref(), value.as_deref()),
                        (k, v),
                        "records keep their contents"
                    );
                }
                read.iter().map(|r| r.0).collect()
            }
        };
        assert_eq!(got, surviving, "dirty {dirty:?} records {records:?} rules {rules:?}");
        assert_eq!(removed, all.len() - surviving.len());
    }

    const KEEP_ALL: FilterRules = FilterRules {
        drop_tombstones: false,
        keep_whole: false,
    };

    #[test]
    fn filter_cases() {
        let none = Compression::None;
        // Nothing later: all stay.
        check(
            &[],
            &[(Some("a"), Some("1")), (Some("b"), Some("2"))],
            none,
            KEEP_ALL,
            &[100, 101],
        );
        // A key seen later in the dirty section goes.
        check(
            &[(200, "a")],
            &[(Some("a"), Some("1")), (Some("b"), Some("2"))],
            none,
            KEEP_ALL,
            &[101],
        );
        // The same key twice in one batch: the first goes (the map holds the batch's own last).
        check(
            &[(101, "a")],
            &[(Some("a"), Some("1")), (Some("a"), Some("2"))],
            none,
            KEEP_ALL,
            &[101],
        );
        // A record that is itself the latest stays.
        check(&[(100, "a")], &[(Some("a"), Some("1"))], none, KEEP_ALL, &[100]);
        // All superseded: the batch goes.
        check(
            &[(300, "a"), (301, "b")],
            &[(Some("a"), Some("1")), (Some("b"), Some("2"))],
            none,
            KEEP_ALL,
            &[],
        );
        // Keyless records go.
        check(
            &[],
            &[(None, Some("1")), (Some("b"), Some("2"))],
            none,
            KEEP_ALL,
            &[101],
        );
        // Tombstones stay until the horizon, then go.
        check(
            &[],
            &[(Some("a"), None), (Some("b"), Some("2"))],
            none,
            KEEP_ALL,
            &[100, 101],
        );
        let horizon = FilterRules {
            drop_tombstones: true,
            keep_whole: false,
        };
        check(&[], &[(Some("a"), None), (Some("b"), Some("2"))], none, horizon, &[101]);
        // A producer's last batch is kept whole.
        let whole = FilterRules {
            drop_tombstones: true,
            keep_whole: true,
        };
        check(
            &[(300, "a"), (301, "b")],
            &[(Some("a"), Some("1")), (Some("b"), Some("2"))],
            none,
            whole,
            &[100, 101],
        );
        // Compressed batches that lose records are written uncompressed.
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            check(
                &[(200, "a")],
                &[(Some("a"), Some("1")), (Some("b"), Some("2")), (Some("c"), Some("3"))],
                codec,
                KEEP_ALL,
                &[101, 102],
            );
        }
    }

    #[test]
    fn the_offset_map_keeps_its_bound() {
        let mut map = OffsetMap::new(2 * (1 + OFFSET_MAP_ENTRY_OVERHEAD_BYTES));
        let mut scratch = Vec::new();
        let b = |base, key| batch(base, &[(Some(key), Some("v"))], Compression::None);
        assert!(map.add_batch(&b(0, "a"), 0, &limits(), &mut scratch).unwrap());
        assert!(map.add_batch(&b(1, "b"), 0, &limits(), &mut scratch).unwrap());
        // A key already there costs nothing more.
        assert!(map.add_batch(&b(2, "a"), 0, &limits(), &mut scratch).unwrap());
        assert_eq!(map.latest(b"a"), Some(2));
        assert!(!map.add_batch(&b(3, "c"), 0, &limits(), &mut scratch).unwrap());
        assert_eq!(map.latest(b"c"), None);
        assert_eq!(map.len(), 2);
        // Records below `from` are not dirty.
        let mut map = OffsetMap::new(1 << 20);
        assert!(map.add_batch(&b(5, "x"), 6, &limits(), &mut scratch).unwrap());
        assert!(map.is_empty());
    }
}
