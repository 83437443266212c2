//! The Kafka-style tools of the `klamm` binary against a broker process: topics, the console
//! producer and consumer, and the perf tests (small runs: this checks they work, the
//! benchmarks measure them).
#![cfg(not(madsim))]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{free_address, BrokerProcess};

fn klamm(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_klamm")).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn topics_console_and_perf_tools() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&data.path().join("broker"), free_address());
    let b = broker.bootstrap();
    let (ok, out, err) = klamm(&[
        "topics",
        "--bootstrap-server",
        &b,
        "--create",
        "--topic",
        "t",
        "--partitions",
        "2",
        "--config",
        "retention.ms=60000",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Created topic t.");
    let (ok, _, err) = klamm(&["topics", "--bootstrap-server", &b, "--create", "--topic", "t"]);
    assert!(!ok && err.contains("Kafka error code 36"), "{err}");
    let (ok, out, _) = klamm(&["topics", "--bootstrap-server", &b, "--list"]);
    assert!(ok && out.lines().any(|l| l == "t"), "{out}");
    let (ok, out, _) = klamm(&["topics", "--bootstrap-server", &b, "--describe", "--topic", "t"]);
    assert!(
        ok && out.contains("PartitionCount: 2")
            && out.contains("Configs: retention.ms=60000")
            && out.contains("Partition: 1\tLeader: 1"),
        "{out}"
    );
    let (ok, _, _) = klamm(&[
        "topics",
        "--bootstrap-server",
        &b,
        "--alter",
        "--topic",
        "t",
        "--partitions",
        "3",
    ]);
    assert!(ok);

    let mut producer = Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args([
            "console-producer",
            "--bootstrap-server",
            &b,
            "--topic",
            "console",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    producer
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"k1:hello\nk1:world\nk1:again\n")
        .unwrap();
    assert!(producer.wait().unwrap().success());
    let (ok, out, err) = klamm(&[
        "console-consumer",
        "--bootstrap-server",
        &b,
        "--topic",
        "console",
        "--from-beginning",
        "--max-messages",
        "3",
        "--property",
        "print.key=true",
        "--property",
        "key.separator=:",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "k1:hello\nk1:world\nk1:again\n");
    assert!(err.contains("Processed a total of 3 messages"), "{err}");

    let props = format!("bootstrap.servers={b}");
    let (ok, out, err) = klamm(&[
        "producer-perf-test",
        "--topic",
        "perf",
        "--num-records",
        "20000",
        "--record-size",
        "100",
        "--throughput",
        "-1",
        "--producer-props",
        &props,
        "acks=1",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("20000 records sent") && out.contains("ms 99.9th."),
        "{out}"
    );
    let (ok, out, err) = klamm(&[
        "consumer-perf-test",
        "--bootstrap-server",
        &b,
        "--topic",
        "perf",
        "--messages",
        "20000",
        "--timeout",
        "5000",
    ]);
    assert!(ok, "{err}");
    let row = out.lines().nth(1).unwrap();
    assert_eq!(row.split(", ").nth(4), Some("20000"), "{out}");
    let (ok, _, err) = klamm(&["topics", "--bootstrap-server", &b, "--bogus"]);
    assert!(!ok && err.contains("unknown option --bogus"), "{err}");
    broker.stop();
}
