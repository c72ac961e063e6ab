//! `run` and `stream`: a [`Session`] from the command line's flags (a new run, or a stored one
//! to resume), run with a progress display or a stream printer, then the report recomputed from
//! the store, the failures with the commands that reproduce them, and how to resume a run that
//! stopped early.

use std::process::ExitCode;

use super::progress::Progress;
use super::stream::StreamWriter;
use super::{inspect, RunArgs};
use crate::error::Error;
use crate::events::Observer;
use crate::hypothesis::EvalOptions;
use crate::registry::Registry;
use crate::report::Report;
use crate::runner::{self, Cancel};
use crate::session::{Opened, Session};
use crate::store::recorder::Origin;
use crate::store::{Status, Store};

use super::Invocation;

/// What `run`/`stream` print on stdout.
pub(super) enum Output {
    /// The report at the end: tables, one JSON object, or Markdown.
    Report(inspect::Format),
    /// One JSON line per finished unit (and per event with `events`), then a summary line.
    Stream { events: bool },
}

/// What to print of a run, and where it is stored.
pub(super) struct Execution<'a> {
    /// Stop scheduling new units after the first failure.
    pub fail_fast: bool,
    /// What to print.
    pub output: Output,
    /// The store of the run (for the report).
    pub store: &'a Store,
    /// ` --store DIR` when one was given, for the resume command printed on an interruption.
    pub store_flag: String,
    /// Where to write the HTML report (`run --html FILE`), already checked writable.
    pub html: Option<super::outfile::Target>,
}

pub(super) fn run(
    registry: &Registry,
    args: &RunArgs,
    invocation: &Invocation,
    output: Output,
    html: Option<super::outfile::Target>,
) -> Result<ExitCode, Error> {
    let experiment = registry.experiment(args.experiment.as_deref())?;
    // An output path that cannot be written fails now, not after an hour of units.
    if let Some(target) = &html {
        if matches!(target, super::outfile::Target::Stdout) {
            return Err(Error::BadOption {
                option: "--html".into(),
                value: "-".into(),
                why: "stdout carries the run's report; give a file (report RUN --html - prints the page)".into(),
            });
        }
        target.check("--html")?;
    }
    let store = Store::locate(args.store.store.as_deref());
    let settings = crate::config_file::settings(invocation.app.manifest_dir, registry, experiment)?;
    let mut session = Session::named(experiment.name())
        .treatments(args.treatments.iter().cloned())
        .sets(args.sets.iter().cloned())
        .settings(settings)
        .origin(origin(invocation))
        .store(store.root());
    if let Some(replicates) = args.replicates {
        session = session.replicates(replicates);
    }
    if let Some(seed) = args.seed {
        session = session.seed(seed);
    }
    if let Some(id) = &args.resume {
        session = session.resume(id.clone());
    }
    if args.force {
        session = session.force();
    }
    session = how_units_run(session, args.jobs, args.fail_fast, args.timeout, args.retries);
    if args.retry_panics {
        session = session.retry_panics();
    }
    for (name, capacity) in &args.limits {
        session = session.limit(name.clone(), *capacity);
    }
    let shard = args.shards.shard()?;
    session = args.shards.apply(session)?;
    session = args.sequential.apply(session, args.replicates, args.resume.is_some())?;
    if matches!(output, Output::Stream { .. }) {
        session = session.decision_lines();
    }
    session = args.cache.apply(session);
    let prepared = session.prepare()?;
    for note in &prepared.notes {
        eprintln!("{note}");
    }
    let opened = prepared.open()?;
    if let (true, Some(run_dir)) = (opened.nothing_to_do(), opened.run_dir()) {
        // A complete run or shard resumed (a requeued array task whose work is done): success.
        let what = match shard {
            Some(shard) => format!("shard {shard} of run {}", run_dir.manifest.run),
            None => format!("run {}", run_dir.manifest.run),
        };
        eprintln!("nothing to do: every unit of {what} is done");
        return Ok(ExitCode::SUCCESS);
    }
    let mut store_flag = store_flag(&args.store);
    if let Some(shard) = shard {
        store_flag = format!(" --shard {shard}{store_flag}");
    }
    let execution = Execution { fail_fast: args.fail_fast, output, store: &store, store_flag, html };
    execute(opened, invocation, execution)
}

/// The flags `run`, `stream` and `confirm` share about how units run, given to `session`.
pub(super) fn how_units_run(
    mut session: Session,
    jobs: Option<u64>,
    fail_fast: bool,
    timeout: Option<std::time::Duration>,
    retries: Option<u32>,
) -> Session {
    if let Some(jobs) = jobs {
        session = session.jobs(usize::try_from(jobs).unwrap_or(usize::MAX));
    }
    if fail_fast {
        session = session.fail_fast();
    }
    if let Some(timeout) = timeout {
        session = session.timeout(timeout);
    }
    if let Some(retries) = retries {
        session = session.retries(retries);
    }
    session
}

/// The crate and command line, for the records of a run.
pub(super) fn origin(invocation: &Invocation) -> Origin {
    Origin {
        crate_name: invocation.app.name.to_owned(),
        crate_version: invocation.app.version.to_owned(),
        command: crate::store::recorder::command_line(),
    }
}

