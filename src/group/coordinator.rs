//! `GroupCoordinatorShard`: the groups and offsets of one `__consumer_offsets` partition,
//! and the classic rebalance protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::consumer::ConsumerGroup;
use super::records::{GroupMetadataValue, GroupRecord, MemberMetadata, OffsetAndMetadata};
use crate::error::ErrorCode;
use crate::protocol::codec::Uuid;
use crate::protocol::messages::*;

/// The shell's handle on a request whose reply may come later (a JoinGroup waits for the
/// rebalance, a follower's SyncGroup for the leader's).
pub type RequestId = u64;

/// Kafka's group coordinator settings, with its key names in the comments.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub session_timeout_ms_min: i32,
    /// `group.max.session.timeout.ms`
    pub session_timeout_ms_max: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`: members of one classic group.
    pub group_members_max: usize,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_bytes_max: usize,
    /// `group.consumer.session.timeout.ms`
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`
    pub consumer_group_members_max: usize,
    /// Groups one shard holds at most; a new group beyond it is refused.
    pub groups_per_shard_max: usize,
    /// `group.coordinator.rebalance.protocols` contains `consumer`.
    pub consumer_protocol_enabled: bool,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            group_members_max: 1_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offset_metadata_bytes_max: 4096,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_group_members_max: 1_000,
            groups_per_shard_max: 100_000,
            consumer_protocol_enabled: true,
        }
    }
}

/// A reply released later, once the records before it are committed.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Join(JoinGroupResponse),
    Sync(SyncGroupResponse),
}

#[derive(Debug, Default)]
pub struct Effects {
    /// Append these to the shard's partition, in order, then replay them.
    pub records: Vec<GroupRecord>,
    /// Then release these.
    pub replies: Vec<(RequestId, Reply)>,
}

/// What the shard needs of the metadata image: topic name to (id, partition count).
pub type TopicsImage = BTreeMap<String, (Uuid, i32)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl ClassicState {
    pub(super) fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct ClassicMember {
    pub(super) member_id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) rebalance_timeout_ms: i32,
    pub(super) session_timeout_ms: i32,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    /// A JoinGroup waiting for the join phase to end: its request and version.
    awaiting_join: Option<(RequestId, i16)>,
    /// A SyncGroup waiting for the leader's assignment.
    awaiting_sync: Option<(RequestId, i16)>,
    /// The member sent SyncGroup in this generation.
    synced: bool,
    heartbeat_deadline_ms: i64,
}

impl ClassicMember {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
pub(super) struct ClassicGroup {
    pub(super) state: ClassicState,
    pub(super) protocol_type: Option<String>,
    pub(super) generation: i32,
    pub(super) protocol: Option<String>,
    pub(super) leader: Option<String>,
    /// In join order: the first is the leader when the old one is gone.
    pub(super) members: Vec<ClassicMember>,
    /// Member ids handed out with MEMBER_ID_REQUIRED (KIP-394), until their deadline.
    pending: BTreeMap<String, i64>,
    /// When the join phase ends (PreparingRebalance) or the leader's assignment is overdue
    /// (CompletingRebalance).
    deadline_ms: Option<i64>,
    /// The initial delay may still extend by this much (`group.initial.rebalance.delay.ms`).
    initial_delay_left_ms: Option<i64>,
    /// A member joined since the initial delay was last extended.
    joined_during_delay: bool,
    pub(super) state_timestamp_ms: i64,
}

impl ClassicGroup {
    fn new(now_ms: i64) -> ClassicGroup {
        ClassicGroup {
            state: ClassicState::Empty,
            protocol_type: None,
            generation: 0,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: BTreeMap::new(),
            deadline_ms: None,
            initial_delay_left_ms: None,
            joined_during_delay: false,
            state_timestamp_ms: now_ms,
        }
    }

