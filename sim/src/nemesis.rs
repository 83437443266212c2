//! Faults, and the nemesis that injects them. Each seed draws its own subset of fault
//! types (swarm testing) and then a schedule of them; every fault heals on its own, and
//! [`heal`] undoes whatever is left before the final checks.
//!
//! Also the monitor: on every step it reads each partition's offsets from the running
//! broker and checks `log_start_offset <= high_watermark <= log_end_offset` and that the
//! high watermark never goes back (unless a loss event explains it).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use klamm::io::{CrashKind, DiskFaults, SimRng, Storage};
use klamm::server::clock;
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;

use crate::checker::{Loss, Shared, Tp};
use crate::cluster::{BrokerNode, LOG_DIR};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// kill -9 and restart: the page cache survives.
    ProcessCrash,
    /// Power loss and restart: unsynced data and directory entries are lost.
    MachineCrash,
    /// Power loss that tears each file's last unsynced write at sector granularity.
    TornWrites,
    /// Power loss after the kernel wrote back part of the unsynced data, out of order.
    LostWriteback,
    /// SIGINT, a clean shutdown, and restart.
    CleanRestart,
    /// The broker is cut off from every client, both ways.
    Partition,
    /// Requests arrive but responses are held (one-way clog, broker to clients).
    ClogResponses,
    /// Packet loss on every link (new connections fail; established ones stall).
    PacketLoss,
    /// Latency of 20-300 ms on every message.
    Latency,
    /// The broker process freezes (a long GC pause, a stopped VM) and resumes.
    Pause,
    ReadEio,
    WriteEio,
    SyncEio,
    /// The disk fills up: writes fail with ENOSPC.
    DiskFull,
    /// A bit flips in a synced segment file while the machine is down.
    BitRot,
    /// Disk operations take 5-200 ms.
    SlowDisk,
    /// The clock jumps forward (record timestamps, retention, segment age).
    ClockJump,
}

pub const ALL_FAULTS: [Fault; 17] = [
    Fault::ProcessCrash,
    Fault::MachineCrash,
    Fault::TornWrites,
    Fault::LostWriteback,
    Fault::CleanRestart,
    Fault::Partition,
    Fault::ClogResponses,
    Fault::PacketLoss,
    Fault::Latency,
    Fault::Pause,
    Fault::ReadEio,
    Fault::WriteEio,
    Fault::SyncEio,
    Fault::DiskFull,
    Fault::BitRot,
    Fault::SlowDisk,
    Fault::ClockJump,
];

/// Swarm testing: each fault type joins this seed's set with probability one half.
pub fn swarm(rng: &mut SimRng) -> Vec<Fault> {
    let mut faults: Vec<Fault> = ALL_FAULTS.iter().copied().filter(|_| rng.chance(0.5)).collect();
    if faults.is_empty() {
        faults.push(ALL_FAULTS[rng.below(ALL_FAULTS.len() as u64) as usize]);
    }
    faults
}

pub struct World<'a> {
    pub broker: &'a BrokerNode,
    pub clients: Vec<NodeId>,
    pub history: Shared,
    /// Topics whose partitions the loss bookkeeping covers.
    pub topic: String,
    pub durable: bool,
}

/// Injects faults drawn from `faults` for `duration`, one at a time, each healing itself.
pub async fn run(world: &World<'_>, faults: &[Fault], rng: &mut SimRng, duration: Duration) {
    let end = clock::monotonic() + duration;
    while clock::monotonic() < end {
        sleep_ms(rng, 200, 2_000).await;
        let fault = faults[rng.below(faults.len() as u64) as usize];
        world.history.lock().trace(&format!("fault {fault:?}"));
        *world.history.lock().counts.entry(fault_name(fault)).or_default() += 1;
        inject(world, fault, rng).await;
        ensure_up(world.broker);
        if std::env::var_os("KLAMM_SIM_DEBUG").is_some() {
            crate::runner::say(format!("after {fault:?} at {}", clock::now_ms()));
            crate::scenario::dump_disk(&world.broker.storage, Path::new(LOG_DIR)).await;
        }
    }
}

