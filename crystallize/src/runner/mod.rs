//! Executes a [`Plan`]'s units, serially or on a rayon pool of `--jobs` threads. Each unit runs
//! isolated: a panic or an error fails that unit alone, with its message and location, and the
//! others go on. Workers send everything to one output thread, which alone calls observers.

mod isolation;
mod output;
mod steps;
#[cfg(feature = "async")]
mod tasks;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use output::{output_thread, PlanOrder, CHANNEL_CAPACITY};

use rayon::prelude::*;

use crate::context::{Ctx, Outbox, UnitSink};
use crate::events::{self, Interest, Message, MetricRecord, Observer, UnitKey};
pub use crate::metrics::Metrics;
use crate::plan::{Plan, Unit};
use crate::registry::StepInfo;
use crate::results::{Attempt, FailureKind};
pub use crate::results::{RunInfo, RunResults, UnitError, UnitOutcome, UnitResult, UnitStatus};

/// A cancellation flag shared by the runner, observers and the Ctrl-C handler: once cancelled,
/// no new unit starts; units in flight finish.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

/// Ctrl-C / SIGTERM presses seen by this process (see [`interrupt`]).
static INTERRUPTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Records an interrupt (Ctrl-C or SIGTERM); returns how many there have been. Every [`Cancel`]
/// reports cancelled from then on.
pub fn interrupt() -> usize {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst) + 1
}

/// Whether this process was interrupted.
pub fn interrupted() -> bool {
    INTERRUPTS.load(Ordering::SeqCst) > 0
}

impl Cancel {
    /// Stops the run from starting new units.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the run was cancelled, or the process interrupted.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed) || interrupted()
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Units in parallel; 1 runs serially on the calling thread.
    pub jobs: usize,
    /// Stop scheduling new units after the first failure.
    pub fail_fast: bool,
    /// Send every recorded metric to observers as it is recorded (their `metric` hook); on by
    /// default, off saves a clone and a message per recorded value.
    pub live_metrics: bool,
    /// Send every unit's input to observers (the `debug` printer does).
    pub describe_input: bool,
    /// Stops the run early (observers and the Ctrl-C handler hold clones).
    pub cancel: Cancel,
    /// Where units write artifacts: `<dir>/<condition>/<replicate>/<name>`.
    pub artifacts: Option<Arc<std::path::PathBuf>>,
    /// A unit still running after this long fails as timed out (async units are cancelled at
    /// their deadline).
    pub timeout: Option<Duration>,
    /// How failed units are tried again.
    pub retry: RetryPolicy,
    /// The run's named resource limits (see `crate::limits`).
    #[cfg(feature = "async")]
    pub limits: Option<Arc<crate::limits::Limits>>,
    /// Run in rounds of replicate indices (`run --until-decided`): units start in index order
    /// (every condition of index k before index k + 1), and none past the gate's horizon.
    pub rounds: Option<Gate>,
    /// The step cache (`#[step(cache)]`), when the run uses one (set by `Session`).
    #[doc(hidden)]
    pub cache: Option<Arc<crate::cache::Cache>>,
    /// Whether [`RunResults::units`] keeps the successful units (on by default); the command
    /// line, which reports from the store, keeps only the failures (observers still see every
    /// unit): a million results held to be dropped were most of the memory of a big run.
    #[doc(hidden)]
    pub keep_successes: bool,
}

/// The replicate indices a run in rounds may start: those below a horizon that the
/// sequential monitor moves forward as indices complete, so that the run never gets far past
/// what has been decided ("as `--jobs` allows").
#[derive(Clone, Debug)]
pub struct Gate(Arc<(std::sync::Mutex<u64>, std::sync::Condvar)>);

impl Gate {
    /// A gate letting indices below `horizon` start.
    pub fn new(horizon: u64) -> Gate {
        Gate(Arc::new((std::sync::Mutex::new(horizon), std::sync::Condvar::new())))
    }

    /// Lets indices below `horizon` start (a gate never closes again).
    pub fn advance(&self, horizon: u64) {
        let (lock, ready) = &*self.0;
        if let Ok(mut current) = lock.lock() {
            if horizon > *current {
                *current = horizon;
                ready.notify_all();
            }
        }
    }

