//! The run store: where runs live and how they are laid out on disk. The layout is a public
//! format, documented in `docs/STORE.md`:
//!
//! ```text
//! <store>/runs/<run id>/manifest.json             written once (by rename) before the first unit
//! <store>/runs/<run id>/session-<writer>.json     one per process that ran units, written once
//! <store>/runs/<run id>/journal-<writer>.jsonl    append-only, one line per finished unit
//! <store>/runs/<run id>/events-<writer>.jsonl     append-only, unit starts and ends and events
//! <store>/runs/<run id>/preregistration.json      a confirmation's hypothesis, written once first
//! <store>/runs/<run id>/lease-<I>-of-<N>.json     who runs shard I of N now (heartbeat), while it does
//! <store>/runs/<run id>/artifacts/<condition>/<replicate>/<name>
//! ```
//!
//! Every file has a single writer. A run's status is derived from what is on disk, never stored.

#[doc(hidden)]
pub mod events;
#[doc(hidden)]
pub mod exit_guard;
pub(crate) mod integrity;
#[doc(hidden)]
pub mod journal;
#[doc(hidden)]
pub mod lease;
#[doc(hidden)]
pub mod manifest;
#[doc(hidden)]
pub mod preregistration;
#[doc(hidden)]
pub mod recorder;
#[doc(hidden)]
pub mod shared;
#[doc(hidden)]
pub mod stops;
#[doc(hidden)]
pub mod time;

