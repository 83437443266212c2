//! The consumer in a group: `subscribe`, `poll`, `commit`, `close`, with either rebalance
//! protocol (`group.protocol`: `classic`, the JoinGroup/SyncGroup dance with the range
//! assignor run by the leader, or `consumer`, KIP-848's ConsumerGroupHeartbeat with the
//! broker assigning). One task drives everything from `poll`: membership, heartbeats,
//! auto-commit and fetching, so `poll` must be called more often than
//! `session.timeout.ms` (classic) or the broker's session timeout (consumer).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::consumer::ConsumerRecord;
use super::{bootstrap, fetch_metadata, ClientConfig, ClientError, Connection, Consumer};
use crate::protocol::codec::{Message, Reader, Uuid};
use crate::protocol::messages::*;
use crate::server::clock;

/// Kafka's error codes the group client acts on.
mod code {
    pub const NOT_COORDINATOR: i16 = 16;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
}

/// Joins tried in one `poll` at most before it returns (and tries again on the next).
const JOIN_ATTEMPTS_MAX: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupProtocol {
    Classic,
    Consumer,
}

pub struct GroupConsumer {
    config: ClientConfig,
    group_id: String,
    protocol: GroupProtocol,
    inner: Consumer,
    topics: Vec<String>,
    coordinator: Option<Connection>,
    member_id: String,
    instance_id: Option<String>,
    /// Classic: the generation; consumer: the member epoch.
    generation: i32,
    /// Classic: rejoin at the next poll.
    needs_join: bool,
    /// Consumer: the owned partitions changed since the last heartbeat.
    owned_changed: bool,
    assignment: BTreeSet<(String, i32)>,
    /// Assigned partitions whose committed offsets are not known yet: not fetched from
    /// until they are (starting anywhere else would re-read or skip).
    unpositioned: BTreeSet<(String, i32)>,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    heartbeat_interval_ms: i64,
    next_heartbeat_ms: i64,
    auto_commit: bool,
    auto_commit_interval_ms: i64,
    next_auto_commit_ms: i64,
    /// Positions committed last, to commit only what moved.
    committed: BTreeMap<(String, i32), i64>,
    topic_names: BTreeMap<Uuid, String>,
}

impl GroupConsumer {
    pub fn new(config: ClientConfig) -> Result<GroupConsumer, ClientError> {
        let group_id = config
            .get("group.id")
            .filter(|g| !g.is_empty())
            .ok_or_else(|| ClientError::Config("group.id is required to subscribe".into()))?
            .to_string();
        let protocol = match config.get("group.protocol").unwrap_or("classic") {
            "classic" => GroupProtocol::Classic,
            "consumer" => GroupProtocol::Consumer,
            other => return Err(ClientError::Config(format!("invalid value {other} for group.protocol"))),
        };
        let now = clock::now_ms();
        let client_id = config.client_id();
        let member_id = match protocol {
            // KIP-1082: the client makes its member id, unique per consumer instance.
            GroupProtocol::Consumer => member_uuid(&client_id, &group_id, now),
            GroupProtocol::Classic => String::new(),
        };
        Ok(GroupConsumer {
            inner: Consumer::new(config.clone())?,
            group_id,
            protocol,
            topics: Vec::new(),
            coordinator: None,
            member_id,
            instance_id: config.get("group.instance.id").map(str::to_string),
            generation: -1,
            needs_join: true,
            owned_changed: true,
            assignment: BTreeSet::new(),
            unpositioned: BTreeSet::new(),
            session_timeout_ms: config.get_or("session.timeout.ms", 45_000)?,
            rebalance_timeout_ms: config.get_or("max.poll.interval.ms", 300_000)?,
            heartbeat_interval_ms: config.get_or("heartbeat.interval.ms", 3_000)?,
            next_heartbeat_ms: 0,
            auto_commit: config.get_or("enable.auto.commit", true)?,
            auto_commit_interval_ms: config.get_or("auto.commit.interval.ms", 5_000)?,
            next_auto_commit_ms: now,
            committed: BTreeMap::new(),
            topic_names: BTreeMap::new(),
            config,
        })
    }

    pub fn subscribe(&mut self, topics: &[String]) {
        let mut topics = topics.to_vec();
        topics.sort();
        topics.dedup();
        if topics != self.topics {
            self.topics = topics;
            self.needs_join = true;
            self.next_heartbeat_ms = 0;
        }
    }

