//! The shard as data: each case is a script of requests and clock moves, each line with the
//! replies it must release, run by one interpreter (`check`). Member ids are generated, so
//! scripts name members by alias (`a`, `b`); the interpreter learns the ids from replies.
//!
//! Lines: `<command> => <replies>`; replies are sorted and joined by `; `, `-` for none.
//!   join M [v=N] [static=I] [proto=P,Q] [session=MS]   JoinGroup from alias M
//!   sync M G [M2=X ...]                                SyncGroup of generation G (the leader
//!                                                      gives member M2 assignment X)
//!   heartbeat M G | leave M... | commit M G | tick MS (advance the clock) | reload
//!   topic T N                                          create topic T with N partitions
//!   cg M E [topics=t1,t2] [regex=R] [owned=t:0,1/u:2] [assignor=range] [static=I]
//!                                                      ConsumerGroupHeartbeat
//!   cgdescribe                                        ConsumerGroupDescribe: `STATE gE aE
//!                                                      ASSIGNOR M:eE:[owned]->[target] ...`
//! Reply forms: `M join gG leader=L [members=N]`, `M join ERROR`, `M sync X`, `M sync ERROR`,
//! a bare code for heartbeat/commit/leave, and `M eE t:0,1 ...` for ConsumerGroupHeartbeat.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::*;
use crate::error::ErrorCode;
use crate::protocol::codec::Uuid;
use crate::protocol::messages::*;

const GROUP: &str = "g";

struct Harness {
    shard: GroupCoordinatorShard,
    now: i64,
    next_request: u64,
    /// Request id to (alias, kind).
    waiting: HashMap<u64, (String, &'static str)>,
    ids: BTreeMap<String, String>,
    epochs: BTreeMap<String, i32>,
    log: Vec<GroupRecord>,
    topics: TopicsImage,
}

fn code_name(code: i16) -> &'static str {
    [
        ErrorCode::None,
        ErrorCode::IllegalGeneration,
        ErrorCode::InconsistentGroupProtocol,
        ErrorCode::InvalidGroupId,
        ErrorCode::UnknownMemberId,
        ErrorCode::InvalidSessionTimeout,
        ErrorCode::RebalanceInProgress,
        ErrorCode::MemberIdRequired,
        ErrorCode::FencedInstanceId,
        ErrorCode::UnreleasedInstanceId,
        ErrorCode::InvalidRegularExpression,
        ErrorCode::GroupMaxSizeReached,
        ErrorCode::StaleMemberEpoch,
        ErrorCode::FencedMemberEpoch,
        ErrorCode::GroupIdNotFound,
        ErrorCode::NonEmptyGroup,
        ErrorCode::InvalidRequest,
        ErrorCode::UnsupportedAssignor,
        ErrorCode::NotCoordinator,
    ]
    .into_iter()
    .find(|c| c.code() == code)
    .map(|c| c.name())
    .unwrap_or("OTHER")
}

fn topic_id(name: &str) -> Uuid {
    let mut id = [0u8; 16];
    id[..name.len().min(16)].copy_from_slice(&name.as_bytes()[..name.len().min(16)]);
    Uuid(id)
}

impl Harness {
    fn new() -> Harness {
        let config = GroupConfig {
            initial_rebalance_delay_ms: 0,
            group_members_max: 3,
            consumer_group_members_max: 3,
            ..GroupConfig::default()
        };
        let mut topics = TopicsImage::new();
        topics.insert("t".to_string(), (topic_id("t"), 4));
        topics.insert("u".to_string(), (topic_id("u"), 2));
        Harness {
            shard: GroupCoordinatorShard::new(config, 0),
            now: 1_000_000,
            next_request: 1,
            waiting: HashMap::new(),
            ids: BTreeMap::new(),
            epochs: BTreeMap::new(),
            log: Vec::new(),
            topics,
        }
    }

    fn alias_of(&self, id: &str) -> String {
        self.ids
            .iter()
            .find(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| format!("?{id}"))
    }

