//! `run` and `stream`: plan (or re-plan a stored run to resume it), guard against drift, store
//! the manifest and a session record, run the units with the journal as an observer, and print
//! the report recomputed from the store.

use std::process::ExitCode;
use std::sync::Arc;

use super::progress::Progress;
use super::stream::StreamWriter;
use super::{inspect, overrides, RunArgs};
use crate::config_file::Settings;
use crate::error::Error;
use crate::events::Observer;
use crate::hypothesis::EvalOptions;
use crate::plan::Plan;
use crate::registry::{Experiment, Registry};
use crate::report::Report;
use crate::runner::{self, Cancel, RunOptions};
use crate::store::events::EventLog;
use crate::store::manifest::{self, Request};
use crate::store::recorder::{self, Origin};
use crate::store::{RunDir, Status, Store};

/// Who is running: the experiments crate and how this process was invoked.
pub(super) struct Invocation {
    pub app: super::App,
    pub program: String,
}

/// What `run`/`stream` print on stdout.
pub(super) enum Output {
    /// The report at the end: tables, one JSON object, or Markdown.
    Report(inspect::Format),
    /// One JSON line per finished unit (and per event with `events`), then a summary line.
    Stream { events: bool },
}

/// How to run the units of a planned, stored run, and what to print.
pub(super) struct Execution<'a> {
    /// Units in parallel (default: available cores).
    pub jobs: Option<u64>,
    /// Stop scheduling new units after the first failure.
    pub fail_fast: bool,
    /// What to print.
    pub output: Output,
    /// The store of the run (for the report).
    pub store: &'a Store,
    /// ` --store DIR` when one was given, for the resume command printed on an interruption.
    pub store_flag: String,
    /// What changed when a resume was forced (recorded in the session).
    pub forced_drift: Vec<String>,
}

pub(super) fn run(
    registry: &Registry,
    args: &RunArgs,
    invocation: &Invocation,
    output: Output,
) -> Result<ExitCode, Error> {
    let experiment = registry.experiment(args.experiment.as_deref())?;
    // The declared hypotheses are checked before anything runs: a bad one is exit code 2.
    let conditions = experiment.condition_names();
    for text in experiment.entry.hypotheses {
        let origin = format!("declared in #[experiment] at {}", experiment.entry.location);
        inspect::checked_hypothesis(text, &origin, experiment.name(), &conditions)?;
    }
    let store = Store::locate(args.store.store.as_deref());
    let origin = origin(invocation);
    let settings = crate::config_file::settings(invocation.app.manifest_dir, registry, experiment)?;
    let (plan, run_dir, forced_drift) = match &args.resume {
        None => start(experiment, args, &settings, &store, &origin)?,
        Some(id) => resume(experiment, args, &settings, &store, id)?,
    };
    let execution = Execution {
        jobs: args.jobs,
        fail_fast: args.fail_fast,
        output,
        store: &store,
        store_flag: store_flag(&args.store),
        forced_drift,
    };
    execute(&plan, &run_dir, &origin, invocation, execution)
}

/// The crate and command line, for the records of a run.
pub(super) fn origin(invocation: &Invocation) -> Origin {
    Origin {
        crate_name: invocation.app.name.to_owned(),
        crate_version: invocation.app.version.to_owned(),
        command: super::command_line(),
    }
}

