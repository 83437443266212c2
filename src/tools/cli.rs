//! The Kafka-style tools of the `klamm` binary: `topics`, `console-producer`,
//! `console-consumer`, `producer-perf-test`, `consumer-perf-test`. Each returns its exit code.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Write};
use std::time::Duration;

use bytes::Bytes;

use super::args::Args;
use crate::client::{
    Admin, ClientConfig, ClientError, Consumer, Delivery, GroupConsumer, Producer, ProducerRecord, RecordMetadata,
};
use crate::server::clock;

fn client_config(bootstrap: &str, properties: &[&str]) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::from_pairs(properties.iter().copied()).map_err(|e| e.to_string())?;
    if config.get("bootstrap.servers").is_none() {
        config = config.set("bootstrap.servers", bootstrap);
    }
    Ok(config)
}

/// `klamm topics --bootstrap-server B --create|--list|--describe|--delete|--alter ...`
pub async fn topics(argv: &[String]) -> Result<(), String> {
    let a = Args::parse(
        argv,
        &["create", "list", "describe", "delete", "alter", "if-not-exists"],
        &[
            "bootstrap-server",
            "topic",
            "partitions",
            "replication-factor",
            "config",
            "command-config",
        ],
    )?;
    let config = client_config(a.required("bootstrap-server")?, &[])?;
    let mut admin = Admin::new(&config).await.map_err(|e| e.to_string())?;
    if a.has("create") {
        let topic = a.required("topic")?;
        let configs: Vec<(String, String)> = a.pairs("config")?.into_iter().collect();
        match admin
            .create_topic(
                topic,
                a.number("partitions", -1)?,
                a.number("replication-factor", -1)?,
                &configs,
            )
            .await
        {
            Ok(()) => println!("Created topic {topic}."),
            Err(crate::client::ClientError::Kafka(36, _)) if a.has("if-not-exists") => {}
            Err(e) => return Err(e.to_string()),
        }
    } else if a.has("list") {
        for name in admin.list_topics().await.map_err(|e| e.to_string())? {
            println!("{name}");
        }
    } else if a.has("describe") {
        let names = a.get("topic").map(|t| vec![t.to_string()]);
        for t in admin
            .describe_topics(names.as_deref())
            .await
            .map_err(|e| e.to_string())?
        {
            let configs = admin.describe_topic_configs(&t.name).await.map_err(|e| e.to_string())?;
            let overrides: Vec<String> = configs
                .iter()
                .filter(|c| c.2 == 1)
                .map(|c| format!("{}={}", c.0, c.1.clone().unwrap_or_default()))
                .collect();
            println!(
                "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                t.name,
                t.topic_id,
                t.partitions.len(),
                t.partitions.first().map_or(0, |p| p.2.len()),
                overrides.join(",")
            );
            for (partition, leader, replicas, isr) in &t.partitions {
                let list = |v: &Vec<i32>| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
                println!(
                    "\tTopic: {}\tPartition: {partition}\tLeader: {leader}\tReplicas: {}\tIsr: {}",
                    t.name,
                    list(replicas),
                    list(isr)
                );
            }
        }
    } else if a.has("delete") {
        admin
            .delete_topic(a.required("topic")?)
            .await
            .map_err(|e| e.to_string())?;
    } else if a.has("alter") {
        admin
            .create_partitions(a.required("topic")?, a.number("partitions", 0)?)
            .await
            .map_err(|e| e.to_string())?;
    } else {
        return Err("one of --create, --list, --describe, --delete, --alter is required".into());
    }
    Ok(())
}

