//! The generated `main`: the command line of CLI.md mapped onto the registry, the planner, the
//! runner and the store. Results go to stdout; progress and diagnostics go to stderr. Exit codes:
//! 0 every unit succeeded, 1 some unit failed (or the run was interrupted), 2 bad usage or input,
//! detected before any unit ran.

mod cache;
mod confirm;
mod debug;
mod diff;
mod export;
mod html;
mod inspect;
mod outfile;
mod plan;
mod progress;
mod run;
mod shards;
mod show;
mod status;
mod stream;
mod submit;
mod until_decided;
#[cfg(feature = "view")]
mod view;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::hypothesis::TestKind;
use crate::plan::MAX_REPLICATES;
use crate::registry::Registry;
use crate::stats::Correction;

pub use progress::Progress;

/// The experiments crate, as `crystallize::main!` sees it.
#[derive(Clone, Copy, Debug)]
pub struct App {
    /// The crate's name.
    pub name: &'static str,
    /// The crate's version.
    pub version: &'static str,
    /// The directory of the crate's `Cargo.toml` when it was compiled, where `crystallize.toml`
    /// is looked for (see `crate::config_file`).
    pub manifest_dir: &'static str,
}

#[derive(Parser, Debug)]
#[command(about = "Runs the experiments of this crate (crystallize)")]
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
    /// Run the baseline and the treatments for N replicates, store the run, print a summary.
    Run(TableRunArgs),
    /// Like `run`, but stdout is JSON Lines: one line per finished unit, as it finishes.
    Stream(StreamArgs),
    /// Run one replicate of one condition, serially and verbosely; stores nothing.
    #[command(alias = "run-once")]
    Debug(DebugArgs),
    /// Stored runs: id, experiment, created, units done / planned, failed, status.
    Runs(RunsArgs),
    /// The summary of a stored run, recomputed from its journal, with its hypotheses decided.
    Report(ReportArgs),
    /// Pre-register hypothesis H, run fresh replicates, report the verdict and its integrity.
    Confirm(confirm::ConfirmArgs),
    /// Replicates per condition needed to detect the effect a stored run shows.
    Plan(plan::PlanArgs),
    /// What differs between two conditions ([EXP] A B), or between two stored runs (RUN_A RUN_B).
    Diff(diff::DiffArgs),
    /// The resolved configuration of a condition, each value with where it came from.
    Show(show::ShowArgs),
    /// Follow a run in progress (default: the latest incomplete one) by reading only the store.
    Watch(WatchArgs),
    /// Per shard of a stored run: units done / planned / failed, live writers, stale leases,
    /// and the command that completes what is missing.
    Status(status::StatusArgs),
    /// Run a run's shards as a job array of a cluster scheduler (Slurm), against a shared store.
    #[command(subcommand)]
    Submit(submit::SubmitCommand),
    /// The step cache of the store: `stats`, `clear [STEP]`, `gc`.
    Cache(cache::CacheArgs),
    /// A local read-only web server over the store (127.0.0.1): the runs, each run's report,
    /// two runs compared, a run in progress live.
    #[cfg(feature = "view")]
    View(view::ViewArgs),
    /// A stored run in tidy long format (one row per unit and metric) as CSV or JSON Lines.
    Export(export::ExportArgs),
}

/// What a run does with the step cache (`#[step(cache)]`).
#[derive(Args, Debug, Clone)]
pub(crate) struct CacheFlags {
    /// What to do with the outputs of `#[step(cache)]` steps: on (serve stored outputs, store
    /// new ones), read (serve, store nothing), write (run every step, store its output), off.
    #[arg(long = "cache", value_name = "off|read|write|on", value_parser = crate::cache::CacheMode::parse)]
    mode: Option<crate::cache::CacheMode>,
    /// Run every call of this cached step again and store the new outputs (repeatable).
    #[arg(long = "refresh", value_name = "STEP")]
    refresh: Vec<String>,
}

