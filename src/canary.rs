//! Planted bugs, for proving that the simulator finds bugs (`sim/canaries.sh`). Each is a
//! cargo feature of this crate, and each takes effect only under `--cfg madsim`: in any
//! other build the switches below are `false` and the code they guard folds away, and
//! enabling a canary feature without madsim does not compile.

#[cfg(all(
    not(madsim),
    any(
        feature = "canary-ack-before-append",
        feature = "canary-ack-before-sync",
        feature = "canary-recovery-skips-crc",
        feature = "canary-index-off-by-one",
        feature = "canary-fetch-past-high-watermark",
        feature = "canary-retention-deletes-active-segment",
        feature = "canary-forget-producer-state",
        feature = "canary-accept-sequence-gap",
        feature = "canary-group-stale-commit",
        feature = "canary-group-double-assign",
    )
))]
compile_error!("canary features plant bugs; they exist only in simulation builds (cargo sim)");

/// Produce answers with the offset the append will get, before appending.
pub const ACK_BEFORE_APPEND: bool = cfg!(all(madsim, feature = "canary-ack-before-append"));
/// In durable mode an append returns before its data is synced.
pub const ACK_BEFORE_SYNC: bool = cfg!(all(madsim, feature = "canary-ack-before-sync"));
/// Recovery keeps batches whose CRC32C does not match.
pub const RECOVERY_SKIPS_CRC: bool = cfg!(all(madsim, feature = "canary-recovery-skips-crc"));
/// The offset index answers with the entry after the right one.
pub const INDEX_OFF_BY_ONE: bool = cfg!(all(madsim, feature = "canary-index-off-by-one"));
/// Fetch reads up to the log end offset instead of the high watermark.
pub const FETCH_PAST_HIGH_WATERMARK: bool = cfg!(all(madsim, feature = "canary-fetch-past-high-watermark"));
/// Retention, when it deletes anything, also drops the active segment's records.
pub const RETENTION_DELETES_ACTIVE_SEGMENT: bool =
    cfg!(all(madsim, feature = "canary-retention-deletes-active-segment"));

/// Recovery starts every partition with no producer state (no snapshot, no replay).
pub const FORGET_PRODUCER_STATE: bool = cfg!(all(madsim, feature = "canary-forget-producer-state"));
/// A batch with a gap in its producer's sequence is appended.
pub const ACCEPT_SEQUENCE_GAP: bool = cfg!(all(madsim, feature = "canary-accept-sequence-gap"));

/// The group coordinator takes offset commits from any member of any generation or member
/// epoch, even one it has fenced (no membership check at all).
pub const GROUP_STALE_COMMIT: bool = cfg!(all(madsim, feature = "canary-group-stale-commit"));
/// KIP-848: a member gets its target partitions without waiting for their old owner to
/// revoke them.
pub const GROUP_DOUBLE_ASSIGN: bool = cfg!(all(madsim, feature = "canary-group-double-assign"));

/// The canary this build plants, if any.
pub fn planted() -> Option<&'static str> {
    [
        (ACK_BEFORE_APPEND, "ack-before-append"),
        (ACK_BEFORE_SYNC, "ack-before-sync"),
        (RECOVERY_SKIPS_CRC, "recovery-skips-crc"),
        (INDEX_OFF_BY_ONE, "index-off-by-one"),
        (FETCH_PAST_HIGH_WATERMARK, "fetch-past-high-watermark"),
        (RETENTION_DELETES_ACTIVE_SEGMENT, "retention-deletes-active-segment"),
        (FORGET_PRODUCER_STATE, "forget-producer-state"),
        (ACCEPT_SEQUENCE_GAP, "accept-sequence-gap"),
        (GROUP_STALE_COMMIT, "group-stale-commit"),
        (GROUP_DOUBLE_ASSIGN, "group-double-assign"),
    ]
    .into_iter()
    .find_map(|(on, name)| on.then_some(name))
}
