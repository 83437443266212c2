//! Handlers of the group APIs: each finds the group's shard, calls its handler, commits the
//! records it returns and answers (JoinGroup and SyncGroup wait for their reply).

use super::Broker;
use super::{clock, handlers::Client};
use crate::error::{ErrorCode, KafkaError};
use crate::group::{Reply, OFFSETS_TOPIC};
use crate::io::Storage;
use crate::protocol::messages::*;

/// Kafka's group ACL operations without an authorizer: READ, DELETE, DESCRIBE.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn code_of(e: &KafkaError) -> ErrorCode {
    match e.code {
        // The coordinator cannot serve now; the client looks for it again.
        ErrorCode::KafkaStorageError | ErrorCode::CorruptMessage | ErrorCode::UnknownTopicOrPartition => {
            ErrorCode::CoordinatorNotAvailable
        }
        code => code,
    }
}

pub(super) async fn find_coordinator<S: Storage>(
    broker: &Broker<S>,
    request: FindCoordinatorRequest,
    version: i16,
) -> Option<FindCoordinatorResponse> {
    let keys = if version >= 4 {
        request.coordinator_keys.clone()
    } else {
        vec![request.key.clone()]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let error = match request.key_type {
            0 if key.is_empty() => ErrorCode::InvalidRequest,
            0 => match broker.ensure_offsets_topic().await {
                Ok(()) => ErrorCode::None,
                Err(_) => ErrorCode::CoordinatorNotAvailable,
            },
            // Transactions arrive with their coordinator.
            1 => ErrorCode::CoordinatorNotAvailable,
            _ => ErrorCode::InvalidRequest,
        };
        let found = error == ErrorCode::None;
        coordinators.push(find_coordinator_response::Coordinator {
            key,
            node_id: if found { broker.config.node_id } else { -1 },
            host: if found {
                broker.config.advertised_host.clone()
            } else {
                String::new()
            },
            port: if found {
                broker.config.advertised_port as i32
            } else {
                -1
            },
            error_code: error.code(),
            error_message: (!found && version >= 1).then(|| error.name().to_string()),
            ..Default::default()
        });
    }
    if version >= 4 {
        return Some(FindCoordinatorResponse {
            coordinators,
            ..Default::default()
        });
    }
    let c = coordinators.pop().expect("one key");
    Some(FindCoordinatorResponse {
        error_code: c.error_code,
        error_message: c.error_message,
        node_id: c.node_id,
        host: c.host,
        port: c.port,
        ..Default::default()
    })
}

pub(super) async fn join_group<S: Storage>(
    broker: &Broker<S>,
    request: JoinGroupRequest,
    version: i16,
    client: &Client,
) -> Option<JoinGroupResponse> {
    let failed = |code: ErrorCode| JoinGroupResponse {
        error_code: code.code(),
        generation_id: -1,
        protocol_name: Some(String::new()),
        member_id: request.member_id.clone(),
        ..Default::default()
    };
    let now = clock::now_ms();
    let reply = awaited(broker, &request.group_id, |shard, id| {
        shard.join_group(id, &request, version, &client.id, &client.host, now)
    })
    .await;
    match reply {
        Ok(Reply::Join(response)) => Some(response),
        Ok(_) => Some(failed(ErrorCode::NotCoordinator)),
        Err(code) => Some(failed(code)),
    }
}

/// Runs a handler whose reply may come later (JoinGroup, SyncGroup): registers for the
/// reply, calls the handler on the group's shard, commits its effects, lets the shard go,
/// then waits for the reply.
async fn awaited<S: Storage>(
    broker: &Broker<S>,
    group_id: &str,
    handler: impl FnOnce(&mut crate::group::GroupCoordinatorShard, crate::group::RequestId) -> crate::group::Effects,
) -> Result<Reply, ErrorCode> {
    let (id, reply) = broker.groups.register();
    let committed = async {
        let (partition, mut guard) = broker.group_shard(group_id).await?;
        let effects = handler(guard.as_mut().expect("loaded"), id);
        broker.group_commit(partition, &mut guard, effects).await
    };
    if let Err(e) = committed.await {
        broker.groups.forget(id);
        return Err(code_of(&e));
    }
    reply.await.map_err(|_| ErrorCode::NotCoordinator)
}

/// Appends records a handler returned (with no replies) to the group's partition.
async fn commit_records<S: Storage>(
    broker: &Broker<S>,
    partition: i32,
    guard: &mut super::group_coordinator::ShardGuard<'_>,
    records: Vec<crate::group::GroupRecord>,
) -> Result<(), ErrorCode> {
    let effects = crate::group::Effects {
        records,
        replies: Vec::new(),
    };
    broker
        .group_commit(partition, guard, effects)
        .await
        .map_err(|e| code_of(&e))
}

