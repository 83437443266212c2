//! Topic churn: side topics that are created, written, read, deleted and created again
//! under the same name, with small segments so that rolls (and the broker's background
//! flush of rolled segments) race the deletes. Writers never retry, so a value names one
//! append at most; readers fetch by topic id (Fetch v13+), so every record they see is
//! tied to one incarnation of its topic.
//!
//! Checkers:
//! - `incarnation-mixup`: a value seen under two topic ids, or at another place than its
//!   acknowledgement said (an append that reached another incarnation's log, or old files
//!   a new incarnation adopted);
//! - `inconsistent-offsets`: two values at one (topic id, partition, offset);
//! - `poll-skip`: an incarnation's offsets do not start at 0 or have a gap (no retention
//!   and no compaction here);
//! - `deleted-topic-served`: a request sent after a delete was acknowledged is answered
//!   with the deleted incarnation (metadata or a fetch by its id);
//! - `created-topic-lost`: a topic whose creation was acknowledged is missing, though no
//!   delete of it was ever sent since;
//! - `deleted-topic-files-left`: at the end, a side topic's partition directory that no
//!   topic of the broker's image owns (a delete cut short, not cleaned up at the restart).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use klamm::client::{Admin, Connection, Producer, ProducerRecord};
use klamm::protocol::codec::Uuid;
use klamm::protocol::messages::FetchResponse;
use klamm::record::{self, BatchFrames, ValidationLimits};
use klamm::server::clock;
use madsim::rand::{thread_rng, Rng};

use crate::workload::{fetch_request_for, metadata, pause_ms, Env, REQUEST_TIMEOUT};

/// The side topics' names; each is created and deleted many times.
pub const NAMES: &[&str] = &["churn-a", "churn-b"];
/// Records a churn writer has sent and not yet seen settled, at most.
const PENDING_MAX: usize = 16;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// What the churn tasks saw, kept in the run's history.
#[derive(Default)]
pub struct ChurnHistory {
    /// Value to (topic, partition, offset) acknowledged.
    acked: BTreeMap<String, (String, i32, i64)>,
    /// (topic id, partition, offset) to the value a reader saw there.
    seen: BTreeMap<(Uuid, i32, i64), String>,
    /// Value to where a reader saw it: (topic, topic id, partition, offset).
    seen_at: BTreeMap<String, (String, Uuid, i32, i64)>,
    /// Topic ids whose delete was acknowledged, and when (broker clock, ms).
    deleted: BTreeMap<Uuid, i64>,
}

impl ChurnHistory {
    /// Whether `id`'s delete was acknowledged before `sent_ms`.
    fn deleted_before(&self, id: Uuid, sent_ms: i64) -> Option<i64> {
        self.deleted.get(&id).copied().filter(|&at| at < sent_ms)
    }
}

/// Creates and deletes the side topics until stopped. Before each change it reads the
/// topic's metadata, which must agree with the last acknowledged change.
pub async fn admin(env: Env) {
    // Per name: Some(true) after an acknowledged create, Some(false) after an acknowledged
    // delete, None while a request's fate is unknown.
    let mut expect: BTreeMap<&str, Option<bool>> = NAMES.iter().map(|n| (*n, Some(false))).collect();
    while !env.stopped() {
        pause_ms(200, 1_200).await;
        let name = NAMES[thread_rng().gen_range(0..NAMES.len())];
        let sent_ms = clock::now_ms();
        let Ok(Ok(mut connection)) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Connection::connect(&env.bootstrap, "churn-admin", REQUEST_TIMEOUT),
        )
        .await
        else {
            continue;
        };
        let Some(metadata) = metadata(&mut connection, name).await else {
            continue;
        };
        let id = metadata.topic_ids.get(name).copied();
        {
            let mut h = env.history.lock();
            match (expect[name], id) {
                (Some(true), None) => h.violation(
                    "created-topic-lost",
                    format!("{name}: its creation was acknowledged and no delete sent, but metadata lacks it"),
                ),
                (_, Some(id)) => {
                    if let Some(at) = h.churn.deleted_before(id, sent_ms) {
                        h.violation(
                            "deleted-topic-served",
                            format!("{name}: metadata asked at {sent_ms} shows {id:?}, whose delete was acknowledged at {at}"),
                        );
                    }
                }
                _ => {}
            }
        }
        let Ok(Ok(mut admin)) =
            tokio::time::timeout(REQUEST_TIMEOUT, Admin::new(&env.client_config("churn-admin"))).await
        else {
            continue;
        };
        // Unknown until answered: an unanswered request may still apply.
        expect.insert(name, None);
        match id {
            Some(id) => {
                let result = tokio::time::timeout(REQUEST_TIMEOUT, admin.delete_topic(name)).await;
                let mut h = env.history.lock();
                if let Ok(Ok(())) = result {
                    h.churn.deleted.insert(id, clock::now_ms());
                    h.trace(&format!("churn delete {name}"));
                    h.count("churn-deleted");
                    expect.insert(name, Some(false));
                } else {
                    h.count("churn-admin-failed");
                }
            }
            None => {
                let partitions = 1 + thread_rng().gen_range(0..2);
                let segment_bytes = [1_024u64, 4_096][thread_rng().gen_range(0..2)];
                let configs = [("segment.bytes".to_string(), segment_bytes.to_string())];
                let result =
                    tokio::time::timeout(REQUEST_TIMEOUT, admin.create_topic(name, partitions, 1, &configs)).await;
                let mut h = env.history.lock();
                if let Ok(Ok(())) = result {
                    h.trace(&format!("churn create {name}"));
                    h.count("churn-created");
                    expect.insert(name, Some(true));
                } else {
                    h.count("churn-admin-failed");
                }
            }
        }
    }
}

