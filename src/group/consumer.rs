//! KIP-848 consumer groups: the coordinator assigns partitions itself (uniform or range),
//! members learn their assignment from ConsumerGroupHeartbeat, and a partition moves only
//! after its old owner has revoked it.
//!
//! Epochs: the group epoch bumps whenever membership, a subscription or a subscribed
//! topic's partition count changes; the target assignment is recomputed for it. A member's
//! epoch reaches the target's once it owns nothing outside its target. A partition is in at
//! most one member's assigned or revoking set, always.

use std::collections::{BTreeMap, BTreeSet};

use super::coordinator::{Effects, Group, GroupCoordinatorShard, TopicsImage};
use super::records::{ConsumerMemberValue, GroupRecord};
use crate::error::ErrorCode;
use crate::protocol::codec::Uuid;
use crate::protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use crate::protocol::messages::*;

type Partitions = BTreeMap<Uuid, BTreeSet<i32>>;

#[derive(Clone, Debug)]
pub(super) struct ConsumerMember {
    pub(super) value: ConsumerMemberValue,
    session_deadline_ms: i64,
    /// Set while the member owes a revocation.
    revocation_deadline_ms: Option<i64>,
    /// What the member was last told it has.
    last_sent: Option<Partitions>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct ConsumerGroup {
    pub(super) epoch: i32,
    pub(super) members: BTreeMap<String, ConsumerMember>,
    target: BTreeMap<String, Partitions>,
    target_epoch: i32,
    /// The subscribed topics' ids and partition counts the target was computed from.
    topics_seen: BTreeMap<String, (Uuid, i32)>,
}

/// The longest regex subscription taken, in bytes.
const SUBSCRIBED_TOPIC_REGEX_BYTES_MAX: usize = 4096;

/// A regex subscription as Kafka reads one: RE2 syntax matching a whole topic name.
fn topic_regex(regex: &str) -> Result<regex::Regex, String> {
    if regex.len() > SUBSCRIBED_TOPIC_REGEX_BYTES_MAX {
        return Err(format!("longer than {SUBSCRIBED_TOPIC_REGEX_BYTES_MAX} bytes"));
    }
    regex::RegexBuilder::new(&format!("^(?:{regex})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// The topics a member consumes: its names, and the topics of `topics` its regex matches.
fn member_topics(member: &ConsumerMemberValue, topics: &TopicsImage) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = member.subscribed_topics.iter().cloned().collect();
    if let Some(regex) = member
        .subscribed_topic_regex
        .as_deref()
        .and_then(|r| topic_regex(r).ok())
    {
        out.extend(topics.keys().filter(|t| regex.is_match(t)).cloned());
    }
    out
}

fn to_map(list: &[(Uuid, Vec<i32>)]) -> Partitions {
    list.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(id, ps)| (*id, ps.iter().copied().collect()))
        .collect()
}

fn to_list(map: &Partitions) -> Vec<(Uuid, Vec<i32>)> {
    map.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(id, ps)| (*id, ps.iter().copied().collect()))
        .collect()
}

fn union(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = a.clone();
    for (id, ps) in b {
        out.entry(*id).or_default().extend(ps.iter().copied());
    }
    out
}

fn minus(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = Partitions::new();
    for (id, ps) in a {
        let rest: BTreeSet<i32> = match b.get(id) {
            Some(other) => ps.difference(other).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(*id, rest);
        }
    }
    out
}

fn intersect(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = Partitions::new();
    for (id, ps) in a {
        if let Some(other) = b.get(id) {
            let both: BTreeSet<i32> = ps.intersection(other).copied().collect();
            if !both.is_empty() {
                out.insert(*id, both);
            }
        }
    }
    out
}

fn is_empty(p: &Partitions) -> bool {
    p.values().all(|s| s.is_empty())
}

impl ConsumerGroup {
    pub(super) fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.target_epoch < self.epoch {
            "Assigning"
        } else if self.members.iter().any(|(id, m)| !self.is_reconciled(id, m)) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Kafka's `isReconciledTo`: the member is at the target epoch, revokes nothing and holds
    /// its whole target (it is not waiting for partitions another member still has to release).
    fn is_reconciled(&self, member_id: &str, m: &ConsumerMember) -> bool {
        let empty = Partitions::new();
        let target = self.target.get(member_id).unwrap_or(&empty);
        let assigned = to_map(&m.value.assigned);
        m.value.member_epoch == self.target_epoch
            && m.value.revoking.is_empty()
            && is_empty(&minus(target, &assigned))
            && is_empty(&minus(&assigned, target))
    }