impl CacheFlags {
    /// Gives the flags to `session`.
    pub(crate) fn apply(&self, mut session: crate::session::Session) -> crate::session::Session {
        if let Some(mode) = self.mode {
            session = session.cache(mode);
        }
        for step in &self.refresh {
            session = session.refresh(step.clone());
        }
        session
    }
}

/// Where runs are stored.
#[derive(Args, Debug, Clone)]
struct StoreArgs {
    /// Where runs live (default: $CRYSTALLIZE_STORE, else .crystallize/ in the working directory).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The experiment (may be left out when the binary has only one).
    experiment: Option<String>,
    /// Run only these treatments (repeatable); the baseline always runs.
    #[arg(long = "treatment", value_name = "NAME")]
    treatments: Vec<String>,
    /// Replicates per condition (default: the experiment's, or the resumed run's); at most
    /// 100000000 (`crystallize::plan::MAX_REPLICATES`).
    #[arg(long, value_parser = replicates)]
    replicates: Option<u64>,
    /// The run's seed (default: the experiment's, or the resumed run's).
    #[arg(long)]
    seed: Option<u64>,
    /// Units in parallel, or in flight for an async experiment (default: the experiment's
    /// `jobs`, else the available cores for a sync experiment and 16 for an async one).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..1025))]
    jobs: Option<u64>,
    /// Override a param or an input field (players[2].model) for every condition: KEY=VALUE
    /// (repeatable), checked against its type before any unit runs.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Fail a unit still running after this long: 500ms, 120s, 2min, 1h (default: the
    /// experiment's `timeout`, else none). An async unit is cancelled at its deadline; a sync
    /// unit is recorded as timed out and its thread abandoned.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    timeout: Option<std::time::Duration>,
    /// Try a unit that failed in a way worth it (a timeout, an error returned as
    /// `Failure::retryable`) up to N more times, same seed (default: the experiment's `retries`,
    /// else 0; at most 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    retries: Option<u32>,
    /// Also retry units that panicked.
    #[arg(long)]
    retry_panics: bool,
    /// Let at most N units hold the limit NAME at once: NAME=N (repeatable; NAME declared by a
    /// step's `limit` or the experiment's `limits(...)`).
    #[arg(long = "limit", value_name = "NAME=N", value_parser = limit)]
    limits: Vec<(String, usize)>,
    /// Continue RUN (default: the latest unfinished run of the experiment), skipping finished units.
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "")]
    resume: Option<String>,
    /// Resume even though the configuration or code changed (recorded in the run).
    #[arg(long, requires = "resume")]
    force: bool,
    /// Stop scheduling new units after the first failure.
    #[arg(long)]
    fail_fast: bool,
    #[command(flatten)]
    shards: shards::ShardArgs,
    #[command(flatten)]
    sequential: until_decided::SequentialArgs,
    #[command(flatten)]
    cache: CacheFlags,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args, Debug)]
struct TableRunArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Print the summary as one JSON object instead of a table.
    #[arg(long, conflicts_with = "md")]
    json: bool,
    /// Print the summary as Markdown tables.
    #[arg(long)]
    md: bool,
    /// Also write the report as one self-contained HTML file (checked writable before any unit
    /// runs).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct StreamArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Also print the events emitted inside steps.
    #[arg(long)]
    events: bool,
}

#[derive(Args, Debug)]
struct DebugArgs {
    /// The condition: `baseline`, a treatment, EXP/COND, or an experiment's name for its
    /// baseline (default: the baseline of the only experiment).
    #[arg(default_value = "baseline")]
    condition: String,
    /// Which step lines to print: off, summary (the first 40, then each step's calls and time),
    /// or all.
    #[arg(long, value_name = "off|summary|all", default_value = "summary", value_parser = crate::verbose::StepLines::parse)]
    steps: crate::verbose::StepLines,
    /// Accepted for `run-once EXP --verbose`: debug output is always verbose.
    #[arg(long, short = 'v', hide = true)]
    verbose: bool,
    /// The replicate index to run.
    #[arg(long, default_value_t = 0)]
    replicate: u64,
    /// The run seed the replicate's seed derives from (default: the experiment's).
    #[arg(long)]
    seed: Option<u64>,
    /// Override a param or an input field (players[2].model): KEY=VALUE (repeatable), checked
    /// against its type.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Reproduce this unit of a stored run (its seed and configuration) and compare the metrics.
    #[arg(long, value_name = "RUN", conflicts_with_all = ["seed", "sets"])]
    run: Option<String>,
    /// The step cache (default for debug: read, which stores nothing).
    #[command(flatten)]
    cache: CacheFlags,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args, Debug)]
