//! Leases: one live writer per unit of a run. A process that runs units of a stored run first
//! holds the lease of its shard (`lease-<I>-of-<N>.json` in the run directory; `lease-0-of-1.json`
//! for a process running every unit), and a background thread refreshes its heartbeat. A second
//! process for overlapping units is refused and told who holds them; a lease whose heartbeat is
//! older than the staleness window is taken over with a warning.
//!
//! Safe on NFS without `flock`: a lease is created with an exclusive hard link (`link(2)` fails
//! when the name exists, atomically, also on NFS), refreshed by writing a temporary file and
//! renaming it over the lease, and taken over by renaming the stale lease to a name of the taker's
//! own first (only one taker's rename can succeed). Shards of different counts (`1/2` and `3/4`)
//! have different file names: they are checked against each other after the lease is created,
//! and a process that finds an overlapping live lease of another count gives its own back.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{host_name, time, RunDir, SCHEMA};
use crate::error::Error;
use crate::runner::Cancel;
use crate::shard::Shard;

/// How old a heartbeat may be before its lease counts as stale, by default.
pub const DEFAULT_STALE: Duration = Duration::from_secs(60);

/// `lease-<I>-of-<N>.json`: who holds the units of one shard of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Record version.
    pub schema: u32,
    /// The holder's writer id: its journal is `journal-<writer>.jsonl`.
    pub writer: String,
    /// The holder's host.
    pub host: String,
    /// The holder's process id (on its host).
    pub pid: u32,
    /// The shard it holds, `I/N` (`0/1`: every unit).
    pub shard: String,
    /// The job array task it is (`slurm 1234_2`), when a scheduler started it: a later process of
    /// the same task is that task requeued, so this lease's holder is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// When it took the lease (RFC 3339, UTC).
    pub since: String,
    /// Its latest heartbeat (RFC 3339, UTC).
    pub heartbeat: String,
    /// Its latest heartbeat, in milliseconds since the Unix epoch (what staleness is measured
    /// on: the hosts' clocks must agree to well within the window).
    pub heartbeat_ms: u64,
    /// The staleness window the holder refreshes for, in milliseconds (it refreshes four times
    /// per window).
    pub stale_ms: u64,
}

/// A lease found in a run directory, and where.
#[derive(Clone, Debug)]
pub struct FoundLease {
    /// The lease file.
    pub path: PathBuf,
    /// Its shard.
    pub shard: Shard,
    /// The record, or why it cannot be read.
    pub record: Result<LeaseRecord, String>,
}

/// Whether a lease's holder still counts as alive, and if not why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Its heartbeat is within the window.
    Live,
    /// It is stale: why.
    Stale(String),
}

impl FoundLease {
    /// Whether its holder is alive, as seen from this process with the staleness window `stale`
    /// (a lease that cannot be read is stale: every holder writes its record whole, by rename).
    pub fn liveness(&self, stale: Duration, task: Option<&str>) -> Liveness {
        let record = match &self.record {
            Ok(record) => record,
            Err(why) => return Liveness::Stale(why.clone()),
        };
        let age = now_ms().saturating_sub(record.heartbeat_ms);
        if u128::from(age) > stale.as_millis() {
            return Liveness::Stale(format!(
                "its last heartbeat was {} ago (the window is {})",
                show(Duration::from_millis(age)),
                show(stale)
            ));
        }
        if record.host == host_name() && !process_alive(record.pid) {
            return Liveness::Stale(format!("process {} is no longer running on this host", record.pid));
        }
        if let (Some(mine), Some(theirs)) = (task, record.task.as_deref()) {
            if mine == theirs {
                return Liveness::Stale(format!("it was {theirs}, which is this task, requeued"));
            }
        }
        Liveness::Live
    }
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    let (secs, nanos) = time::now();
    secs.saturating_mul(1000).saturating_add(u64::from(nanos / 1_000_000))
}

