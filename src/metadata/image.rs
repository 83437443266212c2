//! The metadata image: what replaying the metadata log gives. Every reader of cluster
//! state (Metadata responses, the ReplicaManager) reads an image; nothing else changes it.

use std::collections::BTreeMap;

use super::records::MetadataRecord;
use crate::protocol::codec::Uuid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub host: String,
    pub port: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<String, TopicImage>,
    /// The offset after the last record replayed.
    pub offset: i64,
    /// The first producer id of the next block the controller hands out.
    pub next_producer_id: i64,
}

impl MetadataImage {
    pub fn replay(&mut self, record: &MetadataRecord, offset: i64) {
        assert!(offset >= self.offset, "metadata records replay in offset order");
        self.offset = offset + 1;
        match record {
            MetadataRecord::RegisterBroker {
                broker_id,
                broker_epoch,
                host,
                port,
            } => {
                let registration = BrokerRegistration {
                    broker_id: *broker_id,
                    broker_epoch: *broker_epoch,
                    host: host.clone(),
                    port: *port,
                };
                self.brokers.insert(*broker_id, registration);
            }
            MetadataRecord::Topic { name, topic_id } => {
                let topic = TopicImage {
                    name: name.clone(),
                    topic_id: *topic_id,
                    partitions: BTreeMap::new(),
                    configs: BTreeMap::new(),
                };
                self.topics.insert(name.clone(), topic);
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
            } => {
                let topic = self
                    .topics
                    .values_mut()
                    .find(|t| t.topic_id == *topic_id)
                    .expect("a partition record follows its topic record");
                let registration = PartitionRegistration {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                };
                topic.partitions.insert(*partition, registration);
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                self.topics.retain(|_, t| t.topic_id != *topic_id);
            }
            MetadataRecord::TopicConfig { name, key, value } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    match value {
                        Some(v) => topic.configs.insert(key.clone(), v.clone()),
                        None => topic.configs.remove(key),
                    };
                }
            }
            MetadataRecord::ProducerIds { next_producer_id, .. } => {
                assert!(
                    *next_producer_id > self.next_producer_id,
                    "producer id blocks only move forward"
                );
                self.next_producer_id = *next_producer_id;
            }
        }
    }

    pub fn topic_by_id(&self, topic_id: &Uuid) -> Option<&TopicImage> {
        self.topics.values().find(|t| t.topic_id == *topic_id)
    }
}
