//! The broker over real TCP on loopback, spoken to with Klamm's own codec: every advertised
//! API and version answers with a response that decodes, produce and fetch agree, bad input
//! gets the right error code or a closed connection and never harms another connection, and
//! a restart between produce and consume loses nothing.
#![cfg(not(madsim))]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use klamm::error::ErrorCode;
use klamm::io::RealStorage;
use klamm::protocol::codec::{Message, Reader, Uuid};
use klamm::protocol::messages::*;
use klamm::record::{
    self, control_batch, BatchFrames, Compression, ControlRecordType, RecordBatchBuilder, ValidationLimits,
};
use klamm::server::{serve, Broker, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Running {
    broker: Arc<Broker<RealStorage>>,
    address: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(dir: &Path, extra: &[&str]) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut overrides = vec![
        format!("log.dirs={}", dir.display()),
        format!("listeners=PLAINTEXT://{address}"),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    let (config, _) = ServerConfig::parse("", &overrides).unwrap();
    let broker = Broker::start(config, RealStorage::new("/")).await.unwrap();
    let server = tokio::spawn(serve(broker.clone(), listener));
    Running {
        broker,
        address,
        server,
    }
}

impl Running {
    async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
        self.broker.shutdown().await;
    }
}

struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    async fn connect(address: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(address).await.unwrap(),
            correlation_id: 0,
        }
    }

    async fn send<Req: Message, Resp: Message>(&mut self, request: &Req, version: i16) -> Resp {
        self.try_send(request, version)
            .await
            .unwrap_or_else(|e| panic!("{} v{version}: {e}", Req::NAME))
    }

    async fn try_send<Req: Message, Resp: Message>(&mut self, request: &Req, version: i16) -> Result<Resp, String> {
        self.correlation_id += 1;
        let flexible = version >= Req::FLEXIBLE_MIN;
        let mut w = BytesMut::new();
        w.put_i32(0);
        let header = RequestHeader {
            request_api_key: Req::API_KEY,
            request_api_version: version,
            correlation_id: self.correlation_id,
            client_id: Some("klamm-test".into()),
            ..Default::default()
        };
        header
            .encode(&mut w, if flexible { 2 } else { 1 })
            .map_err(|e| e.to_string())?;
        request.encode(&mut w, version).map_err(|e| e.to_string())?;
        let size = (w.len() - 4) as i32;
        w[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&w).await.map_err(|e| e.to_string())?;
        let frame = self.read_frame().await?;
        let mut r = Reader::new(frame);
        let header_version = if flexible && Req::API_KEY != ApiVersionsRequest::API_KEY {
            1
        } else {
            0
        };
        let header = ResponseHeader::decode(&mut r, header_version).map_err(|e| e.to_string())?;
        if header.correlation_id != self.correlation_id {
            return Err(format!(
                "correlation id {} for request {}",
                header.correlation_id, self.correlation_id
            ));
        }
        let response = Resp::decode(&mut r, version).map_err(|e| e.to_string())?;
        r.expect_end().map_err(|e| e.to_string())?;
        Ok(response)
    }

    async fn read_frame(&mut self) -> Result<Bytes, String> {
        let mut size = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut size))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| format!("connection closed: {e}"))?;
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).await.map_err(|e| e.to_string())?;
        Ok(frame.into())
    }

    /// Whether the broker closed the connection (a read ends) within a few seconds.
    async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

fn batch(values: &[&str]) -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::Snappy);
    for v in values {
        b.append(
            1_700_000_000_000,
            Some(b"k"),
            Some(v.as_bytes()),
            &[("h", Some(b"1")), ("h", Some(b"2"))],
        );
    }
    b.build().freeze()
}

