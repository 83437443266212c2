//! Operation sequences on one compacted partition log against a model of every record
//! appended: keyed appends (tombstones, compressed batches), rolls, log cleaner passes, and
//! process and machine crashes with a reopen. The log always holds an unchanged subset of
//! the records that keeps the last record of every key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    klamm::log::fuzzing::compaction_ops(data);
});
