//! `debug`: one replicate of one condition, serially, printing every step, event and metric as it
//! happens. With `--run`, it reproduces a stored unit and says whether its metrics match.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::{overrides, DebugArgs};
use crate::config_file::Settings;
use crate::error::Error;
use crate::events::{Event, InputView, MetricRecord, Observer, UnitKey};
use crate::plan::{resolve_condition, Condition, Plan, BASELINE};
use crate::registry::{Experiment, Registry, StepInfo};
use crate::runner::{self, RunInfo, RunOptions, UnitResult};
use crate::store::{manifest, RunDir, Store};
use crate::summary;

pub(super) fn debug(registry: &Registry, args: &DebugArgs, app: &super::App) -> Result<ExitCode, Error> {
    let (experiment, condition_name) = registry.condition(&args.condition)?;
    let entry = experiment.entry;
    let settings = crate::config_file::settings(app.manifest_dir, registry, experiment)?;
    let stored = match &args.run {
        Some(id) => Some(Store::locate(args.store.store.as_deref()).run(id)?),
        None => None,
    };
    let (condition, seed) = match &stored {
        Some(run) => stored_condition(experiment, condition_name, run, &settings)?,
        None => {
            let treatment = match condition_name {
                BASELINE => None,
                name => Some(experiment.treatment(name)?),
            };
            let condition = resolve_condition(entry, treatment, &overrides(&settings, &args.sets)?)?;
            let seed = settings.seed(args.seed, entry.seed).value;
            crate::resolve::check_input_overrides(entry, std::slice::from_ref(&condition), seed, Default::default())?;
            (condition, seed)
        }
    };
    let plan = Plan {
        experiment: std::borrow::Cow::Borrowed(entry),
        conditions: vec![condition.clone()],
        replicates: vec![args.replicate],
        seed,
        policy: Default::default(),
        done: Default::default(),
    };
    let options = RunOptions { jobs: 1, live_metrics: true, describe_input: true, ..RunOptions::default() };
    let mut printer = VerbosePrinter::new(std::io::stdout(), &condition, experiment);
    let results = runner::execute(&plan, &options, &mut [&mut printer]);
    let Some(unit) = results.units.first() else {
        return Ok(ExitCode::from(1));
    };
    // Exit 1 when the unit failed, even if it failed exactly as stored: `debug --run R && echo
    // fixed` must not say "fixed" for a unit that still fails.
    let matches = stored.as_ref().is_none_or(|run| compare_with_stored(unit, run));
    Ok(if unit.is_ok() && matches { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The condition and run seed of a stored run, as its manifest recorded them; warns about code or
/// configuration that changed since.
fn stored_condition(
    experiment: &Experiment,
    name: &str,
    run: &RunDir,
    settings: &Settings,
) -> Result<(Condition, u64), Error> {
    let manifest = &run.manifest;
    if manifest.experiment != experiment.name() {
        return Err(Error::Store(format!("run {} is a run of experiment '{}'", manifest.run, manifest.experiment)));
    }
    let seed = manifest.config.get("seed").and_then(|s| s.as_u64()).unwrap_or(experiment.entry.seed);
    let overrides = overrides(settings, &manifest.request.sets)?;
    let plan = Plan::new(experiment, &manifest.request.treatments, 1, seed, &overrides)?;
    let drift = manifest::drift(&manifest.config, &manifest::resolved_config(&plan));
    if !drift.is_empty() {
        eprintln!(
            "warning: run {} was made with other code or configuration; the unit may not reproduce:",
            manifest.run
        );
        for line in &drift {
            eprintln!("  {line}");
        }
    }
    let condition = plan.conditions.into_iter().find(|c| &*c.name == name).ok_or_else(|| {
        Error::Store(format!(
            "run {} has no condition '{name}'; its conditions: {}",
            manifest.run,
            run.conditions().join(", ")
        ))
    })?;
    Ok((condition, seed))
}

/// Compares a re-run unit with its stored record, bit for bit; says whether they match.
fn compare_with_stored(unit: &UnitResult, run: &RunDir) -> bool {
    let state = run.state();
    let stored = state.units.values().find(|u| u.condition == unit.condition && u.replicate == unit.replicate);
    let Some(stored) = stored else {
        println!(
            "run {} has no record of {} replicate {} to compare with",
            run.manifest.run, unit.condition, unit.replicate
        );
        return false;
    };
    let mut differences = Vec::new();
    if stored.seed != unit.seed {
        differences.push(format!("seed: stored {}, now {}", stored.seed, unit.seed));
    }
    if stored.status != unit.status {
        differences.push(format!("status: stored {:?}, now {:?}", stored.status, unit.status));
    }
    let names: std::collections::BTreeSet<&String> = stored.metrics.keys().chain(unit.metrics.keys()).collect();
    for name in names {
        let (before, now) = (stored.metrics.get(name), unit.metrics.get(name));
        if before.map(|v| v.to_bits()) != now.map(|v| v.to_bits()) {
            let show = |v: Option<&f64>| v.map(|v| summary::number(*v)).unwrap_or_else(|| "(none)".into());
            differences.push(format!("{name}: stored {}, now {}", show(before), show(now)));
        }
    }
    if differences.is_empty() {
        println!("matches the stored unit of run {} (metrics identical to the last bit)", run.manifest.run);
        true
    } else {
        println!("DIFFERS from the stored unit of run {}:", run.manifest.run);
        for difference in differences {
            println!("  {difference}");
        }
        false
    }
}

/// `text` as one shell word: unchanged when it is plain, single-quoted otherwise.
pub(super) fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.=/:,+@".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Every failure with its message, location and the command that reproduces it.
pub(super) fn report_failures(units: &[UnitResult], program: &str, run: &RunDir) {
    let failed: Vec<&UnitResult> = units.iter().filter(|u| !u.is_ok()).collect();
    if failed.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n{} unit(s) failed:", failed.len());
    for unit in failed {
        let Some(error) = &unit.error else { continue };
        let location = error.location.as_deref().map(|l| format!(" at {l}")).unwrap_or_default();
        let _ = writeln!(
            err,
            "  {} replicate {} (seed {}): {}{location}",
            unit.condition, unit.replicate, unit.seed, error.message
        );
        let _ = writeln!(
            err,
            "    reproduce: {} debug {}/{} --replicate {} --run {}",
            shell_quote(program),
            unit.experiment,
            unit.condition,
            unit.replicate,
            run.manifest.run
        );
    }
}

/// The `debug` printer: every step, event and metric of a unit as it happens.
pub struct VerbosePrinter<W: Write + Send> {
    out: W,
    header: Vec<String>,
    unit_started: Instant,
    depth: usize,
}

impl<W: Write + Send> VerbosePrinter<W> {
    fn new(out: W, condition: &Condition, experiment: &Experiment) -> Self {
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
        VerbosePrinter { out, header, unit_started: Instant::now(), depth: 0 }
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
        self.timed(&format!("> step {}", step.name));
        self.depth += 1;
    }

    fn step_finished(&mut self, _unit: &UnitKey, step: &StepInfo, elapsed: Duration) {
        self.depth = self.depth.saturating_sub(1);
        self.timed(&format!("< step {} ({})", step.name, millis(elapsed)));
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
    }
}