/// `klamm console-producer --bootstrap-server B --topic T`: one record per stdin line.
pub async fn console_producer(argv: &[String]) -> Result<(), String> {
    let a = Args::parse(
        argv,
        &[],
        &[
            "bootstrap-server",
            "topic",
            "property",
            "producer-property",
            "compression-codec",
            "request-required-acks",
        ],
    )?;
    let mut properties: Vec<String> = a.all("producer-property").iter().map(|s| s.to_string()).collect();
    if let Some(codec) = a.get("compression-codec") {
        properties.push(format!("compression.type={codec}"));
    }
    if let Some(acks) = a.get("request-required-acks") {
        properties.push(format!("acks={acks}"));
    }
    let config = client_config(
        a.required("bootstrap-server")?,
        &properties.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let reader = a.pairs("property")?;
    let parse_key = reader.get("parse.key").is_some_and(|v| v == "true");
    let separator = reader.get("key.separator").cloned().unwrap_or_else(|| "\t".into());
    let topic: std::sync::Arc<str> = a.required("topic")?.into();
    let producer = Producer::new(config).await.map_err(|e| e.to_string())?;
    let mut deliveries = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let (key, value) = match (parse_key, line.split_once(&separator)) {
            (true, Some((k, v))) => (Some(Bytes::from(k.to_string())), v.to_string()),
            (true, None) => return Err(format!("no key separator {separator:?} in {line:?}")),
            (false, _) => (None, line),
        };
        let record = ProducerRecord {
            topic: topic.clone(),
            key,
            value: Some(Bytes::from(value)),
            ..Default::default()
        };
        deliveries.push(producer.send(record).await.map_err(|e| e.to_string())?);
    }
    producer.flush().await;
    for d in deliveries {
        d.await.map_err(|e| e.to_string())?;
    }
    producer.close().await;
    Ok(())
}

