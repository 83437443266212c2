//! The history of one run and the checkers over it, named after the invariants (and after
//! Jepsen's Kafka anomalies where one exists).
//!
//! Every record a writer sends carries a value unique to that attempt (`w{writer}-{n}`), so
//! a value names one send. The history keeps what was sent, what was acknowledged at which
//! offset, what consumers observed, and every event that may lose data legitimately:
//! a power loss in page-cache mode (records above the flushed offset) and bit rot on the
//! disk (records from the rotten segment on). Violations are strings naming the checker.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// A topic partition.
pub type Tp = (String, i32);

#[derive(Clone, Debug)]
pub struct Sent {
    pub writer: u32,
    pub topic: String,
    /// The record's CreateTime, set by the writer.
    pub timestamp: i64,
    pub at_ms: i64,
}

#[derive(Clone, Debug)]
pub struct Ack {
    pub partition: i32,
    pub offset: i64,
}

/// An event after which records may be missing without a broker bug.
#[derive(Clone, Debug)]
pub struct Loss {
    pub at_ms: i64,
    pub why: String,
    /// Per partition: records at or above this offset that were sent before `at_ms` may be
    /// gone, and their offsets may be reused.
    pub from: BTreeMap<Tp, i64>,
    /// Partitions not listed lose from here (`i64::MAX`: nothing).
    pub others_from: i64,
    /// Whether records sent after the event may be lost too. Bit rot is: the broker does not
    /// know of it until a recovery or a read finds it, and a recovery that finds it
    /// truncates the log there, with everything appended since (as Kafka does).
    pub latent: bool,
}

impl Loss {
    fn from_for(&self, tp: &Tp) -> i64 {
        self.from.get(tp).copied().unwrap_or(self.others_from)
    }
}

/// One partition as the final read found it.
#[derive(Clone, Debug, Default)]
pub struct FinalLog {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub records: BTreeMap<i64, String>,
    /// The read stopped here on a corrupt batch.
    pub unreadable_from: Option<i64>,
    /// Idempotent batches in offset order: (base offset, producer id, epoch, first and
    /// last sequence).
    pub producer_batches: Vec<(i64, i64, i16, i32, i32)>,
}

#[derive(Default)]
pub struct History {
    pub durable: bool,
    pub sent: BTreeMap<String, Sent>,
    pub acked: BTreeMap<String, Ack>,
    /// Writers whose producer retries: a record of theirs may appear twice.
    pub retrying_writers: BTreeSet<u32>,
    /// Idempotent writers: never a duplicate, and their records keep their order within a
    /// partition.
    pub idempotent_writers: BTreeSet<u32>,
    pub losses: Vec<Loss>,
    /// (partition, offset, value, time) as consumers saw them.
    pub observed: Vec<(Tp, i64, String, i64)>,
    /// Gaps a consumer's polls jumped: (partition, first skipped, next read, when the last
    /// record before the gap was asked for). Judged at the end against the log start.
    pub skips: Vec<(Tp, i64, i64, i64)>,
    /// The smallest `retention.ms` a topic ever had (or was asked to have); absent: none.
    pub retention_ms_min: BTreeMap<String, i64>,
    pub violations: Vec<String>,
    pub counts: BTreeMap<&'static str, u64>,
    /// Consumer groups: who owned a partition in a generation (classic) or member epoch
    /// (KIP-848): (group, generation or epoch, partition) to member id.
    pub group_owners: BTreeMap<(String, i32, Tp), String>,
    /// Values each group's members have polled.
    pub group_seen: BTreeMap<String, BTreeSet<String>>,
    /// Every commit per (group, partition): (offset, sent at, acknowledged at). A commit
    /// takes effect somewhere between its send and its acknowledgement.
    pub group_commits: BTreeMap<(String, Tp), Vec<(i64, i64, Option<i64>)>>,
    /// The side topics that come and go (`churn.rs`).
    pub churn: crate::churn::ChurnHistory,
    trace: u64,
}

/// The history, shared by the workload's tasks and the nemesis.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<History>>);

