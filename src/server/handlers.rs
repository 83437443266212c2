//! Request dispatch and the handlers of the APIs the broker advertises. A handler takes the
//! decoded request and returns the response; a request that does not decode closes the
//! connection, as Kafka does.

use std::future::Future;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::group_handlers::*;
use super::{clock, Broker};
use crate::error::{ErrorCode, KafkaError};
use crate::io::{Storage, StorageFile};
use crate::metadata::TopicSpec;
use crate::protocol::codec::{self, Message, Reader, Uuid};
use crate::protocol::messages::*;

/// Who sent a request: the header's client id and the peer's address, as Kafka reports
/// them in DescribeGroups (`/127.0.0.1`).
pub struct Client {
    pub id: String,
    pub host: String,
}

pub enum Reply<F> {
    Respond(Bytes),
    /// A response whose record batches stay in segment files until they are sent (Fetch,
    /// when the disk sends without copying): the parts in order.
    RespondWithFiles(Vec<ResponsePart<F>>),
    /// acks=0 produce: no response.
    Silent,
    /// Close the connection, for this reason (logged by the network layer).
    Close(&'static str),
}

pub enum ResponsePart<F> {
    Bytes(Bytes),
    File(FileRange<F>),
}

/// Bytes of a segment file that a response carries as they are.
pub struct FileRange<F> {
    pub file: F,
    pub position: u64,
    pub len: usize,
}

/// An API this broker advertises: key, advertised versions, and the first version it can
/// decode (Produce advertises 0 for old librdkafka, KAFKA-18659, but takes only 3+).
struct Api {
    key: i16,
    min: i16,
    max: i16,
    handled_min: i16,
    flexible_min: i16,
}

const fn api<M: Message>(min: i16, max: i16) -> Api {
    Api {
        key: M::API_KEY,
        min,
        max,
        handled_min: if min > M::VERSION_MIN { min } else { M::VERSION_MIN },
        flexible_min: M::FLEXIBLE_MIN,
    }
}

/// What the broker advertises in ApiVersions: only what works.
const APIS: &[Api] = &[
    Api {
        key: ProduceRequest::API_KEY,
        min: 0,
        max: 11,
        handled_min: 3,
        flexible_min: ProduceRequest::FLEXIBLE_MIN,
    },
    api::<FetchRequest>(4, 16),
    api::<ListOffsetsRequest>(1, 7),
    api::<MetadataRequest>(0, 12),
    api::<ApiVersionsRequest>(0, 4),
    api::<CreateTopicsRequest>(2, 7),
    api::<DeleteTopicsRequest>(1, 6),
    api::<DeleteRecordsRequest>(0, 2),
    api::<OffsetForLeaderEpochRequest>(2, 4),
    api::<DescribeConfigsRequest>(1, 4),
    api::<CreatePartitionsRequest>(0, 3),
    api::<DescribeClusterRequest>(0, 1),
    api::<AlterConfigsRequest>(0, 2),
    api::<IncrementalAlterConfigsRequest>(0, 1),
    api::<InitProducerIdRequest>(0, 4),
    api::<FindCoordinatorRequest>(0, 4),
    api::<JoinGroupRequest>(0, 9),
    api::<SyncGroupRequest>(0, 5),
    api::<HeartbeatRequest>(0, 4),
    api::<LeaveGroupRequest>(0, 5),
    api::<OffsetCommitRequest>(2, 9),
    api::<OffsetFetchRequest>(1, 9),
    api::<ListGroupsRequest>(0, 5),
    api::<DescribeGroupsRequest>(0, 5),
    api::<DeleteGroupsRequest>(0, 2),
    api::<OffsetDeleteRequest>(0, 0),
    api::<ConsumerGroupHeartbeatRequest>(1, 1),
    api::<ConsumerGroupDescribeRequest>(0, 1),
];

/// Without an authorizer every client may do everything a resource supports; these are
/// Kafka's AclOperation bits for a topic (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS) and for the cluster (CREATE, ALTER, DESCRIBE,
/// CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE).
const TOPIC_OPERATIONS: i32 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
const CLUSTER_OPERATIONS: i32 = (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

/// A fetch waits at most this long, whatever `max_wait_ms` asks.
const FETCH_WAIT_MS_MAX: i32 = 30_000;

pub async fn handle<S: Storage>(broker: &Broker<S>, frame: Bytes, peer: &str) -> Reply<S::File> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Some(api) = APIS.iter().find(|a| a.key == api_key && advertised(broker, a.key)) else {
        return Reply::Close("an API key this broker does not serve");
    };
    if version < api.min || version > api.max {
        if api_key == ApiVersionsRequest::API_KEY {
            // KIP-511: answer a version we do not know in v0's format, with what we support.
            let response = ApiVersionsResponse {
                error_code: ErrorCode::UnsupportedVersion.code(),
                api_keys: api_versions(broker),
                ..Default::default()
            };
            return respond(correlation_id, 0, &response, 0);
        }
        return Reply::Close("a version this broker does not serve");
    }
    if version < api.handled_min {
        return Reply::Close("a version this broker advertises but does not take (KAFKA-18659)");
    }
    let flexible = version >= api.flexible_min;
    let mut r = Reader::new(frame);
    let Ok(header) = RequestHeader::decode(&mut r, if flexible { 2 } else { 1 }) else {
        return Reply::Close("a request header that does not decode");
    };
    let client = Client {
        id: header.client_id.unwrap_or_default(),
        host: format!("/{peer}"),
    };
    // ApiVersions answers with header v0 always, so that any client can read it.
    let header_version = if flexible && api_key != ApiVersionsRequest::API_KEY {
        1
    } else {
        0
    };
    if api_key == FetchRequest::API_KEY {
        let Ok(request) = FetchRequest::decode(&mut r, version) else {
            return Reply::Close("a request that does not decode");
        };
        let (response, files) = fetch(broker, request, version).await;
        return respond_with_files(correlation_id, header_version, &response, version, files);
    }
    // Every handler takes (broker, request, version) and returns its response.
    // Some also take the client (id and host), for group membership.
    macro_rules! dispatch {
        ($($request:ident => $handler:ident),* ; $($crequest:ident => $chandler:ident),* $(,)?) => {
            match api_key {
                $(k if k == $request::API_KEY => {
                    run(r, version, correlation_id, header_version, |req| $handler(broker, req, version)).await
                })*
                $(k if k == $crequest::API_KEY => {
                    run(r, version, correlation_id, header_version, |req| $chandler(broker, req, version, &client)).await
                })*
                _ => unreachable!("every advertised API has a handler"),
            }
        };
    }
    dispatch! {
        ApiVersionsRequest => api_versions_handler,
        MetadataRequest => metadata,
        ProduceRequest => produce,
        ListOffsetsRequest => list_offsets,
        CreateTopicsRequest => create_topics,
        DeleteTopicsRequest => delete_topics,
        DeleteRecordsRequest => delete_records,
        OffsetForLeaderEpochRequest => offset_for_leader_epoch,
        DescribeConfigsRequest => describe_configs,
        CreatePartitionsRequest => create_partitions,
        DescribeClusterRequest => describe_cluster,
        AlterConfigsRequest => alter_configs,
        IncrementalAlterConfigsRequest => incremental_alter_configs,
        InitProducerIdRequest => init_producer_id,
        FindCoordinatorRequest => find_coordinator,
        SyncGroupRequest => sync_group,
        HeartbeatRequest => heartbeat,
        LeaveGroupRequest => leave_group,
        OffsetCommitRequest => offset_commit,
        OffsetFetchRequest => offset_fetch,
        ListGroupsRequest => list_groups,
        DescribeGroupsRequest => describe_groups,
        ConsumerGroupDescribeRequest => consumer_group_describe,
        DeleteGroupsRequest => delete_groups,
        OffsetDeleteRequest => offset_delete;
        JoinGroupRequest => join_group,
        ConsumerGroupHeartbeatRequest => consumer_group_heartbeat,
    }
}

async fn api_versions_handler<S: Storage>(
    broker: &Broker<S>,
    _: ApiVersionsRequest,
    _: i16,
) -> Option<ApiVersionsResponse> {
    Some(ApiVersionsResponse {
        api_keys: api_versions(broker),
        ..Default::default()
    })
}

async fn run<Req: Message, Resp: Message, Fut: Future<Output = Option<Resp>>, F>(
    mut r: Reader,
    version: i16,
    correlation_id: i32,
    header_version: i16,
    handler: impl FnOnce(Req) -> Fut,
) -> Reply<F> {
    let Ok(request) = Req::decode(&mut r, version) else {
        return Reply::Close("a request that does not decode");
    };
    // The request's byte fields now hold the frame's only references, so a produce can
    // take its records' buffer without a copy.
    drop(r);
    match handler(request).await {
        Some(response) => respond(correlation_id, header_version, &response, version),
        None => Reply::Silent,
    }
}

fn respond<M: Message, F>(correlation_id: i32, header_version: i16, response: &M, version: i16) -> Reply<F> {
    respond_with_files(correlation_id, header_version, response, version, Vec::new())
}

/// Frames a response. Where `files` (one entry per records field, in encoding order; empty
/// for a response without records fields) names a file range, the field was encoded empty:
/// the range is spliced in there with its real length prefix, and the frame's size counts
/// it. Without file ranges the response is one buffer.
fn respond_with_files<M: Message, F>(
    correlation_id: i32,
    header_version: i16,
    response: &M,
    version: i16,
    files: Vec<Option<FileRange<F>>>,
) -> Reply<F> {
    let compact = version >= M::FLEXIBLE_MIN;
    let mut w = BytesMut::with_capacity(64);
    w.put_i32(0);
    let header = ResponseHeader {
        correlation_id,
        ..Default::default()
    };
    if header.encode(&mut w, header_version).is_err() {
        return Reply::Close("a response that does not encode in the request's version");
    }
    let Ok(positions) = codec::encode_noting_records(response, &mut w, version) else {
        return Reply::Close("a response that does not encode in the request's version");
    };
    assert_eq!(positions.len(), files.len(), "one file entry per records field");
    // Only Fetch has records fields; other responses skip the prefix's allocation.
    let empty = if files.is_empty() {
        BytesMut::new()
    } else {
        codec::records_length_prefix(0, compact).expect("an empty length encodes")
    };
    let mut size = w.len() - 4;
    for (&position, range) in positions.iter().zip(&files) {
        let Some(range) = range else { continue };
        assert_eq!(
            &w[position..position + empty.len()],
            &empty[..],
            "records left empty for the file"
        );
        let Ok(prefix) = codec::records_length_prefix(range.len, compact) else {
            return Reply::Close("a fetch response too big to frame");
        };
        size = size - empty.len() + prefix.len() + range.len;
    }
    let Ok(size) = i32::try_from(size) else {
        return Reply::Close("a response too big to frame");
    };
    w[..4].copy_from_slice(&size.to_be_bytes());
    if files.iter().all(Option::is_none) {
        return Reply::Respond(w.freeze());
    }
    let frame = w.freeze();
    let mut parts = Vec::new();
    let mut done = 0;
    for (position, range) in positions.into_iter().zip(files) {
        let Some(range) = range else { continue };
        let prefix = codec::records_length_prefix(range.len, compact).expect("it encoded above");
        parts.push(ResponsePart::Bytes(frame.slice(done..position)));
        parts.push(ResponsePart::Bytes(prefix.freeze()));
        parts.push(ResponsePart::File(range));
        done = position + empty.len();
    }
    parts.push(ResponsePart::Bytes(frame.slice(done..)));
    Reply::RespondWithFiles(parts)
}

/// ConsumerGroupHeartbeat and ConsumerGroupDescribe only where
/// `group.coordinator.rebalance.protocols` has `consumer`, as Kafka does.
fn advertised<S: Storage>(broker: &Broker<S>, key: i16) -> bool {
    let consumer_protocol = [
        ConsumerGroupHeartbeatRequest::API_KEY,
        ConsumerGroupDescribeRequest::API_KEY,
    ];
    !consumer_protocol.contains(&key) || broker.config.group.consumer_protocol_enabled
}

fn api_versions<S: Storage>(broker: &Broker<S>) -> Vec<api_versions_response::ApiVersion> {
    APIS.iter()
        .filter(|a| advertised(broker, a.key))
        .map(|a| api_versions_response::ApiVersion {
            api_key: a.key,
            min_version: a.min,
            max_version: a.max,
            ..Default::default()
        })
        .collect()
}

async fn metadata<S: Storage>(broker: &Broker<S>, request: MetadataRequest, version: i16) -> Option<MetadataResponse> {
    let mut image = broker.image();
    let include_topic_operations = request.include_topic_authorized_operations;
    let include_cluster_operations = request.include_cluster_authorized_operations;
    // v0 asks for every topic with an empty list; later versions with null.
    let wanted: Option<Vec<(Option<String>, Uuid)>> = match request.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t.into_iter().map(|t| (t.name, t.topic_id)).collect()),
    };
    let auto_create = broker.config.auto_create_topics_enable && (version < 4 || request.allow_auto_topic_creation);
    if let (Some(wanted), true) = (&wanted, auto_create) {
        let missing: Vec<TopicSpec> = wanted
            .iter()
            .filter_map(|(name, _)| name.clone())
            .filter(|name| !image.topics.contains_key(name) && crate::metadata::validate_topic_name(name).is_ok())
            .map(|name| TopicSpec {
                name,
                num_partitions: -1,
                replication_factor: -1,
                configs: vec![],
            })
            .collect();
        if !missing.is_empty() {
            let _ = broker.create_topics(&missing, false).await;
            image = broker.image();
        }
    }
    let names: Vec<(Option<String>, Uuid)> = match wanted {
        None => image
            .topics
            .values()
            .map(|t| (Some(t.name.clone()), t.topic_id))
            .collect(),
        Some(w) => w,
    };
    let topics = names
        .into_iter()
        .map(|(name, id)| {
            let found = match &name {
                Some(n) => image.topics.get(n),
                None => image.topic_by_id(&id),
            };
            match found {
                None => metadata_response::MetadataResponseTopic {
                    error_code: match &name {
                        Some(n) if crate::metadata::validate_topic_name(n).is_err() => {
                            ErrorCode::InvalidTopicException.code()
                        }
                        Some(_) => ErrorCode::UnknownTopicOrPartition.code(),
                        None => ErrorCode::UnknownTopicId.code(),
                    },
                    name,
                    topic_id: id,
                    ..Default::default()
                },
                Some(topic) => metadata_response::MetadataResponseTopic {
                    topic_authorized_operations: if include_topic_operations {
                        TOPIC_OPERATIONS
                    } else {
                        i32::MIN
                    },
                    name: Some(topic.name.clone()),
                    topic_id: topic.topic_id,
                    is_internal: version >= 1 && topic.name == crate::group::OFFSETS_TOPIC,
                    partitions: topic
                        .partitions
                        .iter()
                        .map(|(&index, p)| metadata_response::MetadataResponsePartition {
                            partition_index: index,
                            leader_id: p.leader,
                            leader_epoch: p.leader_epoch,
                            replica_nodes: p.replicas.clone(),
                            isr_nodes: p.isr.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            }
        })
        .collect();
    Some(MetadataResponse {
        cluster_authorized_operations: if include_cluster_operations && (8..=10).contains(&version) {
            CLUSTER_OPERATIONS
        } else {
            i32::MIN
        },
        brokers: image
            .brokers
            .values()
            .map(|b| metadata_response::MetadataResponseBroker {
                node_id: b.broker_id,
                host: b.host.clone(),
                port: b.port,
                rack: None,
                ..Default::default()
            })
            .collect(),
        cluster_id: Some(broker.cluster_id.clone()),
        controller_id: broker.config.node_id,
        topics,
        ..Default::default()
    })
}

async fn produce<S: Storage>(broker: &Broker<S>, request: ProduceRequest, _version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let now = clock::now_ms();
    let mut responses = Vec::new();
    for topic in request.topic_data {
        let mut partitions = Vec::new();
        for p in topic.partition_data {
            let mut out = produce_response::PartitionProduceResponse {
                index: p.index,
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
                ..Default::default()
            };
            let result = if !matches!(acks, -1..=1) {
                Err(KafkaError::new(
                    ErrorCode::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {acks}"),
                ))
            } else if request.transactional_id.is_some() {
                Err(KafkaError::new(
                    ErrorCode::InvalidRequest,
                    "transactions are not supported yet",
                ))
            } else {
                let records = p.records.unwrap_or_default();
                broker
                    .replicas
                    .append(
                        &topic.name,
                        p.index,
                        records
                            .try_into_mut()
                            .unwrap_or_else(|shared| BytesMut::from(&shared[..])),
                        now,
                    )
                    .await
            };
            match result {
                Ok((info, log_start_offset)) => {
                    out.base_offset = info.first_offset;
                    out.log_append_time_ms = info.log_append_time;
                    out.log_start_offset = log_start_offset;
                }
                Err(e) => {
                    out.error_code = e.code.code();
                    if e.code == ErrorCode::InvalidRecord {
                        out.record_errors = vec![produce_response::BatchIndexAndErrorMessage {
                            batch_index: 0,
                            batch_index_error_message: Some(e.message.clone()),
                            ..Default::default()
                        }];
                    }
                    out.error_message = Some(e.message);
                }
            }
            partitions.push(out);
        }
        responses.push(produce_response::TopicProduceResponse {
            name: topic.name,
            topic_id: topic.topic_id,
            partition_responses: partitions,
            ..Default::default()
        });
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse {
        responses,
        ..Default::default()
    })
}

/// A Fetch: the response, and for each of its partitions in order the file range to send as
/// its records (zero-copy), or `None` where the records are in the response.
type FetchReply<F> = (FetchResponse, Vec<Option<FileRange<F>>>);

async fn fetch<S: Storage>(broker: &Broker<S>, request: FetchRequest, version: i16) -> FetchReply<S::File> {
    let wait = Duration::from_millis(request.max_wait_ms.clamp(0, FETCH_WAIT_MS_MAX) as u64);
    let deadline = clock::monotonic() + wait;
    loop {
        // Register for wake-ups before reading, so that an append in between is not missed.
        let appended = broker.replicas.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let (reply, bytes) = fetch_once(broker, &request, version).await;
        let now = clock::monotonic();
        if bytes >= request.min_bytes.max(0) as usize || now >= deadline || reply.0.error_code != 0 {
            return reply;
        }
        let _ = tokio::time::timeout(deadline - now, appended).await;
    }
}

async fn fetch_once<S: Storage>(
    broker: &Broker<S>,
    request: &FetchRequest,
    version: i16,
) -> (FetchReply<S::File>, usize) {
    let zero_copy = S::File::SENDS_WITHOUT_COPY;
    let mut files = Vec::new();
    let image = broker.image();
    let read_committed = request.isolation_level == 1;
    let mut bytes_left = (request.max_bytes.max(0) as usize).min(broker.config.fetch_max_bytes);
    let mut total = 0;
    let mut responses = Vec::new();
    for topic in &request.topics {
        let name = if version >= 13 {
            image.topic_by_id(&topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.topic.clone())
        };
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            let mut out = fetch_response::PartitionData {
                partition_index: p.partition,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted_transactions: if read_committed { Some(vec![]) } else { None },
                preferred_read_replica: -1,
                records: Some(Bytes::new()),
                ..Default::default()
            };
            let partition = name.as_deref().and_then(|n| broker.replicas.partition(n, p.partition));
            // By id, the log must be that topic's: the image and the ReplicaManager change
            // one after the other, so between them a name may still (or already) lead to
            // another topic of the same name, which is UNKNOWN_TOPIC_ID to this request.
            if version >= 13 && partition.as_ref().is_some_and(|p| p.topic_id != topic.topic_id) {
                out.error_code = ErrorCode::UnknownTopicId.code();
                partitions.push(out);
                files.push(None);
                continue;
            }
            let Some(partition) = partition else {
                // An id that names no topic is UNKNOWN_TOPIC_ID; a partition that a known
                // topic does not have is UNKNOWN_TOPIC_OR_PARTITION, as Kafka answers.
                out.error_code = if version >= 13 && name.is_none() {
                    ErrorCode::UnknownTopicId.code()
                } else {
                    ErrorCode::UnknownTopicOrPartition.code()
                };
                partitions.push(out);
                files.push(None);
                continue;
            };
            let hw = partition.log.high_watermark().await;
            let max_bytes = (p.partition_max_bytes.max(0) as usize).min(bytes_left);
            let max_offset = (!crate::canary::FETCH_PAST_HIGH_WATERMARK).then_some(hw);
            // KIP-74: the first partition with data returns at least one whole batch.
            let read = if zero_copy {
                partition
                    .log
                    .read_range(p.fetch_offset, max_bytes, max_offset, total == 0)
                    .await
            } else {
                partition
                    .log
                    .read(p.fetch_offset, max_bytes, max_offset, total == 0)
                    .await
            };
            let mut file = None;
            match read {
                Ok(info) => {
                    out.high_watermark = info.high_watermark;
                    out.last_stable_offset = info.high_watermark;
                    out.log_start_offset = info.log_start_offset;
                    total += info.size;
                    bytes_left = bytes_left.saturating_sub(info.size);
                    if zero_copy && info.size > 0 {
                        file = info.file.map(|file| FileRange {
                            file,
                            position: info.position,
                            len: info.size,
                        });
                    }
                    out.records = Some(info.records);
                }
                Err(e) => {
                    out.error_code = e.code.code();
                    out.high_watermark = hw;
                    out.last_stable_offset = hw;
                    out.log_start_offset = partition.log.log_start_offset().await;
                }
            }
            partitions.push(out);
            files.push(file);
        }
        responses.push(fetch_response::FetchableTopicResponse {
            topic: topic.topic.clone(),
            topic_id: topic.topic_id,
            partitions,
            ..Default::default()
        });
    }
    let response = FetchResponse {
        responses,
        ..Default::default()
    };
    ((response, files), total)
}

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

async fn list_offsets<S: Storage>(
    broker: &Broker<S>,
    request: ListOffsetsRequest,
    version: i16,
) -> Option<ListOffsetsResponse> {
    let mut topics = Vec::new();
    for topic in request.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let mut out = list_offsets_response::ListOffsetsPartitionResponse {
                partition_index: p.partition_index,
                timestamp: -1,
                offset: -1,
                leader_epoch: -1,
                ..Default::default()
            };
            match broker.replicas.partition(&topic.name, p.partition_index) {
                None => out.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                Some(partition) => {
                    if version >= 4 {
                        out.leader_epoch = partition.leader_epoch;
                    }
                    let log = &partition.log;
                    let found = match p.timestamp {
                        LATEST => Ok(Some((log.high_watermark().await, -1))),
                        EARLIEST => Ok(Some((log.log_start_offset().await, -1))),
                        MAX_TIMESTAMP => match log.max_timestamp().await {
                            Ok(Some(max)) => log.fetch_offset_by_timestamp(max).await,
                            Ok(None) => Ok(None),
                            Err(e) => Err(e),
                        },
                        t => log.fetch_offset_by_timestamp(t).await,
                    };
                    match found {
                        Ok(Some((offset, timestamp))) => {
                            out.offset = offset;
                            out.timestamp = timestamp;
                        }
                        Ok(None) => {}
                        Err(e) => out.error_code = e.code.code(),
                    }
                }
            }
            partitions.push(out);
        }
        topics.push(list_offsets_response::ListOffsetsTopicResponse {
            name: topic.name,
            partitions,
            ..Default::default()
        });
    }
    Some(ListOffsetsResponse {
        topics,
        ..Default::default()
    })
}