/// How a unit's seed derives from the run's seed: part of the stored format (a journal record
/// whose seed is not the one its replicate derives is rejected).
pub use crate::seed::{unit_seed, SeedPolicy};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{suggest, Error};
use crate::plan::{DoneUnits, MAX_REPLICATES};
use crate::runner::{UnitResult, UnitStatus};
use crate::unit_table::UnitTable;
use journal::LineAt;
use manifest::{Manifest, Session, SCHEMA};

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

    /// Every run in the store, oldest first, and the run directories that cannot be read, each
    /// with why. A store directory that does not exist yet has no runs; one that is not a
    /// directory or cannot be read is an error (exit code 2), not an empty store.
    pub fn list(&self) -> Result<Listing, Error> {
        let mut listing = Listing::default();
        match std::fs::metadata(&self.root) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
            Err(error) => return Err(io_error(&self.root, "read the store", error)),
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::Store(format!(
                    "the store {} is not a directory; --store and CRYSTALLIZE_STORE must name a directory \
                     (it is created by the first run)",
                    self.root.display()
                )))
            }
            Ok(_) => {}
        }
        let runs_dir = self.runs_dir();
        let entries = match std::fs::read_dir(&runs_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
            Err(error) => return Err(io_error(&runs_dir, "read the store's runs in", error)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&runs_dir, "read the store's runs in", e))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            match RunDir::open(&path) {
                Ok(run) => listing.runs.push(run),
                Err(error) => listing.damaged.push(DamagedRun {
                    id: entry.file_name().to_string_lossy().into_owned(),
                    path,
                    reason: match error {
                        Error::Store(reason) => reason,
                        other => other.to_string(),
                    },
                }),
            }
        }
        listing
            .runs
            .sort_by(|a, b| (&a.manifest.created, &a.manifest.run).cmp(&(&b.manifest.created, &b.manifest.run)));
        listing.damaged.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(listing)
    }

    /// Every run in the store, oldest first. Run directories that cannot be read, and a store
    /// that cannot be read at all, are reported in the returned warnings, not silently skipped.
    pub fn runs(&self) -> (Vec<RunDir>, Vec<String>) {
        match self.list() {
            Ok(listing) => (listing.runs, listing.damaged.into_iter().map(|d| d.reason).collect()),
            Err(error) => (Vec::new(), vec![error.to_string()]),
        }
    }

    /// The run with this id; a prefix is enough when exactly one run's id starts with it. An
    /// ambiguous prefix is an error listing the candidates, and a damaged run is an error saying
    /// what is wrong with it (not "no run").
    pub fn run(&self, id: &str) -> Result<RunDir, Error> {
        let Listing { runs, damaged } = self.list()?;
        let exact = runs.iter().position(|r| r.manifest.run == id);
        let damaged_exact = damaged.iter().find(|d| d.id == id);
        if exact.is_none() {
            if let Some(damaged) = damaged_exact {
                return Err(damaged.error());
            }
        }
        let prefixed: Vec<usize> =
            runs.iter().enumerate().filter(|(_, r)| r.manifest.run.starts_with(id)).map(|(i, _)| i).collect();
        let damaged_prefixed: Vec<&DamagedRun> = damaged.iter().filter(|d| d.id.starts_with(id)).collect();
        let index = match (exact, prefixed.as_slice(), damaged_prefixed.as_slice()) {
            (Some(index), _, _) | (None, &[index], &[]) => index,
            (None, &[], &[damaged]) => return Err(damaged.error()),
            (None, _, _) if prefixed.len() + damaged_prefixed.len() > 1 => {
                let mut candidates: Vec<&str> = prefixed.iter().map(|i| runs[*i].manifest.run.as_str()).collect();
                candidates.extend(damaged_prefixed.iter().map(|d| d.id.as_str()));
                return Err(Error::Store(format!(
                    "the run id prefix '{id}' is ambiguous in {}: it starts {} runs: {}; write more of the id",
                    self.root.display(),
                    candidates.len(),
                    candidates.join(", ")
                )));
            }
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

/// What [`Store::list`] found: the readable runs, and the directories that are not.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every readable run, oldest first.
    pub runs: Vec<RunDir>,
    /// Every run directory whose manifest cannot be read or is not valid, by name.
    pub damaged: Vec<DamagedRun>,
}

/// A run directory whose manifest cannot be read, does not parse, has an unknown schema or
/// impossible values: `runs` shows it as damaged, with the reason, beside the others.
#[derive(Clone, Debug)]
pub struct DamagedRun {
    /// The directory's name (the run id it would have).
    pub id: String,
    /// The directory.
    pub path: PathBuf,
    /// What is wrong, naming the file.
    pub reason: String,
}

impl DamagedRun {
    fn error(&self) -> Error {
        Error::Store(format!("run {} cannot be read: {}", self.id, self.reason))
    }
}

/// Reads `path` if it is a regular file (following symlinks): a FIFO or a device in the store
/// would block or never end a read, and a directory is not a record.
pub(crate) fn read_regular(path: &Path) -> Result<Vec<u8>, String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())),
        Ok(_) => Err(format!("{} is not a regular file", path.display())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The `schema` of a record read as JSON: `Err` (naming `path` and the schema this version reads)
/// unless it is [`SCHEMA`], so that a record of a newer format is refused, not misread.
fn check_schema(path: &Path, value: &serde_json::Value, what: &str) -> Result<(), String> {
    match value.get("schema").and_then(serde_json::Value::as_u64) {
        Some(schema) if schema == u64::from(SCHEMA) => Ok(()),
        Some(schema) => Err(format!(
            "{} is a {what} of schema {schema}, which this version of crystallize cannot read (it reads schema {SCHEMA})",
            path.display()
        )),
        None => Err(format!("{} is not a valid {what}: it has no \"schema\" number (expected {SCHEMA})", path.display())),
    }
}

/// Checks a replicate count read from `path` (`key`): at most [`MAX_REPLICATES`], and, from
/// `first`, indices that fit in a `u64`.
fn check_replicates(path: &Path, first: u64, replicates: u64) -> Result<(), String> {
    if replicates > MAX_REPLICATES {
        return Err(format!(
            "{} is not valid: \"replicates\" is {replicates}, more than the maximum of {MAX_REPLICATES} per condition",
            path.display()
        ));
    }
    if first.checked_add(replicates).is_none() {
        return Err(format!(
            "{} is not valid: \"first_replicate\" {first} plus \"replicates\" {replicates} is past the largest replicate index ({})",
            path.display(),
            u64::MAX
        ));
    }
    Ok(())
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every planned unit has a successful record.
    Complete,
    /// Every planned unit has a record, and some of the latest are failures.
    Failed,
    /// Some planned units have no record yet (interrupted, or still running).
    Incomplete,
    /// A sequential run (`--until-decided`) that stopped because every hypothesis was decided,
    /// before its maximum: the replicates it did not run were not needed.
    Decided,
    /// Some planned units have no trusted record because of damage: journal lines that do not
    /// parse or fail their checksum, records that are not part of the run's plan, or successful
    /// records of a unit that disagree. `run --resume` runs those units again.
    Damaged,
}

impl Status {
    /// The status of a run of `planned` units, `done` of them successful and `recorded` of them
    /// with any trusted record, where `damage` records were rejected or disagree: damage only
    /// matters while it leaves a planned unit without a result (a resume runs those again). A
    /// sequential run whose last session stopped with every hypothesis `decided` is
    /// [`Status::Decided`] where it would be incomplete (failures and damage still show).
    pub(crate) fn of(done: usize, recorded: usize, planned: usize, damage: usize, decided: bool) -> Status {
        if done >= planned {
            Status::Complete
        } else if damage > 0 {
            Status::Damaged
        } else if recorded >= planned {
            Status::Failed
        } else if decided {
            Status::Decided
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
            Status::Decided => "decided",
            Status::Damaged => "damaged",
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
    /// A unit whose successful records disagree is not here (counted in [`Damage::in_doubt`]).
    pub units: BTreeMap<(usize, u64), UnitResult>,
    /// `(condition, replicate)` of every well-formed record that does not belong to the run's
    /// plan (see [`RunDir::state`]), in journal order: none of them counts.
    pub rejected: Vec<(String, u64)>,
    /// Damage found while reading.
    pub warnings: Vec<String>,
    /// How many records were rejected or disagree (see [`Damage`]).
    pub damage: Damage,
    /// For a sequential run: its last session's stop record (the end of its journal), with
    /// where it was read; `None` for any other run, or one whose sessions recorded none.
    pub stop: Option<(crate::sequential::Stop, String)>,
}

/// What damage reading a run found: each kind is also a warning naming the file and line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// Journal lines that do not parse, fail their checksum, lack one in a checksummed journal,
    /// or could not be read (not the torn last line an interrupted writer leaves).
    pub lines: usize,
    /// Well-formed records that are not part of the run: an unknown condition, a replicate
    /// outside the plan, a seed that is not the one its replicate derives.
    pub rejected: usize,
    /// Successful records of a unit whose metrics differ from the standing one's.
    pub conflicts: usize,
    /// Units whose successful records disagree, not settled by a later journal: not done.
    pub in_doubt: usize,
}

impl Damage {
    /// Lines and records found damaged, all kinds together.
    pub fn total(&self) -> usize {
        self.lines + self.rejected + self.conflicts
    }
}

/// `conditions` times `replicates`, saturating: the count is only compared with counts of
/// records, which can never reach it.
pub(crate) fn planned_units(conditions: usize, replicates: u64) -> usize {
    conditions.saturating_mul(usize::try_from(replicates).unwrap_or(usize::MAX))
}

impl RunState {
    /// Whether the run is sequential and its last session stopped with every hypothesis
    /// decided: then units without a record are not missing.
    pub fn decided(&self) -> bool {
        self.stop.as_ref().is_some_and(|(stop, _)| stop.reason == crate::sequential::StopReason::Decided)
    }

    /// Units planned.
    pub fn planned(&self) -> usize {
        planned_units(self.conditions.len(), self.replicates)
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
        self.first_replicate..self.first_replicate.saturating_add(self.replicates)
    }

    /// The run's status.
    pub fn status(&self) -> Status {
        let range = self.replicate_range();
        let planned_with_records = self.units.keys().filter(|(_, r)| range.contains(r)).count();
        Status::of(self.done(), planned_with_records, self.planned(), self.damage.total(), self.decided())
    }

    /// The run's status when its units are `units` (as [`RunDir::results`] gives them, apart
    /// from the state).
    pub fn status_with(&self, units: &[UnitResult]) -> Status {
        let range = self.replicate_range();
        let recorded = units.iter().filter(|u| range.contains(&u.replicate)).count();
        let done = units.iter().filter(|u| u.status == UnitStatus::Ok).count();
        Status::of(done, recorded, self.planned(), self.damage.total(), self.decided())
    }

    /// [`RunState::status_with`] of units held in a [`UnitTable`] (as [`RunDir::unit_table`]
    /// gives them).
    pub(crate) fn status_of(&self, units: &UnitTable) -> Status {
        let range = self.replicate_range();
        let recorded = units.iter().filter(|u| range.contains(&u.replicate())).count();
        Status::of(units.len() - units.failed(), recorded, self.planned(), self.damage.total(), self.decided())
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
    /// The same as [`RunState::damage`].
    pub damage: Damage,
    /// The same as [`RunState::decided`].
    decided: bool,
}

impl RunScan {
    /// Units planned.
    pub fn planned(&self) -> usize {
        planned_units(self.conditions.len(), self.replicates)
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
        self.first_replicate..self.first_replicate.saturating_add(self.replicates)
    }

    /// The replicates of condition `condition` (by index) with a record, sorted, each with
    /// whether it has a successful one; empty for an unknown index.
    pub fn recorded(&self, condition: usize) -> &[(u64, bool)] {
        self.units.get(condition).map_or(&[], Vec::as_slice)
    }

    /// The replicate indices that have any record, from the lowest to one past the highest;
    /// `None` before the first record.
    pub fn recorded_range(&self) -> Option<std::ops::Range<u64>> {
        // Each condition's list is sorted: its ends are its lowest and highest.
        let low = self.units.iter().filter_map(|units| units.first()).map(|(r, _)| *r).min()?;
        let high = self.units.iter().filter_map(|units| units.last()).map(|(r, _)| *r).max()?;
        Some(low..high.saturating_add(1))
    }

    /// The run's status: the same as [`RunState::status`].
    pub fn status(&self) -> Status {
        let range = self.replicate_range();
        let planned_with_records = self.units.iter().flatten().filter(|(r, _)| range.contains(r)).count();
        Status::of(self.done(), planned_with_records, self.planned(), self.damage.total(), self.decided)
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
    /// Opens the run directory at `path`: its manifest must be a regular file of this schema,
    /// with at most `MAX_REPLICATES` replicates whose indices fit in a `u64`.
    pub fn open(path: &Path) -> Result<RunDir, Error> {
        let manifest_path = path.join("manifest.json");
        let text = read_regular(&manifest_path).map_err(Error::Store)?;
        let invalid =
            |e: serde_json::Error| Error::Store(format!("{} is not a valid manifest: {e}", manifest_path.display()));
        let value: serde_json::Value = serde_json::from_slice(&text).map_err(invalid)?;
        check_schema(&manifest_path, &value, "manifest").map_err(Error::Store)?;
        let manifest: Manifest = serde_json::from_value(value).map_err(invalid)?;
        check_replicates(&manifest_path, manifest.first_replicate, manifest.replicates).map_err(Error::Store)?;
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
            match self.read_session(&path) {
                Ok(session) => sessions.push(session),
                Err(reason) => warnings.push(format!("{reason}; the session record is ignored")),
            }
        }
        (sessions, warnings)
    }

    /// One session record: a regular file of this schema, planning at most [`MAX_REPLICATES`]
    /// replicates whose indices fit in a `u64` from the run's first.
    fn read_session(&self, path: &Path) -> Result<Session, String> {
        let text = read_regular(path)?;
        let invalid = |e: serde_json::Error| format!("{} is not a valid session record: {e}", path.display());
        let value: serde_json::Value = serde_json::from_slice(&text).map_err(invalid)?;
        check_schema(path, &value, "session record")?;
        let session: Session = serde_json::from_value(value).map_err(invalid)?;
        check_replicates(path, self.manifest.first_replicate, session.replicates)?;
        Ok(session)
    }

    /// What a record must be to count in this run: of one of its conditions, a planned
    /// replicate, with the seed that replicate derives.
    fn expectation(&self, conditions: &[String], replicates: u64) -> Expectation {
        let config = &self.manifest.config;
        let seed = config.seed;
        let policy = config.seed_policy.unwrap_or_default();
        let first = self.manifest.first_replicate;
        Expectation {
            run: self.manifest.run.clone(),
            conditions: conditions.join(", "),
            range: first..first.saturating_add(replicates),
            seed: seed.map(|seed| (seed, policy)),
        }
    }

    /// Whether `seed` is the seed of (`condition`, `replicate`) in this run, derived from the
    /// manifest's seed and policy (true when the manifest has no seed to check against).
    pub fn seed_matches(&self, condition: &str, replicate: u64, seed: u64) -> bool {
        match self.expectation(&[], 0).seed {
            Some((run_seed, policy)) => crate::seed::unit_seed(run_seed, replicate, condition, policy) == seed,
            None => true,
        }
    }

    /// The conditions of the run, in manifest order.
    pub fn conditions(&self) -> Vec<String> {
        self.manifest.config.conditions.keys().cloned().collect()
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
        let expect = self.expectation(&conditions, replicates);
        let scanned = journal::scan_all(&self.path, &conditions);
        warnings.extend(scanned.warnings);
        fn name<'a>(conditions: &'a [String], unit: &'a journal::ScannedUnit) -> &'a str {
            match &unit.condition {
                Ok(index) => conditions[*index].as_str(),
                Err(name) => name.as_str(),
            }
        }
        let mut damage = Damage { lines: scanned.damaged, ..Damage::default() };
        let mut notes: Vec<(usize, String)> = Vec::new();
        let mut accepted = Vec::with_capacity(scanned.units.len());
        for (seq, unit) in scanned.units.iter().enumerate() {
            let condition = unit.condition.as_ref().ok().copied();
            match expect.check(condition, name(&conditions, unit), unit.replicate, unit.seed) {
                Ok(index) => accepted.push((index, unit.replicate, seq)),
                Err(reason) => {
                    damage.rejected += 1;
                    notes.push((seq, rejected(&journal::describe(&scanned.files, unit.at), &reason)));
                }
            }
        }
        let mut units = vec![Vec::new(); conditions.len()];
        let fact = |seq: usize| {
            let unit = &scanned.units[seq];
            integrity::Fact { ok: unit.ok, digest: unit.digest, at: unit.at }
        };
        resolve_units(
            &mut accepted,
            fact,
            &mut damage,
            &mut notes,
            &scanned.files,
            &conditions,
            |index, replicate, seq| units[index].push((replicate, scanned.units[seq].ok)),
        );
        notes.sort_by_key(|(seq, _)| *seq);
        warnings.extend(notes.into_iter().map(|(_, note)| note));
        let (stop, stop_warnings) = stops::last::<crate::sequential::Stop>(&scanned.others, &scanned.files);
        warnings.extend(stop_warnings);
        let decided = stop.is_some_and(|(stop, _)| stop.reason == crate::sequential::StopReason::Decided);
        RunScan {
            conditions,
            replicates,
            first_replicate: self.manifest.first_replicate,
            units,
            warnings,
            damage,
            decided,
        }
    }

    /// Reads the journals and derives the state of every unit. Only records that belong to the
    /// run's plan count: of one of its conditions, of a planned replicate, with the seed that
    /// replicate derives from the manifest's seed and policy. Any other record is ignored with a
    /// warning naming its file and line (its unit, if planned, is not done and runs again on
    /// resume). A second success of a unit with other metrics than the first is a warning naming
    /// both lines, and leaves the unit in doubt (not done) until a later journal settles it.
    pub fn state(&self) -> RunState {
        let (mut state, units) = self.results();
        let conditions = &state.conditions;
        state.units = units
            .into_iter()
            .filter_map(|unit| Some(((conditions.iter().position(|c| *c == unit.condition)?, unit.replicate), unit)))
            .collect();
        state
    }

    /// [`RunDir::state`], with the units apart, in plan order (condition, then replicate), and
    /// the state's `units` empty: what `export` needs, without a map of every unit beside them.
    /// (The report reads them held compactly, a fraction of the memory of a `UnitResult` each.)
    pub fn results(&self) -> (RunState, Vec<UnitResult>) {
        let (state, units) = self.unit_table();
        (state, units.to_results())
    }

    /// [`RunDir::results`], the units held compactly ([`UnitTable`]): what the report of a big
    /// run reads, at a fraction of the memory of a [`UnitResult`] per unit.
    pub(crate) fn unit_table(&self) -> (RunState, UnitTable) {
        let conditions = self.conditions();
        let (replicates, mut warnings) = self.planned_replicates();
        let expect = self.expectation(&conditions, replicates);
        // Records are resolved as they are read (the same rules as `integrity::resolve`, which
        // the scan uses; a test holds the two together), so that only each unit's result is held,
        // not every record.
        enum Note {
            Rejected(LineAt, String),
            Disagree { at: LineAt, first: LineAt, index: usize, replicate: u64 },
        }
        let most = self.most_records();
        // Kept records in read order, each unit's where it was read beside it (the line a
        // later disagreeing record names); reserved for the most lines the journals can hold (a
        // reservation costs no memory until used, and growing by doubling would copy them all).
        let mut units = UnitTable::with_conditions(&conditions);
        units.reserve(most.min(MOST_RESERVED));
        let mut at = Places::with_capacity(most.min(MOST_RESERVED));
        let mut slots = Slots::new(conditions.len(), self.manifest.first_replicate, replicates, most);
        // The units whose successful records disagree: the latest journal that disagreed. A
        // success read from a later journal settles it.
        let mut doubt: HashMap<usize, u32> = HashMap::new();
        let mut notes: Vec<Note> = Vec::new();
        let mut rejected_units = Vec::new();
        let mut damage = Damage::default();
        let read = journal::read_each(&self.path, |unit, line_at| {
            let known = conditions.iter().position(|c| *c == unit.condition);
            let index = match expect.check(known, &unit.condition, unit.replicate, unit.seed) {
                Ok(index) => index,
                Err(reason) => {
                    damage.rejected += 1;
                    notes.push(Note::Rejected(line_at, reason));
                    rejected_units.push((unit.condition, unit.replicate));
                    return;
                }
            };
            let replicate = unit.replicate;
            let Some(row) = slots.get(index, replicate) else {
                at.push(units.len(), line_at);
                let row = units.push(unit);
                slots.insert(index, replicate, row);
                return;
            };
            let standing_ok = units.get(row).is_some_and(|u| u.is_ok());
            if !unit.is_ok() {
                // A failure stands only until a success: the latest failure is kept.
                if !standing_ok {
                    units.replace(row, unit);
                }
                return;
            }
            let settles = doubt.get(&row).is_some_and(|file| line_at.file > *file);
            if !standing_ok || settles {
                units.replace(row, unit);
                at.set(row, line_at);
                doubt.remove(&row);
                return;
            }
            let digest = journal::metrics_digest(unit.metrics.iter().map(|(name, value)| (name.as_str(), *value)));
            let standing = units.get(row).map(|u| journal::metrics_digest(u.metrics()));
            if standing != Some(digest) {
                damage.conflicts += 1;
                notes.push(Note::Disagree { at: line_at, first: at.get(row), index, replicate });
                let file = doubt.entry(row).or_insert(line_at.file);
                *file = (*file).max(line_at.file);
            }
        });
        drop(slots);
        drop(at);
        damage.in_doubt += doubt.len();
        if !doubt.is_empty() {
            units.retain_indices(|row| !doubt.contains_key(&row));
        }
        units.sort_by_condition_index();
        units.shrink_to_fit();
        damage.lines = read.damaged;
        warnings.extend(read.warnings);
        let (stop, stop_warnings) = stops::last(&read.others, &read.files);
        warnings.extend(stop_warnings);
        warnings.extend(notes.into_iter().map(|note| match note {
            Note::Rejected(at, reason) => rejected(&journal::describe(&read.files, at), &reason),
            Note::Disagree { at, first, index, replicate } => disagree(
                &journal::describe(&read.files, at),
                &journal::describe(&read.files, first),
                &conditions[index],
                replicate,
            ),
        }));
        let state = RunState {
            conditions,
            replicates,
            first_replicate: self.manifest.first_replicate,
            units: BTreeMap::new(),
            rejected: rejected_units,
            warnings,
            damage,
            stop,
        };
        (state, units)
    }

    /// The most records the run's journals can hold: their bytes over the shortest record line.
    fn most_records(&self) -> usize {
        // `{"schema":1,"type":"unit","experiment":"","condition":"","replicate":0,"seed":0,
        // "status":"ok","metrics":{},"duration_ms":0}` and its newline: 124 bytes.
        const SHORTEST_LINE: u64 = 124;
        let bytes: u64 = std::fs::read_dir(&self.path)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("journal-")))
                    .filter_map(|e| e.metadata().ok().filter(|m| m.is_file()).map(|m| m.len()))
                    .sum()
            })
            .unwrap_or(0);
        usize::try_from(bytes / SHORTEST_LINE).unwrap_or(usize::MAX)
    }
}

