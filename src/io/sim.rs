//! The simulated disk: in memory, one per simulated node, deterministic from a seed.
//!
//! It keeps what reads see apart from what survives a crash:
//! - each file has its visible bytes and its durable bytes; `sync_data` copies the ranges
//!   written since the last sync (and the length) from one to the other;
//! - the directory tree has visible names and durable names; `sync_dir` copies the
//!   entries of one directory.
//!
//! Two crashes: [`CrashKind::Process`] (kill -9) keeps every completed write, as the page
//! cache does; [`CrashKind::Machine`] (power loss) keeps only durable state, may tear each
//! file's last unsynced write at sector granularity, and forgets creates, renames and
//! removes whose directory was not synced. Either crash invalidates every open handle.
//!
//! Faults, each at a configurable rate ([`DiskFaults`]): EIO on read, write and sync; a
//! full disk (ENOSPC); bit flips in durable data; slow operations. A failed sync drops the
//! unsynced ranges from the durable path, as Linux does, so a broker that retries the sync
//! and trusts it loses data: the simulator can catch that.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

use super::rng::SimRng;
use super::{eio, enospc, OpenMode, Storage, StorageFile};

/// The fault rates of one simulated disk. All probabilities are per operation unless said.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskFaults {
    pub read_eio_probability: f64,
    pub write_eio_probability: f64,
    pub sync_eio_probability: f64,
    /// Total visible file bytes the disk holds; a write past it fails with ENOSPC.
    pub capacity_bytes: u64,
    /// Per file, at each machine crash: one bit of its durable data flips (latent corruption).
    pub bit_flip_probability: f64,
    /// Per file, at each machine crash: its last unsynced write lands in part, a prefix or
    /// a random subset of its sectors.
    pub torn_write_probability: f64,
    /// Per earlier unsynced write, at each machine crash: the kernel had written some of its
    /// sectors back (with their current content) before the power went.
    pub writeback_probability: f64,
    pub sector_bytes: u64,
    pub slow_probability: f64,
    pub slow_latency: Duration,
}

impl DiskFaults {
    /// A disk that never fails, and still loses unsynced data on a machine crash.
    pub fn none() -> DiskFaults {
        DiskFaults {
            read_eio_probability: 0.0,
            write_eio_probability: 0.0,
            sync_eio_probability: 0.0,
            capacity_bytes: u64::MAX,
            bit_flip_probability: 0.0,
            torn_write_probability: 0.0,
            writeback_probability: 0.0,
            sector_bytes: 512,
            slow_probability: 0.0,
            slow_latency: Duration::from_millis(10),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashKind {
    /// kill -9: the page cache survives.
    Process,
    /// Power loss: only synced data and synced directory entries survive.
    Machine,
}

/// Counters, and a hash over every operation for determinism checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub reads: u64,
    pub bytes_read: u64,
    pub writes: u64,
    pub syncs: u64,
    pub bytes_written: u64,
    pub faults_injected: u64,
    pub crashes: u64,
    pub trace_hash: u64,
}

#[derive(Clone)]
pub struct SimStorage {
    disk: Arc<Mutex<SimDisk>>,
}

#[derive(Clone)]
pub struct SimFile {
    disk: Arc<Mutex<SimDisk>>,
    ino: u64,
    generation: u64,
}

struct SimDisk {
    rng: SimRng,
    faults: DiskFaults,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    durable_dirs: BTreeSet<PathBuf>,
    inodes: BTreeMap<u64, Inode>,
    ino_next: u64,
    /// Bumped by every crash; handles from an older generation fail.
    generation: u64,
    used_bytes: u64,
    stats: DiskStats,
}

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Ranges written since the last sync, oldest first.
    dirty: Vec<(u64, u64)>,
    /// A truncate or extension since the last sync.
    len_dirty: bool,
}

impl SimStorage {
    pub fn new(seed: u64, faults: DiskFaults) -> SimStorage {
        assert!(faults.sector_bytes > 0);
        let disk = SimDisk {
            rng: SimRng::new(seed),
            faults,
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            dirs: BTreeSet::new(),
            durable_dirs: BTreeSet::new(),
            inodes: BTreeMap::new(),
            ino_next: 1,
            generation: 0,
            used_bytes: 0,
            stats: DiskStats::default(),
        };
        SimStorage {
            disk: Arc::new(Mutex::new(disk)),
        }
    }