async fn create_topics<S: Storage>(
    broker: &Broker<S>,
    request: CreateTopicsRequest,
    _version: i16,
) -> Option<CreateTopicsResponse> {
    let node = broker.config.node_id;
    let mut specs = Vec::new();
    let mut refused = Vec::new();
    for t in &request.topics {
        let mut partitions = t.num_partitions;
        if !t.assignments.is_empty() {
            // Manual assignment: every partition on this broker, numbered from 0.
            let valid = t
                .assignments
                .iter()
                .enumerate()
                .all(|(i, a)| a.partition_index == i as i32 && a.broker_ids == vec![node]);
            if !valid || t.num_partitions != -1 || t.replication_factor != -1 {
                refused.push(t.name.clone());
                continue;
            }
            partitions = t.assignments.len() as i32;
        }
        let configs = t
            .configs
            .iter()
            .filter_map(|c| c.value.clone().map(|v| (c.name.clone(), v)))
            .collect();
        specs.push(TopicSpec {
            name: t.name.clone(),
            num_partitions: partitions,
            replication_factor: if t.assignments.is_empty() {
                t.replication_factor
            } else {
                1
            },
            configs,
        });
    }
    let results = match broker.create_topics(&specs, request.validate_only).await {
        Ok(results) => results,
        Err(e) => {
            let topics = request
                .topics
                .iter()
                .map(|t| create_topics_response::CreatableTopicResult {
                    name: t.name.clone(),
                    error_code: e.code.code(),
                    error_message: Some(e.message.clone()),
                    ..Default::default()
                })
                .collect();
            return Some(CreateTopicsResponse {
                topics,
                ..Default::default()
            });
        }
    };
    let mut topics: Vec<_> = results
        .into_iter()
        .map(|r| create_topics_response::CreatableTopicResult {
            name: r.name,
            topic_id: r.topic_id,
            error_code: r.error.code(),
            error_message: r.message,
            num_partitions: if r.error == ErrorCode::None {
                r.num_partitions
            } else {
                -1
            },
            replication_factor: if r.error == ErrorCode::None {
                r.replication_factor
            } else {
                -1
            },
            configs: None,
            ..Default::default()
        })
        .collect();
    for name in refused {
        topics.push(create_topics_response::CreatableTopicResult {
            name,
            error_code: ErrorCode::InvalidReplicaAssignment.code(),
            error_message: Some(format!(
                "replica assignments must place each partition, numbered from 0, on broker {node} alone"
            )),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        });
    }
    Some(CreateTopicsResponse {
        topics,
        ..Default::default()
    })
}