/// Resolves the accepted records `(condition, replicate, seq)` unit by unit (see
/// [`integrity::resolve`]): `keep(condition, replicate, seq)` for each unit's result, in plan
/// order; a note per disagreeing record, and the count of units left in doubt, in `damage`.
fn resolve_units(
    accepted: &mut [(usize, u64, usize)],
    fact: impl Fn(usize) -> integrity::Fact,
    damage: &mut Damage,
    notes: &mut Vec<(usize, String)>,
    files: &[PathBuf],
    conditions: &[String],
    mut keep: impl FnMut(usize, u64, usize),
) {
    // Sorted by unit, and within a unit by read order.
    accepted.sort_unstable();
    let mut facts = Vec::new();
    for group in accepted.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let (index, replicate) = (group[0].0, group[0].1);
        if let [(_, _, seq)] = group {
            keep(index, replicate, *seq);
            continue;
        }
        facts.clear();
        facts.extend(group.iter().map(|&(_, _, seq)| fact(seq)));
        let (verdict, conflicts) = integrity::resolve(&facts);
        for (here, there) in conflicts {
            damage.conflicts += 1;
            let (at, first) = (journal::describe(files, facts[here].at), journal::describe(files, facts[there].at));
            notes.push((group[here].2, disagree(&at, &first, &conditions[index], replicate)));
        }
        match verdict {
            Some(integrity::Verdict::Result(chosen)) => keep(index, replicate, group[chosen].2),
            Some(integrity::Verdict::InDoubt) => damage.in_doubt += 1,
            None => {}
        }
    }
}

