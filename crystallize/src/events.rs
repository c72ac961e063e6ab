//! What happens during a run, as messages from the workers to the single output thread, and the
//! [`Observer`] trait through which that thread reports them. Workers never touch the terminal or
//! files: they send messages; the output thread alone calls observers, in order, so an observer
//! needs no locks.
//!
//! Observers reach a run three ways:
//! - passed to [`runner::execute`](crate::runner::execute) or [`Session`](crate::session::Session)
//!   (the command line passes its journal, events log, progress display or printer this way);
//! - attached to an experiment: `#[experiment(observers = [EventsOf("dolphin")])]`, built afresh
//!   for every run of that experiment;
//! - registered for every run in the binary with [`observer!`](crate::observer).
//!
//! An observer that panics is reported and detached; the run, and every result, goes on.
//! `docs/OBSERVERS.md` has the whole story, with examples.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use crate::results::MetricRecord;
use crate::results::{RunInfo, UnitResult};
use crate::source::StepInfo;

/// Which unit something happened in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnitKey {
    /// The experiment.
    pub experiment: &'static str,
    /// The condition: `baseline` or a treatment's name.
    pub condition: Arc<str>,
    /// The replicate index.
    pub replicate: u64,
    /// The unit's seed.
    pub seed: u64,
}

/// A named moment inside a unit, emitted with [`Ctx::emit`](crate::Ctx::emit).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Its name (borrowed when it is a literal, so emitting allocates only the payload).
    pub name: Cow<'static, str>,
    /// Its payload.
    pub payload: serde_json::Value,
    /// Time since the unit started.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
}

/// How the input of a unit looks, for display.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "format", content = "value")]
pub enum InputView {
    /// The input is `Serialize`: its JSON.
    Json(serde_json::Value),
    /// The input is `Debug` only: its pretty debug text.
    Debug(String),
    /// The input can be neither serialized nor debug-printed.
    Opaque,
}

/// A message from a worker to the output thread.
#[derive(Debug)]
pub enum Message {
    /// A unit started.
    UnitStarted(Arc<UnitKey>),
    /// A unit's input was produced (sent only when the run describes inputs, as `debug` does).
    Input(Arc<UnitKey>, InputView),
    /// A step started.
    StepStarted(Arc<UnitKey>, &'static StepInfo),
    /// A step ended.
    StepFinished(Arc<UnitKey>, &'static StepInfo, Duration),
    /// An event was emitted.
    Event(Arc<UnitKey>, Event),
    /// A metric was recorded (sent only when the run reports metrics live, as `debug` does).
    Metric(Arc<UnitKey>, MetricRecord),
    /// A unit finished, well or not. Not boxed: a box would be allocated by the worker and freed
    /// by the output thread, once per unit, and allocators make that their slowest path.
    UnitFinished(UnitResult),
    /// Every unit of the run has finished: the output thread stops here, even while the thread
    /// of a sync unit abandoned at its deadline still holds a sender.
    End,
}

/// The messages an observer reads besides results ([`Observer::interest`]). Workers never send a
/// message that no observer of the run reads: a run whose observers all store results only (the
/// journal, [`Session`](crate::session::Session)) costs one message per unit, not four.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    /// `unit_started`.
    pub unit_started: bool,
    /// `step_started` and `step_finished`.
    pub steps: bool,
    /// `event`.
    pub events: bool,
    /// `metric`, as each value is recorded (every value also reaches `unit_finished`).
    pub metrics: bool,
}

impl Interest {
    /// Every message: what an observer reads unless it says otherwise.
    pub const ALL: Interest = Interest { unit_started: true, steps: true, events: true, metrics: true };
    /// Results only: `unit_finished`, besides `run_started`, `flush` and `run_finished` (which
    /// every observer gets).
    pub const RESULTS: Interest = Interest { unit_started: false, steps: false, events: false, metrics: false };

