//! The entry point of the `group_coordinator` fuzz target: operation sequences on one
//! group coordinator shard, the way clients and the clock could drive it, each byte string
//! read as a script. After every operation the shard's invariants hold; every record it
//! asks for survives its own encoding; every reply owed is released exactly once; and a
//! shard rebuilt from its records holds the same committed offsets.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::{Effects, GroupConfig, GroupCoordinatorShard, GroupRecord, Reply, TopicsImage};
use crate::protocol::codec::Uuid;
use crate::protocol::messages::*;

/// Member slots the script picks from; few, so that members meet.
const SLOTS: u8 = 4;
/// Operations per script at most.
const OPS_MAX: usize = 256;

struct Script<'a> {
    data: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let Some((b, rest)) = self.data.split_first() else {
            return 0;
        };
        self.data = rest;
        *b
    }
    fn below(&mut self, n: u8) -> u8 {
        self.byte() % n
    }
}

struct World {
    shard: GroupCoordinatorShard,
    log: Vec<GroupRecord>,
    now: i64,
    next_request: u64,
    /// Requests whose replies are owed.
    waiting: BTreeSet<u64>,
    /// Classic member ids by slot, as replies gave them.
    classic_ids: BTreeMap<u8, String>,
    generation: i32,
    /// KIP-848 epochs by slot, and what each was last told it owns.
    epochs: BTreeMap<u8, i32>,
    owned: BTreeMap<u8, Vec<consumer_group_heartbeat_request::TopicPartitions>>,
    topics: TopicsImage,
}

const GROUPS: [&str; 2] = ["g", "h"];

fn topic_id(n: u8) -> Uuid {
    Uuid([n + 1; 16])
}

impl World {
    fn apply(&mut self, effects: Effects) {
        for r in &effects.records {
            let (k, v) = r.encode();
            assert_eq!(&GroupRecord::decode(k, v).expect("a record decodes"), r);
            self.shard.replay(r, self.now);
            self.log.push(r.clone());
        }
        for (id, reply) in effects.replies {
            assert!(self.waiting.remove(&id), "reply {id} released twice or never asked");
            match reply {
                Reply::Join(r) if !r.member_id.is_empty() => {
                    self.generation = self.generation.max(r.generation_id);
                    // Which slot asked is not in the reply; the script learns ids by order.
                    let slot = (id % SLOTS as u64) as u8;
                    self.classic_ids.insert(slot, r.member_id);
                }
                _ => {}
            }
        }
        if let Err(e) = self.shard.check_invariants() {
            panic!("invariant: {e}\nrecords: {:#?}", self.log);
        }
    }

    fn request_id(&mut self, slot: u8) -> u64 {
        // Ids carry their slot in the low bits (see `apply`).
        let id = self.next_request * SLOTS as u64 + slot as u64;
        self.next_request += 1;
        self.waiting.insert(id);
        id
    }

