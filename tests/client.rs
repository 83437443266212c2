//! Klamm's Rust client against the broker over loopback: admin, a batching producer with
//! the Java client's key partitioning, a consumer by assignment, and group consumers with
//! both rebalance protocols.
#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use klamm::client::partitioner::partition_for_key;
use klamm::client::{Admin, ClientConfig, Consumer, Producer, ProducerRecord};
use klamm::io::RealStorage;
use klamm::server::{serve, Broker, ServerConfig};
use tokio::net::TcpListener;

async fn start(dir: &std::path::Path) -> (Arc<Broker<RealStorage>>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let overrides = [
        format!("log.dirs={}", dir.display()),
        format!("listeners=PLAINTEXT://{address}"),
    ];
    let (config, _) = ServerConfig::parse("", &overrides).unwrap();
    let broker = Broker::start(config, RealStorage::new("/")).await.unwrap();
    tokio::spawn(serve(broker.clone(), listener));
    (broker, address.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_with_the_rust_client() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = start(dir.path()).await;
    let config = ClientConfig::new().set("bootstrap.servers", &bootstrap);
    let mut admin = Admin::new(&config).await.unwrap();
    admin
        .create_topic("events", 3, 1, &[("retention.ms".into(), "3600000".into())])
        .await
        .unwrap();
    assert_eq!(admin.list_topics().await.unwrap(), vec!["events".to_string()]);
    let described = admin.describe_topics(Some(&["events".to_string()])).await.unwrap();
    assert_eq!(described[0].partitions.len(), 3);
    let configs = admin.describe_topic_configs("events").await.unwrap();
    assert!(configs.contains(&("retention.ms".into(), Some("3600000".into()), 1)));

    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let producer = Producer::new(config.clone().set("compression.type", codec).set("linger.ms", 2))
            .await
            .unwrap();
        let mut deliveries = Vec::new();
        for i in 0..300 {
            let record = ProducerRecord {
                topic: "events".into(),
                key: Some(Bytes::from(format!("{codec}-{i}"))),
                value: Some(Bytes::from(format!("value-{i}"))),
                headers: vec![("h".into(), Some(Bytes::from_static(b"1"))), ("h".into(), None)],
                ..Default::default()
            };
            deliveries.push(producer.send(record).await.unwrap());
        }
        producer.flush().await;
        for (i, d) in deliveries.into_iter().enumerate() {
            let metadata = d.await.unwrap();
            assert_eq!(
                metadata.partition,
                partition_for_key(format!("{codec}-{i}").as_bytes(), 3),
                "murmur2 placement"
            );
            assert!(metadata.offset >= 0);
        }
        producer.close().await;
    }
    // Records without keys stick to a partition per batch.
    let producer = Producer::new(config.clone().set("acks", "1")).await.unwrap();
    let d = producer
        .send(ProducerRecord {
            topic: "events".into(),
            value: Some(Bytes::from_static(b"no key")),
            ..Default::default()
        })
        .await
        .unwrap();
    producer.flush().await;
    assert!(d.await.is_ok());

    let mut consumer = Consumer::new(config.clone().set("auto.offset.reset", "earliest")).unwrap();
    consumer.assign((0..3).map(|p| ("events".to_string(), p)).collect());
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 1501 && std::time::Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(got.len(), 1501);
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &got {
        let expected = next.entry(r.partition).or_insert(0);
        assert_eq!(r.offset, *expected, "offsets are dense per partition");
        *expected += 1;
        if let Some(key) = &r.key {
            assert_eq!(r.partition, partition_for_key(key, 3));
            assert_eq!(
                r.headers,
                vec![
                    ("h".to_string(), Some(Bytes::from_static(b"1"))),
                    ("h".to_string(), None)
                ]
            );
        }
    }
    consumer.seek("events", 0, 5);
    let again = consumer.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(again.iter().find(|r| r.partition == 0).map(|r| r.offset), Some(5));
    assert_eq!(
        consumer.list_offset("events", 0, -1).await.unwrap(),
        *next.get(&0).unwrap()
    );

    admin.create_partitions("events", 4).await.unwrap();
    assert_eq!(admin.describe_topics(None).await.unwrap()[0].partitions.len(), 4);
    admin.delete_topic("events").await.unwrap();
    assert!(admin.list_topics().await.unwrap().is_empty());
}