async fn delete_topics<S: Storage>(
    broker: &Broker<S>,
    request: DeleteTopicsRequest,
    _version: i16,
) -> Option<DeleteTopicsResponse> {
    let image = broker.image();
    let mut names: Vec<String> = request.topic_names.clone();
    let mut unknown_ids = Vec::new();
    for t in &request.topics {
        match (&t.name, image.topic_by_id(&t.topic_id)) {
            (Some(name), _) => names.push(name.clone()),
            (None, Some(topic)) => names.push(topic.name.clone()),
            (None, None) => unknown_ids.push(t.topic_id),
        }
    }
    let results = broker
        .delete_topics(&names)
        .await
        .unwrap_or_else(|e| names.iter().map(|n| (n.clone(), Uuid::default(), e.code)).collect());
    let mut responses: Vec<_> = results
        .into_iter()
        .map(|(name, topic_id, error)| delete_topics_response::DeletableTopicResult {
            name: Some(name),
            topic_id,
            error_code: error.code(),
            ..Default::default()
        })
        .collect();
    for id in unknown_ids {
        responses.push(delete_topics_response::DeletableTopicResult {
            name: None,
            topic_id: id,
            error_code: ErrorCode::UnknownTopicId.code(),
            ..Default::default()
        });
    }
    Some(DeleteTopicsResponse {
        responses,
        ..Default::default()
    })
}

