//! A stored run in tidy long format, for pandas, polars and R: one row per (unit, metric) with
//! the run, experiment, condition, replicate, seed, metric, value and status (a failed unit
//! without metrics is one row with an empty metric and its error), and optionally one row per
//! event the units emitted. As CSV (RFC 4180, by the `csv` crate) or JSON Lines.
//!
//! The rows are the units of [`crate::report::stored_results`], the same units `report --json`
//! prints, so an export and a report can never disagree.

use std::io::Write;

use serde_json::{json, Map, Value};

use crate::runner::UnitResult;
use crate::store::events::Logged;

/// The columns of a metric row, in order (the CSV header without `--events`).
pub const COLUMNS: [&str; 9] =
    ["run", "experiment", "condition", "replicate", "seed", "metric", "value", "status", "error"];

/// The columns added by `--events`, after [`COLUMNS`] and before which a `type` column (`metric`
/// or `event`) stands.
pub const EVENT_COLUMNS: [&str; 3] = ["event", "elapsed_ms", "payload"];

/// What to export of a run.
pub struct Export<'a> {
    /// The run's id.
    pub run: &'a str,
    /// The experiment.
    pub experiment: &'a str,
    /// Its units, in report order.
    pub units: &'a [UnitResult],
    /// Its events, when asked for (`--events`).
    pub events: Option<&'a [Logged]>,
}

/// A number as the row writes it: Rust's shortest representation that reads back to the same
/// float (Python's `float()` and pandas read it exactly).
fn number(value: f64) -> String {
    format!("{value}")
}

