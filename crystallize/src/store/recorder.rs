//! Starting to record: a new run (manifest) and, for every process that runs units of a run, a
//! session record and its own journal. Used by the command line and by library callers alike.

use super::exit_guard::ExitGuard;
use super::journal::JournalWriter;
use super::manifest::{self, Manifest, Request, Session, Versions, SCHEMA};
use super::{git_state, host_name, new_run_id, time, writer_id, RunDir, Store};
use crate::error::Error;
use crate::plan::Plan;
use crate::runner::Cancel;

/// The crate whose experiments run, for the manifest.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The experiments crate's name.
    pub crate_name: String,
    /// Its version.
    pub crate_version: String,
    /// The command line (or a description of the caller).
    pub command: Vec<String>,
}

/// The process's command line, for records and messages: `std::env::args` panics on an argument
/// that is not UTF-8 (a `--store` path may be any bytes), so such bytes are shown lossily.
pub fn command_line() -> Vec<String> {
    std::env::args_os().map(|arg| arg.to_string_lossy().into_owned()).collect()
}

/// Creates a new run of `plan` in `store`: its directory and manifest. The manifest records the
/// experiment's declared hypotheses that concern the plan's conditions (see
/// [`applicable_hypotheses`]), which its report decides.
pub fn create_run(store: &Store, plan: &Plan, request: Request, origin: &Origin) -> Result<RunDir, Error> {
    store.create_run(&new_manifest(plan, request, origin, applicable_hypotheses(plan))?)
}

/// The declared hypotheses of `plan`'s experiment whose two conditions are both part of the
/// plan (written `COND` or `EXPERIMENT/COND`), in declared order. A hypothesis that does not parse
/// is kept, so that its report says what is wrong with it rather than dropping it silently.
pub fn applicable_hypotheses(plan: &Plan) -> Vec<String> {
    let experiment = plan.experiment.name;
    let in_plan = |condition: &str| {
        let bare = crate::hypothesis::bare_condition(condition, experiment);
        plan.conditions.iter().any(|c| *c.name == *bare)
    };
    plan.experiment
        .hypotheses
        .iter()
        .filter(|text| match crate::hypothesis::parse(text) {
            Ok(hypothesis) => hypothesis.conditions().iter().all(|c| in_plan(c)),
            Err(_) => true,
        })
        .map(|text| (*text).to_owned())
        .collect()
}

/// The manifest of a new run of `plan` (a fresh run id, the time, the resolved configuration,
/// versions, git state, host), recording `hypotheses` for its report; not yet written. The
/// run's replicate indices are `plan.replicates`, which must be consecutive: the manifest
/// stores the first and the count. A caller may adjust it (a confirmation adds the digest of its
/// pre-registration) before [`Store::create_run`] writes it.
pub fn new_manifest(
    plan: &Plan,
    request: Request,
    origin: &Origin,
    hypotheses: Vec<String>,
) -> Result<Manifest, Error> {
    let first_replicate = plan.replicates.first().copied().unwrap_or(0);
    let consecutive = plan.replicates.iter().enumerate().all(|(k, r)| *r == first_replicate + k as u64);
    if !consecutive {
        return Err(Error::Store(format!(
            "a stored run's replicate indices must be consecutive; this plan has {:?}",
            plan.replicates
        )));
    }
    let (created, nanos) = time::now();
    Ok(Manifest {
        schema: SCHEMA,
        run: new_run_id(plan.experiment.name),
        experiment: plan.experiment.name.to_owned(),
        created: time::rfc3339_millis(created, nanos),
        command: origin.command.clone(),
        replicates: plan.replicates.len() as u64,
        first_replicate,
        request,
        config: manifest::resolved_config(plan),
        versions: Versions {
            crate_name: origin.crate_name.clone(),
            crate_version: origin.crate_version.clone(),
            crystallize: env!("CARGO_PKG_VERSION").to_owned(),
        },
        git: git_state(),
        host: host_name(),
        hypotheses,
        preregistration: None,
        shards: None,
        stopping: None,
    })
}

/// Records that this process is about to run `plan`'s units of `run` (with the drift it was
/// forced through, if any) and opens its journal. A journal write error cancels through `cancel`.
pub fn begin_session(
    run: &RunDir,
    plan: &Plan,
    origin: &Origin,
    forced_drift: Vec<String>,
    cancel: Cancel,
) -> Result<JournalWriter, Error> {
    begin_session_as(run, plan, origin, forced_drift, cancel, &writer_id(), None)
}

/// [`begin_session`] as writer `writer` (the id its lease holds), running `shard` of the run
/// (`None`: every unit).
pub fn begin_session_as(
    run: &RunDir,
    plan: &Plan,
    origin: &Origin,
    forced_drift: Vec<String>,
    cancel: Cancel,
    writer: &str,
    shard: Option<crate::shard::Shard>,
) -> Result<JournalWriter, Error> {
    let writer = writer.to_owned();
    let (started, nanos) = time::now();
    run.write_session(&Session {
        schema: SCHEMA,
        writer: writer.clone(),
        started: time::rfc3339_millis(started, nanos),
        command: origin.command.clone(),
        replicates: plan.replicates.len() as u64,
        forced: !forced_drift.is_empty(),
        drift: forced_drift,
        host: host_name(),
        shard: shard.map(|shard| shard.to_string()),
    })?;
    let path = run.journal_path(&writer);
    let journal = JournalWriter::create(path.clone(), cancel)
        .map_err(|e| Error::Store(format!("cannot create the journal {}: {e}", path.display())))?;
    // Until the journal is finished, a unit calling `std::process::exit` must not end the
    // process with its code (0 would say the run succeeded): see `exit_guard`.
    let program = origin.command.first().map(String::as_str).unwrap_or(plan.experiment.name);
    let store = run.path().parent().and_then(|runs| runs.parent()).unwrap_or(run.path());
    let resume = format!(
        "{} run {} --resume {}{} --store {}",
        shell_word(program),
        plan.experiment.name,
        run.manifest.run,
        shard.map(|shard| format!(" --shard {shard}")).unwrap_or_default(),
        shell_word(&store.display().to_string()),
    );
    let message = format!(
        "the process was ended by a call to std::process::exit while run {id} was running, so the run is \
         incomplete (units in flight, and finished ones not yet written, are not done); resume it with:\n  {resume}",
        id = run.manifest.run,
    );
    Ok(journal.with_exit_guard(ExitGuard::arm(message, resume)))
}

/// `text` as one POSIX shell word, for a command the user may paste: unchanged when plain,
/// single-quoted otherwise (the rule of the command line's other printed commands).
fn shell_word(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.=/:,+@".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
