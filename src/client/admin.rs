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

/// A group as ListGroups and DescribeGroups show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    pub group_type: String,
}

/// A classic group member: (member id, client id, host, assigned partitions).
pub type GroupMember = (String, String, String, Vec<(String, i32)>);

impl Admin {
    /// The group coordinator's connection for `group_id` (FindCoordinator, then connect).
    async fn coordinator(&mut self, group_id: &str) -> Result<Connection, ClientError> {
        let batched = self.connection.version::<FindCoordinatorRequest>()? >= 4;
        let request = FindCoordinatorRequest {
            key: if batched { String::new() } else { group_id.to_string() },
            key_type: 0,
            coordinator_keys: if batched {
                vec![group_id.to_string()]
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        let (response, _): (FindCoordinatorResponse, _) = self.connection.request(&request).await?;
        let (error, host, port) = match response.coordinators.first() {
            Some(c) if batched => (c.error_code, c.host.clone(), c.port),
            _ => (response.error_code, response.host.clone(), response.port),
        };
        if error != 0 {
            return Err(ClientError::Kafka(error, format!("FindCoordinator {group_id}")));
        }
        Connection::connect(
            &format!("{host}:{port}"),
            "klamm-admin",
            std::time::Duration::from_secs(30),
        )
        .await
    }

    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>, ClientError> {
        let (response, _): (ListGroupsResponse, _) = self.connection.request(&ListGroupsRequest::default()).await?;
        if response.error_code != 0 {
            return Err(ClientError::Kafka(response.error_code, "ListGroups".into()));
        }
        let mut out: Vec<GroupListing> = response
            .groups
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id,
                protocol_type: g.protocol_type,
                state: g.group_state,
                group_type: g.group_type,
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// A classic group's state and members with their assignments (decoded as the consumer
    /// protocol's); for a KIP-848 group the state only.
    pub async fn describe_group(&mut self, group_id: &str) -> Result<(String, Vec<GroupMember>), ClientError> {
        let mut connection = self.coordinator(group_id).await?;
        let request = DescribeGroupsRequest {
            groups: vec![group_id.to_string()],
            ..Default::default()
        };
        let (response, _): (DescribeGroupsResponse, _) = connection.request(&request).await?;
        let g = response
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("empty DescribeGroups answer".into()))?;
        if g.error_code != 0 && g.protocol_type != "consumer" {
            return Err(ClientError::Kafka(g.error_code, format!("DescribeGroups {group_id}")));
        }
        let members = g
            .members
            .into_iter()
            .map(|m| {
                let mut assigned = Vec::new();
                if m.member_assignment.len() >= 2 {
                    let version = i16::from_be_bytes([m.member_assignment[0], m.member_assignment[1]]);
                    let mut r = crate::protocol::codec::Reader::new(m.member_assignment.slice(2..));
                    let version =
                        version.min(<ConsumerProtocolAssignment as crate::protocol::codec::Message>::VERSION_MAX);
                    if let Ok(a) =
                        <ConsumerProtocolAssignment as crate::protocol::codec::Message>::decode(&mut r, version)
                    {
                        for t in a.assigned_partitions {
                            for p in t.partitions {
                                assigned.push((t.topic.clone(), p));
                            }
                        }
                    }
                }
                (m.member_id, m.client_id, m.client_host, assigned)
            })
            .collect();
        Ok((g.group_state, members))
    }

    /// Every committed offset of a group: ((topic, partition), offset).
    pub async fn group_offsets(&mut self, group_id: &str) -> Result<Vec<((String, i32), i64)>, ClientError> {
        let mut connection = self.coordinator(group_id).await?;
        let batched = connection.version::<OffsetFetchRequest>()? >= 8;
        let request = if batched {
            OffsetFetchRequest {
                groups: vec![offset_fetch_request::OffsetFetchRequestGroup {
                    group_id: group_id.to_string(),
                    member_epoch: -1,
                    topics: None,
                    ..Default::default()
                }],
                ..Default::default()
            }
        } else {
            OffsetFetchRequest {
                group_id: group_id.to_string(),
                topics: None,
                ..Default::default()
            }
        };
        let (response, _): (OffsetFetchResponse, _) = connection.request(&request).await?;
        let mut out = Vec::new();
        if batched {
            for g in response.groups {
                if g.error_code != 0 {
                    return Err(ClientError::Kafka(g.error_code, format!("OffsetFetch {group_id}")));
                }
                for t in g.topics {
                    for p in t.partitions {
                        out.push(((t.name.clone(), p.partition_index), p.committed_offset));
                    }
                }
            }
        } else {
            if response.error_code != 0 {
                return Err(ClientError::Kafka(
                    response.error_code,
                    format!("OffsetFetch {group_id}"),
                ));
            }
            for t in response.topics {
                for p in t.partitions {
                    out.push(((t.name.clone(), p.partition_index), p.committed_offset));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Commits offsets from outside the group (only while it has no members).
    pub async fn alter_group_offsets(
        &mut self,
        group_id: &str,
        offsets: &[((String, i32), i64)],
    ) -> Result<(), ClientError> {
        let mut connection = self.coordinator(group_id).await?;
        let mut topics: std::collections::BTreeMap<&str, Vec<offset_commit_request::OffsetCommitRequestPartition>> =
            Default::default();
        for ((topic, partition), offset) in offsets {
            topics
                .entry(topic)
                .or_default()
                .push(offset_commit_request::OffsetCommitRequestPartition {
                    partition_index: *partition,
                    committed_offset: *offset,
                    committed_leader_epoch: -1,
                    committed_metadata: Some(String::new()),
                    ..Default::default()
                });
        }
        let request = OffsetCommitRequest {
            group_id: group_id.to_string(),
            generation_id_or_member_epoch: -1,
            retention_time_ms: -1,
            topics: topics
                .into_iter()
                .map(|(name, partitions)| offset_commit_request::OffsetCommitRequestTopic {
                    name: name.to_string(),
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let (response, _): (OffsetCommitResponse, _) = connection.request(&request).await?;
        for t in response.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(ClientError::Kafka(
                        p.error_code,
                        format!("OffsetCommit {group_id} {}-{}", t.name, p.partition_index),
                    ));
                }
            }
        }
        Ok(())
    }

    pub async fn delete_group(&mut self, group_id: &str) -> Result<(), ClientError> {
        let mut connection = self.coordinator(group_id).await?;
        let request = DeleteGroupsRequest {
            groups_names: vec![group_id.to_string()],
            ..Default::default()
        };
        let (response, _): (DeleteGroupsResponse, _) = connection.request(&request).await?;
        match response.results.first() {
            Some(r) if r.error_code != 0 => Err(ClientError::Kafka(r.error_code, format!("DeleteGroups {group_id}"))),
            _ => Ok(()),
        }
    }

    /// ListOffsets for one partition: -1 latest, -2 earliest, else the first offset at or
    /// after the timestamp (-1 if none).
    pub async fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> Result<i64, ClientError> {
        let request = ListOffsetsRequest {
            replica_id: -1,
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
        let (response, _): (ListOffsetsResponse, _) = self.connection.request(&request).await?;
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
}