/// Runs the units of an opened, stored run, prints the report recomputed from the store (or
/// streams), and says how it went: exit code 0, 1 when a unit failed or the report has problems
/// (a hypothesis that could not be decided, a confirmation that is not valid), 130 when
/// interrupted.
pub(super) fn execute(opened: Opened, invocation: &Invocation, execution: Execution<'_>) -> Result<ExitCode, Error> {
    let Execution { fail_fast, output, store, store_flag, html } = execution;
    let Some(run_dir) = opened.run_dir().cloned() else {
        return Err(Error::Store("the command line stores every run".into()));
    };
    let experiment = opened.plan().experiment.name.to_owned();
    let shard = opened.plan().shard;
    let cancel = Cancel::default();
    install_interrupt_handler();
    let run_id = run_dir.manifest.run.clone();
    // What the stream's summary found wrong (a hypothesis that could not be decided, damage):
    // the same exit code as `run`'s report gives.
    let mut stream_problems = false;
    // The report is recomputed from the store: of this session's results only the failures are
    // needed from here on (to name them), and the cache's counts, which `cache` sums as units
    // finish. Holding every unit until the end was most of the peak memory of a big run.
    let opened = opened.keeping_failures_only();
    let mut cache = super::cache::Tally::default();
    let finished = match output {
        Output::Stream { events } => {
            let mut stream = StreamWriter::new(run_id.clone(), events, cancel.clone());
            let finished = opened.execute(cancel, &mut [&mut stream as &mut dyn Observer, &mut cache])?;
            if !stream.closed() {
                let report = Report::from_store(store, &run_dir, &[]);
                stream.summary(&report);
                stream_problems = report.has_problems();
            }
            finished
        }
        Output::Report(_) => {
            let mut progress = Progress::new();
            opened.execute(cancel, &mut [&mut progress as &mut dyn Observer, &mut cache])?
        }
    };
    let results = &finished.results;
    eprintln!(
        "ran {} units in {:.2} s with {} jobs; stored in {}",
        results.info.units_planned.saturating_sub(results.skipped),
        results.elapsed.as_secs_f64(),
        results.info.jobs,
        run_dir.path().display()
    );
    if let Some(line) = cache.summary_line() {
        eprintln!("{line}");
    }
    let report_problems = match output {
        Output::Report(format) => {
            let report = inspect::print_report(store, &run_dir, format, &[], &EvalOptions::default());
            if let Some(target) = &html {
                super::html::write(&report, &run_dir, &invocation.program, target)?;
            }
            report.has_problems()
        }
        Output::Stream { .. } => stream_problems,
    };
    super::debug::report_failures(&results.units, &invocation.program, &run_dir);

    let decided = finished.sequential.as_ref().is_some_and(|d| d.all_decided) && !runner::interrupted();
    if let Some(decisions) = &finished.sequential {
        eprintln!("{}", super::until_decided::stop_line(decisions));
    }
    let stopped_early = results.skipped > 0 && !fail_fast && !decided;
    for warning in &finished.warnings {
        eprintln!("error: {warning}");
    }
    // A journal that could not be written to the end lost records: their units are not done,
    // whatever ran, so the run is said to be incomplete with its resume command (exit 1).
    let lost = finished.records_lost;
    // Only a run that stopped early needs its journal read again, to say how to resume it.
    let stopped = (stopped_early || lost || runner::interrupted()).then(|| run_dir.scan());
    let ran_through = stopped.is_none();
    if let Some(state) = stopped.filter(|state| matches!(state.status(), Status::Incomplete | Status::Damaged)) {
        eprintln!(
            "stopped with {} of {} units done; resume with:\n  {} run {} --resume {}{}",
            state.done(),
            state.planned(),
            super::debug::shell_quote(&invocation.program),
            experiment,
            run_id,
            store_flag
        );
        return Ok(ExitCode::from(if runner::interrupted() { 130 } else { 1 }));
    }
    if let Some(shard) = shard.filter(|_| ran_through && results.skipped == 0) {
        // This shard is done; the others may not be.
        let state = run_dir.scan();
        if state.status() == Status::Incomplete {
            eprintln!(
                "shard {shard} of run {run_id} is done; the run has {} of {} units: `{} status {run_id}{}` shows \
                 the other shards",
                state.done(),
                state.planned(),
                super::debug::shell_quote(&invocation.program),
                store_flag.strip_prefix(&format!(" --shard {shard}")).unwrap_or(&store_flag),
            );
        }
    }
    Ok(if results.failed() > 0 || report_problems || lost { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// ` --store DIR` when `--store` was given, for commands printed to the user.
pub(super) fn store_flag(store: &super::StoreArgs) -> String {
    let quote = |dir: &std::path::Path| super::debug::shell_quote(&dir.display().to_string());
    store.store.as_ref().map(|dir| format!(" --store {}", quote(dir))).unwrap_or_default()
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
                crate::store::lease::release_all_now();
                std::process::exit(130);
            }
        });
        if let Err(error) = installed {
            eprintln!("warning: cannot handle Ctrl-C ({error}); an interrupt will lose the units in flight");
        }
    });
}
