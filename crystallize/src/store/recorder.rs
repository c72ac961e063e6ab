//! Starting to record: a new run (manifest) and, for every process that runs units of a run, a
//! session record and its own journal. Used by the command line and by library callers alike.

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

/// Creates a new run of `plan` in `store`: its directory and manifest.
pub fn create_run(store: &Store, plan: &Plan, request: Request, origin: &Origin) -> Result<RunDir, Error> {
    let (created, nanos) = time::now();
    let manifest = Manifest {
        schema: SCHEMA,
        run: new_run_id(plan.experiment.name),
        experiment: plan.experiment.name.to_owned(),
        created: time::rfc3339_millis(created, nanos),
        command: origin.command.clone(),
        replicates: plan.replicates.len() as u64,
        request,
        config: manifest::resolved_config(plan),
        versions: Versions {
            crate_name: origin.crate_name.clone(),
            crate_version: origin.crate_version.clone(),
            crystallize: env!("CARGO_PKG_VERSION").to_owned(),
        },
        git: git_state(),
        host: host_name(),
    };
    store.create_run(&manifest)
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
    let writer = writer_id();
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
    })?;
    let path = run.journal_path(&writer);
    JournalWriter::create(path.clone(), cancel)
        .map_err(|e| Error::Store(format!("cannot create the journal {}: {e}", path.display())))
}
