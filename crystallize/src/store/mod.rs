//! The run store: where runs live and how they are laid out on disk. The layout is a public
//! format, documented in `docs/STORE.md`:
//!
//! ```text
//! <store>/runs/<run id>/manifest.json             written once (by rename) before the first unit
//! <store>/runs/<run id>/session-<writer>.json     one per process that ran units, written once
//! <store>/runs/<run id>/journal-<writer>.jsonl    append-only, one line per finished unit
//! <store>/runs/<run id>/events-<writer>.jsonl     append-only, unit starts and ends and events
//! <store>/runs/<run id>/preregistration.json      a confirmation's hypothesis, written once first
//! <store>/runs/<run id>/artifacts/<condition>/<replicate>/<name>
//! ```
//!
//! Every file has a single writer. A run's status is derived from what is on disk, never stored.

pub mod events;
pub mod journal;
pub mod manifest;
pub mod preregistration;
pub mod recorder;
pub mod time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{suggest, Error};
use crate::plan::DoneUnits;
use crate::runner::{UnitResult, UnitStatus};
use manifest::{Manifest, Session};

/// The environment variable naming the store directory.
pub const STORE_ENV: &str = "CRYSTALLIZE_STORE";

/// The store directory when neither `--store` nor `CRYSTALLIZE_STORE` names one.
pub const DEFAULT_DIR: &str = ".crystallize";

/// A store directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// `--store DIR` if given, else `$CRYSTALLIZE_STORE`, else `.crystallize/` in the working
    /// directory (never under `target/`, which `cargo clean` deletes).
    pub fn locate(explicit: Option<&Path>) -> Store {
        let root = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(STORE_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        Store { root }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// Creates the directory of a new run and writes its manifest.
    pub fn create_run(&self, manifest: &Manifest) -> Result<RunDir, Error> {
        let path = self.runs_dir().join(&manifest.run);
        std::fs::create_dir_all(&path).map_err(|e| io_error(&path, "create", e))?;
        write_once(&path.join("manifest.json"), manifest)?;
        Ok(RunDir { path, manifest: manifest.clone() })
    }

    /// Every run in the store, oldest first. Directories without a readable manifest are
    /// reported in the returned warnings, not silently skipped.
    pub fn runs(&self) -> (Vec<RunDir>, Vec<String>) {
        let mut runs = Vec::new();
        let mut warnings = Vec::new();
        let entries = match std::fs::read_dir(self.runs_dir()) {
            Ok(entries) => entries,
            Err(_) => return (runs, warnings),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            match RunDir::open(&path) {
                Ok(run) => runs.push(run),
                Err(error) => warnings.push(error.to_string()),
            }
        }
        runs.sort_by(|a, b| (&a.manifest.created, &a.manifest.run).cmp(&(&b.manifest.created, &b.manifest.run)));
        (runs, warnings)
    }

    /// The run with this id (a unique prefix is enough).
    pub fn run(&self, id: &str) -> Result<RunDir, Error> {
        let (runs, _) = self.runs();
        let exact = runs.iter().position(|r| r.manifest.run == id);
        let prefixed: Vec<usize> =
            runs.iter().enumerate().filter(|(_, r)| r.manifest.run.starts_with(id)).map(|(i, _)| i).collect();
        let index = match (exact, prefixed.as_slice()) {
            (Some(index), _) | (None, &[index]) => index,
            _ => {
                let ids: Vec<&str> = runs.iter().map(|r| r.manifest.run.as_str()).collect();
                return Err(Error::UnknownRun {
                    id: id.to_owned(),
                    store: self.root.display().to_string(),
                    suggestion: suggest(id, &ids),
                    known: if ids.is_empty() { "(none)".into() } else { ids.join(", ") },
                });
            }
        };
        Ok(runs.into_iter().nth(index).expect("index comes from this list"))
    }
}

/// Writes `value` as pretty JSON to `path` through a temporary file and a rename, so readers see
/// either nothing or the whole file.
fn write_once(path: &Path, value: &impl Serialize) -> Result<(), Error> {
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).map_err(|e| io_error(path, "serialize", std::io::Error::other(e)))?;
    std::fs::write(&temporary, text).map_err(|e| io_error(&temporary, "write", e))?;
    std::fs::rename(&temporary, path).map_err(|e| io_error(path, "rename into", e))
}

