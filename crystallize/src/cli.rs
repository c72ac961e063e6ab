//! The generated `main`: the command line of CLI.md mapped onto the registry, the planner and the
//! runner. Results go to stdout; progress and diagnostics go to stderr. Exit codes: 0 every unit
//! succeeded, 1 some unit failed, 2 bad usage or input, detected before any unit ran.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::Error;
use crate::events::{Event, InputView, MetricRecord, Observer, UnitKey};
use crate::plan::{resolve_condition, Condition, Override, Plan};
use crate::registry::{Experiment, Registry, StepInfo};
use crate::runner::{self, RunInfo, RunOptions, RunResults, UnitResult};
use crate::summary;

#[derive(Parser, Debug)]
#[command(about = "Runs the experiments of this crate (crystallize)", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every experiment with its datasource, treatments, params, hypotheses and source location.
    List {
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the baseline and the treatments for N replicates and print a summary.
    Run(RunArgs),
    /// Run one replicate of one condition, serially and verbosely; stores nothing.
    #[command(alias = "run-once")]
    Debug(DebugArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The experiment (may be left out when the binary has only one).
    experiment: Option<String>,
    /// Run only these treatments (repeatable); the baseline always runs.
    #[arg(long = "treatment", value_name = "NAME")]
    treatments: Vec<String>,
    /// Replicates per condition (default: the experiment's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    replicates: Option<u64>,
    /// The run's seed (default: the experiment's).
    #[arg(long)]
    seed: Option<u64>,
    /// Units in parallel (default: available cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..1025))]
    jobs: Option<u64>,
    /// Override a param for every condition: KEY=VALUE (repeatable), checked against its type.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Stop scheduling new units after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Print the summary as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DebugArgs {
    /// The condition: `baseline`, a treatment, or EXP/COND.
    condition: String,
    /// The replicate index to run.
    #[arg(long, default_value_t = 0)]
    replicate: u64,
    /// The run seed the replicate's seed derives from (default: the experiment's).
    #[arg(long)]
    seed: Option<u64>,
    /// Override a param: KEY=VALUE (repeatable), checked against its type.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

/// Parses the process's arguments and runs the command; the body of every generated `main`.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    run_cli(args)
}

/// Runs the command line `args` (the first is the program). Returns the process's exit code.
pub fn run_cli(args: Vec<std::ffi::OsString>) -> ExitCode {
    let program = args.first().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| "experiments".into());
    let bin_name = std::path::Path::new(&program)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.clone());
    let command = Cli::command().name(bin_name.clone()).bin_name(bin_name);
    let cli = match command.try_get_matches_from(args).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let outcome = Registry::collect().and_then(|registry| match cli.command {
        Command::List { json } => list(&registry, json),
        Command::Run(args) => run(&registry, &args, &program),
        Command::Debug(args) => debug(&registry, &args),
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn overrides(sets: &[String]) -> Result<Vec<Override>, Error> {
    sets.iter().map(|s| Override::parse(s)).collect()
}

fn list(registry: &Registry, json: bool) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    if json {
        let all: Vec<serde_json::Value> = registry.experiments().iter().map(experiment_json).collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(all));
        return Ok(ExitCode::SUCCESS);
    }
    for (index, experiment) in registry.experiments().iter().enumerate() {
        if index > 0 {
            let _ = writeln!(out);
        }
        let _ = write!(out, "{}", experiment_text(experiment));
    }
    Ok(ExitCode::SUCCESS)
}

fn experiment_text(experiment: &Experiment) -> String {
    let entry = experiment.entry;
    let mut text = format!("{}  ({})\n", entry.name, entry.location);
    let datasource =
        entry.datasource.map(|d| format!("{}  ({})", d.name, d.location)).unwrap_or_else(|| "(none)".into());
    text += &format!("  datasource  {datasource}\n");
    text += &format!("  input       {}\n", entry.vtable.input_type());
    text += &format!("  replicates  {}, seed {}\n", entry.replicates, entry.seed);
    let params: Vec<String> =
        entry.params.iter().map(|p| format!("{}: {} = {}", p.name, p.rust_type, p.default)).collect();
    text += &format!("  params      {}\n", if params.is_empty() { "(none)".into() } else { params.join(", ") });
    if experiment.treatments.is_empty() {
        text += "  treatments  (none)\n";
    }
    for (index, treatment) in experiment.treatments.iter().enumerate() {
        let label = if index == 0 { "treatments" } else { "" };
        let mut changes = Vec::new();
        if let Some(datasource) = &treatment.datasource {
            changes.push(format!("datasource {}", datasource.info.name));
        }
        if treatment.mutate.is_some() {
            changes.push("mutates input".into());
        }
        for (key, value) in treatment.sets {
            changes.push(format!("{key} = {value}"));
        }
        text += &format!("  {label:<10}  {}: {}  ({})\n", treatment.name, changes.join(", "), treatment.location);
    }
    for (index, hypothesis) in entry.hypotheses.iter().enumerate() {
        let label = if index == 0 { "hypotheses" } else { "" };
        text += &format!("  {label:<10}  {hypothesis}\n");
    }
    text
}