/// A producer forgets a topic that the cluster no longer knows, as Java's does. After two
/// topics are deleted, the producer's next record for one of them has the broker create it
/// again (`auto.create.topics.enable` is on by default) and lands there; the other, with
/// nothing waiting, is not created again by that refresh. Keyed and sticky records are
/// then placed by the new topic's one partition, not by the deleted topic's three. Fails if
/// the producer keeps a deleted topic's partitions (the first record's retries go to a
/// partition that no longer exists until `delivery.timeout.ms` fails it), if a refresh
/// asks for (and so creates) every topic it ever knew, or if the sticky partition outlives
/// the partition count it was drawn from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_leaves_the_producers_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = start(dir.path()).await;
    let config = ClientConfig::new().set("bootstrap.servers", &bootstrap);
    let mut admin = Admin::new(&config).await.unwrap();
    admin.create_topic("gone", 3, 1, &[]).await.unwrap();
    admin.create_topic("idle", 1, 1, &[]).await.unwrap();
    // batch.size=1: every record fills its batch, so the sticky partition moves on each.
    let producer = Producer::new(
        config
            .clone()
            .set("linger.ms", 0)
            .set("batch.size", 1)
            .set("delivery.timeout.ms", 20_000),
    )
    .await
    .unwrap();
    let record = |topic: &str, partition: Option<i32>, key: Option<Bytes>| ProducerRecord {
        topic: topic.into(),
        partition,
        key,
        value: Some(Bytes::from_static(b"v")),
        ..Default::default()
    };
    let key = (0..)
        .map(|i| Bytes::from(format!("k{i}")))
        .find(|k| partition_for_key(k, 3) == 2)
        .unwrap();

    let first = producer
        .send(record("gone", None, Some(key.clone())))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((first.partition, first.offset), (2, 0));
    producer.send(record("idle", None, None)).await.unwrap().await.unwrap();
    // Unkeyed records until one lands on partition 1: the sticky partition is then 2.
    for sent in 1.. {
        assert!(sent <= 3, "the sticky partition moves on after a full batch");
        let d = producer.send(record("gone", None, None)).await.unwrap().await.unwrap();
        if d.partition == 1 {
            break;
        }
    }
    admin.delete_topic("gone").await.unwrap();
    admin.delete_topic("idle").await.unwrap();

    let again = producer.send(record("gone", Some(0), None)).await.unwrap().await;
    let again = again.expect("the deleted topic is created again and takes the record");
    assert_eq!((again.partition, again.offset), (0, 0));
    assert_eq!(
        admin.list_topics().await.unwrap(),
        vec!["gone".to_string()],
        "idle stays deleted"
    );
    let keyed = producer
        .send(record("gone", None, Some(key)))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        (keyed.partition, keyed.offset),
        (0, 1),
        "placed by the new partition count"
    );
    let sticky = producer.send(record("gone", None, None)).await.unwrap().await.unwrap();
    assert_eq!(
        (sticky.partition, sticky.offset),
        (0, 2),
        "a sticky partition that still exists"
    );
    let described = admin.describe_topics(Some(&["gone".to_string()])).await.unwrap();
    assert_eq!(described[0].partitions.len(), 1);
    producer.close().await;
}

/// A producer reuses its batches' memory with every acks setting and codec: after a flush,
/// the pool holds at least a batch's worth. Fails if the sender keeps its own references
/// past settling acks=0 batches (no buffer comes back), or if a compressed batch pools its
/// small compressed buffer instead of the one its records were gathered in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_batches_give_their_buffers_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = start(dir.path()).await;
    let config = ClientConfig::new().set("bootstrap.servers", &bootstrap);
    let mut admin = Admin::new(&config).await.unwrap();
    admin.create_topic("pooled", 1, 1, &[]).await.unwrap();
    let batch_size = 16_384;
    for acks in ["0", "1", "all"] {
        for codec in ["none", "lz4", "zstd"] {
            let producer = Producer::new(
                config
                    .clone()
                    .set("acks", acks)
                    .set("compression.type", codec)
                    .set("batch.size", batch_size)
                    .set("linger.ms", 0),
            )
            .await
            .unwrap();
            for round in 0..4 {
                for i in 0..100 {
                    let record = ProducerRecord {
                        topic: "pooled".into(),
                        value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; 200])),
                        ..Default::default()
                    };
                    producer.send(record).await.unwrap();
                }
                producer.flush().await;
                let pooled = producer.buffer_pool_bytes();
                assert!(
                    pooled >= batch_size,
                    "acks={acks} {codec} round {round}: {pooled} bytes pooled"
                );
            }
            producer.close().await;
        }
    }
}