fn fault_name(fault: Fault) -> &'static str {
    // Counts are keyed by static names.
    match fault {
        Fault::ProcessCrash => "fault:process-crash",
        Fault::MachineCrash => "fault:machine-crash",
        Fault::TornWrites => "fault:torn-writes",
        Fault::LostWriteback => "fault:lost-writeback",
        Fault::CleanRestart => "fault:clean-restart",
        Fault::Partition => "fault:partition",
        Fault::ClogResponses => "fault:clog-responses",
        Fault::PacketLoss => "fault:packet-loss",
        Fault::Latency => "fault:latency",
        Fault::Pause => "fault:pause",
        Fault::ReadEio => "fault:read-eio",
        Fault::WriteEio => "fault:write-eio",
        Fault::SyncEio => "fault:sync-eio",
        Fault::DiskFull => "fault:disk-full",
        Fault::BitRot => "fault:bit-rot",
        Fault::SlowDisk => "fault:slow-disk",
        Fault::ClockJump => "fault:clock-jump",
    }
}

async fn sleep_ms(rng: &mut SimRng, low: u64, high: u64) {
    let ms = low + rng.below(high - low + 1);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn inject(world: &World<'_>, fault: Fault, rng: &mut SimRng) {
    let broker = world.broker;
    let net = NetSim::current();
    let node = broker.node.id();
    match fault {
        Fault::ProcessCrash => {
            broker.crash(CrashKind::Process);
            sleep_ms(rng, 10, 2_000).await;
            broker.restart();
        }
        Fault::MachineCrash | Fault::TornWrites | Fault::LostWriteback => {
            let mut disk = broker.storage.faults();
            disk.torn_write_probability = if fault == Fault::TornWrites { 1.0 } else { 0.0 };
            disk.writeback_probability = if fault == Fault::LostWriteback { 0.5 } else { 0.0 };
            // Tearing at a finer grain than 512-byte sectors also splits small batches.
            disk.sector_bytes = [64, 512, 4_096][rng.below(3) as usize];
            broker.storage.set_faults(disk);
            power_loss(world).await;
            sleep_ms(rng, 10, 2_000).await;
            broker.restart();
        }
        Fault::BitRot => {
            power_loss(world).await;
            rot_a_bit(world, rng).await;
            sleep_ms(rng, 10, 1_000).await;
            broker.restart();
        }
        Fault::CleanRestart => {
            broker.stop_cleanly();
            for _ in 0..100 {
                if broker.is_down() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            sleep_ms(rng, 10, 1_000).await;
            broker.restart();
        }
        Fault::Partition => {
            for &client in &world.clients {
                net.clog_link(client, node);
                net.clog_link(node, client);
            }
            sleep_ms(rng, 100, 5_000).await;
            for &client in &world.clients {
                net.unclog_link(client, node);
                net.unclog_link(node, client);
            }
        }
        Fault::ClogResponses => {
            for &client in &world.clients {
                net.clog_link(node, client);
            }
            sleep_ms(rng, 100, 5_000).await;
            for &client in &world.clients {
                net.unclog_link(node, client);
            }
        }
        Fault::PacketLoss => {
            let rate = 0.05 + rng.below(25) as f64 / 100.0;
            net.update_config(|c| c.packet_loss_rate = rate);
            sleep_ms(rng, 500, 5_000).await;
            net.update_config(|c| c.packet_loss_rate = 0.0);
        }
        Fault::Latency => {
            let high = 20 + rng.below(280);
            net.update_config(|c| c.send_latency = Duration::from_millis(1)..Duration::from_millis(high));
            sleep_ms(rng, 500, 5_000).await;
            net.update_config(|c| c.send_latency = Duration::from_millis(1)..Duration::from_millis(10));
        }
        Fault::Pause => {
            Handle::current().pause(node);
            sleep_ms(rng, 50, 3_000).await;
            Handle::current().resume(node);
        }
        Fault::ReadEio | Fault::WriteEio | Fault::SyncEio | Fault::DiskFull | Fault::SlowDisk => {
            let before = broker.storage.faults();
            let mut disk = before.clone();
            let p = [0.001, 0.01, 0.1][rng.below(3) as usize];
            match fault {
                Fault::ReadEio => disk.read_eio_probability = p,
                Fault::WriteEio => disk.write_eio_probability = p,
                Fault::SyncEio => disk.sync_eio_probability = p,
                Fault::DiskFull => disk.capacity_bytes = broker.storage.stats().bytes_written.min(1 << 20) / 2,
                _ => {
                    disk.slow_probability = 0.05 + rng.below(50) as f64 / 100.0;
                    disk.slow_latency = Duration::from_millis(5 + rng.below(195));
                }
            }
            broker.storage.set_faults(disk);
            sleep_ms(rng, 200, 3_000).await;
            broker.storage.set_faults(before);
        }
        Fault::ClockJump => {
            let jump = Duration::from_millis(1_000 + rng.below(60_000));
            madsim::time::advance(jump);
        }
    }
}

/// A machine crash of the broker, with the records it may lose legitimately noted first:
/// in page-cache mode, those above each partition's flushed offset.
async fn power_loss(world: &World<'_>) {
    let broker = world.broker;
    if !world.durable {
        // Partitions missing from the snapshot (a process that died on its own, a partition
        // created meanwhile) may lose anything.
        let mut from: BTreeMap<Tp, i64> = BTreeMap::new();
        if let Some(b) = broker.broker() {
            for p in b.replicas.partitions() {
                if p.topic == world.topic {
                    from.insert((p.topic.clone(), p.index), p.log.flushed_offset());
                }
            }
        }
        world.history.lock().losses.push(Loss {
            at_ms: clock::now_ms(),
            why: "power loss in page-cache mode".into(),
            from,
            others_from: 0,
            latent: false,
        });
    }
    broker.crash(CrashKind::Machine);
}

/// Flips one bit of a synced `.log` segment of the main topic while the machine is down.
async fn rot_a_bit(world: &World<'_>, rng: &mut SimRng) {
    let storage = &world.broker.storage;
    let mut segments = Vec::new();
    for partition in 0..8 {
        let dir = Path::new(LOG_DIR).join(format!("{}-{partition}", world.topic));
        let Ok(names) = storage.list(&dir).await else { continue };
        for name in names.into_iter().filter(|n| n.ends_with(".log")) {
            let len = storage.file_len(&dir.join(&name)).unwrap_or(0);
            if len > 0 {
                segments.push((partition, dir.join(&name), len));
            }
        }
    }
    if segments.is_empty() {
        return;
    }
    let (partition, path, len) = segments.swap_remove(rng.below(segments.len() as u64) as usize);
    let base: i64 = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let position = rng.below(len);
    let _ = storage.flip_bit(&path, position, rng.below(8) as u8);
    let mut h = world.history.lock();
    h.trace(&format!("bit rot {} {position}", path.display()));
    h.losses.push(Loss {
        at_ms: clock::now_ms(),
        why: format!("bit rot in {} at {position}", path.display()),
        from: BTreeMap::from([((world.topic.clone(), partition), base)]),
        others_from: i64::MAX,
        latent: true,
    });
}

/// Restarts the broker if its process ended (a failed log directory halts it, as in Kafka).
pub fn ensure_up(broker: &BrokerNode) {
    if broker.is_down() {
        broker.restart();
    }
}

/// Undoes every fault: links, network config, disk faults; resumes and restarts the broker.
pub fn heal(world: &World<'_>) {
    let net = NetSim::current();
    let node = world.broker.node.id();
    for &client in &world.clients {
        net.unclog_link(client, node);
        net.unclog_link(node, client);
    }
    net.update_config(|c| {
        c.packet_loss_rate = 0.0;
        c.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
    });
    Handle::current().resume(node);
    world.broker.storage.set_faults(DiskFaults::none());
    ensure_up(world.broker);
}

/// Checks the log invariants of every partition of the running broker every few
/// milliseconds until `stop`.
pub async fn monitor(broker: &BrokerNode, history: Shared, stop: Arc<AtomicBool>) {
    let mut last: BTreeMap<(klamm::protocol::codec::Uuid, i32), (i64, i64)> = BTreeMap::new();
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Some(b) = broker.broker() else { continue };
        if let Err(why) = b.check_group_invariants() {
            history.lock().violation("group-invariant", why);
        }
        for p in b.replicas.partitions() {
            let (log_start, high_watermark, log_end) = p.log.offsets().await;
            let now = clock::now_ms();
            let mut h = history.lock();
            if !(log_start <= high_watermark && high_watermark <= log_end) {
                h.violation(
                    "log-invariant",
                    format!(
                        "{}-{}: log_start_offset {log_start} <= high_watermark {high_watermark} <= log_end_offset {log_end} fails",
                        p.topic, p.index
                    ),
                );
            }
            let key = (p.topic_id, p.index);
            let tp = (p.topic.clone(), p.index);
            if let Some((hw, at)) = last.get(&key) {
                if high_watermark < *hw && !h.any_loss_since(&tp, *at) {
                    h.violation(
                        "high-watermark-regressed",
                        format!("{}-{}: high watermark {hw} then {high_watermark}", p.topic, p.index),
                    );
                }
            }
            last.insert(key, (high_watermark, now));
        }
    }
}
