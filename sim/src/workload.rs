//! Workloads, run on client nodes with Klamm's Rust client: writers (the producer, with
//! acks 0, 1 or all), readers (consumers by assignment over raw Fetch requests, so that
//! they see the high watermark and the log start offset and can check every batch), an
//! admin that changes topics and configs underneath, and the final read after the faults
//! heal.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use klamm::client::{Admin, ClientConfig, ClusterMetadata, Connection, Producer, ProducerRecord};
use klamm::protocol::messages::{
    fetch_request, list_offsets_request, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use klamm::record::{self, BatchFrames, ValidationLimits};
use klamm::server::clock;
use madsim::rand::{thread_rng, Rng};

use crate::checker::{Ack, FinalLog, Sent, Shared, Tp};

pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Records a writer has sent and not yet seen acknowledged, at most.
const WRITER_PENDING_MAX: usize = 32;

/// Kafka error codes the workloads act on.
const OFFSET_OUT_OF_RANGE: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;

#[derive(Clone, Debug)]
pub struct WriterSpec {
    pub id: u32,
    pub acks: i16,
    pub linger_ms: u64,
    pub compression: &'static str,
    /// Whether the producer retries failed batches (then a record may be written twice).
    pub retries: bool,
    /// Keyed by `n % partitions` when set; sticky partitioning when not.
    pub explicit_partition: bool,
    pub pause_ms_max: u64,
    /// `enable.idempotence=true` (with acks=all and unbounded retries, as it requires).
    pub idempotent: bool,
}

/// What the workload tasks share.
#[derive(Clone)]
pub struct Env {
    pub bootstrap: String,
    pub topic: String,
    /// Partitions of `topic` known to exist.
    pub partitions: Arc<AtomicI32>,
    pub history: Shared,
    pub stop: Arc<AtomicBool>,
}

impl Env {
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn client_config(&self, client_id: &str) -> ClientConfig {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", client_id)
            .set("request.timeout.ms", REQUEST_TIMEOUT.as_millis())
    }
}

pub(crate) async fn pause_ms(low: u64, high: u64) {
    let ms = thread_rng().gen_range(low..=high.max(low));
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A producer that sends unique values until stopped, then waits for its deliveries.
pub async fn writer(spec: WriterSpec, env: Env) {
    let mut n: u64 = 0;
    while !env.stopped() {
        let config = env
            .client_config(&format!("writer-{}", spec.id))
            .set("acks", spec.acks)
            .set("linger.ms", spec.linger_ms)
            .set("compression.type", spec.compression)
            .set("retries", if spec.retries { i32::MAX as i64 } else { 0 })
            .set("enable.idempotence", spec.idempotent)
            .set("retry.backoff.ms", 100)
            .set("delivery.timeout.ms", 8_000)
            .set("batch.size", 4_096);
        let producer = match tokio::time::timeout(REQUEST_TIMEOUT, Producer::new(config)).await {
            Ok(Ok(p)) => p,
            _ => {
                env.history.lock().count("writer-connect-failed");
                pause_ms(100, 500).await;
                continue;
            }
        };
        let mut pending: VecDeque<(String, klamm::client::Delivery)> = VecDeque::new();
        while !env.stopped() {
            let value = format!("w{}-{n}", spec.id);
            n += 1;
            let partitions = env.partitions.load(Ordering::Acquire).max(1);
            let partition = spec.explicit_partition.then(|| (n % partitions as u64) as i32);
            let timestamp = clock::now_ms();
            {
                let mut h = env.history.lock();
                h.sent.insert(
                    value.clone(),
                    Sent {
                        writer: spec.id,
                        topic: env.topic.clone(),
                        timestamp,
                        at_ms: timestamp,
                    },
                );
                h.trace(&value);
            }
            let record = ProducerRecord {
                topic: env.topic.as_str().into(),
                partition,
                key: Some(Bytes::from(format!("k{}", n % 7))),
                value: Some(Bytes::from(value.clone())),
                headers: vec![("writer".into(), Some(Bytes::from(spec.id.to_string())))],
                timestamp: Some(timestamp),
            };
            match producer.send(record).await {
                Ok(delivery) => pending.push_back((value, delivery)),
                Err(_) => {
                    env.history.lock().count("send-failed");
                    break;
                }
            }
            while pending.len() >= WRITER_PENDING_MAX {
                let (value, delivery) = pending.pop_front().expect("not empty");
                settle(&spec, &env, value, delivery).await;
            }
            pause_ms(0, spec.pause_ms_max).await;
        }
        while let Some((value, delivery)) = pending.pop_front() {
            settle(&spec, &env, value, delivery).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), producer.close()).await;
    }
}

async fn settle(spec: &WriterSpec, env: &Env, value: String, delivery: klamm::client::Delivery) {
    let outcome = delivery.await;
    let mut h = env.history.lock();
    match outcome {
        Ok(meta) if spec.acks != 0 => {
            h.trace(&format!("ack {value} {} {}", meta.partition, meta.offset));
            h.count("acked");
            h.acked.insert(
                value,
                Ack {
                    partition: meta.partition,
                    offset: meta.offset,
                },
            );
        }
        Ok(_) => h.count("sent-acks-0"),
        _ => {
            h.trace(&format!("failed {value}"));
            h.count("delivery-failed");
        }
    }
}

/// A consumer by assignment of every partition of the topic, from offset 0, checking each
/// Fetch answer as it comes: nonmonotonic-poll, poll-skip, records past the high watermark,
/// bad CRCs, the log start offset above the high watermark, the high watermark going back.
pub async fn reader(id: u32, env: Env) {
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    // Per partition: the high watermark last seen, and when.
    let mut high_watermarks: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    // Per partition: when the reader last took records, for excusing a shrunk log.
    let mut last_read_ms: BTreeMap<i32, i64> = BTreeMap::new();
    while !env.stopped() {
        let Ok(Ok(mut connection)) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Connection::connect(&env.bootstrap, &format!("reader-{id}"), REQUEST_TIMEOUT),
        )
        .await
        else {
            pause_ms(100, 500).await;
            continue;
        };
        let Some(metadata) = metadata(&mut connection, &env.topic).await else {
            pause_ms(100, 500).await;
            continue;
        };
        let topic_id = metadata.topic_ids.get(&env.topic).copied().unwrap_or_default();
        let partitions = metadata.topics.get(&env.topic).map(|p| p.len() as i32).unwrap_or(0);
        for _round in 0..50 {
            if env.stopped() {
                return;
            }
            let request = fetch_request_for(
                &env.topic,
                topic_id,
                (0..partitions).map(|p| (p, *positions.entry(p).or_insert(0))),
            );
            // What the answer holds was true at some time after this: a loss event from
            // now on may explain a difference later.
            let now = clock::now_ms();
            let response: FetchResponse =
                match tokio::time::timeout(REQUEST_TIMEOUT, connection.request(&request)).await {
                    Ok(Ok((r, _))) => r,
                    _ => break,
                };
            for topic in response.responses {
                for p in topic.partitions {
                    let tp: Tp = (env.topic.clone(), p.partition_index);
                    let position = positions.get(&p.partition_index).copied().unwrap_or(0);
                    match p.error_code {
                        0 => {}
                        OFFSET_OUT_OF_RANGE => {
                            let Some((earliest, latest)) = offsets(&mut connection, &tp).await else {
                                break;
                            };
                            let mut h = env.history.lock();
                            if position > latest {
                                let since = last_read_ms.get(&p.partition_index).copied().unwrap_or(0);
                                if !h.any_loss_since(&tp, since) {
                                    let losses = format!("{:?}", h.losses);
                                    h.violation(
                                        "lost-write",
                                        format!(
                                            "reader-{id} had read {tp:?} up to {position} (at {since}), the log now ends at {latest}; losses {losses}"
                                        ),
                                    );
                                }
                                positions.insert(p.partition_index, latest);
                            } else {
                                h.count("reader-reset-to-log-start");
                                positions.insert(p.partition_index, earliest.max(position));
                            }
                            continue;
                        }
                        CORRUPT_MESSAGE => {
                            let mut h = env.history.lock();
                            if h.lost_since(&tp, position, 0).is_none() {
                                h.violation(
                                    "corrupt-log",
                                    format!("reader-{id}: CORRUPT_MESSAGE at {tp:?}@{position} with no disk fault to explain it"),
                                );
                            }
                            continue;
                        }
                        _ => continue,
                    }
                    let mut h = env.history.lock();
                    if p.log_start_offset >= 0 && p.log_start_offset > p.high_watermark {
                        h.violation(
                            "log-invariant",
                            format!(
                                "{tp:?}: log start offset {} > high watermark {}",
                                p.log_start_offset, p.high_watermark
                            ),
                        );
                    }
                    if let Some((hw, at)) = high_watermarks.get(&p.partition_index) {
                        if p.high_watermark < *hw && !h.any_loss_since(&tp, *at) {
                            h.violation(
                                "high-watermark-regressed",
                                format!("reader-{id}: {tp:?} high watermark {hw} then {}", p.high_watermark),
                            );
                        }
                    }
                    high_watermarks.insert(p.partition_index, (p.high_watermark, now));
                    let records = p.records.unwrap_or_default();
                    let mut expected = position;
                    let mut scratch = Vec::new();
                    let limits = ValidationLimits {
                        decompressed_bytes_max: 16 << 20,
                    };
                    for (_, header, batch) in BatchFrames::new(&records) {
                        if !record::crc_matches(batch) {
                            h.violation(
                                "corrupt-served",
                                format!("reader-{id}: a batch at {tp:?}@{} has a bad CRC32C", header.base_offset),
                            );
                            break;
                        }
                        let mut seen = Vec::new();
                        if let Err(e) = record::for_each_record(batch, &limits, &mut scratch, |offset, r| {
                            let value = String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned();
                            seen.push((offset, value));
                        }) {
                            h.violation(
                                "corrupt-served",
                                format!("reader-{id}: {tp:?}@{}: {e}", header.base_offset),
                            );
                            break;
                        }
                        for (offset, value) in seen {
                            if offset < expected {
                                if offset < position {
                                    continue;
                                }
                                h.violation(
                                    "nonmonotonic-poll",
                                    format!("reader-{id}: {tp:?} offset {offset} after {}", expected - 1),
                                );
                                continue;
                            }
                            if offset > expected {
                                h.violation(
                                    "poll-skip",
                                    format!("reader-{id}: {tp:?} asked for {expected}, got {offset}"),
                                );
                            }
                            if offset >= p.high_watermark {
                                h.violation(
                                    "fetch-past-high-watermark",
                                    format!(
                                        "reader-{id}: {tp:?}@{offset} served with high watermark {}",
                                        p.high_watermark
                                    ),
                                );
                            }
                            h.trace(&format!("read {id} {offset} {value}"));
                            h.count("read");
                            h.observed.push((tp.clone(), offset, value, now));
                            expected = offset + 1;
                        }
                    }
                    if expected > position {
                        positions.insert(p.partition_index, expected);
                        last_read_ms.insert(p.partition_index, now);
                    }
                }
            }
            pause_ms(0, 30).await;
        }
    }
}

