//! A Rust Kafka client: producer, consumer and admin, with the Java client's config names.
//! The CLI tools, the benchmarks and (later) the simulator's workloads use it.

pub mod admin;
pub mod connection;
pub mod consumer;
pub mod fuzzing;
pub mod group;
pub mod partitioner;
pub mod producer;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::protocol::codec::{DecodeError, EncodeError};
use crate::protocol::messages::{MetadataRequest, MetadataResponse};
pub use admin::Admin;
pub use connection::Connection;
pub use consumer::{Consumer, ConsumerRecord};
pub use group::{GroupConsumer, GroupProtocol};
pub use producer::{Delivery, Producer, ProducerRecord, RecordMetadata};

#[derive(Debug)]
pub enum ClientError {
    Io(std::io::Error),
    Timeout(String),
    /// A Kafka error code, with what was asked.
    Kafka(i16, String),
    Protocol(String),
    Unsupported(&'static str),
    Config(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
            ClientError::Timeout(what) => write!(f, "timed out: {what}"),
            ClientError::Kafka(code, what) => write!(f, "{what}: Kafka error code {code}"),
            ClientError::Protocol(why) => write!(f, "protocol error: {why}"),
            ClientError::Unsupported(api) => write!(f, "the broker does not support {api}"),
            ClientError::Config(why) => write!(f, "bad configuration: {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> ClientError {
        ClientError::Io(e)
    }
}

impl From<DecodeError> for ClientError {
    fn from(e: DecodeError) -> ClientError {
        ClientError::Protocol(e.to_string())
    }
}

impl From<EncodeError> for ClientError {
    fn from(e: EncodeError) -> ClientError {
        ClientError::Protocol(e.to_string())
    }
}

/// Configuration as `key=value` pairs with the Java client's names.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    values: BTreeMap<String, String>,
}

impl ClientConfig {
    pub fn new() -> ClientConfig {
        ClientConfig::default()
    }

    pub fn set(mut self, key: &str, value: impl ToString) -> ClientConfig {
        self.values.insert(key.to_string(), value.to_string());
        self
    }

    /// Parses `key=value` strings.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<ClientConfig, ClientError> {
        let mut config = ClientConfig::new();
        for pair in pairs {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| ClientError::Config(format!("expected key=value, got {pair}")))?;
            config.values.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(config)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn get_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ClientError> {
        match self.values.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ClientError::Config(format!("invalid value {v} for {key}"))),
        }
    }

    pub fn bootstrap_servers(&self) -> Result<Vec<String>, ClientError> {
        let servers = self
            .get("bootstrap.servers")
            .ok_or_else(|| ClientError::Config("bootstrap.servers is required".into()))?;
        Ok(servers
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }

    pub fn client_id(&self) -> String {
        self.get("client.id").unwrap_or("klamm-client").to_string()
    }

    pub fn request_timeout(&self) -> Result<Duration, ClientError> {
        Ok(Duration::from_millis(self.get_or("request.timeout.ms", 30_000u64)?))
    }
}

/// Partition leaders, from a Metadata response.
#[derive(Clone, Debug, Default)]
pub struct ClusterMetadata {
    pub brokers: BTreeMap<i32, String>,
    /// topic -> partition -> leader.
    pub topics: BTreeMap<String, BTreeMap<i32, i32>>,
    pub topic_ids: BTreeMap<String, crate::protocol::codec::Uuid>,
}

impl ClusterMetadata {
    pub fn from_response(response: &MetadataResponse) -> ClusterMetadata {
        let mut metadata = ClusterMetadata::default();
        for b in &response.brokers {
            metadata.brokers.insert(b.node_id, format!("{}:{}", b.host, b.port));
        }
        for t in &response.topics {
            if let (0, Some(name)) = (t.error_code, &t.name) {
                metadata.topics.insert(
                    name.clone(),
                    t.partitions.iter().map(|p| (p.partition_index, p.leader_id)).collect(),
                );
                metadata.topic_ids.insert(name.clone(), t.topic_id);
            }
        }
        metadata
    }

    pub fn leader_address(&self, topic: &str, partition: i32) -> Option<&str> {
        let leader = self.topics.get(topic)?.get(&partition)?;
        self.brokers.get(leader).map(String::as_str)
    }
}

/// Connects to the first bootstrap server that answers.
pub async fn bootstrap(config: &ClientConfig) -> Result<Connection, ClientError> {
    let mut last = None;
    for server in config.bootstrap_servers()? {
        match Connection::connect(&server, &config.client_id(), config.request_timeout()?).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Config("bootstrap.servers is empty".into())))
}

/// Metadata for `topics` (all topics if `None`), optionally creating missing ones.
pub async fn fetch_metadata(
    connection: &mut Connection,
    topics: Option<&[String]>,
    auto_create: bool,
) -> Result<MetadataResponse, ClientError> {
    let request = MetadataRequest {
        topics: topics.map(|t| {
            t.iter()
                .map(
                    |name| crate::protocol::messages::metadata_request::MetadataRequestTopic {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                )
                .collect()
        }),
        allow_auto_topic_creation: auto_create,
        ..Default::default()
    };
    Ok(connection.request(&request).await?.0)
}
