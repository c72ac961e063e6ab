//! [`Ctx`]: what a unit knows about itself — condition, replicate, seed, params — and how it
//! talks to the run: seeded random generators, recorded metrics, events emitted mid-step.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::Serialize;

use crate::events::{Event, Interest, Message, MetricRecord, UnitKey};
use crate::params::{FromParam, ParamValue, Params, TypedParams};

/// The random generator [`Ctx::rng`] returns: ChaCha with 12 rounds, portable and reproducible on
/// every platform.
pub type Rng = ChaCha12Rng;

/// Where a unit's messages go.
#[derive(Clone)]
pub(crate) enum Outbox {
    /// A run's output thread, through a bounded channel: its ring buffer is allocated once (an
    /// unbounded channel allocates a block per 31 messages on the worker and frees it on the
    /// output thread, which contends on the allocator), and a worker that gets far ahead of the
    /// observers waits instead of queueing without limit.
    Run(SyncSender<Message>),
    /// A standalone context's capture, read when the caller asks ([`Ctx::emitted`]): unbounded,
    /// since nothing drains it meanwhile.
    Capture(Sender<Message>),
}

/// How long a worker waits before it tries again to send into a full channel.
const FULL_BACKOFF: std::time::Duration = std::time::Duration::from_micros(200);

