//! The QuorumController: validates admin requests against the image and answers with the
//! metadata records that carry them out. Pure: no I/O, no clock, no randomness of its own.

use super::image::MetadataImage;
use super::records::MetadataRecord;
use crate::error::{ErrorCode, KafkaError};
use crate::protocol::codec::Uuid;

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// A bound on partitions per topic, so that one request cannot exhaust file handles.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    /// -1: the broker default (`num.partitions`).
    pub num_partitions: i32,
    /// -1: the broker default (`default.replication.factor`).
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateTopicResult {
    pub name: String,
    pub error: ErrorCode,
    pub message: Option<String>,
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

#[derive(Clone, Debug)]
pub struct QuorumController {
    pub node_id: i32,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
}

impl QuorumController {
    /// Records that create the topics that are valid, and a result per topic. `topic_id`
    /// gives the id of the i-th topic; the shell draws them.
    pub fn create_topics(
        &self,
        image: &MetadataImage,
        specs: &[TopicSpec],
        topic_id: impl Fn(usize) -> Uuid,
        validate_only: bool,
        config_is_valid: impl Fn(&str, &str) -> Result<(), String>,
    ) -> (Vec<MetadataRecord>, Vec<CreateTopicResult>) {
        let mut records = Vec::new();
        let mut results = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, spec) in specs.iter().enumerate() {
            let partitions = if spec.num_partitions == -1 {
                self.num_partitions
            } else {
                spec.num_partitions
            };
            let factor = if spec.replication_factor == -1 {
                self.default_replication_factor
            } else {
                spec.replication_factor
            };
            let mut result = CreateTopicResult {
                name: spec.name.clone(),
                error: ErrorCode::None,
                message: None,
                topic_id: Uuid::default(),
                num_partitions: partitions,
                replication_factor: factor,
            };
            let error = if !seen.insert(spec.name.clone()) {
                Some((
                    ErrorCode::InvalidRequest,
                    "the topic appears twice in the request".to_string(),
                ))
            } else if let Err(why) = validate_topic_name(&spec.name) {
                Some((ErrorCode::InvalidTopicException, why))
            } else if image.topics.contains_key(&spec.name) {
                Some((
                    ErrorCode::TopicAlreadyExists,
                    format!("Topic '{}' already exists.", spec.name),
                ))
            } else if partitions < 1 || partitions > PARTITIONS_PER_TOPIC_MAX {
                Some((
                    ErrorCode::InvalidPartitions,
                    format!("Number of partitions must be in 1..={PARTITIONS_PER_TOPIC_MAX}."),
                ))
            } else if factor < 1 {
                Some((
                    ErrorCode::InvalidReplicationFactor,
                    "Replication factor must be larger than 0.".to_string(),
                ))
            } else if factor as usize > image.brokers.len().max(1) {
                Some((
                    ErrorCode::InvalidReplicationFactor,
                    format!("Unable to replicate the partition {factor} time(s): The target replication factor of {factor} cannot be reached because only {} broker(s) are registered.", image.brokers.len()),
                ))
            } else {
                spec.configs
                    .iter()
                    .find_map(|(k, v)| config_is_valid(k, v).err().map(|why| (ErrorCode::InvalidConfig, why)))
            };
            if let Some((code, message)) = error {
                result.error = code;
                result.message = Some(message);
                results.push(result);
                continue;
            }
            let id = topic_id(i);
            result.topic_id = id;
            results.push(result);
            if validate_only {
                continue;
            }
            records.push(MetadataRecord::Topic {
                name: spec.name.clone(),
                topic_id: id,
            });
            for (key, value) in &spec.configs {
                records.push(MetadataRecord::TopicConfig {
                    name: spec.name.clone(),
                    key: key.clone(),
                    value: Some(value.clone()),
                });
            }
            for partition in 0..partitions {
                records.push(MetadataRecord::Partition {
                    topic_id: id,
                    partition,
                    replicas: vec![self.node_id],
                    isr: vec![self.node_id],
                    leader: self.node_id,
                    leader_epoch: 0,
                });
            }
        }
        (records, results)
    }

    /// Records that delete the named topics, and an error per name.
    pub fn delete_topics(
        &self,
        image: &MetadataImage,
        names: &[String],
    ) -> (Vec<MetadataRecord>, Vec<(String, Uuid, ErrorCode)>) {
        let mut records = Vec::new();
        let mut results = Vec::new();
        for name in names {
            match image.topics.get(name) {
                Some(topic)
                    if !records.contains(&MetadataRecord::RemoveTopic {
                        topic_id: topic.topic_id,
                    }) =>
                {
                    records.push(MetadataRecord::RemoveTopic {
                        topic_id: topic.topic_id,
                    });
                    results.push((name.clone(), topic.topic_id, ErrorCode::None));
                }
                _ => results.push((name.clone(), Uuid::default(), ErrorCode::UnknownTopicOrPartition)),
            }
        }
        (records, results)
    }

    /// Records that grow topics to `count` partitions each, and an error per topic.
    pub fn create_partitions(
        &self,
        image: &MetadataImage,
        requests: &[(String, i32)],
        validate_only: bool,
    ) -> (Vec<MetadataRecord>, Vec<(String, ErrorCode, Option<String>)>) {
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (name, count) in requests {
            let Some(topic) = image.topics.get(name) else {
                results.push((
                    name.clone(),
                    ErrorCode::UnknownTopicOrPartition,
                    Some(format!("The topic '{name}' does not exist.")),
                ));
                continue;
            };
            let current = topic.partitions.len() as i32;
            if *count <= current {
                let why =
                    format!("Topic currently has {current} partitions, which is higher than the requested {count}.");
                results.push((name.clone(), ErrorCode::InvalidPartitions, Some(why)));
                continue;
            }
            if *count > PARTITIONS_PER_TOPIC_MAX {
                results.push((
                    name.clone(),
                    ErrorCode::InvalidPartitions,
                    Some(format!("At most {PARTITIONS_PER_TOPIC_MAX} partitions.")),
                ));
                continue;
            }
            results.push((name.clone(), ErrorCode::None, None));
            if validate_only {
                continue;
            }
            for partition in current..*count {
                records.push(MetadataRecord::Partition {
                    topic_id: topic.topic_id,
                    partition,
                    replicas: vec![self.node_id],
                    isr: vec![self.node_id],
                    leader: self.node_id,
                    leader_epoch: 0,
                });
            }
        }
        (records, results)
    }

    /// Records that set (`Some`) or delete (`None`) topic configs, after `config_is_valid`
    /// accepts the topic's whole resulting set; an error per topic otherwise.
    pub fn alter_topic_configs(
        &self,
        image: &MetadataImage,
        changes: &[(String, Vec<(String, Option<String>)>)],
        validate_only: bool,
        config_is_valid: impl Fn(&std::collections::BTreeMap<String, String>) -> Result<(), String>,
    ) -> (Vec<MetadataRecord>, Vec<(String, ErrorCode, Option<String>)>) {
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (name, sets) in changes {
            let Some(topic) = image.topics.get(name) else {
                results.push((
                    name.clone(),
                    ErrorCode::UnknownTopicOrPartition,
                    Some(format!("Topic {name} does not exist")),
                ));
                continue;
            };
            let mut configs = topic.configs.clone();
            for (key, value) in sets {
                match value {
                    Some(v) => configs.insert(key.clone(), v.clone()),
                    None => configs.remove(key),
                };
            }
            if let Err(why) = config_is_valid(&configs) {
                results.push((name.clone(), ErrorCode::InvalidConfig, Some(why)));
                continue;
            }
            results.push((name.clone(), ErrorCode::None, None));
            if !validate_only {
                for (key, value) in sets {
                    records.push(MetadataRecord::TopicConfig {
                        name: name.clone(),
                        key: key.clone(),
                        value: value.clone(),
                    });
                }
            }
        }
        (records, results)
    }

    /// Kafka's AllocateProducerIds: the next block of [`PRODUCER_ID_BLOCK_SIZE`] ids for
    /// `broker_id`, as the record that hands it out and the block `(first, count)`. Ids are
    /// never handed out twice: the block is the broker's once the record is committed.
    pub fn allocate_producer_ids(
        &self,
        image: &MetadataImage,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<(MetadataRecord, (i64, i64)), KafkaError> {
        let first = image.next_producer_id;
        let next = first
            .checked_add(PRODUCER_ID_BLOCK_SIZE)
            .filter(|n| *n < i64::MAX)
            .ok_or_else(|| KafkaError::new(ErrorCode::UnknownServerError, "producer ids are exhausted"))?;
        let record = MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id: next,
        };
        Ok((record, (first, PRODUCER_ID_BLOCK_SIZE)))
    }

    /// The record that registers this broker, unless the image already has it as it is.
    pub fn register_broker(&self, image: &MetadataImage, host: &str, port: i32, epoch: i64) -> Option<MetadataRecord> {
        let current = image.brokers.get(&self.node_id);
        if current.is_some_and(|b| b.host == host && b.port == port) {
            return None;
        }
        Some(MetadataRecord::RegisterBroker {
            broker_id: self.node_id,
            broker_epoch: epoch,
            host: host.to_string(),
            port,
        })
    }
}

