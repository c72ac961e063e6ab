//! `#[step(timeout = "...", retries = N)]` through the library API: an async step's attempt is
//! cut at its deadline and made again; a step that runs out of time and retries fails its unit
//! as a `timeout`; a sync step retries errors marked `Failure::retryable` and no others; and a
//! retried step draws what it would have drawn on its first attempt, so the unit's metrics do
//! not depend on how often its step failed.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crystallize::observe::{Event, Observer, UnitKey};
use crystallize::prelude::*;
use crystallize::results::{Failure, FailureKind};
use crystallize::session::Session;

use common::metrics;

/// Attempts per (step, unit seed) so far: each unit's step fails its first attempts on its own.
static ATTEMPTS: Mutex<BTreeMap<(&'static str, u64), u32>> = Mutex::new(BTreeMap::new());

fn attempt(step: &'static str, seed: u64) -> u32 {
    let mut attempts = ATTEMPTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let count = attempts.entry((step, seed)).or_insert(0);
    *count += 1;
    *count
}

/// Draws a number, then hangs on its first two attempts in each unit; answers on the third.
#[step(timeout = "100ms", retries = 2)]
async fn hangs_twice(ctx: &mut Ctx) -> Result<u64, Failure> {
    let drawn = ctx.rng().random_range(0..1_000_000);
    if attempt("hangs_twice", ctx.seed()) <= 2 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    Ok(drawn)
}

/// The same draw, answered at once.
#[step]
async fn answers(ctx: &mut Ctx) -> Result<u64, Failure> {
    Ok(ctx.rng().random_range(0..1_000_000))
}

#[derive(Metrics)]
pub struct Drawn {
    pub first: u64,
    pub after: u64,
}

#[experiment(replicates = 4, seed = 3, smoke_test = false)]
async fn patient(ctx: &mut Ctx) -> Result<Drawn, Failure> {
    let first = hangs_twice(ctx).await?;
    Ok(Drawn { first, after: ctx.rng().random_range(0..1_000_000) })
}

#[experiment(replicates = 4, seed = 3, smoke_test = false)]
async fn prompt(ctx: &mut Ctx) -> Result<Drawn, Failure> {
    let first = answers(ctx).await?;
    Ok(Drawn { first, after: ctx.rng().random_range(0..1_000_000) })
}

/// Never answers.
#[step(timeout = "100ms", retries = 1)]
async fn never_answers() -> Result<u64, Failure> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(0)
}

#[experiment(replicates = 2, seed = 3, smoke_test = false)]
async fn abandoned(ctx: &mut Ctx) -> Result<(), Failure> {
    let answer = never_answers().await?;
    ctx.record("answer", answer as f64);
    Ok(())
}

static SYNC_CALLS: AtomicU32 = AtomicU32::new(0);
static FINAL_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails retryably on its first two attempts in each unit, drawing each time.
#[step(retries = 3)]
fn flaky(scale: u64, ctx: &mut Ctx) -> Result<u64, Failure> {
    SYNC_CALLS.fetch_add(1, Ordering::SeqCst);
    let drawn = ctx.rng().random_range(0..1_000) * scale;
    if attempt("flaky", ctx.seed()) <= 2 {
        return Err(Failure::retryable("the server said 503"));
    }
    Ok(drawn)
}

/// Fails for good: not retried, whatever `retries` says.
#[step(retries = 3)]
fn broken(label: String) -> Result<u64, Failure> {
    FINAL_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(Failure::new(format!("{label}: bad request")))
}

#[experiment(replicates = 3, seed = 9, smoke_test = false)]
fn sturdy(ctx: &mut Ctx) -> Result<(), Failure> {
    let value = flaky(10, ctx)?;
    ctx.record("value", value as f64);
    Ok(())
}

#[experiment(replicates = 3, seed = 9, smoke_test = false)]
fn steady(ctx: &mut Ctx) -> Result<(), Failure> {
    let value = ctx.rng().random_range(0..1_000u64) * 10;
    ctx.record("value", value as f64);
    Ok(())
}

#[experiment(replicates = 1, seed = 9, smoke_test = false)]
fn doomed(ctx: &mut Ctx) -> Result<(), Failure> {
    let value = broken("ask".to_owned())?;
    ctx.record("value", value as f64);
    Ok(())
}

/// The `step_retry` events a run emitted.
#[derive(Clone, Default)]
struct Retries(Arc<Mutex<Vec<serde_json::Value>>>);

impl Observer for Retries {
    fn event(&mut self, _unit: &UnitKey, event: &Event) {
        if event.name == "step_retry" {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event.payload.clone());
        }
    }
}

#[test]
fn an_async_step_is_cut_at_its_deadline_retried_and_draws_what_its_first_attempt_drew() {
    let retries = Retries::default();
    let finished = Session::of::<patient>().jobs(4).observer(retries.clone()).run().expect("the run");
    for unit in &finished.results.units {
        assert!(unit.is_ok(), "unit {} failed: {:?}", unit.replicate, unit.error);
        assert!(unit.duration_ms < 30_000.0, "the hanging attempts were cut, not waited out");
    }
    let twin = Session::of::<prompt>().jobs(4).run().expect("the twin run");
    assert_eq!(metrics(&finished.results.units), metrics(&twin.results.units), "same seed, same draws");
    let events = retries.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(events.len(), 8, "two retries in each of 4 units: {events:?}");
    for event in &events {
        assert_eq!(event["step"], "hangs_twice");
        assert_eq!(event["error"], "timed out after 100 ms");
    }
}

#[test]
fn a_step_out_of_time_and_retries_fails_its_unit_as_a_timeout() {
    let finished = Session::of::<abandoned>().jobs(2).run().expect("the run");
    assert_eq!(finished.results.units.len(), 2);
    for unit in &finished.results.units {
        let error = unit.error.as_ref().expect("the unit failed");
        assert_eq!(error.kind, FailureKind::Timeout, "{error:?}");
        assert_eq!(
            error.message,
            "step 'never_answers' timed out after 100 ms on each of 2 attempts (the step's deadline)"
        );
    }
}

#[test]
fn a_sync_step_retries_retryable_errors_only_and_its_unit_draws_as_if_it_never_failed() {
    let finished = Session::of::<sturdy>().jobs(3).run().expect("the run");
    for unit in &finished.results.units {
        assert!(unit.is_ok(), "unit {} failed: {:?}", unit.replicate, unit.error);
        assert!(unit.attempts.is_empty(), "the step retried, not the unit");
    }
    assert_eq!(SYNC_CALLS.load(Ordering::SeqCst), 9, "three attempts in each of 3 units");
    let twin = Session::of::<steady>().jobs(3).run().expect("the twin run");
    assert_eq!(metrics(&finished.results.units), metrics(&twin.results.units), "same seed, same draws");

    let doomed = Session::of::<doomed>().run().expect("the run");
    let error = doomed.results.units[0].error.as_ref().expect("the unit failed");
    assert_eq!((error.kind, error.message.as_str()), (FailureKind::Error, "ask: bad request"));
    assert_eq!(FINAL_CALLS.load(Ordering::SeqCst), 1, "a final error is not retried");
}

#[test]
fn outside_a_run_a_step_with_a_policy_is_a_plain_call() {
    // No unit, no deadline: the step's body runs once, as written (here it fails retryably on
    // its first attempts, and is retried: retries are the step's own, in or out of a run).
    let mut ctx = Ctx::standalone(7);
    assert_eq!(flaky(1, &mut ctx).map(|v| v < 1_000), Ok(true));
}
