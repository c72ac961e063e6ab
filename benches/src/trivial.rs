//! The experiments the benchmarks run, and the hand-written loop the framework is compared with.
//!
//! `trivial` is as cheap as an experiment gets: two conditions, one step that draws one number
//! from the unit's generator, one metric. `spin` burns about a millisecond of CPU per unit (the
//! `work` param sets how much). `chatty` is `trivial` plus 10 `emit` calls per unit.
//!
//! [`hand_written`] computes exactly what `trivial` records (same seeds, same generator, same
//! values) with a plain rayon loop and writes the same JSON Lines, so that the difference in time
//! between the two is what the framework costs.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crystallize::__private::internals::{execute, Override, Plan, Registry, RunOptions};
use crystallize::observe::Observer;
use crystallize::prelude::*;
use crystallize::results::RunResults;
use crystallize::store::events::EventLog;
use crystallize::store::manifest::Request;
use crystallize::store::recorder::{self, Origin};
use crystallize::store::{unit_seed, SeedPolicy};
use crystallize::store::{RunDir, Store};
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;

/// The run seed of every benchmark.
pub const SEED: u64 = 7;

/// A coin with a bias: the input of `trivial` and `chatty`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Coin {
    /// Scales the drawn number.
    pub bias: f64,
}

/// The bias of each condition of `trivial`, baseline first.
pub const CONDITIONS: [(&str, f64); 2] = [("baseline", 0.5), ("loaded", 0.7)];

#[datasource]
fn fair_coin() -> Coin {
    Coin { bias: CONDITIONS[0].1 }
}

#[datasource]
fn loaded_coin() -> Coin {
    Coin { bias: CONDITIONS[1].1 }
}

/// The one step: one draw from the unit's first generator stream.
#[step]
fn draw(coin: &Coin, ctx: &mut Ctx) -> f64 {
    let mut rng = ctx.rng();
    rng.random::<f64>() * coin.bias
}

#[experiment(datasource = fair_coin, replicates = 10, seed = 7)]
fn trivial(coin: Coin, ctx: &mut Ctx) {
    let value = draw(&coin, ctx);
    ctx.record("value", value);
}

#[treatment(trivial, datasource = loaded_coin)]
fn loaded() {}

#[experiment(datasource = fair_coin, replicates = 10, seed = 7)]
fn chatty(coin: Coin, ctx: &mut Ctx) {
    let value = draw(&coin, ctx);
    for tick in 0..10u32 {
        ctx.emit("tick", tick);
    }
    ctx.record("value", value);
}

#[treatment(chatty, datasource = loaded_coin)]
fn loaded_chatty() {}

/// Burns `work` rounds of a 64-bit mixer: about a millisecond at the default on a 2020s core.
#[experiment(datasource = fair_coin, replicates = 10, seed = 7, params(work: u64 = 300_000))]
fn spin(coin: Coin, params: &SpinParams, ctx: &mut Ctx) {
    ctx.record("value", burn(ctx.seed(), params.work) as f64 * coin.bias);
}

#[treatment(spin, datasource = loaded_coin)]
fn loaded_spin() {}

/// `rounds` rounds of SplitMix64 starting at `seed`: CPU-bound, no memory traffic, not optimised
/// away (the result is used).
pub fn burn(seed: u64, rounds: u64) -> u64 {
    let mut z = seed;
    for _ in 0..rounds {
        z = crystallize::__private::internals::mix(z);
    }
    z >> 40
}

/// A plan of `replicates` replicates of both conditions of experiment `name`, with `sets`.
pub fn plan(name: &str, replicates: u64, sets: &[&str]) -> Plan {
    let registry = Registry::collect().expect("the bench's experiments are registered");
    let experiment = registry.experiment(Some(name)).expect("a bench experiment");
    let sets: Vec<Override> = sets.iter().map(|s| Override::parse(s).expect("KEY=VALUE")).collect();
    Plan::new(experiment, &[], replicates, SEED, &sets).expect("a valid plan")
}

fn origin() -> Origin {
    Origin { crate_name: "crystallize-bench".into(), crate_version: "0".into(), command: vec!["bench".into()] }
}

/// Runs `plan` the way a library caller stores a run: a new run in `store` (manifest, session,
/// journal), every unit through the runner with `jobs` workers, the journal synced at the end.
pub fn run_stored(store: &Path, plan: &Plan, jobs: usize) -> (RunResults, RunDir) {
    run_stored_with(store, plan, jobs, false)
}

