//! Klamm's deterministic simulator. Real brokers (the `klamm::server` shell over the
//! simulated disk) and real clients (`klamm::client`) run as madsim nodes; a nemesis
//! injects faults drawn per seed; checkers read the history. See `sim/README.md`.

#[cfg(not(madsim))]
compile_error!("klamm-sim runs only inside the simulator: run it with `cargo sim` (see sim/README.md)");

pub mod checker;
pub mod churn;
pub mod cluster;
pub mod groups;
pub mod nemesis;
pub mod runner;
pub mod scenario;
pub mod scenarios;
pub mod workload;