async fn delete_records<S: Storage>(
    broker: &Broker<S>,
    request: DeleteRecordsRequest,
    _version: i16,
) -> Option<DeleteRecordsResponse> {
    let mut topics = Vec::new();
    for topic in request.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let mut out = delete_records_response::DeleteRecordsPartitionResult {
                partition_index: p.partition_index,
                low_watermark: -1,
                ..Default::default()
            };
            match broker.replicas.partition(&topic.name, p.partition_index) {
                None => out.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                Some(partition) => {
                    // -1 deletes up to the high watermark.
                    let offset = if p.offset == -1 {
                        partition.log.high_watermark().await
                    } else {
                        p.offset
                    };
                    match partition.log.delete_records_before(offset).await {
                        Ok(low_watermark) => out.low_watermark = low_watermark,
                        Err(e) => out.error_code = e.code.code(),
                    }
                }
            }
            partitions.push(out);
        }
        topics.push(delete_records_response::DeleteRecordsTopicResult {
            name: topic.name,
            partitions,
            ..Default::default()
        });
    }
    Some(DeleteRecordsResponse {
        topics,
        ..Default::default()
    })
}

/// Every partition has had one leader epoch so far (no elections on one node), so the
/// leader epoch cache is that epoch starting at offset 0.
async fn offset_for_leader_epoch<S: Storage>(
    broker: &Broker<S>,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> Option<OffsetForLeaderEpochResponse> {
    let mut topics = Vec::new();
    for topic in request.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let mut out = offset_for_leader_epoch_response::EpochEndOffset {
                partition: p.partition,
                leader_epoch: -1,
                end_offset: -1,
                ..Default::default()
            };
            match broker.replicas.partition(&topic.topic, p.partition) {
                None => out.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                Some(partition) if p.current_leader_epoch > partition.leader_epoch => {
                    out.error_code = ErrorCode::UnknownLeaderEpoch.code()
                }
                Some(partition) if p.current_leader_epoch >= 0 && p.current_leader_epoch < partition.leader_epoch => {
                    out.error_code = ErrorCode::FencedLeaderEpoch.code()
                }
                Some(partition) if p.leader_epoch == partition.leader_epoch => {
                    out.leader_epoch = partition.leader_epoch;
                    out.end_offset = partition.log.log_end_offset().await;
                }
                // An epoch before or after the only one: undefined, as Kafka answers.
                Some(_) => {}
            }
            partitions.push(out);
        }
        topics.push(offset_for_leader_epoch_response::OffsetForLeaderTopicResult {
            topic: topic.topic,
            partitions,
            ..Default::default()
        });
    }
    Some(OffsetForLeaderEpochResponse {
        topics,
        ..Default::default()
    })
}

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs sources.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// DescribeConfigs types.
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;

