//! What happens during a run, as messages from the workers to the single output thread, and the
//! [`Observer`] trait through which that thread reports them. Workers never touch the terminal or
//! files: they send messages; the output thread alone calls observers, in order, so an observer
//! needs no locks.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::registry::StepInfo;
use crate::runner::{RunInfo, UnitResult};

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
    /// Its name.
    pub name: String,
    /// Its payload.
    pub payload: serde_json::Value,
    /// Time since the unit started.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
}

/// One value recorded with [`Ctx::record`](crate::Ctx::record).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct MetricRecord {
    /// The metric's name.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Tags given with [`Ctx::record_tagged`](crate::Ctx::record_tagged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
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
    /// A unit finished, well or not.
    UnitFinished(Box<UnitResult>),
}

/// Receives what happens during a run. Every hook does nothing by default, so an observer
/// implements only what it needs. Hooks are called from one thread, in the order things happened
/// within each unit.
///
/// ```
/// use crystallize::events::{Event, Observer, UnitKey};
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
    /// A metric was recorded (only when metrics are reported live).
    fn metric(&mut self, unit: &UnitKey, metric: &MetricRecord) {}
    /// A unit finished.
    fn unit_finished(&mut self, result: &UnitResult) {}
    /// Every unit has finished (or was cancelled).
    fn run_finished(&mut self, results: &[UnitResult]) {}
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
        }
    }
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1e3)
}