fn io_error(path: &Path, action: &str, error: std::io::Error) -> Error {
    Error::Store(format!("cannot {action} {}: {error}", path.display()))
}

/// A run's directory and its manifest.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
}

/// Where a run stands, derived from its files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every planned unit has a successful record.
    Complete,
    /// Every planned unit has a record, and some of the latest are failures.
    Failed,
    /// Some planned units have no record yet (interrupted, or still running).
    Incomplete,
}

impl Status {
    /// The status of a run of `planned` units, `done` of them successful and `recorded` of them
    /// with any record.
    fn of(done: usize, recorded: usize, planned: usize) -> Status {
        if done >= planned {
            Status::Complete
        } else if recorded >= planned {
            Status::Failed
        } else {
            Status::Incomplete
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Complete => "complete",
            Status::Failed => "complete with failures",
            Status::Incomplete => "incomplete",
        })
    }
}

/// A run's units as the store knows them.
#[derive(Clone, Debug)]
pub struct RunState {
    /// The conditions, in manifest order.
    pub conditions: Vec<String>,
    /// Replicates per condition, the most any session planned.
    pub replicates: u64,
    /// The first planned replicate index (0 but for a confirmation): the planned replicates are
    /// `first_replicate..first_replicate + replicates`.
    pub first_replicate: u64,
    /// Per unit (condition, replicate): its first successful record, or else its latest failure.
    pub units: BTreeMap<(usize, u64), UnitResult>,
    /// Damage found while reading.
    pub warnings: Vec<String>,
}

impl RunState {
    /// Units planned.
    pub fn planned(&self) -> usize {
        self.conditions.len() * self.replicates as usize
    }

    /// Units with a successful record.
    pub fn done(&self) -> usize {
        self.units.values().filter(|u| u.status == UnitStatus::Ok).count()
    }

    /// Units whose latest record is a failure.
    pub fn failed(&self) -> usize {
        self.units.values().filter(|u| u.status != UnitStatus::Ok).count()
    }

    /// The planned replicate indices.
    pub fn replicate_range(&self) -> std::ops::Range<u64> {
        self.first_replicate..self.first_replicate + self.replicates
    }

    /// The run's status.
    pub fn status(&self) -> Status {
        let range = self.replicate_range();
        let planned_with_records = self.units.keys().filter(|(_, r)| range.contains(r)).count();
        Status::of(self.done(), planned_with_records, self.planned())
    }

    /// `(condition, replicate)` of every unit with a successful record.
    pub fn done_set(&self) -> DoneUnits {
        let mut done = DoneUnits::default();
        for (index, condition) in self.conditions.iter().enumerate() {
            let ok = self.units.range((index, 0)..=(index, u64::MAX)).filter(|(_, u)| u.status == UnitStatus::Ok);
            done.extend(condition, ok.map(|((_, replicate), _)| *replicate));
        }
        done
    }

    /// The units, in plan order (condition, then replicate).
    pub fn results(&self) -> Vec<UnitResult> {
        self.units.values().cloned().collect()
    }
}

/// A run's units as resuming it needs them: which have a successful record and which only
/// failures, without the results themselves (see [`RunDir::scan`]).
#[derive(Clone, Debug)]
pub struct RunScan {
    /// The conditions, in manifest order.
    pub conditions: Vec<String>,
    /// Replicates per condition, the most any session planned.
    pub replicates: u64,
    /// The first planned replicate index (see [`RunState::first_replicate`]).
    pub first_replicate: u64,
    /// Per condition, in manifest order: every replicate with a record, sorted, without repeats,
    /// and whether it has a successful one (a success stands over any failure).
    units: Vec<Vec<(u64, bool)>>,
    /// Damage found while reading: the same as [`RunState::warnings`].
    pub warnings: Vec<String>,
}