fn produce_request(topic: &str, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest {
        acks,
        timeout_ms: 5000,
        topic_data: vec![produce_request::TopicProduceData {
            name: topic.into(),
            partition_data: vec![produce_request::PartitionProduceData {
                index: 0,
                records: Some(records),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn fetch_request(topic: &str, topic_id: Uuid, offset: i64, version: i16) -> FetchRequest {
    FetchRequest {
        max_wait_ms: 100,
        min_bytes: 1,
        max_bytes: 1 << 20,
        topics: vec![fetch_request::FetchTopic {
            topic: if version < 13 { topic.into() } else { String::new() },
            topic_id: if version >= 13 { topic_id } else { Uuid::default() },
            partitions: vec![fetch_request::FetchPartition {
                partition: 0,
                fetch_offset: offset,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn values(records: &Bytes) -> Vec<String> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    let limits = ValidationLimits {
        decompressed_bytes_max: 1 << 24,
    };
    for (_, _, batch) in BatchFrames::new(records) {
        record::for_each_record(batch, &limits, &mut scratch, |_, r| {
            out.push(String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned());
            let headers: Vec<_> = r.headers().collect();
            assert_eq!(
                headers,
                vec![(&b"h"[..], Some(&b"1"[..])), (&b"h"[..], Some(&b"2"[..]))],
                "duplicate header keys kept in order"
            );
        })
        .unwrap();
    }
    out
}

async fn topic_id(client: &mut Client, topic: &str) -> Uuid {
    let request = MetadataRequest {
        topics: Some(vec![metadata_request::MetadataRequestTopic {
            name: Some(topic.into()),
            ..Default::default()
        }]),
        allow_auto_topic_creation: true,
        ..Default::default()
    };
    let response: MetadataResponse = client.send(&request, 12).await;
    assert_eq!(response.topics[0].error_code, 0);
    response.topics[0].topic_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_in_every_version_and_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &[]).await;
    let mut client = Client::connect(running.address).await;
    for version in 0..=4 {
        let response: ApiVersionsResponse = client.send(&ApiVersionsRequest::default(), version).await;
        assert_eq!(response.error_code, 0);
        let produce = response.api_keys.iter().find(|k| k.api_key == 0).unwrap();
        assert_eq!(
            (produce.min_version, produce.max_version),
            (0, 11),
            "Produce advertises 0 for librdkafka (KAFKA-18659)"
        );
    }
    // v5 is unknown: the answer comes in v0's format, listing what the broker supports.
    let mut w = BytesMut::new();
    w.put_i32(0);
    RequestHeader {
        request_api_key: 18,
        request_api_version: 5,
        correlation_id: 77,
        client_id: Some("x".into()),
        ..Default::default()
    }
    .encode(&mut w, 2)
    .unwrap();
    w.put_slice(&[0, 0, 0]);
    let size = (w.len() - 4) as i32;
    w[..4].copy_from_slice(&size.to_be_bytes());
    client.stream.write_all(&w).await.unwrap();
    let mut r = Reader::new(client.read_frame().await.unwrap());
    assert_eq!(ResponseHeader::decode(&mut r, 0).unwrap().correlation_id, 77);
    let response = ApiVersionsResponse::decode(&mut r, 0).unwrap();
    assert_eq!(response.error_code, ErrorCode::UnsupportedVersion.code());
    assert!(response.api_keys.iter().any(|k| k.api_key == 18 && k.max_version == 4));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_answers() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &[]).await;
    let mut client = Client::connect(running.address).await;
    for version in 0..=12 {
        let topic = format!("meta-{version}");
        let request = MetadataRequest {
            topics: Some(vec![metadata_request::MetadataRequestTopic {
                name: Some(topic.clone()),
                ..Default::default()
            }]),
            allow_auto_topic_creation: true,
            ..Default::default()
        };
        let response: MetadataResponse = client.send(&request, version).await;
        assert_eq!(response.topics[0].error_code, 0, "v{version} auto-creates");
        assert_eq!(response.topics[0].partitions.len(), 1);
        assert_eq!(response.brokers[0].port as u16, running.address.port());
    }
    for (name, allow, code) in [
        ("bad name!", true, ErrorCode::InvalidTopicException),
        ("absent", false, ErrorCode::UnknownTopicOrPartition),
    ] {
        let request = MetadataRequest {
            topics: Some(vec![metadata_request::MetadataRequestTopic {
                name: Some(name.into()),
                ..Default::default()
            }]),
            allow_auto_topic_creation: allow,
            ..Default::default()
        };
        let response: MetadataResponse = client.send(&request, 12).await;
        assert_eq!(response.topics[0].error_code, code.code(), "{name}");
    }
    let id = topic_id(&mut client, "versions").await;
    let mut produced = 0;
    for version in 3..=11 {
        let response: ProduceResponse = client
            .send(&produce_request("versions", batch(&["a", "b"]), -1), version)
            .await;
        let p = &response.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, produced), "Produce v{version}");
        produced += 2;
    }
    for version in 4..=16 {
        let response: FetchResponse = client.send(&fetch_request("versions", id, 0, version), version).await;
        let p = &response.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{version}");
        assert_eq!(p.high_watermark, produced);
        assert_eq!(
            values(p.records.as_ref().unwrap()).len() as i64,
            produced,
            "Fetch v{version}"
        );
    }
    for version in 1..=7 {
        let timestamps: &[i64] = if version >= 7 {
            &[-1, -2, -3, 1_700_000_000_000]
        } else {
            &[-1, -2, 1_700_000_000_000]
        };
        for &timestamp in timestamps {
            let request = ListOffsetsRequest {
                replica_id: -1,
                topics: vec![list_offsets_request::ListOffsetsTopic {
                    name: "versions".into(),
                    partitions: vec![list_offsets_request::ListOffsetsPartition {
                        partition_index: 0,
                        timestamp,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            let response: ListOffsetsResponse = client.send(&request, version).await;
            let p = &response.topics[0].partitions[0];
            let want = match timestamp {
                -1 => produced,
                _ => 0,
            };
            assert_eq!(
                (p.error_code, p.offset),
                (0, want),
                "ListOffsets v{version} at {timestamp}"
            );
        }
    }
    for version in 2..=7 {
        let request = CreateTopicsRequest {
            topics: vec![create_topics_request::CreatableTopic {
                name: format!("created-{version}"),
                num_partitions: 2,
                replication_factor: 1,
                configs: vec![create_topics_request::CreatableTopicConfig {
                    name: "retention.ms".into(),
                    value: Some("60000".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            timeout_ms: 1000,
            ..Default::default()
        };
        let response: CreateTopicsResponse = client.send(&request, version).await;
        assert_eq!(
            response.topics[0].error_code, 0,
            "CreateTopics v{version}: {:?}",
            response.topics[0].error_message
        );
        let again: CreateTopicsResponse = client.send(&request, version).await;
        assert_eq!(again.topics[0].error_code, ErrorCode::TopicAlreadyExists.code());
    }
    for version in 1..=6 {
        let name = format!("created-{}", version + 1);
        let request = if version >= 6 {
            DeleteTopicsRequest {
                topics: vec![delete_topics_request::DeleteTopicState {
                    name: Some(name),
                    ..Default::default()
                }],
                timeout_ms: 1000,
                ..Default::default()
            }
        } else {
            DeleteTopicsRequest {
                topic_names: vec![name],
                timeout_ms: 1000,
                ..Default::default()
            }
        };
        let response: DeleteTopicsResponse = client.send(&request, version).await;
        assert_eq!(response.responses[0].error_code, 0, "DeleteTopics v{version}");
        let again: DeleteTopicsResponse = client.send(&request, version).await;
        assert_eq!(
            again.responses[0].error_code,
            ErrorCode::UnknownTopicOrPartition.code(),
            "DeleteTopics v{version}"
        );
    }
    assert!(
        !dir.path().join("created-3-0").exists(),
        "a deleted topic's log directory goes"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_get_kafka_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &["message.max.bytes=2000"]).await;
    let mut client = Client::connect(running.address).await;
    topic_id(&mut client, "bad").await;
    let good = batch(&["ok"]);
    let mut bad_crc = BytesMut::from(&good[..]);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let mut magic1 = BytesMut::from(&good[..]);
    magic1[16] = 1;
    let mut two = BytesMut::from(&good[..]);
    two.extend_from_slice(&good);
    let big: String = "x".repeat(5000);
    let mut big_batch = RecordBatchBuilder::new(Compression::None);
    big_batch.append(0, None, Some(big.as_bytes()), &[]);
    let cases: Vec<(&str, Bytes, ErrorCode)> = vec![
        ("bad crc", bad_crc.freeze(), ErrorCode::CorruptMessage),
        ("magic 1", magic1.freeze(), ErrorCode::InvalidRecord),
        ("two batches", two.freeze(), ErrorCode::InvalidRecord),
        (
            "control batch",
            control_batch(ControlRecordType::Commit, 1, 0, 0, 0).freeze(),
            ErrorCode::InvalidRecord,
        ),
        ("too large", big_batch.build().freeze(), ErrorCode::MessageTooLarge),
        ("truncated", good.slice(..good.len() - 3), ErrorCode::CorruptMessage),
    ];
    for (name, records, code) in cases {
        let response: ProduceResponse = client.send(&produce_request("bad", records, 1), 9).await;
        assert_eq!(
            response.responses[0].partition_responses[0].error_code,
            code.code(),
            "{name}"
        );
    }
    let response: ProduceResponse = client
        .send(&produce_request("missing-topic", batch(&["x"]), 1), 9)
        .await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    let response: ProduceResponse = client.send(&produce_request("bad", batch(&["x"]), 2), 9).await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ErrorCode::InvalidRequiredAcks.code()
    );
    let response: FetchResponse = client.send(&fetch_request("bad", Uuid::default(), 99, 12), 12).await;
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        ErrorCode::OffsetOutOfRange.code()
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &["socket.request.max.bytes=100000"]).await;
    let mut bystander = Client::connect(running.address).await;
    topic_id(&mut bystander, "calm").await;
    let header = |key: i16, version: i16| {
        let mut w = BytesMut::new();
        w.put_i16(key);
        w.put_i16(version);
        w.put_i32(1);
        w.put_i16(-1);
        w
    };
    let frame = |body: BytesMut| {
        let mut w = BytesMut::new();
        w.put_i32(body.len() as i32);
        w.extend_from_slice(&body);
        w.freeze()
    };
    let mut oversized = BytesMut::new();
    oversized.put_i32(200_000);
    let mut negative = BytesMut::new();
    negative.put_i32(-5);
    let mut garbage_metadata = header(3, 9);
    garbage_metadata.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let cases: Vec<(&str, Bytes)> = vec![
        ("oversized frame", oversized.freeze()),
        ("negative frame size", negative.freeze()),
        ("tiny frame", frame(BytesMut::from(&[0u8, 1][..]))),
        ("unknown api key", frame(header(999, 0))),
        ("api not advertised", frame(header(10, 0))),
        ("produce v2", frame(header(0, 2))),
        ("fetch v17", frame(header(1, 17))),
        ("metadata with a lying array length", frame(garbage_metadata)),
        (
            "truncated header",
            frame(BytesMut::from(&[0u8, 3, 0, 9, 0, 0, 0, 1, 0][..])),
        ),
    ];
    for (name, bytes) in cases {
        let mut client = Client::connect(running.address).await;
        client.stream.write_all(&bytes).await.unwrap();
        assert!(client.closed().await, "{name}: the connection closes");
        let response: ApiVersionsResponse = bystander.send(&ApiVersionsRequest::default(), 3).await;
        assert_eq!(response.error_code, 0, "{name}: other connections carry on");
    }
    // A frame that stops halfway: the broker waits, then the client goes; nothing breaks.
    let mut client = Client::connect(running.address).await;
    client.stream.write_all(&[0, 0, 0, 50, 0, 3]).await.unwrap();
    drop(client);
    let response: ApiVersionsResponse = bystander.send(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(response.error_code, 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &[]).await;
    let mut client = Client::connect(running.address).await;
    topic_id(&mut client, "pipe").await;
    let mut w = BytesMut::new();
    for i in 0..20 {
        let start = w.len();
        w.put_i32(0);
        RequestHeader {
            request_api_key: 0,
            request_api_version: 9,
            correlation_id: 1000 + i,
            client_id: Some("p".into()),
            ..Default::default()
        }
        .encode(&mut w, 2)
        .unwrap();
        produce_request("pipe", batch(&[&format!("m{i}")]), 1)
            .encode(&mut w, 9)
            .unwrap();
        let size = (w.len() - start - 4) as i32;
        w[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }
    client.stream.write_all(&w).await.unwrap();
    for i in 0..20 {
        let mut r = Reader::new(client.read_frame().await.unwrap());
        assert_eq!(ResponseHeader::decode(&mut r, 1).unwrap().correlation_id, 1000 + i);
        let response = ProduceResponse::decode(&mut r, 9).unwrap();
        assert_eq!(response.responses[0].partition_responses[0].base_offset, i as i64);
    }
    running.stop().await;
}

/// Fetch sends records from the segment files (sendfile on the real disk): a response with
/// partitions that have data, none, or an error, in every version, must frame and decode
/// whole, with each partition's own records, also when a partition's batches span segments
/// and a byte limit cuts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_fetch_splices_records_into_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &[]).await;
    let mut client = Client::connect(running.address).await;
    let create = CreateTopicsRequest {
        topics: vec![create_topics_request::CreatableTopic {
            name: "spliced".into(),
            num_partitions: 3,
            replication_factor: 1,
            configs: vec![create_topics_request::CreatableTopicConfig {
                name: "segment.bytes".into(),
                value: Some("2000".into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        timeout_ms: 1000,
        ..Default::default()
    };
    let response: CreateTopicsResponse = client.send(&create, 7).await;
    assert_eq!(response.topics[0].error_code, 0);
    let id = topic_id(&mut client, "spliced").await;
    // Partition 0 gets 12 batches over several segments, partition 1 none, partition 2 one.
    let mut want: Vec<Vec<String>> = vec![vec![], vec![], vec![]];
    for (partition, count) in [(0, 12), (2, 1)] {
        for i in 0..count {
            // Digits that do not repeat, so that snappy leaves them about their size.
            let digits: String = (0..300u64)
                .map(|j| char::from(b'a' + ((j * 7919 + i * 104_729 + partition as u64 * 31) % 251 % 26) as u8))
                .collect();
            let value = format!("p{partition}-{i}-{digits}");
            let mut request = produce_request("spliced", batch(&[&value]), -1);
            request.topic_data[0].partition_data[0].index = partition;
            let response: ProduceResponse = client.send(&request, 9).await;
            assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
            want[partition as usize].push(value);
        }
    }
    for version in 4..=16 {
        for max_bytes in [1 << 20, 1000] {
            let mut request = fetch_request("spliced", id, 0, version);
            request.min_bytes = 0;
            request.max_bytes = max_bytes;
            let partition = request.topics[0].partitions[0].clone();
            request.topics[0].partitions = [0, 1, 7, 2]
                .into_iter()
                .map(|index| fetch_request::FetchPartition {
                    partition: index,
                    ..partition.clone()
                })
                .collect();
            let mut unknown = request.topics[0].clone();
            unknown.topic = if version < 13 { "nowhere".into() } else { String::new() };
            unknown.topic_id = if version >= 13 { Uuid([7; 16]) } else { Uuid::default() };
            request.topics.push(unknown);
            let response: FetchResponse = client.send(&request, version).await;
            let what = format!("Fetch v{version}, max_bytes {max_bytes}");
            let [topic, nowhere] = &response.responses[..] else {
                panic!("{what}: {response:?}");
            };
            let got: Vec<(i32, i16, Vec<String>)> = topic
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code, values(p.records.as_ref().unwrap())))
                .collect();
            let unknown_code = if version >= 13 {
                ErrorCode::UnknownTopicId.code()
            } else {
                ErrorCode::UnknownTopicOrPartition.code()
            };
            assert!(
                nowhere.partitions.iter().all(|p| p.error_code == unknown_code),
                "{what}"
            );
            // The first partition's first segment (or less, within the byte limit).
            let first = &got[0].2;
            assert!(!first.is_empty() && want[0].starts_with(first), "{what}: {first:?}");
            assert!(first.len() < want[0].len(), "{what}: one segment of several");
            assert_eq!((got[1].0, got[1].1, got[1].2.len()), (1, 0, 0), "{what}");
            assert_eq!(
                (got[2].0, got[2].1),
                (7, ErrorCode::UnknownTopicOrPartition.code()),
                "{what}"
            );
            assert_eq!((got[3].0, got[3].1), (2, 0), "{what}");
            assert!(want[2].starts_with(&got[3].2), "{what}");
            let sent: usize = topic.partitions.iter().map(|p| p.records.as_ref().unwrap().len()).sum();
            if max_bytes == 1 << 20 {
                assert_eq!(got[3].2, want[2], "{what}");
            } else {
                assert!(sent <= 1000, "{what}: {sent} bytes");
            }
        }
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_fetch_wakes_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &[]).await;
    let mut consumer = Client::connect(running.address).await;
    let mut producer = Client::connect(running.address).await;
    let id = topic_id(&mut consumer, "poll").await;
    let mut request = fetch_request("poll", id, 0, 12);
    request.max_wait_ms = 20_000;
    let fetch = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let response: FetchResponse = consumer.send(&request, 12).await;
        (response, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _: ProduceResponse = producer.send(&produce_request("poll", batch(&["wake"]), 1), 9).await;
    let (response, waited) = fetch.await.unwrap();
    assert_eq!(
        values(response.responses[0].partitions[0].records.as_ref().unwrap()),
        vec!["wake"]
    );
    assert!(
        waited < Duration::from_secs(15),
        "the append woke the fetch ({waited:?})"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_produce_and_consume_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &["num.partitions=1"]).await;
    let mut client = Client::connect(running.address).await;
    let id = topic_id(&mut client, "durable").await;
    for i in 0..50 {
        let response: ProduceResponse = client
            .send(&produce_request("durable", batch(&[&format!("r{i}")]), -1), 9)
            .await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    running.stop().await;
    let running = start(dir.path(), &[]).await;
    let mut client = Client::connect(running.address).await;
    assert_eq!(topic_id(&mut client, "durable").await, id, "the topic id survives");
    let response: FetchResponse = client.send(&fetch_request("durable", id, 0, 13), 13).await;
    let got = values(response.responses[0].partitions[0].records.as_ref().unwrap());
    assert_eq!(got, (0..50).map(|i| format!("r{i}")).collect::<Vec<_>>());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_apis_in_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &["log.retention.hours=24"]).await;
    let mut client = Client::connect(running.address).await;
    let create = CreateTopicsRequest {
        topics: vec![create_topics_request::CreatableTopic {
            name: "admin".into(),
            num_partitions: 1,
            replication_factor: 1,
            configs: vec![create_topics_request::CreatableTopicConfig {
                name: "segment.bytes".into(),
                value: Some("1048576".into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        timeout_ms: 1000,
        ..Default::default()
    };
    let created: CreateTopicsResponse = client.send(&create, 7).await;
    assert_eq!(created.topics[0].error_code, 0);
    for i in 0..10 {
        let _: ProduceResponse = client
            .send(&produce_request("admin", batch(&[&format!("a{i}")]), 1), 9)
            .await;
    }
    for version in 1..=4 {
        let request = DescribeConfigsRequest {
            resources: vec![
                describe_configs_request::DescribeConfigsResource {
                    resource_type: 2,
                    resource_name: "admin".into(),
                    configuration_keys: None,
                    ..Default::default()
                },
                describe_configs_request::DescribeConfigsResource {
                    resource_type: 4,
                    resource_name: "1".into(),
                    configuration_keys: Some(vec!["num.partitions".into()]),
                    ..Default::default()
                },
                describe_configs_request::DescribeConfigsResource {
                    resource_type: 2,
                    resource_name: "nope".into(),
                    configuration_keys: None,
                    ..Default::default()
                },
            ],
            include_synonyms: true,
            ..Default::default()
        };
        let response: DescribeConfigsResponse = client.send(&request, version).await;
        let topic = &response.results[0];
        assert_eq!(topic.error_code, 0);
        let get = |name: &str| topic.configs.iter().find(|c| c.name == name).unwrap();
        assert_eq!(
            (
                get("segment.bytes").value.as_deref(),
                get("segment.bytes").config_source
            ),
            (Some("1048576"), 1),
            "v{version}: a topic override"
        );
        assert_eq!(
            (get("retention.ms").value.as_deref(), get("retention.ms").config_source),
            (Some("86400000"), 4),
            "v{version}: from server properties"
        );
        assert_eq!(
            (
                get("cleanup.policy").value.as_deref(),
                get("cleanup.policy").config_source
            ),
            (Some("delete"), 5),
            "v{version}: a default"
        );
        assert_eq!(
            get("segment.bytes")
                .synonyms
                .iter()
                .map(|s| s.source)
                .collect::<Vec<_>>(),
            vec![1, 5],
            "v{version}: synonyms, most specific first"
        );
        assert_eq!(response.results[1].configs.len(), 1);
        assert_eq!(response.results[1].configs[0].value.as_deref(), Some("1"));
        assert_eq!(
            response.results[2].error_code,
            ErrorCode::UnknownTopicOrPartition.code()
        );
    }
    for version in 2..=4 {
        let request = OffsetForLeaderEpochRequest {
            replica_id: -1,
            topics: vec![offset_for_leader_epoch_request::OffsetForLeaderTopic {
                topic: "admin".into(),
                partitions: vec![offset_for_leader_epoch_request::OffsetForLeaderPartition {
                    partition: 0,
                    current_leader_epoch: 0,
                    leader_epoch: 0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let response: OffsetForLeaderEpochResponse = client.send(&request, version).await;
        let p = &response.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.leader_epoch, p.end_offset),
            (0, 0, 10),
            "OffsetForLeaderEpoch v{version}"
        );
    }
    for version in 0..=1 {
        let response: DescribeClusterResponse = client
            .send(
                &DescribeClusterRequest {
                    endpoint_type: 1,
                    ..Default::default()
                },
                version,
            )
            .await;
        assert_eq!(
            (response.error_code, response.controller_id, response.brokers.len()),
            (0, 1, 1)
        );
        assert_eq!(response.cluster_id, running.broker.cluster_id);
    }
    for version in 0..=3 {
        let request = CreatePartitionsRequest {
            topics: vec![create_partitions_request::CreatePartitionsTopic {
                name: "admin".into(),
                count: 2 + version as i32,
                assignments: None,
                ..Default::default()
            }],
            timeout_ms: 1000,
            ..Default::default()
        };
        let response: CreatePartitionsResponse = client.send(&request, version).await;
        assert_eq!(
            response.results[0].error_code, 0,
            "CreatePartitions v{version}: {:?}",
            response.results[0].error_message
        );
        let again: CreatePartitionsResponse = client.send(&request, version).await;
        assert_eq!(again.results[0].error_code, ErrorCode::InvalidPartitions.code());
    }
    assert!(
        running.broker.replicas.partition("admin", 4).is_some(),
        "the new partitions have logs"
    );
    for version in 0..=2 {
        let request = DeleteRecordsRequest {
            topics: vec![delete_records_request::DeleteRecordsTopic {
                name: "admin".into(),
                partitions: vec![delete_records_request::DeleteRecordsPartition {
                    partition_index: 0,
                    offset: 3 + version as i64,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            timeout_ms: 1000,
            ..Default::default()
        };
        let response: DeleteRecordsResponse = client.send(&request, version).await;
        let p = &response.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.low_watermark),
            (0, 3 + version as i64),
            "DeleteRecords v{version}"
        );
    }
    let response: FetchResponse = client.send(&fetch_request("admin", Uuid::default(), 0, 12), 12).await;
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        ErrorCode::OffsetOutOfRange.code(),
        "deleted records are gone"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_configs_change_live() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &[]).await;
    let mut client = Client::connect(running.address).await;
    topic_id(&mut client, "cfg").await;
    let live = || running.broker.replicas.partition("cfg", 0).unwrap().log.config();
    let incremental = |name: &str, op: i8, value: Option<&str>| IncrementalAlterConfigsRequest {
        resources: vec![incremental_alter_configs_request::AlterConfigsResource {
            resource_type: 2,
            resource_name: "cfg".into(),
            configs: vec![incremental_alter_configs_request::AlterableConfig {
                name: name.into(),
                config_operation: op,
                value: value.map(str::to_string),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    for version in 0..=1 {
        let response: IncrementalAlterConfigsResponse = client
            .send(&incremental("retention.ms", 0, Some("12345")), version)
            .await;
        assert_eq!(
            response.responses[0].error_code, 0,
            "{:?}",
            response.responses[0].error_message
        );
        assert_eq!(
            live().retention_ms,
            12345,
            "IncrementalAlterConfigs v{version} reaches the live log"
        );
        let response: IncrementalAlterConfigsResponse =
            client.send(&incremental("retention.ms", 1, None), version).await;
        assert_eq!(response.responses[0].error_code, 0);
        assert_eq!(
            live().retention_ms,
            604_800_000,
            "deleting the override restores the broker default"
        );
        let cases: [(&str, i8, Option<&str>); 4] = [
            ("retention.ms", 0, Some("soon")),
            ("no.such.key", 0, Some("1")),
            ("cleanup.policy", 0, Some("shred")),
            ("retention.ms", 2, Some("1")),
        ];
        for (name, op, value) in cases {
            let response: IncrementalAlterConfigsResponse = client.send(&incremental(name, op, value), version).await;
            assert_eq!(
                response.responses[0].error_code,
                ErrorCode::InvalidConfig.code(),
                "{name} op {op}"
            );
        }
    }
    for version in 0..=2 {
        let request = AlterConfigsRequest {
            resources: vec![
                alter_configs_request::AlterConfigsResource {
                    resource_type: 2,
                    resource_name: "cfg".into(),
                    configs: vec![alter_configs_request::AlterableConfig {
                        name: "segment.bytes".into(),
                        value: Some(format!("{}", 1_000_000 + version as i32)),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                alter_configs_request::AlterConfigsResource {
                    resource_type: 4,
                    resource_name: "1".into(),
                    configs: vec![],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let response: AlterConfigsResponse = client.send(&request, version).await;
        assert_eq!(response.responses[0].error_code, 0);
        assert_eq!(
            response.responses[1].error_code,
            ErrorCode::InvalidRequest.code(),
            "broker configs are static"
        );
        assert_eq!(live().segment_bytes, 1_000_000 + version as u64);
    }
    // Overrides survive a restart: they are metadata records.
    running.stop().await;
    let running = start(dir.path(), &[]).await;
    assert_eq!(
        running
            .broker
            .replicas
            .partition("cfg", 0)
            .unwrap()
            .log
            .config()
            .segment_bytes,
        1_000_002
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &["connections.max.idle.ms=300"]).await;
    let mut silent = Client::connect(running.address).await;
    assert!(
        silent.closed().await,
        "a silent connection closes after connections.max.idle.ms"
    );
    let mut stalled = Client::connect(running.address).await;
    stalled.stream.write_all(&[0, 0, 0, 50, 0, 18]).await.unwrap();
    assert!(
        stalled.closed().await,
        "a frame that stops halfway closes after connections.max.idle.ms"
    );
    let mut active = Client::connect(running.address).await;
    for _ in 0..3 {
        let response: ApiVersionsResponse = active.send(&ApiVersionsRequest::default(), 3).await;
        assert_eq!(response.error_code, 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await;
}

fn idempotent_batch(values: &[&str], producer_id: i64, epoch: i16, sequence: i32) -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None).producer(producer_id, epoch, sequence);
    for v in values {
        b.append(
            1_700_000_000_000,
            None,
            Some(v.as_bytes()),
            &[("h", Some(b"1")), ("h", Some(b"2"))],
        );
    }
    b.build().freeze()
}

async fn init_producer_id(client: &mut Client, producer_id: i64, epoch: i16, version: i16) -> (i16, i64, i16) {
    let request = InitProducerIdRequest {
        transactional_id: None,
        transaction_timeout_ms: 60_000,
        producer_id,
        producer_epoch: epoch,
        ..Default::default()
    };
    let response: InitProducerIdResponse = client.send(&request, version).await;
    (response.error_code, response.producer_id, response.producer_epoch)
}

/// Produce of one idempotent batch: (error code, base offset).
async fn produce_idempotent(client: &mut Client, topic: &str, records: Bytes) -> (i16, i64) {
    let response: ProduceResponse = client.send(&produce_request(topic, records, -1), 9).await;
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_produce_writes_each_batch_once_across_restarts() {
    const OUT_OF_ORDER: i16 = 45;
    const FENCED: i16 = 47;
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &["num.partitions=1", "log.segment.bytes=300"]).await;
    let mut client = Client::connect(running.address).await;
    let id = topic_id(&mut client, "idem").await;
    for version in 0..=4 {
        let (error, pid, epoch) = init_producer_id(&mut client, -1, -1, version).await;
        assert_eq!((error, epoch), (0, 0), "v{version}");
        assert!(pid >= 0);
    }
    let (_, pid, _) = init_producer_id(&mut client, -1, -1, 4).await;
    let (_, other, _) = init_producer_id(&mut client, -1, -1, 4).await;
    assert_ne!(pid, other, "ids are never handed out twice");
    // Sequences 0.., then a retry of the last batch, a gap, a stale epoch.
    let cases: &[(&str, &[&str], i16, i32, (i16, i64))] = &[
        ("first", &["a0", "a1"], 0, 0, (0, 0)),
        ("next", &["a2"], 0, 2, (0, 2)),
        ("retry of the last", &["a2"], 0, 2, (0, 2)),
        ("retry of the first", &["a0", "a1"], 0, 0, (0, 0)),
        ("gap", &["a9"], 0, 9, (OUT_OF_ORDER, -1)),
        ("new epoch not at 0", &["b0"], 1, 3, (OUT_OF_ORDER, -1)),
        ("new epoch at 0", &["b0"], 1, 0, (0, 3)),
        ("stale epoch", &["a3"], 0, 3, (FENCED, -1)),
    ];
    for (name, values, epoch, sequence, want) in cases {
        let got = produce_idempotent(&mut client, "idem", idempotent_batch(values, pid, *epoch, *sequence)).await;
        assert_eq!(got, *want, "{name}");
    }
    // KIP-360: a bump with the current id and epoch keeps the id.
    assert_eq!(init_producer_id(&mut client, pid, 1, 4).await, (0, pid, 2));
    assert_eq!(
        produce_idempotent(&mut client, "idem", idempotent_batch(&["c0"], pid, 2, 0)).await,
        (0, 4)
    );
    running.stop().await;

    // After a clean restart the window survives (the snapshot written at shutdown).
    let running = start(dir.path(), &[]).await;
    let mut client = Client::connect(running.address).await;
    assert_eq!(
        produce_idempotent(&mut client, "idem", idempotent_batch(&["c0"], pid, 2, 0)).await,
        (0, 4),
        "a retry after a restart is still a duplicate"
    );
    assert_eq!(
        produce_idempotent(&mut client, "idem", idempotent_batch(&["c1"], pid, 2, 1)).await,
        (0, 5)
    );
    let (_, next_pid, _) = init_producer_id(&mut client, -1, -1, 4).await;
    assert!(next_pid > other, "a restart never hands out an id again");
    // One fetch answers from one segment; the log rolled every few batches.
    let mut got = Vec::new();
    for _ in 0..10 {
        let response: FetchResponse = client.send(&fetch_request("idem", id, got.len() as i64, 13), 13).await;
        got.extend(values(response.responses[0].partitions[0].records.as_ref().unwrap()));
    }
    assert_eq!(got, ["a0", "a1", "a2", "b0", "c0", "c1"].map(String::from).to_vec());
    running.broker.replicas.partition("idem", 0).unwrap();
    // A stop without the shutdown's snapshot (kill -9): recovery replays the log.
    running.server.abort();
    drop(running.broker);
    let running = start(dir.path(), &[]).await;
    let mut client = Client::connect(running.address).await;
    assert_eq!(
        produce_idempotent(&mut client, "idem", idempotent_batch(&["c1"], pid, 2, 1)).await,
        (0, 5),
        "a retry after a crash is still a duplicate"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_listener_closes_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &[]).await;
    let mut client = Client::connect(running.address).await;
    let _: ApiVersionsResponse = client.send(&ApiVersionsRequest::default(), 0).await;
    running.server.abort();
    assert!(client.closed().await, "a connection outlived its listener");
    running.broker.shutdown().await;
}
