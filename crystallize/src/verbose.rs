//! The `debug` printer: one unit's params, seed and input, then every step, event and metric as
//! it happens, then its outcome. A game of many rounds calls its steps hundreds of times, so step
//! lines can be summarised or hidden ([`StepLines`]); events and metrics are always printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::events::{Event, InputView, MetricRecord, Observer, UnitKey};
use crate::registry::{Experiment, StepInfo};
use crate::resolve::Condition;
use crate::results::{RunInfo, UnitResult};
use crate::summary;

/// Which step lines `debug` prints (`--steps`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StepLines {
    /// None.
    Off,
    /// The first [`StepLines::SUMMARY_LINES`] step lines, then, when the unit ends, each step's
    /// calls and total time.
    #[default]
    Summary,
    /// Every step's start and end.
    All,
}

impl StepLines {
    /// How many step lines [`StepLines::Summary`] prints before it only counts.
    pub const SUMMARY_LINES: usize = 40;

    /// Parses `off`, `summary` or `all`.
    pub fn parse(text: &str) -> Result<StepLines, String> {
        match text {
            "off" => Ok(StepLines::Off),
            "summary" => Ok(StepLines::Summary),
            "all" => Ok(StepLines::All),
            _ => Err(format!("unknown step display '{text}'; valid: off, summary, all")),
        }
    }
}

/// The `debug` printer: every step, event and metric of a unit as it happens.
pub struct VerbosePrinter<W: Write + Send> {
    out: W,
    header: Vec<String>,
    unit_started: Instant,
    depth: usize,
    steps: StepLines,
    /// Step lines printed so far (for [`StepLines::Summary`]).
    step_lines: usize,
    /// Per step: calls and total time, for the summary at the end of the unit.
    step_totals: BTreeMap<&'static str, (u64, Duration)>,
}

impl<W: Write + Send> VerbosePrinter<W> {
    /// A printer to `out` of a unit of `condition` of `experiment`.
    pub(crate) fn new(out: W, condition: &Condition, experiment: &Experiment, steps: StepLines) -> Self {
        let entry = experiment.entry;
        let mut header = Vec::new();
        let datasource = condition.treatment.and_then(|t| t.datasource.as_ref().map(|d| d.info)).or(entry.datasource);
        if let Some(datasource) = datasource {
            header.push(format!("datasource  {}  ({})", datasource.name, datasource.location));
        }
        if let Some(treatment) = condition.treatment {
            let mutation = if treatment.mutate.is_some() { ", mutates the input" } else { "" };
            header.push(format!("treatment   {}{mutation}  ({})", treatment.name, treatment.location));
        }
        let params: Vec<String> =
            condition.params.0.iter().map(|p| format!("{} = {} ({})", p.name, p.value, p.origin)).collect();
        header.push(format!("params      {}", if params.is_empty() { "(none)".into() } else { params.join(", ") }));
        VerbosePrinter {
            out,
            header,
            unit_started: Instant::now(),
            depth: 0,
            steps,
            step_lines: 0,
            step_totals: BTreeMap::new(),
        }
    }

    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    fn timed(&mut self, text: &str) {
        let elapsed = millis(self.unit_started.elapsed());
        let indent = "  ".repeat(self.depth);
        self.line(&format!("{elapsed:>10}  {indent}{text}"));
    }