    /// The server assignor: range once any member asks for it, uniform otherwise.
    fn assignor_name(&self) -> &'static str {
        if self
            .members
            .values()
            .any(|m| m.value.server_assignor.as_deref() == Some("range"))
        {
            "range"
        } else {
            "uniform"
        }
    }

    /// The member holding a static instance id.
    fn static_member(&self, instance: &str) -> Option<String> {
        self.members
            .iter()
            .find(|(_, m)| m.value.instance_id.as_deref() == Some(instance))
            .map(|(id, _)| id.clone())
    }

    pub(super) fn subscribes(&self, topic: &str) -> bool {
        self.members.values().any(|m| {
            m.value.subscribed_topics.iter().any(|t| t == topic)
                || m.value
                    .subscribed_topic_regex
                    .as_deref()
                    .and_then(|r| topic_regex(r).ok())
                    .is_some_and(|r| r.is_match(topic))
        })
    }

    pub(super) fn validate_commit(&self, member_id: &str, epoch: i32) -> Option<ErrorCode> {
        if member_id.is_empty() && epoch < 0 {
            return (!self.members.is_empty()).then_some(ErrorCode::UnknownMemberId);
        }
        match self.members.get(member_id) {
            None => Some(ErrorCode::UnknownMemberId),
            Some(m) if m.value.member_epoch != epoch => Some(ErrorCode::StaleMemberEpoch),
            Some(_) => None,
        }
    }

