//! Consumer groups under faults: members of a classic group and of a KIP-848 group consume
//! the scenario's topic with the client's `GroupConsumer`, committing as they go; they
//! crash (drop without leaving), leave and come back while the nemesis crashes the broker
//! and cuts the network.
//!
//! Checks: a partition has at most one owner per generation (classic) or member epoch
//! (KIP-848), as members see it and as the coordinator's own state says (the monitor);
//! a successful commit never goes below an earlier one, and the final committed offsets
//! are at least the highest commits acknowledged; once the faults heal, each group
//! consumes every record of the final log within a bound.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use klamm::client::{Admin, ClientConfig, GroupConsumer};
use klamm::server::clock;
use madsim::rand::{thread_rng, Rng};

use crate::checker::{Shared, Tp};
use crate::workload::Env;

/// The groups, with their rebalance protocol.
pub const GROUPS: [(&str, &str); 2] = [("classic-group", "classic"), ("consumer-group", "consumer")];

/// Broker settings that make rebalances take simulated seconds, not minutes, and that
/// make the log cleaner compact `__consumer_offsets` while the groups run (3 partitions of
/// 2 KiB segments, a pass every 2 simulated seconds), so that shards reload from
/// compacted logs.
pub const BROKER_OVERRIDES: [&str; 8] = [
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=1000",
    "group.consumer.heartbeat.interval.ms=300",
    "group.consumer.session.timeout.ms=4000",
    "offsets.topic.num.partitions=3",
    "offsets.topic.segment.bytes=2048",
    "log.cleaner.backoff.ms=2000",
    "log.cleaner.min.cleanable.ratio=0.1",
];