impl RunScan {
    /// Units planned.
    pub fn planned(&self) -> usize {
        self.conditions.len() * self.replicates as usize
    }

    /// Units with a successful record.
    pub fn done(&self) -> usize {
        self.units.iter().flatten().filter(|(_, ok)| *ok).count()
    }

    /// Units whose latest record is a failure.
    pub fn failed(&self) -> usize {
        self.units.iter().flatten().filter(|(_, ok)| !ok).count()
    }

    /// The planned replicate indices.
    pub fn replicate_range(&self) -> std::ops::Range<u64> {
        self.first_replicate..self.first_replicate + self.replicates
    }

    /// The replicate indices that have any record, from the lowest to one past the highest;
    /// `None` before the first record.
    pub fn recorded_range(&self) -> Option<std::ops::Range<u64>> {
        // Each condition's list is sorted: its ends are its lowest and highest.
        let low = self.units.iter().filter_map(|units| units.first()).map(|(r, _)| *r).min()?;
        let high = self.units.iter().filter_map(|units| units.last()).map(|(r, _)| *r).max()?;
        Some(low..high + 1)
    }

    /// The run's status: the same as [`RunState::status`].
    pub fn status(&self) -> Status {
        let range = self.replicate_range();
        let planned_with_records = self.units.iter().flatten().filter(|(r, _)| range.contains(r)).count();
        Status::of(self.done(), planned_with_records, self.planned())
    }

    /// `(condition, replicate)` of every unit with a successful record: the same as
    /// [`RunState::done_set`].
    pub fn done_set(&self) -> DoneUnits {
        let mut done = DoneUnits::default();
        for (condition, units) in self.conditions.iter().zip(&self.units) {
            done.extend(condition, units.iter().filter(|(_, ok)| *ok).map(|(replicate, _)| *replicate));
        }
        done
    }
}

