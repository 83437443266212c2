//! The scenarios. `cargo sim` runs them all; `cargo sim -- power_loss` one of them;
//! `MADSIM_TEST_SEED=N cargo sim -- power_loss` one seed of it.

use klamm_sim::nemesis::Fault;
use klamm_sim::runner::{self, Outcome};
use klamm_sim::scenario::{self, Spec};

async fn produce_crash_scenario() -> Outcome {
    scenario::run(Spec {
        faults: Some(&[Fault::ProcessCrash, Fault::CleanRestart]),
        durable: None,
        admin: false,
        retention: false,
        fault_seconds: 10,
    })
    .await
}

async fn power_loss_scenario() -> Outcome {
    scenario::run(Spec {
        faults: Some(&[Fault::MachineCrash, Fault::TornWrites, Fault::LostWriteback]),
        durable: None,
        admin: false,
        retention: false,
        fault_seconds: 10,
    })
    .await
}

async fn network_scenario() -> Outcome {
    scenario::run(Spec {
        faults: Some(&[Fault::Partition, Fault::ClogResponses, Fault::PacketLoss, Fault::Latency, Fault::Pause]),
        durable: None,
        admin: false,
        retention: false,
        fault_seconds: 10,
    })
    .await
}

async fn disk_faults_scenario() -> Outcome {
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
    })
    .await
}

async fn admin_retention_scenario() -> Outcome {
    scenario::run(Spec {
        faults: Some(&[Fault::ClockJump, Fault::ProcessCrash, Fault::MachineCrash]),
        durable: None,
        admin: true,
        retention: true,
        fault_seconds: 15,
    })
    .await
}

async fn swarm_scenario() -> Outcome {
    scenario::run(Spec {
        faults: None,
        durable: None,
        admin: true,
        retention: true,
        fault_seconds: 15,
    })
    .await
}

#[test]
fn produce_crash() {
    runner::check("produce_crash", 150, produce_crash_scenario);
}

#[test]
fn power_loss() {
    runner::check("power_loss", 150, power_loss_scenario);
}

#[test]
fn network() {
    runner::check("network", 100, network_scenario);
}

#[test]
fn disk_faults() {
    runner::check("disk_faults", 150, disk_faults_scenario);
}

#[test]
fn admin_retention() {
    runner::check("admin_retention", 100, admin_retention_scenario);
}

#[test]
fn swarm() {
    runner::check("swarm", 350, swarm_scenario);
}

#[test]
fn determinism() {
    runner::check_determinism("swarm", &[1, 2, 3], swarm_scenario);
}