/// Runs the units of `plan` into the stored run `run_dir` (a session record, its journal and
/// events log), prints the report recomputed from the store (or streams), and says how it went:
/// exit code 0, 1 when a unit failed or the report has problems (a hypothesis that could not be
/// decided, a confirmation that is not valid), 130 when interrupted.
pub(super) fn execute(
    plan: &Plan,
    run_dir: &RunDir,
    origin: &Origin,
    invocation: &Invocation,
    execution: Execution<'_>,
) -> Result<ExitCode, Error> {
    let Execution { jobs, fail_fast, output, store, store_flag, forced_drift } = execution;
    let cancel = Cancel::default();
    install_interrupt_handler();
    let mut journal = recorder::begin_session(run_dir, plan, origin, forced_drift, cancel.clone())?;
    // Beside the journal, the events log: what `watch` follows, and a replay of the run.
    let mut events_log = match EventLog::beside(&journal) {
        Ok(log) => Some(log),
        Err(error) => {
            eprintln!(
                "warning: cannot create the events log of {}: {error}; the run goes on without it",
                run_dir.manifest.run
            );
            None
        }
    };
    let options = RunOptions {
        jobs: jobs.map(|j| j as usize).unwrap_or_else(runner::default_jobs),
        fail_fast,
        live_metrics: true,
        describe_input: false,
        cancel: cancel.clone(),
        artifacts: Some(Arc::new(run_dir.artifacts_dir())),
    };
    let run_id = run_dir.manifest.run.clone();
    let results = match output {
        Output::Stream { events } => {
            let mut stream = StreamWriter::new(run_id.clone(), events, cancel.clone());
            let mut observers: Vec<&mut dyn Observer> = vec![&mut journal];
            observers.extend(events_log.as_mut().map(|log| log as &mut dyn Observer));
            observers.push(&mut stream);
            let results = runner::execute(plan, &options, &mut observers);
            if !stream.closed() {
                stream.summary(&Report::from_store(store, run_dir, &[]));
            }
            results
        }
        Output::Report(_) => {
            let mut progress = Progress::new();
            let mut observers: Vec<&mut dyn Observer> = vec![&mut journal];
            observers.extend(events_log.as_mut().map(|log| log as &mut dyn Observer));
            observers.push(&mut progress);
            runner::execute(plan, &options, &mut observers)
        }
    };
    let journal_error = journal.finish().err();
    if let Some(Err(error)) = events_log.map(EventLog::finish) {
        eprintln!("warning: {error}");
    }
    eprintln!(
        "ran {} units in {:.2} s with {} jobs; stored in {}",
        results.units.len(),
        results.elapsed.as_secs_f64(),
        results.info.jobs,
        run_dir.path().display()
    );
    let report_problems = match output {
        Output::Report(format) => {
            inspect::print_report(store, run_dir, format, &[], &EvalOptions::default()).has_problems()
        }
        Output::Stream { .. } => false,
    };
    super::debug::report_failures(&results.units, &invocation.program, run_dir);

    let stopped_early = results.skipped > 0 && !fail_fast;
    if let Some(error) = journal_error {
        eprintln!("error: {error}");
    }
    // Only a run that stopped early needs its journal read again, to say how to resume it.
    let stopped = (stopped_early || runner::interrupted()).then(|| run_dir.scan());
    if let Some(state) = stopped.filter(|state| state.status() == Status::Incomplete) {
        eprintln!(
            "stopped with {} of {} units done; resume with:\n  {} run {} --resume {}{}",
            state.done(),
            state.planned(),
            super::debug::shell_quote(&invocation.program),
            run_dir.manifest.experiment,
            run_id,
            store_flag
        );
        return Ok(ExitCode::from(if runner::interrupted() { 130 } else { 1 }));
    }
    Ok(if results.failed() > 0 || report_problems { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// ` --store DIR` when `--store` was given, for commands printed to the user.
pub(super) fn store_flag(store: &super::StoreArgs) -> String {
    let quote = |dir: &std::path::Path| super::debug::shell_quote(&dir.display().to_string());
    store.store.as_ref().map(|dir| format!(" --store {}", quote(dir))).unwrap_or_default()
}

/// Plans a new run and writes its manifest.
fn start(
    experiment: &Experiment,
    args: &RunArgs,
    settings: &Settings,
    store: &Store,
    origin: &Origin,
) -> Result<(Plan, RunDir, Vec<String>), Error> {
    let entry = experiment.entry;
    let plan = Plan::new(
        experiment,
        &args.treatments,
        settings.replicates(args.replicates, entry.replicates).value,
        settings.seed(args.seed, entry.seed).value,
        &overrides(settings, &args.sets)?,
    )?;
    let request = Request { treatments: args.treatments.clone(), sets: args.sets.clone() };
    let run_dir = recorder::create_run(store, &plan, request, origin)?;
    Ok((plan, run_dir, Vec::new()))
}

/// Re-plans a stored run with what it was asked for (flags given now take precedence), refuses
/// if its configuration or code drifted (unless `--force`), and skips the units already done.
fn resume(
    experiment: &Experiment,
    args: &RunArgs,
    settings: &Settings,
    store: &Store,
    id: &str,
) -> Result<(Plan, RunDir, Vec<String>), Error> {
    let run_dir = if id.is_empty() { latest_unfinished(experiment, store)? } else { store.run(id)? };
    let manifest = &run_dir.manifest;
    if manifest.experiment != experiment.name() {
        return Err(Error::Store(format!(
            "run {} is a run of experiment '{}', not '{}'",
            manifest.run,
            manifest.experiment,
            experiment.name()
        )));
    }
    // Only which units are done matters here, not their results: the scan reads no more.
    let state = run_dir.scan();
    for warning in &state.warnings {
        eprintln!("warning: {warning}");
    }
    let treatments = if args.treatments.is_empty() { &manifest.request.treatments } else { &args.treatments };
    let sets = if args.sets.is_empty() { &manifest.request.sets } else { &args.sets };
    let seed = args.seed.or_else(|| manifest.config.get("seed").and_then(|s| s.as_u64())).unwrap_or(0);
    let replicates = args.replicates.unwrap_or(state.replicates).max(1);
    let mut plan = Plan::new(experiment, treatments, replicates, seed, &overrides(settings, sets)?)?;
    // A confirmation runs replicate indices from its first one on, not from 0.
    let first = manifest.first_replicate;
    let end = first.checked_add(replicates).ok_or_else(|| {
        Error::Store(format!("run {}: replicates {first} + {replicates} are past the largest index", manifest.run))
    })?;
    plan.replicates = (first..end).collect();
    let drift = manifest::drift(&manifest.config, &manifest::resolved_config(&plan));
    if !drift.is_empty() && !args.force {
        return Err(Error::Drift {
            run: manifest.run.clone(),
            changes: drift.iter().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n"),
        });
    }
    if !drift.is_empty() {
        eprintln!("warning: resuming {} with --force although it changed:", manifest.run);
        for line in &drift {
            eprintln!("  {line}");
        }
    }
    plan.done = state.done_set();
    eprintln!(
        "resuming run {}: {} of {} units already done",
        manifest.run,
        state.done(),
        plan.conditions.len() * plan.replicates.len()
    );
    Ok((plan, run_dir, drift))
}

fn latest_unfinished(experiment: &Experiment, store: &Store) -> Result<RunDir, Error> {
    let (runs, _) = store.runs();
    let mine: Vec<(RunDir, Status)> = runs
        .into_iter()
        .filter(|r| r.manifest.experiment == experiment.name())
        .map(|r| {
            let status = r.scan().status();
            (r, status)
        })
        .collect();
    let known = mine.iter().map(|(r, s)| format!("{} ({s})", r.manifest.run)).collect::<Vec<_>>().join(", ");
    mine.into_iter().rev().find(|(_, status)| *status != Status::Complete).map(|(run, _)| run).ok_or_else(|| {
        Error::NothingToResume {
            experiment: experiment.name().to_owned(),
            store: store.root().display().to_string(),
            known: if known.is_empty() { "none".into() } else { known },
        }
    })
}

/// First Ctrl-C (or SIGTERM): stop scheduling and let the units in flight finish. Second: abort
/// at once; the units in flight are lost and run again on resume.
fn install_interrupt_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            if runner::interrupt() == 1 {
                crate::console::line("\ninterrupted: finishing the units in flight; press Ctrl-C again to abort them");
            } else {
                eprintln!("\naborted; the units in flight will run again on resume");
                std::process::exit(130);
            }
        });
        if let Err(error) = installed {
            eprintln!("warning: cannot handle Ctrl-C ({error}); an interrupt will lose the units in flight");
        }
    });
}
