//! The producer: records accumulate into one batch per partition, sent when the batch
//! reaches `batch.size` or has waited `linger.ms`; retriable errors are retried with
//! `retry.backoff.ms` up to `retries` times within `delivery.timeout.ms`. Config names and meanings follow the
//! Java client.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, Mutex, Notify};

use super::partitioner::partition_for_key;
use super::{bootstrap, fetch_metadata, ClientConfig, ClientError, ClusterMetadata, Connection};
use crate::protocol::messages::{
    produce_request, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
};
use crate::record::{self, Compression, RecordBatchBuilder};
use crate::server::clock;

#[derive(Clone, Debug, Default)]
pub struct ProducerRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
}

/// A record's delivery: resolves once the broker acknowledged it (or gave up).
pub type Delivery = oneshot::Receiver<Result<RecordMetadata, ClientError>>;

#[derive(Clone, Debug)]
struct Settings {
    acks: i16,
    batch_size: usize,
    linger: Duration,
    compression: Compression,
    retry_backoff: Duration,
    /// `retries`: how often a failed batch is sent again (within `delivery.timeout.ms`).
    retries: u32,
    /// `enable.idempotence`: batches carry a producer id, epoch and sequence, so that the
    /// broker writes a retried batch once.
    idempotent: bool,
    delivery_timeout: Duration,
    request_timeout_ms: i32,
    max_request_size: usize,
    /// `buffer.memory`: record bytes queued and unacknowledged; `send` waits past it.
    buffer_memory: usize,
}

/// An open batch, still taking records.
struct Open {
    builder: RecordBatchBuilder,
    bytes: usize,
    timestamps: Vec<i64>,
    waiters: Vec<oneshot::Sender<Result<RecordMetadata, ClientError>>>,
    created: tokio::time::Instant,
}

/// A batch built and on its way; a retry resends the same bytes.
struct Sealed {
    records: Bytes,
    bytes: usize,
    timestamps: Vec<i64>,
    waiters: Vec<oneshot::Sender<Result<RecordMetadata, ClientError>>>,
    created: tokio::time::Instant,
    /// Times this batch was retried; `retries` bounds it.
    attempts: u32,
    /// The (producer id, epoch, base sequence) stamped on it when first sent (idempotence).
    stamp: Option<(i64, i16, i32)>,
    records_count: i32,
}

/// An idempotent producer's identity and its next sequence per partition.
#[derive(Debug, Default)]
struct Identity {
    producer_id: i64,
    epoch: i16,
    next_sequence: BTreeMap<(String, i32), i32>,
}

struct State {
    metadata: ClusterMetadata,
    open: BTreeMap<(String, i32), Open>,
    /// Sealed batches waiting per partition, oldest first; a retry goes back to the front.
    queues: BTreeMap<(String, i32), VecDeque<Sealed>>,
    sticky: BTreeMap<String, i32>,
    /// Records sent and not yet acknowledged or failed, and their bytes.
    in_flight: usize,
    buffered_bytes: usize,
    /// Flushes waiting: send every batch now, whatever `linger.ms` says.
    flushing: usize,
    /// The producer id and epoch once InitProducerId answered (idempotence only).
    identity: Option<Identity>,
    /// A stamped batch failed or the broker rejected a sequence: before sending on, bump the
    /// epoch (KIP-360), which restarts every partition's sequence at 0 (behind any batch
    /// still carrying an older stamp: see `stamp_batches`).
    needs_bump: bool,
    closed: bool,
}

impl State {
    fn new() -> State {
        State {
            metadata: ClusterMetadata::default(),
            open: BTreeMap::new(),
            queues: BTreeMap::new(),
            sticky: BTreeMap::new(),
            in_flight: 0,
            buffered_bytes: 0,
            flushing: 0,
            identity: None,
            needs_bump: false,
            closed: false,
        }
    }
}

pub struct Producer {
    settings: Settings,
    config: ClientConfig,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    drained: Arc<Notify>,
    sender: tokio::task::JoinHandle<()>,
}