/// The topic keys: (topic key, broker synonym, Kafka's default, type).
const TOPIC_CONFIGS: &[(&str, &str, &str, i8)] = &[
    ("cleanup.policy", "log.cleanup.policy", "delete", TYPE_STRING),
    ("compression.type", "compression.type", "producer", TYPE_STRING),
    (
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        "86400000",
        TYPE_LONG,
    ),
    (
        "flush.messages",
        "log.flush.interval.messages",
        "9223372036854775807",
        TYPE_LONG,
    ),
    ("flush.ms", "log.flush.interval.ms", "9223372036854775807", TYPE_LONG),
    ("index.interval.bytes", "log.index.interval.bytes", "4096", TYPE_INT),
    ("max.message.bytes", "message.max.bytes", "1048588", TYPE_INT),
    (
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        "3600000",
        TYPE_LONG,
    ),
    (
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        "9223372036854775807",
        TYPE_LONG,
    ),
    (
        "message.timestamp.type",
        "log.message.timestamp.type",
        "CreateTime",
        TYPE_STRING,
    ),
    (
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        "0.5",
        TYPE_DOUBLE,
    ),
    (
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        "0",
        TYPE_LONG,
    ),
    ("min.insync.replicas", "min.insync.replicas", "1", TYPE_INT),
    ("retention.bytes", "log.retention.bytes", "-1", TYPE_LONG),
    ("retention.ms", "log.retention.ms", "604800000", TYPE_LONG),
    ("segment.bytes", "log.segment.bytes", "1073741824", TYPE_INT),
    ("segment.index.bytes", "log.index.size.max.bytes", "10485760", TYPE_INT),
    ("segment.ms", "log.roll.ms", "604800000", TYPE_LONG),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        "false",
        TYPE_STRING,
    ),
];

