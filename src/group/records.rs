//! The records of `__consumer_offsets`, as the group coordinator writes and replays them.
//! A record's key says what it is about (a versioned key, as in Kafka: 1 an offset commit, 2
//! a classic group, 3 a consumer group's epoch, 5 a consumer group member); its value is
//! the state, or absent (a tombstone) when the thing is gone.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::codec::{self, DecodeError, Reader, Uuid};

/// A committed offset of one partition.
#[derive(Clone, Debug, PartialEq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// A classic group as its leader's SyncGroup (or its emptying) left it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A KIP-848 member: its subscription and its current assignment.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerMemberValue {
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    /// A KIP-848 regex subscription (RE2 syntax, matching whole topic names).
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Partitions the member may use.
    pub assigned: Vec<(Uuid, Vec<i32>)>,
    /// Partitions the member must give up before anyone else gets them.
    pub revoking: Vec<(Uuid, Vec<i32>)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum GroupRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetAndMetadata>,
    },
    ClassicGroup {
        group: String,
        value: Option<GroupMetadataValue>,
    },
    ConsumerGroupEpoch {
        group: String,
        epoch: Option<i32>,
    },
    ConsumerMember {
        group: String,
        member_id: String,
        value: Option<ConsumerMemberValue>,
    },
}

impl GroupRecord {
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::Offset { group, .. }
            | GroupRecord::ClassicGroup { group, .. }
            | GroupRecord::ConsumerGroupEpoch { group, .. }
            | GroupRecord::ConsumerMember { group, .. } => group,
        }
    }

    /// The record's key and value (None for a tombstone).
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut k = BytesMut::new();
        let mut v = BytesMut::new();
        let present = match self {
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                k.put_i16(1);
                put_str(&mut k, group);
                put_str(&mut k, topic);
                k.put_i32(*partition);
                value.as_ref().map(|o| {
                    v.put_i16(3);
                    v.put_i64(o.offset);
                    v.put_i32(o.leader_epoch);
                    put_str(&mut v, &o.metadata);
                    v.put_i64(o.commit_timestamp_ms);
                })
            }
            GroupRecord::ClassicGroup { group, value } => {
                k.put_i16(2);
                put_str(&mut k, group);
                value.as_ref().map(|g| {
                    v.put_i16(3);
                    put_str(&mut v, &g.protocol_type);
                    v.put_i32(g.generation);
                    put_opt_str(&mut v, g.protocol.as_deref());
                    put_opt_str(&mut v, g.leader.as_deref());
                    v.put_i64(g.state_timestamp_ms);
                    v.put_i32(g.members.len() as i32);
                    for m in &g.members {
                        put_str(&mut v, &m.member_id);
                        put_opt_str(&mut v, m.instance_id.as_deref());
                        put_str(&mut v, &m.client_id);
                        put_str(&mut v, &m.client_host);
                        v.put_i32(m.rebalance_timeout_ms);
                        v.put_i32(m.session_timeout_ms);
                        put_bytes(&mut v, &m.subscription);
                        put_bytes(&mut v, &m.assignment);
                    }
                })
            }
            GroupRecord::ConsumerGroupEpoch { group, epoch } => {
                k.put_i16(3);
                put_str(&mut k, group);
                epoch.map(|e| {
                    v.put_i16(0);
                    v.put_i32(e);
                })
            }
            GroupRecord::ConsumerMember {
                group,
                member_id,
                value,
            } => {
                k.put_i16(5);
                put_str(&mut k, group);
                put_str(&mut k, member_id);
                value.as_ref().map(|m| {
                    // Version 1 adds the regex at the end.
                    v.put_i16(1);
                    put_opt_str(&mut v, m.instance_id.as_deref());
                    put_str(&mut v, &m.client_id);
                    put_str(&mut v, &m.client_host);
                    v.put_i32(m.subscribed_topics.len() as i32);
                    for t in &m.subscribed_topics {
                        put_str(&mut v, t);
                    }
                    v.put_i32(m.rebalance_timeout_ms);
                    put_opt_str(&mut v, m.server_assignor.as_deref());
                    v.put_i32(m.member_epoch);
                    v.put_i32(m.previous_member_epoch);
                    put_partitions(&mut v, &m.assigned);
                    put_partitions(&mut v, &m.revoking);
                    put_opt_str(&mut v, m.subscribed_topic_regex.as_deref());
                })
            }
        };
        (k.freeze(), present.map(|_| v.freeze()))
    }

    pub fn decode(key: Bytes, value: Option<Bytes>) -> Result<GroupRecord, DecodeError> {
        let mut k = Reader::new(key);
        let kind = k.read_i16()?;
        let mut v = value.map(Reader::new);
        let record = match kind {
            0 | 1 => {
                let group = k.read_string(false, "group")?;
                let topic = k.read_string(false, "topic")?;
                let partition = k.read_i32()?;
                let value = match v.as_mut() {
                    None => None,
                    Some(v) => {
                        expect_version(v, 3)?;
                        Some(OffsetAndMetadata {
                            offset: v.read_i64()?,
                            leader_epoch: v.read_i32()?,
                            metadata: v.read_string(false, "metadata")?,
                            commit_timestamp_ms: v.read_i64()?,
                        })
                    }
                };
                GroupRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                }
            }
            2 => {
                let group = k.read_string(false, "group")?;
                let value = match v.as_mut() {
                    None => None,
                    Some(v) => {
                        expect_version(v, 3)?;
                        let protocol_type = v.read_string(false, "protocol_type")?;
                        let generation = v.read_i32()?;
                        let protocol = v.read_nullable_string(false)?;
                        let leader = v.read_nullable_string(false)?;
                        let state_timestamp_ms = v.read_i64()?;
                        let members = v.read_array(false, "members", |r, _| {
                            Ok(MemberMetadata {
                                member_id: r.read_string(false, "member_id")?,
                                instance_id: r.read_nullable_string(false)?,
                                client_id: r.read_string(false, "client_id")?,
                                client_host: r.read_string(false, "client_host")?,
                                rebalance_timeout_ms: r.read_i32()?,
                                session_timeout_ms: r.read_i32()?,
                                subscription: r.read_bytes(false, "subscription")?,
                                assignment: r.read_bytes(false, "assignment")?,
                            })
                        })?;
                        Some(GroupMetadataValue {
                            protocol_type,
                            generation,
                            protocol,
                            leader,
                            state_timestamp_ms,
                            members,
                        })
                    }
                };
                GroupRecord::ClassicGroup { group, value }
            }
            3 => {
                let group = k.read_string(false, "group")?;
                let epoch = match v.as_mut() {
                    None => None,
                    Some(v) => {
                        expect_version(v, 0)?;
                        Some(v.read_i32()?)
                    }
                };
                GroupRecord::ConsumerGroupEpoch { group, epoch }
            }
            5 => {
                let group = k.read_string(false, "group")?;
                let member_id = k.read_string(false, "member_id")?;
                let value = match v.as_mut() {
                    None => None,
                    Some(v) => {
                        let version = v.read_i16()?;
                        if !(0..=1).contains(&version) {
                            return Err(DecodeError::UnsupportedVersion { api_key: -1, version });
                        }
                        let mut value = ConsumerMemberValue {
                            instance_id: v.read_nullable_string(false)?,
                            client_id: v.read_string(false, "client_id")?,
                            client_host: v.read_string(false, "client_host")?,
                            subscribed_topics: v.read_array(false, "topics", |r, _| r.read_string(false, "topic"))?,
                            subscribed_topic_regex: None,
                            rebalance_timeout_ms: v.read_i32()?,
                            server_assignor: v.read_nullable_string(false)?,
                            member_epoch: v.read_i32()?,
                            previous_member_epoch: v.read_i32()?,
                            assigned: read_partitions(v)?,
                            revoking: read_partitions(v)?,
                        };
                        if version >= 1 {
                            value.subscribed_topic_regex = v.read_nullable_string(false)?;
                        }
                        Some(value)
                    }
                };
                GroupRecord::ConsumerMember {
                    group,
                    member_id,
                    value,
                }
            }
            version => return Err(DecodeError::UnsupportedVersion { api_key: -1, version }),
        };
        k.expect_end()?;
        if let Some(v) = &v {
            v.expect_end()?;
        }
        Ok(record)
    }
}

