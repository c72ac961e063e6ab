//! `export RUN --csv FILE | --jsonl FILE [--events]`: a stored run in tidy long format
//! (crate::export), to a file or to stdout (`-`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::outfile::Target;
use super::StoreArgs;
use crate::error::Error;
use crate::export::Export;
use crate::report::stored_results;
use crate::store::Store;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("format").required(true).multiple(true).args(["csv", "jsonl"])))]
pub(super) struct ExportArgs {
    /// The run id (a unique prefix is enough).
    run: String,
    /// Write CSV to FILE (`-`: stdout): one row per unit and metric.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Write JSON Lines to FILE (`-`: stdout): one object per unit and metric.
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
    /// Also the events the units emitted, one row each (with a `type` column: metric or event).
    #[arg(long)]
    events: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub(super) fn export(args: &ExportArgs) -> Result<ExitCode, Error> {
    let csv = args.csv.as_deref().map(Target::of);
    let jsonl = args.jsonl.as_deref().map(Target::of);
    if matches!((&csv, &jsonl), (Some(Target::Stdout), Some(Target::Stdout))) {
        return Err(Error::BadOption {
            option: "--csv/--jsonl".into(),
            value: "-".into(),
            why: "both cannot go to stdout; give one of them a file".into(),
        });
    }
    let store = Store::locate(args.store.store.as_deref());
    let run = store.run(&args.run)?;
    for (target, flag) in [(&csv, "--csv"), (&jsonl, "--jsonl")] {
        if let Some(target) = target {
            target.check(flag)?;
        }
    }
    let (state, units) = run.results();
    for warning in &state.warnings {
        eprintln!("warning: {warning}");
    }
    let results = stored_results(&run, &state, units);
    let loaded = args.events.then(|| crate::store::events::read_all(run.path()));
    if let Some(loaded) = &loaded {
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
    }
    let export = Export {
        run: &run.manifest.run,
        experiment: &run.manifest.experiment,
        units: &results.units,
        events: loaded.as_ref().map(|l| l.lines.as_slice()),
    };
    if let Some(target) = &csv {
        target.write("--csv", |out| export.write_csv(out))?;
    }
    if let Some(target) = &jsonl {
        target.write("--jsonl", |out| export.write_jsonl(out))?;
    }
    Ok(ExitCode::SUCCESS)
}