/// `cleanup.policy` as Kafka spells it.
pub fn cleanup_policy(log: &crate::config::LogConfig) -> String {
    match (log.cleanup_delete, log.cleanup_compact) {
        (true, true) => "compact,delete".to_string(),
        (false, true) => "compact".to_string(),
        _ => "delete".to_string(),
    }
}

async fn describe_configs<S: Storage>(
    broker: &Broker<S>,
    request: DescribeConfigsRequest,
    version: i16,
) -> Option<DescribeConfigsResponse> {
    let image = broker.image();
    let log = &broker.config.log;
    // The broker's effective value of each topic key, and whether server.properties set it.
    let broker_value = |topic_key: &str| -> (String, bool) {
        let value = match topic_key {
            "flush.messages" => log.flush_messages.to_string(),
            "flush.ms" => log.flush_ms.to_string(),
            "index.interval.bytes" => log.index_interval_bytes.to_string(),
            "max.message.bytes" => log.max_message_bytes.to_string(),
            "message.timestamp.after.max.ms" => log.message_timestamp_after_max_ms.to_string(),
            "message.timestamp.before.max.ms" => log.message_timestamp_before_max_ms.to_string(),
            "message.timestamp.type" => match log.message_timestamp_type {
                crate::record::TimestampType::CreateTime => "CreateTime".to_string(),
                crate::record::TimestampType::LogAppendTime => "LogAppendTime".to_string(),
            },
            "retention.bytes" => log.retention_bytes.to_string(),
            "retention.ms" => log.retention_ms.to_string(),
            "segment.bytes" => log.segment_bytes.to_string(),
            "segment.index.bytes" => log.segment_index_bytes.to_string(),
            "segment.ms" => log.segment_ms.to_string(),
            "cleanup.policy" => cleanup_policy(log),
            "delete.retention.ms" => log.delete_retention_ms.to_string(),
            "min.compaction.lag.ms" => log.min_compaction_lag_ms.to_string(),
            "min.cleanable.dirty.ratio" => log.min_cleanable_dirty_ratio.to_string(),
            other => TOPIC_CONFIGS
                .iter()
                .find(|c| c.0 == other)
                .map(|c| c.2.to_string())
                .unwrap_or_default(),
        };
        let default = TOPIC_CONFIGS
            .iter()
            .find(|c| c.0 == topic_key)
            .map(|c| c.2)
            .unwrap_or_default();
        let differs = value != default;
        (value, differs)
    };
    let synonyms_wanted = version >= 1 && request.include_synonyms;
    let mut results = Vec::new();
    for resource in request.resources {
        let wanted = |key: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k == key))
        };
        let mut result = describe_configs_response::DescribeConfigsResult {
            resource_type: resource.resource_type,
            resource_name: resource.resource_name.clone(),
            ..Default::default()
        };
        match resource.resource_type {
            RESOURCE_TOPIC => match image.topics.get(&resource.resource_name) {
                None => {
                    result.error_code = ErrorCode::UnknownTopicOrPartition.code();
                    result.error_message = Some(format!("Topic '{}' does not exist.", resource.resource_name));
                }
                Some(topic) => {
                    for &(key, synonym, default, kind) in TOPIC_CONFIGS.iter().filter(|c| wanted(c.0)) {
                        let (broker_value, broker_set) = broker_value(key);
                        let topic_value = topic.configs.get(key);
                        let (value, source) = match topic_value {
                            Some(v) => (v.clone(), SOURCE_DYNAMIC_TOPIC),
                            None if broker_set => (broker_value.clone(), SOURCE_STATIC_BROKER),
                            None => (default.to_string(), SOURCE_DEFAULT),
                        };
                        let mut synonyms = Vec::new();
                        if synonyms_wanted {
                            if let Some(v) = topic_value {
                                synonyms.push(describe_configs_response::DescribeConfigsSynonym {
                                    name: key.into(),
                                    value: Some(v.clone()),
                                    source: SOURCE_DYNAMIC_TOPIC,
                                    ..Default::default()
                                });
                            }
                            if broker_set {
                                synonyms.push(describe_configs_response::DescribeConfigsSynonym {
                                    name: synonym.into(),
                                    value: Some(broker_value),
                                    source: SOURCE_STATIC_BROKER,
                                    ..Default::default()
                                });
                            }
                            synonyms.push(describe_configs_response::DescribeConfigsSynonym {
                                name: synonym.into(),
                                value: Some(default.into()),
                                source: SOURCE_DEFAULT,
                                ..Default::default()
                            });
                        }
                        result
                            .configs
                            .push(describe_configs_response::DescribeConfigsResourceResult {
                                name: key.into(),
                                value: Some(value),
                                read_only: false,
                                config_source: source,
                                synonyms,
                                config_type: if version >= 3 { kind } else { 0 },
                                ..Default::default()
                            });
                    }
                }
            },
            RESOURCE_BROKER
                if resource.resource_name == broker.config.node_id.to_string() || resource.resource_name.is_empty() =>
            {
                for (key, default) in super::config::KEYS.iter().filter(|(k, _)| wanted(k)) {
                    let value = broker.config.values.get(*key).cloned().unwrap_or_default();
                    let source = if value != *default {
                        SOURCE_STATIC_BROKER
                    } else {
                        SOURCE_DEFAULT
                    };
                    let synonyms = if synonyms_wanted {
                        vec![describe_configs_response::DescribeConfigsSynonym {
                            name: key.to_string(),
                            value: Some(value.clone()),
                            source,
                            ..Default::default()
                        }]
                    } else {
                        vec![]
                    };
                    result
                        .configs
                        .push(describe_configs_response::DescribeConfigsResourceResult {
                            name: key.to_string(),
                            value: Some(value),
                            read_only: true,
                            config_source: source,
                            synonyms,
                            config_type: if version >= 3 { TYPE_STRING } else { 0 },
                            ..Default::default()
                        });
                }
            }
            RESOURCE_BROKER => {
                result.error_code = ErrorCode::InvalidRequest.code();
                result.error_message = Some(format!(
                    "Unexpected broker id, expected {} but received {}",
                    broker.config.node_id, resource.resource_name
                ));
            }
            other => {
                result.error_code = ErrorCode::InvalidRequest.code();
                result.error_message = Some(format!("Unsupported resource type {other}"));
            }
        }
        results.push(result);
    }
    Some(DescribeConfigsResponse {
        results,
        ..Default::default()
    })
}