/// Sends `message` to a run's output thread; a receiver that is gone (a run that ended) drops it.
///
/// A full channel means the observers are the bottleneck (units emitting events faster than the
/// events log writes them). A blocking send would then park the worker and have the output
/// thread wake it for every message it takes, a system call each way per message; sleeping a
/// moment and trying again lets the output thread drain a batch undisturbed.
pub(crate) fn send_to_run(tx: &SyncSender<Message>, message: Message) {
    let mut message = message;
    loop {
        match tx.try_send(message) {
            Err(TrySendError::Full(back)) => {
                message = back;
                std::thread::sleep(FULL_BACKOFF);
            }
            Ok(()) | Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

impl Outbox {
    /// Sends `message`; a receiver that is gone (a run that ended) drops it.
    fn send(&self, message: Message) {
        match self {
            Outbox::Run(tx) => send_to_run(tx, message),
            Outbox::Capture(tx) => {
                let _ = tx.send(message);
            }
        }
    }
}

/// The connection of one unit to its run's output thread.
#[derive(Clone)]
pub(crate) struct UnitSink {
    pub(crate) unit: Arc<UnitKey>,
    tx: Outbox,
    /// When the unit started: events' elapsed times and the unit's duration count from here.
    pub(crate) started: Instant,
    pub(crate) live_metrics: bool,
    pub(crate) describe_input: bool,
    /// What the run's observers read: messages nobody reads are not sent.
    pub(crate) interest: Interest,
    /// The unit's `tracing` span.
    span: tracing::Span,
    /// Closed when the unit ends, so that threads it spawned cannot emit after its end.
    gate: Arc<Gate>,
    /// The run's named resource limits.
    #[cfg(feature = "async")]
    pub(crate) limits: Option<Arc<crate::limits::Limits>>,
    /// The step cache of this attempt of the unit (`#[step(cache)]`), when the run has one.
    pub(crate) cache: Option<Arc<crate::cache::UnitCache>>,
}

/// Keeps events from [`Emitter`]s (other threads) out of the output once the unit has finished,
/// without a lock: an emitter announces itself in `in_flight`, then checks `open`; closing stores
/// `open = false` and waits for the announced emitters to be done. (Sequentially consistent, so
/// either the closer sees the emitter in flight and waits, or the emitter sees the gate closed.)
struct Gate {
    open: AtomicBool,
    in_flight: AtomicUsize,
}

impl UnitSink {
    pub(crate) fn new(unit: Arc<UnitKey>, tx: Outbox, live_metrics: bool, describe_input: bool) -> Self {
        UnitSink {
            unit,
            tx,
            started: Instant::now(),
            live_metrics,
            describe_input,
            interest: Interest::ALL,
            span: tracing::Span::none(),
            gate: Arc::new(Gate { open: AtomicBool::new(true), in_flight: AtomicUsize::new(0) }),
            #[cfg(feature = "async")]
            limits: None,
            cache: None,
        }
    }

    /// The same sink, with this attempt's step cache.
    pub(crate) fn with_cache(mut self, cache: Option<Arc<crate::cache::UnitCache>>) -> Self {
        self.cache = cache;
        self
    }

    /// Emits an event of the framework's own (the step cache's explanations in `debug`).
    pub(crate) fn emit_internal(&self, name: &'static str, payload: serde_json::Value) {
        self.send_event(Cow::Borrowed(name), payload);
    }

    /// The same sink, in a run with these limits.
    #[cfg(feature = "async")]
    pub(crate) fn with_limits(mut self, limits: Option<Arc<crate::limits::Limits>>) -> Self {
        self.limits = limits;
        self
    }

    /// The same sink, with the unit's `tracing` span.
    pub(crate) fn with_span(mut self, span: tracing::Span) -> Self {
        self.span = span;
        self
    }

    /// The same sink, sending only what `interest` reads.
    pub(crate) fn with_interest(mut self, interest: Interest) -> Self {
        self.interest = interest;
        self
    }

    /// Ends the unit's event stream: events that emitters on other threads send from now on are
    /// dropped. Returns once every emit already under way has been sent.
    pub(crate) fn close(&self) {
        self.gate.open.store(false, Ordering::SeqCst);
        while self.gate.in_flight.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }

    /// Sends to the output thread. A closed channel means the run is shutting down; the unit's
    /// own result is still returned by the worker, so nothing is lost by ignoring the error.
    pub(crate) fn send(&self, message: Message) {
        self.tx.send(message);
    }

    pub(crate) fn emit(&self, name: Cow<'static, str>, payload: serde_json::Value) {
        // On the unit's own thread the current span is the unit's, or a step's inside it.
        tracing::info!(target: "crystallize::event", event = %name, payload = %payload);
        self.send_event(name, payload);
    }

    fn send_event(&self, name: Cow<'static, str>, payload: serde_json::Value) {
        if !self.interest.events {
            return;
        }
        let event = Event { name, payload, elapsed: self.started.elapsed() };
        self.send(Message::Event(self.unit.clone(), event));
    }

    /// Emits from a thread other than the unit's own, through the gate.
    fn emit_gated(&self, name: Cow<'static, str>, payload: serde_json::Value) {
        self.gate.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.gate.open.load(Ordering::SeqCst) {
            // Another thread: its current span is not the unit's, so name the parent.
            tracing::info!(target: "crystallize::event", parent: &self.span, event = %name, payload = %payload);
            self.send_event(name, payload);
        }
        self.gate.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The context of one unit: passed to datasources (`&Ctx`), experiments and steps (`&mut Ctx`).
///
/// Outside a run (in a unit test of a step), build one with [`Ctx::standalone`].
pub struct Ctx {
    unit: Arc<UnitKey>,
    params: Arc<Params>,
    rng_streams: Cell<u64>,
    records: RefCell<Vec<MetricRecord>>,
    sink: Option<UnitSink>,
    artifacts: Option<PathBuf>,
    /// A standalone context keeps the other end of its sink, so tests can read what it emitted.
    captured: Option<Captured>,
}

/// The events a standalone context emitted, kept for [`Ctx::emitted`].
struct Captured {
    receiver: std::sync::mpsc::Receiver<Message>,
    events: RefCell<Vec<Event>>,
}

impl Ctx {
    pub(crate) fn for_unit(unit: Arc<UnitKey>, params: Arc<Params>, sink: UnitSink, artifacts: Option<PathBuf>) -> Ctx {
        Ctx {
            unit,
            params,
            rng_streams: Cell::new(0),
            records: RefCell::new(Vec::new()),
            sink: Some(sink),
            artifacts,
            captured: None,
        }
    }

    /// A context outside any run, for calling steps and datasources from tests: condition
    /// `"standalone"`, replicate 0, the given seed, no params. Recorded metrics read back with
    /// [`Ctx::recorded`], emitted events with [`Ctx::emitted`]. To choose params, replicate and
    /// condition, use [`crate::testing::StandaloneCtx`].
    pub fn standalone(seed: u64) -> Ctx {
        let unit =
            Arc::new(UnitKey { experiment: "standalone", condition: Arc::from("standalone"), replicate: 0, seed });
        Ctx::capturing(unit, Arc::default())
    }

    /// A context whose events are kept for [`Ctx::emitted`] instead of going to a run.
    pub(crate) fn capturing(unit: Arc<UnitKey>, params: Arc<Params>) -> Ctx {
        let (tx, receiver) = std::sync::mpsc::channel();
        let sink = UnitSink::new(unit.clone(), Outbox::Capture(tx), false, false);
        Ctx {
            unit,
            params,
            rng_streams: Cell::new(0),
            records: RefCell::new(Vec::new()),
            sink: Some(sink),
            artifacts: None,
            captured: Some(Captured { receiver, events: RefCell::new(Vec::new()) }),
        }
    }

    /// Every event emitted so far through this standalone context (and its emitters), in order.
    /// Empty for the context of a unit in a run, whose events go to the run's observers.
    pub fn emitted(&self) -> Vec<Event> {
        let Some(captured) = &self.captured else { return Vec::new() };
        let mut events = captured.events.borrow_mut();
        events.extend(captured.receiver.try_iter().filter_map(|message| match message {
            Message::Event(_, event) => Some(event),
            _ => None,
        }));
        events.clone()
    }

    /// The experiment's name.
    pub fn experiment(&self) -> &'static str {
        self.unit.experiment
    }

    /// The condition: `"baseline"` or the treatment's name.
    pub fn condition(&self) -> &str {
        &self.unit.condition
    }

    /// The replicate index, from 0.
    pub fn replicate(&self) -> u64 {
        self.unit.replicate
    }

    /// The unit's seed (see [`crate::store::unit_seed`] for how it is derived).
    pub fn seed(&self) -> u64 {
        self.unit.seed
    }

    /// Which stream [`Ctx::rng`] hands out next (for a retried step's attempts).
    pub(crate) fn rng_position(&self) -> u64 {
        self.rng_streams.get()
    }

    /// Makes [`Ctx::rng`] hand out `position` next.
    pub(crate) fn set_rng_position(&self, position: u64) {
        self.rng_streams.set(position);
    }

    /// A new generator, seeded from the unit's seed. The *k*-th call in a unit returns stream *k*
    /// of ChaCha12 keyed by the unit seed, so every call gets independent numbers and the same
    /// code draws the same numbers in every run, whatever `--jobs` is.
    pub fn rng(&self) -> Rng {
        let stream = self.rng_streams.get();
        self.rng_streams.set(stream + 1);
        let mut rng = Rng::seed_from_u64(self.unit.seed);
        rng.set_stream(stream);
        rng
    }

    /// The param `name` read as `T`.
    ///
    /// Deprecated: a misspelt name or a wrong type is found only when a unit runs. Declare the
    /// params as a `#[derive(Params)]` struct and take `params: &MyParams` in the experiment (the
    /// `params(...)` sugar generates one, `<PascalCaseName>Params`): the compiler then checks
    /// every read, and steps get the struct as an ordinary argument.
    ///
    /// # Panics
    /// If the experiment declares no such param or its value does not fit `T`: both are bugs in
    /// the experiment's code, and the panic fails this unit with a message naming the valid params.
    #[deprecated(
        note = "take the params struct instead: `params: &MyParams` in the experiment, `#[derive(Params)]` on it"
    )]
    #[track_caller]
    pub fn param<T: FromParam>(&self, name: &str) -> T {
        #[allow(deprecated)]
        match self.try_param(name) {
            Ok(value) => value,
            Err(message) => panic!("{message}"),
        }
    }

    /// The param `name` read as `T`, or a message saying why it cannot be. Deprecated like
    /// [`Ctx::param`].
    #[deprecated(
        note = "take the params struct instead: `params: &MyParams` in the experiment, `#[derive(Params)]` on it"
    )]
    pub fn try_param<T: FromParam>(&self, name: &str) -> Result<T, String> {
        let Some(param) = self.params.get(name) else {
            return Err(format!(
                "experiment '{}' has no param '{name}'; params: {}",
                self.unit.experiment,
                self.params.names().join(", ")
            ));
        };
        T::from_param(&param.value)
            .ok_or_else(|| format!("param '{name}' = {} cannot be read as {}", param.value, T::TYPE_NAME))
    }

    /// This condition's params as the struct `P`, for code that is not handed the struct as an
    /// argument, like a datasource (`let params: GameParams = ctx.typed_params()?;`). An error
    /// names a field of `P` that the experiment does not declare, or whose value does not fit.
    pub fn typed_params<P: TypedParams>(&self) -> Result<P, String> {
        P::from_params(&self.params)
    }

    /// Every param of this condition with its value.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Records `value` for `metric` in this unit. A metric recorded several times in one unit is
    /// summarised by the mean of its values; every value is kept in the unit's record.
    pub fn record(&self, metric: &str, value: impl IntoMetric) {
        self.push_record(MetricRecord { name: metric.to_owned(), value: value.into_metric(), tags: Vec::new() });
    }

    /// Records `value` for `metric` with tags (`[("team", "aligned")]`), kept with the value.
    pub fn record_tagged<K, V>(&self, metric: &str, value: impl IntoMetric, tags: impl IntoIterator<Item = (K, V)>)
    where
        K: Into<String>,
        V: Into<String>,
    {
        let tags = tags.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self.push_record(MetricRecord { name: metric.to_owned(), value: value.into_metric(), tags });
    }

    fn push_record(&self, record: MetricRecord) {
        if let Some(sink) = self.sink.as_ref().filter(|sink| sink.live_metrics && sink.interest.metrics) {
            sink.send(Message::Metric(self.unit.clone(), record.clone()));
        }
        self.records.borrow_mut().push(record);
    }

    /// Every value recorded so far in this unit, in order.
    pub fn recorded(&self) -> Vec<MetricRecord> {
        self.records.borrow().clone()
    }

    pub(crate) fn take_records(&self) -> Vec<MetricRecord> {
        self.records.take()
    }

    /// Emits an event from the middle of a step; observers see it while the unit is still running,
    /// tagged with the unit's condition, replicate and the time since the unit started. The name is
    /// a literal (`"round"`) or a `String`; the payload is anything serializable
    /// (`json!({"round": 3})`, a struct, a number). Events of a unit reach observers in the order
    /// they were emitted.
    ///
    /// Cheap: besides the payload's JSON, it allocates nothing and takes no lock (the event goes
    /// over a channel to the run's output thread). It is also a `tracing` event (target
    /// `crystallize::event`, fields `event` and `payload`) inside the unit's span, for a
    /// subscriber that wants it.
    pub fn emit(&self, name: impl Into<Cow<'static, str>>, payload: impl Serialize) {
        if let Some(sink) = &self.sink {
            sink.emit(name.into(), to_json(payload));
        }
    }

    /// A handle that emits events of this unit from other threads the unit spawns: `Clone` and
    /// `Send`. Events it emits after the unit has finished are dropped (they would belong to no
    /// unit), so join the threads you spawn before the unit returns.
    pub fn emitter(&self) -> Emitter {
        Emitter { sink: self.sink.clone() }
    }

    /// The unit's `tracing` span (`unit{experiment, condition, replicate, seed}`): entered while the
    /// unit runs on its own thread; enter it on threads the unit spawns
    /// (`let _entered = span.enter();`) so that their `tracing` events are attributed to the unit.
    /// A disabled span outside a run.
    pub fn span(&self) -> tracing::Span {
        self.sink.as_ref().map(|sink| sink.span.clone()).unwrap_or_else(tracing::Span::none)
    }

    pub(crate) fn sink(&self) -> Option<&UnitSink> {
        self.sink.as_ref()
    }

    /// Ends the unit's events: emitters on other threads can no longer add to them.
    pub(crate) fn close_events(&self) {
        if let Some(sink) = &self.sink {
            sink.close();
        }
    }

    /// The path where this unit's artifact `name` goes, with its parent directories created:
    /// `<run>/artifacts/<condition>/<replicate>/<name>` in a stored run, a temporary directory
    /// otherwise. `name` is relative and may have subdirectories (`plots/loss.png`); a name that
    /// would leave the unit's directory (`..`, an absolute path) is an error.
    pub fn artifact_path(&self, name: &str) -> Result<PathBuf, ArtifactError> {
        let relative = Path::new(name);
        let escapes = relative.components().any(|c| !matches!(c, Component::Normal(_)));
        if name.is_empty() || escapes {
            return Err(ArtifactError::Escapes(name.to_owned()));
        }
        let base = self.artifacts.clone().unwrap_or_else(|| {
            std::env::temp_dir()
                .join(format!("crystallize-artifacts-{}", std::process::id()))
                .join(&*self.unit.condition)
                .join(self.unit.replicate.to_string())
        });
        let path = base.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| ArtifactError::Io(path.clone(), error))?;
        }
        Ok(path)
    }

    /// Writes this unit's artifact `name` (see [`Ctx::artifact_path`]) and returns its path.
    pub fn write_artifact(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf, ArtifactError> {
        let path = self.artifact_path(name)?;
        std::fs::write(&path, contents).map_err(|error| ArtifactError::Io(path.clone(), error))?;
        Ok(path)
    }

    /// The value of a param, untyped.
    pub fn param_value(&self, name: &str) -> Option<&ParamValue> {
        self.params.get(name).map(|p| &p.value)
    }
}

