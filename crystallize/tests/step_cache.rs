//! The step cache through a `Session`: what each mode reads and writes (`Write` is what `confirm`
//! runs with unless `--allow-cached`), what `shared` shares, how a retried unit reuses the calls
//! that succeeded, and that a hit records exactly the metrics of the run that filled it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crystallize::prelude::*;
use crystallize::results::Failure;
use crystallize::session::{CacheMode, Session};

/// Body calls of each step.
static DRAWS: AtomicUsize = AtomicUsize::new(0);
static LOOKUPS: AtomicUsize = AtomicUsize::new(0);
/// The tests share the counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Not shared: its answer depends on the unit (seed) and position.
#[step(cache)]
fn draw(seed: u64, call: u32) -> f64 {
    DRAWS.fetch_add(1, Ordering::SeqCst);
    let mut rng = <crystallize::Rng as rand::SeedableRng>::seed_from_u64(seed ^ u64::from(call));
    rng.random::<f64>()
}

/// A pure function of its argument: shared by every unit.
#[step(cache(shared))]
fn lookup(word: &str) -> usize {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    word.len()
}

#[experiment(replicates = 3, seed = 5, smoke_test = false)]
fn sampled(ctx: &mut Ctx) {
    let seed = ctx.seed();
    let total: f64 = (0..4).map(|call| draw(seed, call)).sum();
    ctx.record("total", total);
    ctx.record("length", lookup("hello") as f64);
}

/// Fails its first attempt after two calls, in every unit.
static FLAKY_ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

#[experiment(replicates = 2, seed = 9, smoke_test = false)]
fn flaky(ctx: &mut Ctx) -> Result<(), Failure> {
    let seed = ctx.seed();
    let first = draw(seed, 0) + draw(seed, 1);
    if FLAKY_ATTEMPTS.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
        return Err(Failure::retryable("the server went away"));
    }
    ctx.record("total", first + draw(seed, 2));
    Ok(())
}

fn totals(session: Session) -> Vec<(String, u64, Vec<u64>)> {
    let finished = session.run().expect("the run starts");
    assert_eq!(finished.results.failed(), 0, "{:?}", finished.results.units);
    finished
        .results
        .units
        .iter()
        .map(|u| (u.condition.clone(), u.replicate, u.metrics.iter().map(|(_, v)| v.to_bits()).collect()))
        .collect()
}

fn calls() -> (usize, usize) {
    (DRAWS.load(Ordering::SeqCst), LOOKUPS.load(Ordering::SeqCst))
}

fn since(before: (usize, usize)) -> (usize, usize) {
    let now = calls();
    (now.0 - before.0, now.1 - before.1)
}

#[test]
fn each_mode_reads_and_writes_what_it_says_and_hits_record_the_filling_runs_metrics() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let store = tempfile::tempdir().unwrap();
    let run = |mode: Option<CacheMode>| {
        // One unit at a time: two units missing a `shared` entry at once would both run it (the
        // cache does not make concurrent misses wait for each other), and the counts below
        // would depend on the schedule.
        let session = Session::named("sampled").store(store.path()).jobs(1);
        totals(match mode {
            Some(mode) => session.cache(mode),
            None => session,
        })
    };

    // `Read` on an empty cache: every call runs, nothing is stored.
    let before = calls();
    let read = run(Some(CacheMode::Read));
    assert_eq!(since(before), (12, 3));
    // The default (`On`): every call runs once more (nothing was stored), and is stored; a
    // `shared` step runs once for all three units.
    let before = calls();
    let filled = run(None);
    assert_eq!(since(before), (12, 1));
    assert_eq!(filled, read, "the same metrics, cached or not");
    // Again: all hits, the same metrics bit for bit.
    let before = calls();
    assert_eq!(run(None), filled);
    assert_eq!(since(before), (0, 0));
    // `Write` (a confirmation): every call runs afresh, and is stored again.
    let before = calls();
    assert_eq!(run(Some(CacheMode::Write)), filled);
    assert_eq!(since(before), (12, 3));
    // `Off`: every call runs.
    let before = calls();
    assert_eq!(run(Some(CacheMode::Off)), filled);
    assert_eq!(since(before), (12, 3));
    // `--refresh draw`: draw runs again, lookup is served.
    let before = calls();
    assert_eq!(totals(Session::named("sampled").store(store.path()).refresh("draw")), filled);
    assert_eq!(since(before), (12, 0));
    // Another seed: other units, other keys for `draw`; `lookup` is shared.
    let before = calls();
    let _ = totals(Session::named("sampled").store(store.path()).seed(6));
    assert_eq!(since(before), (12, 0));

    let unknown = Session::named("sampled").store(store.path()).refresh("drwa").run();
    let message = unknown.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("did you mean 'draw'"), "{message}");
}

#[test]
fn a_retried_unit_reuses_the_calls_that_succeeded_before_it_failed() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let store = tempfile::tempdir().unwrap();
    let before = calls();
    let session = Session::named("flaky").store(store.path()).retries(1).retry_delay(std::time::Duration::ZERO).jobs(1);
    let finished = session.run().expect("the run starts");
    assert_eq!(finished.results.failed(), 0);
    // Each unit: 2 calls in the failed attempt, then 2 hits and 1 call.
    assert_eq!(since(before).0, 2 * 3);
    for unit in &finished.results.units {
        assert_eq!(unit.attempts.len(), 1);
        let count = unit.cache["draw"];
        assert_eq!((count.hits, count.misses), (2, 1), "the last attempt's counts");
    }
}