/// At most 4 Mi records reserved ahead (about 300 MB of address space): a bigger run grows past it.
const MOST_RESERVED: usize = 1 << 22;

/// Where each unit's kept record is, by (condition index, replicate): a table of the plan when
/// the journals can hold about as many records as it has units (4 bytes a unit), else a map
/// (a run planned far beyond what it recorded).
enum Slots {
    Dense { first: u64, replicates: u64, rows: Vec<u32> },
    Sparse(HashMap<(usize, u64), usize>),
}

impl Slots {
    /// No slot taken yet, for `conditions` × `replicates` planned from replicate `first`, of
    /// which the journals can hold at most `most`.
    fn new(conditions: usize, first: u64, replicates: u64, most: usize) -> Slots {
        let planned = planned_units(conditions, replicates);
        if planned <= most.saturating_mul(2).max(4096) && most < NO_ROW as usize {
            Slots::Dense { first, replicates, rows: vec![NO_ROW; planned] }
        } else {
            Slots::Sparse(HashMap::new())
        }
    }

    /// The place of a planned unit in the table (`None` outside it).
    fn place(first: u64, replicates: u64, index: usize, replicate: u64) -> Option<usize> {
        let offset = replicate.checked_sub(first).filter(|offset| *offset < replicates)?;
        usize::try_from((index as u64).checked_mul(replicates)?.checked_add(offset)?).ok()
    }