/// [`run_stored`], with the events log beside the journal when `events_log` (as `run` has).
pub fn run_stored_with(store: &Path, plan: &Plan, jobs: usize, events_log: bool) -> (RunResults, RunDir) {
    let started = Instant::now();
    let store = Store::locate(Some(store));
    let run = recorder::create_run(&store, plan, Request::default(), &origin()).expect("a new run");
    let options = RunOptions { jobs, ..RunOptions::default() };
    let mut journal =
        recorder::begin_session(&run, plan, &origin(), Vec::new(), options.cancel.clone()).expect("a journal");
    let opened = started.elapsed();
    let mut log = events_log.then(|| EventLog::beside(&journal).expect("an events log"));
    let mut observers: Vec<&mut dyn Observer> = vec![&mut journal];
    observers.extend(log.as_mut().map(|log| log as &mut dyn Observer));
    let results = execute(plan, &options, &mut observers);
    let executed = started.elapsed();
    journal.finish().expect("the journal is written");
    if let Some(log) = log {
        log.finish().expect("the events log is written");
    }
    if std::env::var_os("CRYSTALLIZE_BENCH_PHASES").is_some() {
        eprintln!(
            "    phases: open {:.3} s, execute {:.3} s (runner's own {:.3} s), finish {:.3} s",
            opened.as_secs_f64(),
            (executed - opened).as_secs_f64(),
            results.elapsed.as_secs_f64(),
            (started.elapsed() - executed).as_secs_f64()
        );
    }
    (results, run)
}

/// One journal line, field for field what the framework writes for a unit of `trivial`.
#[derive(Serialize)]
struct Line<'a> {
    schema: u32,
    #[serde(rename = "type")]
    kind: &'a str,
    experiment: &'a str,
    condition: &'a str,
    replicate: u64,
    seed: u64,
    status: &'a str,
    metrics: Metrics,
    duration_ms: f64,
}

#[derive(Serialize)]
struct Metrics {
    value: f64,
}

/// What a researcher would write instead of the framework: a rayon loop over (condition,
/// replicate) that derives the same seed, draws the same value, times the unit, and formats the
/// same JSON line, sealed with the same checksum; lines are formatted in parallel in chunks and written in order by one thread,
/// then synced like the framework's journal. Returns the sum of the values (to check that both
/// computed the same thing, up to the order of summation) and the number of lines written.
pub fn hand_written(path: &Path, replicates: u64) -> (f64, usize) {
    const CHUNK: u64 = 4096;
    let total = CONDITIONS.len() as u64 * replicates;
    let chunks: Vec<(Vec<u8>, f64)> = (0..total.div_ceil(CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let mut buffer = Vec::with_capacity(CHUNK as usize * 200);
            let mut sum = 0.0;
            for index in chunk * CHUNK..((chunk + 1) * CHUNK).min(total) {
                let (condition, bias) = CONDITIONS[(index / replicates) as usize];
                let replicate = index % replicates;
                let seed = unit_seed(SEED, replicate, condition, SeedPolicy::Shared);
                let started = Instant::now();
                let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
                rng.set_stream(0);
                let value = rng.random::<f64>() * bias;
                let duration_ms = started.elapsed().as_secs_f64() * 1e3;
                sum += value;
                let line = Line {
                    schema: 2,
                    kind: "unit",
                    experiment: "trivial",
                    condition,
                    replicate,
                    seed,
                    status: "ok",
                    metrics: Metrics { value },
                    duration_ms,
                };
                let start = buffer.len();
                serde_json::to_writer(&mut buffer, &line).expect("a line serializes");
                // Sealed as the framework seals its lines: the CRC-32 of the record as its last field.
                buffer.pop();
                let crc = crc32fast::hash(&buffer[start..]);
                write!(buffer, ",\"crc32\":\"{crc:08x}\"}}").expect("a line in memory");
                buffer.push(b'\n');
            }
            (buffer, sum)
        })
        .collect();
    let mut file = File::create(path).expect("the hand-written journal");
    let mut sum = 0.0;
    for (buffer, chunk_sum) in &chunks {
        file.write_all(buffer).expect("write");
        sum += chunk_sum;
    }
    file.sync_data().expect("sync");
    (sum, total as usize)
}

/// The sum of metric `value` over a run's units, in plan order (as [`hand_written`] sums).
pub fn value_sum(results: &RunResults) -> f64 {
    results.units.iter().map(|u| u.metrics.get("value").copied().unwrap_or(f64::NAN)).sum()
}