struct RunsArgs {
    /// Only runs of this experiment.
    experiment: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// The run id (a unique prefix is enough).
    run: String,
    /// Print one JSON object, as `run --json` did.
    #[arg(long, conflicts_with = "md")]
    json: bool,
    /// Print Markdown tables (for a paper or a pull request).
    #[arg(long)]
    md: bool,
    /// Write the report as one self-contained HTML file (plots as inline SVG, no script, no
    /// network) to FILE, or `-` for stdout, instead of printing tables.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "md"])]
    html: Option<PathBuf>,
    /// Also decide this hypothesis (repeatable), e.g. "dolphin.win > baseline.win"; corrected
    /// together with the run's own.
    #[arg(long = "hypothesis", value_name = "H")]
    hypotheses: Vec<String>,
    /// The significance level, applied to the corrected p-values (a confirmation's registered
    /// hypothesis keeps the level it registered).
    #[arg(long, default_value_t = 0.05, value_parser = probability)]
    alpha: f64,
    /// The correction across the hypotheses: holm, bh (Benjamini-Hochberg) or none.
    #[arg(long, value_name = "CORRECTION", default_value = "holm", value_parser = correction)]
    correction: Correction,
    /// The test to decide with (default: chosen per hypothesis, paired when seeds are shared); one
    /// of paired-permutation, permutation, paired-t, welch-t, student-t, mann-whitney, wilcoxon,
    /// fisher.
    #[arg(long, value_name = "TEST", value_parser = confirm::test_kind)]
    test: Option<TestKind>,
    /// The smallest difference that matters: a difference whose interval reaches inside it is
    /// "within noise" rather than supported.
    #[arg(long, value_name = "EFFECT", value_parser = non_negative)]
    min_effect: Option<f64>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Parses `--replicates`: 1 to [`MAX_REPLICATES`], checked before anything is planned (the plan
/// holds every replicate index).
pub(crate) fn replicates(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_REPLICATES).contains(&n) => Ok(n),
        Ok(n) => Err(format!("{n} replicates per condition is out of range: 1 to {MAX_REPLICATES}")),
        Err(_) => Err(format!("'{text}' is not a number of replicates: a whole number from 1 to {MAX_REPLICATES}")),
    }
}

/// Parses `--timeout`'s duration (see [`crate::duration::parse`]).
pub(crate) fn duration(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(text).map_err(|error| format!("{error}; leave --timeout out for no deadline"))
}

/// Parses `--limit NAME=N`.
fn limit(text: &str) -> Result<(String, usize), String> {
    let Some((name, capacity)) = text.split_once('=') else {
        return Err(format!("'{text}' is not NAME=N (e.g. ollama=2)"));
    };
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("'{name}' is not a limit name: letters, digits, '_' and '-' (e.g. ollama=2)"));
    }
    match capacity.trim().parse::<usize>() {
        Ok(capacity) if (1..=1_000_000).contains(&capacity) => Ok((name.to_owned(), capacity)),
        _ => Err(format!("'{capacity}' is not a capacity for limit '{name}': a whole number from 1 to 1000000")),
    }
}

/// Parses `--correction`.
fn correction(text: &str) -> Result<Correction, String> {
    match text.to_ascii_lowercase().as_str() {
        "holm" => Ok(Correction::Holm),
        "bh" | "benjamini-hochberg" | "fdr" => Ok(Correction::BenjaminiHochberg),
        "none" => Ok(Correction::None),
        _ => Err(format!("unknown correction '{text}'; corrections: holm, bh (benjamini-hochberg), none")),
    }
}

