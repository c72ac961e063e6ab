//! Executes a [`Plan`]'s units, serially or on a rayon pool of `--jobs` threads. Each unit runs
//! isolated: a panic or an error fails that unit alone, with its message and location, and the
//! others go on. Workers send everything to one output thread, which alone calls observers.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::context::{Ctx, Outbox, UnitSink};
use crate::events::{self, Interest, Message, MetricRecord, Observer, UnitKey};
pub use crate::metrics::Metrics;
use crate::plan::{Plan, Unit};
use crate::registry::StepInfo;
pub use crate::results::{RunInfo, UnitError, UnitOutcome, UnitResult, UnitStatus};

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
        }
    }
}

/// The available cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunResults {
    /// What ran.
    pub info: RunInfo,
    /// Every finished unit, in plan order (condition, then replicate) whatever order they ran in.
    pub units: Vec<UnitResult>,
    /// Units never started because the run was cancelled (`--fail-fast`, Ctrl-C, a closed pipe).
    pub skipped: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl RunResults {
    /// The values of `metric` in `condition`'s successful units, in replicate order.
    pub fn values(&self, condition: &str, metric: &str) -> Vec<f64> {
        self.units
            .iter()
            .filter(|u| u.condition == condition && u.is_ok())
            .filter_map(|u| u.metrics.get(metric).copied())
            .collect()
    }

    /// How many units failed.
    pub fn failed(&self) -> usize {
        self.units.iter().filter(|u| !u.is_ok()).count()
    }
}

thread_local! {
    /// The unit running on this thread, so that steps (which get no context) can report to it.
    static CURRENT: RefCell<Option<UnitSink>> = const { RefCell::new(None) };
    /// What the panic hook saw of the last panic in a unit on this thread.
    static LAST_PANIC: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

/// Installs, once per process, a panic hook that keeps panics inside units off the terminal (the
/// output thread reports them) and records their message and location. Panics elsewhere go to
/// the previous hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_unit = CURRENT.with(|current| current.try_borrow().map(|c| c.is_some()).unwrap_or(false));
            let in_observer = IN_OBSERVER.with(|flag| flag.get());
            if in_unit || in_observer {
                let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                let message = payload_message(info.payload());
                LAST_PANIC.with(|last| {
                    if let Ok(mut last) = last.try_borrow_mut() {
                        *last = Some((message, location));
                    }
                });
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
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
        let started = with_current(|sink| {
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
            with_current(|sink| sink.send(Message::StepFinished(sink.unit.clone(), step, started.elapsed())));
        }
    }
}

fn with_current<T>(f: impl FnOnce(&UnitSink) -> T) -> Option<T> {
    CURRENT.with(|current| current.try_borrow().ok().and_then(|c| c.as_ref().map(f)))
}

/// Runs every unit of `plan`, reporting to `observers` from one output thread.
pub fn execute(plan: &Plan, options: &RunOptions, observers: &mut [&mut dyn Observer]) -> RunResults {
    install_panic_hook();
    let units = plan.units();
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
    };
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Message>(CHANNEL_CAPACITY);
    // Besides the observers passed in: those registered with `observer!` and those attached to
    // the experiment, built afresh for this run.
    let mut attached = events::attached_observers(plan.experiment.name);
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
        let output = scope.spawn(|| output_thread(rx, &info, &mut all, &order));
        let work = |unit: &Unit| {
            if options.cancel.is_cancelled() {
                return;
            }
            let result = run_one(plan, unit, &tx, options, interest);
            if !result.is_ok() && options.fail_fast {
                options.cancel.cancel();
            }
            crate::context::send_to_run(&tx, Message::UnitFinished(result));
        };
        let pool = if jobs > 1 { rayon::ThreadPoolBuilder::new().num_threads(jobs).build().ok() } else { None };
        match pool {
            Some(pool) => pool.install(|| units.par_iter().for_each(work)),
            None => units.iter().for_each(work),
        }
        drop(tx);
        output.join()
    })
    .unwrap_or_else(|_| Vec::new());

    let skipped = units.len() - finished.len();
    RunResults { info, units: finished, skipped, elapsed: started.elapsed() }
}

