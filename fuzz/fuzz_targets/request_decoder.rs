//! Every generated message in every version: the first two bytes pick the message, the
//! next two the version, the rest is the body. Whatever decodes must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let selector = u16::from_be_bytes([data[0], data[1]]);
    let version = i16::from_be_bytes([data[2], data[3]]);
    klamm::protocol::fuzzing::decode_round_trip(selector, version, &data[4..]);
});