    fn member(&self, id: &str) -> Option<&ClassicMember> {
        self.members.iter().find(|m| m.member_id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut ClassicMember> {
        self.members.iter_mut().find(|m| m.member_id == id)
    }

    fn static_member(&self, instance: &str) -> Option<&ClassicMember> {
        self.members.iter().find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Protocols every member supports.
    fn candidates(&self) -> Vec<String> {
        let mut out: Vec<String> = match self.members.first() {
            Some(m) => m.protocols.iter().map(|(n, _)| n.clone()).collect(),
            None => return Vec::new(),
        };
        out.retain(|p| self.members.iter().all(|m| m.protocols.iter().any(|(n, _)| n == p)));
        out
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self.candidates().iter().any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// Kafka's vote: every member votes for its most preferred candidate; most votes win,
    /// ties going to the leader's preference order.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &self.members {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        candidates
            .iter()
            .find(|c| votes.get(c.as_str()) == Some(&best))
            .cloned()
    }

    fn rebalance_timeout_max(&self) -> i64 {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.iter().all(|m| m.awaiting_join.is_some())
    }

    fn set_state(&mut self, state: ClassicState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    fn to_record(&self, group_id: &str) -> GroupRecord {
        GroupRecord::ClassicGroup {
            group: group_id.to_string(),
            value: Some(GroupMetadataValue {
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation: self.generation,
                protocol: self.protocol.clone(),
                leader: self.leader.clone(),
                state_timestamp_ms: self.state_timestamp_ms,
                members: self
                    .members
                    .iter()
                    .map(|m| MemberMetadata {
                        member_id: m.member_id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        subscription: self.protocol.as_deref().map(|p| m.metadata_for(p)).unwrap_or_default(),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
            }),
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

impl Group {
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Group::Classic(g) => g.members.is_empty(),
            Group::Consumer(g) => g.members.is_empty(),
        }
    }
}

/// The groups and offsets of one `__consumer_offsets` partition.
pub struct GroupCoordinatorShard {
    pub(super) config: GroupConfig,
    pub(super) partition: i32,
    pub(super) groups: BTreeMap<String, Group>,
    /// Committed offsets: group, then (topic, partition).
    pub(super) offsets: BTreeMap<String, BTreeMap<(String, i32), OffsetAndMetadata>>,
    /// Member ids made here, so that no two are alike (with the time, across restarts).
    member_ids_made: u64,
    /// Records replayed into this shard: a shard reloaded in the same millisecond (the
    /// simulator's clock allows it) must not make the ids it made before.
    records_replayed: u64,
}

impl GroupCoordinatorShard {
    pub fn new(config: GroupConfig, partition: i32) -> GroupCoordinatorShard {
        GroupCoordinatorShard {
            config,
            partition,
            groups: BTreeMap::new(),
            offsets: BTreeMap::new(),
            member_ids_made: 0,
            records_replayed: 0,
        }
    }

    /// Applies a committed record: the only way offsets and persisted group state change.
    pub fn replay(&mut self, record: &GroupRecord, now_ms: i64) {
        self.records_replayed += 1;
        match record {
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let key = (topic.clone(), *partition);
                match value {
                    Some(v) => {
                        self.offsets.entry(group.clone()).or_default().insert(key, v.clone());
                    }
                    None => {
                        if let Some(offsets) = self.offsets.get_mut(group) {
                            offsets.remove(&key);
                            if offsets.is_empty() {
                                self.offsets.remove(group);
                            }
                        }
                    }
                }
            }
            GroupRecord::ClassicGroup { group, value } => match value {
                None => {
                    self.groups.remove(group);
                }
                Some(v) => {
                    // A record this shard just wrote describes its live state already
                    // (which also holds who waits for what); any other replaces it.
                    if let Some(Group::Classic(live)) = self.groups.get(group) {
                        if live.to_record(group) == *record {
                            return;
                        }
                    }
                    let mut rebuilt = ClassicGroup::new(v.state_timestamp_ms);
                    replay_classic(&mut rebuilt, v, now_ms);
                    self.groups.insert(group.clone(), Group::Classic(rebuilt));
                }
            },
            GroupRecord::ConsumerGroupEpoch { .. } | GroupRecord::ConsumerMember { .. } => {
                self.replay_consumer(record, now_ms);
            }
        }
    }

    /// A member id no other member of this shard has had: `<client_id>-<uuid>`, as Kafka.
    /// Made from the time, the shard's history and a counter, and never one a current
    /// member holds (found by the group_coordinator fuzz target: a shard reloaded in the
    /// same millisecond made the id of a member it had just loaded).
    pub(super) fn new_member_id(&mut self, client_id: &str, now_ms: i64) -> String {
        loop {
            self.member_ids_made += 1;
            let id = super::mix_uuid(&[
                self.partition as u64,
                now_ms as u64,
                self.member_ids_made,
                self.records_replayed,
                client_id.len() as u64,
            ]);
            let id = format!("{client_id}-{}", uuid_text(&id));
            if !self.is_member_anywhere(&id) && !self.is_member_anywhere(id.trim_start_matches('-')) {
                return id;
            }
        }
    }

    fn is_member_anywhere(&self, member_id: &str) -> bool {
        self.groups.values().any(|g| match g {
            Group::Classic(g) => g.member(member_id).is_some(),
            Group::Consumer(g) => g.members.contains_key(member_id),
        })
    }

    fn classic(&mut self, group_id: &str) -> Option<&mut ClassicGroup> {
        match self.groups.get_mut(group_id) {
            Some(Group::Classic(g)) => Some(g),
            _ => None,
        }
    }

    pub fn join_group(
        &mut self,
        request_id: RequestId,
        request: &JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
        now_ms: i64,
    ) -> Effects {
        let mut effects = Effects::default();
        let fail = |code: ErrorCode, member_id: &str| {
            Reply::Join(fit_join(
                JoinGroupResponse {
                    error_code: code.code(),
                    generation_id: -1,
                    member_id: member_id.to_string(),
                    ..Default::default()
                },
                version,
            ))
        };
        let group_id = request.group_id.as_str();
        let session = request.session_timeout_ms;
        let rebalance = if version == 0 || request.rebalance_timeout_ms <= 0 {
            session
        } else {
            request.rebalance_timeout_ms
        };
        let protocols: Vec<(String, Bytes)> = request
            .protocols
            .iter()
            .map(|p| (p.name.clone(), p.metadata.clone()))
            .collect();
        let error = if group_id.is_empty() {
            Some(ErrorCode::InvalidGroupId)
        } else if session < self.config.session_timeout_ms_min || session > self.config.session_timeout_ms_max {
            Some(ErrorCode::InvalidSessionTimeout)
        } else if request.protocol_type.is_empty() || protocols.is_empty() {
            Some(ErrorCode::InconsistentGroupProtocol)
        } else {
            None
        };
        if let Some(code) = error {
            effects.replies.push((request_id, fail(code, &request.member_id)));
            return effects;
        }
        match self.groups.get(group_id) {
            Some(Group::Consumer(g)) if !g.members.is_empty() => {
                effects.replies.push((
                    request_id,
                    fail(ErrorCode::InconsistentGroupProtocol, &request.member_id),
                ));
                return effects;
            }
            Some(Group::Consumer(_)) => {
                // An empty consumer group becomes a classic one, as Kafka converts it.
                effects.records.extend(self.consumer_group_tombstones(group_id));
                self.groups
                    .insert(group_id.to_string(), Group::Classic(ClassicGroup::new(now_ms)));
            }
            Some(Group::Classic(_)) => {}
            None => {
                if self.groups.len() >= self.config.groups_per_shard_max {
                    effects
                        .replies
                        .push((request_id, fail(ErrorCode::CoordinatorNotAvailable, &request.member_id)));
                    return effects;
                }
                self.groups
                    .insert(group_id.to_string(), Group::Classic(ClassicGroup::new(now_ms)));
            }
        }
        let new_id = if request.member_id.is_empty() {
            Some(self.new_member_id(client_id, now_ms))
        } else {
            None
        };
        let members_max = self.config.group_members_max;
        let delay = self.config.initial_rebalance_delay_ms;
        let Some(group) = self.classic(group_id) else {
            unreachable!("the group was made above")
        };
        if !group.supports(&request.protocol_type, &protocols) {
            effects.replies.push((
                request_id,
                fail(ErrorCode::InconsistentGroupProtocol, &request.member_id),
            ));
            return effects;
        }
        if group.members.is_empty() {
            group.protocol_type = Some(request.protocol_type.clone());
        }
        let instance = request.group_instance_id.clone().filter(|_| version >= 5);
        let make_member = |member_id: String| ClassicMember {
            member_id,
            instance_id: instance.clone(),
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
            rebalance_timeout_ms: rebalance,
            session_timeout_ms: session,
            protocols: protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            synced: false,
            heartbeat_deadline_ms: now_ms + session as i64,
        };
        if let Some(new_id) = new_id {
            // A member without an id.
            if let Some(instance) = &instance {
                if let Some(old) = group.static_member(instance).map(|m| m.member_id.clone()) {
                    // A static member back under a new id: the old id is fenced.
                    let old_member = group.member_mut(&old).expect("found above");
                    let fenced: Vec<(RequestId, Reply)> = old_member
                        .awaiting_join
                        .take()
                        .map(|(id, v)| (id, fail_join(ErrorCode::FencedInstanceId, &old, v)))
                        .into_iter()
                        .chain(
                            old_member
                                .awaiting_sync
                                .take()
                                .map(|(id, v)| (id, fail_sync(ErrorCode::FencedInstanceId, v))),
                        )
                        .collect();
                    effects.replies.extend(fenced);
                    let unchanged = old_member.protocols == protocols;
                    let assignment = old_member.assignment.clone();
                    let was_leader = group.leader.as_deref() == Some(old.as_str());
                    let mut member = make_member(new_id.clone());
                    member.assignment = assignment;
                    let position = group.members.iter().position(|m| m.member_id == old).expect("found");
                    group.members[position] = member;
                    if was_leader {
                        group.leader = Some(new_id.clone());
                    }
                    if group.state == ClassicState::Stable && unchanged {
                        // KIP-345: the same member, no rebalance. The leader learns the
                        // members and is told to skip the assignment (v9), or, before v9,
                        // must rebalance to get them.
                        if was_leader && version < 9 {
                            group.member_mut(&new_id).expect("placed").awaiting_join = Some((request_id, version));
                            prepare_rebalance(group, now_ms, delay, &mut effects);
                        } else {
                            let response = join_response(group, &new_id, was_leader, version);
                            effects.replies.push((request_id, Reply::Join(response)));
                            effects.records.push(group.to_record(group_id));
                        }
                        return effects;
                    }
                    group.member_mut(&new_id).expect("placed").awaiting_join = Some((request_id, version));
                    update_or_prepare(group, now_ms, delay, &mut effects);
                    maybe_complete_join(group, group_id, now_ms, &mut effects);
                    return effects;
                }
            }
            if group.members.len() + group.pending.len() >= members_max {
                effects
                    .replies
                    .push((request_id, fail(ErrorCode::GroupMaxSizeReached, "")));
                return effects;
            }
            if instance.is_none() && version >= 4 {
                // KIP-394: learn your id first, then join with it.
                group.pending.insert(new_id.clone(), now_ms + session as i64);
                effects
                    .replies
                    .push((request_id, fail(ErrorCode::MemberIdRequired, &new_id)));
                return effects;
            }
            let mut member = make_member(new_id);
            member.awaiting_join = Some((request_id, version));
            group.members.push(member);
            group.joined_during_delay = true;
            update_or_prepare(group, now_ms, delay, &mut effects);
            maybe_complete_join(group, group_id, now_ms, &mut effects);
            return effects;
        }
        // A member with an id.
        let member_id = request.member_id.clone();
        if group.pending.remove(&member_id).is_some() {
            let mut member = make_member(member_id);
            member.awaiting_join = Some((request_id, version));
            group.members.push(member);
            group.joined_during_delay = true;
            update_or_prepare(group, now_ms, delay, &mut effects);
            maybe_complete_join(group, group_id, now_ms, &mut effects);
            return effects;
        }
        let Some(member) = group.member(&member_id) else {
            let code = match &instance {
                Some(i) if group.static_member(i).is_some() => ErrorCode::FencedInstanceId,
                _ => ErrorCode::UnknownMemberId,
            };
            effects.replies.push((request_id, fail(code, &member_id)));
            return effects;
        };
        if member.instance_id.is_some() && member.instance_id != instance {
            effects
                .replies
                .push((request_id, fail(ErrorCode::FencedInstanceId, &member_id)));
            return effects;
        }
        let unchanged = member.protocols == protocols;
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        // A second JoinGroup from the same member replaces the first, which gets an error.
        if let Some((old, v)) = group.member_mut(&member_id).expect("found above").awaiting_join.take() {
            effects
                .replies
                .push((old, fail_join(ErrorCode::RebalanceInProgress, &member_id, v)));
        }
        match group.state {
            ClassicState::PreparingRebalance => {
                let member = group.member_mut(&member_id).expect("found above");
                update_member(member, protocols, session, rebalance, request_id, version, now_ms);
                maybe_complete_join(group, group_id, now_ms, &mut effects);
            }
            ClassicState::CompletingRebalance if unchanged => {
                // The JoinGroup answer was lost: answer again.
                let response = join_response(group, &member_id, is_leader, version);
                effects.replies.push((request_id, Reply::Join(response)));
            }
            ClassicState::Stable if unchanged && !is_leader => {
                let response = join_response(group, &member_id, false, version);
                effects.replies.push((request_id, Reply::Join(response)));
            }
            _ => {
                let member = group.member_mut(&member_id).expect("found above");
                update_member(member, protocols, session, rebalance, request_id, version, now_ms);
                prepare_rebalance(group, now_ms, delay, &mut effects);
                maybe_complete_join(group, group_id, now_ms, &mut effects);
            }
        }
        effects
    }

    pub fn sync_group(
        &mut self,
        request_id: RequestId,
        request: &SyncGroupRequest,
        version: i16,
        now_ms: i64,
    ) -> Effects {
        let mut effects = Effects::default();
        let group_id = request.group_id.clone();
        let fail = |code: ErrorCode| Reply::Sync(fail_sync_response(code, version));
        let Some(group) = self.classic(&group_id) else {
            let code = match self.groups.get(&group_id) {
                Some(_) => ErrorCode::InconsistentGroupProtocol,
                None => ErrorCode::UnknownMemberId,
            };
            effects.replies.push((request_id, fail(code)));
            return effects;
        };
        if let Some(code) = check_member(
            group,
            &request.member_id,
            request.group_instance_id.as_deref(),
            version >= 3,
        ) {
            effects.replies.push((request_id, fail(code)));
            return effects;
        }
        if request.generation_id != group.generation {
            effects.replies.push((request_id, fail(ErrorCode::IllegalGeneration)));
            return effects;
        }
        let type_mismatch = request
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != group.protocol_type.as_ref());
        let name_mismatch = request
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != group.protocol.as_ref());
        if type_mismatch || name_mismatch {
            effects
                .replies
                .push((request_id, fail(ErrorCode::InconsistentGroupProtocol)));
            return effects;
        }
        match group.state {
            ClassicState::Empty => effects.replies.push((request_id, fail(ErrorCode::UnknownMemberId))),
            ClassicState::PreparingRebalance => {
                effects.replies.push((request_id, fail(ErrorCode::RebalanceInProgress)))
            }
            ClassicState::Stable => {
                let member = group.member_mut(&request.member_id).expect("checked");
                member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms as i64;
                let assignment = member.assignment.clone();
                effects
                    .replies
                    .push((request_id, Reply::Sync(sync_response(group, assignment, version))));
            }
            ClassicState::CompletingRebalance => {
                let is_leader = group.leader.as_deref() == Some(request.member_id.as_str());
                let member = group.member_mut(&request.member_id).expect("checked");
                if let Some((old, v)) = member.awaiting_sync.replace((request_id, version)) {
                    effects
                        .replies
                        .push((old, fail_sync(ErrorCode::RebalanceInProgress, v)));
                }
                member.synced = true;
                member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms as i64;
                if is_leader {
                    for m in group.members.iter_mut() {
                        m.assignment = request
                            .assignments
                            .iter()
                            .find(|a| a.member_id == m.member_id)
                            .map(|a| a.assignment.clone())
                            .unwrap_or_default();
                    }
                    group.set_state(ClassicState::Stable, now_ms);
                    group.deadline_ms = None;
                    effects.records.push(group.to_record(&group_id));
                    release_syncs(group, &mut effects);
                }
            }
        }
        effects
    }

    pub fn heartbeat(&mut self, request: &HeartbeatRequest, version: i16, now_ms: i64) -> ErrorCode {
        let Some(group) = self.classic(&request.group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if let Some(code) = check_member(
            group,
            &request.member_id,
            request.group_instance_id.as_deref(),
            version >= 3,
        ) {
            return code;
        }
        if request.generation_id != group.generation {
            return ErrorCode::IllegalGeneration;
        }
        let state = group.state;
        let member = group.member_mut(&request.member_id).expect("checked");
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms as i64;
        match state {
            ClassicState::Empty => ErrorCode::UnknownMemberId,
            ClassicState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            ClassicState::CompletingRebalance | ClassicState::Stable => ErrorCode::None,
        }
    }

    /// LeaveGroup: members by id, or static members by instance id. Returns the top-level
    /// error and one per member.
    pub fn leave_group(
        &mut self,
        group_id: &str,
        leaving: &[(String, Option<String>)],
        now_ms: i64,
    ) -> (Effects, ErrorCode, Vec<ErrorCode>) {
        let mut effects = Effects::default();
        let delay = self.config.initial_rebalance_delay_ms;
        let Some(group) = self.classic(group_id) else {
            let code = if self.groups.contains_key(group_id) {
                ErrorCode::InconsistentGroupProtocol
            } else {
                ErrorCode::UnknownMemberId
            };
            return (effects, code, leaving.iter().map(|_| code).collect());
        };
        let mut results = Vec::with_capacity(leaving.len());
        let mut removed_any = false;
        for (member_id, instance) in leaving {
            let target = match (instance, member_id.is_empty()) {
                (Some(i), _) => match group.static_member(i) {
                    Some(m) if member_id.is_empty() || &m.member_id == member_id => Some(m.member_id.clone()),
                    Some(_) => {
                        results.push(ErrorCode::FencedInstanceId);
                        continue;
                    }
                    None => None,
                },
                (None, false) => group.member(member_id).map(|m| m.member_id.clone()),
                (None, true) => None,
            };
            match target {
                Some(id) => {
                    remove_member(group, &id, &mut effects);
                    removed_any = true;
                    results.push(ErrorCode::None);
                }
                None if group.pending.remove(member_id).is_some() => results.push(ErrorCode::None),
                None => results.push(ErrorCode::UnknownMemberId),
            }
        }
        if removed_any {
            member_left(group, group_id, now_ms, delay, &mut effects);
        }
        (effects, ErrorCode::None, results)
    }

    /// Fires every deadline at or before `now`: session expiry, the end of a join phase, an
    /// overdue assignment, KIP-848 session and revocation timeouts.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut effects = Effects::default();
        let delay = self.config.initial_rebalance_delay_ms;
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in ids {
            match self.groups.get_mut(&group_id) {
                Some(Group::Classic(group)) => tick_classic(group, &group_id, now_ms, delay, &mut effects),
                Some(Group::Consumer(_)) => self.tick_consumer(&group_id, now_ms, &mut effects),
                None => {}
            }
        }
        effects
    }

    /// The earliest deadline the shard waits for, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut at = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
        for group in self.groups.values() {
            match group {
                Group::Classic(g) => {
                    if let Some(d) = g.deadline_ms {
                        at(d);
                    }
                    for d in g.pending.values() {
                        at(*d);
                    }
                    for m in &g.members {
                        at(m.heartbeat_deadline_ms);
                    }
                }
                Group::Consumer(g) => {
                    if let Some(d) = g.next_deadline() {
                        at(d);
                    }
                }
            }
        }
        next
    }

    /// Tombstones for offsets past `offsets.retention.minutes`: of groups with no members,
    /// counted from when the group emptied (or from the commit, for groups that never had
    /// members here), as Kafka expires them; and for a classic group left with neither
    /// members nor offsets, the group itself.
    pub fn expire_offsets(&self, now_ms: i64) -> Vec<GroupRecord> {
        let retention = self.config.offsets_retention_ms;
        let mut records = Vec::new();
        for (group_id, offsets) in &self.offsets {
            let since = match self.groups.get(group_id) {
                Some(g) if !g.is_empty() => continue,
                Some(Group::Classic(g)) => Some(g.state_timestamp_ms),
                _ => None,
            };
            let mut all = true;
            for ((topic, partition), o) in offsets {
                let base = since.map_or(o.commit_timestamp_ms, |s| s.max(o.commit_timestamp_ms));
                if base + retention <= now_ms {
                    records.push(GroupRecord::Offset {
                        group: group_id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: None,
                    });
                } else {
                    all = false;
                }
            }
            if all && matches!(self.groups.get(group_id), Some(Group::Classic(_))) {
                records.push(GroupRecord::ClassicGroup {
                    group: group_id.clone(),
                    value: None,
                });
            }
        }
        for (group_id, group) in &self.groups {
            if let Group::Classic(g) = group {
                if g.members.is_empty()
                    && !self.offsets.contains_key(group_id)
                    && g.state_timestamp_ms + retention <= now_ms
                {
                    records.push(GroupRecord::ClassicGroup {
                        group: group_id.clone(),
                        value: None,
                    });
                }
            }
        }
        records
    }

    /// OffsetCommit for one group: records for the partitions accepted, and an error per
    /// partition in the request's order.
    pub fn commit_offsets(
        &mut self,
        request: &OffsetCommitRequest,
        version: i16,
        now_ms: i64,
    ) -> (Vec<GroupRecord>, Vec<Vec<ErrorCode>>) {
        let group_id = request.group_id.as_str();
        let error = if group_id.is_empty() {
            Some(ErrorCode::InvalidGroupId)
        } else {
            self.validate_commit(
                group_id,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id_or_member_epoch,
                version,
            )
        };
        let mut records = Vec::new();
        let mut errors = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let mut per_partition = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                if let Some(code) = error {
                    per_partition.push(code);
                    continue;
                }
                let metadata = p.committed_metadata.clone().unwrap_or_default();
                if metadata.len() > self.config.offset_metadata_bytes_max {
                    per_partition.push(ErrorCode::OffsetMetadataTooLarge);
                    continue;
                }
                records.push(GroupRecord::Offset {
                    group: group_id.to_string(),
                    topic: topic.name.clone(),
                    partition: p.partition_index,
                    value: Some(OffsetAndMetadata {
                        offset: p.committed_offset,
                        leader_epoch: if version >= 6 { p.committed_leader_epoch } else { -1 },
                        metadata,
                        commit_timestamp_ms: now_ms,
                    }),
                });
                per_partition.push(ErrorCode::None);
            }
            errors.push(per_partition);
        }
        if error.is_none() && !records.is_empty() && !self.groups.contains_key(group_id) {
            // A commit outside any membership makes an empty classic group, as in Kafka, so
            // that tools list it.
            if self.groups.len() < self.config.groups_per_shard_max {
                let group = ClassicGroup::new(now_ms);
                records.insert(0, group.to_record(group_id));
            }
        }
        (records, errors)
    }

    fn validate_commit(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation_or_epoch: i32,
        version: i16,
    ) -> Option<ErrorCode> {
        if crate::canary::GROUP_STALE_COMMIT {
            return None;
        }
        match self.groups.get_mut(group_id) {
            None => {
                // Kafka: a commit with a generation to a group that does not exist is
                // from a member the coordinator has lost.
                if generation_or_epoch >= 0 || !member_id.is_empty() {
                    Some(if version >= 9 {
                        ErrorCode::GroupIdNotFound
                    } else {
                        ErrorCode::IllegalGeneration
                    })
                } else {
                    None
                }
            }
            Some(Group::Consumer(g)) => g.validate_commit(member_id, generation_or_epoch),
            Some(Group::Classic(g)) => {
                if generation_or_epoch < 0 && member_id.is_empty() && instance.is_none() {
                    // A commit from outside the group (manual assignment, admin tools):
                    // only while no one is a member.
                    return (!g.members.is_empty()).then_some(ErrorCode::UnknownMemberId);
                }
                if let Some(code) = check_member(g, member_id, instance, true) {
                    return Some(code);
                }
                if generation_or_epoch != g.generation {
                    return Some(ErrorCode::IllegalGeneration);
                }
                if g.state == ClassicState::CompletingRebalance {
                    return Some(ErrorCode::RebalanceInProgress);
                }
                None
            }
        }
    }

    /// Committed offsets of a group: every partition (`None`) or the ones asked for, with
    /// -1 for those never committed.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, Vec<(i32, Option<OffsetAndMetadata>)>)> {
        let committed = self.offsets.get(group_id);
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .iter()
                        .map(|p| {
                            let o = committed.and_then(|c| c.get(&(topic.clone(), *p))).cloned();
                            (*p, o)
                        })
                        .collect();
                    (topic.clone(), found)
                })
                .collect(),
            None => {
                let mut out: Vec<(String, Vec<(i32, Option<OffsetAndMetadata>)>)> = Vec::new();
                for ((topic, p), o) in committed.into_iter().flatten() {
                    match out.last_mut() {
                        Some((t, ps)) if t == topic => ps.push((*p, Some(o.clone()))),
                        _ => out.push((topic.clone(), vec![(*p, Some(o.clone()))])),
                    }
                }
                out
            }
        }
    }

    /// Checks an OffsetFetch from a KIP-848 member (v9 carries its id and epoch).
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Option<ErrorCode> {
        match (self.groups.get(group_id), member_id) {
            (Some(Group::Consumer(g)), Some(member)) if member_epoch >= 0 => g.validate_commit(member, member_epoch),
            _ => None,
        }
    }

    /// OffsetDelete: tombstones for the partitions, unless the group still consumes them.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<(Vec<GroupRecord>, Vec<Vec<ErrorCode>>), ErrorCode> {
        let group = self.groups.get(group_id);
        if group.is_none() && !self.offsets.contains_key(group_id) {
            return Err(ErrorCode::GroupIdNotFound);
        }
        let subscribed = |topic: &str| match group {
            Some(Group::Classic(g)) => g.state != ClassicState::Empty && classic_subscribes(g, topic),
            Some(Group::Consumer(g)) => g.subscribes(topic),
            None => false,
        };
        if let Some(Group::Classic(g)) = group {
            if g.state != ClassicState::Empty && g.protocol_type.as_deref() != Some("consumer") {
                return Err(ErrorCode::NonEmptyGroup);
            }
        }
        let mut records = Vec::new();
        let mut errors = Vec::new();
        for (topic, partitions) in topics {
            let busy = subscribed(topic);
            errors.push(
                partitions
                    .iter()
                    .map(|p| {
                        if busy {
                            return ErrorCode::GroupSubscribedToTopic;
                        }
                        let exists = self
                            .offsets
                            .get(group_id)
                            .is_some_and(|o| o.contains_key(&(topic.clone(), *p)));
                        if exists {
                            records.push(GroupRecord::Offset {
                                group: group_id.to_string(),
                                topic: topic.clone(),
                                partition: *p,
                                value: None,
                            });
                        }
                        ErrorCode::None
                    })
                    .collect(),
            );
        }
        Ok((records, errors))
    }

    /// DeleteGroups for one group: tombstones for its offsets and itself.
    pub fn delete_group(&self, group_id: &str) -> Result<Vec<GroupRecord>, ErrorCode> {
        let group = self.groups.get(group_id);
        if group.is_none() && !self.offsets.contains_key(group_id) {
            return Err(ErrorCode::GroupIdNotFound);
        }
        if group.is_some_and(|g| !g.is_empty()) {
            return Err(ErrorCode::NonEmptyGroup);
        }
        let mut records: Vec<GroupRecord> = self
            .offsets
            .get(group_id)
            .into_iter()
            .flatten()
            .map(|((topic, partition), _)| GroupRecord::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        match group {
            Some(Group::Consumer(_)) => records.extend(self.consumer_group_tombstones(group_id)),
            _ => records.push(GroupRecord::ClassicGroup {
                group: group_id.to_string(),
                value: None,
            }),
        }
        Ok(records)
    }

    /// ListGroups rows: (group id, protocol type, state, type).
    pub fn list_groups(&self) -> Vec<(String, String, String, &'static str)> {
        let mut out = Vec::new();
        for (id, group) in &self.groups {
            match group {
                Group::Classic(g) => out.push((
                    id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name().to_string(),
                    "classic",
                )),
                Group::Consumer(g) => out.push((
                    id.clone(),
                    "consumer".to_string(),
                    g.state_name().to_string(),
                    "consumer",
                )),
            }
        }
        for id in self.offsets.keys() {
            if !self.groups.contains_key(id) {
                out.push((id.clone(), String::new(), "Empty".to_string(), "classic"));
            }
        }
        out
    }

    /// DescribeGroups for one group.
    pub fn describe_group(&self, group_id: &str) -> describe_groups_response::DescribedGroup {
        use describe_groups_response::{DescribedGroup, DescribedGroupMember};
        let mut out = DescribedGroup {
            group_id: group_id.to_string(),
            ..Default::default()
        };
        match self.groups.get(group_id) {
            None => {
                out.group_state = "Dead".to_string();
                if self.offsets.contains_key(group_id) {
                    out.group_state = "Empty".to_string();
                }
            }
            Some(Group::Consumer(g)) => {
                out.group_state = g.state_name().to_string();
                out.protocol_type = "consumer".to_string();
                out.error_code = ErrorCode::GroupIdNotFound.code();
                out.error_message = Some(format!("group {group_id} is not a classic group"));
            }
            Some(Group::Classic(g)) => {
                out.group_state = g.state.name().to_string();
                out.protocol_type = g.protocol_type.clone().unwrap_or_default();
                out.protocol_data = g.protocol.clone().unwrap_or_default();
                out.members = g
                    .members
                    .iter()
                    .map(|m| DescribedGroupMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        member_metadata: g.protocol.as_deref().map(|p| m.metadata_for(p)).unwrap_or_default(),
                        member_assignment: m.assignment.clone(),
                        ..Default::default()
                    })
                    .collect();
            }
        }
        out
    }

    /// Every reply still owed, failed: the shard is being unloaded.
    pub fn unload(&mut self) -> Vec<(RequestId, Reply)> {
        let mut out = Vec::new();
        for group in self.groups.values_mut() {
            if let Group::Classic(g) = group {
                for m in g.members.iter_mut() {
                    if let Some((id, v)) = m.awaiting_join.take() {
                        out.push((id, fail_join(ErrorCode::NotCoordinator, &m.member_id, v)));
                    }
                    if let Some((id, v)) = m.awaiting_sync.take() {
                        out.push((id, fail_sync(ErrorCode::NotCoordinator, v)));
                    }
                }
            }
        }
        out
    }

    /// The classic group invariants, asserted by tests and the simulator.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (id, group) in &self.groups {
            match group {
                Group::Classic(g) => {
                    if g.members.is_empty()
                        && g.state != ClassicState::Empty
                        && g.state != ClassicState::PreparingRebalance
                    {
                        return Err(format!("group {id} has no members but is {}", g.state.name()));
                    }
                    if let Some(leader) = &g.leader {
                        if !g.members.is_empty() && g.member(leader).is_none() {
                            return Err(format!("group {id}: leader {leader} is not a member"));
                        }
                    }
                    let mut seen = std::collections::BTreeSet::new();
                    for m in &g.members {
                        if !seen.insert(&m.member_id) {
                            return Err(format!("group {id}: member {} twice", m.member_id));
                        }
                    }
                }
                Group::Consumer(g) => g.check_invariants(id)?,
            }
        }
        Ok(())
    }
}

