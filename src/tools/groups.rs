//! `klamm consumer-groups`, Kafka's kafka-consumer-groups.sh: list, describe with lag,
//! delete, and reset offsets (dry run by default, as in Kafka).

use std::collections::BTreeMap;

use super::args::Args;
use crate::client::{Admin, ClientConfig};

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

/// `klamm consumer-groups --bootstrap-server B --list | --describe --group G |
/// --delete --group G | --reset-offsets --group G (--topic T[:P,P] | --all-topics)
/// (--to-earliest | --to-latest | --to-offset N | --to-datetime D) [--dry-run | --execute]`
pub async fn consumer_groups(argv: &[String]) -> Result<(), String> {
    let a = Args::parse(
        argv,
        &[
            "list",
            "describe",
            "delete",
            "reset-offsets",
            "all-groups",
            "all-topics",
            "to-earliest",
            "to-latest",
            "dry-run",
            "execute",
            "state",
        ],
        &[
            "bootstrap-server",
            "group",
            "topic",
            "to-offset",
            "to-datetime",
            "command-config",
        ],
    )?;
    let config = ClientConfig::new().set("bootstrap.servers", a.required("bootstrap-server")?);
    let mut admin = Admin::new(&config).await.map_err(|e| e.to_string())?;
    let groups = |admin_groups: Vec<String>| -> Result<Vec<String>, String> {
        if a.has("all-groups") {
            return Ok(admin_groups);
        }
        let named: Vec<String> = a.all("group").iter().map(|s| s.to_string()).collect();
        if named.is_empty() {
            return Err("--group or --all-groups is required".into());
        }
        Ok(named)
    };
    if a.has("list") {
        let listed = admin.list_groups().await.map_err(|e| e.to_string())?;
        if a.has("state") {
            println!("{:<40} {:<20}", "GROUP", "STATE");
            for g in listed {
                println!("{:<40} {:<20}", g.group_id, g.state);
            }
        } else {
            for g in listed {
                println!("{}", g.group_id);
            }
        }
    } else if a.has("describe") {
        let all: Vec<String> = if a.has("all-groups") {
            admin
                .list_groups()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|g| g.group_id)
                .collect()
        } else {
            Vec::new()
        };
        for group in groups(all)? {
            describe(&mut admin, &group).await?;
        }
    } else if a.has("delete") {
        for group in groups(Vec::new())? {
            admin
                .delete_group(&group)
                .await
                .map_err(|e| format!("deleting group {group}: {e}"))?;
            println!("Deletion of requested consumer groups ('{group}') was successful.");
        }
    } else if a.has("reset-offsets") {
        let group = a.required("group")?.to_string();
        let target = if a.has("to-earliest") {
            Target::Timestamp(EARLIEST)
        } else if a.has("to-latest") {
            Target::Timestamp(LATEST)
        } else if let Some(o) = a.get("to-offset") {
            Target::Offset(o.parse().map_err(|_| format!("--to-offset: {o} is not an offset"))?)
        } else if let Some(d) = a.get("to-datetime") {
            Target::Timestamp(parse_datetime(d)?)
        } else {
            return Err("one of --to-earliest, --to-latest, --to-offset, --to-datetime is required".into());
        };
        let partitions = reset_scope(&mut admin, &a, &group).await?;
        let mut plan = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            let earliest = admin
                .list_offset(&topic, partition, EARLIEST)
                .await
                .map_err(|e| e.to_string())?;
            let latest = admin
                .list_offset(&topic, partition, LATEST)
                .await
                .map_err(|e| e.to_string())?;
            let offset = match target {
                // Out of range clamps to the log, as Kafka's tool does.
                Target::Offset(o) => o.clamp(earliest, latest),
                Target::Timestamp(t) => match admin
                    .list_offset(&topic, partition, t)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    -1 => latest,
                    o => o,
                },
            };
            plan.push(((topic, partition), offset));
        }
        println!(
            "{:<30} {:<30} {:<10} {:<15}",
            "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"
        );
        for ((topic, partition), offset) in &plan {
            println!("{group:<30} {topic:<30} {partition:<10} {offset:<15}");
        }
        if a.has("execute") {
            admin
                .alter_group_offsets(&group, &plan)
                .await
                .map_err(|e| format!("resetting {group} (is the group inactive?): {e}"))?;
        } else {
            eprintln!("(a dry run: nothing was changed; --execute resets the offsets)");
        }
    } else {
        return Err("one of --list, --describe, --delete, --reset-offsets is required".into());
    }
    Ok(())
}