    /// The row of unit (`index`, `replicate`), when it has one.
    fn get(&self, index: usize, replicate: u64) -> Option<usize> {
        match self {
            Slots::Dense { first, replicates, rows } => {
                let row = *rows.get(Slots::place(*first, *replicates, index, replicate)?)?;
                (row != NO_ROW).then_some(row as usize)
            }
            Slots::Sparse(map) => map.get(&(index, replicate)).copied(),
        }
    }

    /// Unit (`index`, `replicate`) is in row `row`.
    fn insert(&mut self, index: usize, replicate: u64, row: usize) {
        if let Slots::Dense { first, replicates, rows } = self {
            let place = Slots::place(*first, *replicates, index, replicate);
            match (place.filter(|p| *p < rows.len()), u32::try_from(row).ok().filter(|r| *r != NO_ROW)) {
                (Some(place), Some(row)) => {
                    rows[place] = row;
                    return;
                }
                // Not expected (the replicate was checked against the plan, and the journals
                // hold fewer records than a row index can count), but a map holds any unit.
                _ => {
                    let (first, replicates) = (*first, *replicates);
                    let taken = rows.iter().enumerate().filter(|(_, r)| **r != NO_ROW);
                    let map = taken
                        .map(|(place, r)| {
                            let per = replicates.max(1);
                            (((place as u64 / per) as usize, first + place as u64 % per), *r as usize)
                        })
                        .collect();
                    *self = Slots::Sparse(map);
                }
            }
        }
        if let Slots::Sparse(map) = self {
            map.insert((index, replicate), row);
        }
    }
}

/// An empty slot of [`Slots::Dense`].
const NO_ROW: u32 = u32::MAX;

/// Where each kept record was read, by row: a journal's index and a line number packed in 8
/// bytes (a [`LineAt`] takes 16), the few that do not fit on the side.
struct Places {
    packed: Vec<u64>,
    /// The places of rows whose packed value is [`UNPACKED`].
    rest: HashMap<usize, LineAt>,
}

/// Bits of the line number in a packed place: a trillion lines; 16 million journals above them.
const LINE_BITS: u32 = 40;
/// A place that did not fit in 64 bits, kept in [`Places::rest`].
const UNPACKED: u64 = u64::MAX;

impl Places {
    fn with_capacity(capacity: usize) -> Places {
        Places { packed: Vec::with_capacity(capacity), rest: HashMap::new() }
    }

    fn pack(at: LineAt) -> Option<u64> {
        let file = u64::from(at.file);
        (at.line >> LINE_BITS == 0 && file >> (64 - LINE_BITS) == 0)
            .then_some(file << LINE_BITS | at.line)
            .filter(|packed| *packed != UNPACKED)
    }

    /// Row `row` (the next one) was read at `at`.
    fn push(&mut self, row: usize, at: LineAt) {
        self.packed.push(UNPACKED);
        self.set(row, at);
    }