    pub fn set_faults(&self, faults: DiskFaults) {
        self.lock().faults = faults;
    }

    pub fn faults(&self) -> DiskFaults {
        self.lock().faults.clone()
    }

    pub fn stats(&self) -> DiskStats {
        self.lock().stats.clone()
    }

    /// Crashes the node that owns this disk. Open handles stop working.
    pub fn crash(&self, kind: CrashKind) {
        self.lock().crash(kind);
    }

    /// Flips one bit of a file in both its visible and durable bytes: latent corruption
    /// that a read returns without an error.
    pub fn flip_bit(&self, path: &Path, position: u64, bit: u8) -> io::Result<()> {
        let mut disk = self.lock();
        let ino = *disk.names.get(path).ok_or_else(|| not_found(path))?;
        let inode = disk.inodes.get_mut(&ino).expect("a name points at a live inode");
        let mask = 1u8 << (bit % 8);
        let p = position as usize;
        if p < inode.data.len() {
            inode.data[p] ^= mask;
        }
        if p < inode.durable.len() {
            inode.durable[p] ^= mask;
        }
        Ok(())
    }

    /// The visible length of a file, for tests.
    pub fn file_len(&self, path: &Path) -> Option<u64> {
        let disk = self.lock();
        disk.names.get(path).map(|ino| disk.inodes[ino].data.len() as u64)
    }

    fn lock(&self) -> MutexGuard<'_, SimDisk> {
        lock(&self.disk)
    }

    async fn maybe_slow(&self) {
        let delay = {
            let mut disk = self.lock();
            let p = disk.faults.slow_probability;
            let slow = disk.rng.chance(p);
            disk.trace(11, slow as u64);
            slow.then_some(disk.faults.slow_latency)
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }
}

fn lock(disk: &Mutex<SimDisk>) -> MutexGuard<'_, SimDisk> {
    // A panic while holding the lock is a bug already reported; the state is still usable
    // for the report.
    disk.lock().unwrap_or_else(|e| e.into_inner())
}

impl Storage for SimStorage {
    type File = SimFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<SimFile> {
        self.maybe_slow().await;
        let mut disk = self.lock();
        disk.trace(1, path.as_os_str().len() as u64);
        let existing = disk.names.get(path).copied();
        let ino = match (existing, mode) {
            (Some(_), OpenMode::CreateNew) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, path.display().to_string()))
            }
            (Some(ino), _) => ino,
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (None, OpenMode::Create | OpenMode::CreateNew) => {
                disk.check_parent(path)?;
                let ino = disk.ino_next;
                disk.ino_next += 1;
                disk.inodes.insert(ino, Inode::default());
                disk.names.insert(path.to_path_buf(), ino);
                ino
            }
        };
        Ok(SimFile {
            disk: self.disk.clone(),
            ino,
            generation: disk.generation,
        })
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.maybe_slow().await;
        let mut disk = self.lock();
        disk.trace(2, from.as_os_str().len() as u64);
        disk.check_parent(to)?;
        let ino = disk.names.remove(from).ok_or_else(|| not_found(from))?;
        if let Some(old) = disk.names.insert(to.to_path_buf(), ino) {
            disk.forget_if_unreferenced(old);
        }
        Ok(())
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        self.maybe_slow().await;
        let mut disk = self.lock();
        disk.trace(3, path.as_os_str().len() as u64);
        let ino = disk.names.remove(path).ok_or_else(|| not_found(path))?;
        disk.forget_if_unreferenced(ino);
        Ok(())
    }

    async fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.maybe_slow().await;
        let disk = self.lock();
        if !disk.dir_exists(dir) {
            return Err(not_found(dir));
        }
        let files = disk.names.keys().filter(|p| p.parent() == Some(dir));
        let dirs = disk.dirs.iter().filter(|p| p.parent() == Some(dir));
        let mut names: Vec<String> = files
            .chain(dirs)
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        for ancestor in dir.ancestors() {
            if !is_root(ancestor) {
                disk.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    async fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        self.maybe_slow().await;
        let mut disk = self.lock();
        disk.trace(13, dir.as_os_str().len() as u64);
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let occupied = disk
            .names
            .keys()
            .chain(disk.dirs.iter())
            .any(|p| p.parent() == Some(dir));
        if occupied {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                dir.display().to_string(),
            ));
        }
        disk.dirs.remove(dir);
        Ok(())
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.maybe_slow().await;
        let mut disk = self.lock();
        disk.trace(4, dir.as_os_str().len() as u64);
        if !disk.dir_exists(dir) {
            return Err(not_found(dir));
        }
        if disk.roll_fault(|f| f.sync_eio_probability) {
            return Err(eio("sync_dir"));
        }
        disk.sync_dir(dir);
        Ok(())
    }
}