/// Most messages delivered before observers get a [`Observer::flush`], even when the workers keep
/// the channel full.
const MAX_BATCH: usize = 1024;

/// Messages queued between the workers and the output thread before a worker waits.
const CHANNEL_CAPACITY: usize = 4 * MAX_BATCH;

/// Delivers every message to the observers, collects the finished units, and ends with
/// `run_finished` (units in plan order). Messages are taken in batches: whatever
/// arrived while the last batch was delivered, then every observer gets a `flush`. An observer
/// that panics is reported and detached; the run and its results go on.
fn output_thread(
    rx: mpsc::Receiver<Message>,
    info: &RunInfo,
    observers: &mut [&mut dyn Observer],
    order: &PlanOrder,
) -> Vec<UnitResult> {
    let mut alive = vec![true; observers.len()];
    for (index, observer) in observers.iter_mut().enumerate() {
        guard_observer(&mut alive[index], &mut **observer, "run_started", |o| o.run_started(info));
    }
    let mut finished = order.collector(info.units_planned);
    let mut deliver = |message: Message, observers: &mut [&mut dyn Observer], alive: &mut [bool]| {
        for (index, observer) in observers.iter_mut().enumerate() {
            if alive[index] {
                guard_observer(&mut alive[index], &mut **observer, message.hook(), |o| events::dispatch(o, &message));
            }
        }
        if let Message::UnitFinished(result) = message {
            finished.push(result);
        }
    };
    while let Ok(first) = rx.recv() {
        deliver(first, observers, &mut alive);
        for message in rx.try_iter().take(MAX_BATCH - 1) {
            deliver(message, observers, &mut alive);
        }
        for (index, observer) in observers.iter_mut().enumerate() {
            if alive[index] {
                guard_observer(&mut alive[index], &mut **observer, "flush", |o| o.flush());
            }
        }
    }
    let finished = finished.finish();
    for (index, observer) in observers.iter_mut().enumerate() {
        if alive[index] {
            guard_observer(&mut alive[index], &mut **observer, "run_finished", |o| o.run_finished(&finished));
        }
    }
    finished
}

/// Where each unit goes in plan order (condition, then replicate).
struct PlanOrder<'a> {
    /// Conditions × replicates.
    slots: usize,
    /// A unit's index in plan order; `None` for a unit the plan does not have.
    place: &'a (dyn Fn(&UnitResult) -> Option<usize> + Sync),
}

impl<'a> PlanOrder<'a> {
    /// A collector of the results of `planned` units.
    fn collector(&'a self, planned: usize) -> InPlanOrder<'a> {
        // A table of the whole plan when most of it runs; a resumed run with few units left
        // sorts them instead.
        let mut table = Vec::new();
        if planned.saturating_mul(4) >= self.slots {
            table.resize_with(self.slots, || None);
        }
        let rest = Vec::with_capacity(if table.is_empty() { planned } else { 0 });
        InPlanOrder { order: self, table, rest }
    }
}

/// Finished units, put in plan order as they arrive: each goes straight to its place in a table
/// of the plan, so a million results are moved once rather than sorted at the end (which was a
/// tenth of a run of cheap units).
struct InPlanOrder<'a> {
    order: &'a PlanOrder<'a>,
    /// A slot per unit of the plan, or empty (see [`PlanOrder::collector`]).
    table: Vec<Option<UnitResult>>,
    /// Units not in the table: all of them without one; otherwise those the plan does not have,
    /// or a unit finished twice (neither of which the runner does).
    rest: Vec<UnitResult>,
}

