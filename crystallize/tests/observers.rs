//! Observers and live events: hook order, per-unit event order under parallel jobs, emitters on
//! other threads, a panicking observer, observers attached in `#[experiment]` and registered with
//! `observer!`, `tracing` spans, and the progress display in an in-memory terminal.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crystallize::__private::internals::{execute, Plan, Registry, RunOptions};
use crystallize::observe::Progress;
use crystallize::observe::StepInfo;
use crystallize::observe::{Event, InputView, Observer, UnitKey};
use crystallize::prelude::*;
use crystallize::results::MetricRecord;
use crystallize::results::{RunInfo, UnitError, UnitResult, UnitStatus};
use crystallize::store::manifest::Request;
use crystallize::store::recorder::{self, Origin};
use crystallize::store::Store;

// ---------------------------------------------------------------------------------------------
// Experiments

#[step]
fn count_to(n: u64, ctx: &mut Ctx) -> u64 {
    for i in 0..n {
        ctx.emit("tick", i);
    }
    n
}

/// One step with one event, and a metric: the smallest unit with every hook.
#[experiment(replicates = 1, seed = 1)]
fn ordered(ctx: &mut Ctx) {
    let n = count_to(1, ctx);
    ctx.record("n", n);
}

/// Many events from the unit's thread and from a thread it spawns, interleaved.
#[experiment(replicates = 8, seed = 2, params(events: u64 = 40))]
fn chatty(params: &ChattyParams, ctx: &mut Ctx) {
    let n = params.events;
    let emitter = ctx.emitter();
    let helper = std::thread::spawn(move || {
        for i in 0..n {
            emitter.emit("thread", i);
        }
    });
    count_to(n, ctx);
    helper.join().expect("helper thread");
    ctx.record("n", n);
}

static LEAKED: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());

