//! The committed message codecs are what the generator makes of Kafka's specs. The
//! generator fetches the kafka-python wheel that carries the specs with pip; set
//! `KLAMM_KAFKA_SPECS` to a directory of spec files to use those instead.

use std::path::Path;
use std::process::Command;

#[test]
fn generated_codecs_match_the_specs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("python3");
    command.arg(root.join("src/protocol/generate.py")).arg("--check");
    if let Ok(specs) = std::env::var("KLAMM_KAFKA_SPECS") {
        command.arg("--specs").arg(specs);
    }
    let output = command.output().expect("python3 runs the generator");
    assert!(
        output.status.success(),
        "generator check failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
