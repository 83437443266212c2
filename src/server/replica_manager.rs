//! The ReplicaManager: the partitions this broker leads, each a UnifiedLog, kept in step
//! with the metadata image. Appends and reads go through it; on a single node the high
//! watermark follows the log end offset, since the ISR is this broker alone.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::BytesMut;
use tokio::sync::Notify;

use crate::config::LogConfig;
use crate::error::{ErrorCode, KafkaError, KafkaResult};
use crate::io::{OpenMode, Storage, StorageFile};
use crate::log::partition_metadata::{self, DirOwner};
use crate::log::{remove_log_dir, LogAppendInfo, LogDirFailureChannel, UnifiedLog};
use crate::metadata::MetadataImage;
use crate::protocol::codec::Uuid;
use crate::record::AppendOrigin;

pub struct Partition<S: Storage> {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    pub leader_epoch: i32,
    pub log: UnifiedLog<S>,
}

/// After an append that rolled the log, syncs the sealed segment in a task of its own
/// (Kafka schedules this flush), so that no request waits for it. An error takes the log
/// directory offline inside the log, where every later request sees it.
fn flush_after_roll<S: Storage>(partition: &Arc<Partition<S>>, info: &LogAppendInfo) {
    if info.rolled {
        let partition = partition.clone();
        tokio::spawn(async move {
            let _ = partition.log.flush_rolled_segments().await;
        });
    }
}

pub struct ReplicaManager<S: Storage> {
    storage: S,
    log_dir: PathBuf,
    node_id: i32,
    defaults: LogConfig,
    failure: Arc<LogDirFailureChannel>,
    partitions: RwLock<BTreeMap<(String, i32), Arc<Partition<S>>>>,
    /// Woken on every append, for fetches waiting for `min_bytes`.
    pub appended: Notify,
}