/// A producer without retries (so each value is appended at most once) that sends to
/// `topic` whether or not it exists at the moment.
pub async fn writer(env: Env, topic: &'static str) {
    let mut n: u64 = 0;
    while !env.stopped() {
        let config = env
            .client_config(&format!("churn-writer-{topic}"))
            .set("acks", [1i64, -1][thread_rng().gen_range(0..2)])
            .set("linger.ms", [0u64, 5][thread_rng().gen_range(0..2)])
            .set("retries", 0)
            .set("enable.idempotence", false)
            .set("delivery.timeout.ms", 8_000)
            .set("batch.size", 1_024);
        let producer = match tokio::time::timeout(REQUEST_TIMEOUT, Producer::new(config)).await {
            Ok(Ok(p)) => p,
            _ => {
                pause_ms(100, 500).await;
                continue;
            }
        };
        let mut pending: VecDeque<(String, klamm::client::Delivery)> = VecDeque::new();
        while !env.stopped() {
            let value = format!("{topic}-{n}");
            n += 1;
            let record = ProducerRecord::new(topic.into(), Some(Bytes::from(value.clone())));
            match tokio::time::timeout(REQUEST_TIMEOUT, producer.send(record)).await {
                Ok(Ok(delivery)) => pending.push_back((value, delivery)),
                _ => {
                    // Mostly: the topic does not exist right now.
                    env.history.lock().count("churn-send-failed");
                    pause_ms(20, 200).await;
                }
            }
            while pending.len() >= PENDING_MAX {
                let (value, delivery) = pending.pop_front().expect("not empty");
                settle(&env, topic, value, delivery).await;
            }
            pause_ms(0, 10).await;
        }
        while let Some((value, delivery)) = pending.pop_front() {
            settle(&env, topic, value, delivery).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), producer.close()).await;
    }
}

async fn settle(env: &Env, topic: &str, value: String, delivery: klamm::client::Delivery) {
    let outcome = delivery.await;
    let mut h = env.history.lock();
    let Ok(meta) = outcome else {
        h.count("churn-delivery-failed");
        return;
    };
    h.trace(&format!("churn ack {value} {} {}", meta.partition, meta.offset));
    h.count("churn-acked");
    if let Some((t, id, p, o)) = h.churn.seen_at.get(&value).cloned() {
        if (t.as_str(), p, o) != (topic, meta.partition, meta.offset) {
            h.violation(
                "incarnation-mixup",
                format!(
                    "{value} acknowledged at {topic}-{}@{} but read at {t}-{p}@{o} (topic id {id:?})",
                    meta.partition, meta.offset
                ),
            );
        }
    }
    h.churn
        .acked
        .insert(value, (topic.to_string(), meta.partition, meta.offset));
}