    /// Whether index `replicate` may start.
    pub fn allows(&self, replicate: u64) -> bool {
        self.0 .0.lock().map(|h| replicate < *h).unwrap_or(true)
    }

    /// Blocks until `replicate` may start or the run is cancelled.
    fn wait(&self, replicate: u64, cancel: &Cancel) {
        let (lock, ready) = &*self.0;
        let Ok(mut horizon) = lock.lock() else { return };
        while replicate >= *horizon && !cancel.is_cancelled() {
            match ready.wait_timeout(horizon, Duration::from_millis(20)) {
                Ok((next, _)) => horizon = next,
                Err(_) => return,
            }
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: default_jobs(),
            fail_fast: false,
            live_metrics: true,
            describe_input: false,
            cancel: Cancel::default(),
            artifacts: None,
            timeout: None,
            retry: RetryPolicy::default(),
            #[cfg(feature = "async")]
            limits: None,
            rounds: None,
            cache: None,
            keep_successes: true,
        }
    }
}

/// When a failed unit is tried again: with the same seed, after a pause that doubles each time
/// (with jitter), at most `retries` more times, and only for failures worth it (timeouts, errors
/// the code marks retryable, panics only when `panics` is set).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts after the first (0: none).
    pub retries: u32,
    /// Whether a panic is worth another attempt.
    pub panics: bool,
    /// The pause before the first retry.
    pub first_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { retries: 0, panics: false, first_delay: Duration::from_millis(200) }
    }
}

/// The available cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Marks a step's extent inside the unit running on this thread; created by `#[step]`. The step is
/// also a `tracing` span (`step{name}`), inside the unit's.
pub struct StepGuard {
    started: Option<(Instant, &'static StepInfo)>,
    _span: tracing::span::EnteredSpan,
}

impl StepGuard {
    /// Reports the start of `step` to the current unit, if any and if its observers read steps.
    pub fn enter(step: &'static StepInfo) -> StepGuard {
        let span = tracing::info_span!("step", name = step.name).entered();
        // Timed only when an observer of the run reads steps: `started` is `None` otherwise.
        let started = isolation::with_current(|sink| {
            sink.interest.steps.then(|| {
                sink.send(Message::StepStarted(sink.unit.clone(), step));
                (Instant::now(), step)
            })
        })
        .flatten();
        StepGuard { started, _span: span }
    }
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        if let Some((started, step)) = self.started {
            isolation::with_current(|sink| {
                sink.send(Message::StepFinished(sink.unit.clone(), step, started.elapsed()))
            });
        }
    }
}

