//! Operation sequences on one group coordinator shard (classic joins, syncs, heartbeats,
//! leaves, commits, KIP-848 heartbeats, clock moves, deletes, expiry, failovers): the
//! shard's invariants hold after each, every record round-trips, every reply is released
//! exactly once, and a rebuilt shard holds the same committed offsets.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    klamm::group::fuzzing::run_ops(data);
});
