//! Command-line tools of the `klamm` binary that work on data directly, like Kafka's
//! `kafka-dump-log.sh`.

pub mod dump_log;
