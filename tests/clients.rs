//! Unmodified Kafka clients against the `klamm` binary over loopback. The test installs what
//! it needs: kcat (Debian's package, with apt-get), kafka-python 2.3.x and 3.0.x,
//! confluent-kafka and aiokafka (PyPI, each in a virtualenv under target/clients/), and
//! kafkajs 2.2.4 (npm, under target/clients/node). Installs are kept between runs.
//!
//! Producers run idempotent (kafka-python 3.x by default, the others asked to), so every
//! client's InitProducerId and sequence numbering meets the broker's. Consumer groups run
//! with every client (confluent-kafka with the classic protocol, eager and
//! cooperative-sticky, and with KIP-848): three
//! consumers share six partitions, one leaves, the others take over, and a restarted one
//! resumes at the committed offsets (`clients/groups.py` and the group phases of the
//! aiokafka and kafkajs scripts).
#![cfg(not(madsim))]

mod common;

use common::{free_address, BrokerProcess};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const RECORDS: usize = 1000;

/// The tests of this file run in parallel threads; installs into `target/clients/` take
/// turns, or two would build the same virtualenv at once.
static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn clients_dir() -> PathBuf {
    root().join("target").join("clients")
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A virtualenv with `packages`, made once.
fn venv(name: &str, packages: &[&str]) -> PathBuf {
    let _turn = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = clients_dir().join(name);
    let python = dir.join("bin").join("python");
    let marker = dir.join(format!(
        ".installed-{}",
        packages.join(" ").replace(['/', ' ', '<', '>', '=', ','], "_")
    ));
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&dir),
            &format!("python3 -m venv {name}"),
        );
        let mut pip = Command::new(&python);
        pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(packages);
        run(&mut pip, &format!("pip install {packages:?}"));
        std::fs::write(&marker, b"").unwrap();
    }
    python
}

fn kcat() -> String {
    let _turn = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !has("kcat") {
        // As root, or through sudo where the test runs as another user.
        let apt = |args: &[&str]| {
            let direct = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output();
            if direct.as_ref().is_ok_and(|o| o.status.success()) {
                return true;
            }
            let sudo = Command::new("sudo")
                .args(["-n", "apt-get"])
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output();
            sudo.is_ok_and(|o| o.status.success())
        };
        if !apt(&["install", "-y", "-q", "kcat"]) {
            assert!(
                apt(&["update", "-q"]),
                "apt-get update failed; kcat cannot be installed"
            );
            assert!(apt(&["install", "-y", "-q", "kcat"]), "apt-get install kcat failed");
        }
    }
    "kcat".to_string()
}

fn kafkajs() -> PathBuf {
    let _turn = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = clients_dir().join("node");
    if !dir.join("node_modules").join("kafkajs").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        run(
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg("kafkajs@2.2.4"),
            "npm install kafkajs",
        );
    }
    dir.join("node_modules")
}

fn python_client(python: &Path, script: &str, phase: &str, bootstrap: &str, topic: &str, count: usize) {
    let path = root().join("tests").join("clients").join(script);
    run(
        Command::new(python)
            .arg(path)
            .args([phase, bootstrap, topic, &count.to_string()]),
        &format!("{script} {phase} {topic}"),
    );
}