impl RunDir {
    /// Opens the run directory at `path`.
    pub fn open(path: &Path) -> Result<RunDir, Error> {
        let manifest_path = path.join("manifest.json");
        let text = std::fs::read(&manifest_path).map_err(|e| io_error(&manifest_path, "read", e))?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| Error::Store(format!("{} is not a valid manifest: {e}", manifest_path.display())))?;
        Ok(RunDir { path: path.to_path_buf(), manifest })
    }

    /// The run's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal file of `writer`.
    pub fn journal_path(&self, writer: &str) -> PathBuf {
        self.path.join(format!("journal-{writer}.jsonl"))
    }

    /// Where the artifacts of this run go.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.path.join("artifacts")
    }

    /// Records that a process is about to run units of this run.
    pub fn write_session(&self, session: &Session) -> Result<(), Error> {
        write_once(&self.path.join(format!("session-{}.json", session.writer)), session)
    }

    /// Every session record, oldest first; unreadable ones become warnings.
    pub fn sessions(&self) -> (Vec<Session>, Vec<String>) {
        let mut sessions = Vec::new();
        let mut warnings = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.path) else { return (sessions, warnings) };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("session-") && n.ends_with(".json"))
            })
            .collect();
        paths.sort();
        for path in paths {
            match std::fs::read(&path).ok().and_then(|t| serde_json::from_slice::<Session>(&t).ok()) {
                Some(session) => sessions.push(session),
                None => warnings.push(format!("{} is not a valid session record; ignored", path.display())),
            }
        }
        (sessions, warnings)
    }

    /// The conditions of the run, in manifest order.
    pub fn conditions(&self) -> Vec<String> {
        self.manifest
            .config
            .get("conditions")
            .and_then(|c| c.as_object())
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Replicates per condition, the most any session planned, and the sessions' warnings: from
    /// the manifest and sessions only, without reading the journals.
    pub fn planned_replicates(&self) -> (u64, Vec<String>) {
        let (sessions, warnings) = self.sessions();
        let replicates =
            sessions.iter().map(|s| s.replicates).chain(std::iter::once(self.manifest.replicates)).max().unwrap_or(0);
        (replicates, warnings)
    }

    /// Reads the journals and derives whether each unit is done, failed or has no record, as
    /// [`RunDir::state`] does (same units, same warnings) but without reading the results
    /// themselves: what `run --resume` needs, several times faster on a big run.
    pub fn scan(&self) -> RunScan {
        let conditions = self.conditions();
        let (replicates, mut warnings) = self.planned_replicates();
        let scanned = journal::scan_all(&self.path, &conditions);
        warnings.extend(scanned.warnings);
        for name in scanned.other_conditions {
            warnings.push(format!("a record of condition '{name}' is not part of run {}; ignored", self.manifest.run));
        }
        let mut units = scanned.units;
        for units in &mut units {
            // A success sorts before the failures of its unit, and the first record of each unit
            // is kept: a unit is done if any of its records is a success, as in `state`.
            units.sort_unstable_by_key(|&(replicate, ok)| (replicate, !ok));
            units.dedup_by_key(|(replicate, _)| *replicate);
        }
        RunScan { conditions, replicates, first_replicate: self.manifest.first_replicate, units, warnings }
    }

    /// Reads the journals and derives the state of every unit.
    pub fn state(&self) -> RunState {
        let conditions = self.conditions();
        let (replicates, mut warnings) = self.planned_replicates();
        let loaded = journal::read_all(&self.path);
        warnings.extend(loaded.warnings);
        let mut units: BTreeMap<(usize, u64), UnitResult> = BTreeMap::new();
        for unit in loaded.units {
            let Some(index) = conditions.iter().position(|c| *c == unit.condition) else {
                warnings.push(format!(
                    "a record of condition '{}' is not part of run {}; ignored",
                    unit.condition, self.manifest.run
                ));
                continue;
            };
            let key = (index, unit.replicate);
            match units.get(&key) {
                // The first success stands; a later success of the same unit is a duplicate.
                Some(existing) if existing.status == UnitStatus::Ok => {}
                _ => {
                    units.insert(key, unit);
                }
            }
        }
        RunState { conditions, replicates, first_replicate: self.manifest.first_replicate, units, warnings }
    }
}

/// A writer id: start time first, so that ids sort chronologically, then the process id.
pub fn writer_id() -> String {
    let (secs, nanos) = time::now();
    format!("{}-{nanos:09}-{}", time::compact(secs), std::process::id())
}

/// A new run id: `<experiment>-<utc time>-<4 hex digits>`.
pub fn new_run_id(experiment: &str) -> String {
    let (secs, nanos) = time::now();
    let salt = crate::seed::mix(u64::from(nanos) ^ (u64::from(std::process::id()) << 32)) & 0xffff;
    format!("{experiment}-{}-{salt:04x}", time::compact(secs))
}

