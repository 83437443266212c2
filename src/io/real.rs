//! The production disk: positional I/O on `std::fs::File`.
//!
//! Reads and writes are page-cache copies bounded by the batch and fetch size limits, so
//! they run inline, as Kafka's request handlers do. `fdatasync`, which takes milliseconds
//! when the device is busy, runs on tokio's blocking pool so that it never stalls the
//! network loop.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
#[cfg(not(madsim))]
use tokio::net::TcpStream;

use super::{OpenMode, Storage, StorageFile};

#[derive(Clone, Debug)]
pub struct RealStorage {
    root: PathBuf,
}

impl RealStorage {
    /// Paths given to this storage are taken relative to `root` (absolute paths as they are).
    pub fn new(root: impl Into<PathBuf>) -> RealStorage {
        RealStorage { root: root.into() }
    }

    fn path(&self, path: &Path) -> PathBuf {
        self.root.join(path)
    }
}

#[derive(Clone, Debug)]
pub struct RealFile {
    inner: Arc<RealFileInner>,
}

#[derive(Debug)]
struct RealFileInner {
    file: fs::File,
    /// The end of the file as this process wrote it; appends write here.
    len: AtomicU64,
}

impl Storage for RealStorage {
    type File = RealFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<RealFile> {
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::Create => {
                options.create(true);
            }
            OpenMode::CreateNew => {
                options.create_new(true);
            }
        }
        let file = options.open(self.path(path))?;
        let len = file.metadata()?.len();
        Ok(RealFile {
            inner: Arc::new(RealFileInner {
                file,
                len: AtomicU64::new(len),
            }),
        })
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(self.path(from), self.path(to))
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(self.path(path))
    }

    async fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.path(dir))? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(self.path(dir))
    }

    async fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(self.path(dir))
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = fs::File::open(self.path(dir))?;
        run_blocking(move || dir.sync_all()).await
    }
}

impl StorageFile for RealFile {
    async fn append(&self, data: Bytes) -> io::Result<u64> {
        let position = self.inner.len.load(Ordering::Acquire);
        self.inner.file.write_all_at(&data, position)?;
        self.inner.len.store(position + data.len() as u64, Ordering::Release);
        Ok(position)
    }

    async fn write_at(&self, position: u64, data: Bytes) -> io::Result<()> {
        self.inner.file.write_all_at(&data, position)?;
        self.inner.len.fetch_max(position + data.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    async fn read_at(&self, position: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = BytesMut::zeroed(len);
        let mut done = 0;
        while done < len {
            let n = self.inner.file.read_at(&mut buf[done..], position + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(buf.freeze())
    }

    async fn len(&self) -> io::Result<u64> {
        Ok(self.inner.len.load(Ordering::Acquire))
    }

    async fn sync_data(&self) -> io::Result<()> {
        let inner = self.inner.clone();
        run_blocking(move || inner.file.sync_data()).await
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.file.set_len(len)?;
        self.inner.len.store(len, Ordering::Release);
        Ok(())
    }

    #[cfg(not(madsim))]
    const SENDS_WITHOUT_COPY: bool = true;

    /// sendfile(2): the kernel moves page-cache pages to the socket; the bytes never enter
    /// this process. A socket that is full yields to the runtime until it is writable.
    #[cfg(not(madsim))]
    async fn send_to(&self, stream: &mut TcpStream, position: u64, len: usize) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let socket = stream.as_raw_fd();
        let file = self.inner.file.as_raw_fd();
        let end = position + len as u64;
        let mut offset = libc::off_t::try_from(position).map_err(io::Error::other)?;
        while (offset as u64) < end {
            stream.writable().await?;
            let want = ((end - offset as u64) as usize).min(SENDFILE_BYTES_MAX);
            let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
                // SAFETY: both descriptors are open for the whole call (the stream and the
                // file are borrowed), and `offset` is a valid, exclusively borrowed off_t.
                let n = unsafe { libc::sendfile(socket, file, &mut offset, want) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Ok(0) => return Err(super::file_ended(position, len)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The most one sendfile call is asked to move.
#[cfg(not(madsim))]
const SENDFILE_BYTES_MAX: usize = 1 << 20;

/// Runs a call that may block for milliseconds off the async worker threads.
#[cfg(not(madsim))]
async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(f).await.map_err(io::Error::other)?,
        Err(_) => f(),
    }
}

/// The real disk is not used inside the simulator (SimStorage is); there it runs inline.
#[cfg(madsim)]
async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    f()
}
