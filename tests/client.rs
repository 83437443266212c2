//! Klamm's Rust client against the broker over loopback: admin, a batching producer with
//! the Java client's key partitioning, and a consumer by assignment.
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
            let metadata = d.await.unwrap().unwrap();
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
    assert!(d.await.unwrap().is_ok());

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
