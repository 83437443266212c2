//! A hostile broker: byte 0 picks a response the client reads (Metadata, Fetch, Produce,
//! SyncGroup, a raw assignment, ApiVersions, JoinGroup, ConsumerGroupHeartbeat), byte 1
//! its version, the rest is the frame. The client decodes it and acts on it; nothing may
//! panic and a consumer's position never moves backwards.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    klamm::client::fuzzing::hostile_response(data);
});
