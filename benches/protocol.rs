//! Benchmarks of the wire codec on the produce and fetch paths, each beside a copy of the
//! same bytes measured in the same run (the floor any decoder pays), and of one group
//! coordinator join round (three members join and sync, pure, no I/O).
//!
//! `cargo bench --bench protocol`; then `python3 benches/ratios.py` prints the ratios.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use klamm::group::{GroupConfig, GroupCoordinatorShard, Reply};
use klamm::protocol::codec::{Message, Reader, Uuid};
use klamm::protocol::messages::*;
use klamm::record::{Compression, RecordBatchBuilder};

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;
const PRODUCE_PARTITIONS: usize = 8;
const FETCH_TOPICS: usize = 10;
const FETCH_PARTITIONS: usize = 10;

fn batch() -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None);
    for i in 0..RECORDS_PER_BATCH {
        let value = vec![b'a' + (i % 26) as u8; RECORD_BYTES];
        b.append(
            1_700_000_000_000,
            Some(format!("key-{i}").as_bytes()),
            Some(&value),
            &[],
        );
    }
    b.build().freeze()
}

/// A Produce request as librdkafka sends one: one topic, a 16 KiB batch per partition.
fn produce_request() -> ProduceRequest {
    let records = batch();
    ProduceRequest {
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![produce_request::TopicProduceData {
            name: "events".into(),
            partition_data: (0..PRODUCE_PARTITIONS as i32)
                .map(|index| produce_request::PartitionProduceData {
                    index,
                    records: Some(records.clone()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A Fetch request of a consumer on 100 partitions, by topic id (v13+).
fn fetch_request() -> FetchRequest {
    FetchRequest {
        replica_id: -1,
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: 52_428_800,
        session_epoch: -1,
        topics: (0..FETCH_TOPICS)
            .map(|t| fetch_request::FetchTopic {
                topic_id: Uuid([t as u8 + 1; 16]),
                partitions: (0..FETCH_PARTITIONS as i32)
                    .map(|partition| fetch_request::FetchPartition {
                        partition,
                        current_leader_epoch: 3,
                        fetch_offset: 1_000_000 + partition as i64,
                        log_start_offset: -1,
                        partition_max_bytes: 1_048_576,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The broker's answer to it: every partition with a 16 KiB batch.
fn fetch_response() -> FetchResponse {
    let records = batch();
    FetchResponse {
        responses: (0..FETCH_TOPICS)
            .map(|t| fetch_response::FetchableTopicResponse {
                topic_id: Uuid([t as u8 + 1; 16]),
                partitions: (0..FETCH_PARTITIONS as i32)
                    .map(|partition_index| fetch_response::PartitionData {
                        partition_index,
                        high_watermark: 2_000_000,
                        last_stable_offset: 2_000_000,
                        log_start_offset: 0,
                        records: Some(records.clone()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn encoded<M: Message>(message: &M, version: i16) -> Bytes {
    let mut w = BytesMut::new();
    message.encode(&mut w, version).expect("encodes");
    w.freeze()
}

fn codec_pair<M: Message>(c: &mut Criterion, name: &str, message: M, version: i16) {
    let bytes = encoded(&message, version);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("copy_baseline", |b| b.iter(|| black_box(bytes.to_vec())));
    group.bench_function(format!("decode_v{version}"), |b| {
        b.iter(|| M::decode(&mut Reader::new(bytes.clone()), version).expect("decodes"))
    });
    group.bench_function(format!("encode_v{version}"), |b| {
        b.iter(|| {
            let mut w = BytesMut::with_capacity(bytes.len());
            message.encode(&mut w, version).expect("encodes");
            black_box(w)
        })
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    codec_pair(c, "produce_request", produce_request(), 11);
    codec_pair(c, "fetch_request", fetch_request(), 16);
    codec_pair(c, "fetch_response", fetch_response(), 16);
}

/// Three members join a classic group and sync: the coordinator's work for one rebalance.
fn join_round(c: &mut Criterion) {
    let config = GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    };
    let join = |member_id: &str| JoinGroupRequest {
        group_id: "bench".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        member_id: member_id.into(),
        protocol_type: "consumer".into(),
        protocols: vec![join_group_request::JoinGroupRequestProtocol {
            name: "range".into(),
            metadata: Bytes::from_static(b"\x00\x03\x00\x00\x00\x01\x00\x06events\xff\xff\xff\xff"),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut group = c.benchmark_group("group_coordinator");
    group.bench_function("join_sync_round_3_members", |b| {
        b.iter(|| {
            let mut shard = GroupCoordinatorShard::new(config.clone(), 0);
            let now = 1_000_000;
            let mut ids = Vec::new();
            let mut request = 0u64;
            // v4+: the first join only learns its member id.
            for _ in 0..3 {
                request += 1;
                for (_, reply) in shard
                    .join_group(request, &join(""), 9, "client", "/127.0.0.1", now)
                    .replies
                {
                    if let Reply::Join(r) = reply {
                        ids.push(r.member_id);
                    }
                }
            }
            let mut generation = 0;
            let mut leader = String::new();
            for id in &ids {
                request += 1;
                let effects = shard.join_group(request, &join(id), 9, "client", "/127.0.0.1", now);
                for r in &effects.records {
                    shard.replay(r, now);
                }
                for (_, reply) in effects.replies {
                    if let Reply::Join(r) = reply {
                        generation = r.generation_id;
                        leader = r.leader;
                    }
                }
            }
            assert_eq!(generation, 1, "one rebalance");
            for id in &ids {
                request += 1;
                let sync = SyncGroupRequest {
                    group_id: "bench".into(),
                    generation_id: generation,
                    member_id: id.clone(),
                    assignments: if *id == leader {
                        ids.iter()
                            .map(|m| sync_group_request::SyncGroupRequestAssignment {
                                member_id: m.clone(),
                                assignment: Bytes::from_static(b"\x00\x03\x00\x00\x00\x01"),
                                ..Default::default()
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                };
                let effects = shard.sync_group(request, &sync, 5, now);
                for r in &effects.records {
                    shard.replay(r, now);
                }
            }
            black_box(shard)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = codec, join_round
}
criterion_main!(benches);
