//! The sparse indexes of a segment, kept in memory and written to their files when the
//! segment is flushed. Entries are relative to the segment's base offset, as in Kafka.
//!
//! Index files carry no checksum, so they are trusted only below the recovery point, and
//! even there every entry is checked against the segment when loaded and each lookup
//! checks the batch it lands on; a bad index is rebuilt from the log.

use crate::config::{OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES};

/// `.index`: (offset of a batch's first record - base offset, byte position of the batch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
    /// Entries already in the file.
    persisted: usize,
}

/// `.timeindex`: (largest timestamp so far, relative offset of the batch holding it); an entry
/// is added only when the timestamp grows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
    persisted: usize,
}

impl OffsetIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn append(&mut self, relative_offset: u32, position: u32) {
        if let Some(&(last_offset, last_position)) = self.entries.last() {
            assert!(relative_offset > last_offset, "offset index entries increase");
            assert!(position > last_position, "offset index positions increase");
        }
        self.entries.push((relative_offset, position));
    }

    /// The last entry at or before `relative_offset`, or (0, 0): the segment's first batch.
    pub fn lookup(&self, relative_offset: u32) -> (u32, u32) {
        let mut i = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if crate::canary::INDEX_OFF_BY_ONE && i < self.entries.len() {
            i += 1;
        }
        if i == 0 {
            (0, 0)
        } else {
            self.entries[i - 1]
        }
    }

    /// Drops entries at or after `relative_offset`.
    pub fn truncate_to(&mut self, relative_offset: u32) {
        let keep = self.entries.partition_point(|&(o, _)| o < relative_offset);
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(keep);
    }

    /// Decodes a file's bytes; `None` if they are not a valid index of a segment of
    /// `segment_bytes` bytes.
    pub fn decode(bytes: &[u8], segment_bytes: u64) -> Option<OffsetIndex> {
        if bytes.len() as u64 % OFFSET_INDEX_ENTRY_BYTES != 0 {
            return None;
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES as usize) {
            let offset = u32::from_be_bytes(chunk[0..4].try_into().expect("4 bytes"));
            let position = u32::from_be_bytes(chunk[4..8].try_into().expect("4 bytes"));
            let increasing = index.entries.last().is_none_or(|&(o, p)| offset > o && position > p);
            if !increasing || position as u64 >= segment_bytes {
                return None;
            }
            index.entries.push((offset, position));
        }
        index.persisted = index.entries.len();
        Some(index)
    }

    /// The entries not yet in the file, encoded, and where in the file they go.
    pub fn unpersisted(&self) -> (u64, Vec<u8>) {
        let mut out = Vec::with_capacity((self.entries.len() - self.persisted) * 8);
        for &(offset, position) in &self.entries[self.persisted..] {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&position.to_be_bytes());
        }
        (self.persisted as u64 * OFFSET_INDEX_ENTRY_BYTES, out)
    }

    pub fn file_bytes(&self) -> u64 {
        self.entries.len() as u64 * OFFSET_INDEX_ENTRY_BYTES
    }

    pub fn encode_all(&self) -> Vec<u8> {
        let mut whole = self.clone();
        whole.persisted = 0;
        whole.unpersisted().1
    }

    pub fn last_relative_offset(&self) -> Option<u32> {
        self.entries.last().map(|&(o, _)| o)
    }

    pub fn mark_persisted(&mut self) {
        self.persisted = self.entries.len();
    }
}

impl TimeIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// Adds an entry if `timestamp` is larger than the last one.
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(&(t, o)) if timestamp <= t => assert!(relative_offset >= o),
            _ => self.entries.push((timestamp, relative_offset)),
        }
    }

    /// The relative offset to start a search for `timestamp` from: the last entry whose
    /// timestamp is below it (every record before that entry is older), or 0.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let i = self.entries.partition_point(|&(t, _)| t < timestamp);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    pub fn truncate_to(&mut self, relative_offset: u32) {
        let keep = self.entries.partition_point(|&(_, o)| o < relative_offset);
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(keep);
    }

    pub fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if bytes.len() as u64 % TIME_INDEX_ENTRY_BYTES != 0 {
            return None;
        }
        let mut index = TimeIndex::default();
        for chunk in bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES as usize) {
            let timestamp = i64::from_be_bytes(chunk[0..8].try_into().expect("8 bytes"));
            let offset = u32::from_be_bytes(chunk[8..12].try_into().expect("4 bytes"));
            let increasing = index.entries.last().is_none_or(|&(t, o)| timestamp > t && offset >= o);
            if !increasing {
                return None;
            }
            index.entries.push((timestamp, offset));
        }
        index.persisted = index.entries.len();
        Some(index)
    }

    pub fn unpersisted(&self) -> (u64, Vec<u8>) {
        let mut out = Vec::with_capacity((self.entries.len() - self.persisted) * 12);
        for &(timestamp, offset) in &self.entries[self.persisted..] {
            out.extend_from_slice(&timestamp.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
        }
        (self.persisted as u64 * TIME_INDEX_ENTRY_BYTES, out)
    }

    pub fn file_bytes(&self) -> u64 {
        self.entries.len() as u64 * TIME_INDEX_ENTRY_BYTES
    }

    pub fn encode_all(&self) -> Vec<u8> {
        let mut whole = self.clone();
        whole.persisted = 0;
        whole.unpersisted().1
    }

    pub fn mark_persisted(&mut self) {
        self.persisted = self.entries.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup() {
        let mut index = OffsetIndex::default();
        for (o, p) in [(0, 0), (10, 4096), (25, 8300)] {
            index.append(o, p);
        }
        let cases = [
            (0, (0, 0)),
            (9, (0, 0)),
            (10, (10, 4096)),
            (24, (10, 4096)),
            (25, (25, 8300)),
            (1000, (25, 8300)),
        ];
        for (offset, entry) in cases {
            assert_eq!(index.lookup(offset), entry, "{offset}");
        }
        let (at, bytes) = index.unpersisted();
        assert_eq!((at, bytes.len()), (0, 24));
        assert_eq!(OffsetIndex::decode(&bytes, 10_000).unwrap().lookup(24), (10, 4096));
        assert!(
            OffsetIndex::decode(&bytes, 8000).is_none(),
            "a position past the segment"
        );
        assert!(OffsetIndex::decode(&bytes[..20], 10_000).is_none(), "a torn entry");
        index.truncate_to(10);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn time_lookup() {
        let mut index = TimeIndex::default();
        for (t, o) in [(100, 0), (100, 5), (200, 7), (150, 9), (300, 12)] {
            index.maybe_append(t, o);
        }
        assert_eq!(index.len(), 3);
        let cases = [(50, 0), (100, 0), (101, 0), (200, 0), (201, 7), (301, 12)];
        for (timestamp, offset) in cases {
            assert_eq!(index.lookup(timestamp), offset, "{timestamp}");
        }
        let (_, bytes) = index.unpersisted();
        assert_eq!(
            TimeIndex::decode(&bytes),
            Some(TimeIndex {
                persisted: 3,
                ..index.clone()
            })
        );
        let mut swapped = bytes.clone();
        swapped[0..12].copy_from_slice(&bytes[24..36]);
        assert!(TimeIndex::decode(&swapped).is_none());
    }
}