/// The timing of an async step, started when its future is first polled and ended when it
/// completes (or is dropped: a cancelled unit's step ends there). Unlike [`StepGuard`] it enters
/// no span itself: the step's future is instrumented with its span instead, since a span
/// entered across an await would follow the thread, not the task.
#[cfg(feature = "async")]
pub(crate) struct AsyncStepTiming {
    started: Option<(Instant, &'static StepInfo, UnitSink)>,
}

#[cfg(feature = "async")]
impl AsyncStepTiming {
    /// Reports the start of `step` to the unit of the current task, if its observers read steps.
    pub(crate) fn start(step: &'static StepInfo) -> AsyncStepTiming {
        let started = isolation::with_current(|sink| {
            sink.interest.steps.then(|| {
                sink.send(Message::StepStarted(sink.unit.clone(), step));
                (Instant::now(), step, sink.clone())
            })
        })
        .flatten();
        AsyncStepTiming { started }
    }
}

#[cfg(feature = "async")]
impl Drop for AsyncStepTiming {
    fn drop(&mut self) {
        if let Some((started, step, sink)) = self.started.take() {
            sink.send(Message::StepFinished(sink.unit.clone(), step, started.elapsed()));
        }
    }
}

#[cfg(feature = "async")]
pub use steps::in_run as step_in_run;
pub use steps::{step_timed_out, StepRetries};

/// The limits of the unit current on this thread or task, for `#[step(limit = "...")]`.
#[cfg(feature = "async")]
pub(crate) fn current_limits() -> Option<Arc<crate::limits::Limits>> {
    isolation::with_current(|sink| sink.limits.clone()).flatten()
}

/// The step cache of the unit current on this thread or task, for `#[step(cache)]`.
pub(crate) fn current_cache() -> Option<Arc<crate::cache::UnitCache>> {
    isolation::with_current(|sink| sink.cache.clone()).flatten()
}

/// The unit current on this thread or task.
pub(crate) fn current_unit() -> Option<Arc<UnitKey>> {
    isolation::with_current(|sink| sink.unit.clone())
}

/// Emits a framework event to the unit current here, if any.
pub(crate) fn emit_from_step(name: &'static str, payload: serde_json::Value) {
    isolation::with_current(|sink| sink.emit_internal(name, payload));
}

/// The hits and misses of a finished attempt, for its record.
pub(crate) fn cache_counts(sink: &UnitSink) -> BTreeMap<String, crate::cache::CacheCount> {
    sink.cache.as_ref().map(|cache| cache.counts()).unwrap_or_default()
}

/// Runs every unit of `plan`, reporting to `observers` from one output thread.
pub fn execute(plan: &Plan, options: &RunOptions, observers: &mut [&mut dyn Observer]) -> RunResults {
    isolation::install_panic_hook();
    let mut units = plan.units();
    if options.rounds.is_some() {
        units.sort_by_key(|unit| (unit.replicate, unit.condition));
    }
    let jobs = options.jobs.max(1);
    let info = RunInfo {
        experiment: plan.experiment.name.to_owned(),
        conditions: plan.conditions.iter().map(|c| c.name.to_string()).collect(),
        replicates: plan.replicates.clone(),
        seed: plan.seed,
        units_planned: units.len(),
        units_per_condition: (0..plan.conditions.len())
            .map(|index| units.iter().filter(|u| u.condition == index).count())
            .collect(),
        jobs,
        #[cfg(feature = "async")]
        limits: match options.limits.clone() {
            Some(limits) => crate::results::LimitsInUse::of(move || limits.uses()),
            None => Default::default(),
        },
        #[cfg(not(feature = "async"))]
        limits: Default::default(),
    };
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Message>(CHANNEL_CAPACITY);
    // Besides the observers passed in: those registered with `observer!` and those attached to
    // the experiment, built afresh for this run.
    let mut attached = events::attached_observers(plan.experiment.name);
    // The experiment's own observers (`observer!`, attached) are promised every result at the
    // end (`run_finished`): with any of them, the successes are kept whatever the options say.
    let keep_successes = options.keep_successes || !attached.is_empty();
    let mut all: Vec<&mut dyn Observer> = observers.iter_mut().map(|o| &mut **o as &mut dyn Observer).collect();
    all.extend(attached.iter_mut().map(|o| &mut **o as &mut dyn Observer));
    // Messages no observer reads are not sent (an observer whose `interest` panics reads all).
    let interest = all.iter().fold(Interest::RESULTS, |interest, o| {
        interest.union(catch_unwind(AssertUnwindSafe(|| o.interest())).unwrap_or(Interest::ALL))
    });
    let replicates_sorted = plan.replicates.windows(2).all(|pair| pair[0] < pair[1]);
    let place = |result: &UnitResult| {
        let condition = plan.conditions.iter().position(|c| *c.name == *result.condition)?;
        let replicate = if replicates_sorted {
            plan.replicates.binary_search(&result.replicate).ok()?
        } else {
            plan.replicates.iter().position(|&r| r == result.replicate)?
        };
        Some(condition * plan.replicates.len() + replicate)
    };
    let order = PlanOrder { slots: plan.conditions.len() * plan.replicates.len(), place: &place };

    let finished = std::thread::scope(|scope| {
        let output = scope.spawn(|| output_thread(rx, &info, &mut all, &order, keep_successes));
        let work = |unit: &Unit| {
            if let Some(gate) = &options.rounds {
                gate.wait(unit.replicate, &options.cancel);
            }
            if options.cancel.is_cancelled() {
                return;
            }
            let result = run_with_retries(plan, unit, &tx, options, interest);
            if !result.is_ok() && options.fail_fast {
                options.cancel.cancel();
            }
            crate::context::send_to_run(&tx, Message::UnitFinished(result));
        };
        #[cfg(feature = "async")]
        let run_async = plan.conditions.iter().any(|c| c.run_async.is_some());
        #[cfg(not(feature = "async"))]
        let run_async = false;
        if run_async {
            #[cfg(feature = "async")]
            tasks::run_all(plan, &units, jobs, &tx, options, interest);
        } else {
            let pool = if jobs > 1 { rayon::ThreadPoolBuilder::new().num_threads(jobs).build().ok() } else { None };
            match pool {
                // In rounds, workers take units from one queue in order (rayon would split the
                // list and start its second half at once).
                Some(pool) if options.rounds.is_some() => {
                    let next = std::sync::atomic::AtomicUsize::new(0);
                    pool.install(|| {
                        (0..jobs).into_par_iter().for_each(|_| {
                            while let Some(unit) = units.get(next.fetch_add(1, Ordering::SeqCst)) {
                                work(unit);
                            }
                        })
                    })
                }
                Some(pool) => pool.install(|| units.par_iter().for_each(work)),
                None => units.iter().for_each(work),
            }
        }
        // The end, said in the channel: an abandoned sync unit may still hold a sender.
        crate::context::send_to_run(&tx, Message::End);
        drop(tx);
        output.join()
    })
    .unwrap_or_else(|_| (Vec::new(), 0));

    let (finished, count) = finished;
    let skipped = units.len().saturating_sub(count);
    RunResults { info, units: finished, skipped, elapsed: started.elapsed() }
}

/// A unit about to run: its context, and its sink and span, which outlive the context.
struct Started {
    ctx: Ctx,
    sink: UnitSink,
    span: tracing::Span,
}

/// What it takes to start an attempt of one unit, owned, so that an async task can start
/// another attempt after the plan's borrow has ended.
#[derive(Clone)]
struct UnitStarter {
    key: Arc<UnitKey>,
    params: Arc<crate::params::Params>,
    artifacts: Option<std::path::PathBuf>,
    live_metrics: bool,
    describe_input: bool,
    interest: Interest,
    #[cfg(feature = "async")]
    limits: Option<Arc<crate::limits::Limits>>,
    cache: Option<Arc<crate::cache::Cache>>,
}

impl UnitStarter {
    fn new(plan: &Plan, unit: &Unit, options: &RunOptions, interest: Interest) -> UnitStarter {
        let condition = &plan.conditions[unit.condition];
        let key = Arc::new(UnitKey {
            experiment: plan.experiment.name,
            condition: condition.name.clone(),
            replicate: unit.replicate,
            seed: unit.seed,
        });
        UnitStarter {
            key,
            params: condition.params.clone(),
            artifacts: options
                .artifacts
                .as_ref()
                .map(|root| root.join(&*condition.name).join(unit.replicate.to_string())),
            live_metrics: options.live_metrics,
            describe_input: options.describe_input,
            interest,
            #[cfg(feature = "async")]
            limits: options.limits.clone(),
            cache: options.cache.clone(),
        }
    }

