//! Seeds that found real bugs, kept after the fix. Each runs its scenario once more; the
//! scenario code moves on, so a seed may no longer reach the same schedule, but it stays a
//! case that once failed.

use klamm_sim::runner::{self, Outcome};
use klamm_sim::scenarios;

/// (scenario, seed, the bug it found).
const REGRESSIONS: &[(&str, u64, &str)] = &[
    (
        "power_loss",
        1,
        "the broker created its log directory without syncing the parents, so a power loss \
         before the first checkpoint lost the whole directory and the next start made a new \
         cluster without the topic",
    ),
    (
        "groups",
        1,
        "a shard reload kept the first version of a classic group's members, and a departed \
         leader stayed leader: the shard failed its invariants and the group was unavailable",
    ),
    (
        "groups",
        1061,
        "the consumer's position counted fetched but unreturned records, so a member committed \
         past them and the next owner skipped them",
    ),
    (
        "groups",
        2100,
        "a KIP-848 member that failed to resolve its new assignment's topic ids dropped the \
         assignment; the broker, thinking it delivered, never sent it again",
    ),
    (
        "swarm",
        663699270,
        "an idempotent producer bumped its epoch after one batch timed out and restamped \
         another partition's retried batch, whose answer had been lost, with the new epoch \
         and sequence 0: the broker appended it a second time",
    ),
    (
        "churn",
        14,
        "an append that finished just before its topic's delete moved the high watermark of \
         the emptied log, and the log's invariant check panicked the request's task",
    ),
    (
        "churn",
        5129,
        "the group commit's fdatasync, run without the log's lock, failed on the files of a log \
         deleted meanwhile and took the log directory (and the broker) offline",
    ),
    (
        "churn",
        5517,
        "a Fetch by topic id looked its partition up by name, and between an image change and \
         the ReplicaManager's apply served a recreated topic's records under the old id",
    ),
];

fn run(scenario: &str, seed: u64) -> Result<Outcome, String> {
    match scenario {
        "produce_crash" => runner::run_one(seed, scenarios::produce_crash),
        "power_loss" => runner::run_one(seed, scenarios::power_loss),
        "network" => runner::run_one(seed, scenarios::network),
        "disk_faults" => runner::run_one(seed, scenarios::disk_faults),
        "admin_retention" => runner::run_one(seed, scenarios::admin_retention),
        "swarm" => runner::run_one(seed, scenarios::swarm),
        "idempotent" => runner::run_one(seed, scenarios::idempotent),
        "groups" => runner::run_one(seed, scenarios::groups),
        "churn" => runner::run_one(seed, scenarios::churn),
        other => panic!("unknown scenario {other}"),
    }
}

#[test]
fn regressions() {
    for &(scenario, seed, bug) in REGRESSIONS {
        let outcome = run(scenario, seed).unwrap_or_else(|e| panic!("{scenario} seed {seed} ({bug}): {e}"));
        assert!(
            outcome.violations.is_empty(),
            "{scenario} seed {seed} ({bug}) fails again:\n{}\nreproduce: MADSIM_TEST_SEED={seed} cargo sim -- {scenario}",
            outcome.violations.join("\n")
        );
    }
}