/// `60 s`, `250 ms`: whole seconds from 10 s on, else milliseconds unless whole.
fn show(duration: Duration) -> String {
    if duration.as_secs() >= 10 || duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// The lease file of `shard` in `run`.
pub fn lease_path(run: &Path, shard: Shard) -> PathBuf {
    run.join(format!("lease-{}-of-{}.json", shard.index(), shard.count()))
}

/// The shard a lease file's name says, for `lease-<I>-of-<N>.json`.
fn shard_of_name(name: &str) -> Option<Shard> {
    let rest = name.strip_prefix("lease-")?.strip_suffix(".json")?;
    let (index, count) = rest.split_once("-of-")?;
    Shard::new(index.parse().ok()?, count.parse().ok()?).ok()
}

/// Every lease file of `run`, by file name.
pub fn leases(run: &Path) -> Vec<FoundLease> {
    let Ok(entries) = std::fs::read_dir(run) else { return Vec::new() };
    let mut found: Vec<FoundLease> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let shard = shard_of_name(&name)?;
            let path = entry.path();
            Some(FoundLease { record: read(&path), path, shard })
        })
        .collect();
    found.sort_by_key(|lease| (lease.shard.count(), lease.shard.index()));
    found
}

fn read(path: &Path) -> Result<LeaseRecord, String> {
    let bytes = super::read_regular(path)?;
    let record: LeaseRecord =
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a valid lease: {e}", path.display()))?;
    if record.schema != SCHEMA {
        return Err(format!("{} is a lease of schema {}, this version reads {SCHEMA}", path.display(), record.schema));
    }
    Ok(record)
}