impl Producer {
    pub async fn new(config: ClientConfig) -> Result<Producer, ClientError> {
        let acks = match config.get("acks").unwrap_or("all") {
            "all" | "-1" => -1,
            "1" => 1,
            "0" => 0,
            other => return Err(ClientError::Config(format!("invalid value {other} for acks"))),
        };
        let retries: u32 = config.get_or("retries", i32::MAX as u32)?;
        // As the Java client (3.2+): on by default, off without a word when other settings
        // conflict and it was not asked for, an error when it was.
        let idempotent = idempotence(&config, acks, retries)?;
        let compression = match config.get("compression.type").unwrap_or("none") {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            other => {
                return Err(ClientError::Config(format!(
                    "invalid value {other} for compression.type"
                )))
            }
        };
        let settings = Settings {
            acks,
            batch_size: config.get_or("batch.size", 16_384usize)?.max(1),
            linger: Duration::from_millis(config.get_or("linger.ms", 5u64)?),
            compression,
            retry_backoff: Duration::from_millis(config.get_or("retry.backoff.ms", 100u64)?),
            retries,
            idempotent,
            delivery_timeout: Duration::from_millis(config.get_or("delivery.timeout.ms", 120_000u64)?),
            request_timeout_ms: config.get_or("request.timeout.ms", 30_000i32)?,
            max_request_size: config.get_or("max.request.size", 1_048_576usize)?,
            buffer_memory: config.get_or("buffer.memory", 33_554_432usize)?,
        };
        let state = Arc::new(Mutex::new(State::new()));
        let wake = Arc::new(Notify::new());
        let drained = Arc::new(Notify::new());
        let sender = tokio::spawn(run_sender(
            settings.clone(),
            config.clone(),
            state.clone(),
            wake.clone(),
            drained.clone(),
        ));
        Ok(Producer {
            settings,
            config,
            state,
            wake,
            drained,
            sender,
        })
    }

    /// Queues a record; the returned delivery resolves when the broker acknowledges it.
    pub async fn send(&self, record: ProducerRecord) -> Result<Delivery, ClientError> {
        let partitions = self.partition_count(&record.topic).await?;
        let timestamp = record.timestamp.unwrap_or_else(clock::now_ms);
        let (tx, rx) = oneshot::channel();
        let size = 32 + record.key.as_ref().map_or(0, |k| k.len()) + record.value.as_ref().map_or(0, |v| v.len());
        let mut state = loop {
            let space = self.drained.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            let state = self.state.lock().await;
            if state.buffered_bytes == 0 || state.buffered_bytes + size <= self.settings.buffer_memory {
                break state;
            }
            drop(state);
            self.wake.notify_one();
            space.await;
        };
        if state.closed {
            return Err(ClientError::Config("the producer is closed".into()));
        }
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => *state
                .sticky
                .entry(record.topic.clone())
                .or_insert_with(|| (clock::now_ms() % partitions as i64) as i32),
        };
        if partition < 0 || partition >= partitions {
            return Err(ClientError::Kafka(3, format!("{}-{partition}", record.topic)));
        }
        let compression = self.settings.compression;
        let key = (record.topic.clone(), partition);
        // A record that does not fit the open batch starts a new one, as the Java client does.
        let overflows = state
            .open
            .get(&key)
            .is_some_and(|o| !o.builder.is_empty() && o.builder.records_bytes() + size > self.settings.batch_size);
        if overflows {
            let open = state.open.remove(&key).expect("checked above");
            state.queues.entry(key.clone()).or_default().push_back(seal(open));
        }
        let open = state.open.entry(key).or_insert_with(|| Open {
            builder: RecordBatchBuilder::new(compression),
            bytes: 0,
            timestamps: Vec::new(),
            waiters: Vec::new(),
            created: clock::monotonic(),
        });
        let headers: Vec<(&str, Option<&[u8]>)> =
            record.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        open.builder
            .append(timestamp, record.key.as_deref(), record.value.as_deref(), &headers);
        open.timestamps.push(timestamp);
        open.bytes += size;
        open.waiters.push(tx);
        let full =
            overflows || open.builder.records_bytes() >= self.settings.batch_size.min(self.settings.max_request_size);
        state.in_flight += 1;
        state.buffered_bytes += size;
        if full && record.key.is_none() && record.partition.is_none() {
            // The sticky partitioner moves on when a batch fills.
            state.sticky.insert(record.topic.clone(), (partition + 1) % partitions);
        }
        drop(state);
        if full || self.settings.linger.is_zero() {
            self.wake.notify_one();
        }
        Ok(rx)
    }

    /// Sends everything queued and waits until every record is acknowledged or failed.
    pub async fn flush(&self) {
        self.state.lock().await.flushing += 1;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.state.lock().await.in_flight == 0 {
                break;
            }
            self.wake.notify_one();
            drained.await;
        }
        self.state.lock().await.flushing -= 1;
    }

    pub async fn close(self) {
        self.flush().await;
        self.state.lock().await.closed = true;
        self.sender.abort();
    }

    async fn partition_count(&self, topic: &str) -> Result<i32, ClientError> {
        if let Some(p) = self.state.lock().await.metadata.topics.get(topic) {
            return Ok(p.len() as i32);
        }
        let mut connection = bootstrap(&self.config).await?;
        let response = fetch_metadata(&mut connection, Some(&[topic.to_string()]), true).await?;
        let metadata = ClusterMetadata::from_response(&response);
        let count = metadata.topics.get(topic).map(|p| p.len() as i32);
        let mut state = self.state.lock().await;
        state.metadata.brokers.extend(metadata.brokers);
        state.metadata.topics.extend(metadata.topics);
        match count {
            Some(n) if n > 0 => Ok(n),
            _ => Err(ClientError::Kafka(3, format!("topic {topic} is unknown"))),
        }
    }
}