    /// What either of two interests reads.
    pub fn union(self, other: Interest) -> Interest {
        Interest {
            unit_started: self.unit_started || other.unit_started,
            steps: self.steps || other.steps,
            events: self.events || other.events,
            metrics: self.metrics || other.metrics,
        }
    }
}

/// Receives what happens during a run. Every hook does nothing by default, so an observer
/// implements only what it needs. Hooks are called from one thread (the run's output thread), in
/// the order things happened within each unit: `run_started`, then for each unit `unit_started`,
/// its steps, events and metrics, `unit_finished`; finally `run_finished`. Units running in
/// parallel interleave, each in its own order. An observer therefore needs no locks; it must not
/// block for long, since every other observer (the journal among them) waits meanwhile.
///
/// A panic in a hook is reported on stderr and detaches that observer; the run goes on.
///
/// ```
/// use crystallize::observe::{Event, Observer, UnitKey};
///
/// /// Prints every event of one condition.
/// struct EventsOf(&'static str);
///
/// impl Observer for EventsOf {
///     fn event(&mut self, unit: &UnitKey, event: &Event) {
///         if &*unit.condition == self.0 {
///             eprintln!("{} #{}: {} {}", unit.condition, unit.replicate, event.name, event.payload);
///         }
///     }
/// }
/// ```
#[allow(unused_variables)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a crystallize observer",
    label = "not an `Observer`",
    note = "implement `crystallize::observe::Observer` for it; every hook does nothing by default, so `impl Observer for {Self} {{}}` compiles and you add the hooks you need"
)]
pub trait Observer: Send {
    /// The run is about to start its first unit.
    fn run_started(&mut self, run: &RunInfo) {}
    /// A unit started.
    fn unit_started(&mut self, unit: &UnitKey) {}
    /// A unit's input is ready (only when inputs are described).
    fn input_ready(&mut self, unit: &UnitKey, input: &InputView) {}
    /// A step started.
    fn step_started(&mut self, unit: &UnitKey, step: &StepInfo) {}
    /// A step ended after `elapsed`.
    fn step_finished(&mut self, unit: &UnitKey, step: &StepInfo, elapsed: Duration) {}
    /// An event was emitted inside the unit.
    fn event(&mut self, unit: &UnitKey, event: &Event) {}
    /// A metric was recorded (unless [`RunOptions::live_metrics`](crate::runner::RunOptions::live_metrics) is off).
    fn metric(&mut self, unit: &UnitKey, metric: &MetricRecord) {}
    /// A unit finished.
    fn unit_finished(&mut self, result: &UnitResult) {}
    /// The output thread has caught up with the workers: a moment to write out anything
    /// buffered, so that readers of files see events soon after they happen.
    fn flush(&mut self) {}
    /// Every unit has finished (or was cancelled); `results` in plan order.
    fn run_finished(&mut self, results: &[UnitResult]) {}
    /// How to name this observer in messages (the type's name unless overridden).
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }
    /// The messages this observer reads besides results; asked once, when the run starts.
    /// Every message by default. An observer that says less ([`Interest::RESULTS`] for one that
    /// only stores results) lets a run skip sending what nobody reads: for cheap units, most of
    /// what the framework costs per unit.
    fn interest(&self) -> Interest {
        Interest::ALL
    }
}

impl<O: Observer + ?Sized> Observer for Box<O> {
    fn run_started(&mut self, run: &RunInfo) {
        (**self).run_started(run)
    }
    fn unit_started(&mut self, unit: &UnitKey) {
        (**self).unit_started(unit)
    }
    fn input_ready(&mut self, unit: &UnitKey, input: &InputView) {
        (**self).input_ready(unit, input)
    }
    fn step_started(&mut self, unit: &UnitKey, step: &StepInfo) {
        (**self).step_started(unit, step)
    }
    fn step_finished(&mut self, unit: &UnitKey, step: &StepInfo, elapsed: Duration) {
        (**self).step_finished(unit, step, elapsed)
    }
    fn event(&mut self, unit: &UnitKey, event: &Event) {
        (**self).event(unit, event)
    }
    fn metric(&mut self, unit: &UnitKey, metric: &MetricRecord) {
        (**self).metric(unit, metric)
    }
    fn unit_finished(&mut self, result: &UnitResult) {
        (**self).unit_finished(result)
    }
    fn flush(&mut self) {
        (**self).flush()
    }
    fn run_finished(&mut self, results: &[UnitResult]) {
        (**self).run_finished(results)
    }
    fn name(&self) -> Cow<'static, str> {
        (**self).name()
    }
    fn interest(&self) -> Interest {
        (**self).interest()
    }
}