impl StorageFile for SimFile {
    async fn append(&self, data: Bytes) -> io::Result<u64> {
        self.maybe_slow().await;
        let mut disk = lock(&self.disk);
        let position = disk.inode(self)?.data.len() as u64;
        disk.write(self.ino, position, &data)?;
        Ok(position)
    }

    async fn write_at(&self, position: u64, data: Bytes) -> io::Result<()> {
        self.maybe_slow().await;
        let mut disk = lock(&self.disk);
        disk.inode(self)?;
        disk.write(self.ino, position, &data)
    }

    async fn read_at(&self, position: u64, len: usize) -> io::Result<Bytes> {
        self.maybe_slow().await;
        let mut disk = lock(&self.disk);
        disk.inode(self)?;
        disk.stats.reads += 1;
        disk.trace(5, position ^ len as u64);
        if disk.roll_fault(|f| f.read_eio_probability) {
            return Err(eio("read"));
        }
        let data = &disk.inodes[&self.ino].data;
        let start = (position as usize).min(data.len());
        let end = start.saturating_add(len).min(data.len());
        let bytes = Bytes::copy_from_slice(&data[start..end]);
        disk.stats.bytes_read += bytes.len() as u64;
        Ok(bytes)
    }

    async fn len(&self) -> io::Result<u64> {
        let mut disk = lock(&self.disk);
        Ok(disk.inode(self)?.data.len() as u64)
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.maybe_slow().await;
        let mut disk = lock(&self.disk);
        disk.inode(self)?;
        disk.stats.syncs += 1;
        disk.trace(6, self.ino);
        if disk.roll_fault(|f| f.sync_eio_probability) {
            // Linux marks the pages clean after a failed writeback: the data stays visible
            // but will never reach the disk.
            let inode = disk.inodes.get_mut(&self.ino).expect("checked above");
            inode.dirty.clear();
            inode.len_dirty = false;
            return Err(eio("fdatasync"));
        }
        let inode = disk.inodes.get_mut(&self.ino).expect("checked above");
        inode.sync();
        Ok(())
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.maybe_slow().await;
        let mut disk = lock(&self.disk);
        disk.inode(self)?;
        disk.trace(7, len);
        if disk.roll_fault(|f| f.write_eio_probability) {
            return Err(eio("truncate"));
        }
        let old = disk.inodes[&self.ino].data.len() as u64;
        if len > old && disk.used_bytes + (len - old) > disk.faults.capacity_bytes {
            return Err(enospc());
        }
        disk.used_bytes = disk.used_bytes + len - old;
        let inode = disk.inodes.get_mut(&self.ino).expect("checked above");
        inode.data.resize(len as usize, 0);
        inode.len_dirty = true;
        Ok(())
    }
}

