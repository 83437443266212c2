//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;

use klamm::io::Storage;
use klamm::log::UnifiedLog;
use klamm::record::{self, BatchFrames, ValidationLimits};

/// Runs a test future on a single-threaded runtime whose clock only moves when every task
/// waits, so that slow simulated disks cost no wall time and runs are deterministic.
pub fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(f)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub offset: i64,
    pub timestamp: i64,
    pub value: String,
}

/// Every record from the log start offset to the log end offset. Every batch served must
/// validate; a read error is a failure.
pub async fn read_all<S: Storage>(log: &UnifiedLog<S>) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset().await;
    let limits = ValidationLimits {
        decompressed_bytes_max: 1 << 24,
    };
    let mut scratch = Vec::new();
    loop {
        let info = log
            .read(offset, 64 * 1024, None, true)
            .await
            .map_err(|e| format!("read at {offset}: {e}"))?;
        if info.batches.is_empty() {
            let end = info.log_end_offset;
            if offset != end {
                return Err(format!(
                    "read at {offset} found nothing before the log end offset {end}"
                ));
            }
            return Ok(out);
        }
        for (_, header, bytes) in BatchFrames::new(&info.records) {
            record::for_each_record(bytes, &limits, &mut scratch, |o, r| {
                if o >= offset {
                    let value = String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned();
                    out.push(Entry {
                        offset: o,
                        timestamp: r.timestamp,
                        value,
                    });
                }
            })
            .map_err(|e| format!("a served batch at {} does not validate: {e}", header.base_offset))?;
            offset = header.next_offset();
        }
    }
}

/// `KLAMM_SEED` (first seed, default 0) and `KLAMM_SEEDS` (count).
pub fn seeds_from_env(default_count: u64) -> (u64, u64) {
    let first = std::env::var("KLAMM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let count = std::env::var("KLAMM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_count);
    (first, count)
}

pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The `klamm` binary as a broker process on loopback.
pub struct BrokerProcess {
    child: Child,
    pub address: SocketAddr,
}

impl BrokerProcess {
    pub fn start(dir: &Path, address: SocketAddr) -> BrokerProcess {
        BrokerProcess::start_with(dir, address, &[])
    }

    /// With `--override key=value` for each of `overrides`.
    pub fn start_with(dir: &Path, address: SocketAddr, overrides: &[&str]) -> BrokerProcess {
        let log = std::fs::File::create(dir.with_extension("log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_klamm"));
        command.arg("server");
        for o in overrides {
            command.args(["--override", o]);
        }
        let child = command
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://{address}"))
            .arg("--override")
            .arg(format!("log.dirs={}", dir.display()))
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(address).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker did not start listening on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        BrokerProcess { child, address }
    }

    /// SIGTERM, as an operator stops a broker, then a wait for the clean exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the broker exits cleanly on SIGTERM: {status}");
    }

    pub fn bootstrap(&self) -> String {
        self.address.to_string()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}
