//! A scenario: one broker, one client node with writers, readers and an admin, a nemesis,
//! and the checks. Each seed draws its mode (page-cache or durable), workload and faults.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use klamm::client::{Admin, ClientConfig};
use klamm::io::SimRng;
use klamm::server::clock;
use madsim::runtime::Handle;

use crate::checker::Shared;
use crate::cluster::BrokerNode;
use crate::nemesis::{self, Fault, World};
use crate::runner::Outcome;
use crate::workload::{self, Env, WriterSpec};

#[derive(Clone, Debug)]
pub struct Spec {
    /// The fault types to draw from; `None`: a swarm draw from all of them.
    pub faults: Option<&'static [Fault]>,
    /// Durable mode (`log.flush.interval.messages=1`) or page-cache mode; `None`: drawn.
    pub durable: Option<bool>,
    pub admin: bool,
    /// Whether the topic may have `retention.ms` (and the admin may change it).
    pub retention: bool,
    pub fault_seconds: u64,
    /// The chance that a writer is an idempotent producer.
    pub idempotent_share: f64,
    /// Consumer groups (classic and KIP-848) consume the topic (`groups.rs`).
    pub groups: bool,
    /// Side topics are created, written, read and deleted under load (`churn.rs`).
    pub churn: bool,
}

const TOPIC: &str = "t";
/// How long the broker has, after the faults heal, to serve the final read.
const LIVENESS_BOUND: Duration = Duration::from_secs(60);

