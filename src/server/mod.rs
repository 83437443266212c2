//! The shell: the broker process. It owns the sockets, the tasks and the clock, and drives
//! the cores: the metadata log and image with the QuorumController, and the ReplicaManager.
//! The same shell runs on tokio in production and under madsim in simulation.

pub mod clock;
pub mod config;
pub mod group_coordinator;
mod group_handlers;
mod handlers;
mod network;
pub mod replica_manager;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::Mutex;

use crate::config::LogConfig;
use crate::error::{ErrorCode, KafkaError, KafkaResult};
use crate::io::{create_dir_all_durably, read_to_end, write_atomically, Storage};
use crate::log::{LogDirFailureChannel, UnifiedLog};
use crate::metadata::{decode_record, encode_record, MetadataImage, MetadataRecord, QuorumController, METADATA_TOPIC};
use crate::protocol::codec::Uuid;
use crate::record::{self, AppendOrigin, BatchFrames, Compression, RecordBatchBuilder, ValidationLimits};
pub use config::ServerConfig;
pub use network::serve;
use replica_manager::ReplicaManager;

/// Metadata records in one batch, at most.
const METADATA_RECORDS_PER_BATCH_MAX: usize = 10_000;

pub struct Broker<S: Storage> {
    pub config: ServerConfig,
    pub cluster_id: String,
    storage: S,
    metadata_log: UnifiedLog<S>,
    image: RwLock<Arc<MetadataImage>>,
    controller: QuorumController,
    /// Serialises controller writes: read the image, append records, replay them.
    controller_lock: Mutex<()>,
    pub replicas: ReplicaManager<S>,
    pub failure: Arc<LogDirFailureChannel>,
    /// The block of producer ids this broker hands out: `(next, end)`.
    producer_ids: Mutex<(i64, i64)>,
    /// The group coordinator's shards, one per `__consumer_offsets` partition.
    pub groups: group_coordinator::GroupCoordinator,
}