fn experiment_json(experiment: &Experiment) -> serde_json::Value {
    let entry = experiment.entry;
    let params: Vec<serde_json::Value> = entry
        .params
        .iter()
        .map(|p| serde_json::json!({"name": p.name, "type": p.rust_type, "kind": p.kind, "default": p.default}))
        .collect();
    let treatments: Vec<serde_json::Value> = experiment
        .treatments
        .iter()
        .map(|t| {
            let sets: serde_json::Map<String, serde_json::Value> =
                t.sets.iter().map(|(k, v)| ((*k).to_owned(), serde_json::json!(v))).collect();
            serde_json::json!({
                "name": t.name,
                "location": t.location,
                "datasource": t.datasource.as_ref().map(|d| serde_json::json!({"name": d.info.name, "location": d.info.location})),
                "mutates_input": t.mutate.is_some(),
                "sets": sets,
            })
        })
        .collect();
    serde_json::json!({
        "name": entry.name,
        "location": entry.location,
        "datasource": entry.datasource.map(|d| serde_json::json!({"name": d.name, "location": d.location})),
        "input_type": entry.vtable.input_type(),
        "replicates": entry.replicates,
        "seed": entry.seed,
        "params": params,
        "treatments": treatments,
        "hypotheses": entry.hypotheses,
    })
}

fn run(registry: &Registry, args: &RunArgs, program: &str) -> Result<ExitCode, Error> {
    let experiment = registry.experiment(args.experiment.as_deref())?;
    let entry = experiment.entry;
    let sets = overrides(&args.sets)?;
    let seed = args.seed.unwrap_or(entry.seed);
    let plan = Plan::new(experiment, &args.treatments, args.replicates.unwrap_or(entry.replicates), seed, &sets)?;
    let options = RunOptions {
        jobs: args.jobs.map(|j| j as usize).unwrap_or_else(runner::default_jobs),
        fail_fast: args.fail_fast,
        ..RunOptions::default()
    };
    let mut progress = Progress::new();
    let results = runner::execute(&plan, &options, &mut [&mut progress]);

    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{}", summary::to_json(None, &results));
    } else {
        let _ = writeln!(out, "{}", headline(&results));
        let _ = write!(out, "{}", summary::to_table(&results));
    }
    let _ = out.flush();
    report_failures(&results, program, args.seed, &args.sets);
    Ok(if results.failed() > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn headline(results: &RunResults) -> String {
    let info = &results.info;
    let mut line = format!(
        "{}: {} conditions x {} replicates = {} units, seed {}, {} jobs, {:.2} s",
        info.experiment,
        info.conditions.len(),
        info.replicates.len(),
        info.units_planned,
        info.seed,
        info.jobs,
        results.elapsed.as_secs_f64()
    );
    if results.failed() > 0 {
        line += &format!(" - {} FAILED", results.failed());
    }
    if results.skipped > 0 {
        line += &format!(" - {} not run (--fail-fast)", results.skipped);
    }
    line
}

/// Every failure with its message, location and the command that reproduces it.
fn report_failures(results: &RunResults, program: &str, seed: Option<u64>, sets: &[String]) {
    let failed: Vec<&UnitResult> = results.units.iter().filter(|u| !u.is_ok()).collect();
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
        let mut command =
            format!("{program} debug {}/{} --replicate {}", unit.experiment, unit.condition, unit.replicate);
        if let Some(seed) = seed {
            command += &format!(" --seed {seed}");
        }
        for set in sets {
            command += &format!(" --set {}", shell_quote(set));
        }
        let _ = writeln!(err, "    reproduce: {command}");
    }
}

fn shell_quote(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.=/:,".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn debug(registry: &Registry, args: &DebugArgs) -> Result<ExitCode, Error> {
    let (experiment, condition_name) = registry.condition(&args.condition)?;
    let entry = experiment.entry;
    let sets = overrides(&args.sets)?;
    let treatment = match condition_name {
        crate::plan::BASELINE => None,
        name => Some(experiment.treatment(name)?),
    };
    let condition = resolve_condition(entry, treatment, &sets)?;
    let seed = args.seed.unwrap_or(entry.seed);
    let plan = Plan {
        experiment: entry,
        conditions: vec![condition.clone()],
        replicates: vec![args.replicate],
        seed,
        policy: Default::default(),
    };
    let options = RunOptions { jobs: 1, fail_fast: false, live_metrics: true, describe_input: true };
    let mut printer = VerbosePrinter::new(std::io::stdout(), &condition, experiment);
    let results = runner::execute(&plan, &options, &mut [&mut printer]);
    Ok(if results.failed() > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
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

/// A one-line progress count on stderr, only when stderr is a terminal (so piped output and
/// files get no control codes).
struct Progress {
    enabled: bool,
    planned: usize,
    done: usize,
    failed: usize,
    started: Instant,
    last_draw: Option<Instant>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            planned: 0,
            done: 0,
            failed: 0,
            started: Instant::now(),
            last_draw: None,
        }
    }

    fn draw(&mut self, force: bool) {
        if !self.enabled || (!force && self.last_draw.is_some_and(|t| t.elapsed() < Duration::from_millis(100))) {
            return;
        }
        self.last_draw = Some(Instant::now());
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if self.done > 0 {
            format!(", eta {:.0} s", elapsed / self.done as f64 * (self.planned - self.done) as f64)
        } else {
            String::new()
        };
        let failed = if self.failed > 0 { format!(", {} failed", self.failed) } else { String::new() };
        eprint!("\r\x1b[2K{}/{} units{failed}, {elapsed:.1} s{eta}", self.done, self.planned);
    }
}

impl Observer for Progress {
    fn run_started(&mut self, run: &RunInfo) {
        self.planned = run.units_planned;
        self.started = Instant::now();
        self.draw(true);
    }

    fn unit_finished(&mut self, result: &UnitResult) {
        self.done += 1;
        if !result.is_ok() {
            self.failed += 1;
        }
        self.draw(false);
    }

    fn run_finished(&mut self, _results: &[UnitResult]) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}
