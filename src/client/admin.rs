//! The admin client: topics and partitions.

use super::{bootstrap, fetch_metadata, ClientConfig, ClientError, Connection};
use crate::protocol::messages::*;

pub struct Admin {
    connection: Connection,
}

/// A topic as Metadata describes it: (partition, leader, replicas, isr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub topic_id: String,
    pub partitions: Vec<(i32, i32, Vec<i32>, Vec<i32>)>,
}

impl Admin {
    pub async fn new(config: &ClientConfig) -> Result<Admin, ClientError> {
        Ok(Admin {
            connection: bootstrap(config).await?,
        })
    }

    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(String, String)],
    ) -> Result<(), ClientError> {
        let request = CreateTopicsRequest {
            topics: vec![create_topics_request::CreatableTopic {
                name: name.to_string(),
                num_partitions: partitions,
                replication_factor,
                configs: configs
                    .iter()
                    .map(|(k, v)| create_topics_request::CreatableTopicConfig {
                        name: k.clone(),
                        value: Some(v.clone()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            timeout_ms: 30_000,
            ..Default::default()
        };
        let (response, _): (CreateTopicsResponse, _) = self.connection.request(&request).await?;
        let result = response
            .topics
            .first()
            .ok_or_else(|| ClientError::Protocol("empty CreateTopics answer".into()))?;
        if result.error_code != 0 {
            return Err(ClientError::Kafka(
                result.error_code,
                result
                    .error_message
                    .clone()
                    .unwrap_or_else(|| format!("creating {name}")),
            ));
        }
        Ok(())
    }

    pub async fn delete_topic(&mut self, name: &str) -> Result<(), ClientError> {
        let version = self.connection.version::<DeleteTopicsRequest>()?;
        let request = if version >= 6 {
            DeleteTopicsRequest {
                topics: vec![delete_topics_request::DeleteTopicState {
                    name: Some(name.into()),
                    ..Default::default()
                }],
                timeout_ms: 30_000,
                ..Default::default()
            }
        } else {
            DeleteTopicsRequest {
                topic_names: vec![name.into()],
                timeout_ms: 30_000,
                ..Default::default()
            }
        };
        let (response, _): (DeleteTopicsResponse, _) = self.connection.request(&request).await?;
        match response.responses.first() {
            Some(r) if r.error_code == 0 => Ok(()),
            Some(r) => Err(ClientError::Kafka(r.error_code, format!("deleting {name}"))),
            None => Err(ClientError::Protocol("empty DeleteTopics answer".into())),
        }
    }

    pub async fn create_partitions(&mut self, name: &str, count: i32) -> Result<(), ClientError> {
        let request = CreatePartitionsRequest {
            topics: vec![create_partitions_request::CreatePartitionsTopic {
                name: name.into(),
                count,
                assignments: None,
                ..Default::default()
            }],
            timeout_ms: 30_000,
            ..Default::default()
        };
        let (response, _): (CreatePartitionsResponse, _) = self.connection.request(&request).await?;
        match response.results.first() {
            Some(r) if r.error_code == 0 => Ok(()),
            Some(r) => Err(ClientError::Kafka(
                r.error_code,
                r.error_message.clone().unwrap_or_else(|| format!("altering {name}")),
            )),
            None => Err(ClientError::Protocol("empty CreatePartitions answer".into())),
        }
    }

    /// IncrementalAlterConfigs on one topic: `Some(value)` sets a key, `None` deletes it
    /// (back to the broker's default).
    pub async fn alter_topic_configs(
        &mut self,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<(), ClientError> {
        const TOPIC: i8 = 2;
        const SET: i8 = 0;
        const DELETE: i8 = 1;
        let request = IncrementalAlterConfigsRequest {
            resources: vec![incremental_alter_configs_request::AlterConfigsResource {
                resource_type: TOPIC,
                resource_name: name.to_string(),
                configs: changes
                    .iter()
                    .map(|(key, value)| incremental_alter_configs_request::AlterableConfig {
                        name: key.clone(),
                        config_operation: if value.is_some() { SET } else { DELETE },
                        value: value.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let (response, _): (IncrementalAlterConfigsResponse, _) = self.connection.request(&request).await?;
        let r = response
            .responses
            .first()
            .ok_or_else(|| ClientError::Protocol("empty IncrementalAlterConfigs answer".into()))?;
        if r.error_code != 0 {
            return Err(ClientError::Kafka(
                r.error_code,
                r.error_message
                    .clone()
                    .unwrap_or_else(|| format!("altering the configs of {name}")),
            ));
        }
        Ok(())
    }

    pub async fn list_topics(&mut self) -> Result<Vec<String>, ClientError> {
        let response = fetch_metadata(&mut self.connection, None, false).await?;
        let mut names: Vec<String> = response.topics.into_iter().filter_map(|t| t.name).collect();
        names.sort();
        Ok(names)
    }

    pub async fn describe_topics(&mut self, names: Option<&[String]>) -> Result<Vec<TopicDescription>, ClientError> {
        let response = fetch_metadata(&mut self.connection, names, false).await?;
        let mut out = Vec::new();
        for t in response.topics {
            let name = t.name.unwrap_or_default();
            if t.error_code != 0 {
                return Err(ClientError::Kafka(t.error_code, format!("describing {name}")));
            }
            let id = t.topic_id.to_base64();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| (p.partition_index, p.leader_id, p.replica_nodes, p.isr_nodes))
                .collect();
            out.push(TopicDescription {
                name,
                topic_id: id,
                partitions,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// (name, value, source) of a topic's configs.
    pub async fn describe_topic_configs(
        &mut self,
        name: &str,
    ) -> Result<Vec<(String, Option<String>, i8)>, ClientError> {
        let request = DescribeConfigsRequest {
            resources: vec![describe_configs_request::DescribeConfigsResource {
                resource_type: 2,
                resource_name: name.into(),
                configuration_keys: None,
                ..Default::default()
            }],
            ..Default::default()
        };
        let (response, _): (DescribeConfigsResponse, _) = self.connection.request(&request).await?;
        let result = response
            .results
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("empty DescribeConfigs answer".into()))?;
        if result.error_code != 0 {
            return Err(ClientError::Kafka(
                result.error_code,
                format!("describing the configs of {name}"),
            ));
        }
        Ok(result
            .configs
            .into_iter()
            .map(|c| (c.name, c.value, c.config_source))
            .collect())
    }
}