impl<S: Storage> Broker<S> {
    /// Opens the log directory, replays the metadata log into the image, registers this
    /// broker and opens the partitions it leads.
    pub async fn start(config: ServerConfig, storage: S) -> KafkaResult<Arc<Broker<S>>> {
        let now = clock::now_ms();
        let log_dir = config.log_dirs[0].clone();
        let failure = LogDirFailureChannel::new();
        // The log directory must survive a power loss, or the next start would find an empty
        // disk and make a new cluster (found by the simulator, seed 1 of power_loss).
        create_dir_all_durably(&storage, &log_dir)
            .await
            .map_err(storage_error)?;
        let cluster_id = load_cluster_id(&storage, &log_dir, config.node_id, now)
            .await
            .map_err(storage_error)?;
        let metadata_config = LogConfig {
            flush_messages: 1,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let metadata_dir = log_dir.join(format!("{METADATA_TOPIC}-0"));
        let metadata_log = UnifiedLog::open(storage.clone(), &metadata_dir, metadata_config, failure.clone(), now)
            .await
            .map_err(storage_error)?;
        let image = replay_metadata(&metadata_log).await?;
        let controller = QuorumController {
            node_id: config.node_id,
            num_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
        };
        let replicas = ReplicaManager::new(
            storage.clone(),
            log_dir,
            config.node_id,
            config.log.clone(),
            failure.clone(),
        );
        let groups = group_coordinator::GroupCoordinator::new(
            config.group.clone(),
            config.offsets_topic_partitions,
            config.offsets_retention_check_interval_ms,
        );
        let broker = Arc::new(Broker {
            groups,
            config,
            cluster_id,
            storage,
            metadata_log,
            image: RwLock::new(Arc::new(image)),
            controller,
            controller_lock: Mutex::new(()),
            replicas,
            failure,
            producer_ids: Mutex::new((0, 0)),
        });
        let registration = {
            let image = broker.image();
            broker.controller.register_broker(
                &image,
                &broker.config.advertised_host,
                broker.config.advertised_port as i32,
                now,
            )
        };
        if let Some(record) = registration {
            let _guard = broker.controller_lock.lock().await;
            broker.commit(vec![record], now).await?;
        }
        broker.replicas.apply(&broker.image(), now).await?;
        broker.replicas.remove_stray_dirs(&broker.image()).await?;
        Ok(broker)
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Appends records to the metadata log (synced: a one-voter quorum commits on its own
    /// sync), replays them into a new image and applies it. The caller holds the
    /// controller lock.
    async fn commit(&self, records: Vec<MetadataRecord>, now_ms: i64) -> KafkaResult<()> {
        for chunk in records.chunks(METADATA_RECORDS_PER_BATCH_MAX) {
            let mut builder = RecordBatchBuilder::new(Compression::None);
            for r in chunk {
                builder.append(now_ms, None, Some(&encode_record(r)), &[]);
            }
            let info = self
                .metadata_log
                .append_as_leader(builder.build(), 0, AppendOrigin::Coordinator, now_ms)
                .await?;
            self.metadata_log.update_high_watermark(info.last_offset + 1).await;
            if info.rolled {
                // The metadata log is small and synced on every append; its rolled
                // segments are flushed here, on the controller's own path.
                self.metadata_log.flush_rolled_segments().await?;
            }
            let mut image = (*self.image()).clone();
            for (i, r) in chunk.iter().enumerate() {
                image.replay(r, info.first_offset + i as i64);
            }
            *self.image.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(image);
        }
        self.replicas.apply(&self.image(), now_ms).await
    }

    /// A producer id no one else has: from this broker's block, taking a new block from the
    /// controller (a committed ProducerIds record) when it runs out. Ids of a block that a
    /// restart abandons are never used.
    pub async fn next_producer_id(&self) -> KafkaResult<i64> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let now = clock::now_ms();
            let _guard = self.controller_lock.lock().await;
            let image = self.image();
            let epoch = image
                .brokers
                .get(&self.config.node_id)
                .map(|b| b.broker_epoch)
                .unwrap_or(-1);
            let (record, (first, count)) = self
                .controller
                .allocate_producer_ids(&image, self.config.node_id, epoch)?;
            self.commit(vec![record], now).await?;
            *block = (first, first + count);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// Creates topics through the controller; `validate_only` checks without creating.
    pub async fn create_topics(
        &self,
        specs: &[crate::metadata::TopicSpec],
        validate_only: bool,
    ) -> KafkaResult<Vec<crate::metadata::CreateTopicResult>> {
        let now = clock::now_ms();
        let _guard = self.controller_lock.lock().await;
        let image = self.image();
        let defaults = self.config.log.clone();
        let offset = image.offset;
        let cluster = self.cluster_id.clone();
        let (records, results) = self.controller.create_topics(
            &image,
            specs,
            |i| topic_id(&cluster, &specs[i].name, offset, now),
            validate_only,
            |key, value| {
                let mut config = defaults.clone();
                replica_manager::apply_topic_config(&mut config, key, value)?;
                config.validate()
            },
        );
        if !records.is_empty() {
            self.commit(records, now).await?;
        }
        Ok(results)
    }

    pub async fn delete_topics(&self, names: &[String]) -> KafkaResult<Vec<(String, Uuid, ErrorCode)>> {
        let now = clock::now_ms();
        let _guard = self.controller_lock.lock().await;
        let (records, results) = self.controller.delete_topics(&self.image(), names);
        if !records.is_empty() {
            self.commit(records, now).await?;
        }
        Ok(results)
    }

    pub async fn create_partitions(
        &self,
        requests: &[(String, i32)],
        validate_only: bool,
    ) -> KafkaResult<Vec<(String, ErrorCode, Option<String>)>> {
        let now = clock::now_ms();
        let _guard = self.controller_lock.lock().await;
        let (records, results) = self
            .controller
            .create_partitions(&self.image(), requests, validate_only);
        if !records.is_empty() {
            self.commit(records, now).await?;
        }
        Ok(results)
    }

    /// Sets or deletes topic configs through the controller; live logs take the new config.
    pub async fn alter_topic_configs(
        &self,
        changes: &[(String, Vec<(String, Option<String>)>)],
        validate_only: bool,
    ) -> KafkaResult<Vec<(String, ErrorCode, Option<String>)>> {
        let now = clock::now_ms();
        let _guard = self.controller_lock.lock().await;
        let defaults = self.config.log.clone();
        let (records, results) =
            self.controller
                .alter_topic_configs(&self.image(), changes, validate_only, |configs| {
                    replica_manager::topic_log_config(&defaults, configs).map(|_| ())
                });
        if !records.is_empty() {
            self.commit(records, now).await?;
        }
        Ok(results)
    }

    /// Retention, flushes by time: runs every `log.retention.check.interval.ms`.
    pub async fn run_housekeeping(self: Arc<Self>) {
        let interval = std::time::Duration::from_millis(self.config.log_retention_check_interval_ms.max(1));
        loop {
            tokio::time::sleep(interval).await;
            self.replicas.housekeeping(clock::now_ms()).await;
        }
    }

    /// The log cleaner: a pass over every compacted log each `log.cleaner.backoff.ms`
    /// (Kafka's one cleaner thread), if `log.cleaner.enable`.
    pub async fn run_log_cleaner(self: Arc<Self>) {
        if !self.config.log_cleaner_enable {
            return;
        }
        let backoff = std::time::Duration::from_millis(self.config.log_cleaner_backoff_ms.max(1));
        loop {
            tokio::time::sleep(backoff).await;
            self.replicas
                .clean_logs(clock::now_ms(), self.config.log_cleaner_dedupe_buffer_bytes)
                .await;
        }
    }

    /// Clean shutdown: flush every log and write its checkpoint.
    pub async fn shutdown(&self) {
        let now = clock::now_ms();
        self.replicas.shutdown(now).await;
        let _ = self.metadata_log.close(now).await;
    }

    /// The log directory went offline after an I/O error (KAFKA_STORAGE_ERROR from then on).
    pub fn is_offline(&self) -> bool {
        self.failure.is_offline()
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    pub fn log_dir(&self) -> &Path {
        self.replicas.log_dir()
    }
}

/// The broker process once its config is read, as `klamm server` and the simulator run it:
/// start the broker on `storage`, serve `listener`, run housekeeping, and when `shutdown`
/// resolves stop serving and shut down cleanly. `started` sees the broker once it serves.
/// If the log directory goes offline (an I/O error), the broker stops at once, as Kafka
/// halts a broker whose log directories have all failed, and `run` returns the error.
pub async fn run<S: Storage>(
    config: ServerConfig,
    storage: S,
    listener: tokio::net::TcpListener,
    started: impl FnOnce(&Arc<Broker<S>>),
    shutdown: impl std::future::Future<Output = ()>,
) -> KafkaResult<()> {
    let broker = Broker::start(config, storage).await?;
    started(&broker);
    let housekeeping = tokio::spawn(broker.clone().run_housekeeping());
    let timers = tokio::spawn(broker.clone().run_group_timers());
    let cleaner = tokio::spawn(broker.clone().run_log_cleaner());
    let serving = tokio::spawn(serve(broker.clone(), listener));
    let failed = tokio::select! {
        _ = shutdown => false,
        _ = broker.failure.offline() => true,
    };
    serving.abort();
    housekeeping.abort();
    timers.abort();
    cleaner.abort();
    if failed {
        let why = broker.failure.reason().unwrap_or_default();
        return Err(KafkaError::new(
            ErrorCode::KafkaStorageError,
            format!("the log directory {} failed: {why}", broker.log_dir().display()),
        ));
    }
    broker.shutdown().await;
    Ok(())
}

async fn replay_metadata<S: Storage>(log: &UnifiedLog<S>) -> KafkaResult<MetadataImage> {
    let mut image = MetadataImage::default();
    let mut offset = log.log_start_offset().await;
    let end = log.log_end_offset().await;
    log.update_high_watermark(end).await;
    let limits = ValidationLimits {
        decompressed_bytes_max: 64 << 20,
    };
    let mut scratch = Vec::new();
    while offset < end {
        let info = log.read(offset, 1 << 20, None, true).await?;
        for (_, header, batch) in BatchFrames::new(&info.records) {
            let mut failed = None;
            record::for_each_record(batch, &limits, &mut scratch, |o, r| {
                match decode_record(Bytes::copy_from_slice(r.value.unwrap_or_default())) {
                    Ok(record) => image.replay(&record, o),
                    Err(e) => failed = Some(format!("metadata record at offset {o}: {e}")),
                }
            })?;
            if let Some(why) = failed {
                return Err(KafkaError::new(ErrorCode::CorruptMessage, why));
            }
            offset = header.next_offset();
        }
    }
    Ok(image)
}

/// `meta.properties`, as Kafka keeps it: the cluster id and node id of this log directory.
async fn load_cluster_id<S: Storage>(
    storage: &S,
    log_dir: &Path,
    node_id: i32,
    now_ms: i64,
) -> std::io::Result<String> {
    let path: PathBuf = log_dir.join("meta.properties");
    if let Ok(text) = read_to_end(storage, &path, 4096).await {
        let text = String::from_utf8_lossy(&text).into_owned();
        let get = |key: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|v| v.strip_prefix('='))
                    .map(str::to_string)
            })
        };
        if let (Some(cluster), Some(node)) = (get("cluster.id"), get("node.id")) {
            if node != node_id.to_string() {
                return Err(std::io::Error::other(format!(
                    "{} belongs to node.id {node}, not {node_id}",
                    path.display()
                )));
            }
            return Ok(cluster);
        }
    }
    let cluster = topic_id("klamm", &log_dir.display().to_string(), node_id as i64, now_ms).to_base64();
    let text = format!("version=1\ncluster.id={cluster}\nnode.id={node_id}\n");
    write_atomically(storage, &path, Bytes::from(text)).await?;
    Ok(cluster)
}

/// A topic id that is unique per (cluster, name, metadata offset, time): a 128-bit mix.
fn topic_id(cluster: &str, name: &str, offset: i64, now_ms: i64) -> Uuid {
    let mut h1: u64 = 0xcbf2_9ce4_8422_2325;
    let mut h2: u64 = 0x8422_2325_cbf2_9ce4;
    for b in cluster
        .bytes()
        .chain([0])
        .chain(name.bytes())
        .chain(offset.to_le_bytes())
        .chain(now_ms.to_le_bytes())
    {
        h1 = (h1 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        h2 = (h2 ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    }
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&h1.to_be_bytes());
    id[8..].copy_from_slice(&h2.to_be_bytes());
    Uuid(id)
}

fn storage_error(e: std::io::Error) -> KafkaError {
    KafkaError::new(ErrorCode::KafkaStorageError, e.to_string())
}