/// Whether the producer is idempotent, as the Java client (3.2+) decides: on by default,
/// off without a word when other settings conflict and it was not asked for, an error
/// when it was.
fn idempotence(config: &ClientConfig, acks: i16, retries: u32) -> Result<bool, ClientError> {
    // This client sends one request at a time; the setting is still checked as Java does.
    let in_flight_max: u32 = config.get_or("max.in.flight.requests.per.connection", 5)?;
    match config.get("enable.idempotence") {
        None => Ok(acks == -1 && retries > 0 && in_flight_max <= 5),
        Some(_) => {
            let wanted = config.get_or("enable.idempotence", true)?;
            if wanted && acks != -1 {
                return Err(ClientError::Config(
                    "Must set acks to all in order to use the idempotent producer".into(),
                ));
            }
            if wanted && in_flight_max > 5 {
                return Err(ClientError::Config(
                    "Must set max.in.flight.requests.per.connection to at most 5 to use the idempotent producer".into(),
                ));
            }
            if wanted && retries == 0 {
                return Err(ClientError::Config(
                    "Must set retries to non-zero when using the idempotent producer".into(),
                ));
            }
            Ok(wanted)
        }
    }
}

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const UNKNOWN_PRODUCER_ID: i16 = 59;

/// Error codes worth retrying: the leader moved or was not there yet, a timeout, a
/// storage error on a broker that will restart.
fn retriable(code: i16) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 13 | 19 | 56)
}

async fn run_sender(
    settings: Settings,
    config: ClientConfig,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    drained: Arc<Notify>,
) {
    let mut connections: BTreeMap<String, Connection> = BTreeMap::new();
    loop {
        let _ = tokio::time::timeout(settings.linger.max(Duration::from_millis(1)), wake.notified()).await;
        let (mut ready, routes) = take_ready(&settings, &state).await;
        if ready.is_empty() {
            continue;
        }
        if settings.idempotent {
            if let Err(e) = ensure_identity(&config, &state).await {
                for (key, sealed) in ready {
                    retry_or_fail(&settings, &state, key, sealed, ClientError::Protocol(e.to_string())).await;
                }
                continue;
            }
            stamp(&state, &mut ready).await;
        }
        // One produce request per leader, with one batch per partition.
        let mut by_leader: BTreeMap<String, Vec<((String, i32), Sealed)>> = BTreeMap::new();
        for (key, sealed) in ready {
            match routes.get(&key) {
                Some(address) => by_leader.entry(address.clone()).or_default().push((key, sealed)),
                None => {
                    retry_or_fail(
                        &settings,
                        &state,
                        key,
                        sealed,
                        ClientError::Kafka(5, "no leader".into()),
                    )
                    .await
                }
            }
        }
        for (address, batches) in by_leader {
            match send_to(&settings, &config, &mut connections, &address, &batches).await {
                Ok(response) => complete(&settings, &state, batches, response).await,
                Err(e) => {
                    connections.remove(&address);
                    refresh_metadata(&config, &state).await;
                    for (key, sealed) in batches {
                        retry_or_fail(&settings, &state, key, sealed, ClientError::Protocol(e.to_string())).await;
                    }
                }
            }
        }
        // Wakes flushes (which check for nothing in flight) and sends waiting for buffer space.
        drained.notify_waiters();
        let s = state.lock().await;
        if s.in_flight > 0 && (!s.open.is_empty() || s.queues.values().any(|q| !q.is_empty())) {
            wake.notify_one();
        }
    }
}

