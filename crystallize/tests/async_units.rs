//! `async fn` experiments through the library API: units run as tasks on the async runner,
//! `#[step(limit = "...")] async fn` steps hold a permit of the experiment's `limits(...)` while
//! they run, an async experiment draws exactly what its sync twin draws from the same seed, and
//! `debug` runs one async unit.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crystallize::prelude::*;
use crystallize::session::Session;

use common::metrics;

/// Units inside `serve` right now, and the most seen at once.
static IN_SERVE: AtomicUsize = AtomicUsize::new(0);
static MOST_IN_SERVE: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug, Params)]
pub struct ServeParams {
    #[param(default = 3)]
    pub requests: u64,
}

#[derive(Metrics)]
pub struct Served {
    pub first: u64,
    pub total: u64,
    pub heads: bool,
}

/// A request to a server that takes at most two at once: the counter checks that the limit holds.
#[step(limit = "server")]
async fn serve(request: u64) -> u64 {
    let now = IN_SERVE.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_IN_SERVE.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await;
    IN_SERVE.fetch_sub(1, Ordering::SeqCst);
    request * 2
}

/// A sync step with a limit, called from the async experiment: it blocks its runtime thread
/// for the permit without stalling the other units' tasks.
#[step(limit = "tally")]
fn tally(total: u64) -> u64 {
    total
}

/// The draws both twins make, in the same order from the same generator.
fn draws(ctx: &Ctx, requests: u64) -> Vec<u64> {
    let mut rng = ctx.rng();
    (0..requests).map(|_| rng.random_range(0..1_000)).collect()
}

#[experiment(replicates = 8, seed = 11, limits(server = 2, tally = 1), smoke_test = false)]
async fn served(params: &ServeParams, ctx: &mut Ctx) -> Result<Served, String> {
    let requests = draws(ctx, params.requests);
    let mut total = 0;
    for request in &requests {
        total += serve(*request).await;
    }
    ctx.emit("served", json!({ "requests": requests.len() }));
    let total = tally(total);
    Ok(Served { first: requests[0], total, heads: ctx.rng().random_bool(0.5) })
}

#[experiment(replicates = 8, seed = 11, smoke_test = false)]
fn served_sync(params: &ServeParams, ctx: &mut Ctx) -> Served {
    let requests = draws(ctx, params.requests);
    let total = requests.iter().map(|request| request * 2).sum();
    Served { first: requests[0], total, heads: ctx.rng().random_bool(0.5) }
}

#[test]
fn async_units_run_within_their_limits_and_match_their_sync_twin() {
    let finished = Session::of::<served>().replicates(8).jobs(8).run().expect("the async run");
    let units = &finished.results.units;
    assert_eq!(units.len(), 8);
    for unit in units {
        assert!(unit.is_ok(), "unit {} failed: {:?}", unit.replicate, unit.error);
    }
    let most = MOST_IN_SERVE.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "{most} units were inside `serve` at once; the limit is 2");

    let twin = Session::of::<served_sync>().replicates(8).jobs(8).run().expect("the sync run");
    assert_eq!(metrics(units), metrics(&twin.results.units), "same seed, same draws");
    let mut names: Vec<&str> = units[0].metrics.iter().map(|(name, _)| name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["first", "heads", "total"]);

    // `debug` runs one async unit, with the same replicate-0 metrics as the run.
    let debugged = Session::of::<served>().debug("baseline").expect("debug of an async experiment");
    assert!(debugged.is_ok(), "{:?}", debugged.error);
    let replicate_0 = units.iter().find(|unit| unit.replicate == 0).expect("replicate 0 ran");
    assert_eq!(metrics(&[debugged]), metrics(std::slice::from_ref(replicate_0)));
}
