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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
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
    let before_ms = now_ms();
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
    let after_ms = now_ms();
    // The perf test stamps its records itself, from its one clock read a record: they
    // carry the wall-clock time they were sent at, in order.
    let (ok, out, err) = klamm(&[
        "console-consumer",
        "--bootstrap-server",
        &b,
        "--topic",
        "perf",
        "--from-beginning",
        "--max-messages",
        "20000",
        "--timeout-ms",
        "10000",
        "--property",
        "print.timestamp=true",
    ]);
    assert!(ok, "{err}");
    let stamps: Vec<i64> = out
        .lines()
        .map(|l| {
            l.strip_prefix("CreateTime:")
                .and_then(|l| l.split('\t').next())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(stamps.len(), 20000);
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "timestamps in send order");
    assert!(
        stamps[0] >= before_ms && stamps[19999] <= after_ms,
        "{before_ms} <= {} .. {} <= {after_ms}",
        stamps[0],
        stamps[19999]
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
    // Throttled: every record is settled and counted, and the rate asked for is kept to:
    // not exceeded (the test waits between sends, and for deliveries while it waits), and
    // not fallen far short of (a wait that rounds up to a timer tick per record would
    // hold about 1,000 records a second).
    let (ok, out, err) = klamm(&[
        "producer-perf-test",
        "--topic",
        "perf-throttled",
        "--num-records",
        "4000",
        "--record-size",
        "10",
        "--throughput",
        "20000",
        "--producer-props",
        &props,
    ]);
    assert!(ok, "{err}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("4000 records sent, "), "{out}");
    let rate: f64 = last
        .split(", ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    // The last record is due 3999/20000 s after the start, so at most 4000 / (3999/20000)
    // records a second; the lower bound leaves a factor of 4 for a slow machine.
    assert!((5000.0..=20005.1).contains(&rate), "{out}");
    let (ok, _, err) = klamm(&["topics", "--bootstrap-server", &b, "--bogus"]);
    assert!(!ok && err.contains("unknown option --bogus"), "{err}");
    broker.stop();
}

/// `console-consumer --group` commits what it printed; `consumer-groups` lists, describes
/// with lag, resets (dry run first, then --execute) and deletes.
#[test]
fn consumer_group_tools() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with(
        &data.path().join("broker"),
        free_address(),
        &["group.initial.rebalance.delay.ms=0"],
    );
    let b = broker.bootstrap();
    let (ok, _, err) = klamm(&[
        "topics",
        "--bootstrap-server",
        &b,
        "--create",
        "--topic",
        "g",
        "--partitions",
        "1",
    ]);
    assert!(ok, "{err}");
    let mut producer = Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args(["console-producer", "--bootstrap-server", &b, "--topic", "g"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: String = (0..30).map(|i| format!("line-{i}\n")).collect();
    producer.stdin.as_mut().unwrap().write_all(lines.as_bytes()).unwrap();
    drop(producer.stdin.take());
    assert!(producer.wait().unwrap().success());
    let consume = |n: &str| {
        klamm(&[
            "console-consumer",
            "--bootstrap-server",
            &b,
            "--topic",
            "g",
            "--group",
            "tools",
            "--from-beginning",
            "--max-messages",
            n,
        ])
    };
    let (ok, out, err) = consume("20");
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 20);
    // The group resumes after what was printed, not after what was fetched.
    let (ok, out, err) = consume("10");
    assert!(ok, "{err}");
    assert_eq!(out.lines().next(), Some("line-20"), "{out}");
    let groups = |args: &[&str]| {
        let mut all = vec!["consumer-groups", "--bootstrap-server", &b];
        all.extend_from_slice(args);
        klamm(&all)
    };
    let (ok, out, err) = groups(&["--list"]);
    assert!(ok && out.lines().any(|l| l == "tools"), "{out}{err}");
    let (ok, out, err) = groups(&["--describe", "--group", "tools"]);
    let row = out
        .lines()
        .find(|l| l.starts_with("tools "))
        .unwrap_or_default()
        .to_string();
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert!(ok && fields[..6] == ["tools", "g", "0", "30", "30", "0"], "{out}{err}");
    // A dry run changes nothing; --execute does.
    let (ok, out, _) = groups(&[
        "--reset-offsets",
        "--group",
        "tools",
        "--topic",
        "g",
        "--to-offset",
        "5",
    ]);
    assert!(ok && out.contains(" 5"), "{out}");
    let (_, out, _) = groups(&["--describe", "--group", "tools"]);
    assert!(out.contains(" 30 "), "{out}");
    let (ok, _, err) = groups(&[
        "--reset-offsets",
        "--group",
        "tools",
        "--topic",
        "g:0",
        "--to-offset",
        "5",
        "--execute",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = consume("1");
    assert!(ok && out.trim() == "line-5", "{out}{err}");
    let (ok, _, err) = groups(&[
        "--reset-offsets",
        "--group",
        "tools",
        "--all-topics",
        "--to-earliest",
        "--execute",
    ]);
    assert!(ok, "{err}");
    let (ok, out, _) = groups(&["--describe", "--group", "tools"]);
    assert!(
        ok && out
            .lines()
            .any(|l| l.split_whitespace().take(6).eq(["tools", "g", "0", "0", "30", "30"])),
        "{out}"
    );
    let (ok, _, err) = groups(&["--delete", "--group", "tools"]);
    assert!(ok, "{err}");
    let (ok, out, _) = groups(&["--list"]);
    assert!(ok && !out.lines().any(|l| l == "tools"), "{out}");
    let (ok, _, err) = groups(&["--delete", "--group", "tools"]);
    assert!(!ok && err.contains("69"), "{err}");
    broker.stop();
}
