//! Random field values for the generated codecs' tests.

use crate::io::SimRng;
use crate::protocol::codec::Uuid;
use bytes::Bytes;

pub fn random_string(rng: &mut SimRng) -> String {
    let len = rng.below(8) as usize;
    (0..len).map(|_| (b'a' + rng.below(26) as u8) as char).collect()
}

pub fn random_bytes(rng: &mut SimRng) -> Bytes {
    let len = rng.below(12) as usize;
    (0..len).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>().into()
}

pub fn random_uuid(rng: &mut SimRng) -> Uuid {
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    u[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    Uuid(u)
}
