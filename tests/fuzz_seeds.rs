//! Writes the `record_batch` fuzz target's seed corpus to `target/fuzz-seeds/record_batch/`,
//! which `fuzz/run.sh` adds to its corpus (the test suite runs before it in CI). The seeds
//! are valid batches of every codec (`klamm::record::fuzzing::seed_corpus`).

use std::fs;
use std::path::Path;

#[test]
fn record_batch_seeds_are_written_for_the_fuzzer() {
    let seeds = klamm::record::fuzzing::seed_corpus();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-seeds/record_batch");
    fs::create_dir_all(&dir).expect("the seed folder");
    for (i, seed) in seeds.iter().enumerate() {
        klamm::record::fuzzing::check_batches(seed);
        let path = dir.join(format!("seed-{i:03}"));
        fs::write(&path, seed).expect("a seed file");
        assert_eq!(&fs::read(&path).expect("the seed reads back"), seed);
    }
    assert!(seeds.len() >= 16, "{} seeds", seeds.len());
}