impl Shared {
    pub fn new(durable: bool) -> Shared {
        let shared = Shared::default();
        shared.lock().durable = durable;
        shared
    }

    pub fn lock(&self) -> MutexGuard<'_, History> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl History {
    /// Folds an event into the trace hash, which two runs of one seed must agree on.
    pub fn trace(&mut self, event: &str) {
        for b in event.bytes().chain([0xff]) {
            self.trace = (self.trace ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }

    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    pub fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    pub fn violation(&mut self, checker: &str, what: String) {
        if self.violations.len() < 20 {
            self.violations.push(format!("{checker}: {what}"));
        }
    }

    pub fn note_retention(&mut self, topic: &str, retention_ms: i64) {
        if retention_ms >= 0 {
            let min = self.retention_ms_min.entry(topic.to_string()).or_insert(retention_ms);
            *min = (*min).min(retention_ms);
        }
    }

    /// Whether an event since `since_ms` may have lost `tp` at `offset`.
    pub fn lost_since(&self, tp: &Tp, offset: i64, since_ms: i64) -> Option<&Loss> {
        self.losses
            .iter()
            .find(|l| (l.latent || l.at_ms >= since_ms) && offset >= l.from_for(tp))
    }

    /// Whether any loss event touching `tp` happened after `since_ms`.
    pub fn any_loss_since(&self, tp: &Tp, since_ms: i64) -> bool {
        self.losses
            .iter()
            .any(|l| (l.latent || l.at_ms >= since_ms) && l.from_for(tp) < i64::MAX)
    }

    /// The checkers that need the final state of every partition of `topics`, read after the
    /// faults healed. `now_ms` is the broker's clock at the final read.
    pub fn check_final(&mut self, finals: &BTreeMap<Tp, FinalLog>, topics: &[String], now_ms: i64) {
        let mut violations = Vec::new();
        // lost-write: every acknowledged record is where its acknowledgement said.
        for (value, ack) in &self.acked {
            let sent = &self.sent[value];
            if !topics.contains(&sent.topic) {
                continue;
            }
            let tp = (sent.topic.clone(), ack.partition);
            if self.lost_since(&tp, ack.offset, sent.at_ms).is_some() {
                continue;
            }
            let Some(log) = finals.get(&tp) else {
                violations.push((
                    "lost-write",
                    format!(
                        "{value} acknowledged at {tp:?}@{} but the partition is gone",
                        ack.offset
                    ),
                ));
                continue;
            };
            if ack.offset < log.log_start_offset {
                let retention = self.retention_ms_min.get(&sent.topic).copied();
                let expired = retention.is_some_and(|r| now_ms - sent.timestamp >= r);
                if !expired {
                    violations.push((
                        "lost-write",
                        format!(
                            "{value} acknowledged at {tp:?}@{} is below the log start offset {} but {} ms old, retention.ms {:?}",
                            ack.offset,
                            log.log_start_offset,
                            now_ms - sent.timestamp,
                            retention
                        ),
                    ));
                }
                continue;
            }
            if log.unreadable_from.is_some_and(|u| ack.offset >= u) {
                violations.push((
                    "lost-write",
                    format!("{value} at {tp:?}@{} is unreadable (corrupt batch)", ack.offset),
                ));
                continue;
            }
            match log.records.get(&ack.offset) {
                Some(v) if v == value => {}
                Some(other) => violations.push((
                    "inconsistent-offsets",
                    format!(
                        "{value} acknowledged at {tp:?}@{} but the log holds {other} there",
                        ack.offset
                    ),
                )),
                None => violations.push((
                    "lost-write",
                    format!(
                        "{value} acknowledged at {tp:?}@{} is missing (log [{}, {}))",
                        ack.offset, log.log_start_offset, log.high_watermark
                    ),
                )),
            }
        }
        // duplicate, and records nobody sent.
        let mut seen: BTreeMap<&str, (Tp, i64)> = BTreeMap::new();
        for (tp, log) in finals {
            for (offset, value) in &log.records {
                let Some(sent) = self.sent.get(value) else {
                    violations.push((
                        "phantom-record",
                        format!("{tp:?}@{offset} holds {value}, which nobody sent"),
                    ));
                    continue;
                };
                if let Some((tp0, o0)) = seen.insert(value, (tp.clone(), *offset)) {
                    if !self.retrying_writers.contains(&sent.writer) {
                        violations.push((
                            "duplicate",
                            format!("{value} at {tp0:?}@{o0} and {tp:?}@{offset}, never retried"),
                        ));
                    }
                }
                if let Some(ack) = self.acked.get(value) {
                    if (ack.partition != tp.1 || ack.offset != *offset) && !self.retrying_writers.contains(&sent.writer)
                    {
                        violations.push((
                            "inconsistent-offsets",
                            format!(
                                "{value} acknowledged at {}@{} found at {tp:?}@{offset}",
                                ack.partition, ack.offset
                            ),
                        ));
                    }
                }
            }
        }
        // producer-order: an idempotent writer's records keep their order in a partition
        // (values are `w{writer}-{n}`, n counting up).
        for (tp, log) in finals {
            let mut last: BTreeMap<u32, (u64, i64)> = BTreeMap::new();
            for (offset, value) in &log.records {
                let Some(sent) = self.sent.get(value) else { continue };
                if !self.idempotent_writers.contains(&sent.writer) {
                    continue;
                }
                let n: u64 = value.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                if let Some(&(previous, at)) = last.get(&sent.writer) {
                    if n < previous {
                        violations.push((
                            "producer-order",
                            format!(
                                "{tp:?}: w{}-{n} at {offset} after w{}-{previous} at {at}",
                                sent.writer, sent.writer
                            ),
                        ));
                    }
                }
                last.insert(sent.writer, (n, *offset));
            }
            // sequence-gap: within one producer epoch, the batches in the log continue each
            // other's sequences (a gap means the broker appended out of order).
            let mut next: BTreeMap<(i64, i16), (i32, i64)> = BTreeMap::new();
            for &(offset, producer_id, epoch, first_seq, last_seq) in &log.producer_batches {
                if let Some(&(want, at)) = next.get(&(producer_id, epoch)) {
                    if first_seq != want {
                        violations.push((
                            "sequence-gap",
                            format!(
                                "{tp:?}: producer {producer_id} epoch {epoch}: sequence {first_seq} at offset {offset}, expected {want} after offset {at}"
                            ),
                        ));
                    }
                }
                let following = if last_seq == i32::MAX { 0 } else { last_seq + 1 };
                next.insert((producer_id, epoch), (following, offset));
            }
        }
        // inconsistent-offsets: what a consumer read is what the log holds, unless a loss
        // event came after the read.
        for (tp, offset, value, at_ms) in &self.observed {
            let Some(log) = finals.get(tp) else { continue };
            if *offset < log.log_start_offset || log.unreadable_from.is_some_and(|u| *offset >= u) {
                continue;
            }
            if self.lost_since(tp, *offset, *at_ms).is_some() {
                continue;
            }
            match log.records.get(offset) {
                Some(v) if v == value => {}
                other => violations.push((
                    "inconsistent-offsets",
                    format!("a consumer read {value} at {tp:?}@{offset}; the log now holds {other:?}"),
                )),
            }
        }
        // poll-skip: a consumer jumped records that neither retention nor a loss removed.
        for (tp, from, to, at_ms) in &self.skips {
            let Some(log) = finals.get(tp) else { continue };
            if *to <= log.log_start_offset || self.any_loss_since(tp, *at_ms) {
                continue;
            }
            if self.retention_ms_min.contains_key(&tp.0) && (*from..*to).all(|o| !log.records.contains_key(&o)) {
                // Retention moved the log start past the gap meanwhile, then the consumer
                // reset to it: the skipped offsets are gone from the log.
                continue;
            }
            violations.push((
                "poll-skip",
                format!("a consumer jumped from {tp:?}@{} to {to}", from - 1),
            ));
        }
        for (checker, what) in violations {
            self.violation(checker, what);
        }
    }
}