/// A consumer by assignment through Klamm's `Consumer` (assign, poll, positions), from the
/// earliest offset. Per partition each polled record follows the last one: an offset at
/// or below the last is nonmonotonic-poll unless a loss event explains a reset; a gap is
/// a poll-skip unless the final log start offset shows retention deleted what was skipped.
pub async fn consumer(id: u32, env: Env) {
    let mut last: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    while !env.stopped() {
        let config = env
            .client_config(&format!("consumer-{id}"))
            .set("auto.offset.reset", "earliest")
            .set("fetch.max.wait.ms", 200)
            // Each poll drains what its fetches brought.
            .set("max.poll.records", 1_000_000);
        let Ok(mut consumer) = klamm::client::Consumer::new(config) else {
            return;
        };
        let partitions = env.partitions.load(Ordering::Acquire);
        consumer.assign((0..partitions).map(|p| (env.topic.clone(), p)).collect());
        for (&partition, &(offset, _)) in &last {
            if partition < partitions {
                consumer.seek(&env.topic, partition, offset + 1);
            }
        }
        // A poll's records may come from the fetch written ahead during the poll before
        // (`Consumer` fetches one ahead), so a record dates from that poll's start.
        let mut previous_asked = clock::now_ms();
        for _round in 0..100 {
            if env.stopped() {
                return;
            }
            let asked = std::mem::replace(&mut previous_asked, clock::now_ms());
            let records =
                match tokio::time::timeout(REQUEST_TIMEOUT * 2, consumer.poll(Duration::from_millis(200))).await {
                    Ok(Ok(records)) => records,
                    _ => break,
                };
            {
                let mut h = env.history.lock();
                for r in records {
                    let tp: Tp = (r.topic.to_string(), r.partition);
                    let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                    if let Some(&(previous, at)) = last.get(&r.partition) {
                        if r.offset <= previous && !h.any_loss_since(&tp, at) {
                            h.violation(
                                "nonmonotonic-poll",
                                format!("consumer-{id}: {tp:?} offset {} after {previous}", r.offset),
                            );
                        } else if r.offset > previous + 1 {
                            h.skips.push((tp.clone(), previous + 1, r.offset, at));
                        }
                    }
                    h.trace(&format!("poll {id} {} {} {value}", r.partition, r.offset));
                    h.count("polled");
                    h.observed.push((tp, r.offset, value, asked));
                    last.insert(r.partition, (r.offset, asked));
                }
            }
            pause_ms(0, 30).await;
        }
    }
}

