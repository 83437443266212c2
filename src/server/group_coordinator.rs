//! The shell around the group coordinator's shards: it creates `__consumer_offsets`, loads
//! a shard by replaying its partition, appends the records a handler returns, replays them,
//! releases the replies, and runs the shards' timers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, Mutex, MutexGuard, Notify};

use super::{clock, Broker};
use crate::error::{ErrorCode, KafkaError, KafkaResult};
use crate::group::{
    partition_for, Effects, GroupConfig, GroupCoordinatorShard, GroupRecord, Reply, RequestId, TopicsImage,
    OFFSETS_TOPIC,
};
use crate::io::Storage;
use crate::metadata::TopicSpec;
use crate::record::{self, BatchFrames, Compression, RecordBatchBuilder, ValidationLimits};

/// Records one coordinator write appends, at most (a DeleteGroups of a group with many
/// offsets is split into batches of this many).
const RECORDS_PER_BATCH_MAX: usize = 1_000;
/// A timer loop sleeps at most this long between looks at the shards.
const TIMER_SLEEP_MS_MAX: i64 = 1_000;

pub struct GroupCoordinator {
    pub config: GroupConfig,
    /// `offsets.topic.num.partitions`
    pub partitions: i32,
    /// `offsets.retention.check.interval.ms`
    pub retention_check_interval_ms: i64,
    shards: Vec<Mutex<Option<GroupCoordinatorShard>>>,
    replies: StdMutex<HashMap<RequestId, oneshot::Sender<Reply>>>,
    next_request: AtomicU64,
    topic_ready: AtomicBool,
    /// Woken when a handler may have set an earlier deadline.
    wake: Notify,
}

/// A shard, loaded and locked for one handler.
pub type ShardGuard<'a> = MutexGuard<'a, Option<GroupCoordinatorShard>>;

impl GroupCoordinator {
    pub fn new(config: GroupConfig, partitions: i32, retention_check_interval_ms: i64) -> GroupCoordinator {
        assert!(partitions > 0);
        GroupCoordinator {
            config,
            partitions,
            retention_check_interval_ms,
            shards: (0..partitions).map(|_| Mutex::new(None)).collect(),
            replies: StdMutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            topic_ready: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.partitions)
    }

    /// A request id whose reply arrives on the receiver.
    pub fn register(&self) -> (RequestId, oneshot::Receiver<Reply>) {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.replies.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        (id, rx)
    }

    pub fn forget(&self, id: RequestId) {
        self.replies.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    fn release(&self, replies: Vec<(RequestId, Reply)>) {
        let mut waiting = self.replies.lock().unwrap_or_else(|e| e.into_inner());
        for (id, reply) in replies {
            if let Some(tx) = waiting.remove(&id) {
                let _ = tx.send(reply);
            }
        }
    }
}

impl<S: Storage> Broker<S> {
    /// Creates `__consumer_offsets` if it does not exist yet, as Kafka does on the first
    /// FindCoordinator: compacted (`cleanup.policy=compact`), so that the log cleaner keeps
    /// the last record of each group, member and offset, with `offsets.topic.segment.bytes`
    /// segments. Every record the shards write is keyed so that replaying the compacted
    /// log gives the same state (the group_coordinator fuzz target checks it).
    pub async fn ensure_offsets_topic(&self) -> KafkaResult<()> {
        let groups = &self.groups;
        if groups.topic_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        if !self.image().topics.values().any(|t| t.name == OFFSETS_TOPIC) {
            let spec = TopicSpec {
                name: OFFSETS_TOPIC.to_string(),
                num_partitions: groups.partitions,
                replication_factor: 1,
                configs: vec![
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    (
                        "segment.bytes".to_string(),
                        self.config.offsets_topic_segment_bytes.to_string(),
                    ),
                ],
            };
            let results = self.create_topics(&[spec], false).await?;
            if let Some(r) = results.first() {
                if r.error != ErrorCode::None && r.error != ErrorCode::TopicAlreadyExists {
                    return Err(KafkaError::new(r.error, r.message.clone().unwrap_or_default()));
                }
            }
        }
        groups.topic_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// The shard that owns `group_id`, loaded (replayed from its partition) and locked.
    pub async fn group_shard(&self, group_id: &str) -> KafkaResult<(i32, ShardGuard<'_>)> {
        self.ensure_offsets_topic().await?;
        let partition = self.groups.partition_for(group_id);
        let guard = self.load_group_shard(partition).await?;
        Ok((partition, guard))
    }

    /// Shard `partition`, loaded and locked.
    pub async fn load_group_shard(&self, partition: i32) -> KafkaResult<ShardGuard<'_>> {
        let mut guard = self.groups.shards[partition as usize].lock().await;
        if guard.is_some() {
            return Ok(guard);
        }
        let now = clock::now_ms();
        let log = self.replicas.partition(OFFSETS_TOPIC, partition).ok_or_else(|| {
            KafkaError::new(
                ErrorCode::NotCoordinator,
                format!("{OFFSETS_TOPIC}-{partition} is not here"),
            )
        })?;
        let mut shard = GroupCoordinatorShard::new(self.groups.config.clone(), partition);
        let limits = ValidationLimits {
            decompressed_bytes_max: 64 << 20,
        };
        let mut scratch = Vec::new();
        let mut offset = log.log.log_start_offset().await;
        let end = log.log.high_watermark().await;
        while offset < end {
            let info = log.log.read(offset, 1 << 20, Some(end), true).await?;
            if info.records.is_empty() {
                break;
            }
            for (_, header, batch) in BatchFrames::new(&info.records) {
                let mut failed = None;
                record::for_each_record(batch, &limits, &mut scratch, |o, r| {
                    let key = Bytes::copy_from_slice(r.key.unwrap_or_default());
                    let value = r.value.map(Bytes::copy_from_slice);
                    match GroupRecord::decode(key, value) {
                        Ok(record) => shard.replay(&record, now),
                        Err(e) => failed = Some(format!("{OFFSETS_TOPIC}-{partition} offset {o}: {e}")),
                    }
                })?;
                if let Some(why) = failed {
                    return Err(KafkaError::new(ErrorCode::CorruptMessage, why));
                }
                offset = header.next_offset();
            }
        }
        if let Err(why) = shard.check_invariants() {
            return Err(KafkaError::new(ErrorCode::CorruptMessage, why));
        }
        *guard = Some(shard);
        self.groups.wake.notify_one();
        Ok(guard)
    }