    /// The partitions this member may consume now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.assignment.iter().cloned().collect()
    }

    /// The member id and generation (classic) or member epoch (consumer).
    pub fn membership(&self) -> (String, i32) {
        (self.member_id.clone(), self.generation)
    }

    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.inner.position(topic, partition)
    }

    /// Reads `topic`-`partition` from `offset` next (and commits from there).
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        self.inner.seek(topic, partition, offset);
    }

    /// Keeps the membership alive, then fetches from the assigned partitions.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        if let Err(e) = self.maintain().await {
            // Back off (`retry.backoff.ms`) before the caller polls again.
            let backoff = self.config.get_or("retry.backoff.ms", 100u64)?;
            tokio::time::sleep(Duration::from_millis(backoff).min(timeout)).await;
            return Err(e);
        }
        if self.assignment.is_empty() {
            tokio::time::sleep(timeout.min(Duration::from_millis(100))).await;
            return Ok(Vec::new());
        }
        let wait = timeout.min(Duration::from_millis(self.heartbeat_interval_ms.max(1) as u64));
        self.inner.poll(wait).await
    }

    /// Membership, heartbeats and auto-commit, as due.
    async fn maintain(&mut self) -> Result<(), ClientError> {
        let now = clock::now_ms();
        if self.auto_commit && now >= self.next_auto_commit_ms && !self.assignment.is_empty() {
            self.next_auto_commit_ms = now + self.auto_commit_interval_ms;
            // A failed auto-commit is retried at the next interval, as in Java.
            let _ = self.commit().await;
        }
        match self.protocol {
            GroupProtocol::Classic => {
                for _ in 0..JOIN_ATTEMPTS_MAX {
                    if !self.needs_join {
                        break;
                    }
                    self.join_classic().await?;
                }
                if !self.needs_join && clock::now_ms() >= self.next_heartbeat_ms {
                    self.heartbeat_classic().await?;
                }
            }
            GroupProtocol::Consumer => {
                if clock::now_ms() >= self.next_heartbeat_ms {
                    self.heartbeat_consumer().await?;
                }
            }
        }
        self.start_positions().await
    }

    /// Commits the position of every assigned partition (what `poll` has handed out).
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let offsets: Vec<((String, i32), i64)> = self
            .assignment
            .difference(&self.unpositioned)
            .filter_map(|tp| self.inner.position(&tp.0, tp.1).map(|o| (tp.clone(), o)))
            .filter(|(tp, o)| self.committed.get(tp) != Some(o))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        self.commit_offsets(&offsets).await
    }

    /// Commits these offsets (the next record to read, per partition).
    pub async fn commit_offsets(&mut self, offsets: &[((String, i32), i64)]) -> Result<(), ClientError> {
        let mut topics: BTreeMap<&str, Vec<offset_commit_request::OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            topics
                .entry(topic)
                .or_default()
                .push(offset_commit_request::OffsetCommitRequestPartition {
                    partition_index: *partition,
                    committed_offset: *offset,
                    committed_leader_epoch: -1,
                    committed_metadata: Some(String::new()),
                    ..Default::default()
                });
        }
        let request = OffsetCommitRequest {
            group_id: self.group_id.clone(),
            generation_id_or_member_epoch: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            retention_time_ms: -1,
            topics: topics
                .into_iter()
                .map(|(name, partitions)| offset_commit_request::OffsetCommitRequestTopic {
                    name: name.to_string(),
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let response: OffsetCommitResponse = self.coordinator_request(&request).await?;
        for t in &response.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    self.on_group_error(p.error_code);
                    return Err(ClientError::Kafka(
                        p.error_code,
                        format!("OffsetCommit {}-{}", t.name, p.partition_index),
                    ));
                }
            }
        }
        for (tp, offset) in offsets {
            self.committed.insert(tp.clone(), *offset);
        }
        Ok(())
    }

    /// The committed offsets of `partitions` (-1 where none).
    pub async fn committed(&mut self, partitions: &[(String, i32)]) -> Result<Vec<i64>, ClientError> {
        let version = self.coordinator().await?.version::<OffsetFetchRequest>()?;
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        let request = if version >= 8 {
            OffsetFetchRequest {
                groups: vec![offset_fetch_request::OffsetFetchRequestGroup {
                    group_id: self.group_id.clone(),
                    member_id: (self.protocol == GroupProtocol::Consumer && version >= 9)
                        .then(|| self.member_id.clone()),
                    member_epoch: if self.protocol == GroupProtocol::Consumer {
                        self.generation
                    } else {
                        -1
                    },
                    topics: Some(
                        by_topic
                            .iter()
                            .map(|(name, ps)| offset_fetch_request::OffsetFetchRequestTopics {
                                name: name.clone(),
                                partition_indexes: ps.clone(),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }],
                ..Default::default()
            }
        } else {
            OffsetFetchRequest {
                group_id: self.group_id.clone(),
                topics: Some(
                    by_topic
                        .iter()
                        .map(|(name, ps)| offset_fetch_request::OffsetFetchRequestTopic {
                            name: name.clone(),
                            partition_indexes: ps.clone(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }
        };
        let response: OffsetFetchResponse = self.coordinator_request(&request).await?;
        let mut found: BTreeMap<(String, i32), i64> = BTreeMap::new();
        if version >= 8 {
            for g in &response.groups {
                if g.error_code != 0 {
                    self.on_group_error(g.error_code);
                    return Err(ClientError::Kafka(g.error_code, "OffsetFetch".into()));
                }
                for t in &g.topics {
                    for p in &t.partitions {
                        found.insert((t.name.clone(), p.partition_index), p.committed_offset);
                    }
                }
            }
        } else {
            if response.error_code != 0 {
                return Err(ClientError::Kafka(response.error_code, "OffsetFetch".into()));
            }
            for t in &response.topics {
                for p in &t.partitions {
                    found.insert((t.name.clone(), p.partition_index), p.committed_offset);
                }
            }
        }
        Ok(partitions
            .iter()
            .map(|tp| found.get(tp).copied().unwrap_or(-1))
            .collect())
    }

    /// Commits (with auto-commit) and leaves the group, so that the others take over at once.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if self.auto_commit {
            let _ = self.commit().await;
        }
        match self.protocol {
            GroupProtocol::Classic if !self.member_id.is_empty() => {
                let batched = self.coordinator().await?.version::<LeaveGroupRequest>()? >= 3;
                let request = LeaveGroupRequest {
                    group_id: self.group_id.clone(),
                    member_id: if batched { String::new() } else { self.member_id.clone() },
                    members: if batched {
                        vec![leave_group_request::MemberIdentity {
                            member_id: self.member_id.clone(),
                            group_instance_id: self.instance_id.clone(),
                            ..Default::default()
                        }]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                };
                let _: LeaveGroupResponse = self.coordinator_request(&request).await?;
            }
            GroupProtocol::Consumer if self.generation > 0 => {
                let request = ConsumerGroupHeartbeatRequest {
                    group_id: self.group_id.clone(),
                    member_id: self.member_id.clone(),
                    member_epoch: if self.instance_id.is_some() { -2 } else { -1 },
                    instance_id: self.instance_id.clone(),
                    ..Default::default()
                };
                let _: ConsumerGroupHeartbeatResponse = self.coordinator_request(&request).await?;
            }
            _ => {}
        }
        Ok(())
    }

    fn on_group_error(&mut self, code: i16) {
        match code {
            code::NOT_COORDINATOR | code::COORDINATOR_NOT_AVAILABLE | code::COORDINATOR_LOAD_IN_PROGRESS => {
                self.coordinator = None;
            }
            code::UNKNOWN_MEMBER_ID | code::ILLEGAL_GENERATION | code::FENCED_MEMBER_EPOCH => {
                // Out of the group: whatever we held is no longer ours.
                self.set_assignment(BTreeSet::new());
                if self.protocol == GroupProtocol::Classic {
                    self.member_id.clear();
                }
                self.generation = if self.protocol == GroupProtocol::Consumer {
                    0
                } else {
                    -1
                };
                self.needs_join = true;
                self.next_heartbeat_ms = 0;
            }
            code::REBALANCE_IN_PROGRESS => self.needs_join = true,
            code::STALE_MEMBER_EPOCH => self.next_heartbeat_ms = 0,
            _ => {}
        }
    }

    async fn coordinator(&mut self) -> Result<&mut Connection, ClientError> {
        if self.coordinator.is_none() {
            let mut connection = bootstrap(&self.config).await?;
            let batched = connection.version::<FindCoordinatorRequest>()? >= 4;
            let request = FindCoordinatorRequest {
                key: if batched { String::new() } else { self.group_id.clone() },
                key_type: 0,
                coordinator_keys: if batched {
                    vec![self.group_id.clone()]
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            let (response, version): (FindCoordinatorResponse, i16) = connection.request(&request).await?;
            let (error, host, port) = if version >= 4 {
                let c = response
                    .coordinators
                    .first()
                    .ok_or_else(|| ClientError::Protocol("FindCoordinator without coordinators".into()))?;
                (c.error_code, c.host.clone(), c.port)
            } else {
                (response.error_code, response.host.clone(), response.port)
            };
            if error != 0 {
                return Err(ClientError::Kafka(error, format!("FindCoordinator {}", self.group_id)));
            }
            // A JoinGroup may wait out a whole rebalance.
            let timeout = self
                .config
                .request_timeout()?
                .max(Duration::from_millis(self.rebalance_timeout_ms as u64 + 5_000));
            let address = format!("{host}:{port}");
            self.coordinator = Some(Connection::connect(&address, &self.config.client_id(), timeout).await?);
        }
        Ok(self.coordinator.as_mut().expect("connected above"))
    }

    async fn coordinator_request<Req: Message, Resp: Message>(&mut self, request: &Req) -> Result<Resp, ClientError> {
        let result = self.coordinator().await?.request(request).await;
        match result {
            Ok((response, _)) => Ok(response),
            Err(e) => {
                self.coordinator = None;
                Err(e)
            }
        }
    }

    /// A new assignment: partitions that stay keep their positions; new ones start at the
    /// committed offset, or `auto.offset.reset` where none is, once that is known.
    fn set_assignment(&mut self, assignment: BTreeSet<(String, i32)>) {
        if assignment != self.assignment {
            self.owned_changed = true;
        }
        self.committed.retain(|tp, _| assignment.contains(tp));
        for tp in assignment.difference(&self.assignment) {
            self.unpositioned.insert(tp.clone());
        }
        self.unpositioned.retain(|tp| assignment.contains(tp));
        self.assignment = assignment;
        self.assign_positioned();
    }

    fn assign_positioned(&mut self) {
        let ready = self.assignment.difference(&self.unpositioned).cloned().collect();
        self.inner.assign(ready);
    }

    /// Looks up the committed offsets of newly assigned partitions.
    async fn start_positions(&mut self) -> Result<(), ClientError> {
        if self.unpositioned.is_empty() {
            return Ok(());
        }
        let added: Vec<(String, i32)> = self.unpositioned.iter().cloned().collect();
        let offsets = self.committed(&added).await?;
        for (tp, offset) in added.into_iter().zip(offsets) {
            self.unpositioned.remove(&tp);
            if offset >= 0 {
                self.inner.seek(&tp.0, tp.1, offset);
                self.committed.insert(tp, offset);
            }
        }
        self.assign_positioned();
        Ok(())
    }

    async fn join_classic(&mut self) -> Result<(), ClientError> {
        // Eager rebalancing: commit and give up everything before joining.
        if self.auto_commit && !self.assignment.is_empty() {
            let _ = self.commit().await;
        }
        self.set_assignment(BTreeSet::new());
        let subscription = encode_versioned(
            &ConsumerProtocolSubscription {
                topics: self.topics.clone(),
                ..Default::default()
            },
            1,
        )?;
        let request = JoinGroupRequest {
            group_id: self.group_id.clone(),
            session_timeout_ms: self.session_timeout_ms,
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            protocol_type: "consumer".into(),
            protocols: vec![join_group_request::JoinGroupRequestProtocol {
                name: "range".into(),
                metadata: subscription,
                ..Default::default()
            }],
            ..Default::default()
        };
        let join: JoinGroupResponse = self.coordinator_request(&request).await?;
        match join.error_code {
            0 => {}
            code::MEMBER_ID_REQUIRED => {
                self.member_id = join.member_id;
                return Ok(());
            }
            code => {
                self.on_group_error(code);
                if code == code::UNKNOWN_MEMBER_ID || code == code::REBALANCE_IN_PROGRESS {
                    return Ok(());
                }
                return Err(ClientError::Kafka(code, format!("JoinGroup {}", self.group_id)));
            }
        }
        self.member_id = join.member_id.clone();
        self.generation = join.generation_id;
        let assignments = if join.leader == self.member_id && !join.skip_assignment {
            self.assign_range(&join.members).await?
        } else {
            Vec::new()
        };
        let request = SyncGroupRequest {
            group_id: self.group_id.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            protocol_type: Some("consumer".into()),
            protocol_name: join.protocol_name.clone(),
            assignments,
            ..Default::default()
        };
        let sync: SyncGroupResponse = self.coordinator_request(&request).await?;
        if sync.error_code != 0 {
            self.on_group_error(sync.error_code);
            return Ok(());
        }
        let assigned = decode_assignment(&sync.assignment)?;
        self.set_assignment(assigned);
        self.needs_join = false;
        self.next_heartbeat_ms = clock::now_ms() + self.heartbeat_interval_ms;
        Ok(())
    }

    /// Kafka's RangeAssignor: per topic, members sorted by id, consecutive partitions each,
    /// the first ones taking one more.
    async fn assign_range(
        &mut self,
        members: &[join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<sync_group_request::SyncGroupRequestAssignment>, ClientError> {
        let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in members {
            let topics = if m.metadata.len() >= 2 {
                let version = i16::from_be_bytes([m.metadata[0], m.metadata[1]]);
                let mut r = Reader::new(m.metadata.slice(2..));
                ConsumerProtocolSubscription::decode(&mut r, version.min(ConsumerProtocolSubscription::VERSION_MAX))
                    .map(|s| s.topics)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            subscriptions.insert(m.member_id.clone(), topics);
        }
        let all: BTreeSet<String> = subscriptions.values().flatten().cloned().collect();
        let all: Vec<String> = all.into_iter().collect();
        let mut connection = bootstrap(&self.config).await?;
        let metadata = fetch_metadata(&mut connection, Some(&all), false).await?;
        let mut plan: BTreeMap<String, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for t in &metadata.topics {
            let (0, Some(name)) = (t.error_code, &t.name) else {
                continue;
            };
            let mut partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            partitions.sort();
            let eligible: Vec<&String> = subscriptions
                .iter()
                .filter(|(_, topics)| topics.contains(name))
                .map(|(id, _)| id)
                .collect();
            if eligible.is_empty() {
                continue;
            }
            let per = partitions.len() / eligible.len();
            let extra = partitions.len() % eligible.len();
            let mut next = 0;
            for (i, member) in eligible.iter().enumerate() {
                let take = per + usize::from(i < extra);
                plan.entry((*member).clone())
                    .or_default()
                    .insert(name.clone(), partitions[next..next + take].to_vec());
                next += take;
            }
        }
        subscriptions
            .keys()
            .map(|member| {
                let assignment = ConsumerProtocolAssignment {
                    assigned_partitions: plan
                        .get(member)
                        .into_iter()
                        .flatten()
                        .map(|(topic, ps)| consumer_protocol_assignment::TopicPartition {
                            topic: topic.clone(),
                            partitions: ps.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                Ok(sync_group_request::SyncGroupRequestAssignment {
                    member_id: member.clone(),
                    assignment: encode_versioned(&assignment, 1)?,
                    ..Default::default()
                })
            })
            .collect()
    }

    async fn heartbeat_classic(&mut self) -> Result<(), ClientError> {
        let request = HeartbeatRequest {
            group_id: self.group_id.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            ..Default::default()
        };
        self.next_heartbeat_ms = clock::now_ms() + self.heartbeat_interval_ms;
        let response: HeartbeatResponse = self.coordinator_request(&request).await?;
        if response.error_code != 0 {
            self.on_group_error(response.error_code);
        }
        Ok(())
    }

    async fn heartbeat_consumer(&mut self) -> Result<(), ClientError> {
        let joining = self.generation <= 0;
        if joining {
            self.generation = 0;
        }
        let owned = (joining || self.owned_changed).then(|| {
            let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
            for (topic, p) in &self.assignment {
                if let Some(id) = self.topic_names.iter().find(|(_, n)| *n == topic).map(|(id, _)| *id) {
                    by_topic.entry(id).or_default().push(*p);
                }
            }
            by_topic
                .into_iter()
                .map(
                    |(topic_id, partitions)| consumer_group_heartbeat_request::TopicPartitions {
                        topic_id,
                        partitions,
                        ..Default::default()
                    },
                )
                .collect()
        });
        let request = ConsumerGroupHeartbeatRequest {
            group_id: self.group_id.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.generation,
            instance_id: self.instance_id.clone(),
            rebalance_timeout_ms: if joining { self.rebalance_timeout_ms } else { -1 },
            subscribed_topic_names: (joining || self.needs_join).then(|| self.topics.clone()),
            topic_partitions: owned,
            ..Default::default()
        };
        let response: ConsumerGroupHeartbeatResponse = match self.coordinator_request(&request).await {
            Ok(r) => r,
            Err(e) => {
                // The answer may have carried a new assignment: the next heartbeat is a
                // full one (subscription and owned partitions), which the broker answers
                // with the assignment again.
                self.owned_changed = true;
                self.needs_join = true;
                return Err(e);
            }
        };
        if response.error_code != 0 {
            self.next_heartbeat_ms = clock::now_ms() + 100;
            self.on_group_error(response.error_code);
            return match response.error_code {
                code::NOT_COORDINATOR
                | code::COORDINATOR_NOT_AVAILABLE
                | code::COORDINATOR_LOAD_IN_PROGRESS
                | code::UNKNOWN_MEMBER_ID
                | code::FENCED_MEMBER_EPOCH => Ok(()),
                code => Err(ClientError::Kafka(
                    code,
                    format!("ConsumerGroupHeartbeat {}", self.group_id),
                )),
            };
        }
        self.needs_join = false;
        self.owned_changed = false;
        self.generation = response.member_epoch;
        self.heartbeat_interval_ms = response.heartbeat_interval_ms.max(1) as i64;
        self.next_heartbeat_ms = clock::now_ms() + self.heartbeat_interval_ms;
        if let Some(assignment) = response.assignment {
            let unknown = assignment
                .topic_partitions
                .iter()
                .any(|tp| !self.topic_names.contains_key(&tp.topic_id));
            if unknown {
                let fetched = async {
                    let mut connection = bootstrap(&self.config).await?;
                    fetch_metadata(&mut connection, None, false).await
                };
                let metadata = match fetched.await {
                    Ok(m) => m,
                    Err(e) => {
                        // The assignment is not taken yet: the next heartbeat says what we
                        // own, and the broker sends it again.
                        self.owned_changed = true;
                        return Err(e);
                    }
                };
                for t in &metadata.topics {
                    if let Some(name) = &t.name {
                        self.topic_names.insert(t.topic_id, name.clone());
                    }
                }
            }
            let mut assigned = BTreeSet::new();
            for tp in &assignment.topic_partitions {
                if let Some(name) = self.topic_names.get(&tp.topic_id) {
                    for p in &tp.partitions {
                        assigned.insert((name.clone(), *p));
                    }
                }
            }
            let revoked: Vec<(String, i32)> = self.assignment.difference(&assigned).cloned().collect();
            if self.auto_commit && !revoked.is_empty() {
                // Commit what we give up, before the broker hands it to someone else.
                let offsets: Vec<((String, i32), i64)> = revoked
                    .iter()
                    .filter_map(|tp| self.inner.position(&tp.0, tp.1).map(|o| (tp.clone(), o)))
                    .filter(|(tp, o)| self.committed.get(tp) != Some(o))
                    .collect();
                if !offsets.is_empty() {
                    let _ = self.commit_offsets(&offsets).await;
                }
            }
            self.set_assignment(assigned);
            if !revoked.is_empty() {
                // Tell the broker at once that they are released.
                self.next_heartbeat_ms = 0;
            }
        }
        Ok(())
    }
}

/// The partitions in a classic group's assignment (ConsumerProtocolAssignment after its
/// version), as the leader wrote it; empty bytes assign nothing. A version newer than ours
/// is read as our newest, as Kafka's clients do (later versions only add fields).
pub fn decode_assignment(bytes: &Bytes) -> Result<BTreeSet<(String, i32)>, ClientError> {
    let mut assigned = BTreeSet::new();
    if bytes.len() < 2 {
        return Ok(assigned);
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version < 0 {
        return Err(ClientError::Protocol(format!("assignment version {version}")));
    }
    let mut r = Reader::new(bytes.slice(2..));
    let a = ConsumerProtocolAssignment::decode(&mut r, version.min(ConsumerProtocolAssignment::VERSION_MAX))?;
    for t in a.assigned_partitions {
        for p in t.partitions {
            assigned.insert((t.topic.clone(), p));
        }
    }
    Ok(assigned)
}

fn encode_versioned<M: Message>(message: &M, version: i16) -> Result<Bytes, ClientError> {
    let mut w = BytesMut::new();
    w.put_i16(version);
    message.encode(&mut w, version)?;
    Ok(w.freeze())
}

/// A member id for KIP-848, mixed from the client id, the group and the time.
fn member_uuid(client_id: &str, group_id: &str, now_ms: i64) -> String {
    let text_hash = |t: &str| {
        t.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        })
    };
    crate::group::mix_uuid(&[text_hash(client_id), text_hash(group_id), now_ms as u64]).to_base64()
}