impl std::fmt::Debug for SimFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFile")
            .field("ino", &self.ino)
            .field("generation", &self.generation)
            .finish()
    }
}

impl SimFile {
    async fn maybe_slow(&self) {
        SimStorage {
            disk: self.disk.clone(),
        }
        .maybe_slow()
        .await
    }
}

impl Inode {
    fn sync(&mut self) {
        self.durable.resize(self.data.len(), 0);
        for &(position, len) in &self.dirty {
            let start = (position as usize).min(self.data.len());
            let end = ((position + len) as usize).min(self.data.len());
            self.durable[start..end].copy_from_slice(&self.data[start..end]);
        }
        self.dirty.clear();
        self.len_dirty = false;
    }
}

impl SimDisk {
    fn inode(&mut self, file: &SimFile) -> io::Result<&mut Inode> {
        if file.generation != self.generation {
            return Err(eio("stale handle from before a crash"));
        }
        self.inodes
            .get_mut(&file.ino)
            .ok_or_else(|| eio("stale handle to a removed file"))
    }

    fn write(&mut self, ino: u64, position: u64, data: &[u8]) -> io::Result<()> {
        self.stats.writes += 1;
        self.trace(8, position ^ ((data.len() as u64) << 32));
        if self.roll_fault(|f| f.write_eio_probability) {
            return Err(eio("write"));
        }
        let end = position + data.len() as u64;
        let old = self.inodes[&ino].data.len() as u64;
        let growth = end.saturating_sub(old);
        if self.used_bytes + growth > self.faults.capacity_bytes {
            self.stats.faults_injected += 1;
            return Err(enospc());
        }
        self.used_bytes += growth;
        self.stats.bytes_written += data.len() as u64;
        let inode = self.inodes.get_mut(&ino).expect("caller checked the handle");
        if inode.data.len() < end as usize {
            inode.data.resize(end as usize, 0);
            inode.len_dirty = true;
        }
        inode.data[position as usize..end as usize].copy_from_slice(data);
        inode.dirty.push((position, data.len() as u64));
        Ok(())
    }

    fn roll_fault(&mut self, probability: impl Fn(&DiskFaults) -> f64) -> bool {
        let p = probability(&self.faults);
        let hit = self.rng.chance(p);
        if hit {
            self.stats.faults_injected += 1;
            self.trace(10, self.stats.faults_injected);
        }
        hit
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        let parent = path.parent().unwrap_or(Path::new(""));
        if self.dir_exists(parent) {
            Ok(())
        } else {
            Err(not_found(parent))
        }
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        is_root(dir) || self.dirs.contains(dir)
    }

    fn forget_if_unreferenced(&mut self, ino: u64) {
        let referenced = self.names.values().any(|&i| i == ino) || self.durable_names.values().any(|&i| i == ino);
        if !referenced {
            if let Some(inode) = self.inodes.remove(&ino) {
                self.used_bytes -= inode.data.len() as u64;
            }
        }
    }

    fn sync_dir(&mut self, dir: &Path) {
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        self.durable_names.retain(|p, _| !in_dir(p));
        for (path, &ino) in self.names.iter().filter(|(p, _)| in_dir(p)) {
            self.durable_names.insert(path.clone(), ino);
        }
        self.durable_dirs.retain(|p| !in_dir(p));
        for path in self.dirs.iter().filter(|p| in_dir(p)) {
            self.durable_dirs.insert(path.clone());
        }
        // Inodes that only a durable name kept alive may go now.
        let live: BTreeSet<u64> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        let dead: Vec<u64> = self.inodes.keys().filter(|i| !live.contains(i)).copied().collect();
        for ino in dead {
            let inode = self.inodes.remove(&ino).expect("listed above");
            self.used_bytes -= inode.data.len() as u64;
        }
    }