    /// Sets up an attempt: the unit's `tracing` span, its sink to the output thread and a fresh
    /// context (the same seed every time); announces its start to the observers that read it.
    fn start(&self, tx: &SyncSender<Message>) -> Started {
        let key = &self.key;
        // The unit is a `tracing` span, so that the user's own `tracing` events inside it are
        // attributed to it. A root span: a unit that runs nested on this thread (a rayon worker
        // stealing work while another unit waits) belongs to no other unit.
        let span = tracing::info_span!(
            parent: None,
            "unit",
            experiment = key.experiment,
            condition = &*key.condition,
            replicate = key.replicate,
            seed = key.seed
        );
        let sink = UnitSink::new(key.clone(), Outbox::Run(tx.clone()), self.live_metrics, self.describe_input)
            .with_span(span.clone())
            .with_interest(self.interest);
        #[cfg(feature = "async")]
        let sink = sink.with_limits(self.limits.clone());
        let sink = sink.with_cache(self.cache.clone().map(crate::cache::UnitCache::new));
        if self.interest.unit_started {
            sink.send(Message::UnitStarted(key.clone()));
        }
        let ctx = Ctx::for_unit(key.clone(), self.params.clone(), sink.clone(), self.artifacts.clone());
        Started { ctx, sink, span }
    }
}

/// How a unit's body ended.
enum Ended {
    /// It returned (`Err`: the error it returned).
    Returned(UnitOutcome),
    /// It panicked: the message and location.
    Panicked(String, Option<String>),
    /// Its deadline passed first.
    TimedOut(Duration),
    /// One of its steps ran out of time and retries (`#[step(timeout = ...)]`): what to say.
    StepTimedOut(String),
}

impl Ended {
    /// How a unit that unwound ended: a step's deadline ([`steps::StepTimedOut`]), or a panic with
    /// the message and location the hook kept on this thread.
    fn unwound(payload: Box<dyn std::any::Any + Send>) -> Ended {
        match payload.downcast::<steps::StepTimedOut>() {
            Ok(timed_out) => Ended::StepTimedOut(timed_out.message),
            Err(payload) => {
                let (message, location) = isolation::caught_panic(payload.as_ref());
                Ended::Panicked(message, location)
            }
        }
    }
}

/// The result of a unit from how it ended and what its context recorded (none, when the
/// context went down with a unit that timed out).
fn finish_unit(key: &UnitKey, ctx: Option<Ctx>, ended: Ended, duration: Duration) -> UnitResult {
    let error = match ended {
        Ended::Returned(Ok(())) => None,
        Ended::Returned(Err(failure)) => {
            Some(UnitError { message: failure.message().to_owned(), location: None, kind: FailureKind::Error })
        }
        Ended::Panicked(message, location) => Some(UnitError { message, location, kind: FailureKind::Panic }),
        Ended::TimedOut(limit) => Some(UnitError {
            message: format!("timed out after {} (the unit's deadline)", crate::results::human_duration(limit)),
            location: None,
            kind: FailureKind::Timeout,
        }),
        Ended::StepTimedOut(message) => Some(UnitError { message, location: None, kind: FailureKind::Timeout }),
    };
    let mut error = error;
    let records = ctx.map(|ctx| ctx.take_records()).unwrap_or_default();
    let (mut metrics, mut records) = summarize_records(records);
    // A journal line holds finite numbers only (JSON has no NaN): a unit that recorded NaN or an
    // infinity fails, naming the metric, rather than being stored as a line no reader accepts.
    if let Some(record) = records
        .iter()
        .map(|r| (&r.name, r.value))
        .chain(metrics.iter().map(|(n, v)| (n, *v)))
        .find(|(_, v)| !v.is_finite())
    {
        let (name, value) = (record.0.clone(), record.1);
        error.get_or_insert(UnitError {
            message: format!(
                "metric '{name}' is {value}: only finite numbers can be recorded (a journal line is JSON, which has no NaN or infinity); check the computation, or record it only when it is defined"
            ),
            location: None,
            kind: FailureKind::Error,
        });
        metrics = Default::default();
        records = Vec::new();
    }
    UnitResult {
        experiment: key.experiment.to_owned(),
        // Not `to_string`, which goes through `Display` formatting.
        condition: String::from(&*key.condition),
        replicate: key.replicate,
        seed: key.seed,
        status: if error.is_none() { UnitStatus::Ok } else { UnitStatus::Error },
        error,
        metrics,
        records,
        duration_ms: duration.as_secs_f64() * 1e3,
        attempts: Vec::new(),
        cache: BTreeMap::new(),
    }
}

/// Whether `ended` is worth another attempt under `policy`: a timeout, an error the code marked
/// retryable ([`crate::results::Failure::retryable`]), a panic only when the policy says so.
fn retryable(ended: &Ended, policy: &RetryPolicy) -> bool {
    match ended {
        Ended::Returned(Ok(())) => false,
        Ended::Returned(Err(failure)) => failure.is_retryable(),
        Ended::Panicked(..) => policy.panics,
        Ended::TimedOut(_) | Ended::StepTimedOut(_) => true,
    }
}

/// Keeps the failed attempts of a unit and says how long to wait before the next one.
struct Attempts {
    failed: Vec<Attempt>,
    backoff: backon::ExponentialBackoff,
}

impl Attempts {
    fn new(policy: &RetryPolicy) -> Attempts {
        use backon::BackoffBuilder;
        // Jitter spreads retries of many units that failed together (a server restarting); it
        // changes only when an attempt starts, never what it computes.
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(policy.first_delay)
            .with_max_delay(policy.first_delay.saturating_mul(64).max(policy.first_delay))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(policy.retries as usize)
            .build();
        Attempts { failed: Vec::new(), backoff }
    }

