//! The disk seam. The broker reaches the disk only through [`Storage`] and [`StorageFile`].
//!
//! Two implementations: [`RealStorage`] (positional I/O on `std::fs::File`, for production
//! and benchmarks) and [`SimStorage`] (in memory, deterministic from a seed, with the crash
//! and fault model of real disks, for tests and the simulator).
//!
//! Semantics both keep, modelled on POSIX with Linux's fsync behaviour:
//! - a completed write is visible to reads at once, but durable only after `sync_data`;
//! - a create, rename or remove is visible at once, but durable only after `sync_dir` of
//!   the directory that holds the name;
//! - a failed `sync_data` may drop the unsynced data from the durable path for good
//!   (Linux marks the pages clean), so the caller must never treat it as retryable.

mod real;
mod rng;
mod sim;
pub mod socket;

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub use real::{RealFile, RealStorage};
pub use rng::SimRng;
pub use sim::{CrashKind, DiskFaults, DiskStats, SimFile, SimStorage};

/// How [`Storage::open`] treats a missing or existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file; fail with `NotFound` if it is missing.
    Existing,
    /// Open the file, creating it empty if it is missing.
    Create,
    /// Create a new empty file; fail with `AlreadyExists` if it exists.
    CreateNew,
}

/// A directory tree of files. Cloning gives another handle to the same disk.
pub trait Storage: Clone + Send + Sync + 'static {
    type File: StorageFile;

    fn open(&self, path: &Path, mode: OpenMode) -> impl Future<Output = io::Result<Self::File>> + Send;
    /// Atomically replaces `to` with `from`. Durable only after `sync_dir` of both parents.
    fn rename(&self, from: &Path, to: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// Removes a file. Durable only after `sync_dir` of its parent.
    fn remove(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// The names of the files and directories in `dir`, sorted, so that callers are
    /// deterministic.
    fn list(&self, dir: &Path) -> impl Future<Output = io::Result<Vec<String>>> + Send;
    fn create_dir_all(&self, dir: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// Removes an empty directory. Durable only after `sync_dir` of its parent.
    fn remove_dir(&self, dir: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// Makes the creates, renames and removes of names in `dir` durable (fsync of the
    /// directory).
    fn sync_dir(&self, dir: &Path) -> impl Future<Output = io::Result<()>> + Send;
}

/// An open file. Cloning gives another handle to the same open file.
pub trait StorageFile: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Writes at the end of the file and returns the position the data starts at.
    /// Appends through one handle must not race; the log serialises them.
    fn append(&self, data: Bytes) -> impl Future<Output = io::Result<u64>> + Send;
    fn write_at(&self, position: u64, data: Bytes) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads up to `len` bytes at `position`; fewer only at the end of the file.
    fn read_at(&self, position: u64, len: usize) -> impl Future<Output = io::Result<Bytes>> + Send;
    fn len(&self) -> impl Future<Output = io::Result<u64>> + Send;
    /// fdatasync: makes every completed write and truncate of this file durable.
    fn sync_data(&self) -> impl Future<Output = io::Result<()>> + Send;
    fn truncate(&self, len: u64) -> impl Future<Output = io::Result<()>> + Send;

    /// Whether [`StorageFile::send_to`] moves bytes from the file to the socket without
    /// copying them through this process (sendfile). The broker's fetch path reads only
    /// batch headers when it does, and reads and checks the whole batches when it does not.
    const SENDS_WITHOUT_COPY: bool = false;

    /// Writes the `len` bytes at `position` to `stream`; fails with `UnexpectedEof` if the
    /// file ends first, since the response already promised `len` bytes. By default it
    /// reads and writes (the simulator's path); the real disk uses sendfile.
    fn send_to(
        &self,
        stream: &mut TcpStream,
        position: u64,
        len: usize,
    ) -> impl Future<Output = io::Result<()>> + Send {
        async move {
            let bytes = self.read_at(position, len).await?;
            if bytes.len() < len {
                return Err(file_ended(position, len));
            }
            stream.write_all(&bytes).await
        }
    }
}

/// A file range to send ended early: the file is shorter than when the range was read.
pub(crate) fn file_ended(position: u64, len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file ends inside the {len} bytes at {position} being sent"),
    )
}

/// Writes a small file so that after a crash it holds either its old content or all of
/// `data`: write a temporary file, sync it, rename it over the target, sync the directory.
pub async fn write_atomically<S: Storage>(storage: &S, path: &Path, data: Bytes) -> io::Result<()> {
    let dir = path.parent().expect("a file path has a parent directory");
    let mut tmp_name = path.file_name().expect("a file path has a name").to_os_string();
    tmp_name.push(".tmp");
    let tmp: PathBuf = dir.join(tmp_name);
    let file = storage.open(&tmp, OpenMode::Create).await?;
    file.truncate(0).await?;
    file.write_at(0, data).await?;
    file.sync_data().await?;
    drop(file);
    storage.rename(&tmp, path).await?;
    storage.sync_dir(dir).await
}

/// Creates `dir` and its missing ancestors so that they survive a power loss: after the
/// creates, syncs the parent of each, from the top down.
pub async fn create_dir_all_durably<S: Storage>(storage: &S, dir: &Path) -> io::Result<()> {
    storage.create_dir_all(dir).await?;
    let mut ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors.reverse();
    for path in ancestors {
        // A relative path's top parent is "": the working directory.
        if let Some(parent) = path.parent() {
            storage.sync_dir(parent).await?;
        }
    }
    Ok(())
}

/// Reads a whole small file.
pub async fn read_to_end<S: Storage>(storage: &S, path: &Path, len_max: u64) -> io::Result<Bytes> {
    let file = storage.open(path, OpenMode::Existing).await?;
    let len = file.len().await?;
    if len > len_max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is {len} bytes, over {len_max}", path.display()),
        ));
    }
    file.read_at(0, len as usize).await
}

pub(crate) fn eio(what: &str) -> io::Error {
    let e = io::Error::from_raw_os_error(EIO);
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

pub(crate) fn enospc() -> io::Error {
    io::Error::from_raw_os_error(ENOSPC)
}

const EIO: i32 = 5;
const ENOSPC: i32 = 28;
