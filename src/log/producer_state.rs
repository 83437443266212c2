//! ProducerStateManager: per partition, the state of each idempotent producer, as Kafka
//! keeps it: its epoch and the metadata of its last 5 batches (first and last sequence and
//! offset, timestamp), enough to recognise a retried batch and answer it with its original
//! offsets, to reject a gap in sequence, and to fence a stale epoch.
//!
//! A pure state machine: `check` judges a client batch without changing anything, `update`
//! records a batch once it is in the log (from any origin), and snapshots encode the whole
//! state for the log to write at each roll and clean shutdown. Recovery loads the newest
//! snapshot and replays the batches after it through `update`.

use std::collections::{BTreeMap, VecDeque};

use crate::error::{ErrorCode, KafkaError};

/// Batches kept per producer: `max.in.flight.requests.per.connection` may be up to 5.
pub const BATCHES_RETAINED: usize = 5;
/// Producers a snapshot may hold, at most (a bound on what a snapshot file may claim).
pub const PRODUCERS_MAX: usize = 1 << 20;
const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_HEADER_BYTES: usize = 2 + 4;
const SNAPSHOT_ENTRY_BYTES: usize = 8 + 2 + 8 + 4;
const SNAPSHOT_BATCH_BYTES: usize = 4 + 4 + 8 + 8 + 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub epoch: i16,
    /// Oldest first, at most [`BATCHES_RETAINED`]; cleared when the epoch changes.
    pub batches: VecDeque<BatchMetadata>,
    /// When the producer last appended (the broker's clock), for expiry.
    pub last_timestamp: i64,
}

/// What a client batch is, judged against the producer's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New: append it.
    Append,
    /// A retry of a batch already in the log: answer with its original offsets.
    Duplicate(BatchMetadata),
}