/// `klamm console-consumer --bootstrap-server B --topic T [--from-beginning]`: every
/// partition by assignment, or with `--group G` as a member of that group (committing as it
/// goes, and leaving the group when done).
pub async fn console_consumer(argv: &[String]) -> Result<(), String> {
    let a = Args::parse(
        argv,
        &["from-beginning"],
        &[
            "bootstrap-server",
            "topic",
            "partition",
            "offset",
            "max-messages",
            "timeout-ms",
            "property",
            "consumer-property",
            "isolation-level",
            "group",
        ],
    )?;
    let topic = a.required("topic")?.to_string();
    if a.get("group").is_some() && (a.get("partition").is_some() || a.get("offset").is_some()) {
        return Err("--group cannot be used with --partition or --offset".into());
    }
    let mut properties: Vec<String> = a.all("consumer-property").iter().map(|s| s.to_string()).collect();
    properties.push(format!(
        "auto.offset.reset={}",
        if a.has("from-beginning") { "earliest" } else { "latest" }
    ));
    if let Some(level) = a.get("isolation-level") {
        properties.push(format!("isolation.level={level}"));
    }
    if let Some(group) = a.get("group") {
        properties.push(format!("group.id={group}"));
    }
    let config = client_config(
        a.required("bootstrap-server")?,
        &properties.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let printing = a.pairs("property")?;
    let flag = |name: &str| printing.get(name).is_some_and(|v| v == "true");
    let separator = printing.get("key.separator").cloned().unwrap_or_else(|| "\t".into());
    let mut consumer = if a.get("group").is_some() {
        let mut member = GroupConsumer::new(config).map_err(|e| e.to_string())?;
        member.subscribe(std::slice::from_ref(&topic));
        ConsoleSource::Group(member)
    } else {
        let mut admin = Admin::new(&config).await.map_err(|e| e.to_string())?;
        let described = admin
            .describe_topics(Some(&[topic.clone()]))
            .await
            .map_err(|e| e.to_string())?;
        let partitions: Vec<i32> = match a.get("partition") {
            Some(p) => vec![p.parse().map_err(|_| format!("--partition: {p} is not a number"))?],
            None => described[0].partitions.iter().map(|p| p.0).collect(),
        };
        let mut consumer = Consumer::new(config).map_err(|e| e.to_string())?;
        consumer.assign(partitions.iter().map(|&p| (topic.clone(), p)).collect());
        seek_console(&mut consumer, &topic, &partitions, a.get("offset")).await?;
        ConsoleSource::Assigned(consumer)
    };
    let max_messages: u64 = a.number("max-messages", u64::MAX)?;
    let idle = a
        .get("timeout-ms")
        .map(|t| t.parse::<u64>().map(Duration::from_millis))
        .transpose()
        .map_err(|_| "--timeout-ms is not a number".to_string())?;
    let mut count = 0u64;
    let mut last_record = clock::monotonic();
    let stdout = std::io::stdout();
    while count < max_messages {
        let records = match &mut consumer {
            ConsoleSource::Assigned(c) => c.poll(Duration::from_millis(500)).await.map_err(|e| e.to_string())?,
            // A group member rides out coordinator moves and rebalances.
            ConsoleSource::Group(c) => c.poll(Duration::from_millis(500)).await.unwrap_or_default(),
        };
        if records.is_empty() {
            if idle.is_some_and(|t| clock::monotonic().duration_since(last_record) >= t) {
                break;
            }
            continue;
        }
        last_record = clock::monotonic();
        let mut out = stdout.lock();
        let wanted = (max_messages - count) as usize;
        if records.len() > wanted {
            // What is not printed is not consumed: a group commits only what was shown.
            if let ConsoleSource::Group(member) = &mut consumer {
                let mut first_unprinted: BTreeMap<i32, i64> = BTreeMap::new();
                for r in &records[wanted..] {
                    first_unprinted.entry(r.partition).or_insert(r.offset);
                }
                for (partition, offset) in first_unprinted {
                    member.seek(&topic, partition, offset);
                }
            }
        }
        for r in records.into_iter().take(wanted) {
            let mut line = String::new();
            if flag("print.timestamp") {
                line.push_str(&format!("CreateTime:{}{separator}", r.timestamp));
            }
            if flag("print.partition") {
                line.push_str(&format!("Partition:{}{separator}", r.partition));
            }
            if flag("print.offset") {
                line.push_str(&format!("Offset:{}{separator}", r.offset));
            }
            if flag("print.headers") {
                let headers: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}:{}",
                            v.as_ref()
                                .map_or("NULL".into(), |v| String::from_utf8_lossy(v).into_owned())
                        )
                    })
                    .collect();
                line.push_str(&format!(
                    "{}{separator}",
                    if headers.is_empty() {
                        "NO_HEADERS".to_string()
                    } else {
                        headers.join(",")
                    }
                ));
            }
            if flag("print.key") {
                line.push_str(&format!(
                    "{}{separator}",
                    r.key
                        .as_ref()
                        .map_or("null".into(), |k| String::from_utf8_lossy(k).into_owned())
                ));
            }
            line.push_str(
                &r.value
                    .as_ref()
                    .map_or("null".into(), |v| String::from_utf8_lossy(v).into_owned()),
            );
            let _ = writeln!(out, "{line}");
            count += 1;
        }
    }
    if let ConsoleSource::Group(member) = consumer {
        member.close().await.map_err(|e| e.to_string())?;
    }
    eprintln!("Processed a total of {count} messages");
    Ok(())
}

enum ConsoleSource {
    Assigned(Consumer),
    Group(GroupConsumer),
}

async fn seek_console(
    consumer: &mut Consumer,
    topic: &str,
    partitions: &[i32],
    offset: Option<&str>,
) -> Result<(), String> {
    let Some(offset) = offset else {
        return Ok(());
    };
    for &p in partitions {
        match offset {
            "earliest" => drop(consumer.seek_to(topic, p, true).await.map_err(|e| e.to_string())?),
            "latest" => drop(consumer.seek_to(topic, p, false).await.map_err(|e| e.to_string())?),
            n => consumer.seek(
                topic,
                p,
                n.parse().map_err(|_| format!("--offset: {n} is not an offset"))?,
            ),
        }
    }
    Ok(())
}

/// Latencies past this many milliseconds count in the histogram's last bucket (the maximum
/// is still kept exactly): ten minutes, 4.8 MB of counts at most.
const LATENCY_MS_MAX: usize = 600_000;