pub(crate) fn fetch_request_for(
    topic: &str,
    topic_id: klamm::protocol::codec::Uuid,
    positions: impl Iterator<Item = (i32, i64)>,
) -> FetchRequest {
    FetchRequest {
        replica_id: -1,
        max_wait_ms: 200,
        min_bytes: 1,
        max_bytes: 256 << 10,
        isolation_level: 0,
        session_epoch: -1,
        topics: vec![fetch_request::FetchTopic {
            topic: topic.to_string(),
            topic_id,
            partitions: positions
                .map(|(partition, fetch_offset)| fetch_request::FetchPartition {
                    partition,
                    current_leader_epoch: -1,
                    fetch_offset,
                    last_fetched_epoch: -1,
                    log_start_offset: -1,
                    partition_max_bytes: 64 << 10,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(crate) async fn metadata(connection: &mut Connection, topic: &str) -> Option<ClusterMetadata> {
    let topics = [topic.to_string()];
    let response = tokio::time::timeout(
        REQUEST_TIMEOUT,
        klamm::client::fetch_metadata(connection, Some(&topics), false),
    )
    .await
    .ok()?
    .ok()?;
    Some(ClusterMetadata::from_response(&response))
}

/// (earliest, latest) offsets of a partition.
async fn offsets(connection: &mut Connection, tp: &Tp) -> Option<(i64, i64)> {
    let mut answers = [0i64; 2];
    for (i, timestamp) in [-2i64, -1].into_iter().enumerate() {
        let request = ListOffsetsRequest {
            replica_id: -1,
            topics: vec![list_offsets_request::ListOffsetsTopic {
                name: tp.0.clone(),
                partitions: vec![list_offsets_request::ListOffsetsPartition {
                    partition_index: tp.1,
                    timestamp,
                    current_leader_epoch: -1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let (response, _): (ListOffsetsResponse, _) =
            tokio::time::timeout(REQUEST_TIMEOUT, connection.request(&request))
                .await
                .ok()?
                .ok()?;
        let p = response.topics.first()?.partitions.first()?;
        if p.error_code != 0 {
            return None;
        }
        answers[i] = p.offset;
    }
    Some((answers[0], answers[1]))
}

/// Topic and config changes underneath the writers: side topics come and go, the main
/// topic gains partitions and changes `retention.ms` and `segment.bytes`.
pub async fn admin(env: Env, retention_ms_choices: Vec<i64>) {
    let mut side = 0u32;
    while !env.stopped() {
        pause_ms(500, 3_000).await;
        let Ok(Ok(mut admin)) = tokio::time::timeout(REQUEST_TIMEOUT, Admin::new(&env.client_config("admin"))).await
        else {
            continue;
        };
        let op = thread_rng().gen_range(0..5u32);
        let result = match op {
            0 => {
                side += 1;
                let name = format!("side-{side}");
                tokio::time::timeout(REQUEST_TIMEOUT, admin.create_topic(&name, 2, 1, &[])).await
            }
            1 if side > 0 => {
                let name = format!("side-{}", thread_rng().gen_range(1..=side));
                tokio::time::timeout(REQUEST_TIMEOUT, admin.delete_topic(&name)).await
            }
            2 => {
                let want = env.partitions.load(Ordering::Acquire) + 1;
                if want > 4 {
                    continue;
                }
                let r = tokio::time::timeout(REQUEST_TIMEOUT, admin.create_partitions(&env.topic, want)).await;
                if matches!(r, Ok(Ok(()))) {
                    env.partitions.store(want, Ordering::Release);
                }
                r
            }
            3 if !retention_ms_choices.is_empty() => {
                let ms = retention_ms_choices[thread_rng().gen_range(0..retention_ms_choices.len())];
                // Noted before it is asked for: an unanswered request may still apply.
                env.history.lock().note_retention(&env.topic, ms);
                let changes = [("retention.ms".to_string(), Some(ms.to_string()))];
                tokio::time::timeout(REQUEST_TIMEOUT, admin.alter_topic_configs(&env.topic, &changes)).await
            }
            _ => {
                let bytes = [4_096u64, 16_384, 65_536][thread_rng().gen_range(0..3)];
                let changes = [("segment.bytes".to_string(), Some(bytes.to_string()))];
                tokio::time::timeout(REQUEST_TIMEOUT, admin.alter_topic_configs(&env.topic, &changes)).await
            }
        };
        let mut h = env.history.lock();
        match result {
            Ok(Ok(())) => h.count("admin-ok"),
            _ => h.count("admin-failed"),
        }
    }
}

/// Reads every partition of `topic` from its log start offset to its high watermark, once
/// the faults have healed. `None` if the broker did not answer in time (a liveness failure).
pub async fn final_read(bootstrap: &str, topic: &str) -> Result<BTreeMap<Tp, FinalLog>, String> {
    let mut connection = Connection::connect(bootstrap, "final-reader", REQUEST_TIMEOUT)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let metadata = metadata(&mut connection, topic).await.ok_or("no metadata")?;
    let topic_id = metadata.topic_ids.get(topic).copied().unwrap_or_default();
    let partitions = metadata
        .topics
        .get(topic)
        .map(|p| p.len() as i32)
        .ok_or_else(|| format!("topic missing from {metadata:?}"))?;
    let mut finals = BTreeMap::new();
    for partition in 0..partitions {
        let tp: Tp = (topic.to_string(), partition);
        let (earliest, _) = offsets(&mut connection, &tp).await.ok_or("ListOffsets failed")?;
        let mut log = FinalLog {
            log_start_offset: earliest,
            ..FinalLog::default()
        };
        let mut position = earliest;
        loop {
            let request = fetch_request_for(topic, topic_id, [(partition, position)].into_iter());
            let (response, _): (FetchResponse, _) = tokio::time::timeout(REQUEST_TIMEOUT, connection.request(&request))
                .await
                .map_err(|_| "fetch timed out".to_string())?
                .map_err(|e| format!("fetch: {e}"))?;
            let p = response
                .responses
                .into_iter()
                .flat_map(|t| t.partitions)
                .next()
                .ok_or("empty fetch answer")?;
            match p.error_code {
                0 => {}
                CORRUPT_MESSAGE => {
                    log.unreadable_from = Some(position);
                    break;
                }
                code => return Err(format!("fetch {tp:?}@{position}: error code {code}")),
            }
            log.high_watermark = p.high_watermark;
            log.log_start_offset = log.log_start_offset.max(p.log_start_offset);
            let records = p.records.unwrap_or_default();
            let mut scratch = Vec::new();
            let limits = ValidationLimits {
                decompressed_bytes_max: 16 << 20,
            };
            let before = position;
            for (_, header, batch) in BatchFrames::new(&records) {
                if header.producer_id >= 0 && header.next_offset() > position {
                    log.producer_batches.push((
                        header.base_offset,
                        header.producer_id,
                        header.producer_epoch,
                        header.base_sequence,
                        klamm::log::last_sequence(header.base_sequence, header.last_offset_delta),
                    ));
                }
                record::for_each_record(batch, &limits, &mut scratch, |offset, r| {
                    if offset >= position {
                        log.records.insert(
                            offset,
                            String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned(),
                        );
                    }
                })
                .map_err(|e| format!("{tp:?}: {e}"))?;
                position = position.max(
                    record::BatchHeader::parse(batch)
                        .map(|h| h.next_offset())
                        .unwrap_or(position),
                );
            }
            if position >= p.high_watermark || position == before {
                break;
            }
        }
        finals.insert(tp, log);
    }
    Ok(finals)
}
