//! What a run produces, unit by unit: each unit's [`UnitResult`] (its status, error, metrics and
//! recorded values) and the [`RunInfo`] observers get when a run starts. Plain data, below the
//! runner and the observers that both use it.

use serde::{Deserialize, Serialize};

pub use crate::cache::CacheCount;
pub use crate::metrics::Metrics;

/// One value recorded with [`Ctx::record`](crate::Ctx::record).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    /// The metric's name.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Tags given with [`Ctx::record_tagged`](crate::Ctx::record_tagged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
}

/// How one unit ended, as the experiment function reported it.
pub type UnitOutcome = Result<(), Failure>;

/// Why a unit's code failed, as it reports it: return `Err(Failure::retryable(error))` from an
/// experiment for a failure worth another attempt (a dropped connection, a server's 503), which
/// `--retries N` then retries with the same seed; any other error (`Err(e)` of any `Display`
/// type, or [`Failure::new`]) is final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    message: String,
    retryable: bool,
}

impl Failure {
    /// A final failure: the unit fails with `error`'s message.
    pub fn new(error: impl std::fmt::Display) -> Failure {
        Failure { message: error.to_string(), retryable: false }
    }

    /// A failure worth another attempt (see `--retries`).
    pub fn retryable(error: impl std::fmt::Display) -> Failure {
        Failure { message: error.to_string(), retryable: true }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// `error` as a failure: itself when it is one, else a final failure with its message.
    pub(crate) fn of<E: std::fmt::Display + 'static>(error: E) -> Failure {
        match (&error as &dyn std::any::Any).downcast_ref::<Failure>() {
            Some(failure) => failure.clone(),
            None => Failure::new(error),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure { message, retryable: false }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::from(message.to_owned())
    }
}

/// Whether a unit succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitStatus {
    /// The unit returned normally.
    Ok,
    /// The unit panicked or returned an error.
    Error,
}

/// Why a unit failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitError {
    /// The panic message or the error's text.
    pub message: String,
    /// `file:line:column` of the panic, when it panicked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// What kind of failure: an error the code returned, a panic, a timeout. Journals before
    /// kinds were recorded read as `error`.
    #[serde(default, skip_serializing_if = "FailureKind::is_error")]
    pub kind: FailureKind,
}

/// What kind of failure a unit had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// The code returned an error.
    #[default]
    Error,
    /// The code panicked.
    Panic,
    /// The unit was still running at its deadline.
    Timeout,
}

impl FailureKind {
    fn is_error(&self) -> bool {
        *self == FailureKind::Error
    }

    /// The kind's name, as the journal and reports write it.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Error => "error",
            FailureKind::Panic => "panic",
            FailureKind::Timeout => "timeout",
        }
    }
}

/// An attempt of a unit that failed and was tried again (`--retries`), as the journal keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Which attempt, from 1.
    pub attempt: u32,
    /// How it failed.
    pub error: UnitError,
    /// Its wall time in milliseconds.
    pub duration_ms: f64,
}

/// The result of one unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitResult {
    /// The experiment.
    pub experiment: String,
    /// The condition.
    pub condition: String,
    /// The replicate index.
    pub replicate: u64,
    /// The unit's seed.
    pub seed: u64,
    /// Whether it succeeded.
    pub status: UnitStatus,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<UnitError>,
    /// Each metric's value in this unit (the mean, when recorded several times).
    pub metrics: Metrics,
    /// Every recorded value, kept when a metric was recorded several times or with tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<MetricRecord>,
    /// Wall time of the unit in milliseconds (its last attempt's).
    pub duration_ms: f64,
    /// The attempts that failed before this one, when the unit was retried (`--retries`); the
    /// seed is the same in every attempt, so the result does not depend on how often it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Hits and misses of each `#[step(cache)]` step in this unit (its last attempt), by step
    /// name; empty when no cached step ran or the cache was off. Records before the cache read
    /// as empty.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub cache: std::collections::BTreeMap<String, CacheCount>,
}

