//! Writes the request_decoder seed corpus: every message in every version, encoded by the
//! generated codec (see `klamm::protocol::fuzzing::seed_corpus`).
//! Usage: seed_corpus DIR

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: seed_corpus DIR");
        std::process::exit(2);
    };
    std::fs::create_dir_all(&dir).expect("the corpus directory");
    let seeds = klamm::protocol::fuzzing::seed_corpus();
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(format!("{dir}/seed-{i:05}"), seed).expect("a seed file");
    }
    println!("{} seeds in {dir}", seeds.len());
}
