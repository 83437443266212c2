//! The producer: records accumulate into one batch per partition, sent when the batch
//! reaches `batch.size` or has waited `linger.ms`; retriable errors are retried with
//! `retry.backoff.ms` up to `retries` times within `delivery.timeout.ms`. Config names and meanings follow the
//! Java client.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use super::connection::{RequestWriter, ResponseReader};
use super::partitioner::partition_for_key;
use super::{bootstrap, fetch_metadata, ClientConfig, ClientError, ClusterMetadata, Connection};
use crate::protocol::messages::{
    produce_request, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
};
use crate::record::{self, Compression, RecordBatchBuilder};
use crate::server::clock;

#[derive(Clone, Debug, Default)]
pub struct ProducerRecord {
    /// Shared, not copied: each record to a topic clones a pointer, not the name.
    pub topic: Arc<str>,
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else set. Cheaper than `..Default::default()` in a
    /// hot loop: the default's empty topic is one `Arc` that every thread's defaults share,
    /// and making and dropping it costs two atomic operations on that shared count.
    pub fn new(topic: Arc<str>, value: Option<Bytes>) -> ProducerRecord {
        ProducerRecord {
            topic,
            partition: None,
            key: None,
            value,
            headers: Vec::new(),
            timestamp: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
}

/// A topic's partition, as the producer keys its batches.
type TopicPartition = (Arc<str>, i32);

/// A record's delivery: resolves once the broker acknowledged it (or the producer gave up).
/// The records of a batch share one outcome; each delivery knows its place in the batch and
/// its own timestamp, so settling a batch costs one write however many records it holds.
pub struct Delivery {
    outcome: Arc<Outcome>,
    /// The record's index in its batch: its offset is the batch's base offset plus this.
    index: u32,
    timestamp: i64,
}

impl Delivery {
    /// The record's result if its batch is settled, without waiting.
    pub fn try_settled(&self) -> Option<Result<RecordMetadata, ClientError>> {
        self.outcome.settled.get().map(|settled| self.metadata(settled))
    }

    /// Whether `other` is a record of the same batch: the two settle together, with the
    /// same outcome.
    pub fn is_same_batch(&self, other: &Delivery) -> bool {
        Arc::ptr_eq(&self.outcome, &other.outcome)
    }

    fn metadata(&self, settled: &Result<Acknowledged, String>) -> Result<RecordMetadata, ClientError> {
        match settled {
            Ok(ack) => Ok(RecordMetadata {
                topic: self.outcome.partition.0.clone(),
                partition: self.outcome.partition.1,
                offset: if ack.base_offset >= 0 {
                    ack.base_offset + i64::from(self.index)
                } else {
                    -1
                },
                timestamp: if ack.log_append_time >= 0 {
                    ack.log_append_time
                } else {
                    self.timestamp
                },
            }),
            Err(message) => Err(ClientError::Protocol(message.clone())),
        }
    }
}

impl Future for Delivery {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(result) = self.try_settled() {
            return Poll::Ready(result);
        }
        {
            let mut wakers = self.outcome.wakers.lock().unwrap_or_else(|e| e.into_inner());
            // Checked again under the lock that `settle` takes after it sets the outcome,
            // so a settle between the first look and the registration is not missed.
            if self.outcome.settled.get().is_none() {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
        Poll::Ready(self.try_settled().expect("settled, checked under the lock"))
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Delivery({}-{} #{}: {:?})",
            self.outcome.partition.0,
            self.outcome.partition.1,
            self.index,
            self.outcome.settled.get()
        )
    }
}

/// What the broker said about a batch that it took.
#[derive(Clone, Copy, Debug)]
struct Acknowledged {
    /// -1 when unknown (acks=0).
    base_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    log_append_time: i64,
}

/// A batch's outcome, shared by its records' deliveries. Set once.
struct Outcome {
    partition: TopicPartition,
    settled: OnceLock<Result<Acknowledged, String>>,
    /// Deliveries polled before it was settled.
    wakers: std::sync::Mutex<Vec<Waker>>,
}

/// The producer's end of a batch's outcome: owned by the batch, and consumed when it is
/// settled. A batch dropped unsettled (the producer went away) fails its deliveries, so
/// none waits forever.
struct Settle(Arc<Outcome>);

impl Settle {
    fn new(partition: TopicPartition) -> Settle {
        Settle(Arc::new(Outcome {
            partition,
            settled: OnceLock::new(),
            wakers: std::sync::Mutex::new(Vec::new()),
        }))
    }

    fn delivery(&self, index: u32, timestamp: i64) -> Delivery {
        Delivery {
            outcome: self.0.clone(),
            index,
            timestamp,
        }
    }

    fn settle(self, result: Result<Acknowledged, String>) {
        self.set(result);
    }

    fn set(&self, result: Result<Acknowledged, String>) {
        if self.0.settled.set(result).is_err() {
            return;
        }
        let wakers = std::mem::take(&mut *self.0.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if self.0.settled.get().is_none() {
            self.set(Err("the producer stopped before the record was settled".into()));
        }
    }
}

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
    /// `max.in.flight.requests.per.connection`: produce requests written to one broker and
    /// not yet answered.
    in_flight_max: usize,
}

/// An open batch, still taking records.
struct Open {
    builder: RecordBatchBuilder,
    bytes: usize,
    outcome: Settle,
    created: tokio::time::Instant,
}

/// A batch built and on its way; a retry resends the same bytes.
struct Sealed {
    records: Bytes,
    bytes: usize,
    outcome: Settle,
    created: tokio::time::Instant,
    /// Times this batch was retried; `retries` bounds it.
    attempts: u32,
    /// A retry waits `retry.backoff.ms` before it is sent again.
    retry_at: Option<tokio::time::Instant>,
    /// The (producer id, epoch, base sequence) stamped on it when first sent (idempotence).
    stamp: Option<(i64, i16, i32)>,
    records_count: i32,
    /// Its place in the order batches were sealed: a partition's batches go out, and come
    /// back for retries, in this order.
    ordinal: u64,
}

/// An idempotent producer's identity and its next sequence per partition.
#[derive(Debug, Default)]
struct Identity {
    producer_id: i64,
    epoch: i16,
    next_sequence: BTreeMap<TopicPartition, i32>,
}

struct State {
    metadata: ClusterMetadata,
    open: BTreeMap<TopicPartition, Open>,
    /// Sealed batches waiting per partition, oldest first; a retry goes back to the front.
    queues: BTreeMap<TopicPartition, VecDeque<Sealed>>,
    sticky: BTreeMap<Arc<str>, i32>,
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
    /// The ordinal the next sealed batch takes.
    ordinals: u64,
    /// Settled batches' buffers for new batches to reuse (the Java client's `BufferPool`):
    /// a buffer that stays in the process keeps its pages, where a fresh one costs a page
    /// fault a page. At most `BATCH_BUFFERS_FREE_MAX`.
    free_buffers: Vec<Vec<u8>>,
}

/// The most settled batch buffers kept for reuse.
const BATCH_BUFFERS_FREE_MAX: usize = 16;

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
            ordinals: 0,
            free_buffers: Vec::new(),
        }
    }

    fn next_ordinal(&mut self) -> u64 {
        self.ordinals += 1;
        self.ordinals
    }