pub async fn run(spec: Spec) -> Outcome {
    let seed = Handle::current().seed();
    let started = clock::monotonic();
    let mut rng = SimRng::new(seed ^ 0x6b6c_616d_6d00);
    let durable = spec.durable.unwrap_or_else(|| rng.chance(0.5));
    let faults: Vec<Fault> = match spec.faults {
        Some(f) => f.to_vec(),
        None => nemesis::swarm(&mut rng),
    };
    let mut overrides = vec![
        "num.partitions=1".to_string(),
        "auto.create.topics.enable=false".to_string(),
        "log.retention.check.interval.ms=500".to_string(),
    ];
    if durable {
        overrides.push("log.flush.interval.messages=1".into());
    }
    if spec.groups {
        overrides.extend(crate::groups::BROKER_OVERRIDES.iter().map(|o| o.to_string()));
    }
    let broker = Arc::new(BrokerNode::start(1, &overrides, seed));
    let client = Handle::current()
        .create_node()
        .name("client")
        .ip([10, 0, 1, 1].into())
        .build();
    let history = Shared::new(durable);

    // The topic, before any fault.
    let partitions = 1 + rng.below(3) as i32;
    let segment_bytes = [4_096u64, 16_384, 65_536][rng.below(3) as usize];
    let index_interval_bytes = [128u64, 1_024, 4_096][rng.below(3) as usize];
    let retention_ms = (spec.retention && rng.chance(0.5)).then(|| 5_000 + rng.below(30_000) as i64);
    let mut configs = vec![
        ("segment.bytes".to_string(), segment_bytes.to_string()),
        ("index.interval.bytes".to_string(), index_interval_bytes.to_string()),
    ];
    if let Some(ms) = retention_ms {
        configs.push(("retention.ms".into(), ms.to_string()));
        history.lock().note_retention(TOPIC, ms);
    }
    let bootstrap = broker.address.clone();
    let created = client
        .spawn({
            let bootstrap = bootstrap.clone();
            async move {
                for _ in 0..50 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let config = ClientConfig::new().set("bootstrap.servers", &bootstrap);
                    if let Ok(mut admin) = Admin::new(&config).await {
                        if admin.create_topic(TOPIC, partitions, 1, &configs).await.is_ok() {
                            return true;
                        }
                    }
                }
                false
            }
        })
        .await
        .unwrap_or(false);
    if !created {
        return Outcome {
            violations: vec!["liveness: the topic could not be created before any fault".into()],
            ..Outcome::default()
        };
    }

    let stop = Arc::new(AtomicBool::new(false));
    let env = Env {
        bootstrap: bootstrap.clone(),
        topic: TOPIC.into(),
        partitions: Arc::new(AtomicI32::new(partitions)),
        history: history.clone(),
        stop: stop.clone(),
    };
    let mut description = format!(
        "seed {seed}: {} mode, {partitions} partitions, segment.bytes {segment_bytes}, index.interval.bytes {index_interval_bytes}, retention.ms {retention_ms:?}, faults {faults:?}",
        if durable { "durable" } else { "page-cache" }
    );
    let mut tasks = Vec::new();
    for id in 0..1 + rng.below(3) as u32 {
        let idempotent = rng.chance(spec.idempotent_share);
        let spec = WriterSpec {
            id,
            acks: if idempotent {
                -1
            } else {
                [0i16, 1, -1][rng.below(3) as usize]
            },
            linger_ms: [0u64, 5, 20][rng.below(3) as usize],
            compression: ["none", "gzip", "snappy", "lz4", "zstd"][rng.below(5) as usize],
            retries: idempotent || rng.chance(0.3),
            explicit_partition: rng.chance(0.5),
            pause_ms_max: [5u64, 20, 50][rng.below(3) as usize],
            idempotent,
        };
        if idempotent {
            history.lock().idempotent_writers.insert(id);
        } else if spec.retries {
            history.lock().retrying_writers.insert(id);
        }
        description.push_str(&format!(
            "\n    writer {id}: acks={} linger.ms={} compression.type={} retries={} enable.idempotence={}",
            spec.acks,
            spec.linger_ms,
            spec.compression,
            if spec.retries { "max" } else { "0" },
            spec.idempotent
        ));
        tasks.push(client.spawn(workload::writer(spec, env.clone())));
    }
    for id in 0..1 + rng.below(2) as u32 {
        tasks.push(client.spawn(workload::reader(id, env.clone())));
    }
    tasks.push(client.spawn(workload::consumer(0, env.clone())));
    let groups_done = Arc::new(AtomicBool::new(false));
    let groups_calm = Arc::new(AtomicBool::new(false));
    let mut group_tasks = Vec::new();
    if spec.groups {
        for (group, protocol) in crate::groups::GROUPS {
            let members = 2 + rng.below(2) as u32;
            description.push_str(&format!(
                "\n    group {group}: {members} member slots, protocol {protocol}"
            ));
            for slot in 0..members {
                group_tasks.push(client.spawn(crate::groups::member(
                    group,
                    protocol,
                    slot,
                    env.clone(),
                    groups_calm.clone(),
                    groups_done.clone(),
                )));
            }
        }
    }
    if spec.churn {
        description.push_str(&format!("\n    churn: side topics {:?}", crate::churn::NAMES));
        tasks.push(client.spawn(crate::churn::admin(env.clone())));
        for name in crate::churn::NAMES {
            tasks.push(client.spawn(crate::churn::writer(env.clone(), name)));
            tasks.push(client.spawn(crate::churn::reader(env.clone(), name)));
        }
    }
    if spec.admin {
        let choices = if retention_ms.is_some() {
            vec![5_000, 20_000, 60_000]
        } else {
            vec![]
        };
        tasks.push(client.spawn(workload::admin(env.clone(), choices)));
    }
    let monitor_stop = Arc::new(AtomicBool::new(false));
    let monitor = tokio::spawn({
        let (broker, history, stop) = (broker.clone(), history.clone(), monitor_stop.clone());
        async move { nemesis::monitor(&broker, history, stop).await }
    });

    let world = World {
        broker: &broker,
        clients: vec![client.id()],
        history: history.clone(),
        topic: TOPIC.into(),
        durable,
    };
    nemesis::run(&world, &faults, &mut rng, Duration::from_secs(spec.fault_seconds)).await;
    nemesis::heal(&world);
    groups_calm.store(true, Ordering::Release);
    let healed = clock::monotonic();
    // Let the workload run on a healed system, then stop it and let it drain.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Release);
    for task in tasks {
        if tokio::time::timeout(Duration::from_secs(30), task).await.is_err() {
            history.lock().violation(
                "liveness",
                "a workload task did not finish within 30 s of the stop".into(),
            );
        }
    }
    // Liveness: the broker serves a complete read within the bound.
    let mut finals = Err("not tried".to_string());
    while clock::monotonic() < healed + LIVENESS_BOUND {
        nemesis::ensure_up(&broker);
        let bootstrap = bootstrap.clone();
        finals = client
            .spawn(async move { workload::final_read(&bootstrap, TOPIC).await })
            .await
            .unwrap_or_else(|_| Err("the final reader died".into()));
        if finals.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let now = clock::now_ms();
    if spec.groups {
        // Each group must consume the whole final log within the bound.
        let values: Vec<String> = match &finals {
            Ok(finals) => finals.values().flat_map(|f| f.records.values().cloned()).collect(),
            Err(_) => Vec::new(),
        };
        while clock::monotonic() < healed + LIVENESS_BOUND && !crate::groups::caught_up(&history, &values) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        groups_done.store(true, Ordering::Release);
        for task in group_tasks {
            if tokio::time::timeout(Duration::from_secs(30), task).await.is_err() {
                history.lock().violation(
                    "liveness",
                    "a group member did not finish within 30 s of the stop".into(),
                );
            }
        }
        let bootstrap = bootstrap.clone();
        let check = history.clone();
        let _ = client
            .spawn(async move { crate::groups::check_final(&check, &bootstrap, &values).await })
            .await;
    }
    match finals {
        Ok(finals) => history.lock().check_final(&finals, &[TOPIC.to_string()], now),
        Err(e) => history.lock().violation(
            "liveness",
            format!(
                "no complete read within {LIVENESS_BOUND:?} of healing: {e} (broker down: {}, last error: {:?})",
                broker.is_down(),
                broker.last_error()
            ),
        ),
    }
    if spec.churn {
        crate::churn::check_disk(&broker, &history).await;
    }
    if std::env::var_os("KLAMM_SIM_DEBUG").is_some() {
        dump_disk(&broker.storage, std::path::Path::new(crate::cluster::LOG_DIR)).await;
    }
    monitor_stop.store(true, Ordering::Release);
    let _ = monitor.await;
    let mut h = history.lock();
    let disk = broker.storage.stats();
    // The broker gives up its log directory (and exits) only on a disk fault.
    if let (Some(error), 0) = (broker.last_error(), disk.faults_injected) {
        h.violation(
            "broker-failed",
            format!("the broker exited with an error and no disk fault was injected: {error}"),
        );
    }
    let mut counts: std::collections::BTreeMap<String, u64> =
        h.counts.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    counts.insert("broker-starts".into(), broker.starts());
    counts.insert("disk-faults-injected".into(), disk.faults_injected);
    Outcome {
        violations: h.violations.clone(),
        trace_hash: h.trace_hash() ^ disk.trace_hash.rotate_left(17),
        sim_elapsed: clock::monotonic() - started,
        counts,
        description,
    }
}

/// Lists every file of the broker's disk with its length (`KLAMM_SIM_DEBUG=1`).
pub async fn dump_disk(storage: &klamm::io::SimStorage, dir: &std::path::Path) {
    use klamm::io::Storage;
    let Ok(names) = storage.list(dir).await else { return };
    for name in names {
        let path = dir.join(&name);
        match storage.file_len(&path) {
            Some(len) => crate::runner::say(format!("  {} {len}", path.display())),
            None => Box::pin(dump_disk(storage, &path)).await,
        }
    }
}
