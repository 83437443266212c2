//! The group coordinator: consumer groups and their committed offsets.
//!
//! Each partition of the internal topic `__consumer_offsets` is a shard: a
//! `GroupCoordinatorShard` owns the groups whose id hashes to that partition (Kafka's rule,
//! `partition_for`). The shard is a deterministic state machine. A handler takes the state,
//! a request and `now`, and returns `Effects`: records to append to the shard's partition
//! and replies to release once they are committed. Offsets and group metadata change only
//! when their records are replayed, the same path at load and for live writes; what is not
//! persisted (members waiting in a join, heartbeat deadlines) lives in memory, as in Kafka,
//! and is rebuilt by the members themselves after a failover. Timers are deadlines kept
//! in the state: the shell calls `tick(now)` at `next_deadline()`.

mod consumer;
mod coordinator;
pub mod fuzzing;
pub mod records;
#[cfg(test)]
mod tests;

pub use coordinator::{Effects, GroupConfig, GroupCoordinatorShard, Reply, RequestId, TopicsImage};
pub use records::GroupRecord;

/// The internal topic that holds groups and offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The `__consumer_offsets` partition of a group: Java's `String.hashCode` of the id, its
/// absolute value, modulo the partition count, as Kafka computes it (so that tools agree
/// on where a group lives).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0);
    let mut hash: i32 = 0;
    for unit in group_id.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(unit as i32);
    }
    // Kafka's Utils.abs: Integer.MIN_VALUE maps to 0.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

/// A 128-bit id mixed from `parts` (member ids: the shard, the time, a counter).
pub(crate) fn mix_uuid(parts: &[u64]) -> crate::protocol::codec::Uuid {
    let mut h1: u64 = 0x6a09_e667_f3bc_c908;
    let mut h2: u64 = 0xbb67_ae85_84ca_a73b;
    for p in parts {
        h1 = (h1 ^ p).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
        h2 = (h2 ^ p.rotate_left(32))
            .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            .rotate_left(31);
        h1 ^= h2 >> 17;
    }
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&h1.to_be_bytes());
    id[8..].copy_from_slice(&h2.to_be_bytes());
    crate::protocol::codec::Uuid(id)
}