fn replay_classic(group: &mut ClassicGroup, v: &GroupMetadataValue, now_ms: i64) {
    group.protocol_type = Some(v.protocol_type.clone()).filter(|t| !t.is_empty());
    group.generation = v.generation;
    group.protocol = v.protocol.clone();
    group.leader = v.leader.clone();
    group.members = v
        .members
        .iter()
        .map(|m| ClassicMember {
            member_id: m.member_id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            session_timeout_ms: m.session_timeout_ms,
            protocols: v
                .protocol
                .clone()
                .map(|p| vec![(p, m.subscription.clone())])
                .unwrap_or_default(),
            assignment: m.assignment.clone(),
            awaiting_join: None,
            awaiting_sync: None,
            synced: true,
            // After a load every member gets a full session to find the new coordinator.
            heartbeat_deadline_ms: now_ms + m.session_timeout_ms as i64,
        })
        .collect();
    group.state = if group.members.is_empty() {
        ClassicState::Empty
    } else {
        ClassicState::Stable
    };
    group.state_timestamp_ms = v.state_timestamp_ms;
}

fn update_member(
    member: &mut ClassicMember,
    protocols: Vec<(String, Bytes)>,
    session: i32,
    rebalance: i32,
    request_id: RequestId,
    version: i16,
    now_ms: i64,
) {
    member.protocols = protocols;
    member.session_timeout_ms = session;
    member.rebalance_timeout_ms = rebalance;
    member.awaiting_join = Some((request_id, version));
    member.heartbeat_deadline_ms = now_ms + session as i64;
}