    fn step(&mut self, s: &mut Script) {
        let group = GROUPS[s.below(2) as usize].to_string();
        let slot = s.below(SLOTS);
        let member_id = self.classic_ids.get(&slot).cloned().unwrap_or_default();
        match s.below(11) {
            0 => {
                let protocols = match s.below(3) {
                    0 => vec!["range"],
                    1 => vec!["roundrobin"],
                    _ => vec!["range", "roundrobin"],
                };
                let request = JoinGroupRequest {
                    group_id: group,
                    session_timeout_ms: [6_000, 10_000, 1][s.below(3) as usize],
                    rebalance_timeout_ms: 20_000,
                    member_id: if s.below(4) == 0 { String::new() } else { member_id },
                    group_instance_id: (s.below(3) == 0).then(|| format!("instance-{slot}")),
                    protocol_type: "consumer".into(),
                    protocols: protocols
                        .into_iter()
                        .map(|p| join_group_request::JoinGroupRequestProtocol {
                            name: p.into(),
                            metadata: Bytes::from_static(b"meta"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                let version = s.below(10) as i16;
                let id = self.request_id(slot);
                let effects = self
                    .shard
                    .join_group(id, &request, version, "client", "/127.0.0.1", self.now);
                self.apply(effects);
            }
            1 => {
                let assignments = self
                    .classic_ids
                    .values()
                    .filter(|_| s.below(2) == 0)
                    .map(|m| sync_group_request::SyncGroupRequestAssignment {
                        member_id: m.clone(),
                        assignment: Bytes::from(format!("to {m}")),
                        ..Default::default()
                    })
                    .collect();
                let request = SyncGroupRequest {
                    group_id: group,
                    generation_id: self.generation - s.below(2) as i32,
                    member_id,
                    assignments,
                    ..Default::default()
                };
                let id = self.request_id(slot);
                let effects = self.shard.sync_group(id, &request, 5, self.now);
                self.apply(effects);
            }
            2 => {
                let request = HeartbeatRequest {
                    group_id: group,
                    generation_id: self.generation - s.below(2) as i32,
                    member_id,
                    ..Default::default()
                };
                let _ = self.shard.heartbeat(&request, 4, self.now);
            }
            3 => {
                let (effects, _, _) = self.shard.leave_group(&group, &[(member_id, None)], self.now);
                self.apply(effects);
            }
            4 => {
                let (member, epoch) = match s.below(3) {
                    0 => (String::new(), -1),
                    1 => (member_id, self.generation - s.below(2) as i32),
                    _ => (format!("m{slot}"), self.epochs.get(&slot).copied().unwrap_or(0)),
                };
                let request = OffsetCommitRequest {
                    group_id: group,
                    generation_id_or_member_epoch: epoch,
                    member_id: member,
                    topics: vec![offset_commit_request::OffsetCommitRequestTopic {
                        name: ["t", "u"][s.below(2) as usize].into(),
                        partitions: vec![offset_commit_request::OffsetCommitRequestPartition {
                            partition_index: s.below(4) as i32,
                            committed_offset: s.byte() as i64,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                let (records, _) = self.shard.commit_offsets(&request, 9, self.now);
                self.apply(Effects {
                    records,
                    replies: Vec::new(),
                });
            }
            5 => {
                self.now += s.byte() as i64 * 250;
                let effects = self.shard.tick(self.now);
                self.apply(effects);
            }
            6 => self.reload(),
            7 => {
                let epoch = match s.below(5) {
                    0 => 0,
                    1 => -1,
                    2 => -2,
                    3 => s.byte() as i32,
                    _ => self.epochs.get(&slot).copied().unwrap_or(0),
                };
                let topics = match s.below(3) {
                    0 => vec!["t".to_string()],
                    1 => vec!["u".to_string()],
                    _ => vec!["t".to_string(), "u".to_string()],
                };
                let owned = if s.below(3) == 0 {
                    None
                } else {
                    Some(self.owned.get(&slot).cloned().unwrap_or_default())
                };
                let request = ConsumerGroupHeartbeatRequest {
                    group_id: group,
                    member_id: format!("m{slot}"),
                    member_epoch: epoch,
                    instance_id: (s.below(4) == 0).then(|| format!("instance-{slot}")),
                    rebalance_timeout_ms: if epoch == 0 { 5_000 } else { -1 },
                    subscribed_topic_names: (epoch == 0 || s.below(4) == 0).then_some(topics),
                    server_assignor: [None, Some("uniform"), Some("range")][s.below(3) as usize].map(str::to_string),
                    topic_partitions: if epoch == 0 { None } else { owned },
                    ..Default::default()
                };
                let (effects, response) =
                    self.shard
                        .consumer_group_heartbeat(&request, 1, "client", "/127.0.0.1", &self.topics, self.now);
                self.apply(effects);
                if response.error_code == 0 {
                    self.epochs.insert(slot, response.member_epoch);
                    if let Some(a) = response.assignment {
                        let owned = a
                            .topic_partitions
                            .into_iter()
                            .map(|tp| consumer_group_heartbeat_request::TopicPartitions {
                                topic_id: tp.topic_id,
                                partitions: tp.partitions,
                                ..Default::default()
                            })
                            .collect();
                        self.owned.insert(slot, owned);
                    }
                }
            }
            8 => {
                let _ = self.shard.describe_group(&group);
                let _ = self.shard.describe_consumer_group(&group, &self.topics);
                let _ = self.shard.list_groups();
            }
            9 => {
                if let Ok(records) = self.shard.delete_group(&group) {
                    self.apply(Effects {
                        records,
                        replies: Vec::new(),
                    });
                }
            }
            _ => {
                let records = self.shard.expire_offsets(self.now);
                self.apply(Effects {
                    records,
                    replies: Vec::new(),
                });
            }
        }
    }

    /// A failover: the shard is unloaded (replies owed fail) and rebuilt from its records.
    fn reload(&mut self) {
        let before: Vec<_> = GROUPS.iter().map(|g| self.shard.fetch_offsets(g, None)).collect();
        for (id, _) in self.shard.unload() {
            assert!(self.waiting.remove(&id), "unload released {id} twice");
        }
        let mut shard = GroupCoordinatorShard::new(self.shard.config.clone(), 0);
        for r in &self.log {
            shard.replay(r, self.now);
        }
        // The log cleaner may have compacted the partition: the last record of each key
        // survives, and a tombstone may be gone too. Replaying that gives the same shard.
        for drop_tombstones in [false, true] {
            let mut compacted = GroupCoordinatorShard::new(self.shard.config.clone(), 0);
            for r in compact(&self.log, drop_tombstones) {
                compacted.replay(r, self.now);
            }
            assert_eq!(
                format!("{:?}{:?}", compacted.groups, compacted.offsets),
                format!("{:?}{:?}", shard.groups, shard.offsets),
                "a shard replayed from its compacted log differs (tombstones dropped: {drop_tombstones})\nlog: {:#?}",
                self.log
            );
        }
        self.shard = shard;
        if let Err(e) = self.shard.check_invariants() {
            panic!("invariant after reload: {e}");
        }
        let after: Vec<_> = GROUPS.iter().map(|g| self.shard.fetch_offsets(g, None)).collect();
        assert_eq!(before, after, "committed offsets changed across a reload");
    }
}

/// What the log cleaner leaves of `log`: the last record of each key, in log order, without
/// the tombstones if `drop_tombstones`.
fn compact(log: &[GroupRecord], drop_tombstones: bool) -> Vec<&GroupRecord> {
    let mut last = BTreeMap::new();
    for (i, r) in log.iter().enumerate() {
        last.insert(r.encode().0, i);
    }
    log.iter()
        .enumerate()
        .filter(|(i, r)| last[&r.encode().0] == *i && !(drop_tombstones && r.encode().1.is_none()))
        .map(|(_, r)| r)
        .collect()
}

/// Runs the operations `data` spells on a fresh shard.
pub fn run_ops(data: &[u8]) {
    let config = GroupConfig {
        initial_rebalance_delay_ms: if data.first().is_some_and(|b| b & 1 == 1) {
            3_000
        } else {
            0
        },
        group_members_max: 3,
        consumer_group_members_max: 3,
        ..GroupConfig::default()
    };
    let mut topics = TopicsImage::new();
    topics.insert("t".into(), (topic_id(0), 4));
    topics.insert("u".into(), (topic_id(1), 2));
    let mut world = World {
        shard: GroupCoordinatorShard::new(config, 0),
        log: Vec::new(),
        now: 1_000_000,
        next_request: 1,
        waiting: BTreeSet::new(),
        classic_ids: BTreeMap::new(),
        generation: 0,
        epochs: BTreeMap::new(),
        owned: BTreeMap::new(),
        topics,
    };
    let mut script = Script { data };
    for _ in 0..OPS_MAX {
        if script.data.is_empty() {
            break;
        }
        world.step(&mut script);
    }
    // Whatever is still owed is released by time or by a failover.
    world.now += 10 * 60 * 1000;
    let effects = world.shard.tick(world.now);
    world.apply(effects);
    world.reload();
    assert!(world.waiting.is_empty(), "replies never released: {:?}", world.waiting);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SimRng;

    /// Random scripts: the fuzz target's property on inputs a plain test can afford.
    #[test]
    fn random_operation_sequences_keep_the_invariants() {
        let mut rng = SimRng::new(0x6c0f);
        for _ in 0..300 {
            let len = rng.below(600) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            run_ops(&data);
        }
    }

    /// Inputs the fuzz target failed on, kept after the fix.
    #[test]
    fn fuzz_regressions() {
        let cases: &[&[u8]] = &[
            // A join, a sync, a failover in the same millisecond, a join: the reloaded
            // shard made the first member's id again.
            &[
                0x7a, 0x27, 0x3, 0, 0, 0, 0, 0, 0, 0x28, 0xa, 0, 0xf8, 0xfe, 0, 0x28, 0xa, 0xc4, 0x27, 0xa,
            ],
        ];
        for data in cases {
            run_ops(data);
        }
    }
}