/// Whether process `pid` runs on this host (a zombie counts as running until reaped).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        // Signal 0 checks without signalling; EPERM means it exists under another user.
        // SAFETY: kill with signal 0 has no effect on the target.
        let result = unsafe { libc::kill(pid, 0) };
        result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Lease files this process holds, removed by [`release_all_now`] when it must exit at once (a
/// second Ctrl-C): a lease left behind would otherwise hold its units for a staleness window.
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every lease this process holds, now (before `std::process::exit`).
pub fn release_all_now() {
    if let Ok(held) = HELD.lock() {
        for path in held.iter() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A lease this process holds; refreshed in the background, given back when dropped.
pub struct Lease {
    path: PathBuf,
    writer: String,
    stop: Option<mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
    /// Leases of crashed or stopped holders this one took over, for the user.
    pub warnings: Vec<String>,
}

/// Takes the lease of `shard` of `run` for writer `writer`, or says who holds overlapping units
/// and how to take over. `task` is the job array task this process is, if any. A heartbeat
/// thread refreshes it every quarter of `stale`; if the lease is taken from it (it stalled for
/// longer than the window), it cancels the run through `cancel`.
pub fn acquire(
    run: &RunDir,
    shard: Shard,
    writer: &str,
    stale: Duration,
    task: Option<String>,
    cancel: Cancel,
) -> Result<Lease, Error> {
    let path = lease_path(run.path(), shard);
    let (secs, nanos) = time::now();
    let record = LeaseRecord {
        schema: SCHEMA,
        writer: writer.to_owned(),
        host: host_name(),
        pid: std::process::id(),
        shard: shard.to_string(),
        task: task.clone(),
        since: time::rfc3339_millis(secs, nanos),
        heartbeat: time::rfc3339_millis(secs, nanos),
        heartbeat_ms: now_ms(),
        stale_ms: u64::try_from(stale.as_millis()).unwrap_or(u64::MAX),
    };
    let mut warnings = Vec::new();
    // A few tries: once more after taking over a stale lease (or losing it to another taker).
    let mut created = false;
    for _ in 0..3 {
        match create_exclusive(&path, &record) {
            Ok(()) => {
                created = true;
                break;
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(Error::Store(format!("cannot create the lease {}: {error}", path.display()))),
        }
        let found = FoundLease { record: read(&path), path: path.clone(), shard };
        match found.liveness(stale, task.as_deref()) {
            Liveness::Live => return Err(refusal(run, &found, stale)),
            Liveness::Stale(why) => {
                if take_over(&found, writer) {
                    warnings.push(format!("warning: took over the lease of {}: {why}", describe(&found)));
                }
            }
        }
    }
    if !created {
        return Err(Error::Store(format!("cannot take the lease {}: other processes keep taking it", path.display())));
    }
    // Leases of other shard counts: the same units may be theirs.
    for other in leases(run.path()) {
        if other.path == path || !other.shard.overlaps(shard) {
            continue;
        }
        match other.liveness(stale, task.as_deref()) {
            Liveness::Live => {
                let _ = std::fs::remove_file(&path);
                return Err(refusal(run, &other, stale));
            }
            Liveness::Stale(why) => {
                if take_over(&other, writer) {
                    warnings.push(format!("warning: took over the lease of {}: {why}", describe(&other)));
                }
            }
        }
    }
    if let Ok(mut held) = HELD.lock() {
        held.push(path.clone());
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let interval = (stale / 4).max(Duration::from_millis(50));
    let thread_path = path.clone();
    let record = Arc::new(record);
    let heartbeat = std::thread::Builder::new()
        .name("crystallize-lease".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                match read(&thread_path) {
                    Ok(current) if current.writer == record.writer => {}
                    _ => {
                        crate::console::line(format!(
                            "error: the lease {} was taken over by another process (this one stalled for longer \
                             than {}); stopping: the units in flight finish, nothing else starts",
                            thread_path.display(),
                            show(stale)
                        ));
                        cancel.cancel();
                        return;
                    }
                }
                let (secs, nanos) = time::now();
                let fresh = LeaseRecord {
                    heartbeat: time::rfc3339_millis(secs, nanos),
                    heartbeat_ms: now_ms(),
                    ..(*record).clone()
                };
                // A failed refresh is tried again at the next beat; the lease goes stale only
                // if they all fail for a whole window.
                let _ = replace(&thread_path, &fresh);
            }
        })
        .map_err(|e| Error::Store(format!("cannot start the lease's heartbeat thread: {e}")))?;
    Ok(Lease { path, writer: writer.to_owned(), stop: Some(stop), heartbeat: Some(heartbeat), warnings })
}

impl Lease {
    /// The lease file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.heartbeat.take() {
            let _ = thread.join();
        }
        // Only our own: a process that took it over holds it now.
        if read(&self.path).is_ok_and(|record| record.writer == self.writer) {
            let _ = std::fs::remove_file(&self.path);
        }
        if let Ok(mut held) = HELD.lock() {
            held.retain(|path| *path != self.path);
        }
    }
}

/// Creates `path` with `record` only if it does not exist: the record is written whole to a
/// temporary file and hard-linked to its name, which fails if the name exists.
fn create_exclusive(path: &Path, record: &LeaseRecord) -> std::io::Result<()> {
    let temporary = temporary_beside(path, &record.writer);
    std::fs::write(&temporary, serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?)?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    linked
}

/// Replaces `path` with `record`, whole (temporary file and rename).
fn replace(path: &Path, record: &LeaseRecord) -> std::io::Result<()> {
    let temporary = temporary_beside(path, &record.writer);
    std::fs::write(&temporary, serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?)?;
    std::fs::rename(&temporary, path)
}

fn temporary_beside(path: &Path, writer: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{writer}.tmp"))
}

/// Moves a stale lease out of the way: renamed to a name of this writer's first, so that of two
/// processes taking it over at once only one succeeds; if what was renamed is not the lease
/// judged stale (another taker's fresh one), it is put back. Whether this process took it.
fn take_over(stale: &FoundLease, writer: &str) -> bool {
    let name = stale.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tombstone = stale.path.with_file_name(format!(".{name}.taken-by-{writer}"));
    if std::fs::rename(&stale.path, &tombstone).is_err() {
        return false;
    }
    let same = match (&stale.record, read(&tombstone)) {
        (Ok(judged), Ok(moved)) => judged.writer == moved.writer && judged.heartbeat_ms == moved.heartbeat_ms,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if !same {
        // Put back only if nobody created the name since.
        let _ = std::fs::hard_link(&tombstone, &stale.path);
    }
    let _ = std::fs::remove_file(&tombstone);
    same
}

/// `shard 1/4 (host node3, pid 4242, since ..., last heartbeat ...)`.
pub fn describe(lease: &FoundLease) -> String {
    match &lease.record {
        Ok(r) => format!(
            "shard {} (host {}, pid {}{}, since {}, last heartbeat {})",
            r.shard,
            r.host,
            r.pid,
            r.task.as_ref().map(|t| format!(", {t}")).unwrap_or_default(),
            r.since,
            r.heartbeat
        ),
        Err(why) => format!("shard {} ({why})", lease.shard),
    }
}

fn refusal(run: &RunDir, holder: &FoundLease, stale: Duration) -> Error {
    Error::Leased(format!(
        "units of run {} are being run by another process: {}; nothing was run. Two writers would run the same \
         units twice. Wait for it to finish (`status {}` shows it), or, if it is gone (a crashed node), its \
         lease is taken over once its heartbeat is older than {} (--lease-stale), or at once if you remove {}",
        run.manifest.run,
        describe(holder),
        run.manifest.run,
        show(stale),
        holder.path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir() -> (tempfile::TempDir, RunDir) {
        let dir = tempfile::tempdir().unwrap();
        let manifest: super::super::manifest::Manifest = serde_json::from_value(serde_json::json!({
            "schema": 1, "run": "r", "experiment": "e", "created": "now", "command": [],
            "replicates": 4, "request": {"treatments": [], "sets": []},
            "config": {"conditions": {"baseline": {}}},
            "versions": {"crate_name": "c", "crate_version": "1", "crystallize": "1"},
            "git": null, "host": "h"
        }))
        .unwrap();
        let run = super::super::Store::locate(Some(dir.path())).create_run(&manifest).unwrap();
        (dir, run)
    }

    #[test]
    fn a_second_writer_of_overlapping_units_is_refused_and_a_stale_lease_is_taken_over() {
        let (_dir, run) = run_dir();
        let s = |i, n| Shard::new(i, n).unwrap();
        let stale = Duration::from_secs(60);
        let first = acquire(&run, s(1, 4), "w1", stale, None, Cancel::default()).unwrap();
        let refused = acquire(&run, s(1, 4), "w2", stale, None, Cancel::default()).err().unwrap().to_string();
        assert!(refused.contains("shard 1/4 (host") && refused.contains("lease-1-of-4.json"), "{refused}");
        // Another shard is free; every unit (0/1) and an overlapping count (1/2) are not.
        let other = acquire(&run, s(2, 4), "w3", stale, None, Cancel::default()).unwrap();
        assert!(acquire(&run, s(0, 1), "w4", stale, None, Cancel::default()).is_err());
        assert!(acquire(&run, s(1, 2), "w5", stale, None, Cancel::default()).is_err());
        assert!(!lease_path(run.path(), s(0, 1)).exists(), "a refused writer gives its own lease back");
        drop(other);
        assert!(!lease_path(run.path(), s(2, 4)).exists(), "a lease is removed when its holder ends");

        // A lease whose holder stopped beating (here: a record written an hour ago).
        std::mem::forget(first);
        let path = lease_path(run.path(), s(1, 4));
        let mut old = read(&path).unwrap();
        old.heartbeat_ms -= 3_600_000;
        replace(&path, &old).unwrap();
        let taker = acquire(&run, s(1, 4), "w6", stale, None, Cancel::default()).unwrap();
        assert!(taker.warnings[0].contains("took over the lease of shard 1/4"), "{:?}", taker.warnings);
        assert_eq!(read(&path).unwrap().writer, "w6");
    }

    #[test]
    fn a_requeued_task_takes_over_its_own_lease_at_once() {
        let (_dir, run) = run_dir();
        let shard = Shard::new(0, 2).unwrap();
        let first = acquire(&run, shard, "w1", DEFAULT_STALE, Some("slurm 9_0".into()), Cancel::default()).unwrap();
        std::mem::forget(first);
        let again = acquire(&run, shard, "w2", DEFAULT_STALE, Some("slurm 9_0".into()), Cancel::default()).unwrap();
        assert!(again.warnings[0].contains("requeued"), "{:?}", again.warnings);
    }
}