fn check_member(
    group: &ClassicGroup,
    member_id: &str,
    instance: Option<&str>,
    static_allowed: bool,
) -> Option<ErrorCode> {
    let instance = instance.filter(|_| static_allowed);
    if let Some(i) = instance {
        match group.static_member(i) {
            Some(m) if m.member_id != member_id => return Some(ErrorCode::FencedInstanceId),
            None if group.member(member_id).is_some() => return Some(ErrorCode::FencedInstanceId),
            _ => {}
        }
    }
    match group.member(member_id) {
        None => Some(ErrorCode::UnknownMemberId),
        Some(_) => None,
    }
}

fn classic_subscribes(group: &ClassicGroup, topic: &str) -> bool {
    // A consumer's subscription (ConsumerProtocolSubscription) lists its topics; reading
    // it is enough to say whether the group consumes `topic`.
    let Some(protocol) = &group.protocol else {
        return false;
    };
    group.members.iter().any(|m| {
        let metadata = m.metadata_for(protocol);
        if metadata.len() < 2 {
            return false;
        }
        let version = i16::from_be_bytes([metadata[0], metadata[1]]);
        let mut r = crate::protocol::codec::Reader::new(metadata.slice(2..));
        ConsumerProtocolSubscription::decode(&mut r, version)
            .map(|s| s.topics.iter().any(|t| t == topic))
            .unwrap_or(false)
    })
}