async fn create_partitions<S: Storage>(
    broker: &Broker<S>,
    request: CreatePartitionsRequest,
    _version: i16,
) -> Option<CreatePartitionsResponse> {
    let node = broker.config.node_id;
    let mut asks = Vec::new();
    let mut refused = Vec::new();
    for t in &request.topics {
        let placed_here = t
            .assignments
            .as_ref()
            .is_none_or(|a| a.iter().all(|b| b.broker_ids == vec![node]));
        if placed_here {
            asks.push((t.name.clone(), t.count));
        } else {
            refused.push(t.name.clone());
        }
    }
    let results = broker
        .create_partitions(&asks, request.validate_only)
        .await
        .unwrap_or_else(|e| {
            asks.iter()
                .map(|(n, _)| (n.clone(), e.code, Some(e.message.clone())))
                .collect()
        });
    let mut out: Vec<_> = results
        .into_iter()
        .map(
            |(name, error, message)| create_partitions_response::CreatePartitionsTopicResult {
                name,
                error_code: error.code(),
                error_message: message,
                ..Default::default()
            },
        )
        .collect();
    for name in refused {
        out.push(create_partitions_response::CreatePartitionsTopicResult {
            name,
            error_code: ErrorCode::InvalidReplicaAssignment.code(),
            error_message: Some(format!("new partitions can only be placed on broker {node}")),
            ..Default::default()
        });
    }
    Some(CreatePartitionsResponse {
        results: out,
        ..Default::default()
    })
}

/// InitProducerId for idempotent producers: a fresh producer id at epoch 0, or, with the
/// producer's current id and epoch (v3+, KIP-360), the same id at the next epoch, which
/// resets its sequences (a new id once the epoch is exhausted). Transactional ids need the
/// transaction coordinator, which Klamm does not have yet.
async fn init_producer_id<S: Storage>(
    broker: &Broker<S>,
    request: InitProducerIdRequest,
    _version: i16,
) -> Option<InitProducerIdResponse> {
    let mut response = InitProducerIdResponse {
        producer_id: -1,
        producer_epoch: -1,
        ongoing_txn_producer_id: -1,
        ongoing_txn_producer_epoch: -1,
        ..Default::default()
    };
    if request.transactional_id.as_deref().is_some_and(|t| !t.is_empty()) {
        response.error_code = ErrorCode::CoordinatorNotAvailable.code();
        return Some(response);
    }
    let bump = request.producer_id >= 0 && request.producer_epoch >= 0;
    if bump && request.producer_id >= broker.image().next_producer_id {
        // Never handed out: not this cluster's producer.
        response.error_code = ErrorCode::InvalidProducerEpoch.code();
        return Some(response);
    }
    if bump && request.producer_epoch < i16::MAX - 1 {
        response.producer_id = request.producer_id;
        response.producer_epoch = request.producer_epoch + 1;
        return Some(response);
    }
    match broker.next_producer_id().await {
        Ok(id) => {
            response.producer_id = id;
            response.producer_epoch = 0;
        }
        Err(e) => response.error_code = e.code.code(),
    }
    Some(response)
}

