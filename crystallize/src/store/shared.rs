//! One run directory written by several processes at once (the shards of a run on a shared file
//! system): the run id every shard is given, and the manifest created exactly once, by whichever
//! shard comes first.
//!
//! The manifest is written whole to a temporary file of the creating process and hard-linked to
//! `manifest.json`: `link(2)` fails when the name exists (atomically, also on NFS), so exactly one
//! process creates it and every reader sees either no manifest or all of it. The others read the
//! one that won and compare it with their own plan ([`join_differences`]).

use super::manifest::{self, Manifest};
use super::{io_error, RunDir, Store};
use crate::error::Error;

/// The longest run id `--run-id` accepts.
pub const MAX_RUN_ID: usize = 128;

/// Checks a run id given by the user (`--run-id`): it names a directory, so 1 to
/// [`MAX_RUN_ID`] of ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn check_run_id(id: &str) -> Result<(), Error> {
    let bad = |why: &str| Error::BadOption { option: "--run-id".into(), value: format!("'{id}'"), why: why.into() };
    if id.is_empty() || id.len() > MAX_RUN_ID {
        return Err(bad("a run id is 1 to 128 characters"));
    }
    if id.starts_with('.') || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(bad(
            "a run id is made of ASCII letters, digits, '-', '_' and '.', and does not start with '.' (e.g. sweep-2026-03)",
        ));
    }
    Ok(())
}

/// What [`create_or_open`] found.
pub enum Created {
    /// This process created the run.
    New(RunDir),
    /// The run existed (another shard created it first).
    Existing(RunDir),
}

/// Creates the run of `manifest` in `store` unless a run with its id exists; then opens that one.
pub fn create_or_open(store: &Store, manifest: &Manifest) -> Result<Created, Error> {
    let path = store.runs_dir().join(&manifest.run);
    std::fs::create_dir_all(&path).map_err(|e| io_error(&path, "create", e))?;
    let target = path.join("manifest.json");
    let temporary = path.join(format!(".manifest.json.{}.tmp", super::writer_id()));
    let text =
        serde_json::to_vec_pretty(manifest).map_err(|e| io_error(&target, "serialize", std::io::Error::other(e)))?;
    std::fs::write(&temporary, text).map_err(|e| io_error(&temporary, "write", e))?;
    let linked = std::fs::hard_link(&temporary, &target);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(Created::New(RunDir { path, manifest: manifest.clone() })),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(Created::Existing(RunDir::open(&path)?)),
        Err(error) => Err(io_error(&target, "create", error)),
    }
}

/// The run directory of exactly `id` in `store`, if it has a manifest (no prefix matching: a
/// shared run id names one run).
pub fn existing(store: &Store, id: &str) -> Result<Option<RunDir>, Error> {
    let path = store.runs_dir().join(id);
    if path.join("manifest.json").exists() {
        RunDir::open(&path).map(Some)
    } else {
        Ok(None)
    }
}

/// What differs between a run's stored manifest and the one a joining process would have
/// created: its configuration and code ([`manifest::drift`]), the experiment, replicates and
/// requested treatments and overrides. Empty when it may join.
pub fn join_differences(stored: &Manifest, mine: &Manifest) -> Vec<String> {
    let mut changes = Vec::new();
    if stored.experiment != mine.experiment {
        changes.push(format!("experiment: {} -> {}", stored.experiment, mine.experiment));
    }
    if (stored.first_replicate, stored.replicates) != (mine.first_replicate, mine.replicates) {
        changes.push(format!(
            "replicates: {}..{} -> {}..{}",
            stored.first_replicate,
            stored.first_replicate.saturating_add(stored.replicates),
            mine.first_replicate,
            mine.first_replicate.saturating_add(mine.replicates)
        ));
    }
    if stored.request != mine.request {
        changes.push(format!(
            "asked for: treatments {:?}, --set {:?} -> treatments {:?}, --set {:?}",
            stored.request.treatments, stored.request.sets, mine.request.treatments, mine.request.sets
        ));
    }
    changes.extend(manifest::drift(&stored.config, &mine.config));
    changes
}
