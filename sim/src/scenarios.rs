//! The scenarios the tests run, each a fault set over the same world and workload.

use crate::nemesis::Fault;
use crate::runner::Outcome;
use crate::scenario::{self, Spec};

/// A scenario drawing from `faults` for `fault_seconds`, in a drawn flush mode, without
/// admin or retention, with 30% of writers idempotent.
fn spec(faults: &'static [Fault], fault_seconds: u64) -> Spec {
    Spec {
        faults: Some(faults),
        durable: None,
        admin: false,
        retention: false,
        fault_seconds,
        idempotent_share: 0.3,
        groups: false,
        churn: false,
    }
}

pub async fn produce_crash() -> Outcome {
    scenario::run(spec(&[Fault::ProcessCrash, Fault::CleanRestart], 10)).await
}

pub async fn power_loss() -> Outcome {
    scenario::run(spec(
        &[Fault::MachineCrash, Fault::TornWrites, Fault::LostWriteback],
        10,
    ))
    .await
}

pub async fn network() -> Outcome {
    scenario::run(spec(
        &[
            Fault::Partition,
            Fault::ClogResponses,
            Fault::PacketLoss,
            Fault::Latency,
            Fault::Pause,
        ],
        10,
    ))
    .await
}

pub async fn disk_faults() -> Outcome {
    scenario::run(spec(
        &[
            Fault::ReadEio,
            Fault::WriteEio,
            Fault::SyncEio,
            Fault::DiskFull,
            Fault::SlowDisk,
            Fault::BitRot,
        ],
        10,
    ))
    .await
}

pub async fn admin_retention() -> Outcome {
    scenario::run(Spec {
        admin: true,
        retention: true,
        ..spec(&[Fault::ClockJump, Fault::ProcessCrash, Fault::MachineCrash], 15)
    })
    .await
}

pub async fn swarm() -> Outcome {
    scenario::run(Spec {
        faults: None,
        admin: true,
        retention: true,
        ..spec(&[], 15)
    })
    .await
}

/// Idempotent producers that retry through crashes, power loss, partitions, clogged
/// responses and slow disks: exactly-once appends and per-producer order.
pub async fn idempotent() -> Outcome {
    scenario::run(Spec {
        idempotent_share: 1.0,
        ..spec(
            &[
                Fault::ProcessCrash,
                Fault::MachineCrash,
                Fault::TornWrites,
                Fault::CleanRestart,
                Fault::Partition,
                Fault::ClogResponses,
                Fault::Pause,
                Fault::SlowDisk,
            ],
            15,
        )
    })
    .await
}

/// Consumer groups, classic and KIP-848, whose members crash, leave and return while the
/// broker crashes (durable mode: acknowledged commits survive power loss) and the network
/// fails: one owner per partition per generation or epoch, commits never go back, and
/// every record is consumed once the faults heal.
pub async fn groups() -> Outcome {
    scenario::run(Spec {
        durable: Some(true),
        groups: true,
        ..spec(
            &[
                Fault::ProcessCrash,
                Fault::MachineCrash,
                Fault::CleanRestart,
                Fault::Partition,
                Fault::ClogResponses,
                Fault::Pause,
                Fault::Latency,
            ],
            15,
        )
    })
    .await
}

/// Side topics created, written, read, deleted and created again under the same name
/// while the main workload runs and the broker crashes (durable mode, so nothing a reader
/// saw may change) and the network fails: no record crosses from one incarnation of a
/// topic to another, a deleted topic is never served again, and the broker never takes its
/// log directory offline over a delete.
pub async fn churn() -> Outcome {
    scenario::run(Spec {
        durable: Some(true),
        churn: true,
        ..spec(
            &[
                Fault::ProcessCrash,
                Fault::MachineCrash,
                Fault::CleanRestart,
                Fault::Partition,
                Fault::ClogResponses,
                Fault::Pause,
                Fault::SlowDisk,
            ],
            15,
        )
    })
    .await
}