    /// Row `row` is now the record read at `at`.
    fn set(&mut self, row: usize, at: LineAt) {
        let Some(slot) = self.packed.get_mut(row) else { return };
        match Places::pack(at) {
            Some(packed) => {
                *slot = packed;
                self.rest.remove(&row);
            }
            None => {
                *slot = UNPACKED;
                self.rest.insert(row, at);
            }
        }
    }

    /// Where row `row` was read.
    fn get(&self, row: usize) -> LineAt {
        match self.packed.get(row) {
            Some(&packed) if packed != UNPACKED => {
                LineAt { file: (packed >> LINE_BITS) as u32, line: packed & ((1 << LINE_BITS) - 1) }
            }
            _ => self.rest.get(&row).copied().unwrap_or(LineAt { file: 0, line: 0 }),
        }
    }
}

struct Expectation {
    run: String,
    /// The run's conditions, for messages.
    conditions: String,
    range: std::ops::Range<u64>,
    /// The run's seed and policy; `None` when the manifest has no seed (then seeds are not checked).
    seed: Option<(u64, SeedPolicy)>,
}

impl Expectation {
    /// The condition's index if a record of (`condition`: its index if known, and `name`),
    /// `replicate` and `seed` belongs to the run; else why not.
    fn check(&self, condition: Option<usize>, name: &str, replicate: u64, seed: u64) -> Result<usize, String> {
        let Some(index) = condition else {
            return Err(format!(
                "a record of condition '{name}', which is not part of run {} (conditions: {})",
                self.run, self.conditions
            ));
        };
        if !self.range.contains(&replicate) {
            return Err(format!(
                "a record of {name} #{replicate}, a replicate outside the plan of run {} (replicates {}..{})",
                self.run, self.range.start, self.range.end
            ));
        }
        if let Some((run_seed, policy)) = self.seed {
            let expected = crate::seed::unit_seed(run_seed, replicate, name, policy);
            if seed != expected {
                return Err(format!(
                    "a record of {name} #{replicate} with seed {seed}, but that replicate's seed is {expected} \
                     (run seed {run_seed}, policy {})",
                    match policy {
                        SeedPolicy::Shared => "shared",
                        SeedPolicy::PerCondition => "per_condition",
                    }
                ));
            }
        }
        Ok(index)
    }
}

/// The warning for a record that does not count.
fn rejected(at: &str, reason: &str) -> String {
    format!("{at}: {reason}; ignored, it does not count as done")
}

