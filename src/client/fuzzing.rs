//! The entry point of the `client_response` fuzz target: a hostile or broken broker. The
//! client decodes whatever comes back through the same functions its connections use,
//! then does with it what it would: metadata lookups, fetched records, a classic group's
//! assignment. Nothing may panic, and a consumer's position never moves backwards.

use bytes::Bytes;

use super::connection::decode_response;
use super::consumer::partition_records;
use super::group::decode_assignment;
use super::ClusterMetadata;
use crate::protocol::codec::Message;
use crate::protocol::messages::*;

/// The correlation id every fuzzed response is checked against.
pub const CORRELATION_ID: i32 = 7;

/// Byte 0 picks the response, byte 1 its version (folded into the range the client
/// sends), the rest is the frame's body: header, then response.
pub fn hostile_response(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let body = Bytes::copy_from_slice(&data[2..]);
    let pick = |lo: i16, hi: i16| lo + (data[1] as i16).rem_euclid(hi - lo + 1);
    match data[0] % 8 {
        0 => {
            let Ok(response) = decode::<MetadataRequest, MetadataResponse>(body, pick(0, 12)) else {
                return;
            };
            let metadata = ClusterMetadata::from_response(&response);
            for (topic, partitions) in &metadata.topics {
                for partition in partitions.keys() {
                    let _ = metadata.leader_address(topic, *partition);
                }
            }
        }
        1 => {
            let Ok(response) = decode::<FetchRequest, FetchResponse>(body, pick(4, 16)) else {
                return;
            };
            let mut scratch = Vec::new();
            for topic in &response.responses {
                for p in &topic.partitions {
                    let records = p.records.clone().unwrap_or_default();
                    // Any position: the one the client asked from is not in the response.
                    let position = p.log_start_offset;
                    let Ok((out, next)) = partition_records(
                        &topic.topic.as_str().into(),
                        p.partition_index,
                        position,
                        &records,
                        &mut scratch,
                    ) else {
                        continue;
                    };
                    assert!(next >= position, "the position moved back from {position} to {next}");
                    let mut last: Option<i64> = None;
                    for r in &out {
                        assert!(
                            r.offset >= position && last.is_none_or(|l| r.offset > l) && r.offset < next,
                            "offset {} after {last:?}, from {position}, next {next}",
                            r.offset
                        );
                        last = Some(r.offset);
                    }
                }
            }
        }
        2 => {
            let _ = decode::<ProduceRequest, ProduceResponse>(body, pick(3, 11));
        }
        3 => {
            if let Ok(response) = decode::<SyncGroupRequest, SyncGroupResponse>(body, pick(0, 5)) {
                let _ = decode_assignment(&response.assignment);
            }
        }
        4 => {
            let _ = decode_assignment(&body);
        }
        5 => {
            let _ = decode::<ApiVersionsRequest, ApiVersionsResponse>(body, pick(0, 4));
        }
        6 => {
            let _ = decode::<JoinGroupRequest, JoinGroupResponse>(body, pick(0, 9));
        }
        _ => {
            let _ = decode::<ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse>(body, 1);
        }
    }
}

fn decode<Req: Message, Resp: Message>(body: Bytes, version: i16) -> Result<Resp, super::ClientError> {
    decode_response::<Req, Resp>(body, version, CORRELATION_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Compression, RecordBatchBuilder};
    use bytes::{BufMut, BytesMut};

    /// A fetch response whose partition holds a real batch, then the same with the batch
    /// cut anywhere and with any byte flipped: nothing panics, and the whole one yields
    /// its records.
    #[test]
    fn hostile_fetch_responses_do_not_panic() {
        let mut builder = RecordBatchBuilder::new(Compression::None);
        for value in [b"a", b"b", b"c"] {
            builder.append(1_000, None, Some(value), &[]);
        }
        let mut batch = builder.build();
        crate::record::set_base_offset(&mut batch, 5);
        let frame = fetch_frame(batch.freeze(), 6);
        let decoded: FetchResponse = decode::<FetchRequest, FetchResponse>(frame.slice(2..), 12).unwrap();
        let records = decoded.responses[0].partitions[0].records.clone().unwrap();
        let (out, next) = partition_records(&"t".into(), 0, 6, &records, &mut Vec::new()).unwrap();
        assert_eq!(out.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![6, 7]);
        assert_eq!(next, 8);
        for cut in 0..frame.len() {
            hostile_response(&frame[..cut]);
        }
        for i in 2..frame.len() {
            let mut bad = frame.to_vec();
            bad[i] ^= 0x5a;
            hostile_response(&bad);
        }
    }

    /// Offsets at the ends of the range, in the batch and in the partition's log start
    /// offset (the fuzzer's first find once overflow checks were on, as in the broker's
    /// release build): nothing overflows.
    #[test]
    fn hostile_offsets_at_the_ends_of_the_range_do_not_overflow() {
        for base in [0, i64::MAX - 2, i64::MAX, i64::MIN, -1] {
            for log_start_offset in [i64::MIN, -1, 0, i64::MAX - 1, i64::MAX] {
                let mut builder = RecordBatchBuilder::new(Compression::None);
                for value in [b"a", b"b", b"c"] {
                    builder.append(1_000, None, Some(value), &[]);
                }
                let mut batch = builder.build();
                crate::record::set_base_offset(&mut batch, base);
                hostile_response(&fetch_frame(batch.freeze(), log_start_offset));
            }
        }
    }

    /// A Fetch v12 response frame for the fuzz target (selector, version, header, body)
    /// with one partition holding `batch`.
    fn fetch_frame(batch: Bytes, log_start_offset: i64) -> Bytes {
        let response = FetchResponse {
            responses: vec![fetch_response::FetchableTopicResponse {
                topic: "t".into(),
                partitions: vec![fetch_response::PartitionData {
                    partition_index: 0,
                    log_start_offset,
                    records: Some(batch),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut w = BytesMut::new();
        w.put_u8(1);
        w.put_u8(12 - 4); // Fetch v12, the first flexible version
        ResponseHeader {
            correlation_id: CORRELATION_ID,
            ..Default::default()
        }
        .encode(&mut w, 1)
        .unwrap();
        response.encode(&mut w, 12).unwrap();
        w.freeze()
    }
}
