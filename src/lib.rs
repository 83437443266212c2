//! Klamm: a Kafka-compatible event streaming broker, tested by deterministic simulation.
//!
//! The library holds everything the `klamm` binary, the simulator, the fuzzers and the
//! benchmarks share. See ARCHITECTURE.md for the map.

pub mod canary;
pub mod client;
pub mod config;
pub mod error;
pub mod group;
pub mod io;
pub mod log;
pub mod metadata;
pub mod protocol;
pub mod record;
pub mod server;
pub mod tools;