async fn describe_cluster<S: Storage>(
    broker: &Broker<S>,
    request: DescribeClusterRequest,
    version: i16,
) -> Option<DescribeClusterResponse> {
    let image = broker.image();
    Some(DescribeClusterResponse {
        endpoint_type: if version >= 1 { request.endpoint_type } else { 1 },
        cluster_id: broker.cluster_id.clone(),
        controller_id: broker.config.node_id,
        brokers: image
            .brokers
            .values()
            .map(|b| describe_cluster_response::DescribeClusterBroker {
                broker_id: b.broker_id,
                host: b.host.clone(),
                port: b.port,
                rack: None,
                ..Default::default()
            })
            .collect(),
        cluster_authorized_operations: if request.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            i32::MIN
        },
        ..Default::default()
    })
}

/// A resource's outcome: (type, name, error, message).
type AlterResult = (i8, String, ErrorCode, Option<String>);

/// Applies per-topic config changes; broker resources are static (server.properties).
/// Results come in the order of the resources asked for.
async fn alter<S: Storage>(
    broker: &Broker<S>,
    resources: Vec<(i8, String, Result<Vec<(String, Option<String>)>, String>)>,
    validate_only: bool,
) -> Vec<AlterResult> {
    let mut out: Vec<AlterResult> = Vec::new();
    let mut changes = Vec::new();
    let mut slots = Vec::new();
    for (kind, name, change) in resources {
        match (kind, change) {
            (RESOURCE_TOPIC, Ok(sets)) => {
                slots.push(out.len());
                out.push((kind, name.clone(), ErrorCode::None, None));
                changes.push((name, sets));
            }
            (RESOURCE_TOPIC, Err(why)) => out.push((kind, name, ErrorCode::InvalidConfig, Some(why))),
            (RESOURCE_BROKER, _) => out.push((
                kind,
                name,
                ErrorCode::InvalidRequest,
                Some("broker configs are static: set them in server.properties".into()),
            )),
            (other, _) => out.push((
                other,
                name,
                ErrorCode::InvalidRequest,
                Some(format!("Unsupported resource type {other}")),
            )),
        }
    }
    let results = match broker.alter_topic_configs(&changes, validate_only).await {
        Ok(results) => results
            .into_iter()
            .map(|(_, error, message)| (error, message))
            .collect(),
        Err(e) => changes
            .iter()
            .map(|_| (e.code, Some(e.message.clone())))
            .collect::<Vec<_>>(),
    };
    for (slot, (error, message)) in slots.into_iter().zip(results) {
        out[slot].2 = error;
        out[slot].3 = message;
    }
    out
}

fn known_topic_key(key: &str) -> Result<(), String> {
    if TOPIC_CONFIGS.iter().any(|c| c.0 == key) {
        Ok(())
    } else {
        Err(format!("Unknown topic config name: {key}"))
    }
}

/// AlterConfigs replaces a topic's whole set of overrides with the ones given.
async fn alter_configs<S: Storage>(
    broker: &Broker<S>,
    request: AlterConfigsRequest,
    _version: i16,
) -> Option<AlterConfigsResponse> {
    let image = broker.image();
    let resources = request
        .resources
        .into_iter()
        .map(|r| {
            let change = r.configs.iter().try_for_each(|c| known_topic_key(&c.name)).map(|()| {
                let mut sets: Vec<(String, Option<String>)> =
                    r.configs.iter().map(|c| (c.name.clone(), c.value.clone())).collect();
                if let Some(topic) = image.topics.get(&r.resource_name) {
                    for key in topic
                        .configs
                        .keys()
                        .filter(|k| !r.configs.iter().any(|c| &c.name == *k))
                    {
                        sets.push((key.clone(), None));
                    }
                }
                sets
            });
            (r.resource_type, r.resource_name, change)
        })
        .collect();
    let responses = alter(broker, resources, request.validate_only)
        .await
        .into_iter()
        .map(
            |(kind, name, error, message)| alter_configs_response::AlterConfigsResourceResponse {
                error_code: error.code(),
                error_message: message,
                resource_type: kind,
                resource_name: name,
                ..Default::default()
            },
        )
        .collect();
    Some(AlterConfigsResponse {
        responses,
        ..Default::default()
    })
}

/// IncrementalAlterConfigs: SET (0) and DELETE (1) per key; APPEND and SUBTRACT apply to
/// list configs, of which no topic config here is one.
async fn incremental_alter_configs<S: Storage>(
    broker: &Broker<S>,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> Option<IncrementalAlterConfigsResponse> {
    let resources = request
        .resources
        .into_iter()
        .map(|r| {
            let change = r
                .configs
                .iter()
                .map(|c| {
                    known_topic_key(&c.name)?;
                    match c.config_operation {
                        0 => Ok((
                            c.name.clone(),
                            Some(c.value.clone().ok_or_else(|| format!("SET {} needs a value", c.name))?),
                        )),
                        1 => Ok((c.name.clone(), None)),
                        2 | 3 => Err(format!(
                            "{} is not a list config; APPEND and SUBTRACT do not apply",
                            c.name
                        )),
                        op => Err(format!("unknown config operation {op}")),
                    }
                })
                .collect::<Result<Vec<_>, String>>();
            (r.resource_type, r.resource_name, change)
        })
        .collect();
    let responses = alter(broker, resources, request.validate_only)
        .await
        .into_iter()
        .map(
            |(kind, name, error, message)| incremental_alter_configs_response::AlterConfigsResourceResponse {
                error_code: error.code(),
                error_message: message,
                resource_type: kind,
                resource_name: name,
                ..Default::default()
            },
        )
        .collect();
    Some(IncrementalAlterConfigsResponse {
        responses,
        ..Default::default()
    })
}