/// Builds an observer for a run; what [`observer!`](crate::observer) and
/// `#[experiment(observers = [...])]` register.
pub type ObserverFactory = fn() -> Vec<Box<dyn Observer>>;

/// An observer registered with [`observer!`](crate::observer): built for every run in the binary.
pub struct ObserverEntry {
    /// The expression that builds it, for messages.
    pub name: &'static str,
    /// `file:line` of the registration.
    pub location: &'static str,
    /// Builds it.
    pub make: ObserverFactory,
}

/// The observers `#[experiment(observers = [...])]` attaches to one experiment.
pub struct AttachedObservers {
    /// The experiment.
    pub experiment: &'static str,
    /// Builds them.
    pub make: ObserverFactory,
}

inventory::collect!(ObserverEntry);
inventory::collect!(AttachedObservers);

/// Builds the observers every run of `experiment` gets besides those passed to it: the ones
/// registered with [`observer!`](crate::observer), then the ones attached to the experiment. A
/// factory that panics is reported and skipped.
pub fn attached_observers(experiment: &str) -> Vec<Box<dyn Observer>> {
    let registered =
        inventory::iter::<ObserverEntry>.into_iter().map(|e| (e.make, format!("{} at {}", e.name, e.location)));
    let attached = inventory::iter::<AttachedObservers>
        .into_iter()
        .filter(|a| a.experiment == experiment)
        .map(|a| (a.make, format!("the observers of experiment '{}'", a.experiment)));
    let mut observers = Vec::new();
    for (make, what) in registered.chain(attached) {
        match std::panic::catch_unwind(make) {
            Ok(built) => observers.extend(built),
            Err(_) => {
                crate::console::line(format!("crystallize: building {what} panicked; the run goes on without it"))
            }
        }
    }
    observers
}

/// Registers an observer for every run in this binary: the expression is evaluated at the start
/// of each run and must produce an [`Observer`] (`'static`, `Send`).
///
/// ```
/// use crystallize::observe::{Event, Observer, UnitKey};
///
/// /// Prints every event of one condition on stderr (above the progress display).
/// struct EventsOf(&'static str);
///
/// impl Observer for EventsOf {
///     fn event(&mut self, unit: &UnitKey, event: &Event) {
///         if &*unit.condition == self.0 {
///             crystallize::observe::line(format!("{} #{}: {} {}", unit.condition, unit.replicate, event.name, event.payload));
///         }
///     }
/// }
///
/// crystallize::observer!(EventsOf("dolphin"));
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! observer {
    ($make:expr $(,)?) => {
        const _: () = {
            fn __crystallize_make_observer() -> ::std::vec::Vec<::std::boxed::Box<dyn $crate::__private::Observer>> {
                ::std::vec![$crate::__private::boxed_observer($make)]
            }
            $crate::__private::inventory::submit! {
                $crate::__private::ObserverEntry {
                    name: ::core::stringify!($make),
                    location: ::core::concat!(::core::file!(), ":", ::core::line!()),
                    make: __crystallize_make_observer,
                }
            }
        };
    };
}

impl Message {
    /// The observer hook this message goes to, for messages.
    pub(crate) fn hook(&self) -> &'static str {
        match self {
            Message::UnitStarted(_) => "unit_started",
            Message::Input(..) => "input_ready",
            Message::StepStarted(..) => "step_started",
            Message::StepFinished(..) => "step_finished",
            Message::Event(..) => "event",
            Message::Metric(..) => "metric",
            Message::UnitFinished(_) => "unit_finished",
            Message::End => "run_finished",
        }
    }
}

/// Delivers `message` to `observer`.
pub(crate) fn dispatch(observer: &mut dyn Observer, message: &Message) {
    {
        match message {
            Message::UnitStarted(unit) => observer.unit_started(unit),
            Message::Input(unit, view) => observer.input_ready(unit, view),
            Message::StepStarted(unit, step) => observer.step_started(unit, step),
            Message::StepFinished(unit, step, elapsed) => observer.step_finished(unit, step, *elapsed),
            Message::Event(unit, event) => observer.event(unit, event),
            Message::Metric(unit, metric) => observer.metric(unit, metric),
            Message::UnitFinished(result) => observer.unit_finished(result),
            Message::End => {}
        }
    }
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1e3)
}