    /// Keeps a settled batch's buffer for a new batch, when nothing else holds it (a request
    /// being written still may) and `keep_buffer` takes it.
    fn recycle(&mut self, records: Bytes, batch_size: usize) {
        if let Ok(buffer) = records.try_into_mut() {
            self.keep_buffer(Vec::from(buffer), batch_size);
        }
    }

    /// Pools a buffer that holds a batch without growing (a compressed batch's, smaller, is
    /// let go) and is not much bigger than one (one huge record's is let go either), while
    /// the pool has room.
    fn keep_buffer(&mut self, buffer: Vec<u8>, batch_size: usize) {
        let batch_bytes = batch_size + record::RECORD_BATCH_OVERHEAD;
        let fits = (batch_bytes..=2 * batch_bytes).contains(&buffer.capacity());
        if fits && self.free_buffers.len() < BATCH_BUFFERS_FREE_MAX {
            self.free_buffers.push(buffer);
        }
    }

    /// Closes an open batch: builds it, numbers it, and pools the buffer a compressed
    /// batch's records were gathered in.
    fn seal(&mut self, open: Open, batch_size: usize) -> Sealed {
        let ordinal = self.next_ordinal();
        let records_count = open.builder.len();
        let (records, released) = open.builder.build_releasing_buffer();
        if let Some(buffer) = released {
            self.keep_buffer(buffer, batch_size);
        }
        Sealed {
            records: records.freeze(),
            bytes: open.bytes,
            outcome: open.outcome,
            created: open.created,
            attempts: 0,
            retry_at: None,
            stamp: None,
            records_count,
            ordinal,
        }
    }
}

/// The state `send` and the sender task share, behind a plain lock rather than an async
/// one: it is taken once a record, and nothing holds it across an await (its guard is not
/// `Send`, so the compiler refuses a spawned future that would).
struct Shared(std::sync::Mutex<State>);

impl Shared {
    fn new(state: State) -> Shared {
        Shared(std::sync::Mutex::new(state))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it is a bug that has already ended the process's usefulness;
        // poisoning adds nothing to that.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What `Producer::admit` did with a record.
enum Admission<'a> {
    Queued {
        delivery: Delivery,
        /// Its batch is full: the sender should take it now.
        full: bool,
    },
    /// The producer has no metadata for the record's topic yet.
    UnknownTopic(ProducerRecord),
    /// `buffer.memory` is full; the future resolves when the sender frees some.
    NoRoom(ProducerRecord, std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>),
}

pub struct Producer {
    settings: Settings,
    config: ClientConfig,
    state: Arc<Shared>,
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
            in_flight_max: config.get_or("max.in.flight.requests.per.connection", 5usize)?.max(1),
        };
        let state = Arc::new(Shared::new(State::new()));
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
    pub async fn send(&self, mut record: ProducerRecord) -> Result<Delivery, ClientError> {
        let timestamp = record.timestamp.unwrap_or_else(clock::now_ms);
        let size = 32 + record.key.as_ref().map_or(0, |k| k.len()) + record.value.as_ref().map_or(0, |v| v.len());
        loop {
            match self.admit(record, timestamp, size)? {
                Admission::Queued { delivery, full } => {
                    if full || self.settings.linger.is_zero() {
                        self.wake.notify_one();
                    }
                    // Cooperative scheduling: the state's lock is not async, so without
                    // this `send` would never yield while there is buffer room, and on a
                    // current-thread runtime a loop of sends would starve the sender and
                    // whoever awaits the deliveries. Tokio yields here once the task's
                    // budget is spent; the simulator (which has no budget) yields every time.
                    #[cfg(not(madsim))]
                    tokio::task::consume_budget().await;
                    #[cfg(madsim)]
                    tokio::task::yield_now().await;
                    return Ok(delivery);
                }
                Admission::UnknownTopic(r) => {
                    record = r;
                    self.partition_count(&record.topic).await?;
                }
                Admission::NoRoom(r, space) => {
                    record = r;
                    self.wake.notify_one();
                    space.await;
                }
            }
        }
    }