/// Who is running: the experiments crate and how this process was invoked (what every command
/// that prints a command for the user, or runs units, needs).
struct Invocation {
    app: App,
    program: String,
}

/// A probability strictly between 0 and 1.
fn probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value > 0.0 && value < 1.0 => Ok(value),
        _ => Err(format!("'{text}' is not a probability strictly between 0 and 1 (e.g. 0.05 or 0.8)")),
    }
}

/// Parses a finite number that is not negative.
fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("'{text}' is not a number of 0 or more (e.g. 0.05)")),
    }
}

#[derive(Args, Debug)]
struct WatchArgs {
    /// The run id (a unique prefix is enough); default: the latest run that is not complete.
    run: Option<String>,
    /// How often to look at the store, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    interval: u64,
    /// Give up after this many seconds (exit code 1) if the run has not completed by then.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// How many of the latest events the view on a terminal shows.
    #[arg(long, value_name = "N", default_value_t = 5)]
    events: usize,
    #[command(flatten)]
    store: StoreArgs,
}

/// Parses the process's arguments and runs the command; the body of every generated `main`.
pub fn main(app: App) -> ExitCode {
    run_cli(app, std::env::args_os().collect())
}

/// Runs the command line `args` (the first is the program). Returns the process's exit code.
pub fn run_cli(app: App, args: Vec<std::ffi::OsString>) -> ExitCode {
    let program = args.first().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| app.name.into());
    let command = Cli::command().name(app.name).bin_name(app.name).version(app.version);
    let not_utf8 = non_utf8_arguments(&args);
    let cli = match command.try_get_matches_from(args).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(error) if error.kind() == clap::error::ErrorKind::InvalidUtf8 => {
            // clap does not say which argument; paths (`--store`) may be any bytes, nothing else.
            eprintln!(
                "error: {} not valid UTF-8: {}; only a path (--store DIR) may hold such bytes",
                if not_utf8.len() == 1 { "this argument is" } else { "these arguments are" },
                not_utf8.join(", ")
            );
            return ExitCode::from(2);
        }
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let context = Invocation { app, program };
    let outcome = Registry::collect().and_then(|registry| match cli.command {
        Command::List { json } => inspect::list(&registry, json),
        Command::Run(args) => {
            let output = run::Output::Report(inspect::Format::from_flags(args.json, args.md));
            let html = args.html.as_deref().map(outfile::Target::of);
            run::run(&registry, &args.run, &context, output, html)
        }
        Command::Stream(args) => {
            run::run(&registry, &args.run, &context, run::Output::Stream { events: args.events }, None)
        }
        Command::Debug(args) => debug::debug(&registry, &args, &app),
        Command::Diff(args) => diff::diff(&registry, &args, &app),
        Command::Show(args) => show::show(&registry, &args, &app),
        Command::Runs(args) => inspect::runs(&registry, &args),
        Command::Report(args) => inspect::report(&args, &context),
        Command::Confirm(args) => confirm::confirm(&registry, &args, &context),
        Command::Plan(args) => plan::plan(&registry, &args),
        Command::Watch(args) => watch::watch(&args),
        Command::Status(args) => status::status(&args, &context),
        Command::Submit(command) => submit::submit(&registry, command, &context),
        Command::Cache(args) => cache::cache(&args),
        Command::Export(args) => export::export(&args),
        #[cfg(feature = "view")]
        Command::View(args) => view::view(&args, &context.program),
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The arguments of `args` (after the program) that are not UTF-8 and not the value of
/// `--store`, each as `argument N ('lossy text')`, for the error that refuses them.
fn non_utf8_arguments(args: &[std::ffi::OsString]) -> Vec<String> {
    let mut found = Vec::new();
    for (index, arg) in args.iter().enumerate().skip(1) {
        let is_path = args[index - 1] == "--store" || arg.as_encoded_bytes().starts_with(b"--store=");
        if arg.to_str().is_none() && !is_path {
            found.push(format!("argument {index} ('{}')", arg.to_string_lossy()));
        }
    }
    found
}