/// The host's name, for records.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// `HEAD` and whether the work tree is dirty, when the working directory is in a git repository
/// and git is installed.
pub fn git_state() -> Option<manifest::GitState> {
    use std::process::{Command, Stdio};
    let start = |args: &[&str]| {
        Command::new("git").args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()
    };
    let output = |child: Option<std::process::Child>| {
        child
            .and_then(|child| child.wait_with_output().ok())
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    // Both at once: together they are most of the time it takes to start a stored run.
    let commit = start(&["rev-parse", "HEAD"]);
    let status = start(&["status", "--porcelain", "--untracked-files=no"]);
    let commit = output(commit);
    let dirty = output(status).is_some_and(|s| !s.is_empty());
    Some(manifest::GitState { commit: commit?, dirty })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Observer;
    use crate::runner::{Cancel, UnitError};
    use crate::store::journal::JournalWriter;

    fn unit(condition: &str, replicate: u64, ok: bool) -> UnitResult {
        UnitResult {
            experiment: "e".into(),
            condition: condition.into(),
            replicate,
            seed: 7,
            status: if ok { UnitStatus::Ok } else { UnitStatus::Error },
            error: (!ok).then(|| UnitError { message: "boom".into(), location: None }),
            metrics: [("win", 1.0)].into(),
            records: Vec::new(),
            duration_ms: 0.5,
        }
    }

    fn run_with(units: &[&[UnitResult]], first_replicate: u64) -> (tempfile::TempDir, RunDir) {
        let dir = tempfile::tempdir().unwrap();
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "schema": 1, "run": "r", "experiment": "e", "created": "now", "command": [],
            "replicates": 4, "first_replicate": first_replicate, "request": {"treatments": [], "sets": []},
            "config": {"conditions": {"baseline": {}, "loaded": {}}},
            "versions": {"crate_name": "c", "crate_version": "1", "crystallize": "1"},
            "git": null, "host": "h"
        }))
        .unwrap();
        let run = Store::locate(Some(dir.path())).create_run(&manifest).unwrap();
        for (writer, units) in units.iter().enumerate() {
            let mut journal = JournalWriter::create(run.journal_path(&writer.to_string()), Cancel::default()).unwrap();
            for u in *units {
                journal.unit_finished(u);
            }
            journal.finish().unwrap();
        }
        (dir, run)
    }

    fn assert_scan_agrees(run: &RunDir) -> RunScan {
        let (state, scan) = (run.state(), run.scan());
        assert_eq!(scan.conditions, state.conditions);
        assert_eq!((scan.replicates, scan.first_replicate), (state.replicates, state.first_replicate));
        assert_eq!((scan.planned(), scan.done(), scan.failed()), (state.planned(), state.done(), state.failed()));
        assert_eq!(scan.status(), state.status());
        assert_eq!(scan.done_set(), state.done_set());
        assert_eq!(scan.warnings, state.warnings);
        let recorded: Vec<u64> = state.units.keys().map(|(_, replicate)| *replicate).collect();
        let expected = recorded.iter().min().map(|low| *low..recorded.iter().max().unwrap() + 1);
        assert_eq!(scan.recorded_range(), expected);
        scan
    }

    #[test]
    fn a_scan_derives_what_the_state_derives() {
        let (b, l) = ("baseline", "loaded");
        let first = [unit(b, 3, false), unit(b, 0, true), unit(l, 1, true), unit(b, 1, false), unit("gone", 0, true)];
        let second = [unit(b, 3, true), unit(b, 1, false), unit(l, 1, false), unit(b, 0, true), unit(l, 9, true)];
        let (_dir, run) = run_with(&[&first, &second], 0);
        let scan = assert_scan_agrees(&run);
        assert_eq!((scan.done(), scan.failed(), scan.status()), (4, 1, Status::Incomplete));
        let done = scan.done_set();
        assert_eq!(done.iter().collect::<Vec<_>>(), [(b, 0), (b, 3), (l, 1), (l, 9)]);
        assert_eq!(scan.warnings.len(), 1, "{:?}", scan.warnings);

        let all: Vec<UnitResult> = (0..4).flat_map(|r| [unit(b, r, r != 2), unit(l, r, true)]).collect();
        let (_dir, run) = run_with(&[&all], 0);
        assert_eq!(assert_scan_agrees(&run).status(), Status::Failed);
        let (_dir, run) = run_with(&[&all, &[unit(b, 2, true)]], 0);
        assert_eq!(assert_scan_agrees(&run).status(), Status::Complete);
        let (_dir, run) = run_with(&[&all], 2);
        assert_eq!(assert_scan_agrees(&run).status(), Status::Incomplete);
        let (_dir, run) = run_with(&[], 0);
        assert_eq!(assert_scan_agrees(&run).status(), Status::Incomplete);
    }
}
