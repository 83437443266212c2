//! The consumer by assignment: `assign`, `seek`, `poll`. Positions start from
//! `auto.offset.reset` (earliest or latest) through ListOffsets. Consumer groups and
//! committed offsets arrive with the group coordinator.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{bootstrap, fetch_metadata, ClientConfig, ClientError, ClusterMetadata, Connection};
use crate::protocol::messages::{
    fetch_request, list_offsets_request, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use crate::record::{self, BatchFrames, ValidationLimits};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Shared by every record of a partition's fetched data: a record clones a pointer,
    /// not the name.
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

pub struct Consumer {
    config: ClientConfig,
    metadata: ClusterMetadata,
    connections: BTreeMap<String, Connection>,
    /// Connections that carry fetches only, one per leader, so that a fetch written ahead
    /// (`prefetched`) never stands between another request and its answer.
    fetch_connections: BTreeMap<String, Connection>,
    /// Per leader, the fetch written at the end of the last poll, answered while the
    /// application handles that poll's records.
    prefetched: BTreeMap<String, Prefetch>,
    assignment: Vec<(String, i32)>,
    positions: BTreeMap<(String, i32), i64>,
    buffered: VecDeque<ConsumerRecord>,
    earliest: bool,
    read_committed: bool,
    max_poll_records: usize,
    fetch_max_bytes: i32,
    partition_max_bytes: i32,
    fetch_min_bytes: i32,
    fetch_max_wait_ms: i32,
}

/// A fetch written ahead of the poll that reads its answer, and the positions it asked
/// from: data for a partition whose position has moved since (a seek, a new assignment)
/// is dropped.
struct Prefetch {
    correlation_id: i32,
    version: i16,
    asked: BTreeMap<(String, i32), i64>,
}

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

impl Consumer {
    pub fn new(config: ClientConfig) -> Result<Consumer, ClientError> {
        let earliest = match config.get("auto.offset.reset").unwrap_or("latest") {
            "earliest" => true,
            "latest" => false,
            other => {
                return Err(ClientError::Config(format!(
                    "invalid value {other} for auto.offset.reset"
                )))
            }
        };
        let read_committed = match config.get("isolation.level").unwrap_or("read_uncommitted") {
            "read_committed" => true,
            "read_uncommitted" => false,
            other => {
                return Err(ClientError::Config(format!(
                    "invalid value {other} for isolation.level"
                )))
            }
        };
        Ok(Consumer {
            earliest,
            read_committed,
            max_poll_records: config.get_or("max.poll.records", 500usize)?,
            fetch_max_bytes: config.get_or("fetch.max.bytes", 52_428_800i32)?,
            partition_max_bytes: config.get_or("max.partition.fetch.bytes", 1_048_576i32)?,
            fetch_min_bytes: config.get_or("fetch.min.bytes", 1i32)?,
            fetch_max_wait_ms: config.get_or("fetch.max.wait.ms", 500i32)?,
            config,
            metadata: ClusterMetadata::default(),
            connections: BTreeMap::new(),
            fetch_connections: BTreeMap::new(),
            prefetched: BTreeMap::new(),
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            buffered: VecDeque::new(),
        })
    }

    pub fn assign(&mut self, partitions: Vec<(String, i32)>) {
        self.positions.retain(|k, _| partitions.contains(k));
        self.buffered
            .retain(|r| partitions.iter().any(|(t, p)| **t == *r.topic && *p == r.partition));
        self.assignment = partitions;
    }

    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        let key = (topic.to_string(), partition);
        self.buffered.retain(|r| (&*r.topic, r.partition) != (topic, partition));
        self.positions.insert(key, offset);
    }

    /// Moves to the log start offset (`to_beginning`) or the log end.
    pub async fn seek_to(&mut self, topic: &str, partition: i32, to_beginning: bool) -> Result<i64, ClientError> {
        let offset = self
            .list_offset(topic, partition, if to_beginning { EARLIEST } else { LATEST })
            .await?;
        self.seek(topic, partition, offset);
        Ok(offset)
    }

    /// The offset of the next record `poll` returns for this partition: the first one
    /// fetched but not yet returned, or where the next fetch starts. Committing it never
    /// skips a record that was fetched and not handed out.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.buffered
            .iter()
            .find(|r| r.partition == partition && &*r.topic == topic)
            .map(|r| r.offset)
            .or_else(|| self.positions.get(&(topic.to_string(), partition)).copied())
    }

    /// Records from the assigned partitions, waiting up to `timeout` for some.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        if self.buffered.is_empty() {
            self.fetch(timeout).await?;
        }
        let n = self.buffered.len().min(self.max_poll_records);
        Ok(self.buffered.drain(..n).collect())
    }

    /// The offset ListOffsets gives for `timestamp` (-1 latest, -2 earliest, else the first
    /// record at or after it; -1 if none).
    pub async fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> Result<i64, ClientError> {
        let address = self.leader(topic, partition).await?;
        let request = ListOffsetsRequest {
            replica_id: -1,
            isolation_level: self.read_committed as i8,
            topics: vec![list_offsets_request::ListOffsetsTopic {
                name: topic.to_string(),
                partitions: vec![list_offsets_request::ListOffsetsPartition {
                    partition_index: partition,
                    timestamp,
                    current_leader_epoch: -1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let connection = self.connection(&address).await?;
        let (response, _): (ListOffsetsResponse, _) = connection.request(&request).await?;
        let p = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("empty ListOffsets answer".into()))?;
        if p.error_code != 0 {
            return Err(ClientError::Kafka(
                p.error_code,
                format!("ListOffsets {topic}-{partition}"),
            ));
        }
        Ok(p.offset)
    }

    async fn fetch(&mut self, timeout: Duration) -> Result<(), ClientError> {
        for (topic, partition) in self.assignment.clone() {
            if !self.positions.contains_key(&(topic.clone(), partition)) {
                let offset = self
                    .list_offset(&topic, partition, if self.earliest { EARLIEST } else { LATEST })
                    .await?;
                self.positions.insert((topic, partition), offset);
            }
        }
        let mut by_leader: BTreeMap<String, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, partition) in self.assignment.clone() {
            let address = self.leader(&topic, partition).await?;
            by_leader.entry(address).or_default().push((topic, partition));
        }
        let wait_ms = (timeout.as_millis() as i32).min(self.fetch_max_wait_ms);
        // A leader no longer fetched from keeps no fetch in flight.
        self.prefetched.retain(|address, _| by_leader.contains_key(address));
        self.fetch_connections
            .retain(|address, _| by_leader.contains_key(address));
        for (address, partitions) in by_leader {
            let (request, asked) = self.fetch_request(&partitions, wait_ms);
            let answered = match self.prefetched.remove(&address) {
                Some(prefetch) if prefetch.asked == asked => {
                    let connection = self
                        .fetch_connections
                        .get_mut(&address)
                        .expect("a prefetch has its connection");
                    connection
                        .receive::<FetchRequest, FetchResponse>(prefetch.correlation_id, prefetch.version)
                        .await
                        .map(|response| (response, prefetch.asked))
                }
                stale => {
                    if stale.is_some() {
                        // Asked from positions since left (a seek, a new assignment): its
                        // answer is of no use, and waiting for it could take a long poll.
                        self.fetch_connections.remove(&address);
                    }
                    match self.fetch_connection(&address).await {
                        Ok(connection) => connection
                            .request(&request)
                            .await
                            .map(|(response, _)| (response, asked)),
                        Err(e) => Err(e),
                    }
                }
            };
            let (response, asked) = match answered {
                Ok(answered) => answered,
                Err(e) => {
                    self.fetch_connections.remove(&address);
                    self.metadata = ClusterMetadata::default();
                    return Err(e);
                }
            };
            self.take_records(response, &asked).await?;
            // The next fetch goes out now: the broker answers it while the application
            // handles these records. If it cannot be written, the next poll fetches anew.
            let (request, asked) = self.fetch_request(&partitions, wait_ms);
            let connection = self.fetch_connections.get_mut(&address).expect("used above");
            match connection.send(&request).await {
                Ok((correlation_id, version)) => {
                    let prefetch = Prefetch {
                        correlation_id,
                        version,
                        asked,
                    };
                    self.prefetched.insert(address, prefetch);
                }
                Err(_) => {
                    self.fetch_connections.remove(&address);
                }
            }
        }
        Ok(())
    }

    /// A fetch of these partitions from their positions, and those positions.
    fn fetch_request(
        &self,
        partitions: &[(String, i32)],
        wait_ms: i32,
    ) -> (FetchRequest, BTreeMap<(String, i32), i64>) {
        let mut topics: BTreeMap<String, Vec<fetch_request::FetchPartition>> = BTreeMap::new();
        let mut asked = BTreeMap::new();
        for (topic, partition) in partitions {
            let Some(&fetch_offset) = self.positions.get(&(topic.clone(), *partition)) else {
                continue;
            };
            asked.insert((topic.clone(), *partition), fetch_offset);
            topics
                .entry(topic.clone())
                .or_default()
                .push(fetch_request::FetchPartition {
                    partition: *partition,
                    current_leader_epoch: -1,
                    fetch_offset,
                    last_fetched_epoch: -1,
                    log_start_offset: -1,
                    partition_max_bytes: self.partition_max_bytes,
                    ..Default::default()
                });
        }
        let request = FetchRequest {
            replica_id: -1,
            max_wait_ms: wait_ms,
            min_bytes: self.fetch_min_bytes,
            max_bytes: self.fetch_max_bytes,
            isolation_level: self.read_committed as i8,
            session_epoch: -1,
            topics: topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let topic_id = self.metadata.topic_ids.get(&topic).copied().unwrap_or_default();
                    fetch_request::FetchTopic {
                        topic,
                        topic_id,
                        partitions,
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        };
        (request, asked)
    }

    /// Takes a fetch's records for each partition still at the position the fetch asked from.
    async fn take_records(
        &mut self,
        response: FetchResponse,
        asked: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), ClientError> {
        let mut scratch = Vec::new();
        for topic in response.responses {
            // From Fetch v13 responses name topics by id only.
            let name = if topic.topic.is_empty() {
                self.metadata
                    .topic_ids
                    .iter()
                    .find(|(_, id)| **id == topic.topic_id)
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default()
            } else {
                topic.topic.clone()
            };
            for p in topic.partitions {
                let key = (name.clone(), p.partition_index);
                if asked.get(&key).is_none() || asked.get(&key) != self.positions.get(&key) {
                    // Asked from a position since left (a seek, a new assignment).
                    continue;
                }
                match p.error_code {
                    0 => {}
                    // OFFSET_OUT_OF_RANGE: start again from auto.offset.reset.
                    1 => {
                        let offset = self
                            .list_offset(&key.0, key.1, if self.earliest { EARLIEST } else { LATEST })
                            .await?;
                        self.positions.insert(key, offset);
                        continue;
                    }
                    code => return Err(ClientError::Kafka(code, format!("Fetch {}-{}", key.0, key.1))),
                }
                let Some(position) = self.positions.get(&key).copied() else {
                    continue;
                };
                let records = p.records.unwrap_or_default();
                let topic: Arc<str> = key.0.as_str().into();
                let (out, next) = partition_records(&topic, key.1, position, &records, &mut scratch)?;
                self.buffered.extend(out);
                self.positions.insert(key, next);
            }
        }
        Ok(())
    }

    async fn leader(&mut self, topic: &str, partition: i32) -> Result<String, ClientError> {
        if self.metadata.leader_address(topic, partition).is_none() {
            let mut connection = bootstrap(&self.config).await?;
            let topics: Vec<String> = self
                .assignment
                .iter()
                .map(|(t, _)| t.clone())
                .chain([topic.to_string()])
                .collect();
            let response = fetch_metadata(&mut connection, Some(&topics), false).await?;
            self.metadata = ClusterMetadata::from_response(&response);
        }
        self.metadata
            .leader_address(topic, partition)
            .map(str::to_string)
            .ok_or_else(|| ClientError::Kafka(3, format!("{topic}-{partition}")))
    }

    async fn fetch_connection(&mut self, address: &str) -> Result<&mut Connection, ClientError> {
        if !self.fetch_connections.contains_key(address) {
            let c = Connection::connect(address, &self.config.client_id(), self.config.request_timeout()?).await?;
            self.fetch_connections.insert(address.to_string(), c);
        }
        Ok(self.fetch_connections.get_mut(address).expect("inserted above"))
    }

    async fn connection(&mut self, address: &str) -> Result<&mut Connection, ClientError> {
        if !self.connections.contains_key(address) {
            let c = Connection::connect(address, &self.config.client_id(), self.config.request_timeout()?).await?;
            self.connections.insert(address.to_string(), c);
        }
        Ok(self.connections.get_mut(address).expect("inserted above"))
    }
}

/// The records of one fetched partition from `position` on, and the position after them.
/// A batch wholly before `position` is skipped (a fetch may start mid-batch); control
/// batches move the position but yield nothing. The bytes come from the broker, so a batch
/// that does not validate is an error, never a panic (the `client_response` fuzz target),
/// and the position never moves backwards.
///
/// Keys, values and header values of uncompressed batches are slices of `records`, not
/// copies; those of compressed batches are copied out of the decompressed bytes.
pub fn partition_records(
    topic: &Arc<str>,
    partition: i32,
    position: i64,
    records: &Bytes,
    scratch: &mut Vec<u8>,
) -> Result<(Vec<ConsumerRecord>, i64), ClientError> {
    let limits = ValidationLimits {
        decompressed_bytes_max: 64 << 20,
    };
    let (start, end) = (records.as_ptr() as usize, records.as_ptr() as usize + records.len());
    let bytes = |b: &[u8]| -> Bytes {
        let at = b.as_ptr() as usize;
        if !b.is_empty() && at >= start && at + b.len() <= end {
            records.slice_ref(b)
        } else {
            Bytes::copy_from_slice(b)
        }
    };
    let mut out = Vec::new();
    let mut next = position;
    for (_, header, batch) in BatchFrames::new(records) {
        if header.next_offset() <= next {
            continue;
        }
        if !header.is_control() {
            // One pass: on a batch that does not validate the whole fetch fails, and `out`
            // with it.
            record::for_each_record_validating(batch, &limits, scratch, |offset, r| {
                if offset >= next {
                    out.push(ConsumerRecord {
                        topic: topic.clone(),
                        partition,
                        offset,
                        timestamp: if header.timestamp_type() == record::TimestampType::LogAppendTime {
                            header.max_timestamp
                        } else {
                            r.timestamp
                        },
                        key: r.key.map(bytes),
                        value: r.value.map(bytes),
                        headers: r
                            .headers()
                            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.map(bytes)))
                            .collect(),
                    });
                }
            })
            .map_err(|e| ClientError::Protocol(format!("a fetched batch does not validate: {e}")))?;
        }
        next = header.next_offset();
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Compression, RecordBatchBuilder};

    #[test]
    fn fetched_values_are_slices_of_uncompressed_batches_and_copies_of_compressed_ones() {
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut builder = RecordBatchBuilder::new(codec);
            for i in 0..4u8 {
                let value = vec![b'a' + i; 100 + i as usize];
                builder.append(1_000, Some(&[i]), Some(&value), &[("h", Some(&[i, i]))]);
            }
            let records = builder.build().freeze();
            let (out, next) = partition_records(&"t".into(), 0, 1, &records, &mut Vec::new()).unwrap();
            let what = codec.name();
            assert_eq!(next, 4, "{what}");
            assert_eq!(
                out.iter().map(|r| r.offset).collect::<Vec<_>>(),
                vec![1, 2, 3],
                "{what}"
            );
            let range = records.as_ptr_range();
            for (r, i) in out.iter().zip(1u8..) {
                let value = r.value.as_ref().unwrap();
                assert_eq!(&value[..], &vec![b'a' + i; 100 + i as usize][..], "{what}");
                assert_eq!(r.key.as_deref(), Some(&[i][..]), "{what}");
                assert_eq!(
                    r.headers,
                    vec![("h".to_string(), Some(Bytes::from(vec![i, i])))],
                    "{what}"
                );
                let inside = range.contains(&value.as_ptr());
                assert_eq!(
                    inside,
                    codec == Compression::None,
                    "{what}: a slice of the fetched bytes"
                );
            }
        }
    }
}
