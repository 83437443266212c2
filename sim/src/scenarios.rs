//! The scenarios the tests run, each a fault set over the same world and workload.

use crate::nemesis::Fault;
use crate::runner::Outcome;
use crate::scenario::{self, Spec};

pub async fn produce_crash() -> Outcome {
    scenario::run(Spec {
        faults: Some(&[Fault::ProcessCrash, Fault::CleanRestart]),
        durable: None,
        admin: false,
        retention: false,
        fault_seconds: 10,
        idempotent_share: 0.3,
    })
    .await
}

pub async fn power_loss() -> Outcome {
    scenario::run(Spec {
        faults: Some(&[Fault::MachineCrash, Fault::TornWrites, Fault::LostWriteback]),
        durable: None,
        admin: false,
        retention: false,
        fault_seconds: 10,
        idempotent_share: 0.3,
    })
    .await
}

pub async fn network() -> Outcome {
    scenario::run(Spec {
        faults: Some(&[
            Fault::Partition,
            Fault::ClogResponses,
            Fault::PacketLoss,
            Fault::Latency,
            Fault::Pause,
        ]),
        durable: None,
        admin: false,
        retention: false,
        fault_seconds: 10,
        idempotent_share: 0.3,
    })
    .await
}

pub async fn disk_faults() -> Outcome {
    scenario::run(Spec {
        faults: Some(&[
            Fault::ReadEio,
            Fault::WriteEio,
            Fault::SyncEio,
            Fault::DiskFull,
            Fault::SlowDisk,
            Fault::BitRot,
        ]),
        durable: None,
        admin: false,
        retention: false,
        fault_seconds: 10,
        idempotent_share: 0.3,
    })
    .await
}

pub async fn admin_retention() -> Outcome {
    scenario::run(Spec {
        faults: Some(&[Fault::ClockJump, Fault::ProcessCrash, Fault::MachineCrash]),
        durable: None,
        admin: true,
        retention: true,
        fault_seconds: 15,
        idempotent_share: 0.3,
    })
    .await
}

pub async fn swarm() -> Outcome {
    scenario::run(Spec {
        faults: None,
        durable: None,
        admin: true,
        retention: true,
        fault_seconds: 15,
        idempotent_share: 0.3,
    })
    .await
}

/// Idempotent producers that retry through crashes, power loss, partitions, clogged
/// responses and slow disks: exactly-once appends and per-producer order.
pub async fn idempotent() -> Outcome {
    scenario::run(Spec {
        faults: Some(&[
            Fault::ProcessCrash,
            Fault::MachineCrash,
            Fault::TornWrites,
            Fault::CleanRestart,
            Fault::Partition,
            Fault::ClogResponses,
            Fault::Pause,
            Fault::SlowDisk,
        ]),
        durable: None,
        admin: false,
        retention: false,
        fault_seconds: 15,
        idempotent_share: 1.0,
    })
    .await
}
