//! The `klamm` binary. Today it carries the tools that work on data directly; the broker
//! (`klamm server`) arrives with the single-node broker.

use std::path::Path;
use std::process::ExitCode;

use klamm::io::{read_to_end, RealStorage};
use klamm::tools::dump_log::dump_segment;

const USAGE: &str = "usage:
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

fn usage_error(why: &str) -> ExitCode {
    eprintln!("klamm: {why}\n{USAGE}");
    ExitCode::from(2)
}
