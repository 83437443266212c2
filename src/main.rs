//! The `klamm` binary: the broker (`klamm server`) and the tools that work on data directly.

use std::path::Path;
use std::process::ExitCode;

use klamm::io::{read_to_end, RealStorage};
use klamm::server::{Broker, ServerConfig};
use klamm::tools::cli;
use klamm::tools::dump_log::dump_segment;

const USAGE: &str = "usage:
  klamm server [server.properties] [--override key=value ...]  run a broker (default: 127.0.0.1:9092, ./klamm-data)
  klamm topics --bootstrap-server HOST:PORT --create|--list|--describe|--delete|--alter [--topic T] [--partitions N] [--replication-factor R] [--config k=v]
  klamm console-producer --bootstrap-server HOST:PORT --topic T [--property parse.key=true] [--producer-property k=v]
  klamm console-consumer --bootstrap-server HOST:PORT --topic T [--group G] [--from-beginning] [--max-messages N] [--property print.key=true]
  klamm consumer-groups --bootstrap-server HOST:PORT --list|--describe|--delete|--reset-offsets [--group G|--all-groups] [--topic T[:P,..]|--all-topics] [--to-earliest|--to-latest|--to-offset N|--to-datetime D] [--dry-run|--execute]
  klamm producer-perf-test --topic T --num-records N --record-size S --throughput R --producer-props bootstrap.servers=HOST:PORT ...
  klamm consumer-perf-test --bootstrap-server HOST:PORT --topic T --messages N
  klamm dump-log --files FILE[,FILE...] [--print-data-log]   print the batches of segment files
  klamm version                                              print the version";

/// Segment files larger than this are refused rather than read whole.
const DUMP_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version" | "--version") => {
            println!("klamm {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("dump-log") => dump_log(&args[1..]),
        Some("server") => server(&args[1..]),
        Some(
            tool @ ("topics" | "console-producer" | "console-consumer" | "consumer-groups" | "producer-perf-test"
            | "consumer-perf-test"),
        ) => tool_command(tool, &args[1..]),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage_error("expected a command"),
    }
}

fn dump_log(args: &[String]) -> ExitCode {
    let mut files = Vec::new();
    let mut print_data = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--files" => match rest.next() {
                Some(list) => files.extend(list.split(',').map(str::to_string)),
                None => return usage_error("--files needs a value"),
            },
            "--print-data-log" => print_data = true,
            other => return usage_error(&format!("unknown option {other}")),
        }
    }
    if files.is_empty() {
        return usage_error("--files is required");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let storage = RealStorage::new(".");
    let mut status = ExitCode::SUCCESS;
    for file in files {
        match runtime.block_on(read_to_end(&storage, Path::new(&file), DUMP_FILE_BYTES_MAX)) {
            Ok(bytes) => print!("{}", dump_segment(&file, &bytes, print_data)),
            Err(e) => {
                eprintln!("klamm dump-log: {file}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

fn server(args: &[String]) -> ExitCode {
    let mut properties_file = None;
    let mut overrides = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--override" => match rest.next() {
                Some(kv) => overrides.push(kv.clone()),
                None => return usage_error("--override needs key=value"),
            },
            file if properties_file.is_none() && !file.starts_with("--") => properties_file = Some(file.to_string()),
            other => return usage_error(&format!("unknown argument {other}")),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let storage = RealStorage::new(".");
    let text = match &properties_file {
        Some(file) => match runtime.block_on(read_to_end(&storage, Path::new(file), 1 << 20)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                eprintln!("klamm server: {file}: {e}");
                return ExitCode::from(2);
            }
        },
        None => String::new(),
    };
    let config = match ServerConfig::parse(&text, &overrides) {
        Ok((config, warnings)) => {
            for w in warnings {
                eprintln!("klamm server: warning: {w}");
            }
            config
        }
        Err(e) => {
            eprintln!("klamm server: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listener).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("klamm server: cannot listen on {}: {e}", config.listener);
                return ExitCode::FAILURE;
            }
        };
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let started = |broker: &std::sync::Arc<Broker<RealStorage>>| {
            eprintln!(
                "klamm server: node {} of cluster {} listening on {address}, data in {}",
                broker.config.node_id,
                broker.cluster_id,
                broker.log_dir().display()
            );
        };
        let shutdown = async {
            shutdown_signal().await;
            eprintln!("klamm server: shutting down");
        };
        if let Err(e) = klamm::server::run(config, storage, listener, started, shutdown).await {
            eprintln!("klamm server: {e}");
            return ExitCode::FAILURE;
        }
        ExitCode::SUCCESS
    })
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn tool_command(tool: &str, args: &[String]) -> ExitCode {
    // One thread: the tools' work is one client, and on a small machine a second thread
    // costs more in wake-ups between threads than it gives (producer-perf-test moved about
    // 1.3 times the bytes per second this way, against a two-thread runtime).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match tool {
            "topics" => cli::topics(args).await,
            "console-producer" => cli::console_producer(args).await,
            "console-consumer" => cli::console_consumer(args).await,
            "consumer-groups" => klamm::tools::groups::consumer_groups(args).await,
            "producer-perf-test" => cli::producer_perf_test(args).await,
            _ => cli::consumer_perf_test(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("klamm {tool}: {why}");
            ExitCode::from(if why.contains("--") { 2 } else { 1 })
        }
    }
}

fn usage_error(why: &str) -> ExitCode {
    eprintln!("klamm: {why}\n{USAGE}");
    ExitCode::from(2)
}