fn kcat_round_trip(kcat: &str, bootstrap: &str) {
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("kcat-{codec}");
        let input: String = (0..RECORDS).map(|i| format!("key-{i}:value-{i}\n")).collect();
        let mut producer = Command::new(kcat)
            .args([
                "-P",
                "-b",
                bootstrap,
                "-t",
                &topic,
                "-p",
                "0",
                "-K:",
                "-z",
                codec,
                "-H",
                "h=1",
                "-H",
                "h=2",
                "-X",
                "enable.idempotence=true",
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(producer.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        assert!(producer.wait().unwrap().success(), "kcat produce {codec}");
        let output = Command::new(kcat)
            .args([
                "-C",
                "-b",
                bootstrap,
                "-t",
                &topic,
                "-p",
                "0",
                "-e",
                "-f",
                "%o %k %s %h\\n",
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kcat consume {codec}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let want: Vec<String> = (0..RECORDS).map(|i| format!("{i} key-{i} value-{i} h=1,h=2")).collect();
        assert_eq!(lines, want, "kcat {codec}");
    }
    let output = Command::new(kcat).args(["-L", "-b", bootstrap]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("topic \"kcat-zstd\" with 1 partitions"), "{text}");
}

#[test]
fn real_clients_produce_and_consume() {
    std::fs::create_dir_all(clients_dir()).unwrap();
    let kcat = kcat();
    let kafka_python_3 = venv(
        "kafka-python-3",
        &["kafka-python>=3.0,<3.1", "python-snappy", "lz4", "zstandard"],
    );
    let kafka_python_2 = venv(
        "kafka-python-2",
        &["kafka-python>=2.3,<2.4", "python-snappy", "lz4", "zstandard"],
    );
    let confluent = venv("confluent-kafka", &["confluent-kafka"]);
    let aiokafka = venv("aiokafka", &["aiokafka"]);
    let node_modules = kafkajs();

    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("broker");
    // The log cleaner passes every half second, for the compacted topic's test.
    let broker = BrokerProcess::start_with(&dir, free_address(), &["log.cleaner.backoff.ms=500"]);
    let bootstrap = broker.bootstrap();

    kcat_round_trip(&kcat, &bootstrap);
    for (python, name) in [(&kafka_python_3, "kp3"), (&kafka_python_2, "kp2")] {
        python_client(
            python,
            "kafka_python_client.py",
            "admin",
            &bootstrap,
            &format!("{name}-admin"),
            0,
        );
        python_client(
            python,
            "kafka_python_client.py",
            "produce",
            &bootstrap,
            &format!("{name}-data"),
            RECORDS,
        );
        python_client(
            python,
            "kafka_python_client.py",
            "consume",
            &bootstrap,
            &format!("{name}-data"),
            RECORDS,
        );
    }
    python_client(&confluent, "confluent_client.py", "admin", &bootstrap, "ck-admin", 0);
    python_client(
        &confluent,
        "confluent_client.py",
        "compacted",
        &bootstrap,
        "ck-compacted",
        RECORDS,
    );
    python_client(
        &confluent,
        "confluent_client.py",
        "produce",
        &bootstrap,
        "ck-data",
        RECORDS,
    );
    python_client(
        &confluent,
        "confluent_client.py",
        "consume",
        &bootstrap,
        "ck-data",
        RECORDS,
    );
    python_client(
        &aiokafka,
        "aiokafka_client.py",
        "produce",
        &bootstrap,
        "aio-data",
        RECORDS,
    );
    python_client(
        &aiokafka,
        "aiokafka_client.py",
        "consume",
        &bootstrap,
        "aio-data",
        RECORDS,
    );
    let script = root().join("tests").join("clients").join("kafkajs_client.js");
    for phase in ["admin", "produce"] {
        let topic = format!("kafkajs-{phase}");
        run(
            Command::new("node")
                .arg(&script)
                .args([phase, &bootstrap, &topic, &RECORDS.to_string()])
                .env("NODE_PATH", &node_modules),
            &format!("kafkajs {phase}"),
        );
    }

    // A restart between produce and consume loses nothing.
    python_client(
        &confluent,
        "confluent_client.py",
        "produce",
        &bootstrap,
        "restart",
        RECORDS,
    );
    let address = broker.address;
    broker.stop();
    let broker = BrokerProcess::start(&dir, address);
    python_client(
        &confluent,
        "confluent_client.py",
        "consume",
        &broker.bootstrap(),
        "restart",
        RECORDS,
    );
    python_client(
        &kafka_python_3,
        "kafka_python_client.py",
        "consume",
        &broker.bootstrap(),
        "kp3-data",
        RECORDS,
    );
    broker.stop();
}

#[test]
fn real_clients_in_consumer_groups() {
    std::fs::create_dir_all(clients_dir()).unwrap();
    let kafka_python_3 = venv(
        "kafka-python-3",
        &["kafka-python>=3.0,<3.1", "python-snappy", "lz4", "zstandard"],
    );
    let kafka_python_2 = venv(
        "kafka-python-2",
        &["kafka-python>=2.3,<2.4", "python-snappy", "lz4", "zstandard"],
    );
    let confluent = venv("confluent-kafka", &["confluent-kafka"]);
    let aiokafka = venv("aiokafka", &["aiokafka"]);
    let node_modules = kafkajs();

    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("broker");
    // Rebalances without Kafka's 3 s initial delay, and KIP-848 heartbeats every second,
    // so that the scenarios take seconds.
    let broker = BrokerProcess::start_with(
        &dir,
        free_address(),
        &[
            "group.initial.rebalance.delay.ms=0",
            "group.consumer.heartbeat.interval.ms=1000",
        ],
    );
    let bootstrap = broker.bootstrap();
    const GROUP_RECORDS: usize = 600;
    for (python, kind, topic) in [
        (&confluent, "confluent", "groups-ck"),
        (&confluent, "confluent-cooperative", "groups-ck-coop"),
        (&confluent, "confluent-consumer", "groups-ck-848"),
        (&kafka_python_3, "kafka-python", "groups-kp3"),
        (&kafka_python_2, "kafka-python", "groups-kp2"),
    ] {
        python_client(python, "groups.py", kind, &bootstrap, topic, GROUP_RECORDS);
    }
    python_client(
        &aiokafka,
        "aiokafka_client.py",
        "group",
        &bootstrap,
        "groups-aio",
        GROUP_RECORDS,
    );
    let script = root().join("tests").join("clients").join("kafkajs_client.js");
    run(
        Command::new("node")
            .arg(&script)
            .args(["group", &bootstrap, "groups-kafkajs", &GROUP_RECORDS.to_string()])
            .env("NODE_PATH", &node_modules),
        "kafkajs group",
    );
    broker.stop();
}

/// A loopback proxy in front of a broker that keeps every request frame clients send
/// through it (size prefix dropped). The broker advertises the proxy's address, so that
/// clients come back through it after their bootstrap.
struct RecordingProxy {
    address: std::net::SocketAddr,
    frames: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

/// Frames larger than this are passed on but not kept (a produce of many records).
const RECORDED_FRAME_BYTES_MAX: usize = 64 * 1024;

impl RecordingProxy {
    fn start(listener: std::net::TcpListener, broker: std::net::SocketAddr) -> RecordingProxy {
        use std::io::{Read, Write};
        use std::net::TcpStream;
        let address = listener.local_addr().unwrap();
        let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = frames.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut upstream) = TcpStream::connect(broker) else {
                    continue;
                };
                // Small frames pass at once, not after Nagle's wait for an ACK.
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let (mut client_reader, mut upstream_reader) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut size = [0u8; 4];
                    while client_reader.read_exact(&mut size).is_ok() {
                        let len = i32::from_be_bytes(size).max(0) as usize;
                        let mut frame = vec![0u8; len];
                        if client_reader.read_exact(&mut frame).is_err() {
                            break;
                        }
                        if len <= RECORDED_FRAME_BYTES_MAX {
                            kept.lock().unwrap().push(frame.clone());
                        }
                        if upstream
                            .write_all(&size)
                            .and_then(|_| upstream.write_all(&frame))
                            .is_err()
                        {
                            break;
                        }
                    }
                    let _ = upstream.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut upstream_reader, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        RecordingProxy { address, frames }
    }
}

/// Real client traffic for the fuzzer: kcat, confluent-kafka (classic and KIP-848 groups,
/// admin), kafka-python and kafkajs run through a recording proxy; every request they send
/// must decode with our codec and survive its round trip, and each distinct one becomes a
/// request_decoder seed in `target/fuzz-seeds/request_decoder/`, which `fuzz/run.sh` reads.
#[test]
fn real_client_requests_decode_and_seed_the_fuzz_corpus() {
    std::fs::create_dir_all(clients_dir()).unwrap();
    let kcat = kcat();
    let kafka_python_3 = venv(
        "kafka-python-3",
        &["kafka-python>=3.0,<3.1", "python-snappy", "lz4", "zstandard"],
    );
    let confluent = venv("confluent-kafka", &["confluent-kafka"]);
    let node_modules = kafkajs();
    let data = tempfile::tempdir().unwrap();
    let proxy_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_address = proxy_listener.local_addr().unwrap();
    let broker_address = free_address();
    let advertised = format!("advertised.listeners=PLAINTEXT://{proxy_address}");
    let broker = BrokerProcess::start_with(
        &data.path().join("broker"),
        broker_address,
        &[
            &advertised,
            "group.initial.rebalance.delay.ms=0",
            "group.consumer.heartbeat.interval.ms=1000",
        ],
    );
    let proxy = RecordingProxy::start(proxy_listener, broker_address);
    let bootstrap = proxy.address.to_string();
    kcat_round_trip(&kcat, &bootstrap);
    python_client(&confluent, "confluent_client.py", "admin", &bootstrap, "seed-admin", 0);
    python_client(&confluent, "confluent_client.py", "produce", &bootstrap, "seed-ck", 100);
    python_client(&confluent, "confluent_client.py", "consume", &bootstrap, "seed-ck", 100);
    python_client(
        &confluent,
        "groups.py",
        "confluent-consumer",
        &bootstrap,
        "seed-848",
        60,
    );
    python_client(
        &confluent,
        "groups.py",
        "confluent-cooperative",
        &bootstrap,
        "seed-coop",
        60,
    );
    python_client(
        &kafka_python_3,
        "kafka_python_client.py",
        "admin",
        &bootstrap,
        "seed-kp-admin",
        0,
    );
    python_client(
        &kafka_python_3,
        "kafka_python_client.py",
        "produce",
        &bootstrap,
        "seed-kp",
        100,
    );
    python_client(
        &kafka_python_3,
        "kafka_python_client.py",
        "consume",
        &bootstrap,
        "seed-kp",
        100,
    );
    let script = root().join("tests").join("clients").join("kafkajs_client.js");
    run(
        Command::new("node")
            .arg(&script)
            .args(["group", &bootstrap, "seed-kafkajs", "60"])
            .env("NODE_PATH", &node_modules),
        "kafkajs group",
    );
    broker.stop();
    let frames = proxy.frames.lock().unwrap().clone();
    assert!(frames.len() > 100, "only {} requests recorded", frames.len());
    let out = root().join("target").join("fuzz-seeds").join("request_decoder");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut distinct = std::collections::BTreeSet::new();
    let mut apis = std::collections::BTreeSet::new();
    for frame in &frames {
        let api = (
            i16::from_be_bytes([frame[0], frame[1]]),
            i16::from_be_bytes([frame[2], frame[3]]),
        );
        let entry = klamm::protocol::fuzzing::corpus_entry_from_request(frame)
            .unwrap_or_else(|| panic!("a request (API {api:?}) that has no request message here"));
        let selector = u16::from_be_bytes([entry[0], entry[1]]);
        let folded = i16::from_be_bytes([entry[2], entry[3]]);
        let (name, decoded) = klamm::protocol::fuzzing::decode_round_trip(selector, folded, &entry[4..]);
        assert!(decoded, "{name} v{} from a real client does not decode", api.1);
        apis.insert(api);
        distinct.insert(entry);
    }
    for (i, entry) in distinct.iter().enumerate() {
        std::fs::write(out.join(format!("client-{i:05}")), entry).unwrap();
    }
    eprintln!(
        "{} requests recorded, {} distinct, {} (API key, version) pairs: {apis:?}",
        frames.len(),
        distinct.len(),
        apis.len()
    );
}
