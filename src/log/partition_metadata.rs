//! `partition.metadata` in a partition directory, as Kafka writes it (KIP-516): the id of
//! the topic whose partition the directory holds, so that a directory left behind by an
//! earlier topic of the same name (a delete cut short by a crash) is never taken for the
//! new topic's log.
//!
//! ```text
//! version: 0
//! topic_id: 5ZUAxAqLTqWmcMuDNw6gQQ
//! ```
//!
//! Written atomically and synced when the partition is created, before any append; a log
//! delete removes it last, after syncing the removal of everything else.

use std::io;
use std::path::Path;

use bytes::Bytes;

use crate::io::{read_to_end, write_atomically, Storage};
use crate::protocol::codec::Uuid;

pub const PARTITION_METADATA_FILE_NAME: &str = "partition.metadata";
/// Larger than any file this module writes.
const PARTITION_METADATA_BYTES_MAX: u64 = 256;

pub fn encode(topic_id: Uuid) -> String {
    format!("version: 0\ntopic_id: {}\n", topic_id.to_base64())
}

/// The topic id a file names, as Kafka prints it (22 base64 characters); `None` if the
/// file is not one this version writes.
pub fn decode(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "version: 0" {
        return None;
    }
    let id = lines.next()?.strip_prefix("topic_id: ")?;
    if lines.next().is_some() || id.len() != 22 {
        return None;
    }
    Some(id.to_string())
}

/// What a partition directory says about its topic.
#[derive(Debug, PartialEq, Eq)]
pub enum DirOwner {
    /// No file: a new directory, or one from a Klamm that did not write it.
    Unknown,
    Topic(String),
    /// A file this version cannot read.
    Unreadable,
}

pub async fn read<S: Storage>(storage: &S, dir: &Path) -> io::Result<DirOwner> {
    match read_to_end(
        storage,
        &dir.join(PARTITION_METADATA_FILE_NAME),
        PARTITION_METADATA_BYTES_MAX,
    )
    .await
    {
        Ok(text) => Ok(decode(&text).map_or(DirOwner::Unreadable, DirOwner::Topic)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DirOwner::Unknown),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(DirOwner::Unreadable),
        Err(e) => Err(e),
    }
}

pub async fn write<S: Storage>(storage: &S, dir: &Path, topic_id: Uuid) -> io::Result<()> {
    write_atomically(
        storage,
        &dir.join(PARTITION_METADATA_FILE_NAME),
        Bytes::from(encode(topic_id)),
    )
    .await
}
