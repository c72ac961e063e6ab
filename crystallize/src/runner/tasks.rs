//! Async units: `async fn` experiments run as tasks on one tokio runtime owned by the runner,
//! `--jobs` of them in flight (a semaphore), each isolated like a sync unit (a panic fails that
//! unit alone) and cancelled at its deadline. Seeds, results and the output thread are the same
//! as for sync units: only how a unit waits differs.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::isolation::TASK_UNIT;
use super::{finish_unit, retryable, Attempts, Ended, RetryPolicy, RunOptions, Started, UnitStarter};
use crate::async_runtime::runtime;
use crate::events::{Interest, Message};
use crate::plan::{Plan, Unit};
use crate::results::UnitOutcome;

/// Runs the async units of `plan`, at most `jobs` at once, each sending its result to the output
/// thread as it finishes. Returns when every started unit has finished.
pub(super) fn run_all(
    plan: &Plan,
    units: &[Unit],
    jobs: usize,
    tx: &SyncSender<Message>,
    options: &RunOptions,
    interest: Interest,
) {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(problem) => {
            // Every unit fails with the reason rather than the run vanishing.
            for unit in units {
                let Started { ctx, sink, .. } = UnitStarter::new(plan, unit, options, interest).start(tx);
                let result =
                    finish_unit(&sink.unit, Some(ctx), Ended::Returned(Err(problem.as_str().into())), Duration::ZERO);
                crate::context::send_to_run(tx, Message::UnitFinished(result));
            }
            return;
        }
    };
    // Not `block_on` inside a runtime: a caller that is itself async (a user's `#[tokio::main]`)
    // would panic. The driver waits on its own thread instead.
    let driver = async {
        let in_flight = Arc::new(Semaphore::new(jobs));
        let mut tasks = JoinSet::new();
        for unit in units {
            let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
            if let Some(gate) = &options.rounds {
                // In rounds (`--until-decided`): wait for the sequential monitor to let this
                // index start, without blocking a worker of the runtime.
                while !gate.allows(unit.replicate) && !options.cancel.is_cancelled() {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
            if options.cancel.is_cancelled() {
                break;
            }
            let Some(body) = plan.conditions[unit.condition].run_async.clone() else { continue };
            let tx = tx.clone();
            let cancel = options.cancel.clone();
            let fail_fast = options.fail_fast;
            let timeout = options.timeout;
            let policy = options.retry.clone();
            let starter = UnitStarter::new(plan, unit, options, interest);
            tasks.spawn(async move {
                let mut attempts = Attempts::new(&policy);
                loop {
                    // Every attempt gets a fresh context, with the same seed.
                    let Started { ctx, sink, span } = starter.start(&tx);
                    let attempt = run_attempt(body.clone(), ctx, sink, timeout, &policy);
                    let (result, worth_retrying) = attempt.instrument(span).await;
                    if worth_retrying && !cancel.is_cancelled() {
                        if let Some(pause) = attempts.failed(&result) {
                            tokio::time::sleep(pause).await;
                            continue;
                        }
                    }
                    let result = attempts.finish(result);
                    if !result.is_ok() && fail_fast {
                        cancel.cancel();
                    }
                    crate::context::send_to_run(&tx, Message::UnitFinished(result));
                    drop(permit);
                    return;
                }
            });
            // Finished tasks are reaped as the loop goes, so a long run holds only those in flight.
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    };
    std::thread::scope(|scope| {
        let waited = scope.spawn(|| runtime.block_on(driver));
        let _ = waited.join();
    });
}

/// One attempt of an async unit: its body with panics caught, cut off at the deadline; says
/// whether its failure is worth another attempt.
async fn run_attempt(
    body: crate::resolve::AsyncUnitFn,
    ctx: crate::context::Ctx,
    sink: crate::context::UnitSink,
    timeout: Option<Duration>,
    policy: &RetryPolicy,
) -> (crate::results::UnitResult, bool) {
    let started = sink.started;
    let key = sink.unit.clone();
    let unit_future = TASK_UNIT.scope(sink.clone(), CatchPanic(body(ctx)));
    let outcome = match timeout {
        Some(limit) => tokio::time::timeout(limit, unit_future).await.ok(),
        None => Some(unit_future.await),
    };
    let duration = started.elapsed();
    // Tasks the unit spawned may still hold emitters: their events end here.
    sink.close();
    let (ctx, ended) = match outcome {
        Some(Ok((ctx, outcome))) => (Some(ctx), Ended::Returned(outcome)),
        Some(Err(ended)) => (None, ended),
        None => (None, Ended::TimedOut(timeout.unwrap_or_default())),
    };
    let worth_retrying = retryable(&ended, policy);
    let mut result = finish_unit(&key, ctx, ended, duration);
    result.cache = super::cache_counts(&sink);
    (result, worth_retrying)
}

/// Polls a unit's future with panics caught: a panic ends the unit with the panic's message and
/// location instead of tearing down the task (and the hook keeps it off the terminal, since the
/// unit is current while it is polled).
struct CatchPanic<F>(F);

impl<F: Future<Output = (crate::context::Ctx, UnitOutcome)> + Unpin> Future for CatchPanic<F> {
    type Output = Result<(crate::context::Ctx, UnitOutcome), Ended>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(Ended::unwound(payload))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use rand::Rng;

    use crate::context::Ctx;
    use crate::params::Params;
    use crate::plan::Plan;
    use crate::registry::{ExperimentEntry, ExperimentVTable, UnitFuture};
    use crate::resolve::{AsyncUnitFn, Condition, UnitFn};
    use crate::results::{UnitResult, UnitStatus};
    use crate::runner::{execute, RunOptions};
    use crate::source::Location;

    /// A plan of `replicates` units of one condition whose unit is `body`, async or sync.
    fn plan(replicates: u64, run: UnitFn, run_async: Option<AsyncUnitFn>) -> Plan {
        let entry = ExperimentEntry {
            name: "tasks",
            location: Location { module_path: "tasks", file: file!(), line: line!() },
            datasource: None,
            replicates,
            seed: 3,
            params: &[],
            hypotheses: &[],
            metrics: None,
            metric_bounds: &[],
            fingerprint: 0,
            run: crate::registry::RunDefaults::NONE,
            vtable: ExperimentVTable::unregistered::<()>(),
        };
        let condition = Condition {
            name: Arc::from("baseline"),
            treatment: None,
            params: Arc::new(Params::default()),
            run,
            run_async,
            input_overrides: Arc::new([]),
        };
        Plan {
            experiment: Cow::Owned(entry),
            conditions: vec![condition],
            replicates: (0..replicates).collect(),
            seed: 3,
            policy: Default::default(),
            done: Default::default(),
            shard: None,
        }
    }

    fn sync_never() -> UnitFn {
        Arc::new(|_: &mut Ctx| Err("the sync path must not run for an async plan".into()))
    }

    /// An async unit: draws from the unit's rng, waits `wait`, records the draw, counting how
    /// many units are in flight at once.
    fn drawing(wait: Duration, in_flight: Arc<AtomicUsize>, most: Arc<AtomicUsize>) -> AsyncUnitFn {
        Arc::new(move |ctx: Ctx| -> UnitFuture {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            Box::pin(async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let draw: u32 = ctx.rng().random_range(0..1_000_000);
                tokio::time::sleep(wait).await;
                ctx.record("draw", draw);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                (ctx, Ok(()))
            })
        })
    }

    fn metrics(units: &[UnitResult]) -> Vec<(u64, u64)> {
        let mut pairs: Vec<(u64, u64)> = units.iter().map(|u| (u.replicate, u.metrics["draw"].to_bits())).collect();
        pairs.sort_unstable();
        pairs
    }

    #[test]
    fn async_units_give_the_sync_units_results_whatever_the_jobs_and_never_exceed_them() {
        let sync: UnitFn = Arc::new(|ctx: &mut Ctx| {
            let draw: u32 = ctx.rng().random_range(0..1_000_000);
            ctx.record("draw", draw);
            Ok(())
        });
        let expected = execute(&plan(12, sync, None), &RunOptions { jobs: 1, ..RunOptions::default() }, &mut []);
        for jobs in [1, 4, 12] {
            let (in_flight, most) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
            let body = drawing(Duration::from_millis(20), in_flight, most.clone());
            let results =
                execute(&plan(12, sync_never(), Some(body)), &RunOptions { jobs, ..RunOptions::default() }, &mut []);
            assert_eq!(results.units.len(), 12, "every unit ran with --jobs {jobs}");
            assert_eq!(metrics(&results.units), metrics(&expected.units), "same seeds, same draws with --jobs {jobs}");
            assert!(
                most.load(Ordering::SeqCst) <= jobs,
                "at most {jobs} in flight, saw {}",
                most.load(Ordering::SeqCst)
            );
            if jobs > 1 {
                assert!(most.load(Ordering::SeqCst) > 1, "units overlap with --jobs {jobs}");
            }
        }
    }

    #[test]
    fn a_unit_past_its_deadline_fails_as_timed_out_and_the_others_finish() {
        let body: AsyncUnitFn = Arc::new(|ctx: Ctx| -> UnitFuture {
            Box::pin(async move {
                let wait = if ctx.replicate() == 1 { Duration::from_secs(600) } else { Duration::from_millis(5) };
                tokio::time::sleep(wait).await;
                ctx.record("done", true);
                (ctx, Ok(()))
            })
        });
        let options = RunOptions { jobs: 4, timeout: Some(Duration::from_millis(300)), ..RunOptions::default() };
        let results = execute(&plan(4, sync_never(), Some(body)), &options, &mut []);
        assert_eq!(results.units.len(), 4);
        for unit in &results.units {
            if unit.replicate == 1 {
                assert_eq!(unit.status, UnitStatus::Error);
                let message = &unit.error.as_ref().expect("an error").message;
                assert!(message.contains("timed out after 300 ms"), "{message}");
            } else {
                assert!(unit.is_ok(), "replicate {} finished: {:?}", unit.replicate, unit.error);
            }
        }
    }

    #[test]
    fn a_panicking_async_unit_fails_alone_with_its_message_and_location() {
        let body: AsyncUnitFn = Arc::new(|ctx: Ctx| -> UnitFuture {
            Box::pin(async move {
                tokio::task::yield_now().await;
                if ctx.replicate() == 2 {
                    panic!("replicate two breaks");
                }
                ctx.record("ok", true);
                (ctx, Ok(()))
            })
        });
        let results =
            execute(&plan(3, sync_never(), Some(body)), &RunOptions { jobs: 3, ..RunOptions::default() }, &mut []);
        let failed: Vec<&UnitResult> = results.units.iter().filter(|u| !u.is_ok()).collect();
        assert_eq!(failed.len(), 1);
        let error = failed[0].error.as_ref().expect("an error");
        assert_eq!((failed[0].replicate, error.message.as_str()), (2, "replicate two breaks"));
        assert!(error.location.as_deref().is_some_and(|l| l.contains("tasks.rs")), "{error:?}");
    }

    #[test]
    fn a_limit_lets_no_more_units_than_its_capacity_use_the_resource_at_once() {
        let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (inside, most_inside) = (in_flight.clone(), most.clone());
        let body: AsyncUnitFn = Arc::new(move |ctx: Ctx| -> UnitFuture {
            let (inside, most_inside) = (inside.clone(), most_inside.clone());
            Box::pin(async move {
                let guard = ctx.limit("server").await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most_inside.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(15)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
                (ctx, Ok(()))
            })
        });
        let limits = crate::limits::Limits::new([("server", 2)]);
        let options = RunOptions { jobs: 8, limits: Some(Arc::new(limits)), ..RunOptions::default() };
        let results = execute(&plan(12, sync_never(), Some(body)), &options, &mut []);
        assert_eq!(results.failed(), 0, "{:?}", results.units.iter().find(|u| !u.is_ok()));
        assert_eq!(most.load(Ordering::SeqCst), 2, "the limit's capacity, not --jobs, bounds the resource");
    }

    #[test]
    fn an_undeclared_limit_fails_the_unit_naming_the_declared_ones() {
        let body: AsyncUnitFn = Arc::new(|ctx: Ctx| -> UnitFuture {
            Box::pin(async move {
                let _guard = ctx.limit("olama").await;
                (ctx, Ok(()))
            })
        });
        let limits = crate::limits::Limits::new([("ollama", 2)]);
        let options = RunOptions { jobs: 2, limits: Some(Arc::new(limits)), ..RunOptions::default() };
        let results = execute(&plan(1, sync_never(), Some(body)), &options, &mut []);
        let message = &results.units[0].error.as_ref().expect("failed").message;
        assert!(message.contains("'olama' is not declared") && message.contains("ollama"), "{message}");
    }

    /// Fails the first `failures` attempts of every unit with a retryable error, then draws.
    fn flaky_async(failures: usize) -> AsyncUnitFn {
        let seen = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<u64, usize>::new()));
        Arc::new(move |ctx: Ctx| -> UnitFuture {
            let seen = seen.clone();
            Box::pin(async move {
                let attempt = {
                    let mut seen = seen.lock().expect("not poisoned");
                    let count = seen.entry(ctx.replicate()).or_default();
                    *count += 1;
                    *count
                };
                tokio::task::yield_now().await;
                if attempt <= failures {
                    return (ctx, Err(crate::results::Failure::retryable(format!("attempt {attempt} dropped"))));
                }
                let draw: u32 = ctx.rng().random_range(0..1_000_000);
                ctx.record("draw", draw);
                (ctx, Ok(()))
            })
        })
    }

    fn retrying(retries: u32) -> RunOptions {
        let retry = crate::runner::RetryPolicy { retries, first_delay: Duration::from_millis(1), ..Default::default() };
        RunOptions { jobs: 4, retry, ..RunOptions::default() }
    }

    #[test]
    fn retried_units_succeed_with_the_results_of_units_that_never_failed_and_keep_their_attempts() {
        let healthy = execute(&plan(6, sync_never(), Some(flaky_async(0))), &retrying(0), &mut []);
        let flaky = execute(&plan(6, sync_never(), Some(flaky_async(2))), &retrying(3), &mut []);
        assert_eq!(flaky.failed(), 0, "{:?}", flaky.units.iter().find(|u| !u.is_ok()));
        assert_eq!(metrics(&flaky.units), metrics(&healthy.units), "the same seed in every attempt");
        for unit in &flaky.units {
            let attempts: Vec<(u32, &str)> =
                unit.attempts.iter().map(|a| (a.attempt, a.error.message.as_str())).collect();
            assert_eq!(attempts, [(1, "attempt 1 dropped"), (2, "attempt 2 dropped")]);
        }
        let exhausted = execute(&plan(2, sync_never(), Some(flaky_async(5))), &retrying(2), &mut []);
        assert_eq!(exhausted.failed(), 2, "two retries do not get past five failures");
        assert!(exhausted.units.iter().all(|u| u.attempts.len() == 2));
    }

    #[test]
    fn only_failures_worth_it_are_retried() {
        let final_error: AsyncUnitFn =
            Arc::new(|ctx: Ctx| -> UnitFuture { Box::pin(async move { (ctx, Err("a bug, not bad luck".into())) }) });
        let results = execute(&plan(2, sync_never(), Some(final_error)), &retrying(3), &mut []);
        assert!(results.units.iter().all(|u| !u.is_ok() && u.attempts.is_empty()), "a final error is not retried");
        let slow: AsyncUnitFn = Arc::new(|ctx: Ctx| -> UnitFuture {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(600)).await;
                (ctx, Ok(()))
            })
        });
        let options = RunOptions { timeout: Some(Duration::from_millis(20)), ..retrying(1) };
        let results = execute(&plan(1, sync_never(), Some(slow)), &options, &mut []);
        let unit = &results.units[0];
        assert_eq!(unit.attempts.len(), 1, "a timeout is retried");
        assert_eq!(unit.attempts[0].error.kind, crate::results::FailureKind::Timeout);
        assert_eq!(unit.error.as_ref().map(|e| e.kind), Some(crate::results::FailureKind::Timeout));
    }

    #[test]
    fn sync_units_are_retried_too() {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let flaky: UnitFn = Arc::new(move |ctx: &mut Ctx| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(crate::results::Failure::retryable("first call fails"));
            }
            ctx.record("ok", true);
            Ok(())
        });
        let options = RunOptions { jobs: 1, ..retrying(2) };
        let results = execute(&plan(1, flaky, None), &options, &mut []);
        assert!(results.units[0].is_ok());
        assert_eq!(results.units[0].attempts.len(), 1);
    }

    #[test]
    fn a_sync_unit_past_its_deadline_is_recorded_as_timed_out_and_the_run_does_not_wait_for_it() {
        let slow: UnitFn = Arc::new(|ctx: &mut Ctx| {
            if ctx.replicate() == 0 {
                // Far past the deadline: the run must not wait for this thread.
                std::thread::sleep(Duration::from_secs(30));
            }
            ctx.record("done", true);
            Ok(())
        });
        let started = std::time::Instant::now();
        let options = RunOptions { jobs: 2, timeout: Some(Duration::from_millis(200)), ..RunOptions::default() };
        let results = execute(&plan(3, slow, None), &options, &mut []);
        assert!(started.elapsed() < Duration::from_secs(20), "the run ended without the abandoned unit");
        let kinds: Vec<_> = results.units.iter().map(|u| u.error.as_ref().map(|e| e.kind)).collect();
        assert_eq!(kinds, [Some(crate::results::FailureKind::Timeout), None, None]);
        assert!(results.units[1].metrics.get("done").is_some(), "the others record their metrics");
    }
}
