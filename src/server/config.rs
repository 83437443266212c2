//! The broker's configuration: Kafka's `server.properties` keys, parsed and checked. A bad
//! value is an error that names the key; the binary exits with code 2 on it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::LogConfig;
use crate::record::TimestampType;

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub node_id: i32,
    pub process_roles: Vec<String>,
    pub listener: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub log: LogConfig,
    /// `socket.request.max.bytes`: the largest request frame.
    pub socket_request_max_bytes: usize,
    /// `max.connections`.
    pub connections_max: usize,
    /// `connections.max.idle.ms`: a connection that sends nothing for this long is closed.
    pub connection_idle_ms_max: u64,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
    /// `log.cleaner.enable`: compact the logs whose `cleanup.policy` holds `compact`.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: the pause between two passes of the log cleaner.
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the keys of one cleaning pass; a
    /// pass cleans only as far as the keys of its dirty segments fit.
    pub log_cleaner_dedupe_buffer_bytes: usize,
    /// `replica.fetch.wait.max.ms` bounds nothing here; `fetch.max.bytes` bounds a fetch response.
    pub fetch_max_bytes: usize,
    /// The group coordinator's settings (`group.*`, `offsets.*`).
    pub group: crate::group::GroupConfig,
    /// `offsets.topic.num.partitions`
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.segment.bytes`: the segment size of `__consumer_offsets`.
    pub offsets_topic_segment_bytes: u64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: i64,
    /// Keys read and their values, for DescribeConfigs.
    pub values: BTreeMap<String, String>,
}

/// Every key the broker reads, with Kafka's default.
pub const KEYS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("process.roles", "broker,controller"),
    ("listeners", "PLAINTEXT://127.0.0.1:9092"),
    ("advertised.listeners", ""),
    ("log.dirs", "klamm-data"),
    ("log.dir", ""),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("auto.create.topics.enable", "true"),
    ("log.segment.bytes", "1073741824"),
    ("log.roll.ms", ""),
    ("log.roll.hours", "168"),
    ("log.retention.ms", ""),
    ("log.retention.minutes", ""),
    ("log.retention.hours", "168"),
    ("log.retention.bytes", "-1"),
    ("log.index.interval.bytes", "4096"),
    ("log.index.size.max.bytes", "10485760"),
    ("log.flush.interval.messages", "9223372036854775807"),
    ("log.flush.interval.ms", ""),
    ("log.message.timestamp.type", "CreateTime"),
    ("log.retention.check.interval.ms", "300000"),
    ("log.cleanup.policy", "delete"),
    ("log.cleaner.enable", "true"),
    ("log.cleaner.backoff.ms", "15000"),
    ("log.cleaner.dedupe.buffer.size", "134217728"),
    ("log.cleaner.delete.retention.ms", "86400000"),
    ("log.cleaner.min.compaction.lag.ms", "0"),
    ("log.cleaner.min.cleanable.ratio", "0.5"),
    ("producer.id.expiration.ms", "86400000"),
    ("message.max.bytes", "1048588"),
    ("socket.request.max.bytes", "104857600"),
    ("max.connections", "1000"),
    ("connections.max.idle.ms", "600000"),
    ("fetch.max.bytes", "57671680"),
    ("controller.quorum.voters", ""),
    ("controller.listener.names", ""),
    ("inter.broker.listener.name", ""),
    ("listener.security.protocol.map", ""),
    ("offsets.topic.replication.factor", "1"),
    ("transaction.state.log.replication.factor", "1"),
    ("transaction.state.log.min.isr", "1"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("offsets.topic.num.partitions", "50"),
    ("offsets.topic.segment.bytes", "104857600"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("offset.metadata.max.bytes", "4096"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.max.size", "1000"),
    ("group.consumer.session.timeout.ms", "45000"),
    ("group.consumer.heartbeat.interval.ms", "5000"),
    ("group.consumer.max.size", "1000"),
    ("group.coordinator.rebalance.protocols", "classic,consumer"),
];

impl ServerConfig {
    /// Parses `server.properties` text and `key=value` overrides (later wins).
    pub fn parse(properties: &str, overrides: &[String]) -> Result<(ServerConfig, Vec<String>), String> {
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut set = |line: &str, origin: &str| -> Result<(), String> {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("{origin}: expected key=value, got \"{line}\""))?;
            let key = key.trim();
            if !KEYS.iter().any(|(k, _)| *k == key) {
                warnings.push(format!(
                    "{origin}: the configuration '{key}' is not known and is ignored"
                ));
                return Ok(());
            }
            values.insert(key.to_string(), value.trim().to_string());
            Ok(())
        };
        for (n, line) in properties.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            set(line, &format!("line {}", n + 1))?;
        }
        for o in overrides {
            set(o, "--override")?;
        }
        let get = |key: &str| -> String {
            values.get(key).cloned().unwrap_or_else(|| {
                KEYS.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_default()
            })
        };
        let config = ServerConfig::from_values(&get)?;
        let mut all = BTreeMap::new();
        for (key, _) in KEYS {
            all.insert(key.to_string(), get(key));
        }
        Ok((ServerConfig { values: all, ..config }, warnings))
    }

    fn from_values(get: &dyn Fn(&str) -> String) -> Result<ServerConfig, String> {
        let node_id: i32 = number(get, "node.id")?;
        if node_id < 0 {
            return Err(invalid("node.id", &get("node.id"), "must be 0 or more"));
        }
        let process_roles: Vec<String> = get("process.roles")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if process_roles.iter().any(|r| r != "broker" && r != "controller")
            || !process_roles.contains(&"broker".to_string())
        {
            return Err(invalid(
                "process.roles",
                &get("process.roles"),
                "must hold broker (and may hold controller)",
            ));
        }
        let listener =
            parse_listener(&get("listeners")).map_err(|why| invalid("listeners", &get("listeners"), &why))?;
        let advertised = get("advertised.listeners");
        let (advertised_host, advertised_port) = if advertised.is_empty() {
            (listener.ip().to_string(), listener.port())
        } else {
            parse_host_port(&advertised).map_err(|why| invalid("advertised.listeners", &advertised, &why))?
        };
        let dirs = if get("log.dir").is_empty() {
            get("log.dirs")
        } else {
            get("log.dir")
        };
        let log_dirs: Vec<PathBuf> = dirs
            .split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.len() != 1 {
            return Err(invalid(
                "log.dirs",
                &dirs,
                "must name exactly one directory (JBOD arrives later)",
            ));
        }
        let hours: i64 = number(get, "log.retention.hours")?;
        let retention_ms = if !get("log.retention.ms").is_empty() {
            number(get, "log.retention.ms")?
        } else if !get("log.retention.minutes").is_empty() {
            number::<i64>(get, "log.retention.minutes")? * 60_000
        } else {
            hours * 3_600_000
        };
        let roll_ms = if get("log.roll.ms").is_empty() {
            number::<i64>(get, "log.roll.hours")? * 3_600_000
        } else {
            number(get, "log.roll.ms")?
        };
        let flush_ms = if get("log.flush.interval.ms").is_empty() {
            i64::MAX
        } else {
            number(get, "log.flush.interval.ms")?
        };
        let timestamp_type = match get("log.message.timestamp.type").as_str() {
            "CreateTime" => TimestampType::CreateTime,
            "LogAppendTime" => TimestampType::LogAppendTime,
            other => {
                return Err(invalid(
                    "log.message.timestamp.type",
                    other,
                    "must be CreateTime or LogAppendTime",
                ))
            }
        };
        let mut log = LogConfig {
            segment_bytes: number(get, "log.segment.bytes")?,
            segment_ms: roll_ms,
            segment_index_bytes: number(get, "log.index.size.max.bytes")?,
            index_interval_bytes: number(get, "log.index.interval.bytes")?,
            retention_ms,
            retention_bytes: number(get, "log.retention.bytes")?,
            flush_messages: number(get, "log.flush.interval.messages")?,
            flush_ms,
            max_message_bytes: number(get, "message.max.bytes")?,
            message_timestamp_type: timestamp_type,
            producer_id_expiration_ms: number(get, "producer.id.expiration.ms")?,
            delete_retention_ms: number(get, "log.cleaner.delete.retention.ms")?,
            min_compaction_lag_ms: number(get, "log.cleaner.min.compaction.lag.ms")?,
            min_cleanable_dirty_ratio: number(get, "log.cleaner.min.cleanable.ratio")?,
            ..LogConfig::default()
        };
        log.set_cleanup_policy(&get("log.cleanup.policy")).map_err(|_| {
            invalid(
                "log.cleanup.policy",
                &get("log.cleanup.policy"),
                "must be delete, compact or both",
            )
        })?;
        let log_cleaner_dedupe_buffer_bytes: usize = number(get, "log.cleaner.dedupe.buffer.size")?;
        if log_cleaner_dedupe_buffer_bytes < 1024 * 1024 {
            return Err(invalid(
                "log.cleaner.dedupe.buffer.size",
                &get("log.cleaner.dedupe.buffer.size"),
                "must be at least 1048576",
            ));
        }
        if log.producer_id_expiration_ms < 1 {
            return Err(invalid(
                "producer.id.expiration.ms",
                &get("producer.id.expiration.ms"),
                "must be at least 1",
            ));
        }
        log.validate()
            .map_err(|why| format!("Invalid configuration: log.{why}"))?;
        let num_partitions: i32 = number(get, "num.partitions")?;
        if num_partitions < 1 {
            return Err(invalid("num.partitions", &get("num.partitions"), "must be at least 1"));
        }
        let default_replication_factor: i16 = number(get, "default.replication.factor")?;
        if default_replication_factor < 1 {
            return Err(invalid(
                "default.replication.factor",
                &get("default.replication.factor"),
                "must be at least 1",
            ));
        }
        let socket_request_max_bytes: usize = number(get, "socket.request.max.bytes")?;
        if socket_request_max_bytes < 1024 {
            return Err(invalid(
                "socket.request.max.bytes",
                &get("socket.request.max.bytes"),
                "must be at least 1024",
            ));
        }
        let group = group_config(get)?;
        let offsets_topic_partitions: i32 = number(get, "offsets.topic.num.partitions")?;
        if !(1..=1000).contains(&offsets_topic_partitions) {
            return Err(invalid(
                "offsets.topic.num.partitions",
                &get("offsets.topic.num.partitions"),
                "must be 1 to 1000",
            ));
        }
        let offsets_retention_check_interval_ms: i64 = number(get, "offsets.retention.check.interval.ms")?;
        if offsets_retention_check_interval_ms < 1 {
            return Err(invalid(
                "offsets.retention.check.interval.ms",
                &get("offsets.retention.check.interval.ms"),
                "must be at least 1",
            ));
        }
        Ok(ServerConfig {
            group,
            offsets_topic_partitions,
            offsets_topic_segment_bytes: {
                let bytes: u64 = number(get, "offsets.topic.segment.bytes")?;
                if !(crate::config::SEGMENT_BYTES_MIN..=crate::config::SEGMENT_BYTES_MAX).contains(&bytes) {
                    return Err(invalid(
                        "offsets.topic.segment.bytes",
                        &get("offsets.topic.segment.bytes"),
                        "must be a valid segment.bytes",
                    ));
                }
                bytes
            },
            offsets_retention_check_interval_ms,
            node_id,
            process_roles,
            listener,
            advertised_host,
            advertised_port,
            log_dirs,
            num_partitions,
            default_replication_factor,
            auto_create_topics_enable: boolean(get, "auto.create.topics.enable")?,
            log,
            socket_request_max_bytes,
            connections_max: number(get, "max.connections")?,
            connection_idle_ms_max: number(get, "connections.max.idle.ms")?,
            log_retention_check_interval_ms: number(get, "log.retention.check.interval.ms")?,
            log_cleaner_enable: boolean(get, "log.cleaner.enable")?,
            log_cleaner_backoff_ms: number(get, "log.cleaner.backoff.ms")?,
            log_cleaner_dedupe_buffer_bytes,
            fetch_max_bytes: number(get, "fetch.max.bytes")?,
            values: BTreeMap::new(),
        })
    }
}

fn group_config(get: &dyn Fn(&str) -> String) -> Result<crate::group::GroupConfig, String> {
    let positive = |key: &str| -> Result<i32, String> {
        let v: i32 = number(get, key)?;
        if v < 1 {
            return Err(invalid(key, &get(key), "must be at least 1"));
        }
        Ok(v)
    };
    let protocols = get("group.coordinator.rebalance.protocols");
    let names: Vec<&str> = protocols.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if names.iter().any(|n| *n != "classic" && *n != "consumer") || !names.contains(&"classic") {
        return Err(invalid(
            "group.coordinator.rebalance.protocols",
            &protocols,
            "must hold classic, and may hold consumer",
        ));
    }
    let session_min = positive("group.min.session.timeout.ms")?;
    let session_max = positive("group.max.session.timeout.ms")?;
    if session_max < session_min {
        return Err(invalid(
            "group.max.session.timeout.ms",
            &get("group.max.session.timeout.ms"),
            "must be at least group.min.session.timeout.ms",
        ));
    }
    let delay: i32 = number(get, "group.initial.rebalance.delay.ms")?;
    if delay < 0 {
        return Err(invalid(
            "group.initial.rebalance.delay.ms",
            &get("group.initial.rebalance.delay.ms"),
            "must be 0 or more",
        ));
    }
    let session = positive("group.consumer.session.timeout.ms")?;
    let interval = positive("group.consumer.heartbeat.interval.ms")?;
    if interval >= session {
        return Err(invalid(
            "group.consumer.heartbeat.interval.ms",
            &get("group.consumer.heartbeat.interval.ms"),
            "must be less than group.consumer.session.timeout.ms",
        ));
    }
    Ok(crate::group::GroupConfig {
        session_timeout_ms_min: session_min,
        session_timeout_ms_max: session_max,
        initial_rebalance_delay_ms: delay,
        group_members_max: positive("group.max.size")? as usize,
        offsets_retention_ms: positive("offsets.retention.minutes")? as i64 * 60_000,
        offset_metadata_bytes_max: positive("offset.metadata.max.bytes")? as usize,
        consumer_session_timeout_ms: session,
        consumer_heartbeat_interval_ms: interval,
        consumer_group_members_max: positive("group.consumer.max.size")? as usize,
        consumer_protocol_enabled: names.contains(&"consumer"),
        ..crate::group::GroupConfig::default()
    })
}

fn invalid(key: &str, value: &str, why: &str) -> String {
    format!("Invalid value {value} for configuration {key}: {why}")
}

fn number<T: std::str::FromStr>(get: &dyn Fn(&str) -> String, key: &str) -> Result<T, String> {
    let value = get(key);
    value.parse().map_err(|_| invalid(key, &value, "not a number in range"))
}

fn boolean(get: &dyn Fn(&str) -> String, key: &str) -> Result<bool, String> {
    match get(key).to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(invalid(key, other, "must be true or false")),
    }
}

/// `PLAINTEXT://host:port`, the one listener this broker opens.
fn parse_listener(text: &str) -> Result<SocketAddr, String> {
    let (host, port) = parse_host_port(text)?;
    let host = if host.is_empty() || host == "localhost" {
        "127.0.0.1".to_string()
    } else {
        host
    };
    format!("{host}:{port}")
        .parse()
        .map_err(|_| format!("{host} is not an IP address"))
}

fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let first = text.split(',').next().unwrap_or_default().trim();
    let rest = first.split_once("://").map(|(proto, rest)| (proto, rest));
    let (proto, address) = rest.ok_or("expected NAME://host:port")?;
    if proto != "PLAINTEXT" {
        return Err(format!("only PLAINTEXT listeners are supported, not {proto}"));
    }
    let (host, port) = address.rsplit_once(':').ok_or("expected host:port")?;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
    Ok((host.trim_matches(|c| c == '[' || c == ']').to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_a_single_node_on_9092() {
        let (config, warnings) = ServerConfig::parse("", &[]).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(config.listener, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(config.log_dirs, vec![PathBuf::from("klamm-data")]);
        assert_eq!(config.log.retention_ms, 168 * 3_600_000);
        assert_eq!(config.values["num.partitions"], "1");
    }

    #[test]
    fn keys_as_data() {
        let text = "# comment\nnode.id=3\nlisteners=PLAINTEXT://127.0.0.2:19092\nlog.dirs=/tmp/k\nlog.retention.minutes=5\nnum.partitions=4\nsome.unknown=1\n";
        let (config, warnings) =
            ServerConfig::parse(text, &["num.partitions=6".into(), "log.segment.bytes=1048576".into()]).unwrap();
        assert_eq!(config.node_id, 3);
        assert_eq!(config.listener, "127.0.0.2:19092".parse().unwrap());
        assert_eq!(config.num_partitions, 6);
        assert_eq!(config.log.retention_ms, 300_000);
        assert_eq!(config.log.segment_bytes, 1 << 20);
        assert_eq!(warnings.len(), 1);
        let bad: [(&str, &str); 8] = [
            ("node.id=x", "node.id"),
            ("num.partitions=0", "num.partitions"),
            ("listeners=SSL://1.2.3.4:1", "listeners"),
            ("auto.create.topics.enable=maybe", "auto.create.topics.enable"),
            ("log.segment.bytes=10", "segment.bytes"),
            ("log.message.timestamp.type=Now", "log.message.timestamp.type"),
            ("log.dirs=a,b", "log.dirs"),
            ("no equals sign", "expected key=value"),
        ];
        for (line, key) in bad {
            let err = ServerConfig::parse(line, &[]).unwrap_err();
            assert!(err.contains(key), "{line}: {err}");
        }
    }
}
