//! Cluster metadata, KRaft-shaped: a log of metadata records (`__cluster_metadata`), a
//! [`MetadataImage`] that replaying them builds, and a [`QuorumController`] that turns
//! admin requests into records. The controller is a deterministic state machine: it reads
//! the image, takes `now` and the ids it may use as arguments, and returns records and a
//! result; the image changes only when the records are replayed. A single node is a
//! one-voter quorum: a record is committed once the metadata log has synced it.

mod controller;
mod image;
mod records;

pub use controller::{validate_topic_name, CreateTopicResult, QuorumController, TopicSpec};
pub use image::{BrokerRegistration, MetadataImage, PartitionRegistration, TopicImage};
pub use records::{decode_record, encode_record, MetadataRecord};

/// The metadata log's topic, as in KRaft.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