    pub(super) fn next_deadline(&self) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline_ms), m.revocation_deadline_ms])
            .flatten()
            .min()
    }

    /// Who owns what, besides `except`: assigned and revoking partitions of the others.
    fn owned_by_others(&self, except: &str) -> Partitions {
        let mut out = Partitions::new();
        for (id, m) in &self.members {
            if id != except {
                out = union(&out, &union(&to_map(&m.value.assigned), &to_map(&m.value.revoking)));
            }
        }
        out
    }

    pub(super) fn check_invariants(&self, group_id: &str) -> Result<(), String> {
        let mut owner: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
        for (member_id, m) in &self.members {
            let owns = union(&to_map(&m.value.assigned), &to_map(&m.value.revoking));
            for (id, ps) in &owns {
                for p in ps {
                    if let Some(other) = owner.insert((*id, *p), member_id) {
                        return Err(format!(
                            "group {group_id}: partition {id:?}-{p} owned by both {other} and {member_id}"
                        ));
                    }
                }
            }
            if m.value.member_epoch > self.epoch {
                return Err(format!(
                    "group {group_id}: member {member_id} is ahead of the group epoch"
                ));
            }
        }
        Ok(())
    }

    /// The target assignment for the group's members and subscriptions.
    fn compute_target(&mut self, topics: &TopicsImage) {
        let per_member: BTreeMap<&String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id, member_topics(&m.value, topics)))
            .collect();
        let subscribed: BTreeSet<&str> = per_member.values().flatten().map(String::as_str).collect();
        let range = self.assignor_name() == "range";
        let mut target: BTreeMap<String, Partitions> =
            self.members.keys().map(|id| (id.clone(), Partitions::new())).collect();
        let mut count: BTreeMap<String, usize> = self.members.keys().map(|id| (id.clone(), 0)).collect();
        for topic in &subscribed {
            let Some((topic_id, partitions)) = topics.get(*topic) else {
                continue;
            };
            let eligible: Vec<&String> = per_member
                .iter()
                .filter(|(_, ts)| ts.contains(*topic))
                .map(|(id, _)| *id)
                .collect();
            if eligible.is_empty() {
                continue;
            }
            if range {
                // Kafka's range: consecutive partitions per member, the first ones
                // taking one more.
                let n = *partitions as usize;
                let per = n / eligible.len();
                let extra = n % eligible.len();
                let mut next = 0;
                for (i, member) in eligible.iter().enumerate() {
                    let take = per + usize::from(i < extra);
                    let set = target
                        .get_mut(*member)
                        .expect("every member")
                        .entry(*topic_id)
                        .or_default();
                    set.extend((next..next + take).map(|p| p as i32));
                    next += take;
                }
                continue;
            }
            // Uniform: keep a partition with its current owner where that stays balanced,
            // then give the rest to whoever has fewest.
            let quota = (*partitions as usize).div_ceil(eligible.len());
            let mut left = Vec::new();
            for p in 0..*partitions {
                let current = eligible.iter().find(|id| {
                    self.members[id.as_str()]
                        .value
                        .assigned
                        .iter()
                        .any(|(t, ps)| t == topic_id && ps.contains(&p))
                });
                match current {
                    Some(id) if count[id.as_str()] < quota.max(1) => {
                        *count.get_mut(id.as_str()).expect("member") += 1;
                        target
                            .get_mut(id.as_str())
                            .expect("member")
                            .entry(*topic_id)
                            .or_default()
                            .insert(p);
                    }
                    _ => left.push(p),
                }
            }
            for p in left {
                let id = eligible
                    .iter()
                    .min_by_key(|id| (count[id.as_str()], id.as_str()))
                    .expect("eligible is not empty");
                *count.get_mut(id.as_str()).expect("member") += 1;
                target
                    .get_mut(id.as_str())
                    .expect("member")
                    .entry(*topic_id)
                    .or_default()
                    .insert(p);
            }
        }
        self.target = target;
        self.target_epoch = self.epoch;
    }

    /// Moves one member toward its target without ever giving a partition to two members.
    /// Returns whether the member changed.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Partitions>, now_ms: i64) -> bool {
        let others = self.owned_by_others(member_id);
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let target_epoch = self.target_epoch;
        let m = self.members.get_mut(member_id).expect("reconciled members exist");
        let before = m.value.clone();
        let mut assigned = to_map(&m.value.assigned);
        let mut revoking = to_map(&m.value.revoking);
        if let Some(owned) = owned {
            // The member says what it still holds: revocations it finished are done.
            revoking = intersect(&revoking, owned);
        }
        let unwanted = minus(&assigned, &target);
        if !is_empty(&unwanted) {
            assigned = intersect(&assigned, &target);
            revoking = union(&revoking, &unwanted);
        }
        if is_empty(&revoking) {
            m.revocation_deadline_ms = None;
            if m.value.member_epoch != target_epoch {
                m.value.previous_member_epoch = m.value.member_epoch;
                m.value.member_epoch = target_epoch;
            }
            // Take what the target gives, once no one else holds it.
            let free = if crate::canary::GROUP_DOUBLE_ASSIGN {
                target.clone()
            } else {
                minus(&target, &others)
            };
            assigned = union(&assigned, &free);
        } else if m.revocation_deadline_ms.is_none() {
            m.revocation_deadline_ms = Some(now_ms + m.value.rebalance_timeout_ms.max(0) as i64);
        }
        m.value.assigned = to_list(&assigned);
        m.value.revoking = to_list(&revoking);
        m.value != before
    }
}

impl GroupCoordinatorShard {
    pub(super) fn replay_consumer(&mut self, record: &GroupRecord, now_ms: i64) {
        let session = self.config.consumer_session_timeout_ms as i64;
        match record {
            GroupRecord::ConsumerGroupEpoch { group, epoch } => match epoch {
                None => {
                    if matches!(self.groups.get(group), Some(Group::Consumer(_))) {
                        self.groups.remove(group);
                    }
                }
                Some(e) => {
                    let g = self.consumer_group_entry(group);
                    g.epoch = *e;
                }
            },
            GroupRecord::ConsumerMember {
                group,
                member_id,
                value,
            } => {
                let g = self.consumer_group_entry(group);
                match value {
                    None => {
                        g.members.remove(member_id);
                    }
                    Some(v) => match g.members.get_mut(member_id) {
                        Some(m) => m.value = v.clone(),
                        None => {
                            g.members.insert(
                                member_id.clone(),
                                ConsumerMember {
                                    value: v.clone(),
                                    session_deadline_ms: now_ms + session,
                                    revocation_deadline_ms: None,
                                    last_sent: None,
                                },
                            );
                        }
                    },
                }
            }
            _ => unreachable!("only consumer group records come here"),
        }
    }

