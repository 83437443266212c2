//! Metadata records and their encoding in the values of the metadata log's records.
//!
//! Layout: a record type byte, a version byte (0), then the fields: integers big-endian,
//! strings as an i16 length and UTF-8 bytes, lists as an i32 count and their items.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::codec::{DecodeError, Reader, Uuid};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker {
        broker_id: i32,
        broker_epoch: i64,
        host: String,
        port: i32,
    },
    Topic {
        name: String,
        topic_id: Uuid,
    },
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    /// A topic config set (`value` Some) or deleted (`None`).
    TopicConfig {
        name: String,
        key: String,
        value: Option<String>,
    },
    /// Kafka's ProducerIdsRecord: a block of producer ids went to `broker_id`;
    /// `next_producer_id` is the first id of the next block.
    ProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        next_producer_id: i64,
    },
}

const REGISTER_BROKER: u8 = 1;
const TOPIC: u8 = 2;
const PARTITION: u8 = 3;
const REMOVE_TOPIC: u8 = 4;
const TOPIC_CONFIG: u8 = 5;
const PRODUCER_IDS: u8 = 6;

pub fn encode_record(record: &MetadataRecord) -> Bytes {
    let mut w = BytesMut::new();
    match record {
        MetadataRecord::RegisterBroker {
            broker_id,
            broker_epoch,
            host,
            port,
        } => {
            w.put_u8(REGISTER_BROKER);
            w.put_u8(0);
            w.put_i32(*broker_id);
            w.put_i64(*broker_epoch);
            put_string(&mut w, host);
            w.put_i32(*port);
        }
        MetadataRecord::Topic { name, topic_id } => {
            w.put_u8(TOPIC);
            w.put_u8(0);
            put_string(&mut w, name);
            w.put_slice(&topic_id.0);
        }
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas,
            isr,
            leader,
            leader_epoch,
        } => {
            w.put_u8(PARTITION);
            w.put_u8(0);
            w.put_slice(&topic_id.0);
            w.put_i32(*partition);
            put_ints(&mut w, replicas);
            put_ints(&mut w, isr);
            w.put_i32(*leader);
            w.put_i32(*leader_epoch);
        }
        MetadataRecord::RemoveTopic { topic_id } => {
            w.put_u8(REMOVE_TOPIC);
            w.put_u8(0);
            w.put_slice(&topic_id.0);
        }
        MetadataRecord::TopicConfig { name, key, value } => {
            w.put_u8(TOPIC_CONFIG);
            w.put_u8(0);
            put_string(&mut w, name);
            put_string(&mut w, key);
            match value {
                Some(v) => {
                    w.put_u8(1);
                    put_string(&mut w, v);
                }
                None => w.put_u8(0),
            }
        }
        MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id,
        } => {
            w.put_u8(PRODUCER_IDS);
            w.put_u8(0);
            w.put_i32(*broker_id);
            w.put_i64(*broker_epoch);
            w.put_i64(*next_producer_id);
        }
    }
    w.freeze()
}

pub fn decode_record(bytes: Bytes) -> Result<MetadataRecord, DecodeError> {
    let mut r = Reader::new(bytes);
    let kind = r.read_i8()? as u8;
    let _version = r.read_i8()?;
    let record = match kind {
        REGISTER_BROKER => MetadataRecord::RegisterBroker {
            broker_id: r.read_i32()?,
            broker_epoch: r.read_i64()?,
            host: r.read_string(false, "host")?,
            port: r.read_i32()?,
        },
        TOPIC => MetadataRecord::Topic {
            name: r.read_string(false, "name")?,
            topic_id: r.read_uuid()?,
        },
        PARTITION => MetadataRecord::Partition {
            topic_id: r.read_uuid()?,
            partition: r.read_i32()?,
            replicas: read_ints(&mut r)?,
            isr: read_ints(&mut r)?,
            leader: r.read_i32()?,
            leader_epoch: r.read_i32()?,
        },
        REMOVE_TOPIC => MetadataRecord::RemoveTopic {
            topic_id: r.read_uuid()?,
        },
        TOPIC_CONFIG => {
            let name = r.read_string(false, "name")?;
            let key = r.read_string(false, "key")?;
            let value = if r.read_i8()? == 1 {
                Some(r.read_string(false, "value")?)
            } else {
                None
            };
            MetadataRecord::TopicConfig { name, key, value }
        }
        PRODUCER_IDS => MetadataRecord::ProducerIds {
            broker_id: r.read_i32()?,
            broker_epoch: r.read_i64()?,
            next_producer_id: r.read_i64()?,
        },
        other => return Err(DecodeError::BadLength(other as i64)),
    };
    r.expect_end()?;
    Ok(record)
}

fn put_string(w: &mut BytesMut, s: &str) {
    w.put_i16(s.len() as i16);
    w.put_slice(s.as_bytes());
}

fn put_ints(w: &mut BytesMut, v: &[i32]) {
    w.put_i32(v.len() as i32);
    for x in v {
        w.put_i32(*x);
    }
}

fn read_ints(r: &mut Reader) -> Result<Vec<i32>, DecodeError> {
    r.read_array(false, "ints", |r, _| r.read_i32())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let id = Uuid([7; 16]);
        let cases = [
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                broker_epoch: 5,
                host: "127.0.0.1".into(),
                port: 9092,
            },
            MetadataRecord::Topic {
                name: "events".into(),
                topic_id: id,
            },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 3,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
            },
            MetadataRecord::RemoveTopic { topic_id: id },
            MetadataRecord::TopicConfig {
                name: "events".into(),
                key: "retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::TopicConfig {
                name: "events".into(),
                key: "retention.ms".into(),
                value: None,
            },
        ];
        for record in cases {
            let bytes = encode_record(&record);
            assert_eq!(decode_record(bytes.clone()).unwrap(), record);
            for cut in 0..bytes.len() {
                assert!(decode_record(bytes.slice(..cut)).is_err());
            }
        }
    }
}
