//! Record batch parsing and validation, with decompression bounded: framing, headers,
//! CRC32C, every codec, every record. Nothing may panic; a batch that validates must
//! yield exactly its declared record count.
#![no_main]

use klamm::record::{self, AppendOrigin, BatchFrames, ValidationLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ValidationLimits {
        decompressed_bytes_max: 1 << 20,
    };
    let mut scratch = Vec::new();
    for (_, header, batch) in BatchFrames::new(data) {
        let _ = record::validate_batch(batch, AppendOrigin::Client, &limits, &mut scratch);
        let mut records = 0i64;
        if let Ok(h) = record::for_each_record(batch, &limits, &mut scratch, |_, r| {
            records += 1;
            let _ = r.headers().count();
        }) {
            assert_eq!(records, h.records_count as i64, "a valid batch yields its record count");
            assert_eq!(h.base_offset, header.base_offset);
        }
    }
});