/// The oldest sealed batch of each partition; for a partition with none waiting, its open
/// batch if it is full, has lingered, or is flushed. One batch per partition per request,
/// so batches of a partition go in order.
async fn take_ready(
    settings: &Settings,
    state: &Arc<Mutex<State>>,
) -> (Vec<((String, i32), Sealed)>, BTreeMap<(String, i32), String>) {
    let mut state = state.lock().await;
    let now = clock::monotonic();
    let flushing = state.flushing > 0;
    let mut ready: Vec<((String, i32), Sealed)> = Vec::new();
    for (key, queue) in state.queues.iter_mut() {
        if let Some(sealed) = queue.pop_front() {
            ready.push((key.clone(), sealed));
        }
    }
    state.queues.retain(|_, q| !q.is_empty());
    let keys: Vec<(String, i32)> = state
        .open
        .iter()
        .filter(|(k, o)| {
            !ready.iter().any(|(r, _)| r == *k)
                && (flushing
                    || o.builder.records_bytes() >= settings.batch_size
                    || now.duration_since(o.created) >= settings.linger)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for key in keys {
        let open = state.open.remove(&key).expect("listed");
        ready.push((key, seal(open)));
    }
    let routes = ready
        .iter()
        .filter_map(|(k, _)| {
            state
                .metadata
                .leader_address(&k.0, k.1)
                .map(|a| (k.clone(), a.to_string()))
        })
        .collect();
    (ready, routes)
}

fn seal(open: Open) -> Sealed {
    let records_count = open.builder.len();
    Sealed {
        records: open.builder.build().freeze(),
        bytes: open.bytes,
        timestamps: open.timestamps,
        waiters: open.waiters,
        created: open.created,
        attempts: 0,
        stamp: None,
        records_count,
    }
}

/// InitProducerId: a producer id and epoch before the first send, and an epoch bump (with
/// the current id and epoch, KIP-360) when sequences must start over.
async fn ensure_identity(config: &ClientConfig, state: &Arc<Mutex<State>>) -> Result<(), ClientError> {
    let (current, bump) = {
        let s = state.lock().await;
        if s.identity.is_some() && !s.needs_bump {
            return Ok(());
        }
        (s.identity.as_ref().map(|i| (i.producer_id, i.epoch)), s.needs_bump)
    };
    let mut connection = bootstrap(config).await?;
    let (producer_id, producer_epoch) = match (current, bump) {
        (Some(ids), true) => ids,
        _ => (-1, -1),
    };
    let request = InitProducerIdRequest {
        transactional_id: None,
        transaction_timeout_ms: i32::MAX,
        producer_id,
        producer_epoch,
        ..Default::default()
    };
    // Before v3 the request has no id and epoch: the broker answers with a fresh id, which
    // serves as well as a bump.
    let (response, _): (InitProducerIdResponse, i16) = connection.request(&request).await?;
    if response.error_code != 0 {
        return Err(ClientError::Kafka(response.error_code, "InitProducerId".into()));
    }
    let mut s = state.lock().await;
    s.identity = Some(Identity {
        producer_id: response.producer_id,
        epoch: response.producer_epoch,
        next_sequence: BTreeMap::new(),
    });
    s.needs_bump = false;
    Ok(())
}

/// Stamps each batch with the producer id, epoch and the partition's next sequence.
async fn stamp(state: &Arc<Mutex<State>>, ready: &mut [((String, i32), Sealed)]) {
    let mut s = state.lock().await;
    let identity = s.identity.as_mut().expect("ensured before stamping");
    stamp_batches(identity, ready);
}

/// A batch stamped before keeps its stamp, even from an older epoch: it may be in the log
/// already (its answer was lost), and only its first stamp lets the broker recognise the
/// retry as a duplicate. Restamped under a new epoch, it would be appended a second time.
/// The partition's new sequence starts behind it: it stays at the front of its queue, alone
/// in flight, until it is answered. (The Java client, too, keeps a partition on its old
/// epoch while such batches are in flight.) A batch the broker refused by sequence has its
/// stamp removed (`complete`), as it is certainly not in the log.
fn stamp_batches(identity: &mut Identity, ready: &mut [((String, i32), Sealed)]) {
    for (key, sealed) in ready.iter_mut() {
        if sealed.stamp.is_some() {
            continue;
        }
        let sequence = identity.next_sequence.entry(key.clone()).or_insert(0);
        let base = *sequence;
        *sequence = ((base as i64 + sealed.records_count as i64) % (i32::MAX as i64 + 1)) as i32;
        let mut bytes = bytes::BytesMut::from(&sealed.records[..]);
        record::set_producer(&mut bytes, identity.producer_id, identity.epoch, base);
        sealed.records = bytes.freeze();
        sealed.stamp = Some((identity.producer_id, identity.epoch, base));
    }
}

async fn send_to(
    settings: &Settings,
    config: &ClientConfig,
    connections: &mut BTreeMap<String, Connection>,
    address: &str,
    batches: &[((String, i32), Sealed)],
) -> Result<Option<ProduceResponse>, ClientError> {
    if !connections.contains_key(address) {
        let connection = Connection::connect(address, &config.client_id(), config.request_timeout()?).await?;
        connections.insert(address.to_string(), connection);
    }
    let connection = connections.get_mut(address).expect("inserted above");
    let mut topics: BTreeMap<&str, Vec<produce_request::PartitionProduceData>> = BTreeMap::new();
    for ((topic, partition), sealed) in batches {
        let data = produce_request::PartitionProduceData {
            index: *partition,
            records: Some(sealed.records.clone()),
            ..Default::default()
        };
        topics.entry(topic).or_default().push(data);
    }
    let request = ProduceRequest {
        acks: settings.acks,
        timeout_ms: settings.request_timeout_ms,
        topic_data: topics
            .into_iter()
            .map(|(name, partition_data)| produce_request::TopicProduceData {
                name: name.to_string(),
                partition_data,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    if settings.acks == 0 {
        connection.send_only(&request).await?;
        return Ok(None);
    }
    Ok(Some(connection.request(&request).await?.0))
}

async fn complete(
    settings: &Settings,
    state: &Arc<Mutex<State>>,
    batches: Vec<((String, i32), Sealed)>,
    response: Option<ProduceResponse>,
) {
    let mut answers: BTreeMap<(String, i32), (i16, i64, i64)> = BTreeMap::new();
    for topic in response.iter().flat_map(|r| &r.responses) {
        for p in &topic.partition_responses {
            answers.insert(
                (topic.name.clone(), p.index),
                (p.error_code, p.base_offset, p.log_append_time_ms),
            );
        }
    }
    for (key, sealed) in batches {
        // acks=0: nothing comes back; the records count as sent, at unknown offsets.
        let answer = if response.is_none() {
            Some((0, -1, -1))
        } else {
            answers.get(&key).copied()
        };
        match answer {
            // DUPLICATE_SEQUENCE_NUMBER: the batch is in the log already (older brokers).
            Some((0 | DUPLICATE_SEQUENCE_NUMBER, base_offset, log_append_time)) => {
                let (n, bytes) = (sealed.waiters.len(), sealed.bytes);
                for (i, (waiter, timestamp)) in sealed.waiters.into_iter().zip(sealed.timestamps).enumerate() {
                    let timestamp = if log_append_time >= 0 {
                        log_append_time
                    } else {
                        timestamp
                    };
                    let offset = if base_offset >= 0 { base_offset + i as i64 } else { -1 };
                    let _ = waiter.send(Ok(RecordMetadata {
                        topic: key.0.clone(),
                        partition: key.1,
                        offset,
                        timestamp,
                    }));
                }
                let mut s = state.lock().await;
                s.in_flight -= n;
                s.buffered_bytes -= bytes;
            }
            // The broker's sequence state and ours disagree (it lost batches in a crash, or
            // expired us): bump the epoch and send again from sequence 0. The broker refused
            // this batch, so it is not in the log: it takes a new stamp.
            Some((code @ (OUT_OF_ORDER_SEQUENCE_NUMBER | INVALID_PRODUCER_EPOCH | UNKNOWN_PRODUCER_ID), _, _))
                if settings.idempotent =>
            {
                state.lock().await.needs_bump = true;
                let mut sealed = sealed;
                sealed.stamp = None;
                retry_or_fail(settings, state, key, sealed, ClientError::Kafka(code, "produce".into())).await
            }
            Some((code, _, _)) if retriable(code) => {
                retry_or_fail(settings, state, key, sealed, ClientError::Kafka(code, "produce".into())).await
            }
            Some((code, _, _)) => {
                fail(
                    state,
                    sealed,
                    ClientError::Kafka(code, format!("produce to {}-{}", key.0, key.1)),
                )
                .await
            }
            None => {
                fail(
                    state,
                    sealed,
                    ClientError::Protocol(format!("no answer for {}-{}", key.0, key.1)),
                )
                .await
            }
        }
    }
}

async fn retry_or_fail(
    settings: &Settings,
    state: &Arc<Mutex<State>>,
    key: (String, i32),
    mut sealed: Sealed,
    error: ClientError,
) {
    sealed.attempts += 1;
    if sealed.attempts > settings.retries
        || clock::monotonic().duration_since(sealed.created) + settings.retry_backoff >= settings.delivery_timeout
    {
        fail(state, sealed, error).await;
        return;
    }
    tokio::time::sleep(settings.retry_backoff).await;
    state.lock().await.queues.entry(key).or_default().push_front(sealed);
}

async fn fail(state: &Arc<Mutex<State>>, sealed: Sealed, error: ClientError) {
    if sealed.stamp.is_some() {
        // Its sequence may or may not be in the log: the ones after it cannot follow it.
        state.lock().await.needs_bump = true;
    }
    let message = error.to_string();
    let (n, bytes) = (sealed.waiters.len(), sealed.bytes);
    for waiter in sealed.waiters {
        let _ = waiter.send(Err(ClientError::Protocol(message.clone())));
    }
    let mut s = state.lock().await;
    s.in_flight -= n;
    s.buffered_bytes -= bytes;
}

async fn refresh_metadata(config: &ClientConfig, state: &Arc<Mutex<State>>) {
    let Ok(mut connection) = bootstrap(config).await else {
        return;
    };
    let topics: Vec<String> = state.lock().await.metadata.topics.keys().cloned().collect();
    if let Ok(response) = fetch_metadata(&mut connection, Some(&topics), false).await {
        let metadata = ClusterMetadata::from_response(&response);
        let mut state = state.lock().await;
        state.metadata.brokers = metadata.brokers;
        state.metadata.topics.extend(metadata.topics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::BatchHeader;

    #[test]
    fn idempotence_follows_the_java_client() {
        // (settings, acks, retries, expected: Some(on) or None for a config error)
        let cases: &[(&[&str], i16, u32, Option<bool>)] = &[
            (&[], -1, u32::MAX, Some(true)),
            (&[], 1, u32::MAX, Some(false)),
            (&[], -1, 0, Some(false)),
            (&["max.in.flight.requests.per.connection=6"], -1, u32::MAX, Some(false)),
            (&["enable.idempotence=false"], -1, u32::MAX, Some(false)),
            (&["enable.idempotence=true"], -1, u32::MAX, Some(true)),
            (&["enable.idempotence=true"], 1, u32::MAX, None),
            (&["enable.idempotence=true"], -1, 0, None),
            (
                &["enable.idempotence=true", "max.in.flight.requests.per.connection=6"],
                -1,
                u32::MAX,
                None,
            ),
            (&["enable.idempotence=maybe"], -1, u32::MAX, None),
        ];
        for (settings, acks, retries, want) in cases {
            let config = ClientConfig::from_pairs(settings.iter().copied()).unwrap();
            let got = idempotence(&config, *acks, *retries).ok();
            assert_eq!(got, *want, "{settings:?} acks={acks} retries={retries}");
        }
    }

    fn sealed(records_count: i32, stamp: Option<(i64, i16, i32)>) -> Sealed {
        let mut builder = RecordBatchBuilder::new(Compression::None);
        for i in 0..records_count {
            builder.append(i as i64, None, Some(b"v"), &[]);
        }
        let mut bytes = builder.build();
        if let Some((id, epoch, sequence)) = stamp {
            record::set_producer(&mut bytes, id, epoch, sequence);
        }
        Sealed {
            records: bytes.freeze(),
            bytes: 0,
            timestamps: Vec::new(),
            waiters: Vec::new(),
            created: clock::monotonic(),
            attempts: 0,
            stamp,
            records_count,
        }
    }

    #[test]
    fn a_batch_keeps_its_first_stamp_across_epoch_bumps() {
        // (stamp before, the partition's next sequence, records, stamp after, next sequence
        // after), with the producer now at id 7, epoch 2.
        type Stamp = Option<(i64, i16, i32)>;
        let cases: &[(Stamp, Option<i32>, i32, (i64, i16, i32), i32)] = &[
            // Never sent: the current epoch and the partition's next sequence.
            (None, None, 3, (7, 2, 0), 3),
            (None, Some(10), 1, (7, 2, 10), 11),
            (None, Some(i32::MAX), 2, (7, 2, i32::MAX), 1),
            // A retry under the current epoch.
            (Some((7, 2, 4)), Some(5), 1, (7, 2, 4), 5),
            // A retry sent before the bump (its answer lost): it may be in the log, so only
            // its first stamp lets the broker answer it as a duplicate.
            (Some((7, 1, 437)), None, 3, (7, 1, 437), 0),
            (Some((7, 1, 437)), Some(2), 3, (7, 1, 437), 2),
            // From an earlier producer id (InitProducerId before v3 gives a fresh one).
            (Some((6, 0, 9)), None, 1, (6, 0, 9), 0),
        ];
        for &(before, next, records_count, want, want_next) in cases {
            let key = ("t".to_string(), 0);
            let mut identity = Identity {
                producer_id: 7,
                epoch: 2,
                next_sequence: next.map(|n| (key.clone(), n)).into_iter().collect(),
            };
            let mut ready = vec![(key.clone(), sealed(records_count, before))];
            stamp_batches(&mut identity, &mut ready);
            let sealed = &ready[0].1;
            let what = format!("stamp {before:?}, next {next:?}, {records_count} records");
            assert_eq!(sealed.stamp, Some(want), "{what}");
            let header = BatchHeader::parse(&sealed.records).unwrap();
            assert_eq!(
                (header.producer_id, header.producer_epoch, header.base_sequence),
                want,
                "{what}: the bytes carry the stamp"
            );
            assert_eq!(
                identity.next_sequence.get(&key).copied().unwrap_or(0),
                want_next,
                "{what}"
            );
        }
    }

    #[test]
    fn a_batch_refused_by_sequence_loses_its_stamp_and_a_lost_answer_keeps_it() {
        use crate::protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
        // (error code, stamp kept for the retry, bump asked for)
        let cases: &[(i16, bool, bool)] = &[
            (OUT_OF_ORDER_SEQUENCE_NUMBER, false, true),
            (INVALID_PRODUCER_EPOCH, false, true),
            (UNKNOWN_PRODUCER_ID, false, true),
            // NOT_LEADER_OR_FOLLOWER and REQUEST_TIMED_OUT: the batch may be in the log.
            (6, true, false),
            (7, true, false),
        ];
        for &(code, kept, bump) in cases {
            let settings = Settings {
                acks: -1,
                batch_size: 16_384,
                linger: Duration::ZERO,
                compression: Compression::None,
                retry_backoff: Duration::ZERO,
                retries: u32::MAX,
                idempotent: true,
                delivery_timeout: Duration::from_secs(120),
                request_timeout_ms: 30_000,
                max_request_size: 1 << 20,
                buffer_memory: 1 << 25,
            };
            let state = Arc::new(Mutex::new(State::new()));
            let key = ("t".to_string(), 0);
            let response = ProduceResponse {
                responses: vec![TopicProduceResponse {
                    name: key.0.clone(),
                    partition_responses: vec![PartitionProduceResponse {
                        index: key.1,
                        error_code: code,
                        base_offset: -1,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            let batch = sealed(1, Some((7, 1, 40)));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            let s = runtime.block_on(async {
                complete(&settings, &state, vec![(key.clone(), batch)], Some(response)).await;
                let mut s = state.lock().await;
                let retried = s.queues.get_mut(&key).and_then(|q| q.pop_front()).expect("requeued");
                (retried.stamp, s.needs_bump)
            });
            let want_stamp = kept.then_some((7, 1, 40));
            assert_eq!(s, (want_stamp, bump), "error {code}");
        }
    }
}
