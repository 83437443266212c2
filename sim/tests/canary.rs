//! The canary test: with a planted bug (`cargo sim --features canary-NAME -- canary`), the
//! swarm scenario (the groups scenario for `group-` canaries) must fail within 1,000 seeds. `sim/canaries.sh` runs every canary.

use klamm_sim::runner::{self, say};
use klamm_sim::scenarios;

const SEEDS_MAX: u64 = 1_000;

#[test]
fn canary() {
    let Some(name) = klamm::canary::planted() else {
        say("klamm-sim: canary: no canary planted in this build; nothing to do".into());
        return;
    };
    let first = std::env::var("MADSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    // The group canaries need the groups scenario; the rest, the swarm.
    let summary = if name.starts_with("group-") {
        runner::run_seeds("canary", first, SEEDS_MAX, true, scenarios::groups)
    } else {
        runner::run_seeds("canary", first, SEEDS_MAX, true, scenarios::swarm)
    };
    let caught = summary.failures.iter().map(|(seed, _)| *seed).min();
    match caught {
        Some(seed) => say(format!(
            "klamm-sim: canary {name}: caught at seed {seed}, {} seeds from {first} ({:.1} wall s)",
            seed - first + 1,
            summary.wall.as_secs_f64()
        )),
        None => panic!("canary {name}: not caught within {SEEDS_MAX} seeds from {first}"),
    }
}
