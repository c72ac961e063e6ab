//! What a run produces, unit by unit: each unit's [`UnitResult`] (its status, error, metrics and
//! recorded values) and the [`RunInfo`] observers get when a run starts. Plain data, below the
//! runner and the observers that both use it.

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

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

/// How one unit ended, as the experiment function reported it: `Err` carries the message.
pub type UnitOutcome = Result<(), String>;

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
    /// Wall time of the unit in milliseconds.
    pub duration_ms: f64,
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
