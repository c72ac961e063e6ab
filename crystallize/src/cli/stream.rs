//! The `stream` printer: one JSON line per finished unit (and per event with `--events`) on
//! stdout, as it happens, then a summary line. A closed stdout (`| head -n 3`) cancels the run
//! cleanly: units in flight finish and are stored, and the run can be resumed.

use std::io::{self, Write};

use serde_json::json;

use crate::events::{Event, Interest, Observer, UnitKey};
use crate::report::Report;
use crate::runner::{Cancel, UnitResult};
use crate::summary;

pub(super) struct StreamWriter {
    run: String,
    events: bool,
    cancel: Cancel,
    closed: bool,
}

impl StreamWriter {
    pub(super) fn new(run: String, events: bool, cancel: Cancel) -> StreamWriter {
        StreamWriter { run, events, cancel, closed: false }
    }

    /// Whether stdout was closed by its reader.
    pub(super) fn closed(&self) -> bool {
        self.closed
    }

    fn line(&mut self, value: &serde_json::Value) {
        if self.closed {
            return;
        }
        let mut out = io::stdout().lock();
        if writeln!(out, "{value}").and_then(|()| out.flush()).is_err() {
            self.closed = true;
            self.cancel.cancel();
        }
    }

    /// The final `summary` line: per-condition aggregates of the whole run and its decided
    /// hypotheses, as `report RUN --json` has them (without the units, already streamed).
    pub(super) fn summary(&mut self, report: &Report) {
        let mut object = serde_json::Map::new();
        object.insert("type".into(), json!("summary"));
        if let serde_json::Value::Object(fields) = report.to_json_without_units() {
            object.extend(fields);
        }
        self.line(&serde_json::Value::Object(object));
    }
}

impl Observer for StreamWriter {
    fn interest(&self) -> Interest {
        Interest { events: self.events, ..Interest::RESULTS }
    }

    fn event(&mut self, unit: &UnitKey, event: &Event) {
        if self.events {
            let value = json!({
                "type": "event",
                "run": self.run,
                "experiment": unit.experiment,
                "condition": unit.condition,
                "replicate": unit.replicate,
                "name": event.name,
                "payload": event.payload,
                "elapsed_ms": event.elapsed.as_secs_f64() * 1e3,
            });
            self.line(&value);
        }
    }

    fn unit_finished(&mut self, result: &UnitResult) {
        let value = summary::unit_json(Some(&self.run), result);
        self.line(&value);
    }
}