/// Producer ids per block, as Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Kafka's topic name rules: 1 to 249 of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {TOPIC_NAME_BYTES_MAX} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!("Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> QuorumController {
        QuorumController {
            node_id: 1,
            num_partitions: 3,
            default_replication_factor: 1,
        }
    }

    fn spec(name: &str, partitions: i32, factor: i16) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: factor,
            configs: vec![],
        }
    }

    #[test]
    fn create_topics_as_data() {
        let c = controller();
        let mut image = MetadataImage::default();
        image.replay(&c.register_broker(&image, "127.0.0.1", 9092, 1).unwrap(), 0);
        let (records, _) = c.create_topics(&image, &[spec("taken", 1, 1)], |_| Uuid([9; 16]), false, |_, _| Ok(()));
        for (i, r) in records.iter().enumerate() {
            image.replay(r, 1 + i as i64);
        }
        let cases: [(TopicSpec, ErrorCode, i32); 8] = [
            (spec("events", -1, -1), ErrorCode::None, 3),
            (spec("events2", 5, 1), ErrorCode::None, 5),
            (spec("taken", 1, 1), ErrorCode::TopicAlreadyExists, 1),
            (spec("bad name", 1, 1), ErrorCode::InvalidTopicException, 1),
            (spec("", 1, 1), ErrorCode::InvalidTopicException, 1),
            (spec("zero", 0, 1), ErrorCode::InvalidPartitions, 0),
            (spec("three", 1, 3), ErrorCode::InvalidReplicationFactor, 1),
            (spec(&"x".repeat(250), 1, 1), ErrorCode::InvalidTopicException, 1),
        ];
        for (s, error, partitions) in cases {
            let (records, results) = c.create_topics(&image, &[s.clone()], |_| Uuid([1; 16]), false, |_, _| Ok(()));
            assert_eq!(results[0].error, error, "{}", s.name);
            assert_eq!(results[0].num_partitions, partitions, "{}", s.name);
            let expected = if error == ErrorCode::None {
                1 + partitions as usize
            } else {
                0
            };
            assert_eq!(records.len(), expected, "{}", s.name);
        }
        let (records, results) = c.create_topics(
            &image,
            &[spec("dup", 1, 1), spec("dup", 1, 1)],
            |_| Uuid([2; 16]),
            false,
            |_, _| Ok(()),
        );
        assert_eq!((records.len(), results[1].error), (2, ErrorCode::InvalidRequest));
        let (records, results) = c.create_topics(&image, &[spec("dry", 1, 1)], |_| Uuid([2; 16]), true, |_, _| Ok(()));
        assert_eq!((records.len(), results[0].error), (0, ErrorCode::None));
    }

    #[test]
    fn create_partitions_as_data() {
        let c = controller();
        let mut image = MetadataImage::default();
        let (records, _) = c.create_topics(&image, &[spec("a", 2, 1)], |_| Uuid([3; 16]), false, |_, _| Ok(()));
        for (i, r) in records.iter().enumerate() {
            image.replay(r, i as i64);
        }
        let cases = [
            ("a", 5, ErrorCode::None, 3),
            ("a", 2, ErrorCode::InvalidPartitions, 0),
            ("a", 1, ErrorCode::InvalidPartitions, 0),
            ("nope", 3, ErrorCode::UnknownTopicOrPartition, 0),
        ];
        for (name, count, error, new_records) in cases {
            let (records, results) = c.create_partitions(&image, &[(name.to_string(), count)], false);
            assert_eq!((results[0].1, records.len()), (error, new_records), "{name} to {count}");
        }
    }

    #[test]
    fn delete_topics_as_data() {
        let c = controller();
        let mut image = MetadataImage::default();
        let (records, _) = c.create_topics(&image, &[spec("a", 2, 1)], |_| Uuid([3; 16]), false, |_, _| Ok(()));
        for (i, r) in records.iter().enumerate() {
            image.replay(r, i as i64);
        }
        let (records, results) = c.delete_topics(&image, &["a".into(), "missing".into(), "a".into()]);
        assert_eq!(
            records,
            vec![MetadataRecord::RemoveTopic {
                topic_id: Uuid([3; 16])
            }]
        );
        let codes: Vec<ErrorCode> = results.iter().map(|r| r.2).collect();
        assert_eq!(
            codes,
            vec![
                ErrorCode::None,
                ErrorCode::UnknownTopicOrPartition,
                ErrorCode::UnknownTopicOrPartition
            ]
        );
        image.replay(&records[0], 10);
        assert!(image.topics.is_empty());
    }
}
