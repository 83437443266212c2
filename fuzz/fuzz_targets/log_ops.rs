//! Operation sequences on one partition log against a model: appends, reads, truncations,
//! DeleteRecords, retention, rolls, flushes, high watermark moves, and process and machine
//! crashes with a reopen. Without a crash the log holds exactly the model; after one it
//! holds at least what was flushed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    klamm::log::fuzzing::log_ops(data);
});
