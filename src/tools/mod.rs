//! Command-line tools of the `klamm` binary, with Kafka's names and flags.

mod args;
pub mod cli;
pub mod dump_log;
pub mod groups;
