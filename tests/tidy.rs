//! Architecture invariants, checked on the source text: nothing in `src/` escapes the
//! seams that the simulator drives.

use std::fs;
use std::path::{Path, PathBuf};

/// (forbidden text, files allowed to use it, why)
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "tokio::fs",
        &[],
        "tokio::fs panics under madsim; go through io::Storage",
    ),
    (
        "std::fs",
        &["src/io/real.rs"],
        "the disk is reached only through io::Storage",
    ),
    ("std::thread::spawn", &[], "threads escape the simulator"),
    ("thread::spawn(", &[], "threads escape the simulator"),
    (
        "spawn_blocking",
        &["src/io/real.rs"],
        "blocking pools escape the simulator; only the real disk uses one",
    ),
    (
        "thread_rng",
        &[],
        "OS entropy makes runs irreproducible; randomness comes from the seeded generator",
    ),
    ("rand::random", &[], "OS entropy makes runs irreproducible"),
    (
        "SystemTime::now",
        &["src/server/clock.rs"],
        "clocks are read only by the shell's clock module and passed in as now",
    ),
    (
        "Instant::now",
        &["src/server/clock.rs"],
        "clocks are read only by the shell's clock module and passed in as now",
    ),
    ("static mut", &[], "process-global state leaks between simulated seeds"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn sources_stay_behind_the_seams() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 10, "found the sources");
    let mut violations = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        let text = fs::read_to_string(file).expect("utf-8 source");
        for (pattern, allowed, why) in RULES {
            if allowed.contains(&relative.as_str()) {
                continue;
            }
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if code.contains(pattern) {
                    violations.push(format!("{relative}:{}: `{pattern}`: {why}", n + 1));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn every_crate_uses_tokio_through_madsim() {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("Cargo.toml");
    for line in manifest.lines().filter(|l| l.trim_start().starts_with("tokio")) {
        assert!(
            line.contains("package = \"madsim-tokio\""),
            "tokio must come through madsim-tokio: {line}"
        );
    }
}
