//! Record batch parsing and validation, with decompression bounded: framing, headers,
//! CRC32C, every codec, every record. Each batch is checked as it came and again with a
//! matching CRC, so that inputs reach the codecs and the record parser. The check lives in
//! `klamm::record::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    klamm::record::fuzzing::check_batches(data);
});