/// Leaves a thread behind that keeps emitting after the unit has returned.
#[experiment(replicates = 3, seed = 3)]
fn leaky(ctx: &mut Ctx) {
    let emitter = ctx.emitter();
    ctx.emit("before", 0);
    let handle = std::thread::spawn(move || {
        for i in 0..200 {
            emitter.emit("late", i);
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    std::thread::sleep(Duration::from_millis(2));
    LEAKED.lock().unwrap_or_else(|e| e.into_inner()).push(handle);
}

/// Counts the units of the experiment it is attached to.
struct TallyUnits;

impl TallyUnits {
    fn new() -> TallyUnits {
        TallyUnits
    }
}

static TALLIED: AtomicUsize = AtomicUsize::new(0);

impl Observer for TallyUnits {
    fn unit_finished(&mut self, _result: &UnitResult) {
        TALLIED.fetch_add(1, Ordering::SeqCst);
    }
}

/// Counts every event in this binary: registered crate-wide below.
struct CountEvents;

static EVENTS_SEEN_CRATE_WIDE: AtomicUsize = AtomicUsize::new(0);

impl Observer for CountEvents {
    fn event(&mut self, _unit: &UnitKey, _event: &Event) {
        EVENTS_SEEN_CRATE_WIDE.fetch_add(1, Ordering::SeqCst);
    }
}

crystallize::observer!(CountEvents);

#[experiment(replicates = 5, seed = 4, observers = [TallyUnits, TallyUnits::new()])]
fn attached(ctx: &mut Ctx) {
    ctx.emit("hello", "world");
    ctx.record("x", 1);
}

#[step]
fn noisy(ctx: &mut Ctx) {
    tracing::info!("inside the step");
    ctx.emit("round", json!({ "round": 1 }));
}

#[experiment(replicates = 1, seed = 5)]
fn traced(ctx: &mut Ctx) {
    noisy(ctx);
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn plan(experiment: &str, replicates: u64) -> Plan {
    let registry = Registry::collect().expect("registry");
    let experiment = registry.experiment(Some(experiment)).expect("experiment");
    Plan::new(experiment, &[], replicates, experiment.entry.seed, &[]).expect("plan")
}

/// Records every hook as a line: `hook condition#replicate detail`.
#[derive(Default)]
struct Recorder {
    log: Vec<String>,
}

fn unit_name(unit: &UnitKey) -> String {
    format!("{}#{}", unit.condition, unit.replicate)
}

impl Observer for Recorder {
    fn run_started(&mut self, run: &RunInfo) {
        self.log.push(format!("run_started {} {}", run.experiment, run.units_planned));
    }
    fn unit_started(&mut self, unit: &UnitKey) {
        self.log.push(format!("unit_started {}", unit_name(unit)));
    }
    fn input_ready(&mut self, unit: &UnitKey, _input: &InputView) {
        self.log.push(format!("input_ready {}", unit_name(unit)));
    }
    fn step_started(&mut self, unit: &UnitKey, step: &StepInfo) {
        self.log.push(format!("step_started {} {}", unit_name(unit), step.name));
    }
    fn step_finished(&mut self, unit: &UnitKey, step: &StepInfo, _elapsed: Duration) {
        self.log.push(format!("step_finished {} {}", unit_name(unit), step.name));
    }
    fn event(&mut self, unit: &UnitKey, event: &Event) {
        self.log.push(format!("event {} {} {}", unit_name(unit), event.name, event.payload));
    }
    fn metric(&mut self, unit: &UnitKey, metric: &MetricRecord) {
        self.log.push(format!("metric {} {}", unit_name(unit), metric.name));
    }
    fn unit_finished(&mut self, result: &UnitResult) {
        self.log.push(format!("unit_finished {}#{}", result.condition, result.replicate));
    }
    fn run_finished(&mut self, results: &[UnitResult]) {
        self.log.push(format!("run_finished {}", results.len()));
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn hooks_of_a_unit_come_in_order() {
    let mut recorder = Recorder::default();
    let options = RunOptions { jobs: 1, live_metrics: true, describe_input: true, ..RunOptions::default() };
    execute(&plan("ordered", 1), &options, &mut [&mut recorder]);
    let expected = [
        "run_started ordered 1",
        "unit_started baseline#0",
        "input_ready baseline#0",
        "step_started baseline#0 count_to",
        "event baseline#0 tick 0",
        "step_finished baseline#0 count_to",
        "metric baseline#0 n",
        "unit_finished baseline#0",
        "run_finished 1",
    ];
    assert_eq!(recorder.log, expected);
}

/// Per unit: the order of events as observers saw them.
#[derive(Default)]
struct PerUnit {
    lines: BTreeMap<(String, u64), Vec<String>>,
    finished: Vec<(String, u64)>,
    after_finish: Vec<String>,
    events: usize,
}

impl Observer for PerUnit {
    fn unit_started(&mut self, unit: &UnitKey) {
        self.lines.entry((unit.condition.to_string(), unit.replicate)).or_default().push("start".into());
    }
    fn event(&mut self, unit: &UnitKey, event: &Event) {
        self.events += 1;
        let key = (unit.condition.to_string(), unit.replicate);
        if self.finished.contains(&key) {
            self.after_finish.push(format!("{}#{} {}", key.0, key.1, event.name));
        }
        self.lines.entry(key).or_default().push(format!("{} {}", event.name, event.payload));
    }
    fn unit_finished(&mut self, result: &UnitResult) {
        let key = (result.condition.clone(), result.replicate);
        self.lines.entry(key.clone()).or_default().push("end".into());
        self.finished.push(key);
    }
}

#[test]
fn events_keep_their_order_per_unit_under_parallel_jobs() {
    let mut per_unit = PerUnit::default();
    let options = RunOptions { jobs: 2, ..RunOptions::default() };
    let results = execute(&plan("chatty", 8), &options, &mut [&mut per_unit]);
    assert_eq!(results.units.len(), 8);
    assert!(results.units.iter().all(UnitResult::is_ok));
    assert_eq!(per_unit.lines.len(), 8);
    for ((condition, replicate), lines) in &per_unit.lines {
        let unit = format!("{condition}#{replicate}");
        assert_eq!(lines.first().map(String::as_str), Some("start"), "{unit} starts first");
        assert_eq!(lines.last().map(String::as_str), Some("end"), "{unit} ends last");
        for source in ["tick", "thread"] {
            let seen: Vec<u64> =
                lines.iter().filter_map(|l| l.strip_prefix(source).and_then(|rest| rest.trim().parse().ok())).collect();
            assert_eq!(seen, (0..40).collect::<Vec<u64>>(), "{unit}: every {source} event, in emit order");
        }
    }
    assert!(per_unit.after_finish.is_empty(), "{:?}", per_unit.after_finish);
}

#[test]
fn an_emitter_that_outlives_its_unit_cannot_emit_after_the_unit_ended() {
    let mut per_unit = PerUnit::default();
    let options = RunOptions { jobs: 2, ..RunOptions::default() };
    let results = execute(&plan("leaky", 3), &options, &mut [&mut per_unit]);
    assert_eq!(results.units.len(), 3);
    assert!(per_unit.after_finish.is_empty(), "events after unit_finished: {:?}", per_unit.after_finish);
    for lines in per_unit.lines.values() {
        assert_eq!(lines.last().map(String::as_str), Some("end"));
        assert!(lines.iter().any(|l| l.starts_with("before")));
    }
    for handle in LEAKED.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        handle.join().expect("leaked thread");
    }
}

/// Panics at its `panic_at`-th finished unit.
struct Panicky {
    seen: usize,
    panic_at: usize,
    calls_after_panic: Arc<AtomicUsize>,
}

impl Observer for Panicky {
    fn unit_finished(&mut self, _result: &UnitResult) {
        self.seen += 1;
        if self.seen > self.panic_at {
            self.calls_after_panic.fetch_add(1, Ordering::SeqCst);
        }
        if self.seen == self.panic_at {
            panic!("observer bug on purpose");
        }
    }
    fn run_finished(&mut self, _results: &[UnitResult]) {
        self.calls_after_panic.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panicking_observer_is_detached_and_loses_no_unit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::locate(Some(dir.path()));
    let plan = plan("chatty", 12);
    let origin =
        Origin { crate_name: "observers-test".into(), crate_version: "0".into(), command: vec!["test".into()] };
    let run = recorder::create_run(&store, &plan, Request::default(), &origin).expect("run");
    let options = RunOptions { jobs: 2, ..RunOptions::default() };
    let mut journal =
        recorder::begin_session(&run, &plan, &origin, Vec::new(), options.cancel.clone()).expect("journal");
    let calls_after_panic = Arc::new(AtomicUsize::new(0));
    let mut panicky = Panicky { seen: 0, panic_at: 2, calls_after_panic: calls_after_panic.clone() };
    let mut after = Recorder::default();
    let results = execute(&plan, &options, &mut [&mut panicky, &mut journal, &mut after]);
    journal.finish().expect("journal written");

    assert_eq!(results.units.len(), 12, "every unit ran");
    assert!(results.units.iter().all(UnitResult::is_ok));
    assert_eq!(calls_after_panic.load(Ordering::SeqCst), 0, "a detached observer is not called again");
    assert_eq!(run.state().done(), 12, "every unit reached the journal");
    let finished = after.log.iter().filter(|l| l.starts_with("unit_finished")).count();
    assert_eq!(finished, 12, "observers after the panicking one see every unit");
    assert_eq!(after.log.last().map(String::as_str), Some("run_finished 12"));
}

#[test]
fn observers_attached_in_the_attribute_and_registered_crate_wide_see_the_run() {
    let tallied_before = TALLIED.load(Ordering::SeqCst);
    let events_before = EVENTS_SEEN_CRATE_WIDE.load(Ordering::SeqCst);
    let results = execute(&plan("attached", 5), &RunOptions { jobs: 2, ..RunOptions::default() }, &mut []);
    assert_eq!(results.units.len(), 5);
    // Two attached observers, five units each (other tests do not run `attached`... except a
    // smoke test, which may add more).
    assert!(TALLIED.load(Ordering::SeqCst) - tallied_before >= 10);
    assert!(EVENTS_SEEN_CRATE_WIDE.load(Ordering::SeqCst) - events_before >= 5);
}

/// A `Write` into a shared buffer, for capturing a tracing subscriber's output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn tracing_events_inside_a_step_are_attributed_to_their_unit_and_step() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).without_time().finish();
    // Serial (jobs 1): the units run on this thread, where the subscriber is the default.
    tracing::subscriber::with_default(subscriber, || {
        execute(&plan("traced", 1), &RunOptions { jobs: 1, ..RunOptions::default() }, &mut []);
    });
    let text = String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let mine =
        text.lines().find(|l| l.contains("inside the step")).unwrap_or_else(|| panic!("no user event in:\n{text}"));
    assert!(mine.contains("unit{"), "{mine}");
    assert!(mine.contains("experiment=\"traced\"") || mine.contains("experiment=traced"), "{mine}");
    assert!(mine.contains("condition=\"baseline\"") || mine.contains("condition=baseline"), "{mine}");
    assert!(mine.contains("replicate=0"), "{mine}");
    assert!(mine.contains("step{name=\"noisy\"}") || mine.contains("step{name=noisy}"), "{mine}");
    let event =
        text.lines().find(|l| l.contains("crystallize::event")).unwrap_or_else(|| panic!("no event in:\n{text}"));
    assert!(event.contains("event=round"), "{event}");
    assert!(event.contains("{\"round\":1}"), "{event}");
    assert!(event.contains("step{name"), "the emit happened inside the step: {event}");
}

#[test]
fn console_stderr_is_a_writer_for_tracing_subscribers() {
    // It compiles as a `MakeWriter`, and writes whole lines.
    let _subscriber = tracing_subscriber::fmt().with_writer(crystallize::observe::stderr).finish();
    let mut err = crystallize::observe::stderr();
    write!(err, "console: a partial line").expect("write");
    writeln!(err, " completed").expect("write");
}

// ---------------------------------------------------------------------------------------------
// The progress display in an in-memory terminal

/// A tiny terminal: a grid of lines and a cursor, enough for indicatif's drawing.
#[derive(Clone, Debug, Default)]
struct Screen(Arc<Mutex<(Vec<String>, usize)>>);

impl Screen {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<String>, &mut usize) -> R) -> R {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, row) = &mut *guard;
        f(lines, row)
    }

    fn text(&self) -> String {
        self.with(|lines, _| lines.iter().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n").trim_end().to_owned())
    }

    fn put(&self, text: &str) {
        self.with(|lines, row| {
            while lines.len() <= *row {
                lines.push(String::new());
            }
            lines[*row].push_str(text);
        });
    }
}

impl indicatif::TermLike for Screen {
    fn width(&self) -> u16 {
        120
    }
    fn height(&self) -> u16 {
        40
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.with(|_, row| *row = row.saturating_sub(n));
        Ok(())
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.with(|_, row| *row += n);
        Ok(())
    }
    fn move_cursor_right(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(s);
        self.with(|_, row| *row += 1);
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s);
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.with(|lines, row| {
            if let Some(line) = lines.get_mut(*row) {
                line.clear();
            }
        });
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

fn unit(condition: &str, replicate: u64, ok: bool) -> UnitResult {
    UnitResult {
        experiment: "sums".into(),
        condition: condition.into(),
        replicate,
        seed: 1,
        status: if ok { UnitStatus::Ok } else { UnitStatus::Error },
        error: (!ok).then(|| UnitError { message: "boom".into(), location: None, kind: Default::default() }),
        metrics: Default::default(),
        records: Vec::new(),
        duration_ms: 1.0,
        attempts: Vec::new(),
        cache: Default::default(),
    }
}

fn key(condition: &str, replicate: u64) -> UnitKey {
    UnitKey { experiment: "sums", condition: Arc::from(condition), replicate, seed: 1 }
}

#[test]
fn the_progress_display_shows_counts_per_condition_failures_rate_and_eta() {
    let screen = Screen::default();
    let mut progress =
        Progress::to_target(indicatif::ProgressDrawTarget::term_like_with_hz(Box::new(screen.clone()), 100));
    assert!(progress.is_visible());
    let info = RunInfo {
        experiment: "sums".into(),
        conditions: vec!["baseline".into(), "doubled".into()],
        replicates: vec![0, 1, 2, 3],
        seed: 1,
        units_planned: 8,
        units_per_condition: vec![4, 4],
        jobs: 2,
        limits: Default::default(),
    };
    progress.run_started(&info);
    for (condition, replicate, ok) in [("baseline", 0, true), ("baseline", 1, true), ("doubled", 0, false)] {
        progress.unit_started(&key(condition, replicate));
        std::thread::sleep(Duration::from_millis(20));
        progress.unit_finished(&unit(condition, replicate, ok));
    }
    progress.unit_started(&key("doubled", 1));
    progress.unit_started(&key("doubled", 2));
    // The display ticks four times a second (elapsed time and ETA move between units): wait for
    // a tick to draw the latest state.
    std::thread::sleep(Duration::from_millis(600));
    let text = screen.text();
    let lines: Vec<&str> = text.lines().collect();
    let total = lines.iter().find(|l| l.starts_with("sums")).unwrap_or_else(|| panic!("no total line:\n{text}"));
    assert!(total.contains("3/8 units"), "{text}");
    assert!(total.contains("ETA "), "{text}");
    assert!(!total.contains("ETA -"), "an ETA once units finished: {text}");
    assert!(total.contains("/s") || total.contains("/min"), "a rate: {text}");
    assert!(total.contains("1 failed"), "{text}");
    let baseline = lines.iter().find(|l| l.trim_start().starts_with("baseline")).expect("baseline line");
    assert!(baseline.contains("2/4"), "{text}");
    let doubled = lines.iter().find(|l| l.trim_start().starts_with("doubled")).expect("doubled line");
    assert!(doubled.contains("1/4"), "{text}");
    assert!(doubled.contains("2 running"), "{text}");
    assert!(doubled.contains("1 failed"), "{text}");
    assert!(text.contains("FAILED doubled #0: boom"), "failures are printed above the bars: {text}");
    assert!(!text.contains('\u{1b}'), "no stray control codes in the rendered screen: {text:?}");

    progress.run_finished(&[]);
    let left = screen.text();
    assert!(!left.contains("units"), "the display is cleared at the end: {left}");
}

#[test]
fn the_progress_display_is_hidden_when_its_target_is() {
    let mut progress = Progress::to_target(indicatif::ProgressDrawTarget::hidden());
    assert!(!progress.is_visible());
    // Every hook is still safe to call.
    progress.run_started(&RunInfo {
        experiment: "e".into(),
        conditions: vec!["baseline".into()],
        replicates: vec![0],
        seed: 0,
        units_planned: 1,
        units_per_condition: vec![1],
        jobs: 1,
        limits: Default::default(),
    });
    progress.unit_finished(&unit("baseline", 0, true));
    progress.run_finished(&[]);
}

#[test]
fn metrics_reach_observers_live_by_default_and_a_literal_event_name_is_not_copied() {
    let mut recorder = Recorder::default();
    execute(&plan("ordered", 1), &RunOptions { jobs: 1, ..RunOptions::default() }, &mut [&mut recorder]);
    let metric = recorder.log.iter().position(|l| l == "metric baseline#0 n").expect("a metric hook");
    let finished = recorder.log.iter().position(|l| l == "unit_finished baseline#0").expect("unit_finished");
    assert!(metric < finished, "{:?}", recorder.log);

    let ctx = Ctx::standalone(0);
    ctx.emit("literal", 1);
    ctx.emit(String::from("owned"), 2);
    let emitted = ctx.emitted();
    assert!(matches!(emitted[0].name, std::borrow::Cow::Borrowed("literal")));
    assert_eq!(emitted[1].name, "owned");
}