/// The warning for a second success of a unit whose metrics differ from the first's.
fn disagree(at: &str, first: &str, condition: &str, replicate: u64) -> String {
    format!(
        "{at}: a second successful record of {condition} #{replicate} whose metrics differ from the first one, at \
         {first}; neither counts until the unit runs again (`run --resume`): is the unit not deterministic, or was \
         a journal edited?"
    )
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
            error: (!ok).then(|| UnitError { message: "boom".into(), location: None, kind: Default::default() }),
            metrics: [("win", 1.0)].into(),
            records: Vec::new(),
            duration_ms: 0.5,
            attempts: Vec::new(),
            cache: Default::default(),
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
        let (apart, units) = run.results();
        assert_eq!(apart.status_with(&units), state.status());
        let (compact, table) = run.unit_table();
        assert_eq!(compact.status_of(&table), state.status());
        assert_eq!(table.to_results(), units, "the compact units are the records, field for field");
        assert_eq!((compact.warnings, compact.damage), (state.warnings.clone(), state.damage));
        assert_eq!(units, state.units.values().cloned().collect::<Vec<_>>(), "the same units, in plan order");
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

    fn seeded(condition: &str, replicate: u64, ok: bool) -> UnitResult {
        UnitResult {
            seed: crate::seed::unit_seed(42, replicate, condition, SeedPolicy::Shared),
            ..unit(condition, replicate, ok)
        }
    }

    /// A run of conditions `baseline` and `loaded`, replicates 0..4 and seed 42, with `lines`
    /// (JSON objects of unit records, or anything) as its one journal.
    fn seeded_run(lines: &[String]) -> (tempfile::TempDir, RunDir) {
        let (dir, run) = run_with(&[], 0);
        let mut manifest = run.manifest.clone();
        manifest.config.seed = Some(42);
        manifest.config.seed_policy = Some(crate::seed::SeedPolicy::Shared);
        std::fs::write(run.path().join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
        std::fs::write(run.journal_path("1"), lines.join("\n") + "\n").unwrap();
        let run = RunDir::open(run.path()).unwrap();
        (dir, run)
    }

    fn line(unit: &UnitResult) -> String {
        let mut value = serde_json::to_value(unit).unwrap();
        value["schema"] = 1.into();
        value["type"] = "unit".into();
        value.to_string()
    }

    #[test]
    fn places_of_records_come_back_as_they_were_read_whatever_their_size() {
        let mut places = Places::with_capacity(0);
        let cases = [
            LineAt { file: 0, line: 1 },
            LineAt { file: 3, line: (1 << LINE_BITS) - 1 },
            LineAt { file: (1 << 24) - 1, line: (1 << LINE_BITS) - 1 },
            LineAt { file: u32::MAX, line: 7 },
            LineAt { file: 2, line: u64::MAX },
        ];
        for (row, at) in cases.iter().enumerate() {
            places.push(row, *at);
        }
        for (row, at) in cases.iter().enumerate() {
            assert_eq!(places.get(row), *at);
        }
        places.set(3, LineAt { file: 1, line: 2 });
        assert_eq!((places.get(3), places.rest.len()), (LineAt { file: 1, line: 2 }, 2));
    }

    #[test]
    fn the_slots_of_units_find_every_planned_unit_dense_or_not() {
        for most in [0, 1000] {
            let mut slots = Slots::new(2, 10, 50, most);
            assert!(matches!(slots, Slots::Dense { .. }), "a plan of 100 units has a table");
            for (row, (index, replicate)) in [(0, 10), (1, 59), (0, 59), (1, 10)].into_iter().enumerate() {
                assert_eq!(slots.get(index, replicate), None);
                slots.insert(index, replicate, row);
                assert_eq!(slots.get(index, replicate), Some(row));
            }
            assert_eq!(slots.get(1, 11), None);
        }
        let mut sparse = Slots::new(2, 0, u64::MAX / 4, 10);
        assert!(matches!(sparse, Slots::Sparse(_)));
        sparse.insert(1, u64::MAX / 8, 3);
        assert_eq!(sparse.get(1, u64::MAX / 8), Some(3));
    }

    #[test]
    fn records_outside_the_plan_or_with_another_seed_do_not_count_and_are_named_by_line() {
        let (b, l) = ("baseline", "loaded");
        let mut lines: Vec<String> =
            (0..4).flat_map(|r| [line(&seeded(b, r, true)), line(&seeded(l, r, true))]).collect();
        // Move loaded #2 out of the plan, and give baseline #1 another seed.
        lines[5] = line(&UnitResult { replicate: 999, ..seeded(l, 2, true) });
        lines[2] = line(&UnitResult { seed: 1, ..seeded(b, 1, true) });
        let (_dir, run) = seeded_run(&lines);
        let state = run.state();
        let scan = assert_scan_agrees(&run);
        // Rejected records leave planned units without a result: the run is damaged, not just
        // incomplete, and the damage is counted.
        assert_eq!((state.done(), state.planned(), state.status()), (6, 8, Status::Damaged));
        assert_eq!(state.damage, Damage { rejected: 2, ..Damage::default() });
        assert!(!scan.done_set().contains(l, 2) && !scan.done_set().contains(b, 1));
        assert_eq!(state.warnings.len(), 2, "{:?}", state.warnings);
        assert!(
            state.warnings[0]
                .contains("journal-1.jsonl:3: a record of baseline #1 with seed 1, but that replicate's seed is"),
            "{}",
            state.warnings[0]
        );
        assert!(
            state.warnings[1].contains(
                "journal-1.jsonl:6: a record of loaded #999, a replicate outside the plan of run r (replicates 0..4)"
            ),
            "{}",
            state.warnings[1]
        );
        assert_eq!(state.rejected, [(b.to_owned(), 1), (l.to_owned(), 999)]);
    }

    #[test]
    fn two_successes_of_a_unit_with_different_metrics_are_named_by_both_lines() {
        let (b, l) = ("baseline", "loaded");
        let mut lines: Vec<String> =
            (0..4).flat_map(|r| [line(&seeded(b, r, true)), line(&seeded(l, r, true))]).collect();
        // An identical duplicate is silent; one with other metrics is not.
        lines.push(line(&seeded(b, 0, true)));
        // Rejected records before and after: the scan gives its warnings in the same order.
        lines.push(line(&seeded(b, 7, true)));
        let mut other = seeded(l, 3, true);
        other.metrics.insert("win".into(), 0.0);
        lines.push(line(&other));
        lines.push(line(&seeded("gone", 1, true)));
        let (_dir, run) = seeded_run(&lines);
        let state = run.state();
        assert_scan_agrees(&run);
        // loaded #3 is in doubt: neither record counts, and a resume runs it again.
        assert_eq!(state.status(), Status::Damaged);
        assert_eq!(state.damage, Damage { lines: 0, rejected: 2, conflicts: 1, in_doubt: 1 });
        assert!(!run.scan().done_set().contains(l, 3));
        assert_eq!(state.warnings.len(), 3, "{:?}", state.warnings);
        assert!(state.warnings[0].contains("baseline #7"), "{:?}", state.warnings);
        assert!(state.warnings[2].contains("'gone'"), "{:?}", state.warnings);
        let warning = &state.warnings[1];
        assert!(
            warning.contains("journal-1.jsonl:11: a second successful record of loaded #3 whose metrics differ"),
            "{warning}"
        );
        assert!(warning.contains("journal-1.jsonl:8; neither counts until the unit runs again"), "{warning}");
        assert!(!state.units.contains_key(&(1, 3)), "neither stands");
        // The journal of a later session (a resume) settles it: the run is complete again, the
        // old lines still named.
        let mut journal = JournalWriter::create(run.journal_path("2"), Cancel::default()).unwrap();
        journal.unit_finished(&seeded(l, 3, true));
        journal.finish().unwrap();
        let state = run.state();
        assert_scan_agrees(&run);
        assert_eq!(state.status(), Status::Complete);
        assert_eq!(state.damage, Damage { lines: 0, rejected: 2, conflicts: 1, in_doubt: 0 });
        assert_eq!(state.units[&(1, 3)].metrics.get("win"), Some(&1.0));
    }

    #[test]
    fn a_scan_derives_what_the_state_derives() {
        let (b, l) = ("baseline", "loaded");
        let first = [unit(b, 3, false), unit(b, 0, true), unit(l, 1, true), unit(b, 1, false), unit("gone", 0, true)];
        let second = [unit(b, 3, true), unit(b, 1, false), unit(l, 1, false), unit(b, 0, true), unit(l, 9, true)];
        let (_dir, run) = run_with(&[&first, &second], 0);
        let scan = assert_scan_agrees(&run);
        assert_eq!((scan.done(), scan.failed(), scan.status()), (3, 1, Status::Damaged));
        let done = scan.done_set();
        // `gone` is no condition of the run and replicate 9 is outside its 4 replicates.
        assert_eq!(done.iter().collect::<Vec<_>>(), [(b, 0), (b, 3), (l, 1)]);
        assert_eq!(scan.warnings.len(), 2, "{:?}", scan.warnings);
        assert!(scan.warnings[0].contains("condition 'gone', which is not part of run r"), "{:?}", scan.warnings);
        assert!(scan.warnings[1].contains("journal-1.jsonl:5: a record of loaded #9, a replicate outside the plan"));

        let all: Vec<UnitResult> = (0..4).flat_map(|r| [unit(b, r, r != 2), unit(l, r, true)]).collect();
        let (_dir, run) = run_with(&[&all], 0);
        assert_eq!(assert_scan_agrees(&run).status(), Status::Failed);
        let (_dir, run) = run_with(&[&all, &[unit(b, 2, true)]], 0);
        assert_eq!(assert_scan_agrees(&run).status(), Status::Complete);
        // Replicates 0 and 1 are outside a plan from 2: damage, not merely missing units.
        let (_dir, run) = run_with(&[&all], 2);
        assert_eq!(assert_scan_agrees(&run).status(), Status::Damaged);
        let (_dir, run) = run_with(&[], 0);
        assert_eq!(assert_scan_agrees(&run).status(), Status::Incomplete);
    }

    mod properties {
        //! Property tests of the manifest's and session records' readers: a manifest damaged in
        //! any byte, cut anywhere or with any field set to any value is read, or refused with an
        //! error naming the file; what is read can be planned (no count past the maximum, no
        //! index past 2^64), and reading the run's units never panics.
        use super::*;
        use proptest::prelude::*;

        fn cases(n: u32) -> ProptestConfig {
            let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
            ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
        }

        fn any_json() -> impl Strategy<Value = serde_json::Value> {
            prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<u64>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                prop::sample::select(vec![0u64, 1, 2, MAX_REPLICATES, MAX_REPLICATES + 1, u64::MAX - 1, u64::MAX])
                    .prop_map(serde_json::Value::from),
                ".{0,6}".prop_map(serde_json::Value::from),
                Just(serde_json::json!([])),
                Just(serde_json::json!({"baseline": {}})),
            ]
        }

        /// Checks what reading `bytes` as the manifest of a run directory gives.
        fn read_manifest(bytes: &[u8], session: Option<&[u8]>) -> Result<(), TestCaseError> {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("manifest.json");
            std::fs::write(&path, bytes).unwrap();
            if let Some(session) = session {
                std::fs::write(dir.path().join("session-1.json"), session).unwrap();
            }
            match RunDir::open(dir.path()) {
                Ok(run) => {
                    let (first, replicates) = (run.manifest.first_replicate, run.manifest.replicates);
                    prop_assert!(replicates <= MAX_REPLICATES && first.checked_add(replicates).is_some());
                    let (state, scan) = (run.state(), run.scan());
                    prop_assert_eq!(state.status(), scan.status());
                    prop_assert!(state.replicates <= MAX_REPLICATES);
                    for warning in &scan.warnings {
                        prop_assert!(warning.contains("session-1.json"), "{}", warning);
                    }
                }
                Err(Error::Store(message)) => {
                    prop_assert!(
                        message.contains(&path.display().to_string()) && message.len() > path.as_os_str().len() + 10,
                        "{}",
                        message
                    )
                }
                Err(other) => prop_assert!(false, "not a store error: {other}"),
            }
            Ok(())
        }

        fn manifest_bytes() -> Vec<u8> {
            static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            BYTES
                .get_or_init(|| {
                    let (_dir, run) = run_with(&[], 0);
                    serde_json::to_vec_pretty(&run.manifest).unwrap()
                })
                .clone()
        }

        /// A record of a run of `baseline` and `loaded`, replicates 0..4: some outside the plan,
        /// some failed, metrics from two values (so that successes of a unit may disagree).
        fn record() -> impl Strategy<Value = UnitResult> {
            (0..3usize, 0..6u64, any::<bool>(), 0..2u8).prop_map(|(condition, replicate, ok, value)| {
                let name = ["baseline", "loaded", "gone"][condition];
                let mut unit = unit(name, replicate, ok || value == 0);
                unit.metrics.insert("win".into(), f64::from(value));
                unit
            })
        }

        proptest! {
            #![proptest_config(cases(200))]

            #[test]
            fn the_scan_and_the_state_resolve_any_records_the_same_way(
                journals in prop::collection::vec(prop::collection::vec(record(), 0..12), 1..4),
            ) {
                let (_dir, run) = run_with(&[], 0);
                // Sealed lines written straight to the files: a writer's fsync per case made this
                // test wait on the disk.
                for (writer, units) in journals.iter().enumerate() {
                    let mut text = Vec::new();
                    for unit in units {
                        let mut value = serde_json::to_value(unit).unwrap();
                        value["schema"] = 2.into();
                        value["type"] = "unit".into();
                        text.extend(journal::seal_record(value.to_string().as_bytes()));
                        text.push(b'\n');
                    }
                    std::fs::write(run.journal_path(&writer.to_string()), text).unwrap();
                }
                let (state, scan) = (run.state(), run.scan());
                prop_assert_eq!(&scan.warnings, &state.warnings);
                prop_assert_eq!(scan.damage, state.damage);
                prop_assert_eq!(scan.done_set(), state.done_set());
                prop_assert_eq!((scan.done(), scan.failed(), scan.status()), (state.done(), state.failed(), state.status()));
                // A unit counted done has the metrics of one of its successful records.
                for ((index, replicate), kept) in &state.units {
                    let name = &state.conditions[*index];
                    prop_assert!(journals.iter().flatten().any(|u| u.condition == *name && u.replicate == *replicate
                        && u.status == kept.status && u.metrics == kept.metrics));
                }
            }
        }

        proptest! {
            #![proptest_config(cases(1000))]

            #[test]
            fn a_manifest_with_any_byte_changed_or_cut_is_read_or_refused_naming_it(
                at in any::<prop::sample::Index>(),
                byte in any::<u8>(),
                cut in any::<prop::sample::Index>(),
            ) {
                let bytes = manifest_bytes();
                let mut changed = bytes.clone();
                changed[at.index(bytes.len())] = byte;
                read_manifest(&changed, None)?;
                read_manifest(&bytes[..cut.index(bytes.len())], None)?;
            }

            #[test]
            fn a_manifest_or_session_with_a_field_of_any_value_is_read_or_refused_naming_it(
                field in prop::sample::select(vec!["schema", "replicates", "first_replicate", "run", "experiment",
                    "config", "request", "command", "created", "hypotheses", "versions"]),
                value in any_json(),
                session_field in prop::sample::select(vec!["schema", "replicates", "writer", "forced", "started"]),
                session_value in any_json(),
            ) {
                let mut manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes()).unwrap();
                manifest[field] = value;
                let mut session = serde_json::json!({
                    "schema": 1, "writer": "1", "started": "now", "command": [], "replicates": 3, "forced": false,
                    "host": "h"
                });
                session[session_field] = session_value;
                read_manifest(manifest.to_string().as_bytes(), Some(session.to_string().as_bytes()))?;
            }
        }
    }
}