/// The last sequence of a batch: sequences wrap at Int32 max.
pub fn last_sequence(base_sequence: i32, last_offset_delta: i32) -> i32 {
    ((base_sequence as i64 + last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerStateEntry>,
}

impl ProducerStateManager {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// Kafka's order for a client batch: duplicate first, then the epoch, then the sequence.
    /// A producer without state may start at any sequence (modern brokers no longer answer
    /// UNKNOWN_PRODUCER_ID).
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<SequenceCheck, KafkaError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if epoch == entry.epoch {
            if let Some(batch) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            {
                return Ok(SequenceCheck::Duplicate(*batch));
            }
        }
        if epoch < entry.epoch {
            return Err(KafkaError::new(
                ErrorCode::InvalidProducerEpoch,
                format!(
                    "producer {producer_id}: epoch {epoch} is older than the current {}",
                    entry.epoch
                ),
            ));
        }
        if epoch > entry.epoch {
            if first_seq != 0 {
                return Err(KafkaError::new(
                    ErrorCode::OutOfOrderSequenceNumber,
                    format!("producer {producer_id}: a new epoch {epoch} must start at sequence 0, not {first_seq}"),
                ));
            }
            return Ok(SequenceCheck::Append);
        }
        match entry.batches.back() {
            Some(last) if first_seq != next_sequence(last.last_seq) => Err(KafkaError::new(
                ErrorCode::OutOfOrderSequenceNumber,
                format!(
                    "producer {producer_id} epoch {epoch}: sequence {first_seq} after {}, expected {}",
                    last.last_seq,
                    next_sequence(last.last_seq)
                ),
            )),
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records a batch that is now in the log at `[first_offset, last_offset]`.
    pub fn update(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
        first_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) {
        let entry = self.producers.entry(producer_id).or_insert_with(|| ProducerStateEntry {
            epoch,
            ..ProducerStateEntry::default()
        });
        if epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = epoch;
        }
        entry.batches.push_back(BatchMetadata {
            first_seq,
            last_seq,
            first_offset,
            last_offset,
            timestamp: now_ms,
        });
        while entry.batches.len() > BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.last_timestamp = entry.last_timestamp.max(now_ms);
    }

    /// Drops producers that have not appended for `expiration_ms` (`producer.id.expiration.ms`).
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// Forgets batches at or above `offset` (a truncation), and producers left with none.
    pub fn truncate_to(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    /// The snapshot file's bytes: version, CRC32C of the rest, then each producer with its
    /// batches. Unlike Kafka, which keeps only the last batch, every retained batch is
    /// written, so that the duplicate window survives a restart whole.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(self.producers.len() as i32).to_be_bytes());
        for (&producer_id, entry) in &self.producers {
            body.extend_from_slice(&producer_id.to_be_bytes());
            body.extend_from_slice(&entry.epoch.to_be_bytes());
            body.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            body.extend_from_slice(&(entry.batches.len() as i32).to_be_bytes());
            for b in &entry.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + body.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot; `None` if it is torn, corrupt or not ours.
    pub fn decode_snapshot(bytes: &[u8]) -> Option<ProducerStateManager> {
        if bytes.len() < SNAPSHOT_HEADER_BYTES + 4 {
            return None;
        }
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        let crc = u32::from_be_bytes(bytes[2..6].try_into().ok()?);
        let body = &bytes[SNAPSHOT_HEADER_BYTES..];
        if version != SNAPSHOT_VERSION || crc32c::crc32c(body) != crc {
            return None;
        }
        let mut r = body;
        let count = take_i32(&mut r)?;
        if count < 0 || count as usize > PRODUCERS_MAX || (count as usize) * SNAPSHOT_ENTRY_BYTES > r.len() {
            return None;
        }
        let mut producers = BTreeMap::new();
        for _ in 0..count {
            let producer_id = take_i64(&mut r)?;
            let epoch = i16::from_be_bytes(take(&mut r, 2)?.try_into().ok()?);
            let last_timestamp = take_i64(&mut r)?;
            let batches = take_i32(&mut r)?;
            if !(0..=BATCHES_RETAINED as i32).contains(&batches) || batches as usize * SNAPSHOT_BATCH_BYTES > r.len() {
                return None;
            }
            let mut entry = ProducerStateEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp,
            };
            for _ in 0..batches {
                entry.batches.push_back(BatchMetadata {
                    first_seq: take_i32(&mut r)?,
                    last_seq: take_i32(&mut r)?,
                    first_offset: take_i64(&mut r)?,
                    last_offset: take_i64(&mut r)?,
                    timestamp: take_i64(&mut r)?,
                });
            }
            producers.insert(producer_id, entry);
        }
        r.is_empty().then_some(ProducerStateManager { producers })
    }
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (head, rest) = r.split_at(n);
    *r = rest;
    Some(head)
}

fn take_i32(r: &mut &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(take(r, 4)?.try_into().ok()?))
}

fn take_i64(r: &mut &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(take(r, 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step: a client batch (producer, epoch, first and last sequence) and what the
    /// manager must answer; an `Append` is then recorded at the next offsets.
    type Step = (i64, i16, i32, i32, Result<&'static str, ErrorCode>);

    /// Runs steps through check and update, as the log does, and compares each answer.
    fn check(name: &str, steps: &[Step]) {
        let mut state = ProducerStateManager::default();
        let mut next_offset = 0i64;
        for (i, &(producer_id, epoch, first_seq, last_seq, ref want)) in steps.iter().enumerate() {
            let got = state.check(producer_id, epoch, first_seq, last_seq);
            let summary = match &got {
                Ok(SequenceCheck::Append) => Ok("append"),
                Ok(SequenceCheck::Duplicate(_)) => Ok("duplicate"),
                Err(e) => Err(e.code),
            };
            assert_eq!(&summary, want, "{name}: step {i}");
            if let Ok(SequenceCheck::Append) = got {
                let count = (last_seq as i64 - first_seq as i64).rem_euclid(i32::MAX as i64 + 1) + 1;
                state.update(
                    producer_id,
                    epoch,
                    first_seq,
                    last_seq,
                    next_offset,
                    next_offset + count - 1,
                    0,
                );
                next_offset += count;
            }
        }
    }

    #[test]
    fn sequence_rules() {
        use ErrorCode::{InvalidProducerEpoch as Fenced, OutOfOrderSequenceNumber as Gap};
        let cases: &[(&str, &[Step])] = &[
            ("in order", &[(1, 0, 0, 4, Ok("append")), (1, 0, 5, 9, Ok("append"))]),
            (
                "an unknown producer may start anywhere",
                &[(1, 0, 17, 20, Ok("append"))],
            ),
            (
                "retry of the last batch",
                &[(1, 0, 0, 4, Ok("append")), (1, 0, 0, 4, Ok("duplicate"))],
            ),
            (
                "retry of the oldest of five",
                &[
                    (1, 0, 0, 0, Ok("append")),
                    (1, 0, 1, 1, Ok("append")),
                    (1, 0, 2, 2, Ok("append")),
                    (1, 0, 3, 3, Ok("append")),
                    (1, 0, 4, 4, Ok("append")),
                    (1, 0, 0, 0, Ok("duplicate")),
                ],
            ),
            (
                "a sixth batch pushes the first out of the window",
                &[
                    (1, 0, 0, 0, Ok("append")),
                    (1, 0, 1, 1, Ok("append")),
                    (1, 0, 2, 2, Ok("append")),
                    (1, 0, 3, 3, Ok("append")),
                    (1, 0, 4, 4, Ok("append")),
                    (1, 0, 5, 5, Ok("append")),
                    (1, 0, 0, 0, Err(Gap)),
                ],
            ),
            ("a gap", &[(1, 0, 0, 4, Ok("append")), (1, 0, 6, 9, Err(Gap))]),
            (
                "a partial overlap is no duplicate",
                &[(1, 0, 0, 4, Ok("append")), (1, 0, 3, 7, Err(Gap))],
            ),
            (
                "a new epoch starts at 0",
                &[
                    (1, 0, 0, 4, Ok("append")),
                    (1, 1, 5, 9, Err(Gap)),
                    (1, 1, 0, 2, Ok("append")),
                ],
            ),
            (
                "a new epoch clears the duplicate window",
                &[
                    (1, 0, 0, 4, Ok("append")),
                    (1, 1, 0, 4, Ok("append")),
                    (1, 1, 0, 4, Ok("duplicate")),
                ],
            ),
            (
                "a stale epoch is fenced",
                &[
                    (1, 1, 0, 0, Ok("append")),
                    (1, 0, 1, 1, Err(Fenced)),
                    (1, 0, 0, 0, Err(Fenced)),
                ],
            ),
            (
                "sequences wrap at Int32 max",
                &[(1, 0, i32::MAX - 1, i32::MAX, Ok("append")), (1, 0, 0, 3, Ok("append"))],
            ),
            (
                "a batch across the wrap",
                &[
                    (1, 0, i32::MAX - 1, 1, Ok("append")),
                    (1, 0, 2, 2, Ok("append")),
                    (1, 0, i32::MAX - 1, 1, Ok("duplicate")),
                ],
            ),
            (
                "producers are independent",
                &[
                    (1, 0, 0, 0, Ok("append")),
                    (2, 0, 0, 0, Ok("append")),
                    (1, 0, 1, 1, Ok("append")),
                    (2, 0, 2, 2, Err(Gap)),
                ],
            ),
        ];
        for (name, steps) in cases {
            check(name, steps);
        }
    }

    #[test]
    fn last_sequence_wraps() {
        assert_eq!(last_sequence(0, 4), 4);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn expiry_and_truncation() {
        let mut state = ProducerStateManager::default();
        state.update(1, 0, 0, 0, 0, 0, 1_000);
        state.update(2, 0, 0, 0, 1, 1, 5_000);
        state.update(2, 0, 1, 1, 2, 2, 6_000);
        assert_eq!(state.remove_expired(10_000, 6_000), 1, "producer 1 idle for 9 s");
        assert!(state.get(1).is_none() && state.get(2).is_some());
        state.truncate_to(2);
        assert_eq!(state.get(2).unwrap().batches.len(), 1);
        state.truncate_to(1);
        assert!(state.is_empty());
    }

    #[test]
    fn snapshot_round_trip_and_damage() {
        let mut state = ProducerStateManager::default();
        for i in 0..7 {
            state.update(3, 2, i, i, 10 + i as i64, 10 + i as i64, 77);
        }
        state.update(9, 0, 100, 104, 40, 44, 78);
        let bytes = state.encode_snapshot();
        assert_eq!(ProducerStateManager::decode_snapshot(&bytes), Some(state));
        for cut in 0..bytes.len() {
            assert_eq!(
                ProducerStateManager::decode_snapshot(&bytes[..cut]),
                None,
                "torn at {cut}"
            );
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert_eq!(ProducerStateManager::decode_snapshot(&damaged), None, "flipped at {i}");
        }
    }
}