impl<S: Storage> ReplicaManager<S> {
    pub fn new(
        storage: S,
        log_dir: PathBuf,
        node_id: i32,
        defaults: LogConfig,
        failure: Arc<LogDirFailureChannel>,
    ) -> ReplicaManager<S> {
        ReplicaManager {
            storage,
            log_dir,
            node_id,
            defaults,
            failure,
            partitions: RwLock::new(BTreeMap::new()),
            appended: Notify::new(),
        }
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition<S>>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(topic.to_string(), index))
            .cloned()
    }

    pub fn partitions(&self) -> Vec<Arc<Partition<S>>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Opens the logs of partitions the image gives this broker and deletes those of topics
    /// it no longer has (Kafka's `applyDelta`).
    pub async fn apply(&self, image: &MetadataImage, now_ms: i64) -> KafkaResult<()> {
        let mut wanted = BTreeMap::new();
        for topic in image.topics.values() {
            for (&index, registration) in &topic.partitions {
                if registration.leader == self.node_id {
                    wanted.insert(
                        (topic.name.clone(), index),
                        (topic.topic_id, registration.leader_epoch, topic.configs.clone()),
                    );
                }
            }
        }
        let current: Vec<(String, i32)> = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for key in current {
            let stale = match wanted.get(&key) {
                None => true,
                Some((id, _, _)) => self.partition(&key.0, key.1).is_some_and(|p| p.topic_id != *id),
            };
            if stale {
                let partition = self
                    .partitions
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key)
                    .expect("listed");
                partition.log.delete().await?;
            }
        }
        for ((topic, index), (topic_id, leader_epoch, configs)) in wanted {
            if let Some(partition) = self.partition(&topic, index) {
                // A config change reaches the live log.
                let config = topic_log_config(&self.defaults, &configs)
                    .map_err(|e| KafkaError::new(ErrorCode::InvalidConfig, e))?;
                if *partition.log.config() != config {
                    partition
                        .log
                        .set_config(config)
                        .map_err(|e| KafkaError::new(ErrorCode::InvalidConfig, e))?;
                }
                continue;
            }
            let config =
                topic_log_config(&self.defaults, &configs).map_err(|e| KafkaError::new(ErrorCode::InvalidConfig, e))?;
            let dir = self.log_dir.join(format!("{topic}-{index}"));
            let needs_file = self.claim_dir(&dir, topic_id).await.map_err(|e| {
                let why = format!("claiming {}: {e}", dir.display());
                self.failure.mark_offline(why.clone());
                KafkaError::new(ErrorCode::KafkaStorageError, why)
            })?;
            let log = UnifiedLog::open(self.storage.clone(), &dir, config, self.failure.clone(), now_ms)
                .await
                .map_err(|e| {
                    KafkaError::new(ErrorCode::KafkaStorageError, format!("opening {}: {e}", dir.display()))
                })?;
            if needs_file {
                partition_metadata::write(&self.storage, &dir, topic_id)
                    .await
                    .map_err(|e| {
                        let why = format!("writing {}'s partition.metadata: {e}", dir.display());
                        self.failure.mark_offline(why.clone());
                        KafkaError::new(ErrorCode::KafkaStorageError, why)
                    })?;
            }
            let end = log.log_end_offset().await;
            log.update_high_watermark(end).await;
            let partition = Arc::new(Partition {
                topic: topic.clone(),
                topic_id,
                index,
                leader_epoch,
                log,
            });
            self.partitions
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert((topic, index), partition);
        }
        Ok(())
    }

    /// Makes `dir` fit to hold `topic_id`'s partition: a directory whose `partition.metadata`
    /// names another topic (an earlier topic of the same name whose delete a crash cut
    /// short) is stray, and is removed rather than opened as this topic's log (Kafka's
    /// stray log handling). A directory without the file is taken as this topic's.
    /// Returns whether the directory still needs its `partition.metadata` written.
    async fn claim_dir(&self, dir: &Path, topic_id: Uuid) -> io::Result<bool> {
        match partition_metadata::read(&self.storage, dir).await? {
            DirOwner::Topic(id) if id == topic_id.to_base64() => Ok(false),
            DirOwner::Unknown => Ok(true),
            owner @ (DirOwner::Topic(_) | DirOwner::Unreadable) => {
                eprintln!(
                    "klamm: removing stray partition directory {} ({owner:?}; the topic is now {})",
                    dir.display(),
                    topic_id.to_base64()
                );
                remove_log_dir(&self.storage, dir).await?;
                Ok(true)
            }
        }
    }

    /// At startup, after the first `apply`: removes the partition directories that no
    /// topic of `image` owns, those a delete cut short by a crash left behind (Kafka's
    /// stray logs). A directory is removed only if its `partition.metadata` names a topic
    /// id the image lacks, or if it holds no bytes at all; one without the file that holds
    /// data is kept (it may be an older Klamm's) and reported. Returns what it removed.
    pub async fn remove_stray_dirs(&self, image: &MetadataImage) -> KafkaResult<Vec<String>> {
        let storage_error = |e: io::Error| {
            let why = format!(
                "removing stray partition directories in {}: {e}",
                self.log_dir.display()
            );
            self.failure.mark_offline(why.clone());
            KafkaError::new(ErrorCode::KafkaStorageError, why)
        };
        let mut removed = Vec::new();
        for name in self.storage.list(&self.log_dir).await.map_err(storage_error)? {
            let Some((topic, index)) = name.rsplit_once('-') else {
                continue;
            };
            if index.parse::<i32>().is_err() || topic == crate::metadata::METADATA_TOPIC {
                continue;
            }
            let dir = self.log_dir.join(&name);
            let Ok(names) = self.storage.list(&dir).await else {
                // Not a directory.
                continue;
            };
            let owned = |id: &str| image.topics.get(topic).is_some_and(|t| t.topic_id.to_base64() == id);
            let stray = match partition_metadata::read(&self.storage, &dir).await {
                Ok(DirOwner::Topic(id)) => !owned(&id),
                Ok(DirOwner::Unknown) if !image.topics.contains_key(topic) => {
                    let mut bytes = 0;
                    for file in &names {
                        let len = match self.storage.open(&dir.join(file), OpenMode::Existing).await {
                            Ok(f) => f.len().await.map_err(storage_error)?,
                            Err(_) => 1,
                        };
                        bytes += len;
                    }
                    if bytes > 0 {
                        eprintln!(
                            "klamm: keeping {}: no topic named {topic}, but it holds data and no partition.metadata",
                            dir.display()
                        );
                    }
                    bytes == 0
                }
                _ => false,
            };
            if stray {
                eprintln!("klamm: removing stray partition directory {}", dir.display());
                remove_log_dir(&self.storage, &dir).await.map_err(storage_error)?;
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// Appends a client's batch as the leader; the ISR is this broker, so the high
    /// watermark moves to the log end offset at once.
    pub async fn append(
        &self,
        topic: &str,
        index: i32,
        records: BytesMut,
        now_ms: i64,
    ) -> KafkaResult<(LogAppendInfo, i64)> {
        let partition = self
            .partition(topic, index)
            .ok_or_else(|| KafkaError::new(ErrorCode::UnknownTopicOrPartition, format!("{topic}-{index}")))?;
        if crate::canary::ACK_BEFORE_APPEND {
            let (log_start_offset, _, log_end_offset) = partition.log.offsets().await;
            let predicted = LogAppendInfo {
                first_offset: log_end_offset,
                last_offset: log_end_offset,
                max_timestamp: -1,
                offset_of_max_timestamp: log_end_offset,
                log_append_time: -1,
                records_count: 1,
                segment_base_offset: -1,
                position: 0,
                bytes: 0,
                duplicate: false,
                rolled: false,
            };
            tokio::spawn(async move {
                if let Ok(info) = partition
                    .log
                    .append_as_leader(records, partition.leader_epoch, AppendOrigin::Client, now_ms)
                    .await
                {
                    partition.log.advance_high_watermark(info.last_offset + 1).await;
                }
            });
            return Ok((predicted, log_start_offset));
        }
        let info = partition
            .log
            .append_as_leader(records, partition.leader_epoch, AppendOrigin::Client, now_ms)
            .await?;
        if !info.duplicate {
            partition.log.advance_high_watermark(info.last_offset + 1).await;
            self.appended.notify_waiters();
        }
        flush_after_roll(&partition, &info);
        let log_start_offset = partition.log.log_start_offset().await;
        Ok((info, log_start_offset))
    }

    /// Appends a coordinator's records (the group coordinator's to `__consumer_offsets`):
    /// no producer checks, and the high watermark moves at once, as for a client's.
    pub async fn append_internal(&self, topic: &str, index: i32, records: BytesMut, now_ms: i64) -> KafkaResult<i64> {
        let partition = self
            .partition(topic, index)
            .ok_or_else(|| KafkaError::new(ErrorCode::NotCoordinator, format!("{topic}-{index} is not here")))?;
        let info = partition
            .log
            .append_as_leader(records, partition.leader_epoch, AppendOrigin::Coordinator, now_ms)
            .await?;
        partition.log.advance_high_watermark(info.last_offset + 1).await;
        self.appended.notify_waiters();
        flush_after_roll(&partition, &info);
        Ok(info.last_offset)
    }

    /// Retention and the `flush.ms` policy, for the scheduler.
    pub async fn housekeeping(&self, now_ms: i64) {
        for partition in self.partitions() {
            let _ = partition.log.delete_old_segments(now_ms).await;
            let _ = partition.log.maybe_flush(now_ms).await;
            // A backstop for a flush after a roll that failed to start or was cut short.
            let _ = partition.log.flush_rolled_segments().await;
            partition.log.remove_expired_producers(now_ms).await;
        }
    }

    /// One log cleaner pass over every compacted log; returns the records removed.
    pub async fn clean_logs(&self, now_ms: i64, map_bytes_max: usize) -> u64 {
        let mut removed = 0;
        for partition in self.partitions() {
            if partition.log.config().cleanup_compact {
                if let Ok(stats) = partition.log.clean(now_ms, map_bytes_max).await {
                    removed += stats.records_removed;
                }
            }
        }
        removed
    }

    pub async fn shutdown(&self, now_ms: i64) {
        for partition in self.partitions() {
            let _ = partition.log.close(now_ms).await;
        }
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }
}

/// The topic's log config: the broker defaults overridden by the topic's configs.
pub fn topic_log_config(defaults: &LogConfig, configs: &BTreeMap<String, String>) -> Result<LogConfig, String> {
    let mut config = defaults.clone();
    for (key, value) in configs {
        apply_topic_config(&mut config, key, value)?;
    }
    config.validate()?;
    Ok(config)
}

/// Sets one topic-level key (Kafka's names).
pub fn apply_topic_config(config: &mut LogConfig, key: &str, value: &str) -> Result<(), String> {
    fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
        value
            .parse()
            .map_err(|_| format!("Invalid value {value} for configuration {key}"))
    }
    match key {
        "segment.bytes" => config.segment_bytes = num(key, value)?,
        "segment.ms" => config.segment_ms = num(key, value)?,
        "segment.index.bytes" => config.segment_index_bytes = num(key, value)?,
        "index.interval.bytes" => config.index_interval_bytes = num(key, value)?,
        "retention.ms" => config.retention_ms = num(key, value)?,
        "retention.bytes" => config.retention_bytes = num(key, value)?,
        "flush.messages" => config.flush_messages = num(key, value)?,
        "flush.ms" => config.flush_ms = num(key, value)?,
        "max.message.bytes" => config.max_message_bytes = num(key, value)?,
        "message.timestamp.type" => {
            config.message_timestamp_type = match value {
                "CreateTime" => crate::record::TimestampType::CreateTime,
                "LogAppendTime" => crate::record::TimestampType::LogAppendTime,
                _ => return Err(format!("Invalid value {value} for configuration {key}")),
            }
        }
        "message.timestamp.before.max.ms" => config.message_timestamp_before_max_ms = num(key, value)?,
        "message.timestamp.after.max.ms" => config.message_timestamp_after_max_ms = num(key, value)?,
        "cleanup.policy" => config.set_cleanup_policy(value)?,
        "delete.retention.ms" => config.delete_retention_ms = num(key, value)?,
        "min.compaction.lag.ms" => config.min_compaction_lag_ms = num(key, value)?,
        "min.cleanable.dirty.ratio" => config.min_cleanable_dirty_ratio = num(key, value)?,
        // Accepted only where this broker does what they ask.
        "compression.type" if value == "producer" => {}
        "min.insync.replicas" if value == "1" => {}
        "unclean.leader.election.enable" if value == "true" || value == "false" => {}
        "compression.type" | "min.insync.replicas" => {
            return Err(format!(
                "{key}={value} is not supported yet (recompression and replication arrive later)"
            ))
        }
        _ => return Err(format!("Unknown topic config name: {key}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{DiskFaults, SimStorage};
    use crate::metadata::{PartitionRegistration, TopicImage};
    use crate::record::{Compression, RecordBatchBuilder};

    fn batch() -> BytesMut {
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.append(0, None, Some(&[b'v'; 300]), &[]);
        b.build()
    }

    fn image_with(topic_id: Uuid) -> MetadataImage {
        let mut image = MetadataImage::default();
        let registration = PartitionRegistration {
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
        };
        image.topics.insert(
            "t".into(),
            TopicImage {
                name: "t".into(),
                topic_id,
                partitions: BTreeMap::from([(0, registration)]),
                configs: BTreeMap::new(),
            },
        );
        image
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    }

    fn manager_on(storage: &SimStorage) -> ReplicaManager<SimStorage> {
        ReplicaManager::new(
            storage.clone(),
            PathBuf::from("data"),
            1,
            LogConfig::default(),
            LogDirFailureChannel::new(),
        )
    }

    /// A broker's life before the restart a case is about: topic `t` (id 7) with
    /// `records` records in `data/t-0`, flushed; `partition.metadata` removed if
    /// `file_gone`.
    async fn leave_directory(storage: &SimStorage, records: usize, file_gone: bool) -> &'static Path {
        let first = manager_on(storage);
        first.apply(&image_with(Uuid([7; 16])), 0).await.unwrap();
        for _ in 0..records {
            first.append("t", 0, batch(), 0).await.unwrap();
        }
        first.partition("t", 0).unwrap().log.flush(0).await.unwrap();
        let dir = Path::new("data/t-0");
        if file_gone {
            storage
                .remove(&dir.join(partition_metadata::PARTITION_METADATA_FILE_NAME))
                .await
                .unwrap();
        }
        dir
    }

    /// A broker that starts on a directory of topic `t` (the delete of an earlier `t` cut
    /// short by a crash, or a plain restart) opens it as the image's `t` only if its
    /// `partition.metadata` names that topic's id, or names none (written by a Klamm before
    /// the file existed); otherwise the directory is stray and removed.
    #[test]
    fn a_partition_directory_is_opened_only_for_the_topic_it_names() {
        // (what, the topic id at the restart, whether partition.metadata is gone, whether
        // the records are kept)
        let cases = [
            ("a restart", Uuid([7; 16]), false, true),
            ("a recreated topic over a stray directory", Uuid([8; 16]), false, false),
            ("a directory from before partition.metadata", Uuid([8; 16]), true, true),
        ];
        for (what, restart_id, file_gone, kept) in cases {
            runtime().block_on(async {
                let storage = SimStorage::new(5, DiskFaults::none());
                let dir = leave_directory(&storage, 3, file_gone).await;
                let second = manager_on(&storage);
                second.apply(&image_with(restart_id), 0).await.unwrap();
                let end = second.partition("t", 0).unwrap().log.log_end_offset().await;
                assert_eq!(end, if kept { 3 } else { 0 }, "{what}");
                assert_eq!(
                    partition_metadata::read(&storage, dir).await.unwrap(),
                    DirOwner::Topic(restart_id.to_base64()),
                    "{what}"
                );
            });
        }
    }

    /// At startup, a partition directory no topic of the image owns is removed if its
    /// `partition.metadata` names another topic or it holds nothing; one without the file
    /// that holds data is kept.
    #[test]
    fn stray_partition_directories_are_removed_at_startup() {
        // (what, the image at the restart, whether partition.metadata is gone, whether the
        // first segment is emptied, whether the directory stays)
        let cases = [
            ("the topic's own directory", Some(Uuid([7; 16])), false, false, true),
            ("a deleted topic's directory", None, false, false, false),
            (
                "a recreated topic's old directory",
                Some(Uuid([8; 16])),
                false,
                false,
                false,
            ),
            ("an empty directory without the file", None, true, true, false),
            ("data without the file", None, true, false, true),
        ];
        for (what, topic_id, file_gone, emptied, stays) in cases {
            runtime().block_on(async {
                let storage = SimStorage::new(5, DiskFaults::none());
                let dir = leave_directory(&storage, if emptied { 0 } else { 1 }, file_gone).await;
                if emptied {
                    // What a crash between the directory's creation and its first write
                    // leaves: files of no length.
                    for name in storage.list(dir).await.unwrap() {
                        let file = storage.open(&dir.join(&name), OpenMode::Existing).await.unwrap();
                        file.truncate(0).await.unwrap();
                    }
                }
                let image = topic_id.map(image_with).unwrap_or_default();
                let second = manager_on(&storage);
                // A recreated topic's apply removes its old directory itself; the scan
                // runs after it, as at a broker's start.
                second.apply(&image, 0).await.unwrap();
                let removed = second.remove_stray_dirs(&image).await.unwrap();
                let present = storage
                    .list(Path::new("data"))
                    .await
                    .unwrap()
                    .contains(&"t-0".to_string());
                if topic_id.is_some() {
                    assert!(
                        removed.is_empty() && present,
                        "{what}: the image's topic keeps a directory"
                    );
                    let end = second.partition("t", 0).unwrap().log.log_end_offset().await;
                    assert_eq!(end == 1, stays, "{what}: log end offset {end}");
                } else {
                    assert_eq!(present, stays, "{what}: removed {removed:?}");
                }
            });
        }
    }

    /// An append that rolls the log starts the sealed segment's flush in a task of its
    /// own: the recovery point reaches the new segment with no housekeeping pass, and the
    /// append did not wait for it.
    #[test]
    fn an_append_that_rolls_flushes_the_sealed_segment_in_the_background() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let defaults = LogConfig {
                segment_bytes: 1024,
                message_timestamp_after_max_ms: i64::MAX,
                ..LogConfig::default()
            };
            let manager = ReplicaManager::new(
                SimStorage::new(5, DiskFaults::none()),
                PathBuf::from("data"),
                1,
                defaults,
                LogDirFailureChannel::new(),
            );
            manager.apply(&image_with(Uuid([7; 16])), 0).await.unwrap();
            let partition = manager.partition("t", 0).unwrap();
            let mut rolled = None;
            for _ in 0..10 {
                let (info, _) = manager.append("t", 0, batch(), 0).await.unwrap();
                if info.rolled {
                    rolled = Some(info.segment_base_offset);
                    break;
                }
            }
            let rolled = rolled.expect("a 1 KiB segment rolls within 10 batches of 300 bytes");
            assert_eq!(partition.log.recovery_point().await, 0, "the append did not sync");
            for _ in 0..100 {
                if partition.log.recovery_point().await == rolled {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            panic!(
                "the sealed segment was not flushed; recovery point {}",
                partition.log.recovery_point().await
            );
        });
    }
}