    fn id(&self, alias: &str) -> String {
        self.ids.get(alias).cloned().unwrap_or_default()
    }

    /// Commits effects as the shell does: records replayed, then replies rendered.
    fn apply(&mut self, effects: Effects) -> Vec<String> {
        for r in &effects.records {
            // Every record must survive its own encoding.
            let (k, v) = r.encode();
            assert_eq!(&GroupRecord::decode(k, v).unwrap(), r);
            self.shard.replay(r, self.now);
            self.log.push(r.clone());
        }
        let mut out = Vec::new();
        for (id, reply) in effects.replies {
            let (alias, _) = self.waiting.remove(&id).expect("a reply to a request made");
            out.push(match reply {
                Reply::Join(r) if r.error_code == 0 => {
                    self.ids.insert(alias.clone(), r.member_id.clone());
                    let mut s = format!("{alias} join g{} leader={}", r.generation_id, self.alias_of(&r.leader));
                    if !r.members.is_empty() {
                        s.push_str(&format!(" members={}", r.members.len()));
                    }
                    s
                }
                Reply::Join(r) => {
                    if !r.member_id.is_empty() {
                        self.ids.insert(alias.clone(), r.member_id.clone());
                    }
                    format!("{alias} join {}", code_name(r.error_code))
                }
                Reply::Sync(r) if r.error_code == 0 => {
                    format!("{alias} sync {}", String::from_utf8_lossy(&r.assignment))
                }
                Reply::Sync(r) => format!("{alias} sync {}", code_name(r.error_code)),
            });
        }
        assert_eq!(self.shard.check_invariants(), Ok(()));
        out
    }

    fn request(&mut self, alias: &str, kind: &'static str) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        self.waiting.insert(id, (alias.to_string(), kind));
        id
    }