/// Three group members on six partitions, each polling in its own task and committing what
/// it read; one leaves and the others take over; a restarted member resumes at the
/// committed offsets. Both rebalance protocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_groups_with_the_rust_client() {
    use klamm::client::GroupConsumer;
    use std::sync::Mutex;
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let overrides = [
        format!("log.dirs={}", dir.path().display()),
        format!("listeners=PLAINTEXT://{address}"),
        "group.initial.rebalance.delay.ms=0".to_string(),
        "group.consumer.heartbeat.interval.ms=200".to_string(),
    ];
    let (config, _) = ServerConfig::parse("", &overrides).unwrap();
    let broker = Broker::start(config, RealStorage::new("/")).await.unwrap();
    tokio::spawn(serve(broker.clone(), listener));
    tokio::spawn(broker.clone().run_group_timers());
    let bootstrap = address.to_string();
    let base = ClientConfig::new().set("bootstrap.servers", &bootstrap);
    let mut admin = Admin::new(&base).await.unwrap();

    for protocol in ["classic", "consumer"] {
        let topic = format!("group-{protocol}");
        admin.create_topic(&topic, 6, 1, &[]).await.unwrap();
        let produce = |from: usize, to: usize| {
            let (base, topic) = (base.clone(), topic.clone());
            async move {
                let producer = Producer::new(base).await.unwrap();
                for i in from..to {
                    let record = ProducerRecord {
                        topic: topic.as_str().into(),
                        key: Some(Bytes::from(format!("key-{i}"))),
                        value: Some(Bytes::from(format!("value-{i}"))),
                        ..Default::default()
                    };
                    producer.send(record).await.unwrap();
                }
                producer.flush().await;
            }
        };
        produce(0, 300).await;
        let config = base
            .clone()
            .set("group.id", format!("g-{protocol}"))
            .set("group.protocol", protocol)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", 6000)
            .set("heartbeat.interval.ms", 200);
        type Shared = Arc<Mutex<(Vec<(String, i32)>, Vec<String>, bool)>>;
        let member = |n: usize, shared: Shared| {
            let config = config.clone().set("client.id", format!("member-{n}"));
            let topic = topic.clone();
            tokio::spawn(async move {
                let mut c = GroupConsumer::new(config).unwrap();
                c.subscribe(std::slice::from_ref(&topic));
                loop {
                    if shared.lock().unwrap().2 {
                        break;
                    }
                    let records = match c.poll(Duration::from_millis(100)).await {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("member {n}: {e}");
                            Vec::new()
                        }
                    };
                    let got: Vec<String> = records
                        .iter()
                        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned())
                        .collect();
                    if !records.is_empty() {
                        c.commit().await.unwrap();
                    }
                    let mut s = shared.lock().unwrap();
                    s.0 = c.assignment();
                    s.1.extend(got);
                }
                c.close().await.unwrap();
            })
        };
        let shared: Vec<Shared> = (0..3)
            .map(|_| Arc::new(Mutex::new((Vec::new(), Vec::new(), false))))
            .collect();
        let tasks: Vec<_> = (0..3).map(|n| member(n, shared[n].clone())).collect();
        let owned = |members: &[Shared]| {
            let mut all: Vec<i32> = members
                .iter()
                .flat_map(|s| s.lock().unwrap().0.iter().map(|(_, p)| *p).collect::<Vec<_>>())
                .collect();
            all.sort();
            all
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while owned(&shared) != (0..6).collect::<Vec<_>>() || shared.iter().any(|s| s.lock().unwrap().0.is_empty()) {
            assert!(
                std::time::Instant::now() < deadline,
                "{protocol}: three members never shared the partitions: {:?}",
                shared.iter().map(|s| s.lock().unwrap().0.clone()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shared[2].lock().unwrap().2 = true;
        while owned(&shared[..2]) != (0..6).collect::<Vec<_>>() {
            assert!(
                std::time::Instant::now() < deadline,
                "{protocol}: the others never took over"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seen = |members: &[Shared]| {
            members
                .iter()
                .flat_map(|s| s.lock().unwrap().1.clone())
                .collect::<std::collections::BTreeSet<String>>()
        };
        while seen(&shared).len() < 300 {
            assert!(
                std::time::Instant::now() < deadline,
                "{protocol}: not every record was read"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for s in &shared {
            s.lock().unwrap().2 = true;
        }
        for task in tasks {
            task.await.unwrap();
        }
        produce(300, 400).await;
        let again = Arc::new(Mutex::new((Vec::new(), Vec::new(), false)));
        let task = member(3, again.clone());
        while again.lock().unwrap().1.len() < 100 {
            assert!(
                std::time::Instant::now() < deadline,
                "{protocol}: the restarted member did not resume"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        again.lock().unwrap().2 = true;
        task.await.unwrap();
        let mut got = again.lock().unwrap().1.clone();
        got.sort();
        let mut want: Vec<String> = (300..400).map(|i| format!("value-{i}")).collect();
        want.sort();
        assert_eq!(
            got, want,
            "{protocol}: the restarted member must read exactly the new records"
        );
    }
}

/// A consumer's position is the next record `poll` hands out, not the end of what it
/// fetched: committing it never skips a fetched record (found by the simulator's groups
/// scenario, where a member committed past its unreturned buffer and then lost the
/// partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn position_is_the_next_record_polled() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = start(dir.path()).await;
    let config = ClientConfig::new().set("bootstrap.servers", &bootstrap);
    Admin::new(&config)
        .await
        .unwrap()
        .create_topic("p", 1, 1, &[])
        .await
        .unwrap();
    let producer = Producer::new(config.clone().set("linger.ms", 50)).await.unwrap();
    for i in 0..10 {
        let record = ProducerRecord {
            topic: "p".into(),
            partition: Some(0),
            value: Some(Bytes::from(format!("v{i}"))),
            ..Default::default()
        };
        producer.send(record).await.unwrap();
    }
    producer.flush().await;
    let mut consumer = Consumer::new(config.set("max.poll.records", 3).set("auto.offset.reset", "earliest")).unwrap();
    consumer.assign(vec![("p".into(), 0)]);
    let mut seen = 0;
    while seen < 10 {
        let records = consumer.poll(Duration::from_secs(1)).await.unwrap();
        seen += records.len() as i64;
        if let Some(last) = records.last() {
            assert_eq!(consumer.position("p", 0), Some(last.offset + 1));
        }
    }
}