impl Export<'_> {
    fn seed_of(&self, condition: &str, replicate: u64) -> Option<u64> {
        self.units.iter().find(|u| u.condition == condition && u.replicate == replicate).map(|u| u.seed)
    }

    /// Each metric row as its cells, in [`COLUMNS`] order.
    fn metric_rows(&self) -> impl Iterator<Item = [String; 9]> + '_ {
        self.units.iter().flat_map(move |unit| {
            let status = if unit.is_ok() { "ok" } else { "error" };
            let error = unit.error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
            let cells = move |metric: String, value: String| {
                [
                    self.run.to_owned(),
                    self.experiment.to_owned(),
                    unit.condition.clone(),
                    unit.replicate.to_string(),
                    unit.seed.to_string(),
                    metric,
                    value,
                    status.to_owned(),
                    error.clone(),
                ]
            };
            let mut rows: Vec<[String; 9]> =
                unit.metrics.iter().map(|(name, value)| cells(name.clone(), number(*value))).collect();
            if rows.is_empty() {
                rows.push(cells(String::new(), String::new()));
            }
            rows
        })
    }

    /// Writes the run as CSV with a header row.
    pub fn write_csv(&self, out: impl Write) -> std::io::Result<()> {
        let mut writer = csv::Writer::from_writer(out);
        let with_events = self.events.is_some();
        let mut header: Vec<&str> = Vec::new();
        if with_events {
            header.push("type");
        }
        header.extend(COLUMNS);
        if with_events {
            header.extend(EVENT_COLUMNS);
        }
        writer.write_record(&header)?;
        for row in self.metric_rows() {
            if with_events {
                let mut cells = vec!["metric".to_owned()];
                cells.extend(row);
                cells.extend([String::new(), String::new(), String::new()]);
                writer.write_record(&cells)?;
            } else {
                writer.write_record(&row)?;
            }
        }
        for event in self.events.unwrap_or_default() {
            if let Logged::Event { condition, replicate, name, payload, elapsed_ms, .. } = event {
                let seed = self.seed_of(condition, *replicate).map(|s| s.to_string()).unwrap_or_default();
                writer.write_record([
                    "event",
                    self.run,
                    self.experiment,
                    condition,
                    &replicate.to_string(),
                    &seed,
                    "",
                    "",
                    "",
                    "",
                    name,
                    &number(*elapsed_ms),
                    &payload.to_string(),
                ])?;
            }
        }
        writer.flush()
    }

    /// Writes the run as JSON Lines: one object per metric row (the keys of [`COLUMNS`], `value`
    /// a number, or null when not finite or absent; `error` only on failed units) and, with
    /// events, one object of `"type": "event"` per event.
    pub fn write_jsonl(&self, mut out: impl Write) -> std::io::Result<()> {
        let with_events = self.events.is_some();
        for unit in self.units {
            let mut base = Map::new();
            if with_events {
                base.insert("type".into(), json!("metric"));
            }
            base.insert("run".into(), json!(self.run));
            base.insert("experiment".into(), json!(self.experiment));
            base.insert("condition".into(), json!(unit.condition));
            base.insert("replicate".into(), json!(unit.replicate));
            base.insert("seed".into(), json!(unit.seed));
            let status = if unit.is_ok() { "ok" } else { "error" };
            let mut line = |metric: Value, value: Value| -> std::io::Result<()> {
                let mut object = base.clone();
                object.insert("metric".into(), metric);
                object.insert("value".into(), value);
                object.insert("status".into(), json!(status));
                if let Some(error) = &unit.error {
                    object.insert("error".into(), json!(error.message));
                }
                writeln!(out, "{}", Value::Object(object))
            };
            if unit.metrics.is_empty() {
                line(Value::Null, Value::Null)?;
            }
            for (name, value) in unit.metrics.iter() {
                let value = serde_json::Number::from_f64(*value).map(Value::Number).unwrap_or(Value::Null);
                line(json!(name), value)?;
            }
        }
        for event in self.events.unwrap_or_default() {
            if let Logged::Event { condition, replicate, name, payload, elapsed_ms, .. } = event {
                let line = json!({
                    "type": "event",
                    "run": self.run,
                    "experiment": self.experiment,
                    "condition": condition,
                    "replicate": replicate,
                    "seed": self.seed_of(condition, *replicate),
                    "event": name,
                    "elapsed_ms": elapsed_ms,
                    "payload": payload,
                });
                writeln!(out, "{line}")?;
            }
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{UnitError, UnitStatus};

    fn unit(condition: &str, replicate: u64, metrics: &[(&str, f64)], error: Option<&str>) -> UnitResult {
        UnitResult {
            experiment: "exp".into(),
            condition: condition.into(),
            replicate,
            seed: 7 + replicate,
            status: if error.is_some() { UnitStatus::Error } else { UnitStatus::Ok },
            error: error.map(|m| UnitError { message: m.into(), location: None, kind: Default::default() }),
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            records: Vec::new(),
            duration_ms: 1.0,
            attempts: Vec::new(),
            cache: Default::default(),
        }
    }

    #[test]
    fn csv_has_one_row_per_metric_and_quotes_what_needs_it() {
        let units = [
            unit("baseline", 0, &[("win", 1.0), ("rounds", 0.1 + 0.2)], None),
            unit("dolphin", 0, &[], Some("boom, \"quoted\"\nsecond line")),
        ];
        let export = Export { run: "r1", experiment: "exp", units: &units, events: None };
        let mut out = Vec::new();
        export.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "run,experiment,condition,replicate,seed,metric,value,status,error");
        assert_eq!(lines[1], "r1,exp,baseline,0,7,rounds,0.30000000000000004,ok,");
        assert_eq!(lines[2], "r1,exp,baseline,0,7,win,1,ok,");
        assert_eq!(lines[3], "r1,exp,dolphin,0,7,,,error,\"boom, \"\"quoted\"\"");
        assert_eq!(lines[4], "second line\"");
    }

    #[test]
    fn events_add_a_type_column_and_rows_of_their_own() {
        let units = [unit("baseline", 2, &[("win", 0.5)], None)];
        let events = [Logged::Event {
            condition: "baseline".into(),
            replicate: 2,
            name: "round".into(),
            payload: json!({"round": 1}),
            elapsed_ms: 1.5,
            unix_ms: 0,
        }];
        let export = Export { run: "r1", experiment: "exp", units: &units, events: Some(&events) };
        let mut out = Vec::new();
        export.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "type,run,experiment,condition,replicate,seed,metric,value,status,error,event,elapsed_ms,payload"
        );
        assert_eq!(lines[1], "metric,r1,exp,baseline,2,9,win,0.5,ok,,,,");
        assert_eq!(lines[2], "event,r1,exp,baseline,2,9,,,,,round,1.5,\"{\"\"round\"\":1}\"");

        let mut out = Vec::new();
        export.write_jsonl(&mut out).unwrap();
        let lines: Vec<Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["type"], "metric");
        assert_eq!(lines[0]["value"], 0.5);
        assert_eq!(lines[1]["type"], "event");
        assert_eq!(lines[1]["payload"]["round"], 1);
        assert_eq!(lines[1]["seed"], 9);
    }
}