/// Reads every partition of `topic`'s current incarnation from offset 0 by topic id; when
/// the id stops being served, looks the topic up again and starts over on a new id.
pub async fn reader(env: Env, topic: &'static str) {
    // Per incarnation: where the reader is in each partition.
    let mut progress: BTreeMap<Uuid, BTreeMap<i32, i64>> = BTreeMap::new();
    while !env.stopped() {
        let Ok(Ok(mut connection)) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Connection::connect(&env.bootstrap, &format!("churn-reader-{topic}"), REQUEST_TIMEOUT),
        )
        .await
        else {
            pause_ms(100, 500).await;
            continue;
        };
        let sent_ms = clock::now_ms();
        let Some(metadata) = metadata(&mut connection, topic).await else {
            pause_ms(50, 300).await;
            continue;
        };
        let Some(&id) = metadata.topic_ids.get(topic) else {
            pause_ms(50, 300).await;
            continue;
        };
        {
            let mut h = env.history.lock();
            if let Some(at) = h.churn.deleted_before(id, sent_ms) {
                h.violation(
                    "deleted-topic-served",
                    format!("churn reader: metadata asked at {sent_ms} shows {topic} {id:?}, deleted at {at}"),
                );
            }
        }
        let partitions = metadata.topics.get(topic).map(|p| p.len() as i32).unwrap_or(0);
        // Each incarnation is read from its start, and from where the reader was when it
        // comes back to it.
        let positions = progress
            .entry(id)
            .or_insert_with(|| (0..partitions).map(|p| (p, 0)).collect());
        'incarnation: while !env.stopped() {
            let request = fetch_request_for(topic, id, positions.iter().map(|(&p, &o)| (p, o)));
            let sent_ms = clock::now_ms();
            let response: FetchResponse =
                match tokio::time::timeout(REQUEST_TIMEOUT, connection.request(&request)).await {
                    Ok(Ok((r, _))) => r,
                    _ => break 'incarnation,
                };
            // Whether this incarnation is no longer served.
            let gone = 'answer: {
                let mut h = env.history.lock();
                if response.error_code != 0 {
                    h.count("churn-fetch-error");
                    break 'answer true;
                }
                for t in response.responses {
                    for p in t.partitions {
                        match p.error_code {
                            0 => {}
                            UNKNOWN_TOPIC_ID | UNKNOWN_TOPIC_OR_PARTITION => {
                                h.count("churn-incarnation-gone");
                                break 'answer true;
                            }
                            _ => {
                                h.count("churn-fetch-error");
                                continue;
                            }
                        }
                        let position = positions.get(&p.partition_index).copied().unwrap_or(0);
                        if p.log_start_offset > 0 {
                            h.violation(
                            "poll-skip",
                            format!(
                                "{topic} {id:?} partition {}: log start offset {} with neither retention nor DeleteRecords",
                                p.partition_index, p.log_start_offset
                            ),
                        );
                        }
                        let records = p.records.unwrap_or_default();
                        let mut expected = position;
                        let mut scratch = Vec::new();
                        let limits = ValidationLimits {
                            decompressed_bytes_max: 16 << 20,
                        };
                        let mut values = Vec::new();
                        for (_, _, batch) in BatchFrames::new(&records) {
                            if let Err(e) = record::for_each_record(batch, &limits, &mut scratch, |offset, r| {
                                values.push((
                                    offset,
                                    String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned(),
                                ));
                            }) {
                                h.violation("corrupt-served", format!("churn reader: {topic}: {e}"));
                                break;
                            }
                        }
                        if !values.is_empty() {
                            if let Some(at) = h.churn.deleted_before(id, sent_ms) {
                                h.violation(
                                "deleted-topic-served",
                                format!("a fetch of {topic} {id:?} sent at {sent_ms} got records; the topic was deleted at {at}"),
                            );
                            }
                        }
                        for (offset, value) in values {
                            if offset < expected {
                                continue;
                            }
                            if offset > expected {
                                h.violation(
                                    "poll-skip",
                                    format!(
                                        "churn reader: {topic} {id:?}-{} asked for {expected}, got {offset}",
                                        p.partition_index
                                    ),
                                );
                            }
                            expected = offset + 1;
                            observe(&mut h, topic, id, p.partition_index, offset, value);
                        }
                        positions.insert(p.partition_index, expected);
                    }
                }
                false
            };
            if gone {
                pause_ms(20, 200).await;
                break 'incarnation;
            }
            pause_ms(0, 30).await;
        }
    }
}

fn observe(h: &mut crate::checker::History, topic: &str, id: Uuid, partition: i32, offset: i64, value: String) {
    h.count("churn-read");
    h.trace(&format!("churn read {partition} {offset} {value}"));
    let key = (id, partition, offset);
    match h.churn.seen.get(&key) {
        Some(v) if *v != value => {
            let v = v.clone();
            h.violation(
                "inconsistent-offsets",
                format!("{topic} {id:?}-{partition}@{offset} held {v}, then {value}"),
            );
            return;
        }
        Some(_) => return,
        None => {}
    }
    h.churn.seen.insert(key, value.clone());
    let at = (topic.to_string(), id, partition, offset);
    if let Some(previous) = h.churn.seen_at.get(&value).cloned() {
        if previous != at {
            h.violation(
                "incarnation-mixup",
                format!("{value} read at {previous:?} and at {at:?}, never retried"),
            );
        }
    }
    if let Some((t, p, o)) = h.churn.acked.get(&value).cloned() {
        if (t.as_str(), p, o) != (topic, partition, offset) {
            h.violation(
                "incarnation-mixup",
                format!("{value} acknowledged at {t}-{p}@{o} but read at {at:?}"),
            );
        }
    }
    h.churn.seen_at.insert(value, at);
}

/// At the end, with the broker up: every side-topic partition directory on its disk
/// belongs to a partition of its image.
pub async fn check_disk(broker: &crate::cluster::BrokerNode, history: &crate::checker::Shared) {
    use klamm::io::Storage;
    let Some(b) = broker.broker() else { return };
    let image = b.image();
    let Ok(names) = broker.storage.list(std::path::Path::new(crate::cluster::LOG_DIR)).await else {
        return;
    };
    for name in names.iter().filter(|n| NAMES.iter().any(|t| n.starts_with(t))) {
        let owned = name.rsplit_once('-').is_some_and(|(topic, index)| {
            let index: i32 = index.parse().unwrap_or(-1);
            image
                .topics
                .get(topic)
                .is_some_and(|t| t.partitions.contains_key(&index))
        });
        if !owned {
            history.lock().violation(
                "deleted-topic-files-left",
                format!("{name} is on the disk, but the broker has no such partition"),
            );
        }
    }
}
