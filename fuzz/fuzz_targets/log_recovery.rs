//! A partition log written for real on the simulated disk, closed or crashed, damaged as
//! the input says (bits flipped, files cut, overwritten, extended, removed) and opened
//! again: opening fails cleanly or gives a valid log that reads in bounds and takes the
//! next append at its end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    klamm::log::fuzzing::recover(data);
});