/// Record latencies in whole milliseconds, as counts per millisecond: memory bounded by the
/// longest latency seen, not by the number of records, and O(1) a record. Its percentiles
/// are the ones a sorted list of every latency gives.
#[derive(Default)]
struct LatencyHistogram {
    counts: Vec<u64>,
    count: u64,
    sum_ms: u64,
    max_ms: u64,
}

impl LatencyHistogram {
    fn record(&mut self, ms: u64) {
        let bucket = (ms as usize).min(LATENCY_MS_MAX);
        if bucket >= self.counts.len() {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    fn avg_ms(&self) -> f64 {
        self.sum_ms as f64 / self.count.max(1) as f64
    }

    /// The latency at index `count * p` (rounded down) of the sorted latencies; 0 when
    /// there are none.
    fn percentile_ms(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64 * p) as u64).min(self.count - 1);
        let mut seen = 0;
        for (ms, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen > rank {
                return if ms == LATENCY_MS_MAX { self.max_ms } else { ms as u64 };
            }
        }
        unreachable!("the counts add up to count")
    }
}

/// The producer perf test's latencies, and its progress line every 5 seconds.
struct Latencies {
    record_size: usize,
    all: LatencyHistogram,
    window_start: tokio::time::Instant,
    window: LatencyHistogram,
}

impl Latencies {
    fn new(record_size: usize) -> Latencies {
        Latencies {
            record_size,
            all: LatencyHistogram::default(),
            window_start: clock::monotonic(),
            window: LatencyHistogram::default(),
        }
    }

    /// A record sent at `sent` and seen settled at `now`.
    fn record(
        &mut self,
        sent: tokio::time::Instant,
        now: tokio::time::Instant,
        result: Result<RecordMetadata, ClientError>,
    ) -> Result<(), String> {
        result.map_err(|e| format!("a record failed: {e}"))?;
        self.record_ok(sent, now);
        Ok(())
    }

    /// A record sent at `sent` and seen acknowledged at `now`.
    fn record_ok(&mut self, sent: tokio::time::Instant, now: tokio::time::Instant) {
        let ms = now.duration_since(sent).as_millis() as u64;
        self.all.record(ms);
        self.window.record(ms);
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= Duration::from_secs(5) {
            let rate = self.window.count as f64 / elapsed.as_secs_f64();
            println!(
                "{} records sent, {rate:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
                self.window.count,
                rate * self.record_size as f64 / 1048576.0,
                self.window.avg_ms(),
                self.window.max_ms as f64
            );
            self.window_start = now;
            self.window = LatencyHistogram::default();
        }
    }

    /// Takes the deliveries settled by `now` off the front of `pending`, without waiting.
    fn settle_ready(
        &mut self,
        pending: &mut VecDeque<(tokio::time::Instant, Delivery)>,
        now: tokio::time::Instant,
    ) -> Result<(), String> {
        while let Some((sent, delivery)) = pending.front() {
            let Some(result) = delivery.try_settled() else {
                return Ok(());
            };
            let sent = *sent;
            let (_, settled) = pending.pop_front().expect("looked at above");
            self.record(sent, now, result)?;
            // The rest of its batch settled with it: their latencies without building each
            // one's metadata (which clones and drops the topic's shared name).
            while let Some((sent, delivery)) = pending.front() {
                if !delivery.is_same_batch(&settled) {
                    break;
                }
                let sent = *sent;
                pending.pop_front();
                self.record_ok(sent, now);
            }
        }
        Ok(())
    }

    /// Waits until `due`, taking deliveries off the front of `pending` as they settle.
    async fn settle_until(
        &mut self,
        pending: &mut VecDeque<(tokio::time::Instant, Delivery)>,
        due: tokio::time::Instant,
    ) -> Result<(), String> {
        loop {
            let now = clock::monotonic();
            self.settle_ready(pending, now)?;
            // Checked here, not left to a timer: tokio's timers tick in milliseconds, so even
            // a deadline already past would cost up to one tick per record.
            if now >= due {
                return Ok(());
            }
            let Some((sent, delivery)) = pending.front_mut() else {
                tokio::time::sleep_until(due).await;
                return Ok(());
            };
            let Ok(result) = tokio::time::timeout(due - now, delivery).await else {
                return Ok(());
            };
            let sent = *sent;
            pending.pop_front();
            self.record(sent, clock::monotonic(), result)?;
        }
    }
}

