//! The scenarios. `cargo sim` runs them all; `cargo sim -- power_loss` one of them;
//! `MADSIM_TEST_SEED=N cargo sim -- power_loss` one seed of it.

use klamm_sim::{runner, scenarios};

#[test]
fn produce_crash() {
    runner::check("produce_crash", 150, scenarios::produce_crash);
}

#[test]
fn power_loss() {
    runner::check("power_loss", 150, scenarios::power_loss);
}

#[test]
fn network() {
    runner::check("network", 100, scenarios::network);
}

#[test]
fn disk_faults() {
    runner::check("disk_faults", 150, scenarios::disk_faults);
}

#[test]
fn admin_retention() {
    runner::check("admin_retention", 100, scenarios::admin_retention);
}

#[test]
fn idempotent() {
    runner::check("idempotent", 150, scenarios::idempotent);
}

#[test]
fn groups() {
    runner::check("groups", 100, scenarios::groups);
}

#[test]
fn churn() {
    runner::check("churn", 100, scenarios::churn);
}

#[test]
fn swarm() {
    runner::check("swarm", 350, scenarios::swarm);
}

#[test]
fn determinism() {
    let (first, _) = runner::seeds(1);
    runner::check_determinism("swarm", &[first, first + 1, first + 2], scenarios::swarm);
    runner::check_determinism("power_loss", &[first + 3, first + 4], scenarios::power_loss);
}