/// A member joined or changed: rebalance unless one is already under way.
fn update_or_prepare(group: &mut ClassicGroup, now_ms: i64, delay: i32, effects: &mut Effects) {
    if group.state != ClassicState::PreparingRebalance {
        prepare_rebalance(group, now_ms, delay, effects);
    }
}

fn prepare_rebalance(group: &mut ClassicGroup, now_ms: i64, delay: i32, effects: &mut Effects) {
    if group.state == ClassicState::CompletingRebalance {
        // Members waiting for an assignment of a generation that will not be.
        for m in group.members.iter_mut() {
            if let Some((id, v)) = m.awaiting_sync.take() {
                effects.replies.push((id, fail_sync(ErrorCode::RebalanceInProgress, v)));
            }
        }
    }
    let from_empty = group.state == ClassicState::Empty;
    let timeout = group.rebalance_timeout_max();
    if from_empty && delay > 0 {
        let first = (delay as i64).min(timeout);
        group.deadline_ms = Some(now_ms + first);
        group.initial_delay_left_ms = Some(timeout - first);
        group.joined_during_delay = false;
    } else {
        group.deadline_ms = Some(now_ms + timeout);
        group.initial_delay_left_ms = None;
    }
    for m in group.members.iter_mut() {
        m.synced = false;
    }
    group.set_state(ClassicState::PreparingRebalance, now_ms);
}