enum Target {
    Offset(i64),
    Timestamp(i64),
}

/// The partitions `--topic T[:P,...]` or `--all-topics` (those with committed offsets) name.
async fn reset_scope(admin: &mut Admin, a: &Args, group: &str) -> Result<Vec<(String, i32)>, String> {
    if a.has("all-topics") {
        let committed = admin.group_offsets(group).await.map_err(|e| e.to_string())?;
        return Ok(committed.into_iter().map(|(tp, _)| tp).collect());
    }
    let mut out = Vec::new();
    let topics = a.all("topic");
    if topics.is_empty() {
        return Err("--topic or --all-topics is required".into());
    }
    for spec in topics {
        match spec.split_once(':') {
            Some((topic, list)) => {
                for p in list.split(',') {
                    out.push((
                        topic.to_string(),
                        p.parse().map_err(|_| format!("--topic {spec}: bad partition"))?,
                    ));
                }
            }
            None => {
                let described = admin
                    .describe_topics(Some(&[spec.to_string()]))
                    .await
                    .map_err(|e| e.to_string())?;
                for t in described {
                    out.extend(t.partitions.iter().map(|p| (t.name.clone(), p.0)));
                }
            }
        }
    }
    Ok(out)
}

async fn describe(admin: &mut Admin, group: &str) -> Result<(), String> {
    let (state, members) = admin.describe_group(group).await.map_err(|e| e.to_string())?;
    let committed = admin.group_offsets(group).await.map_err(|e| e.to_string())?;
    let mut rows: BTreeMap<(String, i32), (Option<i64>, String, String, String)> = BTreeMap::new();
    for (tp, offset) in committed {
        rows.insert(tp, (Some(offset), "-".into(), "-".into(), "-".into()));
    }
    for (member, client, host, assigned) in &members {
        for tp in assigned {
            let row = rows
                .entry(tp.clone())
                .or_insert((None, String::new(), String::new(), String::new()));
            row.1 = member.clone();
            row.2 = host.clone();
            row.3 = client.clone();
        }
    }
    if state == "Empty" || state == "Dead" {
        println!("\nConsumer group '{group}' has no active members.");
    }
    println!(
        "\n{:<25} {:<25} {:<10} {:<15} {:<15} {:<8} {:<45} {:<16} {}",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"
    );
    for ((topic, partition), (offset, member, host, client)) in rows {
        let end = admin
            .list_offset(&topic, partition, LATEST)
            .await
            .map_err(|e| e.to_string())?;
        let (current, lag) = match offset {
            Some(o) if o >= 0 => (o.to_string(), (end - o).max(0).to_string()),
            _ => ("-".to_string(), "-".to_string()),
        };
        println!(
            "{group:<25} {topic:<25} {partition:<10} {current:<15} {end:<15} {lag:<8} {member:<45} {host:<16} {client}"
        );
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:mm:SS[.sss]`, UTC, as Kafka's tool takes it, to epoch milliseconds.
fn parse_datetime(text: &str) -> Result<i64, String> {
    let bad = || format!("--to-datetime: {text} is not YYYY-MM-DDTHH:mm:SS.sss");
    let text = text.trim_end_matches('Z');
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (hms, millis) = match time.split_once('.') {
        Some((hms, ms)) => (hms, ms.parse::<i64>().map_err(|_| bad())?),
        None => (time, 0),
    };
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if d.len() != 3 || t.len() != 3 || !(1..=12).contains(&d[1]) || !(1..=31).contains(&d[2]) {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + millis)
}

#[cfg(test)]
mod tests {
    #[test]
    fn datetimes_as_kafka_takes_them() {
        for (text, want) in [
            ("1970-01-01T00:00:00.000", Ok(0)),
            ("2026-11-27T03:10:19.500", Ok(1_795_749_019_500)),
            ("2000-02-29T12:00:00", Ok(951_825_600_000)),
            ("2026-13-01T00:00:00", Err(())),
            ("yesterday", Err(())),
        ] {
            assert_eq!(super::parse_datetime(text).map_err(|_| ()), want, "{text}");
        }
    }
}
