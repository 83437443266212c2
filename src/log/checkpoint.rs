//! The log's checkpoint file, `log.checkpoint` in the partition directory: the recovery
//! point and the log start offset, written atomically (temporary file, sync, rename, sync
//! directory) and guarded by a CRC32C, so that a torn or rotten file reads as missing.
//!
//! ```text
//! version 0
//! log_start_offset 1200
//! recovery_point 5400
//! crc32c 3735928559
//! ```

use std::io;
use std::path::Path;

use bytes::Bytes;

use crate::config::CHECKPOINT_BYTES_MAX;
use crate::io::{read_to_end, write_atomically, Storage};

pub const CHECKPOINT_FILE_NAME: &str = "log.checkpoint";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogCheckpoint {
    pub log_start_offset: i64,
    pub recovery_point: i64,
}

impl LogCheckpoint {
    pub fn encode(&self) -> String {
        let body = format!(
            "version 0\nlog_start_offset {}\nrecovery_point {}\n",
            self.log_start_offset, self.recovery_point
        );
        let crc = crc32c::crc32c(body.as_bytes());
        format!("{body}crc32c {crc}\n")
    }

    pub fn decode(text: &[u8]) -> Option<LogCheckpoint> {
        let text = std::str::from_utf8(text).ok()?;
        let crc_at = text.rfind("crc32c ")?;
        let (body, crc_line) = text.split_at(crc_at);
        let crc: u32 = crc_line.strip_prefix("crc32c ")?.strip_suffix('\n')?.parse().ok()?;
        if crc32c::crc32c(body.as_bytes()) != crc {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != "version 0" {
            return None;
        }
        let log_start_offset = lines.next()?.strip_prefix("log_start_offset ")?.parse().ok()?;
        let recovery_point = lines.next()?.strip_prefix("recovery_point ")?.parse().ok()?;
        if lines.next().is_some() || log_start_offset < 0 || recovery_point < 0 {
            return None;
        }
        Some(LogCheckpoint {
            log_start_offset,
            recovery_point,
        })
    }

    pub async fn write<S: Storage>(&self, storage: &S, dir: &Path) -> io::Result<()> {
        write_atomically(storage, &dir.join(CHECKPOINT_FILE_NAME), Bytes::from(self.encode())).await
    }

    /// The checkpoint, or `None` if it is missing, torn or corrupt.
    pub async fn read<S: Storage>(storage: &S, dir: &Path) -> io::Result<Option<LogCheckpoint>> {
        match read_to_end(storage, &dir.join(CHECKPOINT_FILE_NAME), CHECKPOINT_BYTES_MAX).await {
            Ok(bytes) => Ok(LogCheckpoint::decode(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::InvalidData => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogCheckpoint;

    #[test]
    fn round_trip_and_corruption() {
        let checkpoint = LogCheckpoint {
            log_start_offset: 1200,
            recovery_point: 5400,
        };
        let text = checkpoint.encode();
        assert_eq!(LogCheckpoint::decode(text.as_bytes()), Some(checkpoint));
        for cut in 0..text.len() {
            assert_eq!(LogCheckpoint::decode(&text.as_bytes()[..cut]), None, "cut at {cut}");
        }
        for at in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[at] ^= 0x01;
            assert_eq!(LogCheckpoint::decode(&bytes), None, "flip at {at}");
        }
    }
}