impl UnitResult {
    /// Whether the unit succeeded.
    pub fn is_ok(&self) -> bool {
        self.status == UnitStatus::Ok
    }
}

/// What a run is about to do, for observers.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// The experiment.
    pub experiment: String,
    /// The conditions, baseline first.
    pub conditions: Vec<String>,
    /// The replicate indices of each condition.
    pub replicates: Vec<u64>,
    /// The run's seed.
    pub seed: u64,
    /// How many units will run.
    pub units_planned: usize,
    /// How many units of each condition will run, in the order of `conditions`.
    pub units_per_condition: Vec<usize>,
    /// How many run at once.
    pub jobs: usize,
    /// The run's named limits, read live (what the progress display shows as "waiting").
    #[serde(skip)]
    pub limits: LimitsInUse,
}

/// The named limits of a run (`#[step(limit = "ollama")]`, `--limit ollama=2`), read live: how
/// many permits of each are held and how many units wait for one. Empty outside a run with limits.
#[derive(Clone, Default)]
pub struct LimitsInUse {
    /// Reads the run's limits now (given by the runner, which owns them). Unwind-safe, so that
    /// results stay usable across `catch_unwind` (a test asserting a hypothesis fails).
    read: Option<std::sync::Arc<dyn Fn() -> Vec<LimitUse> + Send + Sync + std::panic::RefUnwindSafe>>,
}

impl LimitsInUse {
    #[cfg(feature = "async")]
    pub(crate) fn of(
        read: impl Fn() -> Vec<LimitUse> + Send + Sync + std::panic::RefUnwindSafe + 'static,
    ) -> LimitsInUse {
        LimitsInUse { read: Some(std::sync::Arc::new(read)) }
    }

    /// Each limit as it is used at this moment, sorted by name.
    pub fn now(&self) -> Vec<LimitUse> {
        self.read.as_ref().map(|read| read()).unwrap_or_default()
    }
}

impl std::fmt::Debug for LimitsInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.now()).finish()
    }
}

/// One named limit at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitUse {
    /// Its name (`ollama`).
    pub name: String,
    /// How many units may hold it at once.
    pub capacity: usize,
    /// How many hold it now.
    pub in_use: usize,
    /// How many wait for it now.
    pub waiting: usize,
}

impl LimitUse {
    /// What the progress display shows: `ollama 2/2, 5 waiting`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} {}/{}", self.name, self.in_use, self.capacity);
        if self.waiting > 0 {
            text.push_str(&format!(", {} waiting", self.waiting));
        }
        text
    }
}

/// A duration as a person reads it: `250 ms`, `1.5 s`, `2 min 5 s`.
pub(crate) fn human_duration(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 1.0 {
        format!("{} ms", duration.as_millis())
    } else if seconds < 60.0 {
        format!("{} s", (seconds * 10.0).round() / 10.0)
    } else {
        let whole = duration.as_secs();
        match whole % 60 {
            0 => format!("{} min", whole / 60),
            rest => format!("{} min {rest} s", whole / 60),
        }
    }
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
    pub elapsed: std::time::Duration,
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

/// What an experiment function may return: `()`, or `Result<(), E>` where an `Err` fails the unit.
#[diagnostic::on_unimplemented(
    message = "an experiment returns `()` or `Result<(), E>`, not `{Self}`",
    label = "an experiment cannot return this",
    note = "record what a unit measures with `ctx.record(\"name\", value)`; return `Err(..)` to fail the unit"
)]
pub trait IntoUnitOutcome {
    /// Converts to the runner's outcome.
    fn into_unit_outcome(self) -> UnitOutcome;
}

impl IntoUnitOutcome for () {
    fn into_unit_outcome(self) -> UnitOutcome {
        Ok(())
    }
}

impl<E: std::fmt::Display + 'static> IntoUnitOutcome for Result<(), E> {
    fn into_unit_outcome(self) -> UnitOutcome {
        self.map_err(Failure::of)
    }
}