    /// Prints a step line if the display allows it; says once when the rest are hidden.
    fn step_line(&mut self, text: &str) {
        match self.steps {
            StepLines::Off => {}
            StepLines::All => self.timed(text),
            StepLines::Summary => {
                self.step_lines += 1;
                if self.step_lines <= StepLines::SUMMARY_LINES {
                    self.timed(text);
                } else if self.step_lines == StepLines::SUMMARY_LINES + 1 {
                    self.timed("… further step lines hidden; each step's calls and time follow at the end (--steps all shows every one)");
                }
            }
        }
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

impl<W: Write + Send> Observer for VerbosePrinter<W> {
    fn run_started(&mut self, run: &RunInfo) {
        let conditions = run.conditions.join(", ");
        self.line(&format!(
            "debug {}/{conditions}  replicate {:?}  run seed {}",
            run.experiment, run.replicates, run.seed
        ));
        for line in std::mem::take(&mut self.header) {
            self.line(&line);
        }
    }

    fn unit_started(&mut self, unit: &UnitKey) {
        self.unit_started = Instant::now();
        self.line(&format!("seed        {}", unit.seed));
    }

    fn input_ready(&mut self, _unit: &UnitKey, input: &InputView) {
        let text = match input {
            InputView::Json(value) => value.to_string(),
            InputView::Debug(text) => text.clone(),
            InputView::Opaque => "(not Serialize or Debug)".into(),
        };
        self.line(&format!("input       {text}"));
    }

    fn step_started(&mut self, _unit: &UnitKey, step: &StepInfo) {
        self.step_line(&format!("> step {}", step.name));
        self.depth += 1;
    }

    fn step_finished(&mut self, _unit: &UnitKey, step: &StepInfo, elapsed: Duration) {
        self.depth = self.depth.saturating_sub(1);
        let total = self.step_totals.entry(step.name).or_default();
        total.0 += 1;
        total.1 += elapsed;
        self.step_line(&format!("< step {} ({})", step.name, millis(elapsed)));
    }

    fn event(&mut self, _unit: &UnitKey, event: &Event) {
        self.timed(&format!("* {} {}", event.name, event.payload));
    }

    fn metric(&mut self, _unit: &UnitKey, metric: &MetricRecord) {
        let tags: Vec<String> = metric.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let tags = if tags.is_empty() { String::new() } else { format!(" [{}]", tags.join(", ")) };
        self.timed(&format!("= {} = {}{tags}", metric.name, summary::number(metric.value)));
    }

    fn unit_finished(&mut self, result: &UnitResult) {
        let took = format!("{:.2} ms", result.duration_ms);
        match &result.error {
            None => self.line(&format!("ok in {took}")),
            Some(error) => {
                let location = error.location.as_deref().map(|l| format!(" at {l}")).unwrap_or_default();
                self.line(&format!("FAILED after {took}: {}{location}", error.message));
            }
        }
        let metrics: Vec<String> =
            result.metrics.iter().map(|(name, value)| format!("{name} = {}", summary::number(*value))).collect();
        self.line(&format!("metrics     {}", if metrics.is_empty() { "(none)".into() } else { metrics.join(", ") }));
        // The summary only when lines were hidden: otherwise every call is already on screen.
        if self.steps == StepLines::Summary && self.step_lines > StepLines::SUMMARY_LINES {
            let totals: Vec<String> = std::mem::take(&mut self.step_totals)
                .into_iter()
                .map(|(name, (calls, time))| format!("{name} ×{calls} ({})", millis(time)))
                .collect();
            self.line(&format!("steps       {}", totals.join(", ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::source::Location;

    static STEP: StepInfo = StepInfo {
        name: "speak",
        location: Location { module_path: "game", file: "game.rs", line: 1 },
        fingerprint: 0,
        limit: None,
        cache: None,
    };

    /// The printer's output for a unit that calls its step `calls` times.
    fn output(steps: StepLines, calls: usize) -> String {
        let mut out = Vec::new();
        let mut printer = VerbosePrinter {
            out: &mut out,
            header: Vec::new(),
            unit_started: Instant::now(),
            depth: 0,
            steps,
            step_lines: 0,
            step_totals: BTreeMap::new(),
        };
        let unit = UnitKey { experiment: "game", condition: Arc::from("baseline"), replicate: 0, seed: 7 };
        printer.unit_started(&unit);
        for _ in 0..calls {
            printer.step_started(&unit, &STEP);
            printer.step_finished(&unit, &STEP, Duration::from_millis(2));
        }
        printer.unit_finished(&UnitResult {
            experiment: "game".into(),
            condition: "baseline".into(),
            replicate: 0,
            seed: 7,
            status: crate::results::UnitStatus::Ok,
            error: None,
            metrics: Default::default(),
            records: Vec::new(),
            duration_ms: 1.0,
            attempts: Vec::new(),
            cache: Default::default(),
        });
        String::from_utf8(out).expect("utf-8")
    }

    fn step_lines(text: &str) -> usize {
        text.lines().filter(|line| line.contains("> step") || line.contains("< step")).count()
    }

    #[test]
    fn all_prints_every_step_line_and_off_none() {
        assert_eq!(step_lines(&output(StepLines::All, 100)), 200);
        let off = output(StepLines::Off, 100);
        assert_eq!(step_lines(&off), 0);
        assert!(!off.contains("steps "), "{off}");
    }

    #[test]
    fn summary_prints_the_first_lines_then_each_steps_calls_and_time() {
        let few = output(StepLines::Summary, 5);
        assert_eq!(step_lines(&few), 10);
        assert!(!few.contains("hidden"), "nothing is hidden when all lines fit:\n{few}");
        let many = output(StepLines::Summary, 100);
        assert_eq!(step_lines(&many), StepLines::SUMMARY_LINES);
        assert!(many.contains("further step lines hidden"), "{many}");
        assert!(many.contains("steps       speak ×100 (200.00 ms)"), "{many}");
    }

    #[test]
    fn step_display_names_the_valid_choices() {
        assert_eq!(StepLines::parse("all"), Ok(StepLines::All));
        let error = StepLines::parse("some").expect_err("invalid");
        assert!(error.contains("off, summary, all"), "{error}");
    }
}
