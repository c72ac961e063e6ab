//! The framework's hot paths, one at a time: `cargo bench -p crystallize-bench`.
//!
//! What one unit costs, piece by piece: deriving its seed, its generator, a recorded metric, an
//! emitted event, a whole unit through the runner, its journal line, and reading journals back
//! (what `--resume` does first). The side-by-side comparisons are `cargo xtask bench`.

#[path = "../src/trivial.rs"]
#[allow(dead_code)]
mod trivial;

use crystallize::__private::internals::{execute, Cancel, RunOptions};
use crystallize::observe::Observer;
use crystallize::results::{UnitResult, UnitStatus};
use crystallize::store::journal::{self, JournalWriter};
use crystallize::store::{unit_seed, SeedPolicy};
use crystallize::Ctx;
use divan::counter::ItemsCount;
use divan::{black_box, Bencher};

fn main() {
    divan::main();
}

#[divan::bench]
fn seed_derivation() -> u64 {
    unit_seed(black_box(42), black_box(12_345), black_box("baseline"), SeedPolicy::Shared)
}

#[divan::bench]
fn unit_rng_first_draw(bencher: Bencher) {
    let ctx = Ctx::standalone(7);
    bencher.bench_local(|| {
        use rand::Rng as _;
        ctx.rng().random::<f64>()
    });
}

#[divan::bench]
fn record_metric(bencher: Bencher) {
    bencher.with_inputs(|| Ctx::standalone(7)).bench_local_refs(|ctx| ctx.record("value", 0.5));
}

#[divan::bench]
fn emit_event(bencher: Bencher) {
    let ctx = Ctx::standalone(7);
    let mut tick = 0u32;
    bencher.bench_local(|| {
        tick += 1;
        ctx.emit("tick", tick);
    });
}

fn unit(replicate: u64) -> UnitResult {
    UnitResult {
        experiment: "trivial".into(),
        condition: "baseline".into(),
        replicate,
        seed: unit_seed(7, replicate, "baseline", SeedPolicy::Shared),
        status: UnitStatus::Ok,
        error: None,
        metrics: [("value", 0.123_456_789)].into(),
        records: Vec::new(),
        duration_ms: 0.000_4,
        attempts: Vec::new(),
        cache: Default::default(),
    }
}

#[divan::bench]
fn journal_append(bencher: Bencher) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut journal = JournalWriter::create(dir.path().join("journal-x.jsonl"), Cancel::default()).expect("journal");
    let mut replicate = 0;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        replicate += 1;
        journal.unit_finished(black_box(&unit(replicate)));
    });
    journal.finish().expect("journal written");
}

#[divan::bench(args = [10_000])]
fn journal_read(bencher: Bencher, units: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut journal = JournalWriter::create(dir.path().join("journal-x.jsonl"), Cancel::default()).expect("journal");
    for replicate in 0..units {
        journal.unit_finished(&unit(replicate));
    }
    journal.finish().expect("journal written");
    bencher.counter(ItemsCount::new(units)).bench(|| journal::read_all(dir.path()).units.len());
}

/// 1000 units of the trivial experiment through the runner (both conditions), nothing stored.
#[divan::bench(args = [1, 2])]
fn trivial_units_through_the_runner(bencher: Bencher, jobs: usize) {
    let plan = trivial::plan("trivial", 500, &[]);
    let options = RunOptions { jobs, ..RunOptions::default() };
    bencher.counter(ItemsCount::new(1000usize)).bench_local(|| execute(&plan, &options, &mut []).units.len());
}

#[divan::bench]
fn summary_of_10k_units(bencher: Bencher) {
    let units: Vec<UnitResult> = (0..10_000).map(unit).collect();
    let conditions = vec!["baseline".to_owned()];
    bencher
        .counter(ItemsCount::new(units.len()))
        .bench(|| crystallize::__private::internals::summarize(&conditions, &units));
}