    /// Adds a record to its partition's open batch under one lock (the common case), or
    /// says why it cannot yet. Not async: the lock is never held across an await.
    fn admit(&self, record: ProducerRecord, timestamp: i64, size: usize) -> Result<Admission<'_>, ClientError> {
        let mut state = self.state.lock();
        // One lookup of the topic's partitions; the checks below keep their order.
        let Some(partitions) = state.metadata.topics.get(&*record.topic).map(|p| p.len() as i32) else {
            return Ok(Admission::UnknownTopic(record));
        };
        if state.buffered_bytes != 0 && state.buffered_bytes + size > self.settings.buffer_memory {
            // Registered before the lock is let go, so the sender's wake-up after it frees
            // room cannot be missed.
            let mut space = Box::pin(self.drained.notified());
            space.as_mut().enable();
            return Ok(Admission::NoRoom(record, space));
        }
        if state.closed {
            return Err(ClientError::Config("the producer is closed".into()));
        }
        if partitions == 0 {
            return Err(ClientError::Kafka(
                3,
                format!("topic {} has no partitions", record.topic),
            ));
        }
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => match state.sticky.get(&record.topic) {
                // (A topic created again may have fewer partitions than the sticky one.)
                Some(&p) if p < partitions => p,
                _ => {
                    let p = (clock::now_ms() % partitions as i64) as i32;
                    state.sticky.insert(record.topic.clone(), p);
                    p
                }
            },
        };
        if partition < 0 || partition >= partitions {
            return Err(ClientError::Kafka(3, format!("{}-{partition}", record.topic)));
        }
        let compression = self.settings.compression;
        let sticky = record.key.is_none() && record.partition.is_none();
        let key = (record.topic, partition);
        // A record that does not fit the open batch starts a new one, as the Java client does.
        // (Some(true): the open batch takes it, the common case: one lookup here, one below.)
        let fits = state
            .open
            .get(&key)
            .map(|o| o.builder.is_empty() || o.builder.records_bytes() + size <= self.settings.batch_size);
        let overflows = fits == Some(false);
        if overflows {
            let open = state.open.remove(&key).expect("checked above");
            let sealed = state.seal(open, self.settings.batch_size);
            state.queues.entry(key.clone()).or_default().push_back(sealed);
        }
        if fits != Some(true) {
            let capacity = self.settings.batch_size.max(size);
            let buffer = state.free_buffers.pop().unwrap_or_default();
            let open = Open {
                builder: RecordBatchBuilder::with_buffer(compression, buffer, capacity),
                bytes: 0,
                outcome: Settle::new(key.clone()),
                created: clock::monotonic(),
            };
            state.open.insert(key.clone(), open);
        }
        let open = state.open.get_mut(&key).expect("inserted above");
        let headers: Vec<(&str, Option<&[u8]>)> =
            record.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let index = open.builder.len() as u32;
        open.builder
            .append(timestamp, record.key.as_deref(), record.value.as_deref(), &headers);
        open.bytes += size;
        let delivery = open.outcome.delivery(index, timestamp);
        let full =
            overflows || open.builder.records_bytes() >= self.settings.batch_size.min(self.settings.max_request_size);
        state.in_flight += 1;
        state.buffered_bytes += size;
        if full && sticky {
            // The sticky partitioner moves on when a batch fills.
            state.sticky.insert(key.0, (partition + 1) % partitions);
        }
        Ok(Admission::Queued { delivery, full })
    }

    /// Bytes of settled batches' buffers pooled for new batches: the free part of what the
    /// Java client reports as `buffer-available-bytes`.
    pub fn buffer_pool_bytes(&self) -> usize {
        self.state.lock().free_buffers.iter().map(Vec::capacity).sum()
    }

    /// Sends everything queued and waits until every record is acknowledged or failed.
    pub async fn flush(&self) {
        self.state.lock().flushing += 1;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.state.lock().in_flight == 0 {
                break;
            }
            self.wake.notify_one();
            drained.await;
        }
        self.state.lock().flushing -= 1;
    }

    pub async fn close(self) {
        self.flush().await;
        self.state.lock().closed = true;
        self.sender.abort();
    }

    async fn partition_count(&self, topic: &str) -> Result<i32, ClientError> {
        if let Some(p) = self.state.lock().metadata.topics.get(topic) {
            return Ok(p.len() as i32);
        }
        let mut connection = bootstrap(&self.config).await?;
        let response = fetch_metadata(&mut connection, Some(&[topic.to_string()]), true).await?;
        let metadata = ClusterMetadata::from_response(&response);
        let count = metadata.topics.get(topic).map(|p| p.len() as i32);
        let mut state = self.state.lock();
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

/// The sender: one task that moves batches from the queues into produce requests and
/// hands the answers back. Each leader gets a pipelined connection with up to
/// `max.in.flight.requests.per.connection` requests written and unanswered; a reader task
/// per connection reads the answers, which come back in the order the requests went out.
///
/// Order within a partition: batches go out in the order they were sealed, one per request.
/// A batch coming back for a retry goes back into its queue in that order, and a retry goes
/// alone (nothing else of its partition in flight) so that it cannot overtake or be
/// overtaken. An epoch bump waits until nothing is in flight.
async fn run_sender(
    settings: Settings,
    config: ClientConfig,
    state: Arc<Shared>,
    wake: Arc<Notify>,
    drained: Arc<Notify>,
) {
    let (answers, mut answered) = mpsc::unbounded_channel();
    let idle = settings.linger.max(Duration::from_millis(1));
    let mut sender = Sender {
        settings,
        config,
        state,
        pipelines: BTreeMap::new(),
        flights: BTreeMap::new(),
        requests_in_flight: 0,
        generations: 0,
        answers,
    };
    loop {
        // Biased: the order is fixed, so the simulator replays it (tokio's random branch
        // order is not drawn from the simulator's seed).
        tokio::select! {
            biased;
            answer = answered.recv() => {
                if let Some(answer) = answer {
                    sender.answer(answer).await;
                }
            }
            _ = wake.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
        while let Ok(answer) = answered.try_recv() {
            sender.answer(answer).await;
        }
        sender.send_ready().await;
        // Wakes flushes (which check for nothing in flight) and sends waiting for buffer space.
        drained.notify_waiters();
    }
}

/// A produce request written to a leader and not yet answered.
struct Pending {
    correlation_id: i32,
    version: i16,
    batches: Vec<(TopicPartition, Sealed)>,
}

/// A request's batches back from a connection's reader task, with the answer.
struct Answered {
    address: String,
    generation: u64,
    batches: Vec<(TopicPartition, Sealed)>,
    result: Result<ProduceResponse, ClientError>,
}

/// A pipelined connection to one leader.
struct Pipeline {
    writer: RequestWriter,
    /// To the reader task, in the order the requests were written.
    pending: mpsc::UnboundedSender<Pending>,
    requests_in_flight: usize,
    /// Tells this connection's answers from those of an earlier one to the same address.
    generation: u64,
}

/// A partition's batches in flight, by the ordinal each was sealed with.
#[derive(Debug, Default)]
struct Flight {
    ordinals: BTreeSet<u64>,
    /// One of them is a retry, which goes alone: nothing more is sent until it is answered.
    retrying: bool,
}

struct Sender {
    settings: Settings,
    config: ClientConfig,
    state: Arc<Shared>,
    pipelines: BTreeMap<String, Pipeline>,
    flights: BTreeMap<TopicPartition, Flight>,
    requests_in_flight: usize,
    generations: u64,
    answers: mpsc::UnboundedSender<Answered>,
}

impl Sender {
    /// Sends every batch that is ready and has room in flight.
    async fn send_ready(&mut self) {
        // Each round writes at most one request per leader, so this many rounds can fill
        // every connection.
        for _ in 0..self.settings.in_flight_max {
            if self.settings.idempotent {
                let (missing, bump, waiting) = {
                    let s = self.state.lock();
                    let waiting = !s.open.is_empty() || s.queues.values().any(|q| !q.is_empty());
                    (s.identity.is_none(), s.needs_bump, waiting)
                };
                if (missing || bump) && (self.requests_in_flight > 0 || !waiting) {
                    // A bump waits until nothing is in flight: every stamped batch is then
                    // answered or back in its queue, at the front of its partition.
                    return;
                }
                if missing || bump {
                    if let Err(e) = ensure_identity(&self.config, &self.state).await {
                        let ready = self.take_ready();
                        self.retry_each(ready, &e);
                        return;
                    }
                }
            }
            let ready = self.take_ready();
            if ready.is_empty() {
                return;
            }
            let routes: BTreeMap<TopicPartition, String> = {
                let s = self.state.lock();
                ready
                    .iter()
                    .filter_map(|(k, _)| s.metadata.leader_address(&k.0, k.1).map(|a| (k.clone(), a.to_string())))
                    .collect()
            };
            // One produce request per leader, with one batch per partition.
            let mut by_leader: BTreeMap<String, Vec<(TopicPartition, Sealed)>> = BTreeMap::new();
            let mut retried = false;
            // A batch whose partition has no known leader (an election, or a topic that
            // left the metadata) waits for its backoff and new metadata.
            let mut unrouted = false;
            for (key, sealed) in ready {
                match routes.get(&key) {
                    Some(address) => by_leader.entry(address.clone()).or_default().push((key, sealed)),
                    None => {
                        retried = true;
                        unrouted = true;
                        retry_or_fail(
                            &self.settings,
                            &self.state,
                            key,
                            sealed,
                            ClientError::Kafka(5, "no leader".into()),
                        )
                    }
                }
            }
            for (address, batches) in by_leader {
                retried |= !self.send_to(&address, batches).await;
            }
            if unrouted {
                refresh_metadata(&self.config, &self.state).await;
            }
            if retried {
                // Whatever failed waits for its backoff; the next wake-up sends the rest.
                return;
            }
        }
    }

    /// The batches to send now (see `take_ready`), stamped if the producer is idempotent.
    fn take_ready(&mut self) -> Vec<(TopicPartition, Sealed)> {
        let full: BTreeSet<String> = self
            .pipelines
            .iter()
            .filter(|(_, p)| p.requests_in_flight >= self.settings.in_flight_max)
            .map(|(a, _)| a.clone())
            .collect();
        let mut s = self.state.lock();
        let mut ready = take_ready(&self.settings, &mut s, &self.flights, &full, clock::monotonic());
        if self.settings.idempotent && !ready.is_empty() {
            if let Some(identity) = s.identity.as_mut() {
                stamp_batches(identity, &mut ready);
            }
        }
        ready
    }

    /// Writes one produce request to a leader; false if its batches went back for a retry.
    async fn send_to(&mut self, address: &str, batches: Vec<(TopicPartition, Sealed)>) -> bool {
        let timeout = self.config.request_timeout().unwrap_or(Duration::from_secs(30));
        if !self.pipelines.contains_key(address) {
            match Connection::connect(address, &self.config.client_id(), timeout).await {
                Ok(connection) => self.open_pipeline(address, connection, timeout),
                Err(e) => {
                    self.retry_all(batches, e).await;
                    return false;
                }
            }
        }
        let (request, records) = produce_request(&self.settings, &batches);
        let pipeline = self.pipelines.get_mut(address).expect("opened above");
        let written = match pipeline.writer.version::<ProduceRequest>() {
            Ok(version) => {
                match tokio::time::timeout(timeout, pipeline.writer.write_with_records(&request, version, &records))
                    .await
                {
                    Ok(Ok(correlation_id)) => Ok((correlation_id, version)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(ClientError::Timeout("writing Produce".into())),
                }
            }
            Err(e) => Err(e),
        };
        let (correlation_id, version) = match written {
            Ok(written) => written,
            Err(e) => {
                self.pipelines.remove(address);
                self.retry_all(batches, e).await;
                return false;
            }
        };
        // The request's references to the batches go now, so that a batch settled later
        // holds its buffer alone and the pool can take it back.
        drop((request, records));
        if self.settings.acks == 0 {
            // Nothing comes back: the records count as sent, at unknown offsets.
            complete(&self.settings, &self.state, &self.flights, batches, None);
            return true;
        }
        for (key, sealed) in &batches {
            let flight = self.flights.entry(key.clone()).or_default();
            flight.ordinals.insert(sealed.ordinal);
            flight.retrying |= sealed.attempts > 0;
        }
        let pending = Pending {
            correlation_id,
            version,
            batches,
        };
        match pipeline.pending.send(pending) {
            Ok(()) => {
                pipeline.requests_in_flight += 1;
                self.requests_in_flight += 1;
                true
            }
            Err(mpsc::error::SendError(pending)) => {
                // The reader task is gone: the connection is of no more use.
                self.pipelines.remove(address);
                self.land(&pending.batches);
                self.retry_all(pending.batches, ClientError::Protocol("connection lost".into()))
                    .await;
                false
            }
        }
    }

    fn open_pipeline(&mut self, address: &str, connection: Connection, timeout: Duration) {
        self.generations += 1;
        let (writer, reader) = connection.split();
        let (pending, requests) = mpsc::unbounded_channel();
        tokio::spawn(read_answers(
            address.to_string(),
            self.generations,
            reader,
            requests,
            self.answers.clone(),
            timeout,
        ));
        let pipeline = Pipeline {
            writer,
            pending,
            requests_in_flight: 0,
            generation: self.generations,
        };
        self.pipelines.insert(address.to_string(), pipeline);
    }

    /// A request's answer, or its connection's failure.
    async fn answer(&mut self, answered: Answered) {
        self.requests_in_flight -= 1;
        let current = self
            .pipelines
            .get(&answered.address)
            .is_some_and(|p| p.generation == answered.generation);
        if current {
            let pipeline = self.pipelines.get_mut(&answered.address).expect("checked");
            pipeline.requests_in_flight -= 1;
        }
        self.land(&answered.batches);
        match answered.result {
            Ok(response) => {
                let stale = complete(
                    &self.settings,
                    &self.state,
                    &self.flights,
                    answered.batches,
                    Some(response),
                );
                if stale {
                    refresh_metadata(&self.config, &self.state).await;
                }
            }
            Err(e) => {
                // The first failure of a connection closes it; the requests written after
                // this one fail with it, in order, and go back to their queues behind it.
                if current {
                    self.pipelines.remove(&answered.address);
                    refresh_metadata(&self.config, &self.state).await;
                }
                self.retry_each(answered.batches, &e);
            }
        }
    }

    /// Batches no longer in flight.
    fn land(&mut self, batches: &[(TopicPartition, Sealed)]) {
        for (key, sealed) in batches {
            if let Some(flight) = self.flights.get_mut(key) {
                flight.ordinals.remove(&sealed.ordinal);
                if flight.ordinals.is_empty() {
                    self.flights.remove(key);
                }
            }
        }
    }

    async fn retry_all(&mut self, batches: Vec<(TopicPartition, Sealed)>, error: ClientError) {
        refresh_metadata(&self.config, &self.state).await;
        self.retry_each(batches, &error);
    }

    fn retry_each(&self, batches: Vec<(TopicPartition, Sealed)>, error: &ClientError) {
        for (key, sealed) in batches {
            retry_or_fail(
                &self.settings,
                &self.state,
                key,
                sealed,
                ClientError::Protocol(error.to_string()),
            );
        }
    }
}

/// A connection's reader task: reads the answer to each request written, in order, and
/// hands it to the sender. After the first failure every later request fails the same way
/// (the sender closes the connection when it sees the first).
async fn read_answers(
    address: String,
    generation: u64,
    mut reader: ResponseReader,
    mut requests: mpsc::UnboundedReceiver<Pending>,
    answers: mpsc::UnboundedSender<Answered>,
    timeout: Duration,
) {
    let mut broken: Option<String> = None;
    while let Some(pending) = requests.recv().await {
        let result = match &broken {
            Some(e) => Err(ClientError::Protocol(e.clone())),
            None => {
                let read = reader.read::<ProduceRequest, ProduceResponse>(pending.version, pending.correlation_id);
                match tokio::time::timeout(timeout, read).await {
                    Ok(Ok(response)) => Ok(response),
                    Ok(Err(e)) => {
                        broken = Some(e.to_string());
                        Err(e)
                    }
                    Err(_) => {
                        broken = Some("Produce timed out".into());
                        Err(ClientError::Timeout("Produce".into()))
                    }
                }
            }
        };
        let answer = Answered {
            address: address.clone(),
            generation,
            batches: pending.batches,
            result,
        };
        if answers.send(answer).is_err() {
            return;
        }
    }
}

/// The batches to send now, one per partition at most, in each partition's order:
/// - the front of a partition's queue (a retry only once its backoff passed and nothing of
///   its partition is in flight);
/// - for a partition with nothing queued, its open batch if it is full, has lingered, or
///   is flushed;
///
/// and none for a partition that has a retry in flight, or `in_flight_max` batches, or
/// whose leader's connection is full.
fn take_ready(
    settings: &Settings,
    state: &mut State,
    flights: &BTreeMap<TopicPartition, Flight>,
    full: &BTreeSet<String>,
    now: tokio::time::Instant,
) -> Vec<(TopicPartition, Sealed)> {
    let flushing = state.flushing > 0;
    let may_send = |key: &TopicPartition, retry: bool| -> bool {
        let room = match flights.get(key) {
            None => true,
            Some(flight) => !retry && !flight.retrying && flight.ordinals.len() < settings.in_flight_max,
        };
        room && state
            .metadata
            .leader_address(&key.0, key.1)
            .is_none_or(|leader| !full.contains(leader))
    };
    let queued: Vec<TopicPartition> = state
        .queues
        .iter()
        .filter(|(key, queue)| match queue.front() {
            None => false,
            Some(front) => {
                let retry = front.attempts > 0;
                front.retry_at.is_none_or(|at| at <= now) && may_send(key, retry)
            }
        })
        .map(|(key, _)| key.clone())
        .collect();
    let opened: Vec<TopicPartition> = state
        .open
        .iter()
        .filter(|(key, open)| {
            state.queues.get(*key).is_none_or(|q| q.is_empty())
                && (flushing
                    || open.builder.records_bytes() >= settings.batch_size
                    || now.duration_since(open.created) >= settings.linger)
                && may_send(key, false)
        })
        .map(|(key, _)| key.clone())
        .collect();
    let mut ready = Vec::with_capacity(queued.len() + opened.len());
    for key in queued {
        let sealed = state.queues.get_mut(&key).and_then(|q| q.pop_front()).expect("listed");
        ready.push((key, sealed));
    }
    state.queues.retain(|_, q| !q.is_empty());
    for key in opened {
        let open = state.open.remove(&key).expect("listed");
        let sealed = state.seal(open, settings.batch_size);
        ready.push((key, sealed));
    }
    ready
}

/// InitProducerId: a producer id and epoch before the first send, and an epoch bump (with
/// the current id and epoch, KIP-360) when sequences must start over.
async fn ensure_identity(config: &ClientConfig, state: &Arc<Shared>) -> Result<(), ClientError> {
    let (current, bump) = {
        let s = state.lock();
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
    let mut s = state.lock();
    s.identity = Some(Identity {
        producer_id: response.producer_id,
        epoch: response.producer_epoch,
        next_sequence: BTreeMap::new(),
    });
    s.needs_bump = false;
    Ok(())
}

/// A batch stamped before keeps its stamp, even from an older epoch: it may be in the log
/// already (its answer was lost), and only its first stamp lets the broker recognise the
/// retry as a duplicate. Restamped under a new epoch, it would be appended a second time.
/// The partition's new sequence starts behind it: a retry goes back into its queue in seal
/// order and goes alone, and the bump waited for every request in flight to be answered.
/// (The Java client, too, keeps a partition on its old epoch while such batches are in
/// flight.) A batch the broker refused by sequence has its stamp removed (`complete`), as
/// it is certainly not in the log.
fn stamp_batches(identity: &mut Identity, ready: &mut [(TopicPartition, Sealed)]) {
    for (key, sealed) in ready.iter_mut() {
        if sealed.stamp.is_some() {
            continue;
        }
        let sequence = identity.next_sequence.entry(key.clone()).or_insert(0);
        let base = *sequence;
        *sequence = ((base as i64 + sealed.records_count as i64) % (i32::MAX as i64 + 1)) as i32;
        // Not a copy: the sealed batch's bytes are not shared until it is sent.
        let mut bytes = bytes::BytesMut::from(std::mem::take(&mut sealed.records));
        record::set_producer(&mut bytes, identity.producer_id, identity.epoch, base);
        sealed.records = bytes.freeze();
        sealed.stamp = Some((identity.producer_id, identity.epoch, base));
    }
}

/// A produce request with its records fields empty, and the batches to put in them, in the
/// order the request encodes them (`RequestWriter::write_with_records`).
fn produce_request(settings: &Settings, batches: &[(TopicPartition, Sealed)]) -> (ProduceRequest, Vec<Bytes>) {
    let mut topics: BTreeMap<&str, Vec<(produce_request::PartitionProduceData, Bytes)>> = BTreeMap::new();
    for ((topic, partition), sealed) in batches {
        let data = produce_request::PartitionProduceData {
            index: *partition,
            records: Some(Bytes::new()),
            ..Default::default()
        };
        topics.entry(topic).or_default().push((data, sealed.records.clone()));
    }
    let records = topics.values().flatten().map(|(_, r)| r.clone()).collect();
    let request = ProduceRequest {
        acks: settings.acks,
        timeout_ms: settings.request_timeout_ms,
        topic_data: topics
            .into_iter()
            .map(|(name, partition_data)| produce_request::TopicProduceData {
                name: name.to_string(),
                partition_data: partition_data.into_iter().map(|(data, _)| data).collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    (request, records)
}

/// Settles each batch of an answered request (or, with acks=0, of a request written):
/// acknowledged, back to its queue for a retry, or failed. True if an error says the
/// client's metadata is stale (a leader moved or a partition is unknown).
fn complete(
    settings: &Settings,
    state: &Arc<Shared>,
    flights: &BTreeMap<TopicPartition, Flight>,
    batches: Vec<(TopicPartition, Sealed)>,
    response: Option<ProduceResponse>,
) -> bool {
    let mut answers: BTreeMap<(&str, i32), (i16, i64, i64)> = BTreeMap::new();
    for topic in response.iter().flat_map(|r| &r.responses) {
        for p in &topic.partition_responses {
            answers.insert(
                (topic.name.as_str(), p.index),
                (p.error_code, p.base_offset, p.log_append_time_ms),
            );
        }
    }
    let mut stale = false;
    for (key, sealed) in batches {
        // acks=0: nothing comes back; the records count as sent, at unknown offsets.
        let answer = if response.is_none() {
            Some((0, -1, -1))
        } else {
            answers.get(&(&*key.0, key.1)).copied()
        };
        match answer {
            // DUPLICATE_SEQUENCE_NUMBER: the batch is in the log already (older brokers).
            Some((0 | DUPLICATE_SEQUENCE_NUMBER, base_offset, log_append_time)) => {
                let (n, bytes) = (sealed.records_count as usize, sealed.bytes);
                sealed.outcome.settle(Ok(Acknowledged {
                    base_offset,
                    log_append_time,
                }));
                let mut s = state.lock();
                s.in_flight -= n;
                s.buffered_bytes -= bytes;
                s.recycle(sealed.records, settings.batch_size);
            }
            // The broker refused the batch by its sequence or epoch, so it is not in the
            // log. If an earlier batch of its partition is still unsettled (in flight, or
            // back in the queue after an error), that gap is the likely cause: the batch
            // keeps its stamp and follows the earlier one again. Otherwise the broker's
            // sequence state and ours disagree (it lost batches in a crash, or expired us):
            // bump the epoch and send it again from sequence 0, with a new stamp.
            Some((code @ (OUT_OF_ORDER_SEQUENCE_NUMBER | INVALID_PRODUCER_EPOCH | UNKNOWN_PRODUCER_ID), _, _))
                if settings.idempotent =>
            {
                let mut sealed = sealed;
                let behind = {
                    let s = state.lock();
                    let in_flight = flights
                        .get(&key)
                        .is_some_and(|f| f.ordinals.first().is_some_and(|&o| o < sealed.ordinal));
                    let queued = s
                        .queues
                        .get(&key)
                        .is_some_and(|q| q.front().is_some_and(|b| b.ordinal < sealed.ordinal));
                    in_flight || queued
                };
                if !behind {
                    state.lock().needs_bump = true;
                    sealed.stamp = None;
                }
                retry_or_fail(settings, state, key, sealed, ClientError::Kafka(code, "produce".into()))
            }
            Some((code, _, _)) if retriable(code) => {
                stale |= matches!(code, 3 | 5 | 6);
                retry_or_fail(settings, state, key, sealed, ClientError::Kafka(code, "produce".into()))
            }
            Some((code, _, _)) => fail(
                state,
                sealed,
                ClientError::Kafka(code, format!("produce to {}-{}", key.0, key.1)),
            ),
            None => fail(
                state,
                sealed,
                ClientError::Protocol(format!("no answer for {}-{}", key.0, key.1)),
            ),
        }
    }
    stale
}

/// Puts a batch back into its partition's queue, in seal order, to be sent again after
/// `retry.backoff.ms`; or fails it when its retries or `delivery.timeout.ms` run out.
fn retry_or_fail(
    settings: &Settings,
    state: &Arc<Shared>,
    key: TopicPartition,
    mut sealed: Sealed,
    error: ClientError,
) {
    sealed.attempts += 1;
    let now = clock::monotonic();
    if sealed.attempts > settings.retries
        || now.duration_since(sealed.created) + settings.retry_backoff >= settings.delivery_timeout
    {
        fail(state, sealed, error);
        return;
    }
    sealed.retry_at = Some(now + settings.retry_backoff);
    let mut s = state.lock();
    let queue = s.queues.entry(key).or_default();
    let at = queue
        .iter()
        .position(|b| b.ordinal > sealed.ordinal)
        .unwrap_or(queue.len());
    queue.insert(at, sealed);
}

fn fail(state: &Arc<Shared>, sealed: Sealed, error: ClientError) {
    if sealed.stamp.is_some() {
        // Its sequence may or may not be in the log: the ones after it cannot follow it.
        state.lock().needs_bump = true;
    }
    let (n, bytes) = (sealed.records_count as usize, sealed.bytes);
    sealed.outcome.settle(Err(error.to_string()));
    let mut s = state.lock();
    s.in_flight -= n;
    s.buffered_bytes -= bytes;
}

/// Metadata again for the topics that have records waiting (an open or queued batch). The
/// rest are forgotten, as the Java producer forgets a topic idle for `metadata.max.idle.ms`:
/// the next record for one asks for it the way a new topic's first record does. As the Java
/// producer's metadata requests do, this one lets the broker create a missing topic (when
/// `auto.create.topics.enable` is on), so records waiting for a deleted topic create it
/// again, and a forgotten topic is never created again by another topic's refresh. A topic
/// the answer calls unknown leaves the metadata too: its batches find no leader (and ask
/// again) until it exists or `delivery.timeout.ms` fails them, and no record is placed by
/// a deleted topic's partition count.
async fn refresh_metadata(config: &ClientConfig, state: &Arc<Shared>) {
    let Ok(mut connection) = bootstrap(config).await else {
        return;
    };
    let waiting: BTreeSet<String> = {
        let s = state.lock();
        let queued = s.queues.iter().filter(|(_, q)| !q.is_empty()).map(|(k, _)| k);
        s.open
            .keys()
            .chain(queued)
            .map(|(topic, _)| topic.to_string())
            .collect()
    };
    let topics: Vec<String> = waiting.iter().cloned().collect();
    if let Ok(response) = fetch_metadata(&mut connection, Some(&topics), true).await {
        let metadata = ClusterMetadata::from_response(&response);
        let mut state = state.lock();
        state.metadata.brokers = metadata.brokers;
        let unknown = crate::error::ErrorCode::UnknownTopicOrPartition.code();
        let forgotten: BTreeSet<&str> = response
            .topics
            .iter()
            .filter(|t| t.error_code == unknown)
            .filter_map(|t| t.name.as_deref())
            .collect();
        let keep = |name: &String| waiting.contains(name) && !forgotten.contains(name.as_str());
        state.metadata.topics.retain(|name, _| keep(name));
        state.metadata.topic_ids.retain(|name, _| keep(name));
        state.metadata.topics.extend(metadata.topics);
        state.metadata.topic_ids.extend(metadata.topic_ids);
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
            outcome: Settle::new(("t".into(), 0)),
            created: clock::monotonic(),
            attempts: 0,
            retry_at: None,
            stamp,
            records_count,
            ordinal: 1,
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
            let key: TopicPartition = ("t".into(), 0);
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

    fn test_settings() -> Settings {
        Settings {
            acks: -1,
            batch_size: 16_384,
            linger: Duration::from_millis(5),
            compression: Compression::None,
            retry_backoff: Duration::from_millis(100),
            retries: u32::MAX,
            idempotent: true,
            delivery_timeout: Duration::from_secs(120),
            request_timeout_ms: 30_000,
            max_request_size: 1 << 20,
            buffer_memory: 1 << 25,
            in_flight_max: 3,
        }
    }

    fn with_ordinal(mut batch: Sealed, ordinal: u64) -> Sealed {
        batch.ordinal = ordinal;
        batch
    }

    #[test]
    fn a_batch_refused_by_sequence_loses_its_stamp_unless_an_earlier_batch_is_unsettled() {
        use crate::protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
        // Where an earlier batch (ordinal 1) of the partition is while batch 2's answer
        // comes back.
        #[derive(Clone, Copy, Debug)]
        enum Earlier {
            Settled,
            InFlight,
            Queued,
        }
        // (error code, where the earlier batch is, stamp kept for the retry, bump asked
        // for, metadata called stale)
        let cases: &[(i16, Earlier, bool, bool, bool)] = &[
            (OUT_OF_ORDER_SEQUENCE_NUMBER, Earlier::Settled, false, true, false),
            (INVALID_PRODUCER_EPOCH, Earlier::Settled, false, true, false),
            (UNKNOWN_PRODUCER_ID, Earlier::Settled, false, true, false),
            // The gap before it is the earlier batch's: it follows that one again as it was.
            (OUT_OF_ORDER_SEQUENCE_NUMBER, Earlier::InFlight, true, false, false),
            (OUT_OF_ORDER_SEQUENCE_NUMBER, Earlier::Queued, true, false, false),
            (UNKNOWN_PRODUCER_ID, Earlier::Queued, true, false, false),
            // NOT_LEADER_OR_FOLLOWER and REQUEST_TIMED_OUT: the batch may be in the log.
            // A leader that moved sends the client for new metadata; a timeout does not.
            (6, Earlier::Settled, true, false, true),
            (7, Earlier::Settled, true, false, false),
            (7, Earlier::Queued, true, false, false),
            // UNKNOWN_TOPIC_OR_PARTITION and LEADER_NOT_AVAILABLE: metadata again.
            (3, Earlier::Settled, true, false, true),
            (5, Earlier::Queued, true, false, true),
        ];
        for &(code, earlier, kept, bump, stale) in cases {
            let settings = test_settings();
            let state = Arc::new(Shared::new(State::new()));
            let key: TopicPartition = ("t".into(), 0);
            let mut flights = BTreeMap::new();
            match earlier {
                Earlier::Settled => {}
                Earlier::InFlight => {
                    flights.insert(
                        key.clone(),
                        Flight {
                            ordinals: [1].into(),
                            retrying: false,
                        },
                    );
                }
                Earlier::Queued => {
                    let queue = VecDeque::from([with_ordinal(sealed(1, Some((7, 1, 39))), 1)]);
                    state.lock().queues.insert(key.clone(), queue);
                }
            }
            let response = ProduceResponse {
                responses: vec![TopicProduceResponse {
                    name: key.0.to_string(),
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
            let batch = with_ordinal(sealed(1, Some((7, 1, 40))), 2);
            let got = {
                let stale = complete(&settings, &state, &flights, vec![(key.clone(), batch)], Some(response));
                let s = state.lock();
                let retried = s.queues.get(&key).and_then(|q| q.back()).expect("requeued");
                (retried.ordinal, retried.stamp, s.needs_bump, stale)
            };
            let want_stamp = kept.then_some((7, 1, 40));
            assert_eq!(
                got,
                (2, want_stamp, bump, stale),
                "error {code}, earlier batch {earlier:?}"
            );
        }
    }

    #[test]
    fn a_retry_goes_back_into_its_queue_in_seal_order() {
        // (ordinals queued, ordinal retried, queue after)
        let cases: &[(&[u64], u64, &[u64])] = &[
            (&[], 4, &[4]),
            (&[3, 5], 4, &[3, 4, 5]),
            (&[3, 5], 1, &[1, 3, 5]),
            (&[3, 5], 9, &[3, 5, 9]),
            (&[2, 3, 4], 1, &[1, 2, 3, 4]),
        ];
        for &(queued, retried, want) in cases {
            let settings = test_settings();
            let state = Arc::new(Shared::new(State::new()));
            let key: TopicPartition = ("t".into(), 0);
            let queue = queued.iter().map(|&o| with_ordinal(sealed(1, None), o)).collect();
            state.lock().queues.insert(key.clone(), queue);
            let got: Vec<u64> = {
                let batch = with_ordinal(sealed(1, None), retried);
                retry_or_fail(&settings, &state, key.clone(), batch, ClientError::Kafka(7, "t".into()));
                let s = state.lock();
                s.queues[&key].iter().map(|b| b.ordinal).collect()
            };
            assert_eq!(got, want, "queued {queued:?}, retried {retried}");
        }
    }

    #[test]
    fn take_ready_keeps_each_partition_in_order_and_within_its_limits() {
        struct Case {
            what: &'static str,
            /// Ordinals queued for the partition; a negative one is a retry still in its
            /// backoff, and `attempts` marks the rest as retries or not.
            queued: &'static [i64],
            attempts: u32,
            /// An open batch: its records' bytes and whether it has lingered.
            open: Option<(usize, bool)>,
            /// Ordinals in flight, and whether one is a retry.
            in_flight: &'static [u64],
            retrying: bool,
            leader_full: bool,
            flushing: bool,
            /// The ordinal taken (100 for the open batch, sealed now), if any.
            want: Option<u64>,
        }
        let base = Case {
            what: "",
            queued: &[],
            attempts: 0,
            open: None,
            in_flight: &[],
            retrying: false,
            leader_full: false,
            flushing: false,
            want: None,
        };
        let cases = [
            Case {
                what: "the oldest queued batch",
                queued: &[1, 2],
                want: Some(1),
                ..base
            },
            Case {
                what: "pipelined behind batches in flight",
                queued: &[3],
                in_flight: &[1, 2],
                want: Some(3),
                ..base
            },
            Case {
                what: "in_flight_max reached",
                queued: &[4],
                in_flight: &[1, 2, 3],
                ..base
            },
            Case {
                what: "the leader's connection is full",
                queued: &[1],
                leader_full: true,
                ..base
            },
            Case {
                what: "a retry waits for the partition's flight to land",
                queued: &[2],
                attempts: 1,
                in_flight: &[3],
                ..base
            },
            Case {
                what: "a retry goes when nothing is in flight",
                queued: &[2, 3],
                attempts: 1,
                want: Some(2),
                ..base
            },
            Case {
                what: "a retry in its backoff",
                queued: &[-2],
                attempts: 1,
                ..base
            },
            Case {
                what: "nothing follows a retry in flight",
                queued: &[3],
                in_flight: &[2],
                retrying: true,
                ..base
            },
            Case {
                what: "a full open batch",
                open: Some((16_384, false)),
                want: Some(100),
                ..base
            },
            Case {
                what: "a lingered open batch",
                open: Some((10, true)),
                want: Some(100),
                ..base
            },
            Case {
                what: "an open batch still lingering",
                open: Some((10, false)),
                ..base
            },
            Case {
                what: "an open batch when flushing",
                open: Some((10, false)),
                flushing: true,
                want: Some(100),
                ..base
            },
            Case {
                what: "an open batch behind a queued one",
                queued: &[1],
                open: Some((16_384, true)),
                want: Some(1),
                ..base
            },
            Case {
                what: "an open batch behind a blocked retry",
                queued: &[-1],
                attempts: 1,
                open: Some((16_384, true)),
                ..base
            },
            Case {
                what: "an open batch pipelined",
                open: Some((16_384, true)),
                in_flight: &[1, 2],
                want: Some(100),
                ..base
            },
            Case {
                what: "an open batch past in_flight_max",
                open: Some((16_384, true)),
                in_flight: &[1, 2, 3],
                ..base
            },
        ];
        let settings = test_settings();
        let key: TopicPartition = ("t".into(), 0);
        for case in &cases {
            let now = clock::monotonic() + Duration::from_secs(1);
            let mut state = State::new();
            state.ordinals = 99;
            state.metadata.brokers.insert(1, "leader:9092".into());
            state.metadata.topics.insert("t".into(), [(0, 1)].into());
            state.flushing = case.flushing as usize;
            let queue: VecDeque<Sealed> = case
                .queued
                .iter()
                .map(|&o| {
                    let mut b = with_ordinal(sealed(1, None), o.unsigned_abs());
                    b.attempts = case.attempts;
                    if b.attempts > 0 {
                        let backoff = if o < 0 {
                            Duration::from_millis(50)
                        } else {
                            Duration::ZERO
                        };
                        b.retry_at = Some(now + backoff);
                    }
                    b
                })
                .collect();
            if !queue.is_empty() {
                state.queues.insert(key.clone(), queue);
            }
            if let Some((bytes, lingered)) = case.open {
                let mut builder = RecordBatchBuilder::new(Compression::None);
                builder.append(0, None, Some(&vec![0u8; bytes]), &[]);
                let created = if lingered { now - Duration::from_millis(6) } else { now };
                state.open.insert(
                    key.clone(),
                    Open {
                        builder,
                        bytes,
                        outcome: Settle::new(key.clone()),
                        created,
                    },
                );
            }
            let mut flights = BTreeMap::new();
            if !case.in_flight.is_empty() {
                let flight = Flight {
                    ordinals: case.in_flight.iter().copied().collect(),
                    retrying: case.retrying,
                };
                flights.insert(key.clone(), flight);
            }
            let full: BTreeSet<String> = case
                .leader_full
                .then(|| "leader:9092".to_string())
                .into_iter()
                .collect();
            let ready = take_ready(&settings, &mut state, &flights, &full, now);
            let got: Vec<u64> = ready.iter().map(|(_, b)| b.ordinal).collect();
            assert_eq!(got, case.want.into_iter().collect::<Vec<_>>(), "{}", case.what);
            // Whatever was not taken is still where it was.
            let left = state.queues.get(&key).map_or(0, |q| q.len());
            let taken_from_queue = case.want.is_some_and(|w| w != 100) as usize;
            assert_eq!(left, case.queued.len() - taken_from_queue, "{}: queue", case.what);
            let open_left = state.open.contains_key(&key);
            assert_eq!(
                open_left,
                case.open.is_some() && case.want != Some(100),
                "{}: open batch",
                case.what
            );
        }
    }

    /// A settled batch's buffer goes back to the pool without a copy, unless a request still
    /// holds it, it is far bigger or smaller than a batch, or the pool is full; a new batch
    /// takes it.
    #[test]
    fn a_settled_batch_buffer_is_reused_without_a_copy() {
        let batch_size = 1024;
        let built = |records_bytes: usize| {
            let mut builder = RecordBatchBuilder::with_capacity(Compression::None, records_bytes);
            builder.append(1, None, Some(&vec![7u8; records_bytes]), &[]);
            builder.build().freeze()
        };
        // (the batch's records bytes, a request still holds it, buffers already free, kept)
        let cases = [
            (batch_size, false, 0, true),
            (batch_size, true, 0, false),
            (4 * batch_size, false, 0, false),
            // Smaller than a batch, as a compressed batch's buffer is: it would only grow.
            (batch_size / 4, false, 0, false),
            (batch_size, false, BATCH_BUFFERS_FREE_MAX - 1, true),
            (batch_size, false, BATCH_BUFFERS_FREE_MAX, false),
        ];
        for (records_bytes, held, free, kept) in cases {
            let mut state = State::new();
            state.free_buffers = vec![Vec::new(); free];
            let records = built(records_bytes);
            let at = records.as_ptr();
            let request = held.then(|| records.clone());
            state.recycle(records, batch_size);
            let case = format!("{records_bytes} bytes, held {held}, {free} free");
            assert_eq!(state.free_buffers.len(), free + kept as usize, "{case}");
            if kept {
                let buffer = state.free_buffers.pop().unwrap();
                assert_eq!(buffer.as_ptr(), at, "{case}: the same memory, not a copy");
                let mut builder = RecordBatchBuilder::with_buffer(Compression::None, buffer, batch_size);
                builder.append(2, None, Some(b"v"), &[]);
                let batch = builder.build();
                assert_eq!(batch.as_ptr(), at, "{case}: the new batch is built in it");
                let mut scratch = Vec::new();
                let mut values = Vec::new();
                record::for_each_record(
                    &batch,
                    &record::ValidationLimits {
                        decompressed_bytes_max: 1 << 20,
                    },
                    &mut scratch,
                    |_, r| values.push(r.value.map(<[u8]>::to_vec)),
                )
                .expect("a batch built in a recycled buffer validates");
                assert_eq!(
                    values,
                    vec![Some(b"v".to_vec())],
                    "{case}: nothing of the old batch is left"
                );
            }
            drop(request);
        }
    }

    #[test]
    fn a_batch_settles_every_delivery_at_its_own_offset_and_timestamp() {
        struct Case {
            what: &'static str,
            /// None: the batch is dropped unsettled.
            settled: Option<Result<Acknowledged, String>>,
            /// (offset, timestamp) of each of three records stamped 100, 101, 102.
            expect: Result<[(i64, i64); 3], &'static str>,
        }
        let ack = |base_offset, log_append_time| {
            Some(Ok(Acknowledged {
                base_offset,
                log_append_time,
            }))
        };
        let cases = [
            Case {
                what: "create time",
                settled: ack(40, -1),
                expect: Ok([(40, 100), (41, 101), (42, 102)]),
            },
            Case {
                what: "log append time",
                settled: ack(0, 7),
                expect: Ok([(0, 7), (1, 7), (2, 7)]),
            },
            Case {
                what: "acks=0",
                settled: ack(-1, -1),
                expect: Ok([(-1, 100), (-1, 101), (-1, 102)]),
            },
            Case {
                what: "failed",
                settled: Some(Err("produce: 10".into())),
                expect: Err("produce: 10"),
            },
            Case {
                what: "dropped",
                settled: None,
                expect: Err("the producer stopped"),
            },
        ];
        let waker = Waker::noop();
        for case in cases {
            let settle = Settle::new(("t".into(), 3));
            let mut deliveries: Vec<Delivery> = (0..3).map(|i| settle.delivery(i, 100 + i64::from(i))).collect();
            let other = Settle::new(("t".into(), 3)).delivery(0, 100);
            assert!(
                deliveries.iter().all(|d| d.is_same_batch(&deliveries[0])),
                "{}",
                case.what
            );
            assert!(!other.is_same_batch(&deliveries[0]), "{}", case.what);
            // Polled before the batch settles: pending, and nothing settled yet.
            for d in &mut deliveries {
                assert!(
                    Pin::new(d).poll(&mut Context::from_waker(waker)).is_pending(),
                    "{}",
                    case.what
                );
            }
            assert_eq!(
                settle.0.wakers.lock().unwrap().len(),
                1,
                "one waker for a task, however many of the batch's deliveries it polls: {}",
                case.what
            );
            assert!(deliveries[0].try_settled().is_none(), "{}", case.what);
            match case.settled {
                Some(result) => settle.settle(result),
                None => drop(settle),
            }
            for (i, d) in deliveries.iter_mut().enumerate() {
                let polled = match Pin::new(&mut *d).poll(&mut Context::from_waker(waker)) {
                    Poll::Ready(r) => r,
                    Poll::Pending => panic!("{}: still pending after settling", case.what),
                };
                let looked = d.try_settled().expect("settled");
                for got in [polled, looked] {
                    match (&case.expect, got) {
                        (Ok(expect), Ok(m)) => {
                            assert_eq!((&*m.topic, m.partition), ("t", 3), "{}", case.what);
                            assert_eq!((m.offset, m.timestamp), expect[i], "{}: record {i}", case.what);
                        }
                        (Err(expect), Err(e)) => assert!(e.to_string().contains(expect), "{}: {e}", case.what),
                        (expect, got) => panic!("{}: expected {expect:?}, got {got:?}", case.what),
                    }
                }
            }
        }
    }

    #[test]
    fn settling_a_batch_wakes_the_tasks_awaiting_its_records() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let settle = Settle::new(("t".into(), 0));
            let waiting: Vec<_> = (0..4u32).map(|i| tokio::spawn(settle.delivery(i, 0))).collect();
            // Settled only once every task is waiting on it, so the wake-up is what ends them.
            for _ in 0..1000 {
                if settle.0.wakers.lock().unwrap().len() == 4 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(settle.0.wakers.lock().unwrap().len(), 4, "four tasks waiting");
            settle.settle(Ok(Acknowledged {
                base_offset: 10,
                log_append_time: -1,
            }));
            for (i, task) in waiting.into_iter().enumerate() {
                let m = tokio::time::timeout(Duration::from_secs(10), task)
                    .await
                    .expect("woken")
                    .unwrap()
                    .unwrap();
                assert_eq!(m.offset, 10 + i as i64);
            }
        });
    }
}