/// `klamm producer-perf-test --topic T --num-records N --record-size S --throughput R
/// --producer-props bootstrap.servers=B ...`, with Kafka's output.
pub async fn producer_perf_test(argv: &[String]) -> Result<(), String> {
    let a = Args::parse(
        argv,
        &[],
        &[
            "topic",
            "num-records",
            "record-size",
            "throughput",
            "producer-props+",
            "bootstrap-server",
        ],
    )?;
    let topic: std::sync::Arc<str> = a.required("topic")?.into();
    let records: u64 = a.number("num-records", 0)?;
    let size: usize = a.number("record-size", 100)?;
    let throughput: f64 = a.number("throughput", -1.0)?;
    let props = a.all("producer-props");
    let config = client_config(a.get("bootstrap-server").unwrap_or("127.0.0.1:9092"), &props)?;
    let producer = Producer::new(config).await.map_err(|e| e.to_string())?;
    // Static, so that each record's clone and drop of it is free: a shared `Bytes` costs two
    // atomic operations a record. Leaked once, for the life of the process.
    let payload: &'static [u8] = Vec::leak((0..size).map(|i| b'A' + (i % 26) as u8).collect());
    let payload = Bytes::from_static(payload);
    let start_ms = clock::now_ms();
    let start = clock::monotonic();
    // Deliveries not yet seen settled, oldest first. The loop looks at them between sends,
    // with no task or channel of their own: a record's latency is from its send to the
    // first look that finds it acknowledged.
    let mut pending: VecDeque<(tokio::time::Instant, Delivery)> = VecDeque::new();
    let mut latency = Latencies::new(size);
    for i in 0..records {
        if throughput > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / throughput);
            latency.settle_until(&mut pending, due).await?;
        }
        // One clock read a record (at 3M records a second a read is a few percent of the
        // client): when the ones before it are looked at, which is right away (a look after
        // `send` would credit a delivery settled during it with an earlier time), and the
        // record's send time and timestamp (the wall clock at the start plus the time
        // since, as the producer would stamp it).
        let now = clock::monotonic();
        latency.settle_ready(&mut pending, now)?;
        let mut record = ProducerRecord::new(topic.clone(), Some(payload.clone()));
        record.timestamp = Some(start_ms + now.duration_since(start).as_millis() as i64);
        let delivery = producer.send(record).await.map_err(|e| e.to_string())?;
        pending.push_back((now, delivery));
    }
    producer.flush().await;
    latency.settle_ready(&mut pending, clock::monotonic())?;
    if let Some((_, delivery)) = pending.front() {
        return Err(format!("a record was not settled by flush: {delivery:?}"));
    }
    let latencies = latency.all;
    if latencies.count != records {
        return Err(format!("{} latencies for {records} records", latencies.count));
    }
    let elapsed = clock::monotonic().duration_since(start).as_secs_f64();
    let rate = records as f64 / elapsed;
    println!(
        "{records} records sent, {rate:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        rate * size as f64 / 1048576.0,
        latencies.avg_ms(),
        latencies.max_ms as f64,
        latencies.percentile_ms(0.5),
        latencies.percentile_ms(0.95),
        latencies.percentile_ms(0.99),
        latencies.percentile_ms(0.999)
    );
    producer.close().await;
    Ok(())
}