/// One member slot of a group: it runs a member, which crashes or leaves after a while,
/// then runs a new one, until `done`.
/// `calm` is set when the faults heal: from then on members stop crashing and leaving, so
/// that the group can settle.
pub async fn member(
    group: &'static str,
    protocol: &'static str,
    slot: u32,
    env: Env,
    calm: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) {
    let mut incarnation = 0u32;
    while !done.load(Ordering::Acquire) {
        incarnation += 1;
        let config = ClientConfig::new()
            .set("bootstrap.servers", &env.bootstrap)
            .set("client.id", format!("{group}-{slot}-{incarnation}"))
            .set("request.timeout.ms", 3_000)
            .set("group.id", group)
            .set("group.protocol", protocol)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", 4_000)
            .set("heartbeat.interval.ms", 300)
            .set("max.poll.interval.ms", 8_000)
            .set("fetch.max.wait.ms", 200);
        let Ok(mut consumer) = GroupConsumer::new(config) else {
            return;
        };
        consumer.subscribe(std::slice::from_ref(&env.topic));
        let lifetime = thread_rng().gen_range(20..400);
        let mut round = 0;
        loop {
            round += 1;
            if done.load(Ordering::Acquire) || (round > lifetime && !calm.load(Ordering::Acquire)) {
                break;
            }
            let records =
                match tokio::time::timeout(Duration::from_secs(10), consumer.poll(Duration::from_millis(200))).await {
                    Ok(Ok(records)) => records,
                    _ => Vec::new(),
                };
            let (member_id, generation) = consumer.membership();
            let assignment = consumer.assignment();
            if std::env::var_os("KLAMM_SIM_DEBUG").is_some() && round % 50 == 0 && calm.load(Ordering::Acquire) {
                let positions: Vec<_> = assignment
                    .iter()
                    .map(|tp| (tp.1, consumer.position(&tp.0, tp.1)))
                    .collect();
                crate::runner::say(format!(
                    "{} {group} {member_id} g{generation} {positions:?} got {}",
                    clock::now_ms(),
                    records.len()
                ));
            }
            {
                let mut h = env.history.lock();
                for tp in &assignment {
                    let key = (group.to_string(), generation, tp.clone());
                    match h.group_owners.get(&key) {
                        Some(other) if *other != member_id => {
                            let other = other.clone();
                            h.violation(
                                "partition-owned-twice",
                                format!(
                                    "{group}: {tp:?} owned by {other} and {member_id} in generation/epoch {generation}"
                                ),
                            );
                        }
                        Some(_) => {}
                        None => {
                            h.group_owners.insert(key, member_id.clone());
                        }
                    }
                }
                for r in &records {
                    let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                    h.trace(&format!("group {group} {slot} {} {} {value}", r.partition, r.offset));
                    h.count("group-polled");
                    h.group_seen.entry(group.to_string()).or_default().insert(value);
                }
            }
            if records.is_empty() {
                continue;
            }
            let offsets: Vec<(Tp, i64)> = assignment
                .iter()
                .filter_map(|tp| consumer.position(&tp.0, tp.1).map(|o| (tp.clone(), o)))
                .collect();
            if thread_rng().gen_bool(0.02) {
                // Processing that outlasts the session (a long GC pause, a slow handler):
                // the member may be fenced before it commits, and its commit must fail.
                let stall = thread_rng().gen_range(1_000..8_000);
                tokio::time::sleep(Duration::from_millis(stall)).await;
                env.history.lock().count("group-stalls");
            }
            let sent = clock::now_ms();
            let committed = tokio::time::timeout(Duration::from_secs(10), consumer.commit_offsets(&offsets)).await;
            let acked = matches!(committed, Ok(Ok(()))).then(clock::now_ms);
            let mut h = env.history.lock();
            h.count(if acked.is_some() {
                "group-commits"
            } else {
                "group-commits-failed"
            });
            for (tp, offset) in offsets {
                let commits = h.group_commits.entry((group.to_string(), tp.clone())).or_default();
                // A commit acknowledged before this one was sent took effect before it.
                let before = commits
                    .iter()
                    .filter(|(_, _, a)| a.is_some_and(|a| a < sent))
                    .map(|(o, _, _)| *o)
                    .max();
                commits.push((offset, sent, acked));
                if let (Some(previous), Some(_)) = (before, acked) {
                    if offset < previous {
                        h.violation(
                            "committed-offset-regressed",
                            format!("{group}: {tp:?} committed {offset} after {previous} was (member {member_id}, generation/epoch {generation})"),
                        );
                    }
                }
            }
        }
        // Leave cleanly, or crash (the coordinator finds out from the session timeout).
        if thread_rng().gen_bool(0.5) {
            let _ = tokio::time::timeout(Duration::from_secs(5), consumer.close()).await;
            env.history.lock().count("group-leaves");
        } else {
            drop(consumer);
            env.history.lock().count("group-crashes");
        }
        let pause = thread_rng().gen_range(0..3_000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Whether every group has polled every value in `values`.
pub fn caught_up(history: &Shared, values: &[String]) -> bool {
    let h = history.lock();
    GROUPS.iter().all(|(group, _)| {
        h.group_seen
            .get(*group)
            .is_some_and(|seen| values.iter().all(|v| seen.contains(v)))
    })
}

/// The final checks: what each group missed, and committed offsets against the highest
/// acknowledged commits.
pub async fn check_final(history: &Shared, bootstrap: &str, values: &[String]) {
    {
        let mut h = history.lock();
        for (group, _) in GROUPS {
            let missing: Vec<&String> = match h.group_seen.get(group) {
                Some(seen) => values.iter().filter(|v| !seen.contains(*v)).collect(),
                None => values.iter().collect(),
            };
            if !missing.is_empty() {
                let what = format!(
                    "{group}: {} of {} records in the log never consumed after healing, e.g. {:?}",
                    missing.len(),
                    values.len(),
                    &missing[..missing.len().min(3)]
                );
                h.violation("group-liveness", what);
            }
        }
    }
    let config = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("request.timeout.ms", 3_000);
    for (group, _) in GROUPS {
        let mut committed = Err("not tried".to_string());
        for _ in 0..20 {
            let attempt = async {
                let mut admin = Admin::new(&config).await.map_err(|e| e.to_string())?;
                admin.group_offsets(group).await.map_err(|e| e.to_string())
            };
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(c)) => {
                    committed = Ok(c);
                    break;
                }
                Ok(Err(e)) => committed = Err(e),
                Err(_) => committed = Err("timed out".into()),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut h = history.lock();
        let committed = match committed {
            Ok(c) => c,
            Err(e) => {
                h.violation(
                    "group-liveness",
                    format!("{group}: OffsetFetch failed after healing: {e}"),
                );
                continue;
            }
        };
        // The last commit sent, if it was acknowledged, is the one in effect (an earlier
        // one still in flight would be from a member the group has fenced).
        let last: Vec<(Tp, i64)> = h
            .group_commits
            .iter()
            .filter(|((g, _), _)| g == group)
            .filter_map(|((_, tp), commits)| {
                let last = commits.iter().max_by_key(|(_, sent, _)| *sent)?;
                last.2.map(|_| (tp.clone(), last.0))
            })
            .collect();
        for (tp, acknowledged) in last {
            let now = committed.iter().find(|(t, _)| *t == tp).map_or(-1, |(_, o)| *o);
            if now < acknowledged {
                h.violation(
                    "committed-offset-lost",
                    format!("{group}: {tp:?} committed offset {now}, below the acknowledged {acknowledged}"),
                );
            }
        }
    }
}