fn maybe_complete_join(group: &mut ClassicGroup, group_id: &str, now_ms: i64, effects: &mut Effects) {
    if group.state == ClassicState::PreparingRebalance && group.initial_delay_left_ms.is_none() && group.all_joined() {
        complete_join(group, group_id, now_ms, effects);
    }
}

fn complete_join(group: &mut ClassicGroup, group_id: &str, now_ms: i64, effects: &mut Effects) {
    // Members that did not rejoin in time are out.
    group.members.retain(|m| m.awaiting_join.is_some());
    group.generation += 1;
    group.deadline_ms = None;
    group.initial_delay_left_ms = None;
    if group.members.is_empty() {
        group.protocol = None;
        group.leader = None;
        group.set_state(ClassicState::Empty, now_ms);
        effects.records.push(group.to_record(group_id));
        return;
    }
    group.protocol = group.select_protocol();
    if !group
        .leader
        .as_ref()
        .is_some_and(|l| group.members.iter().any(|m| &m.member_id == l))
    {
        group.leader = Some(group.members[0].member_id.clone());
    }
    group.set_state(ClassicState::CompletingRebalance, now_ms);
    group.deadline_ms = Some(now_ms + group.rebalance_timeout_max());
    let leader = group.leader.clone().expect("set above");
    let waiting: Vec<(String, RequestId, i16)> = group
        .members
        .iter_mut()
        .filter_map(|m| {
            m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
            m.awaiting_join.take().map(|(id, v)| (m.member_id.clone(), id, v))
        })
        .collect();
    for (member_id, request_id, version) in waiting {
        let response = join_response(group, &member_id, member_id == leader, version);
        effects.replies.push((request_id, Reply::Join(response)));
    }
}

