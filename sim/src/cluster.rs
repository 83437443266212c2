//! The simulated world: broker nodes, each a madsim node that runs the real broker shell
//! (`klamm::server::run`) over its own simulated disk. A node's disk outlives its process:
//! a restart runs the shell again on the same [`SimStorage`], after a process crash (the
//! page cache survives) or a machine crash (only synced state survives).

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use klamm::io::{CrashKind, DiskFaults, SimStorage};
use klamm::server::{Broker, ServerConfig};
use madsim::runtime::{Handle, NodeHandle};

pub type SimBroker = Broker<SimStorage>;

pub const LOG_DIR: &str = "/var/lib/klamm";

/// What the supervisor knows of a broker process.
#[derive(Default)]
struct Life {
    broker: Weak<SimBroker>,
    /// The process ended (clean shutdown, a failed log directory, a failed start) or was
    /// killed, and has not been restarted.
    down: bool,
    starts: u64,
    last_error: Option<String>,
}

pub struct BrokerNode {
    pub id: i32,
    pub node: NodeHandle,
    pub storage: SimStorage,
    pub address: String,
    life: Arc<Mutex<Life>>,
}

impl BrokerNode {
    /// A broker at 10.0.0.`id`:9092 with data in [`LOG_DIR`]; `overrides` are Kafka config
    /// keys as `key=value`.
    pub fn start(id: i32, overrides: &[String], disk_seed: u64) -> BrokerNode {
        let ip = Ipv4Addr::new(10, 0, 0, id as u8);
        let address = format!("{ip}:9092");
        let storage = SimStorage::new(disk_seed, DiskFaults::none());
        let life = Arc::new(Mutex::new(Life::default()));
        let mut config = vec![
            format!("node.id={id}"),
            format!("listeners=PLAINTEXT://{address}"),
            format!("log.dirs={LOG_DIR}"),
        ];
        config.extend(overrides.iter().cloned());
        let (disk, process) = (storage.clone(), life.clone());
        let node = Handle::current()
            .create_node()
            .name(format!("broker-{id}"))
            .ip(ip.into())
            .init(move || broker_process(config.clone(), disk.clone(), process.clone()))
            .build();
        BrokerNode {
            id,
            node,
            storage,
            address,
            life,
        }
    }

    fn life(&self) -> MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running broker, if its process is up and has started.
    pub fn broker(&self) -> Option<Arc<SimBroker>> {
        let life = self.life();
        if life.down {
            return None;
        }
        life.broker.upgrade()
    }

    pub fn is_down(&self) -> bool {
        self.life().down
    }

    pub fn starts(&self) -> u64 {
        self.life().starts
    }

    pub fn last_error(&self) -> Option<String> {
        self.life().last_error.clone()
    }

    /// kill -9 (`Process`) or power loss (`Machine`): every task of the node stops, and the
    /// disk keeps what that crash keeps.
    pub fn crash(&self, kind: CrashKind) {
        Handle::current().kill(self.node.id());
        {
            let mut life = self.life();
            life.down = true;
            life.broker = Weak::new();
        }
        self.storage.crash(kind);
    }

    /// Asks the broker to shut down cleanly (SIGINT); it flushes and writes checkpoints.
    pub fn stop_cleanly(&self) {
        Handle::current().send_ctrl_c(self.node.id());
    }

    /// Starts the broker process again (after a crash, a clean stop or its own exit).
    pub fn restart(&self) {
        // Whatever still runs of the old process dies first, as with a supervisor's restart.
        Handle::current().kill(self.node.id());
        self.storage.crash(CrashKind::Process);
        {
            let mut life = self.life();
            life.down = false;
            life.broker = Weak::new();
        }
        Handle::current().restart(self.node.id());
    }
}

async fn broker_process(overrides: Vec<String>, storage: SimStorage, life: Arc<Mutex<Life>>) {
    let (config, _) = ServerConfig::parse("", &overrides).expect("the simulator's broker config parses");
    life.lock().unwrap_or_else(|e| e.into_inner()).starts += 1;
    let result = match tokio::net::TcpListener::bind(config.listener).await {
        Ok(listener) => {
            let started = life.clone();
            klamm::server::run(
                config,
                storage,
                listener,
                move |broker| started.lock().unwrap_or_else(|e| e.into_inner()).broker = Arc::downgrade(broker),
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
            )
            .await
            .map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("cannot listen: {e}")),
    };
    let mut life = life.lock().unwrap_or_else(|e| e.into_inner());
    life.down = true;
    life.broker = Weak::new();
    life.last_error = result.err();
}