    /// Records a failed attempt; returns the pause before the next, or `None` when no attempt
    /// is left.
    fn failed(&mut self, result: &UnitResult) -> Option<Duration> {
        let pause = self.backoff.next()?;
        if let Some(error) = &result.error {
            let attempt = u32::try_from(self.failed.len() + 1).unwrap_or(u32::MAX);
            self.failed.push(Attempt { attempt, error: error.clone(), duration_ms: result.duration_ms });
        }
        Some(pause)
    }

    /// The final result, with the attempts that failed before it.
    fn finish(self, mut result: UnitResult) -> UnitResult {
        result.attempts = self.failed;
        result
    }
}

/// Runs one sync unit, again after a retryable failure while attempts are left (same seed, a
/// fresh context each time).
fn run_with_retries(
    plan: &Plan,
    unit: &Unit,
    tx: &SyncSender<Message>,
    options: &RunOptions,
    interest: Interest,
) -> UnitResult {
    let mut attempts = Attempts::new(&options.retry);
    loop {
        let (result, worth_retrying) = run_one(plan, unit, tx, options, interest);
        if !worth_retrying || options.cancel.is_cancelled() {
            return attempts.finish(result);
        }
        match attempts.failed(&result) {
            Some(pause) => std::thread::sleep(pause),
            None => return attempts.finish(result),
        }
    }
}

/// Runs one sync unit on this thread; says whether its failure is worth another attempt.
fn run_one(
    plan: &Plan,
    unit: &Unit,
    tx: &SyncSender<Message>,
    options: &RunOptions,
    interest: Interest,
) -> (UnitResult, bool) {
    let Started { mut ctx, sink, span } = UnitStarter::new(plan, unit, options, interest).start(tx);
    let condition = &plan.conditions[unit.condition];
    if let Some(limit) = options.timeout {
        return run_one_with_deadline(condition.run.clone(), ctx, sink, span, limit, &options.retry);
    }
    let _entered = span.enter();
    // The unit's clock started with its sink (reading the clock costs as much as a cheap step).
    let started = sink.started;
    let key = sink.unit.clone();
    let ended = run_isolated(&condition.run, &mut ctx, sink.clone());
    let duration = started.elapsed();
    // Threads the unit spawned may still hold emitters: from here on, their events are dropped.
    ctx.close_events();
    let worth_retrying = retryable(&ended, &options.retry);
    let mut result = finish_unit(&key, Some(ctx), ended, duration);
    result.cache = cache_counts(&sink);
    (result, worth_retrying)
}

/// Runs a sync unit's body on this thread with `sink` as the current unit and panics caught;
/// a panic's message and location are read here, on the thread the hook kept them on.
fn run_isolated(run: &crate::resolve::UnitFn, ctx: &mut Ctx, sink: UnitSink) -> Ended {
    let previous = isolation::enter_current(sink);
    let outcome = catch_unwind(AssertUnwindSafe(|| run(ctx)));
    isolation::restore_current(previous);
    match outcome {
        Ok(outcome) => Ended::Returned(outcome),
        Err(payload) => Ended::unwound(payload),
    }
}

/// Runs one sync unit on a thread of its own and waits at most `limit` for it. A sync unit cannot
/// be cancelled: past its deadline it is recorded as timed out and its thread is abandoned (it
/// runs on until it returns; its events are dropped, and its result is never recorded).
fn run_one_with_deadline(
    run: crate::resolve::UnitFn,
    ctx: Ctx,
    sink: UnitSink,
    span: tracing::Span,
    limit: Duration,
    policy: &RetryPolicy,
) -> (UnitResult, bool) {
    let started = sink.started;
    let key = sink.unit.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let unit_sink = sink.clone();
    let spawned = std::thread::Builder::new().name("crystallize-unit".into()).spawn(move || {
        let mut ctx = ctx;
        let _entered = span.enter();
        let ended = run_isolated(&run, &mut ctx, unit_sink);
        let _ = done_tx.send((ctx, ended));
    });
    let (ctx, ended) = match spawned {
        Err(error) => (None, Ended::Returned(Err(format!("cannot start a thread for the unit: {error}").into()))),
        Ok(_) => match done_rx.recv_timeout(limit) {
            Ok((ctx, ended)) => (Some(ctx), ended),
            Err(_) => (None, Ended::TimedOut(limit)),
        },
    };
    let duration = started.elapsed();
    // From here on, whatever the unit (or an abandoned one) emits is dropped.
    sink.close();
    let worth_retrying = retryable(&ended, policy);
    let mut result = finish_unit(&key, ctx, ended, duration);
    result.cache = cache_counts(&sink);
    (result, worth_retrying)
}

/// Each metric's mean over its records; the records themselves are kept only when they say more
/// than the means (a metric recorded several times, or tags).
fn summarize_records(records: Vec<MetricRecord>) -> (Metrics, Vec<MetricRecord>) {
    // The usual unit records a few metrics once each, untagged: their names move into the
    // metrics, with no copies and no intermediate map.
    let few = records.len() <= 16;
    let distinct = || records.iter().enumerate().all(|(i, r)| records[..i].iter().all(|s| s.name != r.name));
    if few && records.iter().all(|r| r.tags.is_empty()) && distinct() {
        return (records.into_iter().map(|record| (record.name, record.value)).collect(), Vec::new());
    }
    let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    for record in &records {
        let entry = sums.entry(record.name.clone()).or_insert((0.0, 0));
        entry.0 += record.value;
        entry.1 += 1;
    }
    let repeated = sums.values().any(|(_, count)| *count > 1);
    let tagged = records.iter().any(|r| !r.tags.is_empty());
    let metrics = sums.into_iter().map(|(name, (sum, count))| (name, sum / f64::from(count))).collect();
    (metrics, if repeated || tagged { records } else { Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_recording_a_non_finite_metric_fails_naming_it_and_stores_no_value() {
        let key = UnitKey { experiment: "e", condition: Arc::from("baseline"), replicate: 3, seed: 9 };
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let ctx = Ctx::standalone(9);
            ctx.record("score", value);
            ctx.record("rounds", 4.0);
            let unit = finish_unit(&key, Some(ctx), Ended::Returned(Ok(())), Duration::ZERO);
            assert_eq!(unit.status, UnitStatus::Error);
            let error = unit.error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
            assert!(error.contains("metric 'score' is") && error.contains("only finite numbers"), "{error}");
            assert!(unit.metrics.is_empty() && unit.records.is_empty(), "no value that JSON cannot hold");
            // Its record, as a sealed journal line, reads back as the same failure.
            let mut json = serde_json::to_value(&unit).expect("a unit serializes");
            json["schema"] = serde_json::json!(crate::store::journal::JOURNAL_SCHEMA);
            json["type"] = serde_json::json!("unit");
            let line = crate::store::journal::seal_record(&serde_json::to_vec(&json).expect("JSON"));
            let back = crate::store::journal::parse_record(&line).expect("the line reads").expect("a unit record");
            assert_eq!(back.error.map(|e| e.message), Some(error));
        }
        let ctx = Ctx::standalone(9);
        ctx.record("score", 1.5);
        let unit = finish_unit(&key, Some(ctx), Ended::Returned(Ok(())), Duration::ZERO);
        assert!(unit.is_ok(), "{:?}", unit.error);
    }

    fn record(name: &str, value: f64) -> MetricRecord {
        MetricRecord { name: name.into(), value, tags: Vec::new() }
    }

    #[test]
    fn repeated_metrics_are_averaged_and_kept() {
        let (metrics, kept) = summarize_records(vec![record("x", 1.0), record("x", 2.0), record("y", 5.0)]);
        assert_eq!(metrics["x"], 1.5);
        assert_eq!(metrics["y"], 5.0);
        assert_eq!(kept.len(), 3);
    }

    /// Counts what it is sent; reads what `interest` says.
    struct Counting(Interest, std::sync::Arc<std::sync::Mutex<[usize; 4]>>);

    impl Observer for Counting {
        fn unit_started(&mut self, _: &UnitKey) {
            self.1.lock().unwrap()[0] += 1;
        }
        fn event(&mut self, _: &UnitKey, _: &crate::events::Event) {
            self.1.lock().unwrap()[1] += 1;
        }
        fn unit_finished(&mut self, _: &UnitResult) {
            self.1.lock().unwrap()[2] += 1;
        }
        fn metric(&mut self, _: &UnitKey, _: &MetricRecord) {
            self.1.lock().unwrap()[3] += 1;
        }
        fn interest(&self) -> Interest {
            self.0
        }
    }

    /// How many `unit_started`, `event`, `unit_finished` and `metric` each observer was sent.
    fn counted(interests: &[Interest]) -> Vec<[usize; 4]> {
        let counts: Vec<_> = interests.iter().map(|_| std::sync::Arc::default()).collect();
        let mut quick = crate::Quick::new(|x: u32, ctx: &mut Ctx| {
            ctx.emit("tick", x);
            ctx.record("x", x);
        })
        .config("a", 1)
        .replicates(3)
        .jobs(1);
        for (interest, count) in interests.iter().zip(&counts) {
            quick = quick.observer(Counting(*interest, std::sync::Arc::clone(count)));
        }
        quick.run().unwrap();
        counts.iter().map(|c| *c.lock().unwrap()).collect()
    }

    #[test]
    fn messages_no_observer_reads_are_not_sent() {
        assert_eq!(counted(&[Interest::RESULTS]), [[0, 0, 3, 0]]);
        let events = Interest { events: true, ..Interest::RESULTS };
        assert_eq!(counted(&[events]), [[0, 3, 3, 0]]);
        let metrics = Interest { metrics: true, ..Interest::RESULTS };
        assert_eq!(counted(&[metrics]), [[0, 0, 3, 3]]);
        // What one observer reads, every observer is sent (and may ignore).
        assert_eq!(counted(&[Interest::RESULTS, Interest::ALL]), [[3, 3, 3, 3], [3, 3, 3, 3]]);
    }

    fn unit(condition: &str, replicate: u64) -> UnitResult {
        UnitResult {
            experiment: "e".into(),
            condition: condition.into(),
            replicate,
            seed: 0,
            status: UnitStatus::Ok,
            error: None,
            metrics: Metrics::new(),
            records: Vec::new(),
            duration_ms: 0.0,
            attempts: Vec::new(),
            cache: Default::default(),
        }
    }

    #[test]
    fn results_are_put_in_plan_order_whatever_order_they_finished_in() {
        let conditions = ["baseline", "dolphin"];
        let place = |u: &UnitResult| {
            let condition = conditions.iter().position(|c| *c == u.condition)?;
            (u.replicate < 8).then(|| condition * 8 + u.replicate as usize)
        };
        let order = PlanOrder { slots: 16, place: &place };
        let in_order = |units: Vec<UnitResult>| {
            let mut collector = order.collector(units.len());
            for unit in units {
                collector.push(unit);
            }
            collector.finish()
        };
        let names =
            |units: &[UnitResult]| units.iter().map(|u| format!("{}{}", u.condition, u.replicate)).collect::<Vec<_>>();
        // Much of the plan (each put straight in its place), a resumed run's few, and a unit the
        // plan does not have (both sorted): the same order.
        let most =
            vec![unit("dolphin", 1), unit("baseline", 3), unit("dolphin", 7), unit("baseline", 0), unit("dolphin", 0)];
        assert_eq!(names(&in_order(most)), ["baseline0", "baseline3", "dolphin0", "dolphin1", "dolphin7"]);
        let stray =
            vec![unit("dolphin", 1), unit("stray", 0), unit("baseline", 3), unit("baseline", 0), unit("dolphin", 0)];
        assert_eq!(names(&in_order(stray)), ["baseline0", "baseline3", "dolphin0", "dolphin1", "stray0"]);
        let few = vec![unit("dolphin", 2), unit("stray", 0), unit("baseline", 1)];
        assert_eq!(names(&in_order(few)), ["baseline1", "dolphin2", "stray0"]);
        // A unit that finished twice (which the runner never does) is kept, not lost.
        let twice = vec![unit("dolphin", 0), unit("baseline", 0), unit("dolphin", 0), unit("baseline", 2)];
        assert_eq!(names(&in_order(twice)), ["baseline0", "baseline2", "dolphin0", "dolphin0"]);
    }

    #[test]
    fn single_untagged_records_are_not_duplicated() {
        let (metrics, kept) = summarize_records(vec![record("x", 1.0)]);
        assert_eq!(metrics["x"], 1.0);
        assert!(kept.is_empty());
    }
}