/// Why an artifact could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The name is empty, absolute, or climbs out of the unit's directory.
    #[error(
        "artifact name '{0}' would escape the unit's artifact directory; use a relative path without '..', like 'plots/loss.png'"
    )]
    Escapes(String),
    /// The file system refused.
    #[error("cannot write artifact {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// A value that can be recorded as a metric: any primitive number, or a `bool` (as 0 or 1).
pub trait IntoMetric {
    /// The value as `f64` (integers beyond 2^53 lose precision).
    fn into_metric(self) -> f64;
}

macro_rules! into_metric_as {
    ($($ty:ty),*) => {$(
        impl IntoMetric for $ty {
            fn into_metric(self) -> f64 {
                self as f64
            }
        }
    )*};
}
into_metric_as!(f64, f32, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl IntoMetric for bool {
    fn into_metric(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
}

/// Emits events of one unit; cloneable and `Send`, for threads the unit spawns.
#[derive(Clone)]
pub struct Emitter {
    sink: Option<UnitSink>,
}

impl Emitter {
    /// Emits an event of the unit this handle came from (see [`Ctx::emit`]); dropped when that
    /// unit has already finished.
    pub fn emit(&self, name: impl Into<Cow<'static, str>>, payload: impl Serialize) {
        if let Some(sink) = &self.sink {
            sink.emit_gated(name.into(), to_json(payload));
        }
    }

    /// The unit's `tracing` span (see [`Ctx::span`]).
    pub fn span(&self) -> tracing::Span {
        self.sink.as_ref().map(|sink| sink.span.clone()).unwrap_or_else(tracing::Span::none)
    }
}

fn to_json(payload: impl Serialize) -> serde_json::Value {
    serde_json::to_value(payload)
        .unwrap_or_else(|error| serde_json::Value::String(format!("<payload not serializable: {error}>")))
}

#[cfg(feature = "async")]
impl Ctx {
    /// Waits for a permit of the limit `name` and holds it until the guard drops: at most the
    /// limit's capacity of units hold one at once.
    ///
    /// ```no_run
    /// # async fn demo(ctx: &crystallize::Ctx) {
    /// let _ollama = ctx.limit("ollama").await;
    /// // ... the request to the model server ...
    /// # }
    /// ```
    ///
    /// The future does not borrow the context (which is not `Sync`), so an async unit stays
    /// `Send` while it waits.
    pub fn limit(&self, name: &str) -> impl std::future::Future<Output = crate::limits::LimitGuard> + Send + 'static {
        crate::limits::acquire(self.sink().and_then(|sink| sink.limits.clone()), name.to_owned())
    }

    /// Like [`Ctx::limit`], for sync code: blocks this thread until a permit is free.
    pub fn limit_blocking(&self, name: &str) -> crate::limits::LimitGuard {
        crate::limits::acquire_blocking(self.sink().and_then(|sink| sink.limits.clone()), name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    #[test]
    fn each_rng_call_is_a_new_independent_stream_and_reproducible() {
        let ctx = Ctx::standalone(7);
        let a: u64 = ctx.rng().random();
        let b: u64 = ctx.rng().random();
        assert_ne!(a, b);
        let again = Ctx::standalone(7);
        assert_eq!(a, again.rng().random::<u64>());
        assert_eq!(b, again.rng().random::<u64>());
    }

    #[test]
    fn records_are_kept_in_order_with_tags() {
        let ctx = Ctx::standalone(0);
        ctx.record("win", 1.0);
        ctx.record_tagged("score", 3u8, [("team", "aligned")]);
        let records = ctx.recorded();
        assert_eq!(records[0].name, "win");
        assert_eq!(records[1].value, 3.0);
        assert_eq!(records[1].tags, vec![("team".to_owned(), "aligned".to_owned())]);
    }

    #[test]
    fn artifact_names_cannot_escape_the_unit_directory() {
        let ctx = Ctx::standalone(0);
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "./x"] {
            assert!(matches!(ctx.artifact_path(bad), Err(ArtifactError::Escapes(_))), "{bad}");
        }
        let path = ctx.write_artifact("nested/ok.txt", "hi").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hi");
        assert!(path.ends_with("standalone/0/nested/ok.txt"));
    }

    #[test]
    fn a_standalone_context_keeps_what_it_emitted() {
        let ctx = Ctx::standalone(1);
        ctx.emit("round", 1);
        let emitter = ctx.emitter();
        std::thread::spawn(move || emitter.emit("from_thread", "x")).join().unwrap();
        let names: Vec<String> = ctx.emitted().into_iter().map(|e| e.name.into_owned()).collect();
        assert_eq!(names, ["round", "from_thread"]);
        assert_eq!(ctx.emitted().len(), 2, "reading does not consume");
    }

    #[test]
    #[allow(deprecated)]
    fn unknown_params_name_the_valid_ones() {
        let ctx = Ctx::standalone(0);
        let error = ctx.try_param::<f64>("temperature").unwrap_err();
        assert!(error.contains("no param 'temperature'"), "{error}");
    }
}