pub(super) async fn sync_group<S: Storage>(
    broker: &Broker<S>,
    request: SyncGroupRequest,
    version: i16,
) -> Option<SyncGroupResponse> {
    let failed = |code: ErrorCode| SyncGroupResponse {
        error_code: code.code(),
        ..Default::default()
    };
    let now = clock::now_ms();
    match awaited(broker, &request.group_id, |shard, id| {
        shard.sync_group(id, &request, version, now)
    })
    .await
    {
        Ok(Reply::Sync(response)) => Some(response),
        Ok(_) => Some(failed(ErrorCode::NotCoordinator)),
        Err(code) => Some(failed(code)),
    }
}

pub(super) async fn heartbeat<S: Storage>(
    broker: &Broker<S>,
    request: HeartbeatRequest,
    version: i16,
) -> Option<HeartbeatResponse> {
    let code = match broker.group_shard(&request.group_id).await {
        Ok((_, mut guard)) => {
            let shard = guard.as_mut().expect("loaded");
            shard.heartbeat(&request, version, clock::now_ms())
        }
        Err(e) => code_of(&e),
    };
    Some(HeartbeatResponse {
        error_code: code.code(),
        ..Default::default()
    })
}

pub(super) async fn leave_group<S: Storage>(
    broker: &Broker<S>,
    request: LeaveGroupRequest,
    version: i16,
) -> Option<LeaveGroupResponse> {
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| (m.member_id.clone(), m.group_instance_id.clone()))
            .collect()
    } else {
        vec![(request.member_id.clone(), None)]
    };
    let (top, per_member) = match broker.group_shard(&request.group_id).await {
        Ok((partition, mut guard)) => {
            let shard = guard.as_mut().expect("loaded");
            let (effects, top, per_member) = shard.leave_group(&request.group_id, &leaving, clock::now_ms());
            match broker.group_commit(partition, &mut guard, effects).await {
                Ok(()) => (top, per_member),
                Err(e) => (code_of(&e), vec![code_of(&e); leaving.len()]),
            }
        }
        Err(e) => (code_of(&e), vec![code_of(&e); leaving.len()]),
    };
    if version < 3 {
        let code = if top == ErrorCode::None { per_member[0] } else { top };
        return Some(LeaveGroupResponse {
            error_code: code.code(),
            ..Default::default()
        });
    }
    Some(LeaveGroupResponse {
        error_code: top.code(),
        members: leaving
            .into_iter()
            .zip(per_member)
            .map(|((member_id, instance), code)| leave_group_response::MemberResponse {
                member_id,
                group_instance_id: instance,
                error_code: code.code(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

pub(super) async fn offset_commit<S: Storage>(
    broker: &Broker<S>,
    request: OffsetCommitRequest,
    version: i16,
) -> Option<OffsetCommitResponse> {
    let errors = match broker.group_shard(&request.group_id).await {
        Ok((partition, mut guard)) => {
            let shard = guard.as_mut().expect("loaded");
            let (records, errors) = shard.commit_offsets(&request, version, clock::now_ms());
            match commit_records(broker, partition, &mut guard, records).await {
                Ok(()) => errors,
                Err(code) => uniform(&request, code),
            }
        }
        Err(e) => uniform(&request, code_of(&e)),
    };
    Some(OffsetCommitResponse {
        topics: request
            .topics
            .iter()
            .zip(errors)
            .map(|(t, codes)| offset_commit_response::OffsetCommitResponseTopic {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .zip(codes)
                    .map(|(p, code)| offset_commit_response::OffsetCommitResponsePartition {
                        partition_index: p.partition_index,
                        error_code: code.code(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

fn uniform(request: &OffsetCommitRequest, code: ErrorCode) -> Vec<Vec<ErrorCode>> {
    request.topics.iter().map(|t| vec![code; t.partitions.len()]).collect()
}

/// One group's committed offsets, as OffsetFetch gives them: topics, then partitions with
/// (partition, offset, leader epoch, metadata, error).
type FetchedOffsets = Vec<(String, Vec<(i32, i64, i32, String)>)>;

async fn fetch_group_offsets<S: Storage>(
    broker: &Broker<S>,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    member: Option<(&str, i32)>,
) -> Result<FetchedOffsets, ErrorCode> {
    let (_, guard) = broker.group_shard(group_id).await.map_err(|e| code_of(&e))?;
    let shard = guard.as_ref().expect("loaded");
    if let Some((member_id, epoch)) = member {
        if let Some(code) = shard.validate_offset_fetch(group_id, Some(member_id), epoch) {
            return Err(code);
        }
    }
    Ok(shard
        .fetch_offsets(group_id, topics.as_deref())
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, o)| match o {
                    Some(o) => (p, o.offset, o.leader_epoch, o.metadata),
                    None => (p, -1, -1, String::new()),
                })
                .collect();
            (topic, partitions)
        })
        .collect())
}

pub(super) async fn offset_fetch<S: Storage>(
    broker: &Broker<S>,
    request: OffsetFetchRequest,
    version: i16,
) -> Option<OffsetFetchResponse> {
    use offset_fetch_response::*;
    if version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for g in &request.groups {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                    .collect()
            });
            let member = g.member_id.as_deref().map(|m| (m, g.member_epoch));
            let (topics, error) = match fetch_group_offsets(broker, &g.group_id, topics, member).await {
                Ok(t) => (t, ErrorCode::None),
                Err(code) => (Vec::new(), code),
            };
            groups.push(OffsetFetchResponseGroup {
                group_id: g.group_id.clone(),
                error_code: error.code(),
                topics: topics
                    .into_iter()
                    .map(|(name, ps)| OffsetFetchResponseTopics {
                        name,
                        partitions: ps
                            .into_iter()
                            .map(|(p, offset, epoch, metadata)| OffsetFetchResponsePartitions {
                                partition_index: p,
                                committed_offset: offset,
                                committed_leader_epoch: epoch,
                                metadata: Some(metadata),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
        }
        return Some(OffsetFetchResponse {
            groups,
            ..Default::default()
        });
    }
    let topics = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.clone(), t.partition_indexes.clone()))
            .collect::<Vec<_>>()
    });
    let (found, error) = match fetch_group_offsets(broker, &request.group_id, topics.clone(), None).await {
        Ok(t) => (t, ErrorCode::None),
        Err(code) => {
            // v1 has no top-level error: every partition asked for carries it.
            let t = topics
                .unwrap_or_default()
                .into_iter()
                .map(|(name, ps)| (name, ps.into_iter().map(|p| (p, -1, -1, String::new())).collect()))
                .collect();
            (t, code)
        }
    };
    Some(OffsetFetchResponse {
        error_code: if version >= 2 { error.code() } else { 0 },
        topics: found
            .into_iter()
            .map(|(name, ps)| OffsetFetchResponseTopic {
                name,
                partitions: ps
                    .into_iter()
                    .map(|(p, offset, epoch, metadata)| OffsetFetchResponsePartition {
                        partition_index: p,
                        committed_offset: offset,
                        committed_leader_epoch: if version >= 5 { epoch } else { -1 },
                        metadata: Some(metadata),
                        error_code: if version < 2 { error.code() } else { 0 },
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// Loads every shard (ListGroups must see groups that no request has touched since the
/// broker started) and calls `f` on each.
async fn for_each_shard<S: Storage>(
    broker: &Broker<S>,
    mut f: impl FnMut(&crate::group::GroupCoordinatorShard),
) -> Result<(), ErrorCode> {
    if !broker.image().topics.contains_key(OFFSETS_TOPIC) {
        return Ok(());
    }
    for partition in 0..broker.groups.partitions {
        let guard = broker.load_group_shard(partition).await.map_err(|e| code_of(&e))?;
        f(guard.as_ref().expect("loaded"));
    }
    Ok(())
}

pub(super) async fn list_groups<S: Storage>(
    broker: &Broker<S>,
    request: ListGroupsRequest,
    version: i16,
) -> Option<ListGroupsResponse> {
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut groups = Vec::new();
    let result = for_each_shard(broker, |shard| {
        for (id, protocol_type, state, kind) in shard.list_groups() {
            if version >= 4 && !states.is_empty() && !states.contains(&state.to_lowercase()) {
                continue;
            }
            if version >= 5 && !types.is_empty() && !types.contains(&kind.to_string()) {
                continue;
            }
            groups.push(list_groups_response::ListedGroup {
                group_id: id,
                protocol_type,
                group_state: if version >= 4 { state } else { String::new() },
                group_type: if version >= 5 { kind.to_string() } else { String::new() },
                ..Default::default()
            });
        }
    })
    .await;
    Some(ListGroupsResponse {
        error_code: result.err().unwrap_or(ErrorCode::None).code(),
        groups,
        ..Default::default()
    })
}

pub(super) async fn describe_groups<S: Storage>(
    broker: &Broker<S>,
    request: DescribeGroupsRequest,
    version: i16,
) -> Option<DescribeGroupsResponse> {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group_id in &request.groups {
        let mut described = match broker.group_shard(group_id).await {
            Ok((_, guard)) => guard.as_ref().expect("loaded").describe_group(group_id),
            Err(e) => describe_groups_response::DescribedGroup {
                group_id: group_id.clone(),
                error_code: code_of(&e).code(),
                ..Default::default()
            },
        };
        if version >= 3 && request.include_authorized_operations {
            described.authorized_operations = GROUP_OPERATIONS;
        }
        if version < 6 {
            described.error_message = None;
            if described.group_state == "Dead" {
                described.error_code = 0;
            }
        } else if described.group_state == "Dead" {
            described.error_code = ErrorCode::GroupIdNotFound.code();
        }
        groups.push(described);
    }
    Some(DescribeGroupsResponse {
        groups,
        ..Default::default()
    })
}

pub(super) async fn consumer_group_describe<S: Storage>(
    broker: &Broker<S>,
    request: ConsumerGroupDescribeRequest,
    _version: i16,
) -> Option<ConsumerGroupDescribeResponse> {
    let topics = broker.topics_image();
    let mut groups = Vec::with_capacity(request.group_ids.len());
    for group_id in &request.group_ids {
        let mut described = match broker.group_shard(group_id).await {
            Ok((_, guard)) => guard
                .as_ref()
                .expect("loaded")
                .describe_consumer_group(group_id, &topics),
            Err(e) => consumer_group_describe_response::DescribedGroup {
                group_id: group_id.clone(),
                error_code: code_of(&e).code(),
                ..Default::default()
            },
        };
        if request.include_authorized_operations {
            described.authorized_operations = GROUP_OPERATIONS;
        }
        groups.push(described);
    }
    Some(ConsumerGroupDescribeResponse {
        groups,
        ..Default::default()
    })
}

pub(super) async fn delete_groups<S: Storage>(
    broker: &Broker<S>,
    request: DeleteGroupsRequest,
    _version: i16,
) -> Option<DeleteGroupsResponse> {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in &request.groups_names {
        let code = match broker.group_shard(group_id).await {
            Ok((partition, mut guard)) => {
                let shard = guard.as_ref().expect("loaded");
                match shard.delete_group(group_id) {
                    Ok(records) => match commit_records(broker, partition, &mut guard, records).await {
                        Ok(()) => ErrorCode::None,
                        Err(code) => code,
                    },
                    Err(code) => code,
                }
            }
            Err(e) => code_of(&e),
        };
        results.push(delete_groups_response::DeletableGroupResult {
            group_id: group_id.clone(),
            error_code: code.code(),
            ..Default::default()
        });
    }
    Some(DeleteGroupsResponse {
        results,
        ..Default::default()
    })
}

pub(super) async fn offset_delete<S: Storage>(
    broker: &Broker<S>,
    request: OffsetDeleteRequest,
    _version: i16,
) -> Option<OffsetDeleteResponse> {
    let topics: Vec<(String, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.partitions.iter().map(|p| p.partition_index).collect()))
        .collect();
    let outcome = match broker.group_shard(&request.group_id).await {
        Ok((partition, mut guard)) => {
            let shard = guard.as_ref().expect("loaded");
            match shard.delete_offsets(&request.group_id, &topics) {
                Ok((records, errors)) => commit_records(broker, partition, &mut guard, records)
                    .await
                    .map(|()| errors),
                Err(code) => Err(code),
            }
        }
        Err(e) => Err(code_of(&e)),
    };
    let (top, errors) = match outcome {
        Ok(errors) => (ErrorCode::None, errors),
        Err(code) => (code, Vec::new()),
    };
    Some(OffsetDeleteResponse {
        error_code: top.code(),
        topics: if top == ErrorCode::None {
            topics
                .into_iter()
                .zip(errors)
                .map(
                    |((name, ps), codes)| offset_delete_response::OffsetDeleteResponseTopic {
                        name,
                        partitions: ps
                            .into_iter()
                            .zip(codes)
                            .map(|(p, code)| offset_delete_response::OffsetDeleteResponsePartition {
                                partition_index: p,
                                error_code: code.code(),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    },
                )
                .collect()
        } else {
            Vec::new()
        },
        ..Default::default()
    })
}

pub(super) async fn consumer_group_heartbeat<S: Storage>(
    broker: &Broker<S>,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client: &Client,
) -> Option<ConsumerGroupHeartbeatResponse> {
    let failed = |code: ErrorCode| ConsumerGroupHeartbeatResponse {
        error_code: code.code(),
        ..Default::default()
    };
    let topics = broker.topics_image();
    match broker.group_shard(&request.group_id).await {
        Ok((partition, mut guard)) => {
            let shard = guard.as_mut().expect("loaded");
            let (effects, response) =
                shard.consumer_group_heartbeat(&request, version, &client.id, &client.host, &topics, clock::now_ms());
            match broker.group_commit(partition, &mut guard, effects).await {
                Ok(()) => Some(response),
                Err(e) => Some(failed(code_of(&e))),
            }
        }
        Err(e) => Some(failed(code_of(&e))),
    }
}