fn join_response(group: &ClassicGroup, member_id: &str, with_members: bool, version: i16) -> JoinGroupResponse {
    let protocol = group.protocol.clone().unwrap_or_default();
    let members = if with_members {
        group
            .members
            .iter()
            .map(|m| join_group_response::JoinGroupResponseMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol),
                ..Default::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    fit_join(
        JoinGroupResponse {
            generation_id: group.generation,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol.clone(),
            leader: group.leader.clone().unwrap_or_default(),
            skip_assignment: with_members && group.state == ClassicState::Stable,
            member_id: member_id.to_string(),
            members,
            ..Default::default()
        },
        version,
    )
}

/// Clears what `version` cannot carry.
fn fit_join(mut r: JoinGroupResponse, version: i16) -> JoinGroupResponse {
    if version < 7 {
        r.protocol_type = None;
        r.protocol_name = Some(r.protocol_name.unwrap_or_default());
    }
    if version < 9 {
        r.skip_assignment = false;
    }
    r
}

fn fail_join(code: ErrorCode, member_id: &str, version: i16) -> Reply {
    Reply::Join(fit_join(
        JoinGroupResponse {
            error_code: code.code(),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        },
        version,
    ))
}

fn sync_response(group: &ClassicGroup, assignment: Bytes, version: i16) -> SyncGroupResponse {
    SyncGroupResponse {
        protocol_type: group.protocol_type.clone().filter(|_| version >= 5),
        protocol_name: group.protocol.clone().filter(|_| version >= 5),
        assignment,
        ..Default::default()
    }
}

fn fail_sync_response(code: ErrorCode, _version: i16) -> SyncGroupResponse {
    SyncGroupResponse {
        error_code: code.code(),
        ..Default::default()
    }
}

fn fail_sync(code: ErrorCode, version: i16) -> Reply {
    Reply::Sync(fail_sync_response(code, version))
}

fn release_syncs(group: &mut ClassicGroup, effects: &mut Effects) {
    let waiting: Vec<(RequestId, i16, Bytes)> = group
        .members
        .iter_mut()
        .filter_map(|m| m.awaiting_sync.take().map(|(id, v)| (id, v, m.assignment.clone())))
        .collect();
    for (id, version, assignment) in waiting {
        effects
            .replies
            .push((id, Reply::Sync(sync_response(group, assignment, version))));
    }
}

/// Removes a member, failing whatever it was waiting for.
fn remove_member(group: &mut ClassicGroup, member_id: &str, effects: &mut Effects) {
    if let Some(position) = group.members.iter().position(|m| m.member_id == member_id) {
        let m = group.members.remove(position);
        if group.leader.as_deref() == Some(member_id) {
            // As Kafka: the next member leads (until the join picks again).
            group.leader = group.members.first().map(|m| m.member_id.clone());
        }
        if let Some((id, v)) = m.awaiting_join {
            effects
                .replies
                .push((id, fail_join(ErrorCode::UnknownMemberId, member_id, v)));
        }
        if let Some((id, v)) = m.awaiting_sync {
            effects.replies.push((id, fail_sync(ErrorCode::UnknownMemberId, v)));
        }
    }
}

/// After members left or expired: rebalance, or finish the join phase under way.
fn member_left(group: &mut ClassicGroup, group_id: &str, now_ms: i64, delay: i32, effects: &mut Effects) {
    match group.state {
        ClassicState::Stable | ClassicState::CompletingRebalance => {
            prepare_rebalance(group, now_ms, delay, effects);
            maybe_complete_join(group, group_id, now_ms, effects);
            if group.members.is_empty() && group.state == ClassicState::PreparingRebalance {
                complete_join(group, group_id, now_ms, effects);
            }
        }
        ClassicState::PreparingRebalance => {
            if group.members.is_empty() {
                complete_join(group, group_id, now_ms, effects);
            } else {
                maybe_complete_join(group, group_id, now_ms, effects);
            }
        }
        ClassicState::Empty => {}
    }
}

fn tick_classic(group: &mut ClassicGroup, group_id: &str, now_ms: i64, delay: i32, effects: &mut Effects) {
    group.pending.retain(|_, deadline| *deadline > now_ms);
    // Session expiry: a member waiting in a join or for its assignment is alive.
    let expired: Vec<String> = group
        .members
        .iter()
        .filter(|m| m.heartbeat_deadline_ms <= now_ms && m.awaiting_join.is_none() && m.awaiting_sync.is_none())
        .map(|m| m.member_id.clone())
        .collect();
    for id in &expired {
        remove_member(group, id, effects);
    }
    if !expired.is_empty() {
        member_left(group, group_id, now_ms, delay, effects);
    }
    match (group.state, group.deadline_ms) {
        (ClassicState::PreparingRebalance, Some(d)) if d <= now_ms => match group.initial_delay_left_ms {
            Some(left) if left > 0 && group.joined_during_delay => {
                let step = (delay as i64).min(left);
                group.deadline_ms = Some(now_ms + step);
                group.initial_delay_left_ms = Some(left - step);
                group.joined_during_delay = false;
            }
            _ => complete_join(group, group_id, now_ms, effects),
        },
        (ClassicState::PreparingRebalance, _) => maybe_complete_join(group, group_id, now_ms, effects),
        (ClassicState::CompletingRebalance, Some(d)) if d <= now_ms => {
            // The leader's assignment is overdue: whoever did not sync is out.
            let lagging: Vec<String> = group
                .members
                .iter()
                .filter(|m| !m.synced)
                .map(|m| m.member_id.clone())
                .collect();
            for id in &lagging {
                remove_member(group, id, effects);
            }
            prepare_rebalance(group, now_ms, delay, effects);
            if group.members.is_empty() {
                complete_join(group, group_id, now_ms, effects);
            }
        }
        _ => {}
    }
}

fn uuid_text(id: &Uuid) -> String {
    let h: String = id.0.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}