    fn crash(&mut self, kind: CrashKind) {
        self.generation += 1;
        self.stats.crashes += 1;
        self.trace(9, kind as u64);
        if kind == CrashKind::Process {
            return;
        }
        // A directory survives only if it and all its ancestors were synced into their parents.
        let durable_dirs = self.durable_dirs.clone();
        let dir_survives = |dir: &Path| dir.ancestors().all(|a| is_root(a) || durable_dirs.contains(a));
        self.dirs = self.durable_dirs.iter().filter(|d| dir_survives(d)).cloned().collect();
        self.durable_dirs = self.dirs.clone();
        self.names = self
            .durable_names
            .iter()
            .filter(|(p, _)| dir_survives(p.parent().unwrap_or(Path::new(""))))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        self.durable_names = self.names.clone();
        let live: BTreeSet<u64> = self.names.values().copied().collect();
        self.inodes.retain(|ino, _| live.contains(ino));
        let faults = self.faults.clone();
        let mut used = 0;
        let mut torn_bytes = Vec::new();
        for inode in self.inodes.values_mut() {
            let mut data = std::mem::take(&mut inode.durable);
            let earlier = inode.dirty.len().saturating_sub(1);
            for &(position, len) in &inode.dirty[..earlier] {
                if self.rng.chance(faults.writeback_probability) {
                    let kept = tear(
                        &mut self.rng,
                        &inode.data,
                        &mut data,
                        position,
                        len,
                        faults.sector_bytes,
                    );
                    torn_bytes.push(kept);
                }
            }
            let torn = inode
                .dirty
                .last()
                .copied()
                .filter(|_| self.rng.chance(faults.torn_write_probability));
            if let Some((position, len)) = torn {
                let kept = tear(
                    &mut self.rng,
                    &inode.data,
                    &mut data,
                    position,
                    len,
                    faults.sector_bytes,
                );
                self.stats.faults_injected += 1;
                torn_bytes.push(kept);
            }
            if !data.is_empty() && self.rng.chance(faults.bit_flip_probability) {
                let bit = self.rng.below(data.len() as u64 * 8);
                data[(bit / 8) as usize] ^= 1 << (bit % 8);
                self.stats.faults_injected += 1;
            }
            inode.durable = data.clone();
            inode.data = data;
            inode.dirty.clear();
            inode.len_dirty = false;
            used += inode.data.len() as u64;
        }
        self.used_bytes = used;
        for kept in torn_bytes {
            self.trace(12, kept);
        }
    }

    fn trace(&mut self, op: u64, value: u64) {
        // FNV-1a over (op, value): equal traces give equal hashes.
        let mut h = self.stats.trace_hash ^ 0xcbf2_9ce4_8422_2325;
        for byte in op.to_le_bytes().into_iter().chain(value.to_le_bytes()) {
            h ^= byte as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        self.stats.trace_hash = h;
    }
}

/// Lands part of an unsynced write `[position, position + len)`: either a prefix of its
/// sectors or a random subset of them (the rest keep their old bytes, or zeros past the old
/// end), as a disk without power-loss protection may. Returns how many bytes landed.
fn tear(rng: &mut SimRng, visible: &[u8], durable: &mut Vec<u8>, position: u64, len: u64, sector: u64) -> u64 {
    let write_end = (position + len).min(visible.len() as u64);
    let first_sector = position / sector;
    let sectors = write_end.div_ceil(sector).saturating_sub(first_sector);
    let prefix = rng.chance(0.5);
    let kept_prefix = rng.below(sectors + 1);
    let mut landed = 0;
    for i in 0..sectors {
        let keep = if prefix { i < kept_prefix } else { rng.chance(0.5) };
        if !keep {
            continue;
        }
        let start = ((first_sector + i) * sector).max(position) as usize;
        let end = ((first_sector + i + 1) * sector).min(write_end) as usize;
        if durable.len() < end {
            durable.resize(end, 0);
        }
        durable[start..end].copy_from_slice(&visible[start..end]);
        landed += (end - start) as u64;
    }
    landed
}

fn is_root(dir: &Path) -> bool {
    dir.as_os_str().is_empty() || dir == Path::new("/")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}