    /// Appends a handler's records to the shard's partition, replays them, and releases its
    /// replies. If the append fails the shard is unloaded (it reloads from the log), every
    /// reply it owed fails, and the error comes back.
    pub async fn group_commit(&self, partition: i32, guard: &mut ShardGuard<'_>, effects: Effects) -> KafkaResult<()> {
        let now = clock::now_ms();
        let mut result = Ok(());
        for chunk in effects.records.chunks(RECORDS_PER_BATCH_MAX) {
            let mut builder = RecordBatchBuilder::new(Compression::None);
            for r in chunk {
                let (key, value) = r.encode();
                builder.append(now, Some(&key), value.as_deref(), &[]);
            }
            if let Err(e) = self
                .replicas
                .append_internal(OFFSETS_TOPIC, partition, builder.build(), now)
                .await
            {
                result = Err(e);
                break;
            }
            let shard = guard.as_mut().expect("a loaded shard");
            for r in chunk {
                shard.replay(r, now);
            }
        }
        match result {
            Ok(()) => {
                if let Some(shard) = guard.as_ref() {
                    debug_assert!(shard.check_invariants().is_ok());
                }
                self.groups.release(effects.replies);
                self.groups.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                let mut failed: Vec<(RequestId, Reply)> = effects
                    .replies
                    .into_iter()
                    .map(|(id, reply)| (id, failed_reply(reply)))
                    .collect();
                if let Some(mut shard) = guard.take() {
                    failed.extend(shard.unload());
                }
                self.groups.release(failed);
                Err(e)
            }
        }
    }

    /// The shards' timers: sleeps until the earliest deadline (or a wake-up), then ticks
    /// every loaded shard that is due, and expires offsets every
    /// `offsets.retention.check.interval.ms`.
    pub async fn run_group_timers(self: Arc<Self>) {
        let mut next_expiry = clock::now_ms() + self.groups.retention_check_interval_ms;
        loop {
            let now = clock::now_ms();
            let mut next = now + TIMER_SLEEP_MS_MAX;
            for partition in 0..self.groups.partitions {
                let mut guard = self.groups.shards[partition as usize].lock().await;
                let Some(shard) = guard.as_mut() else {
                    continue;
                };
                let mut effects = Effects::default();
                if shard.next_deadline().is_some_and(|d| d <= now) {
                    effects = shard.tick(now);
                }
                if now >= next_expiry {
                    effects.records.extend(shard.expire_offsets(now));
                }
                if !effects.records.is_empty() || !effects.replies.is_empty() {
                    // An error here has unloaded the shard; its members find out.
                    let _ = self.group_commit(partition, &mut guard, effects).await;
                }
                if let Some(d) = guard.as_ref().and_then(|s| s.next_deadline()) {
                    next = next.min(d);
                }
            }
            if now >= next_expiry {
                next_expiry = now + self.groups.retention_check_interval_ms;
            }
            let wait = (next - clock::now_ms()).clamp(1, TIMER_SLEEP_MS_MAX);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = self.groups.wake.notified() => {}
            }
        }
    }

    /// Topic names with their ids and partition counts, for KIP-848 assignments.
    pub fn topics_image(&self) -> TopicsImage {
        self.image()
            .topics
            .values()
            .filter(|t| t.name != OFFSETS_TOPIC)
            .map(|t| (t.name.clone(), (t.topic_id, t.partitions.len() as i32)))
            .collect()
    }
}

fn failed_reply(reply: Reply) -> Reply {
    match reply {
        Reply::Join(_) => Reply::Join(crate::protocol::messages::JoinGroupResponse {
            error_code: ErrorCode::NotCoordinator.code(),
            generation_id: -1,
            protocol_name: Some(String::new()),
            ..Default::default()
        }),
        Reply::Sync(_) => Reply::Sync(crate::protocol::messages::SyncGroupResponse {
            error_code: ErrorCode::NotCoordinator.code(),
            ..Default::default()
        }),
    }
}

impl<S: Storage> Broker<S> {
    /// The invariants of every loaded shard that is not busy, for the simulator's monitor
    /// (it reads; it never waits on a shard).
    pub fn check_group_invariants(&self) -> Result<(), String> {
        for shard in &self.groups.shards {
            if let Ok(guard) = shard.try_lock() {
                if let Some(shard) = guard.as_ref() {
                    shard.check_invariants()?;
                }
            }
        }
        Ok(())
    }
}