fn put_str(w: &mut BytesMut, s: &str) {
    // Names are bounded by the request that carried them (i16 lengths on the wire).
    let _ = codec::write_string(w, s, false);
}

fn put_opt_str(w: &mut BytesMut, s: Option<&str>) {
    let _ = codec::write_nullable_string(w, s, false);
}

fn put_bytes(w: &mut BytesMut, b: &[u8]) {
    let _ = codec::write_bytes(w, b, false);
}

fn put_partitions(w: &mut BytesMut, topics: &[(Uuid, Vec<i32>)]) {
    w.put_i32(topics.len() as i32);
    for (id, partitions) in topics {
        codec::write_uuid(w, id);
        w.put_i32(partitions.len() as i32);
        for p in partitions {
            w.put_i32(*p);
        }
    }
}

fn read_partitions(r: &mut Reader) -> Result<Vec<(Uuid, Vec<i32>)>, DecodeError> {
    r.read_array(false, "topics", |r, _| {
        let id = r.read_uuid()?;
        let partitions = r.read_array(false, "partitions", |r, _| r.read_i32())?;
        Ok((id, partitions))
    })
}

fn expect_version(r: &mut Reader, version: i16) -> Result<(), DecodeError> {
    match r.read_i16()? {
        v if v == version => Ok(()),
        v => Err(DecodeError::UnsupportedVersion {
            api_key: -1,
            version: v,
        }),
    }
}