    fn step(&mut self, line: &str) -> Vec<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let opt = |key: &str| {
            words
                .iter()
                .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        };
        match words[0] {
            "join" => {
                let alias = words[1];
                let version: i16 = opt("v").map_or(9, |v| v.parse().unwrap());
                let protocols = opt("proto").unwrap_or("range");
                let request = JoinGroupRequest {
                    group_id: GROUP.to_string(),
                    session_timeout_ms: opt("session").map_or(10_000, |v| v.parse().unwrap()),
                    rebalance_timeout_ms: 20_000,
                    member_id: self.id(alias),
                    group_instance_id: opt("static").map(str::to_string),
                    protocol_type: opt("type").unwrap_or("consumer").to_string(),
                    protocols: protocols
                        .split(',')
                        .map(|p| join_group_request::JoinGroupRequestProtocol {
                            name: p.to_string(),
                            metadata: Bytes::from(opt("meta").unwrap_or("meta").to_string()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                let id = self.request(alias, "join");
                let effects = self
                    .shard
                    .join_group(id, &request, version, "client", "/127.0.0.1", self.now);
                self.apply(effects)
            }
            "sync" => {
                let alias = words[1];
                let generation: i32 = words[2].parse().unwrap();
                let assignments = words[3..]
                    .iter()
                    .filter_map(|w| w.split_once('='))
                    .map(|(m, a)| sync_group_request::SyncGroupRequestAssignment {
                        member_id: self.id(m),
                        assignment: Bytes::from(a.to_string()),
                        ..Default::default()
                    })
                    .collect();
                let request = SyncGroupRequest {
                    group_id: GROUP.to_string(),
                    generation_id: generation,
                    member_id: self.id(alias),
                    assignments,
                    ..Default::default()
                };
                let id = self.request(alias, "sync");
                let effects = self.shard.sync_group(id, &request, 5, self.now);
                self.apply(effects)
            }
            "heartbeat" => {
                let request = HeartbeatRequest {
                    group_id: GROUP.to_string(),
                    generation_id: words[2].parse().unwrap(),
                    member_id: self.id(words[1]),
                    ..Default::default()
                };
                vec![self.shard.heartbeat(&request, 4, self.now).name().to_string()]
            }
            "leave" => {
                let leaving: Vec<(String, Option<String>)> = words[1..].iter().map(|a| (self.id(a), None)).collect();
                let (effects, top, each) = self.shard.leave_group(GROUP, &leaving, self.now);
                let mut out = self.apply(effects);
                out.push(format!(
                    "leave {} {:?}",
                    top.name(),
                    each.iter().map(|c| c.name()).collect::<Vec<_>>()
                ));
                out
            }
            "commit" => {
                let member = match words[1] {
                    "-" => String::new(),
                    alias if self.epochs.contains_key(alias) => format!("member-{alias}"),
                    alias => self.id(alias),
                };
                let request = OffsetCommitRequest {
                    group_id: GROUP.to_string(),
                    generation_id_or_member_epoch: words[2].parse().unwrap(),
                    member_id: member,
                    topics: vec![offset_commit_request::OffsetCommitRequestTopic {
                        name: "t".to_string(),
                        partitions: vec![offset_commit_request::OffsetCommitRequestPartition {
                            partition_index: 0,
                            committed_offset: 42,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                let (records, errors) = self.shard.commit_offsets(&request, 9, self.now);
                let mut out = self.apply(Effects {
                    records,
                    replies: Vec::new(),
                });
                out.push(errors[0][0].name().to_string());
                out
            }
            "fetch" => {
                let found = self.shard.fetch_offsets(GROUP, None);
                vec![format!("{found:?}")
                    .replace("OffsetAndMetadata", "")
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect()]
            }
            "tick" => {
                self.now += words[1].parse::<i64>().unwrap();
                let effects = self.shard.tick(self.now);
                self.apply(effects)
            }
            "reload" => {
                // A failover: a new shard replays everything written.
                let mut shard = GroupCoordinatorShard::new(self.shard.config.clone(), 0);
                for r in &self.log {
                    shard.replay(r, self.now);
                }
                self.shard = shard;
                assert_eq!(self.shard.check_invariants(), Ok(()));
                Vec::new()
            }
            "describe" => {
                let d = self.shard.describe_group(GROUP);
                vec![format!("{} {}", d.group_state, d.members.len())]
            }
            "topic" => {
                let name = words[1];
                self.topics
                    .insert(name.to_string(), (topic_id(name), words[2].parse().unwrap()));
                Vec::new()
            }
            "cgdescribe" => {
                let d = self.shard.describe_consumer_group(GROUP, &self.topics);
                if d.error_code != 0 {
                    return vec![code_name(d.error_code).to_string()];
                }
                let show = |a: &consumer_group_describe_response::Assignment| {
                    let parts: Vec<String> = a
                        .topic_partitions
                        .iter()
                        .map(|tp| {
                            assert_eq!(self.topics[&tp.topic_name].0, tp.topic_id, "topic name and id agree");
                            let ps: Vec<String> = tp.partitions.iter().map(|p| p.to_string()).collect();
                            format!("{}:{}", tp.topic_name, ps.join(","))
                        })
                        .collect();
                    format!("[{}]", parts.join(" "))
                };
                let mut out = format!(
                    "{} g{} a{} {}",
                    d.group_state, d.group_epoch, d.assignment_epoch, d.assignor_name
                );
                for m in &d.members {
                    let alias = m.member_id.trim_start_matches("member-");
                    out.push_str(&format!(
                        " {alias}:e{}:{}->{}",
                        m.member_epoch,
                        show(&m.assignment),
                        show(&m.target_assignment)
                    ));
                }
                vec![out]
            }
            "delete" => vec![match self.shard.delete_group(GROUP) {
                Ok(records) => {
                    self.apply(Effects {
                        records,
                        replies: Vec::new(),
                    });
                    "NONE".to_string()
                }
                Err(code) => code.name().to_string(),
            }],
            "cg" => {
                let alias = words[1];
                let epoch: i32 = match words[2] {
                    "current" => self.epochs.get(alias).copied().unwrap_or(0),
                    e => e.parse().unwrap(),
                };
                let owned = opt("owned").map(|o| {
                    o.split('/')
                        .filter(|s| !s.is_empty())
                        .map(|tp| {
                            let (t, ps) = tp.split_once(':').unwrap();
                            consumer_group_heartbeat_request::TopicPartitions {
                                topic_id: topic_id(t),
                                partitions: ps.split(',').map(|p| p.parse().unwrap()).collect(),
                                ..Default::default()
                            }
                        })
                        .collect()
                });
                let request = ConsumerGroupHeartbeatRequest {
                    group_id: GROUP.to_string(),
                    member_id: format!("member-{alias}"),
                    member_epoch: epoch,
                    rebalance_timeout_ms: if epoch == 0 { 5_000 } else { -1 },
                    subscribed_topic_names: opt("topics").map(|t| t.split(',').map(str::to_string).collect()),
                    server_assignor: opt("assignor").map(str::to_string),
                    instance_id: opt("static").map(str::to_string),
                    subscribed_topic_regex: opt("regex").map(str::to_string),
                    topic_partitions: owned,
                    ..Default::default()
                };
                let (effects, response) =
                    self.shard
                        .consumer_group_heartbeat(&request, 1, "client", "/127.0.0.1", &self.topics, self.now);
                let mut out = self.apply(effects);
                if response.error_code != 0 {
                    out.push(format!("{alias} {}", code_name(response.error_code)));
                    return out;
                }
                self.epochs.insert(alias.to_string(), response.member_epoch);
                let mut s = format!("{alias} e{}", response.member_epoch);
                if let Some(a) = response.assignment {
                    let names: BTreeMap<Uuid, &str> =
                        self.topics.iter().map(|(n, (id, _))| (*id, n.as_str())).collect();
                    s.push_str(" [");
                    let parts: Vec<String> = a
                        .topic_partitions
                        .iter()
                        .map(|tp| {
                            let ps: Vec<String> = tp.partitions.iter().map(|p| p.to_string()).collect();
                            format!("{}:{}", names[&tp.topic_id], ps.join(","))
                        })
                        .collect();
                    s.push_str(&parts.join(" "));
                    s.push(']');
                }
                out.push(s);
                out
            }
            other => panic!("unknown command {other}"),
        }
    }
}

/// Runs a script; every line's replies must match.
fn check(script: &str) {
    let mut h = Harness::new();
    for (n, line) in script.lines().map(str::trim).enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (command, want) = line.split_once("=>").unwrap_or((line, "-"));
        let mut got = h.step(command.trim());
        got.sort();
        let got = if got.is_empty() {
            "-".to_string()
        } else {
            got.join("; ")
        };
        assert_eq!(got, want.trim(), "line {}: {command}", n + 1);
    }
}

#[test]
fn partition_for_matches_kafka() {
    // Java: Utils.abs("group".hashCode()) % 50 and friends.
    let cases = [
        ("group", 50, 47),
        ("", 50, 0),
        ("my-group", 50, 12),
        ("a", 7, 6),
        ("grüppe-€", 50, 23),
        ("a-very-long-group-name-that-overflows", 50, 15),
    ];
    for (group, partitions, want) in cases {
        assert_eq!(partition_for(group, partitions), want, "{group}");
    }
}

#[test]
fn classic_join_sync_heartbeat() {
    check(
        "
        join a => a join MEMBER_ID_REQUIRED
        join a => a join g1 leader=a members=1
        heartbeat a 1 => NONE
        sync a 1 a=A0 => a sync A0
        heartbeat a 1 => NONE
        heartbeat a 0 => ILLEGAL_GENERATION
        describe => Stable 1
        # A second member: a learns from its heartbeat and rejoins.
        join b => b join MEMBER_ID_REQUIRED
        join b => -
        heartbeat a 1 => REBALANCE_IN_PROGRESS
        sync a 1 => a sync REBALANCE_IN_PROGRESS
        join a => a join g2 leader=a members=2; b join g2 leader=a
        sync b 2 => -
        sync a 2 a=A1 b=B1 => a sync A1; b sync B1
        describe => Stable 2
        ",
    );
}

#[test]
fn classic_join_errors() {
    check(
        "
        join a session=10 => a join INVALID_SESSION_TIMEOUT
        join a type= => a join INCONSISTENT_GROUP_PROTOCOL
        join a v=3 proto=range => a join g1 leader=a members=1
        # A protocol no member shares.
        join b v=3 proto=roundrobin => b join INCONSISTENT_GROUP_PROTOCOL
        join b v=3 proto=roundrobin,range => -
        join a v=3 => a join g2 leader=a members=2; b join g2 leader=a
        heartbeat c 2 => UNKNOWN_MEMBER_ID
        # A member joining twice: the first join is answered with an error.
        join c => c join MEMBER_ID_REQUIRED
        join c => -
        join c => c join REBALANCE_IN_PROGRESS
        join b v=3 proto=roundrobin,range => -
        join a v=3 => a join g3 leader=a members=3; b join g3 leader=a; c join g3 leader=a
        ",
    );
}

#[test]
fn classic_group_max_size() {
    check(
        "
        join a v=3 => a join g1 leader=a members=1
        join b v=3 => -
        join c v=3 => -
        join d v=3 => d join GROUP_MAX_SIZE_REACHED
        ",
    );
}

#[test]
fn classic_session_timeout_and_leave() {
    check(
        "
        join a v=3 => a join g1 leader=a members=1
        join b v=3 => -
        join a v=3 => a join g2 leader=a members=2; b join g2 leader=a
        sync a 2 a=A b=B => a sync A
        sync b 2 => b sync B
        # b goes silent: after its session it is out, and a must rejoin.
        tick 5000 => -
        heartbeat a 2 => NONE
        tick 6000 => -
        heartbeat a 2 => REBALANCE_IN_PROGRESS
        join a v=3 => a join g3 leader=a members=1
        sync a 3 a=A2 => a sync A2
        leave a => leave NONE [\"NONE\"]
        describe => Empty 0
        leave a => leave NONE [\"UNKNOWN_MEMBER_ID\"]
        ",
    );
}

#[test]
fn classic_member_that_does_not_rejoin_is_removed() {
    check(
        "
        join a v=3 => a join g1 leader=a members=1
        sync a 1 a=A => a sync A
        join b v=3 => -
        # a never rejoins: after the rebalance timeout (20 s) the join completes without it.
        tick 9000 => -
        heartbeat b 1 => UNKNOWN_MEMBER_ID
        tick 11001 => b join g2 leader=b members=1
        ",
    );
}

#[test]
fn classic_static_members() {
    check(
        "
        join a static=i1 => a join g1 leader=a members=1
        sync a 1 a=A => a sync A
        # The same instance back under a new id (a restart): no rebalance, its assignment
        # kept, and the leader told to skip the assignment (v9).
        join a2 static=i1 => a2 join g1 leader=a2 members=1
        # The same instance with other metadata: a rebalance.
        join a3 static=i1 meta=other => a3 join g2 leader=a3 members=1
        sync a3 2 a3=A3 => a3 sync A3
        heartbeat a 1 => UNKNOWN_MEMBER_ID
        describe => Stable 1
        # A reload replays every version of the group, each replacing the last (found by
        # the simulator: a replay that kept the first version's members).
        reload
        describe => Stable 1
        heartbeat a3 2 => NONE
        heartbeat a2 2 => UNKNOWN_MEMBER_ID
        ",
    );
}

#[test]
fn classic_offset_commits_check_membership() {
    check(
        "
        # Outside any membership, a commit to an empty (or unknown) group is taken.
        commit - -1 => NONE
        fetch => [(\"t\",[(0,Some({offset:42,leader_epoch:-1,metadata:\"\",commit_timestamp_ms:1000000}))])]
        join a v=3 => a join g1 leader=a members=1
        # While someone is a member, only members of the current generation commit.
        commit - -1 => UNKNOWN_MEMBER_ID
        commit a 1 => REBALANCE_IN_PROGRESS
        sync a 1 a=A => a sync A
        commit a 0 => ILLEGAL_GENERATION
        commit a 1 => NONE
        commit b 1 => UNKNOWN_MEMBER_ID
        delete => NON_EMPTY_GROUP
        leave a => leave NONE [\"NONE\"]
        delete => NONE
        fetch => []
        delete => GROUP_ID_NOT_FOUND
        ",
    );
}

#[test]
fn classic_group_survives_a_reload() {
    check(
        "
        join a v=3 => a join g1 leader=a members=1
        join b v=3 => -
        join a v=3 => a join g2 leader=a members=2; b join g2 leader=a
        sync a 2 a=A b=B => a sync A
        commit a 2 => NONE
        reload
        describe => Stable 2
        heartbeat b 2 => NONE
        sync b 2 => b sync B
        commit b 2 => NONE
        # After a failover, members that never come back time out.
        tick 10001 => -
        describe => Empty 0
        ",
    );
}

#[test]
fn consumer_protocol_assigns_and_revokes_before_reassigning() {
    check(
        "
        cg a 0 topics=t => a e1 [t:0,1,2,3]
        cg a current => a e1
        # b joins: the group epoch moves to 2; a must give up two partitions first.
        cgdescribe => Stable g1 a1 uniform a:e1:[t:0,1,2,3]->[t:0,1,2,3]
        cg b 0 topics=t => b e2 []
        cg a current => a e1 [t:0,1]
        cgdescribe => Reconciling g2 a2 uniform a:e1:[t:0,1]->[t:0,1] b:e2:[]->[t:2,3]
        # b gets nothing while a still holds them.
        cg b current => b e2
        # a says it now owns only 0 and 1: it reaches epoch 2, and b may take 2 and 3.
        cg a current owned=t:0,1 => a e2
        # b is at the target epoch but has not taken 2 and 3 yet: still reconciling.
        cgdescribe => Reconciling g2 a2 uniform a:e2:[t:0,1]->[t:0,1] b:e2:[]->[t:2,3]
        cg b current => b e2 [t:2,3]
        cgdescribe => Stable g2 a2 uniform a:e2:[t:0,1]->[t:0,1] b:e2:[t:2,3]->[t:2,3]
        # a leaves: b takes everything once it heartbeats.
        cg a -1 => a e-1
        cg b current => b e3 [t:0,1,2,3]
        ",
    );
}

#[test]
fn consumer_protocol_static_members() {
    check(
        "
        cg a 0 topics=t static=ia => a e1 [t:0,1,2,3]
        cg b 0 topics=t => b e2 []
        cg a current => a e1 [t:0,1]
        cg a current owned=t:0,1 => a e2
        cg b current => b e2 [t:2,3]
        # a leaves for now (-2): it keeps 0 and 1, and no one else gets them.
        cg a -2 static=ia => a e-2
        cg b current => b e2
        cgdescribe => Reconciling g2 a2 uniform a:e-2:[t:0,1]->[t:0,1] b:e2:[t:2,3]->[t:2,3]
        # Only the holder may leave under the instance id, and only with it.
        cg b -2 static=ia => b FENCED_INSTANCE_ID
        cg b -2 => b INVALID_REQUEST
        # Back under a new id: the same partitions, and no rebalance.
        cg c 0 topics=t static=ia => c e2 [t:0,1]
        cgdescribe => Stable g2 a2 uniform b:e2:[t:2,3]->[t:2,3] c:e2:[t:0,1]->[t:0,1]
        # An instance id held by an active member is not released.
        cg d 0 topics=t static=ia => d UNRELEASED_INSTANCE_ID
        # A static member that does not come back within its session is gone.
        cg c -2 static=ia => c e-2
        tick 30000
        cg b current => b e2
        tick 16000
        cg b current => b e3 [t:0,1,2,3]
        ",
    );
}

#[test]
fn consumer_protocol_regex_subscriptions() {
    check(
        "
        cg a 0 regex=[ => a INVALID_REGULAR_EXPRESSION
        # Whole names match (u, not t); internal topics are not in the image.
        cg a 0 regex=u|v => a e1 [u:0,1]
        # A matching topic created later joins the subscription at the next heartbeat.
        topic v 2
        cg a current => a e2 [u:0,1 v:0,1]
        # Names and a regex together: the uniform assignor balances v towards a.
        cg b 0 topics=t regex=v => b e3 [t:0,1,2,3]
        cg a current => a e3
        cgdescribe => Stable g3 a3 uniform a:e3:[u:0,1 v:0,1]->[u:0,1 v:0,1] b:e3:[t:0,1,2,3]->[t:0,1,2,3]
        # An empty regex clears a's subscription: it gives everything up, then b takes v.
        cg a current regex= => a e3 []
        cg a current owned= => a e4
        cg b current => b e4 [t:0,1,2,3 v:0,1]
        cgdescribe => Stable g4 a4 uniform a:e4:[]->[] b:e4:[t:0,1,2,3 v:0,1]->[t:0,1,2,3 v:0,1]
        ",
    );
}

#[test]
fn consumer_protocol_epochs_and_fencing() {
    check(
        "
        cgdescribe => GROUP_ID_NOT_FOUND
        cg a 0 topics=t,u => a e1 [t:0,1,2,3 u:0,1]
        cg a 7 => a FENCED_MEMBER_EPOCH
        cg z 3 => z UNKNOWN_MEMBER_ID
        cg b 0 topics=u assignor=fancy => b UNSUPPORTED_ASSIGNOR
        # A lost response: the member is one epoch behind but owns what it was given.
        # Balanced over all topics: a keeps t, b gets u once a has given it up.
        cg b 0 topics=u => b e2 []
        cg a current => a e1 [t:0,1,2,3]
        # A lost response: a is one epoch behind but owns only what it was given.
        cg a 1 owned=t:0,1,2,3 => a e2
        cg a 1 owned=t:0,1,2,3 => a e2
        cg b current => b e2 [u:0,1]
        # Offsets from members go by member epoch.
        commit b 1 => STALE_MEMBER_EPOCH
        commit b 2 => NONE
        commit - -1 => UNKNOWN_MEMBER_ID
        # b stops heartbeating: fenced after the session (45 s); a gets u back.
        tick 30000 => -
        cg a current => a e2
        tick 16000 => -
        cg a current => a e3 [t:0,1,2,3 u:0,1]
        ",
    );
}

#[test]
fn consumer_protocol_range_assignor_and_reload() {
    check(
        "
        cg a 0 topics=t assignor=range => a e1 [t:0,1,2,3]
        cg b 0 topics=t assignor=range => b e2 []
        cg a current => a e1 [t:0,1]
        cg a current owned=t:0,1 => a e2
        cg b current => b e2 [t:2,3]
        reload
        # After a failover each member is told its assignment again, at the same epoch.
        cg a current => a e2 [t:0,1]
        cg a current => a e2
        cg b current => b e2 [t:2,3]
        ",
    );
}

#[test]
fn classic_and_consumer_groups_do_not_mix() {
    check(
        "
        cg a 0 topics=t => a e1 [t:0,1,2,3]
        join b v=3 => b join INCONSISTENT_GROUP_PROTOCOL
        cg a -1 => a e-1
        # Empty, it converts.
        join b v=3 => b join g1 leader=b members=1
        cg c 0 topics=t => c GROUP_ID_NOT_FOUND
        cgdescribe => GROUP_ID_NOT_FOUND
        # Empty again: a heartbeat that is not a join leaves it classic, and writes nothing
        # (it once made it a consumer group in memory only); a join converts it.
        leave b => leave NONE [\"NONE\"]
        cg c 3 => c GROUP_ID_NOT_FOUND
        cg c -1 => c GROUP_ID_NOT_FOUND
        cgdescribe => GROUP_ID_NOT_FOUND
        cg c 0 topics=t => c e1 [t:0,1,2,3]
        ",
    );
}