    fn consumer_group_entry(&mut self, group: &str) -> &mut ConsumerGroup {
        if !matches!(self.groups.get(group), Some(Group::Consumer(_))) {
            self.groups
                .insert(group.to_string(), Group::Consumer(ConsumerGroup::default()));
        }
        match self.groups.get_mut(group) {
            Some(Group::Consumer(g)) => g,
            _ => unreachable!("inserted above"),
        }
    }

    pub(super) fn consumer_group_tombstones(&self, group_id: &str) -> Vec<GroupRecord> {
        let mut out = Vec::new();
        if let Some(Group::Consumer(g)) = self.groups.get(group_id) {
            for id in g.members.keys() {
                out.push(GroupRecord::ConsumerMember {
                    group: group_id.to_string(),
                    member_id: id.clone(),
                    value: None,
                });
            }
            out.push(GroupRecord::ConsumerGroupEpoch {
                group: group_id.to_string(),
                epoch: None,
            });
        }
        out
    }

    /// ConsumerGroupHeartbeat: join (epoch 0), stay (the member's epoch), leave (-1, or -2
    /// for a static member). Returns the records and the response.
    pub fn consumer_group_heartbeat(
        &mut self,
        request: &ConsumerGroupHeartbeatRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
        topics: &TopicsImage,
        now_ms: i64,
    ) -> (Effects, ConsumerGroupHeartbeatResponse) {
        let mut effects = Effects::default();
        let interval = self.config.consumer_heartbeat_interval_ms;
        let session = self.config.consumer_session_timeout_ms as i64;
        let fail = |code: ErrorCode, message: &str| ConsumerGroupHeartbeatResponse {
            error_code: code.code(),
            error_message: Some(message.to_string()),
            ..Default::default()
        };
        let group_id = request.group_id.clone();
        let epoch = request.member_epoch;
        let joining = epoch == 0;
        // An empty regex clears a regex subscription (librdkafka always sends one).
        let regex = request.subscribed_topic_regex.as_deref().filter(|r| !r.is_empty());
        let invalid = if group_id.is_empty() {
            Some("GroupId can't be empty.")
        } else if epoch < -2 {
            Some("MemberEpoch is invalid.")
        } else if version >= 1 && request.member_id.is_empty() {
            Some("MemberId can't be empty.")
        } else if joining && request.rebalance_timeout_ms == -1 {
            Some("RebalanceTimeoutMs must be provided when joining.")
        } else if joining && request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none() {
            Some("Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.")
        } else if epoch == -2 && request.instance_id.is_none() {
            Some("InstanceId can't be null.")
        } else if joining && request.topic_partitions.as_ref().is_some_and(|t| !t.is_empty()) {
            Some("TopicPartitions must be empty when joining.")
        } else {
            None
        };
        if let Some(why) = invalid {
            return (effects, fail(ErrorCode::InvalidRequest, why));
        }
        if let Some(Err(why)) = regex.map(topic_regex) {
            return (
                effects,
                fail(
                    ErrorCode::InvalidRegularExpression,
                    &format!("SubscribedTopicRegex: {why}"),
                ),
            );
        }
        if let Some(a) = request.server_assignor.as_deref() {
            if a != "uniform" && a != "range" {
                return (
                    effects,
                    fail(ErrorCode::UnsupportedAssignor, "only uniform and range are served"),
                );
            }
        }
        match self.groups.get(&group_id) {
            Some(Group::Classic(g)) if !g.members.is_empty() => {
                return (
                    effects,
                    fail(
                        ErrorCode::GroupIdNotFound,
                        &format!("group {group_id} is not a consumer group"),
                    ),
                );
            }
            Some(Group::Classic(_)) if !joining => {
                // Only a join converts a classic group; anything else would turn it into a
                // consumer group in memory that no record describes (found by replaying
                // the compacted log of a fuzzed shard).
                return (
                    effects,
                    fail(
                        ErrorCode::GroupIdNotFound,
                        &format!("group {group_id} is not a consumer group"),
                    ),
                );
            }
            Some(Group::Classic(_)) => {
                // An empty classic group becomes a consumer group.
                effects.records.push(GroupRecord::ClassicGroup {
                    group: group_id.clone(),
                    value: None,
                });
                self.groups.remove(&group_id);
            }
            Some(Group::Consumer(_)) => {}
            None if joining => {
                if self.groups.len() >= self.config.groups_per_shard_max {
                    return (effects, fail(ErrorCode::CoordinatorNotAvailable, "too many groups"));
                }
            }
            None => return (effects, fail(ErrorCode::UnknownMemberId, "no such group")),
        }
        let member_id = if request.member_id.is_empty() {
            self.new_member_id("", now_ms).trim_start_matches('-').to_string()
        } else {
            request.member_id.clone()
        };
        let members_max = self.config.consumer_group_members_max;
        let group = self.consumer_group_entry(&group_id);
        let mut group_changed = false;
        if epoch < 0 {
            // Leaving: a static member is found by its instance id, and must be the one
            // holding it now.
            if let Some(instance) = &request.instance_id {
                match group.static_member(instance) {
                    None => return (effects, fail(ErrorCode::UnknownMemberId, "the instance id is unknown")),
                    Some(holder) if holder != member_id => {
                        return (
                            effects,
                            fail(ErrorCode::FencedInstanceId, "the instance id is held by another member"),
                        );
                    }
                    Some(_) => {}
                }
            }
            if epoch == -2 {
                // A static member leaves for now: it keeps its assignment (no one else gets
                // it) until it comes back under its instance id or its session runs out.
                let member = group.members.get_mut(&member_id).expect("the static member");
                member.value.member_epoch = -2;
                member.value.revoking = Vec::new();
                member.revocation_deadline_ms = None;
                effects.records.push(GroupRecord::ConsumerMember {
                    group: group_id.clone(),
                    member_id: member_id.clone(),
                    value: Some(member.value.clone()),
                });
                let response = ConsumerGroupHeartbeatResponse {
                    member_id: Some(member_id),
                    member_epoch: -2,
                    heartbeat_interval_ms: 0,
                    ..Default::default()
                };
                return (effects, response);
            }
            if group.members.remove(&member_id).is_none() {
                return (effects, fail(ErrorCode::UnknownMemberId, "not a member"));
            }
            effects.records.push(GroupRecord::ConsumerMember {
                group: group_id.clone(),
                member_id: member_id.clone(),
                value: None,
            });
            group.epoch += 1;
            effects.records.push(GroupRecord::ConsumerGroupEpoch {
                group: group_id.clone(),
                epoch: Some(group.epoch),
            });
            let response = ConsumerGroupHeartbeatResponse {
                member_id: Some(member_id),
                member_epoch: epoch,
                heartbeat_interval_ms: 0,
                ..Default::default()
            };
            return (effects, response);
        }
        let replaced = match (&request.instance_id, joining) {
            (Some(instance), true) => group.static_member(instance).filter(|holder| *holder != member_id),
            _ => None,
        };
        if let Some(old_id) = replaced {
            // A static member back under a new id takes over its old self, assignment and
            // all, without a rebalance; only one that left with -2 may be taken over.
            if group.members[&old_id].value.member_epoch != -2 {
                return (
                    effects,
                    fail(
                        ErrorCode::UnreleasedInstanceId,
                        "the instance id is still held by an active member",
                    ),
                );
            }
            let mut old = group.members.remove(&old_id).expect("the static member");
            effects.records.push(GroupRecord::ConsumerMember {
                group: group_id.clone(),
                member_id: old_id.clone(),
                value: None,
            });
            if let Some(target) = group.target.remove(&old_id) {
                group.target.insert(member_id.clone(), target);
            }
            old.value.client_id = client_id.to_string();
            old.value.client_host = client_host.to_string();
            old.value.rebalance_timeout_ms = request.rebalance_timeout_ms;
            old.value.member_epoch = 0;
            old.session_deadline_ms = now_ms + session;
            old.last_sent = None;
            group.members.insert(member_id.clone(), old);
        } else if joining {
            if !group.members.contains_key(&member_id) && group.members.len() >= members_max {
                return (effects, fail(ErrorCode::GroupMaxSizeReached, "the group is full"));
            }
            // Rejoining with epoch 0 starts over: the insert replaces (and frees) what it held.
            group.members.insert(
                member_id.clone(),
                ConsumerMember {
                    value: ConsumerMemberValue {
                        instance_id: request.instance_id.clone(),
                        client_id: client_id.to_string(),
                        client_host: client_host.to_string(),
                        subscribed_topics: Vec::new(),
                        subscribed_topic_regex: None,
                        rebalance_timeout_ms: request.rebalance_timeout_ms,
                        server_assignor: None,
                        member_epoch: 0,
                        previous_member_epoch: 0,
                        assigned: Vec::new(),
                        revoking: Vec::new(),
                    },
                    session_deadline_ms: now_ms + session,
                    revocation_deadline_ms: None,
                    last_sent: None,
                },
            );
            group_changed = true;
        }
        let owned: Option<Partitions> = request.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|t| (t.topic_id, t.partitions.iter().copied().collect()))
                .collect()
        });
        let Some(member) = group.members.get_mut(&member_id) else {
            return (effects, fail(ErrorCode::UnknownMemberId, "not a member"));
        };
        if !joining && epoch != member.value.member_epoch {
            // A lost response leaves the member one epoch behind, owning what it was given.
            let lost_response = epoch == member.value.previous_member_epoch
                && owned
                    .as_ref()
                    .is_some_and(|o| is_empty(&minus(o, &to_map(&member.value.assigned))));
            if !lost_response {
                return (
                    effects,
                    fail(ErrorCode::FencedMemberEpoch, "the member epoch is not current"),
                );
            }
        }
        member.session_deadline_ms = now_ms + session;
        let before = member.value.clone();
        if let Some(names) = &request.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            if names != member.value.subscribed_topics {
                member.value.subscribed_topics = names;
                group_changed = true;
            }
        }
        if request.subscribed_topic_regex.is_some() {
            // An empty regex clears the regex subscription.
            let regex = regex.map(str::to_string);
            if regex != member.value.subscribed_topic_regex {
                member.value.subscribed_topic_regex = regex;
                group_changed = true;
            }
        }
        if request.rebalance_timeout_ms > 0 {
            member.value.rebalance_timeout_ms = request.rebalance_timeout_ms;
        }
        if request.server_assignor.is_some() && request.server_assignor != member.value.server_assignor {
            member.value.server_assignor = request.server_assignor.clone();
            group_changed = true;
        }
        if let Some(i) = &request.instance_id {
            member.value.instance_id = Some(i.clone());
        }
        // A subscribed topic created, deleted or grown changes the target too.
        let mut seen = BTreeMap::new();
        for m in group.members.values() {
            for t in member_topics(&m.value, topics) {
                if let Some(meta) = topics.get(&t) {
                    seen.insert(t, *meta);
                }
            }
        }
        if group.target_epoch == 0 && group.epoch > 0 {
            // Freshly replayed: the metadata of now is what the target is computed from.
            group.topics_seen = seen.clone();
        }
        if seen != group.topics_seen {
            group.topics_seen = seen;
            group_changed = true;
        }
        if group_changed {
            group.epoch += 1;
            effects.records.push(GroupRecord::ConsumerGroupEpoch {
                group: group_id.clone(),
                epoch: Some(group.epoch),
            });
        }
        if group.target_epoch < group.epoch {
            group.compute_target(topics);
        }
        group.reconcile(&member_id, owned.as_ref(), now_ms);
        let member = group.members.get_mut(&member_id).expect("reconciled");
        if member.value != before || joining {
            effects.records.push(GroupRecord::ConsumerMember {
                group: group_id.clone(),
                member_id: member_id.clone(),
                value: Some(member.value.clone()),
            });
        }
        let assigned = to_map(&member.value.assigned);
        let tell =
            joining || member.last_sent.as_ref() != Some(&assigned) || owned.as_ref().is_some_and(|o| *o != assigned);
        let assignment = tell.then(|| Assignment {
            topic_partitions: member
                .value
                .assigned
                .iter()
                .map(|(id, ps)| TopicPartitions {
                    topic_id: *id,
                    partitions: ps.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        if tell {
            member.last_sent = Some(assigned);
        }
        let response = ConsumerGroupHeartbeatResponse {
            member_id: Some(member_id),
            member_epoch: member.value.member_epoch,
            heartbeat_interval_ms: interval,
            assignment,
            ..Default::default()
        };
        (effects, response)
    }

    /// Fences members whose session or revocation ran out.
    pub(super) fn tick_consumer(&mut self, group_id: &str, now_ms: i64, effects: &mut Effects) {
        let Some(Group::Consumer(group)) = self.groups.get_mut(group_id) else {
            return;
        };
        let fenced: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| m.session_deadline_ms <= now_ms || m.revocation_deadline_ms.is_some_and(|d| d <= now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        if fenced.is_empty() {
            return;
        }
        for id in fenced {
            group.members.remove(&id);
            effects.records.push(GroupRecord::ConsumerMember {
                group: group_id.to_string(),
                member_id: id,
                value: None,
            });
        }
        group.epoch += 1;
        effects.records.push(GroupRecord::ConsumerGroupEpoch {
            group: group_id.to_string(),
            epoch: Some(group.epoch),
        });
    }

    /// ConsumerGroupDescribe for one group: its epochs, assignor and members, each with its
    /// current and target assignment (topic names from `topics`).
    pub fn describe_consumer_group(
        &self,
        group_id: &str,
        topics: &TopicsImage,
    ) -> consumer_group_describe_response::DescribedGroup {
        use consumer_group_describe_response::{
            Assignment as Described, DescribedGroup, Member, TopicPartitions as DescribedTopic,
        };
        let g = match self.groups.get(group_id) {
            Some(Group::Consumer(g)) => g,
            other => {
                let why = if other.is_some() || self.offsets.contains_key(group_id) {
                    format!("Group {group_id} is not a consumer group.")
                } else {
                    format!("Group {group_id} not found.")
                };
                return DescribedGroup {
                    group_id: group_id.to_string(),
                    error_code: ErrorCode::GroupIdNotFound.code(),
                    error_message: Some(why),
                    group_state: "Dead".to_string(),
                    ..Default::default()
                };
            }
        };
        let names: BTreeMap<Uuid, &str> = topics.iter().map(|(name, (id, _))| (*id, name.as_str())).collect();
        let describe = |partitions: &Partitions| Described {
            topic_partitions: partitions
                .iter()
                .filter(|(_, ps)| !ps.is_empty())
                .map(|(id, ps)| DescribedTopic {
                    topic_id: *id,
                    topic_name: names.get(id).map(|n| n.to_string()).unwrap_or_default(),
                    partitions: ps.iter().copied().collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let empty = Partitions::new();
        DescribedGroup {
            group_id: group_id.to_string(),
            group_state: g.state_name().to_string(),
            group_epoch: g.epoch,
            assignment_epoch: g.target_epoch,
            assignor_name: g.assignor_name().to_string(),
            members: g
                .members
                .iter()
                .map(|(id, m)| Member {
                    member_id: id.clone(),
                    instance_id: m.value.instance_id.clone(),
                    member_epoch: m.value.member_epoch,
                    client_id: m.value.client_id.clone(),
                    client_host: m.value.client_host.clone(),
                    subscribed_topic_names: m.value.subscribed_topics.clone(),
                    subscribed_topic_regex: m.value.subscribed_topic_regex.clone(),
                    assignment: describe(&to_map(&m.value.assigned)),
                    target_assignment: describe(g.target.get(id).unwrap_or(&empty)),
                    member_type: 1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}