impl InPlanOrder<'_> {
    fn push(&mut self, unit: UnitResult) {
        match (self.order.place)(&unit) {
            Some(index) if self.table.get(index).is_some_and(Option::is_none) => self.table[index] = Some(unit),
            _ => self.rest.push(unit),
        }
    }

    /// Every unit in plan order; units the plan does not have go last.
    fn finish(self) -> Vec<UnitResult> {
        // `filter_map` over a vector's own iterator collects in place: no second table.
        #[allow(clippy::filter_map_identity)]
        let mut units: Vec<UnitResult> = self.table.into_iter().filter_map(|slot| slot).collect();
        if !self.rest.is_empty() {
            units.extend(self.rest);
            units.sort_by_cached_key(|unit| (self.order.place)(unit).unwrap_or(usize::MAX));
        }
        units
    }
}

thread_local! {
    /// Set while an observer's hook runs, so the panic hook keeps its panic off the terminal.
    static IN_OBSERVER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Calls an observer's hook; if it panics, reports that (through [`crate::console`], so a progress
/// display stays intact) and detaches the observer.
fn guard_observer(alive: &mut bool, observer: &mut dyn Observer, hook: &str, call: impl FnOnce(&mut dyn Observer)) {
    IN_OBSERVER.with(|flag| flag.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(|| call(&mut *observer)));
    IN_OBSERVER.with(|flag| flag.set(false));
    if outcome.is_err() {
        *alive = false;
        let (message, location) =
            LAST_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_else(|| ("(no message)".into(), None));
        let location = location.map(|l| format!(" at {l}")).unwrap_or_default();
        crate::console::line(format!(
            "crystallize: observer {} panicked in {hook}: {message}{location}; it is detached and the run goes on",
            observer.name()
        ));
    }
}

/// Runs one unit on this thread.
fn run_one(plan: &Plan, unit: &Unit, tx: &SyncSender<Message>, options: &RunOptions, interest: Interest) -> UnitResult {
    let condition = &plan.conditions[unit.condition];
    let key = Arc::new(UnitKey {
        experiment: plan.experiment.name,
        condition: condition.name.clone(),
        replicate: unit.replicate,
        seed: unit.seed,
    });
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
    let _entered = span.enter();
    let sink = UnitSink::new(key.clone(), Outbox::Run(tx.clone()), options.live_metrics, options.describe_input)
        .with_span(span.clone())
        .with_interest(interest);
    if interest.unit_started {
        sink.send(Message::UnitStarted(key.clone()));
    }
    let artifacts = options.artifacts.as_ref().map(|root| root.join(&*condition.name).join(unit.replicate.to_string()));
    let mut ctx = Ctx::for_unit(key, condition.params.clone(), sink.clone(), artifacts);

    // The unit's clock started with its sink (reading the clock costs as much as a cheap step).
    let started = sink.started;
    // Restore what was current before: a unit can run nested on this thread when user code inside
    // another unit waits on rayon and this worker steals work meanwhile.
    let previous = CURRENT.with(|current| current.replace(Some(sink)));
    let outcome = catch_unwind(AssertUnwindSafe(|| (condition.run)(&mut ctx)));
    let duration = started.elapsed();
    CURRENT.with(|current| current.replace(previous));
    // Threads the unit spawned may still hold emitters: from here on, their events are dropped.
    ctx.close_events();

    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(message)) => Some(UnitError { message, location: None }),
        Err(payload) => {
            let (message, location) = LAST_PANIC
                .with(|last| last.borrow_mut().take())
                .unwrap_or_else(|| (payload_message(payload.as_ref()), None));
            Some(UnitError { message, location })
        }
    };
    let records = ctx.take_records();
    let (metrics, records) = summarize_records(records);
    UnitResult {
        experiment: plan.experiment.name.to_owned(),
        // Not `to_string`, which goes through `Display` formatting.
        condition: String::from(&*condition.name),
        replicate: unit.replicate,
        seed: unit.seed,
        status: if error.is_none() { UnitStatus::Ok } else { UnitStatus::Error },
        error,
        metrics,
        records,
        duration_ms: duration.as_secs_f64() * 1e3,
    }
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
