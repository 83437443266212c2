//! Kafka-style command-line options: `--name value`, repeatable, and `--flag` switches.

use std::collections::BTreeMap;

pub struct Args {
    values: BTreeMap<String, Vec<String>>,
    switches: Vec<String>,
}

impl Args {
    /// `switches` take no value; every other `--option` takes one, except those named with a
    /// trailing `+` (as `producer-props+`), which take every value up to the next option.
    pub fn parse(args: &[String], switches: &[&str], options: &[&str]) -> Result<Args, String> {
        let mut parsed = Args {
            values: BTreeMap::new(),
            switches: Vec::new(),
        };
        let mut rest = args.iter().peekable();
        while let Some(arg) = rest.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg}"))?;
            if switches.contains(&name) {
                parsed.switches.push(name.to_string());
            } else if options.iter().any(|o| o.strip_suffix('+') == Some(name)) {
                let values = parsed.values.entry(name.to_string()).or_default();
                while let Some(value) = rest.next_if(|v| !v.starts_with("--")) {
                    values.push(value.clone());
                }
                if values.is_empty() {
                    return Err(format!("--{name} needs a value"));
                }
            } else if options.contains(&name) {
                let value = rest.next().ok_or_else(|| format!("--{name} needs a value"))?;
                parsed.values.entry(name.to_string()).or_default().push(value.clone());
            } else {
                return Err(format!("unknown option --{name}"));
            }
        }
        Ok(parsed)
    }

    pub fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("--{name} is required"))
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name}: {v} is not a number")),
        }
    }

    /// `--property k=v` style pairs.
    pub fn pairs(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for p in self.all(name) {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("--{name} takes key=value, not {p}"))?;
            out.insert(k.to_string(), v.to_string());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Args;

    #[test]
    fn parses_kafka_style_options() {
        let args: Vec<String> = [
            "--topic",
            "t",
            "--from-beginning",
            "--property",
            "print.key=true",
            "--property",
            "key.separator=:",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = Args::parse(&args, &["from-beginning"], &["topic", "property"]).unwrap();
        assert_eq!(a.get("topic"), Some("t"));
        assert!(a.has("from-beginning"));
        assert_eq!(a.pairs("property").unwrap()["key.separator"], ":");
        assert!(Args::parse(&["--nope".to_string()], &[], &[]).is_err());
        assert!(Args::parse(&["--topic".to_string()], &[], &["topic"]).is_err());
        let args: Vec<String> = ["--producer-props", "a=1", "b=2", "--topic", "t"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = Args::parse(&args, &[], &["producer-props+", "topic"]).unwrap();
        assert_eq!(a.all("producer-props"), vec!["a=1", "b=2"]);
    }
}