/// `klamm consumer-perf-test --bootstrap-server B --topic T --messages N`, with Kafka's CSV.
pub async fn consumer_perf_test(argv: &[String]) -> Result<(), String> {
    let a = Args::parse(
        argv,
        &["hide-header"],
        &[
            "bootstrap-server",
            "topic",
            "messages",
            "timeout",
            "consumer.config",
            "fetch-size",
        ],
    )?;
    let topic = a.required("topic")?.to_string();
    let messages: u64 = a.number("messages", u64::MAX)?;
    let timeout = Duration::from_millis(a.number("timeout", 10_000u64)?);
    let mut props = vec!["auto.offset.reset=earliest".to_string()];
    if let Some(size) = a.get("fetch-size") {
        props.push(format!("max.partition.fetch.bytes={size}"));
    }
    let config = client_config(
        a.required("bootstrap-server")?,
        &props.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let mut admin = Admin::new(&config).await.map_err(|e| e.to_string())?;
    let described = admin
        .describe_topics(Some(&[topic.clone()]))
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = Consumer::new(config.set("max.poll.records", 100_000)).map_err(|e| e.to_string())?;
    consumer.assign(described[0].partitions.iter().map(|p| (topic.clone(), p.0)).collect());
    let start_ms = clock::now_ms();
    let start = clock::monotonic();
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut last = clock::monotonic();
    while count < messages && clock::monotonic().duration_since(last) < timeout {
        let records = consumer
            .poll(Duration::from_millis(100))
            .await
            .map_err(|e| e.to_string())?;
        if !records.is_empty() {
            last = clock::monotonic();
        }
        for r in records {
            count += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len()) as u64 + r.key.as_ref().map_or(0, |k| k.len()) as u64;
        }
    }
    let elapsed = clock::monotonic().duration_since(start).as_secs_f64();
    let mb = bytes as f64 / 1048576.0;
    if !a.has("hide-header") {
        println!("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec");
    }
    println!(
        "{start_ms}, {}, {mb:.4}, {:.4}, {count}, {:.4}, 0, {}, {:.4}, {:.4}",
        clock::now_ms(),
        mb / elapsed,
        count as f64 / elapsed,
        (elapsed * 1000.0) as u64,
        mb / elapsed,
        count as f64 / elapsed
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{LatencyHistogram, LATENCY_MS_MAX};

    /// The histogram's percentiles, average and maximum against a sorted list of the same
    /// latencies, indexed as the perf test always has: `len * p`, rounded down.
    fn check(latencies: &[u64]) {
        let mut histogram = LatencyHistogram::default();
        latencies.iter().for_each(|&ms| histogram.record(ms));
        let mut sorted = latencies.to_vec();
        sorted.sort_unstable();
        for p in [0.0, 0.5, 0.95, 0.99, 0.999, 1.0] {
            let expected = sorted
                .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0);
            assert_eq!(histogram.percentile_ms(p), expected, "p{p} of {latencies:?}");
        }
        assert_eq!(histogram.max_ms, sorted.last().copied().unwrap_or(0));
        let avg = sorted.iter().sum::<u64>() as f64 / sorted.len().max(1) as f64;
        assert_eq!(histogram.avg_ms(), avg);
    }

    #[test]
    fn latency_percentiles_match_a_sorted_list() {
        check(&[]);
        check(&[0]);
        check(&[7]);
        check(&[3, 1, 2]);
        check(&[5; 10]);
        check(&(0..1000).rev().collect::<Vec<_>>());
        check(
            &(0..1000)
                .map(|i| if i % 100 == 0 { 250 } else { i % 3 })
                .collect::<Vec<_>>(),
        );
        // The 99.9th percentile lands on the one slow record of a thousand.
        check(&(0..1000).map(|i| if i == 500 { 40 } else { 1 }).collect::<Vec<_>>());
    }

    #[test]
    fn a_latency_past_the_last_bucket_counts_there_and_stays_the_exact_maximum() {
        let huge = LATENCY_MS_MAX as u64 * 10;
        let mut histogram = LatencyHistogram::default();
        histogram.record(1);
        histogram.record(huge);
        assert_eq!(histogram.counts.len(), LATENCY_MS_MAX + 1);
        assert_eq!(histogram.max_ms, huge);
        assert_eq!(histogram.percentile_ms(0.5), huge);
        assert_eq!(histogram.percentile_ms(0.0), 1);
        assert_eq!(histogram.avg_ms(), (huge + 1) as f64 / 2.0);
    }
}
