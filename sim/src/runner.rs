//! Runs a scenario over many seeds, each in its own madsim runtime on its own thread, and
//! reports every failure with the one line that reproduces it.
//!
//! Seeds: `MADSIM_TEST_SEED` (and `MADSIM_TEST_NUM`, default 1) pick seeds exactly, which
//! is what a failure's reproduction line sets. Otherwise the first seed is `KLAMM_SEED`
//! (CI derives it from the commit) or 1, and `KLAMM_SIM_SEEDS` overrides each scenario's
//! seed count. `MADSIM_TEST_JOBS` runs that many seeds at once (default: the cores).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use madsim::runtime::Runtime;
use madsim::Config;

/// What one seed's run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub violations: Vec<String>,
    /// A hash over every message the clients saw and every disk operation; one seed run
    /// twice must give the same hash.
    pub trace_hash: u64,
    pub sim_elapsed: Duration,
    pub counts: BTreeMap<String, u64>,
    /// The seed's draw: mode, faults, workload.
    pub description: String,
}

/// What a batch of seeds found.
#[derive(Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    /// (seed, why) of every failed seed, in seed order.
    pub failures: Vec<(u64, String)>,
    pub sim_elapsed: Duration,
    pub wall: Duration,
    pub counts: BTreeMap<String, u64>,
}

/// Writes a line to stderr past the test harness's capture, so that summaries and
/// reproduction lines show even when a test passes.
pub fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The seeds to run: (first, count).
pub fn seeds(default_count: u64) -> (u64, u64) {
    match env_u64("MADSIM_TEST_SEED") {
        Some(seed) => (seed, env_u64("MADSIM_TEST_NUM").unwrap_or(1)),
        None => (
            env_u64("KLAMM_SEED").unwrap_or(1),
            env_u64("KLAMM_SIM_SEEDS").unwrap_or(default_count),
        ),
    }
}

fn jobs() -> u64 {
    env_u64("MADSIM_TEST_JOBS")
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get() as u64))
        .unwrap_or(1)
        .max(1)
}

/// Runs one seed in a fresh runtime on a fresh thread. A panic (a broker assertion, a
/// simulated time limit) is a failure with its message.
pub fn run_one<F>(seed: u64, scenario: fn() -> F) -> Result<Outcome, String>
where
    F: Future<Output = Outcome> + 'static,
{
    std::thread::spawn(move || {
        let mut runtime = Runtime::with_seed_and_config(seed, Config::default());
        runtime.set_time_limit(Duration::from_secs(1_800));
        runtime.block_on(scenario())
    })
    .join()
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Runs seeds `first..first + count` of `scenario`, `jobs()` at a time; with `stop_at_first`
/// it stops handing out seeds after the first failure.
pub fn run_seeds<F>(name: &str, first: u64, count: u64, stop_at_first: bool, scenario: fn() -> F) -> Summary
where
    F: Future<Output = Outcome> + 'static,
{
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let summary = Arc::new(Mutex::new(Summary::default()));
    let workers: Vec<_> = (0..jobs().min(count.max(1)))
        .map(|_| {
            let (next, summary, name) = (next.clone(), summary.clone(), name.to_string());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    return;
                }
                let seed = first.wrapping_add(i);
                let result = run_one(seed, scenario);
                let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
                s.seeds += 1;
                let why = match result {
                    Ok(outcome) => {
                        s.sim_elapsed += outcome.sim_elapsed;
                        for (k, v) in &outcome.counts {
                            *s.counts.entry(k.clone()).or_default() += v;
                        }
                        if outcome.violations.is_empty() {
                            continue;
                        }
                        format!("{}\n    {}", outcome.description, outcome.violations.join("\n    "))
                    }
                    Err(panic) => format!("panicked: {panic}"),
                };
                say(format!(
                    "klamm-sim: {name} FAILED at seed {seed}: {why}\n    reproduce: MADSIM_TEST_SEED={seed} cargo sim -- {name}"
                ));
                s.failures.push((seed, why));
                if stop_at_first {
                    next.store(count, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a seed worker does not panic");
    }
    let mut summary = std::mem::take(&mut *summary.lock().unwrap_or_else(|e| e.into_inner()));
    summary.failures.sort();
    summary.wall = started.elapsed();
    summary
}

/// Runs a scenario's seeds and fails the test, listing how to reproduce each failure.
pub fn check<F>(name: &str, default_count: u64, scenario: fn() -> F)
where
    F: Future<Output = Outcome> + 'static,
{
    let (first, count) = seeds(default_count);
    let summary = run_seeds(name, first, count, false, scenario);
    report(name, first, &summary);
    if !summary.failures.is_empty() {
        let lines: Vec<String> = summary
            .failures
            .iter()
            .map(|(seed, _)| format!("MADSIM_TEST_SEED={seed} cargo sim -- {name}"))
            .collect();
        panic!(
            "{name}: {} of {} seeds failed; reproduce with:\n{}",
            summary.failures.len(),
            summary.seeds,
            lines.join("\n")
        );
    }
}

pub fn report(name: &str, first: u64, summary: &Summary) {
    let wall = summary.wall.as_secs_f64().max(1e-9);
    let sim = summary.sim_elapsed.as_secs_f64();
    say(format!(
        "klamm-sim: {name}: seeds {first}..{} ({}), {} failed; {sim:.0} simulated s in {wall:.1} wall s: {:.1} simulated s per wall s, {:.0} seeds per minute",
        first.wrapping_add(summary.seeds),
        summary.seeds,
        summary.failures.len(),
        sim / wall,
        summary.seeds as f64 * 60.0 / wall
    ));
    let counts: Vec<String> = summary.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    say(format!("klamm-sim: {name}: {}", counts.join(" ")));
}

/// The same seed twice gives the same outcome and trace hash; and madsim's own check (every
/// random draw and its simulated time compared between two runs) passes.
pub fn check_determinism<F>(name: &str, seeds: &[u64], scenario: fn() -> F)
where
    F: Future<Output = Outcome> + 'static,
{
    for &seed in seeds {
        let a = run_one(seed, scenario).unwrap_or_else(|e| panic!("{name} seed {seed}: {e}"));
        let b = run_one(seed, scenario).unwrap_or_else(|e| panic!("{name} seed {seed}: {e}"));
        assert_eq!(
            (a.trace_hash, &a.violations, a.sim_elapsed, &a.counts),
            (b.trace_hash, &b.violations, b.sim_elapsed, &b.counts),
            "{name}: seed {seed} ran differently twice; reproduce: MADSIM_TEST_SEED={seed} cargo sim -- determinism"
        );
        say(format!(
            "klamm-sim: {name}: seed {seed} ran twice with trace hash {:016x}",
            a.trace_hash
        ));
    }
    if let Some(&seed) = seeds.first() {
        std::thread::spawn(move || Runtime::check_determinism(seed, Config::default(), scenario))
            .join()
            .unwrap_or_else(|_| panic!("{name}: madsim's determinism check failed at seed {seed}"));
        say(format!(
            "klamm-sim: {name}: madsim's determinism check passed at seed {seed}"
        ));
    }
}
